/*
 * tilec: the command-line driver of tile, a thin client of the public API (include/tile).
 *
 *   tilec check FILE...                         parse and check every kernel (with defaults)
 *   tilec build [--emit ir|llvm|ptx|cubin] [--arch sm_80|sm_90a] [-k KERNEL] [-D NAME=VALUE]...
 *               [--dump-after=PASS] [-o OUT] FILE
 *   tilec build --emit c-header -o NAME.h [--arch A[,B]]... [-k KERNEL]... [-D NAME=VALUE]...
 *               [--prefix ID] [--require-images] FILE        (writes NAME.h and NAME.c)
 *   tilec run FILE -k KERNEL [--device vm|cuda | --compare] [-D NAME=VALUE]... [NAME=VALUE]...
 *             [--seed N]
 *
 * Exit codes: 0 success, 1 an error in the user's input (diagnostics on stderr) or a --compare
 * mismatch, 2 bad usage, 3 a device or backend failure (or a kernel it does not support yet).
 * `run` binds symbolic sizes and scalar parameters from NAME=VALUE, fills every tensor with
 * random data, launches, and prints a summary of every tensor afterwards (a debugging aid).
 * `run --compare` runs the same inputs on the VM (the reference) and on the GPU and prints the
 * largest differences per tensor against a tolerance that depends on the element type.
 */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/tile.h"

enum { EXIT_USER = 1, EXIT_USAGE = 2, MAX_DEFS = 64, MAX_ARCHS = 8 };

static const char *usage_text =
    "usage: tilec <command> [options]\n"
    "\n"
    "commands:\n"
    "  check FILE...                 check every kernel of each file (constants take their defaults)\n"
    "  build [options] FILE          compile one kernel and print or write its IR or GPU code\n"
    "      --emit ir|llvm|ptx|cubin|c-header\n"
    "                                what to emit (default: ir); llvm, ptx and cubin need no GPU;\n"
    "                                cubin is binary and needs -o and ptxas or libnvJitLink;\n"
    "                                c-header writes -o NAME.h and NAME.c: typed launch functions\n"
    "                                with the kernels' cubins embedded (docs/AOT.md)\n"
    "      --arch sm_80|sm_90a       the GPU to compile for (default: sm_90a); with c-header\n"
    "                                repeatable or comma-separated (default: sm_80,sm_90a)\n"
    "      --prefix ID               c-header: functions are ID_<kernel>_launch (default: the\n"
    "                                file's name)\n"
    "      --require-images          c-header: fail when a cubin cannot be made, instead of\n"
    "                                leaving it to be compiled at run time\n"
    "      --num-warps N             threads per block / 32: 1, 2, 4, 8, 16 or 32 (default: warps(N), else 4)\n"
    "      -k KERNEL                 the kernel (default: the only kernel of the file); with\n"
    "                                c-header repeatable (default: every kernel)\n"
    "      -D NAME=VALUE             set a compile-time constant (repeatable)\n"
    "      --dump-after=PASS         print the IR after this pass instead (see --list-passes)\n"
    "      -o OUT                    write to OUT instead of stdout\n"
    "  run FILE -k KERNEL [options] [NAME=VALUE...]\n"
    "                                run a kernel on random inputs and summarize every tensor;\n"
    "                                NAME=VALUE binds symbolic sizes (M=512) and scalar parameters\n"
    "      --device vm|cuda          where to run (default: $TILE_DEVICE, else cuda if present, else vm)\n"
    "      -D NAME=VALUE             set a compile-time constant (repeatable)\n"
    "      --seed N                  random seed (default 1)\n"
    "      --compare                 run on the vm and on cuda with the same inputs and print, per\n"
    "                                tensor, the largest absolute and relative difference; exit 1\n"
    "                                when one exceeds the tolerance of its type (integers: exact)\n"
    "  --list-passes                 print the pass pipeline\n"
    "  --help, --version\n"
    "\n"
    "exit codes: 0 success, 1 error in the input (or --compare found a difference), 2 bad usage,\n"
    "            3 the device or the backend failed, or does not support the kernel yet\n";

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "tilec: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(run 'tilec --help' for usage)\n");
    return EXIT_USAGE;
}

/* Parses "NAME=VALUE" into a constant; false if malformed. */
static bool parse_define(const char *text, tile_constant *c) {
    const char *eq = strchr(text, '=');
    if (!eq || eq == text || !eq[1]) return false;
    size_t n = (size_t)(eq - text);
    char *name = malloc(n + 1);
    memcpy(name, text, n);
    name[n] = 0;
    memset(c, 0, sizeof *c);
    c->name = name;
    char *end;
    const char *v = eq + 1;
    if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0) {
        c->i = v[0] == 't';
        return true;
    }
    long long i = strtoll(v, &end, 0);
    if (*end == 0) {
        c->i = i;
        return true;
    }
    double f = strtod(v, &end);
    if (*end == 0) {
        c->is_float = 1;
        c->f = f;
        return true;
    }
    free(name);
    return false;
}

static void free_defines(tile_constant *defs, int n) {
    for (int i = 0; i < n; i++) free((char *)defs[i].name);
}

static int report(tile_context *ctx, tile_status st) {
    const char *msg = tile_context_message(ctx);
    fprintf(stderr, "%s", *msg ? msg : tile_status_name(st));
    if (*msg && msg[strlen(msg) - 1] != '\n') fputc('\n', stderr);
    return st == TILE_ERROR_INVALID_ARGUMENT || st == TILE_ERROR_COMPILE || st == TILE_ERROR_NOT_FOUND ? EXIT_USER : 3;
}

static int load_program(tile_context *ctx, const char *path, tile_program **prog) {
    tile_status st = tile_program_from_file(ctx, path, prog);
    if (st != TILE_OK) return report(ctx, st);
    if (tile_program_num_kernels(*prog) == 0) {
        fprintf(stderr, "%s:1:1: error: no kernel in this file\n", path);
        tile_program_destroy(*prog);
        *prog = NULL;
        return EXIT_USER;
    }
    return 0;
}

/* ---- check --------------------------------------------------------------------------------- */
static int cmd_check(int argc, char **argv) {
    tile_constant defs[MAX_DEFS];
    int ndefs = 0, nfiles = 0, rc = 0;
    const char *files[256];
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-D") == 0 && i + 1 < argc) {
            if (ndefs == MAX_DEFS || !parse_define(argv[++i], &defs[ndefs])) {
                free_defines(defs, ndefs); /* no leak on the way out */
                return ndefs == MAX_DEFS ? usage_error("too many -D (at most %s)", "64") : usage_error("bad -D '%s'", argv[i]);
            }
            ndefs++;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return usage_error("unknown option '%s' for check", argv[i]);
        } else if (nfiles < 256) {
            files[nfiles++] = argv[i];
        }
    }
    if (nfiles == 0) return usage_error("%s", "check needs at least one FILE");
    tile_context *ctx;
    if (tile_context_create(TILE_DEVICE_VM, 0, &ctx) != TILE_OK) return 3;
    for (int f = 0; f < nfiles; f++) {
        tile_program *prog;
        int r = load_program(ctx, files[f], &prog);
        if (r) {
            rc = rc ? rc : r;
            continue;
        }
        for (int k = 0; k < tile_program_num_kernels(prog); k++) {
            bool again = false; /* a name defined twice is checked (and reported) once */
            for (int j = 0; j < k; j++)
                again = again || strcmp(tile_program_kernel_name(prog, j), tile_program_kernel_name(prog, k)) == 0;
            if (again) continue;
            tile_kernel *kernel;
            tile_status st = tile_program_get_kernel(prog, tile_program_kernel_name(prog, k), defs, (size_t)ndefs, &kernel);
            if (st != TILE_OK) {
                int r = report(ctx, st); /* every failing kernel's diagnostics, not only the first's */
                rc = rc ? rc : r;
            }
        }
        tile_program_destroy(prog);
    }
    tile_context_destroy(ctx);
    free_defines(defs, ndefs);
    return rc;
}

/* ---- build --------------------------------------------------------------------------------- */
/* Appends the comma-separated architectures of text to archs (at most MAX_ARCHS). */
static bool add_archs(const char *text, char archs[][16], int *narchs) {
    while (*text) {
        size_t n = strcspn(text, ",");
        if (n == 0 || n >= 16 || *narchs == MAX_ARCHS) return false;
        memcpy(archs[*narchs], text, n);
        archs[*narchs][n] = 0;
        if (strcmp(archs[*narchs], "sm_80") != 0 && strcmp(archs[*narchs], "sm_90a") != 0) return false;
        ++*narchs;
        text += n + (text[n] == ',');
    }
    return true;
}

/* --emit c-header: NAME.h and NAME.c from out ("NAME.h"). */
static int build_c_header(tile_context *ctx, tile_program *prog, const char *out, const char *prefix,
                          const char *const *kernels, int nkernels, char archs[][16], int narchs, int num_warps,
                          bool require_images, const tile_constant *defs, int ndefs) {
    size_t n = strlen(out);
    if (n < 3 || strcmp(out + n - 2, ".h") != 0) return usage_error("-o %s: c-header writes NAME.h (and NAME.c)", out);
    const char *arch_list[MAX_ARCHS];
    for (int i = 0; i < narchs; i++) arch_list[i] = archs[i];
    const char *slash = strrchr(out, '/');
    tile_aot_options opt = {.prefix = prefix,
                            .header_name = slash ? slash + 1 : out,
                            .kernels = kernels,
                            .nkernels = (size_t)nkernels,
                            .archs = arch_list,
                            .narchs = (size_t)narchs,
                            .num_warps = num_warps,
                            .require_images = require_images};
    char *header = NULL, *source = NULL, *notes = NULL;
    tile_status st = tile_program_emit_c(prog, defs, (size_t)ndefs, &opt, &header, &source, &notes);
    if (st != TILE_OK) return report(ctx, st);
    for (const char *line = notes; *line;) { /* one note per line */
        size_t len = strcspn(line, "\n");
        fprintf(stderr, "tilec: warning: %.*s\n", (int)len, line);
        line += len + (line[len] == '\n');
    }
    char *c_path = malloc(n + 1);
    memcpy(c_path, out, n + 1);
    c_path[n - 1] = 'c';
    int rc = 0;
    const char *paths[2] = {out, c_path};
    const char *texts[2] = {header, source};
    for (int i = 0; i < 2 && !rc; i++) {
        FILE *f = fopen(paths[i], "wb");
        if (!f || fputs(texts[i], f) == EOF || fclose(f) != 0) {
            fprintf(stderr, "tilec: cannot write %s\n", paths[i]);
            rc = EXIT_USER;
        }
    }
    free(c_path);
    tile_string_free(header);
    tile_string_free(source);
    tile_string_free(notes);
    return rc;
}

static int cmd_build(int argc, char **argv) {
    tile_constant defs[MAX_DEFS];
    int ndefs = 0, nkernels = 0, narchs = 0;
    const char *file = NULL, *kernel = NULL, *out = NULL, *dump_after = NULL, *emit = "ir", *arch = NULL;
    const char *prefix = NULL, *kernels[MAX_DEFS];
    char archs[MAX_ARCHS][16];
    bool require_images = false;
    int num_warps = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-D") == 0 && i + 1 < argc) {
            if (ndefs == MAX_DEFS || !parse_define(argv[++i], &defs[ndefs])) {
                free_defines(defs, ndefs); /* no leak on the way out */
                return ndefs == MAX_DEFS ? usage_error("too many -D (at most %s)", "64") : usage_error("bad -D '%s'", argv[i]);
            }
            ndefs++;
        } else if (strcmp(a, "-k") == 0 && i + 1 < argc) {
            kernel = argv[++i];
            if (nkernels == MAX_DEFS) return usage_error("too many -k (at most %s)", "64");
            kernels[nkernels++] = kernel;
        } else if (strcmp(a, "--prefix") == 0 && i + 1 < argc) {
            prefix = argv[++i];
        } else if (strcmp(a, "--require-images") == 0) {
            require_images = true;
        } else if (strcmp(a, "-o") == 0 && i + 1 < argc) {
            out = argv[++i];
        } else if (strcmp(a, "--emit") == 0 && i + 1 < argc) {
            emit = argv[++i];
        } else if (strncmp(a, "--emit=", 7) == 0) {
            emit = a + 7;
        } else if ((strcmp(a, "--arch") == 0 && i + 1 < argc) || strncmp(a, "--arch=", 7) == 0) {
            arch = a[6] == '=' ? a + 7 : argv[++i];
            if (!add_archs(arch, archs, &narchs)) return usage_error("--arch %s: expected sm_80 and/or sm_90a", arch);
        } else if (strcmp(a, "--num-warps") == 0 && i + 1 < argc) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            num_warps = *argv[i] && !*end && n >= 1 && n <= 32 ? (int)n : 0;
            if (!tile_num_warps_valid(num_warps))
                return usage_error("--num-warps %s: expected 1, 2, 4, 8, 16 or 32", argv[i]);
        } else if (strncmp(a, "--dump-after=", 13) == 0) {
            dump_after = a + 13;
        } else if (strcmp(a, "--dump-after") == 0 && i + 1 < argc) {
            dump_after = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown or incomplete option '%s' for build", a);
        } else if (!file) {
            file = a;
        } else {
            return usage_error("build takes one FILE, found also '%s'", a);
        }
    }
    if (!file) return usage_error("%s", "build needs a FILE");
    tile_emit_kind kind;
    if (strcmp(emit, "ir") == 0) kind = TILE_EMIT_IR;
    else if (strcmp(emit, "llvm") == 0) kind = TILE_EMIT_LLVM;
    else if (strcmp(emit, "ptx") == 0) kind = TILE_EMIT_PTX;
    else if (strcmp(emit, "cubin") == 0) kind = TILE_EMIT_CUBIN;
    else if (strcmp(emit, "c-header") == 0) kind = (tile_emit_kind)-1;
    else return usage_error("--emit %s: expected ir, llvm, ptx, cubin or c-header", emit);
    bool c_header = kind == (tile_emit_kind)-1;
    if (c_header && !out) return usage_error("%s", "--emit c-header needs -o NAME.h");
    if (c_header && dump_after) return usage_error("%s", "--dump-after does not apply to c-header");
    if (!c_header && (prefix || require_images))
        return usage_error("%s", "--prefix and --require-images apply to --emit c-header only");
    if (!c_header && narchs > 1) return usage_error("%s", "one --arch only, except with --emit c-header");
    arch = narchs ? archs[0] : NULL;
    if (kind == TILE_EMIT_CUBIN && !out) return usage_error("%s", "--emit cubin writes binary: give -o OUT");
    tile_context *ctx;
    if (tile_context_create(TILE_DEVICE_VM, 0, &ctx) != TILE_OK) return 3;
    tile_program *prog;
    int rc = load_program(ctx, file, &prog);
    if (!rc && c_header) {
        rc = build_c_header(ctx, prog, out, prefix, kernels, nkernels, archs, narchs, num_warps, require_images, defs,
                            ndefs);
        tile_program_destroy(prog);
    } else if (!rc) {
        if (!kernel) {
            if (tile_program_num_kernels(prog) > 1) {
                fprintf(stderr, "tilec: %s has %d kernels; choose one with -k\n", file, tile_program_num_kernels(prog));
                rc = EXIT_USAGE;
            }
            kernel = tile_program_kernel_name(prog, 0);
        }
        char *text = NULL;
        size_t len = 0;
        tile_emit_options opt = {.dump_after = dump_after, .arch = arch, .num_warps = num_warps};
        tile_status st = rc ? TILE_OK : tile_program_emit(prog, kernel, defs, (size_t)ndefs, kind, &opt, &text, &len);
        if (st != TILE_OK) {
            rc = report(ctx, st);
        } else if (!rc) {
            FILE *f = out ? fopen(out, "wb") : stdout;
            if (!f) {
                fprintf(stderr, "tilec: cannot write %s\n", out);
                rc = EXIT_USER;
            } else {
                fwrite(text, 1, len, f);
                if (out) fclose(f);
            }
        }
        tile_string_free(text);
        tile_program_destroy(prog);
    }
    tile_context_destroy(ctx);
    free_defines(defs, ndefs);
    return rc;
}

/* ---- run ------------------------------------------------------------------------------------ */
typedef struct Binding {
    char name[64];
    double value;
    bool used;
} Binding;

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

/* What run feeds a kernel: per parameter, the tensor's shape and its random contents (as
 * doubles, already rounded to the element type), or the scalar's value. */
typedef struct RunPlan {
    int nparams;
    tile_param_info *info;
    tile_arg *scalars;       /* scalar arguments; tensors filled per device */
    int64_t (*shape)[TILE_MAX_RANK];
    int64_t *numel;
    double **before;
} RunPlan;

static void plan_free(RunPlan *plan) {
    for (int i = 0; i < plan->nparams; i++) free(plan->before[i]);
    free(plan->info);
    free(plan->scalars);
    free(plan->shape);
    free(plan->numel);
    free(plan->before);
}

static int make_plan(tile_kernel *k, const char *kernel_name, Binding *binds, int nbinds, RunPlan *plan) {
    int np = tile_kernel_num_params(k);
    plan->nparams = np;
    plan->info = calloc((size_t)np + 1, sizeof *plan->info);
    plan->scalars = calloc((size_t)np + 1, sizeof *plan->scalars);
    plan->shape = calloc((size_t)np + 1, sizeof *plan->shape);
    plan->numel = calloc((size_t)np + 1, sizeof *plan->numel);
    plan->before = calloc((size_t)np + 1, sizeof *plan->before);
    for (int i = 0; i < np; i++) {
        tile_param_info *info = &plan->info[i];
        tile_kernel_param(k, i, info);
        if (info->kind != TILE_ARG_TENSOR) {
            Binding *b = find_binding(binds, nbinds, info->name);
            if (!b) {
                fprintf(stderr, "tilec: scalar parameter '%s' needs a value: %s=...\n", info->name, info->name);
                return EXIT_USER;
            }
            b->used = true;
            plan->scalars[i].kind = info->kind;
            plan->scalars[i].i = (int64_t)b->value;
            plan->scalars[i].f = b->value;
            continue;
        }
        plan->numel[i] = 1;
        for (int d = 0; d < info->rank; d++) {
            if (info->dim_symbols[d]) {
                Binding *b = find_binding(binds, nbinds, info->dim_symbols[d]);
                if (!b) {
                    fprintf(stderr, "tilec: size '%s' of tensor '%s' needs a value: %s=...\n", info->dim_symbols[d],
                            info->name, info->dim_symbols[d]);
                    return EXIT_USER;
                }
                b->used = true;
                plan->shape[i][d] = (int64_t)b->value;
            } else {
                plan->shape[i][d] = info->dim_sizes[d];
            }
            plan->numel[i] *= plan->shape[i][d];
        }
        int64_t n = plan->numel[i];
        plan->before[i] = malloc(sizeof(double) * (size_t)(n + 1));
        unsigned kind = info->dtype >> 24, bits = (info->dtype >> 16) & 0xff;
        for (int64_t e = 0; e < n; e++) {
            double u = rng_uniform();
            if (kind == TILE_DTYPE_FLOAT_KIND) plan->before[i][e] = 2 * u - 1;
            else if (kind == TILE_DTYPE_BOOL_KIND) plan->before[i][e] = u < 0.5;
            else plan->before[i][e] = floor(u * (double)(bits < 5 ? (1 << (bits - (kind == TILE_DTYPE_INT_KIND))) : 16));
        }
        /* Round to the element type, so that both devices and the summary see the same input. */
        void *packed = malloc(tile_dtype_bytes(info->dtype, n) + 1);
        tile_pack(info->dtype, plan->before[i], n, packed);
        tile_unpack(info->dtype, packed, n, plan->before[i]);
        free(packed);
    }
    for (int i = 0; i < nbinds; i++)
        if (!binds[i].used) {
            fprintf(stderr, "tilec: '%s' is neither a size nor a scalar parameter of '%s'\n", binds[i].name, kernel_name);
            return EXIT_USAGE;
        }
    return 0;
}

/* Runs k on ctx with the plan's inputs; after[i] receives every tensor's contents afterwards. */
static int run_plan(tile_context *ctx, tile_kernel *k, const RunPlan *plan, double **after) {
    int np = plan->nparams, rc = 0;
    tile_status st;
    tile_arg *args = calloc((size_t)np + 1, sizeof *args);
    for (int i = 0; i < np && !rc; i++) {
        if (plan->info[i].kind != TILE_ARG_TENSOR) {
            args[i] = plan->scalars[i];
            continue;
        }
        tile_dtype dt = plan->info[i].dtype;
        size_t bytes = tile_dtype_bytes(dt, plan->numel[i]);
        void *dev = NULL, *host = malloc(bytes + 1);
        if ((st = tile_alloc(ctx, bytes, &dev)) != TILE_OK) rc = report(ctx, st);
        tile_pack(dt, plan->before[i], plan->numel[i], host);
        if (!rc && (st = tile_copy_to_device(ctx, dev, host, bytes)) != TILE_OK) rc = report(ctx, st);
        free(host);
        args[i].kind = TILE_ARG_TENSOR;
        args[i].tensor = tile_tensor_contiguous(dt, dev, plan->info[i].rank, plan->shape[i]);
    }
    if (!rc && (st = tile_kernel_launch(k, args, (size_t)np, NULL)) != TILE_OK) rc = report(ctx, st);
    if (!rc && (st = tile_synchronize(ctx)) != TILE_OK) rc = report(ctx, st);
    for (int i = 0; !rc && i < np; i++) {
        if (plan->info[i].kind != TILE_ARG_TENSOR) continue;
        tile_dtype dt = plan->info[i].dtype;
        size_t bytes = tile_dtype_bytes(dt, plan->numel[i]);
        void *host = malloc(bytes + 1);
        after[i] = malloc(sizeof(double) * (size_t)(plan->numel[i] + 1));
        if ((st = tile_copy_to_host(ctx, host, args[i].tensor.data, bytes)) != TILE_OK) rc = report(ctx, st);
        else tile_unpack(dt, host, plan->numel[i], after[i]);
        free(host);
    }
    for (int i = 0; i < np; i++)
        if (args[i].kind == TILE_ARG_TENSOR && args[i].tensor.data) tile_free(ctx, args[i].tensor.data);
    free(args);
    return rc;
}

static void shape_text(const RunPlan *plan, int i, char *buf, size_t cap) {
    int used = 0;
    buf[0] = 0;
    for (int d = 0; d < plan->info[i].rank && (size_t)used < cap; d++)
        used += snprintf(buf + used, cap - (size_t)used, "%s%" PRId64, d ? ", " : "", plan->shape[i][d]);
}

static void print_summary(const RunPlan *plan, double **after) {
    for (int i = 0; i < plan->nparams; i++) {
        if (plan->info[i].kind != TILE_ARG_TENSOR) continue;
        int64_t n = plan->numel[i];
        double lo = INFINITY, hi = -INFINITY, sum = 0;
        int64_t changed = 0, nans = 0;
        for (int64_t e = 0; e < n; e++) {
            double v = after[i][e];
            if (isnan(v)) {
                nans++;
            } else {
                lo = fmin(lo, v);
                hi = fmax(hi, v);
                sum += v;
            }
            if (!(v == plan->before[i][e] || (isnan(v) && isnan(plan->before[i][e])))) changed++;
        }
        char dn[24], shape[128];
        shape_text(plan, i, shape, sizeof shape);
        printf("  %-10s %s[%s]  changed %" PRId64 "/%" PRId64 "  min %.6g  max %.6g  mean %.6g%s\n", plan->info[i].name,
               dtype_name(plan->info[i].dtype, dn), shape, changed, n, n ? lo : 0.0, n ? hi : 0.0,
               n ? sum / (double)(n - nans ? n - nans : 1) : 0.0, nans ? "  (NaN present)" : "");
    }
}

/* The tolerance of --compare for an element type: |cuda - vm| <= tol * (1 + |vm|). Integers and
 * bool must match exactly; floats get a few units in the last place of their format, looser
 * than one rounding because the two devices may sum and fuse in different orders. */
static double compare_tolerance(tile_dtype d) {
    unsigned kind = d >> 24, man = d & 0xff;
    if (kind != TILE_DTYPE_FLOAT_KIND) return 0;
    if (man >= 52) return 1e-9;
    if (man >= 23) return 2e-5;
    return ldexp(4.0, -(int)man); /* f16: 4e-3, bf16: 3e-2, f8e4m3: 0.5 */
}

/* Prints per tensor the largest absolute and relative difference; 1 when one is too large. */
static int print_comparison(const RunPlan *plan, double **vm, double **gpu) {
    int rc = 0;
    printf("%-10s %-22s %12s %12s %10s  %s\n", "tensor", "type[shape]", "max |diff|", "max rel", "tolerance", "verdict");
    for (int i = 0; i < plan->nparams; i++) {
        if (plan->info[i].kind != TILE_ARG_TENSOR) continue;
        double tol = compare_tolerance(plan->info[i].dtype), max_abs = 0, max_rel = 0;
        int64_t bad = 0, worst = -1;
        for (int64_t e = 0; e < plan->numel[i]; e++) {
            double a = vm[i][e], b = gpu[i][e];
            if (isnan(a) && isnan(b)) continue;
            double diff = isnan(a) || isnan(b) ? INFINITY : a == b ? 0 : fabs(a - b);
            double rel = diff == 0 ? 0 : diff / fmax(fabs(a), 1e-30);
            if (diff > max_abs) {
                max_abs = diff;
                worst = e;
            }
            max_rel = fmax(max_rel, rel);
            if (!(diff <= tol * (1 + fabs(a)))) bad++;
        }
        char dn[24], shape[96], desc[140];
        shape_text(plan, i, shape, sizeof shape);
        snprintf(desc, sizeof desc, "%s[%s]", dtype_name(plan->info[i].dtype, dn), shape);
        printf("%-10s %-22s %12.4g %12.4g %10.2g  ", plan->info[i].name, desc, max_abs, max_rel, tol);
        if (bad) {
            printf("MISMATCH: %" PRId64 " of %" PRId64 " elements; worst at %" PRId64 ": vm %.9g, cuda %.9g\n", bad,
                   plan->numel[i], worst, vm[i][worst], gpu[i][worst]);
            rc = EXIT_USER;
        } else {
            printf("ok\n");
        }
    }
    return rc;
}

static int cmd_run(int argc, char **argv) {
    tile_constant defs[MAX_DEFS];
    Binding binds[MAX_DEFS];
    int ndefs = 0, nbinds = 0;
    const char *file = NULL, *kernel_name = NULL;
    tile_device_kind device = TILE_DEVICE_DEFAULT;
    bool compare = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-D") == 0 && i + 1 < argc) {
            if (ndefs == MAX_DEFS || !parse_define(argv[++i], &defs[ndefs])) {
                free_defines(defs, ndefs); /* no leak on the way out */
                return ndefs == MAX_DEFS ? usage_error("too many -D (at most %s)", "64") : usage_error("bad -D '%s'", argv[i]);
            }
            ndefs++;
        } else if (strcmp(a, "-k") == 0 && i + 1 < argc) {
            kernel_name = argv[++i];
        } else if (strcmp(a, "--seed") == 0 && i + 1 < argc) {
            rng_state = strtoull(argv[++i], NULL, 0) * 2654435761ull + 1;
        } else if (strcmp(a, "--compare") == 0) {
            compare = true;
        } else if ((strcmp(a, "--device") == 0 && i + 1 < argc) || strncmp(a, "--device=", 9) == 0) {
            const char *d = a[8] == '=' ? a + 9 : argv[++i];
            if (strcmp(d, "vm") == 0) device = TILE_DEVICE_VM;
            else if (strcmp(d, "cuda") == 0) device = TILE_DEVICE_CUDA;
            else return usage_error("unknown device '%s' (vm or cuda)", d);
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown or incomplete option '%s' for run", a);
        } else if (strchr(a, '=')) {
            tile_constant c;
            if (nbinds == MAX_DEFS) return usage_error("too many bindings (at most %s)", "64");
            if (!parse_define(a, &c) || strlen(c.name) >= 64) return usage_error("bad binding '%s'", a);
            snprintf(binds[nbinds].name, 64, "%s", c.name);
            binds[nbinds].value = c.is_float ? c.f : (double)c.i;
            binds[nbinds].used = false;
            nbinds++;
            free((char *)c.name);
        } else if (!file) {
            file = a;
        } else {
            return usage_error("run takes one FILE, found also '%s'", a);
        }
    }
    if (!file || !kernel_name) return usage_error("%s", "run needs FILE and -k KERNEL");
    if (compare && device != TILE_DEVICE_DEFAULT) return usage_error("%s", "--compare runs on both vm and cuda; drop --device");
    /* With --compare: contexts[0] is the VM (the reference), contexts[1] the GPU. */
    tile_device_kind kinds[2] = {compare ? TILE_DEVICE_VM : device, TILE_DEVICE_CUDA};
    int ndev = compare ? 2 : 1, rc = 0;
    tile_context *ctx[2] = {NULL, NULL};
    tile_program *prog[2] = {NULL, NULL};
    tile_kernel *k[2] = {NULL, NULL};
    double **after[2] = {NULL, NULL};
    RunPlan plan = {0};
    for (int d = 0; d < ndev && !rc; d++) {
        tile_status st = tile_context_create(kinds[d], 0, &ctx[d]);
        if (st != TILE_OK) {
            fprintf(stderr, "tilec: cannot open the device: %s\n", tile_context_message(NULL));
            rc = EXIT_USER;
            break;
        }
        rc = load_program(ctx[d], file, &prog[d]);
        if (!rc && (st = tile_program_get_kernel(prog[d], kernel_name, defs, (size_t)ndefs, &k[d])) != TILE_OK)
            rc = report(ctx[d], st);
    }
    if (!rc) rc = make_plan(k[0], kernel_name, binds, nbinds, &plan);
    for (int d = 0; d < ndev && !rc; d++) {
        after[d] = calloc((size_t)plan.nparams + 1, sizeof(double *));
        rc = run_plan(ctx[d], k[d], &plan, after[d]);
    }
    if (!rc && !compare) {
        printf("ran %s on %s\n", kernel_name, tile_context_device_name(ctx[0]));
        print_summary(&plan, after[0]);
    } else if (!rc) {
        printf("ran %s on %s and on %s\n", kernel_name, tile_context_device_name(ctx[0]), tile_context_device_name(ctx[1]));
        rc = print_comparison(&plan, after[0], after[1]);
    }
    for (int d = 0; d < ndev; d++) {
        for (int i = 0; after[d] && i < plan.nparams; i++) free(after[d][i]);
        free(after[d]);
        tile_program_destroy(prog[d]);
        tile_context_destroy(ctx[d]);
    }
    plan_free(&plan);
    free_defines(defs, ndefs);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("tilec %s\n", tile_version());
        return 0;
    }
    if (strcmp(cmd, "--list-passes") == 0) {
        fputs(tile_pass_names(), stdout);
        return 0;
    }
    if (strcmp(cmd, "check") == 0) return cmd_check(argc - 2, argv + 2);
    if (strcmp(cmd, "build") == 0) return cmd_build(argc - 2, argv + 2);
    if (strcmp(cmd, "run") == 0) return cmd_run(argc - 2, argv + 2);
    return usage_error("unknown command '%s'", cmd);
}
