/*
 * eval.c: the reference semantics of element types, shared by constant folding and the VM.
 *
 * Integers wrap around at their width. Floats of any format f<bits>e<exp>m<man> are rounded
 * from a double by one generic routine: find the quantum (the spacing of representable values
 * at the input's binade, or the subnormal spacing below the smallest normal), round to the
 * nearest multiple with ties to even (rint), then apply the format's overflow rule (IEEE
 * formats overflow to infinity, finite-only formats saturate). Scaling by powers of two is
 * exact, so the one rounding in rint is the only rounding.
 *
 * The arithmetic of the elementwise ops is here too, so that constant folding and the VM give
 * bit-identical results: formats that a C float holds exactly compute in float (then round to
 * the element type), wider ones in double; integers compute in uint64 and wrap to their width.
 */
#include "ir.h"

#include <math.h>

int64_t elem_wrap_int(ElemType e, int64_t v) {
    if (e.kind == EK_BOOL) return v != 0;
    if (e.bits >= 64) return v;
    uint64_t mask = (UINT64_C(1) << e.bits) - 1;
    uint64_t u = (uint64_t)v & mask;
    if (e.kind == EK_INT && (u >> (e.bits - 1)) & 1) return (int64_t)(u | ~mask);
    return (int64_t)u;
}

/* Largest finite value of a float format. */
static double float_max(ElemType e) {
    int bias = (1 << (e.exp - 1)) - 1;
    if (elem_float_is_ieee(e)) {
        int emax = (1 << e.exp) - 2 - bias;
        return ldexp(2.0 - ldexp(1.0, -e.man), emax);
    }
    int emax = (1 << e.exp) - 1 - bias;
    /* f8e4m3 reserves the all-ones mantissa of the top binade for NaN. */
    if (e.bits == 8 && e.exp == 4) return ldexp(2.0 - ldexp(2.0, -e.man), emax);
    return ldexp(2.0 - ldexp(1.0, -e.man), emax);
}

static bool float_has_nan(ElemType e) {
    return elem_float_is_ieee(e) || (e.bits == 8 && e.exp == 4);
}

double elem_round_float(ElemType e, double x) {
    if (e.kind != EK_FLOAT || (e.exp == 11 && e.man == 52)) return x;
    if (e.exp == 8 && e.man == 23) return (double)(float)x;
    if (isnan(x)) return float_has_nan(e) ? x : 0.0;
    double max = float_max(e);
    if (isinf(x)) return elem_float_is_ieee(e) ? x : copysign(max, x);
    double ax = fabs(x);
    if (ax == 0) return x;
    int bias = (1 << (e.exp - 1)) - 1;
    int emin = 1 - bias;
    int ex;
    frexp(ax, &ex);
    int binade = ex - 1 < emin ? emin : ex - 1;
    double r = ldexp(rint(ldexp(ax, e.man - binade)), binade - e.man);
    if (r > max) r = elem_float_is_ieee(e) ? INFINITY : max;
    return copysign(r, x);
}

/* A float to an integer: truncate toward zero, saturate at the type's range, NaN gives 0. The
 * bounds are compared as powers of two, which a double holds exactly; the largest value of a
 * type of 54 bits or more (2^n - 1) is not representable and would round up to 2^n. */
static int64_t saturate_to_int(ElemType to, double f) {
    if (isnan(f)) return 0;
    double t = trunc(f);
    int bits = to.bits > 64 ? 64 : to.bits;
    if (to.kind == EK_UINT) {
        if (t <= 0) return 0;
        if (t >= ldexp(1.0, bits)) return bits >= 64 ? (int64_t)UINT64_MAX : (int64_t)((UINT64_C(1) << bits) - 1);
        return (int64_t)(uint64_t)t;
    }
    double lo = -ldexp(1.0, bits - 1);
    if (t <= lo) return bits >= 64 ? INT64_MIN : -(int64_t)(UINT64_C(1) << (bits - 1));
    if (t >= -lo) return (int64_t)((UINT64_C(1) << (bits - 1)) - 1);
    return (int64_t)t;
}

IrConst elem_convert(ElemType from, IrConst v, ElemType to) {
    IrConst r = {0};
    double f = from.kind == EK_FLOAT ? v.f
             : from.kind == EK_UINT && from.bits == 64 ? (double)(uint64_t)v.i
             : (double)v.i;
    switch (to.kind) {
    case EK_BOOL:
        r.i = from.kind == EK_FLOAT ? (v.f != 0) : (v.i != 0);
        break;
    case EK_INT:
    case EK_UINT:
        r.i = from.kind == EK_FLOAT ? saturate_to_int(to, v.f) : elem_wrap_int(to, v.i);
        break;
    case EK_FLOAT:
        r.is_float = true;
        if (to.exp == 8 && to.man == 23 && from.kind != EK_FLOAT && from.bits == 64) {
            /* int64 -> f32 must round once, not via double */
            r.f = from.kind == EK_UINT ? (double)(float)(uint64_t)v.i : (double)(float)v.i;
        } else {
            r.f = elem_round_float(to, f);
        }
        break;
    }
    return r;
}

/* ---- element arithmetic ---------------------------------------------------------------------- */
/* Formats that C float holds exactly compute in float; the rest in double. */
bool elem_float_in_f32(ElemType e) { return e.exp <= 8 && e.man <= 23; }

double elem_nan_min(double a, double b) {
    if (isnan(a)) return a;
    if (isnan(b)) return b;
    if (a == b) return signbit(a) ? a : b; /* -0 < +0 */
    return a < b ? a : b;
}

double elem_nan_max(double a, double b) {
    if (isnan(a)) return a;
    if (isnan(b)) return b;
    if (a == b) return signbit(a) ? b : a;
    return a > b ? a : b;
}

double elem_float_binary(OpCode code, ElemType e, double a, double b) {
    if (code == OP_MIN) return elem_nan_min(a, b);
    if (code == OP_MAX) return elem_nan_max(a, b);
    if (elem_float_in_f32(e)) {
        float x = (float)a, y = (float)b, r = 0;
        switch (code) {
        case OP_ADD: r = x + y; break;
        case OP_SUB: r = x - y; break;
        case OP_MUL: r = x * y; break;
        case OP_DIV: r = x / y; break;
        case OP_REM: r = fmodf(x, y); break;
        default: tile_unreachable();
        }
        return elem_round_float(e, r);
    }
    double r = 0;
    switch (code) {
    case OP_ADD: r = a + b; break;
    case OP_SUB: r = a - b; break;
    case OP_MUL: r = a * b; break;
    case OP_DIV: r = a / b; break;
    case OP_REM: r = fmod(a, b); break;
    default: tile_unreachable();
    }
    return elem_round_float(e, r);
}

bool elem_int_less(ElemType e, int64_t a, int64_t b) {
    return e.kind == EK_UINT ? (uint64_t)a < (uint64_t)b : a < b;
}

int64_t elem_int_binary(OpCode code, ElemType e, int64_t a, int64_t b) {
    bool is_unsigned = e.kind == EK_UINT;
    uint64_t ua = (uint64_t)a, ub = (uint64_t)b, r = 0;
    switch (code) {
    case OP_ADD: r = ua + ub; break;
    case OP_SUB: r = ua - ub; break;
    case OP_MUL: r = ua * ub; break;
    case OP_DIV:
        if (b == 0) r = 0;
        else if (is_unsigned) r = ua / ub;
        else if (b == -1) r = 0 - ua; /* INT_MIN / -1 wraps */
        else r = (uint64_t)(a / b);
        break;
    case OP_REM:
        if (b == 0) r = 0;
        else if (is_unsigned) r = ua % ub;
        else if (b == -1) r = 0;
        else r = (uint64_t)(a % b);
        break;
    case OP_MIN: r = elem_int_less(e, a, b) ? ua : ub; break;
    case OP_MAX: r = elem_int_less(e, a, b) ? ub : ua; break;
    case OP_AND: r = ua & ub; break;
    case OP_OR: r = ua | ub; break;
    case OP_XOR: r = ua ^ ub; break;
    case OP_SHL: {
        bool out = is_unsigned ? ub >= e.bits : (b < 0 || b >= e.bits);
        r = out ? 0 : ua << b;
        break;
    }
    case OP_SHR: {
        bool out = is_unsigned ? ub >= e.bits : (b < 0 || b >= e.bits);
        bool negative = !is_unsigned && a < 0;
        if (out) r = negative ? UINT64_MAX : 0;
        else r = negative ? ~(~ua >> b) : ua >> b;
        break;
    }
    default: tile_unreachable();
    }
    return elem_wrap_int(e, (int64_t)r);
}

bool elem_compare(IrCmp pred, ElemType e, IrConst a, IrConst b) {
    if (elem_is_float(e)) {
        double x = a.f, y = b.f;
        switch (pred) {
        case CMP_EQ: return x == y;
        case CMP_NE: return x != y;
        case CMP_LT: return x < y;
        case CMP_LE: return x <= y;
        case CMP_GT: return x > y;
        case CMP_GE: return x >= y;
        }
        return false;
    }
    switch (pred) {
    case CMP_EQ: return a.i == b.i;
    case CMP_NE: return a.i != b.i;
    case CMP_LT: return elem_int_less(e, a.i, b.i);
    case CMP_LE: return !elem_int_less(e, b.i, a.i);
    case CMP_GT: return elem_int_less(e, b.i, a.i);
    case CMP_GE: return !elem_int_less(e, a.i, b.i);
    }
    return false;
}

double elem_float_unary(OpCode code, ElemType e, double a) {
    if (code == OP_NEG) return -a;
    if (code == OP_ABS) return fabs(a);
    if (elem_float_in_f32(e)) {
        float x = (float)a, r = 0;
        switch (code) {
        case OP_EXP: r = expf(x); break;
        case OP_EXP2: r = exp2f(x); break;
        case OP_LOG: r = logf(x); break;
        case OP_LOG2: r = log2f(x); break;
        case OP_SQRT: r = sqrtf(x); break;
        case OP_RSQRT: r = 1.0f / sqrtf(x); break;
        case OP_TANH: r = tanhf(x); break;
        case OP_SIN: r = sinf(x); break;
        case OP_COS: r = cosf(x); break;
        case OP_ERF: r = erff(x); break;
        case OP_FLOOR: r = floorf(x); break;
        case OP_CEIL: r = ceilf(x); break;
        default: tile_unreachable();
        }
        return elem_round_float(e, r);
    }
    double r = 0;
    switch (code) {
    case OP_EXP: r = exp(a); break;
    case OP_EXP2: r = exp2(a); break;
    case OP_LOG: r = log(a); break;
    case OP_LOG2: r = log2(a); break;
    case OP_SQRT: r = sqrt(a); break;
    case OP_RSQRT: r = 1.0 / sqrt(a); break;
    case OP_TANH: r = tanh(a); break;
    case OP_SIN: r = sin(a); break;
    case OP_COS: r = cos(a); break;
    case OP_ERF: r = erf(a); break;
    case OP_FLOOR: r = floor(a); break;
    case OP_CEIL: r = ceil(a); break;
    default: tile_unreachable();
    }
    return elem_round_float(e, r);
}

int64_t elem_int_unary(OpCode code, ElemType e, int64_t a) {
    uint64_t u = (uint64_t)a;
    switch (code) {
    case OP_NEG: return elem_wrap_int(e, (int64_t)(0 - u));
    case OP_NOT: return e.kind == EK_BOOL ? !a : elem_wrap_int(e, (int64_t)~u);
    case OP_ABS: return elem_wrap_int(e, e.kind == EK_INT && a < 0 ? (int64_t)(0 - u) : a);
    default: tile_unreachable();
    }
}

bool elem_eval(OpCode code, int64_t pred, ElemType e, const IrConst *x, const IrConst *y, IrConst *out) {
    bool binary = ir_op_info[code].noperands == 2;
    if (!(ir_op_info[code].flags & F_ELEM) || code == OP_SELECT || code == OP_CAST || code == OP_BITCAST ||
        (binary && !y))
        return false;
    if (code == OP_CMP) {
        *out = (IrConst){.i = elem_compare((IrCmp)pred, e, *x, *y)};
        return true;
    }
    if (elem_is_float(e)) {
        if (code == OP_NOT || code == OP_AND || code == OP_OR || code == OP_XOR || code == OP_SHL || code == OP_SHR)
            return false;
        *out = (IrConst){.is_float = true,
                         .f = binary ? elem_float_binary(code, e, x->f, y->f) : elem_float_unary(code, e, x->f)};
        return true;
    }
    if (!binary && code != OP_NEG && code != OP_NOT && code != OP_ABS) return false;
    *out = (IrConst){.i = binary ? elem_int_binary(code, e, x->i, y->i) : elem_int_unary(code, e, x->i)};
    return true;
}
