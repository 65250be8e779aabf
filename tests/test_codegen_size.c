/*
 * test_codegen_size.c: bounds on how much LLVM IR the code generator makes for each core
 * kernel, the measure of its cold JIT time (docs/RUNTIME.md "Cold compile"): LLVM's optimizer,
 * NVPTX and then ptxas take time in proportion to it, and a kernel's first launch waits for all
 * three. Timing tests would be flaky on a shared machine; line counts are exact.
 *
 * Each kernel is emitted as tilec does (tile_program_emit, sm_90a), generic and with every
 * launch fact (TILE_EMIT_SPECIALIZED=1: the variant a launch on contiguous, 16-byte-aligned
 * tensors with sizes multiples of 16 gets, the common first launch). Bounds are the counts
 * measured when they were set plus about 15%. The specialized variants must also have no
 * scalar fallback blocks: there the launch facts prove every vector group wholly in or out of
 * bounds and aligned (codegen_mem.c), and a fallback per group doubled their IR. A kernel with a
 * launch-known condition (softmax's and layernorm's `N <= BN`) is bounded per value of it
 * (TILE_EMIT_CONDS), as a launch compiles only its path; the generic kernel holds both.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#ifdef TILE_HAVE_LLVM
typedef struct KernelBound {
    const char *file, *kernel;
    size_t generic, specialized; /* most lines of LLVM IR for sm_90a */
    bool cond;                   /* one launch-known condition: specialized bounds each value */
} KernelBound;

/* measured (generic, specialized) when set, the specialized count before the groups lost their
 * fallbacks in parentheses: vector_add 544/154 (484), softmax 5030/1842 (4630), layernorm
 * 4924/1959 (4564), sum_rows 599/430 (579), cumsum_rows 913/603 (873), sum_all 1118/559 (1038),
 * gemm 23410/3276 (5187), flash_fwd 22800/6196 (22120); with one path a launch (eighth session):
 * softmax 705 (N <= BN) / 1138, layernorm 7761 generic (both paths), 1287 / 1935 */
static const KernelBound bounds[] = {
    {"stdlib/core/vector_add.tile", "vector_add", 630, 180, false},
    {"stdlib/core/softmax.tile", "softmax", 5800, 1310, true},
    {"stdlib/core/layernorm.tile", "layernorm", 8900, 2250, true},
    {"stdlib/core/reduce.tile", "sum_rows", 700, 500, false},
    {"stdlib/core/reduce.tile", "cumsum_rows", 1050, 700, false},
    {"stdlib/core/reduce.tile", "sum_all", 1300, 650, false},
    {"stdlib/core/gemm.tile", "gemm", 27000, 3800, false},
    {"stdlib/attention/flash_fwd.tile", "flash_fwd", 26300, 7150, false},
};

static size_t count_lines(const char *s, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += s[i] == '\n';
    return n;
}

/* The kernel's LLVM IR for sm_90a (specialized: with every launch fact); the caller frees it. */
static char *emit_llvm(tile_context *ctx, const KernelBound *b, bool specialized, const char *conds, size_t *len) {
    if (specialized) setenv("TILE_EMIT_SPECIALIZED", "1", 1);
    else unsetenv("TILE_EMIT_SPECIALIZED");
    if (conds) setenv("TILE_EMIT_CONDS", conds, 1);
    else unsetenv("TILE_EMIT_CONDS");
    tile_program *p = test_load_program(ctx, b->file);
    char *text = NULL;
    tile_emit_options opt = {.arch = "sm_90a"};
    tile_status st = tile_program_emit(p, b->kernel, NULL, 0, TILE_EMIT_LLVM, &opt, &text, len);
    cr_assert_eq(st, TILE_OK, "%s: %s", b->kernel, tile_context_message(ctx));
    tile_program_destroy(p);
    unsetenv("TILE_EMIT_SPECIALIZED");
    unsetenv("TILE_EMIT_CONDS");
    return text;
}

static void check_bound(const KernelBound *b) {
    tile_context *ctx = test_vm_context();
    /* the generic kernel, then the specialized variant (for each value of a condition) */
    static const char *const runs[][2] = {{NULL, NULL}, {"1", NULL}, {"1", "1"}, {"1", "0"}};
    for (int r = 0; r < 4; r++) {
        bool specialized = runs[r][0] != NULL;
        const char *conds = runs[r][1];
        if (specialized && (conds != NULL) != b->cond) continue;
        size_t len = 0;
        char *text = emit_llvm(ctx, b, specialized, conds, &len);
        size_t lines = count_lines(text, len), bound = specialized ? b->specialized : b->generic;
        const char *what = !specialized ? "generic" : !conds ? "specialized" : conds[0] == '1' ? "specialized, if:1" : "specialized, if:0";
        cr_log_info("%s %s: %zu lines of LLVM IR (bound %zu)", b->kernel, what, lines, bound);
        cr_expect_leq(lines, bound, "%s (%s): %zu lines of LLVM IR, more than %zu: the cold JIT grows with them",
                      b->kernel, what, lines, bound);
        if (specialized) {
            static const char *const fallbacks[] = {"\nldv.scalar", "\nstv.scalar", "\ncpa.scalar"};
            for (size_t i = 0; i < sizeof fallbacks / sizeof fallbacks[0]; i++)
                cr_expect_null(strstr(text, fallbacks[i]), "%s (specialized) has a %s block", b->kernel,
                               fallbacks[i] + 1);
        }
        tile_string_free(text);
    }
    tile_context_destroy(ctx);
}

TestSuite(codegen_size, .timeout = 600);

Test(codegen_size, vector_add) { check_bound(&bounds[0]); }
Test(codegen_size, softmax) { check_bound(&bounds[1]); }
Test(codegen_size, layernorm) { check_bound(&bounds[2]); }
Test(codegen_size, sum_rows) { check_bound(&bounds[3]); }
Test(codegen_size, cumsum_rows) { check_bound(&bounds[4]); }
Test(codegen_size, sum_all) { check_bound(&bounds[5]); }
Test(codegen_size, gemm) { check_bound(&bounds[6]); }
Test(codegen_size, flash_fwd) { check_bound(&bounds[7]); }
#else
Test(codegen_size, without_llvm) { cr_skip_test("built without LLVM"); }
#endif
