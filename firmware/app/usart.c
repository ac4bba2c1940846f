/*
 * USART2 on PA2 (TX) / PA3 (RX), alternate function 7, 115200 8N1 from the 4 MHz MSI clock the STM32L496
 * runs on after reset. Register offsets are the STM32L4 USART's (RM0351 section 40.8), not the F1/F4 UART's.
 */
#include <stdint.h>

#include "app.h"

#define REG(base, offset) (*(volatile uint32_t *)((base) + (offset)))

#define RCC_BASE 0x40021000u
#define RCC_AHB2ENR 0x4Cu
#define RCC_APB1ENR1 0x58u
#define GPIOA_BASE 0x48000000u
#define GPIO_MODER 0x00u
#define GPIO_AFRL 0x20u
#define USART2_BASE 0x40004400u
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

#define ODL_CORE_CLOCK_HZ 4000000u
#define ODL_UART_BAUD 115200u

void odl_uart_init(void)
{
    REG(RCC_BASE, RCC_AHB2ENR) |= 1u << 0;   /* GPIOA */
    REG(RCC_BASE, RCC_APB1ENR1) |= 1u << 17; /* USART2 */
    uint32_t moder = REG(GPIOA_BASE, GPIO_MODER);
    moder &= ~((3u << 4) | (3u << 6));
    moder |= (2u << 4) | (2u << 6); /* PA2, PA3: alternate function */
    REG(GPIOA_BASE, GPIO_MODER) = moder;
    uint32_t afrl = REG(GPIOA_BASE, GPIO_AFRL);
    afrl &= ~((0xFu << 8) | (0xFu << 12));
    afrl |= (7u << 8) | (7u << 12);
    REG(GPIOA_BASE, GPIO_AFRL) = afrl;
    REG(USART2_BASE, USART_BRR) = (ODL_CORE_CLOCK_HZ + ODL_UART_BAUD / 2u) / ODL_UART_BAUD;
    REG(USART2_BASE, USART_CR1) = USART_CR1_UE | USART_CR1_RE | USART_CR1_TE;
}

int odl_uart_rx_ready(void)
{
    const uint32_t isr = REG(USART2_BASE, USART_ISR);
    /* An overrun stops reception until it is cleared; the frame's CRC then tells the host what was lost. */
    if (isr & USART_ISR_ORE) {
        REG(USART2_BASE, USART_ICR) = USART_ICR_ORECF;
    }
    return (isr & USART_ISR_RXNE) != 0;
}

uint8_t odl_uart_getc(void)
{
    return (uint8_t)REG(USART2_BASE, USART_RDR);
}

void odl_uart_putc(uint8_t byte)
{
    while ((REG(USART2_BASE, USART_ISR) & USART_ISR_TXE) == 0) {
    }
    REG(USART2_BASE, USART_TDR) = byte;
}
