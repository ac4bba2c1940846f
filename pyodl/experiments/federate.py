"""Federated personalization on a fleet of simulated boards, with Flower.

Every subject of a dataset is a client. Its windows are cut as ``personalize`` cuts them (the first part of
each recording to train on, the rest to test) and only the client touches them. Every round the server
sends the global weights; each client's board, a Unicorn STM32L496 in a process of its own reached over its
UART (:mod:`pyodl.board.board_process`), trains ``local_epochs`` epochs of the client's windows with the
firmware (every layer, SGD) and sends back its weights and window count; the strategy (Flower's FedAvg,
FedAvgM or FedAdam) aggregates. Then every client scores the new global model on its test part and, every
``personalize_every`` rounds, the personalized model: the global one with its two Dense layers fine-tuned on
the client's board. ``trainer="tf"`` trains the same batches in TensorFlow instead.

Flower's simulation engine runs the clients on Ray: ``workers`` client processes here, or an existing Ray
cluster (``ray_address``). A client whose board crashes or stops answering raises, Flower drops it from that
round and the run goes on; the report says who was dropped and why.

The baseline is personalize's centralised recipe: the general model trained in Keras (Adam) on the union of
the clients' training windows, scored and personalized the same way. Inputs are standardised with
statistics the clients send as sums (count, sum, sum of squares per channel), never windows.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from pyodl.data import Normalizer, Recording, Windows
from pyodl.data.windows import SPLITS, subject_split
from pyodl.experiments import fleet
from pyodl.experiments import personalize as pers
from pyodl.experiments.trainer import Progress, Trainer, step_cost
from pyodl.experiments.workers import run_each
from pyodl.model.architecture import Architecture, Model, Params, glorot_params
from pyodl.model.memory_plan import FLOAT_BYTES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from pyodl.board.board_process import BoardProcess

FAULTS = ("crash", "hang")


@dataclass(frozen=True)
class Fault:
    """A board failure played on purpose: ``crash`` kills the client's board process after its first
    training step of ``round`` (a device losing power), ``hang`` stops it (SIGSTOP: a device that stops
    answering; the client's UART read times out)."""

    kind: str
    client: int
    round: int

    @staticmethod
    def parse(spec: str) -> Fault:
        """``KIND:CLIENT@ROUND``, e.g. ``crash:3@2``."""
        try:
            kind, rest = spec.split(":", 1)
            client, rnd = rest.split("@", 1)
            fault = Fault(kind, int(client), int(rnd))
        except ValueError:
            raise ValueError(f"fault {spec!r}: write KIND:CLIENT@ROUND, e.g. crash:3@2") from None
        if fault.kind not in FAULTS:
            raise ValueError(f"fault {spec!r}: the kind must be one of {', '.join(FAULTS)}")
        if fault.round < 1:
            raise ValueError(f"fault {spec!r}: rounds count from 1")
        return fault


@dataclass(frozen=True)
class Config:
    input_len: int = 40
    stride: int = 20
    channels: tuple[int, ...] = (0, 1, 2)
    rounds: int = 20
    local_epochs: int = 5
    batch: int = 32
    learning_rate: float = 0.01
    personalize_epochs: int = 10  # the Dense head's fine-tuning on each client, for the personalized score
    personalize_every: int = 5  # rounds; the last round always
    tl_layers: int = 2
    pretrain_epochs: int = 30  # the centralised baseline's, as personalize's
    fraction: float = 0.5
    split: str = "time"
    seed: int = 0
    trainer: str = "board"
    strategy: str = "fedavg"
    workers: int = 2  # client processes at once on this machine
    ray_address: str | None = None  # an existing Ray cluster instead of local processes
    round_timeout: float = 600.0  # seconds a round waits for its clients
    faults: tuple[Fault, ...] = ()
    ports: tuple[str, ...] = ()  # one board per client, in the order of the subjects: real boards or Renode

    def __post_init__(self) -> None:
        if self.trainer not in ("board", "tf"):
            raise ValueError(f"trainer must be board or tf, got {self.trainer!r}")
        if self.strategy not in fleet.STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(fleet.STRATEGIES)}, got {self.strategy!r}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        for name in ("input_len", "stride", "rounds", "local_epochs", "batch", "personalize_every", "tl_layers",
                     "pretrain_epochs", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.personalize_epochs < 0:
            raise ValueError("personalize_epochs must be >= 0")
        if not (self.learning_rate > 0 and np.isfinite(self.learning_rate)):
            raise ValueError("the learning rate must be a finite number > 0")
        if not self.round_timeout > 0:
            raise ValueError("round_timeout must be > 0 seconds")
        if self.faults and (self.trainer != "board" or self.ports):
            raise ValueError("a fault is played on a simulated board pyodl starts: use --trainer board, no --ports")
        if self.ports and self.trainer != "board":
            raise ValueError("ports name boards to train on: use --trainer board")


@dataclass(frozen=True)
class ClientData:
    subject: int
    train: Windows
    test: Windows


@dataclass(frozen=True)
class ClientSetup:
    """What every client needs besides its data; it pickles, for Ray's workers."""

    arch: Architecture
    cfg: Config
    firmware: bytes  # the ELF: a cluster's workers need not share a file system with the server
    ports: dict[int, str] = field(default_factory=dict)  # subject -> the pyserial URL of its board


@dataclass
class TrainReply:
    subject: int
    windows: int
    loss: float
    steps: int
    params: Params


@dataclass
class EvaluateReply:
    subject: int
    test_windows: int
    global_f1: float
    global_accuracy: float
    personal_f1: float | None
    personal_accuracy: float | None


@dataclass
class RoundResult:
    round: int
    trained: list[int]  # subjects whose weights were aggregated
    dropped: dict[int, str]  # subject -> why
    loss: float  # mean of the trained clients' last-epoch losses
    global_f1: dict[int, float]
    personal_f1: dict[int, float]
    global_accuracy: dict[int, float]
    instructions: dict[int, int]  # estimated device instructions of each client's local training
    millijoules: dict[int, float]  # and its energy at 80 MHz (pyodl.resources.energy)
    seconds: float

    def mean_global_f1(self) -> float:
        return float(np.mean(list(self.global_f1.values()))) if self.global_f1 else float("nan")

    def mean_personal_f1(self) -> float | None:
        return float(np.mean(list(self.personal_f1.values()))) if self.personal_f1 else None


@dataclass
class Report:
    config: Config
    dataset: str
    classes: list[str]
    subjects: list[int]
    parameters: int
    rounds: list[RoundResult]
    centralised: list[EvaluateReply]
    bytes_per_round: int  # per client: the global weights down twice (train, evaluate), its weights up
    train_windows: dict[int, int]
    seconds: float
    final_params: Params = field(default_factory=list, repr=False)
    client_updates: dict[int, list[TrainReply]] = field(default_factory=dict, repr=False)
    aggregated: dict[int, Params] = field(default_factory=dict, repr=False)  # round -> the new global weights

    def to_json(self) -> dict[str, object]:
        cfg = asdict(self.config)
        return {"config": cfg, "dataset": self.dataset, "classes": self.classes, "subjects": self.subjects,
                "parameters": self.parameters, "bytes_per_client_per_round": self.bytes_per_round,
                "train_windows": self.train_windows,
                "rounds": [asdict(r) for r in self.rounds], "centralised": [asdict(c) for c in self.centralised],
                "seconds": self.seconds}

    def markdown(self, command: str) -> str:
        cfg = self.config
        where = ("TensorFlow" if cfg.trainer == "tf"
                 else f"the firmware on the boards at {', '.join(cfg.ports)}" if cfg.ports
                 else "the firmware on simulated STM32L496 boards (one process each)")
        central_f1 = float(np.mean([c.global_f1 for c in self.centralised]))
        central_pf1 = [c.personal_f1 for c in self.centralised if c.personal_f1 is not None]
        last = self.rounds[-1]
        lines = [f"# Federated personalization on {self.dataset}", "",
                 f"`{command}`: {len(self.subjects)} clients (subjects {self.subjects}), {cfg.strategy}, "
                 f"{cfg.rounds} rounds of {cfg.local_epochs} local epochs (SGD lr {cfg.learning_rate}, batch "
                 f"{cfg.batch}, every layer) trained by {where}; scores on each client's test part (the last "
                 f"{1 - cfg.fraction:.0%} of each recording), macro F1 averaged over clients; personalized = the "
                 f"global model with its last {cfg.tl_layers} layers fine-tuned {cfg.personalize_epochs} epochs on "
                 f"the client. Wall time {self.seconds:.0f} s.", "",
                 f"- Model: {self.parameters:,} parameters; per client and round {self.bytes_per_round:,} bytes "
                 f"(float32 weights: down to train, up, down to evaluate).",
                 f"- Centralised baseline (personalize's general model, Adam {cfg.pretrain_epochs} epochs on the "
                 f"union of the clients' training windows): global F1 {central_f1:.3f}"
                 + (f", personalized {float(np.mean(central_pf1)):.3f}" if central_pf1 else "") + ".",
                 f"- Federated after {last.round} rounds: global F1 {last.mean_global_f1():.3f}"
                 + (f", personalized {last.mean_personal_f1():.3f}" if last.mean_personal_f1() is not None else "")
                 + ".", "",
                 "| round | clients | dropped | mean loss | global F1 | personalized F1 | instructions/client | "
                 "mJ/client | s |", "|---|---|---|---|---|---|---|---|---|"]
        for r in self.rounds:
            pf1 = r.mean_personal_f1()
            dropped = ", ".join(f"{s} ({why})" for s, why in r.dropped.items()) or "-"
            instr = np.mean(list(r.instructions.values())) if r.instructions else 0
            energy = np.mean(list(r.millijoules.values())) if r.millijoules else 0
            lines.append(f"| {r.round} | {len(r.trained)} | {dropped} | {r.loss:.3f} | {r.mean_global_f1():.3f} | "
                         f"{'-' if pf1 is None else f'{pf1:.3f}'} | {instr / 1e6:.0f} M | {energy:.0f} | "
                         f"{r.seconds:.0f} |")
        lines += ["", "| subject | windows (train/test) | centralised F1 | centralised pers. F1 | federated F1 | "
                  "federated pers. F1 |", "|---|---|---|---|---|---|"]
        personal_round = next((r for r in reversed(self.rounds) if r.personal_f1), None)
        for c in self.centralised:
            fed = last.global_f1.get(c.subject)
            fed_p = personal_round.personal_f1.get(c.subject) if personal_round else None
            lines.append(f"| {c.subject} | {self.train_windows[c.subject]}/{c.test_windows} | "
                         f"{c.global_f1:.3f} | {_fmt(c.personal_f1)} | {_fmt(fed)} | {_fmt(fed_p)} |")
        lines += ["", "![F1 per round](rounds.png)", ""]
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _flat(params: Params) -> list[np.ndarray]:
    return [np.asarray(a, np.float32) for pair in params for a in pair]


def _pairs(arrays: list[np.ndarray], arch: Architecture) -> Params:
    """Flower's flat array list back into (weights, bias) per parameter layer, as float32."""
    if len(arrays) != 2 * len(arch.param_layers):
        raise ValueError(f"{len(arrays)} arrays for {len(arch.param_layers)} parameter layers")
    return [(np.asarray(arrays[2 * k], np.float32), np.asarray(arrays[2 * k + 1], np.float32))
            for k in range(len(arch.param_layers))]


def client_data(recordings: list[Recording], subjects: list[int], cfg: Config) -> tuple[list[ClientData], Normalizer]:
    """Every subject's training and test windows, standardised with the fleet's statistics (returned too)."""
    channels = list(cfg.channels)
    raw = []
    for s in subjects:
        mine = [r for r in recordings if r.subject == s]
        train, test, _ = subject_split(mine, cfg.input_len, cfg.stride, cfg.fraction, channels, cfg.split)
        if len(train) == 0 or len(test) == 0:
            raise ValueError(f"subject {s}: no training or no test window of {cfg.input_len} samples")
        raw.append((s, train, test))
    norm = fleet_normalizer([moments(train.x) for _, train, _ in raw])
    return [ClientData(s, Windows(norm(tr.x), tr.y, tr.subject), Windows(norm(te.x), te.y, te.subject))
            for s, tr, te in raw], norm


def moments(x: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """What a client sends for the fleet's input statistics: samples, per-channel sum and sum of squares."""
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    return len(flat), flat.sum(axis=0), (flat * flat).sum(axis=0)


def fleet_normalizer(parts: list[tuple[int, np.ndarray, np.ndarray]]) -> Normalizer:
    n = sum(p[0] for p in parts)
    mean = sum(p[1] for p in parts) / n
    var = np.maximum(sum(p[2] for p in parts) / n - mean * mean, 0.0)
    std = np.sqrt(var)
    return Normalizer(mean.astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32))


# ---------------------------------------------------------------- one client's work, in a worker process

@contextlib.contextmanager
def client_trainer(setup: ClientSetup, subject: int, params: Params, fault: Fault | None = None) -> Iterator[Trainer]:
    """The client's board (a process of its own, or the board at its port, over the UART) or TensorFlow,
    holding ``params``. ``fault``: the board is killed or frozen after the first training step."""
    model = Model(setup.arch, params)
    if setup.cfg.trainer == "tf":
        from pyodl.reference.golden import KerasReference

        yield KerasReference(model)
        return
    from pyodl.board.board_process import BoardProcess
    from pyodl.board.uart import open_serial
    from pyodl.model.optimizer import SGD
    from pyodl.network.board import BoardNetwork

    if subject in setup.ports:
        # Firmware of this model's shape that trains every layer with SGD (`pyodl flash`, or Renode running
        # it): its own weights do not matter, every call sets the client's.
        with contextlib.closing(open_serial(setup.ports[subject])) as transport:
            net = BoardNetwork(transport, setup.arch, optimizer=SGD)
            net.set_params(params)
            yield net
        return
    with tempfile.TemporaryDirectory(prefix="pyodl-client-") as tmp:
        elf = Path(tmp) / "pyodl.elf"
        elf.write_bytes(setup.firmware)
        board = BoardProcess(elf)
        with board as url, contextlib.closing(open_serial(url)) as transport:
            net = BoardNetwork(transport, setup.arch)
            net.set_params(params)
            yield _Faulty(net, fault, board) if fault else net


class _Faulty:
    """A trainer whose board fails on purpose after its first step."""

    def __init__(self, trainer: Trainer, fault: Fault, board: BoardProcess) -> None:
        self.trainer, self.fault, self.board, self.steps = trainer, fault, board, 0

    def set_trainable(self, trainable_layers: int) -> None:
        self.trainer.set_trainable(trainable_layers)

    def train_step(self, xs: np.ndarray, labels: np.ndarray, learning_rate: float) -> float:
        loss = self.trainer.train_step(xs, labels, learning_rate)
        self.steps += 1
        if self.steps == 1:
            (self.board.kill if self.fault.kind == "crash" else self.board.freeze)()
        return loss

    def predict_classes(self, xs: np.ndarray) -> np.ndarray:
        return self.trainer.predict_classes(xs)

    def get_params(self) -> Params:
        return self.trainer.get_params()

    def set_params(self, params: Params) -> None:
        self.trainer.set_params(params)


def train_client(setup: ClientSetup, client: ClientData, params: Params, server_round: int) -> TrainReply:
    """Local training: every layer, ``local_epochs`` epochs of the client's windows, batches drawn from
    ``default_rng([seed, subject, round])`` so that the board and TensorFlow see the same ones."""
    cfg = setup.cfg
    fault = next((f for f in cfg.faults if (f.client, f.round) == (client.subject, server_round)), None)
    rng = np.random.default_rng([cfg.seed, client.subject, server_round])
    with client_trainer(setup, client.subject, params, fault) as trainer:
        trainer.set_trainable(len(setup.arch.param_layers))
        losses = pers.fit_epochs(trainer, client.train, cfg.local_epochs, cfg.batch, cfg.learning_rate, rng,
                                 _silent, f"client {client.subject}")
        steps = cfg.local_epochs * (len(client.train) // min(cfg.batch, len(client.train)))
        return TrainReply(client.subject, len(client.train), losses[-1], steps, trainer.get_params())


def evaluate_client(setup: ClientSetup, client: ClientData, params: Params, personalize: bool) -> EvaluateReply:
    """The global model's scores on the client's test part and, with ``personalize``, those of the global
    model with its last ``tl_layers`` layers fine-tuned on the client's training windows."""
    cfg = setup.cfg
    with client_trainer(setup, client.subject, params) as trainer:
        g_acc, g_f1 = _scores(client.test.y, trainer.predict_classes(client.test.x))
        p_acc = p_f1 = None
        if personalize and cfg.personalize_epochs:
            trainer.set_trainable(cfg.tl_layers)
            rng = np.random.default_rng([cfg.seed, client.subject, 0])
            pers.fit_epochs(trainer, client.train, cfg.personalize_epochs, cfg.batch, cfg.learning_rate, rng,
                            _silent, f"client {client.subject}")
            p_acc, p_f1 = _scores(client.test.y, trainer.predict_classes(client.test.x))
    return EvaluateReply(client.subject, len(client.test), g_f1, g_acc, p_f1, p_acc)


def _scores(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    return float(accuracy_score(y, pred)), float(f1_score(y, pred, average="macro"))


def _silent(what: str, done: int, total: int) -> None:
    """A client's progress: the server counts rounds."""


class ClientError(RuntimeError):
    """A client's failure as the server receives it: Flower names the node that failed, not its client, so
    the message says which client it was and what it raised."""


@contextlib.contextmanager
def _naming(client: ClientData) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        raise ClientError(f"client {client.subject}: {type(exc).__name__}: {exc}") from exc


def _train_job(setup: ClientSetup, clients: list[ClientData], index: int, arrays: list[np.ndarray],
               server_round: int) -> tuple[list[np.ndarray], dict[str, float]]:
    with _naming(clients[index]):
        reply = train_client(setup, clients[index], _pairs(arrays, setup.arch), server_round)
    return _flat(reply.params), {"num-examples": reply.windows, "loss": reply.loss, "steps": reply.steps}


def _evaluate_job(setup: ClientSetup, clients: list[ClientData], index: int, arrays: list[np.ndarray],
                  server_round: int) -> dict[str, float]:
    cfg = setup.cfg
    personalize = server_round % cfg.personalize_every == 0 or server_round == cfg.rounds
    with _naming(clients[index]):
        reply = evaluate_client(setup, clients[index], _pairs(arrays, setup.arch), personalize)
    nan = float("nan")
    return {"num-examples": reply.test_windows, "global_f1": reply.global_f1, "global_accuracy": reply.global_accuracy,
            "personal_f1": nan if reply.personal_f1 is None else reply.personal_f1,
            "personal_accuracy": nan if reply.personal_accuracy is None else reply.personal_accuracy}


def _errors(reasons: list[str], expected: list[int], answered: set[int]) -> dict[int, str]:
    """The clients missing from a round, each with its reason (a client past the round's timeout has none)."""
    why: dict[int, str] = {}
    unnamed: list[str] = []
    for reason in reasons:
        line = _short_reason(reason)
        named = re.match(r"ClientError: client (-?\d+): (.*)", line)
        if named:
            why[int(named.group(1))] = named.group(2)
        else:
            unnamed.append(line)
    rest = iter(unnamed)
    return {s: why.get(s) or next(rest, "no reply before the round's timeout")
            for s in expected if s not in answered}


def _short_reason(reason: str) -> str:
    """Flower's reason holds Ray's report of the worker's exception: its traceback, coloured, the causes of a
    chained exception first and Flower's wrapper last. The reader needs the line of the exception the client
    raised (``ClientError: client 2: BoardError: ...``), without its module path."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", reason)
    raised = [m.group(1) + ": " + m.group(2).strip() for line in text.splitlines()
              if (m := re.match(r"\s*(?:\w+\.)*(\w+(?:Error|Exception|Interrupt))\s*:\s*(\S.*)", line))
              and m.group(1) not in _WRAPPERS]
    return (raised[-1] if raised else text.strip().splitlines()[0] if text.strip() else reason)[:300]


_WRAPPERS = {"ClientAppException", "RayTaskError", "RayActorError", "ActorDiedError"}


def run(recordings: list[Recording], classes: list[str], subjects: list[int], cfg: Config, dataset: str,
        cache_dir: Path | None, progress: Progress, general: pers.GeneralModel | None = None,
        record_updates: bool = False) -> Report:
    """The federation over ``subjects`` and the centralised baseline. ``record_updates``: the report keeps
    every client's returned weights and the aggregate per round (``client_updates``, ``aggregated``), for
    checking the aggregation."""
    known = sorted({r.subject for r in recordings})
    missing = [s for s in subjects if s not in known]
    if missing:
        raise ValueError(f"subjects {missing} are not in {dataset} (it has {known})")
    if len(subjects) < 2:
        raise ValueError("a federation needs at least 2 clients")
    if cfg.ports and len(cfg.ports) != len(subjects):
        raise ValueError(f"{len(cfg.ports)} ports for {len(subjects)} clients: give one board per client")
    unknown = [f for f in cfg.faults if f.client not in subjects or f.round > cfg.rounds]
    if unknown:
        raise ValueError(f"faults {unknown} name no client of this run or a round past --rounds {cfg.rounds}")
    arch = (general or pers.GeneralModel()).architecture(cfg.input_len, len(cfg.channels), len(classes))
    arch.first_trained(cfg.tl_layers)  # a TL head the model has, before any work
    start = time.perf_counter()
    clients, norm = client_data(recordings, subjects, cfg)
    initial = glorot_params(arch, cfg.seed)
    with tempfile.TemporaryDirectory(prefix="pyodl-fleet-") as tmp:
        firmware = b""
        if cfg.trainer == "board" and not cfg.ports:  # boards at ports run their own firmware
            from pyodl.model.optimizer import SGD
            from pyodl.toolchain.firmware import FirmwareBuilder

            progress("export and build", 0, 1)
            built = FirmwareBuilder(Path(tmp) / "build-arm").export_and_build(
                Model(arch, initial), Path(tmp) / "model", None, SGD, cfg.batch)
            firmware = built.elf.read_bytes()
            progress("export and build", 1, 1)
    setup = ClientSetup(arch, cfg, firmware, dict(zip(subjects, cfg.ports, strict=False)))
    central = centralised(clients, norm, arch, setup, dataset_key(recordings, classes, subjects, cfg),
                          cache_dir, progress)
    cost = step_cost(Model(arch, initial), len(arch.param_layers), cfg.batch)
    rounds: list[RoundResult] = []
    updates: dict[int, list[TrainReply]] = {}
    aggregated: dict[int, Params] = {}
    round_start = [time.perf_counter()]
    progress("rounds", 0, cfg.rounds)

    def on_round(log: fleet.RoundLog) -> None:
        trained = sorted(subjects[c] for c in log.trained)
        by_subject = {subjects[c]: m for c, m in log.trained.items()}
        evaluated = {subjects[c]: m for c, m in log.evaluated.items()}
        dropped = _errors(log.train_errors, subjects, set(trained))
        now = time.perf_counter()
        rounds.append(RoundResult(
            log.round, trained, dropped,
            float(np.mean([m["loss"] for m in by_subject.values()])) if by_subject else float("nan"),
            {s: float(m["global_f1"]) for s, m in evaluated.items()},
            {s: float(m["personal_f1"]) for s, m in evaluated.items() if not np.isnan(m["personal_f1"])},
            {s: float(m["global_accuracy"]) for s, m in evaluated.items()},
            {s: int(m["steps"]) * cost.instructions for s, m in by_subject.items()},
            {s: int(m["steps"]) * cost.millijoules for s, m in by_subject.items()}, now - round_start[0]))
        round_start[0] = now
        if record_updates:
            updates[log.round] = [TrainReply(subjects[c], int(log.trained[c]["num-examples"]),
                                             float(log.trained[c]["loss"]), int(log.trained[c]["steps"]),
                                             _pairs(arrays, arch)) for c, arrays in log.updates.items()]
            aggregated[log.round] = _pairs(log.aggregated, arch)
        progress("rounds", log.round, cfg.rounds)

    train = functools.partial(_train_job, setup, clients)
    evaluate = functools.partial(_evaluate_job, setup, clients)
    final = fleet.simulate(len(clients), train, evaluate, _flat(initial), cfg.strategy, cfg.rounds, cfg.workers,
                           cfg.ray_address, cfg.round_timeout, on_round)
    return Report(cfg, dataset, classes, subjects, arch.param_count, rounds, central,
                  3 * FLOAT_BYTES * arch.param_count,
                  {c.subject: len(c.train) for c in clients}, time.perf_counter() - start,
                  _pairs(final, arch), updates, aggregated)


def dataset_key(recordings: list[Recording], classes: list[str], subjects: list[int], cfg: Config) -> str:
    """The centralised model's data: the dataset, the clients and how their windows were cut."""
    parts = [pers.dataset_fingerprint(recordings, classes), "fleet-train-parts", subjects, cfg.fraction, cfg.split]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def centralised(clients: list[ClientData], norm: Normalizer, arch: Architecture, setup: ClientSetup,
                fingerprint: str, cache_dir: Path | None, progress: Progress) -> list[EvaluateReply]:
    """personalize's general model trained on the union of the clients' training windows, then scored and
    personalized on each client as the federated model is."""
    cfg = setup.cfg
    pcfg = pers.Config(input_len=cfg.input_len, stride=cfg.stride, channels=cfg.channels,
                       pretrain_epochs=cfg.pretrain_epochs, seed=cfg.seed)
    union = Windows.concat([c.train for c in clients], cfg.input_len, len(cfg.channels))
    general, _ = pers.pretrain(union, arch, pcfg, cache_dir, pers.cache_key(fingerprint, -1, pcfg, arch), norm,
                               progress)
    jobs = [dict(setup=setup, client=c, params=general.params, personalize=True) for c in clients]
    return run_each(_evaluate_with_progress, jobs, cfg.workers, progress, what="centralised, per client",
                    ray_address=cfg.ray_address)


def _evaluate_with_progress(setup: ClientSetup, client: ClientData, params: Params, personalize: bool,
                            progress: Progress) -> EvaluateReply:
    return evaluate_client(setup, client, params, personalize)


def plot(report: Report, out: Path) -> None:
    from pyodl.experiments.plots import save

    save(rounds_figure(report), out / "rounds.png")


def rounds_figure(report: Report) -> Figure:
    from matplotlib.ticker import MaxNLocator

    from pyodl.experiments.plots import figure, legend_right

    cfg = report.config
    names = {"fedavg": "FedAvg", "fedavgm": "FedAvgM", "fedadam": "FedAdam"}  # as the papers write them
    fig, ax = figure(8.5, 4.2)
    xs = [r.round for r in report.rounds]
    ax.plot(xs, [r.mean_global_f1() for r in report.rounds], "o-", label="federated, global model")
    personal = [(r.round, r.mean_personal_f1()) for r in report.rounds if r.mean_personal_f1() is not None]
    if personal:
        ax.plot(*zip(*personal, strict=True), "s-", label="federated, personalized")
    central = float(np.mean([c.global_f1 for c in report.centralised]))
    ax.axhline(central, color="gray", linestyle="--", label="centralised general model")
    central_p = [c.personal_f1 for c in report.centralised if c.personal_f1 is not None]
    if central_p:
        ax.axhline(float(np.mean(central_p)), color="gray", linestyle=":", label="centralised, personalized")
    dropped = [r.round for r in report.rounds if r.dropped]
    for k, r in enumerate(dropped):
        ax.axvline(r, color="red", alpha=0.3, label="a client dropped\nin this round" if k == 0 else None)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="federated round", ylabel="macro F1 (mean over clients)", ylim=(0, 1),
           title=f"{names.get(cfg.strategy, cfg.strategy)} over {len(report.subjects)} clients, "
                 f"{cfg.local_epochs} local epoch{'s' if cfg.local_epochs != 1 else ''} per round")
    ax.grid(alpha=0.3)
    legend_right(ax)
    return fig
