/*
 * quantize.c - calibration and quantization of the trained float network into its int8 copy, on the
 * device, and the byte image the host reads the result back through.
 *
 * The rules, which the host's TFLite model takes as they are (it reads the image):
 * - an activation range [lo, hi] widened to contain 0 gives scale (hi - lo) / 255 and zero point
 *   -128 - round(lo / scale) (asymmetric int8); a range narrower than ODL_INT8_TINY gets scale 1;
 * - a weight channel: scale max|w| / (2^(bits-1) - 1), values round(w / scale) in +-(2^(bits-1) - 1), zero
 *   point 0; a channel whose weights are all within ODL_INT8_TINY of 0 gets scale 1 and zeros;
 * - a bias: int32 at scale in_scale * w_scale (float32 product), rounded in double;
 * - multipliers as TFLite's kernels derive them from these scales (double in * w / out).
 * Every value is computed and checked in a first pass; only if all pass does the second pass write, so a
 * refused QUANTIZE leaves the previous int8 model whole.
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "odl_int8_layers.h"

#define ODL_INT8_TINY 1e-30f

static int is_param(const odl_layer_t *l)
{
    return l->kind == ODL_LAYER_CONV1D || l->kind == ODL_LAYER_DENSE || l->kind == ODL_LAYER_DEPTHWISE1D ||
           l->kind == ODL_LAYER_BATCHNORM;
}

static uint32_t in_count(const odl_layer_t *l)
{
    return (uint32_t)l->in_len * l->in_ch;
}

/* Weights per output channel, in the int8 layouts of odl_int8.h. */
static uint32_t channel_taps(const odl_layer_t *l)
{
    switch (l->kind) {
    case ODL_LAYER_CONV1D:
        return (uint32_t)l->size * l->in_ch;
    case ODL_LAYER_DENSE:
        return in_count(l);
    case ODL_LAYER_DEPTHWISE1D:
        return l->size;
    default: /* BatchNorm */
        return 1u;
    }
}

/* Tap t of output channel c: its float value, and its index in the int8 layout. */
static float float_weight(const odl_layer_t *l, uint32_t c, uint32_t t)
{
    switch (l->kind) {
    case ODL_LAYER_CONV1D:
        return l->weights[t * l->out_ch + c]; /* (k, c_in, f): t = k * c_in + c_in's index */
    case ODL_LAYER_DENSE:
        return l->weights[t * l->out_ch + c];
    case ODL_LAYER_DEPTHWISE1D:
        return l->weights[t * l->out_ch + c]; /* (k, c, dm) = (k, output channel) */
    default:
        return l->bn_inv_std[c] * l->weights[c]; /* as odl_batchnorm_forward: inv_std * gamma */
    }
}

static uint32_t int8_index(const odl_layer_t *l, uint32_t c, uint32_t t)
{
    if (l->kind == ODL_LAYER_DEPTHWISE1D) {
        return t * l->out_ch + c;
    }
    return c * channel_taps(l) + t;
}

static float float_bias(const odl_layer_t *l, uint32_t c)
{
    if (l->kind == ODL_LAYER_BATCHNORM) {
        const float inv = l->bn_inv_std[c] * l->weights[c];
        return l->bias[c] - l->bn_mean[c] * inv;
    }
    return l->bias[c];
}

static int choose_qparams(float lo, float hi, odl_qparams_t *p)
{
    const float rmin = lo < 0.0f ? lo : 0.0f;
    const float rmax = hi > 0.0f ? hi : 0.0f;
    const float width = rmax - rmin;
    if (!isfinite(width)) {
        return 0;
    }
    p->scale = width < ODL_INT8_TINY ? 1.0f : width / 255.0f;
    const float zp = -128.0f - roundf(rmin / p->scale);
    p->zero_point = zp < -128.0f ? -128 : (zp > 127.0f ? 127 : (int32_t)zp);
    return 1;
}

/* The clamp of a fused or standalone ReLU / ReLU6 on an output with parameters p (TFLite's
 * CalculateActivationRangeQuantized). */
static void activation_range(uint8_t act, odl_qparams_t p, int8_t *lo, int8_t *hi)
{
    int32_t a = -128, b = 127;
    if (act == ODL_ACT_RELU || act == ODL_ACT_RELU6) {
        a = p.zero_point > a ? p.zero_point : a;
    }
    if (act == ODL_ACT_RELU6) {
        const float six = roundf(6.0f / p.scale);
        if (six < 256.0f) {
            const int32_t top = p.zero_point + (int32_t)six;
            b = top < b ? top : b;
        }
    }
    *lo = (int8_t)a;
    *hi = (int8_t)b;
}

static int multiplier_ok(odl_qmult_t m)
{
    return m.shift <= 30;
}

static void store_weight(int8_t *w, unsigned bits, uint32_t i, int32_t v)
{
    if (bits == 8u) {
        w[i] = (int8_t)v;
        return;
    }
    const uint32_t bit = i * bits;
    const uint32_t field = ((uint32_t)v & ((1u << bits) - 1u)) << (bit % 8u);
    w[bit / 8u] = (int8_t)(uint8_t)((uint8_t)w[bit / 8u] | field);
}

/* One parameter layer's channels; writes only when `write`. */
static odl_status_t quantize_params(const odl_layer_t *l, const odl_int8_buffers_t *qb, odl_int8_layer_t *ql,
                                    odl_qparams_t in, unsigned bits, int write)
{
    const uint32_t taps = channel_taps(l);
    const int32_t qmax = (int32_t)(1u << (bits - 1u)) - 1;
    if (write) {
        memset(qb->weights, 0, ODL_INT8_WEIGHT_BYTES((uint32_t)l->out_ch * taps, 8u));
        ql->bits = (uint8_t)bits;
    }
    for (uint32_t c = 0; c < l->out_ch; ++c) {
        float maxabs = 0.0f;
        for (uint32_t t = 0; t < taps; ++t) {
            const float a = fabsf(float_weight(l, c, t));
            maxabs = a > maxabs ? a : maxabs;
        }
        if (!isfinite(maxabs)) {
            return ODL_ERR_NONFINITE;
        }
        const int zero = maxabs < ODL_INT8_TINY;
        const float w_scale = zero ? 1.0f : maxabs / (float)qmax;
        const float b_scale = in.scale * w_scale;
        const double b_real = (double)float_bias(l, c) / (double)b_scale;
        if (!(b_scale > 0.0f) || !isfinite(b_scale) || !(fabs(b_real) < 2147483647.0)) {
            return ODL_ERR_QUANT_RANGE;
        }
        const double real = (double)in.scale * (double)w_scale / (double)ql->pre.scale;
        const odl_qmult_t m = odl_quantize_multiplier(real);
        if (!multiplier_ok(m) || !isfinite(real)) {
            return ODL_ERR_QUANT_RANGE;
        }
        if (!write) {
            continue;
        }
        qb->w_scale[c] = w_scale;
        qb->bias[c] = (int32_t)llround(b_real);
        if (l->kind == ODL_LAYER_DENSE) {
            qb->real_scale[c] = real;
        } else {
            qb->mult[c] = m;
        }
        for (uint32_t t = 0; t < taps; ++t) {
            int32_t v = zero ? 0 : (int32_t)roundf(float_weight(l, c, t) / w_scale);
            v = v > qmax ? qmax : (v < -qmax ? -qmax : v);
            store_weight(qb->weights, bits, int8_index(l, c, t), v);
        }
    }
    return ODL_OK;
}

/* The activation a layer computes through a table: tanh, sigmoid, LeakyReLU, fused or alone; else NONE. */
static uint8_t table_activation(const odl_layer_t *l)
{
    const int tabled = l->act == ODL_ACT_TANH || l->act == ODL_ACT_SIGMOID || l->act == ODL_ACT_LEAKY_RELU;
    return tabled && (is_param(l) || l->kind == ODL_LAYER_ACTIVATION) ? l->act : (uint8_t)ODL_ACT_NONE;
}

/* The output parameters of a tabled activation: TFLite's fixed ones for tanh (1/128, 0) and sigmoid
 * (1/256, -128, which its LOGISTIC requires), the calibrated range for LeakyReLU. */
static int table_out_params(uint8_t act, float lo, float hi, odl_qparams_t *out)
{
    if (act == ODL_ACT_TANH) {
        out->scale = 1.0f / 128.0f;
        out->zero_point = 0;
        return 1;
    }
    if (act == ODL_ACT_SIGMOID) {
        out->scale = 1.0f / 256.0f;
        out->zero_point = -128;
        return 1;
    }
    return choose_qparams(lo, hi, out);
}

/* The output (and pre-activation) parameters and clamp of layer i given its input's parameters;
 * ODL_ERR_UNSUPPORTED for a layer without an int8 kernel. */
static odl_status_t layer_qparams(const odl_int8_t *q, const odl_layer_t *l, unsigned i, odl_qparams_t in,
                                  odl_int8_layer_t *staged)
{
    const uint8_t table = table_activation(l);
    odl_qparams_t out;
    switch (l->kind) {
    case ODL_LAYER_AVGPOOL1D:
    case ODL_LAYER_MAXPOOL1D:
    case ODL_LAYER_GMP1D:
    case ODL_LAYER_FLATTEN:
    case ODL_LAYER_RELU:
        out = in;
        break;
    case ODL_LAYER_ACTIVATION:
        if (table == ODL_ACT_NONE) { /* ReLU6: a clamp */
            out = in;
        } else if (!table_out_params(table, q->range_min[i + 1u], q->range_max[i + 1u], &out)) {
            return ODL_ERR_NONFINITE;
        }
        break;
    case ODL_LAYER_SOFTMAX:
        out = q->softmax_out;
        break;
    default: /* parameter layers and GAP: their own calibrated range */
        if (table != ODL_ACT_NONE) {
            if (!table_out_params(table, q->range_min[i + 1u], q->range_max[i + 1u], &out)) {
                return ODL_ERR_NONFINITE;
            }
        } else if (!choose_qparams(q->range_min[i + 1u], q->range_max[i + 1u], &out)) {
            return ODL_ERR_NONFINITE;
        }
        break;
    }
    staged->out = out;
    staged->pre = out;
    if (table != ODL_ACT_NONE && is_param(l) && !choose_qparams(q->pre_min[i], q->pre_max[i], &staged->pre)) {
        return ODL_ERR_NONFINITE;
    }
    activation_range(l->kind == ODL_LAYER_RELU ? (uint8_t)ODL_ACT_RELU : l->act, staged->pre, &staged->act_min,
                     &staged->act_max);
    return ODL_OK;
}

static odl_status_t quantize_pass(odl_int8_t *q, const odl_net_t *net, const uint8_t *bits, int write)
{
    odl_qparams_t in;
    if (!choose_qparams(q->range_min[0], q->range_max[0], &in)) {
        return ODL_ERR_NONFINITE;
    }
    if (write) {
        q->input = in;
    }
    unsigned p = 0;
    for (unsigned i = 0; i < net->num_layers; ++i) {
        const odl_layer_t *l = &net->layers[i];
        odl_int8_layer_t *ql = &q->layers[i];
        odl_int8_layer_t staged;
        memset(&staged, 0, sizeof staged);
        odl_status_t st = layer_qparams(q, l, i, in, &staged);
        if (st != ODL_OK) {
            return st;
        }
        const odl_qparams_t out = staged.out;
        const uint8_t table = table_activation(l);
        if (table != ODL_ACT_NONE) {
            st = odl_int8_activation_table(table, l->alpha, is_param(l) ? staged.pre : in, out,
                                           write ? q->buffers[i].lut : NULL);
            if (st != ODL_OK) {
                return st;
            }
        }
        if (is_param(l)) {
            st = quantize_params(l, &q->buffers[i], &staged, in, bits[p++], write);
            if (st != ODL_OK) {
                return st;
            }
        } else if (l->kind == ODL_LAYER_GAP1D) {
            const odl_qmult_t m = odl_quantize_multiplier((double)in.scale / (double)out.scale);
            if (!multiplier_ok(m)) {
                return ODL_ERR_QUANT_RANGE;
            }
            if (write) { /* folded for the table's length, and the base for a shorter input */
                q->buffers[i].mult[0] = odl_mean_multiplier(m, l->in_len);
                q->buffers[i].mult[1] = m;
            }
        }
        if (l->kind == ODL_LAYER_SOFTMAX || l->act == ODL_ACT_SOFTMAX) {
            /* The logits' scale: the softmax layer's input, or the fused layer's output. TFLite's softmax takes
             * a multiplier above 1 (a left shift of at least 1): logits scaled below 2^-26 are refused. */
            const float logits_scale = l->kind == ODL_LAYER_SOFTMAX ? in.scale : out.scale;
            odl_qmult_t beta;
            int32_t diff_min;
            odl_softmax_params(logits_scale, &beta, &diff_min);
            if (beta.shift < 1) {
                return ODL_ERR_QUANT_RANGE;
            }
            if (write) {
                q->softmax_mult = beta;
                q->softmax_diff_min = diff_min;
            }
        }
        if (write) {
            *ql = staged;
        }
        in = out;
    }
    return ODL_OK;
}

odl_status_t odl_int8_quantize(odl_int8_t *q, const odl_net_t *net, const uint8_t *bits, unsigned n_bits)
{
    if (q == NULL || net == NULL || bits == NULL) {
        return ODL_ERR_NULL;
    }
    if (n_bits != odl_param_layer_count(net)) {
        return ODL_ERR_SIZE;
    }
    unsigned p = 0;
    for (unsigned i = 0; i < net->num_layers; ++i) {
        const odl_layer_t *l = &net->layers[i];
        if (!is_param(l)) {
            continue;
        }
        const uint8_t b = bits[p++];
        if (!(b == 8u || ((b == 4u || b == 2u) && l->kind != ODL_LAYER_BATCHNORM))) {
            return ODL_ERR_UNSUPPORTED;
        }
    }
    if (net->accumulated != 0u) {
        return ODL_ERR_BATCH_OPEN; /* the int8 copy would overwrite the batch's gradients */
    }
    if (q->calibrated == 0u) {
        return ODL_ERR_NO_CALIBRATION;
    }
    const odl_status_t st = quantize_pass(q, net, bits, 0);
    if (st != ODL_OK) {
        return st;
    }
    q->ready = 0u; /* a reset in the middle leaves no half-written model taken for whole */
    (void)quantize_pass(q, net, bits, 1);
    q->ready = 1u;
    return ODL_OK;
}

void odl_int8_calibrate_reset(odl_int8_t *q, const odl_net_t *net)
{
    (void)net;
    q->calibrated = 0u;
}

void odl_int8_erase(void *shared)
{
    odl_int8_t *q = (odl_int8_t *)shared;
    q->ready = 0u;
    q->calibrated = 0u;
}

/* The ranges of one window's tensors, into window_min / window_max. */
static odl_status_t window_ranges(odl_int8_t *q, odl_net_t *net, const float *x)
{
    if (q == NULL || net == NULL || x == NULL) {
        return ODL_ERR_NULL;
    }
    if (net->accumulated != 0u) {
        return ODL_ERR_BATCH_OPEN; /* the ranges would overwrite the batch's gradients */
    }
    const uint32_t n = (uint32_t)net->input_len * net->input_ch;
    float a = x[0], b = x[0];
    for (uint32_t k = 0; k < n; ++k) {
        if (!isfinite(x[k])) {
            return ODL_ERR_NONFINITE;
        }
        a = x[k] < a ? x[k] : a;
        b = x[k] > b ? x[k] : b;
    }
    q->window_min[0] = a;
    q->window_max[0] = b;
    return odl_forward_ranges(net, x, q->window_min + 1, q->window_max + 1, q->pre_window_min, q->pre_window_max);
}

uint32_t odl_int8_calibrated(const odl_int8_t *q)
{
    return q->calibrated;
}

odl_status_t odl_int8_calibrate_check(odl_int8_t *q, odl_net_t *net, const float *x)
{
    return window_ranges(q, net, x);
}

odl_status_t odl_int8_calibrate(odl_int8_t *q, odl_net_t *net, const float *x)
{
    const odl_status_t st = window_ranges(q, net, x);
    if (st != ODL_OK) {
        return st;
    }
    for (unsigned i = 0; i <= net->num_layers; ++i) {
        if (q->calibrated == 0u || q->window_min[i] < q->range_min[i]) {
            q->range_min[i] = q->window_min[i];
        }
        if (q->calibrated == 0u || q->window_max[i] > q->range_max[i]) {
            q->range_max[i] = q->window_max[i];
        }
    }
    for (unsigned i = 0; i < net->num_layers; ++i) {
        if (q->calibrated == 0u || q->pre_window_min[i] < q->pre_min[i]) {
            q->pre_min[i] = q->pre_window_min[i];
        }
        if (q->calibrated == 0u || q->pre_window_max[i] > q->pre_max[i]) {
            q->pre_max[i] = q->pre_window_max[i];
        }
    }
    q->calibrated++;
    return ODL_OK;
}

int8_t odl_int8_quantize_value(float x, odl_qparams_t p)
{
    /* TFLite's QUANTIZE: float32 division, rounded half away from zero, plus the zero point, saturated
     * (a sum that is exact wherever it is not saturated anyway). */
    const float v = x / p.scale;
    if (!(v < 512.0f) || !(v > -512.0f)) { /* saturated whatever the zero point (or not a number: as before) */
        const float r = roundf(v) + (float)p.zero_point;
        return (int8_t)(r <= -128.0f ? -128 : (r >= 127.0f ? 127 : (int32_t)r));
    }
    /* roundf without the call: v - trunc(v) is exact for |v| < 512, and so is the sum with the zero point. */
    int32_t t = (int32_t)v;
    const float frac = v - (float)t;
    t += (frac >= 0.5f ? 1 : 0) - (frac <= -0.5f ? 1 : 0);
    t += p.zero_point;
    return (int8_t)(t < -128 ? -128 : (t > 127 ? 127 : t));
}

/* The image of odl_int8.h as a list of segments; copies the part of [offset, offset + count) each covers. */
typedef struct {
    uint32_t offset, count, at;
    uint8_t *dst;
} image_cursor_t;

static void segment(image_cursor_t *cur, const void *src, uint32_t len)
{
    const uint32_t lo = cur->offset > cur->at ? cur->offset : cur->at;
    const uint32_t end = cur->offset + cur->count;
    const uint32_t hi = end < cur->at + len ? end : cur->at + len;
    if (cur->dst != NULL && lo < hi) {
        memcpy(cur->dst + (lo - cur->offset), (const uint8_t *)src + (lo - cur->at), hi - lo);
    }
    cur->at += len;
}

static void word_segment(image_cursor_t *cur, uint32_t w)
{
    segment(cur, &w, 4u);
}

static void qparams_segment(image_cursor_t *cur, odl_qparams_t p)
{
    segment(cur, &p.scale, 4u);
    segment(cur, &p.zero_point, 4u);
}

static uint32_t walk_image(const odl_int8_t *q, const odl_net_t *net, image_cursor_t *cur)
{
    qparams_segment(cur, q->input);
    qparams_segment(cur, q->softmax_out);
    for (unsigned i = 0; i < net->num_layers; ++i) {
        const odl_layer_t *l = &net->layers[i];
        const odl_int8_layer_t *ql = &q->layers[i];
        const odl_int8_buffers_t *qb = &q->buffers[i];
        qparams_segment(cur, ql->out);
        qparams_segment(cur, ql->pre);
        word_segment(cur, (uint32_t)(int32_t)ql->act_min);
        word_segment(cur, (uint32_t)(int32_t)ql->act_max);
        if (is_param(l)) {
            word_segment(cur, ql->bits);
            segment(cur, qb->w_scale, 4u * l->out_ch);
            segment(cur, qb->bias, 4u * l->out_ch);
            segment(cur, qb->weights, ODL_INT8_WEIGHT_BYTES((uint32_t)l->out_ch * channel_taps(l), ql->bits));
        }
    }
    return cur->at;
}

odl_status_t odl_int8_image_bytes(const odl_int8_t *q, const odl_net_t *net, uint32_t *bytes)
{
    if (q == NULL || net == NULL || bytes == NULL) {
        return ODL_ERR_NULL;
    }
    if (!q->ready) {
        return ODL_ERR_NOT_QUANTIZED;
    }
    image_cursor_t cur = {0u, 0u, 0u, NULL};
    *bytes = walk_image(q, net, &cur);
    return ODL_OK;
}

odl_status_t odl_int8_image_read(const odl_int8_t *q, const odl_net_t *net, uint32_t offset, uint8_t *dst,
                                 uint32_t count)
{
    uint32_t total = 0;
    const odl_status_t st = odl_int8_image_bytes(q, net, &total);
    if (st != ODL_OK) {
        return st;
    }
    if (dst == NULL) {
        return ODL_ERR_NULL;
    }
    if (offset > total || count > total - offset) {
        return ODL_ERR_SIZE;
    }
    image_cursor_t cur = {offset, count, 0u, dst};
    (void)walk_image(q, net, &cur);
    return ODL_OK;
}
