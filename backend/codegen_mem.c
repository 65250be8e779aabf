/*
 * codegen_mem.c: the ops of the GPU code generator that move elements: global loads, stores
 * and atomics, broadcasts, transposes, reductions, scans, dot, and explicit shared tiles.
 *
 * An operand that must be seen at the coordinates of another shape (an index tile of shape
 * [BM, 1] of a load of shape [BM, BK], the value of a broadcast) is fetched in one of four
 * ways, the cheapest that applies: a replicated value (one element) is its slot 0; a value of
 * the same element count already sits in the right slots; an index expression built from
 * arange, constants, scalars and elementwise ops is *rematerialized*: recomputed at the
 * needed coordinates (remat below); anything else goes through the shared scratch buffer:
 * barrier, every thread stores its slots at their element index, barrier, every thread reads
 * the elements its slots need. The scratch buffer is @tile_smem from byte 0; each use begins
 * with a barrier so that the previous use's readers are done, and codegen.c reports the
 * largest use as the kernel's dynamic shared memory.
 *
 * Memory accesses of a slot are guarded by the bounds mask (and by the slot being active);
 * a masked load yields 0 by branching around the load. Stores and atomics of a replicated
 * access (one element, held by every thread) are made by thread 0 alone.
 */
#include "codegen.h"

#include <stdio.h>
#include <string.h>

static int64_t elem_bytes(ElemType e) { return e.kind == EK_BOOL ? 1 : e.bits / 8; }

static uint64_t align16(uint64_t x) { return (x + 15) & ~(uint64_t)15; }

/* Bytes of a scratch region holding a value of numel elements in the canonical layout. */
static uint64_t region_bytes(Cg *g, ElemType e, int64_t numel) {
    return align16((uint64_t)cg_slot_count(g, numel) * g->threads * (uint64_t)elem_bytes(e));
}

static void need_scratch(Cg *g, uint64_t bytes) {
    if (bytes > g->smem_bytes) g->smem_bytes = bytes;
}

static LLVMValueRef scratch_ptr(Cg *g, LLVMValueRef base, uint64_t offset, ElemType e, LLVMValueRef index) {
    LLVMValueRef byte = LLVMBuildAdd(g->b, cg_i64(g, (int64_t)offset),
                                     LLVMBuildMul(g->b, index, cg_i64(g, elem_bytes(e)), ""), "");
    return LLVMBuildGEP2(g->b, g->i8, base, &byte, 1, "");
}

/* Every thread stores its slots at their element index (no guard: regions hold whole slots). */
static void scratch_write(Cg *g, LLVMValueRef base, uint64_t offset, ElemType e, const CgValue *cv) {
    for (uint32_t j = 0; j < cv->nslots; j++) {
        LLVMValueRef idx = LLVMBuildAdd(g->b, cg_i64(g, (int64_t)j * g->threads), g->tid, "");
        LLVMValueRef st = LLVMBuildStore(g->b, cg_to_mem(g, e, cv->slots[j]), scratch_ptr(g, base, offset, e, idx));
        LLVMSetAlignment(st, (unsigned)elem_bytes(e));
    }
}

/* The element of index idx of a value written by scratch_write. */
static LLVMValueRef scratch_read(Cg *g, LLVMValueRef base, uint64_t offset, ElemType e, int64_t numel,
                                 LLVMValueRef idx) {
    if (numel <= 1) idx = cg_i64(g, 0);
    LLVMValueRef ld = LLVMBuildLoad2(g->b, cg_mem_type(g, e), scratch_ptr(g, base, offset, e, idx), "");
    LLVMSetAlignment(ld, (unsigned)elem_bytes(e));
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
    default:
        return op->noperands == 2 ? cg_binary(g, op->code, (int)op->ints[0], e, x[0], x[1])
                                  : cg_unary(g, op->code, e, x[0]);
    }
}

/* ---- fetching an operand at another shape's coordinates ------------------------------------------ */
typedef enum { FETCH_SCALAR, FETCH_SLOTS, FETCH_REMAT, FETCH_SHARED } FetchMode;

typedef struct Fetch {
    FetchMode mode;
    const IrValue *v;
    CgValue *cv;
    uint64_t offset;                  /* FETCH_SHARED: the scratch region */
    int64_t stride[IR_MAX_RANK];      /* FETCH_SHARED: v's element stride per target dim (0: broadcast) */
} Fetch;

/* Chooses how to read v at the coordinates of target shape; v broadcasts to it (checked). */
static bool fetch_plan(Cg *g, const IrOp *op, const IrValue *v, int rank, const int64_t *shape, Fetch *f,
                       uint64_t *scratch) {
    memset(f, 0, sizeof *f);
    f->v = v;
    f->cv = cg_get(g, v);
    const IrType *t = v->type;
    if (!f->cv || f->cv->kind != CV_TILE || t->rank > rank)
        return cg_fail(g, op, false, "an operand does not broadcast to the access shape");
    int64_t s = 1;
    for (int d = t->rank - 1; d >= 0; d--) {
        int od = rank - t->rank + d;
        if (t->shape[d] != shape[od] && t->shape[d] != 1)
            return cg_fail(g, op, false, "an operand does not broadcast to the access shape");
        f->stride[od] = t->shape[d] == 1 ? 0 : s;
        s *= t->shape[d];
    }
    int64_t n = 1;
    for (int d = 0; d < rank; d++) n *= shape[d];
    int budget = 64;
    if (f->cv->numel == 1) f->mode = FETCH_SCALAR;
    else if (f->cv->numel == n) f->mode = FETCH_SLOTS;
    else if (remat_ok(g, v, &budget)) f->mode = FETCH_REMAT;
    else {
        f->mode = FETCH_SHARED;
        f->offset = *scratch;
        *scratch += region_bytes(g, t->elem, f->cv->numel);
    }
    return true;
}

/* Writes the shared-mode operands (between two barriers). */
static void fetch_prepare(Cg *g, Fetch *f, int n, uint64_t scratch) {
    bool any = false;
    for (int i = 0; i < n; i++) any |= f[i].mode == FETCH_SHARED;
    if (!any) return;
    need_scratch(g, scratch);
    cg_barrier(g);
    for (int i = 0; i < n; i++)
        if (f[i].mode == FETCH_SHARED) scratch_write(g, g->smem, f[i].offset, f[i].v->type->elem, f[i].cv);
    cg_barrier(g);
}

/* The operand at slot j of the target; coords are the target coordinates of that slot. */
static LLVMValueRef fetch_at(Cg *g, const Fetch *f, uint32_t j, int rank, LLVMValueRef *coords) {
    switch (f->mode) {
    case FETCH_SCALAR: return f->cv->slots[0];
    case FETCH_SLOTS: return f->cv->slots[j];
    case FETCH_REMAT: {
        /* v broadcasts to the target: its size-1 dims read coordinate 0 */
        const IrType *t = f->v->type;
        LLVMValueRef own[IR_MAX_RANK];
        for (int d = 0; d < t->rank; d++) own[d] = t->shape[d] == 1 ? cg_i64(g, 0) : coords[rank - t->rank + d];
        return remat(g, f->v, own);
    }
    default: {
        LLVMValueRef idx = cg_i64(g, 0);
        for (int d = 0; d < rank; d++)
            if (f->stride[d])
                idx = LLVMBuildAdd(g->b, idx, LLVMBuildMul(g->b, coords[d], cg_i64(g, f->stride[d]), ""), "");
        return scratch_read(g, g->smem, f->offset, f->v->type->elem, f->cv->numel, idx);
    }
    }
}

bool cg_broadcast(Cg *g, const IrOp *op) {
    const IrType *rt = op->results[0]->type;
    Fetch f;
    uint64_t scratch = 0;
    if (!fetch_plan(g, op, op->operands[0], rt->rank, rt->shape, &f, &scratch)) return false;
    fetch_prepare(g, &f, 1, scratch);
    CgValue *r = cg_new_tile(g, rt);
    for (uint32_t j = 0; j < r->nslots; j++) {
        LLVMValueRef coords[IR_MAX_RANK];
        if (f.mode == FETCH_REMAT || f.mode == FETCH_SHARED)
            coords_of(g, cg_slot_index(g, r->numel, j), rt->rank, rt->shape, coords);
        r->slots[j] = fetch_at(g, &f, j, rt->rank, coords);
    }
    cg_set(g, op->results[0], r);
    return true;
}

/* ---- global memory --------------------------------------------------------------------------------- */
/* Runs the current block's code for one slot under mask: returns the block to continue in. */
static LLVMBasicBlockRef guard_begin(Cg *g, LLVMValueRef mask, LLVMBasicBlockRef *join) {
    LLVMBasicBlockRef from = LLVMGetInsertBlock(g->b);
    LLVMBasicBlockRef body = cg_block(g, "mem.do");
    *join = cg_block(g, "mem.join");
    LLVMBuildCondBr(g->b, mask, body, *join);
    LLVMPositionBuilderAtEnd(g->b, body);
    return from;
}

typedef struct Access {
    int rank;
    int64_t shape[IR_MAX_RANK];
    int64_t numel;
    Fetch idx[IR_MAX_RANK + 1];       /* one per tensor dim, then the value (stores) */
    int nfetch;
} Access;

static bool access_plan(Cg *g, const IrOp *op, int rank, const int64_t *shape, int nfetch, Access *a) {
    a->rank = rank;
    a->numel = 1;
    for (int d = 0; d < rank; d++) a->numel *= a->shape[d] = shape[d];
    a->nfetch = nfetch;
    uint64_t scratch = 0;
    for (int i = 0; i < nfetch; i++) {
        const IrValue *v = op->operands[1 + i];
        if (i < op->operands[0]->type->rank && (v->type->kind != TY_TILE || elem_is_float(v->type->elem)))
            return cg_fail(g, op, false, "index %d is not an integer", i);
        if (!fetch_plan(g, op, v, rank, shape, &a->idx[i], &scratch)) return false;
    }
    fetch_prepare(g, a->idx, nfetch, scratch);
    return true;
}

/* The element offset and in-bounds mask of slot j; *value gets the stored value when asked. */
static void access_slot(Cg *g, const IrOp *op, const Access *a, const CgValue *t, uint32_t j,
                        LLVMValueRef *offset, LLVMValueRef *mask, LLVMValueRef *value) {
    LLVMValueRef coords[IR_MAX_RANK];
    bool need = false;
    for (int i = 0; i < a->nfetch; i++) need |= a->idx[i].mode == FETCH_REMAT || a->idx[i].mode == FETCH_SHARED;
    if (need) coords_of(g, cg_slot_index(g, a->numel, j), a->rank, a->shape, coords);
    int trank = op->operands[0]->type->rank;
    LLVMValueRef off = cg_i64(g, 0), m = cg_slot_active(g, a->numel, j);
    for (int d = 0; d < trank; d++) {
        const IrValue *iv = op->operands[1 + d];
        LLVMValueRef i = cg_to_i64(g, iv->type->elem, fetch_at(g, &a->idx[d], j, a->rank, coords));
        LLVMValueRef in = LLVMBuildICmp(g->b, LLVMIntULT, i, t->size[d], "");
        m = m ? LLVMBuildAnd(g->b, m, in, "") : in;
        off = LLVMBuildAdd(g->b, off, LLVMBuildMul(g->b, i, t->stride[d], ""), "");
    }
    if (!m) m = LLVMConstInt(g->i1, 1, 0);
    *offset = off;
    *mask = m;
    if (value) *value = fetch_at(g, &a->idx[trank], j, a->rank, coords);
}

bool cg_load(Cg *g, const IrOp *op) {
    CgValue *t = cg_get(g, op->operands[0]);
    const IrType *tt = op->operands[0]->type, *rt = op->results[0]->type;
    if (t->kind != CV_TENSOR || (int)op->noperands != 1 + tt->rank)
        return cg_fail(g, op, false, "needs a tensor and one index per dimension");
    Access a;
    if (!access_plan(g, op, rt->rank, rt->shape, tt->rank, &a)) return false;
    CgValue *r = cg_new_tile(g, rt);
    LLVMTypeRef mt = cg_mem_type(g, tt->elem);
    for (uint32_t j = 0; j < r->nslots; j++) {
        LLVMValueRef off, mask;
        access_slot(g, op, &a, t, j, &off, &mask, NULL);
        LLVMBasicBlockRef join;
        LLVMBasicBlockRef from = guard_begin(g, mask, &join);
        LLVMValueRef ld = LLVMBuildLoad2(g->b, mt, LLVMBuildGEP2(g->b, mt, t->data, &off, 1, ""), "");
        LLVMSetAlignment(ld, (unsigned)elem_bytes(tt->elem));
        LLVMValueRef v = cg_convert(g, tt->elem, cg_from_mem(g, tt->elem, ld), rt->elem);
        LLVMBasicBlockRef done = LLVMGetInsertBlock(g->b);
        LLVMBuildBr(g->b, join);
        LLVMPositionBuilderAtEnd(g->b, join);
        LLVMValueRef phi = LLVMBuildPhi(g->b, cg_reg_type(g, rt->elem), "");
        LLVMValueRef zero = LLVMConstNull(cg_reg_type(g, rt->elem));
        LLVMAddIncoming(phi, &zero, &from, 1);
        LLVMAddIncoming(phi, &v, &done, 1);
        r->slots[j] = phi;
    }
    cg_set(g, op->results[0], r);
    return true;
}

static LLVMValueRef atomic_float_max(Cg *g, LLVMValueRef ptr, LLVMValueRef v) {
    LLVMValueRef rmw = LLVMBuildAtomicRMW(g->b, LLVMAtomicRMWBinOpFMaximum, ptr, v,
                                          LLVMAtomicOrderingMonotonic, 0);
    return rmw;
}

bool cg_store(Cg *g, const IrOp *op) {
    CgValue *t = cg_get(g, op->operands[0]);
    const IrType *tt = op->operands[0]->type;
    if (t->kind != CV_TENSOR || (int)op->noperands != 2 + tt->rank)
        return cg_fail(g, op, false, "needs a tensor, one index per dimension and a value");
    bool atomic = op->code == OP_ATOMIC;
    if (atomic && op->ints[0] != ATOMIC_ADD && op->ints[0] != ATOMIC_MAX)
        return cg_fail(g, op, false, "unknown atomic operation");
    /* the access shape: the broadcast of the indices and the value */
    int rank = 0;
    int64_t shape[IR_MAX_RANK];
    for (uint32_t i = 1; i < op->noperands; i++)
        if (op->operands[i]->type->rank > rank) rank = op->operands[i]->type->rank;
    for (int d = 0; d < rank; d++) shape[d] = 1;
    for (uint32_t i = 1; i < op->noperands; i++) {
        const IrType *vt = op->operands[i]->type;
        for (int d = 0; d < vt->rank; d++) {
            int od = rank - vt->rank + d;
            if (vt->shape[d] != 1) shape[od] = vt->shape[d];
        }
    }
    Access a;
    if (!access_plan(g, op, rank, shape, tt->rank + 1, &a)) return false;
    ElemType from = op->operands[op->noperands - 1]->type->elem, to = tt->elem;
    LLVMTypeRef mt = cg_mem_type(g, to);
    uint32_t nslots = cg_slot_count(g, a.numel);
    for (uint32_t j = 0; j < nslots; j++) {
        LLVMValueRef off, mask, value;
        access_slot(g, op, &a, t, j, &off, &mask, &value);
        if (a.numel == 1) mask = LLVMBuildAnd(g->b, mask, g->tid_is_zero, "");
        LLVMValueRef v = cg_convert(g, from, value, to);
        LLVMBasicBlockRef join;
        guard_begin(g, mask, &join);
        LLVMValueRef ptr = LLVMBuildGEP2(g->b, mt, t->data, &off, 1, "");
        if (!atomic) {
            LLVMValueRef st = LLVMBuildStore(g->b, cg_to_mem(g, to, v), ptr);
            LLVMSetAlignment(st, (unsigned)elem_bytes(to));
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
    return true;
}

/* ---- transpose, reduce, scan ----------------------------------------------------------------------- */
bool cg_transpose(Cg *g, const IrOp *op) {
    const IrType *in = op->operands[0]->type, *rt = op->results[0]->type;
    CgValue *a = cg_get(g, op->operands[0]);
    CgValue *r = cg_new_tile(g, rt);
    if (a->numel == 1) {
        for (uint32_t j = 0; j < r->nslots; j++) r->slots[j] = a->slots[0];
        cg_set(g, op->results[0], r);
        return true;
    }
    int64_t in_stride[IR_MAX_RANK], s = 1;
    for (int d = in->rank - 1; d >= 0; d--) {
        in_stride[d] = s;
        s *= in->shape[d];
    }
    uint64_t bytes = region_bytes(g, in->elem, a->numel);
    need_scratch(g, bytes);
    cg_barrier(g);
    scratch_write(g, g->smem, 0, in->elem, a);
    cg_barrier(g);
    for (uint32_t j = 0; j < r->nslots; j++) {
        LLVMValueRef coords[IR_MAX_RANK];
        coords_of(g, cg_slot_index(g, r->numel, j), rt->rank, rt->shape, coords);
        LLVMValueRef idx = cg_i64(g, 0);
        for (int i = 0; i < rt->rank; i++)
            idx = LLVMBuildAdd(g->b, idx, LLVMBuildMul(g->b, coords[i], cg_i64(g, in_stride[op->ints[i]]), ""), "");
        r->slots[j] = scratch_read(g, g->smem, 0, in->elem, a->numel, idx);
    }
    cg_set(g, op->results[0], r);
    return true;
}

/* The accumulation: f32 for floats up to 32 bits, double for f64, wrapping integers. */
static LLVMValueRef combine(Cg *g, IrReduce kind, ElemType e, LLVMValueRef acc, LLVMValueRef x) {
    if (e.kind == EK_FLOAT) {
        if (kind == RED_SUM) return LLVMBuildFAdd(g->b, acc, x, "");
        return cg_fminmax(g, kind == RED_MAX, acc, x);
    }
    return cg_binary(g, kind == RED_SUM ? OP_ADD : kind == RED_MAX ? OP_MAX : OP_MIN, 0, e, acc, x);
}

static LLVMValueRef identity(Cg *g, IrReduce kind, ElemType e) {
    IrConst c = {0};
    if (e.kind == EK_FLOAT) {
        c.is_float = true;
        c.f = kind == RED_SUM ? 0.0 : kind == RED_MAX ? -__builtin_inf() : __builtin_inf();
        return cg_const(g, e, c);
    }
    LLVMTypeRef t = cg_reg_type(g, e);
    if (kind == RED_SUM) return LLVMConstNull(t);
    bool max = kind == RED_MAX;
    if (e.kind != EK_INT) return max ? LLVMConstNull(t) : LLVMConstAllOnes(t);
    uint64_t min_bits = (uint64_t)1 << (e.bits - 1);
    return LLVMConstInt(t, max ? min_bits : min_bits - 1, 0);
}

/* A counted loop k = first .. count-1 with accumulators: begin returns the phis. */
typedef struct Loop {
    LLVMBasicBlockRef pre, header, body;
    LLVMValueRef k;
    LLVMValueRef *acc;
    uint32_t n;
} Loop;

static void loop_begin(Cg *g, Loop *l, int64_t first, LLVMValueRef *init, uint32_t n) {
    l->pre = LLVMGetInsertBlock(g->b);
    l->header = cg_block(g, "acc.loop");
    LLVMBuildBr(g->b, l->header);
    LLVMPositionBuilderAtEnd(g->b, l->header);
    l->k = LLVMBuildPhi(g->b, g->i64, "k");
    LLVMValueRef f = cg_i64(g, first);
    LLVMAddIncoming(l->k, &f, &l->pre, 1);
    l->n = n;
    l->acc = cg_calloc(g, n + 1, sizeof(LLVMValueRef));
    for (uint32_t i = 0; i < n; i++) {
        l->acc[i] = LLVMBuildPhi(g->b, LLVMTypeOf(init[i]), "");
        LLVMAddIncoming(l->acc[i], &init[i], &l->pre, 1);
    }
}

/* Closes the loop with the next accumulator values; the builder continues after it. */
static void loop_end(Cg *g, Loop *l, int64_t count, LLVMValueRef *next) {
    LLVMValueRef k1 = LLVMBuildAdd(g->b, l->k, cg_i64(g, 1), "");
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(g->b), exit = cg_block(g, "acc.done");
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, k1, cg_i64(g, count), ""), l->header, exit);
    LLVMAddIncoming(l->k, &k1, &latch, 1);
    for (uint32_t i = 0; i < l->n; i++) LLVMAddIncoming(l->acc[i], &next[i], &latch, 1);
    LLVMPositionBuilderAtEnd(g->b, exit);
    for (uint32_t i = 0; i < l->n; i++) l->acc[i] = next[i];
}

bool cg_reduce_scan(Cg *g, const IrOp *op) {
    const IrType *in = op->operands[0]->type, *rt = op->results[0]->type;
    int64_t kind = op->ints[0], axis = op->ints[1];
    if (kind < RED_SUM || kind > RED_MIN || axis < 0 || axis >= in->rank)
        return cg_fail(g, op, false, "bad reduction kind or axis");
    bool scan = op->code == OP_SCAN;
    ElemType e = in->elem;
    CgValue *a = cg_get(g, op->operands[0]);
    CgValue *r = cg_new_tile(g, rt);
    int64_t n = in->shape[axis], inner = 1;
    for (int d = (int)axis + 1; d < in->rank; d++) inner *= in->shape[d];
    if (n == 0 || a->numel == 0) {
        for (uint32_t j = 0; j < r->nslots; j++) r->slots[j] = identity(g, (IrReduce)kind, e);
        cg_set(g, op->results[0], r);
        return true;
    }
    if (a->numel == 1) { /* one element: the result is that element */
        for (uint32_t j = 0; j < r->nslots; j++) r->slots[j] = a->slots[0];
        cg_set(g, op->results[0], r);
        return true;
    }
    need_scratch(g, region_bytes(g, e, a->numel));
    cg_barrier(g);
    scratch_write(g, g->smem, 0, e, a);
    cg_barrier(g);
    /* base[j]: the index of element k = 0 along the axis; pos[j] (scan): the slot's k */
    LLVMValueRef *base = cg_calloc(g, r->nslots, sizeof(LLVMValueRef));
    LLVMValueRef *pos = cg_calloc(g, r->nslots, sizeof(LLVMValueRef));
    LLVMValueRef *init = cg_calloc(g, r->nslots, sizeof(LLVMValueRef));
    LLVMValueRef vin = cg_i64(g, inner), vn = cg_i64(g, n);
    for (uint32_t j = 0; j < r->nslots; j++) {
        LLVMValueRef idx = cg_slot_index(g, r->numel, j);
        LLVMValueRef o, i;
        if (scan) {
            o = LLVMBuildUDiv(g->b, idx, LLVMBuildMul(g->b, vn, vin, ""), "");
            pos[j] = LLVMBuildURem(g->b, LLVMBuildUDiv(g->b, idx, vin, ""), vn, "");
        } else {
            o = LLVMBuildUDiv(g->b, idx, vin, "");
        }
        i = LLVMBuildURem(g->b, idx, vin, "");
        base[j] = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, o, LLVMBuildMul(g->b, vn, vin, ""), ""), i, "");
        init[j] = scratch_read(g, g->smem, 0, e, a->numel, base[j]);
    }
    LLVMValueRef *next = cg_calloc(g, r->nslots, sizeof(LLVMValueRef));
    if (n > 1) {
        Loop l;
        loop_begin(g, &l, 1, init, r->nslots);
        for (uint32_t j = 0; j < r->nslots; j++) {
            LLVMValueRef idx = LLVMBuildAdd(g->b, base[j], LLVMBuildMul(g->b, l.k, vin, ""), "");
            LLVMValueRef x = scratch_read(g, g->smem, 0, e, a->numel, idx);
            LLVMValueRef c = combine(g, (IrReduce)kind, e, l.acc[j], x);
            if (scan) c = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntULE, l.k, pos[j], ""), c, l.acc[j], "");
            next[j] = c;
        }
        loop_end(g, &l, n, next);
    } else {
        for (uint32_t j = 0; j < r->nslots; j++) next[j] = init[j];
    }
    for (uint32_t j = 0; j < r->nslots; j++) r->slots[j] = cg_round(g, e, next[j]);
    cg_set(g, op->results[0], r);
    return true;
}

/* ---- dot ---------------------------------------------------------------------------------------------- */
bool cg_dot(Cg *g, const IrOp *op) {
    const IrType *ta = op->operands[0]->type, *tb = op->operands[1]->type, *tc = op->operands[2]->type,
                 *rt = op->results[0]->type;
    if (ta->rank != 2 || tb->rank != 2 || tc->rank != 2 || rt->rank != 2)
        return cg_fail(g, op, false, "needs operands of rank 2");
    int64_t M = ta->shape[0], K = ta->shape[1], N = tb->shape[1];
    if (tb->shape[0] != K || tc->shape[0] != M || tc->shape[1] != N)
        return cg_fail(g, op, false, "the shapes do not fit the accumulator");
    ElemType ea = ta->elem, eb = tb->elem, ec = tc->elem;
    CgValue *a = cg_get(g, op->operands[0]), *b = cg_get(g, op->operands[1]), *c = cg_get(g, op->operands[2]);
    CgValue *r = cg_new_tile(g, rt);
    bool is_float = elem_is_float(ea) || elem_is_float(eb);
    /* the arithmetic: f32 (narrow float acc or int acc), f64, or integers of 32/64 bits */
    ElemType work = is_float ? ((!elem_is_float(ec) || ec.bits <= 32) ? elem_f32() : elem_f64())
                             : (elem_is_integer(ec) && ec.bits <= 32 ? elem_int(32) : elem_int(64));
    if (K == 0) {
        for (uint32_t j = 0; j < r->nslots; j++) r->slots[j] = c->slots[c->nslots == 1 ? 0 : j];
        cg_set(g, op->results[0], r);
        return true;
    }
    uint64_t off_b = region_bytes(g, ea, a->numel);
    need_scratch(g, off_b + region_bytes(g, eb, b->numel));
    cg_barrier(g);
    scratch_write(g, g->smem, 0, ea, a);
    scratch_write(g, g->smem, off_b, eb, b);
    cg_barrier(g);
    /* operand values in the work type: floats exactly, ints through double (as the VM) */
    LLVMValueRef *init = cg_calloc(g, r->nslots, sizeof(LLVMValueRef));
    LLVMValueRef *row = cg_calloc(g, r->nslots, sizeof(LLVMValueRef));
    LLVMValueRef *col = cg_calloc(g, r->nslots, sizeof(LLVMValueRef));
    for (uint32_t j = 0; j < r->nslots; j++) {
        LLVMValueRef idx = cg_slot_index(g, r->numel, j);
        row[j] = LLVMBuildUDiv(g->b, idx, cg_i64(g, N), "");
        col[j] = LLVMBuildURem(g->b, idx, cg_i64(g, N), "");
        LLVMValueRef cv = c->slots[c->nslots == 1 ? 0 : j];
        init[j] = is_float ? cg_convert(g, elem_f64(), cg_convert(g, ec, cv, elem_f64()), work)
                           : LLVMConstNull(cg_reg_type(g, work));
    }
    Loop l;
    loop_begin(g, &l, 0, init, r->nslots);
    LLVMValueRef *next = cg_calloc(g, r->nslots, sizeof(LLVMValueRef));
    for (uint32_t j = 0; j < r->nslots; j++) {
        LLVMValueRef ia = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, row[j], cg_i64(g, K), ""), l.k, "");
        LLVMValueRef ib = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, l.k, cg_i64(g, N), ""), col[j], "");
        LLVMValueRef x = scratch_read(g, g->smem, 0, ea, a->numel, ia);
        LLVMValueRef y = scratch_read(g, g->smem, off_b, eb, b->numel, ib);
        if (is_float) {
            x = cg_convert(g, elem_f64(), cg_convert(g, ea, x, elem_f64()), work);
            y = cg_convert(g, elem_f64(), cg_convert(g, eb, y, elem_f64()), work);
            next[j] = LLVMBuildFAdd(g->b, l.acc[j], LLVMBuildFMul(g->b, x, y, ""), "");
        } else {
            x = cg_convert(g, ea, x, work);
            y = cg_convert(g, eb, y, work);
            next[j] = LLVMBuildAdd(g->b, l.acc[j], LLVMBuildMul(g->b, x, y, ""), "");
        }
    }
    loop_end(g, &l, K, next);
    for (uint32_t j = 0; j < r->nslots; j++) {
        LLVMValueRef s = next[j], cv = c->slots[c->nslots == 1 ? 0 : j];
        if (is_float) {
            r->slots[j] = cg_convert(g, elem_f64(), cg_convert(g, work, s, elem_f64()), ec);
        } else if (elem_is_float(ec)) {
            LLVMValueRef sum = cg_convert(g, work, s, ec);
            r->slots[j] = cg_binary(g, OP_ADD, 0, ec, cv, sum);
        } else {
            r->slots[j] = cg_convert(g, work, LLVMBuildAdd(g->b, s, cg_convert(g, ec, cv, work), ""), ec);
        }
    }
    cg_set(g, op->results[0], r);
    return true;
}

/* ---- explicit shared tiles ------------------------------------------------------------------------------ */
bool cg_shared_op(Cg *g, const IrOp *op) {
    if (op->code == OP_SHARED_ALLOC) {
        const IrType *st = op->results[0]->type;
        if (st->kind != TY_SHARED) return cg_fail(g, op, false, "the result is not a shared tile");
        int64_t numel = type_numel(st);
        uint64_t bytes = region_bytes(g, st->elem, numel);
        char name[32];
        snprintf(name, sizeof name, "tile_shared_%u", g->shared_count++);
        LLVMValueRef gv = LLVMAddGlobalInAddressSpace(g->module, LLVMArrayType2(g->i8, bytes), name, 3);
        LLVMSetInitializer(gv, LLVMGetUndef(LLVMArrayType2(g->i8, bytes)));
        LLVMSetLinkage(gv, LLVMInternalLinkage);
        LLVMSetAlignment(gv, 16);
        CgValue *cv = cg_calloc(g, 1, sizeof *cv);
        cv->kind = CV_SHARED;
        cv->data = gv;
        cv->numel = numel;
        /* zeroed, as the VM's shared tiles are */
        CgValue zero = {.kind = CV_TILE, .numel = numel, .nslots = cg_slot_count(g, numel)};
        zero.slots = cg_calloc(g, zero.nslots, sizeof(LLVMValueRef));
        for (uint32_t j = 0; j < zero.nslots; j++) zero.slots[j] = LLVMConstNull(cg_reg_type(g, st->elem));
        cg_barrier(g);
        scratch_write(g, gv, 0, st->elem, &zero);
        cg_barrier(g);
        cg_set(g, op->results[0], cv);
        return true;
    }
    CgValue *s = cg_get(g, op->operands[0]);
    if (s->kind != CV_SHARED) return cg_fail(g, op, false, "operand 0 is not a shared tile");
    ElemType e = op->operands[0]->type->elem;
    if (op->code == OP_SHARED_STORE) {
        CgValue *v = cg_get(g, op->operands[1]);
        if (v->kind != CV_TILE || v->numel != s->numel || !elem_eq(op->operands[1]->type->elem, e))
            return cg_fail(g, op, false, "the tile does not match the shared tile");
        cg_barrier(g);
        scratch_write(g, s->data, 0, e, v);
        cg_barrier(g);
        return true;
    }
    CgValue *r = cg_new_tile(g, op->results[0]->type);
    if (r->numel != s->numel) return cg_fail(g, op, false, "the result does not match the shared tile");
    for (uint32_t j = 0; j < r->nslots; j++)
        r->slots[j] = scratch_read(g, s->data, 0, e, s->numel, cg_slot_index(g, r->numel, j));
    cg_set(g, op->results[0], r);
    return true;
}
