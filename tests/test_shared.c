/*
 * test_shared.c: explicit shared tiles, barrier() and atomics on shared memory (lang/SPEC.md
 * 6.10) on the VM, each kernel of tests/shared/shared.tile against a C reference: a block-wide
 * histogram with atomic_add, the old values of shared atomics (a permutation per bin), a
 * transpose through a shared tile, a loop that stages chunks with barriers, every atomic kind on
 * i64/f32/bf16/f16 shared tiles, masked loads and stores and the out-of-bounds rule; the VM's
 * race check on the two kernels that miss a barrier (both places named); every kernel through
 * the IR of the GPU passes on the VM; the PTX for sm_80 and sm_90a (ld/st.shared vectors,
 * atom.shared), assembled where ptxas or nvJitLink is installed.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static tile_context *ctx;
static tile_program *prog;

static void setup(void) {
    ctx = test_vm_context();
    prog = test_load_program(ctx, "tests/shared/shared.tile");
}
static void teardown(void) { tile_context_destroy(ctx); }

TestSuite(shared, .init = setup, .fini = teardown, .timeout = 300);

static tile_kernel *kernel(const char *name) {
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(prog, name, NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
    return k;
}

static tile_arg tensor(tile_dtype dt, void *data, int rank, int64_t d0, int64_t d1) {
    int64_t shape[2] = {d0, d1};
    return (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(dt, data, rank, shape)};
}

static void launch(tile_kernel *k, tile_arg *args, size_t n) {
    cr_assert_eq(tile_kernel_launch(k, args, n, NULL), TILE_OK, "%s", tile_context_message(ctx));
}

static uint64_t seed = 4242;
static uint32_t next_random(void) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(seed >> 33);
}

Test(shared, histogram_with_shared_atomics) {
    enum { N = 3000, BN = 1024, BINS = 64, B = (N + BN - 1) / BN };
    int32_t x[N], hist[B][BINS], want[B][BINS];
    memset(want, 0, sizeof want);
    for (int i = 0; i < N; i++) {
        x[i] = (int32_t)(next_random() % 75) - 3; /* some below 0 and some >= BINS: not counted */
        if (x[i] >= 0 && x[i] < BINS) want[i / BN][x[i]]++;
    }
    memset(hist, 0x7f, sizeof hist);
    tile_arg args[2] = {tensor(TILE_I32, x, 1, N, 0), tensor(TILE_I32, hist, 2, B, BINS)};
    launch(kernel("histogram"), args, 2);
    for (int b = 0; b < B; b++)
        for (int k = 0; k < BINS; k++)
            cr_assert_eq(hist[b][k], want[b][k], "block %d bin %d: %d, want %d", b, k, hist[b][k], want[b][k]);
}

/* The old values of atomic_add(h[v], 1): per block and bin, a permutation of 0 .. count-1. */
Test(shared, old_values_of_shared_atomics_are_places) {
    enum { N = 1000, BN = 256, BINS = 16, B = (N + BN - 1) / BN };
    int32_t x[N], place[N], count[B][BINS];
    for (int i = 0; i < N; i++) x[i] = (int32_t)(next_random() % BINS);
    tile_arg args[3] = {tensor(TILE_I32, x, 1, N, 0), tensor(TILE_I32, place, 1, N, 0),
                        tensor(TILE_I32, count, 2, B, BINS)};
    launch(kernel("bin_places"), args, 3);
    for (int b = 0; b < B; b++)
        for (int k = 0; k < BINS; k++) {
            bool seen[BN] = {false};
            int n = 0;
            for (int i = b * BN; i < N && i < (b + 1) * BN; i++) {
                if (x[i] != k) continue;
                n++;
                cr_assert(place[i] >= 0 && place[i] < BN && !seen[place[i]], "block %d bin %d: place %d twice or "
                          "out of range", b, k, place[i]);
                seen[place[i]] = true;
            }
            cr_assert_eq(count[b][k], n, "block %d bin %d: count %d, want %d", b, k, count[b][k], n);
            for (int p = 0; p < n; p++) cr_assert(seen[p], "block %d bin %d: place %d missing", b, k, p);
        }
}

Test(shared, transpose_through_a_shared_tile) {
    enum { M = 100, N = 70 }; /* tails in both dimensions of the [32, 64] tiles */
    static float x[M][N], y[N][M];
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) x[i][j] = (float)(i * 1000 + j);
    memset(y, 0, sizeof y);
    tile_arg args[2] = {tensor(TILE_F32, x, 2, M, N), tensor(TILE_F32, y, 2, N, M)};
    launch(kernel("transpose"), args, 2);
    for (int j = 0; j < N; j++)
        for (int i = 0; i < M; i++) cr_assert_eq(y[j][i], x[i][j], "y[%d][%d] = %g", j, i, y[j][i]);
}

Test(shared, staged_loop_with_barriers_and_cas) {
    enum { N = 1000, BN = 128 };
    float x[N], y[BN];
    int32_t top[2];
    for (int i = 0; i < N; i++) x[i] = (float)((int)(next_random() % 2001) - 1000) / 8.0f;
    tile_arg args[3] = {tensor(TILE_F32, x, 1, N, 0), tensor(TILE_F32, y, 1, BN, 0), tensor(TILE_I32, top, 1, 2, 0)};
    launch(kernel("staged_sum"), args, 3);
    int32_t max_seen = 0;
    for (int j = 0; j < BN; j++) {
        float acc = 0.0f;
        for (int k = 0; k < N; k += BN) {
            int i = k + BN - 1 - j;
            acc += i < N ? x[i] : 0.0f; /* past the end reads 0 */
        }
        cr_assert_eq(y[j], acc, "y[%d] = %g, want %g", j, y[j], acc);
    }
    for (int k = 0; k < N; k += BN) {
        float m = 0.0f; /* the tail's zeros count */
        for (int i = k; i < k + BN; i++) m = fmaxf(m, i < N ? x[i] : 0.0f);
        if ((int32_t)m > max_seen) max_seen = (int32_t)m;
    }
    cr_assert_eq(top[0], max_seen, "max %d, want %d", top[0], max_seen);
    cr_assert_eq(top[1], 707, "cas: %d, want 707 (the first swaps 0 for 7, the second finds 7)", top[1]);
}

Test(shared, every_atomic_kind_on_shared_tiles) {
    enum { N = 64 };
    int64_t x[N], olds[N], out_i[4];
    float f[N], out_f[2];
    uint16_t out_b, out_h;
    int64_t or_ = 0, and_ = -1, min_ = 1000;
    float max_ = -INFINITY, sum = 0.0f;
    for (int i = 0; i < N; i++) {
        x[i] = (int64_t)(next_random() % 100000) - 20000 + ((int64_t)1 << 40) * (i % 3);
        f[i] = (float)((int)(next_random() % 9) - 4); /* small integers: every order sums exactly */
        or_ |= x[i], and_ &= x[i], min_ = x[i] < min_ ? x[i] : min_;
        max_ = fmaxf(max_, f[i]), sum += f[i];
    }
    tile_arg args[7] = {tensor(TILE_I64, x, 1, N, 0),      tensor(TILE_F32, f, 1, N, 0),
                        tensor(TILE_I64, out_i, 1, 4, 0),  tensor(TILE_I64, olds, 1, N, 0),
                        tensor(TILE_F32, out_f, 1, 2, 0),  tensor(TILE_BF16, &out_b, 1, 1, 0),
                        tensor(TILE_F16, &out_h, 1, 1, 0)};
    launch(kernel("atomic_kinds"), args, 7);
    cr_assert_eq(out_i[0], or_);
    cr_assert_eq(out_i[1], and_);
    cr_assert_eq(out_i[2], min_);
    /* xchg: the old values and the final value are the initial -5 and the 64 values, in some order */
    int64_t all[N + 1], got[N + 1];
    for (int i = 0; i < N; i++) all[i] = x[i], got[i] = olds[i];
    all[N] = -5, got[N] = out_i[3];
    for (int i = 0; i <= N; i++) {
        bool found = false;
        for (int j = 0; j <= N && !found; j++)
            if (got[j] == all[i]) got[j] = INT64_MIN, found = true;
        cr_assert(found, "xchg: %lld is missing from the old values and the final value", (long long)all[i]);
    }
    cr_assert_eq(out_f[0], max_);
    cr_assert_eq(out_f[1], sum);
    double b, h;
    tile_unpack(TILE_BF16, &out_b, 1, &b);
    tile_unpack(TILE_F16, &out_h, 1, &h);
    cr_assert_eq(b, (double)sum, "bf16 sum %g, want %g", b, (double)sum);
    cr_assert_eq(h, (double)sum, "f16 sum %g, want %g", h, (double)sum);
}

Test(shared, masked_access_and_out_of_bounds) {
    enum { N = 64 };
    float x[N], y[N], z[N];
    for (int i = 0; i < N; i++) x[i] = (float)i + 0.5f;
    tile_arg args[3] = {tensor(TILE_F32, x, 1, N, 0), tensor(TILE_F32, y, 1, N, 0), tensor(TILE_F32, z, 1, N, 0)};
    launch(kernel("shared_masked"), args, 3);
    for (int p = 0; p < N; p++) {
        float want = p >= 60 ? -1.0f : p + 8 < N ? x[p + 8] : 0.0f;
        cr_assert_eq(y[p], want, "y[%d] = %g, want %g", p, y[p], want);
        float zw = p % 2 == 0 ? 2.0f * x[p] : x[p];
        cr_assert_eq(z[p], zw, "z[%d] = %g, want %g", p, z[p], zw);
    }
}

/* A launch that must fail with a race: the message names this access and the other one. */
static void expect_race(const char *name, int64_t n, int64_t ny, const char *this_access, int this_line,
                        const char *other_access, int other_line) {
    float *x = calloc((size_t)n, sizeof(float)), *y = calloc((size_t)ny, sizeof(float));
    tile_arg args[2] = {tensor(TILE_F32, x, 1, n, 0), tensor(TILE_F32, y, 1, ny, 0)};
    tile_status st = tile_kernel_launch(kernel(name), args, 2, NULL);
    const char *msg = tile_context_message(ctx);
    cr_assert_neq(st, TILE_OK, "%s: a missing barrier was not caught", name);
    char here[64], there[96];
    snprintf(here, sizeof here, "shared.tile:%d:", this_line);
    snprintf(there, sizeof there, "the %s at ", other_access);
    cr_assert(strstr(msg, "a race on shared memory"), "%s", msg);
    cr_assert(strstr(msg, here) && strstr(msg, this_access), "%s: wants %s at line %d:\n%s", name, this_access,
              this_line, msg);
    cr_assert(strstr(msg, there), "%s: wants the %s:\n%s", name, other_access, msg);
    snprintf(there, sizeof there, "shared.tile:%d:", other_line);
    cr_assert(strstr(strstr(msg, "the ") ? strstr(msg, "the ") : msg, there), "%s: wants line %d:\n%s", name,
              other_line, msg);
    cr_assert(strstr(msg, "put barrier() between them"), "%s", msg);
    free(x), free(y);
}

static int line_of(const char *needle) {
    size_t len;
    char *src = test_read_source_file("tests/shared/shared.tile", &len);
    char *at = strstr(src, needle);
    cr_assert_not_null(at, "no '%s' in shared.tile", needle);
    int line = 1;
    for (char *p = src; p < at; p++) line += *p == '\n';
    free(src);
    return line;
}

Test(shared, missing_barrier_before_a_read_is_a_race) {
    int store = line_of("  s[:] = x[0 :+ 64];"), load = line_of("  y[0 :+ 64] = s[63 - arange(64)];");
    expect_race("racy_read", 64, 64, "this load reads element [63]", load, "store", store);
}

Test(shared, missing_barrier_at_the_end_of_a_loop_is_a_race) {
    int store = line_of("    s[:] = x[k :+ 64];"), load = line_of("    acc = acc + s[63 - arange(64)];");
    expect_race("racy_loop", 256, 64, "this store writes element [0]", store, "load", load);
}

/* The same kernels after the GPU passes (layouts, smem_plan) still run and match: the VM judges
 * the passes on shared tiles too (TILE_VM_GPU_PASSES, as for test_kernels). */
Test(shared, transpose_after_the_gpu_passes) {
    setenv("TILE_VM_GPU_PASSES", "1", 1);
    tile_context *c2 = test_vm_context();
    tile_program *p2 = test_load_program(c2, "tests/shared/shared.tile");
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(p2, "transpose", NULL, 0, &k), TILE_OK, "%s", tile_context_message(c2));
    enum { M = 40, N = 90 };
    static float x[M][N], y[N][M];
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) x[i][j] = (float)(i - j);
    tile_arg args[2] = {tensor(TILE_F32, x, 2, M, N), tensor(TILE_F32, y, 2, N, M)};
    cr_assert_eq(tile_kernel_launch(k, args, 2, NULL), TILE_OK, "%s", tile_context_message(c2));
    for (int j = 0; j < N; j++)
        for (int i = 0; i < M; i++) cr_assert_eq(y[j][i], x[i][j]);
    tile_context_destroy(c2);
    unsetenv("TILE_VM_GPU_PASSES");
}

/* ---- the GPU code: assembles for both architectures, with vector and atomic shared accesses ---- */
static char *emit(const char *name, const char *arch, tile_emit_kind kind, size_t *len) {
    tile_emit_options o = {.arch = arch};
    char *out = NULL;
    tile_status st = tile_program_emit(prog, name, NULL, 0, kind, &o, &out, len);
    if (kind == TILE_EMIT_CUBIN && st == TILE_ERROR_UNSUPPORTED && strstr(tile_context_message(ctx), "assembl"))
        return NULL;
    cr_assert_eq(st, TILE_OK, "%s %s: %s", name, arch, tile_context_message(ctx));
    return out;
}

Test(shared, every_kernel_assembles_for_sm80_and_sm90a) {
    static const char *names[] = {"histogram", "bin_places", "transpose", "staged_sum", "atomic_kinds",
                                  "shared_masked", "racy_read", "racy_loop"};
    static const char *archs[] = {"sm_80", "sm_90a"};
    for (size_t a = 0; a < 2; a++)
        for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
            size_t len = 0;
            tile_string_free(emit(names[i], archs[a], TILE_EMIT_PTX, &len));
            char *cubin = emit(names[i], archs[a], TILE_EMIT_CUBIN, &len);
            if (!cubin) cr_skip_test("no PTX assembler: %s", tile_context_message(ctx));
            cr_assert_gt(len, 64);
            tile_string_free(cubin);
        }
}

Test(shared, shared_accesses_are_vectorized_and_atomic) {
    size_t len;
    char *ptx = emit("transpose", "sm_80", TILE_EMIT_PTX, &len);
    cr_assert(strstr(ptx, "st.shared.v4.f32") || strstr(ptx, "st.shared.v4.b32"), "no 16-byte shared store:\n%s", ptx);
    cr_assert(strstr(ptx, "bar.sync"), "no barrier:\n%s", ptx);
    tile_string_free(ptx);
    ptx = emit("histogram", "sm_80", TILE_EMIT_PTX, &len);
    cr_assert(strstr(ptx, "atom.shared.add.u32"), "no shared atomic add:\n%s", ptx);
    cr_assert(!strstr(ptx, "atom.global"), "the histogram's atomics must stay in shared memory:\n%s", ptx);
    tile_string_free(ptx);
    ptx = emit("atomic_kinds", "sm_90a", TILE_EMIT_PTX, &len);
    cr_assert(strstr(ptx, "atom.shared.add.noftz.bf16"), "no bf16 shared atomic add on sm_90a:\n%s", ptx);
    cr_assert(strstr(ptx, "atom.shared.add.noftz.f16"), "no f16 shared atomic add:\n%s", ptx);
    tile_string_free(ptx);
}

/* ---- smem_plan: the target's budget ---- */
#include "ir/ir.h"
#include "passes/passes.h"

Test(shared, smem_plan_reports_buffers_past_the_target_budget) {
    static const char text[] =
        "kernel @k(%0: tensor<f32>[?])\n"
        "grid {\n  %1 = const 1 : i32\n  yield %1\n}\n"
        "body {\n"
        "  %1 = shared_alloc offset 0, uninit 1 : shared<f32>[160, 256]\n"
        "  %2 = shared_alloc offset 0, uninit 1 : shared<f32>[16, 256]\n"
        "  %3 = shared_load %1 : tile<f32>[160, 256]\n"
        "  %4 = shared_load %2 : tile<f32>[16, 256]\n"
        "}\n";
    DiagList d = {0};
    IrModule *m = ir_parse_module("budget.ir", text, sizeof text - 1, &d);
    cr_assert_not_null(m, "%s", sb_str(&d.text));
    PassOptions o = {.target = {.sm = 90, .arch_specific = true, .smem_bytes = 164 * 1024}}; /* both alive */
    pass_smem_plan(m, &o, &d);
    cr_assert_eq(d.errors, 1, "%s", sb_str(&d.text));
    cr_assert(strstr(sb_str(&d.text), "budget.ir:8:") && strstr(sb_str(&d.text), "180224 bytes") &&
              strstr(sb_str(&d.text), "167936 bytes"), "%s", sb_str(&d.text));
    diag_free(&d);
    d = (DiagList){0};
    o.target.smem_bytes = 0; /* 227 KB on sm_90a: both fit */
    pass_smem_plan(m, &o, &d);
    cr_assert_eq(d.errors, 0, "%s", sb_str(&d.text));
    diag_free(&d);
    ir_module_free(m);
}
