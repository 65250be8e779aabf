/*
 * tile.y: the lemon grammar of the tile language (lang/SPEC.md is the reference).
 *
 * Actions are thin: they call the AST constructors of frontend/ast.c and fill fields, and
 * every expression node goes through parse_expr_node (frontend/parse.c), which records the
 * node's depth and stops the parse when an expression nests too deeply. The whole AST lives
 * in the file's arena, so nonterminals need no %destructor: an abandoned parse leaks nothing.
 *
 * Ambiguities are settled by precedence, never by luck:
 *   - binary operators are left-associative, in the order of the %left lines below; postfix
 *     indexing binds tightest, then the unary prefix operators;
 *   - `cast<T>` followed by `[` takes the brackets as its shape (LBRACKET outranks GT);
 *   - a compile-time default value `<BM = 64>` ends at the first top-level '>', so a
 *     comparison inside a default must be parenthesized (the rule carries GT's precedence
 *     and GT is left-associative, which means "reduce").
 * The generic builtins cast/zeros/ones/full are keywords, so `a < b > (c)` is always two
 * comparisons.
 *
 * Error handling: %syntax_error computes the tokens the current state accepts and hands them
 * to parse_syntax_error, which words "unexpected X, expected Y" and marks the parse failed;
 * the driver then feeds no more tokens, so there is exactly one syntax error per file.
 * The stack has a fixed depth, so absurd nesting gives "nesting too deep", never a crash.
 */

%name tile_parse
%token_prefix TK_
%token_type {Token}
%extra_argument {ParseState *S}
%default_type {AstNode *}
%stack_size 4000

%include {
#include "frontend/frontend.h"

#include <assert.h>
#include <stdlib.h>

static AstNode *node_at(ParseState *s, AstKind kind, Token t) { return ast_new(s->file, kind, t.loc); }

static const char *token_text(ParseState *s, Token t) {
    return arena_strndup(&s->file->arena, t.start, t.len);
}

static AstNode *binary(ParseState *s, Token op, AstNode *lhs, AstNode *rhs) {
    AstNode *n = node_at(s, AST_BINARY, op);
    n->op = op.code;
    n->lhs = lhs;
    n->rhs = rhs;
    return parse_expr_node(s, n);
}

static AstNode *unary(ParseState *s, Token op, AstNode *operand) {
    AstNode *n = node_at(s, AST_UNARY, op);
    n->op = op.code;
    n->lhs = operand;
    return parse_expr_node(s, n);
}

static AstNode *generic_call(ParseState *s, Token name, AstNode *type, AstList *shape, AstList *args) {
    AstNode *n = node_at(s, AST_CALL, name);
    n->name = token_text(s, name);
    n->type_arg = type;
    n->shape = shape;
    n->args = args ? args : ast_list_new(s->file);
    return parse_expr_node(s, n);
}

static AstNode *list_node(ParseState *s, AstKind kind, Token t, AstList *items) {
    AstNode *n = node_at(s, kind, t);
    n->args = items;
    return kind == AST_BLOCK ? n : parse_expr_node(s, n);
}

static AstNode *tensor_type(ParseState *s, Token kw, AstTypeKind kind, Token elem, AstList *dims) {
    AstNode *n = node_at(s, AST_TYPE, kw);
    n->type_kind = kind;
    n->elem = token_text(s, elem);
    n->shape = dims;
    return n;
}

static AstNode *binding(ParseState *s, AstKind kind, Token name, AstNode *type, AstNode *init) {
    AstNode *n = node_at(s, kind, name);
    n->name = token_text(s, name);
    n->type = type;
    n->lhs = init;
    return n;
}

/* A for's `pipeline(N, options...)` (NULL: none): the depth, and the options in args. */
static void set_pipeline(ParseState *s, AstNode *loop, AstList *args) {
    if (!args) return;
    loop->pipeline = args->items[0];
    if (args->len == 1) return;
    loop->args = ast_list_new(s->file);
    for (uint32_t i = 1; i < args->len; i++) ast_list_push(s->file, loop->args, args->items[i]);
}
}

/* The expected tokens: those the parser would shift after whatever reductions they call for,
 * simulated on a copy of the state stack. (The tables hold default reductions, so a plain
 * lookup in the top state would also list tokens that fail a few reductions later.) The copy
 * is the stack saved before the bad token was fed (tile_parse_save): the bad token itself may
 * have triggered default reductions (`call_args ::= .` on `f(let`), after which only ')'
 * would look acceptable. This reads lempar.c's tables, which is why it lives here. */
%syntax_error {
    bool expected[YYNTOKEN];
    YYACTIONTYPE states[YYSTACKDEPTH + 1];
    bool saved = S->saved_depth >= 0;
    int depth = saved ? S->saved_depth : (int)(yypParser->yytos - yypParser->yystack);
    expected[0] = false;
    for (int t = 1; t < YYNTOKEN; t++) {
        int top = depth;
        for (int i = 0; i <= top; i++)
            states[i] = saved ? (YYACTIONTYPE)S->saved_states[i] : yypParser->yystack[i].stateno;
        YYACTIONTYPE action = states[top];
        for (;;) {
            action = yy_find_shift_action((YYCODETYPE)t, action);
            if (action < YY_MIN_REDUCE) {
                expected[t] = action != YY_ERROR_ACTION;
                break;
            }
            unsigned rule = action - YY_MIN_REDUCE;
            top += yyRuleInfoNRhs[rule];
            action = yy_find_reduce_action(states[top], (YYCODETYPE)yyRuleInfoLhs[rule]);
            if (++top >= YYSTACKDEPTH) {
                expected[t] = true; /* deep enough: the real parse will tell */
                break;
            }
            states[top] = action;
        }
    }
    parse_syntax_error(S, TOKEN, expected, YYNTOKEN);
}
%stack_overflow { parse_nesting_error(S); }
%code {
_Static_assert(YYSTACKDEPTH <= PARSE_STACK_DEPTH, "ParseState.saved_states is too small");

void tile_parse_save(void *parser, ParseState *ps) {
    yyParser *p = parser;
    int depth = (int)(p->yytos - p->yystack);
    for (int i = 0; i <= depth; i++) ps->saved_states[i] = p->yystack[i].stateno;
    ps->saved_depth = depth;
}
}
%parse_failure { S->failed = true; }

/* Tokens the lexer produces that no rule accepts: a lexical error (already reported). */
%token ILLEGAL.

/* Lowest to highest. The unary operators use NOT's level; postfix `[` outranks them.
 * `c ? a : b` is lowest and right-associative: `c ? a : d ? e : f` nests to the right and
 * `c ? a : b + 1` takes `b + 1` as its last operand. */
%right QUESTION.
%left OROR.
%left ANDAND.
%left PIPE.
%left CARET.
%left AMP.
%left EQ NE.
%left LT LE GT GE.
%left SHL SHR.
%left PLUS MINUS.
%left STAR SLASH PERCENT.
%right NOT TILDE.
%left LBRACKET.

/* ---- declarations ----------------------------------------------------------------------- */
file ::= decls.
decls ::= .
decls ::= decls decl(D). { ast_list_push(S->file, &S->file->decls, D); }

decl(A) ::= kernel(K). { A = K; }
decl(A) ::= function(F). { A = F; }

kernel(A) ::= KERNEL NAME(N) const_params(C) LPAREN kernel_params(P) RPAREN
              GRID LPAREN expr_list(G) RPAREN warps_opt(W) kernel_checks(C2) block(B). {
    A = node_at(S, AST_KERNEL, N);
    A->checks = C2;
    A->name = token_text(S, N);
    A->const_params = C;
    A->params = P;
    A->grid = G;
    A->warps = W;
    A->body = B;
}

/* `check(cond, "message")` clauses after the grid: launch-time checks (a NAME, so that
 * `check` stays usable as a name elsewhere; the lowering says when it is not `check`). */
%type kernel_checks {AstList *}
kernel_checks(A) ::= . { A = ast_list_new(S->file); }
kernel_checks(A) ::= kernel_checks(L) NAME(N) LPAREN call_args(R) RPAREN. {
    A = L;
    ast_list_push(S->file, A, generic_call(S, N, NULL, NULL, R));
}

%type warps_opt {AstNode *}
warps_opt(A) ::= . { A = NULL; }
warps_opt(A) ::= WARPS LPAREN expr(E) RPAREN. { A = E; }

%type const_params {AstList *}
%type const_param_list {AstList *}
const_params(A) ::= . { A = ast_list_new(S->file); }
const_params(A) ::= LT const_param_list(L) comma_opt GT. { A = L; }
const_param_list(A) ::= const_param(P). { A = ast_list_new(S->file); ast_list_push(S->file, A, P); }
const_param_list(A) ::= const_param_list(L) COMMA const_param(P). { A = L; ast_list_push(S->file, A, P); }

const_param(A) ::= NAME(N) type_annotation(T) const_default(D). {
    A = binding(S, AST_CONST_PARAM, N, T, D);
}
const_default(A) ::= . { A = NULL; }
const_default(A) ::= ASSIGN expr(E). [GT] { A = E; }

comma_opt ::= .
comma_opt ::= COMMA.

%type kernel_params {AstList *}
%type kernel_param_list {AstList *}
kernel_params(A) ::= . { A = ast_list_new(S->file); }
kernel_params(A) ::= kernel_param_list(L) comma_opt. { A = L; }
kernel_param_list(A) ::= kernel_param(P). { A = ast_list_new(S->file); ast_list_push(S->file, A, P); }
kernel_param_list(A) ::= kernel_param_list(L) COMMA kernel_param(P). { A = L; ast_list_push(S->file, A, P); }
kernel_param(A) ::= NAME(N) COLON type(T). { A = binding(S, AST_PARAM, N, T, NULL); }

function(A) ::= FN NAME(N) LPAREN function_params(P) RPAREN result_type(R) block(B). {
    A = node_at(S, AST_FUNCTION, N);
    A->name = token_text(S, N);
    A->params = P;
    A->type = R;
    A->body = B;
}
%type function_params {AstList *}
%type function_param_list {AstList *}
function_params(A) ::= . { A = ast_list_new(S->file); }
function_params(A) ::= function_param_list(L). { A = L; }
function_param_list(A) ::= function_param(P). { A = ast_list_new(S->file); ast_list_push(S->file, A, P); }
function_param_list(A) ::= function_param_list(L) COMMA function_param(P). { A = L; ast_list_push(S->file, A, P); }
function_param(A) ::= NAME(N) type_annotation(T). { A = binding(S, AST_PARAM, N, T, NULL); }
result_type(A) ::= . { A = NULL; }
result_type(A) ::= ARROW type(T). { A = T; }

/* ---- types ------------------------------------------------------------------------------ */
type_annotation(A) ::= . { A = NULL; }
type_annotation(A) ::= COLON type(T). { A = T; }

type(A) ::= NAME(N). {
    A = node_at(S, AST_TYPE, N);
    A->type_kind = TYPE_SCALAR;
    A->elem = token_text(S, N);
}
type(A) ::= TENSOR(K) LT NAME(E) GT LBRACKET expr_list(D) RBRACKET. { A = tensor_type(S, K, TYPE_TENSOR, E, D); }
type(A) ::= TILE(K) LT NAME(E) GT LBRACKET expr_list(D) RBRACKET. { A = tensor_type(S, K, TYPE_TILE, E, D); }

/* ---- statements ------------------------------------------------------------------------- */
block(A) ::= LBRACE(L) statements(B) RBRACE. { A = list_node(S, AST_BLOCK, L, B); }
%type statements {AstList *}
statements(A) ::= . { A = ast_list_new(S->file); }
statements(A) ::= statements(L) statement(T). { A = L; ast_list_push(S->file, A, T); }

statement(A) ::= LET NAME(N) type_annotation(T) ASSIGN expr(E) SEMI. { A = binding(S, AST_LET, N, T, E); }
statement(A) ::= VAR NAME(N) type_annotation(T) ASSIGN expr(E) SEMI. { A = binding(S, AST_VAR, N, T, E); }
statement(A) ::= expr(L) assign_op(O) expr(R) SEMI. {
    A = node_at(S, AST_ASSIGN, O);
    A->op = O.code;
    A->lhs = L;
    A->rhs = R;
}
statement(A) ::= expr(E) SEMI. {
    A = ast_new(S->file, AST_EXPR_STMT, E->loc);
    A->lhs = E;
}
statement(A) ::= FOR(F) NAME(N) IN expr(LO) DOTDOT expr(HI) for_step(ST) for_pipeline(P) block(B). {
    A = node_at(S, AST_FOR, F);
    A->name = token_text(S, N);
    A->lhs = LO;
    A->rhs = HI;
    A->step = ST;
    set_pipeline(S, A, P);
    A->body = B;
}
statement(A) ::= if_statement(I). { A = I; }
statement(A) ::= WHILE(W) expr(C) block(B). {
    A = node_at(S, AST_WHILE, W);
    A->cond = C;
    A->body = B;
}
statement(A) ::= RETURN(R) SEMI. { A = node_at(S, AST_RETURN, R); }
statement(A) ::= RETURN(R) expr(E) SEMI. { A = node_at(S, AST_RETURN, R); A->lhs = E; }
statement(A) ::= block(B). { A = B; }
statement(A) ::= BREAK(T) SEMI. { A = node_at(S, AST_BREAK, T); }
statement(A) ::= CONTINUE(T) SEMI. { A = node_at(S, AST_CONTINUE, T); }
/* `return a, b;` (a device function with several results): args holds every value */
statement(A) ::= RETURN(R) expr(E) COMMA expr_list(L) SEMI. {
    A = node_at(S, AST_RETURN, R);
    A->lhs = E;
    A->args = ast_list_new(S->file);
    ast_list_push(S->file, A->args, E);
    for (uint32_t i = 0; i < L->len; i++) ast_list_push(S->file, A->args, L->items[i]);
}
/* `let (x, y) = f(...);`: args holds the names (AST_NAME) */
statement(A) ::= LET(T) LPAREN name_list(L) RPAREN ASSIGN expr(E) SEMI. {
    A = node_at(S, AST_LET_TUPLE, T);
    A->args = L;
    A->lhs = E;
}
%type name_list {AstList *}
name_list(A) ::= NAME(N). {
    A = ast_list_new(S->file);
    AstNode *n = node_at(S, AST_NAME, N);
    n->name = token_text(S, N);
    ast_list_push(S->file, A, n);
}
name_list(A) ::= name_list(L) COMMA NAME(N). {
    A = L;
    AstNode *n = node_at(S, AST_NAME, N);
    n->name = token_text(S, N);
    ast_list_push(S->file, A, n);
}

for_step(A) ::= . { A = NULL; }
for_step(A) ::= STEP expr(E). { A = E; }
/* `pipeline(N)` or `pipeline(N, name = value, ...)`: the depth first, then the loop's options
 * (AST_KWARG; the lowering knows their names). The list holds the depth and the options. */
%type for_pipeline {AstList *}
%type pipeline_args {AstList *}
for_pipeline(A) ::= . { A = NULL; }
for_pipeline(A) ::= PIPELINE LPAREN pipeline_args(L) RPAREN. { A = L; }
pipeline_args(A) ::= expr(E). { A = ast_list_new(S->file); ast_list_push(S->file, A, E); }
pipeline_args(A) ::= pipeline_args(L) COMMA NAME(N) ASSIGN expr(E). {
    A = L;
    ast_list_push(S->file, A, parse_expr_node(S, binding(S, AST_KWARG, N, NULL, E)));
}

if_statement(A) ::= IF(I) expr(C) block(B). { A = node_at(S, AST_IF, I); A->cond = C; A->body = B; }
if_statement(A) ::= IF(I) expr(C) block(B) ELSE block(E). {
    A = node_at(S, AST_IF, I);
    A->cond = C;
    A->body = B;
    A->else_body = E;
}
if_statement(A) ::= IF(I) expr(C) block(B) ELSE if_statement(E). {
    A = node_at(S, AST_IF, I);
    A->cond = C;
    A->body = B;
    A->else_body = E;
}

%type assign_op {Token}
assign_op(A) ::= ASSIGN(T). { A = T; }
assign_op(A) ::= PLUS_ASSIGN(T). { A = T; }
assign_op(A) ::= MINUS_ASSIGN(T). { A = T; }
assign_op(A) ::= STAR_ASSIGN(T). { A = T; }
assign_op(A) ::= SLASH_ASSIGN(T). { A = T; }
assign_op(A) ::= PERCENT_ASSIGN(T). { A = T; }
assign_op(A) ::= AMP_ASSIGN(T). { A = T; }
assign_op(A) ::= PIPE_ASSIGN(T). { A = T; }
assign_op(A) ::= CARET_ASSIGN(T). { A = T; }
assign_op(A) ::= SHL_ASSIGN(T). { A = T; }
assign_op(A) ::= SHR_ASSIGN(T). { A = T; }

/* ---- expressions ------------------------------------------------------------------------ */
expr(A) ::= INT(T). {
    uint64_t value = 0;
    A = node_at(S, AST_INT, T);
    A->int_overflow = !lexer_int_value(&T, &value);
    A->int_value = (int64_t)value;
    A = parse_expr_node(S, A);
}
expr(A) ::= FLOAT(T). {
    A = node_at(S, AST_FLOAT, T);
    A->float_value = lexer_float_value(&T);
    A = parse_expr_node(S, A);
}
expr(A) ::= TRUE(T). { A = node_at(S, AST_BOOL, T); A->int_value = 1; A = parse_expr_node(S, A); }
expr(A) ::= FALSE(T). { A = node_at(S, AST_BOOL, T); A->int_value = 0; A = parse_expr_node(S, A); }
expr(A) ::= NAME(T). { A = node_at(S, AST_NAME, T); A->name = token_text(S, T); A = parse_expr_node(S, A); }
expr(A) ::= LPAREN expr(E) RPAREN. { A = E; }
expr(A) ::= LBRACKET(L) expr_list(E) RBRACKET. { A = list_node(S, AST_LIST, L, E); }

expr(A) ::= NAME(N) LPAREN call_args(R) RPAREN. { A = generic_call(S, N, NULL, NULL, R); }
expr(A) ::= generic(G) LT type(T) GT. { A = generic_call(S, G, T, NULL, NULL); }
expr(A) ::= generic(G) LT type(T) GT LBRACKET expr_list(D) RBRACKET. { A = generic_call(S, G, T, D, NULL); }
expr(A) ::= generic(G) LT type(T) GT LPAREN call_args(R) RPAREN. { A = generic_call(S, G, T, NULL, R); }
expr(A) ::= generic(G) LT type(T) GT LBRACKET expr_list(D) RBRACKET LPAREN call_args(R) RPAREN. {
    A = generic_call(S, G, T, D, R);
}
%type generic {Token}
generic(A) ::= CAST(T). { A = T; }
generic(A) ::= ZEROS(T). { A = T; }
generic(A) ::= ONES(T). { A = T; }
generic(A) ::= FULL(T). { A = T; }
generic(A) ::= BITCAST(T). { A = T; }
generic(A) ::= SHARED(T). { A = T; }   /* shared<T>[d0, ...]: a shared tile (lower_shared.c) */

/* A string literal: only the message of static_assert and check takes one (the lowering
 * says so anywhere else). name holds the text between the quotes. */
expr(A) ::= STRING(T). {
    A = node_at(S, AST_STRING, T);
    A->name = arena_strndup(&S->file->arena, T.start + 1, T.len - 2);
    A = parse_expr_node(S, A);
}
expr(A) ::= expr(C) QUESTION(Q) expr(L) COLON expr(R). {
    A = node_at(S, AST_COND, Q);
    A->cond = C;
    A->lhs = L;
    A->rhs = R;
    A = parse_expr_node(S, A);
}

expr(A) ::= expr(B) LBRACKET(L) index_items(I) RBRACKET. {
    A = node_at(S, AST_INDEX, L);
    A->lhs = B;
    A->args = I;
    A = parse_expr_node(S, A);
}

expr(A) ::= MINUS(O) expr(E). [NOT] { A = unary(S, O, E); }
expr(A) ::= NOT(O) expr(E). { A = unary(S, O, E); }
expr(A) ::= TILDE(O) expr(E). { A = unary(S, O, E); }

expr(A) ::= expr(L) OROR(O) expr(R). { A = binary(S, O, L, R); }
expr(A) ::= expr(L) ANDAND(O) expr(R). { A = binary(S, O, L, R); }
expr(A) ::= expr(L) PIPE(O) expr(R). { A = binary(S, O, L, R); }
expr(A) ::= expr(L) CARET(O) expr(R). { A = binary(S, O, L, R); }
expr(A) ::= expr(L) AMP(O) expr(R). { A = binary(S, O, L, R); }
expr(A) ::= expr(L) EQ(O) expr(R). { A = binary(S, O, L, R); }
expr(A) ::= expr(L) NE(O) expr(R). { A = binary(S, O, L, R); }
expr(A) ::= expr(L) LT(O) expr(R). { A = binary(S, O, L, R); }
expr(A) ::= expr(L) LE(O) expr(R). { A = binary(S, O, L, R); }
expr(A) ::= expr(L) GT(O) expr(R). { A = binary(S, O, L, R); }
expr(A) ::= expr(L) GE(O) expr(R). { A = binary(S, O, L, R); }
expr(A) ::= expr(L) SHL(O) expr(R). { A = binary(S, O, L, R); }
expr(A) ::= expr(L) SHR(O) expr(R). { A = binary(S, O, L, R); }
expr(A) ::= expr(L) PLUS(O) expr(R). { A = binary(S, O, L, R); }
expr(A) ::= expr(L) MINUS(O) expr(R). { A = binary(S, O, L, R); }
expr(A) ::= expr(L) STAR(O) expr(R). { A = binary(S, O, L, R); }
expr(A) ::= expr(L) SLASH(O) expr(R). { A = binary(S, O, L, R); }
expr(A) ::= expr(L) PERCENT(O) expr(R). { A = binary(S, O, L, R); }

%type expr_list {AstList *}
expr_list(A) ::= expr(E). { A = ast_list_new(S->file); ast_list_push(S->file, A, E); }
expr_list(A) ::= expr_list(L) COMMA expr(E). { A = L; ast_list_push(S->file, A, E); }

%type call_args {AstList *}
%type call_arg_list {AstList *}
call_args(A) ::= . { A = ast_list_new(S->file); }
call_args(A) ::= call_arg_list(L) comma_opt. { A = L; }
call_arg_list(A) ::= call_arg(E). { A = ast_list_new(S->file); ast_list_push(S->file, A, E); }
call_arg_list(A) ::= call_arg_list(L) COMMA call_arg(E). { A = L; ast_list_push(S->file, A, E); }
call_arg(A) ::= expr(E). { A = E; }
call_arg(A) ::= NAME(N) ASSIGN expr(E). {
    A = binding(S, AST_KWARG, N, NULL, E);
    A = parse_expr_node(S, A);
}

%type index_items {AstList *}
index_items(A) ::= index_item(E). { A = ast_list_new(S->file); ast_list_push(S->file, A, E); }
index_items(A) ::= index_items(L) COMMA index_item(E). { A = L; ast_list_push(S->file, A, E); }
index_item(A) ::= expr(E). { A = E; }
index_item(A) ::= expr(L) COLON_PLUS(O) expr(R). {
    A = node_at(S, AST_SLICE, O);
    A->lhs = L;
    A->rhs = R;
    A = parse_expr_node(S, A);
}
index_item(A) ::= COLON(C). { A = node_at(S, AST_FULL_SLICE, C); }
