"""Iterative self-supervised training of the missing-wedge-correction network (reference §6).

Iteration n trains on pairs built from the subtomograms with their missing wedge filled by the
network of iteration n−1 (iteration 1: left empty), starting from that network's weights with a
fresh Adam optimiser (as IsoNet does). The fill is predicted when iteration n starts, and only for
the subtomograms its batches draw: IsoNet predicts every subtomogram after each iteration, the last
included, though a short iteration (or ``--select-subtomo-number``) trains on a part of them.
Each finished iteration is committed to the result folder (model, state; with a relaxed fill the fill
too), so a rerun continues after the last finished iteration and gives the same final model as an
uninterrupted run.
With ``noise2noise`` the boxes come from two half tomograms (even/odd) and each half's pairs take
their targets from the other half (:mod:`.pairs`); the cubes of half 2 follow those of half 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..core.noise import NOISE_MODES, noise_schedule
from ..core.normalize import percentile_normalize, to_network
from ..core.wedge import Wedge, measured_part
from ..io.checkpoint import RefineStore
from ..io.errors import InputError
from ..io.log import get_logger, progress
from ..io.model_record import ModelRecord
from ..io.refine_state import IterationRecord, RefineState
from .devices import PRECISIONS, release_cached_memory
from .pairs import BatchStream, PairPlan, halves_to_network, merge_halves_with_predictions, merge_with_prediction
from .watch import check_batch_loss, check_epoch_losses, check_epochs_differ

if TYPE_CHECKING:  # predict is imported when the subtomograms are first predicted, as before
    from .inference import InferenceFunction

__all__ = ["RefineSettings", "RefineData", "refine", "default_batch_size", "default_steps_per_epoch",
           "early_stop_reason", "EARLY_STOP_MIN_IMPROVEMENT"]

#: Settings that may change between a run and its continuation without changing what was computed.
_FREE_TO_CHANGE = ("iterations",)

#: Early stopping counts an epoch as an improvement only when it lowers the iteration's best validation loss
#: by this fraction of it. The validation loss is the mean of a few batches (10 % of an epoch's steps); its
#: epoch-to-epoch spread was 1-3 % with 2 batches (benchmarks/quality.py, benchmarks/NOTES.md) and shrinks
#: with more, so a smaller gain is sampling noise that would keep a flat iteration training. One constant, not a
#: parameter: a larger margin only stops sooner, which the patience already controls.
EARLY_STOP_MIN_IMPROVEMENT = 0.01


@dataclass
class RefineSettings:
    """Everything that decides the result of refine (IsoNet's defaults)."""

    iterations: int = 30
    epochs: int = 10
    steps_per_epoch: int | None = None
    batch_size: int | None = None
    filter_base: int = 64
    unet_depth: int = 3
    convs_per_depth: int = 3
    kernel: int = 3
    dropout: float = 0.3
    batch_norm: bool = True
    learning_rate: float = 4e-4
    noise_level: Sequence[float] = (0.05, 0.10, 0.15, 0.20)
    noise_start_iter: Sequence[int] = (11, 16, 21, 26)
    noise_mode: str = "noFilter"
    select_subtomo_number: int | None = None
    pretrained_model: str | None = None
    seed: int = 0
    precision: str = "auto"
    noise2noise: bool = False  # train half 1 -> half 2 and back (needs RefineData.second_half); no added noise
    early_stop_patience: int = 0  # stop an iteration's epochs after this many without improvement; 0: all epochs
    fill_relaxation: float = 1.0  # new predictions' weight in the wedge fill (the rest: the previous fill); 1: IsoNet

    def validate(self) -> None:
        """Refuse bad settings before any data is read or any network built."""
        checks = [
            (self.iterations >= 1, f"--iterations {self.iterations} must be at least 1"),
            (self.epochs >= 1, f"--epochs {self.epochs} must be at least 1"),
            (self.steps_per_epoch is None or self.steps_per_epoch >= 1,
             f"--steps-per-epoch {self.steps_per_epoch} must be at least 1"),
            (self.batch_size is None or self.batch_size >= 1, f"--batch-size {self.batch_size} must be at least 1"),
            (self.filter_base >= 1, f"--filter-base {self.filter_base} must be at least 1"),
            (1 <= self.unet_depth <= 6, f"--unet-depth {self.unet_depth} must be 1..6"),
            (self.convs_per_depth >= 2, f"--convs-per-depth {self.convs_per_depth} must be at least 2"),
            (self.kernel % 2 == 1, f"--kernel {self.kernel} must be odd"),
            (0.0 <= self.dropout < 1.0, f"--dropout {self.dropout} must be in [0, 1)"),
            (self.learning_rate > 0, f"--learning-rate {self.learning_rate} must be positive"),
            (self.noise_mode in NOISE_MODES,
             f"--noise-mode {self.noise_mode!r} must be one of {', '.join(NOISE_MODES)}"),
            (self.precision in PRECISIONS, f"--precision {self.precision!r} must be one of {', '.join(PRECISIONS)}"),
            (self.select_subtomo_number is None or self.select_subtomo_number >= 1,
             f"--select-subtomo-number {self.select_subtomo_number} must be at least 1"),
            (0 < self.fill_relaxation <= 1,
             f"--fill-relaxation {self.fill_relaxation} must be above 0 and at most 1 (1: IsoNet's fill)"),
            (self.early_stop_patience >= 0,
             f"--early-stop-patience {self.early_stop_patience} must be 0 (off) or more"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(message + ".")
        noise_schedule(self.iterations, self.noise_level, self.noise_start_iter)

    def fingerprint(self) -> dict:
        """Settings that must match to continue a run (the iteration count may grow), JSON-comparable."""
        d = asdict(self)
        d["noise_level"] = [float(v) for v in self.noise_level]
        d["noise_start_iter"] = [int(v) for v in self.noise_start_iter]
        for key in _FREE_TO_CHANGE:
            d.pop(key)
        if not self.noise2noise:
            d.pop("noise2noise")  # result folders from before the option continue as they were
        if not self.early_stop_patience:
            d.pop("early_stop_patience")  # off trains every epoch, as before the option
        if self.fill_relaxation == 1:
            d.pop("fill_relaxation")  # IsoNet's fill, as before the option
        return d


@dataclass
class RefineData:
    """Subtomograms (raw values, ``(N, crop, crop, crop)``) with their tilt ranges, wedges and names.

    ``wedges`` (one per subtomogram) carry the recorded angles of a series when extract gave a
    tilt-angle file, so a gap in the series is trained as missing; None means the ``tilts`` ranges.
    """

    subtomos: np.ndarray
    tilts: np.ndarray  # (N, 2) degrees
    names: list[str]
    cube: int
    crop: int = field(init=False)
    second_half: np.ndarray | None = None  # noise2noise: the same boxes cut from the other half tomogram
    second_names: list[str] | None = None
    wedges: list[Wedge] | None = None  # per subtomogram; None: range wedges from ``tilts``
    # what the saved models record of their training data (io/model_record.py); not part of the fingerprint
    voxel_size: float | None = None  # Å per voxel; None: not known
    deconvolved: bool | None = None  # cut from deconvolved tomograms; None: not known, or mixed
    digest: str | None = None  # of the subtomogram files (steps/refine.py)

    def __post_init__(self):
        """The crop is the subtomograms' own edge, so it cannot disagree with them."""
        self.crop = int(self.subtomos.shape[-1])
        if self.second_half is not None and np.shape(self.second_half) != np.shape(self.subtomos):
            raise InputError(f"the second half's subtomograms have shape {np.shape(self.second_half)}, the first "
                             f"half's {np.shape(self.subtomos)}; extract the same boxes from both half tomograms.")
        if self.wedges is not None and len(self.wedges) != len(self.subtomos):
            raise ValueError(f"{len(self.wedges)} wedges for {len(self.subtomos)} subtomograms; give one each")

    def subtomo_wedges(self) -> list[Wedge]:
        """The wedge of every subtomogram: ``wedges`` when given, else each ``tilts`` range."""
        if self.wedges is not None:
            return list(self.wedges)
        return [Wedge.from_range(float(lo), float(hi)) for lo, hi in np.asarray(self.tilts, dtype=float)]

    def fingerprint(self) -> dict:
        """What identifies the data, so a run is not continued on other subtomograms (or other angles)."""
        d = {"names": list(self.names), "cube": int(self.cube), "crop": int(self.crop),
             "tilts": np.asarray(self.tilts, dtype=float).round(3).tolist()}
        if self.second_half is not None:
            d["second_names"] = list(self.second_names or [])
        if self.wedges is not None and any(w.angles is not None for w in self.wedges):
            d["angles"] = [None if w.angles is None else [round(a, 3) for a in w.angles] for w in self.wedges]
        return d


def default_batch_size(n_gpus: int) -> int:
    """IsoNet's rule: max(4, 2 per GPU)."""
    return max(4, 2 * max(n_gpus, 0))


def default_steps_per_epoch(n_subtomos: int, batch_size: int) -> int:
    """IsoNet's rule: min(6·N / batch, 200), at least 1."""
    return max(1, min(int(6 * n_subtomos / batch_size), 200))


def _iteration_seed(seed: int, iteration: int) -> int:
    return (int(seed) * 1_000_003 + int(iteration) * 7919) % (2**31 - 1)


def _reset_seed_generators(model, seed: int) -> None:
    """Put every layer's random state (dropout) at a value fixed by ``seed``: resumable runs."""
    import keras

    from .unet import all_layers

    for i, layer in enumerate(all_layers(model)):
        gen = getattr(layer, "seed_generator", None)
        if gen is not None and getattr(gen, "state", None) is not None:
            state = np.array([seed + i, 0], dtype=gen.state.dtype)
            gen.state.assign(keras.ops.convert_to_tensor(state, dtype=gen.state.dtype))


def _fresh_optimizer_state(model) -> None:
    """Zero the optimiser's step count and moment estimates (keep its learning rate).

    Equivalent to compiling with a new Adam, as IsoNet does every iteration, but the compiled
    training step is kept: no retracing, several seconds saved per iteration.
    """
    for variable in model.optimizer.variables:
        if "learning_rate" in variable.path:
            continue
        variable.assign(np.zeros(variable.shape, dtype=variable.dtype))


class _SubtomoPredictor:
    """Predicts the subtomograms each iteration fills with one inference network (batch norm
    folded, dropout gone; :func:`~isonet_steps.network.unet.inference_model`), built once and given the
    newly trained weights each iteration, so its compiled graph is reused.
    """

    def __init__(self, precision: str):
        self.precision = precision
        self._fn: InferenceFunction | None = None

    def __call__(self, model, originals: np.ndarray, batch_size: int) -> np.ndarray:
        from .inference import model_predict_fn, predict_cubes
        from .unet import copy_inference_weights

        if self._fn is None:
            self._fn = model_predict_fn(model, precision=self.precision)
        else:
            copy_inference_weights(model, self._fn.model)
        predicted = predict_cubes(self._fn, originals, batch_size)
        return np.stack([percentile_normalize(p) for p in predicted])


def _check_sizes(data: RefineData, settings: RefineSettings) -> None:
    factor = 2 ** settings.unet_depth
    if data.cube % factor or data.crop % factor:
        raise InputError(f"cube size {data.cube} and crop size {data.crop} must both be divisible by {factor} "
                         "(2^--unet-depth); re-extract with such sizes.")
    if data.crop < data.cube:
        raise InputError(f"crop size {data.crop} is smaller than cube size {data.cube}; re-extract with --crop-size >= "
                         "--cube-size.")


# --- noise2noise (even/odd halves): the data side ---------------------------------------------------

def _check_halves(data: RefineData, settings: RefineSettings) -> None:
    if settings.noise2noise and data.second_half is None:
        raise InputError("noise2noise training needs the subtomograms of both half tomograms (even/odd), but only one "
                         "half was given; extract the same boxes from the second half too, or train without "
                         "noise2noise.")


def _network_cubes(data: RefineData, noise2noise: bool) -> np.ndarray:
    """The subtomograms as the network sees them; noise2noise: half 1's then half 2's, each box's two
    halves scaled together (:func:`.pairs.halves_to_network`).
    """
    if not noise2noise or data.second_half is None:
        return np.stack([to_network(s) for s in data.subtomos])
    both = [halves_to_network(a, b) for a, b in zip(data.subtomos, data.second_half)]
    return np.concatenate([np.stack([h[0] for h in both]), np.stack([h[1] for h in both])])


def _cube_wedges(data: RefineData, n_cubes: int) -> list[Wedge]:
    """The wedge of every network cube (noise2noise: half 2's boxes have half 1's)."""
    wedges = data.subtomo_wedges()
    return wedges * (n_cubes // len(wedges))


def _merged_cubes(originals: np.ndarray, predictions: np.ndarray, wedges: list[Wedge], chosen: np.ndarray,
                  noise2noise: bool) -> np.ndarray:
    """Every chosen cube (box) merged with its prediction; noise2noise: the two halves of a box together.
    The other cubes stay zero: no batch draws them.
    """
    merged = np.zeros_like(originals)
    if not noise2noise:
        for i in chosen:
            merged[i] = merge_with_prediction(originals[i], predictions[i], wedge=wedges[i])
        return merged
    n = len(originals) // 2
    for i in chosen:
        merged[[i, i + n]] = merge_halves_with_predictions(originals[i], originals[i + n], predictions[i],
                                                           predictions[i + n], wedge=wedges[i])
    return merged

# ------------------------------------------------------------------------------------------------


def refine(data: RefineData, settings: RefineSettings, store: RefineStore, *, n_gpus: int = 0,
           until_iter: int | None = None, resume: bool = True,
           on_iteration: Callable[[IterationRecord], None] | None = None) -> RefineState:
    """Run (or continue) refine into ``store``; see :func:`_refine`. Keras's global dtype policy is
    set for ``settings.precision`` while it runs and restored afterwards.
    """
    import dataclasses

    from .unet import precision_policy

    settings = dataclasses.replace(settings, precision=_chosen_precision(settings, store, resume))
    with precision_policy(settings.precision):
        return _refine(data, settings, store, n_gpus=n_gpus, until_iter=until_iter, resume=resume,
                       on_iteration=on_iteration)


def _chosen_precision(settings: RefineSettings, store: RefineStore, resume: bool) -> str:
    """``auto`` continues in the precision the run started with, else picks by the hardware."""
    from .devices import resolve_precision

    if settings.precision == "auto" and resume:
        state = store.load_state()
        started = state.precision if state is not None else None
        if started in PRECISIONS and started != "auto":
            return started
    return resolve_precision(settings.precision)


@dataclass
class _RunPlan:
    """Sizes and noise schedule of one refine call, fixed before any network is built."""

    n: int
    batch_size: int
    steps: int
    schedule: list[float]
    last: int


def _plan_run(data: RefineData, settings: RefineSettings, n_gpus: int, until_iter: int | None) -> _RunPlan:
    """Refuse bad settings or data before training; the batch, steps and schedule IsoNet would use."""
    settings.validate()
    _check_sizes(data, settings)
    _check_halves(data, settings)
    n = len(data.subtomos)
    if n == 0:
        raise InputError("the subtomogram STAR lists no subtomograms; run extract first.")
    if settings.select_subtomo_number and settings.select_subtomo_number > n:
        raise InputError(f"--select-subtomo-number {settings.select_subtomo_number} exceeds the {n} subtomograms; "
                         f"choose at most {n}.")
    batch_size = settings.batch_size or default_batch_size(n_gpus)
    n_train = settings.select_subtomo_number or n
    steps = settings.steps_per_epoch or default_steps_per_epoch(n_train, batch_size)
    schedule = noise_schedule(settings.iterations, settings.noise_level, settings.noise_start_iter)
    if settings.noise2noise:  # the other half's independent noise replaces the added noise
        schedule = [0.0 for _ in schedule]
    last = settings.iterations if until_iter is None else min(int(until_iter), settings.iterations)
    return _RunPlan(n=n, batch_size=batch_size, steps=steps, schedule=schedule, last=last)


def _model_record(model, data: RefineData, settings: RefineSettings, iteration: int) -> ModelRecord:
    """What ``model``, saved after ``iteration``, was trained on, written into its file: predict checks it.
    A pretrained model's shape is its own, not the settings'.
    """
    from pathlib import Path

    from .. import __version__
    from .unet import unet_depth

    if settings.pretrained_model:
        network = {"pretrained_model": Path(settings.pretrained_model).name, "unet_depth": unet_depth(model)}
    else:
        network = {k: getattr(settings, k) for k in ("unet_depth", "filter_base", "convs_per_depth", "kernel",
                                                        "batch_norm", "dropout")}
    network["parameters"] = int(model.count_params())
    return ModelRecord(voxel_size=data.voxel_size, cube_size=data.cube, crop_size=data.crop,
                       network=network, precision=settings.precision,
                       wedges=list(dict.fromkeys(w.describe() for w in data.subtomo_wedges())),
                       noise2noise=settings.noise2noise, deconvolved=data.deconvolved,
                       subtomograms=len(data.subtomos), subtomo_digest=data.digest, iteration=iteration,
                       iterations=settings.iterations, software=__version__)


def _start(data: RefineData, settings: RefineSettings, store: RefineStore, run: _RunPlan,
           fingerprint: dict) -> RefineState:
    """Iteration 0: the initial (or pretrained) model and the state, committed."""
    import keras

    from .devices import distribution_scope
    from .unet import build_unet, load_model, save_model

    keras.utils.set_random_seed(_iteration_seed(settings.seed, 0))
    with distribution_scope():
        if settings.pretrained_model:
            model = load_model(settings.pretrained_model)
        else:
            model = build_unet(depth=settings.unet_depth, filter_base=settings.filter_base,
                               convs_per_depth=settings.convs_per_depth, kernel=settings.kernel,
                               dropout=settings.dropout, batch_norm=settings.batch_norm)
    save_model(model, store.model_path(0), _model_record(model, data, settings, 0))
    state = RefineState(completed=0, batch_size=run.batch_size, steps_per_epoch=run.steps,
                        noise_schedule=run.schedule, target_iterations=settings.iterations,
                        settings=fingerprint["settings"], data=fingerprint["data"])
    store.save_state(state)
    return state


def _resume_or_start(data: RefineData, settings: RefineSettings, store: RefineStore, run: _RunPlan, resume: bool,
                     log) -> tuple[RefineState, np.ndarray, np.ndarray | None]:
    """The state to continue from (checked against these settings and data) or a fresh iteration 0;
    with the subtomograms as the network sees them and, for a relaxed fill, the last iteration's fill.
    """
    store.prepare()
    fingerprint = {"settings": settings.fingerprint(), "data": data.fingerprint()}
    state = store.load_state() if resume else None
    if state is not None:
        _check_continuation(state, fingerprint, store)
        log.info("continuing %s after iteration %d", store.dir, state.completed)
    originals = _network_cubes(data, settings.noise2noise)

    if state is None:
        state = _start(data, settings, store, run, fingerprint)
    previous_fill = None
    if settings.fill_relaxation != 1 and state.completed >= 2:  # the next fill builds on it (iteration 3 on)
        previous_fill = store.load_fill(state.completed)
    state.noise_schedule = run.schedule
    state.target_iterations = settings.iterations
    return state, originals, previous_fill


def _model_for(iteration: int, model, store: RefineStore, settings: RefineSettings):
    """The network iteration ``iteration`` starts from: the last committed model, loaded once, then carried."""
    from .devices import distribution_scope
    from .layout import for_backend
    from .unet import compile_unet, load_model

    if model is None:
        with distribution_scope():
            model = for_backend(load_model(store.model_path(iteration - 1)))
            compile_unet(model, settings.learning_rate)
    else:
        _fresh_optimizer_state(model)  # IsoNet's fresh Adam, without recompiling and retracing
    return model


def _batch_that_fits(run: _RunPlan, state: RefineState, log) -> tuple[int, int]:
    """The planned batch and steps, or the smaller batch (with as many more steps) an earlier
    iteration fell back to on out-of-memory: the next one then does not run out of memory first.
    Read from the committed records, so a continued run picks the same as an uninterrupted one.
    """
    last = state.last
    if last is None or last.batch_size >= run.batch_size:
        return run.batch_size, run.steps
    log.info("batch size %d, %d steps per epoch: iteration %d ran out of memory at %d", last.batch_size,
             last.steps_per_epoch, last.iteration, run.batch_size)
    return last.batch_size, last.steps_per_epoch


def _commit(store: RefineStore, state: RefineState, record: IterationRecord, log) -> None:
    """The iteration's record into the state, written last so the iteration counts only once complete."""
    state.record(record)
    store.save_state(state)
    store.drop_fills_before(record.iteration)
    log.info("iteration %d done in %.1f s: loss %.4f, validation loss %.4f", record.iteration, record.seconds,
             record.loss[-1], record.val_loss[-1])


def _refine(data: RefineData, settings: RefineSettings, store: RefineStore, *, n_gpus: int = 0,
            until_iter: int | None = None, resume: bool = True,
            on_iteration: Callable[[IterationRecord], None] | None = None) -> RefineState:
    """Run (or continue) refine into ``store``; returns the state record.

    ``until_iter`` stops after that iteration (Nextflow runs one iteration per task). With
    ``resume`` a run continues after the last committed iteration in the store; a change of any
    setting that would make the continuation differ from an uninterrupted run is refused.
    """
    import keras

    from .devices import is_out_of_memory
    from .unet import save_model

    log = get_logger("refine")
    run = _plan_run(data, settings, n_gpus, until_iter)
    n, schedule = run.n, run.schedule

    state, originals, fill = _resume_or_start(data, settings, store, run, resume, log)
    model = None  # built once from the last committed model, then carried from iteration to iteration
    predictor = _SubtomoPredictor(settings.precision)
    wedges = _cube_wedges(data, len(originals))

    for iteration in range(state.completed + 1, run.last + 1):
        started = time.time()
        level = schedule[iteration]
        log.info("iteration %d/%d: noise level %.3g", iteration, settings.iterations, level)
        seed = _iteration_seed(settings.seed, iteration)
        keras.utils.set_random_seed(seed)
        rng = np.random.default_rng([settings.seed, iteration])
        chosen = (np.sort(rng.choice(n, settings.select_subtomo_number, replace=False))
                  if settings.select_subtomo_number else np.arange(n))
        model = _model_for(iteration, model, store, settings)
        batch_size, steps = _batch_that_fits(run, state, log)
        plan = PairPlan.make(chosen, batch_size, steps, rng)
        if settings.noise2noise:
            plan = plan.across_halves(n)
        drawn = np.unique(plan.cubes_drawn(settings.epochs, seed) % n)  # boxes; noise2noise: with both halves
        fill = _fill(iteration, model, originals, wedges, drawn, fill, settings, predictor, plan.batch_size, log)
        merged = _merged_cubes(originals, fill, wedges, drawn, settings.noise2noise)
        _reset_seed_generators(model, seed)
        losses, val_losses, plan = _train(model, merged, wedges, plan, data.cube, level,
                                          settings.noise_mode, seed, settings.epochs, is_out_of_memory, log,
                                          threads=data_threads(n_gpus), patience=settings.early_stop_patience)
        save_model(model, store.model_path(iteration), _model_record(model, data, settings, iteration))
        if settings.fill_relaxation != 1:  # the next iteration's fill builds on this one
            store.save_fill(iteration, fill)
        record = IterationRecord(iteration=iteration, noise_level=level, loss=losses, val_loss=val_losses,
                                 batch_size=plan.batch_size, steps_per_epoch=plan.steps_per_epoch,
                                 seconds=round(time.time() - started, 2))
        _commit(store, state, record, log)
        if on_iteration:
            on_iteration(record)
    if state.completed >= settings.iterations:
        store.copy_final(settings.iterations)
    return state


def _check_continuation(state: RefineState, fingerprint: dict, store: RefineStore) -> None:
    changed = sorted(k for k in fingerprint["settings"] if state.settings.get(k) != fingerprint["settings"][k])
    if state.data != fingerprint["data"]:
        changed.append("subtomograms")
    if changed:
        raise InputError(
            f"{store.dir}: continuing would mix settings — {', '.join(changed)} differ from the run there; "
            f"rerun with the same settings, or use --no-continue (sets the old folder aside) or a new --result-dir."
        )
    if not store.model_path(state.completed).exists():
        raise InputError(f"{store.model_path(state.completed)}: model of the last finished iteration is missing; "
                         "start over with --no-continue.")


def recalibrate_batch_norm(model, batches) -> None:
    """Set every BatchNormalization's moving statistics to their exact average over ``batches``.

    Keras keeps moving averages with momentum 0.99, which need thousands of steps to forget their
    initial value (variance 1) — far more than short runs make, and with IsoNet's small N(0, 0.02)
    initialisation the real activation variances are orders of magnitude smaller: inference-mode
    outputs (subtomogram predictions, validation, predict) then collapse to the identity. Recomputing
    the statistics in training mode with dropout switched off (as at inference) fixes both.
    """
    import keras

    from .unet import all_layers

    layers = all_layers(model)
    norms = [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms:
        return
    drops = [layer for layer in layers if isinstance(layer, keras.layers.Dropout)]
    momenta, rates = [layer.momentum for layer in norms], [layer.rate for layer in drops]
    try:
        for layer in drops:
            layer.rate = 0.0
        for k, x in enumerate(batches):
            for layer in norms:
                layer.momentum = k / (k + 1.0)  # running mean of the batch statistics
            model(x, training=True)
    finally:
        for layer, m in zip(norms, momenta):
            layer.momentum = m
        for layer, r in zip(drops, rates):
            layer.rate = r


def data_threads(n_gpus: int) -> int:
    """Threads making training pairs: one on the CPU (it shares the cores with the network), up to
    four per GPU on GPUs (a GPU step is shorter than making its 64³ pairs on one thread).
    """
    from .devices import cpu_count

    if n_gpus <= 0:
        return 1
    return max(1, min(4 * n_gpus, cpu_count() - 1))


def early_stop_reason(val_losses: Sequence[float], patience: int,
                      min_improvement: float = EARLY_STOP_MIN_IMPROVEMENT) -> str | None:
    """Why an iteration should train no more epochs (None: go on, and always with ``patience`` 0).

    It stops after ``patience`` epochs in a row that did not lower the best validation loss of this
    iteration by ``min_improvement`` of it. Only one iteration's epochs are compared: the loss jumps
    when the noise level steps up, between iterations, which therefore never triggers a stop. A loss
    that is not a number (diverged) never counts as an improvement.
    """
    if patience <= 0 or not val_losses:
        return None
    best, best_epoch, waited = float(val_losses[0]), 1, 0
    for epoch, value in enumerate(val_losses[1:], start=2):
        if value < best - min_improvement * abs(best):
            best, best_epoch, waited = float(value), epoch, 0
        else:
            waited += 1
    if waited < patience:
        return None
    return (f"validation loss {val_losses[-1]:.4g} has not improved on epoch {best_epoch}'s {best:.4g} by "
            f"{min_improvement:.0%} for {waited} epoch{'s' if waited > 1 else ''}")


def _fill(iteration: int, model, originals: np.ndarray, wedges: list[Wedge], drawn: np.ndarray,
          previous: np.ndarray | None, settings: RefineSettings, predictor: _SubtomoPredictor, batch_size: int,
          log) -> np.ndarray:
    """What iteration ``iteration`` fills the missing wedge of its cubes from, for the boxes ``drawn``
    (all of them with a relaxed fill, where each fill builds on the last): the predictions of
    ``model``, the previous iteration's network, not yet trained in this one; before any training,
    the measured part itself. Cubes not filled stay zero.
    """
    n_boxes = len(originals) // 2 if settings.noise2noise else len(originals)
    boxes = drawn if settings.fill_relaxation == 1 else np.arange(n_boxes)
    cubes = np.concatenate([boxes, boxes + n_boxes]) if settings.noise2noise else boxes
    whole = len(cubes) == len(originals)
    if iteration == 1 and not settings.pretrained_model:  # a fresh network would add nothing
        fill = np.zeros_like(originals)
        for i in cubes:
            fill[i] = percentile_normalize(measured_part(originals[i], wedge=wedges[i]))
        return fill
    log.info("iteration %d: predicting %d of %d subtomograms with the model of iteration %d", iteration,
             len(cubes), len(originals), iteration - 1)
    predicted = predictor(model, originals if whole else originals[cubes], batch_size)
    if whole:
        fill = predicted
    else:
        fill = np.zeros_like(originals)
        fill[cubes] = predicted
    return _relaxed_fill(fill, previous, iteration, settings.fill_relaxation)


def _relaxed_fill(new: np.ndarray, previous: np.ndarray | None, iteration: int, weight: float) -> np.ndarray:
    """The fill of iteration ``iteration``'s missing wedges: ``weight`` on the new predictions, the rest
    on the previous iteration's fill (from iteration 3; iteration 2 takes iteration 1's predictions
    whole). Damps the swings of the fill from one iteration to the next; 1 is IsoNet's (the new alone).
    """
    if iteration <= 2 or weight == 1:
        return new
    if previous is None:
        raise ValueError(f"the relaxed fill of iteration {iteration} needs the fill of iteration {iteration - 1}")
    # previous + weight·(new − previous), all in place in the fresh ``new``: the fill of real data is gigabytes
    new -= previous
    new *= weight
    new += previous
    return new


def _first_inputs(stream: BatchStream, plan: PairPlan, epoch: int, count: int):
    """The network inputs of ``epoch``'s first ``count`` training batches (at most the epoch's steps)."""
    return (stream.get(epoch, step)[0] for step in range(min(count, plan.steps_per_epoch)))


def _fit_epoch(model, stream: BatchStream, plan: PairPlan, epoch: int, epochs: int,
               calibration: int) -> tuple[float, float]:
    """Train one epoch, recalibrate batch norm on its first ``calibration`` batches, validate: mean losses."""
    batch_losses = []
    for step in progress(range(plan.steps_per_epoch), total=plan.steps_per_epoch,
                         desc=f"epoch {epoch + 1}/{epochs}", unit="step"):
        x, y = stream.get(epoch, step)
        out = model.train_on_batch(x, y, return_dict=True)
        batch_losses.append(float(out["loss"]))
        check_batch_loss(batch_losses[-1], epoch, step)
    recalibrate_batch_norm(model, _first_inputs(stream, plan, epoch, calibration))
    val = []
    for step in range(plan.validation_steps):
        x, y = stream.get(epoch, step, validation=True)
        out = model.test_on_batch(x, y, return_dict=True)
        val.append(float(out["loss"]))
    check_epoch_losses(batch_losses, val, epoch)
    return float(np.mean(batch_losses)), float(np.mean(val))


def _train(model, merged, wedges, plan: PairPlan, cube: int, level: float, noise_mode: str, seed: int, epochs: int,
           is_out_of_memory, log, calibration_batches: int = 8, threads: int = 1,
           quick_calibration: int = 2, patience: int = 0) -> tuple[list[float], list[float], PairPlan]:
    """Fit one iteration; on GPU out-of-memory halve the batch (twice the steps) and redo the epoch.
    Returns the losses and the plan it ended with (its batch is the one that fitted).

    Before each epoch's validation the batch-norm statistics are recalibrated on that epoch's
    first batches (``quick_calibration`` of them, ``calibration_batches`` after the last epoch), so
    validation sees the network as inference will. Running averages would lag behind the weights
    and jump when the noise level changes, making the validation curve spike for no reason. The
    last calibration starts afresh (its first batch replaces the statistics), so the saved model
    does not depend on the earlier, quicker ones. With ``patience`` the epochs stop early
    (:func:`early_stop_reason`; at least one is trained) and the epoch stopped at is calibrated
    again on ``calibration_batches``: the same statistics as had it been planned as the last.
    """
    losses: list[float] = []
    val_losses: list[float] = []
    epoch = 0
    while epoch < epochs:
        stream = BatchStream(merged, wedges, plan, cube, level, noise_mode, seed, threads=threads)
        result = None
        try:
            last = epoch == epochs - 1  # the last epoch's statistics also serve the predictions
            calibration = calibration_batches if last else quick_calibration
            result = _fit_epoch(model, stream, plan, epoch, epochs, calibration)
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled, the rest re-raised
            if not is_out_of_memory(exc) or plan.batch_size == 1:
                raise
        finally:
            stream.close()
        if result is None:  # out of memory: freed outside the handler that still held the failed attempt
            release_cached_memory()
            new_batch = max(1, plan.batch_size // 2)
            log.warning("out of memory at batch size %d: retrying epoch %d with batch size %d",
                        plan.batch_size, epoch + 1, new_batch)
            plan = PairPlan(plan.train, plan.validation, new_batch, plan.steps_per_epoch * 2, plan.validation_steps * 2)
            continue
        loss, val = result
        losses.append(loss)
        val_losses.append(val)
        log.info("epoch %d/%d: loss %.4f, validation loss %.4f", epoch + 1, epochs, losses[-1], val_losses[-1])
        check_epochs_differ(losses, val_losses)
        epoch += 1
        reason = early_stop_reason(val_losses, patience) if epoch < epochs else None
        if reason:
            log.info("early stop after epoch %d of %d: %s", epoch, epochs, reason)
            stream = BatchStream(merged, wedges, plan, cube, level, noise_mode, seed, threads=threads)
            try:
                recalibrate_batch_norm(model, _first_inputs(stream, plan, epoch - 1, calibration_batches))
            finally:
                stream.close()
            break
    return losses, val_losses, plan
