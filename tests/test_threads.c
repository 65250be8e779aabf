/* test_threads.c: the public API from many threads at once, on the VM, for the ThreadSanitizer
 * build (scripts/run.sh test runs it there; it also runs in the plain and ASan builds). A plain
 * program with its own main, not a Criterion suite: Criterion's sandbox cannot map its arena
 * under ThreadSanitizer. Threads
 * that share one context and program compile the same and different specializations and
 * launch them on their own buffers; threads that create, use and destroy their own contexts;
 * generated-code kernels (tile_context_aot_kernel) fetched concurrently; cancellation
 * racing with launches; and PTX emitted from two threads (the backend's pooled target
 * machines); on a cuda context over the fake driver, compiles and loads from several threads and
 * an autotuned kernel's candidates compiled side by side. Each checks its results, so a lost
 * update shows as a wrong value and a data race as a TSan report. */
#include <pthread.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tile/tile.h"

static int failures;

/* The checks below take an optional message, as Criterion's do. */
#pragma GCC diagnostic ignored "-Wformat-zero-length"

/* Criterion's names, so that the checks read as in the other suites; a failure is counted and
 * printed, and the test goes on. */
#define cr_expect(cond, ...) check_((cond), #cond, __FILE__, __LINE__, "" __VA_ARGS__)
#define cr_assert(cond, ...) cr_expect(cond, __VA_ARGS__)
#define cr_expect_eq(a, b, ...) cr_expect((a) == (b), __VA_ARGS__)
#define cr_assert_eq(a, b, ...) cr_expect((a) == (b), __VA_ARGS__)

static void check_(bool ok, const char *what, const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void check_(bool ok, const char *what, const char *file, int line, const char *fmt, ...) {
    if (ok) return;
    failures++;
    fprintf(stderr, "%s:%d: failed: %s: ", file, line, what);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static tile_context *test_vm_context(void) {
    tile_context *ctx = NULL;
    if (tile_context_create(TILE_DEVICE_VM, 0, &ctx) != TILE_OK) {
        fprintf(stderr, "no VM context: %s\n", tile_context_message(NULL));
        exit(1);
    }
    return ctx;
}

enum { NTHREADS = 8, ROUNDS = 6, N = 300 };

static const char va_source[] =
    "kernel va<BLOCK = 64>(a: tensor<f32>[N], b: tensor<f32>[N], c: tensor<f32>[N]) grid(cdiv(N, BLOCK)) {\n"
    "  let i = block_id(0) * BLOCK;\n"
    "  c[i :+ BLOCK] = a[i :+ BLOCK] + b[i :+ BLOCK];\n"
    "}\n";

/* One thread's work: get va with BLOCK from its round, launch it, check c = a + b. */
typedef struct Worker {
    tile_context *ctx;        /* shared, or NULL: the thread makes its own each round */
    tile_program *program;    /* shared with ctx, or NULL */
    int id;
    int wrong;                /* failed calls and wrong elements */
    char first_error[256];
} Worker;

static void note(Worker *w, const char *what, tile_context *ctx) {
    if (!w->wrong++) snprintf(w->first_error, sizeof w->first_error, "%s: %s", what, tile_context_message(ctx));
}

static void launch_once(Worker *w, tile_context *ctx, tile_program *p, int round) {
    tile_constant block = {"BLOCK", 0, (int64_t)16 << ((w->id + round) % 3), 0};
    tile_kernel *k;
    if (tile_program_get_kernel(p, "va", &block, 1, &k) != TILE_OK) {
        note(w, "get_kernel", ctx);
        return;
    }
    float a[N], b[N], c[N];
    for (int i = 0; i < N; i++) a[i] = (float)(i + w->id), b[i] = (float)(round * 1000), c[i] = -1;
    int64_t n = N;
    tile_arg args[3] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, a, 1, &n)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, b, 1, &n)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, c, 1, &n)}};
    if (tile_kernel_launch(k, args, 3, NULL) != TILE_OK) {
        note(w, "launch", ctx);
        return;
    }
    for (int i = 0; i < N; i++)
        if (c[i] != a[i] + b[i]) w->wrong++;
    /* a failing call leaves this thread's message, whatever the others do */
    if (tile_program_get_kernel(p, "missing", NULL, 0, &k) != TILE_ERROR_NOT_FOUND ||
        !strstr(tile_context_message(ctx), "'missing'"))
        note(w, "message of this thread", ctx);
}

static void *worker_main(void *arg) {
    Worker *w = arg;
    for (int round = 0; round < ROUNDS; round++) {
        tile_context *ctx = w->ctx;
        tile_program *p = w->program;
        if (!ctx) {
            if (tile_context_create(TILE_DEVICE_VM, 0, &ctx) != TILE_OK) {
                note(w, "context_create", NULL);
                continue;
            }
            if (tile_program_from_string(ctx, "va.tile", va_source, sizeof va_source - 1, &p) != TILE_OK) {
                note(w, "program", ctx);
                tile_context_destroy(ctx);
                continue;
            }
        }
        launch_once(w, ctx, p, round);
        if (!w->ctx) {
            tile_program_destroy(p);
            tile_context_destroy(ctx);
        }
    }
    return NULL;
}

static void run_workers(tile_context *ctx, tile_program *p) {
    pthread_t t[NTHREADS];
    Worker w[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (Worker){.ctx = ctx, .program = p, .id = i};
        cr_assert_eq(pthread_create(&t[i], NULL, worker_main, &w[i]), 0, "pthread_create");
    }
    for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < NTHREADS; i++) cr_expect_eq(w[i].wrong, 0, "thread %d: %d wrong; first: %s", i, w[i].wrong, w[i].first_error);
}

static void compile_and_launch_on_one_context(void) {
    tile_context *ctx = test_vm_context();
    tile_program *p;
    cr_assert_eq(tile_program_from_string(ctx, "va.tile", va_source, sizeof va_source - 1, &p), TILE_OK, "%s", tile_context_message(ctx));
    run_workers(ctx, p);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

static void contexts_created_and_destroyed_concurrently(void) { run_workers(NULL, NULL); }

/* tile_context_aot_kernel parses each source once per context, under the context's lock. */
static const tile_constant aot_constants[] = {{"BLOCK", 0, 32, 0.0}};
static const tile_aot_kernel aot_desc = {"va.tile", va_source, sizeof va_source - 1, "va", aot_constants, 1, NULL, 0};

typedef struct AotWorker {
    tile_context *ctx;
    tile_kernel *got;
    tile_status status;
} AotWorker;

static void *aot_main(void *arg) {
    AotWorker *w = arg;
    w->status = tile_context_aot_kernel(w->ctx, &aot_desc, &w->got);
    return NULL;
}

static void aot_kernels_fetched_concurrently(void) {
    tile_context *ctx = test_vm_context();
    pthread_t t[NTHREADS];
    AotWorker w[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (AotWorker){.ctx = ctx};
        cr_assert_eq(pthread_create(&t[i], NULL, aot_main, &w[i]), 0, "pthread_create");
    }
    for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < NTHREADS; i++) {
        cr_assert_eq(w[i].status, TILE_OK, "thread %d", i);
        cr_assert_eq(w[i].got, w[0].got, "one kernel for one (source, kernel, constants)");
    }
    tile_context_destroy(ctx);
}

/* Cancellation from one thread while others launch: each launch ends OK or CANCELLED, never
 * anything else, and the results of those that ended OK are right. */
typedef struct CancelWorker {
    tile_context *ctx;
    tile_kernel *k;
    int bad;
} CancelWorker;

static void *cancel_launcher(void *arg) {
    CancelWorker *w = arg;
    float a[N], b[N], c[N];
    for (int i = 0; i < N; i++) a[i] = (float)i, b[i] = 1;
    int64_t n = N;
    tile_arg args[3] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, a, 1, &n)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, b, 1, &n)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, c, 1, &n)}};
    for (int r = 0; r < 40; r++) {
        tile_status st = tile_kernel_launch(w->k, args, 3, NULL);
        if (st == TILE_OK) {
            for (int i = 0; i < N; i++) w->bad += c[i] != a[i] + b[i];
        } else if (st != TILE_ERROR_CANCELLED) {
            w->bad++;
        }
    }
    return NULL;
}

static void cancel_races_with_launches(void) {
    tile_context *ctx = test_vm_context();
    tile_program *p;
    cr_assert_eq(tile_program_from_string(ctx, "va.tile", va_source, sizeof va_source - 1, &p), TILE_OK, "%s", tile_context_message(ctx));
    tile_constant block = {"BLOCK", 0, 16, 0};
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(p, "va", &block, 1, &k), TILE_OK, "%s", tile_context_message(ctx));
    pthread_t t[4];
    CancelWorker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (CancelWorker){.ctx = ctx, .k = k};
        cr_assert_eq(pthread_create(&t[i], NULL, cancel_launcher, &w[i]), 0, "pthread_create");
    }
    for (int i = 0; i < 200; i++) {
        tile_context_cancel(ctx);
        usleep(500);
    }
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 4; i++) cr_expect_eq(w[i].bad, 0, "launcher %d", i);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* PTX from two threads at once (tile_program_emit: the backend's pooled LLVM target machines,
 * each used by one compile at a time): every result equals the one compiled alone first. */
typedef struct EmitWorker {
    tile_program *program;
    const char *want[2];      /* PTX for BLOCK = 32 and 64 */
    int wrong;
} EmitWorker;

static char *emit_va_ptx(tile_program *p, int64_t block) {
    tile_constant c = {"BLOCK", 0, block, 0.0};
    tile_emit_options opt = {.arch = "sm_90a"};
    char *ptx = NULL;
    size_t len;
    if (tile_program_emit(p, "va", &c, 1, TILE_EMIT_PTX, &opt, &ptx, &len) != TILE_OK) return NULL;
    return ptx;
}

static void *emit_main(void *arg) {
    EmitWorker *w = arg;
    for (int round = 0; round < 4; round++) {
        char *ptx = emit_va_ptx(w->program, round % 2 ? 64 : 32);
        if (!ptx || strcmp(ptx, w->want[round % 2]) != 0) w->wrong++;
        tile_string_free(ptx);
    }
    return NULL;
}

static void ptx_emitted_concurrently(void) {
    tile_context *ctx = test_vm_context();
    tile_program *p = NULL;
    cr_assert_eq(tile_program_from_string(ctx, "va.tile", va_source, sizeof va_source - 1, &p), TILE_OK, "%s",
                 tile_context_message(ctx));
    char *want32 = emit_va_ptx(p, 32), *want64 = emit_va_ptx(p, 64);
    if (!want32 || !want64) { /* built without the LLVM backend (as the TSan build of CI is) */
        printf("test_threads: PTX from two threads skipped: %s\n", tile_context_message(ctx));
        tile_string_free(want32);
        tile_string_free(want64);
        tile_program_destroy(p);
        tile_context_destroy(ctx);
        return;
    }
    EmitWorker w[2] = {{p, {want32, want64}, 0}, {p, {want32, want64}, 0}};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) cr_assert_eq(pthread_create(&threads[i], NULL, emit_main, &w[i]), 0, "thread %d", i);
    for (int i = 0; i < 2; i++) {
        pthread_join(threads[i], NULL);
        cr_expect_eq(w[i].wrong, 0, "thread %d: PTX differs from the one compiled alone", i);
    }
    tile_string_free(want32);
    tile_string_free(want64);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* On a cuda context (the fake driver of tests/fake_cuda when LD_LIBRARY_PATH finds it: ctest sets
 * it): threads that share the context and program compile and load the same and different
 * specializations at once, through the disk cache of one directory; then an autotuned kernel
 * compiles its candidates side by side (runtime/autotune.c). The fake driver runs nothing, so the
 * checks are the calls' statuses; the races are TSan's to find. */
static const char tuned_source[] =
    "kernel tuned<BLOCK = 1024>(a: tensor<f32>[N], b: tensor<f32>[N], c: tensor<f32>[N]) grid(cdiv(N, BLOCK))\n"
    "  autotune(key = [N], config(), config(BLOCK = 512), config(BLOCK = 256), config(BLOCK = 0), config(BLOCK = 128))\n"
    "{\n"
    "  let i = block_id(0) * BLOCK;\n"
    "  c[i :+ BLOCK] = a[i :+ BLOCK] + b[i :+ BLOCK];\n"
    "}\n";

typedef struct CudaWorker {
    tile_context *ctx;
    tile_program *program;
    void *bufs[3];
    int id, bad;
    char first_error[256];
} CudaWorker;

static void *cuda_worker(void *arg) {
    CudaWorker *w = arg;
    tile_context *ctx = w->ctx;
    int64_t n = N;
    tile_arg args[3];
    for (int i = 0; i < 3; i++)
        args[i] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, w->bufs[i], 1, &n)};
    for (int round = 0; round < 3; round++) {
        tile_constant block = {"BLOCK", 0, (int64_t)16 << ((w->id + round) % 3), 0};
        tile_kernel *k;
        if (tile_program_get_kernel(w->program, "va", &block, 1, &k) != TILE_OK ||
            tile_kernel_launch(k, args, 3, NULL) != TILE_OK) {
            if (!w->bad++) snprintf(w->first_error, sizeof w->first_error, "%s", tile_context_message(ctx));
        }
    }
    return NULL;
}

static void cuda_compiles_from_threads(void) {
    char dir[] = "/tmp/tile_threads_XXXXXX";
    if (!mkdtemp(dir)) {
        cr_expect(false, "mkdtemp");
        return;
    }
    setenv("TILE_CACHE_DIR", dir, 1);
    setenv("TILE_AUTOTUNE_THREADS", "4", 1);
    tile_context *ctx = NULL;
    tile_program *p = NULL, *tuned = NULL;
    if (tile_context_create(TILE_DEVICE_CUDA, 0, &ctx) != TILE_OK) {
        printf("test_threads: compiles on a cuda context skipped: %s\n", tile_context_message(NULL));
        goto out;
    }
    cr_assert_eq(tile_program_from_string(ctx, "va.tile", va_source, sizeof va_source - 1, &p), TILE_OK, "%s",
                 tile_context_message(ctx));
    enum { CUDA_THREADS = 4 };
    CudaWorker w[CUDA_THREADS];
    pthread_t t[CUDA_THREADS];
    for (int i = 0; i < CUDA_THREADS; i++) {
        w[i] = (CudaWorker){.ctx = ctx, .program = p, .id = i};
        for (int j = 0; j < 3; j++) cr_assert_eq(tile_alloc(ctx, N * sizeof(float), &w[i].bufs[j]), TILE_OK, "tile_alloc");
        cr_assert_eq(pthread_create(&t[i], NULL, cuda_worker, &w[i]), 0, "pthread_create");
    }
    for (int i = 0; i < CUDA_THREADS; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < CUDA_THREADS; i++) {
        cr_expect_eq(w[i].bad, 0, "cuda thread %d: %d failed; first: %s", i, w[i].bad, w[i].first_error);
        for (int j = 0; j < 3; j++) tile_free(ctx, w[i].bufs[j]);
    }
    /* an autotuned kernel: five candidates (one that does not compile) on four threads */
    cr_assert_eq(tile_program_from_string(ctx, "tuned.tile", tuned_source, sizeof tuned_source - 1, &tuned), TILE_OK,
                 "%s", tile_context_message(ctx));
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(tuned, "tuned", NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
    void *bufs[3];
    int64_t n = 5000;
    tile_arg args[3];
    for (int j = 0; j < 3; j++) {
        cr_assert_eq(tile_alloc(ctx, (size_t)n * sizeof(float), &bufs[j]), TILE_OK, "tile_alloc");
        args[j] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, bufs[j], 1, &n)};
    }
    cr_expect_eq(tile_kernel_launch(k, args, 3, NULL), TILE_OK, "%s", tile_context_message(ctx));
    char *report = NULL;
    cr_expect_eq(tile_kernel_autotune_report(k, &report), TILE_OK, "autotune report");
    cr_expect(report && strstr(report, "compiled 5 candidates on 4 threads"), "%s", report ? report : "no report");
    cr_expect(report && strstr(report, "time 4 failed config(BLOCK = 0)"), "%s", report ? report : "no report");
    tile_string_free(report);
    for (int j = 0; j < 3; j++) tile_free(ctx, bufs[j]);
out:
    tile_program_destroy(tuned);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
    unsetenv("TILE_AUTOTUNE_THREADS");
    unsetenv("TILE_CACHE_DIR");
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "test_threads: could not remove %s\n", dir);
}

int main(void) {
    cuda_compiles_from_threads();
    ptx_emitted_concurrently();
    compile_and_launch_on_one_context();
    contexts_created_and_destroyed_concurrently();
    aot_kernels_fetched_concurrently();
    cancel_races_with_launches();
    if (failures) fprintf(stderr, "test_threads: %d failed checks\n", failures);
    else printf("test_threads: every check passed\n");
    return failures != 0;
}
