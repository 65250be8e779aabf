/*
 * test_ir_parse.c: the IR reader (ir/parse.c) against the printer.
 *
 * round_trip: every kernel the project ships or tests (every .tile file under stdlib/ and
 * examples/, the good ones of tests/parser/, and every .tile source embedded as a C string
 * literal in examples/hello_tile.c and tests/test_*.c that lowers with its default constants) is
 * lowered and run through the whole pass pipeline with a dump after every pass, on the VM path
 * and with the GPU passes for 4 and 8 warps. Each dump, and the lowered module itself, must read
 * back (verifier included) and print to exactly the same text. New passes and new kernels are
 * covered without touching this file.
 *
 * The other tests feed the reader broken text: every error must be located
 * (`t.ir:LINE:COL: error: ...` with the expected message) and nothing may crash.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "frontend/frontend.h"
#include "passes/passes.h"
#include "testutil.h"

/* ---- helpers --------------------------------------------------------------------------------- */
static char *print_module(const IrModule *m) {
    Strbuf sb = {0};
    ir_print_module(m, &sb);
    return sb.data ? sb.data : xstrdup("");
}

/* Parses text, prints it, and requires the same text. */
static void check_round_trip(const char *what, const char *text, size_t len) {
    DiagList d = {0};
    IrModule *m = ir_parse_module("dump.ir", text, len, &d);
    cr_assert_not_null(m, "%s: the dump does not read back:\n%s\n---- the dump:\n%.*s", what, sb_str(&d.text),
                       (int)len, text);
    char *again = print_module(m);
    cr_assert(strlen(again) == len && memcmp(again, text, len) == 0,
              "%s: printed differently after reading:\n---- original:\n%.*s\n---- after:\n%s", what, (int)len, text,
              again);
    free(again);
    ir_module_free(m);
    diag_free(&d);
}

/* Splits a dump-after-all into its modules (each after a `// ---- IR after X ----` line) and
 * round-trips each; returns how many there were. */
static int check_dumps(const char *what, const char *dump) {
    static const char header[] = "// ---- IR after ";
    int n = 0;
    const char *p = strstr(dump, header);
    while (p) {
        const char *start = strchr(p, '\n');
        cr_assert_not_null(start);
        start++;
        const char *stop = strstr(start, header);
        size_t len = stop ? (size_t)(stop - start) : strlen(start);
        char label[1024];
        snprintf(label, sizeof label, "%s, %.*s", what, (int)(start - 1 - p - (int)strlen(header)), p + strlen(header));
        check_round_trip(label, start, len);
        n++;
        p = stop;
    }
    return n;
}

typedef struct Totals {
    int kernels, modules;
} Totals;

/* Lowers every kernel of a source with its defaults and checks the module and each pass's dump
 * for the VM path and the GPU path with 4 and 8 warps. Kernels that need constants are skipped. */
static void check_source(const char *name, const char *text, size_t len, Totals *totals) {
    DiagList d = {0};
    AstFile *ast = parse_source(name, text, len, &d);
    for (uint32_t i = 0; d.errors == 0 && i < ast->decls.len; i++) {
        const AstNode *k = ast->decls.items[i];
        if (k->kind != AST_KERNEL) continue;
        /* the last: sm_90a with every launch fact, whose rings use TMA (copy_tma, mbarriers) */
        static const struct { bool gpu; int warps; bool tma; } configs[] = {
            {false, 0, false}, {true, 4, false}, {true, 8, false}, {true, 4, true}};
        for (size_t c = 0; c < sizeof configs / sizeof configs[0]; c++) {
            DiagList ld = {0};
            IrModule *m = ir_module_new();
            if (!lower_kernel(ast, k->name, NULL, 0, m, &ld)) {
                ir_module_free(m);
                diag_free(&ld);
                break;
            }
            char label[512];
            snprintf(label, sizeof label, "%s: kernel %s (%s, %d warps)", name, k->name, configs[c].tma ? "gpu sm_90a" : configs[c].gpu ? "gpu" : "vm",
                     configs[c].warps);
            if (c == 0) {
                char *lowered = print_module(m);
                check_round_trip(label, lowered, strlen(lowered));
                free(lowered);
                totals->kernels++;
            }
            Strbuf dump = {0};
            PassOptions opt = {.dump_after = "all", .dump = &dump, .verify_each = true, .gpu = configs[c].gpu,
                               .target = {.num_warps = configs[c].warps}};
            if (configs[c].tma)
                opt.target = (Target){.sm = 90, .arch_specific = true, .num_warps = 4, .every_fact = true, .tma = true,
                                      .cluster = true};
            if (!passes_run(m, &opt, &ld)) {
                /* a kernel the GPU path refuses with a located error (a test of that error) */
                cr_assert(configs[c].gpu && !ld.internal, "%s: %s", label, sb_str(&ld.text));
                sb_free(&dump);
                ir_module_free(m);
                diag_free(&ld);
                continue;
            }
            totals->modules += check_dumps(label, sb_str(&dump));
            sb_free(&dump);
            ir_module_free(m);
            diag_free(&ld);
        }
    }
    ast_file_free(ast);
    diag_free(&d);
}

static void check_file(const char *relpath, Totals *totals) {
    size_t len;
    char *text = test_read_source_file(relpath, &len);
    check_source(relpath, text, len, totals);
    free(text);
}

/* Every .tile file under TILE_SOURCE_DIR/reldir, recursively. */
static void check_tree(const char *reldir, Totals *totals) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", TILE_SOURCE_DIR, reldir);
    DIR *dir = opendir(path);
    cr_assert_not_null(dir, "cannot open %s", path);
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (e->d_name[0] == '.') continue;
        char rel[4096], full[8192];
        snprintf(rel, sizeof rel, "%s/%s", reldir, e->d_name);
        snprintf(full, sizeof full, "%s/%s", TILE_SOURCE_DIR, rel);
        struct stat st;
        if (stat(full, &st) != 0) continue;
        size_t n = strlen(e->d_name);
        if (S_ISDIR(st.st_mode)) check_tree(rel, totals);
        else if (n > 5 && strcmp(e->d_name + n - 5, ".tile") == 0) check_file(rel, totals);
    }
    closedir(dir);
}

/* The C string literals of a test source, adjacent ones joined (`"a\n" "b"`), with the usual
 * escapes undone; each literal that holds a kernel goes to check_source. */
static void check_embedded(const char *relpath, Totals *totals) {
    size_t len;
    char *c = test_read_source_file(relpath, &len);
    Strbuf lit = {0};
    bool in_lit = false;
    for (size_t i = 0; i < len; i++) {
        char ch = c[i];
        if (!in_lit) {
            if (ch == '/' && i + 1 < len && c[i + 1] == '/') {
                while (i < len && c[i] != '\n') i++;
            } else if (ch == '\'') {
                i += c[i + 1] == '\\' ? 3 : 2; /* a character constant such as '"' */
            } else if (ch == '"') {
                in_lit = true;
            } else if (ch != ' ' && ch != '\n' && ch != '\t' && lit.len) {
                if (strstr(sb_str(&lit), "kernel ")) check_source(relpath, lit.data, lit.len, totals);
                sb_clear(&lit);
            }
            continue;
        }
        if (ch == '"') {
            in_lit = false;
        } else if (ch == '\\' && i + 1 < len) {
            char esc = c[++i];
            sb_putc(&lit, esc == 'n' ? '\n' : esc == 't' ? '\t' : esc);
        } else {
            sb_putc(&lit, ch);
        }
    }
    sb_free(&lit);
    free(c);
}

Test(ir_parse, round_trip_of_every_kernel_after_every_pass, .timeout = 600) {
    Totals totals = {0};
    check_tree("stdlib", &totals);
    check_file("tests/parser/gemm.tile", &totals);
    check_file("tests/parser/softmax.tile", &totals);
    check_tree("examples", &totals);
    check_tree("tests/shared", &totals);
    check_embedded("examples/hello_tile.c", &totals);
    int stdlib_kernels = totals.kernels;
    char path[4096];
    snprintf(path, sizeof path, "%s/tests", TILE_SOURCE_DIR);
    DIR *dir = opendir(path);
    cr_assert_not_null(dir);
    struct dirent *e;
    while ((e = readdir(dir))) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "test_", 5) != 0 || n < 3 || strcmp(e->d_name + n - 2, ".c") != 0) continue;
        char rel[1024];
        snprintf(rel, sizeof rel, "tests/%s", e->d_name);
        check_embedded(rel, &totals);
    }
    closedir(dir);
    /* The stdlib and the parser's files have 9 kernels (2026-12), the tests many more. */
    cr_assert_geq(stdlib_kernels, 9, "only %d kernels found in stdlib", stdlib_kernels);
    cr_assert_gt(totals.kernels, stdlib_kernels + 20, "only %d kernels in tests", totals.kernels - stdlib_kernels);
    fprintf(stderr, "round trip: %d kernels, %d modules\n", totals.kernels, totals.modules);
}

/* ---- errors ---------------------------------------------------------------------------------- */
/* Reading `text` must fail with a message that starts with `located` (file:line:col: error: ...). */
static void check_error(const char *text, const char *located) {
    DiagList d = {0};
    IrModule *m = ir_parse_module("t.ir", text, strlen(text), &d);
    cr_assert_null(m, "accepted:\n%s", text);
    cr_assert_geq(d.errors, 1);
    cr_assert(strncmp(sb_str(&d.text), located, strlen(located)) == 0, "for:\n%s\nwanted: %s\ngot: %s", text, located,
              sb_str(&d.text));
    diag_free(&d);
}

static const char *add_kernel = "kernel @add(%0: tensor<f32>[N], %1: tensor<f32>[N])\n"
                                "grid {\n"
                                "  %2 = dim %0, axis 0 : i32\n"
                                "  yield %2\n"
                                "}\n"
                                "body {\n"
                                "  %2 = block_id axis 0 : i32\n"
                                "  %3 = arange 0 : tile<i32>[64]\n"
                                "  %4 = load %0, %3 : tile<f32>[64]\n"
                                "  store %1, %3, %4\n"
                                "}\n";

Test(ir_parse, reads_a_kernel_and_names_its_parameters) {
    DiagList d = {0};
    IrModule *m = ir_parse_module("t.ir", add_kernel, strlen(add_kernel), &d);
    cr_assert_not_null(m, "%s", sb_str(&d.text));
    IrFunction *f = ir_module_find(m, "add");
    cr_assert(f && f->is_kernel && f->nparams == 2);
    cr_assert_str_eq(f->params[0].name, "arg0");
    cr_assert_str_eq(f->params[1].dims[0].symbol, "N");
    char *text = print_module(m);
    cr_assert_str_eq(text, add_kernel);
    free(text);
    ir_module_free(m);
}

Test(ir_parse, named_values_and_comments_read_and_print_as_numbers) {
    const char *text = "# a comment\n"
                       "func @f(%x: f32, %y: f32) -> (f32) {  // another\n"
                       "  %s = add %x, %y : f32\n"
                       "  %c = const -inf : f32\n"
                       "  %m = max %s, %c : f32\n"
                       "  return %m\n"
                       "}\n";
    DiagList d = {0};
    IrModule *m = ir_parse_module("t.ir", text, strlen(text), &d);
    cr_assert_not_null(m, "%s", sb_str(&d.text));
    char *out = print_module(m);
    cr_assert_str_eq(out, "func @f(%0: f32, %1: f32) -> (f32) {\n"
                          "  %2 = add %0, %1 : f32\n"
                          "  %3 = const -inf : f32\n"
                          "  %4 = max %2, %3 : f32\n"
                          "  return %4\n"
                          "}\n");
    cr_assert_str_eq(ir_module_find(m, "f")->params[0].name, "x");
    free(out);
    ir_module_free(m);
}

Test(ir_parse, layouts_and_shared_layouts_read_back) {
    const char *text = "func @f(%0: tile<f32>[64, 32]{spatial(4,8) * local(16,4)}, "
                       "%1: tile<f32>[64]{layout([64], threads=[32:0/2, 4:r], locals=[2:0/1])}, "
                       "%2: shared<bf16>[64, 64]{row_major(64,64) ^ swizzle(3,3,3)}, "
                       "%3: shared<f16>[8, 4]{strided((8,4), (1,16))}) {\n"
                       "  return\n"
                       "}\n";
    DiagList d = {0};
    IrModule *m = ir_parse_module("t.ir", text, strlen(text), &d);
    cr_assert_not_null(m, "%s", sb_str(&d.text));
    char *out = print_module(m);
    IrModule *m2 = ir_parse_module("t2.ir", out, strlen(out), &d);
    cr_assert_not_null(m2, "%s\n%s", out, sb_str(&d.text));
    char *again = print_module(m2);
    cr_assert_str_eq(again, out);
    cr_assert(strstr(out, "swizzle(3,3,3)") && strstr(out, "strided((8,4), (1,16))"), "%s", out);
    free(out);
    free(again);
    ir_module_free(m);
    ir_module_free(m2);
}

Test(ir_parse, errors_are_located) {
    check_error("kernel @k() grid {\n  %0 = frobnicate : i32\n", "t.ir:2:8: error: unknown op 'frobnicate'");
    check_error("func @f() {\n  return %3\n}\n", "t.ir:2:10: error: use of undefined value %3");
    check_error("func @f() {\n  %0 = const 1 : i32\n  %0 = const 2 : i32\n  return\n}\n",
                "t.ir:3:3: error: value %0 is defined twice");
    check_error("func @f() {\n  %0 = const 1 : q32\n  return\n}\n", "t.ir:2:18: error: unknown type 'q32'");
    check_error("func @f() {\n  %0 = cmp lq %1, %1 : bool\n}\n", "t.ir:2:12: error: unknown comparison 'lq'");
    check_error("func @f(%0: tile<f32>[64]{spatial(32)}) {\n  return\n}\n",
                "t.ir:1:26: error: the layout's shape differs from the tile's");
    check_error("func @f(%0: tile<f32>[64]{spatial(32) * }) {\n  return\n}\n", "t.ir:1:26: error: invalid layout");
    check_error("func @f(%0: tile<f32>[0]) {\n  return\n}\n", "t.ir:1:23: error: size 0 out of range");
    check_error("func @f(%0: tile<f32>[4]{layout([4], threads=[2:0/1], locals=[])}) {\n  return\n}\n",
                "t.ir:1:25: error: the layout does not hold every element");
    check_error("func @f() {\n  %0 = call @g() : i32\n  return\n}\n",
                "t.ir:2:13: error: call of undefined function @g");
    check_error("func @f() {\n  %0 = block_id : i32\n  return\n}\n", "t.ir:2:17: error: expected 'axis'");
    check_error("func @f() {\n  %0 = const 1 : i32\n", "t.ir:3:1: error: expected '}', found the end of the file");
    check_error("func @f() {\n  %0 = const 99999999999999999999 : i32\n}\n", "t.ir:2:14: error: integer out of range");
    check_error("func @f() {\n  %0, %1 = const 1 : i32\n}\n", "t.ir:2:3: error: 2 result names for 1 result type");
    check_error("func @f() {\n  return\n}\nfunc @f() {\n  return\n}\n", "t.ir:4:6: error: function @f is defined twice");
    check_error("func @f() {\n  \x01\n}\n", "t.ir:2:3: error: unexpected byte 0x01");
}

Test(ir_parse, invalid_ir_is_a_located_verifier_error) {
    /* It reads, but the verifier refuses it, at the op. */
    check_error("func @f(%0: f32, %1: i32) -> (f32) {\n  %2 = add %0, %1 : f32\n  return %2\n}\n",
                "t.ir:2:3: error: verify: add:");
    check_error("func @f() -> (f32) {\n  return\n}\n", "t.ir:2:3: error: verify: return:");
}

Test(ir_parse, truncations_of_a_valid_module_never_crash) {
    size_t n = strlen(add_kernel);
    for (size_t len = 0; len < n; len++) {
        DiagList d = {0};
        IrModule *m = ir_parse_module("t.ir", add_kernel, len, &d);
        if (m) {
            ir_module_free(m);
        } else {
            cr_assert_geq(d.errors, 1, "no message for a prefix of %zu bytes", len);
            cr_assert(strncmp(sb_str(&d.text), "t.ir:", 5) == 0, "unlocated: %s", sb_str(&d.text));
        }
        diag_free(&d);
    }
}

Test(ir_parse, deep_nesting_is_an_error_not_a_stack_overflow) {
    Strbuf sb = {0};
    sb_puts(&sb, "func @f(%0: bool) {\n");
    for (int i = 0; i < 5000; i++) sb_puts(&sb, "if %0 {\n");
    DiagList d = {0};
    IrModule *m = ir_parse_module("t.ir", sb_str(&sb), sb.len, &d);
    cr_assert_null(m);
    cr_assert(strncmp(sb_str(&d.text), "t.ir:201:7: error: regions nested more than 200 deep", 52) == 0, "%s",
              sb_str(&d.text));
    diag_free(&d);
    sb_free(&sb);
}
