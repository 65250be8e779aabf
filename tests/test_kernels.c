/*
 * test_kernels.c: every kernel the project ships, run on the VM through the public API and
 * checked against a plain C reference at several shapes, tails that are not multiples of the
 * tile included, and with non-default compile-time constants.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tile/tile.h"

static tile_context *ctx;

static void setup(void) { cr_assert_eq(tile_context_create(TILE_DEVICE_VM, 0, &ctx), TILE_OK); }
static void teardown(void) { tile_context_destroy(ctx); }

TestSuite(kernels, .init = setup, .fini = teardown, .timeout = 300);

static uint64_t seed = 12345;
static double uniform(double lo, double hi) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (double)(seed >> 11) / 9007199254740992.0;
}

static tile_kernel *kernel(const char *file, const char *name, const tile_constant *c, size_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/stdlib/core/%s", TILE_SOURCE_DIR, file);
    tile_program *prog;
    tile_status st = tile_program_from_file(ctx, path, &prog);
    cr_assert_eq(st, TILE_OK, "%s", tile_context_message(ctx));
    tile_kernel *k;
    st = tile_program_get_kernel(prog, name, c, n, &k);
    cr_assert_eq(st, TILE_OK, "%s", tile_context_message(ctx));
    return k; /* the program leaks until the end of the test process: kernels belong to it */
}

static tile_arg tensor(tile_dtype dt, void *data, int rank, int64_t d0, int64_t d1) {
    int64_t shape[2] = {d0, d1};
    return (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(dt, data, rank, shape)};
}

static void launch(tile_kernel *k, tile_arg *args, size_t n) {
    tile_status st = tile_kernel_launch(k, args, n, NULL);
    cr_assert_eq(st, TILE_OK, "%s", tile_context_message(ctx));
}

static float *random_floats(int64_t n, double lo, double hi) {
    float *p = malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) p[i] = (float)uniform(lo, hi);
    return p;
}

#define C_INT(n, v) {.name = n, .i = v}

/* ---- vector add ---- */
static void check_vector_add(int64_t n, const tile_constant *c, size_t nc) {
    tile_kernel *k = kernel("vector_add.tile", "vector_add", c, nc);
    float *a = random_floats(n, -10, 10), *b = random_floats(n, -10, 10), *out = random_floats(n + 1, 0, 1);
    float guard = out[n];
    tile_arg args[3] = {tensor(TILE_F32, a, 1, n, 0), tensor(TILE_F32, b, 1, n, 0), tensor(TILE_F32, out, 1, n, 0)};
    launch(k, args, 3);
    for (int64_t i = 0; i < n; i++) cr_assert_eq(out[i], a[i] + b[i], "n=%lld i=%lld", (long long)n, (long long)i);
    cr_assert_eq(out[n], guard, "wrote past the end");
    free(a), free(b), free(out);
}

Test(kernels, vector_add) {
    int64_t sizes[] = {1, 1000, 1024, 4097};
    for (size_t i = 0; i < 4; i++) check_vector_add(sizes[i], NULL, 0);
    tile_constant c[] = {C_INT("BLOCK", 128)};
    check_vector_add(333, c, 1);
}

/* ---- softmax ---- */
static void check_softmax(int64_t m, int64_t n, const tile_constant *c, size_t nc) {
    tile_kernel *k = kernel("softmax.tile", "softmax", c, nc);
    float *x = random_floats(m * n, -6, 6), *y = random_floats(m * n, 0, 1);
    tile_arg args[2] = {tensor(TILE_F32, x, 2, m, n), tensor(TILE_F32, y, 2, m, n)};
    launch(k, args, 2);
    for (int64_t r = 0; r < m; r++) {
        double mx = -INFINITY, s = 0;
        for (int64_t j = 0; j < n; j++) mx = fmax(mx, x[r * n + j]);
        for (int64_t j = 0; j < n; j++) s += exp(x[r * n + j] - mx);
        for (int64_t j = 0; j < n; j++) {
            double want = exp(x[r * n + j] - mx) / s;
            cr_assert(fabs(y[r * n + j] - want) <= 1e-5 * want + 1e-9, "m=%lld n=%lld [%lld,%lld]: %g vs %g",
                      (long long)m, (long long)n, (long long)r, (long long)j, y[r * n + j], want);
        }
    }
    free(x), free(y);
}

Test(kernels, softmax) {
    check_softmax(1, 1, NULL, 0);
    check_softmax(5, 100, NULL, 0);
    check_softmax(7, 2500, NULL, 0);
    tile_constant c[] = {C_INT("BM", 2), C_INT("BN", 128)};
    check_softmax(3, 300, c, 2);
}

/* ---- layer norm ---- */
static void check_layernorm(int64_t m, int64_t n, const tile_constant *c, size_t nc) {
    tile_kernel *k = kernel("layernorm.tile", "layernorm", c, nc);
    float *x = random_floats(m * n, -3, 5), *w = random_floats(n, 0.5, 1.5), *b = random_floats(n, -1, 1);
    float *y = random_floats(m * n, 0, 1);
    tile_arg args[5] = {tensor(TILE_F32, x, 2, m, n), tensor(TILE_F32, w, 1, n, 0), tensor(TILE_F32, b, 1, n, 0),
                        tensor(TILE_F32, y, 2, m, n), {.kind = TILE_ARG_FLOAT, .f = 1e-5}};
    launch(k, args, 5);
    for (int64_t r = 0; r < m; r++) {
        double mean = 0, var = 0;
        for (int64_t j = 0; j < n; j++) mean += x[r * n + j];
        mean /= (double)n;
        for (int64_t j = 0; j < n; j++) var += (x[r * n + j] - mean) * (x[r * n + j] - mean);
        var /= (double)n;
        for (int64_t j = 0; j < n; j++) {
            double want = (x[r * n + j] - mean) / sqrt(var + 1e-5) * w[j] + b[j];
            cr_assert(fabs(y[r * n + j] - want) <= 1e-4 * (fabs(want) + 1), "m=%lld n=%lld [%lld,%lld]: %g vs %g",
                      (long long)m, (long long)n, (long long)r, (long long)j, y[r * n + j], want);
        }
    }
    free(x), free(w), free(b), free(y);
}

Test(kernels, layernorm) {
    check_layernorm(1, 7, NULL, 0);
    check_layernorm(6, 1500, NULL, 0);
    tile_constant c[] = {C_INT("BM", 3), C_INT("BN", 64)};
    check_layernorm(4, 200, c, 2);
}

/* ---- GEMM ---- */
static void check_gemm(int64_t m, int64_t n, int64_t kk, const tile_constant *c, size_t nc) {
    tile_kernel *k = kernel("gemm.tile", "gemm", c, nc);
    size_t sa = tile_dtype_bytes(TILE_BF16, m * kk), sb = tile_dtype_bytes(TILE_BF16, kk * n);
    double *a = malloc(sizeof(double) * (size_t)(m * kk)), *b = malloc(sizeof(double) * (size_t)(kk * n));
    double *got = malloc(sizeof(double) * (size_t)(m * n));
    for (int64_t i = 0; i < m * kk; i++) a[i] = uniform(-1, 1);
    for (int64_t i = 0; i < kk * n; i++) b[i] = uniform(-1, 1);
    void *pa = malloc(sa), *pb = malloc(sb), *pc = malloc(tile_dtype_bytes(TILE_BF16, m * n));
    cr_assert_eq(tile_pack(TILE_BF16, a, m * kk, pa), TILE_OK);
    cr_assert_eq(tile_pack(TILE_BF16, b, kk * n, pb), TILE_OK);
    tile_unpack(TILE_BF16, pa, m * kk, a); /* the exact bf16 inputs */
    tile_unpack(TILE_BF16, pb, kk * n, b);
    tile_arg args[3] = {tensor(TILE_BF16, pa, 2, m, kk), tensor(TILE_BF16, pb, 2, kk, n), tensor(TILE_BF16, pc, 2, m, n)};
    launch(k, args, 3);
    tile_unpack(TILE_BF16, pc, m * n, got);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double want = 0;
            for (int64_t p = 0; p < kk; p++) want += a[i * kk + p] * b[p * n + j];
            double g = got[i * n + j];
            cr_assert(fabs(g - want) <= fabs(want) / 128 + 1e-5 * (double)kk, "%lldx%lldx%lld [%lld,%lld]: %g vs %g",
                      (long long)m, (long long)n, (long long)kk, (long long)i, (long long)j, g, want);
        }
    free(a), free(b), free(got), free(pa), free(pb), free(pc);
}

Test(kernels, gemm) {
    check_gemm(128, 128, 64, NULL, 0);
    check_gemm(200, 130, 100, NULL, 0);
    tile_constant c[] = {C_INT("BM", 32), C_INT("BN", 16), C_INT("BK", 16)};
    check_gemm(70, 45, 33, c, 3);
    check_gemm(1, 1, 1, c, 3);
}

/* ---- reductions ---- */
Test(kernels, sum_rows_and_cumsum_rows) {
    int64_t shapes[][2] = {{3, 5000}, {1, 1}, {4, 1024}};
    for (int s = 0; s < 3; s++) {
        int64_t m = shapes[s][0], n = shapes[s][1];
        float *x = random_floats(m * n, -1, 1), *out = random_floats(m, 0, 1), *y = random_floats(m * n, 0, 1);
        tile_arg a1[2] = {tensor(TILE_F32, x, 2, m, n), tensor(TILE_F32, out, 1, m, 0)};
        launch(kernel("reduce.tile", "sum_rows", NULL, 0), a1, 2);
        tile_arg a2[2] = {tensor(TILE_F32, x, 2, m, n), tensor(TILE_F32, y, 2, m, n)};
        tile_constant c[] = {C_INT("BN", 256)};
        launch(kernel("reduce.tile", "cumsum_rows", c, 1), a2, 2);
        for (int64_t r = 0; r < m; r++) {
            double acc = 0;
            for (int64_t j = 0; j < n; j++) {
                acc += x[r * n + j];
                cr_assert(fabs(y[r * n + j] - acc) <= 1e-4 * (1 + sqrt((double)j)), "cumsum [%lld,%lld]: %g vs %g",
                          (long long)r, (long long)j, y[r * n + j], acc);
            }
            cr_assert(fabs(out[r] - acc) <= 1e-4 * (1 + sqrt((double)n)), "sum row %lld: %g vs %g", (long long)r, out[r], acc);
        }
        free(x), free(out), free(y);
    }
}

Test(kernels, sum_all_atomic) {
    int64_t sizes[] = {1, 4096, 100003};
    for (int s = 0; s < 3; s++) {
        int64_t n = sizes[s];
        float *x = random_floats(n, -1, 1), out = 0.5f;
        tile_arg args[2] = {tensor(TILE_F32, x, 1, n, 0), tensor(TILE_F32, &out, 1, 1, 0)};
        launch(kernel("reduce.tile", "sum_all", NULL, 0), args, 2);
        double want = 0.5;
        for (int64_t i = 0; i < n; i++) want += x[i];
        cr_assert(fabs(out - want) <= 1e-3 * (1 + sqrt((double)n) / 10), "n=%lld: %g vs %g", (long long)n, out, want);
        free(x);
    }
}

/* ---- gather ---- */
Test(kernels, gather_rows) {
    const int64_t v = 50, d = 128, r = 37;
    float *table = random_floats(v * d, -5, 5), *out = random_floats(r * d, 0, 1);
    int32_t idx[37];
    for (int i = 0; i < r; i++) idx[i] = (int32_t)uniform(0, (double)v);
    idx[3] = -1;   /* outside the table: reads zeros */
    idx[10] = 50;
    idx[11] = 49;
    tile_arg args[3] = {tensor(TILE_F32, table, 2, v, d), tensor(TILE_I32, idx, 1, r, 0), tensor(TILE_F32, out, 2, r, d)};
    launch(kernel("gather.tile", "gather_rows", NULL, 0), args, 3);
    for (int i = 0; i < r; i++)
        for (int j = 0; j < d; j++) {
            float want = idx[i] >= 0 && idx[i] < v ? table[idx[i] * d + j] : 0.0f;
            cr_assert_eq(out[i * d + j], want, "row %d (index %d) col %d", i, idx[i], j);
        }
    free(table), free(out);
}

/* ---- launch checks through the API ---- */
Test(kernels, launch_rejects_bad_arguments) {
    tile_kernel *k = kernel("vector_add.tile", "vector_add", NULL, 0);
    float a[8], b[8], c[7];
    tile_arg args[3] = {tensor(TILE_F32, a, 1, 8, 0), tensor(TILE_F32, b, 1, 8, 0), tensor(TILE_F32, c, 1, 7, 0)};
    cr_assert_eq(tile_kernel_launch(k, args, 3, NULL), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(tile_context_message(ctx), "'c'") && strstr(tile_context_message(ctx), "N"), "%s",
              tile_context_message(ctx));
    cr_assert_eq(tile_kernel_launch(k, args, 2, NULL), TILE_ERROR_INVALID_ARGUMENT);
    args[2] = tensor(TILE_BF16, c, 1, 8, 0);
    cr_assert_eq(tile_kernel_launch(k, args, 3, NULL), TILE_ERROR_INVALID_ARGUMENT);
    args[2] = tensor(TILE_F32, NULL, 1, 8, 0);
    cr_assert_eq(tile_kernel_launch(k, args, 3, NULL), TILE_ERROR_INVALID_ARGUMENT);
}
