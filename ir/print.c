/*
 * print.c: the text form of the IR, stable and readable, for dumps and golden tests.
 *
 * Values are renumbered per function in order of definition, so the text does not depend on
 * creation ids: the parameters are %0..%n-1 (a kernel's grid arguments print as the same
 * numbers), then the grid and the body each continue from %n. Inside a region the arguments
 * come first, then each op's nested regions, then the op's results (a result is defined when
 * its op completes, so `%9 = for ...` follows the numbers used inside the loop). Source names
 * and locations are not printed. A value that is not visible to the numbering (broken IR, a
 * value of another function) prints as `%?<id>` so that a dump of bad IR still reads.
 *
 *   kernel @add(%0: tensor<f32>[N], %1: tensor<f32>[N], %2: tensor<f32>[N])
 *   grid {
 *     %3 = dim %0, axis 0 : i32
 *     yield %3
 *   }
 *   body {
 *     %3 = block_id axis 0 : i32
 *     %4 = arange 0 : tile<i32>[64]
 *     %5 = load %0, %4 : tile<f32>[64]
 *     store %2, %4, %5
 *   }
 *
 *   func @f(%0: f32, %1: f32) -> (f32) {
 *     %2 = cmp lt %0, %1 : bool
 *     %9 = for %3 = %a to %b step %c iter(%4 = %0) -> (f32) pipeline 3 {
 *       ...
 *       yield %8
 *     }
 *     %12 = if %2 -> (f32) { ... yield %10 } else { ... yield %11 }
 *     %15, %16 = while (%13 = %0) -> (i32, f32) { ... condition %c, %x, %y } do (%13: i32, %14: f32) { ... yield %z }
 *     return %12
 *   }
 *
 * An op prints as `%results = name [kind] operands[, attributes] : result types`; ops with
 * regions print their result types as `-> (types)`. Types: scalars by their element name
 * (`f32`, `bf16`, `i7`), `tile<bf16>[128, 64]`, `shared<f16>[64, 64]`, `tensor<f32>[?, ?]`
 * (a kernel parameter shows its dim spec instead: `tensor<f32>[M, 64]`). A register layout
 * prints after the shape in braces (layout_print; scalars, always replicated, show none). Float constants print with the fewest significant digits
 * (at most 17) that read back to the same value once rounded to their type (f32 0.1 prints as
 * 0.1, not 0.100000001); integers in decimal (unsigned as unsigned), bools as true/false.
 *
 * ir/parse.c reads this text back, and print(parse(print(m))) == print(m) (docs/IR.md describes
 * the format). Op attributes print from the rows of ir/attr.def through ir/attr.c, where each
 * kind's printing sits next to its parsing, so the two cannot drift apart; a new syntax here
 * needs its reader function in ir/parse.c.
 */
#include "ir.h"
#include "layout.h"
#include "text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- types -------------------------------------------------------------------------------- */
static void print_shape(const IrType *t, Strbuf *out) {
    sb_putc(out, '[');
    for (int i = 0; i < t->rank; i++) sb_printf(out, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    sb_putc(out, ']');
}

void ir_print_type(const IrType *t, Strbuf *out) {
    char buf[16];
    const char *elem = elem_name(t->elem, buf);
    switch (t->kind) {
    case TY_TILE:
        if (t->rank == 0) { /* scalars are replicated in every thread: no layout to show */
            sb_puts(out, elem);
            return;
        }
        sb_printf(out, "tile<%s>", elem);
        print_shape(t, out);
        if (t->layout) {
            sb_putc(out, '{');
            layout_print(t->layout, out);
            sb_putc(out, '}');
        }
        return;
    case TY_SHARED:
        sb_printf(out, "shared<%s>", elem);
        print_shape(t, out);
        if (t->shared) {
            sb_putc(out, '{');
            shared_layout_print(t->shared, out);
            sb_putc(out, '}');
        }
        return;
    case TY_TENSOR:
        sb_printf(out, "tensor<%s>[", elem);
        for (int i = 0; i < t->rank; i++) sb_puts(out, i ? ", ?" : "?");
        sb_putc(out, ']');
        return;
    }
    tile_unreachable();
}

/* ---- constants ---------------------------------------------------------------------------- */
/* The fewest digits that read back to f once rounded to the element type e. */
static void print_float(double f, ElemType e, Strbuf *out) {
    if (isnan(f)) {
        sb_puts(out, signbit(f) ? "-nan" : "nan");
        return;
    }
    if (isinf(f)) {
        sb_puts(out, f < 0 ? "-inf" : "inf");
        return;
    }
    char buf[64];
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, f);
        if (elem_round_float(e, strtod(buf, NULL)) == f) break;
    }
    sb_puts(out, buf);
    /* Keep floats recognizable: "2" would read as an integer. */
    if (!strpbrk(buf, ".en")) sb_puts(out, ".0");
}

static void print_const(const IrConst *c, const IrType *t, Strbuf *out) {
    if (t && elem_is_bool(t->elem) && !c->is_float) {
        sb_puts(out, c->i ? "true" : "false");
    } else if (c->is_float) {
        print_float(c->f, t ? t->elem : elem_f64(), out);
    } else if (t && t->elem.kind == EK_UINT) {
        sb_printf(out, "%llu", (unsigned long long)(uint64_t)c->i);
    } else {
        sb_printf(out, "%lld", (long long)c->i);
    }
}

/* ---- value numbering ------------------------------------------------------------------------ */
#define UNNUMBERED UINT32_MAX

typedef struct Printer {
    const IrFunction *f;
    uint32_t *num;          /* indexed by value id */
    uint32_t cap;
    uint32_t next;
    Strbuf *out;
} Printer;

static const IrFunction *value_function(const IrValue *v) {
    if (v->def) return v->def->parent ? v->def->parent->function : NULL;
    return v->region ? v->region->function : NULL;
}

static void number_value(Printer *p, const IrValue *v, uint32_t n) {
    if (v->id < p->cap && value_function(v) == p->f) p->num[v->id] = n;
}

static void number_region(Printer *p, const IrRegion *r) {
    for (uint32_t i = 0; i < r->nargs; i++) number_value(p, r->args[i], p->next++);
    for (const IrOp *op = r->first; op; op = op->next) {
        for (uint32_t i = 0; i < op->nregions; i++) number_region(p, op->regions[i]);
        for (uint32_t i = 0; i < op->nresults; i++) number_value(p, op->results[i], p->next++);
    }
}

static void print_value(Printer *p, const IrValue *v) {
    if (!v) {
        sb_puts(p->out, "%<null>");
        return;
    }
    if (v->id < p->cap && value_function(v) == p->f && p->num[v->id] != UNNUMBERED)
        sb_printf(p->out, "%%%u", p->num[v->id]);
    else
        sb_printf(p->out, "%%?%u", v->id);
}

static void print_values(Printer *p, IrValue *const *vs, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        if (i) sb_puts(p->out, ", ");
        print_value(p, vs[i]);
    }
}

static void print_type_list(Printer *p, IrValue *const *vs, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        if (i) sb_puts(p->out, ", ");
        ir_print_type(vs[i]->type, p->out);
    }
}

static void indent(Printer *p, int depth) {
    for (int i = 0; i < depth; i++) sb_puts(p->out, "  ");
}

/* ---- ops --------------------------------------------------------------------------------- */
static void print_region_body(Printer *p, const IrRegion *r, int depth);

static void print_region_args(Printer *p, const IrRegion *r, uint32_t from) {
    for (uint32_t i = from; i < r->nargs; i++) {
        if (i > from) sb_puts(p->out, ", ");
        print_value(p, r->args[i]);
        sb_puts(p->out, ": ");
        ir_print_type(r->args[i]->type, p->out);
    }
}

static void print_results_arrow(Printer *p, const IrOp *op) {
    if (op->nresults == 0) return;
    sb_puts(p->out, " -> (");
    print_type_list(p, op->results, op->nresults);
    sb_putc(p->out, ')');
}

static void print_for(Printer *p, const IrOp *op, int depth) {
    const IrRegion *r = op->nregions ? op->regions[0] : NULL;
    sb_puts(p->out, "for ");
    if (r && r->nargs) print_value(p, r->args[0]);
    else sb_puts(p->out, "%<noiv>");
    sb_puts(p->out, " = ");
    if (op->noperands >= 3) {
        print_value(p, op->operands[0]);
        sb_puts(p->out, " to ");
        print_value(p, op->operands[1]);
        sb_puts(p->out, " step ");
        print_value(p, op->operands[2]);
    }
    if (op->noperands > 3) {
        sb_puts(p->out, " iter(");
        for (uint32_t i = 3; i < op->noperands; i++) {
            if (i > 3) sb_puts(p->out, ", ");
            if (r && i - 2 < r->nargs) print_value(p, r->args[i - 2]);
            else sb_puts(p->out, "%<noarg>");
            sb_puts(p->out, " = ");
            print_value(p, op->operands[i]);
        }
        sb_putc(p->out, ')');
    }
    print_results_arrow(p, op);
    ir_attrs_print(op, ATTR_SUFFIX, " ", p->out);
    sb_puts(p->out, " {\n");
    if (r) print_region_body(p, r, depth + 1);
    indent(p, depth);
    sb_putc(p->out, '}');
}

static void print_if(Printer *p, const IrOp *op, int depth) {
    sb_puts(p->out, "if ");
    print_values(p, op->operands, op->noperands);
    print_results_arrow(p, op);
    for (uint32_t i = 0; i < op->nregions; i++) {
        sb_puts(p->out, i == 0 ? " {\n" : " else {\n");
        print_region_body(p, op->regions[i], depth + 1);
        indent(p, depth);
        sb_putc(p->out, '}');
    }
}

static void print_while(Printer *p, const IrOp *op, int depth) {
    const IrRegion *before = op->nregions > 0 ? op->regions[0] : NULL;
    sb_puts(p->out, "while (");
    for (uint32_t i = 0; i < op->noperands; i++) {
        if (i) sb_puts(p->out, ", ");
        if (before && i < before->nargs) print_value(p, before->args[i]);
        else sb_puts(p->out, "%<noarg>");
        sb_puts(p->out, " = ");
        print_value(p, op->operands[i]);
    }
    sb_putc(p->out, ')');
    print_results_arrow(p, op);
    for (uint32_t i = 0; i < op->nregions; i++) {
        if (i == 0) {
            sb_puts(p->out, " {\n");
        } else {
            sb_puts(p->out, " do (");
            print_region_args(p, op->regions[i], 0);
            sb_puts(p->out, ") {\n");
        }
        print_region_body(p, op->regions[i], depth + 1);
        indent(p, depth);
        sb_putc(p->out, '}');
    }
}

/* warp_roles role(warps 4, regs 40) { ... } role(warps 4, regs 232) { ... } (regs 0 not shown) */
static void print_warp_roles(Printer *p, const IrOp *op, int depth) {
    sb_puts(p->out, "warp_roles");
    for (uint32_t i = 0; i < op->nregions; i++) {
        if (2 * i + 1 < op->nints) {
            sb_printf(p->out, " role(warps %lld", (long long)ir_role_warps(op, i));
            if (ir_role_regs(op, i)) sb_printf(p->out, ", regs %lld", (long long)ir_role_regs(op, i));
            sb_puts(p->out, ") {\n");
        } else {
            sb_puts(p->out, " role(<no attributes>) {\n");
        }
        print_region_body(p, op->regions[i], depth + 1);
        indent(p, depth);
        sb_putc(p->out, '}');
    }
}

/* Operands, then attributes after a comma, as `name value` (the rows of ir/attr.def). */
static void print_plain_op(Printer *p, const IrOp *op) {
    Strbuf *out = p->out;
    sb_puts(out, ir_op_info[op->code].name);
    ir_attrs_print(op, ATTR_PREFIX, " ", out);
    if (op->code == OP_CONST) {
        sb_putc(out, ' ');
        print_const(&op->value, op->nresults ? op->results[0]->type : NULL, out);
    }
    if (op->code == OP_CALL) {
        sb_printf(out, " @%s(", op->callee ? op->callee->name : "<null>");
        print_values(p, op->operands, op->noperands);
        sb_putc(out, ')');
    } else if (op->noperands) {
        sb_putc(out, ' ');
        print_values(p, op->operands, op->noperands);
    }
    ir_attrs_print(op, ATTR_SUFFIX, op->noperands ? ", " : " ", out);
    if (op->nresults) {
        sb_puts(out, " : ");
        print_type_list(p, op->results, op->nresults);
    }
}

static void print_op(Printer *p, const IrOp *op, int depth) {
    indent(p, depth);
    if (op->nresults) {
        print_values(p, op->results, op->nresults);
        sb_puts(p->out, " = ");
    }
    switch (op->code) {
    case OP_FOR: print_for(p, op, depth); break;
    case OP_IF: print_if(p, op, depth); break;
    case OP_WHILE: print_while(p, op, depth); break;
    case OP_WARP_ROLES: print_warp_roles(p, op, depth); break;
    default: print_plain_op(p, op); break;
    }
    sb_putc(p->out, '\n');
}

static void print_region_body(Printer *p, const IrRegion *r, int depth) {
    for (const IrOp *op = r->first; op; op = op->next) print_op(p, op, depth);
}

/* ---- functions and modules -------------------------------------------------------------- */
static void print_param(Printer *p, const IrFunction *f, uint32_t i) {
    const IrValue *v = f->body->args[i];
    print_value(p, v);
    sb_puts(p->out, ": ");
    const IrType *t = v->type;
    if (t->kind != TY_TENSOR || !f->params || i >= f->nparams) {
        ir_print_type(t, p->out);
        return;
    }
    char buf[16];
    sb_printf(p->out, "tensor<%s>[", elem_name(t->elem, buf));
    for (int d = 0; d < t->rank; d++) {
        const IrDimSpec *dim = &f->params[i].dims[d];
        if (d) sb_puts(p->out, ", ");
        if (dim->symbol) sb_puts(p->out, dim->symbol);
        else sb_printf(p->out, "%lld", (long long)dim->size);
    }
    sb_putc(p->out, ']');
}

void ir_print_function(const IrFunction *f, Strbuf *out) {
    Printer p = {.f = f, .cap = f->next_value_id, .out = out};
    p.num = xmalloc((p.cap ? p.cap : 1) * sizeof *p.num);
    for (uint32_t i = 0; i < p.cap; i++) p.num[i] = UNNUMBERED;
    const IrRegion *body = f->body;
    for (uint32_t i = 0; i < body->nargs; i++) number_value(&p, body->args[i], i);
    if (f->grid) {
        for (uint32_t i = 0; i < f->grid->nargs; i++) number_value(&p, f->grid->args[i], i);
        p.next = body->nargs;
        for (const IrOp *op = f->grid->first; op; op = op->next) {
            for (uint32_t i = 0; i < op->nregions; i++) number_region(&p, op->regions[i]);
            for (uint32_t i = 0; i < op->nresults; i++) number_value(&p, op->results[i], p.next++);
        }
    }
    p.next = body->nargs;
    for (const IrOp *op = body->first; op; op = op->next) {
        for (uint32_t i = 0; i < op->nregions; i++) number_region(&p, op->regions[i]);
        for (uint32_t i = 0; i < op->nresults; i++) number_value(&p, op->results[i], p.next++);
    }

    sb_printf(out, "%s @%s(", f->is_kernel ? "kernel" : "func", f->name);
    for (uint32_t i = 0; i < body->nargs; i++) {
        if (i) sb_puts(out, ", ");
        print_param(&p, f, i);
    }
    sb_putc(out, ')');
    if (!f->is_kernel && f->nresults) {
        sb_puts(out, " -> (");
        for (uint32_t i = 0; i < f->nresults; i++) {
            if (i) sb_puts(out, ", ");
            ir_print_type(f->result_types[i], out);
        }
        sb_putc(out, ')');
    }
    if (f->is_kernel && f->num_warps) sb_printf(out, " warps %d", f->num_warps);
    if (f->is_kernel && f->cluster) sb_printf(out, " cluster %d", f->cluster);
    if (f->is_kernel) {
        sb_puts(out, "\ngrid {\n");
        if (f->grid) print_region_body(&p, f->grid, 1);
        sb_puts(out, "}\nbody {\n");
    } else {
        sb_puts(out, " {\n");
    }
    print_region_body(&p, body, 1);
    sb_puts(out, "}\n");
    free(p.num);
}

void ir_print_module(const IrModule *m, Strbuf *out) {
    for (const IrFunction *f = m->functions; f; f = f->next) {
        if (f != m->functions) sb_putc(out, '\n');
        ir_print_function(f, out);
    }
}
