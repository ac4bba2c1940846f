/*
 * A stream on the device. Each window arrives unlabelled (STREAM_WINDOW): the firmware predicts it and its
 * query policy (odl_stream.h) decides whether to ask the teacher. A queried window waits in the next slot of
 * the replay buffer (the dataset region, a ring) until its label comes (STREAM_LABEL); the label tells the
 * policy whether the teacher agreed and feeds the drift detector.
 *
 * Training runs on the stream's clock, not the teacher's: every `train_every` windows (queried or not) the
 * device takes one SGD step on `batch` records drawn from the whole buffer (xorshift32, with replacement:
 * experience replay, so the step is not only the activity of the last minutes), at the drift learning rate
 * while a drift is detected. So pruning saves radio, not learning: a device that asks for a third of the labels
 * takes as many steps as one that asks for all of them, on fewer distinct windows (with steps clocked by
 * labels, random queries at a third of the windows lost 3.6 pp of test accuracy on the watch data, against
 * 1.1 now; see README). The step due comes first in
 * STREAM_WINDOW, before the prediction, so a refused step leaves the window undecided and the host may resend it.
 *
 * Optionally an unqueried window the device is sure of joins the buffer with its own class (self-training: a
 * pruning policy would otherwise keep only the windows it was unsure of). The host is only the radio and the
 * teacher.
 */
#include <string.h>

#include "records.h"

/* The ring's length; a build without a dataset region refuses STREAM_START, but must still compile. */
#define RING (ODL_DATASET_WINDOWS > 0u ? ODL_DATASET_WINDOWS : 1u)

static struct {
    int started;
    odl_stream_setup_t setup;
    odl_stream_t policy;
    uint32_t head;    /* the slot the next queried window waits in */
    uint32_t filled;  /* labelled records in the ring */
    uint32_t pending; /* windows since the last step */
    uint32_t draws;   /* xorshift32 state of the replay draws */
    int waiting;      /* a queried window waits for its label in slot `head` */
    int stale;        /* slot `head` holds a window without its label (a queried one; its label may never come) */
    uint16_t predicted;
} stream;

uint32_t odl_stream_start(odl_mailbox_t *mb)
{
    odl_stream_setup_t setup;
    if (mb->data_len != sizeof setup) {
        return ODL_APP_ERR_LENGTH;
    }
    memcpy(&setup, mb->data, sizeof setup);
    if (setup.train_every == 0u || setup.batch == 0u || setup.batch > ODL_DATASET_WINDOWS || setup.replay_seed == 0u ||
        !odl_learning_rate_valid(setup.learning_rate) || !odl_learning_rate_valid(setup.drift_learning_rate) ||
        !(setup.self_label >= 0.0f && setup.self_label <= 1.0f)) {
        return ODL_APP_ERR_ARGS;
    }
    odl_stream_t policy;
    if (odl_stream_init(&policy, &setup.policy) != ODL_OK) {
        return ODL_APP_ERR_ARGS; /* a policy field out of range */
    }
    memset(&stream, 0, sizeof stream);
    stream.started = 1;
    stream.setup = setup;
    stream.policy = policy;
    stream.draws = setup.replay_seed;
    mb->result[0] = RING;
    return ODL_OK;
}

/* Slot `head` now holds a labelled record: the ring moves on. */
static void commit_slot(void)
{
    stream.head = (stream.head + 1u) % RING;
    stream.filled += stream.filled < RING;
    stream.stale = 0;
}

/* Records a step may draw: every labelled one. Slot `head` is not one while it is stale; until the ring wraps
 * it lies beyond the filled slots anyway. */
static uint32_t valid_records(void)
{
    return stream.filled - (uint32_t)(stream.stale && stream.filled == RING);
}

/* A replay draw: the (draw % valid)-th labelled record, counted from the oldest (slot 0 until the ring wraps,
 * then the one after `head`'s, or `head` itself when it is not stale). */
static uint32_t draw(uint32_t k, const void *context)
{
    (void)k;
    (void)context;
    stream.draws = odl_xorshift32(stream.draws);
    const uint32_t oldest = stream.filled == RING ? (stream.head + (uint32_t)stream.stale) % RING : 0u;
    return (oldest + stream.draws % valid_records()) % RING;
}

uint32_t odl_stream_window(odl_mailbox_t *mb)
{
    if (!stream.started) {
        return ODL_APP_ERR_ARGS;
    }
    if (mb->data_len != ODL_INPUT_SIZE * sizeof(float)) {
        return ODL_APP_ERR_LENGTH;
    }
    if (!odl_window_finite(mb->data)) {
        return ODL_ERR_NONFINITE;
    }
    /* The step due, on the buffer as the earlier windows left it (before this window can take a slot). */
    uint32_t trained = 0;
    float loss = 0.0f;
    if (stream.pending >= stream.setup.train_every && valid_records() > 0u) {
        const float lr = stream.policy.drift ? stream.setup.drift_learning_rate : stream.setup.learning_rate;
        const uint32_t st = odl_dataset_step(stream.setup.batch, draw, NULL, lr, &loss);
        if (st != ODL_OK) {
            return st;
        }
        stream.pending = 0;
        trained = 1;
    }
    odl_record_t *slot = odl_dataset_record(stream.head);
    uint16_t predicted = 0;
    const odl_status_t st = odl_predict(&odl_model, mb->data, &predicted);
    if (st != ODL_OK) {
        return st;
    }
    stream.pending++;
    const float confidence = odl_model.probs[predicted];
    const int query = odl_stream_decide(&stream.policy, confidence);
    if (query) {
        /* In the slot its label will complete; until then the slot is stale and no draw picks it, and a later
         * queried window takes the slot if this label never comes. */
        memcpy(slot->window, mb->data, sizeof slot->window);
        stream.stale = 1;
    } else if (stream.setup.self_label > 0.0f && confidence >= stream.setup.self_label) {
        /* Self-training: kept with the device's own class. */
        memcpy(slot->window, mb->data, sizeof slot->window);
        slot->label = predicted;
        commit_slot();
    }
    stream.waiting = query;
    stream.predicted = predicted;
    /* Fields only, no data: a resent UART frame is then answered from the reply's fields (frames.c). */
    mb->result[0] = predicted | (uint32_t)query << 16 | trained << 17 | stream.policy.drift << 18;
    memcpy(&mb->result[1], &loss, sizeof loss);
    memcpy(&mb->result[2], &stream.policy.threshold, sizeof(float));
    mb->result_f = confidence;
    return ODL_OK;
}

uint32_t odl_stream_label(odl_mailbox_t *mb)
{
    if (!stream.started || !stream.waiting) {
        return ODL_APP_ERR_NO_SAMPLE;
    }
    if (mb->arg[0] >= odl_model.num_classes) {
        return ODL_ERR_LABEL;
    }
    odl_record_t *slot = odl_dataset_record(stream.head);
    slot->label = mb->arg[0];
    stream.waiting = 0;
    commit_slot();
    odl_stream_feedback(&stream.policy, mb->arg[0] == stream.predicted);
    mb->result[0] = stream.policy.drift;
    mb->result[1] = stream.filled;
    return ODL_OK;
}
