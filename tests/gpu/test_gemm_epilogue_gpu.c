/*
 * test_gemm_epilogue_gpu.c: stdlib/core/gemm.tile's fused-epilogue kernels and its plain gemm on
 * the GPU against the C reference of tests/gemm_check.h: the VM suite's cases (test_gemm_epilogue.c:
 * small tiles, every option and result type, odd shapes, strided and transposed operands), then
 * the kernels' default tiles at larger shapes, where the tensor-core and pipelined paths (async
 * copies on sm_80, TMA rings on sm_90a where the launch facts allow) run. Skips without a GPU.
 */
#include "gpu_suite.h"
#include "../gemm_check.h"

static tile_context *ctx;
static tile_program *prog;

static void setup(void) { gpu_suite_open("stdlib/core/gemm.tile", &ctx, &prog); }
static void teardown(void) { gpu_suite_close(&ctx, &prog); }

TestSuite(gemm_epilogue_gpu, .init = setup, .fini = teardown, .timeout = 900);

enum { PARTS = 4, MAX_CASES = 128 };

/* erf, tanh and exp on the GPU are f32 formulas (backend/codegen_elem.c) about 1e-7 relative
 * from libm's; 1e-5 of the magnitudes is room for them and still 40 times below the gap between
 * the two gelu flavours. */
static const double GPU_ACT_ATOL = 1e-5;

static void run_part(int part) {
    GemmCase cases[MAX_CASES];
    size_t n = gemm_check_cases(cases, MAX_CASES);
    cr_assert_leq(n, (size_t)MAX_CASES);
    for (size_t i = (size_t)part; i < n; i += PARTS) gemm_check(ctx, prog, &cases[i], GPU_ACT_ATOL);
}

Test(gemm_epilogue_gpu, cases_0) { run_part(0); }
Test(gemm_epilogue_gpu, cases_1) { run_part(1); }
Test(gemm_epilogue_gpu, cases_2) { run_part(2); }
Test(gemm_epilogue_gpu, cases_3) { run_part(3); }

/* The default tiles (128 x 128 x 64, 3 stages, 4 warps): every activation with bias, residual
 * and a scale for each result type, at a shape with tails in M, N and K. */
Test(gemm_epilogue_gpu, default_tiles_every_option) {
    static const char *kernels[] = {"gemm_epilogue", "gemm_epilogue_f16", "gemm_epilogue_f32"};
    for (int kk = 0; kk < 3; kk++)
        for (int act = ACT_NONE; act <= ACT_SWIGLU; act++) {
            GemmCase c = {.kernel = kernels[kk], .m = 300, .n = 260, .k = 200, .act = act, .has_bias = 1,
                          .has_residual = 1, .alpha = 0.5};
            gemm_check(ctx, prog, &c, GPU_ACT_ATOL);
        }
}

/* Aligned shapes (the TMA path on sm_90a), decode-like M = 1 and 16, and transposed operands
 * at the default tiles. */
Test(gemm_epilogue_gpu, default_tiles_shapes_and_layouts) {
    GemmCase cases[] = {
        {.kernel = "gemm_epilogue", .m = 512, .n = 384, .k = 256, .act = ACT_GELU, .has_bias = 1},
        {.kernel = "gemm_epilogue", .m = 256, .n = 256, .k = 512, .act = ACT_SWIGLU, .has_bias = 1, .has_residual = 1},
        {.kernel = "gemm_epilogue_f32", .m = 1, .n = 1000, .k = 512, .act = ACT_SILU, .has_bias = 1},
        {.kernel = "gemm_epilogue", .m = 16, .n = 512, .k = 1024, .has_residual = 1, .alpha = 2.0},
        {.kernel = "gemm", .m = 1, .n = 4096, .k = 256},
        {.kernel = "gemm", .m = 256, .n = 192, .k = 320, .a_transposed = true},
        {.kernel = "gemm", .m = 256, .n = 192, .k = 320, .b_transposed = true},
        {.kernel = "gemm_epilogue_f16", .m = 200, .n = 96, .k = 136, .act = ACT_SWIGLU, .has_bias = 1,
         .a_transposed = true, .b_transposed = true},
        {.kernel = "gemm_epilogue", .m = 200, .n = 150, .k = 100, .act = ACT_RELU, .has_bias = 1, .lda = 109,
         .ldb = 153, .ldc = 157},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) gemm_check(ctx, prog, &cases[i], GPU_ACT_ATOL);
}
