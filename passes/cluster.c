/*
 * cluster.c: thread-block clusters of 2 with TMA multicast for a TMA ring (a GPU pass, sm_90a;
 * it runs after stages, which builds the ring, and before smem_plan).
 *
 * Two blocks whose rings copy the same tiles can load each tile once: each block issues half of
 * the boxes of the tile with `.multicast::cluster` into the same stage of both blocks, and each
 * block's mbarrier expects the whole tile. Which blocks copy the same tiles depends on the
 * kernel's tile order and the launch's sizes (gemm's grouped order puts the two blocks of a
 * cluster on the same n0 only when the group has an even number of tile rows), so the pass does
 * not try to prove it: it makes the kernel decide at run time, per ring buffer, from the values
 * the copies' origins are computed from. For each buffer a ring copies into, the backward slice
 * of its copies' origins, of the conditions of the ifs around them and of the bounds of the loop
 * around them is followed to the values of the kernel's top level it starts from (the slice inside
 * the loop must be pure ops over the induction variable). Those that depend on `block_id axis 0`
 * are cloned with the peer's block id (block_id xor 1) in place of it (pure ops only), and
 *
 *     mc_buf = cluster_size == 2 && key_1 == key_1(peer) && ...
 *
 * is computed at the top level, so both blocks of a cluster compute the same flag. The buffer's
 * copies become `copy_tma ..., %mc_buf, multicast 2`: a multicast when the flag holds, the plain
 * copy otherwise (same expected bytes either way). With the flag a stage may be refilled only when
 * both blocks have released it: a second ring of "empty" mbarriers (`count 2`, one arrival of each
 * block a phase) follows the ring's; after the loop's block barrier (after dot_wait, each block's
 * last use of the stage the refill fills) `if mc_any { mbarrier_arrive %empty, %stage, cluster 2 }`
 * arrives on both blocks' mbarrier of the stage, and the refill's copies wait for it, `if mc_any {
 * mbarrier_wait %empty, %stage, %parity }`, so the blocks no longer meet at a cluster barrier in
 * every iteration (a loop of another shape gets `if mc_any { cluster_barrier } else { barrier }`
 * for its barriers instead). The barrier after mbarrier_init becomes a cluster_barrier (a peer's
 * multicast or arrival may signal our mbarriers only once they are initialized), and a
 * cluster_barrier follows the ring's mbarrier_inval (no block leaves while its peer may still write
 * into its shared memory or arrive on its empty ring, which is invalidated after it). The kernel gets `cluster 2`: the runtime launches
 * it with clusters of 2 when the grid's x is even, else without (cluster_size is then 1, every
 * flag false: the plain ring, and a cluster barrier is a block barrier).
 *
 * Kernels it leaves alone: without exactly one ring of mbarriers (one mbarrier_init, at the top
 * level), with warp roles, or whose copies' origins come from anything but pure scalar ops.
 */
#include "passes.h"

#include <assert.h>
#include <string.h>

enum { CLUSTER_BLOCKS = 2, MAX_BUFFERS = 8, MAX_KEYS = 16, MAX_COPY_OPERANDS = 16 };

typedef struct ClusterState {
    IrFunction *f;
    IrBuilder b;
    IrValue *peer;           /* block_id axis 0 xor 1, made on first need */
    IrValue **clone;         /* by value id: the value as the peer computes it (itself: no block id) */
    uint32_t nclone;
    bool ok;
} ClusterState;

/* One buffer a ring copies into (a top-level shared_alloc) and the copies that fill it. */
typedef struct Buffer {
    IrValue *alloc;
    VEC(IrOp *) copies;
    IrValue *keys[MAX_KEYS];  /* top-level values its copies depend on */
    uint32_t nkeys;
    bool ok;
} Buffer;

static bool is_top(const IrFunction *f, const IrValue *v) {
    return v->def ? v->def->parent == f->body : v->region == f->body;
}

static bool count_inits(IrOp *op, void *ctx) {
    if (op->code == OP_MBARRIER_INIT) (*(int *)ctx)++;
    if (op->code == OP_WARP_ROLES) *(int *)ctx = 100;
    return true;
}

static bool collect_copies(IrOp *op, void *ctx) {
    if (op->code == OP_COPY_TMA) vec_push((VEC(IrOp *) *)ctx, op);
    return true;
}

static void add_key(Buffer *buf, IrValue *v) {
    for (uint32_t i = 0; i < buf->nkeys; i++)
        if (buf->keys[i] == v) return;
    if (buf->nkeys == MAX_KEYS) buf->ok = false;
    else buf->keys[buf->nkeys++] = v;
}

/* Follows v's backward slice below the top level into buf's keys: pure ops without regions, the
 * induction variables of the loops around (their bounds are keys too); anything else (a carried
 * value, a load) clears buf->ok. */
static void slice_to_keys(const IrFunction *f, Buffer *buf, IrValue *v, int depth) {
    if (!buf->ok) return;
    if (depth > 64) {
        buf->ok = false;
        return;
    }
    if (is_top(f, v)) {
        add_key(buf, v);
        return;
    }
    if (!v->def) {
        IrOp *owner = v->region->parent_op;
        if (!owner || owner->code != OP_FOR || v->index != 0) {
            buf->ok = false;
            return;
        }
        for (uint32_t i = 0; i < 3; i++) slice_to_keys(f, buf, owner->operands[i], depth + 1);
        return;
    }
    if (ir_op_effect(v->def->code) != EFFECT_PURE || v->def->nregions || v->def->code == OP_CLUSTER_SIZE) {
        buf->ok = false;
        return;
    }
    for (uint32_t i = 0; i < v->def->noperands; i++) slice_to_keys(f, buf, v->def->operands[i], depth + 1);
}

/* The ops around a copy up to the top level: an if's condition and a for's bounds decide whether
 * (and with which induction variable) the copy is issued. */
static void enclosing_to_keys(const IrFunction *f, Buffer *buf, const IrOp *copy) {
    for (IrRegion *r = copy->parent; r && r != f->body; r = r->parent_op ? r->parent_op->parent : NULL) {
        IrOp *owner = r->parent_op;
        if (!owner) break;
        if (owner->code == OP_IF) slice_to_keys(f, buf, owner->operands[0], 0);
        else if (owner->code == OP_FOR)
            for (uint32_t i = 0; i < 3; i++) slice_to_keys(f, buf, owner->operands[i], 0);
        else buf->ok = false;
    }
}

/* Whether v's slice reads block_id axis 0 (or anything but pure ops, which peer_value refuses). */
static bool reads_block_id(const IrValue *v, int depth) {
    const IrOp *def = v->def;
    if (!def) return false;
    if (depth > 256 || ir_op_effect(def->code) != EFFECT_PURE || def->nregions) return true;
    if (def->code == OP_BLOCK_ID) return def->ints[0] == 0;
    for (uint32_t i = 0; i < def->noperands; i++)
        if (reads_block_id(def->operands[i], depth + 1)) return true;
    return false;
}

/* The peer's value of a top-level v: a clone of its slice with block_id axis 0 replaced by the
 * peer's, or v itself when the slice does not read it. Built before s->b's insertion point. */
static IrValue *peer_value(ClusterState *s, IrValue *v, int depth) {
    if (!s->ok) return v;
    if (v->id < s->nclone && s->clone[v->id]) return s->clone[v->id];
    IrValue *out = v;
    IrOp *def = v->def;
    if (!def) {
        out = v; /* a parameter: the same in every block */
    } else if (depth > 256 || ir_op_effect(def->code) != EFFECT_PURE || def->nregions || def->nresults != 1) {
        s->ok = false;
    } else if (def->code == OP_BLOCK_ID && def->ints[0] == 0) {
        if (!s->peer) {
            IrOp *id = ir_build(&s->b, OP_BLOCK_ID, NULL, 0, &v->type, 1);
            id->ints[0] = 0, id->nints = 1;
            IrValue *one = ir_const_int(&s->b, v->type, 1);
            s->peer = ir_binary(&s->b, OP_XOR, id->results[0], one);
        }
        out = s->peer;
    } else {
        IrValue *ops[8];
        bool same = true;
        if (def->noperands > 8) s->ok = false;
        for (uint32_t i = 0; s->ok && i < def->noperands; i++) {
            ops[i] = peer_value(s, def->operands[i], depth + 1);
            same = same && ops[i] == def->operands[i];
        }
        if (s->ok && !same) {
            IrOp *c = ir_build(&s->b, def->code, ops, def->noperands, &v->type, 1);
            memcpy(c->ints, def->ints, sizeof c->ints);
            c->nints = def->nints;
            c->value = def->value;
            out = c->results[0];
        }
    }
    if (v->id >= s->nclone) {
        uint32_t n = s->nclone ? s->nclone : 64;
        while (n <= v->id) n *= 2;
        s->clone = xrealloc(s->clone, n * sizeof *s->clone);
        memset(s->clone + s->nclone, 0, (n - s->nclone) * sizeof *s->clone);
        s->nclone = n;
    }
    s->clone[v->id] = out;
    return out;
}

/* The top-level op that holds op (op itself at the top level). */
static IrOp *top_op(const IrFunction *f, IrOp *op) {
    while (op->parent != f->body) op = op->parent->parent_op;
    return op;
}

/* copy with the flag appended and `multicast 2` set, in place of copy. */
static void make_multicast(IrFunction *f, IrOp *copy, IrValue *flag) {
    IrBuilder b = {.module = f->module, .function = f};
    ir_builder_before(&b, copy);
    b.loc = copy->loc;
    IrValue *ops[MAX_COPY_OPERANDS];
    uint32_t n = copy->noperands;
    assert(n < MAX_COPY_OPERANDS);
    memcpy(ops, copy->operands, n * sizeof *ops);
    ops[n] = flag;
    IrOp *mc = ir_build(&b, OP_COPY_TMA, ops, n + 1, NULL, 0);
    mc->ints[0] = CLUSTER_BLOCKS, mc->nints = 1;
    ir_op_remove(copy);
}

/* if flag { cluster_barrier } else { barrier } in place of the barrier op. */
static void barrier_to_cluster(IrFunction *f, IrOp *barrier, IrValue *flag) {
    IrBuilder b = {.module = f->module, .function = f};
    ir_builder_before(&b, barrier);
    b.loc = barrier->loc;
    IrOp *when = ir_build(&b, OP_IF, &flag, 1, NULL, 0);
    IrBuilder t = {.module = f->module, .function = f, .loc = barrier->loc};
    ir_builder_at_end(&t, ir_op_add_region(when));
    ir_build(&t, OP_CLUSTER_BARRIER, NULL, 0, NULL, 0);
    ir_build(&t, OP_YIELD, NULL, 0, NULL, 0);
    ir_builder_at_end(&t, ir_op_add_region(when));
    ir_build(&t, OP_BARRIER, NULL, 0, NULL, 0);
    ir_build(&t, OP_YIELD, NULL, 0, NULL, 0);
    ir_op_remove(barrier);
}

/* Whether copy stands where stages puts a ring's copies: in an if at the top level (the prologue),
 * or in an if directly in a top-level loop whose body has a barrier of its own before the refill
 * (the one this pass makes wait for the peer too). A ring in a nested loop is left alone. */
static bool ring_shaped(const IrFunction *f, const IrOp *copy) {
    IrOp *when = copy->parent->parent_op;
    if (!when || when->code != OP_IF) return false;
    if (when->parent == f->body) return true;
    IrOp *loop = when->parent->parent_op;
    if (!loop || loop->code != OP_FOR || loop->parent != f->body) return false;
    for (const IrOp *o = loop->regions[0]->first; o && o != when; o = o->next)
        if (o->code == OP_BARRIER) return true;
    return false;
}

static bool is_copy(IrOp *op, void *ctx) {
    (void)ctx;
    return op->code != OP_COPY_TMA; /* stops the walk at the first */
}

static bool holds_copy(IrOp *loop) { return !ir_walk(loop->regions[0], is_copy, NULL); }

/* if flag { <what add builds> } else { } before op; returns the builder in the then region (at its
 * yield) so that the caller adds ops there. */
static IrBuilder when_flag(IrFunction *f, IrOp *op, IrValue *flag) {
    IrBuilder b = {.module = f->module, .function = f, .loc = op->loc};
    ir_builder_before(&b, op);
    IrOp *when = ir_build(&b, OP_IF, &flag, 1, NULL, 0);
    IrBuilder t = {.module = f->module, .function = f, .loc = op->loc};
    ir_builder_at_end(&t, ir_op_add_region(when));
    IrOp *yield = ir_build(&t, OP_YIELD, NULL, 0, NULL, 0);
    IrBuilder e = t;
    ir_builder_at_end(&e, ir_op_add_region(when));
    ir_build(&e, OP_YIELD, NULL, 0, NULL, 0);
    ir_builder_before(&t, yield);
    return t;
}

/* The ring loop's refill, released through empty mbarriers (as CUTLASS's multicast pipelines do)
 * in place of a cluster barrier in every iteration: the loop (a top-level for that holds copies)
 * must have exactly one barrier, then an if holding the refill's copies, all into one stage value
 * defined in the loop before the barrier. */
typedef struct Refill {
    IrOp *loop, *barrier, *when;
    IrValue *stage;
} Refill;

static bool find_refill(IrFunction *f, Refill *r) {
    *r = (Refill){0};
    for (IrOp *op = f->body->first; op; op = op->next) {
        if (op->code != OP_FOR || !holds_copy(op)) continue;
        if (r->loop) return false;
        r->loop = op;
    }
    if (!r->loop) return false;
    for (IrOp *in = r->loop->regions[0]->first; in; in = in->next) {
        if (in->code == OP_BARRIER) {
            if (r->barrier) return false;
            r->barrier = in;
        } else if (in->code == OP_IF && holds_copy(in)) {
            if (r->when || !r->barrier || in->nregions != 2) return false;
            r->when = in;
        }
    }
    if (!r->when) return false;
    for (IrOp *c = r->when->regions[0]->first; c; c = c->next) {
        if (c->code == OP_IF || c->code == OP_FOR) return false;
        if (c->code != OP_COPY_TMA) continue;
        IrValue *stage = c->operands[3 + c->operands[0]->type->rank];
        if (r->stage && r->stage != stage) return false;
        r->stage = stage;
    }
    if (!r->stage || !r->stage->def || r->stage->def->parent != r->loop->regions[0]) return false;
    for (const IrOp *o = r->stage->def; o; o = o->next)
        if (o == r->barrier) return true;
    return false;
}

/* The refill of r released through a ring of empty mbarriers (count: one arrival of each block of
 * the cluster), made after the ring's init: after the loop's barrier (each block's last use of the
 * stage the refill fills), `if any { mbarrier_arrive %empty, %stage, cluster 2 }` (on this block's
 * mbarrier of the stage and the peer's); before the refill's copies, `if any { mbarrier_wait
 * %empty, %stage, parity }` (both blocks have released it). Each iteration releases one stage, in
 * turn, so the phase of the stage's mbarrier that iteration j completes is j / S (S stages). */
static void release_by_mbarriers(IrFunction *f, const Refill *r, IrOp *init, IrValue *any, IrValue **empty_out) {
    IrValue *bars = init->operands[0];
    IrBuilder b = {.module = f->module, .function = f, .loc = init->loc};
    ir_builder_before(&b, init);
    const IrType *rt = bars->type;
    IrOp *alloc = ir_build(&b, OP_SHARED_ALLOC, NULL, 0, &rt, 1);
    alloc->ints[0] = 0, alloc->ints[1] = 1, alloc->nints = 2;
    IrValue *empty = alloc->results[0];
    *empty_out = empty;
    ir_builder_before(&b, init->next ? init->next : init);
    if (!init->next) ir_builder_at_end(&b, f->body);
    IrOp *einit = ir_build(&b, OP_MBARRIER_INIT, &empty, 1, NULL, 0);
    einit->ints[0] = CLUSTER_BLOCKS, einit->nints = 1;

    IrBuilder t = when_flag(f, r->barrier->next, any);
    IrValue *ops[3] = {empty, r->stage};
    IrOp *arrive = ir_build(&t, OP_MBARRIER_ARRIVE, ops, 2, NULL, 0);
    arrive->ints[0] = CLUSTER_BLOCKS, arrive->nints = 1;

    IrOp *first = r->when->regions[0]->first;
    t = when_flag(f, first, any);
    t.loc = r->loop->loc;
    const IrType *i32 = ir_scalar_type(f->module, elem_i32());
    IrValue *iv = r->loop->regions[0]->args[0];
    IrValue *j = ir_binary(&t, OP_DIV, ir_binary(&t, OP_SUB, iv, r->loop->operands[0]), r->loop->operands[2]);
    IrValue *phase = ir_binary(&t, OP_DIV, j, ir_const_int(&t, i32, bars->type->shape[0]));
    ops[2] = ir_binary(&t, OP_AND, phase, ir_const_int(&t, i32, 1));
    ir_build(&t, OP_MBARRIER_WAIT, ops, 3, NULL, 0);
}

/* Whether kernel f has the one ring this pass handles; its mbarrier_init in *init. */
static bool one_ring(IrFunction *f, IrOp **init) {
    int inits = 0;
    ir_walk(f->body, count_inits, &inits);
    if (inits != 1) return false;
    for (IrOp *op = f->body->first; op; op = op->next)
        if (op->code == OP_MBARRIER_INIT) *init = op;
    return *init != NULL;
}

/* The pass on one kernel: finds its ring (one mbarrier_init at the top level, every copy_tma on
 * it, shaped as stages builds it), groups the copies by the buffer they fill and follows each
 * group's origins, guards and loop bounds to its top-level keys; builds, before the first op that
 * holds a copy, cluster_size == 2 and each group's comparison of its keys with the peer's; then
 * (when at least one group qualifies) makes the group's copies multicasts under its flag, the
 * ring loop's barriers cluster barriers under the flags' or, and adds the cluster barriers after
 * mbarrier_init and mbarrier_inval. False (the kernel unchanged) when nothing qualifies. */
static bool cluster_kernel(IrFunction *f) {
    IrOp *init = NULL;
    if (!f->is_kernel || !f->body || f->cluster || !one_ring(f, &init)) return false;
    IrValue *bars = init->operands[0];
    VEC(IrOp *) copies = {0};
    ir_walk(f->body, collect_copies, &copies);
    Buffer bufs[MAX_BUFFERS];
    uint32_t nbufs = 0;
    bool ok = copies.len > 0;
    for (size_t i = 0; ok && i < copies.len; i++) {
        IrOp *c = copies.data[i];
        int rank = c->operands[0]->type->rank;
        IrValue *dst = c->operands[1 + rank];
        if (ir_copy_tma_multicast(c) || c->operands[2 + rank] != bars || !dst->def || dst->def->code != OP_SHARED_VIEW ||
            !is_top(f, dst->def->operands[0])) {
            ok = false;
            break;
        }
        IrValue *alloc = dst->def->operands[0];
        uint32_t k = 0;
        while (k < nbufs && bufs[k].alloc != alloc) k++;
        if (k == nbufs) {
            if (nbufs == MAX_BUFFERS) {
                ok = false;
                break;
            }
            bufs[nbufs++] = (Buffer){.alloc = alloc, .ok = true};
        }
        if (!ring_shaped(f, c)) {
            ok = false;
            break;
        }
        vec_push(&bufs[k].copies, c);
        for (int d = 0; d < rank; d++) slice_to_keys(f, &bufs[k], c->operands[1 + d], 0);
        slice_to_keys(f, &bufs[k], c->operands[3 + rank], 0);
        enclosing_to_keys(f, &bufs[k], c);
    }
    vec_free(&copies);
    /* the flags go before the first top-level op that holds a copy (every key is defined above it) */
    IrOp *first = NULL;
    for (uint32_t k = 0; ok && k < nbufs; k++)
        for (size_t i = 0; i < bufs[k].copies.len; i++) {
            IrOp *t = top_op(f, bufs[k].copies.data[i]);
            bool earlier = !first;
            for (IrOp *o = t; !earlier && o; o = o->next) earlier = o == first;
            if (earlier) first = t;
        }
    /* a key that differs between blocks must be defined above that op, where its peer's value is
       computed (one defined between the prologue and the loop is not: that buffer is left alone) */
    for (uint32_t k = 0; ok && k < nbufs; k++)
        for (uint32_t j = 0; bufs[k].ok && j < bufs[k].nkeys; j++) {
            if (!reads_block_id(bufs[k].keys[j], 0)) continue;
            for (IrOp *o = first; o && bufs[k].keys[j]->def; o = o->next)
                if (o == bufs[k].keys[j]->def) bufs[k].ok = false;
        }
    ClusterState s = {.f = f, .ok = true, .b = {.module = f->module, .function = f}};
    IrValue *flags[MAX_BUFFERS] = {0}, *any = NULL;
    IrOp *before_flags = ok ? first->prev : NULL; /* what is built goes between it and first */
    if (ok) {
        ir_builder_before(&s.b, first);
        s.b.loc = first->loc;
        const IrType *i32 = ir_scalar_type(f->module, elem_i32());
        IrValue *size = ir_build(&s.b, OP_CLUSTER_SIZE, NULL, 0, &i32, 1)->results[0];
        IrValue *in_cluster = ir_cmp(&s.b, CMP_EQ, size, ir_const_int(&s.b, i32, CLUSTER_BLOCKS));
        for (uint32_t k = 0; k < nbufs; k++) {
            if (!bufs[k].ok) continue;
            IrValue *flag = in_cluster;
            s.ok = true;
            for (uint32_t j = 0; s.ok && j < bufs[k].nkeys; j++) {
                IrValue *key = bufs[k].keys[j], *peer = peer_value(&s, key, 0);
                if (s.ok && peer != key) flag = ir_binary(&s.b, OP_AND, flag, ir_cmp(&s.b, CMP_EQ, key, peer));
            }
            if (!s.ok) continue; /* (what it built is dead: cleanup removes it) */
            flags[k] = flag;
            any = any ? ir_binary(&s.b, OP_OR, any, flag) : flag;
        }
    }
    free(s.clone);
    if (ok && !any) /* no buffer qualifies: take back what was built (cluster_size needs `cluster N`) */
        for (IrOp *o = before_flags ? before_flags->next : f->body->first, *next; o != first; o = next) {
            next = o->next;
            ir_op_remove(o);
        }
    if (any) f->cluster = CLUSTER_BLOCKS;
    for (uint32_t k = 0; k < nbufs; k++) {
        for (size_t i = 0; flags[k] && i < bufs[k].copies.len; i++) make_multicast(f, bufs[k].copies.data[i], flags[k]);
        vec_free(&bufs[k].copies);
    }
    if (!any) return false;
    /* the refill waits for the peer's release of its stage: through empty mbarriers where the loop
       has the shape for them; else the barriers of the ring's loop (the one before the refill
       among them) wait for the peer too. Its bounds are keys, so both blocks run it equally often
       (other loops are left alone) */
    Refill refill;
    IrValue *empty = NULL;
    if (find_refill(f, &refill)) release_by_mbarriers(f, &refill, init, any, &empty);
    for (IrOp *op = f->body->first; !empty && op; op = op->next) {
        if (op->code != OP_FOR || !holds_copy(op)) continue;
        IrOp *next;
        for (IrOp *in = op->regions[0]->first; in; in = next) {
            next = in->next;
            if (in->code == OP_BARRIER) barrier_to_cluster(f, in, any);
        }
    }
    IrBuilder b = {.module = f->module, .function = f, .loc = init->loc};
    IrOp *after = empty ? init->next->next : init->next; /* (after the empty ring's init) */
    if (after && after->code == OP_BARRIER) {
        ir_builder_before(&b, after);
        ir_build(&b, OP_CLUSTER_BARRIER, NULL, 0, NULL, 0);
        ir_op_remove(after);
    } else {
        if (after) ir_builder_before(&b, after);
        else ir_builder_at_end(&b, f->body);
        ir_build(&b, OP_CLUSTER_BARRIER, NULL, 0, NULL, 0);
    }
    for (IrOp *op = f->body->first; op; op = op->next)
        if (op->code == OP_MBARRIER_INVAL && op->operands[0] == bars) {
            b.loc = op->loc;
            if (op->next) ir_builder_before(&b, op->next);
            else ir_builder_at_end(&b, f->body);
            ir_build(&b, OP_CLUSTER_BARRIER, NULL, 0, NULL, 0);
            /* the empty ring ends after it: the peer's arrivals on it are in */
            if (empty) ir_build(&b, OP_MBARRIER_INVAL, &empty, 1, NULL, 0);
            break;
        }
    return true;
}

bool pass_cluster_target(IrModule *m, const Target *t, DiagList *d) {
    (void)d;
    if (!target_has_tma(t) || !t->cluster) return false;
    bool changed = false;
    for (IrFunction *f = m->functions; f; f = f->next) changed |= cluster_kernel(f);
    return changed;
}
