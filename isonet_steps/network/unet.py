"""IsoNet's 3D U-Net (reference §7), in Keras 3 so it runs on TensorFlow or PyTorch.

A residual U-Net: the network learns a correction that is added to its input, so an untrained
network starts near the identity and training only has to learn what the missing wedge removed.
Encoder levels use strided convolutions to downsample (IsoNet's default; max pooling with
``pool=True``), the decoder transposed convolutions, and every level keeps a skip connection.
Fully convolutional: any input whose sides are divisible by ``2**depth`` works.

Only ``keras.*`` APIs are used here (no TensorFlow calls), and every layer is named so saved
models are readable and layers can be found again (``enc0_conv0``, ``dec1_up``, ``output``).
The network made for prediction (batch norm folded) is :mod:`.fold`'s; the precision it computes
in, :func:`~isonet_steps.network.devices.precision_policy`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import keras
from keras import layers

from ..io.atomic import atomic_path
from ..io.errors import InputError
from ..io.model_record import ModelRecord, write_model_record
from .layout import with_data_format

__all__ = [
    "LEAKY_SLOPE",
    "build_unet",
    "compile_unet",
    "all_layers",
    "unet_depth",
    "load_model",
    "save_model",
]

#: IsoNet's LeakyReLU negative slope.
LEAKY_SLOPE = 0.05
_INIT_STDDEV = 0.02


def _kernel3(kernel: int | Sequence[int]) -> tuple[int, int, int]:
    if isinstance(kernel, int):
        return (kernel, kernel, kernel)
    k = tuple(int(v) for v in kernel)
    if len(k) != 3:
        raise ValueError(f"kernel must be an int or three ints, got {kernel!r}")
    return k


def _conv(filters: int, kernel, name: str, *, strides: int = 1) -> layers.Conv3D:
    return layers.Conv3D(
        filters,
        kernel,
        strides=strides,
        padding="same",
        kernel_initializer=keras.initializers.RandomNormal(mean=0.0, stddev=_INIT_STDDEV),
        bias_initializer="zeros",
        name=name,
    )


def _conv_block(x, filters: int, kernel, name: str, *, batch_norm: bool, dropout: float):
    """Conv3D -> BatchNorm (optional) -> Dropout (optional) -> LeakyReLU(0.05)."""
    x = _conv(filters, kernel, name)(x)
    if batch_norm:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name=f"{name}_drop")(x)
    return layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"{name}_act")(x)


def _encoder(x, depth: int, filter_base: int, convs_per_depth: int, k, pool: bool, blocks: dict):
    """The downsampling levels; returns the bottom input and each level's output for the skips."""
    skips = []
    for level in range(depth):
        filters = filter_base * 2**level
        for i in range(convs_per_depth):
            x = _conv_block(x, filters, k, f"enc{level}_conv{i}", **blocks)
        skips.append(x)
        if pool:
            x = layers.MaxPooling3D(pool_size=2, name=f"enc{level}_pool")(x)
        else:
            x = _conv(filters, k, f"enc{level}_down", strides=2)(x)
            x = layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"enc{level}_down_act")(x)
    return x, skips


def _decoder(x, skips: list, filter_base: int, convs_per_depth: int, k, pool: bool, blocks: dict):
    """The upsampling levels, each joined to its encoder level's output (the skip connection)."""
    for level in reversed(range(len(skips))):
        filters = filter_base * 2**level
        if pool:
            x = layers.UpSampling3D(size=2, name=f"dec{level}_up")(x)
        else:
            x = layers.Conv3DTranspose(
                filters,
                k,
                strides=2,
                padding="same",
                kernel_initializer=keras.initializers.RandomNormal(mean=0.0, stddev=_INIT_STDDEV),
                bias_initializer="zeros",
                name=f"dec{level}_up",
            )(x)
        x = layers.Concatenate(axis=-1, name=f"dec{level}_concat")([x, skips[level]])
        x = layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"dec{level}_concat_act")(x)
        for i in range(convs_per_depth):
            x = _conv_block(x, filters, k, f"dec{level}_conv{i}", **blocks)
    return x


def build_unet(
    *,
    depth: int = 3,
    filter_base: int = 64,
    convs_per_depth: int = 3,
    kernel: int | Sequence[int] = 3,
    dropout: float = 0.3,
    batch_norm: bool = True,
    pool: bool = False,
) -> keras.Model:
    """Build IsoNet's residual U-Net for single-channel volumes ``(batch, z, y, x, 1)``.

    Parameters
    ----------
    depth : number of downsampling levels; inputs must be divisible by ``2**depth``.
    filter_base : filters of the first level; level n has ``filter_base * 2**n``.
    convs_per_depth : conv blocks per level (the bottleneck has ``convs_per_depth - 2`` plus one linear conv).
    kernel : convolution kernel edge (or three edges).
    dropout : dropout rate in every encoder/decoder conv block (not the bottleneck).
    batch_norm : batch normalisation in every encoder/decoder conv block (not the bottleneck).
    pool : max pooling / upsampling instead of strided / transposed convolutions.
    """
    if depth < 1 or filter_base < 1 or convs_per_depth < 2:
        raise ValueError(
            f"need depth >= 1, filter_base >= 1, convs_per_depth >= 2; got {depth}, {filter_base}, {convs_per_depth}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    k = _kernel3(kernel)

    inputs = keras.Input(shape=(None, None, None, 1), name="input")
    blocks = {"batch_norm": batch_norm, "dropout": dropout}
    x, skips = _encoder(inputs, depth, filter_base, convs_per_depth, k, pool, blocks)

    # === Bottleneck ===
    for i in range(convs_per_depth - 2):
        x = _conv_block(x, filter_base * 2**depth, k, f"bottom_conv{i}", batch_norm=False, dropout=0.0)
    x = _conv(filter_base * 2 ** (depth - 1), k, "bottom_linear")(x)

    x = _decoder(x, skips, filter_base, convs_per_depth, k, pool, blocks)

    # === Output: correction added to the input ===
    x = layers.Conv3D(1, 1, padding="same", kernel_initializer=keras.initializers.RandomNormal(
        mean=0.0, stddev=_INIT_STDDEV), bias_initializer="zeros", name="output_conv", dtype="float32")(x)
    # float32 at the end even under a mixed-precision policy: the input passes through unrounded
    outputs = layers.Add(name="residual", dtype="float32")([x, inputs])
    return keras.Model(inputs=inputs, outputs=outputs, name=f"isonet_unet_d{depth}_f{filter_base}")


def compile_unet(model: keras.Model, learning_rate: float, *, jit_compile: bool | str = "auto") -> keras.Model:
    """Compile with a fresh Adam (IsoNet resets it every iteration), L1 loss and MSE metric."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="mae",
        metrics=["mse"],
        jit_compile=jit_compile,
    )
    return model


def all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer of ``model``, nested models' layers included, in order (public API only)."""
    found = []
    for layer in model.layers:
        found.append(layer)
        if isinstance(layer, keras.Model):
            found.extend(all_layers(layer))
    return found


def unet_depth(model: keras.Model, default: int = 3) -> int:
    """Number of downsampling levels of a model built by :func:`build_unet` (``default`` otherwise).

    Models from elsewhere (IsoNet's own) are counted by their strided convolutions / poolings.
    """
    names = [layer.name for layer in model.layers]
    ours = {int(m.group(1)) for n in names if (m := re.fullmatch(r"enc(\d+)_(down|pool)", n))}
    if ours:
        return len(ours)
    found = 0
    for layer in model.layers:
        if isinstance(layer, layers.MaxPooling3D):
            found += 1
        elif isinstance(layer, layers.Conv3D) and not isinstance(layer, layers.Conv3DTranspose):
            if tuple(layer.strides) == (2, 2, 2):
                found += 1
    return found or default


def load_model(path: str | os.PathLike, *, compile: bool = False) -> keras.Model:
    """Load a ``.keras`` model (or a Keras ``.h5``); one-line :class:`InputError` when it cannot be read."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: model file not found; give the .keras file written by refine (e.g. "
                         "results/model_final.keras).")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a model file; give the .keras file written by refine.")
    if path.suffix not in (".keras", ".h5", ".hdf5"):
        raise InputError(f"{path}: a model file must end in .keras (or .h5); give the .keras file written by refine.")
    try:
        return keras.saving.load_model(path, compile=compile)
    except Exception as exc:  # corrupt zip, wrong content, unknown layers...
        reason = " ".join(str(exc).split())[:300]
        raise InputError(f"{path}: cannot load the model ({type(exc).__name__}: {reason}); "
                         "re-copy it or re-run refine.") from None


def save_model(model: keras.Model, path: str | os.PathLike, record: ModelRecord | None = None) -> Path:
    """Save in the ``.keras`` format, channels-last, atomically: a temporary ``.keras`` name, then rename.
    ``record`` (what it was trained on) goes into the file's metadata (:mod:`isonet_steps.io.model_record`).
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"model files are saved as .keras, got {path}")
    model = with_data_format(model, "channels_last")  # saved models load on every backend and CPU
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp, overwrite=True)
        if record is not None:
            write_model_record(tmp, record)
    return path
