/*
 * codegen_elem.c: element arithmetic of the GPU code generator, matching runtime/vm_ops.c.
 *
 * Integers are LLVM iN values, whose arithmetic wraps at N bits as the VM's elem_wrap_int
 * does; the VM's definitions of the undefined cases (x / 0 = 0, INT_MIN / -1 wraps, shifts
 * past the width) are built with selects around a safe divisor or shift. bool is an unsigned
 * 1-bit integer except that add is or (the VM wraps a sum to "nonzero"). Floats up to 32 bits
 * compute in f32 and round to their format after every op (f16 and bf16 through fptrunc,
 * which rounds to nearest even; f8e4m3 and f8e5m2 through codegen_f8.c); f64 computes in double.
 *
 * Math: NVPTX selects few libm functions, so exp/log/sin/cos use the PTX approximations
 * (ex2/lg2/sin/cos .approx.f32 through inline asm) after exact argument handling, tanh and erf
 * are built from exp with a Taylor series near 0, sqrt is IEEE (sqrt.rn), rsqrt is 1 / sqrt.
 * f64 exp/log/tanh/sin/cos/erf go through these f32 formulas (about 1e-7 relative accuracy,
 * not double accuracy); f64 sqrt, rsqrt, floor, ceil and abs are exact.
 */
#include "codegen.h"

#include <math.h>
#include <string.h>

static bool is_narrow_float(ElemType e) { return e.kind == EK_FLOAT && e.bits <= 32; }

bool cg_elem_supported(ElemType e) {
    switch (e.kind) {
    case EK_BOOL: return true;
    case EK_INT:
    case EK_UINT: return e.bits == 8 || e.bits == 16 || e.bits == 32 || e.bits == 64;
    default:
        return (e.exp == 5 && e.man == 10) || (e.exp == 8 && e.man == 7) || (e.exp == 8 && e.man == 23) ||
               (e.exp == 11 && e.man == 52) || cg_is_f8(e);
    }
}

LLVMTypeRef cg_reg_type(Cg *g, ElemType e) {
    switch (e.kind) {
    case EK_BOOL: return g->i1;
    case EK_INT:
    case EK_UINT: return LLVMIntTypeInContext(g->ctx, e.bits);
    default: return is_narrow_float(e) ? g->f32 : g->f64;
    }
}

LLVMTypeRef cg_mem_type(Cg *g, ElemType e) {
    switch (e.kind) {
    case EK_BOOL: return g->i8;
    case EK_INT:
    case EK_UINT: return LLVMIntTypeInContext(g->ctx, e.bits);
    default:
        if (e.bits == 16) return e.exp == 5 ? g->f16 : g->bf16;
        if (e.bits == 8) return g->i8; /* f8e4m3, f8e5m2: the byte (codegen_f8.c) */
        return e.bits == 32 ? g->f32 : g->f64;
    }
}

LLVMValueRef cg_to_mem(Cg *g, ElemType e, LLVMValueRef v) {
    if (e.kind == EK_BOOL) return LLVMBuildZExt(g->b, v, g->i8, "");
    if (e.kind == EK_FLOAT && e.bits == 16) return LLVMBuildFPTrunc(g->b, v, cg_mem_type(g, e), "");
    if (cg_is_f8(e)) return cg_f8_encode(g, e, v);
    return v;
}

LLVMValueRef cg_from_mem(Cg *g, ElemType e, LLVMValueRef v) {
    if (e.kind == EK_BOOL) return LLVMBuildICmp(g->b, LLVMIntNE, v, LLVMConstInt(g->i8, 0, 0), "");
    if (e.kind == EK_FLOAT && e.bits == 16) return LLVMBuildFPExt(g->b, v, g->f32, "");
    if (cg_is_f8(e)) return cg_f8_decode(g, e, v);
    return v;
}

LLVMValueRef cg_const(Cg *g, ElemType e, IrConst c) {
    IrConst v = elem_convert(c.is_float ? elem_f64() : elem_int(64), c, e);
    LLVMTypeRef t = cg_reg_type(g, e);
    if (e.kind == EK_FLOAT) return LLVMConstReal(t, v.f);
    return LLVMConstInt(t, (unsigned long long)v.i, 0);
}

LLVMValueRef cg_round(Cg *g, ElemType e, LLVMValueRef v) {
    if (cg_is_f8(e)) return cg_f8_round(g, e, v);
    if (e.kind != EK_FLOAT || e.bits != 16) return v;
    return LLVMBuildFPExt(g->b, LLVMBuildFPTrunc(g->b, v, cg_mem_type(g, e), ""), g->f32, "");
}

LLVMValueRef cg_to_i64(Cg *g, ElemType e, LLVMValueRef v) {
    if (e.bits == 64) return v;
    if (e.kind == EK_INT) return LLVMBuildSExt(g->b, v, g->i64, "");
    return LLVMBuildZExt(g->b, v, g->i64, "");
}

static bool is_signed(ElemType e) { return e.kind == EK_INT; }

LLVMValueRef cg_convert(Cg *g, ElemType from, LLVMValueRef v, ElemType to) {
    if (elem_eq(from, to)) return v;
    LLVMTypeRef rt = cg_reg_type(g, to);
    if (to.kind == EK_BOOL) {
        if (from.kind == EK_FLOAT) return LLVMBuildFCmp(g->b, LLVMRealUNE, v, LLVMConstReal(LLVMTypeOf(v), 0), "");
        return LLVMBuildICmp(g->b, LLVMIntNE, v, LLVMConstInt(LLVMTypeOf(v), 0, 0), "");
    }
    if (to.kind != EK_FLOAT) {
        if (from.kind == EK_FLOAT) {
            LLVMTypeRef over[2] = {rt, LLVMTypeOf(v)};
            return cg_call_intrinsic(g, is_signed(to) ? "llvm.fptosi.sat" : "llvm.fptoui.sat", over, 2, &v, 1);
        }
        if (from.bits == to.bits) return v;
        if (from.bits > to.bits) return LLVMBuildTrunc(g->b, v, rt, "");
        return is_signed(from) ? LLVMBuildSExt(g->b, v, rt, "") : LLVMBuildZExt(g->b, v, rt, "");
    }
    if (from.kind == EK_FLOAT) {
        if (!is_narrow_float(to)) return is_narrow_float(from) ? LLVMBuildFPExt(g->b, v, g->f64, "") : v;
        if (is_narrow_float(from)) return cg_round(g, to, v);
        /* double -> f32/f16/bf16 rounds once, directly to the format; to f8 through f32 (twice:
         * the VM rounds once, so a double within 2^-24 relative of an f8 tie may differ) */
        if (cg_is_f8(to)) return cg_f8_round(g, to, LLVMBuildFPTrunc(g->b, v, g->f32, ""));
        LLVMValueRef r = LLVMBuildFPTrunc(g->b, v, cg_mem_type(g, to), "");
        return to.bits == 16 ? LLVMBuildFPExt(g->b, r, g->f32, "") : r;
    }
    /* integers -> float: f32 and f64 round once; f16/bf16 go through double as the VM does */
    bool s = is_signed(from);
    if (to.bits == 32 || to.bits == 64)
        return s ? LLVMBuildSIToFP(g->b, v, rt, "") : LLVMBuildUIToFP(g->b, v, rt, "");
    LLVMValueRef d = s ? LLVMBuildSIToFP(g->b, v, g->f64, "") : LLVMBuildUIToFP(g->b, v, g->f64, "");
    if (cg_is_f8(to)) return cg_f8_round(g, to, LLVMBuildFPTrunc(g->b, d, g->f32, ""));
    return LLVMBuildFPExt(g->b, LLVMBuildFPTrunc(g->b, d, cg_mem_type(g, to), ""), g->f32, "");
}

LLVMValueRef cg_fminmax(Cg *g, bool max, LLVMValueRef x, LLVMValueRef y) {
    LLVMTypeRef t = LLVMTypeOf(x);
    LLVMValueRef args[2] = {x, y};
    return cg_call_intrinsic(g, max ? "llvm.maximum" : "llvm.minimum", &t, 1, args, 2);
}

static LLVMIntPredicate int_pred(IrCmp p, bool s) {
    switch (p) {
    case CMP_EQ: return LLVMIntEQ;
    case CMP_NE: return LLVMIntNE;
    case CMP_LT: return s ? LLVMIntSLT : LLVMIntULT;
    case CMP_LE: return s ? LLVMIntSLE : LLVMIntULE;
    case CMP_GT: return s ? LLVMIntSGT : LLVMIntUGT;
    default: return s ? LLVMIntSGE : LLVMIntUGE;
    }
}

static LLVMRealPredicate real_pred(IrCmp p) {
    switch (p) {
    case CMP_EQ: return LLVMRealOEQ;
    case CMP_NE: return LLVMRealUNE;
    case CMP_LT: return LLVMRealOLT;
    case CMP_LE: return LLVMRealOLE;
    case CMP_GT: return LLVMRealOGT;
    default: return LLVMRealOGE;
    }
}

static LLVMValueRef int_binary(Cg *g, OpCode code, ElemType e, LLVMValueRef x, LLVMValueRef y) {
    LLVMBuilderRef b = g->b;
    LLVMTypeRef t = LLVMTypeOf(x);
    bool s = is_signed(e);
    LLVMValueRef zero = LLVMConstInt(t, 0, 0), one = LLVMConstInt(t, 1, 0);
    switch (code) {
    case OP_ADD: return e.kind == EK_BOOL ? LLVMBuildOr(b, x, y, "") : LLVMBuildAdd(b, x, y, "");
    case OP_SUB: return LLVMBuildSub(b, x, y, "");
    case OP_MUL: return LLVMBuildMul(b, x, y, "");
    case OP_DIV:
    case OP_REM: {
        LLVMValueRef y_zero = LLVMBuildICmp(b, LLVMIntEQ, y, zero, "");
        if (!s) {
            LLVMValueRef safe = LLVMBuildSelect(b, y_zero, one, y, "");
            LLVMValueRef r = code == OP_DIV ? LLVMBuildUDiv(b, x, safe, "") : LLVMBuildURem(b, x, safe, "");
            return LLVMBuildSelect(b, y_zero, zero, r, "");
        }
        LLVMValueRef y_m1 = LLVMBuildICmp(b, LLVMIntEQ, y, LLVMConstAllOnes(t), "");
        LLVMValueRef odd = LLVMBuildOr(b, y_zero, y_m1, "");
        LLVMValueRef safe = LLVMBuildSelect(b, odd, one, y, "");
        LLVMValueRef r = code == OP_DIV ? LLVMBuildSDiv(b, x, safe, "") : LLVMBuildSRem(b, x, safe, "");
        LLVMValueRef special = code == OP_DIV ? LLVMBuildSelect(b, y_zero, zero, LLVMBuildNeg(b, x, ""), "") : zero;
        return LLVMBuildSelect(b, odd, special, r, "");
    }
    case OP_MIN:
    case OP_MAX: {
        LLVMValueRef lt = LLVMBuildICmp(b, s ? LLVMIntSLT : LLVMIntULT, x, y, "");
        return code == OP_MIN ? LLVMBuildSelect(b, lt, x, y, "") : LLVMBuildSelect(b, lt, y, x, "");
    }
    case OP_AND: return LLVMBuildAnd(b, x, y, "");
    case OP_OR: return LLVMBuildOr(b, x, y, "");
    case OP_XOR: return LLVMBuildXor(b, x, y, "");
    case OP_SHL:
    case OP_SHR: {
        LLVMValueRef out = LLVMBuildICmp(b, LLVMIntUGE, y, LLVMConstInt(t, e.bits, 0), "");
        LLVMValueRef safe = LLVMBuildSelect(b, out, zero, y, "");
        if (code == OP_SHL) return LLVMBuildSelect(b, out, zero, LLVMBuildShl(b, x, safe, ""), "");
        if (!s) return LLVMBuildSelect(b, out, zero, LLVMBuildLShr(b, x, safe, ""), "");
        LLVMValueRef fill = LLVMBuildAShr(b, x, LLVMConstInt(t, e.bits - 1, 0), "");
        return LLVMBuildSelect(b, out, fill, LLVMBuildAShr(b, x, safe, ""), "");
    }
    default: return NULL;
    }
}

LLVMValueRef cg_binary(Cg *g, OpCode code, int pred, ElemType e, LLVMValueRef x, LLVMValueRef y) {
    LLVMBuilderRef b = g->b;
    if (code == OP_CMP) {
        if (e.kind == EK_FLOAT) return LLVMBuildFCmp(b, real_pred((IrCmp)pred), x, y, "");
        return LLVMBuildICmp(b, int_pred((IrCmp)pred, is_signed(e)), x, y, "");
    }
    if (e.kind != EK_FLOAT) return int_binary(g, code, e, x, y);
    LLVMValueRef r;
    switch (code) {
    case OP_ADD: r = LLVMBuildFAdd(b, x, y, ""); break;
    case OP_SUB: r = LLVMBuildFSub(b, x, y, ""); break;
    case OP_MUL: r = LLVMBuildFMul(b, x, y, ""); break;
    case OP_DIV: r = LLVMBuildFDiv(b, x, y, ""); break;
    case OP_REM: r = LLVMBuildFRem(b, x, y, ""); break;
    case OP_MIN: return cg_fminmax(g, false, x, y);
    case OP_MAX: return cg_fminmax(g, true, x, y);
    default: return NULL;
    }
    /* SPEC 11: a multiply and an add may contract into one fused multiply-add (without the flag
     * NVPTX emits mul.rn/add.rn, which ptxas may not fuse) */
    if (code == OP_ADD || code == OP_SUB || code == OP_MUL) LLVMSetFastMathFlags(r, LLVMFastMathAllowContract);
    return cg_round(g, e, r);
}

/* ---- f32 math ---------------------------------------------------------------------------- */
static LLVMValueRef asm_f32(Cg *g, const char *text, LLVMValueRef x) {
    LLVMTypeRef ft = LLVMFunctionType(g->f32, &g->f32, 1, 0);
    LLVMValueRef fn = LLVMGetInlineAsm(ft, (char *)text, strlen(text), "=f,f", 4, 0, 0,
                                       LLVMInlineAsmDialectATT, 0);
    return LLVMBuildCall2(g->b, ft, fn, &x, 1, "");
}

static LLVMValueRef fc(Cg *g, double v) { return LLVMConstReal(g->f32, v); }
static LLVMValueRef fmul(Cg *g, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFMul(g->b, a, b, ""); }
static LLVMValueRef fadd(Cg *g, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFAdd(g->b, a, b, ""); }
static LLVMValueRef fsub(Cg *g, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFSub(g->b, a, b, ""); }
static LLVMValueRef f_intr(Cg *g, const char *name, LLVMValueRef x) {
    LLVMTypeRef t = LLVMTypeOf(x);
    return cg_call_intrinsic(g, name, &t, 1, &x, 1);
}

static LLVMValueRef exp2_f32(Cg *g, LLVMValueRef x) { return asm_f32(g, "ex2.approx.f32 $0, $1;", x); }
static LLVMValueRef exp_f32(Cg *g, LLVMValueRef x) { return exp2_f32(g, fmul(g, x, fc(g, 1.4426950408889634))); }

/* Horner: c[0] + z * (c[1] + z * (...)). */
static LLVMValueRef poly(Cg *g, LLVMValueRef z, const double *c, int n) {
    LLVMValueRef r = fc(g, c[n - 1]);
    for (int i = n - 2; i >= 0; i--) r = fadd(g, fmul(g, r, z), fc(g, c[i]));
    return r;
}

static LLVMValueRef tanh_f32(Cg *g, LLVMValueRef x) {
    LLVMValueRef ax = f_intr(g, "llvm.fabs", x);
    /* near 0: the Taylor series of tanh to x^13 (error below 2e-9 for |x| < 0.4) */
    static const double taylor[] = {1.0, -1.0 / 3, 2.0 / 15, -17.0 / 315, 62.0 / 2835, -1382.0 / 155925,
                                    21844.0 / 6081075};
    LLVMValueRef small = fmul(g, x, poly(g, fmul(g, x, x), taylor, 7));
    /* elsewhere 1 - 2 / (e^(2|x|) + 1), with the sign of x */
    LLVMValueRef e = exp_f32(g, fmul(g, ax, fc(g, 2.0)));
    LLVMValueRef big = fsub(g, fc(g, 1.0), LLVMBuildFDiv(g->b, fc(g, 2.0), fadd(g, e, fc(g, 1.0)), ""));
    LLVMTypeRef t = g->f32;
    LLVMValueRef args[2] = {big, x};
    big = cg_call_intrinsic(g, "llvm.copysign", &t, 1, args, 2);
    LLVMValueRef is_small = LLVMBuildFCmp(g->b, LLVMRealOLT, ax, fc(g, 0.4), "");
    LLVMValueRef r = LLVMBuildSelect(g->b, is_small, small, big, "");
    /* NaN stays NaN */
    LLVMValueRef nan = LLVMBuildFCmp(g->b, LLVMRealUNO, x, x, "");
    return LLVMBuildSelect(g->b, nan, x, r, "");
}

static LLVMValueRef erf_f32(Cg *g, LLVMValueRef x) {
    LLVMValueRef ax = f_intr(g, "llvm.fabs", x);
    /* |x| < 0.5: 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1)), to x^13 */
    static const double taylor[] = {1.0, -1.0 / 3, 1.0 / 10, -1.0 / 42, 1.0 / 216, -1.0 / 1320, 1.0 / 9360};
    LLVMValueRef small = fmul(g, fmul(g, x, poly(g, fmul(g, x, x), taylor, 7)), fc(g, 1.1283791670955126));
    /* otherwise 1 - erfc(|x|) with erfc's Chebyshev fit t * exp(-z^2 + P(t)), t = 1 / (1 + z/2)
     * (fractional error below 1.2e-7), with the sign of x */
    static const double cheb[] = {-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806,
                                  0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277};
    LLVMValueRef t = LLVMBuildFDiv(g->b, fc(g, 1.0), fadd(g, fc(g, 1.0), fmul(g, ax, fc(g, 0.5))), "");
    LLVMValueRef arg = fadd(g, LLVMBuildFNeg(g->b, fmul(g, ax, ax), ""), poly(g, t, cheb, 10));
    LLVMValueRef erfc = fmul(g, t, exp_f32(g, arg));
    LLVMValueRef big = fsub(g, fc(g, 1.0), erfc);
    LLVMTypeRef ft = g->f32;
    LLVMValueRef args[2] = {big, x};
    big = cg_call_intrinsic(g, "llvm.copysign", &ft, 1, args, 2);
    LLVMValueRef is_small = LLVMBuildFCmp(g->b, LLVMRealOLT, ax, fc(g, 0.5), "");
    LLVMValueRef r = LLVMBuildSelect(g->b, is_small, small, big, "");
    LLVMValueRef nan = LLVMBuildFCmp(g->b, LLVMRealUNO, x, x, "");
    return LLVMBuildSelect(g->b, nan, x, r, "");
}

/* sin/cos: reduce to [-pi, pi] with 2*pi in two parts, then the PTX approximation. */
static LLVMValueRef sincos_f32(Cg *g, bool is_sin, LLVMValueRef x) {
    LLVMValueRef k = f_intr(g, "llvm.rint", fmul(g, x, fc(g, 0.15915494309189535)));
    LLVMTypeRef t = g->f32;
    LLVMValueRef a1[3] = {LLVMBuildFNeg(g->b, k, ""), fc(g, 6.28318548202514648), x};
    LLVMValueRef r = cg_call_intrinsic(g, "llvm.fma", &t, 1, a1, 3);
    LLVMValueRef a2[3] = {LLVMBuildFNeg(g->b, k, ""), fc(g, -1.7484556e-07), r};
    r = cg_call_intrinsic(g, "llvm.fma", &t, 1, a2, 3);
    return asm_f32(g, is_sin ? "sin.approx.f32 $0, $1;" : "cos.approx.f32 $0, $1;", r);
}

static LLVMValueRef math_f32(Cg *g, OpCode code, LLVMValueRef x) {
    switch (code) {
    case OP_EXP: return exp_f32(g, x);
    case OP_EXP2: return exp2_f32(g, x);
    case OP_LOG: return fmul(g, asm_f32(g, "lg2.approx.f32 $0, $1;", x), fc(g, 0.6931471805599453));
    case OP_LOG2: return asm_f32(g, "lg2.approx.f32 $0, $1;", x);
    case OP_TANH: return tanh_f32(g, x);
    case OP_SIN: return sincos_f32(g, true, x);
    case OP_COS: return sincos_f32(g, false, x);
    case OP_ERF: return erf_f32(g, x);
    default: return NULL;
    }
}

LLVMValueRef cg_unary(Cg *g, OpCode code, ElemType e, LLVMValueRef x) {
    LLVMBuilderRef b = g->b;
    LLVMTypeRef t = LLVMTypeOf(x);
    if (e.kind != EK_FLOAT) {
        switch (code) {
        case OP_NEG: return LLVMBuildNeg(b, x, "");
        case OP_NOT: return LLVMBuildNot(b, x, "");
        case OP_ABS: {
            if (!is_signed(e)) return x;
            LLVMValueRef neg = LLVMBuildICmp(b, LLVMIntSLT, x, LLVMConstInt(t, 0, 0), "");
            return LLVMBuildSelect(b, neg, LLVMBuildNeg(b, x, ""), x, "");
        }
        default: return NULL;
        }
    }
    switch (code) {
    case OP_NEG: return LLVMBuildFNeg(b, x, "");
    case OP_ABS: return f_intr(g, "llvm.fabs", x);
    case OP_FLOOR: return f_intr(g, "llvm.floor", x);
    case OP_CEIL: return f_intr(g, "llvm.ceil", x);
    case OP_SQRT: return cg_round(g, e, f_intr(g, "llvm.sqrt", x));
    case OP_RSQRT:
        return cg_round(g, e, LLVMBuildFDiv(b, LLVMConstReal(t, 1.0), f_intr(g, "llvm.sqrt", x), ""));
    case OP_NOT: return NULL;
    default: break;
    }
    if (is_narrow_float(e)) {
        LLVMValueRef r = math_f32(g, code, x);
        return r ? cg_round(g, e, r) : NULL;
    }
    LLVMValueRef r = math_f32(g, code, LLVMBuildFPTrunc(b, x, g->f32, ""));
    return r ? LLVMBuildFPExt(b, r, g->f64, "") : NULL;
}
