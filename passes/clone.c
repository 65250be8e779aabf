/*
 * clone.c: copying ops and regions, with a map from old values to new ones.
 *
 * The map is an array indexed by the source function's value ids (ids are dense per
 * function). Cloning walks the source in order, so every operand is either mapped already
 * (defined earlier in the copied code, or an argument the caller mapped) or defined outside
 * the copied code, in which case it stands for itself. New ops get fresh ids of the function
 * the builder inserts into, and keep their source locations and name hints. clone_module copies a
 * whole module into a new one, the GPU passes' input per target: types are interned again in the
 * copy; strings and layouts, immutable once made, are shared with the source.
 */
#include "passes.h"

#include <stdlib.h>

static const IrFunction *value_function(const IrValue *v) {
    if (v->def) return v->def->parent ? v->def->parent->function : NULL;
    return v->region ? v->region->function : NULL;
}

void value_map_init(ValueMap *map, const IrFunction *source) {
    map->source = source;
    map->cap = source->next_value_id;
    map->to = xcalloc(map->cap ? map->cap : 1, sizeof *map->to);
}

void value_map_free(ValueMap *map) {
    free(map->to);
    map->to = NULL;
    map->cap = 0;
}

void value_map_set(ValueMap *map, const IrValue *from, IrValue *to) {
    if (from->id < map->cap && value_function(from) == map->source) map->to[from->id] = to;
}

IrValue *value_map_get(const ValueMap *map, IrValue *from) {
    if (from && from->id < map->cap && map->to[from->id] && value_function(from) == map->source)
        return map->to[from->id];
    return from;
}

/* A type of the source function as the builder's module has it (the same pointer within one
 * module; interned again when clone_module copies into a new one). */
static const IrType *type_for(const IrBuilder *b, const ValueMap *map, const IrType *t) {
    return map->source->module == b->module ? t : ir_type_intern(b->module, t);
}

IrOp *clone_op(IrBuilder *b, const IrOp *op, ValueMap *map) {
    IrValue **operands = xmalloc((op->noperands + 1) * sizeof *operands);
    const IrType **types = xmalloc((op->nresults + 1) * sizeof *types);
    for (uint32_t i = 0; i < op->noperands; i++) operands[i] = value_map_get(map, op->operands[i]);
    for (uint32_t i = 0; i < op->nresults; i++) types[i] = type_for(b, map, op->results[i]->type);
    SrcLoc saved = b->loc;
    b->loc = op->loc;
    IrOp *copy = ir_build(b, op->code, operands, op->noperands, types, op->nresults);
    b->loc = saved;
    free(operands);
    free(types);
    copy->nints = op->nints;
    for (uint32_t i = 0; i < IR_MAX_INTS; i++) copy->ints[i] = op->ints[i];
    copy->value = op->value;
    copy->callee = op->callee && map->source->module != b->module ? ir_module_find(b->module, op->callee->name)
                                                                   : op->callee;
    for (uint32_t i = 0; i < op->nresults; i++) {
        copy->results[i]->name = op->results[i]->name;
        value_map_set(map, op->results[i], copy->results[i]);
    }
    for (uint32_t i = 0; i < op->nregions; i++) {
        const IrRegion *src = op->regions[i];
        IrRegion *dst = ir_op_add_region(copy);
        for (uint32_t j = 0; j < src->nargs; j++)
            value_map_set(map, src->args[j],
                          ir_region_add_arg(dst, type_for(b, map, src->args[j]->type), src->args[j]->name));
        IrBuilder inner = *b;
        ir_builder_at_end(&inner, dst);
        clone_region_ops(&inner, src, map, false);
    }
    return copy;
}

void clone_region_ops(IrBuilder *b, const IrRegion *src, ValueMap *map, bool skip_terminator) {
    for (const IrOp *op = src->first; op; op = op->next) {
        if (skip_terminator && op == src->last && (ir_op_info[op->code].flags & F_TERM)) break;
        clone_op(b, op, map);
    }
}

/* Copies region src of a function into dst (empty, of the copy), arguments included. */
static void clone_whole_region(IrFunction *to, IrRegion *dst, const IrRegion *src, ValueMap *map) {
    for (uint32_t j = 0; j < src->nargs; j++)
        value_map_set(map, src->args[j],
                      ir_region_add_arg(dst, ir_type_intern(to->module, src->args[j]->type), src->args[j]->name));
    IrBuilder b = {.module = to->module, .function = to};
    ir_builder_at_end(&b, dst);
    clone_region_ops(&b, src, map, false);
}

IrModule *clone_module(const IrModule *m) {
    IrModule *copy = ir_module_new();
    /* every function first, so that calls find their callee's copy */
    for (const IrFunction *f = m->functions; f; f = f->next) {
        IrFunction *g = ir_function_new(copy, f->name, f->is_kernel, f->loc);
        g->params = f->params;
        g->nparams = f->nparams;
        g->num_warps = f->num_warps;
        g->cluster = f->cluster;
        g->check_messages = f->check_messages;
        g->ncheck_messages = f->ncheck_messages;
        g->nresults = f->nresults;
        if (f->nresults) {
            const IrType **types = arena_alloc(&copy->arena, f->nresults * sizeof *types);
            for (uint32_t i = 0; i < f->nresults; i++) types[i] = ir_type_intern(copy, f->result_types[i]);
            g->result_types = types;
        }
    }
    IrFunction *g = copy->functions;
    for (const IrFunction *f = m->functions; f; f = f->next, g = g->next) {
        ValueMap map;
        value_map_init(&map, f);
        if (f->body) clone_whole_region(g, g->body, f->body, &map);
        else g->body = NULL;
        if (f->grid && g->grid) {
            /* the grid region's arguments are the parameters again (their own values) */
            clone_whole_region(g, g->grid, f->grid, &map);
        } else {
            g->grid = NULL;
        }
        value_map_free(&map);
    }
    return copy;
}
