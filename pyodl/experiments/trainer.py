"""What an experiment trains with: the firmware on a board, or TensorFlow on the very same batches.

Both sides already speak the three calls an experiment needs (a :class:`~pyodl.network.base.Network` and
the :class:`~pyodl.reference.golden.KerasReference`), so a trainer is either one of them, opened here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from pyodl.model.architecture import Model, Params
from pyodl.model.optimizer import SGD, Optimizer

TRAINERS = ("board", "tf", "serial", "renode")
Progress = Callable[[str, int, int], None]  # (what, done, total)


class Trainer(Protocol):
    def set_trainable(self, trainable_layers: int) -> None: ...

    def train_step(self, xs: np.ndarray, labels: np.ndarray, learning_rate: float) -> float: ...

    def predict_classes(self, xs: np.ndarray) -> np.ndarray: ...

    def get_params(self) -> Params: ...

    def set_params(self, params: Params) -> None: ...


@contextlib.contextmanager
def open_trainer(kind: str, model: Model, trainable_layers: int | None, work_dir: Path,
                 progress: Progress, optimizer: Optimizer = SGD, port: str | None = None,
                 tool: str | None = None, batch: int = 0) -> Iterator[Trainer]:
    """``board``: the firmware built for ``trainable_layers`` (None: Full) and ``optimizer`` on the
    simulated STM32L496 (the Unicorn model), with a dataset region of ``batch`` windows so that each step is
    one memory write and one TRAIN_BATCH; ``renode``: the same firmware in Renode, started as a program, over
    its console UART; ``serial``: the same firmware on the board at ``port`` (programmed with ``tool`` when it
    runs another model), over the UART; ``tf``: the TensorFlow reference."""
    if kind == "tf":
        from pyodl.reference.golden import KerasReference

        yield KerasReference(model, optimizer)
        return
    if kind not in ("board", "serial", "renode"):
        raise ValueError(f"trainer must be one of {', '.join(TRAINERS)}, got {kind!r}")
    from pyodl.network.open import open_network

    backend = {"board": "unicorn", "serial": "serial", "renode": "renode"}[kind]
    progress("export and build", 0, 1)
    with open_network(backend, model, work_dir, trainable_layers, port, optimizer, tool, batch) as net:
        progress("export and build", 1, 1)
        yield net


@dataclass(frozen=True)
class StepCost:
    """One replay step's instructions and energy on the device, from the estimator."""

    instructions: int
    millijoules: float


def step_cost(model: Model, trainable_layers: int, batch: int) -> StepCost:
    from pyodl.resources.energy import RUN_MODES
    from pyodl.resources.estimate import estimate

    est = estimate(model.arch, trainable_layers, batch)
    return StepCost(est.instructions_per_batch, RUN_MODES["pll80"].millijoules(est.cycles_per_batch))
