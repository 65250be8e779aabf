/*
 * parse.c: the parser driver. It copies the source into a fresh AstFile, pulls tokens from
 * the lexer (lang/tile.re) and pushes them into the lemon parser (lang/tile.y), whose actions
 * build the AST in the file's arena.
 *
 * Errors stop the parse: the first lexical error, syntax error, too-deep nesting or too-deep
 * expression is reported once, with its location, and no further token is fed. Declarations
 * completed before the error stay in the file. This keeps diagnostics free of cascades; the
 * lowering is where most errors of a file are found and reported together.
 *
 * Syntax errors name the unexpected token and, where the set is small enough to help, what
 * the parser would have accepted: the grammar hands over the set of tokens its state can shift
 * or reduce on, and this file folds the well-known groups of that set ("an expression", "a
 * statement", "an operator", "a type") into words.
 */
#include "frontend.h"

#include "tile_parser.h"

#include <stdlib.h>
#include <string.h>

/* ---- depth bookkeeping ------------------------------------------------------------------ */
static uint32_t child_depth(const AstNode *n) {
    if (!n) return 0;
    if (n->kind != AST_TYPE) return n->depth;
    uint32_t depth = 0;
    for (uint32_t i = 0; n->shape && i < n->shape->len; i++)
        if (n->shape->items[i]->depth > depth) depth = n->shape->items[i]->depth;
    return depth + 1;
}

static uint32_t list_depth(const AstList *list) {
    uint32_t depth = 0;
    for (uint32_t i = 0; list && i < list->len; i++) {
        uint32_t d = child_depth(list->items[i]);
        if (d > depth) depth = d;
    }
    return depth;
}

AstNode *parse_expr_node(ParseState *ps, AstNode *node) {
    uint32_t depth = child_depth(node->lhs);
    uint32_t d;
    if ((d = child_depth(node->cond)) > depth) depth = d;
    if ((d = child_depth(node->rhs)) > depth) depth = d;
    if ((d = child_depth(node->type_arg)) > depth) depth = d;
    if ((d = list_depth(node->shape)) > depth) depth = d;
    if ((d = list_depth(node->args)) > depth) depth = d;
    node->depth = depth + 1;
    if (node->depth > PARSE_MAX_EXPR_DEPTH && !ps->failed) {
        diag_error(ps->diags, node->loc, "nesting too deep: an expression of more than %d levels", PARSE_MAX_EXPR_DEPTH);
        ps->failed = true;
    }
    return node;
}

void parse_nesting_error(ParseState *ps) {
    if (ps->failed) return;
    diag_error(ps->diags, ps->current.loc, "nesting too deep: the parser's stack of %d entries is exhausted",
               PARSE_STACK_DEPTH);
    ps->failed = true;
}

/* ---- syntax errors ---------------------------------------------------------------------- */
static const int expression_starts[] = {TK_INT, TK_FLOAT, TK_NAME, TK_TRUE, TK_FALSE, TK_LPAREN,
                                        TK_LBRACKET, TK_MINUS, TK_NOT, TK_TILDE, TK_CAST,
                                        TK_ZEROS, TK_ONES, TK_FULL, TK_BITCAST, TK_STRING,
                                        TK_SHARED};
static const int statement_starts[] = {TK_LET, TK_VAR, TK_FOR, TK_IF, TK_WHILE, TK_RETURN,
                                       TK_LBRACE, TK_BREAK, TK_CONTINUE};
static const int binary_operators[] = {TK_OROR, TK_ANDAND, TK_PIPE, TK_CARET, TK_AMP, TK_EQ,
                                       TK_NE, TK_LT, TK_LE, TK_GT, TK_GE, TK_SHL, TK_SHR,
                                       TK_PLUS, TK_MINUS, TK_STAR, TK_SLASH, TK_PERCENT,
                                       TK_LBRACKET, TK_QUESTION};
static const int assignment_operators[] = {TK_PLUS_ASSIGN, TK_MINUS_ASSIGN, TK_STAR_ASSIGN,
                                           TK_SLASH_ASSIGN, TK_PERCENT_ASSIGN, TK_AMP_ASSIGN,
                                           TK_PIPE_ASSIGN, TK_CARET_ASSIGN, TK_SHL_ASSIGN,
                                           TK_SHR_ASSIGN};
static const int type_starts[] = {TK_NAME, TK_TENSOR, TK_TILE};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static bool all_expected(const bool *expected, int ntokens, const int *codes, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (codes[i] >= ntokens || !expected[codes[i]]) return false;
    return true;
}

static void clear_expected(bool *expected, int ntokens, const int *codes, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (codes[i] < ntokens) expected[codes[i]] = false;
}

static void describe_token(Strbuf *sb, Token tok) {
    int n = tok.len > 32 ? 32 : (int)tok.len;
    const char *more = tok.len > 32 ? "..." : "";
    switch (tok.code) {
    case TK_NAME: sb_printf(sb, "identifier '%.*s%s'", n, tok.start, more); break;
    case TK_INT:
    case TK_FLOAT: sb_printf(sb, "%s '%.*s%s'", token_name(tok.code), n, tok.start, more); break;
    default: sb_puts(sb, token_name(tok.code)); break;
    }
}

enum { MAX_EXPECTED_WORDS = 5 };

void parse_syntax_error(ParseState *ps, Token tok, const bool *expected_in, int ntokens) {
    if (ps->failed) return;
    ps->failed = true;

    bool *expected = xcalloc((size_t)ntokens, sizeof *expected);
    memcpy(expected, expected_in, (size_t)ntokens * sizeof *expected);
    const char *words[MAX_EXPECTED_WORDS + 1];
    int nwords = 0;
    bool statement = all_expected(expected, ntokens, statement_starts, COUNT(statement_starts)) &&
                     all_expected(expected, ntokens, expression_starts, COUNT(expression_starts));
    bool expression = all_expected(expected, ntokens, expression_starts, COUNT(expression_starts));
    bool operator = all_expected(expected, ntokens, binary_operators, COUNT(binary_operators));
    bool assignment = all_expected(expected, ntokens, assignment_operators, COUNT(assignment_operators));
    bool type = all_expected(expected, ntokens, type_starts, COUNT(type_starts));
    if (type) {
        words[nwords++] = "a type";
        clear_expected(expected, ntokens, type_starts, COUNT(type_starts));
    }
    if (statement) {
        words[nwords++] = "a statement";
        clear_expected(expected, ntokens, statement_starts, COUNT(statement_starts));
    } else if (expression) {
        words[nwords++] = "an expression";
    }
    if (statement || expression) clear_expected(expected, ntokens, expression_starts, COUNT(expression_starts));
    if (operator) {
        words[nwords++] = "an operator";
        clear_expected(expected, ntokens, binary_operators, COUNT(binary_operators));
        /* after a name, '(' (a call) is one more postfix operator, like '[' */
        if (TK_LPAREN < ntokens) expected[TK_LPAREN] = false;
    }
    if (assignment) {
        /* '=' stays listed on its own: it is the one people forget */
        clear_expected(expected, ntokens, assignment_operators, COUNT(assignment_operators));
    }
    bool fits = true;
    for (int t = 1; t < ntokens; t++) {
        if (!expected[t]) continue;
        if (nwords == MAX_EXPECTED_WORDS) {
            fits = false;
            break;
        }
        words[nwords++] = token_name(t);
    }

    Strbuf msg = {0};
    if (!fits || nwords == 0) sb_puts(&msg, "syntax error: ");
    sb_puts(&msg, "unexpected ");
    describe_token(&msg, tok);
    if (fits && nwords > 0) {
        sb_puts(&msg, ", expected ");
        for (int i = 0; i < nwords; i++) {
            if (i) sb_puts(&msg, i == nwords - 1 ? " or " : ", ");
            sb_puts(&msg, words[i]);
        }
    }
    /* a keyword where a name fits: say that the word is reserved */
    const char *word = token_name(tok.code);
    if (TK_NAME < ntokens && expected_in[TK_NAME] && word[0] == '\'' &&
        ((word[1] >= 'a' && word[1] <= 'z') || word[1] == '_'))
        sb_printf(&msg, " ('%.*s' is a reserved word and cannot be used as a name)", (int)tok.len, tok.start);
    diag_error(ps->diags, tok.loc, "%s", sb_str(&msg));
    sb_free(&msg);
    free(expected);
}

/* ---- driver ----------------------------------------------------------------------------- */
AstFile *parse_source(const char *name, const char *text, size_t len, DiagList *d) {
    AstFile *f = ast_file_new(name, text, len);
    parse_file(f, d);
    return f;
}

AstFile *ast_file_new(const char *name, const char *text, size_t len) {
    AstFile *f = xcalloc(1, sizeof *f);
    arena_init(&f->arena);
    char *copy = arena_alloc(&f->arena, len + 1);
    if (len) memcpy(copy, text, len);
    copy[len] = '\0';
    f->source.name = arena_strdup(&f->arena, name ? name : "<input>");
    f->source.text = copy;
    f->source.len = len;
    return f;
}

void parse_file(AstFile *f, DiagList *d) {
    Lexer lx;
    lexer_init(&lx, &f->source, d);
    ParseState *psp = xcalloc(1, sizeof *psp); /* large: keep it off the C stack */
    ParseState ps_init = {.file = f, .diags = d, .saved_depth = -1};
    *psp = ps_init;
    void *parser = tile_parseAlloc(xmalloc);
    for (;;) {
        int errors_before = d->errors;
        Token tok = lexer_next(&lx);
        if (d->errors != errors_before) break;
        psp->current = tok;
        tile_parse_save(parser, psp);
        tile_parse(parser, tok.code, tok, psp);
        if (psp->failed || tok.code == 0) break;
    }
    tile_parseFree(parser, free);
    free(psp);
}
