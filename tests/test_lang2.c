/*
 * test_lang2.c: the constructs of issue 8 on the VM: atomics that return the old value, fence,
 * argmax/argmin, sort/argsort, topk/argtopk, Philox randint/rand/randn and the batched dot, each
 * against a C reference (tests/lang2/checks.h, shared with the GPU suite), plus the Philox
 * reference itself against Random123's known-answer vectors and the IR the constructs lower to;
 * and the kernels of examples/kernels/ (tests/lang2/example_checks.h): the top-k MoE router, the
 * multi-block stable counting sort (atomic tickets and look-back), seeded dropout and layer-norm
 * backward with its lock-guarded partial sums.
 */
#include "lang2/checks.h"
#include "lang2/example_checks.h"

#include "frontend/frontend.h"
#include "ir/ir.h"
#include "passes/passes.h"
#include "runtime/runtime.h"
#include "testutil.h"

static tile_context *ctx;

static void setup(void) { cr_assert_eq(tile_context_create(TILE_DEVICE_VM, 0, &ctx), TILE_OK); }
static void teardown(void) { tile_context_destroy(ctx); }

TestSuite(lang2, .init = setup, .fini = teardown, .timeout = 600);

Test(lang2, atomics_i32) {
    for (int op = OP_ADD_; op <= OP_XCHG_; op++) check_rmw_int(ctx, "rmw_i32", TILE_I32, 32, true, op);
}

Test(lang2, atomics_u32) {
    for (int op = OP_ADD_; op <= OP_XCHG_; op++) check_rmw_int(ctx, "rmw_u32", TILE_U32, 32, false, op);
}

Test(lang2, atomics_i64) {
    for (int op = OP_ADD_; op <= OP_XCHG_; op++) check_rmw_int(ctx, "rmw_i64", TILE_I64, 64, true, op);
}

Test(lang2, atomics_u64) {
    for (int op = OP_ADD_; op <= OP_XCHG_; op++) check_rmw_int(ctx, "rmw_u64", TILE_UINT(64), 64, false, op);
}

Test(lang2, atomics_f32) {
    int ops[] = {OP_ADD_, OP_MAX_, OP_MIN_, OP_XCHG_};
    for (int i = 0; i < 4; i++) check_rmw_f32(ctx, ops[i]);
}

Test(lang2, atomics_f16_bf16_add) {
    check_add_half(ctx, "add_f16", TILE_F16);
    check_add_half(ctx, "add_bf16", TILE_BF16);
}

Test(lang2, atomic_cas) { check_cas(ctx); }

Test(lang2, spin_lock_and_scalar_tickets) { check_locked_count(ctx); }

Test(lang2, argmax_argmin) { check_arg_extremes(ctx); }

Test(lang2, sort_argsort) {
    check_sort_rows(ctx, false);
    check_sort_rows(ctx, true);
    check_sort_cols(ctx);
    check_sort_u32(ctx);
    check_int_ranks(ctx);
    check_middle_axis(ctx);
}

Test(lang2, topk_argtopk) {
    check_topk(ctx, 3);
    check_topk(ctx, 4);
    check_topk(ctx, 1);
    check_topk(ctx, 16);
}

/* Random123's known-answer vectors for philox4x32-10 (kat_vectors). */
Test(lang2, philox_reference_known_answers) {
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e, 0xa20bc7c6,
         0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb, 0x5001e420,
         0x24126ea1},
    };
    for (int v = 0; v < 3; v++) {
        uint32_t ctr[4] = {kat[v][0], kat[v][1], kat[v][2], kat[v][3]};
        ref_philox(ctr, kat[v][4], kat[v][5]);
        for (int i = 0; i < 4; i++) cr_assert_eq(ctr[i], kat[v][6 + i], "vector %d word %d: %08x", v, i, ctr[i]);
    }
}

/* The VM's randint at counter (offset, 0, 0, 0) and key 0 is the first known answer. */
Test(lang2, randint_known_answer) {
    uint32_t u = 1;
    void *du = dev_copy(ctx, NULL, 4);
    tile_arg args[3] = {{.kind = TILE_ARG_INT, .i = 0}, {.kind = TILE_ARG_INT, .i = 0}, targ(TILE_U32, du, 1, 1, 0, 0)};
    lang2_launch(ctx, lang2_kernel(ctx, "philox_scalar", NULL, 0), args, 3);
    dev_back(ctx, &u, du, 4);
    cr_assert_eq(u, 0x6627e8d5u, "randint(0, 0) = %08x", u);
}

Test(lang2, rand_randn_randint) {
    check_philox(ctx, 0, 0, 300, 2e-5);
    check_philox(ctx, 42, 1000, 256, 2e-5);
    check_philox(ctx, -1, -77, 200, 2e-5);                  /* seed high word 0xffffffff, negative offsets */
    check_philox(ctx, 0x123456789abcdefll, 1 << 30, 130, 2e-5);
}

Test(lang2, batched_dot) {
    check_bdot_f32(ctx);
    check_bdot_bf16(ctx);
    check_bdot_i8(ctx);
}

/* Every kernel of the file, lowered and run through the pipeline with the verifier after each
 * pass, on the VM path and on the GPU path (layouts), with the given constants (for the kernels
 * whose names start with prefix). */
static void verify_file(const char *rel, const char *prefix, const ConstBinding *c, size_t nc) {
    size_t len;
    char *text = test_read_source_file(rel, &len);
    DiagList d = {0};
    AstFile *ast = parse_source(rel, text, len, &d);
    cr_assert_not_null(ast, "%s", sb_str(&d.text));
    for (uint32_t i = 0; i < ast->decls.len; i++) {
        const AstNode *decl = ast->decls.items[i];
        if (decl->kind != AST_KERNEL || strncmp(decl->name, prefix, strlen(prefix)) != 0) continue;
        for (int gpu = 0; gpu < 2; gpu++) {
            IrModule *m = ir_module_new();
            IrFunction *f = lower_kernel(ast, decl->name, c, nc, m, &d);
            cr_assert_not_null(f, "%s: %s", decl->name, sb_str(&d.text));
            PassOptions opt = {.verify_each = true, .gpu = gpu != 0, .target = {.num_warps = 4}};
            cr_assert(passes_run(m, &opt, &d), "%s (gpu %d): %s", decl->name, gpu, sb_str(&d.text));
            ir_module_free(m);
        }
    }
    ast_file_free(ast);
    diag_free(&d);
    free(text);
}

Test(lang2, ir_verifies_after_every_pass) {
    verify_file("tests/lang2/kernels.tile", "", NULL, 0);
    for (int op = 1; op <= 5; op++) {
        verify_file("tests/lang2/kernels.tile", "rmw_i", &(ConstBinding){.name = "OP", .i = op}, 1);
        verify_file("tests/lang2/kernels.tile", "rmw_u", &(ConstBinding){.name = "OP", .i = op}, 1);
        if (op != 3 && op != 4) verify_file("tests/lang2/kernels.tile", "rmw_f", &(ConstBinding){.name = "OP", .i = op}, 1);
    }
    verify_file("tests/lang2/kernels.tile", "sort_rows", &(ConstBinding){.name = "DESC", .i = 1}, 1);
    const char *examples[] = {"moe_router", "counting_sort", "dropout", "layernorm_backward"};
    for (int i = 0; i < 4; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "examples/kernels/%s.tile", examples[i]);
        verify_file(rel, "", NULL, 0);
    }
}

/* The printed IR names the new ops and their memory orders. */
Test(lang2, ir_prints_atomics_and_fence) {
    size_t len;
    char *text = test_read_source_file("tests/lang2/kernels.tile", &len);
    DiagList d = {0};
    AstFile *ast = parse_source("kernels.tile", text, len, &d);
    cr_assert_not_null(ast, "%s", sb_str(&d.text));
    IrFunction *k = NULL;
    RtCompileOptions opt = {0};
    IrModule *m = rt_compile(ast, "locked_count", NULL, 0, &opt, &d, &k);
    cr_assert_not_null(m, "%s", sb_str(&d.text));
    Strbuf out = {0};
    ir_print_function(k, &out);
    cr_assert_not_null(strstr(sb_str(&out), "atomic_cas "), "%s", sb_str(&out));
    cr_assert_not_null(strstr(sb_str(&out), "atomic_rmw xchg "), "%s", sb_str(&out));
    cr_assert_not_null(strstr(sb_str(&out), "fence acq_rel"), "%s", sb_str(&out));
    cr_assert_not_null(strstr(sb_str(&out), "atomic_rmw add "), "%s", sb_str(&out));
    sb_free(&out);
    ir_module_free(m);
    ast_file_free(ast);
    diag_free(&d);
    free(text);
}

/* ---- the examples ---- */
Test(lang2, moe_router) {
    check_moe_router(ctx, 100, 8, 2);
    check_moe_router(ctx, 37, 16, 3);
    check_moe_router(ctx, 16, 64, 8);
}

Test(lang2, counting_sort) {
    check_counting_sort(ctx, 1, 256);
    check_counting_sort(ctx, 1000, 256);
    check_counting_sort(ctx, 5000, 128);
}

/* the GPU starts blocks in no promised order: with the blocks started last first, a block that
   used block_id(0) for its data instead of its ticket would count the wrong blocks before it */
Test(lang2, counting_sort_blocks_reversed) {
    setenv("TILE_VM_BLOCK_ORDER", "reverse", 1);
    check_counting_sort(ctx, 5000, 128);
    check_counting_sort(ctx, 777, 128);
    unsetenv("TILE_VM_BLOCK_ORDER");
}

Test(lang2, dropout) {
    check_dropout(ctx, 3000, 0.5f, 123);
    check_dropout(ctx, 1024, 0.1f, -5);
}

Test(lang2, layernorm_backward) {
    check_layernorm_backward(ctx, 40, 300);
    check_layernorm_backward(ctx, 7, 1024);
}
