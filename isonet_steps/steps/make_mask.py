"""make-mask: a sample mask (dense and structured regions) per tomogram of a tomograms.star."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.mask import check_mask_settings, make_mask, split_boundary
from ..core.volume_checks import entering_tomogram
from ..io.atomic import check_writable_target
from ..io.columns import MASK_BOUNDARY, MASK_DENSITY_PERCENTAGE, MASK_NAME, MASK_STD_PERCENTAGE, PIXEL_SIZE, is_set
from ..io.errors import InputError
from ..io.imod import read_imod
from ..io.log import get_logger
from ..io.mrc import read_header, read_volume, write_volume
from ..io.params import default
from ..io.star import read_tomogram_star, resolve_path, select_rows, tomogram_source, write_star


@dataclass
class _Job:
    """One mask to make, checked before anything is written."""

    row: int
    source: Path
    density: float
    std: float
    boundary: np.ndarray | None
    fill: float | None = None  # what its NaN/Inf voxels read as (--fix-nonfinite), else None


def _percentage(table, row: int, given: float | None, column: str, option: str, star) -> float:
    """The option when given, else the row's STAR value, else 50."""
    if given is not None:
        return float(given)
    value = table.at[row, column] if column in table.columns else None
    if not is_set(value):
        return 50.0
    if not 0.0 <= float(value) <= 100.0:
        raise InputError(f"{star}: {column} {float(value):g} (row {row + 1}) must be a percentage in 0..100; "
                         f"fix the STAR file or give {option}.")
    return float(value)


def _boundary_path(table, row: int, star) -> Path | None:
    value = table.at[row, MASK_BOUNDARY] if MASK_BOUNDARY in table.columns else None
    if not is_set(value):
        return None
    try:
        path = resolve_path(value, star, MASK_BOUNDARY)
    except InputError:
        raise InputError(f"{star}: rlnMaskBoundary names {value}, which does not exist (row {row + 1}); "
                         f"fix rlnMaskBoundary or set it to None.") from None
    if path.suffix.lower() != ".mod":
        raise InputError(f"{star}: rlnMaskBoundary {value} (row {row + 1}) is not an IMOD model (.mod); "
                         f"fix rlnMaskBoundary or set it to None.")
    return path


def _boundary(table, row: int, shape: tuple[int, ...], star) -> np.ndarray | None:
    """The boundary model's points (None when unset), checked against the tomogram's shape."""
    path = _boundary_path(table, row, star)
    if path is None:
        return None
    log = get_logger()
    model = read_imod(path)
    first, last, polygon = split_boundary(model.points, shape[0], str(path))  # fails early, before any write
    drawn_on = model.image_size
    if all(n > 0 for n in drawn_on) and tuple(drawn_on) != shape[::-1]:
        log.warning("make-mask: %s was drawn on a %dx%dx%d (XxYxZ) volume but the tomogram is %dx%dx%d; "
                    "its coordinates are used as voxels of the tomogram", path, *drawn_on, *shape[::-1])
    if first > last:
        log.warning("make-mask: the Z range of %s lies outside the tomogram (%d sections); the mask will be empty",
                    path, shape[0])
    else:
        log.info("make-mask: boundary %s: %d polygon points, Z sections %d..%d", path, len(polygon), first, last)
    return model.points


def _plan(table, rows: list[int], density: float | None, std: float | None, use_deconv_tomo: bool,
          star) -> list[_Job]:
    """Every chosen row's settings, tomogram and boundary, checked before anything is written."""
    jobs = []
    for row in rows:
        row_density = _percentage(table, row, density, MASK_DENSITY_PERCENTAGE, "--density-percentage", star)
        row_std = _percentage(table, row, std, MASK_STD_PERCENTAGE, "--std-percentage", star)
        source = tomogram_source(table.iloc[row].to_dict(), star, use_deconv_tomo)[0]
        header = read_header(source, "tomogram")
        fill = entering_tomogram(source, table.iloc[row].to_dict())
        jobs.append(_Job(row, source, row_density, row_std, _boundary(table, row, header.shape, star), fill))
    return jobs


def _mask_one(job: _Job, out: Path, pixel_size: float, *, patch_size: int, z_crop: float | None) -> float:
    """Make and write one mask; returns the fraction of voxels kept."""
    volume = read_volume(job.source, "tomogram", fill_nonfinite=job.fill)
    voxel = volume.voxel_size if volume.voxel_size > 0 else pixel_size
    mask = make_mask(volume.data, density_percentage=job.density, std_percentage=job.std, patch_size=patch_size,
                     z_crop=z_crop, boundary=job.boundary)
    del volume
    kept = float(mask.mean())
    if kept == 0.0:
        get_logger().warning("make-mask: the mask of %s is empty; raise the percentages, lower --z-crop "
                             "or check rlnMaskBoundary", job.source)
    write_volume(out, mask, voxel, dtype="int8")
    return kept


def run_make_mask(star: str | os.PathLike, *, mask_folder: str | os.PathLike = "mask",
                  density_percentage: float | None = None, std_percentage: float | None = None,
                  z_crop: float | None = None, patch_size: int = default("patch_size"),
                  use_deconv_tomo: bool = default("use_deconv_tomo"), tomo_idx: str | None = None,
                  output_star: str | os.PathLike | None = None) -> Path:
    """Write ``<mask_folder>/<tomogram>_mask.mrc`` for each chosen row; returns the STAR written.

    Fills rlnMaskName, rlnMaskDensityPercentage and rlnMaskStdPercentage, rewriting the STAR after each mask.
    """
    log = get_logger()
    table = read_tomogram_star(star)
    rows = select_rows(table, tomo_idx, star)
    out_star = Path(output_star) if output_star else Path(star)
    check_mask_settings(50.0 if density_percentage is None else density_percentage,
                        50.0 if std_percentage is None else std_percentage, patch_size, z_crop)
    check_writable_target(Path(mask_folder) / "x_mask.mrc")
    check_writable_target(out_star)
    jobs = _plan(table, rows, density_percentage, std_percentage, use_deconv_tomo, star)
    for column in (MASK_DENSITY_PERCENTAGE, MASK_STD_PERCENTAGE):
        if column not in table.columns:
            table[column] = 50.0
    if MASK_NAME not in table.columns:
        table[MASK_NAME] = "None"
    for job in jobs:
        out = Path(mask_folder) / f"{job.source.stem}_mask.mrc"
        log.info("make-mask: %s | folder: %s | density: %g%% | std: %g%% | patch: %d | z-crop: %s",
                 job.source, mask_folder, job.density, job.std, patch_size, z_crop if z_crop else "none")
        kept = _mask_one(job, out, float(table.at[job.row, PIXEL_SIZE]), patch_size=patch_size, z_crop=z_crop)
        table.at[job.row, MASK_DENSITY_PERCENTAGE] = job.density
        table.at[job.row, MASK_STD_PERCENTAGE] = job.std
        table.at[job.row, MASK_NAME] = str(out)
        write_star(table, out_star)
        log.info("make-mask: wrote %s (%.1f%% of voxels kept)", out, 100.0 * kept)
    return out_star
