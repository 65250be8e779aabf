/*
 * codegen_reduce.c: reductions, scans and dot in the GPU code generator.
 *
 * reduce follows the operand's layout L: each thread first combines its own slots that differ
 * only along the axis (L's local modes along it), then the lanes that differ along the axis
 * exchange partial results with shfl.sync.bfly, one xor step per lane bit of L's thread modes
 * along the axis, and when warps (or a thread mode that is not a power of two) also move along
 * the axis, one partial per group of them goes through the shared scratch buffer: a barrier,
 * each thread stores its partials, a barrier, and every thread combines the partials of its
 * elements in group order. The result is in layout_reduce(L, axis) squeezed, which is what
 * layout inference gives the result; another layout converts after. Accumulation keeps the
 * VM's precision (f32 for floats up to 32 bits, double for f64, wrapping integers); only the
 * order differs (a tree).
 *
 * scan goes through shared memory: one thread per line along the axis combines its elements in
 * order, in place (the VM's order, so its bits), and every thread reads its slots back. A dot that the layout pass put on tensor cores (its `mma` record, ir/mma.def)
 * runs there (codegen_mma.c); any other is the CUDA-core product: a and b go to shared
 * memory row-major, and each thread accumulates its slots of the register-tiled accumulator
 * layout (layout_dot_acc: a strided block of rows and columns per thread) over k, reading rows
 * of a and columns of b (loads of one k for the same row or column are shared between slots).
 */
#include "codegen.h"

#include <string.h>

#include "ir/mma.h"

/* The accumulation: f32 for floats up to 32 bits, double for f64, wrapping integers. */
static LLVMValueRef combine(Cg *g, IrReduce kind, ElemType e, LLVMValueRef acc, LLVMValueRef x) {
    if (e.kind == EK_FLOAT) {
        if (kind == RED_SUM) return LLVMBuildFAdd(g->b, acc, x, "");
        return cg_fminmax(g, kind == RED_MAX, acc, x);
    }
    return cg_binary(g, kind == RED_SUM ? OP_ADD : kind == RED_MAX ? OP_MAX : OP_MIN, 0, e, acc, x);
}

static LLVMValueRef identity(Cg *g, IrReduce kind, ElemType e) {
    IrConst c = {0};
    if (e.kind == EK_FLOAT) {
        c.is_float = true;
        c.f = kind == RED_SUM ? 0.0 : kind == RED_MAX ? -__builtin_inf() : __builtin_inf();
        return cg_const(g, e, c);
    }
    LLVMTypeRef t = cg_reg_type(g, e);
    if (kind == RED_SUM) return LLVMConstNull(t);
    bool max = kind == RED_MAX;
    if (e.kind != EK_INT) return max ? LLVMConstNull(t) : LLVMConstAllOnes(t);
    uint64_t min_bits = (uint64_t)1 << (e.bits - 1);
    return LLVMConstInt(t, max ? min_bits : min_bits - 1, 0);
}

/* A counted loop k = first .. count-1 with accumulators: begin returns the phis. */
typedef struct Loop {
    LLVMBasicBlockRef pre, header, body;
    LLVMValueRef k;
    LLVMValueRef *acc;
    uint32_t n;
} Loop;

static void loop_begin(Cg *g, Loop *l, int64_t first, LLVMValueRef *init, uint32_t n) {
    l->pre = LLVMGetInsertBlock(g->b);
    l->header = cg_block(g, "acc.loop");
    LLVMBuildBr(g->b, l->header);
    LLVMPositionBuilderAtEnd(g->b, l->header);
    l->k = LLVMBuildPhi(g->b, g->i64, "k");
    LLVMValueRef f = cg_i64(g, first);
    LLVMAddIncoming(l->k, &f, &l->pre, 1);
    l->n = n;
    l->acc = cg_calloc(g, n + 1, sizeof(LLVMValueRef));
    for (uint32_t i = 0; i < n; i++) {
        l->acc[i] = LLVMBuildPhi(g->b, LLVMTypeOf(init[i]), "");
        LLVMAddIncoming(l->acc[i], &init[i], &l->pre, 1);
    }
}

/* Closes the loop with the next accumulator values; the builder continues after it. */
static void loop_end(Cg *g, Loop *l, int64_t count, LLVMValueRef *next) {
    LLVMValueRef k1 = LLVMBuildAdd(g->b, l->k, cg_i64(g, 1), "");
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(g->b), exit = cg_block(g, "acc.done");
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, k1, cg_i64(g, count), ""), l->header, exit);
    LLVMAddIncoming(l->k, &k1, &latch, 1);
    for (uint32_t i = 0; i < l->n; i++) LLVMAddIncoming(l->acc[i], &next[i], &latch, 1);
    LLVMPositionBuilderAtEnd(g->b, exit);
    for (uint32_t i = 0; i < l->n; i++) l->acc[i] = next[i];
}

/* One butterfly step: v from the lane whose id differs by lane_mask. */
static LLVMValueRef shuffle_xor(Cg *g, LLVMValueRef v, int lane_mask) {
    LLVMTypeRef t = LLVMTypeOf(v);
    LLVMValueRef args[4] = {cg_i32(g, -1), NULL, cg_i32(g, lane_mask), cg_i32(g, 0x1f)};
    if (t == g->f32) {
        args[1] = v;
        return cg_call_intrinsic(g, "llvm.nvvm.shfl.sync.bfly.f32", NULL, 0, args, 4);
    }
    if (t == g->f64 || t == g->i64) {
        LLVMValueRef bits = t == g->f64 ? LLVMBuildBitCast(g->b, v, g->i64, "") : v;
        LLVMValueRef lo = LLVMBuildTrunc(g->b, bits, g->i32, "");
        LLVMValueRef hi = LLVMBuildTrunc(g->b, LLVMBuildLShr(g->b, bits, cg_i64(g, 32), ""), g->i32, "");
        args[1] = lo;
        lo = cg_call_intrinsic(g, "llvm.nvvm.shfl.sync.bfly.i32", NULL, 0, args, 4);
        args[1] = hi;
        hi = cg_call_intrinsic(g, "llvm.nvvm.shfl.sync.bfly.i32", NULL, 0, args, 4);
        LLVMValueRef r = LLVMBuildOr(g->b, LLVMBuildZExt(g->b, lo, g->i64, ""),
                                     LLVMBuildShl(g->b, LLVMBuildZExt(g->b, hi, g->i64, ""), cg_i64(g, 32), ""), "");
        return t == g->f64 ? LLVMBuildBitCast(g->b, r, g->f64, "") : r;
    }
    args[1] = t == g->i32 ? v : LLVMBuildZExt(g->b, v, g->i32, "");
    LLVMValueRef r = cg_call_intrinsic(g, "llvm.nvvm.shfl.sync.bfly.i32", NULL, 0, args, 4);
    return t == g->i32 ? r : LLVMBuildTrunc(g->b, r, t, "");
}

static bool is_pow2(int64_t x) { return x > 0 && (x & (x - 1)) == 0; }

/* Partials in shared memory keep the register type (i1 as i8). */
static LLVMTypeRef partial_type(Cg *g, LLVMTypeRef t) { return t == g->i1 ? g->i8 : t; }

bool cg_reduce(Cg *g, const IrOp *op) {
    const IrValue *x = op->operands[0], *res = op->results[0];
    const IrType *in = x->type, *rt = res->type;
    int64_t kind = op->ints[0], axis = op->ints[1];
    if (kind < RED_SUM || kind > RED_MIN || axis < 0 || axis >= in->rank)
        return cg_fail(g, op, false, "bad reduction kind or axis");
    ElemType e = in->elem;
    CgValue *a = cg_get(g, x);
    CgValue *r = cg_new_tile_for(g, res);
    if (in->shape[axis] == 0 || a->numel == 0 || a->numel == 1) {
        for (uint32_t j = 0; j < r->nslots; j++)
            r->slots[j] = a->numel == 1 ? a->slots[0] : identity(g, (IrReduce)kind, e);
        cg_set(g, res, r);
        return true;
    }
    const Layout *la = a->layout;
    const Layout *lred = layout_reduce(&g->arena, la, (int)axis);
    int rank = in->rank;
    /* 1. within the thread */
    uint32_t nred = (uint32_t)lred->local_size;
    LLVMValueRef *acc = cg_calloc(g, nred, sizeof(LLVMValueRef));
    int64_t *red_local = cg_calloc(g, (size_t)nred * IR_MAX_RANK, sizeof(int64_t));
    for (uint32_t k = 0; k < nred; k++) layout_map(lred, 0, k, red_local + (size_t)k * IR_MAX_RANK);
    for (uint32_t l = 0; l < a->nslots; l++) {
        int64_t c[IR_MAX_RANK];
        layout_map(la, 0, l, c);
        c[axis] = 0;
        uint32_t k = 0;
        while (k < nred && memcmp(red_local + (size_t)k * IR_MAX_RANK, c, sizeof(int64_t) * (size_t)rank) != 0) k++;
        if (k == nred) return cg_fail(g, op, false, "the reduced layout does not hold an element (a code generator bug)");
        acc[k] = acc[k] ? combine(g, (IrReduce)kind, e, acc[k], a->slots[l]) : a->slots[l];
    }
    for (uint32_t k = 0; k < nred; k++)
        if (!acc[k]) return cg_fail(g, op, false, "a reduced element has no input (a code generator bug)");
    /* 2. across lanes (butterflies), 3. across the rest through shared memory */
    LayoutThreadTerm terms[64];
    int nterms = layout_thread_terms(la, terms);
    int64_t groups = 1;
    LLVMValueRef group = cg_i64(g, 0);
    for (int i = 0; i < nterms; i++) {
        if (terms[i].dim != axis) continue;
        if (is_pow2(terms[i].radix) && is_pow2(terms[i].size) && terms[i].radix * terms[i].size <= 32) {
            for (int64_t bit = terms[i].radix; bit < terms[i].radix * terms[i].size; bit <<= 1)
                for (uint32_t k = 0; k < nred; k++)
                    acc[k] = combine(g, (IrReduce)kind, e, acc[k], shuffle_xor(g, acc[k], (int)bit));
            continue;
        }
        LLVMValueRef digit = LLVMBuildURem(g->b, LLVMBuildUDiv(g->b, g->tid, cg_i64(g, terms[i].radix), ""),
                                           cg_i64(g, terms[i].size), "");
        group = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, group, cg_i64(g, terms[i].size), ""), digit, "");
        groups *= terms[i].size;
    }
    if (groups > 1) {
        int64_t numel_red = layout_numel(lred);
        LLVMTypeRef pt = partial_type(g, LLVMTypeOf(acc[0]));
        uint64_t bytes = pt == g->f32 ? 4 : pt == g->f64 ? 8 : LLVMGetIntTypeWidth(pt) / 8;
        cg_need_scratch(g, (uint64_t)groups * (uint64_t)numel_red * bytes);
        cg_barrier(g);
        LLVMValueRef *offs = cg_calloc(g, nred, sizeof(LLVMValueRef));
        for (uint32_t k = 0; k < nred; k++) {
            LLVMValueRef coords[IR_MAX_RANK];
            cg_slot_coords(g, lred, k, coords);
            LLVMValueRef o = cg_i64(g, 0);
            int64_t s = 1;
            for (int d = rank - 1; d >= 0; d--) {
                if (lred->shape[d] != 1) o = LLVMBuildAdd(g->b, o, LLVMBuildMul(g->b, coords[d], cg_i64(g, s), ""), "");
                s *= lred->shape[d];
            }
            offs[k] = o;
            LLVMValueRef idx = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, group, cg_i64(g, numel_red), ""), o, "");
            LLVMValueRef v = pt == LLVMTypeOf(acc[k]) ? acc[k] : LLVMBuildZExt(g->b, acc[k], pt, "");
            LLVMValueRef ptr = LLVMBuildGEP2(g->b, pt, g->smem, &idx, 1, "");
            LLVMSetAlignment(LLVMBuildStore(g->b, v, ptr), (unsigned)bytes);
        }
        cg_barrier(g);
        for (uint32_t k = 0; k < nred; k++) {
            LLVMValueRef total = NULL;
            for (int64_t gi = 0; gi < groups; gi++) {
                LLVMValueRef idx = LLVMBuildAdd(g->b, cg_i64(g, gi * numel_red), offs[k], "");
                LLVMValueRef v = LLVMBuildLoad2(g->b, pt, LLVMBuildGEP2(g->b, pt, g->smem, &idx, 1, ""), "");
                LLVMSetAlignment(v, (unsigned)bytes);
                if (pt != LLVMTypeOf(acc[k])) v = LLVMBuildTrunc(g->b, v, LLVMTypeOf(acc[k]), "");
                total = total ? combine(g, (IrReduce)kind, e, total, v) : v;
            }
            acc[k] = total;
        }
    }
    for (uint32_t k = 0; k < nred; k++) acc[k] = cg_round(g, e, acc[k]);
    /* the result: lred squeezed keeps the local order */
    if (r->numel == 1) {
        r->slots[0] = acc[0];
        cg_set(g, res, r);
        return true;
    }
    const Layout *squeezed = layout_squeeze(&g->arena, lred, (int)axis);
    CgValue *got = cg_new_tile(g, squeezed, r->numel);
    for (uint32_t k = 0; k < nred; k++) got->slots[k] = acc[k];
    cg_set(g, res, got);
    if (!layout_equal(squeezed, r->layout)) {
        CgValue *conv = cg_in_layout(g, op, res, r->layout, rt->rank, rt->shape);
        if (!conv) return false;
        cg_set(g, res, conv);
    }
    return true;
}

/* One scan line in the scratch, in place: the elements base, base + stride, ... (n of them)
 * become their running combination in order, the chain kept in registers at the VM's precision
 * and each stored value rounded to e. The loop takes SCAN_UNROLL elements a step, their loads
 * issued before the chain of combines, so only the combine's latency is serial; the line's first
 * element starts the chain as it is (a select in the first step: no identity, so -0.0 and NaN
 * stay the VM's). */
enum { SCAN_UNROLL = 8 };
static void scan_line(Cg *g, IrReduce kind, ElemType e, LLVMValueRef base, int64_t n, int64_t stride) {
    int64_t steps = n / SCAN_UNROLL, tail = n % SCAN_UNROLL;
    LLVMValueRef acc = NULL, idx[SCAN_UNROLL], v[SCAN_UNROLL];
    if (steps > 0) {
        LLVMValueRef init = LLVMGetUndef(cg_reg_type(g, e));
        Loop l;
        loop_begin(g, &l, 0, &init, 1);
        LLVMValueRef first = LLVMBuildAdd(g->b, base, LLVMBuildMul(g->b, l.k, cg_i64(g, SCAN_UNROLL * stride), ""), "");
        for (int i = 0; i < SCAN_UNROLL; i++) {
            idx[i] = LLVMBuildAdd(g->b, first, cg_i64(g, i * stride), "");
            v[i] = cg_scratch_read(g, g->smem, 0, e, idx[i]);
        }
        LLVMValueRef next = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntEQ, l.k, cg_i64(g, 0), ""), v[0],
                                            combine(g, kind, e, l.acc[0], v[0]), "");
        cg_scratch_store(g, g->smem, 0, e, idx[0], next);
        for (int i = 1; i < SCAN_UNROLL; i++) {
            next = combine(g, kind, e, next, v[i]);
            cg_scratch_store(g, g->smem, 0, e, idx[i], next);
        }
        loop_end(g, &l, steps, &next);
        acc = next;
    }
    for (int64_t i = 0; i < tail; i++) {
        LLVMValueRef at = LLVMBuildAdd(g->b, base, cg_i64(g, (steps * SCAN_UNROLL + i) * stride), "");
        LLVMValueRef x = cg_scratch_read(g, g->smem, 0, e, at);
        acc = acc ? combine(g, kind, e, acc, x) : x;
        cg_scratch_store(g, g->smem, 0, e, at, acc);
    }
}

/* scan: every line along the axis is one chain of combines in the VM's order (so the bits are
 * the VM's). The tile goes to the scratch row-major; thread t walks lines t, t + threads, ...
 * in place (scan_line); after a barrier every thread reads its slots back. O(numel) combines in
 * all (each slot summing its own prefix was O(numel * n / threads): cumsum_rows at 8192 x 8192
 * took 9.4 ms on the H200); a line's latency is n dependent combines, so a tile with few lines
 * leaves most threads waiting at the barrier. */
bool cg_scan(Cg *g, const IrOp *op) {
    const IrValue *x = op->operands[0], *res = op->results[0];
    const IrType *in = x->type;
    int64_t kind = op->ints[0], axis = op->ints[1];
    if (kind < RED_SUM || kind > RED_MIN || axis < 0 || axis >= in->rank)
        return cg_fail(g, op, false, "bad reduction kind or axis");
    ElemType e = in->elem;
    CgValue *a = cg_get(g, x);
    CgValue *r = cg_new_tile_for(g, res);
    int64_t n = in->shape[axis];
    if (n <= 1 || a->numel <= 1) {
        CgValue *same = cg_in_layout(g, op, x, r->layout, in->rank, in->shape);
        if (!same) return false;
        cg_set(g, res, same);
        return true;
    }
    int64_t strides[IR_MAX_RANK], s = 1;
    for (int d = in->rank - 1; d >= 0; d--) {
        strides[d] = s;
        s *= in->shape[d];
    }
    int64_t inner = strides[axis], lines = s / n;
    cg_need_scratch(g, (uint64_t)s * (uint64_t)cg_elem_bytes(e));
    cg_barrier(g);
    cg_scratch_write(g, g->smem, 0, e, a, in->rank, in->shape);
    cg_barrier(g);
    /* for (line = tid; line < lines; line += threads) scan_line(line's first element) */
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(g->b), head = cg_block(g, "scan.line"), body = cg_block(g, "scan.body"),
                      done = cg_block(g, "scan.done");
    LLVMBuildBr(g->b, head);
    LLVMPositionBuilderAtEnd(g->b, head);
    LLVMValueRef line = LLVMBuildPhi(g->b, g->i64, "line");
    LLVMAddIncoming(line, &g->tid, &pre, 1);
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntULT, line, cg_i64(g, lines), ""), body, done);
    LLVMPositionBuilderAtEnd(g->b, body);
    LLVMValueRef base = inner == 1 ? LLVMBuildMul(g->b, line, cg_i64(g, n), "")
                                   : LLVMBuildAdd(g->b, LLVMBuildMul(g->b, LLVMBuildUDiv(g->b, line, cg_i64(g, inner), ""),
                                                                     cg_i64(g, n * inner), ""),
                                                  LLVMBuildURem(g->b, line, cg_i64(g, inner), ""), "");
    scan_line(g, (IrReduce)kind, e, base, n, inner);
    LLVMValueRef step = LLVMBuildAdd(g->b, line, cg_i64(g, g->threads), "");
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(g->b);
    LLVMAddIncoming(line, &step, &latch, 1);
    LLVMBuildBr(g->b, head);
    LLVMPositionBuilderAtEnd(g->b, done);
    cg_barrier(g);
    for (uint32_t j = 0; j < r->nslots; j++) {
        LLVMValueRef coords[IR_MAX_RANK], idx = cg_i64(g, 0);
        cg_slot_coords(g, r->layout, j, coords);
        for (int d = 0; d < in->rank; d++)
            if (in->shape[d] != 1) idx = LLVMBuildAdd(g->b, idx, LLVMBuildMul(g->b, coords[d], cg_i64(g, strides[d]), ""), "");
        r->slots[j] = cg_scratch_read(g, g->smem, 0, e, idx);
    }
    cg_set(g, res, r);
    return true;
}

bool cg_dot(Cg *g, const IrOp *op) {
    const IrType *ta = op->operands[0]->type, *tb = op->operands[1]->type, *tc = op->operands[2]->type,
                 *rt = op->results[0]->type;
    if (ta->rank != 2 || tb->rank != 2 || tc->rank != 2 || rt->rank != 2)
        return cg_fail(g, op, false, "needs operands of rank 2");
    int64_t M = ta->shape[0], K = ta->shape[1], N = tb->shape[1];
    if (tb->shape[0] != K || tc->shape[0] != M || tc->shape[1] != N)
        return cg_fail(g, op, false, "the shapes do not fit the accumulator");
    ElemType ea = ta->elem, eb = tb->elem, ec = tc->elem;
    CgValue *a = cg_get(g, op->operands[0]), *b = cg_get(g, op->operands[1]);
    CgValue *r = cg_new_tile_for(g, op->results[0]);
    CgValue *c = cg_in_layout(g, op, op->operands[2], r->layout, rt->rank, rt->shape);
    if (!c) return false;
    MmaTiling mma;
    if (op->nints) {
        /* the layout pass chose the instruction and the warps; the accumulator must agree */
        if (!mma_tiling_of(op, g->warps, &mma) || !layout_equal(r->layout, mma_acc_layout(&g->arena, &mma)))
            return cg_fail(g, op, false, "its tensor-core record does not fit its types and layout");
        return mma_is_wgmma(mma.instr) ? cg_dot_wgmma(g, op, &mma, r, c) : cg_dot_mma(g, op, &mma, r, c);
    }
    bool is_float = elem_is_float(ea) || elem_is_float(eb);
    /* the arithmetic: f32 (narrow float acc or int acc), f64, or integers of 32/64 bits */
    ElemType work = is_float ? ((!elem_is_float(ec) || ec.bits <= 32) ? elem_f32() : elem_f64())
                             : (elem_is_integer(ec) && ec.bits <= 32 ? elem_int(32) : elem_int(64));
    if (K == 0) {
        for (uint32_t j = 0; j < r->nslots; j++) r->slots[j] = c->slots[c->nslots == 1 ? 0 : j];
        cg_set(g, op->results[0], r);
        return true;
    }
    uint64_t off_b = (uint64_t)((a->numel * cg_elem_bytes(ea) + 15) / 16 * 16);
    cg_need_scratch(g, off_b + (uint64_t)(b->numel * cg_elem_bytes(eb)));
    cg_barrier(g);
    cg_scratch_write(g, g->smem, 0, ea, a, 2, ta->shape);
    cg_scratch_write(g, g->smem, off_b, eb, b, 2, tb->shape);
    cg_barrier(g);
    LLVMValueRef *init = cg_calloc(g, r->nslots, sizeof(LLVMValueRef));
    LLVMValueRef *row = cg_calloc(g, r->nslots, sizeof(LLVMValueRef));
    LLVMValueRef *col = cg_calloc(g, r->nslots, sizeof(LLVMValueRef));
    for (uint32_t j = 0; j < r->nslots; j++) {
        LLVMValueRef coords[IR_MAX_RANK] = {cg_i64(g, 0), cg_i64(g, 0)};
        if (r->layout) cg_slot_coords(g, r->layout, j, coords);
        row[j] = coords[0];
        col[j] = coords[1];
        LLVMValueRef cv = c->slots[c->nslots == 1 ? 0 : j];
        init[j] = is_float ? cg_convert(g, elem_f64(), cg_convert(g, ec, cv, elem_f64()), work)
                           : LLVMConstNull(cg_reg_type(g, work));
    }
    Loop l;
    loop_begin(g, &l, 0, init, r->nslots);
    LLVMValueRef *next = cg_calloc(g, r->nslots, sizeof(LLVMValueRef));
    for (uint32_t j = 0; j < r->nslots; j++) {
        LLVMValueRef ia = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, row[j], cg_i64(g, K), ""), l.k, "");
        LLVMValueRef ib = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, l.k, cg_i64(g, N), ""), col[j], "");
        LLVMValueRef x = cg_scratch_read(g, g->smem, 0, ea, ia);
        LLVMValueRef y = cg_scratch_read(g, g->smem, off_b, eb, ib);
        if (is_float) {
            x = cg_convert(g, elem_f64(), cg_convert(g, ea, x, elem_f64()), work);
            y = cg_convert(g, elem_f64(), cg_convert(g, eb, y, elem_f64()), work);
            next[j] = LLVMBuildFAdd(g->b, l.acc[j], LLVMBuildFMul(g->b, x, y, ""), "");
        } else {
            x = cg_convert(g, ea, x, work);
            y = cg_convert(g, eb, y, work);
            next[j] = LLVMBuildAdd(g->b, l.acc[j], LLVMBuildMul(g->b, x, y, ""), "");
        }
    }
    loop_end(g, &l, K, next);
    for (uint32_t j = 0; j < r->nslots; j++) {
        LLVMValueRef s = next[j], cv = c->slots[c->nslots == 1 ? 0 : j];
        if (is_float) {
            r->slots[j] = cg_convert(g, elem_f64(), cg_convert(g, work, s, elem_f64()), ec);
        } else if (elem_is_float(ec)) {
            LLVMValueRef sum = cg_convert(g, work, s, ec);
            r->slots[j] = cg_binary(g, OP_ADD, 0, ec, cv, sum);
        } else {
            r->slots[j] = cg_convert(g, work, LLVMBuildAdd(g->b, s, cg_convert(g, ec, cv, work), ""), ec);
        }
    }
    cg_set(g, op->results[0], r);
    return true;
}
