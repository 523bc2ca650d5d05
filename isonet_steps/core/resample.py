"""Rescaling tomograms to another voxel size (IsoNet's ``resize``, reference §1.8).

IsoNet works best at about 10-20 Å per voxel; ``rescale`` brings a tomogram there with a cubic
B-spline zoom. As in IsoNet the spline is not prefiltered, which smooths a little and so acts as
a mild anti-aliasing filter when shrinking. Unlike IsoNet (scipy's default zero padding, which
pulls the outermost voxels towards 0) the volume is mirrored at its faces.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ..io.errors import InputError

__all__ = ["zoom_factor", "rescaled_shape", "rescale"]


def zoom_factor(pixel_size: float, pixel_size_out: float) -> float:
    """``pixel_size / pixel_size_out``: below 1 shrinks (larger voxels), above 1 enlarges."""
    if not (pixel_size_out > 0 and math.isfinite(pixel_size_out)):
        raise InputError(f"--pixel-size-out {pixel_size_out:g} is not a positive voxel size in Å; give e.g. 15.")
    if not (pixel_size > 0 and math.isfinite(pixel_size)):
        raise InputError(f"pixel size {pixel_size:g} Å (rlnPixelSize) must be > 0; fix the STAR file.")
    return pixel_size / pixel_size_out


def rescaled_shape(shape: tuple[int, ...], factor: float) -> tuple[int, ...]:
    """Output shape of :func:`rescale` (each size times ``factor``, rounded; at least 2 needed)."""
    out = tuple(int(round(n * factor)) for n in shape)
    if min(out) < 2:
        raise InputError(f"rescaling shape {tuple(shape)} by {factor:g} gives {out}, too small for a 3D "
                         f"tomogram; choose a smaller --pixel-size-out.")
    return out


def rescale(volume: np.ndarray, pixel_size: float, pixel_size_out: float) -> np.ndarray:
    """Zoom ``volume`` [Z, Y, X] from ``pixel_size`` to ``pixel_size_out`` Å (cubic spline), float32."""
    factor = zoom_factor(pixel_size, pixel_size_out)
    vol = np.asarray(volume, dtype=np.float32)
    shape = rescaled_shape(vol.shape, factor)
    zoom = [m / n for m, n in zip(shape, vol.shape)]
    return ndimage.zoom(vol, zoom, order=3, prefilter=False, mode="mirror").astype(np.float32, copy=False)
