/* test_epilogue_gpu.c: the epilogue pass's TMA stores on the GPU, through the public API.
 *
 * Each case runs a GEMM of stdlib/core at M = 1000, N = 1040, K = 528: every stride a multiple of
 * 16 elements, so the specialized variant has the launch facts for TMA, and M and N not multiples
 * of the tile, so the TMA store's box is clipped at both edges. C is a view of a wider buffer
 * (leading dimension 1056) whose padding columns hold a sentinel that must survive. The kernel is
 * compiled twice, with TMA stores (the default) and with TILE_TMA_STORE=0 (per-thread st.global):
 * the main loop is the same, so the two results must agree bit for bit, and both must differ from
 * the sentinel everywhere inside C (TILE_AUTOTUNE=0: both take the kernel's defaults). Skips with
 * a message where there is no GPU, and per kernel when the code generator reports it unsupported. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/tile.h"

static tile_context *gpu;

static void open_gpu(void) {
    unsetenv("TILE_TMA_STORE");
    setenv("TILE_AUTOTUNE", "0", 1); /* the same configuration for both compilations */
    if (tile_context_create(TILE_DEVICE_CUDA, 0, &gpu) != TILE_OK)
        cr_skip_test("no CUDA device: %s", tile_context_message(NULL));
    cr_log_info("running on %s", tile_context_device_name(gpu));
}

static void close_gpu(void) {
    tile_context_destroy(gpu);
    gpu = NULL;
    unsetenv("TILE_TMA_STORE");
}

TestSuite(epilogue_gpu, .init = open_gpu, .fini = close_gpu, .timeout = 600);

enum { M = 1000, N = 1040, K = 528, LDC = 1056 };

static tile_kernel *get_kernel(const char *file, const char *name, const tile_constant *c, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/stdlib/core/%s", TILE_SOURCE_DIR, file);
    tile_program *p;
    cr_assert_eq(tile_program_from_file(gpu, path, &p), TILE_OK, "%s", tile_context_message(gpu));
    tile_kernel *k = NULL;
    tile_status st = tile_program_get_kernel(p, name, c, n, &k);
    if (st == TILE_ERROR_UNSUPPORTED) cr_skip_test("%s: %s", name, tile_context_message(gpu));
    cr_assert_eq(st, TILE_OK, "%s: %s", name, tile_context_message(gpu));
    return k;
}

static void *upload(const void *host, size_t bytes) {
    void *p;
    cr_assert_eq(tile_alloc(gpu, bytes ? bytes : 1, &p), TILE_OK, "%s", tile_context_message(gpu));
    if (bytes) cr_assert_eq(tile_copy_to_device(gpu, p, host, bytes), TILE_OK, "%s", tile_context_message(gpu));
    return p;
}

/* Random bytes of an element type of `eb` bytes: bf16 in [-1, 1) (f8e4m3 finite for eb = 1). */
static void *random_data(int64_t n, int eb, uint64_t *s) {
    unsigned char *x = malloc((size_t)(n * eb) + 1);
    for (int64_t i = 0; i < n; i++) {
        *s = *s * 6364136223846793005ull + 1442695040888963407ull;
        if (eb == 1) {
            uint8_t v = (uint8_t)(*s >> 56);
            x[i] = (v & 0x7f) == 0x7f ? 0x38 : v;
        } else {
            float f = (float)(*s >> 40) / 8388608.0f - 1.0f;
            uint32_t u;
            memcpy(&u, &f, 4);
            uint16_t h = (uint16_t)(u >> 16);
            memcpy(x + 2 * i, &h, 2);
        }
    }
    return x;
}

/* Runs kernel `name` of `file` (with TMA stores unless `off`) and returns C's buffer, padding
 * included. The inputs: a [M, K] and b [K, N] of `in_bytes` elements (b [N, K] for fp8), then
 * `extra` more arguments. */
static unsigned char *run(const char *file, const char *name, const tile_constant *c, size_t nc, bool off,
                          tile_dtype in, tile_dtype out, const tile_arg *extra, size_t nextra) {
    if (off) setenv("TILE_TMA_STORE", "0", 1);
    else unsetenv("TILE_TMA_STORE");
    tile_kernel *k = get_kernel(file, name, c, nc);
    int eb = in == TILE_F8E4M3 ? 1 : 2, ob = out == TILE_F32 ? 4 : 2;
    uint64_t s = 11;
    void *a = random_data(M * K, eb, &s), *b = random_data(K * N, eb, &s);
    void *da = upload(a, (size_t)(M * K * eb)), *db = upload(b, (size_t)(K * N * eb));
    size_t cbytes = (size_t)M * LDC * (size_t)ob;
    unsigned char *sentinel = malloc(cbytes);
    memset(sentinel, 0x5a, cbytes);
    void *dc = upload(sentinel, cbytes);
    tile_arg args[8];
    int64_t sa[2] = {M, K}, sb[2] = {K, N};
    if (eb == 1) sb[0] = N, sb[1] = K;
    args[0] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(in, da, 2, sa)};
    args[1] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(in, db, 2, sb)};
    args[2] = (tile_arg){.kind = TILE_ARG_TENSOR,
                         .tensor = {.dtype = out, .data = dc, .rank = 2, .shape = {M, N}, .strides = {LDC, 1}}};
    for (size_t i = 0; i < nextra; i++) args[3 + i] = extra[i];
    cr_assert_eq(tile_kernel_launch(k, args, 3 + nextra, NULL), TILE_OK, "%s: %s", name, tile_context_message(gpu));
    cr_assert_eq(tile_synchronize(gpu), TILE_OK, "%s", tile_context_message(gpu));
    cr_assert_eq(tile_copy_to_host(gpu, sentinel, dc, cbytes), TILE_OK, "%s", tile_context_message(gpu));
    tile_free(gpu, da), tile_free(gpu, db), tile_free(gpu, dc);
    free(a), free(b);
    return sentinel;
}

/* Both results agree bit for bit; the padding keeps its sentinel and C none. */
static void compare(const char *what, const unsigned char *on, const unsigned char *off, int ob) {
    size_t row = (size_t)LDC * (size_t)ob, used = (size_t)N * (size_t)ob;
    int64_t differ = 0, sentinel_inside = 0, padding_written = 0;
    for (int64_t i = 0; i < M; i++) {
        const unsigned char *x = on + (size_t)i * row, *y = off + (size_t)i * row;
        differ += memcmp(x, y, used) != 0;
        for (size_t j = 0; j + (size_t)ob <= used; j += (size_t)ob) {
            bool all = true;
            for (int b = 0; b < ob; b++) all = all && x[j + (size_t)b] == 0x5a;
            sentinel_inside += all;
        }
        for (size_t j = used; j < row; j++) padding_written += x[j] != 0x5a || y[j] != 0x5a;
    }
    cr_log_info("%s: %lld rows differ, %lld elements unwritten, %lld padding bytes written", what, (long long)differ,
                (long long)sentinel_inside, (long long)padding_written);
    cr_assert_eq(differ, 0, "%s: the TMA store's result differs from st.global's", what);
    cr_assert_eq(padding_written, 0, "%s: a store past N (the box not clipped)", what);
    cr_assert_lt(sentinel_inside, 16, "%s: elements of C were not written", what);
}

static void bf16_case(const char *file, const char *name, const tile_constant *c, size_t nc) {
    unsigned char *on = run(file, name, c, nc, false, TILE_BF16, TILE_BF16, NULL, 0);
    unsigned char *off = run(file, name, c, nc, true, TILE_BF16, TILE_BF16, NULL, 0);
    compare(name, on, off, 2);
    free(on), free(off);
}

Test(epilogue_gpu, gemm_tma_store_equals_st_global) {
    bf16_case("gemm.tile", "gemm", NULL, 0);
    tile_constant wide[3] = {{.name = "BN", .i = 256}, {.name = "W", .i = 8}, {.name = "STAGES", .i = 4}};
    bf16_case("gemm.tile", "gemm", wide, 3);
}

Test(epilogue_gpu, persistent_tma_store_equals_st_global) {
    bf16_case("gemm_persistent.tile", "gemm_persistent", NULL, 0);
    bf16_case("gemm_persistent.tile", "gemm_persistent_flat", NULL, 0);
}

Test(epilogue_gpu, epilogue_f32_tma_store_equals_st_global) {
    tile_constant c[2] = {{.name = "ACT", .i = 4}, {.name = "HAS_BIAS", .i = 1}};
    float *bias = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) bias[i] = (float)(i % 13) / 8.0f - 0.75f;
    void *dbias = upload(bias, sizeof(float) * N), *empty = upload(NULL, 0);
    int64_t nb = N, zero2[2] = {0, 0};
    tile_arg extra[3] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, dbias, 1, &nb)},
                         {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, empty, 2, zero2)},
                         {.kind = TILE_ARG_FLOAT, .f = 0.5}};
    unsigned char *on = run("gemm.tile", "gemm_epilogue_f32", c, 2, false, TILE_BF16, TILE_F32, extra, 3);
    unsigned char *off = run("gemm.tile", "gemm_epilogue_f32", c, 2, true, TILE_BF16, TILE_F32, extra, 3);
    compare("gemm_epilogue_f32 silu+bias", on, off, 4);
    free(on), free(off), free(bias);
    tile_free(gpu, dbias), tile_free(gpu, empty);
}

Test(epilogue_gpu, fp8_tma_store_equals_st_global) {
    float one = 1.0f;
    void *sa = upload(&one, 4), *sb = upload(&one, 4);
    int64_t n1 = 1;
    tile_arg extra[2] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, sa, 1, &n1)},
                         {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, sb, 1, &n1)}};
    unsigned char *on = run("gemm_fp8.tile", "gemm_fp8", NULL, 0, false, TILE_F8E4M3, TILE_BF16, extra, 2);
    unsigned char *off = run("gemm_fp8.tile", "gemm_fp8", NULL, 0, true, TILE_F8E4M3, TILE_BF16, extra, 2);
    compare("gemm_fp8", on, off, 2);
    free(on), free(off);
    tile_free(gpu, sa), tile_free(gpu, sb);
}
