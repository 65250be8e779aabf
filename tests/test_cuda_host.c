/* test_cuda_host.c: the cuda device's host side without a GPU, on the fake driver
 * (tests/fake_cuda/fake_cuda.c: ctest runs this suite with build/fake_cuda first in
 * LD_LIBRARY_PATH, so libtile's dlopen("libcuda.so.1") gets it). The fake reports an sm_90 device
 * with 132 multiprocessors, takes any module and records each launch instead of running it; the
 * kernels are compiled for real (LLVM, and a cubin where nvJitLink or ptxas is installed).
 *
 * What is checked: a launch reaches cuLaunchKernel with the grid of the kernel's grid region,
 * the block of the compiled function and the tensor's data pointer first; the launch memo packs
 * each launch's own pointers and takes the full path (checks, facts, grid) for anything that
 * would decide otherwise; num_sms() in a grid, and tile_context_num_sms, is
 * the device's count; a disk-cache hit in a new context loads the kernel without running a GPU
 * pass (tile_compile_times' passes do not move across the launch) and still knows the variant's
 * TMA tensor maps (they come from the entry's launch data), which the launch then encodes; the
 * maps of rank-4 tensors (flash_fwd's K and V) get the tensors' four sizes and three strides and a
 * box of 1 on the leading dimensions, and a tensor TMA cannot take launches the generic kernel. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/cache.h"
#include "runtime/runtime.h"
#include "testutil.h"

/* The fake driver's record (fake_cuda.c's FakeCudaStats). */
typedef struct FakeCudaStats {
    uint64_t launches;
    unsigned grid[3], block[3];
    unsigned shared_bytes;
    void **params;
    uint64_t param0;
    uint64_t modules_loaded;
    uint64_t tensor_maps;
    uint64_t context_sets;
    uint64_t tensor_maps_refused;
    unsigned map_rank;
    uint64_t map_dims[5], map_strides[4];
    unsigned map_box[5];
    int map_swizzle;
    uint64_t cluster_launches;
    unsigned cluster[3];
} FakeCudaStats;

static FakeCudaStats *fake(void) {
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    cr_assert_not_null(lib, "libcuda.so.1 is not loaded");
    FakeCudaStats *(*stats)(void);
    void *sym = dlsym(lib, "fake_cuda_stats");
    cr_assert_not_null(sym, "libcuda.so.1 is not the fake driver (run through ctest: LD_LIBRARY_PATH=build/fake_cuda)");
    memcpy(&stats, &sym, sizeof sym);
    dlclose(lib);
    return stats();
}

static tile_context *open_fake(void) {
    tile_context *ctx;
    tile_status st = tile_context_create(TILE_DEVICE_CUDA, 0, &ctx);
    cr_assert_eq(st, TILE_OK, "%s", tile_context_message(NULL));
    cr_assert(strstr(tile_context_device_name(ctx), "fake GPU"), "device: %s", tile_context_device_name(ctx));
    return ctx;
}

static tile_kernel *stdlib_kernel(tile_context *ctx, const char *file, const char *name, const tile_constant *c,
                                  size_t nc, tile_program **p) {
    char path[1024];
    snprintf(path, sizeof path, "%s/stdlib/core/%s", TILE_SOURCE_DIR, file);
    tile_kernel *k;
    cr_assert_eq(tile_program_from_file(ctx, path, p), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(tile_program_get_kernel(*p, name, c, nc, &k), TILE_OK, "%s", tile_context_message(ctx));
    return k;
}

static double passes_seconds(void) {
    tile_compile_times t;
    tile_compile_times_get(&t);
    return t.passes;
}

/* A fresh disk cache for one test (TILE_CACHE_DIR, the cache on), and its removal. */
static void cache_dir_open(char *dir) {
    cr_assert_not_null(mkdtemp(dir));
    setenv("TILE_CACHE_DIR", dir, 1);
    setenv("TILE_CACHE", "1", 1);
}

static void cache_dir_close(const char *dir) {
    unsetenv("TILE_CACHE_DIR");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(cuda_host, launch_reaches_the_driver_with_grid_block_and_pointers) {
    setenv("TILE_CACHE", "0", 1); /* (each test is a process of its own) */
    tile_context *ctx = open_fake();
    cr_assert_str_eq(rt_cuda_arch(ctx), "sm_90a");
    tile_program *p;
    tile_kernel *k = stdlib_kernel(ctx, "vector_add.tile", "vector_add", NULL, 0, &p);
    int64_t n = 5000;
    void *bufs[3];
    tile_arg args[3];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(tile_alloc(ctx, (size_t)n * 4, &bufs[i]), TILE_OK);
        args[i] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, bufs[i], 1, &n)};
    }
    FakeCudaStats *s = fake();
    uint64_t before = s->launches;
    for (int r = 0; r < 3; r++) { /* the first compiles; the others take the fast path */
        cr_assert_eq(tile_kernel_launch(k, args, 3, NULL), TILE_OK, "%s", tile_context_message(ctx));
        cr_assert_eq(s->launches, before + (uint64_t)r + 1);
        cr_assert_eq(s->grid[0], 5, "cdiv(5000, 1024) blocks, not %u", s->grid[0]);
        cr_assert_eq(s->grid[1], 1);
        cr_assert_eq(s->block[0], 128, "4 warps");
        cr_assert_eq(s->param0, (uint64_t)(uintptr_t)bufs[0], "a's data pointer first");
    }
    /* a different size: the same variant, another grid */
    n = 1024 * 7 + 3;
    for (int i = 0; i < 3; i++) args[i].tensor = tile_tensor_contiguous(TILE_F32, bufs[i], 1, &n);
    cr_assert_eq(tile_kernel_launch(k, args, 3, NULL), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(s->grid[0], 8);
    cr_assert_eq(rt_kernel_num_variants(k), 1);
    /* an argument error is still reported, and nothing is launched */
    before = s->launches;
    cr_assert_eq(tile_kernel_launch(k, args, 2, NULL), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(s->launches, before);
    for (int i = 0; i < 3; i++) tile_free(ctx, bufs[i]);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* The launch memo reuses a signature's decisions but never its pointers, and what it keys on
 * changes the decision: a pointer 16-byte aligned or not (another variant), one not aligned to
 * its elements (an error, after and before memos), more signatures than a kernel keeps. */
Test(cuda_host, memo_packs_new_pointers_and_keys_on_what_decides) {
    setenv("TILE_CACHE", "0", 1); /* (each test is a process of its own) */
    tile_context *ctx = open_fake();
    tile_program *p;
    tile_kernel *k = stdlib_kernel(ctx, "vector_add.tile", "vector_add", NULL, 0, &p);
    enum { MAXN = 40000 };
    void *bufs[3];
    for (int i = 0; i < 3; i++) cr_assert_eq(tile_alloc(ctx, MAXN * 4 + 64, &bufs[i]), TILE_OK);
    FakeCudaStats *s = fake();
    tile_arg args[3];
    int64_t n = 4096;
    for (int round = 0; round < 4; round++) {
        /* rounds 0 and 2: aligned; 1: 4 bytes in (element-aligned, not 16); 3: aligned, others */
        size_t offset = round == 1 ? 4 : round == 3 ? 64 : 0;
        for (int i = 0; i < 3; i++)
            args[i] = (tile_arg){.kind = TILE_ARG_TENSOR,
                                 .tensor = tile_tensor_contiguous(TILE_F32, (char *)bufs[i] + offset, 1, &n)};
        cr_assert_eq(tile_kernel_launch(k, args, 3, NULL), TILE_OK, "%s", tile_context_message(ctx));
        cr_assert_eq(s->param0, (uint64_t)(uintptr_t)((char *)bufs[0] + offset), "round %d: the pointer of this launch", round);
        cr_assert_eq(s->grid[0], 4);
    }
    cr_assert_eq(rt_kernel_num_variants(k), 2, "aligned and not: two variants");
    /* 2 bytes in: not aligned to f32, whatever the memos say */
    args[1].tensor.data = (char *)bufs[1] + 2;
    uint64_t before = s->launches;
    cr_assert_eq(tile_kernel_launch(k, args, 3, NULL), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(tile_context_message(ctx), "not aligned"), "%s", tile_context_message(ctx));
    cr_assert_eq(s->launches, before);
    /* a null pointer with elements, where a memo has the same sizes */
    args[1].tensor.data = NULL;
    cr_assert_eq(tile_kernel_launch(k, args, 3, NULL), TILE_ERROR_INVALID_ARGUMENT);
    /* more sizes than a kernel keeps memos for: each launch still gets its own grid */
    for (int64_t m = 1; m <= 3 * RT_LAUNCH_MEMOS; m++) {
        n = m * 1000 + 1;
        for (int i = 0; i < 3; i++) args[i].tensor = tile_tensor_contiguous(TILE_F32, bufs[i], 1, &n);
        for (int twice = 0; twice < 2; twice++) {
            cr_assert_eq(tile_kernel_launch(k, args, 3, NULL), TILE_OK, "%s", tile_context_message(ctx));
            cr_assert_eq(s->grid[0], (unsigned)((n + 1023) / 1024), "n = %lld", (long long)n);
        }
    }
    /* a mismatched size between a and b is caught even though a's and c's match a memo */
    n = 1001;
    int64_t other = 1002;
    for (int i = 0; i < 3; i++) args[i].tensor = tile_tensor_contiguous(TILE_F32, bufs[i], 1, i == 1 ? &other : &n);
    cr_assert_eq(tile_kernel_launch(k, args, 3, NULL), TILE_ERROR_INVALID_ARGUMENT);
    for (int i = 0; i < 3; i++) tile_free(ctx, bufs[i]);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* An autotuned kernel's memo launches the candidate its bucket chose (not the kernel itself,
 * whose timing launches leave no memo) and keeps the report of the latest launch right. */
static double block512_fastest(uint32_t candidate) { return candidate == 1 ? 1.0 : 2.0; }

Test(cuda_host, autotuned_memo_launches_the_choice) {
    setenv("TILE_CACHE", "0", 1); /* (each test is a process of its own) */
    tile_context *ctx = open_fake();
    rt_autotune_test_times = block512_fastest;
    static const char src[] = "kernel va<BLOCK = 1024>(a: tensor<f32>[N], b: tensor<f32>[N], c: tensor<f32>[N])\n"
                              "  grid(cdiv(N, BLOCK))\n"
                              "  autotune(key = [N], config(), config(BLOCK = 512))\n"
                              "{\n"
                              "  let i = block_id(0) * BLOCK;\n"
                              "  c[i :+ BLOCK] = a[i :+ BLOCK] + b[i :+ BLOCK];\n"
                              "}\n";
    tile_program *p;
    tile_kernel *k;
    cr_assert_eq(tile_program_from_string(ctx, "va.tile", src, sizeof src - 1, &p), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(tile_program_get_kernel(p, "va", NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
    void *bufs[3];
    for (int i = 0; i < 3; i++) cr_assert_eq(tile_alloc(ctx, 100000 * 4, &bufs[i]), TILE_OK);
    FakeCudaStats *s = fake();
    const int64_t sizes[3] = {5000, 100000, 5000};
    const unsigned grids[3] = {10, 196, 10}; /* cdiv(N, 512): the second candidate wins */
    char *reports[3];
    for (int round = 0; round < 3; round++) {
        tile_arg args[3];
        for (int i = 0; i < 3; i++)
            args[i] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, bufs[i], 1, &sizes[round])};
        for (int twice = 0; twice < 2; twice++) { /* the second launch of a size takes the memo */
            uint64_t before = s->launches;
            cr_assert_eq(tile_kernel_launch(k, args, 3, NULL), TILE_OK, "%s", tile_context_message(ctx));
            cr_assert_eq(s->grid[0], grids[round], "round %d: grid %u", round, s->grid[0]);
            cr_assert_eq(s->param0, (uint64_t)(uintptr_t)bufs[0]);
            if (twice) cr_assert_eq(s->launches, before + 1, "a memo hit launches once, times nothing");
        }
        cr_assert_eq(tile_kernel_autotune_report(k, &reports[round]), TILE_OK);
        cr_assert_not_null(reports[round]);
    }
    cr_assert_str_eq(reports[2], reports[0], "the latest launch's report: the 5000 bucket's again");
    cr_assert_str_neq(reports[1], reports[0]);
    for (int i = 0; i < 3; i++) tile_free(ctx, bufs[i]), tile_string_free(reports[i]);
    rt_autotune_test_times = NULL;
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* A first tuning on a GPU compiles its candidates side by side (TILE_AUTOTUNE_THREADS of them at
 * once) before it times them, and chooses as the one-by-one compile does; a candidate that does
 * not compile is reported by the timing and left out, on either path. */
static double block256_fastest(uint32_t candidate) { return candidate == 2 ? 1.0 : 2.0; }

Test(cuda_host, autotune_compiles_the_candidates_side_by_side) {
    setenv("TILE_CACHE", "0", 1); /* (each test is a process of its own) */
    static const char src[] = "kernel va<BLOCK = 1024>(a: tensor<f32>[N], b: tensor<f32>[N], c: tensor<f32>[N])\n"
                              "  grid(cdiv(N, BLOCK))\n"
                              "  autotune(key = [N], config(), config(BLOCK = 512), config(BLOCK = 256),\n"
                              "           config(BLOCK = 0), config(BLOCK = 128))\n"
                              "{\n"
                              "  let i = block_id(0) * BLOCK;\n"
                              "  c[i :+ BLOCK] = a[i :+ BLOCK] + b[i :+ BLOCK];\n"
                              "}\n";
    rt_autotune_test_times = block256_fastest;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int by_cores = cores < 2 ? 0 : cores > 5 ? 5 : (int)cores; /* what a bad value falls back to */
    for (int round = 0; round < 3; round++) {
        int threads = round == 0 ? 1 : 3;
        char text[8];
        snprintf(text, sizeof text, "%d", threads);
        setenv("TILE_AUTOTUNE_THREADS", round == 2 ? "many" : text, 1); /* "many": said and ignored */
        tile_context *ctx = open_fake();
        FakeCudaStats *s = fake();
        tile_program *p;
        tile_kernel *k;
        cr_assert_eq(tile_program_from_string(ctx, "va.tile", src, sizeof src - 1, &p), TILE_OK, "%s",
                     tile_context_message(ctx));
        cr_assert_eq(tile_program_get_kernel(p, "va", NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
        void *bufs[3];
        for (int i = 0; i < 3; i++) cr_assert_eq(tile_alloc(ctx, 5000 * 4, &bufs[i]), TILE_OK);
        const int64_t n = 5000;
        tile_arg args[3];
        for (int i = 0; i < 3; i++)
            args[i] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, bufs[i], 1, &n)};
        uint64_t modules = s->modules_loaded;
        tile_compile_times before, after;
        tile_compile_times_get(&before);
        cr_assert_eq(tile_kernel_launch(k, args, 3, NULL), TILE_OK, "%s", tile_context_message(ctx));
        tile_compile_times_get(&after);
        cr_assert_eq(s->grid[0], 20u, "cdiv(5000, 256): the third candidate won");
        cr_assert_eq(s->modules_loaded, modules + 4, "four candidates compile, each once");
        cr_assert_gt(after.codegen, before.codegen, "the compiles' times reach the calling thread");
        int want = round == 2 ? by_cores : threads == 1 ? 0 : 3;
        cr_assert_eq(atomic_load(&rt_autotune_prebuild_last_threads), want, "round %d", round);
        char *report;
        cr_assert_eq(tile_kernel_autotune_report(k, &report), TILE_OK);
        cr_assert(strstr(report, "time 4 failed config(BLOCK = 0)"), "%s", report);
        cr_assert(strstr(report, "chose candidate 3"), "%s", report);
        char line[64];
        snprintf(line, sizeof line, "compiled 5 candidates on %d threads", want);
        cr_assert_eq(strstr(report, line) != NULL, want > 1, "%s", report);
        tile_string_free(report);
        for (int i = 0; i < 3; i++) tile_free(ctx, bufs[i]);
        tile_program_destroy(p);
        tile_context_destroy(ctx);
    }
    unsetenv("TILE_AUTOTUNE_THREADS");
    rt_autotune_test_times = NULL;
}

/* gemm_persistent's grid is min(tiles, num_sms()): the device's 132, not the VM's default; and
 * tile_context_num_sms tells a caller the same 132. */
Test(cuda_host, num_sms_in_a_grid_is_the_devices) {
    setenv("TILE_CACHE", "0", 1); /* (each test is a process of its own) */
    tile_context *ctx = open_fake();
    tile_program *p;
    tile_kernel *k = stdlib_kernel(ctx, "gemm_persistent.tile", "gemm_persistent", NULL, 0, &p);
    int nparams = tile_kernel_num_params(k);
    cr_assert_eq(nparams, 3);
    const int64_t dims[3][2] = {{4096, 4096}, {4096, 4096}, {4096, 4096}};
    void *buf;
    cr_assert_eq(tile_alloc(ctx, 64, &buf), TILE_OK);
    tile_arg args[3];
    for (int i = 0; i < 3; i++)
        args[i] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, buf, 2, dims[i])};
    FakeCudaStats *s = fake();
    cr_assert_eq(tile_kernel_launch(k, args, 3, NULL), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(s->grid[0], 132, "grid %u", s->grid[0]);
    cr_assert_eq(tile_context_num_sms(ctx), 132); /* what a caller is told is what the grid saw */
    setenv("TILE_VM_NUM_SMS", "7", 1);            /* the VM's count does not leak into a GPU's */
    cr_assert_eq(tile_context_num_sms(ctx), 132);
    unsetenv("TILE_VM_NUM_SMS");
    tile_free(ctx, buf);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* A disk hit in a new context: no GPU pass, the same tensor maps, and they are encoded at launch. */
Test(cuda_host, disk_hit_runs_no_gpu_pass_and_keeps_the_tensor_maps) {
    char dir[] = "/tmp/tile-cuda-host-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    setenv("TILE_CACHE_DIR", dir, 1);
    const tile_constant fixed[] = {{.name = "STAGES", .i = 3}}; /* a tuned constant given: no autotuning */
    const int64_t m = 512, n = 512, kk = 512;
    const int64_t da[2] = {m, kk}, db[2] = {kk, n}, dc[2] = {m, n};
    int ntma[2] = {0, 0};
    double passes[2] = {0, 0};
    uint64_t loads[2] = {0, 0}, maps[2] = {0, 0};
    FakeCudaStats *s = NULL;
    for (int round = 0; round < 2; round++) { /* 0 compiles and stores; 1 is a new context: a disk hit */
        tile_context *ctx = open_fake();
        s = fake();
        tile_program *p;
        tile_kernel *k = stdlib_kernel(ctx, "gemm.tile", "gemm", fixed, 1, &p);
        void *a, *b, *c;
        cr_assert_eq(tile_alloc(ctx, (size_t)(m * kk * 2), &a), TILE_OK);
        cr_assert_eq(tile_alloc(ctx, (size_t)(kk * n * 2), &b), TILE_OK);
        cr_assert_eq(tile_alloc(ctx, (size_t)(m * n * 2), &c), TILE_OK);
        tile_arg args[3] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, a, 2, da)},
                            {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, b, 2, db)},
                            {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, c, 2, dc)}};
        uint64_t loaded = s->modules_loaded, encoded = s->tensor_maps;
        double before = passes_seconds();
        cr_assert_eq(tile_kernel_launch(k, args, 3, NULL), TILE_OK, "%s", tile_context_message(ctx));
        passes[round] = passes_seconds() - before;
        loads[round] = s->modules_loaded - loaded;
        maps[round] = s->tensor_maps - encoded;
        ntma[round] = rt_cuda_num_tma_maps(k, args, 3);
        cr_assert_eq(s->grid[0], (uint64_t)(m / 128) * (uint64_t)(n / 128));
        tile_free(ctx, a), tile_free(ctx, b), tile_free(ctx, c);
        tile_program_destroy(p);
        tile_context_destroy(ctx);
    }
    unsetenv("TILE_CACHE_DIR");
    cr_assert_gt(passes[0], 0, "the first launch compiles (GPU passes included)");
    cr_assert_eq(passes[1], 0, "a disk hit ran GPU passes for %g s", passes[1]);
    cr_assert_eq(loads[0], 1);
    cr_assert_eq(loads[1], 1, "the disk hit loads the stored image");
    cr_assert_gt(ntma[0], 0, "gemm's variant on sm_90a has a TMA ring");
    cr_assert_eq(ntma[1], ntma[0], "the hit knows the same tensor maps");
    cr_assert_eq(maps[1], (uint64_t)ntma[1], "and the launch encoded them");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* flash_fwd on the fake sm_90a: the variant for contiguous tensors copies K and V ([B, HKV, S, D])
 * by TMA: two maps of rank 4, encoded innermost first (sizes D, S, HKV, B; strides in bytes of
 * the rows, the heads and the batches; the box BN rows of 64 columns, 1 head, 1 batch; 128-byte
 * swizzle). A K whose batch dimension (of size 1) has stride 1 has the same facts (every stride
 * is 1 or a multiple of 16), so the same variant is chosen, but TMA cannot take a 2-byte stride:
 * the runtime refuses that map before the driver sees it and the launch takes the generic
 * kernel (no map encoded, no error, the launch made). */
Test(cuda_host, rank4_tensor_maps_for_flash_fwd_and_the_generic_kernel_for_what_tma_refuses) {
    setenv("TILE_CACHE", "0", 1); /* (each test is a process of its own) */
    tile_context *ctx = open_fake();
    char path[1024];
    snprintf(path, sizeof path, "%s/stdlib/attention/flash_fwd.tile", TILE_SOURCE_DIR);
    tile_program *p;
    cr_assert_eq(tile_program_from_file(ctx, path, &p), TILE_OK, "%s", tile_context_message(ctx));
    const tile_constant c[] = {{.name = "BN", .i = 64}, {.name = "STAGES", .i = 2}};
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(p, "flash_fwd", c, 2, &k), TILE_OK, "%s", tile_context_message(ctx));
    const int64_t b = 2, hq = 4, hkv = 2, s = 256, d = 128;
    void *q, *kk, *v, *o;
    cr_assert_eq(tile_alloc(ctx, (size_t)(b * hq * s * d * 2), &q), TILE_OK);
    cr_assert_eq(tile_alloc(ctx, (size_t)(b * hkv * s * d * 2), &kk), TILE_OK);
    cr_assert_eq(tile_alloc(ctx, (size_t)(b * hkv * s * d * 2), &v), TILE_OK);
    cr_assert_eq(tile_alloc(ctx, (size_t)(b * hq * s * d * 2), &o), TILE_OK);
    const int64_t sq[4] = {b, hq, s, d}, skv[4] = {b, hkv, s, d};
    tile_arg args[5] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, q, 4, sq)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, kk, 4, skv)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, v, 4, skv)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, o, 4, sq)},
                        {.kind = TILE_ARG_FLOAT, .f = 0.088}};
    FakeCudaStats *st = fake();
    uint64_t maps = st->tensor_maps, launches = st->launches;
    cr_assert_eq(tile_kernel_launch(k, args, 5, NULL), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(st->launches, launches + 1);
    cr_assert_eq(rt_cuda_num_tma_maps(k, args, 5), 2, "K and V");
    cr_assert_eq(st->tensor_maps, maps + 2);
    cr_assert_eq(st->map_rank, 4); /* the latest: V's */
    cr_assert(st->map_dims[0] == (uint64_t)d && st->map_dims[1] == (uint64_t)s && st->map_dims[2] == (uint64_t)hkv &&
              st->map_dims[3] == (uint64_t)b, "dims %llu %llu %llu %llu", (unsigned long long)st->map_dims[0],
              (unsigned long long)st->map_dims[1], (unsigned long long)st->map_dims[2], (unsigned long long)st->map_dims[3]);
    cr_assert(st->map_strides[0] == (uint64_t)(d * 2) && st->map_strides[1] == (uint64_t)(s * d * 2) &&
              st->map_strides[2] == (uint64_t)(hkv * s * d * 2));
    cr_assert(st->map_box[0] == 64 && st->map_box[1] == 64 && st->map_box[2] == 1 && st->map_box[3] == 1,
              "box %u %u %u %u", st->map_box[0], st->map_box[1], st->map_box[2], st->map_box[3]);
    cr_assert_eq(st->map_swizzle, 3, "128B");
    /* the same tensors again: the maps of the previous launch */
    cr_assert_eq(tile_kernel_launch(k, args, 5, NULL), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(st->tensor_maps, maps + 2);
    /* K of one batch whose batch stride is 1: TMA cannot take it; the generic kernel runs */
    const int64_t one[4] = {1, hkv, s, d};
    for (int i = 0; i < 4; i++) {
        args[i].tensor.shape[0] = 1;
        if (i == 1) args[i].tensor = tile_tensor_contiguous(TILE_BF16, kk, 4, one), args[i].tensor.strides[0] = 1;
    }
    cr_assert_eq(rt_cuda_num_tma_maps(k, args, 5), 2, "the variant chosen has the TMA ring");
    maps = st->tensor_maps, launches = st->launches;
    uint64_t refused = st->tensor_maps_refused;
    cr_assert_eq(tile_kernel_launch(k, args, 5, NULL), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(st->launches, launches + 1, "launched");
    cr_assert_eq(st->tensor_maps, maps, "with no tensor map");
    cr_assert_eq(st->tensor_maps_refused, refused, "refused before the driver was asked");
    tile_free(ctx, q), tile_free(ctx, kk), tile_free(ctx, v), tile_free(ctx, o);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* gemm's TMA variant on the fake sm_90a has `cluster 2` (passes/cluster.c): a grid whose x is even
 * is launched through cuLaunchKernelEx with the cluster dimension (2, 1, 1), one whose x is odd
 * through cuLaunchKernel without clusters (the kernel's multicast flags are then false), and a disk
 * hit in a new context knows the cluster from the entry's launch data. TILE_CLUSTER=0 builds
 * another image (its own key) without clusters. */
Test(cuda_host, gemm_launches_in_clusters_of_two_where_the_grid_allows) {
    char dir[] = "/tmp/tile-cuda-cluster-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    setenv("TILE_CACHE_DIR", dir, 1);
    const tile_constant fixed[] = {{.name = "STAGES", .i = 3}}; /* a tuned constant given: no autotuning */
    for (int round = 0; round < 3; round++) { /* 0 compiles; 1 is a disk hit; 2 has TILE_CLUSTER=0 */
        setenv("TILE_CLUSTER", round == 2 ? "0" : "1", 1); /* off by default */
        tile_context *ctx = open_fake();
        FakeCudaStats *s = fake();
        tile_program *p;
        tile_kernel *k = stdlib_kernel(ctx, "gemm.tile", "gemm", fixed, 1, &p);
        for (int shape = 0; shape < 2; shape++) {
            const int64_t m = shape ? 384 : 512, n = shape ? 384 : 512, kk = 256; /* grids 16 and 9 */
            const int64_t da[2] = {m, kk}, db[2] = {kk, n}, dc[2] = {m, n};
            void *a, *b, *c;
            cr_assert_eq(tile_alloc(ctx, (size_t)(m * kk * 2), &a), TILE_OK);
            cr_assert_eq(tile_alloc(ctx, (size_t)(kk * n * 2), &b), TILE_OK);
            cr_assert_eq(tile_alloc(ctx, (size_t)(m * n * 2), &c), TILE_OK);
            tile_arg args[3] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, a, 2, da)},
                                {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, b, 2, db)},
                                {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, c, 2, dc)}};
            uint64_t clustered = s->cluster_launches, launches = s->launches;
            cr_assert_eq(tile_kernel_launch(k, args, 3, NULL), TILE_OK, "%s", tile_context_message(ctx));
            cr_assert_eq(s->launches, launches + 1);
            cr_assert_gt(rt_cuda_num_tma_maps(k, args, 3), 0, "the TMA variant runs");
            bool want = round < 2 && shape == 0;
            cr_assert_eq(s->cluster_launches - clustered, want ? 1u : 0u, "round %d, grid %u", round, s->grid[0]);
            cr_assert_eq(s->cluster[0], want ? 2u : 0u, "round %d, grid %u: cluster x %u", round, s->grid[0],
                         s->cluster[0]);
            if (want) cr_assert(s->cluster[1] == 1 && s->cluster[2] == 1);
            cr_assert_eq(s->grid[0], shape ? 9u : 16u);
            tile_free(ctx, a), tile_free(ctx, b), tile_free(ctx, c);
        }
        tile_program_destroy(p);
        tile_context_destroy(ctx);
    }
    unsetenv("TILE_CLUSTER");
    unsetenv("TILE_CACHE_DIR");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* softmax's `if N <= BN` is a launch-known condition (passes/conds.c): rows of 512 and of 1000
 * share the one-pass variant, rows of 2048 (the same tensor facts) get a variant of their own,
 * and a disk hit in a new context finds each under its own key without compiling. */
Test(cuda_host, softmax_gets_a_variant_per_condition_value) {
    char dir[] = "/tmp/tile_conds_XXXXXX";
    cache_dir_open(dir);
    void *buf;
    const int64_t sizes[4][2] = {{4, 512}, {3, 1008}, {2, 2048}, {5, 512}};
    const char *expect = "variant x:align16,strides16,unit(1),div16(1) y:align16,strides16,unit(1),div16(1) if:0\n"
                         "variant x:align16,strides16,unit(1),div16(1) y:align16,strides16,unit(1),div16(1) if:1\n";
    for (int context = 0; context < 2; context++) {
        tile_context *ctx = open_fake();
        tile_program *p;
        tile_kernel *k = stdlib_kernel(ctx, "softmax.tile", "softmax", NULL, 0, &p);
        cr_assert_eq(tile_alloc(ctx, 4 * 2048 * 4, &buf), TILE_OK);
        FakeCudaStats *s = fake();
        uint64_t modules = s->modules_loaded;
        double passes = passes_seconds();
        for (int i = 0; i < 4; i++) {
            tile_arg args[2];
            for (int j = 0; j < 2; j++)
                args[j] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, buf, 2, sizes[i])};
            cr_assert_eq(tile_kernel_launch(k, args, 2, NULL), TILE_OK, "%s", tile_context_message(ctx));
        }
        cr_assert_eq(rt_kernel_num_variants(k), 2, "context %d: one per value of N <= BN", context);
        cr_assert_eq(s->modules_loaded, modules + 2);
        if (context == 1) cr_assert_eq(passes_seconds(), passes, "the disk held both: no GPU pass ran");
        char *report = NULL;
        cr_assert_eq(tile_kernel_variants_report(k, &report), TILE_OK);
        cr_assert_str_eq(report, expect);
        tile_string_free(report);
        tile_free(ctx, buf);
        tile_program_destroy(p);
        tile_context_destroy(ctx);
    }
    cache_dir_close(dir);
}

static double lower_seconds(void) {
    tile_compile_times t;
    tile_compile_times_get(&t);
    return t.lower;
}

/* The interface entry of dir (the one whose payload, after the 88-byte header and the 16 bytes of
 * image fields, starts "TIF2"): its path in path; false when there is none. */
static bool find_interface(const char *dir, char *path, size_t cap) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "grep -l -a TIF2 '%s'/*.tcache 2>/dev/null", dir);
    FILE *f = popen(cmd, "r");
    bool found = f && fgets(path, (int)cap, f);
    if (f) pclose(f);
    if (found) path[strcspn(path, "\n")] = 0;
    return found;
}

/* A disk hit makes softmax from its interface entry: no parse (deferred by the source's marker),
 * no lowering, the parameters' own names (in tile_kernel_param and in the argument checks'
 * messages), the stored variant loaded without a GPU pass; a launch whose variant is not on disk
 * parses and builds the full IR then and runs. An interface
 * entry altered under a valid checksum (its parameter renamed) is caught by that first build: the
 * launch fails with a message, the entry is removed, and the next context is back to normal. */
Test(cuda_host, disk_hit_makes_the_kernel_from_its_interface) {
    char dir[] = "/tmp/tile_iface_XXXXXX";
    cache_dir_open(dir);
    const int64_t small[2] = {4, 512}, wide[2] = {2, 2048}, odd[2] = {3, 1000};
    char path[1024] = "";
    for (int context = 0; context < 4; context++) {
        tile_context *ctx = open_fake();
        FakeCudaStats *s = fake();
        double lowered = lower_seconds();
        tile_program *p;
        tile_kernel *k = stdlib_kernel(ctx, "softmax.tile", "softmax", NULL, 0, &p);
        bool from_interface = lower_seconds() == lowered;
        cr_assert_eq(from_interface, context == 1 || context == 2, "context %d", context);
        /* the source parsed in context 0: later ones defer its parse, which a kernel made from its
         * interface never needs (context 3 has no interface: the frontend parsed it) */
        cr_assert_eq(atomic_load(&p->parse_state), from_interface ? RT_PARSE_DEFERRED : RT_PARSED, "context %d", context);
        tile_param_info info;
        cr_assert_eq(tile_kernel_param(k, 0, &info), TILE_OK);
        cr_assert_str_eq(info.name, context == 2 ? "q" : "x");
        cr_assert_eq(info.written, 0, "softmax reads x");
        cr_assert_eq(tile_kernel_param(k, 1, &info), TILE_OK);
        cr_assert_eq(info.written, 1, "softmax writes y (context %d)", context);
        cr_assert_eq(k->written != NULL, from_interface, "context %d: the entry's flags", context);
        void *buf;
        cr_assert_eq(tile_alloc(ctx, 4 * 2048 * 4, &buf), TILE_OK);
        tile_arg args[2];
        for (int j = 0; j < 2; j++)
            args[j] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, buf, 2, small)};
        uint64_t modules = s->modules_loaded;
        double passes = passes_seconds();
        cr_assert_eq(tile_kernel_launch(k, args, 2, NULL), TILE_OK, "%s", tile_context_message(ctx));
        cr_assert_eq(s->modules_loaded, modules + 1);
        cr_assert_eq(s->grid[0], 1u);
        if (context == 1) {
            cr_assert_eq(passes_seconds(), passes, "the variant came from the disk");
            cr_assert_eq(atomic_load(&p->parse_state), RT_PARSE_DEFERRED, "a disk hit needs no parse");
            args[1].tensor.dtype = TILE_F16;
            cr_assert_eq(tile_kernel_launch(k, args, 2, NULL), TILE_ERROR_INVALID_ARGUMENT);
            cr_assert(strstr(tile_context_message(ctx), "tensor 'y'"), "%s", tile_context_message(ctx));
            for (int j = 0; j < 2; j++) args[j].tensor = tile_tensor_contiguous(TILE_F32, buf, 2, wide);
            cr_assert_eq(tile_kernel_launch(k, args, 2, NULL), TILE_OK, "%s", tile_context_message(ctx));
            cr_assert_gt(passes_seconds(), passes, "a variant not on disk is built from the full IR");
            cr_assert_eq(s->modules_loaded, modules + 2);
            cr_assert_eq(rt_kernel_num_variants(k), 2);
            /* rename x to q in the entry, checksum and all */
            cr_assert(find_interface(dir, path, sizeof path), "no interface entry in %s", dir);
            FILE *f = fopen(path, "r+b");
            cr_assert_not_null(f);
            uint8_t entry[8192];
            size_t n = fread(entry, 1, sizeof entry, f);
            cr_assert(n > 104 && n < sizeof entry);
            uint32_t name_len;
            memcpy(&name_len, entry + 104 + 8, 4);
            cr_assert_eq(name_len, 1);
            cr_assert_eq(entry[104 + 12], 'x');
            entry[104 + 12] = 'q';
            uint64_t sum = xxh64(entry + 88, n - 88);
            memcpy(entry + 56, &sum, 8);
            rewind(f);
            cr_assert_eq(fwrite(entry, 1, n, f), n);
            fclose(f);
        }
        if (context == 1) {
            cr_assert_eq(atomic_load(&p->parse_state), RT_PARSED, "the build of a variant parsed the source");
            cr_assert_eq(tile_program_num_kernels(p), 1);
        }
        if (context == 2) { /* parsed when the declarations are asked for */
            cr_assert_eq(tile_program_num_kernels(p), 1);
            cr_assert_str_eq(tile_program_kernel_name(p, 0), "softmax");
            cr_assert_eq(atomic_load(&p->parse_state), RT_PARSED);
        }
        if (context == 2) {
            for (int j = 0; j < 2; j++) args[j].tensor = tile_tensor_contiguous(TILE_F32, buf, 2, odd);
            cr_assert_eq(tile_kernel_launch(k, args, 2, NULL), TILE_ERROR_INTERNAL);
            cr_assert(strstr(tile_context_message(ctx), "does not match the source"), "%s", tile_context_message(ctx));
            cr_assert_eq(access(path, F_OK), -1, "the entry is removed");
        }
        tile_free(ctx, buf);
        tile_program_destroy(p);
        tile_context_destroy(ctx);
    }
    cache_dir_close(dir);
}

/* A parse marker that lies (written here for a source with a syntax error) defers the parse, and
 * the error comes out located where the declarations are first needed: at tile_program_get_kernel
 * (the kernel has no interface entry), at tile_program_num_kernels (0) and tile_program_emit. */
Test(cuda_host, a_deferred_parse_still_reports_syntax_errors) {
    char dir[] = "/tmp/tile_marker_XXXXXX";
    cache_dir_open(dir);
    static const char bad[] = "kernel k(x: tensor<f32>[N]) grid(1) {\n  let y = ;\n}\n";
    uint8_t sha[32];
    sha256(bad, sizeof bad - 1, sha);
    CacheKey key = rt_parsed_source_key(sha);
    CacheEntry marker = {.image = (uint8_t *)"", .len = 0};
    Strbuf err = {0};
    cr_assert(cache_disk_store(dir, &key, &marker, &err), "%s", sb_str(&err));
    tile_context *ctx = open_fake();
    tile_program *p;
    cr_assert_eq(tile_program_from_string(ctx, "bad.tile", bad, sizeof bad - 1, &p), TILE_OK, "the parse is deferred");
    cr_assert_eq(atomic_load(&p->parse_state), RT_PARSE_DEFERRED);
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(p, "k", NULL, 0, &k), TILE_ERROR_COMPILE);
    cr_assert(strstr(tile_context_message(ctx), "bad.tile:2:11"), "%s", tile_context_message(ctx));
    cr_assert_eq(tile_program_num_kernels(p), 0);
    char *out;
    size_t len;
    tile_emit_options opt = {.arch = "sm_90a"};
    cr_assert_eq(tile_program_emit(p, "k", NULL, 0, TILE_EMIT_PTX, &opt, &out, &len), TILE_ERROR_COMPILE);
    cr_assert(strstr(tile_context_message(ctx), "bad.tile:2:11"), "%s", tile_context_message(ctx));
    tile_program_destroy(p);
    /* without the marker the same source fails at once, as always */
    Strbuf path = {0};
    cache_entry_path(dir, &key, &path);
    cr_assert_eq(unlink(sb_str(&path)), 0);
    sb_free(&path);
    cr_assert_eq(tile_program_from_string(ctx, "bad.tile", bad, sizeof bad - 1, &p), TILE_ERROR_COMPILE);
    cr_assert(strstr(tile_context_message(ctx), "bad.tile:2:11"), "%s", tile_context_message(ctx));
    tile_context_destroy(ctx);
    sb_free(&err);
    cache_dir_close(dir);
}

/* A grid's check(...) fails a launch with the same located message whether the kernel came from
 * the frontend or, in a new context, from its interface entry. */
Test(cuda_host, a_kernel_from_its_interface_locates_a_failed_check) {
    char dir[] = "/tmp/tile_check_XXXXXX";
    cache_dir_open(dir);
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/lang2/constructs.tile", TILE_SOURCE_DIR);
    for (int context = 0; context < 2; context++) {
        tile_context *ctx = open_fake();
        tile_program *p;
        tile_kernel *k;
        double lowered = lower_seconds();
        cr_assert_eq(tile_program_from_file(ctx, path, &p), TILE_OK, "%s", tile_context_message(ctx));
        cr_assert_eq(tile_program_get_kernel(p, "control", NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
        cr_assert_eq(lower_seconds() == lowered, context == 1, "context %d: from the interface", context);
        void *x, *y;
        const int64_t dx[2] = {4, 64}, dy[1] = {4};
        cr_assert_eq(tile_alloc(ctx, 4 * 64 * 4, &x), TILE_OK);
        cr_assert_eq(tile_alloc(ctx, 4 * 4, &y), TILE_OK);
        tile_arg args[3] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, x, 2, dx)},
                            {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, y, 1, dy)},
                            {.kind = TILE_ARG_INT, .i = 2}};
        cr_assert_eq(tile_kernel_launch(k, args, 3, NULL), TILE_OK, "%s", tile_context_message(ctx));
        args[2].i = -1;
        cr_assert_eq(tile_kernel_launch(k, args, 3, NULL), TILE_ERROR_INVALID_ARGUMENT);
        const char *msg = tile_context_message(ctx);
        cr_assert(strstr(msg, "check failed: used must not be negative") && strstr(msg, "constructs.tile:50:11"),
                  "context %d: %s", context, msg);
        tile_free(ctx, x), tile_free(ctx, y);
        tile_program_destroy(p);
        tile_context_destroy(ctx);
    }
    cache_dir_close(dir);
}
