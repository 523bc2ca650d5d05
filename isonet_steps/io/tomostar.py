"""Building IsoNet's STAR tables from folders of tomograms or subtomograms."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .columns import (
    CROP_SIZE,
    CUBE_SIZE,
    DEFOCUS,
    IMAGE_NAME,
    INDEX,
    MASK_BOUNDARY,
    MICROGRAPH_NAME,
    NUMBER_SUBTOMO,
    PIXEL_SIZE,
    SUBTOMO_INDEX,
    TILT_MAX,
    TILT_MIN,
)
from .errors import InputError

TOMOGRAM_SUFFIXES = (".mrc", ".rec", ".mrcs", ".map")


def list_tomograms(folder: str | os.PathLike) -> list[Path]:
    """Every .mrc/.rec file in ``folder``, sorted by name (names with several dots are fine)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: folder not found; give the folder that holds the tomograms.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in TOMOGRAM_SUFFIXES[:2])
    if not files:
        raise InputError(f"{folder}: no tomograms (*.mrc or *.rec) in this folder; "
                         "point to the folder that holds them.")
    return files


def check_tilt_range(tilt_min: float, tilt_max: float) -> None:
    """Tilt angles are degrees within ±90, min below max."""
    if not (-90.0 <= tilt_min <= 90.0 and -90.0 <= tilt_max <= 90.0):
        raise InputError(f"tilt range {tilt_min:g}..{tilt_max:g}° is outside ±90°; give the tilt series' real min/max "
                         "angles (--tilt-min/--tilt-max).")
    if tilt_min >= tilt_max:
        raise InputError(f"--tilt-min {tilt_min:g} is not below --tilt-max {tilt_max:g}; swap them.")


def check_pixel_size(pixel_size: float, option: str = "--pixel-size") -> None:
    """Refuse a zero, negative or non-finite size here, with the option to fix, not deep in a later step."""
    if not (pixel_size > 0 and np.isfinite(pixel_size)):
        raise InputError(f"{option} {pixel_size:g} is not a positive size in Å; "
                         "give the tomogram's voxel size, e.g. 10.")


def tomogram_table(
    files: list[Path],
    *,
    pixel_size: float = 10.0,
    defocus: float = 0.0,
    number_subtomos: int = 100,
    tilt_min: float = -60.0,
    tilt_max: float = 60.0,
    named_in: str | None = None,
) -> pd.DataFrame:
    """IsoNet's tomograms.star rows for ``files`` (plus rlnTiltMin/rlnTiltMax, isonet-nf's addition).

    ``named_in``: the folder written before each file name instead of the file's own folder, for
    a STAR that names the tomograms where they live when ``files`` are a staged copy (Nextflow).
    """
    check_pixel_size(pixel_size)
    check_tilt_range(tilt_min, tilt_max)
    if defocus < 0:
        raise InputError(f"--defocus {defocus:g} is negative; give the underfocus in Å as a positive number (0 = no "
                         "CTF deconvolution).")
    if number_subtomos < 1:
        raise InputError(f"--number-subtomos {number_subtomos} must be at least 1.")
    n = len(files)
    return pd.DataFrame(
        {
            INDEX: np.arange(1, n + 1),
            MICROGRAPH_NAME: [str(f) if named_in is None else f"{named_in.rstrip('/')}/{Path(f).name}"
                                  for f in files],
            PIXEL_SIZE: [float(pixel_size)] * n,
            DEFOCUS: [float(defocus)] * n,
            NUMBER_SUBTOMO: [int(number_subtomos)] * n,
            MASK_BOUNDARY: ["None"] * n,
            TILT_MIN: [float(tilt_min)] * n,
            TILT_MAX: [float(tilt_max)] * n,
        }
    )


def default_cube_size(crop_size: int) -> int:
    """IsoNet's training cube for externally cut subtomograms: ``floor(int(crop/1.5 + 1)/16)*16``.

    E.g. 96 -> 64, 80 -> 48; leaves room for the rotations and the network's border.
    """
    return int(int(crop_size / 1.5 + 1) // 16) * 16


def subtomo_table(
    files: list[Path],
    crop_size: int,
    *,
    cube_size: int | None = None,
    pixel_size: float = 10.0,
    tilt_min: float = -60.0,
    tilt_max: float = 60.0,
) -> pd.DataFrame:
    """IsoNet's subtomo.star rows for cubic subtomograms of edge ``crop_size`` (plus the tilt range).

    ``cube_size`` None follows IsoNet's rule (:func:`default_cube_size`). Unlike IsoNet, a cube
    that does not fit inside the crop is an error rather than silently replaced.
    """
    check_pixel_size(pixel_size)
    check_tilt_range(tilt_min, tilt_max)
    if cube_size is None:
        cube_size = default_cube_size(crop_size)
        if cube_size < 8:
            raise InputError(
                f"subtomograms of {crop_size}³ voxels are too small for a training cube (IsoNet's rule gives "
                f"{cube_size}); "
                f"use subtomograms of at least 24³ voxels."
            )
    if cube_size < 8 or cube_size % 8:
        raise InputError(f"--cube-size {cube_size} must be a positive multiple of 8; "
                         "use e.g. 48 or 64 (or leave it out).")
    if cube_size > crop_size:
        raise InputError(
            f"--cube-size {cube_size} is larger than the subtomograms ({crop_size}³ voxels); use at most {crop_size} "
            f"(or leave it out for IsoNet's rule: {default_cube_size(crop_size)})."
        )
    n = len(files)
    return pd.DataFrame(
        {
            SUBTOMO_INDEX: np.arange(1, n + 1),
            IMAGE_NAME: [str(f) for f in files],
            CUBE_SIZE: [int(cube_size)] * n,
            CROP_SIZE: [int(crop_size)] * n,
            PIXEL_SIZE: [float(pixel_size)] * n,
            TILT_MIN: [float(tilt_min)] * n,
            TILT_MAX: [float(tilt_max)] * n,
        }
    )
