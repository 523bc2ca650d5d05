"""Whole-tomogram CTF deconvolution: one FFT of the mirrored volume (see :mod:`.ctf`)."""

from __future__ import annotations

import numpy as np
import scipy.fft

from .ctf import (
    EDGE_PAD,
    CtfParams,
    axis_radius,
    fft_workers,
    filter_values,
    moments,
    restore_scale,
    slab_step,
    wiener_profile,
)

__all__ = ["deconv_volume"]


def deconv_volume(volume: np.ndarray, params: CtfParams, *, workers: int | None = None,
                  edge_pad: int = EDGE_PAD, what: str = "tomogram") -> np.ndarray:
    """Deconvolve a whole volume in one FFT; float32 with the input's mean and std.

    Parameters
    ----------
    volume : array [Z, Y, X].
    params : microscope and filter settings.
    workers : FFT threads (default: all cores).
    edge_pad : voxels of mirror padding per face (0 = IsoNet's wrap-around FFT).
    what : name used in error messages (the file).
    """
    workers = fft_workers(workers)
    vol = np.asarray(volume, dtype=np.float32)
    profile = wiener_profile(params)
    moments_in = moments(vol)
    padded = np.pad(vol, edge_pad, mode="symmetric") if edge_pad > 0 else vol  # same as mirror_indices
    spec = scipy.fft.rfftn(padded, workers=workers)
    shape = padded.shape
    del padded
    u0, u1, u2 = axis_radius(shape[0]), axis_radius(shape[1]), axis_radius(shape[2], True)
    step = slab_step(u1.size * u2.size)
    for z0 in range(0, u0.size, step):  # slab by slab: no full-size float64 grids in memory
        spec[z0:z0 + step] *= filter_values(u0[z0:z0 + step], u1, u2, profile)
    out = scipy.fft.irfftn(spec, s=shape, workers=workers, overwrite_x=True)
    del spec
    p = edge_pad
    out = np.array(out[p:p + vol.shape[0], p:p + vol.shape[1], p:p + vol.shape[2]], dtype=np.float32)
    moments_out = moments(out)
    scale = restore_scale(moments_out.std, moments_in.std, what)
    out -= np.float32(moments_out.mean)  # ~0 without padding (W(0) ~ 0), as in IsoNet
    out *= np.float32(scale)
    out += np.float32(moments_in.mean)
    return out
