"""The console path: a byte leaves only if everything a real board needs for it is set up."""

from __future__ import annotations

import pytest

from pyodl.board import clocks, console
from pyodl.toolchain.memory_map import GPIOA_BASE, GPIOG_BASE, LPUART1_BASE, USART2_BASE


class _Chip:
    def __init__(self) -> None:
        self.faults: list[str] = []
        self.rcc = clocks.Rcc(lambda: 4, lambda: 1, self.faults.append)
        self.pwr = clocks.Pwr(self.rcc, self.faults.append)
        self.ports = {"GPIOA": console.GpioPort("GPIOA", GPIOA_BASE, self.rcc, 0, self.faults.append),
                      "GPIOG": console.GpioPort("GPIOG", GPIOG_BASE, self.rcc, 6, self.faults.append)}
        self.uart = console.Uart("LPUART1", True, self.problem, self.faults.append)

    def problem(self, uart: console.Uart) -> str | None:
        return console.console_problem(uart, console.WIRING[LPUART1_BASE], self.rcc, self.pwr, self.ports)

    def set_up(self, skip: str = "") -> None:
        """The firmware's LPUART1 setup at the 4 MHz reset clock, without the step named ``skip``."""
        steps = {
            "pwr clock": lambda: self.rcc.write(clocks.RCC_APB1ENR1, 4, clocks.APB1ENR1_PWREN),
            "vddio2": lambda: self.pwr.write(clocks.PWR_CR2, 4, clocks.PWR_CR2_IOSV),
            "gpio clock": lambda: self.rcc.write(clocks.RCC_AHB2ENR, 4, 1 << 6),
            "uart clock": lambda: self.rcc.write(clocks.RCC_APB1ENR2, 4, 1),
            "pins": lambda: self.ports["GPIOG"].write(console.GPIO_MODER, 4, 0xFFFE_BFFF),  # PG7, PG8: AF
            "af8": lambda: (self.ports["GPIOG"].write(0x20, 4, 8 << 28), self.ports["GPIOG"].write(0x24, 4, 8)),
            "baud": lambda: self.uart.write(console.USART_BRR, 4, 8889),  # 256 * 4 MHz / 115200
            "enable": lambda: self.uart.write(console.USART_CR1, 4, 0b1101),
        }
        for name, step in steps.items():
            if name != skip:
                step()


def test_a_set_up_console_delivers_bytes_and_reads_host_bytes() -> None:
    chip = _Chip()
    chip.set_up()
    chip.uart.rx.extend(b"ok")
    assert chip.uart.read(console.USART_ISR, 4) & console.USART_ISR_RXNE
    for _ in range(2):
        chip.uart.write(console.USART_TDR, 4, chip.uart.read(console.USART_RDR, 4))
    assert chip.uart.tx == b"ok" and not chip.faults and not chip.uart.read(console.USART_ISR, 4) & 0x20


@pytest.mark.parametrize(("skip", "problem"), [
    ("vddio2", "port G has no supply: PWR_CR2.IOSV (VDDIO2 valid) is clear"),
    ("uart clock", "its clock is off (RCC register 0x5c bit 0)"),
    ("pins", "GPIOG pin 7 is not in alternate-function mode, not AF8"),
    ("af8", "GPIOG pin 7 is on alternate function 0, not AF8"),
    ("baud", "BRR 0x0 at 4 MHz gives 0 baud, not 115200 within 2%"),
    ("enable", "UE and TE are not both set in CR1"),
])
def test_what_would_keep_a_real_board_silent_stops_the_board(skip: str, problem: str) -> None:
    chip = _Chip()
    chip.set_up(skip)
    chip.uart.write(console.USART_TDR, 4, 0x55)
    assert chip.faults == [f"LPUART1 sent a byte that would not reach the host: {problem}"] and not chip.uart.tx


def test_the_baud_rate_follows_the_clock() -> None:
    chip = _Chip()
    chip.set_up()
    chip.rcc.write(clocks.RCC_CFGR, 4, 0b100 << 8)  # APB1 halved: about 57,600 baud now
    chip.uart.write(console.USART_BRR, 4, 8889)
    chip.uart.write(console.USART_TDR, 4, 0x55)
    assert "BRR 0x22b9 at 2 MHz gives 57599 baud" in chip.faults[0]


def test_a_gpio_port_needs_its_clock() -> None:
    chip = _Chip()
    chip.ports["GPIOG"].write(console.GPIO_MODER, 4, 0)
    assert chip.faults == ["write of GPIOG while its clock is off (set RCC_AHB2ENR bit 6 first; the silicon "
                           "ignores the access)"]


def test_usart2_wiring() -> None:
    wiring = console.WIRING[USART2_BASE]
    assert (wiring.port, wiring.pins, wiring.alternate_function, wiring.needs_vddio2) == ("GPIOA", (2, 3), 7, False)
