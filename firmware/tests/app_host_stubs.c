/*
 * The STM32L496 application's hardware, stood in for on the host so that commands.c, frames.c and
 * persist.c run under AddressSanitizer and UndefinedBehaviorSanitizer: the UART transmit line (captured),
 * the linker's memory symbols, the stack probe, and flash bank 2 with the controller's rules (erase a page
 * to ones; program only erased double-words).
 */
#include <string.h>

#include "app.h"
#include "app_host_stubs.h"

uint32_t _sstack[1], _eram[1];
uint32_t _sslots[2u * ODL_SLOT_BYTES / 4u];

uint8_t host_uart_tx[HOST_UART_TX_BYTES];
uint32_t host_uart_tx_len;

void host_reset_flash(void)
{
    memset(_sslots, 0xFF, sizeof _sslots);
}

void odl_uart_putc(uint8_t byte)
{
    if (host_uart_tx_len < HOST_UART_TX_BYTES) {
        host_uart_tx[host_uart_tx_len] = byte;
    }
    ++host_uart_tx_len;
}

/* clock.c does not run on the host; INFO reports the reset clock. */
uint32_t odl_clock_hz = 4000000u;
uint32_t odl_clock_status = ODL_CLOCK_OK;

/* The DWT cycle counter: one tick per reading, so every command reports a few cycles. */
static uint32_t host_cycles;
void odl_cycles_init(void)
{
    host_cycles = 0;
}
uint32_t odl_cycles(void)
{
    return host_cycles++;
}
/* Time passing while the firmware waits (for a frame's inter-byte timeout). */
void host_cycles_advance(uint32_t cycles)
{
    host_cycles += cycles;
}

uint32_t odl_stack_size(void)
{
    return 0;
}

uint32_t odl_stack_high_water(void)
{
    return 0;
}

static int in_slots(uintptr_t address, uint32_t bytes)
{
    const uintptr_t base = (uintptr_t)_sslots;
    return address >= base && address + bytes <= base + sizeof _sslots;
}

uint32_t odl_flash_erase_page(uintptr_t address)
{
    if (!in_slots(address, ODL_FLASH_PAGE_BYTES) || (address - (uintptr_t)_sslots) % ODL_FLASH_PAGE_BYTES) {
        return ODL_FLASH_OUTSIDE;
    }
    memset((void *)address, 0xFF, ODL_FLASH_PAGE_BYTES);
    return 0;
}

uint32_t odl_flash_program(uintptr_t address, uint32_t low, uint32_t high)
{
    if (!in_slots(address, 8u) || address % 8u) {
        return ODL_FLASH_OUTSIDE;
    }
    uint32_t *w = (uint32_t *)address;
    if (w[0] != 0xFFFFFFFFu || w[1] != 0xFFFFFFFFu) {
        return 1u << 3; /* PROGERR */
    }
    w[0] = low;
    w[1] = high;
    return 0;
}
