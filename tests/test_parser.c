/*
 * test_parser.c: the grammar (lang/tile.y), the AST it builds and the parser driver.
 *
 * Most tests compare ast_dump output, which shows the tree's shape (so precedence and
 * associativity are visible), against hand-written expectations; errors are checked with
 * their exact `file:line:col` and wording. The golden files tests/parser/NAME.tile are parsed
 * and compared with NAME.ast (the dump of every declaration) or NAME.err (the diagnostics).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/frontend.h"
#include "testutil.h"
#include "tile_parser.h"

/* Parses text; returns the dump of every declaration (one per line) in a malloc'd string
 * and the diagnostics in *errors (malloc'd, may be empty). */
static char *parse_to_dump(const char *name, const char *text, size_t len, char **errors, int *nerrors) {
    DiagList d = {0};
    AstFile *f = parse_source(name, text, len, &d);
    cr_assert_not_null(f);
    Strbuf sb = {0};
    for (uint32_t i = 0; i < f->decls.len; i++) {
        ast_dump(f->decls.items[i], &sb);
        sb_putc(&sb, '\n');
    }
    char *dump = xstrdup(sb_str(&sb));
    if (errors) *errors = xstrdup(sb_str(&d.text));
    if (nerrors) *nerrors = d.errors;
    sb_free(&sb);
    diag_free(&d);
    ast_file_free(f);
    return dump;
}

static void expect_dump(const char *text, const char *expected) {
    char *errors;
    int n;
    char *dump = parse_to_dump("t.tile", text, strlen(text), &errors, &n);
    cr_expect_eq(n, 0, "%s\nunexpected errors:\n%s", text, errors);
    cr_expect_str_eq(dump, expected, "%s\n--- got:\n%s\n--- expected:\n%s", text, dump, expected);
    free(dump);
    free(errors);
}

/* The dump of one expression, parsed as the right side of `x = EXPR;`. */
static void expect_expr(const char *expr, const char *expected) {
    char text[4096], want[4096];
    snprintf(text, sizeof text, "fn f() { x = %s; }", expr);
    snprintf(want, sizeof want, "(fn f () (block\n  (= x %s)))\n", expected);
    expect_dump(text, want);
}

/* The first line of the diagnostics for text, which must fail to parse with one error. */
static void expect_error(const char *text, const char *expected_first_line) {
    char *errors;
    int n;
    char *dump = parse_to_dump("t.tile", text, strlen(text), &errors, &n);
    cr_expect_eq(n, 1, "%s\n%d errors, expected exactly 1:\n%s", text, n, errors);
    char *newline = strchr(errors, '\n');
    if (newline) *newline = '\0';
    cr_expect_str_eq(errors, expected_first_line, "%s\n--- got:\n%s\n--- expected:\n%s", text, errors,
                     expected_first_line);
    free(dump);
    free(errors);
}

/* ---- declarations ----------------------------------------------------------------------- */
Test(parser, empty_file_has_no_declarations) {
    expect_dump("", "");
    expect_dump("  // just a comment\n/* and another */\n", "");
}

Test(parser, kernel_with_everything) {
    expect_dump("kernel add<BN = 1024, T: i32 = 2, U: f32, V,>(a: tensor<f32>[N], n: i32, t: tile<bf16>[4, BN],)"
                " grid(cdiv(N, BN), 1) { }",
                "(kernel add <(const BN 1024) (const T :i32 2) (const U :f32) (const V)> "
                "((param a (tensor f32 N)) (param n i32) (param t (tile bf16 4 BN))) "
                "(grid (call cdiv N BN) 1) (block))\n");
}

Test(parser, kernel_without_parameters) {
    expect_dump("kernel k() grid(1) {}", "(kernel k <> () (grid 1) (block))\n");
    expect_dump("kernel k<A>() grid(1, 2, 3) {}", "(kernel k <(const A)> () (grid 1 2 3) (block))\n");
}

Test(parser, const_default_expressions) {
    expect_dump("kernel k<A = 2 * 64, B = -1, C = 1 << 7, D = a < b, E = (a > b)>() grid(1) {}",
                "(kernel k <(const A (* 2 64)) (const B (- 1)) (const C (<< 1 7)) (const D (< a b)) "
                "(const E (> a b))> () (grid 1) (block))\n");
}

Test(parser, functions) {
    expect_dump("fn f() {}", "(fn f () (block))\n");
    expect_dump("fn g(a, b: f32, c: tile<f32>[4]) -> f32 { return a; }",
                "(fn g ((param a) (param b f32) (param c (tile f32 4))) -> f32 (block\n  (return a)))\n");
    expect_dump("fn h(x) -> tile<i32>[BM, BN] { return; }",
                "(fn h ((param x)) -> (tile i32 BM BN) (block\n  (return)))\n");
}

Test(parser, several_declarations_in_order) {
    expect_dump("fn a() {} kernel b() grid(1) {} fn c() {}",
                "(fn a () (block))\n(kernel b <> () (grid 1) (block))\n(fn c () (block))\n");
}

Test(parser, node_locations) {
    const char *text = "kernel k(a: tensor<f32>[N]) grid(1) {\n  let x = a[0] + 1;\n  x += 2;\n}\n";
    DiagList d = {0};
    AstFile *f = parse_source("loc.tile", text, strlen(text), &d);
    cr_assert_eq(d.errors, 0, "%s", sb_str(&d.text));
    cr_assert_eq(f->decls.len, 1);
    AstNode *k = f->decls.items[0];
    cr_expect_eq(k->kind, AST_KERNEL);
    cr_expect_str_eq(k->loc.file->name, "loc.tile");
    cr_expect_eq(k->loc.line, 1);
    cr_expect_eq(k->loc.col, 8); /* the kernel's name */
    AstNode *param = k->params->items[0];
    cr_expect_eq(param->loc.col, 10);
    cr_expect_eq(param->type->type_kind, TYPE_TENSOR);
    cr_expect_str_eq(param->type->elem, "f32");
    AstNode *let = k->body->args->items[0];
    cr_expect_eq(let->kind, AST_LET);
    cr_expect_eq(let->loc.line, 2);
    cr_expect_eq(let->loc.col, 7); /* the bound name */
    AstNode *plus = let->lhs;
    cr_expect_eq(plus->kind, AST_BINARY);
    cr_expect_eq(plus->op, TK_PLUS);
    cr_expect_eq(plus->loc.col, 16); /* the operator */
    cr_expect_eq(plus->lhs->kind, AST_INDEX);
    cr_expect_eq(plus->lhs->loc.col, 12); /* the '[' */
    cr_expect_eq(plus->depth, 3);
    AstNode *assign = k->body->args->items[1];
    cr_expect_eq(assign->kind, AST_ASSIGN);
    cr_expect_eq(assign->op, TK_PLUS_ASSIGN);
    cr_expect_eq(assign->loc.line, 3);
    cr_expect_eq(assign->loc.col, 5);
    ast_file_free(f);
    diag_free(&d);
}

/* ---- statements ------------------------------------------------------------------------- */
Test(parser, let_and_var) {
    expect_dump("fn f() { let a = 1; let b: f32 = 2.5; var c = zeros<f32>[4]; var d: tile<f32>[4] = c; }",
                "(fn f () (block\n"
                "  (let a 1)\n"
                "  (let b :f32 2.5)\n"
                "  (var c (call zeros <f32> (shape 4)))\n"
                "  (var d :(tile f32 4) c)))\n");
}

Test(parser, every_assignment_operator) {
    const char *ops[] = {"=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>="};
    const int codes[] = {TK_ASSIGN, TK_PLUS_ASSIGN, TK_MINUS_ASSIGN, TK_STAR_ASSIGN, TK_SLASH_ASSIGN,
                         TK_PERCENT_ASSIGN, TK_AMP_ASSIGN, TK_PIPE_ASSIGN, TK_CARET_ASSIGN,
                         TK_SHL_ASSIGN, TK_SHR_ASSIGN};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        char text[128], want[128];
        snprintf(text, sizeof text, "fn f() { a[i, j :+ 4] %s b + 1; }", ops[i]);
        snprintf(want, sizeof want, "(fn f () (block\n  (%s (index a i (slice j 4)) (+ b 1))))\n", ops[i]);
        expect_dump(text, want);
        DiagList d = {0};
        AstFile *f = parse_source("t.tile", text, strlen(text), &d);
        cr_expect_eq(f->decls.items[0]->body->args->items[0]->op, codes[i], "%s", ops[i]);
        ast_file_free(f);
        diag_free(&d);
    }
}

Test(parser, assignment_target_is_any_expression) {
    /* the lowering rejects targets that are not names or indexings; the grammar does not */
    expect_dump("fn f() { a + b = c; f(x) = 1; }",
                "(fn f () (block\n  (= (+ a b) c)\n  (= (call f x) 1)))\n");
}

Test(parser, expression_statements) {
    expect_dump("fn f() { atomic_add(t[i], v); g(); 1; }",
                "(fn f () (block\n  (expr (call atomic_add (index t i) v))\n  (expr (call g))\n  (expr 1)))\n");
}

Test(parser, for_loops) {
    expect_dump("fn f() { for i in 0 .. N { } for j in a + 1 .. 2 * b step S { } "
                "for k in 0..K step BK pipeline(3) { x += 1; } for l in 0 .. n pipeline(STAGES) {} }",
                "(fn f () (block\n"
                "  (for i 0 N (block))\n"
                "  (for j (+ a 1) (* 2 b) (step S) (block))\n"
                "  (for k 0 K (step BK) (pipeline 3) (block\n"
                "    (+= x 1)))\n"
                "  (for l 0 n (pipeline STAGES) (block))))\n");
}

Test(parser, if_else_chains) {
    expect_dump("fn f() { if a { x = 1; } if a < b { } else { y = 2; } if a {} else if b {} else {} }",
                "(fn f () (block\n"
                "  (if a (block\n"
                "    (= x 1)))\n"
                "  (if (< a b) (block) (block\n"
                "    (= y 2)))\n"
                "  (if a (block) (if b (block) (block)))))\n");
}

Test(parser, while_return_and_nested_blocks) {
    expect_dump("fn f() { while i < n { i += 1; } { let z = 1; { } } return; return x * 2; }",
                "(fn f () (block\n"
                "  (while (< i n) (block\n"
                "    (+= i 1)))\n"
                "  (block\n"
                "    (let z 1)\n"
                "    (block))\n"
                "  (return)\n"
                "  (return (* x 2))))\n");
}

/* ---- expressions ------------------------------------------------------------------------ */
Test(parser, literals_and_names) {
    expect_expr("42", "42");
    expect_expr("0xff", "255");
    expect_expr("0b101", "5");
    expect_expr("1_000", "1000");
    expect_expr("18446744073709551615", "18446744073709551615");
    expect_expr("2.5", "2.5");
    expect_expr("1e3", "1000.0");
    expect_expr("1.25e-2", "0.0125");
    expect_expr("true", "true");
    expect_expr("false", "false");
    expect_expr("inf", "inf");
    expect_expr("abc_1", "abc_1");
}

Test(parser, integer_overflow_sets_the_flag) {
    const char *text = "fn f() { x = 18446744073709551616; y = 18446744073709551615; }";
    DiagList d = {0};
    AstFile *f = parse_source("t.tile", text, strlen(text), &d);
    cr_assert_eq(d.errors, 0, "overflow is left to the lowering: %s", sb_str(&d.text));
    AstList *stmts = f->decls.items[0]->body->args;
    cr_expect(stmts->items[0]->rhs->int_overflow);
    cr_expect_not(stmts->items[1]->rhs->int_overflow);
    cr_expect_eq((uint64_t)stmts->items[1]->rhs->int_value, UINT64_MAX);
    ast_file_free(f);
    diag_free(&d);
}

Test(parser, every_binary_operator) {
    const char *ops[] = {"||", "&&", "|", "^", "&", "==", "!=", "<", "<=", ">", ">=", "<<", ">>",
                         "+", "-", "*", "/", "%"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        char expr[64], want[64];
        snprintf(expr, sizeof expr, "a %s b %s c", ops[i], ops[i]);
        snprintf(want, sizeof want, "(%s (%s a b) c)", ops[i], ops[i]); /* left-associative */
        expect_expr(expr, want);
    }
}

Test(parser, precedence_ladder) {
    /* each level binds tighter than the one before it */
    expect_expr("a || b && c", "(|| a (&& b c))");
    expect_expr("a && b | c", "(&& a (| b c))");
    expect_expr("a | b ^ c", "(| a (^ b c))");
    expect_expr("a ^ b & c", "(^ a (& b c))");
    expect_expr("a & b == c", "(& a (== b c))");
    expect_expr("a == b < c", "(== a (< b c))");
    expect_expr("a != b >= c", "(!= a (>= b c))");
    expect_expr("a < b << c", "(< a (<< b c))");
    expect_expr("a >> b + c", "(>> a (+ b c))");
    expect_expr("a - b * c", "(- a (* b c))");
    expect_expr("a % -b", "(% a (- b))");
    expect_expr("-a * b", "(* (- a) b)");
    expect_expr("-a[i]", "(- (index a i))");
    expect_expr("!a == ~b", "(== (! a) (~ b))");
    expect_expr("- - a", "(- (- a))");
    expect_expr("(a + b) * c", "(* (+ a b) c)");
    expect_expr("a * b + c * d", "(+ (* a b) (* c d))");
    expect_expr("a + b == c && d || e", "(|| (&& (== (+ a b) c) d) e)");
    expect_expr("1 << 2 + 3", "(<< 1 (+ 2 3))");
    expect_expr("a - b - c", "(- (- a b) c)");
    expect_expr("a / b / c", "(/ (/ a b) c)");
}

Test(parser, comparisons_are_not_generics) {
    expect_expr("a < b > c", "(> (< a b) c)");
    expect_expr("a < b > (c)", "(> (< a b) c)");
    expect_expr("f(a < b, c > d)", "(call f (< a b) (> c d))");
    expect_expr("a < b >= c", "(>= (< a b) c)");
}

Test(parser, calls_and_kwargs) {
    expect_expr("f()", "(call f)");
    expect_expr("block_id(0)", "(call block_id 0)");
    expect_expr("sum(x, axis=1)", "(call sum x (kwarg axis 1))");
    expect_expr("max(x, axis = 0,)", "(call max x (kwarg axis 0))");
    expect_expr("f(a, b + 1, g(c))", "(call f a (+ b 1) (call g c))");
    expect_expr("reshape(x, [4, BN])", "(call reshape x [4 BN])");
    expect_expr("transpose(x, [1, 0])", "(call transpose x [1 0])");
    expect_expr("f(x)[0]", "(index (call f x) 0)");
}

Test(parser, generic_builtins) {
    expect_expr("cast<bf16>(x)", "(call cast <bf16> x)");
    expect_expr("zeros<f32>[BM, BN]", "(call zeros <f32> (shape BM BN))");
    expect_expr("ones<i8>[4]", "(call ones <i8> (shape 4))");
    expect_expr("full<f32>[BM, BN](-inf)", "(call full <f32> (shape BM BN) (- inf))");
    expect_expr("cast<f8e4m3>(x * 2)", "(call cast <f8e4m3> (* x 2))");
    expect_expr("cast<tile<f32>[4]>(x)", "(call cast <(tile f32 4)> x)");
    expect_expr("zeros<f32>[4][0]", "(index (call zeros <f32> (shape 4)) 0)");
    expect_expr("cast<f32>", "(call cast <f32>)");
    expect_expr("a + cast<i32>(b) * 2", "(+ a (* (call cast <i32> b) 2))");
}

Test(parser, indexing_and_slices) {
    expect_expr("t[i]", "(index t i)");
    expect_expr("t[i, j :+ BN, :]", "(index t i (slice j BN) :)");
    expect_expr("t[m0 + 1 :+ BM * 2]", "(index t (slice (+ m0 1) (* BM 2)))");
    expect_expr("k[idx, :]", "(index k idx :)");
    expect_expr("a[i][j]", "(index (index a i) j)");
    expect_expr("t[:, :]", "(index t : :)");
}

Test(parser, lists) {
    expect_expr("[1]", "[1]");
    expect_expr("[a, b + 1, 3]", "[a (+ b 1) 3]");
    expect_expr("[a, b][0]", "(index [a b] 0)");
}

Test(parser, expression_depth_is_recorded) {
    const char *text = "fn f() { x = a + b * (c - d[0]); }";
    DiagList d = {0};
    AstFile *f = parse_source("t.tile", text, strlen(text), &d);
    AstNode *e = f->decls.items[0]->body->args->items[0]->rhs;
    cr_expect_eq(e->depth, 5); /* + -> * -> - -> index -> 0 */
    cr_expect_eq(e->lhs->depth, 1);
    ast_file_free(f);
    diag_free(&d);
}

/* ---- errors ----------------------------------------------------------------------------- */
Test(parser, error_messages_and_locations) {
    expect_error("kernel k() grid(1) { let x = ; }",
                 "t.tile:1:30: error: unexpected ';', expected an expression");
    expect_error("fn f() {\n  let x = a b;\n}", "t.tile:2:13: error: unexpected identifier 'b', expected an operator or ';'");
    expect_error("fn f() {\n  x = 1\n}", "t.tile:3:1: error: unexpected '}', expected an operator or ';'");
    expect_error("kernel k(a) grid(1) {}", "t.tile:1:11: error: unexpected ')', expected ':'");
    expect_error("kernel k() {}", "t.tile:1:12: error: unexpected '{', expected 'grid'");
    expect_error("kernel k() grid() {}", "t.tile:1:17: error: unexpected ')', expected an expression");
    expect_error("let x = 1;", "t.tile:1:1: error: unexpected 'let', expected 'kernel' or 'fn'");
    expect_error("fn f() { x = 12 34; }", "t.tile:1:17: error: unexpected integer literal '34', expected an operator or ';'");
    expect_error("fn f() { for i in 0 to N {} }", "t.tile:1:21: error: unexpected identifier 'to', expected an operator or '..'");
    expect_error("fn f() { x = t[1 :+]; }", "t.tile:1:20: error: unexpected ']', expected an expression");
    expect_error("fn f() {} }", "t.tile:1:11: error: unexpected '}', expected 'kernel' or 'fn'");
    expect_error("kernel k(a: 3) grid(1) {}", "t.tile:1:13: error: unexpected integer literal '3', expected a type");
    expect_error("fn f() { if a {} else x = 1; }", "t.tile:1:23: error: unexpected identifier 'x', expected '{' or 'if'");
    expect_error("fn f() { let x = cast<f32(y); }", "t.tile:1:26: error: unexpected '(', expected '>'");
}

Test(parser, comparison_in_const_default_needs_parentheses) {
    expect_error("kernel k<A = 2 > 1>() grid(1) {}",
                 "t.tile:1:18: error: unexpected integer literal '1', expected '('");
}

Test(parser, truncated_input) {
    /* the tokens offered are those of the state before the bad token's default reductions */
    expect_error("kernel k(", "t.tile:1:10: error: unexpected end of file, expected identifier or ')'");
    expect_error("kernel k() grid(1) {\n  let x = 1;\n", "t.tile:3:1: error: unexpected end of file, expected a statement or '}'");
    expect_error("fn", "t.tile:1:3: error: unexpected end of file, expected identifier");
    expect_error("fn f() { x = (1 + ", "t.tile:1:19: error: unexpected end of file, expected an expression");
    /* every proper prefix of a valid file fails cleanly with a single located error */
    const char *text = "kernel k<B = 4>(a: tensor<f32>[N]) grid(cdiv(N, B)) { let i = block_id(0);"
                       " for j in 0 .. B step 1 { a[i :+ B] = zeros<f32>[B]; } if i { return; } else { } }";
    for (size_t n = 0; n < strlen(text); n++) {
        char *errors;
        int count;
        char *dump = parse_to_dump("t.tile", text, n, &errors, &count);
        bool only_space = strspn(text, " ") >= n;
        if (n == 0 || only_space) {
            cr_expect_eq(count, 0);
        } else {
            cr_expect_eq(count, 1, "prefix %zu: %d errors:\n%s", n, count, errors);
            cr_expect(strstr(errors, "t.tile:1:") == errors, "prefix %zu: %s", n, errors);
        }
        free(dump);
        free(errors);
    }
}

Test(parser, lexical_errors_stop_the_parse_once) {
    expect_error("fn f() { x = 1 @ 2; }", "t.tile:1:16: error: unexpected character '@'");
    expect_error("fn f() {\n\xff\xff\xff }", "t.tile:2:1: error: invalid byte 0xff (only ASCII is allowed outside comments)");
    expect_error("fn f() { /* open", "t.tile:1:10: error: unterminated comment");
    expect_error("fn f() { x = 0b12; }", "t.tile:1:14: error: invalid number literal '0b12'");
}

Test(parser, declarations_before_an_error_are_kept) {
    char *errors;
    int n;
    const char *text = "fn a() {} fn b() { x = ; } fn c() {}";
    char *dump = parse_to_dump("t.tile", text, strlen(text), &errors, &n);
    cr_expect_eq(n, 1);
    cr_expect_str_eq(dump, "(fn a () (block))\n");
    free(dump);
    free(errors);
}

static char *repeat(const char *prefix, const char *unit, size_t n, const char *middle,
                    const char *closing, size_t m, const char *suffix) {
    Strbuf sb = {0};
    sb_puts(&sb, prefix);
    for (size_t i = 0; i < n; i++) sb_puts(&sb, unit);
    sb_puts(&sb, middle);
    for (size_t i = 0; i < m; i++) sb_puts(&sb, closing);
    sb_puts(&sb, suffix);
    char *s = xstrdup(sb_str(&sb));
    sb_free(&sb);
    return s;
}

static void expect_error_containing(const char *text, const char *fragment) {
    char *errors;
    int n;
    char *dump = parse_to_dump("deep.tile", text, strlen(text), &errors, &n);
    cr_expect_eq(n, 1, "%d errors", n);
    cr_expect(strstr(errors, fragment) != NULL, "no '%s' in %.300s", fragment, errors);
    cr_expect(strncmp(errors, "deep.tile:1:", 12) == 0, "%.200s", errors);
    free(dump);
    free(errors);
}

Test(parser, deep_nesting_is_an_error_not_a_crash) {
    char *s = repeat("fn f() { x = ", "(", 100000, "1", ")", 100000, "; }");
    expect_error_containing(s, "error: nesting too deep");
    free(s);
    s = repeat("fn f() ", "{", 100000, "", "}", 100000, "");
    expect_error_containing(s, "error: nesting too deep");
    free(s);
    s = repeat("fn f() { x = ", "-", 100000, "a", "", 0, "; }");
    expect_error_containing(s, "error: nesting too deep");
    free(s);
    s = repeat("fn f() { x = ", "f(", 100000, "a", ")", 100000, "; }");
    expect_error_containing(s, "error: nesting too deep");
    free(s);
    s = repeat("fn f() { if a {} ", "else if a {} ", 100000, "", "", 0, "}");
    expect_error_containing(s, "error: nesting too deep");
    free(s);
}

Test(parser, long_left_chains_are_bounded) {
    /* left-associative chains need no parser stack, so the depth limit catches them */
    char *s = repeat("fn f() { x = a", "+a", 100000, "", "", 0, "; }");
    expect_error_containing(s, "error: nesting too deep: an expression of more than 1000 levels");
    free(s);
    s = repeat("fn f() { x = a", "[0]", 100000, "", "", 0, "; }");
    expect_error_containing(s, "error: nesting too deep: an expression of more than 1000 levels");
    free(s);
    /* mixing parentheses and chains cannot get past the limit either */
    s = repeat("fn f() { x = ", "(", 300, "a", ")+a+a+a+a+a+a+a+a+a+a", 300, "; }");
    expect_error_containing(s, "error: nesting too deep: an expression of more than 1000 levels");
    free(s);
}

Test(parser, deep_but_allowed_trees_dump) {
    char *s = repeat("fn f() { x = a", "+a", PARSE_MAX_EXPR_DEPTH - 2, "", "", 0, "; }");
    char *errors;
    int n;
    char *dump = parse_to_dump("t.tile", s, strlen(s), &errors, &n);
    cr_expect_eq(n, 0, "%.300s", errors);
    cr_expect_eq(strncmp(dump, "(fn f () (block\n  (= x (+ (+ (+", 30), 0);
    free(dump);
    free(errors);
    free(s);
}

/* ---- golden files ----------------------------------------------------------------------- */
static char *read_optional(const char *relpath) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", TILE_SOURCE_DIR, relpath);
    char *data;
    size_t len;
    const char *err;
    return read_file(path, &data, &len, &err) ? data : NULL;
}

Test(parser, golden_files) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/parser", TILE_SOURCE_DIR);
    DIR *dp = opendir(dir);
    cr_assert_not_null(dp, "cannot open %s", dir);
    int checked = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".tile") != 0) continue;
        char rel[2048], base[1024];
        snprintf(base, sizeof base, "%.*s", (int)(len - 5), e->d_name);
        snprintf(rel, sizeof rel, "tests/parser/%s", e->d_name);
        size_t n;
        char *text = test_read_source_file(rel, &n);
        char *errors;
        int count;
        char *dump = parse_to_dump(e->d_name, text, n, &errors, &count);
        snprintf(rel, sizeof rel, "tests/parser/%s.ast", base);
        char *want_ast = read_optional(rel);
        snprintf(rel, sizeof rel, "tests/parser/%s.err", base);
        char *want_err = read_optional(rel);
        cr_expect(want_ast || want_err, "%s has neither .ast nor .err", e->d_name);
        if (want_ast) {
            cr_expect_eq(count, 0, "%s:\n%s", e->d_name, errors);
            cr_expect_str_eq(dump, want_ast, "%s: dump differs", e->d_name);
        }
        if (want_err) cr_expect_str_eq(errors, want_err, "%s: diagnostics differ", e->d_name);
        free(want_ast);
        free(want_err);
        free(dump);
        free(errors);
        free(text);
        checked++;
    }
    closedir(dp);
    cr_expect_geq(checked, 3);
}

/* ---- robustness ------------------------------------------------------------------------- */
Test(parser, mutated_sources_give_located_errors_or_trees) {
    size_t len;
    char *original = test_read_source_file("tests/parser/softmax.tile", &len);
    uint64_t state = 0x9e3779b97f4a7c15u;
    const char alphabet[] = "(){}[]<>:;,.+-*/=!~&|^%_aZ09 \n\xff\0";
    char *text = xmalloc(len + 16);
    for (int round = 0; round < 3000; round++) {
        memcpy(text, original, len);
        size_t n = len;
        for (int edits = 1 + round % 4; edits > 0; edits--) {
            state = state * 6364136223846793005u + 1442695040888963407u;
            size_t at = (size_t)(state >> 33) % n;
            char c = alphabet[(state >> 13) % (sizeof alphabet - 1)];
            switch ((state >> 7) % 4) {
            case 0: text[at] = c; break;                                /* replace */
            case 1: memmove(text + at, text + at + 1, n - at - 1); n--; break; /* delete */
            case 2: n = at + 1; break;                                  /* truncate */
            default: if (n < len + 8) { memmove(text + at + 1, text + at, n - at); text[at] = c; n++; }
            }
        }
        char *errors;
        int count;
        char *dump = parse_to_dump("m.tile", text, n, &errors, &count);
        cr_assert_leq(count, 1, "round %d: %d errors:\n%s", round, count, errors);
        if (count == 1)
            cr_assert(strncmp(errors, "m.tile:", 7) == 0 && strstr(errors, ": error: "), "round %d: %s", round, errors);
        free(dump);
        free(errors);
    }
    free(text);
    free(original);
}

/* ---- Language II syntax (lang/SPEC.md 2.1, 4.7, 4.9, 5.2, 6.2) ---------------------------- */
Test(parser, conditional_expression_is_lowest_and_right_associative) {
    expect_expr("c ? a : b", "(? c a b)");
    expect_expr("c ? a : b + 1", "(? c a (+ b 1))");
    expect_expr("a || b ? x : y", "(? (|| a b) x y)");
    expect_expr("c ? a : d ? e : f", "(? c a (? d e f))");
    expect_expr("c ? d ? e : f : g", "(? c (? d e f) g)");
    expect_expr("t[c ? i : j]", "(index t (? c i j))");
    expect_expr("(c ? a : b) * 2", "(* (? c a b) 2)");
}

Test(parser, strings_bitcast_and_checks) {
    expect_expr("bitcast<u32>(x)", "(call bitcast <u32> x)");
    expect_expr("f(\"a message, with: punctuation\")", "(call f \"a message, with: punctuation\")");
    expect_dump("kernel k(x: tensor<f32>[N], h: i32) grid(N) warps(2) check(h > 0, \"h\") check(N % 2 == 0, \"even\") { }",
                "(kernel k <> ((param x (tensor f32 N)) (param h i32)) (grid N) (warps 2) "
                "(call check (> h 0) \"h\") (call check (== (% N 2) 0) \"even\") (block))\n");
}

Test(parser, break_continue_tuples_and_multiple_returns) {
    expect_dump("fn f(a) { for i in 0 .. 4 { if a { break; } continue; } return a, a + 1, 2; }",
                "(fn f ((param a)) (block\n  (for i 0 4 (block\n    (if a (block\n      (break)))\n"
                "    (continue)))\n  (return a (+ a 1) 2)))\n");
    expect_dump("fn g() { let (x, y) = f(1); return; }",
                "(fn g () (block\n  (let (x y) (call f 1))\n  (return)))\n");
}

Test(parser, reserved_words_as_names_say_so) {
    expect_error("fn f() { let for = 1; }",
                 "t.tile:1:14: error: unexpected 'for', expected identifier or '(' ('for' is a reserved word and "
                 "cannot be used as a name)");
    expect_error("kernel continue() grid(1) { }",
                 "t.tile:1:8: error: unexpected 'continue', expected identifier ('continue' is a reserved word and "
                 "cannot be used as a name)");
    expect_error("fn f(bitcast) { }",
                 "t.tile:1:6: error: unexpected 'bitcast', expected identifier or ')' ('bitcast' is a reserved word "
                 "and cannot be used as a name)");
}

/* `shared<T>[dims]` is a generic builtin like zeros (so `a < b > [c]` stays comparisons), and
 * `shared` is reserved; barrier() is an ordinary call. */
Test(parser, shared_tiles_and_barrier) {
    expect_expr("shared<f32>[BM, BN + 1]", "(call shared <f32> (shape BM (+ BN 1)))");
    expect_expr("s[i :+ 16, :]", "(index s (slice i 16) :)");
    expect_expr("barrier()", "(call barrier)");
    expect_error("fn f() { let shared = 1; }",
                 "t.tile:1:14: error: unexpected 'shared', expected identifier or '(' ('shared' is a reserved word "
                 "and cannot be used as a name)");
}

/* `pipeline(N, name = value, ...)`: the depth, then named options (the lowering checks the names
 * and values); after the depth only `name = value` parses, and an option needs pipeline(...). */
Test(parser, pipeline_options) {
    expect_dump("fn f() { for k in 0 .. K step BK pipeline(STAGES, specialize = 1) { } "
                "for l in 0 .. n pipeline(3, specialize = WS - 1, other = 2) {} }",
                "(fn f () (block\n"
                "  (for k 0 K (step BK) (pipeline STAGES (kwarg specialize 1)) (block))\n"
                "  (for l 0 n (pipeline 3 (kwarg specialize (- WS 1)) (kwarg other 2)) (block))))\n");
    expect_error("fn f() { for k in 0 .. K pipeline(3, 1) {} }",
                 "t.tile:1:38: error: unexpected integer literal '1', expected identifier");
    expect_error("fn f() { for k in 0 .. K pipeline(3,) {} }", "t.tile:1:37: error: unexpected ')', expected identifier");
    expect_error("fn f() { for k in 0 .. K pipeline() {} }", "t.tile:1:35: error: unexpected ')', expected an expression");
    expect_error("fn f() { for k in 0 .. K specialize = 1 {} }",
                 "t.tile:1:26: error: unexpected identifier 'specialize', expected an operator, '{', 'step' or 'pipeline'");
}
