"""merge-star: the per-tomogram STARs of a scattered run gathered into the run's one STAR.

Subtomogram STARs (each tomogram's extract) are concatenated in the order given, numbered anew:
the order of the plan gives refine the same table as one extract over all tomograms. Tomogram
STARs (each tomogram's predict, with ``--halves`` one per half) are combined by rlnIndex, a cell
set in any of them filling the row, so the halves' two predicts give one row naming both halves.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..io.atomic import check_writable_target
from ..io.columns import IMAGE_NAME, INDEX, SUBTOMO_INDEX, is_set
from ..io.errors import InputError
from ..io.log import get_logger
from ..io.star import read_subtomo_star, read_tomogram_star, write_star


def _is_subtomo_star(path: Path) -> bool:
    from ..io.star import read_star

    return IMAGE_NAME in read_star(path).columns


def merge_subtomo_tables(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenated in order, rlnSubtomoIndex 1..N."""
    merged = pd.concat(tables, ignore_index=True)
    merged[SUBTOMO_INDEX] = range(1, len(merged) + 1)
    return merged


def merge_tomogram_tables(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """One row per rlnIndex, in rlnIndex order; where the tables disagree on a set cell, the first one given wins."""
    merged: dict[int, dict] = {}
    columns: list[str] = []
    for table in tables:
        columns += [c for c in table.columns if c not in columns]
        for record in table.to_dict("records"):
            row = merged.setdefault(int(record[INDEX]), {})
            for column, value in record.items():
                if is_set(value) and not is_set(row.get(column)):
                    row[column] = value
    rows = [merged[i] for i in sorted(merged)]
    return pd.DataFrame([{c: row.get(c, "None") for c in columns} for row in rows], columns=columns)


def run_merge_star(inputs: Sequence[str | os.PathLike], output_star: str | os.PathLike, *,
                   relion5_folder: str | None = None, relion5_dir: str | os.PathLike | None = None,
                   with_halves: bool = False) -> Path:
    """Merge per-tomogram STARs (all subtomogram STARs, or all tomogram STARs) into ``output_star``.

    ``relion5_folder``: tomogram rows from a RELION 5 project also give ``relion5_tomograms.star``
    beside ``output_star``, naming the corrected tomograms in that folder (where they are published).
    ``relion5_dir``: write that file in this folder instead, naming the files where they are unless
    ``relion5_folder`` is given too (``isonet run``: ``corrected/``). ``with_halves``: it names the
    corrected halves as RELION's halves (gold-standard).
    """
    if not inputs:
        raise InputError("merge-star: no STAR files given; name the per-tomogram STARs to merge.")
    paths = [Path(p) for p in inputs]
    output_star = Path(output_star)
    check_writable_target(output_star)
    kinds = {p: _is_subtomo_star(p) for p in paths}
    if len(set(kinds.values())) > 1:
        odd = next(p for p in paths if kinds[p] != kinds[paths[0]])
        raise InputError(f"{odd}: a {'subtomogram' if kinds[odd] else 'tomogram'} STAR among "
                         f"{'tomogram' if kinds[odd] else 'subtomogram'} STARs such as {paths[0]}; merge one kind.")
    if kinds[paths[0]]:
        merged = merge_subtomo_tables([read_subtomo_star(p) for p in paths])
    else:
        merged = merge_tomogram_tables([read_tomogram_star(p) for p in paths])
    write_star(merged, output_star)
    get_logger().info("wrote %s: %d rows from %d STAR files", output_star, len(merged), len(paths))
    if (relion5_folder is not None or relion5_dir is not None) and not kinds[paths[0]]:
        from .relion5_out import write_relion5_star

        write_relion5_star(merged, output_star, relion5_dir or output_star.parent, named_in=relion5_folder,
                           with_halves=with_halves)
    return output_star
