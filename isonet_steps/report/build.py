"""The run report: one self-contained HTML page about a finished (or partial) isonet run.

:func:`collect_run` gathers what a run folder holds — ``.isonet/run.json`` and the step records,
the tomogram STAR tables, refine states, FSC JSON files, and the demo's ground truth — reading
volumes through :mod:`isonet_steps.io.mrc` memory maps (three slices and a central box of at most
256³ voxels each, so a 2 GB tomogram reports in seconds). :func:`build_report` turns that into
HTML with the slices embedded as PNG data URIs and the plots as inline SVG. A section whose inputs are missing says so
instead of failing, so a bare refine folder or a half-finished run gets a report too.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io.columns import (
    CORRECTED_HALVES_FSC,
    CORRECTED_TOMO_HALF1,
    CORRECTED_TOMO_HALF2,
    CORRECTED_TOMO_NAME,
    DECONV_TOMO_NAME,
    DEFOCUS,
    GOLD_STANDARD_FSC,
    INDEX,
    MASK_NAME,
    MICROGRAPH_NAME,
    PIXEL_SIZE,
    RAW_HALVES_FSC,
    TILT_MAX,
    TILT_MIN,
    is_set,
)
from ..io.errors import InputError
from ..io.log import get_logger
from ..io.model_record import ModelRecord
from ..io.refine_state import STATE_FILE, RefineState, load_refine_state
from ..io.run_layout import TOMOGRAM_STARS, RunLayout
from .html import esc, page, section, table
from .tables import STEP_ORDER

__all__ = ["TomogramFiles", "RunData", "VolumeView", "collect_run", "read_parts", "load_view", "tomogram_views",
           "versions", "build_report", "STEP_ORDER", "SECTIONS"]

#: Section anchors and titles, in page order.
SECTIONS = (
    ("slices", "Orthogonal slices"),
    ("power", "Fourier power (kz–kx)"),
    ("training", "Training"),
    ("fsc", "Gold-standard FSC"),
    ("halves", "Where the halves disagree"),
    ("quality", "Ground-truth quality"),
    ("inputs", "Input files"),
    ("settings", "Settings"),
    ("timings", "Timings"),
    ("versions", "Versions"),
)
#: At most this many tomograms get pictures (all are listed under the input files).
MAX_PICTURED = 3


@dataclass
class TomogramFiles:
    """One row of the tomogram STAR: its files (None when not made or not found) and geometry."""

    index: int
    raw: Path | None
    pixel_size: float
    tilt_range: tuple[float, float]
    defocus: float | None = None
    deconv: Path | None = None
    mask: Path | None = None
    corrected: Path | None = None
    half1: Path | None = None
    half2: Path | None = None
    fsc: dict[str, Path] = field(default_factory=dict)  # label -> FSC JSON
    raw_name: str = ""


@dataclass
class RunData:
    """What :func:`collect_run` found in a run folder."""

    run_dir: Path
    run_json: dict | None = None
    records: dict[str, dict] = field(default_factory=dict)
    star: Path | None = None
    tomograms: list[TomogramFiles] = field(default_factory=list)
    subtomo_star: Path | None = None
    refine: dict[str, RefineState] = field(default_factory=dict)  # "" or "half 1"/"half 2" -> its state
    models: dict[str, tuple[Path, ModelRecord | None]] = field(default_factory=dict)  # same keys: newest model
    extra_fsc: dict[str, Path] = field(default_factory=dict)  # FSC JSONs found without a STAR
    ground_truth: Path | None = None
    labels: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def halves(self) -> bool:
        """Whether refine trained two gold-standard half networks (half1/, half2/)."""
        return any(k.startswith("half") for k in self.refine)


# --------------------------------------------------------------------------------------- collect


def _read_json(path: Path, notes: list[str]) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        notes.append(f"{path}: unreadable JSON ({' '.join(str(exc).split())[:120]}); left out.")
        return None


def _cell_path(row, column: str, star: Path, notes: list[str]) -> Path | None:
    from ..io.star import resolve_path

    if column not in row.index or not is_set(row[column]):
        return None
    try:
        return resolve_path(row[column], star, column)
    except InputError as exc:
        notes.append(str(exc))
        return None


def _pick_star(layout: RunLayout, notes: list[str]):
    """The most complete tomogram STAR in the run folder and its table (None, None if there is none)."""
    from ..io.star import read_tomogram_star

    names = [*TOMOGRAM_STARS, *sorted(p.name for p in layout.root.glob("*.star") if p.name not in TOMOGRAM_STARS)]
    for name in names:
        path = layout.root / name
        if not path.is_file() or path == layout.subtomo_star:
            continue
        try:
            return path, read_tomogram_star(path)
        except InputError as exc:
            if name in TOMOGRAM_STARS:
                notes.append(str(exc))
    return None, None


def _refine_folders(layout: RunLayout, given: Sequence[Path] = ()) -> dict[str, Path]:
    """The result folders given (one network, or half 1 and half 2), else those of the run's refine folder,
    else the run folder as a bare one.
    """
    if len(given) > 2:
        raise InputError(f"--refine-dir given {len(given)} times; give one result folder, or the two halves' "
                         "(half 1 first).")
    if given:
        return dict(zip(["half 1", "half 2"] if len(given) == 2 else [""], map(Path, given)))
    for base in (layout.refine, layout.root):
        found = {}
        if (base / STATE_FILE).is_file():
            found[""] = base
        for h in (1, 2):
            if (base / f"half{h}" / STATE_FILE).is_file():
                found[f"half {h}"] = base / f"half{h}"
        if found:
            return found
    return {}


def _refine_states(folders: dict[str, Path], notes: list[str]) -> dict[str, RefineState]:
    """The refine state of each result folder; one that cannot be read is left out with a note,
    so the rest of the report still appears.
    """
    states = {}
    for name, folder in folders.items():
        try:
            states[name] = load_refine_state(folder / STATE_FILE)
        except InputError as exc:
            notes.append(f"{exc} It is left out of this report.")
    return states


def _model_records(folders: dict[str, Path], states: dict[str, RefineState],
                   notes: list[str]) -> dict[str, tuple[Path, ModelRecord | None]]:
    """Each network's newest model (the final one, else the last finished iteration's) and its record."""
    from ..io.checkpoint import RefineStore
    from ..io.model_record import read_model_record

    models = {}
    for name, state in states.items():
        store = RefineStore(folders[name])
        path = store.final_model_path if store.final_model_path.is_file() else store.model_path(state.completed)
        if not path.is_file():
            continue
        try:
            models[name] = (path, read_model_record(path))
        except InputError as exc:
            notes.append(str(exc))
    return models


def _tomogram_files(row, star: Path, notes: list[str]) -> TomogramFiles:
    """The files and geometry of one tomogram STAR row (paths resolved against the STAR)."""
    t = TomogramFiles(
        index=int(row[INDEX]), raw=_cell_path(row, MICROGRAPH_NAME, star, notes),
        pixel_size=float(row[PIXEL_SIZE]), tilt_range=(float(row[TILT_MIN]), float(row[TILT_MAX])),
        defocus=float(row[DEFOCUS]) if DEFOCUS in row.index else None,
        deconv=_cell_path(row, DECONV_TOMO_NAME, star, notes),
        mask=_cell_path(row, MASK_NAME, star, notes),
        corrected=_cell_path(row, CORRECTED_TOMO_NAME, star, notes),
        half1=_cell_path(row, CORRECTED_TOMO_HALF1, star, notes),
        half2=_cell_path(row, CORRECTED_TOMO_HALF2, star, notes),
        raw_name=str(row[MICROGRAPH_NAME]) if is_set(row[MICROGRAPH_NAME]) else "",
    )
    for column, label in ((GOLD_STANDARD_FSC, "corrected halves (independent networks)"),
                          (RAW_HALVES_FSC, "raw even/odd half tomograms"),
                          (CORRECTED_HALVES_FSC, "corrected even/odd half tomograms")):
        fsc_path = _cell_path(row, column, star, notes)
        if fsc_path is not None:
            t.fsc[label] = fsc_path
    return t


def _find_ground_truth(run: RunData) -> None:
    """The demo's ground truth (and labels beside it) named in run.json, relative to the run or as given."""
    truth = (run.run_json or {}).get("ground_truth")
    if not truth:
        return
    truth_path = Path(truth) if Path(truth).is_absolute() else run.run_dir / truth
    if not truth_path.is_file() and Path(truth).is_file():
        truth_path = Path(truth)
    if truth_path.is_file():
        run.ground_truth = truth_path
        labels = truth_path.parent / "labels.mrc"
        run.labels = labels if labels.is_file() else None
    else:
        run.notes.append(f"{truth}: ground truth named in run.json not found; its panels and figures are left out.")


def _label(path: Path, run_dir: Path) -> str:
    """A file's name in the report: relative to the run folder where it lies inside it."""
    try:
        return str(path.relative_to(run_dir))
    except ValueError:
        return str(path)


def collect_run(run_dir: str | Path, *, refine_dirs: Sequence[str | Path] = (),
                fsc_files: Sequence[str | Path] = ()) -> RunData:
    """Everything the report shows, located (not yet loaded) in ``run_dir``.

    ``refine_dirs`` (refine's result folder, or the two halves') and ``fsc_files`` (FSC JSONs the
    tomogram STAR does not name) are used instead of those found in the run folder: Nextflow's
    report task passes them as they were staged.

    Raises
    ------
    InputError when ``run_dir`` is missing, not a folder, or holds nothing an isonet run writes.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise InputError(f"{run_dir}: run folder not found; give the --outdir of 'isonet run' or 'isonet demo' "
                         f"(or a refine --result-dir).")
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: is a file, not a run folder; give the --outdir of 'isonet run' "
                         f"(or a refine --result-dir).")
    run = RunData(run_dir=run_dir)
    layout = RunLayout(run_dir)
    notes = run.notes
    if layout.run_json.is_file():
        run.run_json = _read_json(layout.run_json, notes)
    for path in sorted(layout.records.rglob("*.json")):  # a tomogram's step: <step>/<tomogram>.json
        record = _read_json(path, notes)
        if isinstance(record, dict):
            run.records[str(record.get("step", path.relative_to(layout.records).with_suffix("").as_posix()))] = record

    run.star, table_ = _pick_star(layout, notes)
    if table_ is not None and run.star is not None:
        run.tomograms = [_tomogram_files(row, run.star, notes) for _, row in table_.iterrows()]
    if layout.subtomo_star.is_file():
        run.subtomo_star = layout.subtomo_star
    folders = _refine_folders(layout, [Path(d) for d in refine_dirs])
    run.refine = _refine_states(folders, notes)
    run.models = _model_records(folders, run.refine, notes)
    if not any(t.fsc for t in run.tomograms):
        found = [Path(f) for f in fsc_files] or [*run_dir.glob("*fsc*.json"), *run_dir.glob("*/*fsc*.json")]
        for path in sorted(found)[:6]:
            run.extra_fsc[_label(path, run_dir)] = path
    _find_ground_truth(run)

    if not (run.run_json or run.records or run.star or run.refine or run.extra_fsc or run.subtomo_star):
        raise InputError(f"{run_dir}: no isonet run found (no .isonet/run.json, tomogram STAR or refine_state.json); "
                         "give the --outdir of 'isonet run' or 'isonet demo', or a refine --result-dir.")
    return run


# --------------------------------------------------------------------------------------- volumes


@dataclass
class VolumeView:
    """The parts of one volume the report draws, standardised (mean 0, std 1 over the central box)."""

    label: str
    path: Path
    shape: tuple[int, int, int]
    voxel_size: float
    slices: dict[str, np.ndarray]
    box: np.ndarray


def read_parts(data: np.ndarray, chunk_bytes: int = 64 << 20) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The XY, XZ, YZ central slices and the central box of a memory-mapped volume, in one pass.

    The YZ slice crosses every row of the file, so the file is walked once, about 64 MB of Z
    planes at a time, and the mapped pages are dropped after each step: the resident memory
    stays small however large the tomogram, and the reads are sequential (kind to file shares).
    """
    from ..io.mrc import release_pages
    from .figures import central_box

    nz, ny, nx = (int(s) for s in data.shape)
    box_z, box_y, box_x = central_box(data.shape)
    xy = np.empty((ny, nx), np.float32)
    xz = np.empty((nz, nx), np.float32)
    yz = np.empty((nz, ny), np.float32)
    box = np.empty((box_z.stop - box_z.start, box_y.stop - box_y.start, box_x.stop - box_x.start), np.float32)
    step = max(1, chunk_bytes // max(1, ny * nx * data.dtype.itemsize))
    for z0 in range(0, nz, step):
        z1 = min(nz, z0 + step)
        xz[z0:z1] = data[z0:z1, ny // 2, :]
        yz[z0:z1] = data[z0:z1, :, nx // 2]
        if z0 <= nz // 2 < z1:
            xy[:] = data[nz // 2]
        lo, hi = max(z0, box_z.start), min(z1, box_z.stop)
        if lo < hi:
            box[lo - box_z.start:hi - box_z.start] = data[lo:hi, box_y, box_x]
        release_pages(data)
    return {"XY": xy, "XZ": xz, "YZ": yz}, box


def load_view(label: str, path: Path) -> VolumeView:
    """Three central slices and the central box of ``path`` (standardised), read through a memory map."""
    from ..io.mrc import open_memmap
    from .figures import mean_std, standardise

    with open_memmap(path, label) as vol:
        slices, box = read_parts(vol.data)
        voxel = vol.voxel_size
    if not (np.isfinite(box).all() and all(np.isfinite(s).all() for s in slices.values())):
        raise InputError(f"{path}: {label} has NaN/Inf voxels; the report cannot draw it.")
    mean, std = mean_std(box)
    shape = (slices["XZ"].shape[0], slices["XY"].shape[0], slices["XY"].shape[1])
    return VolumeView(label, path, shape, voxel,
                      {k: standardise(v, mean, std) for k, v in slices.items()}, standardise(box, mean, std))


def tomogram_views(run: RunData, t: TomogramFiles) -> list[VolumeView]:
    """Raw, deconvolved, corrected and (demo) ground truth of one tomogram: those that exist and can be read."""
    wanted = [("raw", t.raw), ("deconvolved", t.deconv)]
    if t.corrected is not None:
        wanted.append(("corrected", t.corrected))
    elif t.half1 is not None:
        wanted.append(("corrected (half 1)", t.half1))
    views = []
    for label, path in wanted:
        if path is None:
            continue
        try:
            views.append(load_view(label, path))
        except InputError as exc:
            run.notes.append(str(exc))
    if run.ground_truth is not None and views:
        try:
            from ..io.mrc import read_header

            if read_header(run.ground_truth, "ground truth").shape == views[0].shape:
                views.append(load_view("ground truth", run.ground_truth))
        except InputError as exc:
            run.notes.append(str(exc))
    return views


# --------------------------------------------------------------------------------------- build


def versions() -> dict[str, str]:
    """Versions of the software that built the report (package metadata only: nothing heavy is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    from .. import __version__

    out = {"isonet-nf": __version__, "Python": platform.python_version()}
    for dist in ("numpy", "scipy", "mrcfile", "starfile", "click", "keras", "tensorflow", "matplotlib"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    out["platform"] = platform.platform(terse=True)
    return out


def build_report(run_dir: str | Path, *, refine_dirs: Sequence[str | Path] = (),
                 fsc_files: Sequence[str | Path] = ()) -> str:
    """The HTML text of the report of ``run_dir`` (see the module docstring and :func:`collect_run`)."""
    from . import sections as rs
    from . import tables as rt
    from .halves import halves_block, halves_section
    from .wedge_section import raw_wedge_check

    log = get_logger("report")
    started = time.perf_counter()
    run = collect_run(run_dir, refine_dirs=refine_dirs, fsc_files=fsc_files)
    pictured = run.tomograms[:MAX_PICTURED]
    slices, powers, halves = [], [], []
    for t in pictured:  # one tomogram's volumes in memory at a time
        log.info("reading tomogram %d", t.index)
        views = tomogram_views(run, t)
        slices.append(rs.slices_block(t, views))
        powers.append(rs.power_block(t, views, raw_wedge_check(run, t, views), run.star))
        halves.append(halves_block(run, t))
        del views
    body = [
        rs.slices_section(run, slices),
        rs.power_section(powers),
        rs.training_section(run),
        rs.fsc_section(run),
        halves_section(run, halves),
        rs.quality_section(run, pictured),
        rt.inputs_section(run),
        rt.settings_section(run),
        '<div class="pair">' + rt.timings_section(run),
        section("versions", "Versions", '<p class="caption">Software that built this report '
                "(package metadata; the run itself may have used another installation).</p>"
                + table(["package", "version"], list(versions().items()))) + "</div>",
    ]
    notes = ""
    if run.notes:
        items = "".join(f"<li>{esc(n)}</li>" for n in dict.fromkeys(run.notes))
        notes = section("notes", "Notes", f'<ul class="note">{items}</ul>')
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    header = rt.header_html(run, stamp)
    nav = [*SECTIONS, *([("notes", "Notes")] if notes else [])]
    log.info("report assembled in %.1f s", time.perf_counter() - started)
    footer = f"isonet-nf report · {esc(stamp)} · {esc(run.run_dir.resolve())}"
    return page(f"isonet report · {run.run_dir.resolve().name}", header, nav, notes + "\n".join(body), footer)

