"""The missing wedge: which Fourier components a single-axis tilt series measures.

Geometry (arrays ``[Z, Y, X]``, tilt axis Y): by the projection-slice theorem a projection at tilt
angle θ measures the central line of the (kz, kx) plane along ``(kz, kx) = k·(sin θ, cos θ)``, the
line at angle θ from the kx axis (the convention of :mod:`isonet_steps.core.phantom`'s projector). A
tilt range [θmin, θmax] therefore measures the double wedge of lines at angles [θmin, θmax] from kx;
everything else (around kz) is the missing wedge. For a reconstruction of the opposite handedness,
an asymmetric range is given as (−θmax, −θmin). As in IsoNet the mask is 2D
(kz, kx), the same for every ky, and components outside the inscribed circle of the (kz, kx) plane
count as unmeasured except the kx axis itself (the kz = 0 line, measured at every tilt).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.fft

__all__ = ["wedge_mask_2d", "apply_wedge", "measured_part", "missing_part", "wedge_mask_3d"]


@lru_cache(maxsize=64)
def _mask_cached(nz: int, nx: int, tilt_min: float, tilt_max: float, rfft: bool) -> np.ndarray:
    kz = np.fft.fftfreq(nz)[:, None]
    kx = (np.fft.rfftfreq(nx) if rfft else np.fft.fftfreq(nx))[None, :]
    # angle of each (kz, kx) from the kx axis, folded into (-90, 90]: a line through the origin.
    angle = np.degrees(np.arctan2(kz, kx))
    angle = np.where(angle > 90.0, angle - 180.0, angle)
    angle = np.where(angle <= -90.0, angle + 180.0, angle)
    lo, hi = float(tilt_min), float(tilt_max)
    eps = 1e-6
    in_wedge = (angle >= lo - eps) & (angle <= hi + eps)
    if hi >= 90.0 - eps or lo <= -90.0 + eps:  # a tilt of ±90 reaches the kz axis from either side
        in_wedge |= np.isclose(np.abs(angle), 90.0)
    inside = (kz / 0.5) ** 2 + (kx / 0.5) ** 2 <= 1.0 + 1e-9
    mask = in_wedge & inside
    mask |= (kz == 0) & (lo - eps <= 0.0 <= hi + eps)  # the whole kx axis when 0° was recorded
    mask[0, 0] = True  # the mean is always measured
    mask = mask.astype(np.float32)
    mask.setflags(write=False)
    return mask


def wedge_mask_2d(nz: int, nx: int, tilt_min: float = -60.0, tilt_max: float = 60.0, *,
                  rfft: bool = False) -> np.ndarray:
    """Measured region (1) of the (kz, kx) plane in numpy FFT order (DC at index 0).

    With ``rfft=True`` the kx axis has ``nx // 2 + 1`` entries, matching ``rfftn`` over (Z, X).
    """
    return _mask_cached(int(nz), int(nx), float(tilt_min), float(tilt_max), bool(rfft))


def wedge_mask_3d(shape: tuple[int, int, int], tilt_min: float = -60.0, tilt_max: float = 60.0) -> np.ndarray:
    """The 2D mask broadcast over ky: shape ``(nz, ny, nx)``, numpy FFT order."""
    nz, ny, nx = shape
    return np.broadcast_to(wedge_mask_2d(nz, nx, tilt_min, tilt_max)[:, None, :], (nz, ny, nx))


def apply_wedge(volume: np.ndarray, weight_measured: float, weight_missing: float,
                tilt_min: float = -60.0, tilt_max: float = 60.0, *, workers: int = 1) -> np.ndarray:
    """Weight the measured and missing Fourier regions of ``volume`` (``[..., Z, Y, X]``)."""
    volume = np.asarray(volume, dtype=np.float32)
    nz, nx = volume.shape[-3], volume.shape[-1]
    mask = wedge_mask_2d(nz, nx, tilt_min, tilt_max, rfft=True)
    weights = (weight_measured * mask + weight_missing * (1.0 - mask)).astype(np.float32)[:, None, :]
    axes = (volume.ndim - 3, volume.ndim - 1)
    spectrum = scipy.fft.rfftn(volume, axes=axes, workers=workers)
    spectrum *= weights
    return scipy.fft.irfftn(spectrum, s=(nz, nx), axes=axes, workers=workers).astype(np.float32, copy=False)


def measured_part(volume: np.ndarray, tilt_min: float = -60.0, tilt_max: float = 60.0, **kw) -> np.ndarray:
    """Keep only what the tilt series measured (IsoNet's "wedge filter")."""
    return apply_wedge(volume, 1.0, 0.0, tilt_min, tilt_max, **kw)


def missing_part(volume: np.ndarray, tilt_min: float = -60.0, tilt_max: float = 60.0, **kw) -> np.ndarray:
    """Keep only the missing wedge (and the unmeasured corners)."""
    return apply_wedge(volume, 0.0, 1.0, tilt_min, tilt_max, **kw)
