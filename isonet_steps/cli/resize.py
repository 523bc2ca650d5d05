"""isonet resize: rescale the tomograms of a STAR file to another voxel size."""

import click

from ._common import log_level_option, option, step


@step("resize")
@click.argument("star", type=click.Path(dir_okay=False, path_type=str))
@option("--pixel-size-out", "--apix", "pixel_size_out", type=float, default=15.0,
        help="Voxel size of the rescaled tomograms, in Å.")
@option("--out-folder", default="tomograms_resized", help="Folder for the rescaled tomograms (same file names).")
@option("--output-star", default=None, help="STAR file to write.  [default: <STAR stem>_resized.star beside STAR]")
@log_level_option()
def command(star, pixel_size_out, out_folder, output_star, log_level):
    """Rescale every tomogram in STAR to --pixel-size-out Å (cubic spline) and write a new STAR.

    The new STAR has the new rlnPixelSize and rlnMicrographName; rlnDeconvTomoName and
    rlnMaskName are reset to None because those files still have the old size.
    """
    from pathlib import Path

    from ..core.resample import rescale, rescaled_shape, zoom_factor
    from ..io.log import get_logger
    from ..io.mrc import read_header, read_volume, write_volume
    from ..io.star import is_set, read_tomogram_star, resolve_path, write_star
    from ._paths import check_writable_target

    log = get_logger()
    table = read_tomogram_star(star)
    star_path = Path(star)
    out_star = Path(output_star) if output_star else star_path.with_name(f"{star_path.stem}_resized.star")
    check_writable_target(Path(out_folder) / "x.mrc")
    check_writable_target(out_star)

    plans = []  # check every row before writing anything
    for row in range(len(table)):
        path = resolve_path(table.at[row, "rlnMicrographName"], star, "rlnMicrographName")
        pixel = float(table.at[row, "rlnPixelSize"])
        factor = zoom_factor(pixel, pixel_size_out)
        rescaled_shape(read_header(path, "tomogram").shape, factor)
        plans.append((row, path, pixel))

    for row, path, pixel in plans:
        out = Path(out_folder) / path.name
        volume = read_volume(path, "tomogram")
        log.info("resize: %s | %g Å -> %g Å | shape %s",
                 path, pixel, pixel_size_out, "x".join(map(str, volume.data.shape)))
        write_volume(out, rescale(volume.data, pixel, pixel_size_out), pixel_size_out)
        del volume
        table.at[row, "rlnMicrographName"] = str(out)
        table.at[row, "rlnPixelSize"] = float(pixel_size_out)
        for column in ("rlnDeconvTomoName", "rlnMaskName"):
            if column in table.columns and is_set(table.at[row, column]):
                log.info("resize: %s reset to None (it has the old voxel size)", column)
                table.at[row, column] = "None"
        log.info("resize: wrote %s", out)
    write_star(table, out_star)
    log.info("resize: wrote %s", out_star)
