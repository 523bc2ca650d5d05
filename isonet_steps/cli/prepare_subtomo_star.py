"""isonet prepare-subtomo-star: a subtomo.star for subtomograms cut by other software."""

import click

from ._common import log_level_option, option, step


@step("prepare-subtomo-star")
@click.argument("folder", type=click.Path(file_okay=False, path_type=str))
@option("-o", "--output-star", default="subtomo.star", help="Subtomogram STAR file to write.")
@option("--pixel-size", type=float, default=10.0, help="Voxel size in Å written to every row.")
@option("--cube-size", type=int, default=None,
        help="Training cube edge in voxels (multiple of 8, at most the subtomogram size).  "
             "[default: IsoNet's rule, floor(int(crop/1.5 + 1)/16)*16, e.g. 96 -> 64]")
@option("--tilt-min", type=float, default=-60.0, help="Lowest tilt angle of the tilt series, degrees.")
@option("--tilt-max", type=float, default=60.0, help="Highest tilt angle of the tilt series, degrees.")
@log_level_option()
def command(folder, output_star, pixel_size, cube_size, tilt_min, tilt_max, log_level):
    """Write a subtomo.star listing every readable cubic MRC in FOLDER (sorted by name).

    Unreadable or non-cubic files are skipped with a warning; all subtomograms must share one size.
    """
    from pathlib import Path

    from ..io.errors import InputError
    from ..io.log import get_logger
    from ..io.mrc import open_memmap
    from ..io.star import write_star
    from ..io.tomostar import check_pixel_size, check_tilt_range, subtomo_table

    log = get_logger("prepare-subtomo-star")
    check_pixel_size(pixel_size)
    check_tilt_range(tilt_min, tilt_max)
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: folder not found; give the folder that holds the subtomogram MRCs.")
    candidates = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    files: list[Path] = []
    sizes: dict[Path, int] = {}
    skipped: list[str] = []
    for path in candidates:
        try:  # a memory map checks the data block is all there (a header alone would not)
            with open_memmap(path, "subtomogram") as vol:
                shape, voxel_size = tuple(int(s) for s in vol.data.shape), vol.voxel_size
        except InputError as exc:
            skipped.append(f"{path.name} ({exc})")
            log.warning("skipping %s: %s", path, exc)
            continue
        if len(set(shape)) != 1:
            reason = f"not cubic: {'x'.join(map(str, shape))}"
            skipped.append(f"{path.name} ({reason})")
            log.warning("skipping %s: %s", path, reason)
            continue
        if voxel_size > 0 and abs(voxel_size - pixel_size) > 0.01 * pixel_size and not sizes:
            log.warning("%s: header voxel size %.3f Å differs from --pixel-size %.3f Å", path, voxel_size, pixel_size)
        files.append(path)
        sizes[path] = shape[0]
    if not files:
        why = f"; skipped {skipped[0]}" if skipped else ""
        raise InputError(f"{root}: no readable cubic subtomogram MRC in this folder{why}; point to the folder of "
                         "subtomograms.")
    first = files[0]
    for path in files[1:]:
        if sizes[path] != sizes[first]:
            raise InputError(
                f"{root}: subtomograms differ in size ({first.name} is {sizes[first]}³, {path.name} is "
                f"{sizes[path]}³); "
                f"all must share one size — re-extract them or split them into separate folders."
            )
    table = subtomo_table(files, sizes[first], cube_size=cube_size, pixel_size=pixel_size, tilt_min=tilt_min,
                          tilt_max=tilt_max)
    write_star(table, output_star)
    log.info("wrote %s: %d subtomograms of %d³ voxels, cube %d", output_star, len(table), sizes[first],
             int(table["rlnCubeSize"].iloc[0]))
