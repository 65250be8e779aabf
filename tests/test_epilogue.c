/*
 * test_epilogue.c: the epilogue pass (TMA stores of a dot's result tile, sm_90a) judged by the VM
 * and by the code generator.
 *
 *   ir        the rewrite's shape: in gemm the store becomes shared_alloc (in the ring's bytes,
 *             after a barrier), shared_store, store_tma and one store_wait last; in
 *             gemm_persistent the buffer is allocated before the tile loop and each tile waits
 *             (store_wait pending 0, barrier) before writing it, so one tile's store overlaps the
 *             next tile's main loop; nothing changes without TMA, without launch facts, with
 *             no_tma_store, on sm_80, or for a store that is not a dot's result
 *   vm        gemm (BN 128 and 256), the gemm_epilogue variants (bias, activations, residual,
 *             swiglu; bf16, f16 and f32 results), gemm_persistent (both kernels) and gemm_fp8
 *             (per-tensor and block scales, bf16 and f32) give bit for bit the results of the
 *             kernels without the GPU passes at shapes with ragged edges (the box clipped)
 *   text      the IR after the passes prints and reads back unchanged
 *   races     without its store_wait before the next tile's write the VM reports the write of a
 *             buffer a store_tma still reads; without the last one, a block that ends early
 *   ptx       stmatrix (16-bit results), cp.async.bulk.tensor.2d.global.shared::cta.bulk_group,
 *             commit_group, wait_group.read and fence.proxy.async; ptxas (when found) assembles
 *             it for sm_90a without spills
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "frontend/frontend.h"
#include "ir/ir.h"
#include "ir/layout.h"
#include "ir/tma.h"
#include "runtime/runtime.h"
#include "runtime/vm.h"
#include "testutil.h"

typedef struct Compiled {
    AstFile *ast;
    IrModule *module;
    IrFunction *kernel;
} Compiled;

static const Target tma_target = {.sm = 90, .arch_specific = true, .every_fact = true, .tma = true};

static Compiled compile(bool gpu, const Target *t, const char *path, const char *kernel, const ConstBinding *consts,
                        int n) {
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

static void compiled_free(Compiled *c) {
    ir_module_free(c->module);
    ast_file_free(c->ast);
}

typedef struct Count {
    int stores, tma_stores, waits, shared_stores, buffers;
    IrOp *tma_store, *last_wait;
} Count;

static bool count(IrOp *op, void *ctx) {
    Count *c = ctx;
    if (op->code == OP_STORE) c->stores++;
    if (op->code == OP_STORE_TMA) c->tma_stores++, c->tma_store = op;
    if (op->code == OP_STORE_WAIT) c->waits++, c->last_wait = op;
    if (op->code == OP_SHARED_STORE) c->shared_stores++;
    if (op->code == OP_SHARED_ALLOC) c->buffers++;
    return true;
}

static Count count_of(const Compiled *c) {
    Count n = {0};
    ir_walk(c->kernel->body, count, &n);
    return n;
}

/* ---- running a kernel on the VM ------------------------------------------------------------------ */
/* A tensor argument: its type, shape and how it is filled (random values of its type, small
 * positive scales, or zeros for the result). */
typedef enum { FILL_RANDOM, FILL_SCALES, FILL_ZERO } Fill;
typedef struct Arg {
    tile_dtype dtype;
    int rank;
    int64_t shape[2];
    Fill fill;
} Arg;

static size_t dtype_bytes(tile_dtype t) { return t == TILE_F32 ? 4 : t == TILE_F8E4M3 ? 1 : 2; }

/* Runs k over args (the same random values each time; an f32 alpha of 1.5 last when `alpha`)
 * and returns a copy of the result, argument `out`. */
static void *run(const IrFunction *k, const Arg *args, int nargs, int out, bool alpha, size_t *bytes, Strbuf *err,
                 bool *ok) {
    tile_arg targs[8];
    void *data[8];
    uint64_t s = 7;
    for (int i = 0; i < nargs; i++) {
        int64_t n = args[i].rank == 1 ? args[i].shape[0] : args[i].shape[0] * args[i].shape[1];
        size_t eb = dtype_bytes(args[i].dtype);
        data[i] = calloc((size_t)(n ? n : 1), eb);
        for (int64_t j = 0; j < n && args[i].fill != FILL_ZERO; j++) {
            float v = (float)((s = s * 6364136223846793005ull + 1) >> 40) / 16777216.0f - 0.5f;
            if (args[i].fill == FILL_SCALES) v = 0.25f + (float)(j % 7) / 8.0f;
            if (args[i].dtype == TILE_F32) memcpy((float *)data[i] + j, &v, 4);
            else if (args[i].dtype == TILE_F8E4M3) ((uint8_t *)data[i])[j] = (uint8_t)(((s >> 56) & 0x7f) == 0x7f ? 0x3c : s >> 56);
            else if (args[i].dtype == TILE_F16) ((uint16_t *)data[i])[j] = (uint16_t)(0x3000 + (s >> 54)); /* [2^-3, 2^-2) */
            else ((uint16_t *)data[i])[j] = test_bf16_bits(v);
        }
        targs[i] = (tile_arg){.kind = TILE_ARG_TENSOR,
                              .tensor = tile_tensor_contiguous(args[i].dtype, data[i], args[i].rank, args[i].shape)};
    }
    int n = nargs;
    if (alpha) targs[n++] = (tile_arg){.kind = TILE_ARG_FLOAT, .f = 1.5};
    *ok = vm_launch_threads(k, targs, (uint32_t)n, 2, err);
    *bytes = (size_t)(args[out].shape[0] * args[out].shape[1]) * dtype_bytes(args[out].dtype);
    void *result = data[out];
    for (int i = 0; i < nargs; i++)
        if (i != out) free(data[i]);
    return result;
}

/* plain and piped give the same bits (and some nonzero ones) with args. */
static void same_bits(const Compiled *plain, const Compiled *piped, const Arg *args, int nargs, int out, bool alpha,
                      const char *what) {
    Strbuf err = {0};
    size_t bytes;
    bool ok;
    unsigned char *c1 = run(plain->kernel, args, nargs, out, alpha, &bytes, &err, &ok);
    cr_assert(ok, "%s: %s", what, sb_str(&err));
    unsigned char *c2 = run(piped->kernel, args, nargs, out, alpha, &bytes, &err, &ok);
    cr_assert(ok, "%s (after the GPU passes): %s", what, sb_str(&err));
    cr_assert(memcmp(c1, c2, bytes) == 0, "%s: results differ", what);
    bool nonzero = false;
    for (size_t i = 0; i < bytes && !nonzero; i++) nonzero = c1[i] != 0;
    cr_assert(nonzero, "%s: every result is 0", what);
    free(c1), free(c2);
    sb_free(&err);
}

/* ---- ir -------------------------------------------------------------------------------------------- */
/* gemm: the store of the result is gone; its staging buffer comes after the main loop (in the
 * ring's bytes, smem_plan's barrier before it), the swizzled [128, 256] tile in four column blocks
 * of 64, one TMA box each; one store_wait ends the kernel. */
Test(epilogue, gemm_store_becomes_a_tma_store) {
    ConstBinding consts[2] = {{.name = "BN", .i = 256}, {.name = "W", .i = 8}};
    Compiled c = compile(true, &tma_target, "stdlib/core/gemm.tile", "gemm", consts, 2);
    Count n = count_of(&c);
    cr_assert_eq(n.stores, 0);
    cr_assert_eq(n.tma_stores, 1);
    cr_assert_eq(n.shared_stores, 1);
    cr_assert_eq(n.waits, 1);
    cr_assert(n.last_wait == c.kernel->body->last && n.last_wait->ints[0] == 0, "store_wait 0 ends the body");
    IrOp *st = n.tma_store, *ss = st->prev, *alloc = ss->prev;
    cr_assert(ss->code == OP_SHARED_STORE && alloc->code == OP_SHARED_ALLOC && alloc->prev->code == OP_BARRIER);
    cr_assert_eq(alloc->ints[0], 0, "the buffer reuses the ring's bytes from offset 0");
    const IrType *bt = alloc->results[0]->type;
    cr_assert(bt->shape[0] == 128 && bt->shape[1] == 256 && bt->shared->split[1] == 64 && bt->shared->swizzle.bits == 3);
    IrTmaMap maps[IR_MAX_TMA_MAPS];
    int nmaps = ir_tma_maps(c.kernel, maps);
    cr_assert_eq(nmaps, 3);
    cr_assert(maps[2].param == 2 && maps[2].box[0] == 128 && maps[2].box[1] == 64 && maps[2].swizzle == 128);
    compiled_free(&c);
}

/* The IR after the GPU passes prints, reads back and prints the same (store_tma, store_wait). */
Test(epilogue, the_ir_round_trips_through_the_printer_and_the_reader) {
    Compiled c = compile(true, &tma_target, "stdlib/core/gemm_persistent.tile", "gemm_persistent", NULL, 0);
    Strbuf first = {0}, second = {0};
    ir_print_module(c.module, &first);
    cr_assert(strstr(sb_str(&first), "store_tma %") && strstr(sb_str(&first), "store_wait pending 0"));
    DiagList d = {0};
    IrModule *m = ir_parse_module("persistent.ir", first.data, first.len, &d);
    cr_assert_not_null(m, "%s", sb_str(&d.text));
    ir_print_module(m, &second);
    cr_assert_str_eq(sb_str(&second), sb_str(&first));
    ir_module_free(m);
    diag_free(&d);
    sb_free(&first), sb_free(&second);
    compiled_free(&c);
}

/* gemm_persistent: the buffer before the tile loop, `store_wait pending 0; barrier` before each
 * tile's write of it (the previous tile's store ran during this tile's K loop), the last wait
 * after the loop. */
Test(epilogue, persistent_store_waits_at_the_next_tile) {
    Compiled c = compile(true, &tma_target, "stdlib/core/gemm_persistent.tile", "gemm_persistent", NULL, 0);
    Count n = count_of(&c);
    cr_assert_eq(n.tma_stores, 1);
    cr_assert_eq(n.waits, 2);
    IrOp *ss = n.tma_store->prev, *bar = ss->prev, *wait = bar->prev;
    cr_assert(ss->code == OP_SHARED_STORE && bar->code == OP_BARRIER && wait->code == OP_STORE_WAIT && wait->ints[0] == 0);
    IrOp *alloc = ss->operands[0]->def;
    cr_assert(alloc->parent == c.kernel->body && alloc->next->code == OP_FOR, "allocated before the tile loop");
    cr_assert(n.tma_store->parent->parent_op == alloc->next, "stored inside it");
    cr_assert(n.last_wait == c.kernel->body->last);
    compiled_free(&c);
}

/* No TMA store without TMA, launch facts, on sm_80, with no_tma_store (TILE_TMA_STORE=0), where
 * the buffer would not fit, or for a store that is not a dot's result. */
Test(epilogue, left_alone_where_tma_stores_do_not_apply) {
    Target no_facts = tma_target, sm80 = tma_target, off = tma_target, no_tma = tma_target;
    no_facts.every_fact = false;
    sm80.sm = 80, sm80.arch_specific = false;
    off.no_tma_store = true;
    no_tma.tma = false;
    const Target *targets[] = {&no_facts, &sm80, &off, &no_tma};
    for (int i = 0; i < 4; i++) {
        Compiled c = compile(true, targets[i], "stdlib/core/gemm.tile", "gemm", NULL, 0);
        Count n = count_of(&c);
        cr_assert(n.tma_stores == 0 && n.waits == 0 && n.stores == 1, "target %d", i);
        compiled_free(&c);
    }
    /* a persistent BN = 256 tile: its 3-stage ring (144 KB) and a 64 KB buffer of its own would pass
     * three quarters of the 227 KB */
    ConstBinding wide[3] = {{.name = "BN", .i = 256}, {.name = "W", .i = 8}, {.name = "STAGES", .i = 3}};
    Compiled p = compile(true, &tma_target, "stdlib/core/gemm_persistent.tile", "gemm_persistent", wide, 3);
    cr_assert_eq(count_of(&p).tma_stores, 0);
    compiled_free(&p);
    /* the split-K reduction stores a sum of loaded tiles, not a dot's result */
    Compiled r = compile(true, &tma_target, "stdlib/core/gemm_splitk.tile", "gemm_splitk_reduce", NULL, 0);
    cr_assert_eq(count_of(&r).tma_stores, 0);
    compiled_free(&r);
}

/* ---- vm -------------------------------------------------------------------------------------------- */
Test(epilogue, gemm_vm_results_do_not_change) {
    const int64_t shapes[][3] = {{200, 136, 100}, {65, 257, 300}, {1, 8, 16}, {256, 256, 64}};
    const int bns[] = {128, 256};
    for (int bi = 0; bi < 2; bi++) {
        ConstBinding consts[2] = {{.name = "BN", .i = bns[bi]}, {.name = "W", .i = bns[bi] > 128 ? 8 : 4}};
        Compiled plain = compile(false, &tma_target, "stdlib/core/gemm.tile", "gemm", consts, 2);
        Compiled piped = compile(true, &tma_target, "stdlib/core/gemm.tile", "gemm", consts, 2);
        cr_assert_eq(count_of(&piped).tma_stores, 1);
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            int64_t m = shapes[i][0], n = shapes[i][1], k = shapes[i][2];
            Arg args[3] = {{TILE_BF16, 2, {m, k}, FILL_RANDOM}, {TILE_BF16, 2, {k, n}, FILL_RANDOM},
                           {TILE_BF16, 2, {m, n}, FILL_ZERO}};
            char what[64];
            snprintf(what, sizeof what, "gemm BN=%d %lldx%lldx%lld", bns[bi], (long long)m, (long long)n, (long long)k);
            same_bits(&plain, &piped, args, 3, 2, false, what);
        }
        compiled_free(&plain);
        compiled_free(&piped);
    }
}

Test(epilogue, gemm_epilogue_vm_results_do_not_change) {
    typedef struct Variant {
        const char *kernel;
        tile_dtype out;
        int act, bias, residual;
    } Variant;
    const Variant variants[] = {{"gemm_epilogue", TILE_BF16, 2, 1, 1}, {"gemm_epilogue", TILE_BF16, 5, 1, 0},
                                {"gemm_epilogue_f16", TILE_F16, 1, 0, 1}, {"gemm_epilogue_f32", TILE_F32, 4, 1, 0},
                                {"gemm_epilogue_f32", TILE_F32, 3, 0, 0}};
    const int64_t m = 130, n = 72, k = 100;
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        const Variant *x = &variants[v];
        ConstBinding consts[3] = {{.name = "ACT", .i = x->act}, {.name = "HAS_BIAS", .i = x->bias},
                                  {.name = "HAS_RESIDUAL", .i = x->residual}};
        Compiled plain = compile(false, &tma_target, "stdlib/core/gemm.tile", x->kernel, consts, 3);
        Compiled piped = compile(true, &tma_target, "stdlib/core/gemm.tile", x->kernel, consts, 3);
        cr_assert_eq(count_of(&piped).tma_stores, 1, "%s ACT=%d", x->kernel, x->act);
        int64_t np = x->act == 5 ? 2 * n : n;
        Arg args[5] = {{TILE_BF16, 2, {m, k}, FILL_RANDOM}, {TILE_BF16, 2, {k, np}, FILL_RANDOM},
                       {x->out, 2, {m, n}, FILL_ZERO}, {x->out, 1, {x->bias ? np : 0, 0}, FILL_RANDOM},
                       {x->out, 2, {x->residual ? m : 0, x->residual ? n : 0}, FILL_RANDOM}};
        if (x->out == TILE_F32) args[3].fill = args[4].fill = FILL_SCALES;
        char what[96];
        snprintf(what, sizeof what, "%s ACT=%d HAS_BIAS=%d HAS_RESIDUAL=%d", x->kernel, x->act, x->bias, x->residual);
        same_bits(&plain, &piped, args, 5, 2, true, what);
        compiled_free(&plain);
        compiled_free(&piped);
    }
}

Test(epilogue, persistent_vm_results_do_not_change) {
    const char *kernels[] = {"gemm_persistent", "gemm_persistent_flat"};
    const int64_t shapes[][3] = {{300, 200, 130}, {129, 129, 1}, {512, 384, 64}};
    for (int ki = 0; ki < 2; ki++) {
        Compiled plain = compile(false, &tma_target, "stdlib/core/gemm_persistent.tile", kernels[ki], NULL, 0);
        Compiled piped = compile(true, &tma_target, "stdlib/core/gemm_persistent.tile", kernels[ki], NULL, 0);
        cr_assert_eq(count_of(&piped).tma_stores, 1, "%s", kernels[ki]);
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            int64_t m = shapes[i][0], n = shapes[i][1], k = shapes[i][2];
            Arg args[3] = {{TILE_BF16, 2, {m, k}, FILL_RANDOM}, {TILE_BF16, 2, {k, n}, FILL_RANDOM},
                           {TILE_BF16, 2, {m, n}, FILL_ZERO}};
            char what[64];
            snprintf(what, sizeof what, "%s %lldx%lldx%lld", kernels[ki], (long long)m, (long long)n, (long long)k);
            same_bits(&plain, &piped, args, 3, 2, false, what);
        }
        compiled_free(&plain);
        compiled_free(&piped);
    }
}

Test(epilogue, fp8_vm_results_do_not_change) {
    const char *kernels[] = {"gemm_fp8", "gemm_fp8_f32", "gemm_fp8_block", "gemm_fp8_block_f32"};
    const int64_t m = 200, n = 136, k = 300, kb = (k + 127) / 128, nb = (n + 127) / 128;
    for (int ki = 0; ki < 4; ki++) {
        bool block = ki >= 2;
        tile_dtype out = ki % 2 ? TILE_F32 : TILE_BF16;
        Compiled plain = compile(false, &tma_target, "stdlib/core/gemm_fp8.tile", kernels[ki], NULL, 0);
        Compiled piped = compile(true, &tma_target, "stdlib/core/gemm_fp8.tile", kernels[ki], NULL, 0);
        cr_assert_eq(count_of(&piped).tma_stores, 1, "%s", kernels[ki]);
        Arg args[5] = {{TILE_F8E4M3, 2, {m, k}, FILL_RANDOM}, {TILE_F8E4M3, 2, {n, k}, FILL_RANDOM},
                       {out, 2, {m, n}, FILL_ZERO},
                       block ? (Arg){TILE_F32, 2, {m, kb}, FILL_SCALES} : (Arg){TILE_F32, 1, {1, 0}, FILL_SCALES},
                       block ? (Arg){TILE_F32, 2, {nb, kb}, FILL_SCALES} : (Arg){TILE_F32, 1, {1, 0}, FILL_SCALES}};
        same_bits(&plain, &piped, args, 5, 2, false, kernels[ki]);
        compiled_free(&plain);
        compiled_free(&piped);
    }
}

/* ---- races the VM reports ------------------------------------------------------------------------ */
static bool remove_inner_wait(IrOp *op, void *ctx) {
    (void)ctx;
    if (op->code == OP_STORE_WAIT && op->parent->parent_op) {
        ir_op_remove(op);
        return false;
    }
    return true;
}

Test(epilogue, writing_a_buffer_a_store_still_reads_is_a_vm_error) {
    Compiled c = compile(true, &tma_target, "stdlib/core/gemm_persistent.tile", "gemm_persistent", NULL, 0);
    ir_walk(c.kernel->body, remove_inner_wait, NULL);
    cr_assert_eq(count_of(&c).waits, 1);
    /* 4 SMs on the VM, 9 tiles: blocks take several tiles */
    Arg args[3] = {{TILE_BF16, 2, {300, 64}, FILL_RANDOM}, {TILE_BF16, 2, {64, 300}, FILL_RANDOM},
                   {TILE_BF16, 2, {300, 300}, FILL_ZERO}};
    Strbuf err = {0};
    size_t bytes;
    bool ok;
    free(run(c.kernel, args, 3, 2, false, &bytes, &err, &ok));
    cr_assert_not(ok);
    cr_assert(strstr(sb_str(&err), "writes shared memory that a store_tma is still reading"), "%s", sb_str(&err));
    sb_free(&err);
    compiled_free(&c);
}

Test(epilogue, a_block_ending_before_its_store_is_read_is_a_vm_error) {
    Compiled c = compile(true, &tma_target, "stdlib/core/gemm.tile", "gemm", NULL, 0);
    Count n = count_of(&c);
    ir_op_remove(n.last_wait);
    Arg args[3] = {{TILE_BF16, 2, {64, 64}, FILL_RANDOM}, {TILE_BF16, 2, {64, 64}, FILL_RANDOM},
                   {TILE_BF16, 2, {64, 64}, FILL_ZERO}};
    Strbuf err = {0};
    size_t bytes;
    bool ok;
    free(run(c.kernel, args, 3, 2, false, &bytes, &err, &ok));
    cr_assert_not(ok);
    cr_assert(strstr(sb_str(&err), "the block ends while a store_tma still reads shared memory"), "%s", sb_str(&err));
    sb_free(&err);
    compiled_free(&c);
}

/* ---- ptx ----------------------------------------------------------------------------------------- */
#ifdef TILE_HAVE_LLVM
/* The PTX of kernel of path for sm_90a with every launch fact; ptxas -v (when found) must
 * assemble it with no spills. */
static char *ptx_of(const char *path, const char *kernel, const ConstBinding *consts, int n, CodegenInfo *info) {
    Compiled c = compile(true, &tma_target, path, kernel, consts, n);
    Strbuf ptx = test_ptx_every_fact(c.kernel, info);
    char *report = test_ptxas_report(ptx.data, ptx.len);
    cr_assert(!report || test_ptxas_no_spills(report), "%s spills: %s", kernel, report);
    free(report);
    compiled_free(&c);
    return ptx.data;
}

static int occurrences(const char *text, const char *what) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, what)); p++) n++;
    return n;
}

Test(epilogue, ptx_stmatrix_and_tma_store) {
    ConstBinding consts[2] = {{.name = "BN", .i = 256}, {.name = "W", .i = 8}};
    CodegenInfo info = {0};
    char *text = ptx_of("stdlib/core/gemm.tile", "gemm", consts, 2, &info);
    cr_assert_eq(info.ntma, 3);
    cr_assert(info.tma[2].param == 2 && info.tma[2].box[0] == 128 && info.tma[2].box[1] == 64 &&
              info.tma[2].swizzle == 128);
    /* 128 accumulator elements a thread, 8 to an stmatrix.x4; four 64-column boxes, one group */
    cr_assert_eq(occurrences(text, "stmatrix.sync.aligned.m8n8.x4.shared.b16"), 16);
    cr_assert_eq(occurrences(text, "cp.async.bulk.tensor.2d.global.shared::cta.bulk_group"), 4);
    cr_assert_eq(occurrences(text, "cp.async.bulk.commit_group;"), 1);
    cr_assert_eq(occurrences(text, "cp.async.bulk.wait_group.read 0;"), 1);
    const char *fence = strstr(text, "fence.proxy.async.shared::cta;\n\t// end inline asm\n\t// begin inline asm\n\tbar.sync");
    cr_assert(fence && fence < strstr(text, "cp.async.bulk.tensor.2d.global"), "fence and barrier before the store");
    cr_assert_null(strstr(text, "st.global"), "no st.global left");
    free(text);
    /* an f32 result: st.shared of column pairs through the swizzled layout, 32-column (128-byte) boxes */
    ConstBinding f32[1] = {{.name = "HAS_BIAS", .i = 1}};
    text = ptx_of("stdlib/core/gemm.tile", "gemm_epilogue_f32", f32, 1, &info);
    cr_assert_null(strstr(text, "stmatrix"));
    cr_assert(strstr(text, "st.shared.v2.b32"), "pairs of f32 columns"); /* pairs_fit */
    cr_assert_eq(occurrences(text, "cp.async.bulk.tensor.2d.global.shared::cta.bulk_group"), 4);
    free(text);
    /* the persistent kernel: the wait inside the tile loop and after it */
    text = ptx_of("stdlib/core/gemm_persistent.tile", "gemm_persistent", NULL, 0, &info);
    cr_assert_eq(occurrences(text, "cp.async.bulk.wait_group.read 0;"), 2);
    cr_assert_eq(occurrences(text, "stmatrix.sync.aligned.m8n8.x4.shared.b16"), 16);
    free(text);
}
#endif
