"""Glue between files and :func:`isonet_steps.network.refine.refine`: read subtomo.star, run, log.

Shared by ``isonet refine`` and ``isonet run`` so both do exactly the same thing.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..io.checkpoint import RefineStore
from ..io.errors import InputError
from ..io.log import detach_file_logs, get_logger, progress, setup_logging
from ..io.mrc import read_volume
from ..io.refine_state import RefineState
from ..io.star import is_set, read_subtomo_star, resolve_path
from ..network.refine import RefineData, RefineSettings, refine
from ..network.watch import TrainingStopped
from .extract import HALF2_IMAGE_COLUMN
from .row_wedge import row_wedges


def _second_half(table, star_path: str | os.PathLike, shape: tuple[int, ...]) -> tuple[np.ndarray, list[str]]:
    """Noise2noise: the same boxes cut from the other half tomogram (rlnImageNameHalf2), in the table's order."""
    if HALF2_IMAGE_COLUMN not in table.columns or not all(is_set(v) for v in table[HALF2_IMAGE_COLUMN]):
        raise InputError(f"{star_path}: --noise2noise needs every row's {HALF2_IMAGE_COLUMN} (the box cut from the "
                         "other half tomogram); re-run extract with --noise2noise on tomograms with raw halves.")
    cubes = []
    for value in progress(table[HALF2_IMAGE_COLUMN], total=len(table), desc="reading half-2 subtomograms",
                          unit="subtomo"):
        path = resolve_path(value, star_path, HALF2_IMAGE_COLUMN, "subtomogram")
        data = read_volume(path, "subtomogram").data
        if data.shape != shape:
            raise InputError(f"{path}: half-2 subtomogram is {data.shape} but its half-1 box is {shape}; re-run "
                             "extract --noise2noise.")
        cubes.append(data)
    return np.stack(cubes), [Path(str(v)).name for v in table[HALF2_IMAGE_COLUMN]]


def load_subtomos(star_path: str | os.PathLike, half: int | None = None, noise2noise: bool = False) -> RefineData:
    """Read every subtomogram a subtomo.star names (optionally one rlnRandomSubset half; noise2noise: both halves)."""
    table = read_subtomo_star(star_path)
    if half is not None:
        if "rlnRandomSubset" not in table.columns:
            raise InputError(f"{star_path}: --halves needs the rlnRandomSubset column; re-run extract (it writes it).")
        table = table[table["rlnRandomSubset"] == half].reset_index(drop=True)
        if len(table) < 2:
            raise InputError(f"{star_path}: half {half} has {len(table)} subtomograms; "
                             "extract more (at least 2 per half).")
    cubes: list[np.ndarray] = []
    names: list[str] = []
    for value in progress(table["rlnImageName"], total=len(table), desc="reading subtomograms", unit="subtomo"):
        path = resolve_path(value, star_path, "rlnImageName", "subtomogram")
        vol = read_volume(path, "subtomogram")
        shape = vol.data.shape
        if len(set(shape)) != 1:
            raise InputError(f"{path}: subtomogram is {shape}, not cubic; extract cubic subtomograms.")
        if cubes and shape != cubes[0].shape:
            raise InputError(f"{path}: subtomogram is {shape} but the first one is {cubes[0].shape}; "
                             "all must share one size.")
        cubes.append(vol.data)
        names.append(Path(str(value)).name)
    crop = cubes[0].shape[0]
    cube = int(table["rlnCubeSize"].iloc[0]) if "rlnCubeSize" in table.columns else crop
    if cube > crop:
        raise InputError(f"{star_path}: rlnCubeSize {cube} exceeds the subtomogram size {crop}; fix the STAR or "
                         "re-extract.")
    tilts = table[["rlnTiltMin", "rlnTiltMax"]].to_numpy(dtype=float)
    second, second_names = _second_half(table, star_path, cubes[0].shape) if noise2noise else (None, None)
    return RefineData(subtomos=np.stack(cubes), tilts=tilts, names=names, cube=cube, second_half=second,
                      second_names=second_names, wedges=row_wedges(table, star_path))


def _stopped_where(exc: TrainingStopped, store: RefineStore) -> TrainingStopped:
    """The watch's line, with the iteration it stopped and what the run folder keeps for a rerun."""
    state = store.load_state()
    done = state.completed if state is not None else 0
    kept = f"iteration {done}'s model ({store.model_path(done).name})" if done else "the starting model"
    line = (f"{store.dir}: refine stopped in iteration {done + 1}: {exc}; the folder keeps {kept} and its state, "
            f"so a rerun continues from iteration {done + 1} once the cause is fixed.")
    get_logger("refine").error("%s", line)
    return TrainingStopped(line)


def run_refine(star_path, result_dir, settings: RefineSettings, *, until_iter=None, resume=True, halves=False,
               log_level="info") -> list[RefineState]:
    """Refine one network (or one per half) into ``result_dir``; returns the state records."""
    from ..network.devices import usable_gpus

    states: list[RefineState] = []
    targets = [(None, Path(result_dir))] if not halves else [(h, Path(result_dir) / f"half{h}") for h in (1, 2)]
    for half, folder in targets:
        store = RefineStore(folder)
        if not resume:
            moved = store.set_aside()
            if moved is not None:
                get_logger("refine").warning("set the earlier run in %s aside as %s", folder, moved)
        store.prepare()
        setup_logging(log_level, store.log_path)
        try:
            log = get_logger("refine")
            data = load_subtomos(star_path, half, noise2noise=settings.noise2noise)
            log.info("refine %s%s: %d subtomograms of %d³ (cube %d) into %s", star_path,
                     f" half {half}" if half else "", len(data.subtomos), data.crop, data.cube, folder)
            half_settings = (settings if half is None
                             else RefineSettings(**{**settings.__dict__, "seed": settings.seed + 1000 * half}))
            try:
                states.append(refine(data, half_settings, store, n_gpus=usable_gpus(), until_iter=until_iter,
                                     resume=resume))
            except TrainingStopped as exc:
                raise _stopped_where(exc, store) from None
        finally:
            detach_file_logs()
    return states
