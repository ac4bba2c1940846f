/*
 * fixedpoint.c - the integer arithmetic of TensorFlow Lite's int8 reference kernels (gemmlowp's fixed
 * point), written from their definitions: a real multiplier as a Q31 mantissa and a power of two, applied
 * with two roundings (TFLite's default build, TFLITE_SINGLE_ROUNDING off).
 */
#include <math.h>
#include <stdint.h>

#include "odl_int8.h"
#include "odl_int8_layers.h"

odl_qmult_t odl_quantize_multiplier(double real)
{
    odl_qmult_t m = {0, 0};
    if (!(real > 0.0)) {
        return m;
    }
    int shift = 0;
    const double mantissa = frexp(real, &shift); /* in [0.5, 1) */
    /* mantissa * 2^31 is exact; llround rounds half away from zero, as TfLiteRound. */
    long long fixed = llround(mantissa * 2147483648.0);
    if (fixed == 2147483648LL) { /* rounded up to 1.0 */
        fixed /= 2;
        ++shift;
    }
    if (shift < -31) { /* below what a Q31 multiplier can express: 0, as TFLite */
        shift = 0;
        fixed = 0;
    }
    m.multiplier = (int32_t)fixed;
    m.shift = shift;
    return m;
}

/* The exported names of the inline helpers (odl_int8_layers.h), for the kernel tests and the host. */
int32_t odl_saturating_rounding_doubling_high_mul(int32_t a, int32_t b)
{
    return odl_srdhm(a, b);
}

int32_t odl_rounding_divide_by_pot(int32_t x, int exponent)
{
    return odl_rdbpot(x, exponent);
}

int32_t odl_multiply_by_quantized_multiplier(int32_t x, odl_qmult_t m)
{
    return odl_mbqm(x, m);
}

const int8_t *odl_int8_row(const int8_t *w, unsigned bits, uint32_t first, unsigned n, int8_t *row, int32_t *sum)
{
    const int8_t *r = w + first;
    if (bits != 8u) {
        for (unsigned i = 0; i < n; ++i) {
            row[i] = (int8_t)odl_int8_weight(w, bits, first + i);
        }
        r = row;
    }
    int32_t s = 0;
    for (unsigned i = 0; i < n; ++i) {
        s += r[i];
    }
    *sum = s;
    return r;
}

int32_t odl_dot_int8_ref(const int8_t *x, const int8_t *w, unsigned n)
{
    int32_t acc = 0;
    for (unsigned i = 0; i < n; ++i) {
        acc += (int32_t)x[i] * (int32_t)w[i];
    }
    return acc;
}

#if defined(__ARM_FEATURE_SIMD32) && __ARM_FEATURE_SIMD32
#include <string.h>

/* Bytes 0 and 2, and bytes 1 and 3 (SXTB16 with a rotation by 8, one instruction), of a word as two int16
 * halves each. */
static inline uint32_t sxtb16(uint32_t v)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(v));
    return r;
}

static inline uint32_t sxtb16_ror8(uint32_t v)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

/* acc + lo(a) lo(b) + hi(a) hi(b) on int16 halves. */
static inline int32_t smlad(uint32_t a, uint32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}

static inline uint32_t load_word(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4u); /* the M4 loads unaligned words in one LDR */
    return v;
}

/* Four products per word pair: both words widened to int16 pairs (bytes 0 and 2, then 1 and 3), two SMLADs.
 * Integer sums are exact in any order, so this equals the reference bit for bit. */
int32_t odl_dot_int8(const int8_t *x, const int8_t *w, unsigned n)
{
    int32_t acc = 0;
    for (unsigned words = n / 4u; words > 0u; --words) {
        const uint32_t xa = load_word(x), wa = load_word(w);
        x += 4;
        w += 4;
        acc = smlad(sxtb16(xa), sxtb16(wa), acc);
        acc = smlad(sxtb16_ror8(xa), sxtb16_ror8(wa), acc);
    }
    for (unsigned i = 0; i < n % 4u; ++i) {
        acc += (int32_t)x[i] * (int32_t)w[i];
    }
    return acc;
}

/* Two inner products with the same weights (two output positions of a convolution): each weight word is
 * loaded and widened once for both. */
void odl_dot2_int8(const int8_t *x0, const int8_t *x1, const int8_t *w, unsigned n, int32_t *acc0, int32_t *acc1)
{
    int32_t a0 = 0, a1 = 0;
    for (unsigned words = n / 4u; words > 0u; --words) {
        const uint32_t wa = load_word(w), x0a = load_word(x0), x1a = load_word(x1);
        w += 4;
        x0 += 4;
        x1 += 4;
        const uint32_t w02 = sxtb16(wa), w13 = sxtb16_ror8(wa);
        a0 = smlad(sxtb16(x0a), w02, a0);
        a0 = smlad(sxtb16_ror8(x0a), w13, a0);
        a1 = smlad(sxtb16(x1a), w02, a1);
        a1 = smlad(sxtb16_ror8(x1a), w13, a1);
    }
    for (unsigned i = 0; i < n % 4u; ++i) {
        a0 += (int32_t)x0[i] * (int32_t)w[i];
        a1 += (int32_t)x1[i] * (int32_t)w[i];
    }
    *acc0 = a0;
    *acc1 = a1;
}
#else
int32_t odl_dot_int8(const int8_t *x, const int8_t *w, unsigned n)
{
    return odl_dot_int8_ref(x, w, n);
}

void odl_dot2_int8(const int8_t *x0, const int8_t *x1, const int8_t *w, unsigned n, int32_t *acc0, int32_t *acc1)
{
    *acc0 = odl_dot_int8_ref(x0, w, n);
    *acc1 = odl_dot_int8_ref(x1, w, n);
}
#endif
