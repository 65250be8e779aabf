/*
 * tile.h: the public C API of libtile.
 *
 * A context is bound to one device (the CPU virtual machine or a CUDA GPU). A program is a
 * compiled .tile source; a kernel is one of its kernels specialized by compile-time constants.
 * Tensors are described by element type, data pointer (device memory of the context's device:
 * host memory for the VM, where any host pointer serves, not only tile_alloc's), shape and
 * strides in elements. Every call returns a tile_status;
 * on failure the context holds a readable message (compiler diagnostics included), which the
 * library never prints.
 *
 * Thread safety: a context may be used from several threads at once.
 */
#ifndef TILE_TILE_H
#define TILE_TILE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TILE_API __attribute__((visibility("default")))
#else
#define TILE_API
#endif

typedef enum tile_status {
    TILE_OK = 0,
    TILE_ERROR_INVALID_ARGUMENT, /* a bad argument to an API call or a kernel launch */
    TILE_ERROR_COMPILE,          /* the source has errors: see tile_context_message */
    TILE_ERROR_NOT_FOUND,        /* no such kernel, file or device */
    TILE_ERROR_DEVICE,           /* the device failed (driver error, missing driver) */
    TILE_ERROR_OUT_OF_MEMORY,
    TILE_ERROR_UNSUPPORTED,      /* valid, but not supported on this device (yet) */
    TILE_ERROR_INTERNAL,         /* a bug of the compiler ("internal error in pass X: ..."), not of
                                    the source: please report it with the source */
    TILE_ERROR_CANCELLED,        /* a VM launch stopped by tile_context_cancel */
} tile_status;

typedef enum tile_device_kind {
    TILE_DEVICE_DEFAULT = 0, /* $TILE_DEVICE if set, else cuda when a GPU is present, else vm */
    TILE_DEVICE_VM,
    TILE_DEVICE_CUDA,
} tile_device_kind;

/* Element types, encoded as kind << 24 | bits << 16 | exp << 8 | man. */
typedef uint32_t tile_dtype;
#define TILE_DTYPE_BOOL_KIND 0u
#define TILE_DTYPE_INT_KIND 1u
#define TILE_DTYPE_UINT_KIND 2u
#define TILE_DTYPE_FLOAT_KIND 3u
#define TILE_DTYPE(kind, bits, exp, man) \
    ((tile_dtype)(((kind) << 24) | ((bits) << 16) | ((exp) << 8) | (man)))
#define TILE_BOOL TILE_DTYPE(TILE_DTYPE_BOOL_KIND, 1, 0, 0)
#define TILE_INT(bits) TILE_DTYPE(TILE_DTYPE_INT_KIND, bits, 0, 0)
#define TILE_UINT(bits) TILE_DTYPE(TILE_DTYPE_UINT_KIND, bits, 0, 0)
#define TILE_FLOAT(exp, man) TILE_DTYPE(TILE_DTYPE_FLOAT_KIND, 1 + (exp) + (man), exp, man)
#define TILE_I8 TILE_INT(8)
#define TILE_I32 TILE_INT(32)
#define TILE_I64 TILE_INT(64)
#define TILE_U8 TILE_UINT(8)
#define TILE_U32 TILE_UINT(32)
#define TILE_F16 TILE_FLOAT(5, 10)
#define TILE_BF16 TILE_FLOAT(8, 7)
#define TILE_F32 TILE_FLOAT(8, 23)
#define TILE_F64 TILE_FLOAT(11, 52)
#define TILE_F8E4M3 TILE_FLOAT(4, 3)
#define TILE_F8E5M2 TILE_FLOAT(5, 2)

enum { TILE_MAX_RANK = 6 };

/* A tensor in device memory. Strides are in elements. Elements narrower than a byte are
 * packed: the element at linear offset e (the sum of index * stride) occupies bits
 * [e * bits, (e + 1) * bits) of the buffer, least significant bit first. */
typedef struct tile_tensor {
    tile_dtype dtype;
    void *data;
    int rank;
    int64_t shape[TILE_MAX_RANK];
    int64_t strides[TILE_MAX_RANK];
} tile_tensor;

typedef enum tile_arg_kind { TILE_ARG_TENSOR, TILE_ARG_INT, TILE_ARG_FLOAT } tile_arg_kind;

typedef struct tile_arg {
    tile_arg_kind kind;
    tile_tensor tensor;      /* TILE_ARG_TENSOR */
    int64_t i;               /* TILE_ARG_INT: scalar integer (and bool) parameters */
    double f;                /* TILE_ARG_FLOAT: scalar float parameters */
} tile_arg;

typedef struct tile_constant {
    const char *name;
    int is_float;
    int64_t i;
    double f;
} tile_constant;

typedef struct tile_context tile_context;
typedef struct tile_program tile_program;
typedef struct tile_kernel tile_kernel;
typedef struct tile_stream tile_stream; /* NULL: the device's default stream */

/* ---- contexts ------------------------------------------------------------------------- */
TILE_API tile_status tile_context_create(tile_device_kind device, int ordinal, tile_context **out);
TILE_API void tile_context_destroy(tile_context *ctx);
TILE_API tile_device_kind tile_context_device(const tile_context *ctx);
/* "vm (CPU interpreter)" or "cuda:0 (NVIDIA H100 80GB HBM3, sm_90)". */
TILE_API const char *tile_context_device_name(const tile_context *ctx);
/* What num_sms() gives a kernel launched on ctx: the GPU's multiprocessor count on cuda (132 on
 * an H200), the VM's stand-in count on the VM ($TILE_VM_NUM_SMS when it is an integer in
 * 1..4096, else 4; read at each call). For a caller that picks a kernel or its split by the
 * device's size (tile.stdlib.gemm's split-K rule). 0 for NULL. */
TILE_API int tile_context_num_sms(const tile_context *ctx);
/* The message of the last failed call on this thread with this context ("" if none); every
 * failing call sets its own. With NULL: the message of the last failed call on this thread
 * that had no context to report to (tile_context_create, a NULL context or object, tile_pack). */
TILE_API const char *tile_context_message(const tile_context *ctx);
/* Asks every VM launch in progress on ctx, from any thread, to stop: its workers stop before
 * the next block or loop iteration and it returns TILE_ERROR_CANCELLED (what ran stays
 * written). Launches that start after the call are not affected. On cuda it does nothing (a
 * launch there is already asynchronous). Thread-safe; NULL is ignored. */
TILE_API void tile_context_cancel(tile_context *ctx);

/* ---- memory of the context's device ------------------------------------------------------ */
TILE_API tile_status tile_alloc(tile_context *ctx, size_t bytes, void **out);
TILE_API tile_status tile_free(tile_context *ctx, void *ptr);
TILE_API tile_status tile_copy_to_device(tile_context *ctx, void *dst, const void *src, size_t bytes);
TILE_API tile_status tile_copy_to_host(tile_context *ctx, void *dst, const void *src, size_t bytes);
TILE_API tile_status tile_synchronize(tile_context *ctx);

/* ---- streams ---------------------------------------------------------------------------------- */
/* Launches on one stream run in order; launches on different streams may overlap. On the VM a
 * launch completes before it returns, so streams only order what is already ordered. */
TILE_API tile_status tile_stream_create(tile_context *ctx, tile_stream **out);
TILE_API tile_status tile_stream_synchronize(tile_stream *stream);
TILE_API void tile_stream_destroy(tile_stream *stream);
/* A tile_stream over a CUstream that someone else created (PyTorch's current stream, CuPy's):
 * launches on it are ordered with that library's work. The CUstream must belong to the
 * context's GPU; libtile never destroys it (tile_stream_destroy frees only the wrapper), so it
 * must outlive the wrapper's last use. NULL wraps the default stream. On the VM any value is
 * accepted and ignored. A cuda context always uses its GPU's primary context
 * (cuDevicePrimaryCtxRetain), the one the CUDA runtime and so PyTorch use, so pointers and
 * streams pass between them without copies. */
TILE_API tile_status tile_stream_wrap(tile_context *ctx, void *custream, tile_stream **out);

/* ---- programs and kernels -------------------------------------------------------------- */
/* `name` is used in diagnostics ("softmax.tile:3:5: error: ..."). A name ending in ".ir" holds
 * IR text as `tilec build --emit ir` prints it (docs/IR.md) instead of tile source: it is read and
 * verified, its kernels take no compile-time constants, and it runs through the same passes. The
 * same name and text as a program still alive on ctx give that program again, with its compiled
 * kernels (counted: each call needs its tile_program_destroy); TILE_CACHE=0 turns this off.
 * Destroy programs before their context.
 * A source has at most TILE_MAX_SOURCE_BYTES bytes (a larger one is TILE_ERROR_INVALID_ARGUMENT;
 * reading a file stops there, so an endless one such as /dev/zero is an error, not an endless
 * read); memory that runs out while reading is TILE_ERROR_OUT_OF_MEMORY. */
enum { TILE_MAX_SOURCE_BYTES = 16 << 20 };
TILE_API tile_status tile_program_from_string(tile_context *ctx, const char *name,
                                              const char *source, size_t len, tile_program **out);
TILE_API tile_status tile_program_from_file(tile_context *ctx, const char *path, tile_program **out);
TILE_API void tile_program_destroy(tile_program *program);

/* Specializes a kernel by constants (the others take their defaults) and compiles it for the
 * context's device. The kernel belongs to the program and lives until it is destroyed. On a
 * cuda context this runs the frontend and the passes (errors in the source are reported here)
 * and checks the element types; the GPU code is generated by the first launch, for what that
 * launch needs (docs/RUNTIME.md, "Compiling for the GPU"). */
TILE_API tile_status tile_program_get_kernel(tile_program *program, const char *kernel,
                                             const tile_constant *constants, size_t nconstants,
                                             tile_kernel **out);
/* The kernels of a program, in source order. */
TILE_API int tile_program_num_kernels(const tile_program *program);
TILE_API const char *tile_program_kernel_name(const tile_program *program, int index);

/* What a kernel expects for each parameter (for tools and generic launchers). */
typedef struct tile_param_info {
    const char *name;
    tile_arg_kind kind;      /* TILE_ARG_TENSOR, or the scalar's kind */
    tile_dtype dtype;        /* element type of the tensor or scalar */
    int rank;                /* tensors */
    const char *dim_symbols[TILE_MAX_RANK]; /* "M", or NULL where the size is fixed */
    int64_t dim_sizes[TILE_MAX_RANK];       /* fixed sizes */
    int written;             /* tensors: 1 when the kernel may write it (a store or atomic through
                                it, or a use the compiler does not follow), 0 when it only reads
                                it; a caller can refuse read-only memory for a written one */
} tile_param_info;
TILE_API int tile_kernel_num_params(const tile_kernel *kernel);
TILE_API tile_status tile_kernel_param(const tile_kernel *kernel, int index, tile_param_info *out);

/* Checks every argument (count, kinds, element types, ranks, shapes against the symbolic
 * sizes, null pointers) before anything runs, then launches on the stream. On a cuda context a
 * launch that needs a function not compiled yet (the first, and one whose tensors' facts are
 * new) compiles it first, so it may fail with TILE_ERROR_COMPILE, _UNSUPPORTED or _INTERNAL. */
TILE_API tile_status tile_kernel_launch(tile_kernel *kernel, const tile_arg *args, size_t nargs,
                                        tile_stream *stream);

/* How the latest launch of kernel chose among the candidates of its autotune(...) clause
 * (lang/SPEC.md "Autotuning"): the shape bucket, where the choice came from (timed now, the disk
 * cache, TILE_AUTOTUNE=0, the VM's first candidate), each candidate's time and the winner, as
 * lines of text in *out (free it with tile_string_free). *out is NULL when the kernel does not
 * autotune (no clause, or a constant given fixes a tuned one) or has not been launched. */
TILE_API tile_status tile_kernel_autotune_report(tile_kernel *kernel, char **out);
/* The specialized variants that launches of kernel compiled on a cuda context, one line each,
 * newest first: `variant <facts>` with the launch facts they were compiled for (per tensor
 * parameter: align16, strides16, unit(dims), div16(dims); `if:` the values of the kernel's
 * launch-known conditions, docs/RUNTIME.md "Specialization"), and `(failed: the generic kernel
 * runs)` after one that did not compile. *out (free it with tile_string_free) is NULL when there
 * is none (the VM, no launch yet, or only the generic kernel). */
TILE_API tile_status tile_kernel_variants_report(tile_kernel *kernel, char **out);

/* Compiles a kernel without running it and returns it in *out (free it with tile_string_free;
 * *len is its length in bytes, which matters for the binary cubin):
 *   TILE_EMIT_IR     the IR after the pass pipeline, or after the pass named dump_after
 *   TILE_EMIT_LLVM   the LLVM IR of the GPU code generator (text)
 *   TILE_EMIT_PTX    PTX assembly (text)
 *   TILE_EMIT_CUBIN  a cubin (binary), assembled by nvJitLink or ptxas
 * The GPU forms need no GPU: they are made for options->arch ("sm_80", "sm_90a"; NULL: the
 * context's GPU when it is a cuda context, else sm_90a). TILE_ERROR_UNSUPPORTED when the code
 * generator cannot handle the kernel yet, libtile has no backend, or (cubin) no assembler is
 * installed; the message says which. kernel NULL (GPU forms only): every kernel of the program in
 * one module, as nvcc makes one per .cu file, each specialized by the constants it declares (a
 * constant that no kernel declares is an error). */
typedef enum tile_emit_kind {
    TILE_EMIT_IR = 0,
    TILE_EMIT_LLVM,
    TILE_EMIT_PTX,
    TILE_EMIT_CUBIN,
} tile_emit_kind;
typedef struct tile_emit_options {
    const char *dump_after;  /* pass name or NULL (TILE_EMIT_IR only) */
    const char *arch;        /* GPU forms: "sm_80" or "sm_90a"; NULL: see above */
    int num_warps;           /* GPU forms: threads per block / 32 (tile_num_warps_valid); 0: the
                                kernel's warps(N), else the code generator's default */
} tile_emit_options;
TILE_API tile_status tile_program_emit(tile_program *program, const char *kernel,
                                       const tile_constant *constants, size_t nconstants,
                                       tile_emit_kind kind, const tile_emit_options *options,
                                       char **out, size_t *len);
TILE_API void tile_string_free(char *s);
/* How long the stages of the latest compile on this thread took, in seconds (tilec build
 * --time): parse is set by tile_program_from_string/_file (0 when the program was already in
 * the context's memory), the others are reset by each tile_program_emit and summed over the
 * kernels it compiles (tile_program_get_kernel, and on a cuda context a launch that compiles,
 * add to them without resetting; so do the threads that compile an autotuned kernel's candidates
 * for its first tuning); a stage that did not run is 0. */
typedef struct tile_compile_times {
    double parse;    /* lexing and parsing the source */
    double lower;    /* one kernel specialization lowered to IR (the rest of the frontend) */
    double passes;   /* the pass pipeline, the GPU passes included */
    double codegen;  /* tile IR -> LLVM IR */
    double llvm;     /* LLVM's optimizer and NVPTX code generator -> PTX */
    double assemble; /* ptxas or nvJitLink -> cubin */
    double llvm_optimize; /* the part of llvm spent in LLVM's IR pipeline (default<O2>) */
    double cache;    /* GPU context: the cache key, and reading and checking a disk entry */
    double load;     /* GPU context: the driver loading the module (cuModuleLoadData) */
} tile_compile_times;
TILE_API void tile_compile_times_get(tile_compile_times *out);
/* The names of the passes, one per line, in pipeline order. */
TILE_API const char *tile_pass_names(void);

/* ---- ahead-of-time compilation (docs/AOT.md) ---------------------------------------------
 * `tilec build --emit c-header` writes C code that embeds, per kernel, its .tile source, its
 * constants and one image per GPU architecture, and calls the functions below. */
typedef struct tile_image {
    const char *arch;           /* "sm_80", "sm_90a" */
    const unsigned char *data;  /* a cubin (an ELF file), or PTX text (the driver compiles it) */
    size_t size;                /* bytes of data */
    unsigned threads;           /* threads per block the code was generated for */
    unsigned shared_bytes;      /* dynamic shared memory per block */
} tile_image;

/* tile_program_get_kernel with precompiled images: on a cuda context the kernel is loaded from
 * the image that the device can run (an sm_90a cubin on compute capability 9.0, an sm_80 cubin
 * on 8.x, PTX on any newer GPU) without running the code generator; when none fits, or the
 * driver refuses it, the kernel is compiled as usual when libtile has the backend, else the call
 * fails with TILE_ERROR_UNSUPPORTED. The IR is always rebuilt from the program's source (for
 * the argument checks and the grid). On the VM the images are ignored. The images must stay
 * valid while the program lives (a program caches kernels by name and constants: the first
 * call for a specialization decides how it is loaded). */
TILE_API tile_status tile_program_get_kernel_with_images(tile_program *program, const char *kernel,
                                                         const tile_constant *constants, size_t nconstants,
                                                         const tile_image *images, size_t nimages,
                                                         tile_kernel **out);

/* What generated code knows about one of its kernels (static data). */
typedef struct tile_aot_kernel {
    const char *source_name;    /* the .tile file's name, for diagnostics */
    const char *source;         /* its text; one array per file, shared by its kernels */
    size_t source_len;
    const char *kernel;
    const tile_constant *constants;
    size_t nconstants;
    const tile_image *images;
    size_t nimages;
} tile_aot_kernel;

/* The kernel that desc describes, on ctx: the context parses each distinct source (by its
 * address) once, keeps the program until the context is destroyed, and gets the kernel with
 * tile_program_get_kernel_with_images. Thread-safe. */
TILE_API tile_status tile_context_aot_kernel(tile_context *ctx, const tile_aot_kernel *desc, tile_kernel **out);

/* Options of tile_program_emit_c. */
typedef struct tile_aot_options {
    const char *prefix;         /* identifiers are <prefix>_<kernel>_launch; NULL: the source's
                                   file name without directories and extension */
    const char *header_name;    /* what the source #includes; NULL: "<prefix>.h" */
    const char *const *kernels; /* the kernels to emit; NULL (or nkernels 0): every kernel */
    size_t nkernels;
    const char *const *archs;   /* "sm_80", "sm_90a"; NULL (or narchs 0): both */
    size_t narchs;
    int num_warps;              /* as tile_emit_options.num_warps */
    int require_images;         /* nonzero: fail when an image cannot be made (no backend, no
                                   assembler, a kernel the code generator does not support);
                                   zero: leave it out, note why, and rely on JIT or the VM */
} tile_aot_options;

/* Generates C code for kernels of a program: *header (declarations: one typed launch function
 * per kernel) and *source (the embedded source, constants and images, and the launch functions),
 * both valid C11 and C++; *notes (may be NULL) receives what was left out and why ("" if
 * nothing). Free each with tile_string_free. constants apply to every kernel that declares
 * them; one that no emitted kernel declares is an error. */
TILE_API tile_status tile_program_emit_c(tile_program *program, const tile_constant *constants, size_t nconstants,
                                         const tile_aot_options *options, char **header, char **source,
                                         char **notes);

/* Convenience: a contiguous (row-major) tensor description. When the element count overflows
 * int64, the strides from the overflow on are INT64_MAX, which every launch rejects. */
TILE_API tile_tensor tile_tensor_contiguous(tile_dtype dtype, void *data, int rank,
                                            const int64_t *shape);
/* Nonzero when num_warps (threads per block / 32) is one the GPU path takes: 1, 2, 4, 8, 16 or
 * 32, the rule of the language's warps(N) and of every num_warps option. */
TILE_API int tile_num_warps_valid(int num_warps);
/* Bytes needed for a contiguous tensor of numel elements of dtype (sub-byte types packed);
 * SIZE_MAX when that does not fit in a size_t (an allocation of it fails). */
TILE_API size_t tile_dtype_bytes(tile_dtype dtype, int64_t numel);

/* Host-side conversion between doubles and any element type, in the packed memory format
 * described at tile_tensor (rounding to nearest even, saturating as the VM does). dst of
 * tile_pack must hold tile_dtype_bytes(dtype, n) bytes. */
TILE_API tile_status tile_pack(tile_dtype dtype, const double *src, int64_t n, void *dst);
TILE_API tile_status tile_unpack(tile_dtype dtype, const void *src, int64_t n, double *dst);

TILE_API const char *tile_status_name(tile_status status);
TILE_API const char *tile_version(void);

#ifdef __cplusplus
}
#endif
#endif
