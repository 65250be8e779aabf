/* test_attention_gpu.c: stdlib/attention/flash_fwd.tile on the GPU through the public API.
 *
 * Each case runs on the GPU and on the VM with the same bf16 inputs and is checked against a C
 * reference (softmax attention in double over the rounded inputs), and the GPU against the VM:
 * the defaults (BM=128, BN=64, D=128, 8 warps) and 4 warps, causal and not, D=64 with other
 * tiles, grouped-query heads, sequence lengths with tails on both tiles. The output is a
 * strided view with sentinel rows after each head, so a row written past S is caught. K and V
 * are contiguous (on sm_90a: copied by TMA out of the rank-4 tensors), or laid out [B, S, H, D]
 * and viewed as [B, H, S, D] (TMA with the heads' stride below the rows'), or of one batch with a
 * batch stride of 1 (a stride TMA cannot take: the generic kernel's cp.async rings).
 * Skips with a message where there is no GPU. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/tile.h"

static tile_context *gpu, *vm;

static void open_devices(void) {
    if (tile_context_create(TILE_DEVICE_CUDA, 0, &gpu) != TILE_OK)
        cr_skip_test("no CUDA device: %s", tile_context_message(NULL));
    cr_assert_eq(tile_context_create(TILE_DEVICE_VM, 0, &vm), TILE_OK);
    cr_log_info("running on %s", tile_context_device_name(gpu));
}

static void close_devices(void) {
    tile_context_destroy(gpu);
    tile_context_destroy(vm);
    gpu = vm = NULL;
}

TestSuite(attention_gpu, .init = open_devices, .fini = close_devices, .timeout = 600);

static uint64_t seed = 4242;
static double uniform(double lo, double hi) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (double)(seed >> 11) / 9007199254740992.0;
}

typedef struct Shape {
    int64_t b, hq, hkv, s, d;
    int causal, bm, bn, w; /* tiles and warps: 0 for the kernel's default */
    int kv;                /* K and V: 0 contiguous, 1 [B, S, H, D] in memory, 2 batch stride 1 (b = 1) */
} Shape;

enum { PAD_ROWS = 2 };
#define SENTINEL 7.0

static tile_kernel *get_kernel(tile_context *ctx, Shape c) {
    char path[1024];
    snprintf(path, sizeof path, "%s/stdlib/attention/flash_fwd.tile", TILE_SOURCE_DIR);
    tile_program *prog;
    cr_assert_eq(tile_program_from_file(ctx, path, &prog), TILE_OK, "%s", tile_context_message(ctx));
    tile_constant k[5] = {{.name = "D", .i = c.d}, {.name = "CAUSAL", .i = c.causal}};
    size_t n = 2;
    if (c.bm) k[n++] = (tile_constant){.name = "BM", .i = c.bm};
    if (c.bn) k[n++] = (tile_constant){.name = "BN", .i = c.bn};
    if (c.w) k[n++] = (tile_constant){.name = "W", .i = c.w};
    tile_kernel *kern;
    cr_assert_eq(tile_program_get_kernel(prog, "flash_fwd", k, n, &kern), TILE_OK, "%s", tile_context_message(ctx));
    return kern; /* the program stays with its context until the end of the test */
}

static tile_tensor tensor4(void *data, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    int64_t shape[4] = {d0, d1, d2, d3};
    return tile_tensor_contiguous(TILE_BF16, data, 4, shape);
}

/* Runs flash_fwd on ctx with packed host inputs; returns O (with the sentinel rows) unpacked. */
static double *run_on(tile_context *ctx, Shape c, void *pq, void *pk, void *pv) {
    int64_t nq = c.b * c.hq * c.s * c.d, nkv = c.b * c.hkv * c.s * c.d, rows = c.s + PAD_ROWS;
    int64_t no = c.b * c.hq * rows * c.d;
    double *o = malloc(sizeof(double) * (size_t)no);
    for (int64_t i = 0; i < no; i++) o[i] = SENTINEL;
    size_t bo = tile_dtype_bytes(TILE_BF16, no), bq = tile_dtype_bytes(TILE_BF16, nq), bkv = tile_dtype_bytes(TILE_BF16, nkv);
    void *po = malloc(bo);
    cr_assert_eq(tile_pack(TILE_BF16, o, no, po), TILE_OK);
    void *dev[4] = {pq, pk, pv, po};
    size_t bytes[4] = {bq, bkv, bkv, bo};
    void *permuted[2] = {NULL, NULL};
    if (c.kv == 1) /* K and V with the heads inside the rows: [b, s, h, :] */
        for (int t = 0; t < 2; t++) {
            const uint16_t *from = dev[1 + t];
            uint16_t *to = permuted[t] = malloc(bkv);
            for (int64_t b = 0; b < c.b; b++)
                for (int64_t h = 0; h < c.hkv; h++)
                    for (int64_t i = 0; i < c.s; i++)
                        memcpy(to + ((b * c.s + i) * c.hkv + h) * c.d, from + ((b * c.hkv + h) * c.s + i) * c.d,
                               (size_t)c.d * 2);
            dev[1 + t] = to;
        }
    if (ctx == gpu) /* device copies */
        for (int i = 0; i < 4; i++) {
            void *host = dev[i];
            cr_assert_eq(tile_alloc(ctx, bytes[i], &dev[i]), TILE_OK, "%s", tile_context_message(ctx));
            cr_assert_eq(tile_copy_to_device(ctx, dev[i], host, bytes[i]), TILE_OK, "%s", tile_context_message(ctx));
        }
    tile_arg args[5] = {{.kind = TILE_ARG_TENSOR, .tensor = tensor4(dev[0], c.b, c.hq, c.s, c.d)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tensor4(dev[1], c.b, c.hkv, c.s, c.d)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tensor4(dev[2], c.b, c.hkv, c.s, c.d)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tensor4(dev[3], c.b, c.hq, c.s, c.d)},
                        {.kind = TILE_ARG_FLOAT, .f = 1.0 / sqrt((double)c.d)}};
    args[3].tensor.strides[1] = rows * c.d;
    args[3].tensor.strides[0] = c.hq * rows * c.d;
    for (int t = 1; t <= 2; t++) {
        if (c.kv == 1) {
            args[t].tensor.strides[0] = c.s * c.hkv * c.d;
            args[t].tensor.strides[1] = c.d;
            args[t].tensor.strides[2] = c.hkv * c.d;
        }
        if (c.kv == 2) args[t].tensor.strides[0] = 1; /* (one batch: never stepped) */
    }
    cr_assert_eq(tile_kernel_launch(get_kernel(ctx, c), args, 5, NULL), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(tile_synchronize(ctx), TILE_OK, "%s", tile_context_message(ctx));
    if (ctx == gpu) {
        cr_assert_eq(tile_copy_to_host(ctx, po, dev[3], bo), TILE_OK, "%s", tile_context_message(ctx));
        for (int i = 0; i < 4; i++) tile_free(ctx, dev[i]);
    }
    tile_unpack(TILE_BF16, po, no, o);
    free(po);
    free(permuted[0]), free(permuted[1]);
    return o;
}

static void check_case(Shape c) {
    int64_t nq = c.b * c.hq * c.s * c.d, nkv = c.b * c.hkv * c.s * c.d, rows = c.s + PAD_ROWS;
    double *x[3];
    void *packed[3];
    int64_t counts[3] = {nq, nkv, nkv};
    for (int t = 0; t < 3; t++) {
        x[t] = malloc(sizeof(double) * (size_t)counts[t]);
        for (int64_t i = 0; i < counts[t]; i++) x[t][i] = uniform(-1.5, 1.5);
        packed[t] = malloc(tile_dtype_bytes(TILE_BF16, counts[t]));
        cr_assert_eq(tile_pack(TILE_BF16, x[t], counts[t], packed[t]), TILE_OK);
        tile_unpack(TILE_BF16, packed[t], counts[t], x[t]);
    }
    double *og = run_on(gpu, c, packed[0], packed[1], packed[2]);
    double *ov = run_on(vm, c, packed[0], packed[1], packed[2]);
    double *p = malloc(sizeof(double) * (size_t)c.s), scale = 1.0 / sqrt((double)c.d), worst = 0;
    for (int64_t b = 0; b < c.b; b++)
        for (int64_t h = 0; h < c.hq; h++) {
            int64_t hk = h / (c.hq / c.hkv), obase = (b * c.hq + h) * rows * c.d;
            const double *qh = x[0] + (b * c.hq + h) * c.s * c.d, *kh = x[1] + (b * c.hkv + hk) * c.s * c.d;
            const double *vh = x[2] + (b * c.hkv + hk) * c.s * c.d;
            for (int64_t i = 0; i < c.s; i++) {
                int64_t keys = c.causal ? i + 1 : c.s;
                double mx = -INFINITY, l = 0;
                for (int64_t j = 0; j < keys; j++) {
                    double dotp = 0;
                    for (int64_t e = 0; e < c.d; e++) dotp += qh[i * c.d + e] * kh[j * c.d + e];
                    mx = fmax(mx, p[j] = dotp * scale);
                }
                for (int64_t j = 0; j < keys; j++) l += (p[j] = exp(p[j] - mx));
                for (int64_t e = 0; e < c.d; e++) {
                    double want = 0;
                    for (int64_t j = 0; j < keys; j++) want += p[j] * vh[j * c.d + e];
                    want /= l;
                    double g = og[obase + i * c.d + e], v = ov[obase + i * c.d + e];
                    worst = fmax(worst, fabs(g - want));
                    cr_assert(fabs(g - want) <= 2e-2 * fabs(want) + 1e-2 && fabs(g - v) <= 2e-2 * fabs(v) + 1e-2,
                              "S=%lld D=%lld causal=%d W=%d: O[%lld,%lld,%lld,%lld]: gpu %g, vm %g, reference %g",
                              (long long)c.s, (long long)c.d, c.causal, c.w, (long long)b, (long long)h, (long long)i,
                              (long long)e, g, v, want);
                }
            }
            for (int64_t i = c.s * c.d; i < rows * c.d; i++)
                cr_assert_eq(og[obase + i], SENTINEL, "S=%lld: the GPU wrote a row past S (head %lld)", (long long)c.s,
                             (long long)h);
        }
    cr_log_info("flash_fwd S=%lld D=%lld causal=%d BM=%d BN=%d W=%d: largest |gpu - reference| %.3g", (long long)c.s,
                (long long)c.d, c.causal, c.bm, c.bn, c.w, worst);
    for (int t = 0; t < 3; t++) free(x[t]), free(packed[t]);
    free(og), free(ov), free(p);
}

Test(attention_gpu, defaults_d128) {
    for (int causal = 0; causal <= 1; causal++) {
        check_case((Shape){.b = 1, .hq = 4, .hkv = 2, .s = 300, .d = 128, .causal = causal});
        check_case((Shape){.b = 2, .hq = 2, .hkv = 1, .s = 130, .d = 128, .causal = causal, .w = 4});
    }
}

Test(attention_gpu, d64_other_tiles) {
    for (int causal = 0; causal <= 1; causal++) {
        check_case((Shape){.b = 1, .hq = 2, .hkv = 2, .s = 257, .d = 64, .causal = causal});
        check_case((Shape){.b = 1, .hq = 4, .hkv = 1, .s = 37, .d = 64, .causal = causal, .bm = 64, .bn = 32, .w = 4});
    }
}

/* K and V in other layouts (Shape.kv): [B, S, H, D] memory viewed as [B, H, S, D] (TMA maps with
 * the head stride below the row stride), and a batch stride of 1 that TMA cannot take (the launch
 * falls back to the generic kernel): the same results as the VM and the reference. */
Test(attention_gpu, kv_strided_layouts) {
    for (int causal = 0; causal <= 1; causal++) {
        check_case((Shape){.b = 2, .hq = 4, .hkv = 2, .s = 200, .d = 128, .causal = causal, .kv = 1});
        check_case((Shape){.b = 1, .hq = 2, .hkv = 2, .s = 130, .d = 64, .causal = causal, .kv = 1});
        check_case((Shape){.b = 1, .hq = 2, .hkv = 1, .s = 200, .d = 128, .causal = causal, .bn = 128, .kv = 2});
    }
}
