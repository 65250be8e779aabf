/*
 * ast.c: constructors of the abstract syntax tree and its S-expression dump.
 *
 * Every node and list lives in the AstFile's arena; lists grow by doubling into fresh arena
 * memory (the old array is simply abandoned, which costs at most as much as the list).
 *
 * The dump is meant for golden tests and debugging, so it is stable and compact: expressions
 * print on one line as prefix forms, `(+ a (* b c))`, and each statement of a block goes on
 * its own line, indented two spaces per level:
 *
 *   (kernel add <(const BN 256)> ((param a (tensor f32 N)) (param n i32)) (grid (call cdiv N BN)) (block
 *     (let i (+ (* (call block_id 0) BN) (call arange BN)))
 *     (= (index a i) (+ (index a i) 1))))
 *
 * Types print as `f32`, `(tensor f32 M K)` or `(tile f32 4 4)`; where a type is optional it is
 * prefixed with ':' (`(let x :f32 1)`). The recursion depth is bounded by the parser's limits;
 * as a last guard, subtrees deeper than AST_DUMP_MAX_DEPTH print as "...".
 */
#include "frontend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { AST_DUMP_MAX_DEPTH = 20000 };

AstNode *ast_new(AstFile *f, AstKind kind, SrcLoc loc) {
    AstNode *n = ARENA_NEW(&f->arena, AstNode);
    n->kind = kind;
    n->loc = loc;
    n->depth = 1;
    return n;
}

AstList *ast_list_new(AstFile *f) { return ARENA_NEW(&f->arena, AstList); }

void ast_list_push(AstFile *f, AstList *list, AstNode *node) {
    if (list->len == list->cap) {
        uint32_t cap = list->cap ? list->cap * 2 : 4;
        AstNode **items = ARENA_ARRAY(&f->arena, AstNode *, cap);
        if (list->len) memcpy(items, list->items, list->len * sizeof *items);
        list->items = items;
        list->cap = cap;
    }
    list->items[list->len++] = node;
}

void ast_file_free(AstFile *f) {
    if (!f) return;
    arena_free(&f->arena);
    free(f);
}

/* ---- dump ------------------------------------------------------------------------------- */
typedef struct Dumper {
    Strbuf *out;
    unsigned depth;
} Dumper;

static void dump_node(Dumper *d, const AstNode *n, int level);

/* Operator tokens print without the quotes token_name puts around them. */
static void dump_op(Dumper *d, int op) {
    const char *name = token_name(op);
    size_t len = strlen(name);
    if (len >= 2 && name[0] == '\'') sb_putn(d->out, name + 1, len - 2);
    else sb_puts(d->out, name);
}

/* The shortest decimal form that reads back as the same double (fixed notation for ordinary
 * magnitudes), always with a '.' or an exponent so that it cannot be mistaken for an integer. */
static void dump_float(Strbuf *out, double v) {
    char buf[64];
    if (isnan(v)) {
        sb_puts(out, "nan");
        return;
    }
    if (isinf(v)) {
        sb_puts(out, v < 0 ? "-inf" : "inf");
        return;
    }
    double magnitude = fabs(v);
    bool found = false;
    if (magnitude == 0 || (magnitude >= 1e-4 && magnitude < 1e15)) {
        for (int prec = 1; prec <= 20 && !found; prec++) {
            snprintf(buf, sizeof buf, "%.*f", prec, v);
            found = strtod(buf, NULL) == v;
        }
    }
    for (int prec = 1; prec <= 17 && !found; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        found = strtod(buf, NULL) == v;
    }
    sb_puts(out, buf);
    if (!strpbrk(buf, ".e")) sb_puts(out, ".0");
}

static void dump_items(Dumper *d, const AstList *list, int level) {
    if (!list) return;
    for (uint32_t i = 0; i < list->len; i++) {
        if (i) sb_putc(d->out, ' ');
        dump_node(d, list->items[i], level);
    }
}

/* " :T" for an optional type, nothing when absent. */
static void dump_optional_type(Dumper *d, const AstNode *type, int level) {
    if (!type) return;
    sb_puts(d->out, " :");
    dump_node(d, type, level);
}

static void dump_block(Dumper *d, const AstNode *n, int level) {
    sb_puts(d->out, "(block");
    for (uint32_t i = 0; n->args && i < n->args->len; i++) {
        sb_printf(d->out, "\n%*s", 2 * (level + 1), "");
        dump_node(d, n->args->items[i], level + 1);
    }
    sb_putc(d->out, ')');
}

static void dump_node(Dumper *d, const AstNode *n, int level) {
    Strbuf *out = d->out;
    if (!n) {
        sb_puts(out, "null");
        return;
    }
    if (d->depth >= AST_DUMP_MAX_DEPTH) {
        sb_puts(out, "...");
        return;
    }
    d->depth++;
    switch (n->kind) {
    case AST_INT:
        if (n->int_overflow) sb_puts(out, "(int-overflow)");
        else sb_printf(out, "%llu", (unsigned long long)(uint64_t)n->int_value);
        break;
    case AST_FLOAT: dump_float(out, n->float_value); break;
    case AST_BOOL: sb_puts(out, n->int_value ? "true" : "false"); break;
    case AST_NAME: sb_puts(out, n->name); break;
    case AST_UNARY:
    case AST_BINARY:
        sb_putc(out, '(');
        dump_op(d, n->op);
        sb_putc(out, ' ');
        dump_node(d, n->lhs, level);
        if (n->kind == AST_BINARY) {
            sb_putc(out, ' ');
            dump_node(d, n->rhs, level);
        }
        sb_putc(out, ')');
        break;
    case AST_CALL:
        sb_printf(out, "(call %s", n->name);
        if (n->type_arg) {
            sb_puts(out, " <");
            dump_node(d, n->type_arg, level);
            sb_putc(out, '>');
        }
        if (n->shape) {
            sb_puts(out, " (shape ");
            dump_items(d, n->shape, level);
            sb_putc(out, ')');
        }
        if (n->args && n->args->len) {
            sb_putc(out, ' ');
            dump_items(d, n->args, level);
        }
        sb_putc(out, ')');
        break;
    case AST_KWARG:
        sb_printf(out, "(kwarg %s ", n->name);
        dump_node(d, n->lhs, level);
        sb_putc(out, ')');
        break;
    case AST_INDEX:
        sb_puts(out, "(index ");
        dump_node(d, n->lhs, level);
        sb_putc(out, ' ');
        dump_items(d, n->args, level);
        sb_putc(out, ')');
        break;
    case AST_SLICE:
        sb_puts(out, "(slice ");
        dump_node(d, n->lhs, level);
        sb_putc(out, ' ');
        dump_node(d, n->rhs, level);
        sb_putc(out, ')');
        break;
    case AST_FULL_SLICE: sb_putc(out, ':'); break;
    case AST_LIST:
        sb_putc(out, '[');
        dump_items(d, n->args, level);
        sb_putc(out, ']');
        break;
    case AST_STRING: sb_printf(out, "\"%s\"", n->name); break;
    case AST_COND:
        sb_puts(out, "(? ");
        dump_node(d, n->cond, level);
        sb_putc(out, ' ');
        dump_node(d, n->lhs, level);
        sb_putc(out, ' ');
        dump_node(d, n->rhs, level);
        sb_putc(out, ')');
        break;
    case AST_BREAK: sb_puts(out, "(break)"); break;
    case AST_CONTINUE: sb_puts(out, "(continue)"); break;
    case AST_LET_TUPLE:
        sb_puts(out, "(let (");
        dump_items(d, n->args, level);
        sb_puts(out, ") ");
        dump_node(d, n->lhs, level);
        sb_putc(out, ')');
        break;
    case AST_TYPE:
        if (n->type_kind == TYPE_SCALAR) {
            sb_puts(out, n->elem);
        } else {
            sb_printf(out, "(%s %s ", n->type_kind == TYPE_TENSOR ? "tensor" : "tile", n->elem);
            dump_items(d, n->shape, level);
            sb_putc(out, ')');
        }
        break;
    case AST_LET:
    case AST_VAR:
        sb_printf(out, "(%s %s", n->kind == AST_LET ? "let" : "var", n->name);
        dump_optional_type(d, n->type, level);
        sb_putc(out, ' ');
        dump_node(d, n->lhs, level);
        sb_putc(out, ')');
        break;
    case AST_ASSIGN:
        sb_putc(out, '(');
        dump_op(d, n->op);
        sb_putc(out, ' ');
        dump_node(d, n->lhs, level);
        sb_putc(out, ' ');
        dump_node(d, n->rhs, level);
        sb_putc(out, ')');
        break;
    case AST_EXPR_STMT:
        sb_puts(out, "(expr ");
        dump_node(d, n->lhs, level);
        sb_putc(out, ')');
        break;
    case AST_FOR:
        sb_printf(out, "(for %s ", n->name);
        dump_node(d, n->lhs, level);
        sb_putc(out, ' ');
        dump_node(d, n->rhs, level);
        if (n->step) {
            sb_puts(out, " (step ");
            dump_node(d, n->step, level);
            sb_putc(out, ')');
        }
        if (n->pipeline) {
            sb_puts(out, " (pipeline ");
            dump_node(d, n->pipeline, level);
            if (n->args && n->args->len) sb_putc(out, ' ');
            dump_items(d, n->args, level);
            sb_putc(out, ')');
        }
        sb_putc(out, ' ');
        dump_node(d, n->body, level);
        sb_putc(out, ')');
        break;
    case AST_IF:
    case AST_WHILE:
        sb_puts(out, n->kind == AST_IF ? "(if " : "(while ");
        dump_node(d, n->cond, level);
        sb_putc(out, ' ');
        dump_node(d, n->body, level);
        if (n->else_body) {
            sb_putc(out, ' ');
            dump_node(d, n->else_body, level);
        }
        sb_putc(out, ')');
        break;
    case AST_RETURN:
        sb_puts(out, "(return");
        if (n->args) {
            sb_putc(out, ' ');
            dump_items(d, n->args, level);
        } else if (n->lhs) {
            sb_putc(out, ' ');
            dump_node(d, n->lhs, level);
        }
        sb_putc(out, ')');
        break;
    case AST_BLOCK: dump_block(d, n, level); break;
    case AST_PARAM:
        sb_printf(out, "(param %s", n->name);
        if (n->type) {
            sb_putc(out, ' ');
            dump_node(d, n->type, level);
        }
        sb_putc(out, ')');
        break;
    case AST_CONST_PARAM:
        sb_printf(out, "(const %s", n->name);
        dump_optional_type(d, n->type, level);
        if (n->lhs) {
            sb_putc(out, ' ');
            dump_node(d, n->lhs, level);
        }
        sb_putc(out, ')');
        break;
    case AST_KERNEL:
        sb_printf(out, "(kernel %s <", n->name);
        dump_items(d, n->const_params, level);
        sb_puts(out, "> (");
        dump_items(d, n->params, level);
        sb_puts(out, ") (grid ");
        dump_items(d, n->grid, level);
        sb_puts(out, ") ");
        if (n->warps) {
            sb_puts(out, "(warps ");
            dump_node(d, n->warps, level);
            sb_puts(out, ") ");
        }
        for (uint32_t i = 0; n->checks && i < n->checks->len; i++) {
            dump_node(d, n->checks->items[i], level);
            sb_putc(out, ' ');
        }
        dump_node(d, n->body, level);
        sb_putc(out, ')');
        break;
    case AST_FUNCTION:
        sb_printf(out, "(fn %s (", n->name);
        dump_items(d, n->params, level);
        sb_putc(out, ')');
        if (n->type) {
            sb_puts(out, " -> ");
            dump_node(d, n->type, level);
        }
        sb_putc(out, ' ');
        dump_node(d, n->body, level);
        sb_putc(out, ')');
        break;
    }
    d->depth--;
}

void ast_dump(const AstNode *node, Strbuf *out) {
    Dumper d = {out, 0};
    dump_node(&d, node, 0);
}
