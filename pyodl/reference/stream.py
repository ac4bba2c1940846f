"""The device's stream decisions (firmware/odl/stream.c, odl_stream.h) in Python, float32 step for float32
step, so a stream trained in TensorFlow (``--trainer tf``) queries the teacher exactly where the firmware would
from the same confidences, and the firmware's logic can be checked decision by decision. The policies and
their parameters are :mod:`pyodl.model.stream`'s.

A :class:`StreamPolicy` sees each window's confidence (its highest class probability) and says whether to query
the teacher; after a query it is told whether the teacher agreed with the prediction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from pyodl.model.stream import Answer, Decision, Policy, StreamConfig, StreamSetup

F32 = np.float32


def xorshift32(x: int) -> int:
    """The firmware's generator (stream.c, stream_commands.c): the next state of ``x``."""
    x ^= (x << 13) & 0xFFFF_FFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFF_FFFF
    return x


@dataclass
class StreamPolicy:
    config: StreamConfig
    threshold: np.float32 = field(init=False)
    rng: int = field(init=False)
    seen: int = 0
    queried: int = 0
    history: int = 0  # bit i: the (i+1)-th latest query's label disagreed
    answers: int = 0
    explored: bool = False  # the latest query came from the random share alone, not from the threshold
    drift: bool = False
    drifts: int = 0

    def __post_init__(self) -> None:
        self.config.check()
        self.threshold = F32(self.config.threshold)
        self.rng = self.config.seed

    def _adapt(self, up: float, down: float) -> None:
        delta = F32(F32(self.config.step) * F32(F32(up) - F32(down)))
        self.threshold = F32(min(max(F32(self.threshold + delta), F32(0.0)), F32(1.0)))

    def _uniform(self) -> np.float32:
        self.rng = xorshift32(self.rng)
        return F32(self.rng >> 8) * F32(1.0 / 16777216.0)

    def decide(self, confidence: float) -> bool:
        """Whether to ask the teacher for this window's label (odl_stream_decide)."""
        cfg = self.config
        self.seen += 1
        if cfg.policy == Policy.RANDOM:
            u = self._uniform()
            query = self.drift or bool(u < F32(cfg.rate))
        elif cfg.policy.thresholded:
            drawn = F32(cfg.explore) > 0 and bool(self._uniform() < F32(cfg.explore))  # no draw without exploration
            unsure = bool(F32(confidence) < self.threshold)
            query = self.drift or unsure or drawn
            self.explored = query and not self.drift and not unsure
            if not self.drift and (cfg.policy == Policy.BUDGET or not query):
                self._adapt(cfg.rate, 1.0 if query else 0.0)
        else:
            query = True
        self.queried += int(query)
        return query

    def feedback(self, agreed: bool) -> None:
        """After a query: whether the teacher's label was the prediction (odl_stream_feedback)."""
        cfg = self.config
        if cfg.policy == Policy.AGREEMENT and not self.drift and not self.explored:
            self._adapt(0.0 if agreed else 1.0, cfg.disagree_target)
        self.answers += 1
        if not cfg.drift_window:
            return
        mask = (1 << cfg.drift_window) - 1
        self.history = ((self.history << 1) | (0 if agreed else 1)) & mask
        disagreements = bin(self.history).count("1")
        if not self.drift and self.answers >= cfg.drift_window and disagreements >= cfg.drift_on:
            self.drift = True
            self.drifts += 1
        elif self.drift and disagreements <= cfg.drift_off:
            self.drift = False


def confidence(probs: np.ndarray) -> tuple[int, np.float32]:
    """The predicted class (the first highest probability) and its probability (odl_confidence)."""
    probs = np.asarray(probs, dtype=np.float32)
    best = int(np.argmax(probs))
    return best, F32(probs[best])


class ReplayBuffer:
    """The device's replay buffer (the dataset region as a ring, firmware/app/stream_commands.c): labelled
    windows, the oldest overwritten when full; a step trains on records drawn with xorshift32 from the labelled
    ones, with replacement. A queried window takes the next slot before its label comes (``stage``); until it
    does, that slot is no labelled record (its label may never come)."""

    def __init__(self, capacity: int, window_shape: tuple[int, int], seed: int) -> None:
        if capacity < 1:
            raise ValueError(f"a replay buffer holds at least one window, not {capacity}")
        self.windows = np.zeros((capacity, *window_shape), dtype=np.float32)
        self.labels = np.zeros(capacity, dtype=np.int64)
        self.head = 0
        self.filled = 0
        self.stale = False  # slot ``head`` holds a staged window without its label
        self.draws = seed

    @property
    def capacity(self) -> int:
        return len(self.labels)

    def stage(self, window: np.ndarray) -> None:
        """A queried window in the next slot, waiting for its label."""
        self.windows[self.head] = window
        self.stale = True

    def complete(self, label: int) -> None:
        """The staged window's label: it becomes a record."""
        self.labels[self.head] = label
        self._advance()

    def add(self, window: np.ndarray, label: int) -> None:
        """A labelled window straight in (a self-label)."""
        self.windows[self.head] = window
        self.labels[self.head] = label
        self._advance()

    def _advance(self) -> None:
        self.head = (self.head + 1) % self.capacity
        self.filled = min(self.filled + 1, self.capacity)
        self.stale = False

    @property
    def valid(self) -> int:
        """Records a step may draw (the stale slot only counts once the ring has wrapped onto it)."""
        return self.filled - int(self.stale and self.filled == self.capacity)

    def draw(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """``batch`` records, each the (draw % valid)-th labelled one counted from the oldest."""
        full = self.filled == self.capacity
        oldest = (self.head + int(self.stale)) % self.capacity if full else 0
        index = []
        for _ in range(batch):
            self.draws = xorshift32(self.draws)
            index.append((oldest + self.draws % self.valid) % self.capacity)
        return self.windows[index], self.labels[index]


class Learner(Protocol):
    """What trains the reference device: a Network or KerasReference."""

    def train_step(self, xs: np.ndarray, labels: np.ndarray, learning_rate: float) -> float: ...


class ReferenceStream:
    """The device's stream (STREAM_START, STREAM_WINDOW, STREAM_LABEL of
    :class:`pyodl.network.board.BoardNetwork`) with the policy, the replay buffer and the training done here:
    ``probabilities`` gives a window's class probabilities and ``learner`` trains (TensorFlow for ``--trainer
    tf``, or a board trained window by window, to check the firmware's)."""

    def __init__(self, probabilities: Callable[[np.ndarray], np.ndarray], learner: Learner,
                 window_shape: tuple[int, int], capacity: int) -> None:
        self.probabilities = probabilities
        self.learner = learner
        self.window_shape = window_shape
        self.capacity = capacity
        self.setup: StreamSetup | None = None

    def stream_start(self, setup: StreamSetup) -> int:
        setup.check(self.capacity)
        self.setup = setup
        self.policy = StreamPolicy(setup.policy)
        self.replay = ReplayBuffer(self.capacity, self.window_shape, setup.replay_seed)
        self.pending = 0  # windows since the last step
        self._waiting: int | None = None  # the queried window's predicted class, until its label comes
        return self.capacity

    def stream_window(self, x: np.ndarray) -> Decision:
        if self.setup is None:
            raise RuntimeError("stream_start first")
        trained, loss = False, 0.0
        if self.pending >= self.setup.train_every and self.replay.valid > 0:  # the step due comes first
            lr = self.setup.drift_learning_rate if self.policy.drift else self.setup.learning_rate
            loss = self.learner.train_step(*self.replay.draw(self.setup.batch), lr)
            self.pending, trained = 0, True
        predicted, conf = confidence(self.probabilities(x))
        self.pending += 1
        query = self.policy.decide(conf)
        window = np.array(x, dtype=np.float32)
        if query:
            self.replay.stage(window)
        elif F32(0.0) < F32(self.setup.self_label) <= conf:  # float32, as the firmware compares
            self.replay.add(window, predicted)
        self._waiting = predicted if query else None
        return Decision(predicted, query, self.policy.drift, float(self.policy.threshold), float(conf), trained,
                        float(loss))

    def stream_label(self, label: int) -> Answer:
        if self.setup is None or self._waiting is None:
            raise RuntimeError("no queried window waits for a label")
        self.replay.complete(int(label))
        self.policy.feedback(int(label) == self._waiting)
        self._waiting = None
        return Answer(self.policy.drift, self.replay.filled)
