"""What every place that runs the C library offers: the host build (ctypes) and a board (firmware).

A :class:`Network` is one generated model being trained sample by sample, as the C library does it; a
batch is accumulated sample by sample and applied by one SGD step. It is also what an experiment's
trainer needs (:class:`pyodl.experiments.trainer.Trainer`): ``set_trainable``, ``train_step`` and
``predict_classes``.
"""

from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass

import numpy as np

from pyodl.model.architecture import Architecture, Params
from pyodl.model.optimizer import OptimizerState


def mean_loss(losses: list[float]) -> float:
    """A batch's mean loss as the firmware's TRAIN_BATCH computes it: a float32 sum in sample order divided by
    the count in float32, so the per-window and the batch commands report the same number."""
    total = np.float32(0.0)
    for loss in losses:
        total = np.float32(total + np.float32(loss))
    return float(total / np.float32(len(losses)))


@dataclass(frozen=True)
class Adaptive:
    """One adaptive int8 inference: the answer, whether the whole window ran, the cheap mode's class and its
    confidence (its largest int8 probability as probability * 256, 0..255)."""

    predicted_class: int
    full_ran: bool
    cheap_class: int
    cheap_confidence: int


class Network(abc.ABC):
    """One generated model being trained sample by sample; a sample is ``(input_len, input_ch)``."""

    arch: Architecture

    @abc.abstractmethod
    def set_trainable(self, trainable_layers: int) -> None:
        """Train only the last ``trainable_layers`` parameter layers (clears the accumulated batch)."""

    @abc.abstractmethod
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities of one sample."""

    @abc.abstractmethod
    def accumulate(self, x: np.ndarray, label: int) -> float:
        """Forward and backward of one labelled sample, gradients added to the batch; returns its loss."""

    @abc.abstractmethod
    def sgd_step(self, learning_rate: float) -> None:
        """Apply the batch-mean gradient and start a new batch."""

    @abc.abstractmethod
    def zero_grads(self) -> None:
        """Drop the accumulated batch."""

    @abc.abstractmethod
    def get_params(self) -> Params:
        """Every parameter layer's (weights, bias), in Keras layouts."""

    @abc.abstractmethod
    def set_params(self, params: Params) -> None:
        """Overwrite the parameters (clears the accumulated batch)."""

    @abc.abstractmethod
    def get_optimizer_state(self, trainable_layers: int) -> OptimizerState:
        """The optimizer's step count and the slots of the last ``trainable_layers`` parameter layers."""

    @abc.abstractmethod
    def set_optimizer_state(self, state: OptimizerState) -> None:
        """Overwrite the step count and the slots of the last ``len(state.slots[0])`` parameter layers; after
        :meth:`set_params`, which restarts the optimizer. Leaves the accumulated batch."""

    def train_step(self, xs: np.ndarray, labels: np.ndarray, learning_rate: float) -> float:
        """One SGD step on a batch ``(B, input_len, input_ch)``: accumulate every sample, then update.
        Returns the batch's mean loss."""
        if len(xs) != len(labels) or len(xs) == 0:
            raise ValueError(f"a batch needs as many labels as samples (got {len(xs)} and {len(labels)})")
        try:
            losses = [self.accumulate(x, y) for x, y in zip(xs, labels, strict=True)]
            self.sgd_step(learning_rate)
        except BaseException:
            self._drop_batch()
            raise
        return mean_loss(losses)

    def _drop_batch(self) -> None:
        """The samples accumulated before a failure (a refused sample or step, Ctrl-C) must not join the next
        batch."""
        with contextlib.suppress(Exception):  # a board that stopped answering keeps the first error
            self.zero_grads()

    def predict_classes(self, xs: np.ndarray) -> np.ndarray:
        """The predicted class of every sample of ``(N, input_len, input_ch)``."""
        return np.array([int(np.argmax(self.forward(x))) for x in xs], dtype=np.int64)
