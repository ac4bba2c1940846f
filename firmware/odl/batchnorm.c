/* BatchNormalization in inference mode: the moving statistics are fixed (a device that accumulates the
 * gradient of one sample at a time never sees a batch, so batch statistics cannot exist), gamma and beta may
 * train. Computed as TensorFlow's batch_normalization does: inv = gamma / sqrt(var + eps), then
 * y = x * inv + (beta - mean * inv); `inv_std` holds 1 / sqrt(var + eps) per channel. */
#include "odl_layers.h"

void odl_batchnorm_forward(const float *x, unsigned n, unsigned c, const float *gamma, const float *beta,
                           const float *mean, const float *inv_std, float *a)
{
    for (unsigned ch = 0; ch < c; ++ch) {
        const float inv = inv_std[ch] * gamma[ch];
        const float shift = beta[ch] - mean[ch] * inv;
        for (unsigned t = 0; t < n; ++t) {
            a[t * c + ch] = x[t * c + ch] * inv + shift;
        }
    }
}

/* dL/dx = dL/da * gamma / sqrt(var + eps). */
void odl_batchnorm_backward_input(const float *da, unsigned n, unsigned c, const float *gamma,
                                  const float *inv_std, float *dx)
{
    for (unsigned ch = 0; ch < c; ++ch) {
        const float inv = inv_std[ch] * gamma[ch];
        for (unsigned t = 0; t < n; ++t) {
            dx[t * c + ch] = da[t * c + ch] * inv;
        }
    }
}

/* dL/dgamma += sum_t dL/da (x - mean) / sqrt(var + eps); dL/dbeta += sum_t dL/da. */
void odl_batchnorm_backward_params(const float *da, const float *x, unsigned n, unsigned c, const float *mean,
                                   const float *inv_std, float *grad_gamma, float *grad_beta)
{
    for (unsigned ch = 0; ch < c; ++ch) {
        float acc_g = 0.0f;
        float acc_b = 0.0f;
        for (unsigned t = 0; t < n; ++t) {
            acc_g += da[t * c + ch] * ((x[t * c + ch] - mean[ch]) * inv_std[ch]);
            acc_b += da[t * c + ch];
        }
        grad_gamma[ch] += acc_g;
        grad_beta[ch] += acc_b;
    }
}
