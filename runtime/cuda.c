/*
 * cuda.c: the CUDA device through the Driver API, opened with dlopen("libcuda.so.1").
 *
 * <cuda.h> provides only types and enum values (when CMake found it: TILE_HAVE_CUDA_H; without
 * it, the few types and values used here are declared below, from the driver's stable ABI).
 * The entry points are fields of one table, `driver`, filled by dlsym once per process under
 * pthread_once. The table is an X-macro list: field name (the API name as written in code),
 * the symbol to resolve (the _v2 ABI names that cuda.h maps the API names to), a fallback
 * symbol for older drivers, and the parameter list. Where cuda.h maps an API name to a
 * versioned one by a macro (cuMemAlloc -> cuMemAlloc_v2), the same macro renames the field
 * in the table and at each use, so code reads like plain Driver API calls. A second list,
 * CUDA_DRIVER_OPTIONAL, holds functions whose absence only turns a feature off
 * (cuTensorMapEncodeTiled: without it no kernel gets TMA rings).
 *
 * Every driver call goes through CU_CHECK, which evaluates it and on failure appends the call
 * as written, the error's name and message from the driver, and file:line to err, and returns
 * a tile_status from the enclosing function. Each device call first makes the device's primary
 * context current on the calling thread (cheap, and what lets a device be shared by threads).
 */
#include "runtime/cuda.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef TILE_HAVE_CUDA_H
#include <cuda.h>
#else
/* The subset of cuda.h used here; these values are part of the driver's ABI. */
typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;
typedef int CUdevice_attribute;
typedef int CUfunction_attribute;
typedef int CUjit_option;
enum {
    CUDA_SUCCESS = 0,
    CUDA_ERROR_OUT_OF_MEMORY = 2,
    CUDA_ERROR_NO_DEVICE = 100,
    CUDA_ERROR_NOT_FOUND = 500,
    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
    CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97,
    CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16,
    CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8,
    CU_JIT_INFO_LOG_BUFFER = 3,
    CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES = 4,
    CU_JIT_ERROR_LOG_BUFFER = 5,
    CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6,
    CU_STREAM_NON_BLOCKING = 1,
    CU_EVENT_DEFAULT = 0,
};
#endif

/* field, symbol, fallback symbol ("" for none), parameters */
#define CUDA_DRIVER_FUNCTIONS(X)                                                              \
    X(cuInit, "cuInit", "", (unsigned int flags))                                             \
    X(cuDriverGetVersion, "cuDriverGetVersion", "", (int *version))                           \
    X(cuGetErrorName, "cuGetErrorName", "", (CUresult error, const char **name))              \
    X(cuGetErrorString, "cuGetErrorString", "", (CUresult error, const char **text))          \
    X(cuDeviceGetCount, "cuDeviceGetCount", "", (int *count))                                 \
    X(cuDeviceGet, "cuDeviceGet", "", (CUdevice * device, int ordinal))                       \
    X(cuDeviceGetName, "cuDeviceGetName", "", (char *name, int len, CUdevice device))         \
    X(cuDeviceGetAttribute, "cuDeviceGetAttribute", "",                                       \
      (int *value, CUdevice_attribute attribute, CUdevice device))                            \
    X(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", "",                               \
      (CUcontext * context, CUdevice device))                                                 \
    X(cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease", \
      (CUdevice device))                                                                      \
    X(cuCtxSetCurrent, "cuCtxSetCurrent", "", (CUcontext context))                            \
    X(cuCtxGetCurrent, "cuCtxGetCurrent", "", (CUcontext * context))                          \
    X(cuCtxSynchronize, "cuCtxSynchronize", "", (void))                                       \
    X(cuMemAlloc, "cuMemAlloc_v2", "", (CUdeviceptr * ptr, size_t bytes))                     \
    X(cuMemFree, "cuMemFree_v2", "", (CUdeviceptr ptr))                                       \
    X(cuMemcpyHtoD, "cuMemcpyHtoD_v2", "", (CUdeviceptr dst, const void *src, size_t bytes))  \
    X(cuMemcpyDtoH, "cuMemcpyDtoH_v2", "", (void *dst, CUdeviceptr src, size_t bytes))        \
    X(cuMemsetD8, "cuMemsetD8_v2", "", (CUdeviceptr dst, unsigned char value, size_t count))  \
    X(cuMemcpyDtoD, "cuMemcpyDtoD_v2", "", (CUdeviceptr dst, CUdeviceptr src, size_t bytes))  \
    X(cuModuleLoadDataEx, "cuModuleLoadDataEx", "",                                           \
      (CUmodule * module, const void *image, unsigned int noptions, CUjit_option *options,    \
       void **values))                                                                        \
    X(cuModuleUnload, "cuModuleUnload", "", (CUmodule module))                                \
    X(cuModuleGetFunction, "cuModuleGetFunction", "",                                         \
      (CUfunction * fn, CUmodule module, const char *name))                                   \
    X(cuFuncSetAttribute, "cuFuncSetAttribute", "",                                           \
      (CUfunction fn, CUfunction_attribute attribute, int value))                             \
    X(cuLaunchKernel, "cuLaunchKernel", "",                                                   \
      (CUfunction fn, unsigned int grid_x, unsigned int grid_y, unsigned int grid_z,          \
       unsigned int block_x, unsigned int block_y, unsigned int block_z,                      \
       unsigned int shared_bytes, CUstream stream, void **params, void **extra))              \
    X(cuStreamCreate, "cuStreamCreate", "", (CUstream * stream, unsigned int flags))          \
    X(cuStreamSynchronize, "cuStreamSynchronize", "", (CUstream stream))                      \
    X(cuStreamDestroy, "cuStreamDestroy_v2", "cuStreamDestroy", (CUstream stream))            \
    X(cuEventCreate, "cuEventCreate", "", (CUevent * event, unsigned int flags))              \
    X(cuEventRecord, "cuEventRecord", "", (CUevent event, CUstream stream))                   \
    X(cuEventSynchronize, "cuEventSynchronize", "", (CUevent event))                          \
    X(cuEventElapsedTime, "cuEventElapsedTime_v2", "cuEventElapsedTime",                      \
      (float *ms, CUevent start, CUevent end))                                                \
    X(cuEventDestroy, "cuEventDestroy_v2", "cuEventDestroy", (CUevent event))

#ifndef TILE_HAVE_CUDA_H
/* cuLaunchKernelEx's configuration, for a cluster dimension (the driver's ABI, CUDA 12). */
enum { CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION = 4 };
typedef struct CUlaunchAttribute {
    int id;
    char pad[4];
    union {
        char bytes[64];
        struct {
            unsigned x, y, z;
        } clusterDim;
    } value;
} CUlaunchAttribute;
typedef struct CUlaunchConfig {
    unsigned gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes;
    CUstream hStream;
    CUlaunchAttribute *attrs;
    unsigned numAttrs;
} CUlaunchConfig;
#endif

/* Functions the runtime works without (a driver that lacks one only turns a feature off). */
#define CUDA_DRIVER_OPTIONAL(X)                                                               \
    X(cuTensorMapEncodeTiled, "cuTensorMapEncodeTiled", "",                                   \
      (void *map, int data_type, unsigned rank, void *address, const uint64_t *dims,          \
       const uint64_t *strides, const unsigned *box, const unsigned *element_strides,          \
       int interleave, int swizzle, int l2_promotion, int oob_fill))                         \
    X(cuLaunchKernelEx, "cuLaunchKernelEx", "",                                               \
      (const CUlaunchConfig *config, CUfunction function, void **params, void **extra))

#define DECLARE_FIELD(field, symbol, fallback, params) CUresult (*field) params;
static struct {
    void *library;
    CUDA_DRIVER_FUNCTIONS(DECLARE_FIELD)
    CUDA_DRIVER_OPTIONAL(DECLARE_FIELD)
} driver;
#undef DECLARE_FIELD

static pthread_once_t driver_once = PTHREAD_ONCE_INIT;
static tile_status driver_status;
static char driver_message[1024];

/* Appends "call failed: NAME (message) at file:line" and maps the driver's error to a status. */
static tile_status cu_report(Strbuf *err, CUresult result, const char *call, const char *file,
                             int line) {
    const char *name = NULL, *text = NULL;
    if (!driver.cuGetErrorName || driver.cuGetErrorName(result, &name) != CUDA_SUCCESS) name = NULL;
    if (!driver.cuGetErrorString || driver.cuGetErrorString(result, &text) != CUDA_SUCCESS)
        text = NULL;
    if (err->len && err->data[err->len - 1] != '\n') sb_putc(err, '\n');
    sb_printf(err, "%s failed: ", call);
    if (name) {
        sb_printf(err, "%s (%s)", name, text ? text : "no description");
    } else {
        sb_printf(err, "CUDA error %d", (int)result);
    }
    sb_printf(err, " at %s:%d", file, line);
    switch (result) {
    case CUDA_ERROR_OUT_OF_MEMORY: return TILE_ERROR_OUT_OF_MEMORY;
    case CUDA_ERROR_NO_DEVICE:
    case CUDA_ERROR_NOT_FOUND: return TILE_ERROR_NOT_FOUND;
    default: return TILE_ERROR_DEVICE;
    }
}

/* The one checked call: evaluates a driver call (written as in the Driver API) and returns a
 * status from the enclosing function when it fails. */
#define CU_CHECK(call)                                                                        \
    do {                                                                                      \
        CUresult cu_result_ = driver.call;                                                    \
        if (cu_result_ != CUDA_SUCCESS) return cu_report(err, cu_result_, #call, __FILE__, __LINE__); \
    } while (0)

/* ---- loading the driver ------------------------------------------------------------------- */

static bool resolve(const char *symbol, const char *fallback, void *field) {
    void *address = dlsym(driver.library, symbol);
    if (!address && *fallback) address = dlsym(driver.library, fallback);
    if (!address) return false;
    /* dlsym returns an object pointer; ISO C has no cast to a function pointer, so copy it. */
    memcpy(field, &address, sizeof address);
    return true;
}

static tile_status driver_init(Strbuf *err) {
    CU_CHECK(cuInit(0));
    return TILE_OK;
}

static void driver_load(void) {
    driver.library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!driver.library) {
        const char *why = dlerror();
        snprintf(driver_message, sizeof driver_message,
                 "libcuda.so.1 not found: no NVIDIA driver on this machine (%s)",
                 why ? why : "dlopen failed");
        driver_status = TILE_ERROR_NOT_FOUND;
        return;
    }
#define RESOLVE_FIELD(field, symbol, fallback, params)                                        \
    if (!resolve(symbol, fallback, &driver.field)) {                                          \
        snprintf(driver_message, sizeof driver_message,                                       \
                 "libcuda.so.1 has no %s: the NVIDIA driver is too old", symbol);             \
        driver_status = TILE_ERROR_DEVICE;                                                    \
        return;                                                                               \
    }
    CUDA_DRIVER_FUNCTIONS(RESOLVE_FIELD)
#undef RESOLVE_FIELD
#define RESOLVE_OPTIONAL(field, symbol, fallback, params) resolve(symbol, fallback, &driver.field);
    CUDA_DRIVER_OPTIONAL(RESOLVE_OPTIONAL)
#undef RESOLVE_OPTIONAL
    Strbuf err = {0};
    driver_status = driver_init(&err);
    if (driver_status != TILE_OK)
        snprintf(driver_message, sizeof driver_message, "%s", sb_str(&err));
    sb_free(&err);
}

tile_status cuda_driver_load(Strbuf *err) {
    pthread_once(&driver_once, driver_load);
    if (driver_status != TILE_OK) sb_puts(err, driver_message);
    return driver_status;
}

int cuda_device_count(void) {
    Strbuf err = {0};
    int count = 0;
    if (cuda_driver_load(&err) != TILE_OK || driver.cuDeviceGetCount(&count) != CUDA_SUCCESS)
        count = 0;
    sb_free(&err);
    return count;
}

int cuda_driver_version(void) {
    Strbuf err = {0};
    int version = 0;
    if (cuda_driver_load(&err) != TILE_OK || driver.cuDriverGetVersion(&version) != CUDA_SUCCESS)
        version = 0;
    sb_free(&err);
    return version;
}

/* ---- devices ------------------------------------------------------------------------------ */

struct CudaDevice {
    int ordinal;
    CUdevice device;
    CUcontext context; /* the primary context, retained */
    char name[256];
    int major, minor;
    int max_shared_optin;
    int multiprocessors; /* CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, asked once */
};

struct CudaModule {
    CudaDevice *device;
    CUmodule module;
};

#define MAKE_CURRENT(device) CU_CHECK(cuCtxSetCurrent((device)->context))

static tile_status device_query(CudaDevice *d, Strbuf *err) {
    CU_CHECK(cuDeviceGet(&d->device, d->ordinal));
    CU_CHECK(cuDeviceGetName(d->name, (int)sizeof d->name, d->device));
    CU_CHECK(cuDeviceGetAttribute(&d->major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, d->device));
    CU_CHECK(cuDeviceGetAttribute(&d->minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, d->device));
    CU_CHECK(cuDeviceGetAttribute(&d->max_shared_optin,
                                  CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, d->device));
    CU_CHECK(cuDeviceGetAttribute(&d->multiprocessors, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, d->device));
    CU_CHECK(cuDevicePrimaryCtxRetain(&d->context, d->device));
    return TILE_OK;
}

tile_status cuda_device_open(int ordinal, CudaDevice **out, Strbuf *err) {
    *out = NULL;
    tile_status status = cuda_driver_load(err);
    if (status != TILE_OK) return status;
    int count = cuda_device_count();
    if (ordinal < 0 || ordinal >= count) {
        sb_printf(err, "no CUDA device %d (this machine has %d)", ordinal, count);
        return TILE_ERROR_NOT_FOUND;
    }
    CudaDevice *d = xcalloc(1, sizeof *d);
    d->ordinal = ordinal;
    status = device_query(d, err);
    if (status != TILE_OK) {
        free(d);
        return status;
    }
    *out = d;
    return TILE_OK;
}

void cuda_device_close(CudaDevice *device) {
    if (!device) return;
    (void)driver.cuDevicePrimaryCtxRelease(device->device);
    free(device);
}

int cuda_device_ordinal(const CudaDevice *device) { return device->ordinal; }
const char *cuda_device_name(const CudaDevice *device) { return device->name; }
int cuda_device_max_shared_optin(const CudaDevice *device) { return device->max_shared_optin; }
int cuda_device_multiprocessors(const CudaDevice *device) { return device->multiprocessors; }

void cuda_device_capability(const CudaDevice *device, int *major, int *minor) {
    *major = device->major;
    *minor = device->minor;
}

tile_status cuda_device_attribute(CudaDevice *device, int attribute, int *value, Strbuf *err) {
    CU_CHECK(cuDeviceGetAttribute(value, (CUdevice_attribute)attribute, device->device));
    return TILE_OK;
}

/* ---- memory ------------------------------------------------------------------------------- */

tile_status cuda_alloc(CudaDevice *device, size_t bytes, CudaPtr *out, Strbuf *err) {
    CUdeviceptr ptr = 0;
    MAKE_CURRENT(device);
    CU_CHECK(cuMemAlloc(&ptr, bytes ? bytes : 1));
    *out = (CudaPtr)ptr;
    return TILE_OK;
}

tile_status cuda_free(CudaDevice *device, CudaPtr ptr, Strbuf *err) {
    if (!ptr) return TILE_OK;
    MAKE_CURRENT(device);
    CU_CHECK(cuMemFree((CUdeviceptr)ptr));
    return TILE_OK;
}

tile_status cuda_copy_to_device(CudaDevice *device, CudaPtr dst, const void *src, size_t bytes,
                                Strbuf *err) {
    if (!bytes) return TILE_OK;
    MAKE_CURRENT(device);
    CU_CHECK(cuMemcpyHtoD((CUdeviceptr)dst, src, bytes));
    return TILE_OK;
}

tile_status cuda_copy_to_host(CudaDevice *device, void *dst, CudaPtr src, size_t bytes,
                              Strbuf *err) {
    if (!bytes) return TILE_OK;
    MAKE_CURRENT(device);
    CU_CHECK(cuMemcpyDtoH(dst, (CUdeviceptr)src, bytes));
    return TILE_OK;
}

tile_status cuda_memset(CudaDevice *device, CudaPtr dst, unsigned char value, size_t bytes,
                        Strbuf *err) {
    if (!bytes) return TILE_OK;
    MAKE_CURRENT(device);
    CU_CHECK(cuMemsetD8((CUdeviceptr)dst, value, bytes));
    return TILE_OK;
}

tile_status cuda_copy_device(CudaDevice *device, CudaPtr dst, CudaPtr src, size_t bytes, Strbuf *err) {
    if (!bytes) return TILE_OK;
    MAKE_CURRENT(device);
    CU_CHECK(cuMemcpyDtoD((CUdeviceptr)dst, (CUdeviceptr)src, bytes));
    return TILE_OK;
}

/* ---- modules and kernels ------------------------------------------------------------------ */

enum { JIT_LOG_BYTES = 16384 };

static tile_status module_load(CudaDevice *device, const void *image, CUmodule *module,
                               char *error_log, Strbuf *err) {
    CUjit_option options[2] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
    void *values[2] = {error_log, (void *)(uintptr_t)JIT_LOG_BYTES};
    MAKE_CURRENT(device);
    CU_CHECK(cuModuleLoadDataEx(module, image, 2, options, values));
    return TILE_OK;
}

static tile_status module_new(CudaDevice *device, const void *image, CudaModule **out,
                              Strbuf *err) {
    *out = NULL;
    char *log = xcalloc(1, JIT_LOG_BYTES);
    CUmodule module = NULL;
    tile_status status = module_load(device, image, &module, log, err);
    if (status != TILE_OK) {
        log[JIT_LOG_BYTES - 1] = '\0';
        if (*log) sb_printf(err, "\nJIT log:\n%s", log);
    } else {
        CudaModule *m = xcalloc(1, sizeof *m);
        m->device = device;
        m->module = module;
        *out = m;
    }
    free(log);
    return status;
}

tile_status cuda_module_load_ptx(CudaDevice *device, const char *ptx, CudaModule **out,
                                 Strbuf *err) {
    return module_new(device, ptx, out, err);
}

tile_status cuda_module_load_cubin(CudaDevice *device, const void *cubin, size_t len,
                                   CudaModule **out, Strbuf *err) {
    (void)len; /* a cubin is an ELF image: the driver reads its size from the headers */
    return module_new(device, cubin, out, err);
}

void cuda_module_unload(CudaModule *module) {
    if (!module) return;
    if (driver.cuCtxSetCurrent(module->device->context) == CUDA_SUCCESS)
        (void)driver.cuModuleUnload(module->module);
    free(module);
}

tile_status cuda_module_function(CudaModule *module, const char *name, CudaFunction **out,
                                 Strbuf *err) {
    CUfunction fn = NULL;
    *out = NULL;
    MAKE_CURRENT(module->device);
    CU_CHECK(cuModuleGetFunction(&fn, module->module, name));
    *out = (CudaFunction *)fn;
    return TILE_OK;
}

tile_status cuda_function_set_max_dynamic_shared(CudaDevice *device, CudaFunction *fn,
                                                 int bytes, Strbuf *err) {
    MAKE_CURRENT(device);
    CU_CHECK(cuFuncSetAttribute((CUfunction)fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                bytes));
    return TILE_OK;
}

static unsigned at_least_one(unsigned n) { return n ? n : 1; }

tile_status cuda_launch(CudaDevice *device, CudaFunction *fn, const CudaLaunch *launch,
                        void **params, Strbuf *err) {
    const unsigned *g = launch->grid, *b = launch->block;
    /* asking is cheaper than setting: the context is usually current already (ours, or the
     * primary context that PyTorch made current) */
    CUcontext current = NULL;
    if (driver.cuCtxGetCurrent(&current) != CUDA_SUCCESS || current != device->context) MAKE_CURRENT(device);
    if (launch->cluster > 1 && driver.cuLaunchKernelEx) {
        /* blocks in clusters of launch->cluster along x (the caller checked that the grid's x is a
           multiple); a driver without cuLaunchKernelEx runs the kernel without clusters */
        CUlaunchAttribute attr;
        memset(&attr, 0, sizeof attr);
        attr.id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
        attr.value.clusterDim.x = launch->cluster, attr.value.clusterDim.y = attr.value.clusterDim.z = 1;
        CUlaunchConfig config = {at_least_one(g[0]), at_least_one(g[1]), at_least_one(g[2]), at_least_one(b[0]),
                                 at_least_one(b[1]), at_least_one(b[2]), launch->shared_bytes,
                                 (CUstream)launch->stream, &attr, 1};
        CU_CHECK(cuLaunchKernelEx(&config, (CUfunction)fn, params, NULL));
        return TILE_OK;
    }
    CU_CHECK(cuLaunchKernel((CUfunction)fn, at_least_one(g[0]), at_least_one(g[1]),
                            at_least_one(g[2]), at_least_one(b[0]), at_least_one(b[1]),
                            at_least_one(b[2]), launch->shared_bytes, (CUstream)launch->stream,
                            params, NULL));
    return TILE_OK;
}

/* ---- tensor maps (TMA) --------------------------------------------------------------------- */
bool cuda_has_tensor_maps(void) {
    Strbuf err = {0};
    bool ok = cuda_driver_load(&err) == TILE_OK && driver.cuTensorMapEncodeTiled;
    sb_free(&err);
    return ok;
}

tile_status cuda_tensor_map_encode(void *map, int elem_bytes, const void *base, int rank, const uint64_t *dims,
                                   const uint64_t *strides_bytes, const unsigned *box, int swizzle_bytes, Strbuf *err) {
    if (!driver.cuTensorMapEncodeTiled) {
        sb_puts(err, "the NVIDIA driver has no cuTensorMapEncodeTiled");
        return TILE_ERROR_UNSUPPORTED;
    }
    /* the driver's rules (CUDA Driver API, cuTensorMapEncodeTiled), checked here so that the
     * caller learns which one a tensor breaks */
    if (rank < 1 || rank > 5) {
        sb_printf(err, "a tensor map of rank %d (TMA takes 1 to 5)", rank);
        return TILE_ERROR_INVALID_ARGUMENT;
    }
    if ((uintptr_t)base % 16) {
        sb_printf(err, "a tensor map's base %p is not 16-byte aligned", base);
        return TILE_ERROR_INVALID_ARGUMENT;
    }
    for (int d = 0; d < rank; d++) {
        if (dims[d] < 1 || dims[d] > (UINT64_C(1) << 32) || box[d] < 1 || box[d] > 256) {
            sb_printf(err, "a tensor map's dimension %d (innermost first) has size %llu and box %u (TMA takes "
                      "sizes 1 to 2^32, boxes 1 to 256)", d, (unsigned long long)dims[d], box[d]);
            return TILE_ERROR_INVALID_ARGUMENT;
        }
        uint64_t stride = d ? strides_bytes[d - 1] : 16;
        if (stride == 0 || stride % 16 || stride >= (UINT64_C(1) << 40)) {
            sb_printf(err, "a tensor map's dimension %d (innermost first) has a stride of %llu bytes (TMA takes "
                      "positive multiples of 16 below 2^40)", d, (unsigned long long)stride);
            return TILE_ERROR_INVALID_ARGUMENT;
        }
    }
    /* CUtensorMapDataType UINT8, UINT16, UINT32: a copy moves bits; zeros are 0 in every type */
    int type = elem_bytes == 1 ? 0 : elem_bytes == 2 ? 1 : 2;
    /* CUtensorMapSwizzle NONE, 32B, 64B, 128B */
    int swizzle = swizzle_bytes == 128 ? 3 : swizzle_bytes == 64 ? 2 : swizzle_bytes == 32 ? 1 : 0;
    const unsigned element_strides[5] = {1, 1, 1, 1, 1};
    /* interleave none, L2 promotion 128B, out-of-bounds elements filled with zeros */
    CU_CHECK(cuTensorMapEncodeTiled(map, type, (unsigned)rank, (void *)(uintptr_t)base, dims, strides_bytes, box,
                                    element_strides, 0, swizzle, 2, 0));
    return TILE_OK;
}

tile_status cuda_synchronize(CudaDevice *device, Strbuf *err) {
    MAKE_CURRENT(device);
    CU_CHECK(cuCtxSynchronize());
    return TILE_OK;
}

/* ---- streams and events ------------------------------------------------------------------- */

tile_status cuda_stream_create(CudaDevice *device, CudaStream **out, Strbuf *err) {
    CUstream stream = NULL;
    *out = NULL;
    MAKE_CURRENT(device);
    CU_CHECK(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
    *out = (CudaStream *)stream;
    return TILE_OK;
}

tile_status cuda_stream_synchronize(CudaDevice *device, CudaStream *stream, Strbuf *err) {
    MAKE_CURRENT(device);
    CU_CHECK(cuStreamSynchronize((CUstream)stream));
    return TILE_OK;
}

void cuda_stream_destroy(CudaDevice *device, CudaStream *stream) {
    if (stream && driver.cuCtxSetCurrent(device->context) == CUDA_SUCCESS)
        (void)driver.cuStreamDestroy((CUstream)stream);
}

tile_status cuda_event_create(CudaDevice *device, CudaEvent **out, Strbuf *err) {
    CUevent event = NULL;
    *out = NULL;
    MAKE_CURRENT(device);
    CU_CHECK(cuEventCreate(&event, CU_EVENT_DEFAULT));
    *out = (CudaEvent *)event;
    return TILE_OK;
}

tile_status cuda_event_record(CudaDevice *device, CudaEvent *event, CudaStream *stream,
                              Strbuf *err) {
    MAKE_CURRENT(device);
    CU_CHECK(cuEventRecord((CUevent)event, (CUstream)stream));
    return TILE_OK;
}

tile_status cuda_event_elapsed_ms(CudaDevice *device, CudaEvent *start, CudaEvent *end,
                                  float *ms, Strbuf *err) {
    MAKE_CURRENT(device);
    CU_CHECK(cuEventSynchronize((CUevent)end));
    CU_CHECK(cuEventElapsedTime(ms, (CUevent)start, (CUevent)end));
    return TILE_OK;
}

void cuda_event_destroy(CudaDevice *device, CudaEvent *event) {
    if (event && driver.cuCtxSetCurrent(device->context) == CUDA_SUCCESS)
        (void)driver.cuEventDestroy((CUevent)event);
}
