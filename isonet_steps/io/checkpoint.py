"""Refine's result folder: models, the state record and the arrays the next iteration needs.

Together with mrc.py and star.py this is the only module that writes files. An iteration is
committed by writing ``refine_state.json`` last (atomically): a kill at any moment leaves either
the previous committed iteration or the new one, never a mix.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path, write_json
from .errors import InputError
from .refine_state import STATE_FILE, STATE_VERSION, RefineState, load_refine_state

__all__ = ["STATE_FILE", "STATE_VERSION", "RefineStore", "atomic_write_json"]


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write JSON (numpy scalars and arrays allowed) atomically."""
    return write_json(path, obj, default=_jsonable)


def _jsonable(value: Any):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")


class RefineStore:
    """Paths and atomic reads/writes inside one refine result folder."""

    def __init__(self, result_dir: str | os.PathLike):
        self.dir = Path(result_dir)

    # --- paths -------------------------------------------------------------------------------
    def model_path(self, iteration: int) -> Path:
        """One model per iteration, kept so a run can continue from (and be compared at) any of them."""
        return self.dir / f"model_iter{iteration:02d}.keras"

    @property
    def final_model_path(self) -> Path:
        """Fixed name, so predict and the pipeline find the result without knowing the iteration count."""
        return self.dir / "model_final.keras"

    def fill_path(self, iteration: int) -> Path:
        """The missing-wedge fill an iteration trained on, kept with a relaxed fill: the next builds on it."""
        return self.dir / "checkpoint" / f"fill_iter{iteration:02d}.npy"

    @property
    def state_path(self) -> Path:
        """Where the last finished iteration is recorded, so a rerun continues after it."""
        return self.dir / STATE_FILE

    @property
    def log_path(self) -> Path:
        """Refine's own log beside its models, so the folder explains itself."""
        return self.dir / "refine.log"

    # --- state -------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Fail before training (not after the first iteration) where the folder cannot be written."""
        from .atomic import folder_problem

        problem = folder_problem(self.dir / "checkpoint", create=True) or folder_problem(self.dir, create=False)
        if problem:
            raise InputError(f"{self.dir}: result folder: {problem}; choose a writable --result-dir.")

    def load_state(self) -> RefineState | None:
        """The earlier run's progress (None: none yet); refuses state it cannot continue from."""
        if not self.state_path.exists():
            return None
        return load_refine_state(self.state_path)

    def save_state(self, state: RefineState) -> None:
        """Atomic and versioned, so a killed run or another release never continues from bad state."""
        atomic_write_json(self.state_path, state.to_json())

    def set_aside(self) -> Path | None:
        """Move an earlier run's result folder to ``<dir>~`` (replacing an older one) to start afresh."""
        if not self.dir.exists() or not any(self.dir.iterdir()):
            return None
        backup = self.dir.with_name(self.dir.name + "~")
        if backup.exists():
            shutil.rmtree(backup)
        self.dir.rename(backup)
        return backup

    # --- arrays ------------------------------------------------------------------------------
    def save_fill(self, iteration: int, fill: np.ndarray) -> Path:
        """Float32 and atomic: a continued run must train on exactly what this one would have."""
        path = self.fill_path(iteration)
        with atomic_path(path, suffix=".npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, np.ascontiguousarray(fill, dtype=np.float32))
                fh.flush()
                os.fsync(fh.fileno())
        return path

    def load_fill(self, iteration: int) -> np.ndarray:
        """What the continued iteration's relaxed fill builds on; a missing file means it cannot continue."""
        path = self.fill_path(iteration)
        if not path.exists():
            raise InputError(f"{path}: missing checkpoint of iteration {iteration}; start over with --no-continue or a "
                             "new --result-dir.")
        return np.load(path)

    def drop_fills_before(self, iteration: int) -> None:
        """Only the latest fill is needed to continue; older ones would fill the disk (as would the
        ``predictions_iter*.npy`` that 0.1.0 wrote, which nothing reads now).
        """
        for stale in (self.dir / "checkpoint").glob("predictions_iter*.npy"):
            stale.unlink(missing_ok=True)
        for old in (self.dir / "checkpoint").glob("fill_iter*.npy"):
            try:
                if int(old.stem.removeprefix("fill_iter")) < iteration:
                    old.unlink(missing_ok=True)
            except ValueError:
                continue

    def copy_final(self, iteration: int) -> Path:
        """``model_final.keras`` = the model of ``iteration`` (copied atomically)."""
        with atomic_path(self.final_model_path, suffix=".keras") as tmp:
            shutil.copyfile(self.model_path(iteration), tmp)
        return self.final_model_path
