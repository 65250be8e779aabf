/*
 * verify.c: the IR verifier, run after every pass in debug builds.
 *
 * One walk over each function, in order, checks three things:
 *  - structure: links between ops, regions and values are consistent, and every operand is
 *    visible where it is used. Visibility follows the structured regions: a flag per value id
 *    is set when the value is defined (region arguments on entry, results after their op,
 *    nested regions included) and cleared when its region ends, so a value of a sibling
 *    region, of a later op, or of another function is reported;
 *  - counts: operands, results and regions per ops.def, the attributes (IrOp.ints) that the
 *    op's rows of ir/attr.def require, and where the op may stand (the place column);
 *  - types: the rule that the op's row of ops.def names, a function rule_<name> below
 *    (elementwise ops take identical types, shape ops keep the element count, memory ops index
 *    a tensor with one index per dimension, control flow yields the types it carries, calls
 *    match their callee). The table `rules` is built from ops.def, so an op cannot lack one.
 * Each violation is one diag_error at the op's location, `verify: <op>: <what>`, and the walk
 * goes on, so that one run lists every problem. Only the counts gate the type rules of an op:
 * the rules index operands and attributes, and a wrong count would make them read past the
 * arrays or read attributes that are not there.
 */
#include "ir.h"
#include "layout.h"
#include "mma.h"

#include <stdlib.h>
#include <string.h>

typedef struct Verifier {
    IrFunction *f;
    DiagList *d;
    uint8_t *visible;     /* indexed by value id */
    uint32_t cap;
    bool ok;
    bool in_grid;         /* walking a kernel's grid region (or a region nested in it) */
    const IrOp *roles;    /* walking role `role` of this warp_roles op (at any depth); NULL outside */
    uint32_t role;
    Strbuf names[4];      /* type names for one message */
    int next_name;
} Verifier;

static void op_error(Verifier *v, const IrOp *op, const char *fmt, ...) TILE_PRINTF(3, 4);
static void op_error(Verifier *v, const IrOp *op, const char *fmt, ...) {
    Strbuf msg = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&msg, fmt, ap);
    va_end(ap);
    const char *name = op->code < OP_COUNT ? ir_op_info[op->code].name : "?op";
    diag_error(v->d, op->loc, "verify: %s: %s", name, sb_str(&msg));
    sb_free(&msg);
    v->ok = false;
}

static void function_error(Verifier *v, const char *fmt, ...) TILE_PRINTF(2, 3);
static void function_error(Verifier *v, const char *fmt, ...) {
    Strbuf msg = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&msg, fmt, ap);
    va_end(ap);
    diag_error(v->d, v->f->loc, "verify: @%s: %s", v->f->name, sb_str(&msg));
    sb_free(&msg);
    v->ok = false;
}

/* The printed name of a type, valid until four more names are asked for. */
static const char *tn(Verifier *v, const IrType *t) {
    Strbuf *sb = &v->names[v->next_name++ % 4];
    sb_clear(sb);
    if (t) ir_print_type(t, sb);
    else sb_puts(sb, "<no type>");
    return sb_str(sb);
}

/* ---- type predicates ------------------------------------------------------------------------ */
static bool is_tile(const IrType *t) { return t->kind == TY_TILE; }
static bool is_scalar_of(const IrType *t, ElemKind k) { return type_is_scalar(t) && t->elem.kind == k; }
static bool is_int_scalar(const IrType *t) { return type_is_scalar(t) && elem_is_integer(t->elem); }
static bool is_i32_scalar(const IrType *t) {
    return type_is_scalar(t) && elem_eq(t->elem, elem_i32());
}

static bool same_shape(const IrType *a, const IrType *b) {
    if (a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

/* Right-aligned broadcasting: every dim of `from` is 1 or equals the matching dim of `to`. */
static bool broadcastable(const IrType *from, const IrType *to) {
    if (from->rank > to->rank) return false;
    for (int i = 1; i <= from->rank; i++) {
        int64_t a = from->shape[from->rank - i], b = to->shape[to->rank - i];
        if (a != 1 && a != b) return false;
    }
    return true;
}

/* ---- structure and visibility -------------------------------------------------------------- */
static const IrFunction *value_function(const IrValue *val) {
    if (val->def) return val->def->parent ? val->def->parent->function : NULL;
    return val->region ? val->region->function : NULL;
}

static void set_visible(Verifier *v, const IrValue *val, bool on) {
    if (val && val->id < v->cap) v->visible[val->id] = on;
}

/* Returns false when the operand cannot be used by the type rules. */
static bool check_operand(Verifier *v, const IrOp *op, uint32_t i) {
    const IrValue *val = op->operands[i];
    if (!val) {
        op_error(v, op, "operand %u is null", i);
        return false;
    }
    if (!val->type) {
        op_error(v, op, "operand %u has no type", i);
        return false;
    }
    if (value_function(val) != v->f) {
        op_error(v, op, "operand %u is a value of another function or of a removed op", i);
        return true;
    }
    if (val->id >= v->cap) {
        op_error(v, op, "operand %u has id %u beyond the function's ids", i, val->id);
        return true;
    }
    if (!v->visible[val->id])
        op_error(v, op, "operand %u is not defined before use or not visible here", i);
    return true;
}

static void walk_region(Verifier *v, IrRegion *r);

/* ---- counts ---------------------------------------------------------------------------------- */
/* The counts of ops.def and the ints that the op's attr.def rows require; false gates the rule,
 * which indexes operands, results, regions and ints on the strength of these. */
static bool check_counts(Verifier *v, const IrOp *op) {
    const OpInfo *info = &ir_op_info[op->code];
    bool ok = true;
    if (info->noperands >= 0 && op->noperands != (uint32_t)info->noperands) {
        op_error(v, op, "expects %d operands, has %u", info->noperands, op->noperands);
        ok = false;
    }
    if (info->nresults >= 0 && op->nresults != (uint32_t)info->nresults) {
        op_error(v, op, "expects %d results, has %u", info->nresults, op->nresults);
        ok = false;
    }
    if (info->nregions >= 0 && op->nregions != (uint32_t)info->nregions) {
        op_error(v, op, "expects %d regions, has %u", info->nregions, op->nregions);
        ok = false;
    }
    for (uint32_t i = 0; i < op->nresults; i++)
        if (!op->results[i] || !op->results[i]->type) {
            op_error(v, op, "result %u is missing or has no type", i);
            ok = false;
        }
    int need = ir_op_required_ints(op->code);
    if (op->nints > IR_MAX_INTS) {
        op_error(v, op, "has %u attribute values (ints), more than %d", op->nints, IR_MAX_INTS);
        ok = false;
    } else if ((int)op->nints < need) {
        op_error(v, op, "expects at least %d attribute values (ints), has %u", need, op->nints);
        ok = false;
    }
    return ok;
}

/* The place column: check ops stand in the grid region itself; BODY ops never in the grid,
 * which the host evaluates before any block runs. */
static void check_place(Verifier *v, const IrOp *op) {
    switch (ir_op_info[op->code].place) {
    case PLACE_ANY: break;
    case PLACE_BODY:
        if (v->in_grid) op_error(v, op, "not in a kernel's grid region: the host evaluates it before any block runs");
        break;
    case PLACE_GRID:
        if (op->parent != v->f->grid) op_error(v, op, "only in a kernel's grid region");
        break;
    }
}

/* ---- elementwise ---------------------------------------------------------------------------- */
/* Operands and result of an elementwise op are tiles or scalars; false (reported) if not. */
static bool elementwise_tiles(Verifier *v, const IrOp *op) {
    for (uint32_t i = 0; i < op->noperands; i++)
        if (!is_tile(op->operands[i]->type)) {
            op_error(v, op, "operand %u is not a tile or scalar (%s)", i, tn(v, op->operands[i]->type));
            return false;
        }
    if (!is_tile(op->results[0]->type)) {
        op_error(v, op, "result is not a tile or scalar (%s)", tn(v, op->results[0]->type));
        return false;
    }
    return true;
}

/* The shared elementwise rule: operands and result of one type whose element kind is one of
 * `kinds` (a mask of 1 << ElemKind). */
static void check_same_as_operands(Verifier *v, const IrOp *op, unsigned kinds) {
    if (!elementwise_tiles(v, op)) return;
    const IrType *a = op->operands[0]->type, *res = op->results[0]->type;
    for (uint32_t i = 1; i < op->noperands; i++)
        if (op->operands[i]->type != a)
            op_error(v, op, "operand types differ (%s vs %s)", tn(v, a), tn(v, op->operands[i]->type));
    if (res != a) op_error(v, op, "result type %s differs from the operands' %s", tn(v, res), tn(v, a));
    if (!(kinds & (1u << a->elem.kind))) op_error(v, op, "not defined on %s", tn(v, a));
}

enum { K_BOOL = 1u << EK_BOOL, K_INT = 1u << EK_INT | 1u << EK_UINT, K_FLOAT = 1u << EK_FLOAT };
static void rule_same_int_or_float(Verifier *v, const IrOp *op) { check_same_as_operands(v, op, K_INT | K_FLOAT); }
static void rule_same_int_or_bool(Verifier *v, const IrOp *op) { check_same_as_operands(v, op, K_INT | K_BOOL); }
static void rule_same_int(Verifier *v, const IrOp *op) { check_same_as_operands(v, op, K_INT); }
static void rule_same_float(Verifier *v, const IrOp *op) { check_same_as_operands(v, op, K_FLOAT); }

/* cmp: operands of one type, a bool result of their shape. */
static void rule_bool_of_operands(Verifier *v, const IrOp *op) {
    if (!elementwise_tiles(v, op)) return;
    const IrType *a = op->operands[0]->type, *b = op->operands[1]->type, *res = op->results[0]->type;
    if (a != b) op_error(v, op, "operand types differ (%s vs %s)", tn(v, a), tn(v, b));
    if (!elem_is_bool(res->elem) || !same_shape(res, a))
        op_error(v, op, "result must be bool of the operands' shape, not %s", tn(v, res));
    if (op->ints[0] < CMP_EQ || op->ints[0] > CMP_GE) op_error(v, op, "bad predicate");
}

static void rule_select(Verifier *v, const IrOp *op) {
    if (!elementwise_tiles(v, op)) return;
    const IrType *c = op->operands[0]->type, *a = op->operands[1]->type, *b = op->operands[2]->type;
    const IrType *res = op->results[0]->type;
    if (!elem_is_bool(c->elem) || !same_shape(c, a))
        op_error(v, op, "condition must be bool of the values' shape, not %s", tn(v, c));
    if (a != b) op_error(v, op, "operand types differ (%s vs %s)", tn(v, a), tn(v, b));
    if (res != a) op_error(v, op, "result type %s differs from the operands' %s", tn(v, res), tn(v, a));
}

static void rule_cast(Verifier *v, const IrOp *op) {
    if (!elementwise_tiles(v, op)) return;
    const IrType *a = op->operands[0]->type, *res = op->results[0]->type;
    if (!same_shape(res, a))
        op_error(v, op, "result shape differs from the operand's (%s vs %s)", tn(v, res), tn(v, a));
}

static void rule_bitcast(Verifier *v, const IrOp *op) {
    if (!elementwise_tiles(v, op)) return;
    const IrType *a = op->operands[0]->type, *res = op->results[0]->type;
    if (!same_shape(res, a))
        op_error(v, op, "result shape differs from the operand's (%s vs %s)", tn(v, res), tn(v, a));
    if (a->elem.bits != res->elem.bits || elem_is_bool(a->elem) || elem_is_bool(res->elem))
        op_error(v, op, "bitcast needs non-bool element types of one width (%s to %s)", tn(v, a), tn(v, res));
}

/* ---- memory ---------------------------------------------------------------------------------- */
/* (tensor, idx..., [value]): one integer index per dimension, each broadcastable to `shape`. */
static void check_indices(Verifier *v, const IrOp *op, uint32_t extra, const IrType *shape) {
    const IrType *tensor = op->operands[0]->type;
    if (op->noperands != 1 + (uint32_t)tensor->rank + extra) {
        op_error(v, op, "expects %d indices for %s, has %d", tensor->rank, tn(v, tensor),
                 (int)op->noperands - 1 - (int)extra);
        return;
    }
    for (int i = 0; i < tensor->rank; i++) {
        const IrType *idx = op->operands[1 + i]->type;
        if (!is_tile(idx) || !elem_is_integer(idx->elem))
            op_error(v, op, "index %d must be an integer scalar or tile, not %s", i, tn(v, idx));
        else if (shape && !broadcastable(idx, shape))
            op_error(v, op, "index %d of type %s does not broadcast to %s", i, tn(v, idx), tn(v, shape));
    }
}

/* load (tensor, idx...) -> tile; store and atomic (tensor, idx..., value): a tensor operand, one
 * index per dimension broadcast to the result (or value) shape, the tensor's element type. */
static void rule_tensor_access(Verifier *v, const IrOp *op) {
    if (op->noperands < 1) {
        op_error(v, op, "needs a tensor operand");
        return;
    }
    const IrType *tensor = op->operands[0]->type;
    /* load and store also index a shared tile (the language's explicit shared tiles) */
    if (tensor->kind != TY_TENSOR && (tensor->kind != TY_SHARED || op->code == OP_ATOMIC)) {
        op_error(v, op, "operand 0 must be a tensor%s, not %s", op->code == OP_ATOMIC ? "" : " or a shared tile",
                 tn(v, tensor));
        return;
    }
    if (op->code == OP_LOAD) {
        const IrType *res = op->results[0]->type;
        if (!is_tile(res) || !elem_eq(res->elem, tensor->elem)) {
            op_error(v, op, "result %s must be a tile of the tensor's element type (%s)", tn(v, res),
                     tn(v, tensor));
            res = NULL;
        }
        check_indices(v, op, 0, res);
        return;
    }
    if (op->noperands < 2) {
        op_error(v, op, "needs a value operand");
        return;
    }
    const IrType *val = op->operands[op->noperands - 1]->type;
    if (!is_tile(val) || !elem_eq(val->elem, tensor->elem)) {
        op_error(v, op, "value %s must be a tile of the tensor's element type (%s)", tn(v, val),
                 tn(v, tensor));
        val = NULL;
    }
    if (op->code == OP_ATOMIC) {
        if (op->nints < 1 || op->ints[0] < ATOMIC_ADD || op->ints[0] > ATOMIC_MAX)
            op_error(v, op, "bad atomic kind");
        if (elem_is_bool(tensor->elem)) op_error(v, op, "not defined on bool");
    }
    check_indices(v, op, 1, val);
}

/* shared_view (buffer[S, d...], i32 stage) -> shared[d...]; a laid-out buffer's view has the
 * buffer's layout without its stage mode. */
static void rule_shared_view(Verifier *v, const IrOp *op) {
    const IrType *b = op->operands[0]->type, *s = op->operands[1]->type, *r = op->results[0]->type;
    if (b->kind != TY_SHARED || b->rank < 2) {
        op_error(v, op, "operand 0 must be a shared buffer of rank >= 2, not %s", tn(v, b));
        return;
    }
    if (!is_i32_scalar(s)) op_error(v, op, "the stage must be an i32 scalar, not %s", tn(v, s));
    bool ok = r->kind == TY_SHARED && r->rank == b->rank - 1 && elem_eq(r->elem, b->elem);
    for (int d = 0; ok && d < r->rank; d++) ok = r->shape[d] == b->shape[d + 1];
    if (ok && (b->shared == NULL) != (r->shared == NULL)) ok = false;
    if (ok && b->shared) {
        const SharedLayout *bl = b->shared, *rl = r->shared;
        ok = bl->swizzle.bits == rl->swizzle.bits && bl->swizzle.base == rl->swizzle.base &&
             bl->swizzle.shift == rl->swizzle.shift;
        for (int d = 0; ok && d < r->rank; d++)
            ok = rl->strides[d] == bl->strides[d + 1] && rl->split[d] == bl->split[d + 1] &&
                 rl->split_strides[d] == bl->split_strides[d + 1];
    }
    if (!ok) op_error(v, op, "result %s is not one stage of %s", tn(v, r), tn(v, b));
}

/* copy_async (tensor, idx..., shared dst): the indices broadcast to dst's shape. */
static void rule_copy_async(Verifier *v, const IrOp *op) {
    if (op->noperands < 2 || op->operands[0]->type->kind != TY_TENSOR) {
        op_error(v, op, "needs a tensor, its indices and a shared destination");
        return;
    }
    const IrType *t = op->operands[0]->type, *dst = op->operands[op->noperands - 1]->type;
    if (dst->kind != TY_SHARED || !elem_eq(dst->elem, t->elem)) {
        op_error(v, op, "the destination %s must be a shared tile of the tensor's element type (%s)", tn(v, dst),
                 tn(v, t));
        return;
    }
    IrType shape = *dst;
    shape.kind = TY_TILE, shape.shared = NULL;
    check_indices(v, op, 1, &shape);
}

/* ---- TMA and mbarriers ------------------------------------------------------------------------ */
/* Operand i is a ring of mbarriers (shared<i64>[S]) and, when stage, operand i + 1 an i32 stage. */
static bool check_mbarriers(Verifier *v, const IrOp *op, uint32_t i, bool stage) {
    const IrType *b = op->operands[i]->type;
    if (b->kind != TY_SHARED || b->rank != 1 || !elem_eq(b->elem, elem_int(64))) {
        op_error(v, op, "operand %u must be a ring of mbarriers (shared<i64>[S]), not %s", (unsigned)i, tn(v, b));
        return false;
    }
    if (stage && !is_i32_scalar(op->operands[i + 1]->type)) {
        op_error(v, op, "the stage must be an i32 scalar, not %s", tn(v, op->operands[i + 1]->type));
        return false;
    }
    return true;
}

/* copy_tma (tensor, origin..., shared dst, mbarriers, stage): one i32 origin per dimension, a box of
 * the tensor's element type and of its rank or less (the box is 1 on the leading dimensions the
 * destination lacks: a [BN, D] tile of a [B, H, S, D] tensor). */
/* copy_tma's `multicast N`: the kernel's cluster, outside warp roles, a bool scalar operand. */
static void check_multicast(Verifier *v, const IrOp *op, int64_t n, const IrValue *flag) {
    if (n != v->f->cluster)
        op_error(v, op, "multicast %lld needs a kernel of clusters of %lld blocks (the kernel has %d)", (long long)n,
                 (long long)n, v->f->cluster);
    if (v->roles) op_error(v, op, "a multicast copy in a warp role is not supported");
    if (!is_scalar_of(flag->type, EK_BOOL))
        op_error(v, op, "the multicast's last operand must be a bool scalar, not %s", tn(v, flag->type));
}

static void check_copy_tma(Verifier *v, const IrOp *op) {
    const IrType *t = op->noperands ? op->operands[0]->type : NULL;
    int64_t multicast = ir_copy_tma_multicast(op);
    if (!t || t->kind != TY_TENSOR || op->noperands != (uint32_t)t->rank + 4 + (multicast ? 1 : 0)) {
        op_error(v, op, "needs a tensor, an origin per dimension, a shared destination, mbarriers and a stage%s",
                 multicast ? ", then the multicast's bool" : "");
        return;
    }
    if (multicast) check_multicast(v, op, multicast, op->operands[t->rank + 4]);
    for (int d = 0; d < t->rank; d++)
        if (!is_i32_scalar(op->operands[1 + d]->type))
            op_error(v, op, "origin %d must be an i32 scalar, not %s", d, tn(v, op->operands[1 + d]->type));
    const IrType *dst = op->operands[1 + t->rank]->type;
    if (dst->kind != TY_SHARED || dst->rank < 1 || dst->rank > t->rank || !elem_eq(dst->elem, t->elem))
        op_error(v, op,
                 "the destination %s must be a shared tile of the tensor's element type and at most its rank (%s)",
                 tn(v, dst), tn(v, t));
    check_mbarriers(v, op, 2 + (uint32_t)t->rank, true);
}

/* ---- control flow ------------------------------------------------------------------------ */
/* The terminator of r must be `code` and its operands (from `first` on) must have the types of
 * `want` (n values). */
static void check_terminator(Verifier *v, const IrOp *op, IrRegion *r, const char *which, OpCode code,
                             uint32_t first, IrValue *const *want, uint32_t n) {
    const IrOp *term = r->last;
    if (!term || term->code != code) {
        op_error(v, op, "%s region must end in %s", which, ir_op_info[code].name);
        return;
    }
    if (term->noperands != first + n) {
        op_error(v, op, "%s region's %s has %u values, expected %u", which, ir_op_info[code].name,
                 term->noperands - (term->noperands >= first ? first : 0), n);
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        const IrValue *got = term->operands[first + i];
        if (got && got->type != want[i]->type)
            op_error(v, op, "%s region's %s value %u is %s, expected %s", which, ir_op_info[code].name,
                     i, tn(v, got->type), tn(v, want[i]->type));
    }
}

static void rule_for_loop(Verifier *v, const IrOp *op) {
    if (op->noperands < 3) {
        op_error(v, op, "needs lower bound, upper bound and step");
        return;
    }
    const IrType *iv = op->operands[0]->type;
    if (!is_int_scalar(iv)) op_error(v, op, "bounds must be integer scalars, not %s", tn(v, iv));
    if (op->operands[1]->type != iv || op->operands[2]->type != iv)
        op_error(v, op, "bounds and step differ in type (%s, %s, %s)", tn(v, iv),
                 tn(v, op->operands[1]->type), tn(v, op->operands[2]->type));
    uint32_t ncarried = op->noperands - 3;
    if (op->nresults != ncarried) {
        op_error(v, op, "has %u carried values but %u results", ncarried, op->nresults);
        return;
    }
    for (uint32_t i = 0; i < ncarried; i++)
        if (op->operands[3 + i]->type != op->results[i]->type)
            op_error(v, op, "initial value %u is %s, result is %s", i, tn(v, op->operands[3 + i]->type),
                     tn(v, op->results[i]->type));
    if (op->nints && op->ints[0] < 0) op_error(v, op, "negative pipeline depth");
    if (op->nints > 1 && op->ints[0] == 0) op_error(v, op, "specialize on a loop without pipeline");
    if (op->nints > 1 && (op->ints[1] < 0 || op->ints[1] > 2))
        op_error(v, op, "specialize %lld: expected 0 (never), 1 (ask) or 2 (ask for ping-pong)", (long long)op->ints[1]);
    IrRegion *r = op->regions[0];
    if (r->nargs != 1 + ncarried) {
        op_error(v, op, "region has %u arguments, expected %u (induction variable and carried values)",
                 r->nargs, 1 + ncarried);
        return;
    }
    if (r->args[0]->type != iv)
        op_error(v, op, "induction variable is %s, bounds are %s", tn(v, r->args[0]->type), tn(v, iv));
    for (uint32_t i = 0; i < ncarried; i++)
        if (r->args[1 + i]->type != op->results[i]->type)
            op_error(v, op, "region argument %u is %s, carried value is %s", 1 + i,
                     tn(v, r->args[1 + i]->type), tn(v, op->results[i]->type));
    check_terminator(v, op, r, "body", OP_YIELD, 0, op->results, op->nresults);
}

static void rule_if_else(Verifier *v, const IrOp *op) {
    if (op->noperands != 1) {
        op_error(v, op, "expects 1 operand (the condition), has %u", op->noperands);
        return;
    }
    if (!is_scalar_of(op->operands[0]->type, EK_BOOL))
        op_error(v, op, "condition must be a bool scalar, not %s", tn(v, op->operands[0]->type));
    static const char *which[2] = {"then", "else"};
    for (int i = 0; i < 2; i++) {
        if (op->regions[i]->nargs) op_error(v, op, "%s region must have no arguments", which[i]);
        check_terminator(v, op, op->regions[i], which[i], OP_YIELD, 0, op->results, op->nresults);
    }
}

static void rule_while_loop(Verifier *v, const IrOp *op) {
    IrRegion *before = op->regions[0], *after = op->regions[1];
    if (before->nargs != op->noperands) {
        op_error(v, op, "condition region has %u arguments for %u initial values", before->nargs,
                 op->noperands);
        return;
    }
    for (uint32_t i = 0; i < op->noperands; i++)
        if (before->args[i]->type != op->operands[i]->type)
            op_error(v, op, "condition region argument %u is %s, initial value is %s", i,
                     tn(v, before->args[i]->type), tn(v, op->operands[i]->type));
    if (after->nargs != op->nresults) {
        op_error(v, op, "body region has %u arguments for %u results", after->nargs, op->nresults);
        return;
    }
    for (uint32_t i = 0; i < op->nresults; i++)
        if (after->args[i]->type != op->results[i]->type)
            op_error(v, op, "body region argument %u is %s, result is %s", i, tn(v, after->args[i]->type),
                     tn(v, op->results[i]->type));
    const IrOp *cond = before->last;
    if (cond && cond->code == OP_CONDITION && cond->noperands >= 1 && cond->operands[0] &&
        !is_scalar_of(cond->operands[0]->type, EK_BOOL))
        op_error(v, op, "condition must be a bool scalar, not %s", tn(v, cond->operands[0]->type));
    check_terminator(v, op, before, "condition", OP_CONDITION, 1, after->args, after->nargs);
    check_terminator(v, op, after, "body", OP_YIELD, 0, before->args, before->nargs);
}

/* Where a terminator may stand; the owner checks the operand types. */
static void rule_terminator(Verifier *v, const IrOp *op) {
    const IrRegion *r = op->parent;
    const IrOp *owner = r->parent_op;
    if (op->next) op_error(v, op, "terminator must be the last op of its region");
    switch (op->code) {
    case OP_YIELD:
        if (r == v->f->grid) {
            if (op->noperands < 1 || op->noperands > 3)
                op_error(v, op, "grid must yield 1 to 3 sizes, yields %u", op->noperands);
            for (uint32_t i = 0; i < op->noperands; i++)
                if (op->operands[i] && !is_i32_scalar(op->operands[i]->type))
                    op_error(v, op, "grid size %u must be an i32 scalar, not %s", i,
                             tn(v, op->operands[i]->type));
        } else if (!owner || !(owner->code == OP_FOR || owner->code == OP_IF ||
                               (owner->code == OP_WHILE && owner->nregions > 1 && owner->regions[1] == r))) {
            op_error(v, op, "only ends a for, if or while body, or the grid");
        }
        break;
    case OP_CONDITION:
        if (!owner || owner->code != OP_WHILE || owner->regions[0] != r)
            op_error(v, op, "only ends the condition region of a while");
        else if (op->noperands < 1)
            op_error(v, op, "needs a condition operand");
        break;
    case OP_RETURN:
        if (v->f->is_kernel || r != v->f->body) {
            op_error(v, op, "only ends the body of a device function");
            break;
        }
        if (op->noperands != v->f->nresults) {
            op_error(v, op, "returns %u values, function has %u results", op->noperands, v->f->nresults);
            break;
        }
        for (uint32_t i = 0; i < op->noperands; i++)
            if (op->operands[i] && op->operands[i]->type != v->f->result_types[i])
                op_error(v, op, "value %u is %s, function result is %s", i, tn(v, op->operands[i]->type),
                         tn(v, v->f->result_types[i]));
        break;
    default: tile_unreachable();
    }
}

static void rule_call(Verifier *v, const IrOp *op) {
    const IrFunction *g = op->callee;
    if (!g) {
        op_error(v, op, "no callee");
        return;
    }
    if (g->module != v->f->module) {
        op_error(v, op, "callee @%s is in another module", g->name);
        return;
    }
    if (g->is_kernel) {
        op_error(v, op, "callee @%s is a kernel", g->name);
        return;
    }
    if (op->noperands != g->body->nargs) {
        op_error(v, op, "@%s takes %u arguments, given %u", g->name, g->body->nargs, op->noperands);
    } else {
        for (uint32_t i = 0; i < op->noperands; i++)
            if (op->operands[i]->type != g->body->args[i]->type)
                op_error(v, op, "argument %u of @%s is %s, parameter is %s", i, g->name,
                         tn(v, op->operands[i]->type), tn(v, g->body->args[i]->type));
    }
    if (op->nresults != g->nresults) {
        op_error(v, op, "@%s has %u results, call has %u", g->name, g->nresults, op->nresults);
        return;
    }
    for (uint32_t i = 0; i < op->nresults; i++)
        if (op->results[i]->type != g->result_types[i])
            op_error(v, op, "result %u is %s, @%s returns %s", i, tn(v, op->results[i]->type), g->name,
                     tn(v, g->result_types[i]));
}

/* ---- shapes and the rest --------------------------------------------------------------------- */
static bool check_axis(Verifier *v, const IrOp *op, int64_t axis, int limit, const char *what) {
    if (axis < 0 || axis >= limit) {
        op_error(v, op, "%s %lld out of range [0, %d)", what, (long long)axis, limit);
        return false;
    }
    return true;
}

static void rule_const_value(Verifier *v, const IrOp *op) {
    const IrType *t = op->results[0]->type;
    if (!is_tile(t)) {
        op_error(v, op, "result must be a tile or scalar, not %s", tn(v, t));
        return;
    }
    const IrConst *c = &op->value;
    if (c->is_float != elem_is_float(t->elem)) {
        op_error(v, op, "%s value for %s", c->is_float ? "float" : "integer", tn(v, t));
        return;
    }
    bool exact = c->is_float ? (c->f != c->f || elem_round_float(t->elem, c->f) == c->f)
                             : elem_wrap_int(t->elem, c->i) == c->i;
    if (!exact) op_error(v, op, "value is not representable in %s", tn(v, t));
}

/* Shape ops: operand and result are tiles of one element type; false (reported) if not. */
static bool shape_tiles(Verifier *v, const IrOp *op) {
    const IrType *a = op->operands[0]->type, *res = op->results[0]->type;
    /* a transposed shared tile is a view with permuted strides (a dot operand read in place) */
    bool shared_view = op->code == OP_TRANSPOSE && a->kind == TY_SHARED && res->kind == TY_SHARED;
    if (!shared_view && (!is_tile(a) || !is_tile(res))) {
        op_error(v, op, "operand and result must be tiles (%s -> %s)", tn(v, a), tn(v, res));
        return false;
    }
    if (!elem_eq(a->elem, res->elem)) {
        op_error(v, op, "element type changes (%s -> %s)", tn(v, a), tn(v, res));
        return false;
    }
    return true;
}

static void rule_splat(Verifier *v, const IrOp *op) {
    const IrType *a = op->operands[0]->type;
    if (shape_tiles(v, op) && a->rank != 0) op_error(v, op, "operand must be a scalar, not %s", tn(v, a));
}

static void rule_broadcast(Verifier *v, const IrOp *op) {
    const IrType *a = op->operands[0]->type, *res = op->results[0]->type;
    if (shape_tiles(v, op) && (a->rank != res->rank || !broadcastable(a, res)))
        op_error(v, op, "%s does not broadcast to %s", tn(v, a), tn(v, res));
}

static void rule_expand_dims(Verifier *v, const IrOp *op) {
    const IrType *a = op->operands[0]->type, *res = op->results[0]->type;
    int64_t axis = op->ints[0];
    if (!shape_tiles(v, op) || !check_axis(v, op, axis, a->rank + 1, "axis")) return;
    bool ok = res->rank == a->rank + 1 && res->shape[axis] == 1;
    for (int i = 0, j = 0; ok && i < res->rank; i++)
        if (i != axis) ok = res->shape[i] == a->shape[j++];
    if (!ok) op_error(v, op, "%s with a new axis %lld is not %s", tn(v, a), (long long)axis, tn(v, res));
}

static void rule_reshape(Verifier *v, const IrOp *op) {
    const IrType *a = op->operands[0]->type, *res = op->results[0]->type;
    if (shape_tiles(v, op) && type_numel(a) != type_numel(res))
        op_error(v, op, "element count differs (%s -> %s)", tn(v, a), tn(v, res));
}

static void rule_transpose(Verifier *v, const IrOp *op) {
    const IrType *a = op->operands[0]->type, *res = op->results[0]->type;
    if (!shape_tiles(v, op)) return;
    if (res->rank != a->rank || op->nints != (uint32_t)a->rank) {
        op_error(v, op, "permutation of %u entries for %s -> %s", op->nints, tn(v, a), tn(v, res));
        return;
    }
    bool seen[IR_MAX_RANK] = {false};
    for (int i = 0; i < a->rank; i++) {
        int64_t p = op->ints[i];
        if (p < 0 || p >= a->rank || seen[p]) {
            op_error(v, op, "ints are not a permutation of 0..%d", a->rank - 1);
            return;
        }
        seen[p] = true;
        if (res->shape[i] != a->shape[p]) {
            op_error(v, op, "result dim %d is %lld, expected %lld", i, (long long)res->shape[i],
                     (long long)a->shape[p]);
            return;
        }
        if (res->kind == TY_SHARED && a->shared && res->shared &&
            (res->shared->strides[i] != a->shared->strides[p] || res->shared->split[i] != a->shared->split[p] ||
             res->shared->split_strides[i] != a->shared->split_strides[p] ||
             res->shared->swizzle.bits != a->shared->swizzle.bits ||
             res->shared->swizzle.base != a->shared->swizzle.base ||
             res->shared->swizzle.shift != a->shared->swizzle.shift)) {
            op_error(v, op, "the shared layout of %s is not that of %s with its dims permuted", tn(v, res), tn(v, a));
            return;
        }
    }
}

/* reduce and scan: ints[0] the reduction, ints[1] the axis; not on bool. */
static bool reduction_attrs(Verifier *v, const IrOp *op) {
    const IrType *a = op->operands[0]->type;
    if (!shape_tiles(v, op)) return false;
    if (op->ints[0] < RED_SUM || op->ints[0] > RED_MIN) {
        op_error(v, op, "bad reduction kind");
        return false;
    }
    if (!check_axis(v, op, op->ints[1], a->rank, "axis")) return false;
    if (elem_is_bool(a->elem)) op_error(v, op, "not defined on bool");
    return true;
}

/* reduce: the result is the operand without the axis. */
static void rule_reduce_axis(Verifier *v, const IrOp *op) {
    const IrType *a = op->operands[0]->type, *res = op->results[0]->type;
    if (!reduction_attrs(v, op)) return;
    int64_t axis = op->ints[1];
    bool ok = res->rank == a->rank - 1;
    for (int i = 0, j = 0; ok && i < a->rank; i++)
        if (i != axis) ok = res->shape[j++] == a->shape[i];
    if (!ok) op_error(v, op, "%s reduced along axis %lld is not %s", tn(v, a), (long long)axis, tn(v, res));
}

/* scan: the result has the operand's shape. */
static void rule_scan_axis(Verifier *v, const IrOp *op) {
    const IrType *a = op->operands[0]->type, *res = op->results[0]->type;
    if (reduction_attrs(v, op) && !same_shape(a, res))
        op_error(v, op, "shape changes (%s -> %s)", tn(v, a), tn(v, res));
}

/* convert_layout: the same tile, only its layout differs. */
static void rule_same_shape(Verifier *v, const IrOp *op) {
    const IrType *a = op->operands[0]->type, *res = op->results[0]->type;
    if (shape_tiles(v, op) && !same_shape(a, res)) op_error(v, op, "shape changes (%s -> %s)", tn(v, a), tn(v, res));
}

/* The warps that run the op being checked: its role's inside warp_roles, else the kernel's (0:
 * not fixed yet). */
static int warps_here(const Verifier *v) {
    return v->roles ? (int)ir_role_warps(v->roles, v->role) : v->f->num_warps;
}

static void rule_dot(Verifier *v, const IrOp *op) {
    const IrType *a = op->operands[0]->type, *b = op->operands[1]->type, *acc = op->operands[2]->type;
    const IrType *res = op->results[0]->type;
    /* a and b may be shared tiles (views of staged buffers): the dot then reads them from there */
    bool a_ok = is_tile(a) || a->kind == TY_SHARED, b_ok = is_tile(b) || b->kind == TY_SHARED;
    if (!a_ok || !b_ok || !is_tile(acc) || a->rank != 2 || b->rank != 2 || acc->rank != 2) {
        op_error(v, op, "operands must be 2-d tiles (%s, %s, %s)", tn(v, a), tn(v, b), tn(v, acc));
        return;
    }
    if (a->shape[1] != b->shape[0] || acc->shape[0] != a->shape[0] || acc->shape[1] != b->shape[1])
        op_error(v, op, "shapes do not compose: a %s, b %s, acc %s", tn(v, a), tn(v, b), tn(v, acc));
    if (res != acc) op_error(v, op, "result %s differs from the accumulator %s", tn(v, res), tn(v, acc));
    /* the layout pass's tensor-core record: an instruction of ir/mma.def and the warps along M */
    if (op->nints == 0) return;
    MmaTiling t;
    if (op->nints < 2 || op->nints > 3 || op->ints[0] <= MMA_NONE || op->ints[0] >= MMA_COUNT || op->ints[1] < 1 ||
        (op->nints == 3 && (op->ints[2] < 0 || op->ints[2] > 1)))
        op_error(v, op, "has a malformed tensor-core record (mma, warps_m, async)");
    else if (op->nints == 3 && op->ints[2] && !mma_is_wgmma((MmaInstr)op->ints[0]))
        op_error(v, op, "only a wgmma dot is asynchronous, not %s", mma_instrs[op->ints[0]].name);
    else if (!mma_takes((MmaInstr)op->ints[0], a->elem, b->elem, acc->elem))
        op_error(v, op, "instruction %s does not take operands %s, %s and %s", mma_instrs[op->ints[0]].name, tn(v, a),
                 tn(v, b), tn(v, acc));
    else if (warps_here(v) > 0 && !mma_tiling_of(op, warps_here(v), &t))
        op_error(v, op, "%s with %lld warps along M does not tile it for %d warps", mma_instrs[op->ints[0]].name,
                 (long long)op->ints[1], warps_here(v));
}

/* atomic_rmw (tensor, idx..., value) and atomic_cas (tensor, idx..., expected, desired): the
 * values and the result have the access shape and the tensor's element type. */
static void rule_atomic_result(Verifier *v, const IrOp *op) {
    uint32_t nvalues = op->code == OP_ATOMIC_CAS ? 2 : 1;
    if (op->noperands < 1 + nvalues ||
        (op->operands[0]->type->kind != TY_TENSOR && op->operands[0]->type->kind != TY_SHARED)) {
        op_error(v, op, "needs a tensor or a shared tile, its indices and %u value%s", nvalues, nvalues == 1 ? "" : "s");
        return;
    }
    const IrType *tensor = op->operands[0]->type, *res = op->results[0]->type;
    if (!is_tile(res) || !elem_eq(res->elem, tensor->elem)) {
        op_error(v, op, "result %s must be a tile of the tensor's element type (%s)", tn(v, res), tn(v, tensor));
        return;
    }
    for (uint32_t i = op->noperands - nvalues; i < op->noperands; i++)
        if (!same_shape(op->operands[i]->type, res) || !elem_eq(op->operands[i]->type->elem, res->elem))
            op_error(v, op, "value %s must have the result's type %s", tn(v, op->operands[i]->type), tn(v, res));
    if (elem_is_bool(tensor->elem) || elem_storage_bits(tensor->elem) % 8 != 0)
        op_error(v, op, "not defined on %s", tn(v, tensor));
    if (op->code == OP_ATOMIC_RMW && (op->nints < 2 || op->ints[0] < ATOMIC_ADD || op->ints[0] > ATOMIC_XCHG))
        op_error(v, op, "bad atomic kind");
    if (op->nints < 2 || op->ints[1] < MEM_RELAXED || op->ints[1] > MEM_ACQ_REL) op_error(v, op, "bad memory order");
    check_indices(v, op, nvalues, res);
}

static void rule_block_axis(Verifier *v, const IrOp *op) {
    check_axis(v, op, op->ints[0], 3, "axis");
    if (!is_i32_scalar(op->results[0]->type)) op_error(v, op, "result must be i32, not %s", tn(v, op->results[0]->type));
}

static void rule_dim(Verifier *v, const IrOp *op) {
    const IrType *t = op->operands[0]->type;
    if (t->kind != TY_TENSOR) op_error(v, op, "operand must be a tensor, not %s", tn(v, t));
    else check_axis(v, op, op->ints[0], t->rank, "axis");
    if (!is_i32_scalar(op->results[0]->type)) op_error(v, op, "result must be i32, not %s", tn(v, op->results[0]->type));
}

static void rule_arange(Verifier *v, const IrOp *op) {
    const IrType *t = op->results[0]->type;
    if (!is_tile(t) || t->rank != 1 || !elem_is_integer(t->elem))
        op_error(v, op, "result must be a 1-d integer tile, not %s", tn(v, t));
}

/* check (the place column keeps it in the grid region). */
static void rule_check(Verifier *v, const IrOp *op) {
    const IrType *c = op->operands[0]->type;
    if (!type_is_scalar(c) || !elem_is_bool(c->elem)) op_error(v, op, "operand must be a bool scalar, not %s", tn(v, c));
    if (op->ints[0] < 0 || (uint64_t)op->ints[0] >= v->f->ncheck_messages) op_error(v, op, "has no message");
}

static void rule_shared_alloc(Verifier *v, const IrOp *op) {
    if (op->results[0]->type->kind != TY_SHARED)
        op_error(v, op, "result must be a shared tile, not %s", tn(v, op->results[0]->type));
    if (op->nints > 2 || (op->nints >= 1 && (op->ints[0] < 0 || op->ints[0] % 16 != 0)))
        op_error(v, op, "the planned offset must be one multiple of 16 bytes");
    if (op->nints == 2 && op->ints[1] != 0 && op->ints[1] != 1) op_error(v, op, "the uninitialized flag must be 0 or 1");
}

/* shared_load (shared) -> tile and shared_store (shared, tile): the tile matches the shared tile. */
static void rule_shared_copy(Verifier *v, const IrOp *op) {
    const IrType *s = op->operands[0]->type;
    const IrType *t = op->code == OP_SHARED_LOAD ? op->results[0]->type : op->operands[1]->type;
    if (s->kind != TY_SHARED) op_error(v, op, "operand 0 must be a shared tile, not %s", tn(v, s));
    else if (!is_tile(t) || !elem_eq(s->elem, t->elem) || !same_shape(s, t))
        op_error(v, op, "tile %s does not match %s", tn(v, t), tn(v, s));
}

/* The TMA ops (stages pass, sm_90a): rings of mbarriers and bulk tensor copies. */
static void rule_mbarrier_init(Verifier *v, const IrOp *op) {
    check_mbarriers(v, op, 0, false);
    if (op->code == OP_MBARRIER_INVAL && op->nints) op_error(v, op, "takes no attributes");
    if (op->code == OP_MBARRIER_INIT && (op->nints > 1 || ir_mbarrier_count(op) < 1 || ir_mbarrier_count(op) > 1024))
        op_error(v, op, "the arrival count must be one number in [1, 1024]");
}
static void rule_copy_tma(Verifier *v, const IrOp *op) { check_copy_tma(v, op); }
static void rule_mbarrier_arrive(Verifier *v, const IrOp *op) {
    check_mbarriers(v, op, 0, true);
    int64_t n = ir_mbarrier_arrive_cluster(op), threads = ir_mbarrier_arrive_threads(op);
    int64_t here = 32 * (int64_t)warps_here(v);
    if (op->nints > 2) op_error(v, op, "takes at most `cluster N` and `threads N`");
    if (threads && (n || (here && threads != here) || threads % 32 || threads > 1024))
        op_error(v, op, "threads %lld must be the %lld threads of the %s, without cluster", (long long)threads,
                 (long long)here, v->roles ? "warp role" : "block");
    if (!n) return;
    if (n != v->f->cluster)
        op_error(v, op, "cluster %lld needs a kernel of clusters of %lld blocks (the kernel has %d)", (long long)n,
                 (long long)n, v->f->cluster);
    if (v->roles) op_error(v, op, "an arrival across the cluster in a warp role is not supported");
}
static void rule_mbarrier_wait(Verifier *v, const IrOp *op) {
    if (check_mbarriers(v, op, 0, true) && !is_i32_scalar(op->operands[2]->type))
        op_error(v, op, "the parity must be an i32 scalar, not %s", tn(v, op->operands[2]->type));
}

/* store_tma (tensor, origin..., src): like copy_tma's origins and box, without mbarriers; src a
 * shared tile of rank 2 (the box's rows and columns) of the tensor's element type. */
static void rule_store_tma(Verifier *v, const IrOp *op) {
    const IrType *t = op->noperands ? op->operands[0]->type : NULL;
    if (!t || t->kind != TY_TENSOR || t->rank < 2 || op->noperands != (uint32_t)t->rank + 2) {
        op_error(v, op, "needs a tensor of rank 2 or more, an origin per dimension and a shared source");
        return;
    }
    for (int d = 0; d < t->rank; d++)
        if (!is_i32_scalar(op->operands[1 + d]->type))
            op_error(v, op, "origin %d must be an i32 scalar, not %s", d, tn(v, op->operands[1 + d]->type));
    const IrType *src = op->operands[1 + t->rank]->type;
    if (src->kind != TY_SHARED || src->rank != 2 || !elem_eq(src->elem, t->elem))
        op_error(v, op, "the source %s must be a 2-d shared tile of the tensor's element type (%s)", tn(v, src),
                 tn(v, t));
}

static void rule_store_wait(Verifier *v, const IrOp *op) {
    if (op->nints != 1 || op->ints[0] < 0) op_error(v, op, "needs a count of stores in flight >= 0");
}

/* An op without operands, results or attributes to check (barrier). */
static void rule_none(Verifier *v, const IrOp *op) {
    (void)v, (void)op;
}

static void rule_async_wait(Verifier *v, const IrOp *op) {
    if (op->nints != 1 || op->ints[0] < 0) op_error(v, op, "needs a count of copies in flight >= 0");
}

/* dot_wait (acc) -> acc: the same type, a count >= 0. */
static void rule_dot_wait(Verifier *v, const IrOp *op) {
    if (op->nints != 1 || op->ints[0] < 0) op_error(v, op, "needs a count of dots in flight >= 0");
    if (!is_tile(op->operands[0]->type) || op->results[0]->type != op->operands[0]->type)
        op_error(v, op, "its result must be its operand's tile type (%s -> %s)", tn(v, op->operands[0]->type),
                 tn(v, op->results[0]->type));
}

static void rule_fence(Verifier *v, const IrOp *op) {
    if (op->ints[0] < MEM_RELAXED || op->ints[0] > MEM_ACQ_REL) op_error(v, op, "bad memory order");
}

/* num_sms: the device's multiprocessor count, an i32 the host computes with the grid. */
static void rule_num_sms(Verifier *v, const IrOp *op) {
    if (!is_i32_scalar(op->results[0]->type)) op_error(v, op, "result must be i32, not %s", tn(v, op->results[0]->type));
}

/* warp_roles: last in a kernel's body, 1..4 roles whose warps make up the kernel's; register
 * budgets all 0 (unchanged) or all set: multiples of 8 in [24, 256] for whole warpgroups (setmaxnreg
 * acts per warpgroup), whose average over the block's warps is a multiple of 8 that the register
 * file holds (the kernel starts at that average and the roles trade registers at no net cost). */
static void rule_warp_roles(Verifier *v, const IrOp *op) {
    if (v->roles) op_error(v, op, "warp roles do not nest");
    else if (!v->f->is_kernel || op->parent != v->f->body) op_error(v, op, "stands directly in a kernel's body");
    else if (op->next) op_error(v, op, "must be the last op of the kernel's body (the roles' warps end with it)");
    if (op->nregions < 1 || op->nregions > IR_MAX_ROLES || op->nints != 2 * op->nregions) {
        op_error(v, op, "needs 1 to %d roles, each with a warp count and a register budget", IR_MAX_ROLES);
        return;
    }
    int64_t warps = 0, budget = 0;
    uint32_t with_regs = 0;
    for (uint32_t k = 0; k < op->nregions; k++) {
        int64_t w = ir_role_warps(op, k), regs = ir_role_regs(op, k);
        if (w < 1 || w > 32) op_error(v, op, "role %u has %lld warps, not 1 to 32", k, (long long)w);
        if (regs != 0 && (regs < 24 || regs > 256 || regs % 8 != 0))
            op_error(v, op, "role %u: a register budget is a multiple of 8 in [24, 256], not %lld", k, (long long)regs);
        if (regs != 0 && (w % 4 != 0 || ir_role_first_warp(op, k) % 4 != 0))
            op_error(v, op, "role %u: a register budget needs whole warpgroups (4 warps each), not %lld warps from "
                     "warp %lld", k, (long long)w, (long long)ir_role_first_warp(op, k));
        if (op->regions[k]->nargs) op_error(v, op, "role %u takes no arguments", k);
        with_regs += regs != 0;
        warps += w;
        budget += w * regs;
    }
    int block = v->f->num_warps > 0 ? v->f->num_warps : 4;
    if (warps != block) op_error(v, op, "the roles have %lld warps, the kernel %d", (long long)warps, block);
    if (with_regs && with_regs != op->nregions) op_error(v, op, "register budgets are set for every role or none");
    else if (with_regs && warps > 0 && (budget % (8 * warps) != 0 || budget * 32 > 65536))
        op_error(v, op, "the register budgets average %.1f a thread over the block's warps, which must be a "
                 "multiple of 8 and fit 65536 registers", (double)budget / (double)warps);
}

/* An op inside a warp role: what needs the whole block stays outside, and register tiles do not
 * cross into a role (their layouts spread them over the block's threads, not the role's). */
static void check_in_role(Verifier *v, const IrOp *op) {
    if (op->code == OP_MBARRIER_INIT || op->code == OP_MBARRIER_INVAL || op->code == OP_SHARED_ALLOC)
        op_error(v, op, "needs the whole block: put it before the warp roles");
    if (op->code == OP_STORE_TMA || op->code == OP_STORE_WAIT) /* every thread reaches it; thread 0 waits */
        op_error(v, op, "needs the whole block: TMA stores stand outside warp roles");
    int64_t first = ir_role_first_warp(v->roles, v->role), warps = ir_role_warps(v->roles, v->role);
    if (op->code == OP_DOT && op->nints >= 1 && op->ints[0] > MMA_NONE && op->ints[0] < MMA_COUNT &&
        mma_is_wgmma((MmaInstr)op->ints[0]) && (first % 4 != 0 || warps % 4 != 0))
        op_error(v, op, "a wgmma dot needs whole warpgroups, but its role has %lld warps from warp %lld",
                 (long long)warps, (long long)first);
    for (uint32_t i = 0; i < op->noperands; i++) {
        const IrValue *val = op->operands[i];
        if (!val || !val->type || val->type->kind != TY_TILE || type_numel(val->type) == 1) continue;
        const IrRegion *home = val->def ? val->def->parent : val->region;
        uint32_t role = 0;
        if (ir_role_of_region(home, &role) != v->roles || role != v->role)
            op_error(v, op, "operand %u is a register tile from outside the role; roles share shared memory, "
                     "scalars and tensors only", i);
    }
}

/* ---- thread-block clusters (passes/cluster.c) ----------------------------------------------- */
/* cluster_size and cluster_barrier stand in a kernel with `cluster N`; a cluster barrier waits for
 * every thread of the cluster's blocks, which a warp role (a part of the block) cannot promise. */
static void check_in_cluster_kernel(Verifier *v, const IrOp *op) {
    if (!v->f->is_kernel || v->f->cluster < 2)
        op_error(v, op, "needs a kernel with clusters (`cluster N` after its warps)");
    if (v->roles) op_error(v, op, "is not allowed in a warp role");
}

static void rule_cluster_size(Verifier *v, const IrOp *op) {
    check_in_cluster_kernel(v, op);
    if (!is_i32_scalar(op->results[0]->type)) op_error(v, op, "result must be i32, not %s", tn(v, op->results[0]->type));
}

static void rule_cluster_barrier(Verifier *v, const IrOp *op) { check_in_cluster_kernel(v, op); }

/* The rule of each op, from the rule column of ops.def. */
typedef void (*RuleFn)(Verifier *v, const IrOp *op);
static const RuleFn rules[OP_COUNT] = {
#define X(e, name, nops, nres, nreg, flags, effect, place, rule) [OP_##e] = rule_##rule,
#include "ops.def"
#undef X
};

/* ---- the walk ---------------------------------------------------------------------------------- */
static void check_op(Verifier *v, IrOp *op, IrRegion *r, const IrOp *prev) {
    if (op->code >= OP_COUNT) {
        op_error(v, op, "bad opcode %d", (int)op->code);
        return;
    }
    if (op->parent != r || op->prev != prev) op_error(v, op, "op is not linked into its region");
    bool usable = true;
    for (uint32_t i = 0; i < op->noperands; i++) usable &= check_operand(v, op, i);
    for (uint32_t i = 0; i < op->nregions; i++) {
        IrRegion *sub = op->regions[i];
        if (!sub || sub->parent_op != op || sub->function != v->f) {
            op_error(v, op, "region %u does not belong to this op", i);
            usable = false;
        }
    }
    check_place(v, op);
    if (check_counts(v, op) && usable) rules[op->code](v, op);
    if (v->roles && usable) check_in_role(v, op);
    const IrOp *roles = v->roles;
    uint32_t role = v->role;
    for (uint32_t i = 0; i < op->nregions; i++) {
        if (op->code == OP_WARP_ROLES && !roles && op->nints == 2 * op->nregions) v->roles = op, v->role = i;
        if (op->regions[i] && op->regions[i]->parent_op == op) walk_region(v, op->regions[i]);
    }
    v->roles = roles, v->role = role;
    for (uint32_t i = 0; i < op->nresults; i++) {
        IrValue *res = op->results[i];
        if (!res) continue;
        if (res->def != op || res->index != i) op_error(v, op, "result %u is not linked to its op", i);
        if (res->id >= v->cap) op_error(v, op, "result %u has id %u beyond the function's ids", i, res->id);
        set_visible(v, res, true);
    }
}

static void walk_region(Verifier *v, IrRegion *r) {
    for (uint32_t i = 0; i < r->nargs; i++) {
        IrValue *a = r->args[i];
        if (!a || a->region != r || a->index != i || a->def || a->id >= v->cap || !a->type) {
            function_error(v, "region argument %u is not linked to its region", i);
            continue;
        }
        set_visible(v, a, true);
    }
    const IrOp *prev = NULL;
    for (IrOp *op = r->first; op; prev = op, op = op->next) check_op(v, op, r, prev);
    if (prev != r->last) function_error(v, "a region's last op is not its list's end");
    /* Leaving the region: its values go out of scope. */
    for (uint32_t i = 0; i < r->nargs; i++) set_visible(v, r->args[i], false);
    for (IrOp *op = r->first; op; op = op->next)
        for (uint32_t i = 0; i < op->nresults; i++) set_visible(v, op->results[i], false);
}

bool ir_verify_function(IrFunction *f, DiagList *d) {
    Verifier v = {.f = f, .d = d, .cap = f->next_value_id, .ok = true};
    v.visible = xcalloc(v.cap ? v.cap : 1, 1);
    if (!f->body || f->body->parent_op || f->body->function != f) {
        function_error(&v, "body region missing or not linked to the function");
        goto done;
    }
    if (f->params && f->nparams != f->body->nargs)
        function_error(&v, "%u parameters described for %u body arguments", f->nparams, f->body->nargs);
    if (f->is_kernel) {
        if (!f->grid || f->grid->parent_op || f->grid->function != f) {
            function_error(&v, "kernel without a grid region");
        } else {
            if (f->grid->nargs != f->body->nargs)
                function_error(&v, "grid has %u arguments, body has %u", f->grid->nargs, f->body->nargs);
            for (uint32_t i = 0; i < f->grid->nargs && i < f->body->nargs; i++)
                if (f->grid->args[i] && f->body->args[i] && f->grid->args[i]->type != f->body->args[i]->type)
                    function_error(&v, "grid argument %u is %s, parameter is %s", i,
                                   tn(&v, f->grid->args[i]->type), tn(&v, f->body->args[i]->type));
            if (!f->grid->last || f->grid->last->code != OP_YIELD)
                function_error(&v, "grid must end in a yield of 1 to 3 i32 sizes");
            v.in_grid = true;
            walk_region(&v, f->grid);
            v.in_grid = false;
        }
        for (uint32_t i = 0; i < f->body->nargs; i++) {
            const IrValue *a = f->body->args[i];
            if (a && a->type && a->type->kind != TY_TENSOR && !is_tile(a->type))
                function_error(&v, "kernel parameter %u is %s", i, tn(&v, a->type));
        }
    } else {
        if (f->grid) function_error(&v, "device function with a grid region");
        if (!f->body->last || f->body->last->code != OP_RETURN)
            function_error(&v, "device function body must end in return");
    }
    walk_region(&v, f->body);
done:
    free(v.visible);
    for (int i = 0; i < 4; i++) sb_free(&v.names[i]);
    return v.ok;
}

bool ir_verify_module(IrModule *m, DiagList *d) {
    bool ok = true;
    for (IrFunction *f = m->functions; f; f = f->next) ok &= ir_verify_function(f, d);
    return ok;
}

