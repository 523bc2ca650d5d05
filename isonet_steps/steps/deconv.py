"""deconv: CTF deconvolution (Wiener-like filter) of every chosen tomogram of a tomograms.star."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..core.ctf import CtfParams
from ..core.volume_checks import entering_tomogram, fill_nonfinite
from ..io.atomic import check_writable_target
from ..io.columns import (
    AMPLITUDE_CONTRAST,
    DECONV_STRENGTH,
    DECONV_TOMO_NAME,
    DEFOCUS,
    MICROGRAPH_NAME,
    PIXEL_SIZE,
    SNR_FALLOFF,
    SPHERICAL_ABERRATION,
    VOLTAGE,
    is_set,
)
from ..io.errors import InputError
from ..io.log import get_logger
from ..io.mrc import Header, new_memmap, open_memmap, read_header, read_volume, release_pages, write_volume
from ..io.params import default
from ..io.star import read_tomogram_star, resolve_path, select_rows, write_star


def all_cores() -> int:
    """CPU cores this process may use (its affinity on Linux), the default number of FFT threads."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class _Job:
    """One tomogram to deconvolve, checked before anything is written."""

    row: int
    path: Path
    header: Header
    params: CtfParams
    fill: float | None = None  # what its NaN/Inf voxels read as (--fix-nonfinite), else None


@dataclass
class _Settings:
    """The options every row shares (None: the row's STAR value, else 1.0)."""

    voltage: float
    cs: float
    snrfalloff: float | None
    deconvstrength: float | None
    highpassnyquist: float


def _star_value(table, row: int, column: str) -> float:
    value = table.at[row, column] if column in table.columns else None
    return float(value) if is_set(value) else 1.0


#: The microscope as a STAR row may record it (a RELION 5 project does) -> CtfParams field.
MICROSCOPE_COLUMNS = {VOLTAGE: "voltage", SPHERICAL_ABERRATION: "cs",
                      AMPLITUDE_CONTRAST: "amplitude_contrast"}


def _microscope(table, row: int, given: _Settings) -> dict[str, float]:
    """The row's own voltage, Cs and amplitude contrast where the STAR has them, else the options.

    These describe how that tomogram was recorded (RELION 5 copies them from the tilt series), so
    they win over the options, which are one value for every tomogram; a difference is logged.
    """
    values = {"voltage": given.voltage, "cs": given.cs}
    for column, field in MICROSCOPE_COLUMNS.items():
        cell = table.at[row, column] if column in table.columns else None
        if is_set(cell):
            if field in values and not math.isclose(float(cell), values[field], rel_tol=1e-6):
                get_logger().info("deconv: row %d: %s %g from the STAR (not the option's %g)", row + 1, column,
                                  float(cell), values[field])
            values[field] = float(cell)
    return values


def _row_params(table, row: int, defocus: float, given: _Settings, star) -> CtfParams:
    params = CtfParams(
        pixel_size=float(table.at[row, PIXEL_SIZE]), defocus=defocus, **_microscope(table, row, given),
        snrfalloff=given.snrfalloff if given.snrfalloff is not None else _star_value(table, row, SNR_FALLOFF),
        deconvstrength=(given.deconvstrength if given.deconvstrength is not None
                        else _star_value(table, row, DECONV_STRENGTH)),
        highpassnyquist=given.highpassnyquist,
    )
    try:
        params.check()
    except InputError as exc:
        raise InputError(f"{star}: row {row + 1}: {exc} Fix the STAR file or give the option.") from None
    return params


def _plan(table, rows: list[int], given: _Settings, star) -> list[_Job]:
    """Every chosen row with a defocus, checked before anything is written (rlnDefocus 0 is skipped)."""
    jobs = []
    for row in rows:
        name = table.at[row, MICROGRAPH_NAME]
        has_defocus = DEFOCUS in table.columns and is_set(table.at[row, DEFOCUS])
        defocus = float(table.at[row, DEFOCUS]) if has_defocus else 0.0
        if defocus < 0:
            raise InputError(f"{star}: rlnDefocus {defocus:g} of {name} is negative; give the underfocus in Å as a "
                             "positive number (0 = skip).")
        path = resolve_path(name, star, MICROGRAPH_NAME)
        header = read_header(path, "tomogram")
        if defocus == 0:
            get_logger().info("deconv: skipping %s: rlnDefocus is 0 (no CTF to correct, e.g. phase plate)", path)
            continue
        fill = entering_tomogram(path, table.iloc[row].to_dict())
        jobs.append(_Job(row, path, header, _row_params(table, row, defocus, given, star), fill))
    return jobs


def _deconvolve(job: _Job, out: Path, *, chunk_size: int | None, overlap_rate: float, workers: int) -> None:
    """One tomogram: whole in memory, or streamed chunk by chunk between two memory maps."""
    from ..core.deconv_chunked import deconv_chunked
    from ..core.deconv_whole import deconv_volume

    voxel = job.header.voxel_size if job.header.voxel_size > 0 else job.params.pixel_size
    if chunk_size is None:
        volume = read_volume(job.path, "tomogram", fill_nonfinite=job.fill)
        write_volume(out, deconv_volume(volume.data, job.params, workers=workers, what=str(job.path)), voxel)
        del volume
        return
    with open_memmap(job.path, "tomogram") as src, new_memmap(out, job.header.shape, voxel) as dst:

        def _release(src=src, dst=dst) -> None:
            release_pages(src.data)
            release_pages(dst)

        deconv_chunked(fill_nonfinite(src.data, job.fill), dst, job.params, chunk_size=chunk_size,
                       overlap_rate=overlap_rate, workers=workers, what=str(job.path), release=_release)


def _check_settings(given: _Settings, chunk_size: int | None, overlap_rate: float, ncpu: int | None) -> None:
    from ..core.deconv_chunked import chunk_layout

    if ncpu is not None and ncpu < 1:
        raise InputError(f"--ncpu {ncpu} must be at least 1 (FFT threads).")
    if chunk_size is not None:
        chunk_layout((1, 1, 1), chunk_size, overlap_rate)  # range checks only
    CtfParams(pixel_size=1.0, defocus=1.0, voltage=given.voltage, cs=given.cs, snrfalloff=given.snrfalloff or 0.0,
              deconvstrength=given.deconvstrength or 0.0, highpassnyquist=given.highpassnyquist).check()


def run_deconv(star: str | os.PathLike, *, deconv_folder: str | os.PathLike = "deconv",
               voltage: float = default("voltage"), cs: float = default("cs"), snrfalloff: float | None = None,
               deconvstrength: float | None = None, highpassnyquist: float = default("highpassnyquist"),
               chunk_size: int | None = None, overlap_rate: float = default("overlap_rate"), ncpu: int | None = None,
               tomo_idx: str | None = None, output_star: str | os.PathLike | None = None) -> Path:
    """Deconvolve the chosen rows' tomograms into ``deconv_folder``; returns the STAR written.

    Fills rlnSnrFalloff, rlnDeconvStrength and rlnDeconvTomoName, rewriting the STAR after each
    tomogram (as IsoNet: a crash keeps the finished rows).
    """
    log = get_logger()
    table = read_tomogram_star(star)
    rows = select_rows(table, tomo_idx, star)
    out_star = Path(output_star) if output_star else Path(star)
    given = _Settings(voltage, cs, snrfalloff, deconvstrength, highpassnyquist)
    _check_settings(given, chunk_size, overlap_rate, ncpu)
    check_writable_target(Path(deconv_folder) / "x.mrc")
    check_writable_target(out_star)
    jobs = _plan(table, rows, given, star)
    for column, empty in ((SNR_FALLOFF, 1.0), (DECONV_STRENGTH, 1.0), (DECONV_TOMO_NAME, "None")):
        if column not in table.columns:
            table[column] = empty
    for job in jobs:
        out = Path(deconv_folder) / job.path.name
        log.info("deconv: %s | pixel: %g Å | defocus: %g µm | snrfalloff: %g | deconvstrength: %g | %s",
                 job.path, job.params.pixel_size, job.params.defocus / 1e4, job.params.snrfalloff,
                 job.params.deconvstrength, f"chunks of {chunk_size}" if chunk_size else "whole tomogram")
        start = time.time()
        _deconvolve(job, out, chunk_size=chunk_size, overlap_rate=overlap_rate, workers=ncpu or all_cores())
        table.at[job.row, SNR_FALLOFF] = job.params.snrfalloff
        table.at[job.row, DECONV_STRENGTH] = job.params.deconvstrength
        table.at[job.row, DECONV_TOMO_NAME] = str(out)
        write_star(table, out_star)  # after each tomogram, as IsoNet: a crash keeps finished rows
        log.info("deconv: wrote %s in %.1f s", out, time.time() - start)
    if not jobs:
        log.warning("deconv: nothing to do (no chosen row has a non-zero rlnDefocus); %s left unchanged", out_star)
    return out_star
