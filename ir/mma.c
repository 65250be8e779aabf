/*
 * mma.c: the tensor-core rules of mma.h: which dots qualify for mma.sync m16n8k16, how the warps
 * of a block are arranged over the accumulator, and the fragment layouts, all built from the
 * primitives and the product of the layout algebra (ir/layout.c), so that layout_map gives the
 * coordinates of every register and tests can hold them against the PTX ISA tables.
 */
#include "ir/mma.h"

#define DIMS2(x, y) ((const int64_t[]){(x), (y)})

static bool is_16bit_mma_float(ElemType e) {
    return elem_eq(e, elem_bf16()) || elem_eq(e, elem_f16());
}

static int64_t abs64(int64_t x) { return x < 0 ? -x : x; }

bool mma_tiling(ElemType ea, ElemType eb, ElemType ec, int64_t m, int64_t n, int64_t k, int num_warps,
                MmaTiling *out) {
    if (!is_16bit_mma_float(ea) || !elem_eq(ea, eb) || !elem_eq(ec, elem_f32())) return false;
    if (num_warps < 1 || m <= 0 || n <= 0 || k <= 0 || k % 16 != 0) return false;
    bool found = false;
    int64_t best = 0;
    for (int wm = num_warps; wm >= 1; wm--) {
        if (num_warps % wm != 0) continue;
        int wn = num_warps / wm;
        if (m % (16 * (int64_t)wm) != 0 || n % (8 * (int64_t)wn) != 0) continue;
        int64_t skew = abs64(m / wm - n / wn);
        if (found && skew >= best) continue;
        found = true;
        best = skew;
        *out = (MmaTiling){.warps_m = wm, .warps_n = wn, .reps_m = m / (16 * wm), .reps_n = n / (8 * wn),
                           .m = m, .n = n, .k = k, .f16 = elem_eq(ea, elem_f16())};
    }
    return found;
}

const Layout *mma_fragment_a(Arena *arena) {
    return layout_product(arena,
                          layout_product(arena, layout_column_local(arena, 2, DIMS2(2, 2)),
                                         layout_spatial(arena, 2, DIMS2(8, 4))),
                          layout_local(arena, 2, DIMS2(1, 2)));
}

const Layout *mma_fragment_b(Arena *arena) {
    return layout_product(arena,
                          layout_product(arena, layout_local(arena, 2, DIMS2(2, 1)),
                                         layout_column_spatial(arena, 2, DIMS2(4, 8))),
                          layout_local(arena, 2, DIMS2(2, 1)));
}

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
