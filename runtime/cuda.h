/*
 * cuda.h (runtime/): the CUDA device, through the CUDA Driver API opened with dlopen.
 *
 * libcuda.so.1 is loaded on first use, once per process, and each entry point resolved by name
 * (the _v2 ABI names where the driver has them), so libtile builds and its CPU paths run on
 * machines without an NVIDIA driver; there, cuda_device_count is 0 and opening a device is a
 * clear error. Driver handles stay inside cuda.c: this header hands out opaque pointers, and
 * device memory as CudaPtr (the CUdeviceptr integer).
 *
 * Every call that can fail returns a tile_status (TILE_ERROR_DEVICE for driver errors,
 * TILE_ERROR_OUT_OF_MEMORY, TILE_ERROR_NOT_FOUND for a missing driver, device or kernel) and
 * appends what happened to err: the failing call as written, the driver's error name and
 * message, and the file and line. A device wraps the device's primary context; each call makes
 * it current on the calling thread, so a device may be used from several threads.
 */
#ifndef TILE_RUNTIME_CUDA_H
#define TILE_RUNTIME_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "support/support.h"
#include "tile/tile.h"

typedef uint64_t CudaPtr;                 /* a device address (CUdeviceptr) */
typedef struct CudaDevice CudaDevice;     /* one GPU and its primary context */
typedef struct CudaModule CudaModule;     /* a loaded PTX or cubin image */
typedef struct CudaFunction CudaFunction; /* a kernel of a module (a CUfunction) */
typedef struct CudaStream CudaStream;     /* a CUstream; NULL is the default stream */
typedef struct CudaEvent CudaEvent;       /* a CUevent */

/* Loads libcuda.so.1 and initializes the driver (once; later calls return the first result). */
tile_status cuda_driver_load(Strbuf *err);
/* The number of CUDA devices; 0 when there is no driver or no device (never an error). */
int cuda_device_count(void);
/* The driver's CUDA version, e.g. 13000, or 0 without a driver. */
int cuda_driver_version(void);

tile_status cuda_device_open(int ordinal, CudaDevice **out, Strbuf *err);
void cuda_device_close(CudaDevice *device);
int cuda_device_ordinal(const CudaDevice *device);
const char *cuda_device_name(const CudaDevice *device); /* "NVIDIA H100 80GB HBM3" */
void cuda_device_capability(const CudaDevice *device, int *major, int *minor);
/* Any CU_DEVICE_ATTRIBUTE_* value (cuDeviceGetAttribute). */
tile_status cuda_device_attribute(CudaDevice *device, int attribute, int *value, Strbuf *err);
/* The most dynamic shared memory one block may opt into (bytes). */
int cuda_device_max_shared_optin(const CudaDevice *device);
/* The device's streaming multiprocessors (what num_sms() gives a launch on it). */
int cuda_device_multiprocessors(const CudaDevice *device);

tile_status cuda_alloc(CudaDevice *device, size_t bytes, CudaPtr *out, Strbuf *err);
tile_status cuda_free(CudaDevice *device, CudaPtr ptr, Strbuf *err);
tile_status cuda_copy_to_device(CudaDevice *device, CudaPtr dst, const void *src, size_t bytes,
                                Strbuf *err);
tile_status cuda_copy_to_host(CudaDevice *device, void *dst, CudaPtr src, size_t bytes,
                              Strbuf *err);
/* Device-to-device copy on the default stream (asynchronous with respect to the host). */
tile_status cuda_copy_device(CudaDevice *device, CudaPtr dst, CudaPtr src, size_t bytes, Strbuf *err);
tile_status cuda_memset(CudaDevice *device, CudaPtr dst, unsigned char value, size_t bytes,
                        Strbuf *err);

/* PTX text (NUL-terminated, JIT compiled by the driver) or a cubin image. On failure err also
 * gets the JIT's error log. */
tile_status cuda_module_load_ptx(CudaDevice *device, const char *ptx, CudaModule **out,
                                 Strbuf *err);
tile_status cuda_module_load_cubin(CudaDevice *device, const void *cubin, size_t len,
                                   CudaModule **out, Strbuf *err);
void cuda_module_unload(CudaModule *module);
tile_status cuda_module_function(CudaModule *module, const char *name, CudaFunction **out,
                                 Strbuf *err);
/* Lets fn use up to bytes of dynamic shared memory (needed above 48 KB). */
tile_status cuda_function_set_max_dynamic_shared(CudaDevice *device, CudaFunction *fn,
                                                 int bytes, Strbuf *err);

typedef struct CudaLaunch {
    unsigned grid[3];      /* blocks; 0 counts as 1 */
    unsigned block[3];     /* threads per block; 0 counts as 1 */
    unsigned shared_bytes; /* dynamic shared memory */
    CudaStream *stream;    /* NULL: the default stream */
    unsigned cluster;      /* > 1: blocks in clusters of that many along x (cuLaunchKernelEx; grid[0] a
                              multiple of it), when the driver has cuLaunchKernelEx; else none */
} CudaLaunch;

/* params[i] points to the value of the kernel's i-th parameter (cuLaunchKernel's layout). */
tile_status cuda_launch(CudaDevice *device, CudaFunction *fn, const CudaLaunch *launch,
                        void **params, Strbuf *err);
tile_status cuda_synchronize(CudaDevice *device, Strbuf *err);

/* Tensor maps for TMA copies (sm_90a): whether the driver has cuTensorMapEncodeTiled (optional:
 * without it the runtime compiles no TMA rings), and the encoding of a tiled map of rank 1 to 5
 * into map[128] (64-byte aligned): elements of elem_bytes at base, dims and box innermost first
 * (the columns, then the rows, then the leading dimensions), the innermost dimension contiguous
 * and dimension d + 1 strides_bytes[d] apart (rank - 1 of them), the swizzle mode of
 * swizzle_bytes (0, 32, 64, 128), zeros outside the tensor. What TMA cannot take (a base not
 * 16-byte aligned, a stride that is not a positive multiple of 16 bytes below 2^40, a size
 * outside [1, 2^32], a box outside [1, 256]) is TILE_ERROR_INVALID_ARGUMENT with the reason,
 * before the driver is asked. */
bool cuda_has_tensor_maps(void);
tile_status cuda_tensor_map_encode(void *map, int elem_bytes, const void *base, int rank, const uint64_t *dims,
                                   const uint64_t *strides_bytes, const unsigned *box, int swizzle_bytes, Strbuf *err);

tile_status cuda_stream_create(CudaDevice *device, CudaStream **out, Strbuf *err);
tile_status cuda_stream_synchronize(CudaDevice *device, CudaStream *stream, Strbuf *err);
void cuda_stream_destroy(CudaDevice *device, CudaStream *stream);

tile_status cuda_event_create(CudaDevice *device, CudaEvent **out, Strbuf *err);
tile_status cuda_event_record(CudaDevice *device, CudaEvent *event, CudaStream *stream,
                              Strbuf *err);
/* Waits for end, then the milliseconds between the two recorded events. */
tile_status cuda_event_elapsed_ms(CudaDevice *device, CudaEvent *start, CudaEvent *end,
                                  float *ms, Strbuf *err);
void cuda_event_destroy(CudaDevice *device, CudaEvent *event);

#endif
