/*
 * Finite-difference checks of each layer's backward pass (Table I), on many random shapes.
 *
 * Each check builds the scalar L = sum_i c_i a_i (random c) on the layer's output a, so dL/da = c,
 * and compares the layer's backward outputs with central differences of L. For the layers that are
 * linear in what is perturbed (Conv1D, Dense, pools) the differences are exact up to float rounding of
 * the forward pass (~1e-7 relative), divided by the step 2h = 2e-2: hence atol 2e-3, rtol 2e-3.
 * Accumulators are pre-filled with a known value to check that parameter gradients are ADDED, and
 * input-gradient buffers are pre-filled with NaN to check that every element is written.
 *
 * Usage: test_layers_gradcheck <conv1d|conv1d_general|depthwise1d|dense|avgpool1d|pool1d_general|maxpool1d|gap1d|gmp1d|relu|
 *                              activations|batchnorm|softmax_xent>
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "odl_layers.h"
#include "testutil.h"

#define CASES 40
#define MAXN 1024
#define H 1e-2f
#define ATOL 2e-3
#define RTOL 2e-3
#define ACC_OFFSET 0.25f

typedef struct {
    unsigned n, c, k, f, p; /* input length, channels, kernel, filters/units, pool */
    unsigned m;             /* output length of the general kernels */
    odl_window_t g;
    unsigned label;
    float x[MAXN], w[MAXN], b[64], coef[MAXN], a[MAXN];
} case_t;

static case_t cs;

static double weighted_sum(const float *a, unsigned n)
{
    double s = 0.0;
    for (unsigned i = 0; i < n; ++i) {
        s += (double)cs.coef[i] * (double)a[i];
    }
    return s;
}

static void fill_nan(float *v, unsigned n)
{
    for (unsigned i = 0; i < n; ++i) {
        v[i] = NAN;
    }
}

/* Removes the known offset the accumulators started from. */
static void remove_offset(float *v, unsigned n)
{
    for (unsigned i = 0; i < n; ++i) {
        v[i] -= ACC_OFFSET;
    }
}

static void fill_offset(float *v, unsigned n)
{
    for (unsigned i = 0; i < n; ++i) {
        v[i] = ACC_OFFSET;
    }
}

static double conv_loss(void *ctx)
{
    (void)ctx;
    odl_conv1d_forward(cs.x, cs.n, cs.c, cs.w, cs.b, cs.k, cs.f, cs.a);
    return weighted_sum(cs.a, (cs.n - cs.k + 1u) * cs.f);
}

static void check_conv1d(test_rng_t *rng)
{
    static float dx[MAXN], gw[MAXN], gb[64];
    for (int t = 0; t < CASES; ++t) {
        cs.k = test_int(rng, 1, 5);
        cs.n = test_int(rng, cs.k, 14);
        cs.c = test_int(rng, 1, 5);
        cs.f = test_int(rng, 1, 6);
        const unsigned m = cs.n - cs.k + 1u;
        test_fill(rng, cs.x, cs.n * cs.c, -1.0f, 1.0f);
        test_fill(rng, cs.w, cs.k * cs.c * cs.f, -1.0f, 1.0f);
        test_fill(rng, cs.b, cs.f, -1.0f, 1.0f);
        test_fill(rng, cs.coef, m * cs.f, -1.0f, 1.0f);
        fill_nan(dx, cs.n * cs.c);
        fill_offset(gw, cs.k * cs.c * cs.f);
        fill_offset(gb, cs.f);
        odl_conv1d_backward_input(cs.coef, cs.n, cs.c, cs.w, cs.k, cs.f, dx);
        odl_conv1d_backward_params(cs.coef, cs.x, cs.n, cs.c, cs.k, cs.f, gw, gb);
        remove_offset(gw, cs.k * cs.c * cs.f);
        remove_offset(gb, cs.f);
        test_fd_check("conv1d dL/dx", cs.x, cs.n * cs.c, dx, conv_loss, NULL, H, ATOL, RTOL, 0);
        test_fd_check("conv1d dL/dw", cs.w, cs.k * cs.c * cs.f, gw, conv_loss, NULL, H, ATOL, RTOL, 0);
        test_fd_check("conv1d dL/db", cs.b, cs.f, gb, conv_loss, NULL, H, ATOL, RTOL, 0);
    }
}

/* A random window geometry as Keras builds it: padding 'valid', 'same' or (Conv1D only) 'causal', a stride
 * or (Conv1D only) a dilation, for windows of `size` taps over an input of cs.n rows. */
static void random_window(test_rng_t *rng, unsigned size, int conv)
{
    const unsigned mode = test_int(rng, 0, conv ? 2u : 1u);
    cs.g.stride = test_int(rng, 1, 3);
    cs.g.dilation = 1;
    if (conv && test_int(rng, 0, 1) != 0u) {
        cs.g.dilation = test_int(rng, 1, 3);
        cs.g.stride = 1; /* Keras refuses stride > 1 with dilation > 1 */
    }
    const unsigned span = cs.g.dilation * (size - 1u) + 1u;
    if (mode == 0u) { /* valid */
        cs.n = test_int(rng, span, span + 12u);
        cs.g.pad = 0;
        cs.m = (cs.n - span) / cs.g.stride + 1u;
    } else if (mode == 1u) { /* same */
        cs.n = test_int(rng, 1, 14);
        cs.m = (cs.n + cs.g.stride - 1u) / cs.g.stride;
        const unsigned need = (cs.m - 1u) * cs.g.stride + span;
        cs.g.pad = need > cs.n ? (need - cs.n) / 2u : 0u;
    } else { /* causal */
        cs.n = test_int(rng, 1, 14);
        cs.g.pad = span - 1u;
        cs.m = (cs.n - 1u) / cs.g.stride + 1u;
    }
}

static double conv_general_loss(void *ctx)
{
    (void)ctx;
    odl_conv1d_forward_general(cs.x, cs.n, cs.c, cs.w, cs.b, cs.k, cs.f, &cs.g, cs.m, cs.a);
    return weighted_sum(cs.a, cs.m * cs.f);
}

static void check_conv1d_general(test_rng_t *rng)
{
    static float dx[MAXN], gw[MAXN], gb[64], a_plain[MAXN];
    for (int t = 0; t < 4 * CASES; ++t) {
        cs.k = test_int(rng, 1, 5);
        random_window(rng, cs.k, 1);
        cs.c = test_int(rng, 1, 4);
        cs.f = test_int(rng, 1, 5);
        test_fill(rng, cs.x, cs.n * cs.c, -1.0f, 1.0f);
        test_fill(rng, cs.w, cs.k * cs.c * cs.f, -1.0f, 1.0f);
        test_fill(rng, cs.b, cs.f, -1.0f, 1.0f);
        test_fill(rng, cs.coef, cs.m * cs.f, -1.0f, 1.0f);
        fill_nan(dx, cs.n * cs.c);
        fill_offset(gw, cs.k * cs.c * cs.f);
        fill_offset(gb, cs.f);
        odl_conv1d_backward_input_general(cs.coef, cs.n, cs.c, cs.w, cs.k, cs.f, &cs.g, cs.m, dx);
        odl_conv1d_backward_params_general(cs.coef, cs.x, cs.n, cs.c, cs.k, cs.f, &cs.g, cs.m, gw, gb);
        remove_offset(gw, cs.k * cs.c * cs.f);
        remove_offset(gb, cs.f);
        test_fd_check("conv1d general dL/dx", cs.x, cs.n * cs.c, dx, conv_general_loss, NULL, H, ATOL, RTOL, 0);
        test_fd_check("conv1d general dL/dw", cs.w, cs.k * cs.c * cs.f, gw, conv_general_loss, NULL, H, ATOL, RTOL,
                      0);
        test_fd_check("conv1d general dL/db", cs.b, cs.f, gb, conv_general_loss, NULL, H, ATOL, RTOL, 0);
        const int plain = cs.g.stride == 1u && cs.g.dilation == 1u && cs.g.pad == 0u && cs.m + cs.k == cs.n + 1u;
        if (plain) {
            /* The plain kernel is the general one's special case: same sums, same order, same bits. */
            odl_conv1d_forward(cs.x, cs.n, cs.c, cs.w, cs.b, cs.k, cs.f, a_plain);
            conv_general_loss(NULL);
            test_expect(memcmp(a_plain, cs.a, cs.m * cs.f * sizeof(float)) == 0, "general conv = plain conv");
        }
    }
}

static double depthwise_loss(void *ctx)
{
    (void)ctx;
    odl_depthwise1d_forward(cs.x, cs.n, cs.c, cs.w, cs.b, cs.k, cs.f, &cs.g, cs.m, cs.a);
    return weighted_sum(cs.a, cs.m * cs.c * cs.f);
}

/* cs.f is the depth multiplier here. */
static void check_depthwise1d(test_rng_t *rng)
{
    static float dx[MAXN], gw[MAXN], gb[64];
    for (int t = 0; t < 4 * CASES; ++t) {
        cs.k = test_int(rng, 1, 5);
        random_window(rng, cs.k, 1);
        cs.c = test_int(rng, 1, 4);
        cs.f = test_int(rng, 1, 3);
        test_fill(rng, cs.x, cs.n * cs.c, -1.0f, 1.0f);
        test_fill(rng, cs.w, cs.k * cs.c * cs.f, -1.0f, 1.0f);
        test_fill(rng, cs.b, cs.c * cs.f, -1.0f, 1.0f);
        test_fill(rng, cs.coef, cs.m * cs.c * cs.f, -1.0f, 1.0f);
        fill_nan(dx, cs.n * cs.c);
        fill_offset(gw, cs.k * cs.c * cs.f);
        fill_offset(gb, cs.c * cs.f);
        odl_depthwise1d_backward_input(cs.coef, cs.n, cs.c, cs.w, cs.k, cs.f, &cs.g, cs.m, dx);
        odl_depthwise1d_backward_params(cs.coef, cs.x, cs.n, cs.c, cs.k, cs.f, &cs.g, cs.m, gw, gb);
        remove_offset(gw, cs.k * cs.c * cs.f);
        remove_offset(gb, cs.c * cs.f);
        test_fd_check("depthwise1d dL/dx", cs.x, cs.n * cs.c, dx, depthwise_loss, NULL, H, ATOL, RTOL, 0);
        test_fd_check("depthwise1d dL/dw", cs.w, cs.k * cs.c * cs.f, gw, depthwise_loss, NULL, H, ATOL, RTOL, 0);
        test_fd_check("depthwise1d dL/db", cs.b, cs.c * cs.f, gb, depthwise_loss, NULL, H, ATOL, RTOL, 0);
    }
}

static double dense_loss(void *ctx)
{
    (void)ctx;
    odl_dense_forward(cs.x, cs.n, cs.w, cs.b, cs.f, cs.a);
    return weighted_sum(cs.a, cs.f);
}

static void check_dense(test_rng_t *rng)
{
    static float dx[MAXN], gw[MAXN], gb[64];
    for (int t = 0; t < CASES; ++t) {
        cs.n = test_int(rng, 1, 24);
        cs.f = test_int(rng, 1, 12);
        test_fill(rng, cs.x, cs.n, -1.0f, 1.0f);
        test_fill(rng, cs.w, cs.n * cs.f, -1.0f, 1.0f);
        test_fill(rng, cs.b, cs.f, -1.0f, 1.0f);
        test_fill(rng, cs.coef, cs.f, -1.0f, 1.0f);
        fill_nan(dx, cs.n);
        fill_offset(gw, cs.n * cs.f);
        fill_offset(gb, cs.f);
        odl_dense_backward_input(cs.coef, cs.w, cs.n, cs.f, dx);
        odl_dense_backward_params(cs.coef, cs.x, cs.n, cs.f, gw, gb);
        remove_offset(gw, cs.n * cs.f);
        remove_offset(gb, cs.f);
        test_fd_check("dense dL/dx", cs.x, cs.n, dx, dense_loss, NULL, H, ATOL, RTOL, 0);
        test_fd_check("dense dL/dw", cs.w, cs.n * cs.f, gw, dense_loss, NULL, H, ATOL, RTOL, 0);
        test_fd_check("dense dL/db", cs.b, cs.f, gb, dense_loss, NULL, H, ATOL, RTOL, 0);
    }
}

static double avgpool_loss(void *ctx)
{
    (void)ctx;
    odl_avgpool1d_forward(cs.x, cs.n, cs.c, cs.p, cs.a);
    return weighted_sum(cs.a, (cs.n / cs.p) * cs.c);
}

static void check_avgpool1d(test_rng_t *rng)
{
    static float dx[MAXN];
    for (int t = 0; t < CASES; ++t) {
        cs.p = test_int(rng, 1, 5);
        cs.n = test_int(rng, cs.p, 17); /* often not a multiple of p: Keras drops the tail */
        cs.c = test_int(rng, 1, 4);
        test_fill(rng, cs.x, cs.n * cs.c, -1.0f, 1.0f);
        test_fill(rng, cs.coef, (cs.n / cs.p) * cs.c, -1.0f, 1.0f);
        fill_nan(dx, cs.n * cs.c);
        odl_avgpool1d_backward_input(cs.coef, cs.n, cs.c, cs.p, dx);
        test_fd_check("avgpool1d dL/dx", cs.x, cs.n * cs.c, dx, avgpool_loss, NULL, H, ATOL, RTOL, 0);
    }
}

static double pool_general_loss(void *ctx)
{
    (void)ctx;
    odl_avgpool1d_forward_general(cs.x, cs.n, cs.c, cs.p, &cs.g, cs.m, cs.a);
    return weighted_sum(cs.a, cs.m * cs.c);
}

static void check_pool1d_general(test_rng_t *rng)
{
    static float dx[MAXN];
    for (int t = 0; t < 4 * CASES; ++t) {
        cs.p = test_int(rng, 1, 5);
        random_window(rng, cs.p, 0);
        cs.c = test_int(rng, 1, 4);
        test_fill(rng, cs.x, cs.n * cs.c, -1.0f, 1.0f);
        test_fill(rng, cs.coef, cs.m * cs.c, -1.0f, 1.0f);
        fill_nan(dx, cs.n * cs.c);
        odl_avgpool1d_backward_input_general(cs.coef, cs.n, cs.c, cs.p, &cs.g, cs.m, dx);
        test_fd_check("avgpool1d general dL/dx", cs.x, cs.n * cs.c, dx, pool_general_loss, NULL, H, ATOL, RTOL, 0);
    }
    /* 'same' averages only what exists: x = 0..6, pool 3, stride 2, one row of padding on each side. */
    const float x[7] = {0, 1, 2, 3, 4, 5, 6};
    const odl_window_t g = {2, 1, 1};
    float a[4];
    odl_avgpool1d_forward_general(x, 7, 1, 3, &g, 4, a);
    test_expect(a[0] == 0.5f && a[1] == 2.0f && a[2] == 4.0f && a[3] == 5.5f, "same average leaves padding out");
}

static uint32_t argmax_words[MAXN];

static double maxpool_loss(void *ctx)
{
    (void)ctx;
    odl_maxpool1d_forward(cs.x, cs.n, cs.c, cs.p, &cs.g, cs.m, cs.a, NULL);
    return weighted_sum(cs.a, cs.m * cs.c);
}

static void check_maxpool1d(test_rng_t *rng)
{
    static float dx[MAXN];
    for (int t = 0; t < 4 * CASES; ++t) {
        cs.p = test_int(rng, 1, 20); /* every index width: 0, 1, 2, 4 and 8 bits */
        random_window(rng, cs.p, 0);
        cs.c = test_int(rng, 1, 4);
        /* Distinct values at least 0.05 apart, so no two of a window swap places within the step h. */
        for (unsigned i = 0; i < cs.n * cs.c; ++i) {
            cs.x[i] = 0.05f * (float)i;
        }
        for (unsigned i = cs.n * cs.c; i-- > 1u;) {
            const unsigned j = test_int(rng, 0, i);
            const float tmp = cs.x[i];
            cs.x[i] = cs.x[j];
            cs.x[j] = tmp;
        }
        test_fill(rng, cs.coef, cs.m * cs.c, -1.0f, 1.0f);
        memset(argmax_words, 0xA5, sizeof argmax_words); /* garbage: every used field must be written */
        odl_maxpool1d_forward(cs.x, cs.n, cs.c, cs.p, &cs.g, cs.m, cs.a, argmax_words);
        fill_nan(dx, cs.n * cs.c);
        odl_maxpool1d_backward_input(cs.coef, cs.n, cs.c, cs.p, &cs.g, cs.m, argmax_words, dx);
        test_fd_check("maxpool1d dL/dx", cs.x, cs.n * cs.c, dx, maxpool_loss, NULL, H, ATOL, RTOL, 0);
    }
    /* A tie goes to the first maximum, as TensorFlow's gradient does. */
    const float x[4] = {1.0f, 3.0f, 3.0f, 2.0f};
    const odl_window_t g = {4, 1, 0};
    float a[1], dx4[4];
    const float da[1] = {1.0f};
    odl_maxpool1d_forward(x, 4, 1, 4, &g, 1, a, argmax_words);
    odl_maxpool1d_backward_input(da, 4, 1, 4, &g, 1, argmax_words, dx4);
    test_expect(a[0] == 3.0f && dx4[1] == 1.0f && dx4[2] == 0.0f, "max pool tie goes to the first maximum");
}

static float bn_mean[64], bn_inv_std[64];

static double batchnorm_loss(void *ctx)
{
    (void)ctx;
    odl_batchnorm_forward(cs.x, cs.n, cs.c, cs.w, cs.b, bn_mean, bn_inv_std, cs.a);
    return weighted_sum(cs.a, cs.n * cs.c);
}

static void check_batchnorm(test_rng_t *rng)
{
    static float dx[MAXN], gw[64], gb[64];
    for (int t = 0; t < CASES; ++t) {
        cs.n = test_int(rng, 1, 16);
        cs.c = test_int(rng, 1, 8);
        test_fill(rng, cs.x, cs.n * cs.c, -2.0f, 2.0f);
        test_fill(rng, cs.w, cs.c, 0.5f, 2.0f); /* gamma */
        test_fill(rng, cs.b, cs.c, -1.0f, 1.0f); /* beta */
        test_fill(rng, bn_mean, cs.c, -1.0f, 1.0f);
        test_fill(rng, bn_inv_std, cs.c, 0.5f, 2.0f);
        test_fill(rng, cs.coef, cs.n * cs.c, -1.0f, 1.0f);
        fill_nan(dx, cs.n * cs.c);
        fill_offset(gw, cs.c);
        fill_offset(gb, cs.c);
        odl_batchnorm_backward_input(cs.coef, cs.n, cs.c, cs.w, bn_inv_std, dx);
        odl_batchnorm_backward_params(cs.coef, cs.x, cs.n, cs.c, bn_mean, bn_inv_std, gw, gb);
        remove_offset(gw, cs.c);
        remove_offset(gb, cs.c);
        test_fd_check("batchnorm dL/dx", cs.x, cs.n * cs.c, dx, batchnorm_loss, NULL, H, ATOL, RTOL, 0);
        test_fd_check("batchnorm dL/dgamma", cs.w, cs.c, gw, batchnorm_loss, NULL, H, ATOL, RTOL, 0);
        test_fd_check("batchnorm dL/dbeta", cs.b, cs.c, gb, batchnorm_loss, NULL, H, ATOL, RTOL, 0);
    }
}

static double gap_loss(void *ctx)
{
    (void)ctx;
    odl_gap1d_forward(cs.x, cs.n, cs.c, cs.a);
    return weighted_sum(cs.a, cs.c);
}

static void check_gap1d(test_rng_t *rng)
{
    static float dx[MAXN];
    for (int t = 0; t < CASES; ++t) {
        cs.n = test_int(rng, 1, 16);
        cs.c = test_int(rng, 1, 6);
        test_fill(rng, cs.x, cs.n * cs.c, -1.0f, 1.0f);
        test_fill(rng, cs.coef, cs.c, -1.0f, 1.0f);
        fill_nan(dx, cs.n * cs.c);
        odl_gap1d_backward_input(cs.coef, cs.n, cs.c, dx);
        test_fd_check("gap1d dL/dx", cs.x, cs.n * cs.c, dx, gap_loss, NULL, H, ATOL, RTOL, 0);
    }
}

static void check_relu_nan(void)
{
    const float x[3] = {NAN, -1.0f, 2.0f};
    float a[3];
    uint32_t mask[1];
    odl_relu_forward(x, 3, a, mask);
    test_expect(isnan(a[0]) && a[1] == 0.0f && a[2] == 2.0f && mask[0] == 4u, "relu propagates NaN like TF");
}

static double relu_loss(void *ctx)
{
    (void)ctx;
    odl_relu_forward(cs.x, cs.n, cs.a, NULL);
    return weighted_sum(cs.a, cs.n);
}

static void check_relu(test_rng_t *rng)
{
    static float da[MAXN];
    static uint32_t mask[ODL_MASK_WORDS(MAXN)];
    for (int t = 0; t < CASES; ++t) {
        cs.n = test_int(rng, 1, 100); /* spans several mask words */
        for (unsigned i = 0; i < cs.n; ++i) {
            /* Keep every input further than the step from the kink, where ReLU is not differentiable. */
            const float mag = test_uniform(rng, 3.0f * H, 1.0f);
            cs.x[i] = (test_int(rng, 0, 1) != 0u) ? mag : -mag;
        }
        test_fill(rng, cs.coef, cs.n, -1.0f, 1.0f);
        odl_relu_forward(cs.x, cs.n, cs.a, mask);
        memcpy(da, cs.coef, cs.n * sizeof(float));
        odl_relu_backward(da, cs.n, mask);
        test_fd_check("relu dL/dx", cs.x, cs.n, da, relu_loss, NULL, H, ATOL, RTOL, 0);
        /* In place (x == a), as the network runs a ReLU that follows a computed activation. */
        static float inplace[MAXN];
        odl_relu_forward(cs.x, cs.n, cs.a, NULL);
        memcpy(inplace, cs.x, cs.n * sizeof(float));
        odl_relu_forward(inplace, cs.n, inplace, mask);
        test_expect(memcmp(inplace, cs.a, cs.n * sizeof(float)) == 0, "relu in place equals out of place");
    }
    check_relu_nan();
}

static unsigned act_kind; /* 0 relu6, 1 leaky relu, 2 tanh, 3 sigmoid */
static float act_alpha;

static double activation_loss(void *ctx)
{
    (void)ctx;
    switch (act_kind) {
    case 0:
        odl_relu6_forward(cs.x, cs.n, cs.a, NULL);
        break;
    case 1:
        odl_leaky_relu_forward(cs.x, cs.n, act_alpha, cs.a, NULL);
        break;
    case 2:
        odl_tanh_forward(cs.x, cs.n, cs.a, NULL);
        break;
    default:
        odl_sigmoid_forward(cs.x, cs.n, cs.a, NULL);
        break;
    }
    return weighted_sum(cs.a, cs.n);
}

/* ReLU6 and LeakyReLU are piecewise linear (inputs kept 3h away from their kinks at 0 and 6); tanh and
 * sigmoid are smooth, and h = 1e-2 leaves an O(h^2) truncation error of ~1e-4 on slopes of order 1: the
 * same tolerances hold. */
static void check_activations(test_rng_t *rng)
{
    static float da[MAXN], saved[MAXN];
    static uint32_t mask[ODL_MASK_WORDS(MAXN)];
    for (act_kind = 0; act_kind < 4u; ++act_kind) {
        for (int t = 0; t < CASES; ++t) {
            cs.n = test_int(rng, 1, 100);
            act_alpha = test_uniform(rng, 0.01f, 0.5f);
            for (unsigned i = 0; i < cs.n; ++i) {
                float v = test_uniform(rng, -8.0f, 8.0f);
                if (fabsf(v) < 3.0f * H || fabsf(v - 6.0f) < 3.0f * H) {
                    v += 0.1f;
                }
                cs.x[i] = v;
            }
            test_fill(rng, cs.coef, cs.n, -1.0f, 1.0f);
            memcpy(da, cs.coef, cs.n * sizeof(float));
            switch (act_kind) {
            case 0:
                odl_relu6_forward(cs.x, cs.n, cs.a, mask);
                odl_relu_backward(da, cs.n, mask);
                break;
            case 1:
                odl_leaky_relu_forward(cs.x, cs.n, act_alpha, cs.a, mask);
                odl_leaky_relu_backward(da, cs.n, act_alpha, mask);
                break;
            case 2:
                odl_tanh_forward(cs.x, cs.n, cs.a, saved);
                odl_tanh_backward(da, cs.n, saved);
                break;
            default:
                odl_sigmoid_forward(cs.x, cs.n, cs.a, saved);
                odl_sigmoid_backward(da, cs.n, saved);
                break;
            }
            static const char *names[] = {"relu6 dL/dx", "leaky relu dL/dx", "tanh dL/dx", "sigmoid dL/dx"};
            test_fd_check(names[act_kind], cs.x, cs.n, da, activation_loss, NULL, H, ATOL, RTOL, 0);
        }
    }
    const float x[3] = {-1.0f, 3.0f, 7.0f};
    float a[3];
    odl_relu6_forward(x, 3, a, NULL);
    test_expect(a[0] == 0.0f && a[1] == 3.0f && a[2] == 6.0f, "relu6 clips to [0, 6]");
}

/* Softmax + cross-entropy is not linear: h = 1e-3 keeps the O(h^2) truncation error below 1e-6,
 * and float rounding of the loss (~1e-7 * L) divided by 2h stays below 1e-4. */
static double xent_loss(void *ctx)
{
    (void)ctx;
    return (double)odl_cross_entropy(cs.x, cs.n, cs.label);
}

static void check_softmax_xent(test_rng_t *rng)
{
    static float p[64], dz[64];
    for (int t = 0; t < CASES; ++t) {
        cs.n = test_int(rng, 2, 12);
        cs.label = test_int(rng, 0, cs.n - 1u);
        test_fill(rng, cs.x, cs.n, -3.0f, 3.0f);
        odl_softmax_forward(cs.x, cs.n, p);
        double sum = 0.0;
        for (unsigned i = 0; i < cs.n; ++i) {
            sum += p[i];
        }
        test_expect(fabs(sum - 1.0) < 1e-6, "softmax sums to 1");
        odl_cross_entropy_backward(p, cs.n, cs.label, dz);
        test_fd_check("softmax+xent dL/dz", cs.x, cs.n, dz, xent_loss, NULL, 1e-3f, 5e-4, 5e-3, 0);
    }
    /* Logits far apart: the probability of the label underflows to 0, yet the loss stays finite and
     * equals the logit gap, as TensorFlow's softmax_cross_entropy_with_logits gives. */
    const float z[3] = {200.0f, 0.0f, -50.0f};
    const float l = odl_cross_entropy(z, 3, 2);
    test_expect(isfinite(l) && fabsf(l - 250.0f) < 1e-3f, "cross-entropy from logits does not overflow");
}

static double gmp_loss(void *ctx)
{
    (void)ctx;
    odl_gmp1d_forward(cs.x, cs.n, cs.c, cs.a, NULL);
    return weighted_sum(cs.a, cs.c);
}

static void check_gmp1d(test_rng_t *rng)
{
    static float dx[MAXN];
    static uint32_t ties[ODL_MASK_WORDS(MAXN)];
    for (int t = 0; t < 4 * CASES; ++t) {
        cs.n = test_int(rng, 1, 40); /* masks of one word and of several, a channel's bits across words */
        cs.c = test_int(rng, 1, 6);
        /* Distinct values at least 0.05 apart, so the maximum stays where it is within the step h. */
        for (unsigned i = 0; i < cs.n * cs.c; ++i) {
            cs.x[i] = 0.05f * (float)i;
        }
        for (unsigned i = cs.n * cs.c; i-- > 1u;) {
            const unsigned j = test_int(rng, 0, i);
            const float tmp = cs.x[i];
            cs.x[i] = cs.x[j];
            cs.x[j] = tmp;
        }
        test_fill(rng, cs.coef, cs.c, -1.0f, 1.0f);
        memset(ties, 0xA5, sizeof ties); /* garbage: every bit of the mask must be written */
        odl_gmp1d_forward(cs.x, cs.n, cs.c, cs.a, ties);
        fill_nan(dx, cs.n * cs.c);
        odl_gmp1d_backward_input(cs.coef, cs.n, cs.c, ties, dx);
        test_fd_check("gmp1d dL/dx", cs.x, cs.n * cs.c, dx, gmp_loss, NULL, H, ATOL, RTOL, 0);
    }
    /* Ties share the gradient evenly, as TensorFlow's reduce_max gradient does ((1 / k) * grad, in float32):
     * channel 0 has its maximum 3 twice, channel 1 its maximum 5 three times, channel 2 once, in the last row. */
    const float x[12] = {1.0f, 5.0f, -4.0f, 3.0f, 5.0f, -2.0f, 3.0f, 4.0f, -3.0f, 2.0f, 5.0f, -1.0f};
    const float da[3] = {1.0f, 0.7f, -2.0f};
    float a[3], dx12[12];
    fill_nan(dx12, 12);
    odl_gmp1d_forward(x, 4, 3, a, ties);
    odl_gmp1d_backward_input(da, 4, 3, ties, dx12);
    const float third = (1.0f / 3.0f) * 0.7f;
    const float want[12] = {0.0f, third, 0.0f, 0.5f, third, 0.0f, 0.5f, 0.0f, 0.0f, 0.0f, third, -2.0f};
    test_expect(a[0] == 3.0f && a[1] == 5.0f && a[2] == -1.0f, "global max pool forward");
    test_expect(memcmp(dx12, want, sizeof want) == 0, "global max pool ties share the gradient evenly");
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*run)(test_rng_t *);
    } checks[] = {
        {"conv1d", check_conv1d},
        {"conv1d_general", check_conv1d_general},
        {"depthwise1d", check_depthwise1d},
        {"dense", check_dense},
        {"avgpool1d", check_avgpool1d},
        {"pool1d_general", check_pool1d_general},
        {"maxpool1d", check_maxpool1d},
        {"gap1d", check_gap1d},
        {"gmp1d", check_gmp1d},
        {"batchnorm", check_batchnorm},
        {"relu", check_relu},
        {"activations", check_activations},
        {"softmax_xent", check_softmax_xent},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; ++i) {
        if (argc == 2 && strcmp(argv[1], checks[i].name) == 0) {
            test_rng_t rng = {0x9E3779B97F4A7C15ull + i};
            checks[i].run(&rng);
            printf("%s: %s\n", checks[i].name, test_failures() == 0 ? "ok" : "FAILED");
            return test_failures() == 0 ? 0 : 1;
        }
    }
    fprintf(stderr, "usage: %s <conv1d|conv1d_general|depthwise1d|dense|avgpool1d|pool1d_general|maxpool1d|gap1d|gmp1d|relu|"
                    "activations|batchnorm|softmax_xent>\n", argv[0]);
    return 2;
}
