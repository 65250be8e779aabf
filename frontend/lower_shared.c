/*
 * lower_shared.c: explicit shared tiles and barrier() (lang/SPEC.md 6.10).
 *
 * `let s = shared<T>[d0, d1, ...];` is one shared_alloc of the block (uninitialized: `uninit 1`;
 * smem_plan gives it its offset on the GPU path, next to every other shared buffer). The value
 * is the shared tile itself, not a register tile: the only things a program does with it are
 * indexing it (lower_index in lower_expr.c takes a `let` bound to a shared tile like a tensor of
 * constant shape, so loads, stores, masked loads and stores and the atomics keep their one
 * spelling and become load / store / atomic_rmw / atomic_cas with the shared tile as operand 0)
 * and naming it in another index. Using its name anywhere else is an error (lower_expr), so a
 * shared tile never flows into a `var`, a loop's carried values, a device function or a result.
 * `barrier()` is the IR's barrier: every thread of the block waits there, and the shared-tile
 * accesses before it are visible to those after it.
 *
 * The frontend does not know the target, so it bounds the kernel's shared tiles by the most
 * dynamic shared memory any supported GPU gives a block (227 KB on sm_90; sm_80 has 163 KB, which
 * smem_plan checks for the target at hand) and reports the tile that passes it, with the sizes.
 */
#include "lower.h"

#include <string.h>

enum { SHARED_MAX_BYTES = 227 * 1024 };

bool lower_names_shared(Lower *L, const AstNode *e) {
    const Binding *b = e && e->kind == AST_NAME ? lower_lookup(L, e->name) : NULL;
    return b && b->kind == BIND_LET && b->current.kind == VAL_VALUE && b->current.value->type->kind == TY_SHARED;
}

/* shared<T>[dims]: a new shared tile, only as the value of a `let` (L->shared_let). */
Val lower_shared_tile(Lower *L, const AstNode *call) {
    Val poison = {.kind = VAL_POISON};
    if (call != L->shared_let) {
        diag_error(L->diags, call->loc, "shared<T>[...] makes a shared tile, which must be bound by a let: "
                   "let s = shared<f32>[64, 64];");
        return poison;
    }
    if (L->in_grid || L->in_function) {
        diag_error(L->diags, call->loc, "shared tiles belong to a kernel's body; %s",
                   L->in_grid ? "the grid runs on the host" : "a device function cannot allocate one (index the "
                                                              "kernel's shared tile in the kernel)");
        return poison;
    }
    if (call->args && call->args->len) {
        diag_error(L->diags, call->loc, "shared<T>[dims] takes no arguments");
        return poison;
    }
    const IrType *elem_t;
    if (!call->type_arg || !lower_type(L, call->type_arg, &elem_t)) return poison;
    if (elem_t->kind != TY_TILE || elem_t->rank != 0) {
        diag_error(L->diags, call->type_arg->loc, "shared<...> needs an element type: shared<f32>[64, 64]");
        return poison;
    }
    ElemType e = elem_t->elem;
    char name[16];
    if (elem_storage_bits(e) % 8 != 0) {
        diag_error(L->diags, call->type_arg->loc, "shared tiles hold whole bytes per element; %s is packed (load "
                   "the packed bytes as u8 instead)", elem_name(e, name));
        return poison;
    }
    if (!call->shape) {
        diag_error(L->diags, call->loc, "shared<T> needs a shape: shared<f32>[64, 64]");
        return poison;
    }
    int rank;
    int64_t shape[IR_MAX_RANK];
    if (!lower_shape_dims(L, call->shape, call->loc, &rank, shape)) return poison;
    int64_t numel = 1;
    for (int d = 0; d < rank; d++) numel *= shape[d];
    int64_t bytes = numel * (elem_storage_bits(e) / 8);
    const IrType *t = ir_shared_type(L->module, e, rank, shape);
    char tn[64];
    if (bytes > SHARED_MAX_BYTES || L->shared_bytes + bytes > SHARED_MAX_BYTES) {
        if (L->shared_bytes == 0)
            diag_error(L->diags, call->loc, "%s takes %lld bytes, more than the %d bytes of shared memory a block "
                       "can have", lower_type_str(t, tn, sizeof tn), (long long)bytes, SHARED_MAX_BYTES);
        else
            diag_error(L->diags, call->loc, "%s takes %lld bytes; with the %lld bytes of the kernel's earlier shared "
                       "tiles that is more than the %d bytes of shared memory a block can have",
                       lower_type_str(t, tn, sizeof tn), (long long)bytes, (long long)L->shared_bytes,
                       SHARED_MAX_BYTES);
        return poison;
    }
    L->shared_bytes += bytes;
    L->b.loc = call->loc;
    IrOp *op = ir_build(&L->b, OP_SHARED_ALLOC, NULL, 0, &t, 1);
    op->ints[0] = 0, op->ints[1] = 1, op->nints = 2; /* uninitialized; smem_plan sets the offset */
    return (Val){.kind = VAL_VALUE, .value = op->results[0]};
}

/* barrier(): a statement; bar.sync of the whole block on the GPU, an epoch boundary on the VM. */
Val lower_barrier(Lower *L, const AstNode *call) {
    Val poison = {.kind = VAL_POISON};
    if (call->args && call->args->len) {
        diag_error(L->diags, call->loc, "barrier() takes no arguments");
        return poison;
    }
    if (call != L->statement_expr) {
        diag_error(L->diags, call->loc, "barrier() has no value; use it as a statement");
        return poison;
    }
    if (L->in_grid) {
        diag_error(L->diags, call->loc, "barrier() belongs to a kernel's body");
        return poison;
    }
    L->b.loc = call->loc;
    ir_build(&L->b, OP_BARRIER, NULL, 0, NULL, 0);
    return poison; /* a statement: its value is never used */
}
