/*
 * codegen_f8.c: f8e4m3 and f8e5m2 on the GPU, bit for bit as the VM converts them
 * (runtime/vm_memory.c, ir/eval.c's elem_round_float).
 *
 * Registers hold an 8-bit float as the f32 it denotes, memory as its byte (codegen_elem.c's
 * rule for every narrow float). The two conversions are small internal functions of the module,
 * always inlined by LLVM's pipeline, @tile.f8eXmY.decode(i8) -> float and @tile.f8eXmY.encode
 * (float) -> i8, so that a loaded element is recognizable as "decode of byte b" until LLVM runs:
 * the tensor-core code (codegen_mma.c) then stages the byte itself instead of encoding the float
 * again (cg_f8_raw), as it does with an fpext of a loaded half.
 *
 * decode: sign, exponent field e and mantissa m of the byte; e > 0 gives the f32 with exponent
 * e - bias + 127 and m shifted to the top; e = 0 gives m * 2^(emin - man) (exact in f32); the
 * all-ones exponent of e5m2 is infinity or NaN, and S.1111.111 of e4m3 is NaN.
 *
 * encode (round to nearest even, as elem_round_float): a value at least 2^emin is rounded on its
 * f32 bit pattern (add half an ulp of the target minus one plus the kept lowest bit, clear the
 * dropped bits: a carry moves into the exponent by itself); a smaller one by adding and
 * subtracting 2^(emin - man + 23), whose f32 ulp is the target's subnormal quantum (the f32 add
 * rounds to nearest even), then scaling to the integer mantissa (2^man when it rounded up to
 * 2^emin: exactly the encoding of the smallest normal). A result above the largest finite value
 * saturates for e4m3 (448, finite-only) and is infinity for e5m2 (IEEE-like); NaN is the VM's
 * NaN (e4m3 0x7F, e5m2 0x7E, no sign). On sm_90a e4m3 uses cvt.rn.satfinite.e4m3x2.f32, which
 * has these semantics exactly (RNE, overflow and infinity to +-448, NaN to 0x7F).
 */
#include "codegen.h"

#include <stdio.h>
#include <string.h>

bool cg_is_f8(ElemType e) {
    return e.kind == EK_FLOAT && e.bits == 8 && ((e.exp == 4 && e.man == 3) || (e.exp == 5 && e.man == 2));
}

typedef struct F8Format {
    int man, bias, emin;
    bool e4m3;
} F8Format;

static F8Format format_of(ElemType e) {
    int bias = (1 << (e.exp - 1)) - 1;
    return (F8Format){.man = e.man, .bias = bias, .emin = 1 - bias, .e4m3 = e.exp == 4};
}

static LLVMValueRef k32(Cg *g, int64_t v) { return LLVMConstInt(g->i32, (unsigned long long)v, 0); }

static LLVMValueRef f32_bits(Cg *g, uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return LLVMConstReal(g->f32, f);
}

/* The body of decode: x (i8) -> float. */
static LLVMValueRef build_decode(Cg *g, F8Format f, LLVMValueRef x) {
    LLVMBuilderRef b = g->b;
    LLVMValueRef u = LLVMBuildZExt(b, x, g->i32, "");
    LLVMValueRef sign = LLVMBuildShl(b, LLVMBuildAnd(b, u, k32(g, 0x80), ""), k32(g, 24), "");
    LLVMValueRef e = LLVMBuildAnd(b, LLVMBuildLShr(b, u, k32(g, f.man), ""), k32(g, f.e4m3 ? 15 : 31), "");
    LLVMValueRef m = LLVMBuildAnd(b, u, k32(g, (1 << f.man) - 1), "");
    /* normal: exponent e - bias + 127, mantissa at the top of f32's */
    LLVMValueRef normal = LLVMBuildOr(b, LLVMBuildShl(b, LLVMBuildAdd(b, e, k32(g, 127 - f.bias), ""), k32(g, 23), ""),
                                      LLVMBuildShl(b, m, k32(g, 23 - f.man), ""), "");
    /* subnormal: m * 2^(emin - man), exact */
    LLVMValueRef sub = LLVMBuildFMul(b, LLVMBuildUIToFP(b, m, g->f32, ""),
                                     f32_bits(g, (uint32_t)(127 + f.emin - f.man) << 23), "");
    LLVMValueRef mag = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntEQ, e, k32(g, 0), ""),
                                       LLVMBuildBitCast(b, sub, g->i32, ""), normal, "");
    LLVMValueRef special;
    if (f.e4m3) {
        special = LLVMBuildICmp(b, LLVMIntEQ, LLVMBuildAnd(b, u, k32(g, 0x7F), ""), k32(g, 0x7F), "");
        mag = LLVMBuildSelect(b, special, k32(g, 0x7FC00000), mag, "");
    } else {
        special = LLVMBuildICmp(b, LLVMIntEQ, e, k32(g, 31), "");
        LLVMValueRef nan = LLVMBuildICmp(b, LLVMIntNE, m, k32(g, 0), "");
        LLVMValueRef inf_nan = LLVMBuildSelect(b, nan, k32(g, 0x7FC00000), k32(g, 0x7F800000), "");
        mag = LLVMBuildSelect(b, special, inf_nan, mag, "");
    }
    return LLVMBuildBitCast(b, LLVMBuildOr(b, sign, mag, ""), g->f32, "");
}

/* The body of encode: x (float) -> i8, in software. */
static LLVMValueRef build_encode_soft(Cg *g, F8Format f, LLVMValueRef x) {
    LLVMBuilderRef b = g->b;
    LLVMValueRef u = LLVMBuildBitCast(b, x, g->i32, "");
    LLVMValueRef sign = LLVMBuildAnd(b, LLVMBuildLShr(b, u, k32(g, 24), ""), k32(g, 0x80), "");
    LLVMValueRef au = LLVMBuildAnd(b, u, k32(g, 0x7FFFFFFF), "");
    LLVMValueRef a = LLVMBuildBitCast(b, au, g->f32, "");
    int drop = 23 - f.man;
    /* normal: round the bit pattern to man mantissa bits, nearest even */
    LLVMValueRef odd = LLVMBuildAnd(b, LLVMBuildLShr(b, au, k32(g, drop), ""), k32(g, 1), "");
    LLVMValueRef ru = LLVMBuildAdd(b, LLVMBuildAdd(b, au, k32(g, (1 << (drop - 1)) - 1), ""), odd, "");
    ru = LLVMBuildAnd(b, ru, k32(g, ~((1 << drop) - 1) & 0x7FFFFFFF), "");
    LLVMValueRef field_e = LLVMBuildSub(b, LLVMBuildLShr(b, ru, k32(g, 23), ""), k32(g, 127 - f.bias), "");
    LLVMValueRef field_m = LLVMBuildAnd(b, LLVMBuildLShr(b, ru, k32(g, drop), ""), k32(g, (1 << f.man) - 1), "");
    LLVMValueRef normal = LLVMBuildOr(b, LLVMBuildShl(b, field_e, k32(g, f.man), ""), field_m, "");
    /* subnormal: round at the quantum 2^(emin - man) by an f32 add, then scale to the integer */
    LLVMValueRef magic = f32_bits(g, (uint32_t)(127 + f.emin - f.man + 23) << 23);
    LLVMValueRef rs = LLVMBuildFSub(b, LLVMBuildFAdd(b, a, magic, ""), magic, "");
    LLVMValueRef sub = LLVMBuildFPToUI(b, LLVMBuildFMul(b, rs, f32_bits(g, (uint32_t)(127 + f.man - f.emin) << 23), ""),
                                       g->i32, "");
    LLVMValueRef small = LLVMBuildICmp(b, LLVMIntULT, au, k32(g, (int64_t)(127 + f.emin) << 23), "");
    LLVMValueRef mag = LLVMBuildSelect(b, small, sub, normal, "");
    /* past the largest finite value (448 or 57344; infinity included): saturate or infinity */
    uint32_t max_bits = f.e4m3 ? 0x43E00000u : 0x47600000u;
    LLVMValueRef over = LLVMBuildICmp(b, LLVMIntUGT, ru, k32(g, max_bits), "");
    mag = LLVMBuildSelect(b, over, k32(g, f.e4m3 ? 0x7E : 0x7C), mag, "");
    LLVMValueRef r = LLVMBuildOr(b, sign, mag, "");
    LLVMValueRef nan = LLVMBuildFCmp(b, LLVMRealUNO, x, x, "");
    r = LLVMBuildSelect(b, nan, k32(g, f.e4m3 ? 0x7F : 0x7E), r, "");
    return LLVMBuildTrunc(b, r, g->i8, "");
}

/* cvt.rn.satfinite.e4m3x2.f32 d, 0, x: x lands in the low byte of d. */
static LLVMValueRef build_encode_e4m3_cvt(Cg *g, LLVMValueRef x) {
    LLVMTypeRef params[2] = {g->f32, g->f32};
    LLVMTypeRef ft = LLVMFunctionType(g->i16, params, 2, 0);
    const char *text = "cvt.rn.satfinite.e4m3x2.f32 $0, $1, $2;";
    LLVMValueRef fn = LLVMGetInlineAsm(ft, (char *)text, strlen(text), "=h,f,f", 6, 0, 0, LLVMInlineAsmDialectATT, 0);
    LLVMValueRef args[2] = {LLVMConstReal(g->f32, 0.0), x};
    return LLVMBuildTrunc(g->b, LLVMBuildCall2(g->b, ft, fn, args, 2, ""), g->i8, "");
}

/* The module's helper `name` of type ret(param), built on first use with body(). */
static LLVMValueRef helper(Cg *g, const char *name, LLVMTypeRef ret, LLVMTypeRef param, ElemType e, bool encode) {
    LLVMValueRef fn = LLVMGetNamedFunction(g->module, name);
    if (fn) return fn;
    LLVMTypeRef ft = LLVMFunctionType(ret, &param, 1, 0);
    fn = LLVMAddFunction(g->module, name, ft);
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    unsigned kind = LLVMGetEnumAttributeKindForName("alwaysinline", 12);
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(g->ctx, kind, 0));
    LLVMBuilderRef saved = g->b;
    g->b = LLVMCreateBuilderInContext(g->ctx);
    LLVMPositionBuilderAtEnd(g->b, LLVMAppendBasicBlockInContext(g->ctx, fn, "entry"));
    F8Format f = format_of(e);
    LLVMValueRef x = LLVMGetParam(fn, 0), r;
    if (!encode) r = build_decode(g, f, x);
    else if (f.e4m3 && g->arch == BACKEND_ARCH_SM90A) r = build_encode_e4m3_cvt(g, x);
    else r = build_encode_soft(g, f, x);
    LLVMBuildRet(g->b, r);
    LLVMDisposeBuilder(g->b);
    g->b = saved;
    return fn;
}

static LLVMValueRef call_helper(Cg *g, ElemType e, bool encode, LLVMValueRef v) {
    char name[48];
    snprintf(name, sizeof name, "tile.f8e%dm%d.%s", e.exp, e.man, encode ? "encode" : "decode");
    LLVMTypeRef ret = encode ? g->i8 : g->f32, param = encode ? g->f32 : g->i8;
    LLVMValueRef fn = helper(g, name, ret, param, e, encode);
    return LLVMBuildCall2(g->b, LLVMFunctionType(ret, &param, 1, 0), fn, &v, 1, "");
}

LLVMValueRef cg_f8_decode(Cg *g, ElemType e, LLVMValueRef byte) { return call_helper(g, e, false, byte); }

LLVMValueRef cg_f8_encode(Cg *g, ElemType e, LLVMValueRef v) { return call_helper(g, e, true, v); }

LLVMValueRef cg_f8_round(Cg *g, ElemType e, LLVMValueRef v) { return cg_f8_decode(g, e, cg_f8_encode(g, e, v)); }

LLVMValueRef cg_f8_raw(Cg *g, ElemType e, LLVMValueRef v) {
    if (!LLVMIsACallInst(v)) return NULL;
    LLVMValueRef callee = LLVMGetCalledValue(v);
    if (!callee || !LLVMIsAFunction(callee)) return NULL;
    char name[48];
    snprintf(name, sizeof name, "tile.f8e%dm%d.decode", e.exp, e.man);
    size_t len = 0;
    const char *have = LLVMGetValueName2(callee, &len);
    if (len != strlen(name) || memcmp(have, name, len) != 0) return NULL;
    (void)g;
    return LLVMGetOperand(v, 0);
}
