"""The network's layout: channels-first for PyTorch's kernels, channels-last on disk and for TensorFlow."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from isonet_steps.network.fold import inference_model  # noqa: E402
from isonet_steps.network.layout import data_format_of, for_backend, with_data_format  # noqa: E402
from isonet_steps.network.unet import build_unet, load_model, save_model  # noqa: E402


def _randomised(**kwargs) -> keras.Model:
    """A small U-Net whose batch norms are not the identity (a fresh one would hide a wrong axis)."""
    model = build_unet(depth=2, filter_base=4, **kwargs)
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 2, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 2, var.shape)])
        elif isinstance(layer, (keras.layers.Conv3D, keras.layers.Conv3DTranspose)):
            kernel, bias = layer.get_weights()
            layer.set_weights([rng.normal(0, 0.1, kernel.shape), rng.normal(0, 0.05, bias.shape)])
    return model


_TORCH_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    import numpy as np, keras
    from test_layout import _randomised
    from isonet_steps.network.inference import model_predict_fn
    from isonet_steps.network.layout import data_format_of, with_data_format
    from isonet_steps.network.unet import compile_unet
    assert keras.backend.backend() == "torch", keras.backend.backend()
    model = _randomised(dropout=0.0)
    x = np.random.default_rng(4).normal(size=(2, 16, 16, 24, 1)).astype(np.float32)
    expected = np.asarray(model.predict_on_batch(x))
    assert np.abs(expected - x).std() > 0.05  # the network really changes its input
    tol = 1e-4 * np.abs(expected).max()
    first = with_data_format(model, "channels_first")
    np.testing.assert_allclose(np.asarray(first.predict_on_batch(x)), expected, atol=tol)
    folded = inference_model(first)  # batch norm folds into channels-first convolutions too
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    np.testing.assert_allclose(np.asarray(folded.predict_on_batch(x)), expected, atol=tol)
    fn = model_predict_fn(model)  # predict's network is channels-first on torch
    assert data_format_of(fn.model) == "channels_first"
    np.testing.assert_allclose(fn(x), expected, atol=tol)
    last = compile_unet(with_data_format(first, "channels_last"), 1e-3)
    first = compile_unet(first, 1e-3)
    y = (0.5 * x).astype(np.float32)
    for _ in range(2):  # training steps agree too, so refine may train channels-first
        a, b = last.train_on_batch(x, y), first.train_on_batch(x, y)
    np.testing.assert_allclose(b, a, rtol=1e-4)
    print("channels-first ok")
    """
)


@pytest.mark.torch
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")
def test_channels_first_network_computes_the_same_on_torch():
    """Numbers on PyTorch, the backend that runs channels-first (TensorFlow's CPU kernels take channels-last only)."""
    env = dict(os.environ, KERAS_BACKEND="torch", CUDA_VISIBLE_DEVICES="-1")
    script = _TORCH_SCRIPT.format(tests=str(Path(__file__).parent))
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).parents[1])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "channels-first ok" in result.stdout


def test_channels_first_graph_has_its_axes_and_keeps_the_weights():
    model = _randomised(dropout=0.0)
    first = with_data_format(model, "channels_first")
    assert data_format_of(model) == "channels_last" and data_format_of(first) == "channels_first"
    convs = [layer for layer in first.layers if isinstance(layer, keras.layers.Conv3D)]
    assert convs and all(layer.data_format == "channels_first" for layer in convs)
    assert first.get_layer("enc0_conv0_bn").axis == 1 and first.get_layer("dec0_concat").axis == 1
    assert first.layers[1].name == "to_channels_first"
    body, skip = first.get_layer("residual").input  # the sum is taken channels-last, with the untouched input
    assert body is first.get_layer("to_channels_last").output and skip is first.input
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), first.get_weights()))
    folded = inference_model(first)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)


def test_layout_round_trip_restores_the_graph_and_weights():
    model = _randomised()
    back = with_data_format(with_data_format(model, "channels_first"), "channels_last")
    assert [layer.name for layer in back.layers] == [layer.name for layer in model.layers]
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), back.get_weights()))
    assert with_data_format(model, "channels_last") is model
    with pytest.raises(ValueError, match="data_format"):
        with_data_format(model, "NCDHW")


def test_models_are_saved_channels_last(tmp_path):
    model = _randomised()
    path = save_model(with_data_format(model, "channels_first"), tmp_path / "model.keras")
    loaded = load_model(path)
    assert data_format_of(loaded) == "channels_last"
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), loaded.get_weights()))


def test_each_backend_gets_its_faster_layout():
    model = build_unet(depth=1, filter_base=2, convs_per_depth=2)
    expected = "channels_first" if keras.backend.backend() == "torch" else "channels_last"
    assert data_format_of(for_backend(model)) == expected


def test_a_network_without_the_residual_sum_stays_as_it_was():
    inputs = keras.Input(shape=(None, None, None, 1))
    foreign = keras.Model(inputs, keras.layers.Conv3D(1, 3, padding="same", name="conv")(inputs))
    with pytest.raises(ValueError, match="residual"):
        with_data_format(foreign, "channels_first")
    assert for_backend(foreign) is foreign
