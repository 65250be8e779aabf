/*
 * fuzz_interface.c: libFuzzer target for the disk cache's kernel interface entries
 * (runtime/interface.c): what a disk hit reads instead of running the frontend. An input is a
 * kernel name, a NUL byte, then the entry's bytes (the "TIF2" format atop interface.c).
 *
 * Bugs: any crash or sanitizer report (the entry's lengths, parameter names, written flags,
 * compiled launch-condition steps and locations are all read from the input); an entry that
 * decodes but whose function (with its written flags) cannot be written as an entry again, or
 * whose second writing differs from its first; and a decoded interface whose argument check, conditions or grid then read
 * past what it declared (ASan), for arguments made from its parameters' types.
 *
 * Seeds: with FUZZ_INTERFACE_SEEDS=DIR set, the target first writes into DIR the entries of the
 * core kernels (stdlib/core, found from the working directory) and of the constructs file's
 * kernels, as the runtime would write them; pass DIR as a corpus too:
 *   FUZZ_INTERFACE_SEEDS=seeds build-fuzz/fuzz_interface -max_total_time=30 corpus seeds
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"
#include "runtime/vm.h"
#include "tile/tile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static void fail(const char *what, const char *detail) {
    fprintf(stderr, "fuzz_interface: %s\n%s\n", what, detail);
    __builtin_trap();
}

/* Writes DIR/NAME.bin: the kernel's name, a NUL, its interface entry. */
static void write_seed(const char *dir, tile_kernel *k) {
    Strbuf bytes = {0};
    if (!rt_interface_encode(k->function, k->conds, NULL, &bytes)) fail("a kernel without an interface", k->name);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.bin", dir, k->name);
    FILE *out = fopen(path, "wb");
    if (!out) fail("cannot write a seed", path);
    fwrite(k->name, 1, strlen(k->name) + 1, out);
    fwrite(bytes.data, 1, bytes.len, out);
    fclose(out);
    sb_free(&bytes);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *dir = getenv("FUZZ_INTERFACE_SEEDS");
    if (!dir) return 0;
    static const char *files[] = {"stdlib/core/vector_add.tile", "stdlib/core/softmax.tile", "stdlib/core/layernorm.tile",
                                  "stdlib/core/reduce.tile",     "stdlib/core/gather.tile",  "stdlib/core/gemm.tile",
                                  "tests/lang2/constructs.tile"};
    tile_context *ctx;
    if (tile_context_create(TILE_DEVICE_VM, 0, &ctx) != TILE_OK) fail("no VM context", "");
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        tile_program *p;
        if (tile_program_from_file(ctx, files[i], &p) != TILE_OK) fail(files[i], tile_context_message(ctx));
        for (int j = 0; j < tile_program_num_kernels(p); j++) {
            tile_kernel *k;
            if (tile_program_get_kernel(p, tile_program_kernel_name(p, j), NULL, 0, &k) == TILE_OK) write_seed(dir, k);
        }
        tile_program_destroy(p);
    }
    tile_context_destroy(ctx);
    return 0;
}

/* Arguments from f's parameter types: tensors over a small buffer with every symbolic size 3
 * and fixed sizes as declared, integers 3, floats 1.5. */
static void make_args(const IrFunction *f, tile_arg *args) {
    static uint8_t buffer[256];
    for (uint32_t i = 0; i < f->nparams; i++) {
        const IrType *t = f->body->args[i]->type;
        memset(&args[i], 0, sizeof args[i]);
        if (t->kind == TY_TENSOR) {
            int64_t shape[TILE_MAX_RANK];
            int rank = t->rank < TILE_MAX_RANK ? t->rank : TILE_MAX_RANK;
            for (int d = 0; d < rank; d++) shape[d] = f->params[i].dims[d].symbol ? 3 : f->params[i].dims[d].size;
            args[i].kind = TILE_ARG_TENSOR;
            args[i].tensor = tile_tensor_contiguous(rt_elem_to_dtype(t->elem), buffer, rank, shape);
        } else if (elem_is_float(t->elem)) {
            args[i].kind = TILE_ARG_FLOAT;
            args[i].f = 1.5;
        } else {
            args[i].kind = TILE_ARG_INT;
            args[i].i = 3;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    if (!nul || nul == data || nul - data >= 128) return 0;
    char kernel[128];
    memcpy(kernel, data, (size_t)(nul - data));
    kernel[nul - data] = 0;
    const uint8_t *p = nul + 1;
    size_t n = size - (size_t)(nul - data) - 1;
    /* the entry's own copy, so that ASan sees a read past its end */
    uint8_t *entry = malloc(n ? n : 1);
    memcpy(entry, p, n);
    static const char text[] = "kernel k() grid(1) {}\n";
    SourceFile source = {"fuzz.tile", text, sizeof text - 1};
    IrFunction *f;
    RtSteps *conds;
    bool *written;
    Strbuf err = {0};
    IrModule *m = rt_interface_decode(entry, n, kernel, &source, &f, &conds, &written, &err);
    if (!m) {
        if (err.len == 0) fail("refused without a reason", kernel);
        sb_free(&err);
        free(entry);
        return 0;
    }
    /* written again, and read back as the same bytes */
    Strbuf again = {0}, twice = {0};
    if (!rt_interface_encode(f, conds, written, &again)) fail("a decoded interface cannot be written again", kernel);
    IrFunction *f2;
    RtSteps *conds2;
    bool *written2;
    IrModule *m2 = rt_interface_decode((const uint8_t *)again.data, again.len, kernel, &source, &f2, &conds2, &written2, &err);
    if (!m2) fail("a written interface does not read back", sb_str(&err));
    if (!rt_interface_encode(f2, conds2, written2, &twice) || twice.len != again.len || memcmp(twice.data, again.data, again.len) != 0)
        fail("an interface reads back different", kernel);
    for (uint32_t i = 0; i < f->nparams; i++)
        if (written[i] != written2[i]) fail("a written flag changed on the way", kernel);
    /* what a launch does with it: check arguments, then the conditions and the grid */
    if (f->nparams <= 64) {
        tile_arg args[64];
        make_args(f, args);
        Strbuf e = {0};
        if (rt_check_args(f, args, f->nparams, &e)) {
            (void)rt_conds_eval(conds, args, f->nparams);
            int64_t grid[3];
            RtGrid *g = rt_grid_compile(f);
            if (g) (void)rt_grid_eval(g, args, f->nparams, grid);
            else (void)vm_eval_grid(f, args, f->nparams, grid, &e);
            rt_grid_free(g);
        }
        sb_free(&e);
    }
    rt_grid_free(conds2), rt_grid_free(conds);
    free(written2), free(written);
    ir_module_free(m2), ir_module_free(m);
    sb_free(&again), sb_free(&twice), sb_free(&err);
    free(entry);
    return 0;
}
