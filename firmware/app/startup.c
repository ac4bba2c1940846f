/*
 * Vector table and reset handler of the STM32L496 application.
 *
 * The hard-float ABI lets the compiler use FPU registers anywhere, even for copies, and an FPU instruction
 * before CP10/CP11 are enabled in CPACR is a UsageFault on real silicon. So the very first instructions,
 * written in assembly, enable the FPU and set its mode; only then does C code run.
 */
#include <stdint.h>

#include "app.h"

extern uint32_t _sidata[], _sdata[], _edata[];
extern uint32_t _siodl_params[], _sodl_params[], _eodl_params[];
extern uint32_t _szero[], _ezero[];
extern uint32_t _sstack[], _estack[];

int main(void);
void odl_reset_handler(void);
void odl_startup(void);

/* Every other exception parks here: the simulators report the PC, a debugger finds it by name. */
static void odl_fault_handler(void)
{
    for (;;) {
    }
}

#define ODL_CORE_VECTORS 16u
#define ODL_IRQ_VECTORS 91u /* STM32L496: 91 maskable interrupt channels (RM0351 table 58) */

typedef void (*odl_vector_t)(void);

/* Entry 0 is the initial stack pointer; the hardware loads it before the reset handler runs.
 * (A range designator is a GNU extension; __extension__ keeps -pedantic quiet about this one.) */
__extension__ __attribute__((section(".isr_vector"), used)) static const odl_vector_t odl_vectors[ODL_CORE_VECTORS + ODL_IRQ_VECTORS] = {
    [0] = (odl_vector_t)(uintptr_t)_estack,
    [1] = odl_reset_handler,
    [2 ... ODL_CORE_VECTORS + ODL_IRQ_VECTORS - 1] = odl_fault_handler,
};

__attribute__((naked, noreturn)) void odl_reset_handler(void)
{
    __asm volatile(
        "ldr r0, =0xE000ED88\n" /* SCB->CPACR */
        "ldr r1, [r0]\n"
        "orr r1, r1, #(0xF << 20)\n" /* CP10 and CP11: full access */
        "str r1, [r0]\n"
        "dsb\n"
        "isb\n"
        /* Subnormals flushed to zero (FPSCR.FZ), as TensorFlow runs its CPU kernels: otherwise a value below
         * FLT_MIN is zero there and nonzero here, and a ReLU on it decides differently. No handler uses the
         * FPU for arithmetic, so FPDSCR (the mode handlers start in) stays at its reset value. */
        "vmrs r1, fpscr\n"
        "orr r1, r1, #(1 << 24)\n"
        "vmsr fpscr, r1\n"
        "b odl_startup\n");
}

static void copy_words(uint32_t *dst, const uint32_t *src, const uint32_t *end)
{
    while (dst < end) {
        *dst++ = *src++;
    }
}

void odl_startup(void)
{
    copy_words(_sdata, _sidata, _edata);
    copy_words(_sodl_params, _siodl_params, _eodl_params);
    for (uint32_t *p = _szero; p < _ezero; ++p) {
        *p = 0u;
    }
    odl_stack_paint();
    (void)main();
    odl_fault_handler();
}
