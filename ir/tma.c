/*
 * tma.c: the tensor maps of a kernel's copy_tma and store_tma ops (see tma.h): a walk over the body that lists
 * each distinct (parameter, box, swizzle) once, in order of first use.
 */
#include "ir/tma.h"

#include "ir/layout.h"

/* The map copy_tma op needs (false: its tensor is not a parameter of rank 2 to 5, or its
 * destination is not 2-d). The destination's rows and columns are the box's last two dimensions;
 * the tensor's leading dimensions (indexed by scalars in the load) get a box of 1. */
static bool map_for(const IrFunction *f, const IrOp *op, IrTmaMap *out) {
    const IrValue *x = op->operands[0];
    const IrType *tt = x->type;
    /* copy_tma (tensor, origins, dst, mbarriers, stage) and store_tma (tensor, origins, src) */
    uint32_t operands = (uint32_t)tt->rank + (op->code == OP_STORE_TMA ? 2 : 4 + (ir_copy_tma_multicast(op) ? 1 : 0));
    if (tt->kind != TY_TENSOR || tt->rank < 2 || tt->rank > IR_TMA_MAX_RANK || x->def || x->region != f->body ||
        op->noperands != operands)
        return false;
    const IrType *dt = op->operands[1 + tt->rank]->type;
    if (dt->kind != TY_SHARED || dt->rank != 2) return false;
    const SharedLayout *l = dt->shared;
    /* a ring split in column blocks (wgmma operands) is copied a block per box */
    int64_t cols = l && l->split[1] ? l->split[1] : dt->shape[1];
    *out = (IrTmaMap){.param = (int)x->index, .rank = tt->rank, .elem_bytes = (elem_storage_bits(tt->elem) + 7) / 8,
                      .swizzle = l && l->swizzle.bits ? 16 << l->swizzle.bits : 0};
    for (int d = 0; d < tt->rank - 2; d++) out->box[d] = 1;
    out->box[tt->rank - 2] = dt->shape[0];
    out->box[tt->rank - 1] = cols;
    return true;
}

static bool same_map(const IrTmaMap *a, const IrTmaMap *b) {
    if (a->param != b->param || a->rank != b->rank || a->swizzle != b->swizzle || a->elem_bytes != b->elem_bytes)
        return false;
    for (int d = 0; d < a->rank; d++)
        if (a->box[d] != b->box[d]) return false;
    return true;
}

int ir_tma_map_of(const IrFunction *f, const IrOp *op, const IrTmaMap *maps, int n) {
    IrTmaMap m;
    if ((op->code != OP_COPY_TMA && op->code != OP_STORE_TMA) || !map_for(f, op, &m)) return -1;
    for (int i = 0; i < n; i++)
        if (same_map(&maps[i], &m)) return i;
    return -1;
}

typedef struct Walk {
    const IrFunction *f;
    IrTmaMap *maps;
    int n;
} Walk;

static bool add_map(IrOp *op, void *ctx) {
    Walk *w = ctx;
    if (op->code != OP_COPY_TMA && op->code != OP_STORE_TMA) return true;
    IrTmaMap m;
    if (!map_for(w->f, op, &m)) {
        w->n = -1;
        return false;
    }
    if (ir_tma_map_of(w->f, op, w->maps, w->n) >= 0) return true;
    if (w->n == IR_MAX_TMA_MAPS) {
        w->n = -1;
        return false;
    }
    w->maps[w->n++] = m;
    return true;
}

int ir_tma_maps(const IrFunction *f, IrTmaMap *maps) {
    Walk w = {.f = f, .maps = maps};
    if (f->body) ir_walk(f->body, add_map, &w);
    return w.n;
}
