/* test_launch.c: the launch fast path (runtime/launch.c) without a GPU. Every core kernel's grid
 * region compiles into steps, and for many argument shapes and scalars the steps give exactly
 * the grid that the VM computes (vm_eval_grid); a grid of every supported op kind (casts,
 * unsigned remainder, 64-bit division, min/max, float comparison, select) agrees too; the
 * steps decline (so that the VM reports the error) for a grid dimension out of range; and
 * programs made from the same source share one parse and their kernels (the memory cache from
 * source to kernel). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "runtime/runtime.h"
#include "runtime/vm.h"
#include "testutil.h"

/* Checks steps == VM for kernel k with args; returns the grid. */
static void check_same(tile_kernel *k, const tile_arg *args, size_t nargs, int64_t out[3]) {
    int64_t fast[3], vm[3];
    Strbuf err = {0};
    cr_assert_not_null(k->grid, "%s: the grid did not compile", k->name);
    cr_assert(rt_check_args(k->function, args, nargs, &err), "%s", sb_str(&err));
    bool vm_ok = vm_eval_grid(k->function, args, nargs, vm, &err);
    bool fast_ok = rt_grid_eval(k->grid, args, nargs, fast);
    cr_assert(vm_ok, "%s: %s", k->name, sb_str(&err));
    cr_assert(fast_ok, "%s: the steps declined a grid the VM computes", k->name);
    for (int d = 0; d < 3; d++)
        cr_assert_eq(fast[d], vm[d], "%s: grid[%d] is %lld by the steps, %lld by the VM", k->name, d, (long long)fast[d],
                     (long long)vm[d]);
    if (out) memcpy(out, fast, sizeof fast);
    sb_free(&err);
}

/* Arguments for every parameter of k: tensors of the given sizes for each symbolic dimension
 * (a non-null dummy pointer: the grid never reads data), scalars from ints/floats. */
static void make_args(tile_kernel *k, int64_t size, tile_arg *args) {
    static float dummy[1];
    for (int i = 0; i < tile_kernel_num_params(k); i++) {
        tile_param_info info;
        cr_assert_eq(tile_kernel_param(k, i, &info), TILE_OK);
        memset(&args[i], 0, sizeof args[i]);
        args[i].kind = info.kind;
        if (info.kind != TILE_ARG_TENSOR) continue;
        int64_t shape[TILE_MAX_RANK];
        for (int d = 0; d < info.rank; d++) shape[d] = info.dim_symbols[d] ? size + d : info.dim_sizes[d];
        args[i].tensor = tile_tensor_contiguous(info.dtype, dummy, info.rank, shape);
    }
}

/* Calls fn on every core kernel (stdlib/core), each got with its default constants on ctx. */
static void for_each_core_kernel(tile_context *ctx, void (*fn)(tile_kernel *k)) {
    static const char *files[][4] = {{"vector_add.tile", "vector_add"}, {"softmax.tile", "softmax"},
                                     {"layernorm.tile", "layernorm"},   {"reduce.tile", "sum_rows", "cumsum_rows", "sum_all"},
                                     {"gather.tile", "gather_rows"},    {"gemm.tile", "gemm"}};
    for (int f = 0; f < 6; f++) {
        char rel[128];
        snprintf(rel, sizeof rel, "stdlib/core/%s", files[f][0]);
        tile_program *p = test_load_program(ctx, rel);
        for (int j = 1; j < 4 && files[f][j]; j++) {
            tile_kernel *k;
            cr_assert_eq(tile_program_get_kernel(p, files[f][j], NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
            fn(k);
        }
        tile_program_destroy(p);
    }
}

static void check_grid_sizes(tile_kernel *k) {
    static const int64_t sizes[] = {0, 1, 15, 16, 17, 127, 1000, 4096, 100003, 1 << 20};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        tile_arg args[16];
        make_args(k, sizes[s], args);
        /* gather's index tensor and others fix some sizes to their symbols' values */
        Strbuf err = {0};
        if (!rt_check_args(k->function, args, (size_t)tile_kernel_num_params(k), &err)) {
            sb_free(&err);
            continue;
        }
        sb_free(&err);
        check_same(k, args, (size_t)tile_kernel_num_params(k), NULL);
    }
}

Test(launch, core_grids_compile_and_agree_with_the_vm) {
    tile_context *ctx = test_vm_context();
    for_each_core_kernel(ctx, check_grid_sizes);
    tile_context_destroy(ctx);
}

static const char grid_source[] =
    "kernel g<B = 64>(x: tensor<f32>[M, N], s: i64, f: f32, u: u8)\n"
    "  grid(max(cdiv(N, B), 1), min(M, 7) + cast<i32>(u % cast<u8>(3)) + cast<i32>(s / 1000000000000),\n"
    "       where(f > 0.5, 2, 3))\n"
    "{\n"
    "  let i = block_id(0) * B;\n"
    "  x[0, i :+ B] = x[0, i :+ B] * 2.0;\n"
    "}\n";

Test(launch, every_step_kind_agrees_with_the_vm) {
    tile_context *ctx = test_vm_context();
    tile_program *p;
    cr_assert_eq(tile_program_from_string(ctx, "g.tile", grid_source, sizeof grid_source - 1, &p), TILE_OK, "%s",
                 tile_context_message(ctx));
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(p, "g", NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
    static float dummy[1];
    static const int64_t ms[] = {0, 3, 7, 100};
    static const int64_t ns[] = {0, 1, 64, 65, 1000000};
    static const int64_t ss[] = {0, -5, 999999999999, 1000000000000, 7000000000000, -3000000000000};
    static const double fs[] = {0.0, 0.5, 0.75, -1.0};
    static const int64_t us[] = {0, 1, 2, 5, 255};
    int checked = 0;
    for (size_t a = 0; a < 4; a++)
        for (size_t b = 0; b < 5; b++)
            for (size_t c = 0; c < 6; c++)
                for (size_t d = 0; d < 4; d++)
                    for (size_t e = 0; e < 5; e++) {
                        int64_t shape[2] = {ms[a], ns[b]}, grid[3];
                        tile_arg args[4] = {
                            {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, dummy, 2, shape)},
                            {.kind = TILE_ARG_INT, .i = ss[c]},
                            {.kind = TILE_ARG_FLOAT, .f = fs[d]},
                            {.kind = TILE_ARG_INT, .i = us[e]},
                        };
                        int64_t expect1 = ms[a] < 7 ? ms[a] : 7;
                        expect1 += us[e] % 3 + ss[c] / 1000000000000;
                        if (expect1 < 0) continue; /* a negative grid: the VM's error (below) */
                        check_same(k, args, 4, grid);
                        cr_assert_eq(grid[1], expect1);
                        cr_assert_eq(grid[2], fs[d] > 0.5 ? 2 : 3);
                        checked++;
                    }
    cr_assert_gt(checked, 400);
    /* a negative dimension: the steps decline and the VM words the error */
    int64_t shape[2] = {0, 1}, grid[3];
    tile_arg args[4] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, dummy, 2, shape)},
                        {.kind = TILE_ARG_INT, .i = -5000000000000},
                        {.kind = TILE_ARG_FLOAT, .f = 0},
                        {.kind = TILE_ARG_INT, .i = 0}};
    cr_assert_not(rt_grid_eval(k->grid, args, 4, grid));
    Strbuf err = {0};
    cr_assert_not(vm_eval_grid(k->function, args, 4, grid, &err));
    cr_assert_not_null(strstr(sb_str(&err), "outside [0, 2^31)"), "%s", sb_str(&err));
    sb_free(&err);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* The memory cache from source to kernel: the same (name, source) gives the same program, whose
 * kernels are already compiled; a different name or text parses anew; destroying one handle
 * keeps the other's kernels alive. */
Test(launch, same_source_shares_the_program_and_its_kernels) {
    tile_context *ctx = test_vm_context();
    tile_program *a, *b, *c, *d;
    cr_assert_eq(tile_program_from_string(ctx, "g.tile", grid_source, sizeof grid_source - 1, &a), TILE_OK);
    tile_kernel *ka, *kb;
    cr_assert_eq(tile_program_get_kernel(a, "g", NULL, 0, &ka), TILE_OK);
    cr_assert_eq(tile_program_from_string(ctx, "g.tile", grid_source, sizeof grid_source - 1, &b), TILE_OK);
    cr_assert_eq(b, a, "the same source and name share the parsed program");
    cr_assert_eq(tile_program_get_kernel(b, "g", NULL, 0, &kb), TILE_OK);
    cr_assert_eq(kb, ka, "and its kernels");
    cr_assert_eq(tile_program_from_string(ctx, "other.tile", grid_source, sizeof grid_source - 1, &c), TILE_OK);
    cr_assert_neq(c, a, "another name: diagnostics name the file, so it is another program");
    char changed[sizeof grid_source];
    memcpy(changed, grid_source, sizeof grid_source);
    changed[strlen("kernel g<B = ")] = '3'; /* B = 34 */
    cr_assert_eq(tile_program_from_string(ctx, "g.tile", changed, sizeof grid_source - 1, &d), TILE_OK);
    cr_assert_neq(d, a);
    tile_program_destroy(a);
    /* b (the same object) still works */
    cr_assert_eq(tile_program_num_kernels(b), 1);
    cr_assert_eq(tile_program_get_kernel(b, "g", NULL, 0, &kb), TILE_OK);
    cr_assert_eq(kb, ka);
    tile_program_destroy(b);
    tile_program_destroy(c);
    tile_program_destroy(d);
    /* after the last handle is gone, the source parses anew (and compile errors still report) */
    static const char bad[] = "kernel x() grid(1) { oops }";
    tile_program *e;
    cr_assert_eq(tile_program_from_string(ctx, "bad.tile", bad, sizeof bad - 1, &e), TILE_ERROR_COMPILE);
    cr_assert_eq(tile_program_from_string(ctx, "bad.tile", bad, sizeof bad - 1, &e), TILE_ERROR_COMPILE,
                 "a failed parse is not cached");
    cr_assert_not_null(strstr(tile_context_message(ctx), "bad.tile:1:"));
    tile_context_destroy(ctx);
}

/* A kernel's interface entry (runtime/interface.c), written for every core kernel and for a grid
 * of scalars, reads back to a function with the same parameters (names, types, symbolic sizes),
 * a grid and launch-known conditions that give the same values for many arguments, and bytes that
 * match the full function; every truncation reads as "not an interface", and damaged bytes never
 * crash the reader (ASan runs this too). */
static void same_locs(const IrRegion *a, const IrRegion *b) {
    const IrOp *x = a->first, *y = b->first;
    for (; x && y; x = x->next, y = y->next) {
        cr_assert(x->loc.file == y->loc.file && x->loc.line == y->loc.line && x->loc.col == y->loc.col,
                  "op %s at %u:%u read back at %u:%u", ir_op_info[x->code].name, x->loc.line, x->loc.col, y->loc.line,
                  y->loc.col);
        cr_assert_eq(x->nregions, y->nregions);
        for (uint32_t i = 0; i < x->nregions; i++) same_locs(x->regions[i], y->regions[i]);
    }
    cr_assert(!x && !y, "the regions differ in length");
}

static void check_interface(tile_kernel *k) {
    const SourceFile *src = &k->program->ast->source;
    Strbuf bytes = {0}, err = {0};
    cr_assert(rt_interface_encode(k->function, k->conds, NULL, &bytes), "%s: no interface", k->name);
    IrFunction *f;
    RtSteps *conds;
    bool *written;
    IrModule *m = rt_interface_decode((const uint8_t *)bytes.data, bytes.len, k->name, src, &f, &conds, &written, &err);
    cr_assert_not_null(m, "%s: %s", k->name, sb_str(&err));
    cr_assert(rt_interface_matches(k->function, k->conds, (const uint8_t *)bytes.data, bytes.len));
    /* the function read back, written with the flags read back, is the same entry (without them
     * its empty body would say that nothing is written) */
    Strbuf again = {0};
    cr_assert(rt_interface_encode(f, conds, written, &again));
    cr_assert(again.len == bytes.len && memcmp(again.data, bytes.data, bytes.len) == 0, "%s: written again differs", k->name);
    sb_free(&again);
    cr_assert_eq(f->nparams, k->function->nparams);
    for (uint32_t i = 0; i < f->nparams; i++) {
        const IrType *a = f->body->args[i]->type, *b = k->function->body->args[i]->type;
        cr_assert_str_eq(f->params[i].name, k->function->params[i].name);
        tile_param_info info;
        cr_assert_eq(tile_kernel_param(k, (int)i, &info), TILE_OK);
        cr_assert_eq(written[i], ir_param_may_write(k->function, i), "%s: parameter %u written", k->name, i);
        cr_assert_eq(info.written, written[i], "%s: parameter %u written", k->name, i);
        cr_assert(a->kind == b->kind && elem_eq(a->elem, b->elem) && a->rank == b->rank, "%s: parameter %u", k->name, i);
        for (int d = 0; a->kind == TY_TENSOR && d < a->rank; d++) {
            const IrDimSpec *x = &f->params[i].dims[d], *y = &k->function->params[i].dims[d];
            cr_assert(x->symbol ? y->symbol && strcmp(x->symbol, y->symbol) == 0 : !y->symbol && x->size == y->size);
        }
    }
    cr_assert_eq(rt_conds_count(conds), rt_conds_count(k->conds), "%s: conditions", k->name);
    cr_assert(f->loc.file == src && f->loc.line == k->function->loc.line && f->loc.col == k->function->loc.col);
    for (uint32_t i = 0; i < f->nparams; i++)
        cr_assert(f->params[i].loc.line == k->function->params[i].loc.line &&
                  f->params[i].loc.col == k->function->params[i].loc.col && f->params[i].loc.file == src);
    same_locs(k->function->grid, f->grid);
    RtGrid *grid = rt_grid_compile(f);
    cr_assert_eq(grid != NULL, k->grid != NULL, "%s: the grid's steps", k->name);
    static const int64_t sizes[] = {1, 15, 16, 1000, 1024, 1025, 4096, 100003};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        tile_arg args[16];
        make_args(k, sizes[s], args);
        size_t n = (size_t)tile_kernel_num_params(k);
        Strbuf e1 = {0}, e2 = {0};
        bool c1 = rt_check_args(k->function, args, n, &e1), c2 = rt_check_args(f, args, n, &e2);
        cr_assert_eq(c1, c2);
        cr_assert_str_eq(sb_str(&e1), sb_str(&e2));
        sb_free(&e1), sb_free(&e2);
        if (!c1) continue;
        int64_t g1[3], g2[3];
        Strbuf v1 = {0}, v2 = {0};
        cr_assert(vm_eval_grid(k->function, args, n, g1, &v1) && vm_eval_grid(f, args, n, g2, &v2), "%s", sb_str(&v1));
        cr_assert(memcmp(g1, g2, sizeof g1) == 0, "%s: the interface's grid differs (VM)", k->name);
        sb_free(&v1), sb_free(&v2);
        if (grid) {
            cr_assert(rt_grid_eval(grid, args, n, g1) && rt_grid_eval(k->grid, args, n, g2));
            cr_assert(memcmp(g1, g2, sizeof g1) == 0, "%s: the interface's grid differs", k->name);
        }
        cr_assert_eq(rt_conds_eval(conds, args, n), rt_conds_eval(k->conds, args, n), "%s: conditions", k->name);
    }
    rt_grid_free(grid);
    rt_grid_free(conds);
    ir_module_free(m);
    free(written);
    for (size_t len = 0; len < bytes.len; len++) {
        sb_clear(&err);
        cr_assert_null(rt_interface_decode((const uint8_t *)bytes.data, len, k->name, src, &f, &conds, &written, &err),
                       "%s: %zu of %zu bytes read as an interface", k->name, len, bytes.len);
        cr_assert(err.len > 0);
    }
    uint8_t *damaged = xmalloc(bytes.len);
    for (size_t i = 0; i < bytes.len; i++) {
        memcpy(damaged, bytes.data, bytes.len);
        damaged[i] ^= (uint8_t)(1u << (i % 8));
        sb_clear(&err);
        IrModule *dm = rt_interface_decode(damaged, bytes.len, k->name, src, &f, &conds, &written, &err);
        cr_assert(dm ? f != NULL && written != NULL : err.len > 0 && written == NULL);
        free(written);
        rt_grid_free(conds);
        ir_module_free(dm);
    }
    free(damaged);
    sb_free(&bytes);
    sb_free(&err);
}

/* The parameters kernel k may write, as a string of 0 and 1 (tile_param_info's written). */
static const char *written_params(tile_kernel *k, char *buf) {
    int n = tile_kernel_num_params(k);
    for (int i = 0; i < n; i++) {
        tile_param_info info;
        cr_assert_eq(tile_kernel_param(k, i, &info), TILE_OK);
        buf[i] = info.written ? '1' : '0';
    }
    buf[n] = 0;
    return buf;
}

static void check_core_interface(tile_kernel *k) {
    check_interface(k);
    if (strcmp(k->name, "softmax") == 0) cr_assert_eq(rt_conds_count(k->conds), 1, "softmax: N <= BN");
    /* the outputs, and nothing else (vector_add(a, b, c), softmax(x, y), gemm(a, b, c)) */
    static const struct {
        const char *kernel, *written;
    } expect[] = {{"vector_add", "001"}, {"softmax", "01"}, {"gemm", "001"}};
    char buf[32];
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
        if (strcmp(k->name, expect[i].kernel) == 0)
            cr_assert_str_eq(written_params(k, buf), expect[i].written, "%s writes", k->name);
}

Test(launch, interfaces_read_back_and_damage_is_refused) {
    tile_context *ctx = test_vm_context();
    for_each_core_kernel(ctx, check_core_interface);
    /* a grid with a check(...): from the interface, its failure says the same, located in the source */
    tile_program *p = test_load_program(ctx, "tests/lang2/constructs.tile");
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(p, "control", NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
    check_interface(k);
    Strbuf bytes = {0}, e1 = {0}, e2 = {0};
    cr_assert(rt_interface_encode(k->function, k->conds, NULL, &bytes));
    IrFunction *f;
    RtSteps *conds;
    bool *written;
    IrModule *m = rt_interface_decode((const uint8_t *)bytes.data, bytes.len, "control", &p->ast->source, &f, &conds,
                                      &written, &e1);
    free(written);
    cr_assert_not_null(m, "%s", sb_str(&e1));
    tile_arg args[16];
    make_args(k, 64, args);
    for (int i = 0; i < tile_kernel_num_params(k); i++)
        if (args[i].kind == TILE_ARG_INT) args[i].i = -1;
    int64_t grid[3];
    size_t n = (size_t)tile_kernel_num_params(k);
    cr_assert(!vm_eval_grid(k->function, args, n, grid, &e1) && !vm_eval_grid(f, args, n, grid, &e2));
    cr_assert(strstr(sb_str(&e1), "constructs.tile:50:11"), "%s", sb_str(&e1));
    cr_assert_str_eq(sb_str(&e1), sb_str(&e2));
    rt_grid_free(conds);
    ir_module_free(m);
    sb_free(&bytes), sb_free(&e1), sb_free(&e2);
    tile_program_destroy(p);
    cr_assert_eq(tile_program_from_string(ctx, "g.tile", grid_source, sizeof grid_source - 1, &p), TILE_OK);
    cr_assert_eq(tile_program_get_kernel(p, "g", NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
    check_interface(k);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* An interface entry whose function has no location (its first u32 line, u32 col pair is 0, 0)
 * is refused, as no writer makes one; with the location restored it reads back. The fields are
 * walked as atop runtime/interface.c: "TIF2", u32 nparams, per parameter u32 length + name, then
 * u32 length + written, steps and locations. */
Test(launch, an_interface_without_its_function_location_is_refused) {
    tile_context *ctx = test_vm_context();
    tile_program *p = test_load_program(ctx, "stdlib/core/vector_add.tile");
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(p, "vector_add", NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
    Strbuf bytes = {0}, err = {0};
    cr_assert(rt_interface_encode(k->function, k->conds, NULL, &bytes));
    uint32_t nparams, len;
    memcpy(&nparams, bytes.data + 4, 4);
    size_t at = 8;
    for (uint32_t i = 0; i < nparams + 2; i++) { /* the names, the written flags, the steps */
        memcpy(&len, bytes.data + at, 4);
        at += 4 + len;
    }
    memcpy(&len, bytes.data + at, 4);
    cr_assert(len >= 8, "the locations field holds the function's");
    uint8_t *loc = (uint8_t *)bytes.data + at + 4, saved[8];
    memcpy(saved, loc, 8);
    cr_assert(saved[0] || saved[1] || saved[2] || saved[3], "vector_add has a line");
    memset(loc, 0, 8);
    IrFunction *f;
    RtSteps *conds;
    bool *written;
    const SourceFile *src = &k->program->ast->source;
    cr_assert_null(rt_interface_decode((const uint8_t *)bytes.data, bytes.len, k->name, src, &f, &conds, &written, &err));
    cr_assert(strstr(sb_str(&err), "locations"), "%s", sb_str(&err));
    memcpy(loc, saved, 8);
    IrModule *m = rt_interface_decode((const uint8_t *)bytes.data, bytes.len, k->name, src, &f, &conds, &written, &err);
    cr_assert_not_null(m, "restored");
    free(written);
    rt_grid_free(conds);
    ir_module_free(m);
    sb_free(&bytes), sb_free(&err);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* Compiled steps (the launch-known conditions of an interface entry) read only registers that
 * earlier steps wrote, as every sequence the compiler makes does: an entry with a step that reads
 * one no step has written yet, or whose result is such a register, is refused (a launch would
 * read an undefined register). The layout is the one atop rt_steps_encode (runtime/launch.c):
 * u32 nsteps, u32 nouts, u16 per result, then per step i32 code, two 4-byte types and u16 dst, a,
 * b, c, ... */
Test(launch, steps_that_read_unwritten_registers_are_refused) {
    tile_context *ctx = test_vm_context();
    tile_program *p = test_load_program(ctx, "stdlib/core/softmax.tile");
    tile_kernel *k;
    cr_assert_eq(tile_program_get_kernel(p, "softmax", NULL, 0, &k), TILE_OK, "%s", tile_context_message(ctx));
    Strbuf bytes = {0};
    rt_steps_encode(k->conds, &bytes);
    size_t used = 0;
    RtSteps *s = rt_steps_decode((const uint8_t *)bytes.data, bytes.len, k->function, &used);
    cr_assert(s && used == bytes.len, "the conditions as written read back");
    rt_grid_free(s);
    uint32_t nsteps, nouts;
    memcpy(&nsteps, bytes.data, 4);
    memcpy(&nouts, bytes.data + 4, 4);
    cr_assert(nsteps > 0 && nouts > 0);
    size_t head = 8 + 2 * (size_t)nouts, step = (bytes.len - head) / nsteps;
    int reads = 0;
    for (uint32_t i = 0; i < nsteps; i++) {
        uint8_t *q = (uint8_t *)bytes.data + head + i * step;
        int32_t code;
        memcpy(&code, q, 4);
        /* the steps that read a register: not the parameters' loads (code past OP_COUNT), constants,
         * num_sms() or dim (which names its parameter) */
        if (code >= OP_COUNT || code == OP_CONST || code == OP_NUM_SMS || code == OP_DIM) continue;
        reads++;
        uint16_t dst, a;
        memcpy(&dst, q + 12, 2);
        memcpy(&a, q + 14, 2);
        memcpy(q + 14, &dst, 2); /* its own result: not written before it reads */
        cr_assert_null(rt_steps_decode((const uint8_t *)bytes.data, bytes.len, k->function, &used),
                       "step %u reads the register it writes", i);
        memcpy(q + 14, &a, 2);
    }
    cr_assert(reads > 0, "softmax's condition N <= BN compares");
    uint16_t unwritten = RT_GRID_MAX_REGS - 1, out;
    memcpy(&out, bytes.data + 8, 2);
    memcpy(bytes.data + 8, &unwritten, 2);
    cr_assert_null(rt_steps_decode((const uint8_t *)bytes.data, bytes.len, k->function, &used), "a result never written");
    memcpy(bytes.data + 8, &out, 2);
    s = rt_steps_decode((const uint8_t *)bytes.data, bytes.len, k->function, &used);
    cr_assert_not_null(s, "restored");
    rt_grid_free(s);
    sb_free(&bytes);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}
