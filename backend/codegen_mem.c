/*
 * codegen_mem.c: the ops of the GPU code generator that move elements: putting a value into
 * another layout, global loads, stores and atomics, and explicit shared tiles.
 *
 * Moving a value v into a target layout (an operand of an elementwise op, a broadcast,
 * expand_dims, reshape, transpose, convert_layout, the indices of a memory access, a carried
 * value) maps every target coordinate to an element of v by a linear weight per target
 * dimension (its row-major offset in v; 0 along broadcast dimensions). The cheapest of four
 * ways is taken: a value of one element is its slot 0; if, in every thread, the thread parts of
 * both layouts give the same offset and every target slot's local offset is one of v's local
 * offsets, the target slots are v's registers renamed (checked at compile time over all
 * threads: this is how a reduced row statistic broadcasts back to its tile for free); an
 * index expression built from arange, constants, scalars and elementwise ops is
 * rematerialized at the target coordinates; anything else goes through the shared scratch
 * buffer: barrier, v's slots stored at their row-major offsets, barrier, loads at the target
 * offsets. The scratch buffer is @tile_smem from byte 0 (each use begins with a barrier, so
 * one region is reused by every conversion; codegen.c reports the largest need).
 *
 * A memory access uses the layout of its value (stores) or result (loads), else the blocked
 * layout of its shape. Along the last dimension, W = 16 bytes of consecutive slots become one
 * vector access when the axis analysis proves the W elements consecutive in the tensor (the
 * last index contiguous, the others constant over the group); the group then takes the
 * vector path when it is in bounds and aligned: the launch facts (CodegenParamSpec: aligned
 * data, unit stride, sizes divisible by 16) prove parts of that statically, the rest is one
 * uniform check per group, and a group that fails it (the edges, odd strides) takes masked
 * scalar accesses. With every fact (aligned, unit last stride, other strides and the last size
 * multiples of 16) a group is wholly in or wholly out of bounds, so there is no scalar fallback:
 * a load selects its address or @tile_zero's and has no branch, a store is one branch around
 * its vector store, a copy_async is its cp.async alone (half the LLVM IR of softmax and
 * layernorm, and of the cold JIT with it: tests/test_codegen_size.c). A masked store's first index is select(mask, index, -1): its groups are
 * planned from the unmasked index and take the vector path only when every element's mask
 * holds. The masked scalar accesses of a tile whose size is not a power of two have no
 * branches: a load selects its address or @tile_zero's (16 zero bytes), a store is an inline
 * predicated st.global, their offsets are nsw (exact wherever the mask holds; no multiply
 * along the last dimension where the launch facts give it stride 1) and their base
 * pointer is an opaque copy every 8 accesses, which keeps LLVM's straight-line strength
 * reduction from comparing every address with every earlier one. Stores and atomics of
 * replicated layouts are made by replica 0 only.
 */
#include "codegen.h"

#include <stdio.h>
#include <string.h>

int64_t cg_elem_bytes(ElemType e) { return e.kind == EK_BOOL ? 1 : e.bits / 8; }

static uint64_t align16(uint64_t x) { return (x + 15) & ~(uint64_t)15; }

static uint64_t region_bytes(ElemType e, int64_t numel) {
    return align16((uint64_t)(numel > 0 ? numel : 1) * (uint64_t)cg_elem_bytes(e));
}

void cg_need_scratch(Cg *g, uint64_t bytes) {
    if (bytes > g->smem_bytes) g->smem_bytes = bytes;
    if (g->role >= 0) g->scratch_roles |= 1u << g->role; /* one role at most may use it (codegen_roles.c) */
}

static LLVMValueRef scratch_ptr(Cg *g, LLVMValueRef base, uint64_t offset, ElemType e, LLVMValueRef index) {
    LLVMValueRef byte = LLVMBuildAdd(g->b, cg_i64(g, (int64_t)offset),
                                     LLVMBuildMul(g->b, index, cg_i64(g, cg_elem_bytes(e)), ""), "");
    return LLVMBuildGEP2(g->b, g->i8, base, &byte, 1, "");
}

static LLVMValueRef row_major(Cg *g, LLVMValueRef *coords, int rank, const int64_t *shape) {
    LLVMValueRef r = cg_i64(g, 0);
    int64_t s = 1;
    for (int d = rank - 1; d >= 0; d--) {
        if (shape[d] != 1) r = LLVMBuildAdd(g->b, r, s == 1 ? coords[d] : LLVMBuildMul(g->b, coords[d], cg_i64(g, s), ""), "");
        s *= shape[d];
    }
    return r;
}

void cg_scratch_write(Cg *g, LLVMValueRef base, uint64_t offset, ElemType e, const CgValue *cv, int rank,
                      const int64_t *shape) {
    for (uint32_t j = 0; j < cv->nslots; j++) {
        LLVMValueRef idx = cg_i64(g, 0);
        if (cv->layout) {
            LLVMValueRef coords[IR_MAX_RANK];
            cg_slot_coords(g, cv->layout, j, coords);
            idx = row_major(g, coords, rank, shape);
        }
        cg_scratch_store(g, base, offset, e, idx, cv->slots[j]);
    }
}

void cg_scratch_store(Cg *g, LLVMValueRef base, uint64_t offset, ElemType e, LLVMValueRef idx, LLVMValueRef v) {
    LLVMValueRef st = LLVMBuildStore(g->b, cg_to_mem(g, e, v), scratch_ptr(g, base, offset, e, idx));
    LLVMSetAlignment(st, (unsigned)cg_elem_bytes(e));
}

LLVMValueRef cg_scratch_read(Cg *g, LLVMValueRef base, uint64_t offset, ElemType e, LLVMValueRef idx) {
    LLVMValueRef ld = LLVMBuildLoad2(g->b, cg_mem_type(g, e), scratch_ptr(g, base, offset, e, idx), "");
    LLVMSetAlignment(ld, (unsigned)cg_elem_bytes(e));
    return cg_from_mem(g, e, ld);
}

/* Coordinates of the row-major element e (i64) in shape. */
static void coords_of(Cg *g, LLVMValueRef e, int rank, const int64_t *shape, LLVMValueRef *out) {
    int64_t stride = 1;
    for (int d = rank - 1; d >= 0; d--) {
        if (shape[d] == 1) {
            out[d] = cg_i64(g, 0);
        } else {
            LLVMValueRef q = stride == 1 ? e : LLVMBuildUDiv(g->b, e, cg_i64(g, stride), "");
            out[d] = d == 0 ? q : LLVMBuildURem(g->b, q, cg_i64(g, shape[d]), "");
        }
        stride *= shape[d];
    }
}

static LLVMValueRef linear_of(Cg *g, LLVMValueRef *coords, int rank, const int64_t *shape) {
    LLVMValueRef r = cg_i64(g, 0);
    for (int d = 0; d < rank; d++)
        r = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, r, cg_i64(g, shape[d]), ""), coords[d], "");
    return r;
}

/* ---- rematerialization ------------------------------------------------------------------------ */
static bool remat_ok(Cg *g, const IrValue *v, int *budget) {
    if (--*budget < 0) return false;
    if (type_numel(v->type) == 1 && cg_get(g, v)) return true;
    const IrOp *op = v->def;
    if (!op || v->type->kind != TY_TILE) return false;
    switch (op->code) {
    case OP_CONST: case OP_ARANGE: return true;
    case OP_BROADCAST: case OP_SPLAT: case OP_EXPAND_DIMS: case OP_RESHAPE: case OP_TRANSPOSE:
    case OP_CONVERT_LAYOUT:
        return remat_ok(g, op->operands[0], budget);
    default:
        if (!(ir_op_info[op->code].flags & F_ELEM)) return false;
        for (uint32_t i = 0; i < op->noperands; i++)
            if (!remat_ok(g, op->operands[i], budget)) return false;
        return true;
    }
}

/* The value of v at coords (i64, one per dim of v). remat_ok(v) must hold. */
static LLVMValueRef remat(Cg *g, const IrValue *v, LLVMValueRef *coords) {
    const IrType *t = v->type;
    if (type_numel(t) == 1 && cg_get(g, v)) return cg_get(g, v)->slots[0];
    const IrOp *op = v->def;
    LLVMValueRef in[IR_MAX_RANK];
    const IrType *it = op->noperands ? op->operands[0]->type : NULL;
    switch (op->code) {
    case OP_CONST: return cg_const(g, t->elem, op->value);
    case OP_ARANGE:
        return cg_convert(g, elem_int(64), LLVMBuildAdd(g->b, coords[0], cg_i64(g, op->ints[0]), ""), t->elem);
    case OP_BROADCAST:
        for (int d = 0; d < it->rank; d++)
            in[d] = it->shape[d] == 1 ? cg_i64(g, 0) : coords[d + t->rank - it->rank];
        return remat(g, op->operands[0], in);
    case OP_EXPAND_DIMS:
        for (int d = 0, k = 0; d < t->rank; d++)
            if (d != op->ints[0]) in[k++] = coords[d];
        return remat(g, op->operands[0], in);
    case OP_TRANSPOSE:
        for (int i = 0; i < t->rank; i++) in[op->ints[i]] = coords[i];
        return remat(g, op->operands[0], in);
    case OP_CONVERT_LAYOUT: return remat(g, op->operands[0], coords);
    case OP_SPLAT:
    case OP_RESHAPE:
        coords_of(g, linear_of(g, coords, t->rank, t->shape), it->rank, it->shape, in);
        return remat(g, op->operands[0], in);
    default: break;
    }
    LLVMValueRef x[3];
    for (uint32_t i = 0; i < op->noperands; i++) x[i] = remat(g, op->operands[i], coords);
    ElemType e = op->operands[op->code == OP_SELECT ? 1 : 0]->type->elem;
    switch (op->code) {
    case OP_SELECT:
        return LLVMBuildSelect(g->b, cg_convert(g, op->operands[0]->type->elem, x[0], elem_bool()), x[1], x[2], "");
    case OP_CAST: return cg_convert(g, e, x[0], t->elem);
    case OP_BITCAST: return cg_bitcast(g, e, x[0], t->elem);
    default:
        return op->noperands == 2 ? cg_binary(g, op->code, (int)op->ints[0], e, x[0], x[1])
                                  : cg_unary(g, op->code, e, x[0]);
    }
}

/* ---- fetching a value at a target layout's coordinates ----------------------------------------- */
typedef enum { FETCH_SCALAR, FETCH_SLOTS, FETCH_REMAT, FETCH_SHARED } FetchMode;

typedef struct Fetch {
    FetchMode mode;
    const IrValue *v;
    CgValue *cv;
    bool direct;                      /* v's coordinates are the target's, right-aligned (broadcast) */
    int64_t weight[IR_MAX_RANK];      /* v's row-major offset per unit of each target coordinate */
    uint32_t *map;                    /* FETCH_SLOTS: v's slot for each target slot */
    uint64_t offset;                  /* FETCH_SHARED: the scratch region */
} Fetch;

static void row_major_strides(int rank, const int64_t *shape, int64_t *strides) {
    int64_t s = 1;
    for (int d = rank - 1; d >= 0; d--) {
        strides[d] = s;
        s *= shape[d];
    }
}

static int64_t dot_weights(const int64_t *c, const int64_t *w, int rank) {
    int64_t r = 0;
    for (int d = 0; d < rank; d++) r += c[d] * w[d];
    return r;
}

/* The register renaming of v's slots into target slots, or NULL when threads disagree. */
static uint32_t *slot_map(Cg *g, const Layout *from, const Layout *to, const int64_t *weight) {
    if (!from || !to || from->num_threads != to->num_threads) return NULL;
    int64_t fs[IR_MAX_RANK], c[IR_MAX_RANK];
    row_major_strides(from->rank, from->shape, fs);
    for (int64_t t = 0; t < to->num_threads; t++) {
        layout_map(to, t, 0, c);
        int64_t a = dot_weights(c, weight, to->rank);
        layout_map(from, t, 0, c);
        if (dot_weights(c, fs, from->rank) != a) return NULL;
    }
    int64_t *from_local = cg_calloc(g, (size_t)from->local_size, sizeof(int64_t));
    for (int64_t l = 0; l < from->local_size; l++) {
        layout_map(from, 0, l, c);
        from_local[l] = dot_weights(c, fs, from->rank);
    }
    uint32_t *map = cg_calloc(g, (size_t)to->local_size, sizeof(uint32_t));
    for (int64_t l = 0; l < to->local_size; l++) {
        layout_map(to, 0, l, c);
        int64_t want = dot_weights(c, weight, to->rank), k = 0;
        while (k < from->local_size && from_local[k] != want) k++;
        if (k == from->local_size) return NULL;
        map[l] = (uint32_t)k;
    }
    return map;
}

/* Broadcast weights: v (rank <= rank) right-aligned to the target shape. */
static bool broadcast_weights(const IrType *t, int rank, const int64_t *shape, int64_t *weight) {
    if (t->rank > rank) return false;
    int64_t s = 1;
    for (int d = 0; d < rank; d++) weight[d] = 0;
    for (int d = t->rank - 1; d >= 0; d--) {
        int od = rank - t->rank + d;
        if (t->shape[d] != shape[od] && t->shape[d] != 1) return false;
        weight[od] = t->shape[d] == 1 ? 0 : s;
        s *= t->shape[d];
    }
    return true;
}

/* Plans how to read v at the coordinates of target layout `to` through `weight`. */
static bool fetch_plan(Cg *g, const IrOp *op, const IrValue *v, const Layout *to, const int64_t *weight, bool direct,
                       int rank, Fetch *f, uint64_t *scratch) {
    memset(f, 0, sizeof *f);
    f->v = v;
    f->cv = cg_get(g, v);
    f->direct = direct;
    if (!f->cv || f->cv->kind != CV_TILE) return cg_fail(g, op, false, "an operand is not a tile");
    memcpy(f->weight, weight, sizeof(int64_t) * (size_t)rank);
    int budget = 64;
    if (f->cv->numel == 1) f->mode = FETCH_SCALAR;
    else if ((f->map = slot_map(g, f->cv->layout, to, weight))) f->mode = FETCH_SLOTS;
    else if (remat_ok(g, v, &budget)) f->mode = FETCH_REMAT;
    else {
        f->mode = FETCH_SHARED;
        f->offset = *scratch;
        *scratch += region_bytes(v->type->elem, f->cv->numel);
    }
    return true;
}

/* Writes the shared-mode operands (between two barriers). */
static void fetch_prepare(Cg *g, Fetch *f, int n, uint64_t scratch) {
    bool any = false;
    for (int i = 0; i < n; i++) any |= f[i].mode == FETCH_SHARED;
    if (!any) return;
    cg_need_scratch(g, scratch);
    cg_barrier(g);
    for (int i = 0; i < n; i++)
        if (f[i].mode == FETCH_SHARED)
            cg_scratch_write(g, g->smem, f[i].offset, f[i].v->type->elem, f[i].cv, f[i].v->type->rank,
                             f[i].v->type->shape);
    cg_barrier(g);
}

static bool fetch_needs_coords(const Fetch *f) { return f->mode == FETCH_REMAT || f->mode == FETCH_SHARED; }

/* v at target slot j, whose coordinates are coords (rank entries). */
static LLVMValueRef fetch_at(Cg *g, const Fetch *f, uint32_t j, int rank, LLVMValueRef *coords) {
    switch (f->mode) {
    case FETCH_SCALAR: return f->cv->slots[0];
    case FETCH_SLOTS: return f->cv->slots[f->map[j]];
    default: break;
    }
    LLVMValueRef idx = cg_i64(g, 0);
    for (int d = 0; d < rank; d++)
        if (f->weight[d])
            idx = LLVMBuildAdd(g->b, idx, f->weight[d] == 1 ? coords[d] : LLVMBuildMul(g->b, coords[d], cg_i64(g, f->weight[d]), ""), "");
    if (f->mode == FETCH_SHARED) return cg_scratch_read(g, g->smem, f->offset, f->v->type->elem, idx);
    const IrType *t = f->v->type;
    LLVMValueRef own[IR_MAX_RANK];
    if (f->direct) {
        for (int d = 0; d < t->rank; d++) own[d] = t->shape[d] == 1 ? cg_i64(g, 0) : coords[rank - t->rank + d];
    } else {
        coords_of(g, idx, t->rank, t->shape, own);
    }
    return remat(g, f->v, own);
}

/* Builds the result (layout `to`, shape) slot by slot from one planned fetch. */
static CgValue *fetch_all(Cg *g, Fetch *f, const Layout *to, int rank, int64_t numel) {
    CgValue *r = cg_new_tile(g, to, numel);
    for (uint32_t j = 0; j < r->nslots; j++) {
        LLVMValueRef coords[IR_MAX_RANK];
        if (fetch_needs_coords(f)) {
            if (r->layout) cg_slot_coords(g, r->layout, j, coords);
            else
                for (int d = 0; d < rank; d++) coords[d] = cg_i64(g, 0);
        }
        r->slots[j] = fetch_at(g, f, j, rank, coords);
    }
    return r;
}

CgValue *cg_in_layout(Cg *g, const IrOp *op, const IrValue *v, const Layout *want, int rank, const int64_t *shape) {
    CgValue *cv = cg_get(g, v);
    if (!cv || cv->kind != CV_TILE) {
        cg_fail(g, op, false, "an operand is not a tile");
        return NULL;
    }
    int64_t numel = 1;
    for (int d = 0; d < rank; d++) numel *= shape[d];
    if (v->type->rank == rank && cv->numel == numel && layout_equal(cv->layout, numel == 1 ? NULL : want)) return cv;
    int64_t weight[IR_MAX_RANK];
    if (!broadcast_weights(v->type, rank, shape, weight)) {
        cg_fail(g, op, false, "an operand does not broadcast to the result shape");
        return NULL;
    }
    Fetch f;
    uint64_t scratch = 0;
    if (!fetch_plan(g, op, v, numel == 1 ? NULL : want, weight, true, rank, &f, &scratch)) return NULL;
    fetch_prepare(g, &f, 1, scratch);
    return fetch_all(g, &f, numel == 1 ? NULL : want, rank, numel);
}

bool cg_reshape_like(Cg *g, const IrOp *op) {
    const IrValue *x = op->operands[0], *res = op->results[0];
    const IrType *in = x->type, *rt = res->type;
    if (op->code == OP_TRANSPOSE && in->kind == TY_SHARED) {
        /* a transposed shared view: the same bytes, read through the permuted layout of its type */
        CgValue *from = cg_get(g, x), *cv = cg_calloc(g, 1, sizeof *cv);
        if (from->kind != CV_SHARED) return cg_fail(g, op, false, "the operand is not in shared memory");
        *cv = *from;
        cg_set(g, res, cv);
        return true;
    }
    const Layout *to = cg_layout_of(g, res);
    int64_t weight[IR_MAX_RANK];
    bool direct = false;
    if (op->code == OP_BROADCAST) {
        if (!broadcast_weights(in, rt->rank, rt->shape, weight))
            return cg_fail(g, op, false, "the operand does not broadcast to the result shape");
        direct = true;
    } else if (op->code == OP_TRANSPOSE) {
        int64_t s[IR_MAX_RANK];
        row_major_strides(in->rank, in->shape, s);
        for (int i = 0; i < rt->rank; i++) {
            if (op->ints[i] < 0 || op->ints[i] >= in->rank) return cg_fail(g, op, false, "bad permutation");
            weight[i] = s[op->ints[i]];
        }
    } else {
        if (type_numel(in) != type_numel(rt)) return cg_fail(g, op, false, "the operand and the result differ in element count");
        row_major_strides(rt->rank, rt->shape, weight);
        if (op->code == OP_CONVERT_LAYOUT) direct = true;
    }
    for (int d = 0; d < rt->rank; d++)
        if (rt->shape[d] == 1) weight[d] = 0;
    Fetch f;
    uint64_t scratch = 0;
    if (!fetch_plan(g, op, x, to, weight, direct, rt->rank, &f, &scratch)) return false;
    fetch_prepare(g, &f, 1, scratch);
    cg_set(g, res, fetch_all(g, &f, to, rt->rank, type_numel(rt)));
    return true;
}

static LLVMValueRef atomic_float_max(Cg *g, LLVMValueRef ptr, LLVMValueRef v) {
    LLVMValueRef rmw = LLVMBuildAtomicRMW(g->b, LLVMAtomicRMWBinOpFMaximum, ptr, v,
                                          LLVMAtomicOrderingMonotonic, 0);
    return rmw;
}

/* ---- global memory --------------------------------------------------------------------------------- */
typedef struct Access {
    int rank;
    int64_t shape[IR_MAX_RANK];
    int64_t numel;
    const Layout *layout;             /* NULL: one element */
    Fetch idx[IR_MAX_RANK + 1];       /* one per tensor dim, then the value (stores) */
    int nfetch;
    int width;                        /* W: slots per vector access (1: scalar accesses) */
    bool static_align, static_bounds, unit_stride;
    bool static_strides;              /* the other dimensions' strides keep W-vectors aligned */
    bool masked_groups;               /* an index is masked (unmasked_index): a vector group
                                         needs every element in bounds, not only its first */
    bool whole_groups;                /* the launch facts prove every vector group wholly in or
                                         wholly out of bounds and aligned: no scalar fallback */
    bool predicated;                  /* scalar accesses are predicated, not branched around */
    bool unit_last;                   /* predicated: the launch facts give the last dimension
                                         stride 1 (its offsets need no multiply) */
    LLVMValueRef base;                /* predicated: the data pointer they address from now */
    LLVMBasicBlockRef base_block;     /* where base was made */
    int base_uses;
} Access;

static int64_t pow2_part(int64_t x) { return x <= 0 ? 1 : (x & -x); }

/* The parameter index of a kernel's tensor argument, or -1. */
static int param_index(Cg *g, const IrValue *t) {
    if (t->def || t->region != g->kernel->body) return -1;
    return (int)t->index;
}

/* A masked store's first index is select(m, x, c) with a negative constant c (lower_expr.c,
 * mask_first_index): c is outside every tensor, so in a group whose elements are all in bounds
 * every element's index is x's, and x's axis facts hold there. Returns x (and sets *masked)
 * for that form, else v. */
static const IrValue *unmasked_index(const IrValue *v, bool *masked) {
    const IrOp *op = v->def;
    if (!op || op->code != OP_SELECT) return v;
    const IrValue *c = op->operands[2];
    while (c->def && (c->def->code == OP_SPLAT || c->def->code == OP_BROADCAST)) c = c->def->operands[0];
    if (!c->def || c->def->code != OP_CONST || c->type->elem.kind != EK_INT || c->def->value.i >= 0) return v;
    *masked = true;
    return op->operands[1];
}

/* Chooses W: the slots along the last dimension that one vector access can cover, when the
 * axis analysis proves them consecutive in memory. */
static void plan_vector(Cg *g, const IrOp *op, Access *a) {
    a->width = 1;
    const IrType *tt = op->operands[0]->type;
    const Layout *l = a->layout;
    int trank = tt->rank;
    if (!l || trank == 0 || a->rank == 0 || op->code == OP_ATOMIC || l->num_local_modes == 0) return;
    const LayoutMode *inner = &layout_local_modes(l)[l->num_local_modes - 1];
    int last = a->rank - 1;
    if (inner->dim != last || inner->stride != 1) return;
    int64_t bytes = cg_elem_bytes(tt->elem);
    int64_t w = pow2_part(inner->size);
    if (w > 16 / bytes) w = 16 / bytes;
    if (w < 2) return;
    /* the last index: contiguous along the access's last dimension */
    AxisInfo info;
    bool masked = false, look = op->code == OP_LOAD || op->code == OP_STORE;
    const IrValue *li = look ? unmasked_index(op->operands[trank], &masked) : op->operands[trank];
    if (li->type->rank == 0 || li->type->shape[li->type->rank - 1] == 1) return;
    axis_info(&g->axis, li, &info);
    int k = li->type->rank - 1;
    if (info.contiguity[k] < w) return;
    int64_t div = info.divisibility[k];
    for (int d = 0; d + 1 < trank; d++) {
        const IrValue *x = look ? unmasked_index(op->operands[1 + d], &masked) : op->operands[1 + d];
        if (x->type->rank == 0 || x->type->shape[x->type->rank - 1] == 1) continue;
        AxisInfo xi;
        axis_info(&g->axis, x, &xi);
        if (xi.constancy[x->type->rank - 1] < w) return;
    }
    a->width = (int)w;
    a->masked_groups = masked;
    int p = param_index(g, op->operands[0]);
    const CodegenParamSpec *s = g->spec && p >= 0 ? &g->spec[p] : NULL;
    a->unit_stride = s && trank <= 6 && s->unit_stride[trank - 1];
    a->static_align = s && s->aligned16 && a->unit_stride && div >= w;
    a->static_bounds = s && trank <= 6 && s->size_div16[trank - 1] && div >= w && w <= 16;
    a->static_strides = a->static_align && s->strides_div16 && w <= 16;
    /* With these facts vector_ok is the first element's mask alone, and it decides the group:
     * the other indices are constant over it, the last one starts at a multiple of W and the
     * last size is a multiple of 16 (so of W). A group failing it has every element masked off:
     * its scalar fallback would load zeros or store nothing, and is not emitted. */
    a->whole_groups = a->static_bounds && a->static_strides && !masked;
}

static bool access_plan(Cg *g, const IrOp *op, int rank, const int64_t *shape, const Layout *layout, int nfetch,
                        Access *a) {
    memset(a, 0, sizeof *a);
    a->rank = rank;
    a->numel = 1;
    for (int d = 0; d < rank; d++) a->numel *= a->shape[d] = shape[d];
    a->layout = a->numel == 1 ? NULL : layout;
    a->nfetch = nfetch;
    uint64_t scratch = 0;
    for (int i = 0; i < nfetch; i++) {
        const IrValue *v = op->operands[1 + i];
        if (i < op->operands[0]->type->rank && (v->type->kind != TY_TILE || elem_is_float(v->type->elem)))
            return cg_fail(g, op, false, "index %d is not an integer", i);
        int64_t weight[IR_MAX_RANK];
        if (!broadcast_weights(v->type, rank, shape, weight))
            return cg_fail(g, op, false, "an operand does not broadcast to the access shape");
        if (!fetch_plan(g, op, v, a->layout, weight, true, rank, &a->idx[i], &scratch)) return false;
    }
    fetch_prepare(g, a->idx, nfetch, scratch);
    plan_vector(g, op, a);
    /* A branch around each scalar access makes a block per element, and LLVM's time grows
     * faster than linearly in blocks (a 255-element row took seconds per access). The loads
     * and stores of a tile whose size is not a power of two (an odd count per thread, rarely
     * vectorized) are predicated instead; tiles of 2^k elements keep their branches (their
     * scalar accesses are the few of a vector group's fallback or of a gather, and those
     * kernels' code stays as tuned). Atomics keep their branches. */
    int64_t bytes = cg_elem_bytes(op->operands[0]->type->elem);
    a->predicated = (op->code == OP_LOAD || op->code == OP_STORE) && (bytes == 1 || bytes == 2 || bytes == 4 || bytes == 8) &&
                    (a->numel & (a->numel - 1)) != 0;
    int p = param_index(g, op->operands[0]), trank = op->operands[0]->type->rank;
    a->unit_last = a->predicated && g->spec && p >= 0 && trank >= 1 && trank <= 6 && g->spec[p].unit_stride[trank - 1];
    return true;
}

/* The element offset and in-bounds mask of slot j; *value gets the stored value when asked;
 * *last_index the last dimension's index (i64). */
static void access_slot(Cg *g, const IrOp *op, const Access *a, const CgValue *t, uint32_t j, LLVMValueRef *offset,
                        LLVMValueRef *mask, LLVMValueRef *value, LLVMValueRef *last_index) {
    LLVMValueRef coords[IR_MAX_RANK];
    bool need = false;
    for (int i = 0; i < a->nfetch; i++) need |= fetch_needs_coords(&a->idx[i]);
    if (need) {
        if (a->layout) cg_slot_coords(g, a->layout, j, coords);
        else
            for (int d = 0; d < a->rank; d++) coords[d] = cg_i64(g, 0);
    }
    int trank = op->operands[0]->type->rank;
    LLVMValueRef off = cg_i64(g, 0), m = NULL;
    for (int d = 0; d < trank; d++) {
        const IrValue *iv = op->operands[1 + d];
        LLVMValueRef i = cg_to_i64(g, iv->type->elem, fetch_at(g, &a->idx[d], j, a->rank, coords));
        LLVMValueRef in = LLVMBuildICmp(g->b, LLVMIntULT, i, t->size[d], "");
        m = m ? LLVMBuildAnd(g->b, m, in, "") : in;
        /* predicated: no overflow where the mask holds (the element's real offset), and the
         * others' poison stops at the predicate; nsw lets LLVM see offsets as base + k * stride */
        if (a->unit_last && d == trank - 1) off = LLVMBuildNSWAdd(g->b, off, i, "");
        else if (a->predicated) off = LLVMBuildNSWAdd(g->b, off, LLVMBuildNSWMul(g->b, i, t->stride[d], ""), "");
        else off = LLVMBuildAdd(g->b, off, LLVMBuildMul(g->b, i, t->stride[d], ""), "");
        if (last_index && d == trank - 1) *last_index = i;
    }
    if (!m) m = LLVMConstInt(g->i1, 1, 0);
    *offset = off;
    *mask = m;
    if (value) *value = fetch_at(g, &a->idx[trank], j, a->rank, coords);
}

/* The stored value of slot j alone (access_slot without the offset and mask). */
static LLVMValueRef access_value(Cg *g, const Access *a, int trank, uint32_t j) {
    LLVMValueRef coords[IR_MAX_RANK];
    if (fetch_needs_coords(&a->idx[trank])) {
        if (a->layout) cg_slot_coords(g, a->layout, j, coords);
        else
            for (int d = 0; d < a->rank; d++) coords[d] = cg_i64(g, 0);
    }
    return fetch_at(g, &a->idx[trank], j, a->rank, coords);
}

/* Whether the vector group starting at a slot with these offset/mask/last index may take the
 * vector path (i1). */
static LLVMValueRef vector_ok(Cg *g, const IrOp *op, const Access *a, const CgValue *t, LLVMValueRef off,
                              LLVMValueRef mask, LLVMValueRef last_index) {
    const IrType *tt = op->operands[0]->type;
    int trank = tt->rank, w = a->width;
    int64_t bytes = cg_elem_bytes(tt->elem);
    LLVMValueRef ok = mask;
    if (!a->static_bounds) {
        LLVMValueRef end = LLVMBuildAdd(g->b, last_index, cg_i64(g, w - 1), "");
        ok = LLVMBuildAnd(g->b, ok, LLVMBuildICmp(g->b, LLVMIntULT, end, t->size[trank - 1], ""), "");
    }
    if (!a->unit_stride)
        ok = LLVMBuildAnd(g->b, ok, LLVMBuildICmp(g->b, LLVMIntEQ, t->stride[trank - 1], cg_i64(g, 1), ""), "");
    if (a->static_strides) {
        /* nothing to check */
    } else if (a->static_align) {
        for (int d = 0; d + 1 < trank; d++) {
            LLVMValueRef low = LLVMBuildAnd(g->b, t->stride[d], cg_i64(g, w - 1), "");
            ok = LLVMBuildAnd(g->b, ok, LLVMBuildICmp(g->b, LLVMIntEQ, low, cg_i64(g, 0), ""), "");
        }
    } else {
        LLVMValueRef addr = LLVMBuildGEP2(g->b, cg_mem_type(g, tt->elem), t->data, &off, 1, "");
        LLVMValueRef bits = LLVMBuildPtrToInt(g->b, addr, g->i64, "");
        LLVMValueRef low = LLVMBuildAnd(g->b, bits, cg_i64(g, w * bytes - 1), "");
        ok = LLVMBuildAnd(g->b, ok, LLVMBuildICmp(g->b, LLVMIntEQ, low, cg_i64(g, 0), ""), "");
    }
    return ok;
}

/* One masked scalar load; returns the value (0 when masked off) in the result's type. */
static LLVMValueRef scalar_load_as(Cg *g, const IrOp *op, const CgValue *t, LLVMValueRef off, LLVMValueRef mask,
                                   const IrType *rt) {
    const IrType *tt = op->operands[0]->type;
    LLVMTypeRef mt = cg_mem_type(g, tt->elem);
    LLVMBasicBlockRef from = LLVMGetInsertBlock(g->b), body = cg_block(g, "ld.do"), join = cg_block(g, "ld.join");
    LLVMBuildCondBr(g->b, mask, body, join);
    LLVMPositionBuilderAtEnd(g->b, body);
    LLVMValueRef ld = LLVMBuildLoad2(g->b, mt, LLVMBuildGEP2(g->b, mt, t->data, &off, 1, ""), "");
    LLVMSetAlignment(ld, (unsigned)cg_elem_bytes(tt->elem));
    LLVMValueRef v = cg_convert(g, tt->elem, cg_from_mem(g, tt->elem, ld), rt->elem);
    LLVMBasicBlockRef done = LLVMGetInsertBlock(g->b);
    LLVMBuildBr(g->b, join);
    LLVMPositionBuilderAtEnd(g->b, join);
    LLVMValueRef phi = LLVMBuildPhi(g->b, cg_reg_type(g, rt->elem), "");
    LLVMValueRef zero = LLVMConstNull(cg_reg_type(g, rt->elem));
    LLVMAddIncoming(phi, &zero, &from, 1);
    LLVMAddIncoming(phi, &v, &done, 1);
    return phi;
}

/* The element at off in its memory format (0 where mask is off), unconverted: copy_async of an
 * f8 tile moves the bytes as they are instead of decoding and encoding each one again. */
static LLVMValueRef scalar_load_bits(Cg *g, const CgValue *t, ElemType e, LLVMValueRef off, LLVMValueRef mask) {
    LLVMTypeRef mt = cg_mem_type(g, e);
    LLVMBasicBlockRef from = LLVMGetInsertBlock(g->b), body = cg_block(g, "ld.do"), join = cg_block(g, "ld.join");
    LLVMBuildCondBr(g->b, mask, body, join);
    LLVMPositionBuilderAtEnd(g->b, body);
    LLVMValueRef ld = LLVMBuildLoad2(g->b, mt, LLVMBuildGEP2(g->b, mt, t->data, &off, 1, ""), "");
    LLVMSetAlignment(ld, (unsigned)cg_elem_bytes(e));
    LLVMBuildBr(g->b, join);
    LLVMPositionBuilderAtEnd(g->b, join);
    LLVMValueRef phi = LLVMBuildPhi(g->b, mt, ""), zero = LLVMConstNull(mt);
    LLVMAddIncoming(phi, &zero, &from, 1);
    LLVMAddIncoming(phi, &ld, &body, 1);
    return phi;
}

/* ---- predicated scalar accesses (no branch) ---- */
/* @tile_zero: 16 zero bytes of global memory, read by a predicated load whose mask is off. */
static LLVMValueRef zero_global(Cg *g) {
    LLVMValueRef gv = LLVMGetNamedGlobal(g->module, "tile_zero");
    if (gv) return gv;
    LLVMTypeRef at = LLVMArrayType2(g->i8, 16);
    gv = LLVMAddGlobalInAddressSpace(g->module, at, "tile_zero", 1);
    LLVMSetInitializer(gv, LLVMConstNull(at));
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMInternalLinkage);
    LLVMSetAlignment(gv, 16);
    return gv;
}

/* The data pointer a predicated access addresses from: an opaque copy (a PTX mov, which
 * ptxas removes) made anew every 8 accesses. LLVM's straight-line strength reduction compares
 * each address with every earlier one of the same base in a block whose difference it cannot
 * fold (quadratic: seconds for a few hundred elements); a fresh base bounds that to a group. */
static LLVMValueRef access_base(Cg *g, Access *a, const CgValue *t) {
    LLVMBasicBlockRef here = LLVMGetInsertBlock(g->b);
    if (a->base && a->base_block == here && a->base_uses < 8) {
        a->base_uses++;
        return a->base;
    }
    LLVMTypeRef ft = LLVMFunctionType(g->ptr1, &g->ptr1, 1, 0);
    const char *text = "mov.b64 $0, $1;";
    /* with side effects and memory(inaccessiblemem: readwrite) (the attribute's value 12): no
     * pass merges or moves the copies, and they order no load or store of the tensors */
    LLVMValueRef fn = LLVMGetInlineAsm(ft, (char *)text, strlen(text), "=l,l", 4, 1, 0, LLVMInlineAsmDialectATT, 0);
    LLVMValueRef data = t->data;
    a->base = LLVMBuildCall2(g->b, ft, fn, &data, 1, "");
    unsigned kind = LLVMGetEnumAttributeKindForName("memory", 6);
    LLVMAddCallSiteAttribute(a->base, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(g->ctx, kind, 12));
    a->base_block = here;
    a->base_uses = 1;
    return a->base;
}

/* A load of element `off` where mask holds and 0 elsewhere, without control flow: the address
 * is selected between the element's and @tile_zero's, so a masked-off element (whose index
 * may be anything) is never read. Returns the value in the result's type. */
static LLVMValueRef predicated_load(Cg *g, const IrOp *op, Access *a, const CgValue *t, LLVMValueRef off,
                                    LLVMValueRef mask, const IrType *rt) {
    ElemType e = op->operands[0]->type->elem;
    LLVMTypeRef mt = cg_mem_type(g, e);
    LLVMValueRef ptr = LLVMBuildInBoundsGEP2(g->b, mt, access_base(g, a, t), &off, 1, "");
    ptr = LLVMBuildSelect(g->b, mask, ptr, zero_global(g), "");
    LLVMValueRef ld = LLVMBuildLoad2(g->b, mt, ptr, "");
    LLVMSetAlignment(ld, (unsigned)cg_elem_bytes(e));
    return cg_convert(g, e, cg_from_mem(g, e, ld), rt->elem);
}

/* A store of v (the tensor's element type) to element `off` where mask holds, without
 * control flow: one predicated st.global (inline PTX, as LLVM has no predicated store). */
static void predicated_store(Cg *g, const IrOp *op, Access *a, const CgValue *t, LLVMValueRef off,
                             LLVMValueRef mask, LLVMValueRef v) {
    ElemType e = op->operands[0]->type->elem;
    LLVMTypeRef mt = cg_mem_type(g, e);
    LLVMValueRef ptr = LLVMBuildInBoundsGEP2(g->b, mt, access_base(g, a, t), &off, 1, "");
    int64_t bytes = cg_elem_bytes(e);
    if (LLVMIsAConstantInt(mask) && LLVMConstIntGetZExtValue(mask)) {
        LLVMValueRef st = LLVMBuildStore(g->b, cg_to_mem(g, e, v), ptr);
        LLVMSetAlignment(st, (unsigned)bytes);
        return;
    }
    /* the bits in an integer register: 16 bits at least (st.b8 takes a wider register) */
    LLVMTypeRef bt = bytes == 8 ? g->i64 : bytes == 4 ? g->i32 : g->i16;
    LLVMValueRef bits = cg_to_mem(g, e, v);
    if (LLVMGetTypeKind(mt) != LLVMIntegerTypeKind) bits = LLVMBuildBitCast(g->b, bits, bt, "");
    if (bytes == 1) bits = LLVMBuildZExt(g->b, bits, g->i16, "");
    char text[64];
    snprintf(text, sizeof text, "@$0 st.global.b%d [$1], $2;", (int)(bytes * 8));
    const char *cons = bytes == 8 ? "b,l,l,~{memory}" : bytes == 4 ? "b,l,r,~{memory}" : "b,l,h,~{memory}";
    LLVMTypeRef params[3] = {g->i1, g->ptr1, bt};
    LLVMTypeRef ft = LLVMFunctionType(g->void_type, params, 3, 0);
    LLVMValueRef fn = LLVMGetInlineAsm(ft, text, strlen(text), (char *)cons, strlen(cons), 1, 0,
                                       LLVMInlineAsmDialectATT, 0);
    LLVMValueRef args[3] = {mask, ptr, bits};
    LLVMBuildCall2(g->b, ft, fn, args, 3, "");
}

/* A masked scalar load, predicated or branched around as the access plans. */
static LLVMValueRef scalar_load(Cg *g, const IrOp *op, Access *a, const CgValue *t, LLVMValueRef off,
                                LLVMValueRef mask) {
    if (a->predicated) return predicated_load(g, op, a, t, off, mask, op->results[0]->type);
    return scalar_load_as(g, op, t, off, mask, op->results[0]->type);
}

bool cg_load(Cg *g, const IrOp *op) {
    CgValue *t = cg_get(g, op->operands[0]);
    const IrType *tt = op->operands[0]->type, *rt = op->results[0]->type;
    if (t->kind != CV_TENSOR || (int)op->noperands != 1 + tt->rank)
        return cg_fail(g, op, false, "needs a tensor and one index per dimension");
    Access a;
    if (!access_plan(g, op, rt->rank, rt->shape, cg_layout_of(g, op->results[0]), tt->rank, &a)) return false;
    CgValue *r = cg_new_tile(g, a.layout, a.numel);
    LLVMTypeRef mt = cg_mem_type(g, tt->elem);
    uint32_t w = (uint32_t)a.width;
    for (uint32_t j = 0; j < r->nslots; j += w) {
        LLVMValueRef off, mask, last;
        access_slot(g, op, &a, t, j, &off, &mask, NULL, &last);
        if (w == 1) {
            r->slots[j] = scalar_load(g, op, &a, t, off, mask);
            continue;
        }
        LLVMValueRef offs[16], masks[16];
        offs[0] = off, masks[0] = mask;
        LLVMValueRef all = mask;
        if (a.masked_groups)
            for (uint32_t i = 1; i < w; i++) {
                access_slot(g, op, &a, t, j + i, &offs[i], &masks[i], NULL, NULL);
                all = LLVMBuildAnd(g->b, all, masks[i], "");
            }
        LLVMValueRef ok = vector_ok(g, op, &a, t, off, all, last);
        if (a.whole_groups) { /* no branch: a group masked off reads @tile_zero's 16 zero bytes */
            LLVMValueRef ptr = LLVMBuildGEP2(g->b, mt, t->data, &off, 1, "");
            ptr = LLVMBuildSelect(g->b, ok, ptr, zero_global(g), "");
            LLVMValueRef ld = LLVMBuildLoad2(g->b, LLVMVectorType(mt, w), ptr, "");
            LLVMSetAlignment(ld, (unsigned)(w * cg_elem_bytes(tt->elem)));
            for (uint32_t i = 0; i < w; i++)
                r->slots[j + i] = cg_convert(
                    g, tt->elem, cg_from_mem(g, tt->elem, LLVMBuildExtractElement(g->b, ld, cg_i32(g, i), "")), rt->elem);
            continue;
        }
        LLVMBasicBlockRef from = LLVMGetInsertBlock(g->b), vec_bb = cg_block(g, "ldv.vec"),
                          scal_bb = a.whole_groups ? NULL : cg_block(g, "ldv.scalar"), join = cg_block(g, "ldv.join");
        LLVMBuildCondBr(g->b, ok, vec_bb, a.whole_groups ? join : scal_bb);
        LLVMPositionBuilderAtEnd(g->b, vec_bb);
        LLVMTypeRef vt = LLVMVectorType(mt, w);
        LLVMValueRef ld = LLVMBuildLoad2(g->b, vt, LLVMBuildGEP2(g->b, mt, t->data, &off, 1, ""), "");
        LLVMSetAlignment(ld, (unsigned)(w * cg_elem_bytes(tt->elem)));
        LLVMValueRef vv[16], sv[16];
        for (uint32_t i = 0; i < w; i++)
            vv[i] = cg_convert(g, tt->elem, cg_from_mem(g, tt->elem, LLVMBuildExtractElement(g->b, ld, cg_i32(g, i), "")),
                               rt->elem);
        LLVMBasicBlockRef vec_end = LLVMGetInsertBlock(g->b), scal_end = from;
        LLVMBuildBr(g->b, join);
        if (a.whole_groups) {
            for (uint32_t i = 0; i < w; i++) sv[i] = LLVMConstNull(cg_reg_type(g, rt->elem));
        } else {
            LLVMPositionBuilderAtEnd(g->b, scal_bb);
            for (uint32_t i = 0; i < w; i++) {
                if (i && !a.masked_groups) access_slot(g, op, &a, t, j + i, &offs[i], &masks[i], NULL, NULL);
                sv[i] = scalar_load(g, op, &a, t, offs[i], masks[i]);
            }
            scal_end = LLVMGetInsertBlock(g->b);
            LLVMBuildBr(g->b, join);
        }
        LLVMPositionBuilderAtEnd(g->b, join);
        for (uint32_t i = 0; i < w; i++) {
            LLVMValueRef phi = LLVMBuildPhi(g->b, cg_reg_type(g, rt->elem), "");
            LLVMAddIncoming(phi, &vv[i], &vec_end, 1);
            LLVMAddIncoming(phi, &sv[i], &scal_end, 1);
            r->slots[j + i] = phi;
        }
    }
    cg_set(g, op->results[0], r);
    return true;
}

/* One guarded scalar store or atomic of v (in the tensor's element type): predicated or
 * branched around as the access plans. */
static void scalar_store(Cg *g, const IrOp *op, Access *a, const CgValue *t, LLVMValueRef off, LLVMValueRef mask,
                         LLVMValueRef v) {
    if (a->predicated) {
        predicated_store(g, op, a, t, off, mask, v);
        return;
    }
    ElemType to = op->operands[0]->type->elem;
    LLVMTypeRef mt = cg_mem_type(g, to);
    LLVMBasicBlockRef body = cg_block(g, "st.do"), join = cg_block(g, "st.join");
    LLVMBuildCondBr(g->b, mask, body, join);
    LLVMPositionBuilderAtEnd(g->b, body);
    LLVMValueRef ptr = LLVMBuildGEP2(g->b, mt, t->data, &off, 1, "");
    if (op->code != OP_ATOMIC) {
        LLVMValueRef st = LLVMBuildStore(g->b, cg_to_mem(g, to, v), ptr);
        LLVMSetAlignment(st, (unsigned)cg_elem_bytes(to));
    } else if (to.kind == EK_FLOAT) {
        LLVMValueRef mv = cg_to_mem(g, to, v);
        if (op->ints[0] == ATOMIC_ADD)
            LLVMBuildAtomicRMW(g->b, LLVMAtomicRMWBinOpFAdd, ptr, mv, LLVMAtomicOrderingMonotonic, 0);
        else
            atomic_float_max(g, ptr, mv);
    } else {
        LLVMAtomicRMWBinOp kind;
        if (to.kind == EK_BOOL) kind = LLVMAtomicRMWBinOpOr;
        else if (op->ints[0] == ATOMIC_ADD) kind = LLVMAtomicRMWBinOpAdd;
        else kind = to.kind == EK_INT ? LLVMAtomicRMWBinOpMax : LLVMAtomicRMWBinOpUMax;
        LLVMBuildAtomicRMW(g->b, kind, ptr, cg_to_mem(g, to, v), LLVMAtomicOrderingMonotonic, 0);
    }
    LLVMBuildBr(g->b, join);
    LLVMPositionBuilderAtEnd(g->b, join);
}

/* The access of a store-like op (tensor or shared tile, indices..., value): its shape is the
 * broadcast of the indices and the value; its layout the value's when the value has that shape,
 * else the blocked layout of the shape. */
static bool store_access_plan(Cg *g, const IrOp *op, Access *a) {
    const IrType *tt = op->operands[0]->type;
    int rank = 0;
    int64_t shape[IR_MAX_RANK];
    for (uint32_t i = 1; i < op->noperands; i++)
        if (op->operands[i]->type->rank > rank) rank = op->operands[i]->type->rank;
    for (int d = 0; d < rank; d++) shape[d] = 1;
    for (uint32_t i = 1; i < op->noperands; i++) {
        const IrType *vt = op->operands[i]->type;
        for (int d = 0; d < vt->rank; d++)
            if (vt->shape[d] != 1) shape[rank - vt->rank + d] = vt->shape[d];
    }
    const IrValue *value = op->operands[op->noperands - 1];
    const Layout *layout = NULL;
    CgValue *vv = cg_get(g, value);
    if (vv && vv->layout && value->type->rank == rank &&
        memcmp(value->type->shape, shape, sizeof(int64_t) * (size_t)rank) == 0)
        layout = vv->layout;
    else if (rank > 0)
        layout = cg_blocked(g, rank, shape, tt->elem);
    return access_plan(g, op, rank, shape, layout, tt->rank + 1, a);
}

bool cg_store(Cg *g, const IrOp *op) {
    CgValue *t = cg_get(g, op->operands[0]);
    const IrType *tt = op->operands[0]->type;
    if (t->kind != CV_TENSOR || (int)op->noperands != 2 + tt->rank)
        return cg_fail(g, op, false, "needs a tensor, one index per dimension and a value");
    if (op->code == OP_ATOMIC && op->ints[0] != ATOMIC_ADD && op->ints[0] != ATOMIC_MAX)
        return cg_fail(g, op, false, "unknown atomic operation");
    const IrValue *value = op->operands[op->noperands - 1];
    Access a;
    if (!store_access_plan(g, op, &a)) return false;
    ElemType from = value->type->elem, to = tt->elem;
    LLVMTypeRef mt = cg_mem_type(g, to);
    LLVMValueRef owner = cg_owner(g, a.layout);
    uint32_t nslots = a.layout ? (uint32_t)a.layout->local_size : 1, w = (uint32_t)a.width;
    for (uint32_t j = 0; j < nslots; j += w) {
        LLVMValueRef off, mask, value0, last;
        access_slot(g, op, &a, t, j, &off, &mask, &value0, &last);
        if (owner) mask = LLVMBuildAnd(g->b, mask, owner, "");
        if (w == 1) {
            scalar_store(g, op, &a, t, off, mask, cg_convert(g, from, value0, to));
            continue;
        }
        LLVMValueRef vals[16], offs[16], masks[16];
        vals[0] = value0, offs[0] = off, masks[0] = mask;
        LLVMValueRef all = mask;
        for (uint32_t i = 1; i < w; i++) {
            if (a.whole_groups) { /* the value alone: no element but the first needs its own mask */
                vals[i] = access_value(g, &a, tt->rank, j + i);
                continue;
            }
            access_slot(g, op, &a, t, j + i, &offs[i], &masks[i], &vals[i], NULL);
            if (owner) masks[i] = LLVMBuildAnd(g->b, masks[i], owner, "");
            if (a.masked_groups) all = LLVMBuildAnd(g->b, all, masks[i], "");
        }
        LLVMValueRef ok = vector_ok(g, op, &a, t, off, all, last);
        /* whole groups: from an opaque base (access_base), else LLVM's straight-line strength
         * reduction compares each group's address with every earlier one (gemm's epilogue: its
         * time in the code generator doubled); one per 8 groups, as for predicated accesses: the
         * groups' blocks are a chain, so the block of a group's base dominates the next ones */
        if (a.base) a.base_block = LLVMGetInsertBlock(g->b);
        LLVMValueRef ptr = a.whole_groups ? LLVMBuildGEP2(g->b, mt, access_base(g, &a, t), &off, 1, "") : NULL;
        LLVMBasicBlockRef vec_bb = cg_block(g, "stv.vec"), scal_bb = a.whole_groups ? NULL : cg_block(g, "stv.scalar"),
                          join = cg_block(g, "stv.join");
        LLVMBuildCondBr(g->b, ok, vec_bb, a.whole_groups ? join : scal_bb);
        LLVMPositionBuilderAtEnd(g->b, vec_bb);
        LLVMValueRef vec = LLVMGetUndef(LLVMVectorType(mt, w));
        for (uint32_t i = 0; i < w; i++)
            vec = LLVMBuildInsertElement(g->b, vec, cg_to_mem(g, to, cg_convert(g, from, vals[i], to)), cg_i32(g, i), "");
        LLVMValueRef st = LLVMBuildStore(g->b, vec, ptr ? ptr : LLVMBuildGEP2(g->b, mt, t->data, &off, 1, ""));
        LLVMSetAlignment(st, (unsigned)(w * cg_elem_bytes(to)));
        LLVMBuildBr(g->b, join);
        if (!a.whole_groups) {
            LLVMPositionBuilderAtEnd(g->b, scal_bb);
            for (uint32_t i = 0; i < w; i++)
                scalar_store(g, op, &a, t, offs[i], masks[i], cg_convert(g, from, vals[i], to));
            LLVMBuildBr(g->b, join);
        }
        LLVMPositionBuilderAtEnd(g->b, join);
    }
    return true;
}

/* ---- explicit shared tiles ------------------------------------------------------------------------------ */
/* The byte address (ptr addrspace(3)) of element `coords` of a shared value laid out by l
 * (strides and swizzle; NULL: row-major over shape). */
LLVMValueRef cg_shared_addr(Cg *g, LLVMValueRef base, const SharedLayout *l, ElemType e, int rank,
                            const int64_t *shape, const LLVMValueRef *coords) {
    /* in 32 bits: shared offsets are small, and 64-bit ones would take two registers each */
    LLVMValueRef off = cg_i32(g, 0);
    int64_t stride = 1;
    for (int d = rank - 1; d >= 0; d--) {
        int64_t st = l ? l->strides[d] : stride;
        LLVMValueRef c = LLVMBuildTrunc(g->b, coords[d], g->i32, "");
        if (l && l->split[d]) {
            /* a split dimension: the block, then the coordinate within it (non-negative) */
            LLVMValueRef blk = LLVMBuildUDiv(g->b, c, cg_i32(g, l->split[d]), "");
            off = LLVMBuildAdd(g->b, off, LLVMBuildMul(g->b, blk, cg_i32(g, l->split_strides[d]), ""), "");
            c = LLVMBuildURem(g->b, c, cg_i32(g, l->split[d]), "");
        }
        if (st) off = LLVMBuildAdd(g->b, off, st == 1 ? c : LLVMBuildMul(g->b, c, cg_i32(g, st), ""), "");
        stride *= shape[d];
    }
    if (l && l->swizzle.bits) {
        Swizzle z = l->swizzle;
        LLVMValueRef bits = LLVMBuildAnd(g->b, LLVMBuildLShr(g->b, off, cg_i32(g, z.base + z.shift), ""),
                                         cg_i32(g, (1 << z.bits) - 1), "");
        off = LLVMBuildXor(g->b, off, LLVMBuildShl(g->b, bits, cg_i32(g, z.base), ""), "");
    }
    LLVMValueRef byte = LLVMBuildMul(g->b, off, cg_i32(g, cg_elem_bytes(e)), "");
    return LLVMBuildGEP2(g->b, g->i8, base, &byte, 1, "");
}

/* shared_view: the stage's first byte; the stage is an i32 scalar. */
bool cg_shared_view(Cg *g, const IrOp *op) {
    CgValue *buf = cg_get(g, op->operands[0]), *stage = cg_get(g, op->operands[1]);
    const IrType *rt = op->results[0]->type;
    if (buf->kind != CV_SHARED || stage->kind != CV_TILE) return cg_fail(g, op, false, "needs a shared buffer and a stage");
    const IrType *bt = op->operands[0]->type;
    int64_t stage_elems = bt->shared ? bt->shared->strides[0] : type_numel(rt);
    LLVMValueRef byte = LLVMBuildMul(g->b, cg_to_i64(g, op->operands[1]->type->elem, stage->slots[0]),
                                     cg_i64(g, stage_elems * cg_elem_bytes(rt->elem)), "");
    CgValue *cv = cg_calloc(g, 1, sizeof *cv);
    cv->kind = CV_SHARED;
    cv->data = LLVMBuildGEP2(g->b, g->i8, buf->data, &byte, 1, "stage");
    cv->numel = type_numel(rt);
    cg_set(g, op->results[0], cv);
    return true;
}

/* copy_async (tensor, idx..., dst): the access of a load in a blocked layout of dst's shape;
 * each vector group that may take the vector path becomes one cp.async of W * bytes (16, 8 or 4:
 * .cg for 16 bytes, which bypasses L1), every other element a masked load and a shared store
 * (0 out of bounds). The copies of one op form one commit group. */
bool cg_copy_async(Cg *g, const IrOp *op) {
    CgValue *t = cg_get(g, op->operands[0]), *dst = cg_get(g, op->operands[op->noperands - 1]);
    const IrType *tt = op->operands[0]->type, *dt = op->operands[op->noperands - 1]->type;
    if (t->kind != CV_TENSOR || dst->kind != CV_SHARED || (int)op->noperands != 2 + tt->rank)
        return cg_fail(g, op, false, "needs a tensor, one index per dimension and a shared destination");
    Access a;
    const Layout *layout = dt->rank ? cg_blocked(g, dt->rank, dt->shape, tt->elem) : NULL;
    if (!access_plan(g, op, dt->rank, dt->shape, layout, tt->rank, &a)) return false;
    LLVMTypeRef mt = cg_mem_type(g, tt->elem);
    int64_t bytes = cg_elem_bytes(tt->elem);
    uint32_t w = (uint32_t)a.width, nslots = a.layout ? (uint32_t)a.layout->local_size : 1;
    if (w > 1 && w * bytes != 4 && w * bytes != 8 && w * bytes != 16) w = 1;
    LLVMValueRef owner = cg_owner(g, a.layout);
    for (uint32_t j = 0; j < nslots; j += w) {
        LLVMValueRef off, mask, last, coords[IR_MAX_RANK];
        access_slot(g, op, &a, t, j, &off, &mask, NULL, &last);
        if (a.layout) cg_slot_coords(g, a.layout, j, coords);
        else
            for (int d = 0; d < dt->rank; d++) coords[d] = cg_i64(g, 0);
        LLVMValueRef to = cg_shared_addr(g, dst->data, dt->shared, tt->elem, dt->rank, dt->shape, coords);
        LLVMBasicBlockRef scal_bb = cg_block(g, "cpa.scalar"), join = cg_block(g, "cpa.join");
        bool always = false;
        if (owner) {
            LLVMBasicBlockRef go = cg_block(g, "cpa.owner");
            LLVMBuildCondBr(g->b, owner, go, join);
            LLVMPositionBuilderAtEnd(g->b, go);
        }
        if (w > 1) {
            /* With static bounds a group is wholly inside or wholly outside the tensor (its start
             * is a multiple of W, and so is the last size; the other indices are constant over
             * it): the mask then selects the copy's source size (0 fills zeros) instead of a
             * branch, and only conditions uniform over the block remain (strides). */
            bool zfill = a.static_bounds;
            LLVMValueRef ok = vector_ok(g, op, &a, t, off, zfill ? LLVMConstInt(g->i1, 1, 0) : mask, last);
            /* the launch facts prove every group aligned (ok is true): no scalar fallback, and
             * the copy goes in the block at hand */
            always = LLVMIsAConstantInt(ok) && LLVMConstIntGetZExtValue(ok);
            if (!always) {
                LLVMBasicBlockRef vec_bb = cg_block(g, "cpa.vec");
                LLVMBuildCondBr(g->b, ok, vec_bb, scal_bb);
                LLVMPositionBuilderAtEnd(g->b, vec_bb);
            }
            char name[64];
            snprintf(name, sizeof name, "llvm.nvvm.cp.async.%s.shared.global.%u%s", w * bytes == 16 ? "cg" : "ca",
                     (unsigned)(w * bytes), zfill ? ".s" : "");
            LLVMValueRef src = LLVMBuildGEP2(g->b, mt, t->data, &off, 1, "");
            if (zfill) src = LLVMBuildSelect(g->b, mask, src, t->data, "");
            LLVMValueRef args[3] = {to, src,
                                    LLVMBuildSelect(g->b, mask, cg_i32(g, w * bytes), cg_i32(g, 0), "")};
            cg_call_intrinsic(g, name, NULL, 0, args, zfill ? 3 : 2);
            if (always) {
                LLVMDeleteBasicBlock(scal_bb);
                if (owner) LLVMBuildBr(g->b, join);
                else LLVMDeleteBasicBlock(join);
                if (owner) LLVMPositionBuilderAtEnd(g->b, join);
                continue;
            }
            LLVMBuildBr(g->b, join);
        } else {
            LLVMBuildBr(g->b, scal_bb);
        }
        LLVMPositionBuilderAtEnd(g->b, scal_bb);
        for (uint32_t i = 0; i < w; i++) {
            LLVMValueRef o = off, m = mask, c[IR_MAX_RANK];
            LLVMValueRef at = to;
            if (i) {
                access_slot(g, op, &a, t, j + i, &o, &m, NULL, NULL);
                cg_slot_coords(g, a.layout, j + i, c);
                at = cg_shared_addr(g, dst->data, dt->shared, tt->elem, dt->rank, dt->shape, c);
            }
            LLVMValueRef bits = cg_is_f8(tt->elem) ? scalar_load_bits(g, t, tt->elem, o, m)
                                                   : cg_to_mem(g, tt->elem, scalar_load_as(g, op, t, o, m, dt));
            LLVMValueRef st = LLVMBuildStore(g->b, bits, at);
            LLVMSetAlignment(st, (unsigned)bytes);
        }
        LLVMBuildBr(g->b, join);
        LLVMPositionBuilderAtEnd(g->b, join);
    }
    cg_call_intrinsic(g, "llvm.nvvm.cp.async.commit.group", NULL, 0, NULL, 0);
    return true;
}

bool cg_async_wait(Cg *g, const IrOp *op) {
    LLVMValueRef n = cg_i32(g, op->nints ? op->ints[0] : 0);
    cg_call_intrinsic(g, "llvm.nvvm.cp.async.wait.group", NULL, 0, &n, 1);
    if (g->arch == BACKEND_ARCH_SM90A) {
        /* the copies were writes of the generic proxy; a wgmma reads through the async proxy */
        LLVMTypeRef ft = LLVMFunctionType(g->void_type, NULL, 0, 0);
        const char *text = "fence.proxy.async.shared::cta;";
        LLVMValueRef fn = LLVMGetInlineAsm(ft, (char *)text, strlen(text), "~{memory}", 9, 1, 0, LLVMInlineAsmDialectATT, 0);
        LLVMBuildCall2(g->b, ft, fn, NULL, 0, "");
    }
    return true;
}

bool cg_shared_op(Cg *g, const IrOp *op) {
    if (op->code == OP_SHARED_ALLOC) {
        const IrType *st = op->results[0]->type;
        if (st->kind != TY_SHARED) return cg_fail(g, op, false, "the result is not a shared tile");
        int64_t numel = type_numel(st);
        uint64_t bytes = region_bytes(st->elem, numel);
        CgValue *cv = cg_calloc(g, 1, sizeof *cv);
        cv->kind = CV_SHARED;
        cv->numel = numel;
        if (op->nints >= 1) {
            /* placed by smem_plan in the dynamic shared memory */
            LLVMValueRef byte = cg_i64(g, op->ints[0]);
            cv->data = LLVMBuildGEP2(g->b, g->i8, g->smem_base, &byte, 1, "");
        } else {
            char name[32];
            snprintf(name, sizeof name, "tile_shared_%u", g->shared_count++);
            LLVMValueRef gv = LLVMAddGlobalInAddressSpace(g->module, LLVMArrayType2(g->i8, bytes), name, 3);
            LLVMSetInitializer(gv, LLVMGetUndef(LLVMArrayType2(g->i8, bytes)));
            LLVMSetLinkage(gv, LLVMInternalLinkage);
            LLVMSetAlignment(gv, 16);
            cv->data = gv;
        }
        if (op->nints >= 2 && op->ints[1]) { /* written before it is read (stages' buffers) */
            cg_set(g, op->results[0], cv);
            return true;
        }
        LLVMValueRef gv = cv->data;
        /* zeroed, as the VM's shared tiles are */
        CgValue *zero = cg_new_tile(g, st->rank ? cg_blocked(g, st->rank, st->shape, st->elem) : NULL, numel);
        for (uint32_t j = 0; j < zero->nslots; j++) zero->slots[j] = LLVMConstNull(cg_reg_type(g, st->elem));
        cg_barrier(g);
        cg_scratch_write(g, gv, 0, st->elem, zero, st->rank, st->shape);
        cg_barrier(g);
        cg_set(g, op->results[0], cv);
        return true;
    }
    CgValue *s = cg_get(g, op->operands[0]);
    if (s->kind != CV_SHARED) return cg_fail(g, op, false, "operand 0 is not a shared tile");
    const IrType *st = op->operands[0]->type;
    ElemType e = st->elem;
    if (op->code == OP_SHARED_STORE && cg_is_staging_store(op)) return cg_staging_store(g, op);
    if (op->code == OP_SHARED_STORE) {
        CgValue *v = cg_get(g, op->operands[1]);
        if (v->kind != CV_TILE || v->numel != s->numel || !elem_eq(op->operands[1]->type->elem, e))
            return cg_fail(g, op, false, "the tile does not match the shared tile");
        cg_barrier(g);
        cg_scratch_write(g, s->data, 0, e, v, op->operands[1]->type->rank, op->operands[1]->type->shape);
        cg_barrier(g);
        return true;
    }
    const IrType *rt = op->results[0]->type;
    CgValue *r = cg_new_tile_for(g, op->results[0]);
    if (r->numel != s->numel) return cg_fail(g, op, false, "the result does not match the shared tile");
    for (uint32_t j = 0; j < r->nslots; j++) {
        LLVMValueRef idx = cg_i64(g, 0);
        if (r->layout) {
            LLVMValueRef coords[IR_MAX_RANK];
            cg_slot_coords(g, r->layout, j, coords);
            idx = row_major(g, coords, rt->rank, rt->shape);
        }
        r->slots[j] = cg_scratch_read(g, s->data, 0, e, idx);
    }
    cg_set(g, op->results[0], r);
    return true;
}

/* ---- indexed accesses of shared tiles -------------------------------------------------------------
 * load and store with a shared tile as operand 0 (the language's `shared<T>[...]`, SPEC 6.10):
 * the access of a global load or store (the result's or the value's layout, the same index
 * fetches, the same rule that an index outside the shape reads 0 and writes nothing), addressed
 * through cg_shared_addr (the tile's strides and swizzle; row-major when it has no layout). The
 * shape is constant, so the bounds are compile-time numbers. W consecutive slots (plan_vector:
 * the axis analysis proves them consecutive) become one ld.shared/st.shared vector of W * bytes
 * <= 16 when the tile's last dimension has stride 1 and no swizzle; a group takes the vector
 * path when it is inside the shape and W-aligned (one check per group), else the masked scalar
 * path. A masked-off scalar load reads element 0 (clamped address) and selects 0, so it needs
 * no branch. */

/* Slot j's index per dimension (i64, in elements of that dimension), its in-bounds mask and,
 * for a store, its value. */
static void shared_slot(Cg *g, const IrOp *op, const Access *a, uint32_t j, LLVMValueRef *index, LLVMValueRef *mask,
                        LLVMValueRef *value) {
    const IrType *st = op->operands[0]->type;
    LLVMValueRef coords[IR_MAX_RANK];
    bool need = false;
    for (int i = 0; i < a->nfetch; i++) need |= fetch_needs_coords(&a->idx[i]);
    if (need) {
        if (a->layout) cg_slot_coords(g, a->layout, j, coords);
        else
            for (int d = 0; d < a->rank; d++) coords[d] = cg_i64(g, 0);
    }
    LLVMValueRef m = LLVMConstInt(g->i1, 1, 0);
    for (int d = 0; d < st->rank; d++) {
        const IrValue *iv = op->operands[1 + d];
        index[d] = cg_to_i64(g, iv->type->elem, fetch_at(g, &a->idx[d], j, a->rank, coords));
        m = LLVMBuildAnd(g->b, m, LLVMBuildICmp(g->b, LLVMIntULT, index[d], cg_i64(g, st->shape[d]), ""), "");
    }
    *mask = m;
    if (value) *value = fetch_at(g, &a->idx[st->rank], j, a->rank, coords);
}

/* The vector width for a shared access: plan_vector's, when the tile's layout allows it. */
static uint32_t shared_width(const IrOp *op, const Access *a) {
    const IrType *st = op->operands[0]->type;
    const SharedLayout *l = st->shared;
    if (a->width <= 1 || st->rank == 0) return 1;
    if (l && (l->swizzle.bits || l->strides[st->rank - 1] != 1)) return 1;
    return (uint32_t)a->width;
}

/* Whether the group at slot j (first index `index`, mask) may take the vector path: inside the
 * shape along the last dimension and W-aligned in shared memory. */
static LLVMValueRef shared_vector_ok(Cg *g, const IrOp *op, uint32_t w, const LLVMValueRef *index, LLVMValueRef mask,
                                     LLVMValueRef addr) {
    const IrType *st = op->operands[0]->type;
    int last = st->rank - 1;
    LLVMValueRef end = LLVMBuildAdd(g->b, index[last], cg_i64(g, w - 1), "");
    LLVMValueRef ok = LLVMBuildAnd(g->b, mask, LLVMBuildICmp(g->b, LLVMIntULT, end, cg_i64(g, st->shape[last]), ""), "");
    LLVMValueRef bits = LLVMBuildPtrToInt(g->b, addr, g->i32, "");
    LLVMValueRef low = LLVMBuildAnd(g->b, bits, cg_i32(g, (int64_t)w * cg_elem_bytes(st->elem) - 1), "");
    return LLVMBuildAnd(g->b, ok, LLVMBuildICmp(g->b, LLVMIntEQ, low, cg_i32(g, 0), ""), "");
}

/* The address of element `index` of the shared tile s, clamped to element 0 where mask is off. */
static LLVMValueRef shared_elem_addr(Cg *g, const IrOp *op, const CgValue *s, const LLVMValueRef *index,
                                     LLVMValueRef mask) {
    const IrType *st = op->operands[0]->type;
    LLVMValueRef safe[IR_MAX_RANK];
    for (int d = 0; d < st->rank; d++) safe[d] = mask ? LLVMBuildSelect(g->b, mask, index[d], cg_i64(g, 0), "") : index[d];
    return cg_shared_addr(g, s->data, st->shared, st->elem, st->rank, st->shape, safe);
}

bool cg_shared_load(Cg *g, const IrOp *op) {
    CgValue *s = cg_get(g, op->operands[0]);
    const IrType *st = op->operands[0]->type, *rt = op->results[0]->type;
    if (s->kind != CV_SHARED || (int)op->noperands != 1 + st->rank)
        return cg_fail(g, op, false, "needs a shared tile and one index per dimension");
    Access a;
    if (!access_plan(g, op, rt->rank, rt->shape, cg_layout_of(g, op->results[0]), st->rank, &a)) return false;
    CgValue *r = cg_new_tile(g, a.layout, a.numel);
    ElemType e = st->elem;
    LLVMTypeRef mt = cg_mem_type(g, e), reg = cg_reg_type(g, e);
    LLVMValueRef zero = LLVMConstNull(reg);
    uint32_t w = shared_width(op, &a);
    for (uint32_t j = 0; j < r->nslots; j += w) {
        LLVMValueRef index[IR_MAX_RANK], mask;
        shared_slot(g, op, &a, j, index, &mask, NULL);
        LLVMValueRef addr = shared_elem_addr(g, op, s, index, mask);
        if (w == 1) {
            LLVMValueRef ld = LLVMBuildLoad2(g->b, mt, addr, "");
            LLVMSetAlignment(ld, (unsigned)cg_elem_bytes(e));
            r->slots[j] = LLVMBuildSelect(g->b, mask, cg_from_mem(g, e, ld), zero, "");
            continue;
        }
        LLVMValueRef ok = shared_vector_ok(g, op, w, index, mask, addr);
        for (uint32_t i = 1; a.masked_groups && i < w; i++) { /* every element's mask, as for stores */
            LLVMValueRef ix[IR_MAX_RANK], m;
            shared_slot(g, op, &a, j + i, ix, &m, NULL);
            ok = LLVMBuildAnd(g->b, ok, m, "");
        }
        LLVMBasicBlockRef vec_bb = cg_block(g, "lds.vec"), scal_bb = cg_block(g, "lds.scalar"), join = cg_block(g, "lds.join");
        LLVMBuildCondBr(g->b, ok, vec_bb, scal_bb);
        LLVMPositionBuilderAtEnd(g->b, vec_bb);
        LLVMValueRef ld = LLVMBuildLoad2(g->b, LLVMVectorType(mt, w), addr, "");
        LLVMSetAlignment(ld, (unsigned)(w * cg_elem_bytes(e)));
        LLVMValueRef vv[16], sv[16];
        for (uint32_t i = 0; i < w; i++) vv[i] = cg_from_mem(g, e, LLVMBuildExtractElement(g->b, ld, cg_i32(g, i), ""));
        LLVMBasicBlockRef vec_end = LLVMGetInsertBlock(g->b);
        LLVMBuildBr(g->b, join);
        LLVMPositionBuilderAtEnd(g->b, scal_bb);
        for (uint32_t i = 0; i < w; i++) {
            LLVMValueRef ix[IR_MAX_RANK], m = mask, at = addr;
            if (i) {
                shared_slot(g, op, &a, j + i, ix, &m, NULL);
                at = shared_elem_addr(g, op, s, ix, m);
            }
            LLVMValueRef x = LLVMBuildLoad2(g->b, mt, at, "");
            LLVMSetAlignment(x, (unsigned)cg_elem_bytes(e));
            sv[i] = LLVMBuildSelect(g->b, m, cg_from_mem(g, e, x), zero, "");
        }
        LLVMBasicBlockRef scal_end = LLVMGetInsertBlock(g->b);
        LLVMBuildBr(g->b, join);
        LLVMPositionBuilderAtEnd(g->b, join);
        for (uint32_t i = 0; i < w; i++) {
            LLVMValueRef phi = LLVMBuildPhi(g->b, reg, "");
            LLVMAddIncoming(phi, &vv[i], &vec_end, 1);
            LLVMAddIncoming(phi, &sv[i], &scal_end, 1);
            r->slots[j + i] = phi;
        }
    }
    cg_set(g, op->results[0], r);
    return true;
}

/* One guarded scalar store of v (registers, the tile's element type) to element `index`. */
static void shared_scalar_store(Cg *g, const IrOp *op, const CgValue *s, const LLVMValueRef *index, LLVMValueRef mask,
                                LLVMValueRef v) {
    ElemType e = op->operands[0]->type->elem;
    LLVMBasicBlockRef body = cg_block(g, "sts.do"), join = cg_block(g, "sts.join");
    LLVMBuildCondBr(g->b, mask, body, join);
    LLVMPositionBuilderAtEnd(g->b, body);
    LLVMValueRef st = LLVMBuildStore(g->b, cg_to_mem(g, e, v), shared_elem_addr(g, op, s, index, NULL));
    LLVMSetAlignment(st, (unsigned)cg_elem_bytes(e));
    LLVMBuildBr(g->b, join);
    LLVMPositionBuilderAtEnd(g->b, join);
}

bool cg_shared_store(Cg *g, const IrOp *op) {
    CgValue *s = cg_get(g, op->operands[0]);
    const IrType *st = op->operands[0]->type;
    if (s->kind != CV_SHARED || (int)op->noperands != 2 + st->rank)
        return cg_fail(g, op, false, "needs a shared tile, one index per dimension and a value");
    const IrValue *value = op->operands[op->noperands - 1];
    Access a;
    if (!store_access_plan(g, op, &a)) return false; /* as for global stores */
    ElemType from = value->type->elem, e = st->elem;
    LLVMTypeRef mt = cg_mem_type(g, e);
    LLVMValueRef owner = cg_owner(g, a.layout);
    uint32_t nslots = a.layout ? (uint32_t)a.layout->local_size : 1, w = shared_width(op, &a);
    for (uint32_t j = 0; j < nslots; j += w) {
        LLVMValueRef index[IR_MAX_RANK], mask, value0;
        shared_slot(g, op, &a, j, index, &mask, &value0);
        if (owner) mask = LLVMBuildAnd(g->b, mask, owner, "");
        if (w == 1) {
            shared_scalar_store(g, op, s, index, mask, cg_convert(g, from, value0, e));
            continue;
        }
        LLVMValueRef vals[16], idx[16][IR_MAX_RANK], masks[16];
        vals[0] = value0, masks[0] = mask;
        memcpy(idx[0], index, sizeof(LLVMValueRef) * (size_t)st->rank);
        for (uint32_t i = 1; i < w; i++) {
            shared_slot(g, op, &a, j + i, idx[i], &masks[i], &vals[i]);
            if (owner) masks[i] = LLVMBuildAnd(g->b, masks[i], owner, "");
        }
        LLVMValueRef addr = shared_elem_addr(g, op, s, index, mask);
        LLVMValueRef ok = shared_vector_ok(g, op, w, index, mask, addr);
        /* a masked store's group (plan_vector: masked_groups) is whole only when every mask holds */
        for (uint32_t i = 1; a.masked_groups && i < w; i++) ok = LLVMBuildAnd(g->b, ok, masks[i], "");
        LLVMBasicBlockRef vec_bb = cg_block(g, "sts.vec"), scal_bb = cg_block(g, "sts.scalar"), join = cg_block(g, "sts.join");
        LLVMBuildCondBr(g->b, ok, vec_bb, scal_bb);
        LLVMPositionBuilderAtEnd(g->b, vec_bb);
        LLVMValueRef vec = LLVMGetUndef(LLVMVectorType(mt, w));
        for (uint32_t i = 0; i < w; i++)
            vec = LLVMBuildInsertElement(g->b, vec, cg_to_mem(g, e, cg_convert(g, from, vals[i], e)), cg_i32(g, i), "");
        LLVMValueRef stv = LLVMBuildStore(g->b, vec, addr);
        LLVMSetAlignment(stv, (unsigned)(w * cg_elem_bytes(e)));
        LLVMBuildBr(g->b, join);
        LLVMPositionBuilderAtEnd(g->b, scal_bb);
        for (uint32_t i = 0; i < w; i++) shared_scalar_store(g, op, s, idx[i], masks[i], cg_convert(g, from, vals[i], e));
        LLVMBuildBr(g->b, join);
        LLVMPositionBuilderAtEnd(g->b, join);
    }
    return true;
}
