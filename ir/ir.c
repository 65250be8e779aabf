/*
 * ir.c: modules, interned types, regions, the builder and editing primitives.
 *
 * Types are interned by linear search over the module's table: a kernel has a few dozen
 * distinct types, so a hash would buy nothing. Ops own arrays allocated in the module arena;
 * removing an op only unlinks it (the arena frees everything with the module).
 */
#include "ir.h"
#include "layout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* F_PURE and F_MEM follow from the effect column; a row that writes them is stopped here, so
 * that the two cannot disagree. */
#define DERIVED_FLAGS(effect)                                                                           \
    ((EFFECT_##effect == EFFECT_PURE ? F_PURE : 0u) |                                                  \
     (EFFECT_##effect == EFFECT_READ || EFFECT_##effect == EFFECT_WRITE || EFFECT_##effect == EFFECT_SYNC \
          ? F_MEM                                                                                       \
          : 0u))
#define X(e, name, nops, nres, nreg, flags, effect, place, rule)                                        \
    _Static_assert(((flags) & (F_PURE | F_MEM)) == 0,                                                   \
                   "ops.def: " #e ": write purity in the effect column, not F_PURE/F_MEM in the flags");
#include "ops.def"
#undef X

const OpInfo ir_op_info[OP_COUNT] = {
#define X(e, name, nops, nres, nreg, flags, effect, place, rule)                                        \
    {name, nops, nres, nreg, (flags) | DERIVED_FLAGS(effect), EFFECT_##effect, PLACE_##place, #rule},
#include "ops.def"
#undef X
};
#undef DERIVED_FLAGS

/* ---- element types ------------------------------------------------------------------- */
bool elem_float_is_ieee(ElemType e) {
    if (e.kind != EK_FLOAT) return false;
    if (e.bits == 16 || e.bits == 32 || e.bits == 64) return true;
    return e.bits == 8 && e.exp == 5 && e.man == 2;
}

static bool parse_uint(const char *s, size_t len, int *out) {
    if (len == 0 || len > 3) return false;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    if (len > 1 && s[0] == '0') return false;
    *out = v;
    return true;
}

bool elem_parse(const char *name, size_t len, ElemType *out) {
    if (len == 4 && memcmp(name, "bool", 4) == 0) {
        *out = elem_bool();
        return true;
    }
    if (len == 4 && memcmp(name, "bf16", 4) == 0) {
        *out = elem_bf16();
        return true;
    }
    if (len < 2) return false;
    int bits;
    if (name[0] == 'i' || name[0] == 'u') {
        if (!parse_uint(name + 1, len - 1, &bits) || bits < 1 || bits > 64) return false;
        *out = name[0] == 'i' ? elem_int(bits) : elem_uint(bits);
        return true;
    }
    if (name[0] != 'f') return false;
    size_t e = 1;
    while (e < len && name[e] >= '0' && name[e] <= '9') e++;
    if (!parse_uint(name + 1, e - 1, &bits)) return false;
    if (e == len) {
        switch (bits) {
        case 16: *out = elem_f16(); return true;
        case 32: *out = elem_f32(); return true;
        case 64: *out = elem_f64(); return true;
        default: return false;
        }
    }
    /* f<bits>e<exp>m<man> */
    if (name[e] != 'e') return false;
    size_t m = e + 1;
    while (m < len && name[m] >= '0' && name[m] <= '9') m++;
    int exp, man;
    if (m >= len || name[m] != 'm' || !parse_uint(name + e + 1, m - e - 1, &exp) ||
        !parse_uint(name + m + 1, len - m - 1, &man))
        return false;
    if (exp < 1 || man < 0 || 1 + exp + man != bits || bits > 64 || exp > 11 || man > 52)
        return false;
    if (bits == 16 && exp == 5) { *out = elem_f16(); return true; }
    *out = elem_float(exp, man);
    return true;
}

const char *elem_name(ElemType e, char *buf) {
    switch (e.kind) {
    case EK_BOOL: snprintf(buf, 16, "bool"); break;
    case EK_INT: snprintf(buf, 16, "i%d", e.bits); break;
    case EK_UINT: snprintf(buf, 16, "u%d", e.bits); break;
    case EK_FLOAT:
        if (e.bits == 16 && e.exp == 8) snprintf(buf, 16, "bf16");
        else if ((e.bits == 16 && e.exp == 5) || (e.bits == 32 && e.exp == 8) ||
                 (e.bits == 64 && e.exp == 11))
            snprintf(buf, 16, "f%d", e.bits);
        else snprintf(buf, 16, "f%de%dm%d", e.bits, e.exp, e.man);
        break;
    }
    return buf;
}

int elem_storage_bits(ElemType e) { return e.kind == EK_BOOL ? 8 : e.bits; }

int64_t type_numel(const IrType *t) {
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->shape[i];
    return n;
}

int64_t type_bytes(const IrType *t) { return ((int64_t)elem_storage_bits(t->elem) * type_numel(t) + 7) / 8; }

/* ---- module and types ------------------------------------------------------------------ */
IrModule *ir_module_new(void) {
    IrModule *m = xcalloc(1, sizeof *m);
    arena_init(&m->arena);
    return m;
}

void ir_module_free(IrModule *m) {
    if (!m) return;
    vec_free(&m->types);
    arena_free(&m->arena);
    free(m);
}

static bool type_equal(const IrType *a, const IrType *b) {
    if (a->kind != b->kind || !elem_eq(a->elem, b->elem) || a->rank != b->rank ||
        !layout_equal(a->layout, b->layout) || !shared_layout_equal(a->shared, b->shared))
        return false;
    if (a->kind == TY_TENSOR) return true;
    for (int i = 0; i < a->rank; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

const IrType *ir_type_intern(IrModule *m, const IrType *t) {
    for (size_t i = 0; i < m->types.len; i++)
        if (type_equal(m->types.data[i], t)) return m->types.data[i];
    IrType *copy = ARENA_NEW(&m->arena, IrType);
    *copy = *t;
    if (copy->kind == TY_TENSOR)
        for (int i = 0; i < IR_MAX_RANK; i++) copy->shape[i] = 0;
    for (int i = copy->rank; i < IR_MAX_RANK; i++) copy->shape[i] = 0;
    vec_push(&m->types, copy);
    return copy;
}

const IrType *ir_tile_type(IrModule *m, ElemType e, int rank, const int64_t *shape) {
    IrType t = {.kind = TY_TILE, .elem = e, .rank = rank};
    for (int i = 0; i < rank; i++) t.shape[i] = shape[i];
    return ir_type_intern(m, &t);
}

const IrType *ir_scalar_type(IrModule *m, ElemType e) { return ir_tile_type(m, e, 0, NULL); }

const IrType *ir_tensor_type(IrModule *m, ElemType e, int rank) {
    IrType t = {.kind = TY_TENSOR, .elem = e, .rank = rank};
    return ir_type_intern(m, &t);
}

const IrType *ir_shared_type(IrModule *m, ElemType e, int rank, const int64_t *shape) {
    IrType t = {.kind = TY_SHARED, .elem = e, .rank = rank};
    for (int i = 0; i < rank; i++) t.shape[i] = shape[i];
    return ir_type_intern(m, &t);
}

const IrType *ir_type_with_elem(IrModule *m, const IrType *t, ElemType e) {
    IrType copy = *t;
    copy.elem = e;
    return ir_type_intern(m, &copy);
}

const IrType *ir_type_with_layout(IrModule *m, const IrType *t, const struct Layout *layout) {
    IrType copy = *t;
    copy.layout = layout;
    return ir_type_intern(m, &copy);
}

/* ---- functions and regions ------------------------------------------------------------- */
IrFunction *ir_function_new(IrModule *m, const char *name, bool is_kernel, SrcLoc loc) {
    IrFunction *f = ARENA_NEW(&m->arena, IrFunction);
    f->name = arena_strdup(&m->arena, name);
    f->loc = loc;
    f->is_kernel = is_kernel;
    f->module = m;
    f->body = ir_region_new(f);
    if (is_kernel) f->grid = ir_region_new(f);
    if (m->last_function) m->last_function->next = f;
    else m->functions = f;
    m->last_function = f;
    return f;
}

IrFunction *ir_module_find(IrModule *m, const char *name) {
    for (IrFunction *f = m->functions; f; f = f->next)
        if (strcmp(f->name, name) == 0) return f;
    return NULL;
}

IrRegion *ir_region_new(IrFunction *f) {
    IrRegion *r = ARENA_NEW(&f->module->arena, IrRegion);
    r->function = f;
    return r;
}

IrFunction *ir_function_of_region(IrRegion *r) { return r->function; }

/* Arrays in the arena grow by copying; regions and ops rarely have more than a few entries. */
static void *grow_array(Arena *a, void *old, uint32_t n, size_t elem_size) {
    void *p = arena_alloc(a, (n + 1) * elem_size);
    if (n) memcpy(p, old, n * elem_size);
    return p;
}

static IrValue *new_value(IrFunction *f, const IrType *type) {
    IrValue *v = ARENA_NEW(&f->module->arena, IrValue);
    v->id = f->next_value_id++;
    v->type = type;
    return v;
}

IrValue *ir_region_add_arg(IrRegion *r, const IrType *type, const char *name) {
    IrFunction *f = r->function;
    IrValue *v = new_value(f, type);
    v->region = r;
    v->index = r->nargs;
    v->name = name ? arena_strdup(&f->module->arena, name) : NULL;
    r->args = grow_array(&f->module->arena, r->args, r->nargs, sizeof(IrValue *));
    r->args[r->nargs++] = v;
    return v;
}

/* ---- builder ---------------------------------------------------------------------------- */
void ir_builder_at_end(IrBuilder *b, IrRegion *r) {
    b->region = r;
    b->before = NULL;
    b->function = r->function;
    b->module = r->function->module;
}

void ir_builder_before(IrBuilder *b, IrOp *op) {
    b->region = op->parent;
    b->before = op;
    b->function = op->parent->function;
    b->module = b->function->module;
}

void ir_op_append(IrRegion *r, IrOp *op) {
    op->parent = r;
    op->next = NULL;
    op->prev = r->last;
    if (r->last) r->last->next = op;
    else r->first = op;
    r->last = op;
}

void ir_op_insert_before(IrOp *op, IrOp *before) {
    IrRegion *r = before->parent;
    op->parent = r;
    op->next = before;
    op->prev = before->prev;
    if (before->prev) before->prev->next = op;
    else r->first = op;
    before->prev = op;
}

void ir_op_remove(IrOp *op) {
    IrRegion *r = op->parent;
    if (!r) return;
    if (op->prev) op->prev->next = op->next;
    else r->first = op->next;
    if (op->next) op->next->prev = op->prev;
    else r->last = op->prev;
    op->prev = op->next = NULL;
    op->parent = NULL;
}

IrOp *ir_build(IrBuilder *b, OpCode code, IrValue *const *operands, uint32_t noperands,
               const IrType *const *result_types, uint32_t nresults) {
    Arena *a = &b->module->arena;
    IrOp *op = ARENA_NEW(a, IrOp);
    op->code = code;
    op->loc = b->loc;
    op->noperands = noperands;
    op->operands = ARENA_ARRAY(a, IrValue *, noperands);
    for (uint32_t i = 0; i < noperands; i++) op->operands[i] = operands[i];
    op->nresults = nresults;
    op->results = ARENA_ARRAY(a, IrValue *, nresults);
    for (uint32_t i = 0; i < nresults; i++) {
        IrValue *v = new_value(b->function, result_types[i]);
        v->def = op;
        v->index = i;
        op->results[i] = v;
    }
    if (b->before) ir_op_insert_before(op, b->before);
    else ir_op_append(b->region, op);
    return op;
}

IrRegion *ir_op_add_region(IrOp *op) {
    IrFunction *f = op->parent->function;
    IrRegion *r = ir_region_new(f);
    r->parent_op = op;
    op->regions = grow_array(&f->module->arena, op->regions, op->nregions, sizeof(IrRegion *));
    op->regions[op->nregions++] = r;
    return r;
}

IrValue *ir_const_int(IrBuilder *b, const IrType *type, int64_t v) {
    IrOp *op = ir_build(b, OP_CONST, NULL, 0, &type, 1);
    op->value.is_float = false;
    op->value.i = elem_is_integer(type->elem) ? elem_wrap_int(type->elem, v) : (v != 0);
    return op->results[0];
}

IrValue *ir_const_float(IrBuilder *b, const IrType *type, double v) {
    IrOp *op = ir_build(b, OP_CONST, NULL, 0, &type, 1);
    op->value.is_float = true;
    op->value.f = elem_round_float(type->elem, v);
    return op->results[0];
}

IrValue *ir_op1(IrBuilder *b, OpCode code, const IrType *type, IrValue *a) {
    return ir_build(b, code, &a, 1, &type, 1)->results[0];
}

IrValue *ir_unary(IrBuilder *b, OpCode code, IrValue *a) { return ir_op1(b, code, a->type, a); }

IrValue *ir_binary(IrBuilder *b, OpCode code, IrValue *a, IrValue *c) {
    IrValue *ops[2] = {a, c};
    return ir_build(b, code, ops, 2, &a->type, 1)->results[0];
}

IrValue *ir_cmp(IrBuilder *b, IrCmp pred, IrValue *a, IrValue *c) {
    IrValue *ops[2] = {a, c};
    const IrType *t = ir_type_with_elem(b->module, a->type, elem_bool());
    IrOp *op = ir_build(b, OP_CMP, ops, 2, &t, 1);
    op->ints[0] = pred;
    op->nints = 1;
    return op->results[0];
}

/* ---- editing ----------------------------------------------------------------------------- */
void ir_set_operand(IrOp *op, uint32_t i, IrValue *v) { op->operands[i] = v; }

IrOp *ir_region_terminator(IrRegion *r) {
    return r->last && (ir_op_info[r->last->code].flags & F_TERM) ? r->last : NULL;
}

int64_t ir_role_first_warp(const IrOp *roles, uint32_t k) {
    int64_t first = 0;
    for (uint32_t i = 0; i < k; i++) first += ir_role_warps(roles, i);
    return first;
}

const IrOp *ir_role_of_region(const IrRegion *r, uint32_t *role) {
    for (; r && r->parent_op; r = r->parent_op->parent) {
        const IrOp *op = r->parent_op;
        if (op->code != OP_WARP_ROLES) continue;
        for (uint32_t k = 0; k < op->nregions; k++)
            if (op->regions[k] == r && role) *role = k;
        return op;
    }
    return NULL;
}

bool ir_walk(IrRegion *r, IrWalkFn fn, void *ctx) {
    for (IrOp *op = r->first, *next; op; op = next) {
        next = op->next;
        if (!fn(op, ctx)) return false;
        for (uint32_t i = 0; i < op->nregions; i++)
            if (!ir_walk(op->regions[i], fn, ctx)) return false;
    }
    return true;
}

typedef struct {
    IrValue *from, *to;
} ReplaceCtx;

static bool replace_in_op(IrOp *op, void *ctx) {
    ReplaceCtx *c = ctx;
    for (uint32_t i = 0; i < op->noperands; i++)
        if (op->operands[i] == c->from) op->operands[i] = c->to;
    return true;
}

void ir_replace_all_uses(IrFunction *f, IrValue *from, IrValue *to) {
    ReplaceCtx c = {from, to};
    ir_walk(f->body, replace_in_op, &c);
    if (f->grid) ir_walk(f->grid, replace_in_op, &c);
}

/* ---- forwarding (see ir.h) ----------------------------------------------------------------- */
void ir_forward_set(IrForward *fw, const IrValue *from, IrValue *to) {
    if (from->id >= fw->cap) {
        uint32_t cap = fw->cap ? fw->cap : 64;
        while (cap <= from->id) cap *= 2;
        fw->to = xrealloc(fw->to, cap * sizeof *fw->to);
        memset(fw->to + fw->cap, 0, (cap - fw->cap) * sizeof *fw->to);
        fw->cap = cap;
    }
    fw->to[from->id] = to == from ? NULL : to;
}

IrValue *ir_forward_resolve(IrForward *fw, IrValue *v) {
    IrValue *r = v;
    while (r->id < fw->cap && fw->to[r->id]) r = fw->to[r->id];
    /* path compression: every value on the chain now points at the end */
    while (v != r) {
        IrValue *next = fw->to[v->id];
        fw->to[v->id] = r;
        v = next;
    }
    return r;
}

void ir_forward_operands(IrForward *fw, IrOp *op) {
    if (!fw->cap) return;
    for (uint32_t i = 0; i < op->noperands; i++) op->operands[i] = ir_forward_resolve(fw, op->operands[i]);
}

void ir_forward_free(IrForward *fw) {
    free(fw->to);
    fw->to = NULL;
    fw->cap = 0;
}

/* ---- which parameters a kernel may write (see ir.h) ----------------------------------------- */
/* Whether a value of set (tensors: a parameter and the tensors made from it) flows into a write:
 * a store or atomic on it, or any op the analysis does not follow (an opaque op, an op with
 * regions that takes it). Tensors an op makes from one of the set join it. */
static bool region_writes(const IrRegion *r, const IrValue **set, size_t *nset, size_t cap) {
    for (const IrOp *op = r->first; op; op = op->next) {
        bool uses = false;
        for (uint32_t i = 0; i < op->noperands && !uses; i++)
            for (size_t j = 0; j < *nset && !uses; j++) uses = op->operands[i] == set[j];
        if (uses) {
            IrEffect e = ir_op_effect(op->code);
            if (e == EFFECT_WRITE || e == EFFECT_OPAQUE || op->nregions) return true;
            for (uint32_t i = 0; i < op->nresults; i++)
                if (op->results[i]->type->kind == TY_TENSOR) {
                    if (*nset == cap) return true;
                    set[(*nset)++] = op->results[i];
                }
        }
        for (uint32_t i = 0; i < op->nregions; i++)
            if (region_writes(op->regions[i], set, nset, cap)) return true;
    }
    return false;
}

bool ir_param_may_write(const IrFunction *f, uint32_t p) {
    enum { CAP = 256 };
    if (p >= f->body->nargs || f->body->args[p]->type->kind != TY_TENSOR) return false;
    const IrValue *set[CAP] = {f->body->args[p]};
    size_t n = 1;
    return region_writes(f->body, set, &n, CAP);
}
