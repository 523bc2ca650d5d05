"""The per-tomogram plan: one CSV row per tomogram, written by prepare-star, read by the workflows.

Nextflow scatters its per-tomogram tasks over these rows (``splitCsv(header: true)``, in the
style of an nf-core samplesheet) and ``isonet run`` does the same, so neither re-derives what the
package already knows (paths, halves, voxel size, which tomograms train and which are corrected).
Files the input provides are named by absolute path; files prepare-star itself writes (each
tomogram's one-row STAR, its tilt angles) by bare name, as they travel as its task's outputs.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .atomic import write_text
from .errors import InputError

#: File name of the plan inside the plan folder.
PLAN_FILE = "plan.csv"
#: The steps of ``isonet run`` done once per tomogram (:meth:`TomogramPlan.runs` says for which).
PER_TOMOGRAM_STEPS = ("deconv", "make_mask", "extract", "predict", "gold_standard")


@dataclass(frozen=True)
class TomogramPlan:
    """What the workflows need to know of one tomogram, without reading any STAR file."""

    id: str  # the tomogram's name: its file stem (RELION 5: rlnTomoName); unique in a run
    index: int  # rlnIndex: selects the row (--tomo-idx, --train-idx) and seeds its subtomograms
    star: str  # bare name of its one-row tomograms.star in the plan folder
    tomogram: str  # absolute path of the tomogram
    half1: str  # absolute paths of the raw even/odd halves, "" when none
    half2: str
    tilt_angles: str  # bare name of its tilt-angle file in the plan folder, "" when a range alone
    voxel_size: float  # Å
    defocus: float  # Å; > 0: CTF deconvolution applies
    tilt_min: float
    tilt_max: float
    subtomos: int  # rlnNumberSubtomo
    first_half: int  # the half that gets an odd subtomogram out (keeps the halves balanced over the run)
    trains: bool  # its subtomograms train the network (--train-idx)
    corrects: bool  # it is corrected (--tomo-idx)
    relion5: bool  # it came from a RELION 5 project (predict writes it back as a RELION 5 STAR)

    def runs(self, step: str) -> bool:
        """Whether a run does ``step`` (one of :data:`PER_TOMOGRAM_STEPS`) for this tomogram: the one rule that
        ``isonet run`` builds its steps by and the report counts them by.
        """
        used = self.trains or self.corrects
        return {"deconv": used and self.defocus > 0, "make_mask": used, "extract": self.trains,
                "predict": self.corrects, "gold_standard": self.corrects}[step]


COLUMNS = tuple(f.name for f in fields(TomogramPlan))


def plan_text(rows: list[TomogramPlan]) -> str:
    """The CSV text of ``rows`` (booleans as true/false, as Nextflow and YAML read them)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (str(v).lower() if isinstance(v, bool) else v) for k, v in asdict(row).items()})
    return out.getvalue()


def write_plan(rows: list[TomogramPlan], path: str | os.PathLike) -> Path:
    """Write the plan atomically."""
    return write_text(Path(path), plan_text(rows))


def read_plan(path: str | os.PathLike) -> list[TomogramPlan]:
    """Read a plan written by :func:`write_plan`; one-line errors for anything else."""
    path = Path(path)
    try:
        with open(path, newline="") as fh:
            records = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read the tomogram plan ({exc}); rerun prepare-star.") from None
    rows = []
    for number, record in enumerate(records, start=2):
        missing = [c for c in COLUMNS if record.get(c) is None]
        if missing:
            raise InputError(f"{path}: line {number} lacks {', '.join(missing)}; rerun prepare-star to write the plan.")
        try:
            values: dict[str, Any] = {f.name: _parse(f.type, record[f.name]) for f in fields(TomogramPlan)}
            rows.append(TomogramPlan(**values))
        except ValueError as exc:
            raise InputError(f"{path}: line {number}: {exc}; rerun prepare-star to write the plan.") from None
    return rows


def _parse(kind: object, text: str) -> object:
    if kind in (bool, "bool"):
        if text not in ("true", "false"):
            raise ValueError(f"{text!r} is not true or false")
        return text == "true"
    if kind in (int, "int"):
        return int(text)
    if kind in (float, "float"):
        return float(text)
    return text
