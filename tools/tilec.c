/*
 * tilec: the command-line driver of tile, a thin client of the public API (include/tile).
 *
 *   tilec check FILE...                         parse and check every kernel (with defaults)
 *   tilec build [--emit ir|llvm|ptx|cubin] [--arch sm_80|sm_90a] [-k KERNEL] [-D NAME=VALUE]...
 *               [--dump-after=PASS] [-o OUT] FILE
 *   tilec build --emit c-header -o NAME.h [--arch A[,B]]... [-k KERNEL]... [-D NAME=VALUE]...
 *               [--prefix ID] [--require-images] FILE        (writes NAME.h and NAME.c)
 *   tilec run FILE -k KERNEL [--device vm|cuda | --compare] [-D NAME=VALUE]... [NAME=VALUE]...
 *             [--seed N] [--in NAME=FILE.npy]... [--out DIR] [--verbose] (run.c)
 *
 * Exit codes: 0 success, 1 an error in the user's input (diagnostics on stderr) or a --compare
 * mismatch, 2 bad usage, 3 a device or backend failure (or a kernel it does not support yet),
 * 4 a compiler bug ("internal error in pass X: ...", TILE_ERROR_INTERNAL).
 * `run` binds symbolic sizes and scalar parameters from NAME=VALUE, reads tensors from .npy files
 * (--in) and fills the others with random data, launches, prints a summary of every tensor
 * afterwards and, with --out, writes each as DIR/NAME.npy.
 * `run --compare` runs the same inputs on the VM (the reference) and on the GPU and prints the
 * largest differences per tensor against a tolerance that depends on the element type.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tilec.h"

enum { MAX_ARCHS = 8, MAX_KERNELS = 64 };

static const char *usage_text =
    "usage: tilec <command> [options]\n"
    "\n"
    "commands:\n"
    "  check FILE...                 check every kernel of each file (constants take their defaults)\n"
    "  build [options] FILE          compile a kernel and print or write its IR or GPU code\n"
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
    "                                llvm, ptx or cubin the default is every kernel of the file\n"
    "                                in one module; with c-header repeatable (default: every kernel)\n"
    "      -D NAME=VALUE             set a compile-time constant (repeatable)\n"
    "      --dump-after=PASS         print the IR after this pass instead (see --list-passes)\n"
    "      --time                    print on stderr how long the frontend, the passes, LLVM and\n"
    "                                ptxas (or nvJitLink) took\n"
    "      -o OUT                    write to OUT instead of stdout\n"
    "  run FILE -k KERNEL [options] [NAME=VALUE...]\n"
    "                                run a kernel on random (or --in) inputs and summarize every\n"
    "                                tensor; NAME=VALUE binds symbolic sizes (M=512) and scalar\n"
    "                                parameters (64-bit integers exactly)\n"
    "      --device vm|cuda          where to run (default: $TILE_DEVICE, else cuda if present, else vm)\n"
    "      -D NAME=VALUE             set a compile-time constant (repeatable)\n"
    "      --seed N                  random seed (default 1)\n"
    "      --in NAME=FILE.npy        tensor NAME from a numpy file (its shape binds NAME's sizes;\n"
    "                                the dtype must match: f32 '<f4', i64 '<i8', bool '|b1'; bf16,\n"
    "                                fp8 '<f4'; other integer widths the next numpy integer)\n"
    "      --out DIR                 after the run, write every tensor as DIR/NAME.npy\n"
    "      --compare                 run on the vm and on cuda with the same inputs and print, per\n"
    "                                tensor, the largest absolute and relative difference; exit 1\n"
    "                                when one exceeds the tolerance of its type (integers: exact)\n"
    "      --verbose, -v             say on stderr how an autotune(...) kernel chose its candidate\n"
    "                                (the bucket, each candidate's time, whether from the cache)\n"
    "                                and, on cuda, the launch facts of the variant it compiled\n"
    "  --list-passes                 print the pass pipeline\n"

    "  --help, --version\n"
    "\n"
    "FILE is a .tile source, or a .ir file holding IR as --emit ir prints it (docs/IR.md): it takes\n"
    "no -D constants, its parameters are named arg0, arg1, ..., and c-header needs a .tile source.\n"
    "\n"
    "exit codes: 0 success, 1 error in the input (or --compare found a difference), 2 bad usage,\n"
    "            3 the device or the backend failed, or does not support the kernel yet,\n"
    "            4 a compiler bug (internal error: please report it with the input)\n";

int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "tilec: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(run 'tilec --help' for usage)\n");
    return EXIT_USAGE;
}

const char *parse_constant(const char *text, tile_constant *c) {
    const char *eq = strchr(text, '=');
    memset(c, 0, sizeof *c);
    if (!eq || eq == text || !eq[1]) return "expected NAME=VALUE";
    const char *v = eq + 1;
    char *end;
    if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0) {
        c->i = v[0] == 't';
    } else {
        errno = 0;
        long long i = strtoll(v, &end, 0);
        if (*end == 0 && end != v) {
            if (errno == ERANGE) return "the integer is out of the range of int64";
            c->i = i;
        } else {
            errno = 0;
            double f = strtod(v, &end);
            if (*end != 0 || end == v) return "the value is not an integer, a float, true or false";
            if (errno == ERANGE && isinf(f)) return "the float is out of range";
            c->is_float = 1;
            c->f = f;
        }
    }
    size_t n = (size_t)(eq - text);
    char *name = malloc(n + 1);
    if (!name) return "out of memory";
    memcpy(name, text, n);
    name[n] = 0;
    c->name = name;
    return NULL;
}

bool defines_add(Defines *d, const char *text) {
    tile_constant c;
    const char *why = parse_constant(text, &c);
    if (why) {
        fprintf(stderr, "tilec: bad -D '%s': %s\n(run 'tilec --help' for usage)\n", text, why);
        return false;
    }
    if (d->n == d->cap) {
        int cap = d->cap ? 2 * d->cap : 16;
        tile_constant *items = realloc(d->items, (size_t)cap * sizeof *items);
        if (!items) {
            free((char *)c.name);
            fprintf(stderr, "tilec: out of memory\n");
            return false;
        }
        d->items = items;
        d->cap = cap;
    }
    d->items[d->n++] = c;
    return true;
}

void defines_free(Defines *d) {
    for (int i = 0; i < d->n; i++) free((char *)d->items[i].name);
    free(d->items);
    memset(d, 0, sizeof *d);
}

int report(tile_context *ctx, tile_status st) {
    const char *msg = tile_context_message(ctx);
    fprintf(stderr, "%s", *msg ? msg : tile_status_name(st));
    if (*msg && msg[strlen(msg) - 1] != '\n') fputc('\n', stderr);
    if (st == TILE_ERROR_INTERNAL) return EXIT_INTERNAL;
    return st == TILE_ERROR_INVALID_ARGUMENT || st == TILE_ERROR_COMPILE || st == TILE_ERROR_NOT_FOUND ? EXIT_USER
                                                                                                      : EXIT_DEVICE;
}

int load_program(tile_context *ctx, const char *path, tile_program **prog) {
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
static int check_files(int argc, char **argv, Defines *defs, const char **files) {
    int nfiles = 0, rc = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-D") == 0 && i + 1 < argc) {
            if (!defines_add(defs, argv[++i])) return EXIT_USAGE;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return usage_error("unknown option '%s' for check", argv[i]);
        } else {
            files[nfiles++] = argv[i];
        }
    }
    if (nfiles == 0) return usage_error("%s", "check needs at least one FILE");
    tile_context *ctx;
    if (tile_context_create(TILE_DEVICE_VM, 0, &ctx) != TILE_OK) return EXIT_DEVICE;
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
            tile_status st = tile_program_get_kernel(prog, tile_program_kernel_name(prog, k), defs->items, (size_t)defs->n,
                                                    &kernel);
            if (st != TILE_OK) {
                int r = report(ctx, st); /* every failing kernel's diagnostics, not only the first's */
                rc = rc ? rc : r;
            }
        }
        tile_program_destroy(prog);
    }
    tile_context_destroy(ctx);
    return rc;
}

static int cmd_check(int argc, char **argv) {
    Defines defs = {0};
    const char **files = malloc(sizeof *files * (size_t)(argc + 1));
    int rc = files ? check_files(argc, argv, &defs, files) : EXIT_DEVICE;
    free(files);
    defines_free(&defs);
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

static double monotonic_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* --time: where the compile went (stderr), from tile_compile_times. */
static void print_times(double total) {
    tile_compile_times t;
    tile_compile_times_get(&t);
    double ms = 1e3;
    fprintf(stderr,
            "tilec: time: frontend %.2f ms (parse %.2f, lower %.2f), passes %.2f ms, LLVM %.2f ms (codegen %.2f, "
            "IR pipeline %.2f, NVPTX to PTX text %.2f), ptxas/nvJitLink %.2f ms; total %.2f ms\n",
            (t.parse + t.lower) * ms, t.parse * ms, t.lower * ms, t.passes * ms, (t.codegen + t.llvm) * ms,
            t.codegen * ms, t.llvm_optimize * ms, (t.llvm - t.llvm_optimize) * ms, t.assemble * ms, total * ms);
}

static int build_file(int argc, char **argv, Defines *defines) {
    int nkernels = 0, narchs = 0;
    const char *file = NULL, *kernel = NULL, *out = NULL, *dump_after = NULL, *emit = "ir", *arch = NULL;
    const char *prefix = NULL, *kernels[MAX_KERNELS];
    char archs[MAX_ARCHS][16];
    bool require_images = false, show_time = false;
    int num_warps = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-D") == 0 && i + 1 < argc) {
            if (!defines_add(defines, argv[++i])) return EXIT_USAGE;
        } else if (strcmp(a, "-k") == 0 && i + 1 < argc) {
            kernel = argv[++i];
            if (nkernels == MAX_KERNELS) return usage_error("too many -k (at most %s)", "64");
            kernels[nkernels++] = kernel;
        } else if (strcmp(a, "--prefix") == 0 && i + 1 < argc) {
            prefix = argv[++i];
        } else if (strcmp(a, "--require-images") == 0) {
            require_images = true;
        } else if (strcmp(a, "--time") == 0) {
            show_time = true;
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
    const tile_constant *defs = defines->items;
    int ndefs = defines->n;
    double start = monotonic_now();
    tile_context *ctx;
    if (tile_context_create(TILE_DEVICE_VM, 0, &ctx) != TILE_OK) return EXIT_DEVICE;
    tile_program *prog;
    int rc = load_program(ctx, file, &prog);
    if (!rc && c_header) {
        rc = build_c_header(ctx, prog, out, prefix, kernels, nkernels, archs, narchs, num_warps, require_images, defs,
                            ndefs);
        tile_program_destroy(prog);
    } else if (!rc) {
        bool gpu_form = kind == TILE_EMIT_LLVM || kind == TILE_EMIT_PTX || kind == TILE_EMIT_CUBIN;
        if (!kernel && gpu_form && tile_program_num_kernels(prog) > 1) {
            /* every kernel of the file in one module, as nvcc makes one per .cu file */
        } else if (!kernel) {
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
    if (show_time && rc == 0) print_times(monotonic_now() - start);
    return rc;
}

static int cmd_build(int argc, char **argv) {
    Defines defs = {0};
    int rc = build_file(argc, argv, &defs);
    defines_free(&defs);
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
