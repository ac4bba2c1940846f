"""The device's stream decisions (firmware/odl/stream.c, odl_stream.h) in Python, float32 step for float32
step, so a stream trained in TensorFlow (``--trainer tf``) queries the teacher exactly where the firmware would
from the same confidences, and the firmware's logic can be checked decision by decision.

A :class:`StreamPolicy` sees each window's confidence (its highest class probability) and says whether to query
the teacher; after a query it is told whether the teacher agreed with the prediction. Policies and their
parameters are odl_stream.h's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

F32 = np.float32
DRIFT_WINDOW_MAX = 32


class Policy(IntEnum):
    ALWAYS = 0
    RANDOM = 1
    BUDGET = 2
    AGREEMENT = 3


@dataclass(frozen=True)
class StreamConfig:
    """``odl_stream_config_t``: what the device is told at the start of a stream."""

    policy: Policy = Policy.BUDGET
    rate: float = 0.3  # RANDOM: query probability; BUDGET: target rate; AGREEMENT: floor rate
    threshold: float = 0.9  # BUDGET, AGREEMENT: the initial confidence threshold
    step: float = 0.01  # BUDGET, AGREEMENT: the threshold's adaptation step
    disagree_target: float = 0.5  # AGREEMENT: the teacher disagreement rate among queries it aims at
    seed: int = 1  # RANDOM: xorshift32 seed, not 0
    drift_window: int = 0  # queries the drift detector looks back on (0: none)
    drift_on: int = 1  # disagreements among them that raise the drift flag
    drift_off: int = 0  # disagreements at or below which it falls

    def check(self) -> None:
        """ValueError naming the field, as odl_stream_init refuses it (ODL_ERR_SIZE)."""
        for name in ("rate", "threshold", "disagree_target"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.policy in (Policy.BUDGET, Policy.AGREEMENT) and not 0.0 < self.step <= 1.0:
            raise ValueError(f"step must be in (0, 1], got {self.step}")
        if self.policy == Policy.RANDOM and not 0 < self.seed < 2**32:
            raise ValueError(f"seed must be a nonzero 32-bit number, got {self.seed}")
        if not 0 <= self.drift_window <= DRIFT_WINDOW_MAX:
            raise ValueError(f"drift_window must be in 0..{DRIFT_WINDOW_MAX}, got {self.drift_window}")
        if self.drift_window and not (1 <= self.drift_on <= self.drift_window and self.drift_off < self.drift_on):
            raise ValueError(f"drift needs 1 <= drift_on <= drift_window and drift_off < drift_on, got "
                             f"{self.drift_on}, {self.drift_window}, {self.drift_off}")


@dataclass
class StreamPolicy:
    config: StreamConfig
    threshold: np.float32 = field(init=False)
    rng: int = field(init=False)
    seen: int = 0
    queried: int = 0
    history: int = 0  # bit i: the (i+1)-th latest query's label disagreed
    answers: int = 0
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
        x = self.rng
        x ^= (x << 13) & 0xFFFF_FFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFF_FFFF
        self.rng = x
        return F32(x >> 8) * F32(1.0 / 16777216.0)

    def decide(self, confidence: float) -> bool:
        """Whether to ask the teacher for this window's label (odl_stream_decide)."""
        cfg = self.config
        self.seen += 1
        if cfg.policy == Policy.RANDOM:
            u = self._uniform()
            query = self.drift or bool(u < F32(cfg.rate))
        elif cfg.policy in (Policy.BUDGET, Policy.AGREEMENT):
            query = self.drift or bool(F32(confidence) < self.threshold)
            if not self.drift and (cfg.policy == Policy.BUDGET or not query):
                self._adapt(cfg.rate, 1.0 if query else 0.0)
        else:
            query = True
        self.queried += int(query)
        return query

    def feedback(self, agreed: bool) -> None:
        """After a query: whether the teacher's label was the prediction (odl_stream_feedback)."""
        cfg = self.config
        if cfg.policy == Policy.AGREEMENT and not self.drift:
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
