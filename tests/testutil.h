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
#endif
