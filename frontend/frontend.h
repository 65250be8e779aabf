/*
 * frontend.h: the abstract syntax tree of a .tile file, the parser driver and the lowering of
 * a kernel (specialized by its compile-time constants) to the IR.
 *
 * The AST is untyped and unchecked: the lexer (lang/tile.re) and the grammar (lang/tile.y)
 * build it with the constructors below and nothing else. Semantic checks run during lowering
 * (frontend/lower*.c), because shapes depend on compile-time constants and are only known once
 * a kernel is specialized; `tilec check` specializes every kernel with its defaults.
 *
 * Every node carries its location. All nodes of a file live in the AstFile's arena.
 */
#ifndef TILE_FRONTEND_H
#define TILE_FRONTEND_H

#include "ir/ir.h"

typedef struct AstNode AstNode;

typedef enum {
    /* expressions */
    AST_INT,        /* int_value */
    AST_FLOAT,      /* float_value */
    AST_BOOL,       /* int_value 0/1 */
    AST_NAME,       /* name */
    AST_UNARY,      /* op (TK_MINUS, TK_NOT, TK_TILDE), lhs */
    AST_BINARY,     /* op (TK_PLUS ...), lhs, rhs */
    AST_CALL,       /* name; type_arg (or NULL); shape (list or NULL: `zeros<f32>[M, N]`);
                       args (list of expressions or AST_KWARG) */
    AST_KWARG,      /* name = lhs, only inside call arguments: `axis = 1` */
    AST_INDEX,      /* lhs[args]: args are expressions, AST_SLICE or AST_FULL_SLICE */
    AST_SLICE,      /* lhs :+ rhs  (start, compile-time size) */
    AST_FULL_SLICE, /* ':' */
    AST_LIST,       /* [a, b, c] as a call argument (shapes, permutations): args */
    AST_STRING,     /* "text": name = the text between the quotes (messages of checks) */
    AST_COND,       /* cond ? lhs : rhs */
    /* types (in declarations and type arguments) */
    AST_TYPE,       /* type_kind; elem (name of the element type); shape: dims (list), or NULL */
    /* statements */
    AST_LET,        /* name, type (or NULL), lhs = initializer */
    AST_VAR,        /* name, type (or NULL), lhs = initializer */
    AST_ASSIGN,     /* lhs = target (AST_NAME or AST_INDEX), rhs = value, op: TK_ASSIGN or a
                       compound one (TK_PLUS_ASSIGN, ...) */
    AST_EXPR_STMT,  /* lhs */
    AST_FOR,        /* name = induction variable; lhs = start; rhs = end; step (or NULL);
                       pipeline (or NULL); args = pipeline options (AST_KWARG, or NULL); body */
    AST_IF,         /* cond; body = then block; else_body = block, AST_IF or NULL */
    AST_WHILE,      /* cond; body */
    AST_RETURN,     /* lhs (or NULL); args = every value when there are several (or NULL) */
    AST_BREAK,      /* break; */
    AST_CONTINUE,   /* continue; */
    AST_LET_TUPLE,  /* let (a, b) = lhs; args = the names (AST_NAME) */
    AST_BLOCK,      /* args = statements */
    /* declarations */
    AST_PARAM,      /* name; type (AST_TYPE or NULL for untyped device-function params) */
    AST_CONST_PARAM,/* name; type (or NULL); lhs = default value (or NULL) */
    AST_KERNEL,     /* name; const_params; params; grid (list of expressions); warps (or NULL);
                       checks; body */
    AST_FUNCTION,   /* name; params; type = result type (or NULL); body */
} AstKind;

typedef enum { TYPE_SCALAR, TYPE_TILE, TYPE_TENSOR } AstTypeKind;

typedef struct AstList {
    AstNode **items;
    uint32_t len, cap;
} AstList;

struct AstNode {
    AstKind kind;
    SrcLoc loc;
    int op;                  /* token code for AST_UNARY / AST_BINARY / AST_ASSIGN */
    const char *name;
    int64_t int_value;
    double float_value;
    bool int_overflow;       /* AST_INT: the literal does not fit in 64 bits */
    AstNode *lhs, *rhs;
    AstNode *cond, *step, *pipeline;
    AstNode *type;           /* AST_TYPE */
    AstNode *type_arg;       /* AST_CALL: cast<bf16>(x) */
    AstList *shape;          /* AST_CALL shape; AST_TYPE dims */
    AstList *args;
    AstNode *body, *else_body;
    AstTypeKind type_kind;   /* AST_TYPE */
    const char *elem;        /* AST_TYPE element type name, e.g. "bf16", checked in lowering */
    AstList *const_params;   /* AST_KERNEL */
    AstList *params;         /* AST_KERNEL, AST_FUNCTION */
    AstList *grid;           /* AST_KERNEL */
    AstNode *warps;          /* AST_KERNEL: `warps(N)`, the warps per block on the GPU, or NULL */
    AstList *checks;         /* AST_KERNEL: `check(cond, "message")` clauses (AST_CALL) */
    uint32_t depth;          /* expressions: height of the subtree (1 for a leaf), set by the
                                parser, which bounds it (PARSE_MAX_EXPR_DEPTH) so that
                                recursive walks of any AST it returns stay shallow */
};

typedef struct AstFile {
    Arena arena;
    SourceFile source;       /* name and text (owned by the arena) */
    AstList decls;           /* AST_KERNEL and AST_FUNCTION */
} AstFile;

/* Node constructors (frontend/ast.c), used by the grammar's actions. */
AstNode *ast_new(AstFile *f, AstKind kind, SrcLoc loc);
AstList *ast_list_new(AstFile *f);
void ast_list_push(AstFile *f, AstList *list, AstNode *node);
/* Debug dump as an S-expression, stable for golden tests of the parser. */
void ast_dump(const AstNode *node, Strbuf *out);

/* Parses a whole file. Always returns a file (possibly with fewer declarations); syntax
 * errors go to d. The text is copied. */
AstFile *parse_source(const char *name, const char *text, size_t len, DiagList *d);
/* parse_source in two steps: a file of that source with no declarations yet, and its parse
 * (the runtime defers the second when a disk cache says the source parsed before). */
AstFile *ast_file_new(const char *name, const char *text, size_t len);
void parse_file(AstFile *f, DiagList *d);
void ast_file_free(AstFile *f);

/* Lexer (lang/tile.re), exposed for tests and for the parser driver. */
typedef struct Token {
    int code;                /* TK_* from the generated lang parser header; 0 at the end */
    SrcLoc loc;
    const char *start;       /* into the source text */
    size_t len;
} Token;

typedef struct Lexer {
    const SourceFile *file;
    const char *cursor, *limit, *marker, *ctxmarker, *line_start;
    uint32_t line;
    DiagList *diags;
} Lexer;

void lexer_init(Lexer *lx, const SourceFile *file, DiagList *d);
Token lexer_next(Lexer *lx);
const char *token_name(int code); /* "'+'", "identifier", "end of file" */
/* Value of a TK_INT token (decimal, 0x, 0b, '_' separators); false when it does not fit in
 * 64 unsigned bits (then *value is 0). */
bool lexer_int_value(const Token *t, uint64_t *value);
/* Value of a TK_FLOAT token, rounded to nearest; inf when out of range. */
double lexer_float_value(const Token *t);

/* ---- parser internals, shared by the grammar (lang/tile.y) and its driver (parse.c) ---- */
enum { PARSE_MAX_EXPR_DEPTH = 1000 };

enum { PARSE_STACK_DEPTH = 4000 }; /* the grammar's %stack_size */

typedef struct ParseState {
    AstFile *file;
    DiagList *diags;
    Token current;           /* the token being fed to the parser */
    bool failed;             /* an error was reported; the driver stops feeding tokens */
    /* The parser's state stack as it was before `current` was fed (tile_parse_save): a bad
     * token may first trigger default reductions, and the tokens expected are those of the
     * stack before them. saved_depth < 0: nothing saved. */
    int saved_depth;
    int saved_states[PARSE_STACK_DEPTH + 1];
} ParseState;

/* Reports "unexpected X, expected Y" for tok; expected[code] says which tokens the parser's
 * state accepts (ntokens entries). */
void parse_syntax_error(ParseState *ps, Token tok, const bool *expected, int ntokens);
void parse_nesting_error(ParseState *ps);
/* Sets node->depth from its children; reports an error when it passes PARSE_MAX_EXPR_DEPTH. */
AstNode *parse_expr_node(ParseState *ps, AstNode *node);
/* The lemon parser (generated from lang/tile.y). */
void *tile_parseAlloc(void *(*malloc_fn)(size_t));
void tile_parse(void *parser, int code, Token tok, ParseState *ps);
void tile_parseFree(void *parser, void (*free_fn)(void *));
void tile_parse_save(void *parser, ParseState *ps); /* see ParseState.saved_states */

/* ---- lowering: AST -> IR -------------------------------------------------------------- */
typedef struct ConstBinding {
    const char *name;
    bool is_float;
    int64_t i;
    double f;
} ConstBinding;

/* Lowers kernel `kernel_name` of the file with the given compile-time constants (others take
 * their defaults) into m, along with the device functions it calls. Every semantic error goes
 * to d; returns the kernel's IR function, or NULL when there were errors. */
IrFunction *lower_kernel(AstFile *file, const char *kernel_name, const ConstBinding *consts,
                         size_t nconsts, IrModule *m, DiagList *d);

/* ---- autotune clauses (frontend/autotune.c; lang/SPEC.md "Autotuning") ---------------- */
enum { AUTOTUNE_MAX_CONFIGS = 64 };

/* One candidate: `config(BN = 256, W = 8)`. */
typedef struct AutotuneConfig {
    SrcLoc loc;
    uint32_t ordinal;          /* 1-based position among the clause's candidates */
    ConstBinding *bindings;    /* sorted by name; a binding equal to a literal default dropped */
    uint32_t nbindings;
} AutotuneConfig;

/* A kernel's autotune clause, read (the arrays live in the arena given to autotune_read). */
typedef struct AutotuneSpec {
    const AstNode *clause;     /* the `autotune(...)` call; NULL: the kernel has none */
    const char **keys;         /* size names whose launch values choose the shape bucket */
    uint32_t nkeys;
    AutotuneConfig *configs;   /* in source order: configs[0] runs when nothing is timed */
    uint32_t nconfigs;
} AutotuneSpec;

/* Whether a kernel header clause (an entry of AstNode.checks) is `autotune(...)`. */
bool autotune_is_clause(const AstNode *clause);
/* Reads kernel k's autotune clause into out; located errors go to d (false when there were
 * any). A kernel without one gives out->clause NULL and true. */
bool autotune_read(const AstNode *k, Arena *arena, AutotuneSpec *out, DiagList *d);

#endif
