/* test_launch_gpu.c: the launch fast path on a real device (runtime/launch.c, rt_cuda_select):
 * vector_add launched many times with the facts changing between launches (aligned and
 * misaligned data pointers, sizes that are and are not multiples of 16), so that the variant
 * taken without the lock must follow the facts, and the grid computed by the compiled steps
 * must cover every element; each result is checked exactly. Also a program made twice from the
 * same source gives the same loaded kernel, and launches on a stream of one's own. Skips with
 * a message where there is no GPU. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"
#include "../testutil.h"

static tile_context *ctx;

static void open_gpu(void) {
    if (tile_context_create(TILE_DEVICE_CUDA, 0, &ctx) != TILE_OK)
        cr_skip_test("no CUDA device: %s", tile_context_message(NULL));
}

static void close_gpu(void) {
    tile_context_destroy(ctx);
    ctx = NULL;
}

TestSuite(launch_gpu, .init = open_gpu, .fini = close_gpu, .timeout = 600);

Test(launch_gpu, facts_change_between_launches) {
    size_t len;
    char *src = test_read_source_file("stdlib/core/vector_add.tile", &len);
    tile_program *p, *again;
    tile_status st = tile_program_from_string(ctx, "vector_add.tile", src, len, &p);
    cr_assert_eq(st, TILE_OK, "%s", tile_context_message(ctx));
    tile_kernel *k, *k2;
    st = tile_program_get_kernel(p, "vector_add", NULL, 0, &k);
    if (st == TILE_ERROR_UNSUPPORTED) cr_skip_test("%s", tile_context_message(ctx));
    cr_assert_eq(st, TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_not_null(k->grid, "vector_add's grid compiles into steps");
    cr_assert_eq(tile_program_from_string(ctx, "vector_add.tile", src, len, &again), TILE_OK);
    cr_assert_eq(tile_program_get_kernel(again, "vector_add", NULL, 0, &k2), TILE_OK);
    cr_assert_eq(k2, k, "the same source gives the same kernel without compiling");
    tile_program_destroy(again);

    enum { MAX = 70000 };
    float *ha = malloc(sizeof(float) * (MAX + 4)), *hb = malloc(sizeof(float) * (MAX + 4)),
          *hc = malloc(sizeof(float) * (MAX + 4));
    for (int i = 0; i < MAX + 4; i++) {
        ha[i] = (float)i;
        hb[i] = 0.5f * (float)(i % 97);
    }
    void *da, *db, *dc;
    size_t bytes = sizeof(float) * (MAX + 4);
    cr_assert_eq(tile_alloc(ctx, bytes, &da), TILE_OK);
    cr_assert_eq(tile_alloc(ctx, bytes, &db), TILE_OK);
    cr_assert_eq(tile_alloc(ctx, bytes, &dc), TILE_OK);
    cr_assert_eq(tile_copy_to_device(ctx, da, ha, bytes), TILE_OK);
    cr_assert_eq(tile_copy_to_device(ctx, db, hb, bytes), TILE_OK);
    tile_stream *stream;
    cr_assert_eq(tile_stream_create(ctx, &stream), TILE_OK, "%s", tile_context_message(ctx));
    static const int64_t sizes[] = {1, 16, 1000, 1024, 4096, 4097, 65536, 69999};
    for (int round = 0; round < 3; round++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (int offset = 0; offset < 2; offset++) { /* offset 1: 4 bytes in, not 16-aligned */
                int64_t n = sizes[s];
                float *a = (float *)da + offset, *b = (float *)db + offset, *c = (float *)dc + offset;
                cr_assert_eq(tile_copy_to_device(ctx, dc, hb, bytes), TILE_OK); /* c starts as b, not a + b */
                tile_arg args[3] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, a, 1, &n)},
                                    {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, b, 1, &n)},
                                    {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, c, 1, &n)}};
                st = tile_kernel_launch(k, args, 3, round == 2 ? stream : NULL);
                cr_assert_eq(st, TILE_OK, "%s", tile_context_message(ctx));
                cr_assert_eq(tile_synchronize(ctx), TILE_OK, "%s", tile_context_message(ctx));
                cr_assert_eq(tile_copy_to_host(ctx, hc, dc, bytes), TILE_OK);
                for (int64_t i = 0; i < n; i++)
                    cr_assert_eq(hc[offset + i], ha[offset + i] + hb[offset + i],
                                 "n=%lld offset=%d round=%d: c[%lld] = %g", (long long)n, offset, round, (long long)i,
                                 hc[offset + i]);
                cr_assert_eq(hc[offset + n], hb[offset + n], "nothing written past the end");
            }
    cr_assert_gt(rt_kernel_num_variants(k), 1, "the facts changed, and so did the variant");
    tile_stream_destroy(stream);
    tile_free(ctx, da);
    tile_free(ctx, db);
    tile_free(ctx, dc);
    free(ha);
    free(hb);
    free(hc);
    free(src);
    tile_program_destroy(p);
}
