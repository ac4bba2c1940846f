/* Dense (Table I, row 1). */
#include <stddef.h>

#include "odl_layers.h"

/* a = w^T x + b, bias added after the sum as in TensorFlow's MatMul + BiasAdd. */
void odl_dense_forward(const float *x, unsigned n_in, const float *w, const float *b, unsigned n_out,
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

/* dL/dx = w . dL/da */
void odl_dense_backward_input(const float *da, const float *w, unsigned n_in, unsigned n_out, float *dx)
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
