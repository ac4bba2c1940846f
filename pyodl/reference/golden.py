"""The TensorFlow golden model: the reference every C build is compared with.

:class:`KerasReference` trains a model exactly as ``keras.Model.fit`` would (categorical cross-entropy,
batch-mean reduction, Keras' plain SGD, frozen layers for transfer learning); :func:`train` runs N steps
of it on given batches and records the loss and the gradients of every step; :func:`compare` holds a C
build's weights against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pyodl.model.architecture import Architecture, Model, Params
from pyodl.model.keras_io import keras, to_keras

# Golden tolerance of DESIGN.md: float32 C vs TF after up to 100 SGD steps. The only differences are
# summation order and rounding (~3e-8 absolute measured), so this leaves a wide margin without ever
# accepting a wrong formula, whose errors are orders of magnitude larger.
ATOL = 1e-6
RTOL = 1e-5


@dataclass(frozen=True)
class GoldenRun:
    params: Params  # after the last step, every parameter layer
    losses: np.ndarray  # (steps,) batch-mean loss before each update
    gradients: list[Params]  # per step, the batch-mean gradients of the trained layers


def random_batches(arch: Architecture, steps: int, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal windows (the scale of accelerometer data in g) and uniform labels, shaped as
    :func:`train` takes them: (steps, batch, T, C) and (steps, batch)."""
    rng = np.random.default_rng(seed)
    windows = rng.standard_normal((steps, batch, arch.input_len, arch.input_ch)).astype(np.float32)
    labels = rng.integers(0, arch.num_classes, size=(steps, batch))
    return windows, labels


def check_batches(model: Model, windows: np.ndarray, labels: np.ndarray) -> None:
    """``windows`` (steps, B, T, C) float32 and ``labels`` (steps, B) integer classes, or ValueError."""
    arch = model.arch
    if windows.ndim != 4 or windows.shape[2:] != (arch.input_len, arch.input_ch):
        raise ValueError(
            f"windows must have shape (steps, batch, {arch.input_len}, {arch.input_ch}), got {windows.shape}"
        )
    if labels.shape != windows.shape[:2]:
        raise ValueError(f"labels must have shape {windows.shape[:2]}, got {labels.shape}")
    if not np.isfinite(windows).all():
        raise ValueError("windows contain NaN or infinity")
    if labels.size and (labels.min() < 0 or labels.max() >= arch.num_classes):
        raise ValueError(f"labels must be classes 0..{arch.num_classes - 1}")


class KerasReference:
    """The model in TensorFlow, trained as ``keras.Model.fit`` trains it: Keras' SGD on the batch-mean
    categorical cross-entropy, frozen layers for transfer learning. What the firmware must compute; the
    golden check and personalization's ``--trainer tf`` both train with it."""

    def __init__(self, model: Model) -> None:
        import tensorflow as tf

        self._tf = tf
        self.arch = model.arch
        self.km: Any = to_keras(model)
        self._loss_fn = keras.losses.CategoricalCrossentropy()
        self.gradients: Params = []  # of the last step, for the trained layers
        self.set_trainable(len(self.arch.param_layers))

    def set_trainable(self, trainable_layers: int) -> None:
        """Train only the last ``trainable_layers`` parameter layers."""
        tf, arch = self._tf, self.arch
        first = arch.first_trained(trainable_layers)
        for i in arch.param_layers:
            self.km.get_layer(arch.layers[i].name).trainable = i >= first
        # A Keras optimizer serves the variables it was built with only: a new set needs a new one (plain
        # SGD keeps no state, so nothing is lost).
        optimizer = keras.optimizers.SGD(learning_rate=0.01)
        variables = self.km.trainable_variables
        km, loss_fn = self.km, self._loss_fn

        @tf.function
        def step(x: Any, y: Any) -> Any:
            with tf.GradientTape() as tape:
                loss = loss_fn(y, km(x, training=True))
            grads = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(grads, variables, strict=True))
            return loss, grads

        self._optimizer = optimizer
        self._step = step

    def train_step(self, xs: np.ndarray, labels: np.ndarray, learning_rate: float) -> float:
        """One SGD step on a batch ``(B, input_len, input_ch)``; returns the batch-mean loss before it."""
        tf = self._tf
        self._optimizer.learning_rate = learning_rate
        onehot = np.eye(self.arch.num_classes, dtype=np.float32)[labels]
        loss, grads = self._step(tf.constant(xs, tf.float32), tf.constant(onehot))
        g = [np.asarray(t) for t in grads]
        self.gradients = [(g[k], g[k + 1]) for k in range(0, len(g), 2)]
        return float(loss)

    def predict_classes(self, xs: np.ndarray) -> np.ndarray:
        return np.argmax(self.km.predict(xs, verbose=0, batch_size=256), axis=1).astype(np.int64)

    def get_params(self) -> Params:
        arch = self.arch
        params = [tuple(self.km.get_layer(arch.layers[i].name).get_weights()) for i in arch.param_layers]
        return [(np.asarray(w), np.asarray(b)) for w, b in params]


def train(model: Model, windows: np.ndarray, labels: np.ndarray, learning_rate: float = 0.01,
          trainable_layers: int | None = None) -> GoldenRun:
    """Train a copy of ``model`` in TensorFlow, one SGD step per batch ``windows[s]``.

    ``trainable_layers``: train only the last N parameter layers (None: all, Full mode)."""
    check_batches(model, windows, labels)
    reference = KerasReference(model)
    if trainable_layers is not None:
        reference.set_trainable(trainable_layers)
    losses = []
    gradients: list[Params] = []
    for s in range(windows.shape[0]):
        losses.append(reference.train_step(windows[s], labels[s], learning_rate))
        gradients.append(reference.gradients)
    return GoldenRun(reference.get_params(), np.asarray(losses, np.float32), gradients)


@dataclass(frozen=True)
class LayerDiff:
    name: str
    max_abs: float
    max_rel: float
    worst_ratio: float  # max over elements of |diff| / (ATOL + RTOL |w_tf|); <= 1 passes

    @property
    def ok(self) -> bool:
        return self.worst_ratio <= 1.0


def compare(model: Model, candidate: Params, golden: Params) -> list[LayerDiff]:
    """Per parameter layer (weights and bias together), how far ``candidate`` is from ``golden``."""
    diffs = []
    for i, (cw, cb), (gw, gb) in zip(model.arch.param_layers, candidate, golden, strict=True):
        c = np.concatenate([np.ravel(cw), np.ravel(cb)]).astype(np.float64)
        g = np.concatenate([np.ravel(gw), np.ravel(gb)]).astype(np.float64)
        if c.shape != g.shape:
            raise ValueError(f"layer '{model.arch.layers[i].name}': {c.size} values against {g.size}")
        diff = np.abs(c - g)
        rel = diff / np.maximum(np.abs(g), np.finfo(np.float32).tiny)
        ratio = diff / (ATOL + RTOL * np.abs(g))
        # NaN anywhere must fail, not compare as "not greater than".
        worst = float(np.max(ratio)) if np.isfinite(ratio).all() else float("inf")
        diffs.append(LayerDiff(model.arch.layers[i].name, float(np.max(diff)), float(np.max(rel)), worst))
    return diffs
