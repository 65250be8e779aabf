/*
 * test_codegen_fp8.c: the 8-bit tensor-core path of the code generator, on the CPU: the kernels of
 * stdlib/core/gemm_fp8.tile and an i8 GEMM compile for sm_90a and sm_80 (and assemble, where ptxas
 * exists), with the instructions the layout pass chose: wgmma m64nNk32 .e4m3 on sm_90a for K steps
 * of 128 (both operands k-major in rings), mma.sync m16n8k32 .e4m3 (PTX ISA 8.4) on sm_90a for
 * narrower K steps, and m16n8k16 .bf16 on operands widened to bf16 on sm_80 for f8, m16n8k32 .s8 on both for i8, ldmatrix without .trans,
 * cvt.rn.satfinite.e4m3x2.f32 where an f32 is cast to f8e4m3 on sm_90a and the software rounding
 * on sm_80. The GPU checks of the values are tests/gpu/test_gemm_fp8_gpu.c.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "backend/backend.h"
#include "frontend/frontend.h"
#include "ir/ir.h"
#include "runtime/runtime.h"
#include "testutil.h"

#ifdef TILE_HAVE_LLVM
/* The PTX of kernel `kernel` of text for arch (the GPU passes for that target first); asserts
 * that it compiles, and that ptxas accepts it where ptxas exists. */
static void ptx_with(const char *name, const char *text, const char *kernel, const ConstBinding *consts, int nconsts,
                     BackendArch arch, Strbuf *ptx) {
    DiagList d = {0};
    AstFile *ast = parse_source(name, text, strlen(text), &d);
    cr_assert_not_null(ast, "%s", sb_str(&d.text));
    RtCompileOptions opt = {.gpu = true};
    Strbuf terr = {0};
    const char *words = arch == BACKEND_ARCH_SM90A ? "sm_90a" : "sm_80";
    cr_assert(target_parse(words, strlen(words), &opt.target, &terr), "%s", sb_str(&terr));
    IrFunction *k;
    IrModule *m = rt_compile(ast, kernel, consts, nconsts, &opt, &d, &k);
    cr_assert_not_null(m, "%s: %s", kernel, sb_str(&d.text));
    Strbuf err = {0};
    CodegenInfo info;
    CodegenOptions copt = {.arch = arch};
    cr_assert(backend_compile_ptx(k, &copt, ptx, &info, &err), "%s for %s: %s", kernel, words, sb_str(&err));
    char path[1024];
    if (backend_find_ptxas(path, sizeof path, NULL)) {
        Strbuf cubin = {0}, perr = {0};
        cr_assert(backend_ptx_to_cubin(ptx->data, ptx->len, arch, CUBIN_TOOL_PTXAS, &cubin, &perr), "ptxas on %s for %s: %s",
                  kernel, words, sb_str(&perr));
        sb_free(&cubin);
        sb_free(&perr);
    }
    sb_free(&err);
    sb_free(&terr);
    diag_free(&d);
    ir_module_free(m);
    ast_file_free(ast);
}

static void ptx_of(const char *name, const char *text, const char *kernel, BackendArch arch, Strbuf *ptx) {
    ptx_with(name, text, kernel, NULL, 0, arch, ptx);
}

static bool has(Strbuf *ptx, const char *s) { return strstr(sb_str(ptx), s) != NULL; }

/* How many times s occurs in the PTX. */
static int count_of(Strbuf *ptx, const char *s) {
    int n = 0;
    for (const char *p = strstr(sb_str(ptx), s); p; p = strstr(p + 1, s)) n++;
    return n;
}

/* The defaults of gemm_fp8.tile (BM = BN = BK = 128) on sm_90a: wgmma m64n128k32 .e4m3 from both
 * rings through descriptors (no ldmatrix, no mma.sync), four k steps of 32 per 128-wide K tile, for
 * each of the two 64-row repeats of one warpgroup (gemm_fp8, 4 warps: 8 wgmma per dot) or once per
 * warpgroup (gemm_fp8_block_f32, 8 warps: 4); gemm_fp8's dot is asynchronous (wait_group 1 in the
 * loop), the block-scaled one's waits at once (its partial is promoted with the scales after every
 * K block). */
Test(codegen_fp8, stdlib_gemm_fp8_on_wgmma) {
    size_t len;
    char *text = test_read_source_file("stdlib/core/gemm_fp8.tile", &len);
    static const char *kernels[] = {"gemm_fp8", "gemm_fp8_block_f32"};
    for (int i = 0; i < 2; i++) {
        Strbuf ptx = {0};
        ptx_of("gemm_fp8.tile", text, kernels[i], BACKEND_ARCH_SM90A, &ptx);
        cr_assert_eq(count_of(&ptx, "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3"), i == 0 ? 8 : 4, "%s",
                     kernels[i]);
        cr_assert_not(has(&ptx, "mma.sync"), "%s", kernels[i]);
        cr_assert_not(has(&ptx, "ldmatrix"), "%s: wgmma reads both operands through descriptors", kernels[i]);
        cr_assert_eq(has(&ptx, "wgmma.wait_group.sync.aligned 1;"), i == 0, "%s", kernels[i]);
        sb_free(&ptx);
    }
    free(text);
}

/* A kernel `name` whose 3-stage loop accumulates a[0:64, k:128] @ b's 128 x 64 slice into a 64 x 64
 * tile of acc_type, b given [N, K] (k_major: read through a transpose) or [K, N]. */
static void loop_source(char *out, size_t cap, const char *name, const char *elem, const char *acc_type,
                        bool k_major) {
    snprintf(out, cap,
             "kernel %s(a: tensor<%s>[M, K], b: tensor<%s>[%s], c: tensor<%s>[M, N]) grid(1)\n"
             "{\n  var acc = zeros<%s>[64, 64];\n"
             "  for k in 0 .. K step 128 pipeline(3) {\n"
             "    acc = dot(a[0 :+ 64, k :+ 128], %s, acc);\n  }\n"
             "  c[0 :+ 64, 0 :+ 64] = acc;\n}\n",
             name, elem, elem, k_major ? "N, K" : "K, N", acc_type, acc_type,
             k_major ? "transpose(b[0 :+ 64, k :+ 128])" : "b[k :+ 128, 0 :+ 64]");
}

/* An e5m2 loop with K steps of 128 and b given [N, K]: wgmma m64n64k32 .e5m2 (assembled by ptxas
 * where it exists); a row-major [K, N] b (n-major, which 8-bit wgmma cannot read) keeps mma.sync. */
Test(codegen_fp8, e5m2_dot_on_wgmma_only_when_b_is_k_major) {
    char kmajor[512], nmajor[512];
    loop_source(kmajor, sizeof kmajor, "f8loop", "f8e5m2", "f32", true);
    loop_source(nmajor, sizeof nmajor, "f8loop", "f8e5m2", "f32", false);
    Strbuf ptx = {0};
    ptx_of("f8loop.tile", kmajor, "f8loop", BACKEND_ARCH_SM90A, &ptx);
    cr_assert_eq(count_of(&ptx, "wgmma.mma_async.sync.aligned.m64n64k32.f32.e5m2.e5m2"), 4);
    cr_assert_not(has(&ptx, "mma.sync"));
    sb_free(&ptx);
    ptx_of("f8loop.tile", nmajor, "f8loop", BACKEND_ARCH_SM90A, &ptx);
    cr_assert_not(has(&ptx, "wgmma"));
    cr_assert(has(&ptx, "mma.sync.aligned.m16n8k32.row.col.f32.e5m2.e5m2.f32"));
}

/* An i8 GEMM with b given [N, K] and K steps of 128: wgmma m64n64k32 .s32.s8.s8 on sm_90a (its
 * integer form: no imm-scale operands, s32 accumulators in "r" registers), m16n8k32 .s8 on sm_80. */
Test(codegen_fp8, i8_dot_on_wgmma_when_b_is_k_major) {
    char src[512];
    loop_source(src, sizeof src, "i8gemm", "i8", "i32", true);
    Strbuf ptx = {0};
    ptx_of("i8k.tile", src, "i8gemm", BACKEND_ARCH_SM90A, &ptx);
    cr_assert_eq(count_of(&ptx, "wgmma.mma_async.sync.aligned.m64n64k32.s32.s8.s8"), 4);
    cr_assert_not(has(&ptx, "mma.sync"));
    sb_free(&ptx);
    ptx_of("i8k.tile", src, "i8gemm", BACKEND_ARCH_SM80, &ptx);
    cr_assert(has(&ptx, "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32") && !has(&ptx, "wgmma"));
    sb_free(&ptx);
}

Test(codegen_fp8, f32_to_f8_conversions) {
    const char *src = "kernel conv(x: tensor<f32>[N], y: tensor<f8e4m3>[N], z: tensor<f8e5m2>[N]) grid(cdiv(N, 128))\n"
                      "{\n  let i = block_id(0) * 128;\n  y[i :+ 128] = cast<f8e4m3>(x[i :+ 128]);\n"
                      "  z[i :+ 128] = cast<f8e5m2>(x[i :+ 128] * 2.0);\n}\n";
    Strbuf ptx = {0};
    ptx_of("conv.tile", src, "conv", BACKEND_ARCH_SM90A, &ptx);
    cr_assert(has(&ptx, "cvt.rn.satfinite.e4m3x2.f32"), "%s", sb_str(&ptx));
    cr_assert_not(has(&ptx, "e5m2x2"), "e5m2 overflows to infinity (the VM's rule), not satfinite");
    cr_assert_not(has(&ptx, "call"), "the conversions are inlined");
    sb_free(&ptx);
    ptx_of("conv.tile", src, "conv", BACKEND_ARCH_SM80, &ptx);
    cr_assert_not(has(&ptx, "cvt.rn.satfinite"), "sm_80 has no f8 cvt");
    sb_free(&ptx);
}
#else
Test(codegen_fp8, without_llvm) { cr_skip_test("built without LLVM"); }
#endif
