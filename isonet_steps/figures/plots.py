"""Figures with matplotlib: line plots, SVG for the report, PNG for files, grey slices as PNG.

matplotlib is imported inside the functions, never at module import, so the command-line
start-up stays fast; :func:`prepare_matplotlib` runs first and points MPLCONFIGDIR at a
temporary folder when the home folder is read-only (containers, batch jobs), so matplotlib never
warns about its cache. Figures are ``matplotlib.figure.Figure`` objects with their own Agg
canvas: no pyplot, no global figure state shared between calls or threads.
"""

from __future__ import annotations

import atexit
import io
import itertools
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["prepare_matplotlib", "style", "new_figure", "line_axes", "figure_svg", "figure_png", "gray_png", "COLORS"]

#: Line colours in the order series get them (matplotlib's default cycle, named here so that
#: related curves, e.g. one half's training and validation loss, can share one).
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#17becf", "#8c564b", "#e377c2")
#: Colour of reference lines (FSC thresholds): a grey no data curve uses.
REFERENCE = "#808080"

_STYLE: dict[str, Any] = {
    "font.family": "sans-serif",
    "font.size": 9.0,
    "axes.grid": True,
    "grid.color": "#e4e4e4",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "legend.fontsize": 8.0,
    "legend.framealpha": 0.9,
    "svg.fonttype": "none",  # SVG text stays text: selectable, searchable, scales with the page
    "svg.hashsalt": "isonet",  # the same figure gives the same SVG
}
_svg_ids = itertools.count(1)


def _writable(folder: Path) -> bool:
    """Whether ``folder`` exists (or can be made) and can be written to."""
    from ..io.atomic import folder_problem

    return folder_problem(folder, create=True) is None


def prepare_matplotlib() -> None:
    """Make matplotlib's config and cache folder writable before it is imported, and keep it quiet.

    Unset MPLCONFIGDIR and an unwritable default (``$XDG_CONFIG_HOME`` or ``~/.config``, and
    ``$XDG_CACHE_HOME`` or ``~/.cache``) would make matplotlib warn on every import; a temporary
    folder, removed at exit, is used instead. The font cache is then rebuilt per process, so its
    "building the font cache" warning is silenced too.
    """
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    if os.environ.get("MPLCONFIGDIR"):
        return
    home = Path(os.path.expanduser("~"))
    config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "matplotlib"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache") / "matplotlib"
    if _writable(config) and _writable(cache):
        return
    folder = tempfile.mkdtemp(prefix="isonet-matplotlib-")
    atexit.register(shutil.rmtree, folder, True)
    os.environ["MPLCONFIGDIR"] = folder


def style():
    """The project's look (fonts, grid, SVG text as text) as a context for drawing and saving.

    matplotlib reads most settings when an artist is made, some (tick labels) only when the
    figure is drawn: every step, saving included, runs inside this context.
    """
    prepare_matplotlib()
    from matplotlib import rc_context

    return rc_context(_STYLE)  # type: ignore[arg-type]  # matplotlib types rc keys as a closed Literal set


def new_figure(width: float, height: float, *, dpi: float = 100.0) -> Figure:
    """An empty figure of ``width x height`` pixels at ``dpi`` (inches = pixels / dpi), with an Agg canvas."""
    with style():
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, layout="constrained")
        FigureCanvasAgg(fig)
    return fig


def line_axes(fig: Figure, series: Mapping[str, tuple[Sequence[float] | np.ndarray, Sequence[float] | np.ndarray]], *,
              styles: Mapping[str, Mapping] | None = None, title: str = "", xlabel: str = "", ylabel: str = "",
              xlim: tuple[float, float] | None = None, ylim: tuple[float, float] | None = None,
              legend_title: str | None = None, legend_loc: str = "best") -> Axes:
    """One axes on ``fig`` with ``series`` (label -> (x, y); NaN breaks a line) drawn in order.

    ``styles`` maps a label to keyword arguments of ``Axes.plot`` (color, linewidth, linestyle);
    without one a series takes the next of :data:`COLORS`. The legend lists every series. In SVG
    the ``i``-th curve is the group with id ``series-i``.
    """
    styles = styles or {}
    with style():
        ax = fig.add_subplot()
        for i, (label, (x, y)) in enumerate(series.items()):
            kwargs = {"color": COLORS[i % len(COLORS)], "linewidth": 1.6, **styles.get(label, {})}
            (line,) = ax.plot(np.asarray(x, dtype=float), np.asarray(y, dtype=float), label=label, **kwargs)
            line.set_gid(f"series-{i}")  # the SVG group of the curve: findable by tests and scripts
        if xlim is not None:
            ax.set_xlim(*xlim)
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if series:
            ax.legend(title=legend_title, loc=legend_loc)  # type: ignore[call-overload]  # loc is any matplotlib location
    return ax


def _scoped_ids(svg: str, prefix: str) -> str:
    """Give every id (and every reference to one) ``prefix``, so several SVGs share one HTML page."""
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m.group(1)})", svg)
    return re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}{m.group(1)}"', svg)


def figure_svg(fig: Figure, *, label: str = "") -> str:
    """The figure as an ``<svg>`` element to write inline into HTML.

    Text stays text. The XML prolog, the metadata and the namespace declarations (which HTML's
    parser does not need) are left out; ids are made unique on the page. ``label`` becomes the
    SVG's accessible name.
    """
    buf = io.StringIO()
    with style():
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg, count=2)
    svg = _scoped_ids(svg, f"f{next(_svg_ids)}-")
    if label:
        from html import escape

        svg = svg.replace("<svg ", f'<svg role="img" aria-label="{escape(label, quote=True)}" ', 1)
    return svg.strip()


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes, at the figure's own size and dpi."""
    buf = io.BytesIO()
    with style():
        fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def gray_png(image: np.ndarray) -> bytes:
    """An 8-bit grey PNG of a ``uint8`` ``(H, W)`` picture (a slice), pixel for pixel."""
    from PIL import Image

    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 2:
        raise ValueError(f"gray_png needs a 2-D uint8 picture, got {array.dtype} {array.shape}.")
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()
