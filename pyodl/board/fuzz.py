"""A seeded fuzzer of the firmware's two transports, on the Unicorn board.

Inputs, drawn at random: well-formed commands with out-of-range arguments; unknown commands; garbage in
every mailbox field; windows, learning rates and parameters holding NaN, infinities and huge values; and
over the console UART random bytes, truncated frames, frames with a corrupted CRC and frames announcing impossible
lengths. After every input the fuzzer checks that:

- the CPU did not fault, touch an unmapped address or exceed its instruction budget (a hang);
- the firmware still answers INFO over the mailbox, and over the UART once the link has been quiet for its
  inter-byte timeout (a partial frame is dropped then);
- the parameters kept in RAM are finite and within the model's bound, and bit-identical unless the input
  was a complete command that may change them (SET_PARAMS, SGD_STEP, LOAD) and the firmware answered it
  with success;
- every complete frame was answered by exactly one reply.
"""

from __future__ import annotations

import collections
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pyodl.board.base import BoardError
from pyodl.board.mailbox import MailboxTransport
from pyodl.board.protocol import (
    FRAME_TIMEOUT_S,
    HEADER_BYTES,
    INFO_FIELDS,
    INFO_FORMAT,
    MAILBOX,
    MAILBOX_HEADER_BYTES,
    STATUS_NAMES,
    SYNC_REQUEST,
    SYNC_RESPONSE,
    Command,
    Request,
)
from pyodl.board.uart import BoardUart, UartTransport, encode_request
from pyodl.board.unicorn import UnicornBoard

# Runs that take longer than this are hangs: a training step of a paper-size model is ~3 M instructions.
BUDGET = 200_000_000
CHANGES_WEIGHTS = {Command.SET_PARAMS, Command.SGD_STEP, Command.LOAD}
NASTY_FLOATS = (float("nan"), float("inf"), -float("inf"), 3e38, -3e38, 1e30, 1e-45, 0.0, -0.0, 1.0)


@dataclass
class FuzzReport:
    inputs: int = 0
    by_kind: collections.Counter[str] = field(default_factory=collections.Counter)
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    weight_changes: int = 0  # by valid commands the firmware accepted
    crashes: list[str] = field(default_factory=list)  # faults, unmapped accesses
    hangs: list[str] = field(default_factory=list)
    corruptions: list[str] = field(default_factory=list)  # weights changed by an input that may not
    unanswered: list[str] = field(default_factory=list)  # INFO or a complete frame without its reply
    seconds: float = 0.0

    @property
    def failures(self) -> int:
        return len(self.crashes) + len(self.hangs) + len(self.corruptions) + len(self.unanswered)

    def to_json(self) -> dict[str, object]:
        return {"inputs": self.inputs, "by_kind": dict(self.by_kind), "statuses": dict(self.statuses),
                "distinct_statuses": len(self.statuses), "weight_changes": self.weight_changes,
                "crashes": self.crashes, "hangs": self.hangs, "corruptions": self.corruptions,
                "unanswered": self.unanswered, "seconds": self.seconds}


class _Fuzzer:
    def __init__(self, elf: Path, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.board = UnicornBoard(elf, budget=BUDGET)
        self._connect()
        self.params_at = self.board.symbol_address("_sodl_params")
        self.params_bytes = self.board.symbol_address("_eodl_params") - self.params_at
        info = dict(zip(INFO_FIELDS, struct.unpack_from(INFO_FORMAT, self.mailbox.execute(Request(Command.INFO)).data),
                        strict=True))
        self.input_floats = int(info["input_len"] * info["input_ch"])
        self.capacity_floats = self.mailbox.capacity // 4
        self.param_bound = np.float32(info["param_bound"])

    def _connect(self) -> None:
        self.mailbox = MailboxTransport(self.board)
        self.uart = UartTransport(BoardUart(self.board))

    def weights(self) -> bytes:
        return self.board.read(self.params_at, self.params_bytes)

    # ------------------------------------------------------------------ inputs

    def _floats(self, n: int) -> bytes:
        """Half the time clean values (so that valid commands get through), else 10% NaN, infinities, huge and
        tiny values among them."""
        values = self.rng.normal(0, 1, n).astype(np.float32)
        nasty = self.rng.random(n) < (0.1 if self.rng.random() < 0.5 else 0.0)
        values[nasty] = self.rng.choice(np.array(NASTY_FLOATS, np.float32), int(nasty.sum()))
        return values.tobytes()

    def _arg(self) -> int:
        """Half the time a small number (a layer index, a label, an offset the firmware accepts), else one
        at or beyond a field's limits."""
        if self.rng.random() < 0.5:
            return int(self.rng.integers(0, 10))
        return int(self.rng.choice([255, 256, 0xFFFF, 0x10000, 0x7FFF_FFFF, 0xFFFF_FFFF,
                                    int(self.rng.integers(0, 2**32))]))

    def _command(self) -> int:
        """A command number; 0 (ODL_CMD_NONE) is the mailbox's "nothing to do", never a request."""
        return int(self.rng.integers(1, 16)) if self.rng.random() < 0.9 else max(1, self._arg())

    def _request(self) -> Request:
        command = self._command()
        data = b""
        if self.rng.random() < 0.6:
            n = int(self.rng.choice([self.input_floats, 1, 2, 7, self.capacity_floats,
                                     int(self.rng.integers(0, self.capacity_floats + 1))]))
            data = self._floats(n)
        arg_f = float(self.rng.choice((*NASTY_FLOATS, 0.01, 0.1, 1e20)))
        return Request(command, (self._arg(), self._arg(), self._arg(), self._arg()), arg_f, data)

    def _frame_request(self) -> Request:
        """A request a frame can carry: its command is one byte."""
        request = self._request()
        return Request(request.command & 0xFF, request.args, request.arg_f, request.data)

    # ------------------------------------------------------------------ one input

    def run_one(self, report: FuzzReport) -> None:
        kind = str(self.rng.choice(["mailbox", "mailbox garbage", "training step", "frame", "frame corrupted",
                                    "frame truncated", "uart bytes", "frame bad length"]))
        report.by_kind[kind] += 1
        report.inputs += 1
        before = self.weights()
        may_change = False
        try:
            if kind == "mailbox":
                request = self._request()
                reply = self.mailbox.execute(request)
                report.statuses[STATUS_NAMES.get(reply.status, str(reply.status))] += 1
                may_change = request.command in CHANGES_WEIGHTS and reply.status == 0
            elif kind == "training step":
                may_change = self._training_step(report)
            elif kind == "mailbox garbage":
                may_change = self._mailbox_garbage(report)
            elif kind == "frame":
                request = self._frame_request()
                self.uart.stream.write(encode_request(request, self._sequence()))
                reply = self._one_reply(report, kind)
                if reply is not None:
                    may_change = request.command in CHANGES_WEIGHTS and reply == 0
            else:
                self._broken_bytes(kind)
            self._flush_uart(report, kind)
        except BoardError as exc:
            message = f"input {report.inputs} ({kind}): {exc}"
            (report.hangs if "budget" in str(exc) else report.crashes).append(message)
            self.board.reset()  # the board is unusable after a fault; go on from a fresh boot
            self._connect()
            return
        info = self.mailbox.execute(Request(Command.INFO))
        if info.status != 0:
            report.unanswered.append(f"input {report.inputs} ({kind}): INFO answered status {info.status}")
        after = self.weights()
        params = np.frombuffer(after, np.float32)
        if not np.all(np.abs(params) <= self.param_bound):
            report.corruptions.append(f"input {report.inputs} ({kind}): a parameter is NaN or beyond the bound")
        if after != before:
            if may_change:
                report.weight_changes += 1
            else:
                report.corruptions.append(f"input {report.inputs} ({kind}): parameters changed")

    def _training_step(self, report: FuzzReport) -> bool:
        """A window (maybe nasty), a label, a step at a learning rate from 1e-3 to 1e30 or NaN: the step is
        the input that may change the weights."""
        requests = [Request(Command.LOAD_SAMPLE, data=self._floats(self.input_floats)),
                    Request(Command.TRAIN_SAMPLE, (int(self.rng.integers(0, 8)), 0, 0, 0)),
                    Request(Command.SGD_STEP, arg_f=float(self.rng.choice((1e-3, 0.01, 0.1, 10.0, 1e10, 1e30,
                                                                           float("nan"), -0.01))))]
        status = 0
        for request in requests:
            status = self.mailbox.execute(request).status
            report.statuses[STATUS_NAMES.get(status, str(status))] += 1
        return status == 0

    def _mailbox_garbage(self, report: FuzzReport) -> bool:
        """Random words in every header field but the command (which goes last, as the host writes it),
        then a command; the firmware must finish it and answer."""
        address = self.mailbox.address
        header = bytearray(self.rng.integers(0, 256, MAILBOX_HEADER_BYTES, dtype=np.uint8).tobytes())
        header[MAILBOX["command"].offset : MAILBOX["command"].offset + 4] = b"\0\0\0\0"
        sequence = self.board.read(address + MAILBOX["sequence"].offset, 4)
        header[MAILBOX["sequence"].offset : MAILBOX["sequence"].offset + 4] = sequence
        # The firmware never reads magic, version or capacity; keep them so the host side still works.
        for name in ("magic", "version", "data_capacity"):
            at = MAILBOX[name].offset
            header[at : at + 4] = self.board.read(address + at, 4)
        self.board.write(address, bytes(header))
        command = self._command()
        self.board.write(address + MAILBOX["command"].offset, struct.pack("<I", command))
        self.board.run_until_idle()
        done, status, new_sequence = (struct.unpack("<I", self.board.read(address + MAILBOX[n].offset, 4))[0]
                                      for n in ("command", "status", "sequence"))
        if done != 0 or new_sequence != (struct.unpack("<I", sequence)[0] + 1) & 0xFFFF_FFFF:
            report.unanswered.append(f"input {report.inputs} (mailbox garbage): command {command} not completed")
        report.statuses[STATUS_NAMES.get(status, str(status))] += 1
        return command in CHANGES_WEIGHTS and status == 0

    def _broken_bytes(self, kind: str) -> None:
        if kind == "uart bytes":
            raw = self.rng.integers(0, 256, int(self.rng.integers(1, 64)), dtype=np.uint8).tobytes()
        elif kind == "frame bad length":
            length = int(self.rng.integers(self.mailbox.capacity + 21, 0x10000))
            raw = bytes([SYNC_REQUEST, int(self.rng.integers(0, 16)), self._sequence()]) + struct.pack("<H", length)
        else:
            raw = bytearray(encode_request(self._frame_request(), self._sequence()))
            if kind == "frame corrupted":
                at = int(self.rng.integers(1, len(raw)))
                raw[at] ^= 1 << int(self.rng.integers(0, 8))
            else:  # truncated
                raw = raw[: int(self.rng.integers(1, len(raw)))]
            raw = bytes(raw)
        self.uart.stream.write(raw)

    def _one_reply(self, report: FuzzReport, kind: str) -> int | None:
        """The status of the one reply a complete frame must get."""
        self.board.run_until_idle()
        out = self.board.uart_output()
        if not out or out[0] != SYNC_RESPONSE:
            report.unanswered.append(f"input {report.inputs} ({kind}): no reply to a complete frame")
            return None
        status, _sequence, length = struct.unpack_from("<BBH", out, 1)
        if len(out) != HEADER_BYTES + length + 4 or zlib.crc32(out[1 : HEADER_BYTES + length]) != struct.unpack_from(
                "<I", out, HEADER_BYTES + length)[0]:
            report.unanswered.append(f"input {report.inputs} ({kind}): {len(out)} bytes are not one reply")
        report.statuses[STATUS_NAMES.get(status, str(status))] += 1
        return int(status)

    def _sequence(self) -> int:
        """Few sequence numbers, so that frames repeating the last one's (answered from its stored reply)
        are common."""
        return int(self.rng.integers(0, 4))

    def _flush_uart(self, report: FuzzReport, kind: str) -> None:
        """The link stays quiet for twice the firmware's inter-byte timeout (a partial frame is dropped);
        then INFO over the UART must be answered."""
        self.board.wait(2 * FRAME_TIMEOUT_S)
        self.board.uart_output()
        self.uart.stream.write(encode_request(Request(Command.INFO), self._sequence()))
        self.board.run_until_idle()
        out = self.board.uart_output()
        if len(out) < 4 or out[0] != SYNC_RESPONSE or out[1] != 0:
            report.unanswered.append(f"input {report.inputs} ({kind}): INFO over the UART not answered")


def fuzz(elf: Path, count: int, seed: int = 0, progress: Callable[[int], None] | None = None) -> FuzzReport:
    """``count`` random inputs to the firmware ``elf`` on a Unicorn board, each checked as the module says."""
    report = FuzzReport()
    t0 = time.perf_counter()
    fuzzer = _Fuzzer(elf, seed)
    try:
        for i in range(count):
            fuzzer.run_one(report)
            if progress is not None:
                progress(i + 1)
    finally:
        fuzzer.board.close()
        report.seconds = time.perf_counter() - t0
    return report

