/*
 * test_pipeline_specialize_gpu.c: a loop's own warp-specialization option on the GPU
 * (tests/gpu/gemm_specialize.tile: `pipeline(STAGES, specialize = WS)`), against the VM.
 *
 * WS = 1 asks for a TMA producer warpgroup (built on sm_90a where the runtime finds the ptxas
 * program and the launch facts allow TMA: contiguous tensors with 16-byte aligned rows, at
 * 1024^3 and at a shape with tails, 200 x 136 x 448), WS = 0 forbids it even with
 * TILE_WARP_SPECIALIZE=1, which this suite sets. Either way the result must be the VM's bit for
 * bit: the inputs are multiples of 1/16 below 1, so every partial sum is exact in f32 in any
 * order. The PTX of the asking kernel (tile_program_emit with TILE_EMIT_SPECIALIZED=1, the variant
 * of such tensors) is logged with whether it moved registers (setmaxnreg), and the forbidding
 * kernel's must not. Skips where there is no GPU; on one that is not sm_90a it still checks the
 * results (the option never fails, it falls back).
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/tile.h"

static tile_context *gpu, *vm;

static void open_devices(void) {
    if (tile_context_create(TILE_DEVICE_CUDA, 0, &gpu) != TILE_OK)
        cr_skip_test("no CUDA device: %s", tile_context_message(NULL));
    cr_assert_eq(tile_context_create(TILE_DEVICE_VM, 0, &vm), TILE_OK);
    setenv("TILE_WARP_SPECIALIZE", "1", 1); /* the global default on: WS = 0 must still win */
}

static void close_devices(void) {
    tile_context_destroy(gpu);
    tile_context_destroy(vm);
    unsetenv("TILE_WARP_SPECIALIZE");
}

TestSuite(pipeline_specialize_gpu, .init = open_devices, .fini = close_devices, .timeout = 600);

static tile_program *load(tile_context *ctx) {
    const char *dir = getenv("TILE_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/gpu/gemm_specialize.tile", dir && *dir ? dir : TILE_SOURCE_DIR);
    tile_program *p;
    cr_assert_eq(tile_program_from_file(ctx, path, &p), TILE_OK, "%s", tile_context_message(ctx));
    return p;
}

/* C = A @ B of gemm with the constants on ctx into c (m x n f32). */
static void run(tile_context *ctx, const tile_constant *consts, size_t nconsts, int64_t m, int64_t n, int64_t k,
                float *c) {
    tile_program *p = load(ctx);
    tile_kernel *kern;
    cr_assert_eq(tile_program_get_kernel(p, "gemm", consts, nconsts, &kern), TILE_OK, "%s", tile_context_message(ctx));
    int64_t shapes[3][2] = {{m, k}, {k, n}, {m, n}};
    tile_dtype types[3] = {TILE_BF16, TILE_BF16, TILE_F32};
    tile_arg args[3];
    void *dev[3];
    size_t bytes[3];
    for (int i = 0; i < 3; i++) {
        int64_t numel = shapes[i][0] * shapes[i][1];
        bytes[i] = tile_dtype_bytes(types[i], numel);
        double *values = malloc((size_t)numel * sizeof(double));
        for (int64_t j = 0; j < numel; j++) values[j] = i < 2 ? (double)((j * 37 + i * 11) % 29 - 14) / 16.0 : 0.0;
        void *host = malloc(bytes[i]);
        cr_assert_eq(tile_pack(types[i], values, numel, host), TILE_OK);
        cr_assert_eq(tile_alloc(ctx, bytes[i], &dev[i]), TILE_OK);
        cr_assert_eq(tile_copy_to_device(ctx, dev[i], host, bytes[i]), TILE_OK);
        free(values), free(host);
        args[i] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(types[i], dev[i], 2, shapes[i])};
    }
    cr_assert_eq(tile_kernel_launch(kern, args, 3, NULL), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(tile_copy_to_host(ctx, c, dev[2], bytes[2]), TILE_OK, "%s", tile_context_message(ctx));
    for (int i = 0; i < 3; i++) tile_free(ctx, dev[i]);
    tile_program_destroy(p);
}

Test(pipeline_specialize_gpu, asked_and_forbidden_agree_with_the_vm) {
    static const struct {
        int ws, bn, w;
    } configs[] = {{1, 128, 4}, {0, 128, 4}, {1, 256, 8}};
    const int64_t shapes[][3] = {{1024, 1024, 1024}, {200, 136, 448}};
    for (size_t ci = 0; ci < sizeof configs / sizeof configs[0]; ci++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            tile_constant consts[3] = {{.name = "WS", .i = configs[ci].ws}, {.name = "BN", .i = configs[ci].bn},
                                       {.name = "W", .i = configs[ci].w}};
            int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            float *want = calloc((size_t)(m * n), 4), *got = calloc((size_t)(m * n), 4);
            run(vm, consts, 3, m, n, k, want);
            run(gpu, consts, 3, m, n, k, got);
            for (int64_t i = 0; i < m * n; i++)
                cr_assert_eq(got[i], want[i], "WS=%d BN=%d %lldx%lldx%lld: c[%lld] = %g, the VM %g", configs[ci].ws,
                             configs[ci].bn, (long long)m, (long long)n, (long long)k, (long long)i, got[i], want[i]);
            free(want), free(got);
        }
}

Test(pipeline_specialize_gpu, the_ptx_moves_registers_only_where_asked) {
    tile_program *p = load(gpu);
    setenv("TILE_EMIT_SPECIALIZED", "1", 1);
    for (int ws = 0; ws < 2; ws++) {
        tile_constant c = {.name = "WS", .i = ws};
        tile_emit_options opt = {.arch = "sm_90a"};
        char *ptx = NULL;
        size_t len = 0;
        cr_assert_eq(tile_program_emit(p, "gemm", &c, 1, TILE_EMIT_PTX, &opt, &ptx, &len), TILE_OK, "%s",
                     tile_context_message(gpu));
        bool roles = strstr(ptx, "setmaxnreg") != NULL;
        if (ws == 0) cr_assert(!roles, "specialize = 0 with TILE_WARP_SPECIALIZE=1: no warp roles");
        else cr_log_info("specialize = 1: %s", roles ? "warp roles (setmaxnreg)" : "the plain ring (no ptxas program?)");
        tile_string_free(ptx);
    }
    unsetenv("TILE_EMIT_SPECIALIZED");
    tile_program_destroy(p);
}
