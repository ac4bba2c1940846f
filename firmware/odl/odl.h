/*
 * odl.h - public API of the portable on-device-learning library.
 *
 * The library trains a 1-D CNN described by a constant layer table that `pyodl export` generates
 * (firmware/generated/model_params.c). It never allocates and never does I/O: every buffer it touches is
 * a static array of the generated file, sized at compile time from the generated model.h.
 *
 * Tensors are channels-last, exactly the Keras layouts: an activation of length N with C channels is
 * x[n * C + c]; a Conv1D kernel is w[(k * C_in + c) * F + f]; a Dense kernel is w[i * N_out + j].
 */
#ifndef ODL_H
#define ODL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Places a buffer in a named linker section so the map file shows each class of memory separately. */
#if defined(__GNUC__) && defined(__ELF__)
#define ODL_SECTION(name) __attribute__((section(name)))
#else
#define ODL_SECTION(name)
#endif
#if defined(__GNUC__)
#define ODL_ALIGNED(n) __attribute__((aligned(n)))
#else
#define ODL_ALIGNED(n)
#endif

typedef enum {
    ODL_OK = 0,
    ODL_ERR_NULL = 1,          /* a required pointer argument is NULL */
    ODL_ERR_MODEL = 2,         /* the layer table is inconsistent (shapes, missing buffers) */
    ODL_ERR_LABEL = 3,         /* label is not below the number of classes */
    ODL_ERR_NONFINITE = 4,     /* NaN or infinity in an input, the loss or a gradient; nothing changed */
    ODL_ERR_LEARNING_RATE = 5, /* learning rate is not a finite number > 0 */
    ODL_ERR_NO_SAMPLES = 6,    /* SGD step requested with no accumulated sample */
    ODL_ERR_TRAINABLE = 7,     /* more trainable layers requested than this build keeps in RAM, or 0 */
    ODL_ERR_LAYER = 8,         /* layer index out of range, or the layer has no parameters */
    ODL_ERR_FROZEN = 9,        /* the layer's parameters are const (in flash) in this build */
    ODL_ERR_SIZE = 10,         /* a caller's element count does not match the layer */
    ODL_ERR_STEP_REJECTED = 11, /* the update would make a parameter NaN or beyond +-param_bound, or the
                                 * optimizer state not finite: weights and state unchanged, gradients cleared */
    ODL_ERR_PARAM_RANGE = 12,  /* a parameter to write is NaN or beyond +-param_bound; nothing written */
    ODL_ERR_UNSUPPORTED = 13,  /* a layer without an int8 kernel (LeakyReLU, tanh, sigmoid), or a bit width
                                * it does not take: nothing quantized */
    ODL_ERR_QUANT_RANGE = 14,  /* a scale ratio beyond what int8 fixed point represents: nothing quantized */
    ODL_ERR_NO_CALIBRATION = 15, /* quantization asked before any calibration window */
    ODL_ERR_NOT_QUANTIZED = 16,  /* int8 inference asked before a quantization, or after training erased it */
    ODL_ERR_BATCH_OPEN = 17      /* calibration or quantization while a batch is accumulated: the int8 copy
                                  * shares the gradient accumulators' RAM (step or zero the gradients first) */
} odl_status_t;

typedef enum {
    ODL_LAYER_CONV1D = 0,
    ODL_LAYER_DENSE = 1,
    ODL_LAYER_AVGPOOL1D = 2,
    ODL_LAYER_GAP1D = 3,   /* GlobalAveragePooling1D */
    ODL_LAYER_FLATTEN = 4, /* channels-last memory is already vec(x): in and out are the same buffer */
    ODL_LAYER_RELU = 5,    /* standalone ReLU, computed in place */
    ODL_LAYER_SOFTMAX = 6, /* standalone softmax, last layer only */
    ODL_LAYER_MAXPOOL1D = 7,
    ODL_LAYER_ACTIVATION = 8, /* standalone ReLU6, LeakyReLU, tanh or sigmoid (act), in place */
    ODL_LAYER_BATCHNORM = 9,  /* inference mode; weights = gamma, bias = beta, statistics in bn_* */
    ODL_LAYER_DEPTHWISE1D = 10, /* size = K; out_ch = in_ch * depth multiplier */
    ODL_LAYER_GMP1D = 11        /* GlobalMaxPooling1D; `argmax` holds its tie mask */
} odl_layer_kind_t;

/* The update a training step applies: Keras's SGD (momentum 0), SGD with momentum, with Nesterov momentum,
 * or Adam. Which one is fixed by the generator; only the learning rate is given at each step. */
typedef enum {
    ODL_OPT_SGD = 0,
    ODL_OPT_MOMENTUM = 1, /* one state slot per parameter: the velocity */
    ODL_OPT_NESTEROV = 2, /* the same slot */
    ODL_OPT_ADAM = 3      /* two slots per parameter: first and second moment */
} odl_optimizer_kind_t;

typedef struct {
    uint8_t kind; /* odl_optimizer_kind_t */
    float momentum;
    float beta_1, beta_2;
    /* 1 - beta as Keras forms it: in double precision, then rounded once to float (not 1.0f - beta_1). */
    float one_minus_beta_1, one_minus_beta_2;
    float epsilon;
} odl_optimizer_t;

typedef enum {
    ODL_ACT_NONE = 0,
    ODL_ACT_RELU = 1,
    ODL_ACT_SOFTMAX = 2, /* last layer only: the loss is categorical cross-entropy on these probabilities */
    ODL_ACT_RELU6 = 3,
    ODL_ACT_LEAKY_RELU = 4, /* negative slope: the layer's alpha */
    ODL_ACT_TANH = 5,
    ODL_ACT_SIGMOID = 6
} odl_activation_t;

/*
 * One row of the generated layer table. Shapes are (length, channels); Dense has length 1.
 * Pointers the build does not need are NULL: a frozen layer has no gradient buffers and its weights
 * are const (flash), a layer below every trainable one keeps no ReLU mask.
 */
typedef struct {
    uint8_t kind;   /* odl_layer_kind_t */
    uint8_t act;    /* odl_activation_t, fused after Conv1D / Dense, or the function of an ACTIVATION layer */
    uint8_t no_bias; /* 1: Keras's use_bias=False; `bias` points at zeros, nothing to train, read or write */
    uint16_t size;  /* Conv1D kernel size K, pool size p, otherwise 0 */
    uint16_t in_len, in_ch;
    uint16_t out_len, out_ch;
    /* Conv1D and pools: output m's window starts at input row m * stride - pad (rows outside the input
     * are padding; the padding after the input follows from out_len); Conv1D taps are dilation apart.
     * stride = dilation = 1, pad = 0 elsewhere. */
    uint16_t stride, dilation, pad;
    /* The backward pass keeps dL/d(output) where the output was and writes dL/d(input) over the input
     * (pyodl/model/memory_plan.py), so `in` is written too, except the sample's. */
    float *in;  /* NULL: the sample passed to odl_forward */
    float *out; /* equals `in` for layers computed in place */
    const float *weights;
    const float *bias;
    float *weights_rw; /* same storage as weights when it lives in RAM, NULL when const */
    float *bias_rw;
    float *grad_weights; /* sums over the accumulated samples */
    float *grad_bias;
    float alpha;         /* LeakyReLU's negative slope */
    uint32_t *relu_mask; /* ReLU, ReLU6, LeakyReLU: bit i set where element i lets the gradient through */
    float *saved_act;    /* tanh, sigmoid: a copy of the output, which their gradients are computed from */
    const float *bn_mean;    /* BatchNormalization: moving mean per channel */
    const float *bn_inv_std; /* ... and 1 / sqrt(moving variance + epsilon) */
    uint32_t *argmax;    /* MaxPool1D: each output's offset in its window, ODL_INDEX_BITS(size) bits each;
                          * GlobalMaxPooling1D: a bit per input element, set where it equals its channel's
                          * maximum (ODL_MASK_WORDS(in_len * in_ch) words) */
    /* Trainable layers under a stateful optimizer: its slots, each weights then bias, slot after slot
     * (odl_optimizer_slots(&net->optimizer) * (weights + bias) floats). NULL otherwise. */
    float *optim_state;
} odl_layer_t;

typedef struct {
    /* Fixed by the generator. */
    const odl_layer_t *layers;
    uint16_t num_layers;
    uint16_t input_len, input_ch;
    uint16_t num_classes;
    uint16_t trainable_capacity; /* how many of the last parameter layers this build can train */
    float *logits;               /* input of the final softmax */
    float *probs;                /* output of the final softmax */
    uint32_t model_hash;
    odl_optimizer_t optimizer;
    /* What shares the gradient accumulators' RAM (pyodl/model/memory_plan.py: the int8 copy), or NULL. The
     * accumulators are live only within a batch: its first sample zeroes them, after calling
     * grads_shared_erase(grads_shared), and nothing else writes them. */
    void *grads_shared;
    void (*grads_shared_erase)(void *shared);
    /* No parameter may leave [-param_bound, param_bound] (pyodl export --param-bound): a step or a write
     * that would is refused whole, so the model stays usable (a weight of 1e37 is finite, but the next
     * forward pass overflows on it). */
    float param_bound;
    /* Changed by the API. */
    uint16_t trainable;      /* parameter layers currently trained, counted from the output */
    uint16_t first_trained;  /* index in `layers` of the lowest trained parameter layer */
    uint32_t accumulated;    /* samples summed in the gradient buffers */
    uint32_t steps;          /* updates applied since the optimizer state was last cleared (Keras's iterations) */
} odl_net_t;

/* Checks the table, trains the build's full capacity, clears the gradient buffers. */
odl_status_t odl_init(odl_net_t *net);

/* Trains only the last `n` parameter layers (transfer learning); n = all of them is Full mode.
 * Clears the gradient buffers, since a half-accumulated batch would mix two modes, and the optimizer state:
 * a new mode starts a new training run, as a new Keras optimizer does. */
odl_status_t odl_set_trainable(odl_net_t *net, unsigned n);
unsigned odl_param_layer_count(const odl_net_t *net);

/* Forward pass of one sample (input_len * input_ch floats); probabilities land in net->probs. */
odl_status_t odl_forward(odl_net_t *net, const float *x);
odl_status_t odl_predict(odl_net_t *net, const float *x, uint16_t *predicted_class);
/* A forward pass that writes the smallest and largest value of layer i's output into lo[i] and hi[i]
 * (a fused softmax's: its input, the logits), and of its output before a fused activation into pre_lo[i] and
 * pre_hi[i]; ODL_ERR_NONFINITE when one is not finite. */
odl_status_t odl_forward_ranges(odl_net_t *net, const float *x, float *lo, float *hi, float *pre_lo,
                                float *pre_hi);
/* Copies the probabilities of the last forward pass; n must be the number of classes. */
odl_status_t odl_get_probs(const odl_net_t *net, float *probs, uint32_t n);

/* Forward + backward of one labelled sample; adds its parameter gradients to the accumulators.
 * `loss` (may be NULL) receives the sample's cross-entropy. A batch's first sample (accumulated == 0) first
 * erases what shares the accumulators' RAM (grads_shared: the int8 copy) and zeroes them; a refused sample
 * changes nothing. */
odl_status_t odl_accumulate(odl_net_t *net, const float *x, uint16_t label, float *loss);

/* One update with the batch-mean gradient (accumulated gradient / accumulated samples), by the build's
 * optimizer (plain SGD: w -= lr * g, as Keras). A transaction: every new value is computed and checked
 * first, then all are written. Leaves every weight and the optimizer state untouched and returns
 * ODL_ERR_NONFINITE when a gradient is not finite, ODL_ERR_STEP_REJECTED when the update would leave the
 * bound (see param_bound). Clears the accumulators either way. */
odl_status_t odl_sgd_step(odl_net_t *net, float learning_rate);
/* What odl_sgd_step accepts as a learning rate: a finite number > 0. */
int odl_learning_rate_valid(float learning_rate);
/* Zeroes the optimizer's state (velocities, moments) and its step count, as a fresh Keras optimizer.
 * Writing parameters (odl_set_params, odl_write_param_slice) does the same: momentum gathered for other
 * weights would be applied to the new ones. */
void odl_reset_optimizer(odl_net_t *net);
unsigned odl_optimizer_slots(const odl_optimizer_t *opt);
/* Drops the accumulated batch (accumulated = 0). Writes no RAM: the next sample zeroes the accumulators. */
void odl_zero_grads(odl_net_t *net);

/* Copies of a parameter layer's data; `layer` indexes net->layers. Counts must match the layer. */
odl_status_t odl_param_sizes(const odl_net_t *net, unsigned layer, uint32_t *weights, uint32_t *bias);
odl_status_t odl_get_params(const odl_net_t *net, unsigned layer, float *weights, uint32_t n_weights,
                            float *bias, uint32_t n_bias);
odl_status_t odl_set_params(odl_net_t *net, unsigned layer, const float *weights, uint32_t n_weights,
                            const float *bias, uint32_t n_bias);
/* The batch-mean gradient accumulated so far (what Keras would apply). */
odl_status_t odl_get_grads(const odl_net_t *net, unsigned layer, float *weights, uint32_t n_weights,
                           float *bias, uint32_t n_bias);

/*
 * A slice of a parameter layer seen as one flat vector: its weights followed by its bias. This is what a
 * transport with a bounded buffer (the RAM mailbox, UART frames) moves, chunk by chunk. Writing follows
 * odl_set_params' rules: refused for a frozen layer or a value that is NaN or beyond +-param_bound
 * (ODL_ERR_PARAM_RANGE, nothing written), and it clears the gradients.
 */
odl_status_t odl_read_param_slice(const odl_net_t *net, unsigned layer, uint32_t offset, float *dst,
                                  uint32_t count);
odl_status_t odl_write_param_slice(odl_net_t *net, unsigned layer, uint32_t offset, const float *src,
                                   uint32_t count);

/*
 * The optimizer's state, so that a caller can resume a training run exactly where another (TensorFlow, a
 * lockstep check) left it: per trained layer the slots as odl_layer_t.optim_state holds them (momentum: the
 * velocity; Adam: the first moment, then the second; each the layer's weights followed by its bias), and the
 * step count Adam's bias correction reads. Writing parameters restarts the optimizer, so write them first.
 * odl_optim_size gives a layer's floats (0 under plain SGD); a layer that keeps no state under a stateful
 * optimizer (frozen in flash) is ODL_ERR_FROZEN. A write refuses a value that is not finite (ODL_ERR_NONFINITE,
 * nothing written) and leaves the gradients: they were summed for the same weights.
 */
odl_status_t odl_optim_size(const odl_net_t *net, unsigned layer, uint32_t *floats);
odl_status_t odl_read_optim_slice(const odl_net_t *net, unsigned layer, uint32_t offset, float *dst,
                                  uint32_t count);
odl_status_t odl_write_optim_slice(odl_net_t *net, unsigned layer, uint32_t offset, const float *src,
                                   uint32_t count);
uint32_t odl_optimizer_steps(const odl_net_t *net);
void odl_set_optimizer_steps(odl_net_t *net, uint32_t steps);

/*
 * What a device keeps across power cycles (its personalization): the trained layer count, the optimizer's
 * step count, and every parameter layer kept in RAM with its optimizer state, as one sequence of 32-bit
 * words. odl_state_word(net, k) is word k; odl_state_restore checks all of them (count, trained layers,
 * parameters within param_bound, finite state) before it writes any, and clears the gradients.
 */
uint32_t odl_state_words(const odl_net_t *net);
uint32_t odl_state_word(const odl_net_t *net, uint32_t k);
odl_status_t odl_state_restore(odl_net_t *net, const uint32_t *words, uint32_t n);

const char *odl_status_str(odl_status_t status);

#ifdef __cplusplus
}
#endif

#endif /* ODL_H */
