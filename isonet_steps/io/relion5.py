"""RELION 5 tomography projects: a Reconstruct job's ``tomograms.star`` in, a ``tomograms.star`` RELION reads out.

RELION 5 runs in its project folder and writes every path in its STAR files relative to that
folder (``Tomograms/job007/tomograms/rec_TS_01.mrc``, ``CtfFind/job003/tilt_series/TS_01.star``).
A STAR file usually sits two levels below it (``<project>/Tomograms/job007/tomograms.star``), so
unless ``project_dir`` is given the reader walks up from the STAR's folder to the first folder
where the first tomogram's tilt-series STAR exists (absolute paths are used as written).

What is read (see ``docs/relion5.md``): from ``data_global`` the tomogram, its two halves, the
optics, the tilt-series pixel size and the binning; from each tilt-series STAR (the block named
after the tomogram) the tilt angles and the defocus of the zero-tilt image. Reading writes
nothing: the caller writes the angles with :func:`isonet_steps.io.tilt_angles.write_tilt_angles` and names the file in
``rlnTiltAngleFile``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import starfile

from .atomic import atomic_path, ensure_writable_folder
from .columns import (
    AMPLITUDE_CONTRAST,
    DEFOCUS,
    DEFOCUS_U,
    DEFOCUS_V,
    INDEX,
    MASK_BOUNDARY,
    MICROGRAPH_NAME,
    NUMBER_SUBTOMO,
    PIXEL_SIZE,
    RAW_HALVES,
    SPHERICAL_ABERRATION,
    TILT_ANGLE_FILE,
    TILT_MAX,
    TILT_MIN,
    TOMO_HAND,
    TOMO_NAME,
    TOMO_NOMINAL_STAGE_TILT_ANGLE,
    TOMO_RECONSTRUCTED_TOMOGRAM,
    TOMO_RECONSTRUCTED_TOMOGRAM_PROJ2D,
    TOMO_RECONSTRUCTED_TOMOGRAM_PROJ2D_HALF1,
    TOMO_RECONSTRUCTED_TOMOGRAM_PROJ2D_HALF2,
    TOMO_SIZE_X,
    TOMO_SIZE_Y,
    TOMO_SIZE_Z,
    TOMO_TILT_SERIES_PIXEL_SIZE,
    TOMO_TILT_SERIES_STAR_FILE,
    TOMO_TOMOGRAM_BINNING,
    TOMO_Y_TILT,
    VOLTAGE,
    is_set,
)
from .errors import InputError
from .log import get_logger
from .mrc import read_header

__all__ = [
    "is_relion5_star",
    "Relion5Tomogram",
    "Relion5Project",
    "read_relion5_project",
    "tomogram_table",
    "write_relion5_tomograms",
]

#: ``data_global`` columns without which RELION 5 itself cannot use a tomogram set.
REQUIRED_GLOBAL = (TOMO_NAME, TOMO_TILT_SERIES_STAR_FILE, TOMO_TILT_SERIES_PIXEL_SIZE, VOLTAGE,
                   SPHERICAL_ABERRATION, AMPLITUDE_CONTRAST, TOMO_HAND)
#: Columns naming files made from the raw reconstruction; stale once the tomogram is replaced.
RAW_DERIVED = (TOMO_RECONSTRUCTED_TOMOGRAM_PROJ2D, TOMO_RECONSTRUCTED_TOMOGRAM_PROJ2D_HALF1,
               TOMO_RECONSTRUCTED_TOMOGRAM_PROJ2D_HALF2)
#: Tilt-angle columns of a tilt-series STAR, best first: the aligned angle RELION reconstructs
#: with (it builds the projection matrices from it), then the stage's nominal angle.
TILT_COLUMNS = (TOMO_Y_TILT, TOMO_NOMINAL_STAGE_TILT_ANGLE)
#: Relative disagreement allowed between pixel size × binning and the MRC header's voxel size.
VOXEL_TOLERANCE = 0.005


@dataclass(frozen=True)
class Relion5Tomogram:
    """One tomogram of a RELION 5 project, with what IsoNet needs from it (paths absolute)."""

    tomo_name: str
    tomogram: Path
    half1: Path | None
    half2: Path | None
    pixel_size: float  # Å per voxel of the reconstructed tomogram
    defocus: float  # Å, underfocus positive, of the zero-tilt image (mean of U and V)
    tilt_angles: tuple[float, ...]  # degrees, ascending
    tilt_source: str  # the tilt-series column the angles came from
    voltage: float  # kV
    cs: float  # mm
    amplitude_contrast: float
    tilt_series_star: Path
    shape: tuple[int, int, int]  # (Z, Y, X) of the tomogram file

    def star_row(self, index: int, *, number_subtomos: int = 100, tilt_angle_file: str | None = None) -> dict:
        """The row of isonet-nf's tomograms.star for this tomogram."""
        row: dict[str, object] = {
            INDEX: index, MICROGRAPH_NAME: str(self.tomogram), PIXEL_SIZE: self.pixel_size,
            DEFOCUS: self.defocus, NUMBER_SUBTOMO: number_subtomos, MASK_BOUNDARY: "None",
            TILT_MIN: min(self.tilt_angles), TILT_MAX: max(self.tilt_angles),
        }
        if self.half1 is not None and self.half2 is not None:
            row[RAW_HALVES[0]], row[RAW_HALVES[1]] = str(self.half1), str(self.half2)
        row.update({VOLTAGE: self.voltage, SPHERICAL_ABERRATION: self.cs,
                    AMPLITUDE_CONTRAST: self.amplitude_contrast, TOMO_NAME: self.tomo_name})
        if tilt_angle_file is not None:
            row[TILT_ANGLE_FILE] = tilt_angle_file
        return row


@dataclass(frozen=True)
class Relion5Project:
    """A RELION 5 tomogram set: its STAR, the project folder its paths are relative to, its tomograms.

    ``global_table`` is ``data_global`` as read (every column, RELION's order), for the writer.
    """

    star_path: Path
    project_dir: Path
    tomograms: tuple[Relion5Tomogram, ...]
    global_table: pd.DataFrame = field(repr=False)


def is_relion5_star(path: str | os.PathLike) -> bool:
    """True for a STAR file whose ``data_global`` block has ``rlnTomoName`` (a RELION 5 tomogram set).

    A text scan, no parsing: IsoNet's tomograms.star (one ``data_`` loop of rlnMicrographName) is
    False, and so is anything unreadable (the caller's own reader reports why).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    except OSError:
        return False
    block = None
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0].startswith("data_"):
            block = words[0][len("data_"):]
        elif block == "global" and words[0] == f"_{TOMO_NAME}":
            return True
    return False


def _read_blocks(path: Path, what: str, fix: str) -> dict[str, pd.DataFrame]:
    """Every data block of a STAR file as a table (a one-row key/value block too); names kept as text."""
    if not path.is_file():
        raise InputError(f"{path}: {what} not found; {fix}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blocks = starfile.read(path, always_dict=True, parse_as_string=[TOMO_NAME])
    except Exception as exc:  # starfile raises many kinds on malformed text
        raise InputError(f"{path}: cannot parse {what} ({' '.join(str(exc).split())}); {fix}") from None
    tables = {}
    for name, block in blocks.items():
        table = block if isinstance(block, pd.DataFrame) else pd.DataFrame([dict(block)])
        tables[str(name)] = table.reset_index(drop=True)
    return tables


def _text(value: object) -> str | None:
    """A STAR cell as text, None when empty (:func:`~isonet_steps.io.columns.is_set`)."""
    return str(value).strip() if is_set(value) else None


def _find_project_dir(star_path: Path, table: pd.DataFrame) -> Path:
    """The nearest folder at or above the STAR's where the first relative tilt-series STAR exists."""
    relative = [Path(t) for t in map(_text, table[TOMO_TILT_SERIES_STAR_FILE]) if t and not Path(t).is_absolute()]
    start = star_path.absolute().parent
    if not relative:
        return start
    tried = [start, *start.parents]
    for folder in tried:
        if (folder / relative[0]).is_file():
            return folder
    raise InputError(f"{star_path}: rlnTomoTiltSeriesStarFile {relative[0]} is not found under {start} nor under any "
                     "folder above it (the project folders tried); give the RELION project folder (where RELION ran).")


def _resolve(value: object, project_dir: Path, star_path: Path, column: str, tomo: str, what: str) -> Path:
    """A path from a RELION STAR: absolute as written, else relative to the project folder; must exist."""
    text = _text(value)
    if text is None:
        raise InputError(f"{star_path}: {column} of {tomo} is empty; rerun the RELION job that writes it or fill it "
                         "in.")
    path = Path(text) if Path(text).is_absolute() else project_dir / text
    if not path.is_file():
        raise InputError(f"{star_path}: {column} of {tomo} names {text}, which is not in the project folder "
                         f"{project_dir}; give the right project folder or rerun the job that writes the {what}.")
    return path


def _number(value: object, star_path: Path, column: str, tomo: str) -> float:
    number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    if not np.isfinite(number):
        raise InputError(f"{star_path}: {column} of {tomo} is {value!r}, not a number; fix that row of data_global.")
    return float(number)


def _tilt_series(path: Path, tomo: str) -> tuple[tuple[float, ...], str, float]:
    """Angles (ascending), their column, and the zero-tilt defocus (Å) from a tomogram's tilt-series STAR."""
    fix = "rerun RELION's tilt-series alignment (or point rlnTomoTiltSeriesStarFile at its output)."
    blocks = _read_blocks(path, "tilt-series STAR", fix)
    if tomo not in blocks:
        raise InputError(f"{path}: no block data_{tomo} for tomogram {tomo} (blocks: "
                         f"{', '.join(blocks) or 'none'}); {fix}")
    table = blocks[tomo]
    source = next((c for c in TILT_COLUMNS if c in table.columns), None)
    if source is None or table.empty:
        raise InputError(f"{path}: block data_{tomo} has no tilt angles ({' or '.join(TILT_COLUMNS)}); {fix}")
    angles = pd.to_numeric(table[source], errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(angles).all() or (np.abs(angles) > 90).any():
        raise InputError(f"{path}: {source} of {tomo} holds values that are not angles within ±90°; {fix}")
    missing = [c for c in (DEFOCUS_U, DEFOCUS_V) if c not in table.columns]
    if missing:
        raise InputError(f"{path}: block data_{tomo} lacks {', '.join(missing)}; run RELION's CTF estimation on the "
                         "tilt series before reconstructing.")
    # The zero-tilt image: lowest |stage angle| (the image taken flat), else lowest |aligned angle|.
    stage = TOMO_NOMINAL_STAGE_TILT_ANGLE if TOMO_NOMINAL_STAGE_TILT_ANGLE in table.columns else source
    zero = int(np.argmin(np.abs(pd.to_numeric(table[stage], errors="coerce").fillna(np.inf).to_numpy())))
    u, v = (pd.to_numeric(pd.Series([table[c].iloc[zero]]), errors="coerce").iloc[0]
            for c in (DEFOCUS_U, DEFOCUS_V))
    if not (np.isfinite(u) and np.isfinite(v)):
        raise InputError(f"{path}: rlnDefocusU/V of the zero-tilt image of {tomo} are not numbers; rerun RELION's "
                         "CTF estimation.")
    return tuple(float(a) for a in np.sort(angles)), source, (float(u) + float(v)) / 2.0


def _check_voxel(tomogram: Path, header_voxel: float, voxel: float, pixel: float, binning: float,
                 star_path: Path) -> None:
    """Pixel size × binning must be the tomogram's voxel: a mismatch would mis-scale the CTF and the wedge."""
    if header_voxel <= 0:
        get_logger().warning("%s: MRC header has no voxel size; using %.4g Å from %s", tomogram, voxel, star_path)
        return
    if abs(header_voxel - voxel) > VOXEL_TOLERANCE * voxel:
        raise InputError(f"{tomogram}: header voxel size {header_voxel:.4g} Å disagrees with {star_path}'s "
                         f"rlnTomoTiltSeriesPixelSize {pixel:.4g} × rlnTomoTomogramBinning {binning:.4g} = {voxel:.4g} "
                         f"Å; fix rlnTomoTomogramBinning, or the header (IMOD: alterheader -del "
                         f"{voxel:.4g},{voxel:.4g},{voxel:.4g} {tomogram.name}).")


def _halves(row: pd.Series, project_dir: Path, star_path: Path, tomo: str) -> tuple[Path | None, Path | None]:
    """Both half tomograms or neither: one alone cannot make a gold-standard pair."""
    given = [_text(row.get(c)) for c in RAW_HALVES]
    if given[0] is None and given[1] is None:
        return None, None
    if given[0] is None or given[1] is None:
        present, absent = (RAW_HALVES[0], RAW_HALVES[1]) if given[0] else (RAW_HALVES[1], RAW_HALVES[0])
        raise InputError(f"{star_path}: {tomo} has {present} but no {absent}; give both halves (RELION's Reconstruct "
                         "with 'Generate tomograms for denoising') or neither.")
    h1, h2 = (_resolve(row.get(c), project_dir, star_path, c, tomo, "half tomogram") for c in RAW_HALVES)
    return h1, h2


def _tomogram(row: pd.Series, project_dir: Path, star_path: Path) -> Relion5Tomogram:
    tomo = str(_text(row[TOMO_NAME]))
    if _text(row.get(TOMO_RECONSTRUCTED_TOMOGRAM)) is None:
        fix = ("this Reconstruct job made only half tomograms (for denoising): rerun Reconstruct tomograms without "
               "'Generate tomograms for denoising' for the full ones" if _text(row.get(RAW_HALVES[0])) else
               "run RELION's Reconstruct tomograms job and give its tomograms.star")
        raise InputError(f"{star_path}: {tomo} has no {TOMO_RECONSTRUCTED_TOMOGRAM}; {fix}.")
    tomogram = _resolve(row[TOMO_RECONSTRUCTED_TOMOGRAM], project_dir, star_path, TOMO_RECONSTRUCTED_TOMOGRAM, tomo,
                        "tomogram (Reconstruct tomograms)")
    half1, half2 = _halves(row, project_dir, star_path, tomo)
    series = _resolve(row[TOMO_TILT_SERIES_STAR_FILE], project_dir, star_path, TOMO_TILT_SERIES_STAR_FILE, tomo,
                      "tilt-series STAR")
    angles, source, defocus = _tilt_series(series, tomo)
    pixel = _number(row[TOMO_TILT_SERIES_PIXEL_SIZE], star_path, TOMO_TILT_SERIES_PIXEL_SIZE, tomo)
    # RELION writes the binning only when it is not 1.
    binning = _number(row[TOMO_TOMOGRAM_BINNING], star_path, TOMO_TOMOGRAM_BINNING, tomo) \
        if _text(row.get(TOMO_TOMOGRAM_BINNING)) is not None else 1.0
    if pixel <= 0 or binning <= 0:
        raise InputError(f"{star_path}: {tomo} has rlnTomoTiltSeriesPixelSize {pixel:g} and rlnTomoTomogramBinning "
                         f"{binning:g}; both must be > 0.")
    header = read_header(tomogram, "tomogram")
    _check_voxel(tomogram, header.voxel_size, pixel * binning, pixel, binning, star_path)
    return Relion5Tomogram(
        tomo_name=tomo, tomogram=tomogram, half1=half1, half2=half2, pixel_size=pixel * binning, defocus=defocus,
        tilt_angles=angles, tilt_source=source,
        voltage=_number(row[VOLTAGE], star_path, VOLTAGE, tomo),
        cs=_number(row[SPHERICAL_ABERRATION], star_path, SPHERICAL_ABERRATION, tomo),
        amplitude_contrast=_number(row[AMPLITUDE_CONTRAST], star_path, AMPLITUDE_CONTRAST, tomo),
        tilt_series_star=series, shape=header.shape)


def read_relion5_project(tomograms_star: str | os.PathLike,
                         project_dir: str | os.PathLike | None = None) -> Relion5Project:
    """Read a RELION 5 Reconstruct job's tomograms.star and the tilt-series STARs it names.

    ``project_dir``: the folder RELION ran in, which the STAR's relative paths start from; None
    finds it by walking up from the STAR's folder (see the module docstring). Every problem is one
    :class:`InputError` line naming the file and the fix.
    """
    star_path = Path(tomograms_star)
    blocks = _read_blocks(star_path, "RELION 5 tomograms.star",
                          "give the tomograms.star of a RELION 5 Reconstruct tomograms job.")
    if "global" not in blocks:
        raise InputError(f"{star_path}: no data_global block (blocks: {', '.join(blocks) or 'none'}); give the "
                         "tomograms.star of a RELION 5 Reconstruct tomograms job.")
    table = blocks["global"]
    missing = [c for c in REQUIRED_GLOBAL if c not in table.columns]
    if missing:
        old = " (a RELION 4 tomogram set? RELION 5 names a tilt-series STAR per tomogram)" \
            if TOMO_TILT_SERIES_STAR_FILE in missing else ""
        raise InputError(f"{star_path}: data_global lacks column {', '.join(missing)}{old}; give the tomograms.star of "
                         "a RELION 5 Reconstruct tomograms job.")
    if table.empty:
        raise InputError(f"{star_path}: data_global has no tomograms; give the tomograms.star of a finished RELION 5 "
                         "Reconstruct tomograms job.")
    names = [str(_text(n)) for n in table[TOMO_NAME]]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated or "None" in names:
        raise InputError(f"{star_path}: rlnTomoName must name each tomogram once, but "
                         f"{', '.join(repeated) + ' repeats' if repeated else 'a row has none'}; fix data_global.")
    table = table.assign(rlnTomoName=names)
    folder = Path(project_dir).absolute() if project_dir is not None else _find_project_dir(star_path, table)
    if not folder.is_dir():
        raise InputError(f"{folder}: RELION project folder not found; give the folder RELION was run in.")
    tomograms = tuple(_tomogram(row, folder, star_path) for _, row in table.iterrows())
    return Relion5Project(star_path=star_path, project_dir=folder, tomograms=tomograms, global_table=table)


def tomogram_table(project: Relion5Project, *, number_subtomos: int = 100,
                   tilt_angle_files: Mapping[str, str | os.PathLike] | None = None) -> pd.DataFrame:
    """isonet-nf's tomograms.star rows for a RELION 5 project (rlnIndex 1..N in RELION's order).

    ``tilt_angle_files``: tomo name -> the ``.tlt`` file the caller wrote with
    :func:`isonet_steps.io.tilt_angles.write_tilt_angles`, named in ``rlnTiltAngleFile``.
    """
    files = dict(tilt_angle_files or {})
    rows = [t.star_row(i, number_subtomos=number_subtomos,
                       tilt_angle_file=str(files[t.tomo_name]) if t.tomo_name in files else None)
            for i, t in enumerate(project.tomograms, start=1)]
    table = pd.DataFrame(rows)
    for column in (*RAW_HALVES, TILT_ANGLE_FILE):
        if column in table.columns:
            table[column] = table[column].fillna("None")
    return table


def _project_path(path: Path, project_dir: Path) -> str:
    """Relative to the project folder when inside it (RELION runs there), else absolute."""
    for a, b in ((path.absolute(), project_dir.absolute()), (path.resolve(), project_dir.resolve())):
        try:
            return str(a.relative_to(b))
        except ValueError:
            continue
    return str(path.absolute())


def _named(path: Path, project_dir: Path, named_in: str | None) -> str:
    return _project_path(path, project_dir) if named_in is None else f"{named_in.rstrip('/')}/{path.name}"


def _check_corrected(path: Path, tomogram: Relion5Tomogram) -> None:
    """A corrected tomogram must keep its input's grid: same shape, same voxel size."""
    header = read_header(path, "corrected tomogram")
    if header.shape != tomogram.shape:
        raise InputError(f"{path}: corrected tomogram has shape {header.shape} but {tomogram.tomogram} has "
                         f"{tomogram.shape} (Z, Y, X); give the corrected file of {tomogram.tomo_name}.")
    if header.voxel_size > 0 and abs(header.voxel_size - tomogram.pixel_size) > VOXEL_TOLERANCE * tomogram.pixel_size:
        raise InputError(f"{path}: voxel size {header.voxel_size:.4g} Å differs from {tomogram.tomo_name}'s "
                         f"{tomogram.pixel_size:.4g} Å; give the corrected file of {tomogram.tomo_name}.")


def _fill_geometry(table: pd.DataFrame, chosen: list[Relion5Tomogram]) -> pd.DataFrame:
    """Binning and bin-1 size where the input lacked them: RELION places particles with them."""
    pixel = table[TOMO_TILT_SERIES_PIXEL_SIZE].astype(float).to_numpy()
    binning = np.array([t.pixel_size for t in chosen]) / pixel
    if TOMO_TOMOGRAM_BINNING not in table.columns:
        table[TOMO_TOMOGRAM_BINNING] = binning
    for axis, column in ((2, TOMO_SIZE_X), (1, TOMO_SIZE_Y), (0, TOMO_SIZE_Z)):
        if column not in table.columns:
            table[column] = [int(round(t.shape[axis] * b)) for t, b in zip(chosen, binning)]
    return table


def write_relion5_tomograms(path: str | os.PathLike, project: Relion5Project,
                            corrected: Mapping[str, str | os.PathLike], *,
                            corrected_halves: Mapping[str, tuple[str | os.PathLike, str | os.PathLike]] | None = None,
                            named_in: str | None = None) -> Path:
    """Write a RELION 5 tomograms.star whose rlnTomoReconstructedTomogram is the corrected tomogram.

    Every ``data_global`` column of the input is copied (RELION's next jobs need the optics, hand,
    sizes and tilt-series STARs), for the tomograms in ``corrected`` (tomo name -> file) only, so
    picking and every later job see the corrected tomograms. The raw halves and 2D projections
    are dropped (they would describe another volume) unless ``corrected_halves`` gives both
    corrected halves of every written tomogram. Paths inside the project folder are written
    relative to it, others absolute; ``named_in`` (a folder or URI) names each corrected file
    ``named_in/<file name>`` instead, for files that are checked here but published elsewhere
    (Nextflow). Written atomically.
    """
    unknown = sorted(set(corrected) - {t.tomo_name for t in project.tomograms})
    if unknown:
        raise InputError(f"{project.star_path}: no tomogram named {', '.join(unknown)}; name corrected files by the "
                         "project's rlnTomoName.")
    keep = [i for i, t in enumerate(project.tomograms) if t.tomo_name in corrected]
    if not keep:
        raise InputError(f"{path}: no corrected tomogram to write; correct at least one tomogram of "
                         f"{project.star_path} first.")
    chosen = [project.tomograms[i] for i in keep]
    table = project.global_table.iloc[keep].reset_index(drop=True)
    table = table.drop(columns=[c for c in (*RAW_HALVES, *RAW_DERIVED) if c in table.columns])
    for t in chosen:
        _check_corrected(Path(corrected[t.tomo_name]), t)
    table[TOMO_RECONSTRUCTED_TOMOGRAM] = [_named(Path(corrected[t.tomo_name]), project.project_dir, named_in)
                                          for t in chosen]
    halves = dict(corrected_halves or {})
    if halves and all(t.tomo_name in halves for t in chosen):
        for k, column in enumerate(RAW_HALVES):
            for t in chosen:
                _check_corrected(Path(halves[t.tomo_name][k]), t)
            table[column] = [_named(Path(halves[t.tomo_name][k]), project.project_dir, named_in) for t in chosen]
    table = _fill_geometry(table, chosen)
    path = Path(path)
    ensure_writable_folder(path)
    with atomic_path(path, suffix=".star") as tmp:
        starfile.write({"global": table}, tmp)
    return path
