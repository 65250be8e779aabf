/*
 * test_gemm_epilogue.c: stdlib/core/gemm.tile's fused-epilogue kernels and its plain gemm on the
 * VM against a C reference (tests/gemm_check.h holds the cases and the checks; the GPU suite
 * runs the same ones): every epilogue option with every result type, M, N, K that are not
 * multiples of the tile, K = 1, dimensions of 1, unaligned leading dimensions and transposed
 * operands through strides. Also the launch checks that keep an option and its tensor in step.
 */
#include "gemm_check.h"

static tile_context *ctx;
static tile_program *prog;

static void setup(void) {
    cr_assert_eq(tile_context_create(TILE_DEVICE_VM, 0, &ctx), TILE_OK);
    cr_assert_eq(tile_program_from_file(ctx, TILE_SOURCE_DIR "/stdlib/core/gemm.tile", &prog), TILE_OK, "%s",
                 tile_context_message(ctx));
}
static void teardown(void) {
    tile_program_destroy(prog);
    tile_context_destroy(ctx);
}

TestSuite(gemm_epilogue, .init = setup, .fini = teardown, .timeout = 600);

enum { PARTS = 4, MAX_CASES = 128 };

/* Case i of the shared list runs in part i % PARTS, so criterion's jobs share the work. */
static void run_part(int part) {
    GemmCase cases[MAX_CASES];
    size_t n = gemm_check_cases(cases, MAX_CASES);
    cr_assert_leq(n, (size_t)MAX_CASES);
    for (size_t i = (size_t)part; i < n; i += PARTS) gemm_check(ctx, prog, &cases[i], 0);
}

Test(gemm_epilogue, cases_0) { run_part(0); }
Test(gemm_epilogue, cases_1) { run_part(1); }
Test(gemm_epilogue, cases_2) { run_part(2); }
Test(gemm_epilogue, cases_3) { run_part(3); }

/* gelu with erf and with tanh differ by up to about 4.7e-4 near |y| = 2.7: an f32 result at
 * small K tells them apart, so the reference of one fails against the kernel of the other. */
Test(gemm_epilogue, gelu_flavours_are_distinguished) {
    double erf_y = gemm_check_act(ACT_GELU, 2.7), tanh_y = gemm_check_act(ACT_GELU_TANH, 2.7);
    cr_assert_gt(fabs(erf_y - tanh_y), 4e-4, "%g %g", erf_y, tanh_y);
    GemmCase c = {.kernel = "gemm_epilogue_f32", .m = 16, .n = 16, .k = 8, .act = ACT_GELU, .alpha = 3.0, .bm = 16,
                  .bn = 16, .bk = 16};
    gemm_check(ctx, prog, &c, 0);
    c.act = ACT_GELU_TANH;
    gemm_check(ctx, prog, &c, 0);
}

/* A tensor for an option that is off, a missing one for an option that is on, and b with the
 * wrong number of columns for swiglu are launch errors naming the check. */
Test(gemm_epilogue, options_and_tensors_must_agree) {
    static uint16_t a[4 * 8], b[8 * 8], c[4 * 8], bias[8];
    tile_kernel *k;
    int64_t sa[2] = {4, 8}, sb[2] = {8, 8}, sc[2] = {4, 8}, sbias = 8, empty = 0, sres[2] = {0, 0};
    tile_arg args[6] = {
        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, a, 2, sa)},
        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, b, 2, sb)},
        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, c, 2, sc)},
        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, bias, 1, &sbias)},
        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, NULL, 2, sres)},
        {.kind = TILE_ARG_FLOAT, .f = 1.0},
    };
    cr_assert_eq(tile_program_get_kernel(prog, "gemm_epilogue", NULL, 0, &k), TILE_OK);
    cr_assert_eq(tile_kernel_launch(k, args, 6, NULL), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(tile_context_message(ctx), "bias must have one element per column"), "%s", tile_context_message(ctx));

    tile_constant on[] = {{.name = "HAS_BIAS", .i = 1}, {.name = "HAS_RESIDUAL", .i = 1}};
    cr_assert_eq(tile_program_get_kernel(prog, "gemm_epilogue", on, 2, &k), TILE_OK);
    cr_assert_eq(tile_kernel_launch(k, args, 6, NULL), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(tile_context_message(ctx), "residual must be [M, N]"), "%s", tile_context_message(ctx));

    tile_constant swiglu[] = {{.name = "ACT", .i = ACT_SWIGLU}};
    args[3].tensor = tile_tensor_contiguous(TILE_BF16, NULL, 1, &empty);
    cr_assert_eq(tile_program_get_kernel(prog, "gemm_epilogue", swiglu, 1, &k), TILE_OK);
    cr_assert_eq(tile_kernel_launch(k, args, 6, NULL), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(tile_context_message(ctx), "2 * N with ACT = 5"), "%s", tile_context_message(ctx));

    tile_constant bad[] = {{.name = "ACT", .i = 6}};
    cr_assert_eq(tile_program_get_kernel(prog, "gemm_epilogue", bad, 1, &k), TILE_ERROR_COMPILE);
    cr_assert(strstr(tile_context_message(ctx), "static assertion failed: ACT is 0 (none)"), "%s", tile_context_message(ctx));
}
