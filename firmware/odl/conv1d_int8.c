/*
 * conv1d_int8.c - int8 Conv1D and DepthwiseConv1D forward passes, as TFLite's reference CONV_2D and
 * DEPTHWISE_CONV_2D compute them per output channel: an int32 sum of w * (x - in_zp) over the taps that fall
 * inside the input (padding rows are the input's zero point, whose products vanish), plus the bias,
 * requantized with the channel's multiplier, shifted by the output zero point and saturated.
 */
#include "odl_int8_layers.h"

static inline int8_t requantize(int32_t acc, odl_qmult_t m, const odl_int8_io_t *io)
{
    return odl_int8_saturate(odl_mbqm(acc, m) + io->out_zp, io);
}

static int row_inside(long row, unsigned n)
{
    return row >= 0 && row < (long)n;
}

void odl_conv1d_forward_int8_ref(const int8_t *x, unsigned n, unsigned c, const int8_t *w, unsigned bits,
                                 const int32_t *bias, const odl_qmult_t *mult, unsigned k, unsigned f,
                                 const odl_window_t *g, unsigned m_out, const odl_int8_io_t *io, int8_t *y)
{
    for (unsigned m = 0; m < m_out; ++m) {
        const long start = (long)m * (long)g->stride - (long)g->pad;
        for (unsigned j = 0; j < f; ++j) {
            int32_t acc = bias[j];
            for (unsigned kk = 0; kk < k; ++kk) {
                const long row = start + (long)(kk * g->dilation);
                if (!row_inside(row, n)) {
                    continue;
                }
                for (unsigned ch = 0; ch < c; ++ch) {
                    const int32_t wv = odl_int8_weight(w, bits, ((uint32_t)j * k + kk) * c + ch);
                    acc += wv * ((int32_t)x[(uint32_t)row * c + ch] - io->in_zp);
                }
            }
            y[m * f + j] = requantize(acc, mult[j], io);
        }
    }
}

/* The taps of output m that fall inside the input, one by one (a window reaching into the padding, or
 * dilated): sum w * (x - zp). */
static int32_t taps_inside(const int8_t *x, unsigned n, unsigned c, const int8_t *wj, unsigned k, long start,
                           const odl_window_t *g, int32_t in_zp)
{
    int32_t acc = 0;
    for (unsigned kk = 0; kk < k; ++kk) {
        const long r = start + (long)(kk * g->dilation);
        if (!row_inside(r, n)) {
            continue;
        }
        for (unsigned ch = 0; ch < c; ++ch) {
            acc += (int32_t)wj[kk * c + ch] * ((int32_t)x[(uint32_t)r * c + ch] - in_zp);
        }
    }
    return acc;
}

/* Output channel by output channel: its weights (unpacked into `row` when sub-byte) and their sum, so that
 * a window lying wholly inside the input costs one contiguous inner product of k * c bytes:
 * sum w * (x - zp) = dot(x, w) - zp * sum w; two neighbouring windows share each weight load. Windows that
 * reach into the padding, and dilated ones, take the tap-by-tap path. */
void odl_conv1d_forward_int8(const int8_t *x, unsigned n, unsigned c, const int8_t *w, unsigned bits,
                             const int32_t *bias, const odl_qmult_t *mult, unsigned k, unsigned f,
                             const odl_window_t *g, unsigned m_out, const odl_int8_io_t *io, int8_t *row, int8_t *y)
{
    const unsigned taps = k * c;
    for (unsigned j = 0; j < f; ++j) {
        int32_t wsum = 0;
        const int8_t *wj = odl_int8_row(w, bits, (uint32_t)j * taps, taps, row, &wsum);
        const int32_t base = bias[j] - io->in_zp * wsum;
        const odl_qmult_t mj = mult[j];
        for (unsigned m = 0; m < m_out;) {
            const long start = (long)m * (long)g->stride - (long)g->pad;
            const int inside = g->dilation == 1u && start >= 0 && start + (long)k <= (long)n;
            const long next = start + (long)g->stride;
            if (inside && m + 1u < m_out && next + (long)k <= (long)n) {
                int32_t a0, a1;
                odl_dot2_int8(x + (uint32_t)start * c, x + (uint32_t)next * c, wj, taps, &a0, &a1);
                y[m * f + j] = requantize(base + a0, mj, io);
                y[(m + 1u) * f + j] = requantize(base + a1, mj, io);
                m += 2u;
                continue;
            }
            const int32_t acc = inside ? base + odl_dot_int8(x + (uint32_t)start * c, wj, taps)
                                       : bias[j] + taps_inside(x, n, c, wj, k, start, g, io->in_zp);
            y[m * f + j] = requantize(acc, mj, io);
            ++m;
        }
    }
}

void odl_depthwise1d_forward_int8(const int8_t *x, unsigned n, unsigned c, const int8_t *w, unsigned bits,
                                  const int32_t *bias, const odl_qmult_t *mult, unsigned k, unsigned dm,
                                  const odl_window_t *g, unsigned m_out, const odl_int8_io_t *io, int8_t *y)
{
    const unsigned out_ch = c * dm;
    for (unsigned m = 0; m < m_out; ++m) {
        const long start = (long)m * (long)g->stride - (long)g->pad;
        for (unsigned o = 0; o < out_ch; ++o) {
            const unsigned ch = o / dm;
            int32_t acc = bias[o];
            for (unsigned kk = 0; kk < k; ++kk) {
                const long row = start + (long)(kk * g->dilation);
                if (row_inside(row, n)) {
                    acc += odl_int8_weight(w, bits, kk * out_ch + o) * ((int32_t)x[(uint32_t)row * c + ch] - io->in_zp);
                }
            }
            y[m * out_ch + o] = requantize(acc, mult[o], io);
        }
    }
}
