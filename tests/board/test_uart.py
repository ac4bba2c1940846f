"""UART frames: encoding, checked replies, and the firmware's frame parser on the simulated board."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from pyodl.board.mailbox import MailboxTransport
from pyodl.board.protocol import STATUS_CRC, Command, ProtocolError, Request
from pyodl.board.uart import BoardUart, UartTransport, encode_request
from pyodl.board.unicorn import UnicornBoard
from pyodl.model.architecture import paper_model
from pyodl.network.board import BoardNetwork


class _Stream:
    """Bytes a fake port will return, and what was written to it."""

    def __init__(self, incoming: bytes) -> None:
        self.incoming = incoming
        self.written = b""

    def write(self, data: bytes) -> int:
        self.written += data
        return len(data)

    def read(self, size: int = 1) -> bytes:
        out, self.incoming = self.incoming[:size], self.incoming[size:]
        return out


def _reply_frame(status: int, results: tuple[int, ...], result_f: float, data: bytes) -> bytes:
    payload = struct.pack("<4If", *results, result_f) + data
    head = struct.pack("<BH", status, len(payload))
    return b"\x5a" + head + payload + struct.pack("<I", zlib.crc32(head + payload))


def test_request_frame_layout() -> None:
    frame = encode_request(Request(Command.SGD_STEP, (1, 2, 3, 4), 0.5, b"\x01\x02"))
    assert frame[0] == 0xA5 and frame[1] == Command.SGD_STEP
    assert struct.unpack_from("<H", frame, 2)[0] == 20 + 2
    assert struct.unpack_from("<4If", frame, 4) == (1, 2, 3, 4, 0.5)
    assert struct.unpack_from("<I", frame, len(frame) - 4)[0] == zlib.crc32(frame[1:-4])


def test_reply_frames_are_checked() -> None:
    good = _reply_frame(0, (7, 0, 0, 0), 1.5, b"abcd")
    reply = UartTransport(_Stream(good)).read_reply()
    assert (reply.status, reply.results[0], reply.result_f, reply.data) == (0, 7, 1.5, b"abcd")
    corrupt = good[:-5] + bytes([good[-5] ^ 1]) + good[-4:]
    with pytest.raises(ProtocolError, match="CRC"):
        UartTransport(_Stream(corrupt)).read_reply()
    with pytest.raises(ProtocolError, match="timed out after 10 of"):
        UartTransport(_Stream(good[:14])).read_reply()
    with pytest.raises(ProtocolError, match="starts with 0x00"):
        UartTransport(_Stream(b"\x00" + good)).read_reply()


def test_arguments_must_fit_32_bits() -> None:
    with pytest.raises(ValueError, match="32 bits"):
        encode_request(Request(Command.GET_PARAMS, (-1, 0, 0, 0)))


def test_both_transports_give_bitwise_identical_results(paper_board: UnicornBoard) -> None:
    arch = paper_model(40, 0).arch
    x = np.random.default_rng(5).standard_normal((arch.input_len, arch.input_ch)).astype(np.float32)
    mailbox = BoardNetwork(MailboxTransport(paper_board), arch)
    uart = BoardNetwork(UartTransport(BoardUart(paper_board)), arch)
    assert np.array_equal(mailbox.forward(x), uart.forward(x))
    loss_m = mailbox.accumulate(x, 3)
    loss_u = uart.accumulate(x, 3)
    assert loss_m == loss_u and uart.info().accumulated == 2
    uart.sgd_step(0.01)
    for (w1, b1), (w2, b2) in zip(mailbox.get_params(), uart.get_params(), strict=True):
        assert np.array_equal(w1, w2) and np.array_equal(b1, b2)


def test_parser_skips_noise_and_recovers_after_a_truncated_frame(paper_board: UnicornBoard) -> None:
    MailboxTransport(paper_board)  # boot
    stream = BoardUart(paper_board)
    uart = UartTransport(stream)
    info = encode_request(Request(Command.INFO))
    stream.write(b"\x00\x13garbage" + info)
    assert uart.read_reply().status == 0
    # The truncated frame (sync, header, 6 of its 24 body bytes) swallows the first 18 bytes of the next
    # one, whose CRC then fails: exactly one answer, CRC mismatch, and the parser hunts for a sync again.
    stream.write(info[:10] + info)
    assert uart.read_reply().status == STATUS_CRC
    assert stream.read(1) == b"", "no second answer"
    assert uart.execute(Request(Command.INFO)).status == 0
