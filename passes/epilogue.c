/*
 * epilogue.c: TMA stores of a GEMM's result tile (a GPU pass; sm_90a with TMA, after stages).
 *
 * A kernel's tile store of a register tile computed from a dot (the accumulator after its cast
 * and epilogue math: elementwise ops back to a dot or dot_wait) writes, as lowered, each thread's
 * fragment elements with st.global. On sm_90a the TMA unit can write the whole tile from shared
 * memory instead, in full 128-byte lines, while the block goes on. Where the store qualifies
 * (below), this pass rewrites
 *
 *     store C, reshape(splat(m0) + arange), reshape(splat(n0) + arange), y
 * into
 *     buf = shared_alloc uninit 1 : shared<T>[BM, BN]{... ^ swizzle}    (at the top level)
 *     ...
 *     [store_wait pending 0; barrier]     only where an earlier store_tma may still read buf
 *     shared_store buf, y                 registers -> shared (stmatrix where the layout allows)
 *     store_tma C, m0, n0, buf            fence.proxy.async, barrier, one thread issues the boxes
 *     ...
 *     store_wait pending 0                last in the body: the block ends after its stores read
 *
 * The buffer has the layout of a wgmma operand ring of the same tile: rows of 128 bytes (64
 * 16-bit or 32 32-bit elements) with the 128-byte swizzle, a wider tile split in column blocks of
 * that width, each block one TMA box (at most 256 rows); narrower rows take the 64- or 32-byte
 * swizzle. The swizzle spreads the 8 rows of an stmatrix phase over the banks and is the TMA
 * map's swizzle mode, so the TMA unit reads the buffer as the threads wrote it.
 *
 * Where the buffer is allocated decides how it shares memory (smem_plan places buffers by
 * liveness): a store at the kernel's top level (gemm) gets its buffer right before it, after the
 * main loop, so it reuses the bytes of the loop's ring (smem_plan puts a barrier before it). A
 * store inside a loop (the persistent kernels' tile loop) gets its buffer before the outermost
 * loop, bytes of its own, and waits for the previous tile's store only when it writes the buffer
 * again: one tile's TMA store runs during the next tile's main loop. smem_plan keeps a store_tma's
 * source alive to the kernel's end (the TMA unit reads it until a store_wait, which names no
 * buffer), so no later buffer takes its bytes.
 *
 * A store qualifies when the target has TMA (target_has_tma, not Target.no_tma_store:
 * TILE_TMA_STORE=0), the tensor is a kernel parameter of rank 2 to 5 whose launch facts allow TMA
 * (as for the loads: a 16-byte aligned base, innermost stride 1, the other strides multiples of
 * 16 bytes; the runtime checks the rest when it encodes the map and launches the generic kernel
 * otherwise), the value is a 2-d tile of the tensor's element type of 16 or 32 bits with
 * power-of-two sizes, at most 256 rows, rows of at least 32 bytes, a multiple of 1024 bytes, its
 * indices plain slices of the last two dimensions (leading ones i32 scalars), the kernel has no
 * warp roles, and the buffer fits (fits: within three quarters of the target's shared memory, as
 * the stages pass counts its rings, beside every other buffer when the store is in a loop; a
 * persistent kernel with BN = 256 and a 3-stage ring keeps st.global). TMA clips the box at the
 * tensor's edges, which is the store's rule that an element outside the tensor is not written.
 * Everything else is left as it is, which is always correct.
 */
#include "passes.h"

#include "ir/layout.h"
#include "ir/tma.h"

enum { MAX_STORES = 16 };

static bool is_pow2(int64_t x) { return x > 0 && (x & (x - 1)) == 0; }

/* The scalar start of index v of a store of an [R, C] tile along dimension d (0 or 1) of n
 * elements: v is reshape(splat(s) + arange 0) laid along d alone (the stages pass's
 * pass_slice_start; reshape(arange c), a constant start, is not taken here); NULL otherwise. */
static IrValue *slice_start(IrValue *v, int d, int64_t n) {
    IrValue *s = pass_slice_start(NULL, v, d, 2, n);
    return s && type_is_scalar(s->type) ? s : NULL;
}

/* Whether v is computed from a dot's result by elementwise ops (and layout conversions), the dot's
 * result maybe carried out of a loop. */
static bool from_dot(const IrValue *v, int depth) {
    const IrOp *d = v->def;
    if (!d || depth > 64) return false;
    if (d->code == OP_DOT || d->code == OP_DOT_WAIT) return true;
    if (d->code == OP_FOR) { /* a carried accumulator: what the body yields */
        const IrOp *y = d->nregions ? ir_region_terminator(d->regions[0]) : NULL;
        return y && v->index < y->noperands && from_dot(y->operands[v->index], depth + 1);
    }
    if (!(ir_op_info[d->code].flags & F_ELEM) && d->code != OP_CONVERT_LAYOUT) return false;
    for (uint32_t i = 0; i < d->noperands; i++)
        if (d->operands[i]->type->rank == v->type->rank && from_dot(d->operands[i], depth + 1)) return true;
    return false;
}

/* The TMA swizzle (in elements of elem_bytes) of rows of row_bytes: 128, 64 or 32 bytes. */
static Swizzle tma_swizzle(int64_t row_bytes, int elem_bytes) {
    int bits = row_bytes == 128 ? 3 : row_bytes == 64 ? 2 : row_bytes == 32 ? 1 : 0;
    int log_elem = elem_bytes == 2 ? 1 : 2;
    return bits ? (Swizzle){.bits = bits, .base = 4 - log_elem, .shift = 3} : (Swizzle){0, 0, 0};
}

/* The staging buffer's layout for tile t ([R, C], 16 or 32 bits), or NULL when TMA cannot read it:
 * rows of min(C, 128 bytes) with the swizzle of that row size, which must be a TMA swizzle mode. */
static const SharedLayout *staging_layout(Arena *arena, const IrType *t) {
    int elem_bytes = t->elem.bits / 8;
    int64_t row = 128 / elem_bytes, cols = t->shape[1] < row ? t->shape[1] : row;
    Swizzle want = tma_swizzle(cols * elem_bytes, elem_bytes), s = swizzle_for_ldmatrix(cols, elem_bytes);
    if (!want.bits || want.bits != s.bits || want.base != s.base || want.shift != s.shift) return NULL;
    const SharedLayout *l = shared_layout_row_major(arena, 2, t->shape);
    if (t->shape[1] > cols) {
        int64_t strides[2] = {cols, 1};
        l = shared_layout_split(arena, shared_layout_strided(arena, 2, t->shape, strides), 1, cols, cols * t->shape[0]);
    }
    return shared_layout_with_swizzle(arena, l, s);
}

typedef struct Candidate {
    IrOp *store;
    IrValue *origin[IR_TMA_MAX_RANK];
    const SharedLayout *layout;
} Candidate;

static bool qualifies(const IrFunction *f, const Target *t, IrOp *store, Candidate *out) {
    IrValue *x = store->operands[0], *v = store->operands[store->noperands - 1];
    const IrType *tt = x->type, *vt = v->type;
    if (tt->kind != TY_TENSOR || x->def || x->region != f->body || x->index >= f->nparams || tt->rank < 2 ||
        tt->rank > IR_TMA_MAX_RANK || store->noperands != (uint32_t)tt->rank + 2)
        return false;
    IrParamFacts facts = target_param_facts(t, f, x->index);
    if (!facts.aligned16 || !facts.strides_div16 || !facts.unit_stride[tt->rank - 1]) return false;
    if (vt->kind != TY_TILE || vt->rank != 2 || !vt->layout || !elem_eq(vt->elem, tt->elem) ||
        (vt->elem.bits != 16 && vt->elem.bits != 32) || !is_pow2(vt->shape[0]) || !is_pow2(vt->shape[1]) ||
        vt->shape[0] > 256 || type_bytes(vt) % 1024 || !from_dot(v, 0))
        return false;
    int lead = tt->rank - 2;
    for (int d = 0; d < tt->rank; d++) {
        IrValue *i = store->operands[1 + d];
        out->origin[d] = d < lead ? (type_is_scalar(i->type) && elem_eq(i->type->elem, elem_i32()) ? i : NULL)
                                  : slice_start(i, d - lead, vt->shape[d - lead]);
        if (!out->origin[d]) return false;
    }
    out->store = store;
    out->layout = staging_layout(&f->module->arena, vt);
    return out->layout != NULL;
}

typedef struct Scan {
    const IrFunction *f;
    const Target *t;
    Candidate found[MAX_STORES];
    int n;
    bool roles;
} Scan;

static bool scan(IrOp *op, void *ctx) {
    Scan *s = ctx;
    if (op->code == OP_WARP_ROLES) s->roles = true;
    if (op->code == OP_STORE && s->n < MAX_STORES && qualifies(s->f, s->t, op, &s->found[s->n])) s->n++;
    return true;
}

/* The op of the kernel's top level that holds op (op itself at the top level), and whether a
 * loop encloses op. */
static IrOp *top_level(IrFunction *f, IrOp *op, bool *in_loop) {
    *in_loop = false;
    while (op->parent != f->body) {
        op = op->parent->parent_op;
        if (op->code == OP_FOR || op->code == OP_WHILE) *in_loop = true;
    }
    return op;
}

static void rewrite(IrFunction *f, const Candidate *c) {
    IrModule *m = f->module;
    IrOp *store = c->store;
    IrValue *value = store->operands[store->noperands - 1];
    bool in_loop;
    IrOp *top = top_level(f, store, &in_loop);
    IrBuilder b;
    ir_builder_before(&b, top);
    b.loc = store->loc;
    IrType st = {.kind = TY_SHARED, .elem = value->type->elem, .rank = 2,
                 .shape = {value->type->shape[0], value->type->shape[1]}, .shared = c->layout};
    const IrType *stt = ir_type_intern(m, &st);
    IrOp *alloc = ir_build(&b, OP_SHARED_ALLOC, NULL, 0, &stt, 1);
    alloc->ints[0] = 0, alloc->ints[1] = 1, alloc->nints = 2; /* every element is written before the store */
    IrValue *buf = alloc->results[0];
    ir_builder_before(&b, store);
    if (in_loop) {
        /* the previous store from buf (an earlier iteration's) has read it before anyone writes */
        IrOp *w = ir_build(&b, OP_STORE_WAIT, NULL, 0, NULL, 0);
        w->ints[0] = 0, w->nints = 1;
        ir_build(&b, OP_BARRIER, NULL, 0, NULL, 0);
    }
    IrValue *ops[IR_TMA_MAX_RANK + 2] = {buf, value};
    ir_build(&b, OP_SHARED_STORE, ops, 2, NULL, 0);
    int rank = store->operands[0]->type->rank;
    uint32_t n = 0;
    ops[n++] = store->operands[0];
    for (int d = 0; d < rank; d++) ops[n++] = c->origin[d];
    ops[n++] = buf;
    ir_build(&b, OP_STORE_TMA, ops, n, NULL, 0);
    ir_op_remove(store);
}

static bool add_bytes(IrOp *op, void *ctx) {
    if (op->code == OP_SHARED_ALLOC) *(int64_t *)ctx += (type_bytes(op->results[0]->type) + 1023) / 1024 * 1024;
    return true;
}

/* Whether the staging buffer of c fits in the target's shared memory as the stages pass counts
 * it (a quarter stays free for the code generator's scratch): a store at the top level reuses the
 * bytes of the buffers before it, so its buffer alone must fit; one inside a loop lives beside
 * every other buffer (counted as if all lived at once). */
static bool fits(IrFunction *f, const Target *t, const Candidate *c) {
    bool in_loop;
    top_level(f, c->store, &in_loop);
    int64_t bytes = type_bytes(c->store->operands[c->store->noperands - 1]->type);
    if (in_loop) ir_walk(f->body, add_bytes, &bytes);
    return bytes <= target_smem_bytes(t) * 3 / 4;
}

static bool epilogue_kernel(IrFunction *f, const Target *t) {
    Scan s = {.f = f, .t = t};
    ir_walk(f->body, scan, &s);
    if (s.roles || s.n == 0) return false;
    int done = 0;
    for (int i = 0; i < s.n; i++)
        if (fits(f, t, &s.found[i])) rewrite(f, &s.found[i]), done++;
    if (!done) return false;
    /* the block ends only after its stores have read their buffers */
    IrBuilder b;
    IrOp *last = f->body->last;
    if (last && (ir_op_info[last->code].flags & F_TERM)) ir_builder_before(&b, last);
    else ir_builder_at_end(&b, f->body);
    b.loc = f->loc;
    IrOp *w = ir_build(&b, OP_STORE_WAIT, NULL, 0, NULL, 0);
    w->ints[0] = 0, w->nints = 1;
    return true;
}

bool pass_epilogue_target(IrModule *m, const Target *t, DiagList *d) {
    (void)d;
    if (!target_has_tma(t) || t->no_tma_store) return false;
    bool changed = false;
    for (IrFunction *f = m->functions; f; f = f->next)
        if (f->is_kernel && f->body) changed |= epilogue_kernel(f, t);
    return changed;
}
