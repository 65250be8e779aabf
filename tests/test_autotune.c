/*
 * test_autotune.c: kernels with an autotune(...) clause on the VM (runtime/autotune.c).
 *
 * The VM runs the first candidate unless TILE_AUTOTUNE=vm asks it to time them; these tests ask,
 * and replace the measured times by chosen ones (rt_autotune_test_times), so that which
 * candidate wins is decided by the test, not by the machine's load. They check what the disk
 * cache holds after each step (files in a private temporary TILE_CACHE_DIR): the winner stored
 * by one context and read back by a second one (which would choose differently if it timed),
 * a changed candidate list re-tuned while an unchanged kernel of the same file is not, corrupt,
 * foreign and non-autotune entries ignored and replaced, TILE_AUTOTUNE=0, shape buckets, and
 * that the outputs of a kernel that reads them (`y += ...`) are written exactly once.
 * Criterion runs each test in its own process, so the environment set by one stays there.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "testutil.h"

/* y += alpha * x, three candidates of BLOCK; a second kernel with its own list. */
static const char *source_v1 =
    "kernel axpy<BLOCK = 256>(x: tensor<f32>[N], y: tensor<f32>[N], alpha: f32)\n"
    "  grid(cdiv(N, BLOCK))\n"
    "  autotune(key = [N], config(), config(BLOCK = 64), config(BLOCK = 512))\n"
    "{\n"
    "  let i = block_id(0) * BLOCK;\n"
    "  y[i :+ BLOCK] += alpha * x[i :+ BLOCK];\n"
    "}\n"
    "kernel copy<BLOCK = 128>(x: tensor<f32>[N], y: tensor<f32>[N])\n"
    "  grid(cdiv(N, BLOCK))\n"
    "  autotune(key = [N], config(), config(BLOCK = 32))\n"
    "{\n"
    "  let i = block_id(0) * BLOCK;\n"
    "  y[i :+ BLOCK] = x[i :+ BLOCK];\n"
    "}\n";

/* source_v1 with one more axpy candidate; copy's clause and everything else unchanged. */
static const char *source_v2 =
    "kernel axpy<BLOCK = 256>(x: tensor<f32>[N], y: tensor<f32>[N], alpha: f32)\n"
    "  grid(cdiv(N, BLOCK))\n"
    "  autotune(key = [N], config(), config(BLOCK = 64), config(BLOCK = 512), config(BLOCK = 1024))\n"
    "{\n"
    "  let i = block_id(0) * BLOCK;\n"
    "  y[i :+ BLOCK] += alpha * x[i :+ BLOCK];\n"
    "}\n"
    "kernel copy<BLOCK = 128>(x: tensor<f32>[N], y: tensor<f32>[N])\n"
    "  grid(cdiv(N, BLOCK))\n"
    "  autotune(key = [N], config(), config(BLOCK = 32))\n"
    "{\n"
    "  let i = block_id(0) * BLOCK;\n"
    "  y[i :+ BLOCK] = x[i :+ BLOCK];\n"
    "}\n";

static char cache_dir[64];
static uint32_t fastest; /* the candidate the fake timer makes fastest */

static double fake_times(uint32_t candidate) { return candidate == fastest ? 1.0 : 2.0 + candidate; }

static void setup(void) {
    strcpy(cache_dir, "/tmp/tile-autotune-XXXXXX");
    cr_assert_not_null(mkdtemp(cache_dir));
    setenv("TILE_CACHE_DIR", cache_dir, 1);
    setenv("TILE_AUTOTUNE", "vm", 1);
    unsetenv("TILE_CACHE");
    rt_autotune_test_times = fake_times;
}

static void teardown(void) {
    DIR *d = opendir(cache_dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", cache_dir, e->d_name);
        unlink(path);
    }
    if (d) closedir(d);
    rmdir(cache_dir);
}

TestSuite(autotune, .init = setup, .fini = teardown);

/* The .tcache files in the cache directory (names into names[] when given). */
static int count_entries(char names[][128], int max) {
    int n = 0;
    DIR *d = opendir(cache_dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len > 7 && strcmp(e->d_name + len - 7, ".tcache") == 0) {
            if (names && n < max) snprintf(names[n], 128, "%s", e->d_name);
            n++;
        }
    }
    if (d) closedir(d);
    return n;
}

/* One launch of `kernel` of source on a new VM context with n elements (x[i] = i, y[i] = 1,
 * alpha = 2); the report of the launch into *report (malloc'd, or NULL), y checked against
 * 1 + 2 * x for axpy and x for copy: written exactly once. */
static void launch(const char *source, const char *kernel, int n, const tile_constant *consts, size_t nconsts,
                   char **report) {
    tile_context *ctx;
    cr_assert_eq(tile_context_create(TILE_DEVICE_VM, 0, &ctx), TILE_OK);
    tile_program *p;
    cr_assert_eq(tile_program_from_string(ctx, "tuned.tile", source, strlen(source), &p), TILE_OK, "%s",
                 tile_context_message(ctx));
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(p, kernel, consts, nconsts, &k), TILE_OK, "%s", tile_context_message(ctx));
    float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
    for (int i = 0; i < n; i++) x[i] = (float)i, y[i] = 1.0f;
    int64_t shape[1] = {n};
    bool axpy = strcmp(kernel, "axpy") == 0;
    tile_arg args[3] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, x, 1, shape)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, y, 1, shape)},
                        {.kind = TILE_ARG_FLOAT, .f = 2.0}};
    cr_assert_eq(tile_kernel_launch(k, args, axpy ? 3 : 2, NULL), TILE_OK, "%s", tile_context_message(ctx));
    for (int i = 0; i < n; i++)
        cr_assert_eq(y[i], axpy ? 1.0f + 2.0f * (float)i : (float)i, "y[%d] = %g: the outputs were written %s", i,
                     (double)y[i], "more than once");
    cr_assert_eq(tile_kernel_autotune_report(k, report), TILE_OK);
    free(x);
    free(y);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

static void expect_contains(const char *report, const char *what) {
    cr_assert_not_null(report, "no report");
    cr_expect_not_null(strstr(report, what), "the report lacks \"%s\":\n%s", what, report);
}

Test(autotune, vm_runs_the_first_candidate_unless_asked) {
    unsetenv("TILE_AUTOTUNE");
    char *report;
    launch(source_v1, "axpy", 1000, NULL, 0, &report);
    expect_contains(report, "the VM runs the first candidate");
    expect_contains(report, "chose candidate 1: config() (the defaults)");
    cr_expect_eq(count_entries(NULL, 0), 0, "nothing timed, nothing stored");
    free(report);
}

Test(autotune, off_runs_the_first_candidate) {
    setenv("TILE_AUTOTUNE", "0", 1);
    fastest = 2;
    char *report;
    launch(source_v1, "axpy", 1000, NULL, 0, &report);
    expect_contains(report, "TILE_AUTOTUNE=0 runs the first candidate");
    expect_contains(report, "chose candidate 1:");
    cr_expect_eq(count_entries(NULL, 0), 0);
    free(report);
}

Test(autotune, winner_stored_and_read_back_by_another_context) {
    fastest = 2;
    char *report;
    launch(source_v1, "axpy", 1000, NULL, 0, &report);
    expect_contains(report, "bucket N=1024 (1000)");
    expect_contains(report, "timed now");
    expect_contains(report, "stored in");
    expect_contains(report, "chose candidate 3: config(BLOCK = 512)");
    free(report);
    cr_assert_eq(count_entries(NULL, 0), 1);

    fastest = 1; /* timing now would choose candidate 2: the cache must win */
    launch(source_v1, "axpy", 1000, NULL, 0, &report);
    expect_contains(report, "from the disk cache");
    expect_contains(report, "chose candidate 3: config(BLOCK = 512)");
    cr_expect_null(strstr(report, "timed now"), "%s", report);
    free(report);
    cr_expect_eq(count_entries(NULL, 0), 1);
}

Test(autotune, buckets_are_powers_of_two) {
    fastest = 0;
    char *report;
    launch(source_v1, "axpy", 1000, NULL, 0, &report);
    free(report);
    launch(source_v1, "axpy", 1024, NULL, 0, &report); /* the same bucket */
    expect_contains(report, "from the disk cache");
    free(report);
    cr_expect_eq(count_entries(NULL, 0), 1);
    launch(source_v1, "axpy", 1025, NULL, 0, &report); /* the next one */
    expect_contains(report, "bucket N=2048 (1025)");
    expect_contains(report, "timed now");
    free(report);
    cr_expect_eq(count_entries(NULL, 0), 2);
}

Test(autotune, changed_list_retunes_only_that_kernel) {
    fastest = 1;
    char *report;
    launch(source_v1, "axpy", 300, NULL, 0, &report);
    free(report);
    launch(source_v1, "copy", 300, NULL, 0, &report);
    expect_contains(report, "chose candidate 2: config(BLOCK = 32)");
    free(report);
    cr_assert_eq(count_entries(NULL, 0), 2);

    fastest = 3;
    launch(source_v2, "axpy", 300, NULL, 0, &report);
    expect_contains(report, "timed now");
    expect_contains(report, "chose candidate 4: config(BLOCK = 1024)");
    free(report);
    cr_expect_eq(count_entries(NULL, 0), 3, "the new list has its own entry");
    fastest = 0;
    launch(source_v2, "copy", 300, NULL, 0, &report);
    expect_contains(report, "from the disk cache");
    expect_contains(report, "chose candidate 2: config(BLOCK = 32)");
    free(report);
    cr_expect_eq(count_entries(NULL, 0), 3);
}

/* Overwrites byte `offset` of the only entry with its complement. */
static void damage_entry(long offset) {
    char names[1][128], path[512];
    cr_assert_eq(count_entries(names, 1), 1);
    snprintf(path, sizeof path, "%s/%s", cache_dir, names[0]);
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    unsigned char c;
    cr_assert_eq(pread(fd, &c, 1, offset), 1);
    c = (unsigned char)~c;
    cr_assert_eq(pwrite(fd, &c, 1, offset), 1);
    close(fd);
}

Test(autotune, corrupt_entry_is_ignored_and_retuned) {
    fastest = 2;
    char *report;
    launch(source_v1, "axpy", 1000, NULL, 0, &report);
    free(report);
    damage_entry(CACHE_HEADER_SIZE + 20); /* inside the payload: the checksum fails */
    fastest = 1;
    launch(source_v1, "axpy", 1000, NULL, 0, &report);
    expect_contains(report, "disk cache entry ignored");
    expect_contains(report, "checksum");
    expect_contains(report, "timed now");
    expect_contains(report, "chose candidate 2:");
    free(report);
    fastest = 0;
    launch(source_v1, "axpy", 1000, NULL, 0, &report); /* the replacement is whole */
    expect_contains(report, "from the disk cache");
    expect_contains(report, "chose candidate 2:");
    free(report);
}

Test(autotune, foreign_and_non_autotune_entries_are_ignored) {
    fastest = 2;
    char *report;
    launch(source_v1, "axpy", 1000, NULL, 0, &report);
    free(report);
    char names[1][128], path[512];
    cr_assert_eq(count_entries(names, 1), 1);
    snprintf(path, sizeof path, "%s/%s", cache_dir, names[0]);
    CacheKey key;
    for (int i = 0; i < 32; i++) sscanf(names[0] + 2 * i, "%2hhx", &key.bytes[i]);

    /* a valid entry under this key whose payload is not an autotune record (a kernel image) */
    CacheEntry e = {.image = (uint8_t *)"\x7f" "ELF not a record", .len = 17};
    Strbuf err = {0};
    cr_assert(cache_disk_store(cache_dir, &key, &e, &err), "%s", sb_str(&err));
    fastest = 0;
    launch(source_v1, "axpy", 1000, NULL, 0, &report);
    expect_contains(report, "not an autotune record");
    expect_contains(report, "chose candidate 1:");
    free(report);

    /* another key's entry copied over this one's name: the key inside does not match */
    CacheKey other = key;
    other.bytes[0] ^= 1;
    cr_assert(cache_disk_store(cache_dir, &other, &e, &err), "%s", sb_str(&err));
    Strbuf other_path = {0};
    cache_entry_path(cache_dir, &other, &other_path);
    cr_assert_eq(rename(sb_str(&other_path), path), 0);
    fastest = 2;
    launch(source_v1, "axpy", 1000, NULL, 0, &report);
    expect_contains(report, "does not match");
    expect_contains(report, "chose candidate 3:");
    free(report);
    sb_free(&other_path);
    sb_free(&err);
}

Test(autotune, explicit_tuned_constant_turns_it_off) {
    fastest = 2;
    tile_constant block = {.name = "BLOCK", .i = 64};
    char *report;
    launch(source_v1, "axpy", 1000, &block, 1, &report);
    cr_expect_null(report, "a kernel with BLOCK given does not autotune: %s", report);
    cr_expect_eq(count_entries(NULL, 0), 0);
}

Test(autotune, cache_off_still_tunes) {
    setenv("TILE_CACHE", "0", 1);
    fastest = 1;
    char *report;
    launch(source_v1, "axpy", 1000, NULL, 0, &report);
    expect_contains(report, "timed now");
    expect_contains(report, "not stored: the disk cache is off");
    expect_contains(report, "chose candidate 2:");
    free(report);
    cr_expect_eq(count_entries(NULL, 0), 0);
}

/* C = A @ B with gemm kernel k on the VM at an odd shape, checked against doubles: every
 * candidate must compute the same product, or tuning could choose a wrong one. */
static void check_gemm(tile_context *ctx, tile_kernel *k, uint32_t candidate) {
    enum { M = 70, N = 300, K = 90 };
    static double a[M * K], b[K * N], c[M * N];
    static uint16_t pa[M * K], pb[K * N], pc[M * N];
    for (int i = 0; i < M * K; i++) a[i] = (double)((i * 7 % 13) - 6) / 8;
    for (int i = 0; i < K * N; i++) b[i] = (double)((i * 5 % 11) - 5) / 8;
    tile_pack(TILE_BF16, a, M * K, pa);
    tile_pack(TILE_BF16, b, K * N, pb);
    memset(pc, 0xff, sizeof pc);
    int64_t sa[2] = {M, K}, sb[2] = {K, N}, sc[2] = {M, N};
    tile_arg args[3] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, pa, 2, sa)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, pb, 2, sb)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, pc, 2, sc)}};
    cr_assert_eq(tile_kernel_launch(k, args, 3, NULL), TILE_OK, "candidate %u: %s", candidate + 1,
                 tile_context_message(ctx));
    tile_unpack(TILE_BF16, pc, M * N, c);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double want = 0;
            for (int q = 0; q < K; q++) want += a[i * K + q] * b[q * N + j];
            cr_assert_leq(fabs(c[i * N + j] - want), 0.01 * (1 + fabs(want)), "candidate %u: C[%d][%d] = %g, want %g",
                          candidate + 1, i, j, c[i * N + j], want);
        }
}

/* The stdlib gemm's clause: the defaults first, and every candidate compiles and is right (VM). */
Test(autotune, stdlib_gemm_candidates_compile) {
    unsetenv("TILE_AUTOTUNE");
    tile_context *ctx = test_vm_context();
    tile_program *p = test_load_program(ctx, "stdlib/core/gemm.tile");
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(p, "gemm", NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_not_null(k->autotune);
    Arena arena;
    arena_init(&arena);
    AutotuneSpec spec;
    DiagList d = {0};
    cr_assert(autotune_read(p->ast->decls.items[0], &arena, &spec, &d), "%s", sb_str(&d.text));
    cr_assert_geq(spec.nconfigs, 2);
    cr_expect_eq(spec.configs[0].nbindings, 0, "the first candidate is the defaults");
    cr_expect_eq(spec.nkeys, 3);
    for (uint32_t c = 0; c < spec.nconfigs; c++) {
        tile_constant consts[16];
        for (uint32_t b = 0; b < spec.configs[c].nbindings; b++) {
            const ConstBinding *x = &spec.configs[c].bindings[b];
            consts[b] = (tile_constant){x->name, x->is_float, x->i, x->f};
        }
        tile_kernel *ck;
        cr_assert_eq(tile_program_get_kernel(p, "gemm", consts, spec.configs[c].nbindings, &ck), TILE_OK,
                     "candidate %u: %s", c + 1, tile_context_message(ctx));
        check_gemm(ctx, ck, c);
    }
    diag_free(&d);
    arena_free(&arena);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* A candidate that does not compile is left out (and said so); when none runs the launch fails
 * with a message, and nothing crashes or is stored. */
Test(autotune, failed_candidates_are_left_out) {
    static const char *src =
        "kernel fill<BLOCK = 128>(y: tensor<f32>[N])\n"
        "  grid(cdiv(N, BLOCK))\n"
        "  autotune(key = [N], config(), config(BLOCK = 0), config(BLOCK = 64))\n"
        "{\n"
        "  y[block_id(0) * BLOCK :+ BLOCK] = ones<f32>[BLOCK];\n"
        "}\n"
        "kernel never<BLOCK = 128>(y: tensor<f32>[N])\n"
        "  grid(cdiv(N, BLOCK))\n"
        "  autotune(key = [N], config(BLOCK = 0), config(BLOCK = -64))\n"
        "{\n"
        "  y[block_id(0) * BLOCK :+ BLOCK] = ones<f32>[BLOCK];\n"
        "}\n";
    fastest = 1; /* the one that fails: the fastest of those that ran is candidate 1 */
    tile_context *ctx;
    cr_assert_eq(tile_context_create(TILE_DEVICE_VM, 0, &ctx), TILE_OK);
    tile_program *p;
    cr_assert_eq(tile_program_from_string(ctx, "fails.tile", src, strlen(src), &p), TILE_OK);
    float y[300];
    int64_t shape[1] = {300};
    tile_arg arg = {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, y, 1, shape)};
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(p, "fill", NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
    memset(y, 0, sizeof y);
    cr_assert_eq(tile_kernel_launch(k, &arg, 1, NULL), TILE_OK, "%s", tile_context_message(ctx));
    for (int i = 0; i < 300; i++) cr_assert_eq(y[i], 1.0f);
    char *report;
    cr_assert_eq(tile_kernel_autotune_report(k, &report), TILE_OK);
    expect_contains(report, "time 2 failed config(BLOCK = 0):");
    expect_contains(report, "division by zero");
    expect_contains(report, "chose candidate 1:");
    free(report);

    cr_assert_eq(tile_program_get_kernel(p, "never", NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(tile_kernel_launch(k, &arg, 1, NULL), TILE_ERROR_INVALID_ARGUMENT);
    cr_expect_not_null(strstr(tile_context_message(ctx), "no candidate ran"), "%s", tile_context_message(ctx));
    cr_expect_eq(count_entries(NULL, 0), 1, "only fill's winner is stored");
    tile_program_destroy(p);
    tile_context_destroy(ctx);

    setenv("TILE_AUTOTUNE", "0", 1); /* untuned, the first candidate's error is the launch's */
    cr_assert_eq(tile_context_create(TILE_DEVICE_VM, 0, &ctx), TILE_OK);
    cr_assert_eq(tile_program_from_string(ctx, "fails.tile", src, strlen(src), &p), TILE_OK);
    cr_assert_eq(tile_program_get_kernel(p, "never", NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(tile_kernel_launch(k, &arg, 1, NULL), TILE_ERROR_COMPILE);
    cr_expect_not_null(strstr(tile_context_message(ctx), "division by zero"), "%s", tile_context_message(ctx));
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}
