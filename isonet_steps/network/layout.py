"""Where the channel axis lives inside the network: the layout each backend's kernels run fastest in.

Keras builds the U-Net channels-last, ``(batch, z, y, x, channels)``: TensorFlow's CPU convolutions
only take that layout, and every saved model is in it. PyTorch's convolutions take channels-first
tensors, and Keras' PyTorch backend transposes every activation of a channels-last network to and
from that layout around each convolution. Measured on an H200 (filter base 64, 128³ tiles, cuDNN 9.19),
the channels-first network predicts 1.9x faster in bfloat16 and 1.6x in float32; on a CPU 1.2x.

:func:`with_data_format` rebuilds a network in the other layout with the same weights (a
convolution's kernel is stored the same way in both). The channels-first network keeps the
channels-last input and output: a ``Permute`` right after the input and one before the residual
sum, free for a single-channel volume, so the data pipeline, training, prediction and
batch-norm recalibration see the same arrays whatever the layout.
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

__all__ = ["DATA_FORMATS", "data_format_of", "preferred_data_format", "with_data_format", "for_backend"]

DATA_FORMATS = ("channels_last", "channels_first")
_TO_FIRST, _TO_LAST = "to_channels_first", "to_channels_last"
_RESIDUAL = "residual"  # the U-Net's last layer: the correction added to the untouched input


def data_format_of(model: keras.Model) -> str:
    """``"channels_first"`` for a network :func:`with_data_format` rebuilt so, else ``"channels_last"``."""
    return "channels_first" if any(layer.name == _TO_FIRST for layer in model.layers) else "channels_last"


def preferred_data_format() -> str:
    """The faster layout for the Keras backend in use: channels-first on PyTorch, channels-last elsewhere."""
    import keras

    return "channels_first" if keras.backend.backend() == "torch" else "channels_last"


def for_backend(model: keras.Model) -> keras.Model:
    """``model`` in :func:`preferred_data_format`: the same object when it already is, or when it is
    not a U-Net this module can rebuild (a foreign pretrained model then runs as it was saved).
    """
    try:
        return with_data_format(model, preferred_data_format())
    except ValueError as exc:
        from ..io.log import get_logger

        get_logger().debug("network kept in its own layout: %s", exc)
        return model


def with_data_format(model: keras.Model, data_format: str) -> keras.Model:
    """The same network and weights computing in ``data_format``; ``model`` itself when it already does.

    Input and output stay channels-last. The new network is not compiled (refine compiles it).
    """
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data_format must be one of {DATA_FORMATS}, got {data_format!r}")
    if data_format_of(model) == data_format:
        return model
    config = json.loads(json.dumps(model.get_config()))  # plain lists and dicts, safe to edit
    first = data_format == "channels_first"
    for layer in config["layers"]:
        layer.pop("build_config", None)  # input shapes of the old layout; rebuilt from the graph
        options = layer["config"]
        if "data_format" in options:
            options["data_format"] = data_format
        if layer["class_name"] in ("Concatenate", "BatchNormalization"):
            options["axis"] = 1 if first else -1
    if first:
        _add_permutes(config)
    else:
        _remove_permutes(config)
    from .devices import distribution_scope

    with distribution_scope():
        rebuilt = model.__class__.from_config(config)
    rebuilt.set_weights(model.get_weights())  # the same layers in the same order; Permute has none
    return rebuilt


def _tensor_refs(node) -> list[dict]:
    """Every serialised tensor (``__keras_tensor__``) inside a layer's inbound nodes: the dicts themselves, to edit."""
    if isinstance(node, dict):
        if node.get("class_name") == "__keras_tensor__":
            return [node]
        return [ref for value in node.values() for ref in _tensor_refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _tensor_refs(item)]
    return []


def _permute_layer(name: str, dims: list[int], source_ref: dict, dtype) -> dict:
    ref = copy.deepcopy(source_ref)
    return {"module": "keras.layers", "class_name": "Permute", "registered_name": None, "name": name,
            "config": {"name": name, "trainable": True, "dtype": dtype, "dims": dims},
            "inbound_nodes": [{"args": [ref], "kwargs": {}}]}


def _add_permutes(config: dict) -> None:
    """Input -> Permute -> body; body's last output -> Permute -> residual sum with the input."""
    layers = config["layers"]
    input_name = config["input_layers"][0][0] if isinstance(config["input_layers"][0], list) \
        else config["input_layers"][0]
    by_name = {layer["name"]: layer for layer in layers}
    if _RESIDUAL not in by_name:
        raise ValueError("with_data_format needs the U-Net's residual output layer (named 'residual')")
    input_refs = [ref for layer in layers if layer["name"] != _RESIDUAL
                  for ref in _tensor_refs(layer["inbound_nodes"]) if ref["config"]["keras_history"][0] == input_name]
    residual_refs = _tensor_refs(by_name[_RESIDUAL]["inbound_nodes"])
    body_refs = [ref for ref in residual_refs if ref["config"]["keras_history"][0] != input_name]
    if not input_refs or len(body_refs) != 1:
        raise ValueError("with_data_format expects the input to feed the body and the residual sum")
    dtype = by_name[_RESIDUAL]["config"]["dtype"]
    to_first = _permute_layer(_TO_FIRST, [4, 1, 2, 3], input_refs[0], dtype)
    to_last = _permute_layer(_TO_LAST, [2, 3, 4, 1], body_refs[0], dtype)
    for ref in input_refs:
        ref["config"]["keras_history"] = [_TO_FIRST, 0, 0]
    body_refs[0]["config"]["keras_history"] = [_TO_LAST, 0, 0]
    position = layers.index(by_name[input_name]) + 1
    layers.insert(position, to_first)
    layers.insert(layers.index(by_name[_RESIDUAL]), to_last)


def _remove_permutes(config: dict) -> None:
    """Undo :func:`_add_permutes`: every reference to a Permute reads that Permute's own input."""
    layers = config["layers"]
    sources = {layer["name"]: _tensor_refs(layer["inbound_nodes"])[0]["config"]["keras_history"]
               for layer in layers if layer["name"] in (_TO_FIRST, _TO_LAST)}
    config["layers"] = [layer for layer in layers if layer["name"] not in sources]
    for layer in config["layers"]:
        for ref in _tensor_refs(layer["inbound_nodes"]):
            history = ref["config"]["keras_history"]
            if history[0] in sources:
                ref["config"]["keras_history"] = list(sources[history[0]])
