"""Learning from a stream on the device: which windows to ask a teacher about, and what a concept drift does.

For each held-out subject, the general model of :mod:`pyodl.experiments.personalize` (pretrained on the other
subjects, cached alike) is the device's start. The first part of each of the subject's recordings arrives one
window at a time, in recording order (the stream); the rest is the held-out test. The device predicts each
window and its query policy (firmware/odl/stream.c) decides whether to ask the teacher; a queried window joins
the replay buffer with the teacher's label, and the device trains on the buffer (firmware/app/
stream_commands.c). Every decision runs in the firmware on the simulated board (``trainer="board"``) or, with
``trainer="tf"``, in :class:`pyodl.reference.stream.ReferenceStream` with TensorFlow training: the same
decisions from the same confidences.

Runs per subject: static (the general model, no query, no training), always-query, the automatic pruning
policies (AGREEMENT, and BUDGET at ``budget``), random queries at AGREEMENT's realised rate, AGREEMENT without
the drift detector, both pruning policies with self-labels (an unqueried window the device is sure of joins
its replay buffer with its own class), and both with exploration (a share of the windows queried at random
whatever the confidence), with random queries at BUDGET + exploration's rate. A drift scenario changes the
stream halfway: the other arm (``side``), a sensor rotation (``rotation``), another subject (``subject``), or a
class the general model never saw (``new-class``: pretrained without it, and streamed after every other class).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from pyodl.data import Normalizer, Recording, Windows, personalization_split, windows_of
from pyodl.experiments import personalize as pers
from pyodl.experiments.trainer import Progress, StepCost, step_cost
from pyodl.experiments.workers import run_each
from pyodl.model.architecture import Architecture, Kind, LayerSpec, Model
from pyodl.model.stream import Answer, Decision, Policy, StreamConfig, StreamSetup

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DRIFTS = ("none", "side", "rotation", "subject", "new-class")
TRAINERS = ("board", "tf")
TEACHERS = ("oracle", "general", "wide")
# The seed's operating point (ODL-core with automatic data pruning): 55.7% fewer queries for 0.9% accuracy.
SEED_QUERY_REDUCTION = 55.7
SEED_ACCURACY_LOSS = 0.9
LABEL_BYTES = 1  # the teacher's answer: a class index
# stream.png draws these runs (every run is in results.md and pruning.png): one line per policy family, so that
# it reads at a glance.
STREAM_PLOT_RUNS = ("static", "always", "agreement", "budget", "random", "agreement + exploration",
                    "budget + exploration")
# Rotation drift: the watch turned a quarter turn about its z axis, (x, y, z) -> (-y, x, z), on every
# accelerometer (and gyroscope) triple of channels.
QUARTER_TURN = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float32)


@dataclass(frozen=True)
class Config:
    input_len: int = 40
    stride: int = 20
    channels: tuple[int, ...] = (0, 1, 2)
    fraction: float = 0.5  # of each recording streamed; the rest is the held-out test
    max_windows: int | None = None  # the stream cut to its first N windows (a quick run)
    pretrain_epochs: int = 30
    seed: int = 0
    # Each learning run again with other draws (the replay's and RANDOM's seeds), from the same general model:
    # one stream's accuracy moves by a few points with the draws alone, so means are over subjects x repeats.
    repeats: int = 1
    trainer: str = "board"
    teacher: str = "oracle"  # oracle, general, wide, or keras:PATH
    drift: str = "none"
    new_class: int = 0  # the drift "new-class": the class the general model never saw, streamed last
    trainable_layers: int | None = None  # None: TL, the paper's last two layers
    replay: int = 256  # windows in the device's replay buffer (its dataset region: 121 KB at T=40)
    batch: int = 16
    train_every: int = 4  # stream windows between steps: pruning saves radio, not learning
    learning_rate: float = 0.01
    drift_learning_rate: float = 0.03
    budget: float = 0.3  # BUDGET's target query rate
    step: float = 0.02  # the thresholds' adaptation step
    disagree_target: float = 0.5  # AGREEMENT's target teacher disagreement among queries
    floor: float = 0.02  # AGREEMENT's floor query rate
    self_label: float = 0.9  # the "+ self-labels" runs: unqueried windows this confident join the replay buffer
    # The "+ exploration" runs: this share of the windows is queried at random whatever the device's confidence,
    # so the replay buffer holds every activity, not only those the device is unsure of.
    explore: float = 0.1
    # The detector looks at the teacher's disagreements among the last 16 queries: a pruning policy asks where
    # the device is unsure, so even without a drift about half disagree (AGREEMENT aims at disagree_target).
    drift_window: int = 16
    drift_on: int = 12
    drift_off: int = 5
    # More operating points, for the queries-vs-accuracy curves: AGREEMENT at each disagreement target (and random
    # at each one's realised rate), BUDGET at each rate.
    sweep_targets: tuple[float, ...] = ()
    sweep_budgets: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.trainer not in TRAINERS:
            raise ValueError(f"trainer must be one of {', '.join(TRAINERS)}, got {self.trainer!r}")
        if self.drift not in DRIFTS:
            raise ValueError(f"drift must be one of {', '.join(DRIFTS)}, got {self.drift!r}")
        if self.teacher not in TEACHERS and not self.teacher.startswith("keras:"):
            raise ValueError(f"teacher must be {', '.join(TEACHERS)} or keras:PATH, got {self.teacher!r}")
        for name, low in (("input_len", 1), ("stride", 1), ("replay", 1), ("batch", 1), ("train_every", 1),
                          ("pretrain_epochs", 0), ("repeats", 1)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
        for name in ("budget", "disagree_target", "floor", "self_label", "explore"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("sweep_targets", "sweep_budgets"):
            if not all(0.0 <= v <= 1.0 for v in getattr(self, name)):
                raise ValueError(f"{name} must be values in [0, 1], got {getattr(self, name)}")
        if self.new_class < 0:
            raise ValueError(f"new_class must be >= 0, got {self.new_class}")
        if self.max_windows is not None and self.max_windows < 1:
            raise ValueError(f"max_windows must be >= 1, got {self.max_windows}")
        for policy in Policy:  # every policy parameter, before any work
            self.setup(policy, rate=0.5, explore=True).check(self.replay)

    def personalize_config(self) -> pers.Config:
        """The general model's recipe: the same as personalize's, so its cache serves both."""
        return pers.Config(input_len=self.input_len, stride=self.stride, channels=self.channels,
                           pretrain_epochs=self.pretrain_epochs, seed=self.seed, trainer="tf")

    def setup(self, policy: Policy, rate: float | None = None, detect: bool = True,
              target: float | None = None, self_labels: bool = False, explore: bool = False,
              repeat: int = 0) -> StreamSetup:
        rates = {Policy.ALWAYS: 1.0, Policy.RANDOM: rate or 0.0, Policy.BUDGET: self.budget if rate is None else rate,
                 Policy.AGREEMENT: self.floor}
        drift = dict(drift_window=self.drift_window, drift_on=self.drift_on, drift_off=self.drift_off) if detect \
            else dict(drift_window=0)
        config = StreamConfig(policy, rate=rates[policy], threshold=1.0 if policy == Policy.AGREEMENT else 0.5,
                              step=self.step, seed=self.seed + 1 + repeat,
                              explore=self.explore if explore and policy.thresholded else 0.0,
                              disagree_target=self.disagree_target if target is None else target, **drift)
        return StreamSetup(config, self.train_every, self.batch, self.learning_rate,
                           self.drift_learning_rate, replay_seed=self.seed + 7 + repeat,
                           self_label=self.self_label if self_labels else 0.0)


class Device(Protocol):
    def stream_start(self, setup: StreamSetup) -> int: ...

    def stream_window(self, x: np.ndarray) -> Decision: ...

    def stream_label(self, label: int) -> Answer: ...

    def predict_classes(self, xs: np.ndarray) -> np.ndarray: ...


@dataclass
class RunResult:
    name: str
    queries: int
    windows: int
    radio_bytes: int  # windows sent to the teacher and labels back
    stream_accuracy: float  # of the device's predictions, each made before the window's label could be known
    stream_f1: float
    test_accuracy: float
    test_f1: float
    steps: int  # training steps on the device
    training_instructions: int  # of those steps, by pyodl.resources.estimate (within ~2% of the board's count)
    training_millijoules: float  # at 80 MHz, by the cycle model's estimate and the datasheet's run current
    drifts: int  # times the drift flag rose
    first_detection: int | None  # window index of the first
    correct: list[int] = field(default_factory=list)  # per window: the prediction was right
    queried: list[int] = field(default_factory=list)  # per window: the teacher was asked

    @property
    def query_rate(self) -> float:
        return self.queries / self.windows if self.windows else 0.0


@dataclass
class SubjectStream:
    subject: int
    repeat: int  # which draws (0: the seed's)
    drift_index: int | None  # the stream's first window after the drift
    test_windows: int
    runs: dict[str, RunResult]


def _rotate(x: np.ndarray) -> np.ndarray:
    out = x.copy()
    for c in range(0, x.shape[-1] - 2, 3):
        out[..., c:c + 3] = x[..., c:c + 3] @ QUARTER_TURN.T
    return out


def next_subject(recordings: list[Recording], subject: int) -> int:
    """The drift "subject": whose windows follow the held-out subject's (the next one, in number order)."""
    subjects = sorted({r.subject for r in recordings})
    return subjects[(subjects.index(subject) + 1) % len(subjects)]


def build_stream(recordings: list[Recording], subject: int, cfg: Config) -> tuple[Windows, Windows, int | None]:
    """The stream (in recording order), the held-out test, and the index of the first window after the drift."""
    mine = [r for r in recordings if r.subject == subject]
    channels = list(cfg.channels)
    if not mine:
        raise ValueError(f"subject {subject} has no recording")

    def split(rs: list[Recording]) -> tuple[Windows, Windows]:
        return personalization_split(rs, cfg.input_len, cfg.stride, cfg.fraction, channels)

    if cfg.drift == "side":
        if any(r.side is None for r in mine):
            raise ValueError("the side drift needs a dataset that says which wrist each recording is from "
                             "(the watch dataset)")
        before, _ = split([r for r in mine if r.side == 0])
        after, test = split([r for r in mine if r.side == 1])
        return Windows.concat([before, after], cfg.input_len, len(channels)), test, len(before)
    if cfg.drift == "new-class":
        if not any(r.label == cfg.new_class for r in mine):
            raise ValueError(f"subject {subject} has no recording of class {cfg.new_class} (--new-class)")
        before, _ = split([r for r in mine if r.label != cfg.new_class])
        after, _ = split([r for r in mine if r.label == cfg.new_class])
        _, test = split(mine)
        return Windows.concat([before, after], cfg.input_len, len(channels)), test, len(before)
    if cfg.drift == "subject":
        other = next_subject(recordings, subject)
        before, _ = split(mine)
        after, test = split([r for r in recordings if r.subject == other])
        return Windows.concat([before, after], cfg.input_len, len(channels)), test, len(before)
    stream, test = split(mine)
    if cfg.drift == "rotation":
        half = len(stream) // 2
        x = stream.x.copy()
        x[half:] = _rotate(x[half:])
        return Windows(x, stream.y, stream.subject), Windows(_rotate(test.x), test.y, test.subject), half
    return stream, test, None


class _TfDevice:
    """ReferenceStream trained by TensorFlow, with the model's own predictions for the test."""

    def __init__(self, model: Model, trainable_layers: int, replay: int) -> None:
        from pyodl.reference.golden import KerasReference
        from pyodl.reference.stream import ReferenceStream

        self.keras = KerasReference(model)
        self.keras.set_trainable(trainable_layers)
        self.stream = ReferenceStream(self.keras.probabilities, self.keras, (model.arch.input_len,
                                                                            model.arch.input_ch), replay)

    def stream_start(self, setup: StreamSetup) -> int:
        return self.stream.stream_start(setup)

    def stream_window(self, x: np.ndarray) -> Decision:
        return self.stream.stream_window(x)

    def stream_label(self, label: int) -> Answer:
        return self.stream.stream_label(label)

    def predict_classes(self, xs: np.ndarray) -> np.ndarray:
        return self.keras.predict_classes(xs)


@contextlib.contextmanager
def open_device(cfg: Config, model: Model, trainable_layers: int, work_dir: Path) -> Iterator[Device]:
    if cfg.trainer == "tf":
        yield _TfDevice(model, trainable_layers, cfg.replay)
        return
    from pyodl.network.open import open_network

    with open_network("unicorn", model, work_dir, trainable_layers, dataset_windows=cfg.replay) as net:
        yield net  # type: ignore[misc]


def _scores(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """Accuracy and macro F1 over the classes that occur (a stream's stretch may not hold every class)."""
    return (float(accuracy_score(y, pred)),
            float(f1_score(y, pred, labels=np.union1d(y, pred), average="macro", zero_division=0)))


def stream_run(name: str, device: Device, setup: StreamSetup | None, stream: Windows, test: Windows,
               teacher: np.ndarray, cost: StepCost, progress: Progress) -> RunResult:
    """One pass over the stream; ``setup`` None: the static model (no query, no training)."""
    if setup is not None:
        device.stream_start(setup)
    predicted, queried = [], []
    steps, drifts, first, was_drift = 0, 0, None, False
    for i, x in enumerate(stream.x):
        if setup is None:
            predicted.append(int(device.predict_classes(x[None])[0]))
            queried.append(0)
            continue
        decision = device.stream_window(x)
        steps += decision.trained
        predicted.append(decision.predicted)
        queried.append(int(decision.query))
        if decision.drift and not was_drift:
            drifts += 1
            first = i if first is None else first
        was_drift = decision.drift
        if decision.query:
            device.stream_label(int(teacher[i]))
        if i % 25 == 0:
            progress(name, i, len(stream))
    progress(name, len(stream), len(stream))
    pred = np.array(predicted)
    s_acc, s_f1 = _scores(stream.y, pred)
    t_acc, t_f1 = _scores(test.y, device.predict_classes(test.x))
    window_bytes = int(np.prod(stream.x.shape[1:])) * 4
    q = int(sum(queried))
    return RunResult(name, q, len(stream), q * (window_bytes + LABEL_BYTES), s_acc, s_f1, t_acc, t_f1, steps,
                     steps * cost.instructions, steps * cost.millijoules, drifts, first,
                     (pred == stream.y).astype(int).tolist(), queried)


def wide_architecture(input_len: int, input_ch: int, num_classes: int) -> Architecture:
    """The ``wide`` teacher, a phone's model: the paper's CNN with twice the filters and units and a third
    convolution (88,130 parameters at (40, 3), against the paper's 10,084), pretrained on the other subjects
    like the general model (on every class, also for the new-class drift: the phone knows it)."""
    return Architecture.build("wide-teacher", input_len, input_ch, [
        LayerSpec(Kind.CONV1D, "conv1d_1", units=64, size=3, activation="relu"),
        LayerSpec(Kind.AVGPOOL1D, "avgpool1d_1", size=2),
        LayerSpec(Kind.CONV1D, "conv1d_2", units=128, size=3, activation="relu"),
        LayerSpec(Kind.CONV1D, "conv1d_3", units=128, size=3, activation="relu"),
        LayerSpec(Kind.AVGPOOL1D, "avgpool1d_2", size=2),
        LayerSpec(Kind.GAP1D, "gap1d"),
        LayerSpec(Kind.DENSE, "dense_1", units=100, activation="relu"),
        LayerSpec(Kind.DENSE, "dense_2", units=num_classes, activation="softmax"),
    ])


def _teacher_labels(cfg: Config, stream: Windows, general: Model, pretrain_wide: Callable[[], Model]) -> np.ndarray:
    if cfg.teacher == "oracle":
        return stream.y.copy()
    from pyodl.reference.golden import KerasReference

    if cfg.teacher == "general":
        return KerasReference(general).predict_classes(stream.x)
    if cfg.teacher == "wide":
        return KerasReference(pretrain_wide()).predict_classes(stream.x)
    from pyodl.model.keras_io import load

    model = load(Path(cfg.teacher.removeprefix("keras:")))
    return KerasReference(model).predict_classes(stream.x)


Plan = tuple[str, StreamSetup | None, str | None]  # a run's name, its setup (None: static), or whose rate it matches


def run_plans(cfg: Config, repeat: int) -> list[Plan]:
    """The runs of one subject's repeat, in the tables' order."""
    plans: list[Plan] = [
        ("static", None, None), ("always", cfg.setup(Policy.ALWAYS, detect=False, repeat=repeat), None),
        ("agreement", cfg.setup(Policy.AGREEMENT, repeat=repeat), None),
        ("agreement, no detector", cfg.setup(Policy.AGREEMENT, detect=False, repeat=repeat), None),
        ("budget", cfg.setup(Policy.BUDGET, repeat=repeat), None), ("random", None, "agreement"),
        ("agreement + self-labels", cfg.setup(Policy.AGREEMENT, self_labels=True, repeat=repeat), None),
        ("budget + self-labels", cfg.setup(Policy.BUDGET, self_labels=True, repeat=repeat), None),
        ("agreement + exploration", cfg.setup(Policy.AGREEMENT, explore=True, repeat=repeat), None),
        ("budget + exploration", cfg.setup(Policy.BUDGET, explore=True, repeat=repeat), None),
        ("random ~ budget + exploration", None, "budget + exploration")]
    for d in cfg.sweep_targets:
        plans += [(f"agreement d={d:g}", cfg.setup(Policy.AGREEMENT, target=d, repeat=repeat), None),
                  (f"random ~ agreement d={d:g}", None, f"agreement d={d:g}")]
    for r in cfg.sweep_budgets:
        plans += [(f"budget r={r:g}", cfg.setup(Policy.BUDGET, rate=r, repeat=repeat), None),
                  (f"budget r={r:g} + exploration", cfg.setup(Policy.BUDGET, rate=r, explore=True, repeat=repeat),
                   None)]
    return plans


def run_subject(recordings: list[Recording], subject: int, num_classes: int, cfg: Config, cache_dir: Path | None,
                progress: Progress, fingerprint: str) -> list[SubjectStream]:
    """The subject's runs, once per repeat."""
    from pyodl.model.fold import fold_frozen_batchnorm

    pcfg = cfg.personalize_config()
    channels = list(cfg.channels)
    # The drift "subject" hands the device to another person: the general model knows neither of them (its own
    # cache entries, the teacher's too).
    unseen = {subject}
    if cfg.drift == "subject":
        other = next_subject(recordings, subject)
        unseen.add(other)
        fingerprint = f"{fingerprint}-without-subject-{other}"
    others = [r for r in recordings if r.subject not in unseen]
    arch = pers.GeneralModel().architecture(cfg.input_len, len(channels), num_classes)
    general_data = windows_of(others, cfg.input_len, cfg.stride, channels)
    norm = Normalizer.fit(general_data.x)
    general_data = Windows(norm(general_data.x), general_data.y, general_data.subject)
    teacher_data, teacher_fingerprint = general_data, fingerprint
    if cfg.drift == "new-class":  # a general model that never saw the class (its own cache entry)
        general_data = general_data.select(general_data.y != cfg.new_class)
        fingerprint = f"{fingerprint}-without-class-{cfg.new_class}"
    general, _ = pers.pretrain(general_data, arch, pcfg, cache_dir, pers.cache_key(fingerprint, subject, pcfg, arch),
                               norm, progress)
    stream, test, drift_index = build_stream(recordings, subject, cfg)
    if cfg.max_windows is not None:
        stream = stream.select(np.arange(len(stream)) < cfg.max_windows)
        drift_index = drift_index if drift_index is not None and drift_index < len(stream) else None
    stream = Windows(norm(stream.x), stream.y, stream.subject)
    test = Windows(norm(test.x), test.y, test.subject)
    if len(stream) == 0 or len(test) == 0:
        raise ValueError(f"subject {subject}: no stream or no test window of {cfg.input_len} samples")
    layers = cfg.trainable_layers or pers.default_tl_layers(pers.GeneralModel(), arch)
    start = fold_frozen_batchnorm(general, layers) if layers < len(arch.param_layers) else general

    def pretrain_wide() -> Model:
        wide = wide_architecture(cfg.input_len, len(channels), num_classes)
        key = pers.cache_key(teacher_fingerprint, subject, pcfg, wide)
        return pers.pretrain(teacher_data, wide, pcfg, cache_dir, key, norm, progress)[0]

    teacher = _teacher_labels(cfg, stream, general, pretrain_wide)
    cost = step_cost(start, layers, cfg.batch)
    out = []
    for repeat in range(cfg.repeats):
        runs: dict[str, RunResult] = {}
        plans = run_plans(cfg, repeat)
        label = f"subject {subject}" + (f" repeat {repeat}" if cfg.repeats > 1 else "")
        with tempfile.TemporaryDirectory(prefix="pyodl-stream-") as tmp:
            for k, (name, setup, matched) in enumerate(plans):
                if matched is not None:  # random at that policy's realised rate, without a detector to raise it
                    setup = cfg.setup(Policy.RANDOM, rate=max(runs[matched].query_rate, 1e-6), detect=False,
                                      repeat=repeat)
                if setup is None and repeat > 0:  # the static model draws nothing: the same in every repeat
                    runs[name] = out[0].runs[name]
                    continue
                with open_device(cfg, start, layers, Path(tmp) / f"run{k}") as device:
                    runs[name] = stream_run(f"{label} {name}", device, setup, stream, test, teacher, cost, progress)
        out.append(SubjectStream(subject, repeat, drift_index, len(test), runs))
    return out


@dataclass
class Report:
    config: Config
    dataset: str
    classes: list[str]
    subjects: list[SubjectStream]
    seconds: float

    def subject_ids(self) -> list[int]:
        return sorted({s.subject for s in self.subjects})

    def summary(self) -> dict[str, dict[str, float]]:
        """Per run, means over subjects and repeats; query reduction and accuracy change against always-query
        (in the same repeat), with the change's standard error over subjects (each subject's mean over its
        repeats: the repeats of one subject are not independent samples)."""
        out: dict[str, dict[str, float]] = {}
        for name in self.subjects[0].runs:
            pairs = [(s.runs[name], s.runs["always"]) for s in self.subjects]

            def mean(f: Callable[[RunResult, RunResult], float], pairs: list = pairs) -> float:
                return float(np.mean([f(r, a) for r, a in pairs]))

            out[name] = {
                "query_rate": mean(lambda r, a: r.query_rate),
                "query_reduction_pct": mean(lambda r, a: 100 * (1 - r.queries / a.queries)),
                "radio_bytes": mean(lambda r, a: r.radio_bytes),
                "stream_accuracy": mean(lambda r, a: r.stream_accuracy),
                "stream_f1": mean(lambda r, a: r.stream_f1),
                "test_accuracy": mean(lambda r, a: r.test_accuracy),
                "test_f1": mean(lambda r, a: r.test_f1),
                "accuracy_change_pp": mean(lambda r, a: 100 * (r.test_accuracy - a.test_accuracy)),
                "steps": mean(lambda r, a: r.steps),
                "training_instructions": mean(lambda r, a: r.training_instructions),
                "training_millijoules": mean(lambda r, a: r.training_millijoules),
                "drifts": mean(lambda r, a: r.drifts),
                "accuracy_change_se_pp": self._standard_error(name),
            }
        return out

    def _standard_error(self, name: str) -> float | None:
        """The standard error over subjects of the accuracy change; None for one subject, which has none."""
        per_subject = [np.mean([100 * (s.runs[name].test_accuracy - s.runs["always"].test_accuracy)
                                for s in self.subjects if s.subject == subject]) for subject in self.subject_ids()]
        if len(per_subject) < 2:
            return None
        return float(np.std(per_subject, ddof=1) / np.sqrt(len(per_subject)))

    def to_json(self) -> dict[str, object]:
        subjects = [{"subject": s.subject, "repeat": s.repeat, "drift_index": s.drift_index,
                     "test_windows": s.test_windows,
                     "runs": {n: {**asdict(r), "query_rate": r.query_rate} for n, r in s.runs.items()}}
                    for s in self.subjects]
        return {"config": asdict(self.config), "dataset": self.dataset, "classes": self.classes,
                "summary": self.summary(), "subjects": subjects, "seconds": self.seconds}

    def markdown(self, command: str) -> str:
        cfg = self.config
        where = ("the firmware on the simulated STM32L496" if cfg.trainer == "board"
                 else "TensorFlow (the same decisions)")
        lines = [f"# Learning from a stream on {self.dataset}", "",
                 f"`{command}`: subjects {self.subject_ids()}"
                 + (f", each with {cfg.repeats} sets of draws (replay and random seeds)" if cfg.repeats > 1 else "")
                 + f", input ({cfg.input_len}, "
                 f"{len(cfg.channels)}), the first {cfg.fraction:.0%} of each recording streamed one window at a time "
                 f"and the rest held out; drift: {cfg.drift}; teacher: {cfg.teacher}; decisions and training by "
                 f"{where}: replay buffer {cfg.replay}, a step on {cfg.batch} windows drawn from it every "
                 f"{cfg.train_every} stream windows, queried or not "
                 f"(SGD lr {cfg.learning_rate}, {cfg.drift_learning_rate} while a drift is "
                 "detected). Radio: each query sends the window (float32) and gets a one-byte label. Training "
                 "instructions and mJ (at 80 MHz) per run are the estimator's for the steps taken. "
                 "Means over subjects and repeats" + ("; ± is the standard error over subjects. "
                                                       if len(self.subject_ids()) > 1 else
                                                       " (one subject: no standard error). ")
                 + f"Wall time {self.seconds:.0f} s.", "",
                 "| run | queries | fewer than always | radio KB | stream acc. | stream F1 | test acc. | test F1 | "
                 "acc. vs always | steps | training instr. | training mJ | drifts |",
                 "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, m in self.summary().items():
            lines.append(f"| {name} | {m['query_rate']:.0%} | {m['query_reduction_pct']:.1f}% | "
                         f"{m['radio_bytes'] / 1024:.1f} | {m['stream_accuracy']:.3f} | {m['stream_f1']:.3f} | "
                         f"{m['test_accuracy']:.3f} | {m['test_f1']:.3f} | {m['accuracy_change_pp']:+.1f} "
                         + ("" if m["accuracy_change_se_pp"] is None else f"± {m['accuracy_change_se_pp']:.1f} ")
                         + "pp | "
                         f"{m['steps']:.0f} | {m['training_instructions'] / 1e6:.0f} M | "
                         f"{m['training_millijoules']:.0f} | {m['drifts']:.1f} |")
        lines += ["", f"The seed (ODL-core with automatic data pruning) reports {SEED_QUERY_REDUCTION}% fewer queries "
                  f"for {SEED_ACCURACY_LOSS}% accuracy against querying every window.", "",
                  "| subject | stream windows | drift at | " + " | ".join(f"{n} test F1" for n in self.subjects[0].runs)
                  + " |", "|---|---|---|" + "---|" * len(self.subjects[0].runs)]
        for subject in self.subject_ids():
            mine = [s for s in self.subjects if s.subject == subject]
            n, at = next(iter(mine[0].runs.values())).windows, mine[0].drift_index
            f1s = [np.mean([s.runs[name].test_f1 for s in mine]) for name in mine[0].runs]
            lines.append(f"| {subject} | {n} | {at if at is not None else '-'} | "
                         + " | ".join(f"{f:.3f}" for f in f1s) + " |")
        lines += ["", "![accuracy over the stream](stream.png)", "", "![queries vs accuracy](pruning.png)", ""]
        return "\n".join(lines)


def run(recordings: list[Recording], classes: list[str], subjects: list[int], cfg: Config, dataset: str,
        cache_dir: Path | None, progress: Progress, workers: int = 1, ray_address: str | None = None) -> Report:
    """``workers``: subjects run in that many processes at once, or ``ray_address``: as tasks on that Ray
    cluster (the same report either way)."""
    fingerprint = pers.dataset_fingerprint(recordings, classes)
    t0 = time.perf_counter()
    jobs = [dict(recordings=recordings, subject=s, num_classes=len(classes), cfg=cfg, cache_dir=cache_dir,
                 fingerprint=fingerprint) for s in subjects]
    per_subject = run_each(run_subject, jobs, workers, progress, ray_address=ray_address)
    results = [r for streams in per_subject for r in streams]
    return Report(cfg, dataset, classes, results, time.perf_counter() - t0)


def _family(name: str) -> str:
    """A run's curve in pruning.png: its policy and what was added to it (the sweep's operating points of one
    rule are one curve; every random run is one)."""
    if "no detector" in name:
        return name
    if name.startswith("random"):
        return "random"
    policy, _, added = name.partition(" + ")
    return policy.split(" ")[0] + (f" + {added}" if added else "")


def plot(report: Report, out: Path) -> None:
    """stream.png: rolling accuracy over each subject's stream, for the runs of STREAM_PLOT_RUNS, with their queries and
    the drift marked;
    pruning.png: query reduction against accuracy change (vs always-query), per run, with the seed's point."""
    from pyodl.experiments.plots import save

    save(stream_figure(report), out / "stream.png", dpi=110)
    save(pruning_figure(report), out / "pruning.png", dpi=110)


def stream_figure(report: Report) -> Figure:
    from matplotlib.transforms import blended_transform_factory

    from pyodl.experiments.plots import LEGEND_FONT_SIZE, SMALL_FONT_SIZE, figure

    subjects = [s for s in report.subjects if s.repeat == 0]
    shown = [name for name in STREAM_PLOT_RUNS if name in subjects[0].runs]
    fig, axes = figure(10, 2.6 * len(subjects) + 1.6, nrows=len(subjects), squeeze=False)
    for ax, s in zip(axes[:, 0], subjects, strict=True):
        width = 5
        for k, name in enumerate(shown):
            r, color = s.runs[name], f"C{k}"
            correct = np.array(r.correct, dtype=float)
            width = max(5, len(correct) // 20)
            rolling = np.convolve(correct, np.ones(width) / width, mode="valid")
            ax.plot(np.arange(len(rolling)) + width - 1, rolling, label=name, lw=1.2, color=color)
            q = np.flatnonzero(np.array(r.queried))
            ax.scatter(q, np.full(len(q), -0.04 - 0.035 * k), s=2, marker="|", color=color)
        if s.drift_index is not None:
            ax.axvline(s.drift_index, color="k", ls="--", lw=1)
        ax.set_ylim(-0.06 - 0.035 * len(shown), 1.05)
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])  # none beside the query ticks, which are no accuracy
        ax.text(-0.01, -0.04 - 0.035 * (len(shown) - 1) / 2, "queries", ha="right", va="center",
                fontsize=SMALL_FONT_SIZE, transform=blended_transform_factory(ax.transAxes, ax.transData))
        ax.set_ylabel(f"subject {s.subject}\naccuracy over the\nlast {width} windows")
        ax.grid(alpha=0.3, axis="y")
    axes[-1, 0].set_xlabel("window of the stream, in arrival order")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=LEGEND_FONT_SIZE, loc="outside right upper")
    # Over the panels, not the figure: a figure title runs into the legend beside them.
    axes[0, 0].set_title("Accuracy on the stream (each window predicted before any label for it)")
    drift = any(s.drift_index is not None for s in subjects)
    fig.supxlabel("Ticks under the curves: the windows each run queried, one row per run in its colour"
                  + ("; dashed line: the drift" if drift else ""), fontsize=SMALL_FONT_SIZE)
    return fig


def pruning_figure(report: Report) -> Figure:
    from pyodl.experiments.plots import figure, legend_right

    fig, ax = figure(8.5, 4.5)
    families: dict[str, list[tuple[float, float]]] = {}
    for name, m in report.summary().items():
        if name in ("always", "static"):
            continue
        families.setdefault(_family(name), []).append((m["query_reduction_pct"], m["accuracy_change_pp"]))
    for family, points in families.items():
        xs, ys = zip(*sorted(points), strict=True)
        ax.plot(xs, ys, marker="o", label=family)
    ax.scatter(SEED_QUERY_REDUCTION, -SEED_ACCURACY_LOSS, marker="*", s=120, color="k",
               label=f"the seed's ODL-core:\n{SEED_QUERY_REDUCTION}% fewer, -{SEED_ACCURACY_LOSS}%")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("fewer queries than always-query (%)")
    ax.set_ylabel("test accuracy vs always-query (pp)")
    repeats = len({s.repeat for s in report.subjects})
    ax.set_title(f"Labels saved against accuracy, mean over {len(report.subject_ids())} subject"
                 f"{'s' if len(report.subject_ids()) != 1 else ''}"
                 + (f" x {repeats} draws" if repeats > 1 else ""))
    ax.grid(alpha=0.3)
    legend_right(ax)
    return fig
