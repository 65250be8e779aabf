/* test_shared_gpu.c: the kernels of tests/shared/shared.tile (explicit shared tiles, barrier(),
 * atomics on shared memory; lang/SPEC.md 6.10) on the GPU against the VM with the same inputs.
 * Tensors that do not depend on the order of atomics must be equal byte for byte (these kernels
 * sum small integers only, so no float reassociation shows); the old values of atomics are
 * compared as the SPEC defines them: a permutation of places per bin, the same multiset for
 * atomic_xchg. The two kernels that miss a barrier are not run (the VM rejects them). Uses the
 * public API only. Skips where there is no GPU. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/tile.h"

static tile_context *gpu, *vm;
static tile_program *gpu_prog, *vm_prog;

static tile_program *load(tile_context *ctx) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/shared/shared.tile", TILE_SOURCE_DIR);
    tile_program *p;
    cr_assert_eq(tile_program_from_file(ctx, path, &p), TILE_OK, "%s", tile_context_message(ctx));
    return p;
}

static void open_devices(void) {
    if (tile_context_create(TILE_DEVICE_CUDA, 0, &gpu) != TILE_OK)
        cr_skip_test("no CUDA device: %s", tile_context_message(NULL));
    cr_assert_eq(tile_context_create(TILE_DEVICE_VM, 0, &vm), TILE_OK);
    gpu_prog = load(gpu);
    vm_prog = load(vm);
}

static void close_devices(void) {
    tile_context_destroy(gpu);
    tile_context_destroy(vm);
    gpu = vm = NULL;
}

TestSuite(shared_gpu, .init = open_devices, .fini = close_devices, .timeout = 600);

enum { MAX_PARAMS = 8 };

typedef struct Param {
    tile_dtype dtype;
    int rank;
    int64_t shape[2];
    void *host;
    bool order_dependent; /* old values of atomics: compared by the test, not byte for byte */
} Param;

static size_t param_bytes(const Param *p) {
    return tile_dtype_bytes(p->dtype, p->shape[0] * (p->rank == 2 ? p->shape[1] : 1));
}

/* Runs kernel `name` on ctx with copies of the params' host data; out[i] receives tensor i. */
static void run(tile_context *ctx, tile_program *prog, const char *name, const Param *ps, int n, void **out) {
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(prog, name, NULL, 0, &k), TILE_OK, "%s: %s", name, tile_context_message(ctx));
    tile_arg args[MAX_PARAMS];
    memset(args, 0, sizeof args);
    for (int i = 0; i < n; i++) {
        size_t bytes = param_bytes(&ps[i]);
        void *dev;
        cr_assert_eq(tile_alloc(ctx, bytes, &dev), TILE_OK, "%s", tile_context_message(ctx));
        cr_assert_eq(tile_copy_to_device(ctx, dev, ps[i].host, bytes), TILE_OK, "%s", tile_context_message(ctx));
        args[i].kind = TILE_ARG_TENSOR;
        args[i].tensor = tile_tensor_contiguous(ps[i].dtype, dev, ps[i].rank, ps[i].shape);
    }
    cr_assert_eq(tile_kernel_launch(k, args, (size_t)n, NULL), TILE_OK, "%s: %s", name, tile_context_message(ctx));
    cr_assert_eq(tile_synchronize(ctx), TILE_OK, "%s", tile_context_message(ctx));
    for (int i = 0; i < n; i++) {
        size_t bytes = param_bytes(&ps[i]);
        out[i] = malloc(bytes);
        cr_assert_eq(tile_copy_to_host(ctx, out[i], args[i].tensor.data, bytes), TILE_OK, "%s", tile_context_message(ctx));
        tile_free(ctx, args[i].tensor.data);
    }
}

/* Runs on both devices; tensors that are not order_dependent must be equal byte for byte. The
 * outputs stay in on_vm / on_gpu for the caller (freed by free_all). */
static void both(const char *name, const Param *ps, int n, void **on_vm, void **on_gpu) {
    run(vm, vm_prog, name, ps, n, on_vm);
    run(gpu, gpu_prog, name, ps, n, on_gpu);
    for (int i = 0; i < n; i++) {
        if (ps[i].order_dependent) continue;
        const unsigned char *a = on_vm[i], *b = on_gpu[i];
        size_t bytes = param_bytes(&ps[i]);
        for (size_t j = 0; j < bytes; j++)
            cr_assert_eq(a[j], b[j], "%s: tensor %d differs at byte %zu (VM %02x, GPU %02x)", name, i, j, a[j], b[j]);
    }
}

static void free_all(void **a, void **b, int n) {
    for (int i = 0; i < n; i++) free(a[i]), free(b[i]);
}

static uint64_t rng = 1234;
static uint32_t next_random(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 33);
}

static Param t1(tile_dtype dt, void *host, int64_t n) { return (Param){dt, 1, {n, 1}, host, false}; }
static Param t2(tile_dtype dt, void *host, int64_t r, int64_t c) { return (Param){dt, 2, {r, c}, host, false}; }

Test(shared_gpu, histogram) {
    enum { N = 100000, BN = 1024, BINS = 64, B = (N + BN - 1) / BN };
    int32_t *x = malloc(sizeof(int32_t) * N), *hist = calloc((size_t)B * BINS, sizeof(int32_t));
    for (int i = 0; i < N; i++) x[i] = (int32_t)(next_random() % 80) - 8;
    Param ps[2] = {t1(TILE_I32, x, N), t2(TILE_I32, hist, B, BINS)};
    void *a[2], *b[2];
    both("histogram", ps, 2, a, b);
    free_all(a, b, 2);
    free(x), free(hist);
}

/* The places of one bin of one block must be 0 .. count-1 on the GPU too (in any order). */
Test(shared_gpu, bin_places) {
    enum { N = 20000, BN = 256, BINS = 16, B = (N + BN - 1) / BN };
    int32_t *x = malloc(sizeof(int32_t) * N), *place = calloc(N, sizeof(int32_t)),
            *count = calloc((size_t)B * BINS, sizeof(int32_t));
    for (int i = 0; i < N; i++) x[i] = (int32_t)(next_random() % BINS);
    Param ps[3] = {t1(TILE_I32, x, N), t1(TILE_I32, place, N), t2(TILE_I32, count, B, BINS)};
    ps[1].order_dependent = true;
    void *a[3], *b[3];
    both("bin_places", ps, 3, a, b);
    const int32_t *gp = b[1];
    for (int blk = 0; blk < B; blk++) {
        int seen[BINS][BN];
        memset(seen, 0, sizeof seen);
        for (int i = blk * BN; i < N && i < (blk + 1) * BN; i++) {
            cr_assert(gp[i] >= 0 && gp[i] < BN, "place %d of element %d", gp[i], i);
            cr_assert_eq(seen[x[i]][gp[i]]++, 0, "block %d bin %d: place %d given twice", blk, x[i], gp[i]);
        }
        const int32_t *cnt = (const int32_t *)b[2] + blk * BINS;
        for (int k = 0; k < BINS; k++)
            for (int p = 0; p < cnt[k]; p++) cr_assert(seen[k][p], "block %d bin %d: place %d missing", blk, k, p);
    }
    free_all(a, b, 3);
    free(x), free(place), free(count);
}

Test(shared_gpu, transpose) {
    enum { M = 1000, N = 777 };
    float *x = malloc(sizeof(float) * M * N), *y = calloc((size_t)M * N, sizeof(float));
    for (int i = 0; i < M * N; i++) x[i] = (float)((int)(next_random() % 20001) - 10000) / 16.0f;
    Param ps[2] = {t2(TILE_F32, x, M, N), t2(TILE_F32, y, N, M)};
    void *a[2], *b[2];
    both("transpose", ps, 2, a, b);
    free_all(a, b, 2);
    free(x), free(y);
}

Test(shared_gpu, staged_sum) {
    enum { N = 5000, BN = 128 };
    float *x = malloc(sizeof(float) * N), y[BN] = {0};
    int32_t top[2] = {0, 0};
    for (int i = 0; i < N; i++) x[i] = (float)((int)(next_random() % 2001) - 1000) / 8.0f;
    Param ps[3] = {t1(TILE_F32, x, N), t1(TILE_F32, y, BN), t1(TILE_I32, top, 2)};
    void *a[3], *b[3];
    both("staged_sum", ps, 3, a, b);
    free_all(a, b, 3);
    free(x);
}

Test(shared_gpu, atomic_kinds) {
    enum { N = 64 };
    int64_t x[N], olds[N] = {0}, out_i[4] = {0};
    float f[N], out_f[2] = {0};
    uint16_t out_b = 0, out_h = 0;
    for (int i = 0; i < N; i++) {
        x[i] = (int64_t)(next_random() % 100000) - 20000 + ((int64_t)1 << 40) * (i % 3);
        f[i] = (float)((int)(next_random() % 9) - 4);
    }
    Param ps[7] = {t1(TILE_I64, x, N), t1(TILE_F32, f, N), t1(TILE_I64, out_i, 4), t1(TILE_I64, olds, N),
                   t1(TILE_F32, out_f, 2), t1(TILE_BF16, &out_b, 1), t1(TILE_F16, &out_h, 1)};
    ps[2].order_dependent = ps[3].order_dependent = true; /* xchg's final value and old values */
    void *a[7], *b[7];
    both("atomic_kinds", ps, 7, a, b);
    const int64_t *vi = a[2], *gi = b[2], *go = b[3];
    for (int k = 0; k < 3; k++) cr_assert_eq(gi[k], vi[k], "out_i[%d]: GPU %lld, VM %lld", k, (long long)gi[k], (long long)vi[k]);
    int64_t all[N + 1], got[N + 1];
    for (int i = 0; i < N; i++) all[i] = x[i], got[i] = go[i];
    all[N] = -5, got[N] = gi[3];
    for (int i = 0; i <= N; i++) {
        bool found = false;
        for (int j = 0; j <= N && !found; j++)
            if (got[j] == all[i]) got[j] = INT64_MIN, found = true;
        cr_assert(found, "xchg on the GPU: %lld is missing from the old values and the final value", (long long)all[i]);
    }
    free_all(a, b, 7);
}

Test(shared_gpu, shared_masked) {
    enum { N = 64 };
    float x[N], y[N] = {0}, z[N] = {0};
    for (int i = 0; i < N; i++) x[i] = (float)i * 0.25f - 3.0f;
    Param ps[3] = {t1(TILE_F32, x, N), t1(TILE_F32, y, N), t1(TILE_F32, z, N)};
    void *a[3], *b[3];
    both("shared_masked", ps, 3, a, b);
    free_all(a, b, 3);
}
