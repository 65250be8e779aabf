/*
 * api.c: the public C API: contexts, device memory, programs, kernels and launches.
 *
 * Every entry point validates its arguments, returns a tile_status and, on failure, leaves a
 * message for tile_context_message in thread-local storage, so concurrent threads never see
 * each other's messages. Compiled kernels are cached in their program by (name, constants)
 * under the program's lock, so several threads may ask for the same kernel at once.
 *
 * The VM device is implemented here (host memory, vm_launch); the cuda device's work is in
 * device_cuda.c (rt_cuda_*), which api.c calls after the checks that both devices share.
 */
#include "runtime.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "backend/backend.h"
#include "passes/passes.h"
#include "runtime/cuda.h"
#include "vm.h"

static _Thread_local const tile_context *message_ctx;
static _Thread_local char *message_text;

/* A thread's message is freed when the thread exits: the key's destructor gets the text. */
static pthread_key_t message_key;
static pthread_once_t message_key_once = PTHREAD_ONCE_INIT;
static void make_message_key(void) { pthread_key_create(&message_key, free); }

static void set_message(const tile_context *ctx, char *text) {
    pthread_once(&message_key_once, make_message_key);
    free(message_text);
    message_text = text;
    message_ctx = ctx;
    pthread_setspecific(message_key, text);
}

tile_status rt_fail(const tile_context *ctx, tile_status status, const char *fmt, ...) {
    Strbuf sb = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&sb, fmt, ap);
    va_end(ap);
    set_message(ctx, xstrdup(sb_str(&sb)));
    sb_free(&sb);
    return status;
}

static void clear_message(const tile_context *ctx) {
    if (message_ctx == ctx) set_message(NULL, NULL);
}

const char *tile_context_message(const tile_context *ctx) {
    return message_ctx == ctx && message_text ? message_text : "";
}

const char *tile_status_name(tile_status status) {
    switch (status) {
    case TILE_OK: return "TILE_OK";
    case TILE_ERROR_INVALID_ARGUMENT: return "TILE_ERROR_INVALID_ARGUMENT";
    case TILE_ERROR_COMPILE: return "TILE_ERROR_COMPILE";
    case TILE_ERROR_NOT_FOUND: return "TILE_ERROR_NOT_FOUND";
    case TILE_ERROR_DEVICE: return "TILE_ERROR_DEVICE";
    case TILE_ERROR_OUT_OF_MEMORY: return "TILE_ERROR_OUT_OF_MEMORY";
    case TILE_ERROR_UNSUPPORTED: return "TILE_ERROR_UNSUPPORTED";
    case TILE_ERROR_INTERNAL: return "TILE_ERROR_INTERNAL";
    case TILE_ERROR_CANCELLED: return "TILE_ERROR_CANCELLED";
    }
    return "TILE_ERROR_UNKNOWN";
}

const char *tile_version(void) { return TILE_VERSION_STRING; }

static _Thread_local tile_compile_times compile_times;
tile_compile_times *rt_times(void) { return &compile_times; }
void tile_compile_times_get(tile_compile_times *out) {
    if (out) *out = compile_times;
}

/* ---- contexts ------------------------------------------------------------------------------ */
/* The failure of a call given a NULL pointer it needs: every failure sets its own message. */
static tile_status null_argument(const tile_context *ctx, const char *call, const char *what) {
    return rt_fail(ctx, TILE_ERROR_INVALID_ARGUMENT, "%s: %s is NULL", call, what);
}

tile_status tile_context_create(tile_device_kind device, int ordinal, tile_context **out) {
    if (!out) return null_argument(NULL, "tile_context_create", "out");
    *out = NULL;
    if (device == TILE_DEVICE_DEFAULT) {
        const char *env = getenv("TILE_DEVICE");
        if (env && strcmp(env, "vm") == 0) device = TILE_DEVICE_VM;
        else if (env && strcmp(env, "cuda") == 0) device = TILE_DEVICE_CUDA;
        else if (env && *env) return rt_fail(NULL, TILE_ERROR_INVALID_ARGUMENT, "TILE_DEVICE=%s: expected vm or cuda", env);
        else device = cuda_device_count() > 0 ? TILE_DEVICE_CUDA : TILE_DEVICE_VM;
    }
    if (device != TILE_DEVICE_VM && device != TILE_DEVICE_CUDA)
        return rt_fail(NULL, TILE_ERROR_INVALID_ARGUMENT, "unknown device kind %d", (int)device);
    if (device == TILE_DEVICE_VM && ordinal != 0)
        return rt_fail(NULL, TILE_ERROR_NOT_FOUND, "vm:%d: no such device (the VM has ordinal 0 only)", ordinal);
    tile_context *ctx = xcalloc(1, sizeof *ctx);
    ctx->device = device;
    ctx->ordinal = ordinal;
    snprintf(ctx->name, sizeof ctx->name, "vm (CPU interpreter)");
    if (device == TILE_DEVICE_CUDA) {
        tile_status st = rt_cuda_open(ctx, ordinal);
        if (st != TILE_OK) {
            free(ctx);
            return st;
        }
    }
    pthread_mutex_init(&ctx->lock, NULL);
    pthread_mutex_init(&ctx->programs_lock, NULL);
    CacheConfig cache;
    cache_config_from_env(&cache);
    ctx->share_programs = cache.enabled;
    clear_message(NULL);
    *out = ctx;
    return TILE_OK;
}

typedef struct RtAotProgram {
    const char *source;          /* the generated code's array: the key */
    tile_program *program;
    struct RtAotProgram *next;
} RtAotProgram;

void tile_context_destroy(tile_context *ctx) {
    if (!ctx) return;
    clear_message(ctx);
    for (RtAotProgram *a = ctx->aot_programs, *next; a; a = next) {
        next = a->next;
        tile_program_destroy(a->program);
        free(a);
    }
    /* programs the user still holds outlive the cache: they no longer reach ctx's lock */
    pthread_mutex_lock(&ctx->programs_lock);
    for (tile_program *p = ctx->shared_programs; p; p = p->next_shared) p->shared = false;
    ctx->shared_programs = NULL;
    pthread_mutex_unlock(&ctx->programs_lock);
    rt_cuda_close(ctx);
    pthread_mutex_destroy(&ctx->programs_lock);
    pthread_mutex_destroy(&ctx->lock);
    free(ctx);
}

void tile_context_cancel(tile_context *ctx) {
    if (ctx) atomic_fetch_add(&ctx->cancel_generation, 1);
}

tile_device_kind tile_context_device(const tile_context *ctx) { return ctx ? ctx->device : TILE_DEVICE_DEFAULT; }
const char *tile_context_device_name(const tile_context *ctx) { return ctx ? ctx->name : ""; }
int tile_context_num_sms(const tile_context *ctx) {
    if (!ctx) return 0;
    return ctx->cuda ? cuda_device_multiprocessors(rt_cuda_device(ctx)) : vm_num_sms();
}

/* ---- memory --------------------------------------------------------------------------------- */
tile_status tile_alloc(tile_context *ctx, size_t bytes, void **out) {
    if (!ctx || !out) return null_argument(ctx, "tile_alloc", !ctx ? "the context" : "out");
    *out = NULL;
    if (ctx->cuda) return rt_cuda_alloc(ctx, bytes, out);
    void *p = NULL;
    if (posix_memalign(&p, 256, bytes ? bytes : 1) != 0)
        return rt_fail(ctx, TILE_ERROR_OUT_OF_MEMORY, "cannot allocate %zu bytes", bytes);
    *out = p;
    return TILE_OK;
}

tile_status tile_free(tile_context *ctx, void *ptr) {
    if (!ctx) return null_argument(NULL, "tile_free", "the context");
    if (ctx->cuda) return rt_cuda_free(ctx, ptr);
    free(ptr);
    return TILE_OK;
}

static tile_status copy(tile_context *ctx, void *dst, const void *src, size_t bytes, bool to_device) {
    if (!ctx) return null_argument(NULL, to_device ? "tile_copy_to_device" : "tile_copy_to_host", "the context");
    if ((!dst || !src) && bytes)
        return rt_fail(ctx, TILE_ERROR_INVALID_ARGUMENT, "%s: NULL %s", to_device ? "tile_copy_to_device" : "tile_copy_to_host",
                       !dst ? "destination" : "source");
    if (ctx->cuda) return rt_cuda_copy(ctx, dst, src, bytes, to_device);
    if (bytes) memmove(dst, src, bytes);
    return TILE_OK;
}

tile_status tile_copy_to_device(tile_context *ctx, void *dst, const void *src, size_t bytes) {
    return copy(ctx, dst, src, bytes, true);
}

tile_status tile_copy_to_host(tile_context *ctx, void *dst, const void *src, size_t bytes) {
    return copy(ctx, dst, src, bytes, false);
}

tile_status tile_synchronize(tile_context *ctx) {
    if (!ctx) return null_argument(NULL, "tile_synchronize", "the context");
    return ctx->cuda ? rt_cuda_synchronize(ctx) : TILE_OK;
}

/* ---- programs ------------------------------------------------------------------------------ */
/* A name ending in `.ir` holds IR text (ir/print.c's form) instead of tile source. */
static bool is_ir_name(const char *name) {
    size_t n = name ? strlen(name) : 0;
    return n > 3 && strcmp(name + n - 3, ".ir") == 0;
}

/* An IR program: the module is read and verified now (errors are the user's), and the text is
 * kept in an AstFile without declarations, which serves the cache keys like a source does. */
static tile_status program_from_ir(tile_context *ctx, const char *name, const char *text, size_t len,
                                   tile_program **out) {
    DiagList d = {0};
    IrModule *m = ir_parse_module(name, text ? text : "", len, &d);
    if (!m) {
        tile_status st = rt_fail(ctx, TILE_ERROR_COMPILE, "%s", sb_str(&d.text));
        diag_free(&d);
        return st;
    }
    diag_free(&d);
    AstFile *ast = xcalloc(1, sizeof *ast);
    arena_init(&ast->arena);
    ast->source.name = arena_strdup(&ast->arena, name);
    char *copy = arena_alloc(&ast->arena, len + 1);
    if (len) memcpy(copy, text, len);
    ast->source.text = copy;
    ast->source.len = len;
    tile_program *p = xcalloc(1, sizeof *p);
    p->ctx = ctx;
    p->ast = ast;
    p->ir = m;
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->parse_lock, NULL);
    *out = p;
    return TILE_OK;
}

tile_status tile_program_from_string(tile_context *ctx, const char *name, const char *source, size_t len,
                                     tile_program **out) {
    if (!ctx || !out || (!source && len))
        return null_argument(ctx, "tile_program_from_string", !ctx ? "the context" : !out ? "out" : "source");
    *out = NULL;
    if (len > TILE_MAX_SOURCE_BYTES)
        return rt_fail(ctx, TILE_ERROR_INVALID_ARGUMENT, "%s: %zu bytes of source, more than the limit of %d",
                       name ? name : "<string>", len, TILE_MAX_SOURCE_BYTES);
    if (!name) name = "<string>";
    if (is_ir_name(name)) return program_from_ir(ctx, name, source, len, out);
    uint8_t hash[32], source_sha[32];
    /* the source's SHA-256 once: the memory cache's key (with the name) and the kernel cache's */
    bool has_sha = ctx->share_programs || ctx->cuda;
    if (has_sha) sha256(source ? source : "", len, source_sha);
    if (ctx->share_programs) { /* a program of the same name and text is reused, kernels and all */
        Sha256 h;
        cache_key_begin(&h);
        cache_key_add_str(&h, "name", name);
        cache_key_add(&h, "source-sha256", source_sha, sizeof source_sha);
        sha256_final(&h, hash);
        pthread_mutex_lock(&ctx->programs_lock);
        tile_program *p = ctx->shared_programs;
        while (p && memcmp(p->source_hash, hash, sizeof hash) != 0) p = p->next_shared;
        if (p) p->refs++;
        pthread_mutex_unlock(&ctx->programs_lock);
        if (p) {
            *out = p;
            return TILE_OK;
        }
    }
    DiagList d = {0};
    double t0 = monotonic_seconds();
    AstFile *ast = ast_file_new(name, source ? source : "", len);
    /* a source that parsed before (its marker in the disk cache) is parsed only when something
     * needs its declarations: a disk hit of its kernels never does */
    bool deferred = ctx->cuda && rt_cuda_source_parsed_before(ctx, source_sha);
    if (!deferred) parse_file(ast, &d);
    compile_times.parse = monotonic_seconds() - t0;
    if (d.errors) {
        tile_status st = rt_fail(ctx, TILE_ERROR_COMPILE, "%s", sb_str(&d.text));
        diag_free(&d);
        ast_file_free(ast);
        return st;
    }
    diag_free(&d);
    tile_program *p = xcalloc(1, sizeof *p);
    p->ctx = ctx;
    p->ast = ast;
    atomic_init(&p->parse_state, deferred ? RT_PARSE_DEFERRED : RT_PARSED);
    pthread_mutex_init(&p->parse_lock, NULL);
    p->refs = 1;
    p->has_sha = has_sha;
    if (has_sha) memcpy(p->source_sha256, source_sha, sizeof source_sha);
    pthread_mutex_init(&p->lock, NULL);
    if (ctx->share_programs) { /* a racing thread may have added the same source: both live */
        memcpy(p->source_hash, hash, sizeof hash);
        pthread_mutex_lock(&ctx->programs_lock);
        p->shared = true;
        p->next_shared = ctx->shared_programs;
        ctx->shared_programs = p;
        pthread_mutex_unlock(&ctx->programs_lock);
    }
    *out = p;
    return TILE_OK;
}

/* Reads a source file of at most TILE_MAX_SOURCE_BYTES into *data (malloc'd). Reading stops
 * one byte past the limit, so an endless file (/dev/zero, a pipe that never ends) is an error,
 * and a failed allocation is TILE_ERROR_OUT_OF_MEMORY, never an abort. */
static tile_status read_source(tile_context *ctx, const char *path, char **data, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return rt_fail(ctx, TILE_ERROR_NOT_FOUND, "%s: %s", path, strerror(errno));
    size_t cap = 0, n = 0;
    char *buf = NULL;
    tile_status st = TILE_OK;
    for (;;) {
        if (n == cap) {
            size_t next = cap ? cap * 2 : 65536;
            if (next > (size_t)TILE_MAX_SOURCE_BYTES + 1) next = (size_t)TILE_MAX_SOURCE_BYTES + 1;
            char *grown = next > cap ? realloc(buf, next + 1) : NULL;
            if (!grown) {
                st = next > cap ? rt_fail(ctx, TILE_ERROR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes", path, next + 1)
                                : rt_fail(ctx, TILE_ERROR_INVALID_ARGUMENT, "%s: more than the limit of %d bytes of source",
                                          path, TILE_MAX_SOURCE_BYTES);
                break;
            }
            buf = grown, cap = next;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) st = rt_fail(ctx, TILE_ERROR_NOT_FOUND, "%s: read error", path);
            break;
        }
    }
    fclose(f);
    if (st != TILE_OK) {
        free(buf);
        return st;
    }
    if (!buf && !(buf = malloc(1))) return rt_fail(ctx, TILE_ERROR_OUT_OF_MEMORY, "%s: cannot allocate 1 byte", path);
    buf[n] = 0;
    *data = buf, *len = n;
    return TILE_OK;
}

tile_status tile_program_from_file(tile_context *ctx, const char *path, tile_program **out) {
    if (!ctx || !path || !out) return null_argument(ctx, "tile_program_from_file", !ctx ? "the context" : !path ? "path" : "out");
    *out = NULL;
    char *data = NULL;
    size_t len = 0;
    tile_status st = read_source(ctx, path, &data, &len);
    if (st != TILE_OK) return st;
    st = tile_program_from_string(ctx, path, data, len, out);
    free(data);
    return st;
}

static void kernel_free(tile_kernel *k) {
    rt_autotune_free(k->autotune);
    rt_kernel_free_variants(k);
    rt_grid_free(k->grid);
    rt_grid_free(k->conds);
    rt_launch_memo_free(k);
    pthread_mutex_destroy(&k->variants_lock);
    free(k->interface);
    free(k->written);
    ir_module_free(k->full_module);
    for (size_t i = 0; i < k->nconsts; i++) free((char *)k->consts[i].name);
    free(k->consts);
    free(k->name);
    ir_module_free(k->module);
    free(k);
}

void tile_program_destroy(tile_program *p) {
    if (!p) return;
    if (p->shared) {
        tile_context *ctx = p->ctx;
        pthread_mutex_lock(&ctx->programs_lock);
        bool last = --p->refs == 0;
        if (last) {
            tile_program **link = &ctx->shared_programs;
            while (*link && *link != p) link = &(*link)->next_shared;
            if (*link) *link = p->next_shared;
        }
        pthread_mutex_unlock(&ctx->programs_lock);
        if (!last) return;
    } else if (--p->refs > 0) {
        return;
    }
    for (tile_kernel *k = p->kernels, *next; k; k = next) {
        next = k->next;
        kernel_free(k);
    }
    ast_file_free(p->ast);
    ir_module_free(p->ir);
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->parse_lock);
    free(p->parse_error);
    free(p);
}

bool rt_program_parse(tile_program *p) {
    int state = atomic_load_explicit(&p->parse_state, memory_order_acquire);
    if (state == RT_PARSE_DEFERRED) {
        pthread_mutex_lock(&p->parse_lock);
        state = atomic_load_explicit(&p->parse_state, memory_order_relaxed);
        if (state == RT_PARSE_DEFERRED) {
            DiagList d = {0};
            double t0 = monotonic_seconds();
            parse_file(p->ast, &d); /* (only this thread writes the declarations, before the release) */
            compile_times.parse += monotonic_seconds() - t0;
            if (d.errors) p->parse_error = xstrdup(sb_str(&d.text)); /* (a marker that lied) */
            diag_free(&d);
            state = p->parse_error ? RT_PARSE_FAILED : RT_PARSED;
            atomic_store_explicit(&p->parse_state, state, memory_order_release);
        }
        pthread_mutex_unlock(&p->parse_lock);
    }
    if (state == RT_PARSE_FAILED) rt_fail(p->ctx, TILE_ERROR_COMPILE, "%s", p->parse_error);
    return state == RT_PARSED;
}

int tile_program_num_kernels(const tile_program *p) {
    if (p && !rt_program_parse((tile_program *)p)) return 0; /* (the declarations are its logical state) */
    int n = 0;
    for (const IrFunction *f = p && p->ir ? p->ir->functions : NULL; f; f = f->next) n += f->is_kernel;
    for (uint32_t i = 0; p && i < p->ast->decls.len; i++) n += p->ast->decls.items[i]->kind == AST_KERNEL;
    return n;
}

const char *tile_program_kernel_name(const tile_program *p, int index) {
    if (index < 0 || (p && !rt_program_parse((tile_program *)p))) return NULL; /* (index-- below would overflow at INT_MIN) */
    for (const IrFunction *f = p && p->ir ? p->ir->functions : NULL; f; f = f->next)
        if (f->is_kernel && index-- == 0) return f->name;
    for (uint32_t i = 0; p && i < p->ast->decls.len; i++)
        if (p->ast->decls.items[i]->kind == AST_KERNEL && index-- == 0) return p->ast->decls.items[i]->name;
    return NULL;
}

static bool program_has_kernel(const tile_program *p, const char *kernel) {
    for (int i = 0; i < tile_program_num_kernels(p); i++)
        if (strcmp(tile_program_kernel_name(p, i), kernel) == 0) return true;
    return false;
}

/* ---- compiling ----------------------------------------------------------------------------- */
/* The pipeline of rt_compile: the target-independent passes (a dump after one of them), then,
 * with options->gpu, the GPU passes in place for options->target (their dumps). */
static bool run_passes(IrModule *m, const RtCompileOptions *options, bool verify, DiagList *d) {
    const char *gpu_dump = options->dump_after && passes_is_gpu(options->dump_after) ? options->dump_after : NULL;
    PassOptions opt = {.dump_after = gpu_dump ? NULL : options->dump_after, .dump = options->dump,
                       .verify_each = verify, .target = options->target};
    if (!passes_run(m, &opt, d)) return false;
    if (!options->gpu) return true;
    if (strcmp(options->dump_after ? options->dump_after : "", "all") != 0) opt.dump_after = gpu_dump;
    return passes_run_target(m, &opt, d);
}

IrModule *rt_compile(AstFile *ast, const char *kernel, const ConstBinding *consts, size_t nconsts,
                     const RtCompileOptions *options, DiagList *d, IrFunction **out) {
    static const RtCompileOptions vm_path = {0};
    if (!options) options = &vm_path;
    IrModule *m = ir_module_new();
    double t0 = monotonic_seconds();
    IrFunction *f = lower_kernel(ast, kernel, consts, nconsts, m, d);
    double t1 = monotonic_seconds();
    compile_times.lower += t1 - t0;
    if (!f) {
        ir_module_free(m);
        return NULL;
    }
#ifndef NDEBUG
    bool passed = run_passes(m, options, true, d);
#else
    bool passed = run_passes(m, options, false, d);
#endif
    compile_times.passes += monotonic_seconds() - t1;
    if (!passed) {
        ir_module_free(m);
        return NULL;
    }
    *out = f;
    return m;
}

IrModule *rt_compile_program(tile_program *p, const char *kernel, const ConstBinding *consts, size_t nconsts,
                             const RtCompileOptions *options, DiagList *d, IrFunction **out) {
    if (!rt_program_parse(p)) {
        sb_puts(&d->text, p->parse_error);
        d->errors++;
        return NULL;
    }
    if (!p->ir) return rt_compile(p->ast, kernel, consts, nconsts, options, d, out);
    static const RtCompileOptions vm_path = {0};
    if (!options) options = &vm_path;
    const SourceFile *src = &p->ast->source;
    if (nconsts) {
        diag_error(d, (SrcLoc){src, 1, 1}, "an IR program has no compile-time constants (given: '%s')", consts[0].name);
        return NULL;
    }
    IrModule *m = ir_parse_module(src->name, src->text, src->len, d);
    IrFunction *f = m ? ir_module_find(m, kernel) : NULL;
    if (f && (!f->is_kernel || f->nparams != f->body->nargs)) {
        diag_error(d, f->loc, f->is_kernel ? "kernel @%s: its tensor parameters need their sizes ([M, 64], not [?])"
                                           : "@%s is a device function, not a kernel", kernel);
        f = NULL;
    }
    if (!f || !run_passes(m, options, true, d)) {
        ir_module_free(m);
        return NULL;
    }
    *out = f;
    return m;
}

bool rt_target_for_arch(const char *arch, int num_warps, Target *out) {
    Strbuf err = {0};
    bool ok = arch && (strcmp(arch, "sm_80") == 0 || strcmp(arch, "sm_90a") == 0) &&
              target_parse(arch, strlen(arch), out, &err);
    sb_free(&err);
    if (ok) out->num_warps = num_warps;
    if (ok) out->no_wgmma = !env_flag("TILE_WGMMA", true); /* sm_90a: dots on mma.sync (the cache key says so too) */
    bool roles = ok && rt_warp_roles_possible(); /* one search for the ptxas program */
    if (ok) out->specialize = roles && env_flag("TILE_WARP_SPECIALIZE", false); /* sm_90a: producer warpgroups
                                                                                 (rt_warp_specialize; cache key too) */
    if (ok) out->cluster = env_flag("TILE_CLUSTER", false); /* sm_90a TMA rings: clusters with multicast */
    if (ok) out->no_tma_store = !env_flag("TILE_TMA_STORE", true); /* sm_90a: st.global stores (cache key too) */
    if (ok) out->no_warp_roles = !roles; /* a loop's specialize = 1 falls back (cache key too) */
    return ok;
}

bool rt_warp_specialize(void) { return env_flag("TILE_WARP_SPECIALIZE", false) && rt_warp_roles_possible(); }

bool rt_warp_roles_possible(void) {
#ifdef TILE_HAVE_LLVM
    char path[4096];
    return backend_find_ptxas(path, sizeof path, NULL);
#else
    return false;
#endif
}

IrModule *rt_target_module(const IrFunction *f, const Target *t, const char *dump_after, Strbuf *dump, DiagList *d,
                           IrFunction **out) {
    double t0 = monotonic_seconds();
    IrModule *copy = clone_module(f->module);
    PassOptions opt = {.dump_after = dump_after, .dump = dump, .target = *t};
#ifndef NDEBUG
    opt.verify_each = true;
#endif
    bool ok = passes_run_target(copy, &opt, d);
    compile_times.passes += monotonic_seconds() - t0;
    if (!ok) {
        ir_module_free(copy);
        return NULL;
    }
    *out = ir_module_find(copy, f->name);
    return copy;
}

static int compare_consts(const void *a, const void *b) {
    return strcmp(((const ConstBinding *)a)->name, ((const ConstBinding *)b)->name);
}

/* Validates and copies constants into sorted ConstBindings. */
static tile_status convert_constants(tile_context *ctx, const tile_constant *c, size_t n, ConstBinding **out) {
    *out = n == SIZE_MAX ? NULL : try_calloc(n + 1, sizeof(ConstBinding));
    if (!*out) return rt_fail(ctx, TILE_ERROR_OUT_OF_MEMORY, "cannot allocate %zu constants", n);
    for (size_t i = 0; i < n; i++) {
        if (!c[i].name || !*c[i].name) {
            free(*out);
            *out = NULL;
            return rt_fail(ctx, TILE_ERROR_INVALID_ARGUMENT, "constant %zu has no name", i);
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(c[i].name, c[j].name) == 0) {
                free(*out);
                *out = NULL;
                return rt_fail(ctx, TILE_ERROR_INVALID_ARGUMENT, "constant '%s' is given twice", c[i].name);
            }
        (*out)[i] = (ConstBinding){c[i].name, c[i].is_float != 0, c[i].i, c[i].f};
    }
    qsort(*out, n, sizeof(ConstBinding), compare_consts);
    return TILE_OK;
}

static bool same_consts(const tile_kernel *k, const ConstBinding *c, size_t n) {
    if (k->nconsts != n) return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(k->consts[i].name, c[i].name) != 0 || k->consts[i].is_float != c[i].is_float ||
            (c[i].is_float ? k->consts[i].f != c[i].f : k->consts[i].i != c[i].i))
            return false;
    return true;
}

tile_status tile_program_get_kernel(tile_program *p, const char *kernel, const tile_constant *constants,
                                    size_t nconstants, tile_kernel **out) {
    return rt_get_kernel(p, kernel, constants, nconstants, NULL, 0, out);
}

tile_status tile_program_get_kernel_with_images(tile_program *p, const char *kernel, const tile_constant *constants,
                                                size_t nconstants, const tile_image *images, size_t nimages,
                                                tile_kernel **out) {
    if (nimages && !images)
        return null_argument(p ? p->ctx : NULL, "tile_program_get_kernel_with_images", "images (with nimages > 0)");
    return rt_get_kernel(p, kernel, constants, nconstants, images, nimages, out);
}

tile_status tile_context_aot_kernel(tile_context *ctx, const tile_aot_kernel *desc, tile_kernel **out) {
    if (!ctx || !desc || !out || !desc->kernel || (!desc->source && desc->source_len) ||
        (desc->nimages && !desc->images) || (desc->nconstants && !desc->constants))
        return null_argument(ctx, "tile_context_aot_kernel",
                             !ctx ? "the context" : !desc ? "desc" : !out ? "out" : !desc->kernel ? "desc->kernel"
                             : !desc->source && desc->source_len ? "desc->source"
                             : desc->nimages && !desc->images ? "desc->images (with desc->nimages > 0)"
                                                              : "desc->constants (with desc->nconstants > 0)");
    *out = NULL;
    pthread_mutex_lock(&ctx->lock);
    RtAotProgram *a = ctx->aot_programs;
    while (a && a->source != desc->source) a = a->next;
    if (!a) {
        tile_program *p;
        tile_status st = tile_program_from_string(ctx, desc->source_name, desc->source, desc->source_len, &p);
        if (st != TILE_OK) {
            pthread_mutex_unlock(&ctx->lock);
            return st;
        }
        a = xcalloc(1, sizeof *a);
        a->source = desc->source;
        a->program = p;
        a->next = ctx->aot_programs;
        ctx->aot_programs = a;
    }
    tile_program *p = a->program;
    pthread_mutex_unlock(&ctx->lock);
    return rt_get_kernel(p, desc->kernel, desc->constants, desc->nconstants, desc->images, desc->nimages, out);
}

tile_status rt_get_kernel(tile_program *p, const char *kernel, const tile_constant *constants, size_t nconstants,
                          const tile_image *images, size_t nimages, tile_kernel **out) {
    if (!p || !kernel || !out || (nconstants && !constants))
        return null_argument(p ? p->ctx : NULL, "tile_program_get_kernel",
                             !p ? "the program" : !kernel ? "kernel" : !out ? "out" : "constants (with nconstants > 0)");
    *out = NULL;
    ConstBinding *consts;
    tile_status st = convert_constants(p->ctx, constants, nconstants, &consts);
    if (st != TILE_OK) return st;
    pthread_mutex_lock(&p->lock);
    for (tile_kernel *k = p->kernels; k; k = k->next)
        if (strcmp(k->name, kernel) == 0 && same_consts(k, consts, nconstants)) {
            *out = k;
            pthread_mutex_unlock(&p->lock);
            free(consts);
            return TILE_OK;
        }
    tile_kernel *k = xcalloc(1, sizeof *k);
    k->program = p;
    k->name = xstrdup(kernel);
    for (size_t i = 0; i < nconstants; i++) consts[i].name = xstrdup(consts[i].name);
    k->consts = consts;
    k->nconsts = nconstants;
    pthread_mutex_init(&k->variants_lock, NULL);
    /* On a cuda context a disk hit needs no frontend: the kernel's interface entry holds all
     * that launches read of its IR (interface.c); its first build makes the rest. */
    bool from_interface = p->ctx->cuda && !nimages && !p->ir && rt_cuda_kernel_from_interface(p->ctx, k);
    if (!from_interface && (!rt_program_parse(p) || !program_has_kernel(p, kernel))) {
        pthread_mutex_unlock(&p->lock);
        kernel_free(k);
        if (p->parse_error) return TILE_ERROR_COMPILE; /* (rt_program_parse said why) */
        return rt_fail(p->ctx, TILE_ERROR_NOT_FOUND, "%s: no kernel named '%s'", p->ast->source.name, kernel);
    }
    if (!from_interface) {
        DiagList d = {0};
        /* a cuda kernel goes to the backend; its IR also serves the argument checks and the grid,
         * which read only parameters and the grid region's scalars (no layouts there) */
        /* TILE_VM_GPU_PASSES=1 makes the VM run the IR after the GPU passes (layouts, shared
         * buffers, asynchronous copies): the tests judge every GPU pass by the VM's results */
        /* (=sm_90a: for that target; the VM needs no launch facts, so it assumes them all and runs
         * what the most specialized variant would). On a cuda context the kernel keeps the
         * target-independent IR: the device runs the GPU passes per arch and launch facts. */
        const char *vm_gpu = getenv("TILE_VM_GPU_PASSES");
        bool gpu_passes = !p->ctx->cuda && vm_gpu && (strcmp(vm_gpu, "1") == 0 || strcmp(vm_gpu, "sm_90a") == 0);
        RtCompileOptions copt = {.gpu = gpu_passes, .target = {.num_warps = RT_KERNEL_NUM_WARPS, .every_fact = true}};
        if (gpu_passes && strcmp(vm_gpu, "sm_90a") == 0)
            copt.target.sm = 90, copt.target.arch_specific = true, copt.target.tma = true,
            copt.target.cluster = env_flag("TILE_CLUSTER", false),
            copt.target.no_tma_store = !env_flag("TILE_TMA_STORE", true);
        k->module = rt_compile_program(p, kernel, consts, nconstants, &copt, &d, &k->function);
        if (!k->module) {
            pthread_mutex_unlock(&p->lock);
            st = rt_fail(p->ctx, d.internal ? TILE_ERROR_INTERNAL : TILE_ERROR_COMPILE, "%s", sb_str(&d.text));
            diag_free(&d);
            kernel_free(k);
            return st;
        }
        diag_free(&d);
        k->conds = rt_conds_compile(k->function);
    }
    k->grid = rt_grid_compile(k->function);
    if (p->ctx->cuda && (st = nimages ? rt_cuda_prepare_images(p->ctx, k, images, nimages)
                                      : rt_cuda_prepare(p->ctx, k)) != TILE_OK) {
        pthread_mutex_unlock(&p->lock);
        kernel_free(k);
        return st;
    }
    if (!from_interface) k->autotune = rt_autotune_new(k); /* (a kernel with candidates has no interface entry) */
    /* its first build writes the interface entry (not here: a kernel never launched costs no write) */
    k->store_interface = p->ctx->cuda && !from_interface && !nimages && !p->ir && !k->autotune;
    k->next = p->kernels;
    p->kernels = k;
    pthread_mutex_unlock(&p->lock);
    clear_message(p->ctx);
    *out = k;
    return TILE_OK;
}

tile_status tile_program_emit(tile_program *p, const char *kernel, const tile_constant *constants, size_t nconstants,
                              tile_emit_kind kind, const tile_emit_options *options, char **out, size_t *len) {
    if (!p || !out || (nconstants && !constants))
        return null_argument(p ? p->ctx : NULL, "tile_program_emit",
                             !p ? "the program" : !out ? "out" : "constants (with nconstants > 0)");
    *out = NULL;
    if (len) *len = 0;
    double parse = compile_times.parse;
    memset(&compile_times, 0, sizeof compile_times);
    compile_times.parse = parse;
    if (!kernel && kind == TILE_EMIT_IR)
        return rt_fail(p->ctx, TILE_ERROR_INVALID_ARGUMENT, "kernel NULL (every kernel) applies to the GPU forms only");
    if (!rt_program_parse(p)) return TILE_ERROR_COMPILE; /* (it said why) */
    if (kernel && !program_has_kernel(p, kernel)) /* as tile_program_get_kernel says it */
        return rt_fail(p->ctx, TILE_ERROR_NOT_FOUND, "%s: no kernel named '%s'", p->ast->source.name, kernel);
    if (kind != TILE_EMIT_IR && kind != TILE_EMIT_LLVM && kind != TILE_EMIT_PTX && kind != TILE_EMIT_CUBIN)
        return rt_fail(p->ctx, TILE_ERROR_INVALID_ARGUMENT, "unknown emit kind %d", (int)kind);
    const char *dump_after = options ? options->dump_after : NULL;
    if (dump_after && kind != TILE_EMIT_IR)
        return rt_fail(p->ctx, TILE_ERROR_INVALID_ARGUMENT, "dump_after applies to the IR only (TILE_EMIT_IR)");
    const char *arch = options && options->arch ? options->arch : NULL;
    if (!arch) arch = rt_cuda_arch(p->ctx);
    if (!arch) arch = "sm_90a";
    int num_warps = options ? options->num_warps : 0;
    if (num_warps != 0 && !ir_num_warps_valid(num_warps))
        return rt_fail(p->ctx, TILE_ERROR_INVALID_ARGUMENT,
                       "num_warps %d: expected 0 (the default) or 1, 2, 4, 8, 16 or 32", num_warps);
    if (dump_after && !passes_is_known(dump_after)) {
        Strbuf names = {0};
        passes_list(&names);
        tile_status st = rt_fail(p->ctx, TILE_ERROR_INVALID_ARGUMENT, "unknown pass '%s'; the passes are:\n%s", dump_after,
                                 sb_str(&names));
        sb_free(&names);
        return st;
    }
    if (!kernel) {
        Strbuf code = {0};
        tile_status st = rt_emit_every_kernel(p, constants, nconstants, kind, arch, num_warps, &code);
        if (st == TILE_OK && len) *len = code.len;
        if (st == TILE_OK) *out = code.data ? code.data : xstrdup("");
        else sb_free(&code);
        return st;
    }
    ConstBinding *consts;
    tile_status st = convert_constants(p->ctx, constants, nconstants, &consts);
    if (st != TILE_OK) return st;
    DiagList d = {0};
    Strbuf dump = {0};
    IrFunction *f = NULL;
    pthread_mutex_lock(&p->lock);
    /* LLVM IR, PTX and cubins come from the backend, which runs the GPU passes for arch and
     * num_warps (rt_backend_emit); a dump after a GPU pass runs them here for the same target */
    RtCompileOptions copt = {.dump_after = dump_after, .dump = &dump};
    IrModule *m = rt_compile_program(p, kernel, consts, nconstants, &copt, &d, &f);
    pthread_mutex_unlock(&p->lock);
    free(consts);
    if (m && dump_after && passes_is_gpu(dump_after)) {
        /* the target of rt_backend_emit: TMA rings where facts allow, every fact with
         * TILE_EMIT_SPECIALIZED=1 (the variant a launch on contiguous aligned tensors gets) */
        Target t;
        IrFunction *g;
        bool known = rt_target_for_arch(arch, num_warps, &t);
        t.tma = true;
        t.every_fact = env_flag("TILE_EMIT_SPECIALIZED", false);
        t.conds = rt_emit_conds(1); /* as rt_backend_emit reads it */
        IrModule *targeted = known ? rt_target_module(f, &t, dump_after, &dump, &d, &g) : NULL;
        if (!targeted && !d.errors) diag_error(&d, f->loc, "unknown architecture '%s' (sm_80 or sm_90a)", arch);
        if (targeted) ir_module_free(targeted);
        else ir_module_free(m), m = NULL;
    }
    if (!m) {
        st = rt_fail(p->ctx, d.internal ? TILE_ERROR_INTERNAL : TILE_ERROR_COMPILE, "%s", sb_str(&d.text));
        diag_free(&d);
        sb_free(&dump);
        return st;
    }
    diag_free(&d);
    if (kind != TILE_EMIT_IR) {
        Strbuf err = {0};
        st = rt_backend_emit((const IrFunction *const *)&f, 1, arch, num_warps, kind, &dump, &err);
        if (st != TILE_OK) {
            st = rt_fail(p->ctx, st, "%s for %s: %s", kernel, arch, sb_str(&err));
            sb_free(&err);
            sb_free(&dump);
            ir_module_free(m);
            return st;
        }
        sb_free(&err);
    } else if (!dump_after) {
        ir_print_module(m, &dump);
    }
    ir_module_free(m);
    if (len) *len = dump.len;
    *out = dump.data ? dump.data : xstrdup("");
    return TILE_OK;
}

void tile_string_free(char *s) { free(s); }

static char *pass_names_text;

static void init_pass_names(void) {
    Strbuf sb = {0};
    passes_list(&sb);
    pass_names_text = sb.data ? sb.data : xstrdup("");
}

const char *tile_pass_names(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_pass_names);
    return pass_names_text;
}

/* ---- kernels ---------------------------------------------------------------------------------- */
int tile_kernel_num_params(const tile_kernel *k) { return k ? (int)k->function->nparams : 0; }

static tile_dtype dtype_of(ElemType e) {
    return TILE_DTYPE((uint32_t)e.kind, (uint32_t)e.bits, (uint32_t)e.exp, (uint32_t)e.man);
}

tile_status tile_kernel_param(const tile_kernel *k, int index, tile_param_info *out) {
    if (!k || !out) return null_argument(k ? k->program->ctx : NULL, "tile_kernel_param", !k ? "the kernel" : "out");
    if (index < 0 || (uint32_t)index >= k->function->nparams)
        return rt_fail(k->program->ctx, TILE_ERROR_INVALID_ARGUMENT, "tile_kernel_param: '%s' has no parameter %d",
                       k->name, index);
    const IrParam *p = &k->function->params[index];
    const IrType *t = k->function->body->args[index]->type;
    memset(out, 0, sizeof *out);
    out->name = p->name;
    out->dtype = dtype_of(t->elem);
    if (t->kind == TY_TENSOR) {
        out->kind = TILE_ARG_TENSOR;
        out->written = k->written ? k->written[index] : ir_param_may_write(k->function, (uint32_t)index);
        out->rank = t->rank;
        for (int i = 0; i < t->rank; i++) {
            out->dim_symbols[i] = p->dims[i].symbol;
            out->dim_sizes[i] = p->dims[i].size;
        }
    } else {
        out->kind = elem_is_float(t->elem) ? TILE_ARG_FLOAT : TILE_ARG_INT;
    }
    return TILE_OK;
}

tile_status tile_kernel_launch(tile_kernel *k, const tile_arg *args, size_t nargs, tile_stream *stream) {
    if (!k) return null_argument(NULL, "tile_kernel_launch", "the kernel");
    tile_context *ctx = k->program->ctx;
    if (nargs && !args) return rt_fail(ctx, TILE_ERROR_INVALID_ARGUMENT, "%s: args is NULL", k->name);
    if (stream && stream->ctx != ctx)
        return rt_fail(ctx, TILE_ERROR_INVALID_ARGUMENT, "launch of '%s': the stream belongs to another context", k->name);
    tile_status st = TILE_OK;
    /* the fast path: arguments of a signature an earlier launch checked (launch.c) */
    if (ctx->cuda && rt_cuda_launch_memo(k, args, nargs, stream, &st)) return st;
    Strbuf err = {0};
    if (!rt_check_args(k->function, args, nargs, &err))
        st = rt_fail(ctx, TILE_ERROR_INVALID_ARGUMENT, "launch of '%s': %s", k->name, sb_str(&err));
    else if (k->autotune)
        st = rt_autotune_launch(k, args, nargs, stream);
    else
        st = rt_launch_checked(k, args, nargs, stream);
    sb_free(&err);
    return st;
}

tile_status rt_launch_checked(tile_kernel *k, const tile_arg *args, size_t nargs, tile_stream *stream) {
    tile_context *ctx = k->program->ctx;
    if (ctx->cuda) return rt_cuda_launch(k, args, nargs, stream);
    Strbuf err = {0};
    tile_status st = TILE_OK;
    VmCancel cancel = {.generation = &ctx->cancel_generation, .started = atomic_load(&ctx->cancel_generation)};
    VmOutcome r = vm_launch_cancellable(k->function, args, nargs, 0, &cancel, &err);
    if (r != VM_OK)
        st = rt_fail(ctx,
                     r == VM_CANCELLED   ? TILE_ERROR_CANCELLED
                     : r == VM_INTERNAL ? TILE_ERROR_INTERNAL
                                        : TILE_ERROR_INVALID_ARGUMENT,
                     "launch of '%s': %s", k->name, sb_str(&err));
    sb_free(&err);
    return st;
}

/* ---- streams ---------------------------------------------------------------------------------- */
tile_status tile_stream_create(tile_context *ctx, tile_stream **out) {
    if (!ctx || !out) return null_argument(ctx, "tile_stream_create", !ctx ? "the context" : "out");
    *out = NULL;
    tile_stream *s = xcalloc(1, sizeof *s);
    s->ctx = ctx;
    if (ctx->cuda) {
        tile_status st = rt_cuda_stream_create(ctx, s);
        if (st != TILE_OK) {
            free(s);
            return st;
        }
    }
    *out = s;
    return TILE_OK;
}

tile_status tile_stream_synchronize(tile_stream *s) {
    if (!s) return null_argument(NULL, "tile_stream_synchronize", "the stream");
    return s->ctx->cuda ? rt_cuda_stream_synchronize(s) : TILE_OK;
}

tile_status tile_stream_wrap(tile_context *ctx, void *custream, tile_stream **out) {
    if (!ctx || !out) return TILE_ERROR_INVALID_ARGUMENT;
    tile_stream *s = xcalloc(1, sizeof *s);
    s->ctx = ctx;
    s->cuda = ctx->cuda ? (struct CudaStream *)custream : NULL;
    s->borrowed = true;
    *out = s;
    return TILE_OK;
}

void tile_stream_destroy(tile_stream *s) {
    if (!s) return;
    if (s->ctx->cuda && !s->borrowed) rt_cuda_stream_destroy(s);
    free(s);
}

/* ---- tensors ---------------------------------------------------------------------------------- */
tile_tensor tile_tensor_contiguous(tile_dtype dtype, void *data, int rank, const int64_t *shape) {
    tile_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dtype;
    t.data = data;
    t.rank = rank < 0 ? 0 : rank > TILE_MAX_RANK ? TILE_MAX_RANK : rank;
    /* A stride that overflows saturates at INT64_MAX (and so do the ones after it), which every
     * launch rejects as spanning more memory than can be addressed. */
    int64_t stride = 1;
    for (int i = t.rank - 1; i >= 0; i--) {
        t.shape[i] = shape ? shape[i] : 0;
        t.strides[i] = stride;
        if (t.shape[i] > 0 && __builtin_mul_overflow(stride, t.shape[i], &stride)) stride = INT64_MAX;
    }
    return t;
}

int tile_num_warps_valid(int num_warps) { return ir_num_warps_valid(num_warps); }

size_t tile_dtype_bytes(tile_dtype dtype, int64_t numel) {
    uint32_t kind = dtype >> 24, bits = (dtype >> 16) & 0xff;
    if (kind == TILE_DTYPE_BOOL_KIND) bits = 8;
    if (numel <= 0) return 0;
    uint64_t total_bits;
    if (__builtin_mul_overflow((uint64_t)numel, (uint64_t)bits, &total_bits) || total_bits / 8 + 1 > SIZE_MAX)
        return SIZE_MAX;
    return (size_t)((total_bits + 7) / 8);
}

/* ---- host-side packing ------------------------------------------------------------------------ */
tile_status tile_pack(tile_dtype dtype, const double *src, int64_t n, void *dst) {
    ElemType e;
    if (!rt_dtype_to_elem(dtype, &e) || n < 0 || (n && (!src || !dst)))
        return rt_fail(NULL, TILE_ERROR_INVALID_ARGUMENT, "tile_pack: %s", !rt_dtype_to_elem(dtype, &e) ? "invalid dtype"
                                                                        : n < 0 ? "negative count" : "NULL buffer");
    if (elem_storage_bits(e) % 8) memset(dst, 0, tile_dtype_bytes(dtype, n));
    for (int64_t i = 0; i < n; i++) {
        VmElem v;
        if (elem_is_float(e)) {
            v.f = elem_round_float(e, src[i]);
        } else {
            IrConst c = elem_convert(elem_f64(), (IrConst){.is_float = true, .f = src[i]}, e);
            v.i = c.i;
        }
        vm_write_element(dst, e, i, v);
    }
    return TILE_OK;
}

tile_status tile_unpack(tile_dtype dtype, const void *src, int64_t n, double *dst) {
    ElemType e;
    if (!rt_dtype_to_elem(dtype, &e) || n < 0 || (n && (!src || !dst)))
        return rt_fail(NULL, TILE_ERROR_INVALID_ARGUMENT, "tile_unpack: %s", !rt_dtype_to_elem(dtype, &e) ? "invalid dtype"
                                                                          : n < 0 ? "negative count" : "NULL buffer");
    for (int64_t i = 0; i < n; i++) {
        VmElem v = vm_read_element(src, e, i);
        dst[i] = elem_is_float(e) ? v.f
               : e.kind == EK_UINT && e.bits == 64 ? (double)(uint64_t)v.i
               : (double)v.i;
    }
    return TILE_OK;
}
