"""The network on a board: it refuses a board running another model, and bad parameters before writing."""

from __future__ import annotations

import numpy as np
import pytest

from pyodl.board.mailbox import MailboxTransport
from pyodl.board.unicorn import UnicornBoard
from pyodl.model.architecture import paper_model
from pyodl.model.optimizer import Optimizer
from pyodl.network.board import BoardNetwork, ModelMismatchError


def test_refuses_a_board_running_another_model(paper_board: UnicornBoard) -> None:
    with pytest.raises(ModelMismatchError, match=r"\(60, 3, 6, 7\): flash firmware built for this model"):
        BoardNetwork(MailboxTransport(paper_board), paper_model(60, 0).arch)


def test_refuses_a_board_training_with_another_optimizer(paper_board: UnicornBoard) -> None:
    with pytest.raises(ModelMismatchError, match="trains with ODL_OPT_SGD, expected ODL_OPT_ADAM"):
        BoardNetwork(MailboxTransport(paper_board), paper_model(40, 0).arch, optimizer=Optimizer.parse("adam"))


def test_non_finite_parameters_are_refused_before_anything_is_written(paper_board: UnicornBoard) -> None:
    net = BoardNetwork(MailboxTransport(paper_board), paper_model(40, 0).arch)
    before = net.get_params()
    bad = [(w.copy(), b.copy()) for w, b in before]
    bad[-1][0][-1, -1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        net.set_params(bad)
    for (w1, b1), (w2, b2) in zip(before, net.get_params(), strict=True):
        assert np.array_equal(w1, w2) and np.array_equal(b1, b2)
