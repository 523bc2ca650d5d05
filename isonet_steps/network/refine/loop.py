"""Iterative self-supervised training of the missing-wedge-correction network (reference §6).

Iteration n trains on pairs built from the subtomograms with their missing wedge filled by the
network of iteration n−1 (iteration 1: left empty), starting from that network's weights with a
fresh Adam optimiser (as IsoNet does). The fill is predicted when iteration n starts, and only for
the subtomograms its batches draw (:mod:`.fill`): IsoNet predicts every subtomogram after each
iteration, the last included, though a short iteration (or ``--select-subtomo-number``) trains on a
part of them. Each finished iteration is committed to the result folder (model, state; with a
relaxed fill the fill too), so a rerun continues after the last finished iteration and gives the
same final model as an uninterrupted run. With ``noise2noise`` the boxes come from two half
tomograms (even/odd), a :class:`~isonet_steps.network.cubes.Cubes` with a second half, and each
half's pairs take their targets from the other half (:mod:`..pairs`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...core.wedge import Wedge
from ...io.checkpoint import RefineStore
from ...io.log import get_logger
from ...io.refine_state import IterationRecord, RefineState
from ..cubes import Cubes
from ..pairs import PairPlan
from .data import RefineData
from .fill import SubtomoPredictor, WedgeFill, merged_cubes
from .settings import RefineSettings
from .start import RunPlan, chosen_precision, iteration_seed, model_record, plan_run, resume_or_start
from .train import IterationPlan, data_threads, train_iteration

__all__ = ["refine"]


def refine(data: RefineData, settings: RefineSettings, store: RefineStore, *, n_gpus: int = 0,
           until_iter: int | None = None, resume: bool = True,
           on_iteration: Callable[[IterationRecord], None] | None = None) -> RefineState:
    """Run (or continue) refine into ``store``; see :func:`_refine`. Keras's global dtype policy is
    set for ``settings.precision`` while it runs and restored afterwards.
    """
    import dataclasses

    from ..devices import precision_policy

    settings = dataclasses.replace(settings, precision=chosen_precision(settings, store, resume))
    with precision_policy(settings.precision):
        return _refine(data, settings, store, n_gpus=n_gpus, until_iter=until_iter, resume=resume,
                       on_iteration=on_iteration)


@dataclass
class _Refinement:
    """One refine call: what it carries from iteration to iteration (the network is built once)."""

    data: RefineData
    settings: RefineSettings
    store: RefineStore
    run: RunPlan
    state: RefineState
    originals: Cubes
    wedges: list[Wedge]
    fill: WedgeFill
    threads: int
    log: logging.Logger
    model: Any = None  # the keras.Model, once the first iteration has loaded it

    def prepare(self, iteration: int) -> IterationPlan:
        """Load (or carry on) the network and plan iteration ``iteration``: its pairs drawn, their cubes
        filled by the network so far and merged.
        """
        import keras

        settings, seed = self.settings, iteration_seed(self.settings.seed, iteration)
        keras.utils.set_random_seed(seed)
        rng = np.random.default_rng([settings.seed, iteration])
        chosen = (np.sort(rng.choice(self.run.n, settings.select_subtomo_number, replace=False))
                  if settings.select_subtomo_number else np.arange(self.run.n))
        self.model = _model_for(iteration, self.model, self.store, settings)
        batch_size, steps = _batch_that_fits(self.run, self.state, self.log)
        pairs = PairPlan.make(chosen, batch_size, steps, rng)
        if settings.noise2noise:
            pairs = pairs.across_halves()
        drawn = pairs.boxes_drawn(settings.epochs, seed)  # noise2noise: both halves of each box
        fill = self.fill.update(iteration, self.model, drawn, pairs.batch_size)
        merged = merged_cubes(self.originals, fill, self.wedges, drawn)
        _reset_seed_generators(self.model, seed)
        return IterationPlan(merged=merged, wedges=self.wedges, pairs=pairs, cube=self.data.cube,
                             noise_level=self.run.schedule[iteration], noise_mode=settings.noise_mode, seed=seed,
                             epochs=settings.epochs, threads=self.threads, patience=settings.early_stop_patience)

    def iterate(self, iteration: int) -> IterationRecord:
        """Train, save and commit iteration ``iteration``."""
        from ..unet import save_model

        started = time.time()
        level = self.run.schedule[iteration]
        self.log.info("iteration %d/%d: noise level %.3g", iteration, self.settings.iterations, level)
        plan = self.prepare(iteration)
        losses, val_losses, pairs = train_iteration(self.model, plan, self.log)
        save_model(self.model, self.store.model_path(iteration),
                   model_record(self.model, self.data, self.settings, iteration))
        if self.settings.fill_relaxation != 1 and self.fill.current is not None:  # the next fill builds on it
            self.store.save_fill(iteration, self.fill.current.stacked())
        record = IterationRecord(iteration=iteration, noise_level=level, loss=losses, val_loss=val_losses,
                                 batch_size=pairs.batch_size, steps_per_epoch=pairs.steps_per_epoch,
                                 seconds=round(time.time() - started, 2))
        _commit(self.store, self.state, record, self.log)
        return record


def _refine(data: RefineData, settings: RefineSettings, store: RefineStore, *, n_gpus: int = 0,
            until_iter: int | None = None, resume: bool = True,
            on_iteration: Callable[[IterationRecord], None] | None = None) -> RefineState:
    """Run (or continue) refine into ``store``; returns the state record.

    ``until_iter`` stops after that iteration (Nextflow runs one iteration per task). With
    ``resume`` a run continues after the last committed iteration in the store; a change of any
    setting that would make the continuation differ from an uninterrupted run is refused.
    """
    log = get_logger("refine")
    run = plan_run(data, settings, n_gpus, until_iter)
    state, originals, fill = resume_or_start(data, settings, store, run, resume, log)
    wedges = data.subtomo_wedges()
    wedge_fill = WedgeFill(originals, wedges, settings, SubtomoPredictor(settings.precision), log, current=fill)
    refinement = _Refinement(data=data, settings=settings, store=store, run=run, state=state, originals=originals,
                             wedges=wedges, fill=wedge_fill, threads=data_threads(n_gpus), log=log)
    for iteration in range(state.completed + 1, run.last + 1):
        record = refinement.iterate(iteration)
        if on_iteration:
            on_iteration(record)
    if state.completed >= settings.iterations:
        store.copy_final(settings.iterations)
    return state


def _model_for(iteration: int, model, store: RefineStore, settings: RefineSettings):
    """The network iteration ``iteration`` starts from: the last committed model, loaded once, then carried."""
    from ..devices import distribution_scope
    from ..layout import for_backend
    from ..unet import compile_unet, load_model

    if model is None:
        with distribution_scope():
            model = for_backend(load_model(store.model_path(iteration - 1)))
            compile_unet(model, settings.learning_rate)
    else:
        _fresh_optimizer_state(model)  # IsoNet's fresh Adam, without recompiling and retracing
    return model


def _batch_that_fits(run: RunPlan, state: RefineState, log) -> tuple[int, int]:
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


def _reset_seed_generators(model, seed: int) -> None:
    """Put every layer's random state (dropout) at a value fixed by ``seed``: resumable runs."""
    import keras

    from ..unet import all_layers

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
