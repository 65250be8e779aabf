/*
 * axis.c: axis analysis of integer tiles (after Triton's AxisInfo): for every dimension of a
 * value, its contiguity (positions along the dimension come in aligned runs of that many
 * consecutive values v, v+1, ...), its constancy (aligned runs of that many equal values) and
 * its divisibility (the largest power of two, up to 2^30, dividing the first value of every
 * contiguous run; for a dimension of contiguity 1 that is every value). It is an analysis over
 * the IR, like the layout algebra, that the backend and the GPU passes can both read without
 * depending on each other; so it lives in ir/ and changes nothing. The code generator uses it
 * to prove that the V elements a thread accesses along the last dimension of a load or store
 * are consecutive in memory and start at a multiple of V.
 *
 * The analysis is a memoized recursion over definitions with one rule per op kind; anything
 * without a rule is "unknown" (contiguity 1, constancy 1, divisibility 1), which is always
 * safe. Scalars have rank 0 and only a divisibility. Launch facts (IrParamFacts.size_div16)
 * give `dim` of such a dimension divisibility 16; a loop's induction variable is divisible by
 * what both its start and its step are divisible by.
 */
#include "ir/axis.h"

#include <string.h>

enum { AXIS_MAX_DIV = (int64_t)1 << 30 };

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* The largest power of two dividing v (v == 0: AXIS_MAX_DIV). */
static int64_t pow2_dividing(int64_t v) {
    if (v == 0) return AXIS_MAX_DIV;
    uint64_t u = (uint64_t)v;
    int64_t p = (int64_t)(u & (~u + 1));
    return p > AXIS_MAX_DIV || p <= 0 ? AXIS_MAX_DIV : p;
}

static void unknown(const IrType *t, AxisInfo *o) {
    memset(o, 0, sizeof *o);
    o->rank = t->kind == TY_TILE ? t->rank : 0;
    o->scalar_div = 1;
    for (int d = 0; d < o->rank; d++) o->contiguity[d] = o->constancy[d] = o->divisibility[d] = 1;
}

static void constant(const IrType *t, int64_t div, AxisInfo *o) {
    unknown(t, o);
    o->scalar_div = div;
    for (int d = 0; d < o->rank; d++) {
        o->constancy[d] = t->shape[d];
        o->divisibility[d] = div;
    }
}

/* Divisibility of every element along d (not only of run starts). */
static int64_t elem_div(const AxisInfo *a, int d) { return a->contiguity[d] > 1 ? 1 : a->divisibility[d]; }

void axis_init(AxisAnalysis *a, const IrFunction *f, const IrParamFacts *facts) {
    memset(a, 0, sizeof *a);
    a->function = f;
    a->facts = facts;
    a->cap = f->next_value_id + 1;
    a->infos = xcalloc(a->cap, sizeof *a->infos);
    a->done = xcalloc(a->cap, sizeof *a->done);
}

void axis_free(AxisAnalysis *a) {
    free(a->infos);
    free(a->done);
    memset(a, 0, sizeof *a);
}

static bool is_int_tile(const IrType *t) {
    return t->kind == TY_TILE && (elem_is_integer(t->elem) || elem_is_bool(t->elem));
}

static void analyze(AxisAnalysis *a, const IrValue *v, AxisInfo *o);

static void arg_info(AxisAnalysis *a, const IrValue *v, AxisInfo *o) {
    unknown(v->type, o);
    const IrOp *parent = v->region ? v->region->parent_op : NULL;
    if (parent && parent->code == OP_FOR && v->index == 0 && parent->regions[0] == v->region) {
        AxisInfo lo, step;
        analyze(a, parent->operands[0], &lo);
        analyze(a, parent->operands[2], &step);
        o->scalar_div = min64(lo.scalar_div, step.scalar_div);
    }
}

/* The largest power of two dividing a and b (both >= 1). */
static int64_t pow2_common(int64_t a, int64_t b) { return min64(pow2_dividing(a), pow2_dividing(b)); }

/* x < y (and x >= y, its negation) with x in aligned runs of consecutive values starting at
 * multiples of k and y constant over those runs and a multiple of k: x0 + j < y exactly when
 * x0 < y for j < k (x0 < y means x0 <= y - k), so the result is constant over runs of k. With
 * the operands swapped for > and <=. Equal inputs give equal outputs besides. The mask
 * `n + arange(BN) < N` of a row whose length N the launch facts give as a multiple of 16 is
 * thus constant over 16 columns: the code generator compares once per run (emit_elementwise). */
static void compare_info(AxisAnalysis *a, const IrOp *op, AxisInfo *o) {
    AxisInfo x, y;
    analyze(a, op->operands[0], &x);
    analyze(a, op->operands[1], &y);
    if (x.rank != o->rank || y.rank != o->rank) return;
    IrCmp pred = (IrCmp)op->ints[0];
    bool x_runs = pred == CMP_LT || pred == CMP_GE, y_runs = pred == CMP_GT || pred == CMP_LE;
    const AxisInfo *run = x_runs ? &x : &y, *bound = x_runs ? &y : &x;
    for (int d = 0; d < o->rank; d++) {
        o->constancy[d] = min64(x.constancy[d], y.constancy[d]);
        if (!x_runs && !y_runs) continue;
        int64_t k = min64(pow2_common(run->contiguity[d], bound->constancy[d]),
                          min64(run->divisibility[d], elem_div(bound, d)));
        if (k > 1 && k > o->constancy[d]) o->constancy[d] = k;
    }
}

static void op_info(AxisAnalysis *a, const IrValue *v, AxisInfo *o) {
    const IrOp *op = v->def;
    const IrType *t = v->type;
    unknown(t, o);
    if (!is_int_tile(t)) return;
    AxisInfo x, y;
    switch (op->code) {
    case OP_CONST: constant(t, op->value.is_float ? 1 : pow2_dividing(op->value.i), o); return;
    case OP_ARANGE:
        o->contiguity[0] = t->shape[0];
        o->divisibility[0] = pow2_dividing(op->ints[0]);
        return;
    case OP_DIM: {
        const IrValue *tv = op->operands[0];
        int64_t axis = op->ints[0];
        if (a->facts && !tv->def && tv->region == a->function->body && axis >= 0 && axis < IR_MAX_RANK &&
            a->facts[tv->index].size_div16[axis])
            o->scalar_div = 16;
        return;
    }
    case OP_SPLAT:
        analyze(a, op->operands[0], &x);
        constant(t, x.scalar_div, o);
        return;
    case OP_CONVERT_LAYOUT: analyze(a, op->operands[0], o); return;
    case OP_CAST: {
        const IrType *it = op->operands[0]->type;
        if (elem_is_integer(it->elem) && elem_is_integer(t->elem) && it->elem.bits <= t->elem.bits &&
            (it->elem.kind == t->elem.kind || it->elem.bits < t->elem.bits))
            analyze(a, op->operands[0], o);
        return;
    }
    case OP_BROADCAST:
        analyze(a, op->operands[0], &x);
        for (int d = 0; d < o->rank; d++) {
            if (op->operands[0]->type->shape[d] == 1 && t->shape[d] != 1) {
                o->contiguity[d] = 1;
                o->constancy[d] = t->shape[d];
                o->divisibility[d] = elem_div(&x, d);
            } else {
                o->contiguity[d] = x.contiguity[d];
                o->constancy[d] = x.constancy[d];
                o->divisibility[d] = x.divisibility[d];
            }
        }
        return;
    case OP_EXPAND_DIMS:
        analyze(a, op->operands[0], &x);
        for (int d = 0, k = 0; d < o->rank; d++) {
            if (d == op->ints[0]) continue;
            o->contiguity[d] = x.contiguity[k];
            o->constancy[d] = x.constancy[k];
            o->divisibility[d] = x.divisibility[k++];
        }
        return;
    case OP_RESHAPE: {
        /* only reshapes that insert or remove dimensions of size 1 keep their facts */
        const IrType *it = op->operands[0]->type;
        int k = 0, d = 0;
        analyze(a, op->operands[0], &x);
        AxisInfo r = *o;
        while (d < t->rank || k < it->rank) {
            if (d < t->rank && k < it->rank && t->shape[d] == it->shape[k]) {
                r.contiguity[d] = x.contiguity[k];
                r.constancy[d] = x.constancy[k];
                r.divisibility[d] = x.divisibility[k];
                d++, k++;
            } else if (d < t->rank && t->shape[d] == 1) {
                d++;
            } else if (k < it->rank && it->shape[k] == 1) {
                k++;
            } else {
                return; /* a real reshape: unknown */
            }
        }
        *o = r;
        return;
    }
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
        analyze(a, op->operands[0], &x);
        analyze(a, op->operands[1], &y);
        if (op->code == OP_MUL) {
            o->scalar_div = min64(x.scalar_div * y.scalar_div, AXIS_MAX_DIV);
            for (int d = 0; d < o->rank; d++) {
                o->constancy[d] = min64(x.constancy[d], y.constancy[d]);
                o->divisibility[d] = min64(elem_div(&x, d) * elem_div(&y, d), AXIS_MAX_DIV);
            }
            return;
        }
        o->scalar_div = min64(x.scalar_div, y.scalar_div);
        for (int d = 0; d < o->rank; d++) {
            o->constancy[d] = min64(x.constancy[d], y.constancy[d]);
            o->divisibility[d] = min64(x.divisibility[d], y.divisibility[d]);
            if (op->code == OP_ADD)
                o->contiguity[d] = max64(min64(x.contiguity[d], y.constancy[d]),
                                         min64(y.contiguity[d], x.constancy[d]));
            else
                o->contiguity[d] = min64(x.contiguity[d], y.constancy[d]);
            if (o->contiguity[d] < 1) o->contiguity[d] = 1;
        }
        return;
    case OP_CMP:
        compare_info(a, op, o);
        return;
    default:
        if (ir_op_info[op->code].flags & F_ELEM) {
            /* any other elementwise op keeps constancy (equal inputs give equal outputs) */
            for (int d = 0; d < o->rank; d++) o->constancy[d] = t->shape[d];
            for (uint32_t i = 0; i < op->noperands; i++) {
                analyze(a, op->operands[i], &x);
                if (x.rank != o->rank) {
                    unknown(t, o);
                    return;
                }
                for (int d = 0; d < o->rank; d++) o->constancy[d] = min64(o->constancy[d], x.constancy[d]);
            }
        }
        return;
    }
}

static void analyze(AxisAnalysis *a, const IrValue *v, AxisInfo *o) {
    if (v->id < a->cap && a->done[v->id] == 2) {
        *o = a->infos[v->id];
        return;
    }
    if (v->id < a->cap && a->done[v->id] == 1) { /* a cycle through a loop: be safe */
        unknown(v->type, o);
        return;
    }
    if (v->id < a->cap) a->done[v->id] = 1;
    if (v->def) op_info(a, v, o);
    else arg_info(a, v, o);
    for (int d = 0; d < o->rank; d++) {
        if (o->contiguity[d] < 1) o->contiguity[d] = 1;
        if (o->constancy[d] < 1) o->constancy[d] = 1;
        if (o->divisibility[d] < 1) o->divisibility[d] = 1;
    }
    if (v->id < a->cap) {
        a->infos[v->id] = *o;
        a->done[v->id] = 2;
    }
}

void axis_info(AxisAnalysis *a, const IrValue *v, AxisInfo *out) { analyze(a, v, out); }
