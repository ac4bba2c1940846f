"""The model a user gives the Robot suites (``--variable MODEL:path/to/model.keras``) and the windows they train
it on: from ``DATA`` (a recordings table) when given, else from numpy's seeded generator.

Every variable is checked here, before TensorFlow loads (``pyodl ci plan`` checks them so, in a second), and a
bad one is a ModelError naming the variable.
Without MODEL the suites run the paper's model and none of the other variables applies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pyodl.data.table import load_table
from pyodl.data.windows import Normalizer, personalization_split, windows_of
from pyodl.model.architecture import PAPER_TL_LAYERS, Architecture, Model, ModelError
from pyodl.model.fold import fold_frozen_batchnorm
from pyodl.model.keras_file import checked_path
from pyodl.model.optimizer import SGD, Optimizer

MODES = ("full", "tl")
DATA_SUFFIXES = (".csv", ".npz")
# The firmware's dataset region holds a batch of the suites (32 windows): each training step is one store of its
# windows and one TRAIN_BATCH command. A board for BACKEND:serial is flashed with as many (--dataset-windows).
DATASET_WINDOWS = 32
DEFAULT_RATE_HZ = 20.0  # the rate the pipeline resamples every recording to: DATA at 20 Hz is used as it is
# Without DATA, int8.robot personalizes on this many seeded windows and tests on this many more.
RANDOM_PERSONALIZATION_WINDOWS = 64
RANDOM_TEST_WINDOWS = 32


def _whole(name: str, text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ModelError(f"{name}: {text!r} is not a whole number") from None
    if value < low:
        raise ModelError(f"{name}: must be >= {low}, got {value}")
    return value


def trainable_layers(mode: str, trainable: str) -> int | None:
    """MODE and TRAINABLE as export reads them: None (Full) or the count of last parameter layers that train.
    TRAINABLE alone means TL; TL without TRAINABLE trains the paper's last 2 layers."""
    if mode and mode not in MODES:
        raise ModelError(f"MODE: must be full or tl, got {mode!r}")
    count = _whole("TRAINABLE", trainable, 1) if trainable else None
    if mode == "full":
        if count is not None:
            raise ModelError("TRAINABLE applies to MODE:tl only")
        return None
    if mode == "tl":
        return PAPER_TL_LAYERS if count is None else count
    return count


@dataclass
class SuiteModel:
    """A user's model and how the suites build and train it."""

    path: Path
    trainable: int | None = None
    optimizer: Optimizer = SGD
    data: Path | None = None
    rate_hz: float = DEFAULT_RATE_HZ
    _model: Model | None = field(default=None, repr=False)
    _windows: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @classmethod
    def from_variables(cls, model: str, data: str = "", mode: str = "", trainable: str = "",
                       optimizer: str = "", rate: str = "") -> SuiteModel | None:
        """The suites' variables as Robot passes them (text; empty: not given). None without MODEL."""
        if not model:
            given = [name for name, value in (("DATA", data), ("MODE", mode), ("TRAINABLE", trainable),
                                              ("OPTIMIZER", optimizer), ("RATE", rate)) if value]
            if given:
                raise ModelError(f"{', '.join(given)} apply to a MODEL only: give --variable MODEL:path/to/model.keras")
            return None
        path = checked_path(Path(model).resolve(), "MODEL")
        layers = trainable_layers(mode, trainable)
        try:
            parsed = Optimizer.parse(optimizer) if optimizer else SGD
        except ValueError as exc:
            raise ModelError(f"OPTIMIZER: {exc}") from None
        data_path = None
        if data:
            data_path = Path(data).resolve()
            if not data_path.is_file():
                raise ModelError(f"DATA {data}: " + ("not a file" if data_path.exists() else "no such file"))
            if data_path.suffix not in DATA_SUFFIXES:
                raise ModelError(f"DATA {data}: expected a recordings table (.csv or .npz: columns subject, label, "
                                 "then one per channel)")
        rate_hz = DEFAULT_RATE_HZ
        if rate:
            try:
                rate_hz = float(rate)
            except ValueError:
                raise ModelError(f"RATE: {rate!r} is not a number") from None
            if not 0 < rate_hz <= 100_000:
                raise ModelError(f"RATE: must be > 0 and <= 100000 Hz, got {rate}")
        return cls(path, layers, parsed, data_path, rate_hz)

    def model(self) -> Model:
        """The model the device runs (a TL build's frozen BatchNormalizations folded), loaded once."""
        if self._model is None:
            from pyodl.model.keras_io import load  # TensorFlow: only when a suite builds the model

            loaded = load(self.path)
            if self.trainable is not None and self.trainable > len(loaded.arch.param_layers):
                raise ModelError(f"TRAINABLE: {self.trainable} layers, but {self.path.name} has only "
                                 f"{len(loaded.arch.param_layers)} parameter layers")
            self._model = fold_frozen_batchnorm(loaded, self.trainable)
        return self._model

    def data_windows(self, arch: Architecture) -> tuple[np.ndarray, np.ndarray]:
        """Every window of DATA (the model's length, half overlapping, standardised), with its class."""
        if self._windows is None:
            assert self.data is not None
            recordings = self._recordings(arch)
            w = windows_of(recordings, arch.input_len, max(arch.input_len // 2, 1), list(range(arch.input_ch)))
            if len(w) == 0:
                raise ModelError(f"DATA {self.data.name}: no recording has {arch.input_len} samples (at 20 Hz), the "
                                 "model's input length")
            self._windows = (Normalizer.fit(w.x)(w.x), w.y)
        return self._windows

    def _recordings(self, arch: Architecture) -> list:
        assert self.data is not None
        try:
            recordings, classes, channels = load_table(self.data, self.rate_hz)
        except ValueError as exc:
            raise ModelError(f"DATA: {exc}") from None
        if len(channels) < arch.input_ch:
            raise ModelError(f"DATA {self.data.name}: {len(channels)} channels, the model takes {arch.input_ch}")
        if len(classes) > arch.num_classes:
            raise ModelError(f"DATA {self.data.name}: {len(classes)} classes ({', '.join(classes)}), the model has "
                             f"{arch.num_classes} outputs")
        return recordings

    def batches(self, arch: Architecture, steps: int, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(steps, batch, T, C) windows and (steps, batch) labels: drawn from DATA's windows by
        ``default_rng(seed)``, or the seeded standard-normal windows of the golden check."""
        if self.data is None:
            from pyodl.reference import golden  # TensorFlow: not for the variables' checks

            return golden.random_batches(arch, steps, batch, seed)
        x, y = self.data_windows(arch)
        pick = np.random.default_rng(seed).choice(len(y), size=(steps, batch), replace=len(y) < steps * batch)
        return x[pick], y[pick]

    def split(self, arch: Architecture, seed: int) -> tuple[tuple[np.ndarray, np.ndarray],
                                                            tuple[np.ndarray, np.ndarray]]:
        """Personalization and test windows with their labels: each recording's first half and second half of
        DATA (standardised on the first), or seeded standard-normal windows and uniform labels."""
        if self.data is None:
            rng = np.random.default_rng(seed)
            n = RANDOM_PERSONALIZATION_WINDOWS + RANDOM_TEST_WINDOWS
            x = rng.standard_normal((n, arch.input_len, arch.input_ch)).astype(np.float32)
            y = rng.integers(0, arch.num_classes, size=n)
            k = RANDOM_PERSONALIZATION_WINDOWS
            return (x[:k], y[:k]), (x[k:], y[k:])
        pers, test = personalization_split(self._recordings(arch), arch.input_len, max(arch.input_len // 2, 1), 0.5,
                                           list(range(arch.input_ch)))
        if len(pers) == 0 or len(test) == 0:
            raise ModelError(f"DATA {self.data.name}: no recording's halves hold a window of {arch.input_len} samples "
                             "(at 20 Hz)")
        norm = Normalizer.fit(pers.x)
        return (norm(pers.x), pers.y), (norm(test.x), test.y)
