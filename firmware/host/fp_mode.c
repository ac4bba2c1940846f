/* The float mode of the host library: subnormals flushed to zero, as TensorFlow runs its CPU kernels
 * (x86 MXCSR FTZ and DAZ, Arm FPCR.FZ) and as the firmware runs the Cortex-M4F (FPSCR.FZ, set at boot).
 * Without it a value below FLT_MIN (1.2e-38) is zero in TensorFlow and nonzero here, and a ReLU decides
 * differently on it: a whole gradient row apart, not a rounding.
 *
 * The mode belongs to the calling thread, which in pyodl is Python's: numpy must keep IEEE subnormals, so
 * pyodl.network.host sets the mode around each call and restores what it found. */
#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define FLUSH_BITS 0x8040u /* MXCSR: FTZ (bit 15) and DAZ (bit 6) */

uint64_t odl_host_flush_subnormals(void)
{
    const unsigned int previous = _mm_getcsr();
    _mm_setcsr(previous | FLUSH_BITS);
    return previous;
}

void odl_host_restore_fp_mode(uint64_t previous)
{
    _mm_setcsr((unsigned int)previous);
}
#elif defined(__aarch64__)
#define FLUSH_BITS (UINT64_C(1) << 24) /* FPCR.FZ: inputs and results */

uint64_t odl_host_flush_subnormals(void)
{
    uint64_t previous;
    __asm__ volatile("mrs %0, fpcr" : "=r"(previous));
    __asm__ volatile("msr fpcr, %0" : : "r"(previous | FLUSH_BITS));
    return previous;
}

void odl_host_restore_fp_mode(uint64_t previous)
{
    __asm__ volatile("msr fpcr, %0" : : "r"(previous));
}
#else
#error "pyodl's host library needs to flush subnormals as TensorFlow does: add this CPU's float control register"
#endif
