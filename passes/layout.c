/*
 * layout.c: layout inference, the first GPU pass. Every tile value of rank >= 1 gets a register
 * layout from the algebra of ir/layout.h; scalars carry none (they are replicated in every
 * thread by definition).
 *
 * Anchors are Triton's blocked layouts (layout_blocked): the first global load or store of a
 * shape gives it the blocked layout of that shape and its element size (later accesses of the
 * shape reuse it), so each thread reads 16 bytes of consecutive elements along
 * the last dimension and a warp's lanes cover a contiguous stretch; a dot's accumulator gets the
 * mma.sync C-fragment layout tiled over the warps when the dot runs on tensor cores (ir/mma.h:
 * the instructions of ir/mma.def), else a register-tiled layout (layout_dot_acc); the tiling is
 * decided jointly for the kernel (chained_rows: rows inside a warp when a dot feeds a row
 * reduction or another dot's a operand) and recorded on each dot, whose a operand may come from
 * registers (a_from_registers); a row of a later arch than the target's is not chosen (an f8 dot
 * on sm_80 takes m16n8k16_bf16, its operands widened: mma_widened_for). A loop-carried
 * accumulator takes the dot's layout, so a k loop converts nothing. One forward walk in program order then propagates:
 * elementwise ops take the layout of their first operand that has one; reduce gives the
 * reduced layout (layout_reduce, then squeeze); expand_dims and size-1 reshapes follow the
 * algebra; a broadcast takes the layout of its consumer's other operand (else the layout last
 * seen for its result shape), so that a row statistic reduced from a tile, expanded and
 * broadcast back lands exactly on the tile's layout (the broadcast then moves no data). Values that cost nothing to make in any layout (const,
 * arange, splat and what is computed from them alone) are "free": they take the layout their
 * first user needs (a demand walks back through their definitions). A small load inside a loop
 * whose value is broadcast onto a dot's result (a per-row scale) is loaded directly in the slice
 * of the dot's layout (slice_of_dot), so the loop moves no data through shared memory. Loop-carried values take
 * the layout of their initial value, or, when that is free, the layout the body yields (the
 * body is walked a second time with it). What is left gets the blocked layout of its shape.
 *
 * Each op family has its rule in one function (assign_elementwise, assign_load, assign_shape,
 * assign_reduce, assign_dot, assign_loop, assign_if, assign_store); assign_op dispatches.
 *
 * layout_assign only computes the table; pass_layout writes the layouts into the types (the code
 * generator reads them there and computes none itself) and inserts convert_layout where
 * an operand must have another layout: elementwise operands, a dot's accumulator, loop-carried
 * and yielded values. Everything else (broadcast, reduce, transpose, memory ops) reads any
 * operand layout; the code generator moves data itself where it must.
 *
 * A layout that puts more than LAYOUT_MAX_PER_THREAD elements in each thread is a located
 * error, checked before anything is rewritten: the code generator emits code per element, so
 * such a tile (2^20 elements over 128 threads; or 2047, whose only power-of-two factor is 1, so
 * that every thread holds all of it) would take minutes and gigabytes to compile into code that
 * cannot stay in registers (255 a thread).
 */
#include "passes.h"

#include <stdio.h>
#include <string.h>

#include "ir/layout.h"
#include "ir/mma.h"

enum { MAX_PREFERRED = 32 };
enum { LAYOUT_MAX_PER_THREAD = 256 }; /* elements of one tile in one thread */
enum { A_REGS_MAX = 32 };             /* registers a loop-invariant dot operand may hold (packed pairs) */

static int64_t pow2_part(int64_t x) {
    if (x <= 0) return 1;
    return x & -x;
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

const Layout *layout_dot_acc(Arena *arena, int64_t m, int64_t n, int num_warps) {
    int64_t threads = 32 * (int64_t)num_warps;
    int64_t tn = min64(pow2_part(n), 16);
    int64_t tm = min64(pow2_part(m), threads / tn);
    int64_t rep = threads / tn / tm;
    int64_t shape[2] = {m, n};
    LayoutMode t[3] = {{rep, 0, LAYOUT_REPLICA}, {tm, 1, 0}, {tn, 1, 1}};
    LayoutMode l[2] = {{m / tm, tm, 0}, {n / tn, tn, 1}};
    return layout_from_modes(arena, 2, shape, 3, t, 2, l);
}

/* ---- the assignment ---------------------------------------------------------------------- */
typedef struct Assign {
    Arena *arena;
    int warps;
    const Layout **lay; /* by value id */
    uint8_t *free_;     /* by value id: costs nothing in any layout */
    uint32_t cap;
    struct {
        int rank;
        int64_t shape[IR_MAX_RANK];
        const Layout *layout;
    } preferred[MAX_PREFERRED];
    int npreferred;
    bool rows_in_warp;  /* dots keep their rows inside a warp (chained dots, row statistics) */
    bool wgmma;         /* the target has wgmma (target_has_wgmma) */
    int sm;             /* the target's capability: rows of ir/mma.def of a later arch are not chosen */
} Assign;

static bool is_tile(const IrValue *v) { return v->type->kind == TY_TILE && v->type->rank >= 1; }

static int elem_bytes(ElemType e) { return e.kind == EK_BOOL || e.bits < 8 ? 1 : e.bits / 8; }

static const Layout *get(Assign *a, const IrValue *v) { return v->id < a->cap ? a->lay[v->id] : NULL; }
static bool is_free(Assign *a, const IrValue *v) { return v->id < a->cap && a->free_[v->id]; }
static void put(Assign *a, const IrValue *v, const Layout *l) {
    if (v->id < a->cap) a->lay[v->id] = l;
}

static const Layout *blocked_for(Assign *a, const IrType *t, int bytes) {
    return layout_blocked(a->arena, t->rank, t->shape, bytes, a->warps);
}

static void prefer(Assign *a, const Layout *l) {
    for (int i = 0; i < a->npreferred; i++)
        if (a->preferred[i].rank == l->rank && memcmp(a->preferred[i].shape, l->shape, sizeof(int64_t) * (size_t)l->rank) == 0)
            return;
    if (a->npreferred == MAX_PREFERRED) return;
    a->preferred[a->npreferred].rank = l->rank;
    memcpy(a->preferred[a->npreferred].shape, l->shape, sizeof(int64_t) * (size_t)l->rank);
    a->preferred[a->npreferred++].layout = l;
}

static const Layout *find_preferred(Assign *a, int rank, const int64_t *shape) {
    for (int i = 0; i < a->npreferred; i++)
        if (a->preferred[i].rank == rank && memcmp(a->preferred[i].shape, shape, sizeof(int64_t) * (size_t)rank) == 0)
            return a->preferred[i].layout;
    return NULL;
}

static const Layout *preferred_for(Assign *a, const IrType *t) {
    const Layout *l = find_preferred(a, t->rank, t->shape);
    return l ? l : blocked_for(a, t, elem_bytes(t->elem));
}

/* The layout of a reshape that only inserts or removes dimensions of size 1, else NULL. */
static const Layout *reshape_layout(Arena *arena, const Layout *l, const IrType *to) {
    int d = 0, k = 0;
    const Layout *r = l;
    /* r walks from l's shape to `to`: squeeze l's extra 1s and insert to's 1s, left to right */
    while (d < to->rank || k < r->rank) {
        if (d < to->rank && k < r->rank && to->shape[d] == r->shape[k] && (to->shape[d] != 1 || d == k)) {
            d++, k++;
        } else if (d < to->rank && to->shape[d] == 1 && r->rank < IR_MAX_RANK) {
            r = layout_expand_dims(arena, r, k);
            d++, k++;
        } else if (k < r->rank && r->shape[k] == 1) {
            r = layout_squeeze(arena, r, k);
        } else {
            return NULL;
        }
    }
    return r->rank == to->rank ? r : NULL;
}

/* A free value v must have layout l: give it l and pass the demand on to its free operands. */
static void demand(Assign *a, const IrValue *v, const Layout *l) {
    if (!is_tile(v) || !is_free(a, v) || get(a, v) || !l) return;
    put(a, v, l);
    const IrOp *op = v->def;
    if (!op) return;
    if (ir_op_info[op->code].flags & F_ELEM) {
        for (uint32_t i = 0; i < op->noperands; i++)
            if (is_tile(op->operands[i])) demand(a, op->operands[i], l);
        return;
    }
    const IrValue *x = op->noperands ? op->operands[0] : NULL;
    switch (op->code) {
    case OP_CONVERT_LAYOUT:
    case OP_DOT_WAIT: demand(a, x, l); break;
    case OP_BROADCAST: {
        const Layout *r = l;
        for (int d = 0; d < l->rank; d++)
            if (x->type->shape[d] == 1 && l->shape[d] != 1) r = layout_reduce(a->arena, r, d);
        demand(a, x, r);
        break;
    }
    case OP_EXPAND_DIMS: demand(a, x, layout_squeeze(a->arena, l, (int)op->ints[0])); break;
    case OP_RESHAPE: demand(a, x, reshape_layout(a->arena, l, x->type)); break;
    default: break;
    }
}

static void walk_region(Assign *a, const IrRegion *r);

/* ---- tensor cores, decided jointly ------------------------------------------------------------ */

/* Whether v is computed from a dot's result by elementwise ops, casts and layout conversions. */
static bool from_dot(const IrValue *v, int depth) {
    const IrOp *d = v->def;
    if (!d || depth > 32 || v->type->kind != TY_TILE) return false;
    if (d->code == OP_DOT) return true;
    if (!(ir_op_info[d->code].flags & F_ELEM) && d->code != OP_CONVERT_LAYOUT) return false;
    for (uint32_t i = 0; i < d->noperands; i++)
        if (from_dot(d->operands[i], depth + 1)) return true;
    return false;
}

/* A dot's result that feeds a row reduction (along the last axis) or the a operand of another
 * dot wants each row inside one warp: the reduction then needs no shared memory, and the
 * accumulator of the first dot is already the a operand of the second, register for register.
 * One such chain makes every tensor-core dot of the kernel put all its warps along M (where M
 * allows), so that the row statistics of one dot and the accumulator of the next agree. */
static bool chained_rows(IrOp *op, void *ctx) {
    bool *found = ctx;
    if ((op->code == OP_REDUCE && op->nints > 1 && op->ints[1] == op->operands[0]->type->rank - 1 &&
         from_dot(op->operands[0], 0)) ||
        (op->code == OP_DOT && from_dot(op->operands[0], 0)))
        *found = true;
    return !*found;
}

/* Whether both dimensions of a 2-d tile are powers of two (what a ring or a buffer of stages takes). */
static bool pow2_dims(const IrType *t) {
    for (int i = 0; i < 2; i++)
        if (t->shape[i] & (t->shape[i] - 1)) return false;
    return true;
}

/* Whether v is a tile loaded from a tensor inside a `pipeline(N >= 2)` loop whose only use is op
 * and whose dimensions are powers of two: the stages pass copies it into a ring. */
static bool staged_load(const IrValue *v, const IrOp *op) {
    const IrOp *d = v->def;
    const IrOp *loop = d && d->parent ? d->parent->parent_op : NULL;
    if (!d || d->code != OP_LOAD || d->operands[0]->type->kind != TY_TENSOR ||
        (v->type->elem.bits != 16 && v->type->elem.bits != 8) ||
        d->parent != op->parent || !loop || loop->code != OP_FOR || !loop->nints || loop->ints[0] < 2 ||
        v->type->rank != 2)
        return false;
    return pow2_dims(v->type);
}

/* The load behind operand v of op that the stages pass will put in a ring (v itself, or v a 2-d
 * transpose of it: a k-major view), or NULL; *transposed says which. */
static const IrOp *staged_operand(const IrValue *v, const IrOp *op, bool *transposed) {
    *transposed = false;
    const IrOp *t = v->def;
    if (t && t->code == OP_TRANSPOSE && t->parent == op->parent && t->nints == 2 && t->ints[0] == 1) {
        *transposed = true;
        v = t->operands[0];
    }
    return staged_load(v, op) ? v->def : NULL;
}

static bool invariant_in_loop(const IrOp *op, const IrValue *v);

/* Whether every use of v in the function is operand a of a dot. */
typedef struct AUses {
    const IrValue *v;
    bool other;
} AUses;

static bool a_use(IrOp *op, void *ctx) {
    AUses *u = ctx;
    for (uint32_t i = 0; i < op->noperands; i++)
        if (op->operands[i] == u->v && (op->code != OP_DOT || i != 0)) u->other = true;
    return !u->other;
}

/* Whether operand a of op is a tile loaded from a tensor before op's loop and used only as
 * operand a of dots, [M, K] of a 16-bit type with power-of-two sizes and K a multiple of 64: the
 * stages pass copies it once into a buffer of its own in the wgmma layout (Q in attention, read
 * through a descriptor instead of holding M * K / threads registers in every thread). */
static bool invariant_shared_a(const IrOp *op) {
    const IrValue *v = op->operands[0];
    const IrOp *d = v->def;
    if (!d || d->code != OP_LOAD || d->operands[0]->type->kind != TY_TENSOR || v->type->rank != 2 ||
        v->type->elem.bits != 16 || v->type->shape[1] % 64 != 0 || !invariant_in_loop(op, v))
        return false;
    if (!pow2_dims(v->type)) return false;
    AUses u = {.v = v};
    ir_walk(d->parent->function->body, a_use, &u);
    return !u.other;
}

/* Whether a dot can run on wgmma. Operand b is a load the stages pass will stage: [K, N] with N a
 * multiple of 64 (n-major: the 128-byte swizzle atom is 64 bf16/f16 of N), or the transpose of an
 * [N, K] load with K a multiple of 64 (k-major, as K^T in attention). Operand a is such a load
 * [M, K] with K a multiple of 64 (k-major), or a tile loaded before the loop that the stages
 * pass gives a buffer of its own (invariant_shared_a: Q in attention), or anything else, which the
 * wgmma then reads from registers in the A fragment layout (P in attention).
 *
 * 8-bit operands (the k32 rows) have no transposed form (PTX ISA: imm-trans only for .f16/.bf16)
 * and this compiler reads their a from shared memory only: a must be a staged [M, K] load and b
 * the transpose of a staged [N, K] load, both k-major, K a multiple of 128 (a 128-byte row is 128
 * of them); anything else keeps m16n8k32. */
static bool wgmma_operands(const IrOp *op) {
    bool ta, tb;
    const IrOp *la = staged_operand(op->operands[0], op, &ta), *lb = staged_operand(op->operands[1], op, &tb);
    int row = (int)(1024 / op->operands[1]->type->elem.bits); /* elements in 128 bytes */
    if (!lb || (tb ? op->operands[1]->type->shape[0] : op->operands[1]->type->shape[1]) % row != 0) return false;
    if (op->operands[1]->type->elem.bits == 8)
        return tb && la && !ta && op->operands[0]->type->elem.bits == 8 && op->operands[0]->type->shape[1] % row == 0;
    return !la || (!ta && op->operands[0]->type->shape[1] % row == 0);
}

/* Whether a wgmma dot reads operand a from shared memory (a ring or its own buffer). */
static bool wgmma_shared_a(const IrOp *op) {
    bool ta;
    return staged_operand(op->operands[0], op, &ta) || invariant_shared_a(op);
}

/* The tensor-core tiling of a dot, or false when it runs on CUDA cores: wgmma where the target
 * has it and the operands allow, else mma.sync. */
static bool choose_tiling(const IrOp *op, int warps, bool rows_in_warp, bool wgmma, int sm, MmaTiling *t) {
    const IrType *ta = op->operands[0]->type, *tb = op->operands[1]->type, *rt = op->results[0]->type;
    if (ta->rank != 2 || tb->rank != 2 || rt->rank != 2) return false;
    int64_t m = rt->shape[0], n = rt->shape[1], k = ta->shape[1];
    /* an instruction newer than the target (m16n8k32 on f8 before sm_89): the bf16 row on the
     * operands widened to bf16 (exact for f8), else CUDA cores */
    MmaInstr sync = mma_instr_for(ta->elem, tb->elem, rt->elem);
    if (sync != MMA_NONE && mma_instrs[sync].arch > (sm > 0 ? sm : 80)) {
        MmaInstr wide = mma_widened_for(ta->elem, tb->elem, rt->elem);
        if (rows_in_warp && mma_tiling_instr(wide, ta->elem, m, n, k, warps, warps, t)) return true;
        return mma_tiling_instr(wide, ta->elem, m, n, k, warps, 0, t);
    }
    if (wgmma && wgmma_operands(op) && mma_wgmma_tiling(ta->elem, tb->elem, rt->elem, m, n, k, warps, t)) return true;
    if (rows_in_warp && mma_tiling_with(ta->elem, tb->elem, rt->elem, m, n, k, warps, warps, t)) return true;
    return mma_tiling(ta->elem, tb->elem, rt->elem, m, n, k, warps, t);
}

/* The accumulator layout that a dot of tiling t would give an [m, k] result: the a operand in
 * that layout (a P from another dot) is the register operand renamed. */
static const Layout *acc_layout_as_a(Arena *arena, const MmaTiling *t) {
    MmaTiling p = *t;
    p.n = t->k;
    p.reps_n = t->k / (mma_instrs[t->instr].n * t->warps_n);
    return mma_acc_layout(arena, &p);
}

/* Whether op is inside a loop that v (defined outside it) does not change. */
static bool invariant_in_loop(const IrOp *op, const IrValue *v) {
    const IrRegion *home = v->def ? v->def->parent : v->region;
    for (const IrRegion *r = op->parent; r && r != home; r = r->parent_op ? r->parent_op->parent : NULL)
        if (r->parent_op && (r->parent_op->code == OP_FOR || r->parent_op->code == OP_WHILE)) return true;
    return false;
}

/* Operand a of a tensor-core dot is read from registers, in mma_operand_a_layout, when that costs
 * no data movement (it is a P in the accumulator layout of the same warps) or one conversion
 * outside a loop the dot runs in (a loop-invariant Q); otherwise it goes through shared memory
 * (a staged ring, or the scratch). NULL: not from registers. */
static const Layout *a_from_registers(Arena *arena, const IrOp *op, const Layout *a_layout, const MmaTiling *t) {
    const Layout *want = mma_operand_a_layout(arena, t);
    if (!want || op->operands[0]->type->kind != TY_TILE) return NULL;
    if (a_layout && (layout_equal(a_layout, want) || layout_equal(a_layout, acc_layout_as_a(arena, t)))) return want;
    /* a loop-invariant operand stays in registers for the whole loop: only while it is small next
     * to the accumulators (else the stages pass gives it a shared buffer of its own) */
    int64_t packed = t->m * t->k / (64 * (int64_t)t->warps_m);
    return packed <= A_REGS_MAX && invariant_in_loop(op, op->operands[0]) ? want : NULL;
}

/* The layout the first consumer of a broadcast's result gives its other operands of the same
 * shape (a row statistic broadcast back onto the tile it came from), or NULL. */
typedef struct Consumer {
    Assign *a;
    const IrValue *v;
    const Layout *layout;
    bool done;
} Consumer;

static bool find_consumer(IrOp *op, void *ctx) {
    Consumer *c = ctx;
    for (uint32_t i = 0; i < op->noperands && !c->done; i++) {
        if (op->operands[i] != c->v) continue;
        c->done = true;
        if (!(ir_op_info[op->code].flags & F_ELEM)) break;
        for (uint32_t j = 0; j < op->noperands && !c->layout; j++) {
            const IrValue *o = op->operands[j];
            if (o != c->v && is_tile(o) && o->type->rank == c->v->type->rank &&
                memcmp(o->type->shape, c->v->type->shape, sizeof(int64_t) * (size_t)o->type->rank) == 0)
                c->layout = get(c->a, o);
        }
    }
    return !c->done;
}

static const Layout *consumer_layout(Assign *a, const IrOp *op) {
    Consumer c = {.a = a, .v = op->results[0]};
    for (const IrOp *o = op->next; o && !c.done; o = o->next) {
        find_consumer((IrOp *)o, &c);
        for (uint32_t k = 0; k < o->nregions && !c.done; k++) ir_walk(o->regions[k], find_consumer, &c);
    }
    return c.layout;
}

/* Access shape of a store or atomic: the broadcast of its indices and value. */
static void access_shape(const IrOp *op, int *rank, int64_t *shape) {
    *rank = 0;
    for (uint32_t i = 1; i < op->noperands; i++)
        if (op->operands[i]->type->rank > *rank) *rank = op->operands[i]->type->rank;
    for (int d = 0; d < *rank; d++) shape[d] = 1;
    for (uint32_t i = 1; i < op->noperands; i++) {
        const IrType *t = op->operands[i]->type;
        for (int d = 0; d < t->rank; d++)
            if (t->shape[d] != 1) shape[*rank - t->rank + d] = t->shape[d];
    }
}

static void assign_store(Assign *a, const IrOp *op) {
    int rank;
    int64_t shape[IR_MAX_RANK];
    access_shape(op, &rank, shape);
    if (rank == 0) return;
    const IrValue *value = op->operands[op->noperands - 1];
    const Layout *access = NULL;
    bool same = value->type->rank == rank && memcmp(value->type->shape, shape, sizeof(int64_t) * (size_t)rank) == 0;
    if (same && get(a, value)) access = get(a, value);
    else if (!(access = find_preferred(a, rank, shape)))
        access = layout_blocked(a->arena, rank, shape, elem_bytes(op->operands[0]->type->elem), a->warps);
    prefer(a, access);
    for (uint32_t i = 1; i < op->noperands; i++) {
        const IrValue *x = op->operands[i];
        if (!is_tile(x) || x->type->rank != rank) continue;
        const Layout *r = access;
        for (int d = 0; d < rank; d++)
            if (x->type->shape[d] == 1 && shape[d] != 1) r = layout_reduce(a->arena, r, d);
        demand(a, x, r);
    }
}

/* Walks a loop body twice when a carried value's layout comes from the body. */
static void carried(Assign *a, const IrOp *op, IrValue *const *init, uint32_t n, const IrRegion *body,
                    IrValue *const *args, const IrRegion *yield_region, uint32_t yield_first) {
    bool again = false;
    for (uint32_t i = 0; i < n; i++) {
        put(a, args[i], is_tile(args[i]) ? get(a, init[i]) : NULL);
        if (is_tile(args[i]) && !get(a, init[i])) again = true;
    }
    for (int pass = 0; pass < 2; pass++) {
        if (op->code == OP_WHILE) {
            walk_region(a, op->regions[0]);
            const IrOp *cond = op->regions[0]->last;
            for (uint32_t i = 0; cond && i < op->regions[1]->nargs && 1 + i < cond->noperands; i++)
                put(a, op->regions[1]->args[i], is_tile(op->regions[1]->args[i]) ? get(a, cond->operands[1 + i]) : NULL);
            walk_region(a, op->regions[1]);
        } else {
            walk_region(a, body);
        }
        if (!again || pass == 1) break;
        const IrOp *y = yield_region->last;
        for (uint32_t i = 0; i < n; i++) {
            if (!is_tile(args[i]) || get(a, args[i])) continue;
            const Layout *l = y && yield_first + i < y->noperands ? get(a, y->operands[yield_first + i]) : NULL;
            put(a, args[i], l ? l : blocked_for(a, args[i]->type, elem_bytes(args[i]->type->elem)));
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        if (!is_tile(args[i]) && !get(a, args[i])) continue;
        if (!get(a, args[i])) put(a, args[i], blocked_for(a, args[i]->type, elem_bytes(args[i]->type->elem)));
        demand(a, init[i], get(a, args[i]));
    }
}

/* ---- the rule of each op family ---------------------------------------------------------------- */

/* Elementwise: the layout of the first operand that has one (the others are converted to it); a
 * result computed from free values alone is free too. */
static void assign_elementwise(Assign *a, const IrOp *op) {
    const IrValue *res = op->results[0];
    if (!is_tile(res)) return;
    const Layout *l = NULL;
    bool all_free = true;
    for (uint32_t i = 0; i < op->noperands; i++) {
        if (!is_tile(op->operands[i])) continue;
        if (!l) l = get(a, op->operands[i]);
        if (!is_free(a, op->operands[i])) all_free = false;
    }
    if (!l && all_free) {
        a->free_[res->id] = 1;
        return;
    }
    put(a, res, l);
    for (uint32_t i = 0; i < op->noperands; i++) demand(a, op->operands[i], l);
}

/* ---- a load broadcast onto a dot's result, inside a loop ----------------------------------------
 * A per-row or per-column factor loaded at every iteration and applied to a dot's result (the
 * block scales with which block-scaled FP8 promotes each partial product: acc + partial *
 * expand(s, 1)) would be loaded in the blocked layout of its shape and moved into the dot's
 * layout through shared memory, two block barriers per iteration. Loaded directly in the slice of
 * the dot's layout, each thread reads the few elements it uses (the same addresses as the other
 * lanes that hold its rows: one cached transaction) and the broadcast moves no data. */
enum { SLICE_LOAD_MAX = 8 }; /* elements per thread of such a load */

static const Layout *dot_layout(Assign *a, const IrOp *op);

/* The one op that uses v (made by `def`), or NULL when there is none or more than one: every use
 * is in def's region (nested regions included), which pass_uses counts. */
static const IrOp *only_user(const IrOp *def, const IrValue *v) {
    PassUses u = pass_uses(def->parent, v);
    return u.count == 1 ? u.user : NULL;
}

/* Whether operand o of an elementwise op costs nothing to have in any layout: a scalar, or a
 * splat, const or arange. */
static bool free_operand(const IrValue *o) {
    return !is_tile(o) || (o->def && (o->def->code == OP_SPLAT || o->def->code == OP_CONST || o->def->code == OP_ARANGE));
}

/* The dot whose result v is, through elementwise ops (its first non-free operand), layout
 * conversions and dot_wait, or NULL. */
static const IrOp *dot_behind(const IrValue *v, int depth) {
    const IrOp *d = v->def;
    if (!d || depth > 16) return NULL;
    if (d->code == OP_DOT) return d;
    if (d->code == OP_CONVERT_LAYOUT || d->code == OP_DOT_WAIT) return dot_behind(d->operands[0], depth + 1);
    if (!(ir_op_info[d->code].flags & F_ELEM)) return NULL;
    for (uint32_t i = 0; i < d->noperands; i++)
        if (!free_operand(d->operands[i])) return dot_behind(d->operands[i], depth + 1);
    return NULL;
}

/* The layout v (made by `def`) should have so that its one use chain (elementwise ops with free
 * other operands, expand_dims, reshapes) ends in a broadcast onto a dot's result without moving
 * data, or NULL. */
static const Layout *slice_of_dot(Assign *a, const IrOp *def, const IrValue *v, int depth) {
    const IrOp *u = depth > 8 ? NULL : only_user(def, v);
    if (!u || u->nresults != 1 || !is_tile(u->results[0])) return NULL;
    const IrValue *r = u->results[0];
    if (ir_op_info[u->code].flags & F_ELEM) {
        for (uint32_t i = 0; i < u->noperands; i++)
            if (u->operands[i] != v && !free_operand(u->operands[i])) return NULL;
        return slice_of_dot(a, u, r, depth + 1);
    }
    const Layout *l = NULL;
    switch (u->code) {
    case OP_EXPAND_DIMS:
        l = slice_of_dot(a, u, r, depth + 1);
        return l ? layout_squeeze(a->arena, l, (int)u->ints[0]) : NULL;
    case OP_RESHAPE:
        l = slice_of_dot(a, u, r, depth + 1);
        return l ? reshape_layout(a->arena, l, v->type) : NULL;
    case OP_BROADCAST: {
        /* the broadcast's consumer combines it with a dot's result of the same shape */
        const IrOp *c = only_user(u, r);
        if (!c || !(ir_op_info[c->code].flags & F_ELEM)) return NULL;
        for (uint32_t i = 0; i < c->noperands && !l; i++) {
            const IrValue *o = c->operands[i];
            const IrOp *d = o != r && is_tile(o) && o->type->rank == r->type->rank ? dot_behind(o, 0) : NULL;
            if (d && memcmp(o->type->shape, r->type->shape, sizeof(int64_t) * (size_t)r->type->rank) == 0)
                l = get(a, o) ? get(a, o) : dot_layout(a, d);
        }
        for (int dim = 0; l && dim < l->rank; dim++)
            if (v->type->shape[dim] == 1 && l->shape[dim] != 1) l = layout_reduce(a->arena, l, dim);
        return l;
    }
    default: return NULL;
    }
}

/* Whether op is inside a loop of its function. */
static bool in_loop(const IrOp *op) {
    for (const IrOp *p = op->parent ? op->parent->parent_op : NULL; p; p = p->parent ? p->parent->parent_op : NULL)
        if (p->code == OP_FOR || p->code == OP_WHILE) return true;
    return false;
}

/* load: inside a loop, a factor broadcast onto a dot's result is loaded in the slice of the dot's
 * layout (above). Otherwise the first access of a shape sets its layout, so that tiles loaded
 * from tensors of different element sizes meet without conversions (narrower vectors instead).
 * The indices are demanded in the load's layout. */
static void assign_load(Assign *a, const IrOp *op) {
    const IrValue *res = op->results[0], *x = op->operands[0];
    const Layout *l = in_loop(op) ? slice_of_dot(a, op, res, 0) : NULL;
    if (l && (l->rank != res->type->rank || layout_local_size(l) > SLICE_LOAD_MAX)) l = NULL;
    if (l) {
        put(a, res, l);
    } else {
        l = find_preferred(a, res->type->rank, res->type->shape);
        if (!l) l = blocked_for(a, res->type, elem_bytes(x->type->elem));
        put(a, res, l);
        prefer(a, l);
    }
    for (uint32_t i = 1; i < op->noperands; i++) {
        const IrValue *ix = op->operands[i];
        if (!is_tile(ix) || ix->type->rank != l->rank) continue;
        const Layout *r = l;
        for (int d = 0; d < l->rank; d++)
            if (ix->type->shape[d] == 1 && l->shape[d] != 1) r = layout_reduce(a->arena, r, d);
        demand(a, ix, r);
    }
}

/* broadcast, expand_dims, reshape, convert_layout: follow the algebra from the operand's layout;
 * a broadcast takes its consumer's layout (else the preferred one of its shape). */
static void assign_shape(Assign *a, const IrOp *op) {
    const IrValue *res = op->results[0], *x = op->operands[0];
    if (!is_tile(res)) return;
    const Layout *lo = is_tile(x) ? get(a, x) : NULL;
    if (!lo) {
        if (!is_tile(x) || is_free(a, x)) a->free_[res->id] = 1;
        else if (op->code == OP_CONVERT_LAYOUT && res->type->layout) put(a, res, res->type->layout);
        return;
    }
    const Layout *l = NULL;
    if (op->code == OP_CONVERT_LAYOUT) l = res->type->layout ? res->type->layout : lo;
    else if (op->code == OP_EXPAND_DIMS) l = layout_expand_dims(a->arena, lo, (int)op->ints[0]);
    else if (op->code == OP_RESHAPE) l = reshape_layout(a->arena, lo, res->type);
    else if (!(l = consumer_layout(a, op))) l = preferred_for(a, res->type);
    if (!l) l = blocked_for(a, res->type, elem_bytes(res->type->elem));
    put(a, res, l);
}

/* reduce gives the reduced layout of its operand (squeezed), scan the operand's. */
static void assign_reduce(Assign *a, const IrOp *op) {
    const IrValue *res = op->results[0], *x = op->operands[0];
    if (!is_tile(x)) return;
    const Layout *lo = get(a, x);
    if (!lo) {
        lo = blocked_for(a, x->type, elem_bytes(x->type->elem));
        demand(a, x, lo);
    }
    if (op->code == OP_SCAN) {
        put(a, res, lo);
    } else if (is_tile(res)) {
        int axis = (int)op->ints[1];
        put(a, res, layout_squeeze(a->arena, layout_reduce(a->arena, lo, axis), axis));
    }
}

/* The layout of a dot's result: the mma accumulator layout of the chosen tiling (joint: see
 * chained_rows), else the register-tiled CUDA-core one. */
static const Layout *dot_layout(Assign *a, const IrOp *op) {
    const IrValue *res = op->results[0];
    MmaTiling mma;
    return choose_tiling(op, a->warps, a->rows_in_warp, a->wgmma, a->sm, &mma)
               ? mma_acc_layout(a->arena, &mma)
               : layout_dot_acc(a->arena, res->type->shape[0], res->type->shape[1], a->warps);
}

/* dot: dot_layout; the accumulator operand is demanded in it. */
static void assign_dot(Assign *a, const IrOp *op) {
    const IrValue *res = op->results[0];
    const Layout *l = dot_layout(a, op);
    put(a, res, l);
    demand(a, op->operands[2], l);
    for (int i = 0; i < 2; i++) {
        const IrValue *v = op->operands[i];
        if (!get(a, v)) demand(a, v, blocked_for(a, v->type, elem_bytes(v->type->elem)));
    }
}

/* for and while: carried values (carried); the results take the carried layouts. */
static void assign_loop(Assign *a, const IrOp *op) {
    if (op->code == OP_FOR) {
        carried(a, op, op->operands + 3, op->noperands - 3, op->regions[0], op->regions[0]->args + 1, op->regions[0], 0);
        for (uint32_t i = 0; i < op->nresults; i++) put(a, op->results[i], get(a, op->regions[0]->args[1 + i]));
        return;
    }
    carried(a, op, op->operands, op->noperands, op->regions[0], op->regions[0]->args, op->regions[1], 0);
    for (uint32_t i = 0; i < op->nresults; i++)
        put(a, op->results[i], is_tile(op->results[i]) ? get(a, op->regions[1]->args[i]) : NULL);
}

/* if: each result takes the layout of the first branch that yields one with a layout. */
static void assign_if(Assign *a, const IrOp *op) {
    for (int r = 0; r < 2; r++) walk_region(a, op->regions[r]);
    for (uint32_t i = 0; i < op->nresults; i++) {
        if (!is_tile(op->results[i])) continue;
        const Layout *l = NULL;
        for (int r = 0; r < 2 && !l; r++) {
            const IrOp *y = op->regions[r]->last;
            if (y && i < y->noperands) l = get(a, y->operands[i]);
        }
        if (!l) l = blocked_for(a, op->results[i]->type, elem_bytes(op->results[i]->type->elem));
        put(a, op->results[i], l);
        for (int r = 0; r < 2; r++) {
            const IrOp *y = op->regions[r]->last;
            if (y && i < y->noperands) demand(a, y->operands[i], l);
        }
    }
}

/* One op: its results start without a layout, then the rule of its family. */
static void assign_op(Assign *a, const IrOp *op) {
    const IrValue *res = op->nresults ? op->results[0] : NULL;
    for (uint32_t i = 0; i < op->nresults; i++) {
        put(a, op->results[i], NULL);
        if (op->results[i]->id < a->cap) a->free_[op->results[i]->id] = 0;
    }
    if (ir_op_info[op->code].flags & F_ELEM) {
        assign_elementwise(a, op);
        return;
    }
    switch (op->code) {
    case OP_CONST:
    case OP_ARANGE:
    case OP_SPLAT:
        if (is_tile(res)) a->free_[res->id] = 1;
        return;
    case OP_LOAD: assign_load(a, op); return;
    case OP_STORE:
    case OP_ATOMIC: assign_store(a, op); return;
    case OP_BROADCAST:
    case OP_EXPAND_DIMS:
    case OP_RESHAPE:
    case OP_CONVERT_LAYOUT: assign_shape(a, op); return;
    case OP_REDUCE:
    case OP_SCAN: assign_reduce(a, op); return;
    case OP_TRANSPOSE:
        if (is_tile(res)) put(a, res, blocked_for(a, res->type, elem_bytes(res->type->elem)));
        return;
    case OP_DOT: assign_dot(a, op); return;
    case OP_DOT_WAIT: /* its operand, unchanged (insert_conversions keeps them equal) */
        if (get(a, op->operands[0])) put(a, res, get(a, op->operands[0]));
        else a->free_[res->id] = 1;
        return;
    case OP_SHARED_LOAD:
        if (is_tile(res)) put(a, res, blocked_for(a, res->type, elem_bytes(res->type->elem)));
        return;
    case OP_FOR:
    case OP_WHILE: assign_loop(a, op); return;
    case OP_IF: assign_if(a, op); return;
    default: return;
    }
}

static void walk_region(Assign *a, const IrRegion *r) {
    for (const IrOp *op = r->first; op; op = op->next) assign_op(a, op);
}

static bool fill_rest(IrOp *op, void *ctx) {
    Assign *a = ctx;
    for (uint32_t i = 0; i < op->nresults; i++) {
        const IrValue *v = op->results[i];
        if (is_tile(v) && !get(a, v)) put(a, v, blocked_for(a, v->type, elem_bytes(v->type->elem)));
    }
    for (uint32_t k = 0; k < op->nregions; k++)
        for (uint32_t i = 0; i < op->regions[k]->nargs; i++) {
            const IrValue *v = op->regions[k]->args[i];
            if (is_tile(v) && !get(a, v)) put(a, v, blocked_for(a, v->type, elem_bytes(v->type->elem)));
        }
    return true;
}

static const Layout **layout_assign(const IrFunction *f, int num_warps, bool wgmma, int sm, Arena *arena,
                                    bool *rows_in_warp) {
    Assign a = {.arena = arena, .warps = num_warps > 0 ? num_warps : f->num_warps > 0 ? f->num_warps : 4, .wgmma = wgmma,
                .sm = sm, .cap = f->next_value_id + 1};
    a.lay = arena_alloc(arena, sizeof(const Layout *) * a.cap);
    memset(a.lay, 0, sizeof(const Layout *) * a.cap);
    a.free_ = xcalloc(a.cap, 1);
    ir_walk(f->body, chained_rows, &a.rows_in_warp);
    walk_region(&a, f->body);
    ir_walk(f->body, fill_rest, &a);
    free(a.free_);
    *rows_in_warp = a.rows_in_warp;
    return a.lay;
}

/* ---- the pass ------------------------------------------------------------------------------ */
typedef struct Rewrite {
    IrModule *m;
    IrFunction *f;
    int warps;
    bool rows_in_warp, wgmma;
    int sm;
    bool changed;
} Rewrite;

/* Makes operand i of op have layout l, through a convert_layout placed before `before` (NULL:
 * right after the operand's definition, so that a loop converts a value from outside it once). */
static void require(Rewrite *rw, IrOp *op, uint32_t i, const Layout *l, IrOp *before) {
    IrValue *v = op->operands[i];
    if (!l || v->type->kind != TY_TILE || v->type->rank == 0 || layout_equal(v->type->layout, l)) return;
    IrBuilder b;
    IrRegion *home = v->def ? v->def->parent : v->region;
    if (!before) before = v->def ? v->def->next : home->first;
    if (before) ir_builder_before(&b, before);
    else ir_builder_at_end(&b, home);
    b.loc = op->loc;
    const IrType *t = ir_type_with_layout(rw->m, v->type, l);
    IrValue *c = ir_op1(&b, OP_CONVERT_LAYOUT, t, v);
    ir_set_operand(op, i, c);
    rw->changed = true;
}

static bool set_types(IrOp *op, void *ctx) {
    void **c = ctx;
    IrModule *m = c[0];
    const Layout **lay = c[1];
    for (uint32_t i = 0; i < op->nresults; i++) {
        IrValue *v = op->results[i];
        if (is_tile(v) && lay[v->id]) v->type = ir_type_with_layout(m, v->type, lay[v->id]);
    }
    for (uint32_t k = 0; k < op->nregions; k++)
        for (uint32_t i = 0; i < op->regions[k]->nargs; i++) {
            IrValue *v = op->regions[k]->args[i];
            if (is_tile(v) && lay[v->id]) v->type = ir_type_with_layout(m, v->type, lay[v->id]);
        }
    return true;
}

static const Layout *layout_of(const IrValue *v) { return v->type->kind == TY_TILE ? v->type->layout : NULL; }

static void yield_to(Rewrite *rw, IrRegion *r, uint32_t first, IrValue *const *want, uint32_t n) {
    IrOp *y = r->last;
    if (!y) return;
    for (uint32_t i = 0; i < n && first + i < y->noperands; i++) require(rw, y, first + i, layout_of(want[i]), y);
}

static bool insert_conversions(IrOp *op, void *ctx) {
    Rewrite *rw = ctx;
    if (ir_op_info[op->code].flags & F_ELEM) {
        const Layout *l = layout_of(op->results[0]);
        for (uint32_t i = 0; i < op->noperands; i++) require(rw, op, i, l, op);
        return true;
    }
    switch (op->code) {
    case OP_DOT_WAIT: require(rw, op, 0, layout_of(op->results[0]), op); break;
    case OP_DOT: {
        require(rw, op, 2, layout_of(op->results[0]), op);
        MmaTiling t;
        if (!choose_tiling(op, rw->warps, rw->rows_in_warp, rw->wgmma, rw->sm, &t) ||
            !layout_equal(layout_of(op->results[0]), mma_acc_layout(&rw->m->arena, &t)))
            break;
        /* the layout pass decides the instruction; the code generator reads it */
        op->ints[0] = t.instr, op->ints[1] = t.warps_m, op->nints = 2;
        const Layout *a_regs = !mma_is_wgmma(t.instr) ? a_from_registers(&rw->m->arena, op, layout_of(op->operands[0]), &t)
                               : wgmma_shared_a(op) ? NULL
                                                    : mma_operand_a_layout(&rw->m->arena, &t);
        if (a_regs) require(rw, op, 0, a_regs, invariant_in_loop(op, op->operands[0]) ? NULL : op);
        break;
    }
    case OP_FOR:
        for (uint32_t i = 0; i + 3 < op->noperands; i++) require(rw, op, 3 + i, layout_of(op->results[i]), op);
        yield_to(rw, op->regions[0], 0, op->results, op->nresults);
        break;
    case OP_IF:
        for (int r = 0; r < 2; r++) yield_to(rw, op->regions[r], 0, op->results, op->nresults);
        break;
    case OP_WHILE:
        for (uint32_t i = 0; i < op->noperands; i++) require(rw, op, i, layout_of(op->regions[0]->args[i]), op);
        yield_to(rw, op->regions[0], 1, op->regions[1]->args, op->regions[1]->nargs);
        yield_to(rw, op->regions[1], 0, op->regions[0]->args, op->regions[0]->nargs);
        break;
    default: break;
    }
    return true;
}

/* ---- what the GPU cannot do well ------------------------------------------------------------ */
typedef struct SizeCheck {
    const Layout **lay;
    DiagList *d;
    bool failed;
} SizeCheck;

static void check_value(SizeCheck *c, const IrValue *v, const IrOp *at) {
    const Layout *l = is_tile(v) ? c->lay[v->id] : NULL;
    if (!l || c->failed || layout_local_size(l) <= LAYOUT_MAX_PER_THREAD) return;
    const IrType *t = v->type;
    char shape[128] = "", elem[16];
    for (int i = 0, n = 0; i < t->rank && n < (int)sizeof shape - 24; i++)
        n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    diag_error(c->d, at->loc,
               "a tile of shape [%s] (%s) puts %lld elements in each of the block's %lld threads, more than the "
               "GPU path allows (%d): use a smaller tile, more warps, or sizes with larger power-of-two factors "
               "(only those spread over threads: 2048, not 2047)",
               shape, elem_name(t->elem, elem), (long long)layout_local_size(l), (long long)layout_num_threads(l),
               LAYOUT_MAX_PER_THREAD);
    c->failed = true;
}

static bool check_sizes(IrOp *op, void *ctx) {
    SizeCheck *c = ctx;
    for (uint32_t i = 0; i < op->nresults; i++) check_value(c, op->results[i], op);
    for (uint32_t k = 0; k < op->nregions; k++)
        for (uint32_t i = 0; i < op->regions[k]->nargs; i++) check_value(c, op->regions[k]->args[i], op);
    return !c->failed;
}

/* pass_layout_run for sm (0: 80), which bounds the rows of ir/mma.def a dot may take. */
static bool layout_run(IrModule *m, int num_warps, bool wgmma, int sm, DiagList *d) {
    bool changed = false;
    for (IrFunction *f = m->functions; f; f = f->next) {
        if (!f->is_kernel || !f->body) continue;
        bool rows_in_warp = false;
        const Layout **lay = layout_assign(f, num_warps, wgmma, sm, &m->arena, &rows_in_warp);
        SizeCheck sc = {.lay = lay, .d = d};
        ir_walk(f->body, check_sizes, &sc);
        if (sc.failed) continue; /* an error: the pipeline stops after this pass */
        /* the warp count decided here is the kernel's from now on: later passes and the code
         * generator read it from the IR (and it prints as `warps N`) */
        f->num_warps = num_warps > 0 ? num_warps : f->num_warps > 0 ? f->num_warps : 4;
        void *c[2] = {m, lay};
        ir_walk(f->body, set_types, c);
        Rewrite rw = {.m = m, .f = f, .warps = f->num_warps, .rows_in_warp = rows_in_warp, .wgmma = wgmma,
                      .sm = sm};
        ir_walk(f->body, insert_conversions, &rw);
        changed = true;
    }
    return changed;
}

bool pass_layout_run(IrModule *m, int num_warps, bool wgmma, DiagList *d) {
    return layout_run(m, num_warps, wgmma, wgmma ? 90 : 80, d);
}

bool pass_layout_for(IrModule *m, const Target *t, DiagList *d) {
    return layout_run(m, t->num_warps, target_has_wgmma(t), t->sm, d);
}

bool pass_layout(IrModule *m, DiagList *d) { return pass_layout_run(m, 0, false, d); }
