"""Seconds and millijoules of on-device work, from core cycles and the STM32L496's run-mode supply current.

What is used, and how far to trust it. The STM32L496 datasheet (DS11585) states on its front page a run-mode
supply current of 91 µA/MHz in LDO mode (a per-MHz figure, measured by ST at one operating point with its own
benchmark code, every peripheral off). Energy is then current x supply voltage x time, with the time from the
modelled cycles at the firmware's clock. The datasheet's section "Supply current characteristics" has the
current per clock frequency and voltage range in its run-mode table; those rows could not be retrieved while
writing this, so the per-MHz figure stands in for them: at 80 MHz (range 1) and at 4 MHz the real current
differs from 91 µA x f, most at low clocks, where the static part of the current weighs more (so the energy
at 4 MHz is an underestimate). Replace RUN_CURRENT_PER_MHZ_A by the table's rows to tighten it. A real board
also spends what its UART, LEDs and the ST-LINK draw, which this leaves out. The paper measures none of this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# DS11585 front page, "Ultra-low-power with FlexPowerControl": 91 µA/MHz run mode (LDO mode). Read from ST's
# feature list as the Zephyr and RT-Thread board documents for the NUCLEO-L496ZG copy it.
RUN_CURRENT_PER_MHZ_A: Final = 91e-6
SUPPLY_V: Final = 3.3  # the NUCLEO-L496ZG's VDD


@dataclass(frozen=True)
class RunMode:
    """One clock configuration of the firmware (its ODL_CLOCK) and the supply current assumed for it."""

    clock: str
    clock_hz: int

    @property
    def current_a(self) -> float:
        return RUN_CURRENT_PER_MHZ_A * self.clock_hz / 1e6

    def seconds(self, cycles: float) -> float:
        return cycles / self.clock_hz

    def millijoules(self, cycles: float) -> float:
        return self.seconds(cycles) * self.current_a * SUPPLY_V * 1e3


RUN_MODES: Final = {
    "pll80": RunMode("pll80", 80_000_000),  # the firmware's default: PLL, range 1, 4 wait states, ART on
    "msi4": RunMode("msi4", 4_000_000),  # the reset clock (MSI), 0 wait states
}
