/*
 * test_lang2_gpu.c: the constructs of issue 8 on the GPU, with the checks the VM suite uses
 * (tests/lang2/checks.h): atomics with results (order-free checks), cas spin locks and fence,
 * argmax/argmin, sort/argsort, topk/argtopk bit for bit, Philox randint/rand bit for bit and
 * randn within the GPU's math, and the batched dot. Skips where there is no CUDA device.
 */
#include "../lang2/checks.h"

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

TestSuite(lang2_gpu, .init = open_gpu, .fini = close_gpu, .timeout = 600);

Test(lang2_gpu, atomics_integers) {
    for (int op = OP_ADD_; op <= OP_XCHG_; op++) {
        check_rmw_int(gpu, "rmw_i32", TILE_I32, 32, true, op);
        check_rmw_int(gpu, "rmw_u32", TILE_U32, 32, false, op);
        check_rmw_int(gpu, "rmw_i64", TILE_I64, 64, true, op);
        check_rmw_int(gpu, "rmw_u64", TILE_UINT(64), 64, false, op);
    }
}

Test(lang2_gpu, atomics_floats) {
    int ops[] = {OP_ADD_, OP_MAX_, OP_MIN_, OP_XCHG_};
    for (int i = 0; i < 4; i++) check_rmw_f32(gpu, ops[i]);
    check_add_half(gpu, "add_f16", TILE_F16);
    check_add_half(gpu, "add_bf16", TILE_BF16);
}

Test(lang2_gpu, cas_lock_fence) {
    check_cas(gpu);
    check_locked_count(gpu);
}

Test(lang2_gpu, selection) {
    check_arg_extremes(gpu);
    check_sort_rows(gpu, false);
    check_sort_rows(gpu, true);
    check_sort_cols(gpu);
    check_sort_u32(gpu);
    check_int_ranks(gpu);
    check_middle_axis(gpu);
    check_topk(gpu, 3);
    check_topk(gpu, 4);
}

Test(lang2_gpu, philox) {
    check_philox(gpu, 0, 0, 300, 2e-3);
    check_philox(gpu, 42, 1000, 1024, 2e-3);
    check_philox(gpu, -1, -77, 200, 2e-3);
}

Test(lang2_gpu, batched_dot) {
    check_bdot_f32(gpu);
    check_bdot_bf16(gpu);
    check_bdot_i8(gpu);
}

/* ---- the examples of examples/kernels/ ---- */
#include "../lang2/example_checks.h"

Test(lang2_gpu, examples) {
    check_moe_router(gpu, 1000, 8, 2);
    check_moe_router(gpu, 37, 64, 8);
    check_counting_sort(gpu, 100000, 256);
    check_counting_sort(gpu, 777, 128);
    check_dropout(gpu, 100000, 0.5f, 123);
    check_layernorm_backward(gpu, 300, 1000);
}
