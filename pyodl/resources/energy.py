"""Seconds and millijoules of on-device work, from core cycles and the STM32L496's run-mode supply current.

The datasheet gives the supply current in Run mode per clock configuration, measured with the core running
code from flash; energy = cycles / clock x current x supply voltage. The current is the whole MCU's (core,
flash, SRAM, regulator) with every peripheral off, so a real board also spends what its UART, LEDs and the
ST-LINK draw, which this leaves out. The current depends on the code run: the datasheet's rows are for its
own benchmark code, so the figures below are an estimate of a few per cent, not a measurement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class RunMode:
    """One clock configuration of the firmware and the datasheet's supply current for it."""

    clock: str  # the firmware's ODL_CLOCK
    clock_hz: int
    current_a: float  # typical IDD in Run mode, 25 °C
    supply_v: float  # VDD of that measurement
    source: str

    def seconds(self, cycles: float) -> float:
        return cycles / self.clock_hz

    def millijoules(self, cycles: float) -> float:
        return self.seconds(cycles) * self.current_a * self.supply_v * 1e3


# STM32L496xx datasheet (DS11585), section 6.3.5 "Supply current characteristics", table "Current consumption
# in Run and Low-power run modes, code with data processing running from Flash, ART enable (Cache ON Prefetch
# OFF)", typical at 25 °C, VDD = 3 V: range 1 at 80 MHz (PLL), and range 2 at 4 MHz (the firmware keeps
# the reset's range 1 at 4 MHz, whose row is the same within the table's rounding).
RUN_MODES: Final = {
    "pll80": RunMode("pll80", 80_000_000, 10.2e-3, 3.0, "DS11585 table 'Current consumption in Run ... from "
                     "Flash, ART enable (Cache ON Prefetch OFF)', range 1, 80 MHz, 25 °C, typical"),
    "msi4": RunMode("msi4", 4_000_000, 0.62e-3, 3.0, "DS11585, the same table, 4 MHz, 25 °C, typical"),
}
DEFAULT_RUN_MODE: Final = RUN_MODES["pll80"]
