/* test_specialize.c: launch-time specialization (runtime/device_cuda.c) without a GPU: the facts
 * computed from tile_args (alignment, unit strides, symbolic sizes that are multiples of 16;
 * fixed sizes and scalars never count), their CodegenParamSpec form and text, the variant cache
 * keys (the generic kernel keeps its key; distinct facts give distinct keys), TILE_SPECIALIZE,
 * which ahead-of-time images a device of a given compute capability can run, and the lazy choice
 * of what a launch compiles (rt_kernel_function_for with a fake compiler that counts: only the
 * function a launch runs is compiled, each once, failures remembered). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"
#include "tile/tile.h"

static const char *source =
    "kernel fixed<B = 16>(a: tensor<f32>[16, N], b: tensor<f32>[M], s: i32, x: f32, c: tensor<i32>[K, L])\n"
    "  grid(1)\n"
    "{\n"
    "  b[0 :+ B] = zeros<f32>[B] + x;\n"
    "}\n";

typedef struct Fixture {
    tile_context *ctx;
    tile_program *program;
    tile_kernel *kernel;
} Fixture;

static Fixture setup(void) {
    Fixture f = {0};
    cr_assert_eq(tile_context_create(TILE_DEVICE_VM, 0, &f.ctx), TILE_OK);
    cr_assert_eq(tile_program_from_string(f.ctx, "fixed.tile", source, strlen(source), &f.program), TILE_OK,
                 "%s", tile_context_message(f.ctx));
    cr_assert_eq(tile_program_get_kernel(f.program, "fixed", NULL, 0, &f.kernel), TILE_OK, "%s",
                 tile_context_message(f.ctx));
    return f;
}

static void teardown(Fixture *f) {
    tile_program_destroy(f->program);
    tile_context_destroy(f->ctx);
}

static _Alignas(64) unsigned char memory[1 << 16];

/* Arguments with 16-byte aligned data, contiguous, every symbolic size a multiple of 16. */
static void good_args(tile_arg args[5]) {
    memset(args, 0, 5 * sizeof *args);
    int64_t a_shape[2] = {16, 32}, b_shape[1] = {64}, c_shape[2] = {48, 16};
    args[0].kind = TILE_ARG_TENSOR;
    args[0].tensor = tile_tensor_contiguous(TILE_F32, memory, 2, a_shape);
    args[1].kind = TILE_ARG_TENSOR;
    args[1].tensor = tile_tensor_contiguous(TILE_F32, memory + 4096, 1, b_shape);
    args[2].kind = TILE_ARG_INT;
    args[2].i = 32;
    args[3].kind = TILE_ARG_FLOAT;
    args[3].f = 1.0;
    args[4].kind = TILE_ARG_TENSOR;
    args[4].tensor = tile_tensor_contiguous(TILE_I32, memory + 8192, 2, c_shape);
}

Test(specialize, facts_of_aligned_contiguous_arguments) {
    Fixture f = setup();
    tile_arg args[5];
    good_args(args);
    RtSpecFacts facts[6]; /* 5 parameters and the conditions */
    cr_assert(rt_spec_facts(f.kernel->function, f.kernel->conds, args, 5, facts));
    /* a: [16, N]: dimension 0 is fixed, so only dimension 1's size counts; stride 1 on dim 1 only */
    /* a and c are row-major with rows of 32 and 16 elements: strides16; b has rank 1 */
    cr_assert_eq(facts[0], RT_SPEC_ALIGNED16 | RT_SPEC_STRIDES_DIV16 | (RT_SPEC_UNIT_STRIDE0 << 1) |
                               (RT_SPEC_SIZE_DIV16_0 << 1));
    cr_assert_eq(facts[1], RT_SPEC_ALIGNED16 | RT_SPEC_UNIT_STRIDE0 | RT_SPEC_SIZE_DIV16_0);
    cr_assert_eq(facts[2], 0, "scalars have no facts");
    cr_assert_eq(facts[3], 0);
    cr_assert_eq(facts[4], RT_SPEC_ALIGNED16 | RT_SPEC_STRIDES_DIV16 | (RT_SPEC_UNIT_STRIDE0 << 1) |
                               RT_SPEC_SIZE_DIV16_0 | (RT_SPEC_SIZE_DIV16_0 << 1));
    /* a row stride that is not a multiple of 16 (a view of wider rows) loses strides16 only */
    args[0].tensor.strides[0] = 40;
    cr_assert(rt_spec_facts(f.kernel->function, f.kernel->conds, args, 5, facts));
    cr_assert_eq(facts[0], RT_SPEC_ALIGNED16 | (RT_SPEC_UNIT_STRIDE0 << 1) | (RT_SPEC_SIZE_DIV16_0 << 1));
    teardown(&f);
}

Test(specialize, each_fact_follows_its_argument) {
    Fixture f = setup();
    tile_arg args[5];
    good_args(args);
    RtSpecFacts facts[6]; /* 5 parameters and the conditions */
    args[1].tensor.data = memory + 4; /* 4-byte aligned only */
    args[1].tensor.shape[0] = 63;     /* not a multiple of 16 */
    args[4].tensor.strides[1] = 2;    /* not unit stride */
    args[4].tensor.strides[0] = 32;
    rt_spec_facts(f.kernel->function, f.kernel->conds, args, 5, facts);
    cr_assert_eq(facts[1], RT_SPEC_UNIT_STRIDE0);
    cr_assert_eq(facts[4], RT_SPEC_ALIGNED16 | RT_SPEC_SIZE_DIV16_0 | (RT_SPEC_SIZE_DIV16_0 << 1));
    teardown(&f);
}

Test(specialize, no_fact_is_the_generic_kernel) {
    Fixture f = setup();
    tile_arg args[5];
    good_args(args);
    static const int tensors[3] = {0, 1, 4};
    for (int t = 0; t < 3; t++) {
        int i = tensors[t];
        args[i].tensor.data = memory + 4;
        for (int d = 0; d < args[i].tensor.rank; d++) {
            args[i].tensor.strides[d] = 3;
            if (d == args[i].tensor.rank - 1 || i != 0) args[i].tensor.shape[d] = 17;
        }
    }
    /* a's dimension 0 stays 16: it is fixed, so it is no fact */
    RtSpecFacts facts[6]; /* 5 parameters and the conditions */
    cr_assert_not(rt_spec_facts(f.kernel->function, f.kernel->conds, args, 5, facts));
    for (int i = 0; i < 5; i++) cr_assert_eq(facts[i], 0, "parameter %d", i);
    Strbuf text = {0};
    rt_spec_text(f.kernel->function, f.kernel->conds, facts, &text);
    cr_assert_str_eq(sb_str(&text), "generic");
    sb_free(&text);
    teardown(&f);
}

Test(specialize, codegen_spec_and_text) {
    Fixture f = setup();
    tile_arg args[5];
    good_args(args);
    RtSpecFacts facts[6]; /* 5 parameters and the conditions */
    rt_spec_facts(f.kernel->function, f.kernel->conds, args, 5, facts);
    CodegenParamSpec a = rt_spec_unpack(facts[0]);
    cr_assert(a.aligned16);
    cr_assert(!a.unit_stride[0] && a.unit_stride[1]);
    cr_assert(!a.size_div16[0] && a.size_div16[1]);
    for (int d = 2; d < 6; d++) cr_assert(!a.unit_stride[d] && !a.size_div16[d]);
    CodegenParamSpec s = rt_spec_unpack(facts[2]);
    cr_assert(!s.aligned16 && !s.unit_stride[0] && !s.size_div16[0]);
    Strbuf text = {0};
    rt_spec_text(f.kernel->function, f.kernel->conds, facts, &text);
    cr_assert_str_eq(sb_str(&text), "a:align16,strides16,unit(1),div16(1) b:align16,unit(0),div16(0) c:align16,strides16,unit(1),div16(0,1)");
    sb_free(&text);
    teardown(&f);
}

Test(specialize, variant_keys) {
    CacheKernelId id = {.source = source, .source_len = strlen(source), .kernel = "fixed", .arch = "sm_90a"};
    CacheKey generic = cache_kernel_key(&id);
    RtSpecFacts none[4] = {0, 0, 0, 0}; /* 3 parameters, then the conditions */
    RtSpecFacts one[4] = {RT_SPEC_ALIGNED16, 0, 0, 0};
    RtSpecFacts other[4] = {0, RT_SPEC_ALIGNED16, 0, 0};
    RtSpecFacts two[4] = {RT_SPEC_ALIGNED16 | RT_SPEC_UNIT_STRIDE0, 0, 0, 0};
    CacheKey k_none = rt_spec_cache_key(&generic, none, 3);
    CacheKey k_one = rt_spec_cache_key(&generic, one, 3);
    CacheKey k_one_again = rt_spec_cache_key(&generic, one, 3);
    CacheKey k_other = rt_spec_cache_key(&generic, other, 3);
    CacheKey k_two = rt_spec_cache_key(&generic, two, 3);
    cr_assert(cache_key_equal(&k_none, &generic), "a fact set with nothing true is the generic kernel");
    cr_assert(cache_key_equal(&k_one, &k_one_again));
    cr_assert_not(cache_key_equal(&k_one, &generic));
    cr_assert_not(cache_key_equal(&k_one, &k_other), "the same fact on another parameter is another variant");
    cr_assert_not(cache_key_equal(&k_one, &k_two));
    id.arch = "sm_80";
    CacheKey generic80 = cache_kernel_key(&id);
    CacheKey k_one80 = rt_spec_cache_key(&generic80, one, 3);
    cr_assert_not(cache_key_equal(&k_one, &k_one80), "the facts extend the generic key (arch, source, ...)");
}

Test(specialize, switch_from_environment) {
    const char *off[] = {"0", "off", "false", "no"};
    const char *on[] = {"1", "on", "yes", ""};
    for (size_t i = 0; i < 4; i++) {
        setenv("TILE_SPECIALIZE", off[i], 1);
        cr_assert_not(rt_specialize_from_env(), "TILE_SPECIALIZE=%s", off[i]);
        setenv("TILE_SPECIALIZE", on[i], 1);
        cr_assert(rt_specialize_from_env(), "TILE_SPECIALIZE=%s", on[i]);
    }
    unsetenv("TILE_SPECIALIZE");
    cr_assert(rt_specialize_from_env(), "on by default");
}

Test(specialize, the_vm_has_no_variants) {
    Fixture f = setup();
    tile_arg args[5];
    good_args(args);
    struct RtCudaFunction *fn = (struct RtCudaFunction *)1;
    cr_assert_neq(rt_cuda_select(f.kernel, args, 5, &fn), TILE_OK);
    cr_assert_null(fn);
    cr_assert_eq(rt_kernel_num_variants(f.kernel), 0);
    teardown(&f);
}

Test(specialize, which_images_a_device_runs) {
    /* cubins: same major, minor at least the arch's; "a" archs on exactly their capability */
    cr_assert(rt_image_usable("sm_80", false, 8, 0));
    cr_assert(rt_image_usable("sm_80", false, 8, 6));
    cr_assert(rt_image_usable("sm_80", false, 8, 9));
    cr_assert_not(rt_image_usable("sm_80", false, 9, 0));
    cr_assert_not(rt_image_usable("sm_80", false, 7, 5));
    cr_assert(rt_image_usable("sm_90a", false, 9, 0));
    cr_assert_not(rt_image_usable("sm_90a", false, 10, 0));
    cr_assert_not(rt_image_usable("sm_90a", false, 8, 0));
    cr_assert(rt_image_usable("sm_90a", true, 9, 0));
    cr_assert_not(rt_image_usable("sm_90a", true, 10, 0), "arch-specific PTX runs on its capability only");
    /* PTX: any newer capability */
    cr_assert(rt_image_usable("sm_80", true, 9, 0));
    cr_assert(rt_image_usable("sm_80", true, 12, 0));
    cr_assert_not(rt_image_usable("sm_80", true, 7, 5));
    cr_assert(rt_image_usable("sm_100", false, 10, 0));
    const char *bad[] = {"", "sm_", "sm_8", "sm_80b", "compute_80", "sm_90ax", NULL};
    for (int i = 0; i < 7; i++) cr_assert_not(rt_image_usable(bad[i], false, 8, 0), "'%s'", bad[i] ? bad[i] : "NULL");
}

Test(specialize, image_kind_from_its_bytes) {
    static const unsigned char elf[] = {0x7f, 'E', 'L', 'F', 2, 1};
    static const unsigned char ptx[] = ".version 8.0\n.target sm_80\n";
    tile_image a = {"sm_80", elf, sizeof elf, 128, 0};
    tile_image b = {"sm_80", ptx, sizeof ptx - 1, 128, 0};
    tile_image c = {"sm_80", elf, 3, 128, 0};
    cr_assert_not(rt_image_is_ptx(&a));
    cr_assert(rt_image_is_ptx(&b));
    cr_assert(rt_image_is_ptx(&c), "too short for an ELF header");
}

/* ---- the lazy choice: what a launch compiles ------------------------------------------------
 * A fake compiler: counts its calls, remembers what it was asked for, returns a distinct fake
 * function per request (never dereferenced) or fails as told. */
typedef struct FakeCompiler {
    pthread_mutex_t lock;
    int calls, generic_calls;
    RtSpecFacts last[6];
    bool fail_variants, fail_generic;
    unsigned char functions[8]; /* addresses used as fake functions: [0] generic, [1 + i] variants */
} FakeCompiler;

static struct RtCudaFunction *fake_compile(void *user, tile_kernel *k, const RtSpecFacts *facts, tile_status *st,
                                           Strbuf *err) {
    FakeCompiler *c = user;
    (void)k;
    pthread_mutex_lock(&c->lock);
    int call = c->calls++;
    if (!facts) c->generic_calls++;
    else memcpy(c->last, facts, sizeof c->last);
    pthread_mutex_unlock(&c->lock);
    if (facts ? c->fail_variants : c->fail_generic) {
        *st = TILE_ERROR_UNSUPPORTED;
        sb_printf(err, "fake: cannot compile the %s kernel", facts ? "specialized" : "generic");
        return NULL;
    }
    return (struct RtCudaFunction *)&c->functions[facts ? 1 + (call % 7) : 0];
}

static FakeCompiler *fake_new(void) {
    FakeCompiler *c = calloc(1, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

static void fake_free(Fixture *f, FakeCompiler *c) {
    f->kernel->cuda = NULL; /* a fake function: nothing to unload */
    pthread_mutex_destroy(&c->lock);
    free(c);
}

#define GENERIC_FN(c) ((struct RtCudaFunction *)&(c)->functions[0])

Test(specialize, first_launch_compiles_only_its_variant) {
    Fixture f = setup();
    FakeCompiler *c = fake_new();
    RtCompiler comp = {fake_compile, c};
    const RtSpecFacts aligned[6] = {RT_SPEC_ALIGNED16, RT_SPEC_ALIGNED16 | RT_SPEC_UNIT_STRIDE0, 0, 0, RT_SPEC_ALIGNED16, 0};
    const RtSpecFacts other[6] = {0, RT_SPEC_UNIT_STRIDE0, 0, 0, 0, 0};
    tile_status st = TILE_OK;
    Strbuf err = {0};
    cr_assert_eq(c->calls, 0, "making the kernel compiled nothing");
    struct RtCudaFunction *v = rt_kernel_function_for(f.kernel, aligned, &comp, &st, &err);
    cr_assert_not_null(v);
    cr_assert_neq(v, GENERIC_FN(c), "the launch with facts runs their variant");
    cr_assert_eq(c->calls, 1, "the first launch compiles one function, not the generic kernel too");
    cr_assert_eq(c->generic_calls, 0);
    cr_assert_arr_eq(c->last, aligned, sizeof aligned, "the variant is compiled for the launch's facts");
    cr_assert_null(f.kernel->cuda, "no generic kernel until a launch needs it");
    cr_assert_eq(rt_kernel_function_for(f.kernel, aligned, &comp, &st, &err), v, "the same facts again");
    cr_assert_eq(c->calls, 1, "... compile nothing");
    /* a launch whose facts differ: no fact at all is the generic kernel, compiled now, once */
    cr_assert_eq(rt_kernel_function_for(f.kernel, NULL, &comp, &st, &err), GENERIC_FN(c));
    cr_assert_eq(c->generic_calls, 1);
    cr_assert_eq(f.kernel->cuda, GENERIC_FN(c));
    cr_assert_eq(rt_kernel_function_for(f.kernel, NULL, &comp, &st, &err), GENERIC_FN(c));
    cr_assert_eq(rt_kernel_function_for(f.kernel, aligned, &comp, &st, &err), v, "back to the first facts");
    cr_assert_eq(c->calls, 2);
    /* other facts: their own variant */
    struct RtCudaFunction *w = rt_kernel_function_for(f.kernel, other, &comp, &st, &err);
    cr_assert(w && w != v && w != GENERIC_FN(c));
    cr_assert_eq(c->calls, 3);
    cr_assert_eq(rt_kernel_num_variants(f.kernel), 2);
    cr_assert_eq(st, TILE_OK);
    cr_assert_eq(err.len, 0);
    sb_free(&err);
    fake_free(&f, c);
    teardown(&f);
}

Test(specialize, a_launch_without_facts_compiles_only_the_generic_kernel) {
    Fixture f = setup();
    FakeCompiler *c = fake_new();
    RtCompiler comp = {fake_compile, c};
    tile_status st = TILE_OK;
    Strbuf err = {0};
    cr_assert_eq(rt_kernel_function_for(f.kernel, NULL, &comp, &st, &err), GENERIC_FN(c));
    cr_assert_eq(c->calls, 1);
    cr_assert_eq(c->generic_calls, 1);
    cr_assert_eq(rt_kernel_num_variants(f.kernel), 0, "no variant compiled");
    sb_free(&err);
    fake_free(&f, c);
    teardown(&f);
}

Test(specialize, a_failed_variant_falls_back_on_the_generic_kernel) {
    Fixture f = setup();
    FakeCompiler *c = fake_new();
    c->fail_variants = true;
    RtCompiler comp = {fake_compile, c};
    const RtSpecFacts aligned[6] = {RT_SPEC_ALIGNED16, 0, 0, 0, 0, 0};
    tile_status st = TILE_OK;
    Strbuf err = {0};
    cr_assert_eq(rt_kernel_function_for(f.kernel, aligned, &comp, &st, &err), GENERIC_FN(c),
                 "the launch still runs: on the generic kernel");
    cr_assert_eq(st, TILE_OK, "the variant's failure is not the launch's");
    cr_assert_eq(c->calls, 2, "the variant, then the generic kernel");
    cr_assert_eq(rt_kernel_function_for(f.kernel, aligned, &comp, &st, &err), GENERIC_FN(c));
    cr_assert_eq(c->calls, 2, "the failure is remembered: not compiled again");
    cr_assert_eq(err.len, 0);
    sb_free(&err);
    fake_free(&f, c);
    teardown(&f);
}

Test(specialize, a_generic_kernel_that_fails_fails_each_launch_that_needs_it) {
    Fixture f = setup();
    FakeCompiler *c = fake_new();
    c->fail_variants = c->fail_generic = true;
    RtCompiler comp = {fake_compile, c};
    const RtSpecFacts aligned[6] = {RT_SPEC_ALIGNED16, 0, 0, 0, 0, 0};
    for (int round = 0; round < 2; round++) {
        tile_status st = TILE_OK;
        Strbuf err = {0};
        cr_assert_null(rt_kernel_function_for(f.kernel, NULL, &comp, &st, &err));
        cr_assert_eq(st, TILE_ERROR_UNSUPPORTED, "round %d: the compiler's status", round);
        cr_assert_str_eq(sb_str(&err), "fake: cannot compile the generic kernel");
        sb_clear(&err);
        st = TILE_OK;
        cr_assert_null(rt_kernel_function_for(f.kernel, aligned, &comp, &st, &err), "no function to fall back on");
        cr_assert_eq(st, TILE_ERROR_UNSUPPORTED);
        cr_assert_str_eq(sb_str(&err), "fake: cannot compile the generic kernel");
        sb_free(&err);
        cr_assert_eq(c->generic_calls, 1, "round %d: the generic kernel's failure is remembered", round);
        cr_assert_eq(c->calls, 2, "round %d", round);
    }
    fake_free(&f, c);
    teardown(&f);
}

typedef struct Racer {
    tile_kernel *kernel;
    RtCompiler comp;
    const RtSpecFacts *facts;
    struct RtCudaFunction *got;
} Racer;

static void *race(void *arg) {
    Racer *r = arg;
    tile_status st = TILE_OK;
    Strbuf err = {0};
    r->got = rt_kernel_function_for(r->kernel, r->facts, &r->comp, &st, &err);
    sb_free(&err);
    return NULL;
}

Test(specialize, racing_first_launches_compile_once) {
    Fixture f = setup();
    FakeCompiler *c = fake_new();
    const RtSpecFacts aligned[6] = {RT_SPEC_ALIGNED16, 0, 0, 0, RT_SPEC_ALIGNED16, 0};
    enum { N = 8 };
    pthread_t threads[N];
    Racer racers[N];
    for (int i = 0; i < N; i++) {
        racers[i] = (Racer){f.kernel, {fake_compile, c}, i % 2 ? aligned : NULL, NULL};
        cr_assert_eq(pthread_create(&threads[i], NULL, race, &racers[i]), 0);
    }
    for (int i = 0; i < N; i++) pthread_join(threads[i], NULL);
    cr_assert_eq(c->calls, 2, "one variant and one generic kernel, whatever the interleaving");
    for (int i = 0; i < N; i++) {
        cr_assert_not_null(racers[i].got);
        cr_assert_eq(racers[i].got, racers[i % 2].got, "thread %d got its facts' function", i);
    }
    cr_assert_eq(racers[0].got, GENERIC_FN(c));
    fake_free(&f, c);
    teardown(&f);
}
