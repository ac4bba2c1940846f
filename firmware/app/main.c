/*
 * The command loop: serve the RAM mailbox, feed console bytes to the frame parser, otherwise drop an overdue
 * partial frame and idle.
 */
#include "app.h"

/* Kept as a real call (noinline, and the asm is opaque) so simulators can stop at its address. */
__attribute__((noinline)) void odl_idle(void)
{
    __asm volatile("" ::: "memory");
}

int main(void)
{
    odl_clock_init();
    odl_cycles_init();
    odl_uart_init();
    odl_app_init();
    for (;;) {
        if (odl_mailbox.command != ODL_CMD_NONE) {
            odl_app_execute();
        } else if (odl_uart_rx_ready()) {
            odl_frames_feed(odl_uart_getc());
        } else {
            odl_frames_poll();
            odl_idle();
        }
    }
}
