/* testutil.c: helpers shared by the Criterion suites. */
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

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

tile_context *test_vm_context(void) {
    tile_context *ctx = NULL;
    cr_assert_eq(tile_context_create(TILE_DEVICE_VM, 0, &ctx), TILE_OK);
    return ctx;
}

tile_program *test_load_program(tile_context *ctx, const char *relpath) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", TILE_SOURCE_DIR, relpath);
    tile_program *p = NULL;
    tile_status st = tile_program_from_file(ctx, path, &p);
    cr_assert_eq(st, TILE_OK, "%s: %s", path, tile_context_message(ctx));
    return p;
}

uint16_t test_bf16_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

void test_random_bf16(uint16_t *x, int64_t n, uint64_t *s) {
    for (int64_t i = 0; i < n; i++)
        x[i] = test_bf16_bits((float)((*s = *s * 6364136223846793005ull + 1) >> 40) / 16777216.0f - 0.5f);
}
