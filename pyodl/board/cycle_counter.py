"""The DWT cycle counter (ARMv7-M architecture reference manual C1.8) as the Unicorn board models it.

Unicorn has no notion of cycles, so CYCCNT reads the board's cycle model (:mod:`pyodl.board.cycle_model`:
the Cortex-M4 TRM's instruction timings, flash wait states and the ART cache), plus the cycles of time the
host lets pass while the firmware waits (:meth:`CycleCounter.advance`). Cycles are added per translated block,
so a reading can be ahead by the rest of its block. DWT needs the trace enable (DEMCR.TRCENA) first, as on
the silicon, where the counter otherwise stays frozen; here that is a fault with its reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

DWT_BASE: Final = 0xE000_1000
DWT_SIZE: Final = 0x1000
DWT_CTRL: Final = 0x00
DWT_CYCCNT: Final = 0x04
CTRL_CYCCNTENA: Final = 1 << 0
CTRL_RESET: Final = 0x4000_0000  # NUMCOMP = 4 comparators, as a Cortex-M4 reports
DEMCR_OFFSET: Final = 0xDFC  # in the System Control Space
DEMCR_TRCENA: Final = 1 << 24


class CycleCounter:
    """DWT_CTRL.CYCCNTENA and DWT_CYCCNT. ``core_cycles`` gives the modelled core cycles so far; ``trace_enabled``
    DEMCR.TRCENA."""

    def __init__(self, core_cycles: Callable[[], int], trace_enabled: Callable[[], bool],
                 on_fault: Callable[[str], None]) -> None:
        self._core_cycles = core_cycles
        self._trace_enabled = trace_enabled
        self._on_fault = on_fault
        self.ctrl = CTRL_RESET
        self._count = 0  # CYCCNT when it was last written or stopped
        self._since = 0  # core cycles at that moment
        self._idle = 0  # cycles the host let pass since then

    def cycles(self) -> int:
        if not self.ctrl & CTRL_CYCCNTENA:
            return self._count
        return (self._count + self._core_cycles() - self._since + self._idle) & 0xFFFF_FFFF

    def advance(self, cycles: int) -> None:
        """Time passing while the core waits (its instructions are not run here)."""
        if self.ctrl & CTRL_CYCCNTENA:
            self._idle += cycles

    def _restart(self, count: int) -> None:
        self._count, self._since, self._idle = count, self._core_cycles(), 0

    def _check(self, offset: int, kind: str) -> bool:
        if offset not in (DWT_CTRL, DWT_CYCCNT):
            self._on_fault(f"{kind} of DWT register offset 0x{offset:03x}, which the board does not model")
            return False
        if not self._trace_enabled():
            self._on_fault(f"{kind} of DWT while DEMCR.TRCENA is clear (the counter would not run)")
            return False
        return True

    def read(self, offset: int, size: int) -> int:
        if not self._check(offset, "read"):
            return 0
        return self.ctrl if offset == DWT_CTRL else self.cycles()

    def write(self, offset: int, size: int, value: int) -> None:
        if not self._check(offset, "write"):
            return
        if offset == DWT_CYCCNT:
            self._restart(value & 0xFFFF_FFFF)
        else:
            count = self.cycles()
            self.ctrl = (self.ctrl & ~CTRL_CYCCNTENA) | (value & CTRL_CYCCNTENA)
            self._restart(count)
