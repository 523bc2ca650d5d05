"""The run folder of ``isonet run`` and ``isonet demo``: where each file lies, written once.

The pipeline writes by it and the report reads by it, so the two cannot drift apart. Each
tomogram's own STAR of a step lies in that step's folder (``mask/<id>.star``); the STARs the run
gathers from them (``tomograms_mask.star``, ``subtomo.star``, ``tomograms_corrected.star``) lie at
the top, as do prepare-star's ``tomograms.star`` and its per-tomogram plan, ``plan/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .plan import PLAN_FILE

#: The tomogram STARs of a run, most complete first (the report shows the first it finds).
TOMOGRAM_STARS = ("tomograms_corrected.star", "tomograms_mask.star", "tomograms_deconv.star", "tomograms.star")


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run folder, ``root``."""

    root: Path

    @property
    def tomograms_star(self) -> Path:
        """prepare-star's STAR of every tomogram."""
        return self.root / TOMOGRAM_STARS[3]

    @property
    def plan(self) -> Path:
        """prepare-star's per-tomogram plan: plan.csv and a one-row STAR per tomogram (``plan_star``)."""
        return self.root / "plan"

    @property
    def plan_csv(self) -> Path:
        """One row per tomogram: what the per-tomogram steps are made from."""
        return self.plan / PLAN_FILE

    def plan_star(self, tomogram: str) -> Path:
        """A tomogram's one-row STAR, as prepare-star wrote it."""
        return self.plan / f"{tomogram}.star"

    def part(self, folder: Path, tomogram: str) -> Path:
        """A tomogram's STAR of the step whose files lie in ``folder`` (e.g. ``mask/<id>.star``)."""
        return folder / f"{tomogram}.star"

    @property
    def deconv(self) -> Path:
        """The CTF-deconvolved tomograms."""
        return self.root / "deconv"

    @property
    def deconv_star(self) -> Path:
        """Every tomogram's row after deconv (gathered)."""
        return self.root / TOMOGRAM_STARS[2]

    @property
    def mask(self) -> Path:
        """The sample masks."""
        return self.root / "mask"

    @property
    def mask_star(self) -> Path:
        """Every tomogram's row after make-mask (gathered)."""
        return self.root / TOMOGRAM_STARS[1]

    @property
    def subtomo(self) -> Path:
        """The training subtomograms (and the tilt angles they were cut with)."""
        return self.root / "subtomo"

    @property
    def subtomo_star(self) -> Path:
        """Every training subtomogram with its half: what refine reads (gathered)."""
        return self.root / "subtomo.star"

    @property
    def refine(self) -> Path:
        """The result folder of refine (``half1/`` and ``half2/`` with ``--halves``)."""
        return self.root / "refine"

    def refine_half(self, half: int) -> Path:
        """A gold-standard half network's result folder."""
        return self.refine / f"half{half}"

    @property
    def corrected(self) -> Path:
        """The corrected tomograms, with gold-standard's halves and FSC files (and a RELION 5 tomogram set)."""
        return self.root / "corrected"

    @property
    def corrected_star(self) -> Path:
        """Every tomogram's row after predict or gold-standard (gathered): the run's result."""
        return self.root / TOMOGRAM_STARS[0]

    @property
    def state(self) -> Path:
        """What a rerun compares: run.json and one record per finished step."""
        return self.root / ".isonet"

    @property
    def run_json(self) -> Path:
        """The run's input and parameters."""
        return self.state / "run.json"

    @property
    def records(self) -> Path:
        """The step records (a tomogram's under its step's folder)."""
        return self.state / "steps"

    def record(self, step: str) -> Path:
        """The record of ``step`` (a per-tomogram step's name is ``<step>/<id>``)."""
        return self.records / f"{step}.json"

    def started(self, step: str) -> Path:
        """Marks a step that started and has not finished (refine continues from it)."""
        return self.state / f"{step}.started"

    @property
    def report(self) -> Path:
        """The HTML report."""
        return self.root / "report.html"
