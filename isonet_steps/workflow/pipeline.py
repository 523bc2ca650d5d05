"""``isonet run``: the whole pipeline on one machine, resumable step by step.

Runs prepare-star → deconv (when a defocus is set) → make-mask → extract → refine → predict (or,
with halves, gold-standard: both half networks, their FSC, and the mean of the two corrections) →
report, by calling the very step commands the executables run. Each finished step leaves a record
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
from ..io.log import get_logger
from .params import BY_NAME, PARAMS

RECORD_DIR = Path(".isonet") / "steps"


def file_fingerprint(path: Path) -> str:
    """Content fingerprint: the whole file up to 8 MiB, else its size and 32 sampled 64 KiB blocks."""
    size = path.stat().st_size
    h = hashlib.blake2b(digest_size=16)
    h.update(str(size).encode())
    with open(path, "rb") as fh:
        if size <= 8 << 20:
            h.update(fh.read())
        else:
            block = 64 << 10
            for k in range(32):
                fh.seek((size - block) * k // 31)
                h.update(fh.read(block))
    return h.hexdigest()


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
        self.log_level = log_level
        self.ground_truth = ground_truth
        self.log = get_logger("run")
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

    def _args(self, mapping: dict[str, str]) -> list[str]:
        """``--option value`` for every param in ``mapping`` (param -> option) that has a value."""
        args: list[str] = []
        for name, opt in mapping.items():
            value = self.p(name)
            if value is None:
                continue
            kind = BY_NAME[name].kind
            if kind == "bool":
                args.append(opt if value else "--no-" + opt[2:])
            elif kind in ("floats", "ints"):
                args += [opt, ",".join(str(v) for v in value)]
            else:
                args += [opt, str(value)]
        return args

    def _settings(self, step: str) -> dict[str, Any]:
        return {p.name: self.params[p.name] for p in PARAMS if step in p.steps}

    def _call(self, name: str, args: list[Any]) -> None:
        from ..cli._invoke import call_step

        call_step(name, [*map(str, args), "--log-level", self.log_level])

    # --- the steps -------------------------------------------------------------------------------
    def steps(self) -> list[Step]:
        """The steps in run order: deconv only with a defocus to correct; gold-standard replaces predict with halves."""
        from ..io.tomostar import TOMOGRAM_SUFFIXES

        star = self.path("tomograms.star")
        tomogram_columns = ("rlnMicrographName", "rlnDeconvTomoName", "rlnMaskName")
        halves = bool(self.p("halves"))
        steps = [Step("prepare", self._prepare, lambda: _star_files(star, ()), self._settings("prepare"),
                      lambda: ([self.source] if self.source.is_file()
                               else [f for f in sorted(self.source.iterdir())
                                     if f.suffix.lower() in TOMOGRAM_SUFFIXES[:2]]))]
        current = star
        if self._needs_deconv():
            deconv_star = self.path("tomograms_deconv.star")
            steps.append(self._star_step("deconv", current, deconv_star, ("rlnDeconvTomoName",), self._deconv))
            current = deconv_star
        mask_star = self.path("tomograms_mask.star")
        steps.append(self._star_step("make_mask", current, mask_star, ("rlnMaskName",), self._make_mask))
        current = mask_star
        subtomo_star = self.path("subtomo.star")
        steps.append(Step("extract", self._extract, lambda: _star_files(subtomo_star, ("rlnImageName",)),
                          self._settings("extract"), lambda: _star_files(mask_star, tomogram_columns)))
        models = ([self.path("refine", f"half{h}", "model_final.keras") for h in (1, 2)] if halves
                  else [self.path("refine", "model_final.keras")])
        steps.append(Step("refine", self._refine, lambda: models, self._settings("refine"),
                          lambda: _star_files(subtomo_star, ("rlnImageName",)), resumable=True))
        corrected_star = self.path("tomograms_corrected.star")
        columns = ("rlnCorrectedTomoName", "rlnCorrectedTomoHalf1", "rlnCorrectedTomoHalf2", "rlnGoldStandardFsc")
        name = "gold_standard" if halves else "predict"
        steps.append(Step(name, self._gold_standard if halves else self._predict,
                          lambda: _star_files(corrected_star, columns),
                          {**self._settings("predict"), **(self._settings("gold_standard") if halves else {})},
                          lambda: [*_star_files(current, tomogram_columns), *models]))
        return steps

    def _star_step(self, name: str, star_in: Path, star_out: Path, columns: tuple[str, ...], run) -> Step:
        return Step(name, lambda: run(star_in, star_out), lambda: _star_files(star_out, columns), self._settings(name),
                    lambda: _star_files(star_in, ("rlnMicrographName", "rlnDeconvTomoName")))

    def _needs_deconv(self) -> bool:
        if self.source.is_dir():
            return bool(self.p("defocus"))
        from ..io.star import read_tomogram_star

        table = read_tomogram_star(self.source)
        return "rlnDefocus" in table.columns and bool((table["rlnDefocus"] > 0).any())

    def _prepare(self) -> None:
        out = self.path("tomograms.star")
        if self.source.is_dir():
            self._call("prepare-star", [self.source, "-o", out, *self._args({
                "pixel_size": "--pixel-size", "defocus": "--defocus", "number_subtomos": "--number-subtomos",
                "tilt_min": "--tilt-min", "tilt_max": "--tilt-max"})])
            return
        from ..io.star import is_set, read_tomogram_star, resolve_path, write_star

        table = read_tomogram_star(self.source)  # a STAR as input: its own values, paths made absolute
        for column in ("rlnMicrographName", "rlnDeconvTomoName", "rlnMaskName",
                       "rlnTomoReconstructedTomogramHalf1", "rlnTomoReconstructedTomogramHalf2"):
            if column in table.columns:
                table[column] = [str(resolve_path(v, self.source, column).resolve()) if is_set(v) else "None"
                                 for v in table[column]]
        write_star(table, out)

    def _deconv(self, star_in: Path, star_out: Path) -> None:
        self._call("deconv", [star_in, "--output-star", star_out, "--deconv-folder", self.path("deconv"), *self._args({
            "voltage": "--voltage", "cs": "--cs", "snrfalloff": "--snrfalloff", "deconvstrength": "--deconvstrength",
            "highpassnyquist": "--highpassnyquist", "chunk_size": "--chunk-size", "overlap_rate": "--overlap-rate"})])

    def _make_mask(self, star_in: Path, star_out: Path) -> None:
        self._call("make-mask", [star_in, "--output-star", star_out, "--mask-folder", self.path("mask"), *self._args({
            "density_percentage": "--density-percentage", "std_percentage": "--std-percentage", "z_crop": "--z-crop",
            "patch_size": "--patch-size", "use_deconv_tomo": "--use-deconv-tomo"})])

    def _extract(self) -> None:
        self._call("extract", [self.path("tomograms_mask.star"), "--subtomo-folder", self.path("subtomo"),
                               "--subtomo-star", self.path("subtomo.star"), *self._args({
                                   "cube_size": "--cube-size", "crop_size": "--crop-size", "seed": "--seed",
                                   "use_deconv_tomo": "--use-deconv-tomo"}),
                               # gold-standard halves draw from separate slabs: no shared voxel
                               *(["--split-halves", "slabs"] if self.p("halves") else [])])

    def _refine(self, resume: bool = False) -> None:
        self._call("refine", [self.path("subtomo.star"), "--result-dir", self.path("refine"),
                              "--continue" if resume else "--no-continue", *self._args({
                                  name: "--" + name.replace("_", "-") for name in (
                                      "iterations", "epochs", "steps_per_epoch", "batch_size", "filter_base",
                                      "unet_depth", "convs_per_depth", "kernel", "dropout", "batch_norm",
                                      "learning_rate", "noise_level", "noise_start_iter", "noise_mode", "precision",
                                      "select_subtomo_number", "pretrained_model", "halves", "seed", "gpus")})])

    def _predict_args(self) -> list[str]:
        return self._args({"predict_cube_size": "--cube-size", "predict_crop_size": "--crop-size",
                           "predict_batch_size": "--batch-size", "use_deconv_tomo": "--use-deconv-tomo",
                           "gpus": "--gpus", "precision": "--precision"})

    def _predict(self) -> None:
        self._call("predict", [self.path("tomograms_mask.star"),
                               self.path("refine", "model_final.keras"), "--output-dir", self.path("corrected"),
                               "--output-star", self.path("tomograms_corrected.star"), *self._predict_args()])

    def _gold_standard(self) -> None:
        self._call("gold-standard", [self.path("tomograms_mask.star"), "--result-dir", self.path("refine"),
                                     "--output-dir", self.path("corrected"),
                                     "--output-star", self.path("tomograms_corrected.star"),
                                     "--cone-angle", self.p("cone_angle"), *self._predict_args()])

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
