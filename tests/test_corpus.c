/*
 * test_corpus.c: the bad-input corpus (the .tile files of tests/corpus/bad) through the frontend, in
 * process. The ctest entry corpus_bad_input runs the same files through `tilec check` and
 * checks exit codes; this suite looks closer: for every file it parses the source and lowers
 * each kernel with its defaults (as `tilec check` does), collecting the diagnostics in one
 * DiagList, and requires
 *   - at least one error, and every error line located: `tests/corpus/bad/NAME.tile:L:C: error: `
 *     with L and C inside the file;
 *   - few errors (fewer than 10): one mistake must not cascade into pages of diagnostics;
 *   - every error followed by its source line and a caret line.
 * Files with no kernel at all (an empty file, only a comment) are an error of the driver
 * (`no kernel in this file`), not of the frontend: for them the frontend must report nothing
 * and find no declaration. A failing check prints the file's diagnostics.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/frontend.h"
#include "testutil.h"

enum { MAX_ERRORS = 10 };

typedef struct CorpusResult {
    DiagList diags;
    int kernels;
    int decls;
    uint32_t lines;     /* lines in the source, for the range check of locations */
} CorpusResult;

/* Whether decls[i] is the first kernel of its name: as in `tilec check`, a name defined
 * twice is lowered (and its diagnostics reported) once. */
static bool first_of_name(const AstFile *ast, uint32_t i) {
    for (uint32_t j = 0; j < i; j++)
        if (ast->decls.items[j]->kind == AST_KERNEL && strcmp(ast->decls.items[j]->name, ast->decls.items[i]->name) == 0)
            return false;
    return true;
}

/* Parses and lowers every kernel of one file as the runtime does (lowering only after a
 * clean parse). */
static void run_frontend(const char *relpath, CorpusResult *r) {
    size_t len;
    char *text = test_read_source_file(relpath, &len);
    memset(r, 0, sizeof *r);
    r->lines = 1;
    for (size_t i = 0; i < len; i++) r->lines += text[i] == '\n';
    AstFile *ast = parse_source(relpath, text, len, &r->diags);
    r->decls = (int)ast->decls.len;
    if (r->diags.errors == 0) {
        for (uint32_t i = 0; i < ast->decls.len; i++) {
            const AstNode *d = ast->decls.items[i];
            if (d->kind != AST_KERNEL || !first_of_name(ast, i)) continue;
            r->kernels++;
            IrModule *m = ir_module_new();
            lower_kernel(ast, d->name, NULL, 0, m, &r->diags);
            ir_module_free(m);
        }
    }
    ast_file_free(ast);
    free(text);
}

/* Checks the formatted diagnostics: every "error:" line is located in this file and followed
 * by a source line and a caret line. Returns a complaint or NULL. */
static const char *check_locations(const char *relpath, const CorpusResult *r, char *why, size_t n) {
    const char *text = sb_str((Strbuf *)&r->diags.text);
    size_t plen = strlen(relpath);
    int located = 0;
    const char *line = text;
    while (*line) {
        const char *end = strchr(line, '\n');
        if (!end) end = line + strlen(line);
        if (strstr(line, "error: ") && strstr(line, "error: ") < end) {
            unsigned l = 0, c = 0;
            int used = 0;
            if (strncmp(line, relpath, plen) != 0 || line[plen] != ':' ||
                sscanf(line + plen, ":%u:%u: error: %n", &l, &c, &used) != 2 || used == 0) {
                snprintf(why, n, "an error without the location %s:LINE:COL", relpath);
                return why;
            }
            if (l < 1 || l > r->lines || c < 1) {
                snprintf(why, n, "an error at %u:%u, outside the file's %u lines", l, c, r->lines);
                return why;
            }
            /* the source line, then the caret line */
            const char *src = *end ? end + 1 : end;
            const char *src_end = strchr(src, '\n');
            const char *caret = src_end ? src_end + 1 : src;
            const char *caret_end = strchr(caret, '\n');
            if (!src_end || !caret_end || !memchr(caret, '^', (size_t)(caret_end - caret))) {
                snprintf(why, n, "an error at %u:%u without its source line and caret", l, c);
                return why;
            }
            located++;
        }
        line = *end ? end + 1 : end;
    }
    if (located != r->diags.errors && r->diags.errors <= MAX_ERRORS) {
        snprintf(why, n, "%d errors counted but %d printed with a location", r->diags.errors, located);
        return why;
    }
    return NULL;
}

Test(corpus, every_file_gives_few_located_errors) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/corpus/bad", TILE_SOURCE_DIR);
    DIR *dp = opendir(dir);
    cr_assert_not_null(dp, "cannot open %s", dir);
    int checked = 0, without_kernels = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".tile") != 0) continue;
        char rel[2048];
        snprintf(rel, sizeof rel, "tests/corpus/bad/%s", e->d_name);
        CorpusResult r;
        run_frontend(rel, &r);
        const char *shown = sb_str(&r.diags.text);
        if (r.diags.errors == 0 && r.kernels == 0) {
            /* the driver's error: no kernel in this file */
            cr_expect_eq(r.decls, 0, "%s: declarations but no kernel and no error", rel);
            without_kernels++;
        } else {
            char why[256];
            const char *complaint = check_locations(rel, &r, why, sizeof why);
            cr_expect_geq(r.diags.errors, 1, "%s: accepted; it must be rejected", rel);
            cr_expect_lt(r.diags.errors, MAX_ERRORS, "%s: %d errors (a cascade?):\n%s", rel, r.diags.errors, shown);
            cr_expect_null(complaint, "%s: %s:\n%s", rel, complaint ? complaint : "", shown);
        }
        diag_free(&r.diags);
        checked++;
    }
    closedir(dp);
    cr_expect_geq(checked, 45, "only %d corpus files", checked);
    cr_expect_leq(without_kernels, 2, "%d files without kernels: only empty.tile and only_comment.tile should be", without_kernels);
}

/* The check itself must be able to fail: a good kernel gives no error, and a bad one run
 * through the same helper gives a located one. */
Test(corpus, the_check_tells_good_from_bad) {
    CorpusResult r;
    run_frontend("stdlib/core/gemm.tile", &r);
    cr_expect_eq(r.diags.errors, 0, "%s", sb_str(&r.diags.text));
    cr_expect_geq(r.kernels, 1); /* gemm and its epilogue kernels */
    diag_free(&r.diags);

    run_frontend("tests/corpus/bad/unknown_variable.tile", &r);
    char why[256];
    cr_expect_eq(r.diags.errors, 1, "%s", sb_str(&r.diags.text));
    cr_expect_null(check_locations("tests/corpus/bad/unknown_variable.tile", &r, why, sizeof why));
    cr_expect_not_null(check_locations("tests/corpus/bad/other.tile", &r, why, sizeof why));
    diag_free(&r.diags);
}
