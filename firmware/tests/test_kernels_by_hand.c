/*
 * Each kernel on an input small enough to work out by hand. The values are chosen so that every product and
 * sum is exact in float32 (small dyadic numbers), so the expected outputs below are the exact results and
 * are compared with ==. The finite-difference checks (test_layers_gradcheck.c) show that a backward pass
 * matches its forward pass; these show that the forward pass computes the layer Keras defines, and catch
 * mistakes that keep the two consistent with each other (a transposed kernel, a missing bias).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "odl_layers.h"
#include "testutil.h"

static void expect_floats(const char *what, const float *got, const float *want, unsigned n)
{
    for (unsigned i = 0; i < n; ++i) {
        if (got[i] != want[i]) {
            printf("%s[%u]: got %.9g, want %.9g\n", what, i, (double)got[i], (double)want[i]);
            test_expect(0, what);
            return;
        }
    }
}

static void conv1d(void)
{
    /* x (T=3, C=2) channels-last; kernel (K=2, C=2, F=1); bias 0.25. */
    const float x[] = {1, 2, 3, 4, 5, 6};
    const float w[] = {1, 0.5f, -1, 2};
    const float b[] = {0.25f};
    float a[2];
    odl_conv1d_forward(x, 3, 2, w, b, 2, 1, a);
    /* a[m] = sum_k,c x[m+k][c] w[k][c] + b: 1 + 1 - 3 + 8 + 0.25, 3 + 2 - 5 + 12 + 0.25 */
    expect_floats("conv1d forward", a, (const float[]){7.25f, 12.25f}, 2);

    const float da[] = {1, -2};
    float gw[4] = {0}, gb[1] = {0};
    odl_conv1d_backward_params(da, x, 3, 2, 2, 1, gw, gb);
    /* dL/dw[k][c] = sum_m da[m] x[m+k][c]; dL/db = sum_m da[m] */
    expect_floats("conv1d weight gradient", gw, (const float[]){1 - 6, 2 - 8, 3 - 10, 4 - 12}, 4);
    expect_floats("conv1d bias gradient", gb, (const float[]){-1}, 1);

    float dx[6];
    odl_conv1d_backward_input(da, 3, 2, w, 2, 1, dx);
    /* dL/dx[t][c] = sum over m + k = t of da[m] w[k][c] */
    expect_floats("conv1d input gradient", dx, (const float[]){1, 0.5f, -1 - 2, 2 - 1, 2, -4}, 6);
}

static void dense(void)
{
    /* x (3), kernel (3 inputs, 2 units) row-major as Keras stores it, bias (2). */
    const float x[] = {1, 2, 3};
    const float w[] = {1, -1, 0.5f, 2, 0, 0.25f};
    const float b[] = {0.5f, -0.5f};
    float a[2];
    odl_dense_forward(x, 3, w, b, 2, a);
    expect_floats("dense forward", a, (const float[]){1 + 1 + 0 + 0.5f, -1 + 4 + 0.75f - 0.5f}, 2);

    const float da[] = {2, -1};
    float gw[6] = {0}, gb[2] = {0};
    odl_dense_backward_params(da, x, 3, 2, gw, gb);
    expect_floats("dense weight gradient", gw, (const float[]){2, -1, 4, -2, 6, -3}, 6);
    expect_floats("dense bias gradient", gb, (const float[]){2, -1}, 2);

    float dx[3];
    odl_dense_backward_input(da, w, 3, 2, dx);
    expect_floats("dense input gradient", dx, (const float[]){2 + 1, 1 - 2, -0.25f}, 3);
}

static void pools(void)
{
    const float x[] = {1, 3, 7, 5}; /* T=4, C=1 */
    float a[2];
    odl_avgpool1d_forward(x, 4, 1, 2, a);
    expect_floats("avgpool forward", a, (const float[]){2, 6}, 2);

    const odl_window_t g = {2, 1, 0}; /* stride 2, dilation 1, no padding */
    uint32_t argmax[1] = {0};
    odl_maxpool1d_forward(x, 4, 1, 2, &g, 2, a, argmax);
    expect_floats("maxpool forward", a, (const float[]){3, 7}, 2);
    float dx[4];
    odl_maxpool1d_backward_input((const float[]){1, 2}, 4, 1, 2, &g, 2, argmax, dx);
    expect_floats("maxpool input gradient", dx, (const float[]){0, 1, 2, 0}, 4);
}

static void softmax_cross_entropy(void)
{
    const float z[] = {0, 0};
    float p[2], dz[2];
    odl_softmax_forward(z, 2, p);
    expect_floats("softmax", p, (const float[]){0.5f, 0.5f}, 2);
    test_expect(fabsf(odl_cross_entropy(z, 2, 0) - 0.69314718f) <= 6e-8f, "cross-entropy of a coin flip is ln 2");
    odl_cross_entropy_backward(p, 2, 0, dz);
    expect_floats("cross-entropy gradient (p - onehot)", dz, (const float[]){-0.5f, 0.5f}, 2);
}

int main(void)
{
    conv1d();
    dense();
    pools();
    softmax_cross_entropy();
    printf("kernels by hand: %s\n", test_failures() == 0 ? "ok" : "FAILED");
    return test_failures() == 0 ? 0 : 1;
}
