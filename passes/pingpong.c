/*
 * pingpong.c: the ping-pong schedule of warp roles for a persistent GEMM (part of the stages pass,
 * sm_90a with TMA; asked for with `pipeline(N, specialize = 2)`, lang/SPEC.md 4.4).
 *
 * A kernel of 4 warps whose body ends with a loop over output tiles holding the kernel's one
 * pipelined loop, a TMA ring whose one wgmma dot runs asynchronously into a carried accumulator
 * (stages_async_dot), with pure index math before it and an epilogue after it:
 *
 *     for t = lo to hi step st {  pure ops;  acc = for k = klo to khi step kst pipeline(S, specialize 2) {...};
 *                                 epilogue }
 *
 * gets three warp roles of 4 warps each, as CUTLASS's KernelTmaWarpSpecializedPingpong: a producer
 * (40 registers) that issues the TMA copies of every (tile, k slice) of the block in order into
 * one ring of S stages, and two consumers (232 registers each: 128 * 40 + 256 * 232 = 64512 of the
 * 65536), consumer c computing the block's tiles c, c + 2, c + 4, ... whole, each with its own
 * accumulator in the kernel's 4-warp layouts, so that one consumer's epilogue runs during the
 * other's main loop:
 *
 *     bufs...; full, empty = shared<i64>[S]; order = shared<i64>[2]
 *     mbarrier_init full; mbarrier_init empty, count 128; mbarrier_init order; barrier
 *     warp_roles role(warps 4, regs 40) {
 *         for t = lo to hi step st { g = (t - lo) / st;  n_k = trip count of the k loop
 *             for k ... { i = g * n_k + (k - klo) / kst;  s = i % S
 *                         mbarrier_wait empty, s, ((i / S) & 1) ^ 1;  copy_tma ..., full, s;
 *                         mbarrier_arrive full, s } }
 *     } role(warps 4, regs 232) {                               (consumer 0; consumer 1 the same with c = 1)
 *         c = 0
 *         for t = lo + c * st to hi step 2 * st { g = (t - lo) / st; pure ops
 *             mbarrier_wait order, c, ((g / 2) & 1) ^ (1 - c)     the other consumer's main loop is done
 *             acc = for k ... { i = g * n_k + (k - klo) / kst;  mbarrier_wait full, i % S, (i / S) & 1
 *                               dot ..., async 1; dot_wait 1; if i > g * n_k { mbarrier_arrive empty, (i - 1) % S, threads 128 } }
 *             acc = dot_wait acc, 0;  if n_k > 0 { mbarrier_arrive empty, (g * n_k + n_k - 1) % S, threads 128 }
 *             mbarrier_arrive order, 1 - c
 *             epilogue }
 *     } role(warps 4, regs 232) { ... }
 *
 * The ring counter i runs across tiles (the block's g-th tile uses ring iterations g * n_k ..
 * g * n_k + n_k - 1), so n_k must be the same for every tile: the k loop's bounds may not depend
 * on the tile loop and its step is a positive constant. Every ring iteration belongs to one
 * consumer, which alone waits on its stage's `full` phase and releases it (its 128 threads arrive
 * each on its own, `threads 128`, as the cooperative roles of stages.c release theirs).
 *
 * The ordering mbarriers make the consumers' main loops alternate (consumer 0's first passes at
 * once on the fresh barrier, as the producer's first waits do; after that each main loop waits
 * for the other consumer's previous one). This is what CUTLASS's ordered math barrier does, and
 * here it is also what makes the parity waits exact: a consumer never waits on a `full` stage
 * whose previous phase has not completed yet (a wait for a parity returns at once while the
 * phase before is still in progress), since every earlier ring iteration was consumed before its
 * main loop starts. They are mbarriers rather than named barriers (CUTLASS's bar.sync id, 256) so
 * that the VM checks them as it checks the ring: blocking waits, a deadlock named by barrier.
 *
 * The second consumer is a clone of the first with c = 1 (the roles stay plain regions: the VM,
 * printer, parser, verifier and code generator see three roles). Anything else keeps the plain
 * ring or the cooperative roles, which is always correct.
 */
#include "stages.h"

/* Whether region r is body or inside it. */
static bool within(const IrRegion *r, const IrRegion *body) {
    for (; r; r = r->parent_op ? r->parent_op->parent : NULL)
        if (r == body) return true;
    return false;
}

/* Whether v is the same on every iteration of loop `outer`: made outside its body, or by a pure
 * op without regions over such values there. */
static bool invariant_in(const IrValue *v, const IrOp *outer, int depth) {
    const IrRegion *body = outer->regions[0];
    if (!v->def) return !within(v->region, body);
    const IrOp *d = v->def;
    if (!within(d->parent, body)) return true;
    if (depth > 32 || !(ir_op_info[d->code].flags & F_PURE) || d->nregions) return false;
    for (uint32_t i = 0; i < d->noperands; i++)
        if (!invariant_in(d->operands[i], outer, depth + 1)) return false;
    return true;
}

/* The tile loop around L when the ping-pong schedule is asked for and fits (the top of the file),
 * else NULL. */
static IrOp *tile_loop(Loop *L, const Target *t, int nloops) {
    IrFunction *f = L->body->function;
    IrOp *inner = L->op;
    if (inner->nints < 2 || inner->ints[1] != 2 || t->no_warp_roles || !target_has_tma(t) || nloops != 1 ||
        L->ntma != L->nstaged || f->num_warps != 4 || !stages_async_dot(L))
        return NULL;
    IrOp *outer = inner->parent->parent_op;
    if (!outer || outer->code != OP_FOR || outer->parent != f->body || outer->next || outer->nresults ||
        outer->noperands != 3)
        return NULL;
    const IrOp *step = inner->operands[2]->def;
    if (!step || step->code != OP_CONST || step->value.is_float || step->value.i <= 0) return NULL;
    for (int k = 0; k < 3; k++)
        if (!invariant_in(inner->operands[k], outer, 0)) return NULL;
    for (const IrOp *o = outer->regions[0]->first; o != inner; o = o->next)
        if (!(ir_op_info[o->code].flags & F_PURE) || o->nregions) return NULL;
    RoleCheck c = {.loop = outer, .ring = inner, .body = f->body};
    return stages_before_fits(f, outer) && stages_roles_fit(&c) ? outer : NULL;
}

static IrValue *as_i32(IrBuilder *b, IrValue *v) {
    return elem_eq(v->type->elem, elem_i32()) ? v : ir_op1(b, OP_CAST, ir_scalar_type(b->module, elem_i32()), v);
}

/* (iv - lo) / step as an i32. */
static IrValue *trip_index(IrBuilder *b, IrValue *iv, IrValue *lo, IrValue *step) {
    return as_i32(b, ir_binary(b, OP_DIV, ir_binary(b, OP_SUB, iv, lo), step));
}

/* The first ring iteration of the block's tile whose induction variable is t (tile loop from lo by
 * step): g * n_k, g = (t - lo) / step, n_k = max((khi - klo + kstep - 1) / kstep, 0) the k loop's
 * trip count (kstep > 0); all as i32, at b. Sets *g and *nk. */
static IrValue *tile_base(IrBuilder *b, IrValue *t, IrValue *lo, IrValue *step, IrValue *const k[3], IrValue **g,
                          IrValue **nk) {
    *g = trip_index(b, t, lo, step);
    IrValue *span = ir_binary(b, OP_SUB, ir_binary(b, OP_ADD, k[1], k[2]), ir_binary(b, OP_ADD, k[0], ir_const_int(b, k[2]->type, 1)));
    IrValue *n = ir_binary(b, OP_MAX, ir_binary(b, OP_DIV, span, k[2]), ir_const_int(b, k[2]->type, 0));
    *nk = as_i32(b, n);
    return ir_binary(b, OP_MUL, *g, *nk);
}

static IrOp *arrive(IrBuilder *b, IrValue *bars, IrValue *stage) {
    IrValue *ops[2] = {bars, stage};
    return ir_build(b, OP_MBARRIER_ARRIVE, ops, 2, NULL, 0);
}

static void wait_phase(IrBuilder *b, IrValue *bars, IrValue *stage, IrValue *parity) {
    IrValue *ops[3] = {bars, stage, parity};
    ir_build(b, OP_MBARRIER_WAIT, ops, 3, NULL, 0);
}

/* The producer role: the tile loop again, with its pure ops, and a k loop that issues each ring
 * iteration's copies once the consumers have released its stage. */
static void build_producer(Loop *L, IrOp *outer, IrRegion *role, IrValue *full, IrValue *empty) {
    IrOp *inner = L->op;
    IrRegion *tbody = outer->regions[0];
    ValueMap map;
    value_map_init(&map, L->body->function);
    IrBuilder b = {0};
    ir_builder_at_end(&b, role);
    b.loc = inner->loc;
    IrOp *pt = ir_build(&b, OP_FOR, outer->operands, 3, NULL, 0);
    IrRegion *pbody = ir_op_add_region(pt);
    value_map_set(&map, tbody->args[0], ir_region_add_arg(pbody, tbody->args[0]->type, "pt"));
    IrBuilder in = b;
    ir_builder_at_end(&in, pbody);
    for (const IrOp *o = tbody->first; o != inner; o = o->next) clone_op(&in, o, &map);
    IrValue *k[3], *g, *nk;
    for (int d = 0; d < 3; d++) k[d] = value_map_get(&map, inner->operands[d]);
    IrValue *base = tile_base(&in, value_map_get(&map, tbody->args[0]), outer->operands[0], outer->operands[2], k, &g, &nk);
    IrOp *pk = ir_build(&in, OP_FOR, k, 3, NULL, 0);
    IrRegion *kbody = ir_op_add_region(pk);
    IrValue *kv = ir_region_add_arg(kbody, L->body->args[0]->type, "pk");
    value_map_set(&map, L->body->args[0], kv);
    IrBuilder kb = in;
    ir_builder_at_end(&kb, kbody);
    IrValue *i = ir_binary(&kb, OP_ADD, base, trip_index(&kb, kv, k[0], k[2]));
    IrValue *stage = ir_binary(&kb, OP_REM, i, const_i32(&kb, L->stages));
    IrValue *parity = ir_binary(&kb, OP_XOR, stages_ring_parity(&kb, L, i), const_i32(&kb, 1));
    wait_phase(&kb, empty, stage, parity);
    for (int s = 0; s < L->nslice; s++) clone_op(&kb, L->slice[s], &map);
    for (int s = 0; s < L->nstaged; s++) stages_copy_tma(L, s, &kb, &map, full, stage);
    arrive(&kb, full, stage);
    ir_build(&kb, OP_YIELD, NULL, 0, NULL, 0);
    ir_build(&in, OP_YIELD, NULL, 0, NULL, 0);
    value_map_free(&map);
}

/* Consumer 0, in place: the tile loop (moved into role) takes every other tile; its k loop waits
 * for each stage, reads it in place and releases it; the main loop waits for its turn and hands the
 * turn on. Returns c, the copy index (the constant 0 at the role's start). */
static IrValue *build_consumer(Loop *L, IrOp *outer, IrValue *full, IrValue *empty, IrValue *order) {
    IrOp *inner = L->op;
    IrRegion *tbody = outer->regions[0];
    IrValue *lo = outer->operands[0], *step = outer->operands[2];
    IrBuilder b = {0};
    ir_builder_before(&b, outer);
    b.loc = outer->loc;
    IrValue *c = ir_const_int(&b, lo->type, 0);
    ir_set_operand(outer, 0, ir_binary(&b, OP_ADD, lo, ir_binary(&b, OP_MUL, step, c)));
    ir_set_operand(outer, 2, ir_binary(&b, OP_MUL, step, ir_const_int(&b, step->type, 2)));

    /* before the k loop: the tile's ring base and the turn of this consumer's main loop */
    IrBuilder at = b;
    ir_builder_before(&at, inner);
    at.loc = inner->loc;
    IrValue *k[3] = {inner->operands[0], inner->operands[1], inner->operands[2]}, *g, *nk;
    IrValue *base = tile_base(&at, tbody->args[0], lo, step, k, &g, &nk);
    IrValue *ci = as_i32(&at, c), *one = const_i32(&at, 1);
    IrValue *turn = ir_binary(&at, OP_AND, ir_binary(&at, OP_DIV, g, const_i32(&at, 2)), one);
    wait_phase(&at, order, ci, ir_binary(&at, OP_XOR, turn, ir_binary(&at, OP_SUB, one, ci)));

    /* the k loop: wait for the stage, read it in place, release the previous iteration's */
    IrBuilder cb = at;
    ir_builder_before(&cb, L->body->first);
    IrValue *ii = trip_index(&cb, L->body->args[0], k[0], k[2]);
    IrValue *i = ir_binary(&cb, OP_ADD, base, ii);
    IrValue *read = ir_binary(&cb, OP_REM, i, const_i32(&cb, L->stages));
    wait_phase(&cb, full, read, stages_ring_parity(&cb, L, i));
    IrOp *dot = stages_async_dot(L);
    stages_read_in_place(L, &cb, read);
    IrBuilder after = cb;
    ir_builder_before(&after, dot->next);
    stages_make_async(L, dot, &after);
    IrBuilder then = stages_if_then(&after, ir_cmp(&after, CMP_GT, ii, const_i32(&after, 0)));
    stages_release_by_threads(arrive(&then, empty, ir_binary(&then, OP_REM, ir_binary(&then, OP_ADD, i, const_i32(&then, L->stages - 1)),
                                                             const_i32(&then, L->stages))), 4);
    ir_build(&then, OP_YIELD, NULL, 0, NULL, 0);

    /* after it: the last dot complete, the tile's last stage released (the ring goes on into the
     * next tile), and the turn to the other consumer */
    IrBuilder end = at;
    ir_builder_before(&end, inner->next);
    stages_complete_after_loop(L, &end);
    IrBuilder last = stages_if_then(&end, ir_cmp(&end, CMP_GT, nk, const_i32(&end, 0)));
    IrValue *final = ir_binary(&last, OP_SUB, ir_binary(&last, OP_ADD, base, nk), const_i32(&last, 1));
    stages_release_by_threads(arrive(&last, empty, ir_binary(&last, OP_REM, final, const_i32(&last, L->stages))), 4);
    ir_build(&last, OP_YIELD, NULL, 0, NULL, 0);
    arrive(&end, order, ir_binary(&end, OP_SUB, one, ci));
    inner->nints = 0; /* pipelined by the roles now */
    return c;
}

bool stages_pingpong(Loop *L, const Target *t, int nloops) {
    IrOp *outer = tile_loop(L, t, nloops);
    if (!outer) return false;
    IrFunction *fn = L->body->function;
    IrBuilder b = {0};
    ir_builder_before(&b, outer);
    b.loc = L->op->loc;
    stages_alloc_rings(L, &b);
    IrValue *full = stages_mbarrier_ring(&b, L->stages), *empty = stages_mbarrier_ring(&b, L->stages);
    IrValue *order = stages_mbarrier_ring(&b, 2);
    L->mbarriers = full;
    ir_build(&b, OP_MBARRIER_INIT, &full, 1, NULL, 0);
    IrOp *empty_init = ir_build(&b, OP_MBARRIER_INIT, &empty, 1, NULL, 0);
    empty_init->ints[0] = 128, empty_init->nints = 1; /* the owning consumer's threads, each on its own */
    ir_build(&b, OP_MBARRIER_INIT, &order, 1, NULL, 0);
    ir_build(&b, OP_BARRIER, NULL, 0, NULL, 0);

    IrBuilder end = b;
    ir_builder_at_end(&end, fn->body);
    IrOp *roles = ir_build(&end, OP_WARP_ROLES, NULL, 0, NULL, 0);
    int64_t ints[6] = {4, PRODUCER_REGS, 4, CONSUMER_REGS, 4, CONSUMER_REGS};
    for (int k = 0; k < 6; k++) roles->ints[k] = ints[k];
    roles->nints = 6;
    IrRegion *producer = ir_op_add_region(roles), *first = ir_op_add_region(roles), *second = ir_op_add_region(roles);
    build_producer(L, outer, producer, full, empty);
    ir_op_remove(outer);
    ir_op_append(first, outer);
    IrValue *c = build_consumer(L, outer, full, empty, order);
    RoleCheck check = {.loop = outer, .ring = L->op, .roles = roles, .body = fn->body, .ok = true};
    stages_recompute_in_role(producer, &check);
    stages_recompute_in_role(first, &check);

    /* consumer 1: consumer 0 with c = 1 */
    ValueMap map;
    value_map_init(&map, fn);
    IrBuilder sb = b;
    ir_builder_at_end(&sb, second);
    value_map_set(&map, c, ir_const_int(&sb, c->type, 1));
    for (const IrOp *o = first->first; o; o = o->next)
        if (o != c->def) clone_op(&sb, o, &map);
    value_map_free(&map);
    fn->num_warps = 12;
    return true;
}
