"""Glue between files and :func:`isonet_steps.network.refine.refine`: read subtomo.star, run, log.

Shared by ``isonet refine`` and ``isonet run`` so both do exactly the same thing.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..io.checkpoint import RefineStore
from ..io.columns import (
    CUBE_SIZE,
    DECONVOLVED,
    IMAGE_NAME,
    IMAGE_NAME_HALF2,
    PIXEL_SIZE,
    RANDOM_SUBSET,
    TILT_MAX,
    TILT_MIN,
    is_set,
)
from ..io.errors import InputError
from ..io.fingerprint import files_digest
from ..io.log import detach_file_logs, get_logger, progress, setup_logging
from ..io.model_record import VOXEL_SIZE_TOLERANCE, check_fits, read_model_record
from ..io.mrc import read_volume
from ..io.params import default
from ..io.refine_state import RefineState
from ..io.star import read_subtomo_star, resolve_path
from ..network.refine import RefineData, RefineSettings, refine
from ..network.watch import TrainingStopped
from .row_wedge import row_wedges


def _second_half(table, star_path: str | os.PathLike, shape: tuple[int, ...]) -> tuple[np.ndarray, list[Path]]:
    """Noise2noise: the same boxes cut from the other half tomogram (rlnImageNameHalf2), in the table's order."""
    if IMAGE_NAME_HALF2 not in table.columns or not all(is_set(v) for v in table[IMAGE_NAME_HALF2]):
        raise InputError(f"{star_path}: --noise2noise needs every row's {IMAGE_NAME_HALF2} (the box cut from the "
                         "other half tomogram); re-run extract with --noise2noise on tomograms with raw halves.")
    cubes, paths = [], []
    for value in progress(table[IMAGE_NAME_HALF2], total=len(table), desc="reading half-2 subtomograms",
                          unit="subtomo"):
        path = resolve_path(value, star_path, IMAGE_NAME_HALF2, "subtomogram")
        data = read_volume(path, "subtomogram").data
        if data.shape != shape:
            raise InputError(f"{path}: half-2 subtomogram is {data.shape} but its half-1 box is {shape}; re-run "
                             "extract --noise2noise.")
        cubes.append(data)
        paths.append(path)
    return np.stack(cubes), paths


def load_subtomos(star_path: str | os.PathLike, half: int | None = None, noise2noise: bool = False) -> RefineData:
    """Read every subtomogram a subtomo.star names (optionally one rlnRandomSubset half; noise2noise: both halves)."""
    table = read_subtomo_star(star_path)
    if half is not None:
        if RANDOM_SUBSET not in table.columns:
            raise InputError(f"{star_path}: --halves needs the rlnRandomSubset column; re-run extract (it writes it).")
        table = table[table[RANDOM_SUBSET] == half].reset_index(drop=True)
        if len(table) < 2:
            raise InputError(f"{star_path}: half {half} has {len(table)} subtomograms; "
                             "extract more (at least 2 per half).")
    cubes: list[np.ndarray] = []
    names: list[str] = []
    paths: list[Path] = []
    voxel_sizes: list[float] = []
    for value in progress(table[IMAGE_NAME], total=len(table), desc="reading subtomograms", unit="subtomo"):
        path = resolve_path(value, star_path, IMAGE_NAME, "subtomogram")
        vol = read_volume(path, "subtomogram")
        shape = vol.data.shape
        if len(set(shape)) != 1:
            raise InputError(f"{path}: subtomogram is {shape}, not cubic; extract cubic subtomograms.")
        if cubes and shape != cubes[0].shape:
            raise InputError(f"{path}: subtomogram is {shape} but the first one is {cubes[0].shape}; "
                             "all must share one size.")
        cubes.append(vol.data)
        names.append(Path(str(value)).name)
        paths.append(path)
        voxel_sizes.append(vol.voxel_size)
    crop = cubes[0].shape[0]
    cube = int(table[CUBE_SIZE].iloc[0]) if CUBE_SIZE in table.columns else crop
    if cube > crop:
        raise InputError(f"{star_path}: rlnCubeSize {cube} exceeds the subtomogram size {crop}; fix the STAR or "
                         "re-extract.")
    tilts = table[[TILT_MIN, TILT_MAX]].to_numpy(dtype=float)
    second, second_paths = _second_half(table, star_path, cubes[0].shape) if noise2noise else (None, [])
    return RefineData(subtomos=np.stack(cubes), tilts=tilts, names=names, cube=cube, second_half=second,
                      second_names=[p.name for p in second_paths] if noise2noise else None,
                      wedges=row_wedges(table, star_path), voxel_size=_voxel_size(table, voxel_sizes),
                      deconvolved=_deconvolved(table), digest=files_digest(paths + second_paths))


def _voxel_size(table, headers: list[float]) -> float | None:
    """The subtomograms' voxel size (Å): the median of their headers', each unset one taken from its
    rlnPixelSize; None where neither says.
    """
    star = table[PIXEL_SIZE] if PIXEL_SIZE in table.columns else [0.0] * len(headers)
    sizes = [h if h > 0 else float(s) for h, s in zip(headers, star) if h > 0 or (is_set(s) and float(s) > 0)]
    if not sizes:
        return None
    median = float(np.median(sizes))
    if max(sizes) - min(sizes) > VOXEL_SIZE_TOLERANCE * median:
        get_logger("refine").warning("the subtomograms' voxel sizes range from %g to %g Å; the models record the "
                                     "median, %g Å (resize the tomograms to one voxel size before extract)",
                                     min(sizes), max(sizes), median)
    return median


def _deconvolved(table) -> bool | None:
    """Whether extract cut the subtomograms from deconvolved tomograms (None: not recorded, or mixed)."""
    if DECONVOLVED not in table.columns:
        return None
    values = {bool(int(v)) for v in table[DECONVOLVED] if is_set(v)}
    return values.pop() if len(values) == 1 and all(is_set(v) for v in table[DECONVOLVED]) else None


def _check_pretrained(model: str, data: RefineData, star_path) -> None:
    """Fine-tuning a ``--pretrained-model`` trained at another voxel size, or on the other kind of
    tomogram, is allowed but said (io/model_record.py); so is one that records nothing.
    """
    if not Path(model).is_file():
        return  # load_model refuses it, in one line
    log = get_logger("refine")
    record = read_model_record(model)
    if record is None:
        log.warning("%s: the pretrained model has no record of its training (an older isonet-nf's, or IsoNet's), "
                    "so its voxel size cannot be compared with the subtomograms'", model)
        return
    try:
        check_fits(record, data.voxel_size or 0.0, data.deconvolved, model=model, where=star_path)
    except InputError as exc:
        log.warning("%s (fine-tuning goes on)", exc)


def _stopped_where(exc: TrainingStopped, store: RefineStore) -> TrainingStopped:
    """The watch's line, with the iteration it stopped and what the run folder keeps for a rerun."""
    state = store.load_state()
    done = state.completed if state is not None else 0
    kept = f"iteration {done}'s model ({store.model_path(done).name})" if done else "the starting model"
    line = (f"{store.dir}: refine stopped in iteration {done + 1}: {exc}; the folder keeps {kept} and its state, "
            f"so a rerun continues from iteration {done + 1} once the cause is fixed.")
    get_logger("refine").error("%s", line)
    return TrainingStopped(line)


def run_refine(star_path, result_dir, settings: RefineSettings, *, until_iter=None, resume=True,
               halves: bool = default("halves"), log_level="info", half: int | None = None) -> list[RefineState]:
    """Refine one network (or one per half) into ``result_dir``; returns the state records.

    ``half``: only that half's network, into ``result_dir`` itself (trained as with ``halves``), so
    the two halves can run as separate jobs.
    """
    from ..network.devices import usable_gpus

    states: list[RefineState] = []
    targets: list[tuple[int | None, Path]]
    if half is not None:
        targets = [(half, Path(result_dir))]
    elif halves:
        targets = [(h, Path(result_dir) / f"half{h}") for h in (1, 2)]
    else:
        targets = [(None, Path(result_dir))]
    for subset, folder in targets:
        store = RefineStore(folder)
        if not resume:
            moved = store.set_aside()
            if moved is not None:
                get_logger("refine").warning("set the earlier run in %s aside as %s", folder, moved)
        store.prepare()
        setup_logging(log_level, store.log_path)
        try:
            log = get_logger("refine")
            data = load_subtomos(star_path, subset, noise2noise=settings.noise2noise)
            if settings.pretrained_model:
                _check_pretrained(settings.pretrained_model, data, star_path)
            log.info("refine %s%s: %d subtomograms of %d³ (cube %d) into %s", star_path,
                     f" half {subset}" if subset else "", len(data.subtomos), data.crop, data.cube, folder)
            half_settings = (settings if subset is None
                             else RefineSettings(**{**settings.__dict__, "seed": settings.seed + 1000 * subset}))
            try:
                states.append(refine(data, half_settings, store, n_gpus=usable_gpus(), until_iter=until_iter,
                                     resume=resume))
            except TrainingStopped as exc:
                raise _stopped_where(exc, store) from None
        finally:
            detach_file_logs()
    return states
