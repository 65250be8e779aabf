/*
 * inline.c: replaces every call of a device function by a copy of the callee's body.
 *
 * Functions are processed depth first over the call graph: before a call is replaced, its
 * callee has had its own calls inlined, so one copy brings a call-free body and nested calls
 * are handled at any depth. The copy goes right before the call (clone.c, with the callee's
 * parameters mapped to the call's arguments); the values of the callee's final `return`
 * replace the call's results, and the call goes away. A function met again while it is being
 * processed closes a recursive cycle: the frontend rejects recursion, but should one reach
 * here it is reported at the call and that call is left in place, so the pass always ends.
 * Callees stay in the module; dce removes the ones no longer called.
 *
 * The call's results are redirected lazily (IrForward: the walk resolves each op's operands
 * when it reaches it), so the pass is linear in what it produces. What it produces is bounded:
 * each function's size after inlining is known, and a call that would make its caller larger
 * than INLINE_MAX_OPS operations is an error at that call (a few lines that call a function
 * twice, which calls another twice, and so on, would otherwise expand to 2^n copies).
 */
#include "passes.h"

#include <stdlib.h>

enum { UNVISITED, IN_PROGRESS, DONE };
enum { INLINE_MAX_OPS = 1 << 19 }; /* operations in one function after inlining */

typedef struct Inliner {
    IrModule *m;
    DiagList *d;
    VEC(IrFunction *) funcs;
    VEC(uint8_t) state;
    VEC(int64_t) size;       /* per function: operations after inlining (DONE), or so far */
    bool changed;
    bool too_big;            /* the bound was reported: stop inlining */
} Inliner;

static size_t index_of(Inliner *in, const IrFunction *f) {
    for (size_t i = 0; i < in->funcs.len; i++)
        if (in->funcs.data[i] == f) return i;
    return SIZE_MAX;
}

static uint8_t *state_of(Inliner *in, const IrFunction *f) {
    size_t i = index_of(in, f);
    return i == SIZE_MAX ? NULL : &in->state.data[i];
}

static bool count_op(IrOp *op, void *n) {
    (void)op;
    ++*(int64_t *)n;
    return true;
}

static int64_t count_ops(const IrFunction *f) {
    int64_t n = 0;
    if (f->grid) ir_walk(f->grid, count_op, &n);
    ir_walk(f->body, count_op, &n);
    return n;
}

static void inline_function(Inliner *in, IrFunction *f);

static void inline_call(Inliner *in, IrForward *fw, IrOp *call) {
    IrFunction *g = call->callee;
    uint8_t *state = g ? state_of(in, g) : NULL;
    if (!state || g->is_kernel) return; /* the verifier reports a bad callee */
    if (*state == IN_PROGRESS) {
        diag_error(in->d, call->loc, "recursive call of '%s': device functions are inlined and cannot recurse",
                   g->name);
        return;
    }
    if (*state == UNVISITED) inline_function(in, g);
    if (in->too_big) return;
    IrFunction *f = call->parent->function;
    int64_t *size = &in->size.data[index_of(in, f)], callee = in->size.data[index_of(in, g)];
    if (*size + callee > INLINE_MAX_OPS) {
        diag_error(in->d, call->loc,
                   "inlining '%s' here makes '%s' larger than %d operations: the calls of device functions "
                   "expand to too many copies (each call is a copy of its function)", g->name, f->name, INLINE_MAX_OPS);
        in->too_big = true;
        return;
    }
    *size += callee - 1;
    const IrOp *ret = g->body->last;
    if (!ret || ret->code != OP_RETURN || ret->noperands != call->nresults ||
        g->body->nargs != call->noperands)
        return; /* invalid IR; the verifier says why */

    ValueMap map;
    value_map_init(&map, g);
    for (uint32_t i = 0; i < call->noperands; i++) value_map_set(&map, g->body->args[i], call->operands[i]);
    IrBuilder b;
    ir_builder_before(&b, call);
    clone_region_ops(&b, g->body, &map, true);
    for (uint32_t i = 0; i < call->nresults; i++) ir_forward_set(fw, call->results[i], value_map_get(&map, ret->operands[i]));
    value_map_free(&map);
    ir_op_remove(call);
    in->changed = true;
}

static void inline_region(Inliner *in, IrForward *fw, IrRegion *r) {
    for (IrOp *op = r->first, *next; op; op = next) {
        next = op->next;
        ir_forward_operands(fw, op);
        for (uint32_t i = 0; i < op->nregions; i++) inline_region(in, fw, op->regions[i]);
        if (op->code == OP_CALL) inline_call(in, fw, op);
    }
}

static void inline_function(Inliner *in, IrFunction *f) {
    size_t i = index_of(in, f);
    in->state.data[i] = IN_PROGRESS;
    in->size.data[i] = count_ops(f);
    IrForward fw = {0};
    if (f->grid) inline_region(in, &fw, f->grid);
    inline_region(in, &fw, f->body);
    ir_forward_free(&fw);
    in->state.data[index_of(in, f)] = DONE;
}

bool pass_inline(IrModule *m, DiagList *d) {
    Inliner in = {.m = m, .d = d};
    for (IrFunction *f = m->functions; f; f = f->next) {
        vec_push(&in.funcs, f);
        vec_push(&in.state, (uint8_t)UNVISITED);
        vec_push(&in.size, (int64_t)0);
    }
    for (size_t i = 0; i < in.funcs.len; i++)
        if (in.state.data[i] == UNVISITED) inline_function(&in, in.funcs.data[i]);
    vec_free(&in.funcs);
    vec_free(&in.state);
    vec_free(&in.size);
    return in.changed;
}
