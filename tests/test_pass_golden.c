/*
 * test_pass_golden.c: the golden pass tests, one file per case in tests/passes/ (as QBE's tests).
 *
 * A file NAME.ir holds, in order:
 *   - comment lines saying what the case shows, and a line `# passes: P1 P2 ...` naming passes of
 *     the pipeline (tilec --list-passes) to run in that order; GPU passes get the default target
 *     (layout: the kernel's `warps N`, else 4; sm_80) unless a line `# target: ...` names one
 *     (target_parse's words: `sm_90a warps 4 smem 100000 facts all`); a line `# fixpoint` also requires that
 *     running the same passes once more changes nothing; `# passes:` alone checks the reader and
 *     the verifier only;
 *   - the input module, in the text of ir/print.c (read by ir/parse.c, so `%names` and comments
 *     are allowed);
 *   - a line `# expected:` and then the expected output: the module printed after the passes, or
 *     the diagnostics when the reader or a pass reports an error (located in NAME.ir).
 * The IR is verified after every pass; invalid IR after a pass fails the case. Run with
 * TILE_UPDATE_GOLDEN=1 to rewrite the expected part of every file from the current output (then
 * read the diff before committing it).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"
#include "testutil.h"

static const char expected_marker[] = "# expected:\n";

typedef struct Case {
    char names[16][32];
    int npasses;
    bool fixpoint;
    PassOptions options;     /* the target */
} Case;

/* Reads the `# passes:` and `# fixpoint` lines of the part before `# expected:`. */
static void read_header(const char *file, const char *text, size_t len, Case *c) {
    bool have_passes = false;
    for (const char *line = text; line < text + len;) {
        const char *eol = memchr(line, '\n', (size_t)(text + len - line));
        if (!eol) eol = text + len;
        if (strncmp(line, "# fixpoint", 10) == 0) c->fixpoint = true;
        if (strncmp(line, "# target:", 9) == 0) {
            Strbuf err = {0};
            cr_assert(target_parse(line + 9, (size_t)(eol - line - 9), &c->options.target, &err), "%s: %s", file,
                      sb_str(&err));
            sb_free(&err);
        }
        if (strncmp(line, "# passes:", 9) == 0) {
            have_passes = true;
            for (const char *p = line + 9; p < eol;) {
                while (p < eol && *p == ' ') p++;
                const char *w = p;
                while (p < eol && *p != ' ') p++;
                if (p == w) continue;
                cr_assert_lt(c->npasses, 16, "%s: too many passes", file);
                snprintf(c->names[c->npasses], sizeof c->names[0], "%.*s", (int)(p - w), w);
                cr_assert(passes_is_known(c->names[c->npasses]), "%s: unknown pass '%s'", file, c->names[c->npasses]);
                c->npasses++;
            }
        }
        line = eol + 1;
    }
    cr_assert(have_passes, "%s: no '# passes:' line", file);
}

/* Runs the case's passes on m; false (with the diagnostics in d) when a pass reports an error.
 * *changed says whether any pass changed the module. */
static bool run_passes(const char *file, const Case *c, IrModule *m, DiagList *d, bool *changed) {
    *changed = false;
    for (int i = 0; i < c->npasses; i++) {
        *changed |= passes_run_one(m, c->names[i], &c->options, d) > 0;
        if (d->errors) return false;
        DiagList vd = {0};
        cr_assert(ir_verify_module(m, &vd), "%s: invalid IR after %s:\n%s", file, c->names[i], sb_str(&vd.text));
        diag_free(&vd);
    }
    return true;
}

/* Checks one golden file; returns false on a mismatch (reported with cr_expect). */
static bool check_file(const char *dir, const char *name, bool update) {
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text;
    size_t len;
    const char *err;
    cr_assert(read_file(path, &text, &len, &err), "%s: %s", path, err);
    const char *marker = strstr(text, expected_marker);
    cr_assert(marker && (marker == text || marker[-1] == '\n'), "%s: no '# expected:' line", name);
    size_t input_len = (size_t)(marker - text);
    const char *expected = marker + strlen(expected_marker);

    Case c = {0};
    read_header(name, text, input_len, &c);
    DiagList d = {0};
    Strbuf out = {0};
    IrModule *m = ir_parse_module(name, text, input_len, &d);
    bool changed;
    if (m && run_passes(name, &c, m, &d, &changed)) {
        ir_print_module(m, &out);
        if (c.fixpoint) {
            cr_expect_not(run_passes(name, &c, m, &d, &changed) && changed, "%s: a second run changed the IR", name);
            Strbuf again = {0};
            ir_print_module(m, &again);
            cr_expect_str_eq(sb_str(&again), sb_str(&out), "%s: a second run changed the printed IR", name);
            sb_free(&again);
        }
    } else {
        sb_puts(&out, sb_str(&d.text));
    }
    bool ok = strcmp(sb_str(&out), expected) == 0;
    if (!ok && update) {
        FILE *f = fopen(path, "wb");
        cr_assert_not_null(f, "cannot write %s", path);
        fwrite(text, 1, (size_t)(expected - text), f);
        fwrite(sb_str(&out), 1, out.len, f);
        fclose(f);
        fprintf(stderr, "updated %s\n", name);
        ok = true;
    }
    cr_expect(ok, "%s: the output differs from the expected part.\n---- expected:\n%s---- got:\n%s", name, expected,
              sb_str(&out));
    ir_module_free(m);
    sb_free(&out);
    diag_free(&d);
    free(text);
    return ok;
}

static int compare_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

Test(pass_golden, every_file_of_tests_passes) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/passes", TILE_SOURCE_DIR);
    const char *env = getenv("TILE_UPDATE_GOLDEN");
    bool update = env && *env && strcmp(env, "0") != 0;
    DIR *dp = opendir(dir);
    cr_assert_not_null(dp, "cannot open %s", dir);
    char *names[1024];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)) && n < 1024) {
        size_t len = strlen(e->d_name);
        if (len > 3 && strcmp(e->d_name + len - 3, ".ir") == 0) names[n++] = xstrdup(e->d_name);
    }
    closedir(dp);
    qsort(names, (size_t)n, sizeof names[0], compare_names);
    cr_assert_geq(n, 15, "only %d golden files in %s", n, dir);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        failed += !check_file(dir, names[i], update);
        free(names[i]);
    }
    cr_assert_eq(failed, 0, "%d of %d golden files differ (TILE_UPDATE_GOLDEN=1 rewrites them)", failed, n);
}
