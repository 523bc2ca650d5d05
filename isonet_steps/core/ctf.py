"""The CTF deconvolution filter: IsoNet's Warp-style Wiener-like filter (reference §3).

A tomogram's contrast is modulated by the microscope's contrast transfer function (CTF); at
IsoNet's usual 10-20 Å voxels this mostly means the low frequencies are weak. The filter
``W = CTF / (CTF² + 1/SNR)`` restores them as far as a simple SNR model allows, which makes the
density (and the masks and training targets built from it) much easier to see.

The filter is radial in *physical* frequency (each axis is normalised by its own Nyquist), so
it is the same filter on any grid. Whole mode (:mod:`.deconv_whole`) filters the volume in one
FFT; chunked mode (:mod:`.deconv_chunked`) gives the same voxels with bounded memory; this module
holds what both share (the filter, the statistics, the mirroring). Both restore the input's
mean and standard deviation once, from statistics of the whole volume (IsoNet's chunked mode
renormalised every chunk on its own, which left seams); the output's own mean is removed first
(IsoNet relies on the filter's near-zero DC gain for that). Departure from IsoNet, on purpose: both
modes mirror the volume by ``EDGE_PAD`` voxels before filtering, so opposite faces no longer
bleed into each other through the FFT's wrap-around.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from ..io.errors import InputError

__all__ = [
    "AMPLITUDE_CONTRAST",
    "PROFILE_SAMPLES",
    "MIN_CHUNK_SIZE",
    "EDGE_PAD",
    "SPLIT_START",
    "SPLIT_END",
    "CtfParams",
    "Moments",
    "electron_wavelength",
    "wiener_profile",
    "wiener_filter",
    "split_taper",
    "axis_radius",
    "filter_values",
    "slab_step",
    "moments",
    "restore_scale",
    "fft_workers",
    "mirror_indices",
]

#: Fraction of amplitude contrast (fixed in IsoNet; not a CLI option).
AMPLITUDE_CONTRAST = 0.07
#: Samples of the 1D filter profile from DC to Nyquist.
PROFILE_SAMPLES = 2048
#: Smallest chunk edge (voxels) accepted in chunked mode.
MIN_CHUNK_SIZE = 32
#: Voxels of mirror padding on every face before filtering (beyond the reach of the compact
#: part of the filter kernel, so whole and chunked mode see the same edges).
EDGE_PAD = 16
#: Chunked mode splits the filter ``W = W·T + W·(1-T)``: ``T`` is 1 below SPLIT_START and 0
#: above SPLIT_END (fractions of Nyquist), with a cosine between. ``W·T`` holds the long-range
#: part of the kernel and is applied to the whole volume's low frequencies; ``W·(1-T)`` has a
#: kernel a few voxels wide and is applied chunk by chunk.
SPLIT_START = 1.0 / 16.0
SPLIT_END = 1.0 / 4.0


@dataclass(frozen=True)
class CtfParams:
    """Microscope and filter settings of one tomogram.

    Parameters
    ----------
    pixel_size : voxel size in Å.
    defocus : zero-tilt underfocus in Å (positive = underfocus; IsoNet's rlnDefocus).
    voltage : acceleration voltage in kV.
    cs : spherical aberration in mm.
    snrfalloff : how fast the modelled SNR falls with frequency.
    deconvstrength : log10 of the modelled SNR at low frequency.
    highpassnyquist : width of the raised-cosine high-pass, as a fraction of Nyquist.
    amplitude_contrast : fraction of amplitude contrast (IsoNet fixes 0.07; a RELION 5 project
        gives its own, rlnAmplitudeContrast).
    """

    pixel_size: float
    defocus: float
    voltage: float = 300.0
    cs: float = 2.7
    snrfalloff: float = 1.0
    deconvstrength: float = 1.0
    highpassnyquist: float = 0.02
    amplitude_contrast: float = AMPLITUDE_CONTRAST

    def check(self) -> None:
        """Refuse values that make the filter meaningless (one-line errors naming the option)."""
        checks = [
            (self.pixel_size > 0, "pixel size (rlnPixelSize)", self.pixel_size, "must be > 0 Å"),
            (self.defocus > 0, "defocus (rlnDefocus)", self.defocus, "must be > 0 Å of underfocus"),
            (self.voltage > 0, "--voltage", self.voltage, "must be > 0 kV (e.g. 300)"),
            (self.cs >= 0, "--cs", self.cs, "must be >= 0 mm (e.g. 2.7)"),
            (self.snrfalloff >= 0, "--snrfalloff", self.snrfalloff, "must be >= 0 (IsoNet default 1.0)"),
            (-10 <= self.deconvstrength <= 10, "--deconvstrength", self.deconvstrength,
             "must be in -10..10 (it is a power of ten; IsoNet default 1.0)"),
            (0 <= self.highpassnyquist <= 1, "--highpassnyquist", self.highpassnyquist,
             "must be a fraction of Nyquist in 0..1 (IsoNet default 0.02)"),
            (0 <= self.amplitude_contrast < 1, "amplitude contrast (rlnAmplitudeContrast)", self.amplitude_contrast,
             "must be a fraction in 0..1 (e.g. 0.07)"),
        ]
        for ok, name, value, rule in checks:
            if not (ok and math.isfinite(value)):
                raise InputError(f"{name} {value:g} {rule}.")


def electron_wavelength(voltage_kv: float) -> float:
    """Relativistic electron wavelength in metres at ``voltage_kv`` kilovolts."""
    volts = voltage_kv * 1000.0
    return 12.2643247 / math.sqrt(volts * (1.0 + volts * 0.978466e-6)) * 1e-10


def wiener_profile(params: CtfParams, samples: int = PROFILE_SAMPLES) -> np.ndarray:
    """The 1D filter ``W(ν)`` at ``ν = i/(samples-1)`` (fraction of Nyquist), i = 0..samples-1.

    SNR model ``exp(-ν·falloff·100/pixel)·10^strength·HP(ν) + 1e-6`` with the raised-cosine
    high-pass ``HP = 1 - cos(π·min(1, ν/h))``; CTF with the given amplitude contrast (IsoNet: 7 %), no phase shift,
    underfocus entering the phase as a negative defocus (IsoNet's convention).
    """
    params.check()
    nu = np.arange(samples, dtype=np.float64) / (samples - 1)
    h = params.highpassnyquist
    highpass = 1.0 - np.cos(np.pi * np.minimum(1.0, nu / h)) if h > 0 else np.where(nu > 0, 2.0, 0.0)
    snr = np.exp(-nu * params.snrfalloff * 100.0 / params.pixel_size) * 10.0**params.deconvstrength * highpass + 1e-6

    wavelength = electron_wavelength(params.voltage)
    k = np.arange(samples, dtype=np.float64) / (2.0 * samples) / (params.pixel_size * 1e-10)  # 1/m
    delta_z = -params.defocus * 1e-10  # Å -> m; underfocus is negative here
    phase = np.pi / 2.0 * (wavelength**3 * params.cs * 1e-3 * k**4 + 2.0 * wavelength * delta_z * k**2)
    a = params.amplitude_contrast
    ctf = -math.sqrt(1.0 - a * a) * np.sin(phase) + a * np.cos(phase)
    return ctf / (ctf * ctf + 1.0 / snr)


def split_taper(nu: np.ndarray) -> np.ndarray:
    """``T(ν)``: 1 below ``SPLIT_START``, cosine down to 0 at ``SPLIT_END`` (fractions of Nyquist)."""
    t = np.clip((np.asarray(nu, dtype=np.float64) - SPLIT_START) / (SPLIT_END - SPLIT_START), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * t))


def axis_radius(n: int, half: bool = False) -> np.ndarray:
    """|frequency| along one axis in FFT order (first half only for a real FFT's last axis),
    as a fraction of that axis' Nyquist, i.e. divided by ``max(1, n // 2)``.
    """
    k = np.arange(n // 2 + 1) if half else np.abs(np.fft.fftfreq(n) * n)
    return k / max(1, n // 2)


def filter_values(u0: np.ndarray, u1: np.ndarray, u2: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """``profile`` at radius ``sqrt(u0² + u1² + u2²)`` clipped at 1, on the outer grid, float32."""
    r = np.sqrt(u0[:, None, None] ** 2 + u1[None, :, None] ** 2 + u2[None, None, :] ** 2)
    np.minimum(r, 1.0, out=r)
    return np.interp(r, np.linspace(0.0, 1.0, profile.size), profile).astype(np.float32)


def slab_step(plane_voxels: int, voxels: int = 1 << 22) -> int:
    """Planes per slab so that a slab's temporaries stay near ``voxels``, however large the planes."""
    return max(1, voxels // max(1, int(plane_voxels)))


def wiener_filter(shape: tuple[int, int, int], profile: np.ndarray) -> np.ndarray:
    """The 3D filter for ``scipy.fft.rfftn`` of a volume of ``shape`` (half spectrum), float32.

    The radius is normalised per axis by that axis' half-length, so r = 1 at Nyquist along every
    axis (the same physical frequency on any grid), and clipped at 1 in the corners.
    """
    u0, u1, u2 = axis_radius(int(shape[0])), axis_radius(int(shape[1])), axis_radius(int(shape[2]), True)
    out = np.empty((u0.size, u1.size, u2.size), dtype=np.float32)
    step = slab_step(u1.size * u2.size)
    for z0 in range(0, u0.size, step):
        out[z0:z0 + step] = filter_values(u0[z0:z0 + step], u1, u2, profile)
    return out


class Moments:
    """Streaming mean and variance (Chan et al. pairwise update), in float64."""

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, block: np.ndarray) -> None:
        """Fold in one slab, so a memory-mapped volume never has to be read whole."""
        n = int(block.size)
        if n == 0:
            return
        b = np.asarray(block, dtype=np.float64)
        mean = float(b.mean())
        m2 = float(np.square(b - mean).sum())
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total

    @property
    def std(self) -> float:
        """Population std (0 with no data), what deconvolution rescales its output to."""
        return math.sqrt(self.m2 / self.count) if self.count else 0.0


def moments(data: np.ndarray) -> Moments:
    """Mean and std of ``data`` slab by slab, so a memory-mapped volume is not copied to float64 whole."""
    moments = Moments()
    step = slab_step(data[0].size, 1 << 23)
    for z0 in range(0, data.shape[0], step):
        moments.add(data[z0:z0 + step])
    return moments


def restore_scale(std_out: float, std_in: float, what: str) -> float:
    """Factor giving the filtered volume the input's std; a constant volume is refused, not divided by 0."""
    if not (std_out > 0 and std_in > 0):
        raise InputError(f"{what}: the volume is constant (or filters to a constant), so it cannot be "
                         f"deconvolved; check that the right file was given.")
    return std_in / std_out


def fft_workers(workers: int | None) -> int:
    """FFT threads: all cores unless the step was given a number (0 and None mean all)."""
    return max(1, int(workers)) if workers else (os.cpu_count() or 1)


def mirror_indices(start: int, length: int, n: int) -> np.ndarray:
    """Indices start..start+length-1 folded into 0..n-1 by symmetric (edge-repeating) mirroring."""
    idx = np.arange(start, start + length) % (2 * n)
    return np.where(idx < n, idx, 2 * n - 1 - idx)
