"""What the commands share: exit statuses, the bounded numeric option types, and the model options (which
model, which layers train, which optimizer)."""

from __future__ import annotations

import argparse
import math
import signal
from pathlib import Path
from typing import TextIO

from pyodl.model.architecture import (
    PAPER_INPUT_LENGTHS,
    PAPER_TL_LAYERS,
    Model,
    ModelError,
    glorot_params,
    paper_architecture,
)
from pyodl.model.fold import fold_frozen_batchnorm
from pyodl.model.keras_file import checked_path
from pyodl.model.optimizer import Optimizer

EXIT_OK, EXIT_MISMATCH, EXIT_ERROR = 0, 1, 2
EXIT_INTERRUPTED, EXIT_TERMINATED = 128 + signal.SIGINT, 128 + signal.SIGTERM  # as a shell reports them

PAPER_DEFAULTS = {"input": 40, "channels": 3, "classes": 6, "seed": 0}

# Bounds of the numeric options. Above them a value is a slip of the keyboard, not a setting: a window of
# more rows than this does not fit the STM32L496's SRAM with the paper's model (its activations alone take
# 16 filters x T floats per convolution), and a seed must be one numpy and TensorFlow both take.
MAX_WINDOW = 4096
MAX_SEED = 2**32 - 1
MAX_EPOCHS = 100_000
MAX_BATCH = 65_536
MAX_WORKERS = 256


class Bounded:
    """An argparse ``type``: a number within [low, high] (``low_open``: above ``low``), refused at parse time
    with the bounds in the message, before any work. Kept on the action (``action.type``), so a test can
    walk every numeric option of every command."""

    def __init__(self, kind: type[int] | type[float], low: float, high: float, low_open: bool = False) -> None:
        self.kind, self.low, self.high, self.low_open = kind, low, high, low_open
        self.__name__ = "whole number" if kind is int else "number"  # argparse names the type by it

    def __call__(self, text: str) -> int | float:
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {self.__name__}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        too_low = value <= self.low if self.low_open else value < self.low
        if too_low or value > self.high:
            low = f"> {self.low:g}" if self.low_open else f">= {self.low:g}"
            raise argparse.ArgumentTypeError(f"must be {low} and <= {self.high:g}, got {text}")
        return value

    def examples_outside(self) -> list[str]:
        """Values this type refuses: for the tests that prove every option is guarded."""
        below = self.low if self.low_open else self.low - (1 if self.kind is int else 1e-3)
        above = self.high + 1 if self.kind is int else self.high * 2 + 1
        return [str(self.kind(below)), str(self.kind(above))] + (["nan"] if self.kind is float else [])


def whole(low: int = 1, high: int = MAX_EPOCHS) -> Bounded:
    return Bounded(int, low, high)


def positive(high: float) -> Bounded:
    """A finite number above 0 and at most ``high``."""
    return Bounded(float, 0.0, high, low_open=True)


def fraction(low_open: bool = True, high: float = 1.0) -> Bounded:
    return Bounded(float, 0.0, high, low_open=low_open)


WINDOW = whole(1, MAX_WINDOW)
SEED = whole(0, MAX_SEED)
BATCH = whole(1, MAX_BATCH)
WORKERS = whole(1, MAX_WORKERS)
LEARNING_RATE = positive(10.0)
TRAINABLE_LAYERS = whole(1, 1000)
SECONDS = Bounded(float, 0.0, 3600.0)  # a stretch of a recording


def load_model(args: argparse.Namespace) -> Model:
    """``paper`` builds the paper's model with seeded Keras-default initial weights; anything else is a
    ``.keras`` file, whose own shapes and weights are used."""
    if args.model == "paper":
        for key, value in PAPER_DEFAULTS.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
        arch = paper_architecture(args.input, args.channels, args.classes)
        return Model(arch, glorot_params(arch, args.seed))
    given = [f"--{key}" for key in ("input", "channels", "classes") if getattr(args, key) is not None]
    if given:
        raise ModelError(f"{', '.join(given)} apply to the paper model only; {args.model} carries its own "
                         "shapes and weights")
    model_file(args.model)
    from pyodl.model.keras_io import load

    return load(Path(args.model))


def model_file(path: str, option: str = "") -> Path:
    """A Keras file that exists, checked before TensorFlow loads (which takes seconds)."""
    return checked_path(Path(path), option)


def trainable_count(mode: str | None, trainable_layers: int | None) -> int | None:
    """None for Full mode; the number of last parameter layers for TL (default 2: the paper's TL). Without
    --mode, --trainable-layers N alone means TL, as export reads it."""
    if mode is None:
        return trainable_layers
    if mode == "full":
        if trainable_layers is not None:
            raise ModelError("--trainable-layers applies to --mode tl only")
        return None
    return PAPER_TL_LAYERS if trainable_layers is None else trainable_layers


def mode_name(trainable: int | None) -> str:
    return "full" if trainable is None else "tl"


def device_model(model: Model, trainable: int | None, stream: TextIO | None = None) -> Model:
    """The model the device runs: in a TL build the frozen BatchNormalizations fold into the frozen layer
    before them (:mod:`pyodl.model.fold`). Prints the import's notes and the fold's."""
    device = fold_frozen_batchnorm(model, trainable)
    for note in device.notes:
        print(f"note: {note}", file=stream)
    return device


def parse_optimizer(args: argparse.Namespace, dest: str = "optimizer") -> Optimizer:
    try:
        return Optimizer.parse(getattr(args, dest))
    except ValueError as exc:
        raise ModelError(f"--{dest.replace('_', '-')}: {exc}") from None


def add_model_args(p: argparse.ArgumentParser, seed_help: str) -> None:
    """The model argument and the paper model's shape. ``seed_help`` says what else the seed draws in this
    command."""
    p.add_argument("model", nargs="?", default="paper",
                   help="'paper' (the seed paper's 1-D CNN, default) or a Keras 3 .keras file")
    p.add_argument("--input", type=WINDOW, default=None, metavar="T",
                   help=f"paper model input length (paper: {', '.join(map(str, PAPER_INPUT_LENGTHS))}; default 40)")
    p.add_argument("--channels", type=whole(1, 64), default=None, help="paper model input channels (default 3)")
    p.add_argument("--classes", type=whole(2, 1000), default=None, help="paper model classes (default 6)")
    p.add_argument("--seed", type=SEED, default=None,
                   help=f"seed of the paper model's initial weights{seed_help} (default 0)")


def add_mode_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=("full", "tl"), default=None,
                   help="full: train all layers (the default); tl: only the last --trainable-layers (default 2)")
    p.add_argument("--trainable-layers", type=TRAINABLE_LAYERS, default=None, metavar="N",
                   help="how many of the last Conv1D/Dense/BatchNormalization layers train: TL (default with "
                        "--mode tl: 2)")


def add_dataset_windows_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset-windows", type=whole(0, MAX_BATCH), default=0, metavar="N",
                   help="reserve SRAM for N labelled windows that the host stores in bulk and the batch commands "
                        "(TRAIN_BATCH, EVALUATE) train on or predict (default 0: no region; the per-window "
                        "commands work either way)")
