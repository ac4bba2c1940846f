/*
 * odl_int8.h - quantized inference of the trained network: int8 activations, int8 or sub-byte weights,
 * int32 accumulators, the arithmetic of TensorFlow Lite's int8 reference kernels.
 *
 * After training, the device calibrates (one float forward pass per window, keeping each tensor's range),
 * then quantizes: weights symmetric per output channel (8, 4 or 2 bits, zero point 0), biases int32 at
 * in_scale * w_scale, activations asymmetric int8 per tensor. Inference then runs on integers only: the
 * requantization of Dense outputs, which TFLite's reference kernel does in double precision, gives the same
 * results from integer multiplies of the double's mantissa (odl_dense_round).
 *
 * The float model stays untouched. The int8 copy lives in the gradient accumulators' RAM, which only a batch
 * uses: a batch's first training sample erases it (odl_int8_erase), and a new QUANTIZE makes another.
 *
 * Every quantized layer corresponds to one float layer, one TFLite operator:
 *   Conv1D -> CONV_2D, DepthwiseConv1D -> DEPTHWISE_CONV_2D, Dense -> FULLY_CONNECTED,
 *   BatchNorm -> DEPTHWISE_CONV_2D of kernel 1 (weights gamma * inv_std, bias beta - mean * gamma * inv_std),
 *   AvgPool1D -> AVERAGE_POOL_2D, MaxPool1D -> MAX_POOL_2D, GlobalAvgPool1D -> MEAN,
 *   GlobalMaxPool1D -> REDUCE_MAX, Flatten -> RESHAPE,
 *   ReLU -> RELU, ReLU6 -> RELU6 (a clamp, fused or alone), tanh -> TANH, sigmoid -> LOGISTIC,
 *   LeakyReLU -> LEAKY_RELU (a table of 256 outputs, after the layer they are fused into, whose output then
 *   has its own scale), the final softmax -> SOFTMAX.
 * Weights are stored in TFLite's order, output channel first: Conv1D [f][k][c], Dense [j][i],
 * DepthwiseConv1D [k][c * dm + d] (as the float layout), sub-byte ones packed low bits first.
 */
#ifndef ODL_INT8_H
#define ODL_INT8_H

#include <stdint.h>

#include "odl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* real value = scale * (q - zero_point) */
typedef struct {
    float scale;
    int32_t zero_point;
} odl_qparams_t;

/* A real multiplier as TFLite's QuantizeMultiplier gives it: multiplier * 2^(shift - 31), multiplier in
 * [2^30, 2^31) or 0. */
typedef struct {
    int32_t multiplier;
    int32_t shift;
} odl_qmult_t;

/* Where a parameter layer's quantized values live (generated, const: the buffers are fixed at build time).
 * Per output channel; the layer's other layers have NULL everywhere. */
typedef struct {
    int8_t *weights;      /* ODL_INT8_WEIGHT_BYTES(count, 8) bytes: room for 8-bit weights */
    int32_t *bias;        /* scale in.scale * w_scale[c], zero point 0 */
    float *w_scale;
    odl_qmult_t *mult;    /* in.scale * w_scale[c] / out.scale (GAP: mult[0], 1 / length folded in; mult[1] not) */
    double *real_scale;   /* Dense: in.scale * w_scale[j] / out.scale, in double, as TFLite's reference */
    int8_t *lut;          /* tanh, sigmoid, LeakyReLU (fused or alone): 256 outputs, indexed by input + 128 */
} odl_int8_buffers_t;

/* What QUANTIZE decides for one layer. */
typedef struct {
    odl_qparams_t out;
    /* The output before a fused tanh, sigmoid or LeakyReLU, which its table maps to `out`; equals `out` for
     * every other layer (a ReLU or ReLU6 is a clamp of `out`). */
    odl_qparams_t pre;
    int8_t act_min, act_max; /* the fused ReLU's or ReLU6's clamp */
    uint8_t bits;            /* weight bits: 8, 4 or 2 */
} odl_int8_layer_t;

/* Bytes of `count` weights of `bits` bits, packed, rounded up to whole 32-bit words. */
#define ODL_INT8_WEIGHT_BYTES(count, bits) ((((count) * (bits) + 31u) / 32u) * 4u)

typedef struct {
    const odl_int8_buffers_t *buffers; /* one per float layer */
    odl_int8_layer_t *layers;          /* one per float layer */
    odl_qparams_t input;
    odl_qparams_t softmax_out; /* the final softmax's output: 1/256, -128 */
    /* Calibration: the input's range, then each layer output's (num_layers + 1 each), over the windows seen
     * since the last reset, and one window's, merged only when all of it is finite. */
    float *range_min, *range_max;
    float *window_min, *window_max;
    /* Each layer's output before a fused activation, likewise (num_layers each). */
    float *pre_min, *pre_max;
    float *pre_window_min, *pre_window_max;
    uint32_t calibrated;
    int8_t *act_a, *act_b;    /* ping-pong activations, act_capacity bytes each */
    uint32_t act_capacity;
    int8_t *row;              /* one output channel's sub-byte weights, unpacked (row_capacity bytes) */
    uint32_t row_capacity;
    int8_t *logits, *probs;   /* num_classes each */
    odl_qmult_t softmax_mult; /* the final softmax's beta * logits scale, and its smallest difference */
    int32_t softmax_diff_min;
    uint8_t ready;            /* 1 after a successful odl_int8_quantize */
} odl_int8_t;

/* Windows calibrated since the last reset. */
uint32_t odl_int8_calibrated(const odl_int8_t *q);
/* Forgets the calibration ranges. */
void odl_int8_calibrate_reset(odl_int8_t *q, const odl_net_t *net);
/* Forgets the quantized model and the calibration: the odl_net_t's grads_shared_erase, called when a batch's
 * first sample claims the RAM the int8 copy shares with the gradient accumulators (pyodl/model/memory_plan.py).
 * Calibration and quantization are refused (ODL_ERR_BATCH_OPEN) while a batch is accumulated. */
void odl_int8_erase(void *shared);
/* One float forward pass of x, widening each tensor's range; refused (nothing changed) if a value is not
 * finite. */
odl_status_t odl_int8_calibrate(odl_int8_t *q, odl_net_t *net, const float *x);
/* What odl_int8_calibrate would answer for x, without widening any range (a batch checks every window first). */
odl_status_t odl_int8_calibrate_check(odl_int8_t *q, odl_net_t *net, const float *x);
/* Quantizes the current float parameters with the calibrated ranges; bits[p] is the weight width of the
 * p-th parameter layer (8, 4 or 2; BatchNorm only 8). A transaction: on refusal the previous quantized
 * model, if any, stays. ODL_ERR_SIZE when n_bits is not the parameter layer count, ODL_ERR_UNSUPPORTED
 * for another width or a layer without int8 kernel, ODL_ERR_NO_CALIBRATION before any calibration window,
 * ODL_ERR_QUANT_RANGE when a multiplier or a bias leaves the fixed-point range. */
odl_status_t odl_int8_quantize(odl_int8_t *q, const odl_net_t *net, const uint8_t *bits, unsigned n_bits);
/* Input quantization as TFLite's QUANTIZE: round(x / scale) + zero point, saturated. */
int8_t odl_int8_quantize_value(float x, odl_qparams_t p);
/* Integer inference of one float window: logits and probabilities (int8) land in q->logits and q->probs;
 * the class is the first largest logit. */
odl_status_t odl_int8_predict(odl_int8_t *q, const odl_net_t *net, const float *x, uint16_t *predicted_class);
/* The same on the newest `len` rows of the window only (the rest must be finite too): the cheap mode of
 * adaptive inference, for a model whose window layers are unpadded and that reaches its Dense layers through
 * GlobalAveragePooling1D or GlobalMaxPooling1D. ODL_ERR_UNSUPPORTED when a layer cannot take `len` rows
 * (padded windows, a Flatten, windows that do not fit), ODL_ERR_SIZE for 0 or more rows than the input's. */
odl_status_t odl_int8_predict_newest(odl_int8_t *q, const odl_net_t *net, const float *x, unsigned len,
                                     uint16_t *predicted_class);
/* The last prediction's largest int8 probability, as probability * 256 (0..255). */
uint8_t odl_int8_confidence(const odl_int8_t *q, const odl_net_t *net);

typedef struct {
    uint16_t predicted_class;
    uint16_t cheap_class;
    uint32_t cheap_confidence; /* odl_int8_confidence of the cheap mode */
    uint32_t full_ran;         /* 1: the cheap mode's confidence was below the threshold */
} odl_adaptive_t;
/* Adaptive inference: the cheap mode on the newest cheap_len rows; when its confidence (probability * 256)
 * is below `threshold`, the whole window too, whose answer then counts. The scores left in q are the last
 * mode's. */
odl_status_t odl_int8_predict_adaptive(odl_int8_t *q, const odl_net_t *net, const float *x, unsigned cheap_len,
                                       uint32_t threshold, odl_adaptive_t *result);
/* Copies the last prediction's int8 logits and probabilities; n must be the number of classes. */
odl_status_t odl_int8_get_scores(const odl_int8_t *q, const odl_net_t *net, int8_t *logits, int8_t *probs,
                                 uint32_t n);

/*
 * The quantized model as one byte image, which the host reads back to rebuild it (and TFLite's copy):
 *   input (scale f32, zero point i32), softmax output (scale, zero point), then per layer:
 *   out (scale, zero point), pre (scale, zero point), act_min (i32), act_max (i32), and for a parameter layer:
 *   bits (u32), w_scale[C] (f32), bias[C] (i32), weights (ODL_INT8_WEIGHT_BYTES(count, bits) bytes).
 * Little-endian words. ODL_ERR_NOT_QUANTIZED before a quantization.
 */
odl_status_t odl_int8_image_bytes(const odl_int8_t *q, const odl_net_t *net, uint32_t *bytes);
odl_status_t odl_int8_image_read(const odl_int8_t *q, const odl_net_t *net, uint32_t offset, uint8_t *dst,
                                 uint32_t count);

/* Fixed-point helpers of TFLite's reference kernels (fixedpoint.c), exposed for the kernel tests. */
odl_qmult_t odl_quantize_multiplier(double real);
int32_t odl_multiply_by_quantized_multiplier(int32_t x, odl_qmult_t m);
int32_t odl_saturating_rounding_doubling_high_mul(int32_t a, int32_t b);
int32_t odl_rounding_divide_by_pot(int32_t x, int exponent);

#ifdef __cplusplus
}
#endif

#endif /* ODL_INT8_H */
