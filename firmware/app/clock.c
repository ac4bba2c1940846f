/*
 * The core clock (RM0351 chapter 6, "Reset and clock control"): from the 4 MHz MSI the STM32L496 starts on
 * to 80 MHz through the main PLL (MSI / 1 * 40 / 2: VCO 160 MHz), in the order the reference manual asks
 * for when the frequency goes up: voltage range 1 first (PWR_CR1.VOS, section 5.1.8), then 4 flash wait
 * states (FLASH_ACR.LATENCY, table 9: 4 WS up to 80 MHz in range 1, read back before going on), then the PLL,
 * then the switch. The ART prefetch and the instruction and data caches are turned on with the latency.
 *
 * Every wait is bounded. A step that times out leaves the core on MSI (the wait states only make it a little
 * slower there) and its status in odl_clock_status, reported by INFO; the console's baud rate follows
 * odl_clock_hz, so a board whose PLL does not lock still answers.
 */
#include "app.h"

#define REG(base, offset) (*(volatile uint32_t *)((base) + (offset)))

#define RCC_BASE 0x40021000u
#define RCC_CR 0x00u
#define RCC_CFGR 0x08u
#define RCC_PLLCFGR 0x0Cu
#define RCC_APB1ENR1 0x58u
#define PWR_BASE 0x40007000u
#define PWR_CR1 0x00u
#define PWR_SR2 0x14u
#define FLASH_ACR_ADDRESS 0x40022000u

#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)
#define RCC_CFGR_SW_MASK 0x3u
#define RCC_CFGR_SW_MSI 0x0u
#define RCC_CFGR_SW_PLL 0x3u
#define RCC_CFGR_SWS_SHIFT 2u
#define RCC_CFGR_PRESCALERS 0x3FF0u /* HPRE, PPRE1, PPRE2: 0 = not divided */
#define RCC_PLLCFGR_MSI 0x1u        /* PLLSRC */
#define RCC_PLLCFGR_N(n) ((uint32_t)(n) << 8)
#define RCC_PLLCFGR_PLLREN (1u << 24) /* PLLR = 0: divide by 2 */
#define RCC_APB1ENR1_PWREN (1u << 28)
#define PWR_CR1_VOS_MASK (3u << 9)
#define PWR_CR1_VOS_RANGE1 (1u << 9)
#define PWR_SR2_VOSF (1u << 10)
#define FLASH_ACR_LATENCY_MASK 0x7u
#define FLASH_ACR_PRFTEN (1u << 8)
#define FLASH_ACR_ICEN (1u << 9)
#define FLASH_ACR_DCEN (1u << 10)

#define MSI_RESET_HZ 4000000u
#define PLL_HZ 80000000u
#define PLL_N 40u
#define PLL_WAIT_STATES 4u

/* The PLL locks within ~40 us and VOSF clears within ~20 us (datasheet); a poll takes a few cycles at 4 MHz,
 * so this bound is far above both and still ends in a second or so when something never becomes ready. */
#define READY_POLLS 400000u

uint32_t odl_clock_hz = MSI_RESET_HZ;
uint32_t odl_clock_status = ODL_CLOCK_OK;

static int wait_set(volatile uint32_t *reg, uint32_t mask, uint32_t value)
{
    for (uint32_t i = 0; i < READY_POLLS; ++i) {
        if ((*reg & mask) == value) {
            return 1;
        }
    }
    return 0;
}

static uint32_t to_pll(void)
{
    REG(RCC_BASE, RCC_APB1ENR1) |= RCC_APB1ENR1_PWREN;
    (void)REG(RCC_BASE, RCC_APB1ENR1); /* the enable takes effect before PWR is touched (RM0351 6.2.17) */
    REG(PWR_BASE, PWR_CR1) = (REG(PWR_BASE, PWR_CR1) & ~PWR_CR1_VOS_MASK) | PWR_CR1_VOS_RANGE1;
    if (!wait_set(&REG(PWR_BASE, PWR_SR2), PWR_SR2_VOSF, 0u)) {
        return ODL_CLOCK_ERR_VOLTAGE;
    }
    volatile uint32_t *acr = &REG(FLASH_ACR_ADDRESS, 0u);
    *acr = (*acr & ~FLASH_ACR_LATENCY_MASK) | PLL_WAIT_STATES | FLASH_ACR_PRFTEN | FLASH_ACR_ICEN | FLASH_ACR_DCEN;
    if (!wait_set(acr, FLASH_ACR_LATENCY_MASK, PLL_WAIT_STATES)) {
        return ODL_CLOCK_ERR_LATENCY;
    }
    REG(RCC_BASE, RCC_PLLCFGR) = RCC_PLLCFGR_MSI | RCC_PLLCFGR_N(PLL_N) | RCC_PLLCFGR_PLLREN;
    REG(RCC_BASE, RCC_CR) |= RCC_CR_PLLON;
    if (!wait_set(&REG(RCC_BASE, RCC_CR), RCC_CR_PLLRDY, RCC_CR_PLLRDY)) {
        REG(RCC_BASE, RCC_CR) &= ~RCC_CR_PLLON;
        return ODL_CLOCK_ERR_PLL;
    }
    REG(RCC_BASE, RCC_CFGR) = (REG(RCC_BASE, RCC_CFGR) & ~(RCC_CFGR_SW_MASK | RCC_CFGR_PRESCALERS)) | RCC_CFGR_SW_PLL;
    if (!wait_set(&REG(RCC_BASE, RCC_CFGR), RCC_CFGR_SW_MASK << RCC_CFGR_SWS_SHIFT,
                  RCC_CFGR_SW_PLL << RCC_CFGR_SWS_SHIFT)) {
        REG(RCC_BASE, RCC_CFGR) &= ~RCC_CFGR_SW_MASK; /* back to MSI */
        (void)wait_set(&REG(RCC_BASE, RCC_CFGR), RCC_CFGR_SW_MASK << RCC_CFGR_SWS_SHIFT,
                       RCC_CFGR_SW_MSI << RCC_CFGR_SWS_SHIFT);
        return ODL_CLOCK_ERR_SWITCH;
    }
    odl_clock_hz = PLL_HZ;
    return ODL_CLOCK_OK;
}

void odl_clock_init(void)
{
    if (ODL_CLOCK_PLL) { /* a constant: the msi4 build drops to_pll() but still compiles it */
        odl_clock_status = to_pll();
    }
}
