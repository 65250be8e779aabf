/*
 * eval.c: the reference semantics of element types, shared by constant folding and the VM.
 *
 * Integers wrap around at their width. Floats of any format f<bits>e<exp>m<man> are rounded
 * from a double by one generic routine: find the quantum (the spacing of representable values
 * at the input's binade, or the subnormal spacing below the smallest normal), round to the
 * nearest multiple with ties to even (rint), then apply the format's overflow rule (IEEE
 * formats overflow to infinity, finite-only formats saturate). Scaling by powers of two is
 * exact, so the one rounding in rint is the only rounding.
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

static int64_t saturate_to_int(ElemType to, double f) {
    if (isnan(f)) return 0;
    double t = trunc(f);
    if (to.kind == EK_UINT) {
        if (t <= 0) return 0;
        if (to.bits >= 64) return t >= 18446744073709551615.0 ? (int64_t)UINT64_MAX : (int64_t)(uint64_t)t;
        double max = ldexp(1.0, to.bits) - 1;
        return (int64_t)(t >= max ? max : t);
    }
    double lo = -ldexp(1.0, to.bits - 1), hi = ldexp(1.0, to.bits - 1) - 1;
    if (t <= lo) return to.bits >= 64 ? INT64_MIN : (int64_t)lo;
    if (t >= hi) return to.bits >= 64 ? INT64_MAX : (int64_t)hi;
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
