"""Renode as a program, for host tools: it runs ``renode/pyodl.resc`` with the console UART (LPUART1) on a
TCP socket (``emulation CreateServerSocketTerminal``, the script's ``uart_socket`` macro), and pyodl talks
to the firmware through that socket with the same UART frames as to a real board."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from pyodl.board.base import BoardError
from pyodl.board.uart import UartTransport, open_serial
from pyodl.toolchain.sources import renode_file

RESC = renode_file("pyodl.resc")
INSTALL_HINT = ("install Renode from https://github.com/renode/renode/releases (the portable Linux package "
                "puts `renode` on the PATH), or use the `unicorn` backend, which needs no install")


class RenodeProcess:
    """``with RenodeProcess(elf) as transport:`` starts Renode headless and yields a UART transport."""

    def __init__(self, elf: Path, port: int = 3456, renode: str = "renode", timeout: float = 60.0) -> None:
        self.elf = elf.resolve()
        self.port = port
        self.renode = renode
        self.timeout = timeout
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        script = (f"$elf=@{self.elf}; $uart_port={self.port}; include @{RESC}; runMacro $uart_socket; start")
        return [self.renode, "--console", "--plain", "--disable-gui", "-e", script]

    def __enter__(self) -> UartTransport:
        if shutil.which(self.renode) is None:
            raise BoardError(f"`{self.renode}` not found: {INSTALL_HINT}")
        self._proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + self.timeout
        while True:
            if self._proc.poll() is not None:
                raise BoardError(f"Renode exited with status {self._proc.returncode} before opening port "
                                 f"{self.port}: run `{' '.join(self.command())}` to see why")
            try:
                return open_serial(f"socket://127.0.0.1:{self.port}")
            except Exception as exc:  # pyserial raises SerialException until Renode listens
                if time.monotonic() > deadline:
                    self.__exit__()
                    raise BoardError(f"Renode did not open port {self.port} within {self.timeout:.0f} s") from exc
                time.sleep(0.5)

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc = None
