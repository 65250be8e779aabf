/* test_cluster_gpu.c: stdlib/core/gemm.tile with thread-block clusters and TMA multicast
 * (passes/cluster.c, on by default) on the GPU: at shapes whose grids are even (clusters of 2 whose
 * blocks share n0, do not, or share m0) and odd (no clusters), for the default tiles and BN = 256,
 * W = 8, the result is bit for bit the one of the same kernel built with TILE_CLUSTER=0 (a context
 * made after setting it compiles its own image: the cache key carries the setting), and within
 * bf16 rounding of a C reference in double. Leading dimensions are multiples of 16, so the variant
 * with TMA rings (the one the pass changes) runs. Skips without a GPU. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/tile.h"

static uint16_t bf16_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

static float bf16_value(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* gemm with (BN, W) on a new cuda context (TILE_CLUSTER as set now) into c; false without a GPU. */
static bool run_gemm(int bn, int w, int64_t m, int64_t n, int64_t k, const uint16_t *a, const uint16_t *b, uint16_t *c) {
    tile_context *ctx;
    if (tile_context_create(TILE_DEVICE_CUDA, 0, &ctx) != TILE_OK) return false;
    char path[4096];
    snprintf(path, sizeof path, "%s/stdlib/core/gemm.tile", TILE_SOURCE_DIR);
    tile_program *p;
    cr_assert_eq(tile_program_from_file(ctx, path, &p), TILE_OK, "%s", tile_context_message(ctx));
    tile_constant consts[3] = {{.name = "BN", .i = bn}, {.name = "W", .i = w}, {.name = "STAGES", .i = 3}};
    tile_kernel *kern;
    cr_assert_eq(tile_program_get_kernel(p, "gemm", consts, 3, &kern), TILE_OK, "%s", tile_context_message(ctx));
    void *da, *db, *dc;
    cr_assert_eq(tile_alloc(ctx, (size_t)(m * k * 2), &da), TILE_OK);
    cr_assert_eq(tile_alloc(ctx, (size_t)(k * n * 2), &db), TILE_OK);
    cr_assert_eq(tile_alloc(ctx, (size_t)(m * n * 2), &dc), TILE_OK);
    cr_assert_eq(tile_copy_to_device(ctx, da, a, (size_t)(m * k * 2)), TILE_OK);
    cr_assert_eq(tile_copy_to_device(ctx, db, b, (size_t)(k * n * 2)), TILE_OK);
    int64_t sa[2] = {m, k}, sb[2] = {k, n}, sc[2] = {m, n};
    tile_arg args[3] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, da, 2, sa)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, db, 2, sb)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, dc, 2, sc)}};
    cr_assert_eq(tile_kernel_launch(kern, args, 3, NULL), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(tile_synchronize(ctx), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(tile_copy_to_host(ctx, c, dc, (size_t)(m * n * 2)), TILE_OK);
    tile_free(ctx, da), tile_free(ctx, db), tile_free(ctx, dc);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
    return true;
}

Test(cluster_gpu, gemm_with_clusters_gives_the_bits_of_gemm_without) {
    static const struct {
        int bn, w;
        int64_t m, n, k;
    } cases[] = {
        {128, 4, 200, 144, 448},  /* 2 x 2 tiles: peers share n0 */
        {128, 4, 384, 256, 208},  /* 3 tile rows in one group: pairs on n0 and a pair on nothing */
        {128, 4, 130, 512, 144},  /* 2 x 4 */
        {128, 4, 100, 512, 144},  /* one tile row: peers share m0 */
        {128, 4, 65, 272, 304},   /* 3 tiles: no clusters */
        {256, 8, 640, 1024, 512}, /* 5 x 4: a group of 5 rows */
        {256, 8, 768, 768, 512},  /* 6 x 3 */
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int64_t m = cases[ci].m, n = cases[ci].n, k = cases[ci].k;
        uint16_t *a = malloc((size_t)(m * k) * 2), *b = malloc((size_t)(k * n) * 2);
        uint16_t *with = calloc((size_t)(m * n), 2), *without = calloc((size_t)(m * n), 2);
        uint64_t s = 5 + ci;
        for (int64_t i = 0; i < m * k; i++) a[i] = bf16_bits((float)((s = s * 6364136223846793005ull + 1) >> 40) / 16777216.0f - 0.5f);
        for (int64_t i = 0; i < k * n; i++) b[i] = bf16_bits((float)((s = s * 6364136223846793005ull + 1) >> 40) / 16777216.0f - 0.5f);
        setenv("TILE_CLUSTER", "1", 1); /* off by default */
        if (!run_gemm(cases[ci].bn, cases[ci].w, m, n, k, a, b, with)) cr_skip_test("no CUDA device: %s", tile_context_message(NULL));
        setenv("TILE_CLUSTER", "0", 1);
        cr_assert(run_gemm(cases[ci].bn, cases[ci].w, m, n, k, a, b, without));
        unsetenv("TILE_CLUSTER");
        cr_assert(memcmp(with, without, (size_t)(m * n) * 2) == 0, "case %zu (%lldx%lldx%lld, BN %d): clusters change bits",
                  ci, (long long)m, (long long)n, (long long)k, cases[ci].bn);
        double worst = 0;
        for (int64_t i = 0; i < m; i += 7)
            for (int64_t j = 0; j < n; j++) {
                double ref = 0;
                for (int64_t kk = 0; kk < k; kk++) ref += (double)bf16_value(a[i * k + kk]) * bf16_value(b[kk * n + j]);
                double err = fabs(bf16_value(with[i * n + j]) - ref) / (1 + fabs(ref));
                if (err > worst) worst = err;
            }
        cr_assert_lt(worst, 1e-2, "case %zu: relative error %g against the reference", ci, worst);
        cr_log_info("case %zu (%lldx%lldx%lld, BN %d): same bits as TILE_CLUSTER=0, worst error %.2e", ci, (long long)m,
                    (long long)n, (long long)k, cases[ci].bn, worst);
        free(a), free(b), free(with), free(without);
    }
}
