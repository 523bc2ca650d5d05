"""Early stopping inside a refine iteration (issue #13): the criterion, the epochs it trains, resume, plumbing.

The validation losses that decide are controlled: the real epoch (training, batch-norm calibration,
validation) runs, and only the validation loss it reports is replaced by a chosen sequence.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from test_refine import _data, _settings

from isonet_steps.io.checkpoint import RefineStore
from isonet_steps.io.errors import InputError
from isonet_steps.network.refine import RefineSettings, early_stop_reason, refine
from isonet_steps.network.refine import train as train_module


def _weights(path):
    from isonet_steps.network.unet import load_model

    return load_model(path).get_weights()


@pytest.fixture
def val_sequence(monkeypatch):
    """Make every iteration's epochs report the validation losses of ``set(values)`` (epoch by epoch)."""
    original = train_module._fit_epoch
    chosen: list[float] = []

    def fit_epoch(model, stream, plan, epoch, epochs, calibration):
        loss, _ = original(model, stream, plan, epoch, epochs, calibration)
        return loss, chosen[epoch]

    def choose(values: list[float]) -> None:
        chosen[:] = values

    monkeypatch.setattr(train_module, "_fit_epoch", fit_epoch)
    return choose


# --- the criterion ------------------------------------------------------------------------------------------

def test_reason_counts_epochs_without_a_relative_gain_on_the_best():
    assert early_stop_reason([1.0, 0.9, 0.8], patience=1) is None  # improving
    assert early_stop_reason([1.0, 1.2], patience=1) is not None  # worse
    assert early_stop_reason([1.0, 0.995], patience=1) is not None  # better, but by less than 1 %
    assert early_stop_reason([1.0, 0.98], patience=1) is None  # by more than 1 %
    assert early_stop_reason([1.0, 1.1, 1.05], patience=2) is not None  # two epochs over the best of epoch 1
    assert early_stop_reason([1.0, 1.1, 0.9], patience=2) is None  # the second one beat it: counter reset
    assert early_stop_reason([1.0, 1.1], patience=2) is None  # one epoch is not yet two
    assert early_stop_reason([1.0, 1.1, 1.05], patience=2, min_improvement=0.0) is not None
    assert early_stop_reason([1.0, float("nan")], patience=1) is not None  # diverged: no improvement
    reason = early_stop_reason([0.5, 0.4, 0.41, 0.42], patience=2)
    assert reason is not None and "epoch 2" in reason and "0.4" in reason and "2 epochs" in reason


def test_reason_never_stops_when_off_or_before_a_first_epoch():
    assert early_stop_reason([1.0, 2.0, 3.0, 4.0], patience=0) is None
    assert early_stop_reason([], patience=1) is None
    assert early_stop_reason([float("nan")], patience=1) is None  # one epoch alone has nothing to wait for


# --- refine -------------------------------------------------------------------------------------------------

def test_iteration_stops_after_patience_epochs_without_improvement(tmp_path, val_sequence, caplog):
    val_sequence([1.0, 0.8, 0.81, 0.9, 0.5, 0.4])  # best at epoch 2, then two epochs without a gain
    with caplog.at_level(logging.INFO, logger="isonet"):
        state = refine(_data(), _settings(iterations=2, epochs=6, early_stop_patience=2), RefineStore(tmp_path / "r"))
    for record in state.iterations:  # each iteration judged on its own epochs
        assert record.val_loss == [1.0, 0.8, 0.81, 0.9]
        assert len(record.loss) == 4 and np.isfinite(record.loss).all()
    assert state.completed == 2 and (tmp_path / "r" / "model_final.keras").exists()
    stops = [r.getMessage() for r in caplog.records if "early stop" in r.getMessage()]
    assert len(stops) == 2 and "after epoch 4 of 6" in stops[0] and "epoch 2's 0.8" in stops[0]


def test_improving_iterations_train_every_epoch(tmp_path, val_sequence):
    val_sequence([1.0, 0.9, 0.8, 0.7])
    state = refine(_data(), _settings(iterations=1, epochs=4, early_stop_patience=1), RefineStore(tmp_path / "r"))
    assert [len(r.loss) for r in state.iterations] == [4]


def test_at_least_one_epoch_even_with_a_diverged_first_epoch(tmp_path, val_sequence):
    val_sequence([float("nan")] * 3)
    state = refine(_data(), _settings(iterations=1, epochs=3, early_stop_patience=1), RefineStore(tmp_path / "r"))
    assert len(state.iterations[0].loss) == 2  # the first epoch, then one without improvement
    single = refine(_data(), _settings(iterations=1, epochs=1, early_stop_patience=1), RefineStore(tmp_path / "s"))
    assert len(single.iterations[0].loss) == 1


def test_patience_off_trains_every_epoch_and_leaves_a_run_unchanged(tmp_path, val_sequence):
    """Patience 0 trains all epochs whatever the losses; a patience that never triggers gives the same run
    to the last bit (losses, model) as patience 0: the option adds nothing to a run it does not stop.
    """
    val_sequence([1.0, 2.0, 3.0])
    runs = {}
    for patience in (0, 3):
        store = RefineStore(tmp_path / f"p{patience}")
        runs[patience] = (refine(_data(), _settings(iterations=2, epochs=3, early_stop_patience=patience,
                                                    precision="float32"), store), _weights(store.final_model_path))
    (off, w_off), (never, w_never) = runs[0], runs[3]
    assert [len(r.loss) for r in off.iterations] == [3, 3]
    assert [r.loss for r in off.iterations] == [r.loss for r in never.iterations]
    for a, b in zip(w_off, w_never):
        np.testing.assert_array_equal(a, b)
    assert "early_stop_patience" not in off.settings  # result folders from before the option continue


def test_stopped_iteration_equals_one_planned_that_short(tmp_path, val_sequence):
    """Stopping after epoch 2 of 4 leaves the model that 2 planned epochs give: the epoch stopped at gets
    the last epoch's full batch-norm calibration, and the next iteration starts from the same network.
    """
    val_sequence([1.0, 1.0, 1.0, 1.0])
    stopped_store, planned_store = RefineStore(tmp_path / "stopped"), RefineStore(tmp_path / "planned")
    stopped = refine(_data(), _settings(iterations=2, epochs=4, early_stop_patience=1, precision="float32"),
                     stopped_store)
    planned = refine(_data(), _settings(iterations=2, epochs=2, precision="float32"), planned_store)
    assert [len(r.loss) for r in stopped.iterations] == [2, 2]
    assert [r.loss for r in stopped.iterations] == [r.loss for r in planned.iterations]
    for a, b in zip(_weights(stopped_store.final_model_path), _weights(planned_store.final_model_path)):
        np.testing.assert_array_equal(a, b)


def test_continue_after_an_early_stopped_iteration_equals_uninterrupted(tmp_path, val_sequence):
    val_sequence([1.0, 0.8, 0.9, 0.95])
    settings = _settings(iterations=2, epochs=4, early_stop_patience=2, precision="float32")
    whole, parts = RefineStore(tmp_path / "whole"), RefineStore(tmp_path / "parts")
    a = refine(_data(), settings, whole)
    refine(_data(), settings, parts, until_iter=1)
    b = refine(_data(), settings, parts)
    assert [len(r.loss) for r in a.iterations] == [len(r.loss) for r in b.iterations] == [4, 4]
    for wa, wb in zip(_weights(whole.final_model_path), _weights(parts.final_model_path)):
        np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-5)
    # another patience would have trained other epochs: continuing with it is refused
    with pytest.raises(InputError, match="early_stop_patience"):
        refine(_data(), _settings(iterations=3, epochs=4, early_stop_patience=1, precision="float32"), parts)


# --- plumbing -----------------------------------------------------------------------------------------------

def test_negative_patience_is_refused():
    with pytest.raises(InputError, match="--early-stop-patience -1"):
        RefineSettings(early_stop_patience=-1).validate()


def _capture_refine(monkeypatch) -> list[RefineSettings]:
    """Record the settings refine is called with, instead of training (and leave the devices alone)."""
    from isonet_steps.network import devices
    from isonet_steps.steps import refine as refine_step

    seen: list[RefineSettings] = []
    monkeypatch.setattr(refine_step, "run_refine", lambda star, result_dir, settings, **kw: seen.append(settings))
    monkeypatch.setattr(devices, "configure", lambda *a, **kw: [])
    return seen


def test_the_refine_option_reaches_refine_settings(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from isonet_steps.cli.refine import command

    seen = _capture_refine(monkeypatch)
    for args, expected in (([], 0), (["--early-stop-patience", "3"], 3), (["--early_stop_patience", "2"], 2)):
        result = CliRunner().invoke(command, [str(tmp_path / "subtomo.star"), *args])
        assert result.exit_code == 0, result.output
        assert seen[-1].early_stop_patience == expected


def test_isonet_run_passes_the_parameter_to_refine(monkeypatch, tmp_path):
    from isonet_steps.cli.run import command as run_command
    from isonet_steps.io.params import BY_NAME
    from isonet_steps.workflow.pipeline import Pipeline

    assert BY_NAME["early_stop_patience"].steps == ("refine",)  # a change redoes refine (and what follows)
    option = next(o for o in run_command.params if o.name == "early_stop_patience")
    assert "--early-stop-patience" in option.opts and option.default is None  # None: the table's default
    seen = _capture_refine(monkeypatch)
    for params, expected in (({}, 0), ({"early_stop_patience": 2}, 2)):
        Pipeline(str(tmp_path), tmp_path / "run", params)._refine()
        assert seen[-1].early_stop_patience == expected
