"""What an experiment trains with: the firmware on a board, or TensorFlow on the very same batches.

Both sides already speak the three calls an experiment needs (a :class:`~pyodl.network.base.Network` and
the :class:`~pyodl.reference.golden.KerasReference`), so a trainer is either one of them, opened here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from pyodl.model.architecture import Model
from pyodl.model.optimizer import SGD, Optimizer

TRAINERS = ("board", "tf", "serial", "renode")
Progress = Callable[[str, int, int], None]  # (what, done, total)


class Trainer(Protocol):
    def set_trainable(self, trainable_layers: int) -> None: ...

    def train_step(self, xs: np.ndarray, labels: np.ndarray, learning_rate: float) -> float: ...

    def predict_classes(self, xs: np.ndarray) -> np.ndarray: ...


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
