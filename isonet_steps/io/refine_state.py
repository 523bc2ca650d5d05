"""What refine records in its result folder's ``refine_state.json``, as one typed, versioned record.

Refine's resume, the Nextflow per-iteration refine (which continues from the previous task's
folder) and the report all read this file, so it is read in one place: :func:`load_refine_state`.
It refuses a file it cannot trust with one line naming the file and the fix, instead of each
reader guessing defaults for missing keys.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError

__all__ = ["STATE_FILE", "STATE_VERSION", "IterationRecord", "RefineState", "load_refine_state"]

STATE_FILE = "refine_state.json"
#: The newest layout this code reads and writes; a file with a higher one comes from a newer isonet-nf.
STATE_VERSION = 1

_FIX = "start over with --no-continue or a new --result-dir"


def _number(value: Any, what: str) -> float:
    """A JSON number (null: NaN, as a diverged loss is written), else the reason it is not."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} is {value!r}, not a number")
    return float(value)


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} is {value!r}, not an integer")
    return value


def _numbers(value: Any, what: str) -> list[float]:
    if not isinstance(value, list):
        raise ValueError(f"{what} is {type(value).__name__}, not a list")
    return [_number(v, f"{what}[{i}]") for i, v in enumerate(value)]


def _table(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is {type(value).__name__}, not an object")
    return dict(value)


def _key(raw: dict, key: str, where: str) -> Any:
    if key not in raw:
        raise ValueError(f"{where} has no {key!r}")
    return raw[key]


def _json_number(value: float) -> float | None:
    """NaN and infinities as null: JSON has no NaN, and a diverged loss must not stop the commit."""
    return value if math.isfinite(value) else None


@dataclass
class IterationRecord:
    """One finished iteration: its noise, losses per epoch, the batch it ended with and its time."""

    iteration: int
    noise_level: float
    loss: list[float]
    val_loss: list[float]
    batch_size: int
    steps_per_epoch: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        """The record as the JSON object the state file holds."""
        return {"iteration": self.iteration, "noise_level": _json_number(self.noise_level),
                "loss": [_json_number(v) for v in self.loss], "val_loss": [_json_number(v) for v in self.val_loss],
                "batch_size": self.batch_size, "steps_per_epoch": self.steps_per_epoch, "seconds": self.seconds}

    @classmethod
    def from_json(cls, raw: Any, where: str = "iteration record") -> IterationRecord:
        """The record from its JSON object; ValueError says what is wrong with it."""
        raw = _table(raw, where)
        return cls(iteration=_integer(_key(raw, "iteration", where), f"{where} iteration"),
                   noise_level=_number(_key(raw, "noise_level", where), f"{where} noise_level"),
                   loss=_numbers(_key(raw, "loss", where), f"{where} loss"),
                   val_loss=_numbers(_key(raw, "val_loss", where), f"{where} val_loss"),
                   batch_size=_integer(_key(raw, "batch_size", where), f"{where} batch_size"),
                   steps_per_epoch=_integer(_key(raw, "steps_per_epoch", where), f"{where} steps_per_epoch"),
                   seconds=_number(_key(raw, "seconds", where), f"{where} seconds"))


@dataclass
class RefineState:
    """Refine's progress and what it must match to continue (reference §6: one committed iteration at a time).

    ``settings`` and ``data`` are the fingerprints of the settings and the subtomograms
    (``RefineSettings.fingerprint()`` and ``RefineData.fingerprint()``): a continuation must match them.
    ``noise_schedule[i]`` is the noise level of iteration ``i`` (index 0 unused).
    """

    completed: int
    batch_size: int
    steps_per_epoch: int
    noise_schedule: list[float]
    target_iterations: int
    settings: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    iterations: list[IterationRecord] = field(default_factory=list)
    version: int = STATE_VERSION  # the layout the file was read in; always written as STATE_VERSION

    @property
    def precision(self) -> str | None:
        """The precision the run trained in (None where the settings do not say)."""
        value = self.settings.get("precision")
        return value if isinstance(value, str) else None

    @property
    def last(self) -> IterationRecord | None:
        """The latest finished iteration (None before the first)."""
        return self.iterations[-1] if self.iterations else None

    def record(self, record: IterationRecord) -> None:
        """Commit ``record`` as the latest iteration (a redone iteration replaces its old record and later ones)."""
        self.iterations = [r for r in self.iterations if r.iteration < record.iteration] + [record]
        self.completed = record.iteration

    def to_json(self) -> dict[str, Any]:
        """The JSON object of ``refine_state.json``, in this code's layout (``version`` = :data:`STATE_VERSION`)."""
        return {"version": STATE_VERSION, "completed": self.completed,
                "iterations": [r.to_json() for r in self.iterations], "batch_size": self.batch_size,
                "steps_per_epoch": self.steps_per_epoch,
                "noise_schedule": [_json_number(v) for v in self.noise_schedule],
                "target_iterations": self.target_iterations, "settings": self.settings, "data": self.data}

    @classmethod
    def from_json(cls, raw: Any) -> RefineState:
        """The state from its JSON object; ValueError says what is wrong (see :func:`load_refine_state`).

        Files from before ``target_iterations`` was recorded (and every iteration-0 file before
        this class) get it from the noise schedule, which has one entry per planned iteration.
        """
        raw = _table(raw, "the state")
        version = _integer(_key(raw, "version", "the state"), "version")
        if version > STATE_VERSION:
            raise _NewerVersion(version)
        if version < 1:
            raise ValueError(f"version is {version}")
        schedule = _numbers(_key(raw, "noise_schedule", "the state"), "noise_schedule")
        target = raw.get("target_iterations")
        records = _key(raw, "iterations", "the state")
        if not isinstance(records, list):
            raise ValueError("iterations is not a list")
        return cls(completed=_integer(_key(raw, "completed", "the state"), "completed"),
                   batch_size=_integer(_key(raw, "batch_size", "the state"), "batch_size"),
                   steps_per_epoch=_integer(_key(raw, "steps_per_epoch", "the state"), "steps_per_epoch"),
                   noise_schedule=schedule,
                   target_iterations=(max(len(schedule) - 1, 0) if target is None
                                      else _integer(target, "target_iterations")),
                   settings=_table(_key(raw, "settings", "the state"), "settings"),
                   data=_table(_key(raw, "data", "the state"), "data"),
                   iterations=[IterationRecord.from_json(r, f"iterations[{i}]") for i, r in enumerate(records)],
                   version=version)


class _NewerVersion(ValueError):
    def __init__(self, version: int):
        super().__init__(f"state version {version}")
        self.version = version


def load_refine_state(path: str | os.PathLike) -> RefineState:
    """The state in ``path``; one InputError line naming the file and the fix when it cannot be trusted."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable refine state ({' '.join(str(exc).split())}); {_FIX}.") from None
    try:
        return RefineState.from_json(raw)
    except _NewerVersion as exc:
        raise InputError(f"{path}: refine state version {exc.version} was written by a newer isonet-nf (this one "
                         f"reads up to version {STATE_VERSION}); update isonet-nf, or {_FIX}.") from None
    except ValueError as exc:
        raise InputError(f"{path}: malformed refine state ({exc}); {_FIX}.") from None
