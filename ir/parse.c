/*
 * parse.c: reads the IR text that ir/print.c writes back into a module, and verifies it.
 *
 * The text format is described atop ir/print.c (and in docs/IR.md). The reader is a
 * recursive-descent parser over a tokenizer with one token of lookahead: words (op names,
 * keywords, element types), integers, floats, `%values`, `@functions`, `->` and single
 * punctuation characters; `//` and `#` start comments that run to the end of the line. Op names
 * come from ir/ops.def, so a new op row needs no change here; attributes go through the rows of
 * ir/attr.def and the kinds of ir/attr.c, which print and read each kind in one place. Only the
 * ops with their own syntax are spelled out: const (its value), call (its callee) and the
 * region ops for, if and while.
 *
 * Values are names: `%7` or `%x`. Each function has its own names; a kernel's grid and body each
 * start from the parameters again (as the printer numbers them). A name is bound when its
 * definition is read (region arguments on entry, results after their op); a use must follow
 * its definition in the text, and whether it is visible there is the verifier's business. A
 * call may name a function defined later in the file; calls are resolved at the end.
 *
 * Errors: the first one ends the parse. It is reported as `file:line:col: error: ...` with the
 * source line and a caret, and the reader unwinds with longjmp to ir_parse_module, which frees
 * the half-built module. A module that parses is then verified; its ops carry the locations of
 * their text, so the verifier's messages point into the file too. The text is copied into the
 * module's arena, so those locations stay valid as long as the module.
 *
 * Kernel parameters get the names `arg0`, `arg1`, ... unless the text names them (`%alpha`);
 * the runtime binds scalar arguments by these names.
 */
#include "ir/layout.h"
#include "ir/text.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef enum {
    TOK_EOF,
    TOK_WORD,    /* [A-Za-z_][A-Za-z0-9_]* */
    TOK_INT,     /* -?[0-9]+ */
    TOK_FLOAT,   /* -?[0-9]+(.[0-9]*)?(e[+-]?[0-9]+)? with a '.' or an exponent */
    TOK_VALUE,   /* %name: start/len exclude the '%' */
    TOK_FUNC,    /* @name: start/len exclude the '@' */
    TOK_ARROW,   /* -> */
    TOK_PUNCT,   /* one character: ( ) [ ] { } < > , : = ? - */
    TOK_STRING,  /* "printable ASCII without quotes": start/len exclude the quotes */
} TokKind;

typedef struct Tok {
    TokKind kind;
    const char *start;
    size_t len;
    SrcLoc loc;
} Tok;

/* A call whose callee is resolved once every function is read. */
typedef struct PendingCall {
    IrOp *op;
    const char *callee;
    SrcLoc loc;
} PendingCall;

struct IrReader {
    IrModule *m;
    DiagList *d;
    const SourceFile *file;   /* in the module's arena */
    const char *pos, *end;
    uint32_t line;
    const char *line_start;
    Tok tok;                  /* the lookahead, valid when have_tok */
    bool have_tok;
    jmp_buf fail;
    StrMap values;            /* name -> IrValue*, per function part (grid, body) */
    Arena scratch;            /* the growing lists below: freed at the end, error or not */
    VEC(PendingCall) calls;
    IrBuilder b;
    int depth;                /* regions open */
};

/* A growable list in the reader's scratch arena: the parser may leave by longjmp at any point, so
 * nothing it holds while reading is on the heap. */
#define PUSH(r, v, x)                                                                              \
    do {                                                                                           \
        if ((v)->len == (v)->cap) {                                                                \
            size_t cap_ = (v)->cap ? 2 * (v)->cap : 8;                                             \
            void *data_ = arena_alloc(&(r)->scratch, cap_ * sizeof *(v)->data);                    \
            if ((v)->len) memcpy(data_, (v)->data, (v)->len * sizeof *(v)->data);                  \
            (v)->data = data_;                                                                     \
            (v)->cap = cap_;                                                                       \
        }                                                                                          \
        (v)->data[(v)->len++] = (x);                                                               \
    } while (0)

/* ---- tokens ------------------------------------------------------------------------------------ */
static bool is_word_start(int c) { return isalpha(c) || c == '_'; }
static bool is_word_char(int c) { return isalnum(c) || c == '_'; }

static void skip_space_and_comments(IrReader *r) {
    for (;;) {
        while (r->pos < r->end && (*r->pos == ' ' || *r->pos == '\t' || *r->pos == '\r' || *r->pos == '\n')) {
            if (*r->pos == '\n') {
                r->line++;
                r->line_start = r->pos + 1;
            }
            r->pos++;
        }
        if (r->pos < r->end && (*r->pos == '#' || (*r->pos == '/' && r->pos + 1 < r->end && r->pos[1] == '/'))) {
            while (r->pos < r->end && *r->pos != '\n') r->pos++;
            continue;
        }
        return;
    }
}

static SrcLoc here(const IrReader *r) {
    return (SrcLoc){r->file, r->line, (uint32_t)(r->pos - r->line_start) + 1};
}

static TILE_NORETURN void fail_at(IrReader *r, SrcLoc loc, const char *fmt, ...) TILE_PRINTF(3, 4);
static TILE_NORETURN void fail_at(IrReader *r, SrcLoc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_vreport(r->d, DIAG_ERROR, loc, fmt, ap);
    va_end(ap);
    longjmp(r->fail, 1);
}

static void lex(IrReader *r, Tok *t) {
    skip_space_and_comments(r);
    const char *p = r->pos;
    *t = (Tok){.start = p, .loc = here(r)};
    if (p == r->end) {
        t->kind = TOK_EOF;
        return;
    }
    unsigned char c = (unsigned char)*p;
    if (c == '%' || c == '@') {
        const char *q = p + 1;
        while (q < r->end && (is_word_char((unsigned char)*q) || *q == '.')) q++; /* @square.1 */
        if (q == p + 1) fail_at(r, t->loc, "expected a name after '%c'", c);
        t->kind = c == '%' ? TOK_VALUE : TOK_FUNC;
        t->start = p + 1;
        t->len = (size_t)(q - p - 1);
        r->pos = q;
        return;
    }
    if (is_word_start(c)) {
        const char *q = p;
        while (q < r->end && is_word_char((unsigned char)*q)) q++;
        t->kind = TOK_WORD;
        t->len = (size_t)(q - p);
        r->pos = q;
        return;
    }
    if (c == '-' && p + 1 < r->end && p[1] == '>') {
        t->kind = TOK_ARROW;
        t->len = 2;
        r->pos = p + 2;
        return;
    }
    if (isdigit(c) || (c == '-' && p + 1 < r->end && isdigit((unsigned char)p[1]))) {
        const char *q = p + 1;
        while (q < r->end && isdigit((unsigned char)*q)) q++;
        t->kind = TOK_INT;
        if (q < r->end && *q == '.') {
            t->kind = TOK_FLOAT;
            q++;
            while (q < r->end && isdigit((unsigned char)*q)) q++;
        }
        if (q < r->end && (*q == 'e' || *q == 'E')) {
            const char *e = q + 1;
            if (e < r->end && (*e == '+' || *e == '-')) e++;
            if (e < r->end && isdigit((unsigned char)*e)) {
                t->kind = TOK_FLOAT;
                q = e;
                while (q < r->end && isdigit((unsigned char)*q)) q++;
            }
        }
        t->len = (size_t)(q - p);
        r->pos = q;
        return;
    }
    if (c == '"') {
        const char *q = p + 1;
        while (q < r->end && *q != '"' && *q != '\n' && isprint((unsigned char)*q)) q++;
        if (q == r->end || *q != '"') fail_at(r, t->loc, "unterminated string");
        t->kind = TOK_STRING;
        t->start = p + 1;
        t->len = (size_t)(q - p - 1);
        r->pos = q + 1;
        return;
    }
    if (strchr("()[]{}<>,:=?-*", c) && c) {
        t->kind = TOK_PUNCT;
        t->len = 1;
        r->pos = p + 1;
        return;
    }
    if (isprint(c)) fail_at(r, t->loc, "unexpected character '%c'", c);
    fail_at(r, t->loc, "unexpected byte 0x%02x", c);
}

static const Tok *peek(IrReader *r) {
    if (!r->have_tok) {
        lex(r, &r->tok);
        r->have_tok = true;
    }
    return &r->tok;
}

static Tok next(IrReader *r) {
    Tok t = *peek(r);
    r->have_tok = false;
    return t;
}

static bool tok_is(const Tok *t, TokKind kind, const char *text) {
    return t->kind == kind && strlen(text) == t->len && memcmp(t->start, text, t->len) == 0;
}

/* The token as the user wrote it, for messages. */
static const char *describe(const Tok *t, char *buf, size_t cap) {
    if (t->kind == TOK_EOF) return "the end of the file";
    size_t n = t->len + (t->kind == TOK_VALUE || t->kind == TOK_FUNC);
    const char *s = t->kind == TOK_VALUE || t->kind == TOK_FUNC ? t->start - 1 : t->start;
    if (n > cap - 3) n = cap - 3;
    snprintf(buf, cap, "'%.*s'", (int)n, s);
    return buf;
}

static TILE_NORETURN void expected(IrReader *r, const char *what) {
    char buf[48];
    const Tok *t = peek(r);
    fail_at(r, t->loc, "expected %s, found %s", what, describe(t, buf, sizeof buf));
}

/* ---- the reader interface of ir/text.h ----------------------------------------------------- */
SrcLoc ir_reader_loc(IrReader *r) { return peek(r)->loc; }

void ir_reader_error(IrReader *r, SrcLoc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_vreport(r->d, DIAG_ERROR, loc, fmt, ap);
    va_end(ap);
    longjmp(r->fail, 1);
}

bool ir_reader_accept_word(IrReader *r, const char *word) {
    if (!tok_is(peek(r), TOK_WORD, word)) return false;
    next(r);
    return true;
}

bool ir_reader_accept(IrReader *r, char c) {
    char s[2] = {c, 0};
    if (!tok_is(peek(r), TOK_PUNCT, s)) return false;
    next(r);
    return true;
}

void ir_reader_expect(IrReader *r, char c) {
    if (ir_reader_accept(r, c)) return;
    char what[8];
    snprintf(what, sizeof what, "'%c'", c);
    expected(r, what);
}

bool ir_reader_at_int(IrReader *r) { return peek(r)->kind == TOK_INT; }

/* Integers read as int64; unsigned constants up to 2^64 - 1 read as their bits. */
static int64_t token_int(IrReader *r, const Tok *t, bool allow_unsigned) {
    char buf[32];
    if (t->len >= sizeof buf) fail_at(r, t->loc, "integer out of range");
    memcpy(buf, t->start, t->len);
    buf[t->len] = 0;
    errno = 0;
    char *end;
    long long v = strtoll(buf, &end, 10);
    if (errno == ERANGE && allow_unsigned && buf[0] != '-') {
        errno = 0;
        unsigned long long u = strtoull(buf, &end, 10);
        if (errno == 0) return (int64_t)u;
    }
    if (errno == ERANGE) fail_at(r, t->loc, "integer out of range: %s", buf);
    return v;
}

int64_t ir_reader_int(IrReader *r, const char *what) {
    if (peek(r)->kind != TOK_INT) expected(r, what);
    Tok t = next(r);
    return token_int(r, &t, false);
}

void ir_reader_word(IrReader *r, const char *what, char *buf, size_t cap) {
    if (peek(r)->kind != TOK_WORD) expected(r, what);
    Tok t = next(r);
    size_t n = t.len < cap - 1 ? t.len : cap - 1;
    memcpy(buf, t.start, n);
    buf[n] = 0;
}

const char *ir_reader_string(IrReader *r, const char *what) {
    if (peek(r)->kind != TOK_STRING) expected(r, what);
    Tok t = next(r);
    return arena_strndup(&r->m->arena, t.start, t.len);
}

IrFunction *ir_reader_function(IrReader *r) { return r->b.function; }

static void expect_word(IrReader *r, const char *word) {
    if (ir_reader_accept_word(r, word)) return;
    char what[40];
    snprintf(what, sizeof what, "'%s'", word);
    expected(r, what);
}

/* A bounded integer: sizes, axes, warps. */
static int64_t read_int_in(IrReader *r, const char *what, int64_t lo, int64_t hi) {
    SrcLoc loc = peek(r)->loc;
    int64_t v = ir_reader_int(r, what);
    if (v < lo || v > hi) fail_at(r, loc, "%s %lld out of range [%lld, %lld]", what, (long long)v, (long long)lo, (long long)hi);
    return v;
}

/* ---- types -------------------------------------------------------------------------------------- */
#define MAX_DIM ((int64_t)1 << 31)
#define MAX_ELEMENTS ((int64_t)1 << 40)

static ElemType read_elem(IrReader *r) {
    if (peek(r)->kind != TOK_WORD) expected(r, "an element type");
    Tok t = next(r);
    ElemType e;
    if (!elem_parse(t.start, t.len, &e)) fail_at(r, t.loc, "unknown element type '%.*s'", (int)t.len, t.start);
    return e;
}

/* `[d0, d1, ...]` of sizes >= 1 into t->shape. */
static void read_shape(IrReader *r, IrType *t) {
    SrcLoc loc = peek(r)->loc;
    ir_reader_expect(r, '[');
    int64_t elements = 1;
    if (!ir_reader_accept(r, ']')) {
        do {
            if (t->rank == IR_MAX_RANK) fail_at(r, loc, "more than %d dimensions", IR_MAX_RANK);
            int64_t n = read_int_in(r, "size", 1, MAX_DIM);
            if (n > MAX_ELEMENTS / elements) fail_at(r, loc, "more than 2^40 elements");
            elements *= n;
            t->shape[t->rank++] = n;
        } while (ir_reader_accept(r, ','));
        ir_reader_expect(r, ']');
    }
}

/* A layout in braces right after a shape: `{spatial(32) * local(2)}`. Layout text has no braces,
 * so it runs to the next '}' and goes to layout_parse / shared_layout_parse as it is. */
static bool at_layout(IrReader *r) { return !r->have_tok && r->pos < r->end && *r->pos == '{'; }

static const char *layout_text(IrReader *r, SrcLoc *loc) {
    *loc = here(r);
    const char *close = memchr(r->pos, '}', (size_t)(r->end - r->pos));
    const char *nl = memchr(r->pos, '\n', (size_t)(r->end - r->pos));
    if (!close || (nl && nl < close)) fail_at(r, *loc, "layout without its closing '}' on the same line");
    return r->pos + 1;
}

static void layout_done(IrReader *r, const char *end, SrcLoc loc, const char *what) {
    while (*end == ' ' || *end == '\t') end++;
    if (*end != '}') fail_at(r, loc, "invalid %s", what);
    r->pos = end + 1;
}

static void read_tile_layout(IrReader *r, IrType *t) {
    SrcLoc loc;
    const char *text = layout_text(r, &loc), *end;
    const Layout *l;
    if (!layout_parse(&r->m->arena, text, &l, &end)) fail_at(r, loc, "invalid layout");
    layout_done(r, end, loc, "layout");
    if (layout_rank(l) != t->rank || memcmp(layout_shape(l), t->shape, sizeof(int64_t) * (size_t)t->rank) != 0)
        fail_at(r, loc, "the layout's shape differs from the tile's");
    /* The general form can say anything; the code generator relies on every element being held. */
    if (!layout_is_exact(l)) fail_at(r, loc, "the layout does not hold every element of the tile the same number of times");
    t->layout = l;
}

static void read_shared_layout(IrReader *r, IrType *t) {
    SrcLoc loc;
    const char *text = layout_text(r, &loc), *end;
    const SharedLayout *l;
    if (!shared_layout_parse(&r->m->arena, text, &l, &end)) fail_at(r, loc, "invalid shared layout");
    layout_done(r, end, loc, "shared layout");
    if (l->rank != t->rank || memcmp(l->shape, t->shape, sizeof(int64_t) * (size_t)t->rank) != 0)
        fail_at(r, loc, "the shared layout's shape differs from the tile's");
    t->shared = l;
}

/* Reads a type. For kernel parameters (param != NULL) a tensor's sizes are dim specs (`[M, 64]`),
 * else `?`; *unspecified is set when a parameter's tensor shows `?`. */
static const IrType *read_type_or_param(IrReader *r, IrParam *param, bool *unspecified) {
    if (peek(r)->kind != TOK_WORD) expected(r, "a type");
    Tok t = next(r);
    IrType type = {0};
    if (tok_is(&t, TOK_WORD, "tile") || tok_is(&t, TOK_WORD, "shared")) {
        type.kind = t.start[0] == 't' ? TY_TILE : TY_SHARED;
        ir_reader_expect(r, '<');
        type.elem = read_elem(r);
        ir_reader_expect(r, '>');
        read_shape(r, &type);
        if (at_layout(r)) {
            if (type.kind == TY_SHARED) read_shared_layout(r, &type);
            else if (type.rank > 0) read_tile_layout(r, &type);
        }
        return ir_type_intern(r->m, &type);
    }
    if (tok_is(&t, TOK_WORD, "tensor")) {
        type.kind = TY_TENSOR;
        ir_reader_expect(r, '<');
        type.elem = read_elem(r);
        ir_reader_expect(r, '>');
        SrcLoc loc = peek(r)->loc;
        ir_reader_expect(r, '[');
        int questions = 0;
        if (!ir_reader_accept(r, ']')) {
            do {
                if (type.rank == IR_MAX_RANK) fail_at(r, loc, "more than %d dimensions", IR_MAX_RANK);
                IrDimSpec *dim = param ? &param->dims[type.rank] : NULL;
                type.rank++;
                if (ir_reader_accept(r, '?')) {
                    questions++;
                } else if (!param) {
                    expected(r, "'?'");
                } else if (peek(r)->kind == TOK_WORD) {
                    Tok s = next(r);
                    dim->symbol = arena_strndup(&r->m->arena, s.start, s.len);
                } else {
                    dim->size = read_int_in(r, "size", 1, MAX_DIM);
                }
            } while (ir_reader_accept(r, ','));
            ir_reader_expect(r, ']');
        }
        if (param && questions && questions != type.rank)
            fail_at(r, loc, "a parameter's sizes are all '?' or all given");
        if (unspecified) *unspecified = questions > 0;
        return ir_type_intern(r->m, &type);
    }
    ElemType e;
    if (!elem_parse(t.start, t.len, &e)) fail_at(r, t.loc, "unknown type '%.*s'", (int)t.len, t.start);
    return ir_scalar_type(r->m, e);
}

static const IrType *read_type(IrReader *r) { return read_type_or_param(r, NULL, NULL); }

/* `(T, ...)` after an arrow, into a heap array of *n types. */
static const IrType **read_type_tuple(IrReader *r, uint32_t *n) {
    VEC(const IrType *) types = {0};
    ir_reader_expect(r, '(');
    if (!ir_reader_accept(r, ')')) {
        do {
            const IrType *t = read_type(r);
            PUSH(r, &types, t);
        } while (ir_reader_accept(r, ','));
        ir_reader_expect(r, ')');
    }
    *n = (uint32_t)types.len;
    const IrType **out = ARENA_ARRAY(&r->m->arena, const IrType *, types.len + 1);
    if (types.len) memcpy(out, types.data, sizeof *out * types.len);
    return out;
}

/* ---- values ------------------------------------------------------------------------------------ */
static const char *value_key(IrReader *r, const Tok *t) { return arena_strndup(&r->m->arena, t->start, t->len); }

static void define(IrReader *r, const Tok *name, IrValue *v) {
    const char *key = value_key(r, name);
    if (strmap_has(&r->values, key)) fail_at(r, name->loc, "value %%%s is defined twice", key);
    strmap_put(&r->values, key, v);
}

static Tok read_value_name(IrReader *r) {
    if (peek(r)->kind != TOK_VALUE) expected(r, "a value (%name)");
    return next(r);
}

static IrValue *read_use(IrReader *r) {
    Tok t = read_value_name(r);
    IrValue *v = strmap_get(&r->values, value_key(r, &t));
    if (!v) fail_at(r, t.loc, "use of undefined value %%%.*s", (int)t.len, t.start);
    return v;
}

/* ---- ops ----------------------------------------------------------------------------------------- */
static void read_region_body(IrReader *r, IrRegion *region);

static bool lookup_op(const Tok *t, OpCode *out) {
    for (int i = 0; i < OP_COUNT; i++)
        if (tok_is(t, TOK_WORD, ir_op_info[i].name)) {
            *out = (OpCode)i;
            return true;
        }
    return false;
}

typedef VEC(IrValue *) ValueVec;
typedef VEC(Tok) TokVec;

/* Builds the op with the current builder position and location, then copies the attributes read
 * into `attrs` and binds the result names. */
static IrOp *build(IrReader *r, OpCode code, const ValueVec *operands, const IrType **types, uint32_t ntypes,
                   const TokVec *results, SrcLoc loc) {
    if (results->len != ntypes)
        fail_at(r, loc, "%zu result name%s for %u result type%s", results->len, results->len == 1 ? "" : "s", ntypes,
                ntypes == 1 ? "" : "s");
    r->b.loc = loc;
    IrOp *op = ir_build(&r->b, code, operands->data, (uint32_t)operands->len, types, ntypes);
    op->loc = loc;
    return op;
}

static void bind_results(IrReader *r, IrOp *op, const TokVec *results) {
    for (uint32_t i = 0; i < op->nresults; i++) define(r, &results->data[i], op->results[i]);
}

/* Nesting deeper than this is refused: the reader, the verifier and the passes recurse per
 * region, and the frontend never nests more than a few levels. */
enum { MAX_REGION_DEPTH = 200 };

static void read_region(IrReader *r, IrRegion *region) {
    SrcLoc loc = peek(r)->loc;
    ir_reader_expect(r, '{');
    if (++r->depth > MAX_REGION_DEPTH) fail_at(r, loc, "regions nested more than %d deep", MAX_REGION_DEPTH);
    IrBuilder saved = r->b;
    read_region_body(r, region);
    r->b = saved;
    ir_reader_expect(r, '}');
    r->depth--;
}

/* for %iv = %lo to %hi step %s [iter(%a = %x, ...)] [-> (T, ...)] [attributes] { ... } */
/* `%name = %use, ...)` after the '(' of a for's iter or a while: region argument names and the
 * values they start from. */
static void read_bindings(IrReader *r, TokVec *args, ValueVec *operands) {
    do {
        PUSH(r, args, read_value_name(r));
        ir_reader_expect(r, '=');
        PUSH(r, operands, read_use(r));
    } while (ir_reader_accept(r, ','));
    ir_reader_expect(r, ')');
}

/* `-> (types)` when present; NULL and *n = 0 otherwise. */
static const IrType **read_result_types(IrReader *r, uint32_t *n) {
    *n = 0;
    if (peek(r)->kind != TOK_ARROW) return NULL;
    next(r);
    return read_type_tuple(r, n);
}

static void read_for(IrReader *r, const TokVec *results, SrcLoc loc) {
    ValueVec operands = {0};
    TokVec args = {0};
    Tok iv = read_value_name(r);
    ir_reader_expect(r, '=');
    PUSH(r, &operands, read_use(r));
    expect_word(r, "to");
    PUSH(r, &operands, read_use(r));
    expect_word(r, "step");
    PUSH(r, &operands, read_use(r));
    if (ir_reader_accept_word(r, "iter")) {
        ir_reader_expect(r, '(');
        read_bindings(r, &args, &operands);
    }
    uint32_t ntypes = 0;
    const IrType **types = read_result_types(r, &ntypes);
    IrOp tmp = {.code = OP_FOR};
    ir_attrs_parse(r, &tmp, ATTR_SUFFIX, false);
    if (ntypes != args.len) fail_at(r, loc, "for: %zu carried values but %u result types", args.len, ntypes);
    IrOp *op = build(r, OP_FOR, &operands, types, ntypes, results, loc);
    memcpy(op->ints, tmp.ints, sizeof op->ints);
    op->nints = tmp.nints;
    IrRegion *body = ir_op_add_region(op);
    define(r, &iv, ir_region_add_arg(body, operands.data[0]->type, NULL));
    for (size_t i = 0; i < args.len; i++) define(r, &args.data[i], ir_region_add_arg(body, types[i], NULL));
    read_region(r, body);
    bind_results(r, op, results);
}

/* if %c [-> (T, ...)] { ... } [else { ... }] */
static void read_if(IrReader *r, const TokVec *results, SrcLoc loc) {
    ValueVec operands = {0};
    PUSH(r, &operands, read_use(r));
    uint32_t ntypes = 0;
    const IrType **types = NULL;
    if (peek(r)->kind == TOK_ARROW) {
        next(r);
        types = read_type_tuple(r, &ntypes);
    }
    IrOp *op = build(r, OP_IF, &operands, types, ntypes, results, loc);
    read_region(r, ir_op_add_region(op));
    if (ir_reader_accept_word(r, "else")) read_region(r, ir_op_add_region(op));
    bind_results(r, op, results);
}

/* while (%a = %x, ...) [-> (T, ...)] { ... condition ... } do (%b: T, ...) { ... yield ... } */
static void read_while(IrReader *r, const TokVec *results, SrcLoc loc) {
    ValueVec operands = {0};
    TokVec args = {0};
    ir_reader_expect(r, '(');
    if (!ir_reader_accept(r, ')')) read_bindings(r, &args, &operands);
    uint32_t ntypes = 0;
    const IrType **types = read_result_types(r, &ntypes);
    IrOp *op = build(r, OP_WHILE, &operands, types, ntypes, results, loc);
    IrRegion *before = ir_op_add_region(op);
    for (size_t i = 0; i < args.len; i++) define(r, &args.data[i], ir_region_add_arg(before, operands.data[i]->type, NULL));
    read_region(r, before);
    expect_word(r, "do");
    IrRegion *after = ir_op_add_region(op);
    ir_reader_expect(r, '(');
    if (!ir_reader_accept(r, ')')) {
        do {
            Tok name = read_value_name(r);
            ir_reader_expect(r, ':');
            define(r, &name, ir_region_add_arg(after, read_type(r), NULL));
        } while (ir_reader_accept(r, ','));
        ir_reader_expect(r, ')');
    }
    read_region(r, after);
    bind_results(r, op, results);
}

/* warp_roles role(warps W[, regs R]) { ... } ...: ints[2k] = W, ints[2k+1] = R (0 when absent) */
static void read_warp_roles(IrReader *r, const TokVec *results, SrcLoc loc) {
    ValueVec operands = {0};
    IrOp *op = build(r, OP_WARP_ROLES, &operands, NULL, 0, results, loc);
    do {
        expect_word(r, "role");
        if (op->nregions == IR_MAX_ROLES) fail_at(r, loc, "warp_roles: more than %d roles", IR_MAX_ROLES);
        ir_reader_expect(r, '(');
        expect_word(r, "warps");
        op->ints[op->nints++] = read_int_in(r, "a warp count", 1, 32);
        op->ints[op->nints] = 0;
        if (ir_reader_accept(r, ',')) {
            expect_word(r, "regs");
            op->ints[op->nints] = read_int_in(r, "a register budget", 0, 256);
        }
        op->nints++;
        ir_reader_expect(r, ')');
        read_region(r, ir_op_add_region(op));
    } while (tok_is(peek(r), TOK_WORD, "role"));
}

/* The constant of `const`: an integer, a float, true/false, nan/inf with an optional '-'. It is
 * read before its type, so it stays a token until the type is known. */
static IrConst read_const_value(IrReader *r, const IrType *type, const Tok *t, bool negative) {
    IrConst c = {0};
    ElemType e = type->elem;
    if (t->kind == TOK_WORD) {
        if (!negative && (tok_is(t, TOK_WORD, "true") || tok_is(t, TOK_WORD, "false"))) {
            c.i = t->start[0] == 't';
        } else if (tok_is(t, TOK_WORD, "nan") || tok_is(t, TOK_WORD, "inf")) {
            c.is_float = true;
            c.f = t->start[0] == 'n' ? NAN : INFINITY;
            if (negative) c.f = -c.f;
        } else {
            fail_at(r, t->loc, "expected a constant, found '%.*s'", (int)t->len, t->start);
        }
    } else if (t->kind == TOK_FLOAT) {
        char buf[64];
        if (t->len >= sizeof buf) fail_at(r, t->loc, "float constant too long");
        memcpy(buf, t->start, t->len);
        buf[t->len] = 0;
        c.is_float = true;
        c.f = strtod(buf, NULL);
        if (elem_is_float(e)) c.f = elem_round_float(e, c.f);
    } else if (elem_is_float(e)) { /* `const 1 : f32`, as a person may write it */
        c.is_float = true;
        c.f = elem_round_float(e, (double)token_int(r, t, false));
    } else {
        c.i = token_int(r, t, e.kind == EK_UINT);
    }
    return c;
}

/* Operands `%a, %b, ...` (with their commas); *trailing_comma is set when a comma was followed by
 * something other than a value, which starts the attributes. The first operand is on the op's
 * line: a value on the next line starts the next op (`barrier` then `%5 = ...`). */
static void read_operands(IrReader *r, uint32_t line, ValueVec *operands, bool *trailing_comma) {
    *trailing_comma = false;
    if (peek(r)->kind != TOK_VALUE || peek(r)->loc.line != line) return;
    PUSH(r, operands, read_use(r));
    while (ir_reader_accept(r, ',')) {
        if (peek(r)->kind != TOK_VALUE) {
            *trailing_comma = true;
            return;
        }
        PUSH(r, operands, read_use(r));
    }
}

/* Any op but the region ops: `name [prefix attributes] [const value | @callee(args)] operands
 * [, suffix attributes] [: result types]`. */
static void read_plain_op(IrReader *r, OpCode code, const TokVec *results, SrcLoc loc, uint32_t name_line) {
    IrOp attrs = {.code = code};
    ValueVec operands = {0};
    Tok value = {0}, callee = {0};
    bool negative = false, trailing_comma = false;
    ir_attrs_parse(r, &attrs, ATTR_PREFIX, false);
    if (code == OP_CONST) {
        negative = ir_reader_accept(r, '-');
        value = next(r);
        if (value.kind != TOK_WORD && value.kind != TOK_INT && value.kind != TOK_FLOAT)
            fail_at(r, value.loc, "expected a constant");
        if (negative && value.kind != TOK_WORD) fail_at(r, value.loc, "expected nan or inf after '-'");
    }
    if (code == OP_CALL) {
        if (peek(r)->kind != TOK_FUNC) expected(r, "a function (@name)");
        callee = next(r);
        ir_reader_expect(r, '(');
        if (!ir_reader_accept(r, ')')) {
            do PUSH(r, &operands, read_use(r));
            while (ir_reader_accept(r, ','));
            ir_reader_expect(r, ')');
        }
        trailing_comma = ir_reader_accept(r, ',');
    } else {
        read_operands(r, name_line, &operands, &trailing_comma);
    }
    ir_attrs_parse(r, &attrs, ATTR_SUFFIX, trailing_comma);
    VEC(const IrType *) types = {0};
    if (ir_reader_accept(r, ':')) {
        do {
            const IrType *t = read_type(r);
            PUSH(r, &types, t);
        } while (ir_reader_accept(r, ','));
    }
    int expected_results = ir_op_info[code].nresults;
    if (expected_results >= 0 && (size_t)expected_results != types.len)
        fail_at(r, loc, "%s has %d result%s", ir_op_info[code].name, expected_results, expected_results == 1 ? "" : "s");
    IrOp *op = build(r, code, &operands, types.data, (uint32_t)types.len, results, loc);
    memcpy(op->ints, attrs.ints, sizeof op->ints);
    op->nints = attrs.nints;
    if (code == OP_CONST) op->value = read_const_value(r, op->results[0]->type, &value, negative);
    if (code == OP_CALL) {
        PendingCall call = {op, arena_strndup(&r->m->arena, callee.start, callee.len), callee.loc};
        PUSH(r, &r->calls, call);
    }
    bind_results(r, op, results);
}

/* [%r, ... =] name ... */
static void read_op(IrReader *r) {
    SrcLoc loc = peek(r)->loc;
    TokVec results = {0};
    if (peek(r)->kind == TOK_VALUE) {
        do PUSH(r, &results, read_value_name(r));
        while (ir_reader_accept(r, ','));
        ir_reader_expect(r, '=');
    }
    if (peek(r)->kind != TOK_WORD) expected(r, "an op");
    Tok name = next(r);
    OpCode code;
    if (!lookup_op(&name, &code)) fail_at(r, name.loc, "unknown op '%.*s'", (int)name.len, name.start);
    if (!results.len) loc = name.loc;
    switch (code) {
    case OP_FOR: read_for(r, &results, loc); break;
    case OP_IF: read_if(r, &results, loc); break;
    case OP_WHILE: read_while(r, &results, loc); break;
    case OP_WARP_ROLES: read_warp_roles(r, &results, loc); break;
    default: read_plain_op(r, code, &results, loc, name.loc.line); break;
    }
}

/* Ops up to the closing '}' (left for the caller). */
static void read_region_body(IrReader *r, IrRegion *region) {
    ir_builder_at_end(&r->b, region);
    while (!tok_is(peek(r), TOK_PUNCT, "}")) {
        if (peek(r)->kind == TOK_EOF) expected(r, "'}'");
        read_op(r);
        ir_builder_at_end(&r->b, region);
    }
}

/* ---- functions ------------------------------------------------------------------------------------ */
static void bind_params(IrReader *r, const TokVec *names, const IrRegion *region) {
    strmap_free(&r->values);
    for (uint32_t i = 0; i < region->nargs; i++) define(r, &names->data[i], region->args[i]);
}

/* kernel @name(params) [warps N] grid { ... } body { ... }
 * func @name(params) [-> (T, ...)] { ... } */
static void read_function(IrReader *r) {
    Tok kw = next(r);
    bool is_kernel = tok_is(&kw, TOK_WORD, "kernel");
    if (!is_kernel && !tok_is(&kw, TOK_WORD, "func")) {
        r->have_tok = true; /* put it back for the message */
        r->tok = kw;
        expected(r, "'kernel' or 'func'");
    }
    if (peek(r)->kind != TOK_FUNC) expected(r, "a function name (@name)");
    Tok name = next(r);
    char *fname = arena_strndup(&r->m->arena, name.start, name.len);
    if (ir_module_find(r->m, fname)) fail_at(r, name.loc, "function @%s is defined twice", fname);
    IrFunction *f = ir_function_new(r->m, fname, is_kernel, kw.loc);

    /* parameters */
    TokVec names = {0};
    VEC(IrParam) params = {0};
    bool specified = false, unspecified_seen = false;
    ir_reader_expect(r, '(');
    if (!ir_reader_accept(r, ')')) {
        do {
            Tok pname = read_value_name(r);
            ir_reader_expect(r, ':');
            IrParam param = {.loc = pname.loc};
            bool unspecified = false;
            const IrType *t = read_type_or_param(r, &param, &unspecified);
            if (t->kind == TY_TENSOR && t->rank > 0) {
                if (unspecified ? specified : unspecified_seen)
                    fail_at(r, pname.loc, "tensor parameters show either all their sizes or only '?'");
                specified |= !unspecified;
                unspecified_seen |= unspecified;
            }
            bool numbered = isdigit((unsigned char)pname.start[0]);
            param.name = numbered ? arena_printf(&r->m->arena, "arg%zu", params.len)
                                  : arena_strndup(&r->m->arena, pname.start, pname.len);
            PUSH(r, &params, param);
            PUSH(r, &names, pname);
            ir_region_add_arg(f->body, t, NULL);
        } while (ir_reader_accept(r, ','));
        ir_reader_expect(r, ')');
    }
    /* The printer shows `?` when the function has no parameter descriptions (IrParam) at all. */
    if (!unspecified_seen) {
        f->nparams = (uint32_t)params.len;
        f->params = ARENA_ARRAY(&r->m->arena, IrParam, params.len + 1);
        if (params.len) memcpy(f->params, params.data, sizeof(IrParam) * params.len);
    }

    if (!is_kernel && peek(r)->kind == TOK_ARROW) {
        next(r);
        f->result_types = read_type_tuple(r, &f->nresults);
    }
    if (is_kernel && ir_reader_accept_word(r, "warps")) f->num_warps = (int)read_int_in(r, "warps", 1, 32);
    if (is_kernel && ir_reader_accept_word(r, "cluster")) {
        SrcLoc at = peek(r)->loc;
        f->cluster = (int)read_int_in(r, "cluster", 2, 8);
        if (f->cluster & (f->cluster - 1)) fail_at(r, at, "cluster %d: expected 2, 4 or 8 blocks", f->cluster);
    }
    if (is_kernel) {
        for (uint32_t i = 0; i < f->body->nargs; i++) ir_region_add_arg(f->grid, f->body->args[i]->type, NULL);
        expect_word(r, "grid");
        bind_params(r, &names, f->grid);
        read_region(r, f->grid);
        expect_word(r, "body");
    }
    bind_params(r, &names, f->body);
    read_region(r, f->body);
}

IrModule *ir_parse_module(const char *name, const char *text, size_t len, DiagList *d) {
    IrModule *m = ir_module_new();
    SourceFile *file = ARENA_NEW(&m->arena, SourceFile);
    file->name = arena_strdup(&m->arena, name ? name : "<ir>");
    char *copy = arena_alloc(&m->arena, len + 1);
    if (len) memcpy(copy, text, len);
    file->text = copy;
    file->len = len;
    IrReader *r = xcalloc(1, sizeof *r);
    r->m = m;
    r->d = d;
    r->file = file;
    r->pos = r->line_start = copy;
    r->end = copy + len;
    r->line = 1;
    r->b.module = m;
    arena_init(&r->scratch);
    bool ok = false;
    if (setjmp(r->fail) == 0) {
        while (peek(r)->kind != TOK_EOF) read_function(r);
        for (size_t i = 0; i < r->calls.len; i++) {
            PendingCall *c = &r->calls.data[i];
            c->op->callee = ir_module_find(m, c->callee);
            if (!c->op->callee) fail_at(r, c->loc, "call of undefined function @%s", c->callee);
        }
        ok = true;
    }
    strmap_free(&r->values);
    arena_free(&r->scratch);
    free(r);
    if (ok) ok = ir_verify_module(m, d);
    if (!ok) {
        ir_module_free(m);
        return NULL;
    }
    return m;
}
