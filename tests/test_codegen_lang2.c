/*
 * test_codegen_lang2.c: every kernel of tests/lang2/kernels.tile (the constructs of issue 8)
 * lowered for sm_80 and sm_90a and assembled by ptxas (skipped where ptxas is not installed),
 * with the instructions that must appear: atom with the memory order and gpu scope asked for,
 * cas, fence.acq_rel.gpu, f16/bf16 atom.add.noftz, mul.hi for Philox, mma.sync for a batched
 * bf16 dot.
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
TestSuite(codegen_lang2, .timeout = 900);

/* The PTX of one kernel (with constants) for arch, assembled by ptxas when it exists. */
static void file_kernel_ptx(const char *file, const char *kernel, const ConstBinding *c, size_t nc, BackendArch arch,
                            Strbuf *ptx) {
    size_t len;
    char *text = test_read_source_file(file, &len);
    DiagList d = {0};
    AstFile *ast = parse_source("kernels.tile", text, len, &d);
    cr_assert_not_null(ast, "%s", sb_str(&d.text));
    IrFunction *k = NULL;
    RtCompileOptions opt = {.gpu = true};
    IrModule *m = rt_compile(ast, kernel, c, nc, &opt, &d, &k);
    cr_assert_not_null(m, "%s: %s", kernel, sb_str(&d.text));
    Strbuf err = {0};
    CodegenInfo info;
    CodegenOptions copt = {.arch = arch};
    cr_assert(backend_compile_ptx(k, &copt, ptx, &info, &err), "%s for %s: %s", kernel, backend_arch_name(arch), sb_str(&err));
    char path[1024];
    if (backend_find_ptxas(path, sizeof path, NULL)) {
        Strbuf cubin = {0}, perr = {0};
        cr_assert(backend_ptx_to_cubin(ptx->data, ptx->len, arch, CUBIN_TOOL_PTXAS, &cubin, &perr), "ptxas on %s for %s: %s",
                  kernel, backend_arch_name(arch), sb_str(&perr));
        sb_free(&cubin);
        sb_free(&perr);
    }
    sb_free(&err);
    ir_module_free(m);
    ast_file_free(ast);
    diag_free(&d);
    free(text);
}

static void kernel_ptx(const char *kernel, const ConstBinding *c, size_t nc, BackendArch arch, Strbuf *ptx) {
    file_kernel_ptx("tests/lang2/kernels.tile", kernel, c, nc, arch, ptx);
}

static void expect(const char *kernel, int op, BackendArch arch, const char *const *needles) {
    Strbuf ptx = {0};
    ConstBinding c = {.name = "OP", .i = op};
    kernel_ptx(kernel, op >= 0 ? &c : NULL, op >= 0 ? 1 : 0, arch, &ptx);
    for (int i = 0; needles[i]; i++)
        cr_assert_not_null(strstr(sb_str(&ptx), needles[i]), "%s (OP=%d) for %s has no '%s'", kernel, op,
                           backend_arch_name(arch), needles[i]);
    sb_free(&ptx);
}

Test(codegen_lang2, every_kernel_every_arch) {
    static const char *kernels[] = {"add_f16", "add_bf16", "cas_i32", "locked_count", "arg_extremes", "sort_rows",
                                    "sort_cols", "sort_u32", "int_ranks", "middle_axis", "topk_rows", "philox", "philox_scalar", "bdot_f32",
                                    "bdot_bf16", "bdot_i8"};
    for (int a = 0; a < BACKEND_ARCH_COUNT; a++) {
        for (size_t i = 0; i < sizeof kernels / sizeof *kernels; i++) {
            Strbuf ptx = {0};
            kernel_ptx(kernels[i], NULL, 0, (BackendArch)a, &ptx);
            sb_free(&ptx);
        }
        static const char *rmw[] = {"rmw_i32", "rmw_u32", "rmw_i64", "rmw_u64", "rmw_f32"};
        for (int r = 0; r < 5; r++)
            for (int op = 0; op <= 5; op++) {
                if (r == 4 && (op == 3 || op == 4)) continue; /* no bitwise atomics on floats */
                Strbuf ptx = {0};
                ConstBinding c = {.name = "OP", .i = op};
                kernel_ptx(rmw[r], &c, 1, (BackendArch)a, &ptx);
                sb_free(&ptx);
            }
    }
}

Test(codegen_lang2, atomic_instructions) {
    for (int a = 0; a < BACKEND_ARCH_COUNT; a++) {
        BackendArch arch = (BackendArch)a;
        expect("rmw_i32", 0, arch, (const char *const[]){"atom.global.add.u32", NULL});
        expect("rmw_i32", 1, arch, (const char *const[]){"atom.global.max.s32", NULL});
        expect("rmw_u32", 2, arch, (const char *const[]){"atom.global.min.u32", NULL});
        expect("rmw_i64", 3, arch, (const char *const[]){"atom.global.and.b64", NULL});
        expect("rmw_i32", 4, arch, (const char *const[]){"fence.acq_rel.gpu", "atom.global.or.b32", NULL});
        expect("rmw_i64", 5, arch, (const char *const[]){"atom.global.exch.b64", NULL});
        expect("rmw_u64", 1, arch, (const char *const[]){"atom.global.max.u64", NULL});
        expect("rmw_f32", 0, arch, (const char *const[]){"atom.global.add.f32", NULL});
        expect("cas_i32", -1, arch, (const char *const[]){"atom.acq_rel.gpu.global.cas.b32", NULL});
        expect("locked_count", -1, arch, (const char *const[]){"fence.acq_rel.gpu", "atom.acq_rel.gpu.global.cas.b32", NULL});
        expect("add_f16", -1, arch, (const char *const[]){"atom.global.add.noftz.f16", NULL});
        expect("philox", -1, arch, (const char *const[]){"mul.hi.u32", NULL});
        expect("bdot_bf16", -1, arch, (const char *const[]){"mma.sync", NULL});
    }
    expect("add_bf16", -1, BACKEND_ARCH_SM90A, (const char *const[]){"atom.global.add.noftz.bf16", NULL});
}
/* The kernels of examples/kernels/. */
Test(codegen_lang2, examples) {
    static const char *const kernels[][2] = {
        {"moe_router.tile", "moe_router"}, {"counting_sort.tile", "count_blocks"}, {"counting_sort.tile", "scatter"},
        {"dropout.tile", "dropout"}, {"layernorm_backward.tile", "layernorm_bwd_dx"},
        {"layernorm_backward.tile", "layernorm_bwd_dwdb"},
    };
    for (int a = 0; a < BACKEND_ARCH_COUNT; a++)
        for (size_t i = 0; i < sizeof kernels / sizeof *kernels; i++) {
            char file[256];
            snprintf(file, sizeof file, "examples/kernels/%s", kernels[i][0]);
            Strbuf ptx = {0};
            file_kernel_ptx(file, kernels[i][1], NULL, 0, (BackendArch)a, &ptx);
            sb_free(&ptx);
        }
}
#else
Test(codegen_lang2, without_llvm) { cr_skip_test("built without LLVM"); }
#endif
