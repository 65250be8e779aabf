/*
 * device_cuda.c: the cuda device of the public API: open, memory, compile, load, launch.
 *
 * Everything GPU-specific that api.c needs goes through here, and everything here reaches the
 * driver through runtime/cuda.h only. A context on a GPU holds an RtCuda: the opened device,
 * the architecture its compute capability maps to (backend_arch_for_capability), the cache
 * configuration read once from the environment, and the memory cache of loaded functions.
 *
 * Compiling a kernel (after rt_compile ran the frontend and the target-independent passes) is
 * lazy: rt_cuda_prepare only checks the device and the element types, and the first launch that
 * needs a function compiles it (rt_cuda_select, rt_kernel_function_for). The GPU passes run per
 * build, for the device's arch, RT_KERNEL_NUM_WARPS and the variant's launch
 * facts, on a copy of the kernel's IR (rt_target_module), then the backend: the cache key is the
 * SHA-256 of the source, kernel, constants, arch, compiler version and options (cache.h). A hit
 * in the context's memory cache reuses the loaded function. Otherwise cache_fetch reads the
 * disk entry or builds one: backend_compile_ptx, then a cubin (nvJitLink or ptxas) when either
 * tool is present, else the PTX itself, which the driver JIT-compiles at load. A cached image
 * that the driver refuses is rebuilt once without the cache. Dynamic shared memory above 48 KB
 * is opted into per function.
 *
 * Specialization (Triton-style): at launch, rt_cuda_select computes facts about the tensor
 * arguments (16-byte aligned data, unit strides, sizes that are multiples of 16; RtSpecFacts)
 * and uses the kernel's variant compiled for exactly those facts, compiling it on first use
 * (CodegenOptions.spec) under a cache key that adds the facts to the generic kernel's. Variants
 * live in a list per tile_kernel under its lock. Arguments with no fact, TILE_SPECIALIZE=0, a
 * kernel loaded from an ahead-of-time image, or a variant whose compile failed use the generic
 * kernel, compiled by the first launch that needs it (its failure is that launch's error, and
 * is remembered). A first launch therefore compiles one function, not two.
 *
 * Ahead-of-time images (rt_cuda_prepare_images): the first cubin the device can run is loaded
 * as is, then PTX; when none fits the kernel is compiled as above.
 *
 * Launching packs the parameters per the kernel ABI of backend/backend.h (a tensor: its data
 * pointer, i32 sizes, i64 strides; a scalar: i32 / i64 / f32 / f64 by type) into 8-byte slots
 * and calls cuda_launch with the grid that the kernel's grid region computes on the host
 * (vm_eval_grid only reads sizes and scalars, never tensor data).
 */
#include "runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "runtime/cache.h"
#include "runtime/cuda.h"
#include "vm.h"

/* The tensor maps of a function with TMA rings, encoded for the arguments of the latest launch:
 * launches with the same tensors (base, sizes, strides) reuse them, others encode again. */
enum { RT_TMA_SIGNATURE = 1 + 2 * IR_TMA_MAX_RANK }; /* base, sizes, strides (unused ones 0) */
typedef struct RtTmaMaps {
    pthread_mutex_t lock;
    bool valid;
    uint64_t signature[IR_MAX_TMA_MAPS][RT_TMA_SIGNATURE];
    _Alignas(64) uint8_t map[IR_MAX_TMA_MAPS][128];
} RtTmaMaps;

typedef struct RtCudaFunction {
    CudaModule *module;
    CudaFunction *fn;
    unsigned threads;
    unsigned shared_bytes;
    int ntma;                          /* tensor maps after the ABI's parameters (ir_tma_maps) */
    IrTmaMap tma[IR_MAX_TMA_MAPS];
    RtTmaMaps *encoded;                /* with ntma > 0 */
    int cluster;                       /* the IR's `cluster N` (passes/cluster.c); 0: none */
    struct RtCudaFunction *next_owned; /* every function the context loaded, for its destruction */
} RtCudaFunction;

typedef struct RtCuda {
    CudaDevice *device;
    int major, minor;
    bool arch_ok;
    BackendArch arch;
    CacheConfig cache;
    CacheMemory loaded;          /* key -> RtCudaFunction (when the cache is on) */
    bool specialize;             /* TILE_SPECIALIZE (on unless "0") */
    bool tma;                    /* specialized variants may get TMA rings: sm_90a, a driver with
                                    cuTensorMapEncodeTiled, TILE_TMA not "0" */
    bool roles;                  /* sm_90a and warp roles possible (rt_warp_roles_possible: a
                                    search for ptxas, done once here rather than per cache key) */
    pthread_mutex_t owned_lock;
    RtCudaFunction *owned;
} RtCuda;

enum { SHARED_DEFAULT_LIMIT = 48 * 1024 };

/* ---- the device --------------------------------------------------------------------------- */
tile_status rt_cuda_open(tile_context *ctx, int ordinal) {
    Strbuf err = {0};
    tile_status st = cuda_driver_load(&err);
    if (st != TILE_OK) {
        st = rt_fail(NULL, st, "cuda: cannot load the NVIDIA driver: %s", sb_str(&err));
        sb_free(&err);
        return st;
    }
    int count = cuda_device_count();
    if (count == 0) return rt_fail(NULL, TILE_ERROR_NOT_FOUND, "cuda: the driver found no GPU");
    if (ordinal < 0 || ordinal >= count)
        return rt_fail(NULL, TILE_ERROR_NOT_FOUND, "cuda:%d: no such device (%d GPU%s: cuda:0..%d)", ordinal, count,
                       count == 1 ? "" : "s", count - 1);
    RtCuda *c = xcalloc(1, sizeof *c);
    st = cuda_device_open(ordinal, &c->device, &err);
    if (st != TILE_OK) {
        st = rt_fail(NULL, st, "cuda:%d: %s", ordinal, sb_str(&err));
        sb_free(&err);
        free(c);
        return st;
    }
    sb_free(&err);
    cuda_device_capability(c->device, &c->major, &c->minor);
#ifdef TILE_HAVE_LLVM
    c->arch_ok = backend_arch_for_capability(c->major, c->minor, &c->arch);
#endif
    cache_config_from_env(&c->cache);
    c->specialize = rt_specialize_from_env();
#ifdef TILE_HAVE_LLVM
    c->tma = c->arch_ok && c->arch == BACKEND_ARCH_SM90A && cuda_has_tensor_maps() && env_flag("TILE_TMA", true);
    c->roles = c->arch_ok && c->arch == BACKEND_ARCH_SM90A && rt_warp_roles_possible();
#endif
    cache_memory_init(&c->loaded);
    pthread_mutex_init(&c->owned_lock, NULL);
    snprintf(ctx->name, sizeof ctx->name, "cuda:%d (%s, sm_%d%d)", ordinal, cuda_device_name(c->device), c->major,
             c->minor);
    ctx->cuda = c;
    return TILE_OK;
}

void rt_cuda_close(tile_context *ctx) {
    RtCuda *c = ctx->cuda;
    if (!c) return;
    cache_memory_destroy(&c->loaded, NULL, NULL);
    for (RtCudaFunction *f = c->owned, *next; f; f = next) {
        next = f->next_owned;
        cuda_module_unload(f->module);
        if (f->encoded) {
            pthread_mutex_destroy(&f->encoded->lock);
            free(f->encoded);
        }
        free(f);
    }
    pthread_mutex_destroy(&c->owned_lock);
    cuda_device_close(c->device);
    free(c);
    ctx->cuda = NULL;
}

const char *rt_cuda_arch(const tile_context *ctx) {
#ifdef TILE_HAVE_LLVM
    return ctx->cuda && ctx->cuda->arch_ok ? backend_arch_name(ctx->cuda->arch) : NULL;
#else
    (void)ctx;
    return NULL;
#endif
}

/* ---- memory ----------------------------------------------------------------------------------- */
static tile_status fail_with(tile_context *ctx, tile_status st, const char *what, Strbuf *err) {
    st = rt_fail(ctx, st, "%s: %s", what, sb_str(err));
    sb_free(err);
    return st;
}

tile_status rt_cuda_alloc(tile_context *ctx, size_t bytes, void **out) {
    Strbuf err = {0};
    CudaPtr p = 0;
    tile_status st = cuda_alloc(ctx->cuda->device, bytes ? bytes : 1, &p, &err);
    if (st != TILE_OK) return fail_with(ctx, st, "tile_alloc", &err);
    *out = (void *)(uintptr_t)p;
    return TILE_OK;
}

tile_status rt_cuda_free(tile_context *ctx, void *ptr) {
    if (!ptr) return TILE_OK;
    Strbuf err = {0};
    tile_status st = cuda_free(ctx->cuda->device, (CudaPtr)(uintptr_t)ptr, &err);
    return st == TILE_OK ? TILE_OK : fail_with(ctx, st, "tile_free", &err);
}

tile_status rt_cuda_copy(tile_context *ctx, void *dst, const void *src, size_t bytes, bool to_device) {
    if (!bytes) return TILE_OK;
    Strbuf err = {0};
    tile_status st = to_device ? cuda_copy_to_device(ctx->cuda->device, (CudaPtr)(uintptr_t)dst, src, bytes, &err)
                               : cuda_copy_to_host(ctx->cuda->device, dst, (CudaPtr)(uintptr_t)src, bytes, &err);
    return st == TILE_OK ? TILE_OK : fail_with(ctx, st, to_device ? "tile_copy_to_device" : "tile_copy_to_host", &err);
}

tile_status rt_cuda_synchronize(tile_context *ctx) {
    Strbuf err = {0};
    tile_status st = cuda_synchronize(ctx->cuda->device, &err);
    return st == TILE_OK ? TILE_OK : fail_with(ctx, st, "tile_synchronize (an earlier launch may have failed)", &err);
}

/* ---- code generation (no device needed) ------------------------------------------------------ */
unsigned rt_emit_conds(size_t n) {
    const char *text = getenv("TILE_EMIT_CONDS");
    unsigned word = 0;
    if (n == 1 && text && *text && !launch_conds_parse(text, strlen(text), &word))
        fprintf(stderr, "tile: TILE_EMIT_CONDS='%s' ignored: expected up to %d of 1, 0 or x\n", text, LAUNCH_CONDS_MAX);
    return word;
}

#ifdef TILE_HAVE_LLVM
/* The code generator's options for an architecture given by name (from the user). */
static bool codegen_options(const char *arch_name, int num_warps, CodegenOptions *opt, Strbuf *err) {
    BackendArch arch;
    if (!backend_arch_parse(arch_name, &arch)) {
        sb_printf(err, "unknown architecture '%s' (sm_80 or sm_90a)", arch_name);
        return false;
    }
    if (num_warps != 0 && !ir_num_warps_valid(num_warps)) { /* the API checks; this is the last line */
        sb_printf(err, "num_warps %d: expected 1, 2, 4, 8, 16 or 32", num_warps);
        return false;
    }
    *opt = (CodegenOptions){.arch = arch, .num_warps = num_warps};
    return true;
}

/* The GPU passes for the code generator's arch and num_warps (with facts: one per parameter of
 * f, or every fact) on a copy of f's target-independent module: NULL with the passes'
 * diagnostics in err and *status set. */
static IrModule *module_for_target(const IrFunction *f, const CodegenOptions *opt, bool every_fact, bool tma,
                                   unsigned conds, IrFunction **out, tile_status *status, Strbuf *err) {
    Target t;
    rt_target_for_arch(backend_arch_name(opt->arch), opt->num_warps, &t);
    t.facts = opt->spec;
    t.nfacts = opt->spec ? f->nparams : 0;
    t.every_fact = every_fact;
    t.tma = tma;
    t.conds = conds;
    DiagList d = {0};
    IrModule *m = rt_target_module(f, &t, NULL, NULL, &d, out);
    if (!m) {
        sb_puts(err, sb_str(&d.text));
        *status = d.internal ? TILE_ERROR_INTERNAL : TILE_ERROR_COMPILE;
    }
    diag_free(&d);
    return m;
}

static bool have_cubin_tool(void) {
    char path[4096];
    return backend_have_nvjitlink() || backend_find_ptxas(path, sizeof path, NULL);
}
#endif

tile_status rt_backend_emit(const IrFunction *const *fs, size_t n, const char *arch_name, int num_warps,
                            tile_emit_kind kind, Strbuf *out, Strbuf *err) {
#ifdef TILE_HAVE_LLVM
    CodegenOptions opt;
    if (!codegen_options(arch_name, num_warps, &opt, err)) return TILE_ERROR_INVALID_ARGUMENT;
    if (kind == TILE_EMIT_CUBIN) backend_nvjitlink_preload(); /* loads while the passes and LLVM run */
    /* TILE_EMIT_SPECIALIZED=1 (one kernel): the variant a launch gets when every tensor is 16-byte
     * aligned with unit last strides, sizes and other strides multiples of 16 (what the
     * benchmarks run), for inspecting its PTX and registers */
    CodegenParamSpec *all = NULL;
    const char *sp = getenv("TILE_EMIT_SPECIALIZED");
    if (sp && strcmp(sp, "1") == 0 && n == 1 && fs[0]->nparams) {
        const Target every = {.every_fact = true};
        all = xcalloc(fs[0]->nparams, sizeof *all);
        for (uint32_t i = 0; i < fs[0]->nparams; i++) all[i] = target_param_facts(&every, fs[0], i);
    }
    /* its launch-known conditions stay unspecialized (both branches compiled) unless TILE_EMIT_CONDS
     * gives their values (one kernel): "1", "10", "x1", ... in launch_conds_find's order, as
     * rt_spec_text's `if:` shows them */
    unsigned conds = rt_emit_conds(n);
    /* each kernel's GPU passes for this target, on its own copy */
    IrModule **modules = xcalloc(n, sizeof *modules);
    IrFunction **targeted = xcalloc(n, sizeof *targeted);
    tile_status pass_status = TILE_OK;
    for (size_t i = 0; i < n && pass_status == TILE_OK; i++)
        modules[i] = module_for_target(fs[i], &opt, all != NULL, true, conds, &targeted[i], &pass_status, err);
    opt.spec = all;
    CodegenInfo info = {0}, *infos = n > 1 ? xcalloc(n, sizeof *infos) : &info;
    bool ok = pass_status == TILE_OK;
    Strbuf ptx = {0};
    const IrFunction *const *ts = (const IrFunction *const *)targeted;
    if (ok && kind == TILE_EMIT_LLVM) {
        ok = n == 1 ? backend_compile_llvm(ts[0], &opt, out, &info, err)
                    : backend_compile_many(ts, n, &opt, false, out, infos, err);
    } else if (ok) {
        ok = n == 1 ? backend_compile_ptx(ts[0], &opt, &ptx, &info, err)
                    : backend_compile_many(ts, n, &opt, true, &ptx, infos, err);
    }
    for (size_t i = 0; i < n; i++)
        if (modules[i]) ir_module_free(modules[i]);
    free(modules);
    free(targeted);
    if (pass_status != TILE_OK) {
        if (infos != &info) free(infos);
        free(all);
        return pass_status;
    }
    free(all);
    bool unsupported = false, internal = false;
    for (size_t i = 0; i < n; i++) {
        unsupported = unsupported || infos[i].unsupported;
        internal = internal || infos[i].internal;
        rt_times()->codegen += infos[i].codegen_seconds;
        rt_times()->llvm += infos[i].llvm_seconds;
    }
    double optimize, llvm_codegen;
    llvm_emit_times(&optimize, &llvm_codegen);
    if (kind != TILE_EMIT_LLVM) rt_times()->llvm_optimize += optimize;
    if (infos != &info) free(infos);
    if (!ok) {
        sb_free(&ptx);
        return internal ? TILE_ERROR_INTERNAL : unsupported ? TILE_ERROR_UNSUPPORTED : TILE_ERROR_COMPILE;
    }
    if (kind == TILE_EMIT_LLVM) return TILE_OK;
    if (kind == TILE_EMIT_PTX) {
        sb_putn(out, ptx.data, ptx.len);
        sb_free(&ptx);
        return TILE_OK;
    }
    tile_status st = TILE_OK;
    double t0 = monotonic_seconds(); /* the assembly's time includes waiting for nvJitLink to load */
    if (!have_cubin_tool()) {
        Strbuf searched = {0};
        char path[4096];
        backend_find_ptxas(path, sizeof path, &searched);
        sb_printf(err, "no tool to assemble a cubin: libnvJitLink cannot be loaded and ptxas is not found (%s)",
                  sb_str(&searched));
        sb_free(&searched);
        st = TILE_ERROR_UNSUPPORTED;
    } else {
        if (!backend_ptx_to_cubin(ptx.data, ptx.len, opt.arch, CUBIN_TOOL_AUTO, out, err)) st = TILE_ERROR_COMPILE;
        rt_times()->assemble += monotonic_seconds() - t0;
    }
    sb_free(&ptx);
    return st;
#else
    (void)fs, (void)n, (void)arch_name, (void)num_warps, (void)kind, (void)out;
    sb_puts(err, "this libtile was built without the LLVM backend (TILE_WITH_LLVM=OFF)");
    return TILE_ERROR_UNSUPPORTED;
#endif
}

tile_status rt_backend_image(const IrFunction *f, const char *arch_name, int num_warps, Strbuf *image,
                             unsigned *threads, unsigned *shared_bytes, Strbuf *err) {
#ifdef TILE_HAVE_LLVM
    CodegenOptions opt;
    if (!codegen_options(arch_name, num_warps, &opt, err)) return TILE_ERROR_INVALID_ARGUMENT;
    /* an ahead-of-time image is the generic kernel: no launch facts (so no TMA ring either) */
    tile_status pass_status = TILE_OK;
    IrFunction *targeted;
    IrModule *m = module_for_target(f, &opt, false, false, 0, &targeted, &pass_status, err);
    if (!m) return pass_status;
    CodegenInfo info = {0};
    Strbuf ptx = {0};
    bool compiled = backend_compile_ptx(targeted, &opt, &ptx, &info, err);
    ir_module_free(m);
    if (!compiled) {
        sb_free(&ptx);
        return info.internal ? TILE_ERROR_INTERNAL : info.unsupported ? TILE_ERROR_UNSUPPORTED : TILE_ERROR_COMPILE;
    }
    *threads = info.threads;
    *shared_bytes = info.shared_bytes;
    tile_status st = TILE_OK;
    if (!have_cubin_tool()) sb_putn(image, ptx.data, ptx.len); /* the driver compiles PTX at load */
    else if (!backend_ptx_to_cubin(ptx.data, ptx.len, opt.arch, CUBIN_TOOL_AUTO, image, err)) st = TILE_ERROR_COMPILE;
    sb_free(&ptx);
    return st;
#else
    (void)f, (void)arch_name, (void)num_warps, (void)image, (void)threads, (void)shared_bytes;
    sb_puts(err, "this libtile was built without the LLVM backend (TILE_WITH_LLVM=OFF)");
    return TILE_ERROR_UNSUPPORTED;
#endif
}

/* ---- compiling and loading --------------------------------------------------------------------- */
#ifdef TILE_HAVE_LLVM
typedef struct Build {
    RtCuda *cuda;
    tile_kernel *kernel;         /* its target-independent IR: full_function */
    bool tma;                    /* TMA rings allowed: the entry's launch data lists the maps */
    BackendArch arch;
    const CodegenParamSpec *spec; /* NULL: the generic kernel */
    unsigned conds;              /* the launch-known conditions (Target.conds) */
    tile_status status;          /* why build failed */
    double seconds;              /* spent in build_image */
} Build;

/* The launch data of an entry built with TMA rings allowed (CacheEntry.launch): the number of
 * tensor maps, then per map its parameter, the tensor's rank, the box (IR_TMA_MAX_RANK sizes,
 * outermost first, 0 past the rank), element bytes and swizzle, each a little-endian int64. The
 * launch needs the maps (ir_tma_maps of the IR after the GPU passes); kept in the entry, a disk
 * hit runs no GPU pass to learn them. (Entries of the older 2-d layout, 5 fields a map, do not
 * decode: they are rebuilt.) */
enum { TMA_MAP_FIELDS = 4 + IR_TMA_MAX_RANK };

static void put_le64(uint8_t *p, int64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)((uint64_t)v >> (8 * i));
}

static int64_t get_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return (int64_t)v;
}

static void tma_maps_encode(const IrTmaMap *maps, int n, CacheEntry *e) {
    e->launch_len = 8 + (size_t)n * TMA_MAP_FIELDS * 8;
    e->launch = xmalloc(e->launch_len);
    put_le64(e->launch, n);
    for (int i = 0; i < n; i++) {
        int64_t fields[TMA_MAP_FIELDS] = {maps[i].param, maps[i].rank};
        for (int d = 0; d < IR_TMA_MAX_RANK; d++) fields[2 + d] = d < maps[i].rank ? maps[i].box[d] : 0;
        fields[2 + IR_TMA_MAX_RANK] = maps[i].elem_bytes;
        fields[3 + IR_TMA_MAX_RANK] = maps[i].swizzle;
        for (int j = 0; j < TMA_MAP_FIELDS; j++) put_le64(e->launch + 8 + ((size_t)i * TMA_MAP_FIELDS + j) * 8, fields[j]);
    }
}

/* A kernel with `cluster N` (passes/cluster.c): N follows the maps in the launch data, as one more
 * little-endian int64 (absent: no clusters). */
static void cluster_encode(int cluster, CacheEntry *e) {
    e->launch = xrealloc(e->launch, e->launch_len + 8);
    put_le64(e->launch + e->launch_len, cluster);
    e->launch_len += 8;
}

/* The cluster size after the maps of e's launch data, 0 when there is none (or it is not 2, 4, 8). */
static int cluster_decode(const CacheEntry *e) {
    if (e->launch_len < 8) return 0;
    int64_t count = get_le64(e->launch);
    if (count < 0 || count > IR_MAX_TMA_MAPS) return 0;
    size_t maps_end = 8 + (size_t)count * TMA_MAP_FIELDS * 8;
    if (e->launch_len != maps_end + 8) return 0;
    int64_t n = get_le64(e->launch + maps_end);
    return n == 2 || n == 4 || n == 8 ? (int)n : 0;
}

/* The maps of e's launch data into maps[IR_MAX_TMA_MAPS]; false when it is not such data. */
static bool tma_maps_decode(const CacheEntry *e, IrTmaMap *maps, int *n) {
    if (e->launch_len < 8) return false;
    int64_t count = get_le64(e->launch);
    if (count < 0 || count > IR_MAX_TMA_MAPS) return false;
    size_t maps_end = 8 + (size_t)count * TMA_MAP_FIELDS * 8;
    if (e->launch_len != maps_end && (e->launch_len != maps_end + 8 || !cluster_decode(e))) return false;
    for (int i = 0; i < count; i++) {
        int64_t f[TMA_MAP_FIELDS];
        for (int j = 0; j < TMA_MAP_FIELDS; j++) f[j] = get_le64(e->launch + 8 + ((size_t)i * TMA_MAP_FIELDS + j) * 8);
        int64_t rank = f[1], elem_bytes = f[2 + IR_TMA_MAX_RANK], swizzle = f[3 + IR_TMA_MAX_RANK];
        if (f[0] < 0 || f[0] > INT32_MAX || rank < 2 || rank > IR_TMA_MAX_RANK || elem_bytes <= 0 || elem_bytes > 16 ||
            (swizzle != 0 && swizzle != 32 && swizzle != 64 && swizzle != 128))
            return false; /* beyond what TMA takes: not ours */
        maps[i] = (IrTmaMap){.param = (int)f[0], .rank = (int)rank, .elem_bytes = (int)elem_bytes,
                             .swizzle = (int)swizzle};
        for (int d = 0; d < rank; d++) {
            if (f[2 + d] <= 0 || f[2 + d] > 256) return false;
            maps[i].box[d] = f[2 + d];
        }
    }
    *n = (int)count;
    return true;
}

static CacheKey interface_key(RtCuda *c, const tile_kernel *k);

/* The IR a build of k compiles: its own, or for a kernel made from its interface entry the full
 * IR, made now by the frontend (once: every build holds k->variants_lock) and required to have
 * exactly that interface, since launches already chose variants by it. A mismatch (an entry
 * written over by hand) fails the build, and the entry is removed so that the next program makes
 * a good one. */
static const IrFunction *full_function(RtCuda *c, tile_kernel *k, tile_status *st, Strbuf *err) {
    if (!k->interface) return k->function;
    if (k->full) return k->full;
    DiagList d = {0};
    IrFunction *f = NULL;
    RtCompileOptions copt = {.target = {.num_warps = RT_KERNEL_NUM_WARPS, .every_fact = true}};
    IrModule *m = rt_compile_program(k->program, k->name, k->consts, k->nconsts, &copt, &d, &f);
    if (!m) {
        *st = d.internal ? TILE_ERROR_INTERNAL : TILE_ERROR_COMPILE;
        sb_puts(err, sb_str(&d.text));
        diag_free(&d);
        return NULL;
    }
    diag_free(&d);
    RtSteps *conds = rt_conds_compile(f);
    bool same = rt_interface_matches(f, conds, k->interface, k->interface_len);
    rt_grid_free(conds);
    if (!same) {
        ir_module_free(m);
        CacheKey key = interface_key(c, k);
        Strbuf path = {0};
        cache_entry_path(c->cache.dir, &key, &path);
        sb_printf(err, "the kernel cache's interface entry %s does not match the source (removed)", sb_str(&path));
        unlink(sb_str(&path));
        sb_free(&path);
        *st = TILE_ERROR_INTERNAL;
        return NULL;
    }
    k->full_module = m;
    k->full = f;
    return f;
}

/* build_image's work, which adds each step's time to this thread's tile_compile_times. */
static bool build_image_timed(Build *b, CacheEntry *out, Strbuf *err) {
    CodegenOptions opt = {.arch = b->arch, .num_warps = RT_KERNEL_NUM_WARPS, .spec = b->spec};
    backend_nvjitlink_preload(); /* loads while the passes and LLVM run */
    const IrFunction *function = full_function(b->cuda, b->kernel, &b->status, err);
    if (!function) return false;
    /* the GPU passes for this arch and these facts, then the code generator */
    IrFunction *targeted = NULL;
    IrModule *m = module_for_target(function, &opt, false, b->tma, b->conds, &targeted, &b->status, err);
    if (!m) return false;
    IrTmaMap maps[IR_MAX_TMA_MAPS];
    int nmaps = b->tma ? ir_tma_maps(targeted, maps) : 0;
    if (nmaps < 0) nmaps = 0; /* the code generator refuses such a kernel */
    CodegenInfo info = {0};
    Strbuf ptx = {0};
    bool compiled = backend_compile_ptx(targeted, &opt, &ptx, &info, err);
    int targeted_cluster = targeted->cluster;
    ir_module_free(m);
    double optimize, llvm_codegen;
    llvm_emit_times(&optimize, &llvm_codegen);
    rt_times()->codegen += info.codegen_seconds;
    rt_times()->llvm += info.llvm_seconds;
    rt_times()->llvm_optimize += optimize;
    if (!compiled) {
        sb_free(&ptx);
        b->status = info.internal ? TILE_ERROR_INTERNAL : info.unsupported ? TILE_ERROR_UNSUPPORTED : TILE_ERROR_COMPILE;
        return false;
    }
    out->threads = info.threads;
    out->shared_bytes = info.shared_bytes;
    if (b->tma) tma_maps_encode(maps, nmaps, out);
    if (b->tma && targeted_cluster > 1) cluster_encode(targeted_cluster, out);
    double t0 = monotonic_seconds(); /* the assembly's time includes waiting for nvJitLink to load */
    if (have_cubin_tool()) {
        Strbuf cubin = {0};
        bool assembled = backend_ptx_to_cubin(ptx.data, ptx.len, b->arch, CUBIN_TOOL_AUTO, &cubin, err);
        rt_times()->assemble += monotonic_seconds() - t0;
        if (!assembled) {
            sb_free(&ptx);
            sb_free(&cubin);
            b->status = TILE_ERROR_COMPILE;
            return false;
        }
        sb_free(&ptx);
        out->is_ptx = false;
        out->image = (uint8_t *)cubin.data;
        out->len = cubin.len;
        return true;
    }
    out->is_ptx = true;
    out->len = ptx.len;
    out->image = (uint8_t *)(ptx.data ? ptx.data : xstrdup(""));
    return true;
}

/* cache_fetch's builder: the PTX, assembled into a cubin when a tool is present. */
static bool build_image(void *user, CacheEntry *out, Strbuf *err) {
    Build *b = user;
    double start = monotonic_seconds();
    bool ok = build_image_timed(b, out, err);
    b->seconds += monotonic_seconds() - start;
    return ok;
}
#endif

/* Loads an image and its function; NULL with the reason in err. */
static RtCudaFunction *load_image(RtCuda *c, const CacheEntry *e, const char *name, tile_status *st, Strbuf *err) {
    RtCudaFunction *f = xcalloc(1, sizeof *f);
    f->threads = e->threads;
    f->shared_bytes = e->shared_bytes;
    double t0 = monotonic_seconds();
    if (e->is_ptx) *st = cuda_module_load_ptx(c->device, (const char *)e->image, &f->module, err);
    else *st = cuda_module_load_cubin(c->device, e->image, e->len, &f->module, err);
    if (*st == TILE_OK) *st = cuda_module_function(f->module, name, &f->fn, err);
    rt_times()->load += monotonic_seconds() - t0;
    if (*st == TILE_OK && f->shared_bytes > SHARED_DEFAULT_LIMIT) {
        int limit = cuda_device_max_shared_optin(c->device);
        if ((int64_t)f->shared_bytes > (int64_t)limit) {
            sb_printf(err, "the kernel needs %u bytes of shared memory per block; the device allows %d",
                      f->shared_bytes, limit);
            *st = TILE_ERROR_UNSUPPORTED;
        } else {
            *st = cuda_function_set_max_dynamic_shared(c->device, f->fn, (int)f->shared_bytes, err);
        }
    }
    if (*st == TILE_OK && (f->threads == 0 || f->threads > 1024)) {
        sb_printf(err, "the code generator asked for %u threads per block", f->threads);
        *st = TILE_ERROR_COMPILE;
    }
    if (*st != TILE_OK) {
        if (f->module) cuda_module_unload(f->module);
        free(f);
        return NULL;
    }
    return f;
}

/* Makes the context own f (until it is destroyed). */
static void own_function(RtCuda *c, RtCudaFunction *f) {
    pthread_mutex_lock(&c->owned_lock);
    f->next_owned = c->owned;
    c->owned = f;
    pthread_mutex_unlock(&c->owned_lock);
}

#ifdef TILE_HAVE_LLVM
/* Compiles (or finds in the cache) k for the device with the facts spec (NULL: the generic
 * kernel) under key, and loads it. On failure returns the status with the reason in err
 * (nothing recorded: the caller decides whether it is an error). */
static tile_status compile_and_load(RtCuda *c, tile_kernel *k, const CodegenParamSpec *spec, unsigned conds,
                                    const CacheKey *key, RtCudaFunction **out, Strbuf *err) {
    *out = NULL;
    if (c->cache.enabled) {
        RtCudaFunction *hit = cache_memory_get(&c->loaded, key);
        if (hit) {
            *out = hit;
            return TILE_OK;
        }
    }
    /* A variant that may get TMA rings needs its tensor maps at launch: the build records them
     * in the entry's launch data, so a disk hit has them without running the GPU passes. */
    Build build = {.cuda = c, .kernel = k, .tma = spec && c->tma, .arch = c->arch, .spec = spec, .conds = conds,
                   .status = TILE_ERROR_COMPILE};
    CacheEntry entry = {0};
    CacheOutcome outcome = {0};
    RtCudaFunction *f = NULL;
    tile_status st = TILE_OK;
    IrTmaMap maps[IR_MAX_TMA_MAPS];
    int nmaps = 0;
    double t0 = monotonic_seconds();
    bool fetched = cache_fetch(&c->cache, key, build_image, &build, &entry, &outcome, err);
    rt_times()->cache += monotonic_seconds() - t0 - build.seconds; /* the disk's part; build_image counts its own */
    if (!fetched) {
        st = build.status;
        goto done;
    }
    if (!build.tma || tma_maps_decode(&entry, maps, &nmaps)) f = load_image(c, &entry, k->function->name, &st, err);
    if (!f && !outcome.built) {
        /* A valid entry the driver refuses (e.g. made for another driver), or without the launch
         * data this build needs: rebuild it. */
        CacheConfig no_read = c->cache;
        no_read.enabled = false;
        cache_entry_free(&entry);
        sb_clear(err);
        if (!cache_fetch(&no_read, key, build_image, &build, &entry, &outcome, err)) {
            st = build.status;
            goto done;
        }
        nmaps = 0;
        if (!build.tma || tma_maps_decode(&entry, maps, &nmaps)) f = load_image(c, &entry, k->function->name, &st, err);
        else st = TILE_ERROR_INTERNAL; /* (a build always writes them) */
        if (f && c->cache.enabled && c->cache.dir[0]) cache_disk_store(c->cache.dir, key, &entry, &outcome.note);
    }
    if (!f) {
        Strbuf why = {0};
        sb_printf(&why, "cannot load the compiled kernel: %s", sb_str(err));
        sb_clear(err);
        sb_puts(err, sb_str(&why));
        sb_free(&why);
        goto done;
    }
    if (nmaps) {
        f->ntma = nmaps;
        memcpy(f->tma, maps, sizeof maps);
        f->encoded = xcalloc(1, sizeof *f->encoded);
        pthread_mutex_init(&f->encoded->lock, NULL);
    }
    if (build.tma) f->cluster = cluster_decode(&entry);
    own_function(c, f);
    if (k->store_interface) { /* the first function of a kernel the frontend made */
        k->store_interface = false;
        rt_cuda_store_interface(k->program->ctx, k);
    }
    /* When another thread loaded the same key first, use its function (ours stays owned, idle). */
    *out = c->cache.enabled ? cache_memory_put(&c->loaded, key, f) : f;
done:
    cache_entry_free(&entry);
    sb_free(&outcome.note);
    return st;
}

static CacheKey generic_key(RtCuda *c, const tile_kernel *k) {
    const SourceFile *src = &k->program->ast->source;
    CacheKernelId id = {.source = src->text, .source_len = src->len,
                        .source_sha256 = k->program->has_sha ? k->program->source_sha256 : NULL, .kernel = k->name,
                        .consts = k->consts,
                        .nconsts = k->nconsts, .arch = backend_arch_name(c->arch), .num_warps = RT_KERNEL_NUM_WARPS};
    CacheKey key = cache_kernel_key(&id);
    bool sm90a = c->arch == BACKEND_ARCH_SM90A, roles = c->roles;
    bool no_wgmma = sm90a && !env_flag("TILE_WGMMA", true);
    bool specialize = roles && env_flag("TILE_WARP_SPECIALIZE", false); /* rt_warp_specialize */
    bool no_roles = sm90a && !roles;                                    /* specialize = 1 falls back */
    bool no_tma_store = sm90a && !env_flag("TILE_TMA_STORE", true);
    const char *pipeline = backend_llvm_pipeline();
    if (no_wgmma || specialize || no_roles || no_tma_store || backend_llvm_lsr() || pipeline) {
        /* dots kept on mma.sync, producer warpgroups or none, tile stores kept on st.global
         * (rt_target_for_arch), LLVM's LSR on (TILE_LLVM_LSR=1) or another IR pipeline
         * (TILE_LLVM_PIPELINE): another image */
        Sha256 h;
        cache_key_begin(&h);
        cache_key_add(&h, "kernel", key.bytes, sizeof key.bytes);
        if (no_wgmma) cache_key_add_i64(&h, "no-wgmma", 1);
        if (specialize) cache_key_add_i64(&h, "specialize", 1);
        if (no_roles) cache_key_add_i64(&h, "no-warp-roles", 1);
        if (no_tma_store) cache_key_add_i64(&h, "no-tma-store", 1);
        if (backend_llvm_lsr()) cache_key_add_i64(&h, "lsr", 1);
        if (pipeline) cache_key_add_str(&h, "llvm-pipeline", pipeline);
        key = cache_key_end(&h);
    }
    return key;
}

static CacheKey interface_key(RtCuda *c, const tile_kernel *k) {
    CacheKey generic = generic_key(c, k);
    Sha256 h;
    cache_key_begin(&h);
    cache_key_add(&h, "kernel", generic.bytes, sizeof generic.bytes);
    cache_key_add_str(&h, "entry", "interface");
    return cache_key_end(&h);
}

/* The marker of a source that parsed: its SHA-256 under this tile's version (the grammar's). */
CacheKey rt_parsed_source_key(const uint8_t source_sha256[32]) {
    Sha256 h;
    cache_key_begin(&h);
    cache_key_add_str(&h, "entry", "parsed source");
    cache_key_add(&h, "source-sha256", source_sha256, 32);
    cache_key_add_str(&h, "version", tile_version());
    return cache_key_end(&h);
}
#endif

/* One access(2): the marker is only a hint (one that lied would defer the syntax errors to
 * rt_program_parse, which reports them), so its directory's privacy is not checked here. */
bool rt_cuda_source_parsed_before(tile_context *ctx, const uint8_t source_sha256[32]) {
#ifdef TILE_HAVE_LLVM
    RtCuda *c = ctx->cuda;
    if (!c || !c->cache.enabled || !c->cache.dir[0] || !env_flag("TILE_CACHE_INTERFACE", true)) return false;
    CacheKey key = rt_parsed_source_key(source_sha256);
    Strbuf path = {0};
    cache_entry_path(c->cache.dir, &key, &path);
    bool found = access(sb_str(&path), F_OK) == 0;
    sb_free(&path);
    return found;
#else
    (void)ctx, (void)source_sha256;
    return false;
#endif
}

bool rt_cuda_kernel_from_interface(tile_context *ctx, tile_kernel *k) {
#ifdef TILE_HAVE_LLVM
    RtCuda *c = ctx->cuda;
    if (!c || !c->cache.enabled || !c->cache.dir[0] || !env_flag("TILE_CACHE_INTERFACE", true)) return false;
    double t0 = monotonic_seconds();
    CacheKey key = interface_key(c, k);
    CacheEntry e = {0};
    Strbuf why = {0};
    bool made = false;
    if (cache_disk_load(c->cache.dir, &key, &e, &why) == CACHE_HIT) {
        k->module = rt_interface_decode(e.image, e.len, k->name, &k->program->ast->source, &k->function, &k->conds,
                                        &k->written, &why);
        if (k->module) {
            k->interface = xmalloc(e.len);
            memcpy(k->interface, e.image, e.len);
            k->interface_len = e.len;
            made = true;
        }
    }
    cache_entry_free(&e);
    sb_free(&why);
    rt_times()->cache += monotonic_seconds() - t0;
    return made;
#else
    (void)ctx, (void)k;
    return false;
#endif
}

void rt_cuda_store_interface(tile_context *ctx, const tile_kernel *k) {
#ifdef TILE_HAVE_LLVM
    RtCuda *c = ctx->cuda;
    if (!c || !c->cache.enabled || !c->cache.dir[0] || k->interface || !env_flag("TILE_CACHE_INTERFACE", true)) return;
    Strbuf bytes = {0}, why = {0};
    if (rt_interface_encode(k->function, k->conds, NULL, &bytes)) {
        CacheKey key = interface_key(c, k);
        CacheEntry e = {.image = (uint8_t *)bytes.data, .len = bytes.len};
        /* (an optimization: a failure costs the next program time) */
        if (cache_disk_store_hint(c->cache.dir, &key, &e, &why) && k->program->has_sha &&
            !rt_cuda_source_parsed_before(ctx, k->program->source_sha256)) {
            CacheKey parsed = rt_parsed_source_key(k->program->source_sha256);
            CacheEntry marker = {.image = (uint8_t *)"", .len = 0};
            cache_disk_store_hint(c->cache.dir, &parsed, &marker, &why);
        }
    }
    sb_free(&bytes);
    sb_free(&why);
#else
    (void)ctx, (void)k;
#endif
}

tile_status rt_cuda_prepare(tile_context *ctx, tile_kernel *k) {
#ifdef TILE_HAVE_LLVM
    RtCuda *c = ctx->cuda;
    if (!c->arch_ok)
        return rt_fail(ctx, TILE_ERROR_UNSUPPORTED, "%s: %s is sm_%d%d; tile compiles for sm_80 and newer", k->name,
                       ctx->name, c->major, c->minor);
    /* Nothing is compiled here: a first launch compiles only the function it needs (usually the
     * variant for its facts), so no launch pays for a generic kernel it does not run. What is
     * cheap to know now is still said now: element types the code generator cannot handle. */
    Strbuf err = {0};
    tile_status st = TILE_OK;
    if (!backend_check_types(k->function, &err))
        st = rt_fail(ctx, TILE_ERROR_UNSUPPORTED, "%s for %s: %s", k->name, backend_arch_name(c->arch), sb_str(&err));
    sb_free(&err);
    return st;
#else
    (void)k;
    return rt_fail(ctx, TILE_ERROR_UNSUPPORTED, "this libtile was built without the LLVM backend (TILE_WITH_LLVM=OFF)");
#endif
}

/* ---- ahead-of-time images ----------------------------------------------------------------------- */
bool rt_image_is_ptx(const tile_image *image) {
    return !(image->size >= 4 && memcmp(image->data, "\177ELF", 4) == 0);
}

bool rt_image_usable(const char *arch, bool is_ptx, int major, int minor) {
    if (!arch || strncmp(arch, "sm_", 3) != 0) return false;
    const char *p = arch + 3;
    int digits = 0, number = 0;
    while (p[digits] >= '0' && p[digits] <= '9' && digits < 4) number = number * 10 + (p[digits++] - '0');
    bool accel = p[digits] == 'a';
    if (digits < 2 || p[digits + accel] != 0) return false;
    int arch_major = number / 10, arch_minor = number % 10;
    if (accel) return major == arch_major && minor == arch_minor; /* arch-specific code runs there only */
    if (is_ptx) return major > arch_major || (major == arch_major && minor >= arch_minor);
    return major == arch_major && minor >= arch_minor;
}

tile_status rt_cuda_prepare_images(tile_context *ctx, tile_kernel *k, const tile_image *images, size_t nimages) {
    RtCuda *c = ctx->cuda;
    Strbuf err = {0};
    /* Cubins first (no JIT at all), then PTX. */
    for (int pass = 0; pass < 2 && !k->cuda; pass++) {
        for (size_t i = 0; i < nimages && !k->cuda; i++) {
            const tile_image *im = &images[i];
            bool is_ptx = rt_image_is_ptx(im);
            if (!im->data || !im->size || is_ptx != (pass == 1) || !rt_image_usable(im->arch, is_ptx, c->major, c->minor))
                continue;
            /* load_image wants PTX NUL-terminated: copy it (a cubin is used in place). */
            uint8_t *copy = NULL;
            if (is_ptx) {
                copy = im->size == SIZE_MAX ? NULL : try_malloc(im->size + 1);
                if (!copy) {
                    sb_free(&err);
                    return rt_fail(ctx, TILE_ERROR_OUT_OF_MEMORY, "cannot copy a PTX image of %zu bytes", im->size);
                }
                memcpy(copy, im->data, im->size);
                copy[im->size] = 0;
            }
            CacheEntry e = {.is_ptx = is_ptx, .threads = im->threads, .shared_bytes = im->shared_bytes,
                            .image = copy ? copy : (uint8_t *)(uintptr_t)im->data, .len = im->size};
            tile_status st;
            Strbuf why = {0};
            RtCudaFunction *f = load_image(c, &e, k->function->name, &st, &why);
            free(copy);
            if (f) {
                own_function(c, f);
                k->cuda = f;
                k->from_image = true;
            } else {
                sb_printf(&err, "%s%s image %zu (%s): %s", err.len ? "; " : "", is_ptx ? "PTX" : "cubin", i,
                          im->arch ? im->arch : "?", sb_str(&why));
            }
            sb_free(&why);
        }
    }
    if (k->cuda) {
        sb_free(&err);
        return TILE_OK;
    }
#ifdef TILE_HAVE_LLVM
    sb_free(&err);
    return rt_cuda_prepare(ctx, k); /* no image fits: compiled at its first launch */
#else
    tile_status st = rt_fail(ctx, TILE_ERROR_UNSUPPORTED,
                             "%s: none of its %zu image%s runs on %s%s%s, and this libtile cannot compile it "
                             "(built without the LLVM backend)",
                             k->name, nimages, nimages == 1 ? "" : "s", ctx->name, err.len ? ": " : "", sb_str(&err));
    sb_free(&err);
    return st;
#endif
}

/* ---- specialization ----------------------------------------------------------------------------- */
bool rt_specialize_from_env(void) {
    return env_flag("TILE_SPECIALIZE", true);
}

bool rt_spec_facts(const IrFunction *f, const RtSteps *conds, const tile_arg *args, size_t nargs, RtSpecFacts *facts) {
    facts[f->nparams] = rt_conds_eval(conds, args, nargs);
    bool any = facts[f->nparams] != 0;
    for (uint32_t i = 0; i < f->nparams; i++) {
        const IrType *t = f->body->args[i]->type;
        RtSpecFacts bits = 0;
        if (t->kind == TY_TENSOR && i < nargs && args[i].kind == TILE_ARG_TENSOR) {
            const tile_tensor *x = &args[i].tensor;
            if ((uintptr_t)x->data % 16 == 0) bits |= RT_SPEC_ALIGNED16;
            bool strides16 = true;
            for (int d = 0; d < t->rank; d++) strides16 = strides16 && (x->strides[d] == 1 || x->strides[d] % 16 == 0);
            if (strides16 && t->rank > 1) bits |= RT_SPEC_STRIDES_DIV16;
            for (int d = 0; d < t->rank && d < 6; d++) {
                if (x->strides[d] == 1) bits |= (RtSpecFacts)(RT_SPEC_UNIT_STRIDE0 << d);
                if (f->params[i].dims[d].symbol && x->shape[d] % 16 == 0)
                    bits |= (RtSpecFacts)(RT_SPEC_SIZE_DIV16_0 << d);
            }
        }
        facts[i] = bits;
        any = any || bits;
    }
    return any;
}

CodegenParamSpec rt_spec_unpack(RtSpecFacts facts) {
    CodegenParamSpec s;
    memset(&s, 0, sizeof s);
    s.aligned16 = facts & RT_SPEC_ALIGNED16;
    s.strides_div16 = facts & RT_SPEC_STRIDES_DIV16;
    for (int d = 0; d < 6; d++) {
        s.unit_stride[d] = facts & (RT_SPEC_UNIT_STRIDE0 << d);
        s.size_div16[d] = facts & (RT_SPEC_SIZE_DIV16_0 << d);
    }
    return s;
}

static void dims_text(Strbuf *out, const char *what, RtSpecFacts facts, unsigned first) {
    if (!(facts & (0x3fu * first))) return;
    sb_printf(out, ",%s(", what);
    bool comma = false;
    for (int d = 0; d < 6; d++)
        if (facts & (first << d)) {
            sb_printf(out, "%s%d", comma ? "," : "", d);
            comma = true;
        }
    sb_puts(out, ")");
}

void rt_spec_text(const IrFunction *f, const RtSteps *conds, const RtSpecFacts *facts, Strbuf *out) {
    bool any = false;
    for (uint32_t i = 0; i < f->nparams; i++) {
        if (!facts[i]) continue;
        sb_printf(out, "%s%s:", any ? " " : "", f->params[i].name);
        size_t start = out->len;
        if (facts[i] & RT_SPEC_ALIGNED16) sb_puts(out, ",align16");
        if (facts[i] & RT_SPEC_STRIDES_DIV16) sb_puts(out, ",strides16");
        dims_text(out, "unit", facts[i], RT_SPEC_UNIT_STRIDE0);
        dims_text(out, "div16", facts[i], RT_SPEC_SIZE_DIV16_0);
        /* drop the first comma */
        memmove(out->data + start, out->data + start + 1, out->len - start);
        out->len--;
        any = true;
    }
    unsigned word = facts[f->nparams];
    if (word) {
        sb_printf(out, "%sif:", any ? " " : "");
        launch_conds_text(word, rt_conds_count(conds), out);
        any = true;
    }
    if (!any) sb_puts(out, "generic");
}

CacheKey rt_spec_cache_key(const CacheKey *generic, const RtSpecFacts *facts, uint32_t nparams) {
    bool any = facts[nparams] != 0;
    for (uint32_t i = 0; i < nparams; i++) any = any || facts[i];
    if (!any) return *generic;
    Sha256 h;
    cache_key_begin(&h);
    cache_key_add(&h, "generic", generic->bytes, sizeof generic->bytes);
    for (uint32_t i = 0; i < nparams; i++) cache_key_add_i64(&h, "facts", facts[i]);
    if (facts[nparams]) cache_key_add_i64(&h, "conds", facts[nparams]); /* (keys without conditions stay as they were) */
    return cache_key_end(&h);
}

#ifdef TILE_HAVE_LLVM
/* The key of a variant built with TMA rings allowed: another image than without (TILE_TMA=0). */
static CacheKey rt_tma_cache_key(const CacheKey *key) {
    Sha256 h;
    cache_key_begin(&h);
    cache_key_add(&h, "variant", key->bytes, sizeof key->bytes);
    cache_key_add_i64(&h, "tma", 1);
    cache_key_add_i64(&h, "cluster", env_flag("TILE_CLUSTER", false)); /* passes/cluster.c on or off */
    return cache_key_end(&h);
}
#endif

void rt_kernel_free_variants(tile_kernel *k) {
    for (RtVariant *v = k->variants, *next; v; v = next) {
        next = v->next;
        free(v->facts);
        free(v->message);
        free(v);
    }
    k->variants = NULL;
    free(k->generic_message);
    k->generic_message = NULL;
}

size_t rt_kernel_num_variants(tile_kernel *k) {
    pthread_mutex_lock(&k->variants_lock);
    size_t n = 0;
    for (RtVariant *v = k->variants; v; v = v->next) n++;
    pthread_mutex_unlock(&k->variants_lock);
    return n;
}

tile_status tile_kernel_variants_report(tile_kernel *k, char **out) {
    if (!k || !out) return rt_fail(k ? k->program->ctx : NULL, TILE_ERROR_INVALID_ARGUMENT,
                                   "tile_kernel_variants_report: %s is NULL", !k ? "the kernel" : "out");
    *out = NULL;
    Strbuf text = {0};
    pthread_mutex_lock(&k->variants_lock);
    for (RtVariant *v = k->variants; v; v = v->next) {
        sb_puts(&text, "variant ");
        rt_spec_text(k->function, k->conds, v->facts, &text);
        sb_puts(&text, v->failed ? " (failed: the generic kernel runs)\n" : "\n");
    }
    pthread_mutex_unlock(&k->variants_lock);
    if (text.len) *out = text.data;
    else sb_free(&text);
    return TILE_OK;
}

int rt_cuda_num_tma_maps(tile_kernel *k, const tile_arg *args, size_t nargs) {
    RtCudaFunction *f = NULL;
    return k->program->ctx->cuda && rt_cuda_select(k, args, nargs, &f) == TILE_OK ? f->ntma : 0;
}

/* The generic kernel, compiled now if no launch needed it before; with k->variants_lock held. A
 * failure is remembered, so that later launches report it without compiling again. */
static RtCudaFunction *generic_locked(tile_kernel *k, const RtCompiler *comp, tile_status *st, Strbuf *err) {
    RtCudaFunction *f = atomic_load(&k->cuda);
    if (f) return f;
    if (k->generic_status == TILE_OK) {
        Strbuf why = {0};
        f = comp->compile(comp->user, k, NULL, &k->generic_status, &why);
        if (f) {
            k->generic_status = TILE_OK;
            atomic_store(&k->cuda, f);
            sb_free(&why);
            return f;
        }
        if (k->generic_status == TILE_OK) k->generic_status = TILE_ERROR_COMPILE;
        k->generic_message = xstrdup(sb_str(&why));
        sb_free(&why);
    }
    *st = k->generic_status;
    sb_puts(err, k->generic_message);
    return NULL;
}

RtCudaFunction *rt_kernel_function_for(tile_kernel *k, const RtSpecFacts *facts, const RtCompiler *comp,
                                       tile_status *st, Strbuf *err) {
    const uint32_t n = rt_spec_len(k->function); /* the parameters' facts and the conditions' */
    if (!facts) { /* the generic kernel: lock-free once it exists */
        RtCudaFunction *f = atomic_load_explicit(&k->cuda, memory_order_acquire);
        if (f) return f;
        pthread_mutex_lock(&k->variants_lock);
        f = generic_locked(k, comp, st, err);
        pthread_mutex_unlock(&k->variants_lock);
        return f;
    }
    /* The fast path: the same facts as the latest launch (variants are never freed before the
     * kernel, and only one with a function is published). */
    RtVariant *last = atomic_load_explicit(&k->last_variant, memory_order_acquire);
    if (last && memcmp(last->facts, facts, n * sizeof *facts) == 0) return last->cuda;
    pthread_mutex_lock(&k->variants_lock);
    RtVariant *v = k->variants;
    while (v && memcmp(v->facts, facts, n * sizeof *facts) != 0) v = v->next;
    if (!v) { /* the first launch with these facts: compile their variant, and only it */
        v = xcalloc(1, sizeof *v);
        v->facts = xmalloc(n * sizeof *facts);
        memcpy(v->facts, facts, n * sizeof *facts);
        Strbuf why = {0};
        tile_status vst = TILE_OK;
        v->cuda = comp->compile(comp->user, k, facts, &vst, &why);
        if (!v->cuda) {
            v->failed = true; /* the generic kernel serves these facts from now on */
            v->message = xstrdup(sb_str(&why));
        }
        sb_free(&why);
        v->next = k->variants;
        k->variants = v;
    }
    /* a variant that failed falls back on the generic kernel, compiled now if it is not yet */
    if (!v->cuda) v->cuda = generic_locked(k, comp, st, err);
    RtCudaFunction *f = v->cuda;
    if (f) atomic_store_explicit(&k->last_variant, v, memory_order_release);
    pthread_mutex_unlock(&k->variants_lock);
    return f;
}

#ifdef TILE_HAVE_LLVM
/* The cuda device's RtCompiler: k for facts (NULL: the generic kernel) under its cache key. */
static RtCudaFunction *compile_for_facts(void *user, tile_kernel *k, const RtSpecFacts *facts, tile_status *st,
                                         Strbuf *err) {
    RtCuda *c = user;
    const uint32_t n = k->function->nparams;
    double t0 = monotonic_seconds();
    CacheKey key = generic_key(c, k);
    CodegenParamSpec *spec = NULL;
    unsigned conds = 0;
    if (facts) {
        spec = xcalloc(n, sizeof *spec);
        for (uint32_t i = 0; i < n; i++) spec[i] = rt_spec_unpack(facts[i]);
        conds = facts[n];
        key = rt_spec_cache_key(&key, facts, n);
        if (c->tma) key = rt_tma_cache_key(&key);
    }
    rt_times()->cache += monotonic_seconds() - t0;
    RtCudaFunction *f = NULL;
    Strbuf why = {0};
    *st = compile_and_load(c, k, spec, conds, &key, &f, &why);
    if (*st != TILE_OK) {
        if (strncmp(sb_str(&why), "cannot load", 11) == 0) sb_printf(err, "%s: %s", k->name, sb_str(&why));
        else sb_printf(err, "%s for %s: %s", k->name, backend_arch_name(c->arch), sb_str(&why));
    }
    sb_free(&why);
    free(spec);
    return f;
}
#endif

/* The function of k for facts (NULL: the generic kernel), compiled when missing; on failure the
 * status, with the context's message set. */
static tile_status function_for(tile_kernel *k, const RtSpecFacts *facts, RtCudaFunction **out) {
    tile_context *ctx = k->program->ctx;
    RtCuda *c = ctx->cuda;
    *out = NULL;
    if (!c) return rt_fail(ctx, TILE_ERROR_INVALID_ARGUMENT, "launch of '%s': not a cuda context", k->name);
#ifdef TILE_HAVE_LLVM
    const RtCompiler comp = {compile_for_facts, c};
#else
    const RtCompiler comp = {NULL, NULL};
    if (!atomic_load(&k->cuda)) /* (a kernel is only made here with an image loaded) */
        return rt_fail(ctx, TILE_ERROR_UNSUPPORTED, "launch of '%s': this libtile cannot compile kernels", k->name);
    facts = NULL;
#endif
    tile_status st = TILE_OK;
    Strbuf err = {0};
    *out = rt_kernel_function_for(k, facts, &comp, &st, &err);
    if (!*out) st = rt_fail(ctx, st, "launch of '%s': %s", k->name, sb_str(&err));
    sb_free(&err);
    return st;
}

tile_status rt_cuda_select(tile_kernel *k, const tile_arg *args, size_t nargs, RtCudaFunction **out) {
    const IrFunction *fn = k->function;
    RtCuda *c = k->program->ctx->cuda;
    if (!c || !c->specialize || k->from_image || fn->nparams == 0) return function_for(k, NULL, out);
    RtSpecFacts small[33];
    RtSpecFacts *facts = rt_spec_len(fn) <= 33 ? small : xmalloc(rt_spec_len(fn) * sizeof *facts);
    tile_status st = function_for(k, rt_spec_facts(fn, k->conds, args, nargs, facts) ? facts : NULL, out);
    if (facts != small) free(facts);
    return st;
}

/* ---- launching ---------------------------------------------------------------------------------- */
enum { RT_LAUNCH_SLOTS = 64 };

/* The tensor maps of f for args into out (one 128-byte map each, in f->tma's order): the ones of
 * the previous launch when its tensors were the same (base, sizes, strides), else encoded now
 * through the driver. The variant's facts proved most of what TMA needs of each tensor; what they
 * do not (a leading dimension of stride 1 or 0, a stride past 2^40 bytes) cuda_tensor_map_encode
 * refuses, and the launch takes the generic kernel. */
static tile_status tensor_maps(const RtCudaFunction *f, const tile_arg *args, size_t nargs,
                               uint8_t (*out)[128], Strbuf *err) {
    RtTmaMaps *e = f->encoded;
    uint64_t signature[IR_MAX_TMA_MAPS][RT_TMA_SIGNATURE];
    memset(signature, 0, sizeof signature);
    for (int i = 0; i < f->ntma; i++) {
        const IrTmaMap *m = &f->tma[i];
        if (m->param < 0 || (size_t)m->param >= nargs || args[m->param].kind != TILE_ARG_TENSOR ||
            args[m->param].tensor.rank != m->rank) {
            sb_printf(err, "tensor map %d: argument %d is not a tensor of rank %d", i, m->param, m->rank);
            return TILE_ERROR_INVALID_ARGUMENT;
        }
        const tile_tensor *x = &args[m->param].tensor;
        if (x->strides[m->rank - 1] != 1) {
            sb_printf(err, "tensor map %d: argument %d's last stride is %lld, not 1", i, m->param,
                      (long long)x->strides[m->rank - 1]);
            return TILE_ERROR_INVALID_ARGUMENT;
        }
        signature[i][0] = (uint64_t)(uintptr_t)x->data;
        for (int d = 0; d < m->rank; d++) {
            signature[i][1 + d] = (uint64_t)x->shape[d];
            signature[i][1 + IR_TMA_MAX_RANK + d] = (uint64_t)x->strides[d];
        }
    }
    tile_status st = TILE_OK;
    pthread_mutex_lock(&e->lock);
    if (!e->valid || memcmp(e->signature, signature, (size_t)f->ntma * sizeof signature[0]) != 0) {
        e->valid = false;
        for (int i = 0; i < f->ntma && st == TILE_OK; i++) {
            const IrTmaMap *m = &f->tma[i];
            /* the driver's order is innermost first: columns, rows, then the leading dimensions;
             * strides in bytes, of every dimension but the innermost (a negative one is refused as
             * a huge one) */
            uint64_t dims[IR_TMA_MAX_RANK], strides[IR_TMA_MAX_RANK];
            unsigned box[IR_TMA_MAX_RANK];
            for (int d = 0; d < m->rank; d++) {
                int outer = m->rank - 1 - d;
                dims[d] = signature[i][1 + outer];
                box[d] = (unsigned)m->box[outer];
                if (d) strides[d - 1] = signature[i][1 + IR_TMA_MAX_RANK + outer] * (uint64_t)m->elem_bytes;
            }
            st = cuda_tensor_map_encode(e->map[i], m->elem_bytes, (const void *)(uintptr_t)signature[i][0], m->rank,
                                        dims, strides, box, m->swizzle, err);
        }
        if (st == TILE_OK) {
            memcpy(e->signature, signature, (size_t)f->ntma * sizeof signature[0]);
            e->valid = true;
        }
    }
    if (st == TILE_OK) memcpy(out, e->map, (size_t)f->ntma * 128);
    pthread_mutex_unlock(&e->lock);
    return st;
}
/* Packs args into the kernel ABI's 8-byte slots (a tensor: its data pointer, i32 sizes, i64
 * strides; a scalar: i32 / i64 / f32 / f64 by type; cuLaunchKernel reads each value's size from
 * its slot, so narrower values sit at the slot's start) and launches f on grid: the part of every
 * launch after the function and the grid are known, memo or not. */
static tile_status launch_function(tile_kernel *k, RtCudaFunction *f, const tile_arg *args, size_t nargs,
                                   const unsigned grid[3], tile_stream *stream) {
    tile_context *ctx = k->program->ctx;
    const IrFunction *fn = k->function;
    uint64_t small_slots[RT_LAUNCH_SLOTS];
    void *small_params[RT_LAUNCH_SLOTS + IR_MAX_TMA_MAPS];
    size_t nslots = 0;
    for (uint32_t i = 0; i < fn->nparams; i++) {
        const IrType *t = fn->body->args[i]->type;
        nslots += t->kind == TY_TENSOR ? 1 + 2 * (size_t)t->rank : 1;
    }
    bool small = nslots <= RT_LAUNCH_SLOTS; /* no allocation for kernels of up to 64 slots */
    uint64_t *slots = small ? small_slots : xcalloc(nslots + 1, sizeof *slots);
    void **params = small ? small_params : xcalloc(nslots + 1, sizeof *params);
    size_t s = 0;
    for (uint32_t i = 0; i < fn->nparams && i < nargs; i++) {
        const IrType *t = fn->body->args[i]->type;
        if (t->kind == TY_TENSOR) {
            const tile_tensor *x = &args[i].tensor;
            slots[s++] = (uint64_t)(uintptr_t)x->data;
            for (int d = 0; d < t->rank; d++) {
                int32_t size = (int32_t)x->shape[d];
                memcpy(&slots[s++], &size, 4);
            }
            for (int d = 0; d < t->rank; d++) memcpy(&slots[s++], &x->strides[d], 8);
        } else if (elem_is_float(t->elem)) {
            if (t->elem.bits > 32) {
                memcpy(&slots[s++], &args[i].f, 8);
            } else {
                float v = (float)args[i].f;
                memcpy(&slots[s++], &v, 4);
            }
        } else if (t->elem.bits > 32) {
            memcpy(&slots[s++], &args[i].i, 8);
        } else {
            uint32_t v = (uint32_t)(uint64_t)args[i].i; /* the low 32 bits: sign- or zero-extended */
            memcpy(&slots[s++], &v, 4);
        }
    }
    for (size_t j = 0; j < nslots; j++) params[j] = &slots[j];
    Strbuf err = {0};
    /* the tensor maps of a TMA ring follow the ABI's parameters (backend.h); tensors the driver
     * will not encode (a row stride shorter than a row, sizes beyond its limits) take the generic
     * kernel, which has no TMA ring and the same parameters otherwise */
    _Alignas(64) uint8_t maps[IR_MAX_TMA_MAPS][128];
    if (f->ntma && (!small || tensor_maps(f, args, nargs, maps, &err) != TILE_OK)) {
        sb_clear(&err);
        tile_status generic = function_for(k, NULL, &f);
        if (generic != TILE_OK) {
            if (!small) {
                free(slots);
                free(params);
            }
            sb_free(&err);
            return generic;
        }
    }
    for (int i = 0; i < f->ntma; i++) params[nslots + (size_t)i] = maps[i]; /* (small: room for them) */
    CudaLaunch launch = {.grid = {grid[0], grid[1], grid[2]},
                         .block = {f->threads, 1, 1},
                         .shared_bytes = f->shared_bytes,
                         .stream = stream ? stream->cuda : NULL};
    /* a kernel with clusters runs in them where the grid's x is a multiple (else without: its
       multicast flags are then false) */
    if (f->cluster > 1 && grid[0] % (unsigned)f->cluster == 0) launch.cluster = (unsigned)f->cluster;
    tile_status st = cuda_launch(ctx->cuda->device, f->fn, &launch, params, &err);
    if (st != TILE_OK) st = rt_fail(ctx, st, "launch of '%s': %s", k->name, sb_str(&err));
    if (!small) { /* (a kernel with tensor maps always has small slots) */
        free(slots);
        free(params);
    }
    sb_free(&err);
    return st;
}

bool rt_cuda_launch_memo(tile_kernel *k, const tile_arg *args, size_t nargs, tile_stream *stream, tile_status *st) {
    const RtLaunchMemo *m = nargs && !args ? NULL : rt_launch_memo_find(k, args, nargs);
    if (!m) return false;
    if (m->report) rt_autotune_note_latest(k, m->report);
    *st = launch_function(m->kernel, m->function, args, nargs, m->grid, stream);
    return true;
}

/* The full path: the function for the arguments' facts, the grid, and a memo of both for the
 * next launch with the same signature. */
tile_status rt_cuda_launch(tile_kernel *k, const tile_arg *args, size_t nargs, tile_stream *stream) {
    return rt_cuda_launch_for(k, k, args, nargs, stream, NULL);
}

tile_status rt_cuda_launch_for(tile_kernel *owner, tile_kernel *k, const tile_arg *args, size_t nargs,
                               tile_stream *stream, const char *report) {
    tile_context *ctx = k->program->ctx;
    const IrFunction *fn = k->function;
    RtCudaFunction *f;
    tile_status selected = rt_cuda_select(k, args, nargs, &f);
    if (selected != TILE_OK) return selected;
    Strbuf err = {0};
    int64_t grid[3];
    /* the compiled grid, else (or when it declines) the VM, which also words the errors */
    int sms = cuda_device_multiprocessors(ctx->cuda->device);
    if (!(k->grid && rt_grid_eval_sms(k->grid, args, nargs, sms, grid)) &&
        !vm_eval_grid_sms(fn, args, nargs, sms, grid, &err)) {
        tile_status st = rt_fail(ctx, TILE_ERROR_INVALID_ARGUMENT, "launch of '%s': %s", k->name, sb_str(&err));
        sb_free(&err);
        return st;
    }
    sb_free(&err);
    static const int64_t grid_limit[3] = {INT32_MAX, 65535, 65535};
    for (int d = 0; d < 3; d++) {
        if (grid[d] == 0) return TILE_OK; /* an empty grid runs nothing */
        if (grid[d] > grid_limit[d])
            return rt_fail(ctx, TILE_ERROR_INVALID_ARGUMENT,
                           "launch of '%s': grid dimension %d is %lld blocks; the GPU allows at most %lld", k->name,
                           d, (long long)grid[d], (long long)grid_limit[d]);
    }
    /* (an autotuned kernel's memos come only from its choice's launch, never from the timing
     * launches of its candidates, k itself among them) */
    if (!owner->autotune || report) rt_launch_memo_add(owner, args, nargs, k, f, report, grid);
    const unsigned g[3] = {(unsigned)grid[0], (unsigned)grid[1], (unsigned)grid[2]};
    return launch_function(k, f, args, nargs, g, stream);
}

/* ---- streams ---- */
tile_status rt_cuda_stream_create(tile_context *ctx, tile_stream *s) {
    Strbuf err = {0};
    tile_status st = cuda_stream_create(ctx->cuda->device, &s->cuda, &err);
    if (st != TILE_OK) st = fail_with(ctx, st, "tile_stream_create", &err);
    sb_free(&err);
    return st;
}

tile_status rt_cuda_stream_synchronize(tile_stream *s) {
    Strbuf err = {0};
    tile_status st = cuda_stream_synchronize(s->ctx->cuda->device, s->cuda, &err);
    if (st != TILE_OK) st = fail_with(s->ctx, st, "tile_stream_synchronize (a launch on it may have failed)", &err);
    sb_free(&err);
    return st;
}

void rt_cuda_stream_destroy(tile_stream *s) { cuda_stream_destroy(s->ctx->cuda->device, s->cuda); }

/* ---- for benchmarks: the raw handles behind a context and a kernel ---- */
CudaDevice *rt_cuda_device(const tile_context *ctx) { return ctx && ctx->cuda ? ctx->cuda->device : NULL; }

bool rt_cuda_kernel_function(tile_kernel *k, const tile_arg *args, size_t nargs, CudaFunction **fn, unsigned *threads,
                             unsigned *shared_bytes) {
    RtCudaFunction *f;
    if (!k || !k->program->ctx->cuda) return false;
    tile_status st = args ? rt_cuda_select(k, args, nargs, &f) : function_for(k, NULL, &f); /* (compiled now if no launch did) */
    if (st != TILE_OK) return false;
    *fn = f->fn;
    *threads = f->threads;
    *shared_bytes = f->shared_bytes;
    return true;
}
