"""The U-Net: shapes, the residual connection, saving, parameter counts, the torch backend."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from isonet_steps.io.errors import InputError  # noqa: E402
from isonet_steps.network.fold import copy_inference_weights, inference_model  # noqa: E402
from isonet_steps.network.unet import build_unet, compile_unet, load_model, save_model, unet_depth  # noqa: E402


def _zero_convolutions(model: keras.Model) -> None:
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv3D, keras.layers.Conv3DTranspose)):
            layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])


@pytest.mark.parametrize(
    ("depth", "pool", "shape"),
    [(2, False, (12, 20, 28)), (3, False, (8, 24, 40)), (2, True, (20, 12, 36))],
)
def test_output_shape_matches_odd_multiples_of_the_downsampling(depth, pool, shape):
    model = build_unet(depth=depth, filter_base=4, pool=pool)
    x = np.random.default_rng(0).normal(size=(2, *shape, 1)).astype(np.float32)
    y = model.predict_on_batch(x)
    assert y.shape == x.shape
    assert np.isfinite(y).all()
    assert unet_depth(model) == depth


def test_architecture_follows_the_reference():
    model = build_unet(depth=2, filter_base=4, convs_per_depth=3)
    names = [layer.name for layer in model.layers]
    assert len(names) == len(set(names))
    first = model.get_layer("enc0_conv0")
    assert first.filters == 4 and first.padding == "same"
    assert isinstance(first.kernel_initializer, keras.initializers.RandomNormal)
    assert model.get_layer("enc1_conv0").filters == 8
    assert tuple(model.get_layer("enc0_down").strides) == (2, 2, 2)
    # bottleneck: convs_per_depth - 2 blocks of filter_base * 2**depth, then a linear conv, no BN
    assert model.get_layer("bottom_conv0").filters == 16
    assert model.get_layer("bottom_linear").filters == 8
    assert not any(n.startswith("bottom") and n.endswith(("_bn", "_drop")) for n in names)
    assert model.get_layer("enc0_conv0_act").negative_slope == pytest.approx(0.05)
    assert model.get_layer("enc0_conv0_drop").rate == pytest.approx(0.3)
    assert model.get_layer("dec1_up").filters == 8
    assert model.get_layer("output_conv").filters == 1
    assert isinstance(model.get_layer("residual"), keras.layers.Add)
    # decoder: [upsampled, skip] concatenated then activated
    concat = model.get_layer("dec0_concat")
    assert [t.shape[-1] for t in concat.input] == [4, 4]


def test_options_remove_batch_norm_and_dropout():
    model = build_unet(depth=2, filter_base=4, batch_norm=False, dropout=0.0)
    names = [layer.name for layer in model.layers]
    assert not any(n.endswith(("_bn", "_drop")) for n in names)


def test_zero_convolutions_make_the_identity():
    model = build_unet(depth=2, filter_base=4)
    _zero_convolutions(model)
    x = np.random.default_rng(1).normal(size=(1, 16, 12, 20, 1)).astype(np.float32)
    np.testing.assert_allclose(model.predict_on_batch(x), x, atol=1e-6)
    # the correction branch is added to the input: a bias on the last conv shifts the output
    kernel, bias = model.get_layer("output_conv").get_weights()
    model.get_layer("output_conv").set_weights([kernel, bias + 0.5])
    np.testing.assert_allclose(model.predict_on_batch(x), x + 0.5, atol=1e-6)


def test_keras_file_round_trip(tmp_path):
    model = build_unet(depth=2, filter_base=4)
    rng = np.random.default_rng(2)
    for layer in model.layers:  # move BN statistics and weights off their initial values
        layer.set_weights([w + rng.normal(scale=0.1, size=w.shape).astype(w.dtype) for w in layer.get_weights()])
    x = rng.normal(size=(2, 16, 16, 16, 1)).astype(np.float32)
    path = save_model(model, tmp_path / "sub" / "model_iter01.keras")
    assert path.exists()
    assert [p.name for p in path.parent.iterdir()] == ["model_iter01.keras"]  # no temporary left over
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # usual permissions, not mkstemp's private 0600
    again = load_model(path)
    np.testing.assert_allclose(again.predict_on_batch(x), model.predict_on_batch(x), rtol=1e-5, atol=1e-6)
    assert unet_depth(again) == 2


def test_compile_sets_adam_l1_and_mse(tmp_path):
    model = compile_unet(build_unet(depth=2, filter_base=4), 1e-3)
    assert model.loss == "mae"
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    x = np.random.default_rng(3).normal(size=(2, 16, 16, 16, 1)).astype(np.float32)
    loss, mse = model.train_on_batch(x, x * 0.5)
    assert np.isfinite(loss) and np.isfinite(mse) and mse >= 0
    compiled = load_model(save_model(model, tmp_path / "trained.keras"), compile=True)
    assert compiled.loss == "mae"
    np.testing.assert_allclose(compiled.predict_on_batch(x), model.predict_on_batch(x), rtol=1e-5, atol=1e-6)


def test_bad_model_files_give_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_model(tmp_path / "missing.keras")
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a zip archive")
    with pytest.raises(InputError, match="cannot load the model"):
        load_model(junk)
    with pytest.raises(InputError, match=r"\.keras"):
        load_model(tmp_path)  # a folder


def test_default_network_has_about_27_million_parameters():
    # reference §7: ≈ 27.33 M for filter_base 64, depth 3 (BN moving statistics included), as Keras counts them
    assert abs(build_unet(filter_base=64, depth=3).count_params() - 27.33e6) < 0.01e6
    assert abs(build_unet(filter_base=16, depth=3).count_params() - 1.71e6) < 0.01e6


def _randomise(model: keras.Model, seed: int) -> None:
    """He-scaled convolutions and batch-norm statistics far from their initial values."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if isinstance(layer, keras.layers.BatchNormalization):
            n = weights[0].shape[0]
            layer.set_weights([rng.uniform(0.5, 2.0, n), rng.normal(0, 0.3, n), rng.normal(0, 0.3, n),
                               rng.uniform(0.05, 3.0, n)])
        elif weights:
            fan_in = np.prod(weights[0].shape[:-1])
            layer.set_weights([rng.normal(scale=np.sqrt(2.0 / fan_in), size=w.shape).astype(np.float32)
                               if i == 0 else rng.normal(0, 0.1, w.shape).astype(np.float32)
                               for i, w in enumerate(weights)])


@pytest.mark.parametrize(
    "kwargs",
    [dict(depth=2, filter_base=4), dict(depth=1, filter_base=3, convs_per_depth=2, pool=True),
     dict(depth=2, filter_base=4, batch_norm=False, dropout=0.0)],
)
def test_inference_model_folds_batch_norm_exactly(kwargs):
    model = build_unet(**kwargs)
    _randomise(model, 3)
    x = np.random.default_rng(4).normal(size=(2, 12, 16, 20, 1)).astype(np.float32)
    expected = model.predict_on_batch(x)
    folded = inference_model(model)
    kinds = {type(layer).__name__ for layer in folded.layers}
    assert not kinds & {"BatchNormalization", "Dropout"}
    removed = (keras.layers.BatchNormalization, keras.layers.Dropout)
    n_removed = sum(isinstance(layer, removed) for layer in model.layers)
    assert len(folded.layers) == len(model.layers) - n_removed
    assert np.abs(expected - x).std() > 0.1  # the network really changes its input
    np.testing.assert_allclose(folded.predict_on_batch(x), expected, atol=2e-5 * np.abs(expected).max())


@pytest.mark.bfloat16
def test_inference_weights_follow_the_trained_model_and_the_precision():
    model = build_unet(depth=2, filter_base=4)
    _randomise(model, 5)
    folded = inference_model(model, compute_dtype="mixed_bfloat16")
    assert folded.get_layer("enc0_conv0").compute_dtype == "bfloat16"
    assert folded.get_layer("output_conv").compute_dtype == "float32"
    assert folded.get_layer("residual").compute_dtype == "float32"
    _randomise(model, 6)  # "the next iteration": new weights, same architecture
    copy_inference_weights(model, folded)
    exact = inference_model(model, compute_dtype="float32")
    assert exact.get_layer("enc0_conv0").compute_dtype == "float32"
    x = np.random.default_rng(7).normal(size=(2, 16, 16, 16, 1)).astype(np.float32)
    reference = model.predict_on_batch(x)
    np.testing.assert_allclose(exact.predict_on_batch(x), reference, atol=2e-5 * np.abs(reference).max())
    correction = reference - x
    error = folded.predict_on_batch(x) - reference
    # bfloat16 (8-bit mantissa) must show, and the new weights must rule: stale weights miss the
    # correction by ~140 % of its spread, bfloat16 units by ~2 %, and CPUs without them (TensorFlow's
    # Eigen kernels, e.g. AVX2-only or TF_ENABLE_ONEDNN_OPTS=0) by ~7 %, wherever the arithmetic is done.
    assert 1e-3 * correction.std() < error.std() < 0.25 * correction.std()


_TORCH_SCRIPT = textwrap.dedent(
    """
    import numpy as np, keras
    from isonet_steps.network.fold import inference_model
    from isonet_steps.network.unet import build_unet, compile_unet, load_model, save_model
    assert keras.backend.backend() == "torch", keras.backend.backend()
    model = build_unet(depth=2, filter_base=4)
    x = np.random.default_rng(0).normal(size=(2, 12, 16, 20, 1)).astype("float32")
    y = model.predict_on_batch(x)
    assert y.shape == x.shape, y.shape
    compile_unet(model, 4e-4)
    loss = model.train_on_batch(x, x)[0]
    assert np.isfinite(loss)
    save_model(model, "{path}")
    np.testing.assert_allclose(load_model("{path}").predict_on_batch(x), model.predict_on_batch(x), atol=1e-6)
    folded = inference_model(model)
    np.testing.assert_allclose(folded.predict_on_batch(x), model.predict_on_batch(x), atol=1e-4)
    print("torch ok")
    """
)


@pytest.mark.torch
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")
def test_same_network_runs_on_the_torch_backend(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="torch", CUDA_VISIBLE_DEVICES="-1")
    script = _TORCH_SCRIPT.format(path=tmp_path / "torch_model.keras")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "torch ok" in result.stdout
