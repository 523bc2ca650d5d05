"""Tilt-angle files: IMOD/AreTomo ``.tlt`` (one angle in degrees per line), found beside a tomogram.

IMOD writes ``<name>.rawtlt`` (the nominal stage angles, before alignment) and ``<name>.tlt`` (the
angles ``tiltalign`` solved for, which ``tilt`` used for the reconstruction); AreTomo's IMOD-style
output has a ``.tlt`` of the same layout. The refined ``.tlt`` is what made the tomogram, so it is
preferred; ``.rawtlt`` is only a fallback (its range can be off by the solved tilt offset). The
angles are returned in file order; their sign convention is the writer's, which is why the wedge
is checked against the data (:mod:`isonet_steps.core.wedge_check`, ``docs/wedge-convention.md``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

from .atomic import write_text
from .columns import TILT_ANGLE_FILE
from .errors import InputError

__all__ = ["TILT_FILE_SUFFIXES", "read_tilt_angles", "find_tilt_file", "write_tilt_angles"]

#: Suffixes looked for beside a tomogram, best first.
TILT_FILE_SUFFIXES = (".tlt", ".rawtlt")
#: Name endings IMOD and others add to a reconstruction: ``TS_01_rec.mrc`` belongs to ``TS_01.tlt``.
_RECONSTRUCTION_TAILS = ("_rec", "_full_rec", "_flipped", "_rot")


def _angle(text: str, path: Path, line_no: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{path}: line {line_no} '{text[:40]}' is not a number; a tilt-angle file holds one angle "
                         "in degrees per line (e.g. -60.00).") from None
    if not math.isfinite(value) or abs(value) > 90.0:
        raise InputError(f"{path}: line {line_no} angle {text} is outside ±90°; tilt angles are in degrees "
                         "(is this the right file, e.g. not an .xf or .xtilt?).")
    return value


def read_tilt_angles(path: str | os.PathLike) -> tuple[float, ...]:
    """The tilt angles (degrees, file order) of a ``.tlt``/``.rawtlt`` file; blank lines and spaces tolerated."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: tilt-angle file not found; check the path (and the STAR column "
                         f"{TILT_ANGLE_FILE} that names it).")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read as a text tilt-angle file ({exc.__class__.__name__}); give the "
                         ".tlt written by IMOD or AreTomo.") from None
    angles = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) > 1:
            raise InputError(f"{path}: line {line_no} has {len(fields)} values; a tilt-angle file holds one angle "
                             "per line (for a multi-column file keep only the angle column).")
        angles.append(_angle(fields[0], path, line_no))
    if len(angles) < 2:
        raise InputError(f"{path}: has {len(angles)} tilt angle(s); a tilt series needs at least 2, one per line.")
    return tuple(angles)


def _stems(tomogram: Path) -> list[str]:
    stem = tomogram.name
    for suffix in (".mrc", ".rec", ".st", ".ali", ".mrcs"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    stems = [stem]
    stems += [stem[: -len(tail)] for tail in _RECONSTRUCTION_TAILS if stem.endswith(tail) and len(stem) > len(tail)]
    return stems


def find_tilt_file(tomogram: str | os.PathLike) -> Path | None:
    """The tilt-angle file beside ``tomogram`` with its stem (``TS_01.mrc``/``TS_01_rec.mrc`` ↔ ``TS_01.tlt``).

    ``.tlt`` (refined, what the reconstruction used) before ``.rawtlt`` (nominal); None when neither.
    """
    tomogram = Path(tomogram)
    for stem in _stems(tomogram):
        for suffix in TILT_FILE_SUFFIXES:
            candidate = tomogram.with_name(stem + suffix)
            if candidate.is_file():
                return candidate
    return None


def write_tilt_angles(path: str | os.PathLike, angles: Iterable[float]) -> Path:
    """Write ``angles`` (degrees) as a ``.tlt``: one per line, IMOD's layout; whole file or none."""
    path = Path(path)
    values = [float(a) for a in angles]
    if len(values) < 2:
        raise InputError(f"{path}: {len(values)} tilt angle(s) to write; a tilt series needs at least 2.")
    bad = [a for a in values if not math.isfinite(a) or abs(a) > 90.0]
    if bad:
        raise InputError(f"{path}: tilt angle {bad[0]} is outside ±90°; give angles in degrees.")
    return write_text(path, "".join(f"{a:9.3f}\n" for a in values))
