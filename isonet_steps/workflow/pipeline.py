"""``isonet run``: the whole pipeline on one machine, resumable step by step.

Runs prepare-star → deconv (when a defocus is set) → make-mask → extract → refine → predict (or,
with halves, gold-standard: both half networks, their FSC, and the mean of the two corrections) →
report, by calling the very ``run_<step>`` functions the step commands call. Each finished step leaves a record
in ``<outdir>/.isonet/steps/<step>.json`` holding a key made of its settings and the fingerprints of
what it read, and the fingerprints of what it wrote. A rerun skips a step whose key and outputs are
unchanged, so after a crash or ``kill -9`` it goes on where it stopped (refine continues after its
last finished iteration), and a changed setting reruns exactly the steps it affects and those after.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io.atomic import write_text
from ..io.checkpoint import atomic_write_json
from ..io.errors import InputError
from ..io.fingerprint import file_fingerprint
from ..io.log import get_logger
from ..io.params import PARAMS

RECORD_DIR = Path(".isonet") / "steps"


def fingerprints(paths: list[Path]) -> dict[str, str | None]:
    """Fingerprint per file (None: missing), keyed in sorted order so equal sets compare equal."""
    return {str(p): (file_fingerprint(p) if p.is_file() else None) for p in sorted(set(paths), key=str)}


def _star_files(star: Path, columns: tuple[str, ...]) -> list[Path]:
    """The files a STAR table names in ``columns`` (resolved like the steps resolve them)."""
    from ..io.star import is_set, read_star, resolve_path

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
    run: Callable[[], None]
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
            (self.out / RECORD_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{self.out}: cannot create the output folder ({exc.strerror}); choose a writable "
                             "--outdir.") from None

    # --- helpers ---------------------------------------------------------------------------------
    def p(self, name: str) -> Any:
        """The value in effect (given, else the table's default): short, as the step table uses it a lot."""
        return self.params[name]

    def path(self, *parts: str) -> Path:
        """Every output lies under the run directory, so a rerun finds it again."""
        return self.out.joinpath(*parts)

    def _settings(self, step: str) -> dict[str, Any]:
        return {p.name: self.params[p.name] for p in PARAMS if step in p.steps}

    # --- the steps -------------------------------------------------------------------------------
    def steps(self) -> list[Step]:
        """The steps in run order: deconv only with a defocus to correct; gold-standard replaces predict with halves."""
        from ..io.tilt_angles import TILT_ANGLE_COLUMN, TILT_FILE_SUFFIXES
        from ..io.tomostar import TOMOGRAM_SUFFIXES

        star = self.path("tomograms.star")
        tomogram_columns = ("rlnMicrographName", "rlnDeconvTomoName", "rlnMaskName")
        halves = bool(self.p("halves"))
        read = (*TOMOGRAM_SUFFIXES[:2], *TILT_FILE_SUFFIXES)  # a changed .tlt beside a tomogram redoes prepare
        steps = [Step("prepare", self._prepare, lambda: _star_files(star, (TILT_ANGLE_COLUMN,)),
                      self._settings("prepare"),
                      lambda: ([self.source] if self.source.is_file()
                               else [f for f in sorted(self.source.iterdir()) if f.suffix.lower() in read]))]
        current = star
        if self._needs_deconv():
            deconv_star = self.path("tomograms_deconv.star")
            steps.append(self._star_step("deconv", current, deconv_star, ("rlnDeconvTomoName",), self._deconv))
            current = deconv_star
        mask_star = self.path("tomograms_mask.star")
        steps.append(self._star_step("make_mask", current, mask_star, ("rlnMaskName",), self._make_mask))
        current = mask_star
        subtomo_star = self.path("subtomo.star")
        models = self._models()
        if self.p("model") is None:  # a given model: nothing to train
            steps.append(Step("extract", self._extract, lambda: _star_files(subtomo_star, ("rlnImageName",)),
                              self._settings("extract"), lambda: _star_files(mask_star, tomogram_columns)))
            steps.append(Step("refine", self._refine, lambda: models, self._settings("refine"),
                              lambda: _star_files(subtomo_star, ("rlnImageName",)), resumable=True))
        corrected_star = self.path("tomograms_corrected.star")
        columns = ("rlnCorrectedTomoName", "rlnCorrectedTomoHalf1", "rlnCorrectedTomoHalf2", "rlnGoldStandardFsc")
        name = "gold_standard" if halves else "predict"
        relion5_star = self.path("corrected", "relion5_tomograms.star")  # written for RELION 5 rows only
        steps.append(Step(name, self._gold_standard if halves else self._predict,
                          lambda: _star_files(corrected_star, columns) + [relion5_star] * relion5_star.is_file(),
                          {**self._settings("predict"), **(self._settings("gold_standard") if halves else {})},
                          lambda: [*_star_files(current, tomogram_columns), *models]))
        return steps

    def _star_step(self, name: str, star_in: Path, star_out: Path, columns: tuple[str, ...], run) -> Step:
        return Step(name, lambda: run(star_in, star_out), lambda: _star_files(star_out, columns), self._settings(name),
                    lambda: _star_files(star_in, ("rlnMicrographName", "rlnDeconvTomoName")))

    def _models(self) -> list[Path]:
        """The network(s) predict uses: --model's, else refine's (one per half with --halves)."""
        if self.p("model") is not None:
            return [Path(self.p("model"))]
        if self.p("halves"):
            return [self.path("refine", f"half{h}", "model_final.keras") for h in (1, 2)]
        return [self.path("refine", "model_final.keras")]

    def _selected(self, column: str) -> str:
        """The rlnIndex values of the plan's rows that train, or are corrected, or either (``any``)."""
        from ..io.plan import PLAN_FILE, read_plan

        rows = read_plan(self.path("plan", PLAN_FILE))
        wanted = [r.index for r in rows if (r.trains or r.corrects if column == "any" else getattr(r, column))]
        return ",".join(map(str, wanted))

    def _needs_deconv(self) -> bool:
        if self.source.is_dir():
            return bool(self.p("defocus"))
        from ..io.relion5 import is_relion5_star, read_relion5_project
        from ..io.star import read_tomogram_star

        if is_relion5_star(self.source):  # the defocus of each zero-tilt image, from RELION's CTF estimation
            return any(t.defocus > 0 for t in read_relion5_project(self.source).tomograms)

        table = read_tomogram_star(self.source)
        return "rlnDefocus" in table.columns and bool((table["rlnDefocus"] > 0).any())

    def _values(self, *names: str, **renamed: str) -> dict[str, Any]:
        """The values in effect of ``names``, and of ``renamed`` (keyword -> param), as a step's keywords."""
        return {name: self.p(name) for name in names} | {key: self.p(name) for key, name in renamed.items()}

    def _prepare(self) -> None:
        from ..steps.prepare_star import run_prepare_star

        # a folder or a RELION 5 STAR; an IsoNet STAR keeps its own values (its paths made absolute)
        tilt_min, tilt_max = (self.p(name) if name in self.given else None for name in ("tilt_min", "tilt_max"))
        run_prepare_star(self.source, self.path("tomograms.star"), tilt_min=tilt_min, tilt_max=tilt_max,
                         plan_folder=self.path("plan"), **self._values(
                             "pixel_size", "defocus", "number_subtomos", "wedge_check", "train_idx", "tomo_idx",
                             "fix_nonfinite"))

    def _deconv(self, star_in: Path, star_out: Path) -> None:
        from ..steps.deconv import run_deconv

        run_deconv(star_in, output_star=star_out, deconv_folder=self.path("deconv"), tomo_idx=self._selected("any"),
                   **self._values(
            "voltage", "cs", "snrfalloff", "deconvstrength", "highpassnyquist", "chunk_size", "overlap_rate"))

    def _make_mask(self, star_in: Path, star_out: Path) -> None:
        from ..steps.make_mask import run_make_mask

        run_make_mask(star_in, output_star=star_out, mask_folder=self.path("mask"), tomo_idx=self._selected("any"),
                      **self._values(
            "density_percentage", "std_percentage", "z_crop", "patch_size", "use_deconv_tomo"))

    def _extract(self) -> None:
        from ..steps.extract import run_extract

        run_extract(self.path("tomograms_mask.star"), subtomo_folder=self.path("subtomo"),
                    subtomo_star=self.path("subtomo.star"),
                    # gold-standard halves draw from separate slabs: no shared voxel
                    split_halves="slabs" if self.p("halves") else "random", tomo_idx=self._selected("trains"),
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
        run_refine(self.path("subtomo.star"), self.path("refine"), settings, resume=resume, halves=self.p("halves"),
                   log_level=self.log_level)

    def _predict_values(self) -> dict[str, Any]:
        return self._values("use_deconv_tomo", "gpus", "precision", cube_size="predict_cube_size",
                            crop_size="predict_crop_size", batch_size="predict_batch_size")

    def _predict(self) -> None:
        from ..steps.predict import run_predict

        run_predict(self.path("tomograms_mask.star"), self._models()[0], tomo_idx=self._selected("corrects"),
                    output_dir=self.path("corrected"), output_star=self.path("tomograms_corrected.star"),
                    correct_halves=self.p("noise2noise"), **self._predict_values())

    def _gold_standard(self) -> None:
        from ..steps.gold_standard import run_gold_standard

        run_gold_standard(self.path("tomograms_mask.star"), self.path("refine"), self.path("corrected"),
                          output_star=self.path("tomograms_corrected.star"), cone_angle=self.p("cone_angle"),
                          tomo_idx=self._selected("corrects"), **self._predict_values())

    # --- records ---------------------------------------------------------------------------------
    def _record_path(self, name: str) -> Path:
        return self.out / RECORD_DIR / f"{name}.json"

    def _key(self, step: Step) -> str:
        payload = json.dumps({"step": step.name, "settings": step.settings, "inputs": fingerprints(step.inputs())},
                             sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()

    def _is_done(self, step: Step, key: str) -> bool:
        path = self._record_path(step.name)
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
        atomic_write_json(self.out / ".isonet" / "run.json", {
            "input": str(self.source), "params": self.params, "ground_truth": self.ground_truth})
        records = []
        for step in self.steps():
            key = self._key(step)
            if self._is_done(step, key):
                self.log.info("%s: already done, skipped", step.name)
                records.append(json.loads(self._record_path(step.name).read_text()))
                continue
            started = self.out / ".isonet" / f"{step.name}.started"
            resume = step.resumable and started.exists() and started.read_text().strip() == key
            self.log.info("%s: %s", step.name, "continuing" if resume else "running")
            write_text(started, key + "\n")
            t0 = time.time()
            if step.resumable:
                step.run(resume=resume)  # type: ignore[call-arg]
            else:
                step.run()
            outputs = fingerprints(step.outputs())
            missing = [p for p, fp in outputs.items() if fp is None]
            if not outputs or missing:
                raise RuntimeError(f"step {step.name} finished without writing {missing or 'its outputs'}")
            record = {"step": step.name, "key": key, "settings": step.settings, "outputs": outputs,
                      "seconds": round(time.time() - t0, 2), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
            atomic_write_json(self._record_path(step.name), record)
            started.unlink(missing_ok=True)
            records.append(record)
        if report is not None:
            report()
        return records
