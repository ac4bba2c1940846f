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

/* The batch mean g = sum / count. For a power-of-two count (a batch of 32) 1/count is exact and sum * (1/count)
 * == sum / count for every sum, so the multiply (1 cycle) replaces the divide (14); `exact` is a constant
 * in each caller below, so the choice is made once per step, not per parameter. */
static inline float batch_mean(float grad_sum, float count, float inv, int exact)
{
    return exact ? grad_sum * inv : grad_sum / count;
}

/* count is a sample count held in a float: a whole number of at most 2^24 first, then the usual test. */
static int exact_count(float count)
{
    return count >= 1.0f && count <= 16777216.0f && (float)(unsigned)count == count &&
           odl_is_power_of_two((unsigned)count);
}

/* One parameter's next value and next state slots (m: velocity or first moment, v: second moment), one
 * function per optimizer. The check and the commit below both call them, so what is committed is exactly
 * what was checked; the switch on the optimizer stays outside the loops. */
typedef struct {
    float w, m, v;
} odl_next_t;

static inline float next_sgd(float w, float g, float lr)
{
    return w - lr * g;
}

static inline odl_next_t next_momentum(const odl_optimizer_t *opt, float w, float g, float lr, float m)
{
    odl_next_t r;
    r.m = m * opt->momentum - g * lr;
    r.w = opt->kind == ODL_OPT_NESTEROV ? w + (r.m * opt->momentum - g * lr) : w + r.m;
    r.v = 0.0f;
    return r;
}

static inline odl_next_t next_adam(const odl_optimizer_t *opt, float w, float g, float alpha, float m, float v)
{
    odl_next_t r;
    r.m = m + (g - m) * opt->one_minus_beta_1;
    r.v = v + (g * g - v) * opt->one_minus_beta_2;
    r.w = w - (r.m * alpha) / (sqrtf(r.v) + opt->epsilon);
    return r;
}

/* Written so that NaN fails too. */
static inline int acceptable(float w, float m, float v, float bound)
{
    return fabsf(w) <= bound && isfinite(m) && isfinite(v);
}

/* The check and the update below are two loops of the same shape on purpose: one loop with a commit flag
 * and the optimizer switch inside costs 1.7-1.8x the instructions per parameter (GCC 12 does not unswitch
 * it; benchmarks/calibrate.py). Each is written once, inlined twice: with exact = 1 and exact = 0. */
static inline __attribute__((always_inline)) int check(const odl_optimizer_t *opt, const odl_step_coefficients_t *c,
                                                       const float *w, const float *grad_sum, float count,
                                                       const float *slot_1, const float *slot_2, uint32_t n,
                                                       float bound, int exact)
{
    const float lr = c->learning_rate;
    const float inv = 1.0f / count;
    switch (opt->kind) {
    case ODL_OPT_MOMENTUM:
    case ODL_OPT_NESTEROV:
        for (uint32_t k = 0; k < n; ++k) {
            const float g = batch_mean(grad_sum[k], count, inv, exact);
            const odl_next_t r = next_momentum(opt, w[k], g, lr, slot_1[k]);
            if (!acceptable(r.w, r.m, 0.0f, bound)) {
                return 0;
            }
        }
        return 1;
    case ODL_OPT_ADAM:
        for (uint32_t k = 0; k < n; ++k) {
            const float g = batch_mean(grad_sum[k], count, inv, exact);
            const odl_next_t r = next_adam(opt, w[k], g, c->alpha, slot_1[k], slot_2[k]);
            if (!acceptable(r.w, r.m, r.v, bound)) {
                return 0;
            }
        }
        return 1;
    default:
        for (uint32_t k = 0; k < n; ++k) {
            if (!(fabsf(next_sgd(w[k], batch_mean(grad_sum[k], count, inv, exact), lr)) <= bound)) {
                return 0;
            }
        }
        return 1;
    }
}

int odl_optimizer_check(const odl_optimizer_t *opt, const odl_step_coefficients_t *c, const float *w,
                        const float *grad_sum, float count, const float *slot_1, const float *slot_2, uint32_t n,
                        float bound)
{
    return exact_count(count) ? check(opt, c, w, grad_sum, count, slot_1, slot_2, n, bound, 1)
                                  : check(opt, c, w, grad_sum, count, slot_1, slot_2, n, bound, 0);
}

static inline __attribute__((always_inline)) void update(const odl_optimizer_t *opt,
                                                         const odl_step_coefficients_t *c, float *w,
                                                         const float *grad_sum, float count, float *slot_1,
                                                         float *slot_2, uint32_t n, int exact)
{
    const float lr = c->learning_rate;
    const float inv = 1.0f / count;
    switch (opt->kind) {
    case ODL_OPT_MOMENTUM:
    case ODL_OPT_NESTEROV:
        for (uint32_t k = 0; k < n; ++k) {
            const float g = batch_mean(grad_sum[k], count, inv, exact);
            const odl_next_t r = next_momentum(opt, w[k], g, lr, slot_1[k]);
            w[k] = r.w;
            slot_1[k] = r.m;
        }
        break;
    case ODL_OPT_ADAM:
        for (uint32_t k = 0; k < n; ++k) {
            const float g = batch_mean(grad_sum[k], count, inv, exact);
            const odl_next_t r = next_adam(opt, w[k], g, c->alpha, slot_1[k], slot_2[k]);
            w[k] = r.w;
            slot_1[k] = r.m;
            slot_2[k] = r.v;
        }
        break;
    default:
        for (uint32_t k = 0; k < n; ++k) {
            w[k] = next_sgd(w[k], batch_mean(grad_sum[k], count, inv, exact), lr);
        }
        break;
    }
}

void odl_optimizer_update(const odl_optimizer_t *opt, const odl_step_coefficients_t *c, float *w,
                          const float *grad_sum, float count, float *slot_1, float *slot_2, uint32_t n)
{
    if (exact_count(count)) {
        update(opt, c, w, grad_sum, count, slot_1, slot_2, n, 1);
    } else {
        update(opt, c, w, grad_sum, count, slot_1, slot_2, n, 0);
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
