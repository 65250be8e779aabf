/*
 * smem_plan.c: places every shared buffer of a kernel in the block's dynamic shared memory.
 *
 * Each shared_alloc gets its byte offset as ints[0] (ints[1], when present, says whether the
 * buffer starts uninitialized); the code generator addresses the buffer at that offset of the one
 * dynamic shared array and puts its own scratch (layout conversions, reductions across warps)
 * after the last byte any buffer uses. Buffers are aligned to 1024 bytes when their layout is
 * swizzled (the swizzle repeats every 1024 bytes at most, and TMA's 128-byte swizzle needs that
 * alignment) and to 16 bytes otherwise.
 *
 * Offsets follow liveness: a buffer lives from its shared_alloc to its last use (through the
 * views and transposed views made of it), and a use inside a loop that the alloc is outside of
 * keeps it alive to the end of that loop. Buffers are placed in program order, each at the lowest
 * aligned offset that no buffer alive at the same time occupies (first fit), so the rings of two
 * pipelined loops one after the other share their bytes. Where a buffer takes bytes that an
 * earlier, dead buffer used, other warps may still be reading those: a `barrier` is inserted
 * before its shared_alloc. That is only done for allocs in the kernel's top-level region (every
 * thread reaches them); a buffer allocated inside a loop or branch gets bytes of its own.
 *
 * A total past the target's shared memory (PassOptions.smem_bytes) is an error at the first
 * buffer that passes it (the frontend bounds the language's shared tiles by the largest target
 * already; this is the per-target check; the stages pass keeps its rings within the budget).
 */
#include "passes.h"

#include <stdlib.h>

#include "ir/layout.h"

typedef struct Buf {
    IrOp *alloc;
    int64_t start, end;    /* program positions: the alloc, the last use (loops extended) */
    int64_t last_use;      /* the last use's own position */
    int64_t offset, bytes;
} Buf;

typedef struct Plan {
    VEC(Buf) bufs;
    int32_t *buf_of;       /* by value id: the buffer a shared value views, + 1 (0: none) */
    uint32_t nvalues;
    int64_t pos;
} Plan;

int64_t smem_align(const IrType *t) { return t->shared && t->shared->swizzle.bits ? 1024 : 16; }

static int32_t buffer_of(const Plan *p, const IrValue *v) { return v->id < p->nvalues ? p->buf_of[v->id] - 1 : -1; }

/* Numbers the ops of r in program order, records allocs and the uses of their buffers, and extends
 * the lives of buffers used inside a loop to the loop's end. */
static void walk(Plan *p, IrRegion *r) {
    for (IrOp *op = r->first; op; op = op->next) {
        int64_t at = p->pos++;
        for (uint32_t i = 0; i < op->noperands; i++) {
            int32_t b = buffer_of(p, op->operands[i]);
            if (b < 0) continue;
            Buf *x = &p->bufs.data[b];
            if (at > x->last_use) x->last_use = at;
            if (at > x->end) x->end = at;
            /* a view or a transposed view is the same buffer */
            if ((op->code == OP_SHARED_VIEW || op->code == OP_TRANSPOSE) && op->nresults == 1 &&
                op->results[0]->id < p->nvalues)
                p->buf_of[op->results[0]->id] = b + 1;
        }
        /* the TMA unit reads a store_tma's source until a store_wait, which names no buffer: the
         * source lives to the kernel's end */
        if (op->code == OP_STORE_TMA && op->noperands) {
            int32_t b = buffer_of(p, op->operands[op->noperands - 1]);
            if (b >= 0) p->bufs.data[b].end = INT64_MAX - 1;
        }
        if (op->code == OP_SHARED_ALLOC && op->nresults == 1 && op->results[0]->id < p->nvalues) {
            const IrType *t = op->results[0]->type;
            vec_push(&p->bufs, ((Buf){.alloc = op, .start = at, .end = at, .last_use = at, .bytes = type_bytes(t)}));
            p->buf_of[op->results[0]->id] = (int32_t)p->bufs.len;
        }
        for (uint32_t k = 0; k < op->nregions; k++) walk(p, op->regions[k]);
        if (op->code == OP_FOR || op->code == OP_WHILE)
            for (size_t b = 0; b < p->bufs.len; b++) {
                Buf *x = &p->bufs.data[b];
                if (x->start < at && x->last_use > at && x->end < p->pos - 1) x->end = p->pos - 1;
            }
    }
}

static bool overlaps(int64_t a0, int64_t a1, int64_t b0, int64_t b1) { return a0 < b1 && b0 < a1; }

/* First fit: the lowest offset (aligned) whose bytes no buffer alive during b's life occupies. */
static int64_t first_fit(const Plan *p, size_t placed, const Buf *b, int64_t align) {
    int64_t off = 0;
    for (bool moved = true; moved;) {
        moved = false;
        for (size_t i = 0; i < placed; i++) {
            const Buf *o = &p->bufs.data[i];
            if (!overlaps(b->start, b->end + 1, o->start, o->end + 1)) continue;
            if (!overlaps(off, off + b->bytes, o->offset, o->offset + o->bytes)) continue;
            off = (o->offset + o->bytes + align - 1) / align * align;
            moved = true;
        }
    }
    return off;
}

/* Whether a barrier already separates op from every earlier memory access (only allocs and pure
 * ops lie between them). */
static bool barrier_before(const IrOp *op) {
    for (const IrOp *o = op->prev; o; o = o->prev) {
        if (o->code == OP_BARRIER) return true;
        if (o->nregions || (o->code != OP_SHARED_ALLOC && !(ir_op_info[o->code].flags & F_PURE))) return false;
    }
    return false;
}

static bool plan_kernel(IrFunction *f, int64_t budget, DiagList *d) {
    Plan p = {.nvalues = f->next_value_id + 1};
    p.buf_of = xcalloc(p.nvalues, sizeof *p.buf_of);
    walk(&p, f->body);
    const IrOp *over = NULL;
    int64_t total = 0;
    for (size_t i = 0; i < p.bufs.len; i++) {
        Buf *b = &p.bufs.data[i];
        const IrType *t = b->alloc->results[0]->type;
        int64_t align = smem_align(t);
        bool top = b->alloc->parent == f->body;
        if (!top) {
            /* bytes no other buffer ever had: live for the whole kernel as far as placement goes */
            b->start = 0, b->end = INT64_MAX - 1;
        }
        b->offset = first_fit(&p, i, b, align);
        bool reused = false;
        for (size_t j = 0; j < i; j++) {
            const Buf *o = &p.bufs.data[j];
            if (overlaps(b->offset, b->offset + b->bytes, o->offset, o->offset + o->bytes)) reused = true;
        }
        if (reused && !barrier_before(b->alloc)) {
            /* every warp is done with the dead buffer's bytes before anyone writes them again */
            IrBuilder bld;
            ir_builder_before(&bld, b->alloc);
            bld.loc = b->alloc->loc;
            ir_build(&bld, OP_BARRIER, NULL, 0, NULL, 0);
        }
        b->alloc->ints[0] = b->offset;
        if (b->alloc->nints < 1) b->alloc->nints = 1;
        if (b->offset + b->bytes > budget && !over) over = b->alloc, total = b->offset + b->bytes;
    }
    if (over && d)
        diag_error(d, over->loc, "kernel '%s': its shared buffers need %lld bytes, more than the %lld bytes of "
                   "shared memory a block has on this target", f->name, (long long)total, (long long)budget);
    bool any = p.bufs.len > 0;
    vec_free(&p.bufs);
    free(p.buf_of);
    return any;
}

bool pass_smem_plan(IrModule *m, const PassOptions *opt, DiagList *d) {
    static const Target sm90a = {.sm = 90, .arch_specific = true};
    int64_t budget = target_smem_bytes(opt ? &opt->target : &sm90a);
    bool changed = false;
    for (IrFunction *f = m->functions; f; f = f->next)
        if (f->is_kernel && f->body) changed |= plan_kernel(f, budget, d);
    return changed;
}
