/*
 * pool1d_int8.c - int8 AvgPool1D, MaxPool1D, GlobalAveragePooling1D and GlobalMaxPooling1D, as TFLite's
 * reference AVERAGE_POOL_2D, MAX_POOL_2D, MEAN and REDUCE_MAX compute them (the max pools' input and output
 * share scale and zero point).
 */
#include "odl_int8_layers.h"

void odl_avgpool1d_forward_int8(const int8_t *x, unsigned n, unsigned c, unsigned p, const odl_window_t *g,
                                unsigned m_out, const odl_int8_io_t *io, int8_t *y)
{
    for (unsigned m = 0; m < m_out; ++m) {
        unsigned lo, hi;
        odl_pool_window(m, n, p, g, &lo, &hi);
        const int32_t count = (int32_t)(hi - lo);
        for (unsigned ch = 0; ch < c; ++ch) {
            int32_t sum = 0;
            for (unsigned r = lo; r < hi; ++r) {
                sum += x[r * c + ch];
            }
            /* Rounded half away from zero; C's division truncates toward zero. */
            const int32_t avg = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
            y[m * c + ch] = odl_int8_saturate(avg, io);
        }
    }
}

void odl_maxpool1d_forward_int8(const int8_t *x, unsigned n, unsigned c, unsigned p, const odl_window_t *g,
                                unsigned m_out, const odl_int8_io_t *io, int8_t *y)
{
    for (unsigned m = 0; m < m_out; ++m) {
        unsigned lo, hi;
        odl_pool_window(m, n, p, g, &lo, &hi);
        for (unsigned ch = 0; ch < c; ++ch) {
            int32_t best = -128;
            for (unsigned r = lo; r < hi; ++r) {
                best = x[r * c + ch] > best ? x[r * c + ch] : best;
            }
            y[m * c + ch] = odl_int8_saturate(best, io);
        }
    }
}

/* REDUCE_MAX over the rows: the largest int8 value, no requantization (its output keeps the input's
 * parameters); clamped to the layer's activation range as the other kernels' outputs are. */
void odl_gmp1d_forward_int8(const int8_t *x, unsigned n, unsigned c, const odl_int8_io_t *io, int8_t *y)
{
    for (unsigned ch = 0; ch < c; ++ch) {
        int32_t best = -128;
        for (unsigned r = 0; r < n; ++r) {
            best = x[r * c + ch] > best ? x[r * c + ch] : best;
        }
        y[ch] = odl_int8_saturate(best, io);
    }
}

odl_qmult_t odl_mean_multiplier(odl_qmult_t m, uint32_t n)
{
    /* As TFLite's QuantizedMeanOrSum: move as many bits of n into the multiplier as it has room for, then
     * divide the multiplier by n. */
    int k = 0;
    while (k < 31 && (n >> (k + 1)) != 0u) {
        ++k; /* floor(log2 n) */
    }
    if (k > 31 + m.shift) {
        k = 31 + m.shift;
    }
    const int64_t folded = ((int64_t)m.multiplier << k) / (int64_t)n;
    odl_qmult_t r = {(int32_t)folded, m.shift - k};
    return r;
}

void odl_gap1d_forward_int8(const int8_t *x, unsigned n, unsigned c, odl_qmult_t mult, const odl_int8_io_t *io,
                            int8_t *y)
{
    for (unsigned ch = 0; ch < c; ++ch) {
        int32_t sum = 0;
        for (unsigned r = 0; r < n; ++r) {
            sum += x[r * c + ch];
        }
        sum -= io->in_zp * (int32_t)n;
        y[ch] = odl_int8_saturate(odl_mbqm(sum, mult) + io->out_zp, io);
    }
}
