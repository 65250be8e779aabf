/*
 * test_tma_gpu.c: stdlib/core/gemm.tile through the TMA rings of the stages pass on an sm_90a GPU.
 *
 * A launch whose tensors the launch facts prove fit for TMA (16-byte aligned, rows multiples of
 * 16 elements) gets the variant with copy_tma rings and its tensor maps encoded at launch; the
 * results must match a C reference (double sums of the same bf16 inputs) at shapes with tails in
 * every dimension, and be bit-identical to the cp.async ring of a context opened with TILE_TMA=0
 * (only the data movement differs). A shape whose row strides are not multiples of 16 elements
 * rules TMA out: that launch uses cp.async and must be right too. Skips without a GPU, on GPUs
 * other than sm_90a, and where the driver has no cuTensorMapEncodeTiled.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"
#include "runtime/cuda.h"
#include "../testutil.h"

static uint16_t bf16_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

static double bf16_value(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static tile_context *open_sm90a(void) {
    tile_context *ctx;
    if (tile_context_create(TILE_DEVICE_CUDA, 0, &ctx) != TILE_OK)
        cr_skip_test("no CUDA device: %s", tile_context_message(NULL));
    const char *arch = rt_cuda_arch(ctx);
    if (!arch || strcmp(arch, "sm_90a") != 0) {
        tile_context_destroy(ctx);
        cr_skip_test("TMA rings are made for sm_90a only (this GPU: %s)", arch ? arch : "none");
    }
    return ctx;
}

static tile_kernel *gemm_kernel(tile_context *ctx, tile_program **p, int bn) {
    size_t len;
    char *text = test_read_source_file("stdlib/core/gemm.tile", &len);
    cr_assert_eq(tile_program_from_string(ctx, "gemm.tile", text, len, p), TILE_OK, "%s", tile_context_message(ctx));
    free(text);
    tile_constant c[4] = {{.name = "BM", .i = 128}, {.name = "BN", .i = bn}, {.name = "BK", .i = 64},
                          {.name = "STAGES", .i = 3}};
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(*p, "gemm", c, 4, &k), TILE_OK, "%s", tile_context_message(ctx));
    return k;
}

/* Runs gemm (M x K @ K x N) on ctx with the inputs a, b; returns the result (bf16 bits) and the
 * tensor maps of the launch's variant in *maps. */
static uint16_t *run(tile_context *ctx, tile_kernel *k, int64_t m, int64_t n, int64_t kk, const uint16_t *a,
                     const uint16_t *b, int *maps) {
    void *da, *db, *dc;
    cr_assert_eq(tile_alloc(ctx, (size_t)(m * kk) * 2, &da), TILE_OK);
    cr_assert_eq(tile_alloc(ctx, (size_t)(kk * n) * 2, &db), TILE_OK);
    cr_assert_eq(tile_alloc(ctx, (size_t)(m * n) * 2, &dc), TILE_OK);
    cr_assert_eq(tile_copy_to_device(ctx, da, a, (size_t)(m * kk) * 2), TILE_OK);
    cr_assert_eq(tile_copy_to_device(ctx, db, b, (size_t)(kk * n) * 2), TILE_OK);
    int64_t sa[2] = {m, kk}, sb[2] = {kk, n}, sc[2] = {m, n};
    tile_arg args[3] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, da, 2, sa)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, db, 2, sb)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, dc, 2, sc)}};
    cr_assert_eq(tile_kernel_launch(k, args, 3, NULL), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(tile_kernel_launch(k, args, 3, NULL), TILE_OK, "again (the maps of the previous launch)");
    cr_assert_eq(tile_synchronize(ctx), TILE_OK, "%s", tile_context_message(ctx));
    *maps = rt_cuda_num_tma_maps(k, args, 3);
    uint16_t *c = malloc((size_t)(m * n) * 2);
    cr_assert_eq(tile_copy_to_host(ctx, c, dc, (size_t)(m * n) * 2), TILE_OK);
    tile_free(ctx, da), tile_free(ctx, db), tile_free(ctx, dc);
    return c;
}

static void check_against_reference(const uint16_t *c, const uint16_t *a, const uint16_t *b, int64_t m, int64_t n,
                                    int64_t kk, const char *what) {
    for (int64_t i = 0; i < m; i += 7)
        for (int64_t j = 0; j < n; j++) {
            double want = 0;
            for (int64_t p = 0; p < kk; p++) want += bf16_value(a[i * kk + p]) * bf16_value(b[p * n + j]);
            double got = bf16_value(c[i * n + j]);
            cr_assert(fabs(got - want) <= 2e-2 + 8e-3 * fabs(want), "%s: c[%lld, %lld] = %g, expected %g", what,
                      (long long)i, (long long)j, got, want);
        }
}

Test(tma_gpu, gemm_through_tma_rings) {
    tile_context *ctx = open_sm90a();
    setenv("TILE_TMA", "0", 1);
    tile_context *plain_ctx;
    cr_assert_eq(tile_context_create(TILE_DEVICE_CUDA, 0, &plain_ctx), TILE_OK);
    unsetenv("TILE_TMA");
    /* M, N, K with tails against 128 x BN x 64 tiles; the last has rows of 520 and 1000
     * elements (not multiples of 16): TMA ruled out */
    const int64_t shapes[][3] = {{1000, 528, 1008}, {129, 80, 272}, {1000, 520, 1000}};
    const int bns[] = {64, 128};
    for (int bi = 0; bi < 2; bi++) {
        tile_program *p, *pp;
        tile_kernel *k = gemm_kernel(ctx, &p, bns[bi]), *kp = gemm_kernel(plain_ctx, &pp, bns[bi]);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int64_t m = shapes[s][0], n = shapes[s][1], kk = shapes[s][2];
            uint16_t *a = malloc((size_t)(m * kk) * 2), *b = malloc((size_t)(kk * n) * 2);
            uint64_t r = 11;
            for (int64_t i = 0; i < m * kk; i++) a[i] = bf16_bits((float)((r = r * 6364136223846793005ull + 1) >> 40) / 16777216.0f - 0.5f);
            for (int64_t i = 0; i < kk * n; i++) b[i] = bf16_bits((float)((r = r * 6364136223846793005ull + 1) >> 40) / 16777216.0f - 0.5f);
            int maps, plain_maps;
            uint16_t *c = run(ctx, k, m, n, kk, a, b, &maps), *cp = run(plain_ctx, kp, m, n, kk, a, b, &plain_maps);
            char what[96];
            snprintf(what, sizeof what, "BN=%d %lldx%lldx%lld (%d tensor maps)", bns[bi], (long long)m, (long long)n,
                     (long long)kk, maps);
            cr_log_info("%s", what);
            if (s < 2 && !cuda_has_tensor_maps()) cr_skip_test("the driver has no cuTensorMapEncodeTiled");
            /* BN = 64: A and B through TMA; BN = 128: B's 256-byte rows keep cp.async */
            cr_assert_eq(maps, s == 2 ? 0 : bns[bi] == 64 ? 2 : 1, "%s", what);
            cr_assert_eq(plain_maps, 0);
            check_against_reference(c, a, b, m, n, kk, what);
            cr_assert(memcmp(c, cp, (size_t)(m * n) * 2) == 0, "%s: TMA and cp.async rings differ", what);
            free(a), free(b), free(c), free(cp);
        }
        tile_program_destroy(p);
        tile_program_destroy(pp);
    }
    tile_context_destroy(plain_ctx);
    tile_context_destroy(ctx);
}
