/* test_passes.c: what the golden files of tests/passes (test_pass_golden.c) cannot say: the pass
 * pipeline's dumps, order, listing and guards (invalid input, user errors), and folds whose
 * printed result depends on the host (the sign of a NaN). Each pass's effect on IR is a golden
 * file in tests/passes. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ir/ir.h"
#include "passes/passes.h"

/* ---- helpers ----------------------------------------------------------------------------------- */
static IrModule *parse(const char *text) {
    DiagList d = {0};
    IrModule *m = ir_parse_module("t.ir", text, strlen(text), &d);
    cr_assert_not_null(m, "%s", sb_str(&d.text));
    diag_free(&d);
    return m;
}

/* ---- canonicalize: folds whose result prints per host ------------------------------------------ */
Test(canonicalize, inf_minus_inf_folds_to_a_nan) {
    IrModule *m = parse("func @f() -> (f32) {\n"
                        "  %0 = const inf : f32\n"
                        "  %1 = sub %0, %0 : f32\n"
                        "  return %1\n"
                        "}\n");
    DiagList d = {0};
    cr_assert(pass_canonicalize(m, &d));
    IrOp *ret = m->functions->body->last;
    cr_assert_eq(ret->operands[0]->def->code, OP_CONST);
    cr_assert(isnan(ret->operands[0]->def->value.f));
    diag_free(&d);
    ir_module_free(m);
}

/* ---- the pipeline ----------------------------------------------------------------------------------- */
/* A kernel that calls a device function with constant arguments. */
static const char *program_text = "func @scale(%0: i32, %1: i32) -> (i32) {\n"
                                  "  %2 = mul %0, %1 : i32\n"
                                  "  return %2\n"
                                  "}\n"
                                  "\n"
                                  "kernel @k(%0: tensor<i32>[?])\n"
                                  "grid {\n"
                                  "  %1 = const 1 : i32\n"
                                  "  yield %1\n"
                                  "}\n"
                                  "body {\n"
                                  "  %1 = const 6 : i32\n"
                                  "  %2 = const 7 : i32\n"
                                  "  %3 = call @scale(%1, %2) : i32\n"
                                  "  %4 = block_id axis 0 : i32\n"
                                  "  store %0, %4, %3\n"
                                  "}\n";

static IrModule *build_program(void) { return parse(program_text); }

static const char *program_final = "kernel @k(%0: tensor<i32>[?])\n"
                                   "grid {\n"
                                   "  %1 = const 1 : i32\n"
                                   "  yield %1\n"
                                   "}\n"
                                   "body {\n"
                                   "  %1 = const 42 : i32\n"
                                   "  %2 = block_id axis 0 : i32\n"
                                   "  store %0, %2, %1\n"
                                   "}\n";

Test(pipeline, runs_every_pass_and_dumps_after_one) {
    IrModule *m = build_program();
    Strbuf dump = {0};
    PassOptions opt = {.dump_after = "canonicalize", .dump = &dump, .verify_each = true};
    DiagList d = {0};
    cr_assert(passes_run(m, &opt, &d), "%s", sb_str(&d.text));
    cr_assert_eq(d.errors, 0);
    cr_assert_str_eq(sb_str(&dump), "// ---- IR after canonicalize ----\n"
                                    "func @scale(%0: i32, %1: i32) -> (i32) {\n"
                                    "  %2 = mul %0, %1 : i32\n"
                                    "  return %2\n"
                                    "}\n"
                                    "\n"
                                    "kernel @k(%0: tensor<i32>[?])\n"
                                    "grid {\n"
                                    "  %1 = const 1 : i32\n"
                                    "  yield %1\n"
                                    "}\n"
                                    "body {\n"
                                    "  %1 = const 6 : i32\n"
                                    "  %2 = const 7 : i32\n"
                                    "  %3 = const 42 : i32\n"
                                    "  %4 = block_id axis 0 : i32\n"
                                    "  store %0, %4, %3\n"
                                    "}\n");
    Strbuf final = {0};
    ir_print_module(m, &final);
    cr_assert_str_eq(sb_str(&final), program_final);
    sb_free(&final);
    sb_free(&dump);
    diag_free(&d);
    ir_module_free(m);
}

Test(pipeline, dump_after_all_and_none) {
    IrModule *m = build_program();
    Strbuf dump = {0};
    PassOptions opt = {.dump_after = "all", .dump = &dump, .verify_each = true};
    DiagList d = {0};
    cr_assert(passes_run(m, &opt, &d));
    const char *text = sb_str(&dump);
    const char *names[] = {"inline", "canonicalize", "cse", "dce"};
    const char *at = text;
    for (int i = 0; i < 4; i++) {
        char header[64];
        snprintf(header, sizeof header, "// ---- IR after %s ----\n", names[i]);
        const char *found = strstr(at, header);
        cr_assert(found != NULL, "missing %s in order:\n%s", header, text);
        at = found + 1;
    }
    /* The last dump is the final module. */
    cr_assert_str_eq(strstr(text, "// ---- IR after dce ----\n") + strlen("// ---- IR after dce ----\n"),
                     program_final);
    sb_free(&dump);
    ir_module_free(m);

    m = build_program();
    opt = (PassOptions){.dump_after = NULL, .dump = &dump};
    cr_assert(passes_run(m, &opt, &d));
    cr_assert_eq(dump.len, 0);
    cr_assert(passes_run(m, NULL, &d), "no options: defaults");
    diag_free(&d);
    sb_free(&dump);
    ir_module_free(m);
}

Test(pipeline, second_run_changes_nothing) {
    IrModule *m = build_program();
    DiagList d = {0};
    cr_assert(passes_run(m, &(PassOptions){.verify_each = true}, &d));
    cr_assert_not(pass_inline(m, &d));
    cr_assert_not(pass_canonicalize(m, &d));
    cr_assert_not(pass_cse(m, &d));
    cr_assert_not(pass_dce(m, &d));
    diag_free(&d);
    ir_module_free(m);
}

Test(pipeline, names_and_listing) {
    cr_assert(passes_is_known("inline"));
    cr_assert(passes_is_known("canonicalize"));
    cr_assert(passes_is_known("cse"));
    cr_assert(passes_is_known("dce"));
    cr_assert(passes_is_known("all"));
    cr_assert_not(passes_is_known("gvn"));
    cr_assert_not(passes_is_known(NULL));
    Strbuf sb = {0};
    passes_list(&sb);
    /* every pass, GPU passes included, one per line in order, each with when it runs */
    const char *names[] = {"inline", "canonicalize", "cse", "dce", "conds", "layout", "stages", "cluster", "epilogue", "smem_plan", "cleanup"};
    const char *at = sb_str(&sb);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        cr_assert(passes_is_known(names[i]), "%s", names[i]);
        cr_assert(strncmp(at, names[i], strlen(names[i])) == 0 && at[strlen(names[i])] == ' ', "line %zu: %s", i, at);
        at = strchr(at, '\n');
        cr_assert_not_null(at);
        at++;
    }
    cr_assert_str_eq(at, "");
    sb_free(&sb);
}

Test(pipeline, invalid_input_is_an_internal_error) {
    IrModule *m = build_program();
    IrFunction *k = m->last_function;
    ir_op_remove(k->grid->last); /* the grid no longer yields */
    DiagList d = {0};
    cr_assert_not(passes_run(m, &(PassOptions){.verify_each = true}, &d));
    cr_assert(strstr(sb_str(&d.text), "verify: @k: grid must end in a yield") != NULL, "%s", sb_str(&d.text));
    cr_assert(strstr(sb_str(&d.text), "error: internal error in pass lower: it gave the pass pipeline invalid IR") != NULL,
              "%s", sb_str(&d.text));
    cr_assert_eq(d.internal, 1, "a compiler bug is counted as one");
    diag_free(&d);
    ir_module_free(m);
}

Test(pipeline, user_errors_stop_the_pipeline) {
    IrModule *m = parse("func @self(%0: f32) -> (f32) {\n"
                        "  %1 = call @self(%0) : f32\n"
                        "  return %1\n"
                        "}\n");
    DiagList d = {0};
    Strbuf dump = {0};
    PassOptions opt = {.dump_after = "dce", .dump = &dump, .verify_each = true};
    cr_assert_not(passes_run(m, &opt, &d));
    cr_assert(strstr(sb_str(&d.text), "t.ir:2:3: error: recursive call of 'self'") != NULL, "%s", sb_str(&d.text));
    cr_assert_eq(dump.len, 0, "later passes must not run");
    sb_free(&dump);
    diag_free(&d);
    ir_module_free(m);
}
