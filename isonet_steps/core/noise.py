"""The denoising ("noisier input") model: back-projected noise added to training inputs.

IsoNet reconstructs a 1000³ volume of back-projected Gaussian noise once (≈4 GB) and cuts cubes from
it. Back-projection of white noise has a known spectrum, so the same statistics are made directly at
cube size in Fourier space: white noise restricted to the measured wedge of the (kz, kx) plane and
shaped radially, power ∝ 1/|k| for plain back-projection (IsoNet's default "noFilter"), ∝ |k| for the
ramp filter, and ∝ |k|·hamming(k)² for the Hamming filter; white along Y (independent slices).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import scipy.fft

from ..io.errors import InputError
from ..io.params import BY_NAME
from .wedge import Wedge, wedge_mask_2d

NOISE_MODES: tuple[str, ...] = BY_NAME["noise_mode"].choices or ()  # the parameter table's

__all__ = ["NOISE_MODES", "noise_schedule", "noise_amplitude_2d", "make_noise_cubes"]


def noise_schedule(iterations: int, levels: Sequence[float], start_iters: Sequence[int]) -> list[float]:
    """Noise level for iterations 1..``iterations`` (index 0 unused, kept 0 for IsoNet's numbering).

    Iterations before the first start get 0; from ``start_iters[k]`` on, ``levels[k]``.
    """
    levels = [float(v) for v in levels]
    starts = [int(v) for v in start_iters]
    if len(levels) != len(starts):
        raise InputError(f"--noise-level has {len(levels)} values but --noise-start-iter has {len(starts)}; give one "
                         "start iteration per level.")
    if any(v < 0 for v in levels):
        raise InputError(f"--noise-level {levels} has a negative value; noise levels are ratios >= 0.")
    if any(b <= a for a, b in zip(starts, starts[1:])) or any(s < 1 for s in starts):
        raise InputError(f"--noise-start-iter {starts} must be increasing iteration numbers >= 1.")
    schedule = [0.0] * (int(iterations) + 1)
    for it in range(1, int(iterations) + 1):
        for level, start in zip(levels, starts):
            if it >= start:
                schedule[it] = level
    return schedule


@lru_cache(maxsize=32)
def noise_amplitude_2d(nz: int, nx: int, wedge: Wedge, mode: str) -> np.ndarray:
    """Fourier amplitude filter (rfft layout over Z, X) of back-projected noise, mean power 1.

    The ``wedge`` (hashable, so cached too) has the recorded directions: noise of a series with gaps
    is back-projected only along them.
    """
    if mode not in NOISE_MODES:
        mode = "noFilter"  # IsoNet: any other string means no filter
    kz = np.fft.fftfreq(nz)[:, None]
    kx = np.fft.rfftfreq(nx)[None, :]
    radius = np.sqrt(kz**2 + kx**2)
    floor = 1.0 / max(nz, nx)
    r = np.maximum(radius, floor)
    if mode == "noFilter":
        power = 1.0 / r
    elif mode == "ramp":
        power = r
    else:
        hamming = 0.54 + 0.46 * np.cos(np.pi * np.minimum(r / 0.5, 1.0))
        power = r * hamming**2
    amplitude = np.sqrt(power) * wedge_mask_2d(nz, nx, wedge, rfft=True)
    amplitude[0, 0] = 0.0  # zero-mean noise
    amplitude /= np.sqrt(np.mean(amplitude**2)) + 1e-12
    amplitude = amplitude.astype(np.float32)
    amplitude.setflags(write=False)
    return amplitude


def make_noise_cubes(count: int, size: int, wedge: Wedge, *, mode: str = "noFilter",
                     rng: np.random.Generator) -> np.ndarray:
    """``count`` cubes ``size``³ of back-projection noise, each with unit standard deviation."""
    white = rng.standard_normal((count, size, size, size), dtype=np.float32)
    spectrum = scipy.fft.rfftn(white, axes=(1, 3))
    spectrum *= noise_amplitude_2d(size, size, wedge, mode)[:, None, :]
    cubes = scipy.fft.irfftn(spectrum, s=(size, size), axes=(1, 3)).astype(np.float32, copy=False)
    cubes -= cubes.mean(axis=(1, 2, 3), keepdims=True)
    cubes /= cubes.std(axis=(1, 2, 3), keepdims=True) + 1e-12
    return cubes
