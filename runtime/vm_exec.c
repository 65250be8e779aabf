/*
 * vm_exec.c: the CPU virtual machine's control: frames, regions, structured control flow,
 * calls, the grid, and the scheduler that spreads blocks over worker threads.
 *
 * A frame holds one slot per value id of its function (ids are unique in a function, nested
 * regions included), so running a region is a walk over its ops that fills slots. A value
 * defined in a loop body overwrites its slot each iteration and releases the previous array,
 * which keeps memory bounded by the program's size, not its trip counts. Loop-carried values,
 * if/while results and call results move between slots by reference count, never by copy.
 *
 * Semantics of control flow (the reference): for (lo, hi, step, init...) runs its body with
 * (iv, carried...) while step > 0 and iv < hi, iv advancing by step in 64 bits and stopping
 * when it would overflow; the pipeline depth does not change results. if runs region 0 or 1.
 * while runs region 0 up to its condition(c, vals...), then, while c holds, region 1 with
 * vals, whose yield feeds region 0 again. A call runs the callee's body in a new frame; calls
 * nest at most VM_MAX_CALLS deep and regions and calls together at most VM_MAX_DEPTH deep, so
 * that a deep program is a run-time error, not a stack overflow.
 *
 * The grid is evaluated once on the calling thread, with num_sms() the VM's stand-in count
 * (vm_num_sms: TILE_VM_NUM_SMS, default 4), or the GPU's count for a GPU launch. Blocks are
 * numbered x fastest and handed out from an atomic counter to min(CPUs, blocks) workers; each
 * worker keeps one frame for the kernel and clears it after every block. The first error stops the launch and is reported
 * with the block that raised it. Atomics and packed sub-byte stores hold one launch-wide mutex.
 */
#include "vm.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { VM_MAX_DEPTH = 1000, VM_MAX_CALLS = 256, VM_MAX_THREADS = 64 };

typedef struct SlotList {
    VmSlot *v;
    uint32_t n;
} SlotList;

static void list_release(SlotList *l) {
    for (uint32_t i = 0; i < l->n; i++) vm_slot_clear(&l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Takes references to operands first..first+count of op. */
static bool collect(VmThread *th, VmFrame *fr, const IrOp *op, uint32_t first, uint32_t count,
                    SlotList *out) {
    out->v = count ? xcalloc(count, sizeof(VmSlot)) : NULL;
    out->n = count;
    for (uint32_t i = 0; i < count; i++) {
        VmSlot *s = vm_value_slot(th, fr, op, op->operands[first + i]);
        if (!s) return false;
        if (!s->tile && !s->tensor)
            return vm_error(th, op, "operand %u is used before it is defined", (unsigned)(first + i));
        vm_slot_set(&out->v[i], *s);
    }
    return true;
}

static bool terminator_values(VmThread *th, VmFrame *fr, const IrOp *owner, const IrOp *term,
                              OpCode code, uint32_t count, SlotList *out) {
    out->v = NULL;
    out->n = 0;
    if (!term || term->code != code || term->noperands != count)
        return vm_error(th, owner, "a region must end in %s with %u value%s", ir_op_info[code].name,
                        (unsigned)count, count == 1 ? "" : "s");
    return collect(th, fr, term, 0, count, out);
}

static bool set_results(VmThread *th, VmFrame *fr, const IrOp *op, const SlotList *vals) {
    if (op->nresults != vals->n)
        return vm_error(th, op, "has %u results but its region gives %u values",
                        (unsigned)op->nresults, (unsigned)vals->n);
    for (uint32_t i = 0; i < vals->n; i++) {
        VmSlot *s = vm_value_slot(th, fr, op, op->results[i]);
        if (!s) return false;
        vm_slot_set(s, vals->v[i]);
    }
    return true;
}

static void frame_init(VmFrame *f, const IrFunction *fn) {
    f->function = fn;
    f->nslots = fn->next_value_id;
    f->slots = xcalloc(f->nslots ? f->nslots : 1, sizeof(VmSlot));
}

static void frame_clear(VmFrame *f) {
    for (uint32_t i = 0; i < f->nslots; i++) vm_slot_clear(&f->slots[i]);
}

static void frame_free(VmFrame *f) {
    frame_clear(f);
    free(f->slots);
    f->slots = NULL;
}

static bool exec_op(VmThread *th, VmFrame *fr, const IrOp *op);

/* Binds the region's arguments and runs its ops up to the terminator (returned in *term). */
static bool exec_region(VmThread *th, VmFrame *fr, const IrOp *owner, const IrRegion *r,
                        const VmSlot *args, uint32_t nargs, const IrOp **term) {
    *term = NULL;
    if (r->nargs != nargs)
        return vm_error(th, owner, "a region takes %u values but %u are given", (unsigned)r->nargs,
                        (unsigned)nargs);
    if (th->depth >= VM_MAX_DEPTH)
        return vm_error(th, owner, "regions and calls are nested deeper than %d", VM_MAX_DEPTH);
    th->depth++;
    bool ok = true;
    for (uint32_t i = 0; i < nargs && ok; i++) {
        VmSlot *s = vm_value_slot(th, fr, owner, r->args[i]);
        if (s) vm_slot_set(s, args[i]);
        else ok = false;
    }
    for (const IrOp *op = r->first; ok && op; op = op->next) {
        if (op->code < OP_COUNT && (ir_op_info[op->code].flags & F_TERM)) {
            if (op->next) ok = vm_error(th, op, "a terminator must end its region");
            *term = op;
            break;
        }
        ok = exec_op(th, fr, op);
    }
    th->depth--;
    return ok;
}

bool vm_exec_region(VmThread *th, VmFrame *fr, const IrOp *owner, const IrRegion *r, const VmSlot *args,
                    uint32_t nargs, const IrOp **term) {
    return exec_region(th, fr, owner, r, args, nargs, term);
}

/* An integer scalar operand. */
static bool scalar_int(VmThread *th, VmFrame *fr, const IrOp *op, uint32_t i, int64_t *out) {
    const VmTile *t = vm_operand_tile(th, fr, op, i);
    if (!t) return false;
    if (t->numel != 1 || elem_is_float(op->operands[i]->type->elem))
        return vm_error(th, op, "operand %u must be an integer scalar", (unsigned)i);
    *out = t->data[0].i;
    return true;
}

/* tile_context_cancel was called after the launch started. */
static bool cancelled(const VmLaunch *L) {
    return L->cancel && atomic_load_explicit(L->cancel->generation, memory_order_relaxed) != L->cancel->started;
}

static bool exec_for(VmThread *th, VmFrame *fr, const IrOp *op) {
    if (op->noperands < 3 || op->nregions != 1)
        return vm_error(th, op, "needs (lo, hi, step, init...) and one region");
    const IrRegion *body = op->regions[0];
    uint32_t ncarried = op->noperands - 3;
    if (body->nargs != ncarried + 1 || op->nresults != ncarried)
        return vm_error(th, op, "the region's arguments do not match the carried values");
    int64_t lo, hi, step;
    if (!scalar_int(th, fr, op, 0, &lo) || !scalar_int(th, fr, op, 1, &hi) ||
        !scalar_int(th, fr, op, 2, &step))
        return false;
    ElemType iv_type = body->args[0]->type->elem;
    if (!elem_is_integer(iv_type)) return vm_error(th, op, "the induction variable is not an integer");
    bool u64 = iv_type.kind == EK_UINT && iv_type.bits == 64;
    SlotList carried;
    bool ok = collect(th, fr, op, 3, ncarried, &carried);
    VmSlot *args = xcalloc(ncarried + 1, sizeof(VmSlot));
    int64_t iv = lo;
    while (ok) {
        bool more = u64 ? step != 0 && (uint64_t)iv < (uint64_t)hi : step > 0 && iv < hi;
        if (!more) break;
        if (cancelled(th->launch)) { /* a long loop in one block stops too */
            ok = vm_error(th, op, "cancelled");
            break;
        }
        VmTile *iv_tile = vm_scalar_tile(th, op, (VmElem){.i = elem_wrap_int(iv_type, iv)});
        if (!iv_tile) {
            ok = false;
            break;
        }
        args[0] = (VmSlot){.tile = iv_tile};
        for (uint32_t i = 0; i < ncarried; i++) args[1 + i] = carried.v[i];
        const IrOp *term;
        ok = exec_region(th, fr, op, body, args, ncarried + 1, &term);
        vm_tile_release(iv_tile);
        SlotList next = {0};
        if (ok) ok = terminator_values(th, fr, op, term, OP_YIELD, ncarried, &next);
        if (!ok) {
            list_release(&next);
            break;
        }
        list_release(&carried);
        carried = next;
        if (u64) {
            if ((uint64_t)iv > UINT64_MAX - (uint64_t)step) break;
            iv = (int64_t)((uint64_t)iv + (uint64_t)step);
        } else {
            if (iv > INT64_MAX - step) break;
            iv += step;
        }
    }
    if (ok) ok = set_results(th, fr, op, &carried);
    list_release(&carried);
    free(args);
    return ok;
}

static bool scalar_truth(VmThread *th, VmFrame *fr, const IrOp *op, uint32_t i, bool *out) {
    const VmTile *t = vm_operand_tile(th, fr, op, i);
    if (!t) return false;
    if (t->numel != 1) return vm_error(th, op, "the condition must be a scalar");
    *out = elem_is_float(op->operands[i]->type->elem) ? t->data[0].f != 0 : t->data[0].i != 0;
    return true;
}

static bool exec_if(VmThread *th, VmFrame *fr, const IrOp *op) {
    if (op->noperands < 1 || op->nregions != 2) return vm_error(th, op, "needs a condition and two regions");
    bool c;
    if (!scalar_truth(th, fr, op, 0, &c)) return false;
    const IrOp *term;
    if (!exec_region(th, fr, op, op->regions[c ? 0 : 1], NULL, 0, &term)) return false;
    SlotList vals;
    bool ok = terminator_values(th, fr, op, term, OP_YIELD, op->nresults, &vals) &&
              set_results(th, fr, op, &vals);
    list_release(&vals);
    return ok;
}

static bool exec_while(VmThread *th, VmFrame *fr, const IrOp *op) {
    if (op->nregions != 2) return vm_error(th, op, "needs two regions");
    SlotList vals;
    bool ok = collect(th, fr, op, 0, op->noperands, &vals);
    while (ok) {
        const IrOp *term;
        if (cancelled(th->launch)) {
            ok = vm_error(th, op, "cancelled");
            break;
        }
        ok = exec_region(th, fr, op, op->regions[0], vals.v, vals.n, &term);
        if (!ok) break;
        if (!term || term->code != OP_CONDITION || term->noperands < 1) {
            ok = vm_error(th, op, "region 0 must end in condition");
            break;
        }
        bool c;
        SlotList cvals = {0};
        ok = scalar_truth(th, fr, term, 0, &c) && collect(th, fr, term, 1, term->noperands - 1, &cvals);
        if (!ok) {
            list_release(&cvals);
            break;
        }
        if (!c) {
            ok = set_results(th, fr, op, &cvals);
            list_release(&cvals);
            break;
        }
        ok = exec_region(th, fr, op, op->regions[1], cvals.v, cvals.n, &term);
        list_release(&cvals);
        SlotList next = {0};
        if (ok) ok = terminator_values(th, fr, op, term, OP_YIELD, vals.n, &next);
        if (!ok) {
            list_release(&next);
            break;
        }
        list_release(&vals);
        vals = next;
    }
    list_release(&vals);
    return ok;
}

static bool exec_call(VmThread *th, VmFrame *fr, const IrOp *op) {
    const IrFunction *callee = op->callee;
    if (!callee || !callee->body) return vm_error(th, op, "has no callee");
    if (th->calls >= VM_MAX_CALLS)
        return vm_error(th, op, "calls are nested deeper than %d", VM_MAX_CALLS);
    SlotList args, results = {0};
    bool ok = collect(th, fr, op, 0, op->noperands, &args);
    if (ok) {
        VmFrame frame;
        frame_init(&frame, callee);
        th->calls++;
        const IrOp *term;
        ok = exec_region(th, &frame, op, callee->body, args.v, args.n, &term) &&
             terminator_values(th, &frame, op, term, OP_RETURN, op->nresults, &results);
        th->calls--;
        frame_free(&frame);
    }
    list_release(&args);
    if (ok) ok = set_results(th, fr, op, &results);
    list_release(&results);
    return ok;
}

/* The ops with regions or a callee; every other op is a data op (vm_data_executors). */
static const VmExecFn control_executors[OP_COUNT] = {
    [OP_FOR] = exec_for, [OP_IF] = exec_if, [OP_WHILE] = exec_while, [OP_CALL] = exec_call,
    [OP_WARP_ROLES] = vm_exec_warp_roles, /* vm_roles.c */
};

VmExecFn vm_executor(OpCode code) {
    if ((unsigned)code >= OP_COUNT) return NULL;
    return control_executors[code] ? control_executors[code] : vm_data_executors[code];
}

static bool exec_op(VmThread *th, VmFrame *fr, const IrOp *op) {
    if ((unsigned)op->code < OP_COUNT && control_executors[op->code]) return control_executors[op->code](th, fr, op);
    if (op->nregions) return vm_error(th, op, "unexpected regions");
    return vm_exec_data_op(th, fr, op); /* an internal error for an op without an executor */
}

/* ---- launches -------------------------------------------------------------------------------- */
static bool launch_init(VmLaunch *L, const IrFunction *kernel, const tile_arg *args, size_t nargs,
                        Strbuf *err) {
    memset(L, 0, sizeof *L);
    if (!kernel->is_kernel || !kernel->grid) {
        sb_printf(err, "'%s' is not a kernel", kernel->name);
        return false;
    }
    if (!rt_check_args(kernel, args, nargs, err)) return false;
    L->kernel = kernel;
    L->args = args;
    L->tensors = xcalloc(nargs ? nargs : 1, sizeof(VmTensor));
    for (size_t i = 0; i < nargs; i++) {
        const IrType *type = kernel->body->args[i]->type;
        if (type->kind != TY_TENSOR) continue;
        const tile_tensor *t = &args[i].tensor;
        VmTensor *v = &L->tensors[i];
        v->elem = type->elem;
        v->data = t->data;
        v->rank = t->rank;
        for (int d = 0; d < t->rank; d++) {
            v->shape[d] = t->shape[d];
            v->strides[d] = t->strides[d];
        }
    }
    L->grid[0] = L->grid[1] = L->grid[2] = 1;
    L->num_sms = vm_num_sms();
    pthread_mutex_init(&L->memory_lock, NULL);
    return true;
}

static void launch_free(VmLaunch *L) {
    free(L->tensors);
    pthread_mutex_destroy(&L->memory_lock);
}

/* The values of the parameters, shared by every block of a worker. */
static bool make_params(VmThread *th, const IrRegion *r, VmSlot *out) {
    const VmLaunch *L = th->launch;
    const IrRegion *body = L->kernel->body;
    if (r->nargs != body->nargs) return vm_error(th, NULL, "the grid and the body take different values");
    for (uint32_t i = 0; i < r->nargs; i++) {
        const IrType *type = r->args[i]->type, *param = body->args[i]->type;
        if (type->kind != param->kind || type->rank != param->rank || !elem_eq(type->elem, param->elem))
            return vm_error(th, NULL, "grid argument %u does not have its parameter's type", (unsigned)i);
        if (type->kind == TY_TENSOR) {
            out[i].tensor = &L->tensors[i];
            continue;
        }
        ElemType e = type->elem;
        VmElem v;
        if (elem_is_float(e)) v.f = elem_round_float(e, L->args[i].f);
        else v.i = elem_wrap_int(e, L->args[i].i);
        out[i].tile = vm_scalar_tile(th, NULL, v);
        if (!out[i].tile) return false;
    }
    return true;
}

static void release_params(VmSlot *params, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) vm_slot_clear(&params[i]);
    free(params);
}

static bool eval_grid(VmLaunch *L, int64_t grid[3], bool *internal, Strbuf *err) {
    const IrFunction *kernel = L->kernel;
    VmThread th = {.launch = L};
    VmFrame fr;
    frame_init(&fr, kernel);
    uint32_t n = kernel->grid->nargs;
    VmSlot *params = xcalloc(n ? n : 1, sizeof(VmSlot));
    const IrOp *term = NULL;
    bool ok = n == kernel->body->nargs ? make_params(&th, kernel->grid, params)
                                       : vm_error(&th, NULL, "the grid takes %u values", (unsigned)n);
    ok = ok && exec_region(&th, &fr, NULL, kernel->grid, params, n, &term);
    if (ok && (!term || term->code != OP_YIELD || term->noperands < 1 || term->noperands > 3))
        ok = vm_error(&th, term, "the grid must yield 1 to 3 values");
    for (uint32_t i = 0; ok && i < 3; i++) {
        grid[i] = 1;
        if (i >= term->noperands) continue;
        const VmTile *t = vm_operand_tile(&th, &fr, term, i);
        if (!t) {
            ok = false;
        } else if (t->numel != 1 || elem_is_float(term->operands[i]->type->elem)) {
            ok = vm_error(&th, term, "grid value %u is not an integer scalar", (unsigned)i);
        } else if (t->data[0].i < 0 || t->data[0].i > INT32_MAX) {
            ok = vm_error(&th, term, "grid dimension %u is %" PRId64 ", outside [0, 2^31)",
                          (unsigned)i, t->data[0].i);
        } else {
            grid[i] = t->data[0].i;
        }
    }
    if (!ok) sb_printf(err, "kernel '%s': %s", kernel->name, sb_str(&th.err));
    if (internal) *internal = th.internal;
    release_params(params, n);
    frame_free(&fr);
    sb_free(&th.err);
    return ok;
}

bool vm_eval_grid(const IrFunction *kernel, const tile_arg *args, size_t nargs, int64_t grid[3],
                  Strbuf *err) {
    return vm_eval_grid_sms(kernel, args, nargs, vm_num_sms(), grid, err);
}

bool vm_eval_grid_sms(const IrFunction *kernel, const tile_arg *args, size_t nargs, int num_sms, int64_t grid[3],
                      Strbuf *err) {
    VmLaunch L;
    if (!launch_init(&L, kernel, args, nargs, err)) return false;
    L.num_sms = num_sms;
    bool ok = eval_grid(&L, grid, NULL, err);
    launch_free(&L);
    return ok;
}

int vm_num_sms(void) {
    const char *s = getenv("TILE_VM_NUM_SMS");
    char *end;
    long v = s ? strtol(s, &end, 10) : 0;
    return s && *s && !*end && v >= 1 && v <= VM_MAX_NUM_SMS ? (int)v : VM_DEFAULT_NUM_SMS;
}

typedef struct Scheduler {
    VmLaunch *launch;
    int64_t total;
    atomic_int_fast64_t next;
    atomic_bool failed;
    atomic_bool cancelled;
    bool reverse; /* TILE_VM_BLOCK_ORDER=reverse: hand out the blocks last first */
    pthread_mutex_t err_lock;
    bool err_set;
    bool internal;            /* the error reported is an internal one */
    Strbuf *err;
} Scheduler;

static void *worker_main(void *arg) {
    Scheduler *s = arg;
    const VmLaunch *L = s->launch;
    const IrFunction *kernel = L->kernel;
    VmThread th = {.launch = L};
    VmFrame fr;
    frame_init(&fr, kernel);
    uint32_t n = kernel->body->nargs;
    VmSlot *params = xcalloc(n ? n : 1, sizeof(VmSlot));
    bool ok = make_params(&th, kernel->body, params);
    while (ok && !atomic_load(&s->failed)) {
        if (cancelled(L) && atomic_load(&s->next) < s->total) {
            atomic_store(&s->cancelled, true);
            atomic_store(&s->failed, true);
            break;
        }
        int64_t b = atomic_fetch_add(&s->next, 1);
        if (b >= s->total) break;
        if (s->reverse) b = s->total - 1 - b;
        th.block[0] = b % L->grid[0];
        th.block[1] = b / L->grid[0] % L->grid[1];
        th.block[2] = b / L->grid[0] / L->grid[1];
        const IrOp *term;
        th.pending.len = 0; /* a block's copies end with it */
        vm_cluster_block_begin(&th);
        ok = exec_region(&th, &fr, NULL, kernel->body, params, n, &term);
        if (ok) ok = vm_cluster_block_done(&th);
        if (ok) ok = vm_store_tma_block_end(&th, kernel->body->last);
        frame_clear(&fr);
    }
    if (!ok && cancelled(L)) { /* stopped inside a block by the cancellation: not the program's error */
        atomic_store(&s->cancelled, true);
        atomic_store(&s->failed, true);
    } else if (!ok) {
        atomic_store(&s->failed, true);
        pthread_mutex_lock(&s->err_lock);
        if (!s->err_set) {
            s->err_set = true;
            s->internal = th.internal;
            sb_printf(s->err, "kernel '%s', block (%" PRId64 ", %" PRId64 ", %" PRId64 "): %s",
                      kernel->name, th.block[0], th.block[1], th.block[2], sb_str(&th.err));
        }
        pthread_mutex_unlock(&s->err_lock);
    }
    release_params(params, n);
    frame_free(&fr);
    sb_free(&th.err);
    vec_free(&th.pending);
    return NULL;
}

static int cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > VM_MAX_THREADS ? VM_MAX_THREADS : (int)n;
}

VmOutcome vm_launch_cancellable(const IrFunction *kernel, const tile_arg *args, size_t nargs, int nthreads,
                                const VmCancel *cancel, Strbuf *err) {
    VmLaunch L;
    if (!launch_init(&L, kernel, args, nargs, err)) return VM_FAILED;
    L.cancel = cancel;
    bool cancelled = false, internal = false;
    bool ok = eval_grid(&L, L.grid, &internal, err);
    int64_t g0 = L.grid[0], g1 = L.grid[1], g2 = L.grid[2];
    /* each is below 2^31, so g0 * g1 fits; the third product may not */
    if (ok && g2 && g0 * g1 > INT64_MAX / g2) {
        sb_printf(err, "kernel '%s': the grid (%" PRId64 ", %" PRId64 ", %" PRId64 ") is too large",
                  kernel->name, g0, g1, g2);
        ok = false;
    }
    if (ok) {
        /* TILE_VM_BLOCK_ORDER=reverse starts the blocks in reverse order, as a GPU may: a test
           of kernels that must not assume block i starts before block i + 1 */
        const char *order = getenv("TILE_VM_BLOCK_ORDER");
        Scheduler s = {.launch = &L, .total = g0 * g1 * g2, .err = err,
                       .reverse = order && strcmp(order, "reverse") == 0};
        atomic_init(&s.next, 0);
        atomic_init(&s.failed, false);
        atomic_init(&s.cancelled, false);
        pthread_mutex_init(&s.err_lock, NULL);
        vm_cluster_launch_begin(&L);
        if (nthreads <= 0) nthreads = cpu_count();
        if (nthreads > VM_MAX_THREADS) nthreads = VM_MAX_THREADS;
        if (nthreads > s.total) nthreads = (int)(s.total ? s.total : 1);
        pthread_t threads[VM_MAX_THREADS];
        int started = 0;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, (size_t)16 << 20);
        for (int i = 1; i < nthreads; i++) {
            if (pthread_create(&threads[started], &attr, worker_main, &s) != 0) break;
            started++;
        }
        pthread_attr_destroy(&attr);
        worker_main(&s); /* the calling thread works too */
        for (int i = 0; i < started; i++) pthread_join(threads[i], NULL);
        pthread_mutex_destroy(&s.err_lock);
        vm_cluster_launch_end(&L);
        ok = !s.err_set;
        internal = s.err_set && s.internal;
        if (ok && atomic_load(&s.cancelled)) {
            int64_t done = atomic_load(&s.next);
            sb_printf(err, "kernel '%s': cancelled (tile_context_cancel) with at most %" PRId64 " of %" PRId64
                      " blocks run", kernel->name, done < s.total ? done : s.total, s.total);
            cancelled = true;
            ok = false;
        }
    }
    launch_free(&L);
    return ok ? VM_OK : cancelled ? VM_CANCELLED : internal ? VM_INTERNAL : VM_FAILED;
}

bool vm_launch_threads(const IrFunction *kernel, const tile_arg *args, size_t nargs,
                       int nthreads, Strbuf *err) {
    return vm_launch_cancellable(kernel, args, nargs, nthreads, NULL, err) == VM_OK;
}

bool vm_launch(const IrFunction *kernel, const tile_arg *args, size_t nargs, Strbuf *err) {
    return vm_launch_threads(kernel, args, nargs, 0, err);
}
