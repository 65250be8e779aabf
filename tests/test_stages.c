/*
 * test_stages.c: the stages pass (software pipelining through shared buffers and asynchronous
 * copies) judged by the VM. The gemm of stdlib/core is compiled with and without the GPU passes;
 * the pass must have made its ring (buffers, copies, waits, a barrier), the VM's results of both
 * must be bit-identical at shapes with tails, and a wait made one group too shallow must be
 * caught by the VM as a read of a stage that is still being copied.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "frontend/frontend.h"
#include "ir/ir.h"
#include "ir/mma.h"
#include "ir/tma.h"
#include "runtime/runtime.h"
#include "runtime/vm.h"
#include "backend/backend.h"
#include "testutil.h"

typedef struct Compiled {
    AstFile *ast;
    IrModule *module;
    IrFunction *kernel;
} Compiled;

static Compiled compile_gemm_for(bool gpu, const Target *t, int stages, int bk, int bm, int bn);

static Compiled compile_gemm_tiles(bool gpu, int stages, int bk, int bm, int bn) {
    return compile_gemm_for(gpu, &(Target){.sm = 90, .arch_specific = true}, stages, bk, bm, bn);
}

static Compiled compile_gemm(bool gpu, int stages, int bk) { return compile_gemm_tiles(gpu, stages, bk, 128, 128); }

/* Kernel `kernel` of the standard-library file `path` for target t, with or without the GPU passes. */
static Compiled compile_stdlib(bool gpu, const Target *t, const char *path, const char *kernel,
                               const ConstBinding *consts, int n) {
    size_t len;
    char *text = test_read_source_file(path, &len);
    DiagList d = {0};
    Compiled c = {0};
    c.ast = parse_source(strrchr(path, '/') + 1, text, len, &d);
    free(text);
    cr_assert_not_null(c.ast, "%s", sb_str(&d.text));
    RtCompileOptions opt = {.gpu = gpu, .target = *t};
    c.module = rt_compile(c.ast, kernel, consts, n, &opt, &d, &c.kernel);
    cr_assert_not_null(c.module, "%s", sb_str(&d.text));
    diag_free(&d);
    return c;
}

static Compiled compile_gemm_for(bool gpu, const Target *t, int stages, int bk, int bm, int bn) {
    ConstBinding consts[5] = {{.name = "STAGES", .i = stages}, {.name = "BK", .i = bk}, {.name = "BM", .i = bm},
                              {.name = "BN", .i = bn}, {.name = "W", .i = bm * bn > 128 * 128 ? 8 : 4}};
    return compile_stdlib(gpu, t, "stdlib/core/gemm.tile", "gemm", consts, 5);
}

static void compiled_free(Compiled *c) {
    ir_module_free(c->module);
    ast_file_free(c->ast);
}

typedef struct Count {
    int copies, waits, barriers, buffers, tma_copies, arrives, mbarrier_waits, dot_waits, invals;
    IrOp *loop_wait, *mbarrier_wait, *dot;
} Count;

static bool count(IrOp *op, void *ctx) {
    Count *c = ctx;
    if (op->code == OP_COPY_ASYNC) c->copies++;
    if (op->code == OP_BARRIER) c->barriers++;
    if (op->code == OP_SHARED_ALLOC) c->buffers++;
    if (op->code == OP_COPY_TMA) c->tma_copies++;
    if (op->code == OP_MBARRIER_ARRIVE) c->arrives++;
    if (op->code == OP_MBARRIER_WAIT) c->mbarrier_waits++, c->mbarrier_wait = op;
    if (op->code == OP_DOT_WAIT) c->dot_waits++;
    if (op->code == OP_MBARRIER_INVAL) c->invals++;
    if (op->code == OP_DOT) c->dot = op;
    if (op->code == OP_ASYNC_WAIT) {
        c->waits++;
        if (op->parent->parent_op && op->parent->parent_op->code == OP_FOR) c->loop_wait = op;
    }
    return true;
}

/* Runs the kernel on the VM over fresh random bf16 inputs (same seed each time) into c. */
static bool run(const IrFunction *k, int64_t m, int64_t n, int64_t kk, uint16_t *c, Strbuf *err) {
    return test_vm_gemm_bf16(k, m, n, kk, 7, c, err);
}

/* plain and piped give the same bits at every [m, n, k] of shapes (the label names the case). */
static void same_results(const Compiled *plain, const Compiled *piped, const int64_t (*shapes)[3], size_t nshapes,
                         const char *name, int value) {
    for (size_t i = 0; i < nshapes; i++) {
        int64_t m = shapes[i][0], n = shapes[i][1], k = shapes[i][2];
        uint16_t *c1 = calloc((size_t)(m * n), 2), *c2 = calloc((size_t)(m * n), 2);
        Strbuf err = {0};
        cr_assert(run(plain->kernel, m, n, k, c1, &err), "%s", sb_str(&err));
        cr_assert(run(piped->kernel, m, n, k, c2, &err), "%s=%d %lldx%lldx%lld: %s", name, value, (long long)m,
                  (long long)n, (long long)k, sb_str(&err));
        cr_assert(memcmp(c1, c2, (size_t)(m * n) * 2) == 0, "%s=%d %lldx%lldx%lld: results differ", name, value,
                  (long long)m, (long long)n, (long long)k);
        sb_free(&err);
        free(c1), free(c2);
    }
}

Test(stages, gemm_ring_is_built_and_the_vm_results_do_not_change) {
    const int stages[] = {2, 3, 4};
    const int64_t shapes[][3] = {{200, 136, 100}, {128, 128, 64}, {65, 257, 300}, {1, 8, 16}};
    for (int si = 0; si < 3; si++) {
        Compiled plain = compile_gemm(false, stages[si], 32), piped = compile_gemm(true, stages[si], 32);
        Count cnt = {0};
        ir_walk(piped.kernel->body, count, &cnt);
        /* a and b each: one buffer, S - 1 copies ahead and one per iteration; a wait in the loop
         * and one after it; one barrier per iteration */
        cr_assert_eq(cnt.buffers, 2);
        cr_assert_eq(cnt.copies, 2 * stages[si], "S=%d: %d copies", stages[si], cnt.copies);
        cr_assert_eq(cnt.waits, 2);
        cr_assert_eq(cnt.barriers, 1);
        cr_assert_not_null(cnt.loop_wait);
        cr_assert_eq(cnt.loop_wait->ints[0], 2 * (stages[si] - 2));
        same_results(&plain, &piped, shapes, sizeof shapes / sizeof shapes[0], "S", stages[si]);
        compiled_free(&plain);
        compiled_free(&piped);
    }
}

Test(stages, a_wait_too_shallow_is_a_vm_error) {
    Compiled piped = compile_gemm(true, 3, 32);
    Count cnt = {0};
    ir_walk(piped.kernel->body, count, &cnt);
    cr_assert_not_null(cnt.loop_wait);
    cnt.loop_wait->ints[0] += 2; /* the stage about to be read may still be in flight */
    uint16_t *c = calloc(128 * 128, 2);
    Strbuf err = {0};
    cr_assert_not(run(piped.kernel, 128, 128, 256, c, &err));
    cr_assert(strstr(sb_str(&err), "asynchronous copy is still writing"), "%s", sb_str(&err));
    sb_free(&err);
    free(c);
    compiled_free(&piped);
}

/* 256 x 256 tiles with BK = 64 take 64 KB a stage: four stages would not fit the block's shared
 * memory (with room for the code generator's scratch), so the ring gets two. */
Test(stages, a_ring_that_would_not_fit_gets_fewer_stages) {
    Compiled piped = compile_gemm_tiles(true, 4, 64, 256, 256);
    Count cnt = {0};
    ir_walk(piped.kernel->body, count, &cnt);
    cr_assert_eq(cnt.copies, 2 * 2, "%d copies", cnt.copies);
    cr_assert_not_null(cnt.loop_wait);
    cr_assert_eq(cnt.loop_wait->ints[0], 0);
    compiled_free(&piped);
    Compiled fits = compile_gemm_tiles(true, 4, 32, 128, 128); /* 16 KB a stage: all four */
    Count c4 = {0};
    ir_walk(fits.kernel->body, count, &c4);
    cr_assert_eq(c4.copies, 2 * 4);
    compiled_free(&fits);
}

/* The GPU passes run per target on a copy of the kernel's IR: stdlib's gemm with 128 x 128 x 64
 * tiles and pipeline(4) takes 32 KB a stage; sm_90a's 227 KB fit four stages (with the quarter
 * kept free for the code generator's scratch), sm_80's 163 KB three. tile_program_emit (tilec
 * build --dump-after=stages --arch A) and the PTX for each arch show the two rings. */
static char *emit_gemm(tile_program *p, const char *arch, tile_emit_kind kind, const char *dump_after) {
    tile_constant c[5] = {{.name = "STAGES", .i = 4}, {.name = "BK", .i = 64}, {.name = "BM", .i = 128},
                          {.name = "BN", .i = 128}, {.name = "W", .i = 4}};
    tile_emit_options o = {.arch = arch, .dump_after = dump_after};
    char *out = NULL;
    tile_status st = tile_program_emit(p, "gemm", c, 5, kind, &o, &out, NULL);
    cr_assert_eq(st, TILE_OK, "%s: %s", arch, tile_context_message(NULL));
    return out;
}

/* The standard-library file at path as a program of a new VM context (*ctx). */
static tile_program *vm_program(const char *path, tile_context **ctx) {
    cr_assert_eq(tile_context_create(TILE_DEVICE_VM, 0, ctx), TILE_OK);
    tile_program *p;
    size_t len;
    char *text = test_read_source_file(path, &len);
    cr_assert_eq(tile_program_from_string(*ctx, strrchr(path, '/') + 1, text, len, &p), TILE_OK);
    free(text);
    return p;
}

Test(stages, each_target_gets_its_own_ring) {
    tile_context *ctx;
    tile_program *p = vm_program("stdlib/core/gemm.tile", &ctx);
    char *ir80 = emit_gemm(p, "sm_80", TILE_EMIT_IR, "stages"), *ir90 = emit_gemm(p, "sm_90a", TILE_EMIT_IR, "stages");
    cr_assert(strstr(ir80, "async_wait pending 2") && !strstr(ir80, "async_wait pending 4"), "%s", ir80);
    cr_assert(strstr(ir90, "async_wait pending 4"), "%s", ir90);
    cr_assert(strstr(ir80, "shared<bf16>[3, 128, 64]") && strstr(ir90, "shared<bf16>[4, 128, 64]"));
    /* the same lowering serves both: the target-independent dump is one text */
    char *dce80 = emit_gemm(p, "sm_80", TILE_EMIT_IR, "dce"), *dce90 = emit_gemm(p, "sm_90a", TILE_EMIT_IR, "dce");
    cr_assert_str_eq(dce80, dce90);
    cr_assert(!strstr(dce80, "copy_async"));
    tile_string_free(ir80), tile_string_free(ir90), tile_string_free(dce80), tile_string_free(dce90);
#ifdef TILE_HAVE_LLVM
    char *ptx80 = emit_gemm(p, "sm_80", TILE_EMIT_PTX, NULL), *ptx90 = emit_gemm(p, "sm_90a", TILE_EMIT_PTX, NULL);
    cr_assert(strstr(ptx80, "cp.async.wait_group \t2;") && !strstr(ptx80, "cp.async.wait_group \t4;"));
    cr_assert(strstr(ptx90, "cp.async.wait_group \t4;"));
    tile_string_free(ptx80), tile_string_free(ptx90);
#endif
    /* TMA only on sm_90a: with every launch fact (TILE_EMIT_SPECIALIZED=1, what tilec build shows
     * for contiguous aligned tensors) A's 128-byte rows go through copy_tma there */
    setenv("TILE_EMIT_SPECIALIZED", "1", 1);
    char *tma80 = emit_gemm(p, "sm_80", TILE_EMIT_IR, "stages"), *tma90 = emit_gemm(p, "sm_90a", TILE_EMIT_IR, "stages");
    cr_assert(!strstr(tma80, "copy_tma") && strstr(tma80, "copy_async"), "%s", tma80);
    cr_assert(strstr(tma90, "copy_tma") && strstr(tma90, "mbarrier_wait"), "%s", tma90);
    tile_string_free(tma80), tile_string_free(tma90);
#ifdef TILE_HAVE_LLVM
    char *tptx80 = emit_gemm(p, "sm_80", TILE_EMIT_PTX, NULL), *tptx90 = emit_gemm(p, "sm_90a", TILE_EMIT_PTX, NULL);
    cr_assert(!strstr(tptx80, "cp.async.bulk.tensor") && strstr(tptx90, "cp.async.bulk.tensor"));
    tile_string_free(tptx80), tile_string_free(tptx90);
#endif
    unsetenv("TILE_EMIT_SPECIALIZED");
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* ---- TMA rings (sm_90a) ---------------------------------------------------------------------- */
/* (no_tma_store: the result stays a plain store, as these tests count the rings' ops and maps;
 * tests/test_epilogue.c tests the TMA stores) */
static const Target tma_target = {.sm = 90, .arch_specific = true, .every_fact = true, .tma = true, .no_wgmma = true,
                                  .no_tma_store = true};

/* On sm_90a with wgmma (the default), the dot reads both operands from rings in its descriptors'
 * layouts: both tiles go through TMA at BN = 64 and 128 (B's [64, 128] as two column blocks of one
 * ring: split(2,64,4096)), the dot is asynchronous and followed by `dot_wait pending 1` and a
 * barrier before the next copies (the stage the previous dot read), `dot_wait pending 0` follows the
 * loop, and the VM gives the results of the kernel without the GPU passes, bit for bit. */
Test(stages, wgmma_ring_is_asynchronous_and_the_vm_results_do_not_change) {
    const int64_t shapes[][3] = {{200, 136, 100}, {128, 128, 64}, {65, 257, 300}, {1, 8, 16}};
    Target t = tma_target;
    t.no_wgmma = false;
    const int bns[] = {64, 128};
    for (int bi = 0; bi < 2; bi++) {
        Compiled plain = compile_gemm_for(false, &t, 3, 64, 128, bns[bi]);
        Compiled piped = compile_gemm_for(true, &t, 3, 64, 128, bns[bi]);
        Count cnt = {0};
        ir_walk(piped.kernel->body, count, &cnt);
        cr_assert_eq(cnt.tma_copies, 3 * 2, "BN=%d: %d TMA copies", bns[bi], cnt.tma_copies);
        cr_assert_eq(cnt.copies, 0);
        cr_assert_eq(cnt.waits, 0);
        cr_assert_eq(cnt.dot_waits, 2);
        cr_assert_eq(cnt.invals, 1); /* after the loop */
        IrOp *dot = cnt.dot;
        cr_assert(dot && dot->nints == 3 && mma_is_wgmma((MmaInstr)dot->ints[0]) && dot->ints[2] == 1);
        cr_assert_eq(dot->operands[1]->type->shared->split[1], bns[bi] > 64 ? 64 : 0);
        IrOp *w = dot->next, *bar = w ? w->next : NULL;
        cr_assert(w && w->code == OP_DOT_WAIT && w->ints[0] == 1 && w->operands[0] == dot->results[0]);
        cr_assert(bar && bar->code == OP_BARRIER);
        cr_assert_eq(dot->parent->last->operands[0], w->results[0]); /* yielded */
        same_results(&plain, &piped, shapes, sizeof shapes / sizeof shapes[0], "BN", bns[bi]);
        compiled_free(&plain);
        compiled_free(&piped);
    }
}

/* With wgmma off (no_wgmma: the dot on mma.sync), BK = BN = 64 both tiles have 128-byte rows: both
 * go through TMA (no cp.async left); with
 * BN = 128, B's 256-byte rows keep cp.async in the same ring. Both give the VM the results of the
 * kernel without the GPU passes, bit for bit, at shapes with tails (the box's out-of-bounds
 * elements read 0, as load's). Without facts, or on sm_80, the ring is cp.async only. */
Test(stages, tma_ring_is_built_and_the_vm_results_do_not_change) {
    const int64_t shapes[][3] = {{200, 136, 100}, {128, 128, 64}, {65, 257, 300}, {1, 8, 16}};
    const int bns[] = {64, 128};
    for (int bi = 0; bi < 2; bi++) {
        Compiled plain = compile_gemm_for(false, &tma_target, 3, 64, 128, bns[bi]);
        Compiled piped = compile_gemm_for(true, &tma_target, 3, 64, 128, bns[bi]);
        Count cnt = {0};
        ir_walk(piped.kernel->body, count, &cnt);
        int tma_loads = bns[bi] == 64 ? 2 : 1;
        cr_assert_eq(cnt.tma_copies, 3 * tma_loads, "BN=%d: %d TMA copies", bns[bi], cnt.tma_copies);
        cr_assert_eq(cnt.copies, 3 * (2 - tma_loads));
        cr_assert_eq(cnt.arrives, 3); /* two in the prologue, one per iteration */
        cr_assert_eq(cnt.mbarrier_waits, 1);
        cr_assert_eq(cnt.invals, 1);
        cr_assert_eq(cnt.buffers, 3);
        cr_assert_eq(cnt.waits, bns[bi] == 64 ? 0 : 2);
        same_results(&plain, &piped, shapes, sizeof shapes / sizeof shapes[0], "BN", bns[bi]);
        compiled_free(&plain);
        compiled_free(&piped);
    }
    Target no_facts = tma_target, sm80 = tma_target;
    no_facts.every_fact = false;
    sm80.sm = 80, sm80.arch_specific = false;
    const Target *plain_targets[] = {&no_facts, &sm80};
    for (int ti = 0; ti < 2; ti++) {
        Compiled c = compile_gemm_for(true, plain_targets[ti], 3, 64, 128, 64);
        Count cnt = {0};
        ir_walk(c.kernel->body, count, &cnt);
        cr_assert_eq(cnt.tma_copies, 0, "target %d", ti);
        cr_assert_eq(cnt.copies, 2 * 3, "target %d", ti);
        compiled_free(&c);
    }
}

/* A wait for the wrong phase parity: on the GPU it returns at once while the copy is still in
 * flight (or never); the VM reports it. Iteration 3 of a 3-stage ring waits for the second phase
 * of mbarrier 0 (parity 1); a constant parity 0 is wrong there. */
Test(stages, a_tma_wait_on_the_wrong_phase_is_a_vm_error) {
    Compiled piped = compile_gemm_for(true, &tma_target, 3, 64, 128, 64);
    Count cnt = {0};
    ir_walk(piped.kernel->body, count, &cnt);
    cr_assert_not_null(cnt.mbarrier_wait);
    IrBuilder b = {.module = piped.module};
    ir_builder_before(&b, cnt.mbarrier_wait);
    ir_set_operand(cnt.mbarrier_wait, 2, ir_const_int(&b, ir_scalar_type(piped.module, elem_i32()), 0));
    uint16_t *c = calloc(128 * 64, 2);
    Strbuf err = {0};
    cr_assert(run(piped.kernel, 128, 64, 3 * 64, c, &err), "three iterations only use parity 0: %s", sb_str(&err));
    cr_assert_not(run(piped.kernel, 128, 64, 4 * 64, c, &err));
    cr_assert(strstr(sb_str(&err), "waits for a phase of parity 0 of mbarrier 0"), "%s", sb_str(&err));
    sb_free(&err);
    free(c);
    compiled_free(&piped);
}

/* Reading a stage before its mbarrier's wait: the copy is still in flight. */
Test(stages, reading_a_tma_stage_before_its_wait_is_a_vm_error) {
    Compiled piped = compile_gemm_for(true, &tma_target, 3, 64, 128, 64);
    Count cnt = {0};
    ir_walk(piped.kernel->body, count, &cnt);
    cr_assert_not_null(cnt.mbarrier_wait);
    ir_op_remove(cnt.mbarrier_wait);
    uint16_t *c = calloc(128 * 64, 2);
    Strbuf err = {0};
    cr_assert_not(run(piped.kernel, 128, 64, 128, c, &err));
    cr_assert(strstr(sb_str(&err), "asynchronous copy is still writing"), "%s", sb_str(&err));
    sb_free(&err);
    free(c);
    compiled_free(&piped);
}

#ifdef TILE_HAVE_LLVM
/* Ahead-of-time images for sm_80 and sm_90a (tilec build --emit c-header --arch sm_80,sm_90a):
 * each arch's GPU passes run on their own copy, so the sm_90a image has the 4-stage ring (128 KB)
 * and the sm_80 image the 3-stage one (96 KB) that its shared memory allows; the image table of
 * the C source records each image's shared memory. No image has a TMA ring (no launch facts). */
Test(stages, aot_images_get_their_own_ring_per_arch) {
    tile_context *ctx;
    tile_program *p = vm_program("stdlib/core/gemm.tile", &ctx);
    tile_constant c[1] = {{.name = "STAGES", .i = 4}};
    const char *archs[2] = {"sm_80", "sm_90a"};
    tile_aot_options o = {.archs = archs, .narchs = 2, .require_images = 1};
    char *header, *source, *notes;
    cr_assert_eq(tile_program_emit_c(p, c, 1, &o, &header, &source, &notes), TILE_OK, "%s", tile_context_message(ctx));
    /* the gemm's 8 warps (its default) and each arch's own ring size */
    const char *image80 = strstr(source, "{\"sm_80\"");
    cr_assert(strstr(source, "{\"sm_80\", gemm_gemm_sm_80, sizeof gemm_gemm_sm_80, 256u, 98304u}"), "%.120s",
              image80 ? image80 : "no sm_80 image");
    cr_assert(strstr(source, "{\"sm_90a\", gemm_gemm_sm_90a, sizeof gemm_gemm_sm_90a, 256u, 131072u}"));
    tile_string_free(header), tile_string_free(source), tile_string_free(notes);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* The code of a TMA ring for sm_90a: one tensor map parameter per TMA'd tensor (128 bytes,
 * 64-aligned), mbarrier init, expect_tx, the bulk tensor copies and the parity waits; ptxas
 * assembles it (where it is installed). The same IR for sm_80 is refused as unsupported. */
Test(stages, tma_ring_ptx_for_sm_90a) {
    Compiled piped = compile_gemm_for(true, &tma_target, 3, 64, 128, 64);
    CodegenParamSpec *all = calloc(piped.kernel->nparams, sizeof *all);
    for (uint32_t i = 0; i < piped.kernel->nparams; i++) all[i] = target_param_facts(&tma_target, piped.kernel, i);
    CodegenOptions opt = {.arch = BACKEND_ARCH_SM90A, .spec = all};
    Strbuf ptx = {0}, err = {0};
    CodegenInfo info = {0};
    cr_assert(backend_compile_ptx(piped.kernel, &opt, &ptx, &info, &err), "%s", sb_str(&err));
    const char *text = sb_str(&ptx);
    cr_assert_eq(info.ntma, 2);
    cr_assert(info.tma[0].param == 0 && info.tma[0].box[0] == 128 && info.tma[0].box[1] == 64 &&
              info.tma[0].swizzle == 128 && info.tma[0].elem_bytes == 2);
    cr_assert(info.tma[1].param == 1 && info.tma[1].box[0] == 64 && info.tma[1].box[1] == 64);
    cr_assert(strstr(text, ".param .align 64 .b8 gemm_param_16[128]"), "%s", text);
    cr_assert(strstr(text, "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"));
    cr_assert(strstr(text, "mbarrier.init.shared::cta.b64"));
    cr_assert(strstr(text, "mbarrier.expect_tx"));
    cr_assert(strstr(text, "mbarrier.try_wait.parity.shared::cta.b64"));
    cr_assert(!strstr(text, "cp.async.cg"), "no cp.async left when both tiles go through TMA");
    char path[4096];
    if (backend_find_ptxas(path, sizeof path, NULL)) {
        Strbuf cubin = {0}, perr = {0};
        cr_assert(backend_ptx_to_cubin(ptx.data, ptx.len, BACKEND_ARCH_SM90A, CUBIN_TOOL_PTXAS, &cubin, &perr), "%s",
                  sb_str(&perr));
        sb_free(&cubin), sb_free(&perr);
    }
    sb_clear(&err);
    opt.arch = BACKEND_ARCH_SM80;
    Strbuf ptx80 = {0};
    cr_assert_not(backend_compile_ptx(piped.kernel, &opt, &ptx80, &info, &err));
    cr_assert(info.unsupported && strstr(sb_str(&err), "TMA copies need sm_90a"), "%s", sb_str(&err));
    sb_free(&ptx), sb_free(&ptx80), sb_free(&err);
    free(all);
    compiled_free(&piped);
}
#endif

/* ---- attention (both dots of a loop on wgmma, operand a from registers) --------------------------- */

typedef struct FlashDots {
    int wgmma, mma_sync, a_regs, a_shared, b_kmajor, b_nmajor;
} FlashDots;

static bool flash_dot(IrOp *op, void *ctx) {
    FlashDots *c = ctx;
    if (op->code != OP_DOT || op->nints < 1) return true;
    if (!mma_is_wgmma((MmaInstr)op->ints[0])) {
        c->mma_sync++;
        return true;
    }
    c->wgmma++;
    c->a_regs += op->operands[0]->type->kind == TY_TILE;
    /* Q: its own buffer (not a ring view), in the wgmma layout */
    const IrType *ta = op->operands[0]->type;
    c->a_shared += ta->kind == TY_SHARED && op->operands[0]->def->code == OP_SHARED_ALLOC &&
                   shared_layout_is_wgmma(ta->shared, 1);
    const SharedLayout *lb = op->operands[1]->type->shared;
    c->b_kmajor += lb && lb->strides[0] == 1;
    c->b_nmajor += lb && lb->strides[1] == 1;
    return true;
}

static FlashDots flash_dots(bool no_wgmma) {
    size_t len;
    char *text = test_read_source_file("stdlib/attention/flash_fwd.tile", &len);
    DiagList d = {0};
    AstFile *ast = parse_source("flash_fwd.tile", text, len, &d);
    free(text);
    cr_assert_not_null(ast, "%s", sb_str(&d.text));
    ConstBinding consts[3] = {{.name = "BN", .i = 64}, {.name = "BM", .i = 128}, {.name = "W", .i = 8}};
    RtCompileOptions opt = {.gpu = true, .target = tma_target};
    opt.target.no_wgmma = no_wgmma;
    IrFunction *kernel;
    IrModule *m = rt_compile(ast, "flash_fwd", consts, 3, &opt, &d, &kernel);
    cr_assert_not_null(m, "%s", sb_str(&d.text));
    FlashDots c = {0};
    ir_walk(kernel->body, flash_dot, &c);
    ir_module_free(m);
    ast_file_free(ast);
    diag_free(&d);
    return c;
}

/* flash_fwd on sm_90a: the four dots (Q K^T and P V in each of the two key loops) run on wgmma:
 * Q read from a buffer of its own in the wgmma layout (copied once before the loops), P from
 * registers (the A fragment layout: the previous dot's accumulator renamed), K^T from its ring as a
 * k-major view and V as an n-major one; with no_wgmma all four stay on mma.sync. The VM results
 * after these passes are test_attention_after_gpu_passes_sm90a's. */
Test(stages, flash_dots_run_on_wgmma) {
    FlashDots w = flash_dots(false);
    cr_assert_eq(w.wgmma, 4, "%d wgmma dots, %d mma.sync", w.wgmma, w.mma_sync);
    cr_assert_eq(w.a_shared, 2);
    cr_assert_eq(w.a_regs, 2);
    cr_assert_eq(w.b_kmajor, 2);
    cr_assert_eq(w.b_nmajor, 2);
    FlashDots s = flash_dots(true);
    cr_assert_eq(s.wgmma, 0);
    cr_assert_eq(s.mma_sync, 4);
}

/* ---- warp specialization (opt-in) ------------------------------------------------------------ */

typedef struct Roles {
    int roles, producer_copies, consumer_waits, releases;
    IrOp *op;
} Roles;

static bool count_roles(IrOp *op, void *ctx) {
    Roles *r = ctx;
    if (op->code == OP_WARP_ROLES) r->roles++, r->op = op;
    return true;
}

static bool count_role_ops(IrOp *op, void *ctx) {
    int *n = ctx;
    n[0] += op->code == OP_COPY_TMA;
    n[1] += op->code == OP_MBARRIER_WAIT;
    n[2] += op->code == OP_MBARRIER_ARRIVE;
    n[3] += op->code == OP_DOT_WAIT;
    return true;
}

/* With `specialize` on sm_90a (TILE_WARP_SPECIALIZE=1 at run time), gemm's TMA ring becomes two
 * warp roles, last in the body: a producer warpgroup of 40 registers whose loop waits for an empty
 * stage, copies A and B by TMA and arrives on the full mbarrier, and the kernel's 4 (or 8, at
 * BN = 256) warps as consumers (232 registers) that wait for the full stage, run the dot (wgmma,
 * and mma.sync with no_wgmma) on it in place, release it and store C; the kernel has 8 (12)
 * warps. A wgmma dot stays in flight (dot_wait 1 in the loop, 0 after it). The VM, which runs the
 * roles with blocking waits, gives the plain kernel's bits at shapes with tails, with K long
 * enough for the ring to wrap. Without the word the ring is built as before. */
Test(stages, specialize_splits_a_tma_ring_into_producer_and_consumer_roles) {
    const int64_t shapes[][3] = {{200, 136, 448}, {128, 128, 64}, {65, 257, 300}, {1, 8, 16}};
    for (int c = 0; c < 3; c++) {
        Target t = tma_target;
        int wg = c > 0;
        t.no_wgmma = !wg;
        t.specialize = true;
        int bn = c == 0 ? 64 : c == 1 ? 128 : 256; /* mma.sync rings are TMA'd only with 128-byte rows */
        int consumers = bn == 256 ? 8 : 4;
        Compiled plain = compile_gemm_for(false, &t, 3, 64, 128, bn);
        Compiled spec = compile_gemm_for(true, &t, 3, 64, 128, bn);
        Roles r = {0};
        ir_walk(spec.kernel->body, count_roles, &r);
        cr_assert_eq(r.roles, 1);
        cr_assert_eq(spec.kernel->body->last, r.op);
        cr_assert_eq(spec.kernel->num_warps, 4 + consumers);
        cr_assert(r.op->nregions == 2 && ir_role_warps(r.op, 0) == 4 && ir_role_regs(r.op, 0) == 40 &&
                  ir_role_warps(r.op, 1) == consumers && ir_role_regs(r.op, 1) == 232);
        int prod[4] = {0}, cons[4] = {0};
        ir_walk(r.op->regions[0], count_role_ops, prod);
        ir_walk(r.op->regions[1], count_role_ops, cons);
        cr_assert(prod[0] == 2 && prod[1] == 1 && prod[2] == 1, "producer: %d copies, %d waits, %d arrives",
                  prod[0], prod[1], prod[2]);
        cr_assert(cons[0] == 0 && cons[1] == 1 && cons[2] == 1, "consumer: %d copies, %d waits, %d arrives", cons[0],
                  cons[1], cons[2]);
        cr_assert_eq(cons[3], wg ? 2 : 0, "consumer: %d dot_waits", cons[3]);
        same_results(&plain, &spec, shapes, sizeof shapes / sizeof shapes[0], "wgmma", wg);
        compiled_free(&plain);
        compiled_free(&spec);
    }
    Compiled ring = compile_gemm_for(true, &tma_target, 3, 64, 128, 128);
    Roles none = {0};
    ir_walk(ring.kernel->body, count_roles, &none);
    cr_assert_eq(none.roles, 0);
    compiled_free(&ring);
}

/* flash_fwd's PTX for sm_90a: every register a wgmma reads is written before the wgmma.fence of its
 * group (the accumulators and P's packed fragments pass through the fence's asm), so no cvt that
 * packs P lies between a fence and the first wgmma.mma_async after it (ptxas would otherwise
 * inject warpgroup.arrive and serialize the group: warning C7519). */
Test(stages, flash_wgmma_registers_are_written_before_the_fence) {
    tile_context *ctx;
    tile_program *p = vm_program("stdlib/attention/flash_fwd.tile", &ctx);
    tile_emit_options o = {.arch = "sm_90a"};
    char *ptx = NULL;
    cr_assert_eq(tile_program_emit(p, "flash_fwd", NULL, 0, TILE_EMIT_PTX, &o, &ptx, NULL), TILE_OK, "%s",
                 tile_context_message(ctx));
    int fences = 0, register_a = 0;
    for (const char *f = strstr(ptx, "wgmma.fence.sync.aligned"); f; f = strstr(f + 1, "wgmma.fence.sync.aligned")) {
        const char *mma = strstr(f, "wgmma.mma_async");
        cr_assert_not_null(mma);
        const char *cvt = strstr(f, "cvt.rn.bf16x2.f32");
        cr_assert(!cvt || cvt > mma, "a bf16 pack between a wgmma.fence and its wgmma.mma_async");
        register_a += strncmp(strchr(mma, '}') + 1, ", {", 3) == 0; /* "{d...}, {a0, a1, a2, a3}" */
        fences++;
    }
    cr_assert_eq(fences, 4); /* Q K^T and P V in each of the two key loops */
    cr_assert_eq(register_a, 2);
    tile_string_free(ptx);
    tile_context_destroy(ctx);
}

/* ---- FP8 on wgmma (m64nNk32 .e4m3, both operands k-major) ----------------------------------------- */

/* Kernel `kernel` of stdlib/core/gemm_fp8.tile for target t, with or without the GPU passes. */
static Compiled compile_fp8_for(bool gpu, const Target *t, const char *kernel, const ConstBinding *consts, int n) {
    return compile_stdlib(gpu, t, "stdlib/core/gemm_fp8.tile", kernel, consts, n);
}

/* Random f8e4m3 bits, NaN (0x7f, 0xff) excluded. */
static void fp8_fill(uint8_t *x, int64_t n, uint64_t *s) {
    for (int64_t i = 0; i < n; i++) {
        uint8_t v = (uint8_t)((*s = *s * 6364136223846793005ull + 1) >> 56);
        x[i] = (v & 0x7f) == 0x7f ? 0x3c : v;
    }
}

/* Runs gemm_fp8 (block: gemm_fp8_block) on the VM over fresh random inputs (same seed each time)
 * into the bf16 c. */
static bool run_fp8(const IrFunction *k, bool block, int64_t m, int64_t n, int64_t kk, uint16_t *c, Strbuf *err) {
    int64_t kb = (kk + 127) / 128, nb = (n + 127) / 128;
    uint8_t *a = malloc((size_t)(m * kk)), *b = malloc((size_t)(n * kk));
    float *sa = malloc((size_t)(m * kb) * 4), *sb = malloc((size_t)(nb * kb) * 4);
    uint64_t s = 11;
    fp8_fill(a, m * kk, &s);
    fp8_fill(b, n * kk, &s);
    for (int64_t i = 0; i < m * kb; i++) sa[i] = 0.25f + (float)(i % 7) / 8.0f;
    for (int64_t i = 0; i < nb * kb; i++) sb[i] = 0.5f + (float)(i % 3) / 4.0f;
    int64_t da[2] = {m, kk}, db[2] = {n, kk}, dc[2] = {m, n}, one = 1, dsa[2] = {m, kb}, dsb[2] = {nb, kb};
    tile_arg args[5] = {
        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F8E4M3, a, 2, da)},
        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F8E4M3, b, 2, db)},
        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, c, 2, dc)},
        {.kind = TILE_ARG_TENSOR, .tensor = block ? tile_tensor_contiguous(TILE_F32, sa, 2, dsa)
                                                  : tile_tensor_contiguous(TILE_F32, sa, 1, &one)},
        {.kind = TILE_ARG_TENSOR, .tensor = block ? tile_tensor_contiguous(TILE_F32, sb, 2, dsb)
                                                  : tile_tensor_contiguous(TILE_F32, sb, 1, &one)},
    };
    bool ok = vm_launch_threads(k, args, 5, 2, err);
    free(a), free(b), free(sa), free(sb);
    return ok;
}

/* plain and piped (gemm_fp8, or gemm_fp8_block) give the same bits at every [m, n, k] of shapes. */
static void same_results_fp8(const Compiled *plain, const Compiled *piped, bool block, const int64_t (*shapes)[3],
                             size_t nshapes, int label) {
    for (size_t i = 0; i < nshapes; i++) {
        int64_t m = shapes[i][0], n = shapes[i][1], k = shapes[i][2];
        uint16_t *c1 = calloc((size_t)(m * n), 2), *c2 = calloc((size_t)(m * n), 2);
        Strbuf err = {0};
        cr_assert(run_fp8(plain->kernel, block, m, n, k, c1, &err), "%s", sb_str(&err));
        cr_assert(run_fp8(piped->kernel, block, m, n, k, c2, &err), "case %d %lldx%lldx%lld: %s", label, (long long)m,
                  (long long)n, (long long)k, sb_str(&err));
        cr_assert(memcmp(c1, c2, (size_t)(m * n) * 2) == 0, "case %d %lldx%lldx%lld: results differ", label,
                  (long long)m, (long long)n, (long long)k);
        bool nonzero = false;
        for (int64_t j = 0; j < m * n && !nonzero; j++) nonzero = (c1[j] & 0x7fff) != 0;
        cr_assert(nonzero, "case %d: every result is 0", label);
        sb_free(&err);
        free(c1), free(c2);
    }
}

/* gemm_fp8 and gemm_fp8_block on sm_90a with every launch fact, BK = 128 (a 128-byte row of f8):
 * the layout pass puts the dot on wgmma_m64k32_e4m3; stages gives both operands rings in the
 * descriptors' layouts for 1-byte elements (a k-major [BM, 128]; b k-major, the transposed view of
 * its [BN, 128] ring; rows of 128 with swizzle(3,4,3)), copied by TMA (BN = 256: b's box is 256
 * rows), the per-tensor dot asynchronous; the VM gives the results of the kernels without the GPU
 * passes bit for bit at shapes with tails, warp-specialized too. BK = 64 keeps mma.sync m16n8k32. */
Test(stages, fp8_gemm_on_wgmma_and_the_vm_results_do_not_change) {
    const int64_t shapes[][3] = {{200, 136, 300}, {128, 256, 256}, {65, 257, 130}, {1, 8, 16}};
    Target t = tma_target;
    t.no_wgmma = false;
    static const struct {
        const char *kernel;
        int bn, w;
    } cases[] = {{"gemm_fp8", 128, 4}, {"gemm_fp8", 256, 8}, {"gemm_fp8_block", 128, 4}};
    for (int ci = 0; ci < 3; ci++) {
        bool block = ci == 2;
        ConstBinding consts[4] = {{.name = "BN", .i = cases[ci].bn}, {.name = "W", .i = cases[ci].w},
                                  {.name = "STAGES", .i = 3}, {.name = "BK", .i = 128}};
        Compiled plain = compile_fp8_for(false, &t, cases[ci].kernel, consts, block ? 3 : 4);
        Compiled piped = compile_fp8_for(true, &t, cases[ci].kernel, consts, block ? 3 : 4);
        Count cnt = {0};
        ir_walk(piped.kernel->body, count, &cnt);
        IrOp *dot = cnt.dot;
        cr_assert(dot && dot->nints >= 2 && dot->ints[0] == MMA_WGMMA_E4M3, "case %d: not on wgmma e4m3", ci);
        cr_assert_eq(dot->nints == 3 && dot->ints[2] == 1, !block, "case %d: async", ci);
        const IrType *ta = dot->operands[0]->type, *tb = dot->operands[1]->type;
        cr_assert(ta->kind == TY_SHARED && shared_layout_is_wgmma_of(ta->shared, 1, 1), "case %d: a", ci);
        cr_assert(tb->kind == TY_SHARED && shared_layout_is_wgmma_of(tb->shared, 0, 1), "case %d: b k-major", ci);
        cr_assert(!shared_layout_is_wgmma(ta->shared, 1), "the 16-bit rule does not take 1-byte rows");
        cr_assert_eq(cnt.tma_copies, 3 * 2, "case %d: %d TMA copies", ci, cnt.tma_copies);
        cr_assert_eq(cnt.copies, 0);
        same_results_fp8(&plain, &piped, block, shapes, sizeof shapes / sizeof shapes[0], ci);
        compiled_free(&plain);
        compiled_free(&piped);
    }
    /* with `specialize` (TILE_WARP_SPECIALIZE=1) the ring becomes a TMA producer warpgroup and the
     * kernel's 4 warps as consumers running the wgmma on the stage in place: the same bits */
    Target spec_target = t;
    spec_target.specialize = true;
    ConstBinding four[2] = {{.name = "W", .i = 4}, {.name = "STAGES", .i = 3}};
    Compiled plain = compile_fp8_for(false, &spec_target, "gemm_fp8", four, 2);
    Compiled spec = compile_fp8_for(true, &spec_target, "gemm_fp8", four, 2);
    Roles r = {0};
    ir_walk(spec.kernel->body, count_roles, &r);
    cr_assert_eq(r.roles, 1);
    cr_assert_eq(spec.kernel->num_warps, 8);
    same_results_fp8(&plain, &spec, false, shapes, sizeof shapes / sizeof shapes[0], 3);
    compiled_free(&plain);
    compiled_free(&spec);
    ConstBinding bk64[2] = {{.name = "BK", .i = 64}, {.name = "STAGES", .i = 3}};
    Compiled narrow = compile_fp8_for(true, &t, "gemm_fp8", bk64, 2);
    Count cnt = {0};
    ir_walk(narrow.kernel->body, count, &cnt);
    cr_assert(cnt.dot && cnt.dot->ints[0] == MMA_M16N8K32_E4M3);
    compiled_free(&narrow);
}

/* An i8 GEMM with b given [N, K] and K steps of 128 on sm_90a with every launch fact: the dot on
 * wgmma_m64k32_s8 (s32 accumulator), both rings TMA'd in the 1-byte wgmma layouts; the VM gives
 * the bits of the kernel without the GPU passes (products summed in i32 with wrap-around) at shapes
 * with tails. */
Test(stages, i8_gemm_on_wgmma_and_the_vm_results_do_not_change) {
    const char *src = "kernel i8gemm(a: tensor<i8>[M, K], b: tensor<i8>[N, K], c: tensor<i32>[M, N])\n"
                      "  grid(cdiv(M, 64) * cdiv(N, 64))\n{\n"
                      "  let m0 = (block_id(0) / cdiv(N, 64)) * 64;\n  let n0 = (block_id(0) % cdiv(N, 64)) * 64;\n"
                      "  var acc = zeros<i32>[64, 64];\n"
                      "  for k in 0 .. K step 128 pipeline(3) {\n"
                      "    acc = dot(a[m0 :+ 64, k :+ 128], transpose(b[n0 :+ 64, k :+ 128]), acc);\n  }\n"
                      "  c[m0 :+ 64, n0 :+ 64] = acc;\n}\n";
    Target t = tma_target;
    t.no_wgmma = false;
    Compiled c[2] = {{0}};
    for (int gpu = 0; gpu < 2; gpu++) {
        DiagList d = {0};
        c[gpu].ast = parse_source("i8gemm.tile", src, strlen(src), &d);
        cr_assert_not_null(c[gpu].ast, "%s", sb_str(&d.text));
        RtCompileOptions opt = {.gpu = gpu == 1, .target = t};
        c[gpu].module = rt_compile(c[gpu].ast, "i8gemm", NULL, 0, &opt, &d, &c[gpu].kernel);
        cr_assert_not_null(c[gpu].module, "%s", sb_str(&d.text));
        diag_free(&d);
    }
    Count cnt = {0};
    ir_walk(c[1].kernel->body, count, &cnt);
    cr_assert(cnt.dot && cnt.dot->ints[0] == MMA_WGMMA_S8 && cnt.dot->nints == 3 && cnt.dot->ints[2] == 1);
    cr_assert_eq(cnt.tma_copies, 3 * 2);
    const int64_t shapes[][3] = {{100, 72, 300}, {64, 64, 128}, {1, 8, 16}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int64_t m = shapes[i][0], n = shapes[i][1], k = shapes[i][2];
        int8_t *a = malloc((size_t)(m * k)), *b = malloc((size_t)(n * k));
        int32_t *out[2] = {calloc((size_t)(m * n), 4), calloc((size_t)(m * n), 4)};
        uint64_t s = 5;
        for (int64_t j = 0; j < m * k; j++) a[j] = (int8_t)((s = s * 6364136223846793005ull + 1) >> 56);
        for (int64_t j = 0; j < n * k; j++) b[j] = (int8_t)((s = s * 6364136223846793005ull + 1) >> 56);
        int64_t da[2] = {m, k}, db[2] = {n, k}, dc[2] = {m, n};
        for (int gpu = 0; gpu < 2; gpu++) {
            tile_arg args[3] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_I8, a, 2, da)},
                                {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_I8, b, 2, db)},
                                {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_I32, out[gpu], 2, dc)}};
            Strbuf err = {0};
            cr_assert(vm_launch_threads(c[gpu].kernel, args, 3, 2, &err), "%s", sb_str(&err));
            sb_free(&err);
        }
        cr_assert(memcmp(out[0], out[1], (size_t)(m * n) * 4) == 0, "%lldx%lldx%lld: results differ", (long long)m,
                  (long long)n, (long long)k);
        bool nonzero = false;
        for (int64_t j = 0; j < m * n && !nonzero; j++) nonzero = out[0][j] != 0;
        cr_assert(nonzero);
        free(a), free(b), free(out[0]), free(out[1]);
    }
    compiled_free(&c[0]);
    compiled_free(&c[1]);
}

/* ---- TMA out of tensors of rank above 2 (flash_fwd's K and V) -------------------------------------- */

typedef struct FlashTma {
    int tma_rank4, tma_other, copies_rank4, copies_in_loops;
} FlashTma;

static bool count_flash_tma(IrOp *op, void *ctx) {
    FlashTma *c = ctx;
    bool in_loop = op->parent->parent_op != NULL;
    if (op->code == OP_COPY_TMA) {
        const IrType *tt = op->operands[0]->type, *dt = op->operands[1 + tt->rank]->type;
        if (tt->rank == 4 && op->noperands == 8 && dt->rank == 2) c->tma_rank4++;
        else c->tma_other++;
    }
    if (op->code == OP_COPY_ASYNC) {
        c->copies_rank4 += op->operands[0]->type->rank == 4;
        c->copies_in_loops += in_loop;
    }
    return true;
}

/* flash_fwd compiled for t (gpu: with the GPU passes) at BN and CAUSAL; D = 128, BM = 128, 8 warps. */
static Compiled compile_flash(bool gpu, const Target *t, int bn, int causal) {
    ConstBinding consts[2] = {{.name = "BN", .i = bn}, {.name = "CAUSAL", .i = causal}};
    return compile_stdlib(gpu, t, "stdlib/attention/flash_fwd.tile", "flash_fwd", consts, 2);
}

/* flash_fwd on sm_90a with every launch fact (wgmma on): the K and V tiles, [BN, D] slices of the
 * [B, HKV, S, D] tensors at scalar batch and head indices, are copied by TMA out of the rank-4
 * tensors (four origins: b, hk, n, 0; the box is 1 on b and hk), in both key loops (prologue and
 * steady state: 2 x 2 copies per tensor per loop, 8 in all); no cp.async is left in the loops (Q,
 * before them, keeps its one cp.async). Without facts, or on sm_80, K and V keep cp.async. */
Test(stages, flash_kv_loads_of_rank4_tensors_become_tma_rings) {
    Target wg = tma_target;
    wg.no_wgmma = false;
    const int bns[] = {64, 128};
    for (int i = 0; i < 2; i++) {
        Compiled c = compile_flash(true, &wg, bns[i], 0);
        FlashTma n = {0};
        ir_walk(c.kernel->body, count_flash_tma, &n);
        cr_assert_eq(n.tma_rank4, 8, "BN=%d: %d rank-4 TMA copies", bns[i], n.tma_rank4);
        cr_assert_eq(n.tma_other, 0);
        cr_assert_eq(n.copies_in_loops, 0, "BN=%d: %d cp.async copies left in the loops", bns[i], n.copies_in_loops);
        cr_assert_eq(n.copies_rank4, 1, "Q's copy before the loops");
        IrTmaMap maps[IR_MAX_TMA_MAPS];
        int nmaps = ir_tma_maps(c.kernel, maps);
        cr_assert_eq(nmaps, 2, "one map for K, one for V (%d)", nmaps);
        for (int m = 0; m < 2; m++) {
            cr_assert_eq(maps[m].param, 1 + m);
            cr_assert_eq(maps[m].rank, 4);
            cr_assert(maps[m].box[0] == 1 && maps[m].box[1] == 1 && maps[m].box[2] == bns[i] && maps[m].box[3] == 64,
                      "box [%lld, %lld, %lld, %lld]", (long long)maps[m].box[0], (long long)maps[m].box[1],
                      (long long)maps[m].box[2], (long long)maps[m].box[3]);
            cr_assert_eq(maps[m].swizzle, 128);
            cr_assert_eq(maps[m].elem_bytes, 2);
        }
        compiled_free(&c);
    }
    Target no_facts = wg, sm80 = wg;
    no_facts.every_fact = false;
    sm80.sm = 80, sm80.arch_specific = false;
    const Target *plain[] = {&no_facts, &sm80};
    for (int ti = 0; ti < 2; ti++) {
        Compiled c = compile_flash(true, plain[ti], 64, 0);
        FlashTma n = {0};
        ir_walk(c.kernel->body, count_flash_tma, &n);
        cr_assert_eq(n.tma_rank4 + n.tma_other, 0, "target %d", ti);
        cr_assert_gt(n.copies_in_loops, 0, "target %d", ti);
        compiled_free(&c);
    }
}

/* Runs flash_fwd on the VM over fresh random bf16 Q, K, V (the same seed each time) into o. */
static bool run_flash(const IrFunction *k, int64_t b, int64_t hq, int64_t hkv, int64_t s, uint16_t *o, Strbuf *err) {
    const int64_t d = 128;
    int64_t nq = b * hq * s * d, nkv = b * hkv * s * d;
    uint16_t *q = malloc((size_t)nq * 2), *kk = malloc((size_t)nkv * 2), *v = malloc((size_t)nkv * 2);
    uint64_t r = 11;
    uint16_t *bufs[3] = {q, kk, v};
    for (int t = 0; t < 3; t++)
        for (int64_t i = 0; i < (t ? nkv : nq); i++)
            bufs[t][i] = test_bf16_bits((float)((r = r * 6364136223846793005ull + 1) >> 40) / 16777216.0f * 4.0f - 2.0f);
    int64_t sq[4] = {b, hq, s, d}, skv[4] = {b, hkv, s, d};
    tile_arg args[5] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, q, 4, sq)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, kk, 4, skv)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, v, 4, skv)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, o, 4, sq)},
                        {.kind = TILE_ARG_FLOAT, .f = 0.088}};
    bool ok = vm_launch_threads(k, args, 5, 2, err);
    free(q), free(kk), free(v);
    return ok;
}

/* The VM's results of flash_fwd before and after the GPU passes for sm_90a with every launch fact
 * (the variant TILE_EMIT_SPECIALIZED=1 shows: K and V through rank-4 TMA rings, both dots on
 * wgmma) are bit-identical, causal and not, at BN 64 and 128, with S = 200 (a tail in the keys
 * and in the queries: the boxes' rows past S read 0), two batches and grouped-query heads (HQ = 4,
 * HKV = 2: the head origin is h / 2), so that origins in the wrong order read other data. */
Test(stages, flash_fwd_vm_results_do_not_change_with_rank4_tma_rings) {
    Target wg = tma_target;
    wg.no_wgmma = false;
    const int64_t b = 2, hq = 4, hkv = 2, s = 200, n = b * hq * s * 128;
    for (int causal = 0; causal < 2; causal++) {
        for (int bi = 0; bi < 2; bi++) {
            int bn = bi ? 128 : 64;
            Compiled plain = compile_flash(false, &wg, bn, causal);
            Compiled piped = compile_flash(true, &wg, bn, causal);
            FlashTma cnt = {0};
            ir_walk(piped.kernel->body, count_flash_tma, &cnt);
            cr_assert_eq(cnt.tma_rank4, 8);
            uint16_t *o1 = calloc((size_t)n, 2), *o2 = calloc((size_t)n, 2);
            Strbuf err = {0};
            cr_assert(run_flash(plain.kernel, b, hq, hkv, s, o1, &err), "%s", sb_str(&err));
            cr_assert(run_flash(piped.kernel, b, hq, hkv, s, o2, &err), "CAUSAL=%d BN=%d: %s", causal, bn, sb_str(&err));
            cr_assert(memcmp(o1, o2, (size_t)n * 2) == 0, "CAUSAL=%d BN=%d: results differ", causal, bn);
            int64_t nonzero = 0;
            for (int64_t i = 0; i < n; i++) nonzero += (o1[i] & 0x7fff) != 0;
            cr_assert_gt(nonzero, n / 2, "the output was written");
            sb_free(&err);
            free(o1), free(o2);
            compiled_free(&plain);
            compiled_free(&piped);
        }
    }
}

/* Batched GEMMs over tensors of rank 3 ([G, M, K]) and 5 ([P, Q, R, M, K]): the tiles of A and B
 * are sliced at scalar leading indices (from block_id(2)), so on sm_90a with every launch fact
 * they are copied by TMA with 3 and 5 origins (the box 1 on the leading dimensions; 5 is TMA's
 * largest rank), in the prologue and the steady state (3 copies each of A and B, 6 in all). The
 * VM's results before and after the GPU passes are bit-identical at sizes with tails in M, N and
 * K and several batches (a leading origin in the wrong place reads another batch). */
static const char batched_gemm_source[] =
    "kernel bgemm3<BM = 64, BN = 64, BK = 64>(a: tensor<bf16>[G, M, K], b: tensor<bf16>[G, K, N], c: tensor<f32>[G, M, N])\n"
    "  grid(cdiv(M, BM), cdiv(N, BN), G) warps(4)\n"
    "{\n"
    "  let g = block_id(2);\n"
    "  let m0 = block_id(0) * BM;\n"
    "  let n0 = block_id(1) * BN;\n"
    "  var acc = zeros<f32>[BM, BN];\n"
    "  for k in 0 .. K step BK pipeline(3) {\n"
    "    acc = dot(a[g, m0 :+ BM, k :+ BK], b[g, k :+ BK, n0 :+ BN], acc);\n"
    "  }\n"
    "  c[g, m0 :+ BM, n0 :+ BN] = acc;\n"
    "}\n"
    "\n"
    "kernel bgemm5<BM = 64, BN = 64, BK = 64>(a: tensor<bf16>[P, Q, R, M, K], b: tensor<bf16>[P, Q, R, K, N],\n"
    "    c: tensor<f32>[P, Q, R, M, N])\n"
    "  grid(cdiv(M, BM), cdiv(N, BN), P * Q * R) warps(4)\n"
    "{\n"
    "  let z = block_id(2);\n"
    "  let p = z / (Q * R);\n"
    "  let q = (z / R) % Q;\n"
    "  let r = z % R;\n"
    "  let m0 = block_id(0) * BM;\n"
    "  let n0 = block_id(1) * BN;\n"
    "  var acc = zeros<f32>[BM, BN];\n"
    "  for k in 0 .. K step BK pipeline(3) {\n"
    "    acc = dot(a[p, q, r, m0 :+ BM, k :+ BK], b[p, q, r, k :+ BK, n0 :+ BN], acc);\n"
    "  }\n"
    "  c[p, q, r, m0 :+ BM, n0 :+ BN] = acc;\n"
    "}\n";

static Compiled compile_batched(bool gpu, const char *kernel) {
    DiagList d = {0};
    Compiled c = {0};
    c.ast = parse_source("batched.tile", batched_gemm_source, sizeof batched_gemm_source - 1, &d);
    cr_assert_not_null(c.ast, "%s", sb_str(&d.text));
    Target t = tma_target;
    t.no_wgmma = false;
    t.no_tma_store = false; /* c's store by TMA too (rank 3 and 5) */
    RtCompileOptions opt = {.gpu = gpu, .target = t};
    c.module = rt_compile(c.ast, kernel, NULL, 0, &opt, &d, &c.kernel);
    cr_assert_not_null(c.module, "%s", sb_str(&d.text));
    diag_free(&d);
    return c;
}

typedef struct RankCopies {
    int rank, tma, other;
} RankCopies;

static bool count_rank_copies(IrOp *op, void *ctx) {
    RankCopies *c = ctx;
    if (op->code == OP_COPY_TMA) {
        if (op->operands[0]->type->rank == c->rank && op->noperands == (uint32_t)c->rank + 4) c->tma++;
        else c->other++;
    }
    if (op->code == OP_COPY_ASYNC) c->other++;
    return true;
}

/* Runs a batched gemm on the VM: lead[0..nlead) leading sizes, A [lead, m, k], B [lead, k, n]. */
static bool run_batched(const IrFunction *k, const int64_t *lead, int nlead, int64_t m, int64_t n, int64_t kk,
                        float *c, Strbuf *err) {
    int64_t g = 1, sa[5], sb[5], sc[5];
    for (int i = 0; i < nlead; i++) g *= lead[i], sa[i] = sb[i] = sc[i] = lead[i];
    sa[nlead] = m, sa[nlead + 1] = kk, sb[nlead] = kk, sb[nlead + 1] = n, sc[nlead] = m, sc[nlead + 1] = n;
    uint16_t *a = malloc((size_t)(g * m * kk) * 2), *b = malloc((size_t)(g * kk * n) * 2);
    uint64_t r = 5;
    for (int64_t i = 0; i < g * m * kk; i++) a[i] = test_bf16_bits((float)((r = r * 6364136223846793005ull + 1) >> 40) / 16777216.0f - 0.5f);
    for (int64_t i = 0; i < g * kk * n; i++) b[i] = test_bf16_bits((float)((r = r * 6364136223846793005ull + 1) >> 40) / 16777216.0f - 0.5f);
    tile_arg args[3] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, a, nlead + 2, sa)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, b, nlead + 2, sb)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, c, nlead + 2, sc)}};
    bool ok = vm_launch_threads(k, args, 3, 2, err);
    free(a), free(b);
    return ok;
}

Test(stages, batched_gemm_tma_of_rank3_and_rank5_tensors) {
    const char *kernels[2] = {"bgemm3", "bgemm5"};
    const int64_t leads[2][3] = {{3}, {2, 1, 2}};
    const int nleads[2] = {1, 3};
    const int64_t m = 100, n = 72, kk = 130;
    for (int i = 0; i < 2; i++) {
        Compiled plain = compile_batched(false, kernels[i]);
        Compiled piped = compile_batched(true, kernels[i]);
        RankCopies cnt = {.rank = nleads[i] + 2};
        ir_walk(piped.kernel->body, count_rank_copies, &cnt);
        cr_assert(cnt.tma == 6 && cnt.other == 0, "%s: %d TMA copies of rank %d, %d others", kernels[i], cnt.tma,
                  cnt.rank, cnt.other);
        IrTmaMap maps[IR_MAX_TMA_MAPS];
        /* a and b, then c's TMA store (the epilogue pass): f32 in 32-column (128-byte) boxes */
        cr_assert_eq(ir_tma_maps(piped.kernel, maps), 3);
        for (int d = 0; d < cnt.rank; d++) cr_assert_eq(maps[0].box[d], d < cnt.rank - 2 ? 1 : 64);
        for (int d = 0; d < cnt.rank; d++) cr_assert_eq(maps[2].box[d], d < cnt.rank - 2 ? 1 : d == cnt.rank - 2 ? 64 : 32);
        int64_t g = 1;
        for (int d = 0; d < nleads[i]; d++) g *= leads[i][d];
        float *c1 = calloc((size_t)(g * m * n), 4), *c2 = calloc((size_t)(g * m * n), 4);
        Strbuf err = {0};
        cr_assert(run_batched(plain.kernel, leads[i], nleads[i], m, n, kk, c1, &err), "%s", sb_str(&err));
        cr_assert(run_batched(piped.kernel, leads[i], nleads[i], m, n, kk, c2, &err), "%s: %s", kernels[i], sb_str(&err));
        cr_assert(memcmp(c1, c2, (size_t)(g * m * n) * 4) == 0, "%s: results differ", kernels[i]);
        cr_assert(c1[0] != 0 && c1[g * m * n - 1] != 0, "%s: the first and last batches were computed", kernels[i]);
        sb_free(&err);
        free(c1), free(c2);
        compiled_free(&plain);
        compiled_free(&piped);
    }
}
