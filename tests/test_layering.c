/*
 * test_layering.c: the project's layering rule (docs/ARCHITECTURE.md), checked on the sources.
 * support/ and ir/ depend on nothing else; frontend/, passes/ and backend/ depend on ir/ and not
 * on each other; runtime/ drives them; tools/ and examples/ use the public API only.
 *
 * Every #include line of every source file (.c, .h, .def, and the lexer and grammar sources of
 * lang/) under the checked folders is classified by what it names: a project folder (its first
 * path component: "ir/ir.h" is ir), the public API ("tile/tile.h", include/tile), LLVM's C API
 * (llvm-c/), the CUDA driver header (cuda.h), a file of the including file's own folder, the
 * generated parser header (tile_parser.h, which belongs to lang), a generated AOT header
 * ("NAME.tile.h", written by tilec's c-header from the public API), or a system header. The
 * table below says which of these each folder may name; anything else, including a quoted
 * include that resolves to none of them, is a violation reported with file and line. Only
 * direct includes are checked: a header a folder may include is itself checked in its folder.
 *
 * The one documented exception: bench/ times bare driver calls next to ours, so it may use the
 * runtime's internals (runtime/), which is how it reaches the driver.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "support/support.h"
#include "testutil.h"

typedef struct Rule {
    const char *folder;  /* relative to the source root */
    const char *allowed; /* space-separated dependencies */
    bool may_be_empty;   /* the folder has no C sources yet */
} Rule;

/* The layering, one row per folder. "self" (the folder's own files) and "system" headers are
 * always allowed. */
static const Rule rules[] = {
    {"support", "", false},
    {"ir", "support", false},
    {"lang", "frontend ir support", false}, /* the grammar's actions call the frontend's builders */
    {"frontend", "ir support lang", false},
    {"passes", "ir support", false},
    {"backend", "ir support llvm-c", false},
    {"runtime", "support ir lang frontend passes backend include/tile cuda.h", false},
    {"include/tile", "", false},
    {"tools", "include/tile", false},
    {"examples", "include/tile", false},
    {"stdlib", "include/tile", true},
    {"bench", "runtime include/tile", false}, /* the exception: bench may use runtime internals */
};
enum { NRULES = sizeof rules / sizeof rules[0] };

static const char *const project_folders[] = {"support", "ir", "lang", "frontend", "passes", "backend",
                                              "runtime", "tools", "examples", "stdlib", "bench", "tests"};

static bool word_in(const char *list, const char *word) {
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) return true;
    return false;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* What an include names: "self", "system", a dependency of the table, or "?" (unknown). dir is
 * the including file's directory, to resolve quoted names of its own folder. */
static const char *classify(const char *dir, const char *name, bool angle, char *buf, size_t cap) {
    if (strncmp(name, "llvm-c/", 7) == 0) return "llvm-c";
    if (strncmp(name, "tile/", 5) == 0) return "include/tile";
    if (strcmp(name, "cuda.h") == 0) return "cuda.h";
    if (angle) return "system";
    const char *slash = strchr(name, '/');
    if (!slash) {
        char path[1024];
        struct stat st;
        if (dir && (size_t)snprintf(path, sizeof path, "%s/%s", dir, name) < sizeof path && stat(path, &st) == 0)
            return "self";
        if (strcmp(name, "tile_parser.h") == 0) return "lang";
        if (ends_with(name, ".tile.h")) return "include/tile"; /* tilec c-header output */
        return "?";
    }
    size_t n = (size_t)(slash - name);
    for (size_t i = 0; i < sizeof project_folders / sizeof project_folders[0]; i++)
        if (strlen(project_folders[i]) == n && strncmp(name, project_folders[i], n) == 0) {
            snprintf(buf, cap, "%s", project_folders[i]);
            return buf;
        }
    return "?";
}

/* Checks the #include lines of one file's text against rule; violations are appended as
 * "file:line: message" lines. Returns the number of include lines seen. */
static int check_text(const Rule *rule, const char *dir, const char *file, const char *text, Strbuf *violations) {
    int includes = 0, line = 1;
    for (const char *p = text; *p; line++) {
        const char *end = strchr(p, '\n');
        if (!end) end = p + strlen(p);
        const char *q = p;
        while (q < end && (*q == ' ' || *q == '\t')) q++;
        if (q < end && *q == '#') {
            q++;
            while (q < end && (*q == ' ' || *q == '\t')) q++;
            if ((size_t)(end - q) > 7 && strncmp(q, "include", 7) == 0) {
                q += 7;
                while (q < end && (*q == ' ' || *q == '\t')) q++;
                char close = q < end && *q == '<' ? '>' : '"';
                const char *start = q + 1, *stop = start;
                while (stop < end && *stop != close) stop++;
                if (q < end && (*q == '<' || *q == '"') && stop < end) {
                    char name[512], buf[64];
                    snprintf(name, sizeof name, "%.*s", (int)(stop - start), start);
                    includes++;
                    const char *dep = classify(dir, name, close == '>', buf, sizeof buf);
                    bool ok = strcmp(dep, "self") == 0 || strcmp(dep, "system") == 0 ||
                              strcmp(dep, rule->folder) == 0 || word_in(rule->allowed, dep);
                    /* STYLE.md: only runtime/cuda*.c touches the Driver API */
                    if (ok && strcmp(dep, "cuda.h") == 0) {
                        const char *base = strrchr(file, '/');
                        ok = strncmp(base ? base + 1 : file, "cuda", 4) == 0;
                    }
                    if (!ok)
                        sb_printf(violations, "%s:%d: %s/ includes \"%s\" (%s), but may use only: %s\n", file, line,
                                  rule->folder, name, strcmp(dep, "?") == 0 ? "not a known folder" : dep,
                                  *rule->allowed ? rule->allowed : "nothing else");
                }
            }
        }
        p = *end ? end + 1 : end;
    }
    return includes;
}

static bool is_source(const char *name) {
    return ends_with(name, ".c") || ends_with(name, ".h") || ends_with(name, ".def") || ends_with(name, ".re") ||
           ends_with(name, ".y");
}

typedef struct Scan {
    int files, includes;
} Scan;

/* Checks every source file under root/rel (recursively). */
static void scan_folder(const Rule *rule, const char *root, const char *rel, Scan *scan, Strbuf *violations) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", root, rel);
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char path[1300], sub[1300];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        snprintf(sub, sizeof sub, "%s/%s", rel, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            scan_folder(rule, root, sub, scan, violations);
        } else if (S_ISREG(st.st_mode) && is_source(e->d_name)) {
            size_t len;
            char *text = test_read_source_file(sub, &len);
            scan->files++;
            scan->includes += check_text(rule, dir, sub, text, violations);
            free(text);
        }
    }
    closedir(d);
}

Test(layering, every_folder_includes_only_what_it_may) {
    Strbuf violations = {0};
    for (int i = 0; i < NRULES; i++) {
        Scan scan = {0};
        scan_folder(&rules[i], TILE_SOURCE_DIR, rules[i].folder, &scan, &violations);
        /* a folder that vanished or moved must not make the check pass vacuously */
        if (!rules[i].may_be_empty) {
            cr_expect_gt(scan.files, 0, "no sources found in %s/", rules[i].folder);
            cr_expect_gt(scan.includes, 0, "no #include found in %s/", rules[i].folder);
        }
    }
    cr_assert_eq(violations.len, 0, "layering violations (docs/ARCHITECTURE.md):\n%s", sb_str(&violations));
    sb_free(&violations);
}

static const Rule *rule_of(const char *folder) {
    for (int i = 0; i < NRULES; i++)
        if (strcmp(rules[i].folder, folder) == 0) return &rules[i];
    cr_assert_fail("no rule for %s", folder);
    return NULL;
}

/* The checker itself: each broken edge the rule forbids is caught, in any spelling of the
 * directive, and the allowed ones are not. */
Test(layering, the_checker_catches_forbidden_edges) {
    static const struct {
        const char *folder, *file, *text;
        bool violation;
    } cases[] = {
        {"backend", "backend/x.c", "#include \"passes/passes.h\"\n", true},
        {"backend", "backend/x.c", "#include \"frontend/frontend.h\"\n", true},
        {"passes", "passes/x.c", "  #  include \"backend/backend.h\"\n", true},
        {"passes", "passes/x.c", "#include \"frontend/frontend.h\"\n", true},
        {"frontend", "frontend/x.c", "#include \"passes/passes.h\"\n", true},
        {"frontend", "frontend/x.c", "#include \"backend/backend.h\"\n", true},
        {"ir", "ir/x.c", "#include \"passes/passes.h\"\n", true},
        {"support", "support/x.c", "#include \"ir/ir.h\"\n", true},
        {"passes", "passes/x.c", "#include <llvm-c/Core.h>\n", true},
        {"runtime", "runtime/api.c", "#include <cuda.h>\n", true},
        {"tools", "tools/x.c", "#include \"runtime/runtime.h\"\n", true},
        {"examples", "examples/x.c", "#include \"ir/ir.h\"\n", true},
        {"backend", "backend/x.c", "#include \"nowhere.h\"\n", true},
        {"backend", "backend/x.c", "#include \"ir/layout.h\"\n#include <llvm-c/Core.h>\n#include <string.h>\n", false},
        {"passes", "passes/x.c", "#include \"ir/axis.h\"\n#include \"support/support.h\"\n", false},
        {"frontend", "frontend/x.c", "#include \"tile_parser.h\"\n", false},
        {"runtime", "runtime/cuda.c", "#include <cuda.h>\n#include \"backend/backend.h\"\n", false},
        {"examples", "examples/aot/main.c", "#include \"softmax.tile.h\"\n#include \"tile/tile.h\"\n", false},
        {"bench", "bench/x.c", "#include \"runtime/runtime.h\"\n", false},
        {"backend", "backend/x.c", "/* #include \"passes/passes.h\" */\nx = \"#include <cuda.h>\";\n", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Strbuf v = {0};
        check_text(rule_of(cases[i].folder), NULL, cases[i].file, cases[i].text, &v);
        if (cases[i].violation) cr_expect_gt(v.len, 0, "case %zu (%s) not caught", i, cases[i].text);
        else cr_expect_eq(v.len, 0, "case %zu flagged: %s", i, sb_str(&v));
        sb_free(&v);
    }
}
