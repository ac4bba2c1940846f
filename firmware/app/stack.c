/*
 * Stack high-water mark: the reset handler paints the reserved stack with a pattern; the deepest word
 * that no longer holds it tells how much stack the firmware has ever used.
 */
#include <stdint.h>

#include "app.h"

#define ODL_STACK_PAINT 0xC5AC5AC5u

extern uint32_t _sstack[], _estack[];

void odl_stack_paint(void)
{
    uint32_t *sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    /* Stop short of the live frame of this function and its caller. */
    for (uint32_t *p = _sstack; p < sp - 16; ++p) {
        *p = ODL_STACK_PAINT;
    }
}

uint32_t odl_stack_size(void)
{
    return (uint32_t)((uintptr_t)_estack - (uintptr_t)_sstack);
}

uint32_t odl_stack_high_water(void)
{
    const uint32_t *p = _sstack;
    while (p < _estack && *p == ODL_STACK_PAINT) {
        ++p;
    }
    return (uint32_t)((uintptr_t)_estack - (uintptr_t)p);
}
