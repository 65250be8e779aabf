/*
 * vm_ops.c: the data ops of the CPU virtual machine, one function per family, with the
 * reference semantics every device must match (up to float reassociation on the GPU).
 *
 * Elements are VmElem: int64 for bool and integers (wrapped to their width with elem_wrap_int
 * after every op; arithmetic goes through uint64 so that C never overflows), double for floats
 * (always exactly a value of the element type). Float arithmetic on formats that fit in f32
 * (exp <= 8, man <= 23: every float of at most 32 bits except exotic wide-exponent ones) is
 * done in C float and then rounded to the element type with elem_round_float, so bf16 a + b is
 * round_bf16((float)a + (float)b); other formats compute in double. Reductions, scans and dot
 * accumulate in that arithmetic in index order and round once at the end.
 *
 * Shapes come from the IR types; every operand is checked against its type's size when it is
 * read, so that a malformed program ends in a run-time error, never an out-of-bounds access.
 * Loads and stores broadcast their index tiles against the result (numpy rules, trailing dims
 * aligned) and walk the elements with an odometer that keeps one offset per operand.
 */
#include "vm.h"

#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- values and errors ----------------------------------------------------------------- */
bool vm_error(VmThread *th, const IrOp *op, const char *fmt, ...) {
    if (th->failed) return false;
    th->failed = true;
    if (op && op->loc.file)
        sb_printf(&th->err, "%s:%u:%u: ", op->loc.file->name, op->loc.line, op->loc.col);
    if (op) sb_printf(&th->err, "%s: ", op->code < OP_COUNT ? ir_op_info[op->code].name : "?op");
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&th->err, fmt, ap);
    va_end(ap);
    return false;
}

bool vm_internal_error(VmThread *th, const IrOp *op, const char *fmt, ...) {
    if (th->failed) return false;
    th->failed = th->internal = true;
    if (op && op->loc.file) sb_printf(&th->err, "%s:%u:%u: ", op->loc.file->name, op->loc.line, op->loc.col);
    sb_puts(&th->err, "internal error in pass vm: ");
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&th->err, fmt, ap);
    va_end(ap);
    return false;
}

void vm_tile_retain(VmTile *t) {
    if (t) t->refs++;
}

void vm_tile_release(VmTile *t) {
    if (t && --t->refs == 0) {
        free(t->accesses);
        free(t);
    }
}

void vm_slot_set(VmSlot *dst, VmSlot src) {
    vm_tile_retain(src.tile);
    vm_tile_release(dst->tile);
    *dst = src;
}

void vm_slot_clear(VmSlot *slot) {
    vm_tile_release(slot->tile);
    slot->tile = NULL;
    slot->tensor = NULL;
    slot->offset = 0;
}

VmTile *vm_tile_new(VmThread *th, const IrOp *op, int64_t numel) {
    if (numel < 0 || numel > VM_MAX_TILE_ELEMENTS) {
        vm_error(th, op, "a tile of %" PRId64 " elements is too large for the VM", numel);
        return NULL;
    }
    VmTile *t = malloc(sizeof(VmTile) + (size_t)numel * sizeof(VmElem));
    if (!t) {
        vm_error(th, op, "out of memory for a tile of %" PRId64 " elements", numel);
        return NULL;
    }
    t->refs = 1;
    t->numel = numel;
    t->accesses = NULL;
    return t;
}

bool vm_type_numel(VmThread *th, const IrOp *op, const IrType *t, int64_t *out) {
    if (t->kind == TY_TENSOR) return vm_error(th, op, "a tensor is used where a tile is expected");
    int64_t n = 1;
    for (int d = 0; d < t->rank; d++) {
        if (t->shape[d] < 0) return vm_error(th, op, "a tile has a negative dimension");
        if (t->shape[d] > VM_MAX_TILE_ELEMENTS || n * t->shape[d] > VM_MAX_TILE_ELEMENTS) {
            char name[16];
            return vm_error(th, op, "a tile<%s> of rank %d is too large for the VM (more than %"
                            PRId64 " elements)", elem_name(t->elem, name), t->rank,
                            (int64_t)VM_MAX_TILE_ELEMENTS);
        }
        n *= t->shape[d];
    }
    *out = n;
    return true;
}

VmSlot *vm_value_slot(VmThread *th, VmFrame *fr, const IrOp *op, const IrValue *v) {
    if (!v || v->id >= fr->nslots) {
        vm_error(th, op, "a value does not belong to the running function");
        return NULL;
    }
    return &fr->slots[v->id];
}

const VmTile *vm_operand_tile(VmThread *th, VmFrame *fr, const IrOp *op, uint32_t i) {
    if (i >= op->noperands) {
        vm_error(th, op, "missing operand %u", (unsigned)i);
        return NULL;
    }
    const IrValue *v = op->operands[i];
    VmSlot *s = vm_value_slot(th, fr, op, v);
    if (!s) return NULL;
    if (!s->tile) {
        vm_error(th, op, "operand %u is used before it is defined", (unsigned)i);
        return NULL;
    }
    int64_t n;
    if (!vm_type_numel(th, op, v->type, &n)) return NULL;
    if (v->type->kind == TY_SHARED && (s->offset != 0 || n != s->tile->numel)) {
        /* a view of a multi-stage buffer: readers go through operand_shared */
        if (s->offset < 0 || s->offset > s->tile->numel - n) {
            vm_error(th, op, "operand %u is a shared view outside its buffer", (unsigned)i);
            return NULL;
        }
        return s->tile;
    }
    if (n != s->tile->numel) {
        vm_error(th, op, "operand %u holds %" PRId64 " elements but its type has %" PRId64,
                 (unsigned)i, s->tile->numel, n);
        return NULL;
    }
    return s->tile;
}

VmTile *vm_result_tile(VmThread *th, VmFrame *fr, const IrOp *op, uint32_t i) {
    if (i >= op->nresults) {
        vm_error(th, op, "missing result %u", (unsigned)i);
        return NULL;
    }
    const IrValue *v = op->results[i];
    VmSlot *s = vm_value_slot(th, fr, op, v);
    int64_t n;
    if (!s || !vm_type_numel(th, op, v->type, &n)) return NULL;
    /* Reuse the previous iteration's array when nothing else holds it. */
    if (s->tile && s->tile->refs == 1 && s->tile->numel == n) {
        s->tensor = NULL;
        s->offset = 0;
        return s->tile;
    }
    vm_slot_clear(s);
    s->tile = vm_tile_new(th, op, n);
    return s->tile;
}

VmTile *vm_scalar_tile(VmThread *th, const IrOp *op, VmElem v) {
    VmTile *t = vm_tile_new(th, op, 1);
    if (t) t->data[0] = v;
    return t;
}

static bool check_numel(VmThread *th, const IrOp *op, const VmTile *t, int64_t n) {
    if (t->numel != n)
        return vm_error(th, op, "operands of %" PRId64 " and %" PRId64 " elements do not match",
                        t->numel, n);
    return true;
}

/* ---- element arithmetic: ir/eval.c (shared with constant folding) ---------------------------- */
static bool compare(IrCmp pred, ElemType e, VmElem a, VmElem b) {
    IrConst x = {.is_float = elem_is_float(e)}, y = x;
    if (x.is_float) x.f = a.f, y.f = b.f;
    else x.i = a.i, y.i = b.i;
    return elem_compare(pred, e, x, y);
}

static VmElem convert(ElemType from, VmElem v, ElemType to) {
    IrConst c = {.is_float = elem_is_float(from)};
    if (c.is_float) c.f = v.f;
    else c.i = v.i;
    IrConst r = elem_convert(from, c, to);
    VmElem out;
    if (elem_is_float(to)) out.f = r.f;
    else out.i = r.i;
    return out;
}

/* ---- elementwise ops ------------------------------------------------------------------------ */
static bool exec_binary(VmThread *th, VmFrame *fr, const IrOp *op) {
    const VmTile *a = vm_operand_tile(th, fr, op, 0), *b = vm_operand_tile(th, fr, op, 1);
    if (!a || !b || !check_numel(th, op, b, a->numel)) return false;
    ElemType e = op->operands[0]->type->kind == TY_TILE ? op->operands[0]->type->elem : elem_bool();
    bool is_float = elem_is_float(e);
    switch (op->code) {
    case OP_AND: case OP_OR: case OP_XOR: case OP_SHL: case OP_SHR:
        if (is_float) return vm_error(th, op, "needs integer or bool operands");
        break;
    default: break;
    }
    VmTile *r = vm_result_tile(th, fr, op, 0);
    if (!r || !check_numel(th, op, r, a->numel)) return false;
    int64_t n = a->numel;
    if (op->code == OP_CMP) {
        IrCmp pred = (IrCmp)op->ints[0];
        if (op->ints[0] < CMP_EQ || op->ints[0] > CMP_GE)
            return vm_error(th, op, "unknown predicate %" PRId64, op->ints[0]);
        for (int64_t i = 0; i < n; i++) r->data[i].i = compare(pred, e, a->data[i], b->data[i]);
        return true;
    }
    if (is_float) {
        for (int64_t i = 0; i < n; i++) r->data[i].f = elem_float_binary(op->code, e, a->data[i].f, b->data[i].f);
    } else {
        for (int64_t i = 0; i < n; i++) r->data[i].i = elem_int_binary(op->code, e, a->data[i].i, b->data[i].i);
    }
    return true;
}

static bool exec_unary(VmThread *th, VmFrame *fr, const IrOp *op) {
    const VmTile *a = vm_operand_tile(th, fr, op, 0);
    if (!a) return false;
    ElemType e = op->operands[0]->type->elem;
    bool is_float = elem_is_float(e);
    if (!is_float && op->code != OP_NEG && op->code != OP_NOT && op->code != OP_ABS)
        return vm_error(th, op, "needs a float operand");
    if (is_float && op->code == OP_NOT) return vm_error(th, op, "needs an integer or bool operand");
    VmTile *r = vm_result_tile(th, fr, op, 0);
    if (!r || !check_numel(th, op, r, a->numel)) return false;
    for (int64_t i = 0; i < a->numel; i++) {
        VmElem x = a->data[i];
        if (is_float) {
            r->data[i].f = elem_float_unary(op->code, e, x.f);
            continue;
        }
        r->data[i].i = elem_int_unary(op->code, e, x.i);
    }
    return true;
}

static bool exec_select(VmThread *th, VmFrame *fr, const IrOp *op) {
    const VmTile *c = vm_operand_tile(th, fr, op, 0), *a = vm_operand_tile(th, fr, op, 1),
                 *b = vm_operand_tile(th, fr, op, 2);
    if (!c || !a || !b || !check_numel(th, op, b, a->numel)) return false;
    bool float_cond = elem_is_float(op->operands[0]->type->elem);
    bool scalar_cond = c->numel == 1;
    if (!scalar_cond && !check_numel(th, op, c, a->numel)) return false;
    VmTile *r = vm_result_tile(th, fr, op, 0);
    if (!r || !check_numel(th, op, r, a->numel)) return false;
    for (int64_t i = 0; i < a->numel; i++) {
        VmElem ci = c->data[scalar_cond ? 0 : i];
        bool t = float_cond ? ci.f != 0 : ci.i != 0;
        r->data[i] = t ? a->data[i] : b->data[i];
    }
    return true;
}

static bool exec_cast(VmThread *th, VmFrame *fr, const IrOp *op) {
    const VmTile *a = vm_operand_tile(th, fr, op, 0);
    if (!a) return false;
    VmTile *r = vm_result_tile(th, fr, op, 0);
    if (!r || !check_numel(th, op, r, a->numel)) return false;
    ElemType from = op->operands[0]->type->elem, to = op->results[0]->type->elem;
    for (int64_t i = 0; i < a->numel; i++) r->data[i] = convert(from, a->data[i], to);
    return true;
}

/* ---- bitcast and launch checks (lang/SPEC.md 6.2, 2.1) ---------------------------------- */
/* The bits of each element, reinterpreted as the result's type (both of one width). Floats
 * are kept as doubles on the VM, so a NaN's payload is not kept (every NaN is the canonical). */
static bool exec_bitcast(VmThread *th, VmFrame *fr, const IrOp *op) {
    const VmTile *a = vm_operand_tile(th, fr, op, 0);
    if (!a) return false;
    VmTile *r = vm_result_tile(th, fr, op, 0);
    if (!r || !check_numel(th, op, r, a->numel)) return false;
    ElemType from = op->operands[0]->type->elem, to = op->results[0]->type->elem;
    if (from.bits != to.bits || elem_is_bool(from) || elem_is_bool(to))
        return vm_error(th, op, "element types of different widths");
    uint64_t mask = from.bits >= 64 ? UINT64_MAX : (UINT64_C(1) << from.bits) - 1;
    for (int64_t i = 0; i < a->numel; i++) {
        uint64_t bits = elem_is_float(from) ? vm_float_encode(from, a->data[i].f) : (uint64_t)a->data[i].i & mask;
        if (elem_is_float(to)) r->data[i].f = vm_float_decode(to, bits);
        else r->data[i].i = elem_wrap_int(to, (int64_t)bits);
    }
    return true;
}

/* A launch-time check of the grid region: a false condition fails the launch with the
 * user's message and the check's location. */
static bool exec_check(VmThread *th, VmFrame *fr, const IrOp *op) {
    const VmTile *c = vm_operand_tile(th, fr, op, 0);
    if (!c) return false;
    if (c->numel != 1) return vm_error(th, op, "the condition is not a scalar");
    if (c->data[0].i) return true;
    const IrFunction *f = op->parent ? op->parent->function : NULL;
    const char *msg = f && op->nints && op->ints[0] >= 0 && (uint64_t)op->ints[0] < f->ncheck_messages
                          ? f->check_messages[op->ints[0]]
                          : "(no message)";
    if (th->failed) return false;
    th->failed = true;
    if (op->loc.file) sb_printf(&th->err, "%s:%u:%u: ", op->loc.file->name, op->loc.line, op->loc.col);
    sb_printf(&th->err, "check failed: %s", msg);
    return false;
}

/* ---- values of the program -------------------------------------------------------------- */
static bool exec_const(VmThread *th, VmFrame *fr, const IrOp *op) {
    VmTile *r = vm_result_tile(th, fr, op, 0);
    if (!r) return false;
    ElemType to = op->results[0]->type->elem;
    VmElem v;
    if (op->value.is_float) v.f = op->value.f;
    else v.i = op->value.i;
    v = convert(op->value.is_float ? elem_f64() : elem_int(64), v, to);
    for (int64_t i = 0; i < r->numel; i++) r->data[i] = v;
    return true;
}

static bool exec_axis_scalar(VmThread *th, VmFrame *fr, const IrOp *op) {
    int64_t axis = op->ints[0];
    if (axis < 0 || axis > 2) return vm_error(th, op, "axis %" PRId64 " is not 0, 1 or 2", axis);
    VmTile *r = vm_result_tile(th, fr, op, 0);
    if (!r || !check_numel(th, op, r, 1)) return false;
    int64_t v = op->code == OP_BLOCK_ID ? th->block[axis] : th->launch->grid[axis];
    r->data[0] = convert(elem_int(64), (VmElem){.i = v}, op->results[0]->type->elem);
    return true;
}

/* num_sms: the launch's multiprocessor count (a GPU launch's device's, else vm_num_sms()). */
static bool exec_num_sms(VmThread *th, VmFrame *fr, const IrOp *op) {
    VmTile *r = vm_result_tile(th, fr, op, 0);
    if (!r || !check_numel(th, op, r, 1)) return false;
    r->data[0] = convert(elem_int(64), (VmElem){.i = th->launch->num_sms}, op->results[0]->type->elem);
    return true;
}

static const VmTensor *operand_tensor(VmThread *th, VmFrame *fr, const IrOp *op, uint32_t i) {
    if (i >= op->noperands) {
        vm_error(th, op, "missing operand %u", (unsigned)i);
        return NULL;
    }
    VmSlot *s = vm_value_slot(th, fr, op, op->operands[i]);
    if (!s) return NULL;
    if (!s->tensor) {
        vm_error(th, op, "operand %u is not a tensor", (unsigned)i);
        return NULL;
    }
    return s->tensor;
}

static bool exec_dim(VmThread *th, VmFrame *fr, const IrOp *op) {
    const VmTensor *t = operand_tensor(th, fr, op, 0);
    if (!t) return false;
    int64_t axis = op->ints[0];
    if (axis < 0 || axis >= t->rank)
        return vm_error(th, op, "axis %" PRId64 " is outside the tensor's rank %d", axis, t->rank);
    VmTile *r = vm_result_tile(th, fr, op, 0);
    if (!r || !check_numel(th, op, r, 1)) return false;
    r->data[0] = convert(elem_int(64), (VmElem){.i = t->shape[axis]}, op->results[0]->type->elem);
    return true;
}

static bool exec_arange(VmThread *th, VmFrame *fr, const IrOp *op) {
    VmTile *r = vm_result_tile(th, fr, op, 0);
    if (!r) return false;
    ElemType to = op->results[0]->type->elem;
    uint64_t start = (uint64_t)op->ints[0];
    for (int64_t i = 0; i < r->numel; i++)
        r->data[i] = convert(elem_int(64), (VmElem){.i = (int64_t)(start + (uint64_t)i)}, to);
    return true;
}

/* ---- shapes -------------------------------------------------------------------------------------- */
enum { ODO_MAX = IR_MAX_RANK + 2 };

/* Walks a shape in row-major order keeping, for each operand, the offset of the element that
 * broadcasts to the current position. */
typedef struct Odometer {
    int rank, n;
    int64_t shape[IR_MAX_RANK];
    int64_t pos[IR_MAX_RANK];
    int64_t stride[ODO_MAX][IR_MAX_RANK];
    int64_t off[ODO_MAX];
} Odometer;

static void odo_init(Odometer *o, int rank, const int64_t *shape) {
    memset(o, 0, sizeof *o);
    o->rank = rank;
    for (int d = 0; d < rank; d++) o->shape[d] = shape[d];
}

/* Adds an operand of type t (rank <= o->rank, trailing dims aligned, size-1 dims stretched);
 * returns its index or -1 when it does not broadcast. */
static int odo_add(Odometer *o, const IrType *t) {
    if (t->rank > o->rank || o->n == ODO_MAX) return -1;
    int j = o->n++;
    int64_t s = 1;
    for (int d = t->rank - 1; d >= 0; d--) {
        int od = o->rank - t->rank + d;
        if (t->shape[d] == o->shape[od]) o->stride[j][od] = t->shape[d] == 1 ? 0 : s;
        else if (t->shape[d] == 1) o->stride[j][od] = 0;
        else return -1;
        s *= t->shape[d];
    }
    return j;
}

static void odo_next(Odometer *o) {
    for (int d = o->rank - 1; d >= 0; d--) {
        o->pos[d]++;
        for (int j = 0; j < o->n; j++) o->off[j] += o->stride[j][d];
        if (o->pos[d] < o->shape[d]) return;
        for (int j = 0; j < o->n; j++) o->off[j] -= o->stride[j][d] * o->shape[d];
        o->pos[d] = 0;
    }
}

/* The result shares the operand's array: same elements in the same row-major order. */
static bool exec_same_elements(VmThread *th, VmFrame *fr, const IrOp *op) {
    const VmTile *a = vm_operand_tile(th, fr, op, 0);
    int64_t n;
    if (!a || op->nresults != 1 || !vm_type_numel(th, op, op->results[0]->type, &n)) return false;
    if (!check_numel(th, op, a, n)) return false;
    VmSlot *s = vm_value_slot(th, fr, op, op->results[0]);
    if (!s) return false;
    vm_slot_set(s, (VmSlot){.tile = (VmTile *)a});
    return true;
}

static bool exec_splat(VmThread *th, VmFrame *fr, const IrOp *op) {
    const VmTile *a = vm_operand_tile(th, fr, op, 0);
    if (!a) return false;
    if (a->numel != 1) return exec_same_elements(th, fr, op);
    VmTile *r = vm_result_tile(th, fr, op, 0);
    if (!r) return false;
    for (int64_t i = 0; i < r->numel; i++) r->data[i] = a->data[0];
    return true;
}

static bool exec_broadcast(VmThread *th, VmFrame *fr, const IrOp *op) {
    const VmTile *a = vm_operand_tile(th, fr, op, 0);
    if (!a) return false;
    const IrType *rt = op->results[0]->type;
    Odometer o;
    odo_init(&o, rt->rank, rt->shape);
    if (odo_add(&o, op->operands[0]->type) < 0)
        return vm_error(th, op, "the operand does not broadcast to the result shape");
    VmTile *r = vm_result_tile(th, fr, op, 0);
    if (!r) return false;
    for (int64_t i = 0; i < r->numel; i++, odo_next(&o)) r->data[i] = a->data[o.off[0]];
    return true;
}

static bool exec_transpose(VmThread *th, VmFrame *fr, const IrOp *op) {
    if (op->operands[0]->type->kind == TY_SHARED) {
        /* a view of the same shared memory with its two dims swapped: dot reads it transposed */
        if (op->operands[0]->type->rank != 2 || op->nints != 2 || op->ints[0] != 1 || op->ints[1] != 0)
            return vm_error(th, op, "a shared tile transposes only as a 2-d view with perm [1, 0]");
        VmSlot from = fr->slots[op->operands[0]->id];
        VmSlot *r = vm_value_slot(th, fr, op, op->results[0]);
        if (!r || !vm_operand_tile(th, fr, op, 0)) return false;
        from.transposed = !from.transposed;
        vm_slot_set(r, from);
        return true;
    }
    const VmTile *a = vm_operand_tile(th, fr, op, 0);
    if (!a) return false;
    const IrType *in = op->operands[0]->type, *rt = op->results[0]->type;
    int rank = in->rank;
    if (rt->rank != rank) return vm_error(th, op, "the result rank differs from the operand's");
    bool seen[IR_MAX_RANK] = {0};
    int64_t in_stride[IR_MAX_RANK];
    int64_t s = 1;
    for (int d = rank - 1; d >= 0; d--) {
        in_stride[d] = s;
        s *= in->shape[d];
    }
    Odometer o;
    odo_init(&o, rank, rt->shape);
    o.n = 1;
    for (int i = 0; i < rank; i++) {
        int64_t p = op->ints[i];
        if (p < 0 || p >= rank || seen[p] || in->shape[p] != rt->shape[i])
            return vm_error(th, op, "ints do not give a permutation of the operand's dims");
        seen[p] = true;
        o.stride[0][i] = in_stride[p];
    }
    VmTile *r = vm_result_tile(th, fr, op, 0);
    if (!r || !check_numel(th, op, r, a->numel)) return false;
    for (int64_t i = 0; i < r->numel; i++, odo_next(&o)) r->data[i] = a->data[o.off[0]];
    return true;
}

/* ---- reductions, scans, dot ------------------------------------------------------------------ */
typedef struct Accumulator {
    IrReduce kind;
    ElemType elem;
    bool is_float, narrow;
} Accumulator;

/* acc (op) x in the element type's arithmetic: f32 for narrow floats (acc kept unrounded),
 * double for wide ones, wrapping integers. */
static VmElem acc_combine(const Accumulator *a, VmElem acc, VmElem x) {
    VmElem r;
    if (a->is_float) {
        switch (a->kind) {
        case RED_SUM: r.f = a->narrow ? (double)((float)acc.f + (float)x.f) : acc.f + x.f; break;
        case RED_MAX: r.f = elem_nan_max(acc.f, x.f); break;
        default: r.f = elem_nan_min(acc.f, x.f); break;
        }
        return r;
    }
    switch (a->kind) {
    case RED_SUM: r.i = elem_wrap_int(a->elem, (int64_t)((uint64_t)acc.i + (uint64_t)x.i)); break;
    case RED_MAX: r.i = elem_int_less(a->elem, acc.i, x.i) ? x.i : acc.i; break;
    default: r.i = elem_int_less(a->elem, x.i, acc.i) ? x.i : acc.i; break;
    }
    return r;
}

static VmElem acc_identity(const Accumulator *a) {
    VmElem r;
    ElemType e = a->elem;
    if (a->is_float) {
        r.f = a->kind == RED_SUM ? 0.0 : elem_round_float(e, a->kind == RED_MAX ? -INFINITY : INFINITY);
        return r;
    }
    bool max = a->kind == RED_MAX;
    if (a->kind == RED_SUM) r.i = 0;
    else if (e.kind == EK_BOOL || e.kind == EK_UINT) r.i = max ? 0 : elem_wrap_int(e, -1);
    else r.i = max ? elem_wrap_int(e, (int64_t)(UINT64_C(1) << (e.bits - 1)))
                   : elem_wrap_int(e, (int64_t)((UINT64_C(1) << (e.bits - 1)) - 1));
    return r;
}

static VmElem acc_finish(const Accumulator *a, VmElem acc) {
    if (a->is_float) acc.f = elem_round_float(a->elem, acc.f);
    return acc;
}

static bool exec_reduce_scan(VmThread *th, VmFrame *fr, const IrOp *op) {
    const VmTile *a = vm_operand_tile(th, fr, op, 0);
    if (!a) return false;
    const IrType *in = op->operands[0]->type;
    int64_t kind = op->ints[0], axis = op->ints[1];
    if (kind < RED_SUM || kind > RED_MIN) return vm_error(th, op, "unknown reduction %" PRId64, kind);
    if (axis < 0 || axis >= in->rank)
        return vm_error(th, op, "axis %" PRId64 " is outside the operand's rank %d", axis, in->rank);
    int64_t outer = 1, inner = 1, n = in->shape[axis];
    for (int d = 0; d < axis; d++) outer *= in->shape[d];
    for (int d = (int)axis + 1; d < in->rank; d++) inner *= in->shape[d];
    Accumulator acc = {(IrReduce)kind, in->elem, elem_is_float(in->elem), elem_float_in_f32(in->elem)};
    VmTile *r = vm_result_tile(th, fr, op, 0);
    bool scan = op->code == OP_SCAN;
    if (!r || !check_numel(th, op, r, scan ? a->numel : outer * inner)) return false;
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t i = 0; i < inner; i++) {
            const VmElem *src = a->data + o * n * inner + i;
            VmElem s = n ? src[0] : acc_identity(&acc);
            if (scan && n) r->data[o * n * inner + i] = acc_finish(&acc, s);
            for (int64_t k = 1; k < n; k++) {
                s = acc_combine(&acc, s, src[k * inner]);
                if (scan) r->data[o * n * inner + k * inner + i] = acc_finish(&acc, s);
            }
            if (!scan) r->data[o * inner + i] = acc_finish(&acc, s);
        }
    }
    return true;
}

/* One operand of dot as doubles (exact values of its element type). */
static double *dot_operand_doubles(const VmTile *t, ElemType e) {
    double *d = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *d);
    if (!d) return NULL;
    for (int64_t i = 0; i < t->numel; i++) d[i] = convert(e, t->data[i], elem_f64()).f;
    return d;
}

static VmElem *operand_shared(VmThread *th, VmFrame *fr, const IrOp *op, uint32_t i, bool reading,
                              int64_t *numel);

/* A dot operand: a register tile, or a copy of a shared one (*owned then holds it). */
static const VmTile *dot_operand(VmThread *th, VmFrame *fr, const IrOp *op, uint32_t i, VmTile **owned) {
    *owned = NULL;
    if (op->operands[i]->type->kind != TY_SHARED) return vm_operand_tile(th, fr, op, i);
    int64_t n;
    const VmElem *src = operand_shared(th, fr, op, i, true, &n);
    if (!src || !(*owned = vm_tile_new(th, op, n))) return NULL;
    if (fr->slots[op->operands[i]->id].transposed) {
        /* the view [r, c] of memory holding [c, r] row-major */
        int64_t r = op->operands[i]->type->shape[0], c = op->operands[i]->type->shape[1];
        for (int64_t x = 0; x < r; x++)
            for (int64_t y = 0; y < c; y++) (*owned)->data[x * c + y] = src[y * r + x];
    } else {
        memcpy((*owned)->data, src, (size_t)n * sizeof(VmElem));
    }
    return *owned;
}

static bool exec_dot_tiles(VmThread *th, VmFrame *fr, const IrOp *op, const VmTile *a, const VmTile *b);

static bool exec_dot(VmThread *th, VmFrame *fr, const IrOp *op) {
    VmTile *own_a, *own_b;
    const VmTile *a = dot_operand(th, fr, op, 0, &own_a);
    const VmTile *b = a ? dot_operand(th, fr, op, 1, &own_b) : NULL;
    bool ok = a && b && exec_dot_tiles(th, fr, op, a, b);
    vm_tile_release(own_a);
    if (a) vm_tile_release(own_b);
    return ok;
}

static bool exec_dot_tiles(VmThread *th, VmFrame *fr, const IrOp *op, const VmTile *a, const VmTile *b) {
    const VmTile *c = vm_operand_tile(th, fr, op, 2);
    if (!c) return false;
    const IrType *ta = op->operands[0]->type, *tb = op->operands[1]->type,
                 *tc = op->operands[2]->type, *tr = op->results[0]->type;
    if (ta->rank != 2 || tb->rank != 2 || tc->rank != 2 || tr->rank != 2)
        return vm_error(th, op, "needs operands of rank 2");
    int64_t M = ta->shape[0], K = ta->shape[1], N = tb->shape[1];
    if (tb->shape[0] != K || tc->shape[0] != M || tc->shape[1] != N || tr->shape[0] != M ||
        tr->shape[1] != N)
        return vm_error(th, op, "shapes [%" PRId64 ",%" PRId64 "] x [%" PRId64 ",%" PRId64
                        "] do not fit the accumulator", M, K, tb->shape[0], N);
    VmTile *r = vm_result_tile(th, fr, op, 0);
    if (!r) return false;
    ElemType ea = ta->elem, eb = tb->elem, ec = tc->elem;
    if (elem_is_float(ea) || elem_is_float(eb)) {
        bool narrow = !elem_is_float(ec) || elem_float_in_f32(ec);
        double *da = dot_operand_doubles(a, ea), *db = dot_operand_doubles(b, eb);
        if (!da || !db) {
            free(da);
            free(db);
            return vm_error(th, op, "out of memory");
        }
        for (int64_t m = 0; m < M; m++) {
            for (int64_t n = 0; n < N; n++) {
                double acc = convert(ec, c->data[m * N + n], elem_f64()).f;
                if (narrow) {
                    float s = (float)acc;
                    for (int64_t k = 0; k < K; k++) s += (float)da[m * K + k] * (float)db[k * N + n];
                    acc = s;
                } else {
                    for (int64_t k = 0; k < K; k++) acc += da[m * K + k] * db[k * N + n];
                }
                r->data[m * N + n] = convert(elem_f64(), (VmElem){.f = acc}, ec);
            }
        }
        free(da);
        free(db);
        return true;
    }
    for (int64_t m = 0; m < M; m++) {
        for (int64_t n = 0; n < N; n++) {
            uint64_t s = 0;
            for (int64_t k = 0; k < K; k++)
                s += (uint64_t)a->data[m * K + k].i * (uint64_t)b->data[k * N + n].i;
            if (elem_is_float(ec)) {
                VmElem sum = convert(elem_int(64), (VmElem){.i = (int64_t)s}, ec);
                r->data[m * N + n].f = elem_float_binary(OP_ADD, ec, c->data[m * N + n].f, sum.f);
            } else {
                r->data[m * N + n].i = elem_wrap_int(ec, (int64_t)(s + (uint64_t)c->data[m * N + n].i));
            }
        }
    }
    return true;
}

/* ---- global memory ----------------------------------------------------------------------------- */
/* Checks the tensor and its index operands 1..rank, adds the indices to the odometer. */
static bool setup_indices(VmThread *th, VmFrame *fr, const IrOp *op, const VmTensor *t,
                          Odometer *o, const VmTile **idx) {
    for (int d = 0; d < t->rank; d++) {
        const IrValue *v = op->operands[1 + d];
        if (v->type->kind != TY_TILE || elem_is_float(v->type->elem))
            return vm_error(th, op, "index %d is not an integer", d);
        idx[d] = vm_operand_tile(th, fr, op, (uint32_t)(1 + d));
        if (!idx[d]) return false;
        if (odo_add(o, v->type) != d)
            return vm_error(th, op, "index %d does not broadcast to the access shape", d);
    }
    return true;
}

/* The element offset of the current odometer position, or -1 when out of bounds. */
static int64_t element_offset(const VmTensor *t, const Odometer *o, const VmTile *const *idx) {
    int64_t off = 0;
    for (int d = 0; d < t->rank; d++) {
        int64_t i = idx[d]->data[o->off[d]].i;
        if (i < 0 || i >= t->shape[d]) return -1; /* u64 indices >= 2^63 are negative here */
        off += i * t->strides[d];
    }
    return off;
}

/* ---- shared tiles as memory, and shared-memory races ------------------------------------------
 * load, store, atomic_rmw and atomic_cas index a tensor or a shared tile alike. A shared tile is
 * seen as a row-major tensor of its constant shape whose elements are VmElems (so no packing and
 * no conversion: they hold values of the element type already).
 *
 * Races: the block's threads run a shared access in no fixed order on the GPU, and only
 * barrier() orders them, while which thread touches which element is the compiler's choice
 * (layouts). So the language's rule is layout-free (SPEC 6.10): between two barriers, an element
 * that one access writes may not be read or written by another access, except that atomics may
 * update it together. The VM runs a block sequentially but checks exactly that rule: each
 * element of a shared tile keeps its last write and last plain read (epoch = barriers passed + 1,
 * the id of the dynamic access, the op), and an access that conflicts with one of the same epoch
 * by another access is an error naming both places. */
typedef struct VmMemory {
    VmTensor view;              /* a shared tile: its shape, row-major strides and element type */
    const VmTensor *t;          /* what the access indexes: the tensor, or &view */
    VmElem *shared;             /* a shared tile's first element (NULL: a tensor) */
    VmAccess *accesses;         /* its records (NULL: not tracked) */
} VmMemory;

enum { TOUCH_READ, TOUCH_WRITE, TOUCH_ATOMIC };

/* Operand 0 of a memory op as memory; `reading` as for operand_shared. A shared access gets its
 * access id here. */
static bool operand_memory(VmThread *th, VmFrame *fr, const IrOp *op, bool reading, VmMemory *m) {
    memset(m, 0, sizeof *m);
    if (op->noperands < 1) return vm_error(th, op, "missing operand 0");
    const IrType *st = op->operands[0]->type;
    if (st->kind != TY_SHARED) {
        m->t = operand_tensor(th, fr, op, 0);
        return m->t != NULL;
    }
    int64_t n;
    m->shared = operand_shared(th, fr, op, 0, reading, &n);
    if (!m->shared) return false;
    const VmSlot *slot = &fr->slots[op->operands[0]->id];
    if (slot->tile->accesses) m->accesses = slot->tile->accesses + slot->offset;
    m->view.elem = st->elem;
    m->view.rank = st->rank;
    int64_t stride = 1;
    for (int d = st->rank - 1; d >= 0; d--) {
        m->view.shape[d] = st->shape[d];
        m->view.strides[d] = stride;
        stride *= st->shape[d];
    }
    m->t = &m->view;
    th->access++;
    return true;
}

static VmElem memory_read(const VmMemory *m, int64_t off) {
    return m->shared ? m->shared[off] : vm_read_element(m->t->data, m->t->elem, off);
}

static void memory_write(const VmMemory *m, int64_t off, VmElem v) {
    if (m->shared) m->shared[off] = v;
    else vm_write_element(m->t->data, m->t->elem, off, v);
}

/* "the store at f.tile:3:5" (or without a place when the op has none). */
static void describe_access(Strbuf *sb, const IrOp *op, const char *what) {
    sb_puts(sb, what);
    if (op && op->loc.file) sb_printf(sb, " at %s:%u:%u", op->loc.file->name, op->loc.line, op->loc.col);
}

static const char *access_name(const IrOp *op) {
    return op->code == OP_LOAD ? "load" : op->code == OP_STORE ? "store" : "atomic";
}

/* Records a touch of element off of a shared tile; false (with the error) on a race. */
static bool memory_touch(VmThread *th, const IrOp *op, const VmMemory *m, int64_t off, int how) {
    if (!m->accesses) return true;
    VmAccess *a = &m->accesses[off];
    uint32_t epoch = th->epoch + 1, id = th->access;
    const IrOp *other = NULL;
    const char *did = NULL;
    if (a->write_epoch == epoch && a->write_access != id && !(how == TOUCH_ATOMIC && a->atomic))
        other = a->writer, did = a->atomic ? "updated" : "wrote";
    else if (how != TOUCH_READ && a->read_epoch == epoch && a->read_access != id)
        other = a->reader, did = "read";
    if (other) {
        Strbuf msg = {0}, coords = {0};
        int64_t c[IR_MAX_RANK], rest = off;
        for (int d = m->t->rank - 1; d >= 0; d--) {
            c[d] = rest % m->t->shape[d];
            rest /= m->t->shape[d];
        }
        sb_puts(&coords, "[");
        for (int d = 0; d < m->t->rank; d++) sb_printf(&coords, "%s%" PRId64, d ? ", " : "", c[d]);
        sb_puts(&coords, "]");
        describe_access(&msg, other, access_name(other));
        vm_error(th, op, "a race on shared memory: this %s %s element %s of a shared tile that the %s %s since the "
                 "last barrier() (the block's threads run the two in no fixed order on the GPU); put barrier() "
                 "between them", access_name(op), how == TOUCH_READ ? "reads" : how == TOUCH_WRITE ? "writes" : "updates",
                 sb_str(&coords), sb_str(&msg), did);
        sb_free(&msg);
        sb_free(&coords);
        return false;
    }
    if (how == TOUCH_READ) {
        a->read_epoch = epoch, a->read_access = id, a->reader = op;
    } else {
        a->write_epoch = epoch, a->write_access = id, a->writer = op, a->atomic = how == TOUCH_ATOMIC;
    }
    return true;
}

/* The load of (tensor, idx...) at the shape of rt into r; `extra` operands follow the indices. */
static bool load_into(VmThread *th, VmFrame *fr, const IrOp *op, uint32_t extra, const IrType *rt, VmTile *r) {
    VmMemory mem;
    if (!operand_memory(th, fr, op, true, &mem)) return false;
    const VmTensor *t = mem.t;
    if ((int)op->noperands != 1 + t->rank + (int)extra)
        return vm_error(th, op, "a tensor of rank %d needs %d indices", t->rank, t->rank);
    Odometer o;
    odo_init(&o, rt->rank, rt->shape);
    const VmTile *idx[IR_MAX_RANK];
    if (!setup_indices(th, fr, op, t, &o, idx)) return false;
    ElemType to = rt->elem;
    bool same = elem_eq(to, t->elem);
    for (int64_t p = 0; p < r->numel; p++, odo_next(&o)) {
        int64_t off = element_offset(t, &o, idx);
        VmElem v = {0};
        if (off >= 0) {
            if (!memory_touch(th, op, &mem, off, TOUCH_READ)) return false;
            v = memory_read(&mem, off);
            if (!same) v = convert(t->elem, v, to);
        } else if (elem_is_float(to)) {
            v.f = 0.0;
        }
        r->data[p] = v;
    }
    return true;
}

static bool exec_load(VmThread *th, VmFrame *fr, const IrOp *op) {
    VmTile *r = vm_result_tile(th, fr, op, 0);
    return r && load_into(th, fr, op, 0, op->results[0]->type, r);
}

/* Broadcast shape of several types (numpy rules); false if they do not broadcast. */
static bool broadcast_shape(const IrType *const *types, int n, int *rank, int64_t *shape) {
    *rank = 0;
    for (int j = 0; j < n; j++)
        if (types[j]->rank > *rank) *rank = types[j]->rank;
    for (int d = 0; d < *rank; d++) shape[d] = 1;
    for (int j = 0; j < n; j++) {
        for (int d = 0; d < types[j]->rank; d++) {
            int od = *rank - types[j]->rank + d;
            int64_t s = types[j]->shape[d];
            if (s == shape[od] || s == 1) continue;
            if (shape[od] != 1) return false;
            shape[od] = s;
        }
    }
    return true;
}

static VmElem atomic_combine(IrAtomic kind, ElemType e, VmElem old, VmElem v) {
    VmElem r;
    if (elem_is_float(e)) {
        r.f = kind == ATOMIC_ADD ? elem_float_binary(OP_ADD, e, old.f, v.f) : elem_nan_max(old.f, v.f);
    } else {
        r.i = elem_int_binary(kind == ATOMIC_ADD ? OP_ADD : OP_MAX, e, old.i, v.i);
    }
    return r;
}

/* store and atomic: (tensor, idx..., value) */
static bool exec_store(VmThread *th, VmFrame *fr, const IrOp *op) {
    VmMemory mem;
    if (!operand_memory(th, fr, op, false, &mem)) return false;
    const VmTensor *t = mem.t;
    if ((int)op->noperands != 2 + t->rank)
        return vm_error(th, op, "a tensor of rank %d needs %d indices and a value", t->rank, t->rank);
    bool atomic = op->code == OP_ATOMIC;
    IrAtomic kind = (IrAtomic)op->ints[0];
    if (atomic && op->ints[0] != ATOMIC_ADD && op->ints[0] != ATOMIC_MAX)
        return vm_error(th, op, "unknown atomic operation %" PRId64, op->ints[0]);
    const IrType *types[IR_MAX_RANK + 1];
    for (uint32_t i = 1; i < op->noperands; i++) types[i - 1] = op->operands[i]->type;
    int rank;
    int64_t shape[IR_MAX_RANK];
    int ntypes = (int)op->noperands - 1;
    for (int j = 0; j < ntypes; j++)
        if (types[j]->rank > IR_MAX_RANK) return vm_error(th, op, "an operand's rank is too large");
    if (!broadcast_shape(types, ntypes, &rank, shape))
        return vm_error(th, op, "the indices and the value do not broadcast to one shape");
    IrType access = {.kind = TY_TILE, .rank = rank};
    for (int d = 0; d < rank; d++) access.shape[d] = shape[d];
    int64_t numel;
    if (!vm_type_numel(th, op, &access, &numel)) return false;
    Odometer o;
    odo_init(&o, rank, shape);
    const VmTile *idx[IR_MAX_RANK];
    if (!setup_indices(th, fr, op, t, &o, idx)) return false;
    const IrValue *vv = op->operands[op->noperands - 1];
    const VmTile *val = vm_operand_tile(th, fr, op, op->noperands - 1);
    if (!val) return false;
    int vj = odo_add(&o, vv->type);
    if (vj < 0) return vm_error(th, op, "the value does not broadcast to the access shape");
    ElemType from = vv->type->elem;
    bool same = elem_eq(from, t->elem);
    /* Packed sub-byte stores rewrite whole bytes that neighbouring elements, maybe stored by
     * another block, share; atomics must be atomic. Both hold the launch's memory lock. */
    bool lock = atomic || elem_storage_bits(t->elem) % 8 != 0;
    pthread_mutex_t *mutex = (pthread_mutex_t *)&th->launch->memory_lock;
    if (lock) pthread_mutex_lock(mutex);
    bool ok = true;
    for (int64_t p = 0; p < numel; p++, odo_next(&o)) {
        int64_t off = element_offset(t, &o, idx);
        if (off < 0) continue;
        if (!(ok = memory_touch(th, op, &mem, off, atomic ? TOUCH_ATOMIC : TOUCH_WRITE))) break;
        VmElem v = val->data[o.off[vj]];
        if (!same) v = convert(from, v, t->elem);
        if (atomic) v = atomic_combine(kind, t->elem, memory_read(&mem, off), v);
        memory_write(&mem, off, v);
    }
    if (lock) pthread_mutex_unlock(mutex);
    return ok;
}

/* ---- shared memory --------------------------------------------------------------------------- */
/* The elements of shared operand i (a buffer or a view of one stage): its first element in
 * *data; *numel of them. With `reading`, an asynchronous copy into any of them that has not been
 * waited for is an error: on the GPU the read would race with the copy. */
static VmElem *operand_shared(VmThread *th, VmFrame *fr, const IrOp *op, uint32_t i, bool reading,
                              int64_t *numel) {
    if (op->operands[i]->type->kind != TY_SHARED) {
        vm_error(th, op, "operand %u is not shared", (unsigned)i);
        return NULL;
    }
    VmTile *t = (VmTile *)vm_operand_tile(th, fr, op, i);
    if (!t || !vm_type_numel(th, op, op->operands[i]->type, numel)) return NULL;
    int64_t off = fr->slots[op->operands[i]->id].offset;
    if (fr->slots[op->operands[i]->id].transposed && op->code != OP_DOT) {
        vm_error(th, op, "operand %u is a transposed shared view, which only a dot reads", (unsigned)i);
        return NULL;
    }
    if (reading) {
        for (size_t p = 0; p < th->pending.len; p++) {
            const VmPending *c = &th->pending.data[p];
            if (!c->store && c->buffer == t && c->offset < off + *numel && off < c->offset + c->numel) {
                vm_error(th, op, "reads shared memory that an asynchronous copy is still writing "
                         "(%zu copies in flight; a missing or too shallow async_wait)", th->pending.len);
                return NULL;
            }
        }
    }
    if (!reading && !vm_store_tma_allows_write(th, op, t, off, *numel)) return NULL;
    return t->data + off;
}

/* shared_view (buffer[S, d...], stage) -> the stage as shared[d...], aliasing the buffer. */
static bool exec_shared_view(VmThread *th, VmFrame *fr, const IrOp *op) {
    const IrType *bt = op->operands[0]->type, *rt = op->results[0]->type;
    if (bt->kind != TY_SHARED || rt->kind != TY_SHARED || bt->rank < 1)
        return vm_error(th, op, "needs a shared buffer with a stage dimension");
    VmTile *buf = (VmTile *)vm_operand_tile(th, fr, op, 0);
    const VmTile *stage = vm_operand_tile(th, fr, op, 1);
    if (!buf || !stage) return false;
    int64_t n;
    if (!vm_type_numel(th, op, rt, &n)) return false;
    int64_t s = stage->data[0].i, base = fr->slots[op->operands[0]->id].offset;
    if (s < 0 || s >= bt->shape[0])
        return vm_error(th, op, "stage %" PRId64 " outside [0, %" PRId64 ")", s, bt->shape[0]);
    VmSlot *r = vm_value_slot(th, fr, op, op->results[0]);
    if (!r) return false;
    vm_slot_set(r, (VmSlot){.tile = buf, .offset = base + s * n});
    return true;
}

/* copy_async (tensor, idx..., dst): the load, done now, written into dst; dst stays pending
 * until an async_wait completes this copy. */
static bool exec_copy_async(VmThread *th, VmFrame *fr, const IrOp *op) {
    int64_t n;
    VmElem *dst = operand_shared(th, fr, op, op->noperands - 1, false, &n);
    if (!dst) return false;
    const IrType *dt = op->operands[op->noperands - 1]->type;
    VmTile *tmp = vm_tile_new(th, op, n);
    if (!tmp) return false;
    bool ok = load_into(th, fr, op, 1, dt, tmp);
    if (ok) {
        memcpy(dst, tmp->data, (size_t)n * sizeof(VmElem));
        VmSlot *s = &fr->slots[op->operands[op->noperands - 1]->id];
        vec_push(&th->pending, ((VmPending){.buffer = s->tile, .offset = s->offset, .numel = n}));
    }
    vm_tile_release(tmp);
    return ok;
}

/* async_wait N: every copy_async group but the N most recent is complete (TMA copies complete
 * through their mbarriers only). */
static bool exec_async_wait(VmThread *th, VmFrame *fr, const IrOp *op) {
    (void)fr;
    int64_t keep = op->nints ? op->ints[0] : 0;
    if (keep < 0) return vm_error(th, op, "negative count of copies in flight");
    size_t groups = 0;
    for (size_t p = 0; p < th->pending.len; p++) groups += !th->pending.data[p].mbarriers && !th->pending.data[p].store;
    size_t drop = (size_t)keep < groups ? groups - (size_t)keep : 0, kept = 0;
    for (size_t p = 0; p < th->pending.len; p++) {
        const VmPending *c = &th->pending.data[p];
        if (!c->mbarriers && !c->store && drop > 0) drop--;
        else th->pending.data[kept++] = *c;
    }
    th->pending.len = kept;
    return true;
}

/* ---- TMA and mbarriers ---------------------------------------------------------------------------
 * An mbarrier holds, on the VM, the number of phases completed so far, the arrivals of the phase
 * in progress and the arrivals a phase expects (mbarrier_init's count), packed in its element of
 * the ring. Copies land at once on the VM, so a phase completes with its last arrival; the phase a
 * copy_tma lands in is the count at the copy. Outside warp roles a block runs sequentially and a
 * wait that would block could never return: a wait for parity P is right only when the last
 * completed phase has parity P. Inside warp roles a wait has the GPU's meaning (it returns once
 * the phase in progress has the other parity, so a wait for parity 1 on a fresh mbarrier returns
 * at once, as a producer's first wait on an "empty" mbarrier does) and blocks the role otherwise
 * (runtime/vm_roles.c). */

enum { MBARRIER_INVALID = INT32_MIN }; /* a ring element after mbarrier_inval (negative: no valid packing is) */

/* bits 0-31: phases completed (mod 2^32); 32-47: arrivals in the phase in progress; 48-62: expected */
static int64_t mbarrier_completed(VmElem b) { return b.i & INT64_C(0xffffffff); }
static int64_t mbarrier_arrivals(VmElem b) { return (b.i >> 32) & 0xffff; }
static int64_t mbarrier_expected(VmElem b) { return (b.i >> 48) & 0x7fff; }
static VmElem mbarrier_pack(int64_t completed, int64_t arrivals, int64_t expected) {
    return (VmElem){.i = (completed & INT64_C(0xffffffff)) | arrivals << 32 | expected << 48};
}

/* The ring of mbarriers at operand i and the element of the stage at operand i + 1. */
static VmElem *mbarrier_of(VmThread *th, VmFrame *fr, const IrOp *op, uint32_t i, const VmTile **ring,
                           int64_t *stage) {
    int64_t n;
    VmElem *bars = operand_shared(th, fr, op, i, false, &n);
    if (!bars) return NULL;
    const VmTile *s = vm_operand_tile(th, fr, op, i + 1);
    if (!s) return NULL;
    *stage = s->data[0].i;
    *ring = fr->slots[op->operands[i]->id].tile;
    if (*stage < 0 || *stage >= n) {
        vm_error(th, op, "mbarrier %" PRId64 " outside the ring [0, %" PRId64 ")", *stage, n);
        return NULL;
    }
    if (bars[*stage].i == MBARRIER_INVALID) {
        vm_error(th, op, "mbarrier %" PRId64 " is used after its mbarrier_inval (and no mbarrier_init since)", *stage);
        return NULL;
    }
    return bars + *stage;
}

static bool bars_invalid(const VmElem *bar) { return bar->i == MBARRIER_INVALID; }

/* mbarrier_inval: every mbarrier of the ring ends; using one again before mbarrier_init is an error. */
static bool exec_mbarrier_inval(VmThread *th, VmFrame *fr, const IrOp *op) {
    int64_t n;
    VmElem *bars = operand_shared(th, fr, op, 0, false, &n);
    if (!bars) return false;
    for (int64_t i = 0; i < n; i++) bars[i].i = MBARRIER_INVALID;
    return true;
}

static bool exec_mbarrier_init(VmThread *th, VmFrame *fr, const IrOp *op) {
    int64_t n;
    VmElem *bars = operand_shared(th, fr, op, 0, false, &n);
    if (!bars) return false;
    int64_t count = ir_mbarrier_count(op);
    if (count < 1 || count > 1024) return vm_error(th, op, "an arrival count of %" PRId64 " is not in [1, 1024]", count);
    for (int64_t i = 0; i < n; i++) bars[i] = mbarrier_pack(0, 0, count);
    return true;
}

/* copy_tma (tensor, origin..., dst, mbarriers, stage): the box, copied now; dst stays in flight until
 * a wait on mbarriers[stage] for the phase in progress. The box is dst's shape on the tensor's last
 * dimensions and 1 on the leading ones dst lacks. */
static bool exec_copy_tma(VmThread *th, VmFrame *fr, const IrOp *op) {
    const VmTensor *t = operand_tensor(th, fr, op, 0);
    if (!t) return false;
    uint32_t di = 1 + (uint32_t)t->rank;
    if (op->noperands != di + 3 + (ir_copy_tma_multicast(op) ? 1 : 0))
        return vm_error(th, op, "a tensor of rank %d needs %d origins", t->rank, t->rank);
    int64_t n, origin[IR_MAX_RANK];
    VmElem *dst = operand_shared(th, fr, op, di, false, &n);
    if (!dst) return false;
    for (int d = 0; d < t->rank; d++) {
        const VmTile *o = vm_operand_tile(th, fr, op, 1 + (uint32_t)d);
        if (!o) return false;
        origin[d] = o->data[0].i;
    }
    const VmTile *ring;
    int64_t stage;
    VmElem *bar = mbarrier_of(th, fr, op, di + 1, &ring, &stage);
    if (!bar) return false;
    /* a copy over one that landed in an earlier phase nobody has waited for overwrites data no one
       has seen: a producer ahead of its consumer (with warp roles: a missing wait on "empty") */
    const VmSlot *ds = &fr->slots[op->operands[di]->id];
    for (size_t p = 0; p < th->pending.len; p++) {
        const VmPending *c = &th->pending.data[p];
        if (c->mbarriers && c->buffer == ds->tile && c->offset < ds->offset + n && ds->offset < c->offset + c->numel &&
            c->phase < mbarrier_completed(*bar))
            return vm_error(th, op, "copies over shared memory that a copy of phase %" PRId64 " of mbarrier %" PRId64
                            " filled and no wait has seen yet (a producer ahead of its consumer)", c->phase, c->stage);
    }
    const IrType *dt = op->operands[di]->type;
    int lead = t->rank - dt->rank;
    if (lead < 0) return vm_error(th, op, "a box of rank %d from a tensor of rank %d", dt->rank, t->rank);
    for (int64_t p = 0; p < n; p++) {
        int64_t rest = p, off = 0;
        bool inside = true;
        for (int d = t->rank - 1; d >= 0; d--) {
            int64_t extent = d < lead ? 1 : dt->shape[d - lead];
            int64_t i = origin[d] + rest % extent;
            rest /= extent;
            inside = inside && i >= 0 && i < t->shape[d];
            off += i * t->strides[d];
        }
        VmElem v = {0};
        if (inside) v = vm_read_element(t->data, t->elem, off);
        else if (elem_is_float(t->elem)) v.f = 0.0;
        dst[p] = v;
    }
    VmSlot *s = &fr->slots[op->operands[di]->id];
    if (ir_copy_tma_multicast(op) && !vm_cluster_copy(th, fr, op, t, origin, s->offset, n, ring, stage)) return false;
    vec_push(&th->pending, ((VmPending){s->tile, s->offset, n, ring, stage, mbarrier_completed(*bar), false}));
    return true;
}

static bool exec_mbarrier_arrive(VmThread *th, VmFrame *fr, const IrOp *op) {
    const VmTile *ring;
    int64_t stage;
    VmElem *bar = mbarrier_of(th, fr, op, 0, &ring, &stage);
    if (!bar) return false;
    /* `cluster N`: the arrivals of every block of the cluster on this block's mbarrier, since the
       others run the same code (vm_cluster.c checks the launch and that they do) */
    int64_t n = ir_mbarrier_arrive_cluster(op);
    if (n && !vm_cluster_arrive(th, op, ring, stage)) return false;
    /* `threads N`: the N threads' own arrivals, which the VM, running them together, makes at once */
    int64_t one = n ? n : ir_mbarrier_arrive_threads(op) ? ir_mbarrier_arrive_threads(op) : 1;
    int64_t completed = mbarrier_completed(*bar), arrivals = mbarrier_arrivals(*bar) + one;
    int64_t expected = mbarrier_expected(*bar);
    *bar = arrivals >= expected ? mbarrier_pack(completed + 1, 0, expected) : mbarrier_pack(completed, arrivals, expected);
    return true;
}

/* mbarrier_wait (mbarriers, stage, parity): the copies of the completed phases of mbarriers[stage]
 * are complete, when the last completed phase has that parity. */
static bool exec_mbarrier_wait(VmThread *th, VmFrame *fr, const IrOp *op) {
    const VmTile *ring;
    int64_t stage;
    VmElem *bar = mbarrier_of(th, fr, op, 0, &ring, &stage);
    const VmTile *parity = bar ? vm_operand_tile(th, fr, op, 2) : NULL;
    if (!parity) return false;
    int64_t want = parity->data[0].i;
    if (want != 0 && want != 1) return vm_error(th, op, "parity %" PRId64 " is not 0 or 1", want);
    /* in a role: block while the phase in progress has the parity waited for */
    while (th->roles && (mbarrier_completed(*bar) & 1) == want) {
        if (!vm_role_block(th, op, stage, want)) return false;
        if (bars_invalid(bar)) return vm_error(th, op, "mbarrier %" PRId64 " ended (mbarrier_inval) while waited on", stage);
    }
    int64_t completed = mbarrier_completed(*bar);
    if (th->roles) vm_role_passed(th);
    else if (completed == 0 || ((completed - 1) & 1) != want)
        return vm_error(th, op,
                        "waits for a phase of parity %" PRId64 " of mbarrier %" PRId64 ", whose last completed phase %s "
                        "(on the GPU this wait would return before its copies land, or never)",
                        want, stage, completed == 0 ? "does not exist" : want ? "has parity 0" : "has parity 1");
    size_t kept = 0;
    for (size_t p = 0; p < th->pending.len; p++) {
        const VmPending *c = &th->pending.data[p];
        if (!(c->mbarriers == ring && c->stage == stage && c->phase < completed)) th->pending.data[kept++] = *c;
    }
    th->pending.len = kept;
    vm_cluster_waited(th, ring, stage);
    return true;
}

static bool exec_shared_alloc(VmThread *th, VmFrame *fr, const IrOp *op) {
    if (op->nresults != 1 || op->results[0]->type->kind != TY_SHARED)
        return vm_error(th, op, "the result is not a shared tile");
    VmTile *r = vm_result_tile(th, fr, op, 0);
    if (!r) return false;
    /* fresh access records (a reused array of the previous iteration starts over) */
    if (r->accesses) memset(r->accesses, 0, (size_t)r->numel * sizeof(VmAccess));
    else if (r->numel && !(r->accesses = calloc((size_t)r->numel, sizeof(VmAccess))))
        return vm_error(th, op, "out of memory for a shared tile of %" PRId64 " elements", r->numel);
    if (op->nints >= 2 && op->ints[1]) {
        /* uninitialized on the GPU: NaN (or a pattern) here, so a read before a write shows */
        bool f = elem_is_float(op->results[0]->type->elem);
        for (int64_t i = 0; i < r->numel; i++) {
            if (f) r->data[i].f = NAN;
            else r->data[i].i = elem_wrap_int(op->results[0]->type->elem, INT64_C(0x5a5a5a5a5a5a5a5a));
        }
        return true;
    }
    memset(r->data, 0, (size_t)r->numel * sizeof(VmElem)); /* 0 and +0.0 alike */
    return true;
}

static bool exec_shared_copy(VmThread *th, VmFrame *fr, const IrOp *op) {
    bool load = op->code == OP_SHARED_LOAD;
    int64_t n;
    VmElem *shared = operand_shared(th, fr, op, 0, load, &n);
    if (!shared) return false;
    if (load) {
        VmTile *dst = vm_result_tile(th, fr, op, 0);
        if (!dst || !check_numel(th, op, dst, n)) return false;
        memmove(dst->data, shared, (size_t)n * sizeof(VmElem));
    } else {
        const VmTile *src = vm_operand_tile(th, fr, op, 1);
        if (!src || src->numel != n) return src ? vm_error(th, op, "the tile does not match the shared tile") : false;
        memmove(shared, src->data, (size_t)n * sizeof(VmElem));
    }
    return true;
}

/* ---- atomics with results (atomic_rmw, atomic_cas) and fence ---------------------------------- */
/* The new value of an atomic_rmw of kind on old with v, both of element type e. */
static VmElem atomic_rmw_new(IrAtomic kind, ElemType e, VmElem old, VmElem v) {
    if (kind == ATOMIC_XCHG) return v;
    if (kind == ATOMIC_ADD || kind == ATOMIC_MAX) return atomic_combine(kind, e, old, v);
    VmElem r;
    if (elem_is_float(e)) {
        r.f = elem_nan_min(old.f, v.f); /* the frontend allows min, max, add and xchg on floats */
        return r;
    }
    r.i = elem_int_binary(kind == ATOMIC_MIN ? OP_MIN : kind == ATOMIC_AND ? OP_AND : OP_OR, e, old.i, v.i);
    return r;
}

/* (tensor, idx..., value) -> old, or (tensor, idx..., expected, desired) -> old. The values have
 * the result's shape (the frontend broadcast them); elements go in row-major order under the
 * launch's memory lock, so each is atomic with respect to every other block. */
static bool exec_atomic_result(VmThread *th, VmFrame *fr, const IrOp *op) {
    VmMemory mem;
    if (!operand_memory(th, fr, op, true, &mem)) return false;
    const VmTensor *t = mem.t;
    uint32_t nvalues = op->code == OP_ATOMIC_CAS ? 2 : 1;
    if (op->noperands != 1 + (uint32_t)t->rank + nvalues)
        return vm_error(th, op, "a tensor of rank %d needs %d indices and %u values", t->rank, t->rank, nvalues);
    if (op->code == OP_ATOMIC_RMW && (op->nints < 1 || op->ints[0] < ATOMIC_ADD || op->ints[0] > ATOMIC_XCHG))
        return vm_error(th, op, "unknown atomic operation");
    const IrType *rt = op->results[0]->type;
    Odometer o;
    odo_init(&o, rt->rank, rt->shape);
    const VmTile *idx[IR_MAX_RANK];
    if (!setup_indices(th, fr, op, t, &o, idx)) return false;
    const VmTile *val[2];
    for (uint32_t k = 0; k < nvalues; k++) {
        uint32_t i = op->noperands - nvalues + k;
        const IrType *vt = op->operands[i]->type;
        if (vt->rank != rt->rank || memcmp(vt->shape, rt->shape, sizeof(int64_t) * (size_t)rt->rank) != 0 ||
            !elem_eq(vt->elem, t->elem))
            return vm_error(th, op, "the values must have the result's type");
        val[k] = vm_operand_tile(th, fr, op, i);
        if (!val[k]) return false;
    }
    VmTile *r = vm_result_tile(th, fr, op, 0);
    if (!r) return false;
    IrAtomic kind = op->code == OP_ATOMIC_RMW ? (IrAtomic)op->ints[0] : ATOMIC_XCHG;
    pthread_mutex_t *mutex = (pthread_mutex_t *)&th->launch->memory_lock;
    pthread_mutex_lock(mutex);
    bool ok = true;
    for (int64_t p = 0; p < r->numel; p++, odo_next(&o)) {
        int64_t off = element_offset(t, &o, idx);
        VmElem old = {0};
        if (off < 0) {
            if (elem_is_float(t->elem)) old.f = 0.0;
            r->data[p] = old;
            continue;
        }
        if (!(ok = memory_touch(th, op, &mem, off, TOUCH_ATOMIC))) break;
        old = memory_read(&mem, off);
        if (op->code == OP_ATOMIC_CAS) {
            if (old.i == val[0]->data[p].i) memory_write(&mem, off, val[1]->data[p]);
        } else {
            memory_write(&mem, off, atomic_rmw_new(kind, t->elem, old, val[0]->data[p]));
        }
        r->data[p] = old;
    }
    pthread_mutex_unlock(mutex);
    return ok;
}

/* ---- dispatch ----------------------------------------------------------------------------- */
static bool exec_barrier(VmThread *th, VmFrame *fr, const IrOp *op) {
    (void)fr, (void)op; /* a block runs as one sequential thread: nothing to wait for, but the
                         * accesses before it are ordered before those after it (SPEC 6.10) */
    th->epoch++;
    return true;
}

static bool exec_fence(VmThread *th, VmFrame *fr, const IrOp *op) {
    (void)th, (void)fr, (void)op; /* the memory lock of every atomic orders the VM's accesses already */
    atomic_thread_fence(memory_order_seq_cst);
    return true;
}

/* The executor of every data op; control flow is vm_exec.c's. An op of ops.def missing here
 * (and there) is an internal error at run time, and tests/test_ops_table.c names it. */
const VmExecFn vm_data_executors[OP_COUNT] = {
    [OP_CONST] = exec_const,
    [OP_BLOCK_ID] = exec_axis_scalar, [OP_NUM_BLOCKS] = exec_axis_scalar,
    [OP_DIM] = exec_dim,
    [OP_ARANGE] = exec_arange,
    [OP_CHECK] = exec_check,
    [OP_ADD] = exec_binary, [OP_SUB] = exec_binary, [OP_MUL] = exec_binary, [OP_DIV] = exec_binary,
    [OP_REM] = exec_binary, [OP_MIN] = exec_binary, [OP_MAX] = exec_binary, [OP_AND] = exec_binary,
    [OP_OR] = exec_binary, [OP_XOR] = exec_binary, [OP_SHL] = exec_binary, [OP_SHR] = exec_binary,
    [OP_CMP] = exec_binary,
    [OP_NEG] = exec_unary, [OP_NOT] = exec_unary, [OP_ABS] = exec_unary, [OP_EXP] = exec_unary,
    [OP_EXP2] = exec_unary, [OP_LOG] = exec_unary, [OP_LOG2] = exec_unary, [OP_SQRT] = exec_unary,
    [OP_RSQRT] = exec_unary, [OP_TANH] = exec_unary, [OP_SIN] = exec_unary, [OP_COS] = exec_unary,
    [OP_ERF] = exec_unary, [OP_FLOOR] = exec_unary, [OP_CEIL] = exec_unary,
    [OP_SELECT] = exec_select,
    [OP_CAST] = exec_cast,
    [OP_BITCAST] = exec_bitcast,
    [OP_SPLAT] = exec_splat,
    [OP_BROADCAST] = exec_broadcast,
    [OP_EXPAND_DIMS] = exec_same_elements, [OP_RESHAPE] = exec_same_elements,
    [OP_CONVERT_LAYOUT] = exec_same_elements,
    [OP_DOT_WAIT] = exec_same_elements, /* the VM's dots complete at once */
    [OP_TRANSPOSE] = exec_transpose,
    [OP_REDUCE] = exec_reduce_scan, [OP_SCAN] = exec_reduce_scan,
    [OP_DOT] = exec_dot,
    [OP_LOAD] = exec_load,
    [OP_STORE] = exec_store, [OP_ATOMIC] = exec_store,
    [OP_SHARED_ALLOC] = exec_shared_alloc,
    [OP_SHARED_LOAD] = exec_shared_copy, [OP_SHARED_STORE] = exec_shared_copy,
    [OP_BARRIER] = exec_barrier,
    [OP_SHARED_VIEW] = exec_shared_view,
    [OP_COPY_ASYNC] = exec_copy_async,
    [OP_ASYNC_WAIT] = exec_async_wait,
    [OP_MBARRIER_INIT] = exec_mbarrier_init, [OP_COPY_TMA] = exec_copy_tma,
    [OP_MBARRIER_ARRIVE] = exec_mbarrier_arrive, [OP_MBARRIER_WAIT] = exec_mbarrier_wait,
    [OP_MBARRIER_INVAL] = exec_mbarrier_inval,
    [OP_ATOMIC_RMW] = exec_atomic_result, [OP_ATOMIC_CAS] = exec_atomic_result,
    [OP_FENCE] = exec_fence,
    [OP_NUM_SMS] = exec_num_sms,
    [OP_CLUSTER_SIZE] = vm_exec_cluster_size, [OP_CLUSTER_BARRIER] = vm_exec_cluster_barrier,
    [OP_STORE_TMA] = vm_exec_store_tma, [OP_STORE_WAIT] = vm_exec_store_wait,
};

bool vm_exec_data_op(VmThread *th, VmFrame *fr, const IrOp *op) {
    VmExecFn exec = op->code < OP_COUNT ? vm_data_executors[op->code] : NULL;
    if (!exec)
        return vm_internal_error(th, op, "no executor for op '%s'",
                                 op->code < OP_COUNT ? ir_op_info[op->code].name : "?op");
    const OpInfo *info = &ir_op_info[op->code];
    if ((info->noperands >= 0 && op->noperands != (uint32_t)info->noperands) ||
        (info->nresults >= 0 && op->nresults != (uint32_t)info->nresults))
        return vm_error(th, op, "wrong number of operands or results");
    if (op->code == OP_LOAD || op->code == OP_STORE || op->code == OP_ATOMIC) {
        if (op->noperands < 1) return vm_error(th, op, "missing tensor operand");
        if ((op->code == OP_LOAD) != (op->nresults == 1))
            return vm_error(th, op, "wrong number of results");
    }
    for (uint32_t i = 0; i < op->nresults; i++)
        if (op->results[i]->type->kind == TY_TENSOR)
            return vm_error(th, op, "an op cannot produce a tensor");
    return exec(th, fr, op);
}
