/*
 * test_lower.c: the lowering of each language construct, by the IR it produces (golden text for
 * small kernels) and by what the lowered kernel computes on the VM (every construct of
 * lang/SPEC.md: constants and specialization, let/var, arithmetic on every kind of element type,
 * broadcasting, shape ops, reductions and scans, loops with carried variables, if/else, while,
 * device functions (generic, with constant arguments, nested), gathers, scatters, atomics,
 * compound assignment, casts of small types).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/vm.h"

typedef struct Compiled {
    AstFile *ast;
    IrModule *m;
    IrFunction *f;
    DiagList d;
} Compiled;

static Compiled compile(const char *src, const char *kernel, const ConstBinding *c, size_t nc, bool run_passes) {
    Compiled r = {0};
    r.ast = parse_source("t.tile", src, strlen(src), &r.d);
    cr_assert_eq(r.d.errors, 0, "%s", sb_str(&r.d.text));
    r.m = ir_module_new();
    r.f = lower_kernel(r.ast, kernel, c, nc, r.m, &r.d);
    cr_assert_not_null(r.f, "%s", sb_str(&r.d.text));
    cr_assert(ir_verify_module(r.m, &r.d), "%s", sb_str(&r.d.text));
    if (run_passes) {
        PassOptions opt = {.verify_each = true};
        cr_assert(passes_run(r.m, &opt, &r.d), "%s", sb_str(&r.d.text));
    }
    return r;
}

static void release(Compiled *c) {
    ir_module_free(c->m);
    ast_file_free(c->ast);
    diag_free(&c->d);
}

static char *print(Compiled *c) {
    Strbuf sb = {0};
    ir_print_function(c->f, &sb);
    return sb.data;
}

static void run(Compiled *c, tile_arg *args, size_t n) {
    Strbuf err = {0};
    cr_assert(vm_launch(c->f, args, n, &err), "%s", sb_str(&err));
    sb_free(&err);
}

static tile_arg t1(tile_dtype dt, void *p, int64_t n) {
    return (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(dt, p, 1, &n)};
}

static tile_arg t2(tile_dtype dt, void *p, int64_t a, int64_t b) {
    int64_t s[2] = {a, b};
    return (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(dt, p, 2, s)};
}

/* ---- golden IR ---- */
Test(lower, golden_slice_load_store) {
    Compiled c = compile("kernel k<B = 4>(x: tensor<f32>[N], y: tensor<f32>[N]) grid(cdiv(N, B)) {\n"
                         "  let i = block_id(0) * B;\n"
                         "  y[i :+ B] = x[i :+ B] * 2.0;\n"
                         "}\n",
                         "k", NULL, 0, false);
    char *text = print(&c);
    const char *want = "kernel @k(%0: tensor<f32>[N], %1: tensor<f32>[N])\n"
                       "grid {\n"
                       "  %2 = dim %0, axis 0 : i32\n"
                       "  %3 = const 4 : i32\n"
                       "  %4 = add %2, %3 : i32\n"
                       "  %5 = const 1 : i32\n"
                       "  %6 = sub %4, %5 : i32\n"
                       "  %7 = const 4 : i32\n"
                       "  %8 = div %6, %7 : i32\n"
                       "  yield %8\n"
                       "}\n"
                       "body {\n"
                       "  %2 = block_id axis 0 : i32\n"
                       "  %3 = const 4 : i32\n"
                       "  %4 = mul %2, %3 : i32\n"
                       "  %5 = arange 0 : tile<i32>[4]\n"
                       "  %6 = splat %4 : tile<i32>[4]\n"
                       "  %7 = add %6, %5 : tile<i32>[4]\n"
                       "  %8 = load %0, %7 : tile<f32>[4]\n"
                       "  %9 = const 2.0 : f32\n"
                       "  %10 = splat %9 : tile<f32>[4]\n"
                       "  %11 = mul %8, %10 : tile<f32>[4]\n"
                       "  %12 = arange 0 : tile<i32>[4]\n"
                       "  %13 = splat %4 : tile<i32>[4]\n"
                       "  %14 = add %13, %12 : tile<i32>[4]\n"
                       "  store %1, %14, %11\n"
                       "}\n";
    cr_assert_str_eq(text, want);
    free(text);
    release(&c);
}

Test(lower, golden_loop_carries_assigned_vars_only) {
    Compiled c = compile("kernel k(x: tensor<f32>[N], y: tensor<f32>[1]) grid(1) {\n"
                         "  var acc = 0.0;\n"
                         "  var unused = 1.0;\n"
                         "  for i in 0 .. N step 2 { acc += x[i]; }\n"
                         "  y[0] = acc + unused;\n"
                         "}\n",
                         "k", NULL, 0, false);
    char *text = print(&c);
    /* one carried value (acc): `unused` is read after the loop but never assigned in it */
    cr_assert(strstr(text, "iter(%") != NULL, "%s", text);
    cr_assert(strstr(text, "-> (f32)") != NULL, "%s", text);
    cr_assert(strstr(text, "-> (f32, f32)") == NULL, "%s", text);
    free(text);
    release(&c);
}

/* ---- semantics on the VM ---- */
Test(lower, constants_specialize_shapes) {
    const char *src = "kernel k<B = 2, S = B * 3>(y: tensor<i32>[N]) grid(1) { y[0 :+ S] = arange(S) * B; }\n";
    int32_t y[12] = {0};
    Compiled c = compile(src, "k", NULL, 0, true);
    tile_arg a[1] = {t1(TILE_I32, y, 12)};
    run(&c, a, 1);
    for (int i = 0; i < 6; i++) cr_assert_eq(y[i], 2 * i);
    cr_assert_eq(y[6], 0);
    release(&c);
    ConstBinding b = {.name = "B", .i = 4};
    c = compile(src, "k", &b, 1, true);
    run(&c, a, 1);
    for (int i = 0; i < 12; i++) cr_assert_eq(y[i], 4 * i, "i=%d", i);
    release(&c);
}

Test(lower, integer_types_wrap_and_literals_adopt_types) {
    const char *src = "kernel k(x: tensor<i8>[N], y: tensor<i8>[N], z: tensor<u8>[N]) grid(1) {\n"
                      "  let v = x[0 :+ 4];\n"
                      "  y[0 :+ 4] = v * 3 + 100;\n"
                      "  z[0 :+ 4] = cast<u8>(v) >> 1;\n"
                      "}\n";
    int8_t x[4] = {1, 50, -128, 127}, y[4];
    uint8_t z[4];
    Compiled c = compile(src, "k", NULL, 0, true);
    tile_arg a[3] = {t1(TILE_I8, x, 4), t1(TILE_I8, y, 4), t1(TILE_U8, z, 4)};
    run(&c, a, 3);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(y[i], (int8_t)(uint8_t)(x[i] * 3 + 100), "i=%d", i);
        cr_assert_eq(z[i], (uint8_t)x[i] >> 1, "i=%d", i);
    }
    release(&c);
}

Test(lower, broadcasting_and_shape_ops) {
    const char *src =
        "kernel k(y: tensor<f32>[3, 4], t: tensor<f32>[4, 3], r: tensor<f32>[12]) grid(1) {\n"
        "  let row = cast<f32>(arange(4));             // [4]\n"
        "  let col = expand(cast<f32>(arange(3)), 1);  // [3, 1]\n"
        "  let m = col * 10.0 + row;                   // [3, 4]\n"
        "  y[:, :] = m;\n"
        "  t[:, :] = transpose(m);\n"
        "  r[:] = reshape(broadcast(expand(row, 0), [3, 4]), [12]);\n"
        "}\n";
    float y[12], t[12], r[12];
    Compiled c = compile(src, "k", NULL, 0, true);
    tile_arg a[3] = {t2(TILE_F32, y, 3, 4), t2(TILE_F32, t, 4, 3), t1(TILE_F32, r, 12)};
    run(&c, a, 3);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) {
            cr_assert_eq(y[i * 4 + j], (float)(i * 10 + j));
            cr_assert_eq(t[j * 3 + i], (float)(i * 10 + j));
            cr_assert_eq(r[i * 4 + j], (float)j);
        }
    release(&c);
}

Test(lower, reductions_scans_and_min_max) {
    const char *src =
        "kernel k(x: tensor<f32>[2, 5], s: tensor<f32>[2], mx: tensor<f32>[5], all: tensor<f32>[3],\n"
        "         cs: tensor<f32>[2, 5]) grid(1) {\n"
        "  let v = x[:, :];\n"
        "  s[:] = sum(v, axis=1);\n"
        "  mx[:] = max(v, axis=0);\n"
        "  all[0] = sum(v);\n"
        "  all[1] = min(v);\n"
        "  all[2] = max(min(v), -1.5);\n"
        "  cs[:, :] = cumsum(v, axis=-1);\n"
        "}\n";
    float x[10] = {1, -2, 3, 4, 5, 0.5f, 9, -7, 2, 1}, s[2], mx[5], all[3], cs[10];
    Compiled c = compile(src, "k", NULL, 0, true);
    tile_arg a[5] = {t2(TILE_F32, x, 2, 5), t1(TILE_F32, s, 2), t1(TILE_F32, mx, 5), t1(TILE_F32, all, 3),
                     t2(TILE_F32, cs, 2, 5)};
    run(&c, a, 5);
    cr_assert_eq(s[0], 11.0f);
    cr_assert_eq(s[1], 5.5f);
    float wantmx[5] = {1, 9, 3, 4, 5};
    for (int i = 0; i < 5; i++) cr_assert_eq(mx[i], wantmx[i]);
    cr_assert_eq(all[0], 16.5f);
    cr_assert_eq(all[1], -7.0f);
    cr_assert_eq(all[2], -1.5f);
    for (int r = 0; r < 2; r++) {
        float acc = 0;
        for (int j = 0; j < 5; j++) cr_assert_eq(cs[r * 5 + j], acc += x[r * 5 + j]);
    }
    release(&c);
}

Test(lower, if_else_and_while_carry_variables) {
    const char *src =
        "kernel k(x: tensor<i32>[N], y: tensor<i32>[N]) grid(N) {\n"
        "  let b = block_id(0);\n"
        "  var v = x[b];\n"
        "  var steps = 0;\n"
        "  while v != 1 {                 // Collatz\n"
        "    if v % 2 == 0 { v = v / 2; } else { v = 3 * v + 1; }\n"
        "    steps += 1;\n"
        "  }\n"
        "  if steps > 10 { y[b] = steps; } else if steps > 5 { y[b] = -steps; } else { y[b] = 0; }\n"
        "}\n";
    int32_t x[5] = {1, 6, 7, 27, 3}, y[5];
    Compiled c = compile(src, "k", NULL, 0, true);
    tile_arg a[2] = {t1(TILE_I32, x, 5), t1(TILE_I32, y, 5)};
    run(&c, a, 2);
    int32_t want[5];
    for (int i = 0; i < 5; i++) {
        int v = x[i], n = 0;
        while (v != 1) v = v % 2 == 0 ? v / 2 : 3 * v + 1, n++;
        want[i] = n > 10 ? n : n > 5 ? -n : 0;
        cr_assert_eq(y[i], want[i], "i=%d: %d vs %d", i, y[i], want[i]);
    }
    release(&c);
}

Test(lower, device_functions_generic_constant_and_nested) {
    const char *src =
        "fn square(x) { return x * x; }\n"
        "fn scaled(x, n) { return square(x) * cast<f32>(arange(n)); }   // n constant: a shape\n"
        "fn store_it(t, v) { t[0 :+ 4] = v; }\n"
        "kernel k(a: tensor<f32>[4], b: tensor<i32>[4]) grid(1) {\n"
        "  store_it(a, scaled(3.0, 4));\n"
        "  b[:] = square(arange(4) - 1);\n"
        "}\n";
    float a[4];
    int32_t b[4];
    Compiled c = compile(src, "k", NULL, 0, true);
    Strbuf sb = {0};
    ir_print_module(c.m, &sb);
    cr_assert(strstr(sb_str(&sb), "call") == NULL, "calls remain after inlining:\n%s", sb_str(&sb));
    sb_free(&sb);
    tile_arg args[2] = {t1(TILE_F32, a, 4), t1(TILE_I32, b, 4)};
    run(&c, args, 2);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(a[i], 9.0f * (float)i);
        cr_assert_eq(b[i], (i - 1) * (i - 1));
    }
    release(&c);
}

Test(lower, gather_scatter_atomics_and_compound_stores) {
    const char *src =
        "kernel k(src: tensor<f32>[V, 2], idx: tensor<i32>[4], dst: tensor<f32>[V, 2], hist: tensor<i32>[V],\n"
        "         m: tensor<f32>[1]) grid(2) {\n"
        "  let ix = idx[:];\n"
        "  if block_id(0) == 0 {\n"
        "    dst[ix, :] = src[ix, :] + 1.0;     // gather then scatter\n"
        "    dst[0, 0 :+ 2] += 10.0;\n"
        "  }\n"
        "  atomic_add(hist[ix], 1);             // both blocks count\n"
        "  atomic_max(m[0], max(src[ix, :]));\n"
        "}\n";
    float s[10] = {0, 1, 10, 11, 20, 21, 30, 31, 40, 41}, d[10] = {0}, m = -100;
    int32_t idx[4] = {4, 2, 2, 9}, hist[5] = {0};
    Compiled c = compile(src, "k", NULL, 0, true);
    tile_arg a[5] = {t2(TILE_F32, s, 5, 2), t1(TILE_I32, idx, 4), t2(TILE_F32, d, 5, 2), t1(TILE_I32, hist, 5),
                     t1(TILE_F32, &m, 1)};
    run(&c, a, 5);
    cr_assert_eq(d[8], 41.0f);
    cr_assert_eq(d[9], 42.0f);
    cr_assert_eq(d[4], 21.0f);
    cr_assert_eq(d[0], 10.0f); /* row 0 was not gathered: 0 + 10 */
    cr_assert_eq(d[1], 10.0f);
    cr_assert_eq(d[2], 0.0f);
    int32_t want[5] = {0, 0, 4, 0, 2}; /* index 9 is outside: dropped */
    for (int i = 0; i < 5; i++) cr_assert_eq(hist[i], want[i], "hist[%d]=%d", i, hist[i]);
    cr_assert_eq(m, 41.0f);
    release(&c);
}

Test(lower, small_types_round_trip) {
    const char *src =
        "kernel k(x: tensor<f32>[8], q: tensor<f8e4m3>[8], h: tensor<bf16>[8], n: tensor<u4>[8], y: tensor<f32>[8]) grid(1) {\n"
        "  let v = x[:];\n"
        "  q[:] = cast<f8e4m3>(v);\n"
        "  h[:] = cast<bf16>(v);\n"
        "  n[:] = cast<u4>(v);\n"
        "  y[:] = cast<f32>(q[:]) + cast<f32>(n[:]);\n"
        "}\n";
    float x[8] = {0.1f, 1.0f, 3.3f, 15.7f, 300.0f, -2.5f, 1000.0f, 7.49f}, y[8];
    uint8_t q[8], nib[4];
    uint16_t h[8];
    Compiled c = compile(src, "k", NULL, 0, true);
    tile_arg a[5] = {t1(TILE_F32, x, 8), t1(TILE_F8E4M3, q, 8), t1(TILE_BF16, h, 8), t1(TILE_UINT(4), nib, 8),
                     t1(TILE_F32, y, 8)};
    run(&c, a, 5);
    ElemType e4m3 = elem_float(4, 3);
    for (int i = 0; i < 8; i++) {
        double qv = elem_round_float(e4m3, x[i]);
        int64_t nv = elem_convert(elem_f32(), (IrConst){.is_float = true, .f = x[i]}, elem_uint(4)).i;
        cr_assert_eq(vm_float_decode(e4m3, q[i]), qv, "q[%d]", i);
        cr_assert_eq((nib[i / 2] >> (4 * (i % 2))) & 15, nv, "n[%d]", i);
        cr_assert_eq(vm_float_decode(elem_bf16(), h[i]), elem_round_float(elem_bf16(), x[i]), "h[%d]", i);
        cr_assert_eq(y[i], (float)(qv + (double)nv), "y[%d]", i);
    }
    release(&c);
}

Test(lower, warps_clause_sets_the_kernel_block_size) {
    Compiled c = compile("kernel k<W = 8>(y: tensor<f32>[N]) grid(1) warps(W) { y[0] = 1.0; }\n", "k", NULL, 0, true);
    cr_assert_eq(c.f->num_warps, 8);
    char *text = print(&c);
    cr_assert(strstr(text, "kernel @k(%0: tensor<f32>[N]) warps 8\n") != NULL, "%s", text);
    free(text);
    release(&c);
    c = compile("kernel k(y: tensor<f32>[N]) grid(1) { y[0] = 1.0; }\n", "k", NULL, 0, true);
    cr_assert_eq(c.f->num_warps, 0); /* the default, decided by the GPU path */
    release(&c);
    /* not a power of two, or not a constant: located errors */
    const char *bad[] = {"kernel k(y: tensor<f32>[N]) grid(1) warps(3) { y[0] = 1.0; }\n",
                         "kernel k(y: tensor<f32>[N]) grid(1) warps(64) { y[0] = 1.0; }\n",
                         "kernel k(y: tensor<f32>[N]) grid(1) warps(N) { y[0] = 1.0; }\n"};
    for (int i = 0; i < 3; i++) {
        DiagList d = {0};
        AstFile *ast = parse_source("t.tile", bad[i], strlen(bad[i]), &d);
        cr_assert_eq(d.errors, 0, "%s", sb_str(&d.text));
        IrModule *m = ir_module_new();
        cr_assert_null(lower_kernel(ast, "k", NULL, 0, m, &d));
        cr_assert(strstr(sb_str(&d.text), "t.tile:1:") != NULL, "%s", sb_str(&d.text));
        ir_module_free(m);
        ast_file_free(ast);
        diag_free(&d);
    }
}

/* ---- nesting limits (lang/SPEC.md section 7; issue 10, defect 12) ------------------------------ */
/* The frontend's errors for input n levels deep, "" when it compiles (and passes verify). */
static char *nesting_errors(const char *kind, int n) {
    Strbuf s = {0};
    const char *hdr = "kernel k(x: tensor<f32>[N], y: tensor<f32>[N]) grid(1) {\n  var a = x[0];\n";
    if (strcmp(kind, "sum") == 0) {
        sb_printf(&s, "%s  y[0] = a", hdr);
        for (int i = 1; i < n; i++) sb_puts(&s, " + a");
        sb_puts(&s, ";\n}\n");
    } else if (strcmp(kind, "chain") == 0) {
        sb_puts(&s, "fn f0(v) { return v + 1.0; }\n");
        for (int i = 1; i < n; i++) sb_printf(&s, "fn f%d(v) { return f%d(v) + 1.0; }\n", i, i - 1);
        sb_printf(&s, "%s  y[0] = f%d(a);\n}\n", hdr, n - 1);
    } else {
        bool is_for = strcmp(kind, "for") == 0;
        sb_puts(&s, hdr);
        for (int i = 0; i < n; i++) sb_printf(&s, is_for ? "for i%d in 0..2 {\n" : "if a > 0.0 {\n", i);
        sb_puts(&s, "a = a + 1.0;\n");
        for (int i = 0; i < n; i++) sb_puts(&s, "}\n");
        sb_puts(&s, "  y[0] = a;\n}\n");
    }
    DiagList d = {0};
    AstFile *ast = parse_source("t.tile", sb_str(&s), s.len, &d);
    IrModule *m = ir_module_new();
    if (!d.errors) lower_kernel(ast, "k", NULL, 0, m, &d);
    char *text = xstrdup(sb_str(&d.text));
    ir_module_free(m);
    ast_file_free(ast);
    diag_free(&d);
    sb_free(&s);
    return text;
}

static void expect_nesting(const char *kind, int ok_depth, const char *error) {
    char *text = nesting_errors(kind, ok_depth);
    cr_assert_str_eq(text, "", "%s %d: %s", kind, ok_depth, text);
    free(text);
    text = nesting_errors(kind, ok_depth + 1);
    cr_assert(strstr(text, "t.tile:") == text && strstr(text, error), "%s %d: %s", kind, ok_depth + 1, text);
    free(text);
}

Test(lower, nesting_limits_are_the_spec_s) {
    expect_nesting("sum", 1000, "error: nesting too deep: an expression of more than 1000 levels");
    expect_nesting("chain", 100, "error: nesting too deep: device functions calling each other more than 100 deep");
    /* statements: what the parser's stack of 4000 entries allows (section 7 gives these) */
    char *text = nesting_errors("for", 390);
    cr_assert_str_eq(text, "", "%s", text);
    free(text);
    text = nesting_errors("if", 990);
    cr_assert_str_eq(text, "", "%s", text);
    free(text);
    text = nesting_errors("for", 2000);
    cr_assert(strstr(text, "error: nesting too deep: the parser's stack of 4000 entries is exhausted"), "%s", text);
    free(text);
}

/* Found by fuzz_pipeline: dot() without an accumulator also built an integer zero of the f32
 * accumulator type (dead, but invalid IR that the verifier rejects before the first pass). */
Test(lower, dot_without_accumulator_is_valid_ir) {
    Compiled c = compile("kernel k(a: tensor<f16>[M, K], b: tensor<f16>[K, N], c: tensor<f32>[M, N]) grid(1) {\n"
                         "  c[0 :+ 32, 0 :+ 32] = dot(a[0 :+ 32, 0 :+ 32], b[0 :+ 32, 0 :+ 32]);\n}\n",
                         "k", NULL, 0, false); /* compile() verifies right after lowering */
    release(&c);
    c = compile("kernel k(a: tensor<i8>[M, K], b: tensor<i8>[K, N], c: tensor<i32>[M, N]) grid(1) {\n"
                "  c[0 :+ 16, 0 :+ 16] = dot(a[0 :+ 16, 0 :+ 16], b[0 :+ 16, 0 :+ 16]);\n}\n",
                "k", NULL, 0, false);
    release(&c);
}
