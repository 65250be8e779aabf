/*
 * test_warp_roles_gpu.c: the warp-specialized gemms of tests/ir/warp_roles.ir on the GPU (sm_90a:
 * TMA, mbarriers, setmaxnreg, a named barrier per role), against the VM's results of the same IR.
 * The inputs are multiples of 1/16 below 1 and every partial sum is a multiple of 1/256 far below
 * 2^16, so each sum is exact in f32 in any order: the GPU's tensor cores and the VM must agree bit
 * for bit. Skips where there is no GPU (or it is not an sm_90a one: the kernels use TMA).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/tile.h"

static tile_context *gpu, *vm;

static void open_devices(void) {
    if (tile_context_create(TILE_DEVICE_CUDA, 0, &gpu) != TILE_OK)
        cr_skip_test("no CUDA device: %s", tile_context_message(NULL));
    cr_assert_eq(tile_context_create(TILE_DEVICE_VM, 0, &vm), TILE_OK);
}

static void close_devices(void) {
    tile_context_destroy(gpu);
    tile_context_destroy(vm);
}

TestSuite(warp_roles_gpu, .init = open_devices, .fini = close_devices, .timeout = 300);

/* C = A @ B of `kernel` on ctx (bf16 inputs from a fixed pattern, f32 output) into c; false: skipped. */
static bool run(tile_context *ctx, const char *kernel, int64_t m, int64_t n, int64_t k, float *c) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/ir/warp_roles.ir", TILE_SOURCE_DIR);
    tile_program *p;
    cr_assert_eq(tile_program_from_file(ctx, path, &p), TILE_OK, "%s", tile_context_message(ctx));
    tile_kernel *kern;
    tile_status st = tile_program_get_kernel(p, kernel, NULL, 0, &kern);
    if (st == TILE_ERROR_UNSUPPORTED) return false;
    cr_assert_eq(st, TILE_OK, "%s", tile_context_message(ctx));
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
    st = tile_kernel_launch(kern, args, 3, NULL);
    bool ran = st != TILE_ERROR_UNSUPPORTED;
    if (ran) {
        cr_assert_eq(st, TILE_OK, "%s: %s", kernel, tile_context_message(ctx));
        cr_assert_eq(tile_copy_to_host(ctx, c, dev[2], bytes[2]), TILE_OK, "%s", tile_context_message(ctx));
    }
    for (int i = 0; i < 3; i++) tile_free(ctx, dev[i]);
    tile_program_destroy(p);
    return ran;
}

Test(warp_roles_gpu, the_specialized_gemms_agree_with_the_vm) {
    const char *kernels[] = {"gemm_roles", "gemm_roles_wgmma"};
    const int64_t shapes[][3] = {{200, 136, 448}, {256, 128, 64}, {128, 64, 1024}};
    for (int w = 0; w < 2; w++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            float *want = calloc((size_t)(m * n), 4), *got = calloc((size_t)(m * n), 4);
            cr_assert(run(vm, kernels[w], m, n, k, want));
            if (!run(gpu, kernels[w], m, n, k, got)) cr_skip_test("%s: %s", kernels[w], tile_context_message(gpu));
            for (int64_t i = 0; i < m * n; i++)
                cr_assert_eq(got[i], want[i], "%s %lldx%lldx%lld: c[%lld] = %g, the VM %g", kernels[w], (long long)m,
                             (long long)n, (long long)k, (long long)i, got[i], want[i]);
            free(want), free(got);
        }
}
