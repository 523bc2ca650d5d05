"""The picture sections of the run report (slices, power, training, FSC, ground truth).

A section whose inputs are missing says "not run" (and why) rather than failing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..io.errors import InputError
from ..io.refine_state import IterationRecord, RefineState
from .html import esc, figure, fmt_seconds, not_run, section, table

#: Ground-truth figures need whole volumes in memory: only up to this many voxels.
MAX_QUALITY_VOXELS = 64 * 1024 * 1024

_AXES = {"XY": ("z", 0), "XZ": ("y", 1), "YZ": ("x", 2)}


def _title(t) -> str:
    return f"Tomogram {t.index}: {Path(t.raw_name).name or '(unnamed)'}"


# ---------------------------------------------------------------------------------------- slices


def slices_block(t, vs) -> str:
    """Raw, corrected (and true) XY/XZ/YZ panels of one tomogram, one grey window for all."""
    from .figures import contrast_window, display_factor, slice_panel

    parts = [f"<h3>{esc(_title(t))}</h3>"]
    if not vs:
        return parts[0] + not_run("No volume of this tomogram could be read (see Notes).")
    if not any(v.label.startswith("corrected") for v in vs):
        parts.append(not_run("Not run: no corrected tomogram yet (predict has not run); the raw tomogram only."))
    reference = vs[0].box
    window = contrast_window(reference[::2, ::2, ::2] if reference.size > 4_000_000 else reference)
    factor = display_factor(vs[0].shape)
    cols = len(vs)
    width = {1: 560, 2: 520, 3: 410}.get(cols, 300)
    grid = [f'<div class="panels" style="grid-template-columns: repeat({cols}, minmax(0, {width}px))">']
    grid += [f'<div class="colhead">{esc(v.label)}</div>' for v in vs]
    for plane, (axis, dim) in _AXES.items():
        for v in vs:
            image = slice_panel(v.slices[plane], window, factor)
            caption = f"{v.label} · {plane} at {axis} = {v.shape[dim] // 2}"
            grid.append(figure(image, caption, pixelated=image.shape[1] < 400))
    grid.append("</div>")
    parts.append("".join(grid))
    nz, ny, nx = vs[0].shape
    vox = vs[0].voxel_size or t.pixel_size
    binned = f" Pictures are binned {factor}×{factor} for display." if factor > 1 else ""
    parts.append(
        f'<p class="caption">Central slices of a {nx} × {ny} × {nz} voxel (X × Y × Z) volume at {vox:g} Å/voxel '
        f"({nx * vox / 10:.0f} × {ny * vox / 10:.0f} × {nz * vox / 10:.0f} nm). XY is seen from above (Y down), "
        "XZ and YZ are side views with Z (the beam) down the page: the missing wedge smears features along Z there. "
        "Contrast: each volume is standardised to mean 0 and standard deviation 1 over its central box "
        f"(at most 256³ voxels); every panel uses the same grey window, the 1st–99th percentile of the "
        f"standardised {esc(vs[0].label)} tomogram ({window[0]:.2f} to {window[1]:.2f}). Protein is dark.{binned}</p>")
    return "\n".join(parts)


def slices_section(run, blocks: list[str]) -> str:
    """Orthogonal slices of every tomogram shown (a note when more exist than are shown)."""
    if not blocks:
        return section("slices", "Orthogonal slices",
                       not_run("Not run: no tomogram STAR in this folder (prepare-star has not run)."))
    more = len(run.tomograms) - len(blocks)
    if more > 0:
        blocks = [*blocks, f'<p class="note">{more} more tomograms are listed under Input files but not pictured.</p>']
    return section("slices", "Orthogonal slices", "\n".join(blocks))


# ---------------------------------------------------------------------------------------- power


def power_block(t, vs, wedge_check=None, star: Path | None = None) -> str:
    """kz–kx log-power maps of one tomogram's volumes on one colour scale, wedge edges dashed.

    ``wedge_check`` (:class:`report.wedge_section.RawWedgeCheck`) adds the wedge's outline, the
    measured range estimated from the raw data and the verdict under the figure.
    """
    from .figures import kzkx_log_power, power_figure, power_window, wedge_power_ratio
    from .html import plot_figure
    from .wedge_section import wedge_check_html

    if not vs:
        return ""
    maps = [kzkx_log_power(v.box) for v in vs]
    window = power_window([m for v, m in zip(vs, maps) if v.label != "ground truth"])
    parts = [f"<h3>{esc(_title(t))}</h3>"]
    if not any(v.label.startswith("corrected") for v in vs):
        parts.append(not_run("Not run: no corrected tomogram yet; the raw spectrum only."))
    shares = []
    for v, m in zip(vs, maps):
        ratio = wedge_power_ratio(m, t.tilt_range)
        if math.isfinite(ratio):
            shares.append(f"{v.label} · wedge/measured power {ratio:.2f}")
    fig = power_figure(maps, [v.label for v in vs], window, voxel_size=vs[0].voxel_size or t.pixel_size,
                       tilt_range=t.tilt_range, intervals=wedge_check.wedge.intervals if wedge_check else None,
                       estimated=wedge_check.check.edges if wedge_check else None)
    parts.append(plot_figure(fig, "; ".join(shares) or "log power in the kz–kx plane",
                             alt=f"log power kz-kx of {', '.join(v.label for v in vs)}", cls="plot power"))
    parts.append(wedge_check_html(wedge_check, t, star))
    bz, by, bx = vs[0].box.shape
    parts.append(
        f'<p class="caption">log₁₀ of the Fourier power of the central {bx} × {by} × {bz} voxels (X × Y × Z, '
        "standardised, tapered along X and Z), averaged over ky, zero frequency in the centre: kx runs left to "
        "right and kz bottom to top, both to ±Nyquist. One colour scale for all panels (brighter = more power; "
        "the colour bar gives log₁₀ of the power). "
        f"The dashed lines mark the tilt range {t.tilt_range[0]:g}° to {t.tilt_range[1]:g}°: the tilt series measured "
        "the double wedge around the horizontal kx axis between them; the missing wedge is the region around the "
        "vertical kz axis, dark before correction and filled after it. The wedge/measured figure is the mean power "
        "in the missing wedge over that in the measured region, for 0.05 < |k| < 0.4 cycles/voxel.</p>")
    return "\n".join(parts)


def power_section(blocks: list[str]) -> str:
    """Fourier power before and after: where the missing wedge was filled, seen directly."""
    title = "Fourier power in the kz–kx plane"
    blocks = [b for b in blocks if b]
    if not blocks:
        return section("power", title, not_run("Not run: no tomogram could be read."))
    return section("power", title, "\n".join(blocks))


# ---------------------------------------------------------------------------------------- training


def training_section(run) -> str:
    """Losses and noise per iteration, so a user sees whether training converged."""
    title = "Training"
    if not run.refine:
        return section("training", title, not_run("Not run: no refine_state.json (refine has not started)."))
    status = [f"{name or 'network'}: {state.completed} of {state.target_iterations} iterations done"
              for name, state in run.refine.items()]
    parts = [f'<p class="caption">{esc("; ".join(status))}.</p>']
    plots = _training_plots(run.refine)
    if plots:
        parts.append(f'<div class="plots">{"".join(plots)}</div>')
        parts.append('<p class="caption">Iteration <i>i</i> spans (<i>i</i> − 1, <i>i</i>] on the x axis; its epochs '
                     "sit evenly inside it (one stopped early by early_stop_patience ends before it does). "
                     "The loss is the mean absolute error (L1, as in IsoNet) between the "
                     "network's output and the rotated subtomogram on the measured region; it rises when the "
                     "noise level steps up.</p>")
    else:
        parts.append(not_run("No iteration has finished yet."))
    iterations_table = _iterations_table({name: state.iterations for name, state in run.refine.items()})
    if iterations_table:
        parts.append(iterations_table)
    parts.append(_model_record_table(run.models))
    return section("training", title, "\n".join(parts))


def _model_record_table(models: dict) -> str:
    """What each network's newest model file records of its training (io/model_record.py), side by side."""
    from ..io.model_record import VOXEL_SIZE_TOLERANCE

    if not models:
        return ""
    records = {name: record for name, (_, record) in models.items()}
    known = [r for r in records.values() if r is not None]
    fields = [label for label, _ in known[0].rows()] if known else []
    rows = [["model file", *(path.name for path, _ in models.values())]]
    for i, label in enumerate(fields):
        rows.append([label, *("—" if r is None else r.rows()[i][1] for r in records.values())])
    if not known:
        rows.append(["record", *("none (an older model)" for _ in records)])
    header = ["", *(name or "network" for name in records)]
    return ("<h3>Model record</h3>" + table(header, rows)
            + '<p class="caption">What the model file records of its training, in its metadata.json. predict '
              f"refuses a tomogram whose voxel size is more than {VOXEL_SIZE_TOLERANCE:.0%} off the model's and "
              "warns when one is deconvolved and the other is not; a model without a record (an older "
              "isonet-nf's, IsoNet's) is used unchecked.</p>")


def _training_plots(states: dict[str, RefineState]) -> list[str]:
    """The loss curves of every network and the noise schedule (planned and used) of the first."""
    from .figures import loss_plot, noise_plot
    from .html import plot_figure

    plots = []
    loss = loss_plot({name: [r.to_json() for r in state.iterations] for name, state in states.items()})
    if loss is not None:
        plots.append(plot_figure(loss, "training (solid) and validation (dashed) loss per epoch"))
    first = next(iter(states.values()))
    series: dict[str, list[tuple[int, float]]] = {}
    if len(first.noise_schedule) > 1:
        series["planned"] = [(i, float(v)) for i, v in enumerate(first.noise_schedule) if i >= 1]
    if first.iterations:
        series["used"] = [(r.iteration, r.noise_level) for r in first.iterations]
    noise = noise_plot(series) if series else None
    if noise is not None:
        plots.append(plot_figure(noise, "noise level added to the training inputs per iteration"))
    return plots


def _iterations_table(runs: dict[str, list[IterationRecord]]) -> str:
    """Per iteration: its noise and, per network, the last epoch's losses and the time ('' if none finished)."""
    names = list(runs)
    rows = []
    for it in sorted({r.iteration for recs in runs.values() for r in recs}):
        row: list[object] = [it]
        level = None
        for name in names:
            rec = next((r for r in runs[name] if r.iteration == it), None)
            if rec is None:
                row += ["—", "—", "—"]
                continue
            level = rec.noise_level
            loss_v = rec.loss[-1] if rec.loss else float("nan")
            val_v = rec.val_loss[-1] if rec.val_loss else float("nan")
            row += [f"{loss_v:.4g}", f"{val_v:.4g}", fmt_seconds(rec.seconds)]
        row.insert(1, "—" if level is None else f"{level:g}")
        rows.append(row)
    if not rows:
        return ""
    header = ["iteration", "noise"]
    for name in names:
        tag = f" ({name})" if name else ""
        header += [f"loss{tag}", f"val. loss{tag}", f"time{tag}"]
    opened = " open" if len(rows) <= 12 else ""
    return (f"<details{opened}><summary>Per iteration: last epoch's losses and time</summary>"
            f"{table(header, rows, numeric=list(range(len(header))))}</details>")


# ---------------------------------------------------------------------------------------- FSC


def fsc_result_from_dict(data: dict):
    """An :class:`fsc.FSCResult` from the JSON ``isonet fsc`` writes (null -> NaN)."""
    from ..core.fsc import FSCResult, wedge_from_dict

    def arr(values) -> np.ndarray:
        return np.array([np.nan if v is None else float(v) for v in values], dtype=float)

    directions = data.get("directions") or list(data["fsc"])
    resolution = {k: {d: (np.nan if v is None else float(v)) for d, v in per.items()}
                  for k, per in data["resolution_A"].items()}
    return FSCResult(
        frequency=arr(data["frequency_per_A"]),
        curves={d: arr(data["fsc"][d]) for d in directions},
        counts={d: np.asarray(data.get("n_voxels", {}).get(d, []), dtype=np.int64) for d in directions},
        resolution=resolution,
        pixel_size=float(data["pixel_size_A"]),
        cone_angle=float(data.get("cone_angle_deg", 20.0)),
        shape=tuple(int(s) for s in data.get("shape_zyx", (0, 0, 0))),  # type: ignore[arg-type]
        thresholds=tuple(float(k) for k in data["resolution_A"]),
        wedge=wedge_from_dict(data.get("wedge")),
    )


#: Table names of the FSC curves that are not a cone or a slab.
_FSC_ROW_NAMES = {"global": "global", "measured": "measured region (tilt range)", "wedge": "missing wedge"}


def _fsc_row_name(direction: str) -> str:
    if direction in _FSC_ROW_NAMES:
        return _FSC_ROW_NAMES[direction]
    return f"{direction.upper()} axis (cone)" if len(direction) == 1 else f"{direction.upper()} plane (slab)"


def _wedge_caption(result) -> str:
    """What the measured/wedge rows mean, when the FSC has them."""
    if "wedge" not in result.curves:
        return ""
    which = f" ({result.wedge.describe()})" if result.wedge is not None else ""
    return (f" Measured region: the directions the tilt series{which} recorded; missing wedge: those it never did "
            "(with its gaps), each at every frequency.")


def _fsc_block(label: str, path: Path, notes: list[str]) -> str:
    from ..figures.fsc import fsc_figure
    from .html import plot_figure

    try:
        data = json.loads(path.read_text())
        result = fsc_result_from_dict(data)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        notes.append(f"{path}: not an FSC JSON of 'isonet fsc' ({type(exc).__name__}: {exc}); left out.")
        return not_run(f"{label}: the FSC file could not be read (see Notes).")
    names = list(result.directions)
    keys = list(data["resolution_A"])
    heads = ["direction", *[f"FSC {k} (Å)" for k in keys]]
    rows = []
    for d in names:
        cells = []
        for key in keys:
            v = data["resolution_A"][key].get(d)
            if v is None:
                cells.append("—")
            else:
                cells.append(f"{float(v):.1f}" + ("*" if abs(float(v) - result.nyquist) < 1e-6 else ""))
        rows.append([_fsc_row_name(d), *cells])
    return (f"<h3>{esc(label)}</h3><div class=\"plots\">"
            + plot_figure(fsc_figure(result), f"{path.name}: global and directional FSC", cls="plot fsc")
            + '<div class="side">' + table(heads, rows, numeric=list(range(1, len(heads))))
            + f'<p class="caption">Resolution in Å where each curve first falls below the threshold; '
              f"* = never falls below it (Nyquist, {result.nyquist:g} Å). Cones and slabs have a half-angle of "
              f"{result.cone_angle:g}°. Volume {' × '.join(map(str, result.shape[::-1]))} voxels (X × Y × Z) at "
              f"{result.pixel_size:g} Å/voxel.{esc(_wedge_caption(result))}</p></div></div>")


def fsc_section(run) -> str:
    """Directional gold-standard FSC curves and their resolutions (with --halves)."""
    title = "Gold-standard FSC"
    blocks = []
    for t in run.tomograms:
        for label, path in t.fsc.items():
            blocks.append(_fsc_block(f"Tomogram {t.index}, {label}", path, run.notes))
    for label, path in run.extra_fsc.items():
        blocks.append(_fsc_block(label, path, run.notes))
    if not blocks:
        why = ("the gold-standard step has not finished yet." if run.halves
               else "the gold-standard step did not run (run with --halves to get it).")
        return section("fsc", title, not_run(f"Not run: {why}"))
    intro = ('<p class="caption">What this FSC measures: the consistency between two networks trained independently '
             "on random halves of the subtomograms, each used to correct the whole tomogram. Both predictions saw the "
             "same input tomogram, so shared noise and shared artefacts correlate too: this is a measure of how "
             "reproducibly each direction is restored, not of agreement with the true structure. Curves: global, cones "
             "around the X, Y and Z axes (solid) and slabs around the XY, XZ and YZ planes (dashed); "
             "Z is the beam direction, where the missing wedge acts. Where the tilt range is known, two thick curves "
             "split Fourier space by it: the measured region (dark green) and the missing wedge (magenta), i.e. how "
             "reproducibly the directions never recorded are restored, next to those that were.</p>")
    return section("fsc", title, intro + "\n".join(blocks))


# ---------------------------------------------------------------------------------------- quality


_QUALITY_ROWS = (
    ("fourier_corr_missing_wedge", "Fourier correlation with the truth, missing wedge", True),
    ("fourier_corr_measured", "Fourier correlation with the truth, measured region", True),
    ("real_space_corr", "Real-space correlation with the truth", True),
    ("bead_z_over_x", "Gold-bead elongation Z/X (1 = round)", False),
)


def quality_section(run, pictured) -> str:
    """Fourier correlation with the ground truth, where a phantom gives one (the demo, benchmarks)."""
    from ..core.metrics import quality_report
    from ..core.wedge import Wedge
    from ..io.mrc import read_header, read_volume

    title = "Ground-truth quality"
    if run.ground_truth is None:
        return section("quality", title, not_run("Not run: no ground truth (only the demo's phantom has one)."))
    parts = []
    for t in pictured:
        if t.raw is None or t.corrected is None:
            parts.append(not_run(f"Tomogram {t.index}: not run, no corrected tomogram yet."))
            continue
        try:
            shape = read_header(run.ground_truth, "ground truth").shape
            raw_shape = read_header(t.raw, "tomogram").shape
            if raw_shape != shape or read_header(t.corrected, "corrected tomogram").shape != shape:
                continue
            if math.prod(shape) > MAX_QUALITY_VOXELS:
                parts.append(not_run(f"Tomogram {t.index}: skipped, too large to compare in memory."))
                continue
            truth = read_volume(run.ground_truth, "ground truth").data
            labels = read_volume(run.labels, "labels", allow_constant=True).data if run.labels else None
            figures = {name: quality_report(read_volume(path, name).data, truth, labels,
                                             Wedge.from_range(*t.tilt_range))
                       for name, path in (("raw", t.raw), ("corrected", t.corrected))}
        except InputError as exc:
            run.notes.append(str(exc))
            continue
        rows = []
        for key, label, higher_better in _QUALITY_ROWS:
            if key not in figures["raw"]:
                continue
            a, b = figures["raw"][key], figures["corrected"][key]
            if higher_better:
                better = b > a
            else:
                better = abs(b - 1.0) < abs(a - 1.0)
            if not (math.isfinite(a) and math.isfinite(b)):
                verdict = "—"
            elif abs(b - a) < 0.005:
                verdict = "unchanged"
            else:
                verdict = '<span class="better">better</span>' if better else '<span class="worse">worse</span>'
            rows.append([esc(label), f"{a:.3f}", f"{b:.3f}", verdict])
        parts.append(f"<h3>{esc(_title(t))}</h3>" + table(["figure", "raw", "corrected", "corrected vs raw"], rows,
                                                           numeric=[1, 2], raw_html=True))
    if not parts:
        return section("quality", title, not_run("Not run: the ground truth does not match any tomogram's shape."))
    caption = ('<p class="caption">Against the phantom\'s noise-free density. Fourier correlations are over '
               "0.02 < |k| < 0.4 cycles/voxel, split into the missing wedge (never measured by the tilt series: "
               "only the correction can put the right signal there) and the measured region. "
               "The bead figure is the median ratio of the gold beads' extent along Z and along X.</p>")
    return section("quality", title, caption + "\n".join(parts))


