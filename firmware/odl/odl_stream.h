/*
 * odl_stream.h - what a deployed device decides about each unlabelled window of a stream: whether to ask a
 * teacher (a bigger model on a phone or gateway) for its label, at a radio cost per query, and whether the
 * data has drifted. The application predicts, calls odl_stream_decide with the prediction's confidence and,
 * after a query, odl_stream_feedback with whether the teacher agreed; it trains on the labelled windows.
 *
 * Everything is float32 arithmetic in a fixed order, so pyodl/reference/stream.py reproduces every decision
 * exactly from the same confidences.
 *
 * Policies:
 * - ALWAYS: every window is queried (the upper bound on labels and on cost).
 * - RANDOM: each window with probability `rate` (xorshift32 from `seed`), the baseline at a given rate.
 * - BUDGET: query when the confidence is below a threshold that adapts after every window,
 *   threshold += step * (rate - queried), so the long-run query rate is `rate` (automatic data pruning to a
 *   budget: the threshold is never set by hand).
 * - AGREEMENT: the same threshold, adapted to the teacher instead: after a query it moves by
 *   step * (disagreed - disagree_target), so queries concentrate where the teacher disagrees at the target
 *   rate; between queries it creeps up by step * rate (`rate`: a floor, so a threshold that fell too low
 *   recovers).
 * - Exploration (BUDGET, AGREEMENT): a share `explore` of the windows is queried at random whatever its
 *   confidence (xorshift32 from `seed`). The windows a device is unsure of are no fair sample of its data (on
 *   the watch data their activities are skewed), and a replay buffer of them alone can train the model below
 *   the one it started from; a random share keeps every activity in it. BUDGET counts these queries in its
 *   rate; AGREEMENT's threshold moves only on the queries it made itself.
 *
 * Drift: the last `drift_window` queries' agreements are kept; when `drift_on` or more of them disagreed the
 * drift flag rises (the application then queries every window and raises its learning rate); it falls when
 * `drift_off` or fewer disagree.
 */
#ifndef ODL_STREAM_H
#define ODL_STREAM_H

#include <stdint.h>

#include "odl.h"

typedef enum {
    ODL_QUERY_ALWAYS = 0,
    ODL_QUERY_RANDOM = 1,
    ODL_QUERY_BUDGET = 2,
    ODL_QUERY_AGREEMENT = 3,
    ODL_QUERY_POLICIES
} odl_query_policy_t;

#define ODL_DRIFT_WINDOW_MAX 32u

typedef struct {
    uint32_t policy;       /* odl_query_policy_t */
    float rate;            /* RANDOM: query probability; BUDGET: target rate; AGREEMENT: floor rate */
    float threshold;       /* BUDGET, AGREEMENT: the initial confidence threshold, in [0, 1] */
    float step;            /* BUDGET, AGREEMENT: the threshold's adaptation step, > 0 */
    float disagree_target; /* AGREEMENT: the teacher disagreement rate among queries it aims at */
    float explore;         /* BUDGET, AGREEMENT: the share of windows queried at random, in [0, 1]; 0: none */
    uint32_t seed;         /* RANDOM, or explore > 0: the generator's seed, not 0 */
    uint32_t drift_window; /* queries the detector looks back on, 1..ODL_DRIFT_WINDOW_MAX; 0: no detector */
    uint32_t drift_on;     /* disagreements among them that raise the drift flag (1..drift_window) */
    uint32_t drift_off;    /* disagreements at or below which it falls (< drift_on) */
} odl_stream_config_t;

typedef struct {
    odl_stream_config_t config;
    float threshold;   /* the current confidence threshold */
    uint32_t rng;      /* xorshift32 state (RANDOM) */
    uint32_t seen;     /* windows decided */
    uint32_t queried;  /* of which queried */
    uint32_t history;  /* bit i set: the (i+1)-th latest query's label disagreed with the prediction */
    uint32_t answers;  /* queries answered so far (the history holds min(answers, drift_window)) */
    uint32_t explored; /* 1: the latest query came from the random share alone, not from the threshold */
    uint32_t drift;    /* 1 while a drift is detected */
    uint32_t drifts;   /* times the flag rose */
} odl_stream_t;

/* Checks the configuration (ODL_ERR_SIZE for an out-of-range field, nothing changed) and starts afresh. */
odl_status_t odl_stream_init(odl_stream_t *stream, const odl_stream_config_t *config);
/* 1 when this window's label should be asked for; adapts a BUDGET or AGREEMENT threshold. While a drift is
 * detected every window is queried (and no threshold moves). */
int odl_stream_decide(odl_stream_t *stream, float confidence);
/* After a query: whether the teacher's label was the prediction. Adapts an AGREEMENT threshold and updates
 * the drift detector. */
void odl_stream_feedback(odl_stream_t *stream, int agreed);
/* The next state of a xorshift32 generator (RANDOM's draws; the application's replay draws). */
uint32_t odl_xorshift32(uint32_t x);
/* The highest probability of `n` and its class: a prediction's confidence. */
float odl_confidence(const float *probs, uint32_t n, uint16_t *predicted);

#endif /* ODL_STREAM_H */
