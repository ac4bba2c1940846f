/*
 * Each fast kernel against its reference (the portable loop it replaces), bit for bit, on random shapes:
 * sizes from 1 up, odd ones included, so that every tile and every remainder (rows, filters) runs. The fast
 * kernels keep each output's accumulator and summation order, so with -ffp-contract=off nothing may differ,
 * not even in the last bit; any difference fails.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "odl_int8_layers.h"
#include "odl_layers.h"
#include "testutil.h"

#define MAX_N 40u
#define MAX_C 9u
#define MAX_K 7u
#define MAX_F 13u

typedef struct {
    unsigned n, c, k, f;
} shape_t;

/* A convolution's shape: input length n >= kernel size k, channels c, filters f, each from 1. */
static shape_t random_shape(test_rng_t *rng)
{
    shape_t s;
    s.k = test_int(rng, 1, MAX_K);
    s.n = test_int(rng, s.k, MAX_N);
    s.c = test_int(rng, 1, MAX_C);
    s.f = test_int(rng, 1, MAX_F);
    return s;
}

static float x[MAX_N * MAX_C], w[MAX_K * MAX_C * MAX_F], b[MAX_F];
static float fast[MAX_N * MAX_F], ref[MAX_N * MAX_F];

static void conv1d_forward(test_rng_t *rng)
{
    const shape_t s = random_shape(rng);
    const unsigned n = s.n, c = s.c, k = s.k, f = s.f;
    test_fill(rng, x, n * c, -2.0f, 2.0f);
    test_fill(rng, w, k * c * f, -1.0f, 1.0f);
    test_fill(rng, b, f, -0.5f, 0.5f);
    const unsigned outputs = (n - k + 1u) * f;
    memset(fast, 0xFF, sizeof fast); /* NaN patterns: an output the fast kernel skips cannot pass */
    odl_conv1d_forward(x, n, c, w, b, k, f, fast);
    odl_conv1d_forward_ref(x, n, c, w, b, k, f, ref);
    if (memcmp(fast, ref, outputs * sizeof(float)) != 0) {
        printf("conv1d forward n=%u c=%u k=%u f=%u differs from the reference\n", n, c, k, f);
        test_expect(0, "conv1d forward equals its reference bit for bit");
    }
}

static float da[MAX_N * MAX_F];
static float grad_fast[MAX_K * MAX_C * MAX_F], grad_ref[MAX_K * MAX_C * MAX_F], gb_fast[MAX_F], gb_ref[MAX_F];

static void conv1d_backward_params(test_rng_t *rng)
{
    const shape_t s = random_shape(rng);
    const unsigned n = s.n, c = s.c, k = s.k, f = s.f;
    const unsigned m_out = n - k + 1u, weights = k * c * f;
    test_fill(rng, x, n * c, -2.0f, 2.0f);
    test_fill(rng, da, m_out * f, -1.0f, 1.0f);
    test_fill(rng, grad_ref, weights, -3.0f, 3.0f); /* what earlier samples accumulated */
    test_fill(rng, gb_ref, f, -3.0f, 3.0f);
    memcpy(grad_fast, grad_ref, weights * sizeof(float));
    memcpy(gb_fast, gb_ref, f * sizeof(float));
    odl_conv1d_backward_params(da, x, n, c, k, f, grad_fast, gb_fast);
    odl_conv1d_backward_params_ref(da, x, n, c, k, f, grad_ref, gb_ref);
    if (memcmp(grad_fast, grad_ref, weights * sizeof(float)) != 0 || memcmp(gb_fast, gb_ref, f * sizeof(float)) != 0) {
        printf("conv1d weight gradient n=%u c=%u k=%u f=%u differs from the reference\n", n, c, k, f);
        test_expect(0, "conv1d weight gradient equals its reference bit for bit");
    }
}

static float dx_fast[MAX_N * MAX_C], dx_ref[MAX_N * MAX_C];

static void conv1d_backward_input(test_rng_t *rng)
{
    const shape_t s = random_shape(rng);
    const unsigned n = s.n, c = s.c, k = s.k, f = s.f;
    test_fill(rng, da, (n - k + 1u) * f, -1.0f, 1.0f);
    test_fill(rng, w, k * c * f, -1.0f, 1.0f);
    memset(dx_fast, 0xFF, sizeof dx_fast);
    odl_conv1d_backward_input(da, n, c, w, k, f, dx_fast);
    odl_conv1d_backward_input_ref(da, n, c, w, k, f, dx_ref);
    if (memcmp(dx_fast, dx_ref, n * c * sizeof(float)) != 0) {
        printf("conv1d input gradient n=%u c=%u k=%u f=%u differs from the reference\n", n, c, k, f);
        test_expect(0, "conv1d input gradient equals its reference bit for bit");
    }
}

#define MAX_IN 70u
#define MAX_OUT 23u
static float dense_x[MAX_IN], dense_w[MAX_IN * MAX_OUT], dense_b[MAX_OUT], dense_da[MAX_OUT];
static float dense_fast[MAX_IN], dense_ref[MAX_IN];

static void dense(test_rng_t *rng)
{
    const unsigned n_in = test_int(rng, 1, MAX_IN), n_out = test_int(rng, 1, MAX_OUT);
    test_fill(rng, dense_x, n_in, -2.0f, 2.0f);
    test_fill(rng, dense_w, n_in * n_out, -1.0f, 1.0f);
    test_fill(rng, dense_b, n_out, -0.5f, 0.5f);
    test_fill(rng, dense_da, n_out, -1.0f, 1.0f);
    memset(dense_fast, 0xFF, sizeof dense_fast);
    odl_dense_forward(dense_x, n_in, dense_w, dense_b, n_out, dense_fast);
    odl_dense_forward_ref(dense_x, n_in, dense_w, dense_b, n_out, dense_ref);
    if (memcmp(dense_fast, dense_ref, n_out * sizeof(float)) != 0) {
        printf("dense forward n_in=%u n_out=%u differs from the reference\n", n_in, n_out);
        test_expect(0, "dense forward equals its reference bit for bit");
    }
    memset(dense_fast, 0xFF, sizeof dense_fast);
    odl_dense_backward_input(dense_da, dense_w, n_in, n_out, dense_fast);
    odl_dense_backward_input_ref(dense_da, dense_w, n_in, n_out, dense_ref);
    if (memcmp(dense_fast, dense_ref, n_in * sizeof(float)) != 0) {
        printf("dense input gradient n_in=%u n_out=%u differs from the reference\n", n_in, n_out);
        test_expect(0, "dense input gradient equals its reference bit for bit");
    }
}

static float pool_x[MAX_N * MAX_C], pool_fast[MAX_N * MAX_C], pool_ref[MAX_N * MAX_C];

/* Every window length from 1 (2 and the other powers of two take the exact reciprocal). */
static void avgpool(test_rng_t *rng)
{
    const unsigned n = test_int(rng, 1, MAX_N), c = test_int(rng, 1, MAX_C), p = test_int(rng, 1, 9);
    if (p > n) {
        return;
    }
    test_fill(rng, pool_x, n * c, -2.0f, 2.0f);
    if (test_int(rng, 0, 3) == 0) {
        pool_x[0] = -0.0f; /* a window of negative zeros: the sum starts from +0 in both */
        pool_x[c] = -0.0f;
    }
    memset(pool_fast, 0xFF, sizeof pool_fast);
    odl_avgpool1d_forward(pool_x, n, c, p, pool_fast);
    odl_avgpool1d_forward_ref(pool_x, n, c, p, pool_ref);
    if (memcmp(pool_fast, pool_ref, (n / p) * c * sizeof(float)) != 0) {
        printf("avgpool forward n=%u c=%u p=%u differs from the reference\n", n, c, p);
        test_expect(0, "avgpool forward equals its reference bit for bit");
    }
    memset(pool_fast, 0xFF, sizeof pool_fast);
    odl_avgpool1d_backward_input(pool_x, n, c, p, pool_fast);
    odl_avgpool1d_backward_input_ref(pool_x, n, c, p, pool_ref);
    if (memcmp(pool_fast, pool_ref, n * c * sizeof(float)) != 0) {
        printf("avgpool input gradient n=%u c=%u p=%u differs from the reference\n", n, c, p);
        test_expect(0, "avgpool input gradient equals its reference bit for bit");
    }
}

/* int8: random int8 tensors, zero points and multipliers; weights of 8, 4 or 2 bits, packed. */
static int8_t qx[MAX_N * MAX_C], qw[MAX_K * MAX_C * MAX_F], qfast[MAX_N * MAX_F], qref[MAX_N * MAX_F];
static uint32_t qrow_words[MAX_K * MAX_C]; /* ODL_INT8_CONV_ROW_BYTES(k * c), 4-byte aligned */
#define qrow ((int8_t *)qrow_words)
static int32_t qbias[MAX_F];
static odl_qmult_t qmult[MAX_F];
static double qreal[MAX_F];

static void fill_int8(test_rng_t *rng, int8_t *v, unsigned n)
{
    for (unsigned i = 0; i < n; ++i) {
        v[i] = (int8_t)((int)test_int(rng, 0, 255) - 128);
    }
}

static unsigned random_bits(test_rng_t *rng)
{
    const unsigned pick = test_int(rng, 0, 2);
    return pick == 0 ? 8u : (pick == 1 ? 4u : 2u);
}

static odl_int8_io_t random_io(test_rng_t *rng)
{
    odl_int8_io_t io;
    io.in_zp = (int32_t)test_int(rng, 0, 255) - 128;
    io.out_zp = (int32_t)test_int(rng, 0, 255) - 128;
    io.act_min = test_int(rng, 0, 1) ? -128 : io.out_zp;
    io.act_max = 127;
    return io;
}

static void conv1d_forward_int8(test_rng_t *rng)
{
    const shape_t s = random_shape(rng);
    const unsigned bits = random_bits(rng);
    odl_window_t g = {test_int(rng, 1, 3), test_int(rng, 1, 2), 0u};
    const unsigned span = g.dilation * (s.k - 1u) + 1u;
    g.pad = test_int(rng, 0, span - 1u);
    if (s.n + g.pad < span) {
        return;
    }
    const unsigned m_out = (s.n + g.pad - span) / g.stride + 1u;
    fill_int8(rng, qx, s.n * s.c);
    fill_int8(rng, qw, s.k * s.c * s.f); /* any bytes: packed sub-byte weights are any bit patterns */
    const odl_int8_io_t io = random_io(rng);
    /* Multipliers below 1 (a right shift) and, one layer in four, up to 30 (a left shift); one in eight, biases
     * near 2^30, beyond the tiles' short requantization. */
    const double big_mult = test_int(rng, 0, 3) == 0u ? 100.0 : 1.0;
    const int big_bias = test_int(rng, 0, 7) == 0u;
    for (unsigned j = 0; j < s.f; ++j) {
        qbias[j] = big_bias ? (int32_t)(test_int(rng, 0, 1) ? 1 : -1) * (int32_t)((1u << 30) - test_int(rng, 0, 50000))
                            : (int32_t)test_int(rng, 0, 20000) - 10000;
        qmult[j] = odl_quantize_multiplier(0.0001 * big_mult * (double)test_int(rng, 1, 3000));
    }
    odl_conv1d_forward_int8(qx, s.n, s.c, qw, bits, qbias, qmult, s.k, s.f, &g, m_out, &io, qrow, qfast);
    odl_conv1d_forward_int8_ref(qx, s.n, s.c, qw, bits, qbias, qmult, s.k, s.f, &g, m_out, &io, qref);
    if (memcmp(qfast, qref, m_out * s.f) != 0) {
        printf("int8 conv1d n=%u c=%u k=%u f=%u bits=%u stride=%u dilation=%u pad=%u differs\n", s.n, s.c, s.k, s.f,
               bits, g.stride, g.dilation, g.pad);
        test_expect(0, "int8 conv1d forward equals its reference");
    }
}

static void dense_forward_int8(test_rng_t *rng)
{
    const unsigned n_in = test_int(rng, 1, MAX_K * MAX_C), n_out = test_int(rng, 1, MAX_F);
    const unsigned bits = random_bits(rng);
    fill_int8(rng, qx, n_in);
    fill_int8(rng, qw, n_in * n_out);
    const odl_int8_io_t io = random_io(rng);
    for (unsigned j = 0; j < n_out; ++j) {
        qbias[j] = (int32_t)test_int(rng, 0, 20000) - 10000;
        qreal[j] = 0.0001 * (double)test_int(rng, 1, 3000);
    }
    odl_dense_forward_int8(qx, n_in, qw, bits, qbias, qreal, n_out, &io, qrow, qfast);
    odl_dense_forward_int8_ref(qx, n_in, qw, bits, qbias, qreal, n_out, &io, qref);
    if (memcmp(qfast, qref, n_out) != 0) {
        printf("int8 dense n_in=%u n_out=%u bits=%u differs\n", n_in, n_out, bits);
        test_expect(0, "int8 dense forward equals its reference");
    }
    test_expect(odl_dot_int8_zp(qx, qw, n_in, io.in_zp) == odl_dot_int8_zp_ref(qx, qw, n_in, io.in_zp),
                "int8 dot with a zero point equals its reference");
}

static void avgpool_forward_int8(test_rng_t *rng)
{
    const unsigned n = test_int(rng, 1, MAX_N), c = test_int(rng, 1, MAX_C), p = test_int(rng, 1, 4);
    odl_window_t g = {test_int(rng, 1, 3), 1u, test_int(rng, 0, p - 1u)};
    if (n + 2u * g.pad < p) {
        return;
    }
    const unsigned m_out = (n + 2u * g.pad - p) / g.stride + 1u;
    if (m_out * c > sizeof qfast) {
        return;
    }
    fill_int8(rng, qx, n * c);
    odl_int8_io_t io = random_io(rng);
    io.act_max = test_int(rng, 0, 1) ? 127 : 100;
    odl_avgpool1d_forward_int8(qx, n, c, p, &g, m_out, &io, qfast);
    odl_avgpool1d_forward_int8_ref(qx, n, c, p, &g, m_out, &io, qref);
    if (memcmp(qfast, qref, m_out * c) != 0) {
        printf("int8 avgpool n=%u c=%u p=%u stride=%u pad=%u differs\n", n, c, p, g.stride, g.pad);
        test_expect(0, "int8 avgpool forward equals its reference");
    }
}

/* The input quantization against TFLite's QUANTIZE restated with roundf: random values and scales, values at
 * and one ulp beside every half-way point of the int8 range. */
static void quantize_input(test_rng_t *rng)
{
    unsigned failures = 0;
    for (unsigned trial = 0; trial < 200000u; ++trial) {
        odl_qparams_t p = {test_uniform(rng, 1e-3f, 2.0f), (int32_t)test_int(rng, 0, 255) - 128};
        float xv = test_uniform(rng, -300.0f, 300.0f) * p.scale;
        if (trial % 2u == 0u) { /* a tie: (h + 1/2) * scale, then perhaps one ulp beside */
            xv = ((float)((int)test_int(rng, 0, 600) - 300) + 0.5f) * p.scale;
            xv = trial % 4u == 0u ? nextafterf(xv, 0.0f) : xv;
            p.scale = trial % 8u == 0u ? 1.0f : p.scale;
        }
        const float r = roundf(xv / p.scale) + (float)p.zero_point;
        const int8_t want = (int8_t)(r <= -128.0f ? -128 : (r >= 127.0f ? 127 : (int32_t)r));
        if (odl_int8_quantize_value(xv, p) != want && failures++ < 5u) {
            printf("odl_int8_quantize_value(%.9g, scale %.9g, zp %ld) differs\n", xv, p.scale, (long)p.zero_point);
            test_expect(0, "input quantization equals QUANTIZE's");
        }
    }
}

static int8_t gap_x[600u * MAX_C];

static void gap_forward_int8(test_rng_t *rng)
{
    const unsigned n = test_int(rng, 0, 1) ? test_int(rng, 1, MAX_N) : test_int(rng, 250, 600), c = test_int(rng, 1, MAX_C);
    fill_int8(rng, gap_x, n * c);
    if (test_int(rng, 0, 3) == 0u) { /* every row at an extreme: the int16 partial sums' limits */
        memset(gap_x, test_int(rng, 0, 1) ? 0x80 : 0x7F, n * c);
    }
    const odl_int8_io_t io = random_io(rng);
    const odl_qmult_t m = odl_mean_multiplier(odl_quantize_multiplier(0.001 * (double)test_int(rng, 1, 3000)), n);
    odl_gap1d_forward_int8(gap_x, n, c, m, &io, qfast);
    odl_gap1d_forward_int8_ref(gap_x, n, c, m, &io, qref);
    if (memcmp(qfast, qref, c) != 0) {
        printf("int8 gap n=%u c=%u differs\n", n, c);
        test_expect(0, "int8 global average pool equals its reference");
    }
}

/* The reference Dense rounding, restated: the double product, rounded half away from zero, the magnitude held
 * at 512 as odl_dense_round holds it. */
static int32_t dense_round_expected(int32_t acc, double real_scale)
{
    const double v = (double)acc * real_scale;
    if (v >= 512.0) {
        return 512;
    }
    if (v <= -512.0) {
        return -512;
    }
    double r = (double)(long long)v;
    const double frac = v - r;
    r += frac >= 0.5 ? 1.0 : (frac <= -0.5 ? -1.0 : 0.0);
    return (int32_t)r;
}

static unsigned dense_round_failures;

static void check_dense_round(int32_t acc, double real_scale)
{
    const int32_t got = odl_dense_round(acc, real_scale), want = dense_round_expected(acc, real_scale);
    if (got != want && dense_round_failures++ < 5u) {
        printf("odl_dense_round(%ld, %.17g) = %ld, the double product rounds to %ld\n", (long)acc, real_scale,
               (long)got, (long)want);
        test_expect(0, "odl_dense_round equals the double rounding");
    }
}

/* The integer Dense requantization against the double one: random accumulators and scales; products exactly
 * half-way (ties go away from zero); scales one ulp beside (h + 1/2) / acc, whose double product rounds onto
 * or off the tie (the double's own rounding must be reproduced); the extremes. */
static void dense_round(test_rng_t *rng)
{
    const int32_t extremes[] = {0, 1, -1, 2, -2, 3, -3, INT32_MAX, INT32_MIN, INT32_MIN + 1, 1 << 30, -(1 << 30)};
    const double scales[] = {1.0, 0.5, 0.25, 1e-9, 3e-5, 0.999999, 1.5, 1048576.0, 3e7, 4.9e-324, 0.0};
    for (unsigned i = 0; i < sizeof extremes / sizeof extremes[0]; ++i) {
        for (unsigned j = 0; j < sizeof scales / sizeof scales[0]; ++j) {
            check_dense_round(extremes[i], scales[j]);
        }
    }
    for (unsigned trial = 0; trial < 200000u; ++trial) {
        const int e = (int)test_int(rng, 0, 40);
        const int32_t acc = (int32_t)(((uint32_t)test_int(rng, 0, 0xFFFFu) << 16) | test_int(rng, 0, 0xFFFFu)) >>
                            test_int(rng, 0, 31);
        const double mant = 1.0 + (double)test_int(rng, 0, 0x7FFFFFFFu) / 2147483648.0 +
                            (double)test_int(rng, 0, 0x3FFFFFu) / 9007199254740992.0;
        check_dense_round(acc, ldexp(mant, -e));
        /* An exact tie: (2h + 1) 2^(e-1) * 2^-e = h + 1/2. */
        const int32_t h = (int32_t)test_int(rng, 0, 300);
        const int te = (int)test_int(rng, 1, 20);
        const int32_t tie = (2 * h + 1) << (te - 1);
        check_dense_round(tie, ldexp(1.0, -te));
        check_dense_round(-tie, ldexp(1.0, -te));
        /* One ulp beside a tie. */
        const int32_t a = (int32_t)test_int(rng, 1, 0x7FFFFFFu);
        const double target = ((double)h + 0.5) / (double)a;
        check_dense_round(a, nextafter(target, 0.0));
        check_dense_round(a, target);
        check_dense_round(a, nextafter(target, 1.0));
        check_dense_round(-a, nextafter(target, 0.0));
        check_dense_round(-a, nextafter(target, 1.0));
    }
}

int main(void)
{
    test_rng_t rng = {0xFA57C0DEull};
    for (unsigned trial = 0; trial < 2000u; ++trial) {
        conv1d_forward(&rng);
        conv1d_backward_params(&rng);
        conv1d_backward_input(&rng);
        dense(&rng);
        avgpool(&rng);
        conv1d_forward_int8(&rng);
        dense_forward_int8(&rng);
        avgpool_forward_int8(&rng);
        gap_forward_int8(&rng);
    }
    dense_round(&rng);
    quantize_input(&rng);
    return (int)test_failures();
}
