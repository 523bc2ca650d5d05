"""The pipeline's parameters, each written once: every other place is made from this table.

A ``Param`` is one parameter: its name (the Nextflow ``params`` name, snake_case), kind, default,
choices and help; the steps of ``isonet run`` it changes (a rerun redoes exactly those); its group
and further keys in ``nextflow_schema.json``; and the commands that take it (``Use``: the command,
its option name there, and the command's own default or help where they differ from the
pipeline's). Made from it: the commands' options (``cli._common.param_options``), ``isonet run``'s
options and params files, ``RefineSettings``' defaults (``default``), and, by
``python -m isonet_steps.io.params_faces --write``, ``nextflow_schema.json``, the ``params`` block of
``nextflow.config`` and the parameters' ``ext.args`` lines in ``conf/modules.config``. It lives in
``io/``, the lowest layer, so that ``network/`` can read it too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError


class _PipelineDefault:
    """A ``Use``'s default when the command defaults to the pipeline's value (None is a default of its own)."""

    def __repr__(self) -> str:
        return "PIPELINE_DEFAULT"


PIPELINE_DEFAULT: Any = _PipelineDefault()


@dataclass(frozen=True)
class Use:
    """One command that takes a parameter, and how."""

    command: str  # the command's module in cli/ (prepare_star, refine, ...)
    option: str = ""  # its option name there, when not the parameter's (predict's cube_size: predict_cube_size)
    default: Any = PIPELINE_DEFAULT  # the command's own default, where it differs from the pipeline's
    help: str = ""  # the command's own help, where it says more than the parameter's
    nextflow: bool = True  # conf/modules.config passes it (False: the module or a hand-written ext.args line does)
    minimum: int | None = None  # the least whole number the command's option accepts

    def option_name(self, param: Param) -> str:
        """The command's option name (Python spelling) for ``param``."""
        return self.option or param.name

    def default_for(self, param: Param) -> Any:
        """The command's default for ``param``."""
        return param.default if self.default is PIPELINE_DEFAULT else self.default


@dataclass(frozen=True)
class Param:
    """One parameter, described once so the commands, ``isonet run``, params files and Nextflow cannot disagree."""

    name: str
    kind: str  # float, int, str, bool, floats, ints
    default: Any
    help: str
    steps: tuple[str, ...]  # the steps of isonet run it changes
    choices: tuple[str, ...] | None = None  # the allowed values of a "str" parameter (schema enum, click.Choice)
    group: str = ""  # its group in nextflow_schema.json (<group>_options) and section of nextflow.config
    schema: dict[str, Any] | None = None  # more schema keys: description (where not help), help_text, ranges, ...
    uses: tuple[Use, ...] = ()
    nextflow: bool = True  # False: isonet run only (gpus: Nextflow gives GPUs per task with the gpu profile)
    metavar: str | None = None
    aliases: tuple[str, ...] = ()  # more option names (IsoNet's drop_out)
    file: bool = False  # the value names a file (a click.Path that refuses a folder)


_TILES_HELP = ("With --predict-cube-size, --predict-crop-size and --unet-depth together: refuse now the predict tile "
               "sizes that predict would refuse after refine.")
_ROWS_HELP = "Only these rlnIndex values, e.g. 1,2,4 or 5-10,15 (default: all rows)."
_PRECISION_HELP = ("Network arithmetic: mixed = bfloat16 compute with float32 weights and output; auto = mixed where "
                   "the hardware has bfloat16 units (GPUs of compute capability >= 8.0, CPUs with AMX or "
                   "AVX512-BF16), else float32.")

PARAMS: tuple[Param, ...] = (
    Param(
        "pixel_size", "float", 10.0, "Voxel size in Å (when the input is a folder).",
        steps=("prepare",),
        group="prepare_star",
        schema={
            "description": "Voxel size in Å.",
            "help_text": "Written to every row; IsoNet recommends binning to about 10 Å.",
            "exclusiveMinimum": 0,
        },
        uses=(
            Use("prepare_star", help="Voxel size in Å written to every row (folders)."),
            Use("fsc", default=None, nextflow=False, help="Voxel size in Å  [default: from the MRC header]"),
            Use("make_phantom", help="Voxel size in Å written to the MRC headers."),
            Use("prepare_subtomo_star", help="Voxel size in Å written to every row."),
        ),
    ),
    Param(
        "defocus", "float", 0.0, "Zero-tilt underfocus in Å; 0 skips CTF deconvolution.",
        steps=("prepare",),
        group="prepare_star",
        schema={
            "description": "Zero-tilt underfocus in Å (0: no CTF deconvolution).",
            "help_text": "With 0 (phase plate, or already corrected data) the deconv step is skipped.",
            "minimum": 0,
        },
        uses=(Use("prepare_star", help="Zero-tilt underfocus in Å (0: no CTF deconvolution; folders)."),),
    ),
    Param(
        "number_subtomos", "int", 100, "Subtomograms to extract per tomogram.",
        steps=("prepare",),
        group="prepare_star",
        schema={"help_text": "Written to rlnNumberSubtomo.", "minimum": 1},
        uses=(Use("prepare_star"),),
    ),
    Param(
        "tilt_min", "float", -60.0, "Lowest tilt angle of the tilt series, degrees.",
        steps=("prepare",),
        group="prepare_star",
        schema={"help_text": "Defines the missing wedge together with --tilt_max.", "minimum": -90, "maximum": 90},
        uses=(
            Use("prepare_star", nextflow=False, help="Lowest tilt angle of the tilt series, degrees (a <stem>.tlt "
                                                     "beside a tomogram wins)."),
            Use("fsc", default=None, nextflow=False, help="Lowest tilt angle of the series, degrees (with "
                                                          "--tilt-max): adds the measured/missing-wedge curves."),
            Use("make_phantom", help="Lowest tilt angle, degrees."),
            Use("prepare_subtomo_star"),
        ),
    ),
    Param(
        "tilt_max", "float", 60.0, "Highest tilt angle of the tilt series, degrees.",
        steps=("prepare",),
        group="prepare_star",
        schema={"help_text": "Defines the missing wedge together with --tilt_min.", "minimum": -90, "maximum": 90},
        uses=(
            Use("prepare_star", nextflow=False, help="Highest tilt angle of the tilt series, degrees (a <stem>.tlt "
                                                     "beside a tomogram wins)."),
            Use("fsc", default=None, nextflow=False, help="Highest tilt angle of the series, degrees (with "
                                                          "--tilt-min)."),
            Use("make_phantom", help="Highest tilt angle, degrees."),
            Use("prepare_subtomo_star"),
        ),
    ),
    Param(
        "wedge_check", "str", "refuse", "Check each tomogram's wedge against its data: refuse a mirrored one, flip "
                                        "it, warn, or off.",
        steps=("prepare",),
        choices=("refuse", "flip", "warn", "off"),
        group="prepare_star",
        schema={
            "description": "Check each tomogram's missing wedge against its data: refuse a mirrored one, flip it, "
                           "warn, or off.",
            "help_text": "A back-projected tomogram carries power only along the measured directions, so its "
                         "spectrum shows whether the given tilt range (or .tlt angles) has the right sign "
                         "(docs/wedge-convention.md). refuse stops with the fix when the data show the mirrored "
                         "wedge; flip writes the mirrored angles or range into the STAR; warn only logs; off skips "
                         "the check (a few seconds per tomogram).",
        },
        uses=(
            Use("prepare_star", help="Check each tomogram's missing wedge against its data: refuse a mirrored one "
                                     "(with the fix), flip it (write the mirrored angles/range), warn only, or off "
                                     "(saves a few seconds per tomogram)."),
        ),
    ),
    Param(
        "tomo_idx", "str", None, "Tomograms corrected (rlnIndex), e.g. 1,2,4 or 5-10,15 [all].",
        metavar="LIST",
        steps=("prepare",),
        group="prepare_star",
        schema={
            "description": "Tomograms corrected (rlnIndex), e.g. 1,2,4 or 5-10,15.",
            "help_text": "Every step runs once per chosen tomogram; default all rows. The tomograms that train are "
                         "--train_idx's.",
            "pattern": "^[0-9,\\- ]+$",
        },
        uses=(
            Use("prepare_star", help=_ROWS_HELP),
            Use("deconv", nextflow=False, help=_ROWS_HELP),
            Use("make_mask", nextflow=False, help=_ROWS_HELP),
            Use("extract", nextflow=False, help=_ROWS_HELP),
            Use("predict", nextflow=False, help=_ROWS_HELP),
            Use("gold_standard", help=_ROWS_HELP),
        ),
    ),
    Param(
        "train_idx", "str", None, "Tomograms whose subtomograms train, e.g. 1,2 [tomo_idx's].",
        metavar="LIST",
        steps=("prepare",),
        group="prepare_star",
        schema={
            "description": "Tomograms whose subtomograms train the network (rlnIndex), e.g. 1,2.",
            "help_text": "Train on a few tomograms and correct all (--tomo_idx) with that network; default "
                         "--tomo_idx's.",
            "pattern": "^[0-9,\\- ]+$",
        },
        uses=(
            Use("prepare_star", help="rlnIndex values whose subtomograms train the network, e.g. 1,2 (the plan's "
                                     "trains column).  [default: --tomo-idx's]"),
        ),
    ),
    Param(
        "fix_nonfinite", "bool", False, "Replace NaN/Inf voxels by the mean of the others (logged) instead of "
                                        "refusing the tomogram.",
        steps=("prepare",),
        group="prepare_star",
        schema={
            "help_text": "prepare_star records the choice per row (rlnFixNonfinite), so every later step repairs "
                         "the same voxels with the same value (docs/input-checks.md). Off: a tomogram with NaN/Inf "
                         "voxels stops the run with their count.",
        },
        uses=(
            Use("prepare_star", help="Replace NaN/Inf voxels by the mean of the others (logged; every later step "
                                     "does the same) instead of refusing the tomogram."),
        ),
    ),
    Param(
        "voltage", "float", 300.0, "Acceleration voltage in kV.",
        steps=("deconv",),
        group="deconv",
        schema={"help_text": "Of the microscope.", "exclusiveMinimum": 0},
        uses=(Use("deconv"),),
    ),
    Param(
        "cs", "float", 2.7, "Spherical aberration in mm.",
        steps=("deconv",),
        group="deconv",
        schema={"help_text": "Of the microscope.", "minimum": 0},
        uses=(Use("deconv"),),
    ),
    Param(
        "snrfalloff", "float", None, "Deconvolution SNR fall-off [STAR value, else 1.0].",
        steps=("deconv",),
        group="deconv",
        schema={
            "description": "SNR fall-off of the filter.",
            "help_text": "Default: the STAR file's rlnSnrFalloff, else 1.0.",
            "minimum": 0,
        },
        uses=(
            Use("deconv", help="How fast the modelled SNR falls with frequency.  [default: the STAR's "
                               "rlnSnrFalloff, else 1.0]"),
        ),
    ),
    Param(
        "deconvstrength", "float", None, "Deconvolution strength [STAR value, else 1.0].",
        steps=("deconv",),
        group="deconv",
        schema={
            "description": "Strength of the deconvolution.",
            "help_text": "Default: the STAR file's rlnDeconvStrength, else 1.0.",
            "minimum": 0,
        },
        uses=(
            Use("deconv", help="Strength (log10 of the modelled SNR).  [default: the STAR's rlnDeconvStrength, "
                               "else 1.0]"),
        ),
    ),
    Param(
        "highpassnyquist", "float", 0.02, "High-pass cut-off, fraction of Nyquist.",
        steps=("deconv",),
        group="deconv",
        schema={
            "description": "High-pass cut-off as a fraction of Nyquist.",
            "help_text": "Removes the lowest frequencies.",
            "minimum": 0,
            "maximum": 1,
        },
        uses=(Use("deconv", help="High-pass width as a fraction of Nyquist."),),
    ),
    Param(
        "chunk_size", "int", None, "Deconvolve in chunks of this edge (bounded memory).",
        steps=("deconv",),
        group="deconv",
        schema={
            "description": "Deconvolve in cubic chunks of this edge (voxels).",
            "help_text": "Bounds memory on large tomograms; default the whole tomogram at once.",
            "minimum": 1,
        },
        uses=(
            Use("deconv", help="Deconvolve in cubic chunks of this many voxels per edge to bound memory (e.g. "
                               "256).  [default: whole tomogram at once]"),
        ),
    ),
    Param(
        "overlap_rate", "float", 0.25, "Chunk overlap fraction.",
        steps=("deconv",),
        group="deconv",
        schema={
            "description": "Overlap of neighbouring chunks, as a fraction.",
            "help_text": "Used with --chunk_size.",
            "minimum": 0,
            "exclusiveMaximum": 1,
        },
        uses=(Use("deconv", help="Chunk overlap as a fraction of --chunk-size."),),
    ),
    Param(
        "density_percentage", "float", None, "Mask: % of voxels kept by density [STAR value, else 50].",
        steps=("make_mask",),
        group="make_mask",
        schema={
            "description": "Percentage of voxels kept by the density criterion.",
            "help_text": "Default: the STAR file's value, else 50.",
            "minimum": 0,
            "maximum": 100,
        },
        uses=(
            Use("make_mask", help="Percent of voxels kept by the density criterion (100: off).  [default: the "
                                  "STAR's rlnMaskDensityPercentage, else 50]"),
        ),
    ),
    Param(
        "std_percentage", "float", None, "Mask: % of voxels kept by local std [STAR value, else 50].",
        steps=("make_mask",),
        group="make_mask",
        schema={
            "description": "Percentage of voxels kept by the local standard deviation criterion.",
            "help_text": "Default: the STAR file's value, else 50.",
            "minimum": 0,
            "maximum": 100,
        },
        uses=(
            Use("make_mask", help="Percent of voxels kept by the local-std criterion (100: off).  [default: the "
                                  "STAR's rlnMaskStdPercentage, else 50]"),
        ),
    ),
    Param(
        "z_crop", "float", None, "Mask: fraction of Z cut at top and bottom.",
        steps=("make_mask",),
        group="make_mask",
        schema={
            "description": "Fraction of Z removed from the mask at top and bottom.",
            "help_text": "E.g. 0.1 leaves out the top and bottom tenth.",
            "minimum": 0,
            "exclusiveMaximum": 0.5,
        },
        uses=(
            Use("make_mask", help="Fraction of Z removed at the top and at the bottom, in [0, 0.5), e.g. 0.15.  "
                                  "[default: none]"),
        ),
    ),
    Param(
        "patch_size", "int", 4, "Mask: smoothing/window scale, voxels.",
        steps=("make_mask",),
        group="make_mask",
        schema={
            "description": "Filter size of the mask criteria, voxels.",
            "help_text": "IsoNet's patch_size: Gaussian sigma = size/2 on the 2x binned tomogram.",
            "minimum": 1,
        },
        uses=(
            Use("make_mask", help="Neighbourhood size in binned voxels: Gaussian σ = patch/2, windows of 2·patch+1."),
        ),
    ),
    Param(
        "use_deconv_tomo", "bool", True, "Use the deconvolved tomogram when there is one.",
        steps=("make_mask", "extract", "predict"),
        group="make_mask",
        schema={
            "description": "Use the deconvolved tomograms for masks, subtomograms and predict.",
            "help_text": "Only when the deconv step ran.",
        },
        uses=(
            Use("make_mask", nextflow=False, help="Use rlnDeconvTomoName where that file exists, else "
                                                  "rlnMicrographName."),
            Use("extract", nextflow=False, help="Cut from rlnDeconvTomoName where that file exists, else from "
                                                "rlnMicrographName."),
            Use("predict", nextflow=False, help="Correct rlnDeconvTomoName where it is set and exists, else "
                                                "rlnMicrographName."),
            Use("gold_standard", help="Correct the deconvolved tomogram when there is one."),
        ),
    ),
    Param(
        "cube_size", "int", 64, "Training cube edge (multiple of 8).",
        steps=("extract",),
        group="extract",
        schema={
            "description": "Training cube edge in voxels (a multiple of 8); also predict's tile stride.",
            "help_text": "IsoNet's cube_size.",
            "minimum": 8,
            "multipleOf": 8,
        },
        uses=(
            Use("extract", help="Training cube edge in voxels; a multiple of 8."),
            Use("prepare_subtomo_star", default=None, help="Training cube edge in voxels (multiple of 8, at most "
                                                           "the subtomogram size).  [default: IsoNet's rule, "
                                                           "floor(int(crop/1.5 + 1)/16)*16, e.g. 96 -> 64]"),
        ),
    ),
    Param(
        "crop_size", "int", None, "Extracted subtomogram edge [cube + 16].",
        steps=("extract",),
        group="extract",
        schema={
            "description": "Edge of each extracted subtomogram in voxels.",
            "help_text": "Default: cube size + 16.",
            "minimum": 8,
        },
        uses=(Use("extract", help="Edge of each extracted subtomogram in voxels.  [default: cube size + 16]"),),
    ),
    Param(
        "seed", "int", 0, "Random seed (extract and refine).",
        steps=("extract", "refine"),
        group="extract",
        schema={
            "description": "Random seed of the phantom, extract and refine.",
            "help_text": "The same seed gives the same result.",
            "minimum": 0,
        },
        uses=(
            Use("extract", help="Random seed for the positions and the two gold-standard halves."),
            Use("refine", help="Random seed: same seed, same result."),
            Use("make_phantom", help="Random seed: the same seed gives the same phantom."),
            Use("demo", help="Phantom and training seed."),
        ),
    ),
    Param(
        "iterations", "int", 30, "Refinement iterations.",
        steps=("refine",),
        group="refine",
        schema={"description": "Refine iterations.", "help_text": "Each is one task.", "minimum": 1},
        uses=(Use("refine", nextflow=False),),
    ),
    Param(
        "epochs", "int", 10, "Epochs per iteration.",
        steps=("refine",),
        group="refine",
        schema={"description": "Training epochs per iteration.", "help_text": "IsoNet's epochs.", "minimum": 1},
        uses=(Use("refine"),),
    ),
    Param(
        "early_stop_patience", "int", 0, "Stop an iteration's epochs after this many without a 1 % gain in "
                                         "validation loss; 0: train all epochs.",
        steps=("refine",),
        group="refine",
        schema={
            "help_text": "Compared within one iteration (the loss steps up with the noise level between "
                         "iterations); at least one epoch is trained. 0 keeps IsoNet's fixed epochs.",
            "minimum": 0,
        },
        uses=(Use("refine"),),
    ),
    Param(
        "steps_per_epoch", "int", None, "Training steps per epoch [min(6·N/batch, 200)].",
        steps=("refine",),
        group="refine",
        schema={
            "description": "Training steps per epoch.",
            "help_text": "Default: min(6 x subtomograms / batch size, 200).",
            "minimum": 1,
        },
        uses=(Use("refine", help="Training steps per epoch [default: min(6·N/batch, 200)]."),),
    ),
    Param(
        "batch_size", "int", None, "Training batch [max(4, 2 per GPU)].",
        steps=("refine",),
        group="refine",
        schema={"description": "Training pairs per step.", "help_text": "Default: max(4, 2 per GPU).", "minimum": 1},
        uses=(Use("refine", help="Pairs per training step [default: max(4, 2 per GPU)]."),),
    ),
    Param(
        "filter_base", "int", 64, "Filters of the first U-Net level.",
        steps=("refine",),
        group="refine",
        schema={"help_text": "Halve it on small GPUs.", "minimum": 1},
        uses=(Use("refine"),),
    ),
    Param(
        "unet_depth", "int", 3, "U-Net levels.",
        steps=("refine",),
        group="refine",
        schema={"help_text": "The cube size must be divisible by 2^depth.", "minimum": 1, "maximum": 6},
        uses=(Use("refine"), Use("prepare_star", default=None, help=_TILES_HELP)),
    ),
    Param(
        "convs_per_depth", "int", 3, "Convolutions per U-Net level.",
        steps=("refine",),
        group="refine",
        schema={"help_text": "IsoNet's convs_per_depth.", "minimum": 2},
        uses=(Use("refine"),),
    ),
    Param(
        "kernel", "int", 3, "Convolution kernel edge.",
        steps=("refine",),
        group="refine",
        schema={"description": "Convolution kernel edge (odd).", "help_text": "IsoNet's kernel.", "minimum": 1},
        uses=(Use("refine"),),
    ),
    Param(
        "dropout", "float", 0.3, "Dropout rate.",
        aliases=("drop_out",),
        steps=("refine",),
        group="refine",
        schema={"help_text": "IsoNet's drop_out.", "minimum": 0, "exclusiveMaximum": 1},
        uses=(Use("refine"),),
    ),
    Param(
        "batch_norm", "bool", True, "Batch normalisation.",
        steps=("refine",),
        group="refine",
        schema={
            "description": "Batch normalisation in the U-Net blocks.",
            "help_text": "IsoNet's batch_normalization.",
        },
        uses=(Use("refine", help="Batch normalisation in conv blocks."),),
    ),
    Param(
        "learning_rate", "float", 0.0004, "Adam learning rate.",
        steps=("refine",),
        group="refine",
        schema={"help_text": "IsoNet's learning_rate.", "exclusiveMinimum": 0},
        uses=(Use("refine", help="Adam learning rate (fresh optimiser each iteration)."),),
    ),
    Param(
        "fill_relaxation", "float", 1.0, "Weight of an iteration's new predictions in the missing-wedge fill the "
                                         "next trains on; 1: IsoNet (new alone).",
        steps=("refine",),
        group="refine",
        schema={
            "help_text": "Below 1 the fill is a running mean of the iterations' predictions (0.5: the mean of the "
                         "new and the previous), which steadied short iterations on phantoms; 1 keeps IsoNet's.",
            "exclusiveMinimum": 0,
            "maximum": 1,
        },
        uses=(Use("refine"),),
    ),
    Param(
        "noise_level", "floats", (0.05, 0.1, 0.15, 0.2), "Noise levels, comma-separated.",
        steps=("refine",),
        group="refine",
        schema={
            "help_text": "Ratio of added noise to the data; each level starts at the matching --noise_start_iter.",
            "pattern": "^[0-9.]+(,[0-9.]+)*$",
        },
        uses=(Use("refine", help="Noise levels (ratio to data), comma-separated."),),
    ),
    Param(
        "noise_start_iter", "ints", (11, 16, 21, 26), "Iteration where each noise level starts.",
        steps=("refine",),
        group="refine",
        schema={
            "description": "Iteration where each noise level starts, comma-separated.",
            "help_text": "Increasing iteration numbers, one per noise level.",
            "pattern": "^[0-9]+(,[0-9]+)*$",
        },
        uses=(Use("refine"),),
    ),
    Param(
        "noise_mode", "str", "noFilter", "Noise filter: noFilter, ramp or hamming.",
        steps=("refine",),
        choices=("noFilter", "ramp", "hamming"),
        group="refine",
        schema={"description": "Back-projection filter of the added noise.", "help_text": "IsoNet's noise_mode."},
        uses=(Use("refine", help="Back-projection filter of the noise."),),
    ),
    Param(
        "precision", "str", "auto", _PRECISION_HELP,
        steps=("refine", "predict"),
        choices=("auto", "float32", "mixed"),
        group="refine",
        schema={
            "description": "Network arithmetic of refine and predict: auto, float32, or mixed (bfloat16 compute, "
                           "float32 weights and output).",
            "help_text": "auto picks mixed where the hardware has bfloat16 units (GPUs of compute capability 8.0 "
                         "or later; CPUs with AMX or AVX512-BF16) and float32 elsewhere. Mixed trains about 1.5x "
                         "and predicts about 3x faster there, at the same quality; a refine continues in the "
                         "precision it started with.",
        },
        uses=(Use("refine"), Use("predict"), Use("gold_standard")),
    ),
    Param(
        "select_subtomo_number", "int", None,
        "Train on this many randomly chosen subtomograms per iteration [default: all].",
        steps=("refine",),
        group="refine",
        schema={"description": "Train on this many randomly chosen subtomograms per iteration.",
                "help_text": "Default: all of them.", "minimum": 1},
        uses=(Use("refine"),),
    ),
    Param(
        "pretrained_model", "str", None, "Start from this .keras model.",
        file=True,
        steps=("refine",),
        group="refine",
        schema={
            "help_text": "Staged into the refine state and given to every iteration.",
            "format": "file-path",
            "exists": True,
            "pattern": "^\\S+\\.keras$",
            "errorMessage": "--pretrained_model must be an existing .keras file.",
        },
        uses=(Use("refine", nextflow=False),),
    ),
    Param(
        "model", "str", None, "Correct every tomogram with this trained .keras model: no training.",
        steps=("predict",),
        group="refine",
        schema={
            "description": "Correct every tomogram with this trained .keras model (no refine).",
            "help_text": "One predict task per tomogram; the model's record of its voxel size is checked against "
                         "each tomogram's.",
            "format": "file-path",
            "exists": True,
            "pattern": "^\\S+\\.keras$",
            "errorMessage": "--model must be an existing .keras file.",
        },
    ),
    Param(
        "halves", "bool", False, "Train two networks on spatially separate halves and report the gold-standard FSC.",
        steps=("extract", "refine"),
        group="refine",
        schema={
            "description": "Train one network per half of the subtomograms and measure the gold-standard FSC.",
            "help_text": "Extract then draws each half from its own slabs (2·crop wide along X, alternating), so "
                         "no box of one half overlaps a box of the other. Predict corrects every tomogram with "
                         "each half's network (<name>_half1/2_corrected.mrc) and the FSC between the two gives the "
                         "resolution along X, Y and Z.",
        },
        uses=(
            Use("refine", nextflow=False, help="Train one network per rlnRandomSubset half (result-dir/half1, "
                                               "half2)."),
        ),
    ),
    Param(
        "noise2noise", "bool", False, "Train on the raw even/odd half tomograms: each box of one half predicts the "
                                      "same box of the other.",
        steps=("extract", "refine", "predict"),
        group="refine",
        schema={
            "help_text": "Needs tomograms with raw halves (rlnTomoReconstructedTomogramHalf1/2, as a RELION 5 "
                         "project gives). Extract cuts the same boxes from both halves (rlnImageName and "
                         "rlnImageNameHalf2); refine trains half 1 -> half 2 and back instead of adding noise; "
                         "predict corrects the full tomogram.",
        },
        uses=(
            Use("extract", help="Cut the same boxes from each row's raw half tomograms "
                                "(rlnTomoReconstructedTomogramHalf1/2) instead: rlnImageName names half 1's box, "
                                "rlnImageNameHalf2 half 2's (for refine --noise2noise)."),
            Use("refine", help="Train each box of one raw half tomogram to predict the same box of the other "
                               "(rlnImageNameHalf2, from extract --noise2noise) instead of adding noise."),
        ),
    ),
    Param(
        "predict_cube_size", "int", 96, "Predict tile stride (multiple of 2**unet_depth).",
        steps=("predict",),
        group="predict",
        schema={
            "description": "Tile stride, voxels (a multiple of 2^unet_depth).",
            "help_text": "96 with crop 128 keeps IsoNet's 8-voxel margin and 16-voxel blend (64/96) with 30 % "
                         "fewer network voxels per output voxel.",
            "minimum": 8,
        },
        uses=(
            Use("predict", option="cube_size", minimum=1, help="Tile stride in voxels; divisible by 2**depth. "
                                                               "IsoNet's 64 with crop 96 has the same 8-voxel "
                                                               "margin and 16-voxel blend but sends 40 % more "
                                                               "voxels through the network."),
            Use("gold_standard", option="cube_size", help="Predict tile stride (as predict)."),
            Use("prepare_star", default=None, help=_TILES_HELP),
        ),
    ),
    Param(
        "predict_crop_size", "int", 128, "Predict tile edge (at least predict_cube_size + 8).",
        steps=("predict",),
        group="predict",
        schema={
            "description": "Tile edge the network sees, voxels (at least predict_cube_size + 8).",
            "help_text": "More context than predict_cube_size + 16 hides tile edges better.",
            "minimum": 8,
        },
        uses=(
            Use("predict", option="crop_size", minimum=1, help="Tile edge the network sees, in voxels; at least "
                                                               "cube + 8. More than cube + 16 hides tile edges "
                                                               "better."),
            Use("gold_standard", option="crop_size", help="Predict tile edge (as predict)."),
            Use("prepare_star", default=None, help=_TILES_HELP),
        ),
    ),
    Param(
        "predict_batch_size", "int", None,
        "Tiles per network call [default: 4 per GPU, 4 on the CPU]; halved automatically when memory runs out.",
        steps=("predict",),
        group="predict",
        schema={
            "description": "Tiles per network call.",
            "help_text": "Default: 4 per GPU, 4 on the CPU; halved automatically when memory runs out.",
            "minimum": 1,
        },
        uses=(Use("predict", option="batch_size", minimum=1), Use("gold_standard", option="batch_size")),
    ),
    Param(
        "cone_angle", "float", 20.0, "Half-angle of the directional FSC cones, degrees.",
        steps=("gold_standard",),
        group="fsc_report",
        schema={"help_text": "Around X, Y and Z, and slabs around the planes.", "exclusiveMinimum": 0, "maximum": 90},
        uses=(
            Use("fsc", help="Half-angle of the cones around X/Y/Z and slabs around the planes, degrees."),
            Use("gold_standard", help="Half-angle of the directional cones, degrees."),
        ),
    ),
    Param(
        "gpus", "str", None, "GPU ids, e.g. 0 or 0,1; 'cpu' for the CPU only [default: every visible GPU].",
        metavar="LIST",
        steps=(),
        nextflow=False,
        uses=(Use("refine"), Use("predict"), Use("gold_standard")),
    ),
)

BY_NAME = {p.name: p for p in PARAMS}


def as_text(value: Any) -> Any:
    """A list value as the command line, Nextflow and the schema write it, "0.05,0.1"; any other as it is."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else value


def default(name: str) -> Any:
    """The pipeline's default of parameter ``name`` (``RefineSettings`` takes its defaults from here)."""
    return BY_NAME[name].default


def uses_of(command: str) -> list[tuple[Param, Use]]:
    """The parameters ``command`` takes, in the table's order, each with how it takes it."""
    return [(param, use) for param in PARAMS for use in param.uses if use.command == command]


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
