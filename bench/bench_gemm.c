/*
 * bench_gemm: the standard library's GEMMs (bf16 inputs, f32 accumulation, bf16 result; FP8)
 * against cuBLAS (and torch._scaled_mm) in one run, written as bench/results/<name>.json (schema
 * in bench/RESULTS.md).
 *
 *   bench_gemm [--out FILE] [--repo DIR] [--quick] [--anchor FILE] [--compile FILE]
 *              [--kernel all|gemm|persistent|persistent-flat|pingpong|splitk|shapes|fp8]
 *
 * --kernel all (the default; bench/results/gemm.json) is the table of the Hopper GEMM work, one
 * row per case named "gemm bf16 MxNxK" as a caller of the library gets it: bf16 2048^3, 4096^3,
 * 8192^3, the LLM shapes M = 4096 with (N, K) = (14336, 4096), (4096, 14336), (128256, 4096), the
 * decode shapes M = 1, 16, 128 with N = K = 8192 (gemm.tile without constants, its autotune list
 * choosing at the first launch; at most 64 rows with few tiles, gemm_splitk.tile with its rule's
 * S; each row's "config" says which; from Python that is tile.stdlib.gemm_splitk, with S from
 * tile_context_num_sms), then FP8 as --kernel fp8 (anchors from --anchor), and the
 * cold JIT of the GEMM against Triton's cold compile taken from bench_compile.py's results
 * (--compile FILE; run both scripts in the same session):
 *
 *   python3 bench/bench_fp8_anchor.py A.json
 *   PYTHONPATH=python python3 bench/bench_compile.py --out C.json
 *   bench_gemm --anchor A.json --compile C.json
 *
 * --kernel gemm (bench/results/gemm-tiles.json): M = N = K in {2048, 4096, 8192} (--quick: 2048
 * only) the tiles BM = BN = 128, BK = 64, 4 warps, 3 stages (gemm.tile's second candidate) and
 * gemm.tile's defaults (the same tile, 8 warps, 5 stages) run, and at 4096 and 8192 other tile
 * shapes, all given as constants. cuBLAS is
 * opened with dlopen (libcublas.so from the system or /usr/local/cuda/lib64) and runs
 * cublasGemmEx with bf16 A, B and C and CUBLAS_COMPUTE_32F; our matrices are row-major, so
 * cuBLAS (column-major) computes C^T = B^T A^T: the operands are swapped, no copies. Inputs are
 * random bf16 in [-1, 1]; before anything is timed the two results are compared with each other
 * everywhere and with a double-precision reference at sampled entries. Both are timed with CUDA
 * events on the same (default) stream of the same context: 3 warm-up runs, then the median of
 * 10. TFLOP/s = 2 M N K / t; ratio = ours / cuBLAS. Without a GPU it says so and exits 0.
 *
 * --kernel persistent (persistent-flat) runs gemm_persistent (gemm_persistent_flat) of
 * stdlib/core/gemm_persistent.tile (grid(min(num_sms(), tiles))) in place of gemm.tile, same
 * sizes and tiles, rows named "... persistent" ("... persistent-flat"). --kernel pingpong runs
 * gemm_persistent_pingpong (the ping-pong warp roles on sm_90a: a TMA producer warpgroup, two
 * consumer warpgroups taking turns; BM = BN = 128, BK = 64, W = 4, STAGES 4, and at 4096 also 3
 * and 5) beside gemm_persistent and gemm.tile (BN = 128 W = 4 S = 4, BN = 256 W = 8 S = 3) at the
 * same sizes, rows "... pingpong", "... persistent" and the plain gemm rows, those marked
 * "cooperative" when TILE_WARP_SPECIALIZE=1 is set (gemm.tile's loop then gets the cooperative
 * warp roles), so that one run compares the two schedules with cuBLAS. --kernel splitk runs
 * the decode shapes M = 1, 16, 128 with N = K = 8192 through stdlib/core/gemm_splitk.tile
 * (partial + reduce, both timed) for S = 1, 2, 4, 8, 16 and the S of the rule in that file from
 * the device's SM count, rows "gemm bf16 MxNxK splitk S=.. BM=..", the rule's marked "(rule)".
 * --kernel shapes runs gemm.tile at the LLM shapes M = 4096, (N, K) = (4096, 4096), (14336, 4096),
 * (4096, 14336), (128256, 4096), and the decode shapes M = 1, 16, 128 with N = K = 8192 (bench_shapes).
 * --kernel fp8 runs stdlib/core/gemm_fp8.tile at M = N = K = 4096 and 8192 (--quick: 4096):
 * gemm_fp8 (per-tensor scales) and gemm_fp8_block (DeepSeek block scales), f8e4m3 inputs (random
 * in [-1, 1], B given [N, K]), bf16 result, rows "gemm fp8e4m3 SxSxS" and "... block-scaled",
 * each checked against a double reference at sampled entries (and for unwritten entries) before
 * it is timed. torch._scaled_mm cannot be called from C: bench/bench_fp8_anchor.py measures it at
 * the same shapes (run it in the same session) and `--anchor FILE` takes its rows as the anchors.
 * Without --out, --kernel all writes bench/results/gemm.json, gemm gemm-tiles.json, another
 * gemm-KERNEL.json.
 */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/cuda.h"
#include "runtime/runtime.h"
#include "bench.h"

static void die(tile_context *ctx, const char *what, tile_status st) { bench_die("bench_gemm", ctx, what, st); }

#define CUBLAS_ANCHOR "cuBLAS cublasGemmEx bf16, f32 compute (same run)"

static void add_row(const char *name, double ours, double anchor, const char *anchor_name) {
    bench_add_row(name, "TFLOP/s", ours, anchor > 0 ? anchor : -1, anchor_name, true);
}

/* ---- cuBLAS through dlopen ------------------------------------------------------------------- */
enum { CUBLAS_OP_N = 0, CUDA_R_16BF = 14, CUBLAS_COMPUTE_32F = 68, CUBLAS_GEMM_DEFAULT = -1 };
typedef int (*CublasCreateFn)(void **handle);
typedef int (*CublasDestroyFn)(void *handle);
typedef int (*CublasGemmExFn)(void *handle, int transa, int transb, int m, int n, int k, const void *alpha,
                              const void *a, int atype, int lda, const void *b, int btype, int ldb, const void *beta,
                              void *c, int ctype, int ldc, int compute, int algo);

typedef struct Cublas {
    void *lib, *handle;
    CublasDestroyFn destroy;
    CublasGemmExFn gemm;
} Cublas;

static bool cublas_open(Cublas *cb) {
    static const char *names[] = {"libcublas.so", "libcublas.so.13", "libcublas.so.12",
                                  "/usr/local/cuda/lib64/libcublas.so", "/usr/local/cuda/lib/libcublas.so"};
    memset(cb, 0, sizeof *cb);
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !cb->lib; i++) cb->lib = dlopen(names[i], RTLD_NOW);
    if (!cb->lib) {
        printf("cuBLAS not found (%s): no anchor\n", dlerror());
        return false;
    }
    CublasCreateFn create;
    *(void **)&create = dlsym(cb->lib, "cublasCreate_v2");
    *(void **)&cb->destroy = dlsym(cb->lib, "cublasDestroy_v2");
    *(void **)&cb->gemm = dlsym(cb->lib, "cublasGemmEx");
    int st = create && cb->destroy && cb->gemm ? create(&cb->handle) : -1;
    if (st != 0) {
        printf("cuBLAS: cublasCreate failed (%d): no anchor\n", st);
        dlclose(cb->lib);
        cb->lib = NULL;
        return false;
    }
    return true;
}

static void cublas_close(Cublas *cb) {
    if (!cb->lib) return;
    cb->destroy(cb->handle);
    dlclose(cb->lib);
}

/* ---- the runs ---------------------------------------------------------------------------------- */
typedef struct Gpu {
    tile_context *ctx;
    CudaDevice *dev;
    CudaEvent *start, *stop;
    Cublas cublas;
} Gpu;

typedef struct Problem {
    int64_t m, n, k;
    void *a, *b, *c, *ref; /* device; c ours, ref cuBLAS's */
    uint16_t *ha, *hb;     /* host bf16 inputs */
} Problem;

/* One launch of one of our kernels (gemm: a, b, c; gemm_fp8: a, b, c, scale_a, scale_b). */
typedef struct Ours {
    tile_kernel *kernel;
    tile_arg args[5];
    uint32_t nargs;
} Ours;

static void run_ours(Gpu *g, void *p) {
    Ours *o = p;
    tile_status st = tile_kernel_launch(o->kernel, o->args, o->nargs, NULL);
    if (st != TILE_OK) die(g->ctx, "launch", st);
}

/* NaN everywhere in `count` bf16 entries of device memory (0xffff), so that an entry the kernel
 * leaves unwritten fails the check. */
static void poison_bf16(Gpu *g, void *ptr, int64_t count) {
    Strbuf err = {0};
    if (cuda_memset(g->dev, (CudaPtr)(uintptr_t)ptr, 0xff, (size_t)count * 2, &err) != TILE_OK) {
        fprintf(stderr, "bench_gemm: memset: %s\n", sb_str(&err));
        exit(1);
    }
    sb_free(&err);
}

static void run_cublas(Gpu *g, void *p) {
    Problem *pr = p;
    float one = 1, zero = 0;
    /* row-major C = A B is column-major C^T = B^T A^T: m = N, n = M, first operand b (ld N) */
    int st = g->cublas.gemm(g->cublas.handle, CUBLAS_OP_N, CUBLAS_OP_N, (int)pr->n, (int)pr->m, (int)pr->k, &one,
                            pr->b, CUDA_R_16BF, (int)pr->n, pr->a, CUDA_R_16BF, (int)pr->k, &zero, pr->ref,
                            CUDA_R_16BF, (int)pr->n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (st != 0) {
        fprintf(stderr, "bench_gemm: cublasGemmEx failed (%d)\n", st);
        exit(1);
    }
}

static double event_ms(Gpu *g, void (*body)(Gpu *, void *), void *arg) {
    Strbuf err = {0};
    cuda_event_record(g->dev, g->start, NULL, &err);
    body(g, arg);
    cuda_event_record(g->dev, g->stop, NULL, &err);
    float ms = 0;
    if (cuda_event_elapsed_ms(g->dev, g->start, g->stop, &ms, &err) != TILE_OK) {
        fprintf(stderr, "bench_gemm: events: %s\n", sb_str(&err));
        exit(1);
    }
    sb_free(&err);
    return ms;
}

static double timed_ms(Gpu *g, void (*body)(Gpu *, void *), void *arg) {
    double t[10];
    for (int r = 0; r < 3; r++) event_ms(g, body, arg);
    for (int r = 0; r < 10; r++) t[r] = event_ms(g, body, arg);
    return bench_median(t, 10);
}

static void *device_bf16(Gpu *g, int64_t n, unsigned seed, uint16_t **host) {
    size_t bytes = (size_t)n * 2;
    uint16_t *h = malloc(bytes);
    double *d = malloc((size_t)n * sizeof(double));
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        d[i] = (double)(s >> 11) / 9007199254740992.0 * 2 - 1;
    }
    tile_pack(TILE_BF16, d, n, h);
    free(d);
    void *p;
    tile_status st = tile_alloc(g->ctx, bytes, &p);
    if (st != TILE_OK) die(g->ctx, "alloc", st);
    if (host) {
        tile_copy_to_device(g->ctx, p, h, bytes);
        *host = h;
    } else {
        free(h);
    }
    return p;
}

static double bf16_value(uint16_t x) {
    double v;
    tile_unpack(TILE_BF16, &x, 1, &v);
    return v;
}

/* Ours against cuBLAS everywhere (outputs of more than 2^26 entries: every 7th row, so the LLM
 * shapes check in seconds), both against a double reference at sampled entries. */
static void check(Gpu *g, const Problem *p, const char *what) {
    size_t n = (size_t)(p->m * p->n);
    uint16_t *c = malloc(n * 2), *r = malloc(n * 2);
    tile_synchronize(g->ctx);
    tile_copy_to_host(g->ctx, c, p->c, n * 2);
    double scale = sqrt((double)p->k / 9.0); /* the spread of a sum of k products of U(-1, 1) */
    if (g->cublas.lib) {
        tile_copy_to_host(g->ctx, r, p->ref, n * 2);
        size_t row_step = n > ((size_t)1 << 26) ? 7 : 1;
        for (size_t i = 0; i < n; i++) {
            if (row_step > 1 && (i / (size_t)p->n) % row_step) {
                i += (size_t)p->n - 1 - i % (size_t)p->n; /* the rest of a skipped row */
                continue;
            }
            double x = bf16_value(c[i]), y = bf16_value(r[i]);
            if (!(fabs(x - y) <= 1e-2 * fabs(y) + 1e-2 * scale)) {
                fprintf(stderr, "bench_gemm: %s: ours %g, cuBLAS %g at [%zu, %zu]\n", what, x, y, i / (size_t)p->n,
                        i % (size_t)p->n);
                exit(1);
            }
        }
    }
    uint64_t s = 12345;
    for (int t = 0; t < 64; t++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        int64_t i = (int64_t)((s >> 20) % (uint64_t)p->m), j = (int64_t)((s >> 40) % (uint64_t)p->n);
        double want = 0;
        for (int64_t k = 0; k < p->k; k++) want += bf16_value(p->ha[i * p->k + k]) * bf16_value(p->hb[k * p->n + j]);
        double x = bf16_value(c[i * p->n + j]);
        if (!(fabs(x - want) <= 1e-2 * fabs(want) + 1e-2 * scale)) {
            fprintf(stderr, "bench_gemm: %s: ours %g, reference %g at [%lld, %lld]\n", what, x, want, (long long)i,
                    (long long)j);
            exit(1);
        }
    }
    free(c);
    free(r);
}

static char repo[1024] = ".";
static const char *kernel_choice = "all"; /* --kernel: all, gemm, persistent, persistent-flat, pingpong, splitk, shapes or fp8 */
static const char *anchor_file;            /* --anchor: bench_fp8_anchor.py's results */

/* The stdlib kernel that --kernel KIND runs: gemm of gemm.tile, or one of gemm_persistent.tile. */
static const char *kernel_name(const char *kind) {
    return strcmp(kind, "persistent-flat") == 0 ? "gemm_persistent_flat"
           : strcmp(kind, "persistent") == 0    ? "gemm_persistent"
           : strcmp(kind, "pingpong") == 0      ? "gemm_persistent_pingpong"
                                                : "gemm";
}

/* kname of gemm.tile (gemm) or gemm_persistent.tile on p with the constants c (nc = 0: the kernel's
 * autotune list chooses, timing its candidates at the first launch; *chosen then names the
 * winner), checked, then timed: TFLOP/s. */
static double bench_ours(Gpu *g, Problem *p, const char *kname, const tile_constant *c, size_t nc, char *chosen,
                         size_t chosen_size) {
    char path[1200];
    snprintf(path, sizeof path, "%s/stdlib/core/%s", repo, strcmp(kname, "gemm") ? "gemm_persistent.tile" : "gemm.tile");
    tile_program *prog;
    tile_kernel *k;
    tile_status st = tile_program_from_file(g->ctx, path, &prog);
    if (st != TILE_OK || (st = tile_program_get_kernel(prog, kname, c, nc, &k)) != TILE_OK) die(g->ctx, kname, st);
    int64_t sa[2] = {p->m, p->k}, sb[2] = {p->k, p->n}, sc[2] = {p->m, p->n};
    Ours o = {.kernel = k,
              .args = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, p->a, 2, sa)},
                       {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, p->b, 2, sb)},
                       {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, p->c, 2, sc)}},
              .nargs = 3};
    poison_bf16(g, p->c, p->m * p->n);
    run_ours(g, &o);
    char what[160];
    int at = snprintf(what, sizeof what, "%s %lldx%lldx%lld", kname, (long long)p->m, (long long)p->n, (long long)p->k);
    for (size_t i = 0; i < nc && at < (int)sizeof what; i++)
        at += snprintf(what + at, sizeof what - (size_t)at, " %s=%lld", c[i].name, (long long)c[i].i);
    check(g, p, what);
    double ms = timed_ms(g, run_ours, &o);
    if (chosen) {
        char *report = NULL;
        const char *line = tile_kernel_autotune_report(k, &report) == TILE_OK && report
                               ? strstr(report, "chose candidate ") : NULL;
        snprintf(chosen, chosen_size, "%s", line ? line + 6 : "no autotune report");
        chosen[strcspn(chosen, "\n")] = 0;
        tile_string_free(report);
    }
    tile_program_destroy(prog);
    return 2.0 * (double)p->m * (double)p->n * (double)p->k / (ms * 1e-3) / 1e12;
}

/* The tiles of row t of `tiles` as gemm.tile's constants (5 of them). */
static size_t tile_constants(const int64_t t[5], tile_constant c[5]) {
    static const char *names[5] = {"BM", "BN", "BK", "W", "STAGES"};
    for (int i = 0; i < 5; i++) c[i] = (tile_constant){.name = names[i], .i = t[i]};
    return 5;
}

/* Random bf16 inputs for C[m, n] = A[m, k] @ B[k, n], and cuBLAS's TFLOP/s on them (-1 without
 * cuBLAS; its result stays in p->ref for check). */
static double problem_new(Gpu *g, Problem *p, int64_t m, int64_t n, int64_t k) {
    *p = (Problem){.m = m, .n = n, .k = k};
    p->a = device_bf16(g, p->m * p->k, 1, &p->ha);
    p->b = device_bf16(g, p->k * p->n, 2, &p->hb);
    p->c = device_bf16(g, p->m * p->n, 3, NULL);
    p->ref = device_bf16(g, p->m * p->n, 4, NULL);
    if (!g->cublas.lib) return -1;
    run_cublas(g, p);
    return 2.0 * (double)m * (double)n * (double)k / (timed_ms(g, run_cublas, p) * 1e-3) / 1e12;
}

static void problem_free(Gpu *g, Problem *p) {
    tile_free(g->ctx, p->a), tile_free(g->ctx, p->b), tile_free(g->ctx, p->c), tile_free(g->ctx, p->ref);
    free(p->ha), free(p->hb);
}

/* BM, BN, BK, warps, stages */
static const int64_t tiles[][5] = {{128, 128, 64, 4, 3}, {128, 128, 64, 8, 3}, {128, 256, 64, 8, 3},
                                   {128, 128, 32, 4, 4}, {128, 256, 32, 8, 4}, {256, 128, 32, 8, 4},
                                   {128, 128, 32, 8, 4}, {64, 128, 64, 4, 4}, {128, 64, 64, 4, 6},
                                   {128, 128, 64, 4, 4}, {128, 128, 64, 4, 5}, {128, 128, 64, 8, 5}};
enum { DEFAULT_TILES = 11 }; /* gemm.tile's defaults (its first candidate) */

/* One row to measure: a kernel kind (--kernel's words: gemm, persistent, persistent-flat,
 * pingpong) and its tiles (an index into tiles). */
typedef struct Row {
    const char *kind;
    int tiles;
} Row;

/* C[m, n] = A[m, k] @ B[k, n] for each row of `which` (ended by a NULL kind), against cuBLAS at
 * the same shape. */
static void bench_shape(Gpu *g, int64_t m, int64_t n, int64_t k, const Row *which) {
    Problem p;
    double anchor = problem_new(g, &p, m, n, k);
    /* gemm.tile's loop gets the cooperative warp roles under TILE_WARP_SPECIALIZE=1 (lang/SPEC.md 4.4) */
    const char *ws = getenv("TILE_WARP_SPECIALIZE");
    bool cooperative = ws && strcmp(ws, "1") == 0;
    for (const Row *w = which; w->kind; w++) {
        int t = w->tiles;
        tile_constant c[5];
        double ours = bench_ours(g, &p, kernel_name(w->kind), c, tile_constants(tiles[t], c), NULL, 0);
        char name[160];
        snprintf(name, sizeof name, "gemm bf16 %lldx%lldx%lld BM=%lld BN=%lld BK=%lld W=%lld S=%lld%s%s%s", (long long)m,
                 (long long)n, (long long)k, (long long)tiles[t][0], (long long)tiles[t][1],
                 (long long)tiles[t][2], (long long)tiles[t][3], (long long)tiles[t][4],
                 strcmp(w->kind, "gemm") ? " " : "", strcmp(w->kind, "gemm") ? w->kind : "",
                 cooperative && strcmp(w->kind, "gemm") == 0 ? " cooperative" : "");
        add_row(name, ours, anchor, CUBLAS_ANCHOR);
    }
    problem_free(g, &p);
}

static void bench_size(Gpu *g, int64_t size, bool variants) {
    if (strcmp(kernel_choice, "pingpong") == 0) {
        /* the ping-pong schedule beside the kernels it is measured against: the persistent kernel
         * without roles, gemm.tile (cooperative roles under TILE_WARP_SPECIALIZE=1) */
        static const Row all[] = {{"pingpong", 9}, {"pingpong", 0}, {"pingpong", 10}, {"persistent", 9},
                                  {"gemm", 9},     {"gemm", 2},     {NULL, 0}},
                         first[] = {{"pingpong", 9}, {"persistent", 9}, {"gemm", 9}, {"gemm", 2}, {NULL, 0}};
        bench_shape(g, size, size, size, variants ? all : first);
        return;
    }
    Row rows[9] = {{kernel_choice, 0}, {kernel_choice, DEFAULT_TILES}, {NULL, 0}};
    for (int t = 1; variants && t < 7; t++) rows[t + 1] = (Row){kernel_choice, t};
    bench_shape(g, size, size, size, rows);
}

/* --kernel shapes: the LLM shapes M = 4096 with (N, K) = (4096, 4096), (14336, 4096), (4096, 14336),
 * (128256, 4096), and the decode shapes M = 1, 16, 128 with N = K = 8192, in 128 x 128 tiles of 4 warps
 * (LLM shapes also at gemm.tile's defaults: 8 warps, 5 stages),
 * BN = 256 with 8 warps, and (decode) BM = 64, and BN = 64 with 6 stages: at M = 128 one block per
 * SM (128 tiles) that reads B exactly once, its latency hidden by the deeper ring. */
static void bench_shapes(Gpu *g) {
    static const int64_t llm[][2] = {{4096, 4096}, {14336, 4096}, {4096, 14336}, {128256, 4096}};
    static const Row big[] = {{"gemm", 0}, {"gemm", DEFAULT_TILES}, {"gemm", 2}, {NULL, 0}},
                     small[] = {{"gemm", 0}, {"gemm", 7}, {"gemm", 8}, {NULL, 0}};
    for (int i = 0; i < 4; i++) bench_shape(g, 4096, llm[i][0], llm[i][1], big);
    static const int64_t decode_m[] = {1, 16, 128};
    for (int i = 0; i < 3; i++) bench_shape(g, decode_m[i], 8192, 8192, small);
}

/* ---- split-K at decode shapes (--kernel splitk) ---- */
typedef struct SplitK {
    tile_kernel *partial, *reduce;
    tile_arg pargs[3], rargs[2];
} SplitK;

static void run_splitk(Gpu *g, void *p) {
    SplitK *s = p;
    tile_status st = tile_kernel_launch(s->partial, s->pargs, 3, NULL);
    if (st == TILE_OK) st = tile_kernel_launch(s->reduce, s->rargs, 2, NULL);
    if (st != TILE_OK) die(g->ctx, "split-K launch", st);
}

/* The rule of stdlib/core/gemm_splitk.tile: max(1, min(2 * num_sms / tiles, k_tiles / 4, 16)).
 * python/tile/stdlib.py (_gemm_splits, for tile.stdlib.gemm_splitk) has the same rule, with
 * splitk_bm's BM for m <= 64 and bench_library's m <= 64: change both together. */
static int64_t splitk_rule(int64_t sms, int64_t tiles, int64_t k_tiles) {
    int64_t s = 2 * sms / tiles;
    if (s > k_tiles / 4) s = k_tiles / 4;
    if (s > 16) s = 16;
    return s < 1 ? 1 : s;
}

/* M x 8192 x 8192 by gemm_splitk.tile against cuBLAS, for S = 1, 2, 4, 8, 16 and the rule's S
 * (its row says "rule"), so that one run shows whether the rule picks well; at M > 64 also with
 * BN = 256 and 8 warps (half the tiles, so each block re-reads A for twice the columns of B). */
static void bench_splitk_tiles(Gpu *g, int64_t m, int64_t bn, int64_t warps);

static void bench_splitk(Gpu *g, int64_t m) {
    bench_splitk_tiles(g, m, 128, 4);
    if (m > 64) bench_splitk_tiles(g, m, 256, 8);
}

/* gemm_splitk.tile's two kernels for these tiles (prog holds them). */
static void splitk_open(Gpu *g, SplitK *s, tile_program **prog, int64_t bm, int64_t bn, int64_t warps) {
    char path[1200];
    snprintf(path, sizeof path, "%s/stdlib/core/gemm_splitk.tile", repo);
    tile_constant c[4] = {{.name = "BM", .i = bm}, {.name = "BN", .i = bn}, {.name = "BK", .i = 64},
                          {.name = "W", .i = warps}};
    *s = (SplitK){0};
    tile_status st = tile_program_from_file(g->ctx, path, prog);
    if (st != TILE_OK || (st = tile_program_get_kernel(*prog, "gemm_splitk_partial", c, 4, &s->partial)) != TILE_OK ||
        (st = tile_program_get_kernel(*prog, "gemm_splitk_reduce", NULL, 0, &s->reduce)) != TILE_OK)
        die(g->ctx, "gemm_splitk", st);
}

/* The split-K GEMM with `splits` splits on p (its own f32 workspace), checked, then timed (both
 * launches): TFLOP/s. */
static double splitk_tflops(Gpu *g, Problem *p, SplitK *s, int64_t splits) {
    void *w;
    tile_status st = tile_alloc(g->ctx, (size_t)(splits * p->m * p->n) * 4, &w);
    if (st != TILE_OK) die(g->ctx, "alloc", st);
    int64_t sa[2] = {p->m, p->k}, sb[2] = {p->k, p->n}, sc[2] = {p->m, p->n}, sw[3] = {splits, p->m, p->n};
    s->pargs[0] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, p->a, 2, sa)};
    s->pargs[1] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, p->b, 2, sb)};
    s->pargs[2] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, w, 3, sw)};
    s->rargs[0] = s->pargs[2];
    s->rargs[1] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, p->c, 2, sc)};
    poison_bf16(g, p->c, p->m * p->n);
    run_splitk(g, s);
    char what[96];
    snprintf(what, sizeof what, "gemm %lldx%lldx%lld splitk S=%lld", (long long)p->m, (long long)p->n, (long long)p->k,
             (long long)splits);
    check(g, p, what);
    double tflops = 2.0 * (double)p->m * (double)p->n * (double)p->k / (timed_ms(g, run_splitk, s) * 1e-3) / 1e12;
    tile_free(g->ctx, w);
    return tflops;
}

/* The BM of the split-K kernel for m rows: the smallest of 16, 64, 128 that holds them. */
static int64_t splitk_bm(int64_t m) { return m <= 16 ? 16 : m <= 64 ? 64 : 128; }

static void bench_splitk_tiles(Gpu *g, int64_t m, int64_t bn, int64_t warps) {
    Problem p;
    double anchor = problem_new(g, &p, m, 8192, 8192);
    int64_t bm = splitk_bm(m);
    int64_t tiles = ((m + bm - 1) / bm) * ((p.n + bn - 1) / bn);
    int64_t rule = splitk_rule(cuda_device_multiprocessors(g->dev), tiles, (p.k + 63) / 64);
    tile_program *prog;
    SplitK s;
    splitk_open(g, &s, &prog, bm, bn, warps);
    int64_t tried[6] = {1, 2, 4, 8, 16, rule};
    for (int i = 0; i < 6; i++) {
        int64_t splits = tried[i];
        if (i == 5 && (rule & (rule - 1)) == 0 && rule <= 16) break; /* already timed as a power of two */
        double ours = splitk_tflops(g, &p, &s, splits);
        char tiling[48] = "", name[128];
        if (bn != 128) snprintf(tiling, sizeof tiling, " BN=%lld W=%lld", (long long)bn, (long long)warps);
        snprintf(name, sizeof name, "gemm bf16 %lldx%lldx%lld splitk S=%lld BM=%lld%s%s", (long long)p.m,
                 (long long)p.n, (long long)p.k, (long long)splits, (long long)bm, tiling,
                 splits == rule ? " (rule)" : "");
        add_row(name, ours, anchor, CUBLAS_ANCHOR);
    }
    tile_program_destroy(prog);
    problem_free(g, &p);
}

/* ---- the table (--kernel all, the default) ---------------------------------------------- */
/* C[m, n] = A[m, k] @ B[k, n] as the standard library does it, one row "gemm bf16 MxNxK": at most
 * 64 rows with few tiles (the rule of gemm_splitk.tile gives S > 1 at BN = 128), the split-K kernel
 * with the rule's S; otherwise gemm.tile as a caller gets it without constants, its autotune list
 * choosing at the first launch (TILE_AUTOTUNE=0: the first candidate). The row's config says which. */
static void bench_library(Gpu *g, int64_t m, int64_t n, int64_t k) {
    Problem p;
    double anchor = problem_new(g, &p, m, n, k), ours;
    int64_t bm = splitk_bm(m), tiles = ((m + bm - 1) / bm) * ((n + 127) / 128);
    int64_t rule = splitk_rule(cuda_device_multiprocessors(g->dev), tiles, (k + 63) / 64);
    char config[128], name[96];
    if (m <= 64 && rule > 1) {
        tile_program *prog;
        SplitK s;
        splitk_open(g, &s, &prog, bm, 128, 4);
        ours = splitk_tflops(g, &p, &s, rule);
        snprintf(config, sizeof config, "gemm_splitk.tile S=%lld (rule) BM=%lld BN=128", (long long)rule, (long long)bm);
        tile_program_destroy(prog);
    } else {
        char chosen[100];
        ours = bench_ours(g, &p, "gemm", NULL, 0, chosen, sizeof chosen);
        snprintf(config, sizeof config, "gemm.tile autotuned: %s", chosen);
    }
    snprintf(name, sizeof name, "gemm bf16 %lldx%lldx%lld", (long long)m, (long long)n, (long long)k);
    add_row(name, ours, anchor, CUBLAS_ANCHOR);
    bench_row_config(config);
    problem_free(g, &p);
}

/* The value of field `field` ("ours", "anchor") in the row named `name` of a results file, or -1. */
static double row_value(const char *file, const char *name, const char *field);

/* bf16 squares, the LLM shapes (M = 4096), the decode shapes (N = K = 8192), FP8 (bench_fp8, its
 * anchors from --anchor), and the cold JIT of the GEMM against Triton's cold compile from
 * bench_compile.py's results (--compile: run it in the same session). */
static void bench_fp8(Gpu *g, int64_t size, bool block);
static const char *compile_file; /* --compile: bench_compile.py's results */

static void bench_table(Gpu *g, bool quick) {
    static const int64_t shapes[][3] = {{2048, 2048, 2048},   {4096, 4096, 4096},    {8192, 8192, 8192},
                                        {4096, 14336, 4096},  {4096, 4096, 14336},   {4096, 128256, 4096},
                                        {1, 8192, 8192},      {16, 8192, 8192},      {128, 8192, 8192}};
    for (size_t i = 0; i < (quick ? 1 : sizeof shapes / sizeof shapes[0]); i++)
        bench_library(g, shapes[i][0], shapes[i][1], shapes[i][2]);
    for (int i = 0; i < (quick ? 1 : 2); i++) {
        bench_fp8(g, 4096 << i, false);
        bench_fp8(g, 4096 << i, true);
    }
    static const char *cold = "cold JIT gemm bf16 4096x4096x4096 (first call minus a warm one, empty caches)";
    double ours = row_value(compile_file, cold, "ours"), triton = row_value(compile_file, cold, "anchor");
    if (ours > 0) {
        bench_add_row("cold JIT gemm bf16 4096x4096x4096", "ms", ours, triton,
                      "Triton cold compile of its GEMM, 128x128x64 (bench_compile.py)", false);
        bench_row_config("bench_compile.py: fresh processes, empty caches, TILE_AUTOTUNE=0");
    } else {
        printf("no cold JIT row: give bench_compile.py's results with --compile FILE\n");
    }
}

/* ---- FP8 (--kernel fp8) ------------------------------------------------------------------------ */
static double row_value(const char *file, const char *name, const char *field) {
    FILE *f = file ? fopen(file, "rb") : NULL;
    if (!f) return -1;
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    char key[200], want[32];
    snprintf(key, sizeof key, "\"case\": \"%s\"", name);
    snprintf(want, sizeof want, "\"%s\":", field);
    const char *at = strstr(text, key), *value = at ? strstr(at, want) : NULL;
    const char *end = at ? strchr(at, '}') : NULL;
    if (!value || (end && value > end)) return -1;
    double v = -1;
    return sscanf(value + strlen(want), " %lf", &v) == 1 ? v : -1;
}

/* n random values of dt in [lo, hi): device buffer, exact values in *host. */
static void *device_random(Gpu *g, tile_dtype dt, int64_t n, double lo, double hi, unsigned seed, double **host) {
    double *d = malloc((size_t)n * sizeof(double));
    size_t bytes = tile_dtype_bytes(dt, n);
    void *h = malloc(bytes), *p;
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        d[i] = lo + (hi - lo) * (double)(s >> 11) / 9007199254740992.0;
    }
    tile_pack(dt, d, n, h);
    tile_unpack(dt, h, n, d);
    tile_status st = tile_alloc(g->ctx, bytes, &p);
    if (st != TILE_OK) die(g->ctx, "alloc", st);
    tile_copy_to_device(g->ctx, p, h, bytes);
    free(h);
    *host = d;
    return p;
}

/* gemm_fp8 (block false) or gemm_fp8_block at M = N = K = size: checked, then timed. */
static void bench_fp8(Gpu *g, int64_t size, bool block) {
    const int64_t m = size, n = size, k = size, kb = (k + 127) / 128, nb = (n + 127) / 128;
    double *ha, *hb, *hsa, *hsb;
    void *a = device_random(g, TILE_F8E4M3, m * k, -1, 1, 1, &ha), *b = device_random(g, TILE_F8E4M3, n * k, -1, 1, 2, &hb);
    int64_t nsa = block ? m * kb : 1, nsb = block ? nb * kb : 1;
    void *sa = device_random(g, TILE_F32, nsa, 0.5, 1.5, 3, &hsa), *sb = device_random(g, TILE_F32, nsb, 0.5, 1.5, 4, &hsb);
    void *c;
    tile_status st = tile_alloc(g->ctx, (size_t)(m * n) * 2, &c);
    if (st != TILE_OK) die(g->ctx, "alloc", st);
    char path[1200];
    snprintf(path, sizeof path, "%s/stdlib/core/gemm_fp8.tile", repo);
    tile_program *prog;
    Ours r = {.nargs = 5};
    const char *kname = block ? "gemm_fp8_block" : "gemm_fp8";
    if ((st = tile_program_from_file(g->ctx, path, &prog)) != TILE_OK ||
        (st = tile_program_get_kernel(prog, kname, NULL, 0, &r.kernel)) != TILE_OK)
        die(g->ctx, kname, st);
    int64_t s_a[2] = {m, k}, s_b[2] = {n, k}, s_c[2] = {m, n}, s_sa[2] = {block ? m : 1, kb}, s_sb[2] = {block ? nb : 1, kb};
    r.args[0] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F8E4M3, a, 2, s_a)};
    r.args[1] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F8E4M3, b, 2, s_b)};
    r.args[2] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, c, 2, s_c)};
    r.args[3] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, sa, block ? 2 : 1, s_sa)};
    r.args[4] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, sb, block ? 2 : 1, s_sb)};
    char name[96];
    snprintf(name, sizeof name, "gemm fp8e4m3 %lldx%lldx%lld%s", (long long)m, (long long)n, (long long)k,
             block ? " block-scaled" : "");
    poison_bf16(g, c, m * n);
    run_ours(g, &r);
    tile_synchronize(g->ctx);
    uint16_t *hc = malloc((size_t)(m * n) * 2);
    tile_copy_to_host(g->ctx, hc, c, (size_t)(m * n) * 2);
    for (int64_t i = 0; i < m * n; i++)
        if ((hc[i] & 0x7f80) == 0x7f80) {
            fprintf(stderr, "bench_gemm: %s: c[%lld] is not finite (unwritten?)\n", name, (long long)i);
            exit(1);
        }
    uint64_t s = 12345;
    double spread = sqrt((double)k / 9.0) * 2.25; /* a sum of k products of U(-1, 1), scales up to 1.5^2 */
    for (int t = 0; t < 64; t++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        int64_t i = (int64_t)((s >> 20) % (uint64_t)m), j = (int64_t)((s >> 40) % (uint64_t)n);
        double want = 0;
        for (int64_t q = 0; q < k; q++)
            want += ha[i * k + q] * hb[j * k + q] * (block ? hsa[i * kb + q / 128] * hsb[(j / 128) * kb + q / 128] : hsa[0] * hsb[0]);
        double x = bf16_value(hc[i * n + j]);
        if (!(fabs(x - want) <= 1e-2 * fabs(want) + 1e-3 * spread)) {
            fprintf(stderr, "bench_gemm: %s: ours %g, reference %g at [%lld, %lld]\n", name, x, want, (long long)i,
                    (long long)j);
            exit(1);
        }
    }
    double ours = 2.0 * (double)m * (double)n * (double)k / (timed_ms(g, run_ours, &r) * 1e-3) / 1e12;
    add_row(name, ours, row_value(anchor_file, name, "ours"),
            block ? "torch._scaled_mm BlockWise1x128 x BlockWise128x128, bf16 out (bench_fp8_anchor.py)"
                  : "torch._scaled_mm per-tensor scales, bf16 out (bench_fp8_anchor.py)");
    tile_program_destroy(prog);
    tile_free(g->ctx, a), tile_free(g->ctx, b), tile_free(g->ctx, sa), tile_free(g->ctx, sb), tile_free(g->ctx, c);
    free(ha), free(hb), free(hsa), free(hsb), free(hc);
}

int main(int argc, char **argv) {
    const char *out = NULL; /* bench/results/gemm.json, or gemm-<kernel>.json for another --kernel */
    bool quick = false;
    Strbuf cmd = {0};
    setvbuf(stdout, NULL, _IOLBF, 0); /* each row as it is measured (long runs behind a pipe) */
    for (int i = 0; i < argc; i++) sb_printf(&cmd, "%s%s", i ? " " : "", argv[i]);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) out = argv[++i];
        else if (strcmp(argv[i], "--repo") == 0 && i + 1 < argc) snprintf(repo, sizeof repo, "%s", argv[++i]);
        else if (strcmp(argv[i], "--quick") == 0) quick = true;
        else if (strcmp(argv[i], "--anchor") == 0 && i + 1 < argc) anchor_file = argv[++i];
        else if (strcmp(argv[i], "--compile") == 0 && i + 1 < argc) compile_file = argv[++i];
        else if (strcmp(argv[i], "--kernel") == 0 && i + 1 < argc &&
                 (strcmp(argv[i + 1], "all") == 0 || strcmp(argv[i + 1], "gemm") == 0 || strcmp(argv[i + 1], "persistent") == 0 ||
                  strcmp(argv[i + 1], "persistent-flat") == 0 || strcmp(argv[i + 1], "splitk") == 0 ||
                  strcmp(argv[i + 1], "shapes") == 0 || strcmp(argv[i + 1], "fp8") == 0 ||
                  strcmp(argv[i + 1], "pingpong") == 0))
            kernel_choice = argv[++i];
        else {
            fprintf(stderr, "usage: bench_gemm [--out FILE] [--repo DIR] [--quick] [--anchor FILE] [--compile FILE]"
                            " [--kernel all|gemm|persistent|persistent-flat|pingpong|splitk|shapes|fp8]\n");
            return 2;
        }
    }
    char default_out[64];
    bool all = strcmp(kernel_choice, "all") == 0;
    snprintf(default_out, sizeof default_out, "bench/results/gemm%s%s.json", all ? "" : "-",
             all ? "" : strcmp(kernel_choice, "gemm") == 0 ? "tiles" : kernel_choice);
    if (!out) out = default_out;
    Gpu g = {0};
    if (tile_context_create(TILE_DEVICE_CUDA, 0, &g.ctx) != TILE_OK) {
        printf("bench_gemm: no GPU (%s): nothing to measure\n", tile_context_message(NULL));
        sb_free(&cmd);
        return 0;
    }
    char device[200];
    snprintf(device, sizeof device, "%s", tile_context_device_name(g.ctx));
    g.dev = rt_cuda_device(g.ctx);
    Strbuf err = {0};
    if (cuda_event_create(g.dev, &g.start, &err) != TILE_OK || cuda_event_create(g.dev, &g.stop, &err) != TILE_OK) {
        fprintf(stderr, "bench_gemm: events: %s\n", sb_str(&err));
        return 1;
    }
    cublas_open(&g.cublas);
    bool shapes = strcmp(kernel_choice, "shapes") == 0, fp8 = strcmp(kernel_choice, "fp8") == 0;
    if (all) {
        bench_table(&g, quick);
    } else if (fp8) {
        for (int i = 0; i < (quick ? 1 : 2); i++) {
            bench_fp8(&g, 4096 << i, false);
            bench_fp8(&g, 4096 << i, true);
        }
    } else if (strcmp(kernel_choice, "splitk") == 0) {
        static const int64_t decode_m[] = {1, 16, 128};
        for (int i = 0; i < (quick ? 1 : 3); i++) bench_splitk(&g, decode_m[i]);
    } else if (shapes) {
        bench_shapes(&g);
    } else {
        bench_size(&g, 2048, false);
    }
    if (!quick && strcmp(kernel_choice, "splitk") != 0 && !shapes && !fp8 && !all) {
        bench_size(&g, 4096, true);
        bench_size(&g, 8192, true);
    }
    cublas_close(&g.cublas);
    cuda_event_destroy(g.dev, g.start);
    cuda_event_destroy(g.dev, g.stop);
    tile_context_destroy(g.ctx);
    bench_write_json(out, device, sb_str(&cmd));
    sb_free(&cmd);
    sb_free(&err);
    return 0;
}
