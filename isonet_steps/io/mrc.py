"""MRC volume I/O: careful reading, atomic writing, voxel size kept.

Every volume is a float32 numpy array indexed ``[Z, Y, X]`` (Z = beam, Y = tilt axis). Problems
with a file raise :class:`~isonet_steps.io.errors.InputError` with one line naming the file, the
problem and the fix. Writes go to a temporary name in the destination folder and are renamed in
place, so a crash never leaves a half-written MRC behind.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np

from .atomic import atomic_path, ensure_writable_folder
from .errors import InputError

__all__ = [
    "Volume",
    "read_volume",
    "read_header",
    "open_memmap",
    "write_volume",
    "new_memmap",
    "check_finite",
    "release_pages",
]


@dataclass(frozen=True)
class Volume:
    """A 3D array ``[Z, Y, X]`` with its voxel size in Å (0.0 when the header does not say)."""

    data: np.ndarray
    voxel_size: float


@dataclass(frozen=True)
class Header:
    """Shape ``(nz, ny, nx)`` and voxel size in Å of an MRC file, read without its data.

    ``stats``: the header's (min, max, mean), as written by whatever made the file; reported
    when they disagree with the data (core/volume_checks.py), never used.
    """

    shape: tuple[int, int, int]
    voxel_size: float
    stats: tuple[float, float, float] | None = None


def _require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(f"{path}: {what} not found; check the path (and the STAR file that names it).")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a {what} MRC file; give the path of an .mrc file.")


def _voxel_size(mrc) -> float:
    vs = mrc.voxel_size
    x = float(vs.x)
    return x if np.isfinite(x) and x > 0 else 0.0


def _why_no_data(path: Path, mrc) -> str:
    """Say "truncated" when the header promises more bytes than the file holds."""
    try:
        h = mrc.header
        itemsize = {0: 1, 1: 2, 2: 4, 3: 4, 4: 8, 6: 2, 12: 2}.get(int(h.mode), 0)
        expected = int(h.nx) * int(h.ny) * int(h.nz) * itemsize
        held = path.stat().st_size - 1024 - int(h.nsymbt)
        if itemsize and 0 <= held < expected:
            return f"truncated MRC (header promises {expected} bytes of data, the file holds {held})"
    except Exception:  # noqa: BLE001 - only for the wording of the message
        pass
    return "not a readable MRC file (no data block)"


@contextlib.contextmanager
def _opened(path: Path, what: str, *, header_only: bool = False, mmap: bool = False) -> Iterator:
    """Open an MRC leniently about header oddities from other software, strictly about data."""
    _require_file(path, what)
    opener = mrcfile.mmap if mmap else mrcfile.open
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            kwargs = {"mode": "r", "permissive": True}
            if header_only:
                kwargs["header_only"] = True
                opener = mrcfile.open
            with opener(str(path), **kwargs) as mrc:
                if not header_only and mrc.data is None:
                    raise InputError(f"{path}: {_why_no_data(path, mrc)}; re-copy or re-export the {what} as MRC.")
                yield mrc
    except InputError:
        raise
    except (ValueError, OSError, EOFError) as exc:
        reason = " ".join(str(exc).split())
        if "expected" in reason.lower() and "bytes" in reason.lower():
            problem = f"truncated MRC ({reason})"
        else:
            problem = f"not a readable MRC file ({reason})"
        raise InputError(f"{path}: {problem}; re-copy or re-export the {what}.") from None


def _check_shape(path: Path, shape: tuple[int, ...], what: str) -> None:
    if len(shape) != 3 or min(shape) < 2:
        raise InputError(
            f"{path}: {what} must be a 3D volume but has shape {tuple(int(s) for s in shape)} "
            f"(Z, Y, X); give a 3D tomogram, not an image or image stack."
        )


def check_finite(data: np.ndarray, path: Path | str, what: str = "volume") -> None:
    """Refuse NaN or Inf voxels: they poison every FFT and normalisation downstream."""
    if not np.isfinite(data).all():
        bad = int(data.size - np.count_nonzero(np.isfinite(data)))
        raise InputError(
            f"{path}: {what} has {bad} NaN/Inf voxels; fix or re-reconstruct the {what} "
            f"(e.g. replace them with the mean) before running this step."
        )


def read_header(path: str | os.PathLike, what: str = "tomogram") -> Header:
    """Shape and voxel size of an MRC without reading its voxels."""
    path = Path(path)
    with _opened(path, what, header_only=True) as mrc:
        h = mrc.header
        shape = (int(h.nz), int(h.ny), int(h.nx))
        _check_shape(path, shape, what)
        stats = (float(h.dmin), float(h.dmax), float(h.dmean))
        return Header(shape=shape, voxel_size=_voxel_size(mrc), stats=stats)


def read_volume(
    path: str | os.PathLike,
    what: str = "tomogram",
    *,
    allow_constant: bool = False,
    dtype=np.float32,
    fill_nonfinite: float | None = None,
) -> Volume:
    """Read a 3D MRC into memory as float32, with checks that give one-line errors.

    Parameters
    ----------
    path : path of the MRC file.
    what : what the file is, for the messages ("tomogram", "mask", ...).
    allow_constant : accept a volume whose voxels are all equal (masks may be).
    fill_nonfinite : the value NaN/Inf voxels are set to (the user's --fix-nonfinite choice,
        core/volume_checks.py); None refuses them.
    """
    path = Path(path)
    with _opened(path, what) as mrc:
        _check_shape(path, mrc.data.shape, what)
        data = np.asarray(mrc.data, dtype=dtype).copy()
        voxel_size = _voxel_size(mrc)
    if fill_nonfinite is not None:
        data[~np.isfinite(data)] = fill_nonfinite
    check_finite(data, path, what)
    if not allow_constant and data.size and float(data.max()) == float(data.min()):
        raise InputError(
            f"{path}: {what} is constant (every voxel = {float(data.flat[0]):g}); "
            f"it holds no image — check that the right file was exported."
        )
    return Volume(data=data, voxel_size=voxel_size)


@contextlib.contextmanager
def open_memmap(path: str | os.PathLike, what: str = "tomogram") -> Iterator[Volume]:
    """Memory-map a large MRC read-only; the array is valid inside the ``with`` block only."""
    path = Path(path)
    with _opened(path, what, mmap=True) as mrc:
        _check_shape(path, mrc.data.shape, what)
        yield Volume(data=mrc.data, voxel_size=_voxel_size(mrc))


def write_volume(
    path: str | os.PathLike, data: np.ndarray, voxel_size: float, *, dtype=np.float32
) -> Path:
    """Write ``data`` to ``path`` atomically (temporary name, then rename) with ``voxel_size`` Å.

    Masks are written as int8 (MRC mode 0); mrcfile would widen uint8 to uint16.
    """
    path = Path(path)
    if np.dtype(dtype) == np.uint8:
        dtype = np.int8
    ensure_writable_folder(path)
    with atomic_path(path) as tmp:
        with mrcfile.new(str(tmp), overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(data, dtype=dtype))
            mrc.voxel_size = float(voxel_size) if voxel_size and voxel_size > 0 else 1.0
            mrc.update_header_stats()
    return path


def _update_header_stats_by_slab(mrc) -> None:
    """``mrc.update_header_stats()`` for huge memory maps: mrcfile's version makes a full-size
    temporary for the std and leaves every page resident; this streams Z slabs instead.
    """
    data = mrc.data
    if data.size == 0:
        mrc.reset_header_stats()
        return
    step = max(1, (1 << 24) // max(1, int(data[0].size)))
    lo, hi, count, mean, m2 = np.inf, -np.inf, 0, 0.0, 0.0
    for z0 in range(0, data.shape[0], step):
        slab = np.asarray(data[z0:z0 + step], dtype=np.float64)
        n, slab_mean = slab.size, float(slab.mean())
        lo, hi = min(lo, float(slab.min())), max(hi, float(slab.max()))
        delta, total = slab_mean - mean, count + n
        mean += delta * n / total
        m2 += float(np.square(slab - slab_mean).sum()) + delta * delta * count * n / total
        count = total
        del slab
        release_pages(data)
    mrc.header.dmin, mrc.header.dmax = np.float32(lo), np.float32(hi)
    mrc.header.dmean, mrc.header.rms = np.float32(mean), np.float32(np.sqrt(m2 / max(1, count)))


@contextlib.contextmanager
def new_memmap(
    path: str | os.PathLike, shape: tuple[int, int, int], voxel_size: float, *, dtype=np.float32
) -> Iterator[np.ndarray]:
    """Create a large MRC as a writable memory map; it appears at ``path`` only if the block succeeds.

    Use for outputs too big for memory: fill the yielded array inside the ``with`` block.
    """
    path = Path(path)
    ensure_writable_folder(path)
    mode = {np.dtype(np.float32): 2, np.dtype(np.int8): 0, np.dtype(np.int16): 1}[np.dtype(dtype)]
    with atomic_path(path) as tmp:
        with mrcfile.new_mmap(str(tmp), shape=tuple(int(s) for s in shape), mrc_mode=mode, overwrite=True) as mrc:
            mrc.voxel_size = float(voxel_size) if voxel_size and voxel_size > 0 else 1.0
            yield mrc.data
            _update_header_stats_by_slab(mrc)
            mrc.flush()


def release_pages(array: np.ndarray) -> None:
    """Drop the pages of a memory-mapped array from this process's resident set.

    Pages of a file mapping count in the process's RSS once touched, so streaming through a
    tomogram larger than RAM would look (and, under a memory limit, count) as if it were all
    loaded. ``MADV_DONTNEED`` on a shared file mapping only unmaps: written data stays in the page
    cache and reaches the file; later reads fault pages back in. No-op for ordinary arrays.
    """
    base: object = array
    while base is not None and not isinstance(base, np.memmap):
        base = getattr(base, "base", None)
    handle = getattr(base, "_mmap", None)
    if handle is not None and hasattr(mmap, "MADV_DONTNEED") and not handle.closed:
        handle.madvise(mmap.MADV_DONTNEED)
