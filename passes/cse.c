/*
 * cse.c: common subexpression elimination of pure ops over structured regions.
 *
 * In structured IR an op dominates every later op of its region and everything nested in
 * them, so dominance is scoping: the walk keeps a stack of available ops, pushes each pure
 * op after visiting it, and on leaving a region pops what the region pushed. An op equal to
 * an available one (same opcode, operands, attributes and result type; operands in either
 * order for commutative ops) has its uses redirected to the earlier op and is removed; the
 * redirection is lazy (IrForward: each op's operands are resolved when the walk reaches it).
 * Ops that touch memory or own regions are never merged: two loads of one address may read
 * different values when a store lies between them. Lookup hashes the op into a scoped hash
 * table: buckets hold the newest stack entry of their hash, each entry links to the older one
 * it shadows, and leaving a region unlinks its entries newest first. The pass is linear. Inside a
 * warp role, a register tile is never replaced by one from outside the role (its layout is the
 * block's, not the role's): the entries below the role's start are skipped for those.
 */
#include "passes.h"

#include <stdlib.h>
#include <string.h>

typedef struct Available {
    uint64_t hash;
    IrOp *op;
    int64_t older;           /* the stack index of the previous entry of this bucket, or -1 */
} Available;

typedef struct Cse {
    VEC(Available) stack;
    int64_t *buckets;        /* the newest stack index per bucket, or -1 */
    size_t nbuckets;         /* a power of two, at least twice the stack */
    IrForward fw;            /* the current function's redirections */
    size_t role_floor;       /* inside a warp role: the stack entries below this are outside it */
    bool changed;
} Cse;

static size_t bucket_of(const Cse *c, uint64_t hash) { return (size_t)(hash ^ (hash >> 29)) & (c->nbuckets - 1); }

/* Rebuilds the buckets at twice the size, from the stack's entries oldest first. */
static void grow_buckets(Cse *c) {
    free(c->buckets);
    c->nbuckets = c->nbuckets ? c->nbuckets * 2 : 256;
    c->buckets = xmalloc(c->nbuckets * sizeof *c->buckets);
    for (size_t i = 0; i < c->nbuckets; i++) c->buckets[i] = -1;
    for (size_t i = 0; i < c->stack.len; i++) {
        size_t b = bucket_of(c, c->stack.data[i].hash);
        c->stack.data[i].older = c->buckets[b];
        c->buckets[b] = (int64_t)i;
    }
}

static void push_available(Cse *c, uint64_t hash, IrOp *op) {
    if (2 * (c->stack.len + 1) > c->nbuckets) grow_buckets(c);
    size_t b = bucket_of(c, hash);
    vec_push(&c->stack, ((Available){hash, op, c->buckets[b]}));
    c->buckets[b] = (int64_t)c->stack.len - 1;
}

static void pop_available(Cse *c, size_t mark) {
    while (c->stack.len > mark) {
        Available *a = &c->stack.data[--c->stack.len];
        c->buckets[bucket_of(c, a->hash)] = a->older;
    }
}

/* Only ops whose effect column (ir/ops.def) says PURE: a READ may see a write between the two,
 * and the others have effects of their own. */
static bool is_candidate(const IrOp *op) {
    return ir_op_effect(op->code) == EFFECT_PURE && op->nregions == 0 && op->nresults == 1;
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
        ir_forward_operands(&c->fw, op);
        size_t floor = c->role_floor;
        if (op->code == OP_WARP_ROLES) c->role_floor = c->stack.len;
        for (uint32_t i = 0; i < op->nregions; i++) cse_region(c, op->regions[i]);
        c->role_floor = floor;
        if (!is_candidate(op)) continue;
        uint64_t h = hash_op(op);
        IrOp *earlier = NULL;
        /* a register tile from outside a warp role is spread over other threads: never reused in it */
        const IrType *t = op->results[0]->type;
        size_t lowest = t->kind == TY_TILE && type_numel(t) > 1 ? c->role_floor : 0;
        if (c->nbuckets)
            for (int64_t i = c->buckets[bucket_of(c, h)]; i >= (int64_t)lowest && !earlier; i = c->stack.data[i].older)
                if (c->stack.data[i].hash == h && equal_ops(c->stack.data[i].op, op)) earlier = c->stack.data[i].op;
        if (earlier) {
            ir_forward_set(&c->fw, op->results[0], earlier->results[0]);
            ir_op_remove(op);
            c->changed = true;
        } else {
            push_available(c, h, op);
        }
    }
    pop_available(c, mark);
}

bool pass_cse(IrModule *m, DiagList *d) {
    (void)d;
    Cse c = {0};
    for (IrFunction *f = m->functions; f; f = f->next) {
        if (f->grid) cse_region(&c, f->grid);
        cse_region(&c, f->body);
        ir_forward_free(&c.fw); /* ids are per function */
    }
    vec_free(&c.stack);
    free(c.buckets);
    return c.changed;
}
