/* A loop-heavy workload shaped like the firmware's hot path (a float 1-D convolution), for measuring the
   emulation speed with and without the native instruction counter. */
#include <stdint.h>

void odl_idle(void);

volatile uint32_t iterations;
float input[256], weights[16], output[256];

__attribute__((noinline)) void work(uint32_t n) {
    for (uint32_t k = 0; k < n; k++) {
        for (uint32_t i = 0; i + 16 <= 256; i++) {
            float acc = output[i] * 0.5f;
            for (uint32_t j = 0; j < 16; j++) acc += input[i + j] * weights[j];
            output[i] = acc > 0.0f ? acc : 0.0f;
        }
    }
}

int main(void) {
    for (uint32_t i = 0; i < 256; i++) input[i] = (float)(i % 7) - 3.0f;
    for (uint32_t j = 0; j < 16; j++) weights[j] = 0.125f * (float)j;
    for (;;) {
        odl_idle();
        work(iterations);
    }
}
