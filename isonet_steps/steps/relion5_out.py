"""The corrected tomograms of rows that came from a RELION 5 project, as a RELION 5 tomograms.star.

prepare-star records each RELION row's ``tomograms.star`` and project folder
(``rlnRelionTomogramsStar``, ``rlnRelionProjectDir``); predict and gold-standard call
:func:`write_relion5_star` after correcting, so RELION's next jobs (picking, subtomogram
extraction) can take ``<output dir>/relion5_tomograms.star`` as their tomogram set.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..io.columns import (
    CORRECTED_HALVES,
    CORRECTED_TOMO_NAME,
    RELION_PROJECT_DIR,
    RELION_TOMOGRAMS_STAR,
    TOMO_NAME,
    is_set,
)
from ..io.errors import InputError
from ..io.log import get_logger
from ..io.relion5 import read_relion5_project, write_relion5_tomograms
from ..io.star import resolve_path

#: File name of the RELION 5 STAR written in the folder of the corrected tomograms.
RELION5_STAR = "relion5_tomograms.star"


def _found(value: object, star_path: str | os.PathLike, column: str) -> Path | None:
    """The file a cell names, or None when unset or gone (a row corrected by an earlier run, since removed)."""
    if not is_set(value):
        return None
    try:
        return resolve_path(value, star_path, column)
    except InputError:
        get_logger().warning("%s: %s %s not found; left out of the RELION 5 STAR", star_path, column, value)
        return None


def _corrected(group: pd.DataFrame, star_path, with_halves: bool) -> tuple[dict, dict]:
    corrected, halves = {}, {}
    for _, row in group.iterrows():
        name = str(row[TOMO_NAME])
        path = _found(row.get(CORRECTED_TOMO_NAME), star_path, CORRECTED_TOMO_NAME)
        if path is None:
            continue
        corrected[name] = path
        pair = [_found(row.get(c), star_path, c) for c in CORRECTED_HALVES] if with_halves else [None, None]
        if pair[0] is not None and pair[1] is not None:
            halves[name] = (pair[0], pair[1])
    return corrected, halves


def write_relion5_star(table: pd.DataFrame, star_path: str | os.PathLike, output_dir: str | os.PathLike, *,
                       with_halves: bool = False, named_in: str | None = None) -> list[Path]:
    """Write ``<output_dir>/relion5_tomograms.star`` for the corrected rows from a RELION 5 project.

    ``star_path``: the STAR ``table`` was read from (relative cells resolve against it).
    ``with_halves``: also name the corrected halves (rlnCorrectedTomoHalf1/2) as RELION's halves
    (gold-standard). Rows from several RELION STARs give one file each (``relion5_tomograms_2.star``, …).
    ``named_in``: the folder (or URI) the corrected files will be published to, named there instead
    of where they are now (Nextflow). A project that cannot be read any more (moved, not mounted) is
    a warning: the corrected tomograms and IsoNet's STAR are written already, and this STAR can be
    written again by rerunning with the project in place. Returns the files written (none for a
    table without RELION rows).
    """
    needed = (RELION_TOMOGRAMS_STAR, TOMO_NAME, CORRECTED_TOMO_NAME)
    if not all(c in table.columns for c in needed):
        return []
    rows = table[table[RELION_TOMOGRAMS_STAR].map(is_set)]
    if RELION_PROJECT_DIR not in rows.columns:
        rows = rows.assign(**{RELION_PROJECT_DIR: "None"})
    written: list[Path] = []
    for (relion_star, project_dir), group in rows.groupby([RELION_TOMOGRAMS_STAR, RELION_PROJECT_DIR], sort=False):
        corrected, halves = _corrected(group, star_path, with_halves)
        if not corrected:
            continue
        name = RELION5_STAR if not written else f"{Path(RELION5_STAR).stem}_{len(written) + 1}.star"
        try:
            project = read_relion5_project(str(relion_star), str(project_dir) if is_set(project_dir) else None)
        except InputError as exc:
            get_logger().warning("no %s for %s: %s", name, relion_star, exc)
            continue
        path = write_relion5_tomograms(Path(output_dir) / name, project, corrected, named_in=named_in,
                                       corrected_halves=halves if len(halves) == len(corrected) else None)
        get_logger().info("wrote %s: RELION 5 tomogram set of %d corrected tomograms (from %s)", path,
                          len(corrected), relion_star)
        written.append(path)
    return written
