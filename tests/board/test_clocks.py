"""The clock and power model: ready flags, the PLL's ranges, and the frequency a switch may reach."""

from __future__ import annotations

import pytest

from pyodl.board import clocks


def _tree(wait_states: int = 4) -> tuple[clocks.Rcc, clocks.Pwr, list[str]]:
    faults: list[str] = []
    pwr_box: list[clocks.Pwr] = []
    rcc = clocks.Rcc(lambda: wait_states, lambda: pwr_box[0].voltage_range(), faults.append)
    pwr = clocks.Pwr(rcc, faults.append)
    pwr_box.append(pwr)
    return rcc, pwr, faults


PLL_80MHZ = 0x1 | (40 << 8) | (1 << 24)  # MSI / 1 * 40 / 2


def test_reset_state_is_4mhz_msi() -> None:
    rcc, pwr, faults = _tree()
    assert rcc.read(clocks.RCC_CR, 4) == 0x63 and rcc.sysclk_hz() == rcc.pclk1_hz() == 4_000_000
    rcc.write(clocks.RCC_APB1ENR1, 4, clocks.APB1ENR1_PWREN)
    assert pwr.voltage_range() == 1 and not pwr.vddio2 and not faults


def test_pll_locks_and_the_switch_reaches_80mhz() -> None:
    rcc, _, faults = _tree()
    rcc.write(clocks.RCC_PLLCFGR, 4, PLL_80MHZ)
    rcc.write(clocks.RCC_CR, 4, rcc.read(clocks.RCC_CR, 4) | clocks.CR_PLLON)
    assert rcc.read(clocks.RCC_CR, 4) & clocks.CR_PLLRDY
    rcc.write(clocks.RCC_CFGR, 4, 3)
    assert rcc.read(clocks.RCC_CFGR, 4) == 0xF and rcc.sysclk_hz() == 80_000_000 and not faults
    rcc.write(clocks.RCC_CFGR, 4, 3 | (0b100 << 8))  # APB1 divided by 2
    assert rcc.pclk1_hz() == 40_000_000


def test_a_pll_that_never_locks_keeps_msi() -> None:
    rcc, _, faults = _tree()
    rcc.pll_locks = False
    rcc.write(clocks.RCC_PLLCFGR, 4, PLL_80MHZ)
    rcc.write(clocks.RCC_CR, 4, rcc.read(clocks.RCC_CR, 4) | clocks.CR_PLLON)
    rcc.write(clocks.RCC_CFGR, 4, 3)
    assert not rcc.read(clocks.RCC_CR, 4) & clocks.CR_PLLRDY
    assert rcc.read(clocks.RCC_CFGR, 4) == 3 and rcc.sysclk_hz() == 4_000_000 and not faults  # SWS still MSI


@pytest.mark.parametrize(("pllcfgr", "problem"), [
    (0x1 | (40 << 8), "PLLREN (the system clock output) is off"),
    (0x1 | (100 << 8) | (1 << 24), "PLLN 100 outside 8-86"),
    (0x1 | (86 << 8) | (1 << 24), "PLLCLK 172 MHz above 80 MHz"),  # the VCO at its top, 344 MHz
    (0x1 | (1 << 4) | (40 << 8) | (1 << 24), "VCO input 2 MHz outside 4-16 MHz"),
    (0x3 | (40 << 8) | (1 << 24), "PLLSRC selects no modelled oscillator"),
])
def test_a_pll_outside_its_ranges_is_a_fault(pllcfgr: int, problem: str) -> None:
    rcc, _, faults = _tree()
    rcc.write(clocks.RCC_PLLCFGR, 4, pllcfgr)
    rcc.write(clocks.RCC_CR, 4, rcc.read(clocks.RCC_CR, 4) | clocks.CR_PLLON)
    assert len(faults) == 1 and faults[0].startswith("RCC_PLLCFGR") and problem in faults[0], faults


def test_switching_before_raising_the_flash_latency_is_a_fault() -> None:
    rcc, _, faults = _tree(wait_states=3)
    rcc.write(clocks.RCC_PLLCFGR, 4, PLL_80MHZ)
    rcc.write(clocks.RCC_CR, 4, rcc.read(clocks.RCC_CR, 4) | clocks.CR_PLLON)
    rcc.write(clocks.RCC_CFGR, 4, 3)
    assert faults == ["system clock 80 MHz needs 4 flash wait states in voltage range 1, FLASH_ACR.LATENCY is 3 "
                      "(raise the latency before the clock)"]


def test_voltage_range_2_caps_the_clock() -> None:
    rcc, pwr, faults = _tree()
    rcc.write(clocks.RCC_APB1ENR1, 4, clocks.APB1ENR1_PWREN)
    pwr.write(clocks.PWR_CR1, 4, 2 << 9)
    rcc.write(clocks.RCC_PLLCFGR, 4, PLL_80MHZ)
    rcc.write(clocks.RCC_CR, 4, rcc.read(clocks.RCC_CR, 4) | clocks.CR_PLLON)
    rcc.write(clocks.RCC_CFGR, 4, 3)
    assert faults == ["system clock 80 MHz is above what voltage range 2 allows"]


def test_pwr_needs_its_clock_and_unknown_registers_are_faults() -> None:
    rcc, pwr, faults = _tree()
    pwr.write(clocks.PWR_CR2, 4, clocks.PWR_CR2_IOSV)
    assert not pwr.vddio2 and "while its clock is off (set RCC_APB1ENR1.PWREN first" in faults[-1]
    rcc.write(clocks.RCC_APB1ENR1, 4, clocks.APB1ENR1_PWREN)
    pwr.write(clocks.PWR_CR2, 4, clocks.PWR_CR2_IOSV)
    assert pwr.vddio2 and pwr.read(clocks.PWR_SR2, 4) == 0
    rcc.read(0x04, 4)  # ICSCR: not modelled
    pwr.read(0x80, 4)
    assert faults[1:] == ["read of RCC register offset 0x04, which the board does not model",
                          "read of PWR register offset 0x80, which the board does not model"]
