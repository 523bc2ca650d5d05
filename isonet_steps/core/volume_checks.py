"""Is this a usable tomogram? Checks on the voxels themselves, made where a tomogram enters a step.

A tomogram from another program can hold what no later step survives: NaN or Inf voxels (every
FFT and normalisation then gives NaN), a constant or near-constant volume (the percentile
normalisation divides by P96 - P4), values so large that float32 squares and FFT power overflow,
header statistics that say something else than the data, or too few voxels on an axis. Each is
found in one pass over the data (Z slab by Z slab: a memory-mapped tomogram never becomes resident)
and refused with one line naming the file, the problem and the fix. docs/input-checks.md lists them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.columns import FIX_NONFINITE
from ..io.errors import InputError
from ..io.log import get_logger
from ..io.mrc import Header, open_memmap, read_header, release_pages

__all__ = ["VolumeStats", "TomogramCheck", "volume_stats", "check_volume", "check_tomogram", "fill_nonfinite",
           "check_halves", "check_prediction", "entering_tomogram", "recorded_fix_nonfinite", "FLOAT32_SAFE_MAX",
           "MIN_EDGE"]

#: Largest magnitude accepted: squares (variance, FFT power) of ~1e12 over 1e10 voxels stay far below float32's 3e38.
FLOAT32_SAFE_MAX = 1e12
#: A spread (std) below this fraction of the mean is lost in float32's 7 digits: the image sits on a huge offset.
NEAR_CONSTANT = 1e-5
#: Fewest voxels on any axis: the smallest box the network trains on (--cube-size 8 --crop-size 8).
MIN_EDGE = 8
#: A fraction of voxels at an integer mode's limits above this means the export clipped the data.
SATURATED = 0.01
#: Header statistics further than this fraction of the data's range from the data's are reported.
HEADER_TOLERANCE = 0.01
#: Voxels sampled (evenly strided) for the robust range.
SAMPLE = 2_000_000


@dataclass(frozen=True)
class VolumeStats:
    """What one pass over a volume found; ``minimum`` .. ``std`` are of its finite voxels only (float64)."""

    size: int
    nonfinite: int
    first_nonfinite: tuple[int, int, int] | None
    minimum: float
    maximum: float
    mean: float
    std: float
    low: float  # 4th percentile of a sample (the normalisation's lower point)
    high: float  # 96th percentile
    saturated: float  # fraction of voxels at an integer type's limits (0 for floats)


@dataclass(frozen=True)
class TomogramCheck:
    """A checked tomogram: its header and statistics, and the value its non-finite voxels are replaced by."""

    path: Path
    header: Header
    stats: VolumeStats
    fill: float | None  # None: nothing to repair (or not allowed to)


def _saturated(slab: np.ndarray) -> int:
    if not np.issubdtype(slab.dtype, np.integer):
        return 0
    info = np.iinfo(slab.dtype)
    return int(np.count_nonzero(slab == info.min) + np.count_nonzero(slab == info.max))


class _Accumulator:
    """Running count, extremes, mean and variance (Chan et al.'s merge) of the finite voxels of slabs."""

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0
        self.lo, self.hi = np.inf, -np.inf
        self.nonfinite = 0
        self.first: tuple[int, int, int] | None = None
        self.saturated = 0
        self.samples: list[np.ndarray] = []

    def add(self, slab: np.ndarray, z0: int, stride: int) -> None:
        self.saturated += _saturated(slab)
        flat = np.asarray(slab).reshape(-1)
        finite = np.isfinite(flat)
        bad = flat.size - int(np.count_nonzero(finite))
        if bad:
            if self.first is None:
                z, y, x = np.unravel_index(int(np.flatnonzero(~finite)[0]), slab.shape)
                self.first = (int(z) + z0, int(y), int(x))
            self.nonfinite += bad
            flat = flat[finite]
        self.samples.append(np.array(flat[::stride], dtype=np.float64))
        if flat.size == 0:
            return
        values = flat.astype(np.float64)  # the one float64 copy: sums of squares of float32 would lose digits
        n, mean = values.size, float(values.sum() / values.size)
        self.lo, self.hi = min(self.lo, float(flat.min())), max(self.hi, float(flat.max()))
        values -= mean
        delta, total = mean - self.mean, self.count + n
        self.mean += delta * n / total
        self.m2 += float(np.dot(values, values)) + delta * delta * self.count * n / total
        self.count = total


def volume_stats(data: np.ndarray, *, slab_voxels: int = 1 << 23) -> VolumeStats:
    """One pass over ``data`` ``[Z, Y, X]`` (an array or a memory map), slab by slab, in float64."""
    size = int(data.size)
    plane = max(1, int(np.prod(data.shape[1:])))
    step = max(1, slab_voxels // plane)
    stride = max(1, size // SAMPLE)
    acc = _Accumulator()
    for z0 in range(0, int(data.shape[0]), step):
        acc.add(np.asarray(data[z0:z0 + step]), z0, stride)
        release_pages(data)
    sample = np.concatenate(acc.samples) if acc.samples else np.empty(0)
    low, high = (np.percentile(sample, [4.0, 96.0]) if sample.size else (np.nan, np.nan))
    finite = acc.count > 0
    return VolumeStats(size=size, nonfinite=acc.nonfinite, first_nonfinite=acc.first,
                       minimum=acc.lo if finite else np.nan, maximum=acc.hi if finite else np.nan,
                       mean=acc.mean if finite else np.nan,
                       std=float(np.sqrt(acc.m2 / acc.count)) if finite else np.nan,
                       low=float(low), high=float(high), saturated=acc.saturated / max(1, size))


def _nonfinite_problem(stats: VolumeStats, what: str, fix_nonfinite: bool) -> str | None:
    if stats.nonfinite == stats.size:
        return f"every voxel of the {what} is NaN/Inf; re-reconstruct or re-export it"
    if stats.nonfinite and not fix_nonfinite:
        return (f"{what} has {stats.nonfinite} NaN/Inf voxels (the first at Z,Y,X {stats.first_nonfinite}); replace "
                "them (e.g. with the mean of the others; for tomograms, prepare-star --fix-nonfinite does that)")
    return None


def _value_problem(stats: VolumeStats, what: str) -> str | None:
    peak = max(abs(stats.minimum), abs(stats.maximum))
    if stats.maximum == stats.minimum:
        return (f"{what} is constant (every voxel = {stats.minimum:g}); it holds no image: check the right file was "
                "exported")
    if stats.std <= NEAR_CONSTANT * abs(stats.mean):
        return (f"{what} is near-constant (standard deviation {stats.std:.3g} around {stats.mean:.6g}, below float32 "
                "precision); subtract its mean (or re-export it in float32) so that the image survives")
    if stats.high == stats.low:
        return (f"{what} is near-constant: at least 92 % of its voxels equal {stats.low:g}, so the 4th and 96th "
                "percentiles that normalise it coincide; crop it to its content (e.g. IMOD trimvol) or remove padding")
    if peak > FLOAT32_SAFE_MAX:
        return (f"{what} values reach {peak:.3g}, beyond {FLOAT32_SAFE_MAX:.0e}: float32 squares and FFT power "
                "overflow; rescale it (e.g. subtract its mean and divide by its standard deviation)")
    return None


def check_volume(stats: VolumeStats, shape: tuple[int, ...], path: Path | str, what: str = "tomogram", *,
                 fix_nonfinite: bool = False, allow_constant: bool = False) -> None:
    """Refuse a volume whose voxels no step can work on: one :class:`InputError` line naming the fix."""
    if min(shape) < MIN_EDGE:
        raise InputError(f"{path}: {what} is {'x'.join(str(int(s)) for s in shape)} voxels (Z,Y,X), fewer than "
                         f"{MIN_EDGE} on an axis: too thin for any training box; give the whole reconstruction, "
                         "not a slab or projection.")
    problem = _nonfinite_problem(stats, what, fix_nonfinite)
    if problem is None and not allow_constant:
        problem = _value_problem(stats, what)
    if problem:
        raise InputError(f"{path}: {problem}.")


def _log_header_disagreement(path: Path, header: Header, stats: VolumeStats) -> None:
    """Header min/max/mean that differ from the data's are logged: nothing here reads them, but users' tools do."""
    if header.stats is None:
        return
    dmin, dmax, dmean = header.stats
    if dmax < dmin:  # MRC2014: "not determined"
        return
    scale = HEADER_TOLERANCE * max(stats.maximum - stats.minimum, 1e-30)
    data = (stats.minimum, stats.maximum, stats.mean)
    if any(not np.isfinite(h) or abs(h - d) > scale for h, d in zip(header.stats, data)):
        get_logger().warning("%s: header statistics (min %.4g, max %.4g, mean %.4g) disagree with the data (min %.4g, "
                             "max %.4g, mean %.4g); the data's are used, the header's are never read", path.name,
                             dmin, dmax, dmean, *data)


def _log_mode(path: Path, dtype: np.dtype, stats: VolumeStats) -> None:
    if dtype == np.float32:
        return
    log = get_logger()
    log.info("%s: voxels stored as %s; read as float32", path.name, dtype)
    if stats.saturated > SATURATED:
        info = np.iinfo(dtype)
        log.warning("%s: %.1f %% of the voxels sit at the %s limits (%d or %d): the export clipped the data; "
                    "re-export it as float32 or with a wider range", path.name, 100 * stats.saturated, dtype,
                    info.min, info.max)


def check_tomogram(path: str | os.PathLike, what: str = "tomogram", *, fix_nonfinite: bool = False,
                   allow_constant: bool = False) -> TomogramCheck:
    """Check a tomogram file once (memory-mapped, slab by slab); returns what later reads need.

    ``fix_nonfinite``: NaN/Inf voxels are allowed, and :attr:`TomogramCheck.fill` (the mean of the
    finite voxels) is what the caller replaces them by (:func:`fill_nonfinite`); logged.
    """
    path = Path(path)
    header = read_header(path, what)
    with open_memmap(path, what) as volume:
        stats = volume_stats(volume.data)
        dtype = np.dtype(volume.data.dtype)
    check_volume(stats, header.shape, path, what, fix_nonfinite=fix_nonfinite, allow_constant=allow_constant)
    _log_mode(path, dtype, stats)
    _log_header_disagreement(path, header, stats)
    fill = None
    if stats.nonfinite:
        fill = stats.mean
        get_logger().warning("%s: %d NaN/Inf voxels replaced by the mean of the others, %.6g (--fix-nonfinite)",
                             path.name, stats.nonfinite, fill)
    return TomogramCheck(path=path, header=header, stats=stats, fill=fill)


class _Filled:
    """A read-only view of a (memory-mapped) volume whose every read has its NaN/Inf voxels set to ``fill``.

    Enough of the array interface for the readers that slice a tomogram (extract's boxes, the wedge
    check's crop, chunked deconvolution): a repaired tomogram is never copied whole.
    """

    def __init__(self, data: np.ndarray, fill: float):
        self.data, self.fill = data, fill
        self.shape, self.ndim, self.dtype, self.size = data.shape, data.ndim, np.dtype(np.float32), data.size

    def __getitem__(self, key) -> np.ndarray:
        part = np.array(self.data[key], dtype=np.float32)
        part[~np.isfinite(part)] = self.fill
        return part

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[...]
        return whole if dtype is None else whole.astype(dtype, copy=False)

    def __len__(self) -> int:
        return int(self.shape[0])


def fill_nonfinite(data: np.ndarray, fill: float | None):
    """``data`` itself when ``fill`` is None, else a view of it whose NaN/Inf voxels read as ``fill``."""
    return data if fill is None else _Filled(data, fill)


def recorded_fix_nonfinite(row: dict) -> bool | None:
    """A tomograms.star row's --fix-nonfinite choice as prepare-star recorded it; None: a STAR made elsewhere."""
    value = row.get(FIX_NONFINITE)
    if value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() in ("", "None"):
        return None
    try:
        return bool(int(float(value)))
    except ValueError:
        raise InputError(f"{FIX_NONFINITE} {value!r} is not 0 or 1; fix the STAR or rerun prepare-star."
                         ) from None


def entering_tomogram(path: str | os.PathLike, row: dict, what: str = "tomogram") -> float | None:
    """Check a tomogram a step reads from a STAR row; returns the value its NaN/Inf voxels read as (or None).

    prepare-star checked the tomograms of its STARs (and recorded rlnFixNonfinite): those are checked
    again only to repair them. A STAR made elsewhere has no such record: each tomogram is checked
    here. Half tomograms (``what`` other than "tomogram") are read only by some modes and always
    checked by the step that reads them.
    """
    choice = recorded_fix_nonfinite(row)
    if choice is False and what == "tomogram":
        return None
    return check_tomogram(path, what, fix_nonfinite=bool(choice)).fill


def check_halves(first: str | os.PathLike, second: str | os.PathLike, what: str = "half tomogram") -> None:
    """Two halves of one reconstruction must share shape and voxel size."""
    a, b = read_header(first, what), read_header(second, what)
    if a.shape != b.shape:
        raise InputError(f"{second}: {what} shape {b.shape} differs from {first}'s {a.shape} (Z,Y,X); give the two "
                         "halves of one reconstruction.")
    if a.voxel_size and b.voxel_size and abs(a.voxel_size - b.voxel_size) > 1e-3 * a.voxel_size:
        raise InputError(f"{second}: {what} voxel size {b.voxel_size:.4g} Å differs from {first}'s "
                         f"{a.voxel_size:.4g} Å; give the two halves of one reconstruction (same voxel size).")


def check_prediction(corrected: np.ndarray, out: str | os.PathLike, source: str | os.PathLike) -> None:
    """A corrected tomogram that is non-finite or constant is an error, not a file: nothing is written."""
    stats = volume_stats(corrected)
    what = f"the corrected tomogram of {source}"
    problem = (f"{what} has {stats.nonfinite} NaN/Inf voxels" if stats.nonfinite
               else _value_problem(stats, what))
    if problem is None:
        return
    raise InputError(f"{out}: {problem.split(';')[0]}, so it was not written; the model is broken (its training "
                     "diverged: see refine's log and loss plot; retrain with a lower --learning-rate or --precision "
                     "float32) or the input is near-constant.")
