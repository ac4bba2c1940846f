"""A board on a serial port, as board-check, flash and bench reach it: opened with a hint of what to check,
asked for INFO, described."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pyodl.board.base import BoardError

if TYPE_CHECKING:
    from pyodl.board.protocol import Transport
    from pyodl.network.board import BoardInfo


def open_board(url: str, timeout: float) -> Transport:
    """The UART transport of the board at ``url``; what to check when it cannot be opened."""
    import serial

    from pyodl.board.uart import open_serial

    try:
        return open_serial(url, timeout=timeout)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise BoardError(f"cannot open {url}: {exc}. Is the NUCLEO-L496ZG plugged in by its ST-LINK USB connector "
                         "(CN1), and may you use serial ports (Debian: sudo adduser $USER dialout, then log in "
                         "again)?") from None


def board_info(transport: Transport, url: str) -> tuple[BoardInfo, float, int]:
    """INFO, its round-trip time in seconds and the cycles the firmware spent on it."""
    from pyodl.board.protocol import Command, ProtocolError, Request
    from pyodl.network.board import info_from_reply

    t0 = time.perf_counter()
    try:
        reply = transport.execute(Request(Command.INFO))
        info = info_from_reply(reply)
    except ProtocolError as exc:
        raise BoardError(f"the board at {url} does not answer pyodl frames ({exc}): flash the firmware "
                         "(pyodl flash), check that nothing else holds the port, and press the board's black "
                         "RESET button") from None
    return info, time.perf_counter() - t0, reply.cycles


def describe_board(info: BoardInfo, url: str, seconds: float, cycles: int) -> dict[str, object]:
    from pyodl.board.protocol import CLOCK_STATUSES, PROTOCOL_VERSION

    clock_status = next((name for name, code in CLOCK_STATUSES.items() if code == info.clock_status),
                        str(info.clock_status))
    boot = {0: "the exported defaults", 1: "flash slot A", 2: "flash slot B"}.get(info.boot_slot, str(info.boot_slot))
    return {
        "port": url, "protocol_version": info.protocol_version,
        "protocol_ok": info.protocol_version == PROTOCOL_VERSION,
        "model_hash": f"0x{info.model_hash:08x}", "input": [info.input_len, info.input_ch],
        "classes": info.num_classes, "param_layers": info.param_layers, "trainable": info.trainable,
        "clock_hz": info.clock_hz, "clock_status": clock_status, "ram_static_bytes": info.ram_static_bytes,
        "stack_bytes": info.stack_size, "stack_high_water_bytes": info.stack_high_water,
        "parameters_from": boot if info.boot_slot == 0 else f"{boot}, copy {info.boot_sequence}",
        "round_trip_ms": round(1000 * seconds, 2), "info_cycles": cycles,
    }


def print_board(d: dict[str, object]) -> None:
    print(f"board at {d['port']}: pyodl firmware, protocol {d['protocol_version']}")
    print(f"  model        {d['model_hash']}: input {d['input'][0]} x {d['input'][1]}, {d['classes']} classes, "  # type: ignore[index]
          f"{d['param_layers']} parameter layers ({d['trainable']} trained)")
    print(f"  clock        {int(d['clock_hz']) / 1e6:g} MHz ({d['clock_status']})")  # type: ignore[call-overload]
    print(f"  SRAM         {d['ram_static_bytes']:,} B static; stack {d['stack_bytes']:,} B reserved, "
          f"{d['stack_high_water_bytes']:,} B used at most")
    print(f"  parameters   from {d['parameters_from']}")
    print(f"  round trip   {d['round_trip_ms']} ms for INFO ({d['info_cycles']:,} cycles on the board)")
