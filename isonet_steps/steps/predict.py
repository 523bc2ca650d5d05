"""predict: correct whole tomograms with a trained network and record them in the STAR table.

:func:`correct_tomogram` corrects one tomogram (an MRC file or an array) with a :class:`Network`;
:func:`run_predict` is the STAR loop around it: it plans every chosen row (:func:`plan_corrections`),
checks each against the model's record before the network is loaded, then corrects them one by
one. gold-standard plans and corrects its tomograms with the same functions.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.volume_checks import check_halves, check_prediction, entering_tomogram
from ..io.columns import (
    CORRECTED_HALVES,
    CORRECTED_TOMO_NAME,
    DECONV_TOMO_NAME,
    INDEX,
    PIXEL_SIZE,
    RAW_HALVES,
    is_set,
)
from ..io.errors import InputError
from ..io.log import get_logger
from ..io.mrc import Header, read_header, read_volume, write_volume
from ..io.params import default
from ..io.star import read_tomogram_star, resolve_path, select_rows, tomogram_source, write_star
from ..network.inference import check_tiling, corrected_file_name


@dataclass
class Correction:
    """One tomogram to correct, planned and checked before the network is loaded."""

    row: int  # its row in the table
    index: Any  # its rlnIndex, for the log
    path: Path
    source: str  # the STAR column it came from
    header: Header
    out: Path
    pixel_size: float  # the row's rlnPixelSize: the voxel size where the header gives none
    raw_halves: tuple[Path, Path] | None = None  # --correct-halves: the row's raw even/odd halves, corrected too
    fill: float | None = None  # what its NaN/Inf voxels read as (--fix-nonfinite), else None

    @property
    def voxel_size(self) -> float:
        """Its header's voxel size, else its row's rlnPixelSize (Å): what the model's record is checked against."""
        return self.header.voxel_size or self.pixel_size

    def check(self, network: Network) -> None:
        """Check it against the network's training record (:meth:`Network.check`)."""
        network.check(self.path, self.voxel_size, self.source == DECONV_TOMO_NAME)

    def run(self, network: Network) -> None:
        """Log which row's tomogram is corrected into which file, and correct it with ``network``."""
        get_logger().info("rlnIndex %s: %s (%s, %s) -> %s", self.index, self.path, self.source,
                          "×".join(map(str, self.header.shape[::-1])), self.out)
        correct_tomogram(self.path, self.out, network, voxel_size=self.pixel_size, fill_nonfinite=self.fill)


def _check_tile_settings(cube_size: int, crop_size: int, batch_size: int | None) -> None:
    """The tile and batch sizes' rules that do not depend on the network (one-line errors)."""
    check_tiling(cube_size, crop_size, 0)
    if batch_size is not None and batch_size < 1:
        raise InputError(f"--batch-size {batch_size} must be at least 1 (tiles per network call).")


class Network:
    """A trained .keras model to correct tomograms with, in ``crop_size`` tiles at a ``cube_size`` stride.

    The file and its training record are read at once; the framework and the weights load on
    :meth:`load`, so every tomogram can be checked against the record first (:meth:`check`).
    """

    def __init__(self, model: str | os.PathLike, *, cube_size: int = default("predict_cube_size"),
                 crop_size: int = default("predict_crop_size"),
                 batch_size: int | None = None, precision: str = "auto", gpus: str | None = None):
        from ..io.model_record import read_model_record

        _check_tile_settings(cube_size, crop_size, batch_size)
        if not Path(model).is_file():
            raise InputError(f"{model}: model file not found; give the .keras file written by refine (e.g. "
                             "results/model_final.keras).")
        self.model, self.cube_size, self.crop_size, self.batch_size = model, cube_size, crop_size, batch_size
        self.precision, self.gpus = precision, gpus
        self.record = read_model_record(model)
        if self.record is None:
            get_logger().warning("%s: the model has no record of its training (an older isonet-nf's, or IsoNet's), "
                                 "so the tomograms' voxel size cannot be checked against it", model)
        self._predict_fn: Callable[[np.ndarray], np.ndarray] | None = None

    def check(self, where: str | os.PathLike, voxel_size: float, deconvolved: bool | None) -> None:
        """Refuse a tomogram at another voxel size than the model's training data, warn on deconvolved vs raw
        (io/model_record.py); a model without a record takes any.
        """
        from ..io.model_record import check_fits

        check_fits(self.record, voxel_size, deconvolved, model=self.model, where=where)

    def load(self, tomograms: int = 1) -> Callable[[np.ndarray], np.ndarray]:
        """Devices first, then the framework and the network (once); returns its predict function."""
        if self._predict_fn is None:
            self._predict_fn = self._load(tomograms)
        return self._predict_fn

    def _load(self, tomograms: int) -> Callable[[np.ndarray], np.ndarray]:
        from ..network import devices

        gpu_ids = devices.configure(self.gpus)
        import keras

        from ..network.inference import model_predict_fn
        from ..network.unet import load_model, unet_depth

        log = get_logger()
        n_gpus = devices.usable_gpus()
        if gpu_ids and n_gpus == 0:
            log.warning("GPU %s requested but the framework sees none; predicting on the CPU", ",".join(gpu_ids))
        with devices.distribution_scope():
            network = load_model(self.model)
        check_tiling(self.cube_size, self.crop_size, unet_depth(network))
        if self.batch_size is None:
            self.batch_size = 4 * max(1, n_gpus)
        precision = devices.resolve_precision(self.precision)
        predict_fn = model_predict_fn(network, precision=precision)
        log.info("predicting %d tomogram(s) on %s (%s, %s), batch size %d, cube %d, crop %d", tomograms,
                 f"{n_gpus} GPU(s)" if n_gpus else "the CPU", keras.backend.backend(), precision, self.batch_size,
                 self.cube_size, self.crop_size)
        return predict_fn


def correct_tomogram(tomogram: np.ndarray | str | os.PathLike, out: str | os.PathLike,
                     model: Network | str | os.PathLike, *, voxel_size: float = 0.0, deconvolved: bool | None = None,
                     fill_nonfinite: float | None = None, **settings: Any) -> Path:
    """Correct one tomogram with ``model`` and write it to ``out`` with the input's voxel size; returns ``out``.

    ``tomogram``: an MRC file (its NaN/Inf voxels read as ``fill_nonfinite`` when given) or a
    ``[Z, Y, X]`` array (left as it is). ``voxel_size`` (Å): the tomogram's where its header gives
    none, and an array's. ``model``: a :class:`Network`, whose caller checked the tomogram against
    its record (as :func:`run_predict` and gold-standard check every tomogram before the first is
    corrected); or a .keras file, opened here with ``settings`` (:class:`Network`'s: ``cube_size``,
    ``crop_size``, ``batch_size``, ``precision``, ``gpus``) and this tomogram checked against its
    record (``deconvolved``: whether it is; None: not checked).
    """
    from ..network.inference import predict_tomogram

    if isinstance(model, Network):
        if settings:
            raise TypeError(f"correct_tomogram: {', '.join(sorted(settings))} belong to the Network given")
        network = model
    else:
        network = Network(model, **settings)
        if isinstance(tomogram, np.ndarray):
            network.check(out, voxel_size, deconvolved)
        else:
            network.check(tomogram, read_header(tomogram, "tomogram").voxel_size or voxel_size, deconvolved)
    predict_fn = network.load()
    assert network.batch_size is not None  # set by load
    start = time.perf_counter()
    source: str | os.PathLike = f"the array for {out}"
    if isinstance(tomogram, np.ndarray):
        data, in_place = tomogram, False
    else:
        volume = read_volume(tomogram, "tomogram", fill_nonfinite=fill_nonfinite)
        data, source, in_place, voxel_size = volume.data, tomogram, True, volume.voxel_size or voxel_size
        del volume
    corrected = predict_tomogram(predict_fn, data, cube=network.cube_size, crop=network.crop_size,
                                 batch_size=network.batch_size, overwrite_input=in_place)  # read_volume's own copy
    del data
    check_prediction(corrected, out, source)
    write_volume(out, corrected, voxel_size)
    seconds = time.perf_counter() - start
    get_logger().info("done %s in %.1f s (%.2f M voxels/s)", Path(out).name, seconds, corrected.size / seconds / 1e6)
    return Path(out)


def _raw_halves(row: dict, tomo_star, path: Path, header: Header) -> tuple[Path, Path] | None:
    """The row's raw half tomograms (checked to match its tomogram's shape), or None where it names none."""
    if not all(is_set(row.get(c)) for c in RAW_HALVES):
        get_logger().warning("%s: no raw halves (%s), so only the full tomogram is corrected", path.name,
                             " / ".join(RAW_HALVES))
        return None
    halves = tuple(resolve_path(row[c], tomo_star, c, "half tomogram") for c in RAW_HALVES)
    check_halves(halves[0], halves[1])
    for half in halves:
        shape = read_header(half, "half tomogram").shape
        if shape != header.shape:
            raise InputError(f"{half}: half tomogram shape {shape} differs from {path}'s {header.shape}; give the "
                             "halves of this same reconstruction.")
    return halves[0], halves[1]


def plan_corrections(table, rows: list[int], tomo_star, output_dir, *, use_deconv_tomo: bool = True,
                     half: int | None = None, correct_halves: bool = False) -> list[Correction]:
    """The chosen rows' tomograms, each checked (readable, finite, its raw halves with ``correct_halves``)
    and named its output file in ``output_dir``; two rows writing one file is an error.
    """
    jobs = []
    for i in rows:
        row = table.iloc[i].to_dict()
        path, source = tomogram_source(row, tomo_star, use_deconv_tomo)
        header = read_header(path, "tomogram")
        raw = _raw_halves(row, tomo_star, path, header) if correct_halves and half is None else None
        jobs.append(Correction(i, row[INDEX], path, source, header,
                               Path(output_dir) / corrected_file_name(path.name, half), float(row[PIXEL_SIZE]),
                               raw, entering_tomogram(path, row)))
    outputs = [str(job.out) for job in jobs]
    if len(set(outputs)) != len(outputs):
        twice = next(o for o in outputs if outputs.count(o) > 1)
        raise InputError(f"{tomo_star}: two tomograms would both be written to {twice}; "
                         "give them different file names.")
    return jobs


def _correct_halves(job: Correction, table, output_dir, network: Network) -> None:
    """Correct the row's raw halves with the same network into rlnCorrectedTomoHalf1/2 (the report compares them)."""
    assert job.raw_halves is not None
    for h, raw in enumerate(job.raw_halves, start=1):
        out = Path(output_dir) / corrected_file_name(job.path.name, h)
        fill = entering_tomogram(raw, table.iloc[job.row].to_dict(), "half tomogram")
        correct_tomogram(raw, out, network, voxel_size=job.pixel_size, fill_nonfinite=fill)
        column = CORRECTED_HALVES[h - 1]
        if column not in table.columns:
            table[column] = "None"
        table.at[job.row, column] = str(out)


def run_predict(tomo_star: str | os.PathLike, model: str | os.PathLike, *,
                output_dir: str | os.PathLike = "corrected_tomos", cube_size: int = default("predict_cube_size"),
                crop_size: int = default("predict_crop_size"), batch_size: int | None = None,
                tomo_idx: str | None = None, use_deconv_tomo: bool = default("use_deconv_tomo"),
                half: int | None = None, output_star: str | os.PathLike | None = None,
                precision: str = default("precision"), gpus: str | None = None, relion5_folder: str | None = None,
                correct_halves: bool = False) -> Path:
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
    column = CORRECTED_HALVES[half - 1] if half else CORRECTED_TOMO_NAME
    network = Network(model, cube_size=cube_size, crop_size=crop_size, batch_size=batch_size, precision=precision,
                      gpus=gpus)  # the file, its record and the tile sizes: before any tomogram is read
    table = read_tomogram_star(tomo_star)
    jobs = plan_corrections(table, select_rows(table, tomo_idx, tomo_star), tomo_star, output_dir,
                            use_deconv_tomo=use_deconv_tomo, half=half, correct_halves=correct_halves)
    for job in jobs:
        job.check(network)
    network.load(len(jobs))
    if column not in table.columns:
        table[column] = "None"
    star_out = output_star or tomo_star
    for job in jobs:
        job.run(network)
        table.at[job.row, column] = str(job.out)
        if job.raw_halves is not None:
            _correct_halves(job, table, output_dir, network)
        write_star(table, star_out)
    log.info("wrote %s", star_out)
    if half is None:  # rows from a RELION 5 project: their corrected tomograms as RELION's tomogram set too
        from .relion5_out import write_relion5_star

        write_relion5_star(table, star_out, output_dir, named_in=relion5_folder)
    return Path(star_out)
