"""refine_state.json as a typed record: round trip, files of the code before it, and the files it refuses."""

import json
import math

import pytest

from isonet_steps.io.checkpoint import RefineStore
from isonet_steps.io.errors import InputError
from isonet_steps.io.refine_state import STATE_VERSION, IterationRecord, RefineState, load_refine_state


def _state() -> RefineState:
    records = [IterationRecord(iteration=i, noise_level=0.1 * (i - 1), loss=[0.5 / i, 0.4 / i],
                               val_loss=[0.6 / i, 0.45 / i], batch_size=4, steps_per_epoch=3, seconds=1.5 * i)
               for i in (1, 2)]
    return RefineState(completed=2, batch_size=4, steps_per_epoch=3, noise_schedule=[0.0, 0.0, 0.1, 0.1],
                       target_iterations=3, settings={"epochs": 2, "precision": "float32", "noise_level": [0.1]},
                       data={"names": ["a.mrc", "b.mrc"], "cube": 16, "crop": 24, "tilts": [[-60.0, 60.0]] * 2},
                       iterations=records)


def _old_file(target: bool = True) -> dict:
    """A state as the code before RefineState wrote it: a plain dict, ``version`` added on saving."""
    state = {"version": 1, "completed": 1, "batch_size": 2, "steps_per_epoch": 5,
             "noise_schedule": [0.0, 0.0, 0.05], "target_iterations": 2,
             "settings": {"epochs": 1, "precision": "mixed", "seed": 3},
             "data": {"names": ["s0.mrc"], "cube": 16, "crop": 24, "tilts": [[-60.0, 60.0]]},
             "iterations": [{"iteration": 1, "noise_level": 0.0, "loss": [0.31], "val_loss": [0.35],
                             "batch_size": 2, "steps_per_epoch": 5, "seconds": 12.25}]}
    if not target:  # iteration-0 files, and files from before the report, did not have it
        del state["target_iterations"]
    return state


def test_round_trip_through_the_store(tmp_path):
    store = RefineStore(tmp_path)
    state = _state()
    store.save_state(state)
    written = json.loads(store.state_path.read_text())
    assert written["version"] == STATE_VERSION
    assert written["iterations"][1] == {"iteration": 2, "noise_level": 0.1, "loss": [0.25, 0.2],
                                        "val_loss": [0.3, 0.225], "batch_size": 4, "steps_per_epoch": 3,
                                        "seconds": 3.0}
    assert store.load_state() == state
    assert RefineState.from_json(state.to_json()) == state


def test_reads_the_file_the_old_code_wrote(tmp_path):
    path = tmp_path / "refine_state.json"
    path.write_text(json.dumps(_old_file(), indent=2, sort_keys=True))
    state = load_refine_state(path)
    assert state.completed == 1 and state.target_iterations == 2 and state.batch_size == 2
    assert state.precision == "mixed" and state.data["names"] == ["s0.mrc"]
    assert state.last == IterationRecord(iteration=1, noise_level=0.0, loss=[0.31], val_loss=[0.35], batch_size=2,
                                         steps_per_epoch=5, seconds=12.25)
    # written back, the same keys and values as before (the report and the tests read them)
    assert state.to_json() == _old_file()


def test_target_iterations_missing_comes_from_the_schedule(tmp_path):
    path = tmp_path / "refine_state.json"
    path.write_text(json.dumps(_old_file(target=False)))
    assert load_refine_state(path).target_iterations == 2


def test_record_replaces_a_redone_iteration_and_later_ones():
    state = _state()
    again = IterationRecord(iteration=1, noise_level=0.0, loss=[0.9], val_loss=[0.8], batch_size=2,
                            steps_per_epoch=6, seconds=2.0)
    state.record(again)
    assert state.iterations == [again] and state.completed == 1


def test_a_diverged_loss_is_written_as_null_and_read_as_nan(tmp_path):
    store = RefineStore(tmp_path)
    state = _state()
    state.iterations[0].loss[0] = math.nan
    store.save_state(state)  # NaN is not JSON: the state must still be committed
    assert json.loads(store.state_path.read_text())["iterations"][0]["loss"][0] is None
    assert math.isnan(store.load_state().iterations[0].loss[0])


@pytest.mark.parametrize("text, problem", [
    ("{not json", "unreadable refine state"),
    ("[1, 2]", "malformed refine state (the state is list"),
    (json.dumps({k: v for k, v in _old_file().items() if k != "completed"}), "has no 'completed'"),
    (json.dumps({k: v for k, v in _old_file().items() if k != "version"}), "has no 'version'"),
    (json.dumps(dict(_old_file(), completed="2")), "completed is '2', not an integer"),
    (json.dumps(dict(_old_file(), iterations=[{"iteration": 1}])), "iterations[0] has no 'noise_level'"),
    (json.dumps(dict(_old_file(), settings=[1])), "settings is list, not an object"),
])
def test_malformed_file_is_one_line_naming_file_and_fix(tmp_path, text, problem):
    path = tmp_path / "refine_state.json"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        RefineStore(tmp_path).load_state()
    message = str(err.value)
    assert message.startswith(f"{path}: ") and problem in message and "\n" not in message
    assert message.endswith("start over with --no-continue or a new --result-dir.")


def test_newer_version_asks_for_a_newer_isonet_nf(tmp_path):
    path = tmp_path / "refine_state.json"
    path.write_text(json.dumps(dict(_old_file(), version=STATE_VERSION + 1, something_new=[1])))
    with pytest.raises(InputError) as err:
        load_refine_state(path)
    message = str(err.value)
    assert message.startswith(f"{path}: refine state version {STATE_VERSION + 1} was written by a newer isonet-nf")
    assert "update isonet-nf" in message and "\n" not in message


def test_no_state_yet_is_none(tmp_path):
    assert RefineStore(tmp_path / "fresh").load_state() is None
