/* A command loop like the real firmware's: the host writes cmd/arg0/arg1 while the CPU is parked in odl_idle,
   then runs it until it parks again. Each command exercises one part of the board model. */
#include <stdint.h>

#define USART2_ISR (*(volatile uint32_t *)0x4000441CU)
#define USART2_RDR (*(volatile uint32_t *)0x40004424U)
#define USART2_TDR (*(volatile uint32_t *)0x40004428U)
#define USART_ISR_RXNE (1U << 5)
#define USART_ISR_TXE (1U << 7)
#define RCC_AHB2ENR (*(volatile uint32_t *)0x4002104CU)
#define GPIOA_MODER (*(volatile uint32_t *)0x48000000U)

enum { CMD_NONE, CMD_STORE, CMD_LOAD, CMD_ECHO, CMD_FLOAT, CMD_HANG, CMD_CALL, CMD_TRAP };

void odl_idle(void);

volatile uint32_t cmd, arg0, arg1, result;
volatile float fa, fb, fc, fresult;

static void put(char c) {
    while (!(USART2_ISR & USART_ISR_TXE)) {
    }
    USART2_TDR = (uint8_t)c;
}

/* Out of line, so a test can tell from the symbol's extent that the fault PC is the guest's access. */
__attribute__((noinline)) void store32(uint32_t address, uint32_t value) { *(volatile uint32_t *)address = value; }
__attribute__((noinline)) uint32_t load32(uint32_t address) { return *(volatile uint32_t *)address; }

__attribute__((noinline)) static float compute(float a, float b, float c) { return a / b * c - a; }

int main(void) {
    RCC_AHB2ENR |= 1U;
    GPIOA_MODER = (GPIOA_MODER & ~(3U << 4)) | (2U << 4);
    for (const char *s = "hello\n"; *s; s++) put(*s);
    for (;;) {
        odl_idle();
        switch (cmd) {
        case CMD_STORE: store32(arg0, arg1); break;
        case CMD_LOAD: result = load32(arg0); break;
        case CMD_ECHO:
            while (USART2_ISR & USART_ISR_RXNE) put((char)USART2_RDR);
            break;
        case CMD_FLOAT: fresult = compute(fa, fb, fc); break;
        case CMD_HANG:
            for (;;) {
            }
        case CMD_CALL: ((void (*)(void))arg0)(); break;
        case CMD_TRAP: __builtin_trap();
        default: break;
        }
        cmd = CMD_NONE;
    }
}
