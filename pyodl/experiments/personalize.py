"""Leave-one-subject-out personalization, as in the seed paper's Table II.

For each held-out subject: pretrain the general model in Keras on every other subject ("No Pers."), then
personalize on the first part of each of the subject's recordings and test on the rest:

- TL: the last two Dense layers;
- Full: every layer, after a warm-up that trains only the last layer (the paper's recipe);
- No Pretrain: every layer, from random initial weights.

TL, Full and No Pretrain run on the simulated board (the firmware trains; windows stream through the
mailbox; predictions are read back) or, with ``trainer="tf"``, in TensorFlow on the very same batches.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from pyodl.board.protocol import STATUS_CODES, CommandError
from pyodl.data import Normalizer, Recording, Windows, windows_of
from pyodl.data.windows import SPLITS, TARGET_RATE_HZ, resample, subject_split
from pyodl.experiments.checkpoint import Checkpoint
from pyodl.experiments.trainer import TRAINERS, Progress, Trainer, open_trainer
from pyodl.experiments.workers import run_each
from pyodl.model.architecture import (
    PAPER_TL_LAYERS,
    WINDOW_KINDS,
    Architecture,
    Kind,
    Model,
    ModelError,
    glorot_params,
    paper_architecture,
)
from pyodl.model.fold import fold_frozen_batchnorm
from pyodl.model.optimizer import Optimizer
from pyodl.model.quantized import check_bits_spec, parse_image, weight_bits
from pyodl.network.host import OdlError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CONDITIONS = ("No Pers.", "TL", "Full", "No Pretrain")
ADAPTIVE_SPEC = "8"  # adaptive inference runs the 8-bit model
# Thresholds of the adaptive curve (cheap-mode confidence * 256 below which the whole window runs).
ADAPTIVE_THRESHOLDS = (0, 64, 96, 128, 144, 160, 176, 192, 200, 208, 216, 224, 232, 240, 248, 256)
# How the general model is pretrained: part of its cache key, so a change of recipe is a new model.
PRETRAIN_OPTIMIZER = "adam"
PRETRAIN_LEARNING_RATE = 1e-3
PRETRAIN_BATCH = 64
CACHE_FORMAT = 2  # bump when what a cached file holds changes


@dataclass(frozen=True)
class Config:
    input_len: int = 40
    stride: int = 20
    channels: tuple[int, ...] = (0, 1, 2)  # the watch's accelerometer, as the paper's (T, 3) input
    epochs: int = 20
    warmup_epochs: int = 5
    pretrain_epochs: int = 30
    # From random weights, SGD at the paper's lr 0.01 needs ~200 epochs on the watch data (TensorFlow, 10
    # subjects: F1 0.25 after 10 epochs, 0.82 after 100); Adam at lr 0.003, the pretraining's optimizer, scores
    # F1 0.92 after 30 (0.94 after 100; lr 0.001: 0.89). No Pretrain is the baseline, so it gets the recipe
    # that trains it best for the device's time: Adam, 30 epochs.
    no_pretrain_epochs: int = 30
    no_pretrain_optimizer: str = "adam"
    no_pretrain_learning_rate: float = 0.003
    # ... at most: No Pretrain stops once its training loss has not fallen below (1 - NO_PRETRAIN_MIN_GAIN) of
    # its best so far for this many epochs (0: always the whole budget). The same rule for every trainer.
    no_pretrain_patience: int = 10
    batch: int = 32
    learning_rate: float = 0.01
    optimizer: str = "sgd"  # on the device and in --trainer tf, as pyodl.model.optimizer.Optimizer.parse reads it
    fraction: float = 0.5
    seed: int = 0
    trainer: str = "board"
    port: str | None = None  # trainer "serial": the board's pyserial URL
    tool: str | None = None  # trainer "serial": openocd or pyocd, to program each condition's firmware
    split: str = "time"  # time: each recording cut in two; recording: whole recordings to the test side
    # The time split's test part starts this long after the cut (None: one window, 2 s at T=40 and 20 Hz).
    gap_seconds: float | None = None
    trainable_layers: int | None = None  # TL; None: the paper's 2 for its model, a user model's Dense head
    # After each condition's training, its int8 copy with these weight widths (pyodl.model.quantized.weight_bits),
    # calibrated on the personalization windows, is scored on the test windows too.
    quantize: tuple[str, ...] = ("8", "4")
    # Adaptive inference of the 8-bit model: its cheap mode reads the newest rows only (None: half the window;
    # 0: none).
    adaptive_length: int | None = None

    @property
    def gap(self) -> float:
        """The time split's gap in seconds."""
        return self.input_len / TARGET_RATE_HZ if self.gap_seconds is None else self.gap_seconds

    @property
    def cheap_length(self) -> int:
        if ADAPTIVE_SPEC not in self.quantize:
            return 0
        return self.input_len // 2 if self.adaptive_length is None else self.adaptive_length

    def __post_init__(self) -> None:
        if self.trainer not in TRAINERS:
            raise ValueError(f"trainer must be one of {', '.join(TRAINERS)}, got {self.trainer!r}")
        if self.trainer == "serial" and not self.port:
            raise ValueError("the serial trainer needs the board's port (e.g. /dev/ttyACM0)")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if self.trainable_layers is not None and self.trainable_layers < 1:
            raise ValueError("trainable_layers must be >= 1")
        for name in ("input_len", "stride", "epochs", "batch", "pretrain_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.no_pretrain_epochs < 1:
            raise ValueError("no_pretrain_epochs must be >= 1")
        if self.no_pretrain_patience < 0:
            raise ValueError("no_pretrain_patience must be >= 0")
        Optimizer.parse(self.optimizer)  # ValueError naming the fault
        Optimizer.parse(self.no_pretrain_optimizer)
        if not (self.no_pretrain_learning_rate > 0 and np.isfinite(self.no_pretrain_learning_rate)):
            raise ValueError("no_pretrain_learning_rate must be a finite number > 0")
        if self.gap_seconds is not None and not (self.gap_seconds >= 0 and np.isfinite(self.gap_seconds)):
            raise ValueError("gap_seconds must be a finite number of seconds >= 0")
        for spec in self.quantize:
            check_bits_spec(spec)
        if self.adaptive_length is not None and not 0 <= self.adaptive_length < self.input_len:
            raise ValueError(f"adaptive_length must be 0 (none) or below the window's {self.input_len} rows")
        if self.warmup_epochs < 0 or not (self.learning_rate > 0 and np.isfinite(self.learning_rate)):
            raise ValueError("warmup_epochs must be >= 0 and the learning rate a finite number > 0")


@dataclass(frozen=True)
class GeneralModel:
    """Where each subject's general model comes from: the paper's CNN pretrained here (the default), a
    user's architecture pretrained here (``pretrain``), or a user's trained model used as is, with the
    input normalisation it was trained with (``norm``; None: fitted on the other subjects' windows)."""

    name: str = "paper"
    model: Model | None = None
    pretrain: bool = True
    norm: Normalizer | None = None

    def fitted_on_others(self) -> str | None:
        """How this general model depends on the other subjects' windows (None: it does not)."""
        return fitted_on_others(self.name, self.model is None or self.pretrain, self.norm is not None)

    def architecture(self, input_len: int, channels: int, num_classes: int) -> Architecture:
        if self.model is None:
            return paper_architecture(input_len, channels, num_classes)
        arch = self.model.arch
        if (arch.input_len, arch.input_ch, arch.num_classes) != (input_len, channels, num_classes):
            raise ModelError(f"{self.name} takes ({arch.input_len}, {arch.input_ch}) windows and has "
                             f"{arch.num_classes} classes; the data gives ({input_len}, {channels}) windows of "
                             f"{num_classes} classes (choose --input and --channels to match)")
        return arch


def fitted_on_others(name: str, pretrained_here: bool, norm_given: bool) -> str | None:
    """How a general model named ``name`` depends on the other subjects' windows (None: not at all)."""
    if pretrained_here:
        return "the general model is pretrained on the other subjects"
    if not norm_given:
        return (f"{name}'s inputs are normalised with the other subjects' statistics (no "
                f"{Path(name).with_suffix('.norm.json').name} beside it)")
    return None


def default_tl_layers(general: GeneralModel, arch: Architecture) -> int:
    """The paper's TL trains its two Dense layers; for a user model, likewise its trailing Dense layers."""
    if general.model is None:
        return PAPER_TL_LAYERS
    head = 0
    for i in reversed(arch.param_layers):
        if arch.layers[i].kind is not Kind.DENSE:
            break
        head += 1
    return max(head, 1)


@dataclass
class AdaptiveWindows:
    """Adaptive int8 inference on each test window: the cheap mode (the newest ``length`` rows) and its
    confidence (largest int8 probability * 256), and the whole window's class; any threshold's choice follows."""

    length: int
    cheap_class: list[int]
    cheap_confidence: list[int]
    full_class: list[int]
    true_class: list[int]

    def choose(self, threshold: int) -> tuple[np.ndarray, float]:
        """The classes adaptive inference gives at ``threshold``, and the share of windows that ran whole."""
        conf = np.array(self.cheap_confidence)
        full = conf < threshold
        return np.where(full, np.array(self.full_class), np.array(self.cheap_class)), float(np.mean(full))


@dataclass
class QuantizedResult:
    """A condition's model quantized (weights of ``bits``, activations int8) and scored on the test windows."""

    bits: list[int]  # per parameter layer
    f1: float
    accuracy: float
    agreement: float  # share of test windows where the int8 and the float model pick the same class
    weight_bytes: int  # the int8 weights, packed
    where: str  # "board": quantized and run by the firmware; "host": by the same C library built for this computer
    adaptive: AdaptiveWindows | None = None  # 8-bit weights only, for a model whose cheap mode exists


@dataclass
class ConditionResult:
    f1: float
    accuracy: float
    confusion: list[list[int]]
    losses: list[float] = field(default_factory=list)  # mean training loss per epoch
    quantized: dict[str, QuantizedResult] = field(default_factory=dict)  # by weight-bits spec


@dataclass
class SubjectResult:
    subject: int
    personalization_windows: int
    test_windows: int
    conditions: dict[str, ConditionResult]
    norm_mean: list[float]  # the general model's input normalisation, per channel
    norm_std: list[float]
    general_model: str  # its cache key ('' for a user model used as is)
    general_model_cached: bool  # loaded from the cache rather than pretrained by this run
    untested_classes: list[int] = field(default_factory=list)  # --split recording: a single recording

    @staticmethod
    def from_json(d: dict[str, Any]) -> SubjectResult:
        """The inverse of ``asdict``: a result saved by :class:`~pyodl.experiments.checkpoint.Checkpoint`."""
        conditions = {}
        for name, c in d["conditions"].items():
            quantized = {spec: QuantizedResult(**{**q, "adaptive": None if q["adaptive"] is None
                                                  else AdaptiveWindows(**q["adaptive"])})
                         for spec, q in c["quantized"].items()}
            conditions[name] = ConditionResult(**{**c, "quantized": quantized})
        return SubjectResult(**{**d, "conditions": conditions})


def _evaluate(y_true: np.ndarray, y_pred: np.ndarray, classes: int, losses: list[float]) -> ConditionResult:
    return ConditionResult(float(f1_score(y_true, y_pred, average="macro")), float(accuracy_score(y_true, y_pred)),
                           confusion_matrix(y_true, y_pred, labels=list(range(classes))).tolist(), losses)


def quantize_and_score(net: Any, specs: tuple[str, ...], calibration: np.ndarray, test: Windows,
                       float_classes: np.ndarray, num_classes: int, where: str,
                       adaptive_length: int = 0) -> dict[str, QuantizedResult]:
    """``net``'s int8 copy for each weight-bits spec: calibrated on ``calibration``, quantized, scored on
    ``test``. ``net`` is a BoardNetwork (the firmware quantizes) or a HostNetwork (the same library here)."""
    out: dict[str, QuantizedResult] = {}
    if not specs:
        return out
    net.int8_calibrate(calibration, reset=True)
    for spec in specs:
        bits = weight_bits(net.arch, spec)
        net.int8_quantize(bits)
        qm = parse_image(net.arch, net.int8_image())
        classes = np.asarray(net.int8_predict_classes(test.x))
        scored = _evaluate(test.y, classes, num_classes, [])
        out[spec] = QuantizedResult(bits, scored.f1, scored.accuracy, float(np.mean(classes == float_classes)),
                                    qm.weight_bytes(), where, _adaptive(net, test, adaptive_length)
                                    if spec == ADAPTIVE_SPEC and adaptive_length else None)
    return out


def _adaptive(net: Any, test: Windows, length: int) -> AdaptiveWindows | None:
    """PREDICT_A of every test window with the whole window always run (threshold 256): the cheap mode's class
    and confidence and the whole window's class. None when the model has no cheap mode (a padded window
    layer, a Flatten)."""
    try:
        runs = [net.int8_predict_adaptive(x, length, 256) for x in test.x]
    except (CommandError, OdlError) as exc:
        if exc.status != STATUS_CODES["ODL_ERR_UNSUPPORTED"]:
            raise
        return None
    return AdaptiveWindows(length, [r.cheap_class for r in runs], [r.cheap_confidence for r in runs],
                           [r.predicted_class for r in runs], [int(y) for y in test.y])


class HostQuantizer:
    """:func:`quantize_and_score` on the C library built for this computer: for the general model (no board
    trained it) and for the TensorFlow trainer; its int8 copy is the firmware's, bit for bit
    (tests/network/test_board_int8.py). The library is built once per architecture, with seeded weights, and
    each model's weights are written into it: one build per subject instead of one per condition (a TL model
    whose frozen BatchNormalizations were folded is another architecture), and none across runs when a
    build cache holds it (:mod:`pyodl.toolchain.build_cache`)."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self._built: list[tuple[Architecture, Any]] = []

    def _network(self, arch: Architecture) -> Any:
        for built_arch, net in self._built:
            if built_arch == arch:
                return net
        from pyodl.network.host import HostNetwork
        from pyodl.toolchain.host_library import HostBuilder

        where = self.work / f"host-{len(self._built)}"
        library = HostBuilder(where / "build").export_and_build(Model(arch, glorot_params(arch, 0)), where / "model")
        self._built.append((arch, HostNetwork(library, arch)))
        return self._built[-1][1]

    def score(self, model: Model, specs: tuple[str, ...], calibration: np.ndarray, test: Windows,
              float_classes: np.ndarray, num_classes: int, adaptive_length: int = 0) -> dict[str, QuantizedResult]:
        if not specs:
            return {}
        net = self._network(model.arch)
        net.set_params(model.params)
        return quantize_and_score(net, specs, calibration, test, float_classes, num_classes, "host",
                                  adaptive_length)


NO_PRETRAIN_MIN_GAIN = 0.01  # what counts as the training loss still falling (relative to its best so far)


def fit_epochs(trainer: Trainer, data: Windows, epochs: int, batch: int, learning_rate: float,
               rng: np.random.Generator, progress: Progress, what: str, patience: int = 0) -> list[float]:
    """Mini-batches shuffled each epoch, one optimizer step each; the last partial batch is dropped so both
    trainers see equal batches. Returns each epoch's mean loss. ``patience`` > 0: stop early once the loss
    has not fallen below (1 - NO_PRETRAIN_MIN_GAIN) of its best for that many epochs; the rule reads only
    the losses, so every trainer stops where its own losses say (the same epoch when they agree)."""
    batch = min(batch, len(data))
    losses: list[float] = []
    progress(what, 0, epochs)  # the bar starts before the first epoch, so its rate is honest
    for epoch in range(epochs):
        order = rng.permutation(len(data))
        steps = [order[k:k + batch] for k in range(0, len(order) - batch + 1, batch)]
        losses.append(float(np.mean([trainer.train_step(data.x[s], data.y[s], learning_rate) for s in steps])))
        progress(what, epoch + 1, epochs)
        if patience and len(losses) > patience and \
                min(losses[-patience:]) > (1 - NO_PRETRAIN_MIN_GAIN) * min(losses[:-patience]):
            progress(what, epochs, epochs)  # the bar ends here: the budget was an upper bound
            break
    return losses


def dataset_fingerprint(recordings: list[Recording], classes: list[str]) -> str:
    """Everything of a dataset that can change a general model: every recording's subject, label, rate and
    samples, in order, and the class names."""
    h = hashlib.sha256(json.dumps(classes).encode())
    for r in recordings:
        h.update(json.dumps([r.subject, r.label, r.rate_hz, list(r.signal.shape)]).encode())
        h.update(np.ascontiguousarray(r.signal, dtype="<f4").tobytes())
    return h.hexdigest()


def _pyodl_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pyodl")
    except PackageNotFoundError:
        return "unknown"


def cache_key(fingerprint: str, subject: int, cfg: Config, arch: Architecture) -> str:
    """The general model's identity: the data (all of it, labels included), the held-out subject, the
    windows, the architecture, the pretraining recipe, the seed and pyodl's version."""
    parts = [CACHE_FORMAT, _pyodl_version(), fingerprint, subject, cfg.input_len, cfg.stride, list(cfg.channels),
             cfg.seed, cfg.pretrain_epochs, PRETRAIN_OPTIMIZER, PRETRAIN_LEARNING_RATE, PRETRAIN_BATCH,
             [layer.describe() for layer in arch.layers]]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def pretrain(train: Windows, arch: Architecture, cfg: Config, cache_dir: Path | None, key: str,
             norm: Normalizer, progress: Progress) -> tuple[Model, bool]:
    """The general model: ``arch`` trained with Adam in Keras on ``train`` (already normalised with
    ``norm``); cached by ``key`` with its normalisation beside it (``.norm.json``), which a device needs
    to feed it raw sensor data. Returns the model and whether it came from the cache."""
    from pyodl.model.keras_io import from_keras, keras, load, to_keras

    path = cache_dir / f"general-{key}.keras" if cache_dir else None
    if path and path.exists() and path.with_suffix(".norm.json").exists():
        return load(path), True
    keras.utils.set_random_seed(cfg.seed)
    km = to_keras(Model(arch, glorot_params(arch, cfg.seed)))
    km.compile(optimizer=keras.optimizers.Adam(PRETRAIN_LEARNING_RATE), loss="categorical_crossentropy")

    progress("pretraining", 0, cfg.pretrain_epochs)

    class _Epochs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: object = None) -> None:
            progress("pretraining", epoch + 1, cfg.pretrain_epochs)

    onehot = np.eye(arch.num_classes, dtype=np.float32)[train.y]
    km.fit(train.x, onehot, epochs=cfg.pretrain_epochs, batch_size=PRETRAIN_BATCH, verbose=0,
           callbacks=[_Epochs()])
    try:  # translated before it is cached: a model that is not finite is refused here, never cached
        model = from_keras(km, name="general")
    except ModelError as exc:
        raise ModelError(f"pretraining the general model on {len(train)} windows diverged: {exc}") from None
    if path:
        # Written aside and renamed, so an interrupted run never leaves a half-written model to be loaded.
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.stem}.partial-{os.getpid()}.keras")
        try:
            km.save(partial)
            norm.save(partial.with_suffix(".norm.json"))
            os.replace(partial.with_suffix(".norm.json"), path.with_suffix(".norm.json"))
            os.replace(partial, path)
        finally:  # interrupted or failed: no partial file stays behind
            partial.unlink(missing_ok=True)
            partial.with_suffix(".norm.json").unlink(missing_ok=True)
    return model, False


def run_subject(recordings: list[Recording], subject: int, num_classes: int, cfg: Config,
                cache_dir: Path | None, progress: Progress, fingerprint: str,
                general_source: GeneralModel = GeneralModel()) -> SubjectResult:
    """One held-out subject, whose data :func:`run` checked (:func:`check_data`) before any work."""
    others = [r for r in recordings if r.subject != subject]
    mine = [r for r in recordings if r.subject == subject]
    channels = list(cfg.channels)
    arch = general_source.architecture(cfg.input_len, len(channels), num_classes)
    general_data = windows_of(others, cfg.input_len, cfg.stride, channels)
    norm = general_source.norm if general_source.norm is not None else Normalizer.fit(general_data.x)
    general_data = Windows(norm(general_data.x), general_data.y, general_data.subject)
    pers, test, untested = subject_split(mine, cfg.input_len, cfg.stride, cfg.fraction, channels, cfg.split,
                                         cfg.gap)
    pers = Windows(norm(pers.x), pers.y, pers.subject)
    test = Windows(norm(test.x), test.y, test.subject)
    if general_source.model is not None and not general_source.pretrain:
        general, key, cached = general_source.model, "", False
    else:
        key = cache_key(fingerprint, subject, cfg, arch)
        general, cached = pretrain(general_data, arch, cfg, cache_dir, key, norm, progress)
    tl_layers = cfg.trainable_layers or default_tl_layers(general_source, arch)  # checked by run()
    from pyodl.reference.golden import KerasReference  # TensorFlow: only once the arguments are known good

    general_classes = KerasReference(general).predict_classes(test.x)
    results = {"No Pers.": _evaluate(test.y, general_classes, num_classes, [])}
    with tempfile.TemporaryDirectory(prefix="pyodl-pers-") as work:
        host = HostQuantizer(Path(work) / "host")
        results["No Pers."].quantized = host.score(general, cfg.quantize, pers.x, test, general_classes, num_classes,
                                                   cfg.cheap_length)
        n_params = len(general.arch.param_layers)
        plans = {
            # The frozen BatchNormalizations fold into the frozen layer before them, on the board and in TF alike.
            "TL": (fold_frozen_batchnorm(general, tl_layers), tl_layers, [(tl_layers, cfg.epochs)]),
            "Full": (general, None, [(1, cfg.warmup_epochs), (n_params, cfg.epochs)]),
            "No Pretrain": (Model(general.arch, glorot_params(general.arch, cfg.seed + 1)), None,
                            [(n_params, cfg.no_pretrain_epochs)]),
        }
        patience = {"No Pretrain": cfg.no_pretrain_patience}
        recipe = {name: (cfg.optimizer, cfg.learning_rate) for name in plans}
        recipe["No Pretrain"] = (cfg.no_pretrain_optimizer, cfg.no_pretrain_learning_rate)
        for name, (start, capacity, phases) in plans.items():
            rng = np.random.default_rng([cfg.seed, subject])
            optimizer, learning_rate = recipe[name]
            # One firmware build folder for the subject's conditions, one after the other: the library is
            # compiled once and each condition recompiles only its model's files.
            with open_trainer(cfg.trainer, start, capacity, Path(work) / "board", progress,
                              Optimizer.parse(optimizer), cfg.port, cfg.tool, cfg.batch) as trainer:
                losses: list[float] = []
                for layers, epochs in phases:
                    trainer.set_trainable(layers)
                    losses += fit_epochs(trainer, pers, epochs, cfg.batch, learning_rate, rng, progress,
                                         f"subject {subject} {name}", patience.get(name, 0))
                float_classes = trainer.predict_classes(test.x)
                results[name] = _evaluate(test.y, float_classes, num_classes, losses)
                if hasattr(trainer, "int8_quantize"):  # a board: the firmware quantizes its own weights
                    quantized = quantize_and_score(trainer, cfg.quantize, pers.x, test, float_classes, num_classes,
                                                   "board", cfg.cheap_length)
                else:
                    quantized = host.score(Model(start.arch, trainer.get_params()), cfg.quantize, pers.x, test,
                                           float_classes, num_classes, cfg.cheap_length)
                results[name].quantized = quantized
    return SubjectResult(subject, len(pers), len(test), results, norm.mean.tolist(), norm.std.tolist(), key,
                         cached, untested)


@dataclass
class Report:
    config: Config
    dataset: str
    classes: list[str]
    subjects: list[SubjectResult]
    seconds: float
    setup: list[str] = field(default_factory=list)  # what the run chose that the command did not say
    # Estimated int8 cost per window (pyodl.resources.inference): the cheap mode's and the whole window's.
    adaptive_cost: dict[str, float] = field(default_factory=dict)
    adaptive_skipped: str = ""  # why the models have no cheap mode (adaptive_obstacle), '' when they have one

    def split_text(self) -> str:
        """How the subject's windows were split, as results.md states it."""
        cfg = self.config
        if cfg.split == "recording":
            return ("whole recordings: of each activity's recordings the first half personalize and the others "
                    "test (where the data names the wrist, as the watch set does, every activity personalizes on "
                    "the same wrist and tests on the other).")
        return (f"in time: each recording's first {cfg.fraction:.0%} personalizes and the rest tests, after a gap "
                f"of {cfg.gap:g} s; no window crosses the cut or the gap.")

    def no_pretrain_epochs_used(self) -> str:
        """How many epochs No Pretrain trained, per subject's range ('37' or '31-52')."""
        used = sorted(len(s.conditions["No Pretrain"].losses) for s in self.subjects)
        return f"{used[0]}" if used[0] == used[-1] else f"{used[0]}-{used[-1]}"

    def adaptive_curve(self, condition: str) -> list[dict[str, float]]:
        """Adaptive inference of ``condition``'s 8-bit model at each threshold: the share of windows run whole,
        instructions and cycles per window (the cheap mode always, the whole window for that share), macro F1
        (mean over subjects). Empty when a subject's model has no cheap mode."""
        runs = [s.conditions[condition].quantized.get(ADAPTIVE_SPEC) for s in self.subjects]
        if not self.adaptive_cost or any(r is None or r.adaptive is None for r in runs):
            return []
        curve = []
        for threshold in ADAPTIVE_THRESHOLDS:
            f1s, whole, total = [], 0.0, 0
            for r in runs:
                assert r is not None and r.adaptive is not None
                chosen, share = r.adaptive.choose(threshold)
                f1s.append(float(f1_score(r.adaptive.true_class, chosen, average="macro")))
                whole += share * len(chosen)
                total += len(chosen)
            share = whole / total
            c = self.adaptive_cost
            curve.append({"threshold": threshold, "whole_share": share, "f1_mean": float(np.mean(f1s)),
                          "instructions": c["cheap_instructions"] + share * c["full_instructions"],
                          "cycles": c["cheap_cycles"] + share * c["full_cycles"]})
        return curve

    def summary(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for c in CONDITIONS:
            f1 = [s.conditions[c].f1 for s in self.subjects]
            acc = [s.conditions[c].accuracy for s in self.subjects]
            out[c] = {"f1_mean": float(np.mean(f1)), "f1_std": float(np.std(f1)),
                      "accuracy_mean": float(np.mean(acc)), "accuracy_std": float(np.std(acc))}
            for spec in self.config.quantize:
                q = [s.conditions[c].quantized[spec] for s in self.subjects]
                out[c][f"int8 {spec}"] = {
                    "f1_mean": float(np.mean([r.f1 for r in q])), "f1_std": float(np.std([r.f1 for r in q])),
                    "accuracy_mean": float(np.mean([r.accuracy for r in q])),
                    "agreement_mean": float(np.mean([r.agreement for r in q]))}
        return out

    def to_json(self) -> dict[str, object]:
        return {"config": asdict(self.config), "dataset": self.dataset, "classes": self.classes,
                "summary": self.summary(), "subjects": [asdict(s) for s in self.subjects], "seconds": self.seconds,
                "setup": self.setup, "adaptive_cost": self.adaptive_cost, "adaptive_skipped": self.adaptive_skipped,
                "adaptive": {c: self.adaptive_curve(c) for c in CONDITIONS}}

    def markdown(self, command: str) -> str:
        cfg = self.config
        where = _trained_by(cfg)
        # A model given with --model and used as is has no cache key: this run trained it for no epoch.
        general = ("general model given with --model and used as is (not pretrained by this run)"
                   if all(not s.general_model for s in self.subjects) else
                   f"general model pretrained {cfg.pretrain_epochs} epochs (Adam)")
        lines = [f"# Personalization on {self.dataset}", "",
                 f"`{command}`: leave-one-subject-out over subjects {[s.subject for s in self.subjects]}, input "
                 f"({cfg.input_len}, {len(cfg.channels)}), TL/Full/No Pretrain trained by {where}: {cfg.epochs} "
                 f"epochs of {_optimizer_name(cfg.optimizer)} (lr {cfg.learning_rate}, batch "
                 f"{cfg.batch}; Full after {cfg.warmup_epochs} "
                 f"warm-up epoch{'s' if cfg.warmup_epochs != 1 else ''} of the last layer"
                 + f"; No Pretrain from random weights with {_optimizer_name(cfg.no_pretrain_optimizer)} (lr "
                   f"{cfg.no_pretrain_learning_rate}) "
                 + (f"for {cfg.no_pretrain_epochs} epochs" if not cfg.no_pretrain_patience else
                    f"until its training loss stops falling by {NO_PRETRAIN_MIN_GAIN:.0%} in "
                    f"{cfg.no_pretrain_patience} epochs, at most {cfg.no_pretrain_epochs}: "
                    f"{self.no_pretrain_epochs_used()} epochs")
                 + f"), {general}. Wall time {self.seconds:.0f} s.", "", f"Split: {self.split_text()}", "",
                 *[f"- {line}" for line in self.setup], *([""] if self.setup else [])]
        specs = cfg.quantize
        heads = "".join(f" {_spec_name(q)} F1 | agrees |" for q in specs)
        lines += ["| condition | macro F1 | accuracy |" + heads, "|---|---|---|" + "---|---|" * len(specs)]
        several = len(self.subjects) > 1  # one subject has no spread: no "± 0.000"

        def spread(mean: float, std: float) -> str:
            return f"{mean:.3f} ± {std:.3f}" if several else f"{mean:.3f}"

        for c, s in self.summary().items():
            q = "".join(f" {spread(s[f'int8 {spec}']['f1_mean'], s[f'int8 {spec}']['f1_std'])} | "
                        f"{s[f'int8 {spec}']['agreement_mean']:.1%} |" for spec in specs)
            lines.append(f"| {c} | {spread(s['f1_mean'], s['f1_std'])} | "
                         f"{spread(s['accuracy_mean'], s['accuracy_std'])} |" + q)
        lines += ["", "Means over subjects; ± is the standard deviation over subjects." if several else
                  "One subject: its own scores, no spread."]
        if specs:
            wbytes = {spec: self.subjects[0].conditions["TL"].quantized[spec].weight_bytes for spec in specs}
            where = "the firmware on the board" if cfg.trainer != "tf" else "the C library built for this computer"
            lines += ["", "int8 columns: each condition's model quantized after its training by " + where
                      + " (No Pers.: by the C library built for this computer, which quantizes bit for bit as the "
                      "firmware does), activations calibrated on the personalization windows; `agrees`: the share "
                      "of test windows where the int8 and the float model pick the same class. Packed weights: "
                      + ", ".join(f"{_spec_name(spec)} {wbytes[spec]} bytes" for spec in specs) + "."]
        lines += ["", "| subject | windows (pers./test) | " + " | ".join(f"{c} F1" for c in CONDITIONS) + " |",
                  "|---|---|" + "---|" * len(CONDITIONS)]
        for s in self.subjects:
            lines.append(f"| {s.subject} | {s.personalization_windows}/{s.test_windows} | "
                         + " | ".join(f"{s.conditions[c].f1:.3f}" for c in CONDITIONS) + " |")
        if any(s.general_model for s in self.subjects):
            lines += ["", "General models (cache key; cached = loaded from the cache, not pretrained by this run): "
                      + ", ".join(f"subject {s.subject} `{s.general_model}` "
                                  f"{'cached' if s.general_model_cached else 'pretrained'}" for s in self.subjects)]
        for s in self.subjects:
            if s.untested_classes:
                lines += ["", f"Subject {s.subject}: no test recording of "
                          + ", ".join(self.classes[c] for c in s.untested_classes) + " (a single recording each)."]
        curve = self.adaptive_curve("TL")
        if curve:
            c = self.adaptive_cost
            lines += ["", f"Adaptive inference of TL's 8-bit model: a cheap mode runs the same int8 network on the "
                      f"newest {cfg.cheap_length} of the {cfg.input_len} rows; when its confidence (largest int8 "
                      f"probability) is below the threshold, the whole window runs too. Instructions and cycles "
                      f"per window are the estimator's (pyodl estimate --inference int8): cheap mode "
                      f"{c['cheap_instructions']:,.0f}, whole window {c['full_instructions']:,.0f}.", "",
                      "| threshold | windows run whole | instructions/window | ms at 80 MHz | macro F1 |",
                      "|---|---|---|---|---|"]
            for p in curve:
                lines.append(f"| {p['threshold'] / 256:.3f} | {p['whole_share']:.1%} | {p['instructions']:,.0f} | "
                             f"{p['cycles'] / 80e3:.2f} | {p['f1_mean']:.3f} |")
            whole = self.summary()["TL"][f"int8 {ADAPTIVE_SPEC}"]["f1_mean"]
            lines += [f"| no cheap mode: the whole window alone | 100% | {c['full_instructions']:,.0f} | "
                      f"{c['full_cycles'] / 80e3:.2f} | {whole:.3f} |", "",
                      "Threshold 1.000 runs both modes on every window; the last row is the 8-bit model without "
                      "adaptive inference.", "", "![adaptive inference](adaptive.png)"]
        elif cfg.cheap_length:
            lines += ["", f"Adaptive inference (a cheap mode on the newest {cfg.cheap_length} of the {cfg.input_len} "
                      "rows) was skipped: " + (self.adaptive_skipped or "the firmware refused the cheap mode "
                                               "(ODL_ERR_UNSUPPORTED)") + "."]
        from pyodl.experiments.plots import class_key

        key = class_key(self.classes)
        lines += ["", *([f"Classes: {key}.", ""] if key else []),
                  "![confusion matrices](confusion.png)", "", "![loss curves](losses.png)", ""]
        return "\n".join(lines)


def _optimizer_name(text: str) -> str:
    """'SGD' or 'Adam' for an optimizer with Keras's defaults, else its full description."""
    optimizer = Optimizer.parse(text)
    return {"sgd": "SGD", "adam": "Adam"}[optimizer.kind] if optimizer == Optimizer(optimizer.kind) else text


def _trained_by(cfg: Config) -> str:
    return {"board": "the firmware on the simulated STM32L496", "tf": "TensorFlow",
            "serial": f"the firmware on the board at {cfg.port}",
            "renode": "the firmware on Renode's STM32L496"}[cfg.trainer]


def _spec_name(spec: str) -> str:
    return {"8": "int8", "4": "4-bit", "2": "2-bit"}.get(spec, f"bits {spec}")


def run(recordings: list[Recording], classes: list[str], subjects: list[int], cfg: Config, dataset: str,
        cache_dir: Path | None, progress: Progress, general: GeneralModel = GeneralModel(),
        setup: list[str] | None = None, workers: int = 1, ray_address: str | None = None,
        checkpoint: Checkpoint | None = None) -> Report:
    """``setup``: lines for the report saying what the run chose by default (channels, TL layers, ...);
    ``workers``: subjects run in that many processes at once, or ``ray_address``: as tasks on that Ray
    cluster (the same report either way); ``checkpoint``: each subject's result saved as it finishes, and
    those of an earlier run of the same settings taken up when it resumes."""
    check_data(recordings, subjects, cfg, general.fitted_on_others(), dataset)
    arch = general.architecture(cfg.input_len, len(cfg.channels), len(classes))
    arch.first_trained(cfg.trainable_layers or default_tl_layers(general, arch))  # before any training
    fingerprint = dataset_fingerprint(recordings, classes)
    start = time.perf_counter()
    taken_up: dict[int, SubjectResult] = {}
    if checkpoint is not None:
        saved = checkpoint.start(run_identity(cfg, fingerprint, general), "settings, data or general model")
        taken_up = {s: SubjectResult.from_json(saved[s]) for s in subjects if s in saved}
    todo = [s for s in subjects if s not in taken_up]
    jobs = [dict(recordings=recordings, subject=s, num_classes=len(classes), cfg=cfg, cache_dir=cache_dir,
                 fingerprint=fingerprint, general_source=general) for s in todo]
    saving = None if checkpoint is None else (lambda i, result: checkpoint.save(todo[i], asdict(result)))
    computed = dict(zip(todo, run_each(run_subject, jobs, workers, progress, ray_address=ray_address,
                                       on_result=saving), strict=True))
    results = [taken_up[s] if s in taken_up else computed[s] for s in subjects]
    resumed = [f"resumed: subjects {sorted(taken_up)} taken up from the results an earlier run saved"] \
        if taken_up else []
    return Report(cfg, dataset, classes, results, time.perf_counter() - start, list(setup or []) + resumed,
                  adaptive_cost(arch, cfg.cheap_length), adaptive_obstacle(arch, cfg.cheap_length))


def run_identity(cfg: Config, fingerprint: str, general: GeneralModel) -> str:
    """What a subject's result depends on: the settings (not where the board is), the data, the general
    model (its weights and normalisation when given) and pyodl's version."""
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("port", "tool")}
    digest = hashlib.sha256()
    if general.model is not None:
        for w, b in general.model.params:
            digest.update(np.ascontiguousarray(w, np.float32).tobytes())
            digest.update(np.ascontiguousarray(b, np.float32).tobytes())
        digest.update(json.dumps([layer.describe() for layer in general.model.arch.layers]).encode())
    norm = None if general.norm is None else [general.norm.mean.tolist(), general.norm.std.tolist()]
    parts = [CACHE_FORMAT, _pyodl_version(), settings, fingerprint, general.name, general.pretrain,
             digest.hexdigest(), norm]
    return hashlib.sha256(json.dumps(parts, default=list).encode()).hexdigest()[:16]


def check_data(recordings: list[Recording], subjects: list[int], cfg: Config, fitted_on_others: str | None,
               dataset: str) -> None:
    """Before any work (TensorFlow, builds, pretraining): the subjects are in the data, each has
    personalization and test windows, and, where the general model is fitted to the other subjects
    (``fitted_on_others`` says how, :meth:`GeneralModel.fitted_on_others`), those have windows."""
    known = sorted({r.subject for r in recordings})
    missing = [s for s in subjects if s not in known]
    if missing:
        raise ValueError(f"subjects {missing} are not in {dataset} (it has {known})")
    # Windows never cross recordings: each subject's are counted once, the others' are the rest.
    windows_by_subject = {s: len(windows_of([r for r in recordings if r.subject == s], cfg.input_len, cfg.stride,
                                            list(cfg.channels))) for s in known}
    for subject in subjects:
        mine = [r for r in recordings if r.subject == subject]
        pers, test, _ = subject_split(mine, cfg.input_len, cfg.stride, cfg.fraction, list(cfg.channels),
                                      cfg.split, cfg.gap)
        if len(pers) == 0 or len(test) == 0:
            longest = max(len(resample(r.signal, r.rate_hz)) for r in mine)
            raise ValueError(f"subject {subject}: no {'personalization' if len(pers) == 0 else 'test'} window of "
                             f"{cfg.input_len} samples with --split {cfg.split} (its longest recording has "
                             f"{longest} samples at 20 Hz): choose a shorter --input"
                             + (" or --gap" if cfg.split == "time" and cfg.gap else ""))
        if fitted_on_others is None:
            continue
        if known == [subject]:
            raise ValueError(f"leave-one-subject-out needs recordings of at least 2 subjects, and {dataset} has "
                             f"only subject {subject}: {fitted_on_others}. To personalize a single subject, give "
                             "a trained model with --model MODEL.keras and its MODEL.norm.json beside it")
        if sum(windows_by_subject.values()) == windows_by_subject[subject]:
            raise ValueError(f"held out subject {subject}, the other subjects' recordings hold no window of "
                             f"{cfg.input_len} samples, and {fitted_on_others}: choose a shorter --input")


def adaptive_cost(arch: Architecture, cheap_length: int) -> dict[str, float]:
    """The estimated int8 cost of the cheap mode and of the whole window ({} without a cheap mode)."""
    from pyodl.resources.inference import estimate_inference

    if not cheap_length:
        return {}
    try:
        short = Architecture.build(arch.name, cheap_length, arch.input_ch, [layer.spec() for layer in arch.layers])
    except ModelError:
        return {}
    cheap, full = estimate_inference(short, ADAPTIVE_SPEC), estimate_inference(arch, ADAPTIVE_SPEC)
    return {"cheap_instructions": cheap.instructions, "full_instructions": full.instructions,
            "cheap_cycles": cheap.cycles, "full_cycles": full.cycles}


def adaptive_obstacle(arch: Architecture, cheap_length: int) -> str:
    """Why the firmware cannot run ``arch`` on its newest ``cheap_length`` rows, the cheap mode of adaptive
    inference ('' when it can, or without a cheap mode), by the firmware's own rule (out_rows in
    firmware/odl/network_int8.c): on fewer rows a sliding layer must pad nothing, and no Flatten or Dense may
    see them."""
    if not cheap_length:
        return ""
    rows = cheap_length
    for layer in arch.layers:
        if rows == layer.in_len:  # the rest of the network sees what it sees on a whole window
            return ""
        if layer.kind in WINDOW_KINDS:
            span = layer.dilation * (layer.size - 1) + 1
            if layer.pad or layer.in_len < span or layer.out_len != (layer.in_len - span) // layer.stride + 1:
                return (f"layer '{layer.name}' pads its input (padding='{layer.padding}'), and the firmware runs a "
                        "layer on fewer rows than the window only when it pads nothing: the padded rows, and so "
                        "every output, would depend on the window's length")
            if rows < span:
                return f"layer '{layer.name}' reads {span} rows at a time, more than the cheap mode leaves it ({rows})"
            rows = (rows - span) // layer.stride + 1
        elif layer.kind in (Kind.GAP1D, Kind.GMP1D):
            rows = 1
        elif layer.kind in (Kind.DENSE, Kind.FLATTEN):
            return (f"layer '{layer.name}' ({'Flatten' if layer.kind is Kind.FLATTEN else 'Dense'}) takes a fixed "
                    f"number of rows ({layer.in_len}), and the cheap mode would give it {rows}")
    return ""


def plot(report: Report, out: Path) -> None:
    """confusion.png, losses.png and, when the models have a cheap mode, adaptive.png."""
    from pyodl.experiments.plots import save

    save(confusion_figure(report), out / "confusion.png")
    save(losses_figure(report), out / "losses.png")
    adaptive = adaptive_figure(report)
    if adaptive is not None:
        save(adaptive, out / "adaptive.png")


def _subject_list(report: Report) -> str:
    ids = [str(s.subject) for s in report.subjects]
    return f"subject {ids[0]}" if len(ids) == 1 else f"subjects {', '.join(ids)}"


def confusion_figure(report: Report) -> Figure:
    """Each condition's confusion matrix, summed over the subjects, on one colour scale with its colour bar;
    every count in black or white, whichever reads on its cell; the class abbreviations spelled out below."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    from pyodl.experiments.plots import SMALL_FONT_SIZE, class_key, figure, text_colour, wrap

    classes, n = report.classes, len(report.classes)
    matrices = {c: np.sum([np.array(s.conditions[c].confusion) for s in report.subjects], axis=0)
                for c in CONDITIONS}
    # One scale for all: every condition is scored on the same test windows, so one colour is one count.
    norm = Normalize(0, max(1, max(int(m.max()) for m in matrices.values())))
    cmap = colormaps["Blues"]
    panel = max(3.6, 0.5 * n + 1.4)  # inches per matrix: room for a 3-digit count in each cell
    cols = 2
    rows = -(-len(CONDITIONS) // cols)
    fig, axes = figure(cols * panel + 1.2, rows * panel + 1.4, nrows=rows, ncols=cols, squeeze=False)
    summary = report.summary()
    long_names = max(len(c) for c in classes) > 4
    image = None
    for ax, c in zip(axes.flat, CONDITIONS, strict=True):
        m = matrices[c]
        image = ax.imshow(m, cmap=cmap, norm=norm)
        ax.set_title(f"{c}: macro F1 {summary[c]['f1_mean']:.3f}")
        ax.set_xticks(range(n), classes, rotation=45 if long_names else 0, ha="right" if long_names else "center",
                      rotation_mode="anchor")
        ax.set_yticks(range(n), classes)
        ax.set(xlabel="predicted class", ylabel="true class")
        size = SMALL_FONT_SIZE if n <= 10 else max(6.0, SMALL_FONT_SIZE * 10 / n)
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=size, color=text_colour(cmap(norm(v))))
    for ax in axes.flat[len(CONDITIONS):]:
        ax.set_axis_off()
    assert image is not None
    fig.colorbar(image, ax=axes, shrink=0.6, label="test windows in the cell")
    fig.suptitle(f"Confusion matrices on the test windows of {_subject_list(report)}"
                 + (", summed" if len(report.subjects) > 1 else "") + " (macro F1: mean over subjects)")
    key = class_key(classes)
    if key:
        fig.supxlabel(wrap(key, cols * panel + 1.2), fontsize=SMALL_FONT_SIZE)
    return fig


def losses_figure(report: Report) -> Figure:
    """The training loss per epoch of each trained condition, a panel each (No Pretrain trains far longer), a
    colour per subject; Full's warm-up epochs shaded."""
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    from pyodl.experiments.plots import LEGEND_FONT_SIZE, figure, pyplot

    trained = [c for c in CONDITIONS if any(s.conditions[c].losses for s in report.subjects)]
    what = {"TL": "TL: the last layers", "Full": "Full: every layer",
            "No Pretrain": "No Pretrain: every layer, from random weights"}
    fig, axes = figure(3.6 * len(trained) + 2.0, 4.0, ncols=max(1, len(trained)), squeeze=False, sharey=True)
    many = len(report.subjects) > 10
    colours = pyplot().get_cmap("viridis" if many else "tab10")
    for ax, c in zip(axes[0], trained, strict=False):
        for k, s in enumerate(report.subjects):
            losses = s.conditions[c].losses
            colour = colours(k / max(1, len(report.subjects) - 1)) if many else colours(k)
            ax.plot(range(1, len(losses) + 1), losses, color=colour, lw=1.4, label=f"subject {s.subject}")
        if c == "Full" and report.config.warmup_epochs:
            ax.axvspan(0.5, report.config.warmup_epochs + 0.5, color="0.88", lw=0)
        longest = max(len(s.conditions[c].losses) for s in report.subjects)
        ax.set(title=what.get(c, c), xlabel="epoch", xlim=(0.5, longest + 0.5))  # no tick at an epoch 0
        ax.title.set_fontsize(LEGEND_FONT_SIZE + 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("mean training loss (cross-entropy)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if "Full" in trained and report.config.warmup_epochs:
        handles.append(Patch(color="0.88"))
        n = report.config.warmup_epochs
        labels.append(f"Full's warm-up: the last\nlayer only ({n} epoch{'s' if n != 1 else ''})")
    fig.legend(handles, labels, loc="outside right upper", fontsize=LEGEND_FONT_SIZE)
    fig.suptitle(f"Training loss per epoch, trained by {_trained_by(report.config)}")
    return fig


def adaptive_figure(report: Report) -> Figure | None:
    """Macro F1 against instructions per window for each threshold of adaptive inference (None without a
    cheap mode)."""
    from pyodl.experiments.plots import figure, legend_right

    curves = {c: report.adaptive_curve(c) for c in CONDITIONS}
    if not any(curves.values()):
        return None
    fig, ax = figure(8.5, 4.5)
    for c, curve in curves.items():
        if curve:
            line, = ax.plot([p["instructions"] / 1e3 for p in curve], [p["f1_mean"] for p in curve], "o-", ms=3,
                            label=f"{c} (8-bit)")
            ax.plot(report.adaptive_cost["full_instructions"] / 1e3,
                    report.summary()[c][f"int8 {ADAPTIVE_SPEC}"]["f1_mean"], "*", ms=10, color=line.get_color())
    ax.plot([], [], "o-", color="gray", ms=3, label="adaptive: one point\nper confidence threshold")
    ax.plot([], [], "*", color="gray", ms=10, label="the whole window alone\n(no cheap mode)")
    ax.set(xlabel="average instructions per window (thousands)", ylabel="macro F1 (mean over subjects)",
           title=f"Adaptive int8 inference: a cheap mode on the newest {report.config.cheap_length} of "
                 f"{report.config.input_len} rows,\nthe whole window too when its confidence is below a threshold")
    ax.grid(alpha=0.3)
    legend_right(ax)
    return fig
