/*
 * odl_layers.h - the layer kernels of Table I (Craighero et al., 2023), one family per source file,
 * each with its forward pass and both backward passes side by side.
 *
 * Conventions shared by every kernel:
 * - channels-last tensors (see odl.h); dims are element counts;
 * - `*_backward_params` ADD the sample's gradient to the accumulators (gradient accumulation), while
 *   `*_backward_input` OVERWRITE dx;
 * - `da` is dL/d(layer output) after any fused activation has been undone (see odl_relu_backward).
 * Flatten has no kernel: channels-last memory already is vec(x), so its forward and backward are the
 * identity on the same buffer.
 */
#ifndef ODL_LAYERS_H
#define ODL_LAYERS_H

#include <stdint.h>

#include "odl.h"

/* Where the windows of a Conv1D or a pool sit: output m starts at input row m * stride - pad; Conv1D
 * taps are dilation rows apart. Rows outside the input are padding. */
typedef struct {
    unsigned stride, dilation, pad;
} odl_window_t;

/* Bits that hold an offset in a window of p inputs, rounded up to 1, 2, 4, 8 or 16 so that no offset
 * straddles two words; 0 for p = 1 (nothing to store). */
#define ODL_INDEX_BITS(p) \
    ((p) <= 1u ? 0u : (p) <= 2u ? 1u : (p) <= 4u ? 2u : (p) <= 16u ? 4u : (p) <= 256u ? 8u : 16u)
#define ODL_INDEX_WORDS(n, p) \
    (ODL_INDEX_BITS(p) == 0u ? 0u : ((n) + 32u / ODL_INDEX_BITS(p) - 1u) / (32u / ODL_INDEX_BITS(p)))

/* conv1d.c: valid padding, stride 1. x: (n, c), w: (k, c, f), a: (n - k + 1, f). */
void odl_conv1d_forward(const float *x, unsigned n, unsigned c, const float *w, const float *b,
                        unsigned k, unsigned f, float *a);
void odl_conv1d_forward_ref(const float *x, unsigned n, unsigned c, const float *w, const float *b,
                            unsigned k, unsigned f, float *a);
void odl_conv1d_backward_input(const float *da, unsigned n, unsigned c, const float *w, unsigned k,
                               unsigned f, float *dx);
void odl_conv1d_backward_input_ref(const float *da, unsigned n, unsigned c, const float *w, unsigned k,
                                   unsigned f, float *dx);
void odl_conv1d_backward_params(const float *da, const float *x, unsigned n, unsigned c, unsigned k,
                                unsigned f, float *grad_w, float *grad_b);
void odl_conv1d_backward_params_ref(const float *da, const float *x, unsigned n, unsigned c, unsigned k,
                                    unsigned f, float *grad_w, float *grad_b);

/* The general case: any stride, dilation and padding; a: (m_out, f). */
void odl_conv1d_forward_general(const float *x, unsigned n, unsigned c, const float *w, const float *b,
                                unsigned k, unsigned f, const odl_window_t *g, unsigned m_out, float *a);
void odl_conv1d_backward_input_general(const float *da, unsigned n, unsigned c, const float *w, unsigned k,
                                       unsigned f, const odl_window_t *g, unsigned m_out, float *dx);
void odl_conv1d_backward_params_general(const float *da, const float *x, unsigned n, unsigned c, unsigned k,
                                        unsigned f, const odl_window_t *g, unsigned m_out, float *grad_w,
                                        float *grad_b);

/* batchnorm.c: inference-mode BatchNormalization over (n, c); gamma/beta per channel, fixed mean and
 * inv_std = 1 / sqrt(var + eps). */
void odl_batchnorm_forward(const float *x, unsigned n, unsigned c, const float *gamma, const float *beta,
                           const float *mean, const float *inv_std, float *a);
void odl_batchnorm_backward_input(const float *da, unsigned n, unsigned c, const float *gamma,
                                  const float *inv_std, float *dx);
void odl_batchnorm_backward_params(const float *da, const float *x, unsigned n, unsigned c, const float *mean,
                                   const float *inv_std, float *grad_gamma, float *grad_beta);

/* grad_b[j] += sum_m da[m, j] over (m_out, f) outputs: a convolution's bias gradient. */
void odl_bias_gradient(const float *da, unsigned m_out, unsigned f, float *grad_b);
void odl_bias_gradient_ref(const float *da, unsigned m_out, unsigned f, float *grad_b);
/* The taps [lo, hi) of output m whose input row exists, and the outputs [lo, hi) whose tap kk does. */
void odl_tap_range(unsigned m, unsigned n, unsigned k, const odl_window_t *g, unsigned *lo, unsigned *hi);
/* The input rows [lo, hi) of pool output m's window of p rows that exist (padding left out). */
void odl_pool_window(unsigned m, unsigned n, unsigned p, const odl_window_t *g, unsigned *lo, unsigned *hi);
void odl_output_range(unsigned kk, unsigned n, unsigned m_out, const odl_window_t *g, unsigned *lo, unsigned *hi);

/* depthwise1d.c: DepthwiseConv1D with depth multiplier dm, any window geometry. x: (n, c),
 * w: (k, c, dm), a: (m_out, c * dm), output channel c * dm + d filters input channel c alone. */
void odl_depthwise1d_forward(const float *x, unsigned n, unsigned c, const float *w, const float *b, unsigned k,
                             unsigned dm, const odl_window_t *g, unsigned m_out, float *a);
void odl_depthwise1d_backward_input(const float *da, unsigned n, unsigned c, const float *w, unsigned k,
                                    unsigned dm, const odl_window_t *g, unsigned m_out, float *dx);
void odl_depthwise1d_backward_params(const float *da, const float *x, unsigned n, unsigned c, unsigned k,
                                     unsigned dm, const odl_window_t *g, unsigned m_out, float *grad_w,
                                     float *grad_b);

/* dense.c: x: (n_in), w: (n_in, n_out), a: (n_out). */
void odl_dense_forward(const float *x, unsigned n_in, const float *w, const float *b, unsigned n_out,
                       float *a);
void odl_dense_forward_ref(const float *x, unsigned n_in, const float *w, const float *b, unsigned n_out,
                           float *a);
void odl_dense_backward_input(const float *da, const float *w, unsigned n_in, unsigned n_out, float *dx);
void odl_dense_backward_input_ref(const float *da, const float *w, unsigned n_in, unsigned n_out, float *dx);
void odl_dense_backward_params(const float *da, const float *x, unsigned n_in, unsigned n_out,
                               float *grad_w, float *grad_b);

/* A divisor n whose reciprocal is exact, so that x * (1.0f / n) == x / n for every float x: the kernels then
 * multiply (VMUL, 1 cycle) instead of dividing (VDIV, 14), bit for bit the same (pool1d.c, optimizer.c). */
static inline int odl_is_power_of_two(unsigned n)
{
    return n != 0u && (n & (n - 1u)) == 0u;
}

/* pool1d.c: AvgPool1D with stride = pool size p, rounding the output length down like Keras,
 * GlobalAveragePooling1D and GlobalMaxPooling1D. x: (n, c). */
void odl_avgpool1d_forward(const float *x, unsigned n, unsigned c, unsigned p, float *a);
void odl_avgpool1d_forward_ref(const float *x, unsigned n, unsigned c, unsigned p, float *a);
void odl_avgpool1d_backward_input(const float *da, unsigned n, unsigned c, unsigned p, float *dx);
void odl_avgpool1d_backward_input_ref(const float *da, unsigned n, unsigned c, unsigned p, float *dx);
/* Any stride and padding: AvgPool1D averages what exists of each window; MaxPool1D keeps the offset of
 * each output's maximum in `argmax` (ODL_INDEX_WORDS(m_out * c, p) words) for its backward pass. */
void odl_avgpool1d_forward_general(const float *x, unsigned n, unsigned c, unsigned p, const odl_window_t *g,
                                   unsigned m_out, float *a);
void odl_avgpool1d_backward_input_general(const float *da, unsigned n, unsigned c, unsigned p,
                                          const odl_window_t *g, unsigned m_out, float *dx);
void odl_maxpool1d_forward(const float *x, unsigned n, unsigned c, unsigned p, const odl_window_t *g,
                           unsigned m_out, float *a, uint32_t *argmax);
void odl_maxpool1d_backward_input(const float *da, unsigned n, unsigned c, unsigned p, const odl_window_t *g,
                                  unsigned m_out, const uint32_t *argmax, float *dx);
void odl_gap1d_forward(const float *x, unsigned n, unsigned c, float *a);
void odl_gap1d_backward_input(const float *da, unsigned n, unsigned c, float *dx);
/* GlobalMaxPooling1D: `ties` marks, one bit per input element (ODL_MASK_WORDS(n * c) words), every input equal
 * to its channel's maximum; the backward pass shares dL/da evenly between them, as TensorFlow does. */
void odl_gmp1d_forward(const float *x, unsigned n, unsigned c, float *a, uint32_t *ties);
void odl_gmp1d_backward_input(const float *da, unsigned n, unsigned c, const uint32_t *ties, float *dx);

/* activation.c: ReLU keeps a bit mask (1 bit per element) instead of a copy of its input; x may equal a. */
void odl_relu_forward(const float *x, unsigned n, float *a, uint32_t *mask);
void odl_relu_forward_ref(const float *x, unsigned n, float *a, uint32_t *mask);
void odl_relu_backward(float *da, unsigned n, const uint32_t *mask); /* in place */
void odl_relu_backward_ref(float *da, unsigned n, const uint32_t *mask);
#define ODL_MASK_WORDS(n) (((n) + 31u) / 32u)
/* ReLU6 passes the gradient where 0 < x < 6 (its mask); LeakyReLU scales it by alpha where x <= 0. */
void odl_relu6_forward(const float *x, unsigned n, float *a, uint32_t *mask);
void odl_leaky_relu_forward(const float *x, unsigned n, float alpha, float *a, uint32_t *mask);
void odl_leaky_relu_backward(float *da, unsigned n, float alpha, const uint32_t *mask); /* in place */
/* tanh and sigmoid keep their output y (`saved`, may be NULL): dy/dx is 1 - y^2 and y (1 - y). */
void odl_tanh_forward(const float *x, unsigned n, float *a, float *saved);
void odl_tanh_backward(float *da, unsigned n, const float *y);
void odl_sigmoid_forward(const float *x, unsigned n, float *a, float *saved);
void odl_sigmoid_backward(float *da, unsigned n, const float *y);
void odl_softmax_forward(const float *z, unsigned n, float *p);
/* max_i z_i: the shift that keeps exp() finite in softmax and cross-entropy alike. */
float odl_max(const float *z, unsigned n);

/* loss.c: categorical cross-entropy on the softmax of `z`, computed from the logits as Keras does
 * (softmax_cross_entropy_with_logits), so no probability is clipped. */
float odl_cross_entropy(const float *z, unsigned n, unsigned label);
/* dL/dz = p - onehot(label), where p = softmax(z) already computed by odl_softmax_forward. */
void odl_cross_entropy_backward(const float *p, unsigned n, unsigned label, float *dz);

/* optimizer.c: the per-step scalars (Adam's bias-corrected rate alpha), then the update of n parameters
 * w from their gradient sum over `count` samples and the optimizer's state slots (NULL when unused).
 * odl_optimizer_check computes the same update without writing anything and returns 0 if a new value
 * would be NaN or beyond +-bound, or a new state slot not finite. */
typedef struct {
    float learning_rate;
    float alpha;
} odl_step_coefficients_t;

void odl_optimizer_coefficients(const odl_optimizer_t *opt, uint32_t step, float learning_rate,
                                odl_step_coefficients_t *c);
int odl_optimizer_check(const odl_optimizer_t *opt, const odl_step_coefficients_t *c, const float *w,
                        const float *grad_sum, float count, const float *slot_1, const float *slot_2, uint32_t n,
                        float bound);
void odl_optimizer_update(const odl_optimizer_t *opt, const odl_step_coefficients_t *c, float *w,
                          const float *grad_sum, float count, float *slot_1, float *slot_2, uint32_t n);

#endif /* ODL_LAYERS_H */
