"""``isonet run``: the whole pipeline on one machine, resumable step by step and tomogram by tomogram.

Runs prepare-star, then per tomogram of its plan (``plan/plan.csv``) deconv (when it has a
defocus), make-mask, extract (the tomograms that train), gathers their subtomograms for refine,
then per corrected tomogram predict (or, with halves, gold-standard: both half networks, their FSC,
and the mean of the two corrections), gathers the corrected STAR, and writes the report, by calling
the very ``run_<step>`` functions the step commands call. Each finished step leaves a record in
``<outdir>/.isonet/steps/<step>.json`` (``<step>/<tomogram>.json`` for a tomogram's) holding a key
made of its settings and the fingerprints of what it read, and the fingerprints of what it wrote. A
rerun skips a step whose key and outputs are unchanged, so after a crash or ``kill -9`` it goes on
where it stopped (refine continues after its last finished iteration), a changed setting reruns
exactly the steps it affects and those after, and a tomogram added to the input runs its own steps,
then the gathers and what follows them.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io.atomic import write_text
from ..io.checkpoint import atomic_write_json
from ..io.columns import (
    CORRECTED_HALVES,
    CORRECTED_TOMO_NAME,
    DECONV_TOMO_NAME,
    GOLD_STANDARD_FSC,
    IMAGE_NAME,
    MASK_NAME,
    MICROGRAPH_NAME,
    TILT_ANGLE_FILE,
    is_set,
)
from ..io.errors import InputError
from ..io.fingerprint import file_fingerprint
from ..io.log import get_logger
from ..io.params import PARAMS
from ..io.plan import TomogramPlan
from ..io.run_layout import RunLayout

#: The STAR columns naming a tomogram's files so far (what its later steps read).
STAR_FILES = (MICROGRAPH_NAME, DECONV_TOMO_NAME, MASK_NAME)
DECONV_READS = STAR_FILES[:2]
#: The STAR columns predict and gold-standard fill.
CORRECTED_COLUMNS = (CORRECTED_TOMO_NAME, *CORRECTED_HALVES, GOLD_STANDARD_FSC)
#: What each per-tomogram step writes, by the STAR column naming it.
WRITES = {"deconv": (DECONV_TOMO_NAME,), "make_mask": (MASK_NAME,), "extract": (IMAGE_NAME,),
          "predict": CORRECTED_COLUMNS, "gold_standard": CORRECTED_COLUMNS}


def fingerprints(paths: list[Path]) -> dict[str, str | None]:
    """Fingerprint per file (None: missing), keyed in sorted order so equal sets compare equal."""
    return {str(p): (_fingerprint(p) if p.is_file() else None) for p in sorted(set(paths), key=str)}


def _fingerprint(path: Path) -> str:
    """A file's content fingerprint; a STAR's without its comments (they stamp the time it was written, so a
    step that rewrites a tomogram's STAR as it was, prepare's plan for one, redoes nothing after it).
    """
    if path.suffix != ".star":
        return file_fingerprint(path)
    lines = [line for line in path.read_bytes().splitlines(keepends=True) if not line.startswith(b"#")]
    return hashlib.blake2b(b"".join(lines), digest_size=16).hexdigest()


def _star_files(star: Path, columns: tuple[str, ...]) -> list[Path]:
    """The files a STAR table names in ``columns`` (resolved like the steps resolve them)."""
    from ..io.star import read_star, resolve_path

    if not star.is_file():
        return []
    table = read_star(star)
    out = [star]
    for column in columns:
        if column in table.columns:
            out += [resolve_path(v, star, column) for v in table[column] if is_set(v)]
    return out


@dataclass
class Step:
    """One step as the runner sees it: what it runs, and what decides whether it must run again."""

    name: str
    run: Callable[..., object]
    outputs: Callable[[], list[Path]]
    settings: dict[str, Any]
    inputs: Callable[[], list[Path]]
    resumable: bool = False  # refine: a half-done run is continued, not restarted
    extra_key: dict[str, Any] = field(default_factory=dict)


class Pipeline:
    """The steps of one run directory, with their records."""

    def __init__(self, source: str, outdir: str | os.PathLike, params: dict[str, Any], *, log_level: str = "info",
                 ground_truth: str | None = None):
        self.source = Path(source)
        self.out = Path(outdir)
        self.layout = RunLayout(self.out)
        self.params = {p.name: p.default for p in PARAMS} | {k: v for k, v in params.items() if v is not None}
        self.given = {k for k, v in params.items() if v is not None}  # a tilt file or RELION wins over defaults
        self.log_level = log_level
        self.ground_truth = ground_truth
        self.log = get_logger("run")
        if self.p("model") is not None and (self.p("halves") or not Path(self.p("model")).is_file()):
            raise InputError(f"--model {self.p('model')}: " + (
                "--halves trains two networks; correct with one model, or train with --halves." if self.p("halves")
                else "file not found; give a .keras model written by refine."))
        if not self.source.exists():
            raise InputError(f"{self.source}: input not found; give a folder of tomograms or a tomograms.star.")
        if self.out.exists() and not self.out.is_dir():
            raise InputError(f"{self.out}: exists and is not a folder; choose another --outdir.")
        from ..network.inference import check_tiling

        # predict's tiles are checked now, not after hours of refine
        check_tiling(int(self.p("predict_cube_size")), int(self.p("predict_crop_size")), int(self.p("unet_depth")),
                     names=("--predict-cube-size", "--predict-crop-size"))
        try:
            self.layout.records.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{self.out}: cannot create the output folder ({exc.strerror}); choose a writable "
                             "--outdir.") from None

    # --- helpers ---------------------------------------------------------------------------------
    def p(self, name: str) -> Any:
        """The value in effect (given, else the table's default): short, as the step table uses it a lot."""
        return self.params[name]

    def _settings(self, step: str) -> dict[str, Any]:
        return {p.name: self.params[p.name] for p in PARAMS if step in p.steps}

    # --- the steps -------------------------------------------------------------------------------
    def steps(self) -> Iterator[Step]:
        """The steps in run order; those after prepare come from its plan, so they are made as the run reaches them."""
        yield self._prepare_step()
        from ..io.plan import read_plan
        from ..steps.relion5_out import RELION5_STAR

        rows = read_plan(self.layout.plan_csv)
        latest = {r.id: self.layout.plan_star(r.id) for r in rows}  # each tomogram's STAR after its last step
        deconvolved = [r for r in rows if r.runs("deconv")]
        for r in deconvolved:
            yield self._tomogram_step("deconv", r, latest, self.layout.deconv, DECONV_READS, self._deconv)
        if deconvolved:
            yield self._gather("merge_deconv", [latest[r.id] for r in rows], self.layout.deconv_star, STAR_FILES)
        for r in [r for r in rows if r.runs("make_mask")]:
            yield self._tomogram_step("make_mask", r, latest, self.layout.mask, DECONV_READS, self._make_mask)
        yield self._gather("merge_mask", [latest[r.id] for r in rows], self.layout.mask_star, STAR_FILES)
        models = self._models()
        if self.p("model") is None:  # a given model: nothing to train
            yield from self._training_steps([r for r in rows if r.runs("extract")], latest, models)
        name = "gold_standard" if self.p("halves") else "predict"
        for r in [r for r in rows if r.runs(name)]:
            yield self._tomogram_step(name, r, latest, self.layout.corrected, STAR_FILES,
                                      self._gold_standard if self.p("halves") else self._predict, models=models)
        relion5 = self.layout.corrected / RELION5_STAR  # written for RELION 5 rows only
        yield self._gather("merge_corrected", [latest[r.id] for r in rows], self.layout.corrected_star,
                           (*STAR_FILES, *CORRECTED_COLUMNS), self._merge_corrected,
                           lambda: [relion5] * relion5.is_file())

    def _prepare_step(self) -> Step:
        from ..io.tilt_angles import TILT_FILE_SUFFIXES
        from ..io.tomostar import TOMOGRAM_SUFFIXES

        star = self.layout.tomograms_star
        read = (*TOMOGRAM_SUFFIXES[:2], *TILT_FILE_SUFFIXES)  # a changed .tlt beside a tomogram redoes prepare
        return Step("prepare", self._prepare,
                    lambda: [*_star_files(star, (TILT_ANGLE_FILE,)), self.layout.plan_csv],
                    self._settings("prepare"),
                    lambda: ([self.source] if self.source.is_file()
                             else [f for f in sorted(self.source.iterdir()) if f.suffix.lower() in read]))

    def _tomogram_step(self, name: str, row: TomogramPlan, latest: dict[str, Path], folder: Path,
                       reads: tuple[str, ...], run: Callable[..., None], models: list[Path] | None = None) -> Step:
        """One tomogram's ``name`` step: its STAR so far in, ``folder/<id>.star`` out (its latest, but for
        extract's subtomogram STAR).
        """
        star_in, star_out = latest[row.id], self.layout.part(folder, row.id)
        if name != "extract":
            latest[row.id] = star_out
        settings = self._settings(name) | (self._settings("predict") if name == "gold_standard" else {})
        if name == "extract":
            settings["first_half"] = row.first_half  # the run's balance of odd subtomograms, from the plan
        return Step(f"{name}/{row.id}", lambda: run(star_in, star_out, row),
                    lambda: _star_files(star_out, WRITES[name]), settings,
                    lambda: [*_star_files(star_in, reads), *(models or [])])

    def _gather(self, name: str, parts: list[Path], star_out: Path, columns: tuple[str, ...],
                run: Callable[[list[Path], Path], None] | None = None, extra: Callable[[], list[Path]] = list) -> Step:
        """The run's STAR of a step merged from its tomograms' (merge-star, in the plan's order): those, and the
        files they name in ``columns``, are its inputs; it rewrites nothing else.
        """
        from ..steps.merge_star import run_merge_star

        return Step(name, lambda: (run or run_merge_star)(parts, star_out),
                    lambda: _star_files(star_out, columns) + extra(), {},
                    lambda: [f for part in parts for f in _star_files(part, columns)])

    def _training_steps(self, rows: list[TomogramPlan], latest: dict[str, Path], models: list[Path]) -> Iterator[Step]:
        """Extract per training tomogram, their subtomograms gathered into subtomo.star, refine on it."""
        for r in rows:
            yield self._tomogram_step("extract", r, latest, self.layout.subtomo, STAR_FILES, self._extract)
        subtomo_star = self.layout.subtomo_star
        yield self._gather("merge_subtomo", [self.layout.part(self.layout.subtomo, r.id) for r in rows], subtomo_star,
                           (IMAGE_NAME,))
        yield Step("refine", self._refine, lambda: models, self._settings("refine"),
                   lambda: _star_files(subtomo_star, (IMAGE_NAME,)), resumable=True)

    def _models(self) -> list[Path]:
        """The network(s) predict uses: --model's, else refine's (one per half with --halves)."""
        if self.p("model") is not None:
            return [Path(self.p("model"))]
        if self.p("halves"):
            return [self.layout.refine_half(h) / "model_final.keras" for h in (1, 2)]
        return [self.layout.refine / "model_final.keras"]

    def _values(self, *names: str, **renamed: str) -> dict[str, Any]:
        """The values in effect of ``names``, and of ``renamed`` (keyword -> param), as a step's keywords."""
        return {name: self.p(name) for name in names} | {key: self.p(name) for key, name in renamed.items()}

    def _prepare(self) -> None:
        from ..steps.prepare_star import run_prepare_star

        # a folder or a RELION 5 STAR; an IsoNet STAR keeps its own values (its paths made absolute)
        tilt_min, tilt_max = (self.p(name) if name in self.given else None for name in ("tilt_min", "tilt_max"))
        run_prepare_star(self.source, self.layout.tomograms_star, tilt_min=tilt_min, tilt_max=tilt_max,
                         plan_folder=self.layout.plan, **self._values(
                             "pixel_size", "defocus", "number_subtomos", "wedge_check", "train_idx", "tomo_idx",
                             "fix_nonfinite"))

    def _deconv(self, star_in: Path, star_out: Path, row: TomogramPlan) -> None:
        from ..steps.deconv import run_deconv

        run_deconv(star_in, output_star=star_out, deconv_folder=self.layout.deconv, **self._values(
            "voltage", "cs", "snrfalloff", "deconvstrength", "highpassnyquist", "chunk_size", "overlap_rate"))

    def _make_mask(self, star_in: Path, star_out: Path, row: TomogramPlan) -> None:
        from ..steps.make_mask import run_make_mask

        run_make_mask(star_in, output_star=star_out, mask_folder=self.layout.mask, **self._values(
            "density_percentage", "std_percentage", "z_crop", "patch_size", "use_deconv_tomo"))

    def _extract(self, star_in: Path, star_out: Path, row: TomogramPlan) -> None:
        from ..steps.extract import run_extract

        run_extract(star_in, subtomo_folder=self.layout.subtomo, subtomo_star=star_out, first_half=row.first_half,
                    # gold-standard halves draw from separate slabs: no shared voxel
                    split_halves="slabs" if self.p("halves") else "random",
                    **self._values("cube_size", "crop_size", "seed", "use_deconv_tomo", "noise2noise"))

    def _refine(self, resume: bool = False) -> None:
        import dataclasses

        from ..network.devices import configure
        from ..network.refine import RefineSettings
        from ..steps.refine import run_refine

        configure(self.p("gpus"))
        # every RefineSettings field that is a pipeline parameter (the others keep refine's default)
        settings = RefineSettings(**self._values(*(f.name for f in dataclasses.fields(RefineSettings)
                                                   if f.name in self.params)))
        run_refine(self.layout.subtomo_star, self.layout.refine, settings, resume=resume, halves=self.p("halves"),
                   log_level=self.log_level)

    def _predict_values(self) -> dict[str, Any]:
        return self._values("use_deconv_tomo", "gpus", "precision", cube_size="predict_cube_size",
                            crop_size="predict_crop_size", batch_size="predict_batch_size")

    def _predict(self, star_in: Path, star_out: Path, row: TomogramPlan) -> None:
        from ..steps.predict import run_predict

        run_predict(star_in, self._models()[0], output_dir=self.layout.corrected, output_star=star_out,
                    correct_halves=self.p("noise2noise"), **self._predict_values())

    def _gold_standard(self, star_in: Path, star_out: Path, row: TomogramPlan) -> None:
        from ..steps.gold_standard import run_gold_standard

        run_gold_standard(star_in, self.layout.refine, self.layout.corrected,
                          output_star=star_out, cone_angle=self.p("cone_angle"),
                          **self._predict_values())

    def _merge_corrected(self, parts: list[Path], star_out: Path) -> None:
        """The run's corrected STAR; rows from a RELION 5 project also give corrected/relion5_tomograms.star."""
        from ..steps.merge_star import run_merge_star

        run_merge_star(parts, star_out, relion5_dir=self.layout.corrected, with_halves=self.p("halves"))

    # --- records ---------------------------------------------------------------------------------
    def _key(self, step: Step) -> str:
        payload = json.dumps({"step": step.name, "settings": step.settings, "inputs": fingerprints(step.inputs())},
                             sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()

    def _is_done(self, step: Step, key: str) -> bool:
        path = self.layout.record(step.name)
        if not path.exists():
            return False
        record = json.loads(path.read_text())
        if record.get("key") != key:
            return False
        outputs = record.get("outputs", {})
        if not outputs or any(v is None for v in outputs.values()):
            return False
        return fingerprints([Path(p) for p in outputs]) == outputs

    def run(self, *, report: Callable[[], None] | None = None) -> list[dict]:
        """Run every step that is not already done; returns the step records."""
        atomic_write_json(self.layout.run_json, {
            "input": str(self.source), "params": self.params, "ground_truth": self.ground_truth})
        records = []
        for step in self.steps():
            key = self._key(step)
            if self._is_done(step, key):
                self.log.info("%s: already done, skipped", step.name)
                records.append(json.loads(self.layout.record(step.name).read_text()))
                continue
            started = self.layout.started(step.name)
            resume = step.resumable and started.exists() and started.read_text().strip() == key
            self.log.info("%s: %s", step.name, "continuing" if resume else "running")
            write_text(started, key + "\n")
            t0 = time.time()
            if step.resumable:
                step.run(resume=resume)
            else:
                step.run()
            outputs = fingerprints(step.outputs())
            missing = [p for p, fp in outputs.items() if fp is None]
            if not outputs or missing:
                raise RuntimeError(f"step {step.name} finished without writing {missing or 'its outputs'}")
            record = {"step": step.name, "key": key, "settings": step.settings, "outputs": outputs,
                      "seconds": round(time.time() - t0, 2), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
            atomic_write_json(self.layout.record(step.name), record)
            started.unlink(missing_ok=True)
            records.append(record)
        if report is not None:
            report()
        return records
