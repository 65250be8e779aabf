/*
 * checks.h: the checks of the issue-8 constructs (tests/lang2/kernels.tile) against C
 * references, written once for any device: tests/test_lang2.c runs them on the VM and
 * tests/gpu/test_lang2_gpu.c on the GPU. Each check allocates device memory on the context,
 * launches one kernel and compares what comes back:
 *
 *   - atomics: the final memory must be the result of applying every update in some order, and
 *     the old values must be consistent with one order per element (for add, the old values of
 *     an element sorted ascending are its running sums; for xchg, the old values and the final
 *     value are a permutation of the initial value and the new ones; for cas exactly one update
 *     per element wins). The order itself is unspecified, so no check depends on it.
 *   - sort, argsort, topk, argtopk, argmax, argmin: equal to a stable C sort (ties by the lower
 *     index, NaN the largest value), bit for bit.
 *   - randint and rand: bit-identical to a C Philox4x32-10 (itself checked against Random123's
 *     known-answer vectors) with Triton's conversions; randn within float rounding of the math.
 *   - batched dot: against a sum in double.
 *
 * Included by the test files (static functions, the Criterion asserts of the includer).
 */
#ifndef TILE_TESTS_LANG2_CHECKS_H
#define TILE_TESTS_LANG2_CHECKS_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/tile.h"

/* ---- device helpers ------------------------------------------------------------------------------ */
static uint64_t lang2_rng = 0x243f6a8885a308d3ull;
static uint32_t rnd32(void) {
    lang2_rng ^= lang2_rng >> 12;
    lang2_rng ^= lang2_rng << 25;
    lang2_rng ^= lang2_rng >> 27;
    return (uint32_t)((lang2_rng * 2685821657736338717ull) >> 32);
}

/* The repository root: $TILE_SOURCE_DIR when set (binaries carried to a GPU machine), else the
 * one the tests were built from. */
static const char *source_dir(void) {
    const char *e = getenv("TILE_SOURCE_DIR");
    return e && *e ? e : TILE_SOURCE_DIR;
}

static tile_kernel *lang2_kernel(tile_context *ctx, const char *name, const tile_constant *c, size_t nc) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/lang2/kernels.tile", source_dir());
    tile_program *prog;
    cr_assert_eq(tile_program_from_file(ctx, path, &prog), TILE_OK, "%s", tile_context_message(ctx));
    tile_kernel *k = NULL;
    tile_status st = tile_program_get_kernel(prog, name, c, nc, &k);
    cr_assert_eq(st, TILE_OK, "%s: %s", name, tile_context_message(ctx));
    return k; /* the program lives until the process ends: the kernel belongs to it */
}

/* A device buffer of `bytes` holding a copy of host (or zeros when host is NULL). */
static void *dev_copy(tile_context *ctx, const void *host, size_t bytes) {
    void *d = NULL;
    cr_assert_eq(tile_alloc(ctx, bytes ? bytes : 1, &d), TILE_OK, "%s", tile_context_message(ctx));
    if (host) {
        cr_assert_eq(tile_copy_to_device(ctx, d, host, bytes), TILE_OK, "%s", tile_context_message(ctx));
    } else {
        void *z = calloc(1, bytes ? bytes : 1);
        cr_assert_eq(tile_copy_to_device(ctx, d, z, bytes), TILE_OK);
        free(z);
    }
    return d;
}

static void dev_back(tile_context *ctx, void *host, void *dev, size_t bytes) {
    cr_assert_eq(tile_synchronize(ctx), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(tile_copy_to_host(ctx, host, dev, bytes), TILE_OK, "%s", tile_context_message(ctx));
    tile_free(ctx, dev);
}

static tile_arg targ(tile_dtype dt, void *data, int rank, int64_t d0, int64_t d1, int64_t d2) {
    int64_t shape[3] = {d0, d1, d2};
    return (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(dt, data, rank, shape)};
}

static void lang2_launch(tile_context *ctx, tile_kernel *k, tile_arg *args, size_t n) {
    cr_assert_eq(tile_kernel_launch(k, args, n, NULL), TILE_OK, "%s", tile_context_message(ctx));
}

/* ---- atomics --------------------------------------------------------------------------------------- */
enum { OP_ADD_, OP_MAX_, OP_MIN_, OP_AND_, OP_OR_, OP_XCHG_ };

/* The combination that the final memory must show, as 64-bit two's complement (signed says how
 * max and min compare); floats are handled by the caller. */
static uint64_t combine_u64(int op, bool is_signed, int bits, uint64_t a, uint64_t b) {
    uint64_t mask = bits == 64 ? ~0ull : (1ull << bits) - 1;
    int64_t sa = bits == 64 ? (int64_t)a : (int64_t)(int32_t)(uint32_t)a, sb = bits == 64 ? (int64_t)b : (int64_t)(int32_t)(uint32_t)b;
    switch (op) {
    case OP_ADD_: return (a + b) & mask;
    case OP_MAX_: return is_signed ? (sa > sb ? a : b) : (a > b ? a : b);
    case OP_MIN_: return is_signed ? (sa < sb ? a : b) : (a < b ? a : b);
    case OP_AND_: return a & b;
    case OP_OR_: return a | b;
    default: return b;
    }
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Checks the olds and the final value of element e against the updates that address it. */
static void check_element(int op, bool is_signed, int bits, uint64_t init, uint64_t final, const uint64_t *v,
                          const uint64_t *old, int n, const char *what, int e) {
    uint64_t want = init;
    for (int j = 0; j < n; j++) want = combine_u64(op, is_signed, bits, want, v[j]);
    if (op != OP_XCHG_) cr_assert_eq(final, want, "%s: element %d is %llx, expected %llx", what, e,
                                     (unsigned long long)final, (unsigned long long)want);
    if (op == OP_ADD_) {
        /* positive updates: the olds are distinct running sums; sorted, each is the previous plus
         * the update that saw the previous */
        uint64_t *pairs = malloc(sizeof(uint64_t) * 2 * (size_t)(n + 1));
        for (int j = 0; j < n; j++) pairs[2 * j] = old[j], pairs[2 * j + 1] = v[j];
        qsort(pairs, (size_t)n, 2 * sizeof(uint64_t), cmp_u64);
        uint64_t at = init;
        for (int j = 0; j < n; j++) {
            cr_assert_eq(pairs[2 * j], at, "%s: element %d: old value %d is %llx, expected the running sum %llx", what, e,
                         j, (unsigned long long)pairs[2 * j], (unsigned long long)at);
            at = combine_u64(OP_ADD_, is_signed, bits, at, pairs[2 * j + 1]);
        }
        free(pairs);
    } else if (op == OP_XCHG_) {
        uint64_t *a = malloc(sizeof(uint64_t) * (size_t)(n + 1)), *b = malloc(sizeof(uint64_t) * (size_t)(n + 1));
        for (int j = 0; j < n; j++) a[j] = old[j], b[j] = v[j];
        a[n] = final, b[n] = init;
        qsort(a, (size_t)n + 1, sizeof *a, cmp_u64);
        qsort(b, (size_t)n + 1, sizeof *b, cmp_u64);
        for (int j = 0; j <= n; j++)
            cr_assert_eq(a[j], b[j], "%s: element %d: the old values and the final value are not a permutation of the "
                                     "initial and the new values", what, e);
        free(a);
        free(b);
    } else {
        /* every old is the combination of the initial value with some of the updates: it lies
         * between the initial and the final value in the op's order */
        for (int j = 0; j < n; j++) {
            uint64_t o = old[j];
            bool ok = combine_u64(op, is_signed, bits, o, init) == o && combine_u64(op, is_signed, bits, o, final) == final;
            bool seen = o == init;
            for (int i = 0; i < n && !seen; i++) seen = o == combine_u64(op, is_signed, bits, init, v[i]) || op >= OP_AND_;
            cr_assert(ok && seen, "%s: element %d: old value %llx cannot come from any order", what, e,
                      (unsigned long long)o);
        }
    }
}

/* rmw on an integer tensor of `bits` (32 or 64) bits: M updates of N elements. */
static void check_rmw_int(tile_context *ctx, const char *kernel, tile_dtype dt, int bits, bool is_signed, int op) {
    enum { N = 8, M = 1000 };
    size_t es = (size_t)bits / 8;
    uint64_t init[N], v[M];
    int32_t idx[M];
    unsigned char *tb = malloc(es * N), *vb = malloc(es * M), *ob = malloc(es * M);
    for (int e = 0; e < N; e++) {
        init[e] = op == OP_AND_ ? ~0ull : op == OP_MIN_ ? 0x7000000000000000ull : (uint64_t)(e * 3);
        if (bits == 32) init[e] &= 0xffffffffu;
        if (op == OP_MIN_ && bits == 32) init[e] = 0x70000000u;
    }
    for (int j = 0; j < M; j++) {
        idx[j] = (int32_t)(rnd32() % N);
        uint64_t r = ((uint64_t)rnd32() << 32) | rnd32();
        switch (op) {
        case OP_ADD_: v[j] = 1 + r % 1000 + (bits == 64 ? (1ull << 33) : 0); break;
        case OP_AND_: v[j] = ~(1ull << (r % (unsigned)bits)); break;
        case OP_OR_: v[j] = 1ull << (r % (unsigned)bits); break;
        case OP_XCHG_: v[j] = (uint64_t)j * 7919 + 1; break;
        default: v[j] = r; break;
        }
        if (bits == 32) v[j] &= 0xffffffffu;
    }
    for (int e = 0; e < N; e++) memcpy(tb + es * (size_t)e, bits == 32 ? (void *)&(uint32_t){(uint32_t)init[e]} : (void *)&init[e], es);
    for (int j = 0; j < M; j++) memcpy(vb + es * (size_t)j, bits == 32 ? (void *)&(uint32_t){(uint32_t)v[j]} : (void *)&v[j], es);
    tile_constant c = {.name = "OP", .i = op};
    tile_kernel *k = lang2_kernel(ctx, kernel, &c, 1);
    void *dt_ = dev_copy(ctx, tb, es * N), *di = dev_copy(ctx, idx, sizeof idx), *dv = dev_copy(ctx, vb, es * M),
         *dold = dev_copy(ctx, NULL, es * M);
    tile_arg args[4] = {targ(dt, dt_, 1, N, 0, 0), targ(TILE_I32, di, 1, M, 0, 0), targ(dt, dv, 1, M, 0, 0),
                        targ(dt, dold, 1, M, 0, 0)};
    lang2_launch(ctx, k, args, 4);
    dev_back(ctx, tb, dt_, es * N);
    dev_back(ctx, ob, dold, es * M);
    tile_free(ctx, di);
    tile_free(ctx, dv);
    char what[64];
    snprintf(what, sizeof what, "%s OP=%d", kernel, op);
    for (int e = 0; e < N; e++) {
        uint64_t ve[M], oe[M], fin = 0;
        int n = 0;
        for (int j = 0; j < M; j++) {
            if (idx[j] != e) continue;
            uint64_t o = 0;
            memcpy(&o, ob + es * (size_t)j, es);
            ve[n] = v[j], oe[n++] = o;
        }
        memcpy(&fin, tb + es * (size_t)e, es);
        check_element(op, is_signed, bits, init[e], fin, ve, oe, n, what, e);
    }
    free(tb);
    free(vb);
    free(ob);
}

/* f32 add (of small integers, so every order gives the same exact sums), max, min, xchg. */
static void check_rmw_f32(tile_context *ctx, int op) {
    enum { N = 8, M = 700 };
    float t[N], v[M], old[M];
    int32_t idx[M];
    for (int e = 0; e < N; e++) t[e] = op == OP_MIN_ ? 1e6f : op == OP_MAX_ ? -1e6f : (float)e;
    for (int j = 0; j < M; j++) {
        idx[j] = (int32_t)(rnd32() % N);
        v[j] = op == OP_ADD_ ? (float)(1 + rnd32() % 50) : op == OP_XCHG_ ? (float)j + 0.5f : (float)((int)(rnd32() % 20001) - 10000) * 0.25f;
    }
    tile_constant c = {.name = "OP", .i = op};
    tile_kernel *k = lang2_kernel(ctx, "rmw_f32", &c, 1);
    float init[N];
    memcpy(init, t, sizeof t);
    void *dt_ = dev_copy(ctx, t, sizeof t), *di = dev_copy(ctx, idx, sizeof idx), *dv = dev_copy(ctx, v, sizeof v),
         *dold = dev_copy(ctx, NULL, sizeof old);
    tile_arg args[4] = {targ(TILE_F32, dt_, 1, N, 0, 0), targ(TILE_I32, di, 1, M, 0, 0), targ(TILE_F32, dv, 1, M, 0, 0),
                        targ(TILE_F32, dold, 1, M, 0, 0)};
    lang2_launch(ctx, k, args, 4);
    dev_back(ctx, t, dt_, sizeof t);
    dev_back(ctx, old, dold, sizeof old);
    tile_free(ctx, di);
    tile_free(ctx, dv);
    /* the values are integers or quarters well inside f32's exact range: map them to integers */
    for (int e = 0; e < N; e++) {
        uint64_t ve[M], oe[M];
        int n = 0;
        for (int j = 0; j < M; j++)
            if (idx[j] == e) ve[n] = (uint64_t)(int64_t)(v[j] * 4), oe[n++] = (uint64_t)(int64_t)(old[j] * 4);
        char what[32];
        snprintf(what, sizeof what, "rmw_f32 OP=%d", op);
        check_element(op, true, 64, (uint64_t)(int64_t)((double)init[e] * 4), (uint64_t)(int64_t)((double)t[e] * 4), ve, oe, n,
                      what, e);
    }
}

/* f16 or bf16 add of ones: the old values of each element are init, init+1, ... in some order. */
static void check_add_half(tile_context *ctx, const char *kernel, tile_dtype dt) {
    enum { N = 4, M = 120 };
    double t[N] = {0, 1, 2, 3}, v[M], old[M];
    int32_t idx[M];
    int count[N] = {0};
    for (int j = 0; j < M; j++) idx[j] = (int32_t)(rnd32() % N), v[j] = 1, count[idx[j]]++;
    uint16_t tb[N], vb[M], ob[M];
    tile_pack(dt, t, N, tb);
    tile_pack(dt, v, M, vb);
    void *dt_ = dev_copy(ctx, tb, sizeof tb), *di = dev_copy(ctx, idx, sizeof idx), *dv = dev_copy(ctx, vb, sizeof vb),
         *dold = dev_copy(ctx, NULL, sizeof ob);
    tile_arg args[4] = {targ(dt, dt_, 1, N, 0, 0), targ(TILE_I32, di, 1, M, 0, 0), targ(dt, dv, 1, M, 0, 0),
                        targ(dt, dold, 1, M, 0, 0)};
    lang2_launch(ctx, lang2_kernel(ctx, kernel, NULL, 0), args, 4);
    dev_back(ctx, tb, dt_, sizeof tb);
    dev_back(ctx, ob, dold, sizeof ob);
    tile_free(ctx, di);
    tile_free(ctx, dv);
    double fin[N];
    tile_unpack(dt, tb, N, fin);
    tile_unpack(dt, ob, M, old);
    for (int e = 0; e < N; e++) {
        cr_assert_eq(fin[e], e + count[e], "%s: element %d is %g, expected %d", kernel, e, fin[e], e + count[e]);
        char *seen = calloc((size_t)count[e] + 1, 1);
        for (int j = 0; j < M; j++) {
            if (idx[j] != e) continue;
            int k = (int)old[j] - e;
            cr_assert(k >= 0 && k < count[e] && !seen[k] && old[j] == floor(old[j]), "%s: element %d: old value %g",
                      kernel, e, old[j]);
            seen[k] = 1;
        }
        free(seen);
    }
}

/* cas: each touched element has exactly one winner (old == the initial value), and it left its
 * desired value; the losers saw that value. */
static void check_cas(tile_context *ctx) {
    enum { N = 16, M = 300 };
    int32_t t[N], init[N], idx[M], expected[M], desired[M], old[M];
    for (int e = 0; e < N; e++) t[e] = init[e] = e * 10;
    for (int j = 0; j < M; j++) {
        idx[j] = (int32_t)(rnd32() % N);
        expected[j] = init[idx[j]];
        desired[j] = 1000 + j;
    }
    void *dt_ = dev_copy(ctx, t, sizeof t), *di = dev_copy(ctx, idx, sizeof idx), *de = dev_copy(ctx, expected, sizeof expected),
         *dd = dev_copy(ctx, desired, sizeof desired), *dold = dev_copy(ctx, NULL, sizeof old);
    tile_arg args[5] = {targ(TILE_I32, dt_, 1, N, 0, 0), targ(TILE_I32, di, 1, M, 0, 0), targ(TILE_I32, de, 1, M, 0, 0),
                        targ(TILE_I32, dd, 1, M, 0, 0), targ(TILE_I32, dold, 1, M, 0, 0)};
    lang2_launch(ctx, lang2_kernel(ctx, "cas_i32", NULL, 0), args, 5);
    dev_back(ctx, t, dt_, sizeof t);
    dev_back(ctx, old, dold, sizeof old);
    tile_free(ctx, di);
    tile_free(ctx, de);
    tile_free(ctx, dd);
    for (int e = 0; e < N; e++) {
        int winners = 0, touched = 0;
        for (int j = 0; j < M; j++) {
            if (idx[j] != e) continue;
            touched++;
            if (old[j] == init[e]) {
                winners++;
                cr_assert_eq(t[e], desired[j], "cas: element %d holds %d, not its winner's %d", e, t[e], desired[j]);
            } else {
                cr_assert_eq(old[j], t[e], "cas: a loser of element %d saw %d, not the winner's %d", e, old[j], t[e]);
            }
        }
        cr_assert_eq(winners, touched ? 1 : 0, "cas: element %d has %d winners", e, winners);
        if (!touched) cr_assert_eq(t[e], init[e]);
    }
}

/* A spin lock of cas and xchg: every block's unprotected increment survives; the tickets of a
 * scalar atomic_add are a permutation of the blocks. */
static void check_locked_count(tile_context *ctx) {
    enum { B = 96 };
    int32_t lock = 0, count[2] = {0, 0}, tickets[B];
    void *dl = dev_copy(ctx, &lock, sizeof lock), *dc = dev_copy(ctx, count, sizeof count), *dt_ = dev_copy(ctx, NULL, sizeof tickets);
    tile_arg args[3] = {targ(TILE_I32, dl, 1, 1, 0, 0), targ(TILE_I32, dc, 1, 2, 0, 0), targ(TILE_I32, dt_, 1, B, 0, 0)};
    lang2_launch(ctx, lang2_kernel(ctx, "locked_count", NULL, 0), args, 3);
    dev_back(ctx, &lock, dl, sizeof lock);
    dev_back(ctx, count, dc, sizeof count);
    dev_back(ctx, tickets, dt_, sizeof tickets);
    cr_assert_eq(lock, 0, "the lock was left taken");
    cr_assert_eq(count[0], B, "the locked counter is %d, expected %d", count[0], B);
    cr_assert_eq(count[1], B);
    char seen[B] = {0};
    for (int b = 0; b < B; b++) {
        cr_assert(tickets[b] >= 0 && tickets[b] < B && !seen[tickets[b]], "ticket %d of block %d", tickets[b], b);
        seen[tickets[b]] = 1;
    }
}

/* ---- selection --------------------------------------------------------------------------------- */
typedef struct Keyed {
    double v;
    int i;
    bool desc;
} Keyed;

/* NaN is the largest value; ties go to the lower index. */
static int keyed_cmp(const void *pa, const void *pb) {
    const Keyed *a = pa, *b = pb;
    bool na = isnan(a->v), nb = isnan(b->v);
    int c = 0;
    if (na != nb) c = na ? 1 : -1;
    else if (!na && a->v != b->v) c = a->v < b->v ? -1 : 1;
    if (a->desc) c = -c;
    return c ? c : (a->i < b->i ? -1 : 1);
}

/* The stable order of n values (stride apart): perm[r] is the index of the r-th. */
static void ref_order(const double *x, int n, int stride, bool desc, int *perm) {
    Keyed *k = malloc(sizeof(Keyed) * (size_t)n);
    for (int i = 0; i < n; i++) k[i] = (Keyed){x[i * stride], i, desc};
    qsort(k, (size_t)n, sizeof *k, keyed_cmp);
    for (int i = 0; i < n; i++) perm[i] = k[i].i;
    free(k);
}

static bool same_float(double a, double b) { return (isnan(a) && isnan(b)) || (a == b && signbit(a) == signbit(b)); }

/* Values with ties, both zeros and NaNs. */
static float tie_value(void) {
    uint32_t r = rnd32() % 23;
    if (r == 0) return NAN;
    if (r == 1) return -0.0f;
    if (r == 2) return 0.0f;
    return (float)((int)(r % 9) - 4) * 0.5f;
}

static void check_arg_extremes(tile_context *ctx) {
    enum { R = 8, C = 16 };
    float x[R * C];
    for (int i = 0; i < R * C; i++) x[i] = tie_value();
    x[5 * C + 3] = NAN; /* a NaN in row 5 and column 3 at least */
    void *dx = dev_copy(ctx, x, sizeof x), *d[5];
    int32_t out0[C], out1[R], out2[C], out3[R], flat[2];
    size_t sizes[5] = {sizeof out0, sizeof out1, sizeof out2, sizeof out3, sizeof flat};
    for (int i = 0; i < 5; i++) d[i] = dev_copy(ctx, NULL, sizes[i]);
    tile_arg args[6] = {targ(TILE_F32, dx, 2, R, C, 0), targ(TILE_I32, d[0], 1, C, 0, 0), targ(TILE_I32, d[1], 1, R, 0, 0),
                        targ(TILE_I32, d[2], 1, C, 0, 0), targ(TILE_I32, d[3], 1, R, 0, 0), targ(TILE_I32, d[4], 1, 2, 0, 0)};
    lang2_launch(ctx, lang2_kernel(ctx, "arg_extremes", NULL, 0), args, 6);
    void *outs[5] = {out0, out1, out2, out3, flat};
    for (int i = 0; i < 5; i++) dev_back(ctx, outs[i], d[i], sizes[i]);
    tile_free(ctx, dx);
    double xd[R * C];
    for (int i = 0; i < R * C; i++) xd[i] = x[i];
    /* argmax: the first NaN if any, else the first largest; argmin: the first NaN, else the first smallest */
    int perm[R * C];
    for (int c = 0; c < C; c++) {
        int first_nan = -1;
        for (int r = R - 1; r >= 0; r--)
            if (isnan(xd[r * C + c])) first_nan = r;
        ref_order(xd + c, R, C, true, perm);
        cr_assert_eq(out0[c], perm[0], "argmax(axis=0) of column %d: %d, expected %d", c, out0[c], perm[0]);
        ref_order(xd + c, R, C, false, perm);
        int want = first_nan >= 0 ? first_nan : perm[0];
        cr_assert_eq(out2[c], want, "argmin(axis=0) of column %d: %d, expected %d", c, out2[c], want);
    }
    for (int r = 0; r < R; r++) {
        int first_nan = -1;
        for (int c = C - 1; c >= 0; c--)
            if (isnan(xd[r * C + c])) first_nan = c;
        ref_order(xd + r * C, C, 1, true, perm);
        cr_assert_eq(out1[r], perm[0], "argmax(axis=1) of row %d: %d, expected %d", r, out1[r], perm[0]);
        ref_order(xd + r * C, C, 1, false, perm);
        int want = first_nan >= 0 ? first_nan : perm[0];
        cr_assert_eq(out3[r], want, "argmin(axis=-1) of row %d: %d, expected %d", r, out3[r], want);
    }
    ref_order(xd, R * C, 1, true, perm);
    cr_assert_eq(flat[0], perm[0]);
    int first_nan = 0;
    while (!isnan(xd[first_nan])) first_nan++;
    cr_assert_eq(flat[1], first_nan);
}

static void check_sort_rows(tile_context *ctx, bool desc) {
    enum { R = 10, C = 32 };
    float x[R * C], y[R * C];
    int32_t ix[R * C];
    for (int i = 0; i < R * C; i++) x[i] = tie_value();
    void *dx = dev_copy(ctx, x, sizeof x), *dy = dev_copy(ctx, NULL, sizeof y), *di = dev_copy(ctx, NULL, sizeof ix);
    tile_arg args[3] = {targ(TILE_F32, dx, 2, R, C, 0), targ(TILE_F32, dy, 2, R, C, 0), targ(TILE_I32, di, 2, R, C, 0)};
    tile_constant c = {.name = "DESC", .i = desc};
    lang2_launch(ctx, lang2_kernel(ctx, "sort_rows", &c, 1), args, 3);
    dev_back(ctx, y, dy, sizeof y);
    dev_back(ctx, ix, di, sizeof ix);
    tile_free(ctx, dx);
    for (int r = 0; r < R; r++) {
        double xd[C];
        int perm[C];
        for (int i = 0; i < C; i++) xd[i] = x[r * C + i];
        ref_order(xd, C, 1, desc, perm);
        for (int i = 0; i < C; i++) {
            cr_assert_eq(ix[r * C + i], perm[i], "argsort%s row %d position %d: %d, expected %d", desc ? " descending" : "",
                         r, i, ix[r * C + i], perm[i]);
            cr_assert(same_float(y[r * C + i], xd[perm[i]]), "sort row %d position %d: %g, expected %g", r, i,
                      (double)y[r * C + i], xd[perm[i]]);
        }
    }
}

static void check_sort_cols(tile_context *ctx) {
    enum { R = 16, C = 20 };
    int32_t x[R * C], y[R * C], ix[R * C];
    for (int i = 0; i < R * C; i++) x[i] = (int32_t)(rnd32() % 7) - 3 + (rnd32() % 13 == 0 ? INT32_MIN + 3 : 0);
    void *dx = dev_copy(ctx, x, sizeof x), *dy = dev_copy(ctx, NULL, sizeof y), *di = dev_copy(ctx, NULL, sizeof ix);
    tile_arg args[3] = {targ(TILE_I32, dx, 2, R, C, 0), targ(TILE_I32, dy, 2, R, C, 0), targ(TILE_I32, di, 2, R, C, 0)};
    lang2_launch(ctx, lang2_kernel(ctx, "sort_cols", NULL, 0), args, 3);
    dev_back(ctx, y, dy, sizeof y);
    dev_back(ctx, ix, di, sizeof ix);
    tile_free(ctx, dx);
    for (int c = 0; c < C; c++) {
        double xd[R];
        int perm[R];
        for (int r = 0; r < R; r++) xd[r] = x[r * C + c];
        ref_order(xd, R, 1, false, perm);
        for (int r = 0; r < R; r++) {
            cr_assert_eq(ix[r * C + c], perm[r], "argsort(axis=0) column %d position %d", c, r);
            cr_assert_eq(y[r * C + c], x[perm[r] * C + c], "sort(axis=0) column %d position %d", c, r);
        }
    }
}

static void check_sort_u32(tile_context *ctx) {
    enum { N = 64 };
    uint32_t x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = rnd32() | (i % 3 == 0 ? 0x80000000u : 0);
    void *dx = dev_copy(ctx, x, sizeof x), *dy = dev_copy(ctx, NULL, sizeof y);
    tile_arg args[2] = {targ(TILE_U32, dx, 1, N, 0, 0), targ(TILE_U32, dy, 1, N, 0, 0)};
    lang2_launch(ctx, lang2_kernel(ctx, "sort_u32", NULL, 0), args, 2);
    dev_back(ctx, y, dy, sizeof y);
    tile_free(ctx, dx);
    double xd[N];
    int perm[N];
    for (int i = 0; i < N; i++) xd[i] = x[i];
    ref_order(xd, N, 1, true, perm);
    for (int i = 0; i < N; i++) cr_assert_eq(y[i], x[perm[i]], "sort u32 descending position %d: %u, expected %u", i, y[i], x[perm[i]]);
}

static void check_middle_axis(tile_context *ctx) {
    enum { A = 4, B = 8, C = 2 };
    float x[A * B * C], y[A * B * C];
    int32_t ix[A * B * C], m[A * C];
    for (int i = 0; i < A * B * C; i++) x[i] = tie_value();
    void *dx = dev_copy(ctx, x, sizeof x), *dy = dev_copy(ctx, NULL, sizeof y), *di = dev_copy(ctx, NULL, sizeof ix),
         *dm = dev_copy(ctx, NULL, sizeof m);
    tile_arg args[4] = {targ(TILE_F32, dx, 3, A, B, C), targ(TILE_F32, dy, 3, A, B, C), targ(TILE_I32, di, 3, A, B, C),
                        targ(TILE_I32, dm, 2, A, C, 0)};
    lang2_launch(ctx, lang2_kernel(ctx, "middle_axis", NULL, 0), args, 4);
    dev_back(ctx, y, dy, sizeof y);
    dev_back(ctx, ix, di, sizeof ix);
    dev_back(ctx, m, dm, sizeof m);
    tile_free(ctx, dx);
    for (int a = 0; a < A; a++)
        for (int c = 0; c < C; c++) {
            double col[B];
            int down[B], up[B], first_nan = -1;
            for (int b = B - 1; b >= 0; b--) {
                col[b] = x[(a * B + b) * C + c];
                if (isnan(col[b])) first_nan = b;
            }
            ref_order(col, B, 1, true, down);
            ref_order(col, B, 1, false, up);
            for (int b = 0; b < B; b++) {
                cr_assert(same_float(y[(a * B + b) * C + c], col[down[b]]), "sort(axis=1) [%d, %d, %d]", a, b, c);
                cr_assert_eq(ix[(a * B + b) * C + c], up[b], "argsort(axis=-2) [%d, %d, %d]", a, b, c);
            }
            cr_assert_eq(m[a * C + c], first_nan >= 0 ? first_nan : up[0], "argmin(axis=1) [%d, %d]", a, c);
        }
}

static void check_int_ranks(tile_context *ctx) {
    enum { N = 64 };
    int32_t x[N], a[N], b[N], t[5], tv[5];
    uint32_t u[N];
    for (int i = 0; i < N; i++) {
        int64_t big = i % 11 == 0 ? INT32_MIN + 10 : i % 13 == 0 ? INT32_MAX - 10 : 0; /* extremes, with ties */
        x[i] = (int32_t)((int64_t)(rnd32() % 9) - 4 + big);
        u[i] = rnd32() % 5 + (i % 7 == 0 ? 0xfffffff0u : 0);
    }
    void *dx = dev_copy(ctx, x, sizeof x), *du = dev_copy(ctx, u, sizeof u), *da = dev_copy(ctx, NULL, sizeof a),
         *db = dev_copy(ctx, NULL, sizeof b), *dt_ = dev_copy(ctx, NULL, sizeof t), *dtv = dev_copy(ctx, NULL, sizeof tv);
    tile_arg args[6] = {targ(TILE_I32, dx, 1, N, 0, 0), targ(TILE_U32, du, 1, N, 0, 0), targ(TILE_I32, da, 1, N, 0, 0),
                        targ(TILE_I32, db, 1, N, 0, 0), targ(TILE_I32, dt_, 1, 5, 0, 0), targ(TILE_I32, dtv, 1, 5, 0, 0)};
    lang2_launch(ctx, lang2_kernel(ctx, "int_ranks", NULL, 0), args, 6);
    dev_back(ctx, a, da, sizeof a);
    dev_back(ctx, b, db, sizeof b);
    dev_back(ctx, t, dt_, sizeof t);
    dev_back(ctx, tv, dtv, sizeof tv);
    tile_free(ctx, dx);
    tile_free(ctx, du);
    double xd[N], ud[N];
    int pd[N], pu[N];
    for (int i = 0; i < N; i++) xd[i] = x[i], ud[i] = u[i];
    ref_order(xd, N, 1, true, pd);
    ref_order(ud, N, 1, false, pu);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(a[i], pd[i], "argsort i32 descending position %d: %d, expected %d", i, a[i], pd[i]);
        cr_assert_eq(b[i], pu[i], "argsort u32 position %d: %d, expected %d", i, b[i], pu[i]);
    }
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(t[i], pd[i], "argtopk i32 position %d: %d, expected %d", i, t[i], pd[i]);
        cr_assert_eq(tv[i], x[pd[i]], "topk i32 position %d", i);
    }
}

static void check_topk(tile_context *ctx, int k) {
    enum { R = 9, C = 16 };
    float x[R * C], v[R * C];
    int32_t ix[R * C];
    for (int i = 0; i < R * C; i++) x[i] = tie_value();
    void *dx = dev_copy(ctx, x, sizeof x), *dv = dev_copy(ctx, NULL, sizeof(float) * R * (size_t)k),
         *di = dev_copy(ctx, NULL, sizeof(int32_t) * R * (size_t)k);
    tile_arg args[3] = {targ(TILE_F32, dx, 2, R, C, 0), targ(TILE_F32, dv, 2, R, k, 0), targ(TILE_I32, di, 2, R, k, 0)};
    tile_constant c = {.name = "K", .i = k};
    lang2_launch(ctx, lang2_kernel(ctx, "topk_rows", &c, 1), args, 3);
    dev_back(ctx, v, dv, sizeof(float) * R * (size_t)k);
    dev_back(ctx, ix, di, sizeof(int32_t) * R * (size_t)k);
    tile_free(ctx, dx);
    for (int r = 0; r < R; r++) {
        double xd[C];
        int perm[C];
        for (int i = 0; i < C; i++) xd[i] = x[r * C + i];
        ref_order(xd, C, 1, true, perm);
        for (int i = 0; i < k; i++) {
            cr_assert_eq(ix[r * k + i], perm[i], "argtopk K=%d row %d position %d: %d, expected %d", k, r, i, ix[r * k + i],
                         perm[i]);
            cr_assert(same_float(v[r * k + i], xd[perm[i]]), "topk K=%d row %d position %d", k, r, i);
        }
    }
}

/* ---- Philox ------------------------------------------------------------------------------------ */
/* Philox4x32-10 on ctr with key (k0, k1), written from the Random123 paper. */
static void ref_philox(uint32_t ctr[4], uint32_t k0, uint32_t k1) {
    for (int round = 0; round < 10; round++) {
        if (round) k0 += 0x9E3779B9u, k1 += 0xBB67AE85u;
        uint64_t p0 = (uint64_t)0xD2511F53u * ctr[0], p1 = (uint64_t)0xCD9E8D57u * ctr[2];
        uint32_t c0 = (uint32_t)(p1 >> 32) ^ ctr[1] ^ k0, c2 = (uint32_t)(p0 >> 32) ^ ctr[3] ^ k1;
        ctr[0] = c0, ctr[1] = (uint32_t)p1, ctr[2] = c2, ctr[3] = (uint32_t)p0;
    }
}

/* Triton's uint_to_uniform_float for 32 bits. */
static float ref_uniform(uint32_t u) {
    int32_t x = (int32_t)u;
    if (x < 0) x = ~x;
    return (float)x * 4.6566127342e-10f;
}

/* randn_tol: the absolute error allowed in randn (the VM's log and cos are f32-exact; the GPU's
 * fast log loses up to 2^-21 near 1, which the square root turns into ~1e-3 for tiny radii). */
static void check_philox(tile_context *ctx, int64_t seed, int32_t base, int n, double randn_tol) {
    uint32_t *u = malloc(4 * (size_t)n);
    float *f = malloc(4 * (size_t)n), *g = malloc(4 * (size_t)n);
    void *du = dev_copy(ctx, NULL, 4 * (size_t)n), *df = dev_copy(ctx, NULL, 4 * (size_t)n), *dg = dev_copy(ctx, NULL, 4 * (size_t)n);
    tile_arg args[5] = {{.kind = TILE_ARG_INT, .i = seed}, {.kind = TILE_ARG_INT, .i = base}, targ(TILE_U32, du, 1, n, 0, 0),
                        targ(TILE_F32, df, 1, n, 0, 0), targ(TILE_F32, dg, 1, n, 0, 0)};
    lang2_launch(ctx, lang2_kernel(ctx, "philox", NULL, 0), args, 5);
    dev_back(ctx, u, du, 4 * (size_t)n);
    dev_back(ctx, f, df, 4 * (size_t)n);
    dev_back(ctx, g, dg, 4 * (size_t)n);
    for (int i = 0; i < n; i++) {
        uint32_t ctr[4] = {(uint32_t)(base + i), 0, 0, 0};
        ref_philox(ctr, (uint32_t)seed, (uint32_t)((uint64_t)seed >> 32));
        cr_assert_eq(u[i], ctr[0], "randint(%lld, %d) = %08x, expected %08x", (long long)seed, base + i, u[i], ctr[0]);
        float want = ref_uniform(ctr[0]);
        cr_assert(memcmp(&f[i], &want, 4) == 0, "rand(%lld, %d) = %.9g, expected %.9g", (long long)seed, base + i,
                  (double)f[i], (double)want);
        cr_assert(f[i] >= 0.0f && f[i] < 1.0f);
        float u1 = fmaxf(1.0e-7f, want), th = 6.283185307179586f * ref_uniform(ctr[1]);
        double normal = sqrt(-2.0 * log((double)u1)) * cos((double)th);
        cr_assert(fabs(g[i] - normal) <= randn_tol + 1e-5 * fabs(normal), "randn(%lld, %d) = %.9g, expected %.9g", (long long)seed,
                  base + i, (double)g[i], normal);
    }
    free(u);
    free(f);
    free(g);
}

/* ---- batched dot ----------------------------------------------------------------------------- */
static void check_bdot_f32(tile_context *ctx) {
    enum { B = 5, M = 16, K = 32, N = 16 };
    float *a = malloc(sizeof(float) * B * M * K), *b = malloc(sizeof(float) * B * K * N), *c = malloc(sizeof(float) * B * M * N),
          *c0 = malloc(sizeof(float) * B * M * N);
    for (int i = 0; i < B * M * K; i++) a[i] = (float)((int)(rnd32() % 2001) - 1000) / 1000;
    for (int i = 0; i < B * K * N; i++) b[i] = (float)((int)(rnd32() % 2001) - 1000) / 1000;
    for (int i = 0; i < B * M * N; i++) c[i] = c0[i] = (float)(rnd32() % 100) / 10;
    void *da = dev_copy(ctx, a, sizeof(float) * B * M * K), *db = dev_copy(ctx, b, sizeof(float) * B * K * N),
         *dc = dev_copy(ctx, c, sizeof(float) * B * M * N);
    tile_arg args[3] = {targ(TILE_F32, da, 3, B, M, K), targ(TILE_F32, db, 3, B, K, N), targ(TILE_F32, dc, 3, B, M, N)};
    lang2_launch(ctx, lang2_kernel(ctx, "bdot_f32", NULL, 0), args, 3);
    dev_back(ctx, c, dc, sizeof(float) * B * M * N);
    tile_free(ctx, da);
    tile_free(ctx, db);
    for (int bb = 0; bb < B; bb++)
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                double want = c0[(bb * M + m) * N + n];
                for (int k = 0; k < K; k++) want += (double)a[(bb * M + m) * K + k] * b[(bb * K + k) * N + n];
                double got = c[(bb * M + m) * N + n];
                cr_assert(fabs(got - want) <= 1e-4 * (1 + fabs(want)), "batch %d [%d, %d]: %g, expected %g", bb, m, n, got, want);
            }
    free(a);
    free(b);
    free(c);
    free(c0);
}

static void check_bdot_bf16(tile_context *ctx) {
    enum { B = 4, M = 32, K = 16, N = 32 };
    double *a = malloc(sizeof(double) * B * M * K), *b = malloc(sizeof(double) * B * K * N);
    float *c = malloc(sizeof(float) * B * M * N);
    uint16_t *ab = malloc(2 * B * M * K), *bb16 = malloc(2 * B * K * N);
    for (int i = 0; i < B * M * K; i++) a[i] = (double)((int)(rnd32() % 17) - 8) / 8;
    for (int i = 0; i < B * K * N; i++) b[i] = (double)((int)(rnd32() % 17) - 8) / 4;
    tile_pack(TILE_BF16, a, B * M * K, ab);
    tile_pack(TILE_BF16, b, B * K * N, bb16);
    void *da = dev_copy(ctx, ab, 2 * B * M * K), *db = dev_copy(ctx, bb16, 2 * B * K * N), *dc = dev_copy(ctx, NULL, sizeof(float) * B * M * N);
    tile_arg args[3] = {targ(TILE_BF16, da, 3, B, M, K), targ(TILE_BF16, db, 3, B, K, N), targ(TILE_F32, dc, 3, B, M, N)};
    lang2_launch(ctx, lang2_kernel(ctx, "bdot_bf16", NULL, 0), args, 3);
    dev_back(ctx, c, dc, sizeof(float) * B * M * N);
    tile_free(ctx, da);
    tile_free(ctx, db);
    for (int x = 0; x < B; x++)
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                double want = 0;
                for (int k = 0; k < K; k++) want += a[(x * M + m) * K + k] * b[(x * K + k) * N + n];
                cr_assert_eq(c[(x * M + m) * N + n], (float)want, "bf16 batch %d [%d, %d]", x, m, n); /* exact: eighths */
            }
    free(a);
    free(b);
    free(c);
    free(ab);
    free(bb16);
}

static void check_bdot_i8(tile_context *ctx) {
    enum { B = 2, M = 16, K = 16, N = 16 };
    int8_t a[B * M * K], b[B * K * N];
    int32_t c[B * M * N];
    for (int i = 0; i < B * M * K; i++) a[i] = (int8_t)(rnd32() % 256);
    for (int i = 0; i < B * K * N; i++) b[i] = (int8_t)(rnd32() % 256);
    void *da = dev_copy(ctx, a, sizeof a), *db = dev_copy(ctx, b, sizeof b), *dc = dev_copy(ctx, NULL, sizeof c);
    tile_arg args[3] = {targ(TILE_I8, da, 3, B, M, K), targ(TILE_I8, db, 3, B, K, N), targ(TILE_I32, dc, 3, B, M, N)};
    lang2_launch(ctx, lang2_kernel(ctx, "bdot_i8", NULL, 0), args, 3);
    dev_back(ctx, c, dc, sizeof c);
    tile_free(ctx, da);
    tile_free(ctx, db);
    for (int x = 0; x < B; x++)
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                int32_t want = 7;
                for (int k = 0; k < K; k++) want += a[(x * M + m) * K + k] * b[(x * K + k) * N + n];
                cr_assert_eq(c[(x * M + m) * N + n], want, "i8 batch %d [%d, %d]", x, m, n);
            }
}

#endif
