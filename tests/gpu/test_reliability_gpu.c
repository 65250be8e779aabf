/* test_reliability_gpu.c: the issue-10 regressions that need a GPU to show (labelled gpu; skips
 * without one): a misaligned data pointer is refused on cuda exactly as on the VM (defect 11),
 * and num_warps that is not a power of two never reaches the backend (defect 5). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "tile/tile.h"

static tile_context *cuda_or_skip(void) {
    tile_context *ctx = NULL;
    if (tile_context_create(TILE_DEVICE_CUDA, 0, &ctx) != TILE_OK) cr_skip_test("no GPU: %s", tile_context_message(NULL));
    return ctx;
}

static const char src[] =
    "kernel va<BLOCK = 64>(a: tensor<f32>[N], b: tensor<f32>[N], c: tensor<f32>[N]) grid(cdiv(N, BLOCK)) {\n"
    "  let i = block_id(0) * BLOCK;\n"
    "  c[i :+ BLOCK] = a[i :+ BLOCK] + b[i :+ BLOCK];\n"
    "}\n";

static tile_status launch_at(tile_context *ctx, size_t offset) {
    tile_program *p;
    tile_kernel *k;
    cr_assert_eq(tile_program_from_string(ctx, "va.tile", src, sizeof src - 1, &p), TILE_OK);
    cr_assert_eq(tile_program_get_kernel(p, "va", NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
    int64_t n = 8;
    void *buf[3];
    tile_arg args[3];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(tile_alloc(ctx, 256, &buf[i]), TILE_OK);
        args[i] = (tile_arg){.kind = TILE_ARG_TENSOR,
                             .tensor = tile_tensor_contiguous(TILE_F32, (char *)buf[i] + offset, 1, &n)};
    }
    tile_status st = tile_kernel_launch(k, args, 3, NULL);
    if (st == TILE_OK) st = tile_synchronize(ctx);
    for (int i = 0; i < 3; i++) tile_free(ctx, buf[i]);
    tile_program_destroy(p);
    return st;
}

Test(reliability_gpu, misaligned_pointer_refused_on_cuda) {
    tile_context *ctx = cuda_or_skip();
    cr_assert_eq(launch_at(ctx, 1), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(tile_context_message(ctx), "not aligned"), "%s", tile_context_message(ctx));
    cr_assert_eq(launch_at(ctx, 4), TILE_OK, "%s", tile_context_message(ctx));
    tile_context_destroy(ctx);
}

Test(reliability_gpu, num_warps_not_a_power_of_two_refused) {
    tile_context *ctx = cuda_or_skip();
    tile_program *p;
    cr_assert_eq(tile_program_from_string(ctx, "va.tile", src, sizeof src - 1, &p), TILE_OK);
    for (int w = 1; w <= 8; w++) {
        char *ptx = NULL;
        tile_emit_options opt = {.arch = "sm_80", .num_warps = w};
        tile_status st = tile_program_emit(p, "va", NULL, 0, TILE_EMIT_PTX, &opt, &ptx, NULL);
        bool pow2 = (w & (w - 1)) == 0;
        cr_assert_eq(st, pow2 ? TILE_OK : TILE_ERROR_INVALID_ARGUMENT, "num_warps %d: %s", w, tile_context_message(ctx));
        if (pow2) {
            char want[32];
            snprintf(want, sizeof want, ".maxntid %d", 32 * w);
            cr_assert(strstr(ptx, want), "num_warps %d", w);
        }
        tile_string_free(ptx);
    }
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}
