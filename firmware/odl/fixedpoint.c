/*
 * fixedpoint.c - the integer arithmetic of TensorFlow Lite's int8 reference kernels (gemmlowp's fixed
 * point), written from their definitions: a real multiplier as a Q31 mantissa and a power of two, applied
 * with two roundings (TFLite's default build, TFLITE_SINGLE_ROUNDING off).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

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

/* One group's two words stored at dst, their sum added to *sum. */
static inline void put_group(uint32_t w02, uint32_t w13, uint8_t *dst, int32_t *sum)
{
    memcpy(dst, &w02, 4u);
    memcpy(dst + 4, &w13, 4u);
    *sum = odl_smlad(w13, 0x00010001u, odl_smlad(w02, 0x00010001u, *sum));
}

/* Four 4-bit fields in the low 16 bits of v: fields 0 and 2 into the two halves' low bits, 1 and 3 likewise,
 * sign-extended lane by lane ((v ^ 8) - 8). */
static inline void put_nibbles(uint32_t v, uint8_t *dst, int32_t *sum)
{
    const uint32_t lo = (v & 0xFu) | ((v & 0xF00u) << 8), hi = ((v >> 4) & 0xFu) | ((v & 0xF000u) << 4);
    put_group(odl_ssub16(lo ^ 0x00080008u, 0x00080008u), odl_ssub16(hi ^ 0x00080008u, 0x00080008u), dst, sum);
}

/* Four 2-bit fields in the low 8 bits of v, likewise ((v ^ 2) - 2). */
static inline void put_crumbs(uint32_t v, uint8_t *dst, int32_t *sum)
{
    const uint32_t lo = (v & 0x3u) | ((v & 0x30u) << 12), hi = ((v >> 2) & 0x3u) | ((v & 0xC0u) << 10);
    put_group(odl_ssub16(lo ^ 0x00020002u, 0x00020002u), odl_ssub16(hi ^ 0x00020002u, 0x00020002u), dst, sum);
}

int32_t odl_int8_widen(const int8_t *w, unsigned bits, uint32_t first, unsigned groups, uint8_t *dst,
                       unsigned stride)
{
    int32_t sum = 0;
    if (bits == 8u) {
        const int8_t *p = w + first;
        for (unsigned q = 0; q < groups; ++q, p += 4, dst += stride) {
            uint32_t v;
            memcpy(&v, p, 4u);
            put_group(odl_sxtb16(v), odl_sxtb16_ror8(v), dst, &sum);
        }
        return sum;
    }
    /* A sub-byte run starts at a fixed bit of its first byte: every group of four fields (16 or 8 bits) then
     * starts at that bit of its own first byte. */
    const uint8_t *p = (const uint8_t *)w + first * bits / 8u;
    const unsigned shift = first * bits % 8u;
    if (bits == 4u) {
        for (unsigned q = 0; q < groups; ++q, p += 2, dst += stride) {
            uint32_t v = (uint32_t)p[0] | ((uint32_t)p[1] << 8);
            if (shift != 0u) {
                v = (v | ((uint32_t)p[2] << 16)) >> 4;
            }
            put_nibbles(v, dst, &sum);
        }
        return sum;
    }
    if (bits == 2u) {
        for (unsigned q = 0; q < groups; ++q, ++p, dst += stride) {
            uint32_t v = p[0];
            if (shift != 0u) {
                v = (v | ((uint32_t)p[1] << 8)) >> shift;
            }
            put_crumbs(v, dst, &sum);
        }
        return sum;
    }
    for (unsigned q = 0; q < groups; ++q, dst += stride) { /* another width: field by field */
        const uint32_t i = first + 4u * q;
        const int32_t a0 = odl_int8_weight(w, bits, i), a1 = odl_int8_weight(w, bits, i + 1u);
        const int32_t a2 = odl_int8_weight(w, bits, i + 2u), a3 = odl_int8_weight(w, bits, i + 3u);
        put_group(odl_pack16(a0, a2), odl_pack16(a1, a3), dst, &sum);
    }
    return sum;
}

int32_t odl_dot_int8_zp_ref(const int8_t *x, const int8_t *w, unsigned n, int32_t zp)
{
    int32_t acc = 0;
    for (unsigned i = 0; i < n; ++i) {
        acc += (int32_t)w[i] * ((int32_t)x[i] - zp);
    }
    return acc;
}

/* sum w (x - zp), four products per word pair: the inputs widened with -zp added in both halves (SXTAB16),
 * the weights widened (SXTB16), two SMLADs. */
int32_t odl_dot_int8_zp(const int8_t *x, const int8_t *w, unsigned n, int32_t zp)
{
    const uint32_t off = odl_pack16(-zp, -zp);
    int32_t acc = 0;
    for (unsigned words = n / 4u; words > 0u; --words) {
        uint32_t xa, wa;
        memcpy(&xa, x, 4u);
        memcpy(&wa, w, 4u);
        x += 4;
        w += 4;
        acc = odl_smlad(odl_sxtab16(off, xa), odl_sxtb16(wa), acc);
        acc = odl_smlad(odl_sxtab16_ror8(off, xa), odl_sxtb16_ror8(wa), acc);
    }
    for (unsigned i = 0; i < n % 4u; ++i) {
        acc += (int32_t)w[i] * ((int32_t)x[i] - zp);
    }
    return acc;
}
