"""The one interface every simulated or real STM32L496 offers to the rest of pyodl.

A :class:`Board` runs the pyodl firmware ELF. The firmware's command loop parks at the function
``odl_idle`` whenever it waits for work; the host writes a command into the ``odl_mailbox`` struct (or a
frame into the console UART: LPUART1, or USART2 in a build for it, as ``odl_console_uart`` says) and runs
the CPU until it parks again. Everything above this interface (the mailbox client, the UART protocol, the
Robot keywords, ``golden-check``) is backend-agnostic.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyodl.toolchain.memory_map import SRAM1_BASE, SRAM1_SIZE, SRAM2_BASE, SRAM2_SIZE

IDLE_SYMBOL = "odl_idle"
MAILBOX_SYMBOL = "odl_mailbox"
DATASET_SYMBOL = "odl_dataset"  # the dataset region's records (firmware/app/records.c); absent without one
CONSOLE_SYMBOL = "odl_console_uart"  # a const word: the base address of the firmware's console UART


# Seeds the power-up contents of SRAM (see power_up_sram); any fixed value would do.
POWER_UP_SEED = 0x0D1_5EED


def power_up_sram(power_up: int) -> tuple[bytes, bytes]:
    """What SRAM1 and SRAM2 hold when power comes up: undefined on the silicon (RM0351 says nothing of them,
    and a short power cut leaves part of the old contents), zeros on a fresh simulator, the last run's bytes
    after Renode's ``machine Reset``. Modelled alike on every backend as pseudo-random bytes, other ones at
    every power-up of a board and the same ones in every run (seeded by the power-up's number), so firmware or
    host code that trusts RAM it did not write fails, and fails reproducibly."""
    data = np.random.default_rng((POWER_UP_SEED, power_up)).bytes(SRAM1_SIZE + SRAM2_SIZE)
    return data[:SRAM1_SIZE], data[SRAM1_SIZE:]


@dataclass(frozen=True)
class Write:
    """A step of :meth:`Board.transact`: write ``data`` at ``address``."""

    address: int
    data: bytes


@dataclass(frozen=True)
class Read:
    """A step of :meth:`Board.transact`: read ``size`` bytes at ``address``."""

    address: int
    size: int


@dataclass(frozen=True)
class Run:
    """A step of :meth:`Board.transact`: :meth:`Board.run_until_idle` with these arguments."""

    budget: int | None = None
    expected: int | None = None


Step = Write | Read | Run


class BoardError(RuntimeError):
    """The simulated or real board failed: a bad memory access, a fault, a budget or timeout exceeded."""


class PowerCutError(BoardError):
    """The supply went (a simulated power cut): the board stopped where it was and must be reset."""


class Board(abc.ABC):
    """A board running one firmware ELF. Addresses are the target's; data is raw little-endian bytes.

    Power: a new board powers up (SRAM as :func:`power_up_sram` says, flash bank 2 erased); :meth:`reset` is a
    power cycle (SRAM undefined again, flash kept); :meth:`load_elf` on a board that has run is a debugger's
    load and reset, which keeps SRAM as well as flash (Renode's ``machine Reset`` and ``LoadELF``)."""

    # Power-ups so far (the first is the board's creation): the seed of the next SRAM contents.
    power_ups = 0

    @abc.abstractmethod
    def load_elf(self, elf: Path) -> None:
        """Load the firmware and reset the CPU to its reset vector (not yet run). SRAM and flash keep their
        bytes; on a new board they hold their power-up contents."""

    @abc.abstractmethod
    def symbol_address(self, name: str) -> int:
        """Address of a global symbol of the loaded ELF; BoardError when it has none."""

    @abc.abstractmethod
    def read(self, address: int, size: int) -> bytes:
        """Read target memory."""

    @abc.abstractmethod
    def write(self, address: int, data: bytes) -> None:
        """Write target memory."""

    @abc.abstractmethod
    def run_until_idle(self, budget: int | None = None, expected: int | None = None) -> int:
        """Run until the PC reaches ``odl_idle``; returns the instructions executed by this call.
        BoardError when the budget (instructions) runs out first or the firmware faults. ``expected``: about
        how many instructions the caller expects (what the same command took last time), a hint for a
        simulator that runs in slices."""

    @abc.abstractmethod
    def parked(self) -> bool:
        """The CPU waits in ``odl_idle``: the firmware has booted and finished its last command. False after a
        load or a reset (the firmware has not run yet), whatever RAM holds."""

    @abc.abstractmethod
    def executed_instructions(self) -> int:
        """Instructions executed since the ELF was loaded."""

    @abc.abstractmethod
    def uart_output(self) -> bytes:
        """Everything the firmware sent on its console UART since the last call (consumed)."""

    @abc.abstractmethod
    def uart_input(self, data: bytes) -> None:
        """Queue bytes on the console UART's receive line; the firmware reads them when it next runs."""

    def transact(self, steps: Sequence[Step]) -> list[bytes | int]:
        """The steps in order, as one exchange with the board where the backend can (Renode: one monitor round
        trip instead of one per step). Returns what each Read read and what each Run executed, in order; an
        error of a step is raised as that step's method raises it, and the steps after it are not taken."""
        results: list[bytes | int] = []
        for step in steps:
            if isinstance(step, Write):
                self.write(step.address, step.data)
            elif isinstance(step, Read):
                results.append(self.read(step.address, step.size))
            else:
                results.append(self.run_until_idle(step.budget, step.expected))
        return results

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` of the board's time pass while the firmware waits for input, then run it until it
        parks again (so it notices, e.g. that a partial frame is overdue). A real board's time passes by
        itself; a simulator advances its clock."""
        raise BoardError(f"{type(self).__name__} cannot let time pass")

    def reset(self) -> None:
        """A power cycle: SRAM's contents undefined (the next :func:`power_up_sram`), the ELF loaded again,
        the CPU at the reset vector; flash bank 2, the persistence slots, keeps its bytes."""
        elf = self.elf
        self.power_ups += 1
        sram1, sram2 = power_up_sram(self.power_ups)
        self.transact([Write(SRAM1_BASE, sram1), Write(SRAM2_BASE, sram2)])
        self.load_elf(elf)

    @property
    @abc.abstractmethod
    def elf(self) -> Path:
        """The ELF loaded last."""

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release the simulator or the port."""

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
