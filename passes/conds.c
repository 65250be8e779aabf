/*
 * conds.c: launch-known conditions, the analysis that finds them and the GPU pass that folds
 * them (the first GPU pass, "conds").
 *
 * A kernel often branches on what only its launch decides: softmax's `if N <= BN` takes one pass
 * over a short row and two loops over a long one. Every block of a launch takes the same branch,
 * and the host knows which before the launch, from the sizes alone; yet a variant compiled for
 * both carries both to LLVM and nvJitLink (three copies of softmax's per-element code). So the
 * runtime makes such conditions facts of the variant, as it does for alignment and strides:
 *
 *   launch_conds_find   the conditions of a kernel that are launch-uniform: the condition of an
 *                       `if`, then the scalar condition of a `select` of non-uniform values, that
 *                       is computed only from scalar parameters, `dim` of tensor parameters,
 *                       constants and pure scalar integer/bool ops of those (no block_id, no
 *                       loaded data, no loop variable, no float), and is not a constant already.
 *                       Each distinct value once, in program order (ifs first), at most
 *                       LAUNCH_CONDS_MAX: later ones are not specialized.
 *   launch_conds_slice  the ops that compute them from the parameters, in program order: what
 *                       the runtime compiles once into host steps (runtime/launch.c) and runs
 *                       per launch to learn their values (RtSpecFacts' condition word).
 *   pass "conds"        for a Target whose conds word knows some of them (bit i: condition i's
 *                       value, bit LAUNCH_CONDS_MAX + i: known), replaces each known condition by
 *                       its constant, then canonicalize takes the branch and dce drops the rest,
 *                       before any other GPU pass, so that the code generator never sees it.
 *
 * The pass runs first on a copy of the target-independent IR, on which launch_conds_find gives
 * the same list as on the kernel the runtime analysed: the word's bits mean the same conditions.
 * A Target without the word (ahead-of-time images, TILE_EMIT_SPECIALIZED's all-facts variant
 * unless TILE_EMIT_CONDS gives one) leaves every condition as it is. The VM needs none: it is the
 * judge of the folded kernel (tests/test_conds.c).
 */
#include "passes.h"

#include <string.h>

typedef struct Uniform {
    const IrFunction *f;
    bool *is;              /* by value id: launch-uniform */
    VEC(IrOp *) ops;       /* the ops with a launch-uniform result, in program order */
    IrValue *conds[LAUNCH_CONDS_MAX];
    uint32_t nconds;
} Uniform;

static bool scalar_int(const IrValue *v) { return type_is_scalar(v->type) && !elem_is_float(v->type->elem); }

static bool uniform_value(const Uniform *u, const IrValue *v) { return v->id < u->f->next_value_id && u->is[v->id]; }

/* Whether op's one result is launch-uniform, given its operands' (see the header). */
static bool uniform_op(const Uniform *u, const IrOp *op) {
    if (op->nresults != 1 || op->nregions || !scalar_int(op->results[0])) return false;
    if (op->code == OP_CONST) return !op->value.is_float;
    if (op->code == OP_DIM) {
        const IrValue *t = op->operands[0];
        return !t->def && t->region == u->f->body && t->type->kind == TY_TENSOR && op->nints && op->ints[0] >= 0 &&
               op->ints[0] < t->type->rank;
    }
    if (!(ir_op_info[op->code].flags & F_ELEM) || ir_op_effect(op->code) != EFFECT_PURE) return false;
    for (uint32_t i = 0; i < op->noperands; i++)
        if (!scalar_int(op->operands[i]) || !uniform_value(u, op->operands[i])) return false;
    return true;
}

static void add_cond(Uniform *u, IrValue *c) {
    if (!type_is_scalar(c->type) || !elem_is_bool(c->type->elem) || !uniform_value(u, c)) return;
    if (c->def && c->def->code == OP_CONST) return; /* canonicalize folds it already */
    for (uint32_t i = 0; i < u->nconds; i++)
        if (u->conds[i] == c) return;
    if (u->nconds < LAUNCH_CONDS_MAX) u->conds[u->nconds++] = c;
}

static bool visit(IrOp *op, void *ctx) {
    Uniform *u = ctx;
    if (uniform_op(u, op)) {
        u->is[op->results[0]->id] = true;
        vec_push(&u->ops, op);
    }
    return true;
}

static bool visit_if(IrOp *op, void *ctx) {
    if (op->code == OP_IF && op->noperands) add_cond(ctx, op->operands[0]);
    return true;
}

static bool visit_select(IrOp *op, void *ctx) {
    Uniform *u = ctx;
    if (op->code == OP_SELECT && !uniform_value(u, op->results[0])) add_cond(u, op->operands[0]);
    return true;
}

/* Marks f's launch-uniform values and finds its conditions into u (free with uniform_free). */
static void uniform_run(Uniform *u, const IrFunction *f) {
    memset(u, 0, sizeof *u);
    u->f = f;
    u->is = xcalloc(f->next_value_id + 1, sizeof *u->is);
    if (!f->is_kernel || !f->body) return;
    for (uint32_t i = 0; i < f->body->nargs; i++)
        if (scalar_int(f->body->args[i]) && f->body->args[i]->id < f->next_value_id) u->is[f->body->args[i]->id] = true;
    ir_walk(f->body, visit, u);
    ir_walk(f->body, visit_if, u);
    ir_walk(f->body, visit_select, u);
}

static void uniform_free(Uniform *u) {
    free(u->is);
    vec_free(&u->ops);
}

uint32_t launch_conds_find(const IrFunction *f, IrValue **conds) {
    Uniform u;
    uniform_run(&u, f);
    memcpy(conds, u.conds, u.nconds * sizeof *conds);
    uint32_t n = u.nconds;
    uniform_free(&u);
    return n;
}

int launch_conds_slice(const IrFunction *f, const IrOp **ops, int cap) {
    Uniform u;
    uniform_run(&u, f);
    bool *needed = xcalloc(f->next_value_id + 1, sizeof *needed);
    for (uint32_t i = 0; i < u.nconds; i++) needed[u.conds[i]->id] = true;
    /* backwards over the uniform ops (program order is an order of definitions) */
    int count = 0;
    for (size_t i = u.ops.len; i-- > 0;) {
        const IrOp *op = u.ops.data[i];
        if (!needed[op->results[0]->id]) continue;
        count++;
        for (uint32_t j = 0; j < op->noperands; j++) needed[op->operands[j]->id] = true;
    }
    int n = 0;
    for (size_t i = 0; i < u.ops.len && count <= cap; i++)
        if (needed[u.ops.data[i]->results[0]->id]) ops[n++] = u.ops.data[i];
    free(needed);
    uniform_free(&u);
    return count <= cap ? n : -1;
}

/* Replaces f's known conditions by constants; whether it replaced any. */
static bool fold_kernel(IrModule *m, IrFunction *f, unsigned word) {
    IrValue *conds[LAUNCH_CONDS_MAX];
    uint32_t n = launch_conds_find(f, conds);
    bool changed = false;
    for (uint32_t i = 0; i < n; i++) {
        if (!(word & (1u << (LAUNCH_CONDS_MAX + i)))) continue;
        IrBuilder b;
        ir_builder_before(&b, f->body->first);
        b.loc = conds[i]->def ? conds[i]->def->loc : f->loc;
        IrValue *c = ir_const_int(&b, ir_scalar_type(m, elem_bool()), (word >> i) & 1);
        ir_replace_all_uses(f, conds[i], c);
        changed = true;
    }
    return changed;
}

bool pass_conds(IrModule *m, const PassOptions *opt, DiagList *d) {
    unsigned word = opt->target.conds;
    if (!(word >> LAUNCH_CONDS_MAX)) return false;
    bool changed = false;
    for (IrFunction *f = m->functions; f; f = f->next)
        if (f->is_kernel && f->body && f->body->first) changed |= fold_kernel(m, f, word);
    if (!changed) return false;
    pass_canonicalize(m, d);
    pass_dce(m, d);
    return true;
}

void launch_conds_text(unsigned word, uint32_t n, Strbuf *out) {
    for (uint32_t i = 0; i < n; i++)
        sb_putc(out, !(word & (1u << (LAUNCH_CONDS_MAX + i))) ? 'x' : (word >> i) & 1 ? '1' : '0');
}

bool launch_conds_parse(const char *text, size_t len, unsigned *word) {
    *word = 0;
    if (len == 0 || len > LAUNCH_CONDS_MAX) return false;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == 'x') continue;
        if (text[i] != '0' && text[i] != '1') return false;
        *word |= (1u << (LAUNCH_CONDS_MAX + i)) | ((unsigned)(text[i] - '0') << i);
    }
    return true;
}
