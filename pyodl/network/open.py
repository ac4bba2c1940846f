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
                 port: str | None = None, optimizer: Optimizer = SGD, tool: str | None = None,
                 dataset_windows: int = 0) -> Iterator[Network]:
    """The network of ``model`` built for ``trainable_layers`` (None: Full) and ``optimizer``. ``work_dir``
    receives the exported model and the build; ``port`` is the pyserial URL of the ``serial`` backend
    (Renode, started by the ``renode`` backend, gets a pseudo-terminal of its own); ``tool`` (openocd or
    pyocd): the ``serial`` backend programs the board with the firmware of this model when it runs another
    one. ``dataset_windows``: the firmware's dataset region, so that a batch that fits is stored once and trained
    by one TRAIN_BATCH (a board flashed without one trains window by window)."""
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
        firmware = builder.export_and_build(model, model_dir, trainable_layers, optimizer, dataset_windows)
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
        firmware = builder.export_and_build(model, model_dir, trainable_layers, optimizer, dataset_windows)
        with RenodeProcess(firmware.elf) as transport:
            yield BoardNetwork(transport, model.arch, optimizer=optimizer)
    elif backend == "serial":
        from pyodl.board import programmer
        from pyodl.board.protocol import OPTIMIZER_KINDS
        from pyodl.board.uart import open_serial
        from pyodl.network.board import BoardNetwork, read_info
        from pyodl.toolchain.firmware import FirmwareBuilder

        if not port:
            raise ValueError("the serial backend needs --port (a device such as /dev/ttyACM0, or socket://HOST:PORT)")
        model_hash = None
        if tool is not None:
            # The firmware for this model, programmed only when the board runs another one.
            firmware = FirmwareBuilder(work_dir / "build-arm").export_and_build(model, model_dir, trainable_layers,
                                                                                optimizer, dataset_windows)
            model_hash = firmware.model_hash()
            transport = open_serial(port)
            try:
                info = read_info(transport)
            finally:
                transport.close()
            # The model hash covers the model, not the build: a TL and a Full build of one model share it.
            capacity = trainable_layers if trainable_layers is not None else info.param_layers
            if (info.model_hash, info.trainable_capacity, info.optimizer) != (
                    model_hash, capacity, OPTIMIZER_KINDS[optimizer.c_kind]):
                programmer.program(firmware.elf, tool)
        # Without a tool the board must already run firmware built for this model (`pyodl flash`); either
        # way its parameters are set to the model's, so every run starts from the same weights.
        transport = open_serial(port)
        try:
            net = BoardNetwork(transport, model.arch, model_hash, optimizer=optimizer)
            net.set_params(model.params)
            yield net
        finally:
            transport.close()
    else:
        raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
