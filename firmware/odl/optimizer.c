/*
 * optimizer.c - the parameter update of one training step: Keras's SGD (plain, momentum, Nesterov) and
 * Adam, each written as Keras 3 writes its update_step, operation by operation, so that float32 rounding
 * happens at the same places (only the batch mean, g = sum / count, is formed here).
 */
#include <math.h>

#include "odl.h"
#include "odl_layers.h"

void odl_optimizer_coefficients(const odl_optimizer_t *opt, uint32_t step, float learning_rate,
                                odl_step_coefficients_t *c)
{
    c->learning_rate = learning_rate;
    c->alpha = learning_rate;
    if (opt->kind == ODL_OPT_ADAM) {
        /* Keras: local_step = iterations + 1 as a float; alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t). */
        const float t = (float)(step + 1u);
        const float beta_1_power = powf(opt->beta_1, t);
        const float beta_2_power = powf(opt->beta_2, t);
        c->alpha = learning_rate * sqrtf(1.0f - beta_2_power) / (1.0f - beta_1_power);
    }
}

void odl_optimizer_update(const odl_optimizer_t *opt, const odl_step_coefficients_t *c, float *w,
                          const float *grad_sum, float count, float *slot_1, float *slot_2, uint32_t n)
{
    const float lr = c->learning_rate;
    switch (opt->kind) {
    case ODL_OPT_MOMENTUM:
    case ODL_OPT_NESTEROV: {
        const float momentum = opt->momentum;
        for (uint32_t k = 0; k < n; ++k) {
            const float g = grad_sum[k] / count;
            slot_1[k] = slot_1[k] * momentum - g * lr; /* the velocity m */
            if (opt->kind == ODL_OPT_NESTEROV) {
                w[k] += slot_1[k] * momentum - g * lr;
            } else {
                w[k] += slot_1[k];
            }
        }
        break;
    }
    case ODL_OPT_ADAM: {
        const float alpha = c->alpha;
        for (uint32_t k = 0; k < n; ++k) {
            const float g = grad_sum[k] / count;
            slot_1[k] += (g - slot_1[k]) * opt->one_minus_beta_1; /* first moment m */
            slot_2[k] += (g * g - slot_2[k]) * opt->one_minus_beta_2; /* second moment v */
            w[k] -= (slot_1[k] * alpha) / (sqrtf(slot_2[k]) + opt->epsilon);
        }
        break;
    }
    default: /* plain SGD: w -= lr * g */
        for (uint32_t k = 0; k < n; ++k) {
            w[k] -= lr * (grad_sum[k] / count);
        }
        break;
    }
}

unsigned odl_optimizer_slots(const odl_optimizer_t *opt)
{
    switch (opt->kind) {
    case ODL_OPT_MOMENTUM:
    case ODL_OPT_NESTEROV:
        return 1u;
    case ODL_OPT_ADAM:
        return 2u;
    default:
        return 0u;
    }
}
