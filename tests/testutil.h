/* testutil.h: helpers shared by the Criterion suites. */
#ifndef TILE_TESTUTIL_H
#define TILE_TESTUTIL_H
#include "support/support.h"
/* Reads TILE_SOURCE_DIR/relpath into a malloc'd NUL-terminated string (aborts the test if missing). */
char *test_read_source_file(const char *relpath, size_t *len);
#endif
