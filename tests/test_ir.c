/* test_ir.c: the IR printer (exact text, stability) and the verifier (valid IR passes, each
 * kind of broken IR is reported with a message naming the op). IR is built by hand. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "ir/ir.h"

/* ---- building helpers ---------------------------------------------------------------------- */
static IrOp *with_ints(IrOp *op, int n, ...) {
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) op->ints[i] = va_arg(ap, int);
    va_end(ap);
    op->nints = (uint32_t)n;
    return op;
}

static IrValue *build_ints(IrBuilder *b, OpCode code, const IrType *t, IrValue *a, int n, int i0, int i1) {
    IrOp *op = ir_build(b, code, a ? &a : NULL, a ? 1 : 0, &t, 1);
    return with_ints(op, n, i0, i1)->results[0];
}

static const IrType *f32s(IrModule *m) { return ir_scalar_type(m, elem_f32()); }
static const IrType *i32s(IrModule *m) { return ir_scalar_type(m, elem_i32()); }
static const IrType *tile1(IrModule *m, ElemType e, int64_t n) { return ir_tile_type(m, e, 1, &n); }

static void set_params(IrFunction *f, const char *const *symbols) {
    IrModule *m = f->module;
    f->nparams = f->body->nargs;
    f->params = ARENA_ARRAY(&m->arena, IrParam, f->nparams);
    for (uint32_t i = 0; i < f->nparams; i++) {
        f->params[i].name = f->body->args[i]->name;
        if (f->body->args[i]->type->kind == TY_TENSOR) f->params[i].dims[0].symbol = symbols[i];
    }
}

/* kernel add(a, b, c: tensor<f32>[N]) grid(cdiv(N, 64)): c[i] = a[i] + b[i]. */
/* With `shuffle`, the values get other creation ids: grid arguments before body arguments and
 * an op created and removed at the start. */
static IrFunction *build_vadd_ids(IrModule *m, bool shuffle) {
    IrFunction *f = ir_function_new(m, "add", true, (SrcLoc){0});
    const IrType *tf = ir_tensor_type(m, elem_f32(), 1);
    const char *names[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) ir_region_add_arg(shuffle ? f->grid : f->body, tf, names[i]);
    for (int i = 0; i < 3; i++) ir_region_add_arg(shuffle ? f->body : f->grid, tf, names[i]);
    const char *syms[] = {"N", "N", "N"};
    set_params(f, syms);
    IrBuilder b = {0};
    if (shuffle) {
        ir_builder_at_end(&b, f->body);
        ir_op_remove(ir_const_int(&b, i32s(m), 7)->def);
    }
    ir_builder_at_end(&b, f->grid);
    IrValue *n = build_ints(&b, OP_DIM, i32s(m), f->grid->args[0], 1, 0, 0);
    IrValue *c63 = ir_const_int(&b, i32s(m), 63);
    IrValue *c64 = ir_const_int(&b, i32s(m), 64);
    IrValue *blocks = ir_binary(&b, OP_DIV, ir_binary(&b, OP_ADD, n, c63), c64);
    ir_build(&b, OP_YIELD, &blocks, 1, NULL, 0);

    ir_builder_at_end(&b, f->body);
    IrValue *pid = build_ints(&b, OP_BLOCK_ID, i32s(m), NULL, 1, 0, 0);
    IrValue *base = ir_binary(&b, OP_MUL, pid, ir_const_int(&b, i32s(m), 64));
    const IrType *ti = tile1(m, elem_i32(), 64);
    IrValue *splat = ir_op1(&b, OP_SPLAT, ti, base);
    IrValue *range = build_ints(&b, OP_ARANGE, ti, NULL, 1, 0, 0);
    IrValue *offs = ir_binary(&b, OP_ADD, splat, range);
    const IrType *tt = tile1(m, elem_f32(), 64);
    IrValue *la[2] = {f->body->args[0], offs}, *lb[2] = {f->body->args[1], offs};
    IrValue *x = ir_build(&b, OP_LOAD, la, 2, &tt, 1)->results[0];
    IrValue *y = ir_build(&b, OP_LOAD, lb, 2, &tt, 1)->results[0];
    IrValue *st[3] = {f->body->args[2], offs, ir_binary(&b, OP_ADD, x, y)};
    ir_build(&b, OP_STORE, st, 3, NULL, 0);
    return f;
}

static IrFunction *build_vadd(IrModule *m) { return build_vadd_ids(m, false); }

/* func sum(x: f32, n: i32) -> f32: a for loop with a carried value and an if inside. */
static IrFunction *build_loop(IrModule *m) {
    IrFunction *f = ir_function_new(m, "sum", false, (SrcLoc){0});
    const IrType *f32 = f32s(m), *i32 = i32s(m);
    IrValue *x = ir_region_add_arg(f->body, f32, "x");
    IrValue *n = ir_region_add_arg(f->body, i32, "n");
    f->nresults = 1;
    f->result_types = ARENA_ARRAY(&m->arena, const IrType *, 1);
    f->result_types[0] = f32;
    IrBuilder b = {0};
    ir_builder_at_end(&b, f->body);
    IrValue *zero = ir_const_int(&b, i32, 0), *one = ir_const_int(&b, i32, 1);
    IrValue *acc0 = ir_const_float(&b, f32, 0.5);
    IrValue *ops[4] = {zero, n, one, acc0};
    IrOp *loop = ir_build(&b, OP_FOR, ops, 4, &f32, 1);
    with_ints(loop, 1, 2);
    IrRegion *body = ir_op_add_region(loop);
    IrValue *iv = ir_region_add_arg(body, i32, "i");
    IrValue *acc = ir_region_add_arg(body, f32, "acc");
    IrBuilder in = {0};
    ir_builder_at_end(&in, body);
    IrValue *rem = ir_binary(&in, OP_REM, iv, ir_const_int(&in, i32, 2));
    IrValue *odd = ir_cmp(&in, CMP_EQ, rem, ir_const_int(&in, i32, 1));
    IrOp *branch = ir_build(&in, OP_IF, &odd, 1, &f32, 1);
    IrRegion *then = ir_op_add_region(branch), *els = ir_op_add_region(branch);
    IrBuilder tb = {0};
    ir_builder_at_end(&tb, then);
    IrValue *sum = ir_binary(&tb, OP_ADD, acc, x);
    ir_build(&tb, OP_YIELD, &sum, 1, NULL, 0);
    ir_builder_at_end(&tb, els);
    ir_build(&tb, OP_YIELD, &acc, 1, NULL, 0);
    ir_build(&in, OP_YIELD, &branch->results[0], 1, NULL, 0);
    ir_build(&b, OP_RETURN, &loop->results[0], 1, NULL, 0);
    return f;
}

/* func count(n: i32) -> i32: while (i < n) { i = i + 1 }. */
static IrFunction *build_while(IrModule *m) {
    IrFunction *f = ir_function_new(m, "count", false, (SrcLoc){0});
    const IrType *i32 = i32s(m), *boolean = ir_scalar_type(m, elem_bool());
    (void)boolean;
    IrValue *n = ir_region_add_arg(f->body, i32, "n");
    f->nresults = 1;
    f->result_types = ARENA_ARRAY(&m->arena, const IrType *, 1);
    f->result_types[0] = i32;
    IrBuilder b = {0};
    ir_builder_at_end(&b, f->body);
    IrValue *init = ir_const_int(&b, i32, 0);
    IrOp *w = ir_build(&b, OP_WHILE, &init, 1, &i32, 1);
    IrRegion *before = ir_op_add_region(w), *after = ir_op_add_region(w);
    IrValue *i = ir_region_add_arg(before, i32, "i");
    IrBuilder in = {0};
    ir_builder_at_end(&in, before);
    IrValue *cond[2] = {ir_cmp(&in, CMP_LT, i, n), i};
    ir_build(&in, OP_CONDITION, cond, 2, NULL, 0);
    IrValue *j = ir_region_add_arg(after, i32, "j");
    ir_builder_at_end(&in, after);
    IrValue *next = ir_binary(&in, OP_ADD, j, ir_const_int(&in, i32, 1));
    ir_build(&in, OP_YIELD, &next, 1, NULL, 0);
    ir_build(&b, OP_RETURN, &w->results[0], 1, NULL, 0);
    return f;
}

static char *print_module(IrModule *m) {
    Strbuf sb = {0};
    ir_print_module(m, &sb);
    return sb.data;
}

/* Verifies and returns the diagnostics text (caller frees); *ok gets the verdict. */
static char *verify(IrModule *m, bool *ok) {
    DiagList d = {0};
    *ok = ir_verify_module(m, &d);
    cr_assert_eq(*ok, d.errors == 0, "verdict and error count disagree: %s", sb_str(&d.text));
    char *text = xstrdup(sb_str(&d.text));
    diag_free(&d);
    return text;
}

static void expect_valid(IrModule *m) {
    bool ok;
    char *text = verify(m, &ok);
    cr_assert(ok, "unexpected verifier errors:\n%s", text);
    free(text);
}

static void expect_invalid(IrModule *m, const char *message) {
    bool ok;
    char *text = verify(m, &ok);
    cr_assert(!ok, "verifier accepted broken IR (wanted \"%s\")", message);
    cr_assert(strstr(text, message) != NULL, "wanted \"%s\" in:\n%s", message, text);
    free(text);
}

/* ---- printer ------------------------------------------------------------------------------- */
Test(print, types) {
    IrModule *m = ir_module_new();
    Strbuf sb = {0};
    int64_t shape[2] = {128, 64};
    ir_print_type(ir_tile_type(m, elem_bf16(), 2, shape), &sb);
    sb_puts(&sb, " | ");
    ir_print_type(f32s(m), &sb);
    sb_puts(&sb, " | ");
    ir_print_type(ir_tensor_type(m, elem_f32(), 2), &sb);
    sb_puts(&sb, " | ");
    ir_print_type(ir_shared_type(m, elem_f16(), 2, shape), &sb);
    sb_puts(&sb, " | ");
    ir_print_type(ir_scalar_type(m, elem_float(4, 3)), &sb);
    sb_puts(&sb, " | ");
    ir_print_type(tile1(m, elem_uint(4), 8), &sb);
    cr_assert_str_eq(sb_str(&sb), "tile<bf16>[128, 64] | f32 | tensor<f32>[?, ?] | shared<f16>[128, 64] | "
                                  "f8e4m3 | tile<u4>[8]");
    sb_free(&sb);
    ir_module_free(m);
}

Test(print, vector_add_kernel) {
    IrModule *m = ir_module_new();
    build_vadd(m);
    char *text = print_module(m);
    cr_assert_str_eq(text,
                     "kernel @add(%0: tensor<f32>[N], %1: tensor<f32>[N], %2: tensor<f32>[N])\n"
                     "grid {\n"
                     "  %3 = dim %0, axis 0 : i32\n"
                     "  %4 = const 63 : i32\n"
                     "  %5 = const 64 : i32\n"
                     "  %6 = add %3, %4 : i32\n"
                     "  %7 = div %6, %5 : i32\n"
                     "  yield %7\n"
                     "}\n"
                     "body {\n"
                     "  %3 = block_id axis 0 : i32\n"
                     "  %4 = const 64 : i32\n"
                     "  %5 = mul %3, %4 : i32\n"
                     "  %6 = splat %5 : tile<i32>[64]\n"
                     "  %7 = arange 0 : tile<i32>[64]\n"
                     "  %8 = add %6, %7 : tile<i32>[64]\n"
                     "  %9 = load %0, %8 : tile<f32>[64]\n"
                     "  %10 = load %1, %8 : tile<f32>[64]\n"
                     "  %11 = add %9, %10 : tile<f32>[64]\n"
                     "  store %2, %8, %11\n"
                     "}\n");
    free(text);
    expect_valid(m);
    ir_module_free(m);
}

Test(print, loop_if_and_while) {
    IrModule *m = ir_module_new();
    build_loop(m);
    build_while(m);
    char *text = print_module(m);
    cr_assert_str_eq(text,
                     "func @sum(%0: f32, %1: i32) -> (f32) {\n"
                     "  %2 = const 0 : i32\n"
                     "  %3 = const 1 : i32\n"
                     "  %4 = const 0.5 : f32\n"
                     "  %13 = for %5 = %2 to %1 step %3 iter(%6 = %4) -> (f32) pipeline 2 {\n"
                     "    %7 = const 2 : i32\n"
                     "    %8 = rem %5, %7 : i32\n"
                     "    %9 = const 1 : i32\n"
                     "    %10 = cmp eq %8, %9 : bool\n"
                     "    %12 = if %10 -> (f32) {\n"
                     "      %11 = add %6, %0 : f32\n"
                     "      yield %11\n"
                     "    } else {\n"
                     "      yield %6\n"
                     "    }\n"
                     "    yield %12\n"
                     "  }\n"
                     "  return %13\n"
                     "}\n"
                     "\n"
                     "func @count(%0: i32) -> (i32) {\n"
                     "  %1 = const 0 : i32\n"
                     "  %7 = while (%2 = %1) -> (i32) {\n"
                     "    %3 = cmp lt %2, %0 : bool\n"
                     "    condition %3, %2\n"
                     "  } do (%4: i32) {\n"
                     "    %5 = const 1 : i32\n"
                     "    %6 = add %4, %5 : i32\n"
                     "    yield %6\n"
                     "  }\n"
                     "  return %7\n"
                     "}\n");
    free(text);
    expect_valid(m);
    ir_module_free(m);
}

Test(print, attributes_and_constants) {
    IrModule *m = ir_module_new();
    IrFunction *f = ir_function_new(m, "attrs", false, (SrcLoc){0});
    int64_t s23[2] = {2, 3}, s32[2] = {3, 2}, s2[1] = {2};
    const IrType *t23 = ir_tile_type(m, elem_f32(), 2, s23), *t32 = ir_tile_type(m, elem_f32(), 2, s32);
    IrValue *x = ir_region_add_arg(f->body, t23, "x");
    IrBuilder b = {0};
    ir_builder_at_end(&b, f->body);
    IrOp *tr = ir_build(&b, OP_TRANSPOSE, &x, 1, &t32, 1);
    with_ints(tr, 2, 1, 0);
    build_ints(&b, OP_REDUCE, ir_tile_type(m, elem_f32(), 1, s2), x, 2, RED_MAX, 1);
    build_ints(&b, OP_SCAN, t23, x, 2, RED_SUM, 0);
    ir_const_float(&b, f32s(m), 0.1);
    ir_const_float(&b, ir_scalar_type(m, elem_f64()), 0.1);
    ir_const_float(&b, ir_scalar_type(m, elem_bf16()), 3.0);
    ir_const_float(&b, f32s(m), -INFINITY);
    ir_const_float(&b, f32s(m), 1e30);
    ir_const_int(&b, ir_scalar_type(m, elem_bool()), 1);
    ir_const_int(&b, ir_scalar_type(m, elem_uint(64)), -1);
    ir_const_int(&b, ir_scalar_type(m, elem_int(8)), 200);
    ir_build(&b, OP_RETURN, NULL, 0, NULL, 0);
    char *text = print_module(m);
    cr_assert_str_eq(text,
                     "func @attrs(%0: tile<f32>[2, 3]) {\n"
                     "  %1 = transpose %0, perm [1, 0] : tile<f32>[3, 2]\n"
                     "  %2 = reduce max %0, axis 1 : tile<f32>[2]\n"
                     "  %3 = scan sum %0, axis 0 : tile<f32>[2, 3]\n"
                     "  %4 = const 0.1 : f32\n"
                     "  %5 = const 0.1 : f64\n"
                     "  %6 = const 3.0 : bf16\n"
                     "  %7 = const -inf : f32\n"
                     "  %8 = const 1e+30 : f32\n"
                     "  %9 = const true : bool\n"
                     "  %10 = const 18446744073709551615 : u64\n"
                     "  %11 = const -56 : i8\n"
                     "  return\n"
                     "}\n");
    /* Float constants read back, rounded to their type, to the same value; f64 needs 17 digits
     * only where the value does. */
    IrOp *c = f->body->first->next->next->next;
    cr_assert_eq((double)(float)strtod("0.1", NULL), c->value.f);
    cr_assert_neq(0.1, c->value.f, "the f32 constant is not the double 0.1");
    free(text);
    expect_valid(m);
    ir_module_free(m);
}

Test(print, call_and_stable_numbering) {
    IrModule *m = ir_module_new();
    /* The callee's values are created out of order: the region argument last. */
    IrFunction *g = ir_function_new(m, "twice", false, (SrcLoc){0});
    const IrType *f32 = f32s(m);
    g->nresults = 1;
    g->result_types = ARENA_ARRAY(&m->arena, const IrType *, 1);
    g->result_types[0] = f32;
    IrFunction *f = ir_function_new(m, "caller", false, (SrcLoc){0});
    IrValue *y = ir_region_add_arg(f->body, f32, "y");
    IrBuilder b = {0};
    ir_builder_at_end(&b, g->body);
    IrValue *two = ir_const_float(&b, f32, 2.0);
    IrValue *x = ir_region_add_arg(g->body, f32, "x");
    IrValue *r = ir_binary(&b, OP_MUL, x, two);
    ir_build(&b, OP_RETURN, &r, 1, NULL, 0);
    ir_builder_at_end(&b, f->body);
    IrOp *call = ir_build(&b, OP_CALL, &y, 1, &f32, 1);
    call->callee = g;
    ir_build(&b, OP_RETURN, NULL, 0, NULL, 0);
    cr_assert_gt(x->id, two->id, "the test wants creation order to differ from definition order");
    char *text = print_module(m);
    cr_assert_str_eq(text,
                     "func @twice(%0: f32) -> (f32) {\n"
                     "  %1 = const 2.0 : f32\n"
                     "  %2 = mul %0, %1 : f32\n"
                     "  return %2\n"
                     "}\n"
                     "\n"
                     "func @caller(%0: f32) {\n"
                     "  %1 = call @twice(%0) : f32\n"
                     "  return\n"
                     "}\n");
    char *again = print_module(m);
    cr_assert_str_eq(text, again);
    free(text);
    free(again);
    expect_valid(m);
    ir_module_free(m);
}

Test(print, independent_of_creation_ids) {
    /* The same kernel built twice, the second time after burning ids, prints the same. */
    IrModule *m1 = ir_module_new(), *m2 = ir_module_new();
    IrFunction *f1 = build_vadd_ids(m1, false), *f2 = build_vadd_ids(m2, true);
    cr_assert_neq(f1->body->args[0]->id, f2->body->args[0]->id);
    cr_assert_neq(f1->body->last->operands[2]->id, f2->body->last->operands[2]->id);
    char *a = print_module(m1), *c = print_module(m2);
    cr_assert_str_eq(a, c);
    free(a);
    free(c);
    ir_module_free(m1);
    ir_module_free(m2);
}

Test(print, unknown_values_are_marked) {
    IrModule *m = ir_module_new();
    IrFunction *f = build_loop(m);
    IrFunction *other = build_while(m);
    /* Use a value of another function: the printer must not crash and must say so. */
    IrOp *ret = f->body->last;
    ir_set_operand(ret, 0, other->body->args[0]);
    char *text = print_module(m);
    cr_assert(strstr(text, "  return %?") != NULL, "%s", text);
    free(text);
    ir_module_free(m);
}

/* ---- verifier ----------------------------------------------------------------------------- */
Test(verify, accepts_valid_ir) {
    IrModule *m = ir_module_new();
    build_vadd(m);
    build_loop(m);
    build_while(m);
    expect_valid(m);
    ir_module_free(m);
}

/* A device function with one f32 parameter and a return; ops go before the return. */
static IrFunction *scratch(IrModule *m, IrBuilder *b) {
    IrFunction *f = ir_function_new(m, "scratch", false, (SrcLoc){0});
    ir_region_add_arg(f->body, f32s(m), "x");
    ir_builder_at_end(b, f->body);
    IrOp *ret = ir_build(b, OP_RETURN, NULL, 0, NULL, 0);
    ir_builder_before(b, ret);
    return f;
}

Test(verify, elementwise_operand_types_differ) {
    IrModule *m = ir_module_new();
    IrBuilder b = {0};
    IrFunction *f = scratch(m, &b);
    IrValue *t = ir_op1(&b, OP_SPLAT, tile1(m, elem_f32(), 4), f->body->args[0]);
    ir_binary(&b, OP_ADD, t, f->body->args[0]);
    expect_invalid(m, "verify: add: operand types differ (tile<f32>[4] vs f32)");
    ir_module_free(m);
}

Test(verify, reports_at_the_op_location) {
    IrModule *m = ir_module_new();
    IrBuilder b = {0};
    IrFunction *f = scratch(m, &b);
    SourceFile file = {"k.tile", "fn f() {\n  x + y\n}\n", 19};
    b.loc = (SrcLoc){&file, 2, 5};
    ir_binary(&b, OP_SUB, f->body->args[0], ir_const_int(&b, i32s(m), 1));
    expect_invalid(m, "k.tile:2:5: error: verify: sub: operand types differ (f32 vs i32)\n    x + y\n      ^\n");
    ir_module_free(m);
}

Test(verify, wrong_operand_count) {
    IrModule *m = ir_module_new();
    IrBuilder b = {0};
    IrFunction *f = scratch(m, &b);
    IrValue *x = f->body->args[0], *ops[3] = {x, x, x};
    const IrType *t = x->type;
    ir_build(&b, OP_MUL, ops, 3, &t, 1);
    expect_invalid(m, "verify: mul: expects 2 operands, has 3");
    ir_module_free(m);
}

Test(verify, use_before_definition) {
    IrModule *m = ir_module_new();
    IrBuilder b = {0};
    IrFunction *f = scratch(m, &b);
    IrValue *one = ir_const_float(&b, f32s(m), 1.0);
    IrValue *sum = ir_binary(&b, OP_ADD, f->body->args[0], one);
    /* Move the constant after its user. */
    IrOp *c = one->def;
    ir_op_remove(c);
    ir_op_insert_before(c, f->body->last);
    (void)sum;
    expect_invalid(m, "verify: add: operand 1 is not defined before use or not visible here");
    ir_module_free(m);
}

Test(verify, value_of_a_sibling_region) {
    IrModule *m = ir_module_new();
    IrFunction *f = build_loop(m);
    /* In the if's else region, yield the then region's sum instead of acc. */
    IrOp *loop = f->body->first->next->next->next;
    cr_assert_eq(loop->code, OP_FOR);
    IrOp *branch = loop->regions[0]->last->prev;
    cr_assert_eq(branch->code, OP_IF);
    IrValue *then_sum = branch->regions[0]->first->results[0];
    ir_set_operand(branch->regions[1]->last, 0, then_sum);
    expect_invalid(m, "verify: yield: operand 0 is not defined before use or not visible here");
    ir_module_free(m);
}

Test(verify, value_of_another_function) {
    IrModule *m = ir_module_new();
    IrFunction *f = build_loop(m);
    IrFunction *g = build_loop(m);
    ir_set_operand(f->body->last, 0, g->body->last->operands[0]);
    expect_invalid(m, "verify: return: operand 0 is a value of another function or of a removed op");
    ir_module_free(m);
}

Test(verify, terminator_in_the_middle) {
    IrModule *m = ir_module_new();
    IrFunction *f = build_loop(m);
    IrOp *loop = f->body->last->prev;
    IrRegion *body = loop->regions[0];
    IrBuilder b = {0};
    ir_builder_before(&b, body->first);
    ir_build(&b, OP_YIELD, &body->args[1], 1, NULL, 0);
    expect_invalid(m, "verify: yield: terminator must be the last op of its region");
    ir_module_free(m);
}

Test(verify, for_yield_types_must_match_carried) {
    IrModule *m = ir_module_new();
    IrFunction *f = build_loop(m);
    IrOp *loop = f->body->last->prev;
    IrRegion *body = loop->regions[0];
    ir_set_operand(body->last, 0, body->args[0]); /* yields the i32 induction variable */
    expect_invalid(m, "verify: for: body region's yield value 0 is i32, expected f32");
    ir_module_free(m);
}

Test(verify, for_region_must_end_in_yield) {
    IrModule *m = ir_module_new();
    IrFunction *f = build_loop(m);
    IrOp *loop = f->body->last->prev;
    ir_op_remove(loop->regions[0]->last);
    expect_invalid(m, "verify: for: body region must end in yield");
    ir_module_free(m);
}

Test(verify, if_branches_must_yield_the_results) {
    IrModule *m = ir_module_new();
    IrFunction *f = build_loop(m);
    IrOp *branch = f->body->last->prev->regions[0]->last->prev;
    IrRegion *els = branch->regions[1];
    IrBuilder b = {0};
    ir_builder_before(&b, els->last);
    IrValue *i = ir_const_int(&b, i32s(m), 3);
    ir_set_operand(els->last, 0, i);
    expect_invalid(m, "verify: if: else region's yield value 0 is i32, expected f32");
    ir_module_free(m);
}

Test(verify, if_condition_must_be_bool) {
    IrModule *m = ir_module_new();
    IrFunction *f = build_loop(m);
    IrOp *branch = f->body->last->prev->regions[0]->last->prev;
    ir_set_operand(branch, 0, f->body->last->prev->regions[0]->args[0]);
    expect_invalid(m, "verify: if: condition must be a bool scalar, not i32");
    ir_module_free(m);
}

Test(verify, while_condition_and_yield) {
    IrModule *m = ir_module_new();
    IrFunction *f = build_while(m);
    IrOp *w = f->body->last->prev;
    IrOp *cond = w->regions[0]->last;
    ir_set_operand(cond, 0, w->regions[0]->args[0]);
    expect_invalid(m, "verify: while: condition must be a bool scalar, not i32");
    ir_module_free(m);

    m = ir_module_new();
    f = build_while(m);
    w = f->body->last->prev;
    IrBuilder b = {0};
    ir_builder_before(&b, w->regions[1]->last);
    ir_set_operand(w->regions[1]->last, 0, ir_const_float(&b, f32s(m), 1.0));
    expect_invalid(m, "verify: while: body region's yield value 0 is f32, expected i32");
    ir_module_free(m);
}

Test(verify, condition_outside_while) {
    IrModule *m = ir_module_new();
    IrFunction *f = build_loop(m);
    IrOp *loop = f->body->last->prev;
    IrOp *yield = loop->regions[0]->last;
    IrBuilder b = {0};
    ir_builder_before(&b, yield);
    IrValue *ops[2] = {ir_const_int(&b, ir_scalar_type(m, elem_bool()), 1), yield->operands[0]};
    ir_build(&b, OP_CONDITION, ops, 2, NULL, 0);
    ir_op_remove(yield);
    expect_invalid(m, "verify: condition: only ends the condition region of a while");
    ir_module_free(m);
}

Test(verify, dot_shapes) {
    IrModule *m = ir_module_new();
    IrBuilder b = {0};
    scratch(m, &b);
    int64_t s16x8[2] = {16, 8}, s4x32[2] = {4, 32}, s16x32[2] = {16, 32};
    const IrType *ta = ir_tile_type(m, elem_bf16(), 2, s16x8), *tb = ir_tile_type(m, elem_bf16(), 2, s4x32);
    const IrType *tc = ir_tile_type(m, elem_f32(), 2, s16x32);
    IrValue *ops[3] = {ir_const_float(&b, ta, 1.0), ir_const_float(&b, tb, 1.0), ir_const_float(&b, tc, 0.0)};
    ir_build(&b, OP_DOT, ops, 3, &tc, 1);
    expect_invalid(m, "verify: dot: shapes do not compose: a tile<bf16>[16, 8], b tile<bf16>[4, 32], "
                      "acc tile<f32>[16, 32]");
    ir_module_free(m);
}

Test(verify, load_index_count_and_broadcast) {
    IrModule *m = ir_module_new();
    IrFunction *f = build_vadd(m);
    IrOp *load = f->body->last->prev->prev->prev;
    cr_assert_eq(load->code, OP_LOAD);
    load->noperands = 1;
    expect_invalid(m, "verify: load: expects 1 indices for tensor<f32>[?], has 0");
    load->noperands = 2;
    expect_valid(m);
    /* An index of 32 elements does not broadcast to a 64-element result. */
    IrBuilder b = {0};
    ir_builder_before(&b, load);
    IrValue *idx = build_ints(&b, OP_ARANGE, tile1(m, elem_i32(), 32), NULL, 1, 0, 0);
    ir_set_operand(load, 1, idx);
    expect_invalid(m, "verify: load: index 0 of type tile<i32>[32] does not broadcast to tile<f32>[64]");
    ir_module_free(m);
}

Test(verify, store_into_a_non_tensor) {
    IrModule *m = ir_module_new();
    IrFunction *f = build_vadd(m);
    IrOp *store = f->body->last;
    ir_set_operand(store, 0, store->operands[2]);
    expect_invalid(m, "verify: store: operand 0 must be a tensor or a shared tile, not tile<f32>[64]");
    ir_module_free(m);
}

/* A store may index a shared tile (the language's shared<T>[...]); the store-like atomic may not. */
Test(verify, store_into_a_shared_tile_and_atomic_not) {
    IrModule *m = ir_module_new();
    IrFunction *f = build_vadd(m);
    IrOp *store = f->body->last;
    IrBuilder b = {0};
    ir_builder_before(&b, store);
    const IrType *st = ir_shared_type(m, elem_f32(), 1, (int64_t[]){64});
    IrOp *alloc = ir_build(&b, OP_SHARED_ALLOC, NULL, 0, &st, 1);
    alloc->ints[0] = 0, alloc->ints[1] = 1, alloc->nints = 2;
    ir_set_operand(store, 0, alloc->results[0]);
    expect_valid(m);
    store->code = OP_ATOMIC;
    store->ints[0] = ATOMIC_ADD, store->nints = 1;
    expect_invalid(m, "verify: atomic: operand 0 must be a tensor, not shared<f32>[64]");
    ir_module_free(m);
}

Test(verify, call_arguments_must_match_the_callee) {
    IrModule *m = ir_module_new();
    IrFunction *g = build_loop(m); /* (f32, i32) -> f32 */
    IrBuilder b = {0};
    IrFunction *f = scratch(m, &b);
    IrValue *args[2] = {f->body->args[0], f->body->args[0]};
    const IrType *f32 = f32s(m);
    IrOp *call = ir_build(&b, OP_CALL, args, 2, &f32, 1);
    call->callee = g;
    expect_invalid(m, "verify: call: argument 1 of @sum is f32, parameter is i32");
    call->callee = NULL;
    expect_invalid(m, "verify: call: no callee");
    ir_module_free(m);
}

Test(verify, return_only_in_device_functions) {
    IrModule *m = ir_module_new();
    IrFunction *f = build_vadd(m);
    IrBuilder b = {0};
    ir_builder_at_end(&b, f->body);
    ir_build(&b, OP_RETURN, NULL, 0, NULL, 0);
    expect_invalid(m, "verify: return: only ends the body of a device function");
    ir_module_free(m);
}

Test(verify, return_types_match_the_function) {
    IrModule *m = ir_module_new();
    IrFunction *f = build_loop(m);
    ir_set_operand(f->body->last, 0, f->body->args[1]);
    expect_invalid(m, "verify: return: value 0 is i32, function result is f32");
    ir_op_remove(f->body->last);
    expect_invalid(m, "verify: @sum: device function body must end in return");
    ir_module_free(m);
}

Test(verify, grid_yields_one_to_three_i32) {
    IrModule *m = ir_module_new();
    IrFunction *f = build_vadd(m);
    IrOp *yield = f->grid->last;
    IrValue *n = yield->operands[0];
    IrValue *four[4] = {n, n, n, n};
    yield->operands = four;
    yield->noperands = 4;
    expect_invalid(m, "verify: yield: grid must yield 1 to 3 sizes, yields 4");
    IrBuilder b = {0};
    ir_builder_before(&b, yield);
    IrValue *fl = ir_const_float(&b, f32s(m), 2.0);
    yield->noperands = 1;
    four[0] = fl;
    expect_invalid(m, "verify: yield: grid size 0 must be an i32 scalar, not f32");
    ir_module_free(m);
}

Test(verify, dim_and_block_id_axes) {
    IrModule *m = ir_module_new();
    IrFunction *f = build_vadd(m);
    f->grid->first->ints[0] = 1; /* dim of a 1-d tensor along axis 1 */
    expect_invalid(m, "verify: dim: axis 1 out of range [0, 1)");
    f->grid->first->ints[0] = 0;
    f->body->first->ints[0] = 3;
    expect_invalid(m, "verify: block_id: axis 3 out of range [0, 3)");
    ir_module_free(m);
}

Test(verify, shape_op_rules) {
    IrModule *m = ir_module_new();
    IrBuilder b = {0};
    scratch(m, &b);
    int64_t s23[2] = {2, 3}, s33[2] = {3, 3}, s4[1] = {4}, s14[2] = {1, 4}, s41[2] = {4, 1}, s5[1] = {5};
    const IrType *t23 = ir_tile_type(m, elem_f32(), 2, s23);
    IrValue *x = ir_const_float(&b, t23, 1.0);
    IrOp *tr = ir_build(&b, OP_TRANSPOSE, &x, 1, &(const IrType *){ir_tile_type(m, elem_f32(), 2, s33)}, 1);
    with_ints(tr, 2, 1, 0);
    expect_invalid(m, "verify: transpose: result dim 1 is 3, expected 2");
    ir_op_remove(tr);
    IrOp *tr2 = ir_build(&b, OP_TRANSPOSE, &x, 1, &(const IrType *){ir_tile_type(m, elem_f32(), 2, s23)}, 1);
    with_ints(tr2, 2, 0, 0);
    expect_invalid(m, "verify: transpose: ints are not a permutation of 0..1");
    ir_op_remove(tr2);
    IrValue *v4 = ir_const_float(&b, ir_tile_type(m, elem_f32(), 1, s4), 1.0);
    IrOp *ex = ir_build(&b, OP_EXPAND_DIMS, &v4, 1, &(const IrType *){ir_tile_type(m, elem_f32(), 2, s14)}, 1);
    with_ints(ex, 1, 1);
    expect_invalid(m, "verify: expand_dims: tile<f32>[4] with a new axis 1 is not tile<f32>[1, 4]");
    ex->ints[0] = 0;
    expect_valid(m);
    ex->results[0]->type = ir_tile_type(m, elem_f32(), 2, s41);
    ex->ints[0] = 1;
    expect_valid(m);
    IrOp *red = ir_build(&b, OP_REDUCE, &x, 1, &(const IrType *){ir_tile_type(m, elem_f32(), 1, s23)}, 1);
    with_ints(red, 2, RED_SUM, 0);
    expect_invalid(m, "verify: reduce: tile<f32>[2, 3] reduced along axis 0 is not tile<f32>[2]");
    red->results[0]->type = ir_tile_type(m, elem_f32(), 1, s23 + 1);
    expect_valid(m);
    IrOp *rs = ir_build(&b, OP_RESHAPE, &x, 1, &(const IrType *){ir_tile_type(m, elem_f32(), 1, s5)}, 1);
    expect_invalid(m, "verify: reshape: element count differs (tile<f32>[2, 3] -> tile<f32>[5])");
    ir_op_remove(rs);
    IrOp *sp = ir_build(&b, OP_SPLAT, &x, 1, &(const IrType *){t23}, 1);
    expect_invalid(m, "verify: splat: operand must be a scalar, not tile<f32>[2, 3]");
    ir_op_remove(sp);
    IrOp *bc = ir_build(&b, OP_BROADCAST, &v4, 1, &(const IrType *){t23}, 1);
    expect_invalid(m, "verify: broadcast: tile<f32>[4] does not broadcast to tile<f32>[2, 3]");
    ir_op_remove(bc);
    expect_valid(m);
    ir_module_free(m);
}

Test(verify, cmp_select_cast_rules) {
    IrModule *m = ir_module_new();
    IrBuilder b = {0};
    IrFunction *f = scratch(m, &b);
    IrValue *x = f->body->args[0];
    IrValue *pair[2] = {x, x};
    IrOp *cmp = ir_build(&b, OP_CMP, pair, 2, &(const IrType *){f32s(m)}, 1);
    with_ints(cmp, 1, CMP_LT);
    expect_invalid(m, "verify: cmp: result must be bool of the operands' shape, not f32");
    ir_op_remove(cmp);
    IrValue *sel[3] = {x, x, x};
    IrOp *s = ir_build(&b, OP_SELECT, sel, 3, &(const IrType *){f32s(m)}, 1);
    expect_invalid(m, "verify: select: condition must be bool of the values' shape, not f32");
    ir_op_remove(s);
    IrOp *c = ir_build(&b, OP_CAST, &x, 1, &(const IrType *){tile1(m, elem_bf16(), 2)}, 1);
    expect_invalid(m, "verify: cast: result shape differs from the operand's (tile<bf16>[2] vs f32)");
    ir_op_remove(c);
    ir_unary(&b, OP_NOT, x);
    expect_invalid(m, "verify: not: not defined on f32");
    ir_module_free(m);
}

Test(verify, constant_must_fit_its_type) {
    IrModule *m = ir_module_new();
    IrBuilder b = {0};
    scratch(m, &b);
    IrValue *c = ir_const_int(&b, ir_scalar_type(m, elem_int(8)), 5);
    c->def->value.i = 300;
    expect_invalid(m, "verify: const: value is not representable in i8");
    c->def->value.i = 5;
    IrValue *h = ir_const_float(&b, ir_scalar_type(m, elem_bf16()), 1.0);
    h->def->value.f = 1.001;
    expect_invalid(m, "verify: const: value is not representable in bf16");
    ir_module_free(m);
}

Test(verify, lists_every_problem) {
    IrModule *m = ir_module_new();
    IrBuilder b = {0};
    IrFunction *f = scratch(m, &b);
    IrValue *x = f->body->args[0];
    IrValue *i = ir_const_int(&b, i32s(m), 1);
    ir_binary(&b, OP_ADD, x, i);
    ir_binary(&b, OP_MUL, i, x);
    DiagList d = {0};
    cr_assert_not(ir_verify_function(f, &d));
    cr_assert_eq(d.errors, 2, "%s", sb_str(&d.text));
    diag_free(&d);
    ir_module_free(m);
}
