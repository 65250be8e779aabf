/*
 * lower.c: semantic checks and lowering of kernels, device functions and statements to IR.
 *
 * A kernel is lowered once per specialization: its compile-time constants are bound first,
 * so every shape is a known number by the time an op needs it. Names live in a stack of
 * bindings with marks for blocks. Mutable variables (`var`) are SSA values that the lowering
 * updates on assignment; a loop or branch that assigns variables declared outside it carries
 * them: they become the loop's region arguments and results (or the `if`'s results), found by
 * scanning the body for assignments before lowering it.
 *
 * Device functions are instantiated per distinct argument signature (types, and the values of
 * constant arguments, which stay constants inside), so an untyped parameter makes a function
 * generic; each instance is an IR function called with OP_CALL, and the inline pass removes
 * the calls. `if` on a compile-time constant picks its branch here, as in Triton's constexpr if.
 */
#include "lower.h"

#include <stdio.h>
#include <string.h>

#include "tile_parser.h"

static const Val POISON_VAL = {.kind = VAL_POISON};

/* ---- scopes ----------------------------------------------------------------------------------- */
static void scope_push(Lower *L) { vec_push(&L->scope_marks, L->scope.len); }

static void scope_pop(Lower *L) { L->scope.len = L->scope_marks.data[--L->scope_marks.len]; }

Binding *lower_lookup(Lower *L, const char *name) {
    for (size_t i = L->scope.len; i-- > L->scope_floor;)
        if (strcmp(L->scope.data[i]->name, name) == 0) return L->scope.data[i];
    return NULL;
}

static Binding *bind(Lower *L, const char *name, BindKind kind, SrcLoc loc) {
    size_t start = L->scope_marks.len ? L->scope_marks.data[L->scope_marks.len - 1] : 0;
    for (size_t i = start; i < L->scope.len; i++)
        if (strcmp(L->scope.data[i]->name, name) == 0) {
            diag_error(L->diags, loc, "'%s' is already declared in this scope", name);
            if (L->scope.data[i]->loc.file) diag_note(L->diags, L->scope.data[i]->loc, "'%s' was declared here", name);
            break;
        }
    Binding *b = ARENA_NEW(&L->module->arena, Binding);
    b->name = name;
    b->kind = kind;
    b->loc = loc;
    vec_push(&L->scope, b);
    return b;
}

const AstNode *lower_find_decl(Lower *L, AstKind kind, const char *name) {
    for (uint32_t i = 0; i < L->file->decls.len; i++) {
        const AstNode *d = L->file->decls.items[i];
        if (d->kind == kind && strcmp(d->name, name) == 0) return d;
    }
    return NULL;
}

/* Reports a second declaration of the same kind with decl's name (decl is the first one,
 * which the lowering uses): it would otherwise be ignored without a word. */
static void check_unique(Lower *L, const AstNode *decl) {
    bool seen = false;
    for (uint32_t i = 0; i < L->file->decls.len; i++) {
        const AstNode *d = L->file->decls.items[i];
        if (d == decl) seen = true;
        else if (seen && d->kind == decl->kind && strcmp(d->name, decl->name) == 0) {
            diag_error(L->diags, d->loc, "%s '%s' is already defined", d->kind == AST_KERNEL ? "kernel" : "device function",
                       d->name);
            diag_note(L->diags, decl->loc, "'%s' was defined here", decl->name);
            return;
        }
    }
}

/* The value of a name in the current region. Parameters are the entry region's arguments;
 * symbolic sizes are DIM ops emitted once at the top of the entry region. */
Val lower_value_of(Lower *L, Binding *bnd, SrcLoc loc) {
    if (!L->entry && (bnd->kind == BIND_TENSOR || bnd->kind == BIND_DIM)) {
        /* in a kernel signature: only constants have values there */
        diag_error(L->diags, loc, "'%s' is only known at launch; a tensor dimension is a name or a compile-time constant",
                   bnd->name);
        return POISON_VAL;
    }
    switch (bnd->kind) {
    case BIND_CONST:
    case BIND_LET:
    case BIND_VAR:
        return bnd->current;
    case BIND_TENSOR:
        return (Val){.kind = VAL_VALUE, .value = L->entry->args[bnd->param_index]};
    case BIND_DIM: {
        size_t slot = (size_t)bnd->param_index * IR_MAX_RANK + (size_t)bnd->axis;
        while (L->dim_cache.len <= slot) vec_push(&L->dim_cache, NULL);
        if (!L->dim_cache.data[slot]) {
            IrBuilder saved = L->b;
            if (L->entry->first) ir_builder_before(&L->b, L->entry->first);
            else ir_builder_at_end(&L->b, L->entry);
            L->b.loc = bnd->loc;
            IrValue *t = L->entry->args[bnd->param_index];
            IrOp *op = ir_build(&L->b, OP_DIM, &t, 1, (const IrType *[]){ir_scalar_type(L->module, elem_i32())}, 1);
            op->ints[0] = bnd->axis, op->nints = 1;
            L->dim_cache.data[slot] = op->results[0];
            L->b = saved;
        }
        return (Val){.kind = VAL_VALUE, .value = L->dim_cache.data[slot]};
    }
    }
    tile_unreachable();
}

/* ---- types --------------------------------------------------------------------------------------- */
static bool lower_elem(Lower *L, const AstNode *type, ElemType *out) {
    if (!elem_parse(type->elem, strlen(type->elem), out)) {
        diag_error(L->diags, type->loc, "unknown element type '%s'", type->elem);
        return false;
    }
    return true;
}

bool lower_type(Lower *L, const AstNode *type, const IrType **out) {
    ElemType e;
    if (!lower_elem(L, type, &e)) return false;
    switch (type->type_kind) {
    case TYPE_SCALAR:
        *out = ir_scalar_type(L->module, e);
        return true;
    case TYPE_TILE: {
        int64_t shape[IR_MAX_RANK];
        uint32_t n = type->shape ? type->shape->len : 0;
        if (n == 0 || n > IR_MAX_RANK) {
            diag_error(L->diags, type->loc, "a tile type needs 1 to %d dimensions", IR_MAX_RANK);
            return false;
        }
        int64_t total = 1;
        for (uint32_t i = 0; i < n; i++) {
            if (!lower_const_int(L, type->shape->items[i], "a tile dimension", &shape[i])) return false;
            if (shape[i] <= 0 || shape[i] > (1 << 22) || (total *= shape[i]) > (1 << 22)) {
                diag_error(L->diags, type->shape->items[i]->loc, "tile dimensions must be positive, at most %d elements in all", 1 << 22);
                return false;
            }
        }
        *out = ir_tile_type(L->module, e, (int)n, shape);
        return true;
    }
    case TYPE_TENSOR:
        diag_error(L->diags, type->loc, "tensor types are only allowed for kernel parameters");
        return false;
    }
    tile_unreachable();
}

/* ---- statements -------------------------------------------------------------------------------- */
static void lower_block(Lower *L, const AstNode *block);
static void lower_stmt(Lower *L, const AstNode *s);
static void lower_branches(Lower *L, IrValue *cv, const AstNode *then_block, const AstNode *else_block, SrcLoc loc);
static void lower_for_while(Lower *L, const AstNode *s, IrValue *lo, IrValue *hi, IrValue *step, bool header_ok,
                            int exits);

/* Collects the variables (declared outside `node`) that statements inside it assign. */
typedef VEC(Binding *) BindingList;

static void push_unique(BindingList *out, Binding *b) {
    if (!b || b->kind != BIND_VAR) return;
    for (size_t i = 0; i < out->len; i++)
        if (out->data[i] == b) return;
    vec_push(out, b);
}

/* nested: inside a loop within the region scanned, whose break/continue are its own. The
 * flags that break, continue and a kernel's return set count as assigned variables. */
static void collect_assigned_in(Lower *L, const AstNode *n, BindingList *out, bool nested) {
    if (!n) return;
    switch (n->kind) {
    case AST_BREAK:
        if (!nested) push_unique(out, L->flag_break);
        return;
    case AST_CONTINUE:
        if (!nested) push_unique(out, L->flag_continue);
        return;
    case AST_RETURN:
        if (!L->in_function) push_unique(out, L->flag_return);
        return;
    case AST_BLOCK:
        for (uint32_t i = 0; n->args && i < n->args->len; i++) collect_assigned_in(L, n->args->items[i], out, nested);
        return;
    case AST_FOR:
    case AST_WHILE:
        collect_assigned_in(L, n->body, out, true);
        return;
    case AST_IF:
        collect_assigned_in(L, n->body, out, nested);
        collect_assigned_in(L, n->else_body, out, nested);
        return;
    default:
        break;
    }
    switch (n->kind) {
    case AST_ASSIGN:
        if (n->lhs && n->lhs->kind == AST_NAME) {
            Binding *b = lower_lookup(L, n->lhs->name);
            if (b && b->kind == BIND_VAR) {
                bool seen = false;
                for (size_t i = 0; i < out->len; i++) seen = seen || out->data[i] == b;
                if (!seen) vec_push(out, b);
            }
        }
        return;
    default:
        return;
    }
}

static void lower_decl_stmt(Lower *L, const AstNode *s) {
    /* `let s = shared<T>[...]`: the one place a shared tile may be made (lower_shared.c) */
    const AstNode *outer_shared_let = L->shared_let;
    if (s->kind == AST_LET && s->lhs->kind == AST_CALL && strcmp(s->lhs->name, "shared") == 0) L->shared_let = s->lhs;
    Val v = lower_expr(L, s->lhs);
    L->shared_let = outer_shared_let;
    const IrType *declared = NULL;
    if (s->type && !lower_type(L, s->type, &declared)) v = POISON_VAL;
    if (v.kind == VAL_VALUE && v.value->type->kind == TY_TENSOR) {
        diag_error(L->diags, s->lhs->loc, "a tensor cannot be bound to a name; bind a loaded tile instead");
        v = POISON_VAL;
    }
    if (v.kind != VAL_POISON && declared) {
        IrValue *x = lower_coerce(L, v, declared, s->lhs->loc, s->kind == AST_LET ? "let" : "var");
        v = x ? (Val){.kind = VAL_VALUE, .value = x} : POISON_VAL;
    }
    if (s->kind == AST_LET) {
        Binding *b = bind(L, s->name, v.kind == VAL_CONST ? BIND_CONST : BIND_LET, s->loc);
        b->current = v;
        return;
    }
    IrValue *x = v.kind == VAL_POISON ? NULL : lower_default(L, v, s->lhs->loc);
    Binding *b = bind(L, s->name, BIND_VAR, s->loc);
    b->current = x ? (Val){.kind = VAL_VALUE, .value = x} : POISON_VAL;
    b->var_type = x ? x->type : NULL;
}

static void lower_assign(Lower *L, const AstNode *s) {
    const AstNode *t = s->lhs;
    int op = 0;
    switch (s->op) {
    case TK_ASSIGN: op = 0; break;
    case TK_PLUS_ASSIGN: op = TK_PLUS; break;
    case TK_MINUS_ASSIGN: op = TK_MINUS; break;
    case TK_STAR_ASSIGN: op = TK_STAR; break;
    case TK_SLASH_ASSIGN: op = TK_SLASH; break;
    case TK_PERCENT_ASSIGN: op = TK_PERCENT; break;
    case TK_AMP_ASSIGN: op = TK_AMP; break;
    case TK_PIPE_ASSIGN: op = TK_PIPE; break;
    case TK_CARET_ASSIGN: op = TK_CARET; break;
    case TK_SHL_ASSIGN: op = TK_SHL; break;
    case TK_SHR_ASSIGN: op = TK_SHR; break;
    default: tile_unreachable();
    }
    if (t->kind == AST_INDEX && op && lower_names_shared(L, t->lhs)) {
        /* a load and a store of the same elements: two accesses, which SPEC 6.10 separates */
        const char *assign = token_name(s->op), *binary = token_name(op); /* quoted: '+=' */
        diag_error(L->diags, s->loc, "%s[...] %.*s v on a shared tile reads and writes its elements in two accesses "
                   "with no barrier between them; write `let t = %s[...] %.*s v; barrier(); %s[...] = t;` (or use "
                   "an atomic)", t->lhs->name, (int)strlen(assign) - 2, assign + 1, t->lhs->name,
                   (int)strlen(binary) - 2, binary + 1, t->lhs->name);
        return;
    }
    if (t->kind == AST_INDEX) {
        Val v = lower_expr(L, s->rhs);
        if (op) v = lower_binary_op(L, op, lower_expr(L, t), v, s->loc);
        lower_store(L, t, v, s->loc);
        return;
    }
    if (t->kind != AST_NAME) {
        diag_error(L->diags, t->loc, "cannot assign to this expression; assign to a variable or a tensor slice");
        return;
    }
    Binding *b = lower_lookup(L, t->name);
    if (!b) {
        diag_error(L->diags, t->loc, "unknown name '%s'", t->name);
        return;
    }
    switch (b->kind) {
    case BIND_VAR: break;
    case BIND_LET:
        diag_error(L->diags, t->loc, "cannot assign to '%s': it is declared with let (use var)", t->name);
        return;
    case BIND_CONST:
        diag_error(L->diags, t->loc, "cannot assign to '%s': it is a constant", t->name);
        return;
    case BIND_TENSOR:
        diag_error(L->diags, t->loc, "cannot assign to parameter '%s'; store into a slice of a tensor: %s[...] = value",
                   t->name, t->name);
        return;
    case BIND_DIM:
        diag_error(L->diags, t->loc, "cannot assign to '%s': it is a size bound at launch", t->name);
        return;
    }
    Val v = lower_expr(L, s->rhs);
    if (op) v = lower_binary_op(L, op, b->current, v, s->loc);
    if (!b->var_type) return; /* poisoned where it was declared */
    /* a failed assignment poisons the variable: its later uses stay silent */
    IrValue *x = v.kind == VAL_POISON ? NULL : lower_coerce(L, v, b->var_type, s->rhs->loc, "assignment");
    b->current = x ? (Val){.kind = VAL_VALUE, .value = x} : POISON_VAL;
}

static void collect_assigned(Lower *L, const AstNode *n, BindingList *out) { collect_assigned_in(L, n, out, false); }

/* ---- break, continue and a kernel's return ------------------------------------------------------
 * Control flow is structured, so these set flags: bool variables (not in any scope, so no
 * name reaches them) that loops and branches carry like any `var`. The statements after one
 * that may set a flag run under `if !flag` (lower_stmts); a loop with a break or a return
 * stops through its flag: a while's condition is and-ed with !flag, and such a `for` is
 * lowered as a while (lower_for_while). continue's flag is cleared at the top of every
 * iteration. All conditions are scalars, so they are uniform across a block on the GPU. */
enum { EXIT_BREAK = 1, EXIT_CONTINUE = 2, EXIT_RETURN = 4 };

/* Which of break/continue (of the enclosing loop) and return statement s may run. */
static int may_exit(Lower *L, const AstNode *s, bool nested) {
    if (!s) return 0;
    int r = 0;
    switch (s->kind) {
    case AST_BREAK: return nested ? 0 : EXIT_BREAK;
    case AST_CONTINUE: return nested ? 0 : EXIT_CONTINUE;
    case AST_RETURN: return L->in_function ? 0 : EXIT_RETURN;
    case AST_BLOCK:
        for (uint32_t i = 0; s->args && i < s->args->len; i++) r |= may_exit(L, s->args->items[i], nested);
        return r;
    case AST_IF: return may_exit(L, s->body, nested) | may_exit(L, s->else_body, nested);
    case AST_FOR:
    case AST_WHILE: return may_exit(L, s->body, true);
    default: return 0;
    }
}

static void set_flag(Lower *L, Binding *flag, bool value) {
    if (!flag) return;
    flag->current = (Val){.kind = VAL_VALUE,
                          .value = ir_const_int(&L->b, ir_scalar_type(L->module, elem_bool()), value)};
}

static Binding *new_flag(Lower *L, const char *name, SrcLoc loc) {
    Binding *b = ARENA_NEW(&L->module->arena, Binding);
    b->name = name; /* a keyword: no lookup finds it */
    b->kind = BIND_VAR;
    b->loc = loc;
    L->b.loc = loc;
    set_flag(L, b, false);
    b->var_type = b->current.value->type;
    return b;
}

/* !(f0 || f1 || ...) over the flags of `exits` that exist, or NULL when none does (or one was
 * poisoned by an error). */
static IrValue *flags_clear(Lower *L, int exits, SrcLoc loc) {
    Binding *flags[3] = {exits & EXIT_BREAK ? L->flag_break : NULL, exits & EXIT_CONTINUE ? L->flag_continue : NULL,
                         exits & EXIT_RETURN ? L->flag_return : NULL};
    IrValue *any = NULL;
    L->b.loc = loc;
    for (int i = 0; i < 3; i++) {
        if (!flags[i]) continue;
        if (flags[i]->current.kind != VAL_VALUE) return NULL;
        IrValue *v = flags[i]->current.value;
        any = any ? ir_binary(&L->b, OP_OR, any, v) : v;
    }
    return any ? ir_unary(&L->b, OP_NOT, any) : NULL;
}

/* The variables a loop or branch carries. Those an earlier error poisoned are not carried
 * (`dropped`): they stay poisoned through the region and after it, so that every use of them
 * is silent. One that an error poisons inside a region (`poisoned`) stays poisoned after it. */
typedef struct Carried {
    BindingList vars, dropped;
    bool *poisoned;
} Carried;

static void carried_begin(Lower *L, const AstNode *a, const AstNode *b, Carried *c) {
    BindingList all = {0};
    memset(c, 0, sizeof *c);
    collect_assigned(L, a, &all);
    collect_assigned(L, b, &all);
    for (size_t i = 0; i < all.len; i++) {
        if (all.data[i]->current.kind == VAL_VALUE) vec_push(&c->vars, all.data[i]);
        else vec_push(&c->dropped, all.data[i]);
    }
    vec_free(&all);
    c->poisoned = xcalloc(c->vars.len + 1, sizeof(bool));
}

static void carried_values(const Carried *c, IrValue **out) {
    for (size_t i = 0; i < c->vars.len; i++) out[i] = c->vars.data[i]->current.value;
}

static void set_carried(Carried *c, IrValue *const *values) {
    for (size_t i = 0; i < c->vars.len; i++) c->vars.data[i]->current = (Val){.kind = VAL_VALUE, .value = values[i]};
    for (size_t i = 0; i < c->dropped.len; i++) c->dropped.data[i]->current = POISON_VAL;
}

/* Called at the end of each region: notes the variables an error poisoned inside it. */
static void carried_note(Carried *c) {
    for (size_t i = 0; i < c->vars.len; i++) c->poisoned[i] |= c->vars.data[i]->current.kind != VAL_VALUE;
}

/* After the op: the carried variables take its results, except those poisoned. */
static void carried_end(Carried *c, IrValue *const *results) {
    set_carried(c, results);
    for (size_t i = 0; i < c->vars.len; i++)
        if (c->poisoned[i]) c->vars.data[i]->current = POISON_VAL;
    vec_free(&c->vars);
    vec_free(&c->dropped);
    free(c->poisoned);
}

static void emit_yield(Lower *L, OpCode code, IrValue *first, const Carried *c, SrcLoc loc) {
    size_t n = c->vars.len + (first ? 1 : 0);
    IrValue **ops = xmalloc(sizeof(IrValue *) * (n + 1));
    size_t k = 0;
    if (first) ops[k++] = first;
    bool ok = true;
    for (size_t i = 0; i < c->vars.len; i++) {
        ok = ok && c->vars.data[i]->current.kind == VAL_VALUE;
        ops[k++] = ok ? c->vars.data[i]->current.value : NULL;
    }
    if (ok) {
        L->b.loc = loc;
        ir_build(&L->b, code, ops, (uint32_t)n, NULL, 0);
    }
    free(ops);
}

static IrValue *scalar_int(Lower *L, Val v, ElemType e, const AstNode *at, const char *what) {
    IrValue *x = lower_materialize(L, v, e, at->loc);
    if (!x) return NULL;
    char tn[64];
    if (x->type->kind != TY_TILE || x->type->rank != 0 || !elem_eq(x->type->elem, e)) {
        diag_error(L->diags, at->loc, "%s must be a scalar of type %s, found %s", what, elem_name(e, tn),
                   lower_type_str(x->type, tn + 16, sizeof tn - 16));
        return NULL;
    }
    return x;
}

/* A `for` that break or return may leave is a while loop, which stops at once:
 *   iv = lo; while iv < hi && step > 0 && !flags { let NAME = iv; iv = next; body }
 * where next is hi when iv + step would reach or pass it (their distance is taken as an
 * unsigned number, which cannot overflow while iv < hi), so that iv never wraps around: the
 * iterations are those of the VM's `for`. */
/* The body of a for loop (either form) in its region: the induction variable bound to `iv`
 * (NULL: poisoned, the header had an error), the carried values yielded, the builder and the
 * outer loop's break/continue flags restored. */
static void loop_body(Lower *L, const AstNode *s, IrValue *iv, int exits, Carried *c, IrBuilder saved, IrOp *op,
                      Binding *outer_break, Binding *outer_continue) {
    scope_push(L);
    Binding *name = bind(L, s->name, BIND_LET, s->loc);
    name->current = iv ? (Val){.kind = VAL_VALUE, .value = iv} : POISON_VAL;
    L->loops++;
    if (exits & EXIT_CONTINUE) L->flag_continue = new_flag(L, "continue", s->loc);
    lower_block(L, s->body);
    L->loops--;
    scope_pop(L);
    carried_note(c);
    emit_yield(L, OP_YIELD, NULL, c, s->body->loc);
    L->b = saved;
    carried_end(c, op->results);
    L->flag_break = outer_break;
    L->flag_continue = outer_continue;
}

static void lower_for_while(Lower *L, const AstNode *s, IrValue *lo, IrValue *hi, IrValue *step, bool header_ok,
                            int exits) {
    Binding *outer_break = L->flag_break, *outer_continue = L->flag_continue;
    L->flag_break = exits & EXIT_BREAK ? new_flag(L, "break", s->loc) : NULL;
    L->flag_continue = NULL;
    Binding iv = {.name = "for", .kind = BIND_VAR, .loc = s->loc, .current = {.kind = VAL_VALUE, .value = lo},
                  .var_type = lo->type};
    Carried c;
    carried_begin(L, s->body, NULL, &c);
    vec_push(&c.vars, &iv); /* carried_begin left room for one more in c.poisoned */
    size_t n = c.vars.len;
    IrValue **vals = xmalloc(sizeof(IrValue *) * (n + 1));
    const IrType **types = xmalloc(sizeof(IrType *) * (n + 1));
    carried_values(&c, vals);
    for (size_t i = 0; i < n; i++) types[i] = vals[i]->type;
    L->b.loc = s->loc;
    IrOp *op = ir_build(&L->b, OP_WHILE, vals, (uint32_t)n, types, (uint32_t)n);
    IrBuilder saved = L->b;
    const IrType *et = lo->type;
    ElemType e = et->elem, u = elem_uint(e.bits);
    const IrType *ut = ir_scalar_type(L->module, u);
    /* the condition */
    IrRegion *before = ir_op_add_region(op);
    for (size_t i = 0; i < n; i++) vals[i] = ir_region_add_arg(before, types[i], c.vars.data[i]->name);
    ir_builder_at_end(&L->b, before);
    set_carried(&c, vals);
    L->b.loc = s->loc;
    IrValue *cond = ir_binary(&L->b, OP_AND, ir_cmp(&L->b, CMP_LT, iv.current.value, hi),
                              ir_cmp(&L->b, CMP_GT, step, ir_const_int(&L->b, et, 0)));
    IrValue *run = flags_clear(L, exits & (EXIT_BREAK | EXIT_RETURN), s->loc);
    if (run) cond = ir_binary(&L->b, OP_AND, cond, run);
    carried_note(&c);
    emit_yield(L, OP_CONDITION, cond, &c, s->loc);
    /* the body: the variable, the next one, the statements */
    IrRegion *body = ir_op_add_region(op);
    for (size_t i = 0; i < n; i++) vals[i] = ir_region_add_arg(body, types[i], c.vars.data[i]->name);
    ir_builder_at_end(&L->b, body);
    set_carried(&c, vals);
    IrValue *cur = iv.current.value;
    L->b.loc = s->loc;
    IrValue *ucur = e.kind == EK_UINT ? cur : ir_op1(&L->b, OP_CAST, ut, cur);
    IrValue *uhi = e.kind == EK_UINT ? hi : ir_op1(&L->b, OP_CAST, ut, hi);
    IrValue *ustep = e.kind == EK_UINT ? step : ir_op1(&L->b, OP_CAST, ut, step);
    IrValue *last = ir_cmp(&L->b, CMP_LE, ir_binary(&L->b, OP_SUB, uhi, ucur), ustep);
    IrValue *sel[3] = {last, hi, ir_binary(&L->b, OP_ADD, cur, step)};
    iv.current.value = ir_build(&L->b, OP_SELECT, sel, 3, &et, 1)->results[0];
    loop_body(L, s, header_ok ? cur : NULL, exits, &c, saved, op, outer_break, outer_continue);
    free(vals);
    free(types);
}

/* The options of a loop's `pipeline(N, name = value, ...)` (lang/SPEC.md 4.4); today one,
 * `specialize`: 1 asks the stages pass for warp roles, 2 for their ping-pong schedule, 0 forbids them. Returns its value, or -1
 * when the source does not give it (the global default applies) or gives it wrongly (reported). */
static int64_t lower_pipeline_options(Lower *L, const AstNode *s) {
    int64_t specialize = -1;
    const AstNode *seen = NULL;
    for (uint32_t i = 0; s->args && i < s->args->len; i++) {
        const AstNode *o = s->args->items[i];
        if (strcmp(o->name, "specialize") != 0) {
            diag_error(L->diags, o->loc, "unknown pipeline option '%s' (the options: specialize)", o->name);
            continue;
        }
        if (seen) {
            diag_error(L->diags, o->loc, "pipeline option 'specialize' given twice");
            continue;
        }
        seen = o;
        int64_t v;
        if (!lower_const_int(L, o->lhs, "the pipeline option 'specialize'", &v)) continue;
        if (v < 0 || v > 2) {
            diag_error(L->diags, o->lhs->loc,
                       "specialize must be 0 (never), 1 (ask for warp roles) or 2 (ask for the ping-pong schedule), "
                       "found %lld",
                       (long long)v);
            continue;
        }
        specialize = v;
    }
    return specialize;
}

/* A loop whose header has an error is still lowered, with placeholder bounds and a poisoned
 * induction variable, so that the errors in its body are reported too; the IR is dropped. */
static void lower_for(Lower *L, const AstNode *s) {
    Val lo = lower_expr(L, s->lhs), hi = lower_expr(L, s->rhs);
    Val step = s->step ? lower_expr(L, s->step) : (Val){.kind = VAL_CONST, .c = {.i = 1}};
    int64_t depth = 0;
    if (s->pipeline && lower_const_int(L, s->pipeline, "the pipeline depth", &depth) && (depth < 1 || depth > 8)) {
        diag_error(L->diags, s->pipeline->loc, "pipeline depth must be 1 to 8, found %lld", (long long)depth);
        depth = 0;
    }
    int64_t specialize = lower_pipeline_options(L, s);
    bool header_ok = lo.kind != VAL_POISON && hi.kind != VAL_POISON && step.kind != VAL_POISON;
    if (step.kind == VAL_CONST && !step.c.is_float && !step.is_bool && step.c.i <= 0) {
        diag_error(L->diags, s->step->loc, "loop step must be positive, found %lld", (long long)step.c.i);
        header_ok = false;
    }
    /* the induction variable's type: the first typed bound, else i32 */
    ElemType e = elem_i32();
    const Val *bounds[3] = {&lo, &hi, &step};
    for (int i = 2; i >= 0; i--)
        if (bounds[i]->kind == VAL_VALUE) e = bounds[i]->value->type->elem;
    IrValue *vlo = NULL, *vhi = NULL, *vstep = NULL;
    if (header_ok && !elem_is_integer(e)) {
        diag_error(L->diags, s->lhs->loc, "loop bounds must be integers");
        header_ok = false;
    }
    if (header_ok) {
        vlo = scalar_int(L, lo, e, s->lhs, "the loop start");
        vhi = scalar_int(L, hi, e, s->rhs, "the loop end");
        vstep = scalar_int(L, step, e, s->step ? s->step : s->lhs, "the loop step");
        header_ok = vlo && vhi && vstep;
    }
    if (!header_ok) {
        e = elem_i32();
        L->b.loc = s->loc;
        vlo = vhi = ir_const_int(&L->b, ir_scalar_type(L->module, e), 0);
        vstep = ir_const_int(&L->b, vlo->type, 1);
    }

    int exits = may_exit(L, s->body, false);
    if (exits & (EXIT_BREAK | EXIT_RETURN)) {
        lower_for_while(L, s, vlo, vhi, vstep, header_ok, exits);
        return;
    }
    Binding *outer_break = L->flag_break, *outer_continue = L->flag_continue;
    L->flag_break = NULL;
    L->flag_continue = NULL;
    Carried c;
    carried_begin(L, s->body, NULL, &c);
    size_t n = c.vars.len;
    IrValue **ops = xmalloc(sizeof(IrValue *) * (n + 3));
    const IrType **types = xmalloc(sizeof(IrType *) * (n + 1));
    ops[0] = vlo, ops[1] = vhi, ops[2] = vstep;
    carried_values(&c, ops + 3);
    for (size_t i = 0; i < n; i++) types[i] = ops[3 + i]->type;
    L->b.loc = s->loc;
    IrOp *op = ir_build(&L->b, OP_FOR, ops, (uint32_t)(n + 3), types, (uint32_t)n);
    op->ints[0] = depth, op->nints = 1;
    if (depth > 0 && specialize >= 0) op->ints[1] = specialize, op->nints = 2; /* ir/attr.def */
    IrRegion *body = ir_op_add_region(op);
    IrValue *iv = ir_region_add_arg(body, ir_scalar_type(L->module, e), s->name);
    for (size_t i = 0; i < n; i++) ops[3 + i] = ir_region_add_arg(body, types[i], c.vars.data[i]->name);
    IrBuilder saved = L->b;
    ir_builder_at_end(&L->b, body);
    set_carried(&c, ops + 3);
    loop_body(L, s, header_ok ? iv : NULL, exits, &c, saved, op, outer_break, outer_continue);
    free(ops);
    free(types);
}

/* An `if` whose condition has an error still lowers both branches (on a placeholder
 * condition) so that their errors are reported too. */
static void lower_if(Lower *L, const AstNode *s) {
    Val c = lower_expr(L, s->cond);
    IrValue *cv = NULL;
    char tn[64];
    if (c.kind == VAL_CONST) {
        if (c.is_bool) {
            const AstNode *taken = c.c.i ? s->body : s->else_body;
            if (taken && taken->kind == AST_IF) lower_if(L, taken);
            else if (taken) lower_block(L, taken);
            return;
        }
        diag_error(L->diags, s->cond->loc, "if condition must be a bool, found %s constant",
                   c.c.is_float ? "a float" : "an integer");
    } else if (c.kind == VAL_VALUE) {
        cv = c.value;
        if (cv->type->kind != TY_TILE || cv->type->rank != 0 || !elem_is_bool(cv->type->elem)) {
            diag_error(L->diags, s->cond->loc, "if condition must be a scalar bool, found %s%s",
                       lower_type_str(cv->type, tn, sizeof tn),
                       cv->type->rank > 0 ? "; use where() to select between tiles" : "");
            cv = NULL;
        }
    }
    if (!cv) {
        L->b.loc = s->loc;
        cv = ir_const_int(&L->b, ir_scalar_type(L->module, elem_bool()), 0);
    }
    lower_branches(L, cv, s->body, s->else_body, s->loc);
}

/* An if op on cv with then_block and else_block (a block, an AST_IF or NULL) as its regions,
 * carrying the variables they assign. */
static void lower_branches(Lower *L, IrValue *cv, const AstNode *then_block, const AstNode *else_block, SrcLoc loc) {
    Carried carried;
    carried_begin(L, then_block, else_block, &carried);
    size_t n = carried.vars.len;
    IrValue **before = xmalloc(sizeof(IrValue *) * (n + 1));
    const IrType **types = xmalloc(sizeof(IrType *) * (n + 1));
    carried_values(&carried, before);
    for (size_t i = 0; i < n; i++) types[i] = before[i]->type;
    L->b.loc = loc;
    IrOp *op = ir_build(&L->b, OP_IF, &cv, 1, types, (uint32_t)n);
    IrBuilder saved = L->b;
    for (int branch = 0; branch < 2; branch++) {
        IrRegion *r = ir_op_add_region(op);
        ir_builder_at_end(&L->b, r);
        set_carried(&carried, before);
        const AstNode *blk = branch == 0 ? then_block : else_block;
        if (blk && blk->kind == AST_IF) lower_if(L, blk);
        else if (blk) lower_block(L, blk);
        carried_note(&carried);
        emit_yield(L, OP_YIELD, NULL, &carried, blk ? blk->loc : loc);
    }
    L->b = saved;
    carried_end(&carried, op->results);
    free(before);
    free(types);
}

static void lower_while(Lower *L, const AstNode *s) {
    int exits = may_exit(L, s->body, false);
    Binding *outer_break = L->flag_break, *outer_continue = L->flag_continue;
    L->flag_break = exits & EXIT_BREAK ? new_flag(L, "break", s->loc) : NULL;
    L->flag_continue = NULL;
    Carried c;
    carried_begin(L, s->body, NULL, &c);
    size_t n = c.vars.len;
    IrValue **init = xmalloc(sizeof(IrValue *) * (n + 1));
    const IrType **types = xmalloc(sizeof(IrType *) * (n + 1));
    carried_values(&c, init);
    for (size_t i = 0; i < n; i++) types[i] = init[i]->type;
    L->b.loc = s->loc;
    IrOp *op = ir_build(&L->b, OP_WHILE, init, (uint32_t)n, types, (uint32_t)n);
    IrBuilder saved = L->b;
    IrRegion *before = ir_op_add_region(op);
    IrValue **args = xmalloc(sizeof(IrValue *) * (n + 1));
    for (size_t i = 0; i < n; i++) args[i] = ir_region_add_arg(before, types[i], c.vars.data[i]->name);
    ir_builder_at_end(&L->b, before);
    set_carried(&c, args);
    Val cond = lower_expr(L, s->cond);
    IrValue *cv = cond.kind == VAL_POISON ? NULL : lower_default(L, cond, s->cond->loc);
    char tn[64];
    if (cv && (cv->type->kind != TY_TILE || cv->type->rank != 0 || !elem_is_bool(cv->type->elem))) {
        diag_error(L->diags, s->cond->loc, "while condition must be a scalar bool, found %s%s",
                   lower_type_str(cv->type, tn, sizeof tn),
                   cv->type->kind == TY_TILE && cv->type->rank == 0 && elem_is_integer(cv->type->elem)
                       ? "; compare it, as in 'n != 0'"
                       : "");
        cv = NULL;
    }
    IrValue *run = cv ? flags_clear(L, exits & (EXIT_BREAK | EXIT_RETURN), s->cond->loc) : NULL;
    if (run) cv = ir_binary(&L->b, OP_AND, cv, run);
    carried_note(&c);
    if (cv) emit_yield(L, OP_CONDITION, cv, &c, s->cond->loc);
    IrRegion *body = ir_op_add_region(op);
    for (size_t i = 0; i < n; i++) args[i] = ir_region_add_arg(body, types[i], c.vars.data[i]->name);
    ir_builder_at_end(&L->b, body);
    set_carried(&c, args);
    L->loops++;
    if (exits & EXIT_CONTINUE) L->flag_continue = new_flag(L, "continue", s->loc);
    lower_block(L, s->body);
    L->loops--;
    carried_note(&c);
    emit_yield(L, OP_YIELD, NULL, &c, s->body->loc);
    L->b = saved;
    carried_end(&c, op->results);
    L->flag_break = outer_break;
    L->flag_continue = outer_continue;
    free(args);
    free(init);
    free(types);
}

/* `let (a, b) = f(...);`: f is a device function that returns as many values (the call
 * leaves them in L->tuple_results when it is L->tuple_call). */
static void lower_let_tuple(Lower *L, const AstNode *s) {
    const AstNode *init = s->lhs;
    uint32_t n = s->args->len;
    const AstNode *outer = L->tuple_call;
    L->tuple_call = init;
    L->tuple_results = NULL;
    L->ntuple_results = 0;
    Val v = lower_expr(L, init);
    IrValue **results = L->tuple_results;
    uint32_t nresults = L->ntuple_results;
    L->tuple_call = outer;
    bool ok = v.kind != VAL_POISON;
    IrValue *one = NULL;
    if (ok && !results && n == 1 && v.kind == VAL_VALUE) { /* let (a) = f(...): one value */
        one = v.value;
        results = &one;
        nresults = 1;
    }
    if (ok && !results) {
        diag_error(L->diags, init->loc, "let (...) = needs a call of a device function that returns %u values; "
                   "this is one value", n);
        ok = false;
    } else if (ok && nresults != n) {
        diag_error(L->diags, init->loc, "'%s' returns %u values, but %u names are given", init->name, nresults, n);
        ok = false;
    }
    for (uint32_t i = 0; i < n; i++) {
        const AstNode *name = s->args->items[i];
        Binding *b = bind(L, name->name, BIND_LET, name->loc);
        b->current = ok ? (Val){.kind = VAL_VALUE, .value = results[i]} : POISON_VAL;
    }
}

static void lower_stmt(Lower *L, const AstNode *s) {
    L->b.loc = s->loc;
    switch (s->kind) {
    case AST_LET:
    case AST_VAR: lower_decl_stmt(L, s); return;
    case AST_ASSIGN: lower_assign(L, s); return;
    case AST_EXPR_STMT: {
        const AstNode *saved = L->statement_expr;
        L->statement_expr = s->lhs;
        lower_expr(L, s->lhs);
        L->statement_expr = saved;
        return;
    }
    case AST_FOR: lower_for(L, s); return;
    case AST_IF: lower_if(L, s); return;
    case AST_WHILE: lower_while(L, s); return;
    case AST_BLOCK: lower_block(L, s); return;
    case AST_RETURN:
        if (L->in_function)
            diag_error(L->diags, s->loc, "return must be the last statement of a device function");
        else if (s->lhs)
            diag_error(L->diags, s->loc, "kernels do not return values; store results into tensors "
                       "('return;' ends this block's work)");
        else
            set_flag(L, L->flag_return, true);
        return;
    case AST_BREAK:
    case AST_CONTINUE:
        if (!L->loops)
            diag_error(L->diags, s->loc, "'%s' outside a loop", s->kind == AST_BREAK ? "break" : "continue");
        else
            set_flag(L, s->kind == AST_BREAK ? L->flag_break : L->flag_continue, true);
        return;
    case AST_LET_TUPLE: lower_let_tuple(L, s); return;
    default:
        diag_error(L->diags, s->loc, "expected a statement");
        return;
    }
}

/* Statements from..end of a list; those after one that may break, continue or return run
 * under `if !flag` (see may_exit). */
static void lower_stmts(Lower *L, const AstList *list, uint32_t from) {
    for (uint32_t i = from; list && i < list->len; i++) {
        const AstNode *s = list->items[i];
        lower_stmt(L, s);
        int exits = may_exit(L, s, false);
        if (!exits || i + 1 == list->len) continue;
        IrValue *run = flags_clear(L, exits, s->loc);
        if (!run) continue;
        AstNode *rest = ast_new(L->file, AST_BLOCK, list->items[i + 1]->loc);
        rest->args = ast_list_new(L->file);
        for (uint32_t j = i + 1; j < list->len; j++) ast_list_push(L->file, rest->args, list->items[j]);
        lower_branches(L, run, rest, NULL, rest->loc);
        return;
    }
}

static void lower_block(Lower *L, const AstNode *block) {
    scope_push(L);
    lower_stmts(L, block->args, 0);
    scope_pop(L);
}

/* ---- device functions ------------------------------------------------------------------------- */
typedef struct SavedState {
    IrBuilder b;
    size_t scope_len, marks_len;
    IrRegion *entry;
    VEC(IrValue *) dim_cache;
    bool in_function;
    const IrType *return_type;
    Val returned;
    bool has_return;
} SavedState;

static void describe_arg(Val v, Strbuf *key) {
    char tn[64];
    if (v.kind == VAL_CONST) {
        if (v.is_bool) sb_printf(key, "|b%lld", (long long)v.c.i);
        else if (v.c.is_float) sb_printf(key, "|f%.17g", v.c.f);
        else sb_printf(key, "|i%lld", (long long)v.c.i);
    } else {
        sb_printf(key, "|%s", lower_type_str(v.value->type, tn, sizeof tn));
    }
}

/* `return a, b;` at the end of device function decl: f gets one result per value. */
static void lower_multi_return(Lower *L, const AstNode *decl, IrFunction *f, const AstNode *st, bool declared) {
    uint32_t n = st->args->len;
    L->has_return = true;
    if (declared) {
        diag_error(L->diags, st->loc, "function '%s' declares one result type but returns %u values; "
                   "leave out '-> type' to return several", decl->name, n);
        return;
    }
    IrValue **values = xcalloc(n, sizeof(IrValue *));
    bool ok = true;
    for (uint32_t i = 0; i < n; i++) {
        const AstNode *e = st->args->items[i];
        Val v = lower_expr(L, e);
        values[i] = v.kind == VAL_POISON ? NULL : lower_default(L, v, e->loc);
        if (values[i] && values[i]->type->kind == TY_TENSOR) {
            diag_error(L->diags, e->loc, "device functions cannot return tensors");
            values[i] = NULL;
        }
        ok = ok && values[i];
    }
    if (ok) {
        L->b.loc = st->loc;
        ir_build(&L->b, OP_RETURN, values, n, NULL, 0);
        f->result_types = ARENA_ARRAY(&L->module->arena, const IrType *, n);
        for (uint32_t i = 0; i < n; i++) f->result_types[i] = values[i]->type;
        f->nresults = n;
    }
    free(values);
}

static FnInstance *instantiate(Lower *L, const AstNode *decl, Val *args, const IrParam *tensor_params,
                               const char *key) {
    int errors_before = L->diags->errors;
    /* name: f, then f.1, f.2 ... per further instance */
    int count = 0;
    for (FnInstance *i = L->instances; i; i = i->next) count += i->decl == decl;
    char name[300];
    if (count) snprintf(name, sizeof name, "%.250s.%d", decl->name, count);
    else snprintf(name, sizeof name, "%.250s", decl->name);
    IrFunction *f = ir_function_new(L->module, name, false, decl->loc);
    FnInstance *inst = ARENA_NEW(&L->module->arena, FnInstance);
    inst->decl = decl;
    inst->key = arena_strdup(&L->module->arena, key);
    inst->function = f;
    inst->next = L->instances;
    L->instances = inst;

    SavedState s = {L->b, L->scope.len, L->scope_marks.len, L->entry, {0}, L->in_function,
                    L->return_type, L->returned, L->has_return};
    s.dim_cache.data = L->dim_cache.data, s.dim_cache.len = L->dim_cache.len, s.dim_cache.cap = L->dim_cache.cap;
    L->dim_cache.data = NULL, L->dim_cache.len = L->dim_cache.cap = 0;
    /* a device function sees its parameters only: the caller's names are below the floor
     * (they are values of another function, which its body must not use) */
    vec_push(&L->scope_marks, L->scope.len);
    size_t saved_floor = L->scope_floor;
    L->scope_floor = L->scope.len;
    /* the caller's loops and return are not the function's */
    Binding *outer_flags[3] = {L->flag_break, L->flag_continue, L->flag_return};
    int outer_loops = L->loops;
    L->flag_break = L->flag_continue = L->flag_return = NULL;
    L->loops = 0;
    L->entry = f->body;
    L->in_function = true;
    L->return_type = NULL;
    L->has_return = false;
    L->returned = POISON_VAL;
    ir_builder_at_end(&L->b, f->body);

    uint32_t np = decl->params ? decl->params->len : 0, nvalue = 0;
    for (uint32_t i = 0; i < np; i++) nvalue += args[i].kind == VAL_VALUE;
    f->params = ARENA_ARRAY(&L->module->arena, IrParam, nvalue ? nvalue : 1);
    f->nparams = nvalue;
    /* Bindings made here must not see the caller's names: search stops at the function mark. */
    size_t base = L->scope.len;
    for (uint32_t i = 0, k = 0; i < np; i++) {
        const AstNode *p = decl->params->items[i];
        Binding *b;
        if (args[i].kind == VAL_CONST) {
            b = bind(L, p->name, BIND_CONST, p->loc);
            b->current = args[i];
            continue;
        }
        IrValue *arg = ir_region_add_arg(f->body, args[i].value->type, p->name);
        f->params[k].name = arena_strdup(&L->module->arena, p->name);
        f->params[k].loc = p->loc;
        if (arg->type->kind == TY_TENSOR) {
            memcpy(f->params[k].dims, tensor_params[i].dims, sizeof f->params[k].dims);
            b = bind(L, p->name, BIND_TENSOR, p->loc);
            b->param_index = (int)k;
        } else {
            b = bind(L, p->name, BIND_LET, p->loc);
            b->current = (Val){.kind = VAL_VALUE, .value = arg};
        }
        k++;
    }
    (void)base;
    const IrType *declared = NULL;
    if (decl->type && !lower_type(L, decl->type, &declared)) declared = NULL;
    const AstNode *body = decl->body;
    uint32_t nstmt = body->args ? body->args->len : 0;
    scope_push(L);
    for (uint32_t i = 0; i < nstmt; i++) {
        const AstNode *st = body->args->items[i];
        if (st->kind == AST_RETURN && i == nstmt - 1) {
            L->b.loc = st->loc;
            if (!st->lhs) {
                if (declared) diag_error(L->diags, st->loc, "function '%s' must return a value", decl->name);
                ir_build(&L->b, OP_RETURN, NULL, 0, NULL, 0);
                L->has_return = true;
                continue;
            }
            if (st->args) {
                lower_multi_return(L, decl, f, st, declared != NULL);
                continue;
            }
            Val v = lower_expr(L, st->lhs);
            IrValue *x = NULL;
            if (v.kind != VAL_POISON) x = declared ? lower_coerce(L, v, declared, st->lhs->loc, "return value")
                                                   : lower_default(L, v, st->lhs->loc);
            if (x && x->type->kind == TY_TENSOR) {
                diag_error(L->diags, st->lhs->loc, "device functions cannot return tensors");
                x = NULL;
            }
            if (x) {
                L->b.loc = st->loc;
                ir_build(&L->b, OP_RETURN, &x, 1, NULL, 0);
                f->result_types = ARENA_ARRAY(&L->module->arena, const IrType *, 1);
                f->result_types[0] = x->type;
                f->nresults = 1;
            }
            L->has_return = true;
            continue;
        }
        lower_stmt(L, st);
    }
    scope_pop(L);
    if (!L->has_return) {
        if (declared) diag_error(L->diags, decl->loc, "function '%s' must end with a return statement", decl->name);
        L->b.loc = decl->loc;
        ir_build(&L->b, OP_RETURN, NULL, 0, NULL, 0);
    }
    vec_free(&L->dim_cache);
    L->flag_break = outer_flags[0], L->flag_continue = outer_flags[1], L->flag_return = outer_flags[2];
    L->loops = outer_loops;
    L->b = s.b;
    L->scope.len = s.scope_len;
    L->scope_marks.len = s.marks_len;
    L->entry = s.entry;
    L->dim_cache.data = s.dim_cache.data, L->dim_cache.len = s.dim_cache.len, L->dim_cache.cap = s.dim_cache.cap;
    L->in_function = s.in_function;
    L->return_type = s.return_type;
    L->returned = s.returned;
    L->has_return = s.has_return;
    L->scope_floor = saved_floor;
    inst->failed = L->diags->errors > errors_before;
    return inst;
}

/* How deep device functions may call each other (lang/SPEC.md section 7). */
enum { MAX_CALL_DEPTH = 100 };

Val lower_call_function(Lower *L, const AstNode *call, const AstNode *decl) {
    uint32_t np = decl->params ? decl->params->len : 0;
    uint32_t na = call->args ? call->args->len : 0;
    if (na != np) {
        diag_error(L->diags, call->loc, "'%s' takes %u argument%s, %u given", decl->name, np, np == 1 ? "" : "s", na);
        return POISON_VAL;
    }
    for (size_t i = 0; i < L->failed_functions.len; i++)
        if (L->failed_functions.data[i] == decl) return POISON_VAL;
    for (size_t i = 0; i < L->call_stack.len; i++)
        if (L->call_stack.data[i] == decl) {
            diag_error(L->diags, call->loc, "recursive call of '%s': device functions are inlined and cannot recurse",
                       decl->name);
            return POISON_VAL;
        }
    if (L->call_stack.len >= MAX_CALL_DEPTH) { /* each level is a lowering inside a lowering: bound the C stack */
        diag_error(L->diags, call->loc, "nesting too deep: device functions calling each other more than %d deep",
                   MAX_CALL_DEPTH);
        return POISON_VAL;
    }
    Val *args = xcalloc(np + 1, sizeof(Val));
    IrParam *tparams = xcalloc(np + 1, sizeof(IrParam));
    Strbuf key = {0};
    bool ok = true;
    for (uint32_t i = 0; i < np; i++) {
        const AstNode *a = call->args->items[i], *p = decl->params->items[i];
        if (a->kind == AST_KWARG) {
            diag_error(L->diags, a->loc, "device functions take positional arguments only");
            ok = false;
            continue;
        }
        Val v = lower_expr(L, a);
        if (v.kind == VAL_POISON) {
            ok = false;
            continue;
        }
        if (p->type) {
            const IrType *pt;
            if (!lower_type(L, p->type, &pt)) {
                vec_push(&L->failed_functions, decl);
                ok = false;
                break;
            }
            char what[300];
            snprintf(what, sizeof what, "argument '%.100s' of '%.100s'", p->name, decl->name);
            IrValue *x = lower_coerce(L, v, pt, a->loc, what);
            if (!x) {
                ok = false;
                continue;
            }
            v = (Val){.kind = VAL_VALUE, .value = x};
        }
        if (v.kind == VAL_VALUE && v.value->type->kind == TY_TENSOR) {
            IrValue *t = v.value;
            if (t->region != L->entry) tile_unreachable();
            tparams[i] = L->b.function->params[t->index];
        }
        args[i] = v;
        describe_arg(v, &key);
    }
    Val result = POISON_VAL;
    FnInstance *inst = NULL;
    if (ok) {
        for (FnInstance *i = L->instances; i; i = i->next)
            if (i->decl == decl && strcmp(i->key, sb_str(&key)) == 0) inst = i;
        if (!inst) {
            bool first = true;
            for (FnInstance *i = L->instances; i; i = i->next) first = first && i->decl != decl;
            if (first) check_unique(L, decl);
            vec_push(&L->call_stack, decl);
            inst = instantiate(L, decl, args, tparams, sb_str(&key));
            L->call_stack.len--;
        }
        ok = !inst->failed; /* its errors are reported: the call is poison, silently */
        if (!ok) vec_push(&L->failed_functions, decl);
    }
    if (ok) {
        IrFunction *f = inst->function;
        IrValue **ops = xcalloc(np + 1, sizeof(IrValue *));
        uint32_t n = 0;
        for (uint32_t i = 0; i < np; i++)
            if (args[i].kind == VAL_VALUE) ops[n++] = args[i].value;
        L->b.loc = call->loc;
        IrOp *op = ir_build(&L->b, OP_CALL, ops, n, f->result_types, f->nresults);
        op->callee = f;
        free(ops);
        if (f->nresults) result = (Val){.kind = VAL_VALUE, .value = op->results[0]};
        else if (call != L->statement_expr)
            diag_error(L->diags, call->loc, "'%s' returns no value", decl->name);
        if (f->nresults > 1 && call == L->tuple_call) {
            L->tuple_results = op->results;
            L->ntuple_results = f->nresults;
        } else if (f->nresults > 1 && call != L->statement_expr) {
            diag_error(L->diags, call->loc, "'%s' returns %u values; bind them with let (a, b, ...) = %s(...)",
                       decl->name, f->nresults, decl->name);
            result = POISON_VAL;
        }
    }
    sb_free(&key);
    free(args);
    free(tparams);
    return result;
}

/* ---- kernels --------------------------------------------------------------------------------- */
static SrcLoc file_loc(AstFile *file) { return (SrcLoc){&file->source, 1, 1}; }

/* A parameter whose type has an error is bound as poison (its uses stay silent), and the
 * sizes named in its tensor type are still bound, so one mistake gives one diagnostic. */
static bool lower_params(Lower *L, const AstNode *k, IrFunction *f) {
    uint32_t np = k->params ? k->params->len : 0;
    f->params = ARENA_ARRAY(&L->module->arena, IrParam, np ? np : 1);
    f->nparams = np;
    bool ok = true;
    /* a size used in a later parameter's type (`y: tensor<f32>[N + 1]`) is evaluated (then
     * rejected: not a constant) with the body as its region */
    L->entry = f->body;
    ir_builder_at_end(&L->b, f->body);
    for (uint32_t i = 0; i < np; i++) {
        const AstNode *p = k->params->items[i];
        IrParam *ip = &f->params[i];
        ip->name = arena_strdup(&L->module->arena, p->name);
        ip->loc = p->loc;
        const IrType *t = NULL;
        ElemType e = elem_f32();
        bool usable = true;
        if (!p->type) {
            diag_error(L->diags, p->loc, "kernel parameter '%s' needs a type", p->name);
            usable = false;
        } else if (!lower_elem(L, p->type, &e)) {
            usable = false;
            e = elem_f32();
        }
        if (p->type && p->type->type_kind == TYPE_TENSOR) {
            uint32_t ndims = p->type->shape ? p->type->shape->len : 0;
            uint32_t rank = ndims;
            if (rank == 0 || rank > IR_MAX_RANK) {
                diag_error(L->diags, p->type->loc, "a tensor needs 1 to %d dimensions", IR_MAX_RANK);
                usable = false;
                rank = rank ? IR_MAX_RANK : 1;
            }
            /* the arguments first: a later dimension may name an earlier one (then it is
             * rejected, not a constant, but its DIM op needs the argument) */
            t = ir_tensor_type(L->module, e, (int)rank);
            ir_region_add_arg(f->body, t, p->name);
            ir_region_add_arg(f->grid, t, p->name);
            for (uint32_t d = 0; d < rank && d < ndims; d++) {
                const AstNode *dim = p->type->shape->items[d];
                Binding *b = dim->kind == AST_NAME ? lower_lookup(L, dim->name) : NULL;
                if (dim->kind == AST_NAME && (!b || b->kind == BIND_DIM)) {
                    ip->dims[d].symbol = arena_strdup(&L->module->arena, dim->name);
                    if (!b) {
                        b = bind(L, dim->name, BIND_DIM, dim->loc);
                        b->param_index = (int)i;
                        b->axis = (int)d;
                    }
                    continue;
                }
                int64_t size = 0;
                if (!lower_const_int(L, dim, "a tensor dimension", &size)) {
                    usable = false;
                } else if (size < 0 || size > INT32_MAX) {
                    diag_error(L->diags, dim->loc, "tensor dimension must be 0 to %d, found %lld", INT32_MAX, (long long)size);
                    usable = false;
                    size = 0;
                }
                ip->dims[d].size = size;
            }
        } else {
            if (p->type && p->type->type_kind == TYPE_TILE) {
                diag_error(L->diags, p->type->loc, "kernel parameters are tensors or scalars; pass a tensor and load the tile");
                usable = false;
            }
            t = ir_scalar_type(L->module, e);
            ir_region_add_arg(f->body, t, p->name);
            ir_region_add_arg(f->grid, t, p->name);
        }
        int errors = L->diags->errors;
        Binding *b = bind(L, p->name, usable ? BIND_TENSOR : BIND_LET, p->loc); /* reports duplicates */
        b->param_index = (int)i;
        b->current = POISON_VAL;
        ok = ok && usable && L->diags->errors == errors;
    }
    return ok;
}

bool is_launch_size(const AstNode *k, const char *name) {
    for (uint32_t i = 0; k->const_params && i < k->const_params->len; i++)
        if (strcmp(k->const_params->items[i]->name, name) == 0) return false;
    for (uint32_t i = 0; k->params && i < k->params->len; i++) {
        const AstNode *t = k->params->items[i]->type;
        if (!t || t->type_kind != TYPE_TENSOR || !t->shape) continue;
        for (uint32_t d = 0; d < t->shape->len; d++)
            if (t->shape->items[d]->kind == AST_NAME && strcmp(t->shape->items[d]->name, name) == 0) return true;
    }
    return false;
}

/* A launch size named in a compile-time default (`<BLOCK = N>`), or NULL. */
static const AstNode *find_launch_size(const AstNode *k, const AstNode *e) {
    if (!e) return NULL;
    if (e->kind == AST_NAME) return is_launch_size(k, e->name) ? e : NULL;
    const AstNode *found = find_launch_size(k, e->lhs);
    if (!found) found = find_launch_size(k, e->rhs);
    for (uint32_t i = 0; !found && e->args && i < e->args->len; i++) found = find_launch_size(k, e->args->items[i]);
    return found;
}

static bool bind_constants(Lower *L, const AstNode *k, const ConstBinding *consts, size_t nconsts) {
    bool ok = true;
    uint32_t nc = k->const_params ? k->const_params->len : 0;
    for (size_t j = 0; j < nconsts; j++) {
        bool found = false;
        for (uint32_t i = 0; i < nc; i++) found = found || strcmp(k->const_params->items[i]->name, consts[j].name) == 0;
        if (!found) {
            diag_error(L->diags, k->loc, "kernel '%s' has no compile-time parameter '%s'", k->name, consts[j].name);
            ok = false;
        }
    }
    for (uint32_t i = 0; i < nc; i++) {
        const AstNode *cp = k->const_params->items[i];
        Val v = POISON_VAL;
        const ConstBinding *given = NULL;
        for (size_t j = 0; j < nconsts; j++)
            if (strcmp(consts[j].name, cp->name) == 0) given = &consts[j];
        if (given) {
            v = given->is_float ? (Val){.kind = VAL_CONST, .c = {.is_float = true, .f = given->f}}
                                : (Val){.kind = VAL_CONST, .c = {.i = given->i}};
        } else if (cp->lhs && find_launch_size(k, cp->lhs)) {
            const AstNode *size = find_launch_size(k, cp->lhs);
            diag_error(L->diags, size->loc, "the default of '%s' must be a compile-time constant; '%s' is a size bound at launch",
                       cp->name, size->name);
        } else if (cp->lhs) {
            v = lower_expr(L, cp->lhs);
            if (v.kind == VAL_VALUE) {
                diag_error(L->diags, cp->lhs->loc, "the default of '%s' must be a compile-time constant", cp->name);
                v = POISON_VAL;
            }
        } else {
            diag_error(L->diags, cp->loc, "compile-time parameter '%s' has no default; give it a value (-D %s=...)",
                       cp->name, cp->name);
        }
        if (v.kind == VAL_CONST && cp->type) {
            ElemType e;
            if (cp->type->type_kind != TYPE_SCALAR || !lower_elem(L, cp->type, &e)) {
                if (cp->type->type_kind != TYPE_SCALAR)
                    diag_error(L->diags, cp->type->loc, "compile-time parameters are scalars");
                v = POISON_VAL;
            } else if (elem_is_bool(e)) {
                if (!v.is_bool) {
                    if (v.c.is_float || (v.c.i != 0 && v.c.i != 1)) {
                        diag_error(L->diags, cp->loc, "'%s' is a bool; give true or false", cp->name);
                        v = POISON_VAL;
                    } else {
                        v.is_bool = true;
                    }
                }
            } else if (elem_is_integer(e) && (v.c.is_float || v.is_bool)) {
                diag_error(L->diags, cp->loc, "'%s' is an integer; found a %s", cp->name, v.is_bool ? "bool" : "float");
                v = POISON_VAL;
            } else if (elem_is_float(e) && !v.c.is_float && !v.is_bool) {
                v.c.is_float = true;
                v.c.f = (double)v.c.i;
            }
        }
        if (v.kind == VAL_POISON) ok = false;
        Binding *b = bind(L, cp->name, BIND_CONST, cp->loc);
        b->current = v;
    }
    return ok;
}

static void lower_grid_sizes(Lower *L, const AstNode *k);

/* `check(cond, "message")` after the grid: a condition on sizes and scalars, evaluated with
 * the grid on the host before the launch (OP_CHECK in the grid region); one that is a
 * constant is decided here. */
static void lower_checks(Lower *L, const AstNode *k, IrFunction *f) {
    char tn[64];
    for (uint32_t i = 0; k->checks && i < k->checks->len; i++) {
        const AstNode *c = k->checks->items[i];
        if (autotune_is_clause(c)) continue; /* lower_autotune */
        if (strcmp(c->name, "check") != 0) {
            diag_error(L->diags, c->loc, "unexpected '%s(...)' in the kernel's header; after grid(...) come warps(N), "
                       "check(condition, \"message\") and autotune(...)", c->name);
            continue;
        }
        uint32_t n = c->args ? c->args->len : 0;
        if (n != 2 || c->args->items[0]->kind == AST_KWARG || c->args->items[1]->kind != AST_STRING) {
            diag_error(L->diags, c->loc, "check() takes a condition and a message: check(HQ %% HKV == 0, \"...\")");
            continue;
        }
        const char *msg = c->args->items[1]->name;
        Val v = lower_expr(L, c->args->items[0]);
        if (v.kind == VAL_POISON) continue;
        if (v.kind == VAL_CONST) {
            if (!v.is_bool)
                diag_error(L->diags, c->args->items[0]->loc, "check() needs a bool condition, found %s constant",
                           v.c.is_float ? "a float" : "an integer");
            else if (!v.c.i)
                diag_error(L->diags, c->loc, "check failed: %s (the condition is false for every launch)", msg);
            continue;
        }
        IrValue *cv = v.value;
        if (!type_is_scalar(cv->type) || !elem_is_bool(cv->type->elem)) {
            diag_error(L->diags, c->args->items[0]->loc, "check() needs a bool scalar condition, found %s",
                       lower_type_str(cv->type, tn, sizeof tn));
            continue;
        }
        const char **messages = ARENA_ARRAY(&L->module->arena, const char *, f->ncheck_messages + 1);
        if (f->ncheck_messages) memcpy(messages, f->check_messages, sizeof(char *) * f->ncheck_messages);
        messages[f->ncheck_messages] = arena_strdup(&L->module->arena, msg);
        f->check_messages = messages;
        L->b.loc = c->loc;
        IrOp *op = ir_build(&L->b, OP_CHECK, &cv, 1, NULL, 0);
        op->ints[0] = f->ncheck_messages++, op->nints = 1;
    }
}

static void lower_grid(Lower *L, const AstNode *k, IrFunction *f) {
    L->entry = f->grid;
    L->dim_cache.len = 0;
    ir_builder_at_end(&L->b, f->grid);
    L->in_grid = true;
    lower_checks(L, k, f);
    lower_grid_sizes(L, k);
    L->in_grid = false;
}

static void lower_grid_sizes(Lower *L, const AstNode *k) {
    uint32_t n = k->grid ? k->grid->len : 0;
    if (n == 0 || n > 3) {
        diag_error(L->diags, n > 3 ? k->grid->items[3]->loc : k->loc, "grid(...) takes 1 to 3 sizes, found %u", n);
        return;
    }
    IrValue *dims[3];
    bool ok = true;
    for (uint32_t i = 0; i < n; i++) {
        const AstNode *g = k->grid->items[i];
        Val v = lower_expr(L, g);
        IrValue *x = NULL;
        char tn[64];
        if (v.kind == VAL_CONST) {
            if (!v.c.is_float && !v.is_bool && v.c.i <= 0) {
                diag_error(L->diags, g->loc, "grid size must be positive, found %lld", (long long)v.c.i);
                ok = false;
                continue;
            }
            x = lower_materialize(L, v, elem_i32(), g->loc);
        } else if (v.kind == VAL_VALUE) {
            x = v.value;
            if (x->type->kind != TY_TILE || x->type->rank != 0 || !elem_is_integer(x->type->elem)) {
                diag_error(L->diags, g->loc, "grid sizes must be integer scalars, found %s", lower_type_str(x->type, tn, sizeof tn));
                x = NULL;
            } else if (!elem_eq(x->type->elem, elem_i32())) {
                L->b.loc = g->loc;
                x = ir_op1(&L->b, OP_CAST, ir_scalar_type(L->module, elem_i32()), x);
            }
        }
        ok = ok && x;
        dims[i] = x;
    }
    if (ok) {
        L->b.loc = k->loc;
        ir_build(&L->b, OP_YIELD, dims, n, NULL, 0);
    }
}

/* `warps(N)`: a compile-time power of two from 1 to 32 (at most 1024 threads a block). */
static void lower_warps(Lower *L, const AstNode *k, IrFunction *f) {
    int64_t n;
    if (!k->warps || !lower_const_int(L, k->warps, "the number of warps", &n)) return;
    if (!ir_num_warps_valid(n)) {
        diag_error(L->diags, k->warps->loc, "warps(%lld): the number of warps must be 1, 2, 4, 8, 16 or 32",
                   (long long)n);
        return;
    }
    f->num_warps = (int)n;
}

/* `autotune(...)`: checked here, so that every lowering (`tilec check` too) reports a bad clause;
 * the runtime reads it again to tune (runtime/autotune.c). */
static void lower_autotune(Lower *L, const AstNode *k) {
    Arena arena;
    arena_init(&arena);
    AutotuneSpec spec;
    autotune_read(k, &arena, &spec, L->diags);
    arena_free(&arena);
}

IrFunction *lower_kernel(AstFile *file, const char *kernel_name, const ConstBinding *consts, size_t nconsts,
                         IrModule *m, DiagList *d) {
    Lower L = {0};
    L.file = file;
    L.module = m;
    L.diags = d;
    int errors_before = d->errors;
    const AstNode *k = lower_find_decl(&L, AST_KERNEL, kernel_name);
    if (!k) {
        diag_error(d, file_loc(file), "no kernel named '%s' in %s", kernel_name, file->source.name);
        return NULL;
    }
    check_unique(&L, k);
    IrFunction *f = ir_function_new(m, k->name, true, k->loc);
    scope_push(&L);
    /* a default that is not a constant (`<B = block_id(0)>`) emits ops before it is rejected:
     * give them a place (the IR is dropped with the error) */
    ir_builder_at_end(&L.b, f->grid);
    bind_constants(&L, k, consts, nconsts);
    lower_params(&L, k, f);
    lower_grid(&L, k, f);
    lower_warps(&L, k, f);
    lower_autotune(&L, k);
    L.entry = f->body;
    L.dim_cache.len = 0;
    ir_builder_at_end(&L.b, f->body);
    if (may_exit(&L, k->body, false) & EXIT_RETURN) L.flag_return = new_flag(&L, "return", k->loc);
    lower_block(&L, k->body);
    scope_pop(&L);
    vec_free(&L.scope);
    vec_free(&L.scope_marks);
    vec_free(&L.dim_cache);
    vec_free(&L.call_stack);
    vec_free(&L.failed_functions);
    return d->errors > errors_before ? NULL : f;
}
