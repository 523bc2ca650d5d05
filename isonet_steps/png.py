"""PNG figures with numpy and zlib only: encoding, contrast windows, text, and line plots.

The report and the FSC step need a few pictures but not a plotting stack: ``encode_png`` writes
8-bit grayscale/RGB/RGBA, ``to_uint8`` applies a contrast window to a slice, ``draw_text`` prints
with a built-in 5x7 bitmap font, and ``line_plot`` draws curves with axes, ticks, a legend and
optional horizontal reference lines (e.g. FSC thresholds).
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ._bitmap_font import text_size
from ._raster import draw_text
from ._raster import polyline as _polyline

__all__ = ["encode_png", "write_png", "to_uint8", "draw_text", "line_plot", "PALETTE"]

#: Distinct line colours, in the order series get them.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 100, 200),   # blue
    (225, 115, 20),   # orange
    (40, 155, 60),    # green
    (200, 30, 45),    # red
    (130, 80, 190),   # purple
    (20, 165, 185),   # cyan
    (140, 90, 55),    # brown
    (215, 85, 165),   # pink
    (105, 105, 105),  # gray
    (160, 160, 25),   # olive
)
_GRID = (232, 232, 232)
_FRAME = (90, 90, 90)
_REFERENCE = (120, 120, 120)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {1: 0, 3: 2, 4: 6}  # channels -> PNG colour type (gray, RGB, RGBA)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(image: np.ndarray, *, level: int = 6) -> bytes:
    """PNG bytes of an 8-bit image ``(H, W)`` gray, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA.

    Rows use the "Up" filter (difference to the row above), which compresses slices and plots well.
    """
    img = np.asarray(image)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.dtype != np.uint8:
        raise ValueError(f"encode_png needs a uint8 image, got dtype {img.dtype}; convert with to_uint8().")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in _COLOR_TYPES or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"encode_png needs shape (H, W), (H, W, 3) or (H, W, 4), got {np.shape(image)}.")
    height, width, channels = img.shape
    rows = img.reshape(height, width * channels)
    filtered = rows.copy()
    filtered[1:] -= rows[:-1]  # uint8 arithmetic wraps modulo 256, as PNG's Up filter wants
    raw = np.empty((height, width * channels + 1), dtype=np.uint8)
    raw[:, 0] = 2
    raw[:, 1:] = filtered
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPES[channels], 0, 0, 0)
    return (
        _PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw.tobytes(), level))
        + _chunk(b"IEND", b"")
    )


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write ``image`` as PNG atomically (temporary file in the same folder, then rename)."""
    from .atomic import write_bytes

    return write_bytes(path, encode_png(image))


def to_uint8(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map ``lo..hi`` linearly to 0..255 (clipped); a flat window gives mid-gray at ``lo``."""
    img = np.asarray(image, dtype=np.float32)
    if not hi > lo:
        out = np.where(img > lo, 255, np.where(img < lo, 0, 128))
        return out.astype(np.uint8)
    scaled = (img - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _nice_ticks(lo: float, hi: float, target: int = 6) -> np.ndarray:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) covering ``lo..hi``."""
    if not hi > lo:
        return np.array([lo])
    raw = (hi - lo) / max(1, target)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * magnitude >= raw * 0.999)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = np.arange(first, hi + step * 1e-6, step)
    return np.round(ticks / step) * step


def _tick_labels(ticks: np.ndarray) -> list[str]:
    """Shortest fixed-point labels that tell the ticks apart exactly."""
    for decimals in range(0, 7):
        if np.allclose(np.round(ticks, decimals), ticks, rtol=0, atol=1e-9 * max(1.0, np.abs(ticks).max())):
            break
    labels = [f"{v:.{decimals}f}" for v in ticks]
    return [lab[1:] if lab.startswith("-") and float(lab) == 0 else lab for lab in labels]


def _data_range(values: list[np.ndarray], extra: Sequence[float] = ()) -> tuple[float, float]:
    finite = [v[np.isfinite(v)] for v in values]
    allv = np.concatenate(finite + [np.asarray(extra, dtype=float)]) if finite or extra else np.zeros(0)
    if allv.size == 0:
        return 0.0, 1.0
    lo, hi = float(allv.min()), float(allv.max())
    if hi == lo:
        return lo - 0.5, hi + 0.5
    pad = 0.04 * (hi - lo)
    return lo - pad, hi + pad


def _legend_corner(ink: np.ndarray, inner, lw: int, lh: int) -> tuple[int, int]:
    """Top-left pixel of the legend: the inner corner (upper right first) that hides the least ink."""
    y0, y1, x0, x1 = inner
    m = 7
    spots = [(x1 - m - lw, y0 + m), (x0 + m, y1 - m - lh), (x1 - m - lw, y1 - m - lh), (x0 + m, y0 + m)]
    best, best_ink = spots[0], None
    for lx, ly in spots:
        covered = float(ink[max(0, ly - y0):max(0, ly - y0 + lh), max(0, lx - x0):max(0, lx - x0 + lw)].sum())
        if best_ink is None or covered < best_ink - 1.0:
            best, best_ink = (lx, ly), covered
    return best


def line_plot(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    hlines: Sequence[float] = (0.5, 0.143),
    width: int = 640,
    height: int = 400,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    styles: Mapping[str, Mapping] | None = None,
    top_ticks: Sequence[tuple[float, str]] | None = None,
    top_label: str = "",
    legend_title: str = "",
) -> np.ndarray:
    """Render curves to an RGB uint8 array ``(height, width, 3)``.

    Parameters
    ----------
    series : name -> (x, y); NaN in y breaks the line. Drawn and listed in the legend in order.
    title, xlabel, ylabel : text (the font has letters, digits and common punctuation).
    hlines : y values drawn as dashed gray reference lines, labelled at the right.
    xlim, ylim : axis ranges (default: the data's, padded).
    styles : name -> {"color": (r, g, b), "width": px, "dash": (on, off) px}; defaults cycle PALETTE.
    top_ticks : (x, label) pairs for a secondary axis along the top (e.g. resolution in Å).
    top_label : caption of the secondary axis.
    legend_title : a line above the legend entries.
    """
    styles = styles or {}
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    xs = [np.asarray(x, dtype=float) for x, _ in series.values()]
    ys = [np.asarray(y, dtype=float) for _, y in series.values()]
    xlo, xhi = xlim if xlim is not None else _data_range(xs)
    ylo, yhi = ylim if ylim is not None else _data_range(ys, hlines)

    xticks = _nice_ticks(xlo, xhi)
    yticks = _nice_ticks(ylo, yhi)
    xticks = xticks[(xticks >= xlo - 1e-12) & (xticks <= xhi + 1e-12)]
    yticks = yticks[(yticks >= ylo - 1e-12) & (yticks <= yhi + 1e-12)]
    ylabels = _tick_labels(yticks)
    left = 16 + (14 if ylabel else 0) + max(text_size(s)[0] for s in ylabels)
    top = 12 + (22 if title else 0) + (26 if top_ticks else 0) + (12 if top_label else 0)
    hline_labels = [f"{h:g}" for h in hlines if ylo <= h <= yhi]
    right = width - 14 - (max(text_size(t)[0] for t in hline_labels) + 6 if hline_labels else 4)
    bottom = height - (24 + (16 if xlabel else 0))
    box = (top, bottom, left, right)

    def px(x):
        return left + (np.asarray(x, dtype=float) - xlo) / (xhi - xlo) * (right - left)

    def py(y):
        return bottom - (np.asarray(y, dtype=float) - ylo) / (yhi - ylo) * (bottom - top)

    # grid, frame, ticks
    for t in xticks:
        canvas[top:bottom, int(round(float(px(t))))] = _GRID
    for t in yticks:
        canvas[int(round(float(py(t)))), left:right] = _GRID
    canvas[top, left:right + 1] = _FRAME
    canvas[bottom, left:right + 1] = _FRAME
    canvas[top:bottom + 1, left] = _FRAME
    canvas[top:bottom + 1, right] = _FRAME
    for t, lab in zip(xticks, _tick_labels(xticks)):
        c = int(round(float(px(t))))
        canvas[bottom:bottom + 5, c] = _FRAME
        draw_text(canvas, c, bottom + 8, lab, anchor="ct")
    for t, lab in zip(yticks, ylabels):
        r = int(round(float(py(t))))
        canvas[r, left - 4:left] = _FRAME
        draw_text(canvas, left - 8, r, lab, anchor="rm")
    if top_ticks:
        last_right = -1e9
        for t, lab in top_ticks:
            if not (xlo <= t <= xhi):
                continue
            c = int(round(float(px(t))))
            half = text_size(lab)[0] / 2
            if c - half < last_right + 8:
                continue
            canvas[top - 4:top, c] = _FRAME
            draw_text(canvas, c, top - 8, lab, anchor="cb")
            last_right = c + half
    if top_label:
        draw_text(canvas, (left + right) / 2, top - 22, top_label, anchor="cb")
    if xlabel:
        draw_text(canvas, (left + right) / 2, height - 6, xlabel, anchor="cb")
    if ylabel:
        draw_text(canvas, 6, (top + bottom) / 2, ylabel, anchor="lm", rotate=True)
    if title:
        draw_text(canvas, width / 2, 8, title, scale=2, anchor="ct")

    inner = (top + 1, bottom, left + 1, right)
    for h in hlines:
        if ylo <= h <= yhi:
            r = float(py(h))
            _polyline(canvas, np.array([[left, r], [right, r]]), _REFERENCE, 1.2, inner, dash=(6, 4))
            canvas[int(round(r)), right + 1:right + 4] = _FRAME
            draw_text(canvas, right + 6, r, f"{h:g}", _REFERENCE, anchor="lm")

    legend = []
    ink = np.zeros((inner[1] - inner[0], inner[3] - inner[2]), dtype=np.float32)
    for i, (name, (x, y)) in enumerate(series.items()):
        style = {"color": PALETTE[i % len(PALETTE)], "width": 2.0, "dash": None}
        style.update(styles.get(name, {}))
        pts = np.stack([px(x), py(y)], axis=1)
        np.maximum(ink, _polyline(canvas, pts, style["color"], style["width"], inner, dash=style["dash"]), out=ink)
        legend.append((name, style))

    if legend:
        row_h = 13
        head = 1 if legend_title else 0
        text_w = max([text_size(name)[0] + 30 for name, _ in legend] + [text_size(legend_title)[0]])
        lw, lh = text_w + 16, 6 + row_h * (len(legend) + head) + 2
        lx0, ly0 = _legend_corner(ink, inner, lw, lh)
        lx1 = lx0 + lw
        frame = (200, 200, 200)
        canvas[ly0:ly0 + lh, lx0:lx1] = 255
        canvas[ly0, lx0:lx1] = frame
        canvas[ly0 + lh - 1, lx0:lx1] = frame
        canvas[ly0:ly0 + lh, lx0] = frame
        canvas[ly0:ly0 + lh, lx1 - 1] = frame
        if legend_title:
            draw_text(canvas, lx0 + 8, ly0 + 6 + 3.5, legend_title, anchor="lm")
        for k, (name, style) in enumerate(legend):
            cy = ly0 + 6 + (k + head) * row_h + 3.5
            seg = np.array([[lx0 + 8, cy], [lx0 + 32, cy]])
            _polyline(canvas, seg, style["color"], style["width"], (0, height, 0, width), dash=style["dash"])
            draw_text(canvas, lx0 + 38, cy, name, anchor="lm")
    return canvas
