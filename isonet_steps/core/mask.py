"""Sample masks: where in a tomogram the subtomograms for training should come from (reference §4).

Training cubes drawn from empty ice or vacuum teach the network nothing, so IsoNet keeps voxels
that are both *dense* (dark after smoothing, or near something dark) and *structured* (high
local standard deviation). Both criteria are evaluated on a 2×-binned copy for speed and the
result is blown back up to the tomogram's shape. An optional boundary model (rlnMaskBoundary, an
IMOD polygon read by :mod:`isonet_steps.io.imod`) then limits the mask in XY and Z; unlike IsoNet,
which applied it on the binned copy, it is applied at full resolution (exact to the voxel).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..io.errors import InputError

__all__ = ["bin2", "density_criterion", "local_std", "std_criterion", "upsample_nearest", "make_mask",
           "check_mask_settings", "split_boundary", "polygon_inside", "apply_boundary", "boundary_mask"]

#: A criterion asked to keep more than this percentage of voxels is skipped (IsoNet's rule).
SKIP_ABOVE = 99.8
#: The last two boundary points give the Z range when their z differ by at least this many (full-size)
#: voxels: IsoNet's 5 voxels of its 2x-binned copy.
SLAB_MIN_DZ = 10.0


def check_mask_settings(density_percentage: float, std_percentage: float, patch_size: int,
                        z_crop: float | None) -> None:
    """One-line errors for settings outside their ranges (names the option)."""
    for name, value in (("--density-percentage", density_percentage), ("--std-percentage", std_percentage)):
        if not (0.0 <= value <= 100.0):
            raise InputError(f"{name} {value:g} must be a percentage in 0..100 (100 switches the criterion off).")
    if patch_size < 1:
        raise InputError(f"--patch-size {patch_size} must be at least 1 voxel (IsoNet default 4).")
    if z_crop is not None and not (0.0 <= z_crop < 0.5):
        raise InputError(f"--z-crop {z_crop:g} must be a fraction in [0, 0.5): the share of Z removed at the top and "
                         "at the bottom.")


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
    so every output voxel (also the last plane of odd sizes) gets a value.
    """
    index = [(np.arange(n) * m) // n for n, m in zip(shape, small.shape)]
    return small[np.ix_(*index)]


def split_boundary(points: np.ndarray, nz: int, what: str = "boundary model") -> tuple[int, int, np.ndarray]:
    """IsoNet's reading of a boundary model: the Z sections kept and the XY polygon.

    If the last two points' z differ by at least :data:`SLAB_MIN_DZ`, they give the Z range (the
    sections between them, both included, clipped to the volume) and the other points give the
    polygon; else every point is a polygon vertex and all of Z is kept. z is rounded to the nearest
    section (``floor(z + 0.5)``): IMOD stores a point drawn on section k as z = k (its Z axis runs
    from -0.5), so sections come out right whatever the model's Z-origin flag says.

    Parameters
    ----------
    points : (N, 3) x, y, z in voxels of the tomogram, in file order.
    nz : number of Z sections of the tomogram.
    what : name of the model for the messages (its path).

    Returns
    -------
    (first, last, polygon) : sections first..last (inclusive; first > last when the range misses the
        volume) and the polygon's (n, 2) x, y vertices; n == 0 means the Z range alone.

    Raises
    ------
    InputError : no points, or a polygon of 1 or 2 vertices.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    fix = "fix rlnMaskBoundary or set it to None"
    if len(pts) == 0:
        raise InputError(f"{what}: boundary model has no points; draw a polygon (3 or more points) in 3dmod, or {fix}.")
    if len(pts) >= 2 and abs(pts[-1, 2] - pts[-2, 2]) >= SLAB_MIN_DZ:
        sections = np.floor(pts[-2:, 2] + 0.5).astype(int)
        first, last = max(0, int(sections.min())), min(nz - 1, int(sections.max()))
        polygon, note = pts[:-2, :2], " besides the two Z-range points"
    else:
        first, last = 0, nz - 1
        polygon, note = pts[:, :2], f" (last two z differ by < {SLAB_MIN_DZ:g}, so no Z range)"
    if 0 < len(polygon) < 3:
        raise InputError(f"{what}: boundary model has {len(polygon)} polygon point(s){note}; "
                         f"a polygon needs at least 3; {fix}.")
    return first, last, polygon


def polygon_inside(shape_yx: tuple[int, int], polygon: np.ndarray) -> np.ndarray:
    """Voxels of a [Y, X] grid whose centres lie inside ``polygon`` (even-odd rule), bool.

    Voxel (y, x) spans [x, x+1) × [y, y+1) in IMOD coordinates, so its centre (x + 0.5, y + 0.5) is
    tested: a polygon drawn through integer corners keeps exactly the voxels it encloses. A ray to
    +x is cast from every centre and the polygon's edges (closing edge included) that it crosses are
    counted, one edge at a time over all rows it spans; edges are half-open in y so that a vertex
    is never counted twice.
    """
    ny, nx = shape_yx
    ys = np.arange(ny) + 0.5
    xs = np.arange(nx) + 0.5
    inside = np.zeros((ny, nx), dtype=bool)
    vertices = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    x0, y0 = vertices[:, 0], vertices[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    for ax, ay, bx, by in zip(x0, y0, x1, y1):
        if ay == by:
            continue  # a horizontal edge never crosses a horizontal ray
        start, stop = np.searchsorted(ys, min(ay, by), "left"), np.searchsorted(ys, max(ay, by), "left")
        if start >= stop:
            continue
        cross_x = ax + (ys[start:stop] - ay) * (bx - ax) / (by - ay)
        inside[start:stop] ^= xs[None, :] < cross_x[:, None]
    return inside


def apply_boundary(mask: np.ndarray, first: int, last: int, inside: np.ndarray | None) -> np.ndarray:
    """Zero ``mask`` [Z, Y, X] in place outside sections first..last and, on those, outside ``inside``
    [Y, X] (None: whole sections). Works slab by slab, so no second full-size array is made.
    """
    mask[:max(first, 0)] = 0
    mask[max(last + 1, 0):] = 0
    if inside is not None and first <= last:
        mask[first:last + 1] *= inside.astype(mask.dtype)
    return mask


def boundary_mask(shape: tuple[int, int, int], points: np.ndarray, what: str = "boundary model") -> np.ndarray:
    """Voxels of a [Z, Y, X] volume kept by a boundary model (rule: :func:`split_boundary`), bool."""
    first, last, polygon = split_boundary(points, shape[0], what)
    inside = polygon_inside(shape[1:], polygon) if len(polygon) else None
    return apply_boundary(np.ones(shape, dtype=bool), first, last, inside)


def make_mask(
    volume: np.ndarray,
    *,
    density_percentage: float = 50.0,
    std_percentage: float = 50.0,
    patch_size: int = 4,
    z_crop: float | None = None,
    boundary: np.ndarray | None = None,
) -> np.ndarray:
    """IsoNet's sample mask of a tomogram (dark = dense), int8 0/1 of the volume's shape.

    Parameters
    ----------
    volume : tomogram [Z, Y, X], protein dark (deconvolved is better).
    density_percentage : % of (binned) voxels kept by the density criterion; > 99.8 skips it.
    std_percentage : % kept by the local-std criterion; > 99.8 skips it.
    patch_size : s: Gaussian σ = s/2 and windows of 2s+1 binned voxels.
    z_crop : fraction of Z removed at the top and at the bottom (None or 0: none).
    boundary : (N, 3) x, y, z points of a boundary model in voxels of ``volume`` (None: no
        boundary); applied at full resolution after the rest, see :func:`split_boundary`.
    """
    check_mask_settings(density_percentage, std_percentage, patch_size, z_crop)
    limits = split_boundary(boundary, np.shape(volume)[0]) if boundary is not None else None
    binned = bin2(volume)
    smoothed = ndimage.gaussian_filter(binned, patch_size / 2.0, mode="reflect")
    window = 2 * patch_size + 1
    keep: np.ndarray = np.ones(binned.shape, dtype=bool)  # numpy's stubs would type it zero-dimensional
    if density_percentage <= SKIP_ABOVE:
        keep &= density_criterion(smoothed, density_percentage, window)
    if std_percentage <= SKIP_ABOVE:
        keep &= std_criterion(smoothed, std_percentage, window)
    if z_crop:
        nz = keep.shape[0]
        keep[: int(z_crop * nz)] = False
        keep[int((1.0 - z_crop) * nz):] = False
    mask = upsample_nearest(keep.astype(np.int8), np.shape(volume))
    if limits is not None:
        first, last, polygon = limits
        apply_boundary(mask, first, last, polygon_inside(mask.shape[1:], polygon) if len(polygon) else None)
    return mask
