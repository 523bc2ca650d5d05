"""A STAR row's missing wedge: its recorded tilt angles when it names a tilt-angle file, else its range.

Written once for every step that needs it (refine's wedge-aware training, the gold-standard FSC's
measured/missing split), so they agree on what a row measured. Angles are preferred: with them,
gaps in the series (dropped views) count as missing too.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..core.wedge import Wedge
from ..io.columns import TILT_ANGLE_FILE, TILT_MAX, TILT_MIN, is_set
from ..io.errors import InputError
from ..io.star import resolve_path
from ..io.tilt_angles import read_tilt_angles

__all__ = ["row_wedge", "row_wedges", "wedge_from_file"]


def wedge_from_file(path: str | os.PathLike) -> Wedge:
    """The wedge of a tilt-angle file (``.tlt``); one-line InputError when it holds fewer than two angles."""
    try:
        return Wedge.from_angles(read_tilt_angles(path))
    except ValueError as exc:
        raise InputError(f"{path}: {exc}; give the tilt series' .tlt (one angle per view).") from None


def row_wedge(row, star_path: str | os.PathLike, cache: dict[Path, Wedge] | None = None) -> Wedge:
    """The wedge of one STAR row: its ``rlnTiltAngleFile`` (resolved beside ``star_path``) when set, else
    its rlnTiltMin/rlnTiltMax. ``cache`` keeps the wedges already read by file, so each file is read once.
    """
    value = row.get(TILT_ANGLE_FILE)
    if is_set(value):
        path = resolve_path(value, star_path, TILT_ANGLE_FILE, "tilt-angle file")
        if cache is None:
            return wedge_from_file(path)
        if path not in cache:
            cache[path] = wedge_from_file(path)
        return cache[path]
    return Wedge.from_range(float(row[TILT_MIN]), float(row[TILT_MAX]))


def row_wedges(table, star_path: str | os.PathLike) -> list[Wedge]:
    """Each row's wedge (:func:`row_wedge`), in the table's order, each distinct tilt-angle file read once."""
    cache: dict[Path, Wedge] = {}
    return [row_wedge(row, star_path, cache) for _, row in table.iterrows()]
