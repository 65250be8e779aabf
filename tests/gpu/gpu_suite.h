/*
 * gpu_suite.h: the setup and teardown that GPU suites over one standard-library file share: a
 * CUDA context (the suite skips without a device) and the program read from
 * $TILE_SOURCE_DIR/<rel> (the source folder the tests were built from when unset).
 */
#ifndef TILE_TESTS_GPU_SUITE_H
#define TILE_TESTS_GPU_SUITE_H

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <stdlib.h>

#include "tile/tile.h"

static inline void gpu_suite_open(const char *rel, tile_context **ctx, tile_program **prog) {
    if (tile_context_create(TILE_DEVICE_CUDA, 0, ctx) != TILE_OK) cr_skip_test("no CUDA device: %s", tile_context_message(NULL));
    const char *dir = getenv("TILE_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : TILE_SOURCE_DIR, rel);
    cr_assert_eq(tile_program_from_file(*ctx, path, prog), TILE_OK, "%s", tile_context_message(*ctx));
    cr_log_info("running on %s", tile_context_device_name(*ctx));
}

static inline void gpu_suite_close(tile_context **ctx, tile_program **prog) {
    if (*prog) tile_program_destroy(*prog);
    if (*ctx) tile_context_destroy(*ctx);
    *prog = NULL, *ctx = NULL;
}

#endif
