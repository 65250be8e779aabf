/*
 * aot_example: launches kernels compiled ahead of time (tile_add_kernels in CMakeLists.txt)
 * through their generated typed launch functions, checks the results against C, and prints
 * where they ran.
 *
 * The generated code (vector_add.tile.h/.c, softmax.tile.h/.c in the build folder) embeds each
 * kernel's cubins for sm_80 and sm_90a and its .tile source: on a GPU the matching cubin is
 * loaded without running the code generator; on the VM (no GPU, or TILE_DEVICE=vm) the kernel
 * is interpreted from the source. Exit status 0 when every result matches.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "softmax.tile.h"
#include "tile/tile.h"
#include "vector_add.tile.h"

#define CHECK(call)                                                                                     \
    do {                                                                                                \
        tile_status st_ = (call);                                                                       \
        if (st_ != TILE_OK) {                                                                           \
            fprintf(stderr, "%s failed: %s: %s\n", #call, tile_status_name(st_), tile_context_message(ctx)); \
            exit(1);                                                                                    \
        }                                                                                               \
    } while (0)

static void print_images(const tile_aot_kernel *k) {
    printf("  %s: %zu embedded image%s", k->kernel, k->nimages, k->nimages == 1 ? "" : "s");
    for (size_t i = 0; i < k->nimages; i++) printf("%s%s (%zu bytes)", i ? ", " : ": ", k->images[i].arch, k->images[i].size);
    printf("\n");
}

static int check_vector_add(tile_context *ctx) {
    enum { N = 10007 }; /* not a multiple of the block: the last block is partial */
    float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b), *c = malloc(N * sizeof *c);
    for (int i = 0; i < N; i++) {
        a[i] = (float)i * 0.5f;
        b[i] = 1.0f - (float)(i % 7);
    }
    void *da, *db, *dc;
    CHECK(tile_alloc(ctx, N * sizeof(float), &da));
    CHECK(tile_alloc(ctx, N * sizeof(float), &db));
    CHECK(tile_alloc(ctx, N * sizeof(float), &dc));
    CHECK(tile_copy_to_device(ctx, da, a, N * sizeof(float)));
    CHECK(tile_copy_to_device(ctx, db, b, N * sizeof(float)));
    int64_t shape[1] = {N};
    CHECK(tk_vector_add_launch(ctx, tile_tensor_contiguous(TILE_F32, da, 1, shape),
                               tile_tensor_contiguous(TILE_F32, db, 1, shape),
                               tile_tensor_contiguous(TILE_F32, dc, 1, shape), NULL));
    CHECK(tile_synchronize(ctx));
    CHECK(tile_copy_to_host(ctx, c, dc, N * sizeof(float)));
    int bad = 0;
    for (int i = 0; i < N; i++)
        if (c[i] != a[i] + b[i]) bad++;
    printf("vector_add  n=%d: %s (%d mismatches)\n", N, bad ? "WRONG" : "ok", bad);
    tile_free(ctx, da);
    tile_free(ctx, db);
    tile_free(ctx, dc);
    free(a);
    free(b);
    free(c);
    return bad != 0;
}

static int check_softmax(tile_context *ctx) {
    enum { M = 37, N = 300 };
    float *x = malloc(M * N * sizeof *x), *y = malloc(M * N * sizeof *y);
    for (int i = 0; i < M * N; i++) x[i] = (float)sin(i * 0.37) * 4.0f;
    void *dx, *dy;
    CHECK(tile_alloc(ctx, M * N * sizeof(float), &dx));
    CHECK(tile_alloc(ctx, M * N * sizeof(float), &dy));
    CHECK(tile_copy_to_device(ctx, dx, x, M * N * sizeof(float)));
    int64_t shape[2] = {M, N};
    CHECK(tk_softmax_launch(ctx, tile_tensor_contiguous(TILE_F32, dx, 2, shape),
                            tile_tensor_contiguous(TILE_F32, dy, 2, shape), NULL));
    CHECK(tile_synchronize(ctx));
    CHECK(tile_copy_to_host(ctx, y, dy, M * N * sizeof(float)));
    double worst = 0;
    for (int r = 0; r < M; r++) {
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < N; j++) mx = fmax(mx, x[r * N + j]);
        for (int j = 0; j < N; j++) sum += exp(x[r * N + j] - mx);
        for (int j = 0; j < N; j++) worst = fmax(worst, fabs(y[r * N + j] - exp(x[r * N + j] - mx) / sum));
    }
    int bad = !(worst <= 1e-5);
    printf("softmax     %dx%d: %s (largest difference %.3g)\n", M, N, bad ? "WRONG" : "ok", worst);
    tile_free(ctx, dx);
    tile_free(ctx, dy);
    free(x);
    free(y);
    return bad;
}

int main(void) {
    tile_context *ctx = NULL;
    tile_status st = tile_context_create(TILE_DEVICE_DEFAULT, 0, &ctx);
    if (st != TILE_OK) {
        fprintf(stderr, "no device: %s\n", tile_context_message(NULL));
        return 1;
    }
    printf("running on %s\n", tile_context_device_name(ctx));
    print_images(&tk_vector_add_kernel);
    print_images(&tk_softmax_kernel);
    if (tile_context_device(ctx) == TILE_DEVICE_VM) printf("  (the VM interprets the embedded source; the images are unused)\n");
    int bad = check_vector_add(ctx) + check_softmax(ctx);
    tile_context_destroy(ctx);
    printf("%s\n", bad ? "FAILED" : "all results match C");
    return bad ? 1 : 0;
}
