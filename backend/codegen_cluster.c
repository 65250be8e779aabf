/*
 * codegen_cluster.c: thread-block clusters (sm_90a): cluster_size, cluster_barrier and the
 * multicast boxes of a copy_tma with `multicast N` (passes/cluster.c makes them).
 *
 *   cluster_size     %cluster_nctarank: N in a launch with clusters of N, 1 in one without
 *   cluster_barrier  barrier.cluster.arrive.release + barrier.cluster.wait.acquire (every thread of
 *                    every block of the cluster; with no cluster, the block's barrier)
 *   copy_tma ..., %flag, multicast N
 *                    (codegen_tma.c expects the whole box's bytes on this block's mbarrier, as for
 *                    a plain copy) then per box j of the tile: when the flag holds, the block of
 *                    cluster rank j % N issues it with .multicast::cluster and the ctaMask of every
 *                    block of the cluster, so that the TMA unit writes the box into the same
 *                    shared offset of each block and completes its bytes on each block's mbarrier
 *                    at the same offset; when it does not, this block issues it alone (the plain
 *                    copy).
 *   mbarrier_arrive ..., cluster N
 *                    (thread 0, after the block's barrier) for each rank r of the cluster: mapa of
 *                    the mbarrier's address to block r's shared memory, then
 *                    mbarrier.arrive.release.cluster.shared::cluster on it: the block's release of
 *                    a stage to every block that multicasts into it (passes/cluster.c's empty ring)
 * No .reqnctapercluster or .explicitcluster directive is emitted: the same kernel runs with
 * clusters (the runtime's cuLaunchKernelEx with the cluster dimension, when the grid's x is a
 * multiple of N) and without (the flag is then false: cluster_size is 1).
 */
#include "codegen.h"

#include <stdio.h>
#include <string.h>

/* %cluster_ctarank: this block's rank in its cluster (0 without clusters). */
static LLVMValueRef cluster_rank(Cg *g) {
    return cg_asm(g, "mov.u32 $0, %cluster_ctarank;", "=r", g->i32, NULL, 0);
}

bool cg_cluster_op(Cg *g, const IrOp *op) {
    if (op->code == OP_CLUSTER_BARRIER) {
        cg_asm_void(g, "barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;");
        return true;
    }
    LLVMValueRef n = cg_asm(g, "mov.u32 $0, %cluster_nctarank;", "=r", g->i32, NULL, 0);
    CgValue *r = cg_new_tile_for(g, op->results[0]);
    r->slots[0] = cg_convert(g, elem_int(64), LLVMBuildZExt(g->b, n, g->i64, ""), op->results[0]->type->elem);
    cg_set(g, op->results[0], r);
    return true;
}

void cg_cluster_multicast_box(Cg *g, const IrOp *op, int64_t box, const char *plain, const char *constraints,
                              LLVMValueRef *args, unsigned nargs) {
    int64_t n = ir_copy_tma_multicast(op);
    LLVMValueRef flag = cg_convert(g, op->operands[op->noperands - 1]->type->elem,
                                   cg_get(g, op->operands[op->noperands - 1])->slots[0], elem_bool());
    LLVMBasicBlockRef multicast = cg_block(g, "tma.multicast"), mine = cg_block(g, "tma.mine"),
                      alone = cg_block(g, "tma.alone"), join = cg_block(g, "tma.box.end");
    LLVMBuildCondBr(g->b, flag, multicast, alone);
    /* the plain copy's text with .multicast::cluster and a ctaMask operand after the mbarrier */
    char text[256], cons[96];
    const char *at = strstr(plain, "::bytes");
    const char *end = strrchr(plain, ';');
    if (!at || !end) tile_unreachable();
    at += strlen("::bytes");
    snprintf(text, sizeof text, "%.*s.multicast::cluster%.*s, $%u;", (int)(at - plain), plain, (int)(end - at), at,
             nargs);
    const char *clobber = strstr(constraints, ",~{memory}");
    snprintf(cons, sizeof cons, "%.*s,h,~{memory}", (int)(clobber ? clobber - constraints : (long)strlen(constraints)),
             constraints);
    LLVMPositionBuilderAtEnd(g->b, multicast);
    LLVMValueRef owner = LLVMBuildICmp(g->b, LLVMIntEQ, cluster_rank(g), cg_i32(g, box % n), "");
    LLVMBuildCondBr(g->b, owner, mine, join);
    LLVMPositionBuilderAtEnd(g->b, mine);
    LLVMValueRef margs[16];
    memcpy(margs, args, nargs * sizeof *margs);
    margs[nargs] = LLVMConstInt(LLVMInt16TypeInContext(g->ctx), (1ull << n) - 1, 0);
    cg_asm(g, text, cons, g->void_type, margs, nargs + 1);
    LLVMBuildBr(g->b, join);
    LLVMPositionBuilderAtEnd(g->b, alone);
    cg_asm(g, plain, constraints, g->void_type, args, nargs);
    LLVMBuildBr(g->b, join);
    LLVMPositionBuilderAtEnd(g->b, join);
}

void cg_cluster_arrive(Cg *g, const IrOp *op, LLVMValueRef bar) {
    for (int64_t r = 0; r < ir_mbarrier_arrive_cluster(op); r++) {
        LLVMValueRef args[2] = {bar, cg_i32(g, r)};
        cg_asm(g,
               "{\n\t.reg .b32 remote;\n\tmapa.shared::cluster.u32 remote, $0, $1;\n\t"
               "mbarrier.arrive.release.cluster.shared::cluster.b64 _, [remote];\n\t}",
               "r,r,~{memory}", g->void_type, args, 2);
    }
}
