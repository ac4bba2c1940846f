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
 * Usage: test_layers_gradcheck <conv1d|dense|avgpool1d|gap1d|relu|softmax_xent>
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

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*run)(test_rng_t *);
    } checks[] = {
        {"conv1d", check_conv1d}, {"dense", check_dense}, {"avgpool1d", check_avgpool1d},
        {"gap1d", check_gap1d},   {"relu", check_relu},   {"softmax_xent", check_softmax_xent},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; ++i) {
        if (argc == 2 && strcmp(argv[1], checks[i].name) == 0) {
            test_rng_t rng = {0x9E3779B97F4A7C15ull + i};
            checks[i].run(&rng);
            printf("%s: %s\n", checks[i].name, test_failures() == 0 ? "ok" : "FAILED");
            return test_failures() == 0 ? 0 : 1;
        }
    }
    fprintf(stderr, "usage: %s <conv1d|dense|avgpool1d|gap1d|relu|softmax_xent>\n", argv[0]);
    return 2;
}
