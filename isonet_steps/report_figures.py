"""Pictures for the run report, from numpy arrays: slices, kz–kx power spectra, training curves.

Everything here is array in, array out (RGB or gray ``uint8``); :mod:`isonet_steps.report` reads
the files and assembles the HTML. Arrays are ``[Z, Y, X]``; the missing wedge lies around kz in
the (kz, kx) plane, so that is the plane whose power shows it.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

__all__ = [
    "CENTRAL_EDGE",
    "PANEL_MAX",
    "central_box",
    "standardise",
    "mean_std",
    "contrast_window",
    "slice_panel",
    "kzkx_log_power",
    "power_panel",
    "power_window",
    "wedge_power_ratio",
    "colormap",
    "loss_plot",
    "noise_plot",
]

#: Edge of the central sub-volume used for statistics and the power spectrum (bounded work).
CENTRAL_EDGE = 256
#: Longest side of a slice picture, pixels; larger slices are binned by a whole factor.
PANEL_MAX = 512
#: Planes of the orthogonal slices and the axes of their picture (rows, columns).
PLANES: dict[str, tuple[str, str]] = {"XY": ("Y", "X"), "XZ": ("Z", "X"), "YZ": ("Z", "Y")}

# Perceptually ordered dark-to-bright anchors (black, purple, red, orange, pale yellow).
_COLORMAP_ANCHORS = np.array([
    (0, 0, 4), (40, 11, 84), (101, 21, 110), (159, 42, 99), (212, 72, 66),
    (245, 125, 21), (250, 193, 39), (252, 255, 164),
], dtype=np.float64)


def central_box(shape: Sequence[int], edge: int = CENTRAL_EDGE) -> tuple[slice, slice, slice]:
    """Slices of the centred box of at most ``edge`` voxels per axis."""
    box = []
    for n in shape:
        m = min(int(n), int(edge))
        start = (int(n) - m) // 2
        box.append(slice(start, start + m))
    return tuple(box)  # type: ignore[return-value]


def standardise(values: np.ndarray, mean: float, std: float) -> np.ndarray:
    """``(values - mean) / std`` as float32 (``std`` 0 is taken as 1).

    Bringing raw, corrected and true volumes to mean 0 and std 1 (each by its own statistics)
    before a shared grey window is what makes the panels comparable: the network output has its
    own offset and scale.
    """
    return (np.asarray(values, dtype=np.float32) - np.float32(mean)) / np.float32(std if std > 0 else 1.0)


def mean_std(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation, accumulated in float64."""
    values = np.asarray(values, dtype=np.float32)
    mean = float(values.mean(dtype=np.float64))
    return mean, float(np.sqrt(np.mean(np.square(values - np.float32(mean)), dtype=np.float64)))


def contrast_window(values: np.ndarray, low: float = 1.0, high: float = 99.0) -> tuple[float, float]:
    """The ``low``–``high`` percentile range of ``values`` (the grey window of every slice panel)."""
    lo, hi = np.percentile(np.asarray(values, dtype=np.float32), [low, high])
    return float(lo), float(hi)


def _bin2d(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean of ``factor x factor`` blocks (the ragged edge is dropped)."""
    if factor <= 1:
        return image
    h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    h, w = max(h, factor), max(w, factor)
    block = image[:h, :w]
    return block.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def display_factor(shape: Sequence[int], limit: int = PANEL_MAX) -> int:
    """Whole binning factor that brings the longest side of a ``[Z, Y, X]`` volume to ``limit``."""
    return max(1, math.ceil(max(int(s) for s in shape) / limit))


def slice_panel(image: np.ndarray, window: tuple[float, float], factor: int = 1) -> np.ndarray:
    """A gray ``uint8`` picture of one (standardised) slice: binned by ``factor``, then windowed."""
    from .png import to_uint8

    return to_uint8(_bin2d(np.asarray(image, dtype=np.float32), factor), *window)


def _taper(n: int) -> np.ndarray:
    """A Hann window, so the box edges do not paint a bright cross on the spectrum."""
    return np.hanning(n + 2)[1:-1].astype(np.float32) if n > 2 else np.ones(n, np.float32)


def kzkx_log_power(volume: np.ndarray) -> np.ndarray:
    """log10 of the Fourier power in the (kz, kx) plane, averaged over ky, DC centred, kz up.

    The volume (e.g. the central sub-volume) is mean-subtracted and tapered along Z and X. The
    result is ``[nz, nx]``: row 0 is the highest +kz, column 0 the most negative kx.
    """
    from scipy import fft

    data = np.array(volume, dtype=np.float32)  # a copy: tapered in place below
    nz, _, nx = data.shape
    data -= np.float32(data.mean(dtype=np.float64))
    data *= _taper(nz)[:, None, None] * _taper(nx)[None, None, :]
    # No transform along y is needed: by Parseval the mean over ky of |F|^2 is the mean over y
    # of the (kz, kx) spectra's power. A real input's spectrum is symmetric, so half is enough.
    half = fft.rfftn(data, axes=(0, 2), workers=-1)
    del data
    half_power = np.mean(np.square(half.real) + np.square(half.imag), axis=1)
    del half
    power = np.empty((nz, nx), dtype=np.float64)
    power[:, : nx // 2 + 1] = half_power
    mirror = np.arange(nx // 2 + 1, nx)  # negative kx: P(kz, -k) = P(-kz, k)
    power[:, mirror] = half_power[(-np.arange(nz)) % nz][:, nx - mirror]
    power = np.fft.fftshift(power)
    return np.log10(power + 1e-12 * max(float(power.max()), 1e-30))[::-1].astype(np.float32)


def _square(image: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resampling to ``size x size``: kz and kx both span ±Nyquist, so a square
    picture shows angles in the (kz, kx) plane truly."""
    rows = np.minimum((np.arange(size) + 0.5) * image.shape[0] / size, image.shape[0] - 1).astype(int)
    cols = np.minimum((np.arange(size) + 0.5) * image.shape[1] / size, image.shape[1] - 1).astype(int)
    return image[np.ix_(rows, cols)]


def colormap(gray: np.ndarray) -> np.ndarray:
    """RGB ``uint8`` of a gray ``uint8`` image through a dark-purple-orange-yellow scale."""
    t = np.linspace(0.0, 1.0, len(_COLORMAP_ANCHORS))
    levels = np.linspace(0.0, 1.0, 256)
    table = np.stack([np.interp(levels, t, _COLORMAP_ANCHORS[:, c]) for c in range(3)], axis=1)
    return np.rint(table).astype(np.uint8)[np.asarray(gray, dtype=np.uint8)]


def _dashed_ray(canvas: np.ndarray, angle_deg: float, color, dash: int = 6) -> None:
    """Dashed line through the centre of a square RGB canvas at ``angle_deg`` from the +x axis (y up)."""
    size = canvas.shape[0]
    c = (size - 1) / 2.0
    a = math.radians(angle_deg)
    for s in np.arange(-size, size, 0.5):
        if int(abs(s) // dash) % 2:
            continue
        x, y = c + s * math.cos(a), c - s * math.sin(a)
        xi, yi = int(round(x)), int(round(y))
        if 0 <= xi < size and 0 <= yi < size and (xi - c) ** 2 + (yi - c) ** 2 <= (size / 2.0) ** 2:
            canvas[yi, xi] = color


def power_panel(log_power: np.ndarray, window: tuple[float, float], *, size: int = 256,
                tilt_range: tuple[float, float] | None = None) -> np.ndarray:
    """A square colour picture of a kz–kx log-power map, with the measured wedge's edges dashed."""
    from .png import to_uint8

    rgb = colormap(to_uint8(_square(log_power, size), *window))
    if tilt_range is not None:
        for angle in tilt_range:
            _dashed_ray(rgb, float(angle), (120, 230, 255))
    return rgb


def power_window(maps: Sequence[np.ndarray], low: float = 1.0, high: float = 99.8) -> tuple[float, float]:
    """One colour range for all power maps: percentiles of them all together."""
    values = np.concatenate([np.ravel(m) for m in maps])
    lo, hi = np.percentile(values, [low, high])
    return float(lo), float(hi)


def wedge_power_ratio(log_power: np.ndarray, tilt_range: tuple[float, float],
                      band: tuple[float, float] = (0.05, 0.4)) -> float:
    """Mean power in the missing wedge over mean power in the measured region, same |k| band.

    ``log_power`` is a map from :func:`kzkx_log_power` (kz up, DC centred). An
    uncorrected tomogram has little power in the wedge (ratio well below 1); a filled wedge
    approaches the ratio of an isotropic volume (about 1).
    """
    nz, nx = log_power.shape
    kz = np.fft.fftshift(np.fft.fftfreq(nz))[::-1][:, None]
    kx = np.fft.fftshift(np.fft.fftfreq(nx))[None, :]
    angle = np.degrees(np.arctan2(kz, kx))
    angle = np.where(angle > 90.0, angle - 180.0, angle)
    angle = np.where(angle <= -90.0, angle + 180.0, angle)
    r = np.hypot(kz, kx)
    in_band = (r > band[0]) & (r < band[1])
    measured = (angle >= tilt_range[0]) & (angle <= tilt_range[1])
    power = 10.0 ** log_power.astype(np.float64)
    missing = in_band & ~measured
    if not missing.any() or not (in_band & measured).any():
        return float("nan")
    return float(power[missing].mean() / power[in_band & measured].mean())


# ------------------------------------------------------------------------------------ training

_HALF_COLORS = ((31, 100, 200), (225, 115, 20), (40, 155, 60), (200, 30, 45))


def loss_plot(runs: Mapping[str, Sequence[Mapping]], *, width: int = 560, height: int = 360) -> np.ndarray | None:
    """Training and validation loss per epoch across iterations; ``runs`` = name -> iteration records.

    Iteration ``i`` spans ``(i - 1, i]`` on the x axis and its epochs sit evenly inside it, so
    the curve is continuous over the whole refinement. None when no epoch was recorded.
    """
    from .png import line_plot

    series: dict[str, tuple[list[float], list[float]]] = {}
    styles: dict[str, dict] = {}
    for k, (name, records) in enumerate(runs.items()):
        color = _HALF_COLORS[k % len(_HALF_COLORS)]
        for key, what, dash in (("loss", "training", None), ("val_loss", "validation", (6, 4))):
            xs: list[float] = []
            ys: list[float] = []
            for rec in records:
                values = [float("nan") if v is None else float(v) for v in rec.get(key) or []]
                for e, v in enumerate(values):
                    xs.append(int(rec["iteration"]) - 1 + (e + 1) / len(values))
                    ys.append(v)
            if xs:
                label = f"{name} {what}".strip()
                series[label] = (xs, ys)
                styles[label] = {"color": color, "width": 2.0, "dash": dash}
    if not series:
        return None
    last = max(max(x) for x, _ in series.values())
    return line_plot(series, title="Loss per epoch", xlabel="iteration", ylabel="loss (mean absolute error)",
                     hlines=(), xlim=(0.0, max(1.0, math.ceil(last))), styles=styles, width=width, height=height)


def noise_plot(schedules: Mapping[str, Sequence[tuple[int, float]]], *, width: int = 560,
               height: int = 360) -> np.ndarray | None:
    """Noise level per iteration as a staircase (iteration ``i`` spans ``(i - 1, i]``)."""
    from .png import line_plot

    series = {}
    styles = {}
    for k, (name, points) in enumerate(schedules.items()):
        xs: list[float] = []
        ys: list[float] = []
        for it, level in points:
            xs += [it - 1, it]
            ys += [level, level]
        if xs:
            series[name] = (xs, ys)
            styles[name] = {"color": _HALF_COLORS[k % len(_HALF_COLORS)] if k else (90, 90, 90),
                            "width": 2.4 if k else 1.6, "dash": None if k else (5, 4)}
    if not series:
        return None
    top = max(max(y) for _, y in series.values())
    last = max(max(x) for x, _ in series.values())
    return line_plot(series, title="Noise level per iteration", xlabel="iteration", ylabel="noise level",
                     hlines=(), xlim=(0.0, max(1.0, float(last))), ylim=(0.0, max(0.05, top * 1.25)),
                     styles=styles, width=width, height=height)
