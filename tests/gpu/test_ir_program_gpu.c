/*
 * test_ir_program_gpu.c: IR programs (a name ending in ".ir") on the GPU, through the public API.
 * For stdlib's softmax and gemm, the IR that `tilec build --emit ir` prints (after the
 * target-independent passes) and the IR after the layout pass are loaded as programs on a cuda
 * context; each must give bit for bit the results of the .tile source on the same device (the
 * same IR reaches the same code generator). Skips where there is no GPU.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/tile.h"

static tile_context *gpu;

static void open_device(void) {
    if (tile_context_create(TILE_DEVICE_CUDA, 0, &gpu) != TILE_OK)
        cr_skip_test("no CUDA device: %s", tile_context_message(NULL));
}

static void close_device(void) { tile_context_destroy(gpu); }

TestSuite(ir_program_gpu, .init = open_device, .fini = close_device, .timeout = 300);

static tile_program *load_source(const char *file) {
    char path[1024];
    snprintf(path, sizeof path, "%s/stdlib/core/%s", TILE_SOURCE_DIR, file);
    tile_program *p;
    cr_assert_eq(tile_program_from_file(gpu, path, &p), TILE_OK, "%s", tile_context_message(gpu));
    return p;
}

/* The IR of `kernel` after the passes, or after the pass `dump_after` (its header removed). */
static char *emit_ir(tile_program *p, const char *kernel, const char *dump_after) {
    tile_emit_options opt = {.dump_after = dump_after};
    char *text;
    size_t len;
    cr_assert_eq(tile_program_emit(p, kernel, NULL, 0, TILE_EMIT_IR, &opt, &text, &len), TILE_OK, "%s",
                 tile_context_message(gpu));
    if (dump_after) {
        char *body = strchr(text, '\n');
        memmove(text, body + 1, strlen(body + 1) + 1);
    }
    return text;
}

/* Runs kernel of p on the GPU with `ntensors` tensors of the given shapes and bytes per element,
 * the first ninputs filled from seed, and returns the contents of the last one. */
static unsigned char *run(tile_program *p, const char *kernel, int ntensors, int ninputs, const int64_t (*shapes)[2],
                          tile_dtype dtype, size_t elem_bytes) {
    tile_kernel *k;
    tile_status st = tile_program_get_kernel(p, kernel, NULL, 0, &k);
    if (st == TILE_ERROR_UNSUPPORTED) cr_skip_test("%s", tile_context_message(gpu));
    cr_assert_eq(st, TILE_OK, "%s", tile_context_message(gpu));
    tile_arg args[4];
    void *dev[4];
    size_t bytes[4];
    for (int i = 0; i < ntensors; i++) {
        bytes[i] = (size_t)(shapes[i][0] * shapes[i][1]) * elem_bytes;
        unsigned char *host = malloc(bytes[i]);
        for (size_t b = 0; b < bytes[i]; b++) host[b] = i < ninputs ? (unsigned char)((b * 131 + (size_t)i * 17) % 61) : 0;
        cr_assert_eq(tile_alloc(gpu, bytes[i], &dev[i]), TILE_OK);
        cr_assert_eq(tile_copy_to_device(gpu, dev[i], host, bytes[i]), TILE_OK);
        free(host);
        args[i] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(dtype, dev[i], 2, shapes[i])};
    }
    st = tile_kernel_launch(k, args, (size_t)ntensors, NULL);
    /* the first launch compiles the GPU code: what the backend does not support yet skips here */
    if (st == TILE_ERROR_UNSUPPORTED) cr_skip_test("%s", tile_context_message(gpu));
    cr_assert_eq(st, TILE_OK, "%s", tile_context_message(gpu));
    unsigned char *out = malloc(bytes[ntensors - 1]);
    cr_assert_eq(tile_copy_to_host(gpu, out, dev[ntensors - 1], bytes[ntensors - 1]), TILE_OK, "%s",
                 tile_context_message(gpu));
    for (int i = 0; i < ntensors; i++) tile_free(gpu, dev[i]);
    return out;
}

static void check(const char *file, const char *kernel, int ntensors, const int64_t (*shapes)[2], tile_dtype dtype,
                  size_t elem_bytes) {
    tile_program *source = load_source(file);
    unsigned char *want = run(source, kernel, ntensors, ntensors - 1, shapes, dtype, elem_bytes);
    size_t out_bytes = (size_t)(shapes[ntensors - 1][0] * shapes[ntensors - 1][1]) * elem_bytes;
    const char *dumps[] = {NULL, "layout"};
    for (int d = 0; d < 2; d++) {
        char *ir = emit_ir(source, kernel, dumps[d]);
        tile_program *p;
        cr_assert_eq(tile_program_from_string(gpu, "kernel.ir", ir, strlen(ir), &p), TILE_OK, "%s",
                     tile_context_message(gpu));
        unsigned char *got = run(p, kernel, ntensors, ntensors - 1, shapes, dtype, elem_bytes);
        cr_assert(memcmp(got, want, out_bytes) == 0, "%s from its IR (%s) differs from its source on the GPU", kernel,
                  dumps[d] ? dumps[d] : "after the passes");
        free(got);
        tile_string_free(ir);
        tile_program_destroy(p);
    }
    free(want);
    tile_program_destroy(source);
}

Test(ir_program_gpu, softmax_from_ir_matches_the_source) {
    /* f32 inputs from bytes 0..60: finite numbers of every magnitude are fine for softmax. */
    const int64_t shapes[2][2] = {{37, 1000}, {37, 1000}};
    check("softmax.tile", "softmax", 2, shapes, TILE_F32, 4);
}

Test(ir_program_gpu, gemm_from_ir_matches_the_source) {
    const int64_t shapes[3][2] = {{300, 200}, {200, 260}, {300, 260}};
    check("gemm.tile", "gemm", 3, shapes, TILE_BF16, 2);
}
