/*
 * runtime.h: the objects behind the public API (include/tile/tile.h) and the compile driver.
 *
 * The runtime alone drives the other stages: compile = parse (frontend), lower one kernel
 * specialization (frontend), run the pass pipeline (passes), then hand the IR to the device:
 * the VM interprets it as is; the cuda device (runtime/device_cuda.c) compiles it through the
 * backend, keeps the loaded functions in the kernel cache (runtime/cache.c) and launches them
 * through runtime/cuda.c. A program keeps its AST and a list of compiled kernels keyed by
 * their constants.
 */
#ifndef TILE_RUNTIME_H
#define TILE_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>

#include "backend/backend.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/cache.h"
#include "tile/tile.h"

struct RtAotProgram;
struct RtVariant;
typedef struct RtLaunchMemo RtLaunchMemo;
enum { RT_LAUNCH_MEMOS = 8 }; /* argument signatures a kernel remembers (launch.c) */
typedef struct RtAutotune RtAutotune;
typedef struct RtSteps RtSteps; /* scalar steps over the parameters (launch.c) */
typedef RtSteps RtGrid;

struct tile_context {
    tile_device_kind device;
    int ordinal;
    char name[160];
    pthread_mutex_t lock;
    struct RtCuda *cuda;     /* the cuda device's state (device_cuda.c); NULL on the VM */
    struct RtAotProgram *aot_programs; /* tile_context_aot_kernel's programs, under lock */
    /* The memory cache from source to program: live programs by the hash of (name, source), so
     * that the same source is parsed once and its kernels compiled once (off with TILE_CACHE=0). */
    bool share_programs;
    pthread_mutex_t programs_lock;
    tile_program *shared_programs;
    atomic_uint_fast64_t cancel_generation; /* bumped by tile_context_cancel; a VM launch stops
                                               when it differs from the value it started with */
};

struct tile_stream {
    tile_context *ctx;
    struct CudaStream *cuda; /* NULL on the VM */
    bool borrowed;           /* tile_stream_wrap: the CUstream is not ours to destroy */
};

struct tile_kernel {
    tile_program *program;
    char *name;
    ConstBinding *consts;    /* as given, sorted by name */
    size_t nconsts;
    IrModule *module;
    IrFunction *function;    /* a kernel made from its interface entry (interface.c): the outside only */
    uint8_t *interface;      /* that entry's bytes, or NULL when the frontend made function */
    size_t interface_len;
    bool *written;           /* such a kernel's parameters that it may write (the entry's), else NULL */
    IrModule *full_module;   /* such a kernel's full IR, made by its first build (under variants_lock) */
    IrFunction *full;
    bool store_interface;    /* a cuda kernel the frontend made: its first load writes its interface
                                entry (under variants_lock) */
    /* The generic kernel's loaded GPU function (owned by the context's cache): NULL until a
     * launch needs it (compiled under variants_lock; read without it), except for a kernel loaded
     * from an ahead-of-time image, whose image is loaded when the kernel is made. */
    struct RtCudaFunction *_Atomic cuda;
    tile_status generic_status; /* not TILE_OK: compiling the generic kernel failed (under */
    char *generic_message;      /* variants_lock), and every launch that needs it says why */
    bool from_image;         /* cuda was loaded from an ahead-of-time image: never specialized */
    pthread_mutex_t variants_lock;
    struct RtVariant *variants; /* specialized variants compiled at launch (device_cuda.c) */
    struct RtVariant *_Atomic last_variant; /* the variant of the latest launch (the fast path) */
    RtGrid *grid;            /* the grid region compiled (launch.c), or NULL: the VM evaluates it */
    RtSteps *conds;          /* its launch-known conditions compiled (launch.c), or NULL: none */
    RtAutotune *autotune;    /* its autotune(...) candidates (autotune.c), or NULL */
    RtLaunchMemo *_Atomic memos[RT_LAUNCH_MEMOS]; /* the cuda launch's decisions per argument
                                                    signature (launch.c), filled in order */
    tile_kernel *next;
};

struct tile_program {
    tile_context *ctx;
    AstFile *ast;            /* the source; no declarations for an IR program, nor (until
                                rt_program_parse) for one whose parse was deferred */
    atomic_int parse_state;  /* RT_PARSED, or RT_PARSE_DEFERRED / RT_PARSE_FAILED (under parse_lock) */
    pthread_mutex_t parse_lock;
    char *parse_error;       /* RT_PARSE_FAILED: the diagnostics */
    IrModule *ir;            /* an IR program (a `.ir` name): the module read and verified once,
                                for its kernel names; each kernel reads its own copy */
    pthread_mutex_t lock;
    tile_kernel *kernels;
    int refs;                   /* handles given out by tile_program_from_string */
    bool shared;                /* in ctx->shared_programs (under ctx->programs_lock) */
    uint8_t source_hash[32];    /* SHA-256 of the name and source_sha256 */
    uint8_t source_sha256[32];  /* SHA-256 of the source text: the kernel cache key's (has_sha) */
    bool has_sha;
    tile_program *next_shared;
};

/* A cuda context with a disk cache defers the parse of a source that parsed before (a marker
 * entry says so): a disk hit then needs no frontend at all. Everything that reads the
 * declarations calls rt_program_parse first: true when they are there (parsed now if deferred),
 * false with the context's message set to the syntax errors. */
enum { RT_PARSED, RT_PARSE_DEFERRED, RT_PARSE_FAILED };
bool rt_program_parse(tile_program *p);

/* This thread's tile_compile_times, which the compile steps add to. */
tile_compile_times *rt_times(void);

/* Records the message of a failed call for tile_context_message (per thread). */
tile_status rt_fail(const tile_context *ctx, tile_status status, const char *fmt, ...) TILE_PRINTF(3, 4);

/* How rt_compile runs the pass pipeline. rt_compile makes the target-independent IR (lowering
 * and the target-independent passes, once per binding of the constants); the GPU passes run per
 * target in one place, rt_target_module, on a copy of it, which is what every path to the
 * backend does (rt_backend_emit, rt_backend_image, the cuda device's builds per arch and launch
 * facts). gpu runs them in place instead, for the VM (TILE_VM_GPU_PASSES) and for tests. */
typedef struct RtCompileOptions {
    bool gpu;               /* also run the GPU passes for target, in place */
    Target target;          /* with gpu: the target (zero: sm_80, the kernel's warps) */
    const char *dump_after; /* see PassOptions; NULL: no dump (a GPU pass's dump: with gpu only) */
    Strbuf *dump;
} RtCompileOptions;

/* The num_warps of kernels compiled for a cuda context at tile_program_get_kernel (and their
 * specialized variants): the default, in the passes and the backend alike. */
enum { RT_KERNEL_NUM_WARPS = 0 };

/* Lowers and optimizes one kernel specialization into a new module (options NULL: the VM path,
 * no dump). On failure returns NULL and the diagnostics are in d. */
IrModule *rt_compile(AstFile *ast, const char *kernel, const ConstBinding *consts, size_t nconsts,
                     const RtCompileOptions *options, DiagList *d, IrFunction **out);
/* rt_compile for a program: lowers its source, or for an IR program reads its text again
 * (which skips the frontend: it has no constants to bind) and runs the same passes. */
IrModule *rt_compile_program(tile_program *p, const char *kernel, const ConstBinding *consts, size_t nconsts,
                             const RtCompileOptions *options, DiagList *d, IrFunction **out);
/* The Target of an architecture name ("sm_80", "sm_90a") and num_warps (0: the kernel's); false
 * for another name. */
bool rt_target_for_arch(const char *arch, int num_warps, Target *out);
/* The GPU passes for target t on a copy of f's module (target-independent IR from rt_compile),
 * with a dump after dump_after (a GPU pass or "all") into dump: the module the backend compiles,
 * its kernel in *out; the caller frees it (before f's module, whose strings it shares). NULL
 * with the diagnostics in d. */
IrModule *rt_target_module(const IrFunction *f, const Target *t, const char *dump_after, Strbuf *dump, DiagList *d,
                           IrFunction **out);

/* ---- the cuda device (runtime/device_cuda.c) ---------------------------------------------
 * Each returns a status and, on failure, has recorded the message with rt_fail (the context's
 * for everything but rt_cuda_open, which records it for NULL: the context does not exist yet). */
tile_status rt_cuda_open(tile_context *ctx, int ordinal);
void rt_cuda_close(tile_context *ctx);
tile_status rt_cuda_alloc(tile_context *ctx, size_t bytes, void **out);
tile_status rt_cuda_free(tile_context *ctx, void *ptr);
tile_status rt_cuda_copy(tile_context *ctx, void *dst, const void *src, size_t bytes, bool to_device);
tile_status rt_cuda_synchronize(tile_context *ctx);
/* Readies k for the device when it is made: checks that the device can run tile's code and
 * that the code generator supports k's element types. Compiles nothing: the first launch
 * compiles the one function it needs (rt_cuda_select), the variant for its facts or the generic
 * kernel, and later launches compile another only when their facts need it. */
tile_status rt_cuda_prepare(tile_context *ctx, tile_kernel *k);
/* A kernel from its interface entry in the disk cache (interface.c), for k with its program,
 * name and constants set: true with k's module, function and conditions made from it, false
 * (k untouched) when there is none or it is not good; rt_cuda_store_interface writes k's (a
 * kernel the frontend made; its first successful load does, k->store_interface), with the
 * source's parse marker. Neither for an autotuned kernel, whose candidates need the source. */
bool rt_cuda_kernel_from_interface(tile_context *ctx, tile_kernel *k);
void rt_cuda_store_interface(tile_context *ctx, const tile_kernel *k);
/* Whether the source of this SHA-256 parsed without errors before (its marker entry, written
 * with the first interface of one of its kernels, exists in ctx's disk cache). */
bool rt_cuda_source_parsed_before(tile_context *ctx, const uint8_t source_sha256[32]);
CacheKey rt_parsed_source_key(const uint8_t source_sha256[32]); /* that marker's key (for tests) */
/* Launches k with arguments already checked by rt_check_args. */
tile_status rt_cuda_launch(tile_kernel *k, const tile_arg *args, size_t nargs, tile_stream *stream);
tile_status rt_cuda_stream_create(tile_context *ctx, tile_stream *s);
tile_status rt_cuda_stream_synchronize(tile_stream *s);
void rt_cuda_stream_destroy(tile_stream *s);
/* The architecture name the device compiles for ("sm_90a"), or NULL below sm_80. */
const char *rt_cuda_arch(const tile_context *ctx);
struct CudaDevice;
struct CudaFunction;
/* For benchmarks that compare with bare driver calls: the device of a cuda context, and the
 * loaded function that a launch of one of its kernels with args runs (the variant for their
 * facts; args NULL: the generic kernel), compiled now if no launch needed it (false if it does
 * not compile). */
struct CudaDevice *rt_cuda_device(const tile_context *ctx);
bool rt_cuda_kernel_function(tile_kernel *k, const tile_arg *args, size_t nargs, struct CudaFunction **fn,
                             unsigned *threads, unsigned *shared_bytes);
/* Generates code for the n kernels fs (one module holds them all) without a device: LLVM IR
 * text, PTX text or a cubin (binary) appended to out, for arch ("sm_80", "sm_90a"). On failure
 * the status says what kind (UNSUPPORTED when the code generator cannot handle a kernel yet or
 * no backend is built in) and err says why. */
tile_status rt_backend_emit(const IrFunction *const *fs, size_t n, const char *arch, int num_warps,
                            tile_emit_kind kind, Strbuf *out, Strbuf *err);
/* The launch-known conditions' word (Target.conds) that an emit of n kernels takes from
 * TILE_EMIT_CONDS: 0 when unset or for more than one kernel; a malformed value is ignored with a
 * message on stderr. rt_backend_emit and a dump after a GPU pass both read it here. */
unsigned rt_emit_conds(size_t n);
/* tile_program_emit with kernel NULL (runtime/aot.c): every kernel of p, each specialized by
 * the constants it declares, in one module; arch and num_warps already checked. */
tile_status rt_emit_every_kernel(tile_program *p, const tile_constant *constants, size_t nconstants,
                                 tile_emit_kind kind, const char *arch, int num_warps, Strbuf *out);

/* Like tile_program_get_kernel, with ahead-of-time images: on a cuda context the kernel is
 * loaded from the image that matches the device when there is one (rt_cuda_prepare_images). */
tile_status rt_get_kernel(tile_program *p, const char *kernel, const tile_constant *constants, size_t nconstants,
                          const tile_image *images, size_t nimages, tile_kernel **out);
/* Loads k from the first of images that the device can run (rt_image_usable); when none can
 * (or loading fails) compiles it as rt_cuda_prepare does when the backend is built in, else
 * fails with TILE_ERROR_UNSUPPORTED. */
tile_status rt_cuda_prepare_images(tile_context *ctx, tile_kernel *k, const tile_image *images, size_t nimages);
/* Frees k's specialized variants (their functions belong to the context). */
void rt_kernel_free_variants(tile_kernel *k);
/* Whether an image for arch ("sm_80", "sm_90a") runs on a device of compute capability
 * major.minor: a cubin for sm_XY on X.Z with Z >= Y, one for sm_XYa on X.Y only; PTX (is_ptx)
 * on every capability from X.Y. False for a malformed arch name. */
bool rt_image_usable(const char *arch, bool is_ptx, int major, int minor);
/* Whether an image is PTX text rather than a cubin (an ELF file). */
bool rt_image_is_ptx(const tile_image *image);

/* ---- specialization (device_cuda.c) ----------------------------------------------------------
 * At launch the cuda device computes facts about the tensor arguments (Triton-style) and uses
 * a variant of the kernel compiled for exactly those facts; a kernel whose arguments have no
 * fact uses the generic kernel. One parameter's facts fit in RtSpecFacts:
 *   bit 0      aligned16      the data pointer is a multiple of 16 bytes
 *   bit 1+d    unit_stride[d] dimension d's stride is 1
 *   bit 7+d    size_div16[d]  dimension d's size is a multiple of 16 (symbolic sizes only: a
 *                             fixed size is known when the kernel is compiled)
 *   bit 13     strides_div16  every stride that is not 1 is a multiple of 16 (a row-major
 *                             tensor whose rows are multiples of 16 long): 16-byte vectors of
 *                             rows stay aligned, so copies need no run-time alignment check
 * Scalars have no facts. A variant's facts are one RtSpecFacts per parameter and one more, the
 * launch-known conditions (passes/conds.c, rt_conds_eval): bit i the value of condition i, bit
 * LAUNCH_CONDS_MAX + i whether it is known (0: none; a kernel without conditions, or a launch
 * whose conditions could not be evaluated). rt_spec_len gives the count. */
typedef uint16_t RtSpecFacts;
static inline uint32_t rt_spec_len(const IrFunction *f) { return f->nparams + 1; }
enum { RT_SPEC_ALIGNED16 = 1u, RT_SPEC_UNIT_STRIDE0 = 1u << 1, RT_SPEC_SIZE_DIV16_0 = 1u << 7,
       RT_SPEC_STRIDES_DIV16 = 1u << 13 };

typedef struct RtVariant {
    RtSpecFacts *facts;           /* one per parameter, then the conditions (rt_spec_len) */
    struct RtCudaFunction *cuda;  /* the variant, or the generic kernel when its compile failed */
    bool failed;                  /* the specialized compile failed (see message) */
    char *message;
    struct RtVariant *next;
} RtVariant;

/* TILE_SPECIALIZE from the environment: "0", "off", "false" or "no" turn it off; on otherwise. */
bool rt_specialize_from_env(void);
/* TILE_WARP_SPECIALIZE=1 where the ptxas program is found to assemble the result (nvJitLink ignores
 * setmaxnreg, and a warp-specialized kernel without it is far slower than the plain one). */
bool rt_warp_specialize(void);
/* Whether warp roles can be honoured at all: the ptxas program is found. Where it is not, no loop
 * gets roles, not even one whose source asks (`pipeline(N, specialize = 1)`): Target.no_warp_roles. */
bool rt_warp_roles_possible(void);
/* The facts of args (already checked by rt_check_args) for f's parameters, one per parameter
 * into facts[f->nparams], and the conditions' word (rt_conds_eval of conds, NULL: none) after
 * them; returns whether any fact is true or any condition known (false: the generic kernel). */
bool rt_spec_facts(const IrFunction *f, const RtSteps *conds, const tile_arg *args, size_t nargs, RtSpecFacts *facts);
/* The CodegenOptions.spec entry of one parameter's facts. */
CodegenParamSpec rt_spec_unpack(RtSpecFacts facts);
/* The facts (rt_spec_len of them) as text for messages and docs: "x:align16,unit(1),div16(0,1)
 * y:... if:10" (if: each condition's value, x when not known; "generic" when none is true). */
void rt_spec_text(const IrFunction *f, const RtSteps *conds, const RtSpecFacts *facts, Strbuf *out);
/* The kernel cache key of a variant: the generic kernel's key when no fact is true, else the
 * hash of that key and every parameter's facts, and the conditions' word when one is known
 * (facts[nparams]: so a disk entry never serves a variant compiled for other conditions). */
CacheKey rt_spec_cache_key(const CacheKey *generic, const RtSpecFacts *facts, uint32_t nparams);
/* The function a launch of k with args uses on the cuda device, compiled (or found in the
 * kernel cache) and loaded the first time a launch needs it: the variant for the arguments'
 * facts, else (no fact, TILE_SPECIALIZE=0, or the variant failed) the generic kernel. On failure
 * (the generic kernel does not compile, or not a cuda context) returns the status with the
 * context's message set and *out NULL. */
tile_status rt_cuda_select(tile_kernel *k, const tile_arg *args, size_t nargs, struct RtCudaFunction **out);
/* How a kernel's functions are made: compile(user, k, facts) compiles and loads k for facts
 * (rt_spec_len of them), or the generic kernel when facts is NULL; NULL on failure, with
 * the status in *st and the reason in err. The cuda device passes its compiler; tests a fake. */
typedef struct RtCompiler {
    struct RtCudaFunction *(*compile)(void *user, tile_kernel *k, const RtSpecFacts *facts, tile_status *st,
                                      Strbuf *err);
    void *user;
} RtCompiler;
/* The lazy choice behind rt_cuda_select, with no device: the function for facts (NULL: the
 * generic kernel; facts with no bit set are not allowed), compiling through comp only what is
 * missing: the variant on the first launch with these facts (remembered, failed or not), the
 * generic kernel when a launch needs it (no facts, or a variant that failed). NULL when the
 * generic kernel was needed and failed (now or before), with *st and err set. */
struct RtCudaFunction *rt_kernel_function_for(tile_kernel *k, const RtSpecFacts *facts, const RtCompiler *comp,
                                              tile_status *st, Strbuf *err);
/* How many variants k has compiled (for tests and tools). */
size_t rt_kernel_num_variants(tile_kernel *k);
/* The tensor maps (TMA copies) of the function a launch of k with args uses: 0 without a TMA
 * ring (for tests). */
int rt_cuda_num_tma_maps(tile_kernel *k, const tile_arg *args, size_t nargs);

/* ---- the launch fast path (launch.c) ---------------------------------------------------------
 * A kernel's grid region compiled into steps over at most RT_GRID_MAX_REGS scalar registers:
 * NULL from rt_grid_compile when the region needs the VM. rt_grid_eval computes the grid for
 * arguments already checked, exactly as vm_eval_grid does; false when the VM must decide (a
 * value out of range, an op the VM would reject), never an error of its own. */
enum { RT_GRID_MAX_REGS = 64 };
RtGrid *rt_grid_compile(const IrFunction *f);
bool rt_grid_eval(const RtGrid *g, const tile_arg *args, size_t nargs, int64_t grid[3]);
/* rt_grid_eval with num_sms() = num_sms (rt_grid_eval uses the VM's, vm_num_sms). */
bool rt_grid_eval_sms(const RtGrid *g, const tile_arg *args, size_t nargs, int num_sms, int64_t grid[3]);
void rt_grid_free(RtGrid *g);
/* f's launch-known conditions (passes/conds.c) compiled into steps the same way, or NULL when it
 * has none or they need more than the steps (then no launch knows them); free with rt_grid_free.
 * rt_conds_eval: their word for args (already checked), 0 for NULL or when a step declines. */
RtSteps *rt_conds_compile(const IrFunction *f);
RtSpecFacts rt_conds_eval(const RtSteps *c, const tile_arg *args, size_t nargs);
uint32_t rt_conds_count(const RtSteps *c);
/* Steps written for a disk entry (NULL writes "none") and read back for the function f (its
 * parameters bound the registers and axes they may name): NULL with *used the bytes taken when
 * the text says "none", NULL with *used 0 when it is malformed. */
void rt_steps_encode(const RtSteps *s, Strbuf *out);
RtSteps *rt_steps_decode(const uint8_t *p, size_t n, const IrFunction *f, size_t *used);

/* A kernel's launch interface (interface.c): its IR function with an empty body, the parameters'
 * names, which of them it may write (written, or NULL: found in f's body, which a function read
 * from an interface has not), the locations and the conditions' steps, as bytes for a disk entry
 * (false for what cannot be one), and read back (NULL with the reason in err for anything that is
 * not one, for kernel; its locations name source, the program's; *written: one flag per
 * parameter, to free). */
bool rt_interface_encode(const IrFunction *f, const RtSteps *conds, const bool *written, Strbuf *out);
IrModule *rt_interface_decode(const uint8_t *p, size_t n, const char *kernel, const SourceFile *source,
                              IrFunction **f, RtSteps **conds, bool **written, Strbuf *err);
/* Whether the full function f and its conditions have exactly the interface bytes given. */
bool rt_interface_matches(const IrFunction *f, const RtSteps *conds, const uint8_t *interface, size_t n);

/* The launch memo (launch.c): a cuda launch with arguments of a signature seen before skips the
 * argument checks, the facts, the choice of function and the grid, and reuses what the first
 * launch with that signature decided. A signature is what those read: kinds, dtypes, ranks,
 * sizes, strides, scalar values, and per data pointer whether it is null and its address
 * modulo 16; never the pointer itself. */
enum { RT_MEMO_MAX_ARGS = 64 };
typedef struct RtMemoArg {
    int kind;                 /* tile_arg_kind */
    tile_dtype dtype;         /* a tensor's */
    int rank;
    int64_t value;            /* an int; a float's bits; a tensor: its address mod 16, or 16 if null */
    int64_t shape[TILE_MAX_RANK], strides[TILE_MAX_RANK];
} RtMemoArg;
struct RtLaunchMemo {
    tile_kernel *kernel;      /* the kernel launched: the memo's own, or its autotuned candidate */
    void *function;           /* the cuda device's RtCudaFunction of kernel */
    const char *report;       /* an autotuned kernel's report of this choice (owned by it), or NULL */
    unsigned grid[3];         /* every dimension at least 1 and within the GPU's limits */
    uint32_t nargs;
    RtMemoArg args[];
};
/* The memo of k for args' signature, or NULL. No lock, no allocation. */
const RtLaunchMemo *rt_launch_memo_find(tile_kernel *k, const tile_arg *args, size_t nargs);
/* Remembers in k, for args' signature (args checked, the launch about to be made), the kernel
 * launched (k, or the candidate an autotuned k chose, with its report), its function and the
 * grid; nothing when k's slots are full or there are more than RT_MEMO_MAX_ARGS arguments. */
void rt_launch_memo_add(tile_kernel *k, const tile_arg *args, size_t nargs, tile_kernel *kernel, void *function,
                        const char *report, const int64_t grid[3]);
void rt_launch_memo_free(tile_kernel *k);
/* The cuda launch of k when args' signature has a memo: *st is the launch's status and true is
 * returned; false (nothing done) when there is none, and the caller takes the full path. */
bool rt_cuda_launch_memo(tile_kernel *k, const tile_arg *args, size_t nargs, tile_stream *stream, tile_status *st);

/* ---- autotuning (autotune.c) ----------------------------------------------------------------
 * A kernel with an autotune(...) clause, got with none of the constants its candidates bind,
 * chooses a candidate per shape bucket at launch (lang/SPEC.md "Autotuning"). */
/* k's autotuning state, or NULL when k has no clause or a constant given fixes a tuned one. */
RtAutotune *rt_autotune_new(tile_kernel *k);
void rt_autotune_free(RtAutotune *t);
/* Launches k (k->autotune set; arguments checked against k) through its chosen candidate. */
tile_status rt_autotune_launch(tile_kernel *k, const tile_arg *args, size_t nargs, tile_stream *stream);
/* rt_cuda_launch of kernel (args checked against it) whose memo goes to owner: owner is kernel,
 * or the autotuned kernel whose candidate it is, report that choice's report. */
tile_status rt_cuda_launch_for(tile_kernel *owner, tile_kernel *kernel, const tile_arg *args, size_t nargs,
                               tile_stream *stream, const char *report);
/* Records report as the latest launch's of autotuned k (a memo hit's). */
void rt_autotune_note_latest(tile_kernel *k, const char *report);
/* Launches k exactly as compiled (no autotuning), arguments already checked by rt_check_args. */
tile_status rt_launch_checked(tile_kernel *k, const tile_arg *args, size_t nargs, tile_stream *stream);
/* For tests: when set, the time (ms) that timing reports for each candidate (0-based), in place
 * of the measured one; the candidates still run. */
extern double (*rt_autotune_test_times)(uint32_t candidate);
/* For tests: how many threads compiled the candidates of the latest tuning on a GPU before it
 * timed them (0: none did, the timing's launches compiled them one by one). */
extern _Atomic int rt_autotune_prebuild_last_threads;

/* ---- ahead-of-time compilation (aot.c) ------------------------------------------------------- */
/* A cubin (or PTX when no assembler is installed) of f for arch, with its launch shape. */
tile_status rt_backend_image(const IrFunction *f, const char *arch, int num_warps, Strbuf *image, unsigned *threads,
                             unsigned *shared_bytes, Strbuf *err);

#endif
