/* testutil.h: helpers shared by the Criterion suites. */
#ifndef TILE_TESTUTIL_H
#define TILE_TESTUTIL_H
#include "support/support.h"
#include "tile/tile.h"
/* Reads TILE_SOURCE_DIR/relpath into a malloc'd NUL-terminated string (aborts the test if missing). */
char *test_read_source_file(const char *relpath, size_t *len);
/* A context on the VM (the test fails if it cannot be made). */
tile_context *test_vm_context(void);
/* The program of TILE_SOURCE_DIR/relpath on ctx (the test fails, with the message, if it does not compile). */
tile_program *test_load_program(tile_context *ctx, const char *relpath);
/* The bf16 bits of f, rounded to nearest even (f not NaN). */
uint16_t test_bf16_bits(float f);
/* x[0..n) = random bf16 values in [-0.5, 0.5), from the LCG state *s (the same state, the same values). */
void test_random_bf16(uint16_t *x, int64_t n, uint64_t *s);
#endif
