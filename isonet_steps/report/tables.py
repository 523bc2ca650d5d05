"""The header and the table sections of the run report: inputs, settings, timings.

Each builds an HTML fragment from :class:`report.RunData`; missing inputs give a "not run" line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..io.columns import CROP_SIZE, CUBE_SIZE, RANDOM_SUBSET
from ..io.errors import InputError
from ..io.plan import PER_TOMOGRAM_STEPS, read_plan
from .html import esc, fmt_seconds, fmt_value, not_run, section, table

#: Pipeline steps in the order they run: the names of ``.isonet/steps/<step>.json``, and of
#: ``<step>/<tomogram>.json`` for the steps run per tomogram (the ``merge_`` ones gather those).
STEP_ORDER = ("prepare", "deconv", "merge_deconv", "make_mask", "merge_mask", "extract", "merge_subtomo", "refine",
              "predict", "gold_standard", "merge_corrected")


def step_kind(name: str) -> str:
    """The step a record is of: ``make_mask/TS_01`` is make-mask's record for tomogram TS_01."""
    return name.split("/", 1)[0]


def _plan_rows(run) -> list | None:
    """The rows of the run's plan (plan/plan.csv), None without one."""
    from ..io.run_layout import RunLayout

    path = RunLayout(run.run_dir).plan_csv
    if not path.is_file():
        return None
    try:
        return read_plan(path)
    except InputError as exc:
        run.notes.append(str(exc))
        return None


def step_progress(run) -> list[tuple[str, int, int]]:
    """Each step a whole run does (gathers aside) with its records found and expected: a tomogram's steps count
    the plan's tomograms it runs for (one, without a plan); deconv where it ran, gold-standard with halves,
    else predict; no extract or refine with a given model.
    """
    kinds = ["prepare", "deconv", "make_mask", "extract", "refine", "gold_standard" if run.halves else "predict"]
    rows = _plan_rows(run)
    if rows is None and "deconv" not in {step_kind(s) for s in run.records}:
        kinds.remove("deconv")
    if ((run.run_json or {}).get("params") or {}).get("model"):
        kinds = [k for k in kinds if k not in ("extract", "refine")]
    progress = []
    for kind in kinds:
        if rows is None or kind not in PER_TOMOGRAM_STEPS:
            progress.append((kind, int(any(step_kind(s) == kind for s in run.records)), 1))
            continue
        units = [f"{kind}/{r.id}" for r in rows if r.runs(kind)]
        if units:
            progress.append((kind, sum(u in run.records for u in units), len(units)))
    return progress


def _gold_resolution(run) -> tuple[float, float] | None:
    """Global resolution at 0.143 (Å) and Nyquist of the first gold-standard FSC, if any."""
    for t in run.tomograms:
        for label, path in t.fsc.items():
            if label.startswith("corrected halves"):
                try:
                    data = json.loads(path.read_text())
                    return float(data["resolution_A"]["0.143"]["global"]), float(data["nyquist_A"])
                except (OSError, ValueError, KeyError, TypeError):
                    return None
    return None


def header_html(run, stamp: str) -> str:
    """Title, run folder and summary cards."""
    cards = []
    source = (run.run_json or {}).get("input")
    progress = step_progress(run)
    if source:
        cards.append(("input", Path(source).name, ""))
    if run.tomograms:
        cards.append(("tomograms", str(len(run.tomograms)), ""))
    if run.records:
        done = sum(found == expected for _, found, expected in progress)
        cards.append(("steps done", f"{done} of {len(progress)}", "ok" if done == len(progress) else "warn"))
        cards.append(("run time", fmt_seconds(sum(float(r.get("seconds") or 0) for r in run.records.values())), ""))
    for name, state in list(run.refine.items())[:2]:
        cards.append((f"refine {name}".strip(), f"{state.completed} of {state.target_iterations} iterations",
                      "ok" if state.completed >= state.target_iterations else "warn"))
        if state.last is not None and state.last.val_loss:
            cards.append((f"final val. loss {name}".strip(), f"{state.last.val_loss[-1]:.4g}", ""))
    gold = _gold_resolution(run)
    if gold is not None:
        res, nyq = gold
        cards.append(("gold-standard FSC 0.143", f"{res:.1f} Å" + (" (Nyquist)" if abs(res - nyq) < 1e-6 else ""), ""))
    html_cards = "".join(f'<div class="card"><div class="k">{esc(k)}</div><div class="v {c}">{esc(v)}</div></div>'
                         for k, v, c in cards)
    kind = "demo (phantom with ground truth)" if run.ground_truth else "run"
    return (f"<h1>IsoNet missing-wedge correction — {esc(kind)} report</h1>"
            f'<div class="sub">{esc(run.run_dir.resolve())} · built {esc(stamp)}</div>'
            f'<div class="cards">{html_cards}</div>')


def inputs_section(run) -> str:
    """The tomograms and subtomograms the run used, with the voxel sizes from both sources."""
    from ..io.mrc import read_header

    title = "Input files"
    parts = []
    if run.run_json:
        rows = [["input", run.run_json.get("input") or "—"]]
        if run.run_json.get("ground_truth"):
            rows.append(["ground truth", run.run_json["ground_truth"]])
            if run.labels is not None:
                rows.append(["labels", str(run.labels)])
        parts.append(table(["", "path"], rows))
    if run.tomograms:
        rows = []
        for t in run.tomograms:
            shape, voxel = "—", "—"
            if t.raw is not None:
                try:
                    h = read_header(t.raw, "tomogram")
                    shape = " × ".join(map(str, h.shape[::-1]))
                    voxel = f"{h.voxel_size:g}" if h.voxel_size else "not set"
                except InputError as exc:
                    run.notes.append(str(exc))
            outputs = (("deconvolved", t.deconv), ("mask", t.mask), ("corrected", t.corrected), ("halves", t.half1))
            made = ", ".join(name for name, p in outputs if p is not None) or "—"
            defocus = f"{t.defocus:g}" if t.defocus else "—"
            rows.append([t.index, t.raw_name or "—", shape, voxel, f"{t.pixel_size:g}",
                         f"{t.tilt_range[0]:g}° to {t.tilt_range[1]:g}°", defocus, made])
        parts.append(f'<p class="caption">From {esc(run.star.name)}. Shape X × Y × Z in voxels; voxel size from '
                     "the MRC header and rlnPixelSize from the STAR file, in Å; tilt range in degrees; "
                     "defocus in Å.</p>")
        parts.append(table(["#", "tomogram", "shape", "header Å/voxel", "STAR Å/voxel", "tilt range", "defocus",
                            "outputs"], rows, numeric=[0, 3, 4]))
    if run.subtomo_star is not None:
        try:
            from ..io.star import read_subtomo_star

            sub = read_subtomo_star(run.subtomo_star)
            text = f"{len(sub)} subtomograms"
            if CROP_SIZE in sub.columns:
                text += f" of {int(sub[CROP_SIZE].iloc[0])}³ voxels"
            if CUBE_SIZE in sub.columns:
                text += f" (training cube {int(sub[CUBE_SIZE].iloc[0])}³)"
            if RANDOM_SUBSET in sub.columns:
                counts = sub[RANDOM_SUBSET].value_counts().to_dict()
                text += ", halves " + " / ".join(f"{counts.get(h, 0)}" for h in (1, 2))
            parts.append(f'<p class="caption">{esc(run.subtomo_star.name)}: {esc(text)}.</p>')
        except InputError as exc:
            run.notes.append(str(exc))
    if not parts:
        return section("inputs", title, not_run("Not run: no run.json and no tomogram STAR in this folder."))
    return section("inputs", title, "\n".join(parts))


def timings_section(run) -> str:
    """Wall time per step and per refine iteration: where a run's hours went."""
    title = "Timings"
    if not run.records and not run.refine:
        return section("timings", title, not_run("Not run: no step records (.isonet/steps) in this folder."))
    rows = []
    total = 0.0
    order = {s: i for i, s in enumerate(STEP_ORDER)}
    names = sorted(run.records, key=lambda s: order.get(step_kind(s), len(order)))  # a step's tomograms as found
    for name in names:
        rec = run.records[name]
        seconds = rec.get("seconds")
        total += float(seconds or 0)
        rows.append([name.replace("_", "-"), fmt_seconds(seconds), rec.get("finished", "—")])
    parts = []
    if rows:
        rows.append(["total", fmt_seconds(total), ""])
        parts.append(table(["step", "time", "finished"], rows, numeric=[1]))
    missing = [kind.replace("_", "-") + (f" ({expected - found} of {expected} tomograms)" if found else "")
               for kind, found, expected in step_progress(run) if found < expected]
    if run.records and missing:
        parts.append(not_run(f"Not run (or not finished): {', '.join(missing)}."))
    for name, state in run.refine.items():
        secs = [r.seconds for r in state.iterations]
        if secs:
            parts.append(f'<p class="caption">refine {esc(name)}: {len(secs)} iterations, '
                         f"mean {esc(fmt_seconds(float(np.mean(secs))))} per iteration "
                         f"(batch {esc(state.batch_size)}, {esc(state.steps_per_epoch)} steps per epoch).</p>")
    return section("timings", title, "\n".join(parts))


def settings_section(run) -> str:
    """The run's parameters, those changed from their defaults first."""
    from ..io.params import BY_NAME

    title = "Settings"
    params = (run.run_json or {}).get("params")
    if isinstance(params, dict) and params:
        changed: list[list[str]] = []
        rest: list[list[str]] = []
        for name, value in params.items():
            p = BY_NAME.get(name)
            default = p.default if p else None
            given = tuple(value) if isinstance(value, list) else value
            row = [name, fmt_value(value), fmt_value(default) if p else "—", p.help if p else ""]
            (changed if p is None or given != default else rest).append(row)
        head = ["parameter", "value", "default", "meaning"]
        parts = ['<p class="caption">Parameters of the run, from .isonet/run.json.</p>']
        if changed:
            parts.append(f"<h3>Changed from the default ({len(changed)})</h3>" + table(head, changed))
        if rest:
            parts.append(f"<details><summary>At their default ({len(rest)})</summary>{table(head, rest)}</details>")
        return section("settings", title, "\n".join(parts))
    for name, state in run.refine.items():
        if state.settings:
            rows = [[k, fmt_value(v)] for k, v in state.settings.items()]
            return section("settings", title, f'<p class="caption">Refine settings{esc(" of " + name if name else "")} '
                           "(refine_state.json; no run.json in this folder).</p>" + table(["setting", "value"], rows))
    return section("settings", title, not_run("Not run: no run.json or refine state with settings in this folder."))
