"""Commands as CRC-checked frames over a byte stream: a real board's serial port, a Renode socket
terminal, or a simulated board's console UART. A lost or corrupted byte costs at most the request it hit:
sequence numbers, an inter-byte timeout in the firmware, and retries (see :class:`UartTransport`)."""

from __future__ import annotations

import contextlib
import secrets
import struct
import time
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pyodl.board.base import Board, BoardError
from pyodl.board.console import CONSOLE_BAUD
from pyodl.board.protocol import (
    FIELDS_BYTES,
    FRAME_TIMEOUT_S,
    HEADER_BYTES,
    REPLY_FIELDS,
    STATUS_CRC,
    STATUS_FRAME,
    SYNC_REQUEST,
    SYNC_RESPONSE,
    Command,
    ProtocolError,
    Reply,
    Request,
    pack_fields,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    import serial


class ByteStream(Protocol):
    """What pyserial's ``Serial`` offers (and :class:`BoardUart` imitates), plus ``settle``."""

    def write(self, data: bytes) -> int | None: ...

    def read(self, size: int = 1) -> bytes: ...

    def settle(self, seconds: float) -> None:
        """Let ``seconds`` pass with nothing sent (the firmware drops a partial frame), then drop whatever
        arrived meanwhile."""
        ...


def encode_request(request: Request, sequence: int = 0) -> bytes:
    payload = pack_fields(request) + request.data
    if len(payload) > 0xFFFF:
        raise ValueError(f"a frame carries at most {0xFFFF - FIELDS_BYTES} bytes of data")
    if not 0 <= sequence <= 0xFF:
        raise ValueError(f"a frame's sequence number is one byte, not {sequence}")
    body = struct.pack("<BBH", request.command, sequence, len(payload)) + payload
    return bytes([SYNC_REQUEST]) + body + struct.pack("<I", zlib.crc32(body))


@dataclass
class LinkCounters:
    """What the link cost: requests sent again, stale replies dropped, bytes skipped while hunting a sync."""

    retries: int = 0
    stale_replies: int = 0
    skipped_bytes: int = 0


class UartTransport:
    """Frames over a pyserial port (``/dev/ttyACM0``, ``socket://127.0.0.1:3456`` for a Renode server socket
    terminal) or a simulated board's console UART (:class:`BoardUart`).

    Every request carries a sequence number and the firmware echoes it, so a reply to an earlier request
    (one that came after its timeout) is recognised and dropped. A request without a matching reply (a byte
    lost either way, a corrupted frame) is sent again, up to ``attempts`` times in all, after the link has
    been quiet long enough for the firmware to drop a partial frame. A resent frame is safe for every
    command: the firmware answers a repeated TRAIN_SAMPLE, SGD_STEP or SAVE from its stored reply instead of
    running it twice.

    The firmware tells a resend from a new request by the sequence number and command of the last frame it
    ran, so a new transport starts at a random sequence number (``first_sequence`` fixes it, for tests): a
    request that opens a new connection is not mistaken for a resend of the old connection's last one."""

    def __init__(self, stream: ByteStream, attempts: int = 3, first_sequence: int | None = None) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.stream = stream
        self.attempts = attempts
        self.counters = LinkCounters()
        self._sequence = secrets.randbelow(256) if first_sequence is None else (first_sequence - 1) & 0xFF

    def close(self) -> None:
        """Release the port (a simulated board's stream holds nothing)."""
        close = getattr(self.stream, "close", None)
        if close is not None:
            close()

    def _read_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.stream.read(n - len(data))
            if not chunk:
                raise ProtocolError(f"timed out after {len(data)} of {n} bytes of an answer")
            data += chunk
        return data

    def execute(self, request: Request) -> Reply:
        self._sequence = (self._sequence + 1) & 0xFF
        frame = encode_request(request, self._sequence)
        problem: ProtocolError | None = None
        for attempt in range(self.attempts):
            if attempt:
                self.counters.retries += 1
                self.stream.settle(2 * FRAME_TIMEOUT_S)
            self.stream.write(frame)
            try:
                reply = self._reply_to(self._sequence)
            except ProtocolError as exc:
                problem = exc
                continue
            if reply.status == STATUS_CRC:
                problem = ProtocolError("the board received the frame corrupted")
                continue
            # This host never sends a frame longer than the board takes (data goes in chunks of its capacity), so
            # the board read another frame: the start of one the link cut, run into this one's bytes. Whose
            # sequence byte it echoed is chance (3 start sequences in 256 made it this one's): send again.
            if reply.status == STATUS_FRAME:
                problem = ProtocolError("the board read a frame longer than it takes (a cut frame ran into this one)")
                continue
            return reply
        name = Command(request.command).name if request.command in Command._value2member_map_ else request.command
        raise ProtocolError(f"no answer to {name} after {self.attempts} attempts: {problem}")

    def _reply_to(self, sequence: int) -> Reply:
        while True:
            got, reply = self.read_reply()
            if got == sequence:
                return reply
            self.counters.stale_replies += 1

    def read_reply(self) -> tuple[int, Reply]:
        """The next well-formed reply on the stream and its sequence number; bytes before its sync byte are
        skipped (the rest of a reply the host gave up on)."""
        while self._read_exact(1)[0] != SYNC_RESPONSE:
            self.counters.skipped_bytes += 1
        head = self._read_exact(HEADER_BYTES - 1)
        status, sequence, length = struct.unpack("<BBH", head)
        payload = self._read_exact(length)
        (crc,) = struct.unpack("<I", self._read_exact(4))
        if crc != zlib.crc32(head + payload):
            raise ProtocolError("answer CRC mismatch")
        if length < REPLY_FIELDS.size:
            raise ProtocolError(f"answer payload of {length} bytes is shorter than its {REPLY_FIELDS.size} bytes "
                                "of fields")
        *results, result_f, cycles = REPLY_FIELDS.unpack_from(payload)
        return sequence, Reply(status, tuple(results), result_f, payload[REPLY_FIELDS.size:], cycles)  # type: ignore[arg-type]


class BoardUart:
    """A simulated board's console UART as a byte stream: reading runs the CPU until the firmware is idle
    again, so an answer the firmware never sends reads as a timeout, as on a real port."""

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

    def settle(self, seconds: float) -> None:
        self.board.wait(seconds)
        self.board.uart_output()
        self._pending = b""


class SerialStream:
    """A pyserial port as a :class:`ByteStream`. A link that fails (a board unplugged, a simulator's process
    gone: pyserial's SerialException and socket errors are OSErrors) is a BoardError naming the port."""

    def __init__(self, port: serial.SerialBase) -> None:
        self.port = port

    @contextlib.contextmanager
    def _link(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise BoardError(f"the link to the board at {self.port.name} failed: {exc}") from exc

    def write(self, data: bytes) -> int | None:
        with self._link():
            return self.port.write(data)

    def read(self, size: int = 1) -> bytes:
        with self._link():
            return bytes(self.port.read(size))

    def settle(self, seconds: float) -> None:
        time.sleep(seconds)
        with self._link():
            self.port.reset_input_buffer()

    def close(self) -> None:
        self.port.close()


def open_serial(url: str, baudrate: int = CONSOLE_BAUD, timeout: float = 5.0) -> UartTransport:
    """A UART transport on a pyserial URL (a device path or ``socket://host:port``)."""
    import serial  # pyserial; imported here so simulation-only users never load it

    port = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout)
    time.sleep(0.05)  # a board that was just reset may still be printing its boot bytes
    port.reset_input_buffer()
    return UartTransport(SerialStream(port))
