"""The console path of the STM32L496 as the Unicorn board models it: the GPIO ports that carry it and the
two UARTs the firmware can use, LPUART1 on PG7/PG8 (alternate function 8; the NUCLEO-L496ZG's ST-LINK
virtual COM port) and USART2 on PA2/PA3 (alternate function 7). Both have the STM32L4 USART register layout
(RM0351 sections 40.8 and 41.7).

A UART here is a byte pipe to the host, always ready to transmit. Before its first byte goes out, the board
checks what would otherwise make a real board silent (:func:`console_problem`): the UART's and the GPIO
port's clocks, the pins' alternate function, port G's supply (VDDIO2, PWR_CR2.IOSV) and a baud rate within
2% of the host's, computed from the modelled clock tree. A problem stops the board with its description.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from pyodl.board.clocks import RCC_AHB2ENR, RCC_APB1ENR1, RCC_APB1ENR2, Pwr, Rcc
from pyodl.toolchain.memory_map import GPIOA_BASE, GPIOG_BASE, LPUART1_BASE, USART2_BASE

CONSOLE_BAUD: Final = 115_200  # what pyodl's serial transport opens a port at
BAUD_TOLERANCE: Final = 0.02

USART_CR1: Final = 0x00
USART_BRR: Final = 0x0C
USART_ISR: Final = 0x1C
USART_RDR: Final = 0x24
USART_TDR: Final = 0x28
USART_CR1_UE: Final = 1 << 0
USART_CR1_RE: Final = 1 << 2
USART_CR1_TE: Final = 1 << 3
USART_CR1_OVER8: Final = 1 << 15
USART_ISR_RXNE: Final = 1 << 5
USART_ISR_TC: Final = 1 << 6
USART_ISR_TXE: Final = 1 << 7
UART_REGISTERS: Final = range(0x00, 0x2C, 4)  # CR1 .. TDR

GPIO_MODER: Final = 0x00
GPIO_AFRL: Final = 0x20
GPIO_REGISTERS: Final = range(0x00, 0x30, 4)  # MODER .. ASCR
# Reset values that are not zero (RM0351 8.5): port A's debug pins, every other port's analog mode.
GPIO_RESET: Final = {GPIOA_BASE: {0x00: 0xABFF_FFFF, 0x08: 0x0C00_0000, 0x0C: 0x6400_0000},
                     GPIOG_BASE: {0x00: 0xFFFF_FFFF}}


class GpioPort:
    """One GPIO port's registers (they read back what was written); its clock must be on."""

    def __init__(self, name: str, base: int, rcc: Rcc, clock_bit: int, on_fault: Callable[[str], None]) -> None:
        self.name = name
        self.registers = {offset: GPIO_RESET.get(base, {}).get(offset, 0) for offset in GPIO_REGISTERS}
        self._rcc = rcc
        self._clock_bit = clock_bit
        self._on_fault = on_fault

    def _check(self, offset: int, kind: str) -> bool:
        if offset & ~3 not in self.registers:
            self._on_fault(f"{kind} of {self.name} register offset 0x{offset:02x}, which the board does not model")
            return False
        if not self._rcc.enabled(RCC_AHB2ENR, self._clock_bit):
            self._on_fault(f"{kind} of {self.name} while its clock is off (set RCC_AHB2ENR bit {self._clock_bit} "
                           "first; the silicon ignores the access)")
            return False
        return True

    def read(self, offset: int, size: int) -> int:
        if not self._check(offset, "read"):
            return 0
        word, shift = offset & ~3, 8 * (offset & 3)
        return (self.registers[word] >> shift) & ((1 << (8 * size)) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        if self._check(offset, "write"):
            word, shift = offset & ~3, 8 * (offset & 3)
            mask = ((1 << (8 * size)) - 1) << shift
            self.registers[word] = (self.registers[word] & ~mask) | ((value << shift) & mask)

    def alternate_function(self, pin: int) -> int | None:
        """The pin's alternate function number, or None when it is not in alternate-function mode."""
        if (self.registers[GPIO_MODER] >> (2 * pin)) & 3 != 2:
            return None
        return (self.registers[GPIO_AFRL + 4 * (pin // 8)] >> (4 * (pin % 8))) & 0xF


class Uart:
    """An STM32L4 USART or LPUART as a byte pipe: always ready to transmit, RXNE while host bytes wait.
    ``before_transmit`` returns what keeps the bytes from reaching a host (or None)."""

    def __init__(self, name: str, low_power: bool, before_transmit: Callable[[Uart], str | None],
                 on_fault: Callable[[str], None]) -> None:
        self.name = name
        self.low_power = low_power
        self.registers = dict.fromkeys(UART_REGISTERS, 0)
        self.rx: deque[int] = deque()
        self.tx = bytearray()
        self._before_transmit = before_transmit
        self._on_fault = on_fault
        self._checked = False

    def read(self, offset: int, size: int) -> int:
        if offset & ~3 not in self.registers:
            self._on_fault(f"read of {self.name} register offset 0x{offset:02x}, which the board does not model")
            return 0
        if offset == USART_ISR:
            return self.registers[USART_ISR] | USART_ISR_TXE | USART_ISR_TC | (USART_ISR_RXNE if self.rx else 0)
        if offset == USART_RDR:
            return self.rx.popleft() if self.rx else 0
        word, shift = offset & ~3, 8 * (offset & 3)
        return (self.registers[word] >> shift) & ((1 << (8 * size)) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        if offset & ~3 not in self.registers or size != 4:
            self._on_fault(f"{size}-byte write of {self.name} register offset 0x{offset:02x}, which the board "
                           "does not model")
            return
        if offset == USART_TDR:
            if not self._checked:
                problem = self._before_transmit(self)
                if problem is not None:
                    self._on_fault(f"{self.name} sent a byte that would not reach the host: {problem}")
                    return
                self._checked = True
            self.tx.append(value & 0xFF)
            return
        self.registers[offset] = value & 0xFFFF_FFFF
        if offset in (USART_CR1, USART_BRR):
            self._checked = False  # check again with the new settings

    def baud(self, kernel_hz: int) -> float:
        brr = self.registers[USART_BRR]
        if not brr:
            return 0.0
        if self.low_power:
            return 256 * kernel_hz / brr
        return (2 if self.registers[USART_CR1] & USART_CR1_OVER8 else 1) * kernel_hz / brr


@dataclass(frozen=True)
class ConsoleWiring:
    """Where a UART's signals leave the chip and what must be on for them to get there."""

    uart_base: int
    clock_register: int  # RCC enable register of the UART
    clock_bit: int
    port: str  # GPIO port name
    pins: tuple[int, int]  # TX, RX
    alternate_function: int
    needs_vddio2: bool


WIRING: Final = {
    LPUART1_BASE: ConsoleWiring(LPUART1_BASE, RCC_APB1ENR2, 0, "GPIOG", (7, 8), 8, True),
    USART2_BASE: ConsoleWiring(USART2_BASE, RCC_APB1ENR1, 17, "GPIOA", (2, 3), 7, False),
}


def console_problem(uart: Uart, wiring: ConsoleWiring, rcc: Rcc, pwr: Pwr, ports: dict[str, GpioPort]) -> str | None:
    """Why bytes the firmware writes into ``uart`` would not reach a host at CONSOLE_BAUD, or None."""
    if not rcc.enabled(wiring.clock_register, wiring.clock_bit):
        return f"its clock is off (RCC register 0x{wiring.clock_register:02x} bit {wiring.clock_bit})"
    cr1 = uart.registers[USART_CR1]
    if cr1 & (USART_CR1_UE | USART_CR1_TE) != USART_CR1_UE | USART_CR1_TE:
        return "UE and TE are not both set in CR1"
    port = ports[wiring.port]
    for pin in wiring.pins:
        function = port.alternate_function(pin)
        if function != wiring.alternate_function:
            what = "not in alternate-function mode" if function is None else f"on alternate function {function}"
            return f"{wiring.port} pin {pin} is {what}, not AF{wiring.alternate_function}"
    if wiring.needs_vddio2 and not pwr.vddio2:
        return "port G has no supply: PWR_CR2.IOSV (VDDIO2 valid) is clear"
    baud = uart.baud(rcc.pclk1_hz())
    if abs(baud - CONSOLE_BAUD) > BAUD_TOLERANCE * CONSOLE_BAUD:
        return (f"BRR 0x{uart.registers[USART_BRR]:x} at {rcc.pclk1_hz() / 1e6:g} MHz gives {baud:.0f} baud, "
                f"not {CONSOLE_BAUD} within {BAUD_TOLERANCE:.0%}")
    return None
