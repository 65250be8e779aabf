/* gemm_check.h: one GEMM case of stdlib/core/gemm.tile, run on any context through the public
 * API and checked element by element against a C reference in double. Included by
 * test_gemm_epilogue.c (the VM) and gpu/test_gemm_epilogue_gpu.c (CUDA), so both devices run
 * the same cases with the same checks.
 *
 * A case names the kernel (`gemm` or one of the `gemm_epilogue*` kernels), the shape, the
 * epilogue constants (ACT, HAS_BIAS, HAS_RESIDUAL, alpha) and the memory layout of each operand:
 * a leading dimension larger than the row (lda, ldb, ldc; 0 means contiguous) and transposed A
 * or B, passed as strided views of a matrix stored the other way round (strides {1, ld}), and
 * an offset that moves the data pointers off their alignment. The
 * inputs are random bf16 values (the reference uses the exact rounded inputs); bias and residual
 * are rounded to the result type first. The padding of c (ldc > N) holds a sentinel that must
 * survive, so stores past N are caught. The tolerance is one rounding to the result type, the
 * f32 accumulation (4 K 2^-24 sum |a b|), the f32 epilogue (1e-6 of the magnitudes of its
 * terms) and `act_atol` (the device's error in erf, tanh, exp beyond that; the GPU's fast
 * approximations need more than the VM's libm). Every buffer is device memory of
 * the context (tile_alloc), so the same code runs on the VM and on a GPU. */
#ifndef TILE_TESTS_GEMM_CHECK_H
#define TILE_TESTS_GEMM_CHECK_H
#include <criterion/criterion.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/tile.h"

enum { ACT_NONE, ACT_RELU, ACT_GELU, ACT_GELU_TANH, ACT_SILU, ACT_SWIGLU };

typedef struct GemmCase {
    const char *kernel;         /* "gemm", "gemm_epilogue", "gemm_epilogue_f16", "gemm_epilogue_f32" */
    int64_t m, n, k;            /* c is [m, n]; b has 2 n columns with ACT_SWIGLU */
    int act, has_bias, has_residual;
    double alpha;               /* 0 means 1 */
    int64_t lda, ldb, ldc;      /* leading dimensions of the stored matrices; 0: contiguous */
    bool a_transposed, b_transposed;
    int64_t offset;             /* a, b and c start this many elements into their buffers (1: a
                                   data pointer 2 or 4 bytes past an aligned one) */
    int bm, bn, bk;             /* tile constants; 0: the kernel's defaults */
} GemmCase;

static uint64_t gemm_check_seed = 0x2545f4914f6cdd1dull;
static double gemm_check_uniform(double lo, double hi) {
    gemm_check_seed = gemm_check_seed * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (double)(gemm_check_seed >> 11) / 9007199254740992.0;
}

static tile_dtype gemm_check_out_type(const char *kernel) {
    if (strcmp(kernel, "gemm_epilogue_f16") == 0) return TILE_F16;
    if (strcmp(kernel, "gemm_epilogue_f32") == 0) return TILE_F32;
    return TILE_BF16;
}

/* PyTorch's definitions: F.relu, F.gelu (erf), F.gelu(approximate='tanh'), F.silu. */
static double gemm_check_act(int act, double y) {
    switch (act) {
    case ACT_RELU: return y > 0 ? y : 0;
    case ACT_GELU: return 0.5 * y * (1 + erf(y / sqrt(2.0)));
    case ACT_GELU_TANH: return 0.5 * y * (1 + tanh(sqrt(2 / M_PI) * (y + 0.044715 * y * y * y)));
    case ACT_SILU: return y / (1 + exp(-y));
    default: return y;
    }
}

/* Random values of type dt in [lo, hi): packed into `packed`, the exact values into `exact`. */
static void gemm_check_fill(tile_dtype dt, int64_t n, double lo, double hi, void *packed, double *exact) {
    for (int64_t i = 0; i < n; i++) exact[i] = gemm_check_uniform(lo, hi);
    cr_assert_eq(tile_pack(dt, exact, n, packed), TILE_OK);
    tile_unpack(dt, packed, n, exact);
}

/* A device buffer holding the host bytes. */
static void *gemm_check_upload(tile_context *ctx, const void *host, size_t bytes) {
    void *dev = NULL;
    if (bytes == 0) return NULL;
    cr_assert_eq(tile_alloc(ctx, bytes, &dev), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(tile_copy_to_device(ctx, dev, host, bytes), TILE_OK, "%s", tile_context_message(ctx));
    return dev;
}

static tile_arg gemm_check_view(tile_dtype dt, void *data, int64_t rows, int64_t cols, int64_t s0, int64_t s1) {
    tile_arg a = {.kind = TILE_ARG_TENSOR};
    a.tensor.dtype = dt, a.tensor.data = data, a.tensor.rank = 2;
    a.tensor.shape[0] = rows, a.tensor.shape[1] = cols;
    a.tensor.strides[0] = s0, a.tensor.strides[1] = s1;
    return a;
}

/* Runs one case on ctx with the kernel of prog and checks every element of c and its padding. */
static void gemm_check(tile_context *ctx, tile_program *prog, const GemmCase *gc, double act_atol) {
    const int64_t m = gc->m, n = gc->n, k = gc->k;
    const bool plain = strcmp(gc->kernel, "gemm") == 0;
    const int64_t np = gc->act == ACT_SWIGLU ? 2 * n : n; /* columns of b and of the product */
    const tile_dtype out_type = gemm_check_out_type(gc->kernel);
    const double alpha = gc->alpha != 0 ? gc->alpha : 1.0;
    char what[256];
    snprintf(what, sizeof what, "%s %lldx%lldx%lld act=%d bias=%d residual=%d alpha=%g lda=%lld%s ldb=%lld%s ldc=%lld off=%lld",
             gc->kernel, (long long)m, (long long)n, (long long)k, gc->act, gc->has_bias, gc->has_residual, alpha,
             (long long)gc->lda, gc->a_transposed ? "(T)" : "", (long long)gc->ldb, gc->b_transposed ? "(T)" : "",
             (long long)gc->ldc, (long long)gc->offset);

    tile_constant consts[6];
    size_t nconsts = 0;
    if (gc->bm) consts[nconsts++] = (tile_constant){.name = "BM", .i = gc->bm};
    if (gc->bn) consts[nconsts++] = (tile_constant){.name = "BN", .i = gc->bn};
    if (gc->bk) consts[nconsts++] = (tile_constant){.name = "BK", .i = gc->bk};
    if (!plain) {
        consts[nconsts++] = (tile_constant){.name = "ACT", .i = gc->act};
        consts[nconsts++] = (tile_constant){.name = "HAS_BIAS", .i = gc->has_bias};
        consts[nconsts++] = (tile_constant){.name = "HAS_RESIDUAL", .i = gc->has_residual};
    }
    tile_kernel *kern;
    cr_assert_eq(tile_program_get_kernel(prog, gc->kernel, consts, nconsts, &kern), TILE_OK, "%s: %s", what,
                 tile_context_message(ctx));

    /* A [m, k]: stored [m, lda] row-major, or transposed: [k, lda] with a(i, p) at p * lda + i. */
    const int64_t a_rows = gc->a_transposed ? k : m, a_cols = gc->a_transposed ? m : k;
    const int64_t lda = gc->lda ? gc->lda : a_cols, ldb_cols = gc->b_transposed ? k : np;
    const int64_t b_rows = gc->b_transposed ? np : k, ldb = gc->ldb ? gc->ldb : ldb_cols;
    const int64_t ldc = gc->ldc ? gc->ldc : n;
    cr_assert(lda >= a_cols && ldb >= ldb_cols && ldc >= n, "%s: a leading dimension shorter than its row", what);
    /* whole buffers, the offset included (numbers of elements) */
    const int64_t off = gc->offset, sa = off + a_rows * lda, sb = off + b_rows * ldb, sc = off + m * ldc;
    double *a = malloc(sizeof(double) * (size_t)sa), *b = malloc(sizeof(double) * (size_t)sb);
    double *bias = malloc(sizeof(double) * (size_t)np), *res = malloc(sizeof(double) * (size_t)(m * n));
    double *got = malloc(sizeof(double) * (size_t)sc);
    void *ha = malloc(tile_dtype_bytes(TILE_BF16, sa)), *hb = malloc(tile_dtype_bytes(TILE_BF16, sb));
    void *hbias = malloc(tile_dtype_bytes(out_type, np)), *hres = malloc(tile_dtype_bytes(out_type, m * n));
    void *hc = malloc(tile_dtype_bytes(out_type, sc));
    gemm_check_fill(TILE_BF16, sa, -1, 1, ha, a);
    gemm_check_fill(TILE_BF16, sb, -1, 1, hb, b);
    gemm_check_fill(out_type, np, -1, 1, hbias, bias);
    gemm_check_fill(out_type, m * n, -2, 2, hres, res);
    const double sentinel = 77.0;
    for (int64_t i = 0; i < sc; i++) got[i] = sentinel;
    cr_assert_eq(tile_pack(out_type, got, sc, hc), TILE_OK);

    void *da = gemm_check_upload(ctx, ha, tile_dtype_bytes(TILE_BF16, sa));
    void *db = gemm_check_upload(ctx, hb, tile_dtype_bytes(TILE_BF16, sb));
    void *dbias = gc->has_bias ? gemm_check_upload(ctx, hbias, tile_dtype_bytes(out_type, np)) : NULL;
    void *dres = gc->has_residual ? gemm_check_upload(ctx, hres, tile_dtype_bytes(out_type, m * n)) : NULL;
    void *dc = gemm_check_upload(ctx, hc, tile_dtype_bytes(out_type, sc));
    /* the views start `off` elements in (NULL stays NULL: an empty A or B) */
    char *va = da ? (char *)da + tile_dtype_bytes(TILE_BF16, off) : NULL;
    char *vb = db ? (char *)db + tile_dtype_bytes(TILE_BF16, off) : NULL;
    char *vc = (char *)dc + tile_dtype_bytes(out_type, off);
    tile_arg args[6];
    args[0] = gc->a_transposed ? gemm_check_view(TILE_BF16, va, m, k, 1, lda) : gemm_check_view(TILE_BF16, va, m, k, lda, 1);
    args[1] = gc->b_transposed ? gemm_check_view(TILE_BF16, vb, k, np, 1, ldb) : gemm_check_view(TILE_BF16, vb, k, np, ldb, 1);
    args[2] = gemm_check_view(out_type, vc, m, n, ldc, 1);
    int64_t bias_len = gc->has_bias ? np : 0;
    args[3] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(out_type, dbias, 1, &bias_len)};
    args[4] = gc->has_residual ? gemm_check_view(out_type, dres, m, n, n, 1) : gemm_check_view(out_type, NULL, 0, 0, 0, 1);
    args[5] = (tile_arg){.kind = TILE_ARG_FLOAT, .f = alpha};
    cr_assert(plain ? alpha == 1 && !gc->has_bias && !gc->has_residual && gc->act == ACT_NONE : true,
              "%s: the plain gemm has no epilogue", what);
    tile_status st = tile_kernel_launch(kern, args, plain ? 3 : 6, NULL);
    cr_assert_eq(st, TILE_OK, "%s: %s", what, tile_context_message(ctx));
    cr_assert_eq(tile_synchronize(ctx), TILE_OK, "%s: %s", what, tile_context_message(ctx));
    cr_assert_eq(tile_copy_to_host(ctx, hc, dc, tile_dtype_bytes(out_type, sc)), TILE_OK, "%s", what);
    tile_unpack(out_type, hc, sc, got);
    for (int64_t i = 0; i < off; i++) cr_assert_eq(got[i], sentinel, "%s: c's buffer before the view was written", what);
    got += off, a += off, b += off;

    const double out_rel = out_type == TILE_F32 ? 1e-6 : out_type == TILE_F16 ? 1.0 / 1024 : 1.0 / 128;
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j++) {
            /* the product's columns j (and n + j for swiglu) and the sums of their magnitudes */
            double p[2] = {0, 0}, mag[2] = {0, 0};
            for (int h = 0; h < (gc->act == ACT_SWIGLU ? 2 : 1); h++)
                for (int64_t q = 0; q < k; q++) {
                    double av = gc->a_transposed ? a[q * lda + i] : a[i * lda + q];
                    int64_t col = j + h * n;
                    double bv = gc->b_transposed ? b[col * ldb + q] : b[q * ldb + col];
                    p[h] += av * bv, mag[h] += fabs(av * bv);
                }
            double y[2], want, accum = 4.0 * (double)k * ldexp(1.0, -24);
            for (int h = 0; h < 2; h++)
                y[h] = h < (gc->act == ACT_SWIGLU ? 2 : 1) ? alpha * p[h] + (gc->has_bias ? bias[j + h * n] : 0) : 0;
            /* the f32 epilogue's roundings (1e-6) and the device's math (act_atol), relative to the
             * magnitudes before any cancellation by the residual */
            double terms = 1 + fabs(y[0]) + fabs(y[1]) + (gc->has_residual ? fabs(res[i * n + j]) : 0);
            double err = accum * fabs(alpha) * (mag[0] + mag[1]) + (1e-6 + act_atol) * terms;
            if (gc->act == ACT_SWIGLU) {
                double s = gemm_check_act(ACT_SILU, y[0]);
                want = s * y[1];
                err *= 2 + fabs(y[0]) + fabs(y[1]); /* the errors of gate and up, each times the other */
            } else {
                want = gemm_check_act(gc->act, y[0]);
            }
            if (gc->has_residual) want += res[i * n + j];
            double g = got[i * ldc + j];
            cr_assert(fabs(g - want) <= out_rel * fabs(want) + err + 1e-30, "%s: c[%lld, %lld] = %.9g, expected %.9g (tolerance %.3g)",
                      what, (long long)i, (long long)j, g, want, out_rel * fabs(want) + err);
        }
        for (int64_t j = n; j < ldc; j++)
            cr_assert_eq(got[i * ldc + j], sentinel, "%s: the padding c[%lld, %lld] was written", what, (long long)i,
                         (long long)j);
    }
    got -= off, a -= off, b -= off;
    if (da) tile_free(ctx, da);
    if (db) tile_free(ctx, db);
    tile_free(ctx, dc);
    if (dbias) tile_free(ctx, dbias);
    if (dres) tile_free(ctx, dres);
    free(a), free(b), free(bias), free(res), free(got), free(ha), free(hb), free(hbias), free(hres), free(hc);
}

/* The cases both devices run: every epilogue option with every result type, odd shapes, and
 * strided and transposed operands, for the epilogue kernels and the plain gemm. */
static size_t gemm_check_cases(GemmCase *out, size_t cap) {
    size_t n = 0;
#define ADD(...) do { if (n < cap) out[n] = (GemmCase){__VA_ARGS__}; n++; } while (0)
    static const char *kernels[] = {"gemm_epilogue", "gemm_epilogue_f16", "gemm_epilogue_f32"};
    /* every activation with bias, residual and a scale; 70 x 45 x 33 is no multiple of 32 x 16 x 16 */
    for (int kk = 0; kk < 3; kk++)
        for (int act = ACT_NONE; act <= ACT_SWIGLU; act++)
            ADD(.kernel = kernels[kk], .m = 70, .n = 45, .k = 33, .act = act, .has_bias = 1, .has_residual = 1,
                .alpha = 0.75, .bm = 32, .bn = 16, .bk = 16);
    /* each option alone, and none */
    for (int kk = 0; kk < 3; kk++) {
        ADD(.kernel = kernels[kk], .m = 40, .n = 24, .k = 20, .bm = 32, .bn = 16, .bk = 16);
        ADD(.kernel = kernels[kk], .m = 40, .n = 24, .k = 20, .has_bias = 1, .bm = 32, .bn = 16, .bk = 16);
        ADD(.kernel = kernels[kk], .m = 40, .n = 24, .k = 20, .has_residual = 1, .bm = 32, .bn = 16, .bk = 16);
        ADD(.kernel = kernels[kk], .m = 40, .n = 24, .k = 20, .alpha = -2.5, .bm = 32, .bn = 16, .bk = 16);
        ADD(.kernel = kernels[kk], .m = 40, .n = 24, .k = 20, .act = ACT_SWIGLU, .bm = 32, .bn = 16, .bk = 16);
    }
    /* the default tiles (128 x 128 x 64), two tile rows and columns with tails */
    ADD(.kernel = "gemm_epilogue", .m = 130, .n = 140, .k = 70, .act = ACT_GELU, .has_bias = 1, .has_residual = 1);
    ADD(.kernel = "gemm_epilogue_f32", .m = 129, .n = 129, .k = 65, .act = ACT_SWIGLU, .has_bias = 1);
    /* odd shapes, for the epilogue kernels and the plain gemm alike (K = 0: the epilogue of zeros) */
    static const int64_t shapes[][3] = {{1, 1, 1}, {1, 37, 50}, {37, 1, 50}, {37, 50, 1}, {64, 32, 32}, {33, 17, 15},
                                        {5, 7, 0}};
    for (int s = 0; s < 7; s++) {
        ADD(.kernel = "gemm", .m = shapes[s][0], .n = shapes[s][1], .k = shapes[s][2], .bm = 32, .bn = 16, .bk = 16);
        ADD(.kernel = "gemm_epilogue_f32", .m = shapes[s][0], .n = shapes[s][1], .k = shapes[s][2], .act = ACT_SILU,
            .has_bias = 1, .has_residual = 1, .bm = 32, .bn = 16, .bk = 16);
        ADD(.kernel = "gemm_epilogue", .m = shapes[s][0], .n = shapes[s][1], .k = shapes[s][2], .act = ACT_SWIGLU,
            .has_bias = 1, .bm = 32, .bn = 16, .bk = 16);
    }
    /* unaligned leading dimensions and transposed operands (strided views) */
    for (int t = 0; t < 4; t++) {
        bool at = t & 1, bt = t & 2;
        ADD(.kernel = "gemm", .m = 45, .n = 38, .k = 35, .lda = (at ? 45 : 35) + 3, .ldb = (bt ? 35 : 38) + 5, .ldc = 41,
            .a_transposed = at, .b_transposed = bt, .bm = 32, .bn = 16, .bk = 16);
        ADD(.kernel = "gemm_epilogue", .m = 45, .n = 38, .k = 35, .act = ACT_GELU_TANH, .has_bias = 1, .has_residual = 1,
            .lda = (at ? 45 : 35) + 1, .ldb = (bt ? 35 : 38) + 7, .ldc = 39, .a_transposed = at, .b_transposed = bt,
            .bm = 32, .bn = 16, .bk = 16);
        ADD(.kernel = "gemm_epilogue_f16", .m = 45, .n = 19, .k = 35, .act = ACT_SWIGLU, .has_bias = 1,
            .lda = at ? 46 : 0, .ldb = bt ? 0 : 41, .ldc = 23, .a_transposed = at, .b_transposed = bt, .bm = 32, .bn = 16,
            .bk = 16);
    }
    /* data pointers one element past an aligned address */
    ADD(.kernel = "gemm", .m = 45, .n = 38, .k = 35, .offset = 1, .bm = 32, .bn = 16, .bk = 16);
    ADD(.kernel = "gemm_epilogue_f32", .m = 45, .n = 38, .k = 35, .act = ACT_RELU, .has_bias = 1, .offset = 1,
        .ldc = 40, .b_transposed = true, .bm = 32, .bn = 16, .bk = 16);
    ADD(.kernel = "gemm_epilogue", .m = 130, .n = 136, .k = 72, .act = ACT_SWIGLU, .has_residual = 1, .offset = 1);
    /* the transposed operands at the default tiles */
    ADD(.kernel = "gemm", .m = 130, .n = 129, .k = 66, .a_transposed = true, .b_transposed = true);
#undef ADD
    return n;
}
#endif
