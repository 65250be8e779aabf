/* test_cuda_smoke.c: the whole GPU path on a real device: the hand-built vector-add kernel is
 * emitted as PTX by the NVPTX backend, loaded by the driver (PTX JIT, and as a cubin from
 * nvJitLink or ptxas when one is present), run on random data and checked exactly; also the
 * checked-call errors, dynamic shared memory above 48 KB, streams and events. Skips with a
 * message where there is no GPU. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "runtime/cuda.h"

#ifdef TILE_HAVE_LLVM
static CudaDevice *device;
static BackendArch arch;

static void open_device(void) {
    Strbuf err = {0};
    if (cuda_device_count() == 0) {
        cuda_driver_load(&err);
        cr_skip_test("no CUDA device: %s", err.len ? sb_str(&err) : "the driver lists none");
    }
    tile_status status = cuda_device_open(0, &device, &err);
    cr_assert_eq(status, TILE_OK, "%s", sb_str(&err));
    int major, minor;
    cuda_device_capability(device, &major, &minor);
    if (!backend_arch_for_capability(major, minor, &arch))
        cr_skip_test("%s is sm_%d%d; the backend needs sm_80 or newer", cuda_device_name(device),
                     major, minor);
    sb_free(&err);
}

static void close_device(void) {
    cuda_device_close(device);
    device = NULL;
}

TestSuite(cuda_smoke, .init = open_device, .fini = close_device);

static char *vector_add_ptx(void) {
    LLVMContextRef context = llvm_context_new();
    LLVMModuleRef module = llvm_build_vector_add(context);
    Strbuf ptx = {0}, err = {0};
    PtxOptions options = llvm_ptx_options(arch);
    cr_assert(llvm_emit_ptx(module, &options, &ptx, &err), "%s", sb_str(&err));
    llvm_context_free(context);
    sb_free(&err);
    return ptx.data;
}

/* Runs vector_add from module on n random elements and checks every result bit for bit. */
static void run_vector_add(CudaModule *module, int n, unsigned block) {
    Strbuf err = {0};
    CudaFunction *fn;
    cr_assert_eq(cuda_module_function(module, LLVM_VECTOR_ADD_NAME, &fn, &err), TILE_OK, "%s",
                 sb_str(&err));
    size_t bytes = (size_t)n * sizeof(float);
    float *a = malloc(bytes), *b = malloc(bytes), *c = malloc(bytes);
    srand(1234 + (unsigned)n);
    for (int i = 0; i < n; i++) {
        a[i] = (float)rand() / (float)RAND_MAX * 200.0f - 100.0f;
        b[i] = (float)rand() / (float)RAND_MAX * 200.0f - 100.0f;
        c[i] = -1.0f;
    }
    CudaPtr da, db, dc;
    cr_assert_eq(cuda_alloc(device, bytes, &da, &err), TILE_OK, "%s", sb_str(&err));
    cr_assert_eq(cuda_alloc(device, bytes + 64, &dc, &err), TILE_OK, "%s", sb_str(&err));
    cr_assert_eq(cuda_alloc(device, bytes, &db, &err), TILE_OK, "%s", sb_str(&err));
    cr_assert_eq(cuda_copy_to_device(device, da, a, bytes, &err), TILE_OK, "%s", sb_str(&err));
    cr_assert_eq(cuda_copy_to_device(device, db, b, bytes, &err), TILE_OK, "%s", sb_str(&err));
    /* A sentinel past the end: the bounds check must keep the kernel from writing it. */
    cr_assert_eq(cuda_memset(device, dc, 0xAB, bytes + 64, &err), TILE_OK, "%s", sb_str(&err));

    CudaLaunch launch = {.grid = {(unsigned)((n + (int)block - 1) / (int)block)},
                         .block = {block}};
    void *params[] = {&da, &db, &dc, &n};
    cr_assert_eq(cuda_launch(device, fn, &launch, params, &err), TILE_OK, "%s", sb_str(&err));
    cr_assert_eq(cuda_synchronize(device, &err), TILE_OK, "%s", sb_str(&err));
    cr_assert_eq(cuda_copy_to_host(device, c, dc, bytes, &err), TILE_OK, "%s", sb_str(&err));
    for (int i = 0; i < n; i++) {
        float want = a[i] + b[i];
        cr_assert(memcmp(&c[i], &want, sizeof want) == 0, "c[%d] = %a, want %a + %a = %a", i,
                  (double)c[i], (double)a[i], (double)b[i], (double)want);
    }
    unsigned char tail[64];
    cr_assert_eq(cuda_copy_to_host(device, tail, dc + bytes, sizeof tail, &err), TILE_OK);
    for (size_t i = 0; i < sizeof tail; i++) cr_assert_eq(tail[i], 0xAB, "written past n");

    cr_assert_eq(cuda_free(device, da, &err), TILE_OK, "%s", sb_str(&err));
    cr_assert_eq(cuda_free(device, db, &err), TILE_OK, "%s", sb_str(&err));
    cr_assert_eq(cuda_free(device, dc, &err), TILE_OK, "%s", sb_str(&err));
    free(a);
    free(b);
    free(c);
    sb_free(&err);
}

Test(cuda_smoke, device_describes_itself) {
    int major, minor;
    cuda_device_capability(device, &major, &minor);
    cr_assert_geq(major, 8);
    cr_assert_gt(strlen(cuda_device_name(device)), 0);
    cr_assert_geq(cuda_driver_version(), 12000);
    int sms = 0;
    Strbuf err = {0};
    cr_assert_eq(cuda_device_attribute(device, 16 /* MULTIPROCESSOR_COUNT */, &sms, &err),
                 TILE_OK, "%s", sb_str(&err));
    cr_assert_gt(sms, 0);
    cr_log_info("%s: sm_%d%d, %d SMs, driver %d, compiling for %s", cuda_device_name(device),
                major, minor, sms, cuda_driver_version(), backend_arch_name(arch));
    sb_free(&err);
}

Test(cuda_smoke, vector_add_from_ptx) {
    char *ptx = vector_add_ptx();
    Strbuf err = {0};
    CudaModule *module;
    cr_assert_eq(cuda_module_load_ptx(device, ptx, &module, &err), TILE_OK, "%s\n%s",
                 sb_str(&err), ptx);
    run_vector_add(module, (1 << 20) + 123, 256);
    run_vector_add(module, 1, 1024);
    run_vector_add(module, 1000, 96);
    cuda_module_unload(module);
    free(ptx);
    sb_free(&err);
}

Test(cuda_smoke, vector_add_from_cubin) {
    char path[4096];
    if (!backend_have_nvjitlink() && !backend_find_ptxas(path, sizeof path, NULL))
        cr_skip_test("neither nvJitLink nor ptxas on this machine: no cubin");
    char *ptx = vector_add_ptx();
    Strbuf cubin = {0}, err = {0};
    cr_assert(backend_ptx_to_cubin(ptx, strlen(ptx), arch, CUBIN_TOOL_AUTO, &cubin, &err), "%s",
              sb_str(&err));
    CudaModule *module;
    cr_assert_eq(cuda_module_load_cubin(device, cubin.data, cubin.len, &module, &err), TILE_OK,
                 "%s", sb_str(&err));
    run_vector_add(module, 123457, 128);
    cuda_module_unload(module);
    free(ptx);
    sb_free(&cubin);
    sb_free(&err);
}

Test(cuda_smoke, errors_name_the_call_and_the_driver_error) {
    char *ptx = vector_add_ptx();
    Strbuf err = {0};
    CudaModule *module;
    cr_assert_eq(cuda_module_load_ptx(device, ptx, &module, &err), TILE_OK, "%s", sb_str(&err));
    CudaFunction *fn = (CudaFunction *)1;
    cr_assert_eq(cuda_module_function(module, "no_such_kernel", &fn, &err), TILE_ERROR_NOT_FOUND);
    cr_assert_null(fn);
    cr_assert(strstr(sb_str(&err), "cuModuleGetFunction("), "%s", sb_str(&err));
    cr_assert(strstr(sb_str(&err), "CUDA_ERROR_NOT_FOUND"), "%s", sb_str(&err));
    cr_assert(strstr(sb_str(&err), "cuda.c:"), "%s", sb_str(&err));
    cuda_module_unload(module);

    sb_clear(&err);
    const char bad[] = ".version 8.0\n.target sm_80\n.address_size 64\n"
                       ".visible .entry k() {\n  bogus.instruction %r1;\n  ret;\n}\n";
    cr_assert_neq(cuda_module_load_ptx(device, bad, &module, &err), TILE_OK);
    cr_assert(strstr(sb_str(&err), "cuModuleLoadDataEx("), "%s", sb_str(&err));
    cr_assert(strstr(sb_str(&err), "JIT log:"), "no JIT log in: %s", sb_str(&err));
    cr_assert(strstr(sb_str(&err), "bogus"), "%s", sb_str(&err));

    sb_clear(&err);
    CudaPtr huge;
    cr_assert_eq(cuda_alloc(device, (size_t)1 << 50, &huge, &err), TILE_ERROR_OUT_OF_MEMORY,
                 "%s", sb_str(&err));
    cr_assert(strstr(sb_str(&err), "CUDA_ERROR_OUT_OF_MEMORY"), "%s", sb_str(&err));
    free(ptx);
    sb_free(&err);
}

Test(cuda_smoke, dynamic_shared_memory_above_48k) {
    int optin = cuda_device_max_shared_optin(device);
    if (optin <= 48 * 1024) cr_skip_test("this GPU allows only %d bytes per block", optin);
    char *ptx = vector_add_ptx();
    Strbuf err = {0};
    CudaModule *module;
    CudaFunction *fn;
    cr_assert_eq(cuda_module_load_ptx(device, ptx, &module, &err), TILE_OK, "%s", sb_str(&err));
    cr_assert_eq(cuda_module_function(module, LLVM_VECTOR_ADD_NAME, &fn, &err), TILE_OK);
    CudaPtr d;
    int n = 4;
    cr_assert_eq(cuda_alloc(device, 16, &d, &err), TILE_OK);
    void *params[] = {&d, &d, &d, &n};
    CudaLaunch launch = {.grid = {1}, .block = {32}, .shared_bytes = (unsigned)optin};
    /* Without the attribute the launch is refused; with it, it runs. */
    cr_assert_neq(cuda_launch(device, fn, &launch, params, &err), TILE_OK);
    sb_clear(&err);
    cr_assert_eq(cuda_function_set_max_dynamic_shared(device, fn, optin, &err), TILE_OK, "%s",
                 sb_str(&err));
    cr_assert_eq(cuda_launch(device, fn, &launch, params, &err), TILE_OK, "%s", sb_str(&err));
    cr_assert_eq(cuda_synchronize(device, &err), TILE_OK, "%s", sb_str(&err));
    cuda_free(device, d, &err);
    cuda_module_unload(module);
    free(ptx);
    sb_free(&err);
}

Test(cuda_smoke, stream_and_events_time_a_launch) {
    char *ptx = vector_add_ptx();
    Strbuf err = {0};
    CudaModule *module;
    CudaFunction *fn;
    CudaStream *stream;
    CudaEvent *start, *end;
    cr_assert_eq(cuda_module_load_ptx(device, ptx, &module, &err), TILE_OK, "%s", sb_str(&err));
    cr_assert_eq(cuda_module_function(module, LLVM_VECTOR_ADD_NAME, &fn, &err), TILE_OK);
    cr_assert_eq(cuda_stream_create(device, &stream, &err), TILE_OK, "%s", sb_str(&err));
    cr_assert_eq(cuda_event_create(device, &start, &err), TILE_OK, "%s", sb_str(&err));
    cr_assert_eq(cuda_event_create(device, &end, &err), TILE_OK, "%s", sb_str(&err));
    int n = 1 << 24;
    CudaPtr d;
    cr_assert_eq(cuda_alloc(device, (size_t)n * 4, &d, &err), TILE_OK, "%s", sb_str(&err));
    void *params[] = {&d, &d, &d, &n};
    CudaLaunch launch = {.grid = {(unsigned)(n / 256)}, .block = {256}, .stream = stream};
    cr_assert_eq(cuda_event_record(device, start, stream, &err), TILE_OK, "%s", sb_str(&err));
    for (int i = 0; i < 10; i++)
        cr_assert_eq(cuda_launch(device, fn, &launch, params, &err), TILE_OK, "%s", sb_str(&err));
    cr_assert_eq(cuda_event_record(device, end, stream, &err), TILE_OK, "%s", sb_str(&err));
    float ms = -1;
    cr_assert_eq(cuda_event_elapsed_ms(device, start, end, &ms, &err), TILE_OK, "%s", sb_str(&err));
    cr_assert_gt(ms, 0.0f);
    cr_assert_eq(cuda_stream_synchronize(device, stream, &err), TILE_OK, "%s", sb_str(&err));
    /* a, b and c alias here, so this times launches, not memory bandwidth. */
    cr_log_info("vector_add, %d elements: %.3f ms per launch", n, (double)ms / 10);
    cuda_event_destroy(device, start);
    cuda_event_destroy(device, end);
    cuda_stream_destroy(device, stream);
    cuda_free(device, d, &err);
    cuda_module_unload(module);
    free(ptx);
    sb_free(&err);
}
#else
Test(cuda_smoke, built_without_llvm) { cr_skip_test("built with TILE_WITH_LLVM=OFF: no PTX"); }
#endif
