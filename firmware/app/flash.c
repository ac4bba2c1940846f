/*
 * The STM32L4 flash controller (RM0351 3.3.6-3.3.7, registers 3.7): page erase and 64-bit double-word
 * programming in bank 2, where the persistence slots live. Bank 1 holds the code: erasing or programming
 * bank 2 does not stall instruction fetches from bank 1 (read-while-write between banks). Every wait is
 * bounded and ends in a status, never a hang.
 */
#include "app.h"

#define FLASH_REGS 0x40022000u
#define FLASH_KEYR (*(volatile uint32_t *)(FLASH_REGS + 0x08u))
#define FLASH_SR (*(volatile uint32_t *)(FLASH_REGS + 0x10u))
#define FLASH_CR (*(volatile uint32_t *)(FLASH_REGS + 0x14u))

#define FLASH_KEY1 0x45670123u
#define FLASH_KEY2 0xCDEF89ABu

#define SR_EOP (1u << 0)
#define SR_ERRORS 0xC3FAu /* OPERR PROGERR WRPERR PGAERR SIZERR PGSERR MISERR FASTERR RDERR OPTVERR */
#define SR_BSY (1u << 16)
#define CR_PG (1u << 0)
#define CR_PER (1u << 1)
#define CR_PNB_SHIFT 3u
#define CR_BKER (1u << 11)
#define CR_STRT (1u << 16)
#define CR_LOCK (1u << 31)

#define BANK2_BASE 0x08080000u
#define PAGES_PER_BANK 256u

/* A page erase takes up to 24.5 ms and a double-word up to 90 us (datasheet); each poll is a few cycles at
 * 4 MHz or more, so this bound is several times the worst case and still ends a hung controller. */
#define BUSY_POLLS 2000000u

static uint32_t wait_idle(void)
{
    for (uint32_t i = 0; i < BUSY_POLLS; ++i) {
        if ((FLASH_SR & SR_BSY) == 0u) {
            return FLASH_SR & SR_ERRORS;
        }
    }
    return ODL_FLASH_TIMEOUT;
}

static uint32_t begin(void)
{
    uint32_t st = wait_idle();
    if (st == ODL_FLASH_TIMEOUT) {
        return st;
    }
    FLASH_SR = SR_ERRORS | SR_EOP; /* errors of an earlier operation would block this one */
    if (FLASH_CR & CR_LOCK) {
        FLASH_KEYR = FLASH_KEY1;
        FLASH_KEYR = FLASH_KEY2;
        if (FLASH_CR & CR_LOCK) {
            return ODL_FLASH_LOCKED;
        }
    }
    return 0;
}

static uint32_t end(uint32_t clear_bits)
{
    const uint32_t st = wait_idle();
    FLASH_CR &= ~clear_bits;
    FLASH_CR |= CR_LOCK;
    return st;
}

uint32_t odl_flash_erase_page(uintptr_t address)
{
    if (address < BANK2_BASE || address >= BANK2_BASE + PAGES_PER_BANK * ODL_FLASH_PAGE_BYTES ||
        address % ODL_FLASH_PAGE_BYTES != 0u) {
        return ODL_FLASH_OUTSIDE;
    }
    uint32_t st = begin();
    if (st != 0u) {
        return st;
    }
    const uint32_t page = (address - BANK2_BASE) / ODL_FLASH_PAGE_BYTES;
    FLASH_CR = (FLASH_CR & ~(0xFFu << CR_PNB_SHIFT)) | CR_PER | CR_BKER | (page << CR_PNB_SHIFT);
    FLASH_CR |= CR_STRT;
    return end(CR_PER | CR_BKER | (0xFFu << CR_PNB_SHIFT));
}

uint32_t odl_flash_program(uintptr_t address, uint32_t low, uint32_t high)
{
    if (address < BANK2_BASE || address >= BANK2_BASE + PAGES_PER_BANK * ODL_FLASH_PAGE_BYTES ||
        address % 8u != 0u) {
        return ODL_FLASH_OUTSIDE;
    }
    uint32_t st = begin();
    if (st != 0u) {
        return st;
    }
    FLASH_CR |= CR_PG;
    /* The two words of the double-word, in address order: the second write starts the programming. */
    *(volatile uint32_t *)address = low;
    *(volatile uint32_t *)(address + 4u) = high;
    return end(CR_PG);
}
