/*
 * The int8 copy's commands: calibrate on records of the dataset region, quantize, predict and evaluate with
 * integers only, and read the int8 image back. Each checks everything before it changes anything.
 */
#include <string.h>

#include "records.h"

uint32_t odl_int8_calibrate_command(odl_mailbox_t *mb)
{
    const uint32_t first = mb->arg[0], count = mb->arg[1], reset = mb->arg[2];
    if (mb->data_len != 0u) {
        return ODL_APP_ERR_LENGTH;
    }
    if (reset > 1u || first > ODL_DATASET_WINDOWS || count > ODL_DATASET_WINDOWS - first) {
        return ODL_APP_ERR_ARGS;
    }
    /* First every window (a NOLOAD region holds whatever was stored: NaN too), then the ranges. */
    for (uint32_t r = first; r < first + count; ++r) {
        const odl_record_t *rec = odl_dataset_record(r);
        const odl_status_t st = odl_int8_calibrate_check(&odl_model_int8, &odl_model, rec->window);
        if (st != ODL_OK) {
            return st;
        }
    }
    if (reset) {
        odl_int8_calibrate_reset(&odl_model_int8, &odl_model);
    }
    for (uint32_t r = first; r < first + count; ++r) {
        (void)odl_int8_calibrate(&odl_model_int8, &odl_model, odl_dataset_record(r)->window);
    }
    mb->result[0] = odl_model_int8.calibrated;
    return ODL_OK;
}

uint32_t odl_int8_quantize_command(odl_mailbox_t *mb)
{
    if (mb->data_len != odl_param_layer_count(&odl_model)) {
        return ODL_APP_ERR_LENGTH;
    }
    const odl_status_t st = odl_int8_quantize(&odl_model_int8, &odl_model, (const uint8_t *)mb->data, mb->data_len);
    if (st == ODL_OK) {
        (void)odl_int8_image_bytes(&odl_model_int8, &odl_model, &mb->result[0]);
    }
    return st;
}

uint32_t odl_int8_predict_command(odl_mailbox_t *mb)
{
    if (mb->data_len != ODL_INPUT_SIZE * 4u) {
        return ODL_APP_ERR_LENGTH;
    }
    /* The answer overwrites the window in the data area only after odl_int8_predict has quantized it. */
    uint16_t predicted = 0;
    odl_status_t st = odl_int8_predict(&odl_model_int8, &odl_model, mb->data, &predicted);
    if (st == ODL_OK) {
        int8_t *out = (int8_t *)mb->data;
        st = odl_int8_get_scores(&odl_model_int8, &odl_model, out, out + odl_model.num_classes,
                                 odl_model.num_classes);
    }
    if (st == ODL_OK) {
        mb->result[0] = predicted;
        mb->data_len = 2u * odl_model.num_classes;
    }
    return st;
}

static odl_status_t predict_int8(const float *window, uint16_t *predicted_class)
{
    return odl_int8_predict(&odl_model_int8, &odl_model, window, predicted_class);
}

uint32_t odl_int8_evaluate_command(odl_mailbox_t *mb)
{
    return odl_dataset_evaluate_with(mb, predict_int8);
}

uint32_t odl_int8_image_command(odl_mailbox_t *mb)
{
    const uint32_t offset = mb->arg[0], count = mb->arg[1];
    if (count > ODL_DATA_BYTES) {
        return ODL_APP_ERR_LENGTH;
    }
    uint32_t total = 0;
    odl_status_t st = odl_int8_image_bytes(&odl_model_int8, &odl_model, &total);
    if (st != ODL_OK) {
        return st;
    }
    if (offset > total || count > total - offset) {
        return ODL_APP_ERR_ARGS;
    }
    st = odl_int8_image_read(&odl_model_int8, &odl_model, offset, (uint8_t *)mb->data, count);
    if (st == ODL_OK) {
        mb->result[0] = total;
        mb->data_len = count;
    }
    return st;
}

uint32_t odl_int8_adaptive_command(odl_mailbox_t *mb)
{
    if (mb->data_len != ODL_INPUT_SIZE * 4u) {
        return ODL_APP_ERR_LENGTH;
    }
    if (mb->arg[1] > 256u) {
        return ODL_APP_ERR_ARGS;
    }
    odl_adaptive_t r;
    odl_status_t st = odl_int8_predict_adaptive(&odl_model_int8, &odl_model, mb->data, mb->arg[0], mb->arg[1], &r);
    if (st == ODL_OK) {
        int8_t *out = (int8_t *)mb->data;
        st = odl_int8_get_scores(&odl_model_int8, &odl_model, out, out + odl_model.num_classes,
                                 odl_model.num_classes);
    }
    if (st == ODL_OK) {
        mb->result[0] = r.predicted_class;
        mb->result[1] = r.full_ran;
        mb->result[2] = r.cheap_class;
        mb->result[3] = r.cheap_confidence;
        mb->data_len = 2u * odl_model.num_classes;
    }
    return st;
}
