/*
 * attr.c: how each kind of op attribute prints and reads back, one pair of functions per kind,
 * and the walk over the rows of ir/attr.def that the printer and the reader share.
 *
 * An attribute is a value held in IrOp.ints[] from a given slot on. Its kind decides the text:
 * a plain integer (`axis 1`), an integer shown only when it is not 0 (`pipeline 3`) or only when
 * a pass has set it (`offset 1024`), a list
 * (`perm [1, 0]`), or a name from a small enumeration (`lt`, `sum`, `add`). Adding a kind is one
 * print function, one parse function and one line in the kinds table below; adding an op that
 * uses existing kinds is rows in attr.def only. Ops without rows show whatever ints they carry
 * as `ints [...]`, which reads back the same way.
 */
#include "ir/text.h"

#include "ir/mma.h"

#include <string.h>

typedef enum {
    KIND_INT,          /* ints[slot] */
    KIND_NONZERO_INT,  /* ints[slot], shown only when not 0 (0 when absent) */
    KIND_SET_INT,      /* ints[slot], shown only when set (nints > slot; absent: not set) */
    KIND_ORDER,        /* IrMemOrder: relaxed, acq_rel */
    KIND_MESSAGE,      /* ints[slot] indexes the function's check_messages; shown as the string */
    KIND_INT_LIST,     /* ints[slot .. nints) */
    KIND_CMP,          /* ints[slot] = IrCmp */
    KIND_REDUCE,       /* ints[slot] = IrReduce */
    KIND_ATOMIC,       /* ints[slot] = IrAtomic */
    KIND_MMA,          /* ints[slot] = MmaInstr (ir/mma.def), shown only when set */
} AttrKind;

typedef struct AttrRow {
    OpCode op;
    AttrPlace place;
    AttrKind kind;
    const char *keyword;   /* printed before the value; NULL: the value alone */
    int slot;
} AttrRow;

static const AttrRow rows[] = {
#define ATTR(op, place, kind, keyword, slot) {OP_##op, ATTR_##place, KIND_##kind, keyword, slot},
#include "attr.def"
#undef ATTR
};
enum { NROWS = sizeof rows / sizeof rows[0] };

static void set_int(IrOp *op, int slot, int64_t v) {
    op->ints[slot] = v;
    if (op->nints < (uint32_t)slot + 1) op->nints = (uint32_t)slot + 1;
}

/* ---- integers ---------------------------------------------------------------------------------- */
static void print_int(const IrOp *op, const AttrRow *a, Strbuf *out) {
    sb_printf(out, "%lld", (long long)op->ints[a->slot]);
}
static void parse_int(IrReader *r, IrOp *op, const AttrRow *a) {
    set_int(op, a->slot, ir_reader_int(r, "an integer"));
}

/* ---- lists of integers ------------------------------------------------------------------------- */
static void print_int_list(const IrOp *op, int from, Strbuf *out) {
    sb_putc(out, '[');
    for (uint32_t i = (uint32_t)from; i < op->nints; i++)
        sb_printf(out, "%s%lld", i > (uint32_t)from ? ", " : "", (long long)op->ints[i]);
    sb_putc(out, ']');
}
static void parse_int_list(IrReader *r, IrOp *op, int from) {
    ir_reader_expect(r, '[');
    op->nints = (uint32_t)from;
    if (ir_reader_accept(r, ']')) return;
    do {
        if (op->nints == IR_MAX_INTS) ir_reader_error(r, ir_reader_loc(r), "more than %d integer attributes", IR_MAX_INTS);
        op->ints[op->nints++] = ir_reader_int(r, "an integer");
    } while (ir_reader_accept(r, ','));
    ir_reader_expect(r, ']');
}
static void print_list(const IrOp *op, const AttrRow *a, Strbuf *out) { print_int_list(op, a->slot, out); }
static void parse_list(IrReader *r, IrOp *op, const AttrRow *a) { parse_int_list(r, op, a->slot); }

/* ---- enumerations: comparison predicates, reductions, atomics --------------------------------- */
static const char *const cmp_names[] = {"eq", "ne", "lt", "le", "gt", "ge", NULL};
static const char *const reduce_names[] = {"sum", "max", "min", NULL};
static const char *const atomic_names[] = {"add", "max", "min", "and", "or", "xchg", NULL}; /* IrAtomic */
static const char *const order_names[] = {"relaxed", "acq_rel", NULL};                    /* IrMemOrder */

static void print_enum(const IrOp *op, const AttrRow *a, const char *const *names, const char *unknown,
                       Strbuf *out) {
    int64_t v = op->ints[a->slot];
    int n = 0;
    while (names[n]) n++;
    sb_puts(out, op->nints > (uint32_t)a->slot && v >= 0 && v < n ? names[v] : unknown);
}
static void parse_enum(IrReader *r, IrOp *op, const AttrRow *a, const char *const *names, const char *what) {
    char word[32];
    SrcLoc loc = ir_reader_loc(r);
    ir_reader_word(r, what, word, sizeof word);
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], word) == 0) {
            set_int(op, a->slot, i);
            return;
        }
    ir_reader_error(r, loc, "unknown %s '%s'", what, word);
}
static void print_cmp(const IrOp *op, const AttrRow *a, Strbuf *out) { print_enum(op, a, cmp_names, "?cmp", out); }
static void parse_cmp(IrReader *r, IrOp *op, const AttrRow *a) { parse_enum(r, op, a, cmp_names, "comparison"); }
static void print_reduce(const IrOp *op, const AttrRow *a, Strbuf *out) {
    print_enum(op, a, reduce_names, "?reduce", out);
}
static void parse_reduce(IrReader *r, IrOp *op, const AttrRow *a) { parse_enum(r, op, a, reduce_names, "reduction"); }
static void print_atomic(const IrOp *op, const AttrRow *a, Strbuf *out) {
    print_enum(op, a, atomic_names, "?atomic", out);
}
static void parse_atomic(IrReader *r, IrOp *op, const AttrRow *a) { parse_enum(r, op, a, atomic_names, "atomic operation"); }
static void print_order(const IrOp *op, const AttrRow *a, Strbuf *out) { print_enum(op, a, order_names, "?order", out); }
static void parse_order(IrReader *r, IrOp *op, const AttrRow *a) { parse_enum(r, op, a, order_names, "memory order"); }

/* The names of ir/mma.def, for dot's instruction (MMA_NONE is not a name: a dot without the
 * attribute runs on CUDA cores). */
static const char *const mma_names[] = {"?mma",
#define MMA(id, name, m, n, k, operand, acc, arch) name,
#include "ir/mma.def"
#undef MMA
                                        NULL};
static void print_mma(const IrOp *op, const AttrRow *a, Strbuf *out) { print_enum(op, a, mma_names, "?mma", out); }
static void parse_mma(IrReader *r, IrOp *op, const AttrRow *a) {
    parse_enum(r, op, a, mma_names, "tensor-core instruction");
    if (op->ints[a->slot] == 0) ir_reader_error(r, ir_reader_loc(r), "unknown tensor-core instruction '?mma'");
}

/* ---- messages (check) ---------------------------------------------------------------------------- */
static void print_message(const IrOp *op, const AttrRow *a, Strbuf *out) {
    const IrFunction *f = op->parent ? op->parent->function : NULL;
    int64_t i = op->ints[a->slot];
    if (f && i >= 0 && (uint64_t)i < f->ncheck_messages) sb_printf(out, "\"%s\"", f->check_messages[i]);
    else sb_puts(out, "?message");
}
static void parse_message(IrReader *r, IrOp *op, const AttrRow *a) {
    IrFunction *f = ir_reader_function(r);
    const char *msg = ir_reader_string(r, "a message");
    const char **grown = arena_alloc(&f->module->arena, sizeof(char *) * (f->ncheck_messages + 1));
    for (uint32_t i = 0; i < f->ncheck_messages; i++) grown[i] = f->check_messages[i];
    grown[f->ncheck_messages] = msg;
    f->check_messages = grown;
    set_int(op, a->slot, f->ncheck_messages++);
}

/* ---- the kinds ------------------------------------------------------------------------------ */
static const struct {
    void (*print)(const IrOp *op, const AttrRow *a, Strbuf *out);
    void (*parse)(IrReader *r, IrOp *op, const AttrRow *a);
} kinds[] = {
    [KIND_INT] = {print_int, parse_int},
    [KIND_NONZERO_INT] = {print_int, parse_int},
    [KIND_SET_INT] = {print_int, parse_int},
    [KIND_INT_LIST] = {print_list, parse_list},
    [KIND_CMP] = {print_cmp, parse_cmp},
    [KIND_REDUCE] = {print_reduce, parse_reduce},
    [KIND_ATOMIC] = {print_atomic, parse_atomic},
    [KIND_ORDER] = {print_order, parse_order},
    [KIND_MESSAGE] = {print_message, parse_message},
    [KIND_MMA] = {print_mma, parse_mma},
};

static bool is_optional(const AttrRow *a) {
    return a->kind == KIND_NONZERO_INT || a->kind == KIND_SET_INT || a->kind == KIND_MMA;
}

static bool is_shown(const IrOp *op, const AttrRow *a) {
    bool set = op->nints > (uint32_t)a->slot;
    if (a->kind == KIND_SET_INT || a->kind == KIND_MMA) return set;
    return !is_optional(a) || (set && op->ints[a->slot] != 0);
}

bool ir_attrs_has(OpCode code, AttrPlace place) {
    for (int i = 0; i < NROWS; i++)
        if (rows[i].op == code && rows[i].place == place) return true;
    return false;
}

int ir_op_required_ints(OpCode code) {
    int need = 0;
    for (int i = 0; i < NROWS; i++) {
        const AttrRow *a = &rows[i];
        if (a->op != code || is_optional(a)) continue;
        int end = a->kind == KIND_INT_LIST ? a->slot : a->slot + 1; /* a list may be empty */
        if (end > need) need = end;
    }
    return need;
}

static bool has_rows(OpCode code) { return ir_attrs_has(code, ATTR_PREFIX) || ir_attrs_has(code, ATTR_SUFFIX); }

bool ir_attrs_print(const IrOp *op, AttrPlace place, const char *first_separator, Strbuf *out) {
    bool printed = false;
    for (int i = 0; i < NROWS; i++) {
        const AttrRow *a = &rows[i];
        if (a->op != op->code || a->place != place || !is_shown(op, a)) continue;
        sb_puts(out, place == ATTR_PREFIX ? " " : printed ? ", " : first_separator);
        if (a->keyword) sb_printf(out, "%s ", a->keyword);
        kinds[a->kind].print(op, a, out);
        printed = true;
    }
    /* An op without named attributes shows any ints it carries, so nothing hides. */
    if (place == ATTR_SUFFIX && op->nints && !has_rows(op->code)) {
        sb_printf(out, "%sints ", first_separator);
        print_int_list(op, 0, out);
        printed = true;
    }
    return printed;
}

void ir_attrs_parse(IrReader *r, IrOp *op, AttrPlace place, bool present) {
    bool read = false;
    for (int i = 0; i < NROWS; i++) {
        const AttrRow *a = &rows[i];
        if (a->op != op->code || a->place != place) continue;
        if (read && place == ATTR_SUFFIX && !ir_reader_accept(r, ',')) {
            if (is_optional(a)) continue;
            ir_reader_error(r, ir_reader_loc(r), "expected ', %s'", a->keyword ? a->keyword : "<integer>");
        }
        if (a->keyword) {
            if (!ir_reader_accept_word(r, a->keyword)) {
                if (is_optional(a) && !read) {
                    if (a->kind == KIND_NONZERO_INT) set_int(op, a->slot, 0);
                    continue;
                }
                ir_reader_error(r, ir_reader_loc(r), "expected '%s'", a->keyword);
            }
        } else if (!ir_reader_at_int(r) && a->kind != KIND_CMP && a->kind != KIND_REDUCE && a->kind != KIND_ATOMIC &&
                   a->kind != KIND_MESSAGE && a->kind != KIND_ORDER && a->kind != KIND_MMA) {
            ir_reader_error(r, ir_reader_loc(r), "expected an integer attribute");
        }
        kinds[a->kind].parse(r, op, a);
        read = true;
    }
    if (place == ATTR_SUFFIX && !has_rows(op->code) && ir_reader_accept_word(r, "ints")) {
        parse_int_list(r, op, 0);
        read = true;
    }
    if (present && !read) ir_reader_error(r, ir_reader_loc(r), "expected an attribute");
}
