"""The per-tomogram plan prepare-star writes beside its tomograms.star: one-row STARs and plan.csv.

Each tomogram's later steps (deconv, make-mask, extract, predict) run on its own one-row STAR,
so Nextflow can run them as one task per tomogram and ``isonet run`` can redo one tomogram alone.
The rows keep their rlnIndex (which seeds each tomogram's subtomograms) and the plan records which
half gets each tomogram's odd subtomogram out, so the subtomograms and halves of a run are the
same whether it is extracted in one step or tomogram by tomogram.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..core.extract import odd_halves
from ..io.columns import (
    DEFOCUS,
    INDEX,
    MICROGRAPH_NAME,
    NUMBER_SUBTOMO,
    PIXEL_SIZE,
    RAW_HALVES,
    RELION_TOMOGRAMS_STAR,
    TILT_ANGLE_FILE,
    TILT_MAX,
    TILT_MIN,
    TOMO_NAME,
    is_set,
)
from ..io.errors import InputError
from ..io.plan import PLAN_FILE, TomogramPlan, write_plan
from ..io.star import absolute_paths, parse_tomo_idx, resolve_path, write_star


def tomogram_id(row: dict) -> str:
    """A tomogram's name in a run: RELION's rlnTomoName, else its file's stem (as extract names subtomograms)."""
    name = row.get(TOMO_NAME)
    return str(name) if is_set(name) else Path(str(row[MICROGRAPH_NAME])).stem


def _chosen(table: pd.DataFrame, spec: str | None, option: str, star: Path) -> set[int]:
    indices = {int(i) for i in table[INDEX]}
    wanted = parse_tomo_idx(spec)
    if wanted is None:
        return indices
    unknown = sorted(set(wanted) - indices)
    if unknown:
        raise InputError(f"{star}: {option} {spec} asks for rlnIndex {unknown}, which the STAR does not have; use "
                         f"indices {sorted(indices)}.")
    return set(wanted)


def _where(value: object, star: Path, column: str, named_in: bool) -> str:
    """A file of the input by the name the workflows can open: as named (a staged copy's origin), else absolute."""
    if not is_set(value):
        return ""
    return str(value) if named_in else str(resolve_path(value, star, column).absolute())


def _task_table(table: pd.DataFrame, star: Path, named_in: bool) -> pd.DataFrame:
    """The rows as the one-row STARs name their files: beside them (a task stages them there), else absolute."""
    if not named_in:
        return absolute_paths(table, star)
    table = table.copy()
    for column in (MICROGRAPH_NAME, *RAW_HALVES, TILT_ANGLE_FILE):
        if column in table.columns:
            table[column] = [Path(str(v)).name if is_set(v) else "None" for v in table[column]]
    return table


def check_plan(table: pd.DataFrame, star: str | os.PathLike, *, train_idx: str | None = None,
               tomo_idx: str | None = None) -> tuple[set[int], set[int]]:
    """The rlnIndex values corrected and trained on; errors for unknown indices, no training row, or twice a name."""
    star = Path(star)
    corrects = _chosen(table, tomo_idx, "--tomo-idx", star)
    trains = _chosen(table, train_idx if train_idx is not None else tomo_idx, "--train-idx", star)
    if not trains:
        raise InputError(f"{star}: --train-idx {train_idx} selects no tomogram; give rlnIndex values that exist.")
    ids = [tomogram_id(r) for r in table.to_dict("records")]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise InputError(f"{star}: tomograms named {', '.join(twice)} more than once; their outputs would overwrite "
                         "each other, so rename the files.")
    return corrects, trains


def write_tomogram_plan(table: pd.DataFrame, star: str | os.PathLike, folder: str | os.PathLike, *,
                        train_idx: str | None = None, tomo_idx: str | None = None,
                        named_in: bool = False) -> Path:
    """Write ``folder/<id>.star`` for every row of ``table`` (as written to ``star``) and ``folder/plan.csv``.

    ``tomo_idx``: the tomograms corrected (all when None); ``train_idx``: those whose subtomograms
    train (``tomo_idx``'s when None, as IsoNet's one selection did both). ``named_in``: the table
    names the input files where they live (prepare-star's ``--named-in``), not where ``star`` finds them.
    """
    star, folder = Path(star), Path(folder)
    corrects, trains = check_plan(table, star, train_idx=train_idx, tomo_idx=tomo_idx)
    records = table.to_dict("records")
    star_rows = _task_table(table, star, named_in).to_dict("records")
    training = [r for r in records if int(r[INDEX]) in trains]
    firsts = dict(zip((int(r[INDEX]) for r in training),
                      odd_halves([int(r.get(NUMBER_SUBTOMO, 100)) for r in training])))
    rows = []
    for record, star_row in zip(records, star_rows):
        index, name = int(record[INDEX]), tomogram_id(record)
        write_star(pd.DataFrame([star_row]), folder / f"{name}.star")
        angles = record.get(TILT_ANGLE_FILE)
        rows.append(TomogramPlan(
            id=name, index=index, star=f"{name}.star",
            tomogram=_where(record[MICROGRAPH_NAME], star, MICROGRAPH_NAME, named_in),
            half1=_where(record.get(RAW_HALVES[0]), star, RAW_HALVES[0], named_in),
            half2=_where(record.get(RAW_HALVES[1]), star, RAW_HALVES[1], named_in),
            tilt_angles=Path(str(angles)).name if is_set(angles) else "",
            voxel_size=float(record[PIXEL_SIZE]), defocus=float(record.get(DEFOCUS, 0.0)),
            tilt_min=float(record[TILT_MIN]), tilt_max=float(record[TILT_MAX]),
            subtomos=int(record.get(NUMBER_SUBTOMO, 100)), first_half=firsts.get(index, 1),
            trains=index in trains, corrects=index in corrects, relion5=is_set(record.get(RELION_TOMOGRAMS_STAR))))
    return write_plan(rows, folder / PLAN_FILE)
