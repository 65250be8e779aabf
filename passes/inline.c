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
 */
#include "passes.h"

#include <stdlib.h>

enum { UNVISITED, IN_PROGRESS, DONE };

typedef struct Inliner {
    IrModule *m;
    DiagList *d;
    VEC(IrFunction *) funcs;
    VEC(uint8_t) state;
    bool changed;
} Inliner;

static uint8_t *state_of(Inliner *in, const IrFunction *f) {
    for (size_t i = 0; i < in->funcs.len; i++)
        if (in->funcs.data[i] == f) return &in->state.data[i];
    return NULL;
}

static void inline_function(Inliner *in, IrFunction *f);

static void inline_call(Inliner *in, IrOp *call) {
    IrFunction *g = call->callee;
    uint8_t *state = g ? state_of(in, g) : NULL;
    if (!state || g->is_kernel) return; /* the verifier reports a bad callee */
    if (*state == IN_PROGRESS) {
        diag_error(in->d, call->loc, "recursive call of '%s': device functions are inlined and cannot recurse",
                   g->name);
        return;
    }
    if (*state == UNVISITED) inline_function(in, g);
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
    IrFunction *f = call->parent->function;
    for (uint32_t i = 0; i < call->nresults; i++)
        ir_replace_all_uses(f, call->results[i], value_map_get(&map, ret->operands[i]));
    value_map_free(&map);
    ir_op_remove(call);
    in->changed = true;
}

static void inline_region(Inliner *in, IrRegion *r) {
    for (IrOp *op = r->first, *next; op; op = next) {
        next = op->next;
        for (uint32_t i = 0; i < op->nregions; i++) inline_region(in, op->regions[i]);
        if (op->code == OP_CALL) inline_call(in, op);
    }
}

static void inline_function(Inliner *in, IrFunction *f) {
    *state_of(in, f) = IN_PROGRESS;
    if (f->grid) inline_region(in, f->grid);
    inline_region(in, f->body);
    *state_of(in, f) = DONE;
}

bool pass_inline(IrModule *m, DiagList *d) {
    Inliner in = {.m = m, .d = d};
    for (IrFunction *f = m->functions; f; f = f->next) {
        vec_push(&in.funcs, f);
        vec_push(&in.state, (uint8_t)UNVISITED);
    }
    for (size_t i = 0; i < in.funcs.len; i++)
        if (in.state.data[i] == UNVISITED) inline_function(&in, in.funcs.data[i]);
    vec_free(&in.funcs);
    vec_free(&in.state);
    return in.changed;
}
