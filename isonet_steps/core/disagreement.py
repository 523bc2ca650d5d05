"""Where two independently corrected halves disagree: a local correlation map.

Two halves of the data (gold-standard half networks, or the even/odd halves of noise2noise) carry
independent noise. Where the network restores real structure, both corrected halves show it and
correlate locally; where it invents structure from noise, each half invents its own and the local
correlation drops towards zero. The map is the Pearson correlation of the two volumes in a sliding
cubic window (``window`` voxels on a side), computed with box filters, so it costs a few passes over
the volume whatever the window.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..io.errors import InputError

__all__ = ["local_correlation", "slab_local_correlation", "disagreement_summary"]


def _check_same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise InputError(f"the halves differ in shape ({a.shape} and {b.shape}); give two halves of the same tomogram.")


def _box_mean(volume: np.ndarray, window: int) -> np.ndarray:
    return ndimage.uniform_filter(volume, size=window, mode="reflect")


def local_correlation(a: np.ndarray, b: np.ndarray, window: int = 9, *, smooth: float = 0.0) -> np.ndarray:
    """Pearson correlation of ``a`` and ``b`` in a ``window``-voxel cube around every voxel.

    ``smooth`` (voxels, Gaussian sigma) low-passes both volumes first, so the map follows the
    resolution the user looks at rather than pixel noise. Flat windows (no variance in either
    volume) get 0: nothing there agrees. Returns float32, values in [-1, 1].
    """
    _check_same_shape(a, b)
    if window < 2:
        raise ValueError(f"window {window} is below 2 voxels; give a window of 2 or more")
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if smooth > 0:
        a = ndimage.gaussian_filter(a, smooth)
        b = ndimage.gaussian_filter(b, smooth)
    # centre globally first: the box-filter moments then lose no precision to a large offset
    a = a - a.mean()
    b = b - b.mean()
    mean_a, mean_b = _box_mean(a, window), _box_mean(b, window)
    cov = _box_mean(a * b, window) - mean_a * mean_b
    var_a = np.maximum(_box_mean(a * a, window) - mean_a**2, 0.0)
    var_b = np.maximum(_box_mean(b * b, window) - mean_b**2, 0.0)
    denom = np.sqrt(var_a * var_b)
    floor = 1e-12 * max(float(np.mean(var_a)), float(np.mean(var_b)), 1e-300)
    corr = np.where(denom > floor, cov / np.maximum(denom, floor), 0.0)
    return np.clip(corr, -1.0, 1.0).astype(np.float32)


def slab_local_correlation(a: np.ndarray, b: np.ndarray, z: int, window: int = 9, *,
                           smooth: float = 0.0) -> np.ndarray:
    """The local correlation map's XY section at ``z``, computed from the slab around it only.

    The report shows a few sections of tomograms that may not fit in memory twice in float64;
    the section depends only on the ``window`` (plus the smoothing's reach) slices around ``z``.
    """
    _check_same_shape(a, b)
    reach = window // 2 + 1 + int(np.ceil(4 * smooth))
    lo, hi = max(0, z - reach), min(a.shape[0], z + reach + 1)
    slab = local_correlation(np.asarray(a[lo:hi]), np.asarray(b[lo:hi]), window, smooth=smooth)
    return slab[z - lo]


def disagreement_summary(corr: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """Median local correlation and the fraction of voxels below 0.2 (inside ``mask`` if given)."""
    values = corr[mask > 0] if mask is not None else corr.ravel()
    if values.size == 0:
        return {"median": float("nan"), "fraction_below_0.2": float("nan")}
    return {"median": float(np.median(values)), "fraction_below_0.2": float(np.mean(values < 0.2))}
