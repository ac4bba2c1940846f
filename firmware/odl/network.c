/*
 * network.c - walks the generated layer table: forward, backward, gradient accumulation, SGD,
 * Full and transfer-learning modes.
 *
 * Memory contract with the generator (pyodl/model/memory_plan.py):
 * - each layer reads `in` (NULL = the sample) and writes `out`; a trained layer's `in` is a buffer nothing
 *   else overwrites before that layer's backward pass, so the backward pass finds it intact;
 * - the backward pass keeps dL/d(tensor) where the forward pass kept the tensor: layer i reads dL/d(output)
 *   at `out` (the loss gradient lands in `logits`) and writes dL/d(input) over `in`, after its parameter
 *   gradients, the last use of its input. Nothing else the backward pass needs lies there: the generator
 *   placed each output clear of the input and of every tensor saved below it. Flatten, activations and a
 *   tiling AvgPool1D work in place, forward and backward.
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "odl.h"
#include "odl_layers.h"

static int has_params(const odl_layer_t *l)
{
    return l->kind == ODL_LAYER_CONV1D || l->kind == ODL_LAYER_DENSE || l->kind == ODL_LAYER_BATCHNORM ||
           l->kind == ODL_LAYER_DEPTHWISE1D;
}

/* ReLU, ReLU6 and LeakyReLU remember, one bit per element, where the gradient passes. */
static int masked_activation(const odl_layer_t *l)
{
    return l->kind == ODL_LAYER_RELU || l->act == ODL_ACT_RELU || l->act == ODL_ACT_RELU6 ||
           l->act == ODL_ACT_LEAKY_RELU;
}

/* tanh and sigmoid compute their gradient from their output, which they keep a copy of. */
static int saving_activation(const odl_layer_t *l)
{
    return l->act == ODL_ACT_TANH || l->act == ODL_ACT_SIGMOID;
}

static int elementwise_act(uint8_t act)
{
    return act == ODL_ACT_RELU6 || act == ODL_ACT_LEAKY_RELU || act == ODL_ACT_TANH || act == ODL_ACT_SIGMOID;
}

static uint32_t out_size(const odl_layer_t *l)
{
    return (uint32_t)l->out_len * l->out_ch;
}

static uint32_t in_size(const odl_layer_t *l)
{
    return (uint32_t)l->in_len * l->in_ch;
}

/* A parameter layer's bias elements: none for a layer built with use_bias=False. */
static uint32_t bias_count(const odl_layer_t *l)
{
    return l->no_bias ? 0u : l->out_ch;
}

static uint32_t weight_count(const odl_layer_t *l)
{
    if (l->kind == ODL_LAYER_BATCHNORM) {
        return l->out_ch; /* gamma */
    }
    if (l->kind == ODL_LAYER_CONV1D) {
        return (uint32_t)l->size * l->in_ch * l->out_ch;
    }
    if (l->kind == ODL_LAYER_DEPTHWISE1D) {
        return (uint32_t)l->size * l->out_ch; /* (K, C, dm) */
    }
    return in_size(l) * l->out_ch;
}

/* Index of the lowest parameter layer among the last `n` ones, or num_layers when there are fewer. */
static unsigned lowest_of_last_params(const odl_net_t *net, unsigned n)
{
    unsigned seen = 0;
    for (unsigned i = net->num_layers; i-- > 0;) {
        if (has_params(&net->layers[i]) && ++seen == n) {
            return i;
        }
    }
    return net->num_layers;
}

/* No padding on either side, stride 1, no dilation: the Conv1D of the paper, computed by the plain
 * kernels. ('same' with K = 2 pads one row after the input only: pad = 0, but not plain.) */
static int plain_conv(const odl_layer_t *l)
{
    return l->stride == 1u && l->dilation == 1u && l->pad == 0u && l->in_len >= l->size &&
           l->out_len == l->in_len - l->size + 1u;
}

/* Stride = pool size, no padding, the tail dropped: the AvgPool1D of the paper, computed by the plain
 * kernels. */
static int plain_pool(const odl_layer_t *l)
{
    return l->stride == l->size && l->pad == 0u && l->out_len == l->in_len / l->size;
}

static odl_window_t window_of(const odl_layer_t *l)
{
    const odl_window_t g = {l->stride, l->dilation, l->pad};
    return g;
}

/* Windows of `span` rows, stride apart, from row -pad: the first and the last window each cover at least
 * one input row (the kernels skip the padding, so these are consistency checks, not memory safety). */
static int windows_ok(const odl_layer_t *l, uint32_t span)
{
    const uint32_t last_start = (uint32_t)(l->out_len - 1u) * l->stride;
    return l->stride >= 1u && l->dilation >= 1u && l->out_len >= 1u && l->pad < span &&
           last_start < (uint32_t)l->in_len + l->pad;
}

static int shapes_ok(const odl_layer_t *l)
{
    switch (l->kind) {
    case ODL_LAYER_CONV1D:
        return l->size >= 1u && windows_ok(l, (uint32_t)l->dilation * (l->size - 1u) + 1u);
    case ODL_LAYER_DEPTHWISE1D:
        return l->size >= 1u && l->in_ch >= 1u && l->out_ch % l->in_ch == 0u &&
               windows_ok(l, (uint32_t)l->dilation * (l->size - 1u) + 1u);
    case ODL_LAYER_DENSE:
        return l->out_len == 1;
    case ODL_LAYER_AVGPOOL1D:
    case ODL_LAYER_MAXPOOL1D:
        return l->size >= 1u && l->out_ch == l->in_ch && l->dilation == 1u && windows_ok(l, l->size);
    case ODL_LAYER_GAP1D:
    case ODL_LAYER_GMP1D:
        return l->out_len == 1 && l->out_ch == l->in_ch;
    case ODL_LAYER_FLATTEN:
        return l->out_len == 1 && l->out_ch == in_size(l) && l->out == l->in;
    case ODL_LAYER_RELU:
        return l->out_len == l->in_len && l->out_ch == l->in_ch;
    case ODL_LAYER_ACTIVATION:
        return l->out_len == l->in_len && l->out_ch == l->in_ch && elementwise_act(l->act);
    case ODL_LAYER_BATCHNORM:
        return l->out_len == l->in_len && l->out_ch == l->in_ch && l->bn_mean != NULL && l->bn_inv_std != NULL;
    case ODL_LAYER_SOFTMAX:
        return l->out_len == 1 && l->out_ch == in_size(l);
    default:
        return 0;
    }
}

/* weight_count's product of three uint16_t fields must not wrap around, and its bytes must count in 32 bits. */
static int weight_count_fits(const odl_layer_t *l)
{
    const uint64_t n = l->kind == ODL_LAYER_CONV1D ? (uint64_t)l->size * l->in_ch * l->out_ch
                       : l->kind == ODL_LAYER_DENSE ? (uint64_t)l->in_len * l->in_ch * l->out_ch
                                                    : (uint64_t)l->size * l->out_ch;
    return n <= UINT32_MAX / sizeof(float);
}

/* A layer reads its whole input while it writes its output: the two may be one buffer only for the layers
 * computed element by element in place (ReLU, activations, Flatten) and a tiling AvgPool1D (its kernels run
 * in an order that reads each value before they overwrite it), and must not overlap otherwise. */
static int buffers_ok(const odl_layer_t *l)
{
    if (l->out == l->in) {
        return l->kind == ODL_LAYER_RELU || l->kind == ODL_LAYER_ACTIVATION || l->kind == ODL_LAYER_FLATTEN ||
               (l->kind == ODL_LAYER_AVGPOOL1D && plain_pool(l));
    }
    const uintptr_t in = (uintptr_t)l->in, out = (uintptr_t)l->out;
    return out + out_size(l) * sizeof(float) <= in || in + in_size(l) * sizeof(float) <= out;
}

/* Everything the generator promised, checked once so the hot paths need no checks. */
static odl_status_t check_table(const odl_net_t *net)
{
    if (net->layers == NULL || net->num_layers == 0 || net->logits == NULL || net->probs == NULL ||
        net->optimizer.kind > ODL_OPT_ADAM || !(net->param_bound > 0.0f) || !isfinite(net->param_bound)) {
        return ODL_ERR_MODEL;
    }
    const unsigned first_capacity = lowest_of_last_params(net, net->trainable_capacity);
    if (net->trainable_capacity == 0 || first_capacity == net->num_layers) {
        return ODL_ERR_MODEL;
    }
    uint32_t prev_size = (uint32_t)net->input_len * net->input_ch;
    const float *prev_out = NULL; /* the sample */
    for (unsigned i = 0; i < net->num_layers; ++i) {
        const odl_layer_t *l = &net->layers[i];
        const int last = (i + 1u == net->num_layers);
        if (!shapes_ok(l) || in_size(l) != prev_size || l->in != prev_out) {
            return ODL_ERR_MODEL;
        }
        if (l->out == NULL && l->kind != ODL_LAYER_FLATTEN) {
            return ODL_ERR_MODEL;
        }
        if (l->in != NULL && l->out != NULL && !buffers_ok(l)) {
            return ODL_ERR_MODEL;
        }
        if (has_params(l) && !weight_count_fits(l)) {
            return ODL_ERR_MODEL;
        }
        if ((l->kind == ODL_LAYER_SOFTMAX || l->act == ODL_ACT_SOFTMAX) && !last) {
            return ODL_ERR_MODEL;
        }
        if (last && !((l->act == ODL_ACT_SOFTMAX && l->out == net->logits) ||
                      (l->kind == ODL_LAYER_SOFTMAX && l->in == net->logits && l->out == net->probs))) {
            return ODL_ERR_MODEL;
        }
        if (has_params(l)) {
            const int trainable = i >= first_capacity;
            if (l->weights == NULL || l->bias == NULL) {
                return ODL_ERR_MODEL;
            }
            if (l->no_bias && (l->kind == ODL_LAYER_BATCHNORM || l->bias_rw != NULL || l->grad_bias != NULL)) {
                return ODL_ERR_MODEL;
            }
            if (trainable && (l->weights_rw == NULL || l->grad_weights == NULL ||
                              (!l->no_bias && (l->bias_rw == NULL || l->grad_bias == NULL)) ||
                              (odl_optimizer_slots(&net->optimizer) > 0u && l->optim_state == NULL))) {
                return ODL_ERR_MODEL;
            }
        } else if (l->act != ODL_ACT_NONE && l->kind != ODL_LAYER_ACTIVATION) {
            return ODL_ERR_MODEL;
        }
        if (i >= first_capacity && ((masked_activation(l) && l->relu_mask == NULL) ||
                                    (saving_activation(l) && l->saved_act == NULL))) {
            return ODL_ERR_MODEL;
        }
        if (l->kind == ODL_LAYER_MAXPOOL1D && i >= first_capacity && ODL_INDEX_BITS(l->size) != 0u &&
            l->argmax == NULL) {
            return ODL_ERR_MODEL;
        }
        if (l->kind == ODL_LAYER_GMP1D && i >= first_capacity && l->argmax == NULL) {
            return ODL_ERR_MODEL;
        }
        prev_size = out_size(l);
        prev_out = l->out;
    }
    if (prev_size != net->num_classes) {
        return ODL_ERR_MODEL;
    }
    return ODL_OK;
}

/* Zeroes the accumulators: only a batch's first sample does, since the accumulators share their RAM with
 * the int8 copy between batches (memory_plan.py), which it erases first. */
static void clear_accumulators(odl_net_t *net)
{
    if (net->grads_shared != NULL && net->grads_shared_erase != NULL) {
        net->grads_shared_erase(net->grads_shared);
    }
    for (unsigned i = 0; i < net->num_layers; ++i) {
        const odl_layer_t *l = &net->layers[i];
        if (l->grad_weights != NULL) {
            const uint32_t nw = weight_count(l);
            for (uint32_t k = 0; k < nw; ++k) {
                l->grad_weights[k] = 0.0f;
            }
            for (uint32_t k = 0; k < bias_count(l); ++k) {
                l->grad_bias[k] = 0.0f;
            }
        }
    }
}

/* Drops the batch; the next sample starts a new one (and zeroes the accumulators then). */
void odl_zero_grads(odl_net_t *net)
{
    net->accumulated = 0;
}

unsigned odl_param_layer_count(const odl_net_t *net)
{
    unsigned count = 0;
    for (unsigned i = 0; i < net->num_layers; ++i) {
        count += has_params(&net->layers[i]) ? 1u : 0u;
    }
    return count;
}

odl_status_t odl_set_trainable(odl_net_t *net, unsigned n)
{
    if (net == NULL) {
        return ODL_ERR_NULL;
    }
    if (n == 0 || n > net->trainable_capacity) {
        return ODL_ERR_TRAINABLE;
    }
    net->trainable = (uint16_t)n;
    net->first_trained = (uint16_t)lowest_of_last_params(net, n);
    odl_zero_grads(net);
    odl_reset_optimizer(net);
    return ODL_OK;
}

odl_status_t odl_init(odl_net_t *net)
{
    if (net == NULL) {
        return ODL_ERR_NULL;
    }
    const odl_status_t st = check_table(net);
    if (st != ODL_OK) {
        return st;
    }
    return odl_set_trainable(net, net->trainable_capacity);
}

/* The element-wise activation of layer l from src into dst (which may be src). */
static void activation_forward(const odl_layer_t *l, const float *src, float *dst)
{
    const unsigned n = out_size(l);
    switch (l->act) {
    case ODL_ACT_RELU6:
        odl_relu6_forward(src, n, dst, l->relu_mask);
        break;
    case ODL_ACT_LEAKY_RELU:
        odl_leaky_relu_forward(src, n, l->alpha, dst, l->relu_mask);
        break;
    case ODL_ACT_TANH:
        odl_tanh_forward(src, n, dst, l->saved_act);
        break;
    case ODL_ACT_SIGMOID:
        odl_sigmoid_forward(src, n, dst, l->saved_act);
        break;
    default: /* ReLU, fused or standalone */
        odl_relu_forward(src, n, dst, l->relu_mask);
        break;
    }
}

/* dL/d(pre-activation) from dL/d(activation), in place. */
static void activation_backward(const odl_layer_t *l, float *da)
{
    const unsigned n = out_size(l);
    switch (l->act) {
    case ODL_ACT_LEAKY_RELU:
        odl_leaky_relu_backward(da, n, l->alpha, l->relu_mask);
        break;
    case ODL_ACT_TANH:
        odl_tanh_backward(da, n, l->saved_act);
        break;
    case ODL_ACT_SIGMOID:
        odl_sigmoid_backward(da, n, l->saved_act);
        break;
    default: /* ReLU and ReLU6: the mask says where the gradient passes */
        odl_relu_backward(da, n, l->relu_mask);
        break;
    }
}

/* The smallest and largest of v[0..n); 0 if one is not finite. */
static int value_range(const float *v, uint32_t n, float *lo, float *hi)
{
    float a = v[0], b = v[0];
    for (uint32_t k = 0; k < n; ++k) {
        if (!isfinite(v[k])) {
            return 0;
        }
        a = v[k] < a ? v[k] : a;
        b = v[k] > b ? v[k] : b;
    }
    *lo = a;
    *hi = b;
    return 1;
}

/* `pre` (may be NULL): receives the range of the output before a fused activation, and 0 if a value is not
 * finite (int8 calibration). */
static void layer_forward(const odl_net_t *net, const odl_layer_t *l, const float *x, float *pre_lo, float *pre_hi,
                          int *pre_ok)
{
    const float *in = (l->in != NULL) ? l->in : x;
    float *out = l->out;
    const odl_window_t g = window_of(l);
    switch (l->kind) {
    case ODL_LAYER_CONV1D:
        if (plain_conv(l)) {
            odl_conv1d_forward(in, l->in_len, l->in_ch, l->weights, l->bias, l->size, l->out_ch, out);
        } else {
            odl_conv1d_forward_general(in, l->in_len, l->in_ch, l->weights, l->bias, l->size, l->out_ch, &g,
                                       l->out_len, out);
        }
        break;
    case ODL_LAYER_DENSE:
        odl_dense_forward(in, in_size(l), l->weights, l->bias, l->out_ch, out);
        break;
    case ODL_LAYER_BATCHNORM:
        odl_batchnorm_forward(in, l->in_len, l->in_ch, l->weights, l->bias, l->bn_mean, l->bn_inv_std, out);
        break;
    case ODL_LAYER_DEPTHWISE1D:
        odl_depthwise1d_forward(in, l->in_len, l->in_ch, l->weights, l->bias, l->size, l->out_ch / l->in_ch, &g,
                                l->out_len, out);
        break;
    case ODL_LAYER_AVGPOOL1D:
        if (plain_pool(l)) {
            odl_avgpool1d_forward(in, l->in_len, l->in_ch, l->size, out);
        } else {
            odl_avgpool1d_forward_general(in, l->in_len, l->in_ch, l->size, &g, l->out_len, out);
        }
        break;
    case ODL_LAYER_MAXPOOL1D:
        odl_maxpool1d_forward(in, l->in_len, l->in_ch, l->size, &g, l->out_len, out, l->argmax);
        break;
    case ODL_LAYER_GAP1D:
        odl_gap1d_forward(in, l->in_len, l->in_ch, out);
        break;
    case ODL_LAYER_GMP1D:
        odl_gmp1d_forward(in, l->in_len, l->in_ch, out, l->argmax);
        break;
    case ODL_LAYER_RELU:
    case ODL_LAYER_ACTIVATION:
        activation_forward(l, in, out);
        return;
    case ODL_LAYER_SOFTMAX:
        odl_softmax_forward(in, out_size(l), out);
        break;
    default: /* ODL_LAYER_FLATTEN: same buffer, nothing to do */
        break;
    }
    if (pre_lo != NULL) {
        *pre_ok = value_range(out, out_size(l), pre_lo, pre_hi);
    }
    if (l->act == ODL_ACT_SOFTMAX) {
        odl_softmax_forward(out, out_size(l), net->probs);
    } else if (l->act != ODL_ACT_NONE) {
        activation_forward(l, out, out);
    }
}

static void copy_floats(float *dst, const float *src, uint32_t n)
{
    for (uint32_t k = 0; k < n; ++k) {
        dst[k] = src[k];
    }
}

static int all_finite(const float *v, uint32_t n)
{
    for (uint32_t i = 0; i < n; ++i) {
        if (!isfinite(v[i])) {
            return 0;
        }
    }
    return 1;
}

/* Written so that NaN fails too. */
static int all_within(const float *v, uint32_t n, float bound)
{
    for (uint32_t i = 0; i < n; ++i) {
        if (!(fabsf(v[i]) <= bound)) {
            return 0;
        }
    }
    return 1;
}

odl_status_t odl_forward(odl_net_t *net, const float *x)
{
    if (net == NULL || x == NULL) {
        return ODL_ERR_NULL;
    }
    if (!all_finite(x, (uint32_t)net->input_len * net->input_ch)) {
        return ODL_ERR_NONFINITE;
    }
    for (unsigned i = 0; i < net->num_layers; ++i) {
        layer_forward(net, &net->layers[i], x, NULL, NULL, NULL);
    }
    return all_finite(net->logits, net->num_classes) ? ODL_OK : ODL_ERR_NONFINITE;
}

odl_status_t odl_forward_ranges(odl_net_t *net, const float *x, float *lo, float *hi, float *pre_lo,
                                float *pre_hi)
{
    if (net == NULL || x == NULL || lo == NULL || hi == NULL || pre_lo == NULL || pre_hi == NULL) {
        return ODL_ERR_NULL;
    }
    if (!all_finite(x, (uint32_t)net->input_len * net->input_ch)) {
        return ODL_ERR_NONFINITE;
    }
    for (unsigned i = 0; i < net->num_layers; ++i) {
        const odl_layer_t *l = &net->layers[i];
        int pre_ok = 1;
        layer_forward(net, l, x, &pre_lo[i], &pre_hi[i], &pre_ok);
        /* A fused softmax leaves its input, the logits, in `out`: their range is what int8 needs. */
        if (!pre_ok || !value_range(l->out, out_size(l), &lo[i], &hi[i])) {
            return ODL_ERR_NONFINITE;
        }
        if (l->kind == ODL_LAYER_RELU || l->kind == ODL_LAYER_ACTIVATION) { /* nothing fused: pre is out */
            pre_lo[i] = lo[i];
            pre_hi[i] = hi[i];
        }
    }
    return ODL_OK;
}

odl_status_t odl_predict(odl_net_t *net, const float *x, uint16_t *predicted_class)
{
    if (predicted_class == NULL) {
        return ODL_ERR_NULL;
    }
    const odl_status_t st = odl_forward(net, x);
    if (st != ODL_OK) {
        return st;
    }
    uint16_t best = 0;
    for (uint16_t j = 1; j < net->num_classes; ++j) {
        if (net->probs[j] > net->probs[best]) {
            best = j;
        }
    }
    *predicted_class = best;
    return ODL_OK;
}

odl_status_t odl_get_probs(const odl_net_t *net, float *probs, uint32_t n)
{
    if (net == NULL || probs == NULL) {
        return ODL_ERR_NULL;
    }
    if (n != net->num_classes) {
        return ODL_ERR_SIZE;
    }
    copy_floats(probs, net->probs, n);
    return ODL_OK;
}

/* Backward through layer i: dL/d(output) is at its output; dL/d(input), when the layer below needs it,
 * goes over its input (after the parameter gradients, which read the input). Parameter gradients are added
 * only for trained layers. */
static void layer_backward(const odl_net_t *net, unsigned i, const float *x)
{
    const odl_layer_t *l = &net->layers[i];
    const float *in = (l->in != NULL) ? l->in : x;
    const int need_dx = i > net->first_trained;
    float *da = l->out;
    float *dx = l->in;

    if (masked_activation(l) || saving_activation(l)) {
        activation_backward(l, da);
    }
    const odl_window_t g = window_of(l);
    switch (l->kind) {
    case ODL_LAYER_CONV1D:
        if (plain_conv(l)) {
            odl_conv1d_backward_params(da, in, l->in_len, l->in_ch, l->size, l->out_ch, l->grad_weights,
                                       l->grad_bias);
            if (need_dx) {
                odl_conv1d_backward_input(da, l->in_len, l->in_ch, l->weights, l->size, l->out_ch, dx);
            }
        } else {
            odl_conv1d_backward_params_general(da, in, l->in_len, l->in_ch, l->size, l->out_ch, &g, l->out_len,
                                               l->grad_weights, l->grad_bias);
            if (need_dx) {
                odl_conv1d_backward_input_general(da, l->in_len, l->in_ch, l->weights, l->size, l->out_ch, &g,
                                                  l->out_len, dx);
            }
        }
        break;
    case ODL_LAYER_DENSE:
        odl_dense_backward_params(da, in, in_size(l), l->out_ch, l->grad_weights, l->grad_bias);
        if (need_dx) {
            odl_dense_backward_input(da, l->weights, in_size(l), l->out_ch, dx);
        }
        break;
    case ODL_LAYER_DEPTHWISE1D:
        odl_depthwise1d_backward_params(da, in, l->in_len, l->in_ch, l->size, l->out_ch / l->in_ch, &g, l->out_len,
                                        l->grad_weights, l->grad_bias);
        if (need_dx) {
            odl_depthwise1d_backward_input(da, l->in_len, l->in_ch, l->weights, l->size, l->out_ch / l->in_ch, &g,
                                           l->out_len, dx);
        }
        break;
    case ODL_LAYER_BATCHNORM:
        odl_batchnorm_backward_params(da, in, l->in_len, l->in_ch, l->bn_mean, l->bn_inv_std, l->grad_weights,
                                      l->grad_bias);
        if (need_dx) {
            odl_batchnorm_backward_input(da, l->in_len, l->in_ch, l->weights, l->bn_inv_std, dx);
        }
        break;
    case ODL_LAYER_AVGPOOL1D:
        if (plain_pool(l)) {
            odl_avgpool1d_backward_input(da, l->in_len, l->in_ch, l->size, dx);
        } else {
            odl_avgpool1d_backward_input_general(da, l->in_len, l->in_ch, l->size, &g, l->out_len, dx);
        }
        break;
    case ODL_LAYER_MAXPOOL1D:
        odl_maxpool1d_backward_input(da, l->in_len, l->in_ch, l->size, &g, l->out_len, l->argmax, dx);
        break;
    case ODL_LAYER_GAP1D:
        odl_gap1d_backward_input(da, l->in_len, l->in_ch, dx);
        break;
    case ODL_LAYER_GMP1D:
        odl_gmp1d_backward_input(da, l->in_len, l->in_ch, l->argmax, dx);
        break;
    default: /* Flatten, ReLU and the final softmax leave the gradient in place. */
        return;
    }
}

odl_status_t odl_accumulate(odl_net_t *net, const float *x, uint16_t label, float *loss)
{
    if (net == NULL || x == NULL) {
        return ODL_ERR_NULL;
    }
    if (label >= net->num_classes) {
        return ODL_ERR_LABEL;
    }
    odl_status_t st = odl_forward(net, x);
    if (st != ODL_OK) {
        return st;
    }
    const float sample_loss = odl_cross_entropy(net->logits, net->num_classes, label);
    if (!isfinite(sample_loss)) {
        return ODL_ERR_NONFINITE;
    }
    if (loss != NULL) {
        *loss = sample_loss;
    }
    if (net->accumulated == 0) {
        clear_accumulators(net);
    }
    /* dL/d(logits) over the logits: the last computing layer's output. */
    odl_cross_entropy_backward(net->probs, net->num_classes, label, net->logits);
    for (unsigned i = net->num_layers; i-- > net->first_trained;) {
        layer_backward(net, i, x);
    }
    net->accumulated++;
    return ODL_OK;
}

int odl_learning_rate_valid(float learning_rate)
{
    return learning_rate > 0.0f && isfinite(learning_rate);
}

odl_status_t odl_sgd_step(odl_net_t *net, float learning_rate)
{
    if (net == NULL) {
        return ODL_ERR_NULL;
    }
    if (!odl_learning_rate_valid(learning_rate)) {
        return ODL_ERR_LEARNING_RATE;
    }
    if (net->accumulated == 0) {
        return ODL_ERR_NO_SAMPLES;
    }
    /* Validate first, so a bad batch changes no weight at all. */
    for (unsigned i = net->first_trained; i < net->num_layers; ++i) {
        const odl_layer_t *l = &net->layers[i];
        if (has_params(l) && (!all_finite(l->grad_weights, weight_count(l)) ||
                              !all_finite(l->grad_bias, bias_count(l)))) {
            odl_zero_grads(net);
            return ODL_ERR_NONFINITE;
        }
    }
    /* The mean gradient is formed first, as in Keras's loss reduction. */
    const float count = (float)net->accumulated;
    const odl_optimizer_t *opt = &net->optimizer;
    const unsigned slots = odl_optimizer_slots(opt);
    odl_step_coefficients_t c;
    odl_optimizer_coefficients(opt, net->steps, learning_rate, &c);
    /* Pass 0 computes every new value and checks it, writing nothing; pass 1 computes the same values
     * again and writes them. Twice the update's arithmetic, but no RAM for a second copy of the model. */
    for (int commit = 0; commit <= 1; ++commit) {
        for (unsigned i = net->first_trained; i < net->num_layers; ++i) {
            const odl_layer_t *l = &net->layers[i];
            if (!has_params(l)) {
                continue;
            }
            const uint32_t nw = weight_count(l);
            const uint32_t n = nw + bias_count(l);
            float *slot_1 = slots >= 1u ? l->optim_state : NULL;
            float *slot_2 = slots >= 2u ? l->optim_state + n : NULL;
            float *bias_slot_1 = slot_1 ? slot_1 + nw : NULL;
            float *bias_slot_2 = slot_2 ? slot_2 + nw : NULL;
            if (commit) {
                odl_optimizer_update(opt, &c, l->weights_rw, l->grad_weights, count, slot_1, slot_2, nw);
                odl_optimizer_update(opt, &c, l->bias_rw, l->grad_bias, count, bias_slot_1, bias_slot_2,
                                     bias_count(l));
            } else if (!odl_optimizer_check(opt, &c, l->weights, l->grad_weights, count, slot_1, slot_2, nw,
                                            net->param_bound) ||
                       !odl_optimizer_check(opt, &c, l->bias, l->grad_bias, count, bias_slot_1, bias_slot_2,
                                            bias_count(l), net->param_bound)) {
                odl_zero_grads(net);
                return ODL_ERR_STEP_REJECTED;
            }
        }
    }
    net->steps++;
    odl_zero_grads(net);
    return ODL_OK;
}

void odl_reset_optimizer(odl_net_t *net)
{
    const unsigned slots = odl_optimizer_slots(&net->optimizer);
    for (unsigned i = 0; i < net->num_layers; ++i) {
        const odl_layer_t *l = &net->layers[i];
        if (l->optim_state != NULL) {
            const uint32_t n = slots * (weight_count(l) + bias_count(l));
            for (uint32_t k = 0; k < n; ++k) {
                l->optim_state[k] = 0.0f;
            }
        }
    }
    net->steps = 0;
}

/* The checks every parameter accessor starts with; on success *out is the layer. */
static odl_status_t param_layer(const odl_net_t *net, unsigned layer, const float *weights, uint32_t n_weights,
                                const float *bias, uint32_t n_bias, const odl_layer_t **out)
{
    if (net == NULL || weights == NULL || bias == NULL) {
        return ODL_ERR_NULL;
    }
    if (layer >= net->num_layers || !has_params(&net->layers[layer])) {
        return ODL_ERR_LAYER;
    }
    const odl_layer_t *l = &net->layers[layer];
    if (n_weights != weight_count(l) || n_bias != bias_count(l)) {
        return ODL_ERR_SIZE;
    }
    *out = l;
    return ODL_OK;
}

odl_status_t odl_param_sizes(const odl_net_t *net, unsigned layer, uint32_t *weights, uint32_t *bias)
{
    if (net == NULL || weights == NULL || bias == NULL) {
        return ODL_ERR_NULL;
    }
    if (layer >= net->num_layers || !has_params(&net->layers[layer])) {
        return ODL_ERR_LAYER;
    }
    *weights = weight_count(&net->layers[layer]);
    *bias = bias_count(&net->layers[layer]);
    return ODL_OK;
}

odl_status_t odl_get_params(const odl_net_t *net, unsigned layer, float *weights, uint32_t n_weights,
                            float *bias, uint32_t n_bias)
{
    const odl_layer_t *l = NULL;
    const odl_status_t st = param_layer(net, layer, weights, n_weights, bias, n_bias, &l);
    if (st != ODL_OK) {
        return st;
    }
    copy_floats(weights, l->weights, n_weights);
    copy_floats(bias, l->bias, n_bias);
    return ODL_OK;
}

odl_status_t odl_set_params(odl_net_t *net, unsigned layer, const float *weights, uint32_t n_weights,
                            const float *bias, uint32_t n_bias)
{
    const odl_layer_t *l = NULL;
    const odl_status_t st = param_layer(net, layer, weights, n_weights, bias, n_bias, &l);
    if (st != ODL_OK) {
        return st;
    }
    if (l->weights_rw == NULL) {
        return ODL_ERR_FROZEN;
    }
    if (!all_within(weights, n_weights, net->param_bound) || !all_within(bias, n_bias, net->param_bound)) {
        return ODL_ERR_PARAM_RANGE;
    }
    copy_floats(l->weights_rw, weights, n_weights);
    copy_floats(l->bias_rw, bias, n_bias);
    /* Gradients summed, and momentum gathered, for the old weights would be applied to the new ones. */
    odl_zero_grads(net);
    odl_reset_optimizer(net);
    return ODL_OK;
}

static odl_status_t param_slice(const odl_net_t *net, unsigned layer, uint32_t offset, const float *data,
                                uint32_t count, const odl_layer_t **out)
{
    if (net == NULL || data == NULL) {
        return ODL_ERR_NULL;
    }
    if (layer >= net->num_layers || !has_params(&net->layers[layer])) {
        return ODL_ERR_LAYER;
    }
    const odl_layer_t *l = &net->layers[layer];
    const uint32_t total = weight_count(l) + bias_count(l);
    /* Written so that no sum can wrap around. */
    if (offset > total || count > total - offset) {
        return ODL_ERR_SIZE;
    }
    *out = l;
    return ODL_OK;
}

odl_status_t odl_read_param_slice(const odl_net_t *net, unsigned layer, uint32_t offset, float *dst,
                                  uint32_t count)
{
    const odl_layer_t *l = NULL;
    const odl_status_t st = param_slice(net, layer, offset, dst, count, &l);
    if (st != ODL_OK) {
        return st;
    }
    const uint32_t n_weights = weight_count(l);
    for (uint32_t k = 0; k < count; ++k) {
        const uint32_t i = offset + k;
        dst[k] = i < n_weights ? l->weights[i] : l->bias[i - n_weights];
    }
    return ODL_OK;
}

odl_status_t odl_write_param_slice(odl_net_t *net, unsigned layer, uint32_t offset, const float *src,
                                   uint32_t count)
{
    const odl_layer_t *l = NULL;
    const odl_status_t st = param_slice(net, layer, offset, src, count, &l);
    if (st != ODL_OK) {
        return st;
    }
    if (l->weights_rw == NULL) {
        return ODL_ERR_FROZEN;
    }
    if (!all_within(src, count, net->param_bound)) {
        return ODL_ERR_PARAM_RANGE;
    }
    const uint32_t n_weights = weight_count(l);
    for (uint32_t k = 0; k < count; ++k) {
        const uint32_t i = offset + k;
        if (i < n_weights) {
            l->weights_rw[i] = src[k];
        } else {
            l->bias_rw[i - n_weights] = src[k];
        }
    }
    odl_zero_grads(net);
    odl_reset_optimizer(net);
    return ODL_OK;
}

/* The checks every optimizer-state accessor starts with; on success *out is the layer and *total its floats. */
static odl_status_t optim_layer(const odl_net_t *net, unsigned layer, const odl_layer_t **out, uint32_t *total)
{
    if (net == NULL || out == NULL || total == NULL) {
        return ODL_ERR_NULL;
    }
    if (layer >= net->num_layers || !has_params(&net->layers[layer])) {
        return ODL_ERR_LAYER;
    }
    const odl_layer_t *l = &net->layers[layer];
    const unsigned slots = odl_optimizer_slots(&net->optimizer);
    if (slots > 0u && l->optim_state == NULL) {
        return ODL_ERR_FROZEN;
    }
    *out = l;
    *total = slots * (weight_count(l) + bias_count(l));
    return ODL_OK;
}

odl_status_t odl_optim_size(const odl_net_t *net, unsigned layer, uint32_t *floats)
{
    const odl_layer_t *l = NULL;
    return optim_layer(net, layer, &l, floats);
}

static odl_status_t optim_slice(const odl_net_t *net, unsigned layer, uint32_t offset, const float *data,
                                uint32_t count, const odl_layer_t **out)
{
    uint32_t total = 0;
    if (data == NULL) {
        return ODL_ERR_NULL;
    }
    const odl_status_t st = optim_layer(net, layer, out, &total);
    if (st != ODL_OK) {
        return st;
    }
    /* Written so that no sum can wrap around. */
    return offset > total || count > total - offset ? ODL_ERR_SIZE : ODL_OK;
}

odl_status_t odl_read_optim_slice(const odl_net_t *net, unsigned layer, uint32_t offset, float *dst,
                                  uint32_t count)
{
    const odl_layer_t *l = NULL;
    const odl_status_t st = optim_slice(net, layer, offset, dst, count, &l);
    if (st == ODL_OK && count > 0u) {
        copy_floats(dst, l->optim_state + offset, count);
    }
    return st;
}

odl_status_t odl_write_optim_slice(odl_net_t *net, unsigned layer, uint32_t offset, const float *src,
                                   uint32_t count)
{
    const odl_layer_t *l = NULL;
    const odl_status_t st = optim_slice(net, layer, offset, src, count, &l);
    if (st != ODL_OK) {
        return st;
    }
    if (!all_finite(src, count)) {
        return ODL_ERR_NONFINITE;
    }
    if (count > 0u) {
        copy_floats(l->optim_state + offset, src, count);
    }
    return ODL_OK;
}

uint32_t odl_optimizer_steps(const odl_net_t *net)
{
    return net->steps;
}

void odl_set_optimizer_steps(odl_net_t *net, uint32_t steps)
{
    net->steps = steps;
}

odl_status_t odl_get_grads(const odl_net_t *net, unsigned layer, float *weights, uint32_t n_weights,
                           float *bias, uint32_t n_bias)
{
    const odl_layer_t *l = NULL;
    const odl_status_t st = param_layer(net, layer, weights, n_weights, bias, n_bias, &l);
    if (st != ODL_OK) {
        return st;
    }
    if (l->grad_weights == NULL || layer < net->first_trained) {
        return ODL_ERR_FROZEN;
    }
    if (net->accumulated == 0) {
        return ODL_ERR_NO_SAMPLES;
    }
    const float count = (float)net->accumulated;
    for (uint32_t k = 0; k < n_weights; ++k) {
        weights[k] = l->grad_weights[k] / count;
    }
    for (uint32_t k = 0; k < n_bias; ++k) {
        bias[k] = l->grad_bias[k] / count;
    }
    return ODL_OK;
}

/*
 * The state a device keeps across power cycles, as one sequence of 32-bit words: the trained layer count,
 * the optimizer's step count, then, for every parameter layer this build keeps in RAM, its weights, its
 * bias and its optimizer slots. Frozen layers are const in flash and need no copy.
 */
#define STATE_HEADER_WORDS 2u

static uint32_t layer_state_words(const odl_net_t *net, const odl_layer_t *l)
{
    if (!has_params(l) || l->weights_rw == NULL) {
        return 0;
    }
    const uint32_t n = weight_count(l) + bias_count(l);
    return n * (1u + odl_optimizer_slots(&net->optimizer));
}

uint32_t odl_state_words(const odl_net_t *net)
{
    uint32_t words = STATE_HEADER_WORDS;
    for (unsigned i = 0; i < net->num_layers; ++i) {
        words += layer_state_words(net, &net->layers[i]);
    }
    return words;
}

static uint32_t float_word(float v)
{
    uint32_t w;
    memcpy(&w, &v, sizeof w);
    return w;
}

static float word_float(uint32_t w)
{
    float v;
    memcpy(&v, &w, sizeof v);
    return v;
}

/* The float at position k of layer l's part of the state: weights, bias, then the optimizer slots. */
static float *layer_state_float(const odl_layer_t *l, uint32_t k)
{
    const uint32_t nw = weight_count(l), n = nw + bias_count(l);
    if (k < nw) {
        return &l->weights_rw[k];
    }
    if (k < n) {
        return &l->bias_rw[k - nw];
    }
    return &l->optim_state[k - n];
}

uint32_t odl_state_word(const odl_net_t *net, uint32_t k)
{
    if (k == 0) {
        return net->trainable;
    }
    if (k == 1) {
        return net->steps;
    }
    k -= STATE_HEADER_WORDS;
    for (unsigned i = 0; i < net->num_layers; ++i) {
        const odl_layer_t *l = &net->layers[i];
        const uint32_t n = layer_state_words(net, l);
        if (k < n) {
            return float_word(*layer_state_float(l, k));
        }
        k -= n;
    }
    return 0;
}

odl_status_t odl_state_restore(odl_net_t *net, const uint32_t *words, uint32_t n)
{
    if (net == NULL || words == NULL) {
        return ODL_ERR_NULL;
    }
    if (n != odl_state_words(net)) {
        return ODL_ERR_SIZE;
    }
    if (words[0] == 0 || words[0] > net->trainable_capacity) {
        return ODL_ERR_TRAINABLE;
    }
    /* Everything is checked before anything is written, as for odl_set_params. */
    uint32_t k = STATE_HEADER_WORDS;
    for (unsigned i = 0; i < net->num_layers; ++i) {
        const odl_layer_t *l = &net->layers[i];
        const uint32_t count = layer_state_words(net, l), params = count ? weight_count(l) + bias_count(l) : 0u;
        for (uint32_t j = 0; j < count; ++j) {
            const float v = word_float(words[k + j]);
            if (j < params ? !(fabsf(v) <= net->param_bound) : !isfinite(v)) {
                return ODL_ERR_PARAM_RANGE;
            }
        }
        k += count;
    }
    const odl_status_t st = odl_set_trainable(net, words[0]); /* clears gradients and optimizer state */
    if (st != ODL_OK) {
        return st;
    }
    k = STATE_HEADER_WORDS;
    for (unsigned i = 0; i < net->num_layers; ++i) {
        const odl_layer_t *l = &net->layers[i];
        const uint32_t count = layer_state_words(net, l);
        for (uint32_t j = 0; j < count; ++j) {
            *layer_state_float(l, j) = word_float(words[k + j]);
        }
        k += count;
    }
    net->steps = words[1];
    return ODL_OK;
}

const char *odl_status_str(odl_status_t status)
{
    switch (status) {
    case ODL_OK:
        return "ok";
    case ODL_ERR_NULL:
        return "a required pointer is NULL";
    case ODL_ERR_MODEL:
        return "the generated layer table is inconsistent; re-run pyodl export";
    case ODL_ERR_LABEL:
        return "label is not below the number of classes";
    case ODL_ERR_NONFINITE:
        return "NaN or infinity in the input, the loss or a gradient; nothing was changed";
    case ODL_ERR_LEARNING_RATE:
        return "learning rate must be a finite number > 0";
    case ODL_ERR_NO_SAMPLES:
        return "no sample has been accumulated since the last step";
    case ODL_ERR_TRAINABLE:
        return "trainable layer count must be between 1 and the build's trainable capacity";
    case ODL_ERR_LAYER:
        return "layer index out of range or layer has no parameters";
    case ODL_ERR_FROZEN:
        return "the layer is frozen in this build (its parameters are const)";
    case ODL_ERR_SIZE:
        return "element count does not match the layer";
    case ODL_ERR_STEP_REJECTED:
        return "step rejected: a parameter would leave the bound or become NaN; weights unchanged, gradients "
               "cleared";
    case ODL_ERR_PARAM_RANGE:
        return "a parameter is NaN or beyond the model's bound; nothing was written";
    case ODL_ERR_UNSUPPORTED:
        return "a layer has no int8 kernel (LeakyReLU, tanh, sigmoid) or takes no such bit width; nothing was "
               "quantized";
    case ODL_ERR_QUANT_RANGE:
        return "a scale ratio is beyond what int8 fixed point represents; nothing was quantized";
    case ODL_ERR_NO_CALIBRATION:
        return "no calibration window since the last reset: calibrate before quantizing";
    case ODL_ERR_NOT_QUANTIZED:
        return "no quantized model: calibrate and quantize first (training erases it: quantize again)";
    case ODL_ERR_BATCH_OPEN:
        return "a batch is accumulated and the int8 copy shares its RAM: step or zero the gradients first";
    default:
        return "unknown status";
    }
}
