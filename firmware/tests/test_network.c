/*
 * Whole-network checks on the generated model of ODL_MODEL_DIR (the paper's model by default).
 *
 * Usage: test_network <gradcheck|tl_matches_full|errors>
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model.h"
#include "odl_layers.h"
#include "testutil.h"

#define BATCH 4
#define MAX_PARAMS 16384

static float samples[BATCH][ODL_INPUT_SIZE];
static uint16_t labels[BATCH];
static float w_buf[MAX_PARAMS], b_buf[1024], gw[MAX_PARAMS], gb[1024];

static void make_batch(test_rng_t *rng)
{
    for (unsigned s = 0; s < BATCH; ++s) {
        test_fill(rng, samples[s], ODL_INPUT_SIZE, -1.0f, 1.0f);
        labels[s] = (uint16_t)test_int(rng, 0, ODL_NUM_CLASSES - 1u);
    }
}

static int is_param_layer(unsigned i)
{
    const uint8_t kind = odl_model.layers[i].kind;
    return kind == ODL_LAYER_CONV1D || kind == ODL_LAYER_DENSE;
}

static void sizes(unsigned layer, uint32_t *nw, uint32_t *nb)
{
    test_expect(odl_param_sizes(&odl_model, layer, nw, nb) == ODL_OK, "param sizes");
    test_expect(*nw <= MAX_PARAMS && *nb <= 1024, "test buffers large enough");
}

/* Mean cross-entropy of the batch at the current weights. */
static double batch_loss(void *ctx)
{
    (void)ctx;
    double total = 0.0;
    for (unsigned s = 0; s < BATCH; ++s) {
        test_expect(odl_forward(&odl_model, samples[s]) == ODL_OK, "forward");
        total += odl_cross_entropy(odl_model.logits, ODL_NUM_CLASSES, labels[s]);
    }
    return total / BATCH;
}

/* A parameter perturbed through odl_set_params, so the check also covers the public API. */
typedef struct {
    unsigned layer;
    uint32_t nw, nb;
} param_ctx_t;

static double perturbed_loss(void *ctx)
{
    const param_ctx_t *pc = ctx;
    test_expect(odl_set_params(&odl_model, pc->layer, w_buf, pc->nw, b_buf, pc->nb) == ODL_OK, "set params");
    return batch_loss(NULL);
}

/*
 * Backward of the whole network against central differences of the batch-mean loss, for every bias
 * and up to 40 weights per trainable layer. The loss is only piecewise smooth (ReLU kinks), so the step is
 * small (1e-3), one-sided differences are accepted at a kink, and the bound is looser than per layer
 * (2e-3 + 5e-2 * |g|): float rounding of the ~2.0 loss divided by 2h is already ~2e-4.
 */
static void check_gradcheck(test_rng_t *rng)
{
    make_batch(rng);
    for (unsigned layer = 0; layer < ODL_NUM_LAYERS; ++layer) {
        if (!is_param_layer(layer) || odl_model.layers[layer].weights_rw == NULL) {
            continue;
        }
        param_ctx_t pc = {layer, 0, 0};
        sizes(layer, &pc.nw, &pc.nb);
        odl_zero_grads(&odl_model);
        for (unsigned s = 0; s < BATCH; ++s) {
            test_expect(odl_accumulate(&odl_model, samples[s], labels[s], NULL) == ODL_OK, "accumulate");
        }
        test_expect(odl_get_grads(&odl_model, layer, gw, pc.nw, gb, pc.nb) == ODL_OK, "get grads");
        test_expect(odl_get_params(&odl_model, layer, w_buf, pc.nw, b_buf, pc.nb) == ODL_OK, "get params");

        static float picked_g[40];
        unsigned picked_i[40];
        const unsigned n_pick = pc.nw < 40u ? pc.nw : 40u;
        for (unsigned j = 0; j < n_pick; ++j) {
            picked_i[j] = test_int(rng, 0, pc.nw - 1u);
            picked_g[j] = gw[picked_i[j]];
        }
        char what[64];
        for (unsigned j = 0; j < n_pick; ++j) {
            snprintf(what, sizeof what, "layer %u dL/dw[%u]", layer, picked_i[j]);
            test_fd_check(what, &w_buf[picked_i[j]], 1, &picked_g[j], perturbed_loss, &pc, 1e-3f, 2e-3, 5e-2, 1);
        }
        snprintf(what, sizeof what, "layer %u dL/db", layer);
        test_fd_check(what, b_buf, pc.nb, gb, perturbed_loss, &pc, 1e-3f, 2e-3, 5e-2, 1);
        perturbed_loss(&pc); /* restore */
    }
}

/* Transfer learning computes, for the layers it trains, exactly the gradients Full mode computes, and
 * its SGD step changes only those layers. */
static void check_tl_matches_full(test_rng_t *rng)
{
    make_batch(rng);
    test_expect(odl_param_layer_count(&odl_model) == ODL_PARAM_LAYERS, "parameter layer count");
    test_expect(odl_set_trainable(&odl_model, 0) == ODL_ERR_TRAINABLE, "0 trainable layers refused");
    test_expect(odl_set_trainable(&odl_model, odl_model.trainable_capacity + 1u) == ODL_ERR_TRAINABLE,
                "more trainable layers than the build holds refused");
    const unsigned tl = odl_model.trainable_capacity >= 2u ? 2u : 1u;
    unsigned top = ODL_NUM_LAYERS; /* lowest layer trained in TL */
    for (unsigned seen = 0; seen < tl;) {
        seen += is_param_layer(--top) ? 1u : 0u;
    }
    static float full_gw[ODL_NUM_LAYERS][MAX_PARAMS];
    for (int pass = 0; pass < 2; ++pass) {
        test_expect(odl_set_trainable(&odl_model, pass == 0 ? odl_model.trainable_capacity : tl) == ODL_OK,
                    "set trainable");
        for (unsigned s = 0; s < BATCH; ++s) {
            test_expect(odl_accumulate(&odl_model, samples[s], labels[s], NULL) == ODL_OK, "accumulate");
        }
        for (unsigned layer = top; layer < ODL_NUM_LAYERS; ++layer) {
            if (!is_param_layer(layer)) {
                continue;
            }
            uint32_t nw, nb;
            sizes(layer, &nw, &nb);
            test_expect(odl_get_grads(&odl_model, layer, gw, nw, gb, nb) == ODL_OK, "get grads");
            if (pass == 0) {
                memcpy(full_gw[layer], gw, nw * sizeof(float));
            } else {
                test_expect(memcmp(full_gw[layer], gw, nw * sizeof(float)) == 0, "TL gradient == Full gradient");
            }
        }
        if (pass == 1 && top > 0) {
            for (unsigned layer = 0; layer < top; ++layer) {
                if (is_param_layer(layer)) {
                    uint32_t nw, nb;
                    sizes(layer, &nw, &nb);
                    test_expect(odl_get_grads(&odl_model, layer, gw, nw, gb, nb) == ODL_ERR_FROZEN,
                                "no gradient for a layer below the trained ones");
                }
            }
        }
    }
    /* A TL step moves the trained layers and leaves every other weight bit-identical. */
    static float before[ODL_NUM_LAYERS][MAX_PARAMS];
    for (unsigned layer = 0; layer < ODL_NUM_LAYERS; ++layer) {
        if (is_param_layer(layer)) {
            uint32_t nw, nb;
            sizes(layer, &nw, &nb);
            odl_get_params(&odl_model, layer, before[layer], nw, b_buf, nb);
        }
    }
    test_expect(odl_sgd_step(&odl_model, 0.5f) == ODL_OK, "TL SGD step");
    for (unsigned layer = 0; layer < ODL_NUM_LAYERS; ++layer) {
        if (is_param_layer(layer)) {
            uint32_t nw, nb;
            sizes(layer, &nw, &nb);
            odl_get_params(&odl_model, layer, w_buf, nw, b_buf, nb);
            const int same = memcmp(before[layer], w_buf, nw * sizeof(float)) == 0;
            test_expect(layer >= top ? !same : same, "TL step changes exactly the trained layers");
        }
    }
}

static void snapshot(float *dst, unsigned layer)
{
    uint32_t nw, nb;
    sizes(layer, &nw, &nb);
    odl_get_params(&odl_model, layer, dst, nw, b_buf, nb);
}

/* Every bad input is refused with its own status and changes nothing. */
static void check_errors(test_rng_t *rng)
{
    make_batch(rng);
    unsigned last = ODL_NUM_LAYERS - 1u;
    while (!is_param_layer(last)) {
        --last;
    }
    uint32_t nw, nb;
    sizes(last, &nw, &nb);
    static float before[MAX_PARAMS], after[MAX_PARAMS];
    snapshot(before, last);

    float bad[ODL_INPUT_SIZE];
    memcpy(bad, samples[0], sizeof bad);
    bad[ODL_INPUT_SIZE / 2] = NAN;
    test_expect(odl_accumulate(&odl_model, bad, 0, NULL) == ODL_ERR_NONFINITE, "NaN input refused");
    bad[ODL_INPUT_SIZE / 2] = INFINITY;
    test_expect(odl_accumulate(&odl_model, bad, 0, NULL) == ODL_ERR_NONFINITE, "infinite input refused");
    for (unsigned i = 0; i < ODL_INPUT_SIZE; ++i) {
        bad[i] = 3e38f; /* finite, but the activations overflow */
    }
    test_expect(odl_accumulate(&odl_model, bad, 0, NULL) == ODL_ERR_NONFINITE, "overflowing input refused");
    test_expect(odl_accumulate(&odl_model, samples[0], ODL_NUM_CLASSES, NULL) == ODL_ERR_LABEL,
                "label out of range refused");
    test_expect(odl_accumulate(&odl_model, NULL, 0, NULL) == ODL_ERR_NULL, "NULL sample refused");
    test_expect(odl_model.accumulated == 0, "refused samples are not accumulated");
    test_expect(odl_sgd_step(&odl_model, 0.01f) == ODL_ERR_NO_SAMPLES, "step without samples refused");

    float loss = -1.0f;
    test_expect(odl_accumulate(&odl_model, samples[0], labels[0], &loss) == ODL_OK && loss > 0.0f, "accumulate");
    test_expect(odl_sgd_step(&odl_model, NAN) == ODL_ERR_LEARNING_RATE, "NaN learning rate refused");
    test_expect(odl_sgd_step(&odl_model, 0.0f) == ODL_ERR_LEARNING_RATE, "zero learning rate refused");
    test_expect(odl_sgd_step(&odl_model, -0.01f) == ODL_ERR_LEARNING_RATE, "negative learning rate refused");
    test_expect(odl_model.accumulated == 1, "a refused step keeps the accumulated batch");
    odl_model.layers[last].grad_weights[0] = INFINITY; /* as if the batch had overflowed */
    test_expect(odl_sgd_step(&odl_model, 0.01f) == ODL_ERR_NONFINITE, "non-finite gradient refused");

    test_expect(odl_model.accumulated == 0, "a refused gradient clears the batch");

    /* A step that would leave the bound is refused whole: weights, optimizer and step count as they were. */
    test_expect(odl_accumulate(&odl_model, samples[0], labels[0], NULL) == ODL_OK, "accumulate again");
    const uint32_t steps = odl_model.steps;
    test_expect(odl_sgd_step(&odl_model, 1e30f) == ODL_ERR_STEP_REJECTED, "diverging step rejected");
    test_expect(odl_model.accumulated == 0 && odl_model.steps == steps, "a rejected step clears the batch only");
    snapshot(after, last);
    test_expect(memcmp(before, after, nw * sizeof(float)) == 0, "a rejected step leaves the weights untouched");
    odl_get_params(&odl_model, last, w_buf, nw, b_buf, nb);
    w_buf[nw / 2u] = odl_model.param_bound; /* the bound itself is allowed ... */
    test_expect(odl_set_params(&odl_model, last, w_buf, nw, b_buf, nb) == ODL_OK, "weight at the bound written");
    w_buf[nw / 2u] = nextafterf(odl_model.param_bound, INFINITY); /* ... one ulp beyond it is not */
    test_expect(odl_set_params(&odl_model, last, w_buf, nw, b_buf, nb) == ODL_ERR_PARAM_RANGE,
                "weight beyond the bound refused");
    b_buf[0] = -INFINITY;
    w_buf[nw / 2u] = before[nw / 2u];
    test_expect(odl_set_params(&odl_model, last, w_buf, nw, b_buf, nb) == ODL_ERR_PARAM_RANGE,
                "infinite bias refused");
    odl_get_params(&odl_model, last, w_buf, nw, b_buf, nb);
    w_buf[nw / 2u] = before[nw / 2u];
    test_expect(odl_set_params(&odl_model, last, w_buf, nw, b_buf, nb) == ODL_OK, "original weights written back");

    w_buf[0] = NAN;
    test_expect(odl_set_params(&odl_model, last, w_buf, nw, b_buf, nb) == ODL_ERR_PARAM_RANGE, "NaN weight refused");
    test_expect(odl_set_params(&odl_model, last, w_buf, nw - 1u, b_buf, nb) == ODL_ERR_SIZE, "wrong size refused");
    test_expect(odl_get_params(&odl_model, ODL_NUM_LAYERS, w_buf, nw, b_buf, nb) == ODL_ERR_LAYER,
                "layer out of range refused");
    /* Slices: weights then bias as one vector; reading across the boundary gives both. */
    float slice[4];
    w_buf[0] = 0.0f;
    test_expect(odl_get_params(&odl_model, last, w_buf, nw, b_buf, nb) == ODL_OK, "get params");
    test_expect(odl_read_param_slice(&odl_model, last, nw - 2u, slice, 4) == ODL_OK && slice[0] == w_buf[nw - 2u] &&
                    slice[1] == w_buf[nw - 1u] && slice[2] == b_buf[0] && slice[3] == b_buf[1],
                "slice across weights and bias");
    test_expect(odl_read_param_slice(&odl_model, last, nw + nb - 1u, slice, 2) == ODL_ERR_SIZE, "slice past the end");
    test_expect(odl_read_param_slice(&odl_model, last, 0xFFFFFFFFu, slice, 2) == ODL_ERR_SIZE, "wrapping offset");
    test_expect(odl_read_param_slice(&odl_model, 1, 0, slice, 1) == ODL_ERR_LAYER, "slice of a pooling layer");
    slice[1] = NAN;
    test_expect(odl_write_param_slice(&odl_model, last, 0, slice, 2) == ODL_ERR_PARAM_RANGE, "NaN slice refused");
    slice[1] = -2.0f * odl_model.param_bound;
    test_expect(odl_write_param_slice(&odl_model, last, 0, slice, 2) == ODL_ERR_PARAM_RANGE,
                "slice beyond the bound refused");
    snapshot(after, last);
    test_expect(memcmp(before, after, nw * sizeof(float)) == 0, "refused calls left the weights untouched");

    /* A corrupted table is caught before anything runs. */
    odl_layer_t broken[ODL_NUM_LAYERS];
    memcpy(broken, odl_model.layers, sizeof broken);
    broken[0].out_ch = (uint16_t)(broken[0].out_ch + 1u);
    odl_net_t copy = odl_model;
    copy.layers = broken;
    test_expect(odl_init(&copy) == ODL_ERR_MODEL, "inconsistent layer table refused");
    /* A layer whose output overlaps its input (the next layer reading where it writes): refused too. */
    for (unsigned i = 0; i + 1u < ODL_NUM_LAYERS; ++i) {
        const odl_layer_t *l = &odl_model.layers[i];
        if (l->in != NULL && l->out != l->in && odl_model.layers[i + 1u].in == l->out) {
            memcpy(broken, odl_model.layers, sizeof broken);
            broken[i].out = (float *)(uintptr_t)l->in + 1;
            broken[i + 1u].in = broken[i].out;
            test_expect(odl_init(&copy) == ODL_ERR_MODEL, "output overlapping the input refused");
            broken[i].out = (float *)(uintptr_t)l->in;
            broken[i + 1u].in = broken[i].out;
            test_expect(odl_init(&copy) == ODL_ERR_MODEL, "a layer that cannot work in place refused in place");
            break;
        }
    }
    test_expect(odl_init(&odl_model) == ODL_OK, "the generated table passes");
    test_expect(strlen(odl_status_str(ODL_ERR_MODEL)) > 0 && strcmp(odl_status_str((odl_status_t)99), "unknown status") == 0,
                "status strings");
}

/* The update itself, element by element: w' = w - lr * (sum of gradients / samples), as Keras's SGD applies
 * the batch mean. The accumulator is read back as that mean (odl_get_grads), so the expected parameters
 * are computed with the same float operations and must match bit for bit. */
static void check_update(test_rng_t *rng)
{
    static float expected[ODL_PARAM_COUNT];
    const float lr = 0.05f;
    make_batch(rng);
    for (unsigned b = 0; b < BATCH; ++b) {
        test_expect(odl_accumulate(&odl_model, samples[b], labels[b], NULL) == ODL_OK, "accumulate");
    }
    test_expect(odl_model.accumulated == BATCH, "the batch is accumulated");
    uint32_t at = 0;
    for (unsigned layer = 0; layer < ODL_NUM_LAYERS; ++layer) {
        if (is_param_layer(layer)) {
            uint32_t nw, nb;
            sizes(layer, &nw, &nb);
            odl_get_params(&odl_model, layer, w_buf, nw, b_buf, nb);
            test_expect(odl_get_grads(&odl_model, layer, gw, nw, gb, nb) == ODL_OK, "batch-mean gradient");
            for (uint32_t k = 0; k < nw; ++k) {
                expected[at++] = w_buf[k] - lr * gw[k];
            }
            for (uint32_t k = 0; k < nb; ++k) {
                expected[at++] = b_buf[k] - lr * gb[k];
            }
        }
    }
    test_expect(odl_sgd_step(&odl_model, lr) == ODL_OK, "SGD step");
    at = 0;
    for (unsigned layer = 0; layer < ODL_NUM_LAYERS; ++layer) {
        if (is_param_layer(layer)) {
            uint32_t nw, nb;
            sizes(layer, &nw, &nb);
            odl_get_params(&odl_model, layer, w_buf, nw, b_buf, nb);
            test_expect(memcmp(w_buf, expected + at, nw * sizeof(float)) == 0 &&
                            memcmp(b_buf, expected + at + nw, nb * sizeof(float)) == 0,
                        "every parameter moved by exactly -lr times its batch-mean gradient");
            at += nw + nb;
        }
    }
}

/* What SAVE stores and LOAD restores: every RAM parameter layer, the trained layer count and the step count
 * come back bit for bit; a bad copy (wrong length, trained count, a NaN) is refused before anything changes. */
static void check_state(test_rng_t *rng)
{
    static uint32_t words[ODL_PARAM_COUNT + 2u];
    static float before[MAX_PARAMS];
    make_batch(rng);
    test_expect(odl_set_trainable(&odl_model, 2) == ODL_OK, "train the last two layers");
    for (unsigned b = 0; b < BATCH; ++b) {
        odl_accumulate(&odl_model, samples[b], labels[b], NULL);
    }
    test_expect(odl_sgd_step(&odl_model, 0.05f) == ODL_OK, "a step");
    const uint32_t n = odl_state_words(&odl_model);
    test_expect(n <= ODL_PARAM_COUNT + 2u, "the state fits the test buffer");
    for (uint32_t k = 0; k < n; ++k) {
        words[k] = odl_state_word(&odl_model, k);
    }
    unsigned last = ODL_NUM_LAYERS - 1u;
    while (!is_param_layer(last)) {
        --last;
    }
    uint32_t nw, nb;
    sizes(last, &nw, &nb);
    snapshot(before, last);
    odl_get_params(&odl_model, last, w_buf, nw, b_buf, nb);
    w_buf[0] += 1.0f;
    test_expect(odl_set_params(&odl_model, last, w_buf, nw, b_buf, nb) == ODL_OK, "change a weight");
    test_expect(odl_set_trainable(&odl_model, 1) == ODL_OK, "change the trained layers");

    const float nan = NAN;
    const uint32_t good = words[n - 1u];
    memcpy(&words[n - 1u], &nan, sizeof nan);
    test_expect(odl_state_restore(&odl_model, words, n) == ODL_ERR_PARAM_RANGE, "a NaN in the copy refused");
    words[n - 1u] = good;
    test_expect(odl_state_restore(&odl_model, words, n - 1u) == ODL_ERR_SIZE, "a short copy refused");
    words[0] = 0;
    test_expect(odl_state_restore(&odl_model, words, n) == ODL_ERR_TRAINABLE, "a copy training no layer refused");
    test_expect(odl_model.trainable == 1, "refused copies change nothing");
    words[0] = 2;
    test_expect(odl_state_restore(&odl_model, words, n) == ODL_OK, "restore");
    snapshot(w_buf, last);
    test_expect(memcmp(before, w_buf, nw * sizeof(float)) == 0 && odl_model.trainable == 2 && odl_model.steps == 1u,
                "weights, trained layers and step count come back");
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*run)(test_rng_t *);
    } checks[] = {{"gradcheck", check_gradcheck}, {"tl_matches_full", check_tl_matches_full}, {"errors", check_errors},
                   {"update", check_update}, {"state", check_state}};
    if (odl_init(&odl_model) != ODL_OK) {
        printf("FAIL odl_init: %s\n", odl_status_str(odl_init(&odl_model)));
        return 1;
    }
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; ++i) {
        if (argc == 2 && strcmp(argv[1], checks[i].name) == 0) {
            test_rng_t rng = {0xD1B54A32D192ED03ull + i};
            checks[i].run(&rng);
            printf("%s: %s\n", checks[i].name, test_failures() == 0 ? "ok" : "FAILED");
            return test_failures() == 0 ? 0 : 1;
        }
    }
    fprintf(stderr, "usage: %s <gradcheck|tl_matches_full|errors|update|state>\n", argv[0]);
    return 2;
}
