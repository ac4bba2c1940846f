/* AvgPool1D and GlobalAveragePooling1D (Table I, rows 4 and 5). Both divide by the window length,
 * as TensorFlow's AvgPool, Mean and their gradients do, rather than multiplying by a reciprocal. */
#include "odl_layers.h"

/* a[m, c] = (1/p) sum_{i<p} x[m p + i, c] for m < floor(n / p); trailing inputs are dropped (Keras
 * 'valid' pooling). */
void odl_avgpool1d_forward(const float *x, unsigned n, unsigned c, unsigned p, float *a)
{
    const unsigned m_out = n / p;
    const float div = (float)p;
    for (unsigned m = 0; m < m_out; ++m) {
        for (unsigned ch = 0; ch < c; ++ch) {
            float acc = 0.0f;
            for (unsigned i = 0; i < p; ++i) {
                acc += x[(m * p + i) * c + ch];
            }
            a[m * c + ch] = acc / div;
        }
    }
}

/* dL/dx[m p + i, c] = dL/da[m, c] / p; the dropped trailing inputs get a zero gradient. */
void odl_avgpool1d_backward_input(const float *da, unsigned n, unsigned c, unsigned p, float *dx)
{
    const unsigned m_out = n / p;
    const float div = (float)p;
    for (unsigned m = 0; m < m_out; ++m) {
        for (unsigned ch = 0; ch < c; ++ch) {
            const float g = da[m * c + ch] / div;
            for (unsigned i = 0; i < p; ++i) {
                dx[(m * p + i) * c + ch] = g;
            }
        }
    }
    for (unsigned t = m_out * p * c; t < n * c; ++t) {
        dx[t] = 0.0f;
    }
}

/* a[c] = (1/n) sum_t x[t, c] */
void odl_gap1d_forward(const float *x, unsigned n, unsigned c, float *a)
{
    const float div = (float)n;
    for (unsigned ch = 0; ch < c; ++ch) {
        float acc = 0.0f;
        for (unsigned t = 0; t < n; ++t) {
            acc += x[t * c + ch];
        }
        a[ch] = acc / div;
    }
}

/* dL/dx[t, c] = dL/da[c] / n */
void odl_gap1d_backward_input(const float *da, unsigned n, unsigned c, float *dx)
{
    const float div = (float)n;
    for (unsigned ch = 0; ch < c; ++ch) {
        const float g = da[ch] / div;
        for (unsigned t = 0; t < n; ++t) {
            dx[t * c + ch] = g;
        }
    }
}
