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

/* Layer l from x into y (which may be x for the in-place layers); returns where its output is. */
static void apply_table(const int8_t *lut, int8_t *x, unsigned n)
{
    for (unsigned i = 0; i < n; ++i) {
        x[i] = lut[x[i] + 128];
    }
}

static int8_t *layer_forward(const odl_int8_t *q, unsigned i, const odl_layer_t *l, odl_qparams_t in, int8_t *x,
                             int8_t *y)
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
        odl_conv1d_forward_int8(x, l->in_len, l->in_ch, qb->weights, ql->bits, qb->bias, qb->mult, l->size,
                                l->out_ch, &g, l->out_len, &io, q->row, y);
        return y;
    case ODL_LAYER_DEPTHWISE1D:
        odl_depthwise1d_forward_int8(x, l->in_len, l->in_ch, qb->weights, ql->bits, qb->bias, qb->mult, l->size,
                                     l->out_ch / l->in_ch, &g, l->out_len, &io, y);
        return y;
    case ODL_LAYER_BATCHNORM: /* a per-channel affine map: a depthwise kernel of one tap */
        odl_depthwise1d_forward_int8(x, l->in_len, l->in_ch, qb->weights, ql->bits, qb->bias, qb->mult, 1u, 1u,
                                     &one, l->out_len, &io, y);
        return y;
    case ODL_LAYER_DENSE:
        odl_dense_forward_int8(x, (unsigned)l->in_len * l->in_ch, qb->weights, ql->bits, qb->bias, qb->real_scale,
                               l->out_ch, &io, q->row, y);
        return y;
    case ODL_LAYER_AVGPOOL1D:
        odl_avgpool1d_forward_int8(x, l->in_len, l->in_ch, l->size, &g, l->out_len, &io, y);
        return y;
    case ODL_LAYER_MAXPOOL1D:
        odl_maxpool1d_forward_int8(x, l->in_len, l->in_ch, l->size, &g, l->out_len, &io, y);
        return y;
    case ODL_LAYER_GAP1D:
        odl_gap1d_forward_int8(x, l->in_len, l->in_ch, qb->mult[0], &io, y);
        return y;
    case ODL_LAYER_RELU:
    case ODL_LAYER_ACTIVATION:
        if (qb->lut != NULL && l->act != ODL_ACT_RELU6) {
            apply_table(qb->lut, x, (unsigned)l->out_len * l->out_ch);
        } else {
            odl_clamp_int8(x, (unsigned)l->out_len * l->out_ch, &io, x);
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

odl_status_t odl_int8_predict(odl_int8_t *q, const odl_net_t *net, const float *x, uint16_t *predicted_class)
{
    if (q == NULL || net == NULL || x == NULL || predicted_class == NULL) {
        return ODL_ERR_NULL;
    }
    if (!q->ready) {
        return ODL_ERR_NOT_QUANTIZED;
    }
    const uint32_t n = (uint32_t)net->input_len * net->input_ch;
    for (uint32_t k = 0; k < n; ++k) {
        if (!isfinite(x[k])) {
            return ODL_ERR_NONFINITE;
        }
        q->act_a[k] = odl_int8_quantize_value(x[k], q->input);
    }
    int8_t *cur = q->act_a;
    odl_qparams_t in = q->input;
    for (unsigned i = 0; i < net->num_layers; ++i) {
        const odl_layer_t *l = &net->layers[i];
        if (l->kind == ODL_LAYER_SOFTMAX) {
            break; /* its input is the logits */
        }
        int8_t *other = cur == q->act_a ? q->act_b : q->act_a;
        cur = layer_forward(q, i, l, in, cur, other);
        if (q->buffers[i].lut != NULL && l->kind != ODL_LAYER_ACTIVATION) { /* a fused tanh, sigmoid, LeakyReLU */
            apply_table(q->buffers[i].lut, cur, (unsigned)l->out_len * l->out_ch);
        }
        in = q->layers[i].out;
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
