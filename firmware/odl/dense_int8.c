/*
 * dense_int8.c - int8 Dense forward pass, as TFLite's reference FULLY_CONNECTED computes it: an int32 sum
 * of w * (x - in_zp) plus the bias, then requantized in double precision, round(acc * real_scale) half away
 * from zero (not with a fixed-point multiplier, unlike the convolutions), + out_zp, saturated.
 *
 * The reference kernel below does that double product (a libgcc call per output on the Cortex-M4F); the fast
 * one computes the same result with integer multiplies from the double's bits (odl_dense_round).
 */
#include <string.h>

#include "odl_int8_layers.h"

static int8_t saturate_rounded(int64_t r, const odl_int8_io_t *io)
{
    int64_t q = r + io->out_zp;
    q = q < io->act_min ? io->act_min : q;
    q = q > io->act_max ? io->act_max : q;
    return (int8_t)q;
}

static int64_t round_double(int32_t acc, double real_scale)
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
    return (int64_t)r;
}

static int8_t requantize_double(int32_t acc, double real_scale, const odl_int8_io_t *io)
{
    return saturate_rounded(round_double(acc, real_scale), io);
}

/* Bits of the magnitude above which every output saturates: |r| >= 2^9 is beyond any int8 clamp after any
 * int8 zero point. */
#define ROUND_LIMIT 512u

/*
 * round(acc * real_scale) half away from zero, where acc * real_scale is first rounded to a double (to nearest,
 * ties to even, as the FPU or libgcc's __aeabi_dmul does), computed with integers: real_scale = M * 2^-k with
 * M the 53-bit mantissa; P = |acc| * M exactly (at most 84 bits: ph * 2^32 + pl); P rounded to its 53 leading
 * bits (the double product); then (P + 2^(k-1)) >> k. Magnitudes of ROUND_LIMIT and more come back as
 * +-ROUND_LIMIT (the clamp makes them equal). Zero, subnormal, infinite or NaN scales take the double path.
 */
int32_t odl_dense_round(int32_t acc, double real_scale)
{
    uint64_t bits;
    memcpy(&bits, &real_scale, sizeof bits);
    const uint32_t biased = (uint32_t)(bits >> 52) & 0x7FFu;
    if (biased == 0u || biased == 0x7FFu || (bits >> 63) != 0u) {
        const int64_t r = round_double(acc, real_scale);
        return r >= (int64_t)ROUND_LIMIT ? (int32_t)ROUND_LIMIT
                                         : (r <= -(int64_t)ROUND_LIMIT ? -(int32_t)ROUND_LIMIT : (int32_t)r);
    }
    if (acc == 0) {
        return 0;
    }
    const uint32_t ua = acc < 0 ? 0u - (uint32_t)acc : (uint32_t)acc;
    const uint64_t mant = (bits & 0xFFFFFFFFFFFFFull) | (1ull << 52);
    const int k = 1075 - (int)biased; /* real_scale = mant * 2^-k */
    if (k <= 32) {                    /* real_scale >= 2^20: |acc| >= 1 saturates */
        return acc < 0 ? -(int32_t)ROUND_LIMIT : (int32_t)ROUND_LIMIT;
    }
    const uint64_t lo = (uint64_t)ua * (uint32_t)mant;
    uint64_t ph = (uint64_t)ua * (uint32_t)(mant >> 32) + (lo >> 32); /* >= 2^20, < 2^53 */
    uint32_t pl = (uint32_t)lo;
    /* P has 32 + bitlen(ph) bits; the double keeps 53: drop d = bitlen(ph) - 21 (0..31) low bits of pl. */
    const unsigned d = (unsigned)(64 - __builtin_clzll(ph)) - 21u;
    if (d > 0u) {
        const uint32_t mask = (1u << d) - 1u;
        const uint32_t dropped = pl & mask, half = 1u << (d - 1u);
        const uint32_t keep = pl - dropped;
        if (dropped > half || (dropped == half && ((pl >> d) & 1u) != 0u)) {
            const uint64_t up = (uint64_t)keep + (1ull << d);
            pl = (uint32_t)up;
            ph += up >> 32;
        } else {
            pl = keep;
        }
    }
    (void)pl; /* below 2^(k-1) >= 2^32: it cannot change the rounding to an integer */
    /* (P + 2^(k-1)) >> k = (ph + 2^(k-33)) >> (k - 32), k >= 33. */
    const unsigned s = (unsigned)(k - 32);
    uint64_t r = 0u;
    if (s < 60u) {
        r = (ph + (1ull << (s - 1u))) >> s;
    }
    const int32_t m = r >= ROUND_LIMIT ? (int32_t)ROUND_LIMIT : (int32_t)r;
    return acc < 0 ? -m : m;
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

/* sum w (x - zp) over `groups` groups of four: the inputs widened with -zp added (SXTAB16), the weights as
 * odl_int8_widen left them in `row`. */
static int32_t dot_widened(const int8_t *x, const uint8_t *row, unsigned groups, int32_t zp)
{
    const uint32_t off = odl_pack16(-zp, -zp);
    int32_t acc = 0;
    for (unsigned q = 0; q < groups; ++q, x += 4, row += 8) {
        uint32_t v, w02, w13;
        memcpy(&v, x, 4u);
        memcpy(&w02, row, 4u);
        memcpy(&w13, row + 4, 4u);
        acc = odl_smlad(odl_sxtab16(off, v), w02, acc);
        acc = odl_smlad(odl_sxtab16_ror8(off, v), w13, acc);
    }
    return acc;
}

/* Output by output, sum w * (x - zp) with the zero point subtracted as the inputs are widened: 8-bit weights
 * straight from the tensor (odl_dot_int8_zp), sub-byte ones widened into `row` first (odl_int8_widen, whole
 * bytes at a time); the rounding in integers. */
void odl_dense_forward_int8(const int8_t *x, unsigned n_in, const int8_t *w, unsigned bits, const int32_t *bias,
                            const double *real_scale, unsigned n_out, const odl_int8_io_t *io, int8_t *row,
                            int8_t *y)
{
    const unsigned groups = n_in / 4u;
    for (unsigned j = 0; j < n_out; ++j) {
        const uint32_t first = (uint32_t)j * n_in;
        int32_t acc = bias[j];
        if (bits == 8u) {
            acc += odl_dot_int8_zp(x, w + first, n_in, io->in_zp);
        } else {
            (void)odl_int8_widen(w, bits, first, groups, (uint8_t *)row, 8u);
            acc += dot_widened(x, (const uint8_t *)row, groups, io->in_zp);
            for (unsigned i = 4u * groups; i < n_in; ++i) {
                acc += odl_int8_weight(w, bits, first + i) * ((int32_t)x[i] - io->in_zp);
            }
        }
        y[j] = saturate_rounded(odl_dense_round(acc, real_scale[j]), io);
    }
}
