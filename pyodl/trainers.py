"""The two trainers personalization compares on the same batches: the firmware on the simulated board, and
TensorFlow. Both expose the three calls the experiment needs, with numpy at the boundary."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from pyodl.device import DeviceNetwork
from pyodl.keras_model import keras, to_keras
from pyodl.model import Model


class BatchTrainer(Protocol):
    def set_trainable(self, trainable_layers: int) -> None: ...

    def train_step(self, xs: np.ndarray, labels: np.ndarray, learning_rate: float) -> float: ...

    def predict_classes(self, xs: np.ndarray) -> np.ndarray: ...


class BoardTrainer:
    """The firmware trains; every window goes through the mailbox, predictions are read back."""

    def __init__(self, net: DeviceNetwork) -> None:
        self.net = net

    def set_trainable(self, trainable_layers: int) -> None:
        self.net.set_trainable(trainable_layers)

    def train_step(self, xs: np.ndarray, labels: np.ndarray, learning_rate: float) -> float:
        return self.net.train_step(xs, labels, learning_rate)

    def predict_classes(self, xs: np.ndarray) -> np.ndarray:
        return np.array([self.net.predict(x)[0] for x in xs], dtype=np.int64)


class KerasTrainer:
    """TensorFlow with Keras' SGD on the batch-mean cross-entropy: what the firmware computes."""

    def __init__(self, model: Model) -> None:
        import tensorflow as tf

        self._tf = tf
        self.arch = model.arch
        self.km: Any = to_keras(model)
        self.loss_fn = keras.losses.CategoricalCrossentropy()
        self.set_trainable(len(self.arch.param_layers))

    def set_trainable(self, trainable_layers: int) -> None:
        first = self.arch.first_trained(trainable_layers)
        for i in self.arch.param_layers:
            self.km.get_layer(self.arch.layers[i].name).trainable = i >= first
        variables = self.km.trainable_variables
        tf, km, loss_fn = self._tf, self.km, self.loss_fn

        @tf.function
        def step(x: Any, y: Any, lr: Any) -> Any:
            with tf.GradientTape() as tape:
                loss = loss_fn(y, km(x, training=True))
            for v, g in zip(variables, tape.gradient(loss, variables), strict=True):
                v.assign_sub(lr * g)
            return loss

        self._step = step

    def train_step(self, xs: np.ndarray, labels: np.ndarray, learning_rate: float) -> float:
        onehot = np.eye(self.arch.num_classes, dtype=np.float32)[labels]
        tf = self._tf
        return float(self._step(tf.constant(xs, tf.float32), tf.constant(onehot), tf.constant(learning_rate,
                                                                                              tf.float32)))

    def predict_classes(self, xs: np.ndarray) -> np.ndarray:
        return np.argmax(self.km.predict(xs, verbose=0, batch_size=256), axis=1).astype(np.int64)
