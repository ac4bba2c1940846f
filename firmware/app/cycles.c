/*
 * Core cycles, from the DWT cycle counter (ARMv7-M architecture reference manual C1.8): the debug block's
 * trace enable (DEMCR.TRCENA) first, then CYCCNTENA. It wraps after 2^32 cycles (53 s at 80 MHz); a
 * difference of two readings is right across one wrap.
 */
#include "app.h"

#define DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define DEMCR_TRCENA (1u << 24)
#define DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define DWT_CTRL_CYCCNTENA (1u << 0)
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)

void odl_cycles_init(void)
{
    DEMCR |= DEMCR_TRCENA;
    DWT_CYCCNT = 0u;
    DWT_CTRL |= DWT_CTRL_CYCCNTENA;
}

uint32_t odl_cycles(void)
{
    return DWT_CYCCNT;
}
