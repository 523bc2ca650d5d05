"""Chunked CTF deconvolution with bounded memory: the same voxels as :mod:`.deconv_whole`.

Why chunks alone are not enough: the filter's kernel is mostly a few voxels wide, but its narrow
high-pass (``highpassnyquist`` = 2 % of Nyquist) and its peak at low frequencies give it a weak
tail about 100 voxels long. Over a smooth background that tail adds up, so overlapping chunks of
any practical size differ visibly from the whole-volume result (correlation ~0.95-0.99 in our
tests). The filter is therefore split, ``W = W·T + W·(1-T)`` (``ctf.split_taper``):

- ``W·T`` (below a quarter of Nyquist) is applied *exactly* to the whole volume: only the
  Fourier coefficients with ``|k| < n/8`` per axis are needed, about 1/64 of them, gathered by
  streaming Z slabs (real FFT along X, FFT along Y, keep the low columns; then FFT along Z);
- ``W·(1-T)`` has a compact kernel and is applied chunk by chunk (cubic chunks padded by the
  overlap, mirrored at the volume faces, filter built for the chunk's own grid, core kept).

Both parts see the volume mirrored by ``EDGE_PAD`` voxels per face, like whole mode.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import scipy.fft

from ..io.errors import InputError
from ..io.log import get_logger, progress
from .ctf import (
    EDGE_PAD,
    MIN_CHUNK_SIZE,
    SPLIT_END,
    CtfParams,
    Moments,
    axis_radius,
    fft_workers,
    filter_values,
    mirror_indices,
    restore_scale,
    slab_step,
    split_taper,
    wiener_filter,
    wiener_profile,
)
from .deconv_whole import deconv_volume


def chunk_layout(shape: tuple[int, ...], chunk_size: int, overlap_rate: float) -> tuple[int, int, list[int]]:
    """Cubic chunk geometry: (crop edge, pad before the core, chunks per axis).

    Each chunk is a cube of ``crop >= chunk_size·(1 + overlap_rate)`` voxels (rounded up to a fast
    FFT length); its central ``chunk_size`` cube, starting ``pad`` voxels in, is kept.
    """
    if chunk_size < MIN_CHUNK_SIZE:
        raise InputError(f"--chunk-size {chunk_size} is too small; give at least {MIN_CHUNK_SIZE} voxels "
                         f"(e.g. 200-500), or leave it out to deconvolve the whole tomogram at once.")
    if not (0 <= overlap_rate <= 1):
        raise InputError(f"--overlap-rate {overlap_rate:g} must be a fraction in 0..1 (IsoNet default 0.25).")
    crop = scipy.fft.next_fast_len(int(chunk_size * (1 + overlap_rate)), real=True)
    pad = (crop - chunk_size) // 2
    counts = [max(1, -(-int(n) // chunk_size)) for n in shape]
    return crop, pad, counts


class _LowBand:
    """The whole-volume low-frequency part of the filter, from streamed Z slabs.

    Works on the volume mirrored by ``pad`` voxels per face (shape ``n + 2·pad``), like whole
    mode, and keeps ``|k_axis| < SPLIT_END·(N_axis//2)`` along each axis.
    """

    def __init__(self, shape: tuple[int, int, int], pad: int, workers: int) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.pad = pad
        self.padded = tuple(n + 2 * pad for n in self.shape)
        self.workers = workers
        kmax = [max(0, math.ceil(SPLIT_END * max(1, n // 2)) - 1) for n in self.padded]
        self.k0 = self._kept(kmax[0], self.padded[0])
        self.k1 = self._kept(kmax[1], self.padded[1])
        self.cols = kmax[2] + 1
        self.coeffs: np.ndarray = np.zeros((self.padded[0], self.k1.size, self.cols), np.complex64)

    @staticmethod
    def _kept(kmax: int, n: int) -> np.ndarray:
        """FFT indices of frequencies 0..kmax and -kmax..-1 (kmax < n/2, so no overlap)."""
        return np.concatenate([np.arange(kmax + 1), np.arange(n - kmax, n)]).astype(int)

    def padded_rows(self, z0: int, z1: int) -> np.ndarray:
        """Source Z indices of padded rows z0..z1-1."""
        return mirror_indices(z0 - self.pad, z1 - z0, self.shape[0])

    def add_rows(self, z0: int, rows: np.ndarray) -> None:
        """Partial forward transform of padded rows starting at ``z0`` (``rows``: [t, Y, X] unpadded)."""
        if self.pad:
            rows = np.pad(rows, ((0, 0), (self.pad, self.pad), (self.pad, self.pad)), mode="symmetric")
        x = scipy.fft.rfft(rows, axis=2, workers=self.workers)[:, :, :self.cols]
        y = scipy.fft.fft(x, axis=1, workers=self.workers)
        self.coeffs[z0:z0 + rows.shape[0]] = y[:, self.k1, :]

    def filter(self, profile_low: np.ndarray) -> None:
        """Finish the transform along Z, apply ``profile_low`` on the padded grid, invert along Z."""
        n0, n1, n2 = self.padded
        spec = scipy.fft.fft(self.coeffs, axis=0, workers=self.workers, overwrite_x=True)[self.k0]
        self.coeffs = np.empty(0, np.complex64)  # free it before the inverse allocates
        u0 = axis_radius(n0)[self.k0]
        u1 = axis_radius(n1)[self.k1]
        u2 = axis_radius(n2, True)[:self.cols]
        spec *= filter_values(u0, u1, u2, profile_low)
        full = np.zeros((n0, self.k1.size, self.cols), dtype=np.complex64)
        full[self.k0] = spec
        del spec
        coeffs = scipy.fft.ifft(full, axis=0, workers=self.workers, overwrite_x=True)
        self.coeffs = coeffs.astype(np.complex64, copy=False)

    def voxels(self, z0: int, z1: int) -> np.ndarray:
        """The filtered low part at (unpadded) Z slices z0..z1-1, float32 [z, Y, X]."""
        _, n1, n2 = self.padded
        p = self.pad
        part = np.zeros((z1 - z0, n1, self.cols), dtype=np.complex64)
        part[:, self.k1] = self.coeffs[z0 + p:z1 + p]
        part = scipy.fft.ifft(part, axis=1, workers=self.workers, overwrite_x=True)
        out = scipy.fft.irfft(part, n=n2, axis=2, workers=self.workers)
        return np.asarray(out[:, p:p + self.shape[1], p:p + self.shape[2]], dtype=np.float32)


def _read_chunk(src: np.ndarray, starts: tuple[int, ...], crop: int,
                release: Callable[[], None]) -> np.ndarray:
    """A crop³ cube of ``src`` starting at ``starts`` (may be negative), mirrored at the faces.

    Read a few Z planes at a time, calling ``release`` in between: each row of a memory-mapped
    chunk faults in (and maps, with the kernel's fault-around) far more of the file than the row
    itself, so a whole chunk read at once could map gigabytes.
    """
    index = [mirror_indices(s, crop, n) for s, n in zip(starts, src.shape)]
    lo = [int(i.min()) for i in index]
    hi = [int(i.max()) + 1 for i in index]
    ry, rx = index[1] - lo[1], index[2] - lo[2]
    plain = all(r.size == h - low and (r == np.arange(h - low)).all() for r, low, h in zip((ry, rx), lo[1:], hi[1:]))
    out = np.empty((crop, crop, crop), dtype=np.float32)
    group = max(1, (256 << 20) // ((hi[1] - lo[1]) * (64 << 10)))  # ~256 MB mapped per group
    for g0 in range(0, crop, group):
        planes = index[0][g0:g0 + group]
        block = np.asarray(src[planes, lo[1]:hi[1], lo[2]:hi[2]], dtype=np.float32)
        out[g0:g0 + planes.size] = block if plain else block[:, ry][:, :, rx]
        del block
        release()
    return out


def deconv_chunked(
    src: np.ndarray,
    dst: np.ndarray,
    params: CtfParams,
    *,
    chunk_size: int,
    overlap_rate: float = 0.25,
    workers: int | None = None,
    edge_pad: int = EDGE_PAD,
    release: Callable[[], None] | None = None,
    what: str = "tomogram",
) -> None:
    """Deconvolve ``src`` into ``dst`` (same shape) piece by piece; same voxels as whole mode.

    ``src`` and ``dst`` may be memory maps of files much larger than RAM; only a Z slab, one
    padded chunk and the low-frequency coefficients (~1/64 of the volume, complex) are in memory.
    Passes: (1) stream Z slabs: NaN check, input statistics, low-band coefficients; (2) chunks:
    high band into ``dst``; (3) Z slabs: add the low band, output statistics; (4) Z slabs: the
    one global mean/std restoration. ``release`` is called after each chunk and slab (e.g. to
    drop memory-mapped pages from the resident set).
    """
    if src.ndim != 3 or tuple(src.shape) != tuple(dst.shape):
        raise ValueError(f"src {src.shape} and dst {dst.shape} must be 3D arrays of the same shape")
    workers = fft_workers(workers)
    log = get_logger()
    layout = chunk_layout(src.shape, chunk_size, overlap_rate)  # refuses bad sizes even for one chunk
    if chunk_size >= max(int(n) for n in src.shape):
        # One chunk holding the whole tomogram is the tomogram itself: whole mode, in less memory
        # than a padded crop³ cube (a 1000-voxel chunk of a 64×160×160 volume would be 1250³).
        log.info("deconv: --chunk-size %d covers %s: one chunk, the whole volume",
                 chunk_size, "×".join(map(str, src.shape)))
        _deconv_in_one(src, dst, params, workers, edge_pad, what)
        if release is not None:
            release()
        return
    profile = wiener_profile(params)
    taper = split_taper(np.linspace(0.0, 1.0, profile.size))
    start = time.time()

    def _release() -> None:
        if release is not None:
            release()

    low, moments_in = _low_band_pass(src, profile * taper, workers, edge_pad, what, _release)
    log.debug("deconv: low band of %s done after %.1f s", what, time.time() - start)
    _high_band_pass(src, dst, profile * (1.0 - taper), chunk_size, layout, workers, _release)
    log.debug("deconv: chunks of %s done after %.1f s", what, time.time() - start)
    moments_out = _add_low_band(dst, low, _release)
    del low
    _restore(dst, moments_in, moments_out, what, _release)
    log.debug("deconv: %s finished after %.1f s", what, time.time() - start)


def _deconv_in_one(src: np.ndarray, dst: np.ndarray, params: CtfParams, workers: int, edge_pad: int,
                   what: str) -> None:
    """Whole mode on the whole volume, refusing NaN/Inf slices by their Z range."""
    volume = np.asarray(src, dtype=np.float32)
    bad = ~np.isfinite(volume).all(axis=(1, 2))
    if bad.any():
        z = np.flatnonzero(bad)
        raise InputError(f"{what}: has NaN/Inf voxels in Z slices {z[0]}..{z[-1]}; fix or re-reconstruct "
                         f"the tomogram (e.g. replace them with the mean) first.")
    dst[...] = deconv_volume(volume, params, workers=workers, edge_pad=edge_pad, what=what)


def _low_band_pass(src: np.ndarray, low_profile: np.ndarray, workers: int, edge_pad: int, what: str,
                   release: Callable[[], None]) -> tuple[_LowBand, Moments]:
    """Pass 1: input statistics and the filtered low-band coefficients, over the mirror-padded Z range."""
    n0 = int(src.shape[0])
    low = _LowBand(tuple(src.shape), edge_pad, workers)
    moments_in = Moments()
    step = slab_step(low.padded[1] * low.padded[2], 1 << 24)
    starts = range(0, low.padded[0], step)
    for z0 in progress(starts, total=len(starts), desc="deconv low band", unit="slab"):
        z1 = min(z0 + step, low.padded[0])
        real = range(max(z0, edge_pad), min(z1, edge_pad + n0))  # rows not made by mirroring
        rows = np.asarray(src[low.padded_rows(z0, z1)], dtype=np.float32)
        if len(real):
            own = rows[real.start - z0:real.stop - z0]
            if not np.isfinite(own).all():
                raise InputError(f"{what}: has NaN/Inf voxels in Z slices {real.start - edge_pad}.."
                                 f"{real.stop - 1 - edge_pad}; fix or re-reconstruct the tomogram "
                                 f"(e.g. replace them with the mean) first.")
            moments_in.add(own)
        low.add_rows(z0, rows)
        del rows
        release()
    restore_scale(1.0, moments_in.std, what)  # a constant input fails before the heavy passes
    low.filter(low_profile)
    return low, moments_in


def _high_band_pass(src: np.ndarray, dst: np.ndarray, high_profile: np.ndarray, chunk_size: int,
                    layout: tuple[int, int, list[int]], workers: int, release: Callable[[], None]) -> None:
    """Pass 2: the high band into ``dst``, chunk by chunk (core of each mirrored, overlapping cube)."""
    log = get_logger()
    crop, pad, counts = layout
    filt = wiener_filter((crop, crop, crop), high_profile)
    c = chunk_size
    grid = [(i, j, k) for i in range(counts[0]) for j in range(counts[1]) for k in range(counts[2])]
    log.info("deconv: %d chunks of %d³ voxels (core %d³), %d FFT threads", len(grid), crop, c, workers)
    for i, j, k in progress(grid, total=len(grid), desc="deconv chunks", unit="chunk"):
        lo = (i * c, j * c, k * c)
        hi = tuple(min(a + c, n) for a, n in zip(lo, src.shape))
        spec = scipy.fft.rfftn(_read_chunk(src, tuple(a - pad for a in lo), crop, release), workers=workers)
        spec *= filt
        out = scipy.fft.irfftn(spec, s=(crop, crop, crop), workers=workers, overwrite_x=True)
        del spec
        dst[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = out[pad:pad + hi[0] - lo[0], pad:pad + hi[1] - lo[1],
                                                         pad:pad + hi[2] - lo[2]]
        del out
        release()


def _slab_step(dst: np.ndarray) -> int:
    return slab_step(int(dst.shape[1]) * int(dst.shape[2]), 1 << 24)


def _add_low_band(dst: np.ndarray, low: _LowBand, release: Callable[[], None]) -> Moments:
    """Pass 3: add the low band slab by slab; the output's statistics."""
    n0, step = int(dst.shape[0]), _slab_step(dst)
    moments_out = Moments()
    for z0 in range(0, n0, step):
        z1 = min(z0 + step, n0)
        slab = np.asarray(dst[z0:z1], dtype=np.float32)
        slab += low.voxels(z0, z1)
        moments_out.add(slab)
        dst[z0:z1] = slab
        del slab
        release()
    return moments_out


def _restore(dst: np.ndarray, moments_in: Moments, moments_out: Moments, what: str,
             release: Callable[[], None]) -> None:
    """Pass 4: the one global mean/std restoration, so the output keeps the input's statistics."""
    n0, step = int(dst.shape[0]), _slab_step(dst)
    scale = np.float32(restore_scale(moments_out.std, moments_in.std, what))
    offset = np.float32(moments_in.mean - moments_out.mean * float(scale))
    for z0 in range(0, n0, step):
        slab = np.asarray(dst[z0:z0 + step], dtype=np.float32)
        slab *= scale
        slab += offset
        dst[z0:z0 + step] = slab
        del slab
        release()
