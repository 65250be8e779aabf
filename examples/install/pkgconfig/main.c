/*
 * install_pkgconfig_example: a program built against an installed tile with pkg-config (see the
 * Makefile). It compiles vector_add from the installed stdlib at run time, runs it on the
 * default device (the GPU when there is one, else the VM) and checks the result. Exit status 0
 * when it matches.
 */
#include <stdio.h>
#include <stdlib.h>

#include <tile/tile.h>

int main(void) {
    enum { N = 4099 };
    static float a[N], b[N], c[N];
    for (int i = 0; i < N; i++) {
        a[i] = (float)i;
        b[i] = -0.5f * (float)i;
    }
    tile_context *ctx = NULL;
    tile_program *prog = NULL;
    tile_kernel *k = NULL;
    void *da = NULL, *db = NULL, *dc = NULL;
    int64_t n = N;
    tile_constant block = {.name = "BLOCK", .i = 512};
    tile_status st = tile_context_create(TILE_DEVICE_DEFAULT, 0, &ctx);
    if (st == TILE_OK) st = tile_program_from_file(ctx, TILE_STDLIB_DIR "/core/vector_add.tile", &prog);
    if (st == TILE_OK) st = tile_program_get_kernel(prog, "vector_add", &block, 1, &k);
    if (st == TILE_OK) st = tile_alloc(ctx, sizeof a, &da);
    if (st == TILE_OK) st = tile_alloc(ctx, sizeof b, &db);
    if (st == TILE_OK) st = tile_alloc(ctx, sizeof c, &dc);
    if (st == TILE_OK) st = tile_copy_to_device(ctx, da, a, sizeof a);
    if (st == TILE_OK) st = tile_copy_to_device(ctx, db, b, sizeof b);
    if (st == TILE_OK) {
        tile_arg args[3] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, da, 1, &n)},
                            {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, db, 1, &n)},
                            {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, dc, 1, &n)}};
        st = tile_kernel_launch(k, args, 3, NULL);
    }
    if (st == TILE_OK) st = tile_copy_to_host(ctx, c, dc, sizeof c);
    if (st != TILE_OK) {
        fprintf(stderr, "%s: %s\n", tile_status_name(st), tile_context_message(ctx));
        return 1;
    }
    int bad = 0;
    for (int i = 0; i < N; i++) bad += c[i] != a[i] + b[i];
    printf("tile %s on %s (pkg-config): vector_add %s\n", tile_version(), tile_context_device_name(ctx),
           bad ? "WRONG" : "ok");
    tile_free(ctx, da);
    tile_free(ctx, db);
    tile_free(ctx, dc);
    tile_program_destroy(prog);
    tile_context_destroy(ctx);
    return bad != 0;
}
