"""isonet extract: cut training subtomograms at random places of each tomogram's mask."""

import click

from ..core.extract import SPLITS
from ._common import log_level_option, option, step, tomo_idx_option


@step("extract")
@click.argument("star", type=click.Path(dir_okay=False, path_type=str))
@option("--subtomo-folder", default="subtomo",
        help="Folder for the subtomogram MRCs. Existing files are kept, except stale <tomogram>_NNNNNN.mrc of this "
             "run's tomograms.")
@option("--subtomo-star", default="subtomo.star",
        help="Subtomogram STAR file to write (last, when all MRCs are written).")
@option("--cube-size", type=int, default=64, help="Training cube edge in voxels; a multiple of 8.")
@option("--crop-size", type=int, default=None,
        help="Edge of each extracted subtomogram in voxels.  [default: cube size + 16]")
@option("--seed", type=int, default=0, help="Random seed for the positions and the two gold-standard halves.")
@option("--use-deconv-tomo/--no-use-deconv-tomo", default=True,
        help="Cut from rlnDeconvTomoName where that file exists, else from rlnMicrographName.")
@option("--split-halves", type=click.Choice(list(SPLITS)), default="random",
        help="Gold-standard halves: random (boxes of the two halves may overlap) or slabs (each half draws "
             "from its own alternating slabs, 2·crop wide along X: no shared voxel; refine --halves wants this).")
@tomo_idx_option()
@log_level_option()
def command(star, subtomo_folder, subtomo_star, cube_size, crop_size, seed, use_deconv_tomo, split_halves, tomo_idx,
            log_level):
    """Extract subtomograms from the tomograms in STAR (rlnNumberSubtomo per row) into subtomo.star.

    Centres are drawn without replacement among the mask's voxels whose whole crop box lies inside
    the tomogram; the same --seed gives the same subtomograms. A mask with fewer such voxels than
    rlnNumberSubtomo is an error (IsoNet would repeat centres). Each subtomogram is assigned to one
    of two balanced random halves (rlnRandomSubset 1/2) for the gold-standard resolution estimate.
    """
    _extract(star, subtomo_folder, subtomo_star, cube_size, crop_size, seed, use_deconv_tomo, tomo_idx, split_halves)


class _Plan:
    """What one tomogram row will give: validated before anything is written."""

    def __init__(self, row, name, source, mask_path, shape, voxel_size, number, counts, half_counts=None):
        self.row, self.name, self.source, self.mask_path = row, name, source, mask_path
        self.shape, self.voxel_size, self.number, self.counts = shape, voxel_size, number, counts
        self.half_counts = half_counts  # slab split: valid centres per half, else None


def _plan_row(row, star, crop, cube, use_deconv_tomo, log, split="random") -> _Plan:
    from pathlib import Path

    import numpy as np

    from ..core.extract import check_fits, count_candidates, slab_counts, slab_width
    from ..io.errors import InputError
    from ..io.mrc import open_memmap, release_pages
    from ..io.star import is_set, resolve_path, tomogram_source

    name = Path(str(row["rlnMicrographName"])).name
    source, _ = tomogram_source(row, star, use_deconv_tomo)
    number = int(row["rlnNumberSubtomo"]) if "rlnNumberSubtomo" in row else 100
    if number < 0:
        raise InputError(f"{star}: rlnNumberSubtomo {number} for {name} is negative; give how many subtomograms to cut "
                         "(e.g. 100).")
    with open_memmap(source, "tomogram") as vol:
        shape = tuple(int(s) for s in vol.data.shape)
        voxel_size = vol.voxel_size
    check_fits(shape, crop, cube, str(source))
    pixel = float(row["rlnPixelSize"])
    if voxel_size <= 0:
        voxel_size = pixel
    elif abs(voxel_size - pixel) > 0.01 * pixel:
        log.warning("%s: header voxel size %.3f Å differs from rlnPixelSize %.3f Å; subtomograms keep the header's",
                    source, voxel_size, pixel)
    mask_path = None
    half_counts = None
    if is_set(row.get("rlnMaskName")):
        mask_path = Path(resolve_path(row["rlnMaskName"], star, "rlnMaskName"))
        with open_memmap(mask_path, "mask") as mask:
            mshape = tuple(int(s) for s in mask.data.shape)
            if mshape != shape:
                raise InputError(
                    f"{mask_path}: mask shape {mshape} differs from tomogram {source} shape {shape} (Z,Y,X); "
                    f"make the mask from this tomogram (isonet make-mask)."
                )
            counts = count_candidates(mask.data, shape, crop)
            if split == "slabs" and counts.sum():  # each half draws from its own slabs
                half_counts = slab_counts(mask.data, shape, crop)
            release_pages(mask.data)
            if counts.sum() == 0:
                if not any(np.any(mask.data[z]) for z in range(shape[0])):
                    raise InputError(f"{mask_path}: mask is empty (no non-zero voxel); remake it with lower thresholds "
                                     "or fix rlnMaskName.")
                raise InputError(
                    f"{mask_path}: mask has no voxel at least {crop // 2} voxels from the tomogram's edges, so no "
                    f"{crop}-voxel box fits; use a smaller --cube-size/--crop-size or a looser mask."
                )
    else:
        log.info("%s: no mask (rlnMaskName unset); centres drawn from the whole tomogram", name)
        counts = count_candidates(None, shape, crop)
        if split == "slabs":
            half_counts = slab_counts(None, shape, crop)
    if half_counts is not None:
        where = mask_path if mask_path is not None else source
        per_half = {h: int(c.sum()) for h, c in half_counts.items()}
        wanted = (number + 1) // 2
        if min(per_half.values()) < wanted:
            raise InputError(
                f"{where}: --split-halves slabs leaves {per_half[1]} / {per_half[2]} valid centres for half 1 / 2, "
                f"fewer than the {wanted} subtomograms each half needs "
                f"(slabs are {slab_width(shape[2], crop)} voxels wide "
                f"along X); "
                f"ask for fewer subtomograms, use a looser mask, or --split-halves random."
            )
        return _Plan(row, name, source, mask_path, shape, voxel_size, number, counts, half_counts)
    total = int(counts.sum())
    if number > total:
        where = mask_path if mask_path is not None else source
        raise InputError(
            f"{where}: more subtomograms ({number}) than the mask allows ({total} valid centres); ask for fewer "
            f"subtomograms (rlnNumberSubtomo) or use a looser mask."
        )
    return _Plan(row, name, source, mask_path, shape, voxel_size, number, counts)


def _extract(star, subtomo_folder, subtomo_star, cube_size, crop_size, seed, use_deconv_tomo, tomo_idx, split="random"):
    import re
    from contextlib import nullcontext
    from pathlib import Path

    import pandas as pd

    from ..core.extract import check_box_sizes, crop_box, pick_centres, pick_slab_halves, random_halves, tomogram_rng
    from ..io.errors import InputError
    from ..io.log import get_logger, progress
    from ..io.mrc import open_memmap, release_pages, write_volume
    from ..io.star import read_tomogram_star, select_rows, write_star
    from ._paths import check_writable_target, make_output_folder

    log = get_logger("extract")
    crop = check_box_sizes(cube_size, crop_size)
    if seed < 0:
        raise InputError(f"--seed {seed} must be >= 0.")
    df = read_tomogram_star(star)
    positions = select_rows(df, tomo_idx, star)

    # Validate every row (files, sizes, masks, counts) before writing anything.
    plans = [_plan_row(df.iloc[i].to_dict(), star, crop, cube_size, use_deconv_tomo, log, split) for i in positions]
    stems: dict[str, str] = {}
    for plan in plans:
        stem = Path(plan.name).stem
        if stem in stems:
            raise InputError(
                f"{star}: tomograms {stems[stem]} and {plan.row['rlnMicrographName']} share the name {stem!r}, "
                f"so their "
                f"subtomograms would overwrite each other; rename one of the files."
            )
        stems[stem] = str(plan.row["rlnMicrographName"])
    if sum(plan.number for plan in plans) == 0:
        raise InputError(f"{star}: every selected row has rlnNumberSubtomo 0; nothing to extract.")
    check_writable_target(Path(subtomo_folder) / "x.mrc")
    check_writable_target(subtomo_star)
    folder = make_output_folder(subtomo_folder)

    rows: list[dict[str, object]] = []
    written: set[Path] = set()
    in_half = {1: 0, 2: 0}
    for plan in plans:
        stem = Path(plan.name).stem
        index = int(plan.row["rlnIndex"])
        rng = tomogram_rng(seed, index)
        first = 1 if in_half[1] <= in_half[2] else 2  # the half that gets an odd one out
        with open_memmap(plan.mask_path, "mask") if plan.mask_path else nullcontext() as mask:
            data = None if mask is None else mask.data
            if plan.half_counts is not None:  # slabs: each half from its own columns
                centres, halves = pick_slab_halves(data, plan.shape, crop, plan.number, rng, plan.half_counts, first)
            else:
                centres = pick_centres(data, plan.shape, crop, plan.number, rng, counts=plan.counts)
                halves = random_halves(len(centres), rng, first=first)
        log.info("tomogram %d (%s): %d subtomograms of %d³ voxels from %s",
                 index, plan.name, len(centres), crop, plan.source)
        with open_memmap(plan.source, "tomogram") as vol:
            for j in progress(range(len(centres)), total=len(centres), desc=f"extract {stem}", unit="subtomo"):
                out = folder / f"{stem}_{j:06d}.mrc"
                write_volume(out, crop_box(vol.data, centres[j], crop), plan.voxel_size)
                release_pages(vol.data)  # a big tomogram is read box by box, never held resident
                written.add(out)
                in_half[int(halves[j])] += 1
                rows.append({
                    "rlnSubtomoIndex": len(rows) + 1,
                    "rlnImageName": str(Path(subtomo_folder) / out.name),
                    "rlnCubeSize": int(cube_size),
                    "rlnCropSize": int(crop),
                    "rlnPixelSize": float(plan.row["rlnPixelSize"]),
                    "rlnTiltMin": float(plan.row["rlnTiltMin"]),
                    "rlnTiltMax": float(plan.row["rlnTiltMax"]),
                    "rlnRandomSubset": int(halves[j]),
                    "rlnMicrographName": str(plan.row["rlnMicrographName"]),
                    "rlnCoordinateX": int(centres[j, 2]),
                    "rlnCoordinateY": int(centres[j, 1]),
                    "rlnCoordinateZ": int(centres[j, 0]),
                })
    # Remove only stale subtomograms of these tomograms from an earlier run (never the folder).
    for stem in stems:
        pattern = re.compile(re.escape(stem) + r"_\d{6}\.mrc")
        for old in folder.iterdir():
            if pattern.fullmatch(old.name) and old not in written and old.is_file():
                old.unlink()
                log.debug("removed stale %s", old)
    write_star(pd.DataFrame(rows), subtomo_star)
    log.info("wrote %s: %d subtomograms (half 1: %d, half 2: %d)", subtomo_star, len(rows), in_half[1], in_half[2])

