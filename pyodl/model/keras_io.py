"""Keras 3 <-> :class:`pyodl.model.architecture.Model`: what the exporter reads and the golden model runs.

Only layers and options the C library computes exactly as Keras does are accepted; anything else is
refused with a :class:`~pyodl.model.architecture.ModelError` naming every layer and option at fault at
once. Dropout and SpatialDropout1D are imported as the identity, and say so (:attr:`Model.notes`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pyodl.model.architecture import PARAM_KINDS, Architecture, Kind, LayerSpec, Model, ModelError
from pyodl.model.optimizer import Optimizer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@contextlib.contextmanager
def _native_stderr_quiet() -> Iterator[None]:
    """TensorFlow's C++ start-up lines (absl's "All log messages before absl::InitializeLog()", oneDNN's
    notice) are written to file descriptor 2 while it loads, whatever TF_CPP_MIN_LOG_LEVEL says: they are
    caught aside and shown only if the import fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as aside:
        os.dup2(aside.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            aside.seek(0)
            sys.stderr.write(aside.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


with _native_stderr_quiet():
    import keras
    import tensorflow as tf

# Keras's "triggered tf.function retracing" warnings are about TensorFlow's speed, not the user's run.
tf.get_logger().setLevel("ERROR")

_NO_EXTRAS = ("kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
              "bias_constraint")


def _refuse(layer: Any, what: str) -> ModelError:
    return ModelError(f"layer '{layer.name}' ({type(layer).__name__}): {what}")


def _single(value: Any) -> Any:
    return value[0] if isinstance(value, (list, tuple)) else value


@keras.saving.register_keras_serializable(package="pyodl")
class InferenceBatchNorm(keras.layers.Layer):
    """BatchNormalization as the device runs it: the moving statistics fixed (``inv_std`` = 1 / sqrt(var +
    eps)), gamma and beta trainable, computed as TensorFlow's batch_normalization does. Keras's own layer
    cannot be trained this way: called in training mode it normalises with the batch's statistics, which a
    device accumulating one sample at a time never has."""

    def build(self, input_shape: Any) -> None:
        c = int(input_shape[-1])
        self.gamma = self.add_weight(shape=(c,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(c,), initializer="zeros", name="beta")
        self.mean = self.add_weight(shape=(c,), initializer="zeros", name="mean", trainable=False)
        self.inv_std = self.add_weight(shape=(c,), initializer="ones", name="inv_std", trainable=False)

    def call(self, x: Any) -> Any:
        inv = self.inv_std * self.gamma
        return x * inv + (self.beta - self.mean * inv)


def set_layer_params(layer: Any, w: np.ndarray, b: np.ndarray) -> None:
    """(weights, bias) of pyodl's description into a Keras layer (gamma, beta for a BatchNormalization;
    a layer without bias has a bias of shape (0,))."""
    if isinstance(layer, InferenceBatchNorm):
        layer.gamma.assign(w)
        layer.beta.assign(b)
    else:
        layer.set_weights([w, b] if getattr(layer, "use_bias", True) else [w])


def layer_params(layer: Any) -> tuple[np.ndarray, np.ndarray]:
    weights = layer.get_weights()
    if getattr(layer, "use_bias", True):  # BatchNormalization: gamma and beta
        return np.asarray(weights[0]), np.asarray(weights[1])
    return np.asarray(weights[0]), np.zeros(0, np.float32)


# Keras 3's string activation "leaky_relu" (keras.activations.leaky_relu) has this negative slope.
KERAS_LEAKY_SLOPE = 0.2


def _activation(layer: Any) -> str:
    name = keras.activations.serialize(layer.activation)
    name = name if isinstance(name, str) else name.get("config", name.get("class_name", str(name)))
    if name == "linear":
        return "none"
    if name in ("relu", "softmax", "relu6", "leaky_relu", "tanh", "sigmoid"):
        return name
    raise _refuse(layer, f"activation '{name}' is not supported (use relu, relu6, leaky_relu, tanh, sigmoid, "
                         "softmax or none)")


def _check_common(layer: Any, config: dict[str, Any]) -> None:
    for key in _NO_EXTRAS:
        if config.get(key) is not None:
            raise _refuse(layer, f"{key} is not supported (on-device SGD applies no regularizer or constraint)")
    if config.get("lora_rank"):
        raise _refuse(layer, "LoRA (lora_rank) is not supported")
    if config.get("data_format", "channels_last") != "channels_last":
        raise _refuse(layer, f"data_format='{config['data_format']}' is not supported (use channels_last)")


DROPOUT_NOTE = ("layer '{name}' ({kind}, rate {rate:g}): the identity on the device and in the golden model; "
                "on-device training runs without dropout, since a per-sample dropout mask would need a random "
                "generator the TensorFlow reference reproduces bit for bit")


def _window_of(config: dict[str, Any]) -> dict[str, Any]:
    """A Keras convolution's kernel size, strides, dilation and padding, as LayerSpec fields."""
    return {"size": _single(config["kernel_size"]), "stride": _single(config["strides"]),
            "dilation": _single(config["dilation_rate"]), "padding": config["padding"]}


def _weighted(kind: Kind, layer: Any, config: dict[str, Any], units: int, **window: Any) -> LayerSpec:
    """A Conv1D, DepthwiseConv1D or Dense: its fused activation (Keras's leaky_relu slope) and bias."""
    act = _activation(layer)
    return LayerSpec(kind, layer.name, units=units, activation=act, use_bias=config["use_bias"],
                     alpha=KERAS_LEAKY_SLOPE if act == "leaky_relu" else 0.0, **window)


SEPARABLE_NOTE = ("layer '{name}' (SeparableConv1D): runs as '{name}_depthwise' (DepthwiseConv1D, no bias) and "
                  "'{name}_pointwise' (Conv1D, kernel 1), two parameter layers, which is how Keras computes it")


def _separable(layer: Any, notes: list[str]) -> list[tuple[LayerSpec, tuple[np.ndarray, np.ndarray]]]:
    """A SeparableConv1D as the two layers it is: a DepthwiseConv1D without bias, then a 1x1 Conv1D."""
    config = layer.get_config()
    for key in ("depthwise_regularizer", "pointwise_regularizer", "depthwise_constraint", "pointwise_constraint"):
        if config.get(key) is not None:
            raise _refuse(layer, f"{key} is not supported (on-device SGD applies no regularizer or constraint)")
    _check_common(layer, config)
    name = layer.name
    weights = [np.asarray(w, np.float32) for w in layer.get_weights()]
    depthwise = LayerSpec(Kind.DEPTHWISE1D, f"{name}_depthwise", units=config["depth_multiplier"], use_bias=False,
                          **_window_of(config))
    pointwise = replace(_weighted(Kind.CONV1D, layer, config, config["filters"], size=1),
                        name=f"{name}_pointwise")
    bias = weights[2] if config["use_bias"] else np.zeros(0, np.float32)
    notes.append(SEPARABLE_NOTE.format(name=name))
    return [(depthwise, (weights[0], np.zeros(0, np.float32))), (pointwise, (weights[1], bias))]


def _spec(layer: Any, notes: list[str]) -> LayerSpec | None:
    """The LayerSpec of one Keras layer, or None for a layer that computes nothing here (a linear activation,
    a dropout: announced in ``notes``)."""
    config = layer.get_config()
    if type(layer) in (keras.layers.Dropout, keras.layers.SpatialDropout1D):
        notes.append(DROPOUT_NOTE.format(name=layer.name, kind=type(layer).__name__, rate=config["rate"]))
        return None
    _check_common(layer, config)
    name = layer.name
    if isinstance(layer, keras.layers.Conv1D) and type(layer) is keras.layers.Conv1D:
        if config.get("groups", 1) != 1:
            raise _refuse(layer, f"groups={config['groups']} is not supported (use 1)")
        return _weighted(Kind.CONV1D, layer, config, config["filters"], **_window_of(config))
    if type(layer) is keras.layers.DepthwiseConv1D:
        return _weighted(Kind.DEPTHWISE1D, layer, config, config["depth_multiplier"], **_window_of(config))
    if type(layer) is keras.layers.Dense:
        return _weighted(Kind.DENSE, layer, config, config["units"])
    if type(layer) in (keras.layers.AveragePooling1D, keras.layers.MaxPooling1D):
        pool = _single(config["pool_size"])
        kind = Kind.AVGPOOL1D if type(layer) is keras.layers.AveragePooling1D else Kind.MAXPOOL1D
        return LayerSpec(kind, name, size=pool, stride=_single(config["strides"]) or pool,
                         padding=config["padding"])
    if type(layer) is keras.layers.GlobalAveragePooling1D:
        if config.get("keepdims"):
            raise _refuse(layer, "keepdims=True is not supported")
        return LayerSpec(Kind.GAP1D, name)
    if type(layer) is keras.layers.GlobalMaxPooling1D:
        if config.get("keepdims"):
            raise _refuse(layer, "keepdims=True is not supported")
        return LayerSpec(Kind.GMP1D, name)
    if type(layer) is keras.layers.Flatten:
        return LayerSpec(Kind.FLATTEN, name)
    if type(layer) is keras.layers.ReLU:
        max_value, slope = config.get("max_value"), float(config.get("negative_slope", 0.0))
        if config.get("threshold", 0.0) != 0.0 or (max_value is not None and (max_value != 6.0 or slope != 0.0)):
            raise _refuse(layer, "supported: ReLU(), ReLU(max_value=6) and ReLU(negative_slope=a); not threshold "
                                 "or other max_value")
        if max_value is not None:
            return LayerSpec(Kind.ACTIVATION, name, activation="relu6")
        if slope != 0.0:
            return LayerSpec(Kind.ACTIVATION, name, activation="leaky_relu", alpha=slope)
        return LayerSpec(Kind.RELU, name)
    if type(layer) is keras.layers.BatchNormalization:
        if config.get("axis") not in (-1, [-1], 2, [2]):
            raise _refuse(layer, f"axis={config.get('axis')} is not supported (normalise the channels, -1)")
        if not (config.get("center", True) and config.get("scale", True)):
            raise _refuse(layer, "center=False or scale=False is not supported")
        if config.get("renorm") or config.get("synchronized"):
            raise _refuse(layer, "renorm and synchronized are not supported")
        mean = np.asarray(layer.moving_mean, np.float32)
        inv_std = (1.0 / np.sqrt(np.asarray(layer.moving_variance, np.float32) + np.float32(config["epsilon"])))
        return LayerSpec(Kind.BATCHNORM, name, stats=(tuple(mean), tuple(inv_std.astype(np.float32))))
    if type(layer) is InferenceBatchNorm:
        return LayerSpec(Kind.BATCHNORM, name, stats=(tuple(np.asarray(layer.mean, np.float32)),
                                                     tuple(np.asarray(layer.inv_std, np.float32))))
    if type(layer) is keras.layers.LeakyReLU:
        return LayerSpec(Kind.ACTIVATION, name, activation="leaky_relu", alpha=float(config["negative_slope"]))
    if type(layer) is keras.layers.Softmax:
        if config.get("axis", -1) not in (-1, [-1]):
            raise _refuse(layer, f"axis={config['axis']} is not supported (use -1)")
        return LayerSpec(Kind.SOFTMAX, name)
    if type(layer) is keras.layers.Activation:
        act = _activation(layer)
        if act == "none":
            return None
        if act in ("relu", "softmax"):
            return LayerSpec(Kind.RELU if act == "relu" else Kind.SOFTMAX, name)
        return LayerSpec(Kind.ACTIVATION, name, activation=act,
                         alpha=KERAS_LEAKY_SLOPE if act == "leaky_relu" else 0.0)
    raise _refuse(layer, "this layer type is not supported (supported: Conv1D, DepthwiseConv1D, SeparableConv1D, "
                         "Dense, AveragePooling1D, MaxPooling1D, BatchNormalization, GlobalAveragePooling1D, "
                         "GlobalMaxPooling1D, Flatten, ReLU, LeakyReLU, Softmax, Activation, Dropout, "
                         "SpatialDropout1D)")


def _chain(model: Any) -> list[Any]:
    """The model's layers, checked to form a single chain from one input to one output."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError("only models with one input and one output are supported")
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if isinstance(model, keras.Sequential):
        return layers  # a chain by construction (Keras may hold several graph nodes per layer for it)
    previous = model.inputs[0]
    for layer in layers:
        node = next((n for n in layer._inbound_nodes
                     if len(n.input_tensors) == 1 and n.input_tensors[0] is previous), None)
        if node is None or len(node.output_tensors) != 1:
            raise _refuse(layer, "only a plain chain of layers is supported (no branches, merges or shared layers)")
        previous = node.output_tensors[0]
    if previous is not model.outputs[0]:
        raise ModelError("only a plain chain of layers is supported (the output is not the last layer's)")
    return layers


def from_keras(model: Any, name: str = "keras") -> Model:
    """Translate a built Keras model (Sequential or a functional chain) with its current weights."""
    shape = model.inputs[0].shape if model.inputs else None
    # Every problem is listed at once: the input's, each layer's, the head's.
    problems: list[str] = []
    if shape is None or len(shape) != 3:
        problems.append(f"input: shape {None if shape is None else tuple(shape[1:])}: the device takes windows "
                        "of (length, channels), a 1-D CNN's input (Conv2D and other 2-D models are not supported)")
    elif shape[1] is None or shape[2] is None:
        problems.append(f"input: shape {tuple(shape[1:])}: the window length and the channels must be fixed")
    layers = _chain(model)
    specs: list[LayerSpec] = []
    params = []
    notes: list[str] = []
    refusals: list[str] = []
    for layer in layers:
        try:
            policy = getattr(layer, "dtype_policy", None)
            if policy is not None and getattr(policy, "name", "float32") != "float32":
                raise _refuse(layer, f"dtype policy '{policy.name}' is not supported (the library trains float32)")
            if type(layer) is keras.layers.SeparableConv1D:
                for spec, pair in _separable(layer, notes):
                    specs.append(spec)
                    params.append(pair)
                continue
            spec = _spec(layer, notes)
        except ModelError as exc:
            refusals.append(str(exc))  # every layer at fault is reported, not only the first
            continue
        if spec is None:
            continue
        specs.append(spec)
        if spec.kind in PARAM_KINDS:
            w, b = layer_params(layer)  # a BatchNormalization's gamma and beta
            params.append((np.asarray(w, np.float32), np.asarray(b, np.float32)))
    problems += sorted(refusals, key=lambda line: line.partition("(")[2])  # by layer type
    if problems and layers and not _ends_in_softmax(layers[-1]):
        problems.append(f"layer '{layers[-1].name}': the model must end in softmax (the training loss is "
                        "categorical cross-entropy on class probabilities)")
    if len(problems) == 1:
        raise ModelError(problems[0])
    if problems:
        raise ModelError(f"{len(problems)} problems keep this model off the device:\n  " + "\n  ".join(problems))
    assert shape is not None
    specs = _tensorflow_names(specs, notes)
    arch = Architecture.build(_tensorflow_name(name) or "keras", int(shape[1]), int(shape[2]), specs)
    return Model(arch, params, tuple(notes))


def _ends_in_softmax(layer: Any) -> bool:
    config = layer.get_config()
    return type(layer) is keras.layers.Softmax or config.get("activation") == "softmax"


def _tensorflow_name(name: str) -> str:
    """``name`` as TensorFlow takes it for a scope (letters, digits, ``_.-``; the golden model and the
    pretraining run in TensorFlow): other characters become ``_``."""
    clean = re.sub(r"[^A-Za-z0-9_.\-]", "_", name)
    return clean if not clean or re.match(r"[A-Za-z0-9.]", clean) else f"layer{clean}"


def _tensorflow_names(specs: list[LayerSpec], notes: list[str]) -> list[LayerSpec]:
    """The layers renamed where TensorFlow would refuse their names, each rename noted; still unique."""
    taken = {spec.name for spec in specs}
    renamed = []
    for spec in specs:
        name = _tensorflow_name(spec.name)
        if name != spec.name:
            base, k = name, 1
            while name in taken:
                k += 1
                name = f"{base}_{k}"
            taken.add(name)
            notes.append(f"layer '{spec.name}' is named '{name}' here: TensorFlow, which the golden model and the "
                         "pretraining run in, takes only letters, digits and _.- in a layer's name")
            spec = replace(spec, name=name)
        renamed.append(spec)
    return renamed


def load(path: Path) -> Model:
    """Read a ``.keras`` file."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such model file")
    if path.suffix != ".keras":
        raise ModelError(f"{path}: expected a Keras 3 '.keras' file")
    return from_keras(keras.saving.load_model(path, compile=False), name=path.stem)


def to_keras(model: Model) -> Any:
    """A Keras Sequential model computing exactly ``model``, with its parameters."""
    arch = model.arch
    layers: list[Any] = [keras.Input((arch.input_len, arch.input_ch))]
    for layer in arch.layers:
        act: Any = None if layer.activation == "none" else layer.activation
        # Keras's own slope, even when it arrives as float32(0.2): the string activation saves and loads; a
        # functools.partial does not (a cached general model could not be written).
        if layer.activation == "leaky_relu" and np.float32(layer.alpha) != np.float32(KERAS_LEAKY_SLOPE):
            act = functools.partial(keras.activations.leaky_relu, negative_slope=layer.alpha)
        if layer.kind is Kind.CONV1D:
            layers.append(keras.layers.Conv1D(layer.out_ch, layer.size, strides=layer.stride, padding=layer.padding,
                                              dilation_rate=layer.dilation, activation=act, use_bias=layer.use_bias,
                                              name=layer.name))
        elif layer.kind is Kind.DEPTHWISE1D:
            layers.append(keras.layers.DepthwiseConv1D(layer.size, strides=layer.stride, padding=layer.padding,
                                                       depth_multiplier=layer.out_ch // layer.in_ch,
                                                       dilation_rate=layer.dilation, activation=act,
                                                       use_bias=layer.use_bias, name=layer.name))
        elif layer.kind is Kind.DENSE:
            layers.append(keras.layers.Dense(layer.out_ch, activation=act, use_bias=layer.use_bias, name=layer.name))
        elif layer.kind is Kind.AVGPOOL1D:
            layers.append(keras.layers.AveragePooling1D(layer.size, strides=layer.stride, padding=layer.padding,
                                                        name=layer.name))
        elif layer.kind is Kind.MAXPOOL1D:
            layers.append(keras.layers.MaxPooling1D(layer.size, strides=layer.stride, padding=layer.padding,
                                                    name=layer.name))
        elif layer.kind is Kind.GAP1D:
            layers.append(keras.layers.GlobalAveragePooling1D(name=layer.name))
        elif layer.kind is Kind.GMP1D:
            layers.append(keras.layers.GlobalMaxPooling1D(name=layer.name))
        elif layer.kind is Kind.FLATTEN:
            layers.append(keras.layers.Flatten(name=layer.name))
        elif layer.kind is Kind.RELU:
            layers.append(keras.layers.ReLU(name=layer.name))
        elif layer.kind is Kind.ACTIVATION and layer.activation == "relu6":
            layers.append(keras.layers.ReLU(max_value=6.0, name=layer.name))
        elif layer.kind is Kind.ACTIVATION and layer.activation == "leaky_relu":
            layers.append(keras.layers.LeakyReLU(negative_slope=layer.alpha, name=layer.name))
        elif layer.kind is Kind.ACTIVATION:
            layers.append(keras.layers.Activation(layer.activation, name=layer.name))
        elif layer.kind is Kind.BATCHNORM:
            layers.append(InferenceBatchNorm(name=layer.name))
        else:
            layers.append(keras.layers.Softmax(name=layer.name))
    km = keras.Sequential(layers, name=arch.name)
    for i, (w, b) in zip(arch.param_layers, model.params, strict=True):
        layer = arch.layers[i]
        if layer.stats is not None:
            bn = km.get_layer(layer.name)
            bn.mean.assign(np.asarray(layer.stats[0], np.float32))
            bn.inv_std.assign(np.asarray(layer.stats[1], np.float32))
        set_layer_params(km.get_layer(layer.name), w, b)
    return km


def keras_optimizer(optimizer: Optimizer, learning_rate: float = 0.01) -> Any:
    """The Keras optimizer that ``optimizer`` describes, the one the firmware's update copies."""
    if optimizer.kind == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=optimizer.beta_1, beta_2=optimizer.beta_2,
                                     epsilon=optimizer.epsilon)
    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=optimizer.momentum,
                                nesterov=optimizer.nesterov)
