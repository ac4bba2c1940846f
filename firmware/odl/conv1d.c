/* Conv1D (Table I, row 2): cross-correlation with valid padding and stride 1, as Keras computes it. */
#include "odl_layers.h"

/* a[m, j] = sum_{k, c} x[m + k, c] * w[k, c, j] + b[j]. In channels-last memory the K*C inputs of one
 * output are contiguous, so each output is one dot product kept in a register. The bias is added
 * after the sum, in the order TensorFlow's Conv + BiasAdd uses. */
void odl_conv1d_forward(const float *x, unsigned n, unsigned c, const float *w, const float *b,
                        unsigned k, unsigned f, float *a)
{
    const unsigned m_out = n - k + 1u;
    const unsigned kc = k * c;
    for (unsigned m = 0; m < m_out; ++m) {
        const float *xm = x + m * c;
        float *am = a + m * f;
        for (unsigned j = 0; j < f; ++j) {
            const float *wj = w + j;
            float acc = 0.0f;
            for (unsigned i = 0; i < kc; ++i) {
                acc += xm[i] * wj[i * f];
            }
            am[j] = acc + b[j];
        }
    }
}

/* dL/dx = conv(pad(dL/da), flip(w)) (the paper's eq. 5): dx[t, c] = sum_{k, j} da[t - k, j] w[k, c, j].
 * Instead of materialising the K-1 zeros of padding on each side, the k range is clipped to the rows
 * of da that exist, which is the same sum without the zero terms. */
void odl_conv1d_backward_input(const float *da, unsigned n, unsigned c, const float *w, unsigned k,
                               unsigned f, float *dx)
{
    const unsigned m_out = n - k + 1u;
    for (unsigned t = 0; t < n; ++t) {
        const unsigned k_lo = (t + 1u > m_out) ? t + 1u - m_out : 0u;
        const unsigned k_hi = (t < k - 1u) ? t : k - 1u;
        for (unsigned ch = 0; ch < c; ++ch) {
            float acc = 0.0f;
            for (unsigned kk = k_lo; kk <= k_hi; ++kk) {
                const float *dam = da + (t - kk) * f;
                const float *wk = w + (kk * c + ch) * f;
                for (unsigned j = 0; j < f; ++j) {
                    acc += dam[j] * wk[j];
                }
            }
            dx[t * c + ch] = acc;
        }
    }
}

/* dL/dw = conv(x, dL/da): grad_w[k, c, j] += sum_m x[m + k, c] da[m, j]; grad_b[j] += sum_m da[m, j].
 * The per-sample sum is formed first and then added to the accumulator, so one sample's rounding
 * does not depend on what was accumulated before it. */
void odl_conv1d_backward_params(const float *da, const float *x, unsigned n, unsigned c, unsigned k,
                                unsigned f, float *grad_w, float *grad_b)
{
    const unsigned m_out = n - k + 1u;
    const unsigned kc = k * c;
    for (unsigned i = 0; i < kc; ++i) {
        for (unsigned j = 0; j < f; ++j) {
            float acc = 0.0f;
            for (unsigned m = 0; m < m_out; ++m) {
                acc += x[m * c + i] * da[m * f + j];
            }
            grad_w[i * f + j] += acc;
        }
    }
    for (unsigned j = 0; j < f; ++j) {
        float acc = 0.0f;
        for (unsigned m = 0; m < m_out; ++m) {
            acc += da[m * f + j];
        }
        grad_b[j] += acc;
    }
}
