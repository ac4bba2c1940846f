from __future__ import annotations

from collections.abc import Iterator

import pytest

from pyodl.board.unicorn import UnicornBoard

# A real board for board-check, flash and bench --backend serial.
# The board is the Unicorn model behind a TCP socket (pyodl.board.tcp_bridge), reached as
# socket://127.0.0.1:PORT exactly as a NUCLEO's /dev/ttyACM0 or a Renode socket terminal is.


@pytest.fixture()
def board_url(paper_board: UnicornBoard) -> Iterator[str]:
    from pyodl.board.tcp_bridge import TcpBridge

    bridge = TcpBridge(paper_board)
    with bridge as port:
        yield f"socket://127.0.0.1:{port}"
    assert bridge.error is None, bridge.error
