"""Refine: commits every iteration, continues after an interruption to the same model, refuses mixes."""

import json

import numpy as np
import pytest
from scipy import ndimage

from isonet_steps.io.checkpoint import RefineStore
from isonet_steps.io.errors import InputError
from isonet_steps.network.refine import RefineData, RefineSettings, refine


def _data(n=6, crop=24, cube=16, seed=0):
    rng = np.random.default_rng(seed)
    cubes = np.stack([ndimage.gaussian_filter(rng.standard_normal((crop,) * 3), 1.5)
                      for _ in range(n)]).astype(np.float32)
    tilts = np.array([[-60.0, 60.0]] * n)
    return RefineData(subtomos=cubes, tilts=tilts, names=[f"s{i}.mrc" for i in range(n)], cube=cube)


def _settings(**kw):
    base = dict(iterations=3, epochs=1, steps_per_epoch=2, batch_size=2, filter_base=4, unet_depth=2,
                convs_per_depth=2, dropout=0.3, noise_level=(0.1,), noise_start_iter=(2,), seed=3)
    base.update(kw)
    return RefineSettings(**base)


def _weights(path):
    from isonet_steps.network.unet import load_model

    return load_model(path).get_weights()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    store = RefineStore(tmp_path_factory.mktemp("a") / "results")
    state = refine(_data(), _settings(), store)
    return store, state


def test_refine_writes_models_state_and_final(uninterrupted):
    store, state = uninterrupted
    for it in range(4):
        assert store.model_path(it).exists()
    assert store.final_model_path.exists()
    saved = json.loads(store.state_path.read_text())
    assert saved["completed"] == 3
    assert [r["noise_level"] for r in saved["iterations"]] == [0.0, 0.1, 0.1]
    assert all(len(r["loss"]) == 1 and np.isfinite(r["loss"][0]) for r in saved["iterations"])
    assert not list(store.dir.rglob("*.npy"))  # IsoNet's fill: the models alone continue a run


def test_each_iteration_predicts_only_the_subtomograms_its_batches_draw(tmp_path, monkeypatch):
    import isonet_steps.network.pairs as pairs_module
    import isonet_steps.network.refine.loop as loop_module

    predicted, filled, read = [], [], []

    class Counting(loop_module.SubtomoPredictor):
        def __call__(self, model, originals, batch_size):
            predicted.append(len(originals))
            return super().__call__(model, originals, batch_size)

    def merged_spy(originals, predictions, wedges, chosen):
        filled.append((set(chosen.tolist()), predictions))
        read.append(set())
        return merge(originals, predictions, wedges, chosen)

    def get_spy(stream, epoch, step, validation=False):
        read[-1].update(stream.plan.batch_pairs(epoch, step, validation=validation, seed=stream.seed)[:, 0].tolist())
        return get(stream, epoch, step, validation)

    merge, get = loop_module.merged_cubes, pairs_module.BatchStream.get
    monkeypatch.setattr(loop_module, "SubtomoPredictor", Counting)
    monkeypatch.setattr(loop_module, "merged_cubes", merged_spy)
    monkeypatch.setattr(pairs_module.BatchStream, "get", get_spy)
    refine(_data(), _settings(), RefineStore(tmp_path / "results"))
    assert [boxes for boxes, _ in filled] == read  # exactly the cubes the batches read were filled
    assert predicted == [len(boxes) for boxes in read[1:]]  # by the last network; after the last, none
    assert min(predicted) < 6  # 2 steps of 2 pairs and 1 validation batch draw fewer than the 6 cubes
    for boxes, fill in filled[1:]:
        others = [i for i in range(6) if i not in boxes]
        assert fill.second is None  # one tomogram: one half
        assert np.abs(fill.first[sorted(boxes)]).min(axis=(1, 2, 3)).max() > 0 and not fill.first[others].any()


def test_continue_after_interruption_equals_uninterrupted(uninterrupted, tmp_path):
    store_a, _ = uninterrupted
    store_b = RefineStore(tmp_path / "results")
    refine(_data(), _settings(), store_b, until_iter=1)
    assert json.loads(store_b.state_path.read_text())["completed"] == 1
    assert not store_b.model_path(2).exists()
    # a crash in the middle of iteration 2 leaves iteration 1 committed
    import isonet_steps.network.refine.loop as loop_module

    original = loop_module.train_iteration

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash")

    loop_module.train_iteration = crash
    try:
        with pytest.raises(RuntimeError):
            refine(_data(), _settings(), store_b)
    finally:
        loop_module.train_iteration = original
    assert json.loads(store_b.state_path.read_text())["completed"] == 1
    stale = store_b.dir / "checkpoint" / "predictions_iter01.npy"  # what 0.1.0 kept; nothing reads it now
    np.save(stale, np.zeros((6, 24, 24, 24), dtype=np.float32))
    state = refine(_data(), _settings(), store_b)
    assert state.completed == 3 and not stale.exists()
    for wa, wb in zip(_weights(store_a.final_model_path), _weights(store_b.final_model_path)):
        np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-5)


def test_changed_setting_is_refused(uninterrupted, tmp_path):
    store = RefineStore(tmp_path / "results")
    refine(_data(), _settings(iterations=1), store)
    with pytest.raises(InputError, match="learning_rate"):
        refine(_data(), _settings(iterations=2, learning_rate=1e-3), store)
    with pytest.raises(InputError, match="subtomograms"):
        refine(_data(seed=1, n=5), _settings(iterations=2), store)
    # more iterations with the same settings is a continuation
    assert refine(_data(), _settings(iterations=2), store).completed == 2


def test_bad_sizes_are_refused(tmp_path):
    with pytest.raises(InputError, match="divisible by 4"):
        refine(_data(crop=26, cube=16), _settings(), RefineStore(tmp_path / "r"))


def test_recalibrated_batch_norm_makes_inference_match_training_statistics():
    import keras

    from isonet_steps.network.refine import recalibrate_batch_norm
    from isonet_steps.network.unet import all_layers, build_unet

    keras.utils.set_random_seed(0)
    model = build_unet(depth=2, filter_base=4, convs_per_depth=2, dropout=0.3)
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((2, 16, 16, 16, 1)).astype("float32") for _ in range(4)]
    x = batches[0]
    residual = lambda training: np.asarray(model(x, training=training)) - x  # noqa: E731
    before = residual(False).std()
    recalibrate_batch_norm(model, batches)
    after = residual(False).std()
    # with the initial moving variance of 1 the tiny N(0, 0.02) activations are crushed at inference
    assert after > 20 * before
    drops = [layer for layer in all_layers(model) if isinstance(layer, keras.layers.Dropout)]
    assert all(layer.rate == 0.3 for layer in drops)  # restored
    for layer in drops:
        layer.rate = 0.0
    train_mode = np.asarray(model(x, training=True)) - x
    assert np.corrcoef(train_mode.ravel(), residual(False).ravel())[0, 1] > 0.9


@pytest.mark.bfloat16
def test_mixed_precision_refine_trains_saves_and_restores_the_policy(tmp_path):
    import keras

    from isonet_steps.network.unet import load_model

    store = RefineStore(tmp_path / "mixed")
    state = refine(_data(), _settings(iterations=1, precision="mixed"), store)
    assert state.completed == 1 and np.isfinite(state.iterations[0].loss[0])
    assert keras.config.dtype_policy().name == "float32"  # restored for whatever runs next
    model = load_model(store.final_model_path)
    assert model.get_layer("enc0_conv0").dtype_policy.name == "mixed_bfloat16"
    x = np.random.default_rng(0).standard_normal((1, 16, 16, 16, 1)).astype("float32")
    y = np.asarray(model.predict_on_batch(x))
    assert y.dtype == np.float32
    # the float32 output layers add the input unrounded: a bfloat16 sum would leave the low 16 bits 0
    low_bits_zero = (y.view(np.uint32) & 0xFFFF) == 0
    assert low_bits_zero.mean() < 0.1


@pytest.mark.bfloat16
def test_auto_precision_follows_the_hardware_and_then_the_run(tmp_path, monkeypatch):
    from isonet_steps.network import devices

    store = RefineStore(tmp_path / "auto")
    monkeypatch.setattr(devices, "bfloat16_is_fast", lambda: False)
    state = refine(_data(), _settings(iterations=2, precision="auto"), store, until_iter=1)
    assert state.settings["precision"] == "float32"
    # the same run continued where bfloat16 is fast: auto keeps the arithmetic it started with
    monkeypatch.setattr(devices, "bfloat16_is_fast", lambda: True)
    state = refine(_data(), _settings(iterations=2, precision="auto"), store)
    assert state.completed == 2 and state.settings["precision"] == "float32"
    # an explicit change of arithmetic would mix two runs: refused
    with pytest.raises(InputError, match="precision"):
        refine(_data(), _settings(iterations=3, precision="mixed"), store)
    # a new run picks mixed on bfloat16 hardware
    fresh = refine(_data(), _settings(iterations=1, precision="auto"), RefineStore(tmp_path / "fresh"))
    assert fresh.settings["precision"] == "mixed"


def test_validation_calibration_leaves_the_saved_model_alone(tmp_path, monkeypatch):
    """The quick batch-norm calibration before each validation changes what validation reports,
    not the model: the last epoch's calibration starts afresh and dropout draws nothing meanwhile.
    """
    import functools

    from isonet_steps.network.refine import loop as loop_module
    from isonet_steps.network.unet import load_model

    original = loop_module.train_iteration
    states, weights = [], []
    for quick in (0, 2):
        monkeypatch.setattr(loop_module, "train_iteration", functools.partial(original, quick_calibration=quick))
        store = RefineStore(tmp_path / f"quick{quick}")
        states.append(refine(_data(), _settings(iterations=1, epochs=3, precision="float32"), store))
        weights.append(load_model(store.final_model_path).get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
    assert states[0].iterations[0].loss == states[1].iterations[0].loss
    # earlier epochs validated with other statistics; the last one with the same
    val0, val2 = states[0].iterations[0].val_loss, states[1].iterations[0].val_loss
    assert val0[-1] == val2[-1] and val0[:-1] != val2[:-1]


class OutOfMemoryError(RuntimeError):
    """Named as PyTorch's: how the refine loop recognises a GPU out-of-memory (with TF's ResourceExhaustedError)."""


def _memory_of_one_pair(monkeypatch) -> list[int]:
    """Make every epoch at a batch above 1 run out of memory, as on a GPU too small; record the batches tried."""
    import isonet_steps.network.refine.train as train_module

    tried = []
    original = train_module._fit_epoch

    def fit_epoch(model, stream, plan, *args, **kwargs):
        tried.append(plan.batch_size)
        if plan.batch_size > 1:
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 16.00 GiB")
        return original(model, stream, plan, *args, **kwargs)

    monkeypatch.setattr(train_module, "_fit_epoch", fit_epoch)
    return tried


def test_out_of_memory_halves_the_batch_once_for_the_whole_run(tmp_path, monkeypatch):
    tried = _memory_of_one_pair(monkeypatch)
    settings = _settings(iterations=2)
    state = refine(_data(), settings, RefineStore(tmp_path / "a"))
    assert tried == [2, 1, 1]  # iteration 1 falls back; iteration 2 starts at the batch that fitted
    records = state.iterations
    assert [r.iteration for r in records] == [1, 2]
    assert [(r.batch_size, r.steps_per_epoch) for r in records] == [(1, 4)] * 2  # as many pairs per epoch
    assert all(np.isfinite(r.loss[0]) for r in records)
    # continued after iteration 1, the run reads the fallback from the state and ends with the same model
    tried.clear()
    store_b = RefineStore(tmp_path / "b")
    refine(_data(), settings, store_b, until_iter=1)
    refine(_data(), settings, store_b)
    assert tried == [2, 1, 1]
    for wa, wb in zip(_weights(RefineStore(tmp_path / "a").final_model_path), _weights(store_b.final_model_path)):
        np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-5)


def test_fill_relaxation_mixes_new_predictions_into_the_previous_fill_and_resumes(tmp_path, monkeypatch):
    import isonet_steps.network.refine.loop as loop_module

    class Numbered:
        """Predicts 1.0 everywhere on its first call, 2.0 on the second, ...: each fill's origin is visible."""

        calls = 0

        def __init__(self, precision):
            pass

        def __call__(self, model, originals, batch_size):
            Numbered.calls += 1
            return np.full(originals.shape, float(Numbered.calls), dtype=np.float32)

    monkeypatch.setattr(loop_module, "SubtomoPredictor", Numbered)
    store = RefineStore(tmp_path / "results")
    settings = _settings(fill_relaxation=0.5)
    refine(_data(), settings, store, until_iter=2)
    np.testing.assert_allclose(np.load(store.fill_path(2)), 1.0)  # iteration 2 takes iteration 1's predictions
    refine(_data(), settings, store)  # continues from the stored fill
    fill = np.load(store.fill_path(3))
    assert fill.dtype == np.float32 and fill.shape == (6, 24, 24, 24)  # every cube: each fill builds on the last
    np.testing.assert_allclose(fill, 0.5 * 2 + 0.5 * 1)
    assert not store.fill_path(2).exists()
    with pytest.raises(InputError, match="fill_relaxation"):
        refine(_data(), _settings(fill_relaxation=0.25, iterations=4), store)


def test_fill_relaxation_must_be_a_weight():
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(InputError, match="--fill-relaxation"):
            _settings(fill_relaxation=bad).validate()
    assert "fill_relaxation" not in _settings().fingerprint()  # IsoNet's fill: older runs continue
    assert _settings(fill_relaxation=0.5).fingerprint()["fill_relaxation"] == 0.5
