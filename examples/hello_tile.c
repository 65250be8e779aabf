/*
 * hello_tile: the main job of the README. A host program that JIT-compiles a .tile kernel
 * through the public API, runs it on the default device (a GPU when there is one and the
 * build supports it, else the CPU virtual machine; TILE_DEVICE=vm|cuda overrides), checks
 * the result against plain C, and says where it ran.
 *
 *   hello_tile [path/to/stdlib/core/softmax.tile] [rows] [cols]
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "tile/tile.h"

#ifndef TILE_SOURCE_DIR
#define TILE_SOURCE_DIR "."
#endif

static int fail(tile_context *ctx, const char *what, tile_status st) {
    fprintf(stderr, "hello_tile: %s failed (%s)\n%s\n", what, tile_status_name(st), tile_context_message(ctx));
    return 1;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : TILE_SOURCE_DIR "/stdlib/core/softmax.tile";
    int64_t rows = argc > 2 ? atoll(argv[2]) : 333, cols = argc > 3 ? atoll(argv[3]) : 1500;
    if (rows <= 0 || cols <= 0) {
        fprintf(stderr, "usage: hello_tile [softmax.tile] [rows > 0] [cols > 0]\n");
        return 2;
    }
    tile_context *ctx;
    tile_status st = tile_context_create(TILE_DEVICE_DEFAULT, 0, &ctx);
    if (st != TILE_OK) return fail(NULL, "tile_context_create", st);

    tile_program *prog;
    tile_kernel *kernel;
    if ((st = tile_program_from_file(ctx, path, &prog)) != TILE_OK) return fail(ctx, "compiling the program", st);
    if ((st = tile_program_get_kernel(prog, "softmax", NULL, 0, &kernel)) != TILE_OK)
        return fail(ctx, "specializing the kernel", st);

    size_t n = (size_t)(rows * cols), bytes = n * sizeof(float);
    float *x = malloc(bytes), *y = malloc(bytes);
    srand(7);
    for (size_t i = 0; i < n; i++) x[i] = 8.0f * ((float)rand() / (float)RAND_MAX) - 4.0f;

    void *dx, *dy;
    if ((st = tile_alloc(ctx, bytes, &dx)) != TILE_OK || (st = tile_alloc(ctx, bytes, &dy)) != TILE_OK)
        return fail(ctx, "tile_alloc", st);
    tile_copy_to_device(ctx, dx, x, bytes);
    int64_t shape[2] = {rows, cols};
    tile_arg args[2] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, dx, 2, shape)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, dy, 2, shape)}};
    if ((st = tile_kernel_launch(kernel, args, 2, NULL)) != TILE_OK) return fail(ctx, "launching", st);
    if ((st = tile_synchronize(ctx)) != TILE_OK) return fail(ctx, "tile_synchronize", st);
    tile_copy_to_host(ctx, y, dy, bytes);

    double worst = 0;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        double mx = -INFINITY, sum = 0;
        for (int64_t c = 0; c < cols; c++) mx = fmax(mx, xr[c]);
        for (int64_t c = 0; c < cols; c++) sum += exp(xr[c] - mx);
        for (int64_t c = 0; c < cols; c++) {
            double want = exp(xr[c] - mx) / sum, err = fabs(y[r * cols + c] - want) / want;
            if (!(err <= worst)) worst = err;
        }
    }
    bool ok = worst < 1e-4;
    printf("softmax of %lld x %lld on %s: %s (largest relative error %.2e)\n", (long long)rows, (long long)cols,
           tile_context_device_name(ctx), ok ? "correct" : "WRONG", worst);
    tile_free(ctx, dx);
    tile_free(ctx, dy);
    tile_program_destroy(prog);
    tile_context_destroy(ctx);
    free(x);
    free(y);
    return ok ? 0 : 1;
}
