/*
 * pool1d_int8.c - int8 AvgPool1D, MaxPool1D, GlobalAveragePooling1D and GlobalMaxPooling1D, as TFLite's
 * reference AVERAGE_POOL_2D, MAX_POOL_2D, MEAN and REDUCE_MAX compute them (the max pools' input and output
 * share scale and zero point).
 */
#include <string.h>

#include "odl_int8_layers.h"

void odl_avgpool1d_forward_int8_ref(const int8_t *x, unsigned n, unsigned c, unsigned p, const odl_window_t *g,
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

/* The reference's arithmetic with the window's rows as pointers; a window of two rows (the usual pool of 2)
 * divides by a shift: (sum - 1) / 2 truncated is floor(sum / 2) for sum <= 0, and (sum + 1) / 2 is
 * floor((sum + 1) / 2) for sum > 0. */
void odl_avgpool1d_forward_int8(const int8_t *x, unsigned n, unsigned c, unsigned p, const odl_window_t *g,
                                unsigned m_out, const odl_int8_io_t *io, int8_t *y)
{
    const int32_t lo_clamp = io->act_min, hi_clamp = io->act_max;
    for (unsigned m = 0; m < m_out; ++m, y += c) {
        unsigned lo, hi;
        odl_pool_window(m, n, p, g, &lo, &hi);
        const int32_t count = (int32_t)(hi - lo);
        const int8_t *r0 = x + lo * c;
        if (count == 2) {
            const int8_t *r1 = r0 + c;
            unsigned ch = 0;
            if (lo_clamp == -128 && hi_clamp == 127) {
                /* Four channels per word: h = floor(s / 2) per byte (SHADD8), plus 1 where s is odd and
                 * positive, that is where a ^ b is odd and h >= 0 (h's sign bit, shifted to bit 0 of its byte,
                 * clear); h + 1 stays in its byte (h = 127 only for s = 254, even). */
                for (; ch + 4u <= c; ch += 4u) {
                    uint32_t a, b;
                    memcpy(&a, r0 + ch, 4u);
                    memcpy(&b, r1 + ch, 4u);
                    const uint32_t h = odl_shadd8(a, b);
                    const uint32_t v = h + ((a ^ b) & ~(h >> 7) & 0x01010101u);
                    memcpy(y + ch, &v, 4u);
                }
            }
            for (; ch < c; ++ch) {
                const int32_t sum = (int32_t)r0[ch] + (int32_t)r1[ch];
                int32_t avg = (sum + (sum > 0 ? 1 : 0)) >> 1;
                avg = avg < lo_clamp ? lo_clamp : avg;
                avg = avg > hi_clamp ? hi_clamp : avg;
                y[ch] = (int8_t)avg;
            }
            continue;
        }
        for (unsigned ch = 0; ch < c; ++ch) {
            int32_t sum = 0;
            for (int32_t r = 0; r < count; ++r) {
                sum += r0[(unsigned)r * c + ch];
            }
            int32_t avg = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
            avg = avg < lo_clamp ? lo_clamp : avg;
            avg = avg > hi_clamp ? hi_clamp : avg;
            y[ch] = (int8_t)avg;
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

void odl_gap1d_forward_int8_ref(const int8_t *x, unsigned n, unsigned c, odl_qmult_t mult, const odl_int8_io_t *io,
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

/* Four channels at a time: the rows' bytes summed as int16 pairs (SXTAB16: channels 0 and 2, 1 and 3 of the
 * word), at most 256 rows before they move into int32 (|sum| <= 256 * 128 fits an int16). */
void odl_gap1d_forward_int8(const int8_t *x, unsigned n, unsigned c, odl_qmult_t mult, const odl_int8_io_t *io,
                            int8_t *y)
{
    const int32_t correction = io->in_zp * (int32_t)n;
    unsigned ch = 0;
    for (; ch + 4u <= c; ch += 4u) {
        int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (unsigned r0 = 0; r0 < n; r0 += 256u) {
            const unsigned r1 = n - r0 > 256u ? r0 + 256u : n;
            uint32_t a02 = 0u, a13 = 0u;
            for (unsigned r = r0; r < r1; ++r) {
                uint32_t v;
                memcpy(&v, x + r * c + ch, 4u);
                a02 = odl_sxtab16(a02, v);
                a13 = odl_sxtab16_ror8(a13, v);
            }
            s0 += odl_lo16(a02);
            s1 += odl_lo16(a13);
            s2 += odl_hi16(a02);
            s3 += odl_hi16(a13);
        }
        const int32_t sums[4] = {s0, s1, s2, s3};
        for (unsigned i = 0; i < 4u; ++i) {
            y[ch + i] = odl_int8_saturate(odl_mbqm(sums[i] - correction, mult) + io->out_zp, io);
        }
    }
    for (; ch < c; ++ch) {
        int32_t sum = 0;
        for (unsigned r = 0; r < n; ++r) {
            sum += x[r * c + ch];
        }
        y[ch] = odl_int8_saturate(odl_mbqm(sum - correction, mult) + io->out_zp, io);
    }
}
