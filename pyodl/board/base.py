"""The one interface every simulated or real STM32L496 offers to the rest of pyodl.

A :class:`Board` runs the pyodl firmware ELF. The firmware's command loop parks at the function
``odl_idle`` whenever it waits for work; the host writes a command into the ``odl_mailbox`` struct (or a
frame into the console UART: LPUART1, or USART2 in a build for it, as ``odl_console_uart`` says) and runs
the CPU until it parks again. Everything above this interface (the mailbox client, the UART protocol, the
Robot keywords, ``golden-check``) is backend-agnostic.
"""

from __future__ import annotations

import abc
from pathlib import Path

IDLE_SYMBOL = "odl_idle"
MAILBOX_SYMBOL = "odl_mailbox"
DATASET_SYMBOL = "odl_dataset"  # the dataset region's records (firmware/app/dataset.c); absent without one
CONSOLE_SYMBOL = "odl_console_uart"  # a const word: the base address of the firmware's console UART


class BoardError(RuntimeError):
    """The simulated or real board failed: a bad memory access, a fault, a budget or timeout exceeded."""


class PowerCutError(BoardError):
    """The supply went (a simulated power cut): the board stopped where it was and must be reset."""


class Board(abc.ABC):
    """A board running one firmware ELF. Addresses are the target's; data is raw little-endian bytes."""

    @abc.abstractmethod
    def load_elf(self, elf: Path) -> None:
        """Load the firmware and reset the CPU to its reset vector (not yet run)."""

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
    def executed_instructions(self) -> int:
        """Instructions executed since the ELF was loaded."""

    @abc.abstractmethod
    def uart_output(self) -> bytes:
        """Everything the firmware sent on its console UART since the last call (consumed)."""

    @abc.abstractmethod
    def uart_input(self, data: bytes) -> None:
        """Queue bytes on the console UART's receive line; the firmware reads them when it next runs."""

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` of the board's time pass while the firmware waits for input, then run it until it
        parks again (so it notices, e.g. that a partial frame is overdue). A real board's time passes by
        itself; a simulator advances its clock."""
        raise BoardError(f"{type(self).__name__} cannot let time pass")

    def reset(self) -> None:
        """A power cycle: the ELF loaded again, the CPU at the reset vector, the firmware's RAM state gone
        (it initialises what it uses at boot); flash bank 2, the persistence slots, keeps its bytes."""
        self.load_elf(self.elf)

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
