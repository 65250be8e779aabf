/*
 * test_out_of_memory.c: allocations whose size comes from the caller (counts handed to the API)
 * fail with TILE_ERROR_OUT_OF_MEMORY and a message, never an abort or a crash (issue 10,
 * defect 8). Absurd counts overflow the size computation; realistic ones are made to fail by
 * support_set_alloc_limit, the test hook of try_malloc / try_calloc (support/support.h).
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "testutil.h"

static tile_context *ctx;
static tile_program *prog;

static void setup(void) {
    ctx = test_vm_context();
    prog = test_load_program(ctx, "stdlib/core/softmax.tile");
}

static void teardown(void) {
    support_set_alloc_limit(0);
    tile_program_destroy(prog);
    tile_context_destroy(ctx);
}

TestSuite(out_of_memory, .init = setup, .fini = teardown, .timeout = 120);

static void check_oom(tile_status st) {
    cr_assert_eq(st, TILE_ERROR_OUT_OF_MEMORY, "%s: %s", tile_status_name(st), tile_context_message(ctx));
    cr_assert(strstr(tile_context_message(ctx), "cannot allocate"), "%s", tile_context_message(ctx));
}

/* SIZE_MAX constants: the copy's size overflows (it used to wrap to one element and then read
 * the caller's array far past its end). */
Test(out_of_memory, constant_count_that_overflows) {
    tile_constant one = {.name = "BN", .i = 256};
    tile_kernel *k = NULL;
    check_oom(tile_program_get_kernel(prog, "softmax", &one, SIZE_MAX, &k));
    cr_assert_null(k);
    char *text = NULL;
    size_t len = 0;
    tile_emit_options o = {0};
    check_oom(tile_program_emit(prog, "softmax", &one, SIZE_MAX, TILE_EMIT_IR, &o, &text, &len));
    char *header = NULL, *source = NULL;
    check_oom(tile_program_emit_c(prog, &one, SIZE_MAX, NULL, &header, &source, NULL));
    cr_assert_null(header);
#ifdef TILE_HAVE_LLVM
    o.arch = "sm_80";
    check_oom(tile_program_emit(prog, NULL, &one, SIZE_MAX, TILE_EMIT_PTX, &o, &text, &len));
#endif
}

/* Memory that runs out for a real count: a status, and the next call (with memory) works. */
Test(out_of_memory, constants_when_memory_runs_out) {
    tile_constant c[3] = {{.name = "BN", .i = 256}, {.name = "BM", .i = 2}, {.name = "W", .i = 4}};
    tile_kernel *k = NULL;
    support_set_alloc_limit(16);
    check_oom(tile_program_get_kernel(prog, "softmax", c, 3, &k));
    char *header = NULL, *source = NULL;
    check_oom(tile_program_emit_c(prog, c, 3, NULL, &header, &source, NULL));
    support_set_alloc_limit(0);
    cr_assert_eq(tile_program_get_kernel(prog, "softmax", c, 3, &k), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_not_null(k);
}
