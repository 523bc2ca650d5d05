"""predict: correct whole tomograms with a trained network and record them in the STAR table."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core.volume_checks import check_halves, check_prediction, entering_tomogram
from ..io.errors import InputError
from ..io.log import get_logger
from ..io.mrc import Header, read_header, read_volume, write_volume
from ..io.star import is_set, read_tomogram_star, resolve_path, select_rows, tomogram_source, write_star
from ..network.inference import check_tiling, corrected_file_name


@dataclass
class _Job:
    """One tomogram to correct, checked before the network is loaded."""

    row: int
    path: Path
    source: str  # the STAR column it came from
    header: Header
    out: Path
    raw_halves: tuple[Path, Path] | None = None  # --correct-halves: the row's raw even/odd halves, corrected too
    fill: float | None = None  # what its NaN/Inf voxels read as (--fix-nonfinite), else None


RAW_HALF_COLUMNS = ("rlnTomoReconstructedTomogramHalf1", "rlnTomoReconstructedTomogramHalf2")


def _raw_halves(row: dict, tomo_star, path: Path, header: Header) -> tuple[Path, Path] | None:
    """The row's raw half tomograms (checked to match its tomogram's shape), or None where it names none."""
    if not all(is_set(row.get(c)) for c in RAW_HALF_COLUMNS):
        get_logger().warning("%s: no raw halves (%s), so only the full tomogram is corrected", path.name,
                             " / ".join(RAW_HALF_COLUMNS))
        return None
    halves = tuple(resolve_path(row[c], tomo_star, c, "half tomogram") for c in RAW_HALF_COLUMNS)
    check_halves(halves[0], halves[1])
    for half in halves:
        shape = read_header(half, "half tomogram").shape
        if shape != header.shape:
            raise InputError(f"{half}: half tomogram shape {shape} differs from {path}'s {header.shape}; give the "
                             "halves of this same reconstruction.")
    return halves[0], halves[1]


def _plan(table, rows: list[int], tomo_star, output_dir, use_deconv_tomo: bool, half: int | None,
          correct_halves: bool = False) -> list[_Job]:
    jobs = []
    for i in rows:
        row = table.iloc[i].to_dict()
        path, source = tomogram_source(row, tomo_star, use_deconv_tomo)
        header = read_header(path, "tomogram")
        raw = _raw_halves(row, tomo_star, path, header) if correct_halves and half is None else None
        jobs.append(_Job(i, path, source, header, Path(output_dir) / corrected_file_name(path.name, half), raw,
                         entering_tomogram(path, row)))
    outputs = [str(job.out) for job in jobs]
    if len(set(outputs)) != len(outputs):
        twice = next(o for o in outputs if outputs.count(o) > 1)
        raise InputError(f"{tomo_star}: two tomograms would both be written to {twice}; "
                         "give them different file names.")
    return jobs


def _check_model_fits(model, jobs: list[_Job], table) -> None:
    """Refuse tomograms at another voxel size than the model's training data, warn on deconvolved vs raw
    (io/model_record.py); a model without a record is used as it is, with a warning.
    """
    from ..io.model_record import check_fits, read_model_record

    record = read_model_record(model)
    if record is None:
        get_logger().warning("%s: the model has no record of its training (an older isonet-nf's, or IsoNet's), so "
                             "the tomograms' voxel size cannot be checked against it", model)
        return
    for job in jobs:
        voxel_size = job.header.voxel_size or float(table.at[job.row, "rlnPixelSize"])
        check_fits(record, voxel_size, job.source == "rlnDeconvTomoName", model=model, where=job.path)


def _load_network(model, gpus: str | None, precision: str, cube_size: int, crop_size: int,
                  batch_size: int | None, n_jobs: int) -> tuple[Callable, int]:
    """Devices first, then the framework and the network; returns its predict function and the batch size."""
    from ..network import devices

    gpu_ids = devices.configure(gpus)
    import keras

    from ..network.inference import model_predict_fn
    from ..network.unet import load_model, unet_depth

    log = get_logger()
    n_gpus = devices.usable_gpus()
    if gpu_ids and n_gpus == 0:
        log.warning("GPU %s requested but the framework sees none; predicting on the CPU", ",".join(gpu_ids))
    with devices.distribution_scope():
        network = load_model(model)
    check_tiling(cube_size, crop_size, unet_depth(network))
    if batch_size is None:
        batch_size = 4 * max(1, n_gpus)
    precision = devices.resolve_precision(precision)
    predict_fn = model_predict_fn(network, precision=precision)
    log.info("predicting %d tomogram(s) on %s (%s, %s), batch size %d, cube %d, crop %d", n_jobs,
             f"{n_gpus} GPU(s)" if n_gpus else "the CPU", keras.backend.backend(), precision, batch_size,
             cube_size, crop_size)
    return predict_fn, batch_size


def _correct_halves(job: _Job, table, output_dir, predict_fn: Callable, pixel_size: float, **tiles: int) -> None:
    """Correct the row's raw halves with the same network into rlnCorrectedTomoHalf1/2 (the report compares them)."""
    assert job.raw_halves is not None
    for h, raw in enumerate(job.raw_halves, start=1):
        out = Path(output_dir) / corrected_file_name(job.path.name, h)
        fill = entering_tomogram(raw, table.iloc[job.row].to_dict(), "half tomogram")
        _correct(_Job(job.row, raw, RAW_HALF_COLUMNS[h - 1], job.header, out, fill=fill), predict_fn, pixel_size,
                 **tiles)
        column = f"rlnCorrectedTomoHalf{h}"
        if column not in table.columns:
            table[column] = "None"
        table.at[job.row, column] = str(out)


def _correct(job: _Job, predict_fn: Callable, pixel_size: float, *, cube: int, crop: int, batch_size: int) -> None:
    """Correct one tomogram and write it with the input's voxel size."""
    from ..network.inference import predict_tomogram

    start = time.perf_counter()
    volume = read_volume(job.path, "tomogram", fill_nonfinite=job.fill)
    corrected = predict_tomogram(predict_fn, volume.data, cube=cube, crop=crop, batch_size=batch_size,
                                 overwrite_input=True)  # read_volume's own copy
    voxel_size = volume.voxel_size or pixel_size
    del volume
    check_prediction(corrected, job.out, job.path)
    write_volume(job.out, corrected, voxel_size)
    seconds = time.perf_counter() - start
    get_logger().info("done %s in %.1f s (%.2f M voxels/s)", job.out.name, seconds, corrected.size / seconds / 1e6)


def run_predict(tomo_star: str | os.PathLike, model: str | os.PathLike, *,
                output_dir: str | os.PathLike = "corrected_tomos", cube_size: int = 96, crop_size: int = 128,
                batch_size: int | None = None, tomo_idx: str | None = None, use_deconv_tomo: bool = True,
                half: int | None = None, output_star: str | os.PathLike | None = None, precision: str = "auto",
                gpus: str | None = None, relion5_folder: str | None = None, correct_halves: bool = False) -> Path:
    """Correct the chosen rows' tomograms with the .keras ``model``; returns the STAR written.

    Fills rlnCorrectedTomoName (or rlnCorrectedTomoHalf1/2 with ``half``), rewriting the STAR after
    each tomogram. Inputs and tiles are checked before the network is loaded. Rows from a RELION 5
    project also get ``<output_dir>/relion5_tomograms.star`` (steps/relion5_out.py), naming the
    corrected files in ``relion5_folder`` when given (where they will be published). With
    ``correct_halves`` (noise2noise) rows with raw even/odd halves also get each half corrected by the
    same network (rlnCorrectedTomoHalf1/2), so the report can show where the halves disagree.
    """
    log = get_logger()
    half = int(half) if half else None
    column = f"rlnCorrectedTomoHalf{half}" if half else "rlnCorrectedTomoName"
    check_tiling(cube_size, crop_size, 0)  # the size rules that do not depend on the network
    if batch_size is not None and batch_size < 1:
        raise InputError(f"--batch-size {batch_size} must be at least 1 (tiles per network call).")
    table = read_tomogram_star(tomo_star)
    jobs = _plan(table, select_rows(table, tomo_idx, tomo_star), tomo_star, output_dir, use_deconv_tomo, half,
                 correct_halves)
    if not Path(model).is_file():
        raise InputError(f"{model}: model file not found; give the .keras file written by refine (e.g. "
                         "results/model_final.keras).")
    _check_model_fits(model, jobs, table)
    predict_fn, batch_size = _load_network(model, gpus, precision, cube_size, crop_size, batch_size, len(jobs))
    if column not in table.columns:
        table[column] = "None"
    star_out = output_star or tomo_star
    for job in jobs:
        log.info("rlnIndex %s: %s (%s, %s) -> %s", table.at[job.row, "rlnIndex"], job.path, job.source,
                 "×".join(map(str, job.header.shape[::-1])), job.out)
        pixel_size = float(table.at[job.row, "rlnPixelSize"])
        _correct(job, predict_fn, pixel_size, cube=cube_size, crop=crop_size, batch_size=batch_size)
        table.at[job.row, column] = str(job.out)
        if job.raw_halves is not None:
            _correct_halves(job, table, output_dir, predict_fn, pixel_size, cube=cube_size, crop=crop_size,
                            batch_size=batch_size)
        write_star(table, star_out)
    log.info("wrote %s", star_out)
    if half is None:  # rows from a RELION 5 project: their corrected tomograms as RELION's tomogram set too
        from .relion5_out import write_relion5_star

        write_relion5_star(table, star_out, output_dir, named_in=relion5_folder)
    return Path(star_out)
