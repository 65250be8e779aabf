/*
 * fuzz_frontend.c: libFuzzer target for the whole front half: parse the input as a .tile file,
 * lower every kernel with its default constants, run the pass pipeline (which verifies the IR
 * after each pass). Any crash, sanitizer report, or IR that fails the verifier after a
 * successful lowering is a bug.
 */
#include <stdio.h>

#include "frontend/frontend.h"
#include "passes/passes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    DiagList d = {0};
    AstFile *ast = parse_source("fuzz.tile", (const char *)data, size, &d);
    if (d.errors == 0) {
        for (uint32_t i = 0; i < ast->decls.len; i++) {
            const AstNode *k = ast->decls.items[i];
            if (k->kind != AST_KERNEL) continue;
            IrModule *m = ir_module_new();
            int before = d.errors;
            IrFunction *f = lower_kernel(ast, k->name, NULL, 0, m, &d);
            if (f) {
                PassOptions opt = {.verify_each = true};
                DiagList pd = {0};
                if (!passes_run(m, &opt, &pd)) {
                    fprintf(stderr, "%s", sb_str(&pd.text));
                    __builtin_trap();
                }
                diag_free(&pd);
            } else if (d.errors == before) {
                fprintf(stderr, "lowering failed without a diagnostic\n");
                __builtin_trap();
            }
            ir_module_free(m);
        }
    }
    ast_file_free(ast);
    diag_free(&d);
    return 0;
}
