/*
 * codegen_atomic.c: atomics that return the old values (atomic_rmw, atomic_cas) and fence, for
 * the GPU code generator.
 *
 * The access runs in the layout of the result (a tile of old values in the access shape). Every
 * index and value operand is first put into that layout (cg_in_layout), then each slot does one
 * LLVM atomicrmw or cmpxchg at GPU scope (syncscope "device", PTX .gpu) with the op's memory
 * order (relaxed: monotonic, acq_rel: acq_rel) on the element the indices name, guarded by the
 * bounds check; an element out of bounds does nothing and reads 0. An acq_rel op is a barrier and
 * fence.acq_rel.gpu, the atomics, then a fence and a barrier: the order covers the accesses of
 * every thread of the block, as the VM's does (and NVPTX ignores the order of an atomicrmw, so
 * the fences carry it). A layout with replicas (or a
 * result of one element, held by every thread) has several threads per element: only the
 * replica-0 owner does the atomic, and the old values reach the other replicas through the
 * shared scratch buffer (barrier, owners store at row-major offsets, barrier, everyone loads).
 * On a shared tile (the language's shared<T>[...]) the element's address comes from
 * cg_shared_addr and LLVM emits atom.shared.* with the same orders and guards.
 * LLVM's NVPTX backend picks the instruction: atom.add/min/max/and/or/exch/cas for 32- and
 * 64-bit integers, atom.add.f32/f64, atom.add.noftz.f16 (sm_70+) and .bf16 (sm_90; sm_80 gets a
 * compare-and-swap loop), and a compare-and-swap loop for float max and min, which keep the
 * VM's NaN-propagating semantics.
 */
#include "codegen.h"

#include <string.h>

static unsigned gpu_scope(Cg *g) { return LLVMGetSyncScopeID(g->ctx, "device", strlen("device")); }

static LLVMAtomicOrdering ordering_of(int64_t order) {
    return order == MEM_ACQ_REL ? LLVMAtomicOrderingAcquireRelease : LLVMAtomicOrderingMonotonic;
}

static LLVMAtomicRMWBinOp rmw_binop(IrAtomic kind, ElemType e) {
    bool is_float = e.kind == EK_FLOAT, is_signed = e.kind == EK_INT;
    switch (kind) {
    case ATOMIC_ADD: return is_float ? LLVMAtomicRMWBinOpFAdd : LLVMAtomicRMWBinOpAdd;
    case ATOMIC_MAX: return is_float ? LLVMAtomicRMWBinOpFMaximum : is_signed ? LLVMAtomicRMWBinOpMax : LLVMAtomicRMWBinOpUMax;
    case ATOMIC_MIN: return is_float ? LLVMAtomicRMWBinOpFMinimum : is_signed ? LLVMAtomicRMWBinOpMin : LLVMAtomicRMWBinOpUMin;
    case ATOMIC_AND: return LLVMAtomicRMWBinOpAnd;
    case ATOMIC_OR: return LLVMAtomicRMWBinOpOr;
    case ATOMIC_XCHG: return LLVMAtomicRMWBinOpXchg;
    }
    tile_unreachable();
}

/* One guarded atomic on element `off` of t (a tensor: off in elements; a shared tile: off is
 * the element's index per dimension); the old value in registers (0 where mask is off). */
static LLVMValueRef one_atomic(Cg *g, const IrOp *op, const CgValue *t, LLVMValueRef *off, LLVMValueRef mask,
                               LLVMValueRef v0, LLVMValueRef v1) {
    const IrType *tt = op->operands[0]->type;
    ElemType e = tt->elem;
    LLVMTypeRef mt = cg_mem_type(g, e), rt = cg_reg_type(g, e);
    LLVMBasicBlockRef from = LLVMGetInsertBlock(g->b), body = cg_block(g, "atom.do"), join = cg_block(g, "atom.join");
    LLVMBuildCondBr(g->b, mask, body, join);
    LLVMPositionBuilderAtEnd(g->b, body);
    LLVMValueRef ptr = t->kind == CV_SHARED ? cg_shared_addr(g, t->data, tt->shared, e, tt->rank, tt->shape, off)
                                            : LLVMBuildGEP2(g->b, mt, t->data, off, 1, "");
    LLVMAtomicOrdering order = ordering_of(op->ints[1]);
    LLVMValueRef old;
    if (op->code == OP_ATOMIC_CAS) {
        LLVMAtomicOrdering fail = order == LLVMAtomicOrderingAcquireRelease ? LLVMAtomicOrderingAcquire : order;
        LLVMValueRef pair = LLVMBuildAtomicCmpXchgSyncScope(g->b, ptr, cg_to_mem(g, e, v0), cg_to_mem(g, e, v1), order,
                                                            fail, gpu_scope(g));
        old = LLVMBuildExtractValue(g->b, pair, 0, "");
    } else {
        /* acq_rel comes from the fences around the whole op (NVPTX drops the order of atomicrmw) */
        old = LLVMBuildAtomicRMWSyncScope(g->b, rmw_binop((IrAtomic)op->ints[0], e), ptr, cg_to_mem(g, e, v0),
                                          LLVMAtomicOrderingMonotonic, gpu_scope(g));
    }
    LLVMValueRef value = cg_from_mem(g, e, old);
    LLVMBasicBlockRef done = LLVMGetInsertBlock(g->b);
    LLVMBuildBr(g->b, join);
    LLVMPositionBuilderAtEnd(g->b, join);
    LLVMValueRef phi = LLVMBuildPhi(g->b, rt, "");
    LLVMValueRef zero = LLVMConstNull(rt);
    LLVMAddIncoming(phi, &zero, &from, 1);
    LLVMAddIncoming(phi, &value, &done, 1);
    return phi;
}

/* atomic_rmw (tensor, idx..., value) and atomic_cas (tensor, idx..., expected, desired). */
bool cg_atomic_result(Cg *g, const IrOp *op) {
    CgValue *t = cg_get(g, op->operands[0]);
    const IrType *tt = op->operands[0]->type, *rt = op->results[0]->type;
    uint32_t nvalues = op->code == OP_ATOMIC_CAS ? 2 : 1;
    bool shared = t->kind == CV_SHARED;
    if ((t->kind != CV_TENSOR && !shared) || op->noperands != 1 + (uint32_t)tt->rank + nvalues || op->nints < 2)
        return cg_fail(g, op, false, "needs a tensor or a shared tile, one index per dimension and its values");
    if (!cg_elem_supported(tt->elem)) return cg_fail(g, op, true, "atomics on this element type");
    const Layout *layout = cg_layout_of(g, op->results[0]);
    CgValue *in[IR_MAX_RANK + 2];
    for (uint32_t i = 1; i < op->noperands; i++) {
        in[i - 1] = cg_in_layout(g, op, op->operands[i], layout, rt->rank, rt->shape);
        if (!in[i - 1]) return false;
    }
    CgValue *r = cg_new_tile_for(g, op->results[0]);
    LLVMValueRef owner = cg_owner(g, layout);
    bool acq_rel = op->ints[1] == MEM_ACQ_REL;
    if (acq_rel) { /* release: every thread's earlier accesses, then this op */
        cg_barrier(g);
        LLVMBuildFenceSyncScope(g->b, LLVMAtomicOrderingAcquireRelease, gpu_scope(g), "");
    }
    for (uint32_t j = 0; j < r->nslots; j++) {
        LLVMValueRef off = cg_i64(g, 0), mask = owner ? owner : LLVMConstInt(g->i1, 1, 0), index[IR_MAX_RANK];
        for (int d = 0; d < tt->rank; d++) {
            LLVMValueRef i = cg_to_i64(g, op->operands[1 + d]->type->elem, in[d]->slots[j]);
            LLVMValueRef size = shared ? cg_i64(g, tt->shape[d]) : t->size[d];
            mask = LLVMBuildAnd(g->b, mask, LLVMBuildICmp(g->b, LLVMIntULT, i, size, ""), "");
            index[d] = i;
            if (!shared) off = LLVMBuildAdd(g->b, off, LLVMBuildMul(g->b, i, t->stride[d], ""), "");
        }
        LLVMValueRef v0 = in[tt->rank]->slots[j], v1 = nvalues == 2 ? in[tt->rank + 1]->slots[j] : NULL;
        r->slots[j] = one_atomic(g, op, t, shared ? index : &off, mask, v0, v1);
    }
    if (acq_rel) { /* acquire: this op, then every thread's later accesses */
        LLVMBuildFenceSyncScope(g->b, LLVMAtomicOrderingAcquireRelease, gpu_scope(g), "");
        cg_barrier(g);
    }
    if (owner) {
        /* replicas: the owners' old values to everyone through the scratch buffer */
        ElemType e = rt->elem;
        cg_need_scratch(g, (uint64_t)(r->numel > 0 ? r->numel : 1) * (uint64_t)cg_elem_bytes(e) + 16);
        LLVMValueRef idx[64], *idxs = r->nslots <= 64 ? idx : cg_calloc(g, r->nslots, sizeof *idxs);
        cg_barrier(g);
        for (uint32_t j = 0; j < r->nslots; j++) {
            LLVMValueRef k = cg_i64(g, 0);
            if (layout) {
                LLVMValueRef coords[IR_MAX_RANK];
                cg_slot_coords(g, layout, j, coords);
                int64_t stride = 1;
                for (int d = rt->rank - 1; d >= 0; d--) {
                    k = LLVMBuildAdd(g->b, k, LLVMBuildMul(g->b, coords[d], cg_i64(g, stride), ""), "");
                    stride *= rt->shape[d];
                }
            }
            idxs[j] = k;
            LLVMBasicBlockRef body = cg_block(g, "atom.share"), join = cg_block(g, "atom.shared");
            LLVMBuildCondBr(g->b, owner, body, join);
            LLVMPositionBuilderAtEnd(g->b, body);
            LLVMValueRef byte = LLVMBuildMul(g->b, k, cg_i64(g, cg_elem_bytes(e)), "");
            LLVMValueRef st = LLVMBuildStore(g->b, cg_to_mem(g, e, r->slots[j]),
                                             LLVMBuildGEP2(g->b, g->i8, g->smem, &byte, 1, ""));
            LLVMSetAlignment(st, (unsigned)cg_elem_bytes(e));
            LLVMBuildBr(g->b, join);
            LLVMPositionBuilderAtEnd(g->b, join);
        }
        cg_barrier(g);
        for (uint32_t j = 0; j < r->nslots; j++) r->slots[j] = cg_scratch_read(g, g->smem, 0, e, idxs[j]);
    }
    cg_set(g, op->results[0], r);
    return true;
}

/* fence: the block's threads meet (bar.sync), then fence.acq_rel.gpu, so that the fence orders
 * the accesses of the whole block, as on the VM (a relaxed fence orders nothing). */
bool cg_fence(Cg *g, const IrOp *op) {
    if (op->nints < 1) return cg_fail(g, op, false, "fence without a memory order");
    if (op->ints[0] != MEM_ACQ_REL) return true;
    cg_barrier(g);
    LLVMBuildFenceSyncScope(g->b, LLVMAtomicOrderingAcquireRelease, gpu_scope(g), "");
    cg_barrier(g);
    return true;
}
