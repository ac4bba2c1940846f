"""The Renode backend end to end on the real firmware: RenodeBoard drives a stand-in monitor that runs the
Unicorn board (tests/board/fixtures/unicorn_monitor.py), and every monitor command is counted. A training step
must cost O(1) commands whatever the batch (the issue's measure of Renode's wall time: each `Execute Command`
is a round trip to Renode), and give the Unicorn board's weights bit for bit."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pyodl.board.mailbox import MailboxTransport
from pyodl.board.renode import RenodeBoard
from pyodl.board.uart import BoardUart, UartTransport
from pyodl.board.unicorn import UnicornBoard
from pyodl.model.architecture import paper_model
from pyodl.network.base import Network
from pyodl.network.board import BoardNetwork
from pyodl.toolchain.firmware import Firmware, FirmwareBuilder

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from unicorn_monitor import UnicornMonitor

MODEL = paper_model(20, 0)
BATCH = 32
# Per step: the batch's windows into the dataset region, then the command (its fields and word written, the run
# and the reply read: one pyodl_transact). Slices of RunFor are taken inside Renode, so even the first step of a
# kind, which grows its slices geometrically from a short one, costs no more round trips.
COMMANDS_PER_STEP = 2
MAX_COMMANDS_FIRST_STEP = 3


@pytest.fixture(scope="module")
def firmware(firmware_builder: FirmwareBuilder, tmp_path_factory: pytest.TempPathFactory) -> Firmware:
    return firmware_builder.export_and_build(MODEL, tmp_path_factory.mktemp("renode20"), dataset_windows=BATCH)


@pytest.fixture
def monitor() -> Iterator[UnicornMonitor]:
    m = UnicornMonitor()
    yield m
    m.reset_emulation()


def _batch(seed: int, n: int = BATCH) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 20, 3)).astype(np.float32), rng.integers(0, 6, size=n)


def _renode_net(monitor: UnicornMonitor, firmware: Firmware, tmp_path: Path) -> BoardNetwork:
    board = RenodeBoard(monitor.execute, workdir=tmp_path)
    board.load_elf(firmware.elf)
    return BoardNetwork(MailboxTransport(board), MODEL.arch)


def test_a_training_step_is_a_constant_number_of_monitor_commands(monitor: UnicornMonitor, firmware: Firmware,
                                                                   tmp_path: Path) -> None:
    net = _renode_net(monitor, firmware, tmp_path)
    counts = []
    for seed in range(3):
        before = monitor.count
        net.train_step(*_batch(seed), 0.05)
        counts.append(monitor.count - before)
    assert counts[0] <= MAX_COMMANDS_FIRST_STEP and counts[1:] == [COMMANDS_PER_STEP] * 2, counts
    before = monitor.count
    net.train_step(*_batch(3, 4), 0.05)  # another batch size: slices from scratch, but nothing per window
    assert monitor.count - before <= MAX_COMMANDS_FIRST_STEP
    before = monitor.count
    Network.train_step(net, *_batch(0), 0.05)  # the per-window commands, as before the batch commands
    per_window = monitor.count - before
    assert per_window > BATCH, per_window  # a command per window


def test_evaluation_is_a_constant_number_of_monitor_commands_per_region(monitor: UnicornMonitor,
                                                                        firmware: Firmware, tmp_path: Path) -> None:
    net = _renode_net(monitor, firmware, tmp_path)
    xs, _ = _batch(3, 3 * BATCH)
    before = monitor.count
    classes = net.predict_classes(xs)
    assert monitor.count - before <= MAX_COMMANDS_FIRST_STEP + 2 * (COMMANDS_PER_STEP + 1)  # + the classes read
    with UnicornBoard(firmware.elf) as board:
        assert np.array_equal(classes, BoardNetwork(MailboxTransport(board), MODEL.arch).predict_classes(xs))


def test_the_renode_path_trains_the_unicorn_weights(monitor: UnicornMonitor, firmware: Firmware,
                                                    tmp_path: Path) -> None:
    net = _renode_net(monitor, firmware, tmp_path)
    with UnicornBoard(firmware.elf) as board:
        reference = BoardNetwork(MailboxTransport(board), MODEL.arch)
        for seed in range(3):
            assert net.train_step(*_batch(seed), 0.05) == reference.train_step(*_batch(seed), 0.05)
        expected = reference.get_params()
    for (w, b), (w2, b2) in zip(net.get_params(), expected, strict=True):
        assert np.array_equal(w, w2) and np.array_equal(b, b2)


def test_over_the_uart_a_frame_is_a_few_commands_not_one_per_byte(monitor: UnicornMonitor, firmware: Firmware,
                                                                   tmp_path: Path) -> None:
    board = RenodeBoard(monitor.execute, workdir=tmp_path)
    board.load_elf(firmware.elf)
    MailboxTransport(board)  # boots it
    net = BoardNetwork(UartTransport(BoardUart(board)), MODEL.arch)
    xs, ys = _batch(5)
    frames = -(-BATCH * (20 * 3 + 1) * 4 // net.info().data_capacity) + 1  # STORE_DATASET chunks, TRAIN_BATCH
    before, chars = monitor.count, monitor.commands["WriteChar"]
    net.train_step(xs, ys, 0.05)
    sent = BATCH * (20 * 3 + 1) * 4 + frames * 29  # the records, and each frame's header, fields and CRC
    # Each frame: its bytes queued on the receive line (pyodl_transact's U step, the receiver checked there), then
    # a run: two round trips, whatever its length.
    assert monitor.count - before == 2 * frames, (monitor.count - before, frames)
    assert monitor.commands["WriteChar"] - chars == sent
    with UnicornBoard(firmware.elf) as unicorn:
        reference = BoardNetwork(MailboxTransport(unicorn), MODEL.arch)
        reference.train_step(xs, ys, 0.05)
        for (w, b), (w2, b2) in zip(net.get_params(), reference.get_params(), strict=True):
            assert np.array_equal(w, w2) and np.array_equal(b, b2)
