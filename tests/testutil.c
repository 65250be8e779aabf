/* testutil.c: helpers shared by the Criterion suites. */
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>

char *test_read_source_file(const char *relpath, size_t *len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", TILE_SOURCE_DIR, relpath);
    char *data;
    size_t n;
    const char *err;
    if (!read_file(path, &data, &n, &err)) cr_assert_fail("cannot read %s: %s", path, err);
    if (len) *len = n;
    return data;
}
