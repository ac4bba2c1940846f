"""What a device does with a stream of unlabelled windows, as pyodl describes it to the firmware
(``odl_stream_config_t`` and ``odl_stream_setup_t`` in firmware/odl/odl_stream.h and firmware/app/app.h): the
query policy that decides which windows to ask a teacher about, the drift detector, and how the replay buffer of
labelled windows trains. :mod:`pyodl.reference.stream` makes the same decisions in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

DRIFT_WINDOW_MAX = 32


class Policy(IntEnum):
    ALWAYS = 0
    RANDOM = 1
    BUDGET = 2
    AGREEMENT = 3

    @property
    def thresholded(self) -> bool:
        """BUDGET and AGREEMENT: a confidence threshold decides (odl_stream_init's ``thresholded``)."""
        return self in (Policy.BUDGET, Policy.AGREEMENT)


@dataclass(frozen=True)
class StreamConfig:
    """``odl_stream_config_t``: what the device is told at the start of a stream."""

    policy: Policy = Policy.BUDGET
    rate: float = 0.3  # RANDOM: query probability; BUDGET: target rate; AGREEMENT: floor rate
    threshold: float = 0.9  # BUDGET, AGREEMENT: the initial confidence threshold
    step: float = 0.01  # BUDGET, AGREEMENT: the threshold's adaptation step
    disagree_target: float = 0.5  # AGREEMENT: the teacher disagreement rate among queries it aims at
    explore: float = 0.0  # BUDGET, AGREEMENT: the share of windows queried at random whatever their confidence
    seed: int = 1  # RANDOM, or explore > 0: xorshift32 seed, not 0
    drift_window: int = 0  # queries the drift detector looks back on (0: none)
    drift_on: int = 1  # disagreements among them that raise the drift flag
    drift_off: int = 0  # disagreements at or below which it falls

    @property
    def draws(self) -> bool:
        """Whether the policy draws random numbers (RANDOM, or a threshold policy with exploration)."""
        # explore compared as the firmware's float32 sees it
        return self.policy == Policy.RANDOM or (self.policy.thresholded and np.float32(self.explore) > 0)

    def check(self) -> None:
        """ValueError naming the field, as odl_stream_init refuses it (ODL_ERR_SIZE)."""
        for name in ("rate", "threshold", "disagree_target", "explore"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.policy.thresholded and not 0.0 < self.step <= 1.0:
            raise ValueError(f"step must be in (0, 1], got {self.step}")
        if self.draws and not 0 < self.seed < 2**32:
            raise ValueError(f"seed must be a nonzero 32-bit number, got {self.seed}")
        if not 0 <= self.drift_window <= DRIFT_WINDOW_MAX:
            raise ValueError(f"drift_window must be in 0..{DRIFT_WINDOW_MAX}, got {self.drift_window}")
        if self.drift_window and not (1 <= self.drift_on <= self.drift_window and self.drift_off < self.drift_on):
            raise ValueError(f"drift needs 1 <= drift_on <= drift_window and drift_off < drift_on, got "
                             f"{self.drift_on}, {self.drift_window}, {self.drift_off}")


@dataclass(frozen=True)
class StreamSetup:
    """STREAM_START's data: the query policy, then the replay buffer's training."""

    policy: StreamConfig = field(default_factory=StreamConfig)
    train_every: int = 8  # windows between two training steps, queried or not (the stream's clock)
    batch: int = 32  # labelled windows each step trains on, drawn from the replay buffer (at most its size)
    learning_rate: float = 0.01
    drift_learning_rate: float = 0.03  # while a drift is detected
    replay_seed: int = 7  # xorshift32 seed of the draws, not 0
    self_label: float = 0.0  # an unqueried window this confident joins the buffer with its own class; 0: never

    def check(self, capacity: int) -> None:
        """ValueError naming the field, as the firmware refuses it; ``capacity``: the replay buffer's records."""
        self.policy.check()
        if self.train_every < 1:
            raise ValueError(f"train_every must be >= 1, got {self.train_every}")
        if not 1 <= self.batch <= capacity:
            raise ValueError(f"batch must be in 1..{capacity} (the replay buffer), got {self.batch}")
        if not 0.0 <= self.self_label <= 1.0:
            raise ValueError(f"self_label must be in [0, 1], got {self.self_label}")
        if not 0 < self.replay_seed < 2**32:
            raise ValueError(f"replay_seed must be a nonzero 32-bit number, got {self.replay_seed}")
        for name in ("learning_rate", "drift_learning_rate"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value}")


@dataclass(frozen=True)
class Decision:
    """What the device decided about one window (STREAM_WINDOW)."""

    predicted: int
    query: bool  # ask the teacher for this window's label
    drift: bool  # a drift is detected (every window is queried until it clears)
    threshold: float  # the confidence threshold after this window
    confidence: float  # the prediction's probability
    trained: bool  # the step due was taken on the replay buffer before the prediction
    loss: float  # its mean loss (0 without a step)


@dataclass(frozen=True)
class Answer:
    """What the device did with the teacher's label (STREAM_LABEL)."""

    drift: bool
    records: int  # labelled windows in the replay buffer
