/*
 * test_gemm_fp8.c: stdlib/core/gemm_fp8.tile on the VM against the C reference of
 * tests/gemm_fp8_check.h (per-tensor and block-scaled, bf16 and f32 results, odd shapes), the
 * launch checks on the scales' shapes, and the VM's dot on 8-bit operands: f8 products exact in
 * f32, i8 products summed in i32 with wrap-around, as mma.sync's .s32 accumulation does.
 */
#include "gemm_fp8_check.h"

static tile_context *ctx;
static tile_program *prog;

static void setup(void) {
    cr_assert_eq(tile_context_create(TILE_DEVICE_VM, 0, &ctx), TILE_OK);
    cr_assert_eq(tile_program_from_file(ctx, TILE_SOURCE_DIR "/stdlib/core/gemm_fp8.tile", &prog), TILE_OK, "%s",
                 tile_context_message(ctx));
}
static void teardown(void) {
    tile_program_destroy(prog);
    tile_context_destroy(ctx);
}

TestSuite(gemm_fp8, .init = setup, .fini = teardown, .timeout = 900);

static void run_part(int part) { gemm_fp8_check_part(ctx, prog, part, 4); }

Test(gemm_fp8, cases_0) { run_part(0); }
Test(gemm_fp8, cases_1) { run_part(1); }
Test(gemm_fp8, cases_2) { run_part(2); }
Test(gemm_fp8, cases_3) { run_part(3); }

/* Scales of the wrong shape are launch errors naming the check. */
Test(gemm_fp8, scale_shapes_are_checked) {
    static uint8_t a[4 * 130], b[8 * 130];
    static float c[4 * 8], s[16];
    int64_t sa[2] = {4, 130}, sb[2] = {8, 130}, sc[2] = {4, 8}, two = 2, bad_a[2] = {4, 1}, good_b[2] = {1, 2};
    tile_arg args[5] = {
        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F8E4M3, a, 2, sa)},
        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F8E4M3, b, 2, sb)},
        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, c, 2, sc)},
        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, s, 1, &two)},
        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, s, 1, &two)},
    };
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(prog, "gemm_fp8_f32", NULL, 0, &k), TILE_OK);
    cr_assert_eq(tile_kernel_launch(k, args, 5, NULL), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(tile_context_message(ctx), "per-tensor scales"), "%s", tile_context_message(ctx));
    args[3].tensor = tile_tensor_contiguous(TILE_F32, s, 2, bad_a); /* K = 130 needs 2 scales per row */
    args[4].tensor = tile_tensor_contiguous(TILE_F32, s, 2, good_b);
    cr_assert_eq(tile_program_get_kernel(prog, "gemm_fp8_block_f32", NULL, 0, &k), TILE_OK);
    cr_assert_eq(tile_kernel_launch(k, args, 5, NULL), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(tile_context_message(ctx), "scale_a must be [M, cdiv(K, 128)]"), "%s", tile_context_message(ctx));
}

/* The VM's dot on 8-bit operands, as the m16n8k32 instructions compute it: f8 products are exact
 * in f32 (448 * 448 and 2^-9 * 2^-9 included: at most 8 significant bits each), so a sum whose
 * partial sums are exact is exact; i8 dots accumulate in i32 and wrap (mma.sync .s32 without
 * .satfinite): 64 products of -128 * -128 = 2^20 is exact, and an accumulator near INT32_MAX
 * wraps to negative. */
Test(gemm_fp8, vm_dot_of_8bit_operands) {
    tile_program *p;
    const char *src = "kernel f8dot(a: tensor<f8e4m3>[16, 32], b: tensor<f8e4m3>[32, 8], c: tensor<f32>[16, 8]) grid(1)\n"
                      "{\n  c[0 :+ 16, 0 :+ 8] = dot(a[0 :+ 16, 0 :+ 32], b[0 :+ 32, 0 :+ 8]);\n}\n"
                      "kernel i8dot(a: tensor<i8>[16, 64], b: tensor<i8>[64, 8], acc: tensor<i32>[16, 8],\n"
                      "             c: tensor<i32>[16, 8]) grid(1)\n"
                      "{\n  c[0 :+ 16, 0 :+ 8] = dot(a[0 :+ 16, 0 :+ 64], b[0 :+ 64, 0 :+ 8], acc[0 :+ 16, 0 :+ 8]);\n}\n";
    cr_assert_eq(tile_program_from_string(ctx, "dot8.tile", src, strlen(src), &p), TILE_OK, "%s", tile_context_message(ctx));
    /* f8: row i of a holds 448 in column 3 i and, from row 8 on, 2^-9 in column 31; column j of b
     * holds 448 in row 3 j and 2^-9 in row 31: c[i, j] = 448 * 448 where i == j, 2^-18 from row
     * 8 on (the largest and the smallest products of normal e4m3 values, exact in f32) */
    double a[16 * 32] = {0}, b[32 * 8] = {0}, c[16 * 8];
    for (int i = 0; i < 16; i++) a[i * 32 + (i * 3) % 32] = 448, a[i * 32 + 31] = i >= 8 ? ldexp(1, -9) : 0;
    for (int j = 0; j < 8; j++) b[(j * 3) * 8 + j] = 448, b[31 * 8 + j] = ldexp(1, -9);
    uint8_t ha[16 * 32], hb[32 * 8];
    float hc[16 * 8];
    cr_assert_eq(tile_pack(TILE_F8E4M3, a, 16 * 32, ha), TILE_OK);
    cr_assert_eq(tile_pack(TILE_F8E4M3, b, 32 * 8, hb), TILE_OK);
    int64_t sa[2] = {16, 32}, sb[2] = {32, 8}, sc[2] = {16, 8};
    tile_arg args[4] = {
        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F8E4M3, ha, 2, sa)},
        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F8E4M3, hb, 2, sb)},
        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, hc, 2, sc)},
    };
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(p, "f8dot", NULL, 0, &k), TILE_OK);
    cr_assert_eq(tile_kernel_launch(k, args, 3, NULL), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(tile_synchronize(ctx), TILE_OK);
    tile_unpack(TILE_F32, hc, 16 * 8, c);
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 8; j++) {
            double want = i == j ? 448.0 * 448.0 : i >= 8 ? ldexp(1, -18) : 0;
            cr_assert_eq(c[i * 8 + j], want, "c[%d, %d] = %.17g, expected %.17g", i, j, c[i * 8 + j], want);
        }
    /* i8: every a and b element -128, so each product is 2^14 and a row of 64 sums to 2^20; the
     * accumulator of row 0 is INT32_MAX - 2^19, which wraps */
    static int8_t ia[16 * 64], ib[64 * 8];
    static int32_t iacc[16 * 8], ic[16 * 8];
    memset(ia, 0x80, sizeof ia), memset(ib, 0x80, sizeof ib);
    for (int j = 0; j < 8; j++) iacc[j] = INT32_MAX - (1 << 19), iacc[8 + j] = -7;
    int64_t ta[2] = {16, 64}, tb[2] = {64, 8}, tc[2] = {16, 8};
    tile_arg iargs[4] = {
        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_I8, ia, 2, ta)},
        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_I8, ib, 2, tb)},
        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_I32, iacc, 2, tc)},
        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_I32, ic, 2, tc)},
    };
    cr_assert_eq(tile_program_get_kernel(p, "i8dot", NULL, 0, &k), TILE_OK);
    cr_assert_eq(tile_kernel_launch(k, iargs, 4, NULL), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(tile_synchronize(ctx), TILE_OK);
    for (int j = 0; j < 8; j++) {
        cr_assert_eq(ic[j], (int32_t)((uint32_t)INT32_MAX - (1u << 19) + (1u << 20)), "wrapped: %d", ic[j]);
        cr_assert_lt(ic[j], 0);
        cr_assert_eq(ic[8 + j], (1 << 20) - 7);
    }
    tile_program_destroy(p);
}
