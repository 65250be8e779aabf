/*
 * codegen_wgmma.c: dot on wgmma.mma_async (sm_90a), for the dots the layout pass recorded with a
 * wgmma row of ir/mma.def and whose operands the stages pass put in rings (shared views).
 *
 * The accumulator layout is the mma.sync one with every warp along M (ir/mma.h): warp w of
 * warpgroup g = w / 4 holds rows 16 * (warps * i + w) .. + 15 of every repeat i, which for one
 * warpgroup are the 64 rows of one wgmma m64nNk16 (warp w % 4 of the warpgroup: its 16 of them), and
 * the four floats of each 16 x 8 tile j sit in the order of the instruction's d[4j .. 4j + 3]. So a
 * repeat i of warpgroup g is one instruction over rows 16 * warps * i + 64 * g, all N columns,
 * its accumulator the repeat's slots in order.
 *
 * Operands are read through matrix descriptors (64 bits: start address >> 4, leading and stride byte
 * offsets >> 4, the 128-byte swizzle mode), which describe the canonical layouts that stages gives
 * the rings (passes/stages.c, ring_layout): rows of 64 elements (128 bytes) swizzled in atoms of 8
 * rows (1024 bytes), a wider tile as column blocks of 64 one after another. The a operand [M, K] is
 * k-major: stride byte offset 1024 (from 8 rows to the next 8), leading offset unused (1); a k step
 * of 16 starts 32 bytes further (the hardware applies the swizzle to the address, which is why
 * rings are 1024-aligned). The b operand [K, N] is n-major (imm-trans-b 1): stride byte offset
 * 1024 (from 8 k rows to the next 8), leading byte offset the column-block stride (from 64 columns
 * to the next 64); a k step starts 16 rows (2048 bytes) further. Every start is the operand's
 * unswizzled offset (shared_layout_linear) of the instruction's first element.
 *
 * 8-bit operands (m64nNk32 .e4m3/.e5m2 into f32, .s8 into s32) use the same descriptors in bytes: a 128-byte row is 128
 * elements, a k step of 32 elements is again 32 bytes, and both operands are k-major (the PTX form
 * has no imm-trans operands; the layout pass chooses these rows only for such operands).
 *
 * The instructions of one dot are issued between wgmma.fence (the accumulators were written by
 * ordinary instructions) and wgmma.commit_group, then wgmma.wait_group 0: the dot is complete when
 * it returns, and the stages pass's barrier before the next copy into a stage stays sufficient. A
 * dot marked `async 1` (the stages pass) stops after the commit: its dot_wait (cg_dot_wait) is
 * wgmma.wait_group N. The accumulators pass through every wait (tied operands of the inline
 * assembly), so nothing reads them before it; between an asynchronous dot and the next they only
 * flow, in the same registers, into the next dot's accumulator (ptxas serializes the wgmmas, with
 * a warning, if anything else touches them).
 */
#include "codegen.h"

#include <stdio.h>
#include <string.h>

#include "ir/mma.h"

/* Inline assembly returning `nout` values of type `type` (f32, or i32 for an s32 accumulator: a
 * struct of them, or void when 0). */
static LLVMValueRef asm_values(Cg *g, const char *text, const char *constraints, LLVMTypeRef type, unsigned nout,
                               LLVMValueRef *args, unsigned nargs) {
    LLVMTypeRef ret = g->void_type;
    if (nout) {
        LLVMTypeRef *fields = cg_calloc(g, nout, sizeof(LLVMTypeRef));
        for (unsigned i = 0; i < nout; i++) fields[i] = type;
        ret = LLVMStructTypeInContext(g->ctx, fields, nout, 0);
    }
    return cg_asm(g, text, constraints, ret, args, nargs);
}

/* The constraints of an asm whose first n operands are outputs (f32: "f", i32: "r") tied to inputs
 * that follow `inputs` (e.g. "l,l,r,"), then the memory clobber. */
static char *tied_constraints(Cg *g, unsigned n, bool ints, const char *inputs) {
    size_t cap = (size_t)n * 12 + strlen(inputs) + 32, len = 0;
    char *s = cg_calloc(g, cap, 1);
    for (unsigned i = 0; i < n; i++) len += (size_t)snprintf(s + len, cap - len, ints ? "=r," : "=f,");
    len += (size_t)snprintf(s + len, cap - len, "%s", inputs);
    for (unsigned i = 0; i < n; i++) len += (size_t)snprintf(s + len, cap - len, "%u,", i);
    snprintf(s + len, cap - len, "~{memory}");
    return s;
}

/* The descriptor of the operand at shared address `base` (i32) with the given byte offsets and the
 * 128-byte swizzle; a constant byte offset is added to it as (offset >> 4). */
static LLVMValueRef descriptor(Cg *g, LLVMValueRef base, int64_t leading, int64_t stride) {
    LLVMValueRef addr = LLVMBuildZExt(g->b, LLVMBuildAnd(g->b, LLVMBuildLShr(g->b, base, cg_i32(g, 4), ""),
                                                         cg_i32(g, 0x3FFF), ""),
                                      g->i64, "");
    uint64_t fixed = ((uint64_t)(leading >> 4) & 0x3FFF) << 16 | ((uint64_t)(stride >> 4) & 0x3FFF) << 32 |
                     (uint64_t)1 << 62;
    return LLVMBuildOr(g->b, addr, LLVMConstInt(g->i64, fixed, 0), "");
}

static LLVMValueRef plus(Cg *g, LLVMValueRef desc, int64_t bytes) {
    return bytes ? LLVMBuildAdd(g->b, desc, LLVMConstInt(g->i64, (unsigned long long)(bytes >> 4), 0), "") : desc;
}

/* `text` with the n values (f32 or i32) passing through it as tied operands, in asm statements of
 * at most 128 operands: with the text in the first, nothing reads the values before it (a
 * wgmma.wait_group and the accumulators); in the last, every value is written before it
 * (wgmma.fence and every register a wgmma reads: else ptxas finds a write after the fence and
 * injects warpgroup.arrive before the wgmma, warning C7519, serializing the group). */
static void pass_through(Cg *g, const char *text, bool text_last, LLVMValueRef *vals, unsigned n) {
    enum { CHUNK = 128 };
    if (n == 0) {
        cg_asm_void(g, text);
        return;
    }
    for (unsigned first = 0; first < n; first += CHUNK) {
        unsigned k = n - first < CHUNK ? n - first : CHUNK;
        bool here = text_last ? first + k >= n : first == 0;
        LLVMTypeRef *types = cg_calloc(g, k, sizeof(LLVMTypeRef));
        size_t cap = (size_t)k * 12 + 32, len = 0;
        char *cons = cg_calloc(g, cap, 1);
        for (unsigned i = 0; i < k; i++) {
            types[i] = LLVMTypeOf(vals[first + i]);
            len += (size_t)snprintf(cons + len, cap - len, "=%s,", types[i] == g->f32 ? "f" : "r");
        }
        for (unsigned i = 0; i < k; i++) len += (size_t)snprintf(cons + len, cap - len, "%u,", i);
        snprintf(cons + len, cap - len, "~{memory}");
        LLVMValueRef call = cg_asm(g, here ? text : "", cons, LLVMStructTypeInContext(g->ctx, types, k, 0),
                                   vals + first, k);
        for (unsigned i = 0; i < k; i++) vals[first + i] = LLVMBuildExtractValue(g->b, call, i, "");
    }
}

/* wgmma.wait_group `pending`, the n floats of acc passing through it. */
static void wait_group(Cg *g, int64_t pending, LLVMValueRef *acc, uint32_t n) {
    char wait[64];
    snprintf(wait, sizeof wait, "wgmma.wait_group.sync.aligned %lld;", (long long)pending);
    pass_through(g, wait, false, acc, n);
}

/* The PTX operand type of a wgmma row. */
static const char *operand_type(MmaInstr instr) {
    switch (instr) {
    case MMA_WGMMA_F16: return "f16";
    case MMA_WGMMA_E4M3: return "e4m3";
    case MMA_WGMMA_E5M2: return "e5m2";
    case MMA_WGMMA_S8: return "s8";
    default: return "bf16";
    }
}

/* The text of one wgmma.mma_async of n columns and nacc accumulators ($0 ..), then its inputs: the
 * a descriptor or, with a in registers, four packed registers; the b descriptor; the scale-d
 * predicate's source. imm-trans-b is 1 for an n-major b. The 8-bit forms (k32) take no imm-trans
 * operands (both operands k-major): `d, a-desc, b-desc, scale-d, imm-scale-a, imm-scale-b`, and the
 * integer one (s8, s32 accumulator, wrapping) no imm-scale either: `d, a-desc, b-desc, scale-d`. */
static void mma_text(char *text, size_t cap, const MmaTiling *t, unsigned nacc, bool a_regs, bool b_nmajor) {
    unsigned b = nacc + (a_regs ? 4 : 1);
    const char *type = operand_type(t->instr);
    size_t len = (size_t)snprintf(text, cap, "{\n\t.reg .pred p;\n\tsetp.ne.b32 p, $%u, 0;\n\t"
                                             "wgmma.mma_async.sync.aligned.m64n%lldk%d.%s.%s.%s {",
                                  b + 1, (long long)t->n, mma_instrs[t->instr].k,
                                  t->instr == MMA_WGMMA_S8 ? "s32" : "f32", type, type);
    for (unsigned i = 0; i < nacc; i++) len += (size_t)snprintf(text + len, cap - len, "%s$%u", i ? ", " : "", i);
    if (t->instr == MMA_WGMMA_S8)
        len += (size_t)snprintf(text + len, cap - len, "}, $%u, $%u, p;\n\t}", nacc, b);
    else if (mma_pack(t->instr) == 4)
        len += (size_t)snprintf(text + len, cap - len, "}, $%u, $%u, p, 1, 1;\n\t}", nacc, b);
    else if (a_regs)
        len += (size_t)snprintf(text + len, cap - len, "}, {$%u, $%u, $%u, $%u}, $%u, p, 1, 1, %d;\n\t}", nacc, nacc + 1,
                                nacc + 2, nacc + 3, b, b_nmajor);
    else
        len += (size_t)snprintf(text + len, cap - len, "}, $%u, $%u, p, 1, 1, 0, %d;\n\t}", nacc, b, b_nmajor);
}

/* The dot on wgmma (see the top of the file): r gets the result in the accumulator layout. */
bool cg_dot_wgmma(Cg *g, const IrOp *op, const MmaTiling *t, CgValue *r, const CgValue *c) {
    CgValue *a = cg_get(g, op->operands[0]), *b = cg_get(g, op->operands[1]);
    const SharedLayout *la = op->operands[0]->type->shared, *lb = op->operands[1]->type->shared;
    bool a_regs = a->kind == CV_TILE, b_nmajor = lb && lb->strides[1] == 1;
    /* bytes per element; the k step of an instruction is 32 bytes either way (k16 or k32) */
    int bytes = mma_pack(t->instr) == 4 ? 1 : 2, kstep = mma_instrs[t->instr].k;
    if ((!a_regs && (a->kind != CV_SHARED || !shared_layout_is_wgmma_of(la, 1, bytes))) || b->kind != CV_SHARED ||
        !shared_layout_is_wgmma_of(lb, b_nmajor, bytes))
        return cg_fail(g, op, false, "a wgmma dot needs operand b, and a unless it is in registers, in shared rings "
                                     "with the 128-byte swizzle (the stages pass lays them out)");
    if (bytes == 1 && (a_regs || b_nmajor))
        return cg_fail(g, op, false, "a wgmma dot of 8-bit operands reads both from shared memory, k-major");
    if (a_regs && (!a->layout || !layout_equal(a->layout, mma_operand_a_layout(&g->arena, t))))
        return cg_fail(g, op, false, "a wgmma reads operand a from registers only in the A fragment layout");
    int64_t N = t->n, steps = t->k / kstep;
    unsigned nacc = (unsigned)(N / 2); /* floats per thread of one m64nN instruction */
    LLVMValueRef da = NULL;
    if (!a_regs) {
        /* this warpgroup's first row of a: 64 * g rows of 128 bytes */
        LLVMValueRef warpgroup = LLVMBuildTrunc(g->b, LLVMBuildLShr(g->b, g->tid, cg_i64(g, 7), ""), g->i32, "");
        LLVMValueRef a_addr = LLVMBuildAdd(g->b, LLVMBuildPtrToInt(g->b, a->data, g->i32, ""),
                                           LLVMBuildMul(g->b, warpgroup, cg_i32(g, 64 * la->strides[0] * bytes), ""), "");
        da = descriptor(g, a_addr, 16, 1024);
    }
    /* n-major b: the leading byte offset goes from one block of 64 columns to the next; k-major b
     * is laid out as a is */
    int64_t leading = b_nmajor && lb->split[1] ? lb->split_strides[1] * bytes : 16;
    LLVMValueRef db = descriptor(g, LLVMBuildPtrToInt(g->b, b->data, g->i32, ""), leading, 1024);

    uint32_t n = r->nslots;
    LLVMValueRef *acc = cg_calloc(g, n, sizeof(LLVMValueRef));
    for (uint32_t s = 0; s < n; s++) acc[s] = c->slots[c->nslots == 1 ? 0 : s];
    /* every register the instructions read, written before the fence: the accumulators, then the
     * a fragments of each (k step, m repeat) in mma_operand_a_layout's slot order, packed */
    uint32_t nfrag = a_regs ? (uint32_t)(steps * t->reps_m * 4) : 0;
    LLVMValueRef *vals = cg_calloc(g, n + nfrag, sizeof(LLVMValueRef)), *frag = vals + n;
    memcpy(vals, acc, n * sizeof(LLVMValueRef));
    for (int64_t s = 0; s < steps && a_regs; s++)
        for (int64_t i = 0; i < t->reps_m; i++) {
            uint32_t first = (uint32_t)((i * steps + s) * 8);
            for (int q = 0; q < 4; q++)
                frag[(s * t->reps_m + i) * 4 + q] = cg_mma_pack(g, t, a->slots + first + 2 * q);
        }
    pass_through(g, "wgmma.fence.sync.aligned;", true, vals, n + nfrag);
    memcpy(acc, vals, n * sizeof(LLVMValueRef));
    char text[4096];
    mma_text(text, sizeof text, t, nacc, a_regs, b_nmajor);
    bool ints = t->instr == MMA_WGMMA_S8; /* s32 accumulators */
    const char *mma_constraints = tied_constraints(g, nacc, ints, a_regs ? "r,r,r,r,l,r," : "l,l,r,");
    unsigned nin = a_regs ? 6 : 3;
    LLVMValueRef *args = cg_calloc(g, nacc + nin, sizeof(LLVMValueRef));
    for (int64_t s = 0; s < steps; s++) {
        int64_t kb[2] = {kstep * s, 0};
        LLVMValueRef desc_b = plus(g, db, shared_layout_linear(lb, kb) * bytes);
        for (int64_t i = 0; i < t->reps_m; i++) {
            unsigned k = 0;
            if (a_regs) {
                for (int q = 0; q < 4; q++) args[k++] = frag[(s * t->reps_m + i) * 4 + q];
            } else {
                int64_t at[2] = {16 * t->warps_m * i, kstep * s};
                args[k++] = plus(g, da, shared_layout_linear(la, at) * bytes);
            }
            args[k++] = desc_b;
            args[k++] = cg_i32(g, 1);
            for (unsigned q = 0; q < nacc; q++) args[k + q] = acc[mma_acc_slot(t, i, 0, 0) + q];
            LLVMValueRef d = asm_values(g, text, mma_constraints, ints ? g->i32 : g->f32, nacc, args, nacc + nin);
            for (unsigned q = 0; q < nacc; q++) acc[mma_acc_slot(t, i, 0, 0) + q] = LLVMBuildExtractValue(g->b, d, q, "");
        }
    }
    asm_values(g, "wgmma.commit_group.sync.aligned;", "~{memory}", g->f32, 0, NULL, 0);
    if (!(op->nints > 2 && op->ints[2])) wait_group(g, 0, acc, n); /* else a dot_wait completes it */
    for (uint32_t s = 0; s < n; s++) r->slots[s] = acc[s];
    cg_set(g, op->results[0], r);
    return true;
}

/* dot_wait N: wgmma.wait_group N, the accumulator's slots passing through. */
bool cg_dot_wait(Cg *g, const IrOp *op) {
    CgValue *a = cg_get(g, op->operands[0]);
    if (a->kind != CV_TILE) return cg_fail(g, op, false, "needs a register tile");
    CgValue *r = cg_new_tile_for(g, op->results[0]);
    if (r->nslots != a->nslots) return cg_fail(g, op, false, "its result is not laid out as its operand");
    memcpy(r->slots, a->slots, a->nslots * sizeof(LLVMValueRef));
    wait_group(g, op->ints[0], r->slots, r->nslots);
    cg_set(g, op->results[0], r);
    return true;
}
