/*
 * canonicalize.c: constant folding, exact algebraic identities and trivial control flow.
 *
 * Sweeps every region in order, rewriting one op at a time, until a sweep changes nothing:
 *  - an elementwise op whose operands are all constants becomes a constant. Constants are
 *    splats (one value for every element), so folding a tile is folding one element. The
 *    arithmetic is the VM's: integers in 64 bits wrapped to the width (elem_wrap_int), floats
 *    in double rounded once to the format (elem_round_float; for + - * / and sqrt of formats
 *    of at most 26 significant bits, f32 and narrower, that is the correctly rounded result),
 *    casts through elem_convert. Transcendental functions are left to the VM (their rounding
 *    is the library's), as are shifts by out-of-range amounts and min/max of zeros of
 *    opposite signs, whose result the ops.def rules do not pin down;
 *  - splat, broadcast, expand_dims, reshape and transpose of a constant become a constant of
 *    the result type;
 *  - identities that hold for every input, bit for bit: x+0 and x-0 (integers), x+(-0.0) and
 *    x-(+0.0) (floats: x+(+0.0) is not x when x is -0.0), x*1, x/1, x*0 (integers only: for
 *    floats NaN*0 and inf*0 are NaN), and/or with all-ones or zero (bool: true/false), xor 0,
 *    shifts by 0, x-x (integers), min/max/and/or of x with itself, a cast to the operand's
 *    own type, double negation and double `not`, select with a constant condition or two equal
 *    values;
 *  - `if` with a constant condition: the taken region's ops move before the if and its yield
 *    values replace the results; `for` with constant bounds that runs zero times: the initial
 *    values replace the results.
 * A rewritten op is removed; operands it leaves unused (constants, mostly) are left for dce.
 * Its uses are redirected lazily (IrForward): each op's operands are resolved when the sweep
 * reaches it, so a sweep is linear in the function's size however many ops it rewrites.
 */
#include "passes.h"

#include <math.h>

static IrOp *const_def(const IrValue *v) { return v->def && v->def->code == OP_CONST ? v->def : NULL; }

static bool is_int_const(const IrValue *v, int64_t k) {
    const IrOp *c = const_def(v);
    return c && !c->value.is_float && c->value.i == k;
}

static bool is_float_const(const IrValue *v, double x) {
    const IrOp *c = const_def(v);
    return c && c->value.is_float && c->value.f == x && !signbit(c->value.f) == !signbit(x);
}

/* The integer/bool constant with every bit set: -1 wrapped to the width, or true. */
static int64_t all_ones(ElemType e) { return elem_is_bool(e) ? 1 : elem_wrap_int(e, -1); }

/* ---- folding ------------------------------------------------------------------------------------ */
/* Transcendental functions are left to run time: their last bit depends on the math library,
 * and the GPU uses its own approximations. Everything else folds exactly as the VM computes. */
static bool is_transcendental(OpCode code) {
    switch (code) {
    case OP_EXP: case OP_EXP2: case OP_LOG: case OP_LOG2: case OP_RSQRT: case OP_TANH:
    case OP_SIN: case OP_COS: case OP_ERF:
        return true;
    default:
        return false;
    }
}

/* Folds an elementwise op whose operands are constants into *out (in the result's type). */
static bool fold_elementwise(const IrOp *op, IrConst *out) {
    const IrConst *v[3];
    for (uint32_t i = 0; i < op->noperands; i++) {
        const IrOp *c = const_def(op->operands[i]);
        if (!c) return false;
        v[i] = &c->value;
    }
    ElemType e = op->operands[0]->type->elem;
    if (op->code == OP_CAST) {
        *out = elem_convert(e, *v[0], op->results[0]->type->elem);
        return true;
    }
    if (op->code == OP_SELECT) return false; /* handled as an identity */
    const IrConst *y = op->noperands > 1 ? v[1] : NULL;
    int64_t pred = op->nints ? op->ints[0] : 0;
    if (is_transcendental(op->code)) return false;
    return elem_eval(op->code, pred, e, v[0], y, out);
}

/* ---- rewriting ---------------------------------------------------------------------------------- */
static IrValue *make_const(IrOp *before, const IrType *t, IrConst c) {
    IrBuilder b;
    ir_builder_before(&b, before);
    b.loc = before->loc;
    IrOp *op = ir_build(&b, OP_CONST, NULL, 0, &t, 1);
    op->value = c;
    return op->results[0];
}

static void replace_op(IrForward *fw, IrOp *op, IrValue *with) {
    ir_forward_set(fw, op->results[0], with);
    ir_op_remove(op);
}

/* The value an identity reduces op to, or NULL. May create a constant. */
static IrValue *simplify(IrOp *op) {
    if (op->noperands == 0 || op->nresults != 1) return NULL;
    IrValue *x = op->operands[0], *y = op->noperands > 1 ? op->operands[1] : NULL;
    ElemType e = x->type->elem;
    bool is_int = elem_is_integer(e), is_float = elem_is_float(e), is_bool = elem_is_bool(e);
    bool commutes = ir_op_info[op->code].flags & F_COMM;
    /* For a commutative op, try (x, y) and (y, x). */
    for (int turn = 0; turn < (commutes ? 2 : 1); turn++) {
        IrValue *p = turn ? y : x, *q = turn ? x : y;
        switch (op->code) {
        case OP_ADD:
            if ((is_int && is_int_const(q, 0)) || (is_float && is_float_const(q, -0.0))) return p;
            break;
        case OP_SUB:
            if ((is_int && is_int_const(q, 0)) || (is_float && is_float_const(q, 0.0))) return p;
            if (is_int && p == q) return make_const(op, op->results[0]->type, (IrConst){.i = 0});
            break;
        case OP_MUL:
            if ((is_int && is_int_const(q, 1)) || (is_float && is_float_const(q, 1.0))) return p;
            if (is_int && is_int_const(q, 0)) return q;
            break;
        case OP_DIV:
            if ((is_int && is_int_const(q, 1)) || (is_float && is_float_const(q, 1.0))) return p;
            break;
        case OP_AND:
            if ((is_int || is_bool) && is_int_const(q, all_ones(e))) return p;
            if ((is_int || is_bool) && is_int_const(q, 0)) return q;
            if (p == q) return p;
            break;
        case OP_OR:
            if ((is_int || is_bool) && is_int_const(q, 0)) return p;
            if ((is_int || is_bool) && is_int_const(q, all_ones(e))) return q;
            if (p == q) return p;
            break;
        case OP_XOR:
            if ((is_int || is_bool) && is_int_const(q, 0)) return p;
            break;
        case OP_MIN:
        case OP_MAX:
            if (p == q) return p;
            break;
        case OP_SHL:
        case OP_SHR:
            if (is_int_const(q, 0)) return p;
            break;
        case OP_NEG:
        case OP_NOT:
            if (p->def && p->def->code == op->code) return p->def->operands[0];
            break;
        case OP_CAST:
            if (op->results[0]->type == p->type) return p;
            break;
        case OP_SELECT: {
            IrOp *c = const_def(op->operands[0]);
            if (c && !c->value.is_float) return op->operands[c->value.i ? 1 : 2];
            if (op->operands[1] == op->operands[2]) return op->operands[1];
            break;
        }
        default: break;
        }
    }
    return NULL;
}

static bool fold_if(IrForward *fw, IrOp *op) {
    IrOp *c = const_def(op->operands[0]);
    if (!c || c->value.is_float || op->nregions != 2) return false;
    IrRegion *taken = op->regions[c->value.i ? 0 : 1];
    IrOp *yield = taken->last;
    if (!yield || yield->code != OP_YIELD || yield->noperands != op->nresults) return false;
    for (IrOp *o = taken->first, *next; o != yield; o = next) {
        next = o->next;
        ir_op_remove(o);
        ir_op_insert_before(o, op);
    }
    for (uint32_t i = 0; i < op->nresults; i++) ir_forward_set(fw, op->results[i], yield->operands[i]);
    ir_op_remove(op);
    return true;
}

/* A for loop with constant bounds and a positive constant step that runs zero times. */
static bool fold_empty_for(IrForward *fw, IrOp *op) {
    if (op->noperands < 3 || op->nresults != op->noperands - 3) return false;
    IrOp *lo = const_def(op->operands[0]), *hi = const_def(op->operands[1]), *step = const_def(op->operands[2]);
    if (!lo || !hi || !step) return false;
    ElemType e = op->operands[0]->type->elem;
    bool is_unsigned = e.kind == EK_UINT;
    int64_t l = lo->value.i, h = hi->value.i, s = step->value.i;
    bool positive = is_unsigned ? s != 0 : s > 0;
    bool empty = is_unsigned ? (uint64_t)l >= (uint64_t)h : l >= h;
    if (!positive || !empty) return false;
    for (uint32_t i = 0; i < op->nresults; i++) ir_forward_set(fw, op->results[i], op->operands[3 + i]);
    ir_op_remove(op);
    return true;
}

static bool is_shape_op(OpCode code) {
    return code == OP_SPLAT || code == OP_BROADCAST || code == OP_EXPAND_DIMS || code == OP_RESHAPE ||
           code == OP_TRANSPOSE;
}

static bool canonicalize_op(IrForward *fw, IrOp *op) {
    unsigned flags = ir_op_info[op->code].flags;
    if (op->code == OP_IF) return fold_if(fw, op);
    if (op->code == OP_FOR) return fold_empty_for(fw, op);
    if (op->nresults != 1) return false;
    if (is_shape_op(op->code)) {
        IrOp *c = const_def(op->operands[0]);
        if (!c) return false;
        replace_op(fw, op, make_const(op, op->results[0]->type, c->value));
        return true;
    }
    if (!(flags & F_ELEM)) return false;
    IrConst folded;
    if (fold_elementwise(op, &folded)) {
        replace_op(fw, op, make_const(op, op->results[0]->type, folded));
        return true;
    }
    IrValue *same = simplify(op);
    if (!same) return false;
    replace_op(fw, op, same);
    return true;
}

/* One sweep over a region in order; operands are brought up to date before anything reads them. */
static bool canonicalize_region(IrForward *fw, IrRegion *r) {
    bool changed = false;
    for (IrOp *op = r->first, *next; op; op = next) {
        next = op->next;
        ir_forward_operands(fw, op);
        for (uint32_t i = 0; i < op->nregions; i++) changed |= canonicalize_region(fw, op->regions[i]);
        changed |= canonicalize_op(fw, op);
    }
    return changed;
}

static bool forward_op(IrOp *op, void *fw) {
    ir_forward_operands(fw, op);
    return true;
}

bool pass_canonicalize(IrModule *m, DiagList *d) {
    (void)d;
    bool changed = false;
    for (IrFunction *f = m->functions; f; f = f->next) {
        IrForward fw = {0};
        /* Each sweep removes at least one op, so this ends; the bound guards against a bug. */
        for (int sweep = 0; sweep < 1000; sweep++) {
            bool any = f->grid ? canonicalize_region(&fw, f->grid) : false;
            any |= canonicalize_region(&fw, f->body);
            if (!any) break;
            changed = true;
        }
        /* a sweep that changed nothing left every operand current; this makes sure of it */
        if (f->grid) ir_walk(f->grid, forward_op, &fw);
        ir_walk(f->body, forward_op, &fw);
        ir_forward_free(&fw);
    }
    return changed;
}
