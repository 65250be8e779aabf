/* test_passes.c: each pass's effect as printed IR before and after (folding with wrap-around
 * and float rounding, identities, constant control flow, CSE, DCE, inlining), the pipeline's
 * dumps, and the guards (recursion, invalid IR). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ir/ir.h"
#include "passes/passes.h"

/* ---- helpers ----------------------------------------------------------------------------------- */
static const IrType *scalar(IrModule *m, ElemType e) { return ir_scalar_type(m, e); }

/* A device function with the given parameter types and result types; b is left at its end. */
static IrFunction *func(IrModule *m, const char *name, IrBuilder *b, int nparams, const IrType *const *params,
                        int nresults, const IrType *const *results) {
    IrFunction *f = ir_function_new(m, name, false, (SrcLoc){0});
    for (int i = 0; i < nparams; i++) ir_region_add_arg(f->body, params[i], NULL);
    f->nresults = (uint32_t)nresults;
    f->result_types = ARENA_ARRAY(&m->arena, const IrType *, nresults ? nresults : 1);
    for (int i = 0; i < nresults; i++) f->result_types[i] = results[i];
    ir_builder_at_end(b, f->body);
    return f;
}

static void ret(IrBuilder *b, int n, ...) {
    IrValue *vals[8];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) vals[i] = va_arg(ap, IrValue *);
    va_end(ap);
    ir_build(b, OP_RETURN, vals, (uint32_t)n, NULL, 0);
}

static char *print_function(IrFunction *f) {
    Strbuf sb = {0};
    ir_print_function(f, &sb);
    return sb.data;
}

static void assert_valid(IrModule *m) {
    DiagList d = {0};
    bool ok = ir_verify_module(m, &d);
    cr_assert(ok, "invalid IR:\n%s", sb_str(&d.text));
    diag_free(&d);
}

/* Runs one pass, checks that the IR stays valid, and returns whether it changed anything. */
static bool run(IrModule *m, PassFn pass) {
    assert_valid(m);
    DiagList d = {0};
    bool changed = pass(m, &d);
    cr_assert_eq(d.errors, 0, "%s", sb_str(&d.text));
    diag_free(&d);
    assert_valid(m);
    return changed;
}

#define ASSERT_IR(f, expected)                                                                \
    do {                                                                                     \
        char *text_ = print_function(f);                                                     \
        cr_assert_str_eq(text_, expected);                                                   \
        free(text_);                                                                         \
    } while (0)

/* ---- canonicalize: constant folding ------------------------------------------------------------ */
Test(canonicalize, folds_integers_with_wrap_around) {
    IrModule *m = ir_module_new();
    IrBuilder b = {0};
    const IrType *i8 = scalar(m, elem_int(8)), *u8 = scalar(m, elem_uint(8)), *i32 = scalar(m, elem_i32());
    const IrType *res[3] = {i32, i8, u8};
    IrFunction *f = func(m, "f", &b, 0, NULL, 3, res);
    IrValue *two = ir_const_int(&b, i32, 2), *three = ir_const_int(&b, i32, 3);
    IrValue *five = ir_binary(&b, OP_ADD, two, three);
    IrValue *hundred = ir_const_int(&b, i8, 100);
    IrValue *wrapped = ir_binary(&b, OP_ADD, hundred, hundred);
    IrValue *u200 = ir_const_int(&b, u8, 200), *u100 = ir_const_int(&b, u8, 100);
    IrValue *uwrapped = ir_binary(&b, OP_ADD, u200, u100);
    ret(&b, 3, five, wrapped, uwrapped);
    ASSERT_IR(f, "func @f() -> (i32, i8, u8) {\n"
                 "  %0 = const 2 : i32\n"
                 "  %1 = const 3 : i32\n"
                 "  %2 = add %0, %1 : i32\n"
                 "  %3 = const 100 : i8\n"
                 "  %4 = add %3, %3 : i8\n"
                 "  %5 = const 200 : u8\n"
                 "  %6 = const 100 : u8\n"
                 "  %7 = add %5, %6 : u8\n"
                 "  return %2, %4, %7\n"
                 "}\n");
    cr_assert(run(m, pass_canonicalize));
    ASSERT_IR(f, "func @f() -> (i32, i8, u8) {\n"
                 "  %0 = const 2 : i32\n"
                 "  %1 = const 3 : i32\n"
                 "  %2 = const 5 : i32\n"
                 "  %3 = const 100 : i8\n"
                 "  %4 = const -56 : i8\n"
                 "  %5 = const 200 : u8\n"
                 "  %6 = const 100 : u8\n"
                 "  %7 = const 44 : u8\n"
                 "  return %2, %4, %7\n"
                 "}\n");
    cr_assert(run(m, pass_dce));
    ASSERT_IR(f, "func @f() -> (i32, i8, u8) {\n"
                 "  %0 = const 5 : i32\n"
                 "  %1 = const -56 : i8\n"
                 "  %2 = const 44 : u8\n"
                 "  return %0, %1, %2\n"
                 "}\n");
    cr_assert_not(run(m, pass_canonicalize), "a second run must find nothing to do");
    ir_module_free(m);
}

/* Folds `a code b` of two constants of type t and returns the folded constant op. */
static IrOp *fold2(IrModule *m, OpCode code, int pred, const IrType *t, IrConst a, IrConst c) {
    IrBuilder b = {0};
    IrFunction *f = func(m, "fold", &b, 0, NULL, 0, NULL);
    IrValue *x = a.is_float ? ir_const_float(&b, t, a.f) : ir_const_int(&b, t, a.i);
    IrValue *y = c.is_float ? ir_const_float(&b, t, c.f) : ir_const_int(&b, t, c.i);
    IrValue *r;
    if (code == OP_CMP) r = ir_cmp(&b, (IrCmp)pred, x, y);
    else if (code == OP_NEG || code == OP_ABS || code == OP_NOT || code == OP_SQRT) r = ir_unary(&b, code, x);
    else r = ir_binary(&b, code, x, y);
    ret(&b, 0); /* r is unused: canonicalize folds it anyway, and dce has not run */
    IrOp *op = r->def;
    run(m, pass_canonicalize);
    cr_assert_null(op->parent, "the folded op must be gone");
    /* The new constant is inserted right before where the op was: after y's definition. */
    IrOp *folded = y->def->next;
    cr_assert_eq(folded->code, OP_CONST);
    (void)f;
    return folded;
}

static IrConst ci(int64_t v) { return (IrConst){.i = v}; }
static IrConst cf(double v) { return (IrConst){.is_float = true, .f = v}; }

Test(canonicalize, integer_semantics_match_the_vm) {
    IrModule *m = ir_module_new();
    const IrType *i32 = scalar(m, elem_i32()), *i8 = scalar(m, elem_int(8)), *u8 = scalar(m, elem_uint(8));
    const IrType *i64 = scalar(m, elem_int(64)), *i4 = scalar(m, elem_int(4));
    cr_assert_eq(fold2(m, OP_DIV, 0, i32, ci(7), ci(0))->value.i, 0);            /* x/0 = 0 */
    cr_assert_eq(fold2(m, OP_REM, 0, i32, ci(7), ci(0))->value.i, 0);            /* x%0 = 0 */
    cr_assert_eq(fold2(m, OP_DIV, 0, i32, ci(-7), ci(2))->value.i, -3);          /* truncating */
    cr_assert_eq(fold2(m, OP_REM, 0, i32, ci(-7), ci(2))->value.i, -1);          /* dividend's sign */
    cr_assert_eq(fold2(m, OP_DIV, 0, i64, ci(INT64_MIN), ci(-1))->value.i, INT64_MIN);
    cr_assert_eq(fold2(m, OP_DIV, 0, i8, ci(-128), ci(-1))->value.i, -128);
    cr_assert_eq(fold2(m, OP_MUL, 0, i4, ci(7), ci(3))->value.i, 5);             /* 21 mod 16 = 5 */
    cr_assert_eq(fold2(m, OP_SUB, 0, u8, ci(3), ci(5))->value.i, 254);
    cr_assert_eq(fold2(m, OP_MAX, 0, u8, ci(200), ci(100))->value.i, 200);       /* unsigned order */
    cr_assert_eq(fold2(m, OP_MAX, 0, i8, ci(-56), ci(100))->value.i, 100);
    cr_assert_eq(fold2(m, OP_SHL, 0, i8, ci(1), ci(7))->value.i, -128);
    cr_assert_eq(fold2(m, OP_SHR, 0, i8, ci(-128), ci(3))->value.i, -16);        /* arithmetic */
    cr_assert_eq(fold2(m, OP_SHR, 0, u8, ci(128), ci(3))->value.i, 16);          /* logical */
    cr_assert_eq(fold2(m, OP_CMP, CMP_LT, u8, ci(200), ci(100))->value.i, 0);
    cr_assert_eq(fold2(m, OP_CMP, CMP_LT, i8, ci(-56), ci(100))->value.i, 1);
    cr_assert_eq(fold2(m, OP_NEG, 0, i8, ci(-128), ci(0))->value.i, -128);
    cr_assert_eq(fold2(m, OP_ABS, 0, i8, ci(-128), ci(0))->value.i, -128);
    cr_assert_eq(fold2(m, OP_NOT, 0, u8, ci(5), ci(0))->value.i, 250);
    ir_module_free(m);
}

Test(canonicalize, out_of_range_shifts_fold_as_the_vm_computes) {
    /* ops.def defines them (shl: 0; shr: the sign), and folding shares the VM's arithmetic */
    IrModule *m = ir_module_new();
    const IrType *i8 = scalar(m, elem_int(8)), *u8 = scalar(m, elem_uint(8));
    cr_assert_eq(fold2(m, OP_SHL, 0, i8, ci(1), ci(8))->value.i, 0);
    cr_assert_eq(fold2(m, OP_SHR, 0, i8, ci(-3), ci(9))->value.i, -1);
    cr_assert_eq(fold2(m, OP_SHR, 0, i8, ci(3), ci(-1))->value.i, 0);
    cr_assert_eq(fold2(m, OP_SHL, 0, u8, ci(1), ci(200))->value.i, 0);
    ir_module_free(m);
}

Test(canonicalize, rounds_folded_floats_to_the_type) {
    IrModule *m = ir_module_new();
    const IrType *bf16 = scalar(m, elem_bf16()), *f32 = scalar(m, elem_f32()), *f16 = scalar(m, elem_f16());
    const IrType *e4m3 = scalar(m, elem_float(4, 3));
    /* bf16 has 7 mantissa bits: 1 + 2^-8 is half an ulp above 1 and ties to even (1). */
    cr_assert_eq(fold2(m, OP_ADD, 0, bf16, cf(1.0), cf(0x1p-8))->value.f, 1.0);
    /* (1 + 2^-7) + 2^-8 ties between 1 + 2^-7 (odd) and 1 + 2^-6 (even). */
    cr_assert_eq(fold2(m, OP_ADD, 0, bf16, cf(1.0 + 0x1p-7), cf(0x1p-8))->value.f, 1.0 + 0x1p-6);
    cr_assert_eq(fold2(m, OP_ADD, 0, f32, cf(0.1), cf(0.2))->value.f, (double)(0.1f + 0.2f));
    cr_assert_eq(fold2(m, OP_MUL, 0, f16, cf(300.0), cf(300.0))->value.f, INFINITY); /* IEEE overflow */
    cr_assert_eq(fold2(m, OP_MUL, 0, e4m3, cf(200.0), cf(200.0))->value.f, 448.0);   /* saturates */
    cr_assert_eq(fold2(m, OP_DIV, 0, f32, cf(1.0), cf(3.0))->value.f, (double)(1.0f / 3.0f));
    cr_assert(isnan(fold2(m, OP_SUB, 0, f32, cf(INFINITY), cf(INFINITY))->value.f));
    cr_assert_eq(fold2(m, OP_SQRT, 0, f32, cf(2.0), cf(0))->value.f, (double)sqrtf(2.0f));
    cr_assert_eq(fold2(m, OP_CMP, CMP_NE, f32, cf(NAN), cf(NAN))->value.i, 1);
    cr_assert_eq(fold2(m, OP_CMP, CMP_EQ, f32, cf(NAN), cf(NAN))->value.i, 0);
    cr_assert_eq(fold2(m, OP_CMP, CMP_EQ, f32, cf(-0.0), cf(0.0))->value.i, 1);
    IrOp *neg = fold2(m, OP_NEG, 0, f32, cf(0.0), cf(0));
    cr_assert(neg->value.f == 0 && signbit(neg->value.f));
    ir_module_free(m);
}

Test(canonicalize, folds_casts_with_vm_conversions) {
    IrModule *m = ir_module_new();
    IrBuilder b = {0};
    const IrType *f32 = scalar(m, elem_f32()), *i8 = scalar(m, elem_int(8)), *u8 = scalar(m, elem_uint(8));
    const IrType *i32 = scalar(m, elem_i32()), *bf16 = scalar(m, elem_bf16());
    const IrType *res[4] = {i8, i8, u8, bf16};
    IrFunction *f = func(m, "casts", &b, 0, NULL, 4, res);
    IrValue *a = ir_op1(&b, OP_CAST, i8, ir_const_float(&b, f32, -3.7));
    IrValue *c = ir_op1(&b, OP_CAST, i8, ir_const_float(&b, f32, 300.0));
    IrValue *d = ir_op1(&b, OP_CAST, u8, ir_const_int(&b, i32, 300));
    IrValue *e = ir_op1(&b, OP_CAST, bf16, ir_const_int(&b, i32, 257));
    ret(&b, 4, a, c, d, e);
    run(m, pass_canonicalize);
    run(m, pass_dce);
    ASSERT_IR(f, "func @casts() -> (i8, i8, u8, bf16) {\n"
                 "  %0 = const -3 : i8\n"
                 "  %1 = const 127 : i8\n"
                 "  %2 = const 44 : u8\n"
                 "  %3 = const 256.0 : bf16\n"
                 "  return %0, %1, %2, %3\n"
                 "}\n");
    ir_module_free(m);
}

Test(canonicalize, splat_and_broadcast_of_constants) {
    IrModule *m = ir_module_new();
    IrBuilder b = {0};
    int64_t s1x4[2] = {1, 4}, s8x4[2] = {8, 4};
    const IrType *f32 = scalar(m, elem_f32()), *t14 = ir_tile_type(m, elem_f32(), 2, s1x4);
    const IrType *t84 = ir_tile_type(m, elem_f32(), 2, s8x4);
    IrFunction *f = func(m, "splats", &b, 1, &t84, 1, &t84);
    IrValue *s = ir_op1(&b, OP_SPLAT, t14, ir_const_float(&b, f32, 1.5));
    IrValue *bc = ir_op1(&b, OP_BROADCAST, t84, s);
    ret(&b, 1, ir_binary(&b, OP_MUL, f->body->args[0], bc));
    run(m, pass_canonicalize);
    run(m, pass_dce);
    ASSERT_IR(f, "func @splats(%0: tile<f32>[8, 4]) -> (tile<f32>[8, 4]) {\n"
                 "  %1 = const 1.5 : tile<f32>[8, 4]\n"
                 "  %2 = mul %0, %1 : tile<f32>[8, 4]\n"
                 "  return %2\n"
                 "}\n");
    ir_module_free(m);
}

/* ---- canonicalize: identities ------------------------------------------------------------------ */
Test(canonicalize, exact_identities_only) {
    IrModule *m = ir_module_new();
    IrBuilder b = {0};
    const IrType *i32 = scalar(m, elem_i32()), *f32 = scalar(m, elem_f32()), *bl = scalar(m, elem_bool());
    const IrType *params[3] = {i32, f32, bl};
    const IrType *res[10] = {i32, i32, f32, f32, f32, f32, bl, bl, i32, f32};
    IrFunction *f = func(m, "ids", &b, 3, params, 10, res);
    IrValue *x = f->body->args[0], *y = f->body->args[1], *p = f->body->args[2];
    IrValue *r[10];
    r[0] = ir_binary(&b, OP_ADD, ir_const_int(&b, i32, 0), x);           /* 0 + x -> x */
    r[1] = ir_binary(&b, OP_MUL, x, ir_const_int(&b, i32, 0));           /* x * 0 -> 0 */
    r[2] = ir_binary(&b, OP_ADD, y, ir_const_float(&b, f32, 0.0));       /* y + 0.0 stays */
    r[3] = ir_binary(&b, OP_ADD, y, ir_const_float(&b, f32, -0.0));      /* y + -0.0 -> y */
    r[4] = ir_binary(&b, OP_MUL, y, ir_const_float(&b, f32, 0.0));       /* y * 0.0 stays */
    r[5] = ir_binary(&b, OP_MUL, ir_const_float(&b, f32, 1.0), y);       /* 1.0 * y -> y */
    r[6] = ir_binary(&b, OP_AND, p, ir_const_int(&b, bl, 1));            /* p and true -> p */
    r[7] = ir_binary(&b, OP_OR, p, ir_const_int(&b, bl, 1));             /* p or true -> true */
    r[8] = ir_unary(&b, OP_NEG, ir_unary(&b, OP_NEG, x));                /* -(-x) -> x */
    r[9] = ir_op1(&b, OP_CAST, f32, y);                                  /* cast to own type -> y */
    ir_build(&b, OP_RETURN, r, 10, NULL, 0);
    run(m, pass_canonicalize);
    run(m, pass_dce);
    ASSERT_IR(f, "func @ids(%0: i32, %1: f32, %2: bool) -> (i32, i32, f32, f32, f32, f32, bool, bool, i32, f32) {\n"
                 "  %3 = const 0 : i32\n"
                 "  %4 = const 0.0 : f32\n"
                 "  %5 = add %1, %4 : f32\n"
                 "  %6 = const 0.0 : f32\n"
                 "  %7 = mul %1, %6 : f32\n"
                 "  %8 = const true : bool\n"
                 "  return %0, %3, %5, %1, %7, %1, %2, %8, %0, %1\n"
                 "}\n");
    ir_module_free(m);
}

Test(canonicalize, select_with_constant_condition) {
    IrModule *m = ir_module_new();
    IrBuilder b = {0};
    const IrType *f32 = scalar(m, elem_f32()), *bl = scalar(m, elem_bool());
    const IrType *params[2] = {f32, f32};
    IrFunction *f = func(m, "sel", &b, 2, params, 1, &f32);
    IrValue *ops[3] = {ir_const_int(&b, bl, 0), f->body->args[0], f->body->args[1]};
    ret(&b, 1, ir_build(&b, OP_SELECT, ops, 3, &f32, 1)->results[0]);
    run(m, pass_canonicalize);
    cr_assert_eq(f->body->last->operands[0], f->body->args[1]);
    ir_module_free(m);
}

/* ---- canonicalize: control flow ----------------------------------------------------------------- */
/* func pick(x: f32) -> f32 { if cond { yield x * 2 } else { yield x + 1 } } */
static IrFunction *build_if(IrModule *m, bool cond) {
    IrBuilder b = {0};
    const IrType *f32 = scalar(m, elem_f32());
    IrFunction *f = func(m, "pick", &b, 1, &f32, 1, &f32);
    IrValue *x = f->body->args[0];
    IrValue *c = ir_const_int(&b, scalar(m, elem_bool()), cond);
    IrOp *branch = ir_build(&b, OP_IF, &c, 1, &f32, 1);
    IrRegion *then = ir_op_add_region(branch), *els = ir_op_add_region(branch);
    IrBuilder in = {0};
    ir_builder_at_end(&in, then);
    IrValue *t = ir_binary(&in, OP_MUL, x, ir_const_float(&in, f32, 2.0));
    ir_build(&in, OP_YIELD, &t, 1, NULL, 0);
    ir_builder_at_end(&in, els);
    IrValue *e = ir_binary(&in, OP_ADD, x, ir_const_float(&in, f32, 1.0));
    ir_build(&in, OP_YIELD, &e, 1, NULL, 0);
    ret(&b, 1, branch->results[0]);
    return f;
}

Test(canonicalize, if_with_constant_condition) {
    IrModule *m = ir_module_new();
    IrFunction *f = build_if(m, true);
    ASSERT_IR(f, "func @pick(%0: f32) -> (f32) {\n"
                 "  %1 = const true : bool\n"
                 "  %6 = if %1 -> (f32) {\n"
                 "    %2 = const 2.0 : f32\n"
                 "    %3 = mul %0, %2 : f32\n"
                 "    yield %3\n"
                 "  } else {\n"
                 "    %4 = const 1.0 : f32\n"
                 "    %5 = add %0, %4 : f32\n"
                 "    yield %5\n"
                 "  }\n"
                 "  return %6\n"
                 "}\n");
    cr_assert(run(m, pass_canonicalize));
    ASSERT_IR(f, "func @pick(%0: f32) -> (f32) {\n"
                 "  %1 = const true : bool\n"
                 "  %2 = const 2.0 : f32\n"
                 "  %3 = mul %0, %2 : f32\n"
                 "  return %3\n"
                 "}\n");
    IrFunction *g = build_if(m, false);
    run(m, pass_canonicalize);
    run(m, pass_dce);
    ASSERT_IR(g, "func @pick(%0: f32) -> (f32) {\n"
                 "  %1 = const 1.0 : f32\n"
                 "  %2 = add %0, %1 : f32\n"
                 "  return %2\n"
                 "}\n");
    ir_module_free(m);
}

/* func loop(x: f32) -> f32 { for i in lo..hi step 1 carry acc = x { acc = acc * 2 } } */
static IrFunction *build_for(IrModule *m, int lo, int hi) {
    IrBuilder b = {0};
    const IrType *f32 = scalar(m, elem_f32()), *i32 = scalar(m, elem_i32());
    IrFunction *f = func(m, "loop", &b, 1, &f32, 1, &f32);
    IrValue *ops[4];
    ops[0] = ir_const_int(&b, i32, lo);
    ops[1] = ir_const_int(&b, i32, hi);
    ops[2] = ir_const_int(&b, i32, 1);
    ops[3] = f->body->args[0];
    IrOp *loop = ir_build(&b, OP_FOR, ops, 4, &f32, 1);
    IrRegion *body = ir_op_add_region(loop);
    ir_region_add_arg(body, i32, "i");
    IrValue *acc = ir_region_add_arg(body, f32, "acc");
    IrBuilder in = {0};
    ir_builder_at_end(&in, body);
    IrValue *next = ir_binary(&in, OP_MUL, acc, ir_const_float(&in, f32, 2.0));
    ir_build(&in, OP_YIELD, &next, 1, NULL, 0);
    ret(&b, 1, loop->results[0]);
    return f;
}

Test(canonicalize, for_that_runs_zero_times) {
    IrModule *m = ir_module_new();
    IrFunction *f = build_for(m, 5, 5);
    IrFunction *g = build_for(m, 0, 4);
    run(m, pass_canonicalize);
    run(m, pass_dce);
    ASSERT_IR(f, "func @loop(%0: f32) -> (f32) {\n"
                 "  return %0\n"
                 "}\n");
    /* A loop that runs is kept. */
    cr_assert_eq(g->body->last->prev->code, OP_FOR);
    ir_module_free(m);
}

/* ---- cse ----------------------------------------------------------------------------------------- */
Test(cse, merges_pure_duplicates_but_not_memory_ops) {
    IrModule *m = ir_module_new();
    IrFunction *f = ir_function_new(m, "k", true, (SrcLoc){0});
    const IrType *tf = ir_tensor_type(m, elem_f32(), 1), *i32 = scalar(m, elem_i32()), *f32 = scalar(m, elem_f32());
    IrValue *t = ir_region_add_arg(f->body, tf, "t");
    ir_region_add_arg(f->grid, tf, "t");
    IrBuilder b = {0};
    ir_builder_at_end(&b, f->grid);
    IrValue *one = ir_const_int(&b, i32, 1);
    ir_build(&b, OP_YIELD, &one, 1, NULL, 0);
    ir_builder_at_end(&b, f->body);
    IrValue *p = ir_build(&b, OP_BLOCK_ID, NULL, 0, &i32, 1)->results[0];
    IrValue *q = ir_build(&b, OP_BLOCK_ID, NULL, 0, &i32, 1)->results[0];
    IrValue *c1 = ir_const_int(&b, i32, 4), *c2 = ir_const_int(&b, i32, 4);
    IrValue *a1 = ir_binary(&b, OP_ADD, p, c1);
    IrValue *a2 = ir_binary(&b, OP_ADD, c2, q); /* commuted */
    IrValue *s1 = ir_binary(&b, OP_SUB, a1, c1);
    IrValue *s2 = ir_binary(&b, OP_SUB, c1, a1); /* not commutative: kept */
    IrValue *l1[2] = {t, a1}, *l2[2] = {t, a2};
    IrValue *x = ir_build(&b, OP_LOAD, l1, 2, &f32, 1)->results[0];
    IrValue *y = ir_build(&b, OP_LOAD, l2, 2, &f32, 1)->results[0];
    IrValue *st1[3] = {t, s1, x}, *st2[3] = {t, s2, y};
    ir_build(&b, OP_STORE, st1, 3, NULL, 0);
    ir_build(&b, OP_STORE, st1, 3, NULL, 0);
    ir_build(&b, OP_STORE, st2, 3, NULL, 0);
    cr_assert(run(m, pass_cse));
    ASSERT_IR(f, "kernel @k(%0: tensor<f32>[?])\n"
                 "grid {\n"
                 "  %1 = const 1 : i32\n"
                 "  yield %1\n"
                 "}\n"
                 "body {\n"
                 "  %1 = block_id axis 0 : i32\n"
                 "  %2 = const 4 : i32\n"
                 "  %3 = add %1, %2 : i32\n"
                 "  %4 = sub %3, %2 : i32\n"
                 "  %5 = sub %2, %3 : i32\n"
                 "  %6 = load %0, %3 : f32\n"
                 "  %7 = load %0, %3 : f32\n"
                 "  store %0, %4, %6\n"
                 "  store %0, %4, %6\n"
                 "  store %0, %5, %7\n"
                 "}\n");
    cr_assert_not(run(m, pass_cse));
    ir_module_free(m);
}

Test(cse, respects_region_scopes) {
    IrModule *m = ir_module_new();
    IrBuilder b = {0};
    const IrType *f32 = scalar(m, elem_f32()), *bl = scalar(m, elem_bool());
    const IrType *params[2] = {f32, bl};
    IrFunction *f = func(m, "scopes", &b, 2, params, 2, (const IrType *const[]){f32, f32});
    IrValue *x = f->body->args[0];
    IrValue *outer = ir_unary(&b, OP_EXP, x);
    IrOp *branch = ir_build(&b, OP_IF, &f->body->args[1], 1, &f32, 1);
    IrRegion *then = ir_op_add_region(branch), *els = ir_op_add_region(branch);
    IrBuilder in = {0};
    ir_builder_at_end(&in, then);
    IrValue *t = ir_binary(&in, OP_ADD, ir_unary(&in, OP_EXP, x), ir_unary(&in, OP_SQRT, x));
    ir_build(&in, OP_YIELD, &t, 1, NULL, 0);
    ir_builder_at_end(&in, els);
    IrValue *e = ir_unary(&in, OP_SQRT, x); /* equal to the then region's, which does not dominate */
    ir_build(&in, OP_YIELD, &e, 1, NULL, 0);
    IrValue *after = ir_unary(&b, OP_SQRT, x); /* neither branch's sqrt dominates this */
    ret(&b, 2, ir_binary(&b, OP_ADD, branch->results[0], outer), after);
    cr_assert(run(m, pass_cse));
    ASSERT_IR(f, "func @scopes(%0: f32, %1: bool) -> (f32, f32) {\n"
                 "  %2 = exp %0 : f32\n"
                 "  %6 = if %1 -> (f32) {\n"
                 "    %3 = sqrt %0 : f32\n"
                 "    %4 = add %2, %3 : f32\n"
                 "    yield %4\n"
                 "  } else {\n"
                 "    %5 = sqrt %0 : f32\n"
                 "    yield %5\n"
                 "  }\n"
                 "  %7 = sqrt %0 : f32\n"
                 "  %8 = add %6, %2 : f32\n"
                 "  return %8, %7\n"
                 "}\n");
    ir_module_free(m);
}

Test(cse, keeps_distinct_constants_apart) {
    IrModule *m = ir_module_new();
    IrBuilder b = {0};
    const IrType *f32 = scalar(m, elem_f32()), *i32 = scalar(m, elem_i32());
    IrFunction *f = func(m, "consts", &b, 0, NULL, 4, (const IrType *const[]){f32, f32, i32, i32});
    IrValue *pz = ir_const_float(&b, f32, 0.0), *nz = ir_const_float(&b, f32, -0.0);
    IrValue *one = ir_const_int(&b, i32, 1), *one2 = ir_const_int(&b, i32, 1);
    ret(&b, 4, pz, nz, one, one2);
    cr_assert(run(m, pass_cse));
    ASSERT_IR(f, "func @consts() -> (f32, f32, i32, i32) {\n"
                 "  %0 = const 0.0 : f32\n"
                 "  %1 = const -0.0 : f32\n"
                 "  %2 = const 1 : i32\n"
                 "  return %0, %1, %2, %2\n"
                 "}\n");
    ir_module_free(m);
}

/* ---- dce ------------------------------------------------------------------------------------------ */
Test(dce, removes_dead_chains_and_keeps_effects) {
    IrModule *m = ir_module_new();
    IrFunction *f = ir_function_new(m, "k", true, (SrcLoc){0});
    const IrType *tf = ir_tensor_type(m, elem_f32(), 1), *i32 = scalar(m, elem_i32()), *f32 = scalar(m, elem_f32());
    IrValue *t = ir_region_add_arg(f->body, tf, "t");
    ir_region_add_arg(f->grid, tf, "t");
    IrBuilder b = {0};
    ir_builder_at_end(&b, f->grid);
    IrValue *dead_in_grid = ir_const_int(&b, i32, 9);
    (void)dead_in_grid;
    IrValue *one = ir_const_int(&b, i32, 1);
    ir_build(&b, OP_YIELD, &one, 1, NULL, 0);
    ir_builder_at_end(&b, f->body);
    IrValue *p = ir_build(&b, OP_BLOCK_ID, NULL, 0, &i32, 1)->results[0];
    IrValue *d1 = ir_binary(&b, OP_MUL, p, p);
    IrValue *d2 = ir_binary(&b, OP_ADD, d1, p);
    ir_unary(&b, OP_NEG, d2); /* dead chain: neg <- add <- mul */
    IrValue *li[2] = {t, p};
    IrValue *x = ir_build(&b, OP_LOAD, li, 2, &f32, 1)->results[0];
    (void)x; /* a dead load: loads are not pure, so it stays */
    IrValue *st[3] = {t, p, ir_const_float(&b, f32, 1.0)};
    ir_build(&b, OP_STORE, st, 3, NULL, 0);
    cr_assert(run(m, pass_dce));
    ASSERT_IR(f, "kernel @k(%0: tensor<f32>[?])\n"
                 "grid {\n"
                 "  %1 = const 1 : i32\n"
                 "  yield %1\n"
                 "}\n"
                 "body {\n"
                 "  %1 = block_id axis 0 : i32\n"
                 "  %2 = load %0, %1 : f32\n"
                 "  %3 = const 1.0 : f32\n"
                 "  store %0, %1, %3\n"
                 "}\n");
    cr_assert_not(run(m, pass_dce));
    ir_module_free(m);
}

Test(dce, removes_unused_loop_carried_values) {
    IrModule *m = ir_module_new();
    IrBuilder b = {0};
    const IrType *f32 = scalar(m, elem_f32()), *i32 = scalar(m, elem_i32());
    IrFunction *f = func(m, "carry", &b, 1, &i32, 1, &f32);
    IrValue *ops[6];
    ops[0] = ir_const_int(&b, i32, 0);
    ops[1] = f->body->args[0];
    ops[2] = ir_const_int(&b, i32, 1);
    ops[3] = ir_const_float(&b, f32, 0.0); /* used: returned */
    ops[4] = ir_const_float(&b, f32, 1.0); /* dead: only feeds itself through a mul */
    ops[5] = ir_const_float(&b, f32, 2.0); /* dead result, but the used value reads it */
    const IrType *types[3] = {f32, f32, f32};
    IrOp *loop = ir_build(&b, OP_FOR, ops, 6, types, 3);
    IrRegion *body = ir_op_add_region(loop);
    ir_region_add_arg(body, i32, "i");
    IrValue *a = ir_region_add_arg(body, f32, "a");
    IrValue *p = ir_region_add_arg(body, f32, "p");
    IrValue *c = ir_region_add_arg(body, f32, "c");
    IrBuilder in = {0};
    ir_builder_at_end(&in, body);
    IrValue *a2 = ir_binary(&in, OP_ADD, a, c);
    IrValue *p2 = ir_binary(&in, OP_MUL, p, p);
    IrValue *y[3] = {a2, p2, c};
    ir_build(&in, OP_YIELD, y, 3, NULL, 0);
    ret(&b, 1, loop->results[0]);
    cr_assert(run(m, pass_dce));
    ASSERT_IR(f, "func @carry(%0: i32) -> (f32) {\n"
                 "  %1 = const 0 : i32\n"
                 "  %2 = const 1 : i32\n"
                 "  %3 = const 0.0 : f32\n"
                 "  %4 = const 2.0 : f32\n"
                 "  %9, %10 = for %5 = %1 to %0 step %2 iter(%6 = %3, %7 = %4) -> (f32, f32) {\n"
                 "    %8 = add %6, %7 : f32\n"
                 "    yield %8, %7\n"
                 "  }\n"
                 "  return %9\n"
                 "}\n");
    ir_module_free(m);
}

Test(dce, removes_effect_free_control_flow_but_not_while) {
    IrModule *m = ir_module_new();
    IrFunction *f = build_for(m, 0, 8);
    ir_set_operand(f->body->last, 0, f->body->args[0]); /* the loop's result is now unused */
    cr_assert(run(m, pass_dce));
    ASSERT_IR(f, "func @loop(%0: f32) -> (f32) {\n"
                 "  return %0\n"
                 "}\n");
    /* A while loop may not end: it stays even when its result is unused. */
    IrBuilder b = {0};
    const IrType *i32 = scalar(m, elem_i32());
    IrFunction *g = func(m, "spin", &b, 1, &i32, 0, NULL);
    IrOp *w = ir_build(&b, OP_WHILE, &g->body->args[0], 1, &i32, 1);
    IrRegion *before = ir_op_add_region(w), *after = ir_op_add_region(w);
    IrValue *i = ir_region_add_arg(before, i32, NULL);
    IrBuilder in = {0};
    ir_builder_at_end(&in, before);
    IrValue *cond[2] = {ir_cmp(&in, CMP_NE, i, ir_const_int(&in, i32, 0)), i};
    ir_build(&in, OP_CONDITION, cond, 2, NULL, 0);
    IrValue *j = ir_region_add_arg(after, i32, NULL);
    ir_builder_at_end(&in, after);
    ir_build(&in, OP_YIELD, &j, 1, NULL, 0);
    ret(&b, 0);
    run(m, pass_dce);
    cr_assert_eq(g->body->first, w);
    ir_module_free(m);
}

/* ---- inline ---------------------------------------------------------------------------------------- */
static IrValue *call(IrBuilder *b, IrFunction *callee, int n, IrValue **args) {
    IrOp *op = ir_build(b, OP_CALL, args, (uint32_t)n, callee->result_types, callee->nresults);
    op->callee = callee;
    return callee->nresults ? op->results[0] : NULL;
}

Test(inline, nested_calls_with_regions) {
    IrModule *m = ir_module_new();
    IrBuilder b = {0};
    const IrType *f32 = scalar(m, elem_f32()), *bl = scalar(m, elem_bool());
    /* sq(x) = x * x */
    IrFunction *sq = func(m, "sq", &b, 1, &f32, 1, &f32);
    ret(&b, 1, ir_binary(&b, OP_MUL, sq->body->args[0], sq->body->args[0]));
    /* relu_sq(x) = if x > 0 { sq(x) } else { 0 } */
    IrFunction *relu = func(m, "relu_sq", &b, 1, &f32, 1, &f32);
    IrValue *x = relu->body->args[0];
    IrValue *zero = ir_const_float(&b, f32, 0.0);
    IrValue *pos = ir_cmp(&b, CMP_GT, x, zero);
    IrOp *branch = ir_build(&b, OP_IF, &pos, 1, &f32, 1);
    IrRegion *then = ir_op_add_region(branch), *els = ir_op_add_region(branch);
    IrBuilder in = {0};
    ir_builder_at_end(&in, then);
    IrValue *s = call(&in, sq, 1, &x);
    ir_build(&in, OP_YIELD, &s, 1, NULL, 0);
    ir_builder_at_end(&in, els);
    ir_build(&in, OP_YIELD, &zero, 1, NULL, 0);
    ret(&b, 1, branch->results[0]);
    /* top(a, b) = relu_sq(a) + sq(b) */
    const IrType *two[2] = {f32, f32};
    IrFunction *top = func(m, "top", &b, 2, two, 1, &f32);
    IrValue *r1 = call(&b, relu, 1, &top->body->args[0]);
    IrValue *r2 = call(&b, sq, 1, &top->body->args[1]);
    ret(&b, 1, ir_binary(&b, OP_ADD, r1, r2));
    (void)bl;

    cr_assert(run(m, pass_inline));
    ASSERT_IR(top, "func @top(%0: f32, %1: f32) -> (f32) {\n"
                   "  %2 = const 0.0 : f32\n"
                   "  %3 = cmp gt %0, %2 : bool\n"
                   "  %5 = if %3 -> (f32) {\n"
                   "    %4 = mul %0, %0 : f32\n"
                   "    yield %4\n"
                   "  } else {\n"
                   "    yield %2\n"
                   "  }\n"
                   "  %6 = mul %1, %1 : f32\n"
                   "  %7 = add %5, %6 : f32\n"
                   "  return %7\n"
                   "}\n");
    /* relu_sq itself had its call inlined too. */
    cr_assert_eq(relu->body->first->next->next->regions[0]->first->code, OP_MUL);
    cr_assert_not(run(m, pass_inline));
    /* top is a device function nobody calls: dce removes every function. A kernel stays. */
    IrFunction *k = ir_function_new(m, "k", true, (SrcLoc){0});
    ir_builder_at_end(&b, k->grid);
    IrValue *g1 = ir_const_int(&b, scalar(m, elem_i32()), 1);
    ir_build(&b, OP_YIELD, &g1, 1, NULL, 0);
    cr_assert(run(m, pass_dce));
    cr_assert_eq(m->functions, k);
    cr_assert_null(k->next);
    cr_assert_eq(m->last_function, k);
    ir_module_free(m);
}

Test(inline, loop_body_is_cloned_with_its_region) {
    IrModule *m = ir_module_new();
    IrFunction *loop = build_for(m, 0, 4); /* (x: f32) -> f32 with a for inside */
    IrBuilder b = {0};
    const IrType *f32 = scalar(m, elem_f32());
    IrFunction *f = func(m, "outer", &b, 1, &f32, 1, &f32);
    IrValue *r = call(&b, loop, 1, &f->body->args[0]);
    IrValue *r2 = call(&b, loop, 1, &r);
    ret(&b, 1, r2);
    run(m, pass_inline);
    run(m, pass_cse);
    ASSERT_IR(f, "func @outer(%0: f32) -> (f32) {\n"
                 "  %1 = const 0 : i32\n"
                 "  %2 = const 4 : i32\n"
                 "  %3 = const 1 : i32\n"
                 "  %8 = for %4 = %1 to %2 step %3 iter(%5 = %0) -> (f32) {\n"
                 "    %6 = const 2.0 : f32\n"
                 "    %7 = mul %5, %6 : f32\n"
                 "    yield %7\n"
                 "  }\n"
                 "  %13 = for %9 = %1 to %2 step %3 iter(%10 = %8) -> (f32) {\n"
                 "    %11 = const 2.0 : f32\n"
                 "    %12 = mul %10, %11 : f32\n"
                 "    yield %12\n"
                 "  }\n"
                 "  return %13\n"
                 "}\n");
    ir_module_free(m);
}

Test(inline, recursion_is_reported_not_looped) {
    IrModule *m = ir_module_new();
    IrBuilder b = {0};
    const IrType *f32 = scalar(m, elem_f32());
    IrFunction *even = func(m, "even", &b, 1, &f32, 1, &f32);
    IrFunction *odd = ir_function_new(m, "odd", false, (SrcLoc){0});
    ir_region_add_arg(odd->body, f32, NULL);
    odd->nresults = 1;
    odd->result_types = even->result_types;
    ret(&b, 1, call(&b, odd, 1, &even->body->args[0]));
    ir_builder_at_end(&b, odd->body);
    ret(&b, 1, call(&b, even, 1, &odd->body->args[0]));
    DiagList d = {0};
    pass_inline(m, &d);
    cr_assert_eq(d.errors, 1, "%s", sb_str(&d.text));
    cr_assert(strstr(sb_str(&d.text), "recursive call of 'even'") != NULL, "%s", sb_str(&d.text));
    diag_free(&d);
    ir_module_free(m);
}

/* ---- the pipeline ----------------------------------------------------------------------------------- */
/* A kernel that calls a device function with constant arguments. */
static IrModule *build_program(void) {
    IrModule *m = ir_module_new();
    IrBuilder b = {0};
    const IrType *i32 = scalar(m, elem_i32());
    const IrType *two[2] = {i32, i32};
    IrFunction *scale = func(m, "scale", &b, 2, two, 1, &i32);
    ret(&b, 1, ir_binary(&b, OP_MUL, scale->body->args[0], scale->body->args[1]));
    IrFunction *k = ir_function_new(m, "k", true, (SrcLoc){0});
    const IrType *tf = ir_tensor_type(m, elem_int(32), 1);
    ir_region_add_arg(k->body, tf, "out");
    ir_region_add_arg(k->grid, tf, "out");
    ir_builder_at_end(&b, k->grid);
    IrValue *one = ir_const_int(&b, i32, 1);
    ir_build(&b, OP_YIELD, &one, 1, NULL, 0);
    ir_builder_at_end(&b, k->body);
    IrValue *args[2] = {ir_const_int(&b, i32, 6), ir_const_int(&b, i32, 7)};
    IrValue *v = call(&b, scale, 2, args);
    IrValue *pid = ir_build(&b, OP_BLOCK_ID, NULL, 0, &i32, 1)->results[0];
    IrValue *st[3] = {k->body->args[0], pid, v};
    ir_build(&b, OP_STORE, st, 3, NULL, 0);
    return m;
}

static const char *program_final = "kernel @k(%0: tensor<i32>[?])\n"
                                   "grid {\n"
                                   "  %1 = const 1 : i32\n"
                                   "  yield %1\n"
                                   "}\n"
                                   "body {\n"
                                   "  %1 = const 42 : i32\n"
                                   "  %2 = block_id axis 0 : i32\n"
                                   "  store %0, %2, %1\n"
                                   "}\n";

Test(pipeline, runs_every_pass_and_dumps_after_one) {
    IrModule *m = build_program();
    Strbuf dump = {0};
    PassOptions opt = {.dump_after = "canonicalize", .dump = &dump, .verify_each = true};
    DiagList d = {0};
    cr_assert(passes_run(m, &opt, &d), "%s", sb_str(&d.text));
    cr_assert_eq(d.errors, 0);
    cr_assert_str_eq(sb_str(&dump), "// ---- IR after canonicalize ----\n"
                                    "func @scale(%0: i32, %1: i32) -> (i32) {\n"
                                    "  %2 = mul %0, %1 : i32\n"
                                    "  return %2\n"
                                    "}\n"
                                    "\n"
                                    "kernel @k(%0: tensor<i32>[?])\n"
                                    "grid {\n"
                                    "  %1 = const 1 : i32\n"
                                    "  yield %1\n"
                                    "}\n"
                                    "body {\n"
                                    "  %1 = const 6 : i32\n"
                                    "  %2 = const 7 : i32\n"
                                    "  %3 = const 42 : i32\n"
                                    "  %4 = block_id axis 0 : i32\n"
                                    "  store %0, %4, %3\n"
                                    "}\n");
    Strbuf final = {0};
    ir_print_module(m, &final);
    cr_assert_str_eq(sb_str(&final), program_final);
    sb_free(&final);
    sb_free(&dump);
    diag_free(&d);
    ir_module_free(m);
}

Test(pipeline, dump_after_all_and_none) {
    IrModule *m = build_program();
    Strbuf dump = {0};
    PassOptions opt = {.dump_after = "all", .dump = &dump, .verify_each = true};
    DiagList d = {0};
    cr_assert(passes_run(m, &opt, &d));
    const char *text = sb_str(&dump);
    const char *names[] = {"inline", "canonicalize", "cse", "dce"};
    const char *at = text;
    for (int i = 0; i < 4; i++) {
        char header[64];
        snprintf(header, sizeof header, "// ---- IR after %s ----\n", names[i]);
        const char *found = strstr(at, header);
        cr_assert(found != NULL, "missing %s in order:\n%s", header, text);
        at = found + 1;
    }
    /* The last dump is the final module. */
    cr_assert_str_eq(strstr(text, "// ---- IR after dce ----\n") + strlen("// ---- IR after dce ----\n"),
                     program_final);
    sb_free(&dump);
    ir_module_free(m);

    m = build_program();
    opt = (PassOptions){.dump_after = NULL, .dump = &dump};
    cr_assert(passes_run(m, &opt, &d));
    cr_assert_eq(dump.len, 0);
    cr_assert(passes_run(m, NULL, &d), "no options: defaults");
    diag_free(&d);
    sb_free(&dump);
    ir_module_free(m);
}

Test(pipeline, second_run_changes_nothing) {
    IrModule *m = build_program();
    DiagList d = {0};
    cr_assert(passes_run(m, &(PassOptions){.verify_each = true}, &d));
    cr_assert_not(pass_inline(m, &d));
    cr_assert_not(pass_canonicalize(m, &d));
    cr_assert_not(pass_cse(m, &d));
    cr_assert_not(pass_dce(m, &d));
    diag_free(&d);
    ir_module_free(m);
}

Test(pipeline, names_and_listing) {
    cr_assert(passes_is_known("inline"));
    cr_assert(passes_is_known("canonicalize"));
    cr_assert(passes_is_known("cse"));
    cr_assert(passes_is_known("dce"));
    cr_assert(passes_is_known("all"));
    cr_assert_not(passes_is_known("gvn"));
    cr_assert_not(passes_is_known(NULL));
    Strbuf sb = {0};
    passes_list(&sb);
    /* every pass, GPU passes included, one per line in order, each with when it runs */
    const char *names[] = {"inline", "canonicalize", "cse", "dce", "layout", "stages", "smem_plan", "cleanup"};
    const char *at = sb_str(&sb);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        cr_assert(passes_is_known(names[i]), "%s", names[i]);
        cr_assert(strncmp(at, names[i], strlen(names[i])) == 0 && at[strlen(names[i])] == ' ', "line %zu: %s", i, at);
        at = strchr(at, '\n');
        cr_assert_not_null(at);
        at++;
    }
    cr_assert_str_eq(at, "");
    sb_free(&sb);
}

Test(pipeline, invalid_input_is_an_internal_error) {
    IrModule *m = build_program();
    IrFunction *k = m->last_function;
    ir_op_remove(k->grid->last); /* the grid no longer yields */
    DiagList d = {0};
    cr_assert_not(passes_run(m, &(PassOptions){.verify_each = true}, &d));
    cr_assert(strstr(sb_str(&d.text), "verify: @k: grid must end in a yield") != NULL, "%s", sb_str(&d.text));
    cr_assert(strstr(sb_str(&d.text), "internal error: IR invalid before the first pass") != NULL, "%s",
              sb_str(&d.text));
    diag_free(&d);
    ir_module_free(m);
}

Test(pipeline, user_errors_stop_the_pipeline) {
    IrModule *m = ir_module_new();
    IrBuilder b = {0};
    const IrType *f32 = scalar(m, elem_f32());
    IrFunction *self = func(m, "self", &b, 1, &f32, 1, &f32);
    ret(&b, 1, call(&b, self, 1, &self->body->args[0]));
    DiagList d = {0};
    Strbuf dump = {0};
    PassOptions opt = {.dump_after = "dce", .dump = &dump, .verify_each = true};
    cr_assert_not(passes_run(m, &opt, &d));
    cr_assert(strstr(sb_str(&d.text), "recursive call of 'self'") != NULL, "%s", sb_str(&d.text));
    cr_assert_eq(dump.len, 0, "later passes must not run");
    sb_free(&dump);
    diag_free(&d);
    ir_module_free(m);
}
