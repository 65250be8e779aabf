/*
 * test_attention.c: stdlib/attention/flash_fwd.tile on the VM against a C reference (softmax
 * attention in double precision over the same bf16 inputs), at small shapes whose sequence
 * length is not a multiple of the tiles (S = 1, 37, 64, 130), head dims 64 and 128, causal and
 * not, with grouped-query attention (HKV = HQ and HQ / 2). The output tensor is a strided view
 * into a buffer with rows between the heads filled with a sentinel, so a write of a query row
 * past S is caught. The tolerance is that of P rounded to bf16 before P @ V and of the bf16
 * output (errors of a missing mask or a wrong rescale are 10 to 100 times larger). ctest runs the
 * suite twice: as is, and with TILE_VM_GPU_PASSES=1 (the IR after the GPU passes).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/tile.h"

static tile_context *ctx;
static tile_program *prog;

static void setup(void) {
    cr_assert_eq(tile_context_create(TILE_DEVICE_VM, 0, &ctx), TILE_OK);
    char path[1024];
    snprintf(path, sizeof path, "%s/stdlib/attention/flash_fwd.tile", TILE_SOURCE_DIR);
    cr_assert_eq(tile_program_from_file(ctx, path, &prog), TILE_OK, "%s", tile_context_message(ctx));
}
static void teardown(void) { tile_context_destroy(ctx); }

TestSuite(attention, .init = setup, .fini = teardown, .timeout = 600);

static uint64_t seed = 777;
static double uniform(double lo, double hi) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (double)(seed >> 11) / 9007199254740992.0;
}

typedef struct Shape {
    int64_t b, hq, hkv, s, d;
    int causal;
    int bm, bn, w; /* 0: the kernel's default */
} Shape;

#define PAD_ROWS 3        /* sentinel rows after each head's S rows of O */
#define SENTINEL 7.0      /* exactly representable in bf16, outside every output's range */

/* n random values in [-lo_hi, lo_hi], rounded to bf16: packed into *packed, exact in the result. */
static double *random_bf16(int64_t n, double lo_hi, void **packed) {
    double *x = malloc(sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; i++) x[i] = uniform(-lo_hi, lo_hi);
    *packed = malloc(tile_dtype_bytes(TILE_BF16, n));
    cr_assert_eq(tile_pack(TILE_BF16, x, n, *packed), TILE_OK);
    tile_unpack(TILE_BF16, *packed, n, x);
    return x;
}

static tile_arg tensor4(void *data, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    int64_t shape[4] = {d0, d1, d2, d3};
    return (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, data, 4, shape)};
}

/* Runs flash_fwd at shape c and checks every output element and every sentinel. */
static void check_attention(Shape c) {
    tile_constant consts[5];
    size_t nc = 0;
    consts[nc++] = (tile_constant){.name = "D", .i = c.d};
    consts[nc++] = (tile_constant){.name = "CAUSAL", .i = c.causal};
    if (c.bm) consts[nc++] = (tile_constant){.name = "BM", .i = c.bm};
    if (c.bn) consts[nc++] = (tile_constant){.name = "BN", .i = c.bn};
    if (c.w) consts[nc++] = (tile_constant){.name = "W", .i = c.w};
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(prog, "flash_fwd", consts, nc, &k), TILE_OK, "%s", tile_context_message(ctx));

    int64_t nq = c.b * c.hq * c.s * c.d, nkv = c.b * c.hkv * c.s * c.d;
    void *pq, *pk, *pv;
    double *q = random_bf16(nq, 1.5, &pq), *kk = random_bf16(nkv, 1.5, &pk), *v = random_bf16(nkv, 1.0, &pv);
    int64_t rows = c.s + PAD_ROWS, no = c.b * c.hq * rows * c.d;
    double *o = malloc(sizeof(double) * (size_t)no);
    for (int64_t i = 0; i < no; i++) o[i] = SENTINEL;
    void *po = malloc(tile_dtype_bytes(TILE_BF16, no));
    cr_assert_eq(tile_pack(TILE_BF16, o, no, po), TILE_OK);

    tile_arg args[5] = {tensor4(pq, c.b, c.hq, c.s, c.d), tensor4(pk, c.b, c.hkv, c.s, c.d),
                        tensor4(pv, c.b, c.hkv, c.s, c.d), tensor4(po, c.b, c.hq, c.s, c.d),
                        {.kind = TILE_ARG_FLOAT, .f = 1.0 / sqrt((double)c.d)}};
    args[3].tensor.strides[1] = rows * c.d; /* a view with PAD_ROWS sentinel rows after each head */
    args[3].tensor.strides[0] = c.hq * rows * c.d;
    cr_assert_eq(tile_kernel_launch(k, args, 5, NULL), TILE_OK, "%s", tile_context_message(ctx));
    tile_unpack(TILE_BF16, po, no, o);

    double *p = malloc(sizeof(double) * (size_t)c.s);
    double scale = 1.0 / sqrt((double)c.d);
    for (int64_t b = 0; b < c.b; b++) {
        for (int64_t h = 0; h < c.hq; h++) {
            int64_t hk = h / (c.hq / c.hkv);
            const double *qh = q + (b * c.hq + h) * c.s * c.d;
            const double *kh = kk + (b * c.hkv + hk) * c.s * c.d, *vh = v + (b * c.hkv + hk) * c.s * c.d;
            const double *oh = o + (b * c.hq + h) * rows * c.d;
            for (int64_t i = 0; i < c.s; i++) {
                int64_t keys = c.causal ? i + 1 : c.s;
                double mx = -INFINITY, l = 0;
                for (int64_t j = 0; j < keys; j++) {
                    double dotp = 0;
                    for (int64_t x = 0; x < c.d; x++) dotp += qh[i * c.d + x] * kh[j * c.d + x];
                    p[j] = dotp * scale;
                    mx = fmax(mx, p[j]);
                }
                for (int64_t j = 0; j < keys; j++) l += (p[j] = exp(p[j] - mx));
                for (int64_t x = 0; x < c.d; x++) {
                    double want = 0;
                    for (int64_t j = 0; j < keys; j++) want += p[j] * vh[j * c.d + x];
                    want /= l;
                    double got = oh[i * c.d + x];
                    cr_assert(fabs(got - want) <= 2e-2 * fabs(want) + 1e-2,
                              "B=%lld HQ=%lld HKV=%lld S=%lld D=%lld causal=%d: O[%lld,%lld,%lld,%lld] = %g, want %g",
                              (long long)c.b, (long long)c.hq, (long long)c.hkv, (long long)c.s, (long long)c.d,
                              c.causal, (long long)b, (long long)h, (long long)i, (long long)x, got, want);
                }
            }
            for (int64_t i = c.s * c.d; i < rows * c.d; i++)
                cr_assert_eq(oh[i], SENTINEL, "S=%lld: a row past S was written (head %lld, element %lld)",
                             (long long)c.s, (long long)h, (long long)i);
        }
    }
    free(p), free(q), free(kk), free(v), free(o), free(pq), free(pk), free(pv), free(po);
}

/* Small tiles (the VM's dot is slow): every tail case, both head dims, causal and not, batch 1
 * and 2, HKV = HQ and HQ / 2. */
Test(attention, tails_small_tiles) {
    static const int64_t seqs[] = {1, 37, 64, 130};
    static const int64_t heads[][2] = {{2, 2}, {4, 2}};
    for (int64_t b = 1; b <= 2; b++)
        for (size_t h = 0; h < 2; h++)
            for (int64_t d = 64; d <= 128; d += 64)
                for (int causal = 0; causal <= 1; causal++)
                    for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++)
                        check_attention((Shape){.b = b, .hq = heads[h][0], .hkv = heads[h][1], .s = seqs[i],
                                                .d = d, .causal = causal, .bm = 32, .bn = 32});
}

/* BN smaller than BM, and one KV head for four query heads. */
Test(attention, uneven_tiles_gqa4) {
    check_attention((Shape){.b = 1, .hq = 4, .hkv = 1, .s = 130, .d = 128, .causal = 0, .bm = 32, .bn = 16});
    check_attention((Shape){.b = 1, .hq = 4, .hkv = 1, .s = 77, .d = 64, .causal = 1, .bm = 16, .bn = 32});
}

/* BM larger than BN and not a multiple of the diagonal: causal blocks with several masked steps. */
Test(attention, causal_tall_tiles) {
    check_attention((Shape){.b = 1, .hq = 3, .hkv = 3, .s = 100, .d = 64, .causal = 1, .bm = 64, .bn = 16});
}

/* The defaults (BM=128, BN=64, D=128, W=8), causal and not, and W=4, with a tail on both loops. */
Test(attention, defaults) {
    check_attention((Shape){.b = 1, .hq = 2, .hkv = 1, .s = 130, .d = 128, .causal = 1});
    check_attention((Shape){.b = 1, .hq = 2, .hkv = 2, .s = 200, .d = 128, .causal = 0});
    check_attention((Shape){.b = 1, .hq = 2, .hkv = 1, .s = 130, .d = 128, .causal = 1, .w = 4});
}

Test(attention, gqa_check_fails_cleanly) {
    tile_constant consts[] = {{.name = "D", .i = 64}, {.name = "BM", .i = 32}, {.name = "BN", .i = 32}};
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(prog, "flash_fwd", consts, 3, &k), TILE_OK, "%s", tile_context_message(ctx));
    static uint16_t q[3 * 4 * 64], kv[2 * 4 * 64], o[3 * 4 * 64];
    tile_arg args[5] = {tensor4(q, 1, 3, 4, 64), tensor4(kv, 1, 2, 4, 64), tensor4(kv, 1, 2, 4, 64),
                        tensor4(o, 1, 3, 4, 64), {.kind = TILE_ARG_FLOAT, .f = 0.125}};
    cr_assert_eq(tile_kernel_launch(k, args, 5, NULL), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert_not_null(strstr(tile_context_message(ctx), "HQ (query heads) must be a multiple of HKV"), "%s",
                       tile_context_message(ctx));
}
