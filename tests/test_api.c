/* test_api.c: the public API (include/tile/tile.h) on the VM: contexts and the default device
 * ($TILE_DEVICE), the cuda device's error where there is no GPU, argument errors, missing
 * kernels and files, compile errors returned in the message, launch errors, a real launch,
 * emitting IR / LLVM / PTX / cubin (the GPU forms skip with the code generator's reason when it
 * reports the kernel unsupported), and messages that stay per thread. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cuda.h"
#include "testutil.h"
#include "tile/tile.h"


/* ---- contexts ------------------------------------------------------------------------------ */
Test(api, vm_context) {
    tile_context *ctx = test_vm_context();
    cr_assert_eq(tile_context_device(ctx), TILE_DEVICE_VM);
    cr_assert_str_eq(tile_context_device_name(ctx), "vm (CPU interpreter)");
    cr_assert_str_eq(tile_context_message(ctx), "");
    tile_context_destroy(ctx);
}

/* tile_context_num_sms on the VM is vm_num_sms(): TILE_VM_NUM_SMS when valid, read at each
 * call, else 4 (the count num_sms() gives a kernel there: test_gemm_persistent's num_sms suite). */
Test(api, vm_num_sms_follows_TILE_VM_NUM_SMS) {
    tile_context *ctx = test_vm_context();
    unsetenv("TILE_VM_NUM_SMS");
    cr_assert_eq(tile_context_num_sms(ctx), 4);
    setenv("TILE_VM_NUM_SMS", "132", 1);
    cr_assert_eq(tile_context_num_sms(ctx), 132);
    setenv("TILE_VM_NUM_SMS", "1", 1);
    cr_assert_eq(tile_context_num_sms(ctx), 1);
    setenv("TILE_VM_NUM_SMS", "0", 1);
    cr_assert_eq(tile_context_num_sms(ctx), 4);
    unsetenv("TILE_VM_NUM_SMS");
    cr_assert_eq(tile_context_num_sms(NULL), 0);
    tile_context_destroy(ctx);
}

Test(api, default_device_from_environment) {
    tile_context *ctx = NULL;
    setenv("TILE_DEVICE", "vm", 1);
    cr_assert_eq(tile_context_create(TILE_DEVICE_DEFAULT, 0, &ctx), TILE_OK);
    cr_assert_eq(tile_context_device(ctx), TILE_DEVICE_VM);
    tile_context_destroy(ctx);

    setenv("TILE_DEVICE", "tpu", 1);
    cr_assert_eq(tile_context_create(TILE_DEVICE_DEFAULT, 0, &ctx), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert_null(ctx);
    cr_assert(strstr(tile_context_message(NULL), "TILE_DEVICE=tpu"), "%s", tile_context_message(NULL));

    unsetenv("TILE_DEVICE");
    tile_status st = tile_context_create(TILE_DEVICE_DEFAULT, 0, &ctx);
    if (cuda_device_count() == 0) {
        cr_assert_eq(st, TILE_OK);
        cr_assert_eq(tile_context_device(ctx), TILE_DEVICE_VM, "no GPU: the default is the VM");
        cr_assert_str_eq(tile_context_message(NULL), "", "a success clears the context-less message");
    } else {
        cr_assert_eq(st, TILE_OK, "%s", tile_context_message(NULL));
        cr_assert_eq(tile_context_device(ctx), TILE_DEVICE_CUDA, "a GPU is the default when present");
        cr_assert(strncmp(tile_context_device_name(ctx), "cuda:0 (", 8) == 0, "%s", tile_context_device_name(ctx));
    }
    tile_context_destroy(ctx);
}

Test(api, cuda_without_gpu_is_a_clear_error) {
    if (cuda_device_count() > 0) cr_skip_test("this machine has a GPU");
    tile_context *ctx = (tile_context *)1;
    tile_status st = tile_context_create(TILE_DEVICE_CUDA, 0, &ctx);
    cr_assert(st == TILE_ERROR_NOT_FOUND || st == TILE_ERROR_DEVICE, "%s", tile_status_name(st));
    cr_assert_null(ctx);
    const char *msg = tile_context_message(NULL);
    cr_assert(strstr(msg, "cuda"), "%s", msg);
    cr_assert(strstr(msg, "driver") || strstr(msg, "GPU"), "%s", msg);
    setenv("TILE_DEVICE", "cuda", 1);
    cr_assert_neq(tile_context_create(TILE_DEVICE_DEFAULT, 0, &ctx), TILE_OK, "TILE_DEVICE=cuda forces cuda");
}

Test(api, cuda_bad_ordinal) {
    int n = cuda_device_count();
    if (n == 0) cr_skip_test("no GPU");
    tile_context *ctx = NULL;
    cr_assert_eq(tile_context_create(TILE_DEVICE_CUDA, n, &ctx), TILE_ERROR_NOT_FOUND);
    cr_assert(strstr(tile_context_message(NULL), "no such device"), "%s", tile_context_message(NULL));
}

Test(api, bad_arguments) {
    tile_context *ctx = NULL;
    cr_assert_eq(tile_context_create(TILE_DEVICE_VM, 0, NULL), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(tile_context_create((tile_device_kind)42, 0, &ctx), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(tile_context_create(TILE_DEVICE_VM, 3, &ctx), TILE_ERROR_NOT_FOUND);
    ctx = test_vm_context();
    void *p = NULL;
    cr_assert_eq(tile_alloc(NULL, 16, &p), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(tile_alloc(ctx, 16, NULL), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(tile_copy_to_device(ctx, NULL, "x", 1), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(tile_context_message(ctx), "tile_copy_to_device"), "%s", tile_context_message(ctx));
    cr_assert_eq(tile_copy_to_host(ctx, NULL, NULL, 0), TILE_OK, "zero bytes need no pointers");
    cr_assert_eq(tile_synchronize(NULL), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(tile_synchronize(ctx), TILE_OK);
    tile_program *prog = NULL;
    cr_assert_eq(tile_program_from_string(ctx, "x", NULL, 5, &prog), TILE_ERROR_INVALID_ARGUMENT);
    prog = test_load_program(ctx, "stdlib/core/vector_add.tile");
    tile_kernel *k = NULL;
    cr_assert_eq(tile_program_get_kernel(prog, NULL, NULL, 0, &k), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(tile_program_get_kernel(prog, "vector_add", NULL, 1, &k), TILE_ERROR_INVALID_ARGUMENT);
    tile_constant twice[] = {{.name = "BLOCK", .i = 64}, {.name = "BLOCK", .i = 128}};
    cr_assert_eq(tile_program_get_kernel(prog, "vector_add", twice, 2, &k), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(tile_context_message(ctx), "given twice"), "%s", tile_context_message(ctx));
    tile_program_destroy(prog);
    tile_context_destroy(ctx);
}

/* ---- programs and compile errors ---------------------------------------------------------------- */
Test(api, missing_file_and_kernel) {
    tile_context *ctx = test_vm_context();
    tile_program *prog = NULL;
    cr_assert_eq(tile_program_from_file(ctx, "/nonexistent/x.tile", &prog), TILE_ERROR_NOT_FOUND);
    cr_assert(strstr(tile_context_message(ctx), "/nonexistent/x.tile"), "%s", tile_context_message(ctx));
    prog = test_load_program(ctx, "stdlib/core/reduce.tile");
    cr_assert_eq(tile_program_num_kernels(prog), 3);
    cr_assert_str_eq(tile_program_kernel_name(prog, 1), "cumsum_rows");
    cr_assert_null(tile_program_kernel_name(prog, 3));
    tile_kernel *k = NULL;
    cr_assert_eq(tile_program_get_kernel(prog, "nope", NULL, 0, &k), TILE_ERROR_NOT_FOUND);
    cr_assert(strstr(tile_context_message(ctx), "'nope'"), "%s", tile_context_message(ctx));
    cr_assert_null(k);
    /* A later success clears the message. */
    cr_assert_eq(tile_program_get_kernel(prog, "sum_rows", NULL, 0, &k), TILE_OK);
    cr_assert_str_eq(tile_context_message(ctx), "");
    tile_kernel *again = NULL;
    cr_assert_eq(tile_program_get_kernel(prog, "sum_rows", NULL, 0, &again), TILE_OK);
    cr_assert_eq(again, k, "the same specialization is compiled once");
    tile_program_destroy(prog);
    tile_context_destroy(ctx);
}

Test(api, syntax_error_in_message) {
    tile_context *ctx = test_vm_context();
    const char *src = "kernel k(x: tensor<f32>[N]) grid(1) {\n  let = 3;\n}\n";
    tile_program *prog = NULL;
    cr_assert_eq(tile_program_from_string(ctx, "bad.tile", src, strlen(src), &prog), TILE_ERROR_COMPILE);
    cr_assert_null(prog);
    cr_assert(strstr(tile_context_message(ctx), "bad.tile:2:"), "%s", tile_context_message(ctx));
    cr_assert(strstr(tile_context_message(ctx), "error"), "%s", tile_context_message(ctx));
    tile_context_destroy(ctx);
}

Test(api, semantic_error_in_message) {
    tile_context *ctx = test_vm_context();
    const char *src = "kernel k(x: tensor<f32>[N]) grid(1) {\n  x[0 :+ 4] = undefined_name;\n}\n";
    tile_program *prog = NULL;
    cr_assert_eq(tile_program_from_string(ctx, "sem.tile", src, strlen(src), &prog), TILE_OK, "%s",
                 tile_context_message(ctx));
    tile_kernel *k = NULL;
    cr_assert_eq(tile_program_get_kernel(prog, "k", NULL, 0, &k), TILE_ERROR_COMPILE);
    cr_assert(strstr(tile_context_message(ctx), "sem.tile:2:"), "%s", tile_context_message(ctx));
    cr_assert(strstr(tile_context_message(ctx), "undefined_name"), "%s", tile_context_message(ctx));
    /* An unknown constant is an error too. */
    tile_program *va = test_load_program(ctx, "stdlib/core/vector_add.tile");
    tile_constant c = {.name = "NOT_A_CONSTANT", .i = 1};
    cr_assert_eq(tile_program_get_kernel(va, "vector_add", &c, 1, &k), TILE_ERROR_COMPILE);
    cr_assert(strstr(tile_context_message(ctx), "NOT_A_CONSTANT"), "%s", tile_context_message(ctx));
    tile_program_destroy(va);
    tile_program_destroy(prog);
    tile_context_destroy(ctx);
}

/* ---- launches ------------------------------------------------------------------------------------ */
Test(api, launch_vector_add_and_its_errors) {
    tile_context *ctx = test_vm_context();
    tile_program *prog = test_load_program(ctx, "stdlib/core/vector_add.tile");
    tile_kernel *k = NULL;
    tile_constant block = {.name = "BLOCK", .i = 128};
    cr_assert_eq(tile_program_get_kernel(prog, "vector_add", &block, 1, &k), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(tile_kernel_num_params(k), 3);
    tile_param_info info;
    cr_assert_eq(tile_kernel_param(k, 2, &info), TILE_OK);
    cr_assert_str_eq(info.name, "c");
    cr_assert_eq(info.kind, TILE_ARG_TENSOR);
    cr_assert_eq(info.dtype, TILE_F32);
    cr_assert_str_eq(info.dim_symbols[0], "N");
    cr_assert_eq(tile_kernel_param(k, 3, &info), TILE_ERROR_INVALID_ARGUMENT);

    enum { N = 1000 };
    int64_t shape[1] = {N};
    float *a, *b, *c;
    cr_assert_eq(tile_alloc(ctx, N * 4, (void **)&a), TILE_OK);
    cr_assert_eq(tile_alloc(ctx, N * 4, (void **)&b), TILE_OK);
    cr_assert_eq(tile_alloc(ctx, N * 4, (void **)&c), TILE_OK);
    float ha[N], hb[N], hc[N];
    for (int i = 0; i < N; i++) {
        ha[i] = (float)i * 0.5f;
        hb[i] = (float)(N - i);
    }
    cr_assert_eq(tile_copy_to_device(ctx, a, ha, sizeof ha), TILE_OK);
    cr_assert_eq(tile_copy_to_device(ctx, b, hb, sizeof hb), TILE_OK);
    tile_arg args[3] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, a, 1, shape)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, b, 1, shape)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, c, 1, shape)}};
    cr_assert_eq(tile_kernel_launch(k, args, 3, NULL), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(tile_synchronize(ctx), TILE_OK);
    cr_assert_eq(tile_copy_to_host(ctx, hc, c, sizeof hc), TILE_OK);
    for (int i = 0; i < N; i++) cr_assert_eq(hc[i], ha[i] + hb[i], "c[%d]", i);

    /* Errors name the launch and the parameter. */
    cr_assert_eq(tile_kernel_launch(k, args, 2, NULL), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(tile_context_message(ctx), "launch of 'vector_add'"), "%s", tile_context_message(ctx));
    cr_assert_eq(tile_kernel_launch(k, NULL, 3, NULL), TILE_ERROR_INVALID_ARGUMENT);
    tile_arg wrong[3] = {args[0], args[1], args[2]};
    wrong[1].tensor.dtype = TILE_F16;
    cr_assert_eq(tile_kernel_launch(k, wrong, 3, NULL), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(tile_context_message(ctx), "'b'"), "%s", tile_context_message(ctx));
    wrong[1] = args[1];
    wrong[2].tensor.shape[0] = N + 1; /* N binds to 1000 first, then c disagrees */
    cr_assert_eq(tile_kernel_launch(k, wrong, 3, NULL), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(tile_context_message(ctx), "'c'"), "%s", tile_context_message(ctx));
    wrong[2] = args[2];
    wrong[0].tensor.data = NULL;
    cr_assert_eq(tile_kernel_launch(k, wrong, 3, NULL), TILE_ERROR_INVALID_ARGUMENT);
    wrong[0] = args[0];
    wrong[0].kind = TILE_ARG_INT;
    cr_assert_eq(tile_kernel_launch(k, wrong, 3, NULL), TILE_ERROR_INVALID_ARGUMENT);
    /* a stream of this context works; one of another context is refused before anything runs */
    tile_stream *stream;
    cr_assert_eq(tile_stream_create(ctx, &stream), TILE_OK);
    cr_assert_eq(tile_kernel_launch(k, args, 3, stream), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(tile_stream_synchronize(stream), TILE_OK);
    tile_stream_destroy(stream);
    tile_context *other;
    cr_assert_eq(tile_context_create(TILE_DEVICE_VM, 0, &other), TILE_OK);
    cr_assert_eq(tile_stream_create(other, &stream), TILE_OK);
    cr_assert_eq(tile_kernel_launch(k, args, 3, stream), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(tile_context_message(ctx), "another context"), "%s", tile_context_message(ctx));
    tile_stream_destroy(stream);
    tile_context_destroy(other);

    tile_free(ctx, a);
    tile_free(ctx, b);
    tile_free(ctx, c);
    tile_program_destroy(prog);
    tile_context_destroy(ctx);
}

/* ---- emit ------------------------------------------------------------------------------------ */
static tile_status emit(tile_program *prog, const char *kernel, tile_emit_kind kind, const char *arch, char **out,
                        size_t *len) {
    tile_emit_options opt = {.arch = arch};
    return tile_program_emit(prog, kernel, NULL, 0, kind, &opt, out, len);
}

Test(api, emit_ir) {
    tile_context *ctx = test_vm_context();
    tile_program *prog = test_load_program(ctx, "stdlib/core/vector_add.tile");
    char *text = NULL;
    size_t len = 0;
    cr_assert_eq(emit(prog, "vector_add", TILE_EMIT_IR, NULL, &text, &len), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(strlen(text), len);
    cr_assert(strstr(text, "vector_add"), "%s", text);
    tile_string_free(text);
    tile_emit_options bad = {.dump_after = "no-such-pass"};
    cr_assert_eq(tile_program_emit(prog, "vector_add", NULL, 0, TILE_EMIT_IR, &bad, &text, &len),
                 TILE_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(tile_context_message(ctx), "no-such-pass"));
    tile_emit_options ptx_dump = {.dump_after = "dce"};
    cr_assert_eq(tile_program_emit(prog, "vector_add", NULL, 0, TILE_EMIT_PTX, &ptx_dump, &text, &len),
                 TILE_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(tile_program_emit(prog, "vector_add", NULL, 0, (tile_emit_kind)99, NULL, &text, &len),
                 TILE_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(emit(prog, "nope", TILE_EMIT_IR, NULL, &text, &len), TILE_ERROR_NOT_FOUND); /* as get_kernel says it */
    tile_program_destroy(prog);
    tile_context_destroy(ctx);
}

/* Emits kind for every kernel of vector_add.tile and softmax.tile for both architectures;
 * check(text, len) judges each. Skips with the code generator's reason when it reports a
 * kernel unsupported. */
static void emit_gpu_form(tile_emit_kind kind, void (*check)(const char *text, size_t len, const char *kernel)) {
    tile_context *ctx = test_vm_context();
    const char *files[] = {"stdlib/core/vector_add.tile", "stdlib/core/softmax.tile"};
    const char *archs[] = {"sm_80", "sm_90a"};
    for (int f = 0; f < 2; f++) {
        tile_program *prog = test_load_program(ctx, files[f]);
        const char *kernel = tile_program_kernel_name(prog, 0);
        for (int a = 0; a < 2; a++) {
            char *text = NULL;
            size_t len = 0;
            tile_status st = emit(prog, kernel, kind, archs[a], &text, &len);
            if (st == TILE_ERROR_UNSUPPORTED) {
                char reason[1024];
                snprintf(reason, sizeof reason, "%s", tile_context_message(ctx));
                tile_program_destroy(prog);
                tile_context_destroy(ctx);
                cr_skip_test("%s", reason);
            }
            cr_assert_eq(st, TILE_OK, "%s %s: %s", kernel, archs[a], tile_context_message(ctx));
            cr_assert_gt(len, 0);
            check(text, len, kernel);
            tile_string_free(text);
        }
        tile_program_destroy(prog);
    }
    tile_context_destroy(ctx);
}

static void check_llvm(const char *text, size_t len, const char *kernel) {
    cr_assert_eq(strlen(text), len);
    cr_assert(strstr(text, "define"), "%s", text);
    cr_assert(strstr(text, kernel), "%s", text);
}

static void check_ptx(const char *text, size_t len, const char *kernel) {
    cr_assert_eq(strlen(text), len);
    cr_assert(strstr(text, ".entry"), "%s", text);
    cr_assert(strstr(text, kernel), "%s", text);
}

static void check_cubin(const char *text, size_t len, const char *kernel) {
    (void)kernel;
    cr_assert_gt(len, 4);
    cr_assert(memcmp(text, "\177ELF", 4) == 0, "a cubin is an ELF image");
}

Test(api, emit_llvm) { emit_gpu_form(TILE_EMIT_LLVM, check_llvm); }
Test(api, emit_ptx) { emit_gpu_form(TILE_EMIT_PTX, check_ptx); }
Test(api, emit_cubin) { emit_gpu_form(TILE_EMIT_CUBIN, check_cubin); }

Test(api, emit_unknown_arch) {
#ifndef TILE_HAVE_LLVM
    cr_skip_test("built without the LLVM backend");
#endif
    tile_context *ctx = test_vm_context();
    tile_program *prog = test_load_program(ctx, "stdlib/core/vector_add.tile");
    char *text = NULL;
    size_t len;
    cr_assert_eq(emit(prog, "vector_add", TILE_EMIT_PTX, "sm_70", &text, &len), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(tile_context_message(ctx), "sm_70"), "%s", tile_context_message(ctx));
    cr_assert_null(text);
    tile_program_destroy(prog);
    tile_context_destroy(ctx);
}

/* ---- messages per thread ------------------------------------------------------------------------- */
typedef struct MessageThread {
    tile_context *ctx;
    tile_program *prog;
    const char *missing;
    int wrong;
} MessageThread;

static void *message_thread(void *arg) {
    MessageThread *t = arg;
    char want[64];
    snprintf(want, sizeof want, "'%s'", t->missing);
    for (int i = 0; i < 200; i++) {
        tile_kernel *k;
        if (tile_program_get_kernel(t->prog, t->missing, NULL, 0, &k) != TILE_ERROR_NOT_FOUND) t->wrong++;
        if (!strstr(tile_context_message(t->ctx), want)) t->wrong++;
    }
    return NULL;
}

Test(api, messages_are_per_thread) {
    tile_context *ctx = test_vm_context();
    tile_program *prog = test_load_program(ctx, "stdlib/core/vector_add.tile");
    /* Each thread fails with its own kernel name and must read back its own message. */
    pthread_t th[4];
    MessageThread t[4] = {{ctx, prog, "first_missing", 0}, {ctx, prog, "second_missing", 0},
                          {ctx, prog, "third_missing", 0}, {ctx, prog, "fourth_missing", 0}};
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, message_thread, &t[i]);
    tile_kernel *k;
    for (int i = 0; i < 200; i++) {
        cr_assert_eq(tile_program_get_kernel(prog, "main_missing", NULL, 0, &k), TILE_ERROR_NOT_FOUND);
        cr_assert(strstr(tile_context_message(ctx), "'main_missing'"), "%s", tile_context_message(ctx));
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) cr_assert_eq(t[i].wrong, 0);
    cr_assert(strstr(tile_context_message(ctx), "'main_missing'"), "other threads did not overwrite it");
    tile_program_destroy(prog);
    tile_context_destroy(ctx);
}

/* The VM's device memory is host memory: a launch takes any host pointer (here a stack array
 * and malloc'd memory, as the Python package passes numpy's), and a wrapped stream (the
 * Python package wraps PyTorch's) orders nothing there but launches like any other. */
Test(api, vm_launch_on_host_pointers_and_wrapped_stream) {
    tile_context *ctx = test_vm_context();
    tile_program *prog = test_load_program(ctx, "stdlib/core/vector_add.tile");
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(prog, "vector_add", NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
    enum { N = 37 };
    float a[N], *b = malloc(N * sizeof *b), *c = malloc(N * sizeof *c);
    for (int i = 0; i < N; i++) {
        a[i] = (float)i;
        b[i] = 0.5f * (float)i;
        c[i] = -1;
    }
    int64_t shape[1] = {N};
    tile_arg args[3] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, a, 1, shape)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, b, 1, shape)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, c, 1, shape)}};
    tile_stream *stream = NULL;
    int dummy;
    cr_assert_eq(tile_stream_wrap(NULL, &dummy, &stream), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(tile_stream_wrap(ctx, NULL, NULL), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(tile_stream_wrap(ctx, &dummy, &stream), TILE_OK);
    cr_assert_eq(tile_kernel_launch(k, args, 3, stream), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(tile_stream_synchronize(stream), TILE_OK);
    tile_stream_destroy(stream);
    for (int i = 0; i < N; i++) cr_assert_eq(c[i], 1.5f * (float)i, "c[%d] = %g", i, c[i]);
    free(b);
    free(c);
    tile_program_destroy(prog);
    tile_context_destroy(ctx);
}
