/* Activations (Table I, row 3): ReLU and softmax, and the ReLU6, LeakyReLU, tanh and sigmoid of HAR models.
 * Each backward follows TensorFlow's gradient op (Relu6Grad, LeakyReluGrad, TanhGrad, SigmoidGrad). */
#include <math.h>

#include "odl_layers.h"

/* The mask records output > 0, which is where TensorFlow's ReluGrad lets the gradient through. One bit
 * per element costs 1/32 of keeping the pre-activation for the backward pass. NaN passes through, as in
 * TensorFlow, so an overflow upstream is still seen at the loss instead of being silently zeroed. */
void odl_relu_forward(const float *x, unsigned n, float *a, uint32_t *mask)
{
    for (unsigned w = 0; w < ODL_MASK_WORDS(n); ++w) {
        const unsigned end = (w * 32u + 32u < n) ? w * 32u + 32u : n;
        uint32_t bits = 0u;
        for (unsigned i = w * 32u; i < end; ++i) {
            const float v = x[i];
            if (v > 0.0f) {
                bits |= 1u << (i & 31u);
            }
            a[i] = (v <= 0.0f) ? 0.0f : v;
        }
        if (mask != 0) {
            mask[w] = bits;
        }
    }
}

/* One mask word per 32 elements, shifted as it goes, instead of indexing the word and the bit each time. */
void odl_relu_backward(float *da, unsigned n, const uint32_t *mask)
{
    for (unsigned w = 0; w < ODL_MASK_WORDS(n); ++w) {
        const unsigned end = (w * 32u + 32u < n) ? w * 32u + 32u : n;
        uint32_t bits = mask[w];
        for (unsigned i = w * 32u; i < end; ++i, bits >>= 1) {
            if ((bits & 1u) == 0u) {
                da[i] = 0.0f;
            }
        }
    }
}

void odl_relu6_forward(const float *x, unsigned n, float *a, uint32_t *mask)
{
    for (unsigned w = 0; w < ODL_MASK_WORDS(n); ++w) {
        const unsigned end = (w * 32u + 32u < n) ? w * 32u + 32u : n;
        uint32_t bits = 0u;
        for (unsigned i = w * 32u; i < end; ++i) {
            const float v = x[i];
            if (v > 0.0f && v < 6.0f) {
                bits |= 1u << (i & 31u);
            }
            a[i] = (v <= 0.0f) ? 0.0f : (v >= 6.0f ? 6.0f : v);
        }
        if (mask != 0) {
            mask[w] = bits;
        }
    }
}

void odl_leaky_relu_forward(const float *x, unsigned n, float alpha, float *a, uint32_t *mask)
{
    for (unsigned w = 0; w < ODL_MASK_WORDS(n); ++w) {
        const unsigned end = (w * 32u + 32u < n) ? w * 32u + 32u : n;
        uint32_t bits = 0u;
        for (unsigned i = w * 32u; i < end; ++i) {
            const float v = x[i];
            if (v > 0.0f) {
                bits |= 1u << (i & 31u);
            }
            a[i] = (v > 0.0f) ? v : v * alpha;
        }
        if (mask != 0) {
            mask[w] = bits;
        }
    }
}

void odl_leaky_relu_backward(float *da, unsigned n, float alpha, const uint32_t *mask)
{
    for (unsigned i = 0; i < n; ++i) {
        if (((mask[i >> 5] >> (i & 31u)) & 1u) == 0u) {
            da[i] = da[i] * alpha;
        }
    }
}

void odl_tanh_forward(const float *x, unsigned n, float *a, float *saved)
{
    for (unsigned i = 0; i < n; ++i) {
        a[i] = tanhf(x[i]);
        if (saved != 0) {
            saved[i] = a[i];
        }
    }
}

void odl_tanh_backward(float *da, unsigned n, const float *y)
{
    for (unsigned i = 0; i < n; ++i) {
        da[i] = da[i] * (1.0f - y[i] * y[i]);
    }
}

void odl_sigmoid_forward(const float *x, unsigned n, float *a, float *saved)
{
    for (unsigned i = 0; i < n; ++i) {
        a[i] = 1.0f / (1.0f + expf(-x[i]));
        if (saved != 0) {
            saved[i] = a[i];
        }
    }
}

void odl_sigmoid_backward(float *da, unsigned n, const float *y)
{
    for (unsigned i = 0; i < n; ++i) {
        da[i] = da[i] * (y[i] * (1.0f - y[i]));
    }
}

float odl_max(const float *z, unsigned n)
{
    float zmax = z[0];
    for (unsigned i = 1; i < n; ++i) {
        if (z[i] > zmax) {
            zmax = z[i];
        }
    }
    return zmax;
}

/* p_i = exp(z_i - max z) / sum_j exp(z_j - max z); the shift keeps exp from overflowing. */
void odl_softmax_forward(const float *z, unsigned n, float *p)
{
    const float zmax = odl_max(z, n);
    float sum = 0.0f;
    for (unsigned i = 0; i < n; ++i) {
        p[i] = expf(z[i] - zmax);
        sum += p[i];
    }
    for (unsigned i = 0; i < n; ++i) {
        p[i] = p[i] / sum;
    }
}
