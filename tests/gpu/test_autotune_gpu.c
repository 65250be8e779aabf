/* test_autotune_gpu.c: autotuning with real timing on a GPU (runtime/autotune.c). The stdlib
 * gemm (stdlib/core/gemm.tile, five candidates) at 1000 x 1000 x 1000 in a private cache
 * directory: the first context times the candidates with CUDA events (every candidate that ran
 * has a positive time in the report), stores the winner and computes C correctly; a second
 * context reads the winner from the disk cache without timing and chooses the same candidate.
 * An accumulating kernel (y += x) is tuned too, and its output must be what one launch gives:
 * timing runs on scratch copies. And every gemm candidate, run on its own, is correct. Skips
 * with a message where there is no GPU. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "../testutil.h"

static char cache_dir[64];

static void setup(void) {
    strcpy(cache_dir, "/tmp/tile-autotune-gpu-XXXXXX");
    cr_assert_not_null(mkdtemp(cache_dir));
    setenv("TILE_CACHE_DIR", cache_dir, 1);
    unsetenv("TILE_AUTOTUNE");
    unsetenv("TILE_CACHE");
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cache_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", cache_dir);
}

TestSuite(autotune_gpu, .init = setup, .fini = teardown, .timeout = 900);

static tile_context *open_gpu(void) {
    tile_context *ctx;
    if (tile_context_create(TILE_DEVICE_CUDA, 0, &ctx) != TILE_OK)
        cr_skip_test("no CUDA device: %s", tile_context_message(NULL));
    return ctx;
}

/* The chosen candidate's number from a report ("chose candidate 3: ..."), or 0. */
static int chosen(const char *report) {
    const char *at = report ? strstr(report, "chose candidate ") : NULL;
    return at ? atoi(at + strlen("chose candidate ")) : 0;
}

/* gemm on a new context; returns its report (malloc'd) and checks C on a sample of entries. */
static char *run_gemm(void) {
    enum { M = 1000, N = 1000, K = 1000 };
    tile_context *ctx = open_gpu();
    tile_program *p = test_load_program(ctx, "stdlib/core/gemm.tile");
    tile_kernel *k;
    tile_status st = tile_program_get_kernel(p, "gemm", NULL, 0, &k);
    if (st == TILE_ERROR_UNSUPPORTED) cr_skip_test("%s", tile_context_message(ctx));
    cr_assert_eq(st, TILE_OK, "%s", tile_context_message(ctx));
    double *ha = malloc(sizeof(double) * M * K), *hb = malloc(sizeof(double) * K * N), *hc = malloc(sizeof(double) * M * N);
    for (int i = 0; i < M * K; i++) ha[i] = (double)((i * 7 % 13) - 6) / 8;
    for (int i = 0; i < K * N; i++) hb[i] = (double)((i * 5 % 11) - 5) / 8;
    size_t ab = tile_dtype_bytes(TILE_BF16, M * K), bb = tile_dtype_bytes(TILE_BF16, K * N),
           cb = tile_dtype_bytes(TILE_BF16, M * N);
    void *pa = malloc(ab), *pb = malloc(bb), *pc = malloc(cb), *da, *db, *dc;
    tile_pack(TILE_BF16, ha, M * K, pa);
    tile_pack(TILE_BF16, hb, K * N, pb);
    cr_assert_eq(tile_alloc(ctx, ab, &da), TILE_OK);
    cr_assert_eq(tile_alloc(ctx, bb, &db), TILE_OK);
    cr_assert_eq(tile_alloc(ctx, cb, &dc), TILE_OK);
    tile_copy_to_device(ctx, da, pa, ab);
    tile_copy_to_device(ctx, db, pb, bb);
    int64_t sa[2] = {M, K}, sb[2] = {K, N}, sc[2] = {M, N};
    tile_arg args[3] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, da, 2, sa)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, db, 2, sb)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, dc, 2, sc)}};
    st = tile_kernel_launch(k, args, 3, NULL);
    cr_assert_eq(st, TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(tile_synchronize(ctx), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(tile_copy_to_host(ctx, pc, dc, cb), TILE_OK);
    tile_unpack(TILE_BF16, pc, M * N, hc);
    for (int i = 0; i < M; i += 37)
        for (int j = 0; j < N; j += 41) {
            double want = 0;
            for (int q = 0; q < K; q++) want += ha[i * K + q] * hb[q * N + j];
            cr_assert(fabs(hc[i * N + j] - want) <= 0.02 * (1 + fabs(want)), "C[%d][%d] = %g, want %g", i, j,
                      hc[i * N + j], want);
        }
    char *report = NULL;
    cr_assert_eq(tile_kernel_autotune_report(k, &report), TILE_OK);
    cr_assert_not_null(report);
    fprintf(stderr, "%s", report);
    tile_free(ctx, da);
    tile_free(ctx, db);
    tile_free(ctx, dc);
    free(ha), free(hb), free(hc), free(pa), free(pb), free(pc);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
    return report;
}

Test(autotune_gpu, gemm_timed_then_read_from_the_cache) {
    char *first = run_gemm();
    cr_assert_not_null(strstr(first, "timed now"), "%s", first);
    cr_assert_not_null(strstr(first, "bucket M=1024 (1000) N=1024 (1000) K=1024 (1000)"), "%s", first);
    cr_assert_not_null(strstr(first, "stored in"), "%s", first);
    /* every timed candidate has a positive time */
    int timed = 0;
    for (const char *t = strstr(first, "    time "); t; t = strstr(t + 1, "    time ")) {
        int n;
        double ms;
        if (sscanf(t, "    time %d %lf ms", &n, &ms) == 2) {
            cr_expect_gt(ms, 0.0, "candidate %d: %g ms", n, ms);
            timed++;
        }
    }
    cr_expect_geq(timed, 1, "%s", first);
    char *second = run_gemm();
    cr_assert_not_null(strstr(second, "from the disk cache"), "%s", second);
    cr_assert_null(strstr(second, "timed now"), "%s", second);
    cr_expect_eq(chosen(second), chosen(first), "%s\n%s", first, second);
    free(first);
    free(second);
}

/* Every candidate of the stdlib gemm, got with its constants (no tuning), computes the right
 * product at an odd shape: tuning must not be able to choose a wrong kernel. */
Test(autotune_gpu, every_gemm_candidate_is_correct) {
    enum { M = 333, N = 520, K = 200 };
    tile_context *ctx = open_gpu();
    tile_program *p = test_load_program(ctx, "stdlib/core/gemm.tile");
    Arena arena;
    arena_init(&arena);
    AutotuneSpec spec;
    DiagList d = {0};
    cr_assert(autotune_read(p->ast->decls.items[0], &arena, &spec, &d), "%s", sb_str(&d.text));
    double *ha = malloc(sizeof(double) * M * K), *hb = malloc(sizeof(double) * K * N), *hc = malloc(sizeof(double) * M * N);
    for (int i = 0; i < M * K; i++) ha[i] = (double)((i * 7 % 13) - 6) / 8;
    for (int i = 0; i < K * N; i++) hb[i] = (double)((i * 5 % 11) - 5) / 8;
    size_t ab = tile_dtype_bytes(TILE_BF16, M * K), bb = tile_dtype_bytes(TILE_BF16, K * N),
           cb = tile_dtype_bytes(TILE_BF16, M * N);
    void *pa = malloc(ab), *pb = malloc(bb), *pc = malloc(cb), *da, *db, *dc;
    tile_pack(TILE_BF16, ha, M * K, pa);
    tile_pack(TILE_BF16, hb, K * N, pb);
    cr_assert_eq(tile_alloc(ctx, ab, &da), TILE_OK);
    cr_assert_eq(tile_alloc(ctx, bb, &db), TILE_OK);
    cr_assert_eq(tile_alloc(ctx, cb, &dc), TILE_OK);
    tile_copy_to_device(ctx, da, pa, ab);
    tile_copy_to_device(ctx, db, pb, bb);
    int64_t sa[2] = {M, K}, sb[2] = {K, N}, sc[2] = {M, N};
    tile_arg args[3] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, da, 2, sa)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, db, 2, sb)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, dc, 2, sc)}};
    for (uint32_t c = 0; c < spec.nconfigs; c++) {
        tile_constant consts[16];
        for (uint32_t b = 0; b < spec.configs[c].nbindings; b++) {
            const ConstBinding *x = &spec.configs[c].bindings[b];
            consts[b] = (tile_constant){x->name, x->is_float, x->i, x->f};
        }
        tile_kernel *k;
        tile_status st = tile_program_get_kernel(p, "gemm", consts, spec.configs[c].nbindings, &k);
        if (st != TILE_OK) { /* left out by tuning too: say so, it is not wrong */
            fprintf(stderr, "candidate %u does not compile here: %s\n", c + 1, tile_context_message(ctx));
            continue;
        }
        st = tile_kernel_launch(k, args, 3, NULL);
        if (st != TILE_OK) {
            fprintf(stderr, "candidate %u does not launch here: %s\n", c + 1, tile_context_message(ctx));
            continue;
        }
        cr_assert_eq(tile_synchronize(ctx), TILE_OK, "candidate %u: %s", c + 1, tile_context_message(ctx));
        cr_assert_eq(tile_copy_to_host(ctx, pc, dc, cb), TILE_OK);
        tile_unpack(TILE_BF16, pc, M * N, hc);
        for (int i = 0; i < M; i += 7)
            for (int j = 0; j < N; j += 3) {
                double want = 0;
                for (int q = 0; q < K; q++) want += ha[i * K + q] * hb[q * N + j];
                cr_assert(fabs(hc[i * N + j] - want) <= 0.02 * (1 + fabs(want)), "candidate %u: C[%d][%d] = %g, want %g",
                          c + 1, i, j, hc[i * N + j], want);
            }
        memset(pc, 0xff, cb); /* NaNs for the next candidate to overwrite */
        tile_copy_to_device(ctx, dc, pc, cb);
    }
    tile_free(ctx, da);
    tile_free(ctx, db);
    tile_free(ctx, dc);
    free(ha), free(hb), free(hc), free(pa), free(pb), free(pc);
    diag_free(&d);
    arena_free(&arena);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

Test(autotune_gpu, accumulating_outputs_are_written_once) {
    static const char *good = "kernel acc<BLOCK = 256, W = 4>(x: tensor<f32>[N], y: tensor<f32>[N])\n"
                              "  grid(cdiv(N, BLOCK)) warps(W)\n"
                              "  autotune(key = [N], config(), config(BLOCK = 128), config(BLOCK = 1024, W = 8))\n"
                              "{\n"
                              "  let i = block_id(0) * BLOCK;\n"
                              "  y[i :+ BLOCK] += x[i :+ BLOCK];\n"
                              "}\n";
    enum { N = 100003 };
    tile_context *ctx = open_gpu();
    tile_program *p;
    cr_assert_eq(tile_program_from_string(ctx, "acc.tile", good, strlen(good), &p), TILE_OK, "%s",
                 tile_context_message(ctx));
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(p, "acc", NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
    float *hx = malloc(sizeof(float) * N), *hy = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) hx[i] = (float)(i % 1000), hy[i] = 1.0f;
    void *dx, *dy;
    cr_assert_eq(tile_alloc(ctx, sizeof(float) * N, &dx), TILE_OK);
    cr_assert_eq(tile_alloc(ctx, sizeof(float) * N, &dy), TILE_OK);
    tile_copy_to_device(ctx, dx, hx, sizeof(float) * N);
    tile_copy_to_device(ctx, dy, hy, sizeof(float) * N);
    int64_t shape[1] = {N};
    tile_arg args[2] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, dx, 1, shape)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, dy, 1, shape)}};
    cr_assert_eq(tile_kernel_launch(k, args, 2, NULL), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(tile_synchronize(ctx), TILE_OK);
    tile_copy_to_host(ctx, hy, dy, sizeof(float) * N);
    for (int i = 0; i < N; i++) cr_assert_eq(hy[i], 1.0f + (float)(i % 1000), "y[%d] = %g", i, (double)hy[i]);
    char *report = NULL;
    tile_kernel_autotune_report(k, &report);
    cr_assert_not_null(report);
    cr_expect_not_null(strstr(report, "timed now"), "%s", report);
    tile_string_free(report);
    tile_free(ctx, dx);
    tile_free(ctx, dy);
    free(hx);
    free(hy);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}
