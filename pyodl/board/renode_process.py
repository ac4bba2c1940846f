"""Renode as a program, for host tools: it runs ``renode/pyodl.resc`` headless with the console UART (LPUART1)
on a pseudo-terminal (``emulation CreateUartPtyTerminal``, the script's ``uart_pty`` macro), and pyodl talks
to the firmware through it with the same UART frames as to a real board.

Why a pty and not ``CreateServerSocketTerminal``: Renode 1.16's socket terminal listens on every interface
(``SocketServerProvider`` binds ``IPAddress.Any``, with no option), which would expose the board to the
network; a pty is a file only this user can open. Why no ``--console``: with its standard input at
/dev/null, Renode's console reads end-of-input and quits within a second. Renode is started in its own
process group and stopped as a group: the ``renode`` launcher is a script, and the emulator under it would
otherwise outlive it and keep the terminal."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from pyodl.board.base import BoardError
from pyodl.board.uart import UartTransport, open_serial
from pyodl.toolchain.sources import renode_file

RESC = renode_file("pyodl.resc")
INSTALL_HINT = ("install Renode from https://github.com/renode/renode/releases (the portable Linux package "
                "puts `renode` on the PATH), or use the `unicorn` backend, which needs no install")
STOP_SECONDS = 10.0


class RenodeProcess:
    """``with RenodeProcess(elf) as transport:`` starts Renode headless and yields a UART transport."""

    def __init__(self, elf: Path, renode: str = "renode", timeout: float = 60.0) -> None:
        self.elf = elf.resolve()
        self.renode = renode
        self.timeout = timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.pty: Path | None = None

    def command(self, pty: Path) -> list[str]:
        script = (f'$elf=@{self.elf}; $uart_pty="{pty}"; include @{RESC}; runMacro $uart_pty; start')
        return [self.renode, "--plain", "--disable-gui", "-e", script]

    def __enter__(self) -> UartTransport:
        if shutil.which(self.renode) is None:
            raise BoardError(f"`{self.renode}` not found: {INSTALL_HINT}")
        self._tmp = tempfile.TemporaryDirectory(prefix="pyodl-renode-")
        self.pty = Path(self._tmp.name) / "console.pty"
        command = self.command(self.pty)
        self._proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + self.timeout
        while True:
            if self._proc.poll() is not None:
                status = self._proc.returncode
                self.__exit__()
                raise BoardError(f"Renode exited with status {status} before opening its console terminal: "
                                 f"run `{' '.join(command)}` to see why")
            if self.pty.exists():
                try:
                    return open_serial(str(self.pty))
                except Exception:  # pyserial raises SerialException while Renode sets the pty up
                    pass
            if time.monotonic() > deadline:
                self.__exit__()
                raise BoardError(f"Renode did not open its console terminal within {self.timeout:.0f} s")
            time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _stop_group(proc)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to Renode's whole process group, SIGKILL to what is left after STOP_SECONDS."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=STOP_SECONDS)
    # The launcher may be gone while the emulator it started still runs in the group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=STOP_SECONDS)
