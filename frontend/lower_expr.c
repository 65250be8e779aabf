/*
 * lower_expr.c: checks and lowers expressions: operators with broadcasting, constants,
 * tensor indexing (loads), and the builtins of lang/SPEC.md.
 *
 * Operands are made alike before an elementwise op: a constant takes the element type of the
 * other side (if it fits), a scalar is splatted, a lower-rank tile gets leading size-1 dims by
 * reshape, and size-1 dims are broadcast (numpy rules). Element types never convert silently:
 * mixing f32 and bf16 is an error that suggests cast<>. Constant expressions are folded here,
 * with 64-bit integers (overflow is an error) and doubles, so that shapes like `BM * 2` are
 * known when the op that needs them is built.
 *
 * Tensor indexing `t[i, j :+ BN, idx, :]` lowers to one LOAD whose index operands are a scalar
 * or an integer tile each, reshaped so that they broadcast to the result shape: item k of the
 * subscript contributes its own dimensions (none for a scalar), in order, except that index
 * tiles of rank 2 or more broadcast with each other and contribute their common shape once.
 * Masked loads and stores (`load(t[...], mask=, other=)`, `store(...)`) are built here from
 * the same pieces (see the section at the end of the file).
 */
#include "lower.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tile_parser.h"

static const Val POISON = {.kind = VAL_POISON};

/* NULL (after a diagnostic) is poison */
static Val val_of(IrValue *v) { return (Val){.kind = v ? VAL_VALUE : VAL_POISON, .value = v}; }
static Val val_int(int64_t i) { return (Val){.kind = VAL_CONST, .c = {.is_float = false, .i = i}}; }
static Val val_float(double f) { return (Val){.kind = VAL_CONST, .c = {.is_float = true, .f = f}}; }
static Val val_bool(bool b) { return (Val){.kind = VAL_CONST, .c = {.i = b}, .is_bool = true}; }

const char *lower_type_str(const IrType *t, char *buf, size_t n) {
    char e[16];
    elem_name(t->elem, e);
    if (t->kind == TY_TENSOR) {
        snprintf(buf, n, "tensor<%s> of rank %d", e, t->rank);
        return buf;
    }
    if (t->rank == 0) {
        snprintf(buf, n, "%s", e);
        return buf;
    }
    size_t used = (size_t)snprintf(buf, n, "%s<%s>[", t->kind == TY_SHARED ? "shared" : "tile", e);
    for (int i = 0; i < t->rank && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (used < n) snprintf(buf + used, n - used, "]");
    return buf;
}

/* ---- constants ---------------------------------------------------------------------------- */
static bool const_fits(IrConst c, ElemType e) {
    if (e.kind == EK_INT) {
        if (e.bits >= 64) return true;
        int64_t lo = -((int64_t)1 << (e.bits - 1)), hi = ((int64_t)1 << (e.bits - 1)) - 1;
        return c.i >= lo && c.i <= hi;
    }
    if (e.kind == EK_UINT) {
        if (c.i < 0) return false;
        return e.bits >= 63 || c.i <= (int64_t)((UINT64_C(1) << e.bits) - 1);
    }
    return true;
}

/* The largest finite value of the float type e. */
static double float_type_max(ElemType e) {
    if (elem_float_is_ieee(e)) return ldexp(2.0 - ldexp(1.0, -e.man), (1 << (e.exp - 1)) - 1);
    return elem_round_float(e, INFINITY); /* formats without inf saturate */
}

/* Whether a finite float constant is within the range of the float type e: IEEE formats
 * would round it to inf, saturating ones (no inf) to their largest value. inf and nan,
 * asked for by name, always "fit". */
static bool float_const_fits(ElemType e, double x) {
    if (!isfinite(x)) return true;
    if (elem_float_is_ieee(e)) return !isinf(elem_round_float(e, x));
    double max = float_type_max(e);
    int ex;
    frexp(max, &ex);
    return fabs(x) <= max + ldexp(1.0, ex - 2 - e.man); /* max + half an ulp rounds to max */
}

IrValue *lower_coerce_const(Lower *L, Val v, const IrType *to, SrcLoc loc) {
    char name[16];
    elem_name(to->elem, name);
    L->b.loc = loc;
    if (to->kind != TY_TILE) {
        diag_error(L->diags, loc, "a constant cannot be used as a tensor");
        return NULL;
    }
    if (elem_is_bool(to->elem)) {
        if (!v.is_bool) {
            diag_error(L->diags, loc, "expected a bool, found %s constant", v.c.is_float ? "a float" : "an integer");
            return NULL;
        }
        return ir_const_int(&L->b, to, v.c.i);
    }
    if (v.is_bool) {
        diag_error(L->diags, loc, "a bool constant cannot become %s; use cast<%s>(...)", name, name);
        return NULL;
    }
    if (elem_is_integer(to->elem)) {
        if (v.c.is_float) {
            diag_error(L->diags, loc, "float constant %g cannot become an integer (%s); use cast<%s>(...)",
                       v.c.f, name, name);
            return NULL;
        }
        if (!const_fits(v.c, to->elem)) {
            diag_error(L->diags, loc, "constant %lld does not fit in %s", (long long)v.c.i, name);
            return NULL;
        }
        return ir_const_int(&L->b, to, v.c.i);
    }
    double f = v.c.is_float ? v.c.f : (double)v.c.i;
    if (!float_const_fits(to->elem, f)) {
        diag_error(L->diags, loc, "constant %g does not fit in %s (its largest value is %g)", f, name,
                   float_type_max(to->elem));
        return NULL;
    }
    return ir_const_float(&L->b, to, f);
}

IrValue *lower_materialize(Lower *L, Val v, ElemType elem, SrcLoc loc) {
    if (v.kind == VAL_POISON) return NULL;
    if (v.kind == VAL_VALUE) return v.value;
    return lower_coerce_const(L, v, ir_scalar_type(L->module, elem), loc);
}

IrValue *lower_default(Lower *L, Val v, SrcLoc loc) {
    if (v.kind != VAL_CONST) return v.kind == VAL_VALUE ? v.value : NULL;
    ElemType e = v.is_bool ? elem_bool() : v.c.is_float ? elem_f32() : elem_i32();
    return lower_materialize(L, v, e, loc);
}

static const char *op_text(int op) {
    switch (op) {
    case TK_PLUS: return "+"; case TK_MINUS: return "-"; case TK_STAR: return "*";
    case TK_SLASH: return "/"; case TK_PERCENT: return "%"; case TK_AMP: return "&";
    case TK_PIPE: return "|"; case TK_CARET: return "^"; case TK_SHL: return "<<";
    case TK_SHR: return ">>"; case TK_LT: return "<"; case TK_LE: return "<=";
    case TK_GT: return ">"; case TK_GE: return ">="; case TK_EQ: return "==";
    case TK_NE: return "!="; case TK_ANDAND: return "&&"; case TK_OROR: return "||";
    case TK_NOT: return "!"; case TK_TILDE: return "~";
    default: return "?";
    }
}

/* Folds a binary operator on two constants; false (with a diagnostic) when it cannot. */
static bool fold_binary(Lower *L, int op, Val a, Val b, SrcLoc loc, Val *out) {
    if (a.is_bool || b.is_bool) {
        if (!(a.is_bool && b.is_bool)) {
            diag_error(L->diags, loc, "operator '%s': operands of different kinds (bool and number)", op_text(op));
            return false;
        }
        switch (op) {
        case TK_ANDAND: case TK_AMP: *out = val_bool(a.c.i && b.c.i); return true;
        case TK_OROR: case TK_PIPE: *out = val_bool(a.c.i || b.c.i); return true;
        case TK_CARET: case TK_NE: *out = val_bool(a.c.i != b.c.i); return true;
        case TK_EQ: *out = val_bool(a.c.i == b.c.i); return true;
        default:
            diag_error(L->diags, loc, "operator '%s' does not apply to bool constants", op_text(op));
            return false;
        }
    }
    if (a.c.is_float || b.c.is_float) {
        double x = a.c.is_float ? a.c.f : (double)a.c.i, y = b.c.is_float ? b.c.f : (double)b.c.i;
        switch (op) {
        case TK_PLUS: *out = val_float(x + y); return true;
        case TK_MINUS: *out = val_float(x - y); return true;
        case TK_STAR: *out = val_float(x * y); return true;
        case TK_SLASH: *out = val_float(x / y); return true;
        case TK_PERCENT: *out = val_float(fmod(x, y)); return true;
        case TK_LT: *out = val_bool(x < y); return true;
        case TK_LE: *out = val_bool(x <= y); return true;
        case TK_GT: *out = val_bool(x > y); return true;
        case TK_GE: *out = val_bool(x >= y); return true;
        case TK_EQ: *out = val_bool(x == y); return true;
        case TK_NE: *out = val_bool(x != y); return true;
        default:
            if (op == TK_ANDAND || op == TK_OROR)
                diag_error(L->diags, loc, "operator '%s' needs bool operands, found a float constant", op_text(op));
            else
                diag_error(L->diags, loc, "operator '%s' needs integer operands, found a float constant", op_text(op));
            return false;
        }
    }
    int64_t x = a.c.i, y = b.c.i, r;
    switch (op) {
    case TK_PLUS:
        if (__builtin_add_overflow(x, y, &r)) goto overflow;
        break;
    case TK_MINUS:
        if (__builtin_sub_overflow(x, y, &r)) goto overflow;
        break;
    case TK_STAR:
        if (__builtin_mul_overflow(x, y, &r)) goto overflow;
        break;
    case TK_SLASH:
    case TK_PERCENT:
        if (y == 0) {
            diag_error(L->diags, loc, "division by zero in a constant expression");
            return false;
        }
        if (x == INT64_MIN && y == -1) goto overflow;
        r = op == TK_SLASH ? x / y : x % y;
        break;
    case TK_AMP: r = x & y; break;
    case TK_PIPE: r = x | y; break;
    case TK_CARET: r = x ^ y; break;
    case TK_SHL:
        if (y < 0 || y > 62 || (x != 0 && (x > (INT64_MAX >> y) || x < (INT64_MIN >> y)))) goto overflow;
        r = (int64_t)((uint64_t)x << y);
        break;
    case TK_SHR: r = (y < 0 || y > 63) ? (x < 0 ? -1 : 0) : x >> y; break;
    case TK_LT: *out = val_bool(x < y); return true;
    case TK_LE: *out = val_bool(x <= y); return true;
    case TK_GT: *out = val_bool(x > y); return true;
    case TK_GE: *out = val_bool(x >= y); return true;
    case TK_EQ: *out = val_bool(x == y); return true;
    case TK_NE: *out = val_bool(x != y); return true;
    default:
        diag_error(L->diags, loc, "operator '%s' needs bool operands, found integer constants", op_text(op));
        return false;
    }
    *out = val_int(r);
    return true;
overflow:
    diag_error(L->diags, loc, "integer overflow in a constant expression");
    return false;
}

/* ---- shapes --------------------------------------------------------------------------------- */
static bool broadcast_shapes(const IrType *a, const IrType *b, int *rank, int64_t *shape) {
    int r = a->rank > b->rank ? a->rank : b->rank;
    for (int i = 0; i < r; i++) {
        int ia = i - (r - a->rank), ib = i - (r - b->rank);
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1) return false;
        shape[i] = da == 1 ? db : da;
    }
    *rank = r;
    return true;
}

/* Reshapes/splats/broadcasts v to `shape` (which v broadcasts to). */
static IrValue *broadcast_to(Lower *L, IrValue *v, int rank, const int64_t *shape) {
    const IrType *t = v->type;
    bool same = t->rank == rank;
    for (int i = 0; same && i < rank; i++) same = t->shape[i] == shape[i];
    if (same) return v;
    IrModule *m = L->module;
    if (t->rank == 0) return ir_op1(&L->b, OP_SPLAT, ir_tile_type(m, t->elem, rank, shape), v);
    if (t->rank < rank) {
        int64_t padded[IR_MAX_RANK];
        int pad = rank - t->rank;
        for (int i = 0; i < rank; i++) padded[i] = i < pad ? 1 : t->shape[i - pad];
        v = ir_op1(&L->b, OP_RESHAPE, ir_tile_type(m, t->elem, rank, padded), v);
        t = v->type;
    }
    same = true;
    for (int i = 0; i < rank; i++) same = same && t->shape[i] == shape[i];
    return same ? v : ir_op1(&L->b, OP_BROADCAST, ir_tile_type(m, t->elem, rank, shape), v);
}

/* Makes v a value of exactly type `to`: constants are typed, scalars splat and size-1 dims
 * broadcast; element types never change silently. */
IrValue *lower_coerce(Lower *L, Val v, const IrType *to, SrcLoc loc, const char *what) {
    char ta[64], tb[64];
    if (v.kind == VAL_POISON) return NULL;
    if (v.kind == VAL_CONST) return lower_coerce_const(L, v, to, loc);
    IrValue *x = v.value;
    if (x->type == to) return x;
    int rank;
    int64_t shape[IR_MAX_RANK];
    if (x->type->kind == TY_TILE && to->kind == TY_TILE && elem_eq(x->type->elem, to->elem) &&
        broadcast_shapes(x->type, to, &rank, shape) && rank == to->rank &&
        memcmp(shape, to->shape, sizeof(int64_t) * (size_t)rank) == 0) {
        L->b.loc = loc;
        return broadcast_to(L, x, rank, to->shape);
    }
    diag_error(L->diags, loc, "%s: expected %s, found %s", what, lower_type_str(to, ta, sizeof ta),
               lower_type_str(x->type, tb, sizeof tb));
    return NULL;
}

/* Makes a and b IR values of one type (element type and broadcast shape). */
static bool unify(Lower *L, Val *a, Val *b, SrcLoc loc, const char *what) {
    char ta[64], tb[64];
    if (a->kind == VAL_CONST && b->kind == VAL_CONST) {
        IrValue *x = lower_default(L, *a, loc);
        if (!x) return false;
        *a = val_of(x);
    }
    if (a->kind == VAL_CONST) {
        IrValue *x = lower_coerce_const(L, *a, ir_scalar_type(L->module, b->value->type->elem), loc);
        if (!x) return false;
        *a = val_of(x);
    }
    if (b->kind == VAL_CONST) {
        IrValue *y = lower_coerce_const(L, *b, ir_scalar_type(L->module, a->value->type->elem), loc);
        if (!y) return false;
        *b = val_of(y);
    }
    const IrType *x = a->value->type, *y = b->value->type;
    if (x->kind != TY_TILE || y->kind != TY_TILE) {
        diag_error(L->diags, loc, "%s needs values, not tensors; index the tensor to load from it", what);
        return false;
    }
    if (!elem_eq(x->elem, y->elem)) {
        diag_error(L->diags, loc, "%s: element types differ (%s and %s); use cast<...>() to convert",
                   what, elem_name(x->elem, ta), elem_name(y->elem, tb));
        return false;
    }
    int rank;
    int64_t shape[IR_MAX_RANK];
    if (!broadcast_shapes(x, y, &rank, shape)) {
        diag_error(L->diags, loc, "%s: shapes %s and %s do not broadcast", what,
                   lower_type_str(x, ta, sizeof ta), lower_type_str(y, tb, sizeof tb));
        return false;
    }
    L->b.loc = loc;
    a->value = broadcast_to(L, a->value, rank, shape);
    b->value = broadcast_to(L, b->value, rank, shape);
    return true;
}

Val lower_binary_op(Lower *L, int op, Val a, Val b, SrcLoc loc) {
    if (a.kind == VAL_POISON || b.kind == VAL_POISON) return POISON;
    if (a.kind == VAL_CONST && b.kind == VAL_CONST) {
        Val r;
        return fold_binary(L, op, a, b, loc, &r) ? r : POISON;
    }
    char what[32];
    snprintf(what, sizeof what, "operator '%s'", op_text(op));
    Val divisor = b; /* before unify types it */
    if (!unify(L, &a, &b, loc, what)) return POISON;
    ElemType e = a.value->type->elem;
    if (divisor.kind == VAL_CONST && !divisor.c.is_float && !divisor.is_bool && elem_is_integer(e)) {
        /* constant right operands that make an integer op undefined: an error, not garbage */
        if ((op == TK_SLASH || op == TK_PERCENT) && divisor.c.i == 0) {
            diag_error(L->diags, loc, "integer division by zero");
            return POISON;
        }
        if ((op == TK_SHL || op == TK_SHR) && (divisor.c.i < 0 || divisor.c.i >= e.bits)) {
            char en[16];
            diag_error(L->diags, loc, "shift by %lld is out of range for %s (0 to %d)", (long long)divisor.c.i,
                       elem_name(e, en), e.bits - 1);
            return POISON;
        }
    }
    L->b.loc = loc;
    OpCode code;
    IrCmp pred = CMP_EQ;
    switch (op) {
    case TK_PLUS: code = OP_ADD; break;
    case TK_MINUS: code = OP_SUB; break;
    case TK_STAR: code = OP_MUL; break;
    case TK_SLASH: code = OP_DIV; break;
    case TK_PERCENT: code = OP_REM; break;
    case TK_AMP: case TK_ANDAND: code = OP_AND; break;
    case TK_PIPE: case TK_OROR: code = OP_OR; break;
    case TK_CARET: code = OP_XOR; break;
    case TK_SHL: code = OP_SHL; break;
    case TK_SHR: code = OP_SHR; break;
    case TK_LT: code = OP_CMP; pred = CMP_LT; break;
    case TK_LE: code = OP_CMP; pred = CMP_LE; break;
    case TK_GT: code = OP_CMP; pred = CMP_GT; break;
    case TK_GE: code = OP_CMP; pred = CMP_GE; break;
    case TK_EQ: code = OP_CMP; pred = CMP_EQ; break;
    case TK_NE: code = OP_CMP; pred = CMP_NE; break;
    default: tile_unreachable();
    }
    char tn[64];
    bool arith = code == OP_ADD || code == OP_SUB || code == OP_MUL || code == OP_DIV || code == OP_REM;
    bool bits = code == OP_AND || code == OP_OR || code == OP_XOR;
    if (arith && elem_is_bool(e)) {
        diag_error(L->diags, loc, "%s does not apply to bool values", what);
        return POISON;
    }
    if ((op == TK_ANDAND || op == TK_OROR) && !elem_is_bool(e)) {
        diag_error(L->diags, loc, "%s needs bool operands, found %s", what, lower_type_str(a.value->type, tn, sizeof tn));
        return POISON;
    }
    if ((bits || code == OP_SHL || code == OP_SHR) && elem_is_float(e)) {
        diag_error(L->diags, loc, "%s needs integer operands, found %s", what, lower_type_str(a.value->type, tn, sizeof tn));
        return POISON;
    }
    if ((code == OP_SHL || code == OP_SHR) && elem_is_bool(e)) {
        diag_error(L->diags, loc, "%s needs integer operands, found %s", what, lower_type_str(a.value->type, tn, sizeof tn));
        return POISON;
    }
    if (code == OP_CMP) {
        if (elem_is_bool(e) && pred != CMP_EQ && pred != CMP_NE) {
            diag_error(L->diags, loc, "%s does not order bool values", what);
            return POISON;
        }
        return val_of(ir_cmp(&L->b, pred, a.value, b.value));
    }
    return val_of(ir_binary(&L->b, code, a.value, b.value));
}

/* ---- helpers for builtins --------------------------------------------------------------- */
bool lower_const_int(Lower *L, const AstNode *e, const char *what, int64_t *out) {
    Val v = lower_expr(L, e);
    if (v.kind == VAL_POISON) return false;
    if (v.kind != VAL_CONST || v.c.is_float || v.is_bool) {
        diag_error(L->diags, e->loc, "%s must be a compile-time integer constant", what);
        return false;
    }
    *out = v.c.i;
    return true;
}

/* The number of elements of a shape of positive dimensions, INT64_MAX when that overflows (the
 * dimensions are user constants, each checked alone, so their product may not fit). */
static int64_t shape_numel(int rank, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < rank; i++)
        if (__builtin_mul_overflow(n, shape[i], &n)) return INT64_MAX;
    return n;
}

enum { MAX_TILE_ELEMENTS = 1 << 22 };
/* Nesting of lower_expr, the parser's expression limit (lang/SPEC.md section 7): it bounds the
 * C stack (about 700 bytes a level, so under 1 MiB), device-function calls included. */
enum { MAX_LOWER_DEPTH = PARSE_MAX_EXPR_DEPTH };

/* Evaluates a list of dims to a shape; reports bad sizes. */
static bool lower_shape(Lower *L, const AstList *dims, SrcLoc loc, int *rank, int64_t *shape) {
    if (!dims || dims->len == 0) {
        diag_error(L->diags, loc, "a tile shape needs at least one dimension");
        return false;
    }
    if (dims->len > IR_MAX_RANK) {
        diag_error(L->diags, loc, "tiles have at most %d dimensions, found %u", IR_MAX_RANK, dims->len);
        return false;
    }
    int64_t total = 1;
    for (uint32_t i = 0; i < dims->len; i++) {
        if (!lower_const_int(L, dims->items[i], "a tile dimension", &shape[i])) return false;
        if (shape[i] <= 0) {
            diag_error(L->diags, dims->items[i]->loc, "tile dimension must be positive, found %lld",
                       (long long)shape[i]);
            return false;
        }
        if (shape[i] > MAX_TILE_ELEMENTS || (total *= shape[i]) > MAX_TILE_ELEMENTS) {
            diag_error(L->diags, dims->items[i]->loc, "tile has more than %d elements", MAX_TILE_ELEMENTS);
            return false;
        }
    }
    *rank = (int)dims->len;
    return true;
}

static bool normalize_axis(Lower *L, int64_t axis, int rank, SrcLoc loc, int *out) {
    if (axis < -rank || axis >= rank) {
        diag_error(L->diags, loc, "axis %lld is out of range for a value of rank %d", (long long)axis, rank);
        return false;
    }
    *out = (int)(axis < 0 ? axis + rank : axis);
    return true;
}

/* Lowers a call argument that must be a value (tile or scalar), typing constants by default. */
static IrValue *value_arg(Lower *L, const AstNode *e) {
    Val v = lower_expr(L, e);
    if (v.kind == VAL_VALUE && v.value->type->kind != TY_TILE) {
        diag_error(L->diags, e->loc, "expected a value, found a tensor; index the tensor to load from it");
        return NULL;
    }
    return lower_default(L, v, e->loc);
}

typedef struct CallArgs {
    const AstNode *pos[8];
    int npos;
    const AstNode *axis;   /* axis= keyword */
} CallArgs;

static bool split_args(Lower *L, const AstNode *call, int min, int max, bool allow_axis, CallArgs *out) {
    memset(out, 0, sizeof *out);
    const AstList *args = call->args;
    for (uint32_t i = 0; args && i < args->len; i++) {
        const AstNode *a = args->items[i];
        if (a->kind == AST_KWARG) {
            if (!allow_axis || strcmp(a->name, "axis") != 0) {
                diag_error(L->diags, a->loc, "%s() has no parameter named '%s'", call->name, a->name);
                return false;
            }
            if (out->axis) {
                diag_error(L->diags, a->loc, "axis given twice");
                return false;
            }
            out->axis = a->lhs;
            continue;
        }
        if (out->axis) {
            diag_error(L->diags, a->loc, "positional argument after a keyword argument");
            return false;
        }
        if (out->npos == 8) {
            diag_error(L->diags, a->loc, "too many arguments to %s()", call->name);
            return false;
        }
        out->pos[out->npos++] = a;
    }
    if (out->npos < min || out->npos > max) {
        if (min == max)
            diag_error(L->diags, call->loc, "%s() takes %d argument%s, %d given", call->name, min,
                       min == 1 ? "" : "s", out->npos);
        else
            diag_error(L->diags, call->loc, "%s() takes %d to %d arguments, %d given", call->name, min,
                       max, out->npos);
        return false;
    }
    return true;
}

static IrValue *require_float(Lower *L, IrValue *v, const char *fn, SrcLoc loc) {
    char tn[64];
    if (!v) return NULL;
    if (!elem_is_float(v->type->elem)) {
        diag_error(L->diags, loc, "%s() needs a float operand, found %s; use cast<f32>(...)", fn,
                   lower_type_str(v->type, tn, sizeof tn));
        return NULL;
    }
    return v;
}

static Val math_unary(Lower *L, const AstNode *call, OpCode code) {
    CallArgs a;
    if (!split_args(L, call, 1, 1, false, &a)) return POISON;
    Val x = lower_expr(L, a.pos[0]);
    if (x.kind == VAL_CONST && !x.is_bool) {
        /* math on a constant: compute in f32 IR so that folding and the VM agree */
        x = val_of(lower_materialize(L, x, elem_f32(), a.pos[0]->loc));
    }
    IrValue *v = x.kind == VAL_VALUE ? x.value : lower_default(L, x, call->loc);
    if (!v) return POISON;
    if (v->type->kind != TY_TILE) {
        diag_error(L->diags, call->loc, "%s() needs a value, found a tensor", call->name);
        return POISON;
    }
    bool int_ok = code == OP_ABS;
    if (!(int_ok && elem_is_integer(v->type->elem)) && !require_float(L, v, call->name, call->loc))
        return POISON;
    L->b.loc = call->loc;
    return val_of(ir_unary(&L->b, code, v));
}

static Val reduce_call(Lower *L, const AstNode *call, IrReduce kind, bool scan) {
    CallArgs a;
    if (!split_args(L, call, 1, 1, true, &a)) return POISON;
    IrValue *x = value_arg(L, a.pos[0]);
    if (!x) return POISON;
    const IrType *t = x->type;
    char tn[64];
    if (t->rank == 0) {
        diag_error(L->diags, call->loc, "%s() needs a tile, found the scalar %s", call->name,
                   lower_type_str(t, tn, sizeof tn));
        return POISON;
    }
    if (elem_is_bool(t->elem)) {
        diag_error(L->diags, call->loc, "%s() does not apply to bool tiles; cast them first", call->name);
        return POISON;
    }
    L->b.loc = call->loc;
    if (!a.axis) {
        if (scan) {
            int axis = t->rank - 1;
            IrOp *op = ir_build(&L->b, OP_SCAN, &x, 1, &t, 1);
            op->ints[0] = kind, op->ints[1] = axis, op->nints = 2;
            return val_of(op->results[0]);
        }
        /* all axes: reduce the last one until a scalar remains */
        while (x->type->rank > 0) {
            const IrType *rt = ir_tile_type(L->module, t->elem, x->type->rank - 1, x->type->shape);
            IrOp *op = ir_build(&L->b, OP_REDUCE, &x, 1, &rt, 1);
            op->ints[0] = kind, op->ints[1] = x->type->rank - 1, op->nints = 2;
            x = op->results[0];
        }
        return val_of(x);
    }
    int64_t axis64;
    int axis;
    if (!lower_const_int(L, a.axis, "axis", &axis64) || !normalize_axis(L, axis64, t->rank, a.axis->loc, &axis))
        return POISON;
    L->b.loc = call->loc;
    const IrType *rt = t;
    if (!scan) {
        int64_t shape[IR_MAX_RANK];
        int r = 0;
        for (int i = 0; i < t->rank; i++)
            if (i != axis) shape[r++] = t->shape[i];
        rt = ir_tile_type(L->module, t->elem, r, shape);
    }
    IrOp *op = ir_build(&L->b, scan ? OP_SCAN : OP_REDUCE, &x, 1, &rt, 1);
    op->ints[0] = kind, op->ints[1] = axis, op->nints = 2;
    return val_of(op->results[0]);
}

static Val min_max(Lower *L, const AstNode *call, bool is_max) {
    CallArgs a;
    if (!split_args(L, call, 1, 2, true, &a)) return POISON;
    if (a.npos == 1) return reduce_call(L, call, is_max ? RED_MAX : RED_MIN, false);
    if (a.axis) {
        diag_error(L->diags, a.axis->loc, "%s(a, b) is elementwise and takes no axis", call->name);
        return POISON;
    }
    Val x = lower_expr(L, a.pos[0]), y = lower_expr(L, a.pos[1]);
    if (x.kind == VAL_POISON || y.kind == VAL_POISON) return POISON;
    if (x.kind == VAL_CONST && y.kind == VAL_CONST && !x.is_bool && !y.is_bool) {
        Val lt;
        if (!fold_binary(L, TK_LT, x, y, call->loc, &lt)) return POISON;
        return (lt.c.i != 0) == is_max ? y : x;
    }
    if (!unify(L, &x, &y, call->loc, is_max ? "max()" : "min()")) return POISON;
    if (elem_is_bool(x.value->type->elem)) {
        diag_error(L->diags, call->loc, "%s() does not apply to bool values", call->name);
        return POISON;
    }
    L->b.loc = call->loc;
    return val_of(ir_binary(&L->b, is_max ? OP_MAX : OP_MIN, x.value, y.value));
}

static Val where_call(Lower *L, const AstNode *call) {
    CallArgs a;
    if (!split_args(L, call, 3, 3, false, &a)) return POISON;
    Val c = lower_expr(L, a.pos[0]), x = lower_expr(L, a.pos[1]), y = lower_expr(L, a.pos[2]);
    if (c.kind == VAL_POISON || x.kind == VAL_POISON || y.kind == VAL_POISON) return POISON;
    if (c.kind == VAL_CONST) {
        if (!c.is_bool) {
            diag_error(L->diags, a.pos[0]->loc, "where() needs a bool condition, found %s constant",
                       c.c.is_float ? "a float" : "an integer");
            return POISON;
        }
    }
    if (!unify(L, &x, &y, call->loc, "where()")) return POISON;
    IrValue *cv = lower_default(L, c, a.pos[0]->loc);
    if (!cv) return POISON;
    char tn[64];
    if (cv->type->kind != TY_TILE || !elem_is_bool(cv->type->elem)) {
        diag_error(L->diags, a.pos[0]->loc, "where() needs a bool condition, found %s",
                   lower_type_str(cv->type, tn, sizeof tn));
        return POISON;
    }
    int rank;
    int64_t shape[IR_MAX_RANK];
    if (!broadcast_shapes(cv->type, x.value->type, &rank, shape)) {
        char tv[64];
        diag_error(L->diags, a.pos[0]->loc, "where(): the condition %s does not broadcast with the values %s",
                   lower_type_str(cv->type, tn, sizeof tn), lower_type_str(x.value->type, tv, sizeof tv));
        return POISON;
    }
    L->b.loc = call->loc;
    cv = broadcast_to(L, cv, rank, shape);
    IrValue *ops[3] = {cv, broadcast_to(L, x.value, rank, shape), broadcast_to(L, y.value, rank, shape)};
    return val_of(ir_build(&L->b, OP_SELECT, ops, 3, &ops[1]->type, 1)->results[0]);
}

static Val dot_call(Lower *L, const AstNode *call) {
    CallArgs a;
    if (!split_args(L, call, 2, 3, false, &a)) return POISON;
    IrValue *x = value_arg(L, a.pos[0]), *y = value_arg(L, a.pos[1]);
    if (!x || !y) return POISON;
    char ta[64], tb[64];
    const IrType *tx = x->type, *ty = y->type;
    if (tx->rank != 2 || ty->rank != 2 || tx->shape[1] != ty->shape[0]) {
        if (tx->rank == 3 || ty->rank == 3) return lower_batched_dot(L, call, x, y, a.npos == 3 ? a.pos[2] : NULL);
        diag_error(L->diags, call->loc, "dot() needs tiles [M, K] and [K, N], found %s and %s",
                   lower_type_str(tx, ta, sizeof ta), lower_type_str(ty, tb, sizeof tb));
        return POISON;
    }
    if (elem_is_bool(tx->elem) || elem_is_bool(ty->elem) ||
        elem_is_float(tx->elem) != elem_is_float(ty->elem)) {
        diag_error(L->diags, call->loc, "dot() needs two float or two integer tiles, found %s and %s",
                   lower_type_str(tx, ta, sizeof ta), lower_type_str(ty, tb, sizeof tb));
        return POISON;
    }
    if (elem_is_float(tx->elem) && !elem_eq(tx->elem, ty->elem)) {
        /* SPEC 6.5: float operands have one type (the tensor cores take one type) */
        diag_error(L->diags, call->loc, "dot() of %s and %s: float operands must have one element type; "
                   "cast<...>() one of them", elem_name(tx->elem, ta), elem_name(ty->elem, tb));
        return POISON;
    }
    int64_t shape[2] = {tx->shape[0], ty->shape[1]};
    IrValue *acc;
    L->b.loc = call->loc;
    if (a.npos == 3) {
        Val av = lower_expr(L, a.pos[2]);
        if (av.kind == VAL_POISON) return POISON;
        ElemType ae = elem_is_float(tx->elem) ? elem_f32() : elem_i32();
        if (av.kind == VAL_CONST) {
            acc = lower_coerce_const(L, av, ir_tile_type(L->module, ae, 2, shape), a.pos[2]->loc);
            if (!acc) return POISON;
        } else {
            acc = av.value;
            if (acc->type->kind != TY_TILE || acc->type->rank != 2 || acc->type->shape[0] != shape[0] ||
                acc->type->shape[1] != shape[1] || elem_is_bool(acc->type->elem)) {
                diag_error(L->diags, a.pos[2]->loc, "dot(): the accumulator must be a [%lld, %lld] tile, found %s",
                           (long long)shape[0], (long long)shape[1], lower_type_str(acc->type, ta, sizeof ta));
                return POISON;
            }
        }
    } else {
        ElemType ae = elem_is_float(tx->elem) ? elem_f32() : elem_i32();
        const IrType *t = ir_tile_type(L->module, ae, 2, shape);
        /* one zero of the accumulator's kind (an integer const of a float type is invalid IR) */
        acc = elem_is_float(ae) ? ir_const_float(&L->b, t, 0.0) : ir_const_int(&L->b, t, 0);
    }
    L->b.loc = call->loc;
    IrValue *ops[3] = {x, y, acc};
    return val_of(ir_build(&L->b, OP_DOT, ops, 3, &acc->type, 1)->results[0]);
}

static bool list_ints(Lower *L, const AstNode *list, const char *what, int *n, int64_t *out) {
    if (!list || list->kind != AST_LIST) {
        diag_error(L->diags, list ? list->loc : (SrcLoc){0}, "%s must be a list like [a, b]", what);
        return false;
    }
    if (!list->args || list->args->len == 0 || list->args->len > IR_MAX_RANK) {
        diag_error(L->diags, list->loc, "%s must have 1 to %d entries", what, IR_MAX_RANK);
        return false;
    }
    for (uint32_t i = 0; i < list->args->len; i++)
        if (!lower_const_int(L, list->args->items[i], what, &out[i])) return false;
    *n = (int)list->args->len;
    return true;
}

static Val shape_call(Lower *L, const AstNode *call, OpCode code) {
    CallArgs a;
    int min = code == OP_TRANSPOSE ? 1 : 2;
    if (!split_args(L, call, min, 2, false, &a)) return POISON;
    IrValue *x = value_arg(L, a.pos[0]);
    if (!x) return POISON;
    const IrType *t = x->type;
    char tn[64];
    int64_t shape[IR_MAX_RANK];
    L->b.loc = call->loc;
    if (code == OP_EXPAND_DIMS) {
        int64_t axis;
        if (!lower_const_int(L, a.pos[1], "axis", &axis)) return POISON;
        if (t->rank >= IR_MAX_RANK) {
            diag_error(L->diags, call->loc, "expand(): tiles have at most %d dimensions", IR_MAX_RANK);
            return POISON;
        }
        int ax;
        if (!normalize_axis(L, axis, t->rank + 1, a.pos[1]->loc, &ax)) return POISON;
        for (int i = 0, j = 0; i <= t->rank; i++) shape[i] = i == ax ? 1 : t->shape[j++];
        IrOp *op = ir_build(&L->b, OP_EXPAND_DIMS, &x, 1,
                            (const IrType *[]){ir_tile_type(L->module, t->elem, t->rank + 1, shape)}, 1);
        op->ints[0] = ax, op->nints = 1;
        return val_of(op->results[0]);
    }
    if (code == OP_TRANSPOSE) {
        int64_t perm[IR_MAX_RANK];
        int n = 2;
        if (a.npos == 2) {
            if (!list_ints(L, a.pos[1], "the permutation", &n, perm)) return POISON;
        } else {
            perm[0] = 1, perm[1] = 0;
        }
        if (n != t->rank) {
            if (a.npos == 2)
                diag_error(L->diags, a.pos[1]->loc, "transpose(): the permutation has %d entries but %s has rank %d",
                           n, lower_type_str(t, tn, sizeof tn), t->rank);
            else
                diag_error(L->diags, call->loc,
                           "transpose(x) swaps the two axes of a matrix, but %s has rank %d; give a permutation: "
                           "transpose(x, [...])", lower_type_str(t, tn, sizeof tn), t->rank);
            return POISON;
        }
        bool seen[IR_MAX_RANK] = {0};
        for (int i = 0; i < n; i++) {
            if (perm[i] < 0 || perm[i] >= n || seen[perm[i]]) {
                diag_error(L->diags, a.pos[1]->loc, "transpose(): not a permutation of 0..%d", n - 1);
                return POISON;
            }
            seen[perm[i]] = true;
            shape[i] = t->shape[perm[i]];
        }
        IrOp *op = ir_build(&L->b, OP_TRANSPOSE, &x, 1,
                            (const IrType *[]){ir_tile_type(L->module, t->elem, n, shape)}, 1);
        for (int i = 0; i < n; i++) op->ints[i] = perm[i];
        op->nints = (uint32_t)n;
        return val_of(op->results[0]);
    }
    int n;
    if (!list_ints(L, a.pos[1], "the shape", &n, shape)) return POISON;
    for (int i = 0; i < n; i++)
        if (shape[i] <= 0 || shape[i] > MAX_TILE_ELEMENTS) {
            diag_error(L->diags, a.pos[1]->loc, "tile dimension must be positive and at most %d", MAX_TILE_ELEMENTS);
            return POISON;
        }
    if (shape_numel(n, shape) > MAX_TILE_ELEMENTS) {
        diag_error(L->diags, a.pos[1]->loc, "tile has more than %d elements", MAX_TILE_ELEMENTS);
        return POISON;
    }
    const IrType *rt = ir_tile_type(L->module, t->elem, n, shape);
    if (code == OP_RESHAPE) {
        if (shape_numel(n, shape) != type_numel(t)) {
            diag_error(L->diags, call->loc, "reshape(): %s has %lld elements, the new shape %lld",
                       lower_type_str(t, tn, sizeof tn), (long long)type_numel(t), (long long)shape_numel(n, shape));
            return POISON;
        }
        return val_of(ir_op1(&L->b, OP_RESHAPE, rt, x));
    }
    int rank;
    int64_t out[IR_MAX_RANK];
    if (n < t->rank || !broadcast_shapes(t, rt, &rank, out) || rank != n ||
        memcmp(out, shape, sizeof(int64_t) * (size_t)n) != 0) {
        diag_error(L->diags, call->loc, "broadcast(): %s does not broadcast to the shape given",
                   lower_type_str(t, tn, sizeof tn));
        return POISON;
    }
    return val_of(broadcast_to(L, x, n, shape));
}

static Val arange_call(Lower *L, const AstNode *call) {
    CallArgs a;
    if (!split_args(L, call, 1, 2, false, &a)) return POISON;
    int64_t start = 0, end;
    if (a.npos == 2) {
        if (!lower_const_int(L, a.pos[0], "arange() start", &start) ||
            !lower_const_int(L, a.pos[1], "arange() end", &end))
            return POISON;
    } else if (!lower_const_int(L, a.pos[0], "arange() size", &end)) {
        return POISON;
    }
    /* the i32 range first: only then is end - start sure not to overflow */
    if (start < INT32_MIN || end > INT32_MAX || end <= start || end - start > MAX_TILE_ELEMENTS) {
        diag_error(L->diags, call->loc, "arange(%lld, %lld) must have 1 to %d elements within i32", (long long)start,
                   (long long)end, MAX_TILE_ELEMENTS);
        return POISON;
    }
    int64_t n = end - start;
    L->b.loc = call->loc;
    IrOp *op = ir_build(&L->b, OP_ARANGE, NULL, 0, (const IrType *[]){ir_tile_type(L->module, elem_i32(), 1, &n)}, 1);
    op->ints[0] = start, op->nints = 1;
    return val_of(op->results[0]);
}

static Val grid_query(Lower *L, const AstNode *call, OpCode code) {
    CallArgs a;
    int64_t axis;
    if (L->in_grid) {
        diag_error(L->diags, call->loc, "%s() has no value in the grid or its checks: they are computed once, before "
                   "any block runs", call->name);
        return POISON;
    }
    if (!split_args(L, call, 1, 1, false, &a) || !lower_const_int(L, a.pos[0], "the axis", &axis)) return POISON;
    if (axis < 0 || axis > 2) {
        diag_error(L->diags, a.pos[0]->loc, "%s() axis must be 0, 1 or 2, found %lld", call->name, (long long)axis);
        return POISON;
    }
    if (L->in_function) {
        /* allowed: device functions are inlined into kernels */
    }
    L->b.loc = call->loc;
    IrOp *op = ir_build(&L->b, code, NULL, 0, (const IrType *[]){ir_scalar_type(L->module, elem_i32())}, 1);
    op->ints[0] = axis, op->nints = 1;
    return val_of(op->results[0]);
}

/* num_sms(): the launch device's multiprocessor count, known on the host only, so only in the
 * grid and its checks; in the body, num_blocks(0) of a grid(min(num_sms(), n)) is the value. */
static Val num_sms_call(Lower *L, const AstNode *call) {
    CallArgs a;
    if (!split_args(L, call, 0, 0, false, &a)) return POISON;
    if (!L->in_grid) {
        diag_error(L->diags, call->loc, "num_sms() is known only in the grid and its checks (the host computes them "
                   "for the device); in the body, use num_blocks(axis) of a grid that uses num_sms()");
        return POISON;
    }
    L->b.loc = call->loc;
    IrOp *op = ir_build(&L->b, OP_NUM_SMS, NULL, 0, (const IrType *[]){ir_scalar_type(L->module, elem_i32())}, 1);
    return val_of(op->results[0]);
}

static Val cdiv_call(Lower *L, const AstNode *call) {
    CallArgs a;
    if (!split_args(L, call, 2, 2, false, &a)) return POISON;
    Val x = lower_expr(L, a.pos[0]), y = lower_expr(L, a.pos[1]);
    if (x.kind == VAL_POISON || y.kind == VAL_POISON) return POISON;
    if ((x.kind == VAL_CONST && (x.c.is_float || x.is_bool)) || (y.kind == VAL_CONST && (y.c.is_float || y.is_bool))) {
        diag_error(L->diags, call->loc, "cdiv() needs integer operands");
        return POISON;
    }
    Val one = val_int(1);
    Val sum = lower_binary_op(L, TK_PLUS, x, y, call->loc);
    Val num = lower_binary_op(L, TK_MINUS, sum, one, call->loc);
    if (num.kind == VAL_VALUE && !elem_is_integer(num.value->type->elem)) {
        diag_error(L->diags, call->loc, "cdiv() needs integer operands");
        return POISON;
    }
    return lower_binary_op(L, TK_SLASH, num, y, call->loc);
}

static Val fill_call(Lower *L, const AstNode *call, int which) {
    /* which: 0 zeros, 1 ones, 2 full */
    const IrType *elem_t;
    if (!call->type_arg || !lower_type(L, call->type_arg, &elem_t)) return POISON;
    if (elem_t->kind != TY_TILE || elem_t->rank != 0) {
        diag_error(L->diags, call->type_arg->loc, "%s<...> needs an element type", call->name);
        return POISON;
    }
    int rank;
    int64_t shape[IR_MAX_RANK];
    if (!call->shape) {
        diag_error(L->diags, call->loc, "%s<T> needs a shape: %s<T>[dims]", call->name, call->name);
        return POISON;
    }
    if (!lower_shape(L, call->shape, call->loc, &rank, shape)) return POISON;
    const IrType *t = ir_tile_type(L->module, elem_t->elem, rank, shape);
    int nargs = call->args ? (int)call->args->len : 0;
    if (which < 2) {
        if (nargs) {
            diag_error(L->diags, call->loc, "%s<T>[dims] takes no arguments", call->name);
            return POISON;
        }
        Val v = elem_is_bool(t->elem) ? val_bool(which) : val_int(which);
        return val_of(lower_coerce_const(L, v, t, call->loc));
    }
    if (nargs != 1 || call->args->items[0]->kind == AST_KWARG) {
        diag_error(L->diags, call->loc, "full<T>[dims](value) takes one value");
        return POISON;
    }
    Val v = lower_expr(L, call->args->items[0]);
    if (v.kind == VAL_POISON) return POISON;
    if (v.kind == VAL_CONST) {
        IrValue *c = lower_coerce_const(L, v, t, call->args->items[0]->loc);
        return c ? val_of(c) : POISON;
    }
    char ta[64], tb[64];
    if (v.value->type->kind != TY_TILE || v.value->type->rank != 0 || !elem_eq(v.value->type->elem, t->elem)) {
        diag_error(L->diags, call->args->items[0]->loc, "full<%s>: the value must be a scalar of type %s, found %s",
                   elem_name(t->elem, tb), tb, lower_type_str(v.value->type, ta, sizeof ta));
        return POISON;
    }
    L->b.loc = call->loc;
    return val_of(ir_op1(&L->b, OP_SPLAT, t, v.value));
}

static Val cast_call(Lower *L, const AstNode *call) {
    const IrType *to;
    if (!call->type_arg || !lower_type(L, call->type_arg, &to)) return POISON;
    if (to->kind != TY_TILE || to->rank != 0) {
        diag_error(L->diags, call->type_arg->loc, "cast<...> needs an element type");
        return POISON;
    }
    if (call->shape) {
        diag_error(L->diags, call->loc, "cast<T>(x) takes no shape");
        return POISON;
    }
    if (!call->args || call->args->len != 1 || call->args->items[0]->kind == AST_KWARG) {
        diag_error(L->diags, call->loc, "cast<T>(x) takes one value");
        return POISON;
    }
    Val v = lower_expr(L, call->args->items[0]);
    if (v.kind == VAL_POISON) return POISON;
    if (v.kind == VAL_CONST) {
        ElemType from = v.is_bool ? elem_bool() : v.c.is_float ? elem_f64() : elem_int(64);
        IrConst c = elem_convert(from, v.c, to->elem);
        L->b.loc = call->loc;
        if (elem_is_float(to->elem)) return val_of(ir_const_float(&L->b, to, c.f));
        return val_of(ir_const_int(&L->b, to, c.i));
    }
    if (v.value->type->kind != TY_TILE) {
        diag_error(L->diags, call->loc, "cast<T>(x) needs a value, found a tensor");
        return POISON;
    }
    if (elem_eq(v.value->type->elem, to->elem)) return v;
    L->b.loc = call->loc;
    return val_of(ir_op1(&L->b, OP_CAST, ir_type_with_elem(L->module, v.value->type, to->elem), v.value));
}

static Val sigmoid_call(Lower *L, const AstNode *call) {
    Val x = math_unary(L, call, OP_NEG);
    if (x.kind == VAL_POISON) return POISON;
    L->b.loc = call->loc;
    IrValue *e = ir_unary(&L->b, OP_EXP, x.value);
    Val den = lower_binary_op(L, TK_PLUS, val_int(1), val_of(e), call->loc);
    return lower_binary_op(L, TK_SLASH, val_int(1), den, call->loc);
}

/* ---- tensor indexing ------------------------------------------------------------------------ */
typedef struct IndexInfo {
    IrValue *tensor;
    int param;            /* parameter index of the tensor */
    uint32_t n;           /* one per tensor dimension */
    IrValue *index[IR_MAX_RANK];
    int rank;             /* result rank */
    int64_t shape[IR_MAX_RANK];
} IndexInfo;

static bool tensor_dim_fixed(Lower *L, int param, int axis, int64_t *size) {
    const IrParam *p = &L->b.function->params[param];
    if (p->dims[axis].symbol) return false;
    *size = p->dims[axis].size;
    return true;
}

/* Lowers t[items...] to per-dimension index operands shaped for one LOAD/STORE. */
static bool lower_index(Lower *L, const AstNode *e, IndexInfo *info) {
    memset(info, 0, sizeof *info);
    const AstNode *base = e->lhs;
    Binding *bnd = base->kind == AST_NAME ? lower_lookup(L, base->name) : NULL;
    bool shared = lower_names_shared(L, base); /* indexed like a tensor of constant shape */
    if (!bnd || (bnd->kind != BIND_TENSOR && !shared)) {
        if (base->kind == AST_NAME && !bnd) {
            diag_error(L->diags, base->loc, "unknown name '%s'", base->name);
            return false;
        }
        /* a name poisoned by an earlier error is silent */
        Val v = base->kind == AST_NAME ? lower_value_of(L, bnd, base->loc) : lower_expr(L, base);
        if (v.kind == VAL_POISON) return false;
        diag_error(L->diags, base->loc, "only tensor parameters can be indexed; tiles are not addressable");
        return false;
    }
    if (L->in_grid) {
        diag_error(L->diags, e->loc,
                   "the grid cannot read tensor data: it is computed on the host before the launch; compute it "
                   "from sizes and scalars, and let blocks without work return early");
        return false;
    }
    info->tensor = lower_value_of(L, bnd, base->loc).value;
    info->param = shared ? -1 : bnd->param_index;
    const IrType *tt = info->tensor->type;
    uint32_t nitems = e->args ? e->args->len : 0;
    if (nitems != (uint32_t)tt->rank) {
        diag_error(L->diags, e->loc, "%s '%s' has %d dimension%s, but %u ind%s given",
                   shared ? "shared tile" : "tensor", base->name, tt->rank,
                   tt->rank == 1 ? "" : "s", nitems, nitems == 1 ? "ex is" : "ices are");
        return false;
    }
    info->n = nitems;
    /* First pass: lower each item to a scalar or a tile and note its dims. */
    IrValue *items[IR_MAX_RANK];
    int first_dim[IR_MAX_RANK];
    for (uint32_t k = 0; k < nitems; k++) {
        const AstNode *it = e->args->items[k];
        IrValue *idx = NULL;
        L->b.loc = it->loc;
        if (it->kind == AST_SLICE || it->kind == AST_FULL_SLICE) {
            int64_t size;
            Val start = val_int(0);
            if (it->kind == AST_FULL_SLICE) {
                if (shared) {
                    size = tt->shape[k];
                } else if (!tensor_dim_fixed(L, info->param, (int)k, &size)) {
                    diag_error(L->diags, it->loc,
                               "':' needs a dimension of compile-time size, but dimension %u of '%s' is '%s'; "
                               "use 'start :+ size'", k, base->name, L->b.function->params[info->param].dims[k].symbol);
                    return false;
                }
            } else {
                if (!lower_const_int(L, it->rhs, "a slice size", &size)) return false;
                start = lower_expr(L, it->lhs);
                if (start.kind == VAL_POISON) return false;
            }
            if (size <= 0 || size > MAX_TILE_ELEMENTS) {
                diag_error(L->diags, it->loc, "slice size must be 1 to %d, found %lld", MAX_TILE_ELEMENTS, (long long)size);
                return false;
            }
            L->b.loc = it->loc;
            if (start.kind == VAL_CONST) {
                int64_t s;
                if (start.c.is_float || start.is_bool) {
                    diag_error(L->diags, it->lhs->loc, "slice start must be an integer, found %s constant",
                               start.is_bool ? "a bool" : "a float");
                    return false;
                }
                if (start.c.i < INT32_MIN || start.c.i > INT32_MAX - size) { /* no start + size: it may overflow */
                    diag_error(L->diags, it->lhs->loc, "the slice %lld :+ %lld is outside the range of i32",
                               (long long)start.c.i, (long long)size);
                    return false;
                }
                s = start.c.i;
                IrOp *op = ir_build(&L->b, OP_ARANGE, NULL, 0,
                                    (const IrType *[]){ir_tile_type(L->module, elem_i32(), 1, &size)}, 1);
                op->ints[0] = s, op->nints = 1;
                idx = op->results[0];
            } else {
                IrValue *s = start.value;
                if (s->type->kind != TY_TILE || s->type->rank != 0 || !elem_is_integer(s->type->elem)) {
                    char tn[64];
                    diag_error(L->diags, it->lhs->loc, "slice start must be an integer scalar, found %s",
                               lower_type_str(s->type, tn, sizeof tn));
                    return false;
                }
                IrOp *op = ir_build(&L->b, OP_ARANGE, NULL, 0,
                                    (const IrType *[]){ir_tile_type(L->module, elem_i32(), 1, &size)}, 1);
                op->nints = 1;
                IrValue *r = op->results[0];
                if (!elem_eq(s->type->elem, elem_i32()))
                    r = ir_op1(&L->b, OP_CAST, ir_tile_type(L->module, s->type->elem, 1, &size), r);
                idx = ir_binary(&L->b, OP_ADD, ir_op1(&L->b, OP_SPLAT, r->type, s), r);
            }
        } else {
            Val v = lower_expr(L, it);
            if (v.kind == VAL_POISON) return false;
            if (v.kind == VAL_CONST) {
                if (v.c.is_float || v.is_bool) {
                    diag_error(L->diags, it->loc, "tensor index must be an integer");
                    return false;
                }
                idx = v.c.i >= INT32_MIN && v.c.i <= INT32_MAX ? lower_materialize(L, v, elem_i32(), it->loc)
                                                               : lower_materialize(L, v, elem_int(64), it->loc);
            } else {
                idx = v.value;
                char tn[64];
                if (idx->type->kind != TY_TILE || !elem_is_integer(idx->type->elem)) {
                    diag_error(L->diags, it->loc, "tensor index must be an integer scalar or tile, found %s",
                               lower_type_str(idx->type, tn, sizeof tn));
                    return false;
                }
            }
        }
        items[k] = idx;
    }
    /* Index tiles of rank >= 2 broadcast with each other (SPEC 5.5): their common shape
     * stands where the first of them is; scalars add no dimension and every other index
     * (a slice, ':', a 1-D tile) adds its own, in order. */
    IrType group = {.kind = TY_TILE};
    const AstNode *group_item = NULL;
    for (uint32_t k = 0; k < nitems; k++) {
        const IrType *t = items[k]->type;
        if (t->rank < 2) continue;
        if (!group_item) {
            group.rank = t->rank;
            group.elem = t->elem;
            memcpy(group.shape, t->shape, sizeof(int64_t) * (size_t)t->rank);
            group_item = e->args->items[k];
            continue;
        }
        IrType merged = {.kind = TY_TILE};
        if (!broadcast_shapes(&group, t, &merged.rank, merged.shape)) {
            char ta[64], tb[64];
            diag_error(L->diags, e->args->items[k]->loc,
                       "index tile %s does not broadcast with the earlier index tiles %s (index tiles of rank 2 or "
                       "more broadcast with each other)",
                       lower_type_str(t, ta, sizeof ta), lower_type_str(&group, tb, sizeof tb));
            return false;
        }
        group = merged;
    }
    int group_first = -1;
    for (uint32_t k = 0; k < nitems; k++) {
        const IrType *t = items[k]->type;
        bool in_group = t->rank >= 2;
        if (in_group && group_first >= 0) {
            first_dim[k] = group_first + (group.rank - t->rank); /* right-aligned in the group */
            continue;
        }
        if (in_group) group_first = info->rank;
        first_dim[k] = info->rank + (in_group ? group.rank - t->rank : 0);
        const IrType *dims = in_group ? &group : t;
        for (int d = 0; d < dims->rank; d++) {
            if (info->rank == IR_MAX_RANK) {
                diag_error(L->diags, e->loc, "the indexed result would have more than %d dimensions", IR_MAX_RANK);
                return false;
            }
            info->shape[info->rank++] = dims->shape[d];
        }
    }
    if (shape_numel(info->rank, info->shape) > MAX_TILE_ELEMENTS) {
        diag_error(L->diags, e->loc, "the indexed tile has more than %d elements", MAX_TILE_ELEMENTS);
        return false;
    }
    /* Second pass: place each index's dims at its position among the result's dims. */
    for (uint32_t k = 0; k < nitems; k++) {
        IrValue *idx = items[k];
        if (idx->type->rank > 0 && idx->type->rank != info->rank) {
            int64_t shape[IR_MAX_RANK];
            for (int d = 0; d < info->rank; d++) shape[d] = 1;
            for (int d = 0; d < idx->type->rank; d++) shape[first_dim[k] + d] = idx->type->shape[d];
            L->b.loc = e->args->items[k]->loc;
            idx = ir_op1(&L->b, OP_RESHAPE, ir_tile_type(L->module, idx->type->elem, info->rank, shape), idx);
        }
        info->index[k] = idx;
    }
    return true;
}

static Val lower_load(Lower *L, const AstNode *e) {
    IndexInfo info;
    if (!lower_index(L, e, &info)) return POISON;
    IrValue *ops[1 + IR_MAX_RANK];
    ops[0] = info.tensor;
    for (uint32_t k = 0; k < info.n; k++) ops[1 + k] = info.index[k];
    const IrType *rt = ir_tile_type(L->module, info.tensor->type->elem, info.rank, info.shape);
    L->b.loc = e->loc;
    return val_of(ir_build(&L->b, OP_LOAD, ops, 1 + info.n, &rt, 1)->results[0]);
}

/* Stores (or atomically updates, atomic >= 0) `value` into the indexed tensor. */
static bool store_indexed(Lower *L, const AstNode *target, Val value, SrcLoc loc, int atomic) {
    IndexInfo info;
    if (value.kind == VAL_POISON || !lower_index(L, target, &info)) return false;
    const IrType *rt = ir_tile_type(L->module, info.tensor->type->elem, info.rank, info.shape);
    IrValue *v;
    char ta[64], tb[64];
    if (value.kind == VAL_CONST) {
        v = lower_coerce_const(L, value, rt, loc);
        if (!v) return false;
    } else {
        v = value.value;
        int rank;
        int64_t shape[IR_MAX_RANK];
        if (v->type->kind != TY_TILE) {
            diag_error(L->diags, loc, "cannot store a tensor; store a loaded tile instead");
            return false;
        }
        if (!elem_eq(v->type->elem, rt->elem)) {
            diag_error(L->diags, loc, "storing %s into a %s of %s; use cast<%s>(...)",
                       lower_type_str(v->type, ta, sizeof ta),
                       info.tensor->type->kind == TY_SHARED ? "shared tile" : "tensor", elem_name(rt->elem, tb), tb);
            return false;
        }
        if (!broadcast_shapes(v->type, rt, &rank, shape) || rank != rt->rank ||
            memcmp(shape, rt->shape, sizeof(int64_t) * (size_t)rank) != 0) {
            diag_error(L->diags, loc, "cannot store %s into a slice of shape %s", lower_type_str(v->type, ta, sizeof ta),
                       lower_type_str(rt, tb, sizeof tb));
            return false;
        }
        L->b.loc = loc;
        v = broadcast_to(L, v, rt->rank, rt->shape);
    }
    if (atomic >= 0 && elem_is_bool(rt->elem)) {
        diag_error(L->diags, loc, "atomics do not apply to bool tensors");
        return false;
    }
    IrValue *ops[2 + IR_MAX_RANK];
    ops[0] = info.tensor;
    for (uint32_t k = 0; k < info.n; k++) ops[1 + k] = info.index[k];
    ops[1 + info.n] = v;
    L->b.loc = loc;
    IrOp *op = ir_build(&L->b, atomic >= 0 ? OP_ATOMIC : OP_STORE, ops, 2 + info.n, NULL, 0);
    if (atomic >= 0) op->ints[0] = atomic, op->nints = 1;
    return true;
}

void lower_store(Lower *L, const AstNode *target, Val value, SrcLoc loc) {
    store_indexed(L, target, value, loc, -1);
}

/* The element types an atomic with a result supports on both devices (SPEC 6.7): 32- and 64-bit
 * integers for every kind; f32 and f64 for add, max, min and xchg; f16 and bf16 for add. */
static bool atomic_type_ok(int kind, ElemType e) {
    if ((e.kind == EK_INT || e.kind == EK_UINT) && (e.bits == 32 || e.bits == 64)) return true;
    if (kind < 0 || e.kind != EK_FLOAT) return false;
    if (e.bits == 32 || e.bits == 64) return kind == ATOMIC_ADD || kind == ATOMIC_MAX || kind == ATOMIC_MIN ||
                                              kind == ATOMIC_XCHG;
    return kind == ATOMIC_ADD && e.bits == 16; /* f16 and bf16 */
}

/* The value v for the access shape of an atomic: constants take the tensor's element type, tiles
 * must have it and broadcast to the shape. NULL after a diagnostic. */
static IrValue *atomic_operand(Lower *L, const AstNode *e, const IrType *rt) {
    Val value = lower_expr(L, e);
    if (value.kind == VAL_POISON) return NULL;
    if (value.kind == VAL_CONST) return lower_coerce_const(L, value, rt, e->loc);
    IrValue *v = value.value;
    char ta[64], tb[64];
    if (v->type->kind != TY_TILE || !elem_eq(v->type->elem, rt->elem)) {
        diag_error(L->diags, e->loc, "the atomic's value is %s, but the tensor holds %s; use cast<%s>(...)",
                   lower_type_str(v->type, ta, sizeof ta), elem_name(rt->elem, tb), tb);
        return NULL;
    }
    int rank;
    int64_t shape[IR_MAX_RANK];
    if (!broadcast_shapes(v->type, rt, &rank, shape) || rank != rt->rank ||
        memcmp(shape, rt->shape, sizeof(int64_t) * (size_t)rank) != 0) {
        diag_error(L->diags, e->loc, "the atomic's value %s does not broadcast to the indexed shape %s",
                   lower_type_str(v->type, ta, sizeof ta), lower_type_str(rt, tb, sizeof tb));
        return NULL;
    }
    L->b.loc = e->loc;
    return broadcast_to(L, v, rt->rank, rt->shape);
}

/* atomic_KIND(t[...], v [, sem=relaxed|acq_rel]) and atomic_cas(t[...], expected, desired [, sem=...])
 * (kind -1). A statement atomic_add or atomic_max that is relaxed stays the store-like OP_ATOMIC
 * (no result; every element type); everything else is ATOMIC_RMW or ATOMIC_CAS, whose result is
 * the tile of old values. */
static Val atomic_call(Lower *L, const AstNode *call, int kind) {
    const AstList *args = call->args;
    const AstNode *pos[3] = {0}, *sem = NULL;
    int npos = 0, want = kind < 0 ? 3 : 2;
    for (uint32_t i = 0; args && i < args->len; i++) {
        const AstNode *a = args->items[i];
        if (a->kind == AST_KWARG) {
            if (strcmp(a->name, "sem") != 0) {
                diag_error(L->diags, a->loc, "%s() has no parameter named '%s'", call->name, a->name);
                return POISON;
            }
            if (sem) {
                diag_error(L->diags, a->loc, "sem given twice");
                return POISON;
            }
            sem = a->lhs;
        } else if (sem) {
            diag_error(L->diags, a->loc, "positional argument after a keyword argument");
            return POISON;
        } else if (npos < 3) {
            pos[npos++] = a;
        } else {
            npos++;
        }
    }
    if (npos != want) {
        diag_error(L->diags, call->loc, "%s() takes %d arguments, %d given", call->name, want, npos);
        return POISON;
    }
    IrMemOrder order = MEM_RELAXED;
    if (sem) {
        if (sem->kind != AST_NAME || (strcmp(sem->name, "relaxed") != 0 && strcmp(sem->name, "acq_rel") != 0)) {
            diag_error(L->diags, sem->loc, "sem= must be relaxed or acq_rel");
            return POISON;
        }
        order = strcmp(sem->name, "acq_rel") == 0 ? MEM_ACQ_REL : MEM_RELAXED;
    }
    if (pos[0]->kind != AST_INDEX) {
        diag_error(L->diags, pos[0]->loc, "%s() needs an indexed tensor as its first argument: %s(t[i], %s)",
                   call->name, call->name, kind < 0 ? "expected, desired" : "v");
        return POISON;
    }
    bool statement = call == L->statement_expr;
    /* atomics on a shared tile are always atomic_rmw: the store-like OP_ATOMIC is global only */
    bool shared = lower_names_shared(L, pos[0]->lhs);
    if (statement && !shared && order == MEM_RELAXED && (kind == ATOMIC_ADD || kind == ATOMIC_MAX)) {
        Val v = lower_expr(L, pos[1]);
        store_indexed(L, pos[0], v, call->loc, kind);
        return POISON; /* a statement: its value is never used */
    }
    IndexInfo info;
    if (!lower_index(L, pos[0], &info)) return POISON;
    const IrType *rt = ir_tile_type(L->module, info.tensor->type->elem, info.rank, info.shape);
    if (!atomic_type_ok(kind, rt->elem)) {
        char e[16];
        diag_error(L->diags, call->loc, "%s() is not defined on %s of %s (see the types in SPEC 6.7)", call->name,
                   shared ? "shared tiles" : "tensors", elem_name(rt->elem, e));
        return POISON;
    }
    IrValue *ops[3 + IR_MAX_RANK];
    ops[0] = info.tensor;
    for (uint32_t k = 0; k < info.n; k++) ops[1 + k] = info.index[k];
    for (int k = 1; k < want; k++) {
        ops[info.n + (uint32_t)k] = atomic_operand(L, pos[k], rt);
        if (!ops[info.n + (uint32_t)k]) return POISON;
    }
    L->b.loc = call->loc;
    IrOp *op = ir_build(&L->b, kind < 0 ? OP_ATOMIC_CAS : OP_ATOMIC_RMW, ops, info.n + (uint32_t)want, &rt, 1);
    op->ints[0] = kind < 0 ? 0 : kind, op->ints[1] = order, op->nints = 2;
    return val_of(op->results[0]);
}

/* fence([sem=acq_rel]): orders the block's earlier memory accesses before its later ones, as seen
 * from other blocks (gpu scope). */
static Val fence_call(Lower *L, const AstNode *call) {
    const AstList *args = call->args;
    for (uint32_t i = 0; args && i < args->len; i++) {
        const AstNode *a = args->items[i];
        if (a->kind != AST_KWARG || strcmp(a->name, "sem") != 0 || a->lhs->kind != AST_NAME ||
            strcmp(a->lhs->name, "acq_rel") != 0) {
            diag_error(L->diags, a->loc, "fence() takes no arguments but sem=acq_rel");
            return POISON;
        }
    }
    if (call != L->statement_expr) {
        diag_error(L->diags, call->loc, "fence() has no value; use it as a statement");
        return POISON;
    }
    L->b.loc = call->loc;
    IrOp *op = ir_build(&L->b, OP_FENCE, NULL, 0, NULL, 0);
    op->ints[0] = MEM_ACQ_REL, op->nints = 1;
    return POISON;
}

/* ---- calls -------------------------------------------------------------------------------- */
typedef struct Builtin {
    const char *name;
    int kind;
    OpCode op;
} Builtin;

enum { B_UNARY, B_SIGMOID, B_SUM, B_CUMSUM, B_MIN, B_MAX, B_WHERE, B_DOT, B_SHAPE, B_ARANGE, B_BLOCK,
       B_CDIV, B_ZEROS, B_ONES, B_FULL, B_CAST, B_ATOMIC_ADD, B_ATOMIC_MAX,
       B_ATOMIC_MIN, B_ATOMIC_AND, B_ATOMIC_OR, B_ATOMIC_XCHG, B_ATOMIC_CAS, B_FENCE, B_NUM_SMS };

static const Builtin builtins[] = {
    {"exp", B_UNARY, OP_EXP}, {"exp2", B_UNARY, OP_EXP2}, {"log", B_UNARY, OP_LOG},
    {"log2", B_UNARY, OP_LOG2}, {"sqrt", B_UNARY, OP_SQRT}, {"rsqrt", B_UNARY, OP_RSQRT},
    {"abs", B_UNARY, OP_ABS}, {"tanh", B_UNARY, OP_TANH}, {"sin", B_UNARY, OP_SIN},
    {"cos", B_UNARY, OP_COS}, {"erf", B_UNARY, OP_ERF}, {"floor", B_UNARY, OP_FLOOR},
    {"ceil", B_UNARY, OP_CEIL}, {"sigmoid", B_SIGMOID, OP_EXP},
    {"sum", B_SUM, OP_REDUCE}, {"cumsum", B_CUMSUM, OP_SCAN}, {"min", B_MIN, OP_MIN},
    {"max", B_MAX, OP_MAX}, {"where", B_WHERE, OP_SELECT}, {"dot", B_DOT, OP_DOT},
    {"expand", B_SHAPE, OP_EXPAND_DIMS}, {"reshape", B_SHAPE, OP_RESHAPE},
    {"transpose", B_SHAPE, OP_TRANSPOSE}, {"broadcast", B_SHAPE, OP_BROADCAST},
    {"arange", B_ARANGE, OP_ARANGE}, {"block_id", B_BLOCK, OP_BLOCK_ID},
    {"num_blocks", B_BLOCK, OP_NUM_BLOCKS}, {"cdiv", B_CDIV, OP_DIV},
    {"zeros", B_ZEROS, OP_CONST}, {"ones", B_ONES, OP_CONST}, {"full", B_FULL, OP_CONST},
    {"cast", B_CAST, OP_CAST}, {"atomic_add", B_ATOMIC_ADD, OP_ATOMIC},
    {"atomic_max", B_ATOMIC_MAX, OP_ATOMIC},
    {"atomic_min", B_ATOMIC_MIN, OP_ATOMIC_RMW}, {"atomic_and", B_ATOMIC_AND, OP_ATOMIC_RMW},
    {"atomic_or", B_ATOMIC_OR, OP_ATOMIC_RMW}, {"atomic_xchg", B_ATOMIC_XCHG, OP_ATOMIC_RMW},
    {"atomic_cas", B_ATOMIC_CAS, OP_ATOMIC_CAS}, {"fence", B_FENCE, OP_FENCE},
    {"num_sms", B_NUM_SMS, OP_NUM_SMS},
};

static Val lower_call(Lower *L, const AstNode *call) {
    Val ext;
    if (lower_call_ext(L, call, &ext)) return ext; /* builtins of lower_ext.c */
    const Builtin *bi = NULL;
    for (size_t i = 0; i < sizeof builtins / sizeof *builtins; i++)
        if (strcmp(builtins[i].name, call->name) == 0) bi = &builtins[i];
    if (!bi) {
        Val selected;
        if (lower_select_call(L, call, &selected)) return selected;
        const AstNode *decl = lower_find_decl(L, AST_FUNCTION, call->name);
        if (decl) return lower_call_function(L, call, decl);
        if (lower_find_decl(L, AST_KERNEL, call->name)) {
            diag_error(L->diags, call->loc, "'%s' is a kernel; kernels cannot be called from device code", call->name);
            return POISON;
        }
        diag_error(L->diags, call->loc, "unknown function '%s'", call->name);
        return POISON;
    }
    bool generic = bi->kind == B_ZEROS || bi->kind == B_ONES || bi->kind == B_FULL || bi->kind == B_CAST;
    if (!generic && (call->type_arg || call->shape)) {
        diag_error(L->diags, call->loc, "%s() takes no type argument", call->name);
        return POISON;
    }
    switch (bi->kind) {
    case B_UNARY: return math_unary(L, call, bi->op);
    case B_SIGMOID: return sigmoid_call(L, call);
    case B_SUM: return reduce_call(L, call, RED_SUM, false);
    case B_CUMSUM: return reduce_call(L, call, RED_SUM, true);
    case B_MIN: return min_max(L, call, false);
    case B_MAX: return min_max(L, call, true);
    case B_WHERE: return where_call(L, call);
    case B_DOT: return dot_call(L, call);
    case B_SHAPE: return shape_call(L, call, bi->op);
    case B_ARANGE: return arange_call(L, call);
    case B_BLOCK: return grid_query(L, call, bi->op);
    case B_CDIV: return cdiv_call(L, call);
    case B_ZEROS: return fill_call(L, call, 0);
    case B_ONES: return fill_call(L, call, 1);
    case B_FULL: return fill_call(L, call, 2);
    case B_CAST: return cast_call(L, call);
    case B_ATOMIC_ADD: return atomic_call(L, call, ATOMIC_ADD);
    case B_ATOMIC_MAX: return atomic_call(L, call, ATOMIC_MAX);
    case B_ATOMIC_MIN: return atomic_call(L, call, ATOMIC_MIN);
    case B_ATOMIC_AND: return atomic_call(L, call, ATOMIC_AND);
    case B_ATOMIC_OR: return atomic_call(L, call, ATOMIC_OR);
    case B_ATOMIC_XCHG: return atomic_call(L, call, ATOMIC_XCHG);
    case B_ATOMIC_CAS: return atomic_call(L, call, -1);
    case B_FENCE: return fence_call(L, call);
    case B_NUM_SMS: return num_sms_call(L, call);
    }
    tile_unreachable();
}

/* ---- expressions ---------------------------------------------------------------------------- */
static Val lower_unary(Lower *L, const AstNode *e) {
    Val x = lower_expr(L, e->lhs);
    if (x.kind == VAL_POISON) return POISON;
    char tn[64];
    if (x.kind == VAL_CONST) {
        switch (e->op) {
        case TK_MINUS:
            if (x.is_bool) break;
            if (x.c.is_float) return val_float(-x.c.f);
            if (x.c.i == INT64_MIN) {
                diag_error(L->diags, e->loc, "integer overflow in a constant expression");
                return POISON;
            }
            return val_int(-x.c.i);
        case TK_NOT:
            if (!x.is_bool) break;
            return val_bool(!x.c.i);
        case TK_TILDE:
            if (x.is_bool || x.c.is_float) break;
            return val_int(~x.c.i);
        }
        diag_error(L->diags, e->loc, "operator '%s' does not apply to %s constant", op_text(e->op),
                   x.is_bool ? "a bool" : x.c.is_float ? "a float" : "an integer");
        return POISON;
    }
    IrValue *v = x.value;
    if (v->type->kind != TY_TILE) {
        diag_error(L->diags, e->loc, "operator '%s' needs a value, not a tensor; index the tensor to load from it",
                   op_text(e->op));
        return POISON;
    }
    ElemType el = v->type->elem;
    L->b.loc = e->loc;
    switch (e->op) {
    case TK_MINUS:
        if (elem_is_bool(el)) break;
        return val_of(ir_unary(&L->b, OP_NEG, v));
    case TK_NOT:
        if (!elem_is_bool(el)) {
            diag_error(L->diags, e->loc, "'!' needs a bool operand, found %s; use '~' for bitwise not",
                       lower_type_str(v->type, tn, sizeof tn));
            return POISON;
        }
        return val_of(ir_unary(&L->b, OP_NOT, v));
    case TK_TILDE:
        if (!elem_is_integer(el)) break;
        return val_of(ir_unary(&L->b, OP_NOT, v));
    }
    diag_error(L->diags, e->loc, "operator '%s' does not apply to %s", op_text(e->op), lower_type_str(v->type, tn, sizeof tn));
    return POISON;
}

Val lower_expr(Lower *L, const AstNode *e) {
    if (L->too_deep || ++L->depth > MAX_LOWER_DEPTH) {
        if (!L->too_deep) {
            L->depth--;
            diag_error(L->diags, e->loc, "nesting too deep: an expression of more than %d levels, device-function calls included",
                       MAX_LOWER_DEPTH);
        }
        L->too_deep = true;
        return POISON;
    }
    Val r = POISON;
    switch (e->kind) {
    case AST_INT:
        /* the parser keeps up to 64 unsigned bits; constants are signed 64-bit */
        if (e->int_overflow || e->int_value < 0)
            diag_error(L->diags, e->loc, "integer literal is too large (the limit is 2^63 - 1)");
        else r = val_int(e->int_value);
        break;
    case AST_FLOAT:
        if (isinf(e->float_value)) diag_error(L->diags, e->loc, "float literal is too large");
        else r = val_float(e->float_value);
        break;
    case AST_BOOL: r = val_bool(e->int_value != 0); break;
    case AST_NAME: {
        Binding *bnd = lower_lookup(L, e->name);
        if (bnd) r = lower_value_of(L, bnd, e->loc);
        else if (strcmp(e->name, "inf") == 0) r = val_float(INFINITY);
        else if (strcmp(e->name, "nan") == 0) r = val_float(NAN);
        else diag_error(L->diags, e->loc, "unknown name '%s'", e->name);
        if (r.kind == VAL_VALUE && r.value->type->kind == TY_SHARED) {
            diag_error(L->diags, e->loc, "shared tile '%s' is not a value: load from it (%s[...]) or store into it "
                       "(%s[...] = v)", e->name, e->name, e->name);
            r = POISON;
        }
        break;
    }
    case AST_UNARY: r = lower_unary(L, e); break;
    case AST_BINARY: {
        Val a = lower_expr(L, e->lhs);
        Val b = lower_expr(L, e->rhs);
        r = lower_binary_op(L, e->op, a, b, e->loc);
        break;
    }
    case AST_CALL: r = lower_call(L, e); break;
    case AST_INDEX: r = lower_load(L, e); break;
    case AST_COND: r = lower_conditional(L, e); break;
    case AST_STRING:
        diag_error(L->diags, e->loc, "a string is only valid as the message of static_assert() or check()");
        break;
    case AST_KWARG:
        diag_error(L->diags, e->loc, "keyword argument '%s' outside a call", e->name);
        break;
    case AST_SLICE:
    case AST_FULL_SLICE:
        diag_error(L->diags, e->loc, "a slice is only valid inside a tensor index");
        break;
    case AST_LIST:
        diag_error(L->diags, e->loc, "a list is only valid as a shape or permutation argument");
        break;
    default:
        diag_error(L->diags, e->loc, "expected an expression");
        break;
    }
    L->depth--;
    return r;
}

/* ---- masked loads and stores (SPEC 5.6) ---------------------------------------------------
 * `load(t[...], mask=m, other=v)` and `store(t[...], v, mask=m)`. Every access is bounds-checked
 * per element, so a load never faults whatever its indices: a masked load is the plain load
 * (vectorized on the GPU as a slice is) followed by select(m, loaded, other). A store must not
 * write where the mask is false, so the mask is folded into its first index: -1 there, which
 * is out of bounds, so the element is not written (the GPU's per-element bounds predicate). */
static IrValue *mask_first_index(Lower *L, IndexInfo *info, IrValue *mask) {
    IrValue *idx = info->index[0];
    ElemType e = idx->type->elem;
    if (e.kind == EK_UINT || e.bits < 8) {
        /* -1 must not wrap to a valid position: go through a signed type that holds every index */
        e = elem_int(64);
        idx = ir_op1(&L->b, OP_CAST, ir_type_with_elem(L->module, idx->type, e), idx);
    }
    idx = broadcast_to(L, idx, info->rank, info->shape);
    IrValue *none = ir_const_int(&L->b, idx->type, -1);
    IrValue *ops[3] = {mask, idx, none};
    return ir_build(&L->b, OP_SELECT, ops, 3, &idx->type, 1)->results[0];
}

/* The mask= argument made a bool of the indexed shape; *constant is set when it is a constant
 * (then the result is NULL). */
static IrValue *mask_arg(Lower *L, const AstNode *e, const IndexInfo *info, int *constant) {
    char ta[64], tb[64];
    *constant = -1;
    Val m = lower_expr(L, e);
    if (m.kind == VAL_POISON) return NULL;
    if (m.kind == VAL_CONST) {
        if (!m.is_bool) {
            diag_error(L->diags, e->loc, "mask must be bool, found %s constant", m.c.is_float ? "a float" : "an integer");
            return NULL;
        }
        *constant = m.c.i != 0;
        return NULL;
    }
    IrValue *v = m.value;
    const IrType *shape = ir_tile_type(L->module, elem_bool(), info->rank, info->shape);
    int rank;
    int64_t out[IR_MAX_RANK];
    if (v->type->kind != TY_TILE || !elem_is_bool(v->type->elem) || !broadcast_shapes(v->type, shape, &rank, out) ||
        rank != info->rank || memcmp(out, info->shape, sizeof(int64_t) * (size_t)rank) != 0) {
        diag_error(L->diags, e->loc, "mask must be bool and broadcast to the indexed shape %s, found %s",
                   lower_type_str(shape, tb, sizeof tb), lower_type_str(v->type, ta, sizeof ta));
        return NULL;
    }
    L->b.loc = e->loc;
    return broadcast_to(L, v, info->rank, info->shape);
}

Val lower_masked_access(Lower *L, const AstNode *call, bool store) {
    const char *fn = store ? "store" : "load";
    const AstNode *pos[2] = {NULL, NULL}, *mask = NULL, *other = NULL;
    int npos = 0;
    if (store != (call == L->statement_expr)) {
        diag_error(L->diags, call->loc, store ? "store() has no value; use it as a statement"
                                              : "load() gives a value; use it in an expression");
        return POISON;
    }
    for (uint32_t i = 0; call->args && i < call->args->len; i++) {
        const AstNode *a = call->args->items[i];
        if (a->kind != AST_KWARG) {
            if (mask || other) {
                diag_error(L->diags, a->loc, "positional argument after a keyword argument");
                return POISON;
            }
            if (npos == (store ? 2 : 1)) {
                diag_error(L->diags, a->loc, "too many arguments to %s()", fn);
                return POISON;
            }
            pos[npos++] = a;
            continue;
        }
        const AstNode **slot = strcmp(a->name, "mask") == 0 ? &mask : !store && strcmp(a->name, "other") == 0 ? &other : NULL;
        if (!slot) {
            diag_error(L->diags, a->loc, "%s() has no parameter named '%s'", fn, a->name);
            return POISON;
        }
        if (*slot) {
            diag_error(L->diags, a->loc, "%s given twice", a->name);
            return POISON;
        }
        *slot = a->lhs;
    }
    if (npos != (store ? 2 : 1) || pos[0]->kind != AST_INDEX) {
        diag_error(L->diags, call->loc, store ? "store() takes an indexed tensor and a value: store(t[i], v, mask=m)"
                                              : "load() takes an indexed tensor: load(t[i], mask=m, other=v)");
        return POISON;
    }
    Val value = store ? lower_expr(L, pos[1]) : POISON;
    if (store && value.kind == VAL_POISON) return POISON;
    IndexInfo info;
    if (!lower_index(L, pos[0], &info)) return POISON;
    const IrType *rt = ir_tile_type(L->module, info.tensor->type->elem, info.rank, info.shape);
    int constant = 1;
    IrValue *m = mask ? mask_arg(L, mask, &info, &constant) : NULL;
    if (mask && !m && constant < 0) return POISON;
    IrValue *fill = NULL;
    if (other) {
        Val o = lower_expr(L, other);
        fill = o.kind == VAL_POISON ? NULL : lower_coerce(L, o, rt, other->loc, "load(): other");
        if (!fill) return POISON;
    }
    IrValue *v = NULL;
    if (store) {
        v = lower_coerce(L, value, rt, pos[1]->loc, "store(): the value");
        if (!v) return POISON;
    }
    L->b.loc = call->loc;
    if (constant == 0) { /* nothing is accessed */
        if (store) return POISON;
        return val_of(fill ? fill : elem_is_float(rt->elem) ? ir_const_float(&L->b, rt, 0.0) : ir_const_int(&L->b, rt, 0));
    }
    if (m && store) info.index[0] = mask_first_index(L, &info, m);
    IrValue *ops[2 + IR_MAX_RANK];
    ops[0] = info.tensor;
    for (uint32_t k = 0; k < info.n; k++) ops[1 + k] = info.index[k];
    if (store) {
        ops[1 + info.n] = v;
        ir_build(&L->b, OP_STORE, ops, 2 + info.n, NULL, 0);
        return POISON; /* a statement: its value is never used */
    }
    IrValue *x = ir_build(&L->b, OP_LOAD, ops, 1 + info.n, &rt, 1)->results[0];
    if (m) {
        if (!fill) fill = elem_is_float(rt->elem) ? ir_const_float(&L->b, rt, 0.0) : ir_const_int(&L->b, rt, 0);
        IrValue *sel[3] = {m, x, fill};
        x = ir_build(&L->b, OP_SELECT, sel, 3, &rt, 1)->results[0];
    }
    return val_of(x);
}

/* ---- helpers for lower_ext.c ---------------------------------------------------------------- */
bool lower_shape_dims(Lower *L, const AstList *dims, SrcLoc loc, int *rank, int64_t *shape) {
    return lower_shape(L, dims, loc, rank, shape);
}

bool lower_broadcast_shapes(const IrType *a, const IrType *b, int *rank, int64_t *shape) {
    return broadcast_shapes(a, b, rank, shape);
}

IrValue *lower_broadcast_to(Lower *L, IrValue *v, int rank, const int64_t *shape) {
    return broadcast_to(L, v, rank, shape);
}

bool lower_unify(Lower *L, Val *a, Val *b, SrcLoc loc, const char *what) { return unify(L, a, b, loc, what); }
