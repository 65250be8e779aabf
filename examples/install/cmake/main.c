/*
 * install_cmake_example: a program built against an installed tile (find_package(tile)). It
 * launches vector_add through the typed function that tile_add_kernels generated
 * (ex_vector_add_launch) and softmax compiled at run time from the installed stdlib source, and
 * checks both against C. Exit status 0 when both match.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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

enum { N = 1000, M = 5, K = 300 };

int main(void) {
    tile_context *ctx;
    CHECK(tile_context_create(TILE_DEVICE_DEFAULT, 0, &ctx));
    static float a[N], b[N], c[N], x[M * K], y[M * K];
    for (int i = 0; i < N; i++) {
        a[i] = (float)i;
        b[i] = 0.25f * (float)(i % 5);
    }
    for (int i = 0; i < M * K; i++) x[i] = (float)sin(i * 0.1);
    void *da, *db, *dc, *dx, *dy;
    CHECK(tile_alloc(ctx, sizeof a, &da));
    CHECK(tile_alloc(ctx, sizeof b, &db));
    CHECK(tile_alloc(ctx, sizeof c, &dc));
    CHECK(tile_alloc(ctx, sizeof x, &dx));
    CHECK(tile_alloc(ctx, sizeof y, &dy));
    CHECK(tile_copy_to_device(ctx, da, a, sizeof a));
    CHECK(tile_copy_to_device(ctx, db, b, sizeof b));
    CHECK(tile_copy_to_device(ctx, dx, x, sizeof x));

    int64_t n = N, mk[2] = {M, K};
    CHECK(ex_vector_add_launch(ctx, tile_tensor_contiguous(TILE_F32, da, 1, &n),
                               tile_tensor_contiguous(TILE_F32, db, 1, &n),
                               tile_tensor_contiguous(TILE_F32, dc, 1, &n), NULL));

    tile_program *prog;
    tile_kernel *softmax;
    CHECK(tile_program_from_file(ctx, TILE_STDLIB_DIR "/core/softmax.tile", &prog));
    CHECK(tile_program_get_kernel(prog, "softmax", NULL, 0, &softmax));
    tile_arg args[2] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, dx, 2, mk)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, dy, 2, mk)}};
    CHECK(tile_kernel_launch(softmax, args, 2, NULL));
    CHECK(tile_synchronize(ctx));
    CHECK(tile_copy_to_host(ctx, c, dc, sizeof c));
    CHECK(tile_copy_to_host(ctx, y, dy, sizeof y));

    int bad = 0;
    for (int i = 0; i < N; i++) bad += c[i] != a[i] + b[i];
    for (int r = 0; r < M; r++) {
        double max = -INFINITY, sum = 0;
        for (int j = 0; j < K; j++) max = fmax(max, x[r * K + j]);
        for (int j = 0; j < K; j++) sum += exp(x[r * K + j] - max);
        for (int j = 0; j < K; j++) bad += fabs(y[r * K + j] - exp(x[r * K + j] - max) / sum) > 1e-5;
    }
    printf("tile %s on %s: vector_add (ahead of time) and softmax (from %s): %s\n", tile_version(),
           tile_context_device_name(ctx), TILE_STDLIB_DIR, bad ? "WRONG" : "ok");
    tile_program_destroy(prog);
    tile_free(ctx, da);
    tile_free(ctx, db);
    tile_free(ctx, dc);
    tile_free(ctx, dx);
    tile_free(ctx, dy);
    tile_context_destroy(ctx);
    return bad != 0;
}
