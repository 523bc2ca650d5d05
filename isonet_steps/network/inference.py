"""Apply a trained network to whole tomograms, tile by tile (:mod:`.tiles` places and blends the
tiles), and to stacks of subtomograms.

Prediction runs in batches of tiles through any ``predict_fn`` that maps a
``(B, crop, crop, crop, 1)`` float32 array to the same shape. When the accelerator runs out of
memory the batch is halved and retried.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..core.normalize import from_network, to_network
from ..io.errors import InputError
from ..io.log import get_logger, progress
from .devices import is_out_of_memory, release_cached_memory
from .tiles import TilePlan, check_tiling, plan_tiles, tile_at

if TYPE_CHECKING:  # Keras takes seconds to import; the steps import it only when they run a network
    import keras

__all__ = [
    "check_tiling",  # the tiling's rule, which the steps check before any network is loaded (:mod:`.tiles`)
    "predict_tiled",
    "predict_tomogram",
    "predict_cubes",
    "model_predict_fn",
    "corrected_file_name",
]

PredictFn = Callable[[np.ndarray], np.ndarray]


def _run_batches(predict_fn: PredictFn, x: np.ndarray, batch_size: int, hint: str) -> tuple[np.ndarray, int]:
    """``predict_fn`` over ``x`` in batches of a fixed shape, halving the batch on out-of-memory.

    The last batch is filled up with copies of its first item (a constant shape spares compiled
    functions a retrace); their outputs are dropped. Returns the outputs and the batch size that worked.
    """
    log = get_logger()
    outputs = np.empty(x.shape[:4], dtype=np.float32)
    start = 0
    while start < len(x):
        chunk = x[start:start + batch_size]
        if len(chunk) < batch_size:
            fill = np.repeat(chunk[:1], batch_size - len(chunk), axis=0)
            chunk = np.concatenate([chunk, fill], axis=0)
        try:
            y = np.asarray(predict_fn(chunk), dtype=np.float32)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            y = None
        if y is None:  # out of memory; freed here, outside the handler that still holds the failed attempt
            release_cached_memory()
            if batch_size == 1:
                raise InputError(f"out of memory predicting a single {hint}; {_OOM_FIX}") from None
            batch_size //= 2
            log.warning("out of memory; retrying with batch size %d", batch_size)
            continue
        n = min(batch_size, len(x) - start)
        outputs[start:start + n] = y.reshape(y.shape[0], *x.shape[1:4])[:n]
        start += n
    return outputs, batch_size


_OOM_FIX = "use a smaller --crop-size (and --cube-size), a smaller network, or a GPU with more free memory"


def predict_tiled(
    predict_fn: PredictFn,
    volume: np.ndarray,
    *,
    cube: int,
    crop: int,
    batch_size: int,
    progress_bar: bool = True,
    desc: str = "predicting",
) -> np.ndarray:
    """Apply ``predict_fn`` to ``volume`` tile by tile and blend (no normalisation, no contrast change).

    An identity ``predict_fn`` returns ``volume`` itself: the blending weights sum to 1 everywhere.
    Memory: the output and one batch of tiles (``volume`` is read, never copied or padded).
    """
    if volume.ndim != 3:
        raise ValueError(f"volume must be 3D [Z, Y, X], got shape {volume.shape}")
    check_tiling(cube, crop, 0, names=("cube", "crop"), min_context=2)
    plan = plan_tiles(volume.shape, cube, crop)
    return _blend_tiles(predict_fn, np.asarray(volume, dtype=np.float32), plan, batch_size, progress_bar, desc)


def _blend_tiles(predict_fn: PredictFn, volume: np.ndarray, plan: TilePlan, batch_size: int, progress_bar: bool,
                 desc: str) -> np.ndarray:
    """Tiles of ``volume`` through ``predict_fn``, blended into a new array of the volume's shape.

    A helper thread cuts the next batch of tiles and blends the last batch's outputs while the
    network runs (double-buffered): on a GPU that CPU work would otherwise add to the network's
    time. The blending order is the tiles' order, so the result does not depend on timing.
    """
    import concurrent.futures

    crop, cube, keep, m = plan.crop, plan.cube, plan.keep, plan.margin
    out = np.zeros(plan.shape, dtype=np.float32)
    weights: dict[tuple[bool, ...], np.ndarray] = {}  # at most 3³ kinds: first / inner / last per axis
    tiles = list(plan.tiles())
    batch_size = max(1, int(batch_size))
    n_batches = math.ceil(len(tiles) / batch_size)
    get_logger().debug(
        "%d tiles of %d³ at stride %d (margin %d, overlap %d) in %d batches of %d",
        len(tiles), crop, cube, plan.margin, plan.overlap, n_batches, batch_size,
    )
    group_size = batch_size  # tiles cut per step; the network batch may shrink below it on out-of-memory
    groups = [tiles[first:first + group_size] for first in range(0, len(tiles), group_size)]
    buffers = [np.empty((group_size, crop, crop, crop, 1), dtype=np.float32) for _ in range(min(2, len(groups)))]

    def cut(k: int) -> np.ndarray:
        batch = buffers[k % len(buffers)]
        for j, (origin, _) in enumerate(groups[k]):
            batch[j, ..., 0] = tile_at(volume, plan, origin)
        return batch[:len(groups[k])]

    def blend(group, result: np.ndarray) -> None:
        for ((z, y, x), index), tile in zip(group, result):
            kind = tuple(v for i, k in zip(index, plan.n_tiles) for v in (i == 0, i == k - 1))
            if kind not in weights:
                weights[kind] = plan.weights(index)
            # the last tiles reach past the volume's far faces: keep what lies inside
            dz, dy, dx = (min(keep, n - o) for n, o in zip(plan.shape, (z, y, x)))
            out[z:z + dz, y:y + dy, x:x + dx] += tile[m:m + dz, m:m + dy, m:m + dx] * weights[kind][:dz, :dy, :dx]

    indices = range(len(groups))
    loop = progress(indices, total=n_batches, desc=desc, unit="batch") if progress_bar else iter(indices)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="isonet-tiles") as helper:
        ready = helper.submit(cut, 0) if groups else None
        blended = None
        for k in loop:
            assert ready is not None  # batch k was submitted in the step before
            batch = ready.result()
            # one worker runs its jobs in order: the previous batch's blend, then the next cut
            # (into the other buffer, which the network finished with in the last step)
            ready = helper.submit(cut, k + 1) if k + 1 < len(groups) else None
            result, batch_size = _run_batches(predict_fn, batch, batch_size, f"{crop}³ tile")
            if blended is not None:
                blended.result()  # surfaces errors; keeps at most one blend queued
            blended = helper.submit(blend, groups[k], result)
        if blended is not None:
            blended.result()
    return out


def predict_tomogram(
    predict_fn: PredictFn,
    tomogram: np.ndarray,
    *,
    cube: int,
    crop: int,
    batch_size: int,
    progress: bool = True,
    overwrite_input: bool = False,
) -> np.ndarray:
    """Correct a whole tomogram: normalise for the network, predict tiles, blend, restore contrast.

    Parameters
    ----------
    predict_fn : maps a ``(B, crop, crop, crop, 1)`` float32 batch to the same shape.
    tomogram : ``[Z, Y, X]`` in the usual cryo-ET contrast (protein dark).
    cube, crop : tile stride and tile edge; check them first with :func:`check_tiling`.
    batch_size : tiles per network call (halved automatically on out-of-memory).
    overwrite_input : normalise a float32 ``tomogram`` in place (it is left scaled for the
        network) instead of in a copy: the tomogram and the output are then the only large arrays.

    Returns
    -------
    float32 ``[Z, Y, X]`` percentile-normalised, protein dark like the input: the same as
    ``from_network(predict_tiled(predict_fn, to_network(tomogram), ...))`` without the five
    temporary volumes that computes (each costs its size in memory and seconds of page faults).
    """
    if tomogram.ndim != 3:
        raise ValueError(f"tomogram must be 3D [Z, Y, X], got shape {tomogram.shape}")
    check_tiling(cube, crop, 0, names=("cube", "crop"), min_context=2)
    plan = plan_tiles(tomogram.shape, cube, crop)
    # whole-volume percentiles: every tile shares one scale
    data = to_network(tomogram if overwrite_input else np.array(tomogram, dtype=np.float32), in_place=True)
    result = _blend_tiles(predict_fn, data, plan, batch_size, progress, "predicting")
    del data
    return from_network(result, in_place=True)


def predict_cubes(predict_fn: PredictFn, cubes: np.ndarray, batch_size: int) -> np.ndarray:
    """Predict a stack of whole (already normalised) subtomograms ``(N, c, c, c[, 1])`` in batches.

    Returns ``(N, c, c, c)`` float32. The batch is halved on out-of-memory, like tiled prediction.
    """
    cubes = np.asarray(cubes, dtype=np.float32)
    if cubes.ndim == 4:
        cubes = cubes[..., None]
    if cubes.ndim != 5 or cubes.shape[-1] != 1:
        raise ValueError(f"cubes must be (N, z, y, x) or (N, z, y, x, 1), got {cubes.shape}")
    if len(cubes) == 0:
        return np.empty(cubes.shape[:4], dtype=np.float32)
    side = "×".join(str(s) for s in cubes.shape[1:4])
    out, _ = _run_batches(predict_fn, cubes, max(1, int(batch_size)), f"{side} subtomogram")
    return out


def corrected_file_name(input_name: str, half: int | None = None) -> str:
    """``TS_1.rec.mrc`` -> ``TS_1.rec_corrected.mrc`` (only the last extension goes; IsoNet cut at the first dot)."""
    name = input_name.replace("\\", "/").rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return f"{stem}_half{half}_corrected.mrc" if half else f"{stem}_corrected.mrc"


@dataclass
class InferenceFunction:
    """The network as a function of a batch: ``fn(batch) -> corrected batch``.

    ``model`` is the inference network itself (batch norm folded, dropout removed), kept so refine
    can give it newly trained weights each iteration without tracing it again.
    """

    model: keras.Model
    split_between_gpus: bool = False

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if self.split_between_gpus:  # predict_on_batch would hand every GPU the whole batch
            y = self.model.predict(x, batch_size=len(x), verbose=0)
        else:
            y = self.model.predict_on_batch(x)
        return np.asarray(y, dtype=np.float32)


def model_predict_fn(model, *, precision: str = "float32") -> InferenceFunction:
    """A fast inference callable for a Keras model (compiled graph, ``training=False``, float32 out).

    The network is first rebuilt for inference (:func:`~isonet_steps.network.fold.inference_model`: batch
    normalisation folded into the convolutions, dropout removed; channels-first on PyTorch,
    :mod:`~isonet_steps.network.layout`). ``predict_on_batch`` then reuses
    one traced function per input shape and runs under a multi-GPU strategy when the model was built
    in one. ``precision="mixed"`` computes in bfloat16 (about 3x faster on CPUs with AMX and on
    tensor-core GPUs); the last convolution and the residual sum with the input stay float32.
    ``"auto"`` picks mixed where the hardware has bfloat16 units.
    """
    from .devices import mirrored_strategy, resolve_precision
    from .fold import inference_model
    from .layout import for_backend

    precision = resolve_precision(precision)
    compute_dtype = "mixed_bfloat16" if precision == "mixed" else "float32"
    folded = for_backend(inference_model(model, compute_dtype=compute_dtype))  # channels-first on PyTorch
    strategy = mirrored_strategy()
    return InferenceFunction(folded, split_between_gpus=strategy is not None and strategy.num_replicas_in_sync > 1)
