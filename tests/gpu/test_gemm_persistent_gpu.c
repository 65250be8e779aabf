/* test_gemm_persistent_gpu.c: num_sms(), stdlib/core/gemm_persistent.tile and
 * stdlib/core/gemm_splitk.tile on the GPU through the public API.
 *
 *   num_sms      a grid(min(num_sms(), N)) kernel runs exactly the device's multiprocessor count
 *                of blocks (each writes num_blocks(0)), logged ("132" on an H200).
 *   persistent   gemm_persistent and gemm_persistent_flat against a C reference in double
 *                from the same bf16 inputs at shapes with many more tiles than SMs, fewer, and
 *                odd sizes; how many bits differ from gemm.tile on the GPU is logged (the same
 *                tiles and K order: expected none).
 *   split-K      M = 1, 16, 128 with N = 1024 and a long K (8192, and 8000 for a ragged split)
 *                against the reference (S = 1 logged against gemm.tile with the same tiles); two
 *                launches with the same S give the same bits (the workspace and fixed-order
 *                reduce make it deterministic).
 * Skips with a message where there is no GPU, and per kernel when the code generator reports it
 * unsupported. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/tile.h"

static tile_context *gpu;

static void open_gpu(void) {
    if (tile_context_create(TILE_DEVICE_CUDA, 0, &gpu) != TILE_OK)
        cr_skip_test("no CUDA device: %s", tile_context_message(NULL));
    cr_log_info("running on %s", tile_context_device_name(gpu));
}

static void close_gpu(void) {
    tile_context_destroy(gpu);
    gpu = NULL;
}

TestSuite(gemm_persistent_gpu, .init = open_gpu, .fini = close_gpu, .timeout = 600);

static uint64_t rng = 0x853c49e6748fea9bull;
static double uniform(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return 2.0 * (double)(rng >> 11) / 9007199254740992.0 - 1.0;
}

static tile_kernel *get_kernel(const char *file, const char *name, const tile_constant *c, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/stdlib/core/%s", TILE_SOURCE_DIR, file);
    tile_program *p;
    cr_assert_eq(tile_program_from_file(gpu, path, &p), TILE_OK, "%s", tile_context_message(gpu));
    tile_kernel *k = NULL;
    tile_status st = tile_program_get_kernel(p, name, c, n, &k);
    if (st == TILE_ERROR_UNSUPPORTED) cr_skip_test("%s: %s", name, tile_context_message(gpu));
    cr_assert_eq(st, TILE_OK, "%s: %s", name, tile_context_message(gpu));
    return k; /* the program lives until the context goes */
}

static tile_arg tensor(tile_dtype dt, void *data, int rank, int64_t d0, int64_t d1, int64_t d2) {
    int64_t shape[3] = {d0, d1, d2};
    return (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(dt, data, rank, shape)};
}

static void *device_alloc(size_t bytes) {
    void *p;
    cr_assert_eq(tile_alloc(gpu, bytes ? bytes : 1, &p), TILE_OK, "%s", tile_context_message(gpu));
    return p;
}

static void launch(tile_kernel *k, const tile_arg *args, size_t n) {
    cr_assert_eq(tile_kernel_launch(k, args, n, NULL), TILE_OK, "%s", tile_context_message(gpu));
    cr_assert_eq(tile_synchronize(gpu), TILE_OK, "%s", tile_context_message(gpu));
}

/* A bf16 matrix on the device with its exact values on the host. */
typedef struct Mat {
    int64_t rows, cols;
    double *v;
    void *dev;
} Mat;

static Mat random_bf16(int64_t rows, int64_t cols) {
    int64_t n = rows * cols;
    Mat a = {rows, cols, malloc(sizeof(double) * (size_t)(n + 1)), NULL};
    size_t bytes = tile_dtype_bytes(TILE_BF16, n);
    void *host = malloc(bytes + 2);
    for (int64_t i = 0; i < n; i++) a.v[i] = uniform();
    cr_assert_eq(tile_pack(TILE_BF16, a.v, n, host), TILE_OK);
    tile_unpack(TILE_BF16, host, n, a.v);
    a.dev = device_alloc(bytes);
    cr_assert_eq(tile_copy_to_device(gpu, a.dev, host, bytes), TILE_OK, "%s", tile_context_message(gpu));
    free(host);
    return a;
}

static void mat_free(Mat *a) {
    free(a->v);
    tile_free(gpu, a->dev);
}

/* Logs how many elements of two bf16 results differ in their bits: kernels with the same tiles
 * and K order (persistent or not, split-K with S = 1) are expected to agree bit for bit, but
 * the passes may give them different instructions (wgmma or mma.sync), so only the reference
 * tolerance is asserted. */
static void log_same_bits(const char *what, const uint16_t *x, const uint16_t *y, int64_t n) {
    int64_t differ = 0;
    for (int64_t i = 0; i < n; i++) differ += x[i] != y[i];
    cr_log_info("%s: %lld of %lld elements differ in their bits", what, (long long)differ, (long long)n);
}

/* Fills device memory with 0xff bytes (NaN in bf16 and f32). */
static void poison(void *dev, size_t bytes) {
    void *host = malloc(bytes + 1);
    memset(host, 0xff, bytes);
    cr_assert_eq(tile_copy_to_device(gpu, dev, host, bytes), TILE_OK, "%s", tile_context_message(gpu));
    free(host);
}

/* a @ b in double, m x n */
static double *reference(const Mat *a, const Mat *b) {
    int64_t m = a->rows, kk = a->cols, n = b->cols;
    double *c = calloc((size_t)(m * n) + 1, sizeof(double));
    for (int64_t i = 0; i < m; i++)
        for (int64_t p = 0; p < kk; p++) {
            double x = a->v[i * kk + p];
            const double *row = &b->v[p * n];
            for (int64_t j = 0; j < n; j++) c[i * n + j] += x * row[j];
        }
    return c;
}

/* Copies the bf16 m x n result at dev to the host (the bits) and checks it against want. */
static uint16_t *check_result(void *dev, const double *want, int64_t m, int64_t n, int64_t kk, const char *what) {
    size_t bytes = tile_dtype_bytes(TILE_BF16, m * n);
    uint16_t *bits = malloc(bytes + 2);
    double *got = malloc(sizeof(double) * (size_t)(m * n + 1));
    cr_assert_eq(tile_copy_to_host(gpu, bits, dev, bytes), TILE_OK, "%s", tile_context_message(gpu));
    tile_unpack(TILE_BF16, bits, m * n, got);
    double worst = 0;
    for (int64_t i = 0; i < m * n; i++) {
        double d = fabs(got[i] - want[i]);
        worst = fmax(worst, d);
        cr_assert(d <= fabs(want[i]) / 128 + 1e-5 * (double)kk, "%s %lldx%lldx%lld element %lld: %g, want %g", what,
                  (long long)m, (long long)n, (long long)kk, (long long)i, got[i], want[i]);
    }
    cr_log_info("%s %lldx%lldx%lld: max |diff| %.3g", what, (long long)m, (long long)n, (long long)kk, worst);
    free(got);
    return bits;
}

Test(gemm_persistent_gpu, num_sms_is_the_device_multiprocessor_count) {
    static const char src[] = "kernel fill(x: tensor<i32>[N]) grid(min(num_sms(), N)) {\n"
                              "  x[block_id(0)] = num_blocks(0) * 1000 + block_id(0);\n"
                              "}\n";
    tile_program *p;
    cr_assert_eq(tile_program_from_string(gpu, "fill.tile", src, strlen(src), &p), TILE_OK, "%s",
                 tile_context_message(gpu));
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(p, "fill", NULL, 0, &k), TILE_OK, "%s", tile_context_message(gpu));
    enum { N = 4096 };
    int32_t *host = malloc(sizeof(int32_t) * N);
    for (int i = 0; i < N; i++) host[i] = -1;
    void *dev = device_alloc(sizeof(int32_t) * N);
    cr_assert_eq(tile_copy_to_device(gpu, dev, host, sizeof(int32_t) * N), TILE_OK);
    tile_arg arg = tensor(TILE_I32, dev, 1, N, 0, 0);
    launch(k, &arg, 1);
    cr_assert_eq(tile_copy_to_host(gpu, host, dev, sizeof(int32_t) * N), TILE_OK);
    int sms = host[0] / 1000;
    cr_log_info("num_sms() = %d on %s", sms, tile_context_device_name(gpu));
    cr_assert(sms >= 1 && sms < N, "num_sms() = %d", sms);
    for (int i = 0; i < N; i++)
        cr_assert_eq(host[i], i < sms ? sms * 1000 + i : -1, "x[%d] = %d with %d SMs", i, host[i], sms);
    tile_free(gpu, dev);
    free(host);
    tile_program_destroy(p);
}

/* One persistent kernel against the reference and gemm at three shapes. */
static void check_persistent(tile_kernel *persistent, tile_kernel *plain, const char *name) {
    /* 16 x 16 = 256 tiles (about two per SM), 2 x 3 = 6, 8 x 8 = 64 with ragged edges */
    static const int64_t shapes[][3] = {{2048, 2048, 256}, {256, 384, 1024}, {1000, 999, 997}};
    for (int s = 0; s < 3; s++) {
        int64_t m = shapes[s][0], n = shapes[s][1], kk = shapes[s][2];
        size_t bytes = tile_dtype_bytes(TILE_BF16, m * n);
        Mat a = random_bf16(m, kk), b = random_bf16(kk, n);
        double *want = reference(&a, &b);
        void *c1 = device_alloc(bytes), *c2 = device_alloc(bytes);
        tile_arg args[3] = {tensor(TILE_BF16, a.dev, 2, m, kk, 0), tensor(TILE_BF16, b.dev, 2, kk, n, 0),
                            tensor(TILE_BF16, c1, 2, m, n, 0)};
        poison(c1, bytes);
        launch(persistent, args, 3);
        args[2] = tensor(TILE_BF16, c2, 2, m, n, 0);
        launch(plain, args, 3);
        uint16_t *got = check_result(c1, want, m, n, kk, name);
        uint16_t *ref = check_result(c2, want, m, n, kk, "gemm");
        log_same_bits(name, got, ref, m * n);
        free(got), free(ref), free(want);
        tile_free(gpu, c1), tile_free(gpu, c2);
        mat_free(&a), mat_free(&b);
    }
}

Test(gemm_persistent_gpu, persistent_against_the_reference_and_gemm) {
    tile_constant same[] = {{.name = "BM", .i = 128}, {.name = "BN", .i = 128}, {.name = "BK", .i = 64}};
    tile_kernel *plain = get_kernel("gemm.tile", "gemm", same, 3);
    check_persistent(get_kernel("gemm_persistent.tile", "gemm_persistent", same, 3), plain, "gemm_persistent");
    check_persistent(get_kernel("gemm_persistent.tile", "gemm_persistent_flat", same, 3), plain,
                     "gemm_persistent_flat");
}

Test(gemm_persistent_gpu, splitk_decode_shapes) {
    tile_kernel *partial = get_kernel("gemm_splitk.tile", "gemm_splitk_partial", NULL, 0);
    tile_kernel *reduce = get_kernel("gemm_splitk.tile", "gemm_splitk_reduce", NULL, 0);
    tile_constant same[] = {{.name = "BM", .i = 64}, {.name = "BN", .i = 128}, {.name = "BK", .i = 64}};
    tile_kernel *plain = get_kernel("gemm.tile", "gemm", same, 3);
    /* (M, K, S): S = 1 (gemm's order), the rule's S = 2 at 132 SMs, more, ragged, many */
    static const int64_t cases[][3] = {{1, 8192, 1}, {1, 8192, 2}, {16, 8192, 5}, {128, 8192, 2}, {128, 8000, 3},
                                       {16, 8000, 16}};
    for (int ci = 0; ci < 6; ci++) {
        int64_t m = cases[ci][0], n = 1024, kk = cases[ci][1], s = cases[ci][2];
        Mat a = random_bf16(m, kk), b = random_bf16(kk, n);
        double *want = reference(&a, &b);
        void *w = device_alloc(sizeof(float) * (size_t)(s * m * n));
        void *c = device_alloc(tile_dtype_bytes(TILE_BF16, m * n));
        tile_arg pargs[3] = {tensor(TILE_BF16, a.dev, 2, m, kk, 0), tensor(TILE_BF16, b.dev, 2, kk, n, 0),
                             tensor(TILE_F32, w, 3, s, m, n)};
        tile_arg rargs[2] = {tensor(TILE_F32, w, 3, s, m, n), tensor(TILE_BF16, c, 2, m, n, 0)};
        char what[64];
        snprintf(what, sizeof what, "split-K S=%lld", (long long)s);
        poison(w, sizeof(float) * (size_t)(s * m * n));
        launch(partial, pargs, 3);
        launch(reduce, rargs, 2);
        uint16_t *first = check_result(c, want, m, n, kk, what);
        poison(c, tile_dtype_bytes(TILE_BF16, m * n)); /* the second run must write every element again */
        launch(partial, pargs, 3);
        launch(reduce, rargs, 2);
        uint16_t *second = check_result(c, want, m, n, kk, what);
        cr_assert(memcmp(first, second, tile_dtype_bytes(TILE_BF16, m * n)) == 0, "%s M=%lld: two runs differ", what,
                  (long long)m);
        if (s == 1) {
            tile_arg gargs[3] = {pargs[0], pargs[1], tensor(TILE_BF16, c, 2, m, n, 0)};
            launch(plain, gargs, 3);
            uint16_t *g = check_result(c, want, m, n, kk, "gemm");
            log_same_bits("split-K S=1 vs gemm", first, g, m * n);
            free(g);
        }
        free(first), free(second), free(want);
        tile_free(gpu, w), tile_free(gpu, c);
        mat_free(&a), mat_free(&b);
    }
}
