/*
 * vm_tma_store.c: the VM's TMA stores (store_tma, store_wait; ops.def, docs/IR.md).
 *
 * On the GPU a store_tma is a bulk group that the TMA unit runs while the block goes on: it reads
 * its shared source until cp.async.bulk.wait_group.read says it is done, and it clips the box to
 * the tensor (elements outside are not written). The VM writes the box at once, with that rule,
 * and records the source as read by a pending group (VmPending.store) until a store_wait lets the
 * group go. What would be a race on the GPU is an error here: a write of the source (shared_store,
 * a copy into it) while its group is pending (vm_store_tma_allows_write, which operand_shared calls
 * for every write), and a block that ends with a group pending (vm_store_tma_block_end).
 */
#include "vm.h"

#include <inttypes.h>

bool vm_store_tma_allows_write(VmThread *th, const IrOp *op, const VmTile *buffer, int64_t offset, int64_t numel) {
    for (size_t p = 0; p < th->pending.len; p++) {
        const VmPending *c = &th->pending.data[p];
        if (c->store && c->buffer == buffer && c->offset < offset + numel && offset < c->offset + c->numel)
            return vm_error(th, op, "writes shared memory that a store_tma is still reading (%s store_wait "
                            "between them)", "a missing or too shallow");
    }
    return true;
}

bool vm_store_tma_block_end(VmThread *th, const IrOp *last) {
    for (size_t p = 0; p < th->pending.len; p++)
        if (th->pending.data[p].store)
            return vm_error(th, last, "the block ends while a store_tma still reads shared memory (no store_wait "
                            "after it)");
    return true;
}

/* store_tma (tensor, origin..., src): src's elements written at origin + their coordinate (the
 * leading dimensions of a tensor of higher rank at their origin), those outside the tensor not. */
bool vm_exec_store_tma(VmThread *th, VmFrame *fr, const IrOp *op) {
    const VmSlot *ts = op->noperands ? vm_value_slot(th, fr, op, op->operands[0]) : NULL;
    if (!ts) return op->noperands ? false : vm_error(th, op, "missing tensor operand");
    const VmTensor *t = ts->tensor;
    if (!t) return vm_error(th, op, "operand 0 is not a tensor");
    uint32_t si = 1 + (uint32_t)t->rank;
    if (op->noperands != si + 1) return vm_error(th, op, "a tensor of rank %d needs %d origins", t->rank, t->rank);
    const IrType *st = op->operands[si]->type;
    if (st->kind != TY_SHARED || st->rank != 2 || t->rank < 2)
        return vm_error(th, op, "the source must be a 2-d shared tile and the tensor of rank 2 or more");
    const VmTile *src = vm_operand_tile(th, fr, op, si);
    if (!src) return false;
    const VmSlot *ss = &fr->slots[op->operands[si]->id];
    int64_t n = st->shape[0] * st->shape[1], origin[IR_MAX_RANK];
    if (ss->offset < 0 || ss->offset + n > src->numel) return vm_error(th, op, "the source is outside its buffer");
    for (int d = 0; d < t->rank; d++) {
        const VmTile *o = vm_operand_tile(th, fr, op, 1 + (uint32_t)d);
        if (!o) return false;
        origin[d] = o->data[0].i;
    }
    int64_t lead_off = 0;
    for (int d = 0; d < t->rank - 2; d++) {
        if (origin[d] < 0 || origin[d] >= t->shape[d]) n = 0; /* the whole box is outside */
        lead_off += origin[d] * t->strides[d];
    }
    int r = t->rank - 2, c = t->rank - 1;
    for (int64_t p = 0; p < n; p++) {
        int64_t i = origin[r] + p / st->shape[1], j = origin[c] + p % st->shape[1];
        if (i < 0 || i >= t->shape[r] || j < 0 || j >= t->shape[c]) continue;
        vm_write_element(t->data, t->elem, lead_off + i * t->strides[r] + j * t->strides[c], src->data[ss->offset + p]);
    }
    vec_push(&th->pending, ((VmPending){.buffer = ss->tile, .offset = ss->offset,
                                        .numel = st->shape[0] * st->shape[1], .store = true}));
    return true;
}

/* store_wait N: every store_tma group but the N most recent has read its source. */
bool vm_exec_store_wait(VmThread *th, VmFrame *fr, const IrOp *op) {
    (void)fr;
    int64_t keep = op->nints ? op->ints[0] : 0;
    if (keep < 0) return vm_error(th, op, "negative count of stores in flight");
    size_t groups = 0;
    for (size_t p = 0; p < th->pending.len; p++) groups += th->pending.data[p].store;
    size_t drop = (size_t)keep < groups ? groups - (size_t)keep : 0, kept = 0;
    for (size_t p = 0; p < th->pending.len; p++) {
        const VmPending *c = &th->pending.data[p];
        if (c->store && drop > 0) drop--;
        else th->pending.data[kept++] = *c;
    }
    th->pending.len = kept;
    return true;
}
