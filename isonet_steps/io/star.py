"""STAR tables (IsoNet's tomograms.star and subtomo.star) through ``starfile``, with checks.

A table is a :class:`pandas.DataFrame` whose columns are RELION labels without the leading
underscore (``rlnMicrographName``). Paths inside a STAR file may be relative to the working
directory (IsoNet's habit) or to the STAR file's folder; :func:`resolve_path` finds either, and
falls back to the bare file name next to the STAR file (how Nextflow stages inputs).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import starfile

from .atomic import atomic_path, ensure_writable_folder
from .columns import (
    DECONV_TOMO_NAME,
    IMAGE_NAME,
    INDEX,
    MICROGRAPH_NAME,
    PATH_COLUMNS,
    PIXEL_SIZE,
    SUBTOMO_COLUMNS,
    TILT_MAX,
    TILT_MIN,
    TOMOGRAM_COLUMNS,
    is_set,
)
from .errors import InputError

__all__ = [
    "read_star",
    "write_star",
    "read_tomogram_star",
    "read_subtomo_star",
    "resolve_path",
    "parse_tomo_idx",
    "select_rows",
    "absolute_paths",
]


def read_star(path: str | os.PathLike, what: str = "STAR file") -> pd.DataFrame:
    """Read the single data block of a STAR file as a DataFrame; one-line errors otherwise."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: {what} not found; check the path or run the step that writes it.")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a {what}; give the path of a .star file.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blocks = starfile.read(path, always_dict=True)
    except Exception as exc:  # starfile raises many kinds on malformed text
        raise InputError(f"{path}: cannot parse {what} ({' '.join(str(exc).split())}); "
                         "check it is a STAR file.") from None
    tables = [b for b in blocks.values() if isinstance(b, pd.DataFrame)]
    if not tables or tables[0].empty:
        raise InputError(f"{path}: {what} has no rows; make it with prepare-star / extract, or add rows.")
    return tables[0].reset_index(drop=True)


def _coerce(df: pd.DataFrame, path: Path, types: dict[str, type], what: str) -> pd.DataFrame:
    df = df.copy()
    for column, kind in types.items():
        if column not in df.columns:
            continue
        if kind is str:
            df[column] = df[column].map(lambda v: "None" if not is_set(v) else str(v))
            continue
        values = pd.to_numeric(df[column], errors="coerce")
        bad = values.isna() & df[column].map(is_set)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0]) + 1
            raise InputError(
                f"{path}: column {column} must hold numbers but row {row} has {df[column].iloc[row - 1]!r}; "
                f"fix that {what} row."
            )
        if kind is int:
            if values.isna().any():
                row = int(np.flatnonzero(values.isna().to_numpy())[0]) + 1
                raise InputError(f"{path}: column {column} is empty in row {row}; give a whole number there.")
            if (values != np.round(values)).any():
                raise InputError(f"{path}: column {column} must hold whole numbers; fix the {what}.")
            df[column] = values.astype(int)
        else:
            df[column] = values.astype(float)
    return df


def _require_columns(df: pd.DataFrame, path: Path, columns: Iterable[str], what: str, fix: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{path}: {what} lacks column {', '.join(missing)}; {fix}")


def _check_tilt(df: pd.DataFrame, path: Path) -> None:
    if TILT_MIN in df.columns and TILT_MAX in df.columns:
        for i, (lo, hi) in enumerate(zip(df[TILT_MIN], df[TILT_MAX]), start=1):
            if not (-90.0 <= lo <= 90.0 and -90.0 <= hi <= 90.0):
                raise InputError(f"{path}: row {i} tilt range {lo:g}..{hi:g}° is outside ±90°; give the tilt series' "
                                 "real min/max angles.")
            if lo >= hi:
                raise InputError(f"{path}: row {i} rlnTiltMin {lo:g} is not below rlnTiltMax {hi:g}; swap or fix them.")


def _check_pixel_size(df: pd.DataFrame, path: Path) -> None:
    if PIXEL_SIZE in df.columns:
        bad = df[PIXEL_SIZE] <= 0
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0]) + 1
            raise InputError(f"{path}: row {row} has rlnPixelSize {df[PIXEL_SIZE].iloc[row - 1]:g}; pixel size "
                             "must be > 0 Å.")


def read_tomogram_star(path: str | os.PathLike) -> pd.DataFrame:
    """Read tomograms.star: columns typed, tilt range defaulted to ±60°, values checked."""
    path = Path(path)
    df = read_star(path, "tomogram STAR")
    _require_columns(df, path, [MICROGRAPH_NAME], "tomogram STAR",
                     "make it with 'isonet prepare-star FOLDER' or add the tomogram paths.")
    df = _coerce(df, path, TOMOGRAM_COLUMNS, "tomogram STAR")
    if INDEX not in df.columns:
        df.insert(0, INDEX, np.arange(1, len(df) + 1))
    if PIXEL_SIZE not in df.columns:
        df[PIXEL_SIZE] = 10.0
    return _tilt_defaults_and_checks(df, path)


def _tilt_defaults_and_checks(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """IsoNet's fixed ±60° where a table has no tilt range; then check pixel sizes and tilts."""
    for column, default in ((TILT_MIN, -60.0), (TILT_MAX, 60.0)):
        if column not in df.columns:
            df[column] = default
    _check_pixel_size(df, path)
    _check_tilt(df, path)
    return df


def read_subtomo_star(path: str | os.PathLike) -> pd.DataFrame:
    """Read subtomo.star: rlnImageName required; sizes, tilt range and halves typed and defaulted."""
    path = Path(path)
    df = read_star(path, "subtomogram STAR")
    _require_columns(df, path, [IMAGE_NAME], "subtomogram STAR",
                     "make it with 'isonet extract' or 'isonet prepare-subtomo-star'.")
    df = _coerce(df, path, SUBTOMO_COLUMNS, "subtomogram STAR")
    return _tilt_defaults_and_checks(df, path)


def write_star(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write one data block atomically (temporary name in the same folder, then rename)."""
    path = Path(path)
    ensure_writable_folder(path)
    with atomic_path(path, suffix=".star") as tmp:
        starfile.write(df.reset_index(drop=True), tmp, overwrite=True)
    return path


def resolve_path(value: object, star_path: str | os.PathLike, column: str, what: str = "file") -> Path:
    """Find the file a STAR cell names: as given, beside the STAR file, or by bare name there."""
    if not is_set(value):
        raise InputError(f"{star_path}: column {column} is empty; run the step that fills it or give the path.")
    given = Path(str(value))
    star_dir = Path(star_path).parent
    direct = [given] if given.is_absolute() else [given, star_dir / given]
    for candidate in direct:
        if candidate.exists():
            return candidate
    for candidate in (star_dir / given.name, Path(given.name)):  # inputs staged by bare name (Nextflow)
        if candidate.exists() and candidate.name != str(given):
            from .log import get_logger

            get_logger().warning("%s: %s names %s, which does not exist; using %s found by name", star_path, column,
                                 given, candidate)
            return candidate
        if candidate.exists():
            return candidate
    raise InputError(f"{star_path}: {column} names {given}, which does not exist; fix the path in the STAR file.")


def tomogram_source(row, star_path: str | os.PathLike, use_deconv: bool) -> tuple[Path, str]:
    """The tomogram a row's step reads, and the column it came from: the deconvolved one when asked
    for and present (as IsoNet), else rlnMicrographName; a deconvolved file that is gone is a warning.
    """
    deconv = row.get(DECONV_TOMO_NAME)
    if use_deconv and is_set(deconv):
        try:
            return resolve_path(deconv, star_path, DECONV_TOMO_NAME), DECONV_TOMO_NAME
        except InputError:
            from .log import get_logger

            get_logger().warning("%s: rlnDeconvTomoName %s (rlnIndex %s) not found; using rlnMicrographName",
                                 star_path, deconv, row.get(INDEX))
    return resolve_path(row.get(MICROGRAPH_NAME), star_path, MICROGRAPH_NAME), MICROGRAPH_NAME


def parse_tomo_idx(spec) -> list[int] | None:
    """Parse IsoNet's ``--tomo-idx`` syntax ("1,2,4" or "5-10,15") into sorted rlnIndex values."""
    if spec is None or str(spec).strip() in ("", "None", "all"):
        return None
    chosen: set[int] = set()
    for part in str(spec).replace(" ", "").split(","):
        if not part:
            continue
        try:
            if "-" in part[1:]:
                if part.startswith("-"):
                    first, rest = part[1:].split("-", 1)
                    lo, hi = "-" + first, rest
                else:
                    lo, hi = part.split("-", 1)
                a, b = int(lo), int(hi)
                if a > b:
                    raise ValueError
                chosen.update(range(a, b + 1))
            else:
                chosen.add(int(part))
        except ValueError:
            raise InputError(f"--tomo-idx {spec!r} is not a list of tomogram indices; "
                             "write e.g. 1,2,4 or 5-10,15.") from None
    return sorted(chosen)


def select_rows(df: pd.DataFrame, tomo_idx, path: str | os.PathLike) -> list[int]:
    """Row positions chosen by ``--tomo-idx`` (all rows when None); unknown indices are an error."""
    wanted = parse_tomo_idx(tomo_idx)
    if wanted is None:
        return list(range(len(df)))
    present = {int(v): i for i, v in enumerate(df[INDEX])}
    missing = [w for w in wanted if w not in present]
    if missing:
        raise InputError(f"{path}: --tomo-idx asks for rlnIndex {missing} which the STAR file does not have; use "
                         f"indices {sorted(present)}.")
    return [present[w] for w in wanted]


def absolute_paths(table, star: str | os.PathLike, columns=PATH_COLUMNS):
    """``table`` with the file columns resolved against ``star`` and made absolute (unset stays None)."""
    table = table.copy()
    for column in columns:
        if column in table.columns:
            table[column] = [str(resolve_path(v, star, column).resolve()) if is_set(v) else "None"
                             for v in table[column]]
    return table
