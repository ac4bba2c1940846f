/* DepthwiseConv1D: each input channel filtered on its own by dm kernels (the efficient HAR CNNs of the
 * quantized-HAR seed build on it). Same window geometry as the general Conv1D (stride, dilation, padding),
 * the rows that exist found once per output or per tap. */
#include "odl_layers.h"

void odl_depthwise1d_forward(const float *x, unsigned n, unsigned c, const float *w, const float *b, unsigned k,
                             unsigned dm, const odl_window_t *g, unsigned m_out, float *a)
{
    const unsigned f = c * dm;
    for (unsigned m = 0; m < m_out; ++m) {
        unsigned lo, hi;
        odl_tap_range(m, n, k, g, &lo, &hi);
        for (unsigned ch = 0; ch < c; ++ch) {
            for (unsigned d = 0; d < dm; ++d) {
                float acc = 0.0f;
                for (unsigned kk = lo; kk < hi; ++kk) {
                    const unsigned row = m * g->stride + kk * g->dilation - g->pad;
                    acc += x[row * c + ch] * w[(kk * c + ch) * dm + d];
                }
                a[m * f + ch * dm + d] = acc + b[ch * dm + d];
            }
        }
    }
}

/* dx[t, c] = sum over the (m, kk) that read row t, and d, of da[m, c dm + d] w[kk, c, d]. */
void odl_depthwise1d_backward_input(const float *da, unsigned n, unsigned c, const float *w, unsigned k,
                                    unsigned dm, const odl_window_t *g, unsigned m_out, float *dx)
{
    const unsigned f = c * dm;
    for (unsigned i = 0; i < n * c; ++i) {
        dx[i] = 0.0f;
    }
    for (unsigned m = 0; m < m_out; ++m) {
        unsigned lo, hi;
        odl_tap_range(m, n, k, g, &lo, &hi);
        for (unsigned kk = lo; kk < hi; ++kk) {
            const unsigned row = m * g->stride + kk * g->dilation - g->pad;
            for (unsigned ch = 0; ch < c; ++ch) {
                float acc = 0.0f;
                for (unsigned d = 0; d < dm; ++d) {
                    acc += da[m * f + ch * dm + d] * w[(kk * c + ch) * dm + d];
                }
                dx[row * c + ch] += acc;
            }
        }
    }
}

/* grad_w[kk, c, d] += sum_m x[m s - pad + kk dil, c] da[m, c dm + d]; grad_b[j] += sum_m da[m, j]. */
void odl_depthwise1d_backward_params(const float *da, const float *x, unsigned n, unsigned c, unsigned k,
                                     unsigned dm, const odl_window_t *g, unsigned m_out, float *grad_w,
                                     float *grad_b)
{
    const unsigned f = c * dm;
    for (unsigned kk = 0; kk < k; ++kk) {
        unsigned lo, hi;
        odl_output_range(kk, n, m_out, g, &lo, &hi);
        for (unsigned ch = 0; ch < c; ++ch) {
            for (unsigned d = 0; d < dm; ++d) {
                float acc = 0.0f;
                for (unsigned m = lo; m < hi; ++m) {
                    const unsigned row = m * g->stride + kk * g->dilation - g->pad;
                    acc += x[row * c + ch] * da[m * f + ch * dm + d];
                }
                grad_w[(kk * c + ch) * dm + d] += acc;
            }
        }
    }
    odl_bias_gradient(da, m_out, f, grad_b);
}
