/*
 * test_pipeline_specialize.c: the loop's own choice of warp specialization,
 * `for ... pipeline(N, specialize = 1)` (ask) and `specialize = 0` (forbid), from the source to
 * the stages pass (lang/SPEC.md 4.4).
 *
 * The lowering must put the option on the IR `for` (ints[1], printed `pipeline 3, specialize 1`)
 * and leave it off when the source gives none. The stages pass must honour it on sm_90a with TMA:
 * a loop that asks gets the warp roles without the target's default (the target word
 * `specialize`, TILE_WARP_SPECIALIZE=1), a loop that forbids never gets them even with it, a loop
 * that asks keeps the plain ring where the target cannot honour setmaxnreg (no_warp_roles: the
 * runtime without the ptxas program), on sm_80, and where it does not qualify (a tile loaded
 * before the loop and used after it). Every variant must give, on the VM, the bits of the kernel
 * without the GPU passes at shapes with tails. The PTX that tile_program_emit makes for the
 * asking kernel moves registers with setmaxnreg exactly where the runtime can honour it.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/frontend.h"
#include "ir/ir.h"
#include "runtime/cache.h"
#include "runtime/runtime.h"
#include "runtime/vm.h"
#include "testutil.h"

/* gemm with the option from the constant WS. A bias loaded before the loop makes the loop unfit
 * for roles, whether it is added after the loop (BIAS = 1: a role cannot take a register tile
 * made outside it) or not used (BIAS = 2: the load stays outside the roles, where the block's
 * warps are no longer the ones its layout is for). */
static const char *gemm_src =
    "kernel gemm<BM = 128, BN = 128, BK = 64, STAGES = 3, WS = 1, BIAS = 0>(\n"
    "    a: tensor<bf16>[M, K], b: tensor<bf16>[K, N], bias: tensor<f32>[N], c: tensor<bf16>[M, N])\n"
    "  grid(cdiv(M, BM), cdiv(N, BN))\n"
    "{\n"
    "  let m0 = block_id(0) * BM;\n"
    "  let n0 = block_id(1) * BN;\n"
    "  var shift = zeros<f32>[BN];\n"
    "  if BIAS > 0 { shift = bias[n0 :+ BN]; }\n"
    "  var acc = zeros<f32>[BM, BN];\n"
    "  for k in 0 .. K step BK pipeline(STAGES, specialize = WS) {\n"
    "    acc = dot(a[m0 :+ BM, k :+ BK], b[k :+ BK, n0 :+ BN], acc);\n"
    "  }\n"
    "  if BIAS == 1 { acc += expand(shift, 0); }\n"
    "  c[m0 :+ BM, n0 :+ BN] = cast<bf16>(acc);\n"
    "}\n";

/* The same loop without the option: the target's default decides. */
static const char *plain_src =
    "kernel gemm(a: tensor<bf16>[M, K], b: tensor<bf16>[K, N], c: tensor<bf16>[M, N])\n"
    "  grid(cdiv(M, 128), cdiv(N, 128))\n"
    "{\n"
    "  var acc = zeros<f32>[128, 128];\n"
    "  for k in 0 .. K step 64 pipeline(3) {\n"
    "    acc = dot(a[block_id(0) * 128 :+ 128, k :+ 64], b[k :+ 64, block_id(1) * 128 :+ 128], acc);\n"
    "  }\n"
    "  c[block_id(0) * 128 :+ 128, block_id(1) * 128 :+ 128] = cast<bf16>(acc);\n"
    "}\n";

typedef struct Compiled {
    AstFile *ast;
    IrModule *module;
    IrFunction *kernel;
} Compiled;

static Compiled compile(const char *src, bool gpu, const Target *t, int ws, int bias) {
    ConstBinding consts[2] = {{.name = "WS", .i = ws}, {.name = "BIAS", .i = bias}};
    DiagList d = {0};
    Compiled c = {0};
    c.ast = parse_source("gemm.tile", src, strlen(src), &d);
    cr_assert(c.ast && !d.errors, "%s", sb_str(&d.text));
    RtCompileOptions opt = {.gpu = gpu, .target = *t};
    c.module = rt_compile(c.ast, "gemm", src == gemm_src ? consts : NULL, src == gemm_src ? 2 : 0, &opt, &d, &c.kernel);
    cr_assert_not_null(c.module, "%s", sb_str(&d.text));
    diag_free(&d);
    return c;
}

static void compiled_free(Compiled *c) {
    ir_module_free(c->module);
    ast_file_free(c->ast);
}

static bool find_op(IrOp *op, void *ctx) {
    const IrOp **found = ctx;
    if (op->code == found[0]->code && !found[1]) found[1] = op;
    return true;
}

/* The first op of f with the given code (NULL: none). */
static const IrOp *first_op(const IrFunction *f, OpCode code) {
    IrOp probe = {.code = code};
    const IrOp *found[2] = {&probe, NULL};
    ir_walk(f->body, find_op, found);
    return found[1];
}

static bool has_roles(const IrFunction *f) { return first_op(f, OP_WARP_ROLES) != NULL; }

/* Runs the kernel on the VM over fixed pseudo-random inputs into c (m x n bf16). */
static void run(const IrFunction *k, int64_t m, int64_t n, int64_t kk, uint16_t *c) {
    uint16_t *a = malloc((size_t)(m * kk) * 2), *b = malloc((size_t)(kk * n) * 2);
    float *bias = malloc((size_t)n * 4);
    uint64_t s = 11;
    test_random_bf16(a, m * kk, &s);
    test_random_bf16(b, kk * n, &s);
    for (int64_t i = 0; i < n; i++) bias[i] = (float)(i % 7) - 3.0f;
    int64_t sa[2] = {m, kk}, sb[2] = {kk, n}, sc[2] = {m, n};
    tile_arg args[4] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, a, 2, sa)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, b, 2, sb)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, bias, 1, &n)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, c, 2, sc)}};
    Strbuf err = {0};
    cr_assert(vm_launch_threads(k, args, 4, 2, &err), "%s", sb_str(&err));
    sb_free(&err);
    free(a), free(b), free(bias);
}

/* The kernel after the GPU passes for t gives the bits of the kernel without them. */
static void same_bits(const Compiled *plain, const Compiled *gpu, const char *what) {
    static const int64_t shapes[][3] = {{200, 136, 448}, {65, 130, 64}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int64_t m = shapes[i][0], n = shapes[i][1], k = shapes[i][2];
        uint16_t *c1 = calloc((size_t)(m * n), 2), *c2 = calloc((size_t)(m * n), 2);
        run(plain->kernel, m, n, k, c1);
        run(gpu->kernel, m, n, k, c2);
        cr_assert(memcmp(c1, c2, (size_t)(m * n) * 2) == 0, "%s %lldx%lldx%lld: results differ", what, (long long)m,
                  (long long)n, (long long)k);
        free(c1), free(c2);
    }
}

/* sm_90a with TMA rings and every launch fact (what a launch on contiguous aligned tensors gets). */
static const Target sm90a = {.sm = 90, .arch_specific = true, .every_fact = true, .tma = true};

/* ---- lowering ------------------------------------------------------------------------------- */
Test(pipeline_specialize, the_option_is_an_attribute_of_the_ir_for) {
    for (int ws = 0; ws < 2; ws++) {
        Compiled c = compile(gemm_src, false, &(Target){0}, ws, 0);
        const IrOp *loop = first_op(c.kernel, OP_FOR);
        cr_assert(loop && loop->nints == 2 && loop->ints[0] == 3 && loop->ints[1] == ws, "ws=%d", ws);
        Strbuf sb = {0};
        ir_print_function(c.kernel, &sb);
        cr_assert(strstr(sb_str(&sb), ws ? "pipeline 3, specialize 1 {" : "pipeline 3, specialize 0 {"), "%s",
                  sb_str(&sb));
        sb_free(&sb);
        compiled_free(&c);
    }
    Compiled c = compile(plain_src, false, &(Target){0}, 0, 0);
    const IrOp *loop = first_op(c.kernel, OP_FOR);
    cr_assert(loop && loop->nints == 1 && loop->ints[0] == 3, "no option: no attribute");
    compiled_free(&c);
}

/* ---- the stages pass, judged by the VM ------------------------------------------------------- */
Test(pipeline_specialize, a_loop_that_asks_gets_warp_roles_without_the_global_default) {
    Compiled plain = compile(gemm_src, false, &sm90a, 1, 0);
    Compiled asked = compile(gemm_src, true, &sm90a, 1, 0);
    cr_assert(has_roles(asked.kernel), "specialize = 1 on sm_90a with TMA: warp roles");
    cr_assert_eq(asked.kernel->num_warps, 8, "a producer warpgroup and the 4 consumer warps");
    same_bits(&plain, &asked, "specialize = 1");
    compiled_free(&asked);
    /* the same loop without the option follows the target's default: off, then on */
    Compiled def = compile(plain_src, true, &sm90a, 0, 0);
    cr_assert(!has_roles(def.kernel) && first_op(def.kernel, OP_COPY_TMA), "no option, no default: the TMA ring");
    compiled_free(&def);
    Target on = sm90a;
    on.specialize = true;
    def = compile(plain_src, true, &on, 0, 0);
    cr_assert(has_roles(def.kernel), "no option, the default on: warp roles");
    compiled_free(&def);
    compiled_free(&plain);
}

Test(pipeline_specialize, a_loop_that_forbids_keeps_the_ring_even_with_the_global_default) {
    Target on = sm90a;
    on.specialize = true;
    Compiled plain = compile(gemm_src, false, &on, 0, 0);
    Compiled forbidden = compile(gemm_src, true, &on, 0, 0);
    cr_assert(!has_roles(forbidden.kernel), "specialize = 0: never warp roles");
    cr_assert_not_null(first_op(forbidden.kernel, OP_COPY_TMA), "the plain TMA ring");
    cr_assert_eq(forbidden.kernel->num_warps, 4);
    same_bits(&plain, &forbidden, "specialize = 0");
    compiled_free(&forbidden);
    compiled_free(&plain);
}

/* Where roles cannot be built or honoured, a loop that asks keeps the plain ring; it never fails. */
Test(pipeline_specialize, a_loop_that_asks_falls_back_to_the_plain_ring) {
    Compiled plain = compile(gemm_src, false, &sm90a, 1, 0);
    Target no_roles = sm90a, no_tma = sm90a, sm80 = {.sm = 80, .every_fact = true};
    no_roles.no_warp_roles = true; /* the runtime without the ptxas program */
    no_tma.tma = false;            /* ahead-of-time images, TILE_TMA=0 */
    const Target *targets[3] = {&no_roles, &no_tma, &sm80};
    const char *names[3] = {"no_warp_roles", "no TMA", "sm_80"};
    for (int i = 0; i < 3; i++) {
        Compiled c = compile(gemm_src, true, targets[i], 1, 0);
        cr_assert(!has_roles(c.kernel), "%s: no warp roles", names[i]);
        cr_assert(first_op(c.kernel, i == 0 ? OP_COPY_TMA : OP_COPY_ASYNC), "%s: the plain ring", names[i]);
        const IrOp *loop = first_op(c.kernel, OP_FOR);
        cr_assert(loop->nints == 2 && loop->ints[1] == 1, "%s: the option stays on the loop (--dump-after)", names[i]);
        if (i == 0) same_bits(&plain, &c, names[i]);
        compiled_free(&c);
    }
    compiled_free(&plain);
    /* loops that do not qualify: a bias loaded before the loop, used after it or not at all */
    for (int b = 1; b <= 2; b++) {
        Compiled plain_bias = compile(gemm_src, false, &sm90a, 1, b);
        Compiled bias = compile(gemm_src, true, &sm90a, 1, b);
        cr_assert(!has_roles(bias.kernel) && first_op(bias.kernel, OP_COPY_TMA), "BIAS=%d: the plain TMA ring", b);
        same_bits(&plain_bias, &bias, b == 1 ? "specialize = 1, bias used" : "specialize = 1, bias unused");
        compiled_free(&bias);
        compiled_free(&plain_bias);
    }
}

/* ---- the runtime ------------------------------------------------------------------------------ */
/* rt_target_for_arch (every compile for a device, tile_program_emit) forbids roles exactly where
 * the ptxas program is not found; the PTX of the asking kernel has setmaxnreg only where it is. */
Test(pipeline_specialize, the_runtime_honours_the_option_where_ptxas_is_found) {
    Target t;
    cr_assert(rt_target_for_arch("sm_90a", 0, &t));
    cr_assert_eq(t.no_warp_roles, !rt_warp_roles_possible());
#ifdef TILE_HAVE_LLVM
    tile_context *ctx = test_vm_context();
    tile_program *p;
    cr_assert_eq(tile_program_from_string(ctx, "gemm.tile", gemm_src, strlen(gemm_src), &p), TILE_OK, "%s",
                 tile_context_message(ctx));
    setenv("TILE_EMIT_SPECIALIZED", "1", 1); /* the variant for contiguous aligned tensors: TMA rings */
    for (int ws = 0; ws < 3; ws++) {
        /* (ws 2: asks, with a bias loaded before the loop and unused: unfit, and no compiler error) */
        tile_constant c[2] = {{.name = "WS", .i = ws < 2 ? ws : 1}, {.name = "BIAS", .i = ws < 2 ? 0 : 2}};
        tile_emit_options opt = {.arch = "sm_90a"};
        char *ptx = NULL;
        size_t len = 0;
        cr_assert_eq(tile_program_emit(p, "gemm", c, 2, TILE_EMIT_PTX, &opt, &ptx, &len), TILE_OK, "ws=%d: %s", ws,
                     tile_context_message(ctx));
        bool roles = strstr(ptx, "setmaxnreg") != NULL;
        cr_assert_eq(roles, ws == 1 && rt_warp_roles_possible(), "ws=%d: setmaxnreg %s", ws, roles ? "found" : "missing");
        tile_string_free(ptx);
    }
    unsetenv("TILE_EMIT_SPECIALIZED");
    tile_program_destroy(p);
    tile_context_destroy(ctx);
#endif
}

/* The option is part of the source, which the kernel cache's key hashes. */
Test(pipeline_specialize, the_cache_key_changes_with_the_option) {
    const char *ask = "kernel k(x: tensor<f32>[N]) grid(1) { for i in 0 .. N pipeline(2, specialize = 1) { } }";
    const char *forbid = "kernel k(x: tensor<f32>[N]) grid(1) { for i in 0 .. N pipeline(2, specialize = 0) { } }";
    CacheKernelId id = {.source = ask, .source_len = strlen(ask), .kernel = "k", .arch = "sm_90a", .num_warps = 4};
    CacheKey k1 = cache_kernel_key(&id);
    id.source = forbid, id.source_len = strlen(forbid);
    CacheKey k0 = cache_kernel_key(&id);
    cr_assert(!cache_key_equal(&k1, &k0));
}
