"""The firmware's command set and its two transports: the RAM mailbox and UART frames.

Every number here mirrors ``firmware/app/app.h``; change both together (tests/test_protocol.py checks the
header against this module).
"""

from __future__ import annotations

import struct
import time
import zlib
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

import numpy as np

from pyodl.board.base import IDLE_SYMBOL, MAILBOX_SYMBOL, Board, BoardError

PROTOCOL_VERSION = 1
MAILBOX_MAGIC = 0x4C444F50
MAILBOX_HEADER_BYTES = 80
SYNC_REQUEST = 0xA5
SYNC_RESPONSE = 0x5A
FIELDS_BYTES = 20


class Command(IntEnum):
    INFO = 1
    LAYER_INFO = 2
    GET_PARAMS = 3
    SET_PARAMS = 4
    LOAD_SAMPLE = 5
    SET_TRAINABLE = 6
    TRAIN_SAMPLE = 7
    SGD_STEP = 8
    ZERO_GRADS = 9
    PREDICT = 10


STATUS_NAMES = {
    0: "ok",
    1: "NULL pointer",
    2: "inconsistent model table",
    3: "label out of range",
    4: "NaN or infinity in an input, the loss or a gradient (nothing changed)",
    5: "learning rate is not a finite number > 0",
    6: "SGD step with no accumulated sample",
    7: "trainable layer count out of range for this build",
    8: "layer index out of range or layer without parameters",
    9: "the layer is frozen (const, in flash) in this build",
    10: "element count does not match the layer",
    32: "unknown command",
    33: "argument out of range",
    34: "data length does not fit the command",
    35: "no window loaded yet",
    36: "frame CRC mismatch",
    37: "frame longer than the firmware accepts",
}
STATUS_CRC = 36
STATUS_FRAME = 37


class DeviceError(RuntimeError):
    """The firmware refused a command; ``status`` is its status code."""

    def __init__(self, command: str, status: int) -> None:
        name = STATUS_NAMES.get(status, "unknown status")
        super().__init__(f"{command} failed with status {status}: {name}")
        self.status = status


class ProtocolError(RuntimeError):
    """The bytes that came back are not a well-formed answer (bad sync, CRC, or a timeout)."""


@dataclass(frozen=True)
class Request:
    command: int
    args: tuple[int, int, int, int] = (0, 0, 0, 0)
    arg_f: float = 0.0
    data: bytes = b""


@dataclass(frozen=True)
class Reply:
    status: int
    results: tuple[int, int, int, int]
    result_f: float
    data: bytes


class Transport(Protocol):
    def execute(self, request: Request) -> Reply: ...


_FIELDS = struct.Struct("<4If")


def _u32(values: tuple[int, ...]) -> tuple[int, ...]:
    for v in values:
        if not 0 <= v <= 0xFFFF_FFFF:
            raise ValueError(f"argument {v} does not fit in 32 bits")
    return values


class MailboxTransport:
    """Commands through the ``odl_mailbox`` struct in simulated RAM: the host writes arguments and data,
    writes the command word last, and runs the CPU until the firmware parks in ``odl_idle`` again."""

    def __init__(self, board: Board, budget: int | None = None) -> None:
        self.board = board
        self.budget = budget
        self.address = board.symbol_address(MAILBOX_SYMBOL)
        board.symbol_address(IDLE_SYMBOL)  # fails early, with the symbol's name, for a foreign ELF
        magic, version = struct.unpack("<2I", board.read(self.address, 8))
        if magic != MAILBOX_MAGIC:
            board.run_until_idle(budget)
            magic, version = struct.unpack("<2I", board.read(self.address, 8))
        if magic != MAILBOX_MAGIC:
            raise ProtocolError(f"the firmware never marked its mailbox ready (magic 0x{magic:08x})")
        if version != PROTOCOL_VERSION:
            raise ProtocolError(f"firmware speaks protocol {version}, this pyodl speaks {PROTOCOL_VERSION}")
        self.capacity = struct.unpack("<I", board.read(self.address + 24, 4))[0]

    def execute(self, request: Request) -> Reply:
        if len(request.data) > self.capacity:
            raise ValueError(f"{len(request.data)} bytes of data exceed the mailbox's {self.capacity}")
        fields = _FIELDS.pack(*_u32(request.args), request.arg_f)
        self.board.write(self.address + 20, struct.pack("<I", len(request.data)))
        self.board.write(self.address + 28, fields)
        if request.data:
            self.board.write(self.address + MAILBOX_HEADER_BYTES, request.data)
        sequence = struct.unpack("<I", self.board.read(self.address + 16, 4))[0]
        self.board.write(self.address + 8, struct.pack("<I", request.command))
        self.board.run_until_idle(self.budget)
        header = self.board.read(self.address, MAILBOX_HEADER_BYTES)
        command, status, new_sequence, data_len = struct.unpack_from("<4I", header, 8)
        if command != 0 or new_sequence != (sequence + 1) & 0xFFFF_FFFF:
            raise BoardError(f"the firmware went idle without completing command {request.command}")
        *results, result_f = _FIELDS.unpack_from(header, 48)
        data = self.board.read(self.address + MAILBOX_HEADER_BYTES, data_len) if data_len else b""
        return Reply(status, tuple(results), result_f, data)  # type: ignore[arg-type]


class ByteStream(Protocol):
    """What pyserial's ``Serial`` offers (and :class:`BoardUart` imitates)."""

    def write(self, data: bytes) -> int | None: ...

    def read(self, size: int = 1) -> bytes: ...


def encode_request(request: Request) -> bytes:
    payload = _FIELDS.pack(*_u32(request.args), request.arg_f) + request.data
    if len(payload) > 0xFFFF:
        raise ValueError(f"a frame carries at most {0xFFFF - FIELDS_BYTES} bytes of data")
    body = struct.pack("<BH", request.command, len(payload)) + payload
    return bytes([SYNC_REQUEST]) + body + struct.pack("<I", zlib.crc32(body))


class UartTransport:
    """Commands as CRC-checked frames over any byte stream: a pyserial port (``/dev/ttyACM0``,
    ``socket://127.0.0.1:3456`` for a Renode server socket terminal) or a simulated board's USART2."""

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
        *results, result_f = _FIELDS.unpack_from(payload)
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


def floats(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4").astype(np.float32)
