"""Flower's simulation engine, as pyodl uses it: a server app running one of Flower's strategies, a client
app calling an experiment's client functions, and Ray running the clients (local processes, or a cluster).

Nothing here knows about boards: a client function takes the client's index, the global arrays and the
round, and returns arrays and numbers. What is pyodl's own:

- replies are aggregated in client order, not in the order they arrived, so a run's weights do not depend
  on which worker finished first (a float32 sum's result depends on its order);
- a client that raises (its board crashed or stopped answering) is dropped from that round, as Flower does;
  the round log names it with the reason;
- whatever the server app raises is raised here, after Flower has shut its engine down.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

STRATEGIES = ("fedavg", "fedavgm", "fedadam")
CLIENT_KEY = "client"  # the metric naming the client that sent a reply
WEIGHT_KEY = "num-examples"  # Flower's default weighting key
INSTALL_HINT = "Flower and Ray are pyodl's fleet extra: pip install -e '.[fleet]' (./scripts/setup.sh installs it)"


def require(*modules: str) -> None:
    """A RuntimeError saying what to install when one of ``modules`` (default: Flower and Ray) is missing,
    before any work that would need it."""
    import importlib.util

    missing = [m for m in modules or ("flwr", "ray") if importlib.util.find_spec(m) is None]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not installed: {INSTALL_HINT}")

Arrays = list[np.ndarray]
TrainFn = Callable[[int, Arrays, int], tuple[Arrays, dict[str, float]]]  # (client, arrays, round)
EvaluateFn = Callable[[int, Arrays, int], dict[str, float]]


@dataclass
class RoundLog:
    """What the server received in one round."""

    round: int
    trained: dict[int, dict[str, float]] = field(default_factory=dict)  # client -> its training metrics
    updates: dict[int, Arrays] = field(default_factory=dict)  # client -> the arrays it sent
    train_errors: list[str] = field(default_factory=list)
    evaluated: dict[int, dict[str, float]] = field(default_factory=dict)
    evaluate_errors: list[str] = field(default_factory=list)
    aggregated: Arrays = field(default_factory=list)


def _strategy_class(name: str) -> type:
    from flwr.serverapp.strategy import FedAdam, FedAvg, FedAvgM

    base: type = {"fedavg": FedAvg, "fedavgm": FedAvgM, "fedadam": FedAdam}[name]

    class InClientOrder(base):  # type: ignore[valid-type,misc]
        """``base`` aggregating in client order, reporting each round to ``on_round``."""

        def __init__(self, on_round: Callable[[RoundLog], None], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.on_round = on_round
            self.log: RoundLog | None = None

        def aggregate_train(self, server_round: int, replies: Iterable[Any]) -> tuple[Any, Any]:
            replies = list(replies)
            ok = sorted((m for m in replies if not m.has_error()), key=_client_of)
            self.log = log = RoundLog(server_round)
            for m in ok:
                log.trained[_client_of(m)] = dict(m.content["metrics"])
                log.updates[_client_of(m)] = m.content["arrays"].to_numpy_ndarrays()
            log.train_errors = [m.error.reason for m in replies if m.has_error()]
            arrays, metrics = super().aggregate_train(server_round, ok)
            if arrays is not None:
                log.aggregated = arrays.to_numpy_ndarrays()
            return arrays, metrics

        def aggregate_evaluate(self, server_round: int, replies: Iterable[Any]) -> Any:
            replies = list(replies)
            ok = sorted((m for m in replies if not m.has_error()), key=_client_of)
            log = self.log if self.log is not None and self.log.round == server_round else RoundLog(server_round)
            for m in ok:
                log.evaluated[_client_of(m)] = dict(m.content["metrics"])
            log.evaluate_errors = [m.error.reason for m in replies if m.has_error()]
            self.on_round(log)
            return super().aggregate_evaluate(server_round, ok)

    return InClientOrder


def _client_of(message: Any) -> int:
    return int(message.content["metrics"][CLIENT_KEY])


def _strategy_options(name: str) -> dict[str, float]:
    """Server-side settings: FedAvgM with Nesterov-free momentum 0.9; FedAdam with a server step of 0.01
    (Flower's 0.1 throws a CNN's weights far on the first round)."""
    return {"fedavg": {}, "fedavgm": {"server_momentum": 0.9},
            "fedadam": {"eta": 1e-2, "eta_l": 1e-2, "tau": 1e-3}}[name]


@contextlib.contextmanager
def _quiet_flower() -> Iterator[None]:
    """Flower logs every round and each client failure's traceback at INFO/ERROR; the report says it once."""
    logger = logging.getLogger("flwr")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def simulate(clients: int, train: TrainFn, evaluate: EvaluateFn, initial: Arrays, strategy: str, rounds: int,
             workers: int, ray_address: str | None, timeout: float, on_round: Callable[[RoundLog], None]) -> Arrays:
    """Runs ``rounds`` rounds over ``clients`` clients, each training then evaluating; ``train`` and
    ``evaluate`` run in Ray's workers, so they must pickle. Returns the final global arrays."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # no network calls from a test machine
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # Ray 2.55 warns about its future default
    try:
        from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
        from flwr.clientapp import ClientApp
        from flwr.serverapp import Grid, ServerApp
        from flwr.simulation import run_simulation
    except ImportError as exc:
        raise RuntimeError(f"{exc}: {INSTALL_HINT}") from None

    client_app = ClientApp()

    @client_app.train()
    def _train(msg: Message, context: Context) -> Message:
        client = int(context.node_config["partition-id"])
        arrays, metrics = train(client, msg.content["arrays"].to_numpy_ndarrays(),
                                int(msg.content["config"]["server-round"]))
        return Message(RecordDict({"arrays": ArrayRecord(arrays),
                                   "metrics": MetricRecord({**metrics, CLIENT_KEY: client})}), reply_to=msg)

    @client_app.evaluate()
    def _evaluate(msg: Message, context: Context) -> Message:
        client = int(context.node_config["partition-id"])
        metrics = evaluate(client, msg.content["arrays"].to_numpy_ndarrays(),
                           int(msg.content["config"]["server-round"]))
        return Message(RecordDict({"metrics": MetricRecord({**metrics, CLIENT_KEY: client})}), reply_to=msg)

    outcome: dict[str, Any] = {}
    server_app = ServerApp()

    @server_app.main()
    def _main(grid: Grid, context: Context) -> None:
        try:
            chosen = _strategy_class(strategy)(
                on_round, fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=clients,
                min_evaluate_nodes=clients, min_available_nodes=clients, **_strategy_options(strategy))
            result = chosen.start(grid=grid, initial_arrays=ArrayRecord(initial), num_rounds=rounds, timeout=timeout,
                                  train_config=ConfigRecord(), evaluate_config=ConfigRecord())
            outcome["arrays"] = result.arrays.to_numpy_ndarrays()
        except BaseException as exc:  # raised again in the caller's thread, once Flower has stopped
            outcome["error"] = exc

    init_args: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                 "logging_level": logging.ERROR}
    if ray_address:
        init_args["address"] = ray_address
    else:
        init_args["num_cpus"] = workers
    with _quiet_flower():
        run_simulation(server_app, client_app, num_supernodes=clients,
                       backend_config={"client_resources": {"num_cpus": 1}, "init_args": init_args})
    if "error" in outcome:
        raise outcome["error"]
    if "arrays" not in outcome:
        raise RuntimeError("the federated run ended without a result (Flower's simulation stopped early)")
    return list(outcome["arrays"])
