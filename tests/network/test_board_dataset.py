"""The dataset region and its batch commands (firmware/app/dataset.c, BoardNetwork.store_windows,
train_batch, evaluate): the same weights, losses and classes as the per-window commands, bit for bit, through
the mailbox and the UART, in O(1) commands per batch; every refusal changes nothing."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pyodl.board.base import DATASET_SYMBOL, BoardError
from pyodl.board.mailbox import MailboxTransport
from pyodl.board.protocol import STATUS_CODES, Command, CommandError, Reply, Request, Transport
from pyodl.board.uart import BoardUart, UartTransport
from pyodl.board.unicorn import UnicornBoard
from pyodl.model.architecture import PAPER_TL_LAYERS, paper_model
from pyodl.model.optimizer import Optimizer
from pyodl.network.base import Network
from pyodl.network.board import BoardNetwork
from pyodl.toolchain.firmware import Firmware, FirmwareBuilder

WINDOWS = 8  # the region of these builds: a batch of 8, and evaluation in chunks of 8
MODEL = paper_model(40, 0)


@pytest.fixture(scope="module")
def region_firmware(firmware_builder: FirmwareBuilder, tmp_path_factory: pytest.TempPathFactory) -> Firmware:
    return firmware_builder.export_and_build(MODEL, tmp_path_factory.mktemp("dataset40"), dataset_windows=WINDOWS)


@pytest.fixture
def board(region_firmware: Firmware) -> Iterator[UnicornBoard]:
    with UnicornBoard(region_firmware.elf) as b:
        yield b


def _data(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 40, 3)).astype(np.float32), rng.integers(0, 6, size=n)


def _same(a: list, b: list) -> bool:
    return all(np.array_equal(w1, w2) and np.array_equal(b1, b2) for (w1, b1), (w2, b2) in zip(a, b, strict=True))


class _Counting:
    """A transport that counts the commands it carries (and keeps direct memory access if it had it)."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.commands: list[str] = []
        if hasattr(inner, "store_dataset"):
            self.store_dataset = inner.store_dataset  # type: ignore[attr-defined]

    def execute(self, request: Request) -> Reply:
        self.commands.append(Command(request.command).name)
        return self.inner.execute(request)


@pytest.mark.parametrize(("trainable", "optimizer"), [(None, "sgd"), (PAPER_TL_LAYERS, "sgd:momentum=0.9")],
                         ids=["full-sgd", "tl-momentum"])
def test_train_batch_gives_the_per_window_weights_and_loss(firmware_builder: FirmwareBuilder, tmp_path: Path,
                                                           trainable: int | None, optimizer: str) -> None:
    opt = Optimizer.parse(optimizer)
    firmware = firmware_builder.export_and_build(MODEL, tmp_path, trainable, opt, dataset_windows=WINDOWS)
    runs = []
    for batched in (False, True):
        with UnicornBoard(firmware.elf) as b:
            net = BoardNetwork(MailboxTransport(b), MODEL.arch, optimizer=opt)
            losses = []
            for step in range(3):
                xs, ys = _data(step, WINDOWS - step)  # 8, 7 and 6 windows: a batch need not fill the region
                # Network.train_step is the per-window path: LOAD_SAMPLE and TRAIN_SAMPLE, then SGD_STEP.
                losses.append(net.train_step(xs, ys, 0.05) if batched else Network.train_step(net, xs, ys, 0.05))
            runs.append((net.get_params(), losses))
    (per_window, window_losses), (batched_params, batch_losses) = runs
    assert _same(per_window, batched_params)
    assert window_losses == batch_losses  # the same float32 sum in the same order, on both sides
    assert not _same(per_window, MODEL.params)


def test_train_batch_takes_the_records_from_first_on(board: UnicornBoard, region_firmware: Firmware) -> None:
    xs, ys = _data(9, WINDOWS)
    net = BoardNetwork(MailboxTransport(board), MODEL.arch)
    net.store_windows(xs, ys)
    loss = net.train_batch(2, 5, 0.05)
    with UnicornBoard(region_firmware.elf) as other:
        reference = BoardNetwork(MailboxTransport(other), MODEL.arch)
        assert Network.train_step(reference, xs[2:7], ys[2:7], 0.05) == loss
        assert _same(reference.get_params(), net.get_params())


def test_evaluate_gives_the_per_window_classes_in_chunks_of_the_region(board: UnicornBoard) -> None:
    net = BoardNetwork(MailboxTransport(board), MODEL.arch)
    xs, _ = _data(7, 3 * WINDOWS + 3)  # three full chunks and a partial one
    xs += 4 * np.random.default_rng(8).normal(size=(len(xs), 1, 3)).astype(np.float32)  # offsets tell classes apart
    one_by_one = np.array([net.predict(x)[0] for x in xs])
    assert len(set(one_by_one.tolist())) > 1  # a comparison that can tell classes apart
    assert np.array_equal(net.predict_classes(xs), one_by_one)
    net.store_windows(xs[:WINDOWS])
    assert np.array_equal(net.evaluate(3, 4), one_by_one[3:7])  # records counted from `first`
    assert net.predict_classes(xs[:0]).shape == (0,)


def test_a_batch_is_one_command_through_the_mailbox(board: UnicornBoard) -> None:
    counting = _Counting(MailboxTransport(board))
    net = BoardNetwork(counting, MODEL.arch)  # type: ignore[arg-type]
    counting.commands.clear()
    net.train_step(*_data(1, WINDOWS), 0.05)
    net.predict_classes(_data(2, WINDOWS)[0])
    assert counting.commands == ["TRAIN_BATCH", "EVALUATE"]


def test_over_the_uart_the_windows_go_once_in_data_area_chunks(board: UnicornBoard, region_firmware: Firmware,
                                                                 ) -> None:
    by_mailbox = BoardNetwork(MailboxTransport(board), MODEL.arch)
    by_mailbox.train_step(*_data(1, WINDOWS), 0.05)
    expected = by_mailbox.get_params()
    with UnicornBoard(region_firmware.elf) as other:
        MailboxTransport(other)  # boots it
        counting = _Counting(UartTransport(BoardUart(other)))
        net = BoardNetwork(counting, MODEL.arch)  # type: ignore[arg-type]
        chunks = -(-WINDOWS * (40 * 3 + 1) * 4 // net.info().data_capacity)
        counting.commands.clear()
        net.train_step(*_data(1, WINDOWS), 0.05)
        assert counting.commands == ["STORE_DATASET"] * chunks + ["TRAIN_BATCH"]
        assert _same(net.get_params(), expected)


def _status(name: str) -> int:
    return STATUS_CODES[name]


def _raw_record(board: UnicornBoard, index: int, window: np.ndarray, label: int) -> None:
    """Write a record as a buggy host could, past BoardNetwork's own checks."""
    address = board.symbol_address(DATASET_SYMBOL) + index * (40 * 3 + 1) * 4
    board.write(address, window.astype("<f4").tobytes() + struct.pack("<I", label))


@pytest.mark.parametrize(("case", "status"), [
    ("nan window", "ODL_ERR_NONFINITE"), ("label out of range", "ODL_ERR_LABEL"),
    ("past the region", "ODL_APP_ERR_ARGS"), ("no window", "ODL_APP_ERR_ARGS"),
    ("learning rate 0", "ODL_ERR_LEARNING_RATE"), ("data sent along", "ODL_APP_ERR_LENGTH"),
])
def test_a_refused_train_batch_changes_nothing(board: UnicornBoard, case: str, status: str) -> None:
    net = BoardNetwork(MailboxTransport(board), MODEL.arch)
    xs, ys = _data(3, WINDOWS)
    net.store_windows(xs, ys)
    first, count, lr, data = 0, WINDOWS, 0.05, b""
    if case == "nan window":
        bad = xs[5].copy()
        bad[7, 1] = np.nan
        _raw_record(board, 5, bad, int(ys[5]))
    elif case == "label out of range":
        _raw_record(board, 6, xs[6], 6)
    elif case == "past the region":
        first = 1
    elif case == "no window":
        count = 0
    elif case == "learning rate 0":
        lr = 0.0
    else:
        data = b"\0" * 4
    net.accumulate(xs[0], int(ys[0]))  # a sample already in the batch: a refusal keeps it or drops it whole
    before = net.get_params()
    reply = net.transport.execute(Request(Command.TRAIN_BATCH, (first, count, 0, 0), lr, data))
    assert reply.status == _status(status)
    assert reply.results == (0, 0, 0, 0) and reply.result_f == 0.0 and reply.data == b""
    assert _same(before, net.get_params())
    assert net.info().accumulated == 1  # checked before training: the batch is as it was
    net.zero_grads()
    net.store_windows(xs, ys)
    net.train_step(xs, ys, 0.05)  # and it trains on
    assert not _same(before, net.get_params())


def test_train_step_drops_the_batch_when_train_batch_refuses(board: UnicornBoard) -> None:
    net = BoardNetwork(MailboxTransport(board), MODEL.arch)
    xs, ys = _data(4, WINDOWS)
    net.accumulate(xs[0], int(ys[0]))
    xs[3, 0, 0] = np.inf
    with pytest.raises(CommandError, match="NaN or infinity"):
        net.train_step(xs, ys, 0.05)
    assert net.info().accumulated == 0


@pytest.mark.parametrize(("command", "args", "data", "status"), [
    (Command.EVALUATE, (0, 0, 0, 0), b"", "ODL_APP_ERR_ARGS"),
    (Command.EVALUATE, (WINDOWS - 1, 2, 0, 0), b"", "ODL_APP_ERR_ARGS"),
    (Command.EVALUATE, (0xFFFF_FFFF, 1, 0, 0), b"", "ODL_APP_ERR_ARGS"),
    (Command.EVALUATE, (0, 100_000, 0, 0), b"", "ODL_APP_ERR_LENGTH"),
    (Command.STORE_DATASET, (WINDOWS * (40 * 3 + 1) * 4 - 3, 0, 0, 0), b"\0" * 4, "ODL_APP_ERR_ARGS"),
    (Command.STORE_DATASET, (0xFFFF_FFFF, 0, 0, 0), b"\0" * 4, "ODL_APP_ERR_ARGS"),
])
def test_evaluate_and_store_refuse_what_is_outside_the_region(board: UnicornBoard, command: Command,
                                                              args: tuple[int, int, int, int], data: bytes,
                                                              status: str) -> None:
    net = BoardNetwork(MailboxTransport(board), MODEL.arch)
    net.store_windows(*_data(5, WINDOWS))
    region = board.read(board.symbol_address(DATASET_SYMBOL), WINDOWS * (40 * 3 + 1) * 4)
    reply = net.transport.execute(Request(command, args, 0.0, data))
    assert reply.status == _status(status) and reply.data == b""
    assert board.read(board.symbol_address(DATASET_SYMBOL), len(region)) == region


def test_the_host_refuses_windows_that_do_not_fit_before_sending(board: UnicornBoard) -> None:
    net = BoardNetwork(MailboxTransport(board), MODEL.arch)
    xs, ys = _data(6, WINDOWS)
    with pytest.raises(ValueError, match="outside the board's dataset region of 8 windows"):
        net.store_windows(xs, ys, first=1)
    with pytest.raises(ValueError, match=r"shape \(N, 40, 3\)"):
        net.store_windows(xs[:, :20], ys)
    with pytest.raises(ValueError, match=r"label 6 is outside 0\.\.5"):
        net.store_windows(xs, np.full(WINDOWS, 6))


def test_a_build_without_a_region_trains_window_by_window(paper_board: UnicornBoard) -> None:
    counting = _Counting(MailboxTransport(paper_board))
    net = BoardNetwork(counting, MODEL.arch)  # type: ignore[arg-type]
    assert net.dataset_windows == 0
    with pytest.raises(BoardError, match=DATASET_SYMBOL):
        MailboxTransport(paper_board).store_dataset(0, b"\0" * 4)
    reply = counting.execute(Request(Command.TRAIN_BATCH, (0, 1, 0, 0), 0.05))
    assert reply.status == _status("ODL_APP_ERR_ARGS")
    counting.commands.clear()
    net.train_step(*_data(1, 2), 0.05)
    assert counting.commands == ["LOAD_SAMPLE", "TRAIN_SAMPLE"] * 2 + ["SGD_STEP"]
