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

int32_t odl_saturating_rounding_doubling_high_mul(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudged = ab + (ab >= 0 ? (1LL << 30) : (1LL - (1LL << 30)));
    /* Division by 2^31 truncating toward zero, without a 64-bit division call. */
    return (int32_t)(nudged >= 0 ? nudged >> 31 : -((-nudged) >> 31));
}

int32_t odl_rounding_divide_by_pot(int32_t x, int exponent)
{
    if (exponent <= 0) {
        return x;
    }
    const int32_t mask = (int32_t)((1LL << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    /* >> of a negative int is an arithmetic shift on every compiler this builds with, as TFLite assumes. */
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

int32_t odl_multiply_by_quantized_multiplier(int32_t x, odl_qmult_t m)
{
    const int left = m.shift > 0 ? m.shift : 0;
    const int right = m.shift > 0 ? 0 : -m.shift;
    /* TFLite multiplies by 2^left in int32: it wraps on overflow, so does this (defined on uint32_t). */
    const int32_t shifted = (int32_t)((uint32_t)x << left);
    return odl_rounding_divide_by_pot(odl_saturating_rounding_doubling_high_mul(shifted, m.multiplier), right);
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
#include <arm_acle.h>
#include <string.h>

/* Four products per iteration: SXTB16 widens bytes 0 and 2 (then 1 and 3, after a rotation by 8) of each
 * word into two int16 halves, SMLAD multiplies both pairs and adds them. Integer sums are exact in any
 * order, so this equals the reference bit for bit. */
int32_t odl_dot_int8(const int8_t *x, const int8_t *w, unsigned n)
{
    int32_t acc = 0;
    unsigned i = 0;
    for (; i + 4u <= n; i += 4u) {
        uint32_t xa, wa;
        memcpy(&xa, x + i, 4u); /* the M4 loads unaligned words in one LDR */
        memcpy(&wa, w + i, 4u);
        const uint32_t xr = (xa >> 8) | (xa << 24), wr = (wa >> 8) | (wa << 24);
        acc = __smlad(__sxtb16((int32_t)xa), __sxtb16((int32_t)wa), acc);
        acc = __smlad(__sxtb16((int32_t)xr), __sxtb16((int32_t)wr), acc);
    }
    for (; i < n; ++i) {
        acc += (int32_t)x[i] * (int32_t)w[i];
    }
    return acc;
}
#else
int32_t odl_dot_int8(const int8_t *x, const int8_t *w, unsigned n)
{
    return odl_dot_int8_ref(x, w, n);
}
#endif
