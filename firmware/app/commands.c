/*
 * The command set, executed on the mailbox whatever the transport. Every refusal leaves the model as it
 * was: the library validates before it writes, and this file validates lengths and ranges before it calls.
 */
#include <stddef.h>
#include <string.h>

#include "records.h"

/* C99 has no static_assert: a negative array size stops the build if the layout drifts from the host's. */
typedef char odl_mailbox_header_is_80_bytes[(offsetof(odl_mailbox_t, data) == ODL_MAILBOX_HEADER_BYTES) ? 1 : -1];

__attribute__((section(".odl_mailbox"))) odl_mailbox_t odl_mailbox;
__attribute__((section(".odl_mailbox"))) static float odl_sample[ODL_INPUT_SIZE];
static int odl_sample_loaded;
/* odl_init's verdict on the generated table: when it failed, every command but INFO answers with it. */
static uint32_t odl_init_status;
static uint32_t odl_boot_slot, odl_boot_sequence; /* INFO: what boot loaded */
static uint32_t odl_flash_status;                 /* the failed flash operation's status, for SAVE's reply */

extern uint32_t _sstack[], _eram[];

void odl_app_init(void)
{
    odl_mailbox.version = ODL_PROTOCOL_VERSION;
    odl_mailbox.data_capacity = ODL_DATA_BYTES;
    odl_init_status = (uint32_t)odl_init(&odl_model);
    uint32_t slot = 0, sequence = 0;
    if (odl_init_status == ODL_OK && odl_persist_load(&slot, &sequence) == ODL_OK) {
        odl_boot_slot = slot + 1u;
        odl_boot_sequence = sequence;
    }
    odl_mailbox.status = odl_init_status;
    /* Last: the host waits for the magic before it sends anything. */
    odl_mailbox.magic = ODL_MAILBOX_MAGIC;
}

/* The table index of the n-th parameter layer (0 = closest to the input), or num_layers. */
static unsigned param_layer_index(uint32_t ordinal)
{
    uint32_t seen = 0;
    for (unsigned i = 0; i < odl_model.num_layers; ++i) {
        uint32_t nw = 0, nb = 0;
        if (odl_param_sizes(&odl_model, i, &nw, &nb) == ODL_OK && seen++ == ordinal) {
            return i;
        }
    }
    return odl_model.num_layers;
}

static uint32_t cmd_info(odl_mailbox_t *mb)
{
    odl_info_t info;
    info.protocol_version = ODL_PROTOCOL_VERSION;
    info.model_hash = odl_model.model_hash;
    info.input_len = odl_model.input_len;
    info.input_ch = odl_model.input_ch;
    info.num_classes = odl_model.num_classes;
    info.num_layers = odl_model.num_layers;
    info.param_layers = odl_param_layer_count(&odl_model);
    info.trainable_capacity = odl_model.trainable_capacity;
    info.trainable = odl_model.trainable;
    info.data_capacity = ODL_DATA_BYTES;
    info.ram_static_bytes = (uint32_t)((uintptr_t)_eram - (uintptr_t)_sstack); /* the stack is first */
    info.stack_size = odl_stack_size();
    info.stack_high_water = odl_stack_high_water();
    info.accumulated = odl_model.accumulated;
    info.optimizer = odl_model.optimizer.kind;
    info.param_bound = odl_model.param_bound;
    info.boot_slot = odl_boot_slot;
    info.boot_sequence = odl_boot_sequence;
    info.clock_hz = odl_clock_hz;
    info.clock_status = odl_clock_status;
    info.dataset_windows = ODL_DATASET_WINDOWS;
    info.dataset_record_bytes = sizeof(odl_record_t);
    memcpy(mb->data, &info, sizeof info);
    mb->data_len = sizeof info;
    return ODL_OK;
}

static uint32_t cmd_layer_info(odl_mailbox_t *mb)
{
    const unsigned index = param_layer_index(mb->arg[0]);
    uint32_t nw = 0, nb = 0;
    if (index >= odl_model.num_layers || odl_param_sizes(&odl_model, index, &nw, &nb) != ODL_OK) {
        return ODL_APP_ERR_ARGS;
    }
    mb->result[0] = index;
    mb->result[1] = nw;
    mb->result[2] = nb;
    mb->result[3] = odl_model.layers[index].weights_rw == NULL;
    return ODL_OK;
}

static uint32_t cmd_get_params(odl_mailbox_t *mb)
{
    if (mb->arg[2] > ODL_DATA_FLOATS) {
        return ODL_APP_ERR_LENGTH;
    }
    const odl_status_t st = odl_read_param_slice(&odl_model, mb->arg[0], mb->arg[1], mb->data, mb->arg[2]);
    if (st == ODL_OK) {
        mb->data_len = mb->arg[2] * 4u;
    }
    return st;
}

static uint32_t cmd_set_params(odl_mailbox_t *mb)
{
    if (mb->data_len % 4u != 0 || mb->data_len > ODL_DATA_BYTES) {
        return ODL_APP_ERR_LENGTH;
    }
    return odl_write_param_slice(&odl_model, mb->arg[0], mb->arg[1], mb->data, mb->data_len / 4u);
}

static uint32_t cmd_get_optim(odl_mailbox_t *mb)
{
    if (mb->arg[2] > ODL_DATA_FLOATS) {
        return ODL_APP_ERR_LENGTH;
    }
    uint32_t total = 0;
    odl_status_t st = odl_optim_size(&odl_model, mb->arg[0], &total);
    if (st == ODL_OK) {
        st = odl_read_optim_slice(&odl_model, mb->arg[0], mb->arg[1], mb->data, mb->arg[2]);
    }
    if (st == ODL_OK) {
        mb->data_len = mb->arg[2] * 4u;
        mb->result[0] = odl_optimizer_steps(&odl_model);
        mb->result[1] = total;
    }
    return st;
}

/* The step count is written only with the slots it belongs to: a refused write changes neither. */
static uint32_t cmd_set_optim(odl_mailbox_t *mb)
{
    if (mb->data_len % 4u != 0 || mb->data_len > ODL_DATA_BYTES) {
        return ODL_APP_ERR_LENGTH;
    }
    const odl_status_t st = odl_write_optim_slice(&odl_model, mb->arg[0], mb->arg[1], mb->data, mb->data_len / 4u);
    if (st == ODL_OK) {
        odl_set_optimizer_steps(&odl_model, mb->arg[2]);
    }
    return st;
}

static uint32_t cmd_load_sample(odl_mailbox_t *mb)
{
    if (mb->data_len != sizeof odl_sample) {
        return ODL_APP_ERR_LENGTH;
    }
    if (!odl_window_finite(mb->data)) {
        return ODL_ERR_NONFINITE;
    }
    memcpy(odl_sample, mb->data, sizeof odl_sample);
    odl_sample_loaded = 1;
    return ODL_OK;
}

static uint32_t cmd_train_sample(odl_mailbox_t *mb)
{
    if (!odl_sample_loaded) {
        return ODL_APP_ERR_NO_SAMPLE;
    }
    if (mb->arg[0] > 0xFFFFu) {
        return ODL_ERR_LABEL;
    }
    float loss = 0.0f;
    const odl_status_t st = odl_accumulate(&odl_model, odl_sample, (uint16_t)mb->arg[0], &loss);
    mb->result_f = loss;
    mb->result[0] = odl_model.accumulated;
    return st;
}

static uint32_t cmd_predict(odl_mailbox_t *mb)
{
    if (!odl_sample_loaded) {
        return ODL_APP_ERR_NO_SAMPLE;
    }
    uint16_t predicted = 0;
    odl_status_t st = odl_predict(&odl_model, odl_sample, &predicted);
    if (st == ODL_OK) {
        st = odl_get_probs(&odl_model, mb->data, odl_model.num_classes);
    }
    if (st == ODL_OK) {
        mb->result[0] = predicted;
        mb->data_len = odl_model.num_classes * 4u;
    }
    return st;
}

static uint32_t dispatch(odl_mailbox_t *mb, uint32_t command)
{
    switch (command) {
    case ODL_CMD_INFO:
        return cmd_info(mb);
    case ODL_CMD_LAYER_INFO:
        return cmd_layer_info(mb);
    case ODL_CMD_GET_PARAMS:
        return cmd_get_params(mb);
    case ODL_CMD_SET_PARAMS:
        return cmd_set_params(mb);
    case ODL_CMD_LOAD_SAMPLE:
        return cmd_load_sample(mb);
    case ODL_CMD_SET_TRAINABLE:
        return odl_set_trainable(&odl_model, mb->arg[0]);
    case ODL_CMD_TRAIN_SAMPLE:
        return cmd_train_sample(mb);
    case ODL_CMD_SGD_STEP:
        return odl_sgd_step(&odl_model, mb->arg_f);
    case ODL_CMD_ZERO_GRADS:
        odl_zero_grads(&odl_model);
        return ODL_OK;
    case ODL_CMD_PREDICT:
        return cmd_predict(mb);
    case ODL_CMD_SAVE:
        return odl_persist_save(&mb->result[0], &mb->result[1], &odl_flash_status);
    case ODL_CMD_LOAD:
        return odl_persist_load(&mb->result[0], &mb->result[1]);
    case ODL_CMD_STORE_DATASET:
        return odl_dataset_store(mb);
    case ODL_CMD_TRAIN_BATCH:
        return odl_dataset_train_batch(mb);
    case ODL_CMD_EVALUATE:
        return odl_dataset_evaluate(mb);
    case ODL_CMD_STREAM_START:
        return odl_stream_start(mb);
    case ODL_CMD_STREAM_WINDOW:
        return odl_stream_window(mb);
    case ODL_CMD_STREAM_LABEL:
        return odl_stream_label(mb);
    case ODL_CMD_CALIBRATE:
        return odl_int8_calibrate_command(mb);
    case ODL_CMD_QUANTIZE:
        return odl_int8_quantize_command(mb);
    case ODL_CMD_PREDICT_Q:
        return odl_int8_predict_command(mb);
    case ODL_CMD_EVALUATE_Q:
        return odl_int8_evaluate_command(mb);
    case ODL_CMD_GET_QIMAGE:
        return odl_int8_image_command(mb);
    case ODL_CMD_PREDICT_A:
        return odl_int8_adaptive_command(mb);
    case ODL_CMD_GET_OPTIM:
        return cmd_get_optim(mb);
    case ODL_CMD_SET_OPTIM:
        return cmd_set_optim(mb);
    default:
        return ODL_APP_ERR_COMMAND;
    }
}

static int answers_with_data(uint32_t command)
{
    return command == ODL_CMD_INFO || command == ODL_CMD_GET_PARAMS || command == ODL_CMD_PREDICT ||
           command == ODL_CMD_EVALUATE || command == ODL_CMD_PREDICT_Q || command == ODL_CMD_EVALUATE_Q ||
           command == ODL_CMD_GET_QIMAGE || command == ODL_CMD_PREDICT_A || command == ODL_CMD_GET_OPTIM;
}

void odl_app_execute(void)
{
    odl_mailbox_t *mb = &odl_mailbox;
    const uint32_t start = odl_cycles();
    const uint32_t command = mb->command;
    mb->result[0] = mb->result[1] = mb->result[2] = mb->result[3] = 0;
    mb->result_f = 0.0f;
    /* Commands read the host's data_len; the ones that answer with data overwrite it. */
    const uint32_t status =
        odl_init_status != ODL_OK && command != ODL_CMD_INFO ? odl_init_status : dispatch(mb, command);
    if (status != ODL_OK) {
        /* A refusal answers with its status alone: no result a command set before it failed; a failed
         * flash operation adds what the controller reported. */
        mb->result[0] = status == ODL_APP_ERR_FLASH ? odl_flash_status : 0u;
        mb->result[1] = mb->result[2] = mb->result[3] = 0;
        mb->result_f = 0.0f;
    }
    if (status != ODL_OK || !answers_with_data(command)) {
        mb->data_len = 0;
    }
    mb->status = status;
    mb->cycles = odl_cycles() - start;
    mb->sequence = mb->sequence + 1u;
    mb->command = ODL_CMD_NONE;
}
