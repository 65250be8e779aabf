/*
 * test_conds.c: launch-known conditions (passes/conds.c, runtime/launch.c, device_cuda.c) without
 * a GPU. Which conditions count (sizes, scalars, constants; not block_id, not a loop variable, at
 * most LAUNCH_CONDS_MAX), their values from a launch's arguments (rt_conds_eval), their place in
 * the variant's facts (text, cache key, the variant list: a variant compiled for one value never
 * serves the other), the fold judged by the VM (softmax's one-pass and two-loop paths, ragged rows,
 * the folded kernel's results identical bit for bit to the unspecialized kernel's), the PTX of
 * softmax's one-pass variant (no trace of the loops: far fewer ex2), and ahead-of-time images,
 * which stay generic.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"
#include "runtime/vm.h"
#include "testutil.h"

static const char *pick_source =
    "kernel pick(x: tensor<f32>[N], y: tensor<f32>[N], s: i32) grid(1) {\n"
    "  let b = block_id(0);\n"
    "  if N <= 64 { y[0 :+ 64] = x[0 :+ 64] * 2.0; } else { y[0 :+ 64] = x[0 :+ 64] + 1.0; }\n"
    "  if s * 2 > N { y[0 :+ 64] = x[0 :+ 64]; }\n"
    "  if b > 0 { y[0 :+ 64] = x[0 :+ 64] - 1.0; }\n"
    "  for i in 0 .. s { if i < N { y[0 :+ 64] = x[0 :+ 64] - 2.0; } }\n"
    "  let v = x[0 :+ 64];\n"
    "  if max(v, axis=0) > 0.0 { y[0 :+ 64] = v; }\n"
    "}\n";

static tile_kernel *get_kernel(tile_context *ctx, tile_program **p, const char *name, const char *source,
                               const char *kernel) {
    cr_assert_eq(tile_program_from_string(ctx, name, source, strlen(source), p), TILE_OK, "%s",
                 tile_context_message(ctx));
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(*p, kernel, NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
    return k;
}

static float memory[1 << 12];

static void pick_args(tile_arg args[3], int64_t n, int64_t s) {
    memset(args, 0, 3 * sizeof *args);
    args[0].kind = args[1].kind = TILE_ARG_TENSOR;
    args[0].tensor = tile_tensor_contiguous(TILE_F32, memory, 1, &n);
    args[1].tensor = tile_tensor_contiguous(TILE_F32, memory + 2048, 1, &n);
    args[2].kind = TILE_ARG_INT;
    args[2].i = s;
}

Test(conds, only_launch_known_conditions_count) {
    tile_context *ctx = test_vm_context();
    tile_program *p;
    tile_kernel *k = get_kernel(ctx, &p, "pick.tile", pick_source, "pick");
    IrValue *conds[LAUNCH_CONDS_MAX];
    cr_assert_eq(launch_conds_find(k->function, conds), 2,
                 "N <= 64 and s * 2 > N; not block_id, the loop variable or loaded data");
    cr_assert_eq(rt_conds_count(k->conds), 2);
    tile_arg args[3];
    unsigned known = 3u << LAUNCH_CONDS_MAX;
    pick_args(args, 64, 100);
    cr_assert_eq(rt_conds_eval(k->conds, args, 3), known | 1 | 2);
    pick_args(args, 65, 32);
    cr_assert_eq(rt_conds_eval(k->conds, args, 3), known, "65 > 64, 64 > 65 is false");
    pick_args(args, 10, -3);
    cr_assert_eq(rt_conds_eval(k->conds, args, 3), known | 1);
    /* the facts' text (what a variant is called) */
    RtSpecFacts facts[4];
    args[0].tensor.data = args[1].tensor.data = (char *)memory + 4; /* no tensor fact but unit strides */
    args[0].tensor.shape[0] = args[1].tensor.shape[0] = 17;
    cr_assert(rt_spec_facts(k->function, k->conds, args, 3, facts));
    Strbuf text = {0};
    rt_spec_text(k->function, k->conds, facts, &text);
    cr_assert_str_eq(sb_str(&text), "x:unit(0) y:unit(0) if:10");
    args[0].tensor.strides[0] = args[1].tensor.strides[0] = 3; /* no tensor fact at all */
    cr_assert(rt_spec_facts(k->function, k->conds, args, 3, facts), "a known condition alone makes a variant");
    sb_clear(&text);
    rt_spec_text(k->function, k->conds, facts, &text);
    cr_assert_str_eq(sb_str(&text), "if:10");
    sb_free(&text);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

Test(conds, at_most_the_cap) {
    Strbuf src = {0};
    sb_puts(&src, "kernel many(y: tensor<i32>[N]) grid(1) {\n  var a = zeros<i32>[16];\n");
    for (int i = 0; i < LAUNCH_CONDS_MAX + 3; i++) sb_printf(&src, "  if N > %d { a = a + %d; }\n", i * 7, i + 1);
    sb_puts(&src, "  y[0 :+ 16] = a;\n}\n");
    tile_context *ctx = test_vm_context();
    tile_program *p;
    tile_kernel *k = get_kernel(ctx, &p, "many.tile", sb_str(&src), "many");
    IrValue *conds[LAUNCH_CONDS_MAX];
    cr_assert_eq(launch_conds_find(k->function, conds), LAUNCH_CONDS_MAX, "the first ones, the rest not specialized");
    int64_t n = 20;
    static int32_t out[64];
    tile_arg arg = {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_I32, out, 1, &n)};
    /* N = 20 > 0, 7, 14 only */
    cr_assert_eq(rt_conds_eval(k->conds, &arg, 1), (0xffu << LAUNCH_CONDS_MAX) | 7u);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
    sb_free(&src);
}

/* ---- the VM judges the fold: softmax ------------------------------------------------------------ */
typedef struct OpCount {
    int fors, ifs;
} OpCount;

static bool count_visit(IrOp *op, void *ctx) {
    OpCount *c = ctx;
    c->fors += op->code == OP_FOR;
    c->ifs += op->code == OP_IF;
    return true;
}

/* Softmax of an [m, n] input on the VM, unspecialized and with its conditions folded for these
 * sizes: identical bits; returns the folded kernel's for and if counts. */
static OpCount softmax_both_ways(tile_kernel *k, int64_t m, int64_t n, unsigned expect_word) {
    int64_t shape[2] = {m, n};
    float *x = malloc((size_t)(m * n) * sizeof *x), *y0 = calloc((size_t)(m * n), sizeof *y0),
          *y1 = calloc((size_t)(m * n), sizeof *y1);
    uint64_t s = 12345;
    for (int64_t i = 0; i < m * n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(s >> 40) / (double)(1 << 24) * 20.0 - 10.0);
    }
    tile_arg args[2] = {{.kind = TILE_ARG_TENSOR}, {.kind = TILE_ARG_TENSOR}};
    args[0].tensor = tile_tensor_contiguous(TILE_F32, x, 2, shape);
    args[1].tensor = tile_tensor_contiguous(TILE_F32, y0, 2, shape);
    Strbuf err = {0};
    cr_assert(vm_launch(k->function, args, 2, &err), "%s", sb_str(&err));
    unsigned word = rt_conds_eval(k->conds, args, 2);
    cr_assert_eq(word, expect_word, "N = %lld: word %#x", (long long)n, word);
    /* the variant's GPU passes start with the fold: run it alone on a copy */
    IrModule *copy = clone_module(k->module);
    PassOptions opt = {.verify_each = true, .target = {.conds = word}};
    DiagList d = {0};
    cr_assert_eq(passes_run_one(copy, "conds", &opt, &d), 1, "%s", sb_str(&d.text));
    IrFunction *folded = ir_module_find(copy, k->function->name);
    OpCount c = {0};
    ir_walk(folded->body, count_visit, &c);
    args[1].tensor.data = y1;
    cr_assert(vm_launch(folded, args, 2, &err), "%s", sb_str(&err));
    cr_assert_eq(memcmp(y0, y1, (size_t)(m * n) * sizeof *y0), 0, "N = %lld: the folded kernel differs", (long long)n);
    double total = 0;
    for (int64_t j = 0; j < n; j++) total += y0[j];
    cr_assert(fabs(total - 1.0) < 1e-4, "a row sums to %g", total);
    diag_free(&d);
    ir_module_free(copy);
    sb_free(&err);
    free(x), free(y0), free(y1);
    return c;
}

Test(conds, softmax_folded_matches_the_vm_bit_for_bit) {
    tile_context *ctx = test_vm_context();
    tile_program *p = test_load_program(ctx, "stdlib/core/softmax.tile");
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(p, "softmax", NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
    const unsigned known = 1u << LAUNCH_CONDS_MAX;
    cr_assert_eq(rt_conds_count(k->conds), 1, "if N <= BN");
    /* one pass (ragged and full rows): no loop left; two loops: no if left */
    OpCount one = softmax_both_ways(k, 5, 1000, known | 1);
    cr_assert_eq(one.fors, 0, "the one-pass variant has no loop");
    cr_assert_eq(one.ifs, 0);
    one = softmax_both_ways(k, 4, 1024, known | 1);
    cr_assert_eq(one.fors, 0);
    OpCount two = softmax_both_ways(k, 3, 2500, known);
    cr_assert_eq(two.fors, 2, "the two loops");
    cr_assert_eq(two.ifs, 0, "and not the one-pass branch");
    softmax_both_ways(k, 2, 1025, known);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* ---- a variant per condition value -------------------------------------------------------------- */
typedef struct Fake {
    int calls;
    unsigned char functions[4];
} Fake;

static struct RtCudaFunction *fake_compile(void *user, tile_kernel *k, const RtSpecFacts *facts, tile_status *st,
                                           Strbuf *err) {
    Fake *c = user;
    (void)k, (void)st, (void)err;
    return (struct RtCudaFunction *)&c->functions[facts ? 1 + c->calls++ % 3 : 0];
}

Test(conds, a_variant_serves_only_its_condition_values) {
    tile_context *ctx = test_vm_context();
    tile_program *p = test_load_program(ctx, "stdlib/core/softmax.tile");
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(p, "softmax", NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
    static float x[4 * 2048], y[4 * 2048];
    RtSpecFacts short_row[3], long_row[3], short_again[3];
    int64_t shape[2] = {4, 512};
    tile_arg args[2] = {{.kind = TILE_ARG_TENSOR}, {.kind = TILE_ARG_TENSOR}};
    args[0].tensor = tile_tensor_contiguous(TILE_F32, x, 2, shape);
    args[1].tensor = tile_tensor_contiguous(TILE_F32, y, 2, shape);
    cr_assert(rt_spec_facts(k->function, k->conds, args, 2, short_row));
    shape[1] = 2048; /* the same tensor facts (multiples of 16), the other branch */
    args[0].tensor = tile_tensor_contiguous(TILE_F32, x, 2, shape);
    args[1].tensor = tile_tensor_contiguous(TILE_F32, y, 2, shape);
    cr_assert(rt_spec_facts(k->function, k->conds, args, 2, long_row));
    shape[0] = 2, shape[1] = 1024;
    args[0].tensor = tile_tensor_contiguous(TILE_F32, x, 2, shape);
    args[1].tensor = tile_tensor_contiguous(TILE_F32, y, 2, shape);
    cr_assert(rt_spec_facts(k->function, k->conds, args, 2, short_again));
    cr_assert_eq(memcmp(short_row, long_row, 2 * sizeof *short_row), 0, "the parameters' facts agree");
    cr_assert_neq(short_row[2], long_row[2], "the conditions' word does not");
    /* the memory cache: a variant per word */
    Fake fake = {0};
    RtCompiler comp = {fake_compile, &fake};
    tile_status st = TILE_OK;
    Strbuf err = {0};
    struct RtCudaFunction *a = rt_kernel_function_for(k, short_row, &comp, &st, &err);
    struct RtCudaFunction *b = rt_kernel_function_for(k, long_row, &comp, &st, &err);
    cr_assert(a && b && a != b, "N = 2048 does not run the N = 512 variant");
    cr_assert_eq(rt_kernel_function_for(k, short_again, &comp, &st, &err), a, "N = 1024 does");
    cr_assert_eq(fake.calls, 2);
    cr_assert_eq(rt_kernel_num_variants(k), 2);
    /* the disk cache: another key */
    CacheKernelId id = {.source = "s", .source_len = 1, .kernel = "softmax", .arch = "sm_90a"};
    CacheKey generic = cache_kernel_key(&id);
    CacheKey ka = rt_spec_cache_key(&generic, short_row, 2), kb = rt_spec_cache_key(&generic, long_row, 2),
             kc = rt_spec_cache_key(&generic, short_again, 2);
    cr_assert_not(cache_key_equal(&ka, &kb), "an entry never serves the other condition value");
    cr_assert(cache_key_equal(&ka, &kc));
    RtSpecFacts no_conds[3] = {short_row[0], short_row[1], 0};
    CacheKey kn = rt_spec_cache_key(&generic, no_conds, 2);
    cr_assert_not(cache_key_equal(&ka, &kn));
    sb_free(&err);
    k->cuda = NULL; /* a fake function: nothing to unload */
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

#ifdef TILE_HAVE_LLVM
static int count_of(const char *s, const char *what) {
    int n = 0;
    for (const char *q = strstr(s, what); q; q = strstr(q + 1, what)) n++;
    return n;
}

/* softmax's PTX (sm_90a, every tensor fact) with TILE_EMIT_CONDS = conds (NULL: unset) */
static char *softmax_ptx(tile_context *ctx, const char *conds) {
    setenv("TILE_EMIT_SPECIALIZED", "1", 1);
    if (conds) setenv("TILE_EMIT_CONDS", conds, 1);
    else unsetenv("TILE_EMIT_CONDS");
    tile_program *p = test_load_program(ctx, "stdlib/core/softmax.tile");
    char *ptx = NULL;
    tile_emit_options opt = {.arch = "sm_90a"};
    cr_assert_eq(tile_program_emit(p, "softmax", NULL, 0, TILE_EMIT_PTX, &opt, &ptx, NULL), TILE_OK, "%s",
                 tile_context_message(ctx));
    tile_program_destroy(p);
    unsetenv("TILE_EMIT_SPECIALIZED");
    unsetenv("TILE_EMIT_CONDS");
    return ptx;
}

Test(conds, softmax_one_pass_ptx_has_no_loop) {
    tile_context *ctx = test_vm_context();
    char *both = softmax_ptx(ctx, NULL), *one = softmax_ptx(ctx, "1"), *two = softmax_ptx(ctx, "0");
    int n_both = count_of(both, "ex2."), n_one = count_of(one, "ex2."), n_two = count_of(two, "ex2.");
    cr_assert_eq(n_both, n_one + n_two, "unspecialized: both paths (%d = %d + %d)", n_both, n_one, n_two);
    cr_assert_lt(n_one * 2, n_both, "the one-pass variant: %d ex2 of %d", n_one, n_both);
    cr_assert_gt(n_one, 0);
    tile_string_free(both), tile_string_free(one), tile_string_free(two);
    tile_context_destroy(ctx);
}
#endif

#ifdef TILE_HAVE_LLVM
/* An ahead-of-time image (tilec build --emit c-header, tile_add_kernels) is the generic kernel:
 * TILE_EMIT_CONDS and TILE_EMIT_SPECIALIZED, which pick tilec build's variant, leave it as it is. */
Test(conds, aot_images_stay_generic) {
    tile_context *ctx = test_vm_context();
    tile_program *p = test_load_program(ctx, "stdlib/core/softmax.tile");
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(p, "softmax", NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
    Strbuf image[2] = {{0}, {0}}, err = {0};
    unsigned threads, shared;
    for (int i = 0; i < 2; i++) {
        if (i) setenv("TILE_EMIT_CONDS", "1", 1), setenv("TILE_EMIT_SPECIALIZED", "1", 1);
        cr_assert_eq(rt_backend_image(k->function, "sm_90a", 0, &image[i], &threads, &shared, &err), TILE_OK, "%s",
                     sb_str(&err));
    }
    unsetenv("TILE_EMIT_CONDS"), unsetenv("TILE_EMIT_SPECIALIZED");
    cr_assert(image[0].len == image[1].len && memcmp(image[0].data, image[1].data, image[0].len) == 0);
    sb_free(&image[0]), sb_free(&image[1]), sb_free(&err);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}
#endif
