"""What a saved model was trained on, kept inside its ``.keras`` file, and the check that a tomogram fits it.

A ``.keras`` file is a zip archive of ``metadata.json``, ``config.json`` and ``model.weights.h5``.
Keras's loader reads only the last two; ``metadata.json`` is where Keras keeps the archive's own facts
(its version, the date saved) and ``keras.saving.KerasFileEditor`` shows it. The record is one more key
there, ``"isonet_nf"``, so it travels wherever the file goes (a Nextflow stage, a copy) with nothing
beside it, adds no member to the archive, and ``unzip -p model.keras metadata.json`` prints it.
A model without a record (an older isonet-nf, IsoNet's own) is accepted with a warning.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .atomic import atomic_path
from .errors import InputError
from .log import get_logger

__all__ = ["RECORD_KEY", "RECORD_VERSION", "VOXEL_SIZE_TOLERANCE", "ModelRecord", "write_model_record",
           "read_model_record", "check_fits", "describe_model"]

#: The key of ``metadata.json`` that holds the record.
RECORD_KEY = "isonet_nf"
#: The record's layout; a reader ignores keys it does not know, so only a changed meaning needs a new one.
RECORD_VERSION = 1
#: Predict refuses a tomogram whose voxel size differs from the model's by more than this fraction of it:
#: the network learnt features of a size in voxels, and 5 % is about one voxel across a 20-voxel feature.
VOXEL_SIZE_TOLERANCE = 0.05
_METADATA = "metadata.json"
#: JSON types of the record's fields that are computed with (a bool is not taken for a number).
_CHECKED_TYPES: dict[str, tuple[type, ...]] = {
    "voxel_size": (int, float, type(None)), "cube_size": (int,), "crop_size": (int,), "network": (dict,),
    "wedges": (list,), "noise2noise": (bool,), "deconvolved": (bool, type(None)), "subtomograms": (int,),
    "iteration": (int,), "iterations": (int,),
}


@dataclass(frozen=True)
class ModelRecord:
    """The training a model came from: data, network shape, precision and software (issue #23)."""

    voxel_size: float | None  # Å per voxel of the training subtomograms; None: neither headers nor STAR said
    cube_size: int
    crop_size: int
    network: dict[str, Any]  # the U-Net's shape (depth, filters, ...; a pretrained one's name), its parameters
    precision: str
    wedges: list[str]  # the distinct missing wedges trained on, as Wedge.describe() writes them
    noise2noise: bool
    deconvolved: bool | None  # cut from deconvolved tomograms; None: unknown (older subtomo.star) or mixed
    subtomograms: int
    subtomo_digest: str | None  # blake2b over the subtomograms' file names and contents (io/fingerprint.py)
    iteration: int  # the refine iteration that saved it (0: before training)
    iterations: int  # the iterations planned
    software: str  # the isonet-nf version that trained it
    version: int = field(default=RECORD_VERSION)

    def to_json(self) -> dict[str, Any]:
        """The JSON object stored under :data:`RECORD_KEY`."""
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Any) -> ModelRecord:
        """The record from its JSON object; ValueError says what is missing. Unknown keys are ignored."""
        if not isinstance(raw, dict):
            raise ValueError(f"the record is {type(raw).__name__}, not an object")
        known = {f.name for f in fields(cls)}
        missing = sorted(known - set(raw) - {"version"})
        if missing:
            raise ValueError(f"the record has no {', '.join(missing)}")
        for key, kinds in _CHECKED_TYPES.items():  # the fields the checks and the report compute with
            value = raw[key]
            if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
                raise ValueError(f"{key} is {value!r}")
        return cls(**{k: v for k, v in raw.items() if k in known})

    def rows(self) -> list[tuple[str, str]]:
        """The record as (field, value) lines for people: the report's table and ``isonet model-info``."""
        def yes_no(value: bool | None, yes: str, no: str) -> str:
            return "unknown" if value is None else yes if value else no

        net = self.network
        if "pretrained_model" in net:
            shape = f"fine-tuned from {net['pretrained_model']}, U-Net depth {net.get('unet_depth')}"
        else:
            shape = (f"U-Net depth {net.get('unet_depth')}, {net.get('filter_base')} base filters, "
                     f"{net.get('convs_per_depth')} convolutions per depth, kernel {net.get('kernel')}, "
                     f"batch norm {'on' if net.get('batch_norm') else 'off'}, dropout {net.get('dropout')}")
        if "parameters" in net:
            shape += f"; {net['parameters']:,} parameters"
        return [
            ("voxel size", "unknown" if self.voxel_size is None else f"{self.voxel_size:g} Å"),
            ("cube / crop size", f"{self.cube_size} / {self.crop_size} voxels"),
            ("network", shape),
            ("precision", self.precision),
            ("missing wedge" + ("s" if len(self.wedges) > 1 else ""), "; ".join(self.wedges) or "unknown"),
            ("training", "noise2noise (even/odd halves)" if self.noise2noise else "noise added to the inputs"),
            ("input", yes_no(self.deconvolved, "deconvolved tomograms", "raw tomograms")),
            ("subtomograms", f"{self.subtomograms} (digest {self.subtomo_digest or 'unknown'})"),
            ("iteration", f"{self.iteration} of {self.iterations}"),
            ("isonet-nf", self.software),
        ]


def write_model_record(path: str | os.PathLike, record: ModelRecord) -> Path:
    """Put ``record`` into the ``metadata.json`` of the ``.keras`` file ``path`` (atomically).

    A zip member cannot be rewritten in place, so the archive is copied member by member (the
    weights streamed, with their own compression) into a temporary file that replaces it.
    """
    path = Path(path)
    with atomic_path(path, suffix=".keras") as tmp, zipfile.ZipFile(path) as src:
        with zipfile.ZipFile(tmp, "w") as dst:
            for info in src.infolist():
                if info.filename == _METADATA:
                    metadata = json.loads(src.read(info) or b"{}")
                    metadata[RECORD_KEY] = record.to_json()
                    dst.writestr(info, json.dumps(metadata, indent=1, ensure_ascii=False, allow_nan=False).encode())
                    continue
                with src.open(info) as a, dst.open(info, "w", force_zip64=info.file_size >= 1 << 31) as b:
                    shutil.copyfileobj(a, b, 1 << 20)
    return path


def read_model_record(path: str | os.PathLike) -> ModelRecord | None:
    """The record of the model file ``path``; None where it has none (an ``.h5`` file, an older model).

    A record that is there but cannot be read is refused (one line): a damaged file should not be
    trusted for the checks it exists for.
    """
    path = Path(path)
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            if _METADATA not in archive.namelist():
                return None
            metadata = json.loads(archive.read(_METADATA))
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise InputError(f"{path}: unreadable {_METADATA} ({' '.join(str(exc).split())}); re-copy the model or "
                         "re-run refine.") from None
    if not isinstance(metadata, dict) or RECORD_KEY not in metadata:
        return None
    try:
        return ModelRecord.from_json(metadata[RECORD_KEY])
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: malformed training record in {_METADATA} ({exc}); re-copy the model or re-run "
                         "refine.") from None


def check_fits(record: ModelRecord | None, voxel_size: float, deconvolved: bool | None, *, model: str | os.PathLike,
               where: str | os.PathLike) -> None:
    """Refuse the tomogram ``where`` when its voxel size is off the model's by more than
    :data:`VOXEL_SIZE_TOLERANCE` (the network would see features at the wrong size and return
    nonsense, silently); warn when one is deconvolved and the other is not. Nothing to check without
    a record or a voxel size.
    """
    if record is None:
        return
    trained = record.voxel_size
    if trained and voxel_size > 0 and abs(voxel_size - trained) > VOXEL_SIZE_TOLERANCE * trained:
        off = abs(voxel_size - trained) / trained
        raise InputError(f"{where}: voxel size {voxel_size:g} Å is {off:.1%} off the {trained:g} Å the model {model} "
                         f"was trained at (more than {VOXEL_SIZE_TOLERANCE:.0%}); rescale the tomograms with "
                         f"'isonet resize --pixel-size-out {trained:g}', or train a model at {voxel_size:g} Å.")
    if record.deconvolved is not None and deconvolved is not None and record.deconvolved != deconvolved:
        def kind(value: bool) -> str:
            return "deconvolved" if value else "raw"

        get_logger().warning("%s: %s tomogram, but the model %s was trained on %s ones; the correction may be off "
                             "(choose the same with --use-deconv-tomo / --no-use-deconv-tomo)", where,
                             kind(deconvolved), model, kind(record.deconvolved))


def describe_model(path: str | os.PathLike) -> tuple[ModelRecord | None, list[str]]:
    """The record of the model file ``path`` and its lines for people (``isonet model-info``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: model file not found; give the .keras file written by refine (e.g. "
                         "results/model_final.keras).")
    record = read_model_record(path)
    if record is None:
        return None, [f"{path}: no record of its training (saved by an older isonet-nf, or IsoNet's own model); "
                      "predict uses it without checking the voxel size"]
    rows = record.rows()
    width = max(len(label) for label, _ in rows)
    return record, [f"{path}:", *(f"  {label:<{width}}  {value}" for label, value in rows)]
