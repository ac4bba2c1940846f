"""``pyodl flash``: build the firmware for a model, program a NUCLEO-L496ZG, check that it answers."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from pyodl.cli.serial_board import board_info, describe_board, open_board, print_board
from pyodl.cli.shared import (
    EXIT_OK,
    add_dataset_windows_arg,
    add_mode_args,
    add_model_args,
    device_model,
    load_model,
    parse_optimizer,
    positive,
    trainable_count,
)
from pyodl.model.optimizer import OPTIMIZER_HELP


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flash", help="build the firmware for a model, write it into a NUCLEO-L496ZG through its "
                                     "ST-LINK (OpenOCD or pyOCD), then check that it answers with that model",
                       description="Build the firmware for a model and program it into a NUCLEO-L496ZG plugged "
                                   "in by its ST-LINK USB connector: OpenOCD (Debian package openocd, its "
                                   "board/st_nucleo_l4.cfg) or pyOCD (pip install pyocd; pyocd pack install "
                                   "stm32l496zgtx). The tool verifies and resets the board; then an INFO round "
                                   "trip over the ST-LINK virtual COM port checks the model.")
    add_model_args(p, "")
    add_mode_args(p)
    p.add_argument("--optimizer", default="sgd", help=OPTIMIZER_HELP)
    p.add_argument("--tool", choices=("openocd", "pyocd"), default=None,
                   help="the programmer (default: openocd if installed, else pyocd)")
    add_dataset_windows_arg(p)
    p.add_argument("--clock", choices=("pll80", "msi4"), default="pll80",
                   help="core clock: 80 MHz through the PLL (default) or the 4 MHz reset clock")
    p.add_argument("--console", choices=("lpuart1", "usart2"), default="lpuart1",
                   help="console UART: LPUART1 on PG7/PG8, the ST-LINK virtual COM port (default), or USART2 on "
                        "PA2/PA3 for an external adapter")
    p.add_argument("--port", default="/dev/ttyACM0", help="the board's ST-LINK virtual COM port (default /dev/ttyACM0)")
    p.add_argument("--timeout", type=positive(3600.0), default=5.0,
                   help="seconds to wait for the check's answer (default 5)")
    p.add_argument("--no-check", action="store_true", help="do not check the board over its serial port afterwards")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pyodl.board.programmer import choose_tool, program
    from pyodl.network.board import BoardNetwork
    from pyodl.toolchain.firmware import FirmwareBuilder

    tool = choose_tool(args.tool)  # before the build: a missing programmer is known at once
    optimizer = parse_optimizer(args)
    trainable = trainable_count(args.mode, args.trainable_layers)
    model = device_model(load_model(args), trainable, sys.stderr)
    with tempfile.TemporaryDirectory(prefix="pyodl-flash-") as tmp:
        builder = FirmwareBuilder(Path(tmp) / "build", clock=args.clock, console=args.console)
        firmware = builder.export_and_build(model, Path(tmp) / "model", trainable, optimizer, args.dataset_windows)
        print(f"built {firmware.flash_bytes():,} B of flash, {firmware.ram_bytes():,} B of SRAM; "
              f"programming with {tool}", file=sys.stderr, flush=True)
        program(firmware.elf, tool)
        model_hash = firmware.model_hash()
    print("programmed, verified and reset", file=sys.stderr)
    if args.no_check:
        return EXIT_OK
    if args.console != "lpuart1":
        print("the USART2 console is not the ST-LINK port: check it on your adapter with pyodl board-check",
              file=sys.stderr)
        return EXIT_OK
    transport = open_board(args.port, args.timeout)
    info, seconds, cycles = board_info(transport, args.port)
    BoardNetwork(transport, model.arch, model_hash, optimizer)  # refuses a board that runs another model
    print_board(describe_board(info, args.port, seconds, cycles))
    return EXIT_OK
