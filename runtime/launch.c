/*
 * launch.c: the launch fast path. Two parts: a kernel's grid region (and its launch-known
 * conditions, passes/conds.c) compiled once, when the kernel is made, into straight-line steps
 * over scalar registers, so that a launch computes its grid and the conditions' values without
 * the VM (no frames, no tiles, no allocation); and the launch memo (at the end of
 * the file), which lets a cuda launch whose argument signature was seen before skip the checks,
 * the facts, the choice of function and the grid altogether.
 *
 * A grid region is a short list of scalar ops (`dim`, `const`, integer arithmetic, `min`/`max`,
 * casts, comparisons, `select`, `num_sms`) ending in `yield` of 1 to 3 integers. rt_grid_compile
 * turns each op into one RtGridStep whose operands are register numbers; region arguments (the
 * kernel's parameters) are read from the launch's arguments: scalars converted to the
 * parameter's type as the VM does, tensors only through `dim`. Each step computes with the
 * functions of ir/eval.c, the VM's own element rules, so the result is the VM's bit for bit.
 * Whatever the steps cannot express (an op with regions, a tile, more than RT_GRID_MAX_REGS
 * values) leaves the kernel without a compiled grid, and its launches evaluate the region with
 * the VM (vm_eval_grid) as before. rt_grid_eval also declines (returns false) when a yielded
 * value is outside [0, 2^31) or an op would fail on the VM, so that the VM reports the error
 * with its usual message.
 */
#include "runtime.h"
#include "vm.h"

#include <string.h>

enum { RT_GRID_PARAM = OP_COUNT + 1 }; /* a step that reads a scalar parameter */

typedef struct RtGridStep {
    int code;         /* an OpCode, or RT_GRID_PARAM */
    ElemType elem;    /* the result's type; OP_CMP: the operands' */
    ElemType from;    /* OP_CAST: the operand's type */
    uint16_t dst, a, b, c;
    int64_t attr;     /* OP_CMP: the predicate; OP_DIM: the axis; RT_GRID_PARAM: the parameter */
    IrConst value;    /* OP_CONST: already converted to elem */
} RtGridStep;

struct RtSteps {
    RtGridStep *steps;
    uint32_t nsteps;
    uint16_t outs[LAUNCH_CONDS_MAX]; /* the registers of the results: the grid's 1..3, the conditions */
    uint32_t nouts;
};

void rt_grid_free(RtGrid *g) {
    if (!g) return;
    free(g->steps);
    free(g);
}

/* The register of value v: its index in map (values of the region, in definition order). */
static int reg_of(const IrValue *const *map, uint32_t n, const IrValue *v) {
    for (uint32_t i = 0; i < n; i++)
        if (map[i] == v) return (int)i;
    return -1;
}

/* Compiles ops (scalar ops in an order of definitions) over r's arguments, the kernel's
 * parameters (r is its grid or its body), into steps that compute outs (integers or bools); NULL
 * when some op is beyond the steps. The grid's steps and the launch conditions' both come from
 * here, so that a launch evaluates either with the same element rules as the VM. */
static RtSteps *steps_compile(const IrRegion *r, const IrOp *const *ops, uint32_t nops, IrValue *const *outs,
                              uint32_t nouts) {
    if (r->nargs > RT_GRID_MAX_REGS || nouts < 1 || nouts > LAUNCH_CONDS_MAX) return NULL;
    const IrValue *map[RT_GRID_MAX_REGS];
    uint32_t nmap = 0;
    RtSteps *g = xcalloc(1, sizeof *g);
    g->steps = xcalloc(RT_GRID_MAX_REGS + r->nargs + 1, sizeof *g->steps);
    bool ok = true;
    /* the parameters: scalars are loaded (as the VM's make_params does), tensors only named */
    for (uint32_t i = 0; i < r->nargs; i++) {
        const IrValue *arg = r->args[i];
        map[nmap] = arg;
        if (type_is_scalar(arg->type))
            g->steps[g->nsteps++] = (RtGridStep){.code = RT_GRID_PARAM, .elem = arg->type->elem, .dst = (uint16_t)nmap,
                                                 .attr = i};
        else if (arg->type->kind != TY_TENSOR) ok = false;
        nmap++;
    }
    for (uint32_t k = 0; k < nops && ok; k++) {
        const IrOp *op = ops[k];
        if (op->nregions || op->nresults != 1 || op->noperands > 3 || !type_is_scalar(op->results[0]->type) ||
            nmap == RT_GRID_MAX_REGS) {
            ok = false;
            break;
        }
        RtGridStep s = {.code = op->code, .elem = op->results[0]->type->elem, .dst = (uint16_t)nmap};
        int regs[3] = {0, 0, 0};
        for (uint32_t i = 0; i < op->noperands && ok; i++) {
            regs[i] = reg_of(map, nmap, op->operands[i]);
            ok = regs[i] >= 0;
        }
        if (!ok) break;
        s.a = (uint16_t)regs[0];
        s.b = (uint16_t)regs[1];
        s.c = (uint16_t)regs[2];
        bool elementwise = (ir_op_info[op->code].flags & F_ELEM) && op->code != OP_CAST;
        if (op->code == OP_CONST) {
            IrConst v = op->value;
            s.value = elem_convert(v.is_float ? elem_f64() : elem_int(64), v, s.elem);
        } else if (op->code == OP_DIM) {
            ok = op->operands[0]->type->kind == TY_TENSOR && !op->operands[0]->def && op->operands[0]->region == r && op->ints[0] >= 0 &&
                 op->ints[0] < op->operands[0]->type->rank && !elem_is_float(s.elem);
            s.attr = op->ints[0];
            s.b = (uint16_t)op->operands[0]->index; /* the parameter */
        } else if (op->code == OP_NUM_SMS) {
            ok = !elem_is_float(s.elem);
        } else if (op->code == OP_CAST) {
            ok = type_is_scalar(op->operands[0]->type);
            s.from = op->operands[0]->type->elem;
        } else if (op->code == OP_SELECT) {
            ok = type_is_scalar(op->operands[0]->type);
        } else if (elementwise) {
            for (uint32_t i = 0; i < op->noperands; i++) ok = ok && type_is_scalar(op->operands[i]->type);
            if (op->code == OP_CMP) {
                s.elem = op->operands[0]->type->elem;
                s.attr = op->ints[0];
                ok = ok && op->ints[0] >= CMP_EQ && op->ints[0] <= CMP_GE;
            }
        } else {
            ok = false;
        }
        map[nmap++] = op->results[0];
        g->steps[g->nsteps++] = s;
    }
    for (uint32_t i = 0; ok && i < nouts; i++) {
        int reg = reg_of(map, nmap, outs[i]);
        ok = reg >= 0 && type_is_scalar(outs[i]->type) && !elem_is_float(outs[i]->type->elem);
        g->outs[i] = (uint16_t)reg;
    }
    if (!ok) {
        rt_grid_free(g);
        return NULL;
    }
    g->nouts = nouts;
    return g;
}

/* Compiles f's grid region; NULL when some op is beyond the steps (the VM evaluates it then). */
RtGrid *rt_grid_compile(const IrFunction *f) {
    const IrRegion *r = f->grid;
    if (!r) return NULL;
    const IrOp *ops[RT_GRID_MAX_REGS];
    uint32_t nops = 0;
    const IrOp *op = r->first;
    for (; op && op->code != OP_YIELD; op = op->next) {
        if (nops == RT_GRID_MAX_REGS) return NULL; /* more values than registers */
        ops[nops++] = op;
    }
    if (!op || op->noperands < 1 || op->noperands > 3) return NULL;
    return steps_compile(r, ops, nops, op->operands, op->noperands);
}

/* Runs the steps for args into regs; false when the VM must decide. */
static bool steps_run(const RtSteps *g, const tile_arg *args, size_t nargs, int num_sms, IrConst *regs) {
    for (uint32_t i = 0; i < g->nsteps; i++) {
        const RtGridStep *s = &g->steps[i];
        IrConst *out = &regs[s->dst];
        switch (s->code) {
        case RT_GRID_PARAM: {
            if ((size_t)s->attr >= nargs) return false;
            const tile_arg *a = &args[s->attr];
            if (elem_is_float(s->elem)) *out = (IrConst){.is_float = true, .f = elem_round_float(s->elem, a->f)};
            else *out = (IrConst){.i = elem_wrap_int(s->elem, a->i)};
            break;
        }
        case OP_CONST: *out = s->value; break;
        case OP_NUM_SMS: *out = elem_convert(elem_int(64), (IrConst){.i = num_sms}, s->elem); break;
        case OP_DIM:
            if ((size_t)s->b >= nargs || s->attr >= args[s->b].tensor.rank) return false;
            *out = elem_convert(elem_int(64), (IrConst){.i = args[s->b].tensor.shape[s->attr]}, s->elem);
            break;
        case OP_CAST: *out = elem_convert(s->from, regs[s->a], s->elem); break;
        case OP_SELECT: {
            const IrConst *c = &regs[s->a];
            *out = (c->is_float ? c->f != 0 : c->i != 0) ? regs[s->b] : regs[s->c];
            break;
        }
        default:
            if (!elem_eval((OpCode)s->code, s->attr, s->elem, &regs[s->a], &regs[s->b], out)) return false;
            break;
        }
    }
    return true;
}

/* The VM's num_sms() (a GPU launch passes its device's count to rt_grid_eval_sms). */
bool rt_grid_eval(const RtGrid *g, const tile_arg *args, size_t nargs, int64_t grid[3]) {
    return rt_grid_eval_sms(g, args, nargs, vm_num_sms(), grid);
}

/* Runs the steps for args (already checked by rt_check_args); false when the VM must decide. */
bool rt_grid_eval_sms(const RtGrid *g, const tile_arg *args, size_t nargs, int num_sms, int64_t grid[3]) {
    IrConst regs[RT_GRID_MAX_REGS];
    if (!steps_run(g, args, nargs, num_sms, regs)) return false;
    for (uint32_t d = 0; d < 3; d++) {
        grid[d] = 1;
        if (d >= g->nouts) continue;
        int64_t v = regs[g->outs[d]].i;
        if (v < 0 || v > INT32_MAX) return false; /* the VM reports it */
        grid[d] = v;
    }
    return true;
}

/* ---- launch-known conditions ------------------------------------------------------------------
 * The conditions of passes/conds.c compiled, like the grid, once per kernel into steps over the
 * parameters; a launch runs them (no VM, no allocation) into the variant's condition word. */
RtSteps *rt_conds_compile(const IrFunction *f) {
    IrValue *conds[LAUNCH_CONDS_MAX];
    uint32_t n = f->is_kernel && f->body ? launch_conds_find(f, conds) : 0;
    if (!n) return NULL;
    const IrOp *ops[RT_GRID_MAX_REGS];
    int nops = launch_conds_slice(f, ops, RT_GRID_MAX_REGS);
    return nops < 0 ? NULL : steps_compile(f->body, ops, (uint32_t)nops, conds, n);
}

RtSpecFacts rt_conds_eval(const RtSteps *c, const tile_arg *args, size_t nargs) {
    IrConst regs[RT_GRID_MAX_REGS];
    if (!c || !steps_run(c, args, nargs, 0, regs)) return 0; /* none known (they never read num_sms) */
    unsigned word = 0;
    for (uint32_t i = 0; i < c->nouts; i++)
        word |= (1u << (LAUNCH_CONDS_MAX + i)) | ((regs[c->outs[i]].i != 0 ? 1u : 0u) << i);
    return (RtSpecFacts)word;
}

uint32_t rt_conds_count(const RtSteps *c) { return c ? c->nouts : 0; }

/* ---- steps on disk ---------------------------------------------------------------------------
 * A kernel's conditions travel in its interface entry (interface.c) so that a disk hit needs no
 * frontend: the steps field by field, and read back only when every register, parameter, axis,
 * opcode and element type is one steps_compile could have made for the function f. */
enum { STEP_BYTES = 4 + 4 + 4 + 4 * 2 + 8 + 1 + 8 + 8 };

static void put_u32(Strbuf *out, uint32_t v) { sb_putn(out, (const char *)&v, sizeof v); }

void rt_steps_encode(const RtSteps *s, Strbuf *out) {
    put_u32(out, s ? s->nsteps : 0);
    put_u32(out, s ? s->nouts : 0);
    for (uint32_t i = 0; s && i < s->nouts; i++) sb_putn(out, (const char *)&s->outs[i], sizeof s->outs[i]);
    for (uint32_t i = 0; s && i < s->nsteps; i++) {
        const RtGridStep *g = &s->steps[i];
        int32_t code = g->code;
        uint8_t elems[8] = {g->elem.kind, g->elem.bits, g->elem.exp, g->elem.man,
                            g->from.kind, g->from.bits, g->from.exp, g->from.man};
        uint16_t regs[4] = {g->dst, g->a, g->b, g->c};
        uint8_t is_float = g->value.is_float;
        sb_putn(out, (const char *)&code, sizeof code);
        sb_putn(out, (const char *)elems, sizeof elems);
        sb_putn(out, (const char *)regs, sizeof regs);
        sb_putn(out, (const char *)&g->attr, sizeof g->attr);
        sb_putn(out, (const char *)&is_float, 1);
        sb_putn(out, (const char *)&g->value.i, sizeof g->value.i);
        sb_putn(out, (const char *)&g->value.f, sizeof g->value.f);
    }
}

static bool elem_plausible(ElemType e) {
    if (e.kind > EK_FLOAT || e.bits < 1 || e.bits > 64) return false;
    return e.kind != EK_FLOAT || (e.exp >= 1 && 1 + e.exp + e.man == e.bits);
}

RtSteps *rt_steps_decode(const uint8_t *p, size_t n, const IrFunction *f, size_t *used) {
    uint32_t nsteps, nouts;
    if (n < 8) return NULL;
    memcpy(&nsteps, p, 4);
    memcpy(&nouts, p + 4, 4);
    size_t need = 8 + (size_t)nouts * 2 + (size_t)nsteps * STEP_BYTES;
    if (nouts > LAUNCH_CONDS_MAX || nsteps > RT_GRID_MAX_REGS + f->body->nargs + 1 || need > n) return NULL;
    *used = need;
    if (nsteps == 0 && nouts == 0) return NULL; /* none (the caller tells this apart by *used) */
    RtSteps *s = xcalloc(1, sizeof *s);
    s->steps = xcalloc(nsteps + 1, sizeof *s->steps);
    s->nsteps = nsteps;
    s->nouts = nouts;
    const uint8_t *q = p + 8;
    bool ok = nouts > 0;
    for (uint32_t i = 0; i < nouts; i++, q += 2) {
        memcpy(&s->outs[i], q, 2);
        ok = ok && s->outs[i] < RT_GRID_MAX_REGS;
    }
    /* the registers written so far: a step reads only those (steps_run's registers start
     * undefined), as every sequence steps_compile makes does */
    uint64_t defined = 0;
    _Static_assert(RT_GRID_MAX_REGS <= 64, "one bit per register");
    for (uint32_t i = 0; i < nsteps && ok; i++, q += STEP_BYTES) {
        RtGridStep *g = &s->steps[i];
        int32_t code;
        uint16_t regs[4];
        memcpy(&code, q, 4);
        g->code = code;
        g->elem = (ElemType){q[4], q[5], q[6], q[7]};
        g->from = (ElemType){q[8], q[9], q[10], q[11]};
        memcpy(regs, q + 12, sizeof regs);
        g->dst = regs[0], g->a = regs[1], g->b = regs[2], g->c = regs[3];
        memcpy(&g->attr, q + 20, 8);
        g->value.is_float = q[28] != 0;
        memcpy(&g->value.i, q + 29, 8);
        memcpy(&g->value.f, q + 37, 8);
        ok = (code == RT_GRID_PARAM || (code >= 0 && code < OP_COUNT)) && elem_plausible(g->elem) &&
             (code != OP_CAST || elem_plausible(g->from)) && g->dst < RT_GRID_MAX_REGS &&
             g->a < RT_GRID_MAX_REGS && g->b < RT_GRID_MAX_REGS && g->c < RT_GRID_MAX_REGS;
        if (ok && code == RT_GRID_PARAM) {
            ok = g->attr >= 0 && (uint64_t)g->attr < f->body->nargs &&
                 type_is_scalar(f->body->args[g->attr]->type);
        } else if (ok && code == OP_DIM) {
            ok = g->b < f->body->nargs && f->body->args[g->b]->type->kind == TY_TENSOR && g->attr >= 0 &&
                 g->attr < f->body->args[g->b]->type->rank;
        } else if (ok && code != OP_CONST && code != OP_NUM_SMS) {
            int n = ir_op_info[code].noperands, reads = code == OP_SELECT || n < 0 ? 3 : code == OP_CAST ? 1 : n;
            const uint16_t operand[3] = {g->a, g->b, g->c};
            for (int r = 0; r < reads && r < 3; r++) ok = ok && (defined >> operand[r] & 1);
        }
        if (ok) defined |= (uint64_t)1 << g->dst;
    }
    for (uint32_t i = 0; i < nouts && ok; i++) ok = defined >> s->outs[i] & 1;
    if (!ok) {
        rt_grid_free(s);
        *used = 0;
        return NULL;
    }
    return s;
}

/* ---- the launch memo -------------------------------------------------------------------------
 * What a cuda launch decided for one argument signature: the arguments passed the checks, their
 * facts chose this function, and the grid region gave this grid. A signature is every byte of the
 * arguments those decisions read (kinds, dtypes, ranks, sizes, strides, scalar values, whether
 * each data pointer is null and its address modulo 16, which decides its element alignment and
 * its aligned16 fact) and nothing else: the data pointers themselves change from launch to
 * launch and are packed afresh each time. A kernel keeps up to RT_LAUNCH_MEMOS signatures, made
 * by its first launches with new ones and freed with it; later launches with another signature
 * take the full path, which is what every launch did before. Lookups take no lock: each slot is
 * an atomic pointer set once (compare-and-swap from NULL) to a memo never changed afterwards. */

/* The part of one argument that the memo compares. */
static bool arg_matches(const RtMemoArg *m, const tile_arg *a) {
    if ((int)a->kind != m->kind) return false;
    if (a->kind == TILE_ARG_INT) return a->i == m->value;
    if (a->kind == TILE_ARG_FLOAT) {
        int64_t bits;
        memcpy(&bits, &a->f, sizeof bits);
        return bits == m->value;
    }
    const tile_tensor *t = &a->tensor;
    if (t->dtype != m->dtype || t->rank != m->rank) return false;
    uintptr_t p = (uintptr_t)t->data;
    if ((p ? (int64_t)(p & 15) : 16) != m->value) return false;
    for (int d = 0; d < m->rank; d++)
        if (t->shape[d] != m->shape[d] || t->strides[d] != m->strides[d]) return false;
    return true;
}

const RtLaunchMemo *rt_launch_memo_find(tile_kernel *k, const tile_arg *args, size_t nargs) {
    for (int s = 0; s < RT_LAUNCH_MEMOS; s++) {
        const RtLaunchMemo *m = atomic_load_explicit(&k->memos[s], memory_order_acquire);
        if (!m) return NULL; /* slots fill in order: the rest are empty */
        if (m->nargs != nargs) continue;
        size_t i = 0;
        while (i < nargs && arg_matches(&m->args[i], &args[i])) i++;
        if (i == nargs) return m;
    }
    return NULL;
}

void rt_launch_memo_add(tile_kernel *k, const tile_arg *args, size_t nargs, tile_kernel *kernel, void *function,
                        const char *report, const int64_t grid[3]) {
    if (nargs > RT_MEMO_MAX_ARGS || atomic_load_explicit(&k->memos[RT_LAUNCH_MEMOS - 1], memory_order_relaxed))
        return;
    for (size_t i = 0; i < nargs; i++)
        if (args[i].kind == TILE_ARG_TENSOR && (args[i].tensor.rank < 0 || args[i].tensor.rank > TILE_MAX_RANK)) return;
    RtLaunchMemo *m = xcalloc(1, sizeof *m + nargs * sizeof m->args[0]);
    m->kernel = kernel;
    m->function = function;
    m->report = report;
    m->nargs = (uint32_t)nargs;
    for (int d = 0; d < 3; d++) m->grid[d] = (unsigned)grid[d];
    for (size_t i = 0; i < nargs; i++) {
        RtMemoArg *a = &m->args[i];
        a->kind = (int)args[i].kind;
        if (args[i].kind == TILE_ARG_INT) {
            a->value = args[i].i;
        } else if (args[i].kind == TILE_ARG_FLOAT) {
            memcpy(&a->value, &args[i].f, sizeof a->value);
        } else {
            const tile_tensor *t = &args[i].tensor;
            a->dtype = t->dtype;
            a->rank = t->rank;
            a->value = t->data ? (int64_t)((uintptr_t)t->data & 15) : 16;
            memcpy(a->shape, t->shape, (size_t)t->rank * sizeof t->shape[0]);
            memcpy(a->strides, t->strides, (size_t)t->rank * sizeof t->strides[0]);
        }
    }
    for (int s = 0; s < RT_LAUNCH_MEMOS; s++) {
        RtLaunchMemo *expected = NULL;
        if (atomic_compare_exchange_strong_explicit(&k->memos[s], &expected, m, memory_order_release,
                                                    memory_order_relaxed))
            return;
    }
    free(m); /* other threads filled the slots first */
}

void rt_launch_memo_free(tile_kernel *k) {
    for (int s = 0; s < RT_LAUNCH_MEMOS; s++) {
        free(atomic_load(&k->memos[s]));
        atomic_store(&k->memos[s], NULL);
    }
}
