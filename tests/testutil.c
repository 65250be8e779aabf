/* testutil.c: helpers shared by the Criterion suites. */
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"
#include "runtime/vm.h"

char *test_read_source_file(const char *relpath, size_t *len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", TILE_SOURCE_DIR, relpath);
    char *data;
    size_t n;
    const char *err;
    if (!read_file(path, &data, &n, &err)) cr_assert_fail("cannot read %s: %s", path, err);
    if (len) *len = n;
    return data;
}

tile_context *test_vm_context(void) {
    tile_context *ctx = NULL;
    cr_assert_eq(tile_context_create(TILE_DEVICE_VM, 0, &ctx), TILE_OK);
    return ctx;
}

tile_program *test_load_program(tile_context *ctx, const char *relpath) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", TILE_SOURCE_DIR, relpath);
    tile_program *p = NULL;
    tile_status st = tile_program_from_file(ctx, path, &p);
    cr_assert_eq(st, TILE_OK, "%s: %s", path, tile_context_message(ctx));
    return p;
}

uint16_t test_bf16_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

void test_random_bf16(uint16_t *x, int64_t n, uint64_t *s) {
    for (int64_t i = 0; i < n; i++)
        x[i] = test_bf16_bits((float)((*s = *s * 6364136223846793005ull + 1) >> 40) / 16777216.0f - 0.5f);
}

bool test_vm_gemm_bf16(const IrFunction *k, int64_t m, int64_t n, int64_t kk, uint64_t seed, uint16_t *c,
                       Strbuf *err) {
    uint16_t *a = malloc((size_t)(m * kk) * 2 + 2), *b = malloc((size_t)(kk * n) * 2 + 2);
    test_random_bf16(a, m * kk, &seed);
    test_random_bf16(b, kk * n, &seed);
    int64_t sa[2] = {m, kk}, sb[2] = {kk, n}, sc[2] = {m, n};
    tile_arg args[3] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, a, 2, sa)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, b, 2, sb)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_BF16, c, 2, sc)}};
    bool ok = vm_launch_threads(k, args, 3, 2, err);
    free(a), free(b);
    return ok;
}

#ifdef TILE_HAVE_LLVM

Strbuf test_ptx_every_fact(const IrFunction *k, CodegenInfo *info) {
    CodegenParamSpec *all = calloc(k->nparams + 1, sizeof *all);
    const Target every = {.every_fact = true}; /* contiguous, aligned tensors */
    for (uint32_t i = 0; i < k->nparams; i++) all[i] = target_param_facts(&every, k, i);
    CodegenOptions opt = {.arch = BACKEND_ARCH_SM90A, .spec = all};
    Strbuf ptx = {0}, err = {0};
    cr_assert(backend_compile_ptx(k, &opt, &ptx, info, &err), "%s: %s", k->name, sb_str(&err));
    free(all);
    sb_free(&err);
    return ptx;
}

char *test_ptxas_report(const char *ptx, size_t len) {
    char ptxas[4096];
    if (!backend_find_ptxas(ptxas, sizeof ptxas, NULL)) return NULL;
    char file[] = "/tmp/tile_ptxas_XXXXXX";
    int fd = mkstemp(file);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fwrite(ptx, 1, len ? len : strlen(ptx), f);
    fclose(f);
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "'%s' -arch=sm_90a -v -o /dev/null '%s' 2>&1", ptxas, file);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    Strbuf out = {0};
    char line[512];
    while (fgets(line, sizeof line, p)) sb_puts(&out, line);
    int rc = pclose(p);
    remove(file);
    cr_assert_eq(rc, 0, "ptxas: %s", sb_str(&out));
    char *report = xstrdup(sb_str(&out));
    sb_free(&out);
    return report;
}

bool test_ptxas_no_spills(const char *report) {
    return strstr(report, "0 bytes spill stores, 0 bytes spill loads") != NULL;
}
#endif
