/*
 * UART framing of the mailbox commands.
 *
 *   request:  0xA5 | command u8 | sequence u8 | length u16 | arg0..arg3 u32, arg_f f32, data | CRC-32
 *   response: 0x5A | status u8  | sequence u8 | length u16 | result0..3 u32, result_f f32, cycles u32, data | CRC-32
 *
 * Little-endian; length counts the payload; the CRC (IEEE 802.3, as zlib's crc32) covers everything after the
 * sync byte. A frame with a bad CRC or an impossible length is answered with an error status and not
 * executed. The reply echoes the request's sequence number, so the host can tell it from a stale one.
 *
 * A link that loses or corrupts a byte: a frame whose next byte is more than ODL_FRAME_TIMEOUT_MS late is
 * dropped without an answer, so it cannot swallow the host's next frame; the host then resends. A resent
 * frame (same sequence number and command as the last one executed) whose reply carries no data is answered
 * from the stored reply instead of running again, so a retried TRAIN_SAMPLE, SGD_STEP or SAVE takes effect
 * once; a command that answers with data (INFO, GET_PARAMS, PREDICT) only reads, and simply runs again.
 *
 * A request's data is received straight into the mailbox's data area, where the command reads it, rather
 * than into a frame buffer of its own and then copied: one window-sized buffer less in SRAM. A frame that
 * then fails its CRC has overwritten that area, which only ever holds the current command's data.
 */
#include <string.h>

#include "app.h"

#define MAX_PAYLOAD (ODL_FRAME_FIELDS_BYTES + ODL_DATA_BYTES)

typedef enum { HUNT, HEADER, BODY } parse_state_t;

static struct {
    parse_state_t state;
    uint32_t have; /* bytes of the current part received */
    uint8_t header[ODL_FRAME_HEADER_BYTES - 1u]; /* command, sequence, length */
    uint32_t length;
    uint32_t last_byte; /* odl_cycles() when the last byte of a frame in progress came */
    uint8_t fields[ODL_FRAME_FIELDS_BYTES]; /* the body's first bytes; the data goes to odl_mailbox.data */
    uint8_t crc[4];
} parser;

/* The last executed frame and its reply's fields, for a resent frame whose reply was lost. */
static struct {
    int valid;
    uint8_t command, sequence;
    uint32_t status, result[4], cycles;
    float result_f;
} last;

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void send_bytes(const uint8_t *p, uint32_t n, uint32_t *crc)
{
    *crc = odl_crc32(*crc, p, n);
    for (uint32_t i = 0; i < n; ++i) {
        odl_uart_putc(p[i]);
    }
}

static void respond(uint32_t status)
{
    const odl_mailbox_t *mb = &odl_mailbox;
    const uint32_t data_len = status == ODL_OK ? mb->data_len : 0u;
    const uint32_t length = ODL_FRAME_REPLY_FIELDS_BYTES + data_len;
    uint8_t head[ODL_FRAME_HEADER_BYTES - 1u] = {(uint8_t)status, parser.header[1], (uint8_t)length,
                                                 (uint8_t)(length >> 8)};
    uint8_t fields[ODL_FRAME_REPLY_FIELDS_BYTES];
    for (int i = 0; i < 4; ++i) {
        put_u32(&fields[4 * i], mb->result[i]);
    }
    uint32_t result_f;
    memcpy(&result_f, &mb->result_f, 4);
    put_u32(&fields[16], result_f);
    put_u32(&fields[20], mb->cycles);
    uint32_t crc = 0;
    odl_uart_putc(ODL_FRAME_SYNC_RESPONSE);
    send_bytes(head, sizeof head, &crc);
    send_bytes(fields, sizeof fields, &crc);
    send_bytes((const uint8_t *)mb->data, data_len, &crc);
    uint8_t tail[4];
    put_u32(tail, crc);
    for (int i = 0; i < 4; ++i) {
        odl_uart_putc(tail[i]);
    }
}

/* A reply without data whose fields can stand in for running the command again. */
static int replayable(uint32_t command)
{
    return command != ODL_CMD_INFO && command != ODL_CMD_GET_PARAMS && command != ODL_CMD_PREDICT &&
           command != ODL_CMD_LAYER_INFO && command != ODL_CMD_EVALUATE && command != ODL_CMD_GET_OPTIM;
}

/* Byte i of the body: the fields, then the data (in the mailbox), then the CRC. */
static void store_body_byte(uint32_t i, uint8_t byte)
{
    if (i < ODL_FRAME_FIELDS_BYTES && i < parser.length) {
        parser.fields[i] = byte;
    } else if (i < parser.length) {
        ((uint8_t *)odl_mailbox.data)[i - ODL_FRAME_FIELDS_BYTES] = byte;
    } else {
        parser.crc[i - parser.length] = byte;
    }
}

static void execute_frame(void)
{
    odl_mailbox_t *mb = &odl_mailbox;
    const uint32_t n_fields = parser.length < ODL_FRAME_FIELDS_BYTES ? parser.length : ODL_FRAME_FIELDS_BYTES;
    uint32_t crc = odl_crc32(odl_crc32(0, parser.header, sizeof parser.header), parser.fields, n_fields);
    crc = odl_crc32(crc, (const uint8_t *)mb->data, parser.length - n_fields);
    if (crc != get_u32(parser.crc)) {
        mb->data_len = 0;
        mb->cycles = 0;
        respond(ODL_APP_ERR_CRC);
        return;
    }
    if (parser.length < ODL_FRAME_FIELDS_BYTES) {
        mb->data_len = 0;
        mb->cycles = 0;
        respond(ODL_APP_ERR_LENGTH);
        return;
    }
    const uint8_t command = parser.header[0], sequence = parser.header[1];
    if (last.valid && last.command == command && last.sequence == sequence && replayable(command)) {
        for (int i = 0; i < 4; ++i) {
            mb->result[i] = last.result[i];
        }
        mb->result_f = last.result_f;
        mb->cycles = last.cycles;
        mb->data_len = 0;
        respond(last.status);
        return;
    }
    for (int i = 0; i < 4; ++i) {
        mb->arg[i] = get_u32(&parser.fields[4 * i]);
    }
    const uint32_t arg_f = get_u32(&parser.fields[16]);
    memcpy(&mb->arg_f, &arg_f, 4);
    mb->data_len = parser.length - ODL_FRAME_FIELDS_BYTES;
    mb->command = command;
    odl_app_execute();
    last.valid = 1;
    last.command = command;
    last.sequence = sequence;
    last.status = mb->status;
    for (int i = 0; i < 4; ++i) {
        last.result[i] = mb->result[i];
    }
    last.result_f = mb->result_f;
    last.cycles = mb->cycles;
    respond(mb->status);
}

void odl_frames_feed(uint8_t byte)
{
    parser.last_byte = odl_cycles();
    switch (parser.state) {
    case HUNT:
        if (byte == ODL_FRAME_SYNC_REQUEST) {
            parser.state = HEADER;
            parser.have = 0;
        }
        break;
    case HEADER:
        parser.header[parser.have++] = byte;
        if (parser.have == sizeof parser.header) {
            parser.length = (uint32_t)parser.header[2] | (uint32_t)parser.header[3] << 8;
            parser.have = 0;
            if (parser.length > MAX_PAYLOAD) {
                odl_mailbox.data_len = 0;
                odl_mailbox.cycles = 0;
                respond(ODL_APP_ERR_FRAME);
                parser.state = HUNT;
            } else {
                parser.state = BODY;
            }
        }
        break;
    case BODY:
        store_body_byte(parser.have++, byte);
        if (parser.have == parser.length + 4u) {
            parser.state = HUNT;
            execute_frame();
        }
        break;
    }
}

void odl_frames_poll(void)
{
    const uint32_t timeout = odl_clock_hz / 1000u * ODL_FRAME_TIMEOUT_MS;
    if (parser.state != HUNT && odl_cycles() - parser.last_byte > timeout) {
        parser.state = HUNT;
    }
}
