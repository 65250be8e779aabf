/*
 * lower_select.c: the builtins of lang/SPEC.md 6.8-6.10 that lower to compositions of existing
 * IR ops, so that the VM and the GPU run them with no op of their own: selection (argmax,
 * argmin, sort, argsort, topk, argtopk), Philox random numbers (randint, rand, randn) and the
 * batched dot's loop over the batch.
 *
 * Sorting is a bitonic network over the sort axis (moved last and the other axes flattened, so
 * the tile is [O, n] with n a power of two). Each compare-and-swap stage with distance j
 * reshapes the tile to [O, n/2j, 2, j], so that the two elements of every pair sit at [.., 0, ..]
 * and [.., 1, ..] of one axis, reads both halves by a max-reduction of that axis with the other
 * half masked to the type's lowest value (exact for every value, NaN included), swaps by
 * select, and puts the halves back with select and a reshape. Every element carries its
 * original index and pairs compare as (value, index), so the order is total: equal values keep
 * their index order (the sort is stable) and the result is the same on every device. (The
 * values-only sort and topk of integers carry no index: equal integers are indistinguishable.) NaN sorts
 * after every number ascending and before every number descending (it counts as the largest).
 *
 * Philox4x32-10 follows Triton's python/triton/language/random.py: counter (offset, 0, 0, 0),
 * key (seed low 32 bits, seed high 32 bits), ten rounds of two 32x32->64-bit products, the key
 * raised by the golden-ratio constants between rounds; rand maps the first word to [0, 1) as
 * Triton's uint_to_uniform_float, randn takes Box-Muller's cosine branch of the first two words.
 * The high half of a product is computed in u64, which LLVM turns into mul.hi.u32.
 */
#include "lower.h"

#include <math.h>
#include <string.h>

static const Val POISON = {.kind = VAL_POISON};

/* NULL (after a diagnostic) is poison */
static Val val_of(IrValue *v) { return (Val){.kind = v ? VAL_VALUE : VAL_POISON, .value = v}; }

/* ---- small builders ------------------------------------------------------------------------ */
static const IrType *tile_t(Lower *L, ElemType e, int rank, const int64_t *shape) {
    return ir_tile_type(L->module, e, rank, shape);
}

static IrValue *const_like(Lower *L, const IrType *t, int64_t v) { return ir_const_int(&L->b, t, v); }

static IrValue *reshape(Lower *L, IrValue *x, int rank, const int64_t *shape) {
    const IrType *t = tile_t(L, x->type->elem, rank, shape);
    return t == x->type ? x : ir_op1(&L->b, OP_RESHAPE, t, x);
}

static IrValue *broadcast(Lower *L, IrValue *x, const IrType *like) {
    const IrType *t = ir_type_with_elem(L->module, like, x->type->elem);
    return t == x->type ? x : ir_op1(&L->b, OP_BROADCAST, t, x);
}

static IrValue *select3(Lower *L, IrValue *c, IrValue *a, IrValue *b) {
    IrValue *ops[3] = {c, a, b};
    return ir_build(&L->b, OP_SELECT, ops, 3, &a->type, 1)->results[0];
}

static IrValue *reduce(Lower *L, IrValue *x, IrReduce kind, int axis) {
    int64_t shape[IR_MAX_RANK];
    int r = 0;
    for (int d = 0; d < x->type->rank; d++)
        if (d != axis) shape[r++] = x->type->shape[d];
    const IrType *rt = tile_t(L, x->type->elem, r, shape);
    IrOp *op = ir_build(&L->b, OP_REDUCE, &x, 1, &rt, 1);
    op->ints[0] = kind, op->ints[1] = axis, op->nints = 2;
    return op->results[0];
}

static IrValue *expand(Lower *L, IrValue *x, int axis) {
    int64_t shape[IR_MAX_RANK];
    int r = 0;
    for (int d = 0; d <= x->type->rank; d++) shape[d] = d == axis ? 1 : x->type->shape[r++];
    IrOp *op = ir_build(&L->b, OP_EXPAND_DIMS, &x, 1, (const IrType *[]){tile_t(L, x->type->elem, x->type->rank + 1, shape)}, 1);
    op->ints[0] = axis, op->nints = 1;
    return op->results[0];
}

/* arange(n) (i32) reshaped so that it runs along `axis` of a tile of `rank`, then broadcast to like. */
static IrValue *iota_along(Lower *L, int64_t n, int axis, const IrType *like) {
    const IrType *t = tile_t(L, elem_i32(), 1, &n);
    IrOp *op = ir_build(&L->b, OP_ARANGE, NULL, 0, &t, 1);
    op->ints[0] = 0, op->nints = 1;
    int64_t shape[IR_MAX_RANK];
    for (int d = 0; d < like->rank; d++) shape[d] = d == axis ? n : 1;
    return broadcast(L, reshape(L, op->results[0], like->rank, shape), like);
}

/* The lowest value of e: masking with it leaves a max-reduction's other operand exact. */
static IrValue *lowest(Lower *L, const IrType *t) {
    ElemType e = t->elem;
    if (elem_is_float(e)) return ir_const_float(&L->b, t, -INFINITY);
    if (e.kind == EK_UINT) return const_like(L, t, 0);
    return const_like(L, t, e.bits >= 64 ? INT64_MIN : -((int64_t)1 << (e.bits - 1)));
}

static IrValue *is_nan(Lower *L, IrValue *x) { return ir_cmp(&L->b, CMP_NE, x, x); }

/* Moves axis to the end (transpose), or back from the end (inverse). */
static IrValue *move_axis(Lower *L, IrValue *x, int axis, bool inverse) {
    int rank = x->type->rank;
    if (axis == rank - 1) return x;
    int64_t perm[IR_MAX_RANK] = {0}, shape[IR_MAX_RANK] = {0};
    int k = 0;
    if (!inverse) {
        for (int d = 0; d < rank; d++)
            if (d != axis) perm[k++] = d;
        perm[rank - 1] = axis;
    } else {
        for (int d = 0; d < rank; d++) perm[d] = d < axis ? d : d == axis ? rank - 1 : d - 1;
    }
    for (int d = 0; d < rank; d++) shape[d] = x->type->shape[perm[d]];
    IrOp *op = ir_build(&L->b, OP_TRANSPOSE, &x, 1, (const IrType *[]){tile_t(L, x->type->elem, rank, shape)}, 1);
    for (int d = 0; d < rank; d++) op->ints[d] = perm[d];
    op->nints = (uint32_t)rank;
    return op->results[0];
}

/* ---- arguments ----------------------------------------------------------------------------- */
typedef struct SelArgs {
    const AstNode *pos[3];
    int npos;
    const AstNode *axis, *descending;
} SelArgs;

static bool sel_args(Lower *L, const AstNode *call, int min, int max, bool descending_ok, SelArgs *out) {
    memset(out, 0, sizeof *out);
    const AstList *args = call->args;
    for (uint32_t i = 0; args && i < args->len; i++) {
        const AstNode *a = args->items[i];
        if (a->kind == AST_KWARG) {
            const AstNode **slot = strcmp(a->name, "axis") == 0                         ? &out->axis
                                   : descending_ok && strcmp(a->name, "descending") == 0 ? &out->descending
                                                                                          : NULL;
            if (!slot) {
                diag_error(L->diags, a->loc, "%s() has no parameter named '%s'", call->name, a->name);
                return false;
            }
            if (*slot) {
                diag_error(L->diags, a->loc, "%s given twice", a->name);
                return false;
            }
            *slot = a->lhs;
            continue;
        }
        if (out->axis || out->descending) {
            diag_error(L->diags, a->loc, "positional argument after a keyword argument");
            return false;
        }
        if (out->npos == 3) {
            diag_error(L->diags, a->loc, "too many arguments to %s()", call->name);
            return false;
        }
        out->pos[out->npos++] = a;
    }
    if (out->npos < min || out->npos > max) {
        if (min == max)
            diag_error(L->diags, call->loc, "%s() takes %d argument%s, %d given", call->name, min, min == 1 ? "" : "s",
                       out->npos);
        else
            diag_error(L->diags, call->loc, "%s() takes %d to %d arguments, %d given", call->name, min, max, out->npos);
        return false;
    }
    return true;
}

/* A tile operand (rank >= 1, not bool) of a selection builtin. */
static IrValue *tile_operand(Lower *L, const AstNode *call, const AstNode *e) {
    Val v = lower_expr(L, e);
    if (v.kind == VAL_POISON) return NULL;
    IrValue *x = lower_default(L, v, e->loc);
    if (!x) return NULL;
    char tn[64];
    if (x->type->kind != TY_TILE || x->type->rank == 0) {
        diag_error(L->diags, e->loc, "%s() needs a tile, found %s", call->name, lower_type_str(x->type, tn, sizeof tn));
        return NULL;
    }
    if (elem_is_bool(x->type->elem)) {
        diag_error(L->diags, e->loc, "%s() does not apply to bool tiles; cast them first", call->name);
        return NULL;
    }
    return x;
}

/* The axis= argument (default: the last axis; required for argmax/argmin of rank >= 2). */
static bool sel_axis(Lower *L, const AstNode *call, const SelArgs *a, int rank, bool required, int *axis) {
    if (!a->axis) {
        if (required && rank > 1) {
            diag_error(L->diags, call->loc, "%s() of a tile of rank %d needs axis=", call->name, rank);
            return false;
        }
        *axis = rank - 1;
        return true;
    }
    int64_t ax;
    if (!lower_const_int(L, a->axis, "axis", &ax)) return false;
    if (ax < -rank || ax >= rank) {
        diag_error(L->diags, a->axis->loc, "axis %lld is out of range for a value of rank %d", (long long)ax, rank);
        return false;
    }
    *axis = (int)(ax < 0 ? ax + rank : ax);
    return true;
}

/* ---- argmax, argmin ------------------------------------------------------------------------- */
/* The index of the first largest (smallest) element along axis, as i32; a NaN counts as the
 * largest and the smallest (so the first NaN wins either way, as max and min propagate it). */
static Val arg_extreme(Lower *L, const AstNode *call, bool is_max) {
    SelArgs a;
    if (!sel_args(L, call, 1, 1, false, &a)) return POISON;
    IrValue *x = tile_operand(L, call, a.pos[0]);
    int axis;
    if (!x || !sel_axis(L, call, &a, x->type->rank, true, &axis)) return POISON;
    L->b.loc = call->loc;
    int64_t n = x->type->shape[axis];
    IrValue *m = broadcast(L, expand(L, reduce(L, x, is_max ? RED_MAX : RED_MIN, axis), axis), x->type);
    IrValue *hit = ir_cmp(&L->b, CMP_EQ, x, m);
    if (elem_is_float(x->type->elem)) hit = ir_binary(&L->b, OP_OR, hit, ir_binary(&L->b, OP_AND, is_nan(L, x), is_nan(L, m)));
    IrValue *idx = iota_along(L, n, axis, x->type);
    IrValue *cand = select3(L, hit, idx, const_like(L, idx->type, n));
    return val_of(reduce(L, cand, RED_MIN, axis));
}

/* ---- the bitonic network -------------------------------------------------------------------- */
/* Whether pair (va, ia) comes before (vb, ib) in the requested order. */
static IrValue *before(Lower *L, IrValue *va, IrValue *ia, IrValue *vb, IrValue *ib, bool descending) {
    IrValue *lt = ir_cmp(&L->b, descending ? CMP_GT : CMP_LT, va, vb);
    IrValue *same = ir_cmp(&L->b, CMP_EQ, va, vb);
    if (elem_is_float(va->type->elem)) {
        IrValue *na = is_nan(L, va), *nb = is_nan(L, vb);
        /* ascending: numbers before NaN; descending: NaN before numbers */
        IrValue *nan_order = descending ? ir_binary(&L->b, OP_AND, na, ir_unary(&L->b, OP_NOT, nb))
                                        : ir_binary(&L->b, OP_AND, nb, ir_unary(&L->b, OP_NOT, na));
        lt = ir_binary(&L->b, OP_OR, lt, nan_order);
        same = ir_binary(&L->b, OP_OR, same, ir_binary(&L->b, OP_AND, na, nb));
    }
    if (!ia) return lt; /* integers without indices: equal values are interchangeable */
    IrValue *tie = ir_binary(&L->b, OP_AND, same, ir_cmp(&L->b, CMP_LT, ia, ib));
    return ir_binary(&L->b, OP_OR, lt, tie);
}

/* The element at position `half` (0 or 1) of axis 2 of a [O, n/2j, 2, j] tile: [O, n/2j, j]. */
static IrValue *half_of(Lower *L, IrValue *x, IrValue *first, int half) {
    IrValue *mask = half == 0 ? first : ir_unary(&L->b, OP_NOT, first);
    return reduce(L, select3(L, mask, x, lowest(L, x->type)), RED_MAX, 2);
}

/* Sorts the rows of v [O, n] (n a power of two) with their indices idx (i32 [O, n]); *idx NULL
 * sorts integer values alone (equal integers are indistinguishable, so the result is the same). */
static void bitonic(Lower *L, IrValue **v, IrValue **idx, bool descending) {
    int64_t o = (*v)->type->shape[0], n = (*v)->type->shape[1];
    int64_t flat[2] = {o, n};
    for (int64_t k = 2; k <= n; k *= 2) {
        for (int64_t j = k / 2; j >= 1; j /= 2) {
            int64_t s4[4] = {o, n / (2 * j), 2, j};
            const IrType *i4 = tile_t(L, elem_i32(), 4, s4);
            IrValue *vr = reshape(L, *v, 4, s4), *ir = *idx ? reshape(L, *idx, 4, s4) : NULL;
            IrValue *first = ir_cmp(&L->b, CMP_EQ, iota_along(L, 2, 2, i4), const_like(L, i4, 0));
            IrValue *lo_v = half_of(L, vr, first, 0), *hi_v = half_of(L, vr, first, 1);
            IrValue *lo_i = ir ? half_of(L, ir, first, 0) : NULL, *hi_i = ir ? half_of(L, ir, first, 1) : NULL;
            /* pairs in blocks of k whose block index is odd run the other way */
            IrValue *swap_up = before(L, hi_v, hi_i, lo_v, lo_i, descending);
            IrValue *swap;
            if (k == n) {
                swap = swap_up;
            } else {
                IrValue *swap_down = before(L, lo_v, lo_i, hi_v, hi_i, descending);
                IrValue *block = iota_along(L, n / (2 * j), 1, ir_type_with_elem(L->module, lo_v->type, elem_i32()));
                IrValue *bit = ir_binary(&L->b, OP_AND, ir_binary(&L->b, OP_MUL, block, const_like(L, block->type, 2 * j)),
                                         const_like(L, block->type, k));
                IrValue *up = ir_cmp(&L->b, CMP_EQ, bit, const_like(L, block->type, 0));
                swap = select3(L, up, swap_up, swap_down);
            }
            IrValue *nlo_v = select3(L, swap, hi_v, lo_v), *nhi_v = select3(L, swap, lo_v, hi_v);
            vr = select3(L, first, broadcast(L, expand(L, nlo_v, 2), vr->type), broadcast(L, expand(L, nhi_v, 2), vr->type));
            *v = reshape(L, vr, 2, flat);
            if (ir) {
                IrValue *nlo_i = select3(L, swap, hi_i, lo_i), *nhi_i = select3(L, swap, lo_i, hi_i);
                ir = select3(L, first, broadcast(L, expand(L, nlo_i, 2), ir->type), broadcast(L, expand(L, nhi_i, 2), ir->type));
                *idx = reshape(L, ir, 2, flat);
            }
        }
    }
}

/* The first k of each row of x [O, n] (k <= n, n a power of two): [O, k]. */
static IrValue *first_k(Lower *L, IrValue *x, int64_t k) {
    int64_t o = x->type->shape[0], n = x->type->shape[1], kp = 1;
    while (kp < k) kp *= 2;
    if (kp < n) {
        int64_t s3[3] = {o, n / kp, kp};
        IrValue *r = reshape(L, x, 3, s3);
        IrValue *row0 = ir_cmp(&L->b, CMP_EQ, iota_along(L, n / kp, 1, r->type), const_like(L, tile_t(L, elem_i32(), 3, s3), 0));
        x = reduce(L, select3(L, row0, r, lowest(L, r->type)), RED_MAX, 1);
    }
    if (k < kp) {
        int64_t s3[3] = {o, k, kp};
        const IrType *t3 = tile_t(L, x->type->elem, 3, s3);
        IrValue *want = ir_cmp(&L->b, CMP_EQ, iota_along(L, k, 1, t3), iota_along(L, kp, 2, t3));
        x = reduce(L, select3(L, want, broadcast(L, expand(L, x, 1), t3), lowest(L, t3)), RED_MAX, 2);
    }
    return x;
}

/* argsort of integers of up to 32 bits: each (value, index) pair packed into one 64-bit key,
 * value << 32 | index (u64 for unsigned values, so that the order of the keys is the order of
 * the pairs; descending stores 2^31 - 1 - index, so that ties still go to the lower index),
 * sorted alone, then unpacked: half the work of carrying the indices beside the values. */
static IrValue *packed_argsort(Lower *L, IrValue *v, IrValue *idx, bool descending) {
    ElemType ke = v->type->elem.kind == EK_UINT ? elem_uint(64) : elem_int(64);
    const IrType *kt = ir_type_with_elem(L->module, v->type, ke);
    if (descending) idx = ir_binary(&L->b, OP_SUB, const_like(L, idx->type, INT32_MAX), idx);
    IrValue *key = ir_binary(&L->b, OP_SHL, ir_op1(&L->b, OP_CAST, kt, v), const_like(L, kt, 32));
    key = ir_binary(&L->b, OP_OR, key, ir_op1(&L->b, OP_CAST, kt, idx));
    IrValue *none = NULL;
    bitonic(L, &key, &none, descending);
    IrValue *low = ir_op1(&L->b, OP_CAST, idx->type, ir_binary(&L->b, OP_AND, key, const_like(L, kt, 0xffffffff)));
    return descending ? ir_binary(&L->b, OP_SUB, const_like(L, idx->type, INT32_MAX), low) : low;
}

/* sort, argsort (k = 0) and topk, argtopk (k = the count): want_index picks the indices. */
static Val sort_call(Lower *L, const AstNode *call, bool want_index, bool top) {
    SelArgs a;
    if (!sel_args(L, call, top ? 2 : 1, top ? 2 : 1, !top, &a)) return POISON;
    IrValue *x = tile_operand(L, call, a.pos[0]);
    int axis;
    if (!x || !sel_axis(L, call, &a, x->type->rank, false, &axis)) return POISON;
    bool descending = top;
    if (a.descending) {
        Val d = lower_expr(L, a.descending);
        if (d.kind == VAL_POISON) return POISON;
        if (d.kind != VAL_CONST || !d.is_bool) {
            diag_error(L->diags, a.descending->loc, "descending= must be true or false");
            return POISON;
        }
        descending = d.c.i != 0;
    }
    int64_t n = x->type->shape[axis], k = n;
    if (n & (n - 1)) {
        diag_error(L->diags, call->loc, "%s() needs a power-of-two size along the axis, found %lld", call->name,
                   (long long)n);
        return POISON;
    }
    if (top) {
        if (!lower_const_int(L, a.pos[1], "k", &k)) return POISON;
        if (k < 1 || k > n) {
            diag_error(L->diags, a.pos[1]->loc, "%s(): k must be 1 to %lld (the size along the axis), found %lld",
                       call->name, (long long)n, (long long)k);
            return POISON;
        }
    }
    int64_t kp = 1, numel = 1;
    while (kp < k) kp *= 2;
    for (int d = 0; d < x->type->rank; d++) numel *= x->type->shape[d];
    if (k < kp && numel / n * k * kp > (1 << 22)) { /* the one-hot picking of first_k */
        diag_error(L->diags, a.pos[1]->loc, "%s(): k = %lld needs a [%lld, %lld, %lld] intermediate tile, more than %d "
                   "elements; use a power-of-two k", call->name, (long long)k, (long long)(numel / n), (long long)k,
                   (long long)kp, 1 << 22);
        return POISON;
    }
    L->b.loc = call->loc;
    int rank = x->type->rank;
    IrValue *v = move_axis(L, x, axis, false);
    int64_t moved[IR_MAX_RANK], flat[2] = {1, n};
    for (int d = 0; d < rank; d++) moved[d] = v->type->shape[d];
    for (int d = 0; d + 1 < rank; d++) flat[0] *= moved[d];
    v = reshape(L, v, 2, flat);
    /* floats carry their indices even for sort: -0.0 and 0.0 (and NaNs) compare equal, and the
     * indices keep them in a stable order */
    ElemType e = x->type->elem;
    bool indexed = want_index || elem_is_float(e);
    IrValue *idx = indexed ? iota_along(L, n, 1, tile_t(L, elem_i32(), 2, flat)) : NULL, *r;
    if (indexed && elem_is_integer(e) && e.bits <= 32) {
        r = packed_argsort(L, v, idx, descending);
    } else {
        bitonic(L, &v, &idx, descending);
        r = want_index ? idx : v;
    }
    if (k < n) r = first_k(L, r, k);
    moved[rank - 1] = k;
    r = reshape(L, r, rank, moved);
    return val_of(move_axis(L, r, axis, true));
}

/* ---- Philox4x32-10 ------------------------------------------------------------------------- */
enum { PHILOX_ROUNDS = 10 };
static const int64_t PHILOX_ROUND_A = 0xD2511F53, PHILOX_ROUND_B = 0xCD9E8D57;
static const int64_t PHILOX_KEY_A = 0x9E3779B9, PHILOX_KEY_B = 0xBB67AE85;

/* The high 32 bits of the 64-bit product of u32 tile x and the constant m. */
static IrValue *mulhi(Lower *L, IrValue *x, int64_t m) {
    const IrType *t64 = ir_type_with_elem(L->module, x->type, elem_uint(64));
    IrValue *w = ir_binary(&L->b, OP_MUL, ir_op1(&L->b, OP_CAST, t64, x), const_like(L, t64, m));
    w = ir_binary(&L->b, OP_SHR, w, const_like(L, t64, 32));
    return ir_op1(&L->b, OP_CAST, x->type, w);
}

/* Philox4x32-10 of counter (offset, 0, 0, 0) and key (seed lo, seed hi): the four words. */
static bool philox(Lower *L, const AstNode *call, const SelArgs *a, IrValue **out) {
    Val sv = lower_expr(L, a->pos[0]), ov = lower_expr(L, a->pos[1]);
    if (sv.kind == VAL_POISON || ov.kind == VAL_POISON) return false;
    IrValue *seed = sv.kind == VAL_CONST ? lower_materialize(L, sv, elem_int(64), a->pos[0]->loc) : sv.value;
    IrValue *off = lower_default(L, ov, a->pos[1]->loc);
    if (!seed || !off) return false;
    char tn[64];
    if (seed->type->kind != TY_TILE || seed->type->rank != 0 || !elem_is_integer(seed->type->elem)) {
        diag_error(L->diags, a->pos[0]->loc, "%s(): the seed must be an integer scalar, found %s", call->name,
                   lower_type_str(seed->type, tn, sizeof tn));
        return false;
    }
    if (off->type->kind != TY_TILE || !elem_is_integer(off->type->elem) || off->type->elem.bits != 32) {
        diag_error(L->diags, a->pos[1]->loc, "%s(): the offsets must be i32 or u32 (a tile or a scalar), found %s",
                   call->name, lower_type_str(off->type, tn, sizeof tn));
        return false;
    }
    L->b.loc = call->loc;
    int64_t none[1] = {1};
    const IrType *s64 = tile_t(L, elem_uint(64), 0, none), *s32 = tile_t(L, elem_uint(32), 0, none);
    const IrType *t32 = ir_type_with_elem(L->module, off->type, elem_uint(32));
    if (!elem_eq(seed->type->elem, elem_uint(64))) seed = ir_op1(&L->b, OP_CAST, s64, seed);
    IrValue *k0 = ir_op1(&L->b, OP_CAST, s32, seed);
    IrValue *k1 = ir_op1(&L->b, OP_CAST, s32, ir_binary(&L->b, OP_SHR, seed, const_like(L, s64, 32)));
    IrValue *c0 = elem_eq(off->type->elem, elem_uint(32)) ? off : ir_op1(&L->b, OP_CAST, t32, off);
    IrValue *c1 = const_like(L, t32, 0), *c2 = c1, *c3 = c1;
    for (int round = 0; round < PHILOX_ROUNDS; round++) {
        if (round > 0) {
            k0 = ir_binary(&L->b, OP_ADD, k0, const_like(L, s32, PHILOX_KEY_A));
            k1 = ir_binary(&L->b, OP_ADD, k1, const_like(L, s32, PHILOX_KEY_B));
        }
        IrValue *key0 = t32->rank ? ir_op1(&L->b, OP_SPLAT, t32, k0) : k0;
        IrValue *key1 = t32->rank ? ir_op1(&L->b, OP_SPLAT, t32, k1) : k1;
        IrValue *n0 = ir_binary(&L->b, OP_XOR, ir_binary(&L->b, OP_XOR, mulhi(L, c2, PHILOX_ROUND_B), c1), key0);
        IrValue *n2 = ir_binary(&L->b, OP_XOR, ir_binary(&L->b, OP_XOR, mulhi(L, c0, PHILOX_ROUND_A), c3), key1);
        IrValue *n1 = ir_binary(&L->b, OP_MUL, c2, const_like(L, t32, PHILOX_ROUND_B));
        IrValue *n3 = ir_binary(&L->b, OP_MUL, c0, const_like(L, t32, PHILOX_ROUND_A));
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
    return true;
}

/* Triton's uint_to_uniform_float for 32 bits: [0, 1) in f32. */
static IrValue *uniform(Lower *L, IrValue *u) {
    const IrType *ti = ir_type_with_elem(L->module, u->type, elem_i32()), *tf = ir_type_with_elem(L->module, u->type, elem_f32());
    IrValue *x = ir_op1(&L->b, OP_CAST, ti, u);
    x = select3(L, ir_cmp(&L->b, CMP_LT, x, const_like(L, ti, 0)), ir_unary(&L->b, OP_NOT, x), x); /* ~x = -x - 1 */
    return ir_binary(&L->b, OP_MUL, ir_op1(&L->b, OP_CAST, tf, x), ir_const_float(&L->b, tf, (double)4.6566127342e-10f));
}

/* which: 0 randint, 1 rand, 2 randn. */
static Val random_call(Lower *L, const AstNode *call, int which) {
    SelArgs a;
    if (!sel_args(L, call, 2, 2, false, &a)) return POISON;
    if (a.axis) {
        diag_error(L->diags, a.axis->loc, "%s() has no parameter named 'axis'", call->name);
        return POISON;
    }
    IrValue *w[4];
    if (!philox(L, call, &a, w)) return POISON;
    if (which == 0) return val_of(w[0]);
    IrValue *u1 = uniform(L, w[0]);
    if (which == 1) return val_of(u1);
    const IrType *tf = u1->type;
    IrValue *u2 = uniform(L, w[1]);
    u1 = ir_binary(&L->b, OP_MAX, u1, ir_const_float(&L->b, tf, (double)1.0e-7f));
    IrValue *th = ir_binary(&L->b, OP_MUL, ir_const_float(&L->b, tf, (double)6.283185307179586f), u2);
    IrValue *r = ir_unary(&L->b, OP_SQRT, ir_binary(&L->b, OP_MUL, ir_const_float(&L->b, tf, -2.0), ir_unary(&L->b, OP_LOG, u1)));
    return val_of(ir_binary(&L->b, OP_MUL, r, ir_unary(&L->b, OP_COS, th)));
}

/* ---- batched dot --------------------------------------------------------------------------- */
/* Batch element b of x [B, ...]: [...]. */
static IrValue *batch_item(Lower *L, IrValue *x, int64_t b) {
    IrValue *is_b = ir_cmp(&L->b, CMP_EQ, iota_along(L, x->type->shape[0], 0, ir_type_with_elem(L->module, x->type, elem_i32())),
                           const_like(L, ir_type_with_elem(L->module, x->type, elem_i32()), b));
    return reduce(L, select3(L, is_b, x, lowest(L, x->type)), RED_MAX, 0);
}

Val lower_batched_dot(Lower *L, const AstNode *call, IrValue *x, IrValue *y, const AstNode *acc_arg) {
    char ta[64], tb[64];
    const IrType *tx = x->type, *ty = y->type;
    if (tx->rank != 3 || ty->rank != 3 || tx->shape[0] != ty->shape[0] || tx->shape[2] != ty->shape[1]) {
        diag_error(L->diags, call->loc, "dot() needs tiles [M, K] and [K, N], or [B, M, K] and [B, K, N], found %s and %s",
                   lower_type_str(tx, ta, sizeof ta), lower_type_str(ty, tb, sizeof tb));
        return POISON;
    }
    if (elem_is_bool(tx->elem) || elem_is_bool(ty->elem) || elem_is_float(tx->elem) != elem_is_float(ty->elem)) {
        diag_error(L->diags, call->loc, "dot() needs two float or two integer tiles, found %s and %s",
                   lower_type_str(tx, ta, sizeof ta), lower_type_str(ty, tb, sizeof tb));
        return POISON;
    }
    int64_t nb = tx->shape[0], shape[3] = {nb, tx->shape[1], ty->shape[2]};
    ElemType ae = elem_is_float(tx->elem) ? elem_f32() : elem_i32();
    IrValue *acc = NULL;
    if (acc_arg) {
        Val av = lower_expr(L, acc_arg);
        if (av.kind == VAL_POISON) return POISON;
        if (av.kind == VAL_CONST) {
            acc = lower_coerce_const(L, av, tile_t(L, ae, 3, shape), acc_arg->loc);
            if (!acc) return POISON;
        } else {
            acc = av.value;
            const IrType *t = acc->type;
            if (t->kind != TY_TILE || t->rank != 3 || memcmp(t->shape, shape, sizeof shape) != 0 || elem_is_bool(t->elem)) {
                diag_error(L->diags, acc_arg->loc, "dot(): the accumulator must be a [%lld, %lld, %lld] tile, found %s",
                           (long long)shape[0], (long long)shape[1], (long long)shape[2], lower_type_str(t, ta, sizeof ta));
                return POISON;
            }
        }
    } else {
        acc = elem_is_float(ae) ? ir_const_float(&L->b, tile_t(L, ae, 3, shape), 0.0) : const_like(L, tile_t(L, ae, 3, shape), 0);
    }
    L->b.loc = call->loc;
    if (nb == 1) { /* one batch: the 2-D dot */
        IrValue *ops[3] = {reshape(L, x, 2, tx->shape + 1), reshape(L, y, 2, ty->shape + 1), reshape(L, acc, 2, shape + 1)};
        return val_of(reshape(L, ir_build(&L->b, OP_DOT, ops, 3, &ops[2]->type, 1)->results[0], 3, shape));
    }
    IrValue *r = acc;
    const IrType *ti = ir_type_with_elem(L->module, acc->type, elem_i32());
    for (int64_t b = 0; b < nb; b++) {
        IrValue *ops[3] = {batch_item(L, x, b), batch_item(L, y, b), batch_item(L, acc, b)};
        IrValue *d = ir_build(&L->b, OP_DOT, ops, 3, &ops[2]->type, 1)->results[0];
        IrValue *is_b = ir_cmp(&L->b, CMP_EQ, iota_along(L, nb, 0, ti), const_like(L, ti, b));
        r = select3(L, is_b, broadcast(L, expand(L, d, 0), acc->type), r);
    }
    return val_of(r);
}

/* ---- dispatch ------------------------------------------------------------------------------ */
bool lower_select_call(Lower *L, const AstNode *call, Val *out) {
    static const struct {
        const char *name;
        int kind;
    } names[] = {{"argmax", 0}, {"argmin", 1}, {"sort", 2}, {"argsort", 3}, {"topk", 4}, {"argtopk", 5},
                 {"randint", 6}, {"rand", 7}, {"randn", 8}};
    int kind = -1;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(names[i].name, call->name) == 0) kind = names[i].kind;
    if (kind < 0) return false;
    if (call->type_arg || call->shape) {
        diag_error(L->diags, call->loc, "%s() takes no type argument", call->name);
        *out = POISON;
        return true;
    }
    switch (kind) {
    case 0: *out = arg_extreme(L, call, true); break;
    case 1: *out = arg_extreme(L, call, false); break;
    case 2: *out = sort_call(L, call, false, false); break;
    case 3: *out = sort_call(L, call, true, false); break;
    case 4: *out = sort_call(L, call, false, true); break;
    case 5: *out = sort_call(L, call, true, true); break;
    default: *out = random_call(L, call, kind - 6); break;
    }
    return true;
}
