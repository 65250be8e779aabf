/*
 * codegen_tma_store.c: the epilogue pass's TMA stores (sm_90a): registers -> swizzled shared
 * memory -> global memory by the TMA unit.
 *
 *   shared_store buf, y   (buf swizzled or split, and a store_tma of buf next: the staging write)
 *                         every thread writes its fragment elements into buf through buf's layout,
 *                         with stmatrix.sync.aligned.m8n8.x4.shared.b16 where the fragment layout
 *                         is the mma accumulator's (stmatrix_fits: 16-bit elements, each 8 slots of
 *                         a thread four 8x8 matrices whose lane l holds row l / 4, columns 2 (l % 4)
 *                         and + 1, each matrix row 16 contiguous bytes of buf), else st.shared of
 *                         two neighbouring columns at once where they stay neighbours in buf
 *                         (pairs_fit: f32 accumulators), or of one element. No barrier after
 *                         it: the store_tma that follows has one.
 *   store_tma C, o..., buf  every thread fence.proxy.async.shared::cta (its generic-proxy writes of
 *                         buf become visible to the async proxy), a barrier, then thread 0 issues
 *                         cp.async.bulk.tensor.Nd.global.shared::cta.bulk_group [map, {col, row,
 *                         ...}], [block] per column block of buf (one box each, the map's swizzle
 *                         the buffer's) and cp.async.bulk.commit_group: one bulk group per store_tma
 *   store_wait N          thread 0 (the one that committed the groups) cp.async.bulk.wait_group.read
 *                         N; where other threads write buf next, the IR has a barrier after it
 *
 * The tensor maps are the kernel's other maps (ir_tma_maps lists store_tma's with copy_tma's;
 * cg_tma_plan made their parameters), so the runtime encodes them with the same checks and falls
 * back to the generic kernel where TMA's rules fail.
 */
#include "codegen.h"

#include "ir/layout.h"

#include <stdio.h>

static LLVMValueRef shared32(Cg *g, LLVMValueRef p) { return LLVMBuildPtrToInt(g->b, p, g->i32, ""); }

/* ---- registers -> shared ------------------------------------------------------------------------ */
/* Whether the fragment layout l of a 16-bit [R, C] tile can be written with stmatrix.x4 into the
 * shared layout sl: no replicas, every thread of the block in l, and for each warp and each group
 * of 8 slots g * 8 .. g * 8 + 7, pair q (slots g * 8 + 2q, + 1) of lane ln at (r0 + ln / 4, c0 + 2
 * (ln % 4)) and + 1 for an origin (r0, c0) of the warp, c0 a multiple of 8, and the 8 elements of
 * each row of each such 8x8 matrix contiguous and 16-byte aligned in sl. Checked element by
 * element on the layouts (numbers known at compile time). */
static bool stmatrix_fits(const Layout *l, const SharedLayout *sl, int64_t threads) {
    if (!l || l->rank != 2 || l->replication != 1 || l->num_threads != threads || threads % 32 ||
        l->local_size % 8 || !sl || sl->rank != 2)
        return false;
    for (int64_t w = 0; w < threads / 32; w++)
        for (int64_t s = 0; s < l->local_size; s += 2) {
            int64_t origin[2], c[2];
            layout_map(l, w * 32, s, origin);
            if (origin[1] % 8) return false;
            for (int64_t ln = 0; ln < 32; ln++)
                for (int64_t k = 0; k < 2; k++) {
                    layout_map(l, w * 32 + ln, s + k, c);
                    if (c[0] != origin[0] + ln / 4 || c[1] != origin[1] + 2 * (ln % 4) + k) return false;
                }
            for (int64_t i = 0; i < 8; i++) {
                int64_t at[2] = {origin[0] + i, origin[1]};
                int64_t first = shared_layout_offset(sl, at);
                if (first % 8) return false;
                for (int64_t k = 1; k < 8; k++) {
                    at[1] = origin[1] + k;
                    if (shared_layout_offset(sl, at) != first + k) return false;
                }
            }
        }
    return true;
}

/* Whether each even slot s and slot s + 1 of every thread of layout l are neighbours along the
 * columns whose elements are neighbours in sl too, 2-element aligned: one 2-element st.shared. */
static bool pairs_fit(const Layout *l, const SharedLayout *sl, int64_t threads) {
    if (!l || l->rank != 2 || l->local_size % 2 || l->num_threads > threads || !sl || sl->rank != 2) return false;
    for (int64_t t = 0; t < l->num_threads; t++)
        for (int64_t s = 0; s < l->local_size; s += 2) {
            int64_t a[2], b[2];
            layout_map(l, t, s, a);
            layout_map(l, t, s + 1, b);
            if (b[0] != a[0] || b[1] != a[1] + 1) return false;
            int64_t off = shared_layout_offset(sl, a);
            if (off % 2 || shared_layout_offset(sl, b) != off + 1) return false;
        }
    return true;
}

/* Two 16-bit elements as the b32 register stmatrix takes, the first in the low half: a <2 x i16>
 * bitcast, which NVPTX emits as one mov.b32 of the two halves (no shifts for ptxas to keep). */
static LLVMValueRef pack2(Cg *g, ElemType e, LLVMValueRef lo, LLVMValueRef hi) {
    LLVMValueRef pair = LLVMGetUndef(LLVMVectorType(g->i16, 2)), x[2] = {lo, hi};
    for (int k = 0; k < 2; k++) {
        x[k] = cg_to_mem(g, e, x[k]);
        if (LLVMGetTypeKind(LLVMTypeOf(x[k])) != LLVMIntegerTypeKind) x[k] = LLVMBuildBitCast(g->b, x[k], g->i16, "");
        pair = LLVMBuildInsertElement(g->b, pair, x[k], cg_i32(g, k), "");
    }
    return LLVMBuildBitCast(g->b, pair, g->i32, "");
}

/* stmatrix.x4 of each group of 8 slots: lane ln gives the address of row ln % 8 of matrix ln / 8,
 * whose origin is its own slot g * 8 + 2 (ln / 8) less (ln / 4, 2 (ln % 4)). A coordinate is the
 * layout's thread part plus its local part (the coordinate thread 0 holds: a compile-time
 * constant). The thread index is read here (mov %tid.x, an asm LLVM does not hoist), so every
 * address is computed next to its stmatrix: hoisted out of a loop around the store (the
 * persistent kernels'), one address per group would stay live through the main loop. */
static void store_stmatrix(Cg *g, const CgValue *v, const IrType *st, LLVMValueRef base) {
    LLVMValueRef tid32 = cg_asm(g, "mov.u32 $0, %tid.x;", "=r", g->i32, NULL, 0);
    LLVMValueRef tid = LLVMBuildZExt(g->b, tid32, g->i64, "");
    LayoutThreadTerm terms[64];
    int nterms = layout_thread_terms(v->layout, terms);
    LLVMValueRef part[2] = {cg_i64(g, 0), cg_i64(g, 0)};
    for (int i = 0; i < nterms; i++) {
        if (terms[i].dim == LAYOUT_REPLICA) continue;
        LLVMValueRef digit = LLVMBuildURem(g->b, LLVMBuildUDiv(g->b, tid, cg_i64(g, terms[i].radix), ""),
                                           cg_i64(g, terms[i].size), "");
        part[terms[i].dim] = LLVMBuildAdd(g->b, part[terms[i].dim], LLVMBuildMul(g->b, digit, cg_i64(g, terms[i].stride), ""), "");
    }
    LLVMValueRef lane = LLVMBuildURem(g->b, tid, cg_i64(g, 32), "lane");
    LLVMValueRef quad = LLVMBuildUDiv(g->b, lane, cg_i64(g, 8), "");
    /* this lane's row and column less those of its own element in each pair: the matrix row it addresses */
    LLVMValueRef drow = LLVMBuildSub(g->b, LLVMBuildURem(g->b, lane, cg_i64(g, 8), ""),
                                     LLVMBuildUDiv(g->b, lane, cg_i64(g, 4), ""), "");
    LLVMValueRef dcol = LLVMBuildMul(g->b, LLVMBuildURem(g->b, lane, cg_i64(g, 4), ""), cg_i64(g, 2), "");
    part[0] = LLVMBuildAdd(g->b, part[0], drow, "");
    part[1] = LLVMBuildSub(g->b, part[1], dcol, "");
    for (uint32_t s = 0; s < v->nslots; s += 8) {
        LLVMValueRef regs[5], at[2] = {NULL, NULL};
        for (uint32_t q = 0; q < 4; q++) {
            regs[1 + q] = pack2(g, st->elem, v->slots[s + 2 * q], v->slots[s + 2 * q + 1]);
            int64_t local[IR_MAX_RANK];
            layout_map(v->layout, 0, s + 2 * q, local);
            if (!q) {
                at[0] = cg_i64(g, local[0]), at[1] = cg_i64(g, local[1]);
                continue;
            }
            LLVMValueRef pick = LLVMBuildICmp(g->b, LLVMIntEQ, quad, cg_i64(g, q), "");
            at[0] = LLVMBuildSelect(g->b, pick, cg_i64(g, local[0]), at[0], "");
            at[1] = LLVMBuildSelect(g->b, pick, cg_i64(g, local[1]), at[1], "");
        }
        at[0] = LLVMBuildAdd(g->b, part[0], at[0], "");
        at[1] = LLVMBuildAdd(g->b, part[1], at[1], "");
        regs[0] = shared32(g, cg_shared_addr(g, base, st->shared, st->elem, 2, st->shape, at));
        cg_asm(g, "stmatrix.sync.aligned.m8n8.x4.shared.b16 [$0], {$1, $2, $3, $4};", "r,r,r,r,r,~{memory}",
               g->void_type, regs, 5);
    }
}

/* Whether shared_store op is the staging write of a store_tma (the epilogue pass's): into a
 * swizzled or split buffer that the next op stores by TMA. */
bool cg_is_staging_store(const IrOp *op) {
    const IrType *st = op->operands[0]->type;
    const IrOp *next = op->next;
    return st->shared && (st->shared->swizzle.bits || shared_layout_has_split(st->shared)) && next &&
           next->code == OP_STORE_TMA && next->noperands && next->operands[next->noperands - 1] == op->operands[0];
}

bool cg_staging_store(Cg *g, const IrOp *op) {
    CgValue *s = cg_get(g, op->operands[0]), *v = cg_get(g, op->operands[1]);
    const IrType *st = op->operands[0]->type;
    if (s->kind != CV_SHARED || v->kind != CV_TILE || v->numel != s->numel ||
        !elem_eq(op->operands[1]->type->elem, st->elem) || st->rank != 2)
        return cg_fail(g, op, false, "the tile does not match the shared tile");
    /* the buffer's earlier readers are done: a barrier stands before it (or before its alloc) */
    const IrOp *p = op->prev;
    if (p && p->code == OP_SHARED_ALLOC && p->results[0] == op->operands[0]) p = p->prev;
    if (!p || p->code != OP_BARRIER) cg_barrier(g);
    if (st->elem.bits == 16 && g->arch == BACKEND_ARCH_SM90A &&
        stmatrix_fits(v->layout, st->shared, (int64_t)g->threads)) {
        store_stmatrix(g, v, st, s->data);
        return true;
    }
    LLVMValueRef owner = v->layout ? cg_owner(g, v->layout) : NULL;
    LLVMBasicBlockRef join = NULL;
    if (owner) {
        LLVMBasicBlockRef one = cg_block(g, "staging.owner");
        join = cg_block(g, "staging.join");
        LLVMBuildCondBr(g->b, owner, one, join);
        LLVMPositionBuilderAtEnd(g->b, one);
    }
    /* neighbouring columns (the accumulator's pairs) as one vector store where they stay neighbours */
    uint32_t step = pairs_fit(v->layout, st->shared, (int64_t)g->threads) ? 2 : 1;
    LLVMTypeRef mem = cg_mem_type(g, st->elem);
    for (uint32_t j = 0; j < v->nslots; j += step) {
        LLVMValueRef c[IR_MAX_RANK] = {cg_i64(g, 0), cg_i64(g, 0)};
        if (v->layout) cg_slot_coords(g, v->layout, j, c);
        LLVMValueRef addr = cg_shared_addr(g, s->data, st->shared, st->elem, 2, st->shape, c);
        LLVMValueRef x = cg_to_mem(g, st->elem, v->slots[j]);
        if (step == 2) {
            LLVMValueRef pair = LLVMGetUndef(LLVMVectorType(mem, 2));
            pair = LLVMBuildInsertElement(g->b, pair, x, cg_i32(g, 0), "");
            x = LLVMBuildInsertElement(g->b, pair, cg_to_mem(g, st->elem, v->slots[j + 1]), cg_i32(g, 1), "");
        }
        LLVMValueRef store = LLVMBuildStore(g->b, x, addr);
        LLVMSetAlignment(store, (unsigned)(step * cg_elem_bytes(st->elem)));
    }
    if (join) {
        LLVMBuildBr(g->b, join);
        LLVMPositionBuilderAtEnd(g->b, join);
    }
    return true;
}

/* ---- shared -> global ---------------------------------------------------------------------------- */
bool cg_tma_store_op(Cg *g, const IrOp *op) {
    if (g->arch != BACKEND_ARCH_SM90A) return cg_fail(g, op, true, "%s needs sm_90a", ir_op_info[op->code].name);
    if (op->code == OP_STORE_WAIT) {
        char text[64];
        snprintf(text, sizeof text, "cp.async.bulk.wait_group.read %lld;", (long long)(op->nints ? op->ints[0] : 0));
        LLVMBasicBlockRef join = cg_thread0_begin(g);
        cg_asm_void(g, text);
        cg_thread0_end(g, join);
        return true;
    }
    const IrType *tt = op->operands[0]->type, *st = op->operands[op->noperands - 1]->type;
    int map = ir_tma_map_of(g->kernel, op, g->tma, (int)g->ntma);
    CgValue *src = cg_get(g, op->operands[op->noperands - 1]);
    if (map < 0 || src->kind != CV_SHARED)
        return cg_fail(g, op, false, "store_tma without its tensor map (cg_tma_plan did not run)");
    int rank = tt->rank;
    cg_asm_void(g, "fence.proxy.async.shared::cta;");
    cg_barrier(g);
    /* the coordinates innermost first: column, row, then the leading dimensions' origins */
    LLVMValueRef coord[IR_TMA_MAX_RANK] = {0};
    for (int d = 0; d < rank; d++) coord[d] = cg_get(g, op->operands[rank - d])->slots[0];
    char text[192], constraints[64];
    int len = snprintf(text, sizeof text, "cp.async.bulk.tensor.%dd.global.shared::cta.bulk_group [$0, {", rank);
    for (int d = 0; d < rank; d++) len += snprintf(text + len, sizeof text - (size_t)len, "%s$%d", d ? ", " : "", 2 + d);
    snprintf(text + len, sizeof text - (size_t)len, "}], [$1];");
    len = snprintf(constraints, sizeof constraints, "l,r");
    for (int d = 0; d < rank; d++) len += snprintf(constraints + len, sizeof constraints - (size_t)len, ",r");
    snprintf(constraints + len, sizeof constraints - (size_t)len, ",~{memory}");
    LLVMBasicBlockRef join = cg_thread0_begin(g);
    /* one box per column block of a split buffer, else one */
    const SharedLayout *l = st->shared;
    int64_t block = l && l->split[1] ? l->split[1] : st->shape[1];
    for (int64_t c = 0; c < st->shape[1]; c += block) {
        LLVMValueRef byte = cg_i64(g, (c / block) * (l ? l->split_strides[1] : 0) * cg_elem_bytes(st->elem));
        LLVMValueRef at = c ? LLVMBuildGEP2(g->b, g->i8, src->data, &byte, 1, "") : src->data;
        LLVMValueRef args[2 + IR_TMA_MAX_RANK] = {g->tma_param[map], shared32(g, at)};
        for (int d = 0; d < rank; d++) args[2 + d] = coord[d];
        if (c) args[2] = LLVMBuildAdd(g->b, coord[0], LLVMConstInt(LLVMTypeOf(coord[0]), (unsigned long long)c, 0), "");
        cg_asm(g, text, constraints, g->void_type, args, 2 + (unsigned)rank);
    }
    cg_asm_void(g, "cp.async.bulk.commit_group;");
    cg_thread0_end(g, join);
    return true;
}
