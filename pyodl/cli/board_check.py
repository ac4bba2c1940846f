"""``pyodl board-check``: one INFO round trip to a board running the pyodl firmware."""

from __future__ import annotations

import argparse
import json
import sys

from pyodl.cli.serial_board import board_info, describe_board, open_board, print_board
from pyodl.cli.shared import EXIT_MISMATCH, EXIT_OK, positive


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("board-check", help="ask a board running the pyodl firmware for its model, clock, RAM "
                                           "and stack high-water mark (one INFO round trip)",
                       description="Send one INFO frame to the board at --port and print its answer: the protocol "
                                   "version, the hash and shape of the model its firmware was built for, the core "
                                   "clock and whether the PLL locked, static SRAM, the stack reserved and its "
                                   "high-water mark, where the parameters were loaded from (the exported defaults "
                                   "or a flash slot), and the round trip's time. Exit status 1 when the board "
                                   "speaks another protocol version than this pyodl (flash it again).")
    p.add_argument("--port", default="/dev/ttyACM0",
                   help="pyserial URL of the board: the NUCLEO-L496ZG's ST-LINK port (default /dev/ttyACM0) or "
                        "socket://HOST:PORT (a Renode socket terminal)")
    p.add_argument("--timeout", type=positive(3600.0), default=5.0, help="seconds to wait for an answer (default 5)")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pyodl.board.protocol import PROTOCOL_VERSION

    info, seconds, cycles = board_info(open_board(args.port, args.timeout), args.port)
    described = describe_board(info, args.port, seconds, cycles)
    if args.json:
        print(json.dumps(described, indent=2))
    else:
        print_board(described)
    if info.protocol_version != PROTOCOL_VERSION:
        print(f"pyodl board-check: the board speaks protocol {info.protocol_version}, this pyodl "
              f"{PROTOCOL_VERSION}: flash it again (pyodl flash)", file=sys.stderr)
        return EXIT_MISMATCH
    return EXIT_OK
