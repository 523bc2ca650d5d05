"""Pictures for the run report, from numpy arrays: slices, kz–kx power spectra, training curves.

Slices are grey ``uint8`` arrays (the report embeds them as PNG); spectra and curves are
matplotlib figures (:mod:`isonet_steps.figures.plots`; the report embeds them as SVG). The FSC
figure, which the fsc step also writes as PNG, is :mod:`isonet_steps.figures.fsc`.
:mod:`isonet_steps.report.build` reads the files and assembles the HTML. Arrays are ``[Z, Y, X]``; the
missing wedge lies around kz in the (kz, kx) plane, so that is the plane whose power shows it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "CENTRAL_EDGE",
    "PANEL_MAX",
    "central_box",
    "standardise",
    "mean_std",
    "contrast_window",
    "to_uint8",
    "slice_panel",
    "kzkx_log_power",
    "power_figure",
    "power_window",
    "wedge_power_ratio",
    "loss_plot",
    "epoch_positions",
    "noise_plot",
]

#: Edge of the central sub-volume used for statistics and the power spectrum (bounded work).
CENTRAL_EDGE = 256
#: Longest side of a slice picture, pixels; larger slices are binned by a whole factor.
PANEL_MAX = 512
#: Planes of the orthogonal slices and the axes of their picture (rows, columns).
PLANES: dict[str, tuple[str, str]] = {"XY": ("Y", "X"), "XZ": ("Z", "X"), "YZ": ("Z", "Y")}
#: Colour map of the power spectra (perceptually uniform, dark = little power).
POWER_CMAP = "inferno"
#: Colour of the dashed tilt-range edges on the spectra: light cyan, apart from every inferno colour.
_WEDGE_EDGE = "#78e6ff"
#: Colour of the measured range estimated from the data (wedge check): a green apart from cyan and inferno.
_ESTIMATED_EDGE = "#7dff5a"


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


def to_uint8(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map ``lo..hi`` linearly to 0..255 (clipped); a flat window gives mid-grey at ``lo``."""
    img = np.asarray(image, dtype=np.float32)
    if not hi > lo:
        return np.where(img > lo, 255, np.where(img < lo, 0, 128)).astype(np.uint8)
    scaled = (img - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def slice_panel(image: np.ndarray, window: tuple[float, float], factor: int = 1) -> np.ndarray:
    """A grey ``uint8`` picture of one (standardised) slice: binned by ``factor``, then windowed."""
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


def _pixel_extent(n: int) -> tuple[float, float]:
    """Lowest and highest edge, in cycles/voxel, of the pixels of one fftshifted axis of ``n`` samples."""
    return (-(n // 2) - 0.5) / n, (n - 1 - n // 2 + 0.5) / n


def power_figure(maps: Sequence[np.ndarray], labels: Sequence[str], window: tuple[float, float], *,
                 voxel_size: float = 0.0, tilt_range: tuple[float, float] | None = None, panel: int = 250,
                 intervals: Sequence[tuple[float, float]] | None = None,
                 estimated: tuple[float, float] | None = None):
    """kz–kx log-power maps (from :func:`kzkx_log_power`) side by side, on one colour scale with
    one colour bar; the tilt range's edges dashed. Frequencies in Å⁻¹ when ``voxel_size`` > 0.

    Both axes span ±Nyquist at the same scale, so angles in the picture are true angles in the
    (kz, kx) plane, whatever the box's shape. ``intervals`` (a wedge's measured intervals, e.g. an
    angle list with gaps) replaces ``tilt_range``'s lines by the wedge's outline; ``estimated`` (the
    measured range read off the first map's data) is drawn on the first panel; both add a legend.
    """
    from ..figures.plots import new_figure, style

    scale = 1.0 / voxel_size if voxel_size > 0 else 1.0
    unit = "Å⁻¹" if voxel_size > 0 else "cycles/voxel"
    nyquist = 0.5 * scale
    legend = intervals is not None or estimated is not None
    fig = new_figure(panel * len(maps) + 110, panel + 70 + 28 * legend)
    with style():
        axes = fig.subplots(1, len(maps), sharex=True, sharey=True, squeeze=False)[0]
        image = None
        for ax, log_power, label in zip(axes, maps, labels):
            nz, nx = log_power.shape
            (x0, x1), (z0, z1) = _pixel_extent(nx), _pixel_extent(nz)
            extent = (x0 * scale, x1 * scale, z0 * scale, z1 * scale)
            image = ax.imshow(log_power, cmap=POWER_CMAP, vmin=window[0], vmax=window[1], interpolation="none",
                              origin="upper", extent=extent, aspect="auto")
            if intervals is not None:
                _wedge_outline(ax, intervals, nyquist, labelled=ax is axes[0])
            elif tilt_range is not None:
                for angle in tilt_range:
                    c, s = math.cos(math.radians(float(angle))), math.sin(math.radians(float(angle)))
                    ax.plot([-nyquist * c, nyquist * c], [-nyquist * s, nyquist * s], color=_WEDGE_EDGE,
                            linewidth=1.0, linestyle=(0, (4, 3)))
            ax.set_xlim(extent[0], extent[1])
            ax.set_ylim(extent[2], extent[3])
            ax.set_aspect((extent[1] - extent[0]) / (extent[3] - extent[2]))  # square, like the ±Nyquist it spans
            ax.grid(False)
            ax.set_title(label)
            ax.set_xlabel(f"kx ({unit})")
        axes[0].set_ylabel(f"kz ({unit})")
        assert image is not None  # at least one spectrum was drawn
        fig.colorbar(image, ax=list(axes), label="log₁₀ power", shrink=0.92, pad=0.02)
        if estimated is not None:
            _estimated_edges(axes[0], estimated, nyquist)
        if legend:
            fig.legend(loc="outside lower center", ncols=2, frameon=False)
    return fig


def _edge_line(ax, angle: float, nyquist: float, **kwargs) -> None:
    """The line through the origin at ``angle`` degrees from kx, to ±Nyquist."""
    c, s = math.cos(math.radians(float(angle))), math.sin(math.radians(float(angle)))
    ax.plot([-nyquist * c, nyquist * c], [-nyquist * s, nyquist * s], **kwargs)


def _wedge_outline(ax, intervals: Sequence[tuple[float, float]], nyquist: float, *, labelled: bool = False) -> None:
    """Dashed edges of every measured interval; with gaps, an arc near ±Nyquist across each interval.

    The arcs make the gaps of an angle list read as unmeasured sectors between measured ones.
    """
    for k, (lo, hi) in enumerate(intervals):
        for angle in (lo, hi):
            _edge_line(ax, angle, nyquist, color=_WEDGE_EDGE, linewidth=1.0, linestyle=(0, (4, 3)),
                       label="given wedge" if labelled and (k, angle) == (0, lo) else "_nolegend_")
        if len(intervals) < 2:
            continue  # one range: its two edges say it all
        theta = np.radians(np.linspace(lo, hi, 64))
        for sign in (1.0, -1.0):
            ax.plot(sign * 0.94 * nyquist * np.cos(theta), sign * 0.94 * nyquist * np.sin(theta), color=_WEDGE_EDGE,
                    linewidth=1.6, solid_capstyle="butt")


def _estimated_edges(ax, edges: tuple[float, float], nyquist: float) -> None:
    """The measured range estimated from the data (wedge_check.estimate_edges): solid, in green."""
    for k, angle in enumerate(edges):
        _edge_line(ax, angle, nyquist, color=_ESTIMATED_EDGE, linewidth=1.3,
                   label="estimated from the raw data" if k == 0 else "_nolegend_")


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


def _whole_ticks(ax) -> None:
    """Ticks of the x axis on whole iterations only (iteration ``i`` ends at ``x = i``)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def epoch_positions(records: Sequence[Mapping], key: str) -> tuple[list[float], list[float]]:
    """X (iteration ``i`` spans ``(i - 1, i]``) and value of every epoch's ``key`` loss over ``records``.

    The epochs take the interval in steps of 1 / (the most epochs any iteration trained), so an
    iteration that stopped early (``early_stop_patience``) ends before its interval does and the
    gap shows the epochs it saved, instead of its few epochs being stretched over the interval.
    """
    values = [[float("nan") if v is None else float(v) for v in rec.get(key) or []] for rec in records]
    slots = max((len(v) for v in values), default=0)
    xs: list[float] = []
    ys: list[float] = []
    for rec, losses in zip(records, values):
        for e, v in enumerate(losses):
            xs.append(int(rec["iteration"]) - 1 + (e + 1) / slots)
            ys.append(v)
    return xs, ys


def loss_plot(runs: Mapping[str, Sequence[Mapping]], *, width: int = 560, height: int = 360):
    """Training and validation loss per epoch across iterations; ``runs`` = name -> iteration records.

    Iteration ``i`` spans ``(i - 1, i]`` on the x axis and its epochs sit evenly inside it, so
    the curve is continuous over the whole refinement. A matplotlib figure, or None when no
    epoch was recorded.
    """
    from ..figures.plots import COLORS, line_axes, new_figure

    series: dict[str, tuple[list[float], list[float]]] = {}
    styles: dict[str, dict] = {}
    for k, (name, records) in enumerate(runs.items()):
        for key, what, dash in (("loss", "training", "solid"), ("val_loss", "validation", (0, (5, 3)))):
            xs, ys = epoch_positions(records, key)
            if xs:
                label = f"{name} {what}".strip()
                series[label] = (xs, ys)
                styles[label] = {"color": COLORS[k % len(COLORS)], "linestyle": dash}
    if not series:
        return None
    last = max(max(x) for x, _ in series.values())
    fig = new_figure(width, height)
    ax = line_axes(fig, series, styles=styles, title="Loss per epoch", xlabel="iteration",
                   ylabel="loss (mean absolute error)", xlim=(0.0, max(1.0, math.ceil(last))))
    _whole_ticks(ax)
    return fig


def noise_plot(schedules: Mapping[str, Sequence[tuple[int, float]]], *, width: int = 560, height: int = 360):
    """Noise level per iteration as a staircase (iteration ``i`` spans ``(i - 1, i]``); the first
    schedule (the plan) thin, grey and dashed under the others. A matplotlib figure, or None.
    """
    from ..figures.plots import COLORS, line_axes, new_figure

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
            styles[name] = ({"color": COLORS[(k - 1) % len(COLORS)], "linewidth": 2.2} if k
                            else {"color": "#5a5a5a", "linewidth": 1.4, "linestyle": (0, (5, 4))})
    if not series:
        return None
    top = max(max(y) for _, y in series.values())
    last = max(max(x) for x, _ in series.values())
    fig = new_figure(width, height)
    ax = line_axes(fig, series, styles=styles, title="Noise level per iteration", xlabel="iteration",
                   ylabel="noise level", xlim=(0.0, max(1.0, float(last))), ylim=(0.0, max(0.05, top * 1.25)))
    _whole_ticks(ax)
    return fig
