/*
 * autotune.c: launches of a kernel with an `autotune(...)` clause (lang/SPEC.md "Autotuning";
 * docs/RUNTIME.md "Autotuning" for the cache entry).
 *
 * A kernel got with none of the constants its candidates bind carries an RtAutotune
 * (rt_autotune_new, called by rt_get_kernel). Its launches go through rt_autotune_launch:
 *
 *   1. the shape bucket: each key size of the launch rounded up to a power of two;
 *   2. the winner of that bucket from this kernel's memory, else from the disk cache (an entry
 *      keyed by the kernel's source with every autotune clause cut out, the candidate list, the
 *      constants given, the device and the bucket), else by timing every candidate now and
 *      storing the winner;
 *   3. a launch of the winner, a kernel of the same program specialized by the candidate's
 *      constants (compiled on first use, as tile_program_get_kernel would).
 *
 * Timing runs each candidate on scratch copies of the tensors the kernel writes (found in its
 * IR), so that kernels which read their outputs (`c += ...`) see their real outputs exactly once:
 * in step 3. On cuda the candidates are first compiled side by side on several threads
 * (prebuild_candidates), then each gets two warm-up launches and five timed ones (events on the
 * launch's stream); its time is the median. The VM does not time (its timings say nothing about
 * a GPU): it runs the first candidate, unless TILE_AUTOTUNE=vm asks it to time with the wall
 * clock (three launches, the median) - which the tests use for the cache paths. TILE_AUTOTUNE=0
 * runs the first candidate everywhere and touches no cache. Ties go to the earlier candidate, so
 * the choice is deterministic given the times; a candidate that fails to compile or launch is
 * left out, and the launch fails only when every candidate does.
 *
 * The decision of the latest launch is kept as text for tile_kernel_autotune_report (`tilec run
 * --verbose`).
 */
#include "runtime.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/cuda.h"
#include "vm.h"
#include "tile_parser.h"

enum { WARMUP_RUNS = 2, TIMED_RUNS = 5, VM_TIMED_RUNS = 3, MAX_KEYS = IR_MAX_RANK * 4 };

#define RECORD_MAGIC "tile-autotune 1\n"

typedef enum TuneMode { TUNE_OFF, TUNE_GPU, TUNE_EVERYWHERE } TuneMode;

/* The decision for one shape bucket. */
typedef struct RtTuneChoice {
    int64_t bucket[MAX_KEYS];
    uint32_t winner;
    char *report;
    struct RtTuneChoice *next;
} RtTuneChoice;

struct RtAutotune {
    Arena arena;               /* the spec's arrays */
    AutotuneSpec spec;
    TuneMode mode;
    int key_param[MAX_KEYS];   /* where each key's size is read: parameter and axis */
    int key_axis[MAX_KEYS];
    bool *written;             /* per parameter: a tensor the kernel may write */
    CacheKey base;             /* everything of the disk key but the bucket */
    pthread_mutex_t lock;      /* the fields below; held while a bucket is tuned */
    tile_kernel **kernels;     /* per candidate, once got */
    RtTuneChoice *choices;
    _Atomic(const char *) latest; /* the report of the latest launch (owned by a choice); a memo
                                     hit sets it without the lock */
};

double (*rt_autotune_test_times)(uint32_t candidate);

/* ---- reading the kernel ------------------------------------------------------------------------- */
static TuneMode mode_from_env(void) {
    const char *v = getenv("TILE_AUTOTUNE");
    if (v && strcmp(v, "vm") == 0) return TUNE_EVERYWHERE;
    return env_flag("TILE_AUTOTUNE", true) ? TUNE_GPU : TUNE_OFF;
}

/* The hash of the source with every autotune clause cut out, token by token (so neither a
 * changed candidate list of another kernel nor a comment re-tunes this one). */
static void hash_source_without_clauses(const AstFile *ast, Sha256 *h) {
    DiagList d = {0};
    Lexer lx;
    lexer_init(&lx, &ast->source, &d);
    for (Token t = lexer_next(&lx); t.code != 0; t = lexer_next(&lx)) {
        bool clause = false;
        for (uint32_t i = 0; i < ast->decls.len && !clause; i++) {
            const AstNode *k = ast->decls.items[i];
            for (uint32_t j = 0; k->kind == AST_KERNEL && k->checks && j < k->checks->len && !clause; j++) {
                const AstNode *c = k->checks->items[j];
                clause = autotune_is_clause(c) && c->loc.line == t.loc.line && c->loc.col == t.loc.col;
            }
        }
        if (clause) { /* skip the name and its balanced parentheses */
            int depth = 0;
            for (t = lexer_next(&lx); t.code != 0; t = lexer_next(&lx)) {
                depth += t.code == TK_LPAREN ? 1 : t.code == TK_RPAREN ? -1 : 0;
                if (depth <= 0) break;
            }
            continue;
        }
        cache_key_add(h, "tok", t.start, t.len);
    }
    diag_free(&d);
}

static void hash_binding(Sha256 *h, const ConstBinding *b) {
    cache_key_add_str(h, "name", b->name);
    cache_key_add_i64(h, "float", b->is_float);
    if (b->is_float) cache_key_add(h, "f", &b->f, sizeof b->f);
    else cache_key_add_i64(h, "i", b->i);
}

/* The device as the cache sees it: the GPU's name and architecture, not its ordinal. */
static const char *device_identity(const tile_context *ctx) {
    const char *paren = strchr(ctx->name, '(');
    return ctx->cuda && paren ? paren : ctx->name;
}

RtAutotune *rt_autotune_new(tile_kernel *k) {
    tile_program *p = k->program;
    /* images made ahead of time hold one configuration: the one loaded is the one that runs */
    if (k->from_image || !p->ast || !p->ast->decls.len) return NULL;
    const AstNode *decl = NULL;
    for (uint32_t i = 0; i < p->ast->decls.len && !decl; i++)
        if (p->ast->decls.items[i]->kind == AST_KERNEL && strcmp(p->ast->decls.items[i]->name, k->name) == 0)
            decl = p->ast->decls.items[i];
    if (!decl) return NULL;
    RtAutotune *t = xcalloc(1, sizeof *t);
    arena_init(&t->arena);
    DiagList d = {0};
    bool ok = autotune_read(decl, &t->arena, &t->spec, &d) && t->spec.clause && t->spec.nkeys <= MAX_KEYS;
    diag_free(&d);
    /* a constant given explicitly that some candidate binds fixes the configuration */
    for (uint32_t c = 0; ok && c < t->spec.nconfigs; c++)
        for (uint32_t b = 0; ok && b < t->spec.configs[c].nbindings; b++)
            for (size_t i = 0; ok && i < k->nconsts; i++)
                ok = strcmp(k->consts[i].name, t->spec.configs[c].bindings[b].name) != 0;
    const IrFunction *f = k->function;
    for (uint32_t i = 0; ok && i < t->spec.nkeys; i++) {
        t->key_param[i] = -1;
        for (uint32_t q = 0; q < f->nparams && t->key_param[i] < 0; q++)
            for (int a = 0; a < IR_MAX_RANK && t->key_param[i] < 0; a++)
                if (f->params[q].dims[a].symbol && strcmp(f->params[q].dims[a].symbol, t->spec.keys[i]) == 0)
                    t->key_param[i] = (int)q, t->key_axis[i] = a;
        ok = t->key_param[i] >= 0;
    }
    if (!ok) {
        arena_free(&t->arena);
        free(t);
        return NULL;
    }
    t->mode = mode_from_env();
    t->written = xcalloc(f->nparams + 1, sizeof *t->written);
    for (uint32_t q = 0; q < f->nparams; q++)
        t->written[q] = ir_param_may_write(f, q);
    t->kernels = xcalloc(t->spec.nconfigs, sizeof *t->kernels);
    pthread_mutex_init(&t->lock, NULL);

    Sha256 h;
    cache_key_begin(&h);
    cache_key_add_str(&h, "entry", "autotune winner");
    cache_key_add_str(&h, "compiler", TILE_VERSION_STRING);
    cache_key_add_i64(&h, "codegen", CACHE_CODEGEN_FORMAT);
    hash_source_without_clauses(p->ast, &h);
    cache_key_add_str(&h, "kernel", k->name);
    for (size_t i = 0; i < k->nconsts; i++) hash_binding(&h, &k->consts[i]);
    for (uint32_t i = 0; i < t->spec.nkeys; i++) cache_key_add_str(&h, "key", t->spec.keys[i]);
    for (uint32_t c = 0; c < t->spec.nconfigs; c++) {
        cache_key_add_i64(&h, "config", t->spec.configs[c].nbindings);
        for (uint32_t b = 0; b < t->spec.configs[c].nbindings; b++) hash_binding(&h, &t->spec.configs[c].bindings[b]);
    }
    cache_key_add_str(&h, "device", device_identity(p->ctx));
    t->base = cache_key_end(&h);
    return t;
}

void rt_autotune_free(RtAutotune *t) {
    if (!t) return;
    for (RtTuneChoice *c = t->choices, *next; c; c = next) {
        next = c->next;
        free(c->report);
        free(c);
    }
    pthread_mutex_destroy(&t->lock);
    free(t->kernels);
    free(t->written);
    arena_free(&t->arena);
    free(t);
}

/* ---- candidates --------------------------------------------------------------------------------- */
/* "config(BN = 256, W = 8)", or "config() (the defaults)". */
static void config_text(const AutotuneConfig *c, Strbuf *out) {
    sb_puts(out, "config(");
    for (uint32_t i = 0; i < c->nbindings; i++) {
        const ConstBinding *b = &c->bindings[i];
        if (b->is_float) sb_printf(out, "%s%s = %g", i ? ", " : "", b->name, b->f);
        else sb_printf(out, "%s%s = %lld", i ? ", " : "", b->name, (long long)b->i);
    }
    sb_puts(out, c->nbindings ? ")" : ") (the defaults)");
}

/* The kernel of candidate c: k's constants and the candidate's (k itself for config()). */
static tile_status candidate_kernel(tile_kernel *k, RtAutotune *t, uint32_t c, tile_kernel **out) {
    if (t->kernels[c]) {
        *out = t->kernels[c];
        return TILE_OK;
    }
    const AutotuneConfig *cfg = &t->spec.configs[c];
    size_t n = k->nconsts + cfg->nbindings;
    tile_constant *consts = xcalloc(n + 1, sizeof *consts);
    for (size_t i = 0; i < k->nconsts; i++)
        consts[i] = (tile_constant){k->consts[i].name, k->consts[i].is_float, k->consts[i].i, k->consts[i].f};
    for (uint32_t i = 0; i < cfg->nbindings; i++) {
        const ConstBinding *b = &cfg->bindings[i];
        consts[k->nconsts + i] = (tile_constant){b->name, b->is_float, b->i, b->f};
    }
    tile_status st = rt_get_kernel(k->program, k->name, consts, n, NULL, 0, out);
    free(consts);
    if (st == TILE_OK) t->kernels[c] = *out;
    return st;
}

/* Launches candidate kernel ck with args: its own argument check (a fixed size may depend on
 * its constants), then the device. */
static tile_status launch_kernel(tile_kernel *k, tile_kernel *ck, const tile_arg *args, size_t nargs,
                                 tile_stream *stream) {
    Strbuf err = {0};
    tile_status st;
    if (ck != k && !rt_check_args(ck->function, args, nargs, &err)) /* k's were checked */
        st = rt_fail(k->program->ctx, TILE_ERROR_INVALID_ARGUMENT, "launch of '%s': %s", k->name, sb_str(&err));
    else st = rt_launch_checked(ck, args, nargs, stream);
    sb_free(&err);
    return st;
}

/* launch_kernel of candidate c (t->lock held: candidate_kernel fills t->kernels). */
static tile_status launch_candidate(tile_kernel *k, RtAutotune *t, uint32_t c, const tile_arg *args, size_t nargs,
                                    tile_stream *stream) {
    tile_kernel *ck;
    tile_status st = candidate_kernel(k, t, c, &ck);
    return st == TILE_OK ? launch_kernel(k, ck, args, nargs, stream) : st;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The median time of candidate c in milliseconds (see the top of the file); false with the
 * reason in why when it cannot run. */
static bool time_candidate(tile_kernel *k, RtAutotune *t, uint32_t c, const tile_arg *args, size_t nargs,
                           tile_stream *stream, double *ms, Strbuf *why) {
    tile_context *ctx = k->program->ctx;
    double runs[TIMED_RUNS];
    int nruns = ctx->cuda ? TIMED_RUNS : VM_TIMED_RUNS;
    tile_status st = TILE_OK;
    if (ctx->cuda) {
        CudaDevice *dev = rt_cuda_device(ctx);
        CudaStream *cs = stream ? stream->cuda : NULL;
        CudaEvent *start = NULL, *end = NULL;
        Strbuf err = {0};
        st = cuda_event_create(dev, &start, &err);
        if (st == TILE_OK) st = cuda_event_create(dev, &end, &err);
        for (int i = 0; st == TILE_OK && i < WARMUP_RUNS; i++) st = launch_candidate(k, t, c, args, nargs, stream);
        for (int i = 0; st == TILE_OK && i < nruns; i++) {
            float f = 0;
            st = cuda_event_record(dev, start, cs, &err);
            if (st == TILE_OK) st = launch_candidate(k, t, c, args, nargs, stream);
            if (st == TILE_OK) st = cuda_event_record(dev, end, cs, &err);
            if (st == TILE_OK) st = cuda_event_elapsed_ms(dev, start, end, &f, &err);
            runs[i] = f;
        }
        cuda_event_destroy(dev, start);
        cuda_event_destroy(dev, end);
        if (st != TILE_OK) sb_puts(why, err.len ? sb_str(&err) : tile_context_message(ctx));
        sb_free(&err);
    } else {
        for (int i = 0; st == TILE_OK && i < nruns; i++) {
            double t0 = now_ms();
            st = launch_candidate(k, t, c, args, nargs, stream);
            runs[i] = now_ms() - t0;
        }
        if (st != TILE_OK) sb_puts(why, tile_context_message(ctx));
    }
    if (st != TILE_OK) return false;
    qsort(runs, (size_t)nruns, sizeof *runs, compare_doubles);
    *ms = rt_autotune_test_times ? rt_autotune_test_times(c) : runs[nruns / 2];
    return true;
}

/* ---- compiling the candidates at once ---------------------------------------------------------- */
/* A first tuning on a GPU compiles every candidate: one cold JIT each, mostly single-threaded
 * work (LLVM, the assembler). prebuild_candidates does them side by side before the timing, one
 * candidate per thread (at most the machine's cores, or $TILE_AUTOTUNE_THREADS; 1: none), each
 * through rt_cuda_select as its first launch would, so the timing's launches find them built. A
 * candidate that fails here is left to the timing, which meets the failure again on the calling
 * thread and reports it. The workers' compile times are added to the calling thread's
 * tile_compile_times. */
typedef struct Prebuild {
    tile_kernel **kernels;     /* per candidate: its kernel, or NULL (not to build) */
    uint32_t n;
    _Atomic uint32_t next;     /* the next candidate to take */
    const tile_arg *args;
    size_t nargs;
    pthread_mutex_t lock;      /* times */
    tile_compile_times times;  /* the workers' compile times, summed */
} Prebuild;

/* to += sign * t, stage by stage. */
static void add_times(tile_compile_times *to, const tile_compile_times *t, double sign) {
    to->parse += sign * t->parse, to->lower += sign * t->lower, to->passes += sign * t->passes;
    to->codegen += sign * t->codegen, to->llvm += sign * t->llvm, to->assemble += sign * t->assemble;
    to->llvm_optimize += sign * t->llvm_optimize, to->cache += sign * t->cache, to->load += sign * t->load;
}

static void prebuild_take(Prebuild *b) {
    for (uint32_t c; (c = atomic_fetch_add(&b->next, 1)) < b->n;) {
        struct RtCudaFunction *f;
        if (b->kernels[c]) (void)rt_cuda_select(b->kernels[c], b->args, b->nargs, &f);
    }
}

static void *prebuild_worker(void *arg) {
    Prebuild *b = arg;
    tile_compile_times before = *rt_times();
    prebuild_take(b);
    tile_compile_times spent = *rt_times();
    add_times(&spent, &before, -1);
    pthread_mutex_lock(&b->lock);
    add_times(&b->times, &spent, 1);
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

/* The threads for candidates: $TILE_AUTOTUNE_THREADS, else the cores, at most one per candidate
 * (a value that is not a count 1..1024 is said on stderr, as TILE_PTXAS_THREADS's is, and ignored). */
static int prebuild_threads(uint32_t candidates) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    const char *v = getenv("TILE_AUTOTUNE_THREADS");
    if (v && *v) {
        char *end;
        errno = 0;
        long given = strtol(v, &end, 10);
        if (errno == 0 && !*end && given >= 1 && given <= 1024) n = given;
        else fprintf(stderr, "tile: TILE_AUTOTUNE_THREADS='%s' ignored: expected a thread count 1..1024\n", v);
    }
    if (n < 1) n = 1;
    return n > (long)candidates ? (int)candidates : (int)n;
}

_Atomic int rt_autotune_prebuild_last_threads;

/* Compiles the candidates of k for args side by side (t->lock held: fills t->kernels); says how
 * in report. Nothing on the VM, nor with one thread. */
static void prebuild_candidates(tile_kernel *k, RtAutotune *t, const tile_arg *args, size_t nargs, Strbuf *report) {
    int threads = prebuild_threads(t->spec.nconfigs);
    atomic_store(&rt_autotune_prebuild_last_threads, 0);
    if (!k->program->ctx->cuda || threads < 2) return;
    double t0 = now_ms();
    Prebuild b = {.kernels = xcalloc(t->spec.nconfigs, sizeof *b.kernels), .n = t->spec.nconfigs, .args = args,
                  .nargs = nargs};
    for (uint32_t c = 0; c < t->spec.nconfigs; c++) { /* the frontend's part here, in order */
        tile_kernel *ck;
        Strbuf err = {0};
        if (candidate_kernel(k, t, c, &ck) == TILE_OK && rt_check_args(ck->function, args, nargs, &err))
            b.kernels[c] = ck;
        sb_free(&err);
    }
    pthread_mutex_init(&b.lock, NULL);
    pthread_t *ids = xcalloc((size_t)threads, sizeof *ids);
    int started = 0;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, (size_t)16 << 20); /* as the VM's workers: the compiler recurses */
    for (int i = 1; i < threads; i++) started += pthread_create(&ids[started], &attr, prebuild_worker, &b) == 0;
    pthread_attr_destroy(&attr);
    prebuild_take(&b); /* this thread takes candidates too (its times are its own) */
    for (int i = 0; i < started; i++) pthread_join(ids[i], NULL);
    free(ids);
    add_times(rt_times(), &b.times, 1);
    pthread_mutex_destroy(&b.lock);
    free(b.kernels);
    atomic_store(&rt_autotune_prebuild_last_threads, started + 1);
    sb_printf(report, "  compiled %u candidates on %d threads: %.1f ms\n", t->spec.nconfigs, started + 1, now_ms() - t0);
}

/* ---- scratch outputs ------------------------------------------------------------------------------ */
typedef struct Scratch {
    tile_arg *args;            /* the launch's arguments with written tensors replaced */
    void **blocks;             /* per argument: the allocation, or NULL */
    size_t nargs;
} Scratch;

/* The bytes [*lo, *hi) that tensor x spans, relative to x->data (lo may be negative). */
static bool tensor_span(const tile_tensor *x, int64_t *lo, int64_t *hi) {
    int64_t bits = (int64_t)((x->dtype >> 16) & 0xff), first = 0, last = 0;
    for (int d = 0; d < x->rank; d++) {
        if (x->shape[d] == 0) return false;
        int64_t reach = (x->shape[d] - 1) * x->strides[d]; /* checked by rt_check_args not to overflow */
        if (reach < 0) first += reach;
        else last += reach;
    }
    *lo = (first * bits) >> 3; /* floor */
    *hi = ((last + 1) * bits + 7) >> 3;
    return true;
}

static void scratch_free(tile_context *ctx, Scratch *s) {
    for (size_t i = 0; i < s->nargs; i++)
        if (s->blocks[i]) tile_free(ctx, s->blocks[i]);
    free(s->blocks);
    free(s->args);
    memset(s, 0, sizeof *s);
}

/* Copies of every tensor the kernel may write, at the same address modulo 256 as the original
 * (so the launch facts, and with them the specialized variant, are the same). */
static tile_status scratch_make(tile_kernel *k, RtAutotune *t, const tile_arg *args, size_t nargs, Scratch *s) {
    tile_context *ctx = k->program->ctx;
    s->nargs = nargs;
    s->args = xcalloc(nargs + 1, sizeof *s->args);
    s->blocks = xcalloc(nargs + 1, sizeof *s->blocks);
    if (nargs) memcpy(s->args, args, nargs * sizeof *args);
    tile_status st = ctx->cuda ? tile_synchronize(ctx) : TILE_OK; /* the outputs' earlier writers */
    for (size_t i = 0; st == TILE_OK && i < nargs; i++) {
        int64_t lo, hi;
        if (!t->written[i] || args[i].kind != TILE_ARG_TENSOR || !tensor_span(&args[i].tensor, &lo, &hi)) continue;
        const char *src = (const char *)args[i].tensor.data + lo;
        size_t bytes = (size_t)(hi - lo), shift = (uintptr_t)src & 255;
        st = tile_alloc(ctx, bytes + 256, &s->blocks[i]);
        if (st != TILE_OK) break;
        char *dst = (char *)s->blocks[i] + shift;
        if (ctx->cuda) {
            Strbuf err = {0};
            st = cuda_copy_device(rt_cuda_device(ctx), (CudaPtr)(uintptr_t)dst, (CudaPtr)(uintptr_t)src, bytes, &err);
            if (st != TILE_OK) rt_fail(ctx, st, "autotuning '%s': copying an output: %s", k->name, sb_str(&err));
            sb_free(&err);
        } else {
            memcpy(dst, src, bytes);
        }
        s->args[i].tensor.data = dst - lo;
    }
    if (st == TILE_OK && ctx->cuda) st = tile_synchronize(ctx);
    if (st != TILE_OK) scratch_free(ctx, s);
    return st;
}

/* ---- the disk record ------------------------------------------------------------------------------ */
static CacheKey bucket_key(const RtAutotune *t, const int64_t *bucket) {
    Sha256 h;
    cache_key_begin(&h);
    cache_key_add(&h, "base", t->base.bytes, sizeof t->base.bytes);
    for (uint32_t i = 0; i < t->spec.nkeys; i++) cache_key_add_i64(&h, t->spec.keys[i], bucket[i]);
    return cache_key_end(&h);
}

/* The winner from a record's text; false when it is not a record for this candidate list. */
static bool record_parse(const RtAutotune *t, const char *text, size_t len, uint32_t *winner) {
    if (len < strlen(RECORD_MAGIC) || memcmp(text, RECORD_MAGIC, strlen(RECORD_MAGIC)) != 0 || strlen(text) != len)
        return false;
    unsigned n = 0, w = 0;
    const char *cand = strstr(text, "\ncandidates "), *win = strstr(text, "\nwinner ");
    if (!cand || !win || sscanf(cand, "\ncandidates %u", &n) != 1 || sscanf(win, "\nwinner %u", &w) != 1) return false;
    if (n != t->spec.nconfigs || w >= n) return false;
    *winner = w;
    return true;
}

/* ---- a launch ------------------------------------------------------------------------------------- */
/* The lines of text, each indented by four spaces, onto out. */
static void put_indented(Strbuf *out, const char *text) {
    for (const char *line = text; *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) + 1 : strlen(line);
        sb_puts(out, "    ");
        sb_putn(out, line, n);
        line += n;
    }
    if (out->len && out->data[out->len - 1] != '\n') sb_putc(out, '\n');
}

static int64_t bucket_of(int64_t size) {
    int64_t b = 1;
    while (b < size) b <<= 1;
    return size <= 0 ? 0 : b;
}

static RtTuneChoice *find_choice(RtAutotune *t, const int64_t *bucket) {
    for (RtTuneChoice *c = t->choices; c; c = c->next)
        if (memcmp(c->bucket, bucket, sizeof c->bucket) == 0) return c;
    return NULL;
}

/* Decides the winner of bucket (t->lock held): the disk cache, else timing. The choice with its
 * report in *out; a failure (scratch memory, or every candidate failed) has its message recorded. */
static tile_status decide(tile_kernel *k, RtAutotune *t, const int64_t *bucket, const tile_arg *args, size_t nargs,
                          tile_stream *stream, RtTuneChoice **out) {
    tile_context *ctx = k->program->ctx;
    tile_status st = TILE_OK;
    RtTuneChoice *choice = xcalloc(1, sizeof *choice);
    memcpy(choice->bucket, bucket, sizeof choice->bucket);
    Strbuf report = {0}, note = {0}, path = {0};
    sb_printf(&report, "autotune %s on %s, bucket", k->name, ctx->name);
    for (uint32_t i = 0; i < t->spec.nkeys; i++) {
        const tile_tensor *x = &args[t->key_param[i]].tensor;
        sb_printf(&report, " %s=%lld (%lld)", t->spec.keys[i], (long long)bucket[i],
                  (long long)x->shape[t->key_axis[i]]);
    }
    if (!t->spec.nkeys) sb_puts(&report, " (no key: one for every shape)");
    sb_putc(&report, '\n');

    CacheConfig config;
    cache_config_from_env(&config);
    bool use_disk = config.enabled && config.dir[0];
    CacheKey key = bucket_key(t, bucket);
    if (use_disk) {
        cache_entry_path(config.dir, &key, &path);
        CacheEntry e;
        CacheLookup got = cache_disk_load(config.dir, &key, &e, &note);
        uint32_t w;
        if (got == CACHE_HIT && record_parse(t, (const char *)e.image, e.len, &w)) {
            choice->winner = w;
            sb_printf(&report, "  from the disk cache (%s), timed earlier:\n", sb_str(&path));
            const char *times = strstr((const char *)e.image, "\ntime ");
            put_indented(&report, times ? times + 1 : "");
            cache_entry_free(&e);
            goto chosen;
        }
        if (got == CACHE_HIT) sb_printf(&note, "%s: not an autotune record for this candidate list", sb_str(&path));
        cache_entry_free(&e);
        if (note.len) sb_printf(&report, "  disk cache entry ignored: %s\n", sb_str(&note));
    }

    {
        Scratch s;
        if ((st = scratch_make(k, t, args, nargs, &s)) != TILE_OK) {
            free(choice);
            choice = NULL;
            goto done;
        }
        Strbuf record = {0}, first_error = {0};
        tile_status first_status = TILE_OK;
        double best = INFINITY;
        bool any = false;
        sb_puts(&record, RECORD_MAGIC);
        sb_printf(&record, "kernel %s\ncandidates %u\n", k->name, t->spec.nconfigs);
        Strbuf lines = {0};
        prebuild_candidates(k, t, s.args, nargs, &report);
        for (uint32_t c = 0; c < t->spec.nconfigs; c++) {
            double ms = 0;
            Strbuf why = {0}, text = {0};
            config_text(&t->spec.configs[c], &text);
            if (time_candidate(k, t, c, s.args, nargs, stream, &ms, &why)) {
                sb_printf(&lines, "time %u %.4f ms %s\n", c + 1, ms, sb_str(&text));
                if (!any || ms < best) best = ms, choice->winner = c; /* ties: the earlier one */
                any = true;
            } else {
                /* one line per candidate: a compiler's diagnostics are several */
                for (char *nl; (nl = strchr(why.data ? why.data : "", '\n'));) *nl = ' ';
                if (why.len > 300) why.data[300] = 0;
                sb_printf(&lines, "time %u failed %s: %s\n", c + 1, sb_str(&text), sb_str(&why));
                if (first_status == TILE_OK) {
                    first_status = TILE_ERROR_DEVICE;
                    sb_printf(&first_error, "%s", sb_str(&why));
                }
            }
            sb_free(&why);
            sb_free(&text);
        }
        if (ctx->cuda) (void)tile_synchronize(ctx); /* nothing may still use the scratch copies */
        scratch_free(ctx, &s);
        if (!any) {
            st = rt_fail(ctx, TILE_ERROR_INVALID_ARGUMENT, "autotuning '%s': no candidate ran; the first failed: %s", k->name,
                    sb_str(&first_error));
            free(choice);
            choice = NULL;
        } else {
            sb_printf(&record, "winner %u\n%s", choice->winner, sb_str(&lines));
            sb_printf(&report, "  timed now (candidate, median of %d runs):\n", ctx->cuda ? TIMED_RUNS : VM_TIMED_RUNS);
            put_indented(&report, sb_str(&lines));
            if (use_disk) {
                CacheEntry e = {.image = (uint8_t *)record.data, .len = record.len};
                Strbuf err = {0};
                if (cache_disk_store(config.dir, &key, &e, &err)) sb_printf(&report, "  stored in %s\n", sb_str(&path));
                else sb_printf(&report, "  not stored: %s\n", sb_str(&err));
                sb_free(&err);
            } else {
                sb_puts(&report, "  not stored: the disk cache is off (TILE_CACHE=0)\n");
            }
        }
        sb_free(&lines);
        sb_free(&record);
        sb_free(&first_error);
    }
chosen:
    if (choice) {
        Strbuf text = {0};
        config_text(&t->spec.configs[choice->winner], &text);
        sb_printf(&report, "  chose candidate %u: %s\n", choice->winner + 1, sb_str(&text));
        sb_free(&text);
        choice->report = xstrdup(sb_str(&report));
    }
done:
    sb_free(&report);
    sb_free(&note);
    sb_free(&path);
    *out = choice;
    return st;
}

/* The first candidate without timing (TILE_AUTOTUNE=0, or the VM): its report. */
static const char *untuned_report(tile_kernel *k, RtAutotune *t) {
    static const char *const why[] = {
        [TUNE_OFF] = "TILE_AUTOTUNE=0 runs the first candidate",
        [TUNE_GPU] = "the VM runs the first candidate (VM timings say nothing about a GPU; TILE_AUTOTUNE=vm times them)",
        [TUNE_EVERYWHERE] = "",
    };
    if (!t->choices) {
        Strbuf r = {0}, text = {0};
        config_text(&t->spec.configs[0], &text);
        sb_printf(&r, "autotune %s on %s: %s\n  chose candidate 1: %s\n", k->name, k->program->ctx->name, why[t->mode],
                  sb_str(&text));
        t->choices = xcalloc(1, sizeof *t->choices);
        t->choices->report = xstrdup(sb_str(&r));
        sb_free(&r);
        sb_free(&text);
    }
    return t->choices->report;
}

tile_status rt_autotune_launch(tile_kernel *k, const tile_arg *args, size_t nargs, tile_stream *stream) {
    RtAutotune *t = k->autotune;
    tile_context *ctx = k->program->ctx;
    pthread_mutex_lock(&t->lock);
    uint32_t winner = 0;
    if (t->mode == TUNE_OFF || (t->mode == TUNE_GPU && !ctx->cuda)) {
        t->latest = untuned_report(k, t);
    } else {
        int64_t bucket[MAX_KEYS] = {0};
        for (uint32_t i = 0; i < t->spec.nkeys; i++)
            bucket[i] = bucket_of(args[t->key_param[i]].tensor.shape[t->key_axis[i]]);
        RtTuneChoice *c = find_choice(t, bucket);
        if (!c) {
            tile_status st = decide(k, t, bucket, args, nargs, stream, &c);
            if (st != TILE_OK) {
                pthread_mutex_unlock(&t->lock);
                return st;
            }
            c->next = t->choices;
            t->choices = c;
        }
        winner = c->winner;
        t->latest = c->report;
    }
    tile_kernel *ck;
    tile_status st = candidate_kernel(k, t, winner, &ck);
    const char *report = t->latest;
    pthread_mutex_unlock(&t->lock);
    if (st != TILE_OK) return st;
    if (!ctx->cuda) return launch_kernel(k, ck, args, nargs, stream);
    /* on cuda the launch leaves k a memo of this choice (launch.c): the next launch with these
     * arguments' signature goes straight to the candidate's function */
    Strbuf err = {0};
    if (ck != k && !rt_check_args(ck->function, args, nargs, &err))
        st = rt_fail(ctx, TILE_ERROR_INVALID_ARGUMENT, "launch of '%s': %s", k->name, sb_str(&err));
    else st = rt_cuda_launch_for(k, ck, args, nargs, stream, report);
    sb_free(&err);
    return st;
}

void rt_autotune_note_latest(tile_kernel *k, const char *report) {
    if (k->autotune) atomic_store(&k->autotune->latest, report);
}

tile_status tile_kernel_autotune_report(tile_kernel *k, char **out) {
    if (!k || !out) return rt_fail(k ? k->program->ctx : NULL, TILE_ERROR_INVALID_ARGUMENT,
                                   "tile_kernel_autotune_report: %s is NULL", !k ? "the kernel" : "out");
    *out = NULL;
    RtAutotune *t = k->autotune;
    if (!t) return TILE_OK;
    pthread_mutex_lock(&t->lock);
    if (t->latest) *out = xstrdup(t->latest);
    pthread_mutex_unlock(&t->lock);
    return TILE_OK;
}
