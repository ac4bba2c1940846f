"""Pick where the C library trains: this computer (host), the simulated STM32L496 (unicorn, or Renode
started as a program), or a real board over a serial port (serial). Every choice yields a
:class:`~pyodl.network.base.Network` holding the model's initial parameters, so callers never care which."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from pyodl.model.architecture import Model
from pyodl.model.optimizer import SGD, Optimizer
from pyodl.network.base import Network

BACKENDS = ("host", "unicorn", "renode", "serial")


@contextlib.contextmanager
def open_network(backend: str, model: Model, work_dir: Path, trainable_layers: int | None = None,
                 port: str | None = None, optimizer: Optimizer = SGD) -> Iterator[Network]:
    """The network of ``model`` built for ``trainable_layers`` (None: Full) and ``optimizer``. ``work_dir``
    receives the exported model and the build; ``port`` is the pyserial URL of the ``serial`` backend, or
    the TCP port Renode opens (default 3456)."""
    model_dir = work_dir / "model"
    if backend == "host":
        from pyodl.network.host import HostNetwork
        from pyodl.toolchain.host_library import HostBuilder

        builder = HostBuilder(work_dir / "build-host")
        yield HostNetwork(builder.export_and_build(model, model_dir, trainable_layers, optimizer), model.arch)
    elif backend == "unicorn":
        from pyodl.board.mailbox import MailboxTransport
        from pyodl.board.unicorn import UnicornBoard
        from pyodl.network.board import BoardNetwork
        from pyodl.toolchain.firmware import FirmwareBuilder

        builder = FirmwareBuilder(work_dir / "build-arm")
        firmware = builder.export_and_build(model, model_dir, trainable_layers, optimizer)
        board = UnicornBoard()
        try:
            board.load_elf(firmware.elf)
            yield BoardNetwork(MailboxTransport(board), model.arch, optimizer=optimizer)
        finally:
            board.close()
    elif backend == "renode":
        from pyodl.board.renode_process import RenodeProcess
        from pyodl.network.board import BoardNetwork
        from pyodl.toolchain.firmware import FirmwareBuilder

        builder = FirmwareBuilder(work_dir / "build-arm")
        firmware = builder.export_and_build(model, model_dir, trainable_layers, optimizer)
        with RenodeProcess(firmware.elf, port=int(port or 3456)) as transport:
            yield BoardNetwork(transport, model.arch, optimizer=optimizer)
    elif backend == "serial":
        from pyodl.board.uart import open_serial
        from pyodl.network.board import BoardNetwork

        if not port:
            raise ValueError("the serial backend needs --port (a device such as /dev/ttyACM0, or socket://HOST:PORT)")
        # The board must already run firmware built for this model (`pyodl export` + the arm build);
        # its parameters are overwritten with the model's, so every run starts from the same weights.
        net = BoardNetwork(open_serial(port), model.arch, optimizer=optimizer)
        net.set_params(model.params)
        yield net
    else:
        raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
