/*
 * The dataset region and the window check, below every command file (records.h says why): ODL_DATASET_WINDOWS
 * records (a window and its label) that the host stores once, in bulk, and that the dataset, stream and int8
 * commands then train on or predict.
 *
 * The region is NOLOAD and not zeroed at boot (its bytes are whatever the host stored), so every window
 * and label a command reads is checked first: a refusal changes nothing.
 */
#include <math.h>
#include <string.h>

#include "records.h"

#if ODL_DATASET_WINDOWS > 0
/* pyodl.board.base finds the region by this symbol, to write it directly on a simulator. */
__attribute__((section(".odl_dataset"))) odl_record_t odl_dataset[ODL_DATASET_WINDOWS];
#endif

int odl_window_finite(const float *window)
{
    for (unsigned i = 0; i < ODL_INPUT_SIZE; ++i) {
        if (!isfinite(window[i])) {
            return 0;
        }
    }
    return 1;
}

odl_record_t *odl_dataset_record(uint32_t index)
{
#if ODL_DATASET_WINDOWS > 0
    return index < ODL_DATASET_WINDOWS ? &odl_dataset[index] : NULL;
#else
    (void)index;
    return NULL;
#endif
}

uint32_t odl_dataset_check(uint32_t first, uint32_t count, int labelled)
{
    if (count == 0u || first > ODL_DATASET_WINDOWS || count > ODL_DATASET_WINDOWS - first) {
        return ODL_APP_ERR_ARGS;
    }
    for (uint32_t r = first; r < first + count; ++r) {
        const odl_record_t *record = odl_dataset_record(r);
        if (labelled && record->label >= odl_model.num_classes) {
            return ODL_ERR_LABEL;
        }
        if (!odl_window_finite(record->window)) {
            return ODL_ERR_NONFINITE;
        }
    }
    return ODL_OK;
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

uint32_t odl_dataset_evaluate_with(odl_mailbox_t *mb, odl_status_t (*predict)(const float *window, uint16_t *cls))
{
    const uint32_t first = mb->arg[0], count = mb->arg[1];
    if (count > ODL_DATA_BYTES / sizeof(uint16_t)) {
        return ODL_APP_ERR_LENGTH;
    }
    uint32_t status = odl_dataset_check(first, count, 0);
    for (uint32_t k = 0; k < count && status == ODL_OK; ++k) {
        uint16_t predicted = 0;
        status = predict(odl_dataset_record(first + k)->window, &predicted);
        memcpy((uint8_t *)mb->data + k * sizeof predicted, &predicted, sizeof predicted);
    }
    if (status == ODL_OK) {
        mb->data_len = count * (uint32_t)sizeof(uint16_t);
    }
    return status;
}
