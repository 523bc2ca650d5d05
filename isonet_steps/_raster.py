"""Anti-aliased drawing on RGB uint8 canvases: text from the bitmap font, thick and dashed lines.

Private helpers of :mod:`isonet_steps.png`; coordinates are pixels, x to the right, y down.
"""

from __future__ import annotations

import math

import numpy as np

from ._bitmap_font import CAP_HEIGHT, text_bitmap, text_size

INK = (30, 30, 30)


def blend(canvas: np.ndarray, alpha: np.ndarray, y0: int, x0: int, color) -> None:
    """Blend ``color`` into ``canvas`` with per-pixel coverage ``alpha``, clipped to the canvas."""
    h, w = alpha.shape
    ya, xa = max(0, y0), max(0, x0)
    yb, xb = min(canvas.shape[0], y0 + h), min(canvas.shape[1], x0 + w)
    if ya >= yb or xa >= xb:
        return
    a = alpha[ya - y0 : yb - y0, xa - x0 : xb - x0, None].astype(np.float32)
    region = canvas[ya:yb, xa:xb].astype(np.float32)
    col = np.asarray(color, dtype=np.float32)[: canvas.shape[2]]
    canvas[ya:yb, xa:xb] = np.rint(region * (1.0 - a) + col * a).astype(np.uint8)


def draw_text(
    canvas: np.ndarray, x: float, y: float, text: str, color=INK, *, scale: int = 1,
    anchor: str = "lt", rotate: bool = False,
) -> None:
    """Print ``text`` on an RGB ``canvas`` in place.

    ``anchor`` is two letters: horizontal l/c/r and vertical t/m/b, relative to the capital
    letters' box (so "cm" centres digits on a tick). ``rotate`` turns the text 90° anticlockwise
    (for a y-axis label); the anchor then refers to the rotated box.
    """
    ink = text_bitmap(text, scale)
    width, _ = text_size(text, scale)
    box_w, box_h = width, CAP_HEIGHT * scale
    if rotate:
        ink = np.rot90(ink)
        box_w, box_h = box_h, width
    h_anchor, v_anchor = anchor[0], anchor[1]
    left = x - {"l": 0, "c": box_w / 2, "r": box_w}[h_anchor]
    top = y - {"t": 0, "m": box_h / 2, "b": box_h}[v_anchor]
    blend(canvas, ink.astype(np.float32), int(round(top)), int(round(left)), color)


def _segment_coverage(p0, p1, half_width: float, box) -> tuple[np.ndarray, int, int] | None:
    """Anti-aliased coverage of a thick segment within ``box = (y0, y1, x0, x1)``."""
    (xa, ya), (xb, yb) = p0, p1
    pad = half_width + 1.5
    x0 = max(box[2], int(math.floor(min(xa, xb) - pad)))
    x1 = min(box[3], int(math.ceil(max(xa, xb) + pad)))
    y0 = max(box[0], int(math.floor(min(ya, yb) - pad)))
    y1 = min(box[1], int(math.ceil(max(ya, yb) + pad)))
    if x0 >= x1 or y0 >= y1:
        return None
    px = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5
    py = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
    dx, dy = xb - xa, yb - ya
    length2 = dx * dx + dy * dy
    if length2 > 0:
        t = np.clip(((px - xa) * dx + (py - ya) * dy) / length2, 0.0, 1.0)
    else:
        t = np.zeros((1, 1), dtype=np.float32)
    dist = np.hypot(px - (xa + t * dx), py - (ya + t * dy))
    return np.clip(half_width + 0.5 - dist, 0.0, 1.0), y0, x0


def _dashes(points: np.ndarray, pattern: tuple[float, float]) -> list[np.ndarray]:
    """Split a polyline into its "on" pieces for a dash ``pattern`` (on, off) in pixels."""
    on, off = pattern
    cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(points, axis=0).T))])
    total = float(cum[-1])

    def at(s: float) -> np.ndarray:
        i = min(int(np.searchsorted(cum, s, side="right")) - 1, len(points) - 2)
        span = cum[i + 1] - cum[i]
        f = 0.0 if span <= 0 else (s - cum[i]) / span
        return points[i] + f * (points[i + 1] - points[i])

    pieces = []
    start = 0.0
    while start < total:
        stop = min(start + on, total)
        inner = points[1:-1][(cum[1:-1] > start) & (cum[1:-1] < stop)]
        pieces.append(np.vstack([at(start)[None], inner, at(stop)[None]]))
        start += on + off
    return pieces


def polyline(canvas, points: np.ndarray, color, width: float, box, dash=None) -> np.ndarray:
    """Draw connected points (pixel coordinates, NaN breaks the line) with round joins.

    Returns the coverage drawn within ``box`` (used to place the legend where it hides least).
    """
    finite = np.isfinite(points).all(axis=1)
    runs: list[np.ndarray] = []
    start = None
    for i, ok in enumerate(list(finite) + [False]):
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            runs.append(points[start:i])
            start = None
    if dash is not None:
        runs = [piece for run in runs if len(run) > 1 for piece in _dashes(run, dash)]
    y0, y1, x0, x1 = box
    alpha = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
    for run in runs:
        pairs = zip(run[:-1], run[1:]) if len(run) > 1 else [(run[0], run[0])]
        for a, b in pairs:
            cov = _segment_coverage(a, b, width / 2.0, box)
            if cov is None:
                continue
            c, sy, sx = cov
            view = alpha[sy - y0 : sy - y0 + c.shape[0], sx - x0 : sx - x0 + c.shape[1]]
            np.maximum(view, c, out=view)
    blend(canvas, alpha, y0, x0, color)
    return alpha


