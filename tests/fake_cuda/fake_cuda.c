/*
 * fake_cuda.c: a stand-in for the NVIDIA driver (libcuda.so.1) that lets the cuda device's host
 * side run on a machine without a GPU: opening a context, compiling and caching kernels, loading
 * modules and launching, with every driver call answered at once and nothing executed.
 *
 * Built as build/fake_cuda/libcuda.so.1; a process started with that directory first in
 * LD_LIBRARY_PATH gets it from runtime/cuda.c's dlopen("libcuda.so.1"). It reports one device,
 * "fake GPU", of compute capability 9.0 (so kernels compile for sm_90a, with TMA rings: it has
 * cuTensorMapEncodeTiled), 132 multiprocessors and 227 KB of opt-in shared memory. Device memory
 * is host memory (cuMemAlloc is an aligned malloc, copies are memcpy), modules accept any image,
 * cuLaunchKernel and cuLaunchKernelEx (with its cluster dimension) only record what they were given, and cuTensorMapEncodeTiled refuses what the real
 * driver refuses (its documented rules) and records the latest map it encoded. Tests read the records through
 * fake_cuda_stats (found with dlsym); bench_runtime --launch uses the stub to time the host side
 * of a launch alone. The signatures use plain C types of the same sizes as the driver's ABI.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef int CUresult;
enum { OK = 0, ERROR_INVALID_VALUE = 1, ERROR_OUT_OF_MEMORY = 2, ERROR_INVALID_DEVICE = 101 };

/* What the fake has seen; fake_cuda_stats returns it (the test's view of the driver). */
typedef struct FakeCudaStats {
    uint64_t launches;          /* cuLaunchKernel calls */
    unsigned grid[3], block[3]; /* of the latest launch */
    unsigned shared_bytes;
    void **params;              /* the latest launch's parameter array (valid during the call only) */
    uint64_t param0;            /* the first 8 bytes of its first parameter */
    uint64_t modules_loaded;    /* cuModuleLoadDataEx calls */
    uint64_t tensor_maps;       /* cuTensorMapEncodeTiled calls */
    uint64_t context_sets;      /* cuCtxSetCurrent calls */
    uint64_t tensor_maps_refused; /* cuTensorMapEncodeTiled calls refused (the driver's rules) */
    unsigned map_rank;          /* the latest encoded map's (innermost first, as the driver takes them) */
    uint64_t map_dims[5], map_strides[4];
    unsigned map_box[5];
    int map_swizzle;
    uint64_t cluster_launches;  /* cuLaunchKernelEx calls with a cluster dimension (also in launches) */
    unsigned cluster[3];        /* the latest launch's cluster dimension (0s: cuLaunchKernel, none) */
} FakeCudaStats;

static FakeCudaStats stats;
/* The counters are bumped atomically: the runtime calls the driver from several threads (an
 * autotuned kernel compiles and loads its candidates side by side). */
#define BUMP(counter) __atomic_fetch_add(&(counter), 1, __ATOMIC_RELAXED)
/* and the records of the latest launch and map are written under a lock (with several threads
 * launching, "the latest" is one of theirs, whole) */
static pthread_mutex_t latest_lock = PTHREAD_MUTEX_INITIALIZER;
static int context_token, function_token;
static _Thread_local void *current; /* as the driver's, per thread */

EXPORT FakeCudaStats *fake_cuda_stats(void) { return &stats; }

EXPORT CUresult cuInit(unsigned flags) { return flags ? ERROR_INVALID_VALUE : OK; }
EXPORT CUresult cuDriverGetVersion(int *v) { return *v = 13000, OK; }
EXPORT CUresult cuGetErrorName(CUresult e, const char **s) { return *s = e ? "CUDA_ERROR_FAKE" : "CUDA_SUCCESS", OK; }
EXPORT CUresult cuGetErrorString(CUresult e, const char **s) { return *s = e ? "an error of the fake driver" : "no error", OK; }
EXPORT CUresult cuDeviceGetCount(int *n) { return *n = 1, OK; }
EXPORT CUresult cuDeviceGet(int *d, int ordinal) { return ordinal ? ERROR_INVALID_DEVICE : (*d = 0, OK); }

EXPORT CUresult cuDeviceGetName(char *name, int len, int d) {
    (void)d;
    strncpy(name, "fake GPU", (size_t)len);
    if (len > 0) name[len - 1] = 0;
    return OK;
}

EXPORT CUresult cuDeviceGetAttribute(int *v, int attribute, int d) {
    (void)d;
    switch (attribute) {
    case 75: *v = 9; break;           /* compute capability major */
    case 76: *v = 0; break;           /* minor */
    case 97: *v = 232448; break;      /* max shared memory per block, opt-in */
    case 16: *v = 132; break;         /* multiprocessors */
    default: *v = 0; break;
    }
    return OK;
}

EXPORT CUresult cuDevicePrimaryCtxRetain(void **ctx, int d) { return (void)d, *ctx = &context_token, OK; }
EXPORT CUresult cuDevicePrimaryCtxRelease_v2(int d) { return (void)d, OK; }
EXPORT CUresult cuCtxSetCurrent(void *ctx) { return BUMP(stats.context_sets), current = ctx, OK; }
EXPORT CUresult cuCtxGetCurrent(void **ctx) { return *ctx = current, OK; }
EXPORT CUresult cuCtxSynchronize(void) { return OK; }

EXPORT CUresult cuMemAlloc_v2(uint64_t *ptr, size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 256, bytes ? bytes : 1) != 0) return ERROR_OUT_OF_MEMORY;
    *ptr = (uint64_t)(uintptr_t)p;
    return OK;
}
EXPORT CUresult cuMemFree_v2(uint64_t ptr) { return free((void *)(uintptr_t)ptr), OK; }
EXPORT CUresult cuMemcpyHtoD_v2(uint64_t dst, const void *src, size_t n) { return memcpy((void *)(uintptr_t)dst, src, n), OK; }
EXPORT CUresult cuMemcpyDtoH_v2(void *dst, uint64_t src, size_t n) { return memcpy(dst, (void *)(uintptr_t)src, n), OK; }
EXPORT CUresult cuMemsetD8_v2(uint64_t dst, unsigned char v, size_t n) { return memset((void *)(uintptr_t)dst, v, n), OK; }
EXPORT CUresult cuMemcpyDtoD_v2(uint64_t dst, uint64_t src, size_t n) {
    return memmove((void *)(uintptr_t)dst, (void *)(uintptr_t)src, n), OK;
}

/* A module is a heap cell (so that unloading it is checked by LSan like a real handle). */
EXPORT CUresult cuModuleLoadDataEx(void **module, const void *image, unsigned n, int *options, void **values) {
    (void)n, (void)options, (void)values;
    if (!image) return ERROR_INVALID_VALUE;
    *module = malloc(16);
    BUMP(stats.modules_loaded);
    return *module ? OK : ERROR_OUT_OF_MEMORY;
}
EXPORT CUresult cuModuleUnload(void *module) { return free(module), OK; }
EXPORT CUresult cuModuleGetFunction(void **fn, void *module, const char *name) {
    return (void)module, (void)name, *fn = &function_token, OK;
}
EXPORT CUresult cuFuncSetAttribute(void *fn, int attribute, int value) { return (void)fn, (void)attribute, (void)value, OK; }

EXPORT CUresult cuLaunchKernel(void *fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                               unsigned shared, void *stream, void **params, void **extra) {
    (void)stream, (void)extra;
    if (fn != &function_token) return ERROR_INVALID_VALUE;
    BUMP(stats.launches);
    pthread_mutex_lock(&latest_lock);
    stats.grid[0] = gx, stats.grid[1] = gy, stats.grid[2] = gz;
    stats.block[0] = bx, stats.block[1] = by, stats.block[2] = bz;
    stats.shared_bytes = shared;
    stats.params = params;
    if (params && params[0]) memcpy(&stats.param0, params[0], 8);
    stats.cluster[0] = stats.cluster[1] = stats.cluster[2] = 0;
    pthread_mutex_unlock(&latest_lock);
    return OK;
}

/* cuLaunchKernelEx's configuration and attributes (the driver's ABI: CUlaunchConfig, CUlaunchAttribute) */
typedef struct FakeLaunchAttribute {
    int id;
    char pad[4];
    union {
        char bytes[64];
        unsigned dim[3];
    } value;
} FakeLaunchAttribute;
typedef struct FakeLaunchConfig {
    unsigned grid[3], block[3], shared;
    void *stream;
    FakeLaunchAttribute *attrs;
    unsigned nattrs;
} FakeLaunchConfig;
enum { FAKE_ATTRIBUTE_CLUSTER_DIMENSION = 4 };

/* Records like cuLaunchKernel, and the cluster dimension, which the real driver requires to
 * divide the grid. */
EXPORT CUresult cuLaunchKernelEx(const FakeLaunchConfig *c, void *fn, void **params, void **extra) {
    unsigned cluster[3] = {0, 0, 0};
    for (unsigned i = 0; i < c->nattrs; i++)
        if (c->attrs[i].id == FAKE_ATTRIBUTE_CLUSTER_DIMENSION) memcpy(cluster, c->attrs[i].value.dim, sizeof cluster);
    for (int d = 0; d < 3; d++)
        if (cluster[d] && c->grid[d] % cluster[d]) return ERROR_INVALID_VALUE;
    CUresult r = cuLaunchKernel(fn, c->grid[0], c->grid[1], c->grid[2], c->block[0], c->block[1], c->block[2],
                                c->shared, c->stream, params, extra);
    if (r != OK) return r;
    pthread_mutex_lock(&latest_lock);
    memcpy(stats.cluster, cluster, sizeof cluster);
    pthread_mutex_unlock(&latest_lock);
    if (cluster[0]) BUMP(stats.cluster_launches);
    return OK;
}

static int stream_token, event_token;
EXPORT CUresult cuStreamCreate(void **s, unsigned flags) { return (void)flags, *s = &stream_token, OK; }
EXPORT CUresult cuStreamSynchronize(void *s) { return (void)s, OK; }
EXPORT CUresult cuStreamDestroy_v2(void *s) { return (void)s, OK; }
EXPORT CUresult cuEventCreate(void **e, unsigned flags) { return (void)flags, *e = &event_token, OK; }
EXPORT CUresult cuEventRecord(void *e, void *s) { return (void)e, (void)s, OK; }
EXPORT CUresult cuEventSynchronize(void *e) { return (void)e, OK; }
EXPORT CUresult cuEventElapsedTime_v2(float *ms, void *a, void *b) { return (void)a, (void)b, *ms = 0, OK; }
EXPORT CUresult cuEventDestroy_v2(void *e) { return (void)e, OK; }

EXPORT CUresult cuTensorMapEncodeTiled(void *map, int type, unsigned rank, void *address, const uint64_t *dims,
                                       const uint64_t *strides, const unsigned *box, const unsigned *element_strides,
                                       int interleave, int swizzle, int l2, int fill) {
    (void)element_strides, (void)interleave, (void)l2, (void)fill;
    /* the driver's rules for a tiled map (CUDA Driver API): rank 1 to 5, a 16-byte aligned base,
     * sizes 1 to 2^32, strides multiples of 16 bytes below 2^40, boxes 1 to 256, the inner box
     * no wider than the swizzle span */
    int elem = type == 0 ? 1 : type == 1 ? 2 : 4, span = swizzle ? 16 << swizzle : 0;
    bool ok = rank >= 1 && rank <= 5 && (uintptr_t)address % 16 == 0 &&
              (!span || box[0] * (unsigned)elem <= (unsigned)span);
    for (unsigned d = 0; ok && d < rank; d++) {
        ok = dims[d] >= 1 && dims[d] <= (UINT64_C(1) << 32) && box[d] >= 1 && box[d] <= 256;
        if (d) ok = ok && strides[d - 1] % 16 == 0 && strides[d - 1] < (UINT64_C(1) << 40);
    }
    if (!ok) {
        BUMP(stats.tensor_maps_refused);
        return ERROR_INVALID_VALUE;
    }
    memset(map, 0, 128);
    memcpy(map, &address, sizeof address);
    BUMP(stats.tensor_maps);
    pthread_mutex_lock(&latest_lock);
    stats.map_rank = rank;
    stats.map_swizzle = swizzle;
    for (unsigned d = 0; d < rank; d++) {
        stats.map_dims[d] = dims[d];
        stats.map_box[d] = box[d];
        if (d) stats.map_strides[d - 1] = strides[d - 1];
    }
    pthread_mutex_unlock(&latest_lock);
    return OK;
}
