/*
 * The stream policies of odl_stream.h. Each threshold update is one float32 product and one sum, in this
 * order (the build has -ffp-contract=off), then a clamp to [0, 1]: pyodl/reference/stream.py does the same.
 */
#include <math.h>
#include <string.h>

#include "odl_stream.h"

static int in_unit(float x)
{
    return x >= 0.0f && x <= 1.0f;
}

odl_status_t odl_stream_init(odl_stream_t *stream, const odl_stream_config_t *config)
{
    if (stream == NULL || config == NULL) {
        return ODL_ERR_NULL;
    }
    const odl_stream_config_t *c = config;
    const int thresholded = c->policy == ODL_QUERY_BUDGET || c->policy == ODL_QUERY_AGREEMENT;
    const int draws = c->policy == ODL_QUERY_RANDOM || (thresholded && c->explore > 0.0f);
    if (c->policy >= ODL_QUERY_POLICIES || !in_unit(c->rate) || !in_unit(c->threshold) ||
        !in_unit(c->disagree_target) || !in_unit(c->explore) ||
        (thresholded && !(c->step > 0.0f && c->step <= 1.0f)) || (draws && c->seed == 0u) ||
        c->drift_window > ODL_DRIFT_WINDOW_MAX ||
        (c->drift_window > 0u && !(c->drift_on >= 1u && c->drift_on <= c->drift_window && c->drift_off < c->drift_on))) {
        return ODL_ERR_SIZE;
    }
    memset(stream, 0, sizeof *stream);
    stream->config = *c;
    stream->threshold = c->threshold;
    stream->rng = c->seed;
    return ODL_OK;
}

static float clamp_unit(float x)
{
    return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x);
}

/* Moves the threshold by step * (up - down), in float32. */
static void adapt(odl_stream_t *s, float up, float down)
{
    const float delta = s->config.step * (up - down);
    s->threshold = clamp_unit(s->threshold + delta);
}

uint32_t odl_xorshift32(uint32_t x)
{
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
}

/* A uniform float in [0, 1) with 24 random bits. */
static float uniform(odl_stream_t *s)
{
    s->rng = odl_xorshift32(s->rng);
    return (float)(s->rng >> 8) * (1.0f / 16777216.0f);
}

int odl_stream_decide(odl_stream_t *stream, float confidence)
{
    odl_stream_t *s = stream;
    int query;
    s->seen++;
    switch (s->config.policy) {
    case ODL_QUERY_RANDOM: {
        const float u = uniform(s); /* drawn every window, so a drift does not shift the sequence */
        query = s->drift || u < s->config.rate;
        break;
    }
    case ODL_QUERY_BUDGET:
    case ODL_QUERY_AGREEMENT: {
        /* Without exploration nothing is drawn; with it, a draw every window, as RANDOM. */
        const int drawn = s->config.explore > 0.0f && uniform(s) < s->config.explore;
        const int unsure = confidence < s->threshold;
        query = s->drift || unsure || drawn;
        s->explored = (uint32_t)(query && !s->drift && !unsure);
        if (!s->drift) {
            /* AGREEMENT only creeps up between queries; BUDGET also steps down at each query. */
            if (s->config.policy == ODL_QUERY_BUDGET || !query) {
                adapt(s, s->config.rate, query ? 1.0f : 0.0f);
            }
        }
        break;
    }
    default:
        query = 1;
        break;
    }
    s->queried += (uint32_t)query;
    return query;
}

static uint32_t popcount(uint32_t x)
{
    uint32_t n = 0;
    for (; x != 0u; x &= x - 1u) {
        n++;
    }
    return n;
}

void odl_stream_feedback(odl_stream_t *stream, int agreed)
{
    odl_stream_t *s = stream;
    const uint32_t window = s->config.drift_window;
    if (s->config.policy == ODL_QUERY_AGREEMENT && !s->drift && !s->explored) {
        adapt(s, agreed ? 0.0f : 1.0f, s->config.disagree_target);
    }
    s->answers++;
    if (window == 0u) {
        return;
    }
    const uint32_t mask = window == 32u ? 0xFFFFFFFFu : (1u << window) - 1u;
    s->history = ((s->history << 1) | (agreed ? 0u : 1u)) & mask;
    const uint32_t disagreements = popcount(s->history);
    if (!s->drift && s->answers >= window && disagreements >= s->config.drift_on) {
        s->drift = 1u;
        s->drifts++;
    } else if (s->drift && disagreements <= s->config.drift_off) {
        s->drift = 0u;
    }
}

float odl_confidence(const float *probs, uint32_t n, uint16_t *predicted)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; ++i) {
        if (probs[i] > probs[best]) {
            best = i;
        }
    }
    if (predicted != NULL) {
        *predicted = (uint16_t)best;
    }
    return n > 0u ? probs[best] : 0.0f;
}
