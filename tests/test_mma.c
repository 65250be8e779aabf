/*
 * test_mma.c: the tensor-core rules of ir/mma.h, on the CPU.
 *
 * Which dots qualify and how the warps are arranged; the fragment layouts against the PTX ISA
 * tables for mma.m16n8k16 (grp = lane / 4, tig = lane % 4); the accumulator layout, through
 * layout_map, against the tiling the code generator assumes (warp w at (w / warps_n,
 * w % warps_n), tile (i, j) of a warp at rows 16 * (warps_m * i + wm), slot mma_acc_slot); and
 * the ldmatrix addressing of backend/codegen_mma.c, by simulating ldmatrix.x4 (and .trans) as
 * the PTX ISA defines it on row-major, padded shared tiles: every register of every lane must
 * hold the elements the fragment layouts name, the lower index in the low half. The same for the
 * 8-bit m16n8k32 rows, whose ldmatrix moves b16 units that are two 8-bit elements each.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ir/mma.h"

static const ElemType BF16 = {EK_FLOAT, 16, 8, 7}, F16 = {EK_FLOAT, 16, 5, 10}, F32 = {EK_FLOAT, 32, 8, 23};

Test(mma, which_dots_qualify) {
    MmaTiling t;
    cr_assert(mma_tiling(BF16, BF16, F32, 128, 128, 64, 4, &t));
    cr_assert(t.warps_m == 2 && t.warps_n == 2 && t.reps_m == 4 && t.reps_n == 8 && !t.f16);
    cr_assert(mma_tiling(F16, F16, F32, 64, 24, 32, 4, &t));
    cr_assert(t.warps_m == 4 && t.warps_n == 1 && t.reps_m == 1 && t.reps_n == 3 && t.f16);
    cr_assert(mma_tiling(BF16, BF16, F32, 128, 128, 16, 8, &t));
    cr_assert_eq(t.warps_m * t.warps_n, 8);
    cr_assert_eq(t.reps_m * 16 * t.warps_m, 128);
    cr_assert_eq(t.reps_n * 8 * t.warps_n, 128);
    cr_assert(mma_tiling(BF16, BF16, F32, 16, 8, 16, 1, &t));
    cr_assert(t.reps_m == 1 && t.reps_n == 1);
    /* types */
    cr_assert_not(mma_tiling(F32, F32, F32, 128, 128, 64, 4, &t));
    cr_assert_not(mma_tiling(BF16, F16, F32, 128, 128, 64, 4, &t));
    cr_assert_not(mma_tiling(BF16, BF16, BF16, 128, 128, 64, 4, &t));
    cr_assert_not(mma_tiling(BF16, BF16, (ElemType){EK_FLOAT, 64, 11, 52}, 128, 128, 64, 4, &t));
    /* shapes: k a multiple of 16, the warps must tile m and n */
    cr_assert_not(mma_tiling(BF16, BF16, F32, 128, 128, 24, 4, &t));
    cr_assert_not(mma_tiling(BF16, BF16, F32, 128, 128, 0, 4, &t));
    cr_assert_not(mma_tiling(BF16, BF16, F32, 16, 8, 16, 4, &t));
    cr_assert_not(mma_tiling(BF16, BF16, F32, 100, 128, 64, 4, &t));
    cr_assert_not(mma_tiling(BF16, BF16, F32, 128, 12, 64, 4, &t));
}

/* Fragments: the PTX ISA tables, register by register. */
Test(mma, fragments_match_ptx_tables) {
    Arena a;
    arena_init(&a);
    const Layout *fa = mma_fragment_a(&a), *fb = mma_fragment_b(&a), *fc = mma_fragment_c(&a);
    cr_assert(fa->shape[0] == 16 && fa->shape[1] == 16 && fa->local_size == 8 && fa->num_threads == 32);
    cr_assert(fb->shape[0] == 16 && fb->shape[1] == 8 && fb->local_size == 4 && fb->num_threads == 32);
    cr_assert(fc->shape[0] == 16 && fc->shape[1] == 8 && fc->local_size == 4 && fc->num_threads == 32);
    for (int64_t lane = 0; lane < 32; lane++) {
        int64_t grp = lane / 4, tig = lane % 4, c[2];
        for (int64_t r = 0; r < 8; r++) { /* a0,a1 (grp, 2tig+{0,1}); a2,a3 row+8; a4,a5 col+8; a6,a7 both */
            layout_map(fa, lane, r, c);
            cr_assert(c[0] == grp + 8 * ((r / 2) % 2) && c[1] == tig * 2 + r % 2 + 8 * (r / 4), "a%lld lane %lld",
                      (long long)r, (long long)lane);
        }
        for (int64_t r = 0; r < 4; r++) { /* b0,b1 (2tig+{0,1}, grp); b2,b3 row+8 */
            layout_map(fb, lane, r, c);
            cr_assert(c[0] == tig * 2 + r % 2 + 8 * (r / 2) && c[1] == grp, "b%lld lane %lld", (long long)r,
                      (long long)lane);
        }
        for (int64_t r = 0; r < 4; r++) { /* c0,c1 (grp, 2tig+{0,1}); c2,c3 row+8 */
            layout_map(fc, lane, r, c);
            cr_assert(c[0] == grp + 8 * (r / 2) && c[1] == tig * 2 + r % 2, "c%lld lane %lld", (long long)r,
                      (long long)lane);
        }
    }
    arena_free(&a);
}

/* The accumulator layout is the tiling the code generator assumes, for several shapes. */
Test(mma, accumulator_layout_is_the_warp_tiling) {
    static const struct {
        int64_t m, n;
        int warps;
    } cases[] = {{128, 128, 4}, {64, 64, 4}, {32, 32, 4}, {64, 24, 4}, {128, 256, 8}, {16, 8, 1}, {64, 128, 2}};
    Arena a;
    arena_init(&a);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        MmaTiling t;
        cr_assert(mma_tiling(BF16, BF16, F32, cases[k].m, cases[k].n, 32, cases[k].warps, &t));
        const Layout *l = mma_acc_layout(&a, &t);
        cr_assert(l->shape[0] == t.m && l->shape[1] == t.n);
        cr_assert_eq(l->num_threads, 32 * cases[k].warps);
        cr_assert_eq(l->local_size, t.reps_m * t.reps_n * 4);
        cr_assert_eq(l->replication, 1);
        cr_assert(layout_is_exact(l));
        for (int64_t tid = 0; tid < l->num_threads; tid++) {
            int64_t w = tid / 32, lane = tid % 32, wm = w / t.warps_n, wn = w % t.warps_n;
            for (int64_t i = 0; i < t.reps_m; i++)
                for (int64_t j = 0; j < t.reps_n; j++)
                    for (int q = 0; q < 4; q++) {
                        int64_t c[2];
                        layout_map(l, tid, mma_acc_slot(&t, i, j, q), c);
                        int64_t row = 16 * (t.warps_m * i + wm) + lane / 4 + 8 * (q / 2);
                        int64_t col = 8 * (t.warps_n * j + wn) + 2 * (lane % 4) + q % 2;
                        cr_assert(c[0] == row && c[1] == col, "%lldx%lld thread %lld tile (%lld,%lld) c%d",
                                  (long long)t.m, (long long)t.n, (long long)tid, (long long)i, (long long)j, q);
                    }
        }
    }
    arena_free(&a);
}

/* ---- ldmatrix, simulated ------------------------------------------------------------------ */
/* Element codes: row * 4096 + col, so a loaded value names its coordinate. */
static int64_t code(int64_t row, int64_t col) { return row * 4096 + col; }

/* ldmatrix.sync.aligned.m8n8.x4[.trans].b16: lane l gives the address (an element offset in
 * smem) of row l % 8 of matrix l / 8; without .trans thread t receives, in register q, the
 * elements (row t / 4, columns 2 (t % 4) + {0, 1}) of matrix q, with .trans the elements (rows
 * 2 (t % 4) + {0, 1}, column t / 4); the first element is the low half. */
static void ldmatrix_x4(const int64_t *smem, const int64_t *addr, bool trans, int64_t out[32][4][2]) {
    for (int t = 0; t < 32; t++)
        for (int q = 0; q < 4; q++)
            for (int e = 0; e < 2; e++) {
                int row = trans ? 2 * (t % 4) + e : t / 4, col = trans ? t / 4 : 2 * (t % 4) + e;
                out[t][q][e] = smem[addr[8 * q + row] + col];
            }
}

/* The a fragments of every m tile of every warp, and the b fragments of every pair of n tiles,
 * loaded with the addresses backend/codegen_mma.c computes, hold what the fragment layouts say. */
Test(mma, ldmatrix_addressing_loads_the_fragments) {
    static const struct {
        int64_t m, n, k;
        int warps;
    } cases[] = {{128, 128, 64, 4}, {32, 32, 16, 4}, {64, 64, 32, 8}};
    Arena ar;
    arena_init(&ar);
    const Layout *fa = mma_fragment_a(&ar), *fb = mma_fragment_b(&ar);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        MmaTiling t;
        cr_assert(mma_tiling(BF16, BF16, F32, cases[k].m, cases[k].n, cases[k].k, cases[k].warps, &t));
        int64_t pitch_a = t.k + 8, pitch_b = t.n + 8;
        int64_t *sa = calloc((size_t)(t.m * pitch_a), sizeof(int64_t));
        int64_t *sb = calloc((size_t)(t.k * pitch_b), sizeof(int64_t));
        for (int64_t r = 0; r < t.m; r++)
            for (int64_t c = 0; c < t.k; c++) sa[r * pitch_a + c] = code(r, c);
        for (int64_t r = 0; r < t.k; r++)
            for (int64_t c = 0; c < t.n; c++) sb[r * pitch_b + c] = code(r, c);
        int64_t regs[32][4][2], addr[32], c[2];
        for (int w = 0; w < cases[k].warps; w++) {
            int64_t wm = w / t.warps_n, wn = w % t.warps_n;
            for (int64_t ks = 0; ks < t.k / 16; ks++) {
                for (int64_t i = 0; i < t.reps_m; i++) {
                    for (int lane = 0; lane < 32; lane++) {
                        int lr, lc;
                        mma_ldmatrix_lane(lane, &lr, &lc);
                        addr[lane] = (16 * (t.warps_m * i + wm) + lr) * pitch_a + 16 * ks + lc;
                    }
                    ldmatrix_x4(sa, addr, false, regs);
                    for (int lane = 0; lane < 32; lane++)
                        for (int r = 0; r < 8; r++) {
                            layout_map(fa, lane, r, c);
                            int64_t want = code(16 * (t.warps_m * i + wm) + c[0], 16 * ks + c[1]);
                            cr_assert_eq(regs[lane][r / 2][r % 2], want, "a%d lane %d", r, lane);
                        }
                }
                for (int64_t j = 0; j + 1 < t.reps_n; j += 2) {
                    for (int lane = 0; lane < 32; lane++) {
                        int lr, lc;
                        mma_ldmatrix_lane(lane, &lr, &lc);
                        /* column block lc / 8 is the next n tile of this warp */
                        addr[lane] = (16 * ks + lr) * pitch_b + 8 * (t.warps_n * (j + lc / 8) + wn);
                    }
                    ldmatrix_x4(sb, addr, true, regs);
                    for (int lane = 0; lane < 32; lane++)
                        for (int q = 0; q < 4; q++)
                            for (int e = 0; e < 2; e++) {
                                int64_t tile = j + q / 2;
                                layout_map(fb, lane, 2 * (q % 2) + e, c);
                                int64_t want = code(16 * ks + c[0], 8 * (t.warps_n * tile + wn) + c[1]);
                                cr_assert_eq(regs[lane][q][e], want, "b tile %lld reg %d lane %d", (long long)tile,
                                             q, lane);
                            }
                }
            }
        }
        free(sa);
        free(sb);
    }
    arena_free(&ar);
}

/* A dot's a operand in registers (mma_operand_a_layout): slot ((i * k / 16 + s) * 8 + r) of a lane
 * is element a_r of the A fragment of k step s of m repeat i, and, with the warps along M, that
 * layout is the accumulator layout of an [m, k] result: P from one dot feeds the next renamed. */
Test(mma, register_a_operand_is_the_fragment_order_and_the_accumulator_layout) {
    Arena ar;
    arena_init(&ar);
    MmaTiling t;
    cr_assert(mma_tiling_with(BF16, BF16, F32, 128, 64, 64, 8, 8, &t));
    cr_assert(t.warps_m == 8 && t.warps_n == 1 && t.instr == MMA_M16N8K16_BF16);
    const Layout *a = mma_operand_a_layout(&ar, &t), *fa = mma_fragment_a(&ar);
    cr_assert_not_null(a);
    int64_t c[2], f[2];
    for (int64_t tid = 0; tid < 256; tid++)
        for (int64_t s = 0; s < t.k / 16; s++)
            for (int r = 0; r < 8; r++) {
                layout_map(a, tid, (s * 8 + r), c);
                layout_map(fa, tid % 32, r, f);
                cr_assert(c[0] == 16 * (tid / 32) + f[0] && c[1] == 16 * s + f[1], "thread %lld step %lld a%d",
                          (long long)tid, (long long)s, r);
            }
    MmaTiling p = t;
    p.n = t.k, p.reps_n = t.k / 8;
    cr_assert(layout_equal(a, mma_acc_layout(&ar, &p)));
    /* warps split along N: no register operand */
    cr_assert(mma_tiling_with(BF16, BF16, F32, 128, 64, 64, 8, 4, &t) && t.warps_n == 2);
    cr_assert_null(mma_operand_a_layout(&ar, &t));
    arena_free(&ar);
}

/* b read through a k-major view (a transposed [N, K] buffer, K^T in attention): plain ldmatrix.x4
 * over rows of n, lane l at n row 8 * (j + l / 16) + l % 8 and k offset 8 * ((l / 8) % 2), gives
 * the same b0, b1 registers of n tiles j and j + 1 as ldmatrix.trans over rows of k. */
Test(mma, k_major_b_loads_the_fragments) {
    Arena ar;
    arena_init(&ar);
    const Layout *fb = mma_fragment_b(&ar);
    enum { N = 16, K = 16 };
    int64_t smem[N * K], addr[32], regs[32][4][2], c[2];
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) smem[n * K + k] = code(k, n); /* [N, K] row-major: b[k][n] */
    for (int lane = 0; lane < 32; lane++) addr[lane] = (8 * (lane / 16) + lane % 8) * K + 8 * ((lane / 8) % 2);
    ldmatrix_x4(smem, addr, false, regs);
    for (int lane = 0; lane < 32; lane++)
        for (int q = 0; q < 4; q++)
            for (int e = 0; e < 2; e++) {
                layout_map(fb, lane, 2 * (q % 2) + e, c);
                cr_assert_eq(regs[lane][q][e], code(c[0], 8 * (q / 2) + c[1]), "reg %d lane %d", q, lane);
            }
    arena_free(&ar);
}

/* ---- m16n8k32: 8-bit operands, four to a register ------------------------------------------- */
static const ElemType E4M3 = {EK_FLOAT, 8, 4, 3}, E5M2 = {EK_FLOAT, 8, 5, 2}, I8 = {EK_INT, 8, 0, 0},
                      I32 = {EK_INT, 32, 0, 0};

Test(mma, which_8bit_dots_qualify) {
    MmaTiling t;
    cr_assert(mma_tiling(E4M3, E4M3, F32, 128, 128, 64, 4, &t));
    cr_assert(t.instr == MMA_M16N8K32_E4M3 && t.warps_m == 2 && t.warps_n == 2 && t.reps_m == 4 && t.reps_n == 8);
    cr_assert(mma_tiling(E5M2, E5M2, F32, 64, 64, 32, 4, &t) && t.instr == MMA_M16N8K32_E5M2);
    cr_assert(mma_tiling(I8, I8, I32, 128, 128, 64, 4, &t) && t.instr == MMA_M16N8K32_S8);
    cr_assert_eq(mma_instrs[MMA_M16N8K32_E4M3].arch, 89);
    cr_assert_eq(mma_instrs[MMA_M16N8K32_S8].arch, 80);
    cr_assert(mma_instrs[MMA_M16N8K32_E4M3].k == 32 && mma_pack(MMA_M16N8K32_E4M3) == 4);
    cr_assert_eq(mma_pack(MMA_M16N8K16_BF16), 2);
    /* k a multiple of 32; operands of one type; the accumulator of the row */
    cr_assert_not(mma_tiling(E4M3, E4M3, F32, 128, 128, 16, 4, &t));
    cr_assert_not(mma_tiling(E4M3, E4M3, F32, 128, 128, 48, 4, &t));
    cr_assert_not(mma_tiling(E4M3, E5M2, F32, 128, 128, 64, 4, &t));
    cr_assert_not(mma_tiling(E4M3, E4M3, BF16, 128, 128, 64, 4, &t));
    cr_assert_not(mma_tiling(I8, I8, F32, 128, 128, 64, 4, &t));
    cr_assert_not(mma_tiling((ElemType){EK_UINT, 8, 0, 0}, (ElemType){EK_UINT, 8, 0, 0}, I32, 128, 128, 64, 4, &t));
    /* the wgmma rows of 8-bit operands: k32, the f32 accumulator (f8), s32 (i8) */
    cr_assert_eq(mma_wgmma_for(E4M3, E4M3, F32), MMA_WGMMA_E4M3);
    cr_assert_eq(mma_wgmma_for(E5M2, E5M2, F32), MMA_WGMMA_E5M2);
    cr_assert_eq(mma_wgmma_for(I8, I8, I32), MMA_WGMMA_S8);
    cr_assert_eq(mma_wgmma_for(I8, I8, F32), MMA_NONE);
    cr_assert_eq(mma_wgmma_for(E4M3, E5M2, F32), MMA_NONE);
    cr_assert(mma_instrs[MMA_WGMMA_E4M3].m == 64 && mma_instrs[MMA_WGMMA_E4M3].k == 32 && mma_pack(MMA_WGMMA_E4M3) == 4);
    cr_assert(mma_wgmma_tiling(E4M3, E4M3, F32, 128, 256, 128, 8, &t) && t.instr == MMA_WGMMA_E4M3 && t.warps_m == 8 &&
              t.reps_m == 1 && t.n == 256);
    cr_assert_not(mma_wgmma_tiling(E4M3, E4M3, F32, 128, 128, 48, 4, &t)); /* k a multiple of 32 */
    cr_assert(mma_takes(MMA_WGMMA_E4M3, E4M3, E4M3, F32) && !mma_takes(MMA_WGMMA_E4M3, E5M2, E5M2, F32));
}

/* The PTX ISA tables for mma.m16n8k32 with .e4m3/.e5m2/.s8: grp = lane / 4, tig = lane % 4;
 * a_i at row grp (+8 for 4 <= i % 8 < 8), column 4 tig + i % 4 (+16 for i >= 8); b_i at row
 * 4 tig + i % 4 (+16 for i >= 4), column grp. */
Test(mma, fragments_k32_match_ptx_tables) {
    Arena a;
    arena_init(&a);
    const Layout *fa = mma_fragment_a_of(&a, MMA_M16N8K32_E4M3), *fb = mma_fragment_b_of(&a, MMA_M16N8K32_S8);
    cr_assert(fa->shape[0] == 16 && fa->shape[1] == 32 && fa->local_size == 16 && fa->num_threads == 32);
    cr_assert(fb->shape[0] == 32 && fb->shape[1] == 8 && fb->local_size == 8 && fb->num_threads == 32);
    cr_assert(layout_is_exact(fa) && layout_is_exact(fb));
    for (int64_t lane = 0; lane < 32; lane++) {
        int64_t grp = lane / 4, tig = lane % 4, c[2];
        for (int64_t i = 0; i < 16; i++) {
            layout_map(fa, lane, i, c);
            int64_t row = (i < 4 || (i >= 8 && i < 12)) ? grp : grp + 8;
            int64_t col = tig * 4 + (i & 3) + (i >= 8 ? 16 : 0);
            cr_assert(c[0] == row && c[1] == col, "a%lld lane %lld: (%lld, %lld)", (long long)i, (long long)lane,
                      (long long)c[0], (long long)c[1]);
        }
        for (int64_t i = 0; i < 8; i++) {
            layout_map(fb, lane, i, c);
            cr_assert(c[0] == tig * 4 + (i & 3) + (i >= 4 ? 16 : 0) && c[1] == grp, "b%lld lane %lld", (long long)i,
                      (long long)lane);
        }
    }
    /* the 16-bit rows keep the m16n8k16 fragments */
    cr_assert(layout_equal(mma_fragment_a_of(&a, MMA_M16N8K16_F16), mma_fragment_a(&a)));
    arena_free(&a);
}

/* ldmatrix.x4 (b16, no .trans) on 8-bit data: lane l gives the byte address of row l % 8 of matrix
 * l / 8; thread t receives in register q the 4 bytes (row t / 4, bytes 4 (t % 4) .. + 3) of matrix q,
 * the lowest byte first. */
static void ldmatrix_x4_bytes(const int64_t *smem, const int64_t *addr, int64_t out[32][4][4]) {
    for (int t = 0; t < 32; t++)
        for (int q = 0; q < 4; q++)
            for (int e = 0; e < 4; e++) out[t][q][e] = smem[addr[8 * q + t / 4] + 4 * (t % 4) + e];
}

/* The addresses backend/codegen_mma.c uses for 8-bit operands: a [M, K] row-major, lane l at row
 * l % 16 and byte column 16 * (l / 16) of the 16 x 32 block (mma_ldmatrix_lane doubled); b as a
 * k-major [N, K] buffer, lane l at n row 8 * (j + l / 16) + l % 8 and k 16 * ((l / 8) % 2). Every
 * register of every lane holds the bytes the k32 fragment layouts name. */
Test(mma, ldmatrix_addressing_loads_the_8bit_fragments) {
    static const struct {
        int64_t m, n, k;
        int warps;
    } cases[] = {{128, 128, 64, 4}, {64, 32, 32, 4}, {64, 64, 128, 8}};
    Arena ar;
    arena_init(&ar);
    const Layout *fa = mma_fragment_a_of(&ar, MMA_M16N8K32_E4M3), *fb = mma_fragment_b_of(&ar, MMA_M16N8K32_E4M3);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        MmaTiling t;
        cr_assert(mma_tiling(E4M3, E4M3, F32, cases[k].m, cases[k].n, cases[k].k, cases[k].warps, &t));
        int64_t pitch_a = t.k + 16, pitch_b = t.k + 16; /* staged rows padded by 16 bytes */
        int64_t *sa = calloc((size_t)(t.m * pitch_a), sizeof(int64_t));
        int64_t *sb = calloc((size_t)(t.n * pitch_b), sizeof(int64_t));
        for (int64_t r = 0; r < t.m; r++)
            for (int64_t c = 0; c < t.k; c++) sa[r * pitch_a + c] = code(r, c);
        for (int64_t n = 0; n < t.n; n++)
            for (int64_t c = 0; c < t.k; c++) sb[n * pitch_b + c] = code(c, n); /* b[k][n] stored [N, K] */
        int64_t regs[32][4][4], addr[32], c[2];
        for (int w = 0; w < cases[k].warps; w++) {
            int64_t wm = w / t.warps_n, wn = w % t.warps_n;
            for (int64_t ks = 0; ks < t.k / 32; ks++) {
                for (int64_t i = 0; i < t.reps_m; i++) {
                    for (int lane = 0; lane < 32; lane++) {
                        int lr, lc;
                        mma_ldmatrix_lane(lane, &lr, &lc);
                        addr[lane] = (16 * (t.warps_m * i + wm) + lr) * pitch_a + 32 * ks + 2 * lc;
                    }
                    ldmatrix_x4_bytes(sa, addr, regs);
                    for (int lane = 0; lane < 32; lane++)
                        for (int r = 0; r < 16; r++) {
                            layout_map(fa, lane, r, c);
                            int64_t want = code(16 * (t.warps_m * i + wm) + c[0], 32 * ks + c[1]);
                            cr_assert_eq(regs[lane][r / 4][r % 4], want, "a%d lane %d", r, lane);
                        }
                }
                for (int64_t j = 0; j + 1 < t.reps_n; j += 2) {
                    for (int lane = 0; lane < 32; lane++)
                        addr[lane] = (8 * (t.warps_n * (j + lane / 16) + wn) + lane % 8) * pitch_b + 32 * ks +
                                     16 * ((lane / 8) % 2);
                    ldmatrix_x4_bytes(sb, addr, regs);
                    for (int lane = 0; lane < 32; lane++)
                        for (int q = 0; q < 4; q++)
                            for (int e = 0; e < 4; e++) {
                                int64_t tile = j + q / 2;
                                layout_map(fb, lane, 4 * (q % 2) + e, c);
                                int64_t want = code(32 * ks + c[0], 8 * (t.warps_n * tile + wn) + c[1]);
                                cr_assert_eq(regs[lane][q][e], want, "b tile %lld reg %d byte %d lane %d",
                                             (long long)tile, q, e, lane);
                            }
                }
            }
        }
        free(sa);
        free(sb);
    }
    arena_free(&ar);
}

/* An 8-bit a operand in registers: slot (i * k / 32 + s) * 16 + r is a_r of k step s, m repeat i. */
Test(mma, register_a_operand_8bit_is_the_fragment_order) {
    Arena ar;
    arena_init(&ar);
    MmaTiling t;
    cr_assert(mma_tiling_with(E4M3, E4M3, F32, 128, 64, 64, 8, 8, &t));
    const Layout *a = mma_operand_a_layout(&ar, &t), *fa = mma_fragment_a_of(&ar, t.instr);
    cr_assert_not_null(a);
    cr_assert_eq(a->local_size, 2 * 16);
    int64_t c[2], f[2];
    for (int64_t tid = 0; tid < 256; tid++)
        for (int64_t s = 0; s < t.k / 32; s++)
            for (int r = 0; r < 16; r++) {
                layout_map(a, tid, s * 16 + r, c);
                layout_map(fa, tid % 32, r, f);
                cr_assert(c[0] == 16 * (tid / 32) + f[0] && c[1] == 32 * s + f[1], "thread %lld step %lld a%d",
                          (long long)tid, (long long)s, r);
            }
    arena_free(&ar);
}

/* Where the target has no f8 row (sm_80), an f8 dot runs on m16n8k16_bf16 with its operands
 * widened (every f8e4m3 and f8e5m2 value is a bf16 value): the record is accepted for f8 types,
 * not for others, and tiles like the bf16 dot's. */
Test(mma, f8_dots_widen_to_the_bf16_row) {
    cr_assert_eq(mma_widened_for(E4M3, E4M3, F32), MMA_M16N8K16_BF16);
    cr_assert_eq(mma_widened_for(E5M2, E5M2, F32), MMA_M16N8K16_BF16);
    cr_assert_eq(mma_widened_for(E4M3, E5M2, F32), MMA_NONE);
    cr_assert_eq(mma_widened_for(I8, I8, I32), MMA_NONE);
    cr_assert_eq(mma_widened_for(BF16, BF16, F32), MMA_NONE);
    cr_assert(mma_takes(MMA_M16N8K16_BF16, E4M3, E4M3, F32) && mma_takes(MMA_M16N8K32_E4M3, E4M3, E4M3, F32));
    cr_assert_not(mma_takes(MMA_M16N8K16_BF16, I8, I8, I32));
    cr_assert_not(mma_takes(MMA_M16N8K32_E5M2, E4M3, E4M3, F32));
    MmaTiling t, u;
    cr_assert(mma_tiling_instr(MMA_M16N8K16_BF16, E4M3, 128, 128, 48, 4, 0, &t)); /* k a multiple of 16 */
    cr_assert(mma_tiling(BF16, BF16, F32, 128, 128, 48, 4, &u));
    cr_assert(t.instr == u.instr && t.warps_m == u.warps_m && t.reps_m == u.reps_m && t.reps_n == u.reps_n && !t.f16);
    cr_assert_not(mma_tiling_instr(MMA_NONE, E4M3, 128, 128, 48, 4, 0, &t));
}
