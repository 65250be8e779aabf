/*
 * test_vm.c: the CPU virtual machine and the launch-argument checks.
 *
 * Kernels are built by hand with the IR builder and run with vm_launch on host buffers filled
 * with random data; results are compared with plain C references computed in the same
 * arithmetic (f32 accumulation in index order, bf16 inputs rounded by an independent bit
 * trick), so most comparisons are exact. Element encodings are checked against hand-computed
 * bit patterns.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/vm.h"

/* ---- kernel building helpers ------------------------------------------------------------- */
enum { MAX_PARAMS = 8 };

typedef struct Kernel {
    IrModule *m;
    IrFunction *f;
    IrBuilder b; /* body */
    IrBuilder g; /* grid */
} Kernel;

static Kernel kernel_begin(const char *name) {
    Kernel k = {0};
    k.m = ir_module_new();
    k.f = ir_function_new(k.m, name, true, (SrcLoc){0});
    k.f->params = ARENA_ARRAY(&k.m->arena, IrParam, MAX_PARAMS);
    ir_builder_at_end(&k.b, k.f->body);
    ir_builder_at_end(&k.g, k.f->grid);
    return k;
}

static const IrType *tile_t(Kernel *k, ElemType e, int rank, int64_t d0, int64_t d1) {
    int64_t shape[2] = {d0, d1};
    return ir_tile_type(k->m, e, rank, shape);
}
static const IrType *scalar_t(Kernel *k, ElemType e) { return ir_scalar_type(k->m, e); }

/* dims: comma-separated symbols or sizes, e.g. "M,K" or "N,4". */
static IrValue *add_tensor(Kernel *k, const char *name, ElemType e, const char *dims) {
    IrParam *p = &k->f->params[k->f->nparams++];
    p->name = arena_strdup(&k->m->arena, name);
    int rank = 0;
    for (const char *s = dims; *s;) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        if (s[0] >= '0' && s[0] <= '9') p->dims[rank].size = strtoll(s, NULL, 10);
        else p->dims[rank].symbol = arena_strndup(&k->m->arena, s, len);
        rank++;
        s += len + (end ? 1 : 0);
    }
    const IrType *t = ir_tensor_type(k->m, e, rank);
    ir_region_add_arg(k->f->grid, t, name);
    return ir_region_add_arg(k->f->body, t, name);
}

static IrValue *add_scalar(Kernel *k, const char *name, ElemType e) {
    IrParam *p = &k->f->params[k->f->nparams++];
    p->name = arena_strdup(&k->m->arena, name);
    ir_region_add_arg(k->f->grid, scalar_t(k, e), name);
    return ir_region_add_arg(k->f->body, scalar_t(k, e), name);
}

static IrOp *build(IrBuilder *b, OpCode code, const IrType *t, int n, IrValue **ops) {
    return ir_build(b, code, ops, (uint32_t)n, t ? &t : NULL, t ? 1 : 0);
}
static IrValue *op0(IrBuilder *b, OpCode code, const IrType *t, int64_t i0) {
    IrOp *op = build(b, code, t, 0, NULL);
    op->ints[0] = i0;
    op->nints = 1;
    return op->results[0];
}
static IrValue *op1(IrBuilder *b, OpCode code, const IrType *t, IrValue *a) {
    return build(b, code, t, 1, &a)->results[0];
}
static IrValue *op1i(IrBuilder *b, OpCode code, const IrType *t, IrValue *a, int64_t i0, int64_t i1) {
    IrOp *op = build(b, code, t, 1, &a);
    op->ints[0] = i0;
    op->ints[1] = i1;
    op->nints = 2;
    return op->results[0];
}
static IrValue *op2(IrBuilder *b, OpCode code, IrValue *a, IrValue *c) { return ir_binary(b, code, a, c); }
static IrValue *ci(IrBuilder *b, const IrType *t, int64_t v) { return ir_const_int(b, t, v); }
static IrValue *cf(IrBuilder *b, const IrType *t, double v) { return ir_const_float(b, t, v); }

static IrValue *load(IrBuilder *b, const IrType *t, IrValue *tensor, IrValue *i0, IrValue *i1) {
    IrValue *ops[3] = {tensor, i0, i1};
    return build(b, OP_LOAD, t, i1 ? 3 : 2, ops)->results[0];
}
static IrOp *store(IrBuilder *b, OpCode code, IrValue *tensor, IrValue *i0, IrValue *i1, IrValue *v) {
    IrValue *ops[4] = {tensor, i0, i1 ? i1 : v, v};
    return build(b, code, NULL, i1 ? 4 : 3, ops);
}
static void yield(IrBuilder *b, OpCode code, int n, IrValue **vals) { build(b, code, NULL, n, vals); }

/* grid = (cdiv(dim(param, axis), block), g1, 1) */
static void grid_cdiv(Kernel *k, int param, int axis, int64_t block, int64_t g1) {
    IrBuilder *g = &k->g;
    const IrType *i32 = scalar_t(k, elem_i32());
    IrValue *d = op1i(g, OP_DIM, i32, k->f->grid->args[param], axis, 0);
    IrValue *q = op2(g, OP_DIV, op2(g, OP_ADD, d, ci(g, i32, block - 1)), ci(g, i32, block));
    IrValue *vals[2] = {q, ci(g, i32, g1)};
    yield(g, OP_YIELD, 2, vals);
}

static void grid_const(Kernel *k, int64_t g0) {
    IrValue *v = ci(&k->g, scalar_t(k, elem_i32()), g0);
    yield(&k->g, OP_YIELD, 1, &v);
}

static void kernel_end(Kernel *k) { yield(&k->b, OP_RETURN, 0, NULL); }

static tile_arg tensor_arg(tile_dtype dt, void *data, int rank, int64_t d0, int64_t d1) {
    tile_arg a = {.kind = TILE_ARG_TENSOR};
    a.tensor.dtype = dt;
    a.tensor.data = data;
    a.tensor.rank = rank;
    a.tensor.shape[0] = d0;
    a.tensor.shape[1] = d1;
    if (rank == 2) {
        a.tensor.strides[0] = d1;
        a.tensor.strides[1] = 1;
    } else {
        a.tensor.strides[0] = 1;
    }
    return a;
}
static tile_arg int_arg(int64_t v) { return (tile_arg){.kind = TILE_ARG_INT, .i = v}; }

static void launch_ok(Kernel *k, const tile_arg *args, size_t n) {
    Strbuf err = {0};
    bool ok = vm_launch(k->f, args, n, &err);
    cr_assert(ok, "launch failed: %s", sb_str(&err));
    sb_free(&err);
}

static float frand(void) { return (float)rand() / (float)RAND_MAX * 2.0f - 1.0f; }

/* Independent bf16 rounding (RNE) for the references. */
static float round_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000u;
    memcpy(&x, &u, 4);
    return x;
}
static uint16_t bf16_bits(float x) {
    x = round_bf16(x);
    uint32_t u;
    memcpy(&u, &x, 4);
    return (uint16_t)(u >> 16);
}

/* ---- element encodings ---------------------------------------------------------------------- */
Test(vm_memory, float_bit_patterns) {
    ElemType f4 = elem_float(2, 1), f6 = elem_float(3, 2), e4m3 = elem_float(4, 3),
             e5m2 = elem_float(5, 2);
    cr_assert_eq(vm_float_encode(elem_bf16(), 1.0), 0x3F80);
    cr_assert_eq(vm_float_encode(elem_f16(), 1.0), 0x3C00);
    cr_assert_eq(vm_float_encode(elem_f16(), 65504.0), 0x7BFF);
    cr_assert_eq(vm_float_encode(elem_f16(), 1e6), 0x7C00);             /* overflow: inf */
    cr_assert_eq(vm_float_encode(elem_f16(), ldexp(1, -24)), 0x0001);   /* smallest subnormal */
    cr_assert_eq(vm_float_encode(elem_f16(), -0.0), 0x8000);
    cr_assert_eq(vm_float_encode(e4m3, 448.0), 0x7E);
    cr_assert_eq(vm_float_encode(e4m3, 1000.0), 0x7E);                  /* saturates */
    cr_assert_eq(vm_float_encode(e4m3, NAN), 0x7F);
    cr_assert_eq(vm_float_encode(e4m3, ldexp(1, -9)), 0x01);            /* subnormal */
    cr_assert_eq(vm_float_encode(e5m2, -2.0), 0xC0);
    cr_assert_eq(vm_float_encode(e5m2, INFINITY), 0x7C);
    cr_assert_eq(vm_float_encode(f4, 6.0), 0x7);
    cr_assert_eq(vm_float_encode(f4, 0.5), 0x1);
    cr_assert_eq(vm_float_encode(f4, -3.0), 0xD);
    cr_assert_eq(vm_float_encode(f4, NAN), 0x0);                        /* no NaN: +0 */
    cr_assert_eq(vm_float_encode(f6, 28.0), 0x1F);
    cr_assert_eq(vm_float_encode(elem_f32(), 1.0), 0x3F800000);
    cr_assert_eq(vm_float_encode(elem_f64(), -2.0), UINT64_C(0xC000000000000000));
    /* ties to even: 1 + 2^-8 is halfway between bf16 1.0 and 1 + 2^-7 */
    cr_assert_eq(vm_float_encode(elem_bf16(), 1.0 + ldexp(1, -8)), 0x3F80);
    cr_assert_eq(vm_float_encode(elem_bf16(), 1.0 + 3 * ldexp(1, -8)), 0x3F82);

    cr_assert_eq(vm_float_decode(elem_bf16(), 0x3F80), 1.0);
    cr_assert_eq(vm_float_decode(elem_f16(), 0x3555), 0x155 * ldexp(1, -12) + 0.25);
    cr_assert_eq(vm_float_decode(e4m3, 0x7E), 448.0);
    cr_assert(isnan(vm_float_decode(e4m3, 0xFF)));
    cr_assert_eq(vm_float_decode(e4m3, 0x78), 256.0); /* all-ones exponent is a normal binade */
    cr_assert_eq(vm_float_decode(e5m2, 0xC0), -2.0);
    cr_assert(isinf(vm_float_decode(e5m2, 0x7C)));
    cr_assert_eq(vm_float_decode(f4, 0x7), 6.0);
    cr_assert_eq(vm_float_decode(f4, 0x9), -0.5);
    cr_assert_eq(vm_float_decode(f6, 0x1F), 28.0);
}

Test(vm_memory, small_formats_round_trip_every_pattern) {
    ElemType formats[] = {elem_float(4, 3), elem_float(5, 2), elem_float(2, 1), elem_float(3, 2),
                          elem_float(2, 3), elem_float(1, 1), elem_f16(), elem_bf16()};
    for (size_t f = 0; f < sizeof formats / sizeof *formats; f++) {
        ElemType e = formats[f];
        for (uint64_t bits = 0; bits < (UINT64_C(1) << e.bits); bits++) {
            double v = vm_float_decode(e, bits);
            if (isnan(v)) continue;
            cr_assert_eq(elem_round_float(e, v), v, "format %d bits %#llx", (int)f, (unsigned long long)bits);
            cr_assert_eq(vm_float_encode(e, v), bits, "format %d bits %#llx", (int)f, (unsigned long long)bits);
        }
    }
}

Test(vm_memory, packed_elements_straddle_bytes) {
    uint8_t buf[8] = {0};
    ElemType u3 = elem_uint(3), i4 = elem_int(4), i7 = elem_int(7);
    for (int i = 0; i < 16; i++) vm_write_element(buf, u3, i, (VmElem){.i = i % 8});
    /* element 2 occupies bits 6..8: low bits 6,7 of byte 0 and bit 0 of byte 1 */
    cr_assert_eq(buf[0], (0 | 1 << 3 | (2 & 3) << 6) & 0xFF);
    cr_assert_eq(buf[1] & 1, 2 >> 2);
    for (int i = 0; i < 16; i++) cr_assert_eq(vm_read_element(buf, u3, i).i, i % 8);
    memset(buf, 0, sizeof buf);
    vm_write_element(buf, i4, 1, (VmElem){.i = -3});
    cr_assert_eq(buf[0], 0xD0);
    cr_assert_eq(vm_read_element(buf, i4, 1).i, -3);
    cr_assert_eq(vm_read_element(buf, i4, 0).i, 0);
    for (int i = 0; i < 9; i++) vm_write_element(buf, i7, i, (VmElem){.i = i * 29 - 64});
    for (int i = 0; i < 9; i++) cr_assert_eq(vm_read_element(buf, i7, i).i, elem_wrap_int(i7, i * 29 - 64));
}

/* ---- kernels ---------------------------------------------------------------------------- */
/* c[i] = a[i] + b[i], BLOCK elements per block, N not a multiple of BLOCK. */
Test(vm, vector_add_with_tail) {
    enum { BLOCK = 64, N = 1000 };
    Kernel k = kernel_begin("add");
    ElemType f32 = elem_f32(), i32 = elem_i32();
    IrValue *a = add_tensor(&k, "a", f32, "N"), *b = add_tensor(&k, "b", f32, "N"),
            *c = add_tensor(&k, "c", f32, "N");
    grid_cdiv(&k, 0, 0, BLOCK, 1);
    IrBuilder *B = &k.b;
    const IrType *vi = tile_t(&k, i32, 1, BLOCK, 0), *vf = tile_t(&k, f32, 1, BLOCK, 0);
    IrValue *base = op2(B, OP_MUL, op0(B, OP_BLOCK_ID, scalar_t(&k, i32), 0), ci(B, scalar_t(&k, i32), BLOCK));
    IrValue *idx = op2(B, OP_ADD, op1(B, OP_SPLAT, vi, base), op0(B, OP_ARANGE, vi, 0));
    IrValue *sum = op2(B, OP_ADD, load(B, vf, a, idx, NULL), load(B, vf, b, idx, NULL));
    store(B, OP_STORE, c, idx, NULL, sum);
    kernel_end(&k);

    float *ha = malloc(N * 4), *hb = malloc(N * 4), *hc = malloc((N + 8) * 4);
    for (int i = 0; i < N; i++) ha[i] = frand(), hb[i] = frand();
    for (int i = 0; i < N + 8; i++) hc[i] = -7.0f;
    tile_arg args[3] = {tensor_arg(TILE_F32, ha, 1, N, 0), tensor_arg(TILE_F32, hb, 1, N, 0),
                        tensor_arg(TILE_F32, hc, 1, N, 0)};
    int64_t grid[3];
    Strbuf err = {0};
    cr_assert(vm_eval_grid(k.f, args, 3, grid, &err), "%s", sb_str(&err));
    cr_assert_eq(grid[0], (N + BLOCK - 1) / BLOCK);
    cr_assert_eq(grid[1], 1);
    cr_assert_eq(grid[2], 1);
    launch_ok(&k, args, 3);
    for (int i = 0; i < N; i++) cr_assert_eq(hc[i], ha[i] + hb[i], "i = %d", i);
    for (int i = N; i < N + 8; i++) cr_assert_eq(hc[i], -7.0f); /* the tail is not written */
    free(ha), free(hb), free(hc);
    sb_free(&err);
    ir_module_free(k.m);
}

/* out[r, c] = 2 * in[r, c] over BM x BN tiles of a strided input; OOB reads/writes masked. */
Test(vm, copy_2d_masks_out_of_bounds) {
    enum { M = 37, N = 29, BM = 16, BN = 8, LD = 40 };
    Kernel k = kernel_begin("scale2d");
    ElemType f32 = elem_f32(), i32 = elem_i32();
    IrValue *in = add_tensor(&k, "in", f32, "M,N"), *out = add_tensor(&k, "out", f32, "M,N");
    IrBuilder *g = &k.g;
    const IrType *s32 = scalar_t(&k, i32);
    IrValue *gm = op2(g, OP_DIV, op2(g, OP_ADD, op1i(g, OP_DIM, s32, k.f->grid->args[0], 0, 0), ci(g, s32, BM - 1)), ci(g, s32, BM));
    IrValue *gn = op2(g, OP_DIV, op2(g, OP_ADD, op1i(g, OP_DIM, s32, k.f->grid->args[0], 1, 0), ci(g, s32, BN - 1)), ci(g, s32, BN));
    IrValue *gv[2] = {gm, gn};
    yield(g, OP_YIELD, 2, gv);
    IrBuilder *B = &k.b;
    IrValue *r0 = op2(B, OP_MUL, op0(B, OP_BLOCK_ID, s32, 0), ci(B, s32, BM));
    IrValue *c0 = op2(B, OP_MUL, op0(B, OP_BLOCK_ID, s32, 1), ci(B, s32, BN));
    const IrType *rows_t = tile_t(&k, i32, 1, BM, 0), *cols_t = tile_t(&k, i32, 1, BN, 0);
    IrValue *rows = op2(B, OP_ADD, op1(B, OP_SPLAT, rows_t, r0), op0(B, OP_ARANGE, rows_t, 0));
    IrValue *cols = op2(B, OP_ADD, op1(B, OP_SPLAT, cols_t, c0), op0(B, OP_ARANGE, cols_t, 0));
    IrValue *ri = op1i(B, OP_EXPAND_DIMS, tile_t(&k, i32, 2, BM, 1), rows, 1, 0); /* [BM,1] */
    IrValue *cj = op1i(B, OP_EXPAND_DIMS, tile_t(&k, i32, 2, 1, BN), cols, 0, 0); /* [1,BN] */
    const IrType *tf = tile_t(&k, f32, 2, BM, BN);
    IrValue *x = load(B, tf, in, ri, cj);
    IrValue *y = op2(B, OP_MUL, x, cf(B, tf, 2.0));
    store(B, OP_STORE, out, ri, cj, y);
    kernel_end(&k);

    float *hin = malloc(sizeof(float) * M * LD), *hout = malloc(sizeof(float) * M * LD);
    for (int i = 0; i < M * LD; i++) hin[i] = frand(), hout[i] = 99.0f;
    tile_arg args[2] = {tensor_arg(TILE_F32, hin, 2, M, N), tensor_arg(TILE_F32, hout, 2, M, N)};
    args[0].tensor.strides[0] = LD;
    args[1].tensor.strides[0] = LD;
    launch_ok(&k, args, 2);
    for (int r = 0; r < M; r++)
        for (int c = 0; c < LD; c++)
            cr_assert_eq(hout[r * LD + c], c < N ? 2.0f * hin[r * LD + c] : 99.0f, "(%d, %d)", r, c);
    free(hin), free(hout);
    ir_module_free(k.m);
}

/* One block per row: sum, max and cumsum of a row of C floats. */
Test(vm, row_reductions_and_cumsum) {
    enum { R = 13, C = 32 };
    Kernel k = kernel_begin("rows");
    ElemType f32 = elem_f32(), i32 = elem_i32();
    IrValue *x = add_tensor(&k, "x", f32, "R,32"), *sums = add_tensor(&k, "sums", f32, "R"),
            *maxs = add_tensor(&k, "maxs", f32, "R"), *cums = add_tensor(&k, "cums", f32, "R,32");
    grid_cdiv(&k, 0, 0, 1, 1);
    IrBuilder *B = &k.b;
    const IrType *s32 = scalar_t(&k, i32), *sf = scalar_t(&k, f32);
    IrValue *row = op0(B, OP_BLOCK_ID, s32, 0);
    IrValue *cols = op0(B, OP_ARANGE, tile_t(&k, i32, 1, C, 0), 0);
    IrValue *v = load(B, tile_t(&k, f32, 1, C, 0), x, row, cols);
    store(B, OP_STORE, sums, row, NULL, op1i(B, OP_REDUCE, sf, v, RED_SUM, 0));
    store(B, OP_STORE, maxs, row, NULL, op1i(B, OP_REDUCE, sf, v, RED_MAX, 0));
    store(B, OP_STORE, cums, row, cols, op1i(B, OP_SCAN, v->type, v, RED_SUM, 0));
    kernel_end(&k);

    float hx[R * C], hs[R], hm[R], hc[R * C];
    for (int i = 0; i < R * C; i++) hx[i] = frand() * 10;
    tile_arg args[4] = {tensor_arg(TILE_F32, hx, 2, R, C), tensor_arg(TILE_F32, hs, 1, R, 0),
                        tensor_arg(TILE_F32, hm, 1, R, 0), tensor_arg(TILE_F32, hc, 2, R, C)};
    launch_ok(&k, args, 4);
    for (int r = 0; r < R; r++) {
        float s = 0, m = -INFINITY;
        for (int c = 0; c < C; c++) {
            s += hx[r * C + c];
            m = fmaxf(m, hx[r * C + c]);
            cr_assert_eq(hc[r * C + c], s, "cumsum (%d, %d)", r, c);
        }
        cr_assert_eq(hs[r], s, "sum row %d", r);
        cr_assert_eq(hm[r], m, "max row %d", r);
    }
    ir_module_free(k.m);
}

/* C[M,N] = A[M,K] @ B[K,N] with bf16 inputs, f32 accumulation, a FOR over K carrying acc. */
Test(vm, gemm_bf16_dot) {
    enum { M = 40, N = 24, K = 48, BM = 16, BN = 16, BK = 16 };
    Kernel k = kernel_begin("gemm");
    ElemType bf = elem_bf16(), f32 = elem_f32(), i32 = elem_i32();
    IrValue *a = add_tensor(&k, "a", bf, "M,K"), *b = add_tensor(&k, "b", bf, "K,N"),
            *c = add_tensor(&k, "c", f32, "M,N");
    IrBuilder *g = &k.g;
    const IrType *s32 = scalar_t(&k, i32);
    IrValue *gm = op2(g, OP_DIV, op2(g, OP_ADD, op1i(g, OP_DIM, s32, k.f->grid->args[0], 0, 0), ci(g, s32, BM - 1)), ci(g, s32, BM));
    IrValue *gn = op2(g, OP_DIV, op2(g, OP_ADD, op1i(g, OP_DIM, s32, k.f->grid->args[1], 1, 0), ci(g, s32, BN - 1)), ci(g, s32, BN));
    IrValue *gv[2] = {gm, gn};
    yield(g, OP_YIELD, 2, gv);

    IrBuilder *B = &k.b;
    IrValue *m0 = op2(B, OP_MUL, op0(B, OP_BLOCK_ID, s32, 0), ci(B, s32, BM));
    IrValue *n0 = op2(B, OP_MUL, op0(B, OP_BLOCK_ID, s32, 1), ci(B, s32, BN));
    const IrType *rm_t = tile_t(&k, i32, 1, BM, 0), *rn_t = tile_t(&k, i32, 1, BN, 0),
                 *rk_t = tile_t(&k, i32, 1, BK, 0);
    IrValue *rm = op1i(B, OP_EXPAND_DIMS, tile_t(&k, i32, 2, BM, 1),
                       op2(B, OP_ADD, op1(B, OP_SPLAT, rm_t, m0), op0(B, OP_ARANGE, rm_t, 0)), 1, 0);
    IrValue *rn = op1i(B, OP_EXPAND_DIMS, tile_t(&k, i32, 2, 1, BN),
                       op2(B, OP_ADD, op1(B, OP_SPLAT, rn_t, n0), op0(B, OP_ARANGE, rn_t, 0)), 0, 0);
    const IrType *acc_t = tile_t(&k, f32, 2, BM, BN);
    IrValue *zero = cf(B, acc_t, 0.0);
    IrValue *kdim = op1i(B, OP_DIM, s32, a, 1, 0);
    IrValue *fops[4] = {ci(B, s32, 0), kdim, ci(B, s32, BK), zero};
    IrOp *loop = build(B, OP_FOR, acc_t, 4, fops);
    loop->ints[0] = 3; /* pipeline depth: no effect on results */
    loop->nints = 1;
    IrRegion *body = ir_op_add_region(loop);
    IrValue *kv = ir_region_add_arg(body, s32, "k");
    IrValue *acc = ir_region_add_arg(body, acc_t, "acc");
    IrBuilder L = {0};
    ir_builder_at_end(&L, body);
    IrValue *rk = op2(&L, OP_ADD, op1(&L, OP_SPLAT, rk_t, kv), op0(&L, OP_ARANGE, rk_t, 0));
    IrValue *rk_col = op1i(&L, OP_EXPAND_DIMS, tile_t(&k, i32, 2, 1, BK), rk, 0, 0);
    IrValue *rk_row = op1i(&L, OP_EXPAND_DIMS, tile_t(&k, i32, 2, BK, 1), rk, 1, 0);
    IrValue *ta = load(&L, tile_t(&k, bf, 2, BM, BK), a, rm, rk_col);
    IrValue *tb = load(&L, tile_t(&k, bf, 2, BK, BN), b, rk_row, rn);
    IrValue *dops[3] = {ta, tb, acc};
    IrValue *next = build(&L, OP_DOT, acc_t, 3, dops)->results[0];
    yield(&L, OP_YIELD, 1, &next);
    store(B, OP_STORE, c, rm, rn, loop->results[0]);
    kernel_end(&k);

    uint16_t ha[M * K], hb[K * N];
    float fa[M * K], fb[K * N], hc[M * N];
    for (int i = 0; i < M * K; i++) {
        float x = frand();
        ha[i] = bf16_bits(x), fa[i] = round_bf16(x);
    }
    for (int i = 0; i < K * N; i++) {
        float x = frand();
        hb[i] = bf16_bits(x), fb[i] = round_bf16(x);
    }
    tile_arg args[3] = {tensor_arg(TILE_BF16, ha, 2, M, K), tensor_arg(TILE_BF16, hb, 2, K, N),
                        tensor_arg(TILE_F32, hc, 2, M, N)};
    launch_ok(&k, args, 3);
    for (int m = 0; m < M; m++) {
        for (int n = 0; n < N; n++) {
            float s = 0;
            for (int kk = 0; kk < K; kk++) s += fa[m * K + kk] * fb[kk * N + n];
            cr_assert_eq(hc[m * N + n], s, "(%d, %d): %g vs %g", m, n, hc[m * N + n], s);
        }
    }
    ir_module_free(k.m);
}

/* out[i] = src[idx[i]] (OOB indices read 0); dst[perm[i]] = val[i]. */
Test(vm, gather_and_scatter) {
    enum { N = 50, S = 20, BLOCK = 16 };
    Kernel k = kernel_begin("gather");
    ElemType f32 = elem_f32(), i32 = elem_i32(), i64 = elem_int(64);
    IrValue *src = add_tensor(&k, "src", f32, "S"), *idx = add_tensor(&k, "idx", i64, "N"),
            *out = add_tensor(&k, "out", f32, "N"), *dst = add_tensor(&k, "dst", f32, "N");
    grid_cdiv(&k, 1, 0, BLOCK, 1);
    IrBuilder *B = &k.b;
    const IrType *s32 = scalar_t(&k, i32), *vi = tile_t(&k, i32, 1, BLOCK, 0);
    IrValue *base = op2(B, OP_MUL, op0(B, OP_BLOCK_ID, s32, 0), ci(B, s32, BLOCK));
    IrValue *i = op2(B, OP_ADD, op1(B, OP_SPLAT, vi, base), op0(B, OP_ARANGE, vi, 0));
    IrValue *j = load(B, tile_t(&k, i64, 1, BLOCK, 0), idx, i, NULL);
    IrValue *v = load(B, tile_t(&k, f32, 1, BLOCK, 0), src, j, NULL);
    store(B, OP_STORE, out, i, NULL, v);
    /* scatter: dst[j] = float(i) for i < N (lanes past N get index -1, dropped) */
    const IrType *vl = tile_t(&k, i64, 1, BLOCK, 0);
    IrValue *in_range = ir_cmp(B, CMP_LT, i, op1(B, OP_SPLAT, vi, op1i(B, OP_DIM, s32, idx, 0, 0)));
    IrValue *sel[3] = {in_range, j, ci(B, vl, -1)};
    IrValue *jm = build(B, OP_SELECT, vl, 3, sel)->results[0];
    IrValue *fi = op1(B, OP_CAST, tile_t(&k, f32, 1, BLOCK, 0), i);
    store(B, OP_STORE, dst, jm, NULL, fi);
    kernel_end(&k);

    float hsrc[S], hout[N], hdst[N];
    int64_t hidx[N];
    int perm[S];
    for (int t = 0; t < S; t++) hsrc[t] = frand(), perm[t] = t;
    for (int t = S - 1; t > 0; t--) {
        int r = rand() % (t + 1), tmp = perm[t];
        perm[t] = perm[r], perm[r] = tmp;
    }
    for (int t = 0; t < N; t++) {
        hidx[t] = t < S ? perm[t] : t % 3 == 0 ? -1 - t : N + t; /* the rest out of bounds */
        hdst[t] = -1;
    }
    tile_arg args[4] = {tensor_arg(TILE_F32, hsrc, 1, S, 0), tensor_arg(TILE_I64, hidx, 1, N, 0),
                        tensor_arg(TILE_F32, hout, 1, N, 0), tensor_arg(TILE_F32, hdst, 1, N, 0)};
    launch_ok(&k, args, 4);
    for (int t = 0; t < N; t++) cr_assert_eq(hout[t], t < S ? hsrc[perm[t]] : 0.0f, "t = %d", t);
    for (int t = 0; t < S; t++) cr_assert_eq(hdst[perm[t]], (float)t);
    for (int t = S; t < N; t++) cr_assert_eq(hdst[t], -1.0f);
    ir_module_free(k.m);
}

/* Every block adds block_id + 1 (i32) and 0.5 (f32) into one cell. */
Test(vm, atomic_add_from_many_blocks) {
    enum { BLOCKS = 300 };
    Kernel k = kernel_begin("count");
    ElemType f32 = elem_f32(), i32 = elem_i32();
    IrValue *cnt = add_tensor(&k, "cnt", i32, "1"), *fsum = add_tensor(&k, "fsum", f32, "1"),
            *mx = add_tensor(&k, "mx", i32, "1");
    grid_const(&k, BLOCKS);
    IrBuilder *B = &k.b;
    const IrType *s32 = scalar_t(&k, i32);
    IrValue *zero = ci(B, s32, 0), *bid = op0(B, OP_BLOCK_ID, s32, 0);
    store(B, OP_ATOMIC, cnt, zero, NULL, op2(B, OP_ADD, bid, ci(B, s32, 1)))->ints[0] = ATOMIC_ADD;
    store(B, OP_ATOMIC, fsum, zero, NULL, cf(B, scalar_t(&k, f32), 0.5))->ints[0] = ATOMIC_ADD;
    IrOp *amax = store(B, OP_ATOMIC, mx, zero, NULL, op2(B, OP_REM, op2(B, OP_MUL, bid, ci(B, s32, 7919)), ci(B, s32, 1000)));
    amax->ints[0] = ATOMIC_MAX;
    kernel_end(&k);

    for (int threads = 1; threads <= 4; threads += 3) {
        int32_t hc = 0, hm = -5;
        float hf = 0;
        tile_arg args[3] = {tensor_arg(TILE_I32, &hc, 1, 1, 0), tensor_arg(TILE_F32, &hf, 1, 1, 0),
                            tensor_arg(TILE_I32, &hm, 1, 1, 0)};
        Strbuf err = {0};
        cr_assert(vm_launch_threads(k.f, args, 3, threads, &err), "%s", sb_str(&err));
        sb_free(&err);
        cr_assert_eq(hc, BLOCKS * (BLOCKS + 1) / 2);
        cr_assert_eq(hf, BLOCKS * 0.5f);
        int32_t want = -5;
        for (int b = 0; b < BLOCKS; b++) want = (b * 7919) % 1000 > want ? (b * 7919) % 1000 : want;
        cr_assert_eq(hm, want);
    }
    ir_module_free(k.m);
}

/* Scalar control flow: for with two carried values, if, while; results stored to out[0..]. */
Test(vm, control_flow) {
    Kernel k = kernel_begin("ctl");
    ElemType i64 = elem_int(64), i32 = elem_i32();
    IrValue *out = add_tensor(&k, "out", i64, "8");
    IrValue *lo = add_scalar(&k, "lo", i64), *hi = add_scalar(&k, "hi", i64),
            *step = add_scalar(&k, "step", i64);
    grid_const(&k, 1);
    IrBuilder *B = &k.b;
    const IrType *s64 = scalar_t(&k, i64), *s32 = scalar_t(&k, i32);
    /* for iv in lo..hi step: (s, c) = (s + iv, c + 1) */
    IrValue *fops[5] = {lo, hi, step, ci(B, s64, 0), ci(B, s64, 0)};
    const IrType *rt[2] = {s64, s64};
    IrOp *loop = ir_build(B, OP_FOR, fops, 5, rt, 2);
    IrRegion *body = ir_op_add_region(loop);
    IrValue *iv = ir_region_add_arg(body, s64, "iv");
    IrValue *s = ir_region_add_arg(body, s64, "s"), *c = ir_region_add_arg(body, s64, "c");
    IrBuilder L = {0};
    ir_builder_at_end(&L, body);
    IrValue *ys[2] = {op2(&L, OP_ADD, s, iv), op2(&L, OP_ADD, c, ci(&L, s64, 1))};
    yield(&L, OP_YIELD, 2, ys);
    store(B, OP_STORE, out, ci(B, s32, 0), NULL, loop->results[0]);
    store(B, OP_STORE, out, ci(B, s32, 1), NULL, loop->results[1]);
    /* if (count > 3) 100 else 200 */
    IrValue *cond = ir_cmp(B, CMP_GT, loop->results[1], ci(B, s64, 3));
    IrOp *iff = build(B, OP_IF, s64, 1, &cond);
    IrRegion *then_r = ir_op_add_region(iff), *else_r = ir_op_add_region(iff);
    ir_builder_at_end(&L, then_r);
    IrValue *t100 = ci(&L, s64, 100);
    yield(&L, OP_YIELD, 1, &t100);
    ir_builder_at_end(&L, else_r);
    IrValue *t200 = ci(&L, s64, 200);
    yield(&L, OP_YIELD, 1, &t200);
    store(B, OP_STORE, out, ci(B, s32, 2), NULL, iff->results[0]);
    /* while (x < hi) { x = 2x + 1; n++ } from x = 1 */
    IrValue *wops[2] = {ci(B, s64, 1), ci(B, s64, 0)};
    IrOp *w = ir_build(B, OP_WHILE, wops, 2, rt, 2);
    IrRegion *before = ir_op_add_region(w), *after = ir_op_add_region(w);
    IrValue *bx = ir_region_add_arg(before, s64, "x"), *bn = ir_region_add_arg(before, s64, "n");
    ir_builder_at_end(&L, before);
    IrValue *cv[3] = {ir_cmp(&L, CMP_LT, bx, hi), bx, bn};
    yield(&L, OP_CONDITION, 3, cv);
    IrValue *ax = ir_region_add_arg(after, s64, "x"), *an = ir_region_add_arg(after, s64, "n");
    ir_builder_at_end(&L, after);
    IrValue *ay[2] = {op2(&L, OP_ADD, op2(&L, OP_MUL, ax, ci(&L, s64, 2)), ci(&L, s64, 1)),
                      op2(&L, OP_ADD, an, ci(&L, s64, 1))};
    yield(&L, OP_YIELD, 2, ay);
    store(B, OP_STORE, out, ci(B, s32, 3), NULL, w->results[0]);
    store(B, OP_STORE, out, ci(B, s32, 4), NULL, w->results[1]);
    kernel_end(&k);

    struct { int64_t lo, hi, step; } cases[] = {
        {0, 10, 1}, {-7, 30, 4}, {5, 5, 1}, {0, 10, 0}, {0, 10, -1}, {3, 1000, 97},
        {INT64_MAX - 10, INT64_MAX, 4}, /* stops instead of overflowing */
    };
    for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
        int64_t h[8] = {0};
        tile_arg args[4] = {tensor_arg(TILE_I64, h, 1, 8, 0), int_arg(cases[t].lo), int_arg(cases[t].hi),
                            int_arg(cases[t].step)};
        launch_ok(&k, args, 4);
        uint64_t sum = 0;
        int64_t cnt = 0;
        if (cases[t].step > 0)
            for (int64_t v = cases[t].lo; v < cases[t].hi; v += cases[t].step) {
                sum += (uint64_t)v;
                cnt++;
                if (v > INT64_MAX - cases[t].step) break;
            }
        cr_assert_eq(h[0], (int64_t)sum, "case %zu", t);
        cr_assert_eq(h[1], cnt, "case %zu", t);
        cr_assert_eq(h[2], cnt > 3 ? 100 : 200, "case %zu", t);
        int64_t x = 1, n = 0;
        while (x < cases[t].hi && x < INT64_MAX / 4) x = 2 * x + 1, n++;
        if (cases[t].hi < INT64_MAX / 2) {
            cr_assert_eq(h[3], x, "case %zu", t);
            cr_assert_eq(h[4], n, "case %zu", t);
        }
    }
    ir_module_free(k.m);
}

/* Shape ops, integer reductions and dot, and a round trip through shared memory:
 * x[4,6] -> transpose, reshape [3,8], broadcast of row 0, min over axis 0, cumsum over
 * axis 1, x @ x^T (i32), and num_blocks. */
Test(vm, shape_ops_shared_memory_and_integer_dot) {
    enum { R = 4, C = 6 };
    Kernel k = kernel_begin("shapes");
    ElemType i32 = elem_i32();
    IrValue *x = add_tensor(&k, "x", i32, "4,6"), *tr = add_tensor(&k, "tr", i32, "6,4"),
            *rs = add_tensor(&k, "rs", i32, "3,8"), *bc = add_tensor(&k, "bc", i32, "4,6"),
            *mn = add_tensor(&k, "mn", i32, "6"), *cs = add_tensor(&k, "cs", i32, "4,6"),
            *gg = add_tensor(&k, "gg", i32, "4,4"), *nb = add_tensor(&k, "nb", i32, "1");
    grid_const(&k, 1);
    IrBuilder *B = &k.b;
    const IrType *s32 = scalar_t(&k, i32), *t46 = tile_t(&k, i32, 2, R, C);
    IrValue *ri = op1i(B, OP_EXPAND_DIMS, tile_t(&k, i32, 2, R, 1), op0(B, OP_ARANGE, tile_t(&k, i32, 1, R, 0), 0), 1, 0);
    IrValue *cj = op1i(B, OP_EXPAND_DIMS, tile_t(&k, i32, 2, 1, C), op0(B, OP_ARANGE, tile_t(&k, i32, 1, C, 0), 0), 0, 0);
    IrValue *v = load(B, t46, x, ri, cj);
    /* through shared memory */
    IrValue *sh = build(B, OP_SHARED_ALLOC, ir_shared_type(k.m, i32, 2, (int64_t[]){R, C}), 0, NULL)->results[0];
    IrValue *sops[2] = {sh, v};
    build(B, OP_SHARED_STORE, NULL, 2, sops);
    build(B, OP_BARRIER, NULL, 0, NULL);
    IrValue *w = op1(B, OP_CONVERT_LAYOUT, t46, op1(B, OP_SHARED_LOAD, t46, sh));
    /* transpose: out dim i = in dim perm[i] */
    IrValue *t = op1i(B, OP_TRANSPOSE, tile_t(&k, i32, 2, C, R), w, 1, 0);
    IrValue *ti = op1i(B, OP_EXPAND_DIMS, tile_t(&k, i32, 2, C, 1), op0(B, OP_ARANGE, tile_t(&k, i32, 1, C, 0), 0), 1, 0);
    IrValue *tj = op1i(B, OP_EXPAND_DIMS, tile_t(&k, i32, 2, 1, R), op0(B, OP_ARANGE, tile_t(&k, i32, 1, R, 0), 0), 0, 0);
    store(B, OP_STORE, tr, ti, tj, t);
    IrValue *r = op1(B, OP_RESHAPE, tile_t(&k, i32, 2, 3, 8), w);
    IrValue *r3 = op1i(B, OP_EXPAND_DIMS, tile_t(&k, i32, 2, 3, 1), op0(B, OP_ARANGE, tile_t(&k, i32, 1, 3, 0), 0), 1, 0);
    IrValue *r8 = op1i(B, OP_EXPAND_DIMS, tile_t(&k, i32, 2, 1, 8), op0(B, OP_ARANGE, tile_t(&k, i32, 1, 8, 0), 0), 0, 0);
    store(B, OP_STORE, rs, r3, r8, r);
    IrValue *row0 = load(B, tile_t(&k, i32, 2, 1, C), x, ci(B, s32, 0), cj);
    store(B, OP_STORE, bc, ri, cj, op1(B, OP_BROADCAST, t46, row0));
    store(B, OP_STORE, mn, op0(B, OP_ARANGE, tile_t(&k, i32, 1, C, 0), 0), NULL,
          op1i(B, OP_REDUCE, tile_t(&k, i32, 1, C, 0), w, RED_MIN, 0));
    store(B, OP_STORE, cs, ri, cj, op1i(B, OP_SCAN, t46, w, RED_SUM, 1));
    IrValue *dops[3] = {w, t, ci(B, tile_t(&k, i32, 2, R, R), 1000)};
    IrValue *d = build(B, OP_DOT, tile_t(&k, i32, 2, R, R), 3, dops)->results[0];
    store(B, OP_STORE, gg, ri, op1i(B, OP_EXPAND_DIMS, tile_t(&k, i32, 2, 1, R), op0(B, OP_ARANGE, tile_t(&k, i32, 1, R, 0), 0), 0, 0), d);
    store(B, OP_STORE, nb, ci(B, s32, 0), NULL, op0(B, OP_NUM_BLOCKS, s32, 0));
    kernel_end(&k);

    int32_t hx[R * C], htr[C * R], hrs[R * C], hbc[R * C], hmn[C], hcs[R * C], hgg[R * R], hnb;
    for (int i = 0; i < R * C; i++) hx[i] = rand() % 200 - 100;
    tile_arg args[8] = {tensor_arg(TILE_I32, hx, 2, R, C), tensor_arg(TILE_I32, htr, 2, C, R),
                        tensor_arg(TILE_I32, hrs, 2, 3, 8), tensor_arg(TILE_I32, hbc, 2, R, C),
                        tensor_arg(TILE_I32, hmn, 1, C, 0), tensor_arg(TILE_I32, hcs, 2, R, C),
                        tensor_arg(TILE_I32, hgg, 2, R, R), tensor_arg(TILE_I32, &hnb, 1, 1, 0)};
    launch_ok(&k, args, 8);
    for (int i = 0; i < R; i++) {
        int32_t run = 0;
        for (int j = 0; j < C; j++) {
            cr_assert_eq(htr[j * R + i], hx[i * C + j]);
            cr_assert_eq(hrs[i * C + j], hx[i * C + j]); /* same row-major order */
            cr_assert_eq(hbc[i * C + j], hx[j]);
            run += hx[i * C + j];
            cr_assert_eq(hcs[i * C + j], run);
        }
        for (int j = 0; j < R; j++) {
            int32_t s = 1000;
            for (int c = 0; c < C; c++) s += hx[i * C + c] * hx[j * C + c];
            cr_assert_eq(hgg[i * R + j], s);
        }
    }
    for (int j = 0; j < C; j++) {
        int32_t m = hx[j];
        for (int i = 1; i < R; i++) m = hx[i * C + j] < m ? hx[i * C + j] : m;
        cr_assert_eq(hmn[j], m);
    }
    cr_assert_eq(hnb, 1);
    ir_module_free(k.m);
}

/* ---- elementwise semantics through a small kernel: out[i] = op(a[i], b[i]) ------------------ */
enum { EW = 8 };

/* Runs a kernel that loads EW elements of type `in` from a and b, applies code (CMP with pred,
 * CAST to `out_t`, or a unary op when b is NULL) and stores EW elements of type out_t. */
static void run_elementwise(OpCode code, int64_t pred, ElemType in, ElemType out_t,
                            const VmElem *a, const VmElem *b, VmElem *result) {
    Kernel k = kernel_begin("ew");
    IrValue *ta = add_tensor(&k, "a", in, "8"), *tb = add_tensor(&k, "b", in, "8"),
            *to = add_tensor(&k, "out", out_t, "8");
    grid_const(&k, 1);
    IrBuilder *B = &k.b;
    const IrType *vi = tile_t(&k, elem_i32(), 1, EW, 0), *vin = tile_t(&k, in, 1, EW, 0),
                 *vout = tile_t(&k, out_t, 1, EW, 0);
    IrValue *i = op0(B, OP_ARANGE, vi, 0);
    IrValue *x = load(B, vin, ta, i, NULL), *y = load(B, vin, tb, i, NULL);
    IrValue *r;
    if (code == OP_CMP) r = ir_cmp(B, (IrCmp)pred, x, y);
    else if (!b || code == OP_CAST) r = op1(B, code, vout, x);
    else r = op2(B, code, x, y);
    store(B, OP_STORE, to, i, NULL, r);
    kernel_end(&k);

    size_t in_bytes = (size_t)(elem_storage_bits(in) * EW + 7) / 8 + 8;
    size_t out_bytes = (size_t)(elem_storage_bits(out_t) * EW + 7) / 8 + 8;
    uint8_t *ba = calloc(1, in_bytes), *bb = calloc(1, in_bytes), *bo = calloc(1, out_bytes);
    for (int t = 0; t < EW; t++) {
        vm_write_element(ba, in, t, a[t]);
        vm_write_element(bb, in, t, b ? b[t] : a[t]);
    }
    tile_arg args[3] = {tensor_arg(rt_elem_to_dtype(in), ba, 1, EW, 0),
                        tensor_arg(rt_elem_to_dtype(in), bb, 1, EW, 0),
                        tensor_arg(rt_elem_to_dtype(out_t), bo, 1, EW, 0)};
    launch_ok(&k, args, 3);
    for (int t = 0; t < EW; t++) result[t] = vm_read_element(bo, out_t, t);
    free(ba), free(bb), free(bo);
    ir_module_free(k.m);
}

static void check_int_binary(OpCode code, ElemType e, const int64_t *a, const int64_t *b,
                             const int64_t *want) {
    VmElem va[EW], vb[EW], r[EW];
    for (int t = 0; t < EW; t++) va[t].i = a[t], vb[t].i = b[t];
    run_elementwise(code, 0, e, e, va, vb, r);
    for (int t = 0; t < EW; t++)
        cr_assert_eq(r[t].i, want[t], "%s element %d: %lld op %lld = %lld, want %lld",
                     ir_op_info[code].name, t, (long long)a[t], (long long)b[t], (long long)r[t].i,
                     (long long)want[t]);
}

Test(vm_semantics, integer_wrap_and_division) {
    ElemType i8 = elem_int(8), u8 = elem_uint(8), i32 = elem_i32();
    int64_t a1[EW] = {127, -128, 100, -1, 0, 64, -100, 5};
    int64_t b1[EW] = {1, -1, 100, -1, 0, 2, -100, 3};
    check_int_binary(OP_ADD, i8, a1, b1, (int64_t[EW]){-128, 127, -56, -2, 0, 66, 56, 8});
    check_int_binary(OP_MUL, i8, a1, b1, (int64_t[EW]){127, -128, 16, 1, 0, -128, 16, 15});
    check_int_binary(OP_DIV, i8, a1, b1, (int64_t[EW]){127, -128, 1, 1, 0, 32, 1, 1});
    int64_t a2[EW] = {7, -7, 7, -7, 5, INT32_MIN, INT32_MIN, 0};
    int64_t b2[EW] = {2, 2, -2, -2, 0, -1, 0, 0};
    check_int_binary(OP_DIV, i32, a2, b2, (int64_t[EW]){3, -3, -3, 3, 0, INT32_MIN, 0, 0});
    check_int_binary(OP_REM, i32, a2, b2, (int64_t[EW]){1, -1, 1, -1, 0, 0, 0, 0});
    int64_t a3[EW] = {200, 10, 255, 0, 128, 1, 3, 250};
    int64_t b3[EW] = {100, 20, 1, 1, 2, 0, 0, 10};
    check_int_binary(OP_ADD, u8, a3, b3, (int64_t[EW]){44, 30, 0, 1, 130, 1, 3, 4});
    check_int_binary(OP_SUB, u8, a3, b3, (int64_t[EW]){100, 246, 254, 255, 126, 1, 3, 240});
    check_int_binary(OP_DIV, u8, a3, b3, (int64_t[EW]){2, 0, 255, 0, 64, 0, 0, 25});
    check_int_binary(OP_MIN, u8, a3, b3, (int64_t[EW]){100, 10, 1, 0, 2, 0, 0, 10});
    int64_t a4[EW] = {INT64_MIN, INT64_MAX, -5, 9, 1, 2, 3, 4};
    int64_t b4[EW] = {-1, 1, INT64_MIN, -9, 0, 0, 0, 0};
    check_int_binary(OP_DIV, elem_int(64), a4, b4, (int64_t[EW]){INT64_MIN, INT64_MAX, 0, -1, 0, 0, 0, 0});
    check_int_binary(OP_ADD, elem_int(64), a4, b4, (int64_t[EW]){INT64_MAX, INT64_MIN, INT64_MAX - 4, 0, 1, 2, 3, 4});
}

Test(vm_semantics, shifts_out_of_range) {
    ElemType i8 = elem_int(8), u8 = elem_uint(8), i4 = elem_int(4);
    int64_t a[EW] = {1, 1, 1, -128, -128, 64, -1, 3};
    int64_t b[EW] = {7, 8, -1, 7, 8, 1, 100, 0};
    check_int_binary(OP_SHL, i8, a, b, (int64_t[EW]){-128, 0, 0, 0, 0, -128, 0, 3});
    check_int_binary(OP_SHR, i8, a, b, (int64_t[EW]){0, 0, 0, -1, -1, 32, -1, 3});
    int64_t ua[EW] = {255, 255, 128, 1, 2, 3, 4, 5};
    int64_t ub[EW] = {7, 8, 7, 200, 1, 1, 1, 1};
    check_int_binary(OP_SHR, u8, ua, ub, (int64_t[EW]){1, 0, 1, 0, 1, 1, 2, 2});
    check_int_binary(OP_SHL, u8, ua, ub, (int64_t[EW]){128, 0, 0, 0, 4, 6, 8, 10});
    /* i4 is packed in memory: loads sign-extend, stores wrap */
    int64_t na[EW] = {-8, 7, 3, -1, 1, 2, -3, 4};
    int64_t nb[EW] = {1, 1, 2, 3, 4, 3, 1, 0};
    check_int_binary(OP_SHR, i4, na, nb, (int64_t[EW]){-4, 3, 0, -1, 0, 0, -2, 4});
    check_int_binary(OP_ADD, i4, na, nb, (int64_t[EW]){-7, -8, 5, 2, 5, 5, -2, 4});
}

Test(vm_semantics, casts_between_types) {
    VmElem in[EW], r[EW];
    /* f32 -> i8 saturates, NaN -> 0, truncation toward zero */
    double f[EW] = {1.9, -1.9, 300.0, -300.0, NAN, INFINITY, -0.5, 127.49};
    for (int t = 0; t < EW; t++) in[t].f = f[t];
    run_elementwise(OP_CAST, 0, elem_f32(), elem_int(8), in, NULL, r);
    int64_t want_i8[EW] = {1, -1, 127, -128, 0, 127, 0, 127};
    for (int t = 0; t < EW; t++) cr_assert_eq(r[t].i, want_i8[t], "f32->i8 %d", t);
    /* f32 -> f8e4m3 (packed 8-bit, saturating, RNE) */
    run_elementwise(OP_CAST, 0, elem_f32(), elem_float(4, 3), in, NULL, r);
    double want_e4m3[EW] = {1.875, -1.875, 288.0, -288.0, NAN, 448.0, -0.5, 128.0};
    for (int t = 0; t < EW; t++) {
        if (isnan(want_e4m3[t])) cr_assert(isnan(r[t].f));
        else cr_assert_eq(r[t].f, want_e4m3[t], "f32->e4m3 %d: %g", t, r[t].f);
    }
    /* i32 -> u3 wraps (packed, straddling bytes) and u3 -> i32 back */
    int64_t iv[EW] = {0, 1, 7, 8, 9, -1, 13, 100};
    for (int t = 0; t < EW; t++) in[t].i = iv[t];
    run_elementwise(OP_CAST, 0, elem_i32(), elem_uint(3), in, NULL, r);
    for (int t = 0; t < EW; t++) cr_assert_eq(r[t].i, iv[t] & 7, "i32->u3 %d", t);
    VmElem back[EW];
    run_elementwise(OP_CAST, 0, elem_uint(3), elem_i32(), r, NULL, back);
    for (int t = 0; t < EW; t++) cr_assert_eq(back[t].i, iv[t] & 7);
    /* i32 -> i4 -> f32 */
    run_elementwise(OP_CAST, 0, elem_i32(), elem_int(4), in, NULL, r);
    run_elementwise(OP_CAST, 0, elem_int(4), elem_f32(), r, NULL, back);
    for (int t = 0; t < EW; t++) cr_assert_eq(back[t].f, (double)elem_wrap_int(elem_int(4), iv[t]));
    /* bf16 round trip: f32 -> bf16 rounds like the reference, bf16 -> f32 is exact */
    for (int t = 0; t < EW; t++) in[t].f = (double)(frand() * 1000.0f);
    run_elementwise(OP_CAST, 0, elem_f32(), elem_bf16(), in, NULL, r);
    run_elementwise(OP_CAST, 0, elem_bf16(), elem_f32(), r, NULL, back);
    for (int t = 0; t < EW; t++) cr_assert_eq((float)back[t].f, round_bf16((float)in[t].f));
}

Test(vm_semantics, float_arithmetic_rounds_per_type) {
    VmElem a[EW], b[EW], r[EW];
    for (int t = 0; t < EW; t++) {
        a[t].f = round_bf16(frand() * 4);
        b[t].f = round_bf16(frand() * 4);
    }
    run_elementwise(OP_ADD, 0, elem_bf16(), elem_bf16(), a, b, r);
    for (int t = 0; t < EW; t++) cr_assert_eq((float)r[t].f, round_bf16((float)a[t].f + (float)b[t].f));
    run_elementwise(OP_MUL, 0, elem_bf16(), elem_bf16(), a, b, r);
    for (int t = 0; t < EW; t++) cr_assert_eq((float)r[t].f, round_bf16((float)a[t].f * (float)b[t].f));
    /* min/max propagate NaN; comparisons are IEEE */
    a[0].f = NAN, b[1].f = NAN;
    run_elementwise(OP_MAX, 0, elem_f32(), elem_f32(), a, b, r);
    cr_assert(isnan(r[0].f) && isnan(r[1].f));
    cr_assert_eq(r[2].f, fmax(a[2].f, b[2].f));
    run_elementwise(OP_CMP, CMP_NE, elem_f32(), elem_bool(), a, b, r);
    cr_assert(r[0].i == 1 && r[1].i == 1);
    run_elementwise(OP_CMP, CMP_EQ, elem_f32(), elem_bool(), a, a, r);
    cr_assert(r[0].i == 0 && r[2].i == 1);
    /* math in f32 then rounded: exp2 of small integers is exact */
    for (int t = 0; t < EW; t++) a[t].f = t - 3;
    run_elementwise(OP_EXP2, 0, elem_f16(), elem_f16(), a, NULL, r);
    for (int t = 0; t < EW; t++) cr_assert_eq(r[t].f, ldexp(1, t - 3));
    run_elementwise(OP_RSQRT, 0, elem_f32(), elem_f32(), a, NULL, r);
    cr_assert_eq(r[7].f, (double)(1.0f / sqrtf(4.0f)));
    cr_assert(isnan(r[0].f));
}

/* ---- run-time errors and limits ---------------------------------------------------------- */
Test(vm_errors, call_depth_is_bounded) {
    Kernel k = kernel_begin("deep");
    ElemType i32 = elem_i32();
    IrValue *out = add_tensor(&k, "out", i32, "1");
    grid_const(&k, 1);
    const IrType *s32 = scalar_t(&k, i32);
    /* f(x) = f(x + 1): unbounded recursion */
    IrFunction *f = ir_function_new(k.m, "f", false, (SrcLoc){0});
    IrValue *x = ir_region_add_arg(f->body, s32, "x");
    IrBuilder F = {0};
    ir_builder_at_end(&F, f->body);
    IrValue *x1 = op2(&F, OP_ADD, x, ci(&F, s32, 1));
    IrOp *rec = build(&F, OP_CALL, s32, 1, &x1);
    rec->callee = f;
    yield(&F, OP_RETURN, 1, &rec->results[0]);
    /* g(x) = x * 3, called normally */
    IrFunction *g3 = ir_function_new(k.m, "g", false, (SrcLoc){0});
    IrValue *gx = ir_region_add_arg(g3->body, s32, "x");
    IrBuilder G = {0};
    ir_builder_at_end(&G, g3->body);
    IrValue *gr = op2(&G, OP_MUL, gx, ci(&G, s32, 3));
    yield(&G, OP_RETURN, 1, &gr);

    IrBuilder *B = &k.b;
    IrValue *arg = ci(B, s32, 14);
    IrOp *call = build(B, OP_CALL, s32, 1, &arg);
    call->callee = g3;
    store(B, OP_STORE, out, ci(B, s32, 0), NULL, call->results[0]);
    kernel_end(&k);
    int32_t h = 0;
    tile_arg args[1] = {tensor_arg(TILE_I32, &h, 1, 1, 0)};
    launch_ok(&k, args, 1);
    cr_assert_eq(h, 42);

    call->callee = f; /* now the recursive one */
    Strbuf err = {0};
    cr_assert_not(vm_launch(k.f, args, 1, &err));
    cr_assert(strstr(sb_str(&err), "nested deeper"), "%s", sb_str(&err));
    sb_free(&err);
    ir_module_free(k.m);
}

/* if (c) { if (c) { ... out[0] = 7 ... } }, `depth` levels deep. */
static bool run_nested_ifs(int depth, Strbuf *err, int32_t *h) {
    Kernel k = kernel_begin("nested");
    IrValue *out = add_tensor(&k, "out", elem_i32(), "1");
    grid_const(&k, 1);
    const IrType *s32 = scalar_t(&k, elem_i32());
    IrBuilder cur = k.b;
    IrValue *c = ci(&cur, scalar_t(&k, elem_bool()), 1);
    for (int d = 0; d < depth; d++) {
        IrOp *iff = build(&cur, OP_IF, NULL, 1, &c);
        IrRegion *then_r = ir_op_add_region(iff), *else_r = ir_op_add_region(iff);
        IrBuilder e = {0};
        ir_builder_at_end(&e, else_r);
        yield(&e, OP_YIELD, 0, NULL);
        ir_builder_at_end(&cur, then_r);
        yield(&cur, OP_YIELD, 0, NULL);
        ir_builder_before(&cur, then_r->last);
    }
    store(&cur, OP_STORE, out, ci(&cur, s32, 0), NULL, ci(&cur, s32, 7));
    kernel_end(&k);
    tile_arg args[1] = {tensor_arg(TILE_I32, h, 1, 1, 0)};
    bool ok = vm_launch(k.f, args, 1, err);
    ir_module_free(k.m);
    return ok;
}

Test(vm_errors, region_nesting_is_bounded) {
    Strbuf err = {0};
    int32_t h = 0;
    cr_assert(run_nested_ifs(900, &err, &h), "%s", sb_str(&err));
    cr_assert_eq(h, 7);
    cr_assert_not(run_nested_ifs(5000, &err, &h));
    cr_assert(strstr(sb_str(&err), "nested deeper"), "%s", sb_str(&err));
    sb_free(&err);
}

Test(vm_errors, huge_tile_is_an_error) {
    Kernel k = kernel_begin("huge");
    grid_const(&k, 2);
    IrValue *out = add_tensor(&k, "out", elem_f32(), "N");
    int64_t shape[2] = {INT64_C(1) << 40, INT64_C(1) << 40};
    const IrType *t = ir_tile_type(k.m, elem_f32(), 2, shape);
    IrValue *z = cf(&k.b, t, 0.0);
    IrValue *s = op1i(&k.b, OP_REDUCE, tile_t(&k, elem_f32(), 1, INT64_C(1) << 40, 0), z, RED_SUM, 0);
    (void)s;
    (void)out;
    kernel_end(&k);
    float h[4];
    tile_arg args[1] = {tensor_arg(TILE_F32, h, 1, 4, 0)};
    Strbuf err = {0};
    cr_assert_not(vm_launch(k.f, args, 1, &err));
    cr_assert(strstr(sb_str(&err), "too large"), "%s", sb_str(&err));
    sb_free(&err);
    ir_module_free(k.m);
}

Test(vm_errors, negative_grid) {
    Kernel k = kernel_begin("neg");
    IrValue *n = add_scalar(&k, "n", elem_i32());
    (void)n;
    IrValue *g0 = k.f->grid->args[0];
    yield(&k.g, OP_YIELD, 1, &g0);
    kernel_end(&k);
    tile_arg args[1] = {int_arg(-3)};
    int64_t grid[3];
    Strbuf err = {0};
    cr_assert_not(vm_eval_grid(k.f, args, 1, grid, &err));
    cr_assert(strstr(sb_str(&err), "grid dimension 0 is -3"), "%s", sb_str(&err));
    sb_clear(&err);
    cr_assert_not(vm_launch(k.f, args, 1, &err));
    args[0].i = 0; /* an empty grid runs nothing */
    sb_clear(&err);
    cr_assert(vm_launch(k.f, args, 1, &err), "%s", sb_str(&err));
    cr_assert(vm_eval_grid(k.f, args, 1, grid, &err));
    cr_assert(grid[0] == 0 && grid[1] == 1 && grid[2] == 1);
    sb_free(&err);
    ir_module_free(k.m);
}

/* ---- rt_check_args ------------------------------------------------------------------------ */
typedef struct CheckFixture {
    Kernel k;
    float a[64 * 48], b[48 * 16];
    tile_arg args[3];
} CheckFixture;

/* Builds the kernel on first use; resets the arguments to good ones. */
static void fixture(CheckFixture *c) {
    if (!c->k.m) {
        c->k = kernel_begin("mm");
        add_tensor(&c->k, "a", elem_f32(), "M,K");
        add_tensor(&c->k, "b", elem_f32(), "K,16");
        add_scalar(&c->k, "alpha", elem_f32());
        grid_const(&c->k, 1);
        kernel_end(&c->k);
    }
    c->args[0] = tensor_arg(TILE_F32, c->a, 2, 64, 48);
    c->args[1] = tensor_arg(TILE_F32, c->b, 2, 48, 16);
    c->args[2] = (tile_arg){.kind = TILE_ARG_FLOAT, .f = 1.5};
}

static void expect_error(CheckFixture *c, size_t nargs, const char *part1, const char *part2) {
    Strbuf err = {0};
    cr_assert_not(rt_check_args(c->k.f, c->args, nargs, &err), "expected an error with '%s'", part1);
    cr_assert(strstr(sb_str(&err), part1), "'%s' not in: %s", part1, sb_str(&err));
    if (part2) cr_assert(strstr(sb_str(&err), part2), "'%s' not in: %s", part2, sb_str(&err));
    sb_free(&err);
}

Test(rt_args, accepts_good_arguments) {
    static CheckFixture c;
    fixture(&c);
    Strbuf err = {0};
    cr_assert(rt_check_args(c.k.f, c.args, 3, &err), "%s", sb_str(&err));
    sb_free(&err);
    ir_module_free(c.k.m);
}

Test(rt_args, reports_each_mistake) {
    static CheckFixture c;
    fixture(&c);
    expect_error(&c, 2, "takes 3 arguments but 2 were given", NULL);
    c.args[2] = int_arg(1);
    expect_error(&c, 3, "'alpha'", "must be a float");
    fixture(&c);
    c.args[0] = int_arg(3);
    expect_error(&c, 3, "'a' must be a tensor", NULL);
    fixture(&c);
    c.args[1].tensor.dtype = TILE_BF16;
    expect_error(&c, 3, "'b' has element type bf16", "expects f32");
    fixture(&c);
    c.args[0].tensor.rank = 1;
    expect_error(&c, 3, "'a' has rank 1", NULL);
    fixture(&c);
    c.args[0].tensor.data = NULL;
    expect_error(&c, 3, "'a' has a null data pointer", NULL);
    c.args[0].tensor.shape[0] = 0; /* empty tensors may be null */
    Strbuf err = {0};
    cr_assert(rt_check_args(c.k.f, c.args, 3, &err), "%s", sb_str(&err));
    sb_free(&err);
    fixture(&c);
    c.args[1].tensor.shape[0] = 40;
    expect_error(&c, 3, "tensor 'b' dimension 0 (K) is 40 but 'a' bound K = 48", NULL);
    fixture(&c);
    c.args[1].tensor.shape[1] = 8;
    expect_error(&c, 3, "'b' dimension 1 is 8 but the kernel expects 16", NULL);
    fixture(&c);
    c.args[0].tensor.shape[0] = -1;
    expect_error(&c, 3, "'a' dimension 0 has negative size", NULL);
    fixture(&c);
    c.args[0].tensor.strides[1] = -1;
    expect_error(&c, 3, "'a' dimension 1 has negative stride", NULL);
    fixture(&c);
    c.args[0].tensor.shape[0] = INT64_C(1) << 31;
    expect_error(&c, 3, "'a' dimension 0", "2^31");
    fixture(&c);
    c.args[0].tensor.strides[0] = INT64_C(1) << 58;
    expect_error(&c, 3, "'a' spans more memory", NULL);
    fixture(&c);
    c.args[1].tensor.dtype = 0x7F000000u;
    expect_error(&c, 3, "'b' has an invalid dtype", NULL);
    ir_module_free(c.k.m);
}

Test(rt_args, scalar_ranges) {
    Kernel k = kernel_begin("s");
    add_scalar(&k, "n", elem_int(8));
    add_scalar(&k, "flag", elem_bool());
    grid_const(&k, 1);
    kernel_end(&k);
    tile_arg args[2] = {int_arg(-128), int_arg(1)};
    Strbuf err = {0};
    cr_assert(rt_check_args(k.f, args, 2, &err), "%s", sb_str(&err));
    args[0].i = 128;
    cr_assert_not(rt_check_args(k.f, args, 2, &err));
    cr_assert(strstr(sb_str(&err), "'n' = 128 does not fit in i8"), "%s", sb_str(&err));
    sb_clear(&err);
    args[0].i = 0;
    args[1].i = 2;
    cr_assert_not(rt_check_args(k.f, args, 2, &err));
    cr_assert(strstr(sb_str(&err), "'flag'"), "%s", sb_str(&err));
    sb_free(&err);
    ir_module_free(k.m);
}

Test(rt_args, dtype_round_trip) {
    ElemType e;
    cr_assert(rt_dtype_to_elem(TILE_F8E4M3, &e) && elem_eq(e, elem_float(4, 3)));
    cr_assert(rt_dtype_to_elem(TILE_F16, &e) && elem_eq(e, elem_f16()));
    cr_assert(rt_dtype_to_elem(TILE_BOOL, &e) && elem_eq(e, elem_bool()));
    cr_assert(rt_dtype_to_elem(TILE_UINT(3), &e) && elem_eq(e, elem_uint(3)));
    cr_assert_eq(rt_elem_to_dtype(elem_bf16()), TILE_BF16);
    cr_assert_not(rt_dtype_to_elem(TILE_DTYPE(3, 9, 4, 3), &e)); /* bits != 1 + exp + man */
    cr_assert_not(rt_dtype_to_elem(TILE_INT(65), &e));
}
