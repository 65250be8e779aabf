/*
 * mma.c: the tensor-core rules of mma.h: which dots qualify for mma.sync (m16n8k16, m16n8k32), how the warps
 * of a block are arranged over the accumulator, and the fragment layouts, all built from the
 * primitives and the product of the layout algebra (ir/layout.c), so that layout_map gives the
 * coordinates of every register and tests can hold them against the PTX ISA tables.
 */
#include "ir/mma.h"

#define DIMS2(x, y) ((const int64_t[]){(x), (y)})

static int64_t abs64(int64_t x) { return x < 0 ? -x : x; }

const MmaInstrInfo mma_instrs[MMA_COUNT] = {
    [MMA_NONE] = {"none", 0, 0, 0, 0},
#define MMA(id, nm, m_, n_, k_, operand, acc, arch_) [MMA_##id] = {nm, m_, n_, k_, arch_},
#include "ir/mma.def"
#undef MMA
};

ElemType mma_operand_elem(MmaInstr instr) {
    switch (instr) {
#define MMA(id, nm, m_, n_, k_, operand, acc, arch_)                                                  \
    case MMA_##id: return operand;
#include "ir/mma.def"
#undef MMA
    default: return elem_bf16();
    }
}

int mma_pack(MmaInstr instr) { return mma_operand_elem(instr).bits == 8 ? 4 : 2; }

/* The first row for these types whose arch is (wgmma) or is not (mma.sync) 90 and above. */
static MmaInstr row_for(ElemType ea, ElemType eb, ElemType ec, bool wgmma) {
    if (!elem_eq(ea, eb)) return MMA_NONE;
#define MMA(id, nm, m_, n_, k_, operand, acc, arch_)                                                  \
    if ((arch_ >= 90) == wgmma && elem_eq(ea, operand) && elem_eq(ec, acc)) return MMA_##id;
#include "ir/mma.def"
#undef MMA
    return MMA_NONE;
}

MmaInstr mma_instr_for(ElemType ea, ElemType eb, ElemType ec) { return row_for(ea, eb, ec, false); }
MmaInstr mma_wgmma_for(ElemType ea, ElemType eb, ElemType ec) { return row_for(ea, eb, ec, true); }

bool mma_wgmma_tiling(ElemType ea, ElemType eb, ElemType ec, int64_t m, int64_t n, int64_t k, int num_warps,
                      MmaTiling *out) {
    MmaInstr instr = mma_wgmma_for(ea, eb, ec);
    if (instr == MMA_NONE || num_warps < 4 || num_warps % 4 != 0 || n > 256 || n % 8 != 0 ||
        !mma_tiling_with(ea, eb, ec, m, n, k, num_warps, num_warps, out))
        return false;
    out->instr = instr;
    return true;
}

/* Whether warps_m x (num_warps / warps_m) warps tile [m, n] with the instruction's m x n. */
static bool fits(const MmaInstrInfo *in, int64_t m, int64_t n, int num_warps, int wm) {
    return wm >= 1 && num_warps % wm == 0 && m % ((int64_t)in->m * wm) == 0 &&
           n % ((int64_t)in->n * (num_warps / wm)) == 0;
}

static bool is_f8(ElemType e) {
    return e.kind == EK_FLOAT && e.bits == 8 && ((e.exp == 4 && e.man == 3) || (e.exp == 5 && e.man == 2));
}

MmaInstr mma_widened_for(ElemType ea, ElemType eb, ElemType ec) {
    return elem_eq(ea, eb) && is_f8(ea) && elem_eq(ec, elem_f32()) ? MMA_M16N8K16_BF16 : MMA_NONE;
}

bool mma_takes(MmaInstr instr, ElemType ea, ElemType eb, ElemType ec) {
    if (instr <= MMA_NONE || instr >= MMA_COUNT) return false;
    if (mma_is_wgmma(instr)) return mma_wgmma_for(ea, eb, ec) == instr;
    return mma_instr_for(ea, eb, ec) == instr || mma_widened_for(ea, eb, ec) == instr;
}

bool mma_tiling_with(ElemType ea, ElemType eb, ElemType ec, int64_t m, int64_t n, int64_t k, int num_warps,
                     int warps_m, MmaTiling *out) {
    return mma_tiling_instr(mma_instr_for(ea, eb, ec), ea, m, n, k, num_warps, warps_m, out);
}

bool mma_tiling_instr(MmaInstr instr, ElemType ea, int64_t m, int64_t n, int64_t k, int num_warps, int warps_m,
                      MmaTiling *out) {
    if (instr <= MMA_NONE || instr >= MMA_COUNT) return false;
    const MmaInstrInfo *in = &mma_instrs[instr];
    if (num_warps < 1 || m <= 0 || n <= 0 || k <= 0 || k % in->k != 0) return false;
    bool found = false;
    int64_t best = 0;
    for (int wm = num_warps; wm >= 1; wm--) {
        if ((warps_m && wm != warps_m) || !fits(in, m, n, num_warps, wm)) continue;
        int wn = num_warps / wm;
        int64_t skew = abs64(m / wm - n / wn);
        if (found && skew >= best) continue;
        found = true;
        best = skew;
        *out = (MmaTiling){.instr = instr, .warps_m = wm, .warps_n = wn, .reps_m = m / (in->m * wm),
                           .reps_n = n / (in->n * wn), .m = m, .n = n, .k = k, .f16 = elem_eq(ea, elem_f16())};
    }
    return found;
}

bool mma_tiling(ElemType ea, ElemType eb, ElemType ec, int64_t m, int64_t n, int64_t k, int num_warps,
                MmaTiling *out) {
    return mma_tiling_with(ea, eb, ec, m, n, k, num_warps, 0, out);
}

bool mma_tiling_of(const IrOp *dot, int num_warps, MmaTiling *out) {
    if (dot->code != OP_DOT || dot->nints < 2 || dot->ints[0] <= MMA_NONE || dot->ints[0] >= MMA_COUNT ||
        dot->ints[1] < 1)
        return false;
    const IrType *ta = dot->operands[0]->type, *tb = dot->operands[1]->type, *rt = dot->results[0]->type;
    if (ta->rank != 2 || tb->rank != 2 || rt->rank != 2) return false;
    if (mma_is_wgmma((MmaInstr)dot->ints[0]))
        return dot->ints[1] == num_warps &&
               mma_wgmma_tiling(ta->elem, tb->elem, rt->elem, rt->shape[0], rt->shape[1], ta->shape[1], num_warps, out) &&
               out->instr == (MmaInstr)dot->ints[0];
    return mma_takes((MmaInstr)dot->ints[0], ta->elem, tb->elem, rt->elem) &&
           mma_tiling_instr((MmaInstr)dot->ints[0], ta->elem, rt->shape[0], rt->shape[1], ta->shape[1], num_warps,
                            (int)dot->ints[1], out);
}

/* The A and B fragments of an instruction whose registers pack `pack` elements (2 for 16-bit, 4
 * for 8-bit: k16 and k32 of the same tables, each register's elements consecutive along K). */
static const Layout *fragment_a(Arena *arena, int pack) {
    return layout_product(arena,
                          layout_product(arena, layout_column_local(arena, 2, DIMS2(2, 2)),
                                         layout_spatial(arena, 2, DIMS2(8, 4))),
                          layout_local(arena, 2, DIMS2(1, pack)));
}

static const Layout *fragment_b(Arena *arena, int pack) {
    return layout_product(arena,
                          layout_product(arena, layout_local(arena, 2, DIMS2(2, 1)),
                                         layout_column_spatial(arena, 2, DIMS2(4, 8))),
                          layout_local(arena, 2, DIMS2(pack, 1)));
}

const Layout *mma_fragment_a(Arena *arena) { return fragment_a(arena, 2); }
const Layout *mma_fragment_b(Arena *arena) { return fragment_b(arena, 2); }
const Layout *mma_fragment_a_of(Arena *arena, MmaInstr instr) { return fragment_a(arena, mma_pack(instr)); }
const Layout *mma_fragment_b_of(Arena *arena, MmaInstr instr) { return fragment_b(arena, mma_pack(instr)); }

const Layout *mma_fragment_c(Arena *arena) {
    return layout_product(arena,
                          layout_product(arena, layout_local(arena, 2, DIMS2(2, 1)),
                                         layout_spatial(arena, 2, DIMS2(8, 4))),
                          layout_local(arena, 2, DIMS2(1, 2)));
}

const Layout *mma_acc_layout(Arena *arena, const MmaTiling *t) {
    const Layout *warps = layout_product(arena, layout_local(arena, 2, DIMS2(t->reps_m, t->reps_n)),
                                         layout_spatial(arena, 2, DIMS2(t->warps_m, t->warps_n)));
    return layout_product(arena, warps, mma_fragment_c(arena));
}

const Layout *mma_operand_a_layout(Arena *arena, const MmaTiling *t) {
    if (t->warps_n != 1) return NULL;
    const Layout *warps = layout_product(arena, layout_local(arena, 2, DIMS2(t->reps_m, t->k / mma_instrs[t->instr].k)),
                                         layout_spatial(arena, 2, DIMS2(t->warps_m, 1)));
    return layout_product(arena, warps, mma_fragment_a_of(arena, t->instr));
}
