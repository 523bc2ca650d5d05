"""resize: rescale the tomograms of a STAR table to another voxel size."""

from __future__ import annotations

import os
from pathlib import Path

from ..core.resample import rescale, rescaled_shape, zoom_factor
from ..core.volume_checks import entering_tomogram
from ..io.atomic import check_writable_target
from ..io.columns import DECONV_TOMO_NAME, MASK_NAME, MICROGRAPH_NAME, PIXEL_SIZE, is_set
from ..io.log import get_logger
from ..io.mrc import read_header, read_volume, write_volume
from ..io.star import read_tomogram_star, resolve_path, write_star


def _plan(table, star, pixel_size_out: float) -> list[tuple[int, Path, float, float | None]]:
    """Every row's tomogram and voxel size, its new shape checked before anything is written."""
    plans = []
    for row in range(len(table)):
        path = resolve_path(table.at[row, MICROGRAPH_NAME], star, MICROGRAPH_NAME)
        pixel = float(table.at[row, PIXEL_SIZE])
        rescaled_shape(read_header(path, "tomogram").shape, zoom_factor(pixel, pixel_size_out))
        plans.append((row, path, pixel, entering_tomogram(path, table.iloc[row].to_dict())))
    return plans


def run_resize(star: str | os.PathLike, *, pixel_size_out: float = 15.0,
               out_folder: str | os.PathLike = "tomograms_resized",
               output_star: str | os.PathLike | None = None) -> Path:
    """Rescale every tomogram of ``star`` to ``pixel_size_out`` Å (cubic spline); returns the STAR written.

    The new STAR (default ``<stem>_resized.star`` beside ``star``) has the new rlnPixelSize and
    rlnMicrographName; rlnDeconvTomoName and rlnMaskName are reset to None (they keep the old size).
    """
    log = get_logger()
    table = read_tomogram_star(star)
    star_path = Path(star)
    out_star = Path(output_star) if output_star else star_path.with_name(f"{star_path.stem}_resized.star")
    check_writable_target(Path(out_folder) / "x.mrc")
    check_writable_target(out_star)
    for row, path, pixel, fill in _plan(table, star, pixel_size_out):
        out = Path(out_folder) / path.name
        volume = read_volume(path, "tomogram", fill_nonfinite=fill)
        log.info("resize: %s | %g Å -> %g Å | shape %s",
                 path, pixel, pixel_size_out, "x".join(map(str, volume.data.shape)))
        write_volume(out, rescale(volume.data, pixel, pixel_size_out), pixel_size_out)
        del volume
        table.at[row, MICROGRAPH_NAME] = str(out)
        table.at[row, PIXEL_SIZE] = float(pixel_size_out)
        for column in (DECONV_TOMO_NAME, MASK_NAME):
            if column in table.columns and is_set(table.at[row, column]):
                log.info("resize: %s reset to None (it has the old voxel size)", column)
                table.at[row, column] = "None"
        log.info("resize: wrote %s", out)
    write_star(table, out_star)
    log.info("resize: wrote %s", out_star)
    return out_star
