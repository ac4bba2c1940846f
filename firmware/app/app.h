/*
 * The STM32L496 application around the odl library: one command set served over two transports, the RAM
 * mailbox (simulators: the host writes a command into `odl_mailbox` and runs the CPU until it parks in
 * `odl_idle`) and framed UART messages on the console UART, LPUART1 by default or USART2 (-DODL_CONSOLE;
 * real boards, Renode socket terminals).
 *
 * pyodl/board/protocol.py reads every number and layout it needs from this file (and odl.h's statuses):
 * there is no second copy to keep in step.
 */
#ifndef ODL_APP_H
#define ODL_APP_H

#include <stdint.h>

#include "model.h"
#include "odl_stream.h"

#define ODL_PROTOCOL_VERSION 8u
#define ODL_MAILBOX_MAGIC 0x4C444F50u /* "PODL" in memory order */

/* The data area carries one input window, or a chunk of parameters, or the class probabilities. */
#define ODL_DATA_MIN_FLOATS 256u
#define ODL_DATA_FLOATS (ODL_INPUT_SIZE > ODL_DATA_MIN_FLOATS ? ODL_INPUT_SIZE : ODL_DATA_MIN_FLOATS)
#define ODL_DATA_BYTES (ODL_DATA_FLOATS * 4u)

typedef enum {
    ODL_CMD_NONE = 0,
    ODL_CMD_INFO = 1,          /* data <- odl_info_t */
    ODL_CMD_LAYER_INFO = 2,    /* arg0 parameter layer ordinal -> result0 table index, 1 weights, 2 bias, 3 frozen */
    ODL_CMD_GET_PARAMS = 3,    /* arg0 table index, arg1 offset, arg2 count -> data floats */
    ODL_CMD_SET_PARAMS = 4,    /* arg0 table index, arg1 offset, data floats (count = data_len / 4) */
    ODL_CMD_LOAD_SAMPLE = 5,   /* data = one window, input_len * input_ch floats */
    ODL_CMD_SET_TRAINABLE = 6, /* arg0 = parameter layers trained, counted from the output */
    ODL_CMD_TRAIN_SAMPLE = 7,  /* arg0 label: forward + backward + accumulate -> result_f loss, result0 batch */
    ODL_CMD_SGD_STEP = 8,      /* arg_f learning rate: apply the accumulated batch mean */
    ODL_CMD_ZERO_GRADS = 9,    /* drop the accumulated batch */
    ODL_CMD_PREDICT = 10,      /* -> result0 class, data probabilities */
    ODL_CMD_SAVE = 11,         /* personalization -> flash slot: result0 slot (0 A, 1 B), result1 sequence */
    ODL_CMD_LOAD = 12,         /* newest valid flash slot -> RAM: result0 slot, result1 sequence */
    /* The dataset region (dataset.c): windows stored once, then trained or predicted in bulk. */
    ODL_CMD_STORE_DATASET = 13, /* arg0 byte offset into odl_dataset, data the bytes */
    ODL_CMD_TRAIN_BATCH = 14,   /* arg0 first record, arg1 count, arg_f learning rate: TRAIN_SAMPLE of each
                                   record's window and label, then SGD_STEP -> result_f mean loss,
                                   result0 count */
    ODL_CMD_EVALUATE = 15,      /* arg0 first record, arg1 count -> data the predicted classes, u16 each */
    /* A stream (stream_commands.c): the device decides which windows to ask a teacher about, keeps the
       labelled ones in the dataset region as a replay buffer and trains on them. */
    ODL_CMD_STREAM_START = 16,  /* data odl_stream_setup_t -> result0 replay capacity */
    ODL_CMD_STREAM_WINDOW = 17, /* data one window -> (the step due first, then the window's decision) result0
                                   class (bits 0-15), bit 16 query, bit 17 a step was taken, bit 18 drift;
                                   result1 the step's mean loss, result2 the threshold (float bits); result_f
                                   the confidence */
    ODL_CMD_STREAM_LABEL = 18,  /* arg0 the teacher's label for the window queried last -> result0 drift,
                                   result1 replay records */
    /* The int8 copy (int8_commands.c, odl/odl_int8.h). It shares the gradient accumulators' RAM: a batch's first
       training sample erases it and its calibration (the int8 commands then answer ODL_ERR_NOT_QUANTIZED until
       the next CALIBRATE and QUANTIZE), and CALIBRATE or QUANTIZE mid-batch answers ODL_ERR_BATCH_OPEN. */
    ODL_CMD_CALIBRATE = 19,     /* arg0 first record, arg1 count of the dataset region, arg2 1: forget the ranges
                                   first -> result0 windows calibrated since the last reset */
    ODL_CMD_QUANTIZE = 20,      /* data the weight bits of each parameter layer, a byte each -> result0 the int8
                                   image's bytes */
    ODL_CMD_PREDICT_Q = 21,     /* data one window -> result0 class; data int8 logits, then int8 probabilities */
    ODL_CMD_EVALUATE_Q = 22,    /* arg0 first record, arg1 count -> data the int8 model's classes, u16 each */
    ODL_CMD_GET_QIMAGE = 23,    /* arg0 offset, arg1 count -> data that part of the int8 image, result0 its size */
    ODL_CMD_PREDICT_A = 24,     /* adaptive: data one window, arg0 the cheap mode's newest rows, arg1 the threshold
                                   (probability * 256; 256: always the whole window) -> result0 class, result1 1 if
                                   the whole window ran, result2 the cheap class, result3 its confidence
                                   (probability * 256); data the last mode's int8 logits, then probabilities */
    /* The optimizer's state (odl_read_optim_slice): what resumes a training run exactly where another left it. */
    ODL_CMD_GET_OPTIM = 25,     /* arg0 table index, arg1 offset, arg2 count -> data that part of the layer's slots
                                   (floats), result0 the step count, result1 the layer's slot floats */
    ODL_CMD_SET_OPTIM = 26,     /* arg0 table index, arg1 offset, arg2 the step count, data floats: written into
                                   the layer's slots, then the step count (after SET_PARAMS, which clears both) */
    ODL_CMD_COUNT
} odl_command_t;

/* Statuses 0..31 are odl_status_t; the application's own start at 32. */
typedef enum {
    ODL_APP_ERR_COMMAND = 32,   /* unknown command */
    ODL_APP_ERR_ARGS = 33,      /* an argument is out of range */
    ODL_APP_ERR_LENGTH = 34,    /* data_len (or frame payload) does not fit the command */
    ODL_APP_ERR_NO_SAMPLE = 35, /* train or predict before any window was loaded */
    ODL_APP_ERR_CRC = 36,       /* UART frame with a bad CRC-32 */
    ODL_APP_ERR_FRAME = 37,     /* UART frame longer than the firmware accepts */
    ODL_APP_ERR_NO_SLOT = 38,   /* LOAD: no flash slot holds a valid copy for this model */
    ODL_APP_ERR_FLASH = 39      /* SAVE: a flash operation failed (result0: FLASH_SR error bits or ODL_FLASH_*) */
} odl_app_status_t;

/* One window of the dataset region and its label (EVALUATE ignores the label); the host writes records by
   offset, so the layout is fixed: the window's floats, then the label as a word. */
typedef struct {
    float window[ODL_INPUT_SIZE];
    uint32_t label;
} odl_record_t;

/* STREAM_START's data: the query policy, then how the replay buffer trains. */
typedef struct {
    odl_stream_config_t policy;
    uint32_t train_every;      /* windows between two training steps (>= 1), queried or not */
    uint32_t batch;            /* records each step trains on, drawn from the buffer (1..ODL_DATASET_WINDOWS) */
    uint32_t replay_seed;      /* the draws' xorshift32 seed, not 0 */
    float learning_rate;       /* > 0 */
    float drift_learning_rate; /* > 0, used while a drift is detected */
    float self_label;          /* an unqueried window this confident joins the buffer with the device's own class
                                  (self-training, no radio); 0: never */
} odl_stream_setup_t;

/* Word layout is fixed: the host reads and writes it by offset. */
typedef struct {
    uint32_t magic;             /* ODL_MAILBOX_MAGIC once the firmware is ready */
    uint32_t version;           /* ODL_PROTOCOL_VERSION */
    volatile uint32_t command;  /* written last by the host; the firmware clears it when done */
    volatile uint32_t status;   /* of the last command */
    volatile uint32_t sequence; /* commands completed since reset */
    uint32_t data_len;          /* bytes of `data` in use, in both directions */
    uint32_t data_capacity;     /* ODL_DATA_BYTES */
    uint32_t arg[4];
    float arg_f;
    uint32_t result[4];
    float result_f;
    uint32_t cycles; /* core cycles the last command took (DWT CYCCNT; see cycles.c) */
    uint32_t reserved[2];
    float data[ODL_DATA_FLOATS];
} odl_mailbox_t;

#define ODL_MAILBOX_HEADER_BYTES 80u

/* UART frames (frames.c): sync | command or status u8 | sequence u8 | payload length u16 | payload | CRC-32.
   A request's payload is the four u32 arguments and the float argument, then the data; a reply's is the
   four u32 results, the float result and the command's cycles, then the data. The reply echoes the
   request's sequence number. */
#define ODL_FRAME_SYNC_REQUEST 0xA5u
#define ODL_FRAME_SYNC_RESPONSE 0x5Au
#define ODL_FRAME_HEADER_BYTES 5u /* sync, command or status, sequence, length u16 */
#define ODL_FRAME_FIELDS_BYTES 20u
#define ODL_FRAME_REPLY_FIELDS_BYTES 24u
/* A frame whose next byte does not come within this time is dropped (a lost byte must not swallow the next
   frame); at 115200 baud a byte takes 87 us, and USB-serial bridges deliver in bursts of a few ms. */
#define ODL_FRAME_TIMEOUT_MS 20u

/* ODL_CMD_INFO's answer, as words in `data`. */
typedef struct {
    uint32_t protocol_version;
    uint32_t model_hash;
    uint32_t input_len, input_ch, num_classes;
    uint32_t num_layers, param_layers, trainable_capacity, trainable;
    uint32_t data_capacity;
    uint32_t ram_static_bytes; /* everything the linker placed in SRAM, stack included */
    uint32_t stack_size, stack_high_water;
    uint32_t accumulated;
    uint32_t optimizer; /* odl_optimizer_kind_t of this build */
    float param_bound;  /* no parameter may leave +-param_bound (odl_net_t) */
    uint32_t boot_slot;     /* where the parameters came from at boot: 0 exported defaults, 1 slot A, 2 slot B */
    uint32_t boot_sequence; /* that slot's sequence number (0 for the defaults) */
    uint32_t clock_hz;      /* the core clock the firmware runs on (odl_clock_hz) */
    uint32_t clock_status;  /* odl_clock_status_t of the clock setup at boot */
    uint32_t dataset_windows;      /* ODL_DATASET_WINDOWS: records the dataset region holds (0: none) */
    uint32_t dataset_record_bytes; /* sizeof(odl_record_t) */
} odl_info_t;

extern odl_mailbox_t odl_mailbox;

/* Where the firmware waits for work; simulators stop when the PC gets here. */
void odl_idle(void);

void odl_app_init(void);
/* Runs odl_mailbox.command on odl_mailbox's arguments and data; fills status and results. */
void odl_app_execute(void);

/* clock.c: the core clock. ODL_CLOCK_PLL (a build option, default 1) brings it to 80 MHz at boot; with 0 the
   firmware stays on the 4 MHz MSI it starts on. A setup step that times out leaves it on MSI. */
#ifndef ODL_CLOCK_PLL
#define ODL_CLOCK_PLL 1
#endif
typedef enum {
    ODL_CLOCK_OK = 0,
    ODL_CLOCK_ERR_VOLTAGE = 1, /* PWR_SR2.VOSF never cleared after selecting voltage range 1 */
    ODL_CLOCK_ERR_LATENCY = 2, /* FLASH_ACR.LATENCY never read back as 4 wait states */
    ODL_CLOCK_ERR_PLL = 3,     /* RCC_CR.PLLRDY never set: the PLL did not lock */
    ODL_CLOCK_ERR_SWITCH = 4   /* RCC_CFGR.SWS never reported the PLL as the system clock */
} odl_clock_status_t;
extern uint32_t odl_clock_hz;
extern uint32_t odl_clock_status;
void odl_clock_init(void);

void odl_uart_init(void);
int odl_uart_rx_ready(void);
uint8_t odl_uart_getc(void);
void odl_uart_putc(uint8_t byte);

/* dataset.c: the dataset region's commands (its records: records.h). */
uint32_t odl_dataset_store(odl_mailbox_t *mb);
uint32_t odl_dataset_train_batch(odl_mailbox_t *mb);
uint32_t odl_dataset_evaluate(odl_mailbox_t *mb);

/* stream_commands.c */
uint32_t odl_stream_start(odl_mailbox_t *mb);
uint32_t odl_stream_window(odl_mailbox_t *mb);
uint32_t odl_stream_label(odl_mailbox_t *mb);

/* int8_commands.c */
uint32_t odl_int8_calibrate_command(odl_mailbox_t *mb);
uint32_t odl_int8_quantize_command(odl_mailbox_t *mb);
uint32_t odl_int8_predict_command(odl_mailbox_t *mb);
uint32_t odl_int8_evaluate_command(odl_mailbox_t *mb);
uint32_t odl_int8_image_command(odl_mailbox_t *mb);
uint32_t odl_int8_adaptive_command(odl_mailbox_t *mb);

/* Feeds one received byte to the frame parser; a complete frame is executed and answered. */
void odl_frames_feed(uint8_t byte);
/* Drops a partial frame whose next byte is overdue (ODL_FRAME_TIMEOUT_MS); called while idle. */
void odl_frames_poll(void);

/* cycles.c: the core cycle counter (DWT CYCCNT), started at boot. */
void odl_cycles_init(void);
uint32_t odl_cycles(void);
/* crc32.c: CRC-32 as zlib computes it, continued from `crc` (0 to start). */
uint32_t odl_crc32(uint32_t crc, const uint8_t *data, uint32_t len);

/* flash.c: bank 2 of the STM32L4 flash. 0, or FLASH_SR's error bits, or one of these. */
#define ODL_FLASH_PAGE_BYTES 2048u
#define ODL_FLASH_OUTSIDE (1u << 28) /* not a page / double-word of bank 2 */
#define ODL_FLASH_LOCKED (1u << 29)  /* the unlock keys did not unlock the controller */
#define ODL_FLASH_TIMEOUT (1u << 30) /* BSY never cleared */
uint32_t odl_flash_erase_page(uintptr_t address);
uint32_t odl_flash_program(uintptr_t address, uint32_t low, uint32_t high);

/* persist.c: the A/B slots. Statuses are odl_status_t or odl_app_status_t. */
uint32_t odl_persist_save(uint32_t *slot, uint32_t *sequence, uint32_t *flash_status);
uint32_t odl_persist_load(uint32_t *slot, uint32_t *sequence);

void odl_stack_paint(void);
uint32_t odl_stack_size(void);
uint32_t odl_stack_high_water(void);

#endif /* ODL_APP_H */
