"""UART frames: encoding, checked replies, and the firmware's frame parser on the simulated board."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from pyodl.board.mailbox import MailboxTransport
from pyodl.board.protocol import FRAME_TIMEOUT_S, Command, ProtocolError, Request
from pyodl.board.uart import BoardUart, UartTransport, encode_request
from pyodl.board.unicorn import UnicornBoard
from pyodl.model.architecture import paper_model
from pyodl.network.board import BoardNetwork


class _Stream:
    """Bytes a fake port will return, and what was written to it."""

    def __init__(self, incoming: bytes) -> None:
        self.incoming = incoming
        self.written = b""
        self.settled: list[float] = []

    def write(self, data: bytes) -> int:
        self.written += data
        return len(data)

    def read(self, size: int = 1) -> bytes:
        out, self.incoming = self.incoming[:size], self.incoming[size:]
        return out


    def settle(self, seconds: float) -> None:
        self.settled.append(seconds)


def _reply_frame(status: int, results: tuple[int, ...], result_f: float, data: bytes, sequence: int = 1,
                 cycles: int = 0) -> bytes:
    payload = struct.pack("<4IfI", *results, result_f, cycles) + data
    head = struct.pack("<BBH", status, sequence, len(payload))
    return b"\x5a" + head + payload + struct.pack("<I", zlib.crc32(head + payload))


def test_request_frame_layout() -> None:
    frame = encode_request(Request(Command.SGD_STEP, (1, 2, 3, 4), 0.5, b"\x01\x02"), 9)
    assert frame[0] == 0xA5 and frame[1] == Command.SGD_STEP and frame[2] == 9
    assert struct.unpack_from("<H", frame, 3)[0] == 20 + 2
    assert struct.unpack_from("<4If", frame, 5) == (1, 2, 3, 4, 0.5)
    assert struct.unpack_from("<I", frame, len(frame) - 4)[0] == zlib.crc32(frame[1:-4])
    with pytest.raises(ValueError, match="sequence number is one byte"):
        encode_request(Request(Command.INFO), 256)


def test_reply_frames_are_checked_and_noise_before_them_is_skipped() -> None:
    good = _reply_frame(0, (7, 0, 0, 0), 1.5, b"abcd", sequence=3, cycles=1234)
    uart = UartTransport(_Stream(b"\x00\x13" + good))
    sequence, reply = uart.read_reply()
    assert (sequence, reply.status, reply.results[0], reply.result_f, reply.data, reply.cycles) == (
        3, 0, 7, 1.5, b"abcd", 1234)
    assert uart.counters.skipped_bytes == 2
    corrupt = good[:-5] + bytes([good[-5] ^ 1]) + good[-4:]
    with pytest.raises(ProtocolError, match="CRC"):
        UartTransport(_Stream(corrupt)).read_reply()
    with pytest.raises(ProtocolError, match="timed out after 10 of"):
        UartTransport(_Stream(good[:15])).read_reply()


def test_a_stale_reply_is_dropped_and_a_silent_link_is_retried() -> None:
    """Replies are matched by sequence number; without one, the request goes again after the link settles."""
    stream = _Stream(_reply_frame(0, (1, 0, 0, 0), 0.0, b"", sequence=7) + _reply_frame(0, (2, 0, 0, 0), 0.0, b""))
    uart = UartTransport(stream, first_sequence=1)
    assert uart.execute(Request(Command.INFO)).results[0] == 2  # sequence 1's, after 7's stale one
    assert (uart.counters.stale_replies, uart.counters.retries) == (1, 0)
    stream.incoming = _reply_frame(0, (3, 0, 0, 0), 0.0, b"", sequence=2)[:9]  # cut: never completes
    with pytest.raises(ProtocolError, match="no answer to INFO after 3 attempts"):
        uart.execute(Request(Command.INFO))
    assert uart.counters.retries == 2 and stream.settled == [0.04, 0.04]
    assert stream.written.count(encode_request(Request(Command.INFO), 2)) == 3  # the same frame each time


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


def test_parser_skips_noise_and_drops_a_frame_the_link_cut(paper_board: UnicornBoard) -> None:
    MailboxTransport(paper_board)  # boot
    stream = BoardUart(paper_board)
    uart = UartTransport(stream)
    info = encode_request(Request(Command.INFO), 1)
    stream.write(b"\x00\x13garbage" + info)
    assert uart.read_reply()[1].status == 0
    # Cut after 10 bytes: well within the inter-byte timeout the rest still completes it...
    stream.write(info[:10])
    paper_board.wait(0.5 * FRAME_TIMEOUT_S)
    stream.write(info[10:])
    assert uart.read_reply()[0] == 1
    # ...but once the link has been quiet for longer, the partial frame is gone and the rest is noise.
    stream.write(info[:10])
    paper_board.wait(1.5 * FRAME_TIMEOUT_S)
    stream.write(info[10:])
    assert stream.read(1) == b"", "no answer to the remains of a dropped frame"
    assert uart.execute(Request(Command.INFO)).status == 0 and uart.counters.retries == 0


@pytest.mark.parametrize("command", [Command.INFO, Command.TRAIN_SAMPLE])
def test_a_frame_cut_at_any_byte_costs_at_most_that_request(paper_board: UnicornBoard, command: Command) -> None:
    """The link loses the rest of a frame after each of its bytes in turn; the next request still gets its own
    answer, with at most one resend, and nothing runs twice."""
    net = BoardNetwork(UartTransport(BoardUart(paper_board)), paper_model(40, 0).arch)
    uart = net.transport
    assert isinstance(uart, UartTransport)
    net.load_sample(np.zeros((40, 3), np.float32))
    cut = encode_request(Request(command, (1, 0, 0, 0)), 200)
    for length in range(1, len(cut)):
        retries = uart.counters.retries
        uart.stream.write(cut[:length])
        info = net.info()  # right away: its first bytes land in the cut frame
        assert info.accumulated == 0, length
        assert uart.counters.retries - retries <= 1, length
    assert uart.counters.retries >= len(cut) - 6  # a cut after the sync byte needs the resend


@pytest.mark.parametrize("first_sequence", [158, 191, 251])
def test_a_cut_frame_run_into_the_next_one_is_sent_again_whatever_its_sequence(paper_board: UnicornBoard,
                                                                             first_sequence: int) -> None:
    """The board reads a cut TRAIN_SAMPLE's start and the next INFO as one frame too long and answers with the
    sequence byte it read there; from these three start sequences on, that byte is INFO's own (found by trying
    all 256). The refusal is not INFO's answer: INFO is sent again."""
    net = BoardNetwork(UartTransport(BoardUart(paper_board), first_sequence=first_sequence), paper_model(40, 0).arch)
    uart = net.transport
    assert isinstance(uart, UartTransport)
    net.load_sample(np.zeros((40, 3), np.float32))  # as the test above: one sequence number
    cut = encode_request(Request(Command.TRAIN_SAMPLE, (1, 0, 0, 0)), 200)
    for length in range(1, len(cut)):
        uart.stream.write(cut[:length])
        assert net.info().accumulated == 0, length


def test_a_lost_reply_is_answered_again_without_running_twice(paper_board: UnicornBoard) -> None:
    net = BoardNetwork(MailboxTransport(paper_board), paper_model(40, 0).arch)
    net.load_sample(np.zeros((40, 3), np.float32))
    stream = BoardUart(paper_board)
    train = encode_request(Request(Command.TRAIN_SAMPLE, (2, 0, 0, 0)), 42)
    stream.write(train)
    paper_board.run_until_idle()
    first = paper_board.uart_output()  # the reply the link lost
    stream.write(train)  # the host sends it again, same sequence number
    again = UartTransport(stream).read_reply()
    assert again[0] == 42 and first.endswith(_reply_frame(again[1].status, again[1].results, again[1].result_f, b"",
                                                          42, again[1].cycles))
    assert net.info().accumulated == 1  # trained once
    stream.write(encode_request(Request(Command.TRAIN_SAMPLE, (2, 0, 0, 0)), 43))  # a new request runs
    UartTransport(stream).read_reply()
    assert net.info().accumulated == 2


def test_a_corrupted_frame_is_sent_again(paper_board: UnicornBoard) -> None:
    MailboxTransport(paper_board)
    stream = BoardUart(paper_board)
    uart = UartTransport(stream)
    original = stream.write

    def flip_once(data: bytes) -> int:
        stream.write = original  # type: ignore[method-assign]
        return original(data[:8] + bytes([data[8] ^ 0x40]) + data[9:])

    stream.write = flip_once  # type: ignore[method-assign]
    assert uart.execute(Request(Command.INFO)).status == 0 and uart.counters.retries == 1


def test_a_new_connection_does_not_pass_for_a_resend_of_the_last_one(paper_board: UnicornBoard) -> None:
    """The firmware compares a frame with the last one it ran; a transport that started at the same sequence
    number as the previous one would have its first TRAIN_SAMPLE taken for a resend, so each transport
    starts at a random one."""
    net = BoardNetwork(MailboxTransport(paper_board), paper_model(40, 0).arch)
    net.load_sample(np.zeros((40, 3), np.float32))
    train = Request(Command.TRAIN_SAMPLE, (1, 0, 0, 0))
    for _ in range(2):  # the hazard itself: both start at sequence 9
        UartTransport(BoardUart(paper_board), first_sequence=9).execute(train)
    assert net.info().accumulated == 1
    starts = {UartTransport(BoardUart(paper_board))._sequence for _ in range(64)}
    assert len(starts) > 1
