/*
 * mma.h: when a dot runs on tensor cores (the instructions of ir/mma.def: mma.sync m16n8k16), and
 * the register layouts that makes its accumulator and a register a operand take. Layout inference
 * (passes/layout.c) decides and records the instruction and warps_m on the dot; the stages pass,
 * the verifier and the code generator read that record back (mma_tiling_of), so the answers live
 * here, next to the layout algebra.
 *
 * A dot a[M, K] @ b[K, N] + acc[M, N] qualifies when a and b are both bf16 or both f16, acc
 * (and so the result) is f32, K is a positive multiple of 16 (or both f8e4m3, both f8e5m2 with
 * an f32 acc, or both i8 with an i32 acc, K a multiple of 32: m16n8k32), and the block's warps can be
 * arranged as warps_m x warps_n (warps_m * warps_n == num_warps) with M % (16 * warps_m) == 0
 * and N % (8 * warps_n) == 0; among such arrangements the one whose warp tile
 * (M / warps_m) x (N / warps_n) is closest to square wins (ties: more warps along M). The
 * accumulator layout is then
 *
 *     local(reps_m, reps_n) * spatial(warps_m, warps_n) * C,
 *     C = local(2,1) * spatial(8,4) * local(1,2)                    (the 16 x 8 C fragment)
 *
 * with reps_m = M / (16 * warps_m), reps_n = N / (8 * warps_n): warp w = tid / 32 is
 * (w / warps_n, w % warps_n); its lane holds, for every repeat (i, j), the four floats c0..c3
 * of the 16 x 8 tile at rows 16 * (warps_m * i + w / warps_n), columns
 * 8 * (warps_n * j + w % warps_n), in local order ((i * reps_n + j) * 2 + h) * 2 + e for
 * c[2h + e] (mma_acc_slot). Operand fragments are loaded with ldmatrix x4 from shared memory,
 * where lane l gives the address of row (l % 16), column 8 * (l / 16) of a 16 x 16 block
 * (mma_ldmatrix_lane): for a (row-major [M, K]) that yields a0..a7; for b (row-major [K, N],
 * with .trans) the b0..b3 of two neighbouring n tiles.
 */
#ifndef TILE_IR_MMA_H
#define TILE_IR_MMA_H

#include "ir/layout.h"

/* The instructions of ir/mma.def; MMA_NONE (0) is a dot on CUDA cores. */
typedef enum MmaInstr {
    MMA_NONE,
#define MMA(id, name, m, n, k, operand, acc, arch) MMA_##id,
#include "ir/mma.def"
#undef MMA
    MMA_COUNT
} MmaInstr;

typedef struct MmaInstrInfo {
    const char *name;
    int m, n, k;
    int arch;          /* the first architecture that has it (80: sm_80, 89: sm_89) */
} MmaInstrInfo;
extern const MmaInstrInfo mma_instrs[MMA_COUNT]; /* [MMA_NONE] is {"none"} */

typedef struct MmaTiling {
    MmaInstr instr;
    int warps_m, warps_n;  /* warps_m * warps_n == num_warps */
    int64_t reps_m, reps_n; /* 16 x 8 tiles per warp along M and N */
    int64_t m, n, k;
    bool f16;               /* operands f16 (else bf16, or see instr for the 8-bit rows) */
} MmaTiling;

/* Whether dot(a: ea[m, k], b: eb[k, n], acc: ec[m, n]) runs on mma.sync for blocks of
 * num_warps warps; fills *out when it does. */
bool mma_tiling(ElemType ea, ElemType eb, ElemType ec, int64_t m, int64_t n, int64_t k, int num_warps,
                MmaTiling *out);
/* The same with warps_m given (0: chosen as above); false when it does not tile. */
bool mma_tiling_with(ElemType ea, ElemType eb, ElemType ec, int64_t m, int64_t n, int64_t k, int num_warps,
                     int warps_m, MmaTiling *out);
/* The tiling of instruction instr (an mma.sync row) for a dot whose a operand is ea; false when it
 * does not tile (the types are not checked: mma_takes). */
bool mma_tiling_instr(MmaInstr instr, ElemType ea, int64_t m, int64_t n, int64_t k, int num_warps, int warps_m,
                      MmaTiling *out);
/* The row that runs an f8 dot (two f8e4m3 or two f8e5m2 operands, an f32 accumulator) where the
 * target has no f8 mma (sm_80): m16n8k16_bf16 with the operands widened to bf16, which holds
 * every f8e4m3 and f8e5m2 value exactly (the products and the f32 accumulation are the same). */
MmaInstr mma_widened_for(ElemType ea, ElemType eb, ElemType ec);
/* Whether a dot with these types may carry instr: its own row, or the widened one. */
bool mma_takes(MmaInstr instr, ElemType ea, ElemType eb, ElemType ec);
/* The mma.sync instruction for operands ea, eb and accumulator ec, or MMA_NONE. */
MmaInstr mma_instr_for(ElemType ea, ElemType eb, ElemType ec);
/* The wgmma instruction (sm_90a) for those types, or MMA_NONE. */
MmaInstr mma_wgmma_for(ElemType ea, ElemType eb, ElemType ec);
static inline bool mma_is_wgmma(MmaInstr i) { return i > MMA_NONE && i < MMA_COUNT && mma_instrs[i].arch >= 90; }
/* The wgmma tiling of dot(a: ea[m, k], b: eb[k, n], acc: ec[m, n]) for num_warps warps: every warp
 * along M (warps_m = num_warps, a multiple of 4: whole warpgroups), m a multiple of 16 * num_warps
 * (each warpgroup's wgmma covers 64 rows of every 16 * num_warps), n a multiple of 8 and at most
 * 256, k of 16. The layouts are those of the mma.sync tiling with warps_m = num_warps. */
bool mma_wgmma_tiling(ElemType ea, ElemType eb, ElemType ec, int64_t m, int64_t n, int64_t k, int num_warps,
                      MmaTiling *out);
/* The tiling a dot carries (its attributes `mma NAME, warps_m W`, set by the layout pass), for
 * blocks of num_warps warps; false when the dot runs on CUDA cores or the record is bad. */
bool mma_tiling_of(const struct IrOp *dot, int num_warps, MmaTiling *out);
/* The accumulator (and result) layout of such a dot (see above). */
const Layout *mma_acc_layout(Arena *arena, const MmaTiling *t);
/* The register layout of operand a [m, k] that the mma reads in place (no staging), when the
 * warps do not split N (warps_n == 1; else NULL):
 *     local(reps_m, k / K) * spatial(warps_m, 1) * A,
 * (K and A the instruction's: 16 and a0..a7, or 32 and a0..a15 for the 8-bit rows) so that the
 * slots of k step s of m repeat i are that block's fragment, in order. The
 * accumulator layout of a [m, k] result of the same warps (a P computed by another dot) holds
 * the same elements in every thread: converting one into the other renames registers. */
const Layout *mma_operand_a_layout(Arena *arena, const MmaTiling *t);
/* The fragments of one m16n8k16 mma as layouts of one warp (the PTX ISA tables):
 * A 16 x 16 = column_local(2,2) * spatial(8,4) * local(1,2),
 * B 16 x 8  = local(2,1) * column_spatial(4,8) * local(2,1),
 * C 16 x 8  = local(2,1) * spatial(8,4) * local(1,2). */
const Layout *mma_fragment_a(Arena *arena);
const Layout *mma_fragment_b(Arena *arena);
const Layout *mma_fragment_c(Arena *arena);
/* The same for instruction instr: the m16n8k32 rows (8-bit operands, four to a register) have
 * A 16 x 32 = column_local(2,2) * spatial(8,4) * local(1,4)  (a0..a15: a register holds 4 of k),
 * B 32 x 8  = local(2,1) * column_spatial(4,8) * local(4,1)  (b0..b7),
 * the m16n8k16 ones otherwise. */
const Layout *mma_fragment_a_of(Arena *arena, MmaInstr instr);
const Layout *mma_fragment_b_of(Arena *arena, MmaInstr instr);
/* Operand elements per 32-bit register of instr's fragments: 2 (16-bit) or 4 (8-bit). */
int mma_pack(MmaInstr instr);
/* The element type of instr's a and b operands (MMA_NONE: bf16). */
ElemType mma_operand_elem(MmaInstr instr);
/* The accumulator slot of float c[reg] (reg 0..3) of repeat (i, j). */
static inline uint32_t mma_acc_slot(const MmaTiling *t, int64_t i, int64_t j, int reg) {
    return (uint32_t)((i * t->reps_n + j) * 4 + reg);
}
/* The row and column (within a 16 x 16 block of 16-bit elements) whose address lane `lane`
 * gives to ldmatrix.sync.aligned.m8n8.x4: matrix lane / 8 is the block's quadrant
 * (0: rows 0-7 cols 0-7, 1: rows 8-15, 2: cols 8-15, 3: both), row lane % 8 of it. */
static inline void mma_ldmatrix_lane(int lane, int *row, int *col) {
    *row = lane % 16;
    *col = (lane / 16) * 8;
}

#endif
