"""The network on a board: it refuses a board running another model, and bad parameters before writing."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from pyodl.board.mailbox import MailboxTransport
from pyodl.board.protocol import STATUS_CODES, Command, CommandError, Request
from pyodl.board.unicorn import UnicornBoard
from pyodl.model.architecture import paper_model
from pyodl.model.optimizer import Optimizer
from pyodl.network.board import BoardNetwork, ModelMismatchError
from pyodl.toolchain.firmware import Firmware


def test_refuses_a_board_running_another_model(paper_board: UnicornBoard) -> None:
    with pytest.raises(ModelMismatchError, match=r"\(60, 3, 6, 7\): flash firmware built for this model"):
        BoardNetwork(MailboxTransport(paper_board), paper_model(60, 0).arch)


def test_refuses_a_board_training_with_another_optimizer(paper_board: UnicornBoard) -> None:
    with pytest.raises(ModelMismatchError, match="trains with ODL_OPT_SGD, expected ODL_OPT_ADAM"):
        BoardNetwork(MailboxTransport(paper_board), paper_model(40, 0).arch, optimizer=Optimizer.parse("adam"))


def _same(a: list, b: list) -> bool:
    return all(np.array_equal(w1, w2) and np.array_equal(b1, b2) for (w1, b1), (w2, b2) in zip(a, b, strict=True))


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, 1e5])
def test_bad_parameters_are_refused_before_anything_is_written(paper_board: UnicornBoard, bad_value: float) -> None:
    """Every layer changed, the last one holding a value the firmware refuses (beyond the default bound
    1e4): no layer may be written, or the model would be left half old, half new."""
    net = BoardNetwork(MailboxTransport(paper_board), paper_model(40, 0).arch)
    assert net.info().param_bound == 1e4
    before = net.get_params()
    bad = [(w + 0.5, b + 0.5) for w, b in before]
    bad[-1][0][-1, -1] = bad_value
    with pytest.raises(ValueError, match=r"finite and within \+-10000"):
        net.set_params(bad)
    assert _same(before, net.get_params())


def test_a_diverging_step_is_rejected_and_the_model_stays_usable(paper_board: UnicornBoard) -> None:
    net = BoardNetwork(MailboxTransport(paper_board), paper_model(40, 0).arch)
    x = np.random.default_rng(0).normal(size=(4, 40, 3)).astype(np.float32)
    before, probs = net.get_params(), net.forward(x[0])
    with pytest.raises(CommandError, match="step rejected") as err:
        net.train_step(x, np.array([0, 1, 2, 3]), 1e20)
    assert err.value.status == STATUS_CODES["ODL_ERR_STEP_REJECTED"]
    assert _same(before, net.get_params()) and net.info().accumulated == 0
    np.testing.assert_array_equal(net.forward(x[0]), probs)
    net.train_step(x, np.array([0, 1, 2, 3]), 0.01)  # and it trains on
    assert not _same(before, net.get_params())


def test_a_refused_sample_leaves_nothing_of_its_batch_behind(paper_board: UnicornBoard) -> None:
    net = BoardNetwork(MailboxTransport(paper_board), paper_model(40, 0).arch)
    x = np.random.default_rng(1).normal(size=(8, 40, 3)).astype(np.float32)
    x[5, 3, 1] = np.nan  # refused by the firmware after five samples were accumulated
    with pytest.raises(CommandError, match="NaN or infinity"):
        net.train_step(x, np.arange(8) % 6, 0.01)
    assert net.info().accumulated == 0


def test_a_refusal_answers_with_its_status_alone(paper_board: UnicornBoard) -> None:
    """A command that fails after it set results (TRAIN_SAMPLE on a window whose activations overflow) must
    not hand them back: the host would read the previous sample's count as this one's."""
    transport = MailboxTransport(paper_board)
    net = BoardNetwork(transport, paper_model(40, 0).arch)
    net.accumulate(np.ones((40, 3), np.float32), 1)
    net.load_sample(np.full((40, 3), 3e38, np.float32))  # finite, so LOAD_SAMPLE takes it
    reply = transport.execute(Request(Command.TRAIN_SAMPLE, (2, 0, 0, 0)))
    assert reply.status == STATUS_CODES["ODL_ERR_NONFINITE"]
    assert reply.results == (0, 0, 0, 0) and reply.result_f == 0.0 and reply.data == b""


def test_a_firmware_whose_table_fails_its_check_answers_info_only(paper_firmware: Firmware) -> None:
    """odl_init refuses the table (here: a parameter bound of 0, patched into the flash image of .data):
    INFO still answers, so the host can see what runs; every other command answers the init failure."""
    with UnicornBoard(paper_firmware.elf) as board:
        # odl_model's initial value in flash, where startup copies .data from; 1e4 is its only float 1e4.
        image = board.symbol_address("_sidata") + board.symbol_address("odl_model") - board.symbol_address("_sdata")
        initial = board.read(image, 84)
        assert initial.count(struct.pack("<f", 1e4)) == 1
        board.write(image + initial.index(struct.pack("<f", 1e4)), struct.pack("<f", 0.0))
        transport = MailboxTransport(board)
        assert transport.execute(Request(Command.INFO)).status == 0
        for command in (Command.LAYER_INFO, Command.PREDICT, Command.SGD_STEP, Command.ZERO_GRADS):
            assert transport.execute(Request(command)).status == STATUS_CODES["ODL_ERR_MODEL"], command.name
