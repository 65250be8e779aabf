/*
 * bench.h: what the benchmark programs share: wall-clock time, medians, and the results file
 * of bench/RESULTS.md ({"device", "date", "command", "rows": [...]}, ratio >= 1 meaning we are at
 * or ahead of the anchor).
 */
#ifndef TILE_BENCH_H
#define TILE_BENCH_H

#include <stdbool.h>

#include "tile/tile.h"

double bench_now_us(void);
double bench_median(double *values, int n); /* sorts values */
/* Prints "<program>: what: STATUS\n<message>" and exits 1. */
void bench_die(const char *program, tile_context *ctx, const char *what, tile_status status);

/* One row; anchor < 0: none. higher_is_better: ratio = ours / anchor, else anchor / ours. */
void bench_add_row(const char *name, const char *metric, double ours, double anchor, const char *anchor_name,
                   bool higher_is_better);
/* What produced the latest row (a kernel's chosen configuration): its "config" field. */
void bench_row_config(const char *config);
void bench_write_json(const char *path, const char *device, const char *command);

#endif
