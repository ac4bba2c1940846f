"""Flower's simulation engine as pyodl drives it, with plain NumPy clients (no board): the aggregation order,
a failing client, errors raised by the server. The federated runs on boards are in test_federate.py."""

from __future__ import annotations

import os

import numpy as np
import pytest

from pyodl.experiments import fleet

if not os.environ.get("CI"):  # CI installs the fleet extra and must run these
    pytest.importorskip("flwr", reason="the fleet extra: pip install -e '.[fleet]'")


def numpy_fedavg(updates: list[tuple[int, list[np.ndarray]]]) -> list[np.ndarray]:
    """The weighted mean of the clients' arrays, each weighted by its example count over the total, summed in
    float32 in client order: FedAvg as its paper defines it, in the float32 arithmetic the board's weights
    have. Bit for bit only in this order; another order differs in the last bits."""
    total = sum(n for n, _ in updates)
    out = None
    for n, arrays in updates:
        scaled = [a * np.float32(n / total) for a in arrays]
        out = scaled if out is None else [o + s for o, s in zip(out, scaled, strict=True)]
    assert out is not None
    return out


def test_fedavg_is_the_numpy_weighted_mean_in_client_order_whatever_finishes_first() -> None:
    import time

    logs: list[fleet.RoundLog] = []

    def train(client: int, arrays: list[np.ndarray], rnd: int) -> tuple[list[np.ndarray], dict[str, float]]:
        time.sleep(0.3 * (2 - client))  # the last client answers first
        rng = np.random.default_rng([client, rnd])
        return [a + rng.standard_normal(a.shape).astype(np.float32) for a in arrays], {"num-examples": 3 + client * 7}

    def evaluate(client: int, arrays: list[np.ndarray], rnd: int) -> dict[str, float]:
        return {"num-examples": 1, "norm": float(sum(np.abs(a).sum() for a in arrays))}

    initial = [np.zeros((3, 4), np.float32), np.ones(5, np.float32)]
    final = fleet.simulate(3, train, evaluate, initial, "fedavg", 2, 2, None, 120, logs.append)
    assert [log.round for log in logs] == [1, 2]
    previous = initial
    for log in logs:
        assert sorted(log.trained) == [0, 1, 2] and not log.train_errors and not log.evaluate_errors
        updates = [(int(log.trained[c]["num-examples"]), log.updates[c]) for c in sorted(log.updates)]
        for c, arrays in log.updates.items():  # each client started from the previous round's global weights
            rng = np.random.default_rng([c, log.round])
            want = [p + rng.standard_normal(p.shape).astype(np.float32) for p in previous]
            assert all(np.array_equal(a, w) for a, w in zip(arrays, want, strict=True))
        expected = numpy_fedavg(updates)
        assert all(a.dtype == np.float32 and np.array_equal(a, e)
                   for a, e in zip(log.aggregated, expected, strict=True))
        assert sorted(log.evaluated) == [0, 1, 2]
        previous = log.aggregated
    assert all(np.array_equal(a, e) for a, e in zip(final, logs[-1].aggregated, strict=True))


def test_a_client_that_raises_is_dropped_from_its_round_and_the_run_goes_on() -> None:
    logs: list[fleet.RoundLog] = []

    def train(client: int, arrays: list[np.ndarray], rnd: int) -> tuple[list[np.ndarray], dict[str, float]]:
        if (client, rnd) == (1, 1):
            raise RuntimeError("board 1 stopped answering")
        return [a + client for a in arrays], {"num-examples": 1}

    def evaluate(client: int, arrays: list[np.ndarray], rnd: int) -> dict[str, float]:
        return {"num-examples": 1}

    final = fleet.simulate(3, train, evaluate, [np.zeros(2, np.float32)], "fedavg", 2, 2, None, 120, logs.append)
    assert sorted(logs[0].trained) == [0, 2] and len(logs[0].train_errors) == 1
    assert "board 1 stopped answering" in logs[0].train_errors[0]
    assert np.array_equal(logs[0].aggregated[0], np.full(2, 1.0, np.float32))  # (0 + 2) / 2
    assert sorted(logs[1].trained) == [0, 1, 2] and not logs[1].train_errors
    assert np.array_equal(final[0], np.full(2, 2.0, np.float32))  # 1 + (0 + 1 + 2) / 3


def test_an_error_of_the_server_side_is_raised_here() -> None:
    def train(client: int, arrays: list[np.ndarray], rnd: int) -> tuple[list[np.ndarray], dict[str, float]]:
        return arrays, {"num-examples": 1}

    def evaluate(client: int, arrays: list[np.ndarray], rnd: int) -> dict[str, float]:
        return {"num-examples": 1}

    def on_round(log: fleet.RoundLog) -> None:
        raise ValueError("the report could not be written")

    with pytest.raises(ValueError, match="could not be written"):
        fleet.simulate(2, train, evaluate, [np.zeros(2, np.float32)], "fedavg", 1, 1, None, 120, on_round)


def test_an_unknown_strategy_is_refused_before_flower_starts() -> None:
    with pytest.raises(ValueError, match="fedavg, fedavgm, fedadam"):
        fleet.simulate(2, None, None, [], "fedsgd", 1, 1, None, 1, print)  # type: ignore[arg-type]
