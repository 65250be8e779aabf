/* test_reliability.c: regressions for the defects of issue 10 (a whole-pipeline robustness
 * hunt) that the public API shows: one rule for num_warps at every entry, NULL and overflow
 * misuse of the API, the source size limit, per-call messages, misaligned data pointers,
 * cancellation of a VM launch, and the cache directory's permissions. Each test states the
 * defect it guards; each fails on the code before its fix. The frontend's constant arithmetic
 * and the element conversions have golden and unit tests in their own suites. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "tile/tile.h"

static tile_status emit_warps(tile_program *p, tile_emit_kind kind, int num_warps) {
    char *text = NULL;
    size_t len = 0;
    tile_emit_options opt = {.num_warps = num_warps};
    tile_status st = tile_program_emit(p, "vector_add", NULL, 0, kind, &opt, &text, &len);
    tile_string_free(text);
    return st;
}

/* Defect 5: num_warps 3 or 5 reached the backend (an internal error, or .maxntid 96). */
Test(reliability, num_warps_is_a_power_of_two_at_every_entry) {
    for (int n = -1; n <= 64; n++) {
        int want = n == 1 || n == 2 || n == 4 || n == 8 || n == 16 || n == 32;
        cr_assert_eq(!!tile_num_warps_valid(n), want, "num_warps %d", n);
    }
    tile_context *ctx = test_vm_context();
    tile_program *p = test_load_program(ctx, "stdlib/core/vector_add.tile");
    for (int n = 3; n <= 6; n++) {
        tile_status st = emit_warps(p, TILE_EMIT_IR, n);
        cr_assert_eq(st, n == 4 ? TILE_OK : TILE_ERROR_INVALID_ARGUMENT, "num_warps %d: %s", n, tile_status_name(st));
        if (n != 4) cr_assert(strstr(tile_context_message(ctx), "num_warps"), "%s", tile_context_message(ctx));
    }
    char *h = NULL, *c = NULL;
    tile_aot_options opt = {.num_warps = 3};
    cr_assert_eq(tile_program_emit_c(p, NULL, 0, &opt, &h, &c, NULL), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(tile_context_message(ctx), "num_warps 3"), "%s", tile_context_message(ctx));
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* ... and tilec --num-warps gives a usage error for one that is not a power of two. */
Test(reliability, tilec_num_warps_not_a_power_of_two) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s/tilec build --emit ir --num-warps 3 %s/stdlib/core/vector_add.tile 2>&1",
             TILE_BUILD_DIR, TILE_SOURCE_DIR);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    char out[4096] = "";
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = 0;
    int rc = pclose(f);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "rc %d: %s", rc, out);
    cr_assert(strstr(out, "--num-warps 3"), "%s", out);
}

/* Defect 7: NULL lists that tile.h documents as "every kernel" / "both architectures". */
Test(reliability, emit_c_null_lists_mean_every_kernel_and_both_archs) {
    tile_context *ctx = test_vm_context();
    tile_program *p = test_load_program(ctx, "stdlib/core/vector_add.tile");
    char *h = NULL, *c = NULL;
    tile_aot_options opt = {.kernels = NULL, .nkernels = 3, .archs = NULL, .narchs = 2};
    tile_status st = tile_program_emit_c(p, NULL, 0, &opt, &h, &c, NULL);
    cr_assert_eq(st, TILE_OK, "%s: %s", tile_status_name(st), tile_context_message(ctx));
    cr_assert(strstr(h, "vector_add_launch"), "%s", h);
    tile_string_free(h);
    tile_string_free(c);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* Defect 7: images NULL with nimages > 0 was dereferenced on cuda; refused on every device. */
Test(reliability, aot_kernel_null_images_refused) {
    tile_context *ctx = test_vm_context();
    static const char src[] = "kernel k(y: tensor<f32>[N]) grid(1) { y[0] = 1.0; }\n";
    tile_aot_kernel desc = {"k.tile", src, sizeof src - 1, "k", NULL, 0, NULL, 2};
    tile_kernel *k = (tile_kernel *)1;
    cr_assert_eq(tile_context_aot_kernel(ctx, &desc, &k), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(tile_context_message(ctx), "images"), "%s", tile_context_message(ctx));
    desc.nimages = 0;
    desc.nconstants = 1;
    cr_assert_eq(tile_context_aot_kernel(ctx, &desc, &k), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(tile_context_message(ctx), "constants"), "%s", tile_context_message(ctx));
    tile_program *p = test_load_program(ctx, "stdlib/core/vector_add.tile");
    cr_assert_eq(tile_program_get_kernel_with_images(p, "vector_add", NULL, 0, NULL, 1, &k), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(tile_context_message(ctx), "images"), "%s", tile_context_message(ctx));
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* Defect 7: sizes that overflow: strides went negative, byte counts wrapped to 0, INT_MIN
 * underflowed the kernel index. */
Test(reliability, size_computations_do_not_overflow) {
    int64_t shape[4] = {INT32_MAX, INT32_MAX, INT32_MAX, 4};
    float x;
    tile_tensor t = tile_tensor_contiguous(TILE_F32, &x, 4, shape);
    for (int d = 0; d < 4; d++) cr_assert_geq(t.strides[d], 1, "stride %d is %lld", d, (long long)t.strides[d]);
    cr_assert_eq(t.strides[3], 1);
    cr_assert_eq(t.strides[2], 4);
    cr_assert_eq(t.strides[0], INT64_MAX, "saturated");
    cr_assert_eq(tile_dtype_bytes(TILE_INT(64), (int64_t)1 << 61), SIZE_MAX);
    cr_assert_eq(tile_dtype_bytes(TILE_INT(64), INT64_MAX), SIZE_MAX);
    cr_assert_eq(tile_dtype_bytes(TILE_INT(64), 3), 24);
    cr_assert_eq(tile_dtype_bytes(TILE_UINT(4), 3), 2);
    tile_context *ctx = test_vm_context();
    tile_program *p = test_load_program(ctx, "stdlib/core/vector_add.tile");
    cr_assert_null(tile_program_kernel_name(p, INT_MIN));
    cr_assert_null(tile_program_kernel_name(p, -1));
    cr_assert_str_eq(tile_program_kernel_name(p, 0), "vector_add");
    /* a launch refuses the saturated tensor */
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(p, "vector_add", NULL, 0, &k), TILE_OK);
    int64_t n = 4;
    float a[4] = {0}, b[4] = {0}, c[4];
    tile_tensor big = tile_tensor_contiguous(TILE_F32, a, 1, (int64_t[]){n});
    big.strides[0] = INT64_MAX;
    tile_arg args[3] = {{.kind = TILE_ARG_TENSOR, .tensor = big},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, b, 1, &n)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, c, 1, &n)}};
    cr_assert_eq(tile_kernel_launch(k, args, 3, NULL), TILE_ERROR_INVALID_ARGUMENT);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* Defect 8: an endless source grew a buffer until malloc failed, then printed and aborted. */
Test(reliability, endless_source_is_an_error, .timeout = 60) {
    tile_context *ctx = test_vm_context();
    tile_program *p = (tile_program *)1;
    cr_assert_eq(tile_program_from_file(ctx, "/dev/zero", &p), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert_null(p);
    cr_assert(strstr(tile_context_message(ctx), "limit"), "%s", tile_context_message(ctx));
    char dummy = 0;
    cr_assert_eq(tile_program_from_string(ctx, "big", &dummy, (size_t)TILE_MAX_SOURCE_BYTES + 1, &p),
                 TILE_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(tile_context_message(ctx), "limit"), "%s", tile_context_message(ctx));
    cr_assert_eq(tile_program_from_file(ctx, "/nonexistent/x.tile", &p), TILE_ERROR_NOT_FOUND);
    tile_context_destroy(ctx);
}

/* Defect 9: a call that failed early left the previous failure's message in place. */
Test(reliability, every_failure_sets_its_own_message) {
    tile_context *ctx = test_vm_context();
    tile_program *p = test_load_program(ctx, "stdlib/core/vector_add.tile");
    tile_kernel *k;
    tile_kernel *none;
#define STALE() cr_assert_eq(tile_program_get_kernel(p, "stale_marker", NULL, 0, &none), TILE_ERROR_NOT_FOUND)
#define FRESH(call, ctx_, word)                                                                                \
    do {                                                                                                       \
        STALE();                                                                                               \
        cr_assert_neq(call, TILE_OK, #call);                                                                   \
        cr_assert_null(strstr(tile_context_message(ctx_), "stale_marker"), #call ": %s", tile_context_message(ctx_)); \
        cr_assert(strstr(tile_context_message(ctx_), word), #call ": '%s'", tile_context_message(ctx_));        \
    } while (0)
    FRESH(tile_program_get_kernel(p, "vector_add", NULL, 0, NULL), ctx, "out");
    FRESH(tile_program_get_kernel(p, NULL, NULL, 0, &k), ctx, "kernel");
    FRESH(tile_program_get_kernel(p, "vector_add", NULL, 2, &k), ctx, "constants");
    FRESH(tile_program_emit(p, "vector_add", NULL, 0, TILE_EMIT_IR, NULL, NULL, NULL), ctx, "out");
    FRESH(tile_program_emit_c(p, NULL, 0, NULL, NULL, NULL, NULL), ctx, "header");
    FRESH(tile_alloc(ctx, 16, NULL), ctx, "out");
    FRESH(tile_stream_create(ctx, NULL), ctx, "out");
    FRESH(tile_program_from_string(ctx, "x", NULL, 5, (tile_program **)&k), ctx, "source");
    FRESH(tile_program_from_file(ctx, NULL, (tile_program **)&k), ctx, "path");
    cr_assert_eq(tile_program_get_kernel(p, "vector_add", NULL, 0, &k), TILE_OK);
    FRESH(tile_kernel_param(k, 99, &(tile_param_info){0}), ctx, "parameter 99");
    FRESH(tile_kernel_param(k, 0, NULL), ctx, "out");
    /* calls without a context report to the context-less message */
    FRESH(tile_context_create(TILE_DEVICE_VM, 0, NULL), NULL, "out");
    FRESH(tile_kernel_launch(NULL, NULL, 0, NULL), NULL, "kernel");
    FRESH(tile_pack(TILE_F32, NULL, 4, NULL), NULL, "tile_pack");
    FRESH(tile_synchronize(NULL), NULL, "context");
#undef FRESH
#undef STALE
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* Defect 13: emitting an unknown kernel is NOT_FOUND, as getting it is; archs NULL with
 * narchs 2 used to say "at most 8 architectures". */
Test(reliability, emit_unknown_kernel_is_not_found) {
    tile_context *ctx = test_vm_context();
    tile_program *p = test_load_program(ctx, "stdlib/core/vector_add.tile");
    char *text = NULL;
    cr_assert_eq(tile_program_emit(p, "nope", NULL, 0, TILE_EMIT_IR, NULL, &text, NULL), TILE_ERROR_NOT_FOUND);
    cr_assert(strstr(tile_context_message(ctx), "no kernel named 'nope'"), "%s", tile_context_message(ctx));
    cr_assert_null(text);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* Defect 11: an f32 tensor at byte offset 1 launched with TILE_OK (the VM reads it, the GPU
 * cannot); rt_check_args, which both devices run, now refuses it. */
static tile_status launch_vector_add_at(tile_context *ctx, tile_dtype dtype, const char *file, size_t offset) {
    tile_program *p = test_load_program(ctx, file);
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(p, "vector_add", NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
    int64_t n = 8;
    void *buf[3];
    tile_arg args[3];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(tile_alloc(ctx, 256, &buf[i]), TILE_OK);
        cr_assert_eq(tile_copy_to_device(ctx, buf[i], (char[256]){0}, 256), TILE_OK);
        args[i] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(dtype, (char *)buf[i] + offset, 1, &n)};
    }
    tile_status st = tile_kernel_launch(k, args, 3, NULL);
    for (int i = 0; i < 3; i++) tile_free(ctx, buf[i]);
    tile_program_destroy(p);
    return st;
}

Test(reliability, misaligned_data_pointer_refused) {
    tile_context *ctx = test_vm_context();
    cr_assert_eq(launch_vector_add_at(ctx, TILE_F32, "stdlib/core/vector_add.tile", 1), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(tile_context_message(ctx), "not aligned to its 4-byte f32 elements"), "%s", tile_context_message(ctx));
    cr_assert_eq(launch_vector_add_at(ctx, TILE_F32, "stdlib/core/vector_add.tile", 2), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(launch_vector_add_at(ctx, TILE_F32, "stdlib/core/vector_add.tile", 4), TILE_OK, "%s",
                 tile_context_message(ctx));
    tile_context_destroy(ctx);
}

/* Defect 13: "dots needs 262144 bytes of shared memory" said neither where nor why; the error
 * now points at the op whose scratch need is too large. */
Test(reliability, shared_memory_error_is_located) {
#ifndef TILE_HAVE_LLVM
    cr_skip_test("built without the LLVM backend");
#endif
    static const char src[] = "kernel tr(x: tensor<f32>[M, N], y: tensor<f32>[N, M])\n"
                              "  grid(1) warps(32)\n"
                              "{\n"
                              "  let t = x[0 :+ 256, 0 :+ 256];\n"
                              "  y[0 :+ 256, 0 :+ 256] = transpose(t);\n"
                              "}\n";
    tile_context *ctx = test_vm_context();
    tile_program *p;
    cr_assert_eq(tile_program_from_string(ctx, "tr.tile", src, sizeof src - 1, &p), TILE_OK);
    char *ptx = NULL;
    tile_emit_options opt = {.arch = "sm_80"};
    tile_status st = tile_program_emit(p, "tr", NULL, 0, TILE_EMIT_PTX, &opt, &ptx, NULL);
    cr_assert_eq(st, TILE_ERROR_UNSUPPORTED, "%s: %s", tile_status_name(st), tile_context_message(ctx));
    cr_assert(strstr(tile_context_message(ctx), "tr.tile:5:27: tr needs 262144 bytes of shared memory"), "%s",
              tile_context_message(ctx));
    cr_assert_null(ptx);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* Defect 13: a long VM launch could not be interrupted. tile_context_cancel from another thread
 * stops it between blocks with TILE_ERROR_CANCELLED; a later launch is not affected. */
typedef struct LongLaunch {
    tile_context *ctx;
    tile_kernel *k;
    tile_arg args[4];
    tile_status status;
    char message[512];
    atomic_bool done;
} LongLaunch;

static void *run_long_launch(void *arg) {
    LongLaunch *l = arg;
    l->status = tile_kernel_launch(l->k, l->args, 4, NULL);
    snprintf(l->message, sizeof l->message, "%s", tile_context_message(l->ctx)); /* messages are per thread */
    atomic_store(&l->done, true);
    return NULL;
}

Test(reliability, vm_launch_can_be_cancelled, .timeout = 120) {
    static const char src[] = "kernel spin(x: tensor<f32>[N], y: tensor<f32>[N], steps: i32, blocks: i32)\n"
                              "  grid(blocks)\n"
                              "{\n"
                              "  var acc = x[0 :+ 64];\n"
                              "  for i in 0..steps { acc = acc * 0.5 + 1.0; }\n"
                              "  y[0 :+ 64] = acc;\n"
                              "}\n";
    static float x[64], y[64];
    int64_t n = 64;
    LongLaunch l = {.ctx = test_vm_context()};
    tile_program *p;
    cr_assert_eq(tile_program_from_string(l.ctx, "spin.tile", src, sizeof src - 1, &p), TILE_OK);
    cr_assert_eq(tile_program_get_kernel(p, "spin", NULL, 0, &l.k), TILE_OK, "%s", tile_context_message(l.ctx));
    l.args[0] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, x, 1, &n)};
    l.args[1] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, y, 1, &n)};
    l.args[2] = (tile_arg){.kind = TILE_ARG_INT, .i = 1000};
    l.args[3] = (tile_arg){.kind = TILE_ARG_INT, .i = 1000000};
    atomic_init(&l.done, false);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, run_long_launch, &l), 0);
    /* cancel until it stops: a cancel before the launch starts does not count */
    for (int i = 0; i < 10000 && !atomic_load(&l.done); i++) {
        usleep(10000);
        tile_context_cancel(l.ctx);
    }
    pthread_join(t, NULL);
    cr_assert_eq(l.status, TILE_ERROR_CANCELLED, "%s: %s", tile_status_name(l.status), l.message);
    cr_assert(strstr(l.message, "cancelled"), "%s", l.message);
    /* one block in a long loop stops too (the loop checks between iterations) */
    l.args[2].i = INT32_MAX;
    l.args[3].i = 1;
    atomic_store(&l.done, false);
    cr_assert_eq(pthread_create(&t, NULL, run_long_launch, &l), 0);
    for (int i = 0; i < 10000 && !atomic_load(&l.done); i++) {
        usleep(10000);
        tile_context_cancel(l.ctx);
    }
    pthread_join(t, NULL);
    cr_assert_eq(l.status, TILE_ERROR_CANCELLED, "%s: %s", tile_status_name(l.status), l.message);
    /* the next launch runs to its end */
    l.args[2].i = 1;
    l.args[3].i = 4;
    cr_assert_eq(tile_kernel_launch(l.k, l.args, 4, NULL), TILE_OK, "%s", tile_context_message(l.ctx));
    cr_assert_eq(y[0], 1.0f);
    tile_program_destroy(p);
    tile_context_destroy(l.ctx);
}

/* Defect 10 (its count part): a 65th -D said "bad -D '-D'". */
Test(reliability, tilec_too_many_defines) {
    Strbuf cmd = {0};
    sb_printf(&cmd, "%s/tilec check", TILE_BUILD_DIR);
    for (int i = 0; i < 65; i++) sb_printf(&cmd, " -D C%d=1", i);
    sb_printf(&cmd, " %s/stdlib/core/vector_add.tile 2>&1", TILE_SOURCE_DIR);
    FILE *f = popen(sb_str(&cmd), "r");
    cr_assert_not_null(f);
    char out[4096] = "";
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = 0;
    int rc = pclose(f);
    /* any number of -D is taken: each unknown one is reported, none as a bad -D */
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "rc %d: %s", rc, out);
    cr_assert(strstr(out, "no compile-time parameter 'C0'") && !strstr(out, "bad -D"), "%s", out);
    sb_free(&cmd);
}

/* ---- compile time (defect 4) ---------------------------------------------------------------- */
/* Compiles src's kernel k to IR (the whole pass pipeline); the status, with the message in msg. */
static tile_status compile_ir(const char *src, char *msg, size_t msg_size) {
    tile_context *ctx = test_vm_context();
    tile_program *p;
    tile_status st = tile_program_from_string(ctx, "t.tile", src, strlen(src), &p);
    if (st == TILE_OK) {
        char *ir = NULL;
        st = tile_program_emit(p, "k", NULL, 0, TILE_EMIT_IR, NULL, &ir, NULL);
        tile_string_free(ir);
        tile_program_destroy(p);
    }
    snprintf(msg, msg_size, "%s", tile_context_message(ctx));
    tile_context_destroy(ctx);
    return st;
}

/* f0 .. fn, each calling the previous one twice: 2^n inlined calls from n + 2 lines. */
static char *doubling_source(int n) {
    Strbuf s = {0};
    sb_puts(&s, "fn f0(v) { return v + 1.0; }\n");
    for (int i = 1; i <= n; i++) sb_printf(&s, "fn f%d(v) { return f%d(f%d(v)); }\n", i, i - 1, i - 1);
    sb_printf(&s, "kernel k(x: tensor<f32>[N], y: tensor<f32>[N]) grid(1) {\n"
                  "  y[0 :+ 16] = f%d(x[0 :+ 16]);\n}\n", n);
    return s.data;
}

/* Canonicalize walked the whole function per fold and cse scanned every available op, and
 * inlining replaced each call's results by a walk: quadratic. 2^15 inlined calls and 48000
 * statements that canonicalize removes took minutes; linear passes take about a second. */
Test(reliability, compile_time_is_linear, .timeout = 60) {
    char msg[4096];
    char *src = doubling_source(15);
    cr_assert_eq(compile_ir(src, msg, sizeof msg), TILE_OK, "%s", msg);
    free(src);
    Strbuf s = {0};
    sb_puts(&s, "kernel k(x: tensor<f32>[N], y: tensor<f32>[N]) grid(1) {\n  var a = x[0 :+ 16];\n");
    for (int i = 0; i < 48000; i++) sb_puts(&s, i % 2 ? "  a = a * 1.0;\n" : "  a = a + a;\n");
    sb_puts(&s, "  y[0 :+ 16] = a;\n}\n");
    cr_assert_eq(compile_ir(s.data, msg, sizeof msg), TILE_OK, "%s", msg);
    sb_free(&s);
}

/* 2^40 inlined calls from 42 lines: a located error, not a hang or gigabytes. */
Test(reliability, inlining_expansion_is_bounded, .timeout = 60) {
    char msg[4096];
    char *src = doubling_source(40);
    cr_assert_eq(compile_ir(src, msg, sizeof msg), TILE_ERROR_COMPILE, "%s", msg);
    cr_assert(strstr(msg, "t.tile:") == msg && strstr(msg, ": error: inlining 'f"), "%s", msg);
    cr_assert(strstr(msg, "larger than 524288 operations"), "%s", msg);
    free(src);
}

/* Defect 1: a tile whose size has a small power-of-two factor (2047, 1000) or that is huge
 * (2^16 and more) made GPU code generation take minutes and gigabytes (every thread held
 * hundreds or thousands of elements). The layout pass now refuses, at the op, a layout with
 * more than 256 elements in a thread; what it accepts compiles in seconds. */
Test(reliability, gpu_tiles_with_too_many_elements_per_thread_are_located_errors, .timeout = 120) {
#ifndef TILE_HAVE_LLVM
    cr_skip_test("built without the LLVM backend");
#endif
    tile_context *ctx = test_vm_context();
    tile_program *p = test_load_program(ctx, "stdlib/core/vector_add.tile");
    static const int64_t refused[] = {2047, 1000, 1 << 16, 1 << 20}, accepted[] = {2048, 127};
    for (int i = 0; i < 4; i++) {
        tile_constant c = {"BLOCK", 0, refused[i], 0};
        char *ptx = NULL;
        tile_emit_options opt = {.arch = "sm_80"};
        tile_status st = tile_program_emit(p, "vector_add", &c, 1, TILE_EMIT_PTX, &opt, &ptx, NULL);
        cr_assert_eq(st, TILE_ERROR_COMPILE, "BLOCK=%lld: %s", (long long)refused[i], tile_status_name(st));
        cr_assert(strstr(tile_context_message(ctx), "vector_add.tile:7:") &&
                      strstr(tile_context_message(ctx), "elements in each of the block's 128 threads"),
                  "%s", tile_context_message(ctx));
        tile_string_free(ptx);
    }
    for (int i = 0; i < 2; i++) {
        tile_constant c = {"BLOCK", 0, accepted[i], 0};
        char *ptx = NULL;
        tile_emit_options opt = {.arch = "sm_80"};
        tile_status st = tile_program_emit(p, "vector_add", &c, 1, TILE_EMIT_PTX, &opt, &ptx, NULL);
        cr_assert_eq(st, TILE_OK, "BLOCK=%lld: %s", (long long)accepted[i], tile_context_message(ctx));
        tile_string_free(ptx);
    }
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}
