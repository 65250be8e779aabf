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

/* An e5m2 loop with K steps of 128 and b given [N, K]: wgmma m64n64k32 .e5m2 (assembled by ptxas
 * where it exists); a row-major [K, N] b (n-major, which 8-bit wgmma cannot read) keeps mma.sync. */
Test(codegen_fp8, e5m2_dot_on_wgmma_only_when_b_is_k_major) {
    const char *kmajor = "kernel f8loop(a: tensor<f8e5m2>[M, K], b: tensor<f8e5m2>[N, K], c: tensor<f32>[M, N]) grid(1)\n"
                         "{\n  var acc = zeros<f32>[64, 64];\n"
                         "  for k in 0 .. K step 128 pipeline(3) {\n"
                         "    acc = dot(a[0 :+ 64, k :+ 128], transpose(b[0 :+ 64, k :+ 128]), acc);\n  }\n"
                         "  c[0 :+ 64, 0 :+ 64] = acc;\n}\n";
    const char *nmajor = "kernel f8loop(a: tensor<f8e5m2>[M, K], b: tensor<f8e5m2>[K, N], c: tensor<f32>[M, N]) grid(1)\n"
                         "{\n  var acc = zeros<f32>[64, 64];\n"
                         "  for k in 0 .. K step 128 pipeline(3) {\n"
                         "    acc = dot(a[0 :+ 64, k :+ 128], b[k :+ 128, 0 :+ 64], acc);\n  }\n"
                         "  c[0 :+ 64, 0 :+ 64] = acc;\n}\n";
    Strbuf ptx = {0};
    ptx_of("f8loop.tile", kmajor, "f8loop", BACKEND_ARCH_SM90A, &ptx);
    cr_assert_eq(count_of(&ptx, "wgmma.mma_async.sync.aligned.m64n64k32.f32.e5m2.e5m2"), 4);
    cr_assert_not(has(&ptx, "mma.sync"));
    sb_free(&ptx);
    ptx_of("f8loop.tile", nmajor, "f8loop", BACKEND_ARCH_SM90A, &ptx);
    cr_assert_not(has(&ptx, "wgmma"));
    cr_assert(has(&ptx, "mma.sync.aligned.m16n8k32.row.col.f32.e5m2.e5m2.f32"));
    sb_free(&ptx);
}

/* K steps of 64 (64-byte rows, less than the 128 bytes of a wgmma row of 8-bit elements) keep
 * mma.sync m16n8k32 on sm_90a, its operands through ldmatrix from the rings. */
Test(codegen_fp8, stdlib_gemm_fp8_on_m16n8k32) {
    size_t len;
    char *text = test_read_source_file("stdlib/core/gemm_fp8.tile", &len);
    static const char *kernels[] = {"gemm_fp8", "gemm_fp8_f32"};
    const ConstBinding bk64 = {.name = "BK", .i = 64};
    for (int i = 0; i < 2; i++) {
        Strbuf ptx = {0};
        ptx_with("gemm_fp8.tile", text, kernels[i], &bk64, 1, BACKEND_ARCH_SM90A, &ptx);
        cr_assert_not(has(&ptx, "wgmma"), "%s", kernels[i]);
        cr_assert(has(&ptx, "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32"), "%s: no f8 mma", kernels[i]);
        cr_assert(has(&ptx, ".version 8.4"), "%s: an f8 mma needs PTX ISA 8.4", kernels[i]);
        cr_assert(has(&ptx, "ldmatrix.sync.aligned.m8n8.x4.shared.b16"), "%s", kernels[i]);
        cr_assert_not(has(&ptx, ".trans"), "%s: ldmatrix .trans cannot transpose bytes", kernels[i]);
        cr_assert(has(&ptx, "cp.async"), "%s: the operands come through rings", kernels[i]);
        sb_free(&ptx);
    }
    free(text);
}

/* sm_80 has no f8 mma: the dot runs on m16n8k16 bf16 with the operands widened (exact), staged
 * through the scratch, in the arch's own PTX ISA. */
Test(codegen_fp8, f8_dot_widened_to_bf16_for_sm80) {
    const char *src = "kernel f8loop(a: tensor<f8e4m3>[M, K], b: tensor<f8e4m3>[N, K], c: tensor<f32>[M, N]) grid(1)\n"
                      "{\n  var acc = zeros<f32>[64, 32];\n"
                      "  for k in 0 .. K step 32 pipeline(2) {\n"
                      "    acc = dot(a[0 :+ 64, k :+ 32], transpose(b[0 :+ 32, k :+ 32]), acc);\n  }\n"
                      "  c[0 :+ 64, 0 :+ 32] = acc;\n}\n";
    Strbuf ptx = {0};
    ptx_of("f8loop.tile", src, "f8loop", BACKEND_ARCH_SM80, &ptx);
    cr_assert(has(&ptx, "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"));
    cr_assert_not(has(&ptx, "m16n8k32"));
    cr_assert_not(has(&ptx, ".version 8.4"));
    sb_free(&ptx);
    ptx_of("f8loop.tile", src, "f8loop", BACKEND_ARCH_SM90A, &ptx);
    cr_assert(has(&ptx, "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32"));
    sb_free(&ptx);
}

Test(codegen_fp8, i8_dot_on_m16n8k32_s8) {
    const char *src = "kernel i8gemm(a: tensor<i8>[M, K], b: tensor<i8>[K, N], c: tensor<i32>[M, N])\n"
                      "  grid(cdiv(M, 64) * cdiv(N, 64))\n{\n"
                      "  let m0 = (block_id(0) / cdiv(N, 64)) * 64;\n  let n0 = (block_id(0) % cdiv(N, 64)) * 64;\n"
                      "  var acc = zeros<i32>[64, 64];\n"
                      "  for k in 0 .. K step 64 pipeline(3) {\n"
                      "    acc = dot(a[m0 :+ 64, k :+ 64], b[k :+ 64, n0 :+ 64], acc);\n  }\n"
                      "  c[m0 :+ 64, n0 :+ 64] = acc;\n}\n";
    for (int a = 0; a < BACKEND_ARCH_COUNT; a++) {
        Strbuf ptx = {0};
        ptx_of("i8.tile", src, "i8gemm", (BackendArch)a, &ptx);
        cr_assert(has(&ptx, "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32"), "%s", backend_arch_name((BackendArch)a));
        /* b [K, N] row-major is staged k-major by the code generator: no .trans either */
        cr_assert_not(has(&ptx, ".trans"), "%s", backend_arch_name((BackendArch)a));
        sb_free(&ptx);
    }
}

/* An i8 GEMM with b given [N, K] and K steps of 128: wgmma m64n64k32 .s32.s8.s8 on sm_90a (its
 * integer form: no imm-scale operands, s32 accumulators in "r" registers), m16n8k32 .s8 on sm_80. */
Test(codegen_fp8, i8_dot_on_wgmma_when_b_is_k_major) {
    const char *src = "kernel i8gemm(a: tensor<i8>[M, K], b: tensor<i8>[N, K], c: tensor<i32>[M, N]) grid(1)\n"
                      "{\n  var acc = zeros<i32>[64, 64];\n"
                      "  for k in 0 .. K step 128 pipeline(3) {\n"
                      "    acc = dot(a[0 :+ 64, k :+ 128], transpose(b[0 :+ 64, k :+ 128]), acc);\n  }\n"
                      "  c[0 :+ 64, 0 :+ 64] = acc;\n}\n";
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
