/*
 * codegen_roles.c: warp roles (warp_roles) on the GPU.
 *
 * The roles split the block's warps in order: role k owns warps [first_k, first_k + warps_k). The
 * op becomes a branch on the warp index (tid / 32) to one block per role; each role's code is
 * emitted as if its warps were the whole block: while it is emitted, the thread index the layouts,
 * ldmatrix, wgmma and "thread 0" read is the role-local one (tid - 32 * first_k, computed in the
 * entry block so that every layout's thread part may be built there), the block size is the
 * role's, and a barrier (the IR's, or one the code generator needs for a layout conversion or a
 * reduction) is the role's own named barrier, `bar.sync 1 + k, 32 * warps_k`, so that the other
 * roles never take part in it. Every role then leaves the kernel (warp_roles stands last).
 *
 * Registers: with budgets (sm_90a only; the verifier has checked them), the kernel is compiled for
 * the budgets' average over the block's warps (nvvm.maxnreg, `.maxnreg`), and each role moves its
 * warpgroups from there with `setmaxnreg.dec.sync.aligned.u32 N` (below the average: a producer
 * gives registers back) or `.inc` (above: a consumer takes them) first thing; the totals before
 * and after are equal, so an inc never waits for registers that no dec frees.
 *
 * An mbarrier_arrive in a role is the role's one arrival (the IR's model): its threads meet at the
 * role's barrier, then its first thread arrives (codegen_tma.c). The barrier is left out where
 * every op since the role's last wait in that region acted through the role's first thread only
 * (a producer's copy_tma's) or touched no memory, since that thread has then done everything the
 * arrival announces. Scratch memory of the code generator (layout conversions) has one place in
 * the block, so two roles that both need it are refused rather than left to overwrite each other.
 */
#include "codegen.h"

#include <stdio.h>
#include <string.h>

/* The register average of the budgets over the block's warps (0: no budgets). */
static int64_t average_registers(const IrOp *op) {
    int64_t warps = 0, sum = 0;
    for (uint32_t k = 0; k < op->nregions; k++) {
        if (!ir_role_regs(op, k)) return 0;
        warps += ir_role_warps(op, k);
        sum += ir_role_warps(op, k) * ir_role_regs(op, k);
    }
    return warps ? sum / warps : 0;
}

void cg_barrier_text(const Cg *g, char *buf, size_t cap) {
    if (g->role < 0) snprintf(buf, cap, "bar.sync 0;");
    else snprintf(buf, cap, "bar.sync %d, %u;", 1 + g->role, g->threads);
}

bool cg_role_arrive_needs_barrier(const Cg *g, const IrOp *op) {
    if (g->role < 0) return false;
    for (const IrOp *p = op->prev; p; p = p->prev) {
        if (p->code == OP_MBARRIER_WAIT) return false;
        bool one_thread = p->code == OP_COPY_TMA || p->code == OP_SHARED_VIEW;
        bool no_memory = ir_op_effect(p->code) == EFFECT_PURE && p->nregions == 0;
        for (uint32_t i = 0; i < p->noperands; i++) /* a dot reads its shared operands */
            no_memory &= p->operands[i]->type->kind != TY_SHARED;
        if (!one_thread && !no_memory) return true;
    }
    return true; /* the region's start: what came before it is not known here */
}

bool cg_warp_roles(Cg *g, const IrOp *op) {
    if (g->role >= 0) return cg_fail(g, op, false, "warp roles do not nest");
    uint32_t n = op->nregions;
    int64_t total = 0;
    for (uint32_t k = 0; k < n; k++) total += ir_role_warps(op, k);
    if (n < 1 || n > IR_MAX_ROLES || op->nints != 2 * n || total != g->warps)
        return cg_fail(g, op, false, "the warp roles do not divide the block's %d warps", g->warps);
    int64_t average = g->arch == BACKEND_ARCH_SM90A ? average_registers(op) : 0;
    if (average) {
        char value[16];
        snprintf(value, sizeof value, "%lld", (long long)average);
        LLVMAddAttributeAtIndex(g->fn, LLVMAttributeFunctionIndex,
                                LLVMCreateStringAttribute(g->ctx, "nvvm.maxnreg", 12, value, (unsigned)strlen(value)));
    }
    LLVMValueRef warp = LLVMBuildLShr(g->b, g->tid, cg_i64(g, 5), "warp");
    LLVMBasicBlockRef end = cg_block(g, "roles.end");
    LLVMValueRef saved_tid = g->tid, saved_zero = g->tid_is_zero;
    unsigned saved_threads = g->threads;
    int saved_warps = g->warps;
    for (uint32_t k = 0; k < n && !g->failed; k++) {
        int64_t first = ir_role_first_warp(op, k), warps = ir_role_warps(op, k);
        LLVMBasicBlockRef body = cg_block(g, "role"), next = k + 1 < n ? cg_block(g, "role.next") : NULL;
        if (next) {
            LLVMValueRef mine = LLVMBuildICmp(g->b, LLVMIntULT, warp, cg_i64(g, first + warps), "");
            LLVMBuildCondBr(g->b, mine, body, next);
        } else {
            LLVMBuildBr(g->b, body);
        }
        LLVMPositionBuilderAtEnd(g->b, body);
        /* the role-local thread index, in the entry block (the layouts' thread parts are built there) */
        g->tid = first ? LLVMBuildSub(g->entry, saved_tid, cg_i64(g, 32 * first), "role.tid") : saved_tid;
        g->tid_is_zero = first ? LLVMBuildICmp(g->entry, LLVMIntEQ, g->tid, cg_i64(g, 0), "") : saved_zero;
        g->threads = 32u * (unsigned)warps;
        g->warps = (int)warps;
        g->role = (int)k;
        int64_t regs = ir_role_regs(op, k);
        if (average && regs != average) {
            char text[64];
            snprintf(text, sizeof text, "setmaxnreg.%s.sync.aligned.u32 %lld;", regs < average ? "dec" : "inc",
                     (long long)regs);
            cg_asm_void(g, text);
        }
        const IrOp *term;
        if (cg_emit_region(g, op->regions[k], &term)) LLVMBuildBr(g->b, end);
        g->tid = saved_tid, g->tid_is_zero = saved_zero, g->threads = saved_threads, g->warps = saved_warps;
        g->role = -1;
        if (next) LLVMPositionBuilderAtEnd(g->b, next);
    }
    if (g->failed) return false;
    unsigned scratch = g->scratch_roles;
    if (scratch & (scratch - 1))
        return cg_fail(g, op, true, "two warp roles need the code generator's scratch memory (layout conversions), "
                       "which has one place in the block");
    LLVMPositionBuilderAtEnd(g->b, end);
    return true;
}
