"""prepare-star: the tomograms.star every later step reads, from a folder, a RELION 5 project or a given STAR.

A folder: one row per .mrc/.rec, with the tilt angles of a ``<stem>.tlt`` beside a tomogram when
there is one (``rlnTiltAngleFile``; its extremes are ``rlnTiltMin``/``rlnTiltMax``). A RELION 5
``tomograms.star`` (``data_global`` with ``rlnTomoName``): one row per tomogram from
:func:`io.relion5.tomogram_table`, its angles written to ``<STAR folder>/tilt_angles/<tomo>.tlt``,
and the RELION STAR and project folder recorded per row (``rlnRelionTomogramsStar``,
``rlnRelionProjectDir``) so predict can write the corrected tomograms back as a RELION 5 STAR.
Then every tomogram's voxels are checked (core/volume_checks.py, docs/input-checks.md) and its wedge
against its data (``wedge_check``, docs/wedge-convention.md) before anything is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..core.volume_checks import check_halves, check_tomogram, fill_nonfinite
from ..core.wedge import Wedge
from ..core.wedge_check import check_wedge
from ..io.atomic import check_writable_target
from ..io.columns import (
    FIX_NONFINITE,
    MICROGRAPH_NAME,
    RAW_HALVES,
    RELION_PROJECT_DIR,
    RELION_TOMOGRAMS_STAR,
    TILT_ANGLE_FILE,
    TILT_MAX,
    TILT_MIN,
    TOMO_NAME,
    is_set,
)
from ..io.errors import InputError
from ..io.log import get_logger
from ..io.mrc import open_memmap
from ..io.params import BY_NAME, default
from ..io.relion5 import is_relion5_star, read_relion5_project
from ..io.relion5 import tomogram_table as relion5_table
from ..io.star import absolute_paths, read_tomogram_star, write_star
from ..io.tilt_angles import find_tilt_file, read_tilt_angles, write_tilt_angles
from ..io.tomostar import check_tilt_range, list_tomograms, tomogram_table
from .plan import check_plan, write_tomogram_plan

#: Folder beside the written STAR for the tilt-angle files prepare-star writes.
TILT_FOLDER = "tilt_angles"
WEDGE_CHECKS: tuple[str, ...] = BY_NAME["wedge_check"].choices or ()  # the parameter table's
#: A given --tilt-min/--tilt-max further than this (degrees) from a tilt file's extremes is worth a warning.
TILT_DISAGREEMENT = 1.0


@dataclass
class _Prepared:
    """The rows to write, the tomogram each row's wedge is checked on, its angles, and the .tlt files to write."""

    table: pd.DataFrame
    sources: list[Path]
    angles: list[tuple[float, ...] | None]
    to_write: dict[Path, tuple[float, ...]] = field(default_factory=dict)
    tilt_folder: str | None = None  # see run_prepare_star
    fills: list[float | None] = field(default_factory=list)  # per source: what replaces its NaN/Inf voxels

    def angle_file(self, output_star: Path, stem: str) -> tuple[Path, str]:
        """Where prepare-star writes a tomogram's angles, and how the STAR names that file."""
        if self.tilt_folder is None:
            path = output_star.absolute().parent / TILT_FOLDER / f"{stem}.tlt"
            return path, str(path)
        name = Path(self.tilt_folder) / f"{stem}.tlt"
        return output_star.parent / name, str(name)


def run_prepare_star(source: str | os.PathLike, output_star: str | os.PathLike = "tomograms.star", *,
                     pixel_size: float = default("pixel_size"), defocus: float = default("defocus"),
                     number_subtomos: int = default("number_subtomos"), tilt_min: float | None = None,
                     tilt_max: float | None = None, named_in: str | None = None,
                     wedge_check: str = default("wedge_check"), project_dir: str | os.PathLike | None = None,
                     tilt_folder: str | None = None, plan_folder: str | os.PathLike | None = None,
                     train_idx: str | None = None, tomo_idx: str | None = None,
                     fix_nonfinite: bool = default("fix_nonfinite"), check_data: bool = True,
                     predict_tiles: tuple[int, int, int] | None = None) -> Path:
    """Write a tomograms.star for a folder of tomograms, a RELION 5 or an IsoNet tomograms.star; returns its path.

    ``tilt_min``/``tilt_max`` None: not given (±60° where no tilt-angle file says otherwise); a
    tilt-angle file wins over them, with a warning when they disagree. ``project_dir``: the RELION
    project folder when it cannot be found above the STAR. ``named_in``: the folder written before
    the name of every file read from the input (tomograms, halves, a .tlt found beside a tomogram)
    instead of its own. The angle files prepare-star writes go to ``tilt_angles/`` beside the STAR,
    named by absolute path; ``tilt_folder`` puts them in that folder (relative to the STAR's) and
    names them relative to the STAR, and copies a found .tlt there too (a STAR that travels with
    its folder: Nextflow). An IsoNet tomograms.star keeps its own values, its paths made absolute
    (relative ones as IsoNet reads them: from the current folder, else the STAR's).
    ``plan_folder``: also write the per-tomogram plan there (:mod:`.plan`): a one-row STAR per
    tomogram and ``plan.csv``; ``tomo_idx`` chooses the tomograms corrected, ``train_idx`` those
    whose subtomograms train (``tomo_idx``'s when None).
    ``fix_nonfinite``: NaN/Inf voxels are replaced by the mean of the others (recorded per row in
    rlnFixNonfinite, so every later step does the same) instead of refused. ``check_data`` False reads
    no tomogram (no voxel or wedge check: a dry run, Nextflow's -stub). ``predict_tiles``: predict's
    cube size, crop size and the network's depth, refused now as predict would refuse them (the
    pipeline's first task: not after hours of refine).
    """
    check_wedge_mode(wedge_check)
    if predict_tiles is not None:
        from ..network.inference import check_tiling

        check_tiling(*predict_tiles, names=("--predict-cube-size", "--predict-crop-size"))
    source, output_star = Path(source), Path(output_star)
    check_writable_target(output_star)
    if source.is_file() and not is_relion5_star(source):  # an IsoNet tomograms.star: its own values
        prepared = _from_isonet_star(source, output_star, tilt_folder)
    elif source.is_file():
        prepared = _from_relion5(source, output_star, number_subtomos, project_dir, (tilt_min, tilt_max), tilt_folder)
        _rename(prepared.table, named_in, (MICROGRAPH_NAME, *RAW_HALVES))
    else:
        prepared = _from_folder(source, pixel_size=pixel_size, defocus=defocus, number_subtomos=number_subtomos,
                                tilt=(tilt_min, tilt_max), named_in=named_in)
        _own_angle_files(prepared, output_star, tilt_folder)
    if plan_folder is not None:  # checked before anything is written
        check_plan(prepared.table, source, train_idx=train_idx, tomo_idx=tomo_idx)
    _write(prepared, output_star, wedge_check if check_data else "off", fix_nonfinite, check_data)
    get_logger().info("wrote %s with %d tomograms", output_star, len(prepared.table))
    if plan_folder is not None:
        plan = write_tomogram_plan(prepared.table, output_star, plan_folder, train_idx=train_idx, tomo_idx=tomo_idx,
                                   named_in=named_in is not None)
        get_logger().info("wrote the per-tomogram plan %s", plan)
    return output_star


def check_wedge_mode(mode: str) -> None:
    """Refuse an unknown --wedge-check value with the choices (the library is called without Click too)."""
    if mode not in WEDGE_CHECKS:
        raise InputError(f"--wedge-check {mode!r} is not one of {', '.join(WEDGE_CHECKS)}.")


def _write(prepared: _Prepared, output_star: Path, wedge_check: str, fix_nonfinite: bool = False,
           check_data: bool = True) -> None:
    """Check every tomogram and wedge first (a refusal writes nothing), then the tilt-angle files, then the STAR."""
    prepared.fills = [check_tomogram(path, fix_nonfinite=fix_nonfinite).fill if check_data else None
                      for path in prepared.sources]
    prepared.table[FIX_NONFINITE] = int(fix_nonfinite)
    if wedge_check != "off":
        check_wedges(prepared, output_star, wedge_check)
    for path, angles in prepared.to_write.items():
        write_tilt_angles(path, angles)
    write_star(prepared.table, output_star)


def _own_angle_files(prepared: _Prepared, output_star: Path, tilt_folder: str | None) -> None:
    """With ``tilt_folder``, every angle file the STAR names is written there: the STAR travels with its folder."""
    prepared.tilt_folder = tilt_folder
    if tilt_folder is None:
        return
    for i, angles in enumerate(prepared.angles):
        if angles is not None:
            path, named = prepared.angle_file(output_star, prepared.sources[i].name.rsplit(".", 1)[0])
            prepared.to_write[path] = angles
            prepared.table.loc[prepared.table.index[i], TILT_ANGLE_FILE] = named


def _rename(table: pd.DataFrame, named_in: str | None, columns: tuple[str, ...]) -> None:
    """Each set file name in ``columns`` as ``named_in/<name>`` (files staged elsewhere than they live)."""
    if named_in is None:
        return
    for column in columns:
        if column in table.columns:
            table[column] = [f"{named_in.rstrip('/')}/{Path(str(v)).name}" if is_set(v) else "None"
                             for v in table[column]]


def _warn_if_given_tilt_differs(tilt: tuple[float | None, float | None], angles: tuple[float, ...],
                                origin: str) -> None:
    given = [(name, value, extreme) for name, value, extreme in
             (("--tilt-min", tilt[0], min(angles)), ("--tilt-max", tilt[1], max(angles))) if value is not None]
    if any(abs(value - extreme) > TILT_DISAGREEMENT for _, value, extreme in given):
        get_logger().warning("%s: tilt angles %g..%g° differ from %s; the angles of the file are used", origin,
                             min(angles), max(angles), ", ".join(f"{n} {v:g}" for n, v, _ in given))


def _from_folder(folder: Path, *, pixel_size: float, defocus: float, number_subtomos: int,
                 tilt: tuple[float | None, float | None], named_in: str | None) -> _Prepared:
    """One row per tomogram of ``folder``; a ``<stem>.tlt`` beside one gives its angles."""
    lo = -60.0 if tilt[0] is None else tilt[0]
    hi = 60.0 if tilt[1] is None else tilt[1]
    files = list_tomograms(folder)
    table = tomogram_table(files, pixel_size=pixel_size, defocus=defocus, number_subtomos=number_subtomos,
                           tilt_min=lo, tilt_max=hi, named_in=named_in)
    angles: list[tuple[float, ...] | None] = []
    tilt_files = []
    for i, tomogram in enumerate(files):
        found = find_tilt_file(tomogram)
        tilt_files.append(str(found.absolute()) if found else "None")
        if found is None:
            angles.append(None)
            continue
        values = read_tilt_angles(found)
        _warn_if_given_tilt_differs(tilt, values, str(found))
        table.loc[i, [TILT_MIN, TILT_MAX]] = [min(values), max(values)]
        get_logger().info("%s: tilt angles from %s (%s)", tomogram.name, found, Wedge.from_angles(values).describe())
        angles.append(values)
    if any(a is not None for a in angles):
        table[TILT_ANGLE_FILE] = tilt_files
        _rename(table, named_in, (TILT_ANGLE_FILE,))
    return _Prepared(table, files, angles)


def _from_relion5(star: Path, output_star: Path, number_subtomos: int, project_dir,
                  tilt: tuple[float | None, float | None], tilt_folder: str | None) -> _Prepared:
    """Rows of a RELION 5 project; its tilt angles to ``tilt_angles/<tomo>.tlt`` beside ``output_star``."""
    if number_subtomos < 1:
        raise InputError(f"--number-subtomos {number_subtomos} must be at least 1.")
    project = read_relion5_project(star, project_dir)
    prepared = _Prepared(pd.DataFrame(), [t.tomogram for t in project.tomograms],
                         [t.tilt_angles for t in project.tomograms], tilt_folder=tilt_folder)
    files = {t.tomo_name: prepared.angle_file(output_star, t.tomo_name) for t in project.tomograms}
    table = relion5_table(project, number_subtomos=number_subtomos,
                          tilt_angle_files={name: named for name, (_, named) in files.items()})
    table[RELION_TOMOGRAMS_STAR] = str(star.absolute())
    table[RELION_PROJECT_DIR] = str(project.project_dir.absolute())
    for t in project.tomograms:
        if t.half1 is not None and t.half2 is not None:
            check_halves(t.half1, t.half2)
        _warn_if_given_tilt_differs(tilt, t.tilt_angles, f"{star} ({t.tomo_name}, {t.tilt_source})")
    get_logger().info("%s: RELION 5 project %s, %d tomograms (voxel %s Å)", star, project.project_dir,
                      len(project.tomograms), ", ".join(sorted({f"{t.pixel_size:.4g}" for t in project.tomograms})))
    prepared.table = table
    prepared.to_write = {files[t.tomo_name][0]: t.tilt_angles for t in project.tomograms}
    return prepared


def _given(angles: tuple[float, ...] | None, row: pd.Series) -> str:
    """What the user gave for a row's wedge, for the messages."""
    if angles is not None and is_set(row.get(TILT_ANGLE_FILE)):
        return f"the tilt angles of {row[TILT_ANGLE_FILE]}"
    return f"the tilt range {float(row[TILT_MIN]):g}..{float(row[TILT_MAX]):g}° (--tilt-min/--tilt-max)"


def _refusal(tomogram: Path, wedge: Wedge, given: str, line: str) -> InputError:
    fix = ("negate every angle in that file" if wedge.angles is not None
           else f"swap and negate them: --tilt-min {-wedge.tilt_max:g} --tilt-max {-wedge.tilt_min:g}")
    return InputError(f"{tomogram}: the data's missing wedge is the mirror of {given} ({line}); {fix}, or rerun "
                      "with --wedge-check flip to use the mirrored wedge (--wedge-check warn keeps the given one).")


def check_wedges(prepared: _Prepared, output_star: Path, mode: str) -> None:
    """Check each row's wedge on its tomogram and log the verdict; refuse, flip or warn on "mirrored"."""
    log = get_logger()
    for i, tomogram in enumerate(prepared.sources):
        row = prepared.table.iloc[i]
        angles = prepared.angles[i]
        wedge = Wedge.from_angles(angles) if angles is not None else Wedge.from_range(float(row[TILT_MIN]),
                                                                                      float(row[TILT_MAX]))
        with open_memmap(tomogram, "tomogram") as volume:  # NaN/Inf read as the fill with --fix-nonfinite
            verdict = check_wedge(fill_nonfinite(volume.data, prepared.fills[i]), wedge)
        line = verdict.describe(wedge)
        if verdict.verdict != "mirrored":
            log.info("%s: %s", tomogram.name, line)
            continue
        if mode == "refuse":
            raise _refusal(tomogram, wedge, _given(angles, row), line)
        if mode == "warn":
            log.warning("%s: %s (kept: --wedge-check warn)", tomogram.name, line)
            continue
        _flip(prepared, i, wedge.mirrored(), output_star)
        log.warning("%s: %s; wrote the mirrored wedge %s (--wedge-check flip)", tomogram.name, line,
                    wedge.mirrored().describe())


def _flip(prepared: _Prepared, i: int, mirrored: Wedge, output_star: Path) -> None:
    """Row ``i`` gets the mirrored wedge; mirrored angles go to a .tlt of ours, never over the user's file."""
    table = prepared.table
    table.loc[table.index[i], [TILT_MIN, TILT_MAX]] = [mirrored.tilt_min, mirrored.tilt_max]
    if mirrored.angles is None:
        return
    name = table.iloc[i].get(TOMO_NAME) if TOMO_NAME in table.columns else None
    stem = str(name) if is_set(name) else Path(prepared.sources[i]).name.rsplit(".", 1)[0]
    path, named = prepared.angle_file(output_star, stem)
    given = table.iloc[i][TILT_ANGLE_FILE]
    if path not in prepared.to_write and path.exists() and path.resolve() == Path(str(given)).resolve():
        raise InputError(f"{given}: --wedge-check flip would write the mirrored angles over this file; write the "
                         "STAR to another folder (-o).")
    prepared.angles[i] = mirrored.angles
    prepared.to_write[path] = mirrored.angles
    table.loc[table.index[i], TILT_ANGLE_FILE] = named


def _from_isonet_star(source: Path, output_star: Path, tilt_folder: str | None) -> _Prepared:
    """The rows of an IsoNet tomograms.star, paths made absolute; with ``tilt_folder`` its angle files copied there."""
    table = absolute_paths(read_tomogram_star(source), source)
    sources = [Path(str(v)) for v in table[MICROGRAPH_NAME]]
    angles = [read_tilt_angles(str(v)) if is_set(v) else None
              for v in (table[TILT_ANGLE_FILE] if TILT_ANGLE_FILE in table.columns else [None] * len(table))]
    for lo, hi in zip(table[TILT_MIN], table[TILT_MAX]):
        check_tilt_range(float(lo), float(hi))
    prepared = _Prepared(table, sources, angles)
    _own_angle_files(prepared, output_star, tilt_folder)
    return prepared
