/*
 * test_codegen_odd.c: the GPU code of tiles whose size is not a power of two, and of masked
 * stores, judged by its structure (no GPU needed; tests/gpu/test_kernels_gpu.c runs the same
 * kernels on the GPU against the VM).
 *
 * Such a tile has an odd number of elements per thread, which the vector accesses cannot
 * cover, so every element is a scalar access. These used to be a branch around each access,
 * and LLVM's time grew faster than linearly in the blocks (softmax with BN=255 took 10-30 s);
 * they are predicated now. Speed is not timed here: the tests count the conditional branches
 * of the LLVM IR and the PTX, which must not grow with the tile (a regression to per-element
 * branches gives hundreds), check that the predicated forms assemble for every element width,
 * and that a masked store keeps the vector stores of the same store without its mask.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"

static tile_context *ctx;

static void setup(void) {
#ifndef TILE_HAVE_LLVM
    cr_skip_test("built without the LLVM backend");
#endif
    ctx = test_vm_context();
}
static void teardown(void) { tile_context_destroy(ctx); }

TestSuite(codegen_odd, .init = setup, .fini = teardown, .timeout = 300);

/* Kernels whose tiles have sizes B (odd by default) in every element width the stores take. */
static const char odd_source[] =
    "kernel copy_widths<B = 255>(a: tensor<i8>[N], b: tensor<bf16>[N], c: tensor<f32>[N], d: tensor<i64>[N],\n"
    "                            e: tensor<bool>[N], f: tensor<f16>[N], g: tensor<f64>[N],\n"
    "                            oa: tensor<i8>[N], ob: tensor<bf16>[N], oc: tensor<f32>[N], od: tensor<i64>[N],\n"
    "                            oe: tensor<bool>[N], of: tensor<f16>[N], og: tensor<f64>[N])\n"
    "  grid(cdiv(N, B))\n"
    "{\n"
    "  let i = block_id(0) * B;\n"
    "  oa[i :+ B] = a[i :+ B] + 1;\n"
    "  ob[i :+ B] = b[i :+ B] * 2.0;\n"
    "  oc[i :+ B] = c[i :+ B] * 2.0;\n"
    "  od[i :+ B] = d[i :+ B] - 3;\n"
    "  oe[i :+ B] = !e[i :+ B];\n"
    "  of[i :+ B] = f[i :+ B] + 1.0;\n"
    "  og[i :+ B] = g[i :+ B] * 0.5;\n"
    "}\n"
    "kernel masked_rows<BM = 16, BN = 64>(x: tensor<f32>[M, N], y: tensor<f32>[M, N])\n"
    "  grid(cdiv(M, BM))\n"
    "{\n"
    "  let r0 = block_id(0) * BM;\n"
    "  store(y[r0 :+ BM, 0 :+ BN], x[r0 :+ BM, 0 :+ BN], mask=expand(r0 + arange(BM) < M - 1, 1));\n"
    "}\n"
    "kernel masked_positive<B = 1024>(x: tensor<f32>[N], y: tensor<f32>[N])\n"
    "  grid(cdiv(N, B))\n"
    "{\n"
    "  let i = block_id(0) * B;\n"
    "  let v = x[i :+ B];\n"
    "  store(y[i :+ B], v, mask=v > 0.0);\n"
    "}\n";

/* The text of kernel (from file, or odd_source when file is NULL) with one constant set. */
static char *emit_text(const char *file, const char *kernel, const char *name, int64_t value, tile_emit_kind kind,
                       const char *arch, size_t *len) {
    tile_program *prog = NULL;
    if (file) prog = test_load_program(ctx, file);
    else
        cr_assert_eq(tile_program_from_string(ctx, "odd.tile", odd_source, strlen(odd_source), &prog), TILE_OK, "%s",
                     tile_context_message(ctx));
    tile_constant c = {.name = name, .i = value};
    tile_emit_options o = {.arch = arch};
    char *text = NULL;
    tile_status st = tile_program_emit(prog, kernel, name ? &c : NULL, name ? 1 : 0, kind, &o, &text, len);
    if (st == TILE_ERROR_UNSUPPORTED && kind == TILE_EMIT_CUBIN) {
        char reason[512];
        snprintf(reason, sizeof reason, "%s", tile_context_message(ctx));
        tile_program_destroy(prog);
        cr_skip_test("no assembler: %s", reason);
    }
    cr_assert_eq(st, TILE_OK, "%s %s=%lld %s: %s", kernel, name ? name : "-", (long long)value, arch,
                 tile_context_message(ctx));
    tile_program_destroy(prog);
    return text;
}

static int count(const char *text, const char *what) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, what)); p += strlen(what)) n++;
    return n;
}

/* Conditional branches of the LLVM IR and the PTX of an odd-sized kernel: the control flow of
 * the kernel's own loops and ifs (and its reductions), the same for every tile size. */
static void check_branches(const char *file, const char *kernel, const char *name, int64_t value, int bound) {
    size_t len;
    char *ll = emit_text(file, kernel, name, value, TILE_EMIT_LLVM, "sm_80", &len);
    int llvm_branches = count(ll, "br i1 ");
    tile_string_free(ll);
    char *ptx = emit_text(file, kernel, name, value, TILE_EMIT_PTX, "sm_90a", &len);
    int ptx_branches = count(ptx, " bra");
    tile_string_free(ptx);
    cr_log_info("%s %s=%lld: %d conditional branches in LLVM IR, %d in PTX", kernel, name, (long long)value,
                llvm_branches, ptx_branches);
    cr_assert_leq(llvm_branches, bound, "%s %s=%lld: %d conditional branches in the LLVM IR (per-element branches?)",
                  kernel, name, (long long)value, llvm_branches);
    cr_assert_leq(ptx_branches, bound, "%s %s=%lld: %d branches in the PTX (per-element branches?)", kernel, name,
                  (long long)value, ptx_branches);
}

Test(codegen_odd, softmax_branches_do_not_grow_with_the_tile) {
    /* the per-element form had 1280 conditional branches at BN=255 */
    check_branches("stdlib/core/softmax.tile", "softmax", "BN", 127, 24);
    check_branches("stdlib/core/softmax.tile", "softmax", "BN", 255, 24);
}

Test(codegen_odd, layernorm_and_scans_branches_do_not_grow_with_the_tile) {
    check_branches("stdlib/core/layernorm.tile", "layernorm", "BN", 255, 24);
    check_branches("stdlib/core/reduce.tile", "cumsum_rows", "BN", 255, 24);
    check_branches("stdlib/core/reduce.tile", "sum_rows", "BN", 127, 24);
    check_branches(NULL, "copy_widths", "B", 255, 8);
}

/* The predicated loads and stores of every element width assemble (ptxas or nvJitLink); at
 * B = 31, as ptxas needs seconds for each access of 255 elements per thread. */
Test(codegen_odd, predicated_accesses_assemble_for_every_width) {
    const char *archs[] = {"sm_80", "sm_90a"};
    for (int a = 0; a < 2; a++) {
        size_t len;
        char *ptx = emit_text(NULL, "copy_widths", "B", 31, TILE_EMIT_PTX, archs[a], &len);
        const char *widths[] = {"st.global.b8", "st.global.b16", "st.global.b32", "st.global.b64"};
        for (int w = 0; w < 4; w++) cr_assert(strstr(ptx, widths[w]), "%s: no predicated %s", archs[a], widths[w]);
        cr_assert(strstr(ptx, "tile_zero"), "%s: masked-off loads read tile_zero", archs[a]);
        tile_string_free(ptx);
        char *cubin = emit_text(NULL, "copy_widths", "B", 31, TILE_EMIT_CUBIN, archs[a], &len);
        cr_assert(len > 4 && memcmp(cubin, "\177ELF", 4) == 0, "%s: not a cubin", archs[a]);
        tile_string_free(cubin);
    }
}

/* A tile of 2^k elements keeps its branches (the code of the tuned kernels is unchanged). */
Test(codegen_odd, power_of_two_tiles_are_not_predicated) {
    size_t len;
    char *ptx = emit_text(NULL, "copy_widths", "B", 256, TILE_EMIT_PTX, "sm_80", &len);
    cr_assert_null(strstr(ptx, "tile_zero"));
    cr_assert_null(strstr(ptx, "@%p1 st.global"));
    tile_string_free(ptx);
}

/* A masked store is vectorized where its mask holds over a whole vector group: 16-byte
 * stores for rows (a mask uniform along them) and for an element-wise mask. */
Test(codegen_odd, masked_stores_are_vectorized) {
    const char *kernels[] = {"masked_rows", "masked_positive"};
    for (int k = 0; k < 2; k++) {
        size_t len;
        char *ptx = emit_text(NULL, kernels[k], NULL, 0, TILE_EMIT_PTX, "sm_80", &len);
        cr_assert(strstr(ptx, "st.global.v4.b32"), "%s: no 16-byte store in:\n%s", kernels[k], ptx);
        tile_string_free(ptx);
    }
}
