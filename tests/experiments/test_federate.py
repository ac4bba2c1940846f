"""pyodl federate on the bundled watch data: 3 clients, 2 rounds, each client's firmware on its own
simulated board (a process of its own, over its UART), Flower on Ray with 2 workers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from pyodl.cli import main
from pyodl.data.watch import load_watch
from pyodl.experiments import federate as fed
from pyodl.reference.golden import tolerance

if not os.environ.get("CI"):  # CI installs the fleet extra and must run these
    pytest.importorskip("flwr", reason="the fleet extra: pip install -e '.[fleet]'")

SMALL = dict(rounds=2, local_epochs=1, personalize_epochs=1, pretrain_epochs=1, workers=2)
CLIENTS = [3, 4, 6]  # the watch data's subjects with the fewest windows, for speed


def numpy_fedavg(updates: list[fed.TrainReply]) -> list[np.ndarray]:
    """FedAvg by its definition, sum_k n_k / n * w_k, in float32 and in client order (tests/experiments/
    test_fleet.py says why the order)."""
    total = sum(u.windows for u in updates)
    out: list[np.ndarray] | None = None
    for u in sorted(updates, key=lambda u: u.subject):
        scaled = [a * np.float32(u.windows / total) for pair in u.params for a in pair]
        out = scaled if out is None else [o + s for o, s in zip(out, scaled, strict=True)]
    assert out is not None
    return out


@pytest.fixture(scope="module")
def watch() -> tuple[list, list[str]]:
    recordings, classes, _ = load_watch()
    return recordings, classes


@pytest.fixture(scope="module")
def board_run(watch: tuple[list, list[str]]) -> fed.Report:
    recordings, classes = watch
    return fed.run(recordings, classes, CLIENTS, fed.Config(**SMALL), "watch", None, lambda *a: None,
                   record_updates=True)


def test_boards_aggregate_to_the_numpy_fedavg_of_their_weights_bit_for_bit(board_run: fed.Report) -> None:
    assert [r.round for r in board_run.rounds] == [1, 2]
    for r in board_run.rounds:
        assert r.trained == CLIENTS and not r.dropped
        clients = board_run.client_updates[r.round]
        assert [c.subject for c in clients] == CLIENTS
        assert [c.windows for c in clients] == [board_run.train_windows[s] for s in CLIENTS]
        got = [a for pair in board_run.aggregated[r.round] for a in pair]
        assert all(np.array_equal(g, e) for g, e in zip(got, numpy_fedavg(clients), strict=True))
        # the boards trained: every client's weights moved, and differently
        assert not np.array_equal(clients[0].params[0][0], clients[1].params[0][0])
        assert r.instructions[CLIENTS[0]] > 100e6 and r.millijoules[CLIENTS[0]] > 0
        assert set(r.global_f1) == set(CLIENTS)
    final = board_run.aggregated[2]
    assert all(np.array_equal(a, b) for pa, pb in zip(final, board_run.final_params, strict=True)
               for a, b in zip(pa, pb, strict=True))
    assert set(board_run.rounds[-1].personal_f1) == set(CLIENTS)  # the last round personalizes
    assert board_run.bytes_per_round == 3 * 4 * board_run.parameters


def test_tensorflow_trains_the_federation_like_the_boards(watch: tuple[list, list[str]],
                                                           board_run: fed.Report) -> None:
    recordings, classes = watch
    tf_run = fed.run(recordings, classes, CLIENTS, fed.Config(**SMALL, trainer="tf"), "watch", None,
                     lambda *a: None)
    # Each client's 2 rounds of SGD steps (16 at most) in float32, C against TF: within the golden tolerance,
    # which holds for up to 100 steps; FedAvg's weighted mean of weights within it stays within it.
    atol, rtol = tolerance()
    for (wb, bb), (wt, bt) in zip(board_run.final_params, tf_run.final_params, strict=True):
        np.testing.assert_allclose(wb, wt, atol=atol, rtol=rtol)
        np.testing.assert_allclose(bb, bt, atol=atol, rtol=rtol)
    for rb, rt in zip(board_run.rounds, tf_run.rounds, strict=True):
        assert rb.global_f1 == pytest.approx(rt.global_f1, abs=0.005)


def test_a_crashed_and_a_hung_board_are_dropped_and_the_federation_goes_on(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    args = ["federate", "--subjects", "3,4,6", "--rounds", "2", "--local-epochs", "1", "--personalize-epochs", "1",
            "--pretrain-epochs", "1", "--fault", "crash:4@1", "--fault", "hang:6@2", "--out", str(tmp_path),
            "--no-cache"]
    assert main(args) == 0
    result = json.loads((tmp_path / "results.json").read_text())
    first, second = result["rounds"]
    assert first["trained"] == [3, 6] and list(first["dropped"]) == ["4"]
    assert second["trained"] == [3, 4] and list(second["dropped"]) == ["6"]
    # killed: its socket closes under the client; frozen: it stops answering
    assert first["dropped"]["4"].startswith("BoardError: the link to the board at socket://127.0.0.1:")
    assert second["dropped"]["6"].startswith("ProtocolError: no answer to ")
    assert set(second["global_f1"]) == {"3", "4", "6"}  # a dropped client still scores the next model
    text = (tmp_path / "results.md").read_text()
    assert "| 1 | 2 | 4 (BoardError: " in text and "centralised" in text
    assert (tmp_path / "rounds.png").read_bytes()[:4] == b"\x89PNG"
    assert "wrote" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "message"), [
    (["--rounds", "0"], "argument --rounds: must be >= 1"),
    (["--fault", "boom:1@1"], "the kind must be one of crash, hang"),
    (["--fault", "crash:1"], "write KIND:CLIENT@ROUND"),
    (["--trainer", "tf", "--fault", "crash:1@1"], "a fault is played on a simulated board"),
    (["--subjects", "1", "--rounds", "1"], "at least 2 clients"),
    (["--subjects", "1,2", "--fault", "crash:7@1"], "name no client of this run"),
    (["--subjects", "1,2", "--ports", "socket://127.0.0.1:1"], "1 ports for 2 clients"),
    (["--ports", "socket://127.0.0.1:1", "--fault", "crash:1@1"], "no --ports"),
])
def test_bad_arguments_are_refused_with_the_option_named(args: list[str], message: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["federate", *args, "--out", "/nonexistent/never"]) == 2
    assert message in capsys.readouterr().err


def test_the_fleet_statistics_are_those_of_the_union_of_the_clients_windows() -> None:
    rng = np.random.default_rng(0)
    parts = [rng.normal(loc, 2.0, size=(n, 8, 3)).astype(np.float32) for loc, n in ((1.0, 5), (-3.0, 17), (0.5, 2))]
    norm = fed.fleet_normalizer([fed.moments(p) for p in parts])
    union = np.concatenate(parts)
    flat = union.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(norm.mean, flat.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(norm.std, flat.std(axis=0), rtol=1e-6)


def test_a_fault_spec_reads_kind_client_and_round() -> None:
    assert fed.Fault.parse("hang:3@2") == fed.Fault("hang", 3, 2)
    with pytest.raises(ValueError, match="rounds count from 1"):
        fed.Fault.parse("crash:3@0")


def test_a_dropped_clients_reason_is_the_line_of_the_exception_it_raised() -> None:
    # as Flower 1.42 hands it over: Ray's coloured task header, the causes first, Flower's wrapper last
    def reason(client: int, message: str) -> str:
        return ("<class 'ray.exceptions.RayTaskError(ClientAppException)'>:<'\x1b[36mray::ClientAppActor.run()"
                "\x1b[39m (pid=1, ip=192.0.2.2)\nConnectionResetError: [Errno 104] Connection reset by peer\n\n"
                "The above exception was the direct cause of the following exception:\n\n  File \"uart.py\"\n"
                f"pyodl.board.base.BoardError: {message}\n\nThe above exception was the direct cause of the "
                f"following exception:\n\npyodl.experiments.federate.ClientError: client {client}: BoardError: "
                f"{message}\n\nflwr.clientapp.exception.ClientAppException: \nException ClientAppException "
                "occurred. Message: x'>")

    assert fed._short_reason(reason(5, "gone")) == "ClientError: client 5: BoardError: gone"
    # the reasons arrive in the order the clients failed, not in the clients' order
    assert fed._errors([reason(6, "late"), reason(5, "gone")], [4, 5, 6], {4}) == {5: "BoardError: gone",
                                                                                   6: "BoardError: late"}
    assert fed._errors([], [4, 5], {4}) == {5: "no reply before the round's timeout"}
    assert fed._errors(["RuntimeError: lost"], [4, 5], {4}) == {5: "RuntimeError: lost"}
