/*
 * run.c: `tilec run FILE -k KERNEL [--in NAME=x.npy]... [--out DIR] [NAME=VALUE]...`: runs one
 * kernel on the VM or the GPU (or both, with --compare) and summarizes, compares or saves every
 * tensor afterwards.
 *
 * The plan (make_plan) decides what the kernel gets before any device memory is touched:
 * symbolic sizes are bound by NAME=VALUE and by the shapes of --in files (which must agree with
 * each other and with the kernel's fixed sizes); every size is checked against the launch's
 * limit (2^31-1) and every byte count for overflow before anything is allocated, and a failed
 * allocation is an error, not a crash. Tensor contents are kept in the packed memory format of
 * the device (tile_tensor's), so 64-bit integers and every element type round-trip exactly;
 * they are converted to doubles only in chunks, for the summary and the comparison. Scalars keep
 * their exact value: an integer binding stays an int64 (or, above INT64_MAX, the bits of a u64).
 *
 * .npy files hold a tensor in the numpy type that matches its element type (f32 as '<f4', i64
 * as '<i8', bool as '|b1'); element types numpy lacks use a stand-in: floats (bf16, fp8 and the
 * like) '<f4', other integer widths the next wider numpy integer of the same signedness. Input
 * files must have exactly that type and the kernel's rank; values of a stand-in are rounded to
 * the element type as tile_pack does, and integers that do not fit are an error.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "compare.h"
#include "npy.h"
#include "tilec.h"

/* Elements converted to doubles at a time: a multiple of 8, so that each chunk of a sub-byte
 * type starts on a byte boundary. */
enum { CHUNK = 4096 };

/* NAME=VALUE from the command line, or a size bound by the shape of an --in file. */
typedef struct Binding {
    char *name;
    bool is_float;
    bool big_unsigned;  /* an integer above INT64_MAX: its u64 bits in i */
    int64_t i;
    double f;
    const char *origin; /* NULL: the command line; else the .npy file whose shape bound it */
    bool used;
} Binding;

/* --in NAME=PATH */
typedef struct Input {
    const char *name, *path;
    bool used;
} Input;

typedef struct RunOptions {
    const char *file, *kernel, *out_dir;
    Defines defs;
    Binding *binds;
    int nbinds, binds_cap;
    Input *inputs;
    int ninputs, inputs_cap;
    tile_device_kind device;
    bool compare;
    bool verbose;       /* --verbose: how an autotuned kernel chose its candidate, and the
                           variants its launch compiled (stderr) */
} RunOptions;

static uint64_t rng_state = 1;
static double rng_uniform(void) { /* xorshift64*, in [0, 1) */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static const char *dtype_name(tile_dtype d, char *buf) {
    unsigned kind = d >> 24, bits = (d >> 16) & 0xff, e = (d >> 8) & 0xff, m = d & 0xff;
    if (kind == TILE_DTYPE_BOOL_KIND) sprintf(buf, "bool");
    else if (kind == TILE_DTYPE_INT_KIND) sprintf(buf, "i%u", bits);
    else if (kind == TILE_DTYPE_UINT_KIND) sprintf(buf, "u%u", bits);
    else if (d == TILE_BF16) sprintf(buf, "bf16");
    else if (d == TILE_F16 || d == TILE_F32 || d == TILE_F64) sprintf(buf, "f%u", bits);
    else sprintf(buf, "f%ue%um%u", bits, e, m);
    return buf;
}

static Binding *find_binding(Binding *b, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(b[i].name, name) == 0) return &b[i];
    return NULL;
}

/* Grows *items (of *n, capacity *cap) by one zeroed element; NULL when out of memory. */
static void *grow(void **items, int *n, int *cap, size_t size) {
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 8;
        void *p = realloc(*items, (size_t)c * size);
        if (!p) return NULL;
        *items = p;
        *cap = c;
    }
    void *slot = (char *)*items + (size_t)(*n)++ * size;
    memset(slot, 0, size);
    return slot;
}

/* ---- element types and .npy types --------------------------------------------------------------- */
static unsigned dtype_kind(tile_dtype d) { return d >> 24; }
static unsigned dtype_bits(tile_dtype d) { return (d >> 16) & 0xff; }

/* The numpy type that holds dtype; true when its bytes are the device's (a plain copy). */
static bool npy_type_of(tile_dtype d, char *kind, int *itemsize) {
    unsigned k = dtype_kind(d), bits = dtype_bits(d);
    if (k == TILE_DTYPE_BOOL_KIND) {
        *kind = 'b';
        *itemsize = 1;
        return true;
    }
    if (k == TILE_DTYPE_FLOAT_KIND) {
        *kind = 'f';
        *itemsize = d == TILE_F16 ? 2 : d == TILE_F64 || bits > 32 ? 8 : 4;
        return d == TILE_F16 || d == TILE_F32 || d == TILE_F64;
    }
    *kind = k == TILE_DTYPE_INT_KIND ? 'i' : 'u';
    *itemsize = bits <= 8 ? 1 : bits <= 16 ? 2 : bits <= 32 ? 4 : 8;
    return bits == 8 || bits == 16 || bits == 32 || bits == 64;
}

/* Element e of a little-endian numpy array as a double (for the stand-in types). */
static double npy_element(const unsigned char *data, char kind, int itemsize, int64_t e) {
    const unsigned char *p = data + e * itemsize;
    uint64_t bits = 0;
    for (int i = itemsize - 1; i >= 0; i--) bits = bits << 8 | p[i];
    if (kind == 'f') {
        if (itemsize == 4) {
            uint32_t b32 = (uint32_t)bits;
            float f;
            memcpy(&f, &b32, 4);
            return f;
        }
        double f;
        memcpy(&f, &bits, 8);
        return f;
    }
    if (kind == 'u') return (double)bits;
    int shift = 64 - 8 * itemsize; /* sign-extend */
    return (double)((int64_t)(bits << shift) >> shift);
}

static void npy_store(unsigned char *data, char kind, int itemsize, int64_t e, double v) {
    uint64_t bits;
    if (kind == 'f' && itemsize == 4) {
        float f = (float)v;
        uint32_t b32;
        memcpy(&b32, &f, 4);
        bits = b32;
    } else if (kind == 'f') {
        memcpy(&bits, &v, 8);
    } else {
        bits = kind == 'u' ? (uint64_t)v : (uint64_t)(int64_t)v;
    }
    for (int i = 0; i < itemsize; i++) data[e * itemsize + i] = (unsigned char)(bits >> (8 * i));
}

/* The byte offset of element start (a multiple of CHUNK) in a packed buffer. */
static size_t packed_offset(tile_dtype d, int64_t start) { return tile_dtype_bytes(d, start); }

/* ---- the plan ------------------------------------------------------------------------------------ */
/* What run feeds a kernel: per parameter, the tensor's shape and contents (packed, in the
 * device's format), or the scalar's value. */
typedef struct RunPlan {
    int nparams;
    tile_param_info *info;
    tile_arg *scalars;
    int64_t (*shape)[TILE_MAX_RANK];
    int64_t *numel;
    size_t *bytes;
    void **input;
} RunPlan;

static void plan_free(RunPlan *plan) {
    for (int i = 0; plan->input && i < plan->nparams; i++) free(plan->input[i]);
    free(plan->info);
    free(plan->scalars);
    free(plan->shape);
    free(plan->numel);
    free(plan->bytes);
    free(plan->input);
}

static const char *origin_text(const Binding *b, char *buf, size_t cap) {
    if (b->origin) snprintf(buf, cap, "the shape of %s", b->origin);
    else snprintf(buf, cap, "the command line");
    return buf;
}

/* Binds the symbolic sizes of parameter i from the shape of its --in file; checks rank and
 * fixed sizes. */
static int bind_from_file(RunOptions *o, const tile_param_info *info, const NpyArray *a, const char *path) {
    if (a->rank != info->rank) {
        fprintf(stderr, "tilec: %s: rank %d, but tensor '%s' has rank %d\n", path, a->rank, info->name, info->rank);
        return EXIT_USER;
    }
    for (int d = 0; d < a->rank; d++) {
        if (!info->dim_symbols[d]) {
            if (a->shape[d] != info->dim_sizes[d]) {
                fprintf(stderr, "tilec: %s: dimension %d is %" PRId64 ", but tensor '%s' has %" PRId64 " there\n",
                        path, d, a->shape[d], info->name, info->dim_sizes[d]);
                return EXIT_USER;
            }
            continue;
        }
        const char *sym = info->dim_symbols[d];
        Binding *b = find_binding(o->binds, o->nbinds, sym);
        if (b) {
            char where[300];
            int64_t v = b->is_float ? (int64_t)b->f : b->i;
            if (b->big_unsigned || (b->is_float && (double)v != b->f) || v != a->shape[d]) {
                fprintf(stderr, "tilec: %s: dimension %d (%s) is %" PRId64 ", but %s gives %s = ", path, d, sym,
                        a->shape[d], origin_text(b, where, sizeof where), sym);
                if (b->is_float) fprintf(stderr, "%.17g\n", b->f);
                else fprintf(stderr, "%" PRId64 "\n", b->i);
                return EXIT_USER;
            }
            continue;
        }
        Binding *nb = grow((void **)&o->binds, &o->nbinds, &o->binds_cap, sizeof *nb);
        char *name = nb ? strdup(sym) : NULL;
        if (!name) {
            if (nb) o->nbinds--;
            fprintf(stderr, "tilec: out of memory\n");
            return EXIT_DEVICE;
        }
        nb->name = name;
        nb->i = a->shape[d];
        nb->origin = path;
        nb->used = true;
    }
    return 0;
}

/* A size from its binding: an integer from 0 to 2^31-1 (the largest size a launch accepts). */
static int size_value(const Binding *b, const char *tensor, int64_t *out) {
    double v = b->is_float ? b->f : b->big_unsigned ? ldexp(1, 64) : (double)b->i;
    if (b->is_float && v != floor(v)) {
        fprintf(stderr, "tilec: size %s = %.17g of tensor '%s' is not an integer\n", b->name, v, tensor);
        return EXIT_USER;
    }
    if (v < 0 || v > INT32_MAX) {
        fprintf(stderr, "tilec: size %s = %.17g of tensor '%s' is outside 0 to 2^31-1 (what a launch accepts)\n",
                b->name, v, tensor);
        return EXIT_USER;
    }
    *out = (int64_t)v;
    return 0;
}

/* A scalar argument from its binding, with the exact value: integers stay int64 (or u64 bits). */
static int scalar_value(const Binding *b, const tile_param_info *info, tile_arg *arg) {
    arg->kind = info->kind;
    if (info->kind == TILE_ARG_FLOAT) {
        arg->f = b->is_float ? b->f : b->big_unsigned ? (double)(uint64_t)b->i : (double)b->i;
        return 0;
    }
    bool u64 = info->dtype == TILE_UINT(64);
    if (b->big_unsigned && !u64) {
        fprintf(stderr, "tilec: scalar '%s' = %" PRIu64 " does not fit in its type\n", b->name, (uint64_t)b->i);
        return EXIT_USER;
    }
    if (b->is_float) { /* an integral float (1e6) is accepted as the integer it is */
        if (b->f != floor(b->f) || !(b->f >= -0x1p63 && b->f < (u64 ? 0x1p64 : 0x1p63))) {
            fprintf(stderr, "tilec: scalar '%s' is an integer parameter; %.17g is not an integer it can hold\n",
                    b->name, b->f);
            return EXIT_USER;
        }
        arg->i = b->f >= 0x1p63 ? (int64_t)(uint64_t)b->f : (int64_t)b->f;
        return 0;
    }
    arg->i = b->i; /* the launch checks the range of narrower types */
    return 0;
}

/* Fills a packed buffer of n elements of d with random values (the same sequence for the same
 * seed): floats in [-1, 1), bool 0/1, integers in [0, 16) (narrower types: their range). */
static void fill_random(tile_dtype d, int64_t n, void *packed) {
    double chunk[CHUNK];
    unsigned kind = dtype_kind(d), bits = dtype_bits(d);
    for (int64_t start = 0; start < n; start += CHUNK) {
        int64_t m = n - start < CHUNK ? n - start : CHUNK;
        for (int64_t e = 0; e < m; e++) {
            double u = rng_uniform();
            if (kind == TILE_DTYPE_FLOAT_KIND) chunk[e] = 2 * u - 1;
            else if (kind == TILE_DTYPE_BOOL_KIND) chunk[e] = u < 0.5;
            else chunk[e] = floor(u * (double)(bits < 5 ? (1 << (bits - (kind == TILE_DTYPE_INT_KIND))) : 16));
        }
        tile_pack(d, chunk, m, (char *)packed + packed_offset(d, start));
    }
}

/* Converts an --in file's data (already checked for type and shape) into the packed buffer. */
static int fill_from_npy(tile_dtype d, const NpyArray *a, const char *path, void *packed) {
    char kind;
    int itemsize;
    if (npy_type_of(d, &kind, &itemsize)) {
        memcpy(packed, a->data, (size_t)a->numel * (size_t)itemsize);
        if (kind == 'b') /* numpy's bools are 0 or 1; any other byte is true */
            for (int64_t e = 0; e < a->numel; e++) ((unsigned char *)packed)[e] = ((unsigned char *)packed)[e] != 0;
        return 0;
    }
    double chunk[CHUNK];
    unsigned bits = dtype_bits(d);
    bool is_signed = dtype_kind(d) == TILE_DTYPE_INT_KIND;
    double lo = kind == 'f' ? -INFINITY : is_signed ? -ldexp(1, (int)bits - 1) : 0;
    double hi = kind == 'f' ? INFINITY : is_signed ? ldexp(1, (int)bits - 1) - 1 : ldexp(1, (int)bits) - 1;
    for (int64_t start = 0; start < a->numel; start += CHUNK) {
        int64_t m = a->numel - start < CHUNK ? a->numel - start : CHUNK;
        for (int64_t e = 0; e < m; e++) {
            chunk[e] = npy_element(a->data, kind, itemsize, start + e);
            if (chunk[e] < lo || chunk[e] > hi) {
                char dn[24];
                fprintf(stderr, "tilec: %s: element %" PRId64 " = %.17g does not fit in %s\n", path, start + e, chunk[e],
                        dtype_name(d, dn));
                return EXIT_USER;
            }
        }
        tile_pack(d, chunk, m, (char *)packed + packed_offset(d, start));
    }
    return 0;
}

/* Reads the --in file of tensor info (index i) and checks its type against the kernel's. */
static int read_input(RunOptions *o, const tile_param_info *info, NpyArray *a, const char **path) {
    Input *in = NULL;
    for (int j = 0; j < o->ninputs; j++)
        if (strcmp(o->inputs[j].name, info->name) == 0) {
            if (in) {
                fprintf(stderr, "tilec: --in %s is given twice\n", info->name);
                return EXIT_USAGE;
            }
            in = &o->inputs[j];
        }
    if (!in) return 0;
    in->used = true;
    *path = in->path;
    char err[NPY_ERROR_CAP], kind, want[8], got[8], dn[24];
    int itemsize;
    if (!npy_read(in->path, a, err)) {
        fprintf(stderr, "tilec: %s\n", err);
        return EXIT_USER;
    }
    npy_type_of(info->dtype, &kind, &itemsize);
    if (a->kind != kind || a->itemsize != itemsize) {
        npy_descr(kind, itemsize, want);
        npy_descr(a->kind, a->itemsize, got);
        fprintf(stderr, "tilec: %s: dtype '%s', but tensor '%s' is %s: expected '%s'\n", in->path, got, info->name,
                dtype_name(info->dtype, dn), want);
        npy_free(a);
        return EXIT_USER;
    }
    int rc = bind_from_file(o, info, a, in->path);
    if (rc) npy_free(a);
    return rc;
}

/* Decides every argument: reads --in files (binding sizes from their shapes), checks sizes and
 * byte counts, allocates and fills the packed inputs, converts scalars exactly. */
static int make_plan(tile_kernel *k, RunOptions *o, RunPlan *plan) {
    int np = tile_kernel_num_params(k), rc = 0;
    plan->nparams = np;
    plan->info = calloc((size_t)np + 1, sizeof *plan->info);
    plan->scalars = calloc((size_t)np + 1, sizeof *plan->scalars);
    plan->shape = calloc((size_t)np + 1, sizeof *plan->shape);
    plan->numel = calloc((size_t)np + 1, sizeof *plan->numel);
    plan->bytes = calloc((size_t)np + 1, sizeof *plan->bytes);
    plan->input = calloc((size_t)np + 1, sizeof *plan->input);
    NpyArray *files = calloc((size_t)np + 1, sizeof *files);
    const char **paths = calloc((size_t)np + 1, sizeof *paths);
    if (!plan->info || !plan->scalars || !plan->shape || !plan->numel || !plan->bytes || !plan->input || !files ||
        !paths) {
        fprintf(stderr, "tilec: out of memory\n");
        rc = EXIT_DEVICE;
    }
    for (int i = 0; i < np && !rc; i++) tile_kernel_param(k, i, &plan->info[i]);
    /* Files first: their shapes bind sizes that other tensors may use. */
    for (int i = 0; i < np && !rc; i++)
        if (plan->info[i].kind == TILE_ARG_TENSOR) rc = read_input(o, &plan->info[i], &files[i], &paths[i]);
    for (int i = 0; i < np && !rc; i++) {
        tile_param_info *info = &plan->info[i];
        if (info->kind != TILE_ARG_TENSOR) {
            Binding *b = find_binding(o->binds, o->nbinds, info->name);
            if (!b) {
                fprintf(stderr, "tilec: scalar parameter '%s' needs a value: %s=...\n", info->name, info->name);
                rc = EXIT_USER;
                break;
            }
            b->used = true;
            rc = scalar_value(b, info, &plan->scalars[i]);
            continue;
        }
        int64_t numel = 1;
        for (int d = 0; d < info->rank && !rc; d++) {
            if (info->dim_symbols[d]) {
                Binding *b = find_binding(o->binds, o->nbinds, info->dim_symbols[d]);
                if (!b) {
                    fprintf(stderr, "tilec: size '%s' of tensor '%s' needs a value: %s=... (or --in %s=FILE.npy)\n",
                            info->dim_symbols[d], info->name, info->dim_symbols[d], info->name);
                    rc = EXIT_USER;
                    break;
                }
                b->used = true;
                rc = size_value(b, info->name, &plan->shape[i][d]);
            } else {
                plan->shape[i][d] = info->dim_sizes[d];
            }
            int64_t n = plan->shape[i][d];
            if (!rc && n && numel > INT64_MAX / 64 / n) {
                fprintf(stderr, "tilec: tensor '%s' has too many elements\n", info->name);
                rc = EXIT_USER;
            }
            numel *= n;
        }
        if (rc) break;
        plan->numel[i] = numel;
        plan->bytes[i] = tile_dtype_bytes(info->dtype, numel);
        plan->input[i] = malloc(plan->bytes[i] + 1);
        if (!plan->input[i]) {
            fprintf(stderr, "tilec: cannot allocate %zu bytes for tensor '%s'\n", plan->bytes[i], info->name);
            rc = EXIT_USER;
        } else if (files[i].data) {
            rc = fill_from_npy(info->dtype, &files[i], paths[i], plan->input[i]);
        } else {
            fill_random(info->dtype, numel, plan->input[i]);
        }
    }
    for (int i = 0; i < o->nbinds && !rc; i++)
        if (!o->binds[i].used) {
            fprintf(stderr, "tilec: '%s' is neither a size nor a scalar parameter of '%s'\n", o->binds[i].name, o->kernel);
            rc = EXIT_USAGE;
        }
    for (int i = 0; i < o->ninputs && !rc; i++)
        if (!o->inputs[i].used) {
            fprintf(stderr, "tilec: --in %s: '%s' has no tensor parameter of that name\n", o->inputs[i].name, o->kernel);
            rc = EXIT_USAGE;
        }
    for (int i = 0; i < np; i++) npy_free(&files[i]);
    free(files);
    free(paths);
    return rc;
}

/* Runs k on ctx with the plan's inputs; after[i] receives every tensor's packed contents. */
static int run_plan(tile_context *ctx, tile_kernel *k, const RunPlan *plan, void **after) {
    int np = plan->nparams, rc = 0;
    tile_status st;
    tile_arg *args = calloc((size_t)np + 1, sizeof *args);
    if (!args) return EXIT_DEVICE;
    for (int i = 0; i < np && !rc; i++) {
        if (plan->info[i].kind != TILE_ARG_TENSOR) {
            args[i] = plan->scalars[i];
            continue;
        }
        void *dev = NULL;
        if ((st = tile_alloc(ctx, plan->bytes[i], &dev)) != TILE_OK) rc = report(ctx, st);
        else if ((st = tile_copy_to_device(ctx, dev, plan->input[i], plan->bytes[i])) != TILE_OK) rc = report(ctx, st);
        args[i].kind = TILE_ARG_TENSOR;
        args[i].tensor = tile_tensor_contiguous(plan->info[i].dtype, dev, plan->info[i].rank, plan->shape[i]);
    }
    if (!rc && (st = tile_kernel_launch(k, args, (size_t)np, NULL)) != TILE_OK) rc = report(ctx, st);
    if (!rc && (st = tile_synchronize(ctx)) != TILE_OK) rc = report(ctx, st);
    for (int i = 0; !rc && i < np; i++) {
        if (plan->info[i].kind != TILE_ARG_TENSOR) continue;
        if (!(after[i] = malloc(plan->bytes[i] + 1))) {
            fprintf(stderr, "tilec: cannot allocate %zu bytes for tensor '%s'\n", plan->bytes[i], plan->info[i].name);
            rc = EXIT_USER;
        } else if ((st = tile_copy_to_host(ctx, after[i], args[i].tensor.data, plan->bytes[i])) != TILE_OK) {
            rc = report(ctx, st);
        }
    }
    for (int i = 0; i < np; i++)
        if (args[i].kind == TILE_ARG_TENSOR && args[i].tensor.data) tile_free(ctx, args[i].tensor.data);
    free(args);
    return rc;
}

/* ---- what run prints and writes ------------------------------------------------------------------- */
static void shape_text(const RunPlan *plan, int i, char *buf, size_t cap) {
    int used = 0;
    buf[0] = 0;
    for (int d = 0; d < plan->info[i].rank && (size_t)used < cap; d++)
        used += snprintf(buf + used, cap - (size_t)used, "%s%" PRId64, d ? ", " : "", plan->shape[i][d]);
}

/* Elements [start, start + m) of tensor i's packed buffer as doubles. */
static void unpack_chunk(const RunPlan *plan, int i, const void *packed, int64_t start, int64_t m, double *out) {
    tile_unpack(plan->info[i].dtype, (const char *)packed + packed_offset(plan->info[i].dtype, start), m, out);
}

static void print_summary(const RunPlan *plan, void **after) {
    static double before_chunk[CHUNK], after_chunk[CHUNK];
    for (int i = 0; i < plan->nparams; i++) {
        if (plan->info[i].kind != TILE_ARG_TENSOR) continue;
        int64_t n = plan->numel[i];
        double lo = INFINITY, hi = -INFINITY, sum = 0;
        int64_t changed = 0, nans = 0;
        for (int64_t start = 0; start < n; start += CHUNK) {
            int64_t m = n - start < CHUNK ? n - start : CHUNK;
            unpack_chunk(plan, i, plan->input[i], start, m, before_chunk);
            unpack_chunk(plan, i, after[i], start, m, after_chunk);
            for (int64_t e = 0; e < m; e++) {
                double v = after_chunk[e], b = before_chunk[e];
                if (isnan(v)) {
                    nans++;
                } else {
                    lo = fmin(lo, v);
                    hi = fmax(hi, v);
                    sum += v;
                }
                if (!(v == b || (isnan(v) && isnan(b)))) changed++;
            }
        }
        char dn[24], shape[128];
        shape_text(plan, i, shape, sizeof shape);
        printf("  %-10s %s[%s]  changed %" PRId64 "/%" PRId64 "  min %.6g  max %.6g  mean %.6g%s\n", plan->info[i].name,
               dtype_name(plan->info[i].dtype, dn), shape, changed, n, n ? lo : 0.0, n ? hi : 0.0,
               n ? sum / (double)(n - nans ? n - nans : 1) : 0.0, nans ? "  (NaN present)" : "");
    }
}

/* Prints per tensor the largest absolute and relative difference; 1 when one is too large
 * (compare.h: the tolerance of the element type, relative to the element and the tensor's scale). */
static int print_comparison(const RunPlan *plan, void **vm, void **gpu) {
    static double a_chunk[CHUNK], b_chunk[CHUNK];
    int rc = 0;
    printf("%-10s %-22s %12s %12s %10s  %s\n", "tensor", "type[shape]", "max |diff|", "max rel", "tolerance", "verdict");
    for (int i = 0; i < plan->nparams; i++) {
        if (plan->info[i].kind != TILE_ARG_TENSOR) continue;
        double tol = compare_tolerance(plan->info[i].dtype), max_abs = 0, max_rel = 0, worst_a = 0, worst_b = 0;
        double scale = 1;
        for (int64_t start = 0; start < plan->numel[i]; start += CHUNK) {
            int64_t m = plan->numel[i] - start < CHUNK ? plan->numel[i] - start : CHUNK;
            unpack_chunk(plan, i, vm[i], start, m, a_chunk);
            scale = compare_scale(scale, a_chunk, m);
        }
        int64_t bad = 0, worst = -1;
        for (int64_t start = 0; start < plan->numel[i]; start += CHUNK) {
            int64_t m = plan->numel[i] - start < CHUNK ? plan->numel[i] - start : CHUNK;
            unpack_chunk(plan, i, vm[i], start, m, a_chunk);
            unpack_chunk(plan, i, gpu[i], start, m, b_chunk);
            for (int64_t e = 0; e < m; e++) {
                double a = a_chunk[e], b = b_chunk[e];
                if (isnan(a) && isnan(b)) continue;
                double diff = isnan(a) || isnan(b) ? INFINITY : a == b ? 0 : fabs(a - b);
                double rel = diff == 0 ? 0 : diff / fmax(fabs(a), 1e-30);
                if (diff > max_abs || worst < 0) {
                    max_abs = diff;
                    worst = start + e;
                    worst_a = a;
                    worst_b = b;
                }
                max_rel = fmax(max_rel, rel);
                if (!compare_within(a, b, tol, scale)) bad++;
            }
        }
        char dn[24], shape[96], desc[140];
        shape_text(plan, i, shape, sizeof shape);
        snprintf(desc, sizeof desc, "%s[%s]", dtype_name(plan->info[i].dtype, dn), shape);
        printf("%-10s %-22s %12.4g %12.4g %10.2g  ", plan->info[i].name, desc, max_abs, max_rel, tol);
        if (bad) {
            printf("MISMATCH: %" PRId64 " of %" PRId64 " elements; worst at %" PRId64 ": vm %.9g, cuda %.9g\n", bad,
                   plan->numel[i], worst, worst_a, worst_b);
            rc = EXIT_USER;
        } else {
            printf("ok\n");
        }
    }
    return rc;
}

/* Writes every tensor as DIR/NAME.npy (DIR is created when missing). */
static int write_outputs(const char *dir, const RunPlan *plan, void **after) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "tilec: --out %s: cannot create the folder: %s\n", dir, strerror(errno));
        return EXIT_USER;
    }
    for (int i = 0; i < plan->nparams; i++) {
        const tile_param_info *info = &plan->info[i];
        if (info->kind != TILE_ARG_TENSOR) continue;
        char kind, err[NPY_ERROR_CAP];
        int itemsize;
        size_t len = strlen(dir) + strlen(info->name) + 8;
        char *path = malloc(len);
        void *data = after[i];
        bool exact = npy_type_of(info->dtype, &kind, &itemsize);
        if (!exact && path) { /* the stand-in type: through doubles, a chunk at a time */
            static double chunk[CHUNK];
            data = malloc((size_t)plan->numel[i] * (size_t)itemsize + 1);
            for (int64_t start = 0; data && start < plan->numel[i]; start += CHUNK) {
                int64_t m = plan->numel[i] - start < CHUNK ? plan->numel[i] - start : CHUNK;
                unpack_chunk(plan, i, after[i], start, m, chunk);
                for (int64_t e = 0; e < m; e++) npy_store(data, kind, itemsize, start + e, chunk[e]);
            }
        }
        if (!path || !data) {
            fprintf(stderr, "tilec: out of memory writing '%s'\n", info->name);
            free(path);
            return EXIT_USER;
        }
        snprintf(path, len, "%s/%s.npy", dir, info->name);
        bool ok = npy_write(path, kind, itemsize, info->rank, plan->shape[i], data, err);
        if (!ok) fprintf(stderr, "tilec: %s\n", err);
        if (data != after[i]) free(data);
        free(path);
        if (!ok) return EXIT_USER;
    }
    return 0;
}

/* ---- the command ------------------------------------------------------------------------------------ */
/* Appends NAME=VALUE to the bindings; an integer above INT64_MAX is kept as u64 bits. */
static int add_binding(RunOptions *o, const char *text) {
    tile_constant c;
    const char *why = parse_constant(text, &c), *value = strchr(text, '=') + 1;
    bool big = false;
    if (why && strstr(why, "int64") && value[0] != '-') {
        char *end;
        errno = 0;
        unsigned long long u = strtoull(value, &end, 0);
        if (!*end && !errno) {
            why = (c.name = strndup(text, (size_t)(value - 1 - text))) ? NULL : "out of memory";
            c.i = (int64_t)u;
            big = true;
        }
    }
    if (why) {
        fprintf(stderr, "tilec: bad binding '%s': %s\n(run 'tilec --help' for usage)\n", text, why);
        return EXIT_USAGE;
    }
    if (find_binding(o->binds, o->nbinds, c.name)) {
        free((char *)c.name);
        return usage_error("'%s' is bound twice", text);
    }
    Binding *b = grow((void **)&o->binds, &o->nbinds, &o->binds_cap, sizeof *b);
    if (!b) {
        free((char *)c.name);
        return usage_error("%s", "out of memory");
    }
    b->name = (char *)c.name;
    b->is_float = c.is_float;
    b->big_unsigned = big;
    b->i = c.i;
    b->f = c.f;
    return 0;
}

/* Parses run's command line into o; an exit code on a usage error. */
static int parse_run_options(int argc, char **argv, RunOptions *o) {
    o->device = TILE_DEVICE_DEFAULT;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-D") == 0 && i + 1 < argc) {
            if (!defines_add(&o->defs, argv[++i])) return EXIT_USAGE;
        } else if (strcmp(a, "-k") == 0 && i + 1 < argc) {
            o->kernel = argv[++i];
        } else if (strcmp(a, "--seed") == 0 && i + 1 < argc) {
            rng_state = strtoull(argv[++i], NULL, 0) * 2654435761ull + 1;
        } else if (strcmp(a, "--compare") == 0) {
            o->compare = true;
        } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            o->verbose = true;
        } else if ((strcmp(a, "--out") == 0 && i + 1 < argc) || strncmp(a, "--out=", 6) == 0) {
            o->out_dir = a[5] == '=' ? a + 6 : argv[++i];
        } else if ((strcmp(a, "--in") == 0 && i + 1 < argc) || strncmp(a, "--in=", 5) == 0) {
            const char *spec = a[4] == '=' ? a + 5 : argv[++i];
            const char *eq = strchr(spec, '=');
            if (!eq || eq == spec || !eq[1]) return usage_error("--in %s: expected NAME=FILE.npy", spec);
            Input *in = grow((void **)&o->inputs, &o->ninputs, &o->inputs_cap, sizeof *in);
            char *name = in ? strndup(spec, (size_t)(eq - spec)) : NULL;
            if (!name) {
                if (in) o->ninputs--;
                return usage_error("%s", "out of memory");
            }
            in->name = name;
            in->path = eq + 1;
        } else if ((strcmp(a, "--device") == 0 && i + 1 < argc) || strncmp(a, "--device=", 9) == 0) {
            const char *d = a[8] == '=' ? a + 9 : argv[++i];
            if (strcmp(d, "vm") == 0) o->device = TILE_DEVICE_VM;
            else if (strcmp(d, "cuda") == 0) o->device = TILE_DEVICE_CUDA;
            else return usage_error("unknown device '%s' (vm or cuda)", d);
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown or incomplete option '%s' for run", a);
        } else if (strchr(a, '=')) {
            int rc = add_binding(o, a);
            if (rc) return rc;
        } else if (!o->file) {
            o->file = a;
        } else {
            return usage_error("run takes one FILE, found also '%s'", a);
        }
    }
    if (!o->file || !o->kernel) return usage_error("%s", "run needs FILE and -k KERNEL");
    if (o->compare && o->device != TILE_DEVICE_DEFAULT)
        return usage_error("%s", "--compare runs on both vm and cuda; drop --device");
    if (o->compare && o->out_dir) return usage_error("%s", "--out applies to one device: drop --compare");
    return 0;
}

static int run_with(RunOptions *o) {
    /* With --compare: contexts[0] is the VM (the reference), contexts[1] the GPU. */
    tile_device_kind kinds[2] = {o->compare ? TILE_DEVICE_VM : o->device, TILE_DEVICE_CUDA};
    int ndev = o->compare ? 2 : 1, rc = 0;
    tile_context *ctx[2] = {NULL, NULL};
    tile_program *prog[2] = {NULL, NULL};
    tile_kernel *k[2] = {NULL, NULL};
    void **after[2] = {NULL, NULL};
    RunPlan plan = {0};
    for (int d = 0; d < ndev && !rc; d++) {
        tile_status st = tile_context_create(kinds[d], 0, &ctx[d]);
        if (st != TILE_OK) {
            fprintf(stderr, "tilec: cannot open the device: %s\n", tile_context_message(NULL));
            rc = EXIT_USER;
            break;
        }
        rc = load_program(ctx[d], o->file, &prog[d]);
        if (!rc && (st = tile_program_get_kernel(prog[d], o->kernel, o->defs.items, (size_t)o->defs.n, &k[d])) != TILE_OK)
            rc = report(ctx[d], st);
    }
    if (!rc) rc = make_plan(k[0], o, &plan);
    for (int d = 0; d < ndev && !rc; d++) {
        after[d] = calloc((size_t)plan.nparams + 1, sizeof(void *));
        rc = after[d] ? run_plan(ctx[d], k[d], &plan, after[d]) : EXIT_DEVICE;
        char *tuning = NULL;
        if (!rc && o->verbose && tile_kernel_autotune_report(k[d], &tuning) == TILE_OK && tuning)
            fputs(tuning, stderr);
        tile_string_free(tuning);
        char *variants = NULL; /* what the cuda launch compiled for its facts */
        if (!rc && o->verbose && tile_kernel_variants_report(k[d], &variants) == TILE_OK && variants)
            fputs(variants, stderr);
        tile_string_free(variants);
    }
    if (!rc && !o->compare) {
        printf("ran %s on %s\n", o->kernel, tile_context_device_name(ctx[0]));
        print_summary(&plan, after[0]);
        if (o->out_dir) rc = write_outputs(o->out_dir, &plan, after[0]);
    } else if (!rc) {
        printf("ran %s on %s and on %s\n", o->kernel, tile_context_device_name(ctx[0]), tile_context_device_name(ctx[1]));
        rc = print_comparison(&plan, after[0], after[1]);
    }
    for (int d = 0; d < ndev; d++) {
        for (int i = 0; after[d] && i < plan.nparams; i++) free(after[d][i]);
        free(after[d]);
        tile_program_destroy(prog[d]);
        tile_context_destroy(ctx[d]);
    }
    plan_free(&plan);
    return rc;
}

int cmd_run(int argc, char **argv) {
    RunOptions o = {0};
    int rc = parse_run_options(argc, argv, &o);
    if (!rc) rc = run_with(&o);
    for (int i = 0; i < o.nbinds; i++) free(o.binds[i].name);
    for (int i = 0; i < o.ninputs; i++) free((char *)o.inputs[i].name);
    free(o.binds);
    free(o.inputs);
    defines_free(&o.defs);
    return rc;
}
