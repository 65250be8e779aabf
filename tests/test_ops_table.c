/*
 * test_ops_table.c: every op of ir/ops.def is known to every place that must know it, and an op
 * that reaches a place without a handler fails the same clear way.
 *
 * The walk over the table checks, per op: the verifier has a rule (the rule column names one;
 * a missing rule_<name> stops the build), the effect and place columns hold known values, the VM
 * has an executor (runtime/vm_ops.c, vm_exec.c), the code generator has an emitter or the op is
 * removed before code generation by a named pass (or lives only in the grid region, which the
 * host evaluates), and tests/passes/every_op.ir holds an instance that the IR reader reads, the
 * verifier accepts and the printer writes back unchanged. Each failure names the op and the
 * place to fill in (docs/IR.md, "Adding an op").
 *
 * At run time, an op without an executor reaching the VM, and an op without a code generator
 * reaching the backend, are compiler bugs: "internal error in pass vm|codegen: no ... for op
 * 'X'" and TILE_ERROR_INTERNAL through the API, never a crash or a blamed user.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "ir/ir.h"
#include "passes/passes.h"
#include "runtime/vm.h"
#include "testutil.h"

static const char every_op_file[] = "tests/passes/every_op.ir";

/* The module of every_op.ir, read back from its input part (the part before `# expected:`). */
static IrModule *read_every_op(char **text_out) {
    size_t len;
    char *text = test_read_source_file(every_op_file, &len);
    char *end = strstr(text, "# expected:\n");
    cr_assert_not_null(end, "%s: no '# expected:' line", every_op_file);
    DiagList d = {0};
    IrModule *m = ir_parse_module("every_op.ir", text, (size_t)(end - text), &d);
    cr_assert_not_null(m, "%s does not read back: %s", every_op_file, sb_str(&d.text));
    diag_free(&d);
    *text_out = text;
    return m;
}

static bool count_op(IrOp *op, void *ctx) {
    int *seen = ctx;
    if ((unsigned)op->code < OP_COUNT) seen[op->code]++;
    return true;
}

Test(ops_table, every_op_has_a_rule_an_executor_and_a_code_generator) {
    for (int c = 0; c < OP_COUNT; c++) {
        const OpInfo *info = &ir_op_info[c];
        cr_assert(info->name && info->name[0], "op %d has no name in ir/ops.def", c);
        cr_assert(info->rule && info->rule[0], "op '%s' has no verifier rule (ir/ops.def rule column)", info->name);
        cr_assert(info->effect <= EFFECT_OPAQUE, "op '%s': unknown effect %d", info->name, (int)info->effect);
        cr_assert(info->place <= PLACE_GRID, "op '%s': unknown place %d", info->name, (int)info->place);
        cr_assert_eq(info->flags & F_PURE ? 1 : 0, info->effect == EFFECT_PURE ? 1 : 0,
                     "op '%s': F_PURE disagrees with the effect column", info->name);
        if (info->flags & F_TERM) continue; /* run by the op that owns its region, in the VM and in codegen */
        cr_assert_not_null(vm_executor((OpCode)c), "op '%s' has no executor in the VM (runtime/vm_ops.c vm_data_executors)",
                           info->name);
#ifdef TILE_HAVE_LLVM
        const char *removed_by = NULL;
        bool handled = backend_codegen_handles((OpCode)c, &removed_by);
        if (handled) continue;
        if (removed_by) {
            cr_assert(passes_is_known(removed_by), "op '%s' is lowered by '%s', which is not a pass of the pipeline",
                      info->name, removed_by);
            continue;
        }
        cr_assert_eq(info->place, PLACE_GRID,
                     "op '%s' has no code generator (backend/codegen.c emitters) and no pass that removes it first "
                     "(lowered_by)",
                     info->name);
#endif
    }
}

/* An effect column that CSE and DCE read: spot checks of the ops whose effect decides a pass. */
Test(ops_table, effects_and_places) {
    cr_assert_eq(ir_op_effect(OP_ADD), EFFECT_PURE);
    cr_assert_eq(ir_op_effect(OP_LOAD), EFFECT_READ);
    cr_assert_eq(ir_op_effect(OP_STORE), EFFECT_WRITE);
    cr_assert_eq(ir_op_effect(OP_BARRIER), EFFECT_SYNC);
    cr_assert_eq(ir_op_effect(OP_FOR), EFFECT_REGIONS);
    cr_assert_eq(ir_op_effect(OP_WHILE), EFFECT_OPAQUE);
    cr_assert_eq(ir_op_info[OP_CHECK].place, PLACE_GRID);
    cr_assert_eq(ir_op_info[OP_BLOCK_ID].place, PLACE_BODY);
    /* required attributes come from ir/attr.def: optional kinds (pipeline, offset, mma) are not */
    cr_assert_eq(ir_op_required_ints(OP_REDUCE), 2);
    cr_assert_eq(ir_op_required_ints(OP_ATOMIC_CAS), 2);
    cr_assert_eq(ir_op_required_ints(OP_FOR), 0);
    cr_assert_eq(ir_op_required_ints(OP_SHARED_ALLOC), 0);
    cr_assert_eq(ir_op_required_ints(OP_TRANSPOSE), 0);
    cr_assert_eq(ir_op_required_ints(OP_ADD), 0);
}

Test(ops_table, every_op_round_trips_through_the_reader_and_the_printer) {
    char *text;
    IrModule *m = read_every_op(&text);
    int seen[OP_COUNT] = {0};
    for (IrFunction *f = m->functions; f; f = f->next) {
        if (f->grid) ir_walk(f->grid, count_op, seen);
        ir_walk(f->body, count_op, seen);
    }
    for (int c = 0; c < OP_COUNT; c++)
        cr_assert(seen[c] > 0, "op '%s' has no instance in %s: add one (docs/IR.md, \"Adding an op\")",
                  ir_op_info[c].name, every_op_file);
    /* print(parse(text)) is the text itself: nothing of any op is lost or renamed */
    Strbuf printed = {0};
    ir_print_module(m, &printed);
    char *end = strstr(text, "# expected:\n") + strlen("# expected:\n");
    cr_assert_str_eq(sb_str(&printed), end, "%s: the printed module differs from its expected part", every_op_file);
    sb_free(&printed);
    ir_module_free(m);
    free(text);
}

/* The verifier's place column: an op that needs a running block does not stand in the grid. */
Test(ops_table, place_column_keeps_block_ops_out_of_the_grid) {
    static const char text[] = "kernel @k(%0: tensor<f32>[N])\n"
                               "grid {\n"
                               "  %1 = block_id axis 0 : i32\n"
                               "  yield %1\n"
                               "}\n"
                               "body {\n"
                               "}\n";
    DiagList d = {0};
    IrModule *m = ir_parse_module("grid.ir", text, sizeof text - 1, &d);
    cr_assert_null(m);
    cr_assert(strstr(sb_str(&d.text), "grid.ir:3:3: error: verify: block_id: not in a kernel's grid region"), "%s",
              sb_str(&d.text));
    diag_free(&d);
}

/* A missing attribute is reported before the rule reads it. */
Test(ops_table, required_attributes_are_checked) {
    IrModule *m = ir_module_new();
    IrFunction *f = ir_function_new(m, "f", false, (SrcLoc){0});
    f->body = ir_region_new(f);
    IrValue *x = ir_region_add_arg(f->body, ir_scalar_type(m, elem_f32()), "x");
    f->result_types = NULL, f->nresults = 0;
    IrBuilder b = {0};
    b.module = m, b.function = f;
    ir_builder_at_end(&b, f->body);
    IrValue *pair[2] = {x, x};
    IrOp *cmp = ir_build(&b, OP_CMP, pair, 2, &(const IrType *){ir_scalar_type(m, elem_bool())}, 1);
    cmp->nints = 0;
    ir_build(&b, OP_RETURN, NULL, 0, NULL, 0);
    DiagList d = {0};
    cr_assert_not(ir_verify_module(m, &d));
    cr_assert(strstr(sb_str(&d.text), "verify: cmp: expects at least 1 attribute values (ints), has 0"), "%s",
              sb_str(&d.text));
    diag_free(&d);
    ir_module_free(m);
}

/* Builds `kernel @k(%0: tensor<f32>[N]) grid { yield 1 } body { <op> }` around an op whose code
 * no place handles (a corrupted or forgotten opcode), without the verifier. */
static IrFunction *kernel_with_op(IrModule *m, OpCode code) {
    IrFunction *k = ir_function_new(m, "k", true, (SrcLoc){0});
    k->body = ir_region_new(k);
    k->grid = ir_region_new(k);
    const IrType *t = ir_tensor_type(m, elem_f32(), 1);
    ir_region_add_arg(k->body, t, "x");
    ir_region_add_arg(k->grid, t, "x");
    k->params = arena_alloc(&m->arena, sizeof *k->params);
    memset(k->params, 0, sizeof *k->params);
    k->params[0].name = "x";
    k->params[0].dims[0].symbol = "N";
    k->nparams = 1;
    IrBuilder b = {0};
    b.module = m, b.function = k;
    ir_builder_at_end(&b, k->grid);
    IrValue *one = ir_const_int(&b, ir_scalar_type(m, elem_i32()), 1);
    ir_build(&b, OP_YIELD, &one, 1, NULL, 0);
    ir_builder_at_end(&b, k->body);
    IrOp *op = ir_build(&b, OP_BARRIER, NULL, 0, NULL, 0);
    op->code = code;
    return k;
}

Test(ops_table, an_op_without_an_executor_is_an_internal_error_of_the_vm) {
    IrModule *m = ir_module_new();
    IrFunction *k = kernel_with_op(m, OP_COUNT);
    float data[4] = {0};
    tile_arg arg = {.kind = TILE_ARG_TENSOR};
    arg.tensor.data = data;
    arg.tensor.dtype = TILE_F32;
    arg.tensor.rank = 1;
    arg.tensor.shape[0] = 4;
    arg.tensor.strides[0] = 1;
    Strbuf err = {0};
    VmOutcome r = vm_launch_cancellable(k, &arg, 1, 1, NULL, &err);
    cr_assert_eq(r, VM_INTERNAL, "%s", sb_str(&err));
    cr_assert(strstr(sb_str(&err), "internal error in pass vm: no executor for op '?op'"), "%s", sb_str(&err));
    sb_free(&err);
    ir_module_free(m);
}

#ifdef TILE_HAVE_LLVM
Test(ops_table, an_op_without_a_code_generator_is_an_internal_error_of_codegen) {
    IrModule *m = ir_module_new();
    IrFunction *k = kernel_with_op(m, OP_CALL); /* the inline pass removes calls: none reaches codegen */
    CodegenOptions opt = {.arch = BACKEND_ARCH_SM80};
    CodegenInfo info;
    Strbuf ptx = {0}, err = {0};
    cr_assert_not(backend_compile_ptx(k, &opt, &ptx, &info, &err));
    cr_assert(info.internal, "%s", sb_str(&err));
    cr_assert(strstr(sb_str(&err), "internal error in pass codegen: no code generator for op 'call' (the pass inline "
                                   "removes it first)"),
              "%s", sb_str(&err));
    sb_free(&err);
    sb_free(&ptx);
    ir_module_free(m);
}
#endif
