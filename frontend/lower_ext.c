/*
 * lower_ext.c: the expressions and builtins that Language II added (lang/SPEC.md 5.2, 5.6,
 * 6.2, 6.8): the conditional expression `c ? a : b`, `bitcast<T>(x)`, `static_assert`, and the
 * dispatch of the masked `load`/`store` (lowered in lower_expr.c next to plain indexing) and of
 * `shared<T>[...]` and `barrier()` (lower_shared.c).
 * lower_call consults lower_call_ext before its table of builtins.
 *
 * bitcast between types of one width is the IR's BITCAST; one between widths that divide each
 * other is built from it and integer ops, so that the VM and the GPU need only the one op:
 * packing (bf16 pairs to u32, u4 pairs to u8) reshapes the last dimension into groups, widens
 * each element's bits, shifts element j of a group left by j * width and sums the group (the
 * bits are disjoint, so the sum is an or); unpacking shifts right and truncates. Element 0 of
 * a group is the low bits, which is how the memory holds them (little-endian, packed
 * sub-byte types low bits first), so that a bitcast of a loaded tile equals a load of the
 * same bytes as the other type.
 */
#include "lower.h"

#include <string.h>

static const Val POISON_V = {.kind = VAL_POISON};

static Val value(IrValue *v) { return (Val){.kind = VAL_VALUE, .value = v}; }

/* ---- c ? a : b ---------------------------------------------------------------------------- */
/* A constant condition picks its operand and lowers only that one (like `if` on a constant);
 * otherwise both are evaluated and the choice is element-wise, as where() makes it. */
Val lower_conditional(Lower *L, const AstNode *e) {
    char ta[64], tb[64];
    Val c = lower_expr(L, e->cond);
    if (c.kind == VAL_POISON) return POISON_V;
    if (c.kind == VAL_CONST) {
        if (!c.is_bool) {
            diag_error(L->diags, e->cond->loc, "the condition of '?:' must be a bool, found %s constant",
                       c.c.is_float ? "a float" : "an integer");
            return POISON_V;
        }
        return lower_expr(L, c.c.i ? e->lhs : e->rhs);
    }
    Val a = lower_expr(L, e->lhs), b = lower_expr(L, e->rhs);
    if (a.kind == VAL_POISON || b.kind == VAL_POISON) return POISON_V;
    IrValue *cv = c.value;
    if (cv->type->kind != TY_TILE || !elem_is_bool(cv->type->elem)) {
        diag_error(L->diags, e->cond->loc, "the condition of '?:' must be a bool, found %s",
                   lower_type_str(cv->type, ta, sizeof ta));
        return POISON_V;
    }
    if (!lower_unify(L, &a, &b, e->loc, "operator '?:'")) return POISON_V;
    int rank;
    int64_t shape[IR_MAX_RANK];
    if (!lower_broadcast_shapes(cv->type, a.value->type, &rank, shape)) {
        diag_error(L->diags, e->cond->loc, "'?:': the condition %s does not broadcast with the values %s",
                   lower_type_str(cv->type, ta, sizeof ta), lower_type_str(a.value->type, tb, sizeof tb));
        return POISON_V;
    }
    L->b.loc = e->loc;
    IrValue *ops[3] = {lower_broadcast_to(L, cv, rank, shape), lower_broadcast_to(L, a.value, rank, shape),
                       lower_broadcast_to(L, b.value, rank, shape)};
    return value(ir_build(&L->b, OP_SELECT, ops, 3, &ops[1]->type, 1)->results[0]);
}

/* ---- static_assert(cond, "message") --------------------------------------------------------- */
static Val static_assert_call(Lower *L, const AstNode *call) {
    uint32_t n = call->args ? call->args->len : 0;
    if (call != L->statement_expr) {
        diag_error(L->diags, call->loc, "static_assert() has no value; use it as a statement");
        return POISON_V;
    }
    if (n != 2 || call->args->items[0]->kind == AST_KWARG || call->args->items[1]->kind != AST_STRING) {
        diag_error(L->diags, call->loc, "static_assert() takes a condition and a message: static_assert(BM %% 16 == 0, \"...\")");
        return POISON_V;
    }
    const AstNode *cond = call->args->items[0];
    Val c = lower_expr(L, cond);
    if (c.kind == VAL_POISON) return POISON_V;
    if (c.kind == VAL_VALUE) {
        diag_error(L->diags, cond->loc, "static_assert() needs a condition known at compile time; check sizes and "
                   "scalars at launch with check(...) after the kernel's grid");
        return POISON_V;
    }
    if (!c.is_bool) {
        diag_error(L->diags, cond->loc, "static_assert() needs a bool condition, found %s constant",
                   c.c.is_float ? "a float" : "an integer");
        return POISON_V;
    }
    if (!c.c.i) diag_error(L->diags, call->loc, "static assertion failed: %s", call->args->items[1]->name);
    return POISON_V; /* a statement: its value is never used */
}

/* ---- bitcast<T>(x) --------------------------------------------------------------------------- */
static IrValue *bits_as(Lower *L, IrValue *x, ElemType to) {
    if (elem_eq(x->type->elem, to)) return x;
    return ir_op1(&L->b, OP_BITCAST, ir_type_with_elem(L->module, x->type, to), x);
}

/* arange(r) * width as a tile of `elem` shaped [1, ..., 1, r] (rank dims). */
static IrValue *group_shifts(Lower *L, int64_t r, int width, ElemType elem, int rank) {
    IrValue *a = ir_build(&L->b, OP_ARANGE, NULL, 0, (const IrType *[]){ir_tile_type(L->module, elem_i32(), 1, &r)}, 1)
                     ->results[0];
    a->def->nints = 1;
    a = ir_op1(&L->b, OP_CAST, ir_tile_type(L->module, elem, 1, &r), a);
    a = ir_binary(&L->b, OP_MUL, a, ir_const_int(&L->b, a->type, width));
    int64_t shape[IR_MAX_RANK];
    for (int d = 0; d < rank; d++) shape[d] = d == rank - 1 ? r : 1;
    return rank == 1 ? a : ir_op1(&L->b, OP_RESHAPE, ir_tile_type(L->module, elem, rank, shape), a);
}

static Val bitcast_call(Lower *L, const AstNode *call) {
    char ta[64], tb[64];
    uint32_t n = call->args ? call->args->len : 0;
    if (!call->type_arg || call->shape || n != 1 || call->args->items[0]->kind == AST_KWARG) {
        diag_error(L->diags, call->loc, "bitcast takes an element type and one value: bitcast<u32>(x)");
        return POISON_V;
    }
    const IrType *tt;
    if (!lower_type(L, call->type_arg, &tt)) return POISON_V;
    if (!type_is_scalar(tt)) {
        diag_error(L->diags, call->type_arg->loc, "bitcast<...> takes an element type, not a tile type");
        return POISON_V;
    }
    const AstNode *arg = call->args->items[0];
    Val v = lower_expr(L, arg);
    if (v.kind == VAL_POISON) return POISON_V;
    IrValue *x = lower_default(L, v, arg->loc);
    if (!x) return POISON_V;
    ElemType from = x->type->elem, to = tt->elem;
    if (x->type->kind != TY_TILE || elem_is_bool(from) || elem_is_bool(to)) {
        diag_error(L->diags, call->loc, "bitcast<%s>() of %s: bitcast takes a tile or scalar of numbers, not bool",
                   elem_name(to, tb), lower_type_str(x->type, ta, sizeof ta));
        return POISON_V;
    }
    int wa = from.bits, wb = to.bits, rank = x->type->rank;
    L->b.loc = call->loc;
    if (wa == wb) return value(bits_as(L, x, to));
    if ((wb > wa && wb % wa) || (wa > wb && wa % wb)) {
        diag_error(L->diags, call->loc, "bitcast<%s>() of %s: the widths (%d and %d bits) must be equal or one a "
                   "multiple of the other", elem_name(to, tb), lower_type_str(x->type, ta, sizeof ta), wa, wb);
        return POISON_V;
    }
    int64_t shape[IR_MAX_RANK + 1];
    if (rank) memcpy(shape, x->type->shape, sizeof(int64_t) * (size_t)rank);
    if (wb > wa) {
        /* packing: [..., n * r] -> [..., n] */
        int64_t r = wb / wa;
        if (rank == 0 || shape[rank - 1] % r) {
            diag_error(L->diags, call->loc, "bitcast<%s>() of %s packs %lld elements into one: the last dimension "
                       "must be a multiple of %lld", elem_name(to, tb), lower_type_str(x->type, ta, sizeof ta),
                       (long long)r, (long long)r);
            return POISON_V;
        }
        if (rank == IR_MAX_RANK) {
            diag_error(L->diags, call->loc, "bitcast<%s>(): a tile of rank %d cannot be packed", elem_name(to, tb), rank);
            return POISON_V;
        }
        shape[rank - 1] /= r;
        shape[rank] = r;
        IrValue *u = bits_as(L, x, elem_uint(wa));
        u = ir_op1(&L->b, OP_RESHAPE, ir_tile_type(L->module, u->type->elem, rank + 1, shape), u);
        u = ir_op1(&L->b, OP_CAST, ir_type_with_elem(L->module, u->type, elem_uint(wb)), u);
        IrValue *s = lower_broadcast_to(L, group_shifts(L, r, wa, elem_uint(wb), rank + 1), rank + 1, shape);
        u = ir_binary(&L->b, OP_SHL, u, s);
        IrOp *sum = ir_build(&L->b, OP_REDUCE, &u, 1,
                             (const IrType *[]){ir_tile_type(L->module, elem_uint(wb), rank, shape)}, 1);
        sum->ints[0] = RED_SUM, sum->ints[1] = rank, sum->nints = 2;
        return value(bits_as(L, sum->results[0], to));
    }
    /* unpacking: [..., n] -> [..., n * r] (a scalar gives [r]) */
    int64_t r = wa / wb;
    IrValue *u = bits_as(L, x, elem_uint(wa));
    if (rank == 0) {
        int64_t one = 1;
        u = ir_op1(&L->b, OP_RESHAPE, ir_tile_type(L->module, u->type->elem, 1, &one), u);
        shape[0] = 1;
        rank = 1;
    }
    if (rank == IR_MAX_RANK) {
        diag_error(L->diags, call->loc, "bitcast<%s>(): a tile of rank %d cannot be unpacked", elem_name(to, tb), rank);
        return POISON_V;
    }
    shape[rank] = 1;
    u = ir_op1(&L->b, OP_RESHAPE, ir_tile_type(L->module, u->type->elem, rank + 1, shape), u);
    shape[rank] = r;
    u = lower_broadcast_to(L, u, rank + 1, shape);
    IrValue *s = lower_broadcast_to(L, group_shifts(L, r, wb, elem_uint(wa), rank + 1), rank + 1, shape);
    u = ir_binary(&L->b, OP_SHR, u, s);
    u = ir_op1(&L->b, OP_CAST, ir_type_with_elem(L->module, u->type, elem_uint(wb)), u);
    shape[rank - 1] *= r;
    u = ir_op1(&L->b, OP_RESHAPE, ir_tile_type(L->module, elem_uint(wb), rank, shape), u);
    return value(bits_as(L, u, to));
}

/* ---- dispatch ------------------------------------------------------------------------------ */
bool lower_call_ext(Lower *L, const AstNode *call, Val *out) {
    const char *name = call->name;
    if (strcmp(name, "shared") == 0) { /* a keyword: no device function can take the name */
        *out = lower_shared_tile(L, call);
        return true;
    }
    bool generic_ok = strcmp(name, "bitcast") == 0;
    if (!generic_ok && strcmp(name, "load") && strcmp(name, "store") && strcmp(name, "static_assert") &&
        strcmp(name, "check") && strcmp(name, "barrier"))
        return false;
    /* these names came after programs that may use them: a device function of the file wins */
    if (!generic_ok && lower_find_decl(L, AST_FUNCTION, name)) return false;
    *out = POISON_V;
    if (!generic_ok && (call->type_arg || call->shape)) {
        diag_error(L->diags, call->loc, "%s() takes no type argument", name);
        return true;
    }
    if (strcmp(name, "bitcast") == 0) *out = bitcast_call(L, call);
    else if (strcmp(name, "load") == 0) *out = lower_masked_access(L, call, false);
    else if (strcmp(name, "store") == 0) *out = lower_masked_access(L, call, true);
    else if (strcmp(name, "static_assert") == 0) *out = static_assert_call(L, call);
    else if (strcmp(name, "barrier") == 0) *out = lower_barrier(L, call);
    else
        diag_error(L->diags, call->loc, "check() belongs to a kernel's header, after grid(...): "
                   "check(cond, \"message\"); use static_assert() for compile-time conditions");
    return true;
}
