"""The wedge checked against the data, for the report's power-spectrum section.

Tilt-angle signs differ between programs and with the reconstruction's handedness; a mirrored
asymmetric range trains the network to fill directions that were measured and to leave the truly
missing ones empty. :func:`isonet_steps.core.wedge_check.check_wedge` reads the measured directions
off the raw tomogram's own Fourier power (``docs/wedge-convention.md``); this module builds the
wedge a tomogram's STAR row gives (its ``rlnTiltAngleFile`` when set, else rlnTiltMin/rlnTiltMax),
runs the check on the raw tomogram's central box, and writes the verdict as HTML: a warning with
the fix when the data say "mirrored".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.wedge import Wedge
from ..core.wedge_check import WedgeCheck, check_wedge
from ..io.columns import INDEX
from ..io.errors import InputError
from .html import esc

__all__ = ["RawWedgeCheck", "row_wedge", "raw_wedge_check", "wedge_check_html"]


@dataclass(frozen=True)
class RawWedgeCheck:
    """The wedge a tomogram's row gives, where it came from, and how it fits the raw tomogram."""

    wedge: Wedge
    tilt_file: Path | None
    check: WedgeCheck


def row_wedge(run, t) -> tuple[Wedge, Path | None]:
    """The wedge of tomogram ``t``, as refine and the FSC take it (``steps.row_wedge``): its tilt-angle
    file's angles when the row names one (returned too, for the fix), else its range.

    An unreadable angle file is noted and the range used instead, so the report still checks something.
    """
    from ..io.columns import TILT_ANGLE_FILE
    from ..io.star import read_tomogram_star, resolve_path
    from ..steps.row_wedge import row_wedge as star_row_wedge

    try:
        rows = read_tomogram_star(run.star) if run.star is not None else None
        if rows is not None and not (row := rows[rows[INDEX] == t.index]).empty:
            wedge = star_row_wedge(row.iloc[0], run.star)
            if wedge.angles is not None:
                return wedge, resolve_path(row.iloc[0][TILT_ANGLE_FILE], run.star, TILT_ANGLE_FILE)
    except InputError as exc:
        run.notes.append(f"{exc} The wedge check uses rlnTiltMin/rlnTiltMax instead.")
    return Wedge.from_range(*t.tilt_range), None


def raw_wedge_check(run, t, views) -> RawWedgeCheck | None:
    """Check the row's wedge against the raw tomogram (its central box, already read); None without one."""
    raw = next((v for v in views if v.label == "raw"), None)
    if raw is None:
        return None
    wedge, tilt_file = row_wedge(run, t)
    try:
        return RawWedgeCheck(wedge, tilt_file, check_wedge(raw.box, wedge))
    except ValueError as exc:  # a box too small to hold the band of radii the profile uses
        run.notes.append(f"{t.raw}: the wedge check could not run ({exc}); its verdict is left out.")
        return None


def _fix(result: RawWedgeCheck, t, star: Path | None) -> str:
    """What to change when the wedge is mirrored, and what to rerun."""
    rerun = "then rerun extract, refine and predict (the network was taught to fill the wrong region)."
    if result.tilt_file is not None:
        return (f"Fix: negate every angle in {esc(result.tilt_file)} (or export the angles with the other sign "
                f"convention), {rerun}")
    mirror = result.wedge.mirrored()
    where = f" (this report read {esc(star.name)})" if star is not None else ""
    return (f"Fix: in the tomogram STAR you gave{where}, set rlnTiltMin to {mirror.tilt_min:g} and rlnTiltMax to "
            f"{mirror.tilt_max:g} for tomogram {t.index}, {rerun}")


def wedge_check_html(result: RawWedgeCheck | None, t, star: Path | None = None) -> str:
    """The verdict under the power figure: a line, or a warning box with the fix when mirrored."""
    if result is None:
        return ""
    source = (f"the angles of {esc(result.tilt_file.name)}" if result.tilt_file is not None
              else "rlnTiltMin/rlnTiltMax of the STAR")
    line = esc(result.check.describe(result.wedge))
    if result.check.verdict == "mirrored":
        return (f'<div class="warnbox"><b>The tilt range looks mirrored.</b> The raw tomogram\'s power says the '
                f"measured directions are the given wedge's mirror image ({source}): {line}.<br>"
                f"{_fix(result, t, star)}</div>")
    meaning = {
        "agrees": "the raw tomogram's power fills the given wedge, not its mirror.",
        "unclear": ("the data do not decide (too little contrast between measured and missing directions, or a "
                    "symmetric range, which is its own mirror); compare the two sets of lines by eye."),
    }.get(result.check.verdict, "")
    return (f'<p class="caption wedgecheck"><b>Wedge check</b> (raw tomogram, {source}): {line}; {esc(meaning)} '
            "Solid green lines: the measured range estimated from the raw data (where its angular power drops); "
            "dashed cyan: the given wedge.</p>")
