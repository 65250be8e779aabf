/* test_launch_gpu.c: the launch fast path on a real device (runtime/launch.c, rt_cuda_select):
 * vector_add launched many times with the facts changing between launches (aligned and
 * misaligned data pointers, sizes that are and are not multiples of 16), so that the variant
 * taken without the lock must follow the facts, and the grid computed by the compiled steps
 * must cover every element; each result is checked exactly. Also a program made twice from the
 * same source gives the same loaded kernel, and launches on a stream of one's own. Skips with
 * a message where there is no GPU. And gemm through TMA rings on sm_90a (tma_gpu, below). And
 * lazy compilation: a first launch compiles only the function it runs, each cached on disk. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include "runtime/cuda.h"
#include "support/support.h"
#include "runtime/runtime.h"
#include "../testutil.h"

static tile_context *ctx;

static void open_gpu(void) {
    if (tile_context_create(TILE_DEVICE_CUDA, 0, &ctx) != TILE_OK)
        cr_skip_test("no CUDA device: %s", tile_context_message(NULL));
}

static void close_gpu(void) {
    tile_context_destroy(ctx);
    ctx = NULL;
}

TestSuite(launch_gpu, .init = open_gpu, .fini = close_gpu, .timeout = 600);

Test(launch_gpu, facts_change_between_launches) {
    size_t len;
    char *src = test_read_source_file("stdlib/core/vector_add.tile", &len);
    tile_program *p, *again;
    tile_status st = tile_program_from_string(ctx, "vector_add.tile", src, len, &p);
    cr_assert_eq(st, TILE_OK, "%s", tile_context_message(ctx));
    tile_kernel *k, *k2;
    st = tile_program_get_kernel(p, "vector_add", NULL, 0, &k);
    if (st == TILE_ERROR_UNSUPPORTED) cr_skip_test("%s", tile_context_message(ctx));
    cr_assert_eq(st, TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_not_null(k->grid, "vector_add's grid compiles into steps");
    cr_assert_eq(tile_program_from_string(ctx, "vector_add.tile", src, len, &again), TILE_OK);
    cr_assert_eq(tile_program_get_kernel(again, "vector_add", NULL, 0, &k2), TILE_OK);
    cr_assert_eq(k2, k, "the same source gives the same kernel without compiling");
    tile_program_destroy(again);

    enum { MAX = 70000 };
    float *ha = malloc(sizeof(float) * (MAX + 4)), *hb = malloc(sizeof(float) * (MAX + 4)),
          *hc = malloc(sizeof(float) * (MAX + 4));
    for (int i = 0; i < MAX + 4; i++) {
        ha[i] = (float)i;
        hb[i] = 0.5f * (float)(i % 97);
    }
    void *da, *db, *dc;
    size_t bytes = sizeof(float) * (MAX + 4);
    cr_assert_eq(tile_alloc(ctx, bytes, &da), TILE_OK);
    cr_assert_eq(tile_alloc(ctx, bytes, &db), TILE_OK);
    cr_assert_eq(tile_alloc(ctx, bytes, &dc), TILE_OK);
    cr_assert_eq(tile_copy_to_device(ctx, da, ha, bytes), TILE_OK);
    cr_assert_eq(tile_copy_to_device(ctx, db, hb, bytes), TILE_OK);
    tile_stream *stream;
    cr_assert_eq(tile_stream_create(ctx, &stream), TILE_OK, "%s", tile_context_message(ctx));
    static const int64_t sizes[] = {1, 16, 1000, 1024, 4096, 4097, 65536, 69999};
    for (int round = 0; round < 3; round++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (int offset = 0; offset < 2; offset++) { /* offset 1: 4 bytes in, not 16-aligned */
                int64_t n = sizes[s];
                float *a = (float *)da + offset, *b = (float *)db + offset, *c = (float *)dc + offset;
                cr_assert_eq(tile_copy_to_device(ctx, dc, hb, bytes), TILE_OK); /* c starts as b, not a + b */
                tile_arg args[3] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, a, 1, &n)},
                                    {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, b, 1, &n)},
                                    {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, c, 1, &n)}};
                st = tile_kernel_launch(k, args, 3, round == 2 ? stream : NULL);
                cr_assert_eq(st, TILE_OK, "%s", tile_context_message(ctx));
                cr_assert_eq(tile_synchronize(ctx), TILE_OK, "%s", tile_context_message(ctx));
                cr_assert_eq(tile_copy_to_host(ctx, hc, dc, bytes), TILE_OK);
                for (int64_t i = 0; i < n; i++)
                    cr_assert_eq(hc[offset + i], ha[offset + i] + hb[offset + i],
                                 "n=%lld offset=%d round=%d: c[%lld] = %g", (long long)n, offset, round, (long long)i,
                                 hc[offset + i]);
                cr_assert_eq(hc[offset + n], hb[offset + n], "nothing written past the end");
            }
    cr_assert_gt(rt_kernel_num_variants(k), 1, "the facts changed, and so did the variant");
    tile_stream_destroy(stream);
    tile_free(ctx, da);
    tile_free(ctx, db);
    tile_free(ctx, dc);
    free(ha);
    free(hb);
    free(hc);
    free(src);
    tile_program_destroy(p);
}

/* ---- lazy compilation --------------------------------------------------------------------------
 * tile_program_get_kernel compiles nothing; the first launch compiles only the function it runs
 * (the variant for aligned, contiguous tensors), and the generic kernel is compiled by the first
 * launch that needs it (tensors with no fact); each is stored on disk under its own key, and a
 * new context finds both there (no LLVM, no ptxas), running the right one per launch. */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s", dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strstr(e->d_name, ".tcache") != NULL;
    closedir(d);
    return n;
}

/* c = a + b with n elements each `stride` apart, starting `offset` elements in; checked. */
static void lazy_launch(tile_context *c, tile_kernel *k, void *const dev[3], int64_t n, int64_t stride, int offset) {
    size_t bytes = sizeof(float) * (size_t)(n * stride + offset + 1);
    float *host = malloc(bytes), *out = malloc(bytes);
    for (size_t i = 0; i < bytes / sizeof(float); i++) host[i] = (float)(i % 113);
    for (int j = 0; j < 3; j++) cr_assert_eq(tile_copy_to_device(c, dev[j], host, bytes), TILE_OK);
    tile_arg args[3];
    for (int j = 0; j < 3; j++) {
        tile_tensor t = tile_tensor_contiguous(TILE_F32, (float *)dev[j] + offset, 1, &n);
        t.strides[0] = stride;
        args[j] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = t};
    }
    cr_assert_eq(tile_kernel_launch(k, args, 3, NULL), TILE_OK, "%s", tile_context_message(c));
    cr_assert_eq(tile_synchronize(c), TILE_OK, "%s", tile_context_message(c));
    cr_assert_eq(tile_copy_to_host(c, out, dev[2], bytes), TILE_OK);
    for (int64_t i = 0; i < n; i++) {
        size_t at = (size_t)(offset + i * stride);
        cr_assert_eq(out[at], 2 * host[at], "n=%lld stride=%lld: c[%lld]", (long long)n, (long long)stride,
                     (long long)i);
    }
    free(host);
    free(out);
}

Test(launch_gpu, first_launch_compiles_only_what_it_runs) {
    char dir[] = "/tmp/tile-lazy-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    const char *was = getenv("TILE_CACHE_DIR");
    char *saved = was ? strdup(was) : NULL;
    setenv("TILE_CACHE_DIR", dir, 1);
    size_t len;
    char *src = test_read_source_file("stdlib/core/vector_add.tile", &len);
    void *dev[3];
    for (int round = 0; round < 2; round++) { /* 0: compiles; 1: a new context, both from the disk */
        tile_context *c;
        cr_assert_eq(tile_context_create(TILE_DEVICE_CUDA, 0, &c), TILE_OK, "%s", tile_context_message(NULL));
        for (int j = 0; j < 3; j++) cr_assert_eq(tile_alloc(c, sizeof(float) * 8192, &dev[j]), TILE_OK);
        tile_program *p;
        tile_kernel *k;
        cr_assert_eq(tile_program_from_string(c, "vector_add.tile", src, len, &p), TILE_OK);
        memset(rt_times(), 0, sizeof *rt_times());
        tile_status st = tile_program_get_kernel(p, "vector_add", NULL, 0, &k);
        if (st == TILE_ERROR_UNSUPPORTED) cr_skip_test("%s", tile_context_message(c));
        cr_assert_eq(st, TILE_OK, "%s", tile_context_message(c));
        cr_assert_eq(rt_times()->llvm + rt_times()->load, 0, "get_kernel compiles and loads nothing");
        cr_assert_null(k->cuda);
        cr_assert_eq(rt_kernel_num_variants(k), 0);
        cr_assert_eq(count_entries(dir), round ? 2 : 0);

        lazy_launch(c, k, dev, 4096, 1, 0); /* aligned, contiguous, 4096 = 16 * 256: a variant */
        cr_assert_eq(rt_kernel_num_variants(k), 1);
        cr_assert_null(k->cuda, "round %d: the first launch compiled its variant only", round);
        cr_assert_eq(count_entries(dir), round ? 2 : 1);
        struct RtCudaFunction *variant = NULL, *generic = NULL;
        tile_arg probe[3];
        int64_t n = 4096;
        for (int j = 0; j < 3; j++)
            probe[j] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, dev[j], 1, &n)};
        cr_assert_eq(rt_cuda_select(k, probe, 3, &variant), TILE_OK);

        lazy_launch(c, k, dev, 1001, 3, 1); /* misaligned, strided, odd: no fact, the generic kernel */
        cr_assert_not_null(k->cuda, "round %d: the launch without facts compiled the generic kernel", round);
        cr_assert_eq(count_entries(dir), 2, "each under its own key");
        n = 1001;
        for (int j = 0; j < 3; j++) {
            probe[j].tensor = tile_tensor_contiguous(TILE_F32, (float *)dev[j] + 1, 1, &n);
            probe[j].tensor.strides[0] = 3;
        }
        cr_assert_eq(rt_cuda_select(k, probe, 3, &generic), TILE_OK);
        cr_assert_eq(generic, k->cuda, "no fact: the generic kernel runs");
        cr_assert_neq(variant, generic, "facts: the variant runs");
        lazy_launch(c, k, dev, 4096, 1, 0); /* and back */
        cr_assert_eq(rt_kernel_num_variants(k), 1);
        if (round == 1) cr_assert_eq(rt_times()->llvm + rt_times()->assemble, 0, "round 1 compiled nothing");
        for (int j = 0; j < 3; j++) tile_free(c, dev[j]);
        tile_program_destroy(p);
        tile_context_destroy(c);
    }
    if (saved) setenv("TILE_CACHE_DIR", saved, 1);
    else unsetenv("TILE_CACHE_DIR");
    free(saved);
    free(src);
}

/* ---- TMA rings (sm_90a) ------------------------------------------------------------------------
 * stdlib/core/gemm.tile through the stages pass's TMA rings: a launch whose tensors the launch
 * facts prove fit for TMA (16-byte aligned, rows multiples of 16 elements) gets the variant with
 * copy_tma rings and its tensor maps encoded at launch; the results must match a C reference
 * (double sums of the same bf16 inputs) at shapes with tails in every dimension, and be
 * bit-identical to the cp.async ring of a context opened with TILE_TMA=0 (only the data movement
 * differs). A shape whose row strides are not multiples of 16 elements rules TMA out: that launch
 * uses cp.async and must be right too. Skips on GPUs other than sm_90a and where the driver has no
 * cuTensorMapEncodeTiled. */
static uint16_t tma_bf16_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

static double tma_bf16_value(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static tile_context *tma_open_sm90a(void) {
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

static tile_kernel *tma_gemm_kernel(tile_context *ctx, tile_program **p, int bn) {
    /* the source folder: TILE_SOURCE_DIR from the environment (scripts/gpu_all.sh), else the build's */
    const char *dir = getenv("TILE_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/stdlib/core/gemm.tile", dir && *dir ? dir : TILE_SOURCE_DIR);
    cr_assert_eq(tile_program_from_file(ctx, path, p), TILE_OK, "%s", tile_context_message(ctx));
    tile_constant c[4] = {{.name = "BM", .i = 128}, {.name = "BN", .i = bn}, {.name = "BK", .i = 64},
                          {.name = "STAGES", .i = 3}};
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(*p, "gemm", c, 4, &k), TILE_OK, "%s", tile_context_message(ctx));
    return k;
}

/* Runs gemm (M x K @ K x N) on ctx with the inputs a, b; returns the result (bf16 bits) and the
 * tensor maps of the launch's variant in *maps. */
static uint16_t *tma_run(tile_context *ctx, tile_kernel *k, int64_t m, int64_t n, int64_t kk, const uint16_t *a,
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

static void tma_check_against_reference(const uint16_t *c, const uint16_t *a, const uint16_t *b, int64_t m, int64_t n,
                                    int64_t kk, const char *what) {
    for (int64_t i = 0; i < m; i += 7)
        for (int64_t j = 0; j < n; j++) {
            double want = 0;
            for (int64_t p = 0; p < kk; p++) want += tma_bf16_value(a[i * kk + p]) * tma_bf16_value(b[p * n + j]);
            double got = tma_bf16_value(c[i * n + j]);
            cr_assert(fabs(got - want) <= 2e-2 + 8e-3 * fabs(want), "%s: c[%lld, %lld] = %g, expected %g", what,
                      (long long)i, (long long)j, got, want);
        }
}

Test(tma_gpu, gemm_through_tma_rings) {
    tile_context *ctx = tma_open_sm90a();
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
        tile_kernel *k = tma_gemm_kernel(ctx, &p, bns[bi]), *kp = tma_gemm_kernel(plain_ctx, &pp, bns[bi]);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int64_t m = shapes[s][0], n = shapes[s][1], kk = shapes[s][2];
            uint16_t *a = malloc((size_t)(m * kk) * 2), *b = malloc((size_t)(kk * n) * 2);
            uint64_t r = 11;
            for (int64_t i = 0; i < m * kk; i++) a[i] = tma_bf16_bits((float)((r = r * 6364136223846793005ull + 1) >> 40) / 16777216.0f - 0.5f);
            for (int64_t i = 0; i < kk * n; i++) b[i] = tma_bf16_bits((float)((r = r * 6364136223846793005ull + 1) >> 40) / 16777216.0f - 0.5f);
            int maps, plain_maps;
            uint16_t *c = tma_run(ctx, k, m, n, kk, a, b, &maps), *cp = tma_run(plain_ctx, kp, m, n, kk, a, b, &plain_maps);
            char what[96];
            snprintf(what, sizeof what, "BN=%d %lldx%lldx%lld (%d tensor maps)", bns[bi], (long long)m, (long long)n,
                     (long long)kk, maps);
            cr_log_info("%s", what);
            if (s < 2 && !cuda_has_tensor_maps()) cr_skip_test("the driver has no cuTensorMapEncodeTiled");
            /* A and B through TMA: the dot is a wgmma, whose rings keep 128-byte rows (B's [64, 128]
             * as two column blocks, two boxes of one map); without wgmma (TILE_WGMMA=0) B's
             * 256-byte rows at BN = 128 keep cp.async */
            cr_assert_eq(maps, s == 2 ? 0 : bns[bi] == 64 || env_flag("TILE_WGMMA", true) ? 2 : 1, "%s", what);
            cr_assert_eq(plain_maps, 0);
            tma_check_against_reference(c, a, b, m, n, kk, what);
            cr_assert(memcmp(c, cp, (size_t)(m * n) * 2) == 0, "%s: TMA and cp.async rings differ", what);
            free(a), free(b), free(c), free(cp);
        }
        tile_program_destroy(p);
        tile_program_destroy(pp);
    }
    tile_context_destroy(plain_ctx);
    tile_context_destroy(ctx);
}
