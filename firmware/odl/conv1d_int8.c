/*
 * conv1d_int8.c - int8 Conv1D and DepthwiseConv1D forward passes, as TFLite's reference CONV_2D and
 * DEPTHWISE_CONV_2D compute them per output channel: an int32 sum of w * (x - in_zp) over the taps that fall
 * inside the input (padding rows are the input's zero point, whose products vanish), plus the bias,
 * requantized with the channel's multiplier, shifted by the output zero point and saturated.
 */
#include <string.h>

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

static inline uint32_t load32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4u); /* one LDR on the Cortex-M4, which loads unaligned words too */
    return v;
}

static inline void store32(void *p, uint32_t v)
{
    memcpy(p, &v, 4u);
}

/*
 * The widened weights of output channels ja and jb (slots 0 and 1), k * c = taps each, in `row`: for every
 * group q of four taps, four words: slot 0's taps (0, 2) and (1, 3) as int16 pairs, then slot 1's; the
 * taps % 4 last ones then as one word per tap, slot 0 low, slot 1 high. The pairs are what SXTB16 and its
 * rotation by 8 make of a word of four int8 inputs, so SMLAD multiplies matching taps.
 */
static void widen_pair(const int8_t *w, unsigned bits, unsigned taps, unsigned ja, unsigned jb, uint8_t *row,
                       int32_t sum[2])
{
    const unsigned groups = taps / 4u, rem = taps % 4u;
    sum[0] = odl_int8_widen(w, bits, (uint32_t)ja * taps, groups, row, 16u);
    sum[1] = odl_int8_widen(w, bits, (uint32_t)jb * taps, groups, row + 8, 16u);
    row += 16u * groups;
    for (unsigned r = 0; r < rem; ++r) {
        const uint32_t t = 4u * groups + r;
        const int32_t a = odl_int8_weight(w, bits, (uint32_t)ja * taps + t);
        const int32_t b = odl_int8_weight(w, bits, (uint32_t)jb * taps + t);
        store32(row + 4u * r, odl_pack16(a, b));
        sum[0] += a;
        sum[1] += b;
    }
}

/* Tap t of slot s in a row widen_pair wrote. */
static int32_t row_weight(const uint8_t *row, unsigned groups, unsigned t, unsigned s)
{
    if (t < 4u * groups) {
        const uint32_t word = load32(row + 4u * (4u * (t / 4u) + 2u * s + (t % 2u)));
        return (t % 4u) / 2u ? odl_hi16(word) : odl_lo16(word);
    }
    const uint32_t word = load32(row + 16u * groups + 4u * (t - 4u * groups));
    return s ? odl_hi16(word) : odl_lo16(word);
}

/* Two channels (the row's slots) by two windows of contiguous inputs xa and xb: acc[slot][window] +=
 * sum w * x (the caller folds -zp * sum w into the bias). On the Cortex-M4 the loop is written out so that its
 * 14 registers stay in registers. */
static inline void dot_2x2(const int8_t *xa, const int8_t *xb, const uint8_t *row, unsigned groups, unsigned rem,
                           int32_t acc[4])
{
    int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
#if ODL_INT8_SIMD
#define ODL_ASM_SPAN 65536u /* bytes an inline-assembly loop may read from one pointer, for the compiler */
    /* Two groups per pass (an odd one first): per group xa, xb and two weight words loaded side by side, four
     * SXTB16, four SMLAD, the other two weight words side by side, four SMLAD. */
    if (groups % 2u != 0u) {
        const uint32_t va = load32(xa), vb = load32(xb);
        xa += 4;
        xb += 4;
        const uint32_t a02 = odl_sxtb16(va), a13 = odl_sxtb16_ror8(va);
        const uint32_t b02 = odl_sxtb16(vb), b13 = odl_sxtb16_ror8(vb);
        a00 = odl_smlad(a13, load32(row + 4), odl_smlad(a02, load32(row), a00));
        a01 = odl_smlad(b13, load32(row + 4), odl_smlad(b02, load32(row), a01));
        a10 = odl_smlad(a13, load32(row + 12), odl_smlad(a02, load32(row + 8), a10));
        a11 = odl_smlad(b13, load32(row + 12), odl_smlad(b02, load32(row + 8), a11));
        row += 16;
    }
    unsigned pairs = groups / 2u;
    if (pairs > 0u) {
        uint32_t t0, t1, t2, t3, w0, w1;
#define ODL_DOT_2X2_GROUP                                                                                     \
    "ldr %[t1], [%[xa]], #4\n\t"                                                                               \
    "ldr %[t3], [%[xb]], #4\n\t"                                                                               \
    "ldr %[w0], [%[row]], #4\n\t"                                                                              \
    "ldr %[w1], [%[row]], #4\n\t"                                                                              \
    "sxtb16 %[t0], %[t1]\n\t"                                                                                  \
    "sxtb16 %[t1], %[t1], ror #8\n\t"                                                                          \
    "sxtb16 %[t2], %[t3]\n\t"                                                                                  \
    "sxtb16 %[t3], %[t3], ror #8\n\t"                                                                          \
    "smlad %[a00], %[t0], %[w0], %[a00]\n\t"                                                                   \
    "smlad %[a01], %[t2], %[w0], %[a01]\n\t"                                                                   \
    "smlad %[a00], %[t1], %[w1], %[a00]\n\t"                                                                   \
    "smlad %[a01], %[t3], %[w1], %[a01]\n\t"                                                                   \
    "ldr %[w0], [%[row]], #4\n\t"                                                                              \
    "ldr %[w1], [%[row]], #4\n\t"                                                                              \
    "smlad %[a10], %[t0], %[w0], %[a10]\n\t"                                                                   \
    "smlad %[a11], %[t2], %[w0], %[a11]\n\t"                                                                   \
    "smlad %[a10], %[t1], %[w1], %[a10]\n\t"                                                                   \
    "smlad %[a11], %[t3], %[w1], %[a11]\n\t"
        /* The memory it reads, as operands (not a "memory" clobber, which would make the compiler write back
         * and reload every variable whose address was taken): the two windows' inputs and the row. */
        const uint8_t(*xa_span)[ODL_ASM_SPAN] = (const uint8_t(*)[ODL_ASM_SPAN])(const void *)xa;
        const uint8_t(*xb_span)[ODL_ASM_SPAN] = (const uint8_t(*)[ODL_ASM_SPAN])(const void *)xb;
        const uint8_t(*row_span)[ODL_ASM_SPAN] = (const uint8_t(*)[ODL_ASM_SPAN])(const void *)row;
        __asm__ volatile("1:\n\t" ODL_DOT_2X2_GROUP ODL_DOT_2X2_GROUP
                         "subs %[n], %[n], #1\n\t"
                         "bne 1b"
                         : [xa] "+r"(xa), [xb] "+r"(xb), [row] "+r"(row), [n] "+r"(pairs), [a00] "+r"(a00),
                           [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11), [t0] "=&r"(t0), [t1] "=&r"(t1),
                           [t2] "=&r"(t2), [t3] "=&r"(t3), [w0] "=&r"(w0), [w1] "=&r"(w1)
                         : "m"(*xa_span), "m"(*xb_span), "m"(*row_span)
                         : "cc");
#undef ODL_DOT_2X2_GROUP
    }
#else
    for (unsigned q = groups; q > 0u; --q) {
        const uint32_t va = load32(xa), vb = load32(xb);
        xa += 4;
        xb += 4;
        const uint32_t a02 = odl_sxtb16(va), a13 = odl_sxtb16_ror8(va);
        const uint32_t b02 = odl_sxtb16(vb), b13 = odl_sxtb16_ror8(vb);
        a00 = odl_smlad(a13, load32(row + 4), odl_smlad(a02, load32(row), a00));
        a01 = odl_smlad(b13, load32(row + 4), odl_smlad(b02, load32(row), a01));
        a10 = odl_smlad(a13, load32(row + 12), odl_smlad(a02, load32(row + 8), a10));
        a11 = odl_smlad(b13, load32(row + 12), odl_smlad(b02, load32(row + 8), a11));
        row += 16;
    }
#endif
    for (unsigned r = 0; r < rem; ++r, row += 4) {
        const uint32_t word = load32(row);
        a00 += odl_lo16(word) * xa[r];
        a01 += odl_lo16(word) * xb[r];
        a10 += odl_hi16(word) * xa[r];
        a11 += odl_hi16(word) * xb[r];
    }
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
}

/* Two channels by one window, likewise. */
static inline void dot_2x1(const int8_t *xa, const uint8_t *row, unsigned groups, unsigned rem, int32_t acc[2])
{
    int32_t a0 = acc[0], a1 = acc[1];
    for (unsigned q = groups; q > 0u; --q) {
        const uint32_t va = load32(xa);
        xa += 4;
        const uint32_t a02 = odl_sxtb16(va), a13 = odl_sxtb16_ror8(va);
        a0 = odl_smlad(a13, load32(row + 4), odl_smlad(a02, load32(row), a0));
        a1 = odl_smlad(a13, load32(row + 12), odl_smlad(a02, load32(row + 8), a1));
        row += 16;
    }
    for (unsigned r = 0; r < rem; ++r, row += 4) {
        const uint32_t word = load32(row);
        a0 += odl_lo16(word) * xa[r];
        a1 += odl_hi16(word) * xa[r];
    }
    acc[0] = a0;
    acc[1] = a1;
}

/* One output channel's requantization, its parts worked out once per call. */
typedef struct {
    odl_requant_t r;
    int32_t out_zp, act_min, act_max;
    int32_t half;  /* 2^(right - 1), 0 when right is 0 */
    uint32_t lim;  /* 2^30 when the short form applies to |acc| < 2^30 (no left shift, right >= 1), else 0 */
    int32_t up;    /* left + 1: the tiles' short form doubles acc << left */
    int32_t neg;   /* 1 when right >= 1: the rounding's correction of a negative value */
} channel_t;

static channel_t channel_of(odl_qmult_t m, const odl_int8_io_t *io)
{
    channel_t ch;
    ch.r = odl_requant_of(m);
    ch.out_zp = io->out_zp;
    ch.act_min = io->act_min;
    ch.act_max = io->act_max;
    ch.half = ch.r.right > 0 ? (int32_t)(1u << (ch.r.right - 1)) : 0;
    ch.lim = ch.r.left == 0 && ch.r.right > 0 ? 1u << 30 : 0u;
    ch.up = ch.r.left + 1;
    ch.neg = ch.r.right > 0 ? 1 : 0;
    return ch;
}

/* floor((a b + 2^31) / 2^32): SMMULR. */
static inline int32_t smmulr(int32_t a, int32_t b)
{
#if ODL_INT8_SIMD
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return (int32_t)(((int64_t)a * (int64_t)b + (1LL << 31)) >> 32);
#endif
}

/*
 * MBQM, then + out_zp, clamped. For |acc| < 2^30 without a left shift (a convolution's usual case) it is short:
 * the doubling high multiply floor((acc m + 2^30) / 2^31) is SMMULR of 2 acc, and as |high| < 2^30 the
 * rounding right shift (half away from zero) is (high + 2^(right-1) - [high < 0]) >> right without overflow.
 */
static inline int8_t requantize_fast(int32_t acc, const channel_t *ch)
{
    int32_t v;
    if ((uint32_t)acc + ch->lim < 2u * ch->lim) {
        const int32_t high = smmulr((int32_t)((uint32_t)acc << 1), ch->r.multiplier);
        v = (high + ch->half - (int32_t)((uint32_t)high >> 31)) >> ch->r.right;
    } else {
        v = odl_requant_apply(acc, &ch->r);
    }
    v += ch->out_zp;
    v = v < ch->act_min ? ch->act_min : v;
    v = v > ch->act_max ? ch->act_max : v;
    return (int8_t)v;
}

/* Where one channel pair's outputs go: y (output of position 0, slot 0) and f (the row stride); slot 1 is at
 * y + 1 when `both`. */
typedef struct {
    int8_t *y;
    unsigned f;
    int both;
    channel_t ch[2];
    int32_t base[2]; /* bias - zp sum w: a window wholly inside the input */
    int32_t bias[2];
    int fast; /* the tiles' short form for both channels: 2 without a left shift, 1 with, 0 not (see below) */
} pair_out_t;

/* Two outputs of one channel by the short form without a left shift (the usual case), its parameters loaded
 * once. */
static inline void store_two_right(int32_t a, int32_t b, const channel_t *ch, int8_t *ya, int8_t *yb)
{
    const int32_t mult = ch->r.multiplier, half = ch->half, right = ch->r.right;
    const int32_t zp = ch->out_zp, lo = ch->act_min, hi = ch->act_max;
    const int32_t ha = smmulr((int32_t)((uint32_t)a << 1), mult), hb = smmulr((int32_t)((uint32_t)b << 1), mult);
    int32_t va = ((ha + half - (int32_t)((uint32_t)ha >> 31)) >> right) + zp;
    int32_t vb = ((hb + half - (int32_t)((uint32_t)hb >> 31)) >> right) + zp;
    va = va < lo ? lo : va;
    vb = vb < lo ? lo : vb;
    va = va > hi ? hi : va;
    vb = vb > hi ? hi : vb;
    *ya = (int8_t)va;
    *yb = (int8_t)vb;
}

/* Two outputs of one channel by the short form, its parameters loaded once: high = SMMULR((acc << left) * 2,
 * m) when |acc << left| < 2^30 (the caller's bound), then the rounding shift (high + 2^(right-1) - [high < 0])
 * >> right, nothing when right is 0 (as it is whenever left is not). */
static inline void store_two_fast(int32_t a, int32_t b, const channel_t *ch, int8_t *ya, int8_t *yb)
{
    const int32_t mult = ch->r.multiplier, half = ch->half, right = ch->r.right, up = ch->up, neg = ch->neg;
    const int32_t zp = ch->out_zp, lo = ch->act_min, hi = ch->act_max;
    const int32_t ha = smmulr((int32_t)((uint32_t)a << up), mult), hb = smmulr((int32_t)((uint32_t)b << up), mult);
    int32_t va = ((ha + half - ((int32_t)((uint32_t)ha >> 31) & neg)) >> right) + zp;
    int32_t vb = ((hb + half - ((int32_t)((uint32_t)hb >> 31) & neg)) >> right) + zp;
    va = va < lo ? lo : va;
    vb = vb < lo ? lo : vb;
    va = va > hi ? hi : va;
    vb = vb > hi ? hi : vb;
    *ya = (int8_t)va;
    *yb = (int8_t)vb;
}

/* The windows [m0, m1) of one channel pair, each wholly inside the input with taps one row apart, two at a
 * time; xm is window m0's first input. */
static void inside_windows(const int8_t *xm, unsigned c, unsigned stride, unsigned m0, unsigned m1,
                           const uint8_t *wide, unsigned groups, unsigned rem, const pair_out_t *o)
{
    const uint32_t step = stride * c;
    const unsigned f = o->f;
    const channel_t c0 = o->ch[0], c1 = o->ch[1];
    const int32_t base0 = o->base[0], base1 = o->base[1];
    int8_t *ym = o->y + m0 * f;
    unsigned m = m0;
    if (o->both && o->fast == 2) {
        for (; m + 1u < m1; m += 2u, xm += 2u * step, ym += 2u * f) {
            int32_t acc[4] = {base0, base0, base1, base1};
            dot_2x2(xm, xm + step, wide, groups, rem, acc);
            store_two_right(acc[0], acc[1], &o->ch[0], ym, ym + f);
            store_two_right(acc[2], acc[3], &o->ch[1], ym + 1, ym + f + 1u);
        }
    } else if (o->both && o->fast == 1) {
        for (; m + 1u < m1; m += 2u, xm += 2u * step, ym += 2u * f) {
            int32_t acc[4] = {base0, base0, base1, base1};
            dot_2x2(xm, xm + step, wide, groups, rem, acc);
            store_two_fast(acc[0], acc[1], &o->ch[0], ym, ym + f);
            store_two_fast(acc[2], acc[3], &o->ch[1], ym + 1, ym + f + 1u);
        }
    } else if (o->both) {
        for (; m + 1u < m1; m += 2u, xm += 2u * step, ym += 2u * f) {
            int32_t acc[4] = {base0, base0, base1, base1};
            dot_2x2(xm, xm + step, wide, groups, rem, acc);
            ym[0] = requantize_fast(acc[0], &c0);
            ym[f] = requantize_fast(acc[1], &c0);
            ym[1] = requantize_fast(acc[2], &c1);
            ym[f + 1u] = requantize_fast(acc[3], &c1);
        }
    } else {
        for (; m + 1u < m1; m += 2u, xm += 2u * step, ym += 2u * f) {
            int32_t acc[4] = {base0, base0, base1, base1};
            dot_2x2(xm, xm + step, wide, groups, rem, acc);
            ym[0] = requantize_fast(acc[0], &c0);
            ym[f] = requantize_fast(acc[1], &c0);
        }
    }
    if (m < m1) {
        int32_t acc[2] = {base0, base1};
        dot_2x1(xm, wide, groups, rem, acc);
        ym[0] = requantize_fast(acc[0], &c0);
        if (o->both) {
            ym[1] = requantize_fast(acc[1], &c1);
        }
    }
}

/* Window m of one channel pair tap by tap: the taps inside the input only (padding, dilation). */
static void edge_window(const int8_t *x, unsigned n, unsigned c, unsigned k, const odl_window_t *g, unsigned m,
                        int32_t in_zp, const uint8_t *wide, unsigned groups, const pair_out_t *o)
{
    const long start = (long)m * (long)g->stride - (long)g->pad;
    int32_t a0 = o->bias[0], a1 = o->bias[1];
    for (unsigned kk = 0; kk < k; ++kk) {
        const long r = start + (long)(kk * g->dilation);
        if (!row_inside(r, n)) {
            continue;
        }
        for (unsigned ch = 0; ch < c; ++ch) {
            const int32_t xv = (int32_t)x[(uint32_t)r * c + ch] - in_zp;
            a0 += row_weight(wide, groups, kk * c + ch, 0u) * xv;
            a1 += row_weight(wide, groups, kk * c + ch, 1u) * xv;
        }
    }
    int8_t *ym = o->y + m * o->f;
    ym[0] = requantize_fast(a0, &o->ch[0]);
    if (o->both) {
        ym[1] = requantize_fast(a1, &o->ch[1]);
    }
}

/*
 * Two output channels at a time: their weights widened to int16 once per call (sub-byte ones unpacked on the
 * way, widen_pair), then two windows at a time when both lie wholly inside the input with taps one row apart
 * (each window's k * c inputs are contiguous): four accumulators, each input and weight word loaded once for
 * two products, the input zero point's share (-zp sum w) in the bias, two MACs per SMLAD. Windows that reach
 * into the padding, and dilated ones, go tap by tap. The requantization is MBQM's, its shifts worked out once
 * per channel.
 */
void odl_conv1d_forward_int8(const int8_t *x, unsigned n, unsigned c, const int8_t *w, unsigned bits,
                             const int32_t *bias, const odl_qmult_t *mult, unsigned k, unsigned f,
                             const odl_window_t *g, unsigned m_out, const odl_int8_io_t *io, int8_t *row, int8_t *y)
{
    const unsigned taps = k * c, groups = taps / 4u, rem = taps % 4u;
    uint8_t *wide = (uint8_t *)row;
    /* The windows wholly inside the input: [first, last) (none when dilated). */
    unsigned first = m_out, last = m_out;
    if (g->dilation == 1u && n >= k) {
        first = (g->pad + g->stride - 1u) / g->stride;
        last = (n - k + g->pad) / g->stride + 1u;
        last = last > m_out ? m_out : last;
        first = first > last ? last : first;
    }
    for (unsigned j = 0; j < f; j += 2u) {
        const unsigned jb = j + 1u < f ? j + 1u : j; /* an odd last channel fills both slots */
        int32_t wsum[2];
        widen_pair(w, bits, taps, j, jb, wide, wsum);
        pair_out_t o;
        o.y = y + j;
        o.f = f;
        o.both = jb != j;
        for (unsigned s = 0; s < 2u; ++s) {
            const unsigned js = s ? jb : j;
            o.ch[s] = channel_of(mult[js], io);
            o.bias[s] = bias[js];
            /* sum w (x - zp) = sum w x - zp sum w over a window wholly inside the input. */
            o.base[s] = bias[js] - io->in_zp * wsum[s];
        }
        /* |sum w x| <= k c 2^14 over int8 inputs and weights: the tiles' short form applies to every inside
         * window when |base| + k c 2^14 < 2^(30 - left) for both channels. */
        const int64_t reach = (int64_t)taps << 14;
        o.fast = 1;
        for (unsigned s = 0; s < 2u; ++s) {
            const int64_t b = o.base[s] < 0 ? -(int64_t)o.base[s] : (int64_t)o.base[s];
            o.fast = o.fast && o.ch[s].r.left < 30 && b + reach < (1LL << (30 - o.ch[s].r.left));
        }
        o.fast = o.fast && o.ch[0].lim != 0u && o.ch[1].lim != 0u ? 2 : o.fast; /* no left shift, right >= 1 */
        for (unsigned m = 0; m < first; ++m) {
            edge_window(x, n, c, k, g, m, io->in_zp, wide, groups, &o);
        }
        if (first < last) {
            inside_windows(x + (first * g->stride - g->pad) * c, c, g->stride, first, last, wide, groups, rem, &o);
        }
        for (unsigned m = last; m < m_out; ++m) {
            edge_window(x, n, c, k, g, m, io->in_zp, wide, groups, &o);
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
