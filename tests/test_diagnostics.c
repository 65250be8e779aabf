/*
 * test_diagnostics.c: golden tests of the frontend's diagnostics. Each tests/diag/NAME.tile
 * goes through the frontend as `tilec check` takes it (parse; then, if the parse is clean,
 * lower every kernel with its default constants), all diagnostics collected in one DiagList
 * under the source name `tests/diag/NAME.tile`, and the text must equal tests/diag/NAME.err
 * exactly: `file:line:col: error: message`, the source line and the caret, for each one.
 *
 * A first line `//! ...` in a .tile sets options as on tilec's command line: `-D NAME=VALUE`
 * (a compile-time constant for every kernel) and `-k NAME` (lower only this kernel, which
 * need not exist).
 *
 * A mismatch prints the first differing line with its number, then both texts. To write the
 * .err files from the current output (then read every one before committing it), run the
 * suite with TILE_UPDATE_GOLDEN=1.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/frontend.h"
#include "testutil.h"

enum { MAX_CONSTS = 8 };

typedef struct Options {
    ConstBinding consts[MAX_CONSTS];
    char names[MAX_CONSTS][64];
    size_t nconsts;
    char kernel[64];
} Options;

/* Reads the `//!` line at the top of the file, if any. */
static void read_options(const char *text, Options *o) {
    memset(o, 0, sizeof *o);
    if (strncmp(text, "//!", 3) != 0) return;
    const char *end = strchr(text, '\n');
    char line[512];
    snprintf(line, sizeof line, "%.*s", end ? (int)(end - text - 3) : (int)strlen(text + 3), text + 3);
    char *save = NULL;
    for (char *w = strtok_r(line, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        char *arg = strtok_r(NULL, " ", &save);
        cr_assert_not_null(arg, "option %s without a value", w);
        if (strcmp(w, "-k") == 0) {
            snprintf(o->kernel, sizeof o->kernel, "%s", arg);
            continue;
        }
        cr_assert_str_eq(w, "-D", "unknown option %s in //!", w);
        cr_assert_lt(o->nconsts, (size_t)MAX_CONSTS);
        char *eq = strchr(arg, '=');
        cr_assert_not_null(eq, "-D %s: expected NAME=VALUE", arg);
        ConstBinding *c = &o->consts[o->nconsts];
        snprintf(o->names[o->nconsts], sizeof o->names[0], "%.*s", (int)(eq - arg), arg);
        c->name = o->names[o->nconsts];
        bool hex = eq[1] == '0' && (eq[2] == 'x' || eq[2] == 'X');
        if (!hex && (strchr(eq + 1, '.') || strchr(eq + 1, 'e'))) {
            c->is_float = true;
            c->f = strtod(eq + 1, NULL);
        } else {
            c->i = strtoll(eq + 1, NULL, 0);
        }
        o->nconsts++;
    }
}

/* Whether decls[i] is the first kernel of its name: as in `tilec check`, a name defined
 * twice is lowered (and its diagnostics reported) once. */
static bool first_of_name(const AstFile *ast, uint32_t i) {
    for (uint32_t j = 0; j < i; j++)
        if (ast->decls.items[j]->kind == AST_KERNEL && strcmp(ast->decls.items[j]->name, ast->decls.items[i]->name) == 0)
            return false;
    return true;
}

/* The diagnostics of one file, as a malloc'd string. */
static char *diagnose(const char *relpath, int *errors) {
    size_t len;
    char *text = test_read_source_file(relpath, &len);
    Options o;
    read_options(text, &o);
    DiagList d = {0};
    AstFile *ast = parse_source(relpath, text, len, &d);
    if (d.errors == 0) {
        if (o.kernel[0]) {
            IrModule *m = ir_module_new();
            lower_kernel(ast, o.kernel, o.consts, o.nconsts, m, &d);
            ir_module_free(m);
        }
        for (uint32_t i = 0; !o.kernel[0] && i < ast->decls.len; i++) {
            const AstNode *k = ast->decls.items[i];
            if (k->kind != AST_KERNEL || !first_of_name(ast, i)) continue;
            IrModule *m = ir_module_new();
            lower_kernel(ast, k->name, o.consts, o.nconsts, m, &d);
            ir_module_free(m);
        }
    }
    char *out = xstrdup(sb_str(&d.text));
    *errors = d.errors;
    diag_free(&d);
    ast_file_free(ast);
    free(text);
    return out;
}

/* Says where two texts first differ, as "line N: expected ... / got ...". */
static void first_difference(const char *want, const char *got, char *out, size_t n) {
    int line = 1;
    while (*want && *got) {
        const char *we = strchr(want, '\n'), *ge = strchr(got, '\n');
        size_t wl = we ? (size_t)(we - want) : strlen(want), gl = ge ? (size_t)(ge - got) : strlen(got);
        if (wl != gl || memcmp(want, got, wl) != 0 || !we != !ge) {
            snprintf(out, n, "line %d:\n- %.*s\n+ %.*s", line, (int)wl, want, (int)gl, got);
            return;
        }
        if (!we) break;
        want = we + 1, got = ge + 1, line++;
    }
    snprintf(out, n, "line %d: %s", line, *want ? "the output ends early" : "the output goes on");
}

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

Test(diagnostics, golden_files) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/diag", TILE_SOURCE_DIR);
    DIR *dp = opendir(dir);
    cr_assert_not_null(dp, "cannot open %s", dir);
    bool update = getenv("TILE_UPDATE_GOLDEN") && *getenv("TILE_UPDATE_GOLDEN") == '1';
    int checked = 0, several = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (!has_suffix(e->d_name, ".tile")) continue;
        char rel[2048], err_path[4096 + 256];
        snprintf(rel, sizeof rel, "tests/diag/%s", e->d_name);
        snprintf(err_path, sizeof err_path, "%s/tests/diag/%.*s.err", TILE_SOURCE_DIR,
                 (int)(strlen(e->d_name) - 5), e->d_name);
        int errors;
        char *got = diagnose(rel, &errors);
        cr_expect_geq(errors, 1, "%s: no diagnostic", rel);
        several += errors > 1;
        if (update) {
            FILE *f = fopen(err_path, "wb");
            cr_assert_not_null(f, "cannot write %s", err_path);
            fputs(got, f);
            fclose(f);
        }
        char *want;
        size_t len;
        const char *why;
        if (!read_file(err_path, &want, &len, &why)) {
            cr_expect_fail("%s: no golden file (%s); the diagnostics are:\n%s", rel, why, got);
        } else {
            if (strcmp(want, got) != 0) {
                char diff[1024];
                first_difference(want, got, diff, sizeof diff);
                cr_expect_fail("%s: diagnostics differ from the .err file at %s\n--- expected:\n%s--- got:\n%s", rel,
                               diff, want, got);
            }
            free(want);
        }
        free(got);
        checked++;
    }
    closedir(dp);
    cr_expect_geq(checked, 60, "only %d golden files", checked);
    cr_expect_geq(several, 3, "only %d files show several errors in one run", several);
}

/* The comparison must notice a change: a golden file compared with another file's output. */
Test(diagnostics, mismatch_is_reported) {
    char diff[256];
    first_difference("a\nb\n", "a\nc\n", diff, sizeof diff);
    cr_expect_str_eq(diff, "line 2:\n- b\n+ c");
    first_difference("a\nb\n", "a\n", diff, sizeof diff);
    cr_expect(strstr(diff, "ends early") != NULL, "%s", diff);
    int errors;
    char *got = diagnose("tests/diag/unknown_name.tile", &errors);
    cr_expect_eq(errors, 1);
    cr_expect(strstr(got, "tests/diag/unknown_name.tile:") == got, "%s", got);
    free(got);
}
