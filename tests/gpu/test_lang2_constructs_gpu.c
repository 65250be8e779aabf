/* test_lang2_constructs_gpu.c: the kernels of tests/lang2/constructs.tile (Language II: masked loads and
 * stores, check(), break/continue/return, several results, c ? a : b, bitcast, 2-D index
 * tiles, shifts past the width) on the GPU against the VM with the same inputs. Every output
 * tensor must be equal byte for byte: these kernels do no reassociated float arithmetic. A
 * failing check() must fail the launch on the GPU as on the VM, with the user's message,
 * before anything runs. Skips where there is no GPU. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/tile.h"

static tile_context *gpu, *vm;
static tile_program *gpu_prog, *vm_prog;

static tile_program *load(tile_context *ctx) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/lang2/constructs.tile", TILE_SOURCE_DIR);
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

TestSuite(lang2_constructs_gpu, .init = open_devices, .fini = close_devices, .timeout = 600);

enum { MAX_PARAMS = 8 };

typedef struct Param {
    bool tensor;
    tile_dtype dtype;
    int rank;
    int64_t shape[2];
    void *host;        /* inputs; outputs are read back into out[] */
    int64_t scalar;
} Param;

static size_t param_bytes(const Param *p) {
    return tile_dtype_bytes(p->dtype, p->shape[0] * (p->rank == 2 ? p->shape[1] : 1));
}

/* Runs kernel `name` on ctx with copies of the params' host data; out[i] receives tensor i
 * after the launch (malloc'd). Returns the launch's status. */
static tile_status run(tile_context *ctx, tile_program *prog, const char *name, const Param *ps, int n, void **out) {
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(prog, name, NULL, 0, &k), TILE_OK, "%s: %s", name, tile_context_message(ctx));
    tile_arg args[MAX_PARAMS];
    memset(args, 0, sizeof args);
    for (int i = 0; i < n; i++) {
        if (!ps[i].tensor) {
            args[i] = (tile_arg){.kind = TILE_ARG_INT, .i = ps[i].scalar};
            continue;
        }
        size_t bytes = param_bytes(&ps[i]);
        void *dev;
        cr_assert_eq(tile_alloc(ctx, bytes, &dev), TILE_OK, "%s", tile_context_message(ctx));
        cr_assert_eq(tile_copy_to_device(ctx, dev, ps[i].host, bytes), TILE_OK, "%s", tile_context_message(ctx));
        args[i].kind = TILE_ARG_TENSOR;
        args[i].tensor = tile_tensor_contiguous(ps[i].dtype, dev, ps[i].rank, ps[i].shape);
    }
    tile_status st = tile_kernel_launch(k, args, (size_t)n, NULL);
    if (st == TILE_OK) cr_assert_eq(tile_synchronize(ctx), TILE_OK, "%s", tile_context_message(ctx));
    for (int i = 0; i < n; i++) {
        if (!ps[i].tensor) continue;
        size_t bytes = param_bytes(&ps[i]);
        out[i] = malloc(bytes);
        cr_assert_eq(tile_copy_to_host(ctx, out[i], args[i].tensor.data, bytes), TILE_OK, "%s", tile_context_message(ctx));
        tile_free(ctx, args[i].tensor.data);
    }
    return st;
}

/* Runs on both devices and requires equal bytes in every tensor afterwards. */
static void same_on_both(const char *name, const Param *ps, int n) {
    void *on_gpu[MAX_PARAMS] = {0}, *on_vm[MAX_PARAMS] = {0};
    cr_assert_eq(run(vm, vm_prog, name, ps, n, on_vm), TILE_OK, "%s on the VM: %s", name, tile_context_message(vm));
    cr_assert_eq(run(gpu, gpu_prog, name, ps, n, on_gpu), TILE_OK, "%s on the GPU: %s", name, tile_context_message(gpu));
    for (int i = 0; i < n; i++) {
        if (!ps[i].tensor) continue;
        size_t bytes = param_bytes(&ps[i]);
        const unsigned char *a = on_vm[i], *b = on_gpu[i];
        for (size_t j = 0; j < bytes; j++)
            cr_assert_eq(a[j], b[j], "%s: tensor %d differs at byte %zu (VM %02x, GPU %02x)", name, i, j, a[j], b[j]);
        free(on_vm[i]);
        free(on_gpu[i]);
    }
}

static uint64_t rng = 99;
static float uniform(float lo, float hi) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (float)((double)(rng >> 11) / 9007199254740992.0);
}

static void *floats(int64_t n, float lo, float hi) {
    float *p = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) p[i] = uniform(lo, hi);
    return p;
}

static Param t1(tile_dtype dt, void *host, int64_t n) { return (Param){true, dt, 1, {n, 1}, host, 0}; }
static Param t2(tile_dtype dt, void *host, int64_t r, int64_t c) { return (Param){true, dt, 2, {r, c}, host, 0}; }
static Param scalar(int64_t v) { return (Param){.scalar = v}; }

Test(lang2_constructs_gpu, masked_slice) {
    int64_t n = 1000;
    Param ps[3] = {t1(TILE_F32, floats(n, -1, 1), n), t1(TILE_F32, floats(n, 5, 6), n), scalar(777)};
    same_on_both("masked_slice", ps, 3);
}

Test(lang2_constructs_gpu, masked_gather_and_scatter) {
    enum { N = 1009, M = 700 };
    int32_t *x = malloc(sizeof(int32_t) * N), *idx = malloc(sizeof(int32_t) * M), *y = calloc(M, 4), *z = calloc(N, 4);
    for (int i = 0; i < N; i++) x[i] = 1000 + i;
    for (int j = 0; j < M; j++) idx[j] = (j * 7) % N;
    Param ps[4] = {t1(TILE_I32, x, N), t1(TILE_I32, idx, M), t1(TILE_I32, y, M), t1(TILE_I32, z, N)};
    same_on_both("masked_gather", ps, 4);
}

Test(lang2_constructs_gpu, masked_2d) {
    Param ps[2] = {t2(TILE_F32, floats(61 * 75, -1, 1), 61, 75), t2(TILE_F32, floats(61 * 75, 5, 6), 61, 75)};
    same_on_both("masked_2d", ps, 2);
}

Test(lang2_constructs_gpu, pointwise_gather) {
    int64_t r = 37, c = 45;
    int32_t *rows = malloc(sizeof(int32_t) * (size_t)(r * c)), *cols = malloc(sizeof(int32_t) * (size_t)(r * c));
    for (int64_t p = 0; p < r * c; p++) rows[p] = (int32_t)((p * 5) % r), cols[p] = (int32_t)((p * 11 + 3) % c);
    Param ps[5] = {t2(TILE_F32, floats(r * c, -1, 1), r, c), t2(TILE_I32, rows, r, c), t2(TILE_I32, cols, r, c),
                   t2(TILE_F32, floats(r * c, 0, 1), r, c), t2(TILE_F32, floats(r * c, 0, 1), r, c)};
    same_on_both("pointwise_gather", ps, 5);
}

Test(lang2_constructs_gpu, control_flow) {
    int64_t r = 40, c = 64;
    Param ps[3] = {t2(TILE_F32, floats(r * c, -0.5f, 1.0f), r, c), t1(TILE_F32, floats(r, 7, 8), r), scalar(29)};
    same_on_both("control", ps, 3);
}

Test(lang2_constructs_gpu, check_fails_the_launch_before_anything_runs) {
    int64_t r = 4, c = 64;
    float *y = floats(r, 7, 8);
    Param ps[3] = {t2(TILE_F32, floats(r * c, 0, 1), r, c), t1(TILE_F32, y, r), scalar(-1)};
    void *out[3] = {0};
    cr_assert_eq(run(gpu, gpu_prog, "control", ps, 3, out), TILE_ERROR_INVALID_ARGUMENT);
    const char *msg = tile_context_message(gpu);
    cr_assert(strstr(msg, "check failed: used must not be negative") && strstr(msg, "constructs.tile:50:11"), "%s", msg);
    cr_assert_eq(memcmp(out[1], y, sizeof(float) * (size_t)r), 0, "the kernel ran");
    free(out[0]), free(out[1]);
}

Test(lang2_constructs_gpu, tuples_and_conditional) {
    int64_t r = 9, c = 32;
    Param ps[5];
    for (int i = 0; i < 5; i++) ps[i] = t2(TILE_F32, floats(r * c, -1, 1), r, c);
    same_on_both("tuples", ps, 5);
}

Test(lang2_constructs_gpu, bitcast) {
    enum { N = 256, M = 128 };
    uint16_t *h = malloc(2 * N);
    for (int i = 0; i < N; i++) h[i] = (uint16_t)(0x3f00 + i * 13); /* bf16 values of every sign and size */
    Param ps[6] = {t1(TILE_F32, floats(N, -100, 100), N), t1(TILE_U32, calloc(N, 4), N), t1(TILE_F32, calloc(N, 4), N),
                   t1(TILE_BF16, h, N), t1(TILE_U32, calloc(M, 4), M), t1(TILE_BF16, calloc(N, 2), N)};
    same_on_both("bits", ps, 6);
}

Test(lang2_constructs_gpu, shifts) {
    enum { N = 64 };
    int32_t *x = malloc(4 * N), *s = malloc(4 * N);
    for (int i = 0; i < N; i++) x[i] = i % 2 ? -(i * 1000 + 7) : i * 1000 + 7, s[i] = (i * 3) % 70 - 3;
    Param ps[4] = {t1(TILE_I32, x, N), t1(TILE_I32, s, N), t1(TILE_I32, calloc(N, 4), N), t1(TILE_U32, calloc(N, 4), N)};
    same_on_both("shifts", ps, 4);
}

Test(lang2_constructs_gpu, return_inside_loops) {
    int64_t r = 300, c = 64;
    Param ps[2] = {t2(TILE_F32, floats(r * c, 0, 0.97f), r, c), t1(TILE_I32, calloc((size_t)r, 4), r)};
    same_on_both("search", ps, 2);
}

Test(lang2_constructs_gpu, bitcast_of_a_moved_value) {
    Param ps[1] = {t2(TILE_U32, calloc(64 * 64, 4), 64, 64)};
    same_on_both("bits_moved", ps, 1);
}

Test(lang2_constructs_gpu, masked_types) {
    enum { N = 1000 };
    uint16_t *x = malloc(2 * N);
    uint8_t *m = malloc(N);
    for (int i = 0; i < N; i++) x[i] = (uint16_t)(0x3e00 + i * 7), m[i] = (uint8_t)(i % 5 != 0);
    Param ps[5] = {t1(TILE_BF16, x, N), t1(TILE_BOOL, m, N), t1(TILE_UINT(16), calloc(N, 2), N),
                   t1(TILE_F16, calloc(N, 2), N), t1(TILE_I8, calloc(N, 1), N)};
    same_on_both("masked_types", ps, 5);
}

Test(lang2_constructs_gpu, masked_loop) {
    int64_t m = 70, k = 300;
    Param ps[2] = {t2(TILE_F32, floats(m * k, -1, 1), m, k), t2(TILE_F32, floats(m * 64, 0, 1), m, 64)};
    same_on_both("masked_loop", ps, 2);
}
