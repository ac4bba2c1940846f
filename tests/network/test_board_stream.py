"""A stream on the board (STREAM_START, STREAM_WINDOW, STREAM_LABEL: firmware/app/stream_commands.c) against the
reference device (pyodl/reference/stream.py) run on a second board trained window by window: the same decision
for every window (class, confidence and threshold bit for bit, query, drift), the same training steps from
the replay buffer (taken on the stream's clock, losses bit for bit), the same weights at the end."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from pyodl.board.mailbox import MailboxTransport
from pyodl.board.protocol import STATUS_CODES, CommandError
from pyodl.board.unicorn import UnicornBoard
from pyodl.model.architecture import paper_model
from pyodl.model.stream import Policy, StreamConfig, StreamSetup
from pyodl.network.base import Network
from pyodl.network.board import BoardNetwork
from pyodl.reference.stream import ReferenceStream
from pyodl.toolchain.firmware import Firmware, FirmwareBuilder

MODEL = paper_model(20, 0)
REPLAY = 12


class _WindowByWindow:
    """Trains a board with the per-window commands: the reference device's learner."""

    def __init__(self, net: BoardNetwork) -> None:
        self.net = net

    def train_step(self, xs: np.ndarray, labels: np.ndarray, learning_rate: float) -> float:
        return Network.train_step(self.net, xs, labels, learning_rate)


@pytest.fixture(scope="module")
def firmware(firmware_builder: FirmwareBuilder, tmp_path_factory: pytest.TempPathFactory) -> Firmware:
    return firmware_builder.export_and_build(MODEL, tmp_path_factory.mktemp("stream20"), dataset_windows=REPLAY)


@pytest.fixture
def boards(firmware: Firmware) -> Iterator[tuple[BoardNetwork, BoardNetwork]]:
    with UnicornBoard(firmware.elf) as a, UnicornBoard(firmware.elf) as b:
        yield BoardNetwork(MailboxTransport(a), MODEL.arch), BoardNetwork(MailboxTransport(b), MODEL.arch)


def _windows(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(n, 20, 3)) + 3 * rng.normal(size=(n, 1, 3))  # offsets make the classes differ
    return xs.astype(np.float32), rng.integers(0, 6, size=n)


SETUPS = {
    "budget": StreamSetup(StreamConfig(Policy.BUDGET, rate=0.5, threshold=0.5, step=0.05, drift_window=6,
                                       drift_on=5, drift_off=1), train_every=3, batch=8, learning_rate=0.05,
                          drift_learning_rate=0.2),
    "agreement": StreamSetup(StreamConfig(Policy.AGREEMENT, rate=0.05, threshold=0.4, step=0.05,
                                          disagree_target=0.5), train_every=2, batch=REPLAY, learning_rate=0.1),
    "random": StreamSetup(StreamConfig(Policy.RANDOM, rate=0.6, seed=99), train_every=1, batch=4),
    # A random teacher disagrees 5 times in 6: a target above that lowers the threshold, so exploration has
    # windows above it to query.
    "agreement-explore": StreamSetup(StreamConfig(Policy.AGREEMENT, rate=0.05, threshold=0.3, step=0.05,
                                                  disagree_target=0.95, explore=0.3, seed=2024), train_every=2,
                                     batch=8, learning_rate=0.05),
    "self-labels": StreamSetup(StreamConfig(Policy.BUDGET, rate=0.3, threshold=0.5, step=0.05), train_every=2,
                               batch=6, learning_rate=0.05, self_label=0.45),
}
# Every 7th queried window's label never comes (the radio lost it): its slot must not be drawn from until a
# later window fills it. With the ring full (12 slots, 90 windows), a draw of it would pair a window with the
# previous record's label.
LOST_LABEL_EVERY = 7


@pytest.mark.parametrize("name", SETUPS)
def test_the_board_streams_as_the_reference_device(boards: tuple[BoardNetwork, BoardNetwork], name: str) -> None:
    board, other = boards
    reference = ReferenceStream(lambda x: other.predict(x)[1], _WindowByWindow(other), (20, 3), REPLAY)
    setup = SETUPS[name]
    assert board.stream_start(setup) == reference.stream_start(setup) == REPLAY
    xs, teacher = _windows(90)
    steps, drifted, self_labelled, lost, stale_steps, explored = 0, False, 0, 0, 0, 0
    for x, y in zip(xs, teacher, strict=True):
        stale = reference.replay.stale and reference.replay.filled == REPLAY
        got, want = board.stream_window(x), reference.stream_window(x)
        drifted |= got.drift
        self_labelled += not got.query and np.float32(got.confidence) >= np.float32(setup.self_label) > 0
        assert (got.predicted, got.query, got.drift, got.trained) == (want.predicted, want.query, want.drift,
                                                                      want.trained)
        assert np.float32(got.confidence) == np.float32(want.confidence)
        assert np.float32(got.threshold).tobytes() == np.float32(want.threshold).tobytes()
        assert np.float32(got.loss).tobytes() == np.float32(want.loss).tobytes()
        steps += got.trained
        explored += reference.policy.explored
        stale_steps += got.trained and stale
        if got.query:
            if (reference.policy.queried % LOST_LABEL_EVERY) == 0:
                lost += 1
                continue
            assert board.stream_label(int(y)) == reference.stream_label(int(y))
    assert steps >= 20 and reference.policy.queried < len(xs)  # it trained on the stream's clock, and it pruned
    assert lost >= 3
    # Steps were drawn while a lost label's slot was stale (with self-labels a sure window soon fills it).
    assert stale_steps >= 1 or setup.self_label
    assert drifted == bool(setup.policy.drift_window)  # a random teacher disagrees: the drift rate was used
    assert explored >= 5 or not setup.policy.explore  # windows the device was sure of were queried at random
    if setup.self_label:  # windows joined the buffer with the device's own class: the comparison covers them
        assert self_labelled >= 10
    for (w, b), (w2, b2) in zip(board.get_params(), other.get_params(), strict=True):
        assert np.array_equal(w, w2) and np.array_equal(b, b2)
    assert not np.array_equal(board.get_params()[0][0], MODEL.params[0][0])


def test_stream_commands_refuse_what_they_cannot_do(boards: tuple[BoardNetwork, BoardNetwork]) -> None:
    board, _ = boards
    with pytest.raises(CommandError, match="argument out of range"):
        board.stream_window(_windows(1)[0][0])  # no stream started
    with pytest.raises(ValueError, match=r"batch must be in 1\.\.12"):
        board.stream_start(StreamSetup(batch=13))
    board.stream_start(SETUPS["budget"])
    with pytest.raises(CommandError) as refused:
        board.stream_label(1)  # no window waits for a label
    assert refused.value.status == STATUS_CODES["ODL_APP_ERR_NO_SAMPLE"]
    x = _windows(1)[0][0].copy()
    x[3, 1] = np.nan
    with pytest.raises(CommandError, match="NaN or infinity"):
        board.stream_window(x)


def test_a_build_without_a_replay_buffer_says_how_to_get_one(paper_board: UnicornBoard) -> None:
    net = BoardNetwork(MailboxTransport(paper_board), paper_model(40, 0).arch)
    with pytest.raises(ValueError, match="--dataset-windows"):
        net.stream_start(StreamSetup())
