/*
 * dce.c: dead code elimination.
 *
 * Per function, a use count per value id is taken once and kept up to date as ops go. Each
 * region is walked from its last op to its first: every user of a value comes after its
 * definition (or is nested in a later op), so by the time an op is reached all its users have
 * been seen, and a chain of dead ops dies in one walk. An op dies when none of its results is
 * used and it has no effect (the effect column of ir/ops.def): a PURE op, or a REGIONS op (`if`,
 * `for`) whose regions hold only pure ops and such ifs and fors (never a `while`, which may not
 * end, nor a call: both OPAQUE; nor a memory op).
 *
 * A loop-carried value of a `for` dies when its result is unused and its region argument only
 * feeds its own yield, directly or through ops that would then be dead: the walk pretends the
 * yield operand is gone, collects the body ops that become dead, and commits (dropping the
 * initial value, the result, the argument, the yield operand and those ops) only when the
 * argument is left unused; otherwise it restores the counts.
 *
 * Finally, device functions that no call reaches any more (after inlining) are removed from
 * the module; kernels always stay. The walks repeat until nothing changes.
 */
#include "passes.h"

#include <stdlib.h>

typedef struct Dce {
    IrFunction *f;
    uint32_t *uses;  /* indexed by value id */
    uint32_t cap;
    bool changed;
} Dce;

static uint32_t *use_slot(Dce *d, const IrValue *v) { return v && v->id < d->cap ? &d->uses[v->id] : NULL; }

static void count_uses_op(Dce *d, const IrOp *op, int delta) {
    for (uint32_t i = 0; i < op->noperands; i++) {
        uint32_t *u = use_slot(d, op->operands[i]);
        if (u) *u = (uint32_t)((int64_t)*u + delta);
    }
    for (uint32_t i = 0; i < op->nregions; i++)
        for (const IrOp *o = op->regions[i]->first; o; o = o->next) count_uses_op(d, o, delta);
}

static bool results_unused(Dce *d, const IrOp *op) {
    for (uint32_t i = 0; i < op->nresults; i++) {
        uint32_t *u = use_slot(d, op->results[i]);
        if (!u || *u) return false;
    }
    return true;
}

/* No effect besides computing its results, by the effect column of ir/ops.def: PURE ops (a
 * terminator among them), and REGIONS ops (if, for) whose regions hold only such ops. READ ops
 * are kept as well (tests/passes/dce_effects.ir): removing unused reads would be a separate
 * decision, with its own test. */
static bool effect_free(const IrOp *op) {
    switch (ir_op_effect(op->code)) {
    case EFFECT_PURE: return op->nregions == 0;
    case EFFECT_REGIONS:
        for (uint32_t i = 0; i < op->nregions; i++)
            for (const IrOp *o = op->regions[i]->first; o; o = o->next)
                if (!effect_free(o)) return false;
        return true;
    default: return false;
    }
}

static bool is_dead(Dce *d, const IrOp *op) {
    return !(ir_op_info[op->code].flags & F_TERM) && effect_free(op) && results_unused(d, op);
}

static void kill(Dce *d, IrOp *op) {
    count_uses_op(d, op, -1);
    ir_op_remove(op);
    d->changed = true;
}

static void remove_at(IrValue **array, uint32_t *n, uint32_t at) {
    for (uint32_t i = at; i + 1 < *n; i++) array[i] = array[i + 1];
    (*n)--;
}

/* Drops carried value j of a for loop when nothing but its own yield needs it. */
static void try_drop_carried(Dce *d, IrOp *op, uint32_t j) {
    IrRegion *body = op->regions[0];
    IrOp *yield = body->last;
    if (!yield || yield->code != OP_YIELD || yield->noperands != op->nresults || body->nargs != 1 + op->nresults)
        return;
    IrValue *arg = body->args[1 + j];
    uint32_t *result_uses = use_slot(d, op->results[j]), *arg_uses = use_slot(d, arg);
    if (!result_uses || *result_uses || !arg_uses) return;
    uint32_t *yielded = use_slot(d, yield->operands[j]);
    if (yielded) (*yielded)--;
    VEC(IrOp *) dying = {0};
    for (IrOp *o = yield->prev; o; o = o->prev)
        if (is_dead(d, o)) {
            count_uses_op(d, o, -1);
            vec_push(&dying, o);
        }
    if (*arg_uses == 0) {
        for (size_t i = 0; i < dying.len; i++) ir_op_remove(dying.data[i]);
        uint32_t *init = use_slot(d, op->operands[3 + j]);
        if (init) (*init)--;
        remove_at(op->operands, &op->noperands, 3 + j);
        remove_at(op->results, &op->nresults, j);
        remove_at(body->args, &body->nargs, 1 + j);
        remove_at(yield->operands, &yield->noperands, j);
        for (uint32_t i = j; i < op->nresults; i++) op->results[i]->index = i;
        for (uint32_t i = 1 + j; i < body->nargs; i++) body->args[i]->index = i;
        d->changed = true;
    } else {
        for (size_t i = 0; i < dying.len; i++) count_uses_op(d, dying.data[i], +1);
        if (yielded) (*yielded)++;
    }
    vec_free(&dying);
}

static void dce_region(Dce *d, IrRegion *r) {
    for (IrOp *op = r->last, *prev; op; op = prev) {
        prev = op->prev;
        if (is_dead(d, op)) {
            kill(d, op);
            continue;
        }
        for (uint32_t i = op->nregions; i-- > 0;) dce_region(d, op->regions[i]);
        if (op->code == OP_FOR && op->nregions == 1)
            for (uint32_t j = op->nresults; j-- > 0;) try_drop_carried(d, op, j);
    }
}

static bool dce_function(IrFunction *f) {
    Dce d = {.f = f, .cap = f->next_value_id};
    d.uses = xcalloc(d.cap ? d.cap : 1, sizeof *d.uses);
    if (f->grid)
        for (const IrOp *o = f->grid->first; o; o = o->next) count_uses_op(&d, o, +1);
    for (const IrOp *o = f->body->first; o; o = o->next) count_uses_op(&d, o, +1);
    bool changed = false;
    do {
        d.changed = false;
        if (f->grid) dce_region(&d, f->grid);
        dce_region(&d, f->body);
        changed |= d.changed;
    } while (d.changed);
    free(d.uses);
    return changed;
}

/* ---- unreachable device functions ---------------------------------------------------------- */
static bool mark_callee(IrOp *op, void *ctx) {
    StrMap *called = ctx;
    if (op->code == OP_CALL && op->callee) strmap_put(called, op->callee->name, op->callee);
    return true;
}

static bool remove_uncalled_functions(IrModule *m) {
    bool changed = false, again = true;
    while (again) {
        again = false;
        StrMap called = {0};
        for (IrFunction *f = m->functions; f; f = f->next) {
            if (f->grid) ir_walk(f->grid, mark_callee, &called);
            ir_walk(f->body, mark_callee, &called);
        }
        IrFunction *prev = NULL;
        for (IrFunction *f = m->functions, *next; f; f = next) {
            next = f->next;
            if (f->is_kernel || strmap_get(&called, f->name) == f) {
                prev = f;
                continue;
            }
            if (prev) prev->next = next;
            else m->functions = next;
            if (m->last_function == f) m->last_function = prev;
            f->next = NULL;
            again = changed = true;
        }
        strmap_free(&called);
    }
    return changed;
}

bool pass_dce(IrModule *m, DiagList *diag) {
    (void)diag;
    bool changed = false;
    for (IrFunction *f = m->functions; f; f = f->next) changed |= dce_function(f);
    changed |= remove_uncalled_functions(m);
    return changed;
}
