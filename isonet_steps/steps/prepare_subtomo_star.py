"""prepare-subtomo-star: a subtomo.star for subtomograms cut by other software."""

from __future__ import annotations

import os
from pathlib import Path

from ..core.volume_checks import check_volume, volume_stats
from ..io.columns import CUBE_SIZE
from ..io.errors import InputError
from ..io.log import get_logger
from ..io.mrc import open_memmap
from ..io.params import default
from ..io.star import write_star
from ..io.tomostar import check_pixel_size, check_tilt_range, subtomo_table


def _cube_edge(path: Path) -> tuple[int, float]:
    """The subtomogram's edge and header voxel size; InputError when unreadable or not cubic."""
    with open_memmap(path, "subtomogram") as vol:  # a memory map checks the data block is all there
        shape, voxel_size = tuple(int(s) for s in vol.data.shape), vol.voxel_size
        stats = volume_stats(vol.data) if len(set(shape)) == 1 else None
    if stats is None:
        raise InputError(f"not cubic: {'x'.join(map(str, shape))}")
    check_volume(stats, shape, path.name, "subtomogram")  # NaN/Inf, constant, overflow: skipped like the rest
    return shape[0], voxel_size


def _readable_cubes(root: Path, pixel_size: float) -> dict[Path, int]:
    """Every readable cubic MRC in ``root`` (sorted by name) with its edge; the others are skipped with a warning."""
    log = get_logger("prepare-subtomo-star")
    sizes: dict[Path, int] = {}
    skipped: list[str] = []
    for path in sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")):
        try:
            sizes[path], voxel_size = _cube_edge(path)
        except InputError as exc:
            reason = str(exc)
            skipped.append(f"{path.name} ({reason})")
            log.warning("skipping %s: %s", path, reason)
            continue
        if voxel_size > 0 and abs(voxel_size - pixel_size) > 0.01 * pixel_size and len(sizes) == 1:
            log.warning("%s: header voxel size %.3f Å differs from --pixel-size %.3f Å", path, voxel_size, pixel_size)
    if not sizes:
        why = f"; skipped {skipped[0]}" if skipped else ""
        raise InputError(f"{root}: no readable cubic subtomogram MRC in this folder{why}; point to the folder of "
                         "subtomograms.")
    return sizes


def run_prepare_subtomo_star(folder: str | os.PathLike, output_star: str | os.PathLike = "subtomo.star", *,
                             pixel_size: float = default("pixel_size"), cube_size: int | None = None,
                             tilt_min: float = default("tilt_min"), tilt_max: float = default("tilt_max")) -> Path:
    """Write a subtomo.star listing every readable cubic MRC in ``folder``; returns its path.

    All subtomograms must share one size.
    """
    check_pixel_size(pixel_size)
    check_tilt_range(tilt_min, tilt_max)
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: folder not found; give the folder that holds the subtomogram MRCs.")
    sizes = _readable_cubes(root, pixel_size)
    files = list(sizes)
    first = files[0]
    for path in files[1:]:
        if sizes[path] != sizes[first]:
            raise InputError(f"{root}: subtomograms differ in size ({first.name} is {sizes[first]}³, {path.name} is "
                             f"{sizes[path]}³); all must share one size — re-extract them or split them into "
                             "separate folders.")
    table = subtomo_table(files, sizes[first], cube_size=cube_size, pixel_size=pixel_size, tilt_min=tilt_min,
                          tilt_max=tilt_max)
    write_star(table, output_star)
    get_logger("prepare-subtomo-star").info("wrote %s: %d subtomograms of %d³ voxels, cube %d", output_star,
                                            len(table), sizes[first], int(table[CUBE_SIZE].iloc[0]))
    return Path(output_star)
