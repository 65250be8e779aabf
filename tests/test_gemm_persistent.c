/*
 * test_gemm_persistent.c: num_sms() and the GEMMs built on the launch device's size, on the VM.
 *
 *   num_sms      the grid sees TILE_VM_NUM_SMS (default 4; a value that is not an integer in
 *                1..4096 falls back to 4), and tile_context_num_sms says the same; the
 *                compiled grid steps (runtime/launch.c) give what the VM gives for any count,
 *                as a GPU launch passes its device's.
 *   persistent   both kernels of stdlib/core/gemm_persistent.tile (the nested tile and K loops,
 *                and the flattened loop) against a C reference in double from the
 *                same bf16 inputs, at shapes with more and with fewer tiles than SMs, odd M, N,
 *                K, K = 1 and K = 0; for every SM count its bits equal gemm.tile's (each tile is
 *                computed the same way, whichever block takes it).
 *   split-K      stdlib/core/gemm_splitk.tile at M = 1, 16, 128 with a long K that no split
 *                count divides, S = 1 (bit-equal to gemm.tile), S that leaves a ragged last
 *                split, and S beyond K's slices (empty splits store zeros); the workspace starts
 *                as NaN, so an element no block writes shows up; S = 0 fails its launch check.
 *
 * Registered twice (tests/CMakeLists.txt): as written, and with TILE_VM_GPU_PASSES=sm_90a, where
 * the VM runs the IR after the GPU passes (the stages pass's TMA ring inside the tile loop).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"
#include "runtime/vm.h"
#include "testutil.h"

static tile_context *ctx; /* each test's VM context (for its messages) */

static uint64_t seed = 0x2545f4914f6cdd1dull;
static double uniform(double lo, double hi) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (double)(seed >> 11) / 9007199254740992.0;
}

/* TILE_VM_NUM_SMS=n, or unset for n = 0 */
static void set_vm_sms(int n) {
    char text[32];
    snprintf(text, sizeof text, "%d", n);
    if (n) setenv("TILE_VM_NUM_SMS", text, 1);
    else unsetenv("TILE_VM_NUM_SMS");
}

static tile_kernel *get_kernel(tile_program *p, const char *name, const tile_constant *c, size_t n) {
    tile_kernel *k;
    tile_status st = tile_program_get_kernel(p, name, c, n, &k);
    cr_assert_eq(st, TILE_OK, "%s: %s", name, tile_context_message(ctx));
    return k;
}

static tile_arg tensor(tile_dtype dt, void *data, int rank, int64_t d0, int64_t d1, int64_t d2) {
    int64_t shape[3] = {d0, d1, d2};
    return (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(dt, data, rank, shape)};
}

/* ---- num_sms ---- */
static const char fill_source[] =
    "kernel fill(x: tensor<i32>[N]) grid(min(num_sms(), N)) check(num_sms() >= 1, \"no SMs\") {\n"
    "  x[block_id(0)] = num_blocks(0) * 1000 + block_id(0);\n"
    "}\n";

/* Runs fill over n elements (-1 before) and checks that exactly min(sms, n) blocks ran, and that
 * tile_context_num_sms tells a caller the same sms. */
static void check_fill(tile_kernel *k, int64_t n, int64_t sms) {
    cr_assert_eq(tile_context_num_sms(ctx), sms);
    int32_t x[64];
    for (int i = 0; i < 64; i++) x[i] = -1;
    tile_arg arg = tensor(TILE_I32, x, 1, n, 0, 0);
    cr_assert_eq(tile_kernel_launch(k, &arg, 1, NULL), TILE_OK, "%s", tile_context_message(ctx));
    int64_t blocks = sms < n ? sms : n;
    for (int64_t i = 0; i < n; i++)
        cr_assert_eq(x[i], i < blocks ? blocks * 1000 + i : -1, "n=%lld sms=%lld: x[%lld] = %d", (long long)n,
                     (long long)sms, (long long)i, x[i]);
}

Test(num_sms, the_vm_grid_reads_TILE_VM_NUM_SMS) {
    ctx = test_vm_context();
    tile_program *p;
    cr_assert_eq(tile_program_from_string(ctx, "fill.tile", fill_source, strlen(fill_source), &p), TILE_OK, "%s",
                 tile_context_message(ctx));
    tile_kernel *k = get_kernel(p, "fill", NULL, 0);
    set_vm_sms(0);
    cr_assert_eq(vm_num_sms(), VM_DEFAULT_NUM_SMS);
    check_fill(k, 10, VM_DEFAULT_NUM_SMS);
    set_vm_sms(3);
    check_fill(k, 10, 3);
    check_fill(k, 2, 3);
    set_vm_sms(40);
    check_fill(k, 40, 40);
    static const char *const bad[] = {"0", "-2", "abc", "7x", "", "5000"};
    for (int i = 0; i < 6; i++) {
        setenv("TILE_VM_NUM_SMS", bad[i], 1);
        cr_assert_eq(vm_num_sms(), VM_DEFAULT_NUM_SMS, "TILE_VM_NUM_SMS='%s'", bad[i]);
    }
    set_vm_sms(0);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* What a GPU launch does: the device's count into the compiled steps, else the VM. */
Test(num_sms, the_grid_steps_agree_with_the_vm_for_any_count) {
    ctx = test_vm_context();
    tile_program *p = test_load_program(ctx, "stdlib/core/gemm_persistent.tile");
    tile_kernel *k = get_kernel(p, "gemm_persistent", NULL, 0);
    cr_assert_not_null(k->grid, "the grid of gemm_persistent did not compile into steps");
    static const int64_t sizes[][3] = {{4096, 4096, 64}, {128, 8192, 8192}, {1, 1, 1}, {0, 5, 5}, {300, 129, 7}};
    static const int sms[] = {1, 4, 78, 132, 144, 4096};
    static char dummy[16];
    for (int s = 0; s < 5; s++) {
        int64_t m = sizes[s][0], n = sizes[s][1], kk = sizes[s][2];
        tile_arg args[3] = {tensor(TILE_BF16, dummy, 2, m, kk, 0), tensor(TILE_BF16, dummy, 2, kk, n, 0),
                            tensor(TILE_BF16, dummy, 2, m, n, 0)};
        int64_t tiles = ((m + 127) / 128) * ((n + 127) / 128);
        for (int i = 0; i < 6; i++) {
            int64_t fast[3], vm[3];
            Strbuf err = {0};
            cr_assert(rt_grid_eval_sms(k->grid, args, 3, sms[i], fast));
            cr_assert(vm_eval_grid_sms(k->function, args, 3, sms[i], vm, &err), "%s", sb_str(&err));
            int64_t want = sms[i] < tiles ? sms[i] : tiles;
            cr_assert(fast[0] == want && vm[0] == want && fast[1] == 1 && vm[1] == 1,
                      "%lldx%lld, %d SMs: steps %lld, VM %lld, want %lld", (long long)m, (long long)n, sms[i],
                      (long long)fast[0], (long long)vm[0], (long long)want);
            sb_free(&err);
        }
    }
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* ---- GEMM helpers ---- */
/* A bf16 matrix: its packed bits and their exact values. */
typedef struct Mat {
    int64_t rows, cols;
    double *v;
    void *bits;
} Mat;

static Mat random_bf16(int64_t rows, int64_t cols) {
    Mat a = {rows, cols, calloc((size_t)(rows * cols) + 1, sizeof(double)),
             calloc(tile_dtype_bytes(TILE_BF16, rows * cols) + 2, 1)};
    for (int64_t i = 0; i < rows * cols; i++) a.v[i] = uniform(-1, 1);
    cr_assert_eq(tile_pack(TILE_BF16, a.v, rows * cols, a.bits), TILE_OK);
    tile_unpack(TILE_BF16, a.bits, rows * cols, a.v);
    return a;
}

static void mat_free(Mat *a) {
    free(a->v);
    free(a->bits);
}

/* c (bf16 bits, m x n) against a @ b in double: within bf16's rounding plus f32 sums. */
static void check_reference(const Mat *a, const Mat *b, const void *c, const char *what) {
    int64_t m = a->rows, kk = a->cols, n = b->cols;
    double *got = calloc((size_t)(m * n) + 1, sizeof(double));
    tile_unpack(TILE_BF16, c, m * n, got);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double want = 0;
            for (int64_t p = 0; p < kk; p++) want += a->v[i * kk + p] * b->v[p * n + j];
            double g = got[i * n + j];
            cr_assert(fabs(g - want) <= fabs(want) / 128 + 1e-5 * (double)kk,
                      "%s %lldx%lldx%lld [%lld,%lld]: %g, want %g", what, (long long)m, (long long)n, (long long)kk,
                      (long long)i, (long long)j, g, want);
        }
    free(got);
}

/* c = a @ b with a gemm-shaped kernel (gemm, gemm_persistent): (a, b, c) */
static void *run_gemm(tile_kernel *k, const Mat *a, const Mat *b) {
    int64_t m = a->rows, kk = a->cols, n = b->cols;
    void *c = calloc(tile_dtype_bytes(TILE_BF16, m * n) + 2, 1);
    tile_arg args[3] = {tensor(TILE_BF16, a->bits, 2, m, kk, 0), tensor(TILE_BF16, b->bits, 2, kk, n, 0),
                        tensor(TILE_BF16, c, 2, m, n, 0)};
    cr_assert_eq(tile_kernel_launch(k, args, 3, NULL), TILE_OK, "%s", tile_context_message(ctx));
    return c;
}

#define C_INT(n, v) {.name = n, .i = v}

/* ---- persistent ---- */
Test(gemm_persistent, matches_the_reference_and_gemm_for_every_sm_count, .timeout = 600) {
    ctx = test_vm_context();
    tile_program *pp = test_load_program(ctx, "stdlib/core/gemm_persistent.tile");
    tile_program *pg = test_load_program(ctx, "stdlib/core/gemm.tile");
    /* small tiles, so that the shapes have many of them; GROUP = 3 leaves a short last group */
    tile_constant c[] = {C_INT("BM", 32), C_INT("BN", 16), C_INT("BK", 16), C_INT("GROUP", 3)};
    tile_kernel *plain = get_kernel(pg, "gemm", c, 4);
    tile_kernel *persistent[2] = {get_kernel(pp, "gemm_persistent", c, 4),
                                  get_kernel(pp, "gemm_persistent_flat", c, 4)};
    /* tiles: 7 x 19 = 133, 3 x 3 = 9 (fewer than most counts), 1, 5 x 9 = 45, 2 x 1 = 2 */
    static const int64_t shapes[][3] = {{200, 300, 100}, {70, 45, 33}, {1, 1, 1}, {129, 130, 200}, {33, 16, 0}};
    static const int sms[] = {1, 3, 4, 10, 64, 1000};
    for (int s = 0; s < 5; s++) {
        int64_t m = shapes[s][0], n = shapes[s][1], kk = shapes[s][2];
        Mat a = random_bf16(m, kk), b = random_bf16(kk, n);
        void *want = run_gemm(plain, &a, &b);
        check_reference(&a, &b, want, "gemm");
        for (int i = 0; i < 12; i++) {
            set_vm_sms(sms[i % 6]);
            const char *name = i < 6 ? "gemm_persistent" : "gemm_persistent_flat";
            void *got = run_gemm(persistent[i / 6], &a, &b);
            if (i % 6 == 0) check_reference(&a, &b, got, name);
            cr_assert(memcmp(got, want, tile_dtype_bytes(TILE_BF16, m * n)) == 0,
                      "%lldx%lldx%lld with %d SMs: %s differs from gemm", (long long)m, (long long)n, (long long)kk,
                      sms[i % 6], name);
            free(got);
        }
        free(want);
        mat_free(&a), mat_free(&b);
    }
    set_vm_sms(0);
    tile_program_destroy(pp);
    tile_program_destroy(pg);
    tile_context_destroy(ctx);
}

/* The default constants (128 x 128 tiles, BK = 64, STAGES = 3; 4 for the ping-pong kernel, whose
 * two consumers then take one tile each in blocks 0 and 1 after the GPU passes) at a shape of 2 x 3
 * tiles and 4 SMs: blocks 0 and 1 take two tiles each, so the pipelined K loop runs twice in one
 * block. */
Test(gemm_persistent, default_constants_two_tiles_per_block, .timeout = 600) {
    ctx = test_vm_context();
    tile_program *pp = test_load_program(ctx, "stdlib/core/gemm_persistent.tile");
    set_vm_sms(4);
    Mat a = random_bf16(250, 200), b = random_bf16(200, 300);
    static const char *const names[] = {"gemm_persistent", "gemm_persistent_flat", "gemm_persistent_pingpong"};
    for (int i = 0; i < 3; i++) {
        void *got = run_gemm(get_kernel(pp, names[i], NULL, 0), &a, &b);
        check_reference(&a, &b, got, names[i]);
        free(got);
    }
    mat_free(&a), mat_free(&b);
    set_vm_sms(0);
    tile_program_destroy(pp);
    tile_context_destroy(ctx);
}

/* ---- split-K ---- */
/* c = a @ b by gemm_splitk_partial + gemm_splitk_reduce with s splits; the bf16 bits of c. */
static void *run_splitk(tile_kernel *partial, tile_kernel *reduce, const Mat *a, const Mat *b, int64_t s,
                        tile_status *status) {
    int64_t m = a->rows, kk = a->cols, n = b->cols;
    float *w = malloc(sizeof(float) * (size_t)(s * m * n + 1));
    for (int64_t i = 0; i < s * m * n; i++) w[i] = NAN; /* every element must be written */
    void *c = calloc(tile_dtype_bytes(TILE_BF16, m * n) + 2, 1);
    tile_arg pargs[3] = {tensor(TILE_BF16, a->bits, 2, m, kk, 0), tensor(TILE_BF16, b->bits, 2, kk, n, 0),
                         tensor(TILE_F32, w, 3, s, m, n)};
    *status = tile_kernel_launch(partial, pargs, 3, NULL);
    if (*status == TILE_OK) {
        tile_arg rargs[2] = {tensor(TILE_F32, w, 3, s, m, n), tensor(TILE_BF16, c, 2, m, n, 0)};
        *status = tile_kernel_launch(reduce, rargs, 2, NULL);
    }
    free(w);
    return c;
}

Test(gemm_splitk, decode_shapes_against_the_reference, .timeout = 600) {
    ctx = test_vm_context();
    tile_program *ps = test_load_program(ctx, "stdlib/core/gemm_splitk.tile");
    tile_program *pg = test_load_program(ctx, "stdlib/core/gemm.tile");
    tile_constant c[] = {C_INT("BM", 16), C_INT("BN", 32), C_INT("BK", 16)};
    tile_constant rc[] = {C_INT("BM", 4), C_INT("BN", 32)};
    tile_kernel *partial = get_kernel(ps, "gemm_splitk_partial", c, 3);
    tile_kernel *reduce = get_kernel(ps, "gemm_splitk_reduce", rc, 2);
    tile_kernel *plain = get_kernel(pg, "gemm", c, 3);
    /* K = 1000 is 62.5 slices of 16: S = 3 gives splits of 336, 336, 328; S = 7 of 144 (the last
     * 136); S = 80 leaves 17 splits with no K at all */
    static const int64_t ms[] = {1, 16, 128};
    static const int64_t splits[] = {1, 3, 7, 80};
    for (int mi = 0; mi < 3; mi++) {
        int64_t m = ms[mi], n = 72, kk = 1000;
        Mat a = random_bf16(m, kk), b = random_bf16(kk, n);
        void *want = run_gemm(plain, &a, &b);
        for (int si = 0; si < 4; si++) {
            tile_status st;
            void *got = run_splitk(partial, reduce, &a, &b, splits[si], &st);
            cr_assert_eq(st, TILE_OK, "%s", tile_context_message(ctx));
            char what[64];
            snprintf(what, sizeof what, "split-K S=%lld", (long long)splits[si]);
            check_reference(&a, &b, got, what);
            if (splits[si] == 1)
                cr_assert(memcmp(got, want, tile_dtype_bytes(TILE_BF16, m * n)) == 0,
                          "M=%lld: split-K with S = 1 differs from gemm", (long long)m);
            free(got);
        }
        free(want);
        mat_free(&a), mat_free(&b);
    }
    tile_program_destroy(ps);
    tile_program_destroy(pg);
    tile_context_destroy(ctx);
}

/* The default constants, K = 1 (every split but the first is empty) and S = 0 (a launch error). */
Test(gemm_splitk, defaults_tiny_k_and_no_splits) {
    ctx = test_vm_context();
    tile_program *ps = test_load_program(ctx, "stdlib/core/gemm_splitk.tile");
    tile_kernel *partial = get_kernel(ps, "gemm_splitk_partial", NULL, 0);
    tile_kernel *reduce = get_kernel(ps, "gemm_splitk_reduce", NULL, 0);
    tile_status st;
    Mat a = random_bf16(3, 1), b = random_bf16(1, 300);
    void *got = run_splitk(partial, reduce, &a, &b, 4, &st);
    cr_assert_eq(st, TILE_OK, "%s", tile_context_message(ctx));
    check_reference(&a, &b, got, "split-K K=1");
    free(got);
    mat_free(&a), mat_free(&b);
    Mat a2 = random_bf16(20, 300), b2 = random_bf16(300, 130);
    got = run_splitk(partial, reduce, &a2, &b2, 2, &st);
    cr_assert_eq(st, TILE_OK, "%s", tile_context_message(ctx));
    check_reference(&a2, &b2, got, "split-K defaults");
    free(got);
    got = run_splitk(partial, reduce, &a2, &b2, 0, &st);
    cr_assert_eq(st, TILE_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(tile_context_message(ctx), "needs S >= 1 splits"), "%s", tile_context_message(ctx));
    free(got);
    mat_free(&a2), mat_free(&b2);
    tile_program_destroy(ps);
    tile_context_destroy(ctx);
}
