/*
 * test_gemm_fp8_gpu.c: stdlib/core/gemm_fp8.tile on the GPU against the C reference of
 * tests/gemm_fp8_check.h: the VM suite's cases (test_gemm_fp8.c: small tiles, odd shapes, both
 * scalings and result types), then the default tiles at larger and aligned shapes, where the
 * 8-bit tensor-core path (wgmma m64nNk32 .e4m3 on sm_90a for the default K steps of 128, mma.sync
 * m16n8k32 .e4m3 on sm_89 and for narrower K steps, operands through cp.async or TMA rings) runs; and the f32 -> f8 conversions of codegen_f8.c against the VM's, value for
 * value. Skips without a GPU.
 */
#include "gpu_suite.h"
#include "../gemm_fp8_check.h"

static tile_context *ctx;
static tile_program *prog;

static void setup(void) { gpu_suite_open("stdlib/core/gemm_fp8.tile", &ctx, &prog); }
static void teardown(void) { gpu_suite_close(&ctx, &prog); }

TestSuite(gemm_fp8_gpu, .init = setup, .fini = teardown, .timeout = 900);

static void run_part(int part) { gemm_fp8_check_part(ctx, prog, part, 2); }

Test(gemm_fp8_gpu, cases_0) { run_part(0); }
Test(gemm_fp8_gpu, cases_1) { run_part(1); }

/* The default tiles at aligned shapes (TMA rings on sm_90a where the launch facts allow) and with
 * tails, both scalings, both result types. */
Test(gemm_fp8_gpu, default_tiles) {
    GemmFp8Case cases[] = {
        {.kernel = "gemm_fp8", .m = 512, .n = 384, .k = 1024},
        {.kernel = "gemm_fp8_f32", .m = 300, .n = 260, .k = 520},
        {.kernel = "gemm_fp8_block", .m = 512, .n = 384, .k = 1024},
        {.kernel = "gemm_fp8_block_f32", .m = 300, .n = 260, .k = 520},
        {.kernel = "gemm_fp8", .m = 16, .n = 1024, .k = 2048},
        {.kernel = "gemm_fp8_block", .m = 1, .n = 512, .k = 384},
        {.kernel = "gemm_fp8_e5m2", .m = 512, .n = 384, .k = 1024},
        {.kernel = "gemm_fp8_block_e5m2", .m = 300, .n = 260, .k = 520},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) gemm_fp8_check(ctx, prog, &cases[i]);
}

/* cast<f8e4m3> and cast<f8e5m2> of f32 values on the GPU give the VM's bytes: every f8 value, the
 * midpoints between neighbours (ties to even), just beside them, overflow (e4m3 saturates, e5m2
 * goes to infinity), infinities, NaN, subnormals, zeros of both signs; decoding back as well. */
Test(gemm_fp8_gpu, f8_conversions_match_the_vm) {
    const char *src = "kernel conv(x: tensor<f32>[N], y: tensor<f8e4m3>[N], z: tensor<f8e5m2>[N],\n"
                      "             w: tensor<f32>[N], v: tensor<f32>[N]) grid(cdiv(N, 256))\n"
                      "{\n  let i = block_id(0) * 256;\n  let t = x[i :+ 256];\n"
                      "  y[i :+ 256] = cast<f8e4m3>(t);\n  z[i :+ 256] = cast<f8e5m2>(t);\n"
                      "  w[i :+ 256] = cast<f32>(cast<f8e4m3>(t));\n  v[i :+ 256] = cast<f32>(cast<f8e5m2>(t));\n}\n";
    enum { N = 8192 };
    static float x[N], w[2][N], v[2][N];
    static uint8_t y[2][N], z[2][N];
    int n = 0;
    const tile_dtype types[2] = {TILE_F8E4M3, TILE_F8E5M2};
    for (int t = 0; t < 2; t++)
        for (int b = 0; b < 256; b++) {
            uint8_t byte = (uint8_t)b, next = (uint8_t)(b + 1);
            double d, e;
            tile_unpack(types[t], &byte, 1, &d);
            tile_unpack(types[t], &next, 1, &e);
            x[n++] = (float)d;
            if (isfinite(d) && isfinite(e) && (b & 0x7f) != 0x7f) {
                float mid = (float)((d + e) / 2);
                x[n++] = mid, x[n++] = nextafterf(mid, INFINITY), x[n++] = nextafterf(mid, -INFINITY);
            }
        }
    const float extra[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 448, 464, 465, 480, 1e6f, 57344, 61440, 61439, 70000,
                           1e-9f, 0x1p-9f, 0x1p-10f, 0x3p-11f, 0x1p-16f, 0x1p-17f, 0x3p-18f, 1e-30f};
    for (size_t i = 0; i < sizeof extra / sizeof *extra; i++) x[n++] = extra[i], x[n++] = -extra[i];
    while (n < N) x[n] = (float)ldexp(gemm_fp8_uniform(-1, 1), (int)gemm_fp8_uniform(-20, 20)), n++;
    tile_context *vm;
    cr_assert_eq(tile_context_create(TILE_DEVICE_VM, 0, &vm), TILE_OK);
    tile_context *ctxs[2] = {vm, ctx};
    for (int c = 0; c < 2; c++) {
        tile_program *p;
        tile_kernel *k;
        cr_assert_eq(tile_program_from_string(ctxs[c], "conv.tile", src, strlen(src), &p), TILE_OK, "%s",
                     tile_context_message(ctxs[c]));
        cr_assert_eq(tile_program_get_kernel(p, "conv", NULL, 0, &k), TILE_OK);
        int64_t len = N;
        void *dev[5];
        size_t bytes[5] = {4 * N, N, N, 4 * N, 4 * N};
        for (int i = 0; i < 5; i++) cr_assert_eq(tile_alloc(ctxs[c], bytes[i], &dev[i]), TILE_OK);
        cr_assert_eq(tile_copy_to_device(ctxs[c], dev[0], x, bytes[0]), TILE_OK);
        tile_dtype dt[5] = {TILE_F32, TILE_F8E4M3, TILE_F8E5M2, TILE_F32, TILE_F32};
        tile_arg args[5];
        for (int i = 0; i < 5; i++)
            args[i] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(dt[i], dev[i], 1, &len)};
        cr_assert_eq(tile_kernel_launch(k, args, 5, NULL), TILE_OK, "%s", tile_context_message(ctxs[c]));
        cr_assert_eq(tile_synchronize(ctxs[c]), TILE_OK, "%s", tile_context_message(ctxs[c]));
        cr_assert_eq(tile_copy_to_host(ctxs[c], y[c], dev[1], N), TILE_OK);
        cr_assert_eq(tile_copy_to_host(ctxs[c], z[c], dev[2], N), TILE_OK);
        cr_assert_eq(tile_copy_to_host(ctxs[c], w[c], dev[3], 4 * N), TILE_OK);
        cr_assert_eq(tile_copy_to_host(ctxs[c], v[c], dev[4], 4 * N), TILE_OK);
        for (int i = 0; i < 5; i++) tile_free(ctxs[c], dev[i]);
        tile_program_destroy(p);
    }
    tile_context_destroy(vm);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(y[1][i], y[0][i], "e4m3 of %a: GPU %02x, VM %02x", x[i], y[1][i], y[0][i]);
        cr_assert_eq(z[1][i], z[0][i], "e5m2 of %a: GPU %02x, VM %02x", x[i], z[1][i], z[0][i]);
        cr_assert(memcmp(&w[1][i], &w[0][i], 4) == 0 || (isnan(w[1][i]) && isnan(w[0][i])), "e4m3 round trip of %a", x[i]);
        cr_assert(memcmp(&v[1][i], &v[0][i], 4) == 0 || (isnan(v[1][i]) && isnan(v[0][i])), "e5m2 round trip of %a", x[i]);
    }
}
