/*
 * test_ir_program.c: programs given as IR text through the public API (a name ending in ".ir"):
 * the IR that `tilec build --emit ir` prints for stdlib's vector_add and softmax reads back as a
 * program whose kernels run on the VM with the same results as the .tile source; the IR of a
 * GPU dump (layouts included) runs too; and the errors of an IR program are located statuses:
 * bad text, invalid IR, constants, a device function or a kernel without sizes asked for as a
 * kernel. A dot reads a transposed shared view (the stages pass's K^T) with the right values,
 * and any other reader of one is a located VM error.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tile/tile.h"

/* The IR of `kernel` of a stdlib file, as tilec build --emit ir prints it (dump_after: that
 * pass's dump instead, header line removed). */
static char *emit_ir(tile_context *ctx, const char *relpath, const char *kernel, const char *dump_after) {
    tile_program *p = test_load_program(ctx, relpath);
    tile_emit_options opt = {.dump_after = dump_after};
    char *text;
    size_t len;
    tile_status st = tile_program_emit(p, kernel, NULL, 0, TILE_EMIT_IR, &opt, &text, &len);
    cr_assert_eq(st, TILE_OK, "%s", tile_context_message(ctx));
    tile_program_destroy(p);
    if (dump_after) {
        char *body = strchr(text, '\n');
        cr_assert_not_null(body);
        memmove(text, body + 1, strlen(body + 1) + 1);
    }
    return text;
}

/* Runs a rank-2 [rows, cols] f32 kernel (x -> y) of program p on the VM and returns y. */
static float *run_rows(tile_context *ctx, tile_program *p, const char *kernel, int64_t rows, int64_t cols,
                       const float *x) {
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(p, kernel, NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
    size_t n = (size_t)(rows * cols);
    float *y = calloc(n, sizeof *y);
    int64_t shape[2] = {rows, cols};
    tile_arg args[2] = {
        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, (void *)x, 2, shape)},
        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, y, 2, shape)},
    };
    cr_assert_eq(tile_kernel_launch(k, args, 2, NULL), TILE_OK, "%s", tile_context_message(ctx));
    return y;
}

Test(ir_program, softmax_from_its_ir_matches_the_source) {
    tile_context *ctx = test_vm_context();
    enum { ROWS = 5, COLS = 300 };
    float x[ROWS * COLS];
    for (int i = 0; i < ROWS * COLS; i++) x[i] = (float)sin(i * 0.37) * 4;
    tile_program *source = test_load_program(ctx, "stdlib/core/softmax.tile");
    float *want = run_rows(ctx, source, "softmax", ROWS, COLS, x);
    /* The IR after the passes, and the IR after the GPU layout pass (layouts in every type). */
    const char *dumps[] = {NULL, "layout"};
    for (int d = 0; d < 2; d++) {
        char *ir = emit_ir(ctx, "stdlib/core/softmax.tile", "softmax", dumps[d]);
        tile_program *p;
        cr_assert_eq(tile_program_from_string(ctx, "softmax.ir", ir, strlen(ir), &p), TILE_OK, "%s",
                     tile_context_message(ctx));
        cr_assert_eq(tile_program_num_kernels(p), 1);
        cr_assert_str_eq(tile_program_kernel_name(p, 0), "softmax");
        tile_kernel *k;
        cr_assert_eq(tile_program_get_kernel(p, "softmax", NULL, 0, &k), TILE_OK);
        tile_param_info info;
        cr_assert_eq(tile_kernel_param(k, 0, &info), TILE_OK);
        cr_assert_str_eq(info.name, "arg0", "IR parameters are named by position");
        cr_assert_str_eq(info.dim_symbols[0], "M");
        float *got = run_rows(ctx, p, "softmax", ROWS, COLS, x);
        cr_assert(memcmp(got, want, sizeof x) == 0, "the IR program computes something else (dump %d)", d);
        /* Emitting it again gives the same IR. */
        char *again;
        size_t len;
        cr_assert_eq(tile_program_emit(p, "softmax", NULL, 0, TILE_EMIT_IR, NULL, &again, &len), TILE_OK);
        if (d == 0) cr_assert_str_eq(again, ir);
        tile_string_free(again);
        free(got);
        tile_string_free(ir);
        tile_program_destroy(p);
    }
    free(want);
    tile_program_destroy(source);
    tile_context_destroy(ctx);
}

/* Loading `text` as t.ir and asking for kernel `k` fails with status st and a message that
 * contains `message`. */
static void check_error(tile_context *ctx, const char *text, const tile_constant *c, size_t nc, tile_status st,
                        const char *message) {
    tile_program *p = NULL;
    tile_status got = tile_program_from_string(ctx, "t.ir", text, strlen(text), &p);
    if (got == TILE_OK) {
        tile_kernel *k;
        got = tile_program_get_kernel(p, "k", c, nc, &k);
    }
    cr_assert_eq(got, st, "%s for:\n%s\n%s", tile_status_name(got), text, tile_context_message(ctx));
    cr_assert(strstr(tile_context_message(ctx), message), "wanted '%s' in:\n%s", message, tile_context_message(ctx));
    tile_program_destroy(p);
}

Test(ir_program, errors_are_located_statuses) {
    tile_context *ctx = test_vm_context();
    check_error(ctx, "kernel @k(%0: f32)\ngrid {\n  %1 = bogus : i32\n", NULL, 0, TILE_ERROR_COMPILE,
                "t.ir:3:8: error: unknown op 'bogus'");
    check_error(ctx, "kernel @k(%0: f32)\ngrid {\n  %1 = const 1.5 : f32\n  yield %1\n}\nbody {\n}\n", NULL, 0,
                TILE_ERROR_COMPILE, "t.ir:4:3: error: verify: yield:");
    const char *ok = "kernel @k(%0: tensor<f32>[N])\ngrid {\n  %1 = const 1 : i32\n  yield %1\n}\nbody {\n}\n";
    tile_constant c = {.name = "BLOCK", .i = 64};
    check_error(ctx, ok, &c, 1, TILE_ERROR_COMPILE, "t.ir:1:1: error: an IR program has no compile-time constants");
    check_error(ctx, "func @k() {\n  return\n}\n", NULL, 0, TILE_ERROR_NOT_FOUND, "no kernel named 'k'");
    check_error(ctx, "kernel @k(%0: tensor<f32>[?])\ngrid {\n  %1 = const 1 : i32\n  yield %1\n}\nbody {\n}\n", NULL, 0,
                TILE_ERROR_COMPILE, "t.ir:1:1: error: kernel @k: its tensor parameters need their sizes");
    tile_context_destroy(ctx);
}

/* A transposed shared view (what the stages pass makes of K^T) read by a dot: y = B @ A^T, with A
 * stored row-major in the shared tile; any other reader of such a view is a located VM error. */
/* The kernel up to the transposed view %10 of the shared tile %9 (which holds A), and %14. */
#define TVIEW_PREFIX                                                                            \
    "kernel @tview(%0: tensor<f32>[4, 8], %1: tensor<f32>[8, 8], %2: tensor<f32>[8, 4])\n"    \
    "grid {\n"                                                                                 \
    "  %3 = const 1 : i32\n"                                                                   \
    "  yield %3\n"                                                                             \
    "}\n"                                                                                      \
    "body {\n"                                                                                 \
    "  %3 = arange 0 : tile<i32>[4]\n"                                                         \
    "  %4 = reshape %3 : tile<i32>[4, 1]\n"                                                    \
    "  %5 = arange 0 : tile<i32>[8]\n"                                                         \
    "  %6 = reshape %5 : tile<i32>[1, 8]\n"                                                    \
    "  %7 = reshape %5 : tile<i32>[8, 1]\n"                                                    \
    "  %8 = load %0, %4, %6 : tile<f32>[4, 8]\n"                                               \
    "  %9 = shared_alloc : shared<f32>[4, 8]{row_major(4,8)}\n"                                \
    "  store %9, %4, %6, %8\n"                                                                 \
    "  barrier\n"                                                                              \
    "  %10 = transpose %9, perm [1, 0] : shared<f32>[8, 4]{column_major(8,4)}\n"               \
    "  %14 = reshape %3 : tile<i32>[1, 4]\n"

static const char transposed_view[] = TVIEW_PREFIX
    "  %11 = load %1, %7, %6 : tile<f32>[8, 8]\n"
    "  %12 = const 0.0 : tile<f32>[8, 4]\n"
    "  %13 = dot %11, %10, %12 : tile<f32>[8, 4]\n"
    "  store %2, %7, %14, %13\n"
    "}\n";

/* line 18: a load of the transposed view */
static const char transposed_view_misread[] = TVIEW_PREFIX
    "  %13 = load %10, %7, %14 : tile<f32>[8, 4]\n"
    "  store %2, %7, %14, %13\n"
    "}\n";

static tile_status run_tview(tile_context *ctx, const char *text, const float *a, const float *b, float *y) {
    tile_program *p = NULL;
    tile_status st = tile_program_from_string(ctx, "tview.ir", text, strlen(text), &p);
    cr_assert_eq(st, TILE_OK, "%s", tile_context_message(ctx));
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(p, "tview", NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
    int64_t sa[2] = {4, 8}, sb[2] = {8, 8}, sy[2] = {8, 4};
    tile_arg args[3] = {
        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, (void *)a, 2, sa)},
        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, (void *)b, 2, sb)},
        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, y, 2, sy)},
    };
    st = tile_kernel_launch(k, args, 3, NULL);
    tile_program_destroy(p);
    return st;
}

Test(ir_program, a_dot_reads_a_transposed_shared_view_and_nothing_else_does) {
    tile_context *ctx = test_vm_context();
    float a[32], b[64], y[32] = {0};
    for (int i = 0; i < 32; i++) a[i] = (float)(i % 7) - 3.0f;
    for (int i = 0; i < 64; i++) b[i] = (float)(i % 5) * 0.5f - 1.0f;
    cr_assert_eq(run_tview(ctx, transposed_view, a, b, y), TILE_OK, "%s", tile_context_message(ctx));
    for (int r = 0; r < 8; r++)
        for (int c = 0; c < 4; c++) {
            float want = 0;
            for (int k = 0; k < 8; k++) want += b[r * 8 + k] * a[c * 8 + k];
            cr_assert_float_eq(y[r * 4 + c], want, 1e-5f, "y[%d][%d]", r, c);
        }
    cr_assert_neq(run_tview(ctx, transposed_view_misread, a, b, y), TILE_OK);
    cr_assert(strstr(tile_context_message(ctx), "tview.ir:18:3") &&
                  strstr(tile_context_message(ctx), "a transposed shared view, which only a dot reads"),
              "%s", tile_context_message(ctx));
    tile_context_destroy(ctx);
}

/* An mbarrier ring ends with mbarrier_inval (the stages pass puts one after each TMA loop): using a
 * stage afterwards is a located VM error, and mbarrier_init makes the ring usable again (a ring in an
 * outer loop). Line 11 is the arrive after the inval. */
#define MBAR_PREFIX                                                                             \
    "kernel @mbar(%0: tensor<f32>[4])\n"                                                       \
    "grid {\n"                                                                                 \
    "  %1 = const 1 : i32\n"                                                                   \
    "  yield %1\n"                                                                             \
    "}\n"                                                                                      \
    "body {\n"                                                                                 \
    "  %1 = shared_alloc uninit 1 : shared<i64>[2]\n"                                          \
    "  %2 = const 0 : i32\n"                                                                   \
    "  mbarrier_init %1\n"                                                                     \
    "  mbarrier_inval %1\n"

static tile_status run_mbar(tile_context *ctx, const char *text) {
    tile_program *p = NULL;
    tile_status st = tile_program_from_string(ctx, "mbar.ir", text, strlen(text), &p);
    cr_assert_eq(st, TILE_OK, "%s", tile_context_message(ctx));
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(p, "mbar", NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
    float x[4] = {0};
    int64_t shape[1] = {4};
    tile_arg arg = {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, x, 1, shape)};
    st = tile_kernel_launch(k, &arg, 1, NULL);
    tile_program_destroy(p);
    return st;
}

Test(ir_program, an_mbarrier_is_not_used_after_its_inval) {
    tile_context *ctx = test_vm_context();
    cr_assert_neq(run_mbar(ctx, MBAR_PREFIX "  mbarrier_arrive %1, %2\n}\n"), TILE_OK);
    cr_assert(strstr(tile_context_message(ctx), "mbar.ir:11:3") &&
                  strstr(tile_context_message(ctx), "used after its mbarrier_inval"),
              "%s", tile_context_message(ctx));
    cr_assert_eq(run_mbar(ctx, MBAR_PREFIX "  mbarrier_init %1\n  mbarrier_arrive %1, %2\n  mbarrier_wait %1, %2, %2\n}\n"),
                 TILE_OK, "%s", tile_context_message(ctx));
    tile_context_destroy(ctx);
}
