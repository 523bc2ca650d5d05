"""Training one refine iteration: its epochs, the out-of-memory fallback, batch-norm recalibration and
the early stop. Everything an iteration trains from comes in one :class:`IterationPlan`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...core.wedge import Wedge
from ...io.log import progress
from ..cubes import Cubes
from ..devices import is_out_of_memory, release_cached_memory
from ..pairs import BatchStream, PairPlan
from ..watch import check_batch_loss, check_epoch_losses, check_epochs_differ

__all__ = ["IterationPlan", "train_iteration", "recalibrate_batch_norm", "data_threads", "early_stop_reason",
           "EARLY_STOP_MIN_IMPROVEMENT"]

#: Early stopping counts an epoch as an improvement only when it lowers the iteration's best validation loss
#: by this fraction of it. The validation loss is the mean of a few batches (10 % of an epoch's steps); its
#: epoch-to-epoch spread was 1-3 % with 2 batches (benchmarks/quality.py, benchmarks/NOTES.md) and shrinks
#: with more, so a smaller gain is sampling noise that would keep a flat iteration training. One constant, not a
#: parameter: a larger margin only stops sooner, which the patience already controls.
EARLY_STOP_MIN_IMPROVEMENT = 0.01


@dataclass(frozen=True)
class IterationPlan:
    """What one iteration trains on: its merged cubes (with their wedges), its pairs, and how batches are made."""

    merged: Cubes
    wedges: list[Wedge]
    pairs: PairPlan
    cube: int
    noise_level: float
    noise_mode: str
    seed: int
    epochs: int
    threads: int = 1  # threads making the batches (:func:`data_threads`)
    patience: int = 0  # early stop after this many epochs without improvement; 0: every epoch

    def stream(self) -> BatchStream:
        """The batches of this plan, made ahead in background threads; close it after use."""
        return BatchStream(self.merged, self.wedges, self.pairs, self.cube, self.noise_level, self.noise_mode,
                           self.seed, threads=self.threads)

    def with_half_batch(self) -> IterationPlan:
        """The same pairs in batches half as large, twice as many steps: an epoch as long in pairs."""
        p = self.pairs
        smaller = PairPlan(p.train, p.validation, max(1, p.batch_size // 2), p.steps_per_epoch * 2,
                           p.validation_steps * 2)
        return dataclasses.replace(self, pairs=smaller)


def train_iteration(model, plan: IterationPlan, log, calibration_batches: int = 8,
                    quick_calibration: int = 2) -> tuple[list[float], list[float], PairPlan]:
    """Fit one iteration; on GPU out-of-memory halve the batch (twice the steps) and redo the epoch.
    Returns the losses and the pairs plan it ended with (its batch is the one that fitted).

    Before each epoch's validation the batch-norm statistics are recalibrated on that epoch's
    first batches (``quick_calibration`` of them, ``calibration_batches`` after the last epoch), so
    validation sees the network as inference will. Running averages would lag behind the weights
    and jump when the noise level changes, making the validation curve spike for no reason. The
    last calibration starts afresh (its first batch replaces the statistics), so the saved model
    does not depend on the earlier, quicker ones. With ``plan.patience`` the epochs stop early
    (:func:`early_stop_reason`; at least one is trained) and the epoch stopped at is calibrated
    again on ``calibration_batches``: the same statistics as had it been planned as the last.
    """
    losses: list[float] = []
    val_losses: list[float] = []
    epoch, epochs = 0, plan.epochs
    while epoch < epochs:
        last = epoch == epochs - 1  # the last epoch's statistics also serve the predictions
        result = _epoch_or_out_of_memory(model, plan, epoch, calibration_batches if last else quick_calibration)
        if result is None:  # out of memory: freed outside the handler that still held the failed attempt
            release_cached_memory()
            smaller = plan.with_half_batch()
            log.warning("out of memory at batch size %d: retrying epoch %d with batch size %d",
                        plan.pairs.batch_size, epoch + 1, smaller.pairs.batch_size)
            plan = smaller
            continue
        losses.append(result[0])
        val_losses.append(result[1])
        log.info("epoch %d/%d: loss %.4f, validation loss %.4f", epoch + 1, epochs, losses[-1], val_losses[-1])
        check_epochs_differ(losses, val_losses)
        epoch += 1
        reason = early_stop_reason(val_losses, plan.patience) if epoch < epochs else None
        if reason:
            log.info("early stop after epoch %d of %d: %s", epoch, epochs, reason)
            stream = plan.stream()
            try:
                recalibrate_batch_norm(model, _first_inputs(stream, plan.pairs, epoch - 1, calibration_batches))
            finally:
                stream.close()
            break
    return losses, val_losses, plan.pairs


def _epoch_or_out_of_memory(model, plan: IterationPlan, epoch: int, calibration: int) -> tuple[float, float] | None:
    """One epoch's mean losses (:func:`_fit_epoch`), or None when it ran out of memory at a batch above 1."""
    stream = plan.stream()
    try:
        return _fit_epoch(model, stream, plan.pairs, epoch, plan.epochs, calibration)
    except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled, the rest re-raised
        if not is_out_of_memory(exc) or plan.pairs.batch_size == 1:
            raise
        return None
    finally:
        stream.close()


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


def _first_inputs(stream: BatchStream, plan: PairPlan, epoch: int, count: int):
    """The network inputs of ``epoch``'s first ``count`` training batches (at most the epoch's steps)."""
    return (stream.get(epoch, step)[0] for step in range(min(count, plan.steps_per_epoch)))


def recalibrate_batch_norm(model, batches) -> None:
    """Set every BatchNormalization's moving statistics to their exact average over ``batches``.

    Keras keeps moving averages with momentum 0.99, which need thousands of steps to forget their
    initial value (variance 1) — far more than short runs make, and with IsoNet's small N(0, 0.02)
    initialisation the real activation variances are orders of magnitude smaller: inference-mode
    outputs (subtomogram predictions, validation, predict) then collapse to the identity. Recomputing
    the statistics in training mode with dropout switched off (as at inference) fixes both.
    """
    import keras

    from ..unet import all_layers

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
    from ..devices import cpu_count

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
