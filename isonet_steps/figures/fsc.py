"""The FSC figure: global, directional and missing-wedge curves with their thresholds and resolutions.

Below the steps, so the ``fsc`` and ``gold-standard`` steps draw their PNG themselves and the report
shows the same figure (as SVG). matplotlib loads only when a figure is drawn (:mod:`.plots`).
"""

from __future__ import annotations

import numpy as np

from ..core.fsc import FSCResult, threshold_key

#: Line styles of the FSC plot (``Axes.plot`` keywords): axes solid, planes dashed, global black and thicker;
#: the missing-wedge split, when present, thickest: measured region dark green, missing wedge magenta.
PLOT_STYLES: dict[str, dict] = {
    "global": {"color": "#000000", "linewidth": 2.2},
    "x": {"color": "#d62728", "linewidth": 1.5},
    "y": {"color": "#2ca02c", "linewidth": 1.5},
    "z": {"color": "#1f77b4", "linewidth": 1.5},
    "xy": {"color": "#ff7f0e", "linewidth": 1.3, "linestyle": (0, (5, 3))},
    "xz": {"color": "#9467bd", "linewidth": 1.3, "linestyle": (0, (5, 3))},
    "yz": {"color": "#17becf", "linewidth": 1.3, "linestyle": (0, (5, 3))},
    "measured": {"color": "#006d2c", "linewidth": 2.8},
    "wedge": {"color": "#d01ad0", "linewidth": 2.8},
}
#: Legend names of the FSC curves that are not an axis or a plane.
_FSC_LABELS = {"global": "global", "measured": "measured", "wedge": "missing wedge"}


def fsc_label(name: str) -> str:
    """How a curve of the FSC is named in the legend: ``global``, ``X``, ``XY plane``, ``missing wedge``."""
    if name in _FSC_LABELS:
        return _FSC_LABELS[name]
    return name.upper() if len(name) == 1 else name.upper() + " plane"


#: Round resolutions (Å) the top axis may label.
_NICE_RESOLUTIONS = (1000, 500, 300, 200, 150, 100, 80, 60, 50, 40, 30, 25, 20, 15, 12, 10, 8, 6, 5, 4, 3, 2.5, 2,
                     1.5, 1)


def _resolution_ticks(nyquist_frequency: float, min_gap: float = 0.08) -> list[tuple[float, str]]:
    """(frequency, "Å") ticks of the top axis: round resolutions, finest first, none closer than
    ``min_gap`` of the axis width (to each other or to zero), so the crowded low frequencies do
    not overprint.
    """
    ticks: list[tuple[float, str]] = []
    for r in reversed(_NICE_RESOLUTIONS):
        f = 1.0 / r
        if f > nyquist_frequency * (1 + 1e-9) or f / nyquist_frequency < min_gap:
            continue
        if ticks and (ticks[-1][0] - f) / nyquist_frequency < min_gap:
            continue
        ticks.append((f, f"{r:g}"))
    return ticks


def fsc_figure(result: FSCResult, *, title: str = "Fourier shell correlation", width: int = 640,
               height: int = 400, dpi: float = 100.0):
    """The FSC curves as a matplotlib figure of ``width x height`` pixels at ``dpi``: frequency
    (Å⁻¹) below, resolution (Å) on top, each threshold a dashed grey line labelled at its left end.
    """
    from .plots import REFERENCE, line_axes, new_figure, style

    nyq = 1.0 / result.nyquist
    keys = [threshold_key(t) for t in result.thresholds]
    series = {}
    styles = {}
    for name in result.directions:
        label = fsc_label(name)
        values = [result.resolution.get(k, {}).get(name, float("nan")) for k in keys]
        label += " " + " / ".join(f"{v:.1f}" if np.isfinite(v) else "–" for v in values)
        series[label] = (result.frequency, result.curves[name])
        styles[label] = PLOT_STYLES[name]
    fig = new_figure(width, height, dpi=dpi)
    with style():
        ax = line_axes(fig, series, styles=styles, title=title, xlabel="spatial frequency (Å⁻¹)", ylabel="FSC",
                       xlim=(0.0, nyq), ylim=(-0.2, 1.05))
        # the legend beside the axes: inside it would hide curves or a threshold line
        ax.legend(title="resolution (Å)\nat FSC " + " / ".join(keys), loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  borderaxespad=0.0, fontsize=7.5, title_fontsize=7.5)
        for t in result.thresholds:
            ax.axhline(t, color=REFERENCE, linewidth=1.2, linestyle=(0, (6, 4)), zorder=1.5)
            ax.annotate(f"{t:g}", (0.0, t), xycoords=("axes fraction", "data"), xytext=(4, 2),
                        textcoords="offset points", ha="left", va="bottom", color=REFERENCE, fontsize=8)
        top = ax.secondary_xaxis("top")
        ticks = _resolution_ticks(nyq)
        top.set_xticks([f for f, _ in ticks], [s for _, s in ticks])
        top.set_xlabel("resolution (Å)")
    return fig


def fsc_png(result: FSCResult) -> bytes:
    """The FSC curves as PNG bytes: the file the fsc and gold-standard steps write beside the JSON."""
    from .plots import figure_png

    return figure_png(fsc_figure(result))
