/*
 * backend.h: the GPU code generator's interface: LLVM IR -> PTX (LLVM's NVPTX backend, through
 * the LLVM-C API) -> cubin (ptxas or nvJitLink).
 *
 * Only backend/ includes llvm-c/. This header names LLVM's handles by the opaque struct types
 * that llvm-c/Types.h declares (an identical typedef is legal C11), so that runtime/ and the
 * tests can drive the backend without LLVM's headers. A module lives in an LLVM context; the
 * caller owns both (llvm_context_free disposes a context and every module still in it).
 *
 * target.c sets the NVPTX target up once (thread-safe), checks a module with LLVM's verifier,
 * runs the O3 pipeline and emits PTX for one architecture; ptxas.c turns PTX into a cubin. Every
 * failure is returned as text appended to a Strbuf; nothing here prints or exits. (LLVM itself
 * may still abort on an internal error in code generation; the verifier runs first so that a
 * malformed module is an error, not a crash.)
 */
#ifndef TILE_BACKEND_H
#define TILE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "ir/ir.h"
#include "ir/tma.h"
#include "support/support.h"

typedef struct LLVMOpaqueContext *LLVMContextRef;
typedef struct LLVMOpaqueModule *LLVMModuleRef;
typedef struct LLVMOpaqueValue *LLVMValueRef;

/* The GPU architectures code is generated for. sm_90a is Hopper with its arch-specific
 * instructions (wgmma, setmaxnreg): its code runs on compute capability 9.0 only. */
typedef enum BackendArch {
    BACKEND_ARCH_SM80,  /* Ampere and later through PTX JIT; cubins run on 8.x */
    BACKEND_ARCH_SM90A, /* Hopper (H100, H200) */
    BACKEND_ARCH_COUNT
} BackendArch;

const char *backend_arch_name(BackendArch arch); /* "sm_80", "sm_90a" */
bool backend_arch_parse(const char *name, BackendArch *out);
/* The architecture to compile for on a device of compute capability major.minor: sm_90a on
 * 9.0, sm_80 on every other capability >= 8.0 (newer GPUs JIT its PTX); false below 8.0. */
bool backend_arch_for_capability(int major, int minor, BackendArch *out);

/* ---- target.c: LLVM IR -> PTX ------------------------------------------------------------- */
typedef struct PtxOptions {
    BackendArch arch;
    int opt_level;        /* 0-3: the code generator's level and the IR pipeline (target.c's light
                             pipeline at 2, default<On> otherwise) */
    const char *features; /* extra NVPTX features, e.g. "+ptx86"; NULL: the arch's minimum PTX */
} PtxOptions;

/* The defaults: opt_level 2 (target.c says why), no extra features. */
PtxOptions llvm_ptx_options(BackendArch arch);
/* Whether LLVM's loop strength reduction runs (TILE_LLVM_LSR=1; off by default, target.c says
 * why): it changes the code, so the kernel cache's key includes it. */
bool backend_llvm_lsr(void);
/* The IR pipeline TILE_LLVM_PIPELINE names (read once per process), or NULL for the default: it
 * changes the code, so the kernel cache's key includes it. */
const char *backend_llvm_pipeline(void);

/* Registers the NVPTX target with LLVM; called by everything below, safe from any thread. */
bool llvm_init_nvptx(Strbuf *err);

LLVMContextRef llvm_context_new(void);
void llvm_context_free(LLVMContextRef context); /* and every module in it */
void llvm_module_free(LLVMModuleRef module);
/* Parses LLVM assembly (the textual IR); NULL with the parser's message in err on failure. The
 * module is not verified. */
LLVMModuleRef llvm_parse_ir(LLVMContextRef context, const char *name, const char *text,
                            size_t len, Strbuf *err);
void llvm_print_module(LLVMModuleRef module, Strbuf *out);
/* The function named name in module, or NULL. */
LLVMValueRef llvm_get_function(LLVMModuleRef module, const char *name);

/* Makes fn a kernel entry (the ptx_kernel calling convention). maxntid / reqntid, when not
 * NULL, give the block size bound / exact block size (x, y, z; 0 counts as 1). */
void llvm_mark_kernel(LLVMValueRef fn, const unsigned maxntid[3], const unsigned reqntid[3]);

/* Sets the nvptx64 triple and the data layout of arch's target machine on module. */
bool llvm_set_nvptx_target(LLVMModuleRef module, BackendArch arch, Strbuf *err);
/* Links src into dest (LLVMLinkModules2) and destroys src; false with the linker's messages in
 * err (a clash of two external definitions). */
bool llvm_link_into(LLVMModuleRef dest, LLVMModuleRef src, Strbuf *err);
/* LLVM's verifier; false with its message in err. Never aborts. */
bool llvm_verify_module(LLVMModuleRef module, Strbuf *err);
/* The whole path: target, verify, the IR pipeline, PTX text appended to ptx. The
 * module is changed in place (optimized). Thread-safe: target machines come from a pool, one
 * per compile at a time. */
bool llvm_emit_ptx(LLVMModuleRef module, const PtxOptions *options, Strbuf *ptx, Strbuf *err);
/* How long the latest llvm_emit_ptx on this thread spent in the IR pipeline and in the code
 * generator (instruction selection to PTX text), in seconds; 0 for a step it did not reach.
 * Reading them resets them, so a later compile that never reaches llvm_emit_ptx reads 0. */
void llvm_emit_times(double *optimize, double *codegen);
/* How many target machines this process has made (the pool reuses them; for the tests). */
unsigned long llvm_target_machines_made(void);

/* A hand-built test kernel, the reference for the backend's tests and the GPU smoke test:
 *   kernel vector_add(const float *a, const float *b, float *c, int n)   (global memory)
 *     i = ctaid.x * ntid.x + tid.x; if (i < n) c[i] = a[i] + b[i];
 * with maxntid = 1024. The kernel's name is "vector_add". */
LLVMModuleRef llvm_build_vector_add(LLVMContextRef context);
#define LLVM_VECTOR_ADD_NAME "vector_add"

/* ---- ptxas.c: PTX -> cubin ---------------------------------------------------------------- */
typedef enum CubinTool {
    CUBIN_TOOL_AUTO,      /* nvJitLink when it can be loaded, else ptxas */
    CUBIN_TOOL_PTXAS,     /* the ptxas program */
    CUBIN_TOOL_NVJITLINK, /* libnvJitLink.so.13 / .12, in process */
} CubinTool;

/* Where ptxas is: $TILE_PTXAS, $CUDA_HOME/bin/ptxas, /usr/local/cuda/bin/ptxas, then each
 * directory of $PATH. Copies the path into path[cap] and returns true when found; when not,
 * and when searched is not NULL, appends the places looked at to it. */
bool backend_find_ptxas(char *path, size_t cap, Strbuf *searched);
/* Whether libnvJitLink can be loaded (loaded once, then kept). */
bool backend_have_nvjitlink(void);
/* Starts loading libnvJitLink on a thread of its own, once per process, so that a compile's
 * frontend and LLVM time hide the load (dlopen of its ~100 MB: 30-90 ms on the CPU machine);
 * backend_have_nvjitlink then waits for it instead of loading. TILE_NVJITLINK_PRELOAD=0: not
 * ahead (for measuring what it saves). */
void backend_nvjitlink_preload(void);

/* Assembles PTX (len bytes, need not be NUL-terminated) for arch into a cubin appended to
 * cubin (binary: use cubin->data and cubin->len). On failure, err gets the tool's messages
 * (ptxas's stderr, nvJitLink's error log). */
bool backend_ptx_to_cubin(const char *ptx, size_t len, BackendArch arch, CubinTool tool,
                          Strbuf *cubin, Strbuf *err);

/* ---- codegen.c (and codegen_*.c): tile IR -> LLVM IR -------------------------------------- */
/* The kernel ABI, shared with the runtime and the AOT launchers. Parameters in order:
 *   a tensor of rank r:  ptr addrspace(1) data, then i32 size[0..r), then i64 stride[0..r)
 *                        (strides in elements; sizes fit in i32, checked at launch)
 *   a scalar:            i32 for bool and integers of up to 32 bits (sign- or zero-extended),
 *                        i64 for wider integers, float for floats of up to 32 bits (f16 and
 *                        bf16 scalars are passed as f32), double for f64.
 * Then one CUtensorMap per info.tma entry (a kernel with TMA rings; see CodegenTma).
 * The kernel is launched with info.threads threads per block on the grid that the kernel's grid
 * region computes (the runtime evaluates it on the host with the VM), and info.shared_bytes of
 * dynamic shared memory. */
/* What the runtime knows about one parameter at launch: the launch facts of ir/ir.h, which
 * let the code generator use wider or unmasked accesses. A generic kernel assumes none. */
typedef IrParamFacts CodegenParamSpec;

typedef struct CodegenOptions {
    BackendArch arch;
    int num_warps;           /* threads per block / 32; 0: the default (4) */
    const CodegenParamSpec *spec; /* one per kernel parameter, or NULL: the generic kernel */
} CodegenOptions;

/* A tensor map the kernel takes after the ABI's parameters (sm_90a TMA rings, codegen_tma.c): one
 * 128-byte CUtensorMap, 64-byte aligned, passed by value (grid constant), encoded at launch for
 * the tensor of parameter `param` (rank 2): box rows x columns box[0] x box[1], elements of
 * elem_bytes, the swizzle mode of `swizzle` bytes (0, 32, 64, 128), zeros outside the tensor
 * (ir_tma_maps lists them from the IR). */
enum { CODEGEN_MAX_TMA = IR_MAX_TMA_MAPS };
typedef IrTmaMap CodegenTma;

typedef struct CodegenInfo {
    unsigned threads;        /* threads per block */
    uint32_t ntma;           /* tensor maps after the ABI's parameters, in this order */
    CodegenTma tma[CODEGEN_MAX_TMA];
    unsigned shared_bytes;   /* dynamic shared memory per block */
    bool unsupported;        /* the failure is a construct the GPU backend does not support yet */
    bool internal;           /* the failure is a compiler bug: an op without a code generator
                                reached it ("internal error in pass codegen: ...") */
    double codegen_seconds;  /* compile_* only: tile IR -> LLVM IR */
    double llvm_seconds;     /* compile_* only: LLVM's optimizer and code generator -> PTX */
} CodegenInfo;

/* Lowers one kernel (after the pass pipeline: no calls left) into a new module in context.
 * On failure returns false with a message in err (naming the op and its source location). */
bool backend_codegen(LLVMContextRef context, const struct IrFunction *kernel, const CodegenOptions *options,
                     LLVMModuleRef *out, CodegenInfo *info, Strbuf *err);
/* The element types of kernel (any stage of the passes) that the code generator cannot place
 * in memory yet: false with the located message of the first ("the GPU backend does not support
 * f8e4m3 yet"). Cheap (one walk, no LLVM): the runtime asks it when a kernel is made and
 * compiles the kernel only at its first launch (docs/RUNTIME.md). */
bool backend_check_types(const struct IrFunction *kernel, Strbuf *err);
/* Whether the code generator has an emitter for op `code` (terminators: their owner's). When it
 * has none, *removed_by (if not NULL) names the pass that removes the op before code generation,
 * or is NULL. An op that reaches the backend without an emitter fails the kernel with
 * CodegenInfo.internal ("internal error in pass codegen: no code generator for op '...'"). */
bool backend_codegen_handles(OpCode code, const char **removed_by);
/* codegen + llvm_emit_ptx in a private context: PTX text appended to ptx. Thread-safe. */
bool backend_compile_ptx(const struct IrFunction *kernel, const CodegenOptions *options, Strbuf *ptx,
                         CodegenInfo *info, Strbuf *err);
/* Several kernels in one module, as nvcc makes one per .cu file (tilec build --emit ptx FILE
 * without -k): each is generated into its own module with options, the modules are linked into
 * the first, and the result is PTX (ptx true) or LLVM assembly, appended to out. infos[i] is
 * kernel i's. The kernels' names must be distinct. Thread-safe. */
bool backend_compile_many(const struct IrFunction *const *kernels, size_t n, const CodegenOptions *options, bool ptx,
                          Strbuf *out, CodegenInfo *infos, Strbuf *err);
/* codegen only, as LLVM assembly text (tilec --emit llvm). */
bool backend_compile_llvm(const struct IrFunction *kernel, const CodegenOptions *options, Strbuf *text,
                          CodegenInfo *info, Strbuf *err);

#endif
