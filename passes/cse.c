/*
 * cse.c: common subexpression elimination of pure ops over structured regions.
 *
 * In structured IR an op dominates every later op of its region and everything nested in
 * them, so dominance is scoping: the walk keeps a stack of available ops, pushes each pure
 * op after visiting it, and on leaving a region pops what the region pushed. An op equal to
 * an available one (same opcode, operands, attributes and result type; operands in either
 * order for commutative ops) has its uses redirected to the earlier op and is removed.
 * Ops that touch memory or own regions are never merged: two loads of one address may read
 * different values when a store lies between them. Lookup hashes the op and scans the stack
 * from the top; kernels are small enough that a scan beats maintaining a scoped hash table.
 */
#include "passes.h"

#include <stdlib.h>
#include <string.h>

typedef struct Available {
    uint64_t hash;
    IrOp *op;
} Available;

typedef struct Cse {
    VEC(Available) stack;
    bool changed;
} Cse;

static bool is_candidate(const IrOp *op) {
    unsigned flags = ir_op_info[op->code].flags;
    return (flags & F_PURE) && !(flags & F_MEM) && op->nregions == 0 && op->nresults == 1;
}

static uint64_t hash_ptr(const void *p, uint64_t seed) { return hash_bytes(&p, sizeof p, seed); }

static uint64_t hash_op(const IrOp *op) {
    uint64_t h = hash_bytes(&op->code, sizeof op->code, 14695981039346656037ull);
    h = hash_ptr(op->results[0]->type, h);
    h = hash_bytes(op->ints, op->nints * sizeof op->ints[0], h);
    if (op->code == OP_CONST) {
        h = hash_bytes(&op->value.is_float, sizeof op->value.is_float, h);
        h = op->value.is_float ? hash_bytes(&op->value.f, sizeof op->value.f, h)
                               : hash_bytes(&op->value.i, sizeof op->value.i, h);
    }
    /* Commutative ops hash their operands in an order-independent way. */
    uint64_t operands = 0;
    for (uint32_t i = 0; i < op->noperands; i++) {
        uint64_t x = hash_ptr(op->operands[i], 1469598103934665603ull);
        operands = (ir_op_info[op->code].flags & F_COMM) ? operands + x : hash_ptr(op->operands[i], operands ^ h);
    }
    return h ^ (operands * 1099511628211ull);
}

static bool same_const(const IrConst *a, const IrConst *b) {
    if (a->is_float != b->is_float) return false;
    /* Bitwise, so that -0.0 and +0.0 (and NaN payloads) stay apart. */
    return a->is_float ? memcmp(&a->f, &b->f, sizeof a->f) == 0 : a->i == b->i;
}

static bool equal_ops(const IrOp *a, const IrOp *b) {
    if (a->code != b->code || a->noperands != b->noperands || a->nints != b->nints ||
        a->results[0]->type != b->results[0]->type || a->callee != b->callee)
        return false;
    for (uint32_t i = 0; i < a->nints; i++)
        if (a->ints[i] != b->ints[i]) return false;
    if (a->code == OP_CONST && !same_const(&a->value, &b->value)) return false;
    bool same = true;
    for (uint32_t i = 0; i < a->noperands && same; i++) same = a->operands[i] == b->operands[i];
    if (same) return true;
    return (ir_op_info[a->code].flags & F_COMM) && a->noperands == 2 && a->operands[0] == b->operands[1] &&
           a->operands[1] == b->operands[0];
}

static void cse_region(Cse *c, IrRegion *r) {
    size_t mark = c->stack.len;
    for (IrOp *op = r->first, *next; op; op = next) {
        next = op->next;
        for (uint32_t i = 0; i < op->nregions; i++) cse_region(c, op->regions[i]);
        if (!is_candidate(op)) continue;
        uint64_t h = hash_op(op);
        IrOp *earlier = NULL;
        for (size_t i = c->stack.len; i-- > 0;)
            if (c->stack.data[i].hash == h && equal_ops(c->stack.data[i].op, op)) {
                earlier = c->stack.data[i].op;
                break;
            }
        if (earlier) {
            ir_replace_all_uses(r->function, op->results[0], earlier->results[0]);
            ir_op_remove(op);
            c->changed = true;
        } else {
            vec_push(&c->stack, ((Available){h, op}));
        }
    }
    c->stack.len = mark;
}

bool pass_cse(IrModule *m, DiagList *d) {
    (void)d;
    Cse c = {0};
    for (IrFunction *f = m->functions; f; f = f->next) {
        if (f->grid) cse_region(&c, f->grid);
        cse_region(&c, f->body);
    }
    vec_free(&c.stack);
    return c.changed;
}
