/* test_kernels_gpu.c: every kernel of stdlib/core on the GPU through the public API.
 *
 * Each kernel runs twice: at a small shape on the GPU and on the VM with the same random inputs
 * (the VM is the reference semantics), and at a real shape on the GPU against a C reference
 * computed in double from the same (rounded) inputs. The largest difference must stay within a
 * tolerance chosen per case from the element type and the length of the sums involved.
 * Skips with a message where there is no GPU, and per kernel when the code generator reports
 * the kernel unsupported. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/tile.h"

typedef struct Size {
    const char *name;
    int64_t value;
} Size;

enum { MAX_SIZES = 4, MAX_PARAMS = 16 };

typedef struct Run {
    int nparams;
    tile_param_info info[MAX_PARAMS];
    int64_t shape[MAX_PARAMS][TILE_MAX_RANK];
    int64_t numel[MAX_PARAMS];
    double *data[MAX_PARAMS];   /* inputs before, every tensor after */
    double scalar[MAX_PARAMS];
} Run;

typedef void (*Reference)(Run *r, const Size *sizes); /* overwrites the outputs of r with the expected values */

typedef struct Case {
    const char *file;
    const char *kernel;
    Size small[MAX_SIZES];
    Size large[MAX_SIZES];
    Reference reference;
    int index_param;            /* a parameter holding row indices in [0, index_bound), or -1 */
    const char *index_bound;    /* the size that bounds them */
    int zero_param;             /* an output that must start at zero (atomics), or -1 */
    double atol, rtol;          /* |gpu - ref| <= atol + rtol * |ref| */
} Case;

/* Constants other than the defaults for the case being checked (check_case_with). */
static const tile_constant *case_consts;
static size_t case_nconsts;

static int64_t size_of(const Size *sizes, const char *name) {
    for (int i = 0; i < MAX_SIZES && sizes[i].name; i++)
        if (strcmp(sizes[i].name, name) == 0) return sizes[i].value;
    cr_assert_fail("no size %s", name);
    return 0;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double uniform(void) {
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (double)((rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static tile_context *gpu, *vm;

static void open_devices(void) {
    if (tile_context_create(TILE_DEVICE_CUDA, 0, &gpu) != TILE_OK)
        cr_skip_test("no CUDA device: %s", tile_context_message(NULL));
    cr_assert_eq(tile_context_create(TILE_DEVICE_VM, 0, &vm), TILE_OK);
    cr_log_info("running on %s", tile_context_device_name(gpu));
}

static void close_devices(void) {
    tile_context_destroy(gpu);
    tile_context_destroy(vm);
    gpu = vm = NULL;
}

TestSuite(kernels_gpu, .init = open_devices, .fini = close_devices, .timeout = 600);

/* Loads the case's kernel on ctx; skips when the GPU code generator does not support it yet. */
static tile_kernel *get_kernel(tile_context *ctx, const Case *c, tile_program **prog) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", TILE_SOURCE_DIR, c->file);
    cr_assert_eq(tile_program_from_file(ctx, path, prog), TILE_OK, "%s", tile_context_message(ctx));
    tile_kernel *k = NULL;
    tile_status st = tile_program_get_kernel(*prog, c->kernel, case_consts, case_nconsts, &k);
    if (st == TILE_ERROR_UNSUPPORTED) cr_skip_test("%s: %s", c->kernel, tile_context_message(ctx));
    cr_assert_eq(st, TILE_OK, "%s", tile_context_message(ctx));
    return k;
}

/* Shapes and random inputs for the sizes, rounded to each tensor's element type. */
static void make_inputs(tile_kernel *k, const Case *c, const Size *sizes, Run *r) {
    memset(r, 0, sizeof *r);
    r->nparams = tile_kernel_num_params(k);
    for (int i = 0; i < r->nparams; i++) {
        tile_param_info *info = &r->info[i];
        tile_kernel_param(k, i, info);
        if (info->kind != TILE_ARG_TENSOR) {
            r->scalar[i] = strcmp(info->name, "eps") == 0 ? 1e-5 : 1.0;
            continue;
        }
        r->numel[i] = 1;
        for (int d = 0; d < info->rank; d++) {
            r->shape[i][d] = info->dim_symbols[d] ? size_of(sizes, info->dim_symbols[d]) : info->dim_sizes[d];
            r->numel[i] *= r->shape[i][d];
        }
        r->data[i] = malloc(sizeof(double) * (size_t)(r->numel[i] + 1));
        int64_t bound = i == c->index_param ? size_of(sizes, c->index_bound) : 0;
        for (int64_t e = 0; e < r->numel[i]; e++)
            r->data[i][e] = i == c->zero_param ? 0 : bound ? floor(uniform() * (double)bound) : 2 * uniform() - 1;
        void *packed = malloc(tile_dtype_bytes(info->dtype, r->numel[i]) + 1);
        tile_pack(info->dtype, r->data[i], r->numel[i], packed);
        tile_unpack(info->dtype, packed, r->numel[i], r->data[i]);
        free(packed);
    }
}

static void run_free(Run *r) {
    for (int i = 0; i < r->nparams; i++) free(r->data[i]);
}

/* Copies r's inputs to ctx, launches k, and reads every tensor back into out (same shapes). */
static void launch(tile_context *ctx, tile_kernel *k, const Run *r, Run *out) {
    *out = *r;
    tile_arg args[MAX_PARAMS];
    memset(args, 0, sizeof args);
    for (int i = 0; i < r->nparams; i++) {
        if (r->info[i].kind != TILE_ARG_TENSOR) {
            args[i].kind = r->info[i].kind;
            args[i].f = r->scalar[i];
            args[i].i = (int64_t)r->scalar[i];
            out->data[i] = NULL;
            continue;
        }
        size_t bytes = tile_dtype_bytes(r->info[i].dtype, r->numel[i]);
        void *dev, *host = malloc(bytes + 1);
        cr_assert_eq(tile_alloc(ctx, bytes, &dev), TILE_OK, "%s", tile_context_message(ctx));
        tile_pack(r->info[i].dtype, r->data[i], r->numel[i], host);
        cr_assert_eq(tile_copy_to_device(ctx, dev, host, bytes), TILE_OK, "%s", tile_context_message(ctx));
        free(host);
        args[i].kind = TILE_ARG_TENSOR;
        args[i].tensor = tile_tensor_contiguous(r->info[i].dtype, dev, r->info[i].rank, r->shape[i]);
    }
    tile_status launched = tile_kernel_launch(k, args, (size_t)r->nparams, NULL);
    /* the first launch compiles the GPU code: what the backend does not support yet skips here */
    if (launched == TILE_ERROR_UNSUPPORTED && ctx == gpu) cr_skip_test("%s", tile_context_message(ctx));
    cr_assert_eq(launched, TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(tile_synchronize(ctx), TILE_OK, "%s", tile_context_message(ctx));
    for (int i = 0; i < r->nparams; i++) {
        if (r->info[i].kind != TILE_ARG_TENSOR) continue;
        size_t bytes = tile_dtype_bytes(r->info[i].dtype, r->numel[i]);
        void *host = malloc(bytes + 1);
        cr_assert_eq(tile_copy_to_host(ctx, host, args[i].tensor.data, bytes), TILE_OK, "%s", tile_context_message(ctx));
        out->data[i] = malloc(sizeof(double) * (size_t)(r->numel[i] + 1));
        tile_unpack(r->info[i].dtype, host, r->numel[i], out->data[i]);
        free(host);
        tile_free(ctx, args[i].tensor.data);
    }
}

static void compare(const Case *c, const char *what, const Run *want, const Run *got) {
    for (int i = 0; i < want->nparams; i++) {
        if (want->info[i].kind != TILE_ARG_TENSOR) continue;
        double worst = 0, worst_rel = 0;
        int64_t at = -1;
        for (int64_t e = 0; e < want->numel[i]; e++) {
            double a = want->data[i][e], b = got->data[i][e];
            double d = isnan(a) || isnan(b) ? (isnan(a) && isnan(b) ? 0 : INFINITY) : fabs(a - b);
            double excess = d - (c->atol + c->rtol * fabs(a));
            if (excess > 0 && (at < 0 || d > worst)) at = e;
            if (d > worst) worst = d;
            if (d > 0) worst_rel = fmax(worst_rel, d / fmax(fabs(a), 1e-30));
        }
        cr_log_info("%s %s.%s: max |diff| %.3g, max rel %.3g", c->kernel, what, want->info[i].name, worst, worst_rel);
        cr_assert_lt(at, 0, "%s %s: tensor %s element %lld: expected %.9g, got %.9g (atol %g, rtol %g)", c->kernel,
                     what, want->info[i].name, (long long)at, want->data[i][at], got->data[i][at], c->atol, c->rtol);
    }
}

static void check_case(const Case *c) {
    tile_program *gp, *vp;
    tile_kernel *gk = get_kernel(gpu, c, &gp), *vk = get_kernel(vm, c, &vp);
    /* Small: the GPU against the VM. */
    Run in, on_gpu, on_vm;
    make_inputs(gk, c, c->small, &in);
    launch(gpu, gk, &in, &on_gpu);
    launch(vm, vk, &in, &on_vm);
    compare(c, "vs vm", &on_vm, &on_gpu);
    run_free(&on_gpu);
    run_free(&on_vm);
    run_free(&in);
    /* Large: the GPU against the C reference. */
    make_inputs(gk, c, c->large, &in);
    launch(gpu, gk, &in, &on_gpu);
    c->reference(&in, c->large);
    compare(c, "vs C", &in, &on_gpu);
    run_free(&on_gpu);
    run_free(&in);
    tile_program_destroy(gp);
    tile_program_destroy(vp);
}

/* ---- C references (in double, on the rounded inputs; outputs rounded to their type) ---------- */
static void round_to(Run *r, int i) {
    void *packed = malloc(tile_dtype_bytes(r->info[i].dtype, r->numel[i]) + 1);
    tile_pack(r->info[i].dtype, r->data[i], r->numel[i], packed);
    tile_unpack(r->info[i].dtype, packed, r->numel[i], r->data[i]);
    free(packed);
}

static void ref_vector_add(Run *r, const Size *s) {
    int64_t n = size_of(s, "N");
    for (int64_t i = 0; i < n; i++) r->data[2][i] = r->data[0][i] + r->data[1][i];
    round_to(r, 2);
}

static void ref_softmax(Run *r, const Size *s) {
    int64_t m = size_of(s, "M"), n = size_of(s, "N");
    for (int64_t i = 0; i < m; i++) {
        const double *x = r->data[0] + i * n;
        double *y = r->data[1] + i * n, mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < n; j++) mx = fmax(mx, x[j]);
        for (int64_t j = 0; j < n; j++) sum += exp(x[j] - mx);
        for (int64_t j = 0; j < n; j++) y[j] = exp(x[j] - mx) / sum;
    }
}

static void ref_layernorm(Run *r, const Size *s) {
    int64_t m = size_of(s, "M"), n = size_of(s, "N");
    for (int64_t i = 0; i < m; i++) {
        const double *x = r->data[0] + i * n;
        double *y = r->data[3] + i * n, mean = 0, var = 0;
        for (int64_t j = 0; j < n; j++) mean += x[j];
        mean /= (double)n;
        for (int64_t j = 0; j < n; j++) var += (x[j] - mean) * (x[j] - mean);
        double rstd = 1 / sqrt(var / (double)n + r->scalar[4]);
        for (int64_t j = 0; j < n; j++) y[j] = (x[j] - mean) * rstd * r->data[1][j] + r->data[2][j];
    }
}

static void ref_sum_rows(Run *r, const Size *s) {
    int64_t m = size_of(s, "M"), n = size_of(s, "N");
    for (int64_t i = 0; i < m; i++) {
        double sum = 0;
        for (int64_t j = 0; j < n; j++) sum += r->data[0][i * n + j];
        r->data[1][i] = sum;
    }
}

static void ref_cumsum_rows(Run *r, const Size *s) {
    int64_t m = size_of(s, "M"), n = size_of(s, "N");
    for (int64_t i = 0; i < m; i++) {
        double sum = 0;
        for (int64_t j = 0; j < n; j++) r->data[1][i * n + j] = sum += r->data[0][i * n + j];
    }
}

static void ref_sum_all(Run *r, const Size *s) {
    int64_t n = size_of(s, "N");
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += r->data[0][i];
    r->data[1][0] = sum;
}

static void ref_gather_rows(Run *r, const Size *s) {
    int64_t rows = size_of(s, "R"), d = 128;
    for (int64_t i = 0; i < rows; i++) {
        int64_t row = (int64_t)r->data[1][i];
        memcpy(r->data[2] + i * d, r->data[0] + row * d, sizeof(double) * (size_t)d);
    }
}

static void ref_gemm(Run *r, const Size *s) {
    int64_t m = size_of(s, "M"), n = size_of(s, "N"), k = size_of(s, "K");
    const double *a = r->data[0], *b = r->data[1];
    double *c = r->data[2];
    for (int64_t i = 0; i < m * n; i++) c[i] = 0;
    for (int64_t i = 0; i < m; i++)
        for (int64_t kk = 0; kk < k; kk++) {
            double av = a[i * k + kk];
            const double *brow = b + kk * n;
            double *crow = c + i * n;
            for (int64_t j = 0; j < n; j++) crow[j] += av * brow[j];
        }
    round_to(r, 2);
}

/* ---- the cases --------------------------------------------------------------------------------- */
static const Case vector_add = {"stdlib/core/vector_add.tile", "vector_add", {{"N", 100003}}, {{"N", 1 << 24}},
                                ref_vector_add, -1, NULL, -1, 0, 0};
Test(kernels_gpu, vector_add) { check_case(&vector_add); }

static const Case softmax = {"stdlib/core/softmax.tile", "softmax", {{"M", 37}, {"N", 1500}},
                             {{"M", 4096}, {"N", 4096}}, ref_softmax, -1, NULL, -1, 1e-7, 1e-4};
Test(kernels_gpu, softmax) { check_case(&softmax); }

static const Case layernorm = {"stdlib/core/layernorm.tile", "layernorm", {{"M", 19}, {"N", 3000}},
                               {{"M", 4096}, {"N", 4096}}, ref_layernorm, -1, NULL, -1, 1e-4, 1e-4};
Test(kernels_gpu, layernorm) { check_case(&layernorm); }

static const Case sum_rows = {"stdlib/core/reduce.tile", "sum_rows", {{"M", 33}, {"N", 2500}},
                              {{"M", 4096}, {"N", 8192}}, ref_sum_rows, -1, NULL, -1, 1e-3, 1e-5};
Test(kernels_gpu, sum_rows) { check_case(&sum_rows); }

static const Case cumsum_rows = {"stdlib/core/reduce.tile", "cumsum_rows", {{"M", 9}, {"N", 2100}},
                                 {{"M", 1024}, {"N", 8192}}, ref_cumsum_rows, -1, NULL, -1, 2e-3, 1e-5};
Test(kernels_gpu, cumsum_rows) { check_case(&cumsum_rows); }

/* 4096 f32 atomic adds in any order into a total of magnitude ~2e3 (each rounds by ~1e-4). */
static const Case sum_all = {"stdlib/core/reduce.tile", "sum_all", {{"N", 300001}}, {{"N", 1 << 24}},
                             ref_sum_all, -1, NULL, 1, 1.0, 1e-5};
Test(kernels_gpu, sum_all) { check_case(&sum_all); }

static const Case gather_rows = {"stdlib/core/gather.tile", "gather_rows", {{"V", 77}, {"R", 301}},
                                 {{"V", 50000}, {"R", 1 << 17}}, ref_gather_rows, 1, "V", -1, 0, 0};
Test(kernels_gpu, gather_rows) { check_case(&gather_rows); }

/* bf16 output: one rounding of the result (2^-8 relative) plus f32 accumulation over K. */
static const Case gemm = {"stdlib/core/gemm.tile", "gemm", {{"M", 130}, {"N", 70}, {"K", 200}},
                          {{"M", 1024}, {"N", 1024}, {"K", 1024}}, ref_gemm, -1, NULL, -1, 2e-2, 8e-3};
Test(kernels_gpu, gemm) { check_case(&gemm); }

/* Tiles whose size is not a power of two: an odd number of elements per thread, loaded and
 * stored by predicated scalar accesses (test_codegen_odd.c checks their structure). */
static void check_case_with(const Case *c, const tile_constant *k, size_t n) {
    case_consts = k, case_nconsts = n;
    check_case(c);
    case_consts = NULL, case_nconsts = 0;
}

static const Case softmax_255 = {"stdlib/core/softmax.tile", "softmax", {{"M", 37}, {"N", 1500}},
                                 {{"M", 1024}, {"N", 1000}}, ref_softmax, -1, NULL, -1, 1e-7, 1e-4};
Test(kernels_gpu, softmax_odd_tile) {
    tile_constant k[] = {{.name = "BN", .i = 255}};
    check_case_with(&softmax_255, k, sizeof k / sizeof *k);
}

static const Case softmax_127 = {"stdlib/core/softmax.tile", "softmax", {{"M", 37}, {"N", 100}},
                                 {{"M", 1024}, {"N", 127}}, ref_softmax, -1, NULL, -1, 1e-7, 1e-4};
Test(kernels_gpu, softmax_odd_tile_one_pass) {
    tile_constant k[] = {{.name = "BN", .i = 127}, {.name = "BM", .i = 2}};
    check_case_with(&softmax_127, k, sizeof k / sizeof *k);
}

static const Case layernorm_255 = {"stdlib/core/layernorm.tile", "layernorm", {{"M", 19}, {"N", 1001}},
                                   {{"M", 512}, {"N", 3000}}, ref_layernorm, -1, NULL, -1, 1e-4, 1e-4};
Test(kernels_gpu, layernorm_odd_tile) {
    tile_constant k[] = {{.name = "BN", .i = 255}};
    check_case_with(&layernorm_255, k, sizeof k / sizeof *k);
}

static const Case sum_rows_127 = {"stdlib/core/reduce.tile", "sum_rows", {{"M", 33}, {"N", 2500}},
                                  {{"M", 512}, {"N", 1000}}, ref_sum_rows, -1, NULL, -1, 1e-3, 1e-5};
Test(kernels_gpu, sum_rows_odd_tile) {
    tile_constant k[] = {{.name = "BN", .i = 127}};
    check_case_with(&sum_rows_127, k, sizeof k / sizeof *k);
}

static const Case cumsum_rows_255 = {"stdlib/core/reduce.tile", "cumsum_rows", {{"M", 9}, {"N", 2100}},
                                     {{"M", 256}, {"N", 1000}}, ref_cumsum_rows, -1, NULL, -1, 2e-3, 1e-5};
Test(kernels_gpu, cumsum_rows_odd_tile) {
    tile_constant k[] = {{.name = "BN", .i = 255}};
    check_case_with(&cumsum_rows_255, k, sizeof k / sizeof *k);
}

static const Case vector_add_255 = {"stdlib/core/vector_add.tile", "vector_add", {{"N", 100003}}, {{"N", 1000001}},
                                    ref_vector_add, -1, NULL, -1, 0, 0};
Test(kernels_gpu, vector_add_odd_tile) {
    tile_constant k[] = {{.name = "BLOCK", .i = 255}};
    check_case_with(&vector_add_255, k, sizeof k / sizeof *k);
}

static const Case gemm_odd = {"stdlib/core/gemm.tile", "gemm", {{"M", 130}, {"N", 70}, {"K", 200}},
                              {{"M", 256}, {"N", 300}, {"K", 256}}, ref_gemm, -1, NULL, -1, 2e-2, 8e-3};
Test(kernels_gpu, gemm_odd_tile) {
    tile_constant k[] = {{.name = "BN", .i = 255}, {.name = "BM", .i = 64}};
    check_case_with(&gemm_odd, k, sizeof k / sizeof *k);
}

static void ref_copy_widths(Run *r, const Size *s) {
    int64_t n = size_of(s, "N");
    for (int64_t i = 0; i < n; i++) {
        r->data[7][i] = r->data[0][i] + 1;
        r->data[8][i] = r->data[1][i] * 2;
        r->data[9][i] = r->data[2][i] * 2;
        r->data[10][i] = r->data[3][i] - 3;
        r->data[11][i] = r->data[4][i] != 0 ? 0 : 1;
        r->data[12][i] = r->data[5][i] + 1;
        r->data[13][i] = r->data[6][i] * 0.5;
    }
    for (int k = 7; k < 14; k++) round_to(r, k);
}

static void ref_store_positive(Run *r, const Size *s) {
    int64_t n = size_of(s, "N");
    for (int64_t i = 0; i < n; i++)
        if (r->data[0][i] > 0) r->data[1][i] = r->data[0][i];
}

/* i8, bf16, f32, i64, bool, f16 and f64 through tiles of 255 (predicated 1-, 2-, 4- and 8-byte
 * accesses) and of 2^k elements; exact, as each output is one rounding of one input. */
static const Case copy_widths = {"tests/gpu/odd_tiles.tile", "copy_widths", {{"N", 1000}}, {{"N", 300007}},
                                 ref_copy_widths, -1, NULL, -1, 0, 0};
Test(kernels_gpu, odd_tile_every_width) {
    check_case(&copy_widths);
    tile_constant k[] = {{.name = "B", .i = 256}};
    check_case_with(&copy_widths, k, 1);
}

/* A masked store on an odd tile (predicated) and on tiles of 2^k (vector groups). */
static const Case store_positive = {"tests/gpu/odd_tiles.tile", "store_positive", {{"N", 1000}}, {{"N", 300007}},
                                    ref_store_positive, -1, NULL, -1, 0, 0};
Test(kernels_gpu, masked_store_odd_and_vectorized) {
    check_case(&store_positive);
    tile_constant k[] = {{.name = "B", .i = 1024}};
    check_case_with(&store_positive, k, 1);
}

/* Launches on two streams of the GPU context, each synchronized on its own. */
Test(kernels_gpu, streams) {
    char path[1024];
    snprintf(path, sizeof path, "%s/stdlib/core/vector_add.tile", TILE_SOURCE_DIR);
    tile_program *prog;
    tile_kernel *k;
    cr_assert_eq(tile_program_from_file(gpu, path, &prog), TILE_OK, "%s", tile_context_message(gpu));
    cr_assert_eq(tile_program_get_kernel(prog, "vector_add", NULL, 0, &k), TILE_OK, "%s", tile_context_message(gpu));
    enum { N = 1 << 20 };
    float *h = malloc(sizeof(float) * N), *out = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) h[i] = (float)uniform();
    void *x, *y[2];
    cr_assert_eq(tile_alloc(gpu, sizeof(float) * N, &x), TILE_OK);
    tile_copy_to_device(gpu, x, h, sizeof(float) * N);
    tile_stream *s[2];
    int64_t n = N;
    for (int j = 0; j < 2; j++) {
        cr_assert_eq(tile_alloc(gpu, sizeof(float) * N, &y[j]), TILE_OK);
        cr_assert_eq(tile_stream_create(gpu, &s[j]), TILE_OK, "%s", tile_context_message(gpu));
        /* y = x + x on stream 0, then y = y + x twice more on stream 1 (in order on it) */
        tile_arg args[3] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, x, 1, &n)},
                            {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, x, 1, &n)},
                            {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, y[j], 1, &n)}};
        cr_assert_eq(tile_kernel_launch(k, args, 3, s[j]), TILE_OK, "%s", tile_context_message(gpu));
        if (j == 1) {
            args[0].tensor.data = y[j];
            for (int r = 0; r < 2; r++) cr_assert_eq(tile_kernel_launch(k, args, 3, s[j]), TILE_OK);
        }
    }
    for (int j = 0; j < 2; j++) {
        cr_assert_eq(tile_stream_synchronize(s[j]), TILE_OK, "%s", tile_context_message(gpu));
        tile_copy_to_host(gpu, out, y[j], sizeof(float) * N);
        for (int i = 0; i < N; i += 997) {
            float want = j == 0 ? h[i] + h[i] : ((h[i] + h[i]) + h[i]) + h[i];
            cr_assert_eq(out[i], want, "stream %d element %d: %g vs %g", j, i, out[i], want);
        }
        tile_stream_destroy(s[j]);
        tile_free(gpu, y[j]);
    }
    tile_free(gpu, x);
    free(h), free(out);
    tile_program_destroy(prog);
}
