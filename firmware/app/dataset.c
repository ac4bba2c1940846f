/*
 * The dataset region: ODL_DATASET_WINDOWS records (a window and its label) that the host stores once, in
 * bulk, and the firmware then trains on or predicts in bulk. One TRAIN_BATCH is exactly TRAIN_SAMPLE of
 * each record followed by SGD_STEP, with the same library calls on the same floats, so the weights are
 * bit-identical to the per-window commands'; the host saves a round trip per window (and, on a simulator,
 * a memory write per window: it writes the region directly).
 *
 * The region is NOLOAD and not zeroed at boot (its bytes are whatever the host stored), so every window
 * and label a command reads is checked first: a refusal changes nothing.
 */
#include <string.h>

#include "app.h"

#if ODL_DATASET_WINDOWS > 0
__attribute__((section(".odl_dataset"))) odl_record_t odl_dataset[ODL_DATASET_WINDOWS];
#define DATASET_BYTES (sizeof odl_dataset)
#else
/* No region in this build: every dataset command is refused as out of range. */
static odl_record_t *const odl_dataset = NULL;
#define DATASET_BYTES 0u
#endif

odl_record_t *odl_dataset_record(uint32_t index)
{
#if ODL_DATASET_WINDOWS > 0
    return index < ODL_DATASET_WINDOWS ? &odl_dataset[index] : NULL;
#else
    (void)index;
    return NULL;
#endif
}

uint32_t odl_dataset_store(odl_mailbox_t *mb)
{
    const uint32_t offset = mb->arg[0];
    if (mb->data_len > ODL_DATA_BYTES) {
        return ODL_APP_ERR_LENGTH;
    }
    if (offset > DATASET_BYTES || mb->data_len > DATASET_BYTES - offset) {
        return ODL_APP_ERR_ARGS;
    }
    if (mb->data_len > 0u) {
        memcpy((uint8_t *)odl_dataset + offset, mb->data, mb->data_len);
    }
    return ODL_OK;
}

/* Records first..first+count-1 exist, hold finite windows, and (when `labelled`) labels of the model. */
static uint32_t check_records(uint32_t first, uint32_t count, int labelled)
{
    if (count == 0u || first > ODL_DATASET_WINDOWS || count > ODL_DATASET_WINDOWS - first) {
        return ODL_APP_ERR_ARGS;
    }
    for (uint32_t r = first; r < first + count; ++r) {
        if (labelled && odl_dataset[r].label >= odl_model.num_classes) {
            return ODL_ERR_LABEL;
        }
        if (!odl_window_finite(odl_dataset[r].window)) {
            return ODL_ERR_NONFINITE;
        }
    }
    return ODL_OK;
}

/* TRAIN_BATCH's records: first, first + 1, ... */
static uint32_t from_first(uint32_t k, const void *first)
{
    return *(const uint32_t *)first + k;
}

uint32_t odl_dataset_train_batch(odl_mailbox_t *mb)
{
    const uint32_t first = mb->arg[0], count = mb->arg[1];
    const float learning_rate = mb->arg_f;
    if (mb->data_len != 0u) {
        return ODL_APP_ERR_LENGTH;
    }
    /* odl_sgd_step would refuse it too, but only after the whole batch was trained for nothing. */
    if (!odl_learning_rate_valid(learning_rate)) {
        return ODL_ERR_LEARNING_RATE;
    }
    uint32_t status = check_records(first, count, 1);
    if (status != ODL_OK) {
        return status;
    }
    float mean_loss = 0.0f;
    status = odl_dataset_step(count, from_first, &first, learning_rate, &mean_loss);
    if (status == ODL_OK) {
        mb->result[0] = count;
        mb->result_f = mean_loss;
    }
    return status;
}

uint32_t odl_dataset_step(uint32_t count, uint32_t (*pick)(uint32_t k, const void *context), const void *context,
                          float learning_rate, float *mean_loss)
{
    float sum = 0.0f;
    odl_status_t status = ODL_OK;
    for (uint32_t k = 0; k < count && status == ODL_OK; ++k) {
        const odl_record_t *r = odl_dataset_record(pick(k, context));
        float loss = 0.0f;
        status = odl_accumulate(&odl_model, r->window, (uint16_t)r->label, &loss);
        sum += loss;
    }
    if (status != ODL_OK) {
        /* As the host does after a refused sample: the part of the batch accumulated must not join the next. */
        odl_zero_grads(&odl_model);
        return status;
    }
    status = odl_sgd_step(&odl_model, learning_rate);
    *mean_loss = sum / (float)count;
    return status;
}

static odl_status_t predict_float(const float *window, uint16_t *predicted_class)
{
    return odl_predict(&odl_model, window, predicted_class);
}

uint32_t odl_dataset_evaluate(odl_mailbox_t *mb)
{
    return odl_dataset_evaluate_with(mb, predict_float);
}

uint32_t odl_dataset_evaluate_with(odl_mailbox_t *mb, odl_status_t (*predict)(const float *window, uint16_t *cls))
{
    const uint32_t first = mb->arg[0], count = mb->arg[1];
    if (count > ODL_DATA_BYTES / sizeof(uint16_t)) {
        return ODL_APP_ERR_LENGTH;
    }
    uint32_t status = check_records(first, count, 0);
    for (uint32_t k = 0; k < count && status == ODL_OK; ++k) {
        uint16_t predicted = 0;
        status = predict(odl_dataset[first + k].window, &predicted);
        memcpy((uint8_t *)mb->data + k * sizeof predicted, &predicted, sizeof predicted);
    }
    if (status == ODL_OK) {
        mb->data_len = count * (uint32_t)sizeof(uint16_t);
    }
    return status;
}
