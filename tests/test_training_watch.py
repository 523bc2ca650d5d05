"""Training watches itself (issue #25): a NaN or never-changing loss stops the iteration in one line.

The run folder keeps the last good iteration's model and state, and a rerun continues from there.
The bad losses are injected into a real run: the network's own ``train_on_batch`` runs and only
the loss it reports is replaced from iteration 2 on.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_refine_cli import subtomo_star  # noqa: F401 - the fixture: six smooth 24³ subtomograms

from isonet_steps.io.checkpoint import RefineStore
from isonet_steps.io.errors import InputError
from isonet_steps.network.refine import RefineSettings
from isonet_steps.network.refine import loop as loop_module
from isonet_steps.network.refine import train as train_module
from isonet_steps.network.watch import TrainingStopped, check_batch_loss, check_epoch_losses, check_epochs_differ


def test_the_checks_stop_on_nan_inf_and_constant_losses_only():
    check_batch_loss(0.3, 0, 0)
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(TrainingStopped, match="learning rate"):
            check_batch_loss(bad, 2, 5)
    check_epoch_losses([0.3, 0.3, 0.29], [0.31], 0)  # two equal batches happen
    check_epoch_losses([0.3, 0.3], [0.0], 0)  # too few batches to tell
    with pytest.raises(TrainingStopped, match="stayed exactly 0 for all 4 steps of epoch 3"):
        check_epoch_losses([0.0] * 4, [0.0], 2)
    with pytest.raises(TrainingStopped, match="validation loss became nan"):
        check_epoch_losses([0.3, 0.2, 0.1], [0.2, math.nan], 0)
    check_epochs_differ([0.3], [0.2])
    check_epochs_differ([0.3, 0.3], [0.2, 0.19])
    with pytest.raises(TrainingStopped, match="over epochs 1 and 2"):
        check_epochs_differ([0.3, 0.3], [0.2, 0.2])
    assert issubclass(TrainingStopped, InputError)  # one line, exit 2, from every command


class _FlatModel:
    """A network whose every training step reports the same loss (all it needs for an epoch: no layers)."""

    layers: list = []

    def __init__(self):
        self.steps = 0

    def train_on_batch(self, x, y, return_dict=False):
        self.steps += 1
        return {"loss": 0.125}

    def test_on_batch(self, x, y, return_dict=False):
        return {"loss": 0.125}


class _Stream:
    def get(self, epoch, step, validation=False):
        return np.zeros((1, 8, 8, 8, 1), np.float32), np.zeros((1, 8, 8, 8, 1), np.float32)


def test_an_epoch_whose_loss_never_changes_stops_after_it():
    from types import SimpleNamespace

    model = _FlatModel()
    plan = SimpleNamespace(steps_per_epoch=4, validation_steps=1)
    with pytest.raises(TrainingStopped, match="stayed exactly 0.125 for all 4 steps of epoch 2"):
        train_module._fit_epoch(model, _Stream(), plan, 1, 3, calibration=0)
    assert model.steps == 4


def _settings(iterations: int) -> RefineSettings:
    return RefineSettings(iterations=iterations, epochs=1, steps_per_epoch=3, batch_size=2, filter_base=4,
                          unet_depth=2, convs_per_depth=2, noise_level=(0.1,), noise_start_iter=(5,), seed=3)


@pytest.fixture
def poison(monkeypatch):
    """``poison(loss)``: from iteration 2 on, every training batch reports ``loss``."""

    def set_loss(loss: float) -> None:
        real = loop_module._model_for

        def model_for(iteration, model, store, settings):
            model = real(iteration, model, store, settings)
            if iteration >= 2:
                train = model.train_on_batch

                def train_on_batch(x, y, return_dict=False):
                    out = train(x, y, return_dict=True)
                    return {**out, "loss": loss}

                model.train_on_batch = train_on_batch
            return model

        monkeypatch.setattr(loop_module, "_model_for", model_for)

    return set_loss


def test_a_nan_loss_stops_keeps_the_last_good_iteration_and_a_rerun_continues(subtomo_star, tmp_path,  # noqa: F811
                                                                             poison, monkeypatch):
    """A constant loss takes the same way out (the checks above); one real run shows it (it is minutes on 2 cores)."""
    from isonet_steps.steps.refine import run_refine

    folder = tmp_path / "refine"
    poison(math.nan)
    with pytest.raises(TrainingStopped) as err:
        run_refine(subtomo_star, folder, _settings(2))
    line = str(err.value)
    for word in ["loss became nan", "--learning-rate", "iteration 2", "model_iter01.keras",
                 "rerun continues from iteration 2"]:
        assert word in line, line
    store = RefineStore(folder)
    assert store.load_state().completed == 1
    assert store.model_path(1).is_file() and not store.model_path(2).exists()
    assert "refine stopped in iteration 2" in store.log_path.read_text()
    monkeypatch.undo()  # the cause fixed: the same command continues
    state = run_refine(subtomo_star, folder, _settings(2))[0]
    assert state.completed == 2 and [r.iteration for r in state.iterations] == [1, 2]
