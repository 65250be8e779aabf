/*
 * test_pingpong_gpu.c: stdlib/core/gemm_persistent.tile's gemm_persistent_pingpong (the ping-pong
 * warp roles, passes/pingpong.c) on the GPU against the VM, bit for bit.
 *
 * Where the runtime builds the roles (sm_90a, the ptxas program found, TMA-fit tensors: contiguous
 * with 16-byte aligned rows) the block is a TMA producer warpgroup and two consumer warpgroups
 * taking turns; elsewhere the kernel is gemm_persistent. Either way C must equal the VM's (which
 * runs the kernel as written) bit for bit: the inputs are multiples of 1/16 below 1, so every
 * partial sum is exact in f32 in any order. Shapes: many tiles per block (2048^2: 256 tiles over
 * the SMs, some blocks 2 and some 1), odd tile counts per block and ragged edges (1000 x 1500 x
 * 200, 3000 x 2900 x 72 with K not a multiple of BK), fewer tiles than SMs (200 x 136 x 448), and
 * K = 40 < BK. STAGES 3 and 4. The PTX (tile_program_emit with TILE_EMIT_SPECIALIZED=1, the
 * variant of such tensors) is logged with whether it has the roles (setmaxnreg). Skips where there
 * is no GPU.
 */
#include <string.h>

#include "gpu_suite.h"

static tile_context *gpu, *vm;
static tile_program *gpu_prog, *vm_prog;

static void open_devices(void) {
    gpu_suite_open("stdlib/core/gemm_persistent.tile", &gpu, &gpu_prog);
    cr_assert_eq(tile_context_create(TILE_DEVICE_VM, 0, &vm), TILE_OK);
    const char *dir = getenv("TILE_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/stdlib/core/gemm_persistent.tile", dir && *dir ? dir : TILE_SOURCE_DIR);
    cr_assert_eq(tile_program_from_file(vm, path, &vm_prog), TILE_OK, "%s", tile_context_message(vm));
}

static void close_devices(void) {
    gpu_suite_close(&gpu, &gpu_prog);
    gpu_suite_close(&vm, &vm_prog);
}

TestSuite(pingpong_gpu, .init = open_devices, .fini = close_devices, .timeout = 900);

/* C = A @ B by gemm_persistent_pingpong with STAGES on ctx: the bf16 bits of C (m x n). */
static uint16_t *run(tile_context *ctx, tile_program *p, int64_t stages, int64_t m, int64_t n, int64_t k) {
    tile_kernel *kern;
    tile_constant c = {.name = "STAGES", .i = stages};
    cr_assert_eq(tile_program_get_kernel(p, "gemm_persistent_pingpong", &c, 1, &kern), TILE_OK, "%s",
                 tile_context_message(ctx));
    int64_t shapes[3][2] = {{m, k}, {k, n}, {m, n}};
    tile_arg args[3];
    void *dev[3];
    size_t bytes[3];
    for (int i = 0; i < 3; i++) {
        int64_t numel = shapes[i][0] * shapes[i][1];
        bytes[i] = tile_dtype_bytes(TILE_BF16, numel);
        double *values = malloc((size_t)numel * sizeof(double) + 8);
        for (int64_t j = 0; j < numel; j++) values[j] = i < 2 ? (double)((j * 37 + i * 11) % 29 - 14) / 16.0 : 0.0;
        void *host = malloc(bytes[i] + 2);
        cr_assert_eq(tile_pack(TILE_BF16, values, numel, host), TILE_OK);
        cr_assert_eq(tile_alloc(ctx, bytes[i] ? bytes[i] : 1, &dev[i]), TILE_OK);
        cr_assert_eq(tile_copy_to_device(ctx, dev[i], host, bytes[i]), TILE_OK);
        free(values), free(host);
        args[i] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, dev[i], 2, shapes[i])};
    }
    cr_assert_eq(tile_kernel_launch(kern, args, 3, NULL), TILE_OK, "%s", tile_context_message(ctx));
    uint16_t *c_bits = malloc(bytes[2] + 2);
    cr_assert_eq(tile_copy_to_host(ctx, c_bits, dev[2], bytes[2]), TILE_OK, "%s", tile_context_message(ctx));
    for (int i = 0; i < 3; i++) tile_free(ctx, dev[i]);
    return c_bits;
}

Test(pingpong_gpu, agrees_with_the_vm_bit_for_bit) {
    static const int64_t shapes[][3] = {
        {2048, 2048, 256}, {1000, 1500, 200}, {3000, 2900, 72}, {200, 136, 448}, {384, 640, 40}};
    for (int64_t stages = 3; stages <= 4; stages++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            uint16_t *want = run(vm, vm_prog, stages, m, n, k), *got = run(gpu, gpu_prog, stages, m, n, k);
            for (int64_t i = 0; i < m * n; i++)
                cr_assert_eq(got[i], want[i], "STAGES=%lld %lldx%lldx%lld: c[%lld] = 0x%04x, the VM 0x%04x",
                             (long long)stages, (long long)m, (long long)n, (long long)k, (long long)i, got[i], want[i]);
            free(want), free(got);
        }
}

Test(pingpong_gpu, the_ptx_has_the_roles_where_the_runtime_can_build_them) {
    setenv("TILE_EMIT_SPECIALIZED", "1", 1);
    tile_emit_options opt = {.arch = "sm_90a"};
    char *ptx = NULL;
    size_t len = 0;
    cr_assert_eq(tile_program_emit(gpu_prog, "gemm_persistent_pingpong", NULL, 0, TILE_EMIT_PTX, &opt, &ptx, &len), TILE_OK,
                 "%s", tile_context_message(gpu));
    int incs = 0;
    for (const char *q = ptx; (q = strstr(q, "setmaxnreg.inc.sync.aligned.u32 232;")); q++) incs++;
    cr_log_info("gemm_persistent_pingpong: %s", incs == 2 ? "a producer and two consumers (setmaxnreg)"
                                                          : "no warp roles (no ptxas program?)");
    cr_assert(incs == 0 || incs == 2, "%d consumers", incs);
    tile_string_free(ptx);
    unsetenv("TILE_EMIT_SPECIALIZED");
}
