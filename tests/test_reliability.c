/* test_reliability.c: regressions for the defects of issue 10 (a whole-pipeline robustness
 * hunt) that the public API shows: one rule for num_warps at every entry, NULL and overflow
 * misuse of the API, the source size limit, per-call messages, misaligned data pointers,
 * cancellation of a VM launch, and the cache directory's permissions. Each test states the
 * defect it guards; each fails on the code before its fix. The frontend's constant arithmetic
 * and the element conversions have golden and unit tests in their own suites. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "tile/tile.h"

static tile_status emit_warps(tile_program *p, tile_emit_kind kind, int num_warps) {
    char *text = NULL;
    size_t len = 0;
    tile_emit_options opt = {.num_warps = num_warps};
    tile_status st = tile_program_emit(p, "vector_add", NULL, 0, kind, &opt, &text, &len);
    tile_string_free(text);
    return st;
}

/* Defect 5: num_warps 3 or 5 reached the backend (an internal error, or .maxntid 96). */
Test(reliability, num_warps_is_a_power_of_two_at_every_entry) {
    for (int n = -1; n <= 64; n++) {
        int want = n == 1 || n == 2 || n == 4 || n == 8 || n == 16 || n == 32;
        cr_assert_eq(!!tile_num_warps_valid(n), want, "num_warps %d", n);
    }
    tile_context *ctx = test_vm_context();
    tile_program *p = test_load_program(ctx, "stdlib/core/vector_add.tile");
    for (int n = 3; n <= 6; n++) {
        tile_status st = emit_warps(p, TILE_EMIT_IR, n);
        cr_assert_eq(st, n == 4 ? TILE_OK : TILE_ERROR_INVALID_ARGUMENT, "num_warps %d: %s", n, tile_status_name(st));
        if (n != 4) cr_assert(strstr(tile_context_message(ctx), "num_warps"), "%s", tile_context_message(ctx));
    }
    char *h = NULL, *c = NULL;
    tile_aot_options opt = {.num_warps = 3};
    cr_assert_eq(tile_program_emit_c(p, NULL, 0, &opt, &h, &c, NULL), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(tile_context_message(ctx), "num_warps 3"), "%s", tile_context_message(ctx));
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* ... and tilec --num-warps gives a usage error for one that is not a power of two. */
Test(reliability, tilec_num_warps_not_a_power_of_two) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s/tilec build --emit ir --num-warps 3 %s/stdlib/core/vector_add.tile 2>&1",
             TILE_BUILD_DIR, TILE_SOURCE_DIR);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    char out[4096] = "";
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = 0;
    int rc = pclose(f);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "rc %d: %s", rc, out);
    cr_assert(strstr(out, "--num-warps 3"), "%s", out);
}
