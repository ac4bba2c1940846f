"""The RAM mailbox client against the real firmware on the Unicorn board."""

from __future__ import annotations

import struct

import pytest

from pyodl.board.base import MAILBOX_SYMBOL
from pyodl.board.mailbox import MailboxTransport
from pyodl.board.protocol import MAILBOX, MAILBOX_MAGIC, Command, ProtocolError, Request
from pyodl.board.unicorn import UnicornBoard


def _magic(board: UnicornBoard) -> int:
    return struct.unpack("<I", board.read(board.symbol_address(MAILBOX_SYMBOL) + MAILBOX["magic"].offset, 4))[0]


def test_a_load_that_leaves_a_ready_mailbox_in_ram_boots_before_the_first_command(paper_board: UnicornBoard) -> None:
    """Renode's `machine Reset` keeps RAM, so after a reset the last boot's magic is still there; a client that
    took it for this boot's would write its command, and the boot would wipe it."""
    MailboxTransport(paper_board)
    paper_board.load_elf(paper_board.elf)
    assert _magic(paper_board) == MAILBOX_MAGIC and not paper_board.parked()
    assert MailboxTransport(paper_board).execute(Request(Command.INFO)).status == 0


def test_a_firmware_that_parks_without_a_ready_mailbox_is_refused(paper_board: UnicornBoard) -> None:
    MailboxTransport(paper_board)
    paper_board.write(paper_board.symbol_address(MAILBOX_SYMBOL) + MAILBOX["magic"].offset, bytes(4))
    with pytest.raises(ProtocolError, match="parked without marking its mailbox ready"):
        MailboxTransport(paper_board)
