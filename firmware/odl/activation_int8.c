/*
 * activation_int8.c - int8 ReLU/ReLU6 (a clamp: the output keeps the input's scale and zero point) and the
 * final softmax as TFLite's reference int8 SOFTMAX computes it: gemmlowp fixed point, exp of the
 * differences to the row's maximum in Q5.26, their sum in Q12.19, its reciprocal by Newton-Raphson,
 * output scale 1/256 and zero point -128; and the tables of tanh, sigmoid and LeakyReLU.
 */
#include <math.h>
#include <stddef.h>

#include "odl_int8_layers.h"

void odl_clamp_int8(const int8_t *x, unsigned n, const odl_int8_io_t *io, int8_t *y)
{
    for (unsigned i = 0; i < n; ++i) {
        y[i] = odl_int8_saturate(x[i], io);
    }
}

/* The table of a tanh, sigmoid or LeakyReLU from `in` to `out`, as TFLite's kernels make theirs: tanh and
 * sigmoid in float32 from the libm functions (LUTPopulate), LeakyReLU with two fixed-point multipliers
 * (QuantizeLeakyRelu), whose ratios TFLite forms in float32. Writes only when `lut` is not NULL. */
odl_status_t odl_int8_activation_table(uint8_t act, float alpha, odl_qparams_t in, odl_qparams_t out, int8_t *lut)
{
    if (act == ODL_ACT_LEAKY_RELU) {
        const float identity_ratio = in.scale / out.scale;
        const float alpha_ratio = (in.scale * alpha) / out.scale;
        const odl_qmult_t m_id = odl_quantize_multiplier((double)identity_ratio);
        const odl_qmult_t m_alpha = odl_quantize_multiplier((double)alpha_ratio);
        if (m_id.shift > 30 || m_alpha.shift > 30 || !isfinite(identity_ratio) ||
            !isfinite(alpha_ratio) || alpha_ratio < 0.0f) {
            return ODL_ERR_QUANT_RANGE;
        }
        for (int32_t v = -128; lut != NULL && v <= 127; ++v) {
            const int32_t d = v - in.zero_point;
            int32_t y = out.zero_point + odl_mbqm(d, d >= 0 ? m_id : m_alpha);
            y = y < -128 ? -128 : (y > 127 ? 127 : y);
            lut[v + 128] = (int8_t)y;
        }
        return ODL_OK;
    }
    const float inverse = 1.0f / out.scale;
    for (int32_t v = -128; lut != NULL && v <= 127; ++v) {
        const float d = in.scale * (float)(v - in.zero_point);
        const float t = act == ODL_ACT_TANH ? tanhf(d) : 1.0f / (1.0f + expf(-d));
        const float y = roundf(t * inverse) + (float)out.zero_point;
        lut[v + 128] = (int8_t)(y != y ? 0 : (y <= -128.0f ? -128 : (y >= 127.0f ? 127 : (int32_t)y)));
    }
    return ODL_OK;
}

#define SOFTMAX_INPUT_BITS 5        /* integer bits of the scaled differences (Q5.26) */
#define SOFTMAX_ACCUMULATION_BITS 12 /* integer bits of the sum of exponentials */

static int32_t wrapping_add(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

static int32_t srdhm(int32_t a, int32_t b)
{
    return odl_srdhm(a, b);
}

/* x * 2^n, saturated to int32. */
static int32_t saturating_shift_left(int32_t x, int n)
{
    const int32_t limit = (int32_t)((1u << (31 - n)) - 1u);
    if (x > limit) {
        return INT32_MAX;
    }
    if (x < -limit) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << n);
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out: a Taylor polynomial around -1/8. */
static int32_t exp_quarter_interval(int32_t a)
{
    const int32_t exp_minus_one_eighth = 1895147668;
    const int32_t one_third = 715827883;
    const int32_t x = wrapping_add(a, 1 << 28); /* a + 1/8 */
    const int32_t x2 = srdhm(x, x);
    const int32_t x3 = srdhm(x2, x);
    const int32_t x4 = srdhm(x2, x2);
    const int32_t x4_over_4 = odl_rdbpot(x4, 2);
    const int32_t poly = odl_rdbpot(
        wrapping_add(srdhm(wrapping_add(x4_over_4, x3), one_third), x2), 1);
    return wrapping_add(exp_minus_one_eighth, srdhm(exp_minus_one_eighth, wrapping_add(x, poly)));
}

/* exp(a) for a <= 0 in Q5.26, result in Q0.31: the remainder modulo 1/4 by the polynomial, then a factor
 * exp(-2^e) for each bit of the rest. */
static int32_t exp_on_negative_values(int32_t a)
{
    static const int32_t factors[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int32_t quarter = 1 << 24;
    const int32_t a_mod = wrapping_add(a & (quarter - 1), -quarter);
    int32_t result = exp_quarter_interval(saturating_shift_left(a_mod, SOFTMAX_INPUT_BITS));
    const int32_t remainder = wrapping_add(a_mod, -a);
    for (int e = -2; e <= 4; ++e) {
        if ((remainder & (1 << (26 + e))) != 0) {
            result = srdhm(result, factors[e + 2]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + a) for a in [0, 1) in Q0.31, by three Newton-Raphson steps from 48/17 - 32/17 d. */
static int32_t one_over_one_plus_x(int32_t a)
{
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    const int32_t constant_48_over_17 = 1515870810;
    const int32_t constant_neg_32_over_17 = -1010580540;
    int32_t x = wrapping_add(constant_48_over_17, srdhm(half_denominator, constant_neg_32_over_17));
    for (int i = 0; i < 3; ++i) {
        const int32_t one_minus_dx = wrapping_add(1 << 29, -srdhm(half_denominator, x));
        x = wrapping_add(x, saturating_shift_left(srdhm(x, one_minus_dx), 2));
    }
    return saturating_shift_left(x, 1);
}

void odl_softmax_params(float in_scale, odl_qmult_t *beta_mult, int32_t *diff_min)
{
    double real = (double)in_scale * (double)(1 << (31 - SOFTMAX_INPUT_BITS));
    if (real > 2147483647.0) {
        real = 2147483647.0;
    }
    *beta_mult = odl_quantize_multiplier(real);
    const double radius = (double)((1 << SOFTMAX_INPUT_BITS) - 1) * (double)(1LL << (31 - SOFTMAX_INPUT_BITS)) /
                          (double)(1LL << beta_mult->shift);
    *diff_min = -(int32_t)floor(radius);
}

static unsigned leading_zeros(uint32_t v)
{
    unsigned n = 0;
    while (n < 32u && (v & 0x80000000u) == 0u) {
        v <<= 1;
        ++n;
    }
    return n;
}

void odl_softmax_forward_int8(const int8_t *x, unsigned n, odl_qmult_t beta_mult, int32_t diff_min, int8_t *y)
{
    int32_t max = -128;
    for (unsigned i = 0; i < n; ++i) {
        max = x[i] > max ? x[i] : max;
    }
    int32_t sum = 0;
    for (unsigned i = 0; i < n; ++i) {
        const int32_t d = (int32_t)x[i] - max;
        if (d >= diff_min) {
            const int32_t scaled = srdhm((int32_t)((uint32_t)d << beta_mult.shift), beta_mult.multiplier);
            sum += odl_rdbpot(exp_on_negative_values(scaled), SOFTMAX_ACCUMULATION_BITS);
        }
    }
    const unsigned headroom = leading_zeros((uint32_t)sum);
    const int bits_over_unit = SOFTMAX_ACCUMULATION_BITS - (int)headroom;
    const int32_t shifted = (int32_t)(((uint32_t)sum << headroom) - (1u << 31));
    const int32_t reciprocal = one_over_one_plus_x(shifted);
    for (unsigned i = 0; i < n; ++i) {
        const int32_t d = (int32_t)x[i] - max;
        int32_t v = -128;
        if (d >= diff_min) {
            const int32_t scaled = srdhm((int32_t)((uint32_t)d << beta_mult.shift), beta_mult.multiplier);
            const int32_t e = exp_on_negative_values(scaled);
            v = odl_rdbpot(srdhm(reciprocal, e), bits_over_unit + 31 - 8) - 128;
            v = v < -128 ? -128 : (v > 127 ? 127 : v);
        }
        y[i] = (int8_t)v;
    }
}
