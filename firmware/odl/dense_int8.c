/*
 * dense_int8.c - int8 Dense forward pass, as TFLite's reference FULLY_CONNECTED computes it: an int32 sum
 * of w * (x - in_zp) plus the bias, then requantized in double precision, round(acc * real_scale) half away
 * from zero (not with a fixed-point multiplier, unlike the convolutions), + out_zp, saturated. On the
 * Cortex-M4F the double product is a library call per output, a few dozen outputs per window.
 */
#include "odl_int8_layers.h"

static int8_t requantize_double(int32_t acc, double real_scale, const odl_int8_io_t *io)
{
    const double v = (double)acc * real_scale;
    /* Round half away from zero without libm: |v| < 2^31 * 2^k stays exact through the truncation. */
    double r;
    if (v >= 2147483647.0) {
        r = 2147483647.0;
    } else if (v <= -2147483648.0) {
        r = -2147483648.0;
    } else {
        r = (double)(long long)v; /* truncated toward zero */
        const double frac = v - r;
        r += frac >= 0.5 ? 1.0 : (frac <= -0.5 ? -1.0 : 0.0);
    }
    long long q = (long long)r + io->out_zp;
    q = q < io->act_min ? io->act_min : q;
    q = q > io->act_max ? io->act_max : q;
    return (int8_t)q;
}

void odl_dense_forward_int8_ref(const int8_t *x, unsigned n_in, const int8_t *w, unsigned bits,
                                const int32_t *bias, const double *real_scale, unsigned n_out,
                                const odl_int8_io_t *io, int8_t *y)
{
    for (unsigned j = 0; j < n_out; ++j) {
        int32_t acc = bias[j];
        for (unsigned i = 0; i < n_in; ++i) {
            acc += odl_int8_weight(w, bits, (uint32_t)j * n_in + i) * ((int32_t)x[i] - io->in_zp);
        }
        y[j] = requantize_double(acc, real_scale[j], io);
    }
}

/* sum w * (x - zp) = dot(x, w) - zp * sum w, the dot product on contiguous rows. */
void odl_dense_forward_int8(const int8_t *x, unsigned n_in, const int8_t *w, unsigned bits, const int32_t *bias,
                            const double *real_scale, unsigned n_out, const odl_int8_io_t *io, int8_t *row,
                            int8_t *y)
{
    for (unsigned j = 0; j < n_out; ++j) {
        int32_t wsum = 0;
        const int8_t *wj = odl_int8_row(w, bits, (uint32_t)j * n_in, n_in, row, &wsum);
        const int32_t acc = bias[j] + odl_dot_int8(x, wj, n_in) - io->in_zp * wsum;
        y[j] = requantize_double(acc, real_scale[j], io);
    }
}
