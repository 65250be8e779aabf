/*
 * codegen_mma.c: dot on tensor cores, mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}, and for
 * 8-bit operands m16n8k32.row.col.f32.{e4m3,e5m2}.*.f32 (sm_89+) and m16n8k32.row.col.s32.s8.s8.s32.
 *
 * cg_dot takes this path when the layout pass recorded an instruction of ir/mma.def on the dot
 * (mma_tiling_of) and gave its result the mma accumulator layout, local(reps_m, reps_n) *
 * spatial(warps_m, warps_n) * C: each thread then already holds, in slot order, the c0..c3 of
 * every 16 x 8 tile its warp owns, so the accumulator goes into and out of the mma instructions
 * with no data movement.
 *
 * Operands read in place: shared views (a stage of a ring) and transposed shared views (k-major b:
 * plain ldmatrix over rows of n instead of .trans over rows of k), through their shared layouts;
 * an a operand in mma_operand_a_layout from its registers (its slots are a0..a7 of each k step,
 * packed in pairs; the k steps are then always unrolled). Every ldmatrix address of a known k
 * step is one swizzled lane offset per distinct low constant plus an immediate (source_at_const).
 * Other register operands: a [M, K] and b [K, N] are staged row-major in the shared scratch buffer, each row padded by 8
 * elements (16 bytes): the 8 rows one ldmatrix phase reads then start 16 bytes apart modulo 128
 * and hit 8 different bank groups. The stores move 16 bytes of consecutive slots at once when
 * the operand's layout keeps them consecutive along a row (a loaded tile's blocked layout
 * does). Then K / 16 steps, a loop with the accumulator in phis: per step each warp loads the
 * A fragment (a0..a7) of each of its m tiles with ldmatrix.x4 and the B fragments (b0..b3) of
 * two n tiles at a time with ldmatrix.x4.trans (b is [K, N] row-major, the mma wants it K-major
 * per column: the transposing load gives exactly that; an odd last n tile uses .x2), and issues
 * one mma per (m tile, n tile). Lane l points at row l % 16 and column block l / 16 of the
 * 16 x 16 piece (mma_ldmatrix_lane), which lands matrix q = l / 8 in register q: for a the
 * quadrants in the order a0a1, a2a3, a4a5, a6a7; for b (k 0-7, k 8-15) of one n tile, then of
 * the next. LLVM's NVVM intrinsics (llvm.nvvm.ldmatrix.*, llvm.nvvm.mma.*) carry these.
 *
 * 8-bit operands (the m16n8k32 rows) go through the same code with the byte as the unit of the
 * addresses: a b16 of ldmatrix is two elements, so the a fragments (a0..a15, four to a register)
 * come from the same lane addresses with k offsets doubled, and a k step is 32. ldmatrix .trans
 * would transpose b16s, not bytes, so b must be k-major: a transposed shared view (b given as
 * [N, K]; the stages pass stages no other 8-bit b) or, from registers, staged transposed into the
 * scratch. A loaded f8 element is staged as its byte (cg_f8_raw), an i8 one as it is.
 */
#include "codegen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/DebugInfo.h>

#include "ir/mma.h"

static uint64_t align16(uint64_t x) { return (x + 15) & ~(uint64_t)15; }

static LLVMValueRef smem_at(Cg *g, LLVMValueRef byte) { return LLVMBuildGEP2(g->b, g->i8, g->smem, &byte, 1, ""); }

/* How many consecutive slots of a rank-2 layout can be written to a row-major buffer with row
 * pitch `pitch` (elements) as one vector: the innermost local mode runs along the row with
 * stride 1, and every other step along the row (thread or local) and the pitch keep the vector
 * aligned. At most 16 bytes. */
static int64_t stage_width(const Layout *l, int64_t pitch, int64_t bytes) {
    if (!l || l->num_local_modes == 0) return 1;
    const LayoutMode *inner = &layout_local_modes(l)[l->num_local_modes - 1];
    if (inner->dim != 1 || inner->stride != 1) return 1;
    int64_t w = 16 / bytes;
    while (w > 1 && (inner->size % w != 0 || pitch % w != 0)) w /= 2;
    for (int i = 0; i < l->num_thread_modes + l->num_local_modes - 1; i++)
        while (w > 1 && l->modes[i].dim == 1 && l->modes[i].stride % w != 0) w /= 2;
    return w;
}

/* v (a register float) as the 16-bit memory value it was widened from, without converting: a
 * loaded operand is fpext of a loaded half, or a phi (vector or scalar path, masked or not) of
 * such values and constants; the narrow phi is built next to the wide one. NULL otherwise. The
 * staged tile then never exists as floats, which keeps the registers of a loop body that holds
 * the accumulator and the next tiles of a and b (the wide values become dead). */
static LLVMValueRef narrowed(Cg *g, LLVMTypeRef mt, LLVMValueRef v, int depth) {
    if (LLVMIsAFPExtInst(v) && LLVMTypeOf(LLVMGetOperand(v, 0)) == mt) return LLVMGetOperand(v, 0);
    if (LLVMIsAConstantFP(v)) {
        LLVMBool lost = 0;
        double x = LLVMConstRealGetDouble(v, &lost);
        return x == 0.0 ? LLVMConstNull(mt) : NULL;
    }
    if (!LLVMIsAPHINode(v) || depth == 0) return NULL;
    unsigned n = LLVMCountIncoming(v);
    LLVMValueRef in[8];
    LLVMBasicBlockRef from[8];
    if (n > 8) return NULL;
    for (unsigned i = 0; i < n; i++) {
        if (!(in[i] = narrowed(g, mt, LLVMGetIncomingValue(v, i), depth - 1))) return NULL;
        from[i] = LLVMGetIncomingBlock(v, i);
    }
    LLVMBuilderRef b = LLVMCreateBuilderInContext(g->ctx);
    LLVMPositionBuilderBefore(b, v);
    LLVMValueRef phi = LLVMBuildPhi(b, mt, "");
    LLVMAddIncoming(phi, in, from, n);
    LLVMDisposeBuilder(b);
    return phi;
}

static LLVMValueRef to_mem(Cg *g, ElemType e, LLVMValueRef v) {
    if (cg_is_f8(e)) {
        /* a loaded f8 element is decode(byte): the byte itself, not the float encoded again */
        LLVMValueRef raw = cg_f8_raw(g, e, v);
        return raw ? raw : cg_to_mem(g, e, v);
    }
    LLVMValueRef n = narrowed(g, cg_mem_type(g, e), v, 3);
    return n ? n : cg_to_mem(g, e, v);
}

/* Writes the rank-2 tile v (element e) row-major with row pitch `pitch` from byte `offset`;
 * transposed: element (r, c) at c * pitch + r (an 8-bit b operand, staged k-major). */
static void stage(Cg *g, uint64_t offset, ElemType e, const CgValue *v, int64_t pitch, bool transposed) {
    int64_t bytes = cg_elem_bytes(e);
    int64_t w = transposed ? 1 : stage_width(v->layout, pitch, bytes);
    LLVMTypeRef mt = cg_mem_type(g, e);
    for (uint32_t j = 0; j < v->nslots; j += (uint32_t)w) {
        LLVMValueRef coords[2];
        cg_slot_coords(g, v->layout, j, coords);
        if (transposed) {
            LLVMValueRef x = coords[0];
            coords[0] = coords[1], coords[1] = x;
        }
        LLVMValueRef elem = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, coords[0], cg_i64(g, pitch), ""), coords[1], "");
        LLVMValueRef byte = LLVMBuildAdd(g->b, cg_i64(g, (int64_t)offset), LLVMBuildMul(g->b, elem, cg_i64(g, bytes), ""), "");
        LLVMValueRef value;
        if (w == 1) {
            value = to_mem(g, e, v->slots[j]);
        } else {
            value = LLVMGetUndef(LLVMVectorType(mt, (unsigned)w));
            for (int64_t i = 0; i < w; i++)
                value = LLVMBuildInsertElement(g->b, value, to_mem(g, e, v->slots[j + i]), cg_i32(g, i), "");
        }
        LLVMValueRef st = LLVMBuildStore(g->b, value, smem_at(g, byte));
        LLVMSetAlignment(st, (unsigned)(w * bytes));
    }
}

/* ldmatrix.sync.aligned.m8n8.{x4,x2}[.trans].shared.b16 from this lane's row address ptr. */
static void ldmatrix(Cg *g, LLVMValueRef ptr, bool x4, bool trans, LLVMValueRef *regs) {
    char name[64];
    snprintf(name, sizeof name, "llvm.nvvm.ldmatrix.sync.aligned.m8n8.%s%s.b16", x4 ? "x4" : "x2",
             trans ? ".trans" : "");
    LLVMTypeRef p3 = g->ptr3;
    LLVMValueRef r = cg_call_intrinsic(g, name, &p3, 1, &ptr, 1);
    for (unsigned i = 0; i < (x4 ? 4u : 2u); i++) regs[i] = LLVMBuildExtractValue(g->b, r, i, "");
}

/* Two 16-bit elements packed in an i32, as the mma intrinsic takes them. */
static LLVMValueRef operand(Cg *g, const MmaTiling *t, LLVMValueRef packed) {
    return t->f16 ? LLVMBuildBitCast(g->b, packed, LLVMVectorType(g->f16, 2), "") : packed;
}

/* Marks the loop whose latch branch is br `llvm.loop.unroll.disable`: one k step's fragments
 * live at a time instead of every step's (unrolled, the loads of all steps are hoisted together
 * and the accumulator no longer fits the registers). */
static void keep_rolled(Cg *g, LLVMValueRef br) {
    LLVMMetadataRef self = LLVMTemporaryMDNode(g->ctx, NULL, 0);
    LLVMMetadataRef name = LLVMMDStringInContext2(g->ctx, "llvm.loop.unroll.disable", 24);
    LLVMMetadataRef ops[2] = {self, LLVMMDNodeInContext2(g->ctx, &name, 1)};
    LLVMMetadataRef loop = LLVMMDNodeInContext2(g->ctx, ops, 2);
    LLVMMetadataReplaceAllUsesWith(self, loop);
    LLVMSetMetadata(br, LLVMGetMDKindIDInContext(g->ctx, "llvm.loop", 9), LLVMMetadataAsValue(g->ctx, loop));
}

/* Where an operand's elements are for ldmatrix: a base address and a shared layout. */
typedef struct Source {
    LLVMValueRef base;
    const SharedLayout *layout;
    int64_t shape[2];
    ElemType elem; /* the operand's: 16-bit, or 8-bit (two to a b16 of ldmatrix) */
} Source;

static LLVMValueRef source_at(Cg *g, const Source *s, LLVMValueRef row, LLVMValueRef col) {
    LLVMValueRef coords[2] = {row, col};
    return cg_shared_addr(g, s->base, s->layout, s->elem, 2, s->shape, coords);
}

/* ---- addresses: a lane's part once, constants folded --------------------------------------------
 * Every ldmatrix address of an unrolled k loop is a lane's offset (unswizzled, in elements) plus a
 * constant c. The swizzle reads and writes only the bits below span = 2^(base + shift + bits), so
 * swizzle(lane + c) = swizzle(lane + c % span) + (c - c % span): one swizzled value per distinct
 * c % span (a few per operand, cached), the rest an immediate offset of the load. Computed per
 * address, LLVM would hoist each of them out of the loop, and the loop would hold 64 registers of
 * addresses. */
enum { MAX_SWIZZLED = 32 };

typedef struct LaneOffsets {
    LLVMValueRef lane;               /* i32: the lane's unswizzled element offset */
    int64_t lo[MAX_SWIZZLED];
    LLVMValueRef swizzled[MAX_SWIZZLED];
    int n;
} LaneOffsets;

static LLVMValueRef lane_offset(Cg *g, const Source *s, LLVMValueRef row, LLVMValueRef col) {
    LLVMValueRef r = LLVMBuildTrunc(g->b, row, g->i32, ""), c = LLVMBuildTrunc(g->b, col, g->i32, "");
    return LLVMBuildAdd(g->b, LLVMBuildMul(g->b, r, cg_i32(g, s->layout->strides[0]), ""),
                        LLVMBuildMul(g->b, c, cg_i32(g, s->layout->strides[1]), ""), "");
}

static LLVMValueRef swizzle32(Cg *g, Swizzle z, LLVMValueRef off) {
    if (!z.bits) return off;
    LLVMValueRef bits = LLVMBuildAnd(g->b, LLVMBuildLShr(g->b, off, cg_i32(g, z.base + z.shift), ""),
                                     cg_i32(g, (1 << z.bits) - 1), "");
    return LLVMBuildXor(g->b, off, LLVMBuildShl(g->b, bits, cg_i32(g, z.base), ""), "");
}

/* The address of element (lane's row + dr, lane's column + dc) of s (dr, dc >= 0). */
static LLVMValueRef source_at_const(Cg *g, const Source *s, LaneOffsets *lo, int64_t dr, int64_t dc) {
    Swizzle z = s->layout->swizzle;
    int64_t c = dr * s->layout->strides[0] + dc * s->layout->strides[1];
    int64_t span = z.bits ? (int64_t)1 << (z.base + z.shift + z.bits) : 1, low = c % span;
    LLVMValueRef sw = NULL;
    for (int i = 0; i < lo->n && !sw; i++)
        if (lo->lo[i] == low) sw = lo->swizzled[i];
    if (!sw) {
        sw = swizzle32(g, z, low ? LLVMBuildAdd(g->b, lo->lane, cg_i32(g, low), "") : lo->lane);
        if (lo->n < MAX_SWIZZLED) lo->lo[lo->n] = low, lo->swizzled[lo->n++] = sw;
    }
    LLVMValueRef byte = LLVMBuildMul(g->b, LLVMBuildAdd(g->b, sw, cg_i32(g, c - low), ""), cg_i32(g, cg_elem_bytes(s->elem)), "");
    return LLVMBuildGEP2(g->b, g->i8, s->base, &byte, 1, "");
}

/* The bytes operand i of a dot takes when it is staged into the scratch as elements of e, the
 * instruction's operand type (see operand_source). */
static uint64_t staged_bytes(const IrOp *op, int i, ElemType e) {
    const IrType *t = op->operands[i]->type;
    int64_t bytes = cg_elem_bytes(e), pad = 16 / bytes;
    bool transposed = i == 1 && bytes == 1;
    return (uint64_t)((transposed ? t->shape[1] * (t->shape[0] + pad) : t->shape[0] * (t->shape[1] + pad)) * bytes);
}

/* Operand i of the dot as a Source: a shared view is read where it is; a register tile is staged
 * row-major into the scratch at byte `offset` with rows padded by 16 bytes; an 8-bit b [K, N]
 * k-major ([N, K] with rows of K + 16), since ldmatrix moves b16 units: its .trans cannot
 * transpose bytes, but a plain ldmatrix over rows of n gives each lane 4 consecutive k. A register
 * operand is staged as elements of e, the instruction's operand type (f8 widened to bf16 exactly
 * on m16n8k16_bf16, mma_widened_for). */
static Source operand_source(Cg *g, const IrOp *op, int i, uint64_t offset, ElemType e) {
    const IrValue *v = op->operands[i];
    CgValue *cv = cg_get(g, v);
    Source s = {.shape = {v->type->shape[0], v->type->shape[1]}, .elem = cv->kind == CV_SHARED ? v->type->elem : e};
    if (cv->kind == CV_SHARED) {
        s.base = cv->data;
        s.layout = v->type->shared; /* not split: cg_dot_mma checks */
        return s;
    }
    int64_t pad = 16 / cg_elem_bytes(e);
    if (i == 1 && cg_elem_bytes(e) == 1) {
        int64_t pitch = v->type->shape[0] + pad, strides[2] = {1, pitch};
        stage(g, offset, e, cv, pitch, true);
        s.base = LLVMBuildGEP2(g->b, g->i8, g->smem, (LLVMValueRef[]){cg_i64(g, (int64_t)offset)}, 1, "");
        s.layout = shared_layout_strided(&g->arena, 2, s.shape, strides);
        return s;
    }
    int64_t pitch = v->type->shape[1] + pad, strides[2] = {pitch, 1};
    stage(g, offset, e, cv, pitch, false);
    s.base = LLVMBuildGEP2(g->b, g->i8, g->smem, (LLVMValueRef[]){cg_i64(g, (int64_t)offset)}, 1, "");
    s.layout = shared_layout_strided(&g->arena, 2, s.shape, strides);
    return s;
}

/* mma_pack(instr) elements of an operand in registers (the lowest first) as the packed i32 the
 * mma takes. */
LLVMValueRef cg_mma_pack(Cg *g, const MmaTiling *t, LLVMValueRef const *slots) {
    ElemType e = mma_operand_elem(t->instr);
    int n = mma_pack(t->instr);
    LLVMValueRef v = LLVMGetUndef(LLVMVectorType(cg_mem_type(g, e), (unsigned)n));
    for (int i = 0; i < n; i++) v = LLVMBuildInsertElement(g->b, v, to_mem(g, e, slots[i]), cg_i32(g, i), "");
    return LLVMBuildBitCast(g->b, v, g->i32, "");
}

/* What every k step's fragments are made of (see cg_dot_mma). */
typedef struct Fragments {
    Cg *g;
    const MmaTiling *t;
    const Source *sa, *sb;
    const CgValue *a_regs;  /* a in mma_operand_a_layout: its slots are the fragments */
    bool b_kmajor;          /* b's view has k contiguous (a transposed [N, K] buffer) */
    int64_t kstep;          /* the instruction's k: 16, or 32 for 8-bit operands */
    LLVMValueRef a_row0, a_col0, b_col1, b_col2, lrow, bt_n1, bt_n2, bt_k;
    LaneOffsets *a_lane, *b_pair, *b_single; /* a known step's addresses (source_at_const) */
} Fragments;

/* The A fragments (a0..a7 of each m tile) and B fragments (b0, b1 of each n tile) of k step `step`,
 * which starts at column/row k0 (i64; kstep * step when the step is known). 8-bit operands have
 * twice the elements in the same registers (a0..a15, b0..b7, four to a register) and the same
 * ldmatrix addresses in bytes: their element offsets along k are doubled. a comes from ldmatrix
 * or from registers (then the step must be known); b from ldmatrix .trans (rows of k) or, when
 * its view is k-major, plain ldmatrix over rows of n (lane l: matrix q = l / 8 is n tile j + q / 2
 * at k offset 8 * (q % 2), row l % 8 of it), which gives the same registers. */
static void load_fragments(const Fragments *f, int64_t step, LLVMValueRef k0, LLVMValueRef *fa, LLVMValueRef *fb) {
    Cg *g = f->g;
    const MmaTiling *t = f->t;
    for (int64_t i = 0; i < t->reps_m; i++) {
        if (f->a_regs) {
            int per = mma_pack(t->instr);
            uint32_t first = (uint32_t)((i * (t->k / f->kstep) + step) * 4 * per);
            for (int q = 0; q < 4; q++) fa[4 * i + q] = cg_mma_pack(g, t, f->a_regs->slots + first + per * q);
            continue;
        }
        LLVMValueRef at;
        if (step >= 0) {
            at = source_at_const(g, f->sa, f->a_lane, 16 * t->warps_m * i, f->kstep * step);
        } else {
            LLVMValueRef row = LLVMBuildAdd(g->b, f->a_row0, cg_i64(g, 16 * t->warps_m * i), "");
            at = source_at(g, f->sa, row, LLVMBuildAdd(g->b, f->a_col0, k0, ""));
        }
        ldmatrix(g, at, true, false, fa + 4 * i);
    }
    LLVMValueRef b_row = LLVMBuildAdd(g->b, k0, f->b_kmajor ? f->bt_k : f->lrow, "");
    for (int64_t j = 0; j < t->reps_n; j += 2) {
        bool pair = j + 1 < t->reps_n;
        LLVMValueRef at;
        if (step >= 0) {
            at = source_at_const(g, f->sb, pair ? f->b_pair : f->b_single, f->kstep * step, 8 * t->warps_n * j);
        } else {
            LLVMValueRef col = f->b_kmajor ? (pair ? f->bt_n2 : f->bt_n1) : (pair ? f->b_col2 : f->b_col1);
            at = source_at(g, f->sb, b_row, LLVMBuildAdd(g->b, col, cg_i64(g, 8 * t->warps_n * j), ""));
        }
        ldmatrix(g, at, pair, !f->b_kmajor, fb + 2 * j);
        if (!pair) fb[2 * j + 2] = fb[2 * j + 3] = LLVMGetUndef(g->i32);
    }
}

/* The NVVM intrinsic of an mma.sync row: mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.*.f32,
 * m16n8k32.row.col.f32.{e4m3,e5m2}.*.f32 (sm_89) and m16n8k32.row.col.s32.s8.s8.s32 (wrapping). */
static const char *mma_intrinsic(MmaInstr instr) {
    switch (instr) {
    case MMA_M16N8K16_F16: return "llvm.nvvm.mma.m16n8k16.row.col.f32.f32";
    case MMA_M16N8K32_E4M3: return "llvm.nvvm.mma.m16n8k32.row.col.f32.e4m3.e4m3.f32";
    case MMA_M16N8K32_E5M2: return "llvm.nvvm.mma.m16n8k32.row.col.f32.e5m2.e5m2.f32";
    case MMA_M16N8K32_S8: return "llvm.nvvm.mma.m16n8k32.row.col.s8";
    default: return "llvm.nvvm.mma.m16n8k16.row.col.bf16";
    }
}

/* One mma per (m tile, n tile) of a k step: acc (in mma_acc_slot order) is updated in place. */
static void mma_step(Cg *g, const MmaTiling *t, LLVMValueRef *fa, LLVMValueRef *fb, LLVMValueRef *acc) {
    const char *name = mma_intrinsic(t->instr);
    for (int64_t i = 0; i < t->reps_m; i++)
        for (int64_t j = 0; j < t->reps_n; j++) {
            LLVMValueRef args[10];
            for (int q = 0; q < 4; q++) args[q] = operand(g, t, fa[4 * i + q]);
            for (int q = 0; q < 2; q++) args[4 + q] = operand(g, t, fb[2 * j + q]);
            for (int q = 0; q < 4; q++) args[6 + q] = acc[mma_acc_slot(t, i, j, q)];
            LLVMValueRef d = cg_call_intrinsic(g, name, NULL, 0, args, 10);
            for (int q = 0; q < 4; q++) acc[mma_acc_slot(t, i, j, q)] = LLVMBuildExtractValue(g->b, d, (unsigned)q, "");
        }
}

/* Phi nodes of type ty for n values coming from block `from`. */
static void phis(Cg *g, LLVMTypeRef ty, LLVMValueRef *init, LLVMValueRef *out, uint32_t n, LLVMBasicBlockRef from) {
    for (uint32_t s = 0; s < n; s++) {
        out[s] = LLVMBuildPhi(g->b, ty, "");
        LLVMAddIncoming(out[s], &init[s], &from, 1);
    }
}

/* The mma: operands a and b from registers (staged through the scratch between two barriers) or
 * from shared views (read in place: the stages pass has made the copies visible). Per 16-wide
 * k step, every warp loads the A fragments of its m tiles and the B fragments of pairs of n
 * tiles with ldmatrix at addresses computed through the operands' shared layouts (swizzle
 * included), then issues one mma per (m tile, n tile). The next step's fragments are loaded ahead
 * of this step's mmas: up to 8 steps unrolled, more in a loop kept rolled. */
bool cg_dot_mma(Cg *g, const IrOp *op, const MmaTiling *t, CgValue *r, const CgValue *c) {
    CgValue *a = cg_get(g, op->operands[0]), *b = cg_get(g, op->operands[1]);
    if ((a->kind != CV_TILE && a->kind != CV_SHARED) || (b->kind != CV_TILE && b->kind != CV_SHARED) ||
        (a->kind == CV_TILE && !a->layout) || (b->kind == CV_TILE && !b->layout))
        return cg_fail(g, op, false, "the operands of an mma dot are not tiles or shared tiles");
    for (int i = 0; i < 2; i++)
        if (shared_layout_has_split(op->operands[i]->type->shared))
            return cg_fail(g, op, false, "mma.sync reads no shared operand split in column blocks (a wgmma ring)");
    int64_t K = t->k, kstep = mma_instrs[t->instr].k, per = kstep / 16; /* elements per b16 */
    ElemType e = mma_operand_elem(t->instr);
    for (int i = 0; i < 2; i++)
        if (op->operands[i]->type->kind == TY_SHARED && op->operands[i]->type->elem.bits != e.bits)
            return cg_fail(g, op, true, "%s reads its operands widened from registers, not from shared memory",
                           mma_instrs[t->instr].name);
    if (per == 2) {
        /* 8-bit: ldmatrix without .trans only, so a row-major [M, K] and a k-major b */
        const IrType *ta = op->operands[0]->type, *tb = op->operands[1]->type;
        if ((ta->kind == TY_SHARED && ta->shared->strides[1] != 1) || (tb->kind == TY_SHARED && tb->shared->strides[0] != 1))
            return cg_fail(g, op, true, "an 8-bit mma reads a shared a with k contiguous and a shared b with k contiguous "
                                        "(a transposed [N, K] view) only");
    }
    /* a in the operand layout the layout pass gave it is read from its registers */
    const Layout *a_layout = mma_operand_a_layout(&g->arena, t);
    bool a_regs = a->kind == CV_TILE && a_layout && layout_equal(a->layout, a_layout);
    bool stage_a = a->kind == CV_TILE && !a_regs, staged = stage_a || b->kind == CV_TILE;
    uint64_t off_a = 0, off_b = stage_a ? align16(staged_bytes(op, 0, e)) : 0;
    if (staged) {
        cg_need_scratch(g, off_b + (b->kind == CV_TILE ? staged_bytes(op, 1, e) : 0));
        cg_barrier(g);
    }
    Source sa = {0}, sb = operand_source(g, op, 1, off_b, e);
    if (!a_regs) sa = operand_source(g, op, 0, off_a, e);
    if (staged) cg_barrier(g);

    /* this lane's ldmatrix row and column within a 16 x 16 piece, and its warp's position */
    LLVMValueRef lane = LLVMBuildAnd(g->b, g->tid, cg_i64(g, 31), "lane");
    LLVMValueRef warp = LLVMBuildLShr(g->b, g->tid, cg_i64(g, 5), "warp");
    LLVMValueRef wi = LLVMBuildUDiv(g->b, warp, cg_i64(g, t->warps_n), "");
    LLVMValueRef wj = LLVMBuildURem(g->b, warp, cg_i64(g, t->warps_n), "");
    LLVMValueRef lrow = LLVMBuildAnd(g->b, lane, cg_i64(g, 15), "");
    LLVMValueRef lhalf = LLVMBuildLShr(g->b, lane, cg_i64(g, 4), ""); /* column block 0 or 1 */
    /* a: row 16 * (warps_m * i + wi) + lrow, column 16 * ks + 8 * lhalf */
    LLVMValueRef a_row0 = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, wi, cg_i64(g, 16), ""), lrow, "");
    LLVMValueRef a_col0 = LLVMBuildMul(g->b, lhalf, cg_i64(g, 8 * per), "");
    /* b: row 16 * ks + lrow, column 8 * (warps_n * (j + lhalf) + wj) for a pair of n tiles j, j + 1;
     * an odd last tile alone (x2: lanes 16-31 give no address, theirs repeats lanes 0-15) */
    LLVMValueRef b_col1 = LLVMBuildMul(g->b, wj, cg_i64(g, 8), "");
    LLVMValueRef b_col2 = LLVMBuildAdd(g->b, b_col1, LLVMBuildMul(g->b, lhalf, cg_i64(g, 8 * t->warps_n), ""), "");

    uint32_t n = r->nslots;
    int64_t steps = K / kstep;
    uint32_t nfa = (uint32_t)t->reps_m * 4, nfb = (uint32_t)(t->reps_n + (t->reps_n & 1)) * 2;
    /* b k-major (a transposed view): lane l reads n row 8 * (warps_n * (j + l / 16) + wj) + l % 8
     * (bt_n2; an odd last tile alone: bt_n1) at k offset 8 * ((l / 8) % 2) */
    bool b_kmajor = sb.layout && sb.layout->rank == 2 && sb.layout->strides[0] == 1 && sb.layout->strides[1] != 1;
    LLVMValueRef l8 = LLVMBuildAnd(g->b, lane, cg_i64(g, 7), "");
    LLVMValueRef bt_n1 = LLVMBuildAdd(g->b, b_col1, l8, "");
    LLVMValueRef bt_n2 = LLVMBuildAdd(g->b, bt_n1, LLVMBuildMul(g->b, lhalf, cg_i64(g, 8 * t->warps_n), ""), "");
    LLVMValueRef bt_k = LLVMBuildMul(g->b, LLVMBuildAnd(g->b, LLVMBuildLShr(g->b, lane, cg_i64(g, 3), ""), cg_i64(g, 1), ""),
                                     cg_i64(g, 8 * per), "");
    if (per == 2 && !b_kmajor) return cg_fail(g, op, false, "internal error: an 8-bit mma's b is not k-major");
    Fragments f = {g, t, &sa, &sb, a_regs ? a : NULL, b_kmajor, kstep, a_row0, a_col0, b_col1, b_col2, lrow, bt_n1, bt_n2,
                   bt_k, NULL, NULL, NULL};
    LaneOffsets a_lane = {0}, b_pair = {0}, b_single = {0};
    if (!a_regs) a_lane.lane = lane_offset(g, &sa, a_row0, a_col0);
    b_pair.lane = lane_offset(g, &sb, b_kmajor ? bt_k : lrow, b_kmajor ? bt_n2 : b_col2);
    b_single.lane = lane_offset(g, &sb, b_kmajor ? bt_k : lrow, b_kmajor ? bt_n1 : b_col1);
    f.a_lane = &a_lane, f.b_pair = &b_pair, f.b_single = &b_single;
    LLVMValueRef *fa = cg_calloc(g, nfa, sizeof(LLVMValueRef)), *fb = cg_calloc(g, nfb, sizeof(LLVMValueRef));
    LLVMValueRef *acc = cg_calloc(g, n, sizeof(LLVMValueRef));
    for (uint32_t s = 0; s < n; s++) acc[s] = c->slots[c->nslots == 1 ? 0 : s];
    load_fragments(&f, 0, cg_i64(g, 0), fa, fb);
    if (steps == 1) {
        mma_step(g, t, fa, fb, acc);
    } else if (steps <= 8 || a_regs) {
        /* unrolled, with the next step's fragments loaded before this step's mmas (in registers,
         * double-buffered); measured 10-20 % faster than the rolled loop at BK = 32 and 64 */
        LLVMValueRef *na = cg_calloc(g, nfa, sizeof(LLVMValueRef)), *nb = cg_calloc(g, nfb, sizeof(LLVMValueRef));
        for (int64_t st = 0; st < steps; st++) {
            if (st + 1 < steps) load_fragments(&f, st + 1, cg_i64(g, kstep * (st + 1)), na, nb);
            mma_step(g, t, fa, fb, acc);
            LLVMValueRef *x = fa;
            fa = na, na = x;
            x = fb, fb = nb, nb = x;
        }
    } else {
        /* longer: a loop kept rolled, the same double buffering across its iterations; the last
         * step reloads itself, which is harmless */
        LLVMBasicBlockRef pre = LLVMGetInsertBlock(g->b), header = cg_block(g, "mma.loop");
        LLVMBuildBr(g->b, header);
        LLVMPositionBuilderAtEnd(g->b, header);
        LLVMValueRef ks = LLVMBuildPhi(g->b, g->i64, "ks"), zero = cg_i64(g, 0);
        LLVMAddIncoming(ks, &zero, &pre, 1);
        LLVMValueRef *phi_acc = cg_calloc(g, n, sizeof(LLVMValueRef));
        LLVMValueRef *phi_fa = cg_calloc(g, nfa, sizeof(LLVMValueRef)), *phi_fb = cg_calloc(g, nfb, sizeof(LLVMValueRef));
        phis(g, cg_reg_type(g, op->results[0]->type->elem), acc, phi_acc, n, pre);
        phis(g, g->i32, fa, phi_fa, nfa, pre);
        phis(g, g->i32, fb, phi_fb, nfb, pre);
        LLVMValueRef ks1 = LLVMBuildAdd(g->b, ks, cg_i64(g, 1), "");
        LLVMValueRef last = cg_i64(g, steps - 1);
        LLVMValueRef kn = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, ks1, last, ""), ks1, last, "");
        LLVMValueRef *na = cg_calloc(g, nfa, sizeof(LLVMValueRef)), *nb = cg_calloc(g, nfb, sizeof(LLVMValueRef));
        load_fragments(&f, -1, LLVMBuildMul(g->b, kn, cg_i64(g, kstep), ""), na, nb);
        memcpy(acc, phi_acc, n * sizeof(LLVMValueRef));
        mma_step(g, t, phi_fa, phi_fb, acc);
        LLVMBasicBlockRef latch = LLVMGetInsertBlock(g->b), exit = cg_block(g, "mma.done");
        LLVMValueRef br = LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, ks1, cg_i64(g, steps), ""), header, exit);
        keep_rolled(g, br);
        LLVMAddIncoming(ks, &ks1, &latch, 1);
        for (uint32_t s = 0; s < n; s++) LLVMAddIncoming(phi_acc[s], &acc[s], &latch, 1);
        for (uint32_t s = 0; s < nfa; s++) LLVMAddIncoming(phi_fa[s], &na[s], &latch, 1);
        for (uint32_t s = 0; s < nfb; s++) LLVMAddIncoming(phi_fb[s], &nb[s], &latch, 1);
        LLVMPositionBuilderAtEnd(g->b, exit);
    }
    LLVMValueRef *next = acc;
    for (uint32_t s = 0; s < n; s++) r->slots[s] = next[s];
    cg_set(g, op->results[0], r);
    return true;
}
