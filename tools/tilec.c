/*
 * tilec: the command-line driver of tile, a thin client of the public API (include/tile).
 *
 *   tilec check FILE...                         parse and check every kernel (with defaults)
 *   tilec build [--emit ir] [-k KERNEL] [-D NAME=VALUE]... [--dump-after=PASS] [-o OUT] FILE
 *   tilec run FILE -k KERNEL [--device vm|cuda] [-D NAME=VALUE]... [NAME=VALUE]... [--seed N]
 *
 * Exit codes: 0 success, 1 an error in the user's input (diagnostics on stderr), 2 bad usage.
 * `run` binds symbolic sizes and scalar parameters from NAME=VALUE, fills every tensor with
 * random data, launches, and prints a summary of every tensor afterwards (a debugging aid).
 */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/tile.h"

enum { EXIT_USER = 1, EXIT_USAGE = 2, MAX_DEFS = 64 };

static const char *usage_text =
    "usage: tilec <command> [options]\n"
    "\n"
    "commands:\n"
    "  check FILE...                 check every kernel of each file (constants take their defaults)\n"
    "  build [options] FILE          compile one kernel and print or write its IR\n"
    "      --emit ir                 what to emit (default: ir)\n"
    "      -k KERNEL                 the kernel (default: the only kernel of the file)\n"
    "      -D NAME=VALUE             set a compile-time constant (repeatable)\n"
    "      --dump-after=PASS         print the IR after this pass instead (see --list-passes)\n"
    "      -o OUT                    write to OUT instead of stdout\n"
    "  run FILE -k KERNEL [options] [NAME=VALUE...]\n"
    "                                run a kernel on random inputs and summarize every tensor;\n"
    "                                NAME=VALUE binds symbolic sizes (M=512) and scalar parameters\n"
    "      --device vm|cuda          where to run (default: $TILE_DEVICE, else cuda if present, else vm)\n"
    "      -D NAME=VALUE             set a compile-time constant (repeatable)\n"
    "      --seed N                  random seed (default 1)\n"
    "  --list-passes                 print the pass pipeline\n"
    "  --help, --version\n"
    "\n"
    "exit codes: 0 success, 1 error in the input, 2 bad usage\n";

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
            if (ndefs == MAX_DEFS || !parse_define(argv[++i], &defs[ndefs])) return usage_error("bad -D '%s'", argv[i]);
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
static int cmd_build(int argc, char **argv) {
    tile_constant defs[MAX_DEFS];
    int ndefs = 0;
    const char *file = NULL, *kernel = NULL, *out = NULL, *dump_after = NULL, *emit = "ir";
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-D") == 0 && i + 1 < argc) {
            if (ndefs == MAX_DEFS || !parse_define(argv[++i], &defs[ndefs])) return usage_error("bad -D '%s'", argv[i]);
            ndefs++;
        } else if (strcmp(a, "-k") == 0 && i + 1 < argc) {
            kernel = argv[++i];
        } else if (strcmp(a, "-o") == 0 && i + 1 < argc) {
            out = argv[++i];
        } else if (strcmp(a, "--emit") == 0 && i + 1 < argc) {
            emit = argv[++i];
        } else if (strncmp(a, "--emit=", 7) == 0) {
            emit = a + 7;
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
    if (strcmp(emit, "ir") != 0) return usage_error("--emit %s: this build emits ir only", emit);
    tile_context *ctx;
    if (tile_context_create(TILE_DEVICE_VM, 0, &ctx) != TILE_OK) return 3;
    tile_program *prog;
    int rc = load_program(ctx, file, &prog);
    if (!rc) {
        if (!kernel) {
            if (tile_program_num_kernels(prog) > 1) {
                fprintf(stderr, "tilec: %s has %d kernels; choose one with -k\n", file, tile_program_num_kernels(prog));
                rc = EXIT_USAGE;
            }
            kernel = tile_program_kernel_name(prog, 0);
        }
        char *text = NULL;
        size_t len = 0;
        tile_emit_options opt = {.dump_after = dump_after};
        tile_status st = rc ? TILE_OK : tile_program_emit(prog, kernel, defs, (size_t)ndefs, TILE_EMIT_IR, &opt, &text, &len);
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

static int cmd_run(int argc, char **argv) {
    tile_constant defs[MAX_DEFS];
    Binding binds[MAX_DEFS];
    int ndefs = 0, nbinds = 0;
    const char *file = NULL, *kernel_name = NULL;
    tile_device_kind device = TILE_DEVICE_DEFAULT;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-D") == 0 && i + 1 < argc) {
            if (ndefs == MAX_DEFS || !parse_define(argv[++i], &defs[ndefs])) return usage_error("bad -D '%s'", argv[i]);
            ndefs++;
        } else if (strcmp(a, "-k") == 0 && i + 1 < argc) {
            kernel_name = argv[++i];
        } else if (strcmp(a, "--seed") == 0 && i + 1 < argc) {
            rng_state = strtoull(argv[++i], NULL, 0) * 2654435761ull + 1;
        } else if ((strcmp(a, "--device") == 0 && i + 1 < argc) || strncmp(a, "--device=", 9) == 0) {
            const char *d = a[8] == '=' ? a + 9 : argv[++i];
            if (strcmp(d, "vm") == 0) device = TILE_DEVICE_VM;
            else if (strcmp(d, "cuda") == 0) device = TILE_DEVICE_CUDA;
            else return usage_error("unknown device '%s' (vm or cuda)", d);
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown or incomplete option '%s' for run", a);
        } else if (strchr(a, '=')) {
            tile_constant c;
            if (nbinds == MAX_DEFS || !parse_define(a, &c) || strlen(c.name) >= 64) return usage_error("bad binding '%s'", a);
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
    tile_context *ctx;
    tile_status st = tile_context_create(device, 0, &ctx);
    if (st != TILE_OK) {
        fprintf(stderr, "tilec: cannot create the device: %s\n", tile_context_message(NULL));
        return EXIT_USER;
    }
    tile_program *prog = NULL;
    tile_kernel *k = NULL;
    int rc = load_program(ctx, file, &prog);
    if (!rc && (st = tile_program_get_kernel(prog, kernel_name, defs, (size_t)ndefs, &k)) != TILE_OK) rc = report(ctx, st);
    int np = k ? tile_kernel_num_params(k) : 0;
    tile_arg *args = calloc((size_t)np + 1, sizeof(tile_arg));
    double **before = calloc((size_t)np + 1, sizeof(double *));
    int64_t *numel = calloc((size_t)np + 1, sizeof(int64_t));
    for (int i = 0; !rc && i < np; i++) {
        tile_param_info info;
        tile_kernel_param(k, i, &info);
        if (info.kind != TILE_ARG_TENSOR) {
            Binding *b = find_binding(binds, nbinds, info.name);
            if (!b) {
                fprintf(stderr, "tilec: scalar parameter '%s' needs a value: %s=...\n", info.name, info.name);
                rc = EXIT_USER;
                break;
            }
            b->used = true;
            args[i].kind = info.kind;
            args[i].i = (int64_t)b->value;
            args[i].f = b->value;
            continue;
        }
        int64_t shape[TILE_MAX_RANK];
        numel[i] = 1;
        for (int d = 0; d < info.rank; d++) {
            if (info.dim_symbols[d]) {
                Binding *b = find_binding(binds, nbinds, info.dim_symbols[d]);
                if (!b) {
                    fprintf(stderr, "tilec: size '%s' of tensor '%s' needs a value: %s=...\n", info.dim_symbols[d],
                            info.name, info.dim_symbols[d]);
                    rc = EXIT_USER;
                    break;
                }
                b->used = true;
                shape[d] = (int64_t)b->value;
            } else {
                shape[d] = info.dim_sizes[d];
            }
            numel[i] *= shape[d];
        }
        if (rc) break;
        size_t bytes = tile_dtype_bytes(info.dtype, numel[i]);
        void *dev = NULL;
        if ((st = tile_alloc(ctx, bytes, &dev)) != TILE_OK) {
            rc = report(ctx, st);
            break;
        }
        before[i] = malloc(sizeof(double) * (size_t)(numel[i] + 1));
        unsigned kind = info.dtype >> 24, bits = (info.dtype >> 16) & 0xff;
        for (int64_t e = 0; e < numel[i]; e++) {
            double u = rng_uniform();
            if (kind == TILE_DTYPE_FLOAT_KIND) before[i][e] = 2 * u - 1;
            else if (kind == TILE_DTYPE_BOOL_KIND) before[i][e] = u < 0.5;
            else before[i][e] = floor(u * (double)(bits < 5 ? (1 << (bits - (kind == TILE_DTYPE_INT_KIND))) : 16));
        }
        void *host = malloc(bytes + 1);
        tile_pack(info.dtype, before[i], numel[i], host);
        tile_copy_to_device(ctx, dev, host, bytes);
        tile_unpack(info.dtype, host, numel[i], before[i]);
        free(host);
        args[i].kind = TILE_ARG_TENSOR;
        args[i].tensor = tile_tensor_contiguous(info.dtype, dev, info.rank, shape);
    }
    for (int i = 0; !rc && i < nbinds; i++)
        if (!binds[i].used) {
            fprintf(stderr, "tilec: '%s' is neither a size nor a scalar parameter of '%s'\n", binds[i].name, kernel_name);
            rc = EXIT_USAGE;
        }
    if (!rc && (st = tile_kernel_launch(k, args, (size_t)np, NULL)) != TILE_OK) rc = report(ctx, st);
    if (!rc) tile_synchronize(ctx);
    if (!rc) printf("ran %s on %s\n", kernel_name, tile_context_device_name(ctx));
    for (int i = 0; !rc && i < np; i++) {
        if (args[i].kind != TILE_ARG_TENSOR) continue;
        tile_param_info info;
        tile_kernel_param(k, i, &info);
        size_t bytes = tile_dtype_bytes(info.dtype, numel[i]);
        void *host = malloc(bytes + 1);
        double *after = malloc(sizeof(double) * (size_t)(numel[i] + 1));
        tile_copy_to_host(ctx, host, args[i].tensor.data, bytes);
        tile_unpack(info.dtype, host, numel[i], after);
        double lo = INFINITY, hi = -INFINITY, sum = 0;
        int64_t changed = 0, nans = 0;
        for (int64_t e = 0; e < numel[i]; e++) {
            double v = after[e];
            if (isnan(v)) {
                nans++;
            } else {
                lo = fmin(lo, v);
                hi = fmax(hi, v);
                sum += v;
            }
            if (!(v == before[i][e] || (isnan(v) && isnan(before[i][e])))) changed++;
        }
        char dn[24], shape[128];
        int used = 0;
        for (int d = 0; d < info.rank; d++)
            used += snprintf(shape + used, sizeof shape - (size_t)used, "%s%" PRId64, d ? ", " : "", args[i].tensor.shape[d]);
        printf("  %-10s %s[%s]  changed %" PRId64 "/%" PRId64 "  min %.6g  max %.6g  mean %.6g%s\n", info.name,
               dtype_name(info.dtype, dn), shape, changed, numel[i], numel[i] ? lo : 0.0, numel[i] ? hi : 0.0,
               numel[i] ? sum / (double)(numel[i] - nans ? numel[i] - nans : 1) : 0.0, nans ? "  (NaN present)" : "");
        free(host);
        free(after);
    }
    for (int i = 0; i < np; i++) {
        if (args[i].kind == TILE_ARG_TENSOR) tile_free(ctx, args[i].tensor.data);
        free(before[i]);
    }
    free(args);
    free(before);
    free(numel);
    tile_program_destroy(prog);
    tile_context_destroy(ctx);
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
