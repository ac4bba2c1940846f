/*
 * odl_int8_layers.h - the int8 inference kernels, one file per layer family beside the float ones
 * (conv1d_int8.c, dense_int8.c, pool1d_int8.c, activation_int8.c), each a TFLite reference kernel's
 * arithmetic. Activations are int8 channels-last; an output is saturated to [act_min, act_max].
 */
#ifndef ODL_INT8_LAYERS_H
#define ODL_INT8_LAYERS_H

#include <stdint.h>

#include "odl_int8.h"
#include "odl_layers.h"

/* What a kernel needs to know of its input and output tensors. */
typedef struct {
    int32_t in_zp, out_zp;
    int32_t act_min, act_max;
} odl_int8_io_t;

/* gemmlowp's fixed point, inline in every kernel (fixedpoint.c exports them under odl_ names). */
static inline int32_t odl_srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    const int64_t ab = (int64_t)a * (int64_t)b;
    /* (ab + nudge) / 2^31 truncated toward zero: an arithmetic shift after adding 2^31 - 1 to a negative sum. */
    const int64_t nudged = ab >= 0 ? ab + (1LL << 30) : ab + (1LL - (1LL << 30)) + ((1LL << 31) - 1);
    return (int32_t)(nudged >> 31);
}

/* x / 2^exponent rounded half away from zero. >> of a negative int is an arithmetic shift on every compiler
 * this builds with, as TFLite assumes. */
static inline int32_t odl_rdbpot(int32_t x, int exponent)
{
    if (exponent <= 0) {
        return x;
    }
    const int32_t mask = (int32_t)((1u << exponent) - 1u); /* exponent <= 31 */
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLite's MultiplyByQuantizedMultiplier with two roundings; the left shift wraps in int32 as TFLite's. */
static inline int32_t odl_mbqm(int32_t x, odl_qmult_t m)
{
    const int left = m.shift > 0 ? m.shift : 0;
    const int right = m.shift > 0 ? 0 : -m.shift;
    return odl_rdbpot(odl_srdhm((int32_t)((uint32_t)x << left), m.multiplier), right);
}

/* MBQM with its parts worked out once per output channel (odl_requant_of): the same result as odl_mbqm. The
 * multiplier is never INT32_MIN (QuantizeMultiplier's are in [2^30, 2^31) or 0), so the doubling high multiply
 * never saturates and is floor((x m + 2^30) / 2^31) for either sign. */
typedef struct {
    int32_t multiplier;
    int32_t left;  /* left shift of x, 0..31 */
    int32_t right; /* rounding right shift, 0..31 */
    int32_t mask;  /* 2^right - 1 */
} odl_requant_t;

static inline odl_requant_t odl_requant_of(odl_qmult_t m)
{
    odl_requant_t r;
    r.multiplier = m.multiplier;
    r.left = m.shift > 0 ? m.shift : 0;
    r.right = m.shift > 0 ? 0 : -m.shift;
    r.mask = (int32_t)((1u << r.right) - 1u);
    return r;
}

static inline int32_t odl_requant_apply(int32_t x, const odl_requant_t *r)
{
    const int32_t xs = (int32_t)((uint32_t)x << r->left);
    const int32_t high = (int32_t)(((int64_t)xs * (int64_t)r->multiplier + (1LL << 30)) >> 31);
    const int32_t remainder = high & r->mask;
    const int32_t threshold = (r->mask >> 1) + (high < 0 ? 1 : 0);
    return (high >> r->right) + (remainder > threshold ? 1 : 0);
}

/* The signed low and high int16 halves of a word, and two int16 values as one word (low first). */
static inline int32_t odl_lo16(uint32_t v)
{
    return (int32_t)(v & 0xFFFFu) - (int32_t)((v & 0x8000u) << 1);
}

static inline int32_t odl_hi16(uint32_t v)
{
    return odl_lo16(v >> 16);
}

static inline uint32_t odl_pack16(int32_t lo, int32_t hi)
{
    return ((uint32_t)hi << 16) | ((uint32_t)lo & 0xFFFFu);
}

/* The Cortex-M4's SIMD instructions the int8 kernels are made of, as inline assembly where the compiler
 * targets them and as portable C (the same results) elsewhere: SXTB16 (bytes 0 and 2 of a word, or 1 and 3
 * after a rotation by 8, sign-extended to two int16 halves), SXTAB16 (the same added to two int16 halves) and
 * SMLAD (acc + lo(a) lo(b) + hi(a) hi(b) on int16 halves). */
#if defined(__ARM_FEATURE_SIMD32) && __ARM_FEATURE_SIMD32
#define ODL_INT8_SIMD 1
static inline uint32_t odl_sxtb16(uint32_t v)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(v));
    return r;
}

static inline uint32_t odl_sxtb16_ror8(uint32_t v)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

static inline uint32_t odl_sxtab16(uint32_t a, uint32_t v)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2" : "=r"(r) : "r"(a), "r"(v));
    return r;
}

static inline uint32_t odl_sxtab16_ror8(uint32_t a, uint32_t v)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(v));
    return r;
}

static inline int32_t odl_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}

/* floor((a + b) / 2) in each of four signed bytes. */
static inline uint32_t odl_shadd8(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("shadd8 %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

/* a - b in each of two int16 halves. */
static inline uint32_t odl_ssub16(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("ssub16 %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
#else
#define ODL_INT8_SIMD 0

static inline int32_t odl_byte_at(uint32_t v, unsigned b)
{
    return (int32_t)((v >> (8u * b)) & 0xFFu) - (int32_t)(((v >> (8u * b)) & 0x80u) << 1);
}

static inline uint32_t odl_sxtb16(uint32_t v)
{
    return odl_pack16(odl_byte_at(v, 0u), odl_byte_at(v, 2u));
}

static inline uint32_t odl_sxtb16_ror8(uint32_t v)
{
    return odl_pack16(odl_byte_at(v, 1u), odl_byte_at(v, 3u));
}

static inline uint32_t odl_sxtab16(uint32_t a, uint32_t v)
{
    return odl_pack16(odl_lo16(a) + odl_byte_at(v, 0u), odl_hi16(a) + odl_byte_at(v, 2u));
}

static inline uint32_t odl_sxtab16_ror8(uint32_t a, uint32_t v)
{
    return odl_pack16(odl_lo16(a) + odl_byte_at(v, 1u), odl_hi16(a) + odl_byte_at(v, 3u));
}

static inline int32_t odl_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(odl_lo16(a) * odl_lo16(b)) + (uint32_t)(odl_hi16(a) * odl_hi16(b)));
}

static inline uint32_t odl_ssub16(uint32_t a, uint32_t b)
{
    return odl_pack16(odl_lo16(a) - odl_lo16(b), odl_hi16(a) - odl_hi16(b));
}

static inline uint32_t odl_shadd8(uint32_t a, uint32_t b)
{
    uint32_t r = 0u;
    for (unsigned i = 0; i < 4u; ++i) {
        const int32_t h = (odl_byte_at(a, i) + odl_byte_at(b, i)) >> 1;
        r |= ((uint32_t)h & 0xFFu) << (8u * i);
    }
    return r;
}
#endif

/* v saturated to the layer's clamp [act_min, act_max]. */
static inline int8_t odl_int8_saturate(int32_t v, const odl_int8_io_t *io)
{
    v = v < io->act_min ? io->act_min : v;
    v = v > io->act_max ? io->act_max : v;
    return (int8_t)v;
}

/* Weight i of a tensor packed `bits` bits per value, low bits first (bits 8: the byte itself). */
static inline int32_t odl_int8_weight(const int8_t *w, unsigned bits, uint32_t i)
{
    if (bits == 8u) {
        return w[i];
    }
    const uint32_t bit = i * bits;
    const uint32_t raw = ((uint32_t)(uint8_t)w[bit / 8u] >> (bit % 8u)) & ((1u << bits) - 1u);
    /* Sign-extend the field. */
    return (int32_t)(raw ^ (1u << (bits - 1u))) - (int32_t)(1u << (bits - 1u));
}

/* Weights first .. first + 4 groups - 1 of a tensor packed `bits` bits per value (8, 4, 2), widened to int16
 * pairs, two words per group of four taps: (w0, w2) then (w1, w3), as SXTB16 and its rotation by 8 pair the
 * bytes of a word of inputs; group q's words at dst + q * stride. Returns their sum. Reads only the bytes that
 * hold the fields. */
int32_t odl_int8_widen(const int8_t *w, unsigned bits, uint32_t first, unsigned groups, uint8_t *dst,
                       unsigned stride);
/* sum_i w[i] * (x[i] - zp), the zero point subtracted as the inputs are widened. */
int32_t odl_dot_int8_zp(const int8_t *x, const int8_t *w, unsigned n, int32_t zp);
int32_t odl_dot_int8_zp_ref(const int8_t *x, const int8_t *w, unsigned n, int32_t zp);

/* conv1d_int8.c: x (n, c), w [f][k][c] packed `bits`, output (m_out, f):
 * acc = bias[j] + sum over taps inside the input of w * (x - in_zp), then MBQM(acc, mult[j]) + out_zp.
 * `row` holds ODL_INT8_CONV_ROW_BYTES(k * c) bytes, 4-byte aligned: two output channels' weights widened to
 * int16 (from any width, once per call). */
#define ODL_INT8_CONV_ROW_BYTES(taps) (4u * (taps))
void odl_conv1d_forward_int8(const int8_t *x, unsigned n, unsigned c, const int8_t *w, unsigned bits,
                             const int32_t *bias, const odl_qmult_t *mult, unsigned k, unsigned f,
                             const odl_window_t *g, unsigned m_out, const odl_int8_io_t *io, int8_t *row, int8_t *y);
void odl_conv1d_forward_int8_ref(const int8_t *x, unsigned n, unsigned c, const int8_t *w, unsigned bits,
                                 const int32_t *bias, const odl_qmult_t *mult, unsigned k, unsigned f,
                                 const odl_window_t *g, unsigned m_out, const odl_int8_io_t *io, int8_t *y);
/* DepthwiseConv1D (and BatchNorm as a kernel of 1): w [k][c * dm] packed, output channel c * dm + d. */
void odl_depthwise1d_forward_int8(const int8_t *x, unsigned n, unsigned c, const int8_t *w, unsigned bits,
                                  const int32_t *bias, const odl_qmult_t *mult, unsigned k, unsigned dm,
                                  const odl_window_t *g, unsigned m_out, const odl_int8_io_t *io, int8_t *y);

/* dense_int8.c: w [n_out][n_in] packed; TFLite's reference FULLY_CONNECTED requantizes in double:
 * round(acc * real_scale[j]) half away from zero, + out_zp. `row` holds ODL_INT8_DENSE_ROW_BYTES(n_in) bytes,
 * 4-byte aligned: one output's sub-byte weights widened to int16. */
#define ODL_INT8_DENSE_ROW_BYTES(n_in) (2u * (n_in))
void odl_dense_forward_int8(const int8_t *x, unsigned n_in, const int8_t *w, unsigned bits, const int32_t *bias,
                            const double *real_scale, unsigned n_out, const odl_int8_io_t *io, int8_t *row,
                            int8_t *y);
/* round(acc * real_scale) half away from zero, acc * real_scale rounded to a double first (as the reference's
 * double product), in integer arithmetic; magnitudes of 512 and more (which saturate any int8 output) come back
 * as +-512. */
int32_t odl_dense_round(int32_t acc, double real_scale);
void odl_dense_forward_int8_ref(const int8_t *x, unsigned n_in, const int8_t *w, unsigned bits,
                                const int32_t *bias, const double *real_scale, unsigned n_out,
                                const odl_int8_io_t *io, int8_t *y);

/* pool1d_int8.c: input and output share scale and zero point (GAP aside). AvgPool rounds half away from zero
 * over the window's existing rows; GAP is TFLite's MEAN with 1/n folded into mult; GMP is REDUCE_MAX. */
void odl_avgpool1d_forward_int8(const int8_t *x, unsigned n, unsigned c, unsigned p, const odl_window_t *g,
                                unsigned m_out, const odl_int8_io_t *io, int8_t *y);
void odl_avgpool1d_forward_int8_ref(const int8_t *x, unsigned n, unsigned c, unsigned p, const odl_window_t *g,
                                    unsigned m_out, const odl_int8_io_t *io, int8_t *y);
void odl_maxpool1d_forward_int8(const int8_t *x, unsigned n, unsigned c, unsigned p, const odl_window_t *g,
                                unsigned m_out, const odl_int8_io_t *io, int8_t *y);
void odl_gap1d_forward_int8(const int8_t *x, unsigned n, unsigned c, odl_qmult_t mult, const odl_int8_io_t *io,
                            int8_t *y);
void odl_gap1d_forward_int8_ref(const int8_t *x, unsigned n, unsigned c, odl_qmult_t mult, const odl_int8_io_t *io,
                                int8_t *y);
void odl_gmp1d_forward_int8(const int8_t *x, unsigned n, unsigned c, const odl_int8_io_t *io, int8_t *y);
/* (1 / n) folded into a multiplier, as TFLite's MEAN folds it. */
odl_qmult_t odl_mean_multiplier(odl_qmult_t m, uint32_t n);

/* activation_int8.c: ReLU and ReLU6 with the input's scale and zero point: a clamp (x may equal y). */
void odl_clamp_int8(const int8_t *x, unsigned n, const odl_int8_io_t *io, int8_t *y);
/* The 256 outputs of a tanh, sigmoid or LeakyReLU (act: odl_activation_t) from int8 inputs of parameters `in`
 * to outputs of parameters `out`, indexed by input + 128, as TFLite's kernels tabulate them: tanh and sigmoid
 * in float32 from libm's tanhf and expf, LeakyReLU with two fixed-point multipliers. Writes only when `lut`
 * is not NULL; ODL_ERR_QUANT_RANGE when a LeakyReLU multiplier is out of range. */
odl_status_t odl_int8_activation_table(uint8_t act, float alpha, odl_qparams_t in, odl_qparams_t out, int8_t *lut);
/* TFLite's reference int8 SOFTMAX (beta 1), output scale 1/256, zero point -128; `beta_mult` and
 * `diff_min` from odl_softmax_params(input scale). */
void odl_softmax_forward_int8(const int8_t *x, unsigned n, odl_qmult_t beta_mult, int32_t diff_min, int8_t *y);
void odl_softmax_params(float in_scale, odl_qmult_t *beta_mult, int32_t *diff_min);

#endif /* ODL_INT8_LAYERS_H */
