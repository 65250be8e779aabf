/*
 * test_lang2_constructs.c: the constructs of Language II (lang/SPEC.md) on the VM, each kernel of
 * tests/lang2/constructs.tile against a C reference: masked loads and stores (slices, gathers,
 * scatters, 2-D masks), launch-time check() failing before anything runs, break / continue /
 * early return, device functions with two results and tensor parameters, the conditional
 * expression, bitcast (f32/u32, bf16 pairs/u32, u4 pairs/u8), index tiles of rank 2 that
 * broadcast, and right shifts past the width. Every kernel of constructs.tile must also assemble
 * for sm_80 and sm_90a (ptxas or nvJitLink; skipped where neither is installed).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static tile_context *ctx;
static tile_program *prog;

static void setup(void) {
    ctx = test_vm_context();
    prog = test_load_program(ctx, "tests/lang2/constructs.tile");
}
static void teardown(void) { tile_context_destroy(ctx); }

TestSuite(lang2_constructs, .init = setup, .fini = teardown, .timeout = 300);

static tile_kernel *kernel(const char *name) {
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(prog, name, NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
    return k;
}

static tile_arg tensor(tile_dtype dt, void *data, int rank, int64_t d0, int64_t d1) {
    int64_t shape[2] = {d0, d1};
    return (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(dt, data, rank, shape)};
}

static tile_arg int_arg(int64_t v) { return (tile_arg){.kind = TILE_ARG_INT, .i = v}; }

static void launch(tile_kernel *k, tile_arg *args, size_t n) {
    cr_assert_eq(tile_kernel_launch(k, args, n, NULL), TILE_OK, "%s", tile_context_message(ctx));
}

static uint64_t seed = 777;
static float uniform(float lo, float hi) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (float)((double)(seed >> 11) / 9007199254740992.0);
}

static float *floats(int64_t n, float lo, float hi) {
    float *p = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) p[i] = uniform(lo, hi);
    return p;
}

/* ---- masked loads and stores ---- */
Test(lang2_constructs, masked_slice_load_and_store) {
    int64_t n = 150; /* three blocks of 64, the last partial */
    int limit = 101;
    float *x = floats(n, -1, 1), *y = floats(n, 5, 6), *y0 = malloc(sizeof(float) * (size_t)n);
    memcpy(y0, y, sizeof(float) * (size_t)n);
    tile_arg args[3] = {tensor(TILE_F32, x, 1, n, 0), tensor(TILE_F32, y, 1, n, 0), int_arg(limit)};
    launch(kernel("masked_slice"), args, 3);
    for (int64_t i = 0; i < n; i++) {
        float v = i < limit ? x[i] : -7.0f;
        float want = v > 0 || v == -7.0f ? v : y0[i];
        cr_assert_eq(y[i], want, "i=%lld: %g, want %g", (long long)i, y[i], want);
    }
    free(x), free(y), free(y0);
}

Test(lang2_constructs, masked_gather_and_scatter) {
    enum { N = 101, M = 70 };
    int32_t x[N], idx[M], y[M], z[N];
    for (int i = 0; i < N; i++) x[i] = 1000 + i, z[i] = -5;
    for (int j = 0; j < M; j++) idx[j] = (j * 7) % N, y[j] = -9; /* distinct positions */
    tile_arg args[4] = {tensor(TILE_I32, x, 1, N, 0), tensor(TILE_I32, idx, 1, M, 0), tensor(TILE_I32, y, 1, M, 0),
                        tensor(TILE_I32, z, 1, N, 0)};
    launch(kernel("masked_gather"), args, 4);
    int32_t zwant[N];
    for (int i = 0; i < N; i++) zwant[i] = -5;
    for (int j = 0; j < M; j++) {
        int k = idx[j];
        cr_assert_eq(y[j], k % 3 != 0 ? x[k] : 100, "j=%d", j);
        if (k % 2 == 0) zwant[k] = j;
    }
    for (int i = 0; i < N; i++) cr_assert_eq(z[i], zwant[i], "z[%d] = %d, want %d", i, z[i], zwant[i]);
}

Test(lang2_constructs, masked_2d_broadcast_masks) {
    int64_t r = 19, c = 37;
    float *x = floats(r * c, -1, 1), *y = floats(r * c, 5, 6), *y0 = malloc(sizeof(float) * (size_t)(r * c));
    memcpy(y0, y, sizeof(float) * (size_t)(r * c));
    tile_arg args[2] = {tensor(TILE_F32, x, 2, r, c), tensor(TILE_F32, y, 2, r, c)};
    launch(kernel("masked_2d"), args, 2);
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < c; j++) {
            float t = i >= j ? x[i * c + j] : 0.5f;
            float want = i + j < c ? t * 2.0f : y0[i * c + j];
            cr_assert_eq(y[i * c + j], want, "(%lld, %lld)", (long long)i, (long long)j);
        }
    free(x), free(y), free(y0);
}

/* ---- index tiles of rank 2 broadcast with each other (SPEC 5.5) ---- */
Test(lang2_constructs, pointwise_gather_with_2d_index_tiles) {
    int64_t r = 13, c = 21;
    float *x = floats(r * c, -1, 1), *y = floats(r * c, 0, 1), *w = floats(r * c, 0, 1);
    int32_t *rows = malloc(sizeof(int32_t) * (size_t)(r * c)), *cols = malloc(sizeof(int32_t) * (size_t)(r * c));
    for (int64_t p = 0; p < r * c; p++) rows[p] = (int32_t)((p * 5) % r), cols[p] = (int32_t)((p * 11 + 3) % c);
    tile_arg args[5] = {tensor(TILE_F32, x, 2, r, c), tensor(TILE_I32, rows, 2, r, c), tensor(TILE_I32, cols, 2, r, c),
                        tensor(TILE_F32, y, 2, r, c), tensor(TILE_F32, w, 2, r, c)};
    launch(kernel("pointwise_gather"), args, 5);
    for (int64_t p = 0; p < r * c; p++) {
        cr_assert_eq(y[p], x[rows[p] * c + cols[p]], "p=%lld", (long long)p);
        cr_assert_eq(w[p], x[p], "p=%lld", (long long)p);
    }
    free(x), free(y), free(w), free(rows), free(cols);
}

/* ---- break, continue, early return; check() ---- */
static void control_reference(const float *x, int64_t r, int64_t c, int used, float *y) {
    for (int64_t b = 0; b < r && b < used; b++) {
        float s = 0, t = 0;
        for (int64_t j = 0; j < c; j++) {
            float v = x[b * c + j];
            if (v < 0) continue;
            if (v > 0.9f) break;
            s += v;
        }
        for (int64_t k = 0; k < c; k++) {
            if (x[b * c + k] > 0.8f) break;
            t += 1;
        }
        y[b] = s + 1000.0f * t;
    }
}

Test(lang2_constructs, break_continue_and_early_return) {
    int64_t r = 9, c = 64;
    int used = 6;
    float *x = floats(r * c, -0.5f, 1.0f), *y = floats(r, 7, 8), *want = malloc(sizeof(float) * (size_t)r);
    memcpy(want, y, sizeof(float) * (size_t)r);
    control_reference(x, r, c, used, want);
    tile_arg args[3] = {tensor(TILE_F32, x, 2, r, c), tensor(TILE_F32, y, 1, r, 0), int_arg(used)};
    launch(kernel("control"), args, 3);
    for (int64_t b = 0; b < r; b++) cr_assert_float_eq(y[b], want[b], 1e-4, "row %lld: %g, want %g", (long long)b, y[b], want[b]);
    free(x), free(y), free(want);
}

Test(lang2_constructs, return_inside_loops) {
    int64_t r = 50, c = 64;
    float *x = floats(r * c, 0, 0.97f);
    int32_t *y = malloc(sizeof(int32_t) * (size_t)r);
    for (int64_t b = 0; b < r; b++) y[b] = 12345;
    tile_arg args[2] = {tensor(TILE_F32, x, 2, r, c), tensor(TILE_I32, y, 1, r, 0)};
    launch(kernel("search"), args, 2);
    int found = 0;
    for (int64_t b = 0; b < r; b++) {
        int want = -1;
        for (int j = 0; j < c && want < 0; j++)
            if (x[b * c + j] > 0.95f) want = j;
        found += want >= 0;
        cr_assert_eq(y[b], want, "row %lld: %d, want %d", (long long)b, y[b], want);
    }
    cr_assert(found > 0 && found < r, "the data must exercise both ways out (%d of %lld found)", found, (long long)r);
    free(x), free(y);
}

Test(lang2_constructs, check_fails_the_launch_with_the_message_before_anything_runs) {
    int64_t r = 4, c = 64;
    float *x = floats(r * c, 0, 1), *y = floats(r, 7, 8), *y0 = malloc(sizeof(float) * (size_t)r);
    memcpy(y0, y, sizeof(float) * (size_t)r);
    tile_arg args[3] = {tensor(TILE_F32, x, 2, r, c), tensor(TILE_F32, y, 1, r, 0), int_arg(-1)};
    cr_assert_eq(tile_kernel_launch(kernel("control"), args, 3, NULL), TILE_ERROR_INVALID_ARGUMENT);
    const char *msg = tile_context_message(ctx);
    cr_assert(strstr(msg, "check failed: used must not be negative"), "%s", msg);
    cr_assert(strstr(msg, "constructs.tile:50:11"), "the check's location is missing: %s", msg);
    cr_assert_eq(memcmp(y, y0, sizeof(float) * (size_t)r), 0, "the kernel ran");
    /* sizes: N must be twice M */
    float f[64], fx[64], back16[64];
    uint32_t u[64], p[40];
    uint16_t h[64], back[64];
    (void)back16;
    memset(fx, 0, sizeof fx), memset(h, 0, sizeof h);
    tile_arg bad[6] = {tensor(TILE_F32, fx, 1, 64, 0), tensor(TILE_U32, u, 1, 64, 0), tensor(TILE_F32, f, 1, 64, 0),
                       tensor(TILE_BF16, h, 1, 64, 0), tensor(TILE_U32, p, 1, 40, 0), tensor(TILE_BF16, back, 1, 64, 0)};
    cr_assert_eq(tile_kernel_launch(kernel("bits"), bad, 6, NULL), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(tile_context_message(ctx), "check failed: N must be twice M"), "%s", tile_context_message(ctx));
    free(x), free(y), free(y0);
}

/* ---- several results, tensors passed to device functions, c ? a : b ---- */
Test(lang2_constructs, tuples_tensor_arguments_and_conditional) {
    int64_t r = 5, c = 32, n = r * c;
    float *x = floats(n, -1, 1), *lo = floats(n, 0, 1), *hi = floats(n, 0, 1), *sel = floats(n, 0, 1),
          *pos = floats(n, 0, 1);
    tile_arg args[5] = {tensor(TILE_F32, x, 2, r, c), tensor(TILE_F32, lo, 2, r, c), tensor(TILE_F32, hi, 2, r, c),
                        tensor(TILE_F32, sel, 2, r, c), tensor(TILE_F32, pos, 2, r, c)};
    launch(kernel("tuples"), args, 5);
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < c; j++) {
            float v = x[i * c + j], w = x[((i + 1) % r) * c + j];
            cr_assert_eq(lo[i * c + j], fminf(v, w));
            cr_assert_eq(hi[i * c + j], fmaxf(v, w));
            cr_assert_eq(sel[i * c + j], i % 2 == 0 ? v : w * 2.0f);
            cr_assert_eq(pos[i * c + j], v > w ? v - w : 0.0f);
        }
    free(x), free(lo), free(hi), free(sel), free(pos);
}

/* ---- bitcast ---- */
static uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

Test(lang2_constructs, bitcast_f32_u32_and_bf16_pairs) {
    enum { N = 128, M = 64 };
    float x[N], f[N];
    uint32_t u[N], p[M];
    uint16_t h[N], back[N];
    for (int i = 0; i < N; i++) x[i] = uniform(-100, 100), h[i] = to_bf16(uniform(-3, 3));
    x[5] = 0.0f, x[6] = -0.0f, x[7] = INFINITY;
    tile_arg args[6] = {tensor(TILE_F32, x, 1, N, 0), tensor(TILE_U32, u, 1, N, 0), tensor(TILE_F32, f, 1, N, 0),
                        tensor(TILE_BF16, h, 1, N, 0), tensor(TILE_U32, p, 1, M, 0), tensor(TILE_BF16, back, 1, N, 0)};
    launch(kernel("bits"), args, 6);
    for (int i = 0; i < N; i++) {
        uint32_t bits;
        memcpy(&bits, &x[i], 4);
        cr_assert_eq(u[i], bits, "u[%d] = %08x, want %08x", i, u[i], bits);
        cr_assert_eq(f[i], -x[i], "f[%d]", i);
        cr_assert_eq(signbit(f[i]) != 0, signbit(x[i]) == 0, "f[%d] sign", i);
        cr_assert_eq(back[i], h[i], "back[%d]", i);
    }
    /* element 2j is the low half of word j: the bytes of h read as u32 */
    cr_assert_eq(memcmp(p, h, sizeof p), 0, "bf16 pairs packed differently from memory");
}

Test(lang2_constructs, bitcast_of_a_moved_value) {
    enum { B = 64 };
    uint32_t *y = calloc(B * B, 4);
    tile_arg args[1] = {tensor(TILE_U32, y, 2, B, B)};
    launch(kernel("bits_moved"), args, 1);
    for (int i = 0; i < B; i++)
        for (int j = 0; j < B; j++) {
            float f = 1.5f * (float)j;
            uint32_t bits;
            memcpy(&bits, &f, 4);
            cr_assert_eq(y[i * B + j], bits, "(%d, %d)", i, j);
        }
    free(y);
}

Test(lang2_constructs, bitcast_packed_nibbles_and_bytes) {
    tile_program *vm_prog = test_load_program(ctx, "tests/lang2/constructs_vm.tile");
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(vm_prog, "nibbles", NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
    uint8_t a[16], bytes[16], again[16];
    for (int i = 0; i < 16; i++) a[i] = (uint8_t)(i * 37 + 5), bytes[i] = 0, again[i] = 0;
    tile_arg args[3] = {tensor(TILE_UINT(4), a, 1, 32, 0), tensor(TILE_U8, bytes, 1, 16, 0), tensor(TILE_UINT(4), again, 1, 32, 0)};
    launch(k, args, 3);
    /* packed u4 memory (low nibble first) read as bytes is the same bytes */
    cr_assert_eq(memcmp(bytes, a, 16), 0);
    cr_assert_eq(memcmp(again, a, 16), 0);
}

/* ---- shifts past the width (SPEC 5.2) ---- */
Test(lang2_constructs, right_shifts_past_the_width) {
    enum { N = 64 };
    int32_t x[N], s[N], y[N];
    uint32_t uy[N];
    for (int i = 0; i < N; i++) {
        x[i] = i % 2 ? -(i * 1000 + 7) : i * 1000 + 7;
        s[i] = (i * 3) % 70 - 3; /* -3 .. 66 */
    }
    tile_arg args[4] = {tensor(TILE_I32, x, 1, N, 0), tensor(TILE_I32, s, 1, N, 0), tensor(TILE_I32, y, 1, N, 0),
                        tensor(TILE_U32, uy, 1, N, 0)};
    launch(kernel("shifts"), args, 4);
    for (int i = 0; i < N; i++) {
        int32_t want = s[i] >= 0 && s[i] < 32 ? x[i] >> s[i] : x[i] < 0 ? -1 : 0;
        uint32_t uwant = (uint32_t)s[i] < 32 ? (uint32_t)x[i] >> s[i] : 0;
        cr_assert_eq(y[i], want, "%d >> %d = %d, want %d", x[i], s[i], y[i], want);
        cr_assert_eq(uy[i], uwant, "%u >> %u", (uint32_t)x[i], (uint32_t)s[i]);
    }
}

/* ---- every kernel assembles for both architectures ---- */
Test(lang2_constructs, every_kernel_assembles_for_sm80_and_sm90a) {
    static const char *names[] = {"masked_slice", "masked_gather", "masked_2d", "pointwise_gather",
                                  "control", "tuples", "bits", "shifts", "search", "bits_moved",
                                  "masked_types", "masked_loop"};
    static const char *archs[] = {"sm_80", "sm_90a"};
    for (size_t a = 0; a < 2; a++)
        for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
            tile_emit_options o = {.arch = archs[a]};
            char *ptx = NULL, *cubin = NULL;
            size_t len = 0;
            tile_status st = tile_program_emit(prog, names[i], NULL, 0, TILE_EMIT_PTX, &o, &ptx, &len);
            cr_assert_eq(st, TILE_OK, "%s %s: %s", names[i], archs[a], tile_context_message(ctx));
            tile_string_free(ptx);
            st = tile_program_emit(prog, names[i], NULL, 0, TILE_EMIT_CUBIN, &o, &cubin, &len);
            if (st == TILE_ERROR_UNSUPPORTED && strstr(tile_context_message(ctx), "assembl"))
                cr_skip_test("no PTX assembler: %s", tile_context_message(ctx));
            cr_assert_eq(st, TILE_OK, "%s %s: %s", names[i], archs[a], tile_context_message(ctx));
            cr_assert_gt(len, 64);
            tile_string_free(cubin);
        }
}

/* A masked load is the plain load and a select: it keeps the vector accesses of a slice. */
Test(lang2_constructs, masked_slice_load_is_vectorized) {
    tile_emit_options o = {.arch = "sm_80"};
    char *ptx = NULL;
    size_t len = 0;
    cr_assert_eq(tile_program_emit(prog, "masked_slice", NULL, 0, TILE_EMIT_PTX, &o, &ptx, &len), TILE_OK, "%s",
                 tile_context_message(ctx));
    cr_assert(strstr(ptx, "ld.global.v4.b32"), "no 16-byte load in:\n%s", ptx);
    tile_string_free(ptx);
}
