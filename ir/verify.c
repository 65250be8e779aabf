/*
 * verify.c: the IR verifier, run after every pass in debug builds.
 *
 * One walk over each function, in order, checks three things:
 *  - structure: links between ops, regions and values are consistent, and every operand is
 *    visible where it is used. Visibility follows the structured regions: a flag per value id
 *    is set when the value is defined (region arguments on entry, results after their op,
 *    nested regions included) and cleared when its region ends, so a value of a sibling
 *    region, of a later op, or of another function is reported;
 *  - counts: operands, results and regions per ops.def, and the rule of each variadic op;
 *  - types: the rule of each op (elementwise ops take identical types, shape ops keep the
 *    element count, memory ops index a tensor with one index per dimension, control flow
 *    yields the types it carries, calls match their callee).
 * Each violation is one diag_error at the op's location, `verify: <op>: <what>`, and the walk
 * goes on, so that one run lists every problem. Only the counts gate the type rules of an op:
 * the rules index operands, and a wrong count would make them read past the arrays.
 */
#include "ir.h"
#include "layout.h"

#include <stdlib.h>
#include <string.h>

typedef struct Verifier {
    IrFunction *f;
    DiagList *d;
    uint8_t *visible;     /* indexed by value id */
    uint32_t cap;
    bool ok;
    Strbuf names[4];      /* type names for one message */
    int next_name;
} Verifier;

static void op_error(Verifier *v, const IrOp *op, const char *fmt, ...) TILE_PRINTF(3, 4);
static void op_error(Verifier *v, const IrOp *op, const char *fmt, ...) {
    Strbuf msg = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&msg, fmt, ap);
    va_end(ap);
    const char *name = op->code < OP_COUNT ? ir_op_info[op->code].name : "?op";
    diag_error(v->d, op->loc, "verify: %s: %s", name, sb_str(&msg));
    sb_free(&msg);
    v->ok = false;
}

static void function_error(Verifier *v, const char *fmt, ...) TILE_PRINTF(2, 3);
static void function_error(Verifier *v, const char *fmt, ...) {
    Strbuf msg = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&msg, fmt, ap);
    va_end(ap);
    diag_error(v->d, v->f->loc, "verify: @%s: %s", v->f->name, sb_str(&msg));
    sb_free(&msg);
    v->ok = false;
}

/* The printed name of a type, valid until four more names are asked for. */
static const char *tn(Verifier *v, const IrType *t) {
    Strbuf *sb = &v->names[v->next_name++ % 4];
    sb_clear(sb);
    if (t) ir_print_type(t, sb);
    else sb_puts(sb, "<no type>");
    return sb_str(sb);
}

/* ---- type predicates ------------------------------------------------------------------------ */
static bool is_tile(const IrType *t) { return t->kind == TY_TILE; }
static bool is_scalar_of(const IrType *t, ElemKind k) { return type_is_scalar(t) && t->elem.kind == k; }
static bool is_int_scalar(const IrType *t) { return type_is_scalar(t) && elem_is_integer(t->elem); }
static bool is_i32_scalar(const IrType *t) {
    return type_is_scalar(t) && elem_eq(t->elem, elem_i32());
}

static bool same_shape(const IrType *a, const IrType *b) {
    if (a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

/* Right-aligned broadcasting: every dim of `from` is 1 or equals the matching dim of `to`. */
static bool broadcastable(const IrType *from, const IrType *to) {
    if (from->rank > to->rank) return false;
    for (int i = 1; i <= from->rank; i++) {
        int64_t a = from->shape[from->rank - i], b = to->shape[to->rank - i];
        if (a != 1 && a != b) return false;
    }
    return true;
}

/* ---- structure and visibility -------------------------------------------------------------- */
static const IrFunction *value_function(const IrValue *val) {
    if (val->def) return val->def->parent ? val->def->parent->function : NULL;
    return val->region ? val->region->function : NULL;
}

static void set_visible(Verifier *v, const IrValue *val, bool on) {
    if (val && val->id < v->cap) v->visible[val->id] = on;
}

/* Returns false when the operand cannot be used by the type rules. */
static bool check_operand(Verifier *v, const IrOp *op, uint32_t i) {
    const IrValue *val = op->operands[i];
    if (!val) {
        op_error(v, op, "operand %u is null", i);
        return false;
    }
    if (!val->type) {
        op_error(v, op, "operand %u has no type", i);
        return false;
    }
    if (value_function(val) != v->f) {
        op_error(v, op, "operand %u is a value of another function or of a removed op", i);
        return true;
    }
    if (val->id >= v->cap) {
        op_error(v, op, "operand %u has id %u beyond the function's ids", i, val->id);
        return true;
    }
    if (!v->visible[val->id])
        op_error(v, op, "operand %u is not defined before use or not visible here", i);
    return true;
}

static void walk_region(Verifier *v, IrRegion *r);

/* ---- counts ---------------------------------------------------------------------------------- */
static bool check_counts(Verifier *v, const IrOp *op) {
    const OpInfo *info = &ir_op_info[op->code];
    bool ok = true;
    if (info->noperands >= 0 && op->noperands != (uint32_t)info->noperands) {
        op_error(v, op, "expects %d operands, has %u", info->noperands, op->noperands);
        ok = false;
    }
    if (info->nresults >= 0 && op->nresults != (uint32_t)info->nresults) {
        op_error(v, op, "expects %d results, has %u", info->nresults, op->nresults);
        ok = false;
    }
    if (info->nregions >= 0 && op->nregions != (uint32_t)info->nregions) {
        op_error(v, op, "expects %d regions, has %u", info->nregions, op->nregions);
        ok = false;
    }
    for (uint32_t i = 0; i < op->nresults; i++)
        if (!op->results[i] || !op->results[i]->type) {
            op_error(v, op, "result %u is missing or has no type", i);
            ok = false;
        }
    return ok;
}

/* ---- elementwise ---------------------------------------------------------------------------- */
static bool elem_allowed(OpCode code, ElemType e) {
    switch (code) {
    case OP_AND: case OP_OR: case OP_XOR: case OP_NOT:
        return elem_is_integer(e) || elem_is_bool(e);
    case OP_SHL: case OP_SHR:
        return elem_is_integer(e);
    case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_REM: case OP_MIN: case OP_MAX:
    case OP_NEG: case OP_ABS:
        return elem_is_integer(e) || elem_is_float(e);
    case OP_EXP: case OP_EXP2: case OP_LOG: case OP_LOG2: case OP_SQRT: case OP_RSQRT:
    case OP_TANH: case OP_SIN: case OP_COS: case OP_ERF: case OP_FLOOR: case OP_CEIL:
        return elem_is_float(e);
    default:
        return true;
    }
}

static void check_elementwise(Verifier *v, const IrOp *op) {
    for (uint32_t i = 0; i < op->noperands; i++)
        if (!is_tile(op->operands[i]->type)) {
            op_error(v, op, "operand %u is not a tile or scalar (%s)", i, tn(v, op->operands[i]->type));
            return;
        }
    const IrType *res = op->results[0]->type;
    if (!is_tile(res)) {
        op_error(v, op, "result is not a tile or scalar (%s)", tn(v, res));
        return;
    }
    switch (op->code) {
    case OP_CMP: {
        const IrType *a = op->operands[0]->type, *b = op->operands[1]->type;
        if (a != b) op_error(v, op, "operand types differ (%s vs %s)", tn(v, a), tn(v, b));
        if (!elem_is_bool(res->elem) || !same_shape(res, a))
            op_error(v, op, "result must be bool of the operands' shape, not %s", tn(v, res));
        if (op->nints < 1 || op->ints[0] < CMP_EQ || op->ints[0] > CMP_GE)
            op_error(v, op, "bad predicate");
        return;
    }
    case OP_SELECT: {
        const IrType *c = op->operands[0]->type, *a = op->operands[1]->type, *b = op->operands[2]->type;
        if (!elem_is_bool(c->elem) || !same_shape(c, a))
            op_error(v, op, "condition must be bool of the values' shape, not %s", tn(v, c));
        if (a != b) op_error(v, op, "operand types differ (%s vs %s)", tn(v, a), tn(v, b));
        if (res != a) op_error(v, op, "result type %s differs from the operands' %s", tn(v, res), tn(v, a));
        return;
    }
    case OP_CAST: {
        const IrType *a = op->operands[0]->type;
        if (!same_shape(res, a))
            op_error(v, op, "result shape differs from the operand's (%s vs %s)", tn(v, res), tn(v, a));
        return;
    }
    case OP_BITCAST: {
        const IrType *a = op->operands[0]->type;
        if (!same_shape(res, a))
            op_error(v, op, "result shape differs from the operand's (%s vs %s)", tn(v, res), tn(v, a));
        if (a->elem.bits != res->elem.bits || elem_is_bool(a->elem) || elem_is_bool(res->elem))
            op_error(v, op, "bitcast needs non-bool element types of one width (%s to %s)", tn(v, a), tn(v, res));
        return;
    }
    default: break;
    }
    const IrType *a = op->operands[0]->type;
    for (uint32_t i = 1; i < op->noperands; i++)
        if (op->operands[i]->type != a)
            op_error(v, op, "operand types differ (%s vs %s)", tn(v, a), tn(v, op->operands[i]->type));
    if (res != a) op_error(v, op, "result type %s differs from the operands' %s", tn(v, res), tn(v, a));
    if (!elem_allowed(op->code, a->elem)) op_error(v, op, "not defined on %s", tn(v, a));
}

/* ---- memory ---------------------------------------------------------------------------------- */
/* (tensor, idx..., [value]): one integer index per dimension, each broadcastable to `shape`. */
static void check_indices(Verifier *v, const IrOp *op, uint32_t extra, const IrType *shape) {
    const IrType *tensor = op->operands[0]->type;
    if (op->noperands != 1 + (uint32_t)tensor->rank + extra) {
        op_error(v, op, "expects %d indices for %s, has %d", tensor->rank, tn(v, tensor),
                 (int)op->noperands - 1 - (int)extra);
        return;
    }
    for (int i = 0; i < tensor->rank; i++) {
        const IrType *idx = op->operands[1 + i]->type;
        if (!is_tile(idx) || !elem_is_integer(idx->elem))
            op_error(v, op, "index %d must be an integer scalar or tile, not %s", i, tn(v, idx));
        else if (shape && !broadcastable(idx, shape))
            op_error(v, op, "index %d of type %s does not broadcast to %s", i, tn(v, idx), tn(v, shape));
    }
}

static void check_memory(Verifier *v, const IrOp *op) {
    if (op->noperands < 1) {
        op_error(v, op, "needs a tensor operand");
        return;
    }
    const IrType *tensor = op->operands[0]->type;
    if (tensor->kind != TY_TENSOR) {
        op_error(v, op, "operand 0 must be a tensor, not %s", tn(v, tensor));
        return;
    }
    if (op->code == OP_LOAD) {
        const IrType *res = op->results[0]->type;
        if (!is_tile(res) || !elem_eq(res->elem, tensor->elem)) {
            op_error(v, op, "result %s must be a tile of the tensor's element type (%s)", tn(v, res),
                     tn(v, tensor));
            res = NULL;
        }
        check_indices(v, op, 0, res);
        return;
    }
    if (op->noperands < 2) {
        op_error(v, op, "needs a value operand");
        return;
    }
    const IrType *val = op->operands[op->noperands - 1]->type;
    if (!is_tile(val) || !elem_eq(val->elem, tensor->elem)) {
        op_error(v, op, "value %s must be a tile of the tensor's element type (%s)", tn(v, val),
                 tn(v, tensor));
        val = NULL;
    }
    if (op->code == OP_ATOMIC) {
        if (op->nints < 1 || op->ints[0] < ATOMIC_ADD || op->ints[0] > ATOMIC_MAX)
            op_error(v, op, "bad atomic kind");
        if (elem_is_bool(tensor->elem)) op_error(v, op, "not defined on bool");
    }
    check_indices(v, op, 1, val);
}

/* shared_view (buffer[S, d...], i32 stage) -> shared[d...]; a laid-out buffer's view has the
 * buffer's layout without its stage mode. */
static void check_shared_view(Verifier *v, const IrOp *op) {
    const IrType *b = op->operands[0]->type, *s = op->operands[1]->type, *r = op->results[0]->type;
    if (b->kind != TY_SHARED || b->rank < 2) {
        op_error(v, op, "operand 0 must be a shared buffer of rank >= 2, not %s", tn(v, b));
        return;
    }
    if (!is_i32_scalar(s)) op_error(v, op, "the stage must be an i32 scalar, not %s", tn(v, s));
    bool ok = r->kind == TY_SHARED && r->rank == b->rank - 1 && elem_eq(r->elem, b->elem);
    for (int d = 0; ok && d < r->rank; d++) ok = r->shape[d] == b->shape[d + 1];
    if (ok && (b->shared == NULL) != (r->shared == NULL)) ok = false;
    if (ok && b->shared) {
        const SharedLayout *bl = b->shared, *rl = r->shared;
        ok = bl->swizzle.bits == rl->swizzle.bits && bl->swizzle.base == rl->swizzle.base &&
             bl->swizzle.shift == rl->swizzle.shift;
        for (int d = 0; ok && d < r->rank; d++) ok = rl->strides[d] == bl->strides[d + 1];
    }
    if (!ok) op_error(v, op, "result %s is not one stage of %s", tn(v, r), tn(v, b));
}

/* copy_async (tensor, idx..., shared dst): the indices broadcast to dst's shape. */
static void check_copy_async(Verifier *v, const IrOp *op) {
    if (op->noperands < 2 || op->operands[0]->type->kind != TY_TENSOR) {
        op_error(v, op, "needs a tensor, its indices and a shared destination");
        return;
    }
    const IrType *t = op->operands[0]->type, *dst = op->operands[op->noperands - 1]->type;
    if (dst->kind != TY_SHARED || !elem_eq(dst->elem, t->elem)) {
        op_error(v, op, "the destination %s must be a shared tile of the tensor's element type (%s)", tn(v, dst),
                 tn(v, t));
        return;
    }
    IrType shape = *dst;
    shape.kind = TY_TILE, shape.shared = NULL;
    check_indices(v, op, 1, &shape);
}

/* ---- TMA and mbarriers ------------------------------------------------------------------------ */
/* Operand i is a ring of mbarriers (shared<i64>[S]) and, when stage, operand i + 1 an i32 stage. */
static bool check_mbarriers(Verifier *v, const IrOp *op, uint32_t i, bool stage) {
    const IrType *b = op->operands[i]->type;
    if (b->kind != TY_SHARED || b->rank != 1 || !elem_eq(b->elem, elem_int(64))) {
        op_error(v, op, "operand %u must be a ring of mbarriers (shared<i64>[S]), not %s", (unsigned)i, tn(v, b));
        return false;
    }
    if (stage && !is_i32_scalar(op->operands[i + 1]->type)) {
        op_error(v, op, "the stage must be an i32 scalar, not %s", tn(v, op->operands[i + 1]->type));
        return false;
    }
    return true;
}

/* copy_tma (tensor, origin..., shared dst, mbarriers, stage): one i32 origin per dimension, a box of
 * the tensor's rank and element type. */
static void check_copy_tma(Verifier *v, const IrOp *op) {
    const IrType *t = op->noperands ? op->operands[0]->type : NULL;
    if (!t || t->kind != TY_TENSOR || op->noperands != (uint32_t)t->rank + 4) {
        op_error(v, op, "needs a tensor, an origin per dimension, a shared destination, mbarriers and a stage");
        return;
    }
    for (int d = 0; d < t->rank; d++)
        if (!is_i32_scalar(op->operands[1 + d]->type))
            op_error(v, op, "origin %d must be an i32 scalar, not %s", d, tn(v, op->operands[1 + d]->type));
    const IrType *dst = op->operands[1 + t->rank]->type;
    if (dst->kind != TY_SHARED || dst->rank != t->rank || !elem_eq(dst->elem, t->elem))
        op_error(v, op, "the destination %s must be a shared tile of the tensor's rank and element type (%s)",
                 tn(v, dst), tn(v, t));
    check_mbarriers(v, op, 2 + (uint32_t)t->rank, true);
}

/* ---- control flow ------------------------------------------------------------------------ */
/* The terminator of r must be `code` and its operands (from `first` on) must have the types of
 * `want` (n values). */
static void check_terminator(Verifier *v, const IrOp *op, IrRegion *r, const char *which, OpCode code,
                             uint32_t first, IrValue *const *want, uint32_t n) {
    const IrOp *term = r->last;
    if (!term || term->code != code) {
        op_error(v, op, "%s region must end in %s", which, ir_op_info[code].name);
        return;
    }
    if (term->noperands != first + n) {
        op_error(v, op, "%s region's %s has %u values, expected %u", which, ir_op_info[code].name,
                 term->noperands - (term->noperands >= first ? first : 0), n);
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        const IrValue *got = term->operands[first + i];
        if (got && got->type != want[i]->type)
            op_error(v, op, "%s region's %s value %u is %s, expected %s", which, ir_op_info[code].name,
                     i, tn(v, got->type), tn(v, want[i]->type));
    }
}

static void check_for(Verifier *v, const IrOp *op) {
    if (op->noperands < 3) {
        op_error(v, op, "needs lower bound, upper bound and step");
        return;
    }
    const IrType *iv = op->operands[0]->type;
    if (!is_int_scalar(iv)) op_error(v, op, "bounds must be integer scalars, not %s", tn(v, iv));
    if (op->operands[1]->type != iv || op->operands[2]->type != iv)
        op_error(v, op, "bounds and step differ in type (%s, %s, %s)", tn(v, iv),
                 tn(v, op->operands[1]->type), tn(v, op->operands[2]->type));
    uint32_t ncarried = op->noperands - 3;
    if (op->nresults != ncarried) {
        op_error(v, op, "has %u carried values but %u results", ncarried, op->nresults);
        return;
    }
    for (uint32_t i = 0; i < ncarried; i++)
        if (op->operands[3 + i]->type != op->results[i]->type)
            op_error(v, op, "initial value %u is %s, result is %s", i, tn(v, op->operands[3 + i]->type),
                     tn(v, op->results[i]->type));
    if (op->nints && op->ints[0] < 0) op_error(v, op, "negative pipeline depth");
    IrRegion *r = op->regions[0];
    if (r->nargs != 1 + ncarried) {
        op_error(v, op, "region has %u arguments, expected %u (induction variable and carried values)",
                 r->nargs, 1 + ncarried);
        return;
    }
    if (r->args[0]->type != iv)
        op_error(v, op, "induction variable is %s, bounds are %s", tn(v, r->args[0]->type), tn(v, iv));
    for (uint32_t i = 0; i < ncarried; i++)
        if (r->args[1 + i]->type != op->results[i]->type)
            op_error(v, op, "region argument %u is %s, carried value is %s", 1 + i,
                     tn(v, r->args[1 + i]->type), tn(v, op->results[i]->type));
    check_terminator(v, op, r, "body", OP_YIELD, 0, op->results, op->nresults);
}

static void check_if(Verifier *v, const IrOp *op) {
    if (op->noperands != 1) {
        op_error(v, op, "expects 1 operand (the condition), has %u", op->noperands);
        return;
    }
    if (!is_scalar_of(op->operands[0]->type, EK_BOOL))
        op_error(v, op, "condition must be a bool scalar, not %s", tn(v, op->operands[0]->type));
    static const char *which[2] = {"then", "else"};
    for (int i = 0; i < 2; i++) {
        if (op->regions[i]->nargs) op_error(v, op, "%s region must have no arguments", which[i]);
        check_terminator(v, op, op->regions[i], which[i], OP_YIELD, 0, op->results, op->nresults);
    }
}

static void check_while(Verifier *v, const IrOp *op) {
    IrRegion *before = op->regions[0], *after = op->regions[1];
    if (before->nargs != op->noperands) {
        op_error(v, op, "condition region has %u arguments for %u initial values", before->nargs,
                 op->noperands);
        return;
    }
    for (uint32_t i = 0; i < op->noperands; i++)
        if (before->args[i]->type != op->operands[i]->type)
            op_error(v, op, "condition region argument %u is %s, initial value is %s", i,
                     tn(v, before->args[i]->type), tn(v, op->operands[i]->type));
    if (after->nargs != op->nresults) {
        op_error(v, op, "body region has %u arguments for %u results", after->nargs, op->nresults);
        return;
    }
    for (uint32_t i = 0; i < op->nresults; i++)
        if (after->args[i]->type != op->results[i]->type)
            op_error(v, op, "body region argument %u is %s, result is %s", i, tn(v, after->args[i]->type),
                     tn(v, op->results[i]->type));
    const IrOp *cond = before->last;
    if (cond && cond->code == OP_CONDITION && cond->noperands >= 1 && cond->operands[0] &&
        !is_scalar_of(cond->operands[0]->type, EK_BOOL))
        op_error(v, op, "condition must be a bool scalar, not %s", tn(v, cond->operands[0]->type));
    check_terminator(v, op, before, "condition", OP_CONDITION, 1, after->args, after->nargs);
    check_terminator(v, op, after, "body", OP_YIELD, 0, before->args, before->nargs);
}

/* Where a terminator may stand; the owner checks the operand types. */
static void check_terminator_place(Verifier *v, const IrOp *op) {
    const IrRegion *r = op->parent;
    const IrOp *owner = r->parent_op;
    if (op->next) op_error(v, op, "terminator must be the last op of its region");
    switch (op->code) {
    case OP_YIELD:
        if (r == v->f->grid) {
            if (op->noperands < 1 || op->noperands > 3)
                op_error(v, op, "grid must yield 1 to 3 sizes, yields %u", op->noperands);
            for (uint32_t i = 0; i < op->noperands; i++)
                if (op->operands[i] && !is_i32_scalar(op->operands[i]->type))
                    op_error(v, op, "grid size %u must be an i32 scalar, not %s", i,
                             tn(v, op->operands[i]->type));
        } else if (!owner || !(owner->code == OP_FOR || owner->code == OP_IF ||
                               (owner->code == OP_WHILE && owner->nregions > 1 && owner->regions[1] == r))) {
            op_error(v, op, "only ends a for, if or while body, or the grid");
        }
        break;
    case OP_CONDITION:
        if (!owner || owner->code != OP_WHILE || owner->regions[0] != r)
            op_error(v, op, "only ends the condition region of a while");
        else if (op->noperands < 1)
            op_error(v, op, "needs a condition operand");
        break;
    case OP_RETURN:
        if (v->f->is_kernel || r != v->f->body) {
            op_error(v, op, "only ends the body of a device function");
            break;
        }
        if (op->noperands != v->f->nresults) {
            op_error(v, op, "returns %u values, function has %u results", op->noperands, v->f->nresults);
            break;
        }
        for (uint32_t i = 0; i < op->noperands; i++)
            if (op->operands[i] && op->operands[i]->type != v->f->result_types[i])
                op_error(v, op, "value %u is %s, function result is %s", i, tn(v, op->operands[i]->type),
                         tn(v, v->f->result_types[i]));
        break;
    default: tile_unreachable();
    }
}

static void check_call(Verifier *v, const IrOp *op) {
    const IrFunction *g = op->callee;
    if (!g) {
        op_error(v, op, "no callee");
        return;
    }
    if (g->module != v->f->module) {
        op_error(v, op, "callee @%s is in another module", g->name);
        return;
    }
    if (g->is_kernel) {
        op_error(v, op, "callee @%s is a kernel", g->name);
        return;
    }
    if (op->noperands != g->body->nargs) {
        op_error(v, op, "@%s takes %u arguments, given %u", g->name, g->body->nargs, op->noperands);
    } else {
        for (uint32_t i = 0; i < op->noperands; i++)
            if (op->operands[i]->type != g->body->args[i]->type)
                op_error(v, op, "argument %u of @%s is %s, parameter is %s", i, g->name,
                         tn(v, op->operands[i]->type), tn(v, g->body->args[i]->type));
    }
    if (op->nresults != g->nresults) {
        op_error(v, op, "@%s has %u results, call has %u", g->name, g->nresults, op->nresults);
        return;
    }
    for (uint32_t i = 0; i < op->nresults; i++)
        if (op->results[i]->type != g->result_types[i])
            op_error(v, op, "result %u is %s, @%s returns %s", i, tn(v, op->results[i]->type), g->name,
                     tn(v, g->result_types[i]));
}

/* ---- shapes and the rest --------------------------------------------------------------------- */
static bool check_axis(Verifier *v, const IrOp *op, int64_t axis, int limit, const char *what) {
    if (axis < 0 || axis >= limit) {
        op_error(v, op, "%s %lld out of range [0, %d)", what, (long long)axis, limit);
        return false;
    }
    return true;
}

static void check_const(Verifier *v, const IrOp *op) {
    const IrType *t = op->results[0]->type;
    if (!is_tile(t)) {
        op_error(v, op, "result must be a tile or scalar, not %s", tn(v, t));
        return;
    }
    const IrConst *c = &op->value;
    if (c->is_float != elem_is_float(t->elem)) {
        op_error(v, op, "%s value for %s", c->is_float ? "float" : "integer", tn(v, t));
        return;
    }
    bool exact = c->is_float ? (c->f != c->f || elem_round_float(t->elem, c->f) == c->f)
                             : elem_wrap_int(t->elem, c->i) == c->i;
    if (!exact) op_error(v, op, "value is not representable in %s", tn(v, t));
}

static void check_shape_op(Verifier *v, const IrOp *op) {
    const IrType *a = op->operands[0]->type, *res = op->results[0]->type;
    if (!is_tile(a) || !is_tile(res)) {
        op_error(v, op, "operand and result must be tiles (%s -> %s)", tn(v, a), tn(v, res));
        return;
    }
    if (!elem_eq(a->elem, res->elem)) {
        op_error(v, op, "element type changes (%s -> %s)", tn(v, a), tn(v, res));
        return;
    }
    switch (op->code) {
    case OP_SPLAT:
        if (a->rank != 0) op_error(v, op, "operand must be a scalar, not %s", tn(v, a));
        break;
    case OP_BROADCAST:
        if (a->rank != res->rank || !broadcastable(a, res))
            op_error(v, op, "%s does not broadcast to %s", tn(v, a), tn(v, res));
        break;
    case OP_EXPAND_DIMS: {
        int64_t axis = op->ints[0];
        if (!check_axis(v, op, axis, a->rank + 1, "axis")) break;
        bool ok = res->rank == a->rank + 1 && res->shape[axis] == 1;
        for (int i = 0, j = 0; ok && i < res->rank; i++)
            if (i != axis) ok = res->shape[i] == a->shape[j++];
        if (!ok) op_error(v, op, "%s with a new axis %lld is not %s", tn(v, a), (long long)axis, tn(v, res));
        break;
    }
    case OP_RESHAPE:
        if (type_numel(a) != type_numel(res))
            op_error(v, op, "element count differs (%s -> %s)", tn(v, a), tn(v, res));
        break;
    case OP_TRANSPOSE: {
        if (res->rank != a->rank || op->nints != (uint32_t)a->rank) {
            op_error(v, op, "permutation of %u entries for %s -> %s", op->nints, tn(v, a), tn(v, res));
            break;
        }
        bool seen[IR_MAX_RANK] = {false};
        for (int i = 0; i < a->rank; i++) {
            int64_t p = op->ints[i];
            if (p < 0 || p >= a->rank || seen[p]) {
                op_error(v, op, "ints are not a permutation of 0..%d", a->rank - 1);
                return;
            }
            seen[p] = true;
            if (res->shape[i] != a->shape[p]) {
                op_error(v, op, "result dim %d is %lld, expected %lld", i, (long long)res->shape[i],
                         (long long)a->shape[p]);
                return;
            }
        }
        break;
    }
    case OP_REDUCE:
    case OP_SCAN: {
        if (op->nints < 2 || op->ints[0] < RED_SUM || op->ints[0] > RED_MIN) {
            op_error(v, op, "bad reduction kind");
            break;
        }
        int64_t axis = op->ints[1];
        if (!check_axis(v, op, axis, a->rank, "axis")) break;
        if (elem_is_bool(a->elem)) op_error(v, op, "not defined on bool");
        if (op->code == OP_SCAN) {
            if (!same_shape(a, res)) op_error(v, op, "shape changes (%s -> %s)", tn(v, a), tn(v, res));
            break;
        }
        bool ok = res->rank == a->rank - 1;
        for (int i = 0, j = 0; ok && i < a->rank; i++)
            if (i != axis) ok = res->shape[j++] == a->shape[i];
        if (!ok) op_error(v, op, "%s reduced along axis %lld is not %s", tn(v, a), (long long)axis, tn(v, res));
        break;
    }
    case OP_CONVERT_LAYOUT:
        if (!same_shape(a, res)) op_error(v, op, "shape changes (%s -> %s)", tn(v, a), tn(v, res));
        break;
    default: tile_unreachable();
    }
}

static void check_dot(Verifier *v, const IrOp *op) {
    const IrType *a = op->operands[0]->type, *b = op->operands[1]->type, *acc = op->operands[2]->type;
    const IrType *res = op->results[0]->type;
    /* a and b may be shared tiles (views of staged buffers): the dot then reads them from there */
    bool a_ok = is_tile(a) || a->kind == TY_SHARED, b_ok = is_tile(b) || b->kind == TY_SHARED;
    if (!a_ok || !b_ok || !is_tile(acc) || a->rank != 2 || b->rank != 2 || acc->rank != 2) {
        op_error(v, op, "operands must be 2-d tiles (%s, %s, %s)", tn(v, a), tn(v, b), tn(v, acc));
        return;
    }
    if (a->shape[1] != b->shape[0] || acc->shape[0] != a->shape[0] || acc->shape[1] != b->shape[1])
        op_error(v, op, "shapes do not compose: a %s, b %s, acc %s", tn(v, a), tn(v, b), tn(v, acc));
    if (res != acc) op_error(v, op, "result %s differs from the accumulator %s", tn(v, res), tn(v, acc));
}

/* atomic_rmw (tensor, idx..., value) and atomic_cas (tensor, idx..., expected, desired): the
 * values and the result have the access shape and the tensor's element type. */
static void check_atomic_result(Verifier *v, const IrOp *op) {
    uint32_t nvalues = op->code == OP_ATOMIC_CAS ? 2 : 1;
    if (op->noperands < 1 + nvalues || op->operands[0]->type->kind != TY_TENSOR) {
        op_error(v, op, "needs a tensor, its indices and %u value%s", nvalues, nvalues == 1 ? "" : "s");
        return;
    }
    const IrType *tensor = op->operands[0]->type, *res = op->results[0]->type;
    if (!is_tile(res) || !elem_eq(res->elem, tensor->elem)) {
        op_error(v, op, "result %s must be a tile of the tensor's element type (%s)", tn(v, res), tn(v, tensor));
        return;
    }
    for (uint32_t i = op->noperands - nvalues; i < op->noperands; i++)
        if (!same_shape(op->operands[i]->type, res) || !elem_eq(op->operands[i]->type->elem, res->elem))
            op_error(v, op, "value %s must have the result's type %s", tn(v, op->operands[i]->type), tn(v, res));
    if (elem_is_bool(tensor->elem) || elem_storage_bits(tensor->elem) % 8 != 0)
        op_error(v, op, "not defined on %s", tn(v, tensor));
    if (op->code == OP_ATOMIC_RMW && (op->nints < 2 || op->ints[0] < ATOMIC_ADD || op->ints[0] > ATOMIC_XCHG))
        op_error(v, op, "bad atomic kind");
    if (op->nints < 2 || op->ints[1] < MEM_RELAXED || op->ints[1] > MEM_ACQ_REL) op_error(v, op, "bad memory order");
    check_indices(v, op, nvalues, res);
}

static void check_op_types(Verifier *v, IrOp *op) {
    const unsigned flags = ir_op_info[op->code].flags;
    if (flags & F_ELEM) {
        check_elementwise(v, op);
        return;
    }
    if (flags & F_TERM) {
        check_terminator_place(v, op);
        return;
    }
    switch (op->code) {
    case OP_CONST: check_const(v, op); break;
    case OP_BLOCK_ID:
    case OP_NUM_BLOCKS:
        check_axis(v, op, op->ints[0], 3, "axis");
        if (!is_i32_scalar(op->results[0]->type))
            op_error(v, op, "result must be i32, not %s", tn(v, op->results[0]->type));
        break;
    case OP_DIM: {
        const IrType *t = op->operands[0]->type;
        if (t->kind != TY_TENSOR) op_error(v, op, "operand must be a tensor, not %s", tn(v, t));
        else check_axis(v, op, op->ints[0], t->rank, "axis");
        if (!is_i32_scalar(op->results[0]->type))
            op_error(v, op, "result must be i32, not %s", tn(v, op->results[0]->type));
        break;
    }
    case OP_ARANGE: {
        const IrType *t = op->results[0]->type;
        if (!is_tile(t) || t->rank != 1 || !elem_is_integer(t->elem))
            op_error(v, op, "result must be a 1-d integer tile, not %s", tn(v, t));
        break;
    }
    case OP_SPLAT:
    case OP_BROADCAST:
    case OP_EXPAND_DIMS:
    case OP_RESHAPE:
    case OP_TRANSPOSE:
    case OP_REDUCE:
    case OP_SCAN:
    case OP_CONVERT_LAYOUT: check_shape_op(v, op); break;
    case OP_DOT: check_dot(v, op); break;
    case OP_CHECK: {
        const IrType *c = op->operands[0]->type;
        if (!type_is_scalar(c) || !elem_is_bool(c->elem)) op_error(v, op, "operand must be a bool scalar, not %s", tn(v, c));
        if (op->nints < 1 || op->ints[0] < 0 || (uint64_t)op->ints[0] >= v->f->ncheck_messages)
            op_error(v, op, "has no message");
        if (op->parent != v->f->grid) op_error(v, op, "only in a kernel's grid region");
        break;
    }
    case OP_LOAD:
    case OP_STORE:
    case OP_ATOMIC: check_memory(v, op); break;
    case OP_SHARED_ALLOC:
        if (op->results[0]->type->kind != TY_SHARED)
            op_error(v, op, "result must be a shared tile, not %s", tn(v, op->results[0]->type));
        if (op->nints > 2 || (op->nints >= 1 && (op->ints[0] < 0 || op->ints[0] % 16 != 0)))
            op_error(v, op, "the planned offset must be one multiple of 16 bytes");
        if (op->nints == 2 && op->ints[1] != 0 && op->ints[1] != 1)
            op_error(v, op, "the uninitialized flag must be 0 or 1");
        break;
    case OP_SHARED_LOAD:
    case OP_SHARED_STORE: {
        const IrType *s = op->operands[0]->type;
        const IrType *t = op->code == OP_SHARED_LOAD ? op->results[0]->type : op->operands[1]->type;
        if (s->kind != TY_SHARED) op_error(v, op, "operand 0 must be a shared tile, not %s", tn(v, s));
        else if (!is_tile(t) || !elem_eq(s->elem, t->elem) || !same_shape(s, t))
            op_error(v, op, "tile %s does not match %s", tn(v, t), tn(v, s));
        break;
    }
    case OP_BARRIER: break;
    case OP_SHARED_VIEW: check_shared_view(v, op); break;
    case OP_COPY_ASYNC: check_copy_async(v, op); break;
    case OP_ASYNC_WAIT:
        if (op->nints != 1 || op->ints[0] < 0) op_error(v, op, "needs a count of copies in flight >= 0");
        break;
    case OP_MBARRIER_INIT: check_mbarriers(v, op, 0, false); break;
    case OP_COPY_TMA: check_copy_tma(v, op); break;
    case OP_MBARRIER_ARRIVE: check_mbarriers(v, op, 0, true); break;
    case OP_MBARRIER_WAIT:
        if (check_mbarriers(v, op, 0, true) && !is_i32_scalar(op->operands[2]->type))
            op_error(v, op, "the parity must be an i32 scalar, not %s", tn(v, op->operands[2]->type));
        break;
    case OP_ATOMIC_RMW:
    case OP_ATOMIC_CAS: check_atomic_result(v, op); break;
    case OP_FENCE:
        if (op->nints < 1 || op->ints[0] < MEM_RELAXED || op->ints[0] > MEM_ACQ_REL) op_error(v, op, "bad memory order");
        break;
    case OP_FOR: check_for(v, op); break;
    case OP_IF: check_if(v, op); break;
    case OP_WHILE: check_while(v, op); break;
    case OP_CALL: check_call(v, op); break;
    default: tile_unreachable();
    }
}

/* ---- the walk ---------------------------------------------------------------------------------- */
static void check_op(Verifier *v, IrOp *op, IrRegion *r, const IrOp *prev) {
    if (op->code >= OP_COUNT) {
        op_error(v, op, "bad opcode %d", (int)op->code);
        return;
    }
    if (op->parent != r || op->prev != prev) op_error(v, op, "op is not linked into its region");
    bool usable = true;
    for (uint32_t i = 0; i < op->noperands; i++) usable &= check_operand(v, op, i);
    for (uint32_t i = 0; i < op->nregions; i++) {
        IrRegion *sub = op->regions[i];
        if (!sub || sub->parent_op != op || sub->function != v->f) {
            op_error(v, op, "region %u does not belong to this op", i);
            usable = false;
        }
    }
    if (check_counts(v, op) && usable) check_op_types(v, op);
    for (uint32_t i = 0; i < op->nregions; i++)
        if (op->regions[i] && op->regions[i]->parent_op == op) walk_region(v, op->regions[i]);
    for (uint32_t i = 0; i < op->nresults; i++) {
        IrValue *res = op->results[i];
        if (!res) continue;
        if (res->def != op || res->index != i) op_error(v, op, "result %u is not linked to its op", i);
        if (res->id >= v->cap) op_error(v, op, "result %u has id %u beyond the function's ids", i, res->id);
        set_visible(v, res, true);
    }
}

static void walk_region(Verifier *v, IrRegion *r) {
    for (uint32_t i = 0; i < r->nargs; i++) {
        IrValue *a = r->args[i];
        if (!a || a->region != r || a->index != i || a->def || a->id >= v->cap || !a->type) {
            function_error(v, "region argument %u is not linked to its region", i);
            continue;
        }
        set_visible(v, a, true);
    }
    const IrOp *prev = NULL;
    for (IrOp *op = r->first; op; prev = op, op = op->next) check_op(v, op, r, prev);
    if (prev != r->last) function_error(v, "a region's last op is not its list's end");
    /* Leaving the region: its values go out of scope. */
    for (uint32_t i = 0; i < r->nargs; i++) set_visible(v, r->args[i], false);
    for (IrOp *op = r->first; op; op = op->next)
        for (uint32_t i = 0; i < op->nresults; i++) set_visible(v, op->results[i], false);
}

bool ir_verify_function(IrFunction *f, DiagList *d) {
    Verifier v = {.f = f, .d = d, .cap = f->next_value_id, .ok = true};
    v.visible = xcalloc(v.cap ? v.cap : 1, 1);
    if (!f->body || f->body->parent_op || f->body->function != f) {
        function_error(&v, "body region missing or not linked to the function");
        goto done;
    }
    if (f->params && f->nparams != f->body->nargs)
        function_error(&v, "%u parameters described for %u body arguments", f->nparams, f->body->nargs);
    if (f->is_kernel) {
        if (!f->grid || f->grid->parent_op || f->grid->function != f) {
            function_error(&v, "kernel without a grid region");
        } else {
            if (f->grid->nargs != f->body->nargs)
                function_error(&v, "grid has %u arguments, body has %u", f->grid->nargs, f->body->nargs);
            for (uint32_t i = 0; i < f->grid->nargs && i < f->body->nargs; i++)
                if (f->grid->args[i] && f->body->args[i] && f->grid->args[i]->type != f->body->args[i]->type)
                    function_error(&v, "grid argument %u is %s, parameter is %s", i,
                                   tn(&v, f->grid->args[i]->type), tn(&v, f->body->args[i]->type));
            if (!f->grid->last || f->grid->last->code != OP_YIELD)
                function_error(&v, "grid must end in a yield of 1 to 3 i32 sizes");
            walk_region(&v, f->grid);
        }
        for (uint32_t i = 0; i < f->body->nargs; i++) {
            const IrValue *a = f->body->args[i];
            if (a && a->type && a->type->kind != TY_TENSOR && !is_tile(a->type))
                function_error(&v, "kernel parameter %u is %s", i, tn(&v, a->type));
        }
    } else {
        if (f->grid) function_error(&v, "device function with a grid region");
        if (!f->body->last || f->body->last->code != OP_RETURN)
            function_error(&v, "device function body must end in return");
    }
    walk_region(&v, f->body);
done:
    free(v.visible);
    for (int i = 0; i < 4; i++) sb_free(&v.names[i]);
    return v.ok;
}

bool ir_verify_module(IrModule *m, DiagList *d) {
    bool ok = true;
    for (IrFunction *f = m->functions; f; f = f->next) ok &= ir_verify_function(f, d);
    return ok;
}
