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

/* ---- the epilogue kernels take gemm's path through the compiler ------------------------------ */

static int count_of(const char *s, const char *what) {
    int n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what)) n++;
    return n;
}

static char *emit(const char *kernel, int act, const char *arch, tile_emit_kind kind, const char *dump_after) {
    tile_constant c[] = {{.name = "ACT", .i = act}, {.name = "HAS_BIAS", .i = 1}, {.name = "HAS_RESIDUAL", .i = 1},
                         {.name = "W", .i = 4}};
    /* gemm at the epilogue kernels' tile (4 warps, 3 stages: its second candidate, not its defaults) */
    tile_constant g[] = {{.name = "W", .i = 4}, {.name = "STAGES", .i = 3}};
    tile_emit_options o = {.arch = arch, .dump_after = dump_after};
    char *out = NULL;
    bool plain = strcmp(kernel, "gemm") == 0;
    tile_status st = tile_program_emit(prog, kernel, plain ? g : c, plain ? 2 : 4, kind, &o, &out, NULL);
    cr_assert_eq(st, TILE_OK, "%s ACT=%d %s: %s", kernel, act, arch, tile_context_message(NULL));
    return out;
}

/* With every option on (and gemm at 4 warps, 3 stages), each epilogue kernel's K loop gets the rings that
 * gemm's gets (async copies of A and B on sm_80; TMA on sm_90a with every launch fact), and its
 * PTX the same number of wgmma instructions; swiglu's two dots mma.sync. (Swiglu's A tile, read by both dots, is
 * not staged yet: the stages pass takes a load with one dot user.) */
Test(gemm_epilogue, the_main_loop_is_compiled_like_gemms) {
    static const char *kernels[] = {"gemm_epilogue", "gemm_epilogue_f16", "gemm_epilogue_f32"};
    char *g80 = emit("gemm", 0, "sm_80", TILE_EMIT_IR, "stages");
    int copies = count_of(g80, "copy_async");
    cr_assert_gt(copies, 0);
    setenv("TILE_EMIT_SPECIALIZED", "1", 1);
    char *g90 = emit("gemm", 0, "sm_90a", TILE_EMIT_IR, "stages");
    int tma = count_of(g90, "copy_tma");
    cr_assert_gt(tma, 0, "%s", g90);
    for (int kk = 0; kk < 3; kk++)
        for (int act = ACT_NONE; act < ACT_SWIGLU; act++) {
            char *e90 = emit(kernels[kk], act, "sm_90a", TILE_EMIT_IR, "stages");
            cr_assert_eq(count_of(e90, "copy_tma"), tma, "%s ACT=%d", kernels[kk], act);
            tile_string_free(e90);
        }
    unsetenv("TILE_EMIT_SPECIALIZED");
    for (int kk = 0; kk < 3; kk++)
        for (int act = ACT_NONE; act < ACT_SWIGLU; act++) {
            char *e80 = emit(kernels[kk], act, "sm_80", TILE_EMIT_IR, "stages");
            cr_assert_eq(count_of(e80, "copy_async"), copies, "%s ACT=%d", kernels[kk], act);
            cr_assert(strstr(e80, "shared<bf16>[3, 128, 64]") && strstr(e80, "shared<bf16>[3, 64, 128]"), "%s", e80);
            tile_string_free(e80);
        }
    tile_string_free(g80), tile_string_free(g90);
#ifdef TILE_HAVE_LLVM
    /* sm_90a: gemm's dot is a wgmma (both operands staged); so is each epilogue kernel's, but
     * swiglu's, whose A tile (read by both dots) is not staged, go back to mma.sync */
    static const char *MMA = "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32", *WGMMA = "wgmma.mma_async";
    char *gptx = emit("gemm", 0, "sm_90a", TILE_EMIT_PTX, NULL);
    int wgmma = count_of(gptx, WGMMA);
    cr_assert_gt(wgmma, 0);
    cr_assert_eq(count_of(gptx, MMA), 0);
    static const int acts[] = {ACT_NONE, ACT_GELU, ACT_SWIGLU};
    for (int i = 0; i < 3; i++) {
        int act = acts[i];
        char *ptx = emit("gemm_epilogue", act, "sm_90a", TILE_EMIT_PTX, NULL);
        if (act == ACT_SWIGLU) cr_assert(count_of(ptx, WGMMA) == 0 && count_of(ptx, MMA) > 0, "ACT=%d", act);
        else cr_assert_eq(count_of(ptx, WGMMA), wgmma, "ACT=%d", act);
        tile_string_free(ptx);
    }
    tile_string_free(gptx);
#endif
}
