/*
 * args.c: the launch-argument checks every device runs before a kernel starts, and the
 * conversion between the public dtype encoding and the IR's element types.
 *
 * rt_check_args walks the parameters in order. Tensor arguments are checked for kind, element
 * type, rank, shape, strides and data pointer; their dimensions are matched against the
 * signature: a fixed dimension must equal its size, and a symbolic one ("K") binds, in a small
 * table, to the first size seen, naming the parameter that bound it so that a later mismatch
 * can say both. The furthest element's bit offset must fit in 64 bits, which lets the VM and
 * the GPU compute addresses without overflow, and the data pointer must be aligned to the
 * element's size (both devices refuse what the GPU cannot load, so they never differ). Scalars
 * are checked for kind and range.
 */
#include "vm.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

bool rt_dtype_to_elem(tile_dtype dtype, ElemType *out) {
    unsigned kind = dtype >> 24, bits = (dtype >> 16) & 0xff, exp = (dtype >> 8) & 0xff,
             man = dtype & 0xff;
    switch (kind) {
    case TILE_DTYPE_BOOL_KIND:
        if (bits != 1 || exp || man) return false;
        *out = elem_bool();
        return true;
    case TILE_DTYPE_INT_KIND:
    case TILE_DTYPE_UINT_KIND:
        if (bits < 1 || bits > 64 || exp || man) return false;
        *out = kind == TILE_DTYPE_INT_KIND ? elem_int((int)bits) : elem_uint((int)bits);
        return true;
    case TILE_DTYPE_FLOAT_KIND:
        /* the same formats elem_parse accepts */
        if (exp < 1 || exp > 11 || man > 52 || 1 + exp + man != bits) return false;
        *out = elem_float((int)exp, (int)man);
        return true;
    default:
        return false;
    }
}

tile_dtype rt_elem_to_dtype(ElemType e) {
    return TILE_DTYPE((unsigned)e.kind, (unsigned)e.bits, (unsigned)e.exp, (unsigned)e.man);
}

static const char *kind_name(tile_arg_kind k) {
    switch (k) {
    case TILE_ARG_TENSOR: return "a tensor";
    case TILE_ARG_INT: return "an integer";
    case TILE_ARG_FLOAT: return "a float";
    }
    return "an argument of unknown kind";
}

typedef struct SymbolBinding {
    const char *symbol;
    int64_t size;
    const char *param; /* the parameter that bound it */
} SymbolBinding;

/* Kernels with up to 16 symbolic sizes keep them on the stack: a launch allocates nothing. */
typedef struct CheckState {
    SymbolBinding *bindings;
    size_t nbindings, cap;
    SymbolBinding inline_bindings[16];
} CheckState;

static SymbolBinding *find_binding(CheckState *s, const char *symbol) {
    for (size_t i = 0; i < s->nbindings; i++)
        if (s->bindings[i].symbol == symbol || strcmp(s->bindings[i].symbol, symbol) == 0) return &s->bindings[i];
    return NULL;
}

static void add_binding(CheckState *s, const char *symbol, int64_t size, const char *param) {
    if (s->nbindings == s->cap) {
        s->cap *= 2;
        if (s->bindings == s->inline_bindings) {
            s->bindings = xmalloc(s->cap * sizeof *s->bindings);
            memcpy(s->bindings, s->inline_bindings, sizeof s->inline_bindings);
        } else {
            s->bindings = xrealloc(s->bindings, s->cap * sizeof *s->bindings);
        }
    }
    s->bindings[s->nbindings++] = (SymbolBinding){symbol, size, param};
}

static const char *param_name(const IrFunction *k, uint32_t i) {
    return k->params && k->params[i].name ? k->params[i].name : "?";
}

/* The alignment an element's address must have: its size for 2, 4 and 8 bytes; 1 for bytes,
 * packed sub-byte types and widths that are not a power of two bytes. */
static unsigned element_alignment(ElemType e) {
    int bits = elem_storage_bits(e);
    return bits == 16 || bits == 32 || bits == 64 ? (unsigned)bits / 8 : 1;
}

static bool check_tensor(const IrFunction *kernel, uint32_t index, const IrType *type,
                         const tile_tensor *t, CheckState *state, Strbuf *err) {
    const char *name = param_name(kernel, index);
    char want[16], got[16];
    ElemType e;
    if (!rt_dtype_to_elem(t->dtype, &e)) {
        sb_printf(err, "tensor '%s' has an invalid dtype 0x%08" PRIx32 " (the kernel expects %s)",
                  name, (uint32_t)t->dtype, elem_name(type->elem, want));
        return false;
    }
    if (!elem_eq(e, type->elem)) {
        sb_printf(err, "tensor '%s' has element type %s but the kernel expects %s", name,
                  elem_name(e, got), elem_name(type->elem, want));
        return false;
    }
    if (t->rank != type->rank) {
        sb_printf(err, "tensor '%s' has rank %d but the kernel expects rank %d", name, t->rank,
                  type->rank);
        return false;
    }
    int64_t numel = 1;
    for (int d = 0; d < t->rank; d++) {
        if (t->shape[d] < 0) {
            sb_printf(err, "tensor '%s' dimension %d has negative size %" PRId64, name, d,
                      t->shape[d]);
            return false;
        }
        if (t->shape[d] > INT32_MAX) {
            sb_printf(err, "tensor '%s' dimension %d is %" PRId64 ", larger than 2^31-1", name,
                      d, t->shape[d]);
            return false;
        }
        if (t->strides[d] < 0) {
            sb_printf(err, "tensor '%s' dimension %d has negative stride %" PRId64, name, d,
                      t->strides[d]);
            return false;
        }
        if (numel && t->shape[d] && numel > INT64_MAX / t->shape[d]) numel = INT64_MAX;
        else numel *= t->shape[d];
    }
    if (!t->data && numel != 0) {
        sb_printf(err, "tensor '%s' has a null data pointer", name);
        return false;
    }
    /* The GPU's loads need naturally aligned elements (a misaligned one faults or reads the
     * wrong bytes), and the VM must refuse what the GPU cannot do rather than differ from it. */
    unsigned align = element_alignment(e);
    if (numel != 0 && (uintptr_t)t->data % align != 0) {
        sb_printf(err, "tensor '%s': data pointer %p is not aligned to its %u-byte %s elements", name, t->data,
                  align, elem_name(e, got));
        return false;
    }
    /* The furthest element's bit offset must fit in int64. */
    if (numel != 0) {
        int64_t limit = INT64_MAX / 64, last = 0;
        for (int d = 0; d < t->rank; d++) {
            int64_t extent = t->shape[d] - 1;
            if (extent && t->strides[d] > (limit - last) / extent) {
                sb_printf(err, "tensor '%s' spans more memory than can be addressed", name);
                return false;
            }
            last += extent * t->strides[d];
        }
    }
    const IrParam *param = kernel->params ? &kernel->params[index] : NULL;
    for (int d = 0; d < t->rank && param; d++) {
        const IrDimSpec *spec = &param->dims[d];
        if (!spec->symbol) {
            if (spec->size != t->shape[d]) {
                sb_printf(err, "tensor '%s' dimension %d is %" PRId64 " but the kernel expects %"
                          PRId64, name, d, t->shape[d], spec->size);
                return false;
            }
            continue;
        }
        SymbolBinding *b = find_binding(state, spec->symbol);
        if (!b) {
            add_binding(state, spec->symbol, t->shape[d], name);
        } else if (b->size != t->shape[d]) {
            sb_printf(err, "tensor '%s' dimension %d (%s) is %" PRId64 " but '%s' bound %s = %"
                      PRId64, name, d, spec->symbol, t->shape[d], b->param, spec->symbol, b->size);
            return false;
        }
    }
    return true;
}

static bool check_scalar(const IrFunction *kernel, uint32_t index, const IrType *type,
                         const tile_arg *arg, Strbuf *err) {
    const char *name = param_name(kernel, index);
    char want[16];
    ElemType e = type->elem;
    if (elem_is_float(e)) {
        if (arg->kind != TILE_ARG_FLOAT) {
            sb_printf(err, "argument '%s' must be a float (%s) but %s was given", name,
                      elem_name(e, want), kind_name(arg->kind));
            return false;
        }
        return true;
    }
    if (arg->kind != TILE_ARG_INT) {
        sb_printf(err, "argument '%s' must be an integer (%s) but %s was given", name,
                  elem_name(e, want), kind_name(arg->kind));
        return false;
    }
    bool fits = e.kind == EK_BOOL ? (arg->i == 0 || arg->i == 1)
              : e.kind == EK_UINT && e.bits == 64 ? true
              : e.kind == EK_UINT ? (arg->i >= 0 && elem_wrap_int(e, arg->i) == arg->i)
              : elem_wrap_int(e, arg->i) == arg->i;
    if (!fits) {
        sb_printf(err, "argument '%s' = %" PRId64 " does not fit in %s", name, arg->i,
                  elem_name(e, want));
        return false;
    }
    return true;
}

bool rt_check_args(const IrFunction *kernel, const tile_arg *args, size_t nargs, Strbuf *err) {
    uint32_t nparams = kernel->body->nargs;
    if (nargs != nparams) {
        sb_printf(err, "kernel '%s' takes %u argument%s but %zu %s given", kernel->name,
                  (unsigned)nparams, nparams == 1 ? "" : "s", nargs, nargs == 1 ? "was" : "were");
        return false;
    }
    if (nargs && !args) {
        sb_printf(err, "kernel '%s': the argument array is null", kernel->name);
        return false;
    }
    CheckState state;
    state.bindings = state.inline_bindings;
    state.nbindings = 0;
    state.cap = sizeof state.inline_bindings / sizeof state.inline_bindings[0];
    bool ok = true;
    for (uint32_t i = 0; i < nparams && ok; i++) {
        const IrType *type = kernel->body->args[i]->type;
        const char *name = param_name(kernel, i);
        if (type->kind == TY_TENSOR) {
            if (args[i].kind != TILE_ARG_TENSOR) {
                sb_printf(err, "argument '%s' must be a tensor but %s was given", name,
                          kind_name(args[i].kind));
                ok = false;
            } else {
                ok = check_tensor(kernel, i, type, &args[i].tensor, &state, err);
            }
        } else if (type_is_scalar(type)) {
            ok = check_scalar(kernel, i, type, &args[i], err);
        } else {
            sb_printf(err, "parameter '%s' has a type that cannot be passed at launch", name);
            ok = false;
        }
    }
    if (state.bindings != state.inline_bindings) free(state.bindings);
    return ok;
}
