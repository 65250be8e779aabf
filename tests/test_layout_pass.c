/*
 * test_layout_pass.c: layout inference (passes/layout.c), the blocked layouts and thread terms
 * it shares with the code generator (ir/layout.c) and the axis analysis (ir/axis.c).
 * Core kernels are compiled with the GPU pass (`--dump-after=layout`); the dumps must show the
 * expected anchor layouts (key lines of the golden form), every tile must carry a layout, the
 * softmax pattern (reduce, expand_dims, broadcast back) must need no conversion and its
 * broadcasts must be free (operand layout = result layout reduced), conversions must appear
 * exactly where layouts disagree, and the thread terms the code generator emits must agree
 * with layout_map for every thread.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "frontend/frontend.h"
#include "ir/axis.h"
#include "ir/layout.h"
#include "passes/passes.h"
#include "runtime/runtime.h"
#include "testutil.h"

typedef struct Laid {
    AstFile *ast;
    IrModule *module;
    IrFunction *kernel;
    Strbuf dump;
} Laid;

static Laid lay_source(const char *name, const char *text, const char *kernel, const ConstBinding *c, size_t nc) {
    DiagList d = {0};
    Laid l = {0};
    l.ast = parse_source(name, text, strlen(text), &d);
    cr_assert_not_null(l.ast, "%s", sb_str(&d.text));
    RtCompileOptions opt = {.gpu = true, .dump_after = "layout", .dump = &l.dump};
    l.module = rt_compile(l.ast, kernel, c, nc, &opt, &d, &l.kernel);
    cr_assert_not_null(l.module, "%s: %s", kernel, sb_str(&d.text));
    DiagList v = {0};
    cr_assert(ir_verify_module(l.module, &v), "invalid IR after layout: %s", sb_str(&v.text));
    diag_free(&v);
    diag_free(&d);
    return l;
}

static Laid lay_core(const char *file, const char *kernel, const ConstBinding *c, size_t nc) {
    char rel[256];
    snprintf(rel, sizeof rel, "stdlib/core/%s", file);
    size_t len;
    char *text = test_read_source_file(rel, &len);
    Laid l = lay_source(rel, text, kernel, c, nc);
    free(text);
    return l;
}

static void laid_free(Laid *l) {
    sb_free(&l->dump);
    ir_module_free(l->module);
    ast_file_free(l->ast);
}

static bool every_tile_has_layout(IrOp *op, void *ctx) {
    (void)ctx;
    for (uint32_t i = 0; i < op->nresults; i++) {
        const IrType *t = op->results[i]->type;
        if (t->kind == TY_TILE && t->rank > 0) {
            cr_assert_not_null(t->layout, "a result of '%s' has no layout", ir_op_info[op->code].name);
            cr_assert(layout_is_exact(t->layout));
            cr_assert_eq(layout_num_threads(t->layout), 128);
            for (int d = 0; d < t->rank; d++) cr_assert_eq(t->layout->shape[d], t->shape[d]);
        }
    }
    return true;
}

typedef struct Counts {
    bool broadcasts_free;  /* assert that every broadcast moves no data */
    int conversions, broadcasts;
    int data_conversions;  /* conversions of values that are not rematerializable */
} Counts;

/* Values made of arange, constants, scalars and elementwise ops: free in any layout. */
static bool is_free_value(const IrValue *v) {
    if (v->type->rank == 0) return true;
    const IrOp *op = v->def;
    if (!op) return false;
    switch (op->code) {
    case OP_CONST: case OP_ARANGE: case OP_SPLAT: return true;
    case OP_BROADCAST: case OP_EXPAND_DIMS: case OP_RESHAPE: case OP_CONVERT_LAYOUT: return is_free_value(op->operands[0]);
    default: break;
    }
    if (!(ir_op_info[op->code].flags & F_ELEM)) return false;
    for (uint32_t i = 0; i < op->noperands; i++)
        if (!is_free_value(op->operands[i])) return false;
    return true;
}

static bool check_ops(IrOp *op, void *ctx) {
    Counts *c = ctx;
    if (op->code == OP_CONVERT_LAYOUT) {
        c->conversions++;
        if (!is_free_value(op->operands[0])) c->data_conversions++;
        cr_assert(!layout_equal(op->operands[0]->type->layout, op->results[0]->type->layout),
                  "a conversion between equal layouts");
    }
    if (op->code == OP_BROADCAST && c->broadcasts_free) {
        c->broadcasts++;
        Arena a;
        arena_init(&a);
        const Layout *r = op->results[0]->type->layout;
        for (int d = 0; d < r->rank; d++)
            if (op->operands[0]->type->shape[d] == 1 && r->shape[d] != 1) r = layout_reduce(&a, r, d);
        cr_assert(layout_equal(r, op->operands[0]->type->layout), "a broadcast that moves data");
        arena_free(&a);
    }
    /* elementwise operands share the result's layout (the verifier checks types too) */
    if ((ir_op_info[op->code].flags & F_ELEM) && op->results[0]->type->rank > 0)
        for (uint32_t i = 0; i < op->noperands; i++)
            cr_assert(layout_equal(op->operands[i]->type->layout, op->results[0]->type->layout));
    return true;
}

Test(layout_pass, vector_add_golden) {
    Laid l = lay_core("vector_add.tile", "vector_add", NULL, 0);
    const char *s = sb_str(&l.dump);
    cr_assert_not_null(strstr(s, "// ---- IR after layout ----"));
    cr_assert_not_null(strstr(s, "= load %0, %8 : tile<f32>[1024]{local(2) * spatial(128) * local(4)}"), "%s", s);
    cr_assert_not_null(strstr(s, "= arange 0 : tile<i32>[1024]{local(2) * spatial(128) * local(4)}"), "%s", s);
    ir_walk(l.kernel->body, every_tile_has_layout, NULL);
    Counts c = {0};
    ir_walk(l.kernel->body, check_ops, &c);
    cr_assert_eq(c.conversions, 0);
    laid_free(&l);
}

Test(layout_pass, softmax_reduce_expand_broadcast_is_free) {
    Laid l = lay_core("softmax.tile", "softmax", NULL, 0);
    const char *s = sb_str(&l.dump);
    /* value numbers left out: the kernel has a one-pass and a two-pass path */
    cr_assert_not_null(strstr(s, " : tile<f32>[4, 1024]{local(1,8) * spatial(4,32) * local(1,4)}"), "%s", s);
    cr_assert_not_null(strstr(s, "= load %0, "), "%s", s);
    cr_assert_not_null(strstr(s, ", axis 1 : tile<f32>[4]{spatial(4) * replicate(32)}"), "%s", s);
    cr_assert_not_null(strstr(s, "= reduce max %"), "%s", s);
    cr_assert_not_null(strstr(s, ", axis 1 : tile<f32>[4, 1]{spatial(4,1) * replicate(32)}"), "%s", s);
    cr_assert_not_null(strstr(s, "-> (tile<f32>[4]{spatial(4) * replicate(32)}, tile<f32>[4]{spatial(4) * replicate(32)})"),
                       "%s", s);
    cr_assert_null(strstr(s, "convert_layout"), "%s", s);
    ir_walk(l.kernel->body, every_tile_has_layout, NULL);
    Counts c = {.broadcasts_free = true};
    ir_walk(l.kernel->body, check_ops, &c);
    cr_assert_eq(c.conversions, 0);
    cr_assert_geq(c.broadcasts, 3);
    laid_free(&l);
}

Test(layout_pass, layernorm_no_conversion) {
    Laid l = lay_core("layernorm.tile", "layernorm", NULL, 0);
    ir_walk(l.kernel->body, every_tile_has_layout, NULL);
    Counts c = {0};
    ir_walk(l.kernel->body, check_ops, &c);
    cr_assert_eq(c.conversions, 0, "%s", sb_str(&l.dump));
    laid_free(&l);
}

Test(layout_pass, gemm_slices) {
    ConstBinding c[4] = {{.name = "BK", .i = 32}, {.name = "BM", .i = 64}, {.name = "BN", .i = 64}, {.name = "W", .i = 4}};
    Laid l = lay_core("gemm.tile", "gemm", c, 4);
    const char *s = sb_str(&l.dump);
    cr_assert_not_null(strstr(s, ": tile<bf16>[64, 32]{local(2,1) * spatial(32,4) * local(1,8)}"), "%s", s);
    cr_assert_not_null(strstr(s, ": tile<bf16>[32, 64]{local(2,1) * spatial(16,8) * local(1,8)}"), "%s", s);
    /* bf16 operands, f32 accumulator: tensor cores, 2 x 2 warps of 2 x 4 C fragments; the
     * loop-carried accumulator keeps the layout */
    const char *mma = "tile<f32>[64, 64]{local(2,4) * spatial(2,2) * local(2,1) * spatial(8,4) * local(1,2)}";
    char want[256];
    snprintf(want, sizeof want, ": %s\n", mma);
    const char *dot = strstr(s, "= dot ");
    cr_assert(dot && strncmp(strchr(dot, ':'), want, strlen(want)) == 0, "%s", s);
    snprintf(want, sizeof want, ") -> (%s)", mma);
    cr_assert_not_null(strstr(s, want), "%s", s);
    ir_walk(l.kernel->body, every_tile_has_layout, NULL);
    Counts n = {0};
    ir_walk(l.kernel->body, check_ops, &n);
    /* only index expressions shared by accesses of different layouts convert (rematerialized) */
    cr_assert_eq(n.data_conversions, 0, "%s", s);
    laid_free(&l);
}

static bool no_conversion_in_loops(IrOp *op, void *ctx) {
    (void)ctx;
    if (op->code != OP_FOR) return true;
    Counts c = {0};
    ir_walk(op->regions[0], check_ops, &c);
    cr_assert_eq(c.conversions, 0, "a convert_layout inside a loop");
    return true;
}

/* The gemm's 128 x 128 x 64 tile at its default 8 warps (4 x 2 warps of 32 x 64) and at 4 (2 x 2 of
 * 64 x 64): the mma accumulator layout of ir/mma.h, no conversion at all inside the k loop. */
Test(layout_pass, gemm_accumulator_is_mma_fragments) {
    static const char *const want[2] = {
        ": tile<f32>[128, 128]{local(2,8) * spatial(4,2) * local(2,1) * spatial(8,4) * local(1,2)}\n",
        ": tile<f32>[128, 128]{local(4,8) * spatial(2,2) * local(2,1) * spatial(8,4) * local(1,2)}\n"};
    ConstBinding four[2] = {{.name = "W", .i = 4}, {.name = "STAGES", .i = 3}};
    for (int w = 0; w < 2; w++) {
        Laid l = lay_core("gemm.tile", "gemm", w ? four : NULL, w ? 2 : 0);
        const char *s = sb_str(&l.dump);
        const char *dot = strstr(s, "= dot ");
        cr_assert_not_null(dot, "%s", s);
        cr_assert(strncmp(strchr(dot, ':'), want[w], strlen(want[w])) == 0, "%s", s);
        ir_walk(l.kernel->body, no_conversion_in_loops, NULL);
        laid_free(&l);
    }
}

/* Dots that do not qualify for tensor cores keep the register-tiled CUDA-core layout. */
Test(layout_pass, other_dots_keep_the_cuda_core_layout) {
    Laid l = lay_source("dots.tile",
                        "kernel k(x: tensor<f32>[M, K], y: tensor<f32>[K, N], a: tensor<bf16>[M, K],\n"
                        "         b: tensor<bf16>[K, N], c: tensor<f32>[M, N])\n"
                        "  grid(1)\n"
                        "{\n"
                        "  c[0 :+ 64, 0 :+ 64] = dot(x[0 :+ 64, 0 :+ 32], y[0 :+ 32, 0 :+ 64]);\n"
                        "  c[0 :+ 64, 0 :+ 64] = dot(a[0 :+ 64, 0 :+ 24], b[0 :+ 24, 0 :+ 64]);\n"
                        "}\n",
                        "k", NULL, 0);
    const char *s = sb_str(&l.dump);
    cr_assert_null(strstr(s, "spatial(8,4) * local(1,2)}"), "%s", s);
    cr_assert_not_null(strstr(s, "tile<f32>[64, 64]{local(8,4) * spatial(8,16)}"), "%s", s);
    laid_free(&l);
}

/* A factor loaded inside a loop and broadcast onto a dot's result (gemm_fp8_block's per-row and
 * per-block scales) is loaded in the slice of the dot's layout: its broadcast moves no data and
 * no data is converted (only index expressions are rematerialized). */
Test(layout_pass, loop_factor_loaded_in_the_dot_slice) {
    Laid l = lay_core("gemm_fp8.tile", "gemm_fp8_block", NULL, 0);
    Counts c = {.broadcasts_free = true};
    ir_walk(l.kernel->body, check_ops, &c);
    cr_assert_geq(c.broadcasts, 1, "%s", sb_str(&l.dump));
    cr_assert_eq(c.data_conversions, 0, "%s", sb_str(&l.dump)); /* index rematerializations only */
    laid_free(&l);
}

/* The same factor outside a loop, or one that a thread would hold too much of, keeps the
 * blocked layout (loaded once: one conversion is cheaper than redundant loads). */
Test(layout_pass, factor_outside_a_loop_stays_blocked) {
    static const char *src =
        "kernel k(a: tensor<bf16>[M, K], b: tensor<bf16>[K, N], s: tensor<f32>[M], c: tensor<f32>[M, N])\n"
        "  grid(1)\n"
        "{\n"
        "  let acc = dot(a[0 :+ 64, 0 :+ 32], b[0 :+ 32, 0 :+ 64]);\n"
        "  c[0 :+ 64, 0 :+ 64] = acc * expand(s[0 :+ 64], 1);\n"
        "}\n";
    Laid l = lay_source("factor.tile", src, "k", NULL, 0);
    Counts c = {0};
    ir_walk(l.kernel->body, check_ops, &c);
    cr_assert_null(strstr(sb_str(&l.dump), "tile<f32>[64]{local(2,"), "%s", sb_str(&l.dump));
    cr_assert_not_null(strstr(sb_str(&l.dump), "= load %2"), "%s", sb_str(&l.dump));
    laid_free(&l);
}

/* A row statistic (reduced layout) added to a loaded vector (blocked layout) must convert. */
Test(layout_pass, conversion_where_layouts_differ) {
    Laid l = lay_source("conv.tile",
                        "kernel k(x: tensor<f32>[M, N], v: tensor<f32>[M], y: tensor<f32>[M])\n"
                        "  grid(cdiv(M, 4))\n"
                        "{\n"
                        "  let m0 = block_id(0) * 4;\n"
                        "  y[m0 :+ 4] = sum(x[m0 :+ 4, 0 :+ 256], axis=1) + v[m0 :+ 4];\n"
                        "}\n",
                        "k", NULL, 0);
    Counts c = {0};
    ir_walk(l.kernel->body, check_ops, &c);
    cr_assert_eq(c.data_conversions, 1, "%s", sb_str(&l.dump));
    ir_walk(l.kernel->body, every_tile_has_layout, NULL);
    laid_free(&l);
}

/* The thread terms (what the code generator emits per thread) reproduce layout_map. */
Test(layout_pass, thread_terms_match_layout_map) {
    Arena a;
    arena_init(&a);
    const Layout *ls[8];
    int n = 0;
    int64_t s1[1] = {1024}, s2[2] = {4, 1024}, s3[2] = {128, 64}, s4[2] = {3, 100}, s5[1] = {7};
    ls[n++] = layout_blocked(&a, 1, s1, 4, 4);
    ls[n++] = layout_blocked(&a, 2, s2, 4, 4);
    ls[n++] = layout_blocked(&a, 2, s3, 2, 8);
    ls[n++] = layout_blocked(&a, 2, s4, 4, 4);
    ls[n++] = layout_blocked(&a, 1, s5, 1, 2);
    ls[n++] = layout_dot_acc(&a, 128, 128, 4);
    ls[n++] = layout_reduce(&a, ls[1], 1);
    ls[n++] = layout_dot_acc(&a, 16, 8, 4);
    for (int i = 0; i < n; i++) {
        const Layout *l = ls[i];
        cr_assert(layout_is_exact(l));
        LayoutThreadTerm terms[64];
        int nt = layout_thread_terms(l, terms);
        for (int64_t t = 0; t < l->num_threads; t++) {
            int64_t want[IR_MAX_RANK], got[IR_MAX_RANK] = {0};
            layout_map(l, t, 0, want);
            bool owner = true;
            for (int k = 0; k < nt; k++) {
                int64_t digit = (t / terms[k].radix) % terms[k].size;
                if (terms[k].dim == LAYOUT_REPLICA) owner &= digit == 0;
                else got[terms[k].dim] += digit * terms[k].stride;
            }
            for (int d = 0; d < l->rank; d++) cr_assert_eq(got[d], want[d], "layout %d thread %lld dim %d", i, (long long)t, d);
            int64_t ft, fl;
            /* the replica-0 owner is the thread layout_find names for its element */
            if (owner) {
                cr_assert(layout_find(l, want, &ft, &fl));
                cr_assert_eq(ft, t);
            }
        }
        /* coordinates = thread part + local part */
        for (int64_t t = 0; t < l->num_threads; t += 7)
            for (int64_t k = 0; k < l->local_size; k++) {
                int64_t full[IR_MAX_RANK], tp[IR_MAX_RANK], lp[IR_MAX_RANK];
                layout_map(l, t, k, full);
                layout_map(l, t, 0, tp);
                layout_map(l, 0, k, lp);
                for (int d = 0; d < l->rank; d++) cr_assert_eq(full[d], tp[d] + lp[d]);
            }
    }
    /* blocked: 16 bytes per thread along the last dimension, all threads used when possible */
    cr_assert_eq(layout_replication(ls[0]), 1);
    cr_assert_eq(layout_local_modes(ls[1])[ls[1]->num_local_modes - 1].size, 4);
    cr_assert_eq(layout_local_modes(ls[2])[ls[2]->num_local_modes - 1].size, 8);
    arena_free(&a);
}

/* The first op of f with this code (where pred >= 0: with ints[0] == pred and a result of rank 1
 * or more, a tile compare); NULL if none. */
typedef struct OpQuery {
    OpCode code;
    int64_t pred;
    IrOp *found;
} OpQuery;

static bool match_op(IrOp *op, void *ctx) {
    OpQuery *q = ctx;
    bool shaped = op->nresults && op->results[0]->type->kind == TY_TILE && op->results[0]->type->rank > 0;
    if (!q->found && op->code == q->code && (q->pred < 0 || (op->ints[0] == q->pred && shaped))) q->found = op;
    return true;
}

static IrOp *first_op(IrFunction *f, OpCode code, int64_t pred) {
    OpQuery q = {code, pred, NULL};
    ir_walk(f->body, match_op, &q);
    return q.found;
}

/* Axis analysis of the slice indices of a load: contiguous and divisible along the columns. */

Test(layout_pass, axis_analysis_of_slices) {
    Laid l = lay_core("softmax.tile", "softmax", NULL, 0);
    IrOp *load = first_op(l.kernel, OP_LOAD, -1);
    cr_assert_not_null(load);
    AxisAnalysis a;
    axis_init(&a, l.kernel, NULL);
    AxisInfo rows, cols;
    axis_info(&a, load->operands[1], &rows); /* m0 + arange(4) as [4, 1] */
    axis_info(&a, load->operands[2], &cols); /* n + arange(1024) as [1, 1024] */
    cr_assert_eq(cols.rank, 2);
    cr_assert_eq(cols.contiguity[1], 1024);
    cr_assert_geq(cols.divisibility[1], 1024); /* n steps by 1024 from 0 */
    cr_assert_eq(rows.contiguity[0], 4);
    cr_assert_eq(rows.divisibility[0], 4);    /* block_id * 4 */
    axis_free(&a);
    laid_free(&l);
}

/* Launch facts (IrParamFacts) reach the analysis: a symbolic size known to be a multiple of 16
 * makes its `dim` divisible by 16; without facts nothing is known of it. */
Test(layout_pass, axis_analysis_uses_launch_facts) {
    Laid l = lay_core("softmax.tile", "softmax", NULL, 0);
    IrOp *dim = first_op(l.kernel, OP_DIM, -1);
    cr_assert_not_null(dim);
    IrParamFacts facts[2];
    memset(facts, 0, sizeof facts);
    AxisAnalysis a;
    AxisInfo info;
    axis_init(&a, l.kernel, NULL);
    axis_info(&a, dim->results[0], &info);
    cr_assert_eq(info.scalar_div, 1);
    axis_free(&a);
    for (int p = 0; p < 2; p++)
        for (int d = 0; d < IR_MAX_RANK; d++) facts[p].size_div16[d] = true;
    axis_init(&a, l.kernel, facts);
    axis_info(&a, dim->results[0], &info);
    cr_assert_eq(info.scalar_div, 16);
    axis_free(&a);
    laid_free(&l);
}

/* A compare `run < bound` (or >=, and > / <= with the roles swapped) is constant over aligned
 * runs of k where run counts up from multiples of k and bound is a multiple of k held over the
 * run: softmax's mask `arange(1024) < N` is constant over 16 columns when the facts make N a
 * multiple of 16, and over one column without them. */
Test(layout_pass, axis_analysis_of_compares) {
    Laid l = lay_core("softmax.tile", "softmax", NULL, 0);
    IrOp *cmp = first_op(l.kernel, OP_CMP, CMP_LT); /* arange(1024) < N */
    cr_assert_not_null(cmp);
    IrParamFacts facts[2];
    memset(facts, 0, sizeof facts);
    for (int p = 0; p < 2; p++)
        for (int d = 0; d < IR_MAX_RANK; d++) facts[p].size_div16[d] = true;
    AxisAnalysis a;
    AxisInfo info;
    axis_init(&a, l.kernel, NULL);
    axis_info(&a, cmp->results[0], &info);
    cr_assert_eq(info.constancy[0], 1);
    axis_free(&a);
    axis_init(&a, l.kernel, facts);
    axis_info(&a, cmp->results[0], &info);
    cr_assert_eq(info.constancy[0], 16);
    axis_free(&a);
    /* swapped: N > arange(1024) is the same mask; arange(1024) <= N is not constant over runs
     * (N itself is in the run starting at N) */
    IrOp swapped = *cmp;
    IrValue *ops[2] = {cmp->operands[1], cmp->operands[0]};
    swapped.operands = ops;
    swapped.ints[0] = CMP_GT;
    IrValue result = *cmp->results[0];
    result.def = &swapped;
    result.id = l.kernel->next_value_id; /* not memoized with the original */
    axis_init(&a, l.kernel, facts);
    axis_info(&a, &result, &info);
    cr_assert_eq(info.constancy[0], 16);
    axis_free(&a);
    IrOp le = *cmp;
    le.ints[0] = CMP_LE;
    result.def = &le;
    axis_init(&a, l.kernel, facts);
    axis_info(&a, &result, &info);
    cr_assert_eq(info.constancy[0], 1);
    axis_free(&a);
    laid_free(&l);
}
