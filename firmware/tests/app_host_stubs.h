/* app_host_stubs.c: what the host build of the application offers its tests. */
#ifndef ODL_APP_HOST_STUBS_H
#define ODL_APP_HOST_STUBS_H

#include <stdint.h>

#define HOST_UART_TX_BYTES 65536u
extern uint8_t host_uart_tx[HOST_UART_TX_BYTES];
extern uint32_t host_uart_tx_len; /* bytes sent since the test last cleared it (may exceed the buffer) */

/* Flash bank 2 erased, as a new chip's. */
void host_reset_flash(void);
void host_cycles_advance(uint32_t cycles);

#endif
