/*
 * network_int8.c - walks the layer table with the int8 kernels: the float window is quantized as TFLite's
 * QUANTIZE does it, then every layer reads one int8 buffer and writes the other (Flatten, ReLU and ReLU6
 * work in place), the last one writing the int8 logits, and the final softmax the int8 probabilities.
 */
#include <math.h>
#include <stddef.h>

#include "odl_int8_layers.h"

static odl_window_t window_of(const odl_layer_t *l)
{
    odl_window_t g = {l->stride, l->dilation, l->pad};
    return g;
}

static void apply_table(const int8_t *lut, int8_t *x, unsigned n)
{
    for (unsigned i = 0; i < n; ++i) {
        x[i] = lut[x[i] + 128];
    }
}

/* The output rows of layer l for an input of n rows: the table's at the table's length; for a shorter input
 * (the cheap mode of adaptive inference) the unpadded window formula, 0 where it does not apply (a padded
 * window layer, a Flatten or Dense that would see a different length) or the windows do not fit. */
static unsigned out_rows(const odl_layer_t *l, unsigned n)
{
    if (n == l->in_len) {
        return l->out_len;
    }
    switch (l->kind) {
    case ODL_LAYER_CONV1D:
    case ODL_LAYER_DEPTHWISE1D:
    case ODL_LAYER_AVGPOOL1D:
    case ODL_LAYER_MAXPOOL1D: {
        const unsigned span = l->dilation * (l->size - 1u) + 1u;
        const int unpadded = l->pad == 0u && l->in_len >= span && l->out_len == (l->in_len - span) / l->stride + 1u;
        return unpadded && n >= span ? (n - span) / l->stride + 1u : 0u;
    }
    case ODL_LAYER_GAP1D:
    case ODL_LAYER_GMP1D:
        return 1u;
    case ODL_LAYER_DENSE:
    case ODL_LAYER_FLATTEN:
        return 0u;
    default: /* element-wise, BatchNorm */
        return n;
    }
}

/* Layer l of an input of n rows (out_n rows out) from x into y (which may be x for the in-place layers);
 * returns where its output is. */
static int8_t *layer_forward(const odl_int8_t *q, unsigned i, const odl_layer_t *l, odl_qparams_t in, unsigned n,
                             unsigned out_n, int8_t *x, int8_t *y)
{
    const odl_int8_layer_t *ql = &q->layers[i];
    const odl_int8_buffers_t *qb = &q->buffers[i];
    /* A parameter layer with a fused tanh, sigmoid or LeakyReLU writes its pre-activation output, which the
     * table then maps in place; for every other layer `pre` is `out`. */
    const odl_int8_io_t io = {in.zero_point, ql->pre.zero_point, ql->act_min, ql->act_max};
    const odl_window_t g = window_of(l);
    const odl_window_t one = {1u, 1u, 0u};
    switch (l->kind) {
    case ODL_LAYER_CONV1D:
        odl_conv1d_forward_int8(x, n, l->in_ch, qb->weights, ql->bits, qb->bias, qb->mult, l->size, l->out_ch, &g,
                                out_n, &io, q->row, y);
        return y;
    case ODL_LAYER_DEPTHWISE1D:
        odl_depthwise1d_forward_int8(x, n, l->in_ch, qb->weights, ql->bits, qb->bias, qb->mult, l->size,
                                     l->out_ch / l->in_ch, &g, out_n, &io, y);
        return y;
    case ODL_LAYER_BATCHNORM: /* a per-channel affine map: a depthwise kernel of one tap */
        odl_depthwise1d_forward_int8(x, n, l->in_ch, qb->weights, ql->bits, qb->bias, qb->mult, 1u, 1u, &one, out_n,
                                     &io, y);
        return y;
    case ODL_LAYER_DENSE:
        odl_dense_forward_int8(x, (unsigned)l->in_len * l->in_ch, qb->weights, ql->bits, qb->bias, qb->real_scale,
                               l->out_ch, &io, q->row, y);
        return y;
    case ODL_LAYER_AVGPOOL1D:
        odl_avgpool1d_forward_int8(x, n, l->in_ch, l->size, &g, out_n, &io, y);
        return y;
    case ODL_LAYER_MAXPOOL1D:
        odl_maxpool1d_forward_int8(x, n, l->in_ch, l->size, &g, out_n, &io, y);
        return y;
    case ODL_LAYER_GAP1D: /* 1 / n folded into the multiplier: the table's length's, or n's from the base */
        odl_gap1d_forward_int8(x, n, l->in_ch, n == l->in_len ? qb->mult[0] : odl_mean_multiplier(qb->mult[1], n),
                               &io, y);
        return y;
    case ODL_LAYER_GMP1D:
        odl_gmp1d_forward_int8(x, n, l->in_ch, &io, y);
        return y;
    case ODL_LAYER_RELU:
    case ODL_LAYER_ACTIVATION:
        if (qb->lut != NULL && l->act != ODL_ACT_RELU6) {
            apply_table(qb->lut, x, out_n * l->out_ch);
        } else {
            odl_clamp_int8(x, out_n * l->out_ch, &io, x);
        }
        return x;
    default: /* Flatten: channels-last memory already is the vector; SOFTMAX is done by the caller */
        return x;
    }
}

static void copy_bytes(int8_t *dst, const int8_t *src, unsigned n)
{
    for (unsigned i = 0; i < n; ++i) {
        dst[i] = src[i];
    }
}

/* The int8 network on the newest `len` rows of window x (len = input_len: the whole window). */
static odl_status_t forward(odl_int8_t *q, const odl_net_t *net, const float *x, unsigned len,
                            uint16_t *predicted_class)
{
    if (q == NULL || net == NULL || x == NULL || predicted_class == NULL) {
        return ODL_ERR_NULL;
    }
    if (!q->ready) {
        return ODL_ERR_NOT_QUANTIZED;
    }
    if (len == 0u || len > net->input_len) {
        return ODL_ERR_SIZE;
    }
    /* Every layer must take the shorter input before any work is done. */
    unsigned rows = len;
    for (unsigned i = 0; i < net->num_layers; ++i) {
        rows = out_rows(&net->layers[i], rows);
        if (rows == 0u) {
            return ODL_ERR_UNSUPPORTED;
        }
    }
    const uint32_t first = (uint32_t)(net->input_len - len) * net->input_ch;
    const uint32_t n = (uint32_t)len * net->input_ch;
    for (uint32_t k = 0; k < (uint32_t)net->input_len * net->input_ch; ++k) {
        if (!isfinite(x[k])) {
            return ODL_ERR_NONFINITE;
        }
    }
    for (uint32_t k = 0; k < n; ++k) {
        q->act_a[k] = odl_int8_quantize_value(x[first + k], q->input);
    }
    int8_t *cur = q->act_a;
    odl_qparams_t in = q->input;
    rows = len;
    for (unsigned i = 0; i < net->num_layers; ++i) {
        const odl_layer_t *l = &net->layers[i];
        if (l->kind == ODL_LAYER_SOFTMAX) {
            break; /* its input is the logits */
        }
        const unsigned out_n = out_rows(l, rows);
        int8_t *other = cur == q->act_a ? q->act_b : q->act_a;
        cur = layer_forward(q, i, l, in, rows, out_n, cur, other);
        if (q->buffers[i].lut != NULL && l->kind != ODL_LAYER_ACTIVATION) { /* a fused tanh, sigmoid, LeakyReLU */
            apply_table(q->buffers[i].lut, cur, out_n * l->out_ch);
        }
        in = q->layers[i].out;
        rows = out_n;
    }
    copy_bytes(q->logits, cur, net->num_classes);
    odl_softmax_forward_int8(q->logits, net->num_classes, q->softmax_mult, q->softmax_diff_min, q->probs);
    uint16_t best = 0;
    for (uint16_t j = 1; j < net->num_classes; ++j) {
        if (q->logits[j] > q->logits[best]) {
            best = j;
        }
    }
    *predicted_class = best;
    return ODL_OK;
}

odl_status_t odl_int8_predict(odl_int8_t *q, const odl_net_t *net, const float *x, uint16_t *predicted_class)
{
    return forward(q, net, x, net != NULL ? net->input_len : 0u, predicted_class);
}

odl_status_t odl_int8_predict_newest(odl_int8_t *q, const odl_net_t *net, const float *x, unsigned len,
                                     uint16_t *predicted_class)
{
    return forward(q, net, x, len, predicted_class);
}

uint8_t odl_int8_confidence(const odl_int8_t *q, const odl_net_t *net)
{
    int32_t best = -128;
    for (unsigned j = 0; j < net->num_classes; ++j) {
        best = q->probs[j] > best ? q->probs[j] : best;
    }
    return (uint8_t)(best + 128); /* probability * 256, 0..255 */
}

odl_status_t odl_int8_predict_adaptive(odl_int8_t *q, const odl_net_t *net, const float *x, unsigned cheap_len,
                                       uint32_t threshold, odl_adaptive_t *result)
{
    if (result == NULL) {
        return ODL_ERR_NULL;
    }
    uint16_t cheap = 0;
    odl_status_t st = forward(q, net, x, cheap_len, &cheap);
    if (st != ODL_OK) {
        return st;
    }
    result->cheap_class = cheap;
    result->cheap_confidence = odl_int8_confidence(q, net);
    result->predicted_class = cheap;
    result->full_ran = 0u;
    if (result->cheap_confidence < threshold) {
        st = forward(q, net, x, net->input_len, &result->predicted_class);
        result->full_ran = 1u;
    }
    return st;
}

odl_status_t odl_int8_get_scores(const odl_int8_t *q, const odl_net_t *net, int8_t *logits, int8_t *probs,
                                 uint32_t n)
{
    if (q == NULL || net == NULL || logits == NULL || probs == NULL) {
        return ODL_ERR_NULL;
    }
    if (n != net->num_classes) {
        return ODL_ERR_SIZE;
    }
    if (!q->ready) {
        return ODL_ERR_NOT_QUANTIZED;
    }
    copy_bytes(logits, q->logits, n);
    copy_bytes(probs, q->probs, n);
    return ODL_OK;
}
