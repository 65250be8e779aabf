/*
 * autotune.c: a kernel's `autotune(...)` clause, read and checked.
 *
 *   kernel gemm<BM = 128, BN = 128, STAGES = 3, W = 4>(a: tensor<bf16>[M, K], ...)
 *     grid(...) warps(W)
 *     autotune(key = [M, N, K], config(), config(BN = 256, STAGES = 4, W = 8))
 *
 * The clause is a header clause like check(...): the grammar reads it as a call among the
 * kernel's checks (AstNode.checks), so the grammar needed no rule of its own, and this file
 * gives it its meaning. Its arguments are `key = [names]` (at most once; sizes of the kernel's
 * tensor parameters, whose launch values pick the shape bucket) and one `config(NAME = value,
 * ...)` per candidate, in order of preference: the first is what runs when nothing is timed.
 * A value is a literal (an integer, a float, true or false, with an optional minus sign), so
 * that a candidate means the same whatever other constants are given.
 *
 * autotune_read is the one reader: the lowering calls it for the diagnostics (every kernel
 * lowered, `tilec check` included, reports a bad clause), and the runtime (runtime/autotune.c)
 * calls it again on a kernel that compiled, to get the candidates. Bindings are kept sorted by
 * name with those equal to a literal default dropped, so two spellings of one configuration
 * compare equal: that is how duplicates are found, and the first candidate of stdlib's gemm
 * (`config()`, the defaults) is the kernel compiled without constants.
 */
#include "frontend.h"
#include "lower.h"

#include <stdlib.h>
#include <string.h>

#include "tile_parser.h"

bool autotune_is_clause(const AstNode *c) {
    return c && c->kind == AST_CALL && c->name && strcmp(c->name, "autotune") == 0;
}

/* A literal (with an optional minus sign) into *out; false when v is anything else. */
static bool literal_value(const AstNode *v, ConstBinding *out) {
    bool negate = false;
    if (v && v->kind == AST_UNARY && v->op == TK_MINUS) {
        negate = true;
        v = v->lhs;
    }
    if (!v) return false;
    if (v->kind == AST_INT && !v->int_overflow && (!negate || v->int_value >= 0)) {
        out->is_float = false;
        out->i = negate ? -v->int_value : v->int_value;
        return true;
    }
    if (v->kind == AST_FLOAT) {
        out->is_float = true;
        out->f = negate ? -v->float_value : v->float_value;
        return true;
    }
    if (v->kind == AST_BOOL && !negate) {
        out->is_float = false;
        out->i = v->int_value;
        return true;
    }
    return false;
}

static bool same_value(const ConstBinding *a, const ConstBinding *b) {
    return a->is_float == b->is_float && (a->is_float ? a->f == b->f : a->i == b->i);
}

static int compare_bindings(const void *a, const void *b) {
    return strcmp(((const ConstBinding *)a)->name, ((const ConstBinding *)b)->name);
}

static const AstNode *find_const_param(const AstNode *k, const char *name) {
    for (uint32_t i = 0; k->const_params && i < k->const_params->len; i++)
        if (strcmp(k->const_params->items[i]->name, name) == 0) return k->const_params->items[i];
    return NULL;
}

/* The names of k's constants or sizes, for messages: "BM, BN, K" ("none" when there are none). */
static void list_names(const AstNode *k, bool sizes, Strbuf *out) {
    size_t start = out->len;
    if (!sizes) {
        for (uint32_t i = 0; k->const_params && i < k->const_params->len; i++)
            sb_printf(out, "%s%s", out->len > start ? ", " : "", k->const_params->items[i]->name);
    } else {
        for (uint32_t i = 0; k->params && i < k->params->len; i++) {
            const AstNode *t = k->params->items[i]->type;
            for (uint32_t d = 0; t && t->type_kind == TYPE_TENSOR && t->shape && d < t->shape->len; d++) {
                const AstNode *n = t->shape->items[d];
                if (n->kind != AST_NAME || find_const_param(k, n->name)) continue;
                /* once each, in order of first use */
                bool seen = false;
                for (uint32_t j = 0; j <= i && !seen; j++) {
                    const AstNode *u = k->params->items[j]->type;
                    uint32_t end = j == i ? d : (u && u->type_kind == TYPE_TENSOR && u->shape ? u->shape->len : 0);
                    for (uint32_t e = 0; e < end && !seen; e++)
                        seen = u->shape->items[e]->kind == AST_NAME && strcmp(u->shape->items[e]->name, n->name) == 0;
                }
                if (!seen) sb_printf(out, "%s%s", out->len > start ? ", " : "", n->name);
            }
        }
    }
    if (out->len == start) sb_puts(out, "none");
}

/* `key = [M, N, K]`: the names into out; false after an error. */
static bool read_key(const AstNode *k, const AstNode *kw, Arena *arena, AutotuneSpec *out, DiagList *d) {
    const AstNode *list = kw->lhs;
    if (!list || list->kind != AST_LIST) {
        diag_error(d, list ? list->loc : kw->loc, "autotune: key takes a list of size names: key = [M, N, K]");
        return false;
    }
    bool ok = true;
    out->keys = ARENA_ARRAY(arena, const char *, list->args->len + 1);
    for (uint32_t i = 0; i < list->args->len; i++) {
        const AstNode *n = list->args->items[i];
        if (n->kind != AST_NAME) {
            diag_error(d, n->loc, "autotune: a key is the name of a size (M in tensor<f32>[M, K])");
            ok = false;
            continue;
        }
        if (!is_launch_size(k, n->name)) {
            Strbuf names = {0};
            list_names(k, true, &names);
            diag_error(d, n->loc, "autotune: key '%s' is not a size of kernel '%s''s tensor parameters%s (sizes: %s)",
                       n->name, k->name, find_const_param(k, n->name) ? "; it is a compile-time constant" : "",
                       sb_str(&names));
            sb_free(&names);
            ok = false;
            continue;
        }
        bool repeated = false;
        for (uint32_t j = 0; j < out->nkeys && !repeated; j++) repeated = strcmp(out->keys[j], n->name) == 0;
        if (repeated) {
            diag_error(d, n->loc, "autotune: key '%s' is listed twice", n->name);
            ok = false;
            continue;
        }
        out->keys[out->nkeys++] = n->name;
    }
    return ok;
}

/* `config(NAME = value, ...)`: one candidate into out->configs[out->nconfigs]; false after an
 * error. */
static bool read_config(const AstNode *k, const AstNode *c, Arena *arena, AutotuneSpec *out, DiagList *d) {
    uint32_t n = c->args ? c->args->len : 0;
    AutotuneConfig *cfg = &out->configs[out->nconfigs]; /* a slot a failed candidate may have used */
    memset(cfg, 0, sizeof *cfg);
    cfg->loc = c->loc;
    cfg->bindings = ARENA_ARRAY(arena, ConstBinding, n + 1);
    bool ok = true;
    if (c->type_arg || c->shape) {
        diag_error(d, c->loc, "autotune: a candidate is config(NAME = value, ...)");
        return false;
    }
    for (uint32_t i = 0; i < n; i++) {
        const AstNode *a = c->args->items[i];
        if (a->kind != AST_KWARG) {
            diag_error(d, a->loc, "autotune: config() takes bindings of compile-time constants: config(BM = 64)");
            ok = false;
            continue;
        }
        const AstNode *param = find_const_param(k, a->name);
        if (!param) {
            Strbuf names = {0};
            list_names(k, false, &names);
            diag_error(d, a->loc, "autotune: '%s' is not a compile-time constant of kernel '%s' (constants: %s)", a->name,
                       k->name, sb_str(&names));
            sb_free(&names);
            ok = false;
            continue;
        }
        ConstBinding b = {.name = a->name};
        if (!literal_value(a->lhs, &b)) {
            diag_error(d, a->lhs ? a->lhs->loc : a->loc,
                       "autotune: the value of '%s' must be a literal (an integer, a float, true or false)", a->name);
            ok = false;
            continue;
        }
        bool repeated = false;
        for (uint32_t j = 0; j < i && !repeated; j++)
            repeated = c->args->items[j]->kind == AST_KWARG && strcmp(c->args->items[j]->name, a->name) == 0;
        if (repeated) {
            diag_error(d, a->loc, "autotune: '%s' is bound twice in one candidate", a->name);
            ok = false;
            continue;
        }
        ConstBinding def = {0};
        if (param->lhs && literal_value(param->lhs, &def) && same_value(&def, &b)) continue; /* its default */
        cfg->bindings[cfg->nbindings++] = b;
    }
    qsort(cfg->bindings, cfg->nbindings, sizeof *cfg->bindings, compare_bindings);
    return ok;
}

static bool same_config(const AutotuneConfig *a, const AutotuneConfig *b) {
    if (a->nbindings != b->nbindings) return false;
    for (uint32_t i = 0; i < a->nbindings; i++)
        if (strcmp(a->bindings[i].name, b->bindings[i].name) != 0 || !same_value(&a->bindings[i], &b->bindings[i]))
            return false;
    return true;
}

/* Reads k's autotune clause: the keys and the candidates, in source order. Called by the
 * lowering for its diagnostics and by the runtime on kernels that compiled. */
bool autotune_read(const AstNode *k, Arena *arena, AutotuneSpec *out, DiagList *d) {
    memset(out, 0, sizeof *out);
    bool ok = true;
    for (uint32_t i = 0; k->checks && i < k->checks->len; i++) {
        const AstNode *c = k->checks->items[i];
        if (!autotune_is_clause(c)) continue;
        if (out->clause) {
            diag_error(d, c->loc, "kernel '%s' has a second autotune(...) clause; list every candidate in one", k->name);
            ok = false;
            continue;
        }
        out->clause = c;
    }
    const AstNode *c = out->clause;
    if (!c) return ok;
    uint32_t n = c->args ? c->args->len : 0;
    out->configs = ARENA_ARRAY(arena, AutotuneConfig, n + 1);
    const AstNode *key = NULL;
    uint32_t ordinal = 0; /* candidates seen, readable or not: the numbers in messages */
    for (uint32_t i = 0; i < n; i++) {
        const AstNode *a = c->args->items[i];
        if (a->kind == AST_KWARG && strcmp(a->name, "key") == 0) {
            if (key) {
                diag_error(d, a->loc, "autotune: key is given twice");
                ok = false;
            } else {
                key = a;
                ok = read_key(k, a, arena, out, d) && ok;
            }
        } else if (a->kind == AST_CALL && strcmp(a->name, "config") == 0) {
            if (out->nconfigs == AUTOTUNE_MAX_CONFIGS) {
                diag_error(d, a->loc, "autotune: at most %d candidates", AUTOTUNE_MAX_CONFIGS);
                ok = false;
                break;
            }
            ordinal++;
            if (!read_config(k, a, arena, out, d)) {
                ok = false;
                continue;
            }
            out->configs[out->nconfigs].ordinal = ordinal;
            for (uint32_t j = 0; j < out->nconfigs; j++)
                if (same_config(&out->configs[j], &out->configs[out->nconfigs])) {
                    diag_error(d, a->loc, "autotune: candidate %u is the same configuration as candidate %u",
                               ordinal, out->configs[j].ordinal);
                    ok = false;
                    break;
                }
            out->nconfigs++;
        } else {
            diag_error(d, a->loc, "autotune(...) takes key = [sizes] and candidates config(NAME = value, ...)");
            ok = false;
        }
    }
    if (ok && out->nconfigs == 0)
        diag_error(d, c->loc, "autotune(...) lists no candidates; add config(NAME = value, ...), the first one "
                   "being what runs untuned"), ok = false;
    return ok;
}
