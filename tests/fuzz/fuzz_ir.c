/*
 * fuzz_ir.c: libFuzzer target for the IR reader, the verifier and the passes: read the input as
 * IR text (ir/parse.c, which verifies what it reads), then run the pass pipeline with the
 * verifier after each pass, and the GPU layout pass for 4 warps. Seeded with the golden pass
 * files (tests/passes), whose `# ...` lines are comments to the reader.
 *
 * Bugs: any crash or sanitizer report; text that is refused without a located message
 * (`fuzz.ir:LINE:COL: error: `); a module that reads and verifies but that a pass leaves invalid
 * (passes_run reports "internal error in pass X"); and a module that does not read back as the same
 * text after printing. A pass may refuse a valid module with a user error (a recursive call): that is fine.
 */
#include <stdio.h>
#include <string.h>

#include "passes/passes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *detail) {
    fprintf(stderr, "fuzz_ir: %s\n%s\n", what, detail);
    __builtin_trap();
}

/* Printing and reading back gives the same text. */
static void check_round_trip(const IrModule *m) {
    Strbuf text = {0}, again = {0};
    ir_print_module(m, &text);
    DiagList d = {0};
    IrModule *copy = ir_parse_module("printed.ir", sb_str(&text), text.len, &d);
    if (!copy) fail("the printed module does not read back", sb_str(&d.text));
    ir_print_module(copy, &again);
    if (strcmp(sb_str(&text), sb_str(&again)) != 0) fail("the module prints differently after reading", sb_str(&text));
    ir_module_free(copy);
    diag_free(&d);
    sb_free(&text);
    sb_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A golden file's expected part is output, not input. */
    const char *text = (const char *)data;
    for (size_t i = 0; i + 13 <= size; i++)
        if (memcmp(text + i, "\n# expected:\n", 13) == 0) {
            size = i + 1;
            break;
        }
    DiagList d = {0};
    IrModule *m = ir_parse_module("fuzz.ir", text, size, &d);
    if (!m) {
        if (d.errors == 0 || strncmp(sb_str(&d.text), "fuzz.ir:", 8) != 0) fail("refused without a located message", sb_str(&d.text));
        diag_free(&d);
        return 0;
    }
    check_round_trip(m);
    PassOptions opt = {.verify_each = true, .gpu = true, .target = {.num_warps = 4}};
    DiagList pd = {0};
    if (!passes_run(m, &opt, &pd) && pd.internal) fail("a pass broke the IR", sb_str(&pd.text));
    if (pd.errors == 0) check_round_trip(m);
    diag_free(&pd);
    ir_module_free(m);
    diag_free(&d);
    return 0;
}
