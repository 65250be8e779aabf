/* gemm_fp8_check.h: one case of stdlib/core/gemm_fp8.tile, run on any context through the public
 * API and checked element by element against a C reference in double. Included by
 * test_gemm_fp8.c (the VM) and gpu/test_gemm_fp8_gpu.c (CUDA), so both devices run the same cases
 * with the same checks.
 *
 * a [M, K] and b [N, K] hold random f8e4m3 values (f8e5m2 for the _e5m2 kernels; the reference
 * uses the exact rounded inputs, so every product is exact); the per-tensor scales are random in [0.5, 2), the block scales
 * (scale_a [M, cdiv(K, 128)], scale_b [cdiv(N, 128), cdiv(K, 128)]) in [0.01, 1). The tolerance
 * is one rounding to the result type plus the f32 accumulation and the scaling: 4 (K + 256)
 * 2^-24 times the sum of the magnitudes of the scaled products (the block-scaled kernel rounds
 * once more per 128-wide block when it promotes a partial product); on a GPU the per-tensor
 * kernels' fast accumulation (wgmma's f8 accumulator) gets (K / 32 + 1) 2^-13 instead. */
#ifndef TILE_TESTS_GEMM_FP8_CHECK_H
#define TILE_TESTS_GEMM_FP8_CHECK_H
#include <criterion/criterion.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/tile.h"

typedef struct GemmFp8Case {
    const char *kernel; /* gemm_fp8, gemm_fp8_f32, gemm_fp8_block, gemm_fp8_block_f32 */
    int64_t m, n, k;
    int bm, bn, bk;     /* tile constants; 0: the kernel's defaults (bk: per-tensor kernels only) */
} GemmFp8Case;

static uint64_t gemm_fp8_seed = 0x9e3779b97f4a7c15ull;
static double gemm_fp8_uniform(double lo, double hi) {
    gemm_fp8_seed = gemm_fp8_seed * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (double)(gemm_fp8_seed >> 11) / 9007199254740992.0;
}

/* n random values of dt in [lo, hi) into a new device buffer; their exact values into exact. */
static void *gemm_fp8_random(tile_context *ctx, tile_dtype dt, int64_t n, double lo, double hi, double *exact) {
    size_t bytes = tile_dtype_bytes(dt, n);
    void *host = malloc(bytes ? bytes : 1), *dev = NULL;
    for (int64_t i = 0; i < n; i++) exact[i] = gemm_fp8_uniform(lo, hi);
    cr_assert_eq(tile_pack(dt, exact, n, host), TILE_OK);
    tile_unpack(dt, host, n, exact);
    if (bytes) {
        cr_assert_eq(tile_alloc(ctx, bytes, &dev), TILE_OK, "%s", tile_context_message(ctx));
        cr_assert_eq(tile_copy_to_device(ctx, dev, host, bytes), TILE_OK, "%s", tile_context_message(ctx));
    }
    free(host);
    return dev;
}

static tile_arg gemm_fp8_arg(tile_dtype dt, void *data, int rank, int64_t d0, int64_t d1) {
    int64_t shape[2] = {d0, d1};
    return (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(dt, data, rank, shape)};
}

/* Runs one case on ctx with the kernel of prog and checks every element of c. */
static void gemm_fp8_check(tile_context *ctx, tile_program *prog, const GemmFp8Case *gc) {
    const int64_t m = gc->m, n = gc->n, k = gc->k, kb = (k + 127) / 128, nb = (n + 127) / 128;
    const bool block = strncmp(gc->kernel, "gemm_fp8_block", 14) == 0;
    const tile_dtype in = strstr(gc->kernel, "e5m2") ? TILE_F8E5M2 : TILE_F8E4M3;
    const tile_dtype out = strstr(gc->kernel, "_f32") ? TILE_F32 : TILE_BF16;
    char what[160];
    snprintf(what, sizeof what, "%s %lldx%lldx%lld tiles %d,%d,%d", gc->kernel, (long long)m, (long long)n,
             (long long)k, gc->bm, gc->bn, gc->bk);
    tile_constant consts[3];
    size_t nconsts = 0;
    if (gc->bm) consts[nconsts++] = (tile_constant){.name = "BM", .i = gc->bm};
    if (gc->bn) consts[nconsts++] = (tile_constant){.name = "BN", .i = gc->bn};
    if (gc->bk) consts[nconsts++] = (tile_constant){.name = "BK", .i = gc->bk};
    tile_kernel *kern;
    cr_assert_eq(tile_program_get_kernel(prog, gc->kernel, consts, nconsts, &kern), TILE_OK, "%s: %s", what,
                 tile_context_message(ctx));

    const int64_t nsa = block ? m * kb : 1, nsb = block ? nb * kb : 1;
    double *a = malloc(sizeof(double) * (size_t)(m * k + 1)), *b = malloc(sizeof(double) * (size_t)(n * k + 1));
    double *sa = malloc(sizeof(double) * (size_t)(nsa + 1)), *sb = malloc(sizeof(double) * (size_t)(nsb + 1));
    double *got = malloc(sizeof(double) * (size_t)(m * n + 1));
    void *da = gemm_fp8_random(ctx, in, m * k, -4, 4, a);
    void *db = gemm_fp8_random(ctx, in, n * k, -4, 4, b);
    void *dsa = gemm_fp8_random(ctx, TILE_F32, nsa, block ? 0.01 : 0.5, block ? 1 : 2, sa);
    void *dsb = gemm_fp8_random(ctx, TILE_F32, nsb, block ? 0.01 : 0.5, block ? 1 : 2, sb);
    void *dc = NULL, *hc = malloc(tile_dtype_bytes(out, m * n) + 1);
    cr_assert_eq(tile_alloc(ctx, tile_dtype_bytes(out, m * n) + 1, &dc), TILE_OK, "%s", tile_context_message(ctx));

    tile_arg args[5] = {gemm_fp8_arg(in, da, 2, m, k), gemm_fp8_arg(in, db, 2, n, k),
                        gemm_fp8_arg(out, dc, 2, m, n),
                        block ? gemm_fp8_arg(TILE_F32, dsa, 2, m, kb) : gemm_fp8_arg(TILE_F32, dsa, 1, 1, 0),
                        block ? gemm_fp8_arg(TILE_F32, dsb, 2, nb, kb) : gemm_fp8_arg(TILE_F32, dsb, 1, 1, 0)};
    cr_assert_eq(tile_kernel_launch(kern, args, 5, NULL), TILE_OK, "%s: %s", what, tile_context_message(ctx));
    cr_assert_eq(tile_synchronize(ctx), TILE_OK, "%s: %s", what, tile_context_message(ctx));
    cr_assert_eq(tile_copy_to_host(ctx, hc, dc, tile_dtype_bytes(out, m * n)), TILE_OK, "%s", what);
    tile_unpack(out, hc, m * n, got);

    /* f32 accumulation: about k roundings of 2^-24; on a GPU the per-tensor kernels chain the
     * whole K through the tensor cores' f8 accumulator, which keeps about 14 bits (lang/SPEC.md,
     * section 11): a rounding of 2^-13 of the running sum per k32 step. The block-scaled kernels
     * promote every 128 of K into f32 and stay within the f32 bound, as the VM does everywhere. */
    const double out_rel = out == TILE_F32 ? 1e-6 : 1.0 / 128;
    const bool fast_accum = !block && tile_context_device(ctx) != TILE_DEVICE_VM;
    const double accum = fast_accum ? (double)(k / 32 + 1) * ldexp(1.0, -13) : 4.0 * (double)(k + 256) * ldexp(1.0, -24);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double want = 0, mag = 0;
            for (int64_t q = 0; q < k; q++) {
                double s = block ? sa[i * kb + q / 128] * sb[(j / 128) * kb + q / 128] : sa[0] * sb[0];
                double p = a[i * k + q] * b[j * k + q] * s;
                want += p, mag += fabs(p);
            }
            double tol = out_rel * fabs(want) + accum * mag + 1e-30, g = got[i * n + j];
            cr_assert(fabs(g - want) <= tol, "%s: c[%lld, %lld] = %.9g, expected %.9g (tolerance %.3g)", what,
                      (long long)i, (long long)j, g, want, tol);
        }
    if (da) tile_free(ctx, da);
    if (db) tile_free(ctx, db);
    if (dsa) tile_free(ctx, dsa);
    if (dsb) tile_free(ctx, dsb);
    tile_free(ctx, dc);
    free(a), free(b), free(sa), free(sb), free(got), free(hc);
}

/* The cases both devices run: small tiles at shapes that are no multiple of them (a K tail inside
 * a 128-wide scale block, N across two blocks of b's scales), dimensions of 1, K = 0 (per-tensor),
 * and each kernel's default tiles with tails. */
static size_t gemm_fp8_cases(GemmFp8Case *out, size_t cap) {
    size_t n = 0;
#define ADD(...) do { if (n < cap) out[n] = (GemmFp8Case){__VA_ARGS__}; n++; } while (0)
    static const char *tensor[] = {"gemm_fp8", "gemm_fp8_f32"}, *block[] = {"gemm_fp8_block", "gemm_fp8_block_f32"};
    static const int64_t shapes[][3] = {{70, 45, 100}, {1, 1, 1}, {33, 17, 65}, {1, 37, 64}, {37, 1, 96}};
    for (int t = 0; t < 2; t++) {
        for (int s = 0; s < 5; s++)
            ADD(.kernel = tensor[t], .m = shapes[s][0], .n = shapes[s][1], .k = shapes[s][2], .bm = 32, .bn = 16, .bk = 32);
        ADD(.kernel = tensor[t], .m = 5, .n = 7, .k = 0, .bm = 32, .bn = 16, .bk = 32);
        ADD(.kernel = block[t], .m = 70, .n = 150, .k = 300, .bm = 32, .bn = 32);
        ADD(.kernel = block[t], .m = 1, .n = 1, .k = 1, .bm = 32, .bn = 32);
        ADD(.kernel = block[t], .m = 33, .n = 129, .k = 129, .bm = 32, .bn = 64);
    }
    ADD(.kernel = "gemm_fp8", .m = 130, .n = 140, .k = 200);
    ADD(.kernel = "gemm_fp8_e5m2", .m = 70, .n = 45, .k = 100, .bm = 32, .bn = 16, .bk = 32);
    ADD(.kernel = "gemm_fp8_block_e5m2", .m = 33, .n = 129, .k = 129, .bm = 32, .bn = 64);
    ADD(.kernel = "gemm_fp8_e5m2", .m = 130, .n = 140, .k = 200);
    ADD(.kernel = "gemm_fp8_block_f32", .m = 130, .n = 140, .k = 260);
#undef ADD
    return n;
}

/* Part `part` of `parts` of the cases (every parts-th from part), so that a suite spreads them
 * over tests that Criterion runs in parallel. */
static void gemm_fp8_check_part(tile_context *ctx, tile_program *prog, int part, int parts) {
    enum { MAX_CASES = 64 };
    GemmFp8Case cases[MAX_CASES];
    size_t n = gemm_fp8_cases(cases, MAX_CASES);
    cr_assert_leq(n, (size_t)MAX_CASES);
    for (size_t i = (size_t)part; i < n; i += (size_t)parts) gemm_fp8_check(ctx, prog, &cases[i]);
}
#endif
