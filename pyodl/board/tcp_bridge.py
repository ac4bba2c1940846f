"""A simulated board's console UART on a TCP socket, so that every tool made for a real board (``pyodl
board-check``, ``golden-check --backend serial``, ``bench --backend serial``, any serial terminal) runs
against the simulator through ``socket://127.0.0.1:PORT``, as against Renode's socket terminal.

One client at a time. The board runs on the bridge's own thread, which is the only one to touch it: bytes
from the client are queued on the console's receive line and the firmware runs until it parks; what it sent
goes back to the client. While the client is silent, the board's clock follows the wall clock (in steps of
``tick`` seconds), so the firmware's inter-byte timeout behaves as on a real link.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

from pyodl.board.base import Board, BoardError


class TcpBridge:
    """``with TcpBridge(board) as port:`` serves ``board``'s console on ``socket://127.0.0.1:port``."""

    def __init__(self, board: Board, port: int = 0, tick: float = 0.005) -> None:
        self.board = board
        self.tick = tick
        self.error: BaseException | None = None  # what stopped the board, if anything did
        self._listener = socket.create_server(("127.0.0.1", port))
        self._listener.settimeout(tick)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the board: the bridge's thread, or a programmer loading firmware
        self._thread = threading.Thread(target=self._serve, name="pyodl-tcp-bridge", daemon=True)

    def __enter__(self) -> int:
        self._thread.start()
        return self.port

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._listener.close()

    def load(self, elf: Path) -> None:
        """What a programmer does to a real board: new firmware, then a reset (flash bank 2 is kept)."""
        with self._lock:
            self.board.load_elf(elf)

    def _serve(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    client, _ = self._listener.accept()
                except TimeoutError:
                    continue
                with client:
                    self._talk(client)
        except (BoardError, OSError) as exc:
            self.error = exc

    def _talk(self, client: socket.socket) -> None:
        client.settimeout(self.tick)
        quiet_since = time.monotonic()
        while not self._stop.is_set():
            try:
                data = client.recv(4096)
            except TimeoutError:
                data = None
            if data == b"":
                return  # the client hung up
            with self._lock:
                if data:
                    self.board.uart_input(data)
                    self.board.run_until_idle()
                    quiet_since = time.monotonic()
                else:
                    now = time.monotonic()
                    self.board.wait(now - quiet_since)
                    quiet_since = now
                out = self.board.uart_output()
            if out:
                with contextlib.suppress(OSError):
                    client.sendall(out)
