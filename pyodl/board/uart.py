"""Commands as CRC-checked frames over a byte stream: a real board's serial port, a Renode socket
terminal, or a simulated board's USART2."""

from __future__ import annotations

import struct
import time
import zlib
from typing import Protocol

from pyodl.board.base import Board
from pyodl.board.protocol import (
    FIELDS,
    FIELDS_BYTES,
    SYNC_REQUEST,
    SYNC_RESPONSE,
    ProtocolError,
    Reply,
    Request,
    pack_fields,
)


class ByteStream(Protocol):
    """What pyserial's ``Serial`` offers (and :class:`BoardUart` imitates)."""

    def write(self, data: bytes) -> int | None: ...

    def read(self, size: int = 1) -> bytes: ...


def encode_request(request: Request) -> bytes:
    payload = pack_fields(request) + request.data
    if len(payload) > 0xFFFF:
        raise ValueError(f"a frame carries at most {0xFFFF - FIELDS_BYTES} bytes of data")
    body = struct.pack("<BH", request.command, len(payload)) + payload
    return bytes([SYNC_REQUEST]) + body + struct.pack("<I", zlib.crc32(body))


class UartTransport:
    """A pyserial port (``/dev/ttyACM0``, ``socket://127.0.0.1:3456`` for a Renode server socket terminal)
    or a simulated board's USART2 (:class:`BoardUart`)."""

    def __init__(self, stream: ByteStream) -> None:
        self.stream = stream

    def _read_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.stream.read(n - len(data))
            if not chunk:
                raise ProtocolError(f"timed out after {len(data)} of {n} bytes of an answer")
            data += chunk
        return data

    def execute(self, request: Request) -> Reply:
        self.stream.write(encode_request(request))
        return self.read_reply()

    def read_reply(self) -> Reply:
        sync = self._read_exact(1)
        if sync[0] != SYNC_RESPONSE:
            raise ProtocolError(f"answer starts with 0x{sync[0]:02x}, expected 0x{SYNC_RESPONSE:02x}")
        head = self._read_exact(3)
        status, length = struct.unpack("<BH", head)
        payload = self._read_exact(length)
        (crc,) = struct.unpack("<I", self._read_exact(4))
        if crc != zlib.crc32(head + payload):
            raise ProtocolError("answer CRC mismatch")
        if length < FIELDS_BYTES:
            raise ProtocolError(f"answer payload of {length} bytes is shorter than its {FIELDS_BYTES} bytes of fields")
        *results, result_f = FIELDS.unpack_from(payload)
        return Reply(status, tuple(results), result_f, payload[FIELDS_BYTES:])  # type: ignore[arg-type]


class BoardUart:
    """A simulated board's USART2 as a byte stream: reading runs the CPU until the firmware is idle again,
    so an answer the firmware never sends reads as a timeout, as on a real port."""

    def __init__(self, board: Board, budget: int | None = None) -> None:
        self.board = board
        self.budget = budget
        self._pending = b""

    def write(self, data: bytes) -> int:
        self.board.uart_input(bytes(data))
        return len(data)

    def read(self, size: int = 1) -> bytes:
        if len(self._pending) < size:
            self._pending += self.board.uart_output()
        if len(self._pending) < size:
            self.board.run_until_idle(self.budget)
            self._pending += self.board.uart_output()
        out, self._pending = self._pending[:size], self._pending[size:]
        return out


def open_serial(url: str, baudrate: int = 115200, timeout: float = 5.0) -> UartTransport:
    """A UART transport on a pyserial URL (a device path or ``socket://host:port``)."""
    import serial  # pyserial; imported here so simulation-only users never load it

    port = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout)
    time.sleep(0.05)  # a board that was just reset may still be printing its boot bytes
    port.reset_input_buffer()
    return UartTransport(port)
