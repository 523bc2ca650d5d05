"""The pipeline's parameters: one table shared by ``isonet run``, params files and Nextflow.

Names are the Nextflow ``params`` names (snake_case; ``gpus`` exists only here); ``isonet run`` offers each as a dashed
option with the underscore twin, and reads the same names from a YAML/JSON params file. ``steps``
says which steps a parameter changes, so a rerun redoes exactly the steps a change affects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..io.errors import InputError


@dataclass(frozen=True)
class Param:
    """One parameter, described once so run's options, params files and Nextflow cannot disagree."""

    name: str
    kind: str  # float, int, str, bool, floats, ints
    default: Any
    help: str
    steps: tuple[str, ...]
    choices: tuple[str, ...] | None = None  # the allowed values of a "str" parameter (schema enum, click.Choice)


PARAMS: tuple[Param, ...] = (
    # prepare-star
    Param("pixel_size", "float", 10.0, "Voxel size in Å (when the input is a folder).", ("prepare",)),
    Param("defocus", "float", 0.0, "Zero-tilt underfocus in Å; 0 skips CTF deconvolution.", ("prepare",)),
    Param("number_subtomos", "int", 100, "Subtomograms extracted per tomogram.", ("prepare",)),
    Param("tilt_min", "float", -60.0, "Lowest tilt angle, degrees.", ("prepare",)),
    Param("tilt_max", "float", 60.0, "Highest tilt angle, degrees.", ("prepare",)),
    Param("wedge_check", "str", "refuse",
          "Check each tomogram's wedge against its data: refuse a mirrored one, flip it, warn, or off.",
          ("prepare",), choices=("refuse", "flip", "warn", "off")),
    Param("tomo_idx", "str", None, "Tomograms corrected (rlnIndex), e.g. 1,2,4 or 5-10,15 [all].", ("prepare",)),
    Param("train_idx", "str", None, "Tomograms whose subtomograms train, e.g. 1,2 [tomo_idx's].", ("prepare",)),
    Param("fix_nonfinite", "bool", False,
          "Replace NaN/Inf voxels by the mean of the others (logged) instead of refusing the tomogram.",
          ("prepare",)),  # recorded in the STAR (rlnFixNonfinite): the later steps follow it
    # deconv
    Param("voltage", "float", 300.0, "Acceleration voltage, kV.", ("deconv",)),
    Param("cs", "float", 2.7, "Spherical aberration, mm.", ("deconv",)),
    Param("snrfalloff", "float", None, "Deconvolution SNR fall-off [STAR value, else 1.0].", ("deconv",)),
    Param("deconvstrength", "float", None, "Deconvolution strength [STAR value, else 1.0].", ("deconv",)),
    Param("highpassnyquist", "float", 0.02, "High-pass cut-off, fraction of Nyquist.", ("deconv",)),
    Param("chunk_size", "int", None, "Deconvolve in chunks of this edge (bounded memory).", ("deconv",)),
    Param("overlap_rate", "float", 0.25, "Chunk overlap fraction.", ("deconv",)),
    # make-mask
    Param("density_percentage", "float", None, "Mask: % of voxels kept by density [STAR value, else 50].",
          ("make_mask",)),
    Param("std_percentage", "float", None, "Mask: % of voxels kept by local std [STAR value, else 50].",
          ("make_mask",)),
    Param("z_crop", "float", None, "Mask: fraction of Z cut at top and bottom.", ("make_mask",)),
    Param("patch_size", "int", 4, "Mask: smoothing/window scale, voxels.", ("make_mask",)),
    Param("use_deconv_tomo", "bool", True, "Use the deconvolved tomogram when there is one.",
          ("make_mask", "extract", "predict")),
    # extract
    Param("cube_size", "int", 64, "Training cube edge (multiple of 8).", ("extract",)),
    Param("crop_size", "int", None, "Extracted subtomogram edge [cube + 16].", ("extract",)),
    Param("seed", "int", 0, "Random seed (extract and refine).", ("extract", "refine")),
    # refine
    Param("iterations", "int", 30, "Refinement iterations.", ("refine",)),
    Param("epochs", "int", 10, "Epochs per iteration.", ("refine",)),
    Param("early_stop_patience", "int", 0,
          "Stop an iteration's epochs after this many without a 1 % gain in validation loss; 0: train all epochs.",
          ("refine",)),
    Param("steps_per_epoch", "int", None, "Training steps per epoch [min(6·N/batch, 200)].", ("refine",)),
    Param("batch_size", "int", None, "Training batch [max(4, 2 per GPU)].", ("refine",)),
    Param("filter_base", "int", 64, "Filters of the first U-Net level.", ("refine",)),
    Param("unet_depth", "int", 3, "U-Net levels.", ("refine",)),
    Param("convs_per_depth", "int", 3, "Convolutions per level.", ("refine",)),
    Param("kernel", "int", 3, "Convolution kernel edge.", ("refine",)),
    Param("dropout", "float", 0.3, "Dropout rate.", ("refine",)),
    Param("batch_norm", "bool", True, "Batch normalisation.", ("refine",)),
    Param("learning_rate", "float", 4e-4, "Adam learning rate.", ("refine",)),
    Param("fill_relaxation", "float", 1.0,
          "Weight of an iteration's new predictions in the missing-wedge fill the next trains on; "
          "1: IsoNet (new alone).", ("refine",)),
    Param("noise_level", "floats", (0.05, 0.1, 0.15, 0.2), "Noise levels, comma-separated.", ("refine",)),
    Param("noise_start_iter", "ints", (11, 16, 21, 26), "Iteration where each noise level starts.", ("refine",)),
    Param("noise_mode", "str", "noFilter", "Noise filter: noFilter, ramp or hamming.", ("refine",)),
    Param("precision", "str", "auto", "Network arithmetic: auto, float32 or mixed (bfloat16 compute).",
          ("refine", "predict")),
    Param("select_subtomo_number", "int", None, "Subtomograms drawn per iteration [all].", ("refine",)),
    Param("pretrained_model", "str", None, "Start refine from this .keras model.", ("refine",)),
    Param("model", "str", None, "Correct every tomogram with this trained .keras model: no training.", ("predict",)),
    Param("halves", "bool", False, "Train two networks on spatially separate halves and report the gold-standard FSC.",
          ("extract", "refine")),
    Param("noise2noise", "bool", False,
          "Train on the raw even/odd half tomograms: each box of one half predicts the same box of the other.",
          ("extract", "refine", "predict")),
    # predict
    Param("predict_cube_size", "int", 96, "Predict tile stride (multiple of 2**unet_depth).", ("predict",)),
    Param("predict_crop_size", "int", 128, "Predict tile edge (at least predict_cube_size + 8).", ("predict",)),
    Param("predict_batch_size", "int", None, "Tiles per network call [4 per GPU].", ("predict",)),
    # fsc
    Param("cone_angle", "float", 20.0, "Half-angle of the directional FSC cones, degrees.", ("gold_standard",)),
    # resources (only for one-machine runs: Nextflow gives GPUs per task with the gpu profile)
    Param("gpus", "str", None, "GPU ids (0,1), 'cpu', or every visible GPU [default].", ()),
)

BY_NAME = {p.name: p for p in PARAMS}


def coerce(param: Param, value: Any, source: str) -> Any:
    """Turn a value from a params file or the command line into the parameter's type."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "null", "None")):
        return None
    try:
        if param.kind == "float":
            return float(value)
        if param.kind == "int":
            if float(value) != int(float(value)):
                raise ValueError
            return int(float(value))
        if param.kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "yes", "1", "on"):
                return True
            if text in ("false", "no", "0", "off"):
                return False
            raise ValueError
        if param.kind in ("floats", "ints"):
            cast = float if param.kind == "floats" else int
            items = value if isinstance(value, (list, tuple)) else str(value).replace(" ", "").split(",")
            return tuple(cast(v) for v in items if str(v) != "")
        if param.choices is not None and str(value) not in param.choices:
            raise InputError(f"{source}: {param.name} = {value!r} is not one of {', '.join(param.choices)}.")
        return str(value)
    except (TypeError, ValueError):
        raise InputError(f"{source}: {param.name} = {value!r} is not a valid {param.kind}; "
                         f"e.g. {param.default!r}.") from None


def read_params_file(path: str | Path) -> dict[str, Any]:
    """Parameters from a YAML or JSON file with the Nextflow params names; unknown names are errors."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: params file not found; check the path.")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - parse errors of two libraries
        raise InputError(f"{path}: cannot parse params file ({' '.join(str(exc).split())[:200]}); "
                         "check its syntax.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{path}: params file must be a mapping of name: value; found a {type(data).__name__}.")
    out = {}
    passthrough = {"input", "outdir"}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name in passthrough:
            out[name] = value
            continue
        if name not in BY_NAME:
            raise InputError(f"{path}: unknown parameter {key!r}; known: {', '.join(sorted(BY_NAME))}.")
        out[name] = coerce(BY_NAME[name], value, str(path))
    return out
