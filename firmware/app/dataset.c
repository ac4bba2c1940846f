/*
 * The dataset region's commands: STORE_DATASET, TRAIN_BATCH and EVALUATE on the records of records.c. One
 * TRAIN_BATCH is exactly TRAIN_SAMPLE of each record followed by SGD_STEP, with the same library calls on the
 * same floats, so the weights are bit-identical to the per-window commands'; the host saves a round trip per
 * window (and, on a simulator, a memory write per window: it writes the region directly).
 */
#include <string.h>

#include "records.h"

uint32_t odl_dataset_store(odl_mailbox_t *mb)
{
    const uint32_t offset = mb->arg[0];
    const uint32_t region_bytes = ODL_DATASET_WINDOWS * (uint32_t)sizeof(odl_record_t);
    if (mb->data_len > ODL_DATA_BYTES) {
        return ODL_APP_ERR_LENGTH;
    }
    if (offset > region_bytes || mb->data_len > region_bytes - offset) {
        return ODL_APP_ERR_ARGS;
    }
    if (mb->data_len > 0u) {
        memcpy((uint8_t *)odl_dataset_record(0) + offset, mb->data, mb->data_len);
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
    uint32_t status = odl_dataset_check(first, count, 1);
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

static odl_status_t predict_float(const float *window, uint16_t *predicted_class)
{
    return odl_predict(&odl_model, window, predicted_class);
}

uint32_t odl_dataset_evaluate(odl_mailbox_t *mb)
{
    return odl_dataset_evaluate_with(mb, predict_float);
}
