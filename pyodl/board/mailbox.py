"""Commands through the ``odl_mailbox`` struct in a board's RAM (simulators: no UART, no framing)."""

from __future__ import annotations

import struct

from pyodl.board.base import DATASET_SYMBOL, IDLE_SYMBOL, MAILBOX_SYMBOL, Board, BoardError, Read, Run, Step, Write
from pyodl.board.protocol import (
    MAILBOX,
    MAILBOX_HEADER_BYTES,
    MAILBOX_MAGIC,
    PROTOCOL_VERSION,
    REPLY_FIELDS,
    ProtocolError,
    Reply,
    Request,
    pack_fields,
)


def _offset(field: str) -> int:
    return MAILBOX[field].offset


if (_offset("data_capacity"), _offset("arg")) != (_offset("data_len") + 4, _offset("data_len") + 8):
    raise ProtocolError("firmware/app/app.h: data_len, data_capacity and arg are no longer adjacent in odl_mailbox_t")


class MailboxTransport:
    """The host writes arguments and data, writes the command word last, and runs the CPU until the
    firmware parks in ``odl_idle`` again."""

    def __init__(self, board: Board, budget: int | None = None) -> None:
        self.board = board
        self.budget = budget
        self.address = board.symbol_address(MAILBOX_SYMBOL)
        board.symbol_address(IDLE_SYMBOL)  # fails early, with the symbol's name, for a foreign ELF
        # Boot first unless the CPU already waits in odl_idle: after a load or a reset, RAM may still hold a
        # ready mailbox from before (Renode's reset keeps RAM), which the boot is about to wipe.
        if not board.parked():
            board.run_until_idle(budget)
        magic, version = self._words("magic", "version")
        if magic != MAILBOX_MAGIC:
            raise ProtocolError(f"the firmware parked without marking its mailbox ready (magic 0x{magic:08x})")
        if version != PROTOCOL_VERSION:
            raise ProtocolError(f"firmware speaks protocol {version}, this pyodl speaks {PROTOCOL_VERSION}")
        (self.capacity,) = self._words("data_capacity")
        self._dataset: int | None = None
        # Instructions each kind of command took last time (by command and count argument): the run's hint.
        self._lengths: dict[tuple[int, int], int] = {}

    def store_dataset(self, offset: int, data: bytes) -> None:
        """Write records into the firmware's dataset region in one transfer; the caller keeps within it (the
        firmware checks every window and label it reads)."""
        if self._dataset is None:
            self._dataset = self.board.symbol_address(DATASET_SYMBOL)
        self.board.write(self._dataset + offset, data)

    def _words(self, *names: str) -> tuple[int, ...]:
        return tuple(struct.unpack("<I", self.board.read(self.address + _offset(n), 4))[0] for n in names)

    def execute(self, request: Request) -> Reply:
        if len(request.data) > self.capacity:
            raise ValueError(f"{len(request.data)} bytes of data exceed the mailbox's {self.capacity}")
        # data_len, data_capacity (as it is) and the arguments in one write, the command word last, then the
        # run and the reply: one transaction, which a simulator whose every access is a round trip (Renode's
        # monitor) takes in one. The whole data area is read back: cheaper than a second exchange for its length.
        fields = struct.pack("<2I", len(request.data), self.capacity) + pack_fields(request)
        steps: list[Step] = [Write(self.address + _offset("data_len"), fields)]
        if request.data:
            steps.append(Write(self.address + _offset("data"), request.data))
        kind = (request.command, request.args[1])
        steps += [Read(self.address + _offset("sequence"), 4),
                  Write(self.address + _offset("command"), struct.pack("<I", request.command)),
                  Run(self.budget, self._lengths.get(kind)),
                  Read(self.address, MAILBOX_HEADER_BYTES),
                  Read(self.address + _offset("data"), self.capacity)]
        before, executed, header, area = self.board.transact(steps)
        assert isinstance(before, bytes) and isinstance(executed, int) and isinstance(header, bytes)
        assert isinstance(area, bytes)
        self._lengths[kind] = executed
        (sequence,) = struct.unpack("<I", before)
        command, status, new_sequence, data_len = (
            struct.unpack_from("<I", header, _offset(n))[0] for n in ("command", "status", "sequence", "data_len"))
        if command != 0 or new_sequence != (sequence + 1) & 0xFFFF_FFFF:
            raise BoardError(f"the firmware went idle without completing command {request.command}")
        if data_len > self.capacity:
            raise ProtocolError(f"the firmware answered {data_len} bytes of data, more than its {self.capacity}")
        *results, result_f, cycles = REPLY_FIELDS.unpack_from(header, _offset("result"))
        return Reply(status, tuple(results), result_f, area[:data_len], cycles)  # type: ignore[arg-type]
