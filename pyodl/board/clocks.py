"""The STM32L496's clock and power registers as the Unicorn board models them (RM0351 chapters 5 and 6):
RCC (oscillators, the main PLL, the system clock switch, peripheral clock enables) and PWR (voltage range,
VDDIO2). Registers read back what was written, from their reset values; ready flags follow their enable
bits. What a firmware gets wrong on silicon without a word is an error here, naming the register: touching
a register the model does not implement, PWR with its bus clock off, a PLL configuration outside the
datasheet's ranges, and a system clock faster than the voltage range and the flash wait states allow.

:attr:`Rcc.pll_locks` set to False keeps PLLRDY clear, as a PLL that never locks (a test of the firmware's
bounded waits).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

RCC_BASE: Final = 0x4002_1000
PWR_BASE: Final = 0x4000_7000

# RCC registers (RM0351 6.4) and their reset values.
RCC_CR: Final = 0x00
RCC_CFGR: Final = 0x08
RCC_PLLCFGR: Final = 0x0C
RCC_AHB2ENR: Final = 0x4C
RCC_APB1ENR1: Final = 0x58
RCC_APB1ENR2: Final = 0x5C
RCC_CSR: Final = 0x94
RCC_RESET: Final = {
    0x00: 0x0000_0063,  # CR: MSI on and ready, 4 MHz (MSIRANGE 6)
    0x08: 0x0000_0000,  # CFGR
    0x0C: 0x0000_1000,  # PLLCFGR
    0x10: 0x0000_1000,  # PLLSAI1CFGR
    0x14: 0x0000_1000,  # PLLSAI2CFGR
    0x18: 0, 0x1C: 0, 0x20: 0,  # CIER, CIFR, CICR
    0x48: 0x0000_0100,  # AHB1ENR: FLASH
    0x4C: 0, 0x50: 0, 0x58: 0, 0x5C: 0, 0x60: 0,  # AHB2ENR, AHB3ENR, APB1ENR1, APB1ENR2, APB2ENR
    0x88: 0,  # CCIPR
    0x90: 0,  # BDCR
    0x94: 0x0C00_0600,  # CSR: MSISRANGE 6 (4 MHz after a reset)
    0x98: 0,  # CRRCR
    0x9C: 0,  # CCIPR2
}
# (on bit, ready bit) per register: CR (MSI, HSI16, HSE, PLLSAI1, PLLSAI2; the PLL apart), BDCR (LSE),
# CSR (LSI), CRRCR (HSI48).
_READY: Final = {0x00: ((0, 1), (8, 10), (16, 17), (26, 27), (28, 29)), 0x90: ((0, 1),), 0x94: ((0, 1),),
                 0x98: ((0, 1),)}
CR_PLLON: Final = 1 << 24
CR_PLLRDY: Final = 1 << 25
APB1ENR1_PWREN: Final = 1 << 28
# MSI ranges (RCC_CR.MSIRANGE, or RCC_CSR.MSISRANGE before MSIRGSEL is set), in Hz.
MSI_HZ: Final = (100_000, 200_000, 400_000, 800_000, 1_000_000, 2_000_000, 4_000_000, 8_000_000, 16_000_000,
                 24_000_000, 32_000_000, 48_000_000)
HSI16_HZ: Final = 16_000_000

# PWR registers (RM0351 5.4) and their reset values.
PWR_CR1: Final = 0x00
PWR_CR2: Final = 0x04
PWR_SR2: Final = 0x14
PWR_RESET: Final = {0x00: 0x0000_0200, 0x04: 0, 0x08: 0x0000_8000, 0x0C: 0, 0x10: 0, 0x14: 0, 0x18: 0,
                    **{offset: 0 for offset in range(0x20, 0x68, 4)}}  # pull-up/down control
PWR_CR2_IOSV: Final = 1 << 9

# Highest system clock per flash wait state in voltage range 1 (RM0351 table 9), and per range.
RANGE1_HZ_PER_WAIT_STATES: Final = (16_000_000, 32_000_000, 48_000_000, 64_000_000, 80_000_000)
RANGE_MAX_HZ: Final = {1: 80_000_000, 2: 26_000_000}
RANGE2_HZ_PER_WAIT_STATES: Final = (6_000_000, 12_000_000, 18_000_000, 26_000_000)


def _lanes(registers: dict[int, int], offset: int, size: int, value: int | None) -> int:
    """Read (``value`` None) or merge a write of ``size`` bytes at ``offset`` into the word that holds it."""
    word, shift = offset & ~3, 8 * (offset & 3)
    mask = ((1 << (8 * size)) - 1) << shift
    if value is None:
        return (registers[word] & mask) >> shift
    return (registers[word] & ~mask) | ((value << shift) & mask)


class Rcc:
    """Reset and clock control. ``wait_states`` and ``voltage_range`` give FLASH_ACR.LATENCY and the PWR
    range at the moment of a clock switch; ``on_fault`` stops the board with a message."""

    def __init__(self, wait_states: Callable[[], int], voltage_range: Callable[[], int],
                 on_fault: Callable[[str], None]) -> None:
        self.registers = dict(RCC_RESET)
        self.pll_locks = True
        self._wait_states = wait_states
        self._voltage_range = voltage_range
        self._on_fault = on_fault

    def read(self, offset: int, size: int) -> int:
        if offset & ~3 not in self.registers:
            self._on_fault(f"read of RCC register offset 0x{offset:02x}, which the board does not model")
            return 0
        return _lanes(self.registers, offset, size, None)

    def write(self, offset: int, size: int, value: int) -> None:
        word = offset & ~3
        if word not in self.registers:
            self._on_fault(f"write of RCC register offset 0x{offset:02x}, which the board does not model")
            return
        new = _lanes(self.registers, offset, size, value)
        for on, ready in _READY.get(word, ()):
            new = new | (1 << ready) if new & (1 << on) else new & ~(1 << ready)
        if word == RCC_CR:
            if new & CR_PLLON and not self.registers[RCC_CR] & CR_PLLON and self.pll_locks:
                self.pll_hz()  # a configuration outside the datasheet's ranges would not lock
            new = new | CR_PLLRDY if new & CR_PLLON and self.pll_locks else new & ~CR_PLLRDY
        self.registers[word] = new & 0xFFFF_FFFF
        if word == RCC_CFGR:
            self._switch()

    def enabled(self, offset: int, bit: int) -> bool:
        """A peripheral's clock enable bit (e.g. RCC_APB1ENR1, 28 for PWR)."""
        return bool(self.registers[offset] >> bit & 1)

    def msi_hz(self) -> int:
        cr = self.registers[RCC_CR]
        index = (cr >> 4) & 0xF if cr & (1 << 3) else (self.registers[RCC_CSR] >> 8) & 0xF
        return MSI_HZ[index] if index < len(MSI_HZ) else 0

    def pll_hz(self) -> int:
        """The main PLL's R output; a configuration outside RM0351 6.4.4's ranges is a fault."""
        cfg = self.registers[RCC_PLLCFGR]
        source = {1: self.msi_hz(), 2: HSI16_HZ}.get(cfg & 3, 0)
        m, n, r = ((cfg >> 4) & 7) + 1, (cfg >> 8) & 0x7F, 2 * (((cfg >> 25) & 3) + 1)
        vco_in = source // m
        problems = []
        if not source:
            problems.append("PLLSRC selects no modelled oscillator (MSI or HSI16)")
        elif not 4_000_000 <= vco_in <= 16_000_000:
            problems.append(f"VCO input {vco_in / 1e6:g} MHz outside 4-16 MHz")
        if not 8 <= n <= 86:
            problems.append(f"PLLN {n} outside 8-86")
        elif source and not 64_000_000 <= vco_in * n <= 344_000_000:
            problems.append(f"VCO {vco_in * n / 1e6:g} MHz outside 64-344 MHz")
        if not cfg & (1 << 24):
            problems.append("PLLREN (the system clock output) is off")
        elif source and vco_in * n // r > 80_000_000:
            problems.append(f"PLLCLK {vco_in * n // r / 1e6:g} MHz above 80 MHz")
        if problems:
            self._on_fault(f"RCC_PLLCFGR 0x{cfg:08x}: {'; '.join(problems)}")
            return 0
        return vco_in * n // r

    def sysclk_hz(self) -> int:
        sws = (self.registers[RCC_CFGR] >> 2) & 3
        if sws == 3:
            return self.pll_hz()
        return self.msi_hz() if sws == 0 else HSI16_HZ if sws == 1 else 0

    def pclk1_hz(self) -> int:
        """The APB1 clock (LPUART1 and USART2 are clocked by it at reset): system clock / HPRE / PPRE1."""
        cfg = self.registers[RCC_CFGR]
        hpre, ppre1 = (cfg >> 4) & 0xF, (cfg >> 8) & 7
        ahb = self.sysclk_hz() >> (0 if hpre < 8 else (hpre - 7 if hpre < 12 else hpre - 6))
        return ahb >> (0 if ppre1 < 4 else ppre1 - 3)

    def _switch(self) -> None:
        """CFGR.SWS takes CFGR.SW once that clock is ready; the new frequency must be allowed."""
        cfg = self.registers[RCC_CFGR]
        sw = cfg & 3
        cr = self.registers[RCC_CR]
        ready = {0: cr & 2, 1: cr & (1 << 10), 2: cr & (1 << 17), 3: cr & CR_PLLRDY}[sw]
        if not ready:
            return
        if sw == 2:
            self._on_fault("RCC_CFGR.SW selects HSE, which the board does not model")
            return
        self.registers[RCC_CFGR] = (cfg & ~0xC) | (sw << 2)
        hz, wait_states, vos = self.sysclk_hz(), self._wait_states(), self._voltage_range()
        limits = RANGE1_HZ_PER_WAIT_STATES if vos == 1 else RANGE2_HZ_PER_WAIT_STATES
        needed = next((ws for ws, top in enumerate(limits) if hz <= top), None)
        if hz > RANGE_MAX_HZ.get(vos, 0) or needed is None:
            self._on_fault(f"system clock {hz / 1e6:g} MHz is above what voltage range {vos} allows")
        elif wait_states < needed:
            self._on_fault(f"system clock {hz / 1e6:g} MHz needs {needed} flash wait states in voltage range {vos}, "
                           f"FLASH_ACR.LATENCY is {wait_states} (raise the latency before the clock)")


class Pwr:
    """Power control: the voltage range (VOSF reads 0: the regulator settles at once) and VDDIO2."""

    def __init__(self, rcc: Rcc, on_fault: Callable[[str], None]) -> None:
        self.registers = dict(PWR_RESET)
        self._rcc = rcc
        self._on_fault = on_fault

    def _check(self, offset: int, kind: str) -> bool:
        if offset & ~3 not in self.registers:
            self._on_fault(f"{kind} of PWR register offset 0x{offset:02x}, which the board does not model")
            return False
        if not self._rcc.enabled(RCC_APB1ENR1, 28):
            self._on_fault(f"{kind} of PWR register offset 0x{offset:02x} while its clock is off "
                           "(set RCC_APB1ENR1.PWREN first; the silicon ignores the access)")
            return False
        return True

    def read(self, offset: int, size: int) -> int:
        return _lanes(self.registers, offset, size, None) if self._check(offset, "read") else 0

    def write(self, offset: int, size: int, value: int) -> None:
        if self._check(offset, "write"):
            self.registers[offset & ~3] = _lanes(self.registers, offset, size, value) & 0xFFFF_FFFF
            self.registers[PWR_SR2] = 0  # VOSF and REGLPF clear: the regulator is always ready here

    def voltage_range(self) -> int:
        return (self.registers[PWR_CR1] >> 9) & 3

    @property
    def vddio2(self) -> bool:
        """PWR_CR2.IOSV: port G (PG2-PG15) has its supply."""
        return bool(self.registers[PWR_CR2] & PWR_CR2_IOSV)
