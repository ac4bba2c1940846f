/*
 * The console UART, 115200 8N1 at whatever clock odl_clock_init left (odl_clock_hz). Build option
 * ODL_CONSOLE_LPUART1 (default 1): LPUART1 on PG7 (TX) / PG8 (RX), alternate function 8, the NUCLEO-L496ZG's
 * ST-LINK virtual COM port. Port G is powered from VDDIO2, which stays off until PWR_CR2.IOSV is set
 * (RM0351 5.1.3). With 0: USART2 on PA2 (TX) / PA3 (RX), alternate function 7, for boards or adapters wired
 * there. Both have the STM32L4 USART register layout (RM0351 sections 40.8 and 41.7); the LPUART's baud
 * rate register holds 256 * f / baud (41.4.4) where the USART's holds f / baud (40.5.4).
 */
#include <stdint.h>

#include "app.h"

#define REG(base, offset) (*(volatile uint32_t *)((base) + (offset)))

#define RCC_BASE 0x40021000u
#define RCC_AHB2ENR 0x4Cu
#define RCC_APB1ENR1 0x58u
#define RCC_APB1ENR2 0x5Cu
#define PWR_BASE 0x40007000u
#define PWR_CR2 0x04u
#define GPIO_MODER 0x00u
#define GPIO_AFRL 0x20u
#define GPIO_AFRH 0x24u
#define USART_CR1 0x00u
#define USART_BRR 0x0Cu
#define USART_ISR 0x1Cu
#define USART_ICR 0x20u
#define USART_RDR 0x24u
#define USART_TDR 0x28u

#define USART_CR1_UE (1u << 0)
#define USART_CR1_RE (1u << 2)
#define USART_CR1_TE (1u << 3)
#define USART_ISR_ORE (1u << 3)
#define USART_ISR_RXNE (1u << 5)
#define USART_ISR_TXE (1u << 7)
#define USART_ICR_ORECF (1u << 3)

#define ODL_UART_BAUD 115200u

#ifndef ODL_CONSOLE_LPUART1
#define ODL_CONSOLE_LPUART1 1
#endif

#if ODL_CONSOLE_LPUART1
#define CONSOLE_BASE 0x40008000u /* LPUART1 */
#define GPIO_BASE 0x48001800u    /* GPIOG */
#else
#define CONSOLE_BASE 0x40004400u /* USART2 */
#define GPIO_BASE 0x48000000u    /* GPIOA */
#endif

/* Which UART is the console, for the simulators (they read it from the ELF) and a debugger. */
__attribute__((used, section(".rodata.odl_board"))) const uint32_t odl_console_uart = CONSOLE_BASE;

/* Pin `pin` of GPIO_BASE to alternate function `af`. */
static void alternate(unsigned pin, uint32_t af)
{
    REG(GPIO_BASE, GPIO_MODER) = (REG(GPIO_BASE, GPIO_MODER) & ~(3u << (2u * pin))) | (2u << (2u * pin));
    const uint32_t afr = pin < 8u ? GPIO_AFRL : GPIO_AFRH;
    const uint32_t shift = 4u * (pin % 8u);
    REG(GPIO_BASE, afr) = (REG(GPIO_BASE, afr) & ~(0xFu << shift)) | (af << shift);
}

void odl_uart_init(void)
{
#if ODL_CONSOLE_LPUART1
    REG(RCC_BASE, RCC_APB1ENR1) |= 1u << 28; /* PWR */
    (void)REG(RCC_BASE, RCC_APB1ENR1);
    REG(PWR_BASE, PWR_CR2) |= 1u << 9; /* IOSV: VDDIO2 valid, port G powered */
    REG(RCC_BASE, RCC_AHB2ENR) |= 1u << 6; /* GPIOG */
    REG(RCC_BASE, RCC_APB1ENR2) |= 1u << 0; /* LPUART1, clocked by PCLK1 (RCC_CCIPR.LPUART1SEL reset value) */
    (void)REG(RCC_BASE, RCC_APB1ENR2);
    alternate(7u, 8u);
    alternate(8u, 8u);
    /* 256 * f / baud in 64 bits: 256 * 80 MHz does not fit 32. */
    REG(CONSOLE_BASE, USART_BRR) = (uint32_t)((256ull * odl_clock_hz + ODL_UART_BAUD / 2u) / ODL_UART_BAUD);
#else
    REG(RCC_BASE, RCC_AHB2ENR) |= 1u << 0;   /* GPIOA */
    REG(RCC_BASE, RCC_APB1ENR1) |= 1u << 17; /* USART2 */
    (void)REG(RCC_BASE, RCC_APB1ENR1);
    alternate(2u, 7u);
    alternate(3u, 7u);
    REG(CONSOLE_BASE, USART_BRR) = (odl_clock_hz + ODL_UART_BAUD / 2u) / ODL_UART_BAUD;
#endif
    REG(CONSOLE_BASE, USART_CR1) = USART_CR1_UE | USART_CR1_RE | USART_CR1_TE;
}

int odl_uart_rx_ready(void)
{
    const uint32_t isr = REG(CONSOLE_BASE, USART_ISR);
    /* An overrun stops reception until it is cleared; the frame's CRC then tells the host what was lost. */
    if (isr & USART_ISR_ORE) {
        REG(CONSOLE_BASE, USART_ICR) = USART_ICR_ORECF;
    }
    return (isr & USART_ISR_RXNE) != 0;
}

uint8_t odl_uart_getc(void)
{
    return (uint8_t)REG(CONSOLE_BASE, USART_RDR);
}

void odl_uart_putc(uint8_t byte)
{
    while ((REG(CONSOLE_BASE, USART_ISR) & USART_ISR_TXE) == 0) {
    }
    REG(CONSOLE_BASE, USART_TDR) = byte;
}
