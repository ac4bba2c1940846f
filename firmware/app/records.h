/*
 * records.h - what the command files share: the window check and the dataset region's records (records.c).
 * The layering is commands.c (the dispatch) -> dataset.c, stream_commands.c, int8_commands.c (the command
 * families) -> records.c -> the odl library: a command file includes this header, never another command
 * file's functions, so no command file depends on another.
 */
#ifndef ODL_RECORDS_H
#define ODL_RECORDS_H

#include <stdint.h>

#include "app.h"

/* Every float of an input window is finite (what LOAD_SAMPLE and the others require). */
int odl_window_finite(const float *window);

/* A record of the dataset region (NULL past its end, and always without a region). */
odl_record_t *odl_dataset_record(uint32_t index);
/* Records first..first+count-1 exist (count >= 1), hold finite windows and, when `labelled`, labels of the
   model: ODL_OK, ODL_APP_ERR_ARGS, ODL_ERR_NONFINITE or ODL_ERR_LABEL. */
uint32_t odl_dataset_check(uint32_t first, uint32_t count, int labelled);
/* One SGD step on `count` records, the k-th being record `pick(k, context)`: each accumulated in turn, then the
   step at `learning_rate`; a refused sample drops the whole batch. The mean loss is the float32 sum of the
   losses in order over the count, as pyodl.network.base.mean_loss computes it. */
uint32_t odl_dataset_step(uint32_t count, uint32_t (*pick)(uint32_t k, const void *context), const void *context,
                          float learning_rate, float *mean_loss);
/* EVALUATE's checks and answer with a predictor (EVALUATE: the float model's; EVALUATE_Q: the int8 copy's). */
uint32_t odl_dataset_evaluate_with(odl_mailbox_t *mb, odl_status_t (*predict)(const float *window, uint16_t *cls));

#endif /* ODL_RECORDS_H */
