"""The STM32L496ZG memory map the firmware is linked for (RM0351, section 2.2.2), and the peripherals it
touches. The linker script (firmware/app/stm32l496.ld) states the same regions for the linker."""

FLASH_BASE = 0x0800_0000
FLASH_SIZE = 1024 * 1024
SRAM1_BASE = 0x2000_0000
SRAM1_SIZE = 256 * 1024
SRAM2_BASE = 0x2004_0000
SRAM2_SIZE = 64 * 1024
SRAM2_ALIAS = 0x1000_0000
SRAM_SIZE = SRAM1_SIZE + SRAM2_SIZE
USART2_BASE = 0x4000_4400
LPUART1_BASE = 0x4000_8000
GPIOA_BASE = 0x4800_0000
GPIOG_BASE = 0x4800_1800
