/*
 * codegen_tma.c: TMA copies and mbarriers (sm_90a), the code of the stages pass's TMA rings.
 *
 * A copy_tma reads its box through a tensor map (CUtensorMap: 128 bytes that the runtime encodes
 * at launch with cuTensorMapEncodeTiled, from the tensor's base, sizes and strides and the box
 * and swizzle that the IR fixes). Every distinct (tensor parameter, box, swizzle) of a kernel is
 * one map, passed as an extra kernel parameter after the ABI's parameters: `ptr byval([128 x
 * i8]) align 64` marked nvvm.grid_constant, which NVPTX emits as `.param .align 64 .b8 [128]`
 * and whose address it takes in the param space (no local copy). cg_tma_plan lists them in the
 * order of ir_tma_maps (ir/tma.h), which the runtime reads too to encode them.
 *
 * The PTX is inline assembly, issued by thread 0 where one thread acts for the block:
 *   mbarrier_init    mbarrier.init (with the IR's arrival count, 1 unless set) of each stage; fence.mbarrier_init and
 *                    fence.proxy.async, so that the async proxy sees them (a barrier follows)
 *   copy_tma         mbarrier.expect_tx of the box's bytes, then
 *                    cp.async.bulk.tensor.Nd.shared::cluster.global.mbarrier::complete_tx::bytes
 *                    [stage], [map, {column, row, ...}], [mbarrier] for a tensor of rank N (2 to
 *                    5; the coordinates innermost first, the leading dimensions' boxes 1): the
 *                    TMA unit writes the stage with the map's swizzle (which the stages pass made
 *                    the ring's) and fills the elements outside the tensor with zeros
 *   mbarrier_arrive  mbarrier.arrive: the phase completes when every expected byte has landed; in a
 *                    warp role the role's first thread arrives for the role, after the role's
 *                    barrier where its other threads did part of the work (codegen_roles.c)
 *                    (`cluster N`: codegen_cluster.c, an arrival on each block's mbarrier of the cluster;
 *                    `threads N`: every thread arrives on its own, without a barrier first)
 *   mbarrier_inval   mbarrier.inval of each stage (after a barrier: no thread waits any more), so
 *                    that the bytes may be initialized again (a ring inside an outer loop) or reused
 *   mbarrier_wait    every thread spins on mbarrier.try_wait.parity
 * Shared addresses are passed as 32-bit offsets into the shared window.
 */
#include "codegen.h"

#include <stdio.h>
#include <string.h>

bool cg_tma_plan(Cg *g) {
    int n = ir_tma_maps(g->kernel, g->tma);
    if (n < 0) return cg_fail(g, NULL, true, "%s: a copy_tma of a tensor that is not a parameter of rank 2 to %d "
                              "into a 2-d shared tile, or more than %d tensor maps", g->kernel->name, IR_TMA_MAX_RANK,
                              IR_MAX_TMA_MAPS);
    g->ntma = (uint32_t)n;
    return true;
}

/* ---- inline assembly ------------------------------------------------------------------------------ */
static void asm_call(Cg *g, const char *text, const char *constraints, LLVMValueRef *args, unsigned n) {
    LLVMTypeRef types[8];
    for (unsigned i = 0; i < n; i++) types[i] = LLVMTypeOf(args[i]);
    LLVMTypeRef ft = LLVMFunctionType(g->void_type, types, n, 0);
    LLVMValueRef fn = LLVMGetInlineAsm(ft, (char *)text, strlen(text), (char *)constraints, strlen(constraints), 1, 0,
                                       LLVMInlineAsmDialectATT, 0);
    LLVMValueRef call = LLVMBuildCall2(g->b, ft, fn, args, n, "");
    unsigned kind = LLVMGetEnumAttributeKindForName("convergent", 10);
    LLVMAddCallSiteAttribute(call, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(g->ctx, kind, 0));
}

/* A shared pointer as the 32-bit offset PTX's shared state spaces take. */
static LLVMValueRef shared32(Cg *g, LLVMValueRef p) { return LLVMBuildPtrToInt(g->b, p, g->i32, ""); }

/* The address of mbarrier `stage` (an i32 scalar value) of the ring at operand i. */
static LLVMValueRef mbarrier_addr(Cg *g, const IrOp *op, uint32_t i) {
    CgValue *ring = cg_get(g, op->operands[i]), *stage = cg_get(g, op->operands[i + 1]);
    LLVMValueRef byte = LLVMBuildMul(g->b, cg_to_i64(g, op->operands[i + 1]->type->elem, stage->slots[0]),
                                     cg_i64(g, 8), "");
    return shared32(g, LLVMBuildGEP2(g->b, g->i8, ring->data, &byte, 1, "mbar"));
}

/* Runs what the builder emits next in thread 0 only: returns the join block to continue at. */
LLVMBasicBlockRef cg_thread0_begin(Cg *g) {
    LLVMBasicBlockRef one = cg_block(g, "tma.thread0"), join = cg_block(g, "tma.join");
    LLVMBuildCondBr(g->b, g->tid_is_zero, one, join);
    LLVMPositionBuilderAtEnd(g->b, one);
    return join;
}

void cg_thread0_end(Cg *g, LLVMBasicBlockRef join) {
    LLVMBuildBr(g->b, join);
    LLVMPositionBuilderAtEnd(g->b, join);
}

bool cg_tma_op(Cg *g, const IrOp *op) {
    switch (op->code) {
    case OP_MBARRIER_INIT:
    case OP_MBARRIER_INVAL: {
        CgValue *ring = cg_get(g, op->operands[0]);
        if (ring->kind != CV_SHARED) return cg_fail(g, op, false, "needs a shared ring of mbarriers");
        bool init = op->code == OP_MBARRIER_INIT;
        char text[64];
        if (init) snprintf(text, sizeof text, "mbarrier.init.shared::cta.b64 [$0], %lld;", (long long)ir_mbarrier_count(op));
        else snprintf(text, sizeof text, "mbarrier.inval.shared::cta.b64 [$0];");
        LLVMBasicBlockRef join = cg_thread0_begin(g);
        for (int64_t s = 0; s < op->operands[0]->type->shape[0]; s++) {
            LLVMValueRef byte = cg_i64(g, 8 * s);
            LLVMValueRef at = shared32(g, LLVMBuildGEP2(g->b, g->i8, ring->data, &byte, 1, ""));
            asm_call(g, text, "r,~{memory}", &at, 1);
        }
        if (init)
            asm_call(g, "fence.mbarrier_init.release.cluster;\n\tfence.proxy.async.shared::cta;", "~{memory}", NULL, 0);
        cg_thread0_end(g, join);
        return true;
    }
    case OP_COPY_TMA: {
        const IrType *tt = op->operands[0]->type, *dt = op->operands[1 + tt->rank]->type;
        int map = ir_tma_map_of(g->kernel, op, g->tma, (int)g->ntma);
        CgValue *dst = cg_get(g, op->operands[1 + tt->rank]);
        if (map < 0 || dst->kind != CV_SHARED)
            return cg_fail(g, op, false, "copy_tma without its tensor map (cg_tma_plan did not run)");
        int rank = tt->rank;
        LLVMValueRef bar = mbarrier_addr(g, op, 2 + (uint32_t)rank);
        /* the coordinates innermost first: column, row, then the leading dimensions' origins */
        LLVMValueRef coord[IR_TMA_MAX_RANK] = {0};
        for (int d = 0; d < rank; d++) coord[d] = cg_get(g, op->operands[rank - d])->slots[0];
        LLVMValueRef col = coord[0];
        char text[192], constraints[64];
        int len = snprintf(text, sizeof text,
                           "cp.async.bulk.tensor.%dd.shared::cluster.global.mbarrier::complete_tx::bytes [$0], [$1, {",
                           rank);
        for (int d = 0; d < rank; d++)
            len += snprintf(text + len, sizeof text - (size_t)len, "%s$%d", d ? ", " : "", 2 + d);
        snprintf(text + len, sizeof text - (size_t)len, "}], [$%d];", 2 + rank);
        len = snprintf(constraints, sizeof constraints, "r,l");
        for (int d = 0; d <= rank; d++) len += snprintf(constraints + len, sizeof constraints - (size_t)len, ",r");
        snprintf(constraints + len, sizeof constraints - (size_t)len, ",~{memory}");
        LLVMBasicBlockRef join = cg_thread0_begin(g);
        LLVMValueRef expect[2] = {bar, cg_i32(g, type_bytes(dt))};
        asm_call(g, "mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [$0], $1;", "r,r,~{memory}", expect, 2);
        /* one box per column block of a split ring (wgmma operands), else one */
        const SharedLayout *l = dt->shared;
        int64_t block = l && l->split[1] ? l->split[1] : dt->shape[1];
        for (int64_t c = 0; c < dt->shape[1]; c += block) {
            LLVMValueRef byte = cg_i64(g, (c / block) * (l ? l->split_strides[1] : 0) * cg_elem_bytes(dt->elem));
            LLVMValueRef at = c ? LLVMBuildGEP2(g->b, g->i8, dst->data, &byte, 1, "") : dst->data;
            LLVMValueRef args[3 + IR_TMA_MAX_RANK] = {shared32(g, at), g->tma_param[map]};
            for (int d = 0; d < rank; d++) args[2 + d] = coord[d];
            if (c) args[2] = LLVMBuildAdd(g->b, col, LLVMConstInt(LLVMTypeOf(col), (unsigned long long)c, 0), "");
            args[2 + rank] = bar;
            if (ir_copy_tma_multicast(op)) cg_cluster_multicast_box(g, op, c / block, text, constraints, args, 3 + (unsigned)rank);
            else asm_call(g, text, constraints, args, 3 + (unsigned)rank);
        }
        cg_thread0_end(g, join);
        return true;
    }
    case OP_MBARRIER_ARRIVE: {
        LLVMValueRef bar = mbarrier_addr(g, op, 0);
        static const char arrive[] = "{\n\t.reg .b64 state;\n\tmbarrier.arrive.shared::cta.b64 state, [$0];\n\t}";
        if (ir_mbarrier_arrive_threads(op)) { /* every thread on its own: no barrier, no thread 0 */
            asm_call(g, arrive, "r,~{memory}", &bar, 1);
            return true;
        }
        if (cg_role_arrive_needs_barrier(g, op)) cg_barrier(g);
        LLVMBasicBlockRef join = cg_thread0_begin(g);
        if (ir_mbarrier_arrive_cluster(op)) cg_cluster_arrive(g, op, bar);
        else asm_call(g, arrive, "r,~{memory}", &bar, 1);
        cg_thread0_end(g, join);
        return true;
    }
    case OP_MBARRIER_WAIT: {
        LLVMValueRef args[2] = {mbarrier_addr(g, op, 0), cg_get(g, op->operands[2])->slots[0]};
        asm_call(g,
                 "{\n\t.reg .pred done;\n\tTILE_MBAR_WAIT_${:uid}:\n\t"
                 "mbarrier.try_wait.parity.shared::cta.b64 done, [$0], $1;\n\t"
                 "@!done bra TILE_MBAR_WAIT_${:uid};\n\t}",
                 "r,r,~{memory}", args, 2);
        return true;
    }
    default: tile_unreachable();
    }
}
