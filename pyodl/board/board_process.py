"""A simulated STM32L496 in a process of its own, its console UART on ``socket://127.0.0.1:PORT``.

A fleet runs one of these per client: the client talks to it with the UART frames it would send a NUCLEO
over ``/dev/ttyACM0`` (or Renode over its terminal), and a board that crashes, hangs or is killed takes
down only its own process; the client sees a board that stopped answering. The process serves until its
standard input closes, so it never outlives the program that started it.

``python -m pyodl.board.board_process FIRMWARE.elf`` prints the board's URL on one line once it answers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from pyodl.board.base import BoardError

START_SECONDS = 60.0  # a Python start with Unicorn's import, on a loaded 2-core machine


class BoardProcess:
    """``with BoardProcess(elf) as url:`` starts a Unicorn board running ``elf`` in a child process."""

    def __init__(self, elf: Path) -> None:
        self.elf = elf.resolve()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise BoardError("the board process is not running")
        return self._proc.pid

    def __enter__(self) -> str:
        self._proc = subprocess.Popen([sys.executable, "-m", "pyodl.board.board_process", str(self.elf)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self._proc.stdout is not None
        try:
            line = _read_line(self._proc.stdout, START_SECONDS).decode(errors="replace").strip()
        except BaseException:
            self.__exit__()
            raise
        if not line.startswith("socket://"):
            err = self._stderr_tail()
            self.__exit__()
            raise BoardError(f"the board process for {self.elf.name} did not start: {line or err}")
        return line

    def kill(self) -> None:
        """What pulling a board's power looks like to its client: the process ends at once."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()

    def freeze(self) -> None:
        """A board that hangs: the process stops running (SIGSTOP) and answers nothing until it is killed."""
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGSTOP)

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()  # nothing of the board's outlives its client: its state is in the client's hands
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    def _stderr_tail(self) -> str:
        if self._proc is None or self._proc.stderr is None:
            return ""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        return self._proc.stderr.read().decode(errors="replace").strip()[-2000:]


def _read_line(stream: object, timeout: float) -> bytes:
    """One line from a child's pipe, or a BoardError after ``timeout`` seconds."""
    import selectors

    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)  # type: ignore[arg-type]
        if not sel.select(timeout):
            raise BoardError(f"the board process did not start within {timeout:.0f} s")
    return stream.readline()  # type: ignore[attr-defined,no-any-return]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m pyodl.board.board_process FIRMWARE.elf", file=sys.stderr)
        return 2
    from pyodl.board.tcp_bridge import TcpBridge
    from pyodl.board.unicorn import UnicornBoard

    # Ctrl-C in a terminal reaches the whole process group: the client decides when its board stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    board = UnicornBoard()
    try:
        board.load_elf(Path(args[0]))
        with TcpBridge(board) as port:
            print(f"socket://127.0.0.1:{port}", flush=True)
            sys.stdin.buffer.read()  # until the client closes our input or goes away
    finally:
        board.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
