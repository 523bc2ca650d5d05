"""Sample masks: where in a tomogram the subtomograms for training should come from (reference §4).

Training cubes drawn from empty ice or vacuum teach the network nothing, so IsoNet keeps voxels
that are both *dense* (dark after smoothing, or near something dark) and *structured* (high
local standard deviation). Both criteria are evaluated on a 2×-binned copy for speed and the
result is blown back up to the tomogram's shape. IMOD polygon boundaries (rlnMaskBoundary) are
not supported yet.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .errors import InputError

__all__ = ["bin2", "density_criterion", "local_std", "std_criterion", "upsample_nearest", "make_mask",
           "check_mask_settings"]

#: A criterion asked to keep more than this percentage of voxels is skipped (IsoNet's rule).
SKIP_ABOVE = 99.8


def check_mask_settings(density_percentage: float, std_percentage: float, patch_size: int,
                        z_crop: float | None) -> None:
    """One-line errors for settings outside their ranges (names the option)."""
    for name, value in (("--density-percentage", density_percentage), ("--std-percentage", std_percentage)):
        if not (0.0 <= value <= 100.0):
            raise InputError(f"{name} {value:g} must be a percentage in 0..100 (100 switches the criterion off).")
    if patch_size < 1:
        raise InputError(f"--patch-size {patch_size} must be at least 1 voxel (IsoNet default 4).")
    if z_crop is not None and not (0.0 <= z_crop < 0.5):
        raise InputError(f"--z-crop {z_crop:g} must be a fraction in [0, 0.5): the share of Z removed at the top and at the bottom.")


def bin2(volume: np.ndarray) -> np.ndarray:
    """Downsample 2× (to ``n // 2`` per axis) with anti-aliasing.

    Gaussian pre-smoothing with σ = (factor - 1)/2 per axis, then linear interpolation at the
    centres of the new voxels (for even sizes: the mean of each pair), float32.
    """
    vol = np.asarray(volume, dtype=np.float32)
    shape = tuple(max(1, n // 2) for n in vol.shape)
    sigma = [max(0.0, (n / m - 1.0) / 2.0) for n, m in zip(vol.shape, shape)]
    smooth = ndimage.gaussian_filter(vol, sigma, mode="mirror")
    return ndimage.zoom(smooth, [m / n for n, m in zip(vol.shape, shape)], order=1, grid_mode=True, mode="nearest")


def density_criterion(smoothed: np.ndarray, percentage: float, window: int) -> np.ndarray:
    """Voxels within ``window`` of the darkest ``percentage`` % (max filter of the negated density)."""
    near_dark = ndimage.maximum_filter(-smoothed, size=window, mode="reflect")
    return near_dark > np.percentile(near_dark, 100.0 - percentage)


def local_std(volume: np.ndarray, window: int) -> np.ndarray:
    """Standard deviation over a ``window``³ box around each voxel, using only voxels inside the volume."""
    x = np.asarray(volume, dtype=np.float64)
    x = x - x.mean()  # variance is shift-free; centring keeps the sums well conditioned
    count = ndimage.uniform_filter(np.ones_like(x), size=window, mode="constant")
    mean = ndimage.uniform_filter(x, size=window, mode="constant") / count
    mean_sq = ndimage.uniform_filter(x * x, size=window, mode="constant") / count
    return np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))


def std_criterion(smoothed: np.ndarray, percentage: float, window: int) -> np.ndarray:
    """The ``percentage`` % of voxels with the highest local standard deviation."""
    std = local_std(smoothed, window)
    return std > np.percentile(std, 100.0 - percentage)


def upsample_nearest(small: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Nearest-neighbour enlargement to ``shape``: voxel i takes small[floor(i·m/n)] on each axis,
    so every output voxel (also the last plane of odd sizes) gets a value."""
    index = [(np.arange(n) * m) // n for n, m in zip(shape, small.shape)]
    return small[np.ix_(*index)]


def make_mask(
    volume: np.ndarray,
    *,
    density_percentage: float = 50.0,
    std_percentage: float = 50.0,
    patch_size: int = 4,
    z_crop: float | None = None,
) -> np.ndarray:
    """IsoNet's sample mask of a tomogram (dark = dense), int8 0/1 of the volume's shape.

    Parameters
    ----------
    volume : tomogram [Z, Y, X], protein dark (deconvolved is better).
    density_percentage : % of (binned) voxels kept by the density criterion; > 99.8 skips it.
    std_percentage : % kept by the local-std criterion; > 99.8 skips it.
    patch_size : s: Gaussian σ = s/2 and windows of 2s+1 binned voxels.
    z_crop : fraction of Z removed at the top and at the bottom (None or 0: none).
    """
    check_mask_settings(density_percentage, std_percentage, patch_size, z_crop)
    binned = bin2(volume)
    smoothed = ndimage.gaussian_filter(binned, patch_size / 2.0, mode="reflect")
    window = 2 * patch_size + 1
    keep = np.ones(binned.shape, dtype=bool)
    if density_percentage <= SKIP_ABOVE:
        keep &= density_criterion(smoothed, density_percentage, window)
    if std_percentage <= SKIP_ABOVE:
        keep &= std_criterion(smoothed, std_percentage, window)
    if z_crop:
        nz = keep.shape[0]
        keep[: int(z_crop * nz)] = False
        keep[int((1.0 - z_crop) * nz):] = False
    return upsample_nearest(keep.astype(np.int8), np.shape(volume))
