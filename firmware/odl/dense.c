/* Dense (Table I, row 1). */
#include <stddef.h>

#include "odl_layers.h"

/* a = w^T x + b, bias added after the sum as in TensorFlow's MatMul + BiasAdd. The reference of the fast
 * kernel below. */
void odl_dense_forward_ref(const float *x, unsigned n_in, const float *w, const float *b, unsigned n_out,
                           float *a)
{
    for (unsigned j = 0; j < n_out; ++j) {
        float acc = 0.0f;
        for (unsigned i = 0; i < n_in; ++i) {
            acc += x[i] * w[i * n_out + j];
        }
        a[j] = acc + b[j];
    }
}

/* Fast: 4 outputs at a time share each x[i] load and read 4 contiguous weights; each output keeps its own
 * accumulator and the reference's order over i, so the result is the reference's bit for bit. */
void odl_dense_forward(const float *x, unsigned n_in, const float *w, const float *b, unsigned n_out, float *a)
{
    unsigned j = 0;
    for (; j + 4u <= n_out; j += 4u) {
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
        const float *wj = w + j;
        for (unsigned i = 0; i < n_in; ++i) {
            const float xi = x[i];
            const float *wi = wj + i * n_out;
            a0 += xi * wi[0];
            a1 += xi * wi[1];
            a2 += xi * wi[2];
            a3 += xi * wi[3];
        }
        a[j] = a0 + b[j];
        a[j + 1u] = a1 + b[j + 1u];
        a[j + 2u] = a2 + b[j + 2u];
        a[j + 3u] = a3 + b[j + 3u];
    }
    for (; j < n_out; ++j) {
        float acc = 0.0f;
        for (unsigned i = 0; i < n_in; ++i) {
            acc += x[i] * w[i * n_out + j];
        }
        a[j] = acc + b[j];
    }
}

/* dL/dx = w . dL/da. The reference of the fast kernel below. */
void odl_dense_backward_input_ref(const float *da, const float *w, unsigned n_in, unsigned n_out, float *dx)
{
    for (unsigned i = 0; i < n_in; ++i) {
        const float *wi = w + i * n_out;
        float acc = 0.0f;
        for (unsigned j = 0; j < n_out; ++j) {
            acc += wi[j] * da[j];
        }
        dx[i] = acc;
    }
}

/* Fast: 4 inputs at a time share each da[j] load; each keeps its own accumulator and order over j. */
void odl_dense_backward_input(const float *da, const float *w, unsigned n_in, unsigned n_out, float *dx)
{
    unsigned i = 0;
    for (; i + 4u <= n_in; i += 4u) {
        const float *w0 = w + i * n_out;
        float d0 = 0.0f, d1 = 0.0f, d2 = 0.0f, d3 = 0.0f;
        for (unsigned j = 0; j < n_out; ++j) {
            const float dj = da[j];
            d0 += w0[j] * dj;
            d1 += w0[n_out + j] * dj;
            d2 += w0[2u * n_out + j] * dj;
            d3 += w0[3u * n_out + j] * dj;
        }
        dx[i] = d0;
        dx[i + 1u] = d1;
        dx[i + 2u] = d2;
        dx[i + 3u] = d3;
    }
    for (; i < n_in; ++i) {
        const float *wi = w + i * n_out;
        float acc = 0.0f;
        for (unsigned j = 0; j < n_out; ++j) {
            acc += wi[j] * da[j];
        }
        dx[i] = acc;
    }
}

/* dL/dw = x . (dL/da)^T, dL/db = dL/da, added to the accumulators. */
void odl_dense_backward_params(const float *da, const float *x, unsigned n_in, unsigned n_out,
                               float *grad_w, float *grad_b)
{
    for (unsigned i = 0; i < n_in; ++i) {
        const float xi = x[i];
        float *gi = grad_w + i * n_out;
        for (unsigned j = 0; j < n_out; ++j) {
            gi[j] += xi * da[j];
        }
    }
    if (grad_b == NULL) { /* a layer without bias */
        return;
    }
    for (unsigned j = 0; j < n_out; ++j) {
        grad_b[j] += da[j];
    }
}
