/*
 * smem_plan.c: places every shared buffer of a kernel in the block's dynamic shared memory.
 *
 * Each shared_alloc gets its byte offset as ints[0] (ints[1], when present, says whether the
 * buffer starts uninitialized); the code generator addresses the buffer at
 * that offset of the one dynamic shared array and puts its own scratch (layout conversions,
 * reductions across warps) after the last buffer. Buffers are placed one after another in program
 * order, aligned to 1024 bytes when their layout is swizzled (the swizzle repeats every 1024 bytes
 * at most, and TMA's 128-byte swizzle needs that alignment) and to 16 bytes otherwise. Buffers
 * whose lives do not overlap could share bytes; no kernel needs that yet, so every buffer keeps
 * its own (the total is what the kernel asks for at launch). A total past the target's shared
 * memory (PassOptions.smem_bytes) is an error at the first buffer that passes it (the frontend
 * bounds the language's shared tiles by the largest target already; this is the per-target check).
 */
#include "passes.h"

#include "ir/layout.h"

typedef struct Plan {
    int64_t next;
    const IrOp *over;       /* the first buffer that ends past the budget */
    int64_t budget;
} Plan;

int64_t smem_align(const IrType *t) { return t->shared && t->shared->swizzle.bits ? 1024 : 16; }

static bool place(IrOp *op, void *ctx) {
    if (op->code != OP_SHARED_ALLOC || op->nresults != 1) return true;
    Plan *p = ctx;
    const IrType *t = op->results[0]->type;
    int64_t align = smem_align(t);
    p->next = (p->next + align - 1) / align * align;
    op->ints[0] = p->next;
    if (op->nints < 1) op->nints = 1;
    p->next += type_bytes(t);
    if (p->next > p->budget && !p->over) p->over = op;
    return true;
}

bool pass_smem_plan(IrModule *m, const PassOptions *opt, DiagList *d) {
    bool changed = false;
    for (IrFunction *f = m->functions; f; f = f->next) {
        if (!f->is_kernel || !f->body) continue;
        Plan p = {.budget = opt && opt->smem_bytes > 0 ? opt->smem_bytes : 227 * 1024};
        ir_walk(f->body, place, &p);
        changed |= p.next > 0;
        /* the user's shared tiles (the stages pass keeps its rings within the budget) */
        if (p.over && d)
            diag_error(d, p.over->loc, "kernel '%s': its shared buffers need %lld bytes, more than the %lld bytes of "
                       "shared memory a block has on this target", f->name, (long long)p.next, (long long)p.budget);
    }
    return changed;
}
