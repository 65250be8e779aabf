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

#include "frontend/frontend.h"
#include "tile/tile.h"

struct tile_context {
    tile_device_kind device;
    int ordinal;
    char name[160];
    pthread_mutex_t lock;
    struct RtCuda *cuda;     /* the cuda device's state (device_cuda.c); NULL on the VM */
};

struct tile_kernel {
    tile_program *program;
    char *name;
    ConstBinding *consts;    /* as given, sorted by name */
    size_t nconsts;
    IrModule *module;
    IrFunction *function;
    struct RtCudaFunction *cuda; /* the loaded GPU function (owned by the context's cache) */
    tile_kernel *next;
};

struct tile_program {
    tile_context *ctx;
    AstFile *ast;
    pthread_mutex_t lock;
    tile_kernel *kernels;
};

/* Records the message of a failed call for tile_context_message (per thread). */
tile_status rt_fail(const tile_context *ctx, tile_status status, const char *fmt, ...) TILE_PRINTF(3, 4);

/* Lowers and optimizes one kernel specialization into a new module. On failure returns NULL and
 * the diagnostics are in d. dump_after/dump: see PassOptions. */
IrModule *rt_compile(AstFile *ast, const char *kernel, const ConstBinding *consts, size_t nconsts,
                     const char *dump_after, Strbuf *dump, DiagList *d, IrFunction **out);

/* ---- the cuda device (runtime/device_cuda.c) ---------------------------------------------
 * Each returns a status and, on failure, has recorded the message with rt_fail (the context's
 * for everything but rt_cuda_open, which records it for NULL: the context does not exist yet). */
tile_status rt_cuda_open(tile_context *ctx, int ordinal);
void rt_cuda_close(tile_context *ctx);
tile_status rt_cuda_alloc(tile_context *ctx, size_t bytes, void **out);
tile_status rt_cuda_free(tile_context *ctx, void *ptr);
tile_status rt_cuda_copy(tile_context *ctx, void *dst, const void *src, size_t bytes, bool to_device);
tile_status rt_cuda_synchronize(tile_context *ctx);
/* Compiles k->function for the device (or finds it in the cache) and sets k->cuda. */
tile_status rt_cuda_prepare(tile_context *ctx, tile_kernel *k);
/* Launches k with arguments already checked by rt_check_args. */
tile_status rt_cuda_launch(tile_kernel *k, const tile_arg *args, size_t nargs);
/* The architecture name the device compiles for ("sm_90a"), or NULL below sm_80. */
const char *rt_cuda_arch(const tile_context *ctx);
struct CudaDevice;
struct CudaFunction;
/* For benchmarks that compare with bare driver calls: the device of a cuda context, and the
 * loaded function of a kernel prepared on it (false if there is none). */
struct CudaDevice *rt_cuda_device(const tile_context *ctx);
bool rt_cuda_kernel_function(const tile_kernel *k, struct CudaFunction **fn, unsigned *threads,
                             unsigned *shared_bytes);
/* Generates code for f without a device: LLVM IR text, PTX text or a cubin (binary) appended
 * to out, for arch ("sm_80", "sm_90a"). On failure the status says what kind (UNSUPPORTED when
 * the code generator cannot handle the kernel yet or no backend is built in) and err says why. */
tile_status rt_backend_emit(const IrFunction *f, const char *arch, int num_warps, tile_emit_kind kind,
                            Strbuf *out, Strbuf *err);

#endif
