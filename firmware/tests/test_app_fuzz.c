/*
 * The application's command and frame handling (commands.c, frames.c, persist.c) and the library under
 * AddressSanitizer and UndefinedBehaviorSanitizer, driven by seeded random inputs: raw bytes and
 * well-formed frames into the frame parser, garbage mailbox fields and commands into odl_app_execute.
 * Any out-of-bounds access, use of uninitialised stack or undefined arithmetic aborts the run; after
 * every input the trained parameters must be finite and within the bound, and a command must be done.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "app_host_stubs.h"
#include "testutil.h"

#define FRAME_MAX (ODL_FRAME_HEADER_BYTES + ODL_FRAME_FIELDS_BYTES + ODL_DATA_BYTES + 4u)

static uint8_t frame[FRAME_MAX + 64u];

static uint32_t random_word(test_rng_t *rng)
{
    switch (test_int(rng, 0, 5)) {
    case 0:
        return test_int(rng, 0, 9);
    case 1:
        return 0xFFFFFFFFu;
    case 2:
        return 0x80000000u;
    case 3:
        return 0x7F800000u; /* +Inf as a float */
    case 4:
        return 0x7FC00000u; /* NaN as a float */
    default:
        return (uint32_t)test_int(rng, 0, 0xFFFFu) << 16 | test_int(rng, 0, 0xFFFFu);
    }
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; ++i) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

/* A frame that parses: sync, command, sequence, length, fields, data, CRC (corrupted one time in eight). */
static uint32_t make_frame(test_rng_t *rng)
{
    const uint32_t data = test_int(rng, 0, 1) ? 4u * test_int(rng, 0, ODL_DATA_BYTES / 4u) : 4u * ODL_INPUT_SIZE;
    const uint32_t length = ODL_FRAME_FIELDS_BYTES + (data > ODL_DATA_BYTES ? ODL_DATA_BYTES : data);
    frame[0] = ODL_FRAME_SYNC_REQUEST;
    frame[1] = (uint8_t)test_int(rng, 0, ODL_CMD_COUNT + 2u);
    frame[2] = (uint8_t)test_int(rng, 0, 3); /* few sequence numbers: resent frames are common */
    frame[3] = (uint8_t)(length & 0xFFu);
    frame[4] = (uint8_t)(length >> 8);
    for (uint32_t i = 0; i < length; i += 4u) {
        put_u32(&frame[ODL_FRAME_HEADER_BYTES + i],
                i < ODL_FRAME_FIELDS_BYTES || test_int(rng, 0, 7) == 0
                    ? random_word(rng)
                    : (uint32_t)test_int(rng, 0x3C000000u >> 16, 0x40800000u >> 16) << 16);
    }
    put_u32(&frame[ODL_FRAME_HEADER_BYTES + length], odl_crc32(0, &frame[1], ODL_FRAME_HEADER_BYTES - 1u + length));
    if (test_int(rng, 0, 7) == 0) {
        frame[test_int(rng, 1, ODL_FRAME_HEADER_BYTES - 1u + length)] ^= 0x10u;
    }
    return ODL_FRAME_HEADER_BYTES + length + 4u;
}

static int parameters_in_bound(void)
{
    for (unsigned i = 0; i < odl_model.num_layers; ++i) {
        const odl_layer_t *l = &odl_model.layers[i];
        uint32_t nw = 0, nb = 0;
        if (l->weights_rw == NULL || odl_param_sizes(&odl_model, i, &nw, &nb) != ODL_OK) {
            continue;
        }
        for (uint32_t k = 0; k < nw; ++k) {
            if (!(fabsf(l->weights_rw[k]) <= odl_model.param_bound)) {
                return 0;
            }
        }
        for (uint32_t k = 0; k < nb; ++k) {
            if (!(fabsf(l->bias_rw[k]) <= odl_model.param_bound)) {
                return 0;
            }
        }
    }
    return 1;
}

static unsigned answered[ODL_CMD_COUNT][64]; /* mailbox commands by status */

/* Arguments the int8 commands accept now and then (random words never are): records of the region, a bit
 * width table of the right length, a part of the image. */
static void plausible_int8_arguments(test_rng_t *rng, uint32_t command)
{
    static const uint8_t widths[4] = {8u, 4u, 2u, 8u};
    odl_mailbox.arg[0] = test_int(rng, 0, ODL_DATASET_WINDOWS);
    odl_mailbox.arg[1] = test_int(rng, 0, ODL_DATASET_WINDOWS);
    odl_mailbox.arg[2] = test_int(rng, 0, 1);
    if (command == ODL_CMD_QUANTIZE) {
        odl_mailbox.data_len = odl_param_layer_count(&odl_model) + (test_int(rng, 0, 7) == 0 ? 1u : 0u);
        for (uint32_t i = 0; i < odl_mailbox.data_len; ++i) {
            ((uint8_t *)odl_mailbox.data)[i] = test_int(rng, 0, 9) == 0 ? (uint8_t)test_int(rng, 0, 255)
                                                                         : widths[test_int(rng, 0, 3)];
        }
    } else if (command == ODL_CMD_GET_QIMAGE) {
        odl_mailbox.arg[0] = test_int(rng, 0, 20000);
        odl_mailbox.arg[1] = test_int(rng, 0, ODL_DATA_BYTES);
    } else if (command == ODL_CMD_PREDICT_A) {
        odl_mailbox.data_len = 4u * ODL_INPUT_SIZE;
        odl_mailbox.arg[0] = test_int(rng, 0, ODL_INPUT_LEN + 1u);
        odl_mailbox.arg[1] = test_int(rng, 0, 257);
    } else if (command != ODL_CMD_PREDICT_Q) {
        odl_mailbox.data_len = 0u;
    }
}

/* After a QUANTIZE, every layer's parameters are possible ones. */
static int int8_copy_consistent(void)
{
    const odl_int8_t *q = &odl_model_int8;
    if (!q->ready) {
        return 1;
    }
    for (unsigned i = 0; i < odl_model.num_layers; ++i) {
        const odl_int8_layer_t *l = &q->layers[i];
        if (!(l->out.scale > 0.0f) || !isfinite(l->out.scale) || l->out.zero_point < -128 ||
            l->out.zero_point > 127 || l->act_min > l->act_max) {
            return 0;
        }
    }
    return 1;
}

int main(int argc, char **argv)
{
    const unsigned inputs = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 20000u;
    test_rng_t rng = {0x5EEDF00DCAFEull};
    host_reset_flash();
    odl_app_init();
    test_expect(odl_mailbox.status == ODL_OK, "the application starts");
    for (unsigned n = 0; n < inputs; ++n) {
        switch (test_int(&rng, 0, 3)) {
        case 0: { /* raw bytes, sync bytes among them */
            const unsigned count = test_int(&rng, 1, 64);
            for (unsigned i = 0; i < count; ++i) {
                odl_frames_feed(test_int(&rng, 0, 3) == 0 ? ODL_FRAME_SYNC_REQUEST : (uint8_t)test_int(&rng, 0, 255));
            }
            break;
        }
        case 1: { /* a frame, maybe cut short */
            uint32_t size = make_frame(&rng);
            if (test_int(&rng, 0, 5) == 0) {
                size = test_int(&rng, 1, size);
            }
            for (uint32_t i = 0; i < size; ++i) {
                odl_frames_feed(frame[i]);
            }
            if (test_int(&rng, 0, 1)) { /* the link goes quiet: a partial frame is dropped */
                host_cycles_advance(1u << 24);
                odl_frames_poll();
            }
            break;
        }
        default: { /* the mailbox: garbage in every field, a command last */
            const uint32_t fill = test_int(&rng, 0, ODL_DATA_FLOATS);
            const unsigned len = test_int(&rng, 0, 2); /* a window, what was filled, or anything */
            odl_mailbox.data_len = len == 0 ? 4u * ODL_INPUT_SIZE : len == 1 ? 4u * fill : random_word(&rng);
            for (int i = 0; i < 4; ++i) {
                odl_mailbox.arg[i] = random_word(&rng);
            }
            const uint32_t f = random_word(&rng);
            memcpy(&odl_mailbox.arg_f, &f, sizeof f);
            if (test_int(&rng, 0, 1)) {
                odl_mailbox.arg_f = 0.01f; /* a learning rate a step takes */
            }
            const int nasty = test_int(&rng, 0, 3) == 0; /* a quarter of the inputs carry NaNs */
            for (uint32_t i = 0; i < fill; ++i) {
                odl_mailbox.data[i] = nasty && test_int(&rng, 0, 9) == 0 ? NAN : test_uniform(&rng, -2.0f, 2.0f);
            }
            odl_mailbox.command = test_int(&rng, 1, 9) == 0 ? random_word(&rng) : test_int(&rng, 1, ODL_CMD_COUNT);
            const uint32_t command = odl_mailbox.command;
            if (command >= ODL_CMD_CALIBRATE && command < ODL_CMD_COUNT && test_int(&rng, 0, 1)) {
                plausible_int8_arguments(&rng, command);
            }
            odl_app_execute();
            if (!int8_copy_consistent()) {
                printf("input %u: the int8 copy is inconsistent after command %u\n", n, (unsigned)command);
                test_expect(0, "the int8 copy stays consistent");
                break;
            }
            test_expect(odl_mailbox.command == ODL_CMD_NONE, "every command is done");
            if (command < ODL_CMD_COUNT && odl_mailbox.status < 64u) {
                answered[command][odl_mailbox.status]++;
            }
            break;
        }
        }
        host_uart_tx_len = 0;
        if (!parameters_in_bound()) {
            printf("input %u: a parameter is NaN or beyond the bound\n", n);
            test_expect(0, "parameters stay finite and within the bound");
            break;
        }
    }
    unsigned distinct = 0, accepted = 0;
    for (unsigned c = 0; c < ODL_CMD_COUNT; ++c) {
        for (unsigned st = 0; st < 64u; ++st) {
            distinct += answered[c][st] != 0u;
        }
        accepted += answered[c][ODL_OK];
    }
    printf("app fuzz: %u inputs, %u (command, status) pairs, %u mailbox commands accepted (SET_PARAMS %u, "
           "SGD_STEP %u, SAVE %u, LOAD %u, CALIBRATE %u, QUANTIZE %u, PREDICT_Q %u, EVALUATE_Q %u, "
           "GET_QIMAGE %u): %s\n",
           inputs, distinct, accepted, answered[ODL_CMD_SET_PARAMS][ODL_OK], answered[ODL_CMD_SGD_STEP][ODL_OK],
           answered[ODL_CMD_SAVE][ODL_OK], answered[ODL_CMD_LOAD][ODL_OK], answered[ODL_CMD_CALIBRATE][ODL_OK],
           answered[ODL_CMD_QUANTIZE][ODL_OK], answered[ODL_CMD_PREDICT_Q][ODL_OK],
           answered[ODL_CMD_EVALUATE_Q][ODL_OK], answered[ODL_CMD_GET_QIMAGE][ODL_OK],
           test_failures() == 0 ? "ok" : "FAILED");
    return test_failures() == 0 ? 0 : 1;
}
