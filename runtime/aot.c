/*
 * aot.c: ahead-of-time compilation: the C code that `tilec build --emit c-header` writes
 * (tile_program_emit_c). See docs/AOT.md for how it is used.
 *
 * For each kernel asked for, the kernel is specialized by the constants it declares (the -D
 * values), lowered and optimized exactly as the runtime would (rt_compile), and compiled for
 * each architecture into an image: a cubin when ptxas or nvJitLink is present, else PTX, which
 * the driver compiles at load (rt_backend_image). Two texts come out:
 *
 *   the header   one typed launch function per kernel, `<prefix>_<kernel>_launch(ctx, params...,
 *                stream)` (tensors as tile_tensor, integer and bool scalars as int64_t, float
 *                scalars as double), and the kernel's tile_aot_kernel description;
 *   the source   the .tile source as a byte array (one per file, shared by its kernels), the
 *                constants, one byte array per image, a tile_image table, the descriptions, and
 *                the launch functions, which pack the arguments into tile_args and call
 *                tile_context_aot_kernel + tile_kernel_launch.
 *
 * Byte arrays rather than string literals keep the output within what ISO C requires of a
 * compiler (string literals longer than 4095 bytes are a -Wpedantic warning) and valid C++
 * (unsigned char, no narrowing). Parameter names that are C or C++ keywords, or clash with the
 * launch function's own names, get a trailing underscore.
 */
#include "runtime.h"

#include <string.h>

typedef struct AotKernel {
    const char *name;
    ConstBinding *consts;        /* the constants it declares, sorted by name */
    size_t nconsts;
    IrModule *module;
    IrFunction *function;
    Strbuf images[8];            /* per arch; len 0: none */
    unsigned threads[8], shared_bytes[8];
} AotKernel;

enum { AOT_MAX_ARCHS = 8 };

static const char *const reserved_words[] = {
    /* the launch function's own names */
    "ctx", "stream", "kernel", "args", "status",
    /* C11 */
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum", "extern",
    "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return", "short", "signed",
    "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void", "volatile", "while",
    /* C++ */
    "alignas", "alignof", "and", "asm", "bool", "catch", "class", "constexpr", "delete", "explicit", "export",
    "false", "friend", "mutable", "namespace", "new", "noexcept", "not", "nullptr", "operator", "or", "private",
    "protected", "public", "template", "this", "throw", "true", "try", "typeid", "typename", "using", "virtual",
    "xor", "concept", "requires",
};

/* A C identifier for a parameter name. */
static void param_ident(const char *name, Strbuf *out) {
    sb_puts(out, name);
    for (size_t i = 0; i < sizeof reserved_words / sizeof *reserved_words; i++)
        if (strcmp(name, reserved_words[i]) == 0) sb_puts(out, "_");
}

/* The default prefix: the file name without directories and extensions, as an identifier. */
static void default_prefix(const char *path, Strbuf *out) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strcspn(base, ".");
    if (n == 0 || (base[0] >= '0' && base[0] <= '9')) sb_puts(out, "tile_");
    for (size_t i = 0; i < n; i++) {
        char c = base[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        sb_printf(out, "%c", ok ? c : '_');
    }
}

static bool valid_ident(const char *s) {
    if (!*s || (*s >= '0' && *s <= '9')) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

static const AstNode *find_kernel(const AstFile *ast, const char *name) {
    for (uint32_t i = 0; i < ast->decls.len; i++)
        if (ast->decls.items[i]->kind == AST_KERNEL && strcmp(ast->decls.items[i]->name, name) == 0)
            return ast->decls.items[i];
    return NULL;
}

static bool declares(const AstNode *k, const char *constant) {
    for (uint32_t i = 0; k->const_params && i < k->const_params->len; i++)
        if (strcmp(k->const_params->items[i]->name, constant) == 0) return true;
    return false;
}

static int compare_bindings(const void *a, const void *b) {
    return strcmp(((const ConstBinding *)a)->name, ((const ConstBinding *)b)->name);
}

static void emit_bytes(Strbuf *out, const char *name, const unsigned char *data, size_t len, bool nul) {
    sb_printf(out, "static const unsigned char %s[%zu] = {", name, len + (nul ? 1 : 0));
    for (size_t i = 0; i < len; i++) sb_printf(out, "%s0x%02x,", i % 16 ? " " : "\n    ", data[i]);
    if (nul) sb_puts(out, len % 16 ? " 0x00" : "\n    0x00");
    sb_puts(out, "\n};\n");
}

/* "x: tensor<f32>[M, N], n: i32" */
static void signature_text(const IrFunction *f, Strbuf *out) {
    for (uint32_t i = 0; i < f->nparams; i++) {
        const IrType *t = f->body->args[i]->type;
        char buf[32];
        sb_printf(out, "%s%s: ", i ? ", " : "", f->params[i].name);
        if (t->kind != TY_TENSOR) {
            sb_puts(out, elem_name(t->elem, buf));
            continue;
        }
        sb_printf(out, "tensor<%s>[", elem_name(t->elem, buf));
        for (int d = 0; d < t->rank; d++) {
            if (d) sb_puts(out, ", ");
            if (f->params[i].dims[d].symbol) sb_puts(out, f->params[i].dims[d].symbol);
            else sb_printf(out, "%lld", (long long)f->params[i].dims[d].size);
        }
        sb_puts(out, "]");
    }
}

/* "tile_status P_K_launch(tile_context *ctx, tile_tensor x, int64_t n, tile_stream *stream)" */
static void prototype(const char *prefix, const IrFunction *f, const char *kernel, Strbuf *out) {
    sb_printf(out, "tile_status %s_%s_launch(tile_context *ctx", prefix, kernel);
    for (uint32_t i = 0; i < f->nparams; i++) {
        const IrType *t = f->body->args[i]->type;
        sb_puts(out, t->kind == TY_TENSOR ? ", tile_tensor " : elem_is_float(t->elem) ? ", double " : ", int64_t ");
        param_ident(f->params[i].name, out);
    }
    sb_puts(out, ", tile_stream *stream)");
}

static void constants_text(const AotKernel *k, Strbuf *out) {
    for (size_t i = 0; i < k->nconsts; i++) {
        if (k->consts[i].is_float) sb_printf(out, "%s%s=%.17g", i ? ", " : "", k->consts[i].name, k->consts[i].f);
        else sb_printf(out, "%s%s=%lld", i ? ", " : "", k->consts[i].name, (long long)k->consts[i].i);
    }
}

static void emit_header(const char *prefix, const char *source_name, AotKernel *ks, size_t nk, const char *const *archs,
                        size_t narchs, Strbuf *h) {
    Strbuf guard = {0};
    /* The prefix and the file name: two files may share a prefix. */
    sb_printf(&guard, "TILE_AOT_%s_", prefix);
    default_prefix(source_name, &guard);
    sb_puts(&guard, "_H");
    for (size_t i = 0; i < guard.len; i++)
        if (guard.data[i] >= 'a' && guard.data[i] <= 'z') guard.data[i] = (char)(guard.data[i] - 'a' + 'A');
    sb_printf(h, "/*\n * Generated by tilec %s (--emit c-header) from %s: do not edit.\n *\n", tile_version(), source_name);
    sb_puts(h, " * One launch function per kernel: it checks the arguments, gets the kernel on ctx (loaded from\n"
               " * the embedded image that fits the GPU; compiled from the embedded source when none does and\n"
               " * libtile has the backend; interpreted on the VM) and launches it. See docs/AOT.md.\n *\n");
    for (size_t i = 0; i < nk; i++) {
        sb_printf(h, " *   %s", ks[i].name);
        if (ks[i].nconsts) {
            sb_puts(h, "<");
            constants_text(&ks[i], h);
            sb_puts(h, ">");
        }
        sb_puts(h, ":");
        size_t n = 0;
        for (size_t a = 0; a < narchs; a++) {
            if (!ks[i].images[a].len) continue;
            bool elf = ks[i].images[a].len >= 4 && memcmp(ks[i].images[a].data, "\177ELF", 4) == 0;
            sb_printf(h, " %s (%s, %u threads)", archs[a], elf ? "cubin" : "PTX", ks[i].threads[a]);
            n++;
        }
        sb_puts(h, n ? "\n" : " no image (compiled at run time)\n");
    }
    sb_printf(h, " */\n#ifndef %s\n#define %s\n\n#include <stdint.h>\n\n#include \"tile/tile.h\"\n\n", sb_str(&guard),
              sb_str(&guard));
    sb_puts(h, "#ifdef __cplusplus\nextern \"C\" {\n#endif\n");
    for (size_t i = 0; i < nk; i++) {
        sb_printf(h, "\n/* kernel %s(", ks[i].name);
        signature_text(ks[i].function, h);
        sb_puts(h, ") */\n");
        prototype(prefix, ks[i].function, ks[i].name, h);
        sb_printf(h, ";\n/* Its source, constants and images, for tile_context_aot_kernel. */\n"
                     "extern const tile_aot_kernel %s_%s_kernel;\n", prefix, ks[i].name);
    }
    sb_printf(h, "\n#ifdef __cplusplus\n}\n#endif\n#endif /* %s */\n", sb_str(&guard));
    sb_free(&guard);
}

static void emit_source(const char *prefix, const char *header_name, const SourceFile *src, const char *source_name,
                        AotKernel *ks, size_t nk, const char *const *archs, size_t narchs, Strbuf *c) {
    sb_printf(c, "/* Generated by tilec %s (--emit c-header) from %s: do not edit. */\n", tile_version(), source_name);
    sb_printf(c, "#include \"%s\"\n\n#include <string.h>\n\n", header_name);
    Strbuf name = {0};
    sb_printf(&name, "%s_source_text", prefix);
    sb_printf(c, "/* %s (%zu bytes and a NUL) */\n", source_name, src->len);
    emit_bytes(c, sb_str(&name), (const unsigned char *)src->text, src->len, true);
    for (size_t i = 0; i < nk; i++) {
        const AotKernel *k = &ks[i];
        const IrFunction *f = k->function;
        Strbuf base = {0};
        sb_printf(&base, "%s_%s", prefix, k->name);
        const char *b = sb_str(&base);
        sb_printf(c, "\n/* ---- kernel %s ---- */\n", k->name);
        if (k->nconsts) {
            sb_printf(c, "static const tile_constant %s_constants[%zu] = {\n", b, k->nconsts);
            for (size_t j = 0; j < k->nconsts; j++) {
                if (k->consts[j].is_float)
                    sb_printf(c, "    {\"%s\", 1, 0, %.17g},\n", k->consts[j].name, k->consts[j].f);
                else
                    sb_printf(c, "    {\"%s\", 0, INT64_C(%lld), 0.0},\n", k->consts[j].name, (long long)k->consts[j].i);
            }
            sb_puts(c, "};\n");
        }
        size_t nimages = 0;
        for (size_t a = 0; a < narchs; a++) {
            if (!k->images[a].len) continue;
            Strbuf arr = {0};
            sb_printf(&arr, "%s_%s", b, archs[a]);
            emit_bytes(c, sb_str(&arr), (const unsigned char *)k->images[a].data, k->images[a].len, false);
            sb_free(&arr);
            nimages++;
        }
        if (nimages) {
            sb_printf(c, "static const tile_image %s_images[%zu] = {\n", b, nimages);
            for (size_t a = 0; a < narchs; a++)
                if (k->images[a].len)
                    sb_printf(c, "    {\"%s\", %s_%s, sizeof %s_%s, %uu, %uu},\n", archs[a], b, archs[a], b, archs[a],
                              k->threads[a], k->shared_bytes[a]);
            sb_puts(c, "};\n");
        }
        sb_printf(c, "const tile_aot_kernel %s_kernel = {\n    \"%s\", (const char *)%s, %zuu, \"%s\",\n", b,
                  source_name, sb_str(&name), src->len, k->name);
        if (k->nconsts) sb_printf(c, "    %s_constants, %zuu,\n", b, k->nconsts);
        else sb_puts(c, "    NULL, 0u,\n");
        if (nimages) sb_printf(c, "    %s_images, %zuu};\n\n", b, nimages);
        else sb_puts(c, "    NULL, 0u};\n\n");
        prototype(prefix, f, k->name, c);
        sb_printf(c, " {\n    tile_kernel *kernel;\n    tile_arg args[%u];\n", f->nparams ? f->nparams : 1);
        sb_printf(c, "    tile_status status = tile_context_aot_kernel(ctx, &%s_kernel, &kernel);\n", b);
        sb_puts(c, "    if (status != TILE_OK) return status;\n    memset(args, 0, sizeof args);\n");
        for (uint32_t j = 0; j < f->nparams; j++) {
            const IrType *t = f->body->args[j]->type;
            const char *kind = t->kind == TY_TENSOR ? "TILE_ARG_TENSOR" : elem_is_float(t->elem) ? "TILE_ARG_FLOAT"
                                                                                                 : "TILE_ARG_INT";
            const char *field = t->kind == TY_TENSOR ? "tensor" : elem_is_float(t->elem) ? "f" : "i";
            sb_printf(c, "    args[%u].kind = %s;\n    args[%u].%s = ", j, kind, j, field);
            param_ident(f->params[j].name, c);
            sb_puts(c, ";\n");
        }
        sb_printf(c, "    return tile_kernel_launch(kernel, args, %uu, stream);\n}\n", f->nparams);
        sb_free(&base);
    }
    sb_free(&name);
}

tile_status tile_program_emit_c(tile_program *p, const tile_constant *constants, size_t nconstants,
                                const tile_aot_options *options, char **header, char **source, char **notes) {
    if (!p || !header || !source || (nconstants && !constants))
        return rt_fail(p ? p->ctx : NULL, TILE_ERROR_INVALID_ARGUMENT, "tile_program_emit_c: %s is NULL",
                       !p ? "the program" : !header ? "header" : !source ? "source" : "constants (with nconstants > 0)");
    *header = *source = NULL;
    if (notes) *notes = NULL;
    tile_aot_options opt;
    memset(&opt, 0, sizeof opt);
    if (options) opt = *options;
    static const char *const default_archs[] = {"sm_80", "sm_90a"};
    /* NULL or 0 means the default for both lists (tile.h), whatever the other says */
    const char *const *archs = opt.archs && opt.narchs ? opt.archs : default_archs;
    size_t narchs = opt.archs && opt.narchs ? opt.narchs : 2;
    if (narchs > AOT_MAX_ARCHS)
        return rt_fail(p->ctx, TILE_ERROR_INVALID_ARGUMENT, "at most %d architectures", AOT_MAX_ARCHS);
    for (size_t a = 0; a < narchs; a++) {
        if (!archs[a] || (strcmp(archs[a], "sm_80") != 0 && strcmp(archs[a], "sm_90a") != 0))
            return rt_fail(p->ctx, TILE_ERROR_INVALID_ARGUMENT, "unknown architecture '%s' (sm_80 or sm_90a)",
                           archs[a] ? archs[a] : "(null)");
        for (size_t b = 0; b < a; b++)
            if (strcmp(archs[a], archs[b]) == 0)
                return rt_fail(p->ctx, TILE_ERROR_INVALID_ARGUMENT, "architecture '%s' is given twice", archs[a]);
    }
    if (opt.num_warps != 0 && !ir_num_warps_valid(opt.num_warps))
        return rt_fail(p->ctx, TILE_ERROR_INVALID_ARGUMENT,
                       "num_warps %d: expected 0 (the default) or 1, 2, 4, 8, 16 or 32", opt.num_warps);
    if (p->ir)
        return rt_fail(p->ctx, TILE_ERROR_UNSUPPORTED,
                       "%s: c-header needs a .tile source; an IR program cannot be emitted ahead of time yet",
                       p->ast->source.name);
    if (!rt_program_parse(p)) return TILE_ERROR_COMPILE; /* (it said why) */
    Strbuf prefix = {0};
    if (opt.prefix) sb_puts(&prefix, opt.prefix);
    else default_prefix(p->ast->source.name, &prefix);
    if (!valid_ident(sb_str(&prefix))) {
        tile_status st = rt_fail(p->ctx, TILE_ERROR_INVALID_ARGUMENT, "prefix '%s' is not a C identifier", sb_str(&prefix));
        sb_free(&prefix);
        return st;
    }
    const char *path = p->ast->source.name;
    const char *source_name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;

    bool listed = opt.kernels && opt.nkernels;
    size_t nk = listed ? opt.nkernels : (size_t)tile_program_num_kernels(p);
    /* nk and nconstants come from the caller: a failed allocation is a status */
    AotKernel *ks = try_calloc(nk ? nk : 1, sizeof *ks);
    bool *used = nconstants == SIZE_MAX ? NULL : try_calloc(nconstants + 1, sizeof *used);
    if (!ks || !used) {
        free(ks);
        free(used);
        sb_free(&prefix);
        return rt_fail(p->ctx, TILE_ERROR_OUT_OF_MEMORY, "cannot allocate %zu kernels and %zu constants", nk, nconstants);
    }
    tile_status st = TILE_OK;
    Strbuf note = {0};
    for (size_t i = 0; i < nk && st == TILE_OK; i++) {
        const char *name = listed ? opt.kernels[i] : tile_program_kernel_name(p, (int)i);
        const AstNode *decl = name ? find_kernel(p->ast, name) : NULL;
        if (!decl) {
            st = rt_fail(p->ctx, TILE_ERROR_NOT_FOUND, "%s: no kernel named '%s'", path, name ? name : "(null)");
            break;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(ks[j].name, name) == 0) st = rt_fail(p->ctx, TILE_ERROR_INVALID_ARGUMENT, "kernel '%s' is given twice", name);
        if (st != TILE_OK) break;
        AotKernel *k = &ks[i];
        k->name = decl->name;
        k->consts = try_calloc(nconstants + 1, sizeof *k->consts);
        if (!k->consts) {
            st = rt_fail(p->ctx, TILE_ERROR_OUT_OF_MEMORY, "cannot allocate %zu constants", nconstants);
            break;
        }
        for (size_t j = 0; j < nconstants; j++) {
            if (!constants[j].name || !declares(decl, constants[j].name)) continue;
            used[j] = true;
            k->consts[k->nconsts++] = (ConstBinding){constants[j].name, constants[j].is_float != 0, constants[j].i,
                                                     constants[j].f};
        }
        qsort(k->consts, k->nconsts, sizeof *k->consts, compare_bindings);
        DiagList d = {0};
        pthread_mutex_lock(&p->lock);
        /* the target-independent IR, once; rt_backend_image runs the GPU passes per arch on a copy */
        k->module = rt_compile(p->ast, name, k->consts, k->nconsts, NULL, &d, &k->function);
        pthread_mutex_unlock(&p->lock);
        if (!k->module) st = rt_fail(p->ctx, d.internal ? TILE_ERROR_INTERNAL : TILE_ERROR_COMPILE, "%s", sb_str(&d.text));
        diag_free(&d);
        for (size_t a = 0; a < narchs && st == TILE_OK; a++) {
            Strbuf err = {0};
            tile_status ist = rt_backend_image(k->function, archs[a], opt.num_warps, &k->images[a], &k->threads[a],
                                               &k->shared_bytes[a], &err);
            if (ist == TILE_ERROR_UNSUPPORTED && !opt.require_images) {
                sb_printf(&note, "%s for %s: no image (%s)\n", name, archs[a], sb_str(&err));
                sb_clear(&k->images[a]);
            } else if (ist != TILE_OK) {
                st = rt_fail(p->ctx, ist, "%s for %s: %s", name, archs[a], sb_str(&err));
            }
            sb_free(&err);
        }
    }
    for (size_t j = 0; j < nconstants && st == TILE_OK; j++)
        if (!used[j])
            st = rt_fail(p->ctx, TILE_ERROR_INVALID_ARGUMENT, "no kernel emitted declares the constant '%s'",
                         constants[j].name ? constants[j].name : "(null)");
    if (st == TILE_OK) {
        Strbuf h = {0}, c = {0}, header_name = {0};
        if (opt.header_name) sb_puts(&header_name, opt.header_name);
        else sb_printf(&header_name, "%s.h", sb_str(&prefix));
        emit_header(sb_str(&prefix), source_name, ks, nk, archs, narchs, &h);
        emit_source(sb_str(&prefix), sb_str(&header_name), &p->ast->source, source_name, ks, nk, archs, narchs, &c);
        *header = h.data;
        *source = c.data;
        sb_free(&header_name);
        if (notes) *notes = note.data ? note.data : xstrdup("");
        else sb_free(&note);
    } else {
        sb_free(&note);
    }
    for (size_t i = 0; i < nk; i++) {
        for (size_t a = 0; a < AOT_MAX_ARCHS; a++) sb_free(&ks[i].images[a]);
        free(ks[i].consts);
        if (ks[i].module) ir_module_free(ks[i].module);
    }
    free(ks);
    free(used);
    sb_free(&prefix);
    return st;
}

/* ---- one module for every kernel (tile_program_emit with kernel NULL) ------------------------ */
tile_status rt_emit_every_kernel(tile_program *p, const tile_constant *constants, size_t nconstants,
                                 tile_emit_kind kind, const char *arch, int num_warps, Strbuf *out) {
    int nk = tile_program_num_kernels(p);
    if (nk == 0) return rt_fail(p->ctx, TILE_ERROR_NOT_FOUND, "%s: no kernel to emit", p->ast->source.name);
    if (nconstants == SIZE_MAX) return rt_fail(p->ctx, TILE_ERROR_OUT_OF_MEMORY, "cannot allocate %zu constants", nconstants);
    /* nconstants comes from the caller: a failed allocation is a status */
    ConstBinding *consts = try_calloc(nconstants + 1, sizeof *consts);
    bool *used = try_calloc(nconstants + 1, sizeof *used);
    if (!consts || !used) {
        free(consts);
        free(used);
        return rt_fail(p->ctx, TILE_ERROR_OUT_OF_MEMORY, "cannot allocate %zu constants", nconstants);
    }
    IrModule **modules = xcalloc((size_t)nk, sizeof *modules);
    const IrFunction **functions = xcalloc((size_t)nk, sizeof *functions);
    size_t n = 0;
    tile_status st = TILE_OK;
    for (int i = 0; i < nk && st == TILE_OK; i++) {
        const char *name = tile_program_kernel_name(p, i);
        bool again = false; /* a name defined twice is compiled (and reported) once */
        for (int j = 0; j < i; j++) again = again || strcmp(tile_program_kernel_name(p, j), name) == 0;
        if (again) continue;
        const AstNode *decl = find_kernel(p->ast, name);
        size_t nconsts = 0;
        for (size_t j = 0; j < nconstants; j++) {
            if (!constants[j].name || !declares(decl, constants[j].name)) continue;
            used[j] = true;
            consts[nconsts++] = (ConstBinding){constants[j].name, constants[j].is_float != 0, constants[j].i,
                                               constants[j].f};
        }
        qsort(consts, nconsts, sizeof *consts, compare_bindings);
        DiagList d = {0};
        IrFunction *f = NULL;
        pthread_mutex_lock(&p->lock);
        modules[n] = rt_compile(p->ast, name, consts, nconsts, NULL, &d, &f); /* rt_backend_emit: GPU passes */
        pthread_mutex_unlock(&p->lock);
        if (!modules[n]) st = rt_fail(p->ctx, TILE_ERROR_COMPILE, "%s", sb_str(&d.text));
        else functions[n++] = f;
        diag_free(&d);
    }
    for (size_t j = 0; j < nconstants && st == TILE_OK; j++)
        if (!used[j])
            st = rt_fail(p->ctx, TILE_ERROR_INVALID_ARGUMENT, "no kernel declares the constant '%s'",
                         constants[j].name ? constants[j].name : "(null)");
    if (st == TILE_OK) {
        Strbuf err = {0};
        st = rt_backend_emit(functions, n, arch, num_warps, kind, out, &err);
        if (st != TILE_OK) st = rt_fail(p->ctx, st, "%s for %s: %s", p->ast->source.name, arch, sb_str(&err));
        sb_free(&err);
    }
    for (size_t i = 0; i < n; i++) ir_module_free(modules[i]);
    free(modules);
    free(functions);
    free(consts);
    free(used);
    return st;
}
