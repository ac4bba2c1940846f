"""The STM32L4 flash controller (RM0351 sections 3.3 and 3.7) as the Unicorn board models it, with flash
bank 2 behind it, and power cuts at any flash operation.

What the firmware can do with it: set the read wait states and the ART accelerator (ACR: LATENCY, PRFTEN,
ICEN, DCEN; the clock model checks the latency when the system clock changes), unlock CR with the two keys,
erase a 2 KB page of bank 2 (PER, PNB, BKER, STRT) and program a 64-bit double-word into erased bank-2 flash
(PG, then two word writes). What it reports: BSY (operations complete at once here, so it reads 0), and the
error flags PROGERR (the double-word is not erased), WRPERR (bank 1, which holds the running code, is write-
protected, as WRP1AR says), PGAERR (a word not in double-word order), SIZERR (not a word access), PGSERR
(flash written without PG, or while another operation is set up). A wrong key locks the controller until the
next reset, as on the silicon (which also raises a bus error, not modelled).

Power cuts: :meth:`FlashController.cut_power` arms a cut at the n-th erase or double-word program from
now, either before it changes anything or halfway through it (half of the page erased; the first word of
the double-word programmed); the board then stops as if the supply had gone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

FLASH_REGS_BASE: Final = 0x4002_2000
BANK_BYTES: Final = 512 * 1024
PAGE_BYTES: Final = 2048
PAGES_PER_BANK: Final = BANK_BYTES // PAGE_BYTES

ACR: Final = 0x00
ACR_RESET: Final = 0x0000_0600  # ICEN and DCEN on, zero wait states
ACR_LATENCY_MASK: Final = 0x7
ACR_PRFTEN: Final = 1 << 8
ACR_WRITABLE: Final = 0x7F07  # LATENCY, PRFTEN, ICEN, DCEN, ICRST, DCRST, RUN_PD, SLEEP_PD
KEYR: Final = 0x08
SR: Final = 0x10
CR: Final = 0x14
WRP1AR: Final = 0x2C
KEY1: Final = 0x4567_0123
KEY2: Final = 0xCDEF_89AB

SR_EOP: Final = 1 << 0
SR_PROGERR: Final = 1 << 3
SR_WRPERR: Final = 1 << 4
SR_PGAERR: Final = 1 << 5
SR_SIZERR: Final = 1 << 6
SR_PGSERR: Final = 1 << 7
SR_ERRORS: Final = 0xC3FA
CR_PG: Final = 1 << 0
CR_PER: Final = 1 << 1
CR_PNB_SHIFT: Final = 3
CR_PNB_MASK: Final = 0xFF << CR_PNB_SHIFT
CR_BKER: Final = 1 << 11
CR_STRT: Final = 1 << 16
CR_LOCK: Final = 1 << 31
CR_RESET: Final = 0xC000_0000  # LOCK and OPTLOCK
# WRP1AR: pages 0 to 255 of bank 1 protected, the running code (set with the option bytes, e.g. by the
# tool that flashed the firmware).
WRP1AR_CODE: Final = 0x00FF_0000


@dataclass(frozen=True)
class Operation:
    kind: str  # "erase" or "program"
    offset: int  # bytes into bank 2
    data: bytes = b""  # what a program writes (8 bytes)

    def apply(self, bank: bytearray, halfway: bool = False) -> None:
        """This operation's effect on ``bank``, whole or cut off halfway, as the controller applies it."""
        if self.kind == "erase":
            length = PAGE_BYTES // 2 if halfway else PAGE_BYTES
            bank[self.offset : self.offset + length] = b"\xff" * length
        else:
            length = 4 if halfway else 8
            bank[self.offset : self.offset + length] = self.data[:length]


class FlashController:
    """Registers at FLASH_REGS_BASE and bank 2 (``bank``, kept by the caller across resets)."""

    def __init__(self, bank: bytearray, on_cut: Callable[[str], None], on_fault: Callable[[str], None]) -> None:
        """``on_cut``: the supply went; ``on_fault``: the firmware touched a register this model does not
        implement (the board stops there, as for any access outside the modelled map)."""
        if len(bank) != BANK_BYTES:
            raise ValueError(f"bank 2 must be {BANK_BYTES} bytes")
        self.bank = bank
        self._on_cut = on_cut
        self._on_fault = on_fault
        self.acr = ACR_RESET
        self.cr = CR_RESET
        self.sr = 0
        self._key_stage = 0  # 0: expecting KEY1; 1: expecting KEY2; 2: locked until reset
        self._pending: tuple[int, int] | None = None  # first word of a double-word: (offset, value)
        self.operations: list[Operation] = []
        self._cut: tuple[int, bool] | None = None  # (operation number, halfway)

    # ------------------------------------------------------------------ registers

    def read(self, offset: int, size: int) -> int:
        registers = {ACR: self.acr, KEYR: 0, SR: self.sr, CR: self.cr, WRP1AR: WRP1AR_CODE}
        if offset - offset % 4 not in registers:
            self._on_fault(f"read of FLASH register offset 0x{offset:02x}, which the board does not model")
            return 0
        return (registers[offset - offset % 4] >> (8 * (offset % 4))) & ((1 << (8 * size)) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        if offset not in (ACR, KEYR, SR, CR):
            self._on_fault(f"write of FLASH register offset 0x{offset:02x}, which the board does not model")
            return
        if size != 4:
            self.sr |= SR_SIZERR
            return
        if offset == ACR:
            self.acr = value & ACR_WRITABLE
        elif offset == KEYR:
            self._key(value)
        elif offset == SR:
            self.sr &= ~(value & (SR_ERRORS | SR_EOP))  # write 1 to clear
        elif offset == CR:
            self._control(value)

    def wait_states(self) -> int:
        """FLASH_ACR.LATENCY: the flash read wait states the core clock is run with."""
        return self.acr & ACR_LATENCY_MASK

    def _key(self, value: int) -> None:
        if self._key_stage == 0 and value == KEY1:
            self._key_stage = 1
        elif self._key_stage == 1 and value == KEY2:
            self._key_stage = 0
            self.cr &= ~CR_LOCK
        else:
            self._key_stage = 2

    def _control(self, value: int) -> None:
        if self.cr & CR_LOCK:
            return  # CR cannot be written while locked
        self.cr = value & ~CR_STRT
        if not value & CR_STRT:
            return
        if not value & CR_PER or value & CR_PG:
            self.sr |= SR_PGSERR
            return
        if not value & CR_BKER:
            self.sr |= SR_WRPERR  # bank 1: the running code
            return
        page = (value & CR_PNB_MASK) >> CR_PNB_SHIFT
        self._operation(Operation("erase", page * PAGE_BYTES))

    # ------------------------------------------------------------------ bank 2

    def read_bank(self, offset: int, size: int) -> int:
        return int.from_bytes(self.bank[offset : offset + size], "little")

    def write_bank(self, offset: int, size: int, value: int) -> None:
        if not self.cr & CR_PG or self.cr & CR_LOCK or self.cr & CR_PER:
            self.sr |= SR_PGSERR
            self._pending = None
            return
        if size != 4:
            self.sr |= SR_SIZERR
            self._pending = None
            return
        if self._pending is None:
            if offset % 8:
                self.sr |= SR_PGAERR
                return
            self._pending = (offset, value)
            return
        first_offset, first = self._pending
        self._pending = None
        if offset != first_offset + 4:
            self.sr |= SR_PGAERR
            return
        if self.read_bank(first_offset, 8) != 0xFFFF_FFFF_FFFF_FFFF:
            self.sr |= SR_PROGERR
            return
        data = first.to_bytes(4, "little") + value.to_bytes(4, "little")
        self._operation(Operation("program", first_offset, data))

    # ------------------------------------------------------------------ power cuts

    def cut_power(self, operation: int, halfway: bool) -> None:
        """Cut the supply at the ``operation``-th flash operation from now (1 = the next one): before it
        changes anything, or ``halfway`` through it."""
        if operation < 1:
            raise ValueError("operations count from 1")
        self._cut = (len(self.operations) + operation, halfway)

    def _operation(self, op: Operation) -> None:
        self.operations.append(op)
        if self._cut is not None and self._cut[0] == len(self.operations):
            halfway = self._cut[1]
            self._cut = None
            if halfway:
                op.apply(self.bank, halfway=True)
            self._on_cut(f"power cut {'halfway through' if halfway else 'before'} flash operation "
                         f"{len(self.operations)} ({op.kind} at bank 2 + 0x{op.offset:05x})")
            return
        op.apply(self.bank)
