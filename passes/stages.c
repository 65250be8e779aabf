/*
 * stages.c: software pipelining of `for ... pipeline(S)` loops (a GPU pass; it runs after the
 * layout pass, which decides which dots run on tensor cores).
 *
 * A load in the loop body whose only use is operand a or b of a dot that runs on mma.sync (the
 * layout pass's record on the dot), directly or through a 2-d transpose, becomes an asynchronous
 * copy into an S-stage shared buffer, issued S - 1 iterations ahead (a transposed operand is a
 * `transpose` of the stage's view: a shared layout with the strides swapped, which the dot reads
 * in place, e.g. K^T in attention):
 *
 *     buf = shared_alloc : shared<bf16>[S, R, C]{row_major ^ swizzle}       (one per load)
 *     copy_async A, idx(lo + s * step)..., shared_view(buf, s)     for s = 0 .. S-2 (prologue)
 *     for iv = lo to hi step step {
 *         i = (iv - lo) / step
 *         async_wait (S - 2) * copies          stage i % S is complete (this thread's copies)
 *         barrier                              ... for every thread; stage (i - 1) % S is free
 *         copy_async A, idx(iv + (S-1) * step)..., shared_view(buf, (i + S - 1) % S)
 *         acc = dot(shared_view(buf, i % S), ..., acc)
 *     }
 *     async_wait 0
 *
 * The index computation of each load (its backward slice inside the body: pure ops over the
 * induction variable and values from outside the loop) is cloned with the induction variable
 * moved ahead. Copies of iterations past the end follow load's out-of-bounds rule (they read 0
 * or elements that are never used). The buffers' shared layouts are row-major with the XOR
 * swizzle that makes ldmatrix and the 16-byte copies conflict-free (swizzle_for_ldmatrix).
 * A loop qualifies only when every candidate's tile has power-of-two dimensions whose rows are
 * at least 16 bytes; other loops are left as they are, which is always correct.
 *
 * On sm_90a (Target.tma) a load whose tensor the launch facts prove fit for TMA (tma_qualifies)
 * is copied by TMA instead, into the same swizzled stages, and the ring gets one mbarrier per
 * stage:
 *
 *     bars = shared_alloc : shared<i64>[S];  mbarrier_init bars;  barrier
 *     if lo + s * step < hi { copy_tma A, row0, col0, shared_view(buf, s), bars, s; ...;
 *                             mbarrier_arrive bars, s }                  for s = 0 .. S-2
 *     for iv ... {
 *         mbarrier_wait bars, i % S, (i / S) & 1     the phase of iteration i has landed
 *         barrier
 *         if iv + (S-1) * step < hi { copy_tma ... (i + S - 1) % S ...; mbarrier_arrive }
 *         ...
 *     }
 *
 * Copies of iterations past the end are not issued, so no TMA copy is in flight when the block
 * ends and every wait has its phase. After the loop, `barrier; mbarrier_inval bars` ends the
 * mbarriers (PTX requires it before their bytes are initialized again, as a ring inside an outer
 * loop is, or reused by another buffer). Loads that do not qualify keep cp.async in the same ring
 * (their async_wait counts only their groups).
 *
 * A dot on wgmma (the layout pass's record) gets its rings in the canonical layouts of its matrix
 * descriptors (ring_layout), operand a read from registers where the layout pass put it there, or
 * goes back to mma.sync when the operands it needs in rings are not staged; a loop
 * whose one dot it is, its accumulator carried, runs the dot asynchronously (async_dot): the copies
 * of iteration i + S - 1 move after `dot ..., async 1; dot_wait pending 1; barrier`, which release
 * the stage that iteration i - 1's dot read, and `dot_wait pending 0` follows the loop.
 *
 * On sm_90a a loop may instead get warp roles (below, "warp specialization"): a producer
 * warpgroup issuing the TMA copies and consumers computing, the cooperative schedule, asked for by
 * the loop's `pipeline(N, specialize = 1)` or the target; or, for a pipelined loop inside a
 * persistent kernel's tile loop that asks with `specialize = 2`, the ping-pong schedule of two
 * consumer warpgroups taking alternate tiles (passes/pingpong.c, which shares this file's pieces
 * through passes/stages.h).
 *
 * The VM runs the result with the same values (the copies complete at their async_wait or their
 * mbarrier's wait, and a read of a stage that is still being copied, or a wait for the wrong
 * phase, is a VM error), which the tests check kernel by kernel.
 */
#include "passes.h"
#include "stages.h"

#include "ir/layout.h"
#include "ir/mma.h"
#include "ir/tma.h"

#include <stdlib.h>
#include <string.h>

static bool is_pow2(int64_t x) { return x > 0 && (x & (x - 1)) == 0; }

typedef struct UseCount {
    const IrValue *v;
    PassUses uses;
} UseCount;

static bool count_use(IrOp *op, void *ctx) {
    UseCount *u = ctx;
    for (uint32_t i = 0; i < op->noperands; i++)
        if (op->operands[i] == u->v) u->uses.count++, u->uses.user = op, u->uses.operand = i;
    return true;
}

PassUses pass_uses(const IrRegion *r, const IrValue *v) {
    UseCount u = {.v = v};
    ir_walk((IrRegion *)r, count_use, &u);
    return u.uses;
}

/* Whether v (used by the loop body's ops) can be recomputed ahead: defined outside the body, the
 * induction variable, or a pure op of the body (no regions) over such values. Appends the body's
 * ops it needs to the slice, operands first. */
static bool add_slice(Loop *L, IrValue *v, int depth) {
    if (depth > 64) return false;
    if (!v->def) return v->region != L->body || v->index == 0;
    IrOp *d = v->def;
    if (d->parent != L->body) {
        /* defined outside the loop (or in a nested region, which cannot reach here) */
        for (IrRegion *r = d->parent; r; r = r->parent_op ? r->parent_op->parent : NULL)
            if (r == L->body) return false;
        return true;
    }
    for (int i = 0; i < L->nslice; i++)
        if (L->slice[i] == d) return true;
    if (!(ir_op_info[d->code].flags & F_PURE) || d->nregions) return false;
    for (uint32_t i = 0; i < d->noperands; i++)
        if (!add_slice(L, d->operands[i], depth + 1)) return false;
    if (L->nslice == MAX_SLICE) return false;
    L->slice[L->nslice++] = d;
    return true;
}

/* A load that can be staged: its tile is [R, C] of a 16-bit type (or an 8-bit one, see below)
 * with power-of-two sizes and rows of at least 16 bytes, its one use is operand a or b of a
 * tensor-core dot in the body. An 8-bit operand (m16n8k32) must be k-contiguous in the ring, as
 * ldmatrix moves b16 units and cannot transpose bytes: a as loaded, b only through a transpose
 * (b given as [N, K]); a row-major 8-bit b stays in registers and the code generator stages it. */
static bool candidate(Loop *L, IrOp *load, int warps, Staged *out) {
    const IrType *t = load->results[0]->type;
    if (t->rank != 2 || (t->elem.bits != 16 && t->elem.bits != 8) || !is_pow2(t->shape[0]) || !is_pow2(t->shape[1]) ||
        t->shape[1] * (t->elem.bits / 8) < 16)
        return false;
    PassUses u = pass_uses(L->body, load->results[0]);
    IrOp *transpose = NULL;
    if (u.count == 1 && u.user->code == OP_TRANSPOSE && u.user->parent == L->body && u.user->nints == 2 &&
        u.user->ints[0] == 1) {
        /* transpose(load) feeding a dot: the ring holds the loaded rows; the dot reads a
         * transposed view of them (a shared layout, not a data movement) */
        transpose = u.user;
        u = pass_uses(L->body, transpose->results[0]);
    }
    if (u.count != 1 || u.user->code != OP_DOT || u.operand > 1 || u.user->parent != L->body) return false;
    const IrOp *dot = u.user;
    MmaTiling mma;
    if (!mma_tiling_of(dot, warps, &mma)) return false; /* the layout pass put it on tensor cores */
    if (t->elem.bits == 8 && (mma_pack(mma.instr) != 4 || (u.operand == 0) != (transpose == NULL))) return false;
    *out = (Staged){.load = load, .transpose = transpose, .dot = u.user, .operand = u.operand};
    return true;
}

/* ---- TMA ---------------------------------------------------------------------------------------
 * A staged load is copied by TMA (cp.async.bulk.tensor into the same swizzled stage) when the
 * target has TMA, its tile is a plain rectangular slice of a kernel parameter (index d is
 * `reshape(add(splat(s), arange 0))` or `arange c` laid along dimension d alone: the box starts at
 * s) of rank 2 to 5 whose leading dimensions are indexed by i32 scalars (K[b, h, n :+ BN, :]: the
 * box is 1 there, the origin the scalar; tma_origin), the launch facts prove the tensor qualifies
 * (16-byte aligned base, innermost stride 1, the other strides multiples of 16 elements, hence of
 * 16 bytes; what facts cannot prove, such as a leading stride of 1, the runtime checks when it
 * encodes the map, and launches the generic kernel), the box is at most 256 per dimension,
 * its rows are 32, 64 or 128 bytes and the ring's XOR swizzle (swizzle_for_ldmatrix) is the TMA
 * swizzle mode of that row size (32B, 64B, 128B: 16-byte chunk bits XORed with address bits 7..9),
 * and a stage is a multiple of 1024 bytes (the swizzle's period, from a 1024-aligned buffer).
 * Anything else is copied by cp.async, which is always correct. */

/* The scalar start of a slice index (passes.h). */
IrValue *pass_slice_start(IrBuilder *b, IrValue *v, int d, int rank, int64_t n) {
    const IrType *t = v->type;
    if (t->kind != TY_TILE || t->rank != rank || !v->def || v->def->code != OP_RESHAPE) return NULL;
    for (int k = 0; k < rank; k++)
        if (t->shape[k] != (k == d ? n : 1)) return NULL;
    IrValue *x = v->def->operands[0];
    if (x->type->rank != 1 || x->type->shape[0] != n || !x->def || !elem_eq(x->type->elem, elem_i32())) return NULL;
    IrOp *op = x->def;
    if (op->code == OP_ARANGE) return b ? const_i32(b, op->ints[0]) : x;
    if (op->code != OP_ADD) return NULL;
    for (int k = 0; k < 2; k++) {
        IrOp *s = op->operands[k]->def, *a = op->operands[1 - k]->def;
        /* (an arange the layout pass shares between tiles of other layouts comes converted) */
        while (a && a->code == OP_CONVERT_LAYOUT) a = a->operands[0]->def;
        if (s && s->code == OP_SPLAT && a && a->code == OP_ARANGE && a->ints[0] == 0) return s->operands[0];
    }
    return NULL;
}

/* The origin along tensor dimension d of a TMA copy of load's tile (rank 2) out of its tensor (rank
 * 2 to 5), or NULL: a leading dimension's is its index, an i32 scalar (the box is 1 there), the
 * last two dimensions' the slice starts of their indices. */
static IrValue *tma_origin(IrBuilder *b, const IrOp *load, int d) {
    const IrType *t = load->results[0]->type;
    int lead = load->operands[0]->type->rank - t->rank;
    IrValue *v = load->operands[1 + d];
    if (d >= lead) return pass_slice_start(b, v, d - lead, t->rank, t->shape[d - lead]);
    return type_is_scalar(v->type) && elem_eq(v->type->elem, elem_i32()) ? v : NULL;
}

/* The TMA swizzle mode of rows of row_bytes, as the ring's Swizzle (in elements of elem_bytes). */
static Swizzle tma_swizzle(int64_t row_bytes, int elem_bytes) {
    int bits = row_bytes == 128 ? 3 : row_bytes == 64 ? 2 : row_bytes == 32 ? 1 : 0;
    int log_elem = elem_bytes == 1 ? 0 : elem_bytes == 2 ? 1 : 2;
    return bits ? (Swizzle){.bits = bits, .base = 4 - log_elem, .shift = 3} : (Swizzle){0, 0, 0};
}

static bool tma_qualifies(const Loop *L, const Target *t, const IrOp *load, bool wgmma) {
    const IrFunction *f = L->body->function;
    const IrValue *x = load->operands[0];
    const IrType *tt = load->results[0]->type;
    int rank = x->type->rank; /* the tensor's: its leading dimensions indexed by scalars, a box of 1 */
    if (!target_has_tma(t) || x->def || x->region != f->body || x->index >= f->nparams || tt->rank != 2 ||
        rank < 2 || rank > IR_TMA_MAX_RANK)
        return false;
    IrParamFacts facts = target_param_facts(t, f, x->index);
    if (!facts.aligned16 || !facts.strides_div16 || !facts.unit_stride[rank - 1]) return false;
    int elem_bytes = tt->elem.bits / 8;
    int64_t row = 1024 / tt->elem.bits; /* wgmma: elements in a 128-byte row */
    int64_t cols = wgmma && tt->shape[1] > row ? row : tt->shape[1]; /* a box per column block */
    int64_t row_bytes = cols * elem_bytes;
    Swizzle want = tma_swizzle(row_bytes, elem_bytes), ring = swizzle_for_ldmatrix(cols, elem_bytes);
    if (!want.bits || want.bits != ring.bits || want.base != ring.base || want.shift != ring.shift) return false;
    if (tt->shape[0] > 256 || tt->shape[1] > 256 || type_bytes(tt) % 1024) return false;
    for (int d = 0; d < rank; d++)
        if (!tma_origin(NULL, load, d)) return false;
    return true;
}

/* ---- wgmma --------------------------------------------------------------------------------------
 * A dot that the layout pass put on wgmma reads both operands from the ring through matrix
 * descriptors, which take the canonical layouts of the 128-byte swizzle: rows of 64 elements (128
 * bytes), 8 rows an atom of 1024 bytes, the 16-byte chunks of row r XORed with r % 8. An [R, C]
 * tile with C > 64 is kept as C / 64 column blocks of [R, 64], one after another (split(1, 64,
 * 64 * R)): for the k-major a operand a k step stays inside a block, for the n-major b the
 * descriptor's leading byte offset is the block stride. Each block is one TMA box. With 8-bit
 * elements (the k32 rows, both operands k-major) a 128-byte row is 128 elements: the same layouts
 * with 128 in place of 64. */
static bool wgmma_dot(const IrOp *dot) { return dot->nints >= 1 && mma_is_wgmma((MmaInstr)dot->ints[0]); }

/* The layout of a ring of S stages of tile t, or with S = 0 of one buffer of it (rank 2). */
static const SharedLayout *ring_layout(Arena *arena, int S, const IrType *t, bool wgmma) {
    int rank = S ? 3 : 2;
    int64_t row = 1024 / t->elem.bits; /* wgmma: elements in a 128-byte row (64 of 16 bits, 128 of 8) */
    int64_t shape[3] = {S, t->shape[0], t->shape[1]}, strides[3] = {t->shape[0] * t->shape[1], row, 1};
    int64_t *sh = S ? shape : shape + 1, *st = S ? strides : strides + 1;
    const SharedLayout *sl = shared_layout_row_major(arena, rank, sh);
    if (wgmma && t->shape[1] > row)
        sl = shared_layout_split(arena, shared_layout_strided(arena, rank, sh, st), rank - 1, row, row * t->shape[0]);
    /* the TMA loads' swizzle mode is this one (tma_qualifies checks) */
    return shared_layout_with_swizzle(arena, sl, swizzle_for_ldmatrix(wgmma ? row : t->shape[1], t->elem.bits / 8));
}

/* Whether the wgmma dot reads operand a from registers: the layout pass gave it the A fragment
 * layout (mma_operand_a_layout) because it is not loaded in the loop (Q or P in attention). */
static bool a_in_registers(Arena *arena, const IrOp *dot, int warps) {
    const IrType *ta = dot->operands[0]->type;
    MmaTiling t;
    return ta->kind == TY_TILE && ta->layout && mma_tiling_of(dot, warps, &t) &&
           layout_equal(ta->layout, mma_operand_a_layout(arena, &t));
}

/* A wgmma dot whose operand b is not staged, or whose operand a is neither staged nor in registers
 * (or whose loop is left as written), goes back to mma.sync: the same accumulator layout (every
 * warp along M) and the same register A layout, its operands read wherever they are. */
static bool demote(IrOp *op, void *ctx) {
    if (op->code != OP_DOT || !wgmma_dot(op)) return true;
    IrFunction *f = ctx; /* NULL: demote unconditionally */
    const IrType *ta = op->operands[0]->type, *tb = op->operands[1]->type;
    int bytes = tb->elem.bits / 8;
    bool staged = f && tb->kind == TY_SHARED && shared_layout_is_wgmma_of(tb->shared, tb->shared->strides[1] == 1, bytes) &&
                  (ta->kind == TY_SHARED ? shared_layout_is_wgmma_of(ta->shared, 1, bytes)
                                         : a_in_registers(&f->module->arena, op, f->num_warps > 0 ? f->num_warps : 4));
    if (!staged)
        op->ints[0] = mma_instr_for(op->operands[0]->type->elem, op->operands[1]->type->elem, op->results[0]->type->elem);
    return true;
}

/* Whether operand a of the dot is a tile loaded before the loop: the layout pass left it to
 * stage_invariant (Q in attention), which runs after the loops. */
static bool a_before_loop(const Loop *L, const IrOp *dot) {
    const IrOp *d = dot->operands[0]->def;
    if (!d || d->code != OP_LOAD) return false;
    for (const IrRegion *r = d->parent; r; r = r->parent_op ? r->parent_op->parent : NULL)
        if (r == L->body) return false;
    return true;
}

/* Finds what to stage in the loop; false when nothing qualifies. */
static bool analyze(Loop *L, int warps, const Target *t) {
    for (IrOp *op = L->body->first; op; op = op->next) {
        if (op->code != OP_LOAD || op->operands[0]->type->kind != TY_TENSOR || L->nstaged == MAX_STAGED) continue;
        Staged s;
        if (!candidate(L, op, warps, &s)) continue;
        int keep = L->nslice;
        bool ok = true;
        for (uint32_t i = 1; ok && i < op->noperands; i++) ok = add_slice(L, op->operands[i], 0);
        if (!ok) {
            L->nslice = keep;
            continue;
        }
        L->staged[L->nstaged++] = s;
    }
    /* a wgmma dot needs operand b in a ring, and a too unless it reads a from registers: one that
     * gets less goes back to mma.sync now, before its rings are laid out */
    for (int i = 0; i < L->nstaged; i++) {
        IrOp *dot = L->staged[i].dot;
        bool has[2] = {false, false};
        for (int j = 0; j < L->nstaged; j++)
            if (L->staged[j].dot == dot) has[L->staged[j].operand] = true;
        if (wgmma_dot(dot) && (!has[1] || (!has[0] && !a_before_loop(L, dot) &&
                                            !a_in_registers(&L->body->function->module->arena, dot, warps))))
            demote(dot, NULL);
    }
    for (int i = 0; i < L->nstaged; i++) {
        Staged *s = &L->staged[i];
        s->tma = tma_qualifies(L, t, s->load, wgmma_dot(s->dot));
        L->ntma += s->tma;
    }
    return L->nstaged > 0;
}


/* The induction variable's type may be any integer; stages and offsets are computed in it. */
static IrValue *int_const_like(IrBuilder *b, const IrValue *like, int64_t v) {
    return ir_const_int(b, like->type, v);
}

static IrValue *view(IrBuilder *b, IrValue *buffer, IrValue *stage) {
    const IrType *bt = buffer->type;
    IrType vt = {.kind = TY_SHARED, .elem = bt->elem, .rank = bt->rank - 1};
    for (int d = 0; d < vt.rank; d++) vt.shape[d] = bt->shape[d + 1];
    const SharedLayout *bl = bt->shared;
    const SharedLayout *vl = shared_layout_strided(&b->module->arena, vt.rank, vt.shape, bl->strides + 1);
    for (int d = 0; d < vt.rank; d++)
        if (bl->split[d + 1]) vl = shared_layout_split(&b->module->arena, vl, d, bl->split[d + 1], bl->split_strides[d + 1]);
    vt.shared = shared_layout_with_swizzle(&b->module->arena, vl, bl->swizzle);
    IrValue *ops[2] = {buffer, stage};
    const IrType *rt = ir_type_intern(b->module, &vt);
    return ir_build(b, OP_SHARED_VIEW, ops, 2, &rt, 1)->results[0];
}

/* The 2-d shared view v with its dims swapped: the same bytes, strides permuted. */
static IrValue *transposed_view(IrBuilder *b, IrValue *v) {
    const IrType *t = v->type;
    IrType vt = {.kind = TY_SHARED, .elem = t->elem, .rank = 2, .shape = {t->shape[1], t->shape[0]}};
    int64_t strides[2] = {t->shared->strides[1], t->shared->strides[0]};
    const SharedLayout *l = shared_layout_strided(&b->module->arena, 2, vt.shape, strides);
    for (int d = 0; d < 2; d++)
        if (t->shared->split[1 - d])
            l = shared_layout_split(&b->module->arena, l, d, t->shared->split[1 - d], t->shared->split_strides[1 - d]);
    vt.shared = shared_layout_with_swizzle(&b->module->arena, l, t->shared->swizzle);
    const IrType *rt = ir_type_intern(b->module, &vt);
    IrOp *op = ir_build(b, OP_TRANSPOSE, &v, 1, &rt, 1);
    op->ints[0] = 1, op->ints[1] = 0, op->nints = 2;
    return op->results[0];
}

/* Issues the copies of every staged load for the iteration whose induction variable is iv, into
 * stage `stage`: copy_async for each cp.async load; then, when the loop has TMA loads and that
 * iteration exists (iv < hi: no TMA copy is left in flight when the block ends), their copy_tma
 * and the stage's mbarrier_arrive. */
/* `if cond { } else { yield }` at b; returns a builder at the end of the then-region, whose
 * yield the caller adds after what it builds there. */
IrBuilder stages_if_then(IrBuilder *b, IrValue *cond) {
    IrOp *when = ir_build(b, OP_IF, &cond, 1, NULL, 0);
    IrRegion *then = ir_op_add_region(when), *otherwise = ir_op_add_region(when);
    IrBuilder t = *b;
    ir_builder_at_end(&t, otherwise);
    ir_build(&t, OP_YIELD, NULL, 0, NULL, 0);
    ir_builder_at_end(&t, then);
    return t;
}

/* copy_tma of staged load s (its origins through map) into stage `stage` of its ring, on
 * mbarriers[stage], at b. */
void stages_copy_tma(const Loop *L, int s, IrBuilder *b, ValueMap *map, IrValue *mbarriers, IrValue *stage) {
    IrOp *load = L->staged[s].load;
    int rank = load->operands[0]->type->rank;
    IrValue *ops[IR_MAX_RANK + 4];
    uint32_t n = 0;
    ops[n++] = load->operands[0];
    for (int d = 0; d < rank; d++) ops[n++] = value_map_get(map, tma_origin(b, load, d));
    ops[n++] = view(b, L->staged[s].buffer, stage);
    ops[n++] = mbarriers;
    ops[n++] = stage;
    ir_build(b, OP_COPY_TMA, ops, n, NULL, 0);
}

static void issue_copies(Loop *L, IrBuilder *b, IrValue *iv, IrValue *stage) {
    ValueMap map;
    value_map_init(&map, b->function);
    value_map_set(&map, L->body->args[0], iv);
    for (int i = 0; i < L->nslice; i++) clone_op(b, L->slice[i], &map);
    IrBuilder tma = L->ntma ? stages_if_then(b, ir_cmp(b, CMP_LT, iv, L->op->operands[1])) : *b;
    for (int s = 0; s < L->nstaged; s++) {
        if (L->staged[s].tma) {
            stages_copy_tma(L, s, &tma, &map, L->mbarriers, stage);
            continue;
        }
        IrOp *load = L->staged[s].load;
        IrValue *ops[IR_MAX_RANK + 4];
        uint32_t n = 0;
        ops[n++] = load->operands[0];
        for (uint32_t i = 1; i < load->noperands; i++) ops[n++] = value_map_get(&map, load->operands[i]);
        ops[n++] = view(b, L->staged[s].buffer, stage);
        ir_build(b, OP_COPY_ASYNC, ops, n, NULL, 0);
    }
    if (L->ntma) {
        IrValue *ops[2] = {L->mbarriers, stage};
        ir_build(&tma, OP_MBARRIER_ARRIVE, ops, 2, NULL, 0);
        ir_build(&tma, OP_YIELD, NULL, 0, NULL, 0);
    }
    value_map_free(&map);
}

static IrOp *wait(IrBuilder *b, int64_t in_flight) {
    IrOp *w = ir_build(b, OP_ASYNC_WAIT, NULL, 0, NULL, 0);
    w->ints[0] = in_flight, w->nints = 1;
    return w;
}

/* The loop's dot that can run asynchronously, or NULL: its one staged dot is on wgmma, its
 * accumulator is a carried value of the loop and its result goes only to the yield (the next
 * iteration's accumulator). The dot of iteration i
 * then overlaps iteration i + 1's wait for its stage: dot_wait 1 after it releases iteration
 * i - 1's stage, into which the copies of iteration i + S - 1 go (after a barrier: every
 * warpgroup's dot is done with it). Sets L->async_use to the yield operand it is. */
IrOp *stages_async_dot(Loop *L) {
    IrOp *dot = L->staged[0].dot;
    for (int s = 0; s < L->nstaged; s++)
        if (L->staged[s].dot != dot) return NULL;
    if (!wgmma_dot(dot) || L->nstaged != 2) return NULL;
    const IrValue *acc = dot->operands[2];
    if (acc->def || acc->region != L->body || acc->index == 0) return NULL;
    PassUses u = pass_uses(L->body, dot->results[0]);
    if (u.count != 1 || u.user != L->body->last || u.user->code != OP_YIELD || u.operand + 1 != acc->index)
        return NULL;
    L->async_use = u.operand;
    return dot;
}

static IrValue *dot_wait(IrBuilder *b, IrValue *acc, int64_t pending) {
    IrOp *w = ir_build(b, OP_DOT_WAIT, &acc, 1, &acc->type, 1);
    w->ints[0] = pending, w->nints = 1;
    return w->results[0];
}

/* Issues the loop's dot `async` asynchronously: `dot ..., async 1; dot_wait 1` at b (after the
 * dot), the next iteration's accumulator the wait's result. */
void stages_make_async(Loop *L, IrOp *async, IrBuilder *b) {
    async->ints[2] = 1, async->nints = 3;
    IrValue *done = dot_wait(b, async->results[0], 1);
    ir_set_operand(L->body->last, L->async_use, done);
}

/* At b, after the loop: dot_wait 0 completes its last asynchronous dot before anything reads the
 * accumulator. */
void stages_complete_after_loop(Loop *L, IrBuilder *b) {
    IrValue *acc = L->op->results[L->async_use];
    IrValue *done = dot_wait(b, acc, 0);
    ir_replace_all_uses(L->body->function, acc, done);
    ir_set_operand(done->def, 0, acc);
}

/* The iteration number (iv - lo) / step of the loop, as an i32. */
static IrValue *ring_index(IrBuilder *b, const Loop *L, IrValue *iv) {
    IrValue *i = ir_binary(b, OP_DIV, ir_binary(b, OP_SUB, iv, L->op->operands[0]), L->op->operands[2]);
    if (!elem_eq(i->type->elem, elem_i32())) i = ir_op1(b, OP_CAST, ir_scalar_type(b->module, elem_i32()), i);
    return i;
}

/* The parity of the phase that iteration i completes on its stage's mbarrier: (i / S) & 1. */
IrValue *stages_ring_parity(IrBuilder *b, const Loop *L, IrValue *i) {
    return ir_binary(b, OP_AND, ir_binary(b, OP_DIV, i, const_i32(b, L->stages)), const_i32(b, 1));
}

/* A ring of S mbarriers (shared<i64>[S]), not yet initialized, before b. */
IrValue *stages_mbarrier_ring(IrBuilder *b, int64_t n) {
    const IrType *rt = ir_shared_type(b->module, elem_int(64), 1, &n);
    IrOp *alloc = ir_build(b, OP_SHARED_ALLOC, NULL, 0, &rt, 1);
    alloc->ints[0] = 0, alloc->ints[1] = 1, alloc->nints = 2;
    return alloc->results[0];
}

/* The ring of each staged load (S stages in its ring_layout), before b. */
void stages_alloc_rings(Loop *L, IrBuilder *b) {
    IrFunction *fn = L->body->function;
    for (int s = 0; s < L->nstaged; s++) {
        const IrType *t = L->staged[s].load->results[0]->type;
        IrType bt = {.kind = TY_SHARED, .elem = t->elem, .rank = 3, .shape = {L->stages, t->shape[0], t->shape[1]},
                     .shared = ring_layout(&fn->module->arena, L->stages, t, wgmma_dot(L->staged[s].dot))};
        const IrType *rt = ir_type_intern(fn->module, &bt);
        IrOp *alloc = ir_build(b, OP_SHARED_ALLOC, NULL, 0, &rt, 1);
        alloc->ints[0] = 0, alloc->ints[1] = 1, alloc->nints = 2; /* not zeroed: every stage is copied before it is read */
        L->staged[s].buffer = alloc->results[0];
    }
}

/* Each staged dot reads stage `read` of its ring in place (a transposed view where its load went
 * through a transpose); the loads and transposes go. */
void stages_read_in_place(Loop *L, IrBuilder *b, IrValue *read) {
    for (int s = 0; s < L->nstaged; s++) {
        Staged *st = &L->staged[s];
        ir_builder_before(b, st->dot);
        IrValue *v = view(b, st->buffer, read);
        if (st->transpose) {
            v = transposed_view(b, v);
            ir_op_remove(st->transpose);
        }
        ir_set_operand(st->dot, st->operand, v);
        ir_op_remove(st->load);
    }
}

static void transform(Loop *L) {
    IrOp *f = L->op;
    IrBuilder b = {0};
    ir_builder_before(&b, f);
    b.loc = f->loc;
    IrValue *lo = f->operands[0], *step = f->operands[2], *iv = L->body->args[0];
    int S = L->stages;
    stages_alloc_rings(L, &b);
    if (L->ntma) {
        /* one mbarrier per stage, initialized before any thread waits or any copy lands */
        L->mbarriers = stages_mbarrier_ring(&b, L->stages);
        ir_build(&b, OP_MBARRIER_INIT, &L->mbarriers, 1, NULL, 0);
        ir_build(&b, OP_BARRIER, NULL, 0, NULL, 0);
    }
    /* the prologue: iterations 0 .. S-2 */
    for (int s = 0; s + 1 < S; s++) {
        IrValue *it = lo;
        if (s) it = ir_binary(&b, OP_ADD, lo, ir_binary(&b, OP_MUL, step, int_const_like(&b, step, s)));
        issue_copies(L, &b, it, const_i32(&b, s));
    }
    /* the steady state, at the top of the body */
    ir_builder_before(&b, L->body->first);
    IrValue *i = ring_index(&b, L, iv);
    IrValue *read = ir_binary(&b, OP_REM, i, const_i32(&b, S));
    IrValue *write = ir_binary(&b, OP_REM, ir_binary(&b, OP_ADD, i, const_i32(&b, S - 1)), const_i32(&b, S));
    if (L->ntma) {
        /* iteration i's stage completes the (i / S)-th phase of its mbarrier */
        IrValue *ops[3] = {L->mbarriers, read, stages_ring_parity(&b, L, i)};
        ir_build(&b, OP_MBARRIER_WAIT, ops, 3, NULL, 0);
    }
    if (L->ntma < L->nstaged) wait(&b, (int64_t)(S - 2) * (L->nstaged - L->ntma));
    IrOp *async = stages_async_dot(L);
    if (!async || L->ntma < L->nstaged) ir_build(&b, OP_BARRIER, NULL, 0, NULL, 0);
    if (async) {
        /* the copies go after the dot, once the previous iteration's dot has released its stage */
        ir_builder_before(&b, async->next);
    }
    if (async) {
        stages_make_async(L, async, &b);
        ir_build(&b, OP_BARRIER, NULL, 0, NULL, 0);
    }
    IrValue *ahead = ir_binary(&b, OP_ADD, iv, ir_binary(&b, OP_MUL, step, int_const_like(&b, step, S - 1)));
    issue_copies(L, &b, ahead, write);
    stages_read_in_place(L, &b, read);
    /* after the loop: no cp.async group in flight (the TMA copies past the end were not issued) */
    b.region = f->parent;
    b.before = f->next;
    if (L->ntma < L->nstaged) wait(&b, 0);
    if (L->ntma) {
        /* the mbarriers end once no thread waits on them: a ring inside an outer loop is
         * initialized again, and smem_plan may give their bytes to another buffer */
        ir_build(&b, OP_BARRIER, NULL, 0, NULL, 0);
        ir_build(&b, OP_MBARRIER_INVAL, &L->mbarriers, 1, NULL, 0);
    }
    if (async) stages_complete_after_loop(L, &b); /* and the last dot complete before the accumulator is read */
}

/* ---- warp specialization (sm_90a, opt-in: Target.specialize) --------------------------------------
 * A kernel whose one pipelined loop is a TMA ring at the top of its body, with 4 or 8 warps, may
 * instead get two warp roles (warp_roles: the body's last op): a producer warpgroup (40 registers)
 * that only issues the copies, and the kernel's 4 or 8 warps as consumers (232 registers: with 8,
 * 12 warps average 168 and fill the 65536 registers) that run the loop and everything after it:
 *
 *     bufs...; full, empty = shared_alloc : shared<i64>[S]; mbarrier_init full
 *     mbarrier_init empty, count 32 W; barrier
 *     warp_roles role(warps 4, regs 40) {
 *         for iv = lo to hi step step { i = (iv - lo) / step; s = i % S
 *             mbarrier_wait empty, s, ((i / S) & 1) ^ 1     the consumers released the stage
 *             copy_tma ..., full, s; mbarrier_arrive full, s }
 *     } role(warps W, regs 232) {
 *         for iv ... { mbarrier_wait full, s, (i / S) & 1;  dot(shared_view(buf, s)...);
 *                      mbarrier_arrive empty, s, threads 32 W  (after the stage's last dot);  ... }
 *         what followed the loop
 *     }
 *
 * When the loop's dot can run asynchronously (async_dot: one wgmma dot into a carried
 * accumulator), the consumer keeps one dot in flight instead: `dot ..., async 1; dot_wait 1`, and
 * the stage released is the previous iteration's (`if i > 0`), whose dot dot_wait 1 completed;
 * each consumer thread releases on its own (`threads`), so the consumer warpgroups do not wait
 * for each other at every stage (a role barrier and one arrival would keep them in lockstep);
 * `dot_wait 0` follows the loop. The last stage is never released: no copy waits for it.
 *
 * A fresh mbarrier's wait for parity 1 returns at once, so the producer's first S waits pass. Tiles
 * made before the loop and used in a role are recomputed there (roles take scalars only); a loop
 * that needs anything else (a tile loaded before it, a second pipelined loop, shared buffers after
 * it) keeps the plain ring. The VM runs the roles with blocking waits (a deadlock is an error). */

/* The op of r's function's body that holds op (op itself when it is at the top). */
static const IrOp *top_op(const IrOp *op, const IrRegion *body) {
    while (op && op->parent != body) op = op->parent ? op->parent->parent_op : NULL;
    return op;
}

/* Whether tile v, made before the loop, can be recomputed in a role: pure ops without regions over
 * scalars and such tiles. */
static bool recomputable(const IrValue *v, int depth) {
    if (v->type->kind != TY_TILE) return true;
    const IrOp *d = v->def;
    if (!d || depth > 32 || !(ir_op_info[d->code].flags & F_PURE) || d->nregions) return false;
    for (uint32_t i = 0; i < d->noperands; i++)
        if (!recomputable(d->operands[i], depth + 1)) return false;
    return true;
}

/* Whether a value used by op comes from before the loop (outside what moves into the roles). */
static bool from_before(const RoleCheck *c, const IrValue *v) {
    if (!v->def) return v->region == c->body; /* a kernel parameter */
    const IrOp *t = top_op(v->def, c->body);
    if (c->roles) return t != c->roles;
    for (const IrOp *o = c->loop; o; o = o->next)
        if (o == t) return false;
    return true;
}

static bool check_role_op(IrOp *op, void *ctx) {
    RoleCheck *c = ctx;
    if (op->code == OP_SHARED_ALLOC || op->code == OP_MBARRIER_INIT || op->code == OP_MBARRIER_INVAL ||
        op->code == OP_WARP_ROLES ||
        (op->code == OP_FOR && op->nints && op->ints[0] >= 2 && op != c->loop && op != c->ring))
        c->ok = false;
    for (uint32_t i = 0; c->ok && i < op->noperands; i++)
        if (op->operands[i]->type->kind == TY_TILE && from_before(c, op->operands[i]) &&
            !recomputable(op->operands[i], 0))
            c->ok = false;
    return c->ok;
}


static bool specializable(const Loop *L, const Target *t, int nloops) {
    const IrFunction *f = L->body->function;
    if (!stages_roles_wanted(L->op, t) || !target_has_tma(t) || nloops != 1 || L->ntma != L->nstaged || L->op->parent != f->body ||
        (f->num_warps != 4 && f->num_warps != 8) || !stages_before_fits(f, L->op))
        return false;
    RoleCheck c = {.loop = L->op, .body = f->body};
    return stages_roles_fit(&c);
}

/* Whether c->loop and everything after it in the body can move into roles (passes/stages.h). */
bool stages_roles_fit(RoleCheck *c) {
    c->ok = true;
    for (IrOp *o = (IrOp *)c->loop; o && c->ok; o = o->next) {
        check_role_op(o, c);
        for (uint32_t k = 0; c->ok && k < o->nregions; k++) ir_walk(o->regions[k], check_role_op, c);
    }
    return c->ok;
}

/* A consumer's release of a stage: each of its threads arrives on its own once its own reads are
 * done (`threads N`; the empty ring counts them all), so that the consumer warpgroups never wait
 * for each other: one promotes or stores while another's dots run. */
void stages_release_by_threads(IrOp *arrive, int consumer_warps) {
    arrive->ints[0] = 0, arrive->ints[1] = 32 * consumer_warps, arrive->nints = 2;
}

/* v in the role (recomputed at the role's start, once, when it is a tile made before the loop). */
static IrValue *in_role(IrBuilder *at_start, ValueMap *map, const RoleCheck *c, IrValue *v) {
    if (v->type->kind != TY_TILE || !from_before(c, v)) return v;
    IrValue *m = value_map_get(map, v);
    if (m != v) return m;
    for (uint32_t i = 0; i < v->def->noperands; i++) in_role(at_start, map, c, v->def->operands[i]);
    IrOp *copy = clone_op(at_start, v->def, map);
    for (uint32_t i = 0; i < copy->nresults; i++) value_map_set(map, v->def->results[i], copy->results[i]);
    return value_map_get(map, v);
}

typedef struct RoleFix {
    IrBuilder *at_start;
    ValueMap *map;
    const RoleCheck *check;
} RoleFix;

static bool fix_role_op(IrOp *op, void *ctx) {
    RoleFix *r = ctx;
    for (uint32_t i = 0; i < op->noperands; i++) {
        IrValue *v = in_role(r->at_start, r->map, r->check, op->operands[i]);
        if (v != op->operands[i]) ir_set_operand(op, i, v);
    }
    return true;
}

/* Every tile made before the roles that an op of role uses, recomputed at the role's start (once
 * each; passes/stages.h). */
void stages_recompute_in_role(IrRegion *role, const RoleCheck *check) {
    ValueMap map;
    value_map_init(&map, role->function);
    IrBuilder start = {.module = role->function->module, .function = role->function};
    ir_builder_before(&start, role->first);
    RoleFix fix = {&start, &map, check};
    ir_walk(role, fix_role_op, &fix);
    value_map_free(&map);
}

/* The stage and parity of the iteration whose induction variable is iv, in b. */
static void ring_position(IrBuilder *b, const Loop *L, IrValue *iv, IrValue **stage, IrValue **parity) {
    IrValue *i = ring_index(b, L, iv);
    *stage = ir_binary(b, OP_REM, i, const_i32(b, L->stages));
    *parity = stages_ring_parity(b, L, i);
}

static void specialize(Loop *L) {
    IrOp *loop = L->op;
    IrFunction *fn = L->body->function;
    IrRegion *body = fn->body;
    IrBuilder b = {0};
    ir_builder_before(&b, loop);
    b.loc = loop->loc;
    stages_alloc_rings(L, &b);
    IrValue *full = stages_mbarrier_ring(&b, L->stages), *empty = stages_mbarrier_ring(&b, L->stages);
    L->mbarriers = full;
    int consumers = fn->num_warps;
    ir_build(&b, OP_MBARRIER_INIT, &full, 1, NULL, 0);
    IrOp *empty_init = ir_build(&b, OP_MBARRIER_INIT, &empty, 1, NULL, 0);
    empty_init->ints[0] = 32 * consumers, empty_init->nints = 1; /* every consumer thread releases on its own */
    ir_build(&b, OP_BARRIER, NULL, 0, NULL, 0);
    RoleCheck check = {.loop = loop, .body = body, .ok = true};

    /* the roles, last in the body; the loop and everything after it move into the consumer */
    IrBuilder end = b;
    ir_builder_at_end(&end, body);
    IrOp *roles = ir_build(&end, OP_WARP_ROLES, NULL, 0, NULL, 0);
    roles->ints[0] = 4, roles->ints[1] = PRODUCER_REGS, roles->ints[2] = consumers, roles->ints[3] = CONSUMER_REGS;
    roles->nints = 4;
    IrRegion *producer = ir_op_add_region(roles), *consumer = ir_op_add_region(roles);
    for (IrOp *o = loop, *next; o != roles; o = next) {
        next = o->next;
        ir_op_remove(o);
        ir_op_append(consumer, o);
    }
    check.roles = roles;

    /* the producer: its own loop over the same iterations, issuing the copies */
    ValueMap pmap;
    IrBuilder pb = b;
    ir_builder_at_end(&pb, producer);
    IrOp *pf = ir_build(&pb, OP_FOR, loop->operands, 3, NULL, 0);
    IrRegion *pbody = ir_op_add_region(pf);
    IrValue *piv = ir_region_add_arg(pbody, L->body->args[0]->type, "piv");
    value_map_init(&pmap, fn);
    IrBuilder pstart = pb;
    ir_builder_before(&pstart, pf);
    for (int i = 0; i < L->nslice; i++)
        for (uint32_t k = 0; k < L->slice[i]->noperands; k++) in_role(&pstart, &pmap, &check, L->slice[i]->operands[k]);
    for (int s = 0; s < L->nstaged; s++)
        for (uint32_t k = 1; k < L->staged[s].load->noperands; k++)
            in_role(&pstart, &pmap, &check, L->staged[s].load->operands[k]);
    IrBuilder in = pb;
    ir_builder_at_end(&in, pbody);
    IrValue *stage, *parity;
    ring_position(&in, L, piv, &stage, &parity);
    IrValue *wait_ops[3] = {empty, stage, ir_binary(&in, OP_XOR, parity, const_i32(&in, 1))};
    ir_build(&in, OP_MBARRIER_WAIT, wait_ops, 3, NULL, 0);
    value_map_set(&pmap, L->body->args[0], piv);
    for (int i = 0; i < L->nslice; i++) clone_op(&in, L->slice[i], &pmap);
    for (int s = 0; s < L->nstaged; s++) stages_copy_tma(L, s, &in, &pmap, full, stage);
    IrValue *arrive[2] = {full, stage};
    ir_build(&in, OP_MBARRIER_ARRIVE, arrive, 2, NULL, 0);
    ir_build(&in, OP_YIELD, NULL, 0, NULL, 0);
    value_map_free(&pmap);

    /* the consumer: wait for the stage, read it in place, release it after its last dot */
    IrBuilder cb = b;
    ir_builder_before(&cb, L->body->first);
    IrValue *read, *cparity;
    ring_position(&cb, L, L->body->args[0], &read, &cparity);
    IrValue *full_ops[3] = {full, read, cparity};
    ir_build(&cb, OP_MBARRIER_WAIT, full_ops, 3, NULL, 0);
    IrOp *last_dot = NULL;
    for (IrOp *o = L->body->first; o; o = o->next)
        for (int s = 0; s < L->nstaged; s++)
            if (L->staged[s].dot == o) last_dot = o;
    IrOp *async = stages_async_dot(L);
    stages_read_in_place(L, &cb, read);
    IrBuilder after = cb;
    ir_builder_before(&after, last_dot->next);
    if (async) {
        /* the dot runs on while the next iteration waits for its stage: dot_wait 1 completes the
         * previous iteration's dot, whose stage is released then (from the second iteration on),
         * and the last stage after the loop, once dot_wait 0 has completed the last dot */
        stages_make_async(L, async, &after);
        IrValue *i = ring_index(&after, L, L->body->args[0]);
        IrBuilder t = stages_if_then(&after, ir_cmp(&after, CMP_GT, i, const_i32(&after, 0)));
        IrValue *prev = ir_binary(&t, OP_REM, ir_binary(&t, OP_ADD, i, const_i32(&t, L->stages - 1)),
                                  const_i32(&t, L->stages));
        IrValue *release[2] = {empty, prev};
        stages_release_by_threads(ir_build(&t, OP_MBARRIER_ARRIVE, release, 2, NULL, 0), consumers);
        ir_build(&t, OP_YIELD, NULL, 0, NULL, 0);
        IrBuilder end = b;
        end.region = loop->parent;
        end.before = loop->next;
        stages_complete_after_loop(L, &end);
    } else {
        IrValue *release[2] = {empty, read};
        stages_release_by_threads(ir_build(&after, OP_MBARRIER_ARRIVE, release, 2, NULL, 0), consumers);
    }
    loop->nints = 0; /* pipelined by the roles now */
    stages_recompute_in_role(consumer, &check);
    fn->num_warps = 4 + consumers;
}

/* ---- loop-invariant operands ------------------------------------------------------------------ */

/* Whether op is inside a `for ... pipeline(N >= 2)` loop. */
static bool in_pipelined_loop(const IrOp *op) {
    for (const IrRegion *r = op->parent; r && r->parent_op; r = r->parent_op->parent)
        if (r->parent_op->code == OP_FOR && r->parent_op->nints && r->parent_op->ints[0] >= 2) return true;
    return false;
}

typedef struct InvariantUses {
    const IrValue *v;
    int warps;
    int all, dots, wgmma;
} InvariantUses;

static bool count_invariant_use(IrOp *op, void *ctx) {
    InvariantUses *u = ctx;
    MmaTiling t;
    for (uint32_t i = 0; i < op->noperands; i++) {
        if (op->operands[i] != u->v) continue;
        u->all++;
        if (op->code == OP_DOT && i < 2 && mma_tiling_of(op, u->warps, &t) && in_pipelined_loop(op)) {
            u->dots++;
            u->wgmma += i == 0 && mma_is_wgmma(t.instr);
        }
    }
    return true;
}

/* A tile loaded once outside the pipelined loops and read there only as operand a or b of
 * tensor-core dots (Q in attention, when the layout pass left it out of registers) would be staged
 * through the scratch on every iteration: it is copied into a shared buffer of its own once,
 * where it is loaded, and the dots read that buffer in place:
 *
 *     buf = shared_alloc : shared<bf16>[R, C]{row_major ^ swizzle}
 *     copy_async A, idx..., buf;  async_wait 0;  barrier
 */
static bool stage_invariant(IrFunction *f, IrOp *load, int64_t budget) {
    const IrType *t = load->results[0]->type;
    if (t->rank != 2 || t->elem.bits != 16 || !is_pow2(t->shape[0]) || !is_pow2(t->shape[1]) ||
        t->shape[1] * 2 < 16 || type_bytes(t) > budget)
        return false;
    InvariantUses u = {.v = load->results[0], .warps = f->num_warps > 0 ? f->num_warps : 4};
    ir_walk(f->body, count_invariant_use, &u);
    if (u.all == 0 || u.dots != u.all) return false;
    IrBuilder b;
    ir_builder_before(&b, load->next ? load->next : load);
    if (!load->next) ir_builder_at_end(&b, load->parent);
    b.loc = load->loc;
    /* the wgmma layout when every user is a wgmma dot reading it as operand a (a descriptor), else
     * ldmatrix's; the loops are pipelined already, so their dots are final */
    bool wgmma = u.wgmma == u.all && t->shape[1] % 64 == 0;
    const SharedLayout *sl = ring_layout(&f->module->arena, 0, t, wgmma);
    IrType bt = {.kind = TY_SHARED, .elem = t->elem, .rank = 2, .shape = {t->shape[0], t->shape[1]}, .shared = sl};
    const IrType *rt = ir_type_intern(f->module, &bt);
    IrOp *alloc = ir_build(&b, OP_SHARED_ALLOC, NULL, 0, &rt, 1);
    alloc->ints[0] = 0, alloc->ints[1] = 1, alloc->nints = 2;
    IrValue *ops[IR_MAX_RANK + 2];
    uint32_t n = 0;
    for (uint32_t i = 0; i < load->noperands; i++) ops[n++] = load->operands[i];
    ops[n++] = alloc->results[0];
    ir_build(&b, OP_COPY_ASYNC, ops, n, NULL, 0);
    wait(&b, 0);
    ir_build(&b, OP_BARRIER, NULL, 0, NULL, 0);
    ir_replace_all_uses(f, load->results[0], alloc->results[0]);
    ir_op_remove(load);
    return true;
}

typedef struct Loads {
    VEC(IrOp *) ops;
} Loads;

static bool collect_invariant(IrOp *op, void *ctx) {
    if (op->code == OP_LOAD && !in_pipelined_loop(op)) vec_push(&((Loads *)ctx)->ops, op);
    return true;
}

typedef struct Collect {
    VEC(IrOp *) loops;
} Collect;

static bool collect_loop(IrOp *op, void *ctx) {
    if (op->code == OP_FOR && op->nints && op->ints[0] >= 2) vec_push(&((Collect *)ctx)->loops, op);
    return true;
}

/* The bytes of the loop's rings with S stages, placed one after another as smem_plan places them;
 * each start is taken 1024-aligned (smem_align of a swizzled buffer: an upper bound for all). */
static int64_t ring_bytes(const Loop *L, int S) {
    int64_t bytes = 0, align = 1024;
    for (int s = 0; s < L->nstaged; s++) {
        bytes = (bytes + align - 1) / align * align;
        bytes += S * type_bytes(L->staged[s].load->results[0]->type);
    }
    return L->ntma ? bytes + S * 8 : bytes; /* the mbarriers */
}

bool pass_stages_target(IrModule *m, const Target *t, DiagList *d) {
    (void)d;
    int64_t smem_bytes = target_smem_bytes(t);
    bool changed = false;
    for (IrFunction *f = m->functions; f; f = f->next) {
        if (!f->is_kernel || !f->body) continue;
        int warps = f->num_warps > 0 ? f->num_warps : 4;
        Collect c = {0};
        ir_walk(f->body, collect_loop, &c);
        for (size_t k = 0; k < c.loops.len; k++) {
            Loop *L = calloc(1, sizeof *L);
            L->op = c.loops.data[k];
            L->body = L->op->regions[0];
            L->stages = (int)L->op->ints[0];
            /* fewer stages when the rings would not fit (the scratch of the code generator
             * needs room too: a quarter of the budget stays free), none below 2 */
            bool fits = false;
            if (analyze(L, warps, t)) {
                while (L->stages > 2 && ring_bytes(L, L->stages) > smem_bytes * 3 / 4) L->stages--;
                fits = ring_bytes(L, L->stages) <= smem_bytes * 3 / 4;
            }
            if (fits) {
                int n = (int)c.loops.len;
                if (!stages_pingpong(L, t, n)) {
                    if (specializable(L, t, n)) specialize(L);
                    else transform(L);
                }
                changed = true;
            }
            free(L);
        }
        vec_free(&c.loops);
        /* after the loops: a wgmma dot reading an invariant operand a is final by now */
        Loads loads = {0};
        ir_walk(f->body, collect_invariant, &loads);
        for (size_t k = 0; k < loads.ops.len; k++) changed |= stage_invariant(f, loads.ops.data[k], smem_bytes / 4);
        vec_free(&loads.ops);
        ir_walk(f->body, demote, f);
    }
    return changed;
}

/* ---- the loop's own choice: pipeline(N, specialize = 0 | 1 | 2) ---------------------------------
 * Whether warp roles are wanted for loop: its `specialize` option (ints[1]: 1 asks, 2 asks for
 * ping-pong, which where it does not qualify (stages_pingpong) is an ask for these roles, 0
 * forbids) where the source gives one, else the target's default (Target.specialize: the target word,
 * TILE_WARP_SPECIALIZE=1 in the runtime); never where the target cannot honour setmaxnreg
 * (Target.no_warp_roles). A wanted loop still gets the roles only where specializable() holds;
 * otherwise it keeps the plain ring, with the option still shown on it (--dump-after=stages). */
bool stages_roles_wanted(const IrOp *loop, const Target *t) {
    if (t->no_warp_roles) return false;
    if (loop->nints > 1) return loop->ints[1] >= 1;
    return t->specialize;
}

static bool is_register_tile(const IrValue *v) { return v->type->kind == TY_TILE && v->type->rank > 0; }

static bool touches_tile(IrOp *op, void *ctx) {
    bool *found = ctx;
    for (uint32_t i = 0; i < op->noperands; i++) *found |= is_register_tile(op->operands[i]);
    for (uint32_t i = 0; i < op->nresults; i++) *found |= is_register_tile(op->results[i]);
    return !*found;
}

/* Whether what stays before the loop, outside the roles, suits a block of more warps (the roles add
 * a producer warpgroup): an op there that reads or makes a register tile, whose layout is for the
 * kernel's warps, must be pure, without regions, and make tiles only, so that it is dead once the
 * roles recompute what they use of it (cleanup removes it). A load (even an unused one, which dce
 * keeps), a reduction to a scalar or an `if` over tiles there keeps the plain ring. */
bool stages_before_fits(const IrFunction *f, const IrOp *first) {
    for (IrOp *o = f->body->first; o && o != first; o = o->next) {
        bool tiles = false;
        touches_tile(o, &tiles);
        for (uint32_t k = 0; !tiles && k < o->nregions; k++) ir_walk(o->regions[k], touches_tile, &tiles);
        if (!tiles) continue;
        if (!(ir_op_info[o->code].flags & F_PURE) || o->nregions) return false;
        for (uint32_t i = 0; i < o->nresults; i++)
            if (!is_register_tile(o->results[i])) return false;
    }
    return true;
}
