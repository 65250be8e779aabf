/*
 * test_cluster.c: thread-block clusters with TMA multicast (passes/cluster.c) judged by the VM,
 * and their PTX.
 *
 * stdlib's gemm is compiled for sm_90a with every launch fact and TMA, with and without the
 * cluster pass (Target.cluster), and without any GPU pass: the pass must have made its kernel
 * (`cluster 2`, every TMA copy a multicast with its flag, cluster barriers after mbarrier_init and
 * after mbarrier_inval, the refill released through an empty ring: an arrival with `cluster 2`
 * after the loop's block barrier and a wait on it in the refill), and the VM's results of all three must be bit-identical at
 * shapes whose grids are even (clusters: peers on the same n0, on different n0, on the same m0)
 * and odd (no clusters). The VM checks the protocol: a flag that lets peers multicast different
 * tiles, or a multicast in a launch without clusters, is an error. The PTX has the multicast
 * copies, the cluster barrier and the cluster registers, and ptxas assembles it.
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

static const Target sm90 = {.sm = 90, .arch_specific = true, .every_fact = true, .tma = true};

/* stdlib's gemm with BN and W (and STAGES 3) for t, with or without the GPU passes. */
static Compiled compile_gemm(bool gpu, const Target *t, int bn, int w) {
    ConstBinding consts[3] = {{.name = "STAGES", .i = 3}, {.name = "BN", .i = bn}, {.name = "W", .i = w}};
    size_t len;
    char *text = test_read_source_file("stdlib/core/gemm.tile", &len);
    DiagList d = {0};
    Compiled c = {0};
    c.ast = parse_source("gemm.tile", text, len, &d);
    free(text);
    cr_assert_not_null(c.ast, "%s", sb_str(&d.text));
    RtCompileOptions opt = {.gpu = gpu, .target = *t};
    c.module = rt_compile(c.ast, "gemm", consts, 3, &opt, &d, &c.kernel);
    cr_assert_not_null(c.module, "%s", sb_str(&d.text));
    diag_free(&d);
    return c;
}

static void compiled_free(Compiled *c) {
    ir_module_free(c->module);
    ast_file_free(c->ast);
}

/* Runs k on the VM over random bf16 inputs (the same each time) into c. */
static bool run(const IrFunction *k, int64_t m, int64_t n, int64_t kk, uint16_t *c, Strbuf *err) {
    return test_vm_gemm_bf16(k, m, n, kk, 11, c, err);
}

typedef struct Count {
    int copies, multicasts, cluster_barriers, cluster_sizes, barriers_in_loops, cluster_arrives, empty_inits;
    IrOp *multicast[16];
    IrOp *in_cluster; /* cmp eq cluster_size, 2 */
    IrOp *arrive_if;  /* if %any { mbarrier_arrive %empty, %stage, cluster 2 } */
    IrOp *wait_if;    /* if %any { mbarrier_wait %empty, %stage, %parity } (in the refill's if) */
} Count;

static bool count(IrOp *op, void *ctx) {
    Count *c = ctx;
    if (op->code == OP_COPY_TMA) {
        c->copies++;
        if (ir_copy_tma_multicast(op) == 2 && c->multicasts < 16) c->multicast[c->multicasts++] = op;
    }
    if (op->code == OP_CLUSTER_BARRIER) c->cluster_barriers++;
    if (op->code == OP_MBARRIER_ARRIVE && ir_mbarrier_arrive_cluster(op) == 2) {
        c->cluster_arrives++;
        c->arrive_if = op->parent->parent_op;
    }
    if (op->code == OP_MBARRIER_WAIT && op->parent->parent_op && op->parent->parent_op->code == OP_IF)
        c->wait_if = op->parent->parent_op;
    if (op->code == OP_MBARRIER_INIT && ir_mbarrier_count(op) == 2) c->empty_inits++;
    if (op->code == OP_CLUSTER_SIZE) c->cluster_sizes++;
    if (op->code == OP_CMP && op->operands[0]->def && op->operands[0]->def->code == OP_CLUSTER_SIZE)
        c->in_cluster = op;
    if (op->code == OP_BARRIER && op->parent->parent_op && op->parent->parent_op->code == OP_FOR) c->barriers_in_loops++;
    return true;
}

/* Grids (BM = 128, GROUP = 8): 200x136 has 2 x 2 tiles (group rows even: peers share n0, B
 * multicasts); 384x256 has 3 x 2 = 6 tiles in one group of 3 rows (peers 0-1 and 4-5 share n0,
 * 2-3 share nothing); 128x512 (BN 128) one row of 4 tiles (peers share m0: A multicasts); 65x257
 * and 1x8 odd grids (no clusters). K long enough for the ring to wrap, with a tail. */
static const int64_t shapes[][3] = {{200, 136, 448}, {384, 256, 200}, {128, 512, 130}, {65, 257, 300}, {1, 8, 16}};
enum { NSHAPES = sizeof shapes / sizeof shapes[0] };

Test(cluster, gemm_multicast_ring_gives_the_vm_results_of_the_plain_ring) {
    static const int configs[][2] = {{128, 4}, {256, 8}, {64, 4}}; /* BN, W: B as 2, 4 and 1 boxes */
    for (int ci = 0; ci < 3; ci++) {
        int bn = configs[ci][0], w = configs[ci][1];
        Target with = sm90;
        with.cluster = true;
        Compiled none = compile_gemm(false, &sm90, bn, w), ring = compile_gemm(true, &sm90, bn, w),
                 clustered = compile_gemm(true, &with, bn, w);
        cr_assert_eq(ring.kernel->cluster, 0);
        cr_assert_eq(clustered.kernel->cluster, 2, "BN=%d", bn);
        Count cr = {0}, cc = {0};
        ir_walk(ring.kernel->body, count, &cr);
        ir_walk(clustered.kernel->body, count, &cc);
        cr_assert_eq(cr.multicasts + cr.cluster_barriers + cr.cluster_sizes, 0);
        cr_assert_eq(cc.copies, cr.copies, "BN=%d: the same copies", bn);
        cr_assert_eq(cc.multicasts, cc.copies, "BN=%d: %d of %d copies multicast", bn, cc.multicasts, cc.copies);
        cr_assert_eq(cc.cluster_barriers, 2, "after mbarrier_init and after mbarrier_inval (none in the loop)");
        cr_assert_eq(cc.barriers_in_loops, 1, "the loop's block barrier");
        cr_assert_eq(cc.empty_inits, 1, "the empty ring, two arrivals a phase");
        cr_assert_eq(cc.cluster_arrives, 1, "the release of the refill's stage to both blocks");
        cr_assert(cc.arrive_if && cc.arrive_if->code == OP_IF && cc.arrive_if->parent->parent_op->code == OP_FOR);
        cr_assert(cc.wait_if && cc.wait_if->parent->parent_op->code == OP_IF, "the wait is in the refill's if");
        for (int s = 0; s < NSHAPES; s++) {
            int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            uint16_t *c0 = calloc((size_t)(m * n), 2), *c1 = calloc((size_t)(m * n), 2), *c2 = calloc((size_t)(m * n), 2);
            Strbuf err = {0};
            cr_assert(run(none.kernel, m, n, k, c0, &err), "%s", sb_str(&err));
            cr_assert(run(ring.kernel, m, n, k, c1, &err), "%s", sb_str(&err));
            cr_assert(run(clustered.kernel, m, n, k, c2, &err), "BN=%d %lldx%lldx%lld: %s", bn, (long long)m,
                      (long long)n, (long long)k, sb_str(&err));
            cr_assert(memcmp(c0, c1, (size_t)(m * n) * 2) == 0, "BN=%d %lldx%lld: the ring differs", bn, (long long)m,
                      (long long)n);
            cr_assert(memcmp(c0, c2, (size_t)(m * n) * 2) == 0, "BN=%d %lldx%lldx%lld: the clusters differ", bn,
                      (long long)m, (long long)n, (long long)k);
            sb_free(&err);
            free(c0), free(c1), free(c2);
        }
        compiled_free(&none);
        compiled_free(&ring);
        compiled_free(&clustered);
    }
}

/* A flag that lets both blocks multicast what they do not share is caught by the VM: A's copies
 * under B's flag at 200x136 (peers share n0 but not m0), and B's copies (and the loop's release
 * through the empty ring) under cluster_size == 2 alone at 384x256 (peers 2-3 sit on different
 * n0); the flags as built pass there (the check is live). A multicast whose flag is true in a
 * launch without clusters (an odd grid) is an error, and so is a refill multicast without the
 * release (neither arrival nor wait on the empty ring: the peer may still read the stage), a wait
 * on the empty ring without the arrivals (on the GPU it never returns), and an arrival across the
 * cluster in a launch without clusters. */
Test(cluster, multicasts_of_different_tiles_are_vm_errors) {
    Target with = sm90;
    with.cluster = true;
    for (int variant = 0; variant < 6; variant++) {
        Compiled c = compile_gemm(true, &with, 128, 4);
        Count cnt = {0};
        ir_walk(c.kernel->body, count, &cnt);
        cr_assert_not_null(cnt.in_cluster);
        cr_assert_not_null(cnt.arrive_if);
        cr_assert_not_null(cnt.wait_if);
        /* the copies of a (operand 0 the first parameter) and of b */
        IrValue *a = c.kernel->body->args[0], *flag_b = NULL, *flag_a = NULL;
        for (int i = 0; i < cnt.multicasts; i++) {
            IrOp *op = cnt.multicast[i];
            IrValue *flag = op->operands[op->noperands - 1];
            if (op->operands[0] == a) flag_a = flag;
            else flag_b = flag;
        }
        cr_assert(flag_a && flag_b && flag_a != flag_b);
        int64_t m = variant == 1 ? 384 : 200, n = variant == 1 ? 256 : 136;
        if (variant == 2 || variant == 5) m = 65, n = 257; /* 3 tiles */
        IrBuilder b = {.module = c.module, .function = c.kernel};
        ir_builder_before(&b, c.kernel->body->first);
        IrValue *yes = ir_const_int(&b, ir_scalar_type(c.module, elem_bool()), 1);
        IrValue *no = ir_const_int(&b, ir_scalar_type(c.module, elem_bool()), 0);
        if (variant == 1) {
            ir_set_operand(cnt.arrive_if, 0, cnt.in_cluster->results[0]);
            ir_set_operand(cnt.wait_if, 0, cnt.in_cluster->results[0]);
        }
        if (variant == 3 || variant == 4) ir_set_operand(cnt.arrive_if, 0, no);
        if (variant == 3) ir_set_operand(cnt.wait_if, 0, no);
        if (variant == 5) ir_set_operand(cnt.arrive_if, 0, yes);
        for (int i = 0; i < cnt.multicasts; i++) {
            IrOp *op = cnt.multicast[i];
            uint32_t last = op->noperands - 1;
            if (variant == 0 && op->operands[0] == a) ir_set_operand(op, last, flag_b);
            if (variant == 1 && op->operands[0] != a) ir_set_operand(op, last, cnt.in_cluster->results[0]);
            if (variant == 2) ir_set_operand(op, last, yes);
        }
        DiagList d = {0};
        cr_assert(ir_verify_function(c.kernel, &d), "%s", sb_str(&d.text));
        diag_free(&d);
        uint16_t *out = calloc((size_t)(m * n), 2);
        Strbuf err = {0};
        cr_assert_not(run(c.kernel, m, n, 200, out, &err), "variant %d ran", variant);
        const char *want = variant == 2 ? "a multicast in a launch without clusters (the grid's x, 3, is not a multiple of 2)"
                           : variant == 3 ? "copy_tma: multicasts into stage 0 with no cluster barrier, nor a wait on an "
                                            "arrival across the cluster, since the wait on it"
                           : variant == 4 ? "mbarrier_wait: waits for a phase of parity 0 of mbarrier 2, whose last "
                                            "completed phase does not exist"
                           : variant == 5 ? "mbarrier_arrive: an arrival across a cluster of 2 in a launch without clusters"
                                          : "the blocks of its cluster (x ";
        cr_assert(strstr(sb_str(&err), want), "variant %d: %s", variant, sb_str(&err));
        if (variant < 2) cr_assert(strstr(sb_str(&err), "disagree"), "%s", sb_str(&err));
        sb_free(&err);
        free(out);
        compiled_free(&c);
    }
}

/* `cluster N` reads back for 2, 4 and 8 blocks only. */
Test(cluster, cluster_size_must_be_a_power_of_two_up_to_8) {
    const char *text = "kernel @k(%0: tensor<bf16>[M, K]) warps 4 cluster 3\ngrid {\n  %1 = const 1 : i32\n  yield %1\n}\n"
                       "body {\n}\n";
    DiagList d = {0};
    IrModule *m = ir_parse_module("k.ir", text, strlen(text), &d);
    cr_assert_null(m);
    cr_assert(strstr(sb_str(&d.text), "k.ir:1:51: error: cluster 3: expected 2, 4 or 8 blocks"), "%s", sb_str(&d.text));
    diag_free(&d);
    const char *nine = "kernel @k(%0: tensor<bf16>[M, K]) warps 4 cluster 16\ngrid {\n  %1 = const 1 : i32\n  yield %1\n}\n"
                       "body {\n}\n";
    m = ir_parse_module("k.ir", nine, strlen(nine), &d);
    cr_assert_null(m);
    cr_assert(strstr(sb_str(&d.text), "cluster 16 out of range [2, 8]"), "%s", sb_str(&d.text));
    diag_free(&d);
}

/* The PTX of gemm's variant with every fact on sm_90a (BN 128 and 256): multicast copies with their
 * ctaMask, the cluster barrier, the cluster's registers, the mbarrier_init fence for the cluster;
 * the release of a stage (mapa and the arrival on each block's empty mbarrier, whose init counts 2);
 * no .reqnctapercluster/.explicitcluster (the same kernel runs without clusters); and ptxas
 * assembles it with no spills (TILE_CLUSTER=1). TILE_CLUSTER=0, the default, gives the ring without any of it. */
Test(cluster, gemm_ptx_has_multicast_copies_and_cluster_barriers_and_assembles) {
    setenv("TILE_EMIT_SPECIALIZED", "1", 1);
    tile_context *ctx = test_vm_context();
    tile_program *p = test_load_program(ctx, "stdlib/core/gemm.tile");
    for (int variant = 0; variant < 3; variant++) {
        setenv("TILE_CLUSTER", variant == 2 ? "0" : "1", 1); /* off by default */
        tile_constant consts[3] = {{.name = "STAGES", .i = 3}, {.name = "BN", .i = variant == 1 ? 256 : 128},
                                   {.name = "W", .i = variant == 1 ? 8 : 4}};
        tile_emit_options o = {.arch = "sm_90a"};
        char *ptx = NULL;
        size_t len = 0;
        cr_assert_eq(tile_program_emit(p, "gemm", consts, 3, TILE_EMIT_PTX, &o, &ptx, &len), TILE_OK, "%s",
                     tile_context_message(ctx));
        bool on = variant < 2;
        cr_assert_eq(strstr(ptx, "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes."
                                 "multicast::cluster") != NULL, on, "variant %d", variant);
        cr_assert_eq(strstr(ptx, "barrier.cluster.arrive.release.aligned;") != NULL, on);
        cr_assert_eq(strstr(ptx, "barrier.cluster.wait.acquire.aligned;") != NULL, on);
        cr_assert_eq(strstr(ptx, "%cluster_ctarank") != NULL, on);
        cr_assert_eq(strstr(ptx, "%cluster_nctarank") != NULL, on);
        /* the release of a stage: an arrival on each block's empty mbarrier, through mapa */
        cr_assert_eq(strstr(ptx, "mapa.shared::cluster.u32") != NULL, on, "variant %d", variant);
        cr_assert_eq(strstr(ptx, "mbarrier.arrive.release.cluster.shared::cluster.b64 _,") != NULL, on);
        cr_assert_eq(strstr(ptx, "mbarrier.init.shared::cta.b64 [%r") != NULL && strstr(ptx, "], 2;") != NULL, on);
        cr_assert_not_null(strstr(ptx, "fence.mbarrier_init.release.cluster;"));
        cr_assert_null(strstr(ptx, ".reqnctapercluster"));
        cr_assert_null(strstr(ptx, ".explicitcluster"));
        char path[4096];
        if (backend_find_ptxas(path, sizeof path, NULL)) {
            Strbuf cubin = {0}, err = {0};
            cr_assert(backend_ptx_to_cubin(ptx, len ? len : strlen(ptx), BACKEND_ARCH_SM90A, CUBIN_TOOL_PTXAS, &cubin,
                                           &err),
                      "variant %d: %s", variant, sb_str(&err));
            cr_assert_eq(memcmp(cubin.data, "\x7f" "ELF", 4), 0);
            sb_free(&cubin);
            sb_free(&err);
        }
        /* ptxas -v: no spills (the release adds registers only in thread 0's arrivals) */
        char *report = test_ptxas_report(ptx, len);
        cr_assert(!report || test_ptxas_no_spills(report), "variant %d spills: %s", variant, report);
        free(report);
        tile_string_free(ptx);
    }
    unsetenv("TILE_CLUSTER");
    unsetenv("TILE_EMIT_SPECIALIZED");
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* `mbarrier_arrive ..., cluster 2` reads back and prints as written; on the VM it is both blocks'
 * arrivals on the block's mbarrier (a phase of `count 2` completes with it: the wait returns), an
 * error in a launch without clusters (grid x 1), and the reader's verifier
 * refuses it in a kernel without `cluster 2`. */
static IrModule *arrive_module(const char *cluster, DiagList *d) {
    Strbuf text = {0};
    sb_printf(&text,
              "kernel @k(%%0: tensor<f32>[N])%s\ngrid {\n  %%1 = dim %%0, axis 0 : i32\n  yield %%1\n}\nbody {\n"
              "  %%1 = shared_alloc : shared<i64>[2]\n  %%2 = const 1 : i32\n  %%3 = const 0 : i32\n"
              "  mbarrier_init %%1, count 2\n  mbarrier_arrive %%1, %%2, cluster 2\n  mbarrier_wait %%1, %%2, %%3\n}\n",
              cluster);
    IrModule *m = ir_parse_module("arrive.ir", sb_str(&text), text.len, d);
    sb_free(&text);
    return m;
}

static bool run_arrive(IrModule *m, int64_t blocks, Strbuf *err) {
    float x[2] = {0};
    tile_arg arg = {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, x, 1, &blocks)};
    return vm_launch_threads(ir_module_find(m, "k"), &arg, 1, 1, err);
}

Test(cluster, an_arrival_across_the_cluster_reads_back_runs_and_is_checked) {
    DiagList d = {0};
    IrModule *m = arrive_module(" cluster 2", &d);
    cr_assert_not_null(m, "%s", sb_str(&d.text));
    cr_assert(ir_verify_module(m, &d), "%s", sb_str(&d.text));
    Strbuf out = {0}, err = {0};
    ir_print_module(m, &out);
    cr_assert(strstr(sb_str(&out), "  mbarrier_arrive %1, %2, cluster 2\n"), "%s", sb_str(&out));
    cr_assert(run_arrive(m, 2, &err), "%s", sb_str(&err));
    cr_assert_not(run_arrive(m, 1, &err));
    cr_assert(strstr(sb_str(&err), "arrive.ir:11:3: mbarrier_arrive: an arrival across a cluster of 2 in a launch "
                                   "without clusters"), "%s", sb_str(&err));
    ir_module_free(m);
    sb_free(&out), sb_free(&err);
    m = arrive_module("", &d);
    cr_assert_null(m);
    cr_assert(strstr(sb_str(&d.text), "arrive.ir:11:3: error: verify: mbarrier_arrive: cluster 2 needs a kernel of "
                                      "clusters of 2 blocks (the kernel has 0)"), "%s", sb_str(&d.text));
    diag_free(&d);
}
