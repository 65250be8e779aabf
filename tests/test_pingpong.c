/*
 * test_pingpong.c: the ping-pong schedule of warp roles (passes/pingpong.c) on stdlib's
 * gemm_persistent_pingpong (`pipeline(STAGES, specialize = 2)` inside the tile loop), on the VM and
 * in the code generator.
 *
 * On sm_90a with TMA and every launch fact the kernel must get three roles (a producer of 4 warps
 * and 40 registers, two consumers of 4 warps and 232), 12 warps in all, and an ordering ring of two
 * mbarriers that each consumer waits on once per tile. On the VM (each role a worker with blocking
 * waits) it must give gemm_persistent's bits without the GPU passes at ragged M, N and K, K below
 * BK, K = 0, a ring that wraps many times inside one tile, fewer tiles than blocks and blocks
 * with an odd number of tiles; without the consumers' turn-taking waits the VM must report the
 * error (a consumer would read a stage of a later ring iteration than the producer filled). The
 * option falls back where it must: the cooperative roles for a loop at the top of the body, the
 * plain ring on sm_80, where setmaxnreg cannot be honoured, with 8 warps and where the K loop's
 * bounds depend on the tile. The PTX moves registers (.maxnreg 168, setmaxnreg 40 once and 232
 * twice), gives each consumer its own named barrier, and assembles with ptxas without spills
 * (where ptxas is found) at BN = 128.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "frontend/frontend.h"
#include "ir/ir.h"
#include "runtime/runtime.h"
#include "runtime/vm.h"
#include "testutil.h"

typedef struct Compiled {
    AstFile *ast;
    IrModule *module;
    IrFunction *kernel;
} Compiled;

/* sm_90a with TMA rings and every launch fact (what a launch on contiguous aligned tensors gets). */
static const Target sm90a = {.sm = 90, .arch_specific = true, .every_fact = true, .tma = true};

static Compiled compile_text(const char *name, const char *text, size_t len, const char *kernel, bool gpu,
                             const Target *t, const ConstBinding *consts, int n) {
    DiagList d = {0};
    Compiled c = {0};
    c.ast = parse_source(name, text, len, &d);
    cr_assert(c.ast && !d.errors, "%s", sb_str(&d.text));
    RtCompileOptions opt = {.gpu = gpu, .target = *t};
    c.module = rt_compile(c.ast, kernel, consts, n, &opt, &d, &c.kernel);
    cr_assert_not_null(c.module, "%s", sb_str(&d.text));
    diag_free(&d);
    return c;
}

/* A kernel of stdlib/core/gemm_persistent.tile, after the GPU passes for t (gpu) or not. */
static Compiled compile(const char *kernel, bool gpu, const Target *t, const ConstBinding *consts, int n) {
    size_t len;
    char *text = test_read_source_file("stdlib/core/gemm_persistent.tile", &len);
    Compiled c = compile_text("gemm_persistent.tile", text, len, kernel, gpu, t, consts, n);
    free(text);
    return c;
}

static void compiled_free(Compiled *c) {
    ir_module_free(c->module);
    ast_file_free(c->ast);
}

static bool find_roles(IrOp *op, void *ctx) {
    if (op->code == OP_WARP_ROLES) *(IrOp **)ctx = op;
    return true;
}

static IrOp *roles_of(const IrFunction *f) {
    IrOp *roles = NULL;
    ir_walk(f->body, find_roles, &roles);
    return roles;
}

/* Whether v is the ordering ring: an mbarrier ring of 2 (the K ring has STAGES = 4). */
static bool is_order_ring(const IrValue *v) {
    return v->type->kind == TY_SHARED && v->type->rank == 1 && v->type->shape[0] == 2 && v->type->elem.bits == 64;
}

typedef struct OrderWaits {
    IrOp *ops[8];
    int count;
} OrderWaits;

static bool order_wait(IrOp *op, void *ctx) {
    OrderWaits *w = ctx;
    if (op->code == OP_MBARRIER_WAIT && is_order_ring(op->operands[0]) && w->count < 8) w->ops[w->count++] = op;
    return true;
}

/* How many waits on the ordering ring role k has (removed when `remove`). */
static int order_waits(IrOp *roles, uint32_t k, bool remove) {
    OrderWaits w = {0};
    ir_walk(roles->regions[k], order_wait, &w);
    for (int i = 0; remove && i < w.count; i++) ir_op_remove(w.ops[i]);
    return w.count;
}

/* Runs c = a @ b (m x k, k x n bf16 from a fixed seed) on the VM with TILE_VM_NUM_SMS = sms; the
 * bits of c, or NULL with the error in err. */
static uint16_t *run(const IrFunction *f, int64_t m, int64_t n, int64_t kk, int sms, Strbuf *err) {
    char text[16];
    snprintf(text, sizeof text, "%d", sms);
    setenv("TILE_VM_NUM_SMS", text, 1);
    uint16_t *c = calloc((size_t)(m * n) + 1, 2);
    bool ok = test_vm_gemm_bf16(f, m, n, kk, 7, c, err);
    unsetenv("TILE_VM_NUM_SMS");
    if (!ok) free(c);
    return ok ? c : NULL;
}

Test(pingpong, the_persistent_kernel_gets_a_producer_and_two_consumers) {
    Compiled c = compile("gemm_persistent_pingpong", true, &sm90a, NULL, 0);
    IrOp *roles = roles_of(c.kernel);
    cr_assert_not_null(roles, "no warp roles");
    cr_assert_eq(roles->nregions, 3);
    static const int64_t want[6] = {4, 40, 4, 232, 4, 232};
    cr_assert_eq(roles->nints, 6);
    for (int k = 0; k < 6; k++) cr_assert_eq(roles->ints[k], want[k], "ints[%d] = %lld", k, (long long)roles->ints[k]);
    cr_assert_eq(c.kernel->num_warps, 12);
    cr_assert_eq(order_waits(roles, 0, false), 0, "the producer does not take turns");
    cr_assert_eq(order_waits(roles, 1, false), 1);
    cr_assert_eq(order_waits(roles, 2, false), 1);
    compiled_free(&c);
    /* the kernels that do not ask keep their rings */
    static const char *const others[] = {"gemm_persistent", "gemm_persistent_flat"};
    for (int i = 0; i < 2; i++) {
        Compiled o = compile(others[i], true, &sm90a, NULL, 0);
        cr_assert_null(roles_of(o.kernel), "%s", others[i]);
        compiled_free(&o);
    }
}

/* M, N, K, SMs: 3 x 2 tiles over 3 blocks with ragged edges; K < BK; K = 0; one tile and 4 SMs
 * (consumer 1 has no tile); 3 x 3 tiles over 2 blocks (5 and 4 tiles) with K = 600, ten slices
 * per tile, so that the 4-stage ring wraps inside each tile; 5 tiles in one block. */
static const int64_t shapes[][4] = {{300, 200, 200, 3}, {130, 260, 40, 4}, {257, 129, 0, 2},
                                    {100, 100, 64, 4},  {300, 300, 600, 2}, {64, 640, 136, 1}};

Test(pingpong, gives_gemm_persistents_bits_on_the_vm, .timeout = 900) {
    Compiled plain = compile("gemm_persistent", false, &sm90a, NULL, 0);
    Compiled pp = compile("gemm_persistent_pingpong", true, &sm90a, NULL, 0);
    cr_assert_not_null(roles_of(pp.kernel));
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int64_t m = shapes[i][0], n = shapes[i][1], k = shapes[i][2];
        Strbuf err = {0};
        uint16_t *want = run(plain.kernel, m, n, k, (int)shapes[i][3], &err);
        cr_assert_not_null(want, "%s", sb_str(&err));
        uint16_t *got = run(pp.kernel, m, n, k, (int)shapes[i][3], &err);
        cr_assert_not_null(got, "%lldx%lldx%lld: %s", (long long)m, (long long)n, (long long)k, sb_str(&err));
        cr_assert(memcmp(want, got, (size_t)(m * n) * 2) == 0, "%lldx%lldx%lld with %lld SMs: the bits differ",
                  (long long)m, (long long)n, (long long)k, (long long)shapes[i][3]);
        free(want), free(got);
        sb_free(&err);
    }
    compiled_free(&plain);
    compiled_free(&pp);
}

/* Without the waits for their turn, consumer 1 starts its first tile while consumer 0's is in
 * the ring: its wait on a stage whose earlier phase has not completed returns at once (a wait
 * for a parity), so it reads and releases the wrong ring iteration, and the VM says so. */
Test(pingpong, consumers_that_do_not_take_turns_are_caught, .timeout = 600) {
    Compiled pp = compile("gemm_persistent_pingpong", true, &sm90a, NULL, 0);
    IrOp *roles = roles_of(pp.kernel);
    cr_assert_eq(order_waits(roles, 1, true), 1);
    cr_assert_eq(order_waits(roles, 2, true), 1);
    Strbuf err = {0};
    uint16_t *got = run(pp.kernel, 300, 300, 600, 2, &err);
    cr_assert_null(got, "the run without turns passed");
    cr_assert(strstr(sb_str(&err), "warp_roles: deadlock") || strstr(sb_str(&err), "still being copied") ||
                  strstr(sb_str(&err), "no wait has seen"),
              "%s", sb_str(&err));
    sb_free(&err);
    compiled_free(&pp);
}

/* A gemm whose K loop asks for ping-pong (WS = 2) at the top of its body, or inside a tile loop
 * whose K loop's end depends on the tile (DEP = 1), with W warps. */
static const char *variants_src =
    "kernel gemm<BM = 128, BN = 128, BK = 64, W = 4, DEP = 0>(\n"
    "    a: tensor<bf16>[M, K], b: tensor<bf16>[K, N], c: tensor<bf16>[M, N])\n"
    "  grid(min(num_sms(), cdiv(M, BM) * cdiv(N, BN))) warps(W)\n"
    "{\n"
    "  let tiles_n = cdiv(N, BN);\n"
    "  for t in block_id(0) .. cdiv(M, BM) * tiles_n step num_blocks(0) {\n"
    "    let m0 = (t / tiles_n) * BM;\n"
    "    let n0 = (t % tiles_n) * BN;\n"
    "    var acc = zeros<f32>[BM, BN];\n"
    "    for k in 0 .. K - DEP * (t % 2) * BK step BK pipeline(3, specialize = 2) {\n"
    "      acc = dot(a[m0 :+ BM, k :+ BK], b[k :+ BK, n0 :+ BN], acc);\n"
    "    }\n"
    "    c[m0 :+ BM, n0 :+ BN] = cast<bf16>(acc);\n"
    "  }\n"
    "}\n"
    "kernel flat<BM = 128, BN = 128, BK = 64>(\n"
    "    a: tensor<bf16>[M, K], b: tensor<bf16>[K, N], c: tensor<bf16>[M, N])\n"
    "  grid(cdiv(M, BM), cdiv(N, BN))\n"
    "{\n"
    "  var acc = zeros<f32>[BM, BN];\n"
    "  for k in 0 .. K step BK pipeline(3, specialize = 2) {\n"
    "    acc = dot(a[block_id(0) * BM :+ BM, k :+ BK], b[k :+ BK, block_id(1) * BN :+ BN], acc);\n"
    "  }\n"
    "  c[block_id(0) * BM :+ BM, block_id(1) * BN :+ BN] = cast<bf16>(acc);\n"
    "}\n";

static uint32_t roles_in(const char *kernel, const Target *t, const ConstBinding *consts, int n) {
    Compiled c = compile_text("variants.tile", variants_src, strlen(variants_src), kernel, true, t, consts, n);
    IrOp *roles = roles_of(c.kernel);
    uint32_t regions = roles ? roles->nregions : 0;
    if (regions == 3) {
        /* and the VM gives the kernel's bits without the passes */
        Compiled plain = compile_text("variants.tile", variants_src, strlen(variants_src), kernel, false, t, consts, n);
        Strbuf err = {0};
        uint16_t *want = run(plain.kernel, 200, 300, 130, 2, &err), *got = run(c.kernel, 200, 300, 130, 2, &err);
        cr_assert(want && got, "%s", sb_str(&err));
        cr_assert(memcmp(want, got, 200 * 300 * 2) == 0, "%s: the bits differ", kernel);
        free(want), free(got);
        sb_free(&err);
        compiled_free(&plain);
    }
    compiled_free(&c);
    return regions;
}

Test(pingpong, falls_back_where_it_must, .timeout = 600) {
    ConstBinding dep = {.name = "DEP", .i = 1}, w8 = {.name = "W", .i = 8};
    cr_assert_eq(roles_in("gemm", &sm90a, NULL, 0), 3, "the tile loop gets ping-pong");
    cr_assert_eq(roles_in("gemm", &sm90a, &dep, 1), 0, "a K loop that depends on the tile keeps the plain ring");
    cr_assert_eq(roles_in("gemm", &sm90a, &w8, 1), 0, "8 warps keep the plain ring");
    cr_assert_eq(roles_in("flat", &sm90a, NULL, 0), 2, "a loop at the top gets the cooperative roles");
    Target no_roles = sm90a, sm80 = {.sm = 80, .every_fact = true};
    no_roles.no_warp_roles = true;
    cr_assert_eq(roles_in("gemm", &no_roles, NULL, 0), 0, "no setmaxnreg: the plain ring");
    cr_assert_eq(roles_in("gemm", &sm80, NULL, 0), 0, "sm_80: the plain ring");
}

#ifdef TILE_HAVE_LLVM
static int occurrences(const char *text, const char *what) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, what)); p++) n++;
    return n;
}

/* The PTX of gemm_persistent_pingpong with BN for sm_90a and every launch fact; *spills is whether
 * ptxas -v reports spills (false where ptxas is not found). */
static char *ptx_of(int64_t bn, bool *spills) {
    ConstBinding bind = {.name = "BN", .i = bn};
    Compiled c = compile("gemm_persistent_pingpong", true, &sm90a, &bind, 1);
    CodegenInfo info = {0};
    Strbuf ptx = test_ptx_every_fact(c.kernel, &info);
    char *report = test_ptxas_report(ptx.data, ptx.len);
    *spills = report && !test_ptxas_no_spills(report);
    if (report) cr_log_info("BN=%lld: %s", (long long)bn, report);
    free(report);
    compiled_free(&c);
    return ptx.data;
}

Test(pingpong, the_ptx_moves_registers_and_assembles_without_spills) {
    bool spills;
    char *ptx = ptx_of(128, &spills);
    cr_assert_eq(occurrences(ptx, ".maxnreg 168"), 1, "the average of 4 x 40 and 8 x 232 over 12 warps");
    cr_assert_eq(occurrences(ptx, "setmaxnreg.dec.sync.aligned.u32 40;"), 1);
    cr_assert_eq(occurrences(ptx, "setmaxnreg.inc.sync.aligned.u32 232;"), 2);
    cr_assert_gt(occurrences(ptx, "bar.sync 2, 128;"), 0, "consumer 0's own barrier");
    cr_assert_gt(occurrences(ptx, "bar.sync 3, 128;"), 0, "consumer 1's own barrier");
    cr_assert_gt(occurrences(ptx, "wgmma.mma_async"), 1);
    cr_assert(!spills, "BN = 128 spills");
    free(ptx);
    /* BN = 256: a consumer's 128 x 256 f32 accumulator is 256 registers a thread, more than 232: it
     * assembles, with spills (the cooperative roles are the schedule for that tile) */
    ptx = ptx_of(256, &spills);
    cr_assert_eq(occurrences(ptx, "setmaxnreg.inc.sync.aligned.u32 232;"), 2);
    free(ptx);
}
#endif
