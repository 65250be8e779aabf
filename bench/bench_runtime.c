/*
 * bench_runtime: the runtime's own costs and the memory-bound kernels against their anchors,
 * in one run, written as bench/results/<name>.json (schema in bench/RESULTS.md).
 *
 *   bench_runtime [--out FILE] [--repo DIR] [--launch]
 *
 * --launch measures the launch path alone: the cache hits (memory, and disk in a new context) and
 * the launch overhead. Run with the fake driver first in the library path
 * (LD_LIBRARY_PATH=build/fake_cuda, tests/fake_cuda/fake_cuda.c), it times their host side with
 * the driver's calls stubbed (a module load, a launch: nothing), on any machine.
 *
 * On a GPU machine it measures:
 *   - cold JIT: source text to the loaded module that a first launch with aligned, contiguous
 *     tensors runs (its specialized variant: nothing else is compiled), per core kernel, kernel
 *     cache off (ms);
 *   - cache hits: the same kernel again from the context's memory cache and from the disk cache
 *     in a new context (us): as it is (the kernel made from its interface entry, the parse
 *     deferred), with TILE_CACHE_INTERFACE=0 (the frontend runs; alternating with the first),
 *     and in a new context that has already loaded another module (the driver's first-module
 *     cost of a context paid);
 *   - launch overhead: tile_kernel_launch of a one-block kernel against a bare cuLaunchKernel of
 *     the same function with the same parameters (us per launch, host side, 20000 launches);
 *   - vector add (3 x 1 GiB) and softmax (16384 x 16384 f32) bandwidth against the device's
 *     measured device-to-device copy bandwidth (cuMemcpyDtoD of 1 GiB, read + write counted).
 * Without a GPU it measures the cold compile from source to that variant's cubin (sm_90a) on this
 * CPU (with the launch-known conditions of those sizes: TILE_EMIT_CONDS). Either
 * way it measures the host-side parts of the launch path that need no GPU (on a VM context):
 * the memory-cache hit from source text to kernel, the argument checks, the grid computed by
 * the compiled steps against the VM's interpretation of the grid region, and the launch-known
 * conditions (softmax's N <= BN) by their compiled steps.
 *
 * Breakdowns (rows named "... | part"), so that the remaining time can be placed: the cold JIT
 * of softmax, layernorm and gemm by stage (frontend and passes, codegen, LLVM's IR pipeline,
 * NVPTX to PTX text, ptxas or nvJitLink, and on a GPU the driver's module load; from
 * tile_compile_times), and the disk hit by part: on a GPU from the hits themselves (frontend,
 * key and disk read, module load, the rest), and on any machine the parts that need no GPU
 * timed alone on a real softmax entry (key, read and validate, the frontend in a new VM context,
 * which a disk hit with an interface entry no longer runs,
 * and format 1's SHA-256 checksum of the same image for comparison). On a GPU, the first use of
 * softmax with the cache off: get_kernel (which compiles nothing), the first launch (which
 * compiles the variant for its tensors' facts, and only it) and the second.
 * Times are medians after warm-up; GPU times come from events; inputs are random and every
 * kernel's result is checked before it is timed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/cache.h"
#include "runtime/cuda.h"
#include "runtime/runtime.h"
#include "runtime/vm.h"
#include "bench.h"

static void die(tile_context *ctx, const char *what, tile_status st) { bench_die("bench_runtime", ctx, what, st); }

/* ---- kernels --------------------------------------------------------------------------------- */
typedef struct KernelId {
    const char *file, *name;
    bool breakdown; /* cold JIT rows per stage too */
} KernelId;

static const KernelId core[] = {
    {"vector_add.tile", "vector_add", false}, {"softmax.tile", "softmax", true},
    {"layernorm.tile", "layernorm", true},    {"gemm.tile", "gemm", true},
    {"reduce.tile", "sum_rows", false},       {"reduce.tile", "cumsum_rows", false},
    {"reduce.tile", "sum_all", false},        {"gather.tile", "gather_rows", false},
};
enum { NCORE = sizeof core / sizeof core[0] };

static char repo[1024] = ".";

static char *read_source(const KernelId *k, size_t *len) {
    char path[1200];
    snprintf(path, sizeof path, "%s/stdlib/core/%s", repo, k->file);
    char *data;
    const char *err;
    if (!read_file(path, &data, len, &err)) {
        fprintf(stderr, "bench_runtime: %s: %s\n", path, err);
        exit(1);
    }
    return data;
}

/* The function a first launch of kernel with aligned, contiguous tensors (every size 1024) runs,
 * compiled and loaded as that launch does (rt_cuda_select), without launching: get_kernel compiles
 * nothing, the first launch compiles the variant for its tensors' facts. */
enum { MAX_ARGS = 16 };

/* The arguments of that first launch into args[MAX_ARGS]; their count. */
static int first_launch_args(tile_context *ctx, tile_kernel *kernel, const char *name, tile_arg *args) {
    int n = tile_kernel_num_params(kernel);
    if (n > MAX_ARGS) die(ctx, name, TILE_ERROR_INVALID_ARGUMENT);
    for (int i = 0; i < n; i++) {
        tile_param_info info;
        tile_kernel_param(kernel, i, &info);
        args[i] = (tile_arg){.kind = info.kind};
        if (info.kind == TILE_ARG_TENSOR) {
            int64_t shape[TILE_MAX_RANK];
            for (int d = 0; d < info.rank; d++) shape[d] = info.dim_symbols[d] ? 1024 : info.dim_sizes[d];
            /* only the facts are read: an aligned address, never dereferenced */
            args[i].tensor = tile_tensor_contiguous(info.dtype, (void *)(uintptr_t)(1u << 20), info.rank, shape);
        }
    }
    return n;
}

static void first_launch_function(tile_context *ctx, tile_kernel *kernel, const char *name) {
    tile_arg args[MAX_ARGS];
    int n = first_launch_args(ctx, kernel, name, args);
    struct RtCudaFunction *f;
    tile_status st = rt_cuda_select(kernel, args, (size_t)n, &f);
    if (st != TILE_OK) die(ctx, name, st);
}

/* The launch-known conditions of that first launch as TILE_EMIT_CONDS reads them ("1": softmax's
 * one pass), into text[LAUNCH_CONDS_MAX + 1] ("" when the kernel has none), from a program of its
 * own made and destroyed before the timing. */
static void first_launch_conds(tile_context *ctx, const KernelId *k, const char *src, size_t len, char *text) {
    tile_program *p;
    tile_kernel *kernel;
    tile_status st = tile_program_from_string(ctx, k->file, src, len, &p);
    if (st != TILE_OK || (st = tile_program_get_kernel(p, k->name, NULL, 0, &kernel)) != TILE_OK) die(ctx, k->name, st);
    tile_arg args[MAX_ARGS];
    int n = first_launch_args(ctx, kernel, k->name, args);
    Strbuf sb = {0};
    launch_conds_text(rt_conds_eval(kernel->conds, args, (size_t)n), rt_conds_count(kernel->conds), &sb);
    snprintf(text, LAUNCH_CONDS_MAX + 1, "%s", sb_str(&sb));
    sb_free(&sb);
    tile_program_destroy(p);
}

/* Source text to a compiled kernel (and, on a GPU, a loaded module): ms. What a first launch with
 * aligned, contiguous tensors compiles: on a GPU its variant (first_launch_function), on the CPU
 * the same variant's cubin (TILE_EMIT_SPECIALIZED=1: every fact true; TILE_EMIT_CONDS: the
 * launch-known conditions of those sizes). */
static double compile_once(tile_context *ctx, const KernelId *k, const char *src, size_t len, tile_program **keep) {
    char conds[LAUNCH_CONDS_MAX + 1] = "";
    if (tile_context_device(ctx) != TILE_DEVICE_CUDA) first_launch_conds(ctx, k, src, len, conds);
    memset(rt_times(), 0, sizeof *rt_times()); /* get_kernel adds to them; emit resets them */
    double t0 = bench_now_us();
    tile_program *p;
    tile_kernel *kernel;
    tile_status st = tile_program_from_string(ctx, k->file, src, len, &p);
    if (st != TILE_OK) die(ctx, k->name, st);
    if (tile_context_device(ctx) == TILE_DEVICE_CUDA) {
        if ((st = tile_program_get_kernel(p, k->name, NULL, 0, &kernel)) != TILE_OK) die(ctx, k->name, st);
        first_launch_function(ctx, kernel, k->name);
    } else {
        char *out;
        size_t n;
        tile_emit_options opt = {.arch = "sm_90a"};
        setenv("TILE_EMIT_SPECIALIZED", "1", 1);
        if (conds[0]) setenv("TILE_EMIT_CONDS", conds, 1);
        st = tile_program_emit(p, k->name, NULL, 0, TILE_EMIT_CUBIN, &opt, &out, &n);
        unsetenv("TILE_EMIT_SPECIALIZED");
        unsetenv("TILE_EMIT_CONDS");
        if (st != TILE_OK) die(ctx, k->name, st);
        tile_string_free(out);
    }
    double ms = (bench_now_us() - t0) / 1e3;
    if (keep) *keep = p;
    else tile_program_destroy(p);
    return ms;
}

static void bench_cold_jit(const char *where) {
    setenv("TILE_CACHE", "0", 1);
    tile_context *ctx;
    tile_status st = tile_context_create(strcmp(where, "gpu") == 0 ? TILE_DEVICE_CUDA : TILE_DEVICE_VM, 0, &ctx);
    if (st != TILE_OK) die(NULL, "context", st);
    for (int i = 0; i < NCORE; i++) {
        size_t len;
        char *src = read_source(&core[i], &len);
        double t[5];
        enum { FRONTEND, CODEGEN, IR_PIPELINE, NVPTX, ASSEMBLE, LOAD, NPARTS };
        double part[NPARTS][5];
        for (int r = 0; r < 5; r++) {
            t[r] = compile_once(ctx, &core[i], src, len, NULL);
            const tile_compile_times *c = rt_times();
            part[FRONTEND][r] = (c->parse + c->lower + c->passes) * 1e3;
            part[CODEGEN][r] = c->codegen * 1e3;
            part[IR_PIPELINE][r] = c->llvm_optimize * 1e3;
            part[NVPTX][r] = (c->llvm - c->llvm_optimize) * 1e3;
            part[ASSEMBLE][r] = c->assemble * 1e3;
            part[LOAD][r] = c->load * 1e3;
        }
        if (core[i].breakdown) {
            static const char *const names[NPARTS] = {"frontend+passes", "codegen", "LLVM IR pipeline",
                                                      "NVPTX to PTX", "ptxas/nvJitLink", "module load"};
            for (int p = 0; p < NPARTS; p++) {
                if (p == LOAD && strcmp(where, "gpu") != 0) continue;
                char row[128];
                snprintf(row, sizeof row, "cold JIT %s | %s", core[i].name, names[p]);
                bench_add_row(row, "ms (median of 5)", bench_median(part[p], 5), -1, NULL, false);
            }
        }
        char name[96];
        /* the first compile of the process apart: a tool's own cache (the driver's, nvJitLink's)
         * would make the later ones cheaper than a user's first */
        snprintf(name, sizeof name, "cold JIT %s (first of 5)", core[i].name);
        bench_add_row(name, strcmp(where, "gpu") == 0 ? "ms source->loaded" : "ms source->cubin (CPU)", t[0], -1, NULL,
                      false);
        if (core[i].breakdown) {
            snprintf(name, sizeof name, "cold JIT %s (first of 5) | ptxas/nvJitLink", core[i].name);
            bench_add_row(name, "ms", part[ASSEMBLE][0], -1, NULL, false);
        }
        snprintf(name, sizeof name, "cold JIT %s", core[i].name);
        if (strcmp(where, "gpu") == 0)
            bench_add_row(name, "ms source->loaded", bench_median(t, 5), strcmp(core[i].name, "gemm") == 0 ? 2480 : -1,
                    "Triton cold compile, gemm (anchors file, not this run)", false);
        else
            bench_add_row(name, "ms source->cubin (CPU)", bench_median(t, 5), -1, NULL, false);
        free(src);
    }
    tile_context_destroy(ctx);
    unsetenv("TILE_CACHE");
}

static void bench_cache_hits(void) {
    char dir[] = "/tmp/tile-bench-cache-XXXXXX";
    if (!mkdtemp(dir)) return;
    setenv("TILE_CACHE_DIR", dir, 1);
    size_t len;
    char *src = read_source(&core[1], &len);
    tile_context *ctx;
    tile_status st = tile_context_create(TILE_DEVICE_CUDA, 0, &ctx);
    if (st != TILE_OK) die(NULL, "context", st);
    tile_program *first;
    compile_once(ctx, &core[1], src, len, &first); /* miss: compiles and stores */
    size_t other_len;
    char *other = read_source(&core[0], &other_len); /* vector_add: the module a warm context holds */
    compile_once(ctx, &core[0], other, other_len, NULL);
    double mem[101];
    for (int r = 0; r < 101; r++) mem[r] = compile_once(ctx, &core[1], src, len, NULL) * 1e3;
    bench_add_row("cache hit (memory) softmax", "us source->kernel", bench_median(mem, 101), -1, NULL, false);
    tile_program_destroy(first);
    tile_context_destroy(ctx);
    /* Alternating, in new contexts: a hit as it is (the kernel made from its interface entry)
     * and one with TILE_CACHE_INTERFACE=0 (the frontend and passes run, as before the entry). */
    double disk[9], frontend[9], cache[9], load[9], rest[9], no_iface[9];
    for (int r = 0; r < 9; r++) {
        tile_context *fresh;
        setenv("TILE_CACHE_INTERFACE", "0", 1);
        if ((st = tile_context_create(TILE_DEVICE_CUDA, 0, &fresh)) != TILE_OK) die(NULL, "context", st);
        no_iface[r] = compile_once(fresh, &core[1], src, len, NULL) * 1e3;
        tile_context_destroy(fresh);
        unsetenv("TILE_CACHE_INTERFACE");
        if ((st = tile_context_create(TILE_DEVICE_CUDA, 0, &fresh)) != TILE_OK) die(NULL, "context", st);
        disk[r] = compile_once(fresh, &core[1], src, len, NULL) * 1e3;
        const tile_compile_times *c = rt_times();
        frontend[r] = (c->parse + c->lower + c->passes) * 1e6;
        cache[r] = c->cache * 1e6;
        load[r] = c->load * 1e6;
        rest[r] = disk[r] - frontend[r] - cache[r] - load[r];
        tile_context_destroy(fresh);
    }
    bench_add_row("cache hit (disk) softmax", "us source->loaded", bench_median(disk, 9), 200,
                  "issue 9 target", false);
    bench_add_row("cache hit (disk) softmax, frontend run", "us source->loaded", bench_median(no_iface, 9),
                  bench_median(disk, 9), "from the interface entry (row above)", false);
    /* The same hit in a context that has already loaded a module (vector_add's, from the disk):
     * the driver's first-module cost of a new context (docs/RUNTIME.md) is then paid. */
    double warm[9];
    for (int r = 0; r < 9; r++) {
        tile_context *fresh;
        tile_program *held;
        if ((st = tile_context_create(TILE_DEVICE_CUDA, 0, &fresh)) != TILE_OK) die(NULL, "context", st);
        compile_once(fresh, &core[0], other, other_len, &held);
        warm[r] = compile_once(fresh, &core[1], src, len, NULL) * 1e3;
        tile_program_destroy(held);
        tile_context_destroy(fresh);
    }
    bench_add_row("cache hit (disk) softmax, context with a module", "us source->loaded", bench_median(warm, 9), 200,
                  "issue 9 target", false);
    free(other);
    bench_add_row("cache hit (disk) softmax | frontend+passes", "us (median of 9)", bench_median(frontend, 9), -1,
                  NULL, false);
    bench_add_row("cache hit (disk) softmax | key+read+validate", "us (median of 9)", bench_median(cache, 9), -1,
                  NULL, false);
    bench_add_row("cache hit (disk) softmax | module load", "us (median of 9)", bench_median(load, 9), -1, NULL,
                  false);
    bench_add_row("cache hit (disk) softmax | rest", "us (median of 9)", bench_median(rest, 9), -1, NULL, false);
    free(src);
    unsetenv("TILE_CACHE_DIR");
}

/* The parts of a disk hit that need no GPU, timed alone on a real entry: softmax's sm_90a image
 * (a cubin when ptxas or nvJitLink is here, else its PTX) stored in a fresh cache directory.
 * With dev (a GPU), the driver's load of that image too. us, medians. */
static void bench_disk_hit_parts(CudaDevice *dev) {
    size_t len;
    char *src = read_source(&core[1], &len);
    tile_context *vm;
    tile_status st = tile_context_create(TILE_DEVICE_VM, 0, &vm);
    if (st != TILE_OK) die(NULL, "vm context", st);
    tile_program *p;
    if ((st = tile_program_from_string(vm, core[1].file, src, len, &p)) != TILE_OK) die(vm, "softmax", st);
    char *image;
    size_t image_len;
    tile_emit_options opt = {.arch = "sm_90a"};
    bool is_ptx = false;
    if (tile_program_emit(p, "softmax", NULL, 0, TILE_EMIT_CUBIN, &opt, &image, &image_len) != TILE_OK) {
        is_ptx = true;
        if ((st = tile_program_emit(p, "softmax", NULL, 0, TILE_EMIT_PTX, &opt, &image, &image_len)) != TILE_OK)
            die(vm, "softmax", st);
    }
    tile_program_destroy(p);
    tile_context_destroy(vm);
    char dir[] = "/tmp/tile-bench-parts-XXXXXX";
    if (!mkdtemp(dir)) return;
    CacheKernelId id = {.source = src, .source_len = len, .kernel = "softmax", .arch = "sm_90a",
                        .num_warps = RT_KERNEL_NUM_WARPS};
    CacheKey key = cache_kernel_key(&id);
    CacheEntry entry = {.is_ptx = is_ptx, .threads = 128, .image = (uint8_t *)image, .len = image_len};
    Strbuf err = {0};
    if (!cache_disk_store(dir, &key, &entry, &err)) {
        fprintf(stderr, "bench_runtime: cannot store a cache entry in %s: %s\n", dir, sb_str(&err));
        exit(1);
    }
    double keys[101], reads[101], sha[101];
    volatile uint8_t sink = 0;
    for (int r = 0; r < 101; r++) {
        double t0 = bench_now_us();
        for (int i = 0; i < 20; i++) sink ^= cache_kernel_key(&id).bytes[0];
        double t1 = bench_now_us();
        for (int i = 0; i < 20; i++) {
            CacheEntry got;
            if (cache_disk_load(dir, &key, &got, &err) != CACHE_HIT || got.len != image_len) {
                fprintf(stderr, "bench_runtime: the stored entry does not read back: %s\n", sb_str(&err));
                exit(1);
            }
            sink ^= got.image[0];
            cache_entry_free(&got);
        }
        double t2 = bench_now_us();
        for (int i = 0; i < 20; i++) {
            uint8_t digest[32];
            sha256(image, image_len, digest);
            sink ^= digest[0];
        }
        double t3 = bench_now_us();
        keys[r] = (t1 - t0) / 20, reads[r] = (t2 - t1) / 20, sha[r] = (t3 - t2) / 20;
    }
    (void)sink;
    /* The frontend and passes (the GPU passes too) of a new context, as a disk hit runs them. */
    setenv("TILE_VM_GPU_PASSES", "1", 1);
    double front[21];
    for (int r = 0; r < 21; r++) {
        tile_context *fresh;
        if ((st = tile_context_create(TILE_DEVICE_VM, 0, &fresh)) != TILE_OK) die(NULL, "vm context", st);
        tile_kernel *k;
        double t0 = bench_now_us();
        if ((st = tile_program_from_string(fresh, core[1].file, src, len, &p)) != TILE_OK ||
            (st = tile_program_get_kernel(p, "softmax", NULL, 0, &k)) != TILE_OK)
            die(fresh, "softmax", st);
        front[r] = bench_now_us() - t0;
        tile_program_destroy(p);
        tile_context_destroy(fresh);
    }
    unsetenv("TILE_VM_GPU_PASSES");
    char name[128];
    snprintf(name, sizeof name, "disk hit parts softmax | key (SHA-256 of %zu B source)", len);
    bench_add_row(name, "us (host)", bench_median(keys, 101), -1, NULL, false);
    snprintf(name, sizeof name, "disk hit parts softmax | read+validate %zu B %s", image_len, is_ptx ? "PTX" : "cubin");
    bench_add_row(name, "us (host)", bench_median(reads, 101), bench_median(sha, 101),
                  "format 1: SHA-256 of the image alone", false);
    bench_add_row("disk hit parts softmax | frontend+passes, new context", "us (host)", bench_median(front, 21), -1,
                  NULL, false);
    if (dev) {
        double load[21];
        for (int r = 0; r < 21; r++) {
            CudaModule *m = NULL;
            double t0 = bench_now_us();
            st = is_ptx ? cuda_module_load_ptx(dev, image, &m, &err) : cuda_module_load_cubin(dev, image, image_len, &m, &err);
            load[r] = bench_now_us() - t0;
            if (st != TILE_OK) break;
            cuda_module_unload(m);
        }
        if (st == TILE_OK) /* a failure only loses this row: the rest of the run goes on */
            bench_add_row("disk hit parts softmax | module load (driver)", "us", bench_median(load, 21), -1, NULL, false);
        else
            fprintf(stderr, "bench_runtime: module load: %s\n", sb_str(&err));
    }
    Strbuf path = {0};
    cache_entry_path(dir, &key, &path);
    unlink(sb_str(&path));
    rmdir(dir);
    sb_free(&path);
    sb_free(&err);
    tile_string_free(image);
    free(src);
}

/* Host costs without a GPU, on a VM context: us per call, medians of 101 runs of 1000 calls. */
static void bench_host_costs(void) {
    tile_context *ctx;
    tile_status st = tile_context_create(TILE_DEVICE_VM, 0, &ctx);
    if (st != TILE_OK) die(NULL, "vm context", st);
    size_t len;
    char *src = read_source(&core[1], &len); /* softmax */
    tile_program *first;
    compile_once(ctx, &core[1], src, len, &first);
    tile_kernel *k;
    if ((st = tile_program_get_kernel(first, "softmax", NULL, 0, &k)) != TILE_OK) die(ctx, "softmax", st);
    double hit[101], check[101], steps[101], vm[101], conds[101];
    for (int r = 0; r < 101; r++) { /* from_string + get_kernel + destroy, as an application would */
        double t0 = bench_now_us();
        for (int i = 0; i < 100; i++) {
            tile_program *p;
            tile_kernel *again;
            if (tile_program_from_string(ctx, core[1].file, src, len, &p) != TILE_OK ||
                tile_program_get_kernel(p, "softmax", NULL, 0, &again) != TILE_OK)
                die(ctx, "softmax", TILE_ERROR_COMPILE);
            tile_program_destroy(p);
        }
        hit[r] = (bench_now_us() - t0) / 100;
    }
    static float dummy[1];
    int64_t shape[2] = {4096, 4096};
    tile_arg args[2] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, dummy, 2, shape)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, dummy, 2, shape)}};
    Strbuf err = {0};
    int64_t grid[3];
    volatile int64_t sink = 0;
    for (int r = 0; r < 101; r++) {
        double t0 = bench_now_us();
        for (int i = 0; i < 1000; i++) sink += rt_check_args(k->function, args, 2, &err);
        double t1 = bench_now_us();
        for (int i = 0; i < 1000; i++) sink += k->grid && rt_grid_eval_sms(k->grid, args, 2, 132, grid) ? grid[0] : 0;
        double t2 = bench_now_us();
        for (int i = 0; i < 1000; i++) sink += vm_eval_grid(k->function, args, 2, grid, &err) ? grid[0] : 0;
        double t3 = bench_now_us();
        for (int i = 0; i < 1000; i++) sink += rt_conds_eval(k->conds, args, 2);
        double t4 = bench_now_us();
        check[r] = (t1 - t0) / 1000, steps[r] = (t2 - t1) / 1000, vm[r] = (t3 - t2) / 1000, conds[r] = (t4 - t3) / 1000;
    }
    (void)sink;
    bench_add_row("cache hit (memory, vm) softmax", "us source->kernel", bench_median(hit, 101), 20,
                  "issue 9 target (GPU context)", false);
    bench_add_row("argument checks softmax", "us per launch (host)", bench_median(check, 101), -1, NULL, false);
    bench_add_row("grid by compiled steps softmax", "us per launch (host)", bench_median(steps, 101),
                  bench_median(vm, 101), "grid by the VM (before)", false);
    bench_add_row("launch conditions softmax", "us per launch (host)", bench_median(conds, 101), -1, NULL, false);
    sb_free(&err);
    free(src);
    tile_program_destroy(first);
    tile_context_destroy(ctx);
}

/* A first use on a GPU as an application meets it (kernel cache off, so everything compiles):
 * tile_program_get_kernel compiles nothing, then the first launch with aligned, contiguous
 * 1024 x 1024 tensors compiles and loads the variant for their facts (only it); the second
 * launch is the steady state. softmax, ms, medians of 3. */
static void bench_first_launch(void) {
    setenv("TILE_CACHE", "0", 1);
    tile_context *ctx;
    tile_status st = tile_context_create(TILE_DEVICE_CUDA, 0, &ctx);
    if (st != TILE_OK) die(NULL, "context", st);
    unsetenv("TILE_CACHE");
    int64_t shape[2] = {1024, 1024};
    size_t bytes = 1024 * 1024 * sizeof(float);
    void *x = NULL, *y = NULL;
    if ((st = tile_alloc(ctx, bytes, &x)) != TILE_OK || (st = tile_alloc(ctx, bytes, &y)) != TILE_OK)
        die(ctx, "alloc", st);
    tile_arg args[2] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, x, 2, shape)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, y, 2, shape)}};
    size_t len;
    char *src = read_source(&core[1], &len);
    double get[3], first[3], second[3];
    for (int r = 0; r < 3 && st == TILE_OK; r++) {
        tile_program *p;
        tile_kernel *k;
        double t0 = bench_now_us();
        if ((st = tile_program_from_string(ctx, core[1].file, src, len, &p)) != TILE_OK) break;
        double t1 = 0, t2 = 0, t3 = 0;
        if ((st = tile_program_get_kernel(p, "softmax", NULL, 0, &k)) == TILE_OK) {
            t1 = bench_now_us();
            if ((st = tile_kernel_launch(k, args, 2, NULL)) == TILE_OK && (st = tile_synchronize(ctx)) == TILE_OK) {
                t2 = bench_now_us();
                if ((st = tile_kernel_launch(k, args, 2, NULL)) == TILE_OK) st = tile_synchronize(ctx);
                t3 = bench_now_us();
            }
        }
        get[r] = (t1 - t0) / 1e3, first[r] = (t2 - t1) / 1e3, second[r] = (t3 - t2) / 1e3;
        tile_program_destroy(p);
    }
    if (st != TILE_OK) { /* only these rows are lost: the rest of the run goes on */
        fprintf(stderr, "bench_runtime: first use of softmax: %s\n%s\n", tile_status_name(st), tile_context_message(ctx));
    } else {
        bench_add_row("first use softmax | get_kernel (compiles nothing)", "ms (cache off)", bench_median(get, 3), -1,
                      NULL, false);
        bench_add_row("first use softmax | first launch (variant compiled)", "ms (cache off)",
                      bench_median(first, 3), -1, NULL, false);
        bench_add_row("first use softmax | second launch", "ms (cache off)", bench_median(second, 3), -1, NULL,
                      false);
    }
    tile_free(ctx, x);
    tile_free(ctx, y);
    free(src);
    tile_context_destroy(ctx);
}

/* ---- GPU timing ---------------------------------------------------------------------------- */
typedef struct Gpu {
    tile_context *ctx;
    CudaDevice *dev;
    CudaEvent *start, *stop;
} Gpu;

static double event_ms(Gpu *g, void (*body)(void *), void *arg) {
    Strbuf err = {0};
    cuda_event_record(g->dev, g->start, NULL, &err);
    body(arg);
    cuda_event_record(g->dev, g->stop, NULL, &err);
    float ms = 0;
    if (cuda_event_elapsed_ms(g->dev, g->start, g->stop, &ms, &err) != TILE_OK) {
        fprintf(stderr, "bench_runtime: events: %s\n", sb_str(&err));
        exit(1);
    }
    sb_free(&err);
    return ms;
}

typedef struct Launch {
    tile_kernel *k;
    tile_arg *args;
    size_t nargs;
} Launch;

static void run_launch(void *p) {
    Launch *l = p;
    tile_status st = tile_kernel_launch(l->k, l->args, l->nargs, NULL);
    if (st != TILE_OK) die(l->k->program->ctx, "launch", st);
}

typedef struct Copy {
    Gpu *g;
    void *dst, *src;
    size_t bytes;
} Copy;

static void run_copy(void *p) {
    Copy *c = p;
    Strbuf err = {0};
    if (cuda_copy_device(c->g->dev, (CudaPtr)(uintptr_t)c->dst, (CudaPtr)(uintptr_t)c->src, c->bytes, &err) != TILE_OK) {
        fprintf(stderr, "copy: %s\n", sb_str(&err));
        exit(1);
    }
}

static double timed(Gpu *g, void (*body)(void *), void *arg, int reps) {
    double t[32];
    for (int r = 0; r < 3; r++) event_ms(g, body, arg);
    for (int r = 0; r < reps; r++) t[r] = event_ms(g, body, arg);
    return bench_median(t, reps);
}

static tile_kernel *load_with(Gpu *g, const KernelId *k, const tile_constant *c, size_t nc, tile_program **p) {
    char path[1200];
    snprintf(path, sizeof path, "%s/stdlib/core/%s", repo, k->file);
    tile_kernel *kernel = NULL;
    tile_status st = tile_program_from_file(g->ctx, path, p);
    if (st != TILE_OK || (st = tile_program_get_kernel(*p, k->name, c, nc, &kernel)) != TILE_OK) die(g->ctx, k->name, st);
    return kernel;
}

static tile_kernel *load(Gpu *g, const KernelId *k, tile_program **p) { return load_with(g, k, NULL, 0, p); }

static float *random_host(size_t n, unsigned seed) {
    float *h = malloc(n * sizeof(float));
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        h[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 2 - 1);
    }
    return h;
}

static void *upload(Gpu *g, const float *h, size_t n) {
    void *d;
    tile_status st = tile_alloc(g->ctx, n * sizeof(float), &d);
    if (st != TILE_OK) die(g->ctx, "alloc", st);
    if (h) tile_copy_to_device(g->ctx, d, h, n * sizeof(float));
    return d;
}

static double bench_copy_bandwidth(Gpu *g) {
    size_t bytes = (size_t)1 << 30;
    void *a = upload(g, NULL, bytes / 4), *b = upload(g, NULL, bytes / 4);
    Copy c = {g, b, a, bytes};
    double ms = timed(g, run_copy, &c, 20);
    double gbs = 2.0 * (double)bytes / (ms * 1e-3) / 1e9;
    bench_add_row("device copy 1 GiB", "GB/s (read+write)", gbs, -1, NULL, true);
    tile_free(g->ctx, a);
    tile_free(g->ctx, b);
    return gbs;
}

static void bench_vector_add(Gpu *g, double copy_gbs) {
    size_t n = (size_t)1 << 28;
    float *ha = random_host(n, 1), *hb = random_host(n, 2), *hc = malloc(n * sizeof(float));
    void *a = upload(g, ha, n), *b = upload(g, hb, n), *c = upload(g, NULL, n);
    tile_program *p;
    tile_kernel *k = load(g, &core[0], &p);
    int64_t shape = (int64_t)n;
    tile_arg args[3] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, a, 1, &shape)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, b, 1, &shape)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, c, 1, &shape)}};
    Launch l = {k, args, 3};
    run_launch(&l);
    tile_synchronize(g->ctx);
    tile_copy_to_host(g->ctx, hc, c, n * sizeof(float));
    for (size_t i = 0; i < n; i += 4099)
        if (hc[i] != ha[i] + hb[i]) {
            fprintf(stderr, "vector_add wrong at %zu\n", i);
            exit(1);
        }
    double ms = timed(g, run_launch, &l, 20);
    double gbs = 3.0 * (double)(n * sizeof(float)) / (ms * 1e-3) / 1e9;
    bench_add_row("vector_add f32 3x1GiB", "GB/s", gbs, copy_gbs, "device copy (cuMemcpyDtoD, same run)", true);
    tile_free(g->ctx, a), tile_free(g->ctx, b), tile_free(g->ctx, c);
    free(ha), free(hb), free(hc);
    tile_program_destroy(p);
}

/* bm, bn, w: the kernel's BM, BN and W (bn >= 16384 takes the one-pass path). */
static void bench_softmax(Gpu *g, double copy_gbs, int64_t bm, int64_t bn, int64_t w) {
    int64_t m = 16384, nn = 16384;
    size_t n = (size_t)(m * nn);
    float *hx = random_host(n, 3), *hy = malloc(n * sizeof(float));
    void *x = upload(g, hx, n), *y = upload(g, NULL, n);
    tile_program *p;
    tile_constant c[3] = {{.name = "BM", .i = bm}, {.name = "BN", .i = bn}, {.name = "W", .i = w}};
    tile_kernel *k = load_with(g, &core[1], c, 3, &p);
    int64_t shape[2] = {m, nn};
    tile_arg args[2] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, x, 2, shape)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, y, 2, shape)}};
    Launch l = {k, args, 2};
    run_launch(&l);
    tile_synchronize(g->ctx);
    tile_copy_to_host(g->ctx, hy, y, n * sizeof(float));
    for (int64_t r = 0; r < m; r += 997) {
        const float *xr = hx + r * nn;
        double mx = -INFINITY, s = 0;
        for (int64_t j = 0; j < nn; j++) mx = fmax(mx, xr[j]);
        for (int64_t j = 0; j < nn; j++) s += exp(xr[j] - mx);
        for (int64_t j = 0; j < nn; j += 13) {
            double want = exp(xr[j] - mx) / s;
            if (fabs(hy[r * nn + j] - want) > 1e-5 * want) {
                fprintf(stderr, "softmax wrong at [%lld, %lld]: %g vs %g\n", (long long)r, (long long)j, hy[r * nn + j], want);
                exit(1);
            }
        }
    }
    double ms = timed(g, run_launch, &l, 10);
    double gbs = 2.0 * (double)(n * sizeof(float)) / (ms * 1e-3) / 1e9;
    char name[96];
    snprintf(name, sizeof name, "softmax f32 16384x16384 BM=%lld BN=%lld W=%lld", (long long)bm, (long long)bn,
             (long long)w);
    bench_add_row(name, "GB/s (read+write once)", gbs, copy_gbs, "device copy (cuMemcpyDtoD, same run)", true);
    tile_free(g->ctx, x), tile_free(g->ctx, y);
    free(hx), free(hy);
    tile_program_destroy(p);
}

/* tile_kernel_launch of vector_add on one block against cuLaunchKernel of the same loaded function
 * (the variant the launch selects) with the same parameters, the two alternating in rounds of N
 * launches so that both see the same state of the GPU's queue; us per launch, medians of 9
 * rounds. With the fake driver (tests/fake_cuda, `bench_runtime --launch`) the driver call
 * returns at once, so "ours" minus "bare" is the host work tile adds to a launch. */
static void bench_launch_overhead(Gpu *g) {
    float one = 1;
    void *a = upload(g, &one, 1), *b = upload(g, &one, 1), *c = upload(g, NULL, 1);
    tile_program *p;
    tile_kernel *k = load(g, &core[0], &p);
    int64_t shape = 1;
    tile_arg args[3] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, a, 1, &shape)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, b, 1, &shape)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, c, 1, &shape)}};
    Launch l = {k, args, 3};
    CudaFunction *fn;
    unsigned threads, shared;
    if (!rt_cuda_kernel_function(k, args, 3, &fn, &threads, &shared)) die(g->ctx, "vector_add's function", TILE_ERROR_COMPILE);
    uint64_t ptrs[3] = {(uint64_t)(uintptr_t)a, (uint64_t)(uintptr_t)b, (uint64_t)(uintptr_t)c};
    int32_t sizes[3] = {1, 1, 1};
    int64_t strides[3] = {1, 1, 1};
    void *params[9] = {&ptrs[0], &sizes[0], &strides[0], &ptrs[1], &sizes[1], &strides[1], &ptrs[2], &sizes[2], &strides[2]};
    CudaLaunch launch = {.grid = {1, 1, 1}, .block = {threads, 1, 1}, .shared_bytes = shared};
    Strbuf err = {0};
    enum { N = 20000, ROUNDS = 9 };
    for (int i = 0; i < 1000; i++) run_launch(&l);
    for (int i = 0; i < 1000; i++) cuda_launch(g->dev, fn, &launch, params, &err);
    tile_synchronize(g->ctx);
    double ours[ROUNDS], bare[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = bench_now_us();
        for (int i = 0; i < N; i++) run_launch(&l);
        ours[r] = (bench_now_us() - t0) / N;
        tile_synchronize(g->ctx);
        t0 = bench_now_us();
        for (int i = 0; i < N; i++)
            if (cuda_launch(g->dev, fn, &launch, params, &err) != TILE_OK) die(g->ctx, "bare launch", TILE_ERROR_DEVICE);
        bare[r] = (bench_now_us() - t0) / N;
        tile_synchronize(g->ctx);
    }
    double o = bench_median(ours, ROUNDS), b0 = bench_median(bare, ROUNDS);
    printf("launch overhead: tile %.3f us, bare cuLaunchKernel %.3f us, tile's host work %.3f us\n", o, b0, o - b0);
    bench_add_row("launch overhead (1 block)", "us per launch (host)", o, b0, "bare cuLaunchKernel, same function", false);
    bench_add_row("launch overhead (1 block) | tile's part", "us per launch (host)", o - b0, -1, NULL, false);
    sb_free(&err);
    tile_free(g->ctx, a), tile_free(g->ctx, b), tile_free(g->ctx, c);
    tile_program_destroy(p);
}

int main(int argc, char **argv) {
    const char *out = "bench/results/runtime.json";
    bool launch_only = false;
    Strbuf cmd = {0};
    for (int i = 0; i < argc; i++) sb_printf(&cmd, "%s%s", i ? " " : "", argv[i]);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) out = argv[++i];
        else if (strcmp(argv[i], "--repo") == 0 && i + 1 < argc) snprintf(repo, sizeof repo, "%s", argv[++i]);
        else if (strcmp(argv[i], "--launch") == 0) launch_only = true;
        else {
            fprintf(stderr, "usage: bench_runtime [--out FILE] [--repo DIR] [--launch]\n");
            return 2;
        }
    }
    Gpu g = {0};
    if (tile_context_create(TILE_DEVICE_CUDA, 0, &g.ctx) != TILE_OK) {
        printf("no GPU (%s): measuring the compile on this CPU only\n", tile_context_message(NULL));
        bench_cold_jit("cpu");
        bench_disk_hit_parts(NULL);
        bench_host_costs();
        bench_write_json(out, "CPU (no GPU): compile only", sb_str(&cmd));
        return 0;
    }
    char device[200];
    snprintf(device, sizeof device, "%s", tile_context_device_name(g.ctx));
    g.dev = rt_cuda_device(g.ctx);
    if (launch_only) { /* the launch path alone: on the GPU, or on the fake driver for the host side */
        bench_cache_hits();
        bench_launch_overhead(&g);
        tile_context_destroy(g.ctx);
        bench_write_json(out, device, sb_str(&cmd));
        sb_free(&cmd);
        return 0;
    }
    Strbuf err = {0};
    cuda_event_create(g.dev, &g.start, &err);
    cuda_event_create(g.dev, &g.stop, &err);
    bench_cold_jit("gpu");
    bench_cache_hits();
    bench_first_launch();
    bench_disk_hit_parts(g.dev);
    bench_host_costs();
    bench_launch_overhead(&g);
    double copy = bench_copy_bandwidth(&g);
    bench_vector_add(&g, copy);
    bench_softmax(&g, copy, 4, 1024, 4);  /* the defaults: two passes over each row */
    bench_softmax(&g, copy, 1, 16384, 4); /* specialized to the row: one pass */
    bench_softmax(&g, copy, 1, 16384, 8);
    bench_softmax(&g, copy, 2, 16384, 8);
    cuda_event_destroy(g.dev, g.start);
    cuda_event_destroy(g.dev, g.stop);
    tile_context_destroy(g.ctx);
    bench_write_json(out, device, sb_str(&cmd));
    sb_free(&cmd);
    return 0;
}
