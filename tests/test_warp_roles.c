/*
 * test_warp_roles.c: warp roles (warp_roles) on the VM and in the code generator, on the
 * hand-written kernels of tests/ir/warp_roles.ir.
 *
 * The VM runs each role as its own worker with blocking mbarrier waits: the warp-specialized gemm
 * (a producer role filling a 3-stage TMA ring, a consumer role computing) must give the plain
 * gemm's bits at shapes with tails and with the ring wrapping; its variant whose consumer never
 * releases a stage must be reported as a deadlock naming what each role waits on (and must run
 * when the ring never wraps); three roles exchanging data through shared memory must see a
 * role-local barrier and an mbarrier that needs two arrivals, and the VM must catch the race
 * when the role's barrier is missing. A variant whose consumer issues asynchronous wgmma dots
 * releases each stage one iteration later, once the dot that read it is complete. The code generator must branch on the warp index, move
 * registers with setmaxnreg, give each role its own named barrier and let one thread of a role
 * arrive for it; the PTX is checked as text (ptxas is not here: see the commands in the file).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "backend/backend.h"
#include "ir/ir.h"
#include "runtime/vm.h"
#include "testutil.h"

static IrModule *load_module(void) {
    size_t len;
    char *text = test_read_source_file("tests/ir/warp_roles.ir", &len);
    DiagList d = {0};
    IrModule *m = ir_parse_module("warp_roles.ir", text, len, &d);
    free(text);
    cr_assert_not_null(m, "%s", sb_str(&d.text));
    diag_free(&d);
    return m;
}

static IrFunction *kernel(IrModule *m, const char *name) {
    IrFunction *f = ir_module_find(m, name);
    cr_assert_not_null(f, "no kernel %s", name);
    return f;
}

/* Runs a gemm kernel on the VM over random bf16 inputs (the same each time) into the f32 c. */
static bool run_gemm(const IrFunction *k, int64_t m, int64_t n, int64_t kk, int threads, float *c, Strbuf *err) {
    uint16_t *a = malloc((size_t)(m * kk) * 2), *b = malloc((size_t)(kk * n) * 2);
    uint64_t s = 11;
    test_random_bf16(a, m * kk, &s);
    test_random_bf16(b, kk * n, &s);
    int64_t sa[2] = {m, kk}, sb[2] = {kk, n}, sc[2] = {m, n};
    tile_arg args[3] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, a, 2, sa)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, b, 2, sb)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, c, 2, sc)}};
    bool ok = vm_launch_threads(k, args, 3, threads, err);
    free(a), free(b);
    return ok;
}

Test(warp_roles, the_specialized_gemm_gives_the_plain_gemms_bits) {
    IrModule *m = load_module();
    /* K = 448: seven stages through a ring of three (it wraps twice); 133: a partial last box */
    const int64_t shapes[][3] = {{200, 136, 448}, {128, 64, 133}, {1, 1, 64}, {129, 65, 1}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int64_t mm = shapes[i][0], n = shapes[i][1], k = shapes[i][2];
        float *c1 = calloc((size_t)(mm * n), 4), *c2 = calloc((size_t)(mm * n), 4);
        Strbuf err = {0};
        cr_assert(run_gemm(kernel(m, "gemm"), mm, n, k, 2, c1, &err), "%s", sb_str(&err));
        for (int w = 0; w < 2; w++) {
            const char *name = w ? "gemm_roles_wgmma" : "gemm_roles";
            memset(c2, 0, (size_t)(mm * n) * 4);
            cr_assert(run_gemm(kernel(m, name), mm, n, k, i % 2 ? 1 : 2, c2, &err), "%s %lldx%lldx%lld: %s", name,
                      (long long)mm, (long long)n, (long long)k, sb_str(&err));
            cr_assert(memcmp(c1, c2, (size_t)(mm * n) * 4) == 0, "%s %lldx%lldx%lld: results differ", name,
                      (long long)mm, (long long)n, (long long)k);
        }
        double sum = 0;
        for (int64_t j = 0; j < mm * n; j++) sum += fabs(c1[j]);
        cr_assert_gt(sum, 0.0, "the reference is all zeros");
        sb_free(&err);
        free(c1), free(c2);
    }
    ir_module_free(m);
}

Test(warp_roles, a_consumer_that_never_releases_a_stage_deadlocks) {
    IrModule *m = load_module();
    IrFunction *k = kernel(m, "gemm_roles_deadlock");
    float *c = calloc(128 * 64, 4);
    Strbuf err = {0};
    /* two stages of a ring of three: nothing waits on a release, so it runs */
    cr_assert(run_gemm(k, 128, 64, 128, 1, c, &err), "%s", sb_str(&err));
    /* seven: the producer waits for stage 0 to be released, the consumer for its next fill */
    cr_assert_not(run_gemm(k, 128, 64, 448, 1, c, &err));
    const char *msg = sb_str(&err);
    cr_assert(strstr(msg, "warp_roles: deadlock"), "%s", msg);
    cr_assert(strstr(msg, "role 0 waits on mbarrier 0 of the ring at warp_roles.ir:"), "%s", msg);
    cr_assert(strstr(msg, "for parity 0"), "%s", msg);
    cr_assert(strstr(msg, "role 1 waits on mbarrier 0 of the ring at warp_roles.ir:"), "%s", msg);
    cr_assert(strstr(msg, "for parity 1"), "%s", msg);
    cr_assert(strstr(msg, "block (0, 0, 0)"), "%s", msg);
    sb_free(&err);
    free(c);
    ir_module_free(m);
}

Test(warp_roles, a_producer_that_does_not_wait_for_empty_stages_is_caught) {
    IrModule *m = load_module();
    float *c = calloc(128 * 64, 4);
    Strbuf err = {0};
    cr_assert_not(run_gemm(kernel(m, "gemm_roles_no_empty_wait"), 128, 64, 448, 1, c, &err));
    cr_assert(strstr(sb_str(&err), "copy_tma: copies over shared memory that a copy of phase 0 of mbarrier 0 filled and "
                                   "no wait has seen yet"), "%s", sb_str(&err));
    sb_free(&err);
    free(c);
    ir_module_free(m);
}

/* role_exchange and role_race: in[64] -> out[128] (out[32..64) is left alone). */
static bool run_exchange(const IrFunction *k, float *out, Strbuf *err) {
    float in[64];
    for (int i = 0; i < 64; i++) in[i] = (float)(i + 1);
    for (int i = 0; i < 128; i++) out[i] = -1.0f;
    int64_t si[1] = {64}, so[1] = {128};
    tile_arg args[2] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, in, 1, si)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, out, 1, so)}};
    return vm_launch_threads(k, args, 2, 1, err);
}

/* What role_exchange (and role_threads) leave in out. */
static void check_exchange(const float *out) {
    for (int i = 0; i < 32; i++) {
        cr_assert_eq(out[i], (float)(32 - i), "out[%d] = %g: role 0 reads its own stores after its barrier", i, out[i]);
        cr_assert_eq(out[32 + i], -1.0f);
        cr_assert_eq(out[64 + i], (float)(i + 1), "out[%d] = %g", 64 + i, out[64 + i]);
        /* role 1 runs between role 0 and role 2: with too few arrivals it would read role 2's half
         * unwritten */
        cr_assert_eq(out[96 + i], 2.0f * (float)(33 + i), "out[%d] = %g: role 1 did not wait for every arrival",
                     96 + i, out[96 + i]);
    }
}

/* Kernel `good` gives the role exchange's output; kernel `bad` fails with `message` in the VM's
 * report. */
static void exchange_and_fault(const char *good, const char *bad, const char *message) {
    IrModule *m = load_module();
    float out[128];
    Strbuf err = {0};
    cr_assert(run_exchange(kernel(m, good), out, &err), "%s: %s", good, sb_str(&err));
    check_exchange(out);
    cr_assert_not(run_exchange(kernel(m, bad), out, &err), "%s ran", bad);
    cr_assert(strstr(sb_str(&err), message), "%s: %s", bad, sb_str(&err));
    sb_free(&err);
    ir_module_free(m);
}

Test(warp_roles, a_role_barrier_and_an_mbarrier_of_two_arrivals) {
    exchange_and_fault("role_exchange", "role_race", "a race on shared memory");
}

/* mbarrier_arrive ..., threads N: N arrivals, one per thread of the role (the warp-specialized
 * consumers' release); an mbarrier expecting more never completes, which the VM reports. */
Test(warp_roles, arrivals_thread_by_thread) {
    exchange_and_fault("role_threads", "role_threads_short", "role 1 waits on mbarrier 0 of the ring at warp_roles.ir:");
}

/* The PTX of a kernel of warp_roles.ir for sm_90a (the IR is GPU-level already: no passes). */
static char *ptx_of(IrModule *m, const char *name) {
    CodegenOptions opt = {.arch = BACKEND_ARCH_SM90A};
    CodegenInfo info;
    Strbuf ptx = {0}, err = {0};
    cr_assert(backend_compile_ptx(kernel(m, name), &opt, &ptx, &info, &err), "%s: %s", name, sb_str(&err));
    sb_free(&err);
    return ptx.data;
}

static int occurrences(const char *text, const char *what) {
    int n = 0;
    for (const char *p = strstr(text, what); p; p = strstr(p + 1, what)) n++;
    return n;
}

Test(warp_roles, the_ptx_branches_per_role_moves_registers_and_syncs_each_role_alone) {
    IrModule *m = load_module();
    char *ptx = ptx_of(m, "gemm_roles");
    /* 4 warps at 40 and 4 at 232: the kernel starts at their average */
    cr_assert(strstr(ptx, ".maxnreg 136"), "%s", ptx);
    cr_assert_eq(occurrences(ptx, "setmaxnreg.dec.sync.aligned.u32 40;"), 1);
    cr_assert_eq(occurrences(ptx, "setmaxnreg.inc.sync.aligned.u32 232;"), 1);
    /* one block-wide barrier (after mbarrier_init, before the roles); the consumer's release of a
       stage waits for its 128 threads at its own barrier; the producer's arrival follows its own
       copies and needs none */
    cr_assert_eq(occurrences(ptx, "bar.sync 0;"), 1);
    cr_assert_eq(occurrences(ptx, "bar.sync 2, 128;"), 1);
    cr_assert_eq(occurrences(ptx, "bar.sync 1,"), 0);
    cr_assert_eq(occurrences(ptx, "mbarrier.arrive.shared::cta.b64"), 2);
    cr_assert_eq(occurrences(ptx, "cp.async.bulk.tensor.2d"), 2);
    cr_assert_eq(occurrences(ptx, "mbarrier.try_wait.parity"), 2);
    cr_assert_eq(occurrences(ptx, "mbarrier.init.shared::cta.b64 [%r"), 6);
    free(ptx);
    /* with wgmma: the consumer releases the previous stage after wgmma.wait_group 1, at its barrier */
    ptx = ptx_of(m, "gemm_roles_wgmma");
    const char *wait1 = strstr(ptx, "wgmma.wait_group.sync.aligned 1;");
    cr_assert_not_null(wait1, "%s", ptx);
    const char *bar = strstr(wait1, "bar.sync 2, 128;"), *arrive = bar ? strstr(bar, "mbarrier.arrive") : NULL;
    cr_assert(bar && arrive, "%s", ptx);
    cr_assert_eq(occurrences(ptx, "bar.sync 0;"), 1);
    free(ptx);
    ptx = ptx_of(m, "role_exchange");
    cr_assert(strstr(ptx, "mbarrier.init.shared::cta.b64 [%r") && strstr(ptx, "], 2;"), "%s", ptx);
    cr_assert_eq(occurrences(ptx, "setmaxnreg"), 0);
    cr_assert_eq(occurrences(ptx, ".maxnreg"), 0);
    /* role 0 (one warp): its barrier and the one before its arrival; role 2: before its arrival */
    cr_assert_eq(occurrences(ptx, "bar.sync 1, 32;"), 2);
    cr_assert_eq(occurrences(ptx, "bar.sync 3, 32;"), 1);
    cr_assert_eq(occurrences(ptx, "bar.sync 2,"), 0);
    free(ptx);
    ir_module_free(m);
}

/* Outside roles, a phase of an mbarrier with `count 2` completes with its second arrival: a wait
 * after one arrival would never return (a VM error), after two it returns. */
static bool run_count(const char *arrivals, Strbuf *err) {
    Strbuf text = {0};
    sb_printf(&text,
              "kernel @k(%%0: tensor<f32>[N])\ngrid {\n  %%1 = const 1 : i32\n  yield %%1\n}\nbody {\n"
              "  %%1 = shared_alloc : shared<i64>[1]\n  %%2 = const 0 : i32\n  mbarrier_init %%1, count 2\n%s"
              "  mbarrier_wait %%1, %%2, %%2\n}\n",
              arrivals);
    DiagList d = {0};
    IrModule *m = ir_parse_module("count.ir", sb_str(&text), text.len, &d);
    cr_assert_not_null(m, "%s", sb_str(&d.text));
    float x = 0;
    int64_t shape[1] = {1};
    tile_arg arg = {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, &x, 1, shape)};
    bool ok = vm_launch_threads(ir_module_find(m, "k"), &arg, 1, 1, err);
    ir_module_free(m);
    diag_free(&d);
    sb_free(&text);
    return ok;
}

Test(warp_roles, an_arrival_count_outside_roles) {
    Strbuf err = {0};
    cr_assert_not(run_count("  mbarrier_arrive %1, %2\n", &err));
    cr_assert(strstr(sb_str(&err), "count.ir:11:3: mbarrier_wait: waits for a phase of parity 0 of mbarrier 0, whose "
                                   "last completed phase does not exist"), "%s", sb_str(&err));
    sb_clear(&err);
    cr_assert(run_count("  mbarrier_arrive %1, %2\n  mbarrier_arrive %1, %2\n", &err), "%s", sb_str(&err));
    sb_free(&err);
}
