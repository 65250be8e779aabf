/*
 * lower.h: state shared by the two halves of the lowering (lower.c: declarations, statements,
 * scopes, device functions; lower_expr.c: expressions and builtins). Not part of the frontend's
 * interface (frontend.h).
 *
 * An expression lowers to a Val: an IR value, or a compile-time constant that has no IR yet.
 * Constants stay untyped (like Go's) until they meet a typed operand or must be materialized,
 * when integers default to i32 and floats to f32; that is what lets `x * 2` work for every
 * element type of x and `BM * 2` stay a shape. A Val with neither is the poison left by an
 * error: every consumer passes it on silently so one mistake gives one diagnostic.
 */
#ifndef TILE_FRONTEND_LOWER_H
#define TILE_FRONTEND_LOWER_H

#include "frontend.h"

typedef enum { VAL_POISON, VAL_VALUE, VAL_CONST } ValKind;

typedef struct Val {
    ValKind kind;
    IrValue *value;     /* VAL_VALUE */
    IrConst c;          /* VAL_CONST: c.is_float says int or float */
    bool is_bool;       /* VAL_CONST: true/false, typed bool */
} Val;

typedef enum {
    BIND_CONST,   /* compile-time constant: Val of kind VAL_CONST */
    BIND_LET,     /* immutable value */
    BIND_VAR,     /* mutable value: current is updated by assignments */
    BIND_TENSOR,  /* tensor parameter: param_index */
    BIND_DIM,     /* symbolic size: the dimension `axis` of tensor parameter `param_index` */
} BindKind;

typedef struct Binding {
    const char *name;
    BindKind kind;
    Val current;
    const IrType *var_type;  /* BIND_VAR: the declared type every assignment must keep */
    int param_index, axis;
    SrcLoc loc;
} Binding;

typedef struct FnInstance {
    const AstNode *decl;
    char *key;               /* argument types and constant values */
    IrFunction *function;
    bool failed;             /* lowering it reported errors: calls of it are poison, silently */
    struct FnInstance *next;
} FnInstance;

/* Per-region cache of values that are emitted once at the top of a region (tensor params'
 * region arguments, DIM ops). */
typedef struct Lower {
    AstFile *file;
    IrModule *module;
    DiagList *diags;
    IrBuilder b;
    VEC(Binding *) scope;    /* innermost last; scope_marks delimit blocks */
    VEC(size_t) scope_marks;
    size_t scope_floor;      /* lookups stop here: a device function sees its parameters only */
    IrRegion *entry;         /* the region whose arguments are the current function's params */
    VEC(IrValue *) dim_cache;/* per parameter * IR_MAX_RANK: DIM values in `entry` */
    bool in_function;        /* lowering a device function (return allowed) */
    const IrType *return_type; /* device function: declared or first returned type */
    Val returned;
    bool has_return;
    FnInstance *instances;
    VEC(const AstNode *) call_stack;
    VEC(const AstNode *) failed_functions; /* reported once: later calls are poison, silently */
    int depth;               /* recursion guard for expressions */
    bool too_deep;           /* the guard tripped (reported once; then everything is poison) */
    const AstNode *statement_expr; /* the expression of the statement being lowered */
    bool in_grid;            /* lowering the grid (and its checks): no tensor data */
    /* break/continue/return as flags (lower.c): the flags of the innermost loop and of the
     * kernel, or NULL where nothing sets them; loops counts the loops around */
    Binding *flag_break, *flag_continue, *flag_return;
    int loops;
    /* `let (a, b) = f(...)`: the call whose several results are wanted, and them */
    const AstNode *tuple_call;
    IrValue **tuple_results;
    uint32_t ntuple_results;
    /* shared tiles (lower_shared.c): the `shared<T>[...]` call a `let` binds now, and the bytes
     * of the kernel's shared tiles so far */
    const AstNode *shared_let;
    int64_t shared_bytes;
} Lower;

/* lower_ext.c: the builtins and expressions of Language II (lang/SPEC.md) */
/* A builtin of lower_ext.c (load, store, bitcast, static_assert, check): true, with *out. */
bool lower_call_ext(Lower *L, const AstNode *call, Val *out);
Val lower_conditional(Lower *L, const AstNode *e);
/* lower_expr.c, for lower_ext.c: load(t[...], mask=, other=) and store(t[...], v, mask=), and
 * the broadcasting helpers */
Val lower_masked_access(Lower *L, const AstNode *call, bool store);
bool lower_broadcast_shapes(const IrType *a, const IrType *b, int *rank, int64_t *shape);
IrValue *lower_broadcast_to(Lower *L, IrValue *v, int rank, const int64_t *shape);
bool lower_unify(Lower *L, Val *a, Val *b, SrcLoc loc, const char *what);

/* lower_shared.c: `shared<T>[dims]` (only as the value of a `let`) and `barrier()` */
Val lower_shared_tile(Lower *L, const AstNode *call);
Val lower_barrier(Lower *L, const AstNode *call);
/* Whether e is the name of a shared tile (a let bound to shared<T>[...]). */
bool lower_names_shared(Lower *L, const AstNode *e);
/* lower_expr.c, for lower_shared.c: a tile shape of compile-time dimensions */
bool lower_shape_dims(Lower *L, const AstList *dims, SrcLoc loc, int *rank, int64_t *shape);

/* lower.c */
Binding *lower_lookup(Lower *L, const char *name);
bool lower_type(Lower *L, const AstNode *type, const IrType **out);
Val lower_call_function(Lower *L, const AstNode *call, const AstNode *decl);
const AstNode *lower_find_decl(Lower *L, AstKind kind, const char *name);

/* lower_expr.c */
Val lower_expr(Lower *L, const AstNode *e);
Val lower_value_of(Lower *L, Binding *bnd, SrcLoc loc);
IrValue *lower_materialize(Lower *L, Val v, ElemType elem, SrcLoc loc);   /* NULL on error */
IrValue *lower_default(Lower *L, Val v, SrcLoc loc);       /* constants: i32 / f32 / bool */
IrValue *lower_coerce_const(Lower *L, Val v, const IrType *to, SrcLoc loc);
IrValue *lower_coerce(Lower *L, Val v, const IrType *to, SrcLoc loc, const char *what);
bool lower_const_int(Lower *L, const AstNode *e, const char *what, int64_t *out);
void lower_store(Lower *L, const AstNode *target, Val value, SrcLoc loc);
Val lower_binary_op(Lower *L, int op, Val a, Val b, SrcLoc loc);
const char *lower_type_str(const IrType *t, char *buf, size_t n);

/* lower_select.c: argmax/argmin, sort/argsort, topk/argtopk, randint/rand/randn (false: not one
 * of them), and dot over a batch axis */
bool lower_select_call(Lower *L, const AstNode *call, Val *out);
Val lower_batched_dot(Lower *L, const AstNode *call, IrValue *x, IrValue *y, const AstNode *acc);

/* Whether `name` is a size that a tensor parameter of kernel k binds at launch (and no
 * compile-time parameter of k): `M` in `tensor<f32>[M, K]`. */
bool is_launch_size(const AstNode *k, const char *name);

#endif
