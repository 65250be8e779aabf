/* test_aot.c: ahead-of-time compilation (runtime/aot.c, tilec --emit c-header, tile_add_kernels).
 * For every core kernel the generated header and source compile as C11 and as C++ with
 * -Wall -Wextra -Wpedantic -Werror; each kernel carries one image per asked-for arch, and each
 * cubin is an ELF file for CUDA built for its arch (e_flags; when the build has no assembler
 * the images are PTX and their .target is checked instead; without the backend there are no
 * images and that part is skipped); the launch prototypes match the kernels' parameters as the
 * public API reports them; parameter names that are C/C++ keywords are renamed; errors; the
 * context's AOT programs; tilec's options; and the example program runs correctly on the VM. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "tile/tile.h"


static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static char *temp_dir(void) {
    char *dir = strdup("/tmp/tile_aot_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    return dir;
}

static void remove_dir(char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    free(dir);
}

/* Compiles dir/name.c (which includes name.h) as C11 and as C++. */
static void compile_both(const char *dir, const char *name) {
    const char *compilers[2][2] = {{"cc", "-std=c11"}, {"c++", "-std=c++17 -x c++"}};
    for (int i = 0; i < 2; i++) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "%s %s -Wall -Wextra -Wpedantic -Werror -I'%s/include' -I'%s' -c '%s/%s.c' -o '%s/%s_%d.o' 2>&1",
                 compilers[i][0], compilers[i][1], TILE_SOURCE_DIR, dir, dir, name, dir, name, i);
        cr_assert_eq(system(cmd), 0, "%s", cmd);
    }
}

/* The bytes of `static const unsigned char NAME[n] = {...}` in text; NULL if absent. */
static unsigned char *array_bytes(const char *text, const char *name, size_t *len) {
    char head[256];
    snprintf(head, sizeof head, "static const unsigned char %s[", name);
    const char *p = strstr(text, head);
    if (!p) return NULL;
    p += strlen(head);
    size_t declared = strtoul(p, NULL, 10);
    p = strchr(p, '{') + 1;
    const char *end = strchr(p, '}');
    unsigned char *out = malloc(declared + 1);
    size_t n = 0;
    while (p < end) {
        if (p[0] == '0' && p[1] == 'x') {
            out[n++] = (unsigned char)strtoul(p, (char **)&p, 16);
            continue;
        }
        p++;
    }
    cr_assert_eq(n, declared, "%s: %zu bytes for %zu declared", name, n, declared);
    *len = n;
    return out;
}

/* Checks one image: an ELF for CUDA built for arch, or PTX targeting it. */
static void check_image(const unsigned char *d, size_t len, const char *arch, const char *what) {
    int want = atoi(arch + 3); /* 80, 90 */
    if (len >= 4 && memcmp(d, "\177ELF", 4) == 0) {
        cr_assert_geq(len, 64, "%s: ELF header", what);
        cr_assert_eq(d[4], 2, "%s: 64-bit ELF", what);
        cr_assert(d[7] == 0x33 || d[7] == 0x41, "%s: OS ABI %#x is not CUDA's", what, d[7]);
        unsigned machine = d[18] | d[19] << 8;
        cr_assert_eq(machine, 190, "%s: e_machine %u is not EM_CUDA", what, machine);
        unsigned flags = d[48] | d[49] << 8 | d[50] << 16 | (unsigned)d[51] << 24;
        /* The SM number: bits 0-7 before ELF ABI version 8, bits 8-15 from it on. (Whether the
         * code is arch-specific, sm_90a rather than sm_90, is not visible here.) */
        int sm = d[8] >= 8 ? (int)((flags >> 8) & 0xff) : (int)(flags & 0xff);
        cr_assert_eq(sm, want, "%s: built for sm_%d, expected %s", what, sm, arch);
    } else {
        char target[32];
        snprintf(target, sizeof target, ".target %s", arch);
        char *text = malloc(len + 1);
        memcpy(text, d, len);
        text[len] = 0;
        cr_assert_not_null(strstr(text, target), "%s: neither a cubin nor PTX for %s", what, arch);
        cr_log_warn("%s is PTX (no cubin assembler on this machine): the ELF checks are skipped", what);
        free(text);
    }
}

static bool have_backend(tile_context *ctx, tile_program *p) {
    char *out = NULL;
    size_t len;
    tile_emit_options o = {.arch = "sm_80"};
    bool ok = tile_program_emit(p, tile_program_kernel_name(p, 0), NULL, 0, TILE_EMIT_PTX, &o, &out, &len) == TILE_OK;
    if (!ok) cr_log_warn("no GPU code here (%s): the image checks are skipped", tile_context_message(ctx));
    tile_string_free(out);
    return ok;
}

static const char *dtype_c_type(const tile_param_info *info) {
    return info->kind == TILE_ARG_TENSOR ? "tile_tensor" : info->kind == TILE_ARG_FLOAT ? "double" : "int64_t";
}

Test(aot, core_kernels_compile_carry_images_and_typed_launchers, .timeout = 600) {
    tile_context *ctx = test_vm_context();
    char dirpath[4096];
    snprintf(dirpath, sizeof dirpath, "%s/stdlib/core", TILE_SOURCE_DIR);
    DIR *dir = opendir(dirpath);
    cr_assert_not_null(dir);
    char *tmp = temp_dir();
    int files = 0;
    bool backend = true;
    for (struct dirent *e; (e = readdir(dir));) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".tile") != 0) continue;
        char rel[512], name[256];
        snprintf(rel, sizeof rel, "stdlib/core/%s", e->d_name);
        snprintf(name, sizeof name, "%.*s", (int)(n - 5), e->d_name);
        tile_program *p = test_load_program(ctx, rel);
        if (files == 0) backend = have_backend(ctx, p);
        char *h = NULL, *c = NULL, *notes = NULL;
        char header_name[300];
        snprintf(header_name, sizeof header_name, "%s.h", name);
        tile_aot_options opt = {.header_name = header_name};
        cr_assert_eq(tile_program_emit_c(p, NULL, 0, &opt, &h, &c, &notes), TILE_OK, "%s: %s", rel,
                     tile_context_message(ctx));
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.h", tmp, name);
        write_file(path, h);
        snprintf(path, sizeof path, "%s/%s.c", tmp, name);
        write_file(path, c);
        compile_both(tmp, name);
        for (int k = 0; k < tile_program_num_kernels(p); k++) {
            const char *kname = tile_program_kernel_name(p, k);
            /* the prototype from the public parameter info */
            tile_kernel *kernel;
            cr_assert_eq(tile_program_get_kernel(p, kname, NULL, 0, &kernel), TILE_OK, "%s", tile_context_message(ctx));
            char proto[2048];
            int len = snprintf(proto, sizeof proto, "tile_status %s_%s_launch(tile_context *ctx", name, kname);
            for (int i = 0; i < tile_kernel_num_params(kernel); i++) {
                tile_param_info info;
                cr_assert_eq(tile_kernel_param(kernel, i, &info), TILE_OK);
                len += snprintf(proto + len, sizeof proto - (size_t)len, ", %s %s", dtype_c_type(&info), info.name);
            }
            snprintf(proto + len, sizeof proto - (size_t)len, ", tile_stream *stream);");
            cr_assert_not_null(strstr(h, proto), "%s: the header lacks\n  %s\n%s", rel, proto, h);
            /* one image per arch */
            const char *archs[2] = {"sm_80", "sm_90a"};
            for (int a = 0; a < 2 && backend; a++) {
                char array[512];
                snprintf(array, sizeof array, "%s_%s_%s", name, kname, archs[a]);
                size_t ilen = 0;
                unsigned char *bytes = array_bytes(c, array, &ilen);
                if (!bytes) {
                    cr_assert_not_null(strstr(notes, kname), "%s: no %s image and no note why", array, archs[a]);
                    cr_log_warn("%s: no image: %s", array, notes);
                    continue;
                }
                char entry[1200];
                snprintf(entry, sizeof entry, "{\"%s\", %s, sizeof %s,", archs[a], array, array);
                cr_assert_not_null(strstr(c, entry), "%s is not in the image table", array);
                check_image(bytes, ilen, archs[a], array);
                free(bytes);
            }
        }
        /* the source is embedded byte for byte */
        char src_array[300];
        snprintf(src_array, sizeof src_array, "%s_source_text", name);
        size_t slen;
        unsigned char *src = array_bytes(c, src_array, &slen);
        cr_assert_not_null(src);
        char *original = NULL;
        snprintf(path, sizeof path, "%s/%s", TILE_SOURCE_DIR, rel);
        FILE *f = fopen(path, "rb");
        fseek(f, 0, SEEK_END);
        long flen = ftell(f);
        rewind(f);
        original = malloc((size_t)flen);
        cr_assert_eq(fread(original, 1, (size_t)flen, f), (size_t)flen);
        fclose(f);
        cr_assert_eq(slen, (size_t)flen + 1);
        cr_assert_eq(memcmp(src, original, (size_t)flen), 0);
        cr_assert_eq(src[flen], 0);
        free(src);
        free(original);
        tile_string_free(h);
        tile_string_free(c);
        tile_string_free(notes);
        tile_program_destroy(p);
        files++;
    }
    closedir(dir);
    cr_assert_geq(files, 6);
    remove_dir(tmp);
    tile_context_destroy(ctx);
}

static const char *keyword_source =
    "kernel odd<B = 16>(class: tensor<f32>[N], stream: tensor<f32>[N], int: i32, scale: f64, on: bool)\n"
    "  grid(cdiv(N, B))\n"
    "{\n"
    "  let i = block_id(0) * B;\n"
    "  stream[i :+ B] = class[i :+ B] * cast<f32>(scale) + cast<f32>(int);\n"
    "}\n";

Test(aot, keywords_scalars_and_constants) {
    tile_context *ctx = test_vm_context();
    tile_program *p;
    tile_status st = tile_program_from_string(ctx, "dir/odd.tile", keyword_source, strlen(keyword_source), &p);
    if (st != TILE_OK) cr_skip_test("the language rejects these names: %s", tile_context_message(ctx));
    char *h, *c;
    tile_constant b = {"B", 0, 32, 0};
    static const char *const archs[] = {"sm_80"};
    tile_aot_options opt = {.archs = archs, .narchs = 1, .prefix = "my"};
    cr_assert_eq(tile_program_emit_c(p, &b, 1, &opt, &h, &c, NULL), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_not_null(strstr(h, "tile_status my_odd_launch(tile_context *ctx, tile_tensor class_, tile_tensor stream_, "
                                 "int64_t int_, double scale, int64_t on, tile_stream *stream);"),
                       "%s", h);
    cr_assert_not_null(strstr(c, "{\"B\", 0, INT64_C(32), 0.0}"), "the -D value is embedded");
    cr_assert_null(strstr(c, "my_odd_sm_90a"), "only the asked-for arch");
    cr_assert_not_null(strstr(c, "\"odd.tile\""), "diagnostics name the file without its directory");
    char *tmp = temp_dir();
    char path[4200];
    snprintf(path, sizeof path, "%s/my.h", tmp);
    write_file(path, h);
    snprintf(path, sizeof path, "%s/my.c", tmp);
    write_file(path, c);
    compile_both(tmp, "my");
    remove_dir(tmp);
    tile_string_free(h);
    tile_string_free(c);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

Test(aot, errors) {
    tile_context *ctx = test_vm_context();
    tile_program *p = test_load_program(ctx, "stdlib/core/vector_add.tile");
    char *h, *c;
    static const char *const bad_arch[] = {"sm_70"};
    tile_aot_options opt = {.archs = bad_arch, .narchs = 1};
    cr_assert_eq(tile_program_emit_c(p, NULL, 0, &opt, &h, &c, NULL), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert_not_null(strstr(tile_context_message(ctx), "sm_70"));
    tile_constant typo = {"BLOK", 0, 4, 0};
    cr_assert_eq(tile_program_emit_c(p, &typo, 1, NULL, &h, &c, NULL), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert_not_null(strstr(tile_context_message(ctx), "BLOK"));
    static const char *const missing[] = {"nope"};
    tile_aot_options opt2 = {.kernels = missing, .nkernels = 1};
    cr_assert_eq(tile_program_emit_c(p, NULL, 0, &opt2, &h, &c, NULL), TILE_ERROR_NOT_FOUND);
    tile_aot_options opt3 = {.prefix = "not an identifier"};
    cr_assert_eq(tile_program_emit_c(p, NULL, 0, &opt3, &h, &c, NULL), TILE_ERROR_INVALID_ARGUMENT);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* A description as generated code has it, with images the VM must ignore. */
static const char va_source[] =
    "kernel va<BLOCK = 64>(a: tensor<f32>[N], b: tensor<f32>[N], c: tensor<f32>[N]) grid(cdiv(N, BLOCK)) {\n"
    "  let i = block_id(0) * BLOCK;\n"
    "  c[i :+ BLOCK] = a[i :+ BLOCK] + b[i :+ BLOCK];\n"
    "}\n";
static const unsigned char junk[] = {1, 2, 3, 4};
static const tile_image junk_images[] = {{"sm_80", junk, sizeof junk, 128, 0}, {"sm_90a", junk, sizeof junk, 128, 0}};
static const tile_constant va_constants[] = {{"BLOCK", 0, 128, 0.0}};
static const tile_aot_kernel va_desc = {"va.tile", va_source, sizeof va_source - 1, "va", va_constants, 1,
                                        junk_images, 2};

Test(aot, context_programs_on_the_vm) {
    tile_context *ctx = test_vm_context();
    tile_kernel *k1, *k2;
    cr_assert_eq(tile_context_aot_kernel(ctx, &va_desc, &k1), TILE_OK, "%s", tile_context_message(ctx));
    cr_assert_eq(tile_context_aot_kernel(ctx, &va_desc, &k2), TILE_OK);
    cr_assert_eq(k1, k2, "the context keeps one program per source and the program one kernel");
    enum { N = 300 };
    float a[N], b[N], c[N];
    for (int i = 0; i < N; i++) a[i] = (float)i, b[i] = 2.0f * (float)i, c[i] = -1;
    int64_t shape[1] = {N};
    tile_arg args[3] = {{.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, a, 1, shape)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, b, 1, shape)},
                        {.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(TILE_F32, c, 1, shape)}};
    cr_assert_eq(tile_kernel_launch(k1, args, 3, NULL), TILE_OK, "%s", tile_context_message(ctx));
    for (int i = 0; i < N; i++) cr_assert_eq(c[i], 3.0f * (float)i);
    /* images on a program directly, and a source with errors */
    tile_program *p;
    cr_assert_eq(tile_program_from_string(ctx, "va.tile", va_source, sizeof va_source - 1, &p), TILE_OK);
    cr_assert_eq(tile_program_get_kernel_with_images(p, "va", NULL, 0, junk_images, 2, &k2), TILE_OK);
    cr_assert_eq(tile_program_get_kernel_with_images(p, "va", NULL, 0, NULL, 2, &k2), TILE_ERROR_INVALID_ARGUMENT);
    tile_program_destroy(p);
    static const char broken[] = "kernel x() grid(1) { oops }";
    tile_aot_kernel bad = {"broken.tile", broken, sizeof broken - 1, "x", NULL, 0, NULL, 0};
    cr_assert_eq(tile_context_aot_kernel(ctx, &bad, &k2), TILE_ERROR_COMPILE);
    cr_assert_not_null(strstr(tile_context_message(ctx), "broken.tile:1:"));
    tile_context_destroy(ctx);
}

Test(aot, tilec_writes_header_and_source) {
    char *tmp = temp_dir();
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "'%s/tilec' build --emit c-header -o '%s/va.h' --arch sm_80 -k vector_add -D BLOCK=256 --prefix va "
             "'%s/stdlib/core/vector_add.tile' 2>'%s/err'",
             TILE_BUILD_DIR, tmp, TILE_SOURCE_DIR, tmp);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char path[4300];
    snprintf(path, sizeof path, "%s/va.c", tmp);
    cr_assert_eq(access(path, R_OK), 0, "NAME.c is written next to NAME.h");
    compile_both(tmp, "va");
    snprintf(cmd, sizeof cmd, "grep -q 'INT64_C(256)' '%s/va.c' && grep -q 'va_vector_add_launch' '%s/va.h' && "
                              "! grep -q sm_90a '%s/va.c'", tmp, tmp, tmp);
    cr_assert_eq(system(cmd), 0, "the constant, the prefix and the one arch");
    snprintf(cmd, sizeof cmd, "'%s/tilec' build --emit c-header -o '%s/va.txt' '%s/stdlib/core/vector_add.tile' 2>/dev/null",
             TILE_BUILD_DIR, tmp, TILE_SOURCE_DIR);
    cr_assert_eq(WEXITSTATUS(system(cmd)), 2, "-o must name a .h");
    snprintf(cmd, sizeof cmd, "'%s/tilec' build --emit c-header -o '%s/va.h' --arch sm_70 '%s/stdlib/core/vector_add.tile' 2>/dev/null",
             TILE_BUILD_DIR, tmp, TILE_SOURCE_DIR);
    cr_assert_eq(WEXITSTATUS(system(cmd)), 2, "unknown arch");
    remove_dir(tmp);
}

Test(aot, example_runs_on_the_vm, .timeout = 300) {
    char exe[4096];
    snprintf(exe, sizeof exe, "%s/examples/aot/aot_example", TILE_BUILD_DIR);
    cr_assert_eq(access(exe, X_OK), 0, "%s is not built", exe);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "TILE_DEVICE=vm '%s'", exe);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    char out[4096];
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = 0;
    int rc = pclose(f);
    cr_assert_eq(WEXITSTATUS(rc), 0, "%s", out);
    cr_assert_not_null(strstr(out, "running on vm"), "%s", out);
    cr_assert_not_null(strstr(out, "vector_add  n=10007: ok"), "%s", out);
    cr_assert_not_null(strstr(out, "softmax     37x300: ok"), "%s", out);
    cr_assert_not_null(strstr(out, "all results match C"), "%s", out);
}

/* tilec build --emit ptx FILE without -k: every kernel of the file in one module (as nvcc makes
 * one per .cu file); the IR still needs -k when there are several. */
Test(aot, tilec_emits_every_kernel_of_a_file_into_one_module) {
    char *tmp = temp_dir();
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s/tilec' build --emit ptx --arch sm_80 -o '%s/reduce.ptx' '%s/stdlib/core/reduce.tile'",
             TILE_BUILD_DIR, tmp, TILE_SOURCE_DIR);
    int rc = system(cmd);
    if (WEXITSTATUS(rc) == 3) { /* no backend in this build */
        remove_dir(tmp);
        cr_skip_test("tilec has no GPU backend");
    }
    cr_assert_eq(rc, 0, "%s", cmd);
    snprintf(cmd, sizeof cmd, "test $(grep -c '^.visible .entry' '%s/reduce.ptx') -eq 3 && grep -q '.entry sum_rows(' "
             "'%s/reduce.ptx' && grep -q '.entry cumsum_rows(' '%s/reduce.ptx' && grep -q '.entry sum_all(' '%s/reduce.ptx'",
             tmp, tmp, tmp, tmp);
    cr_assert_eq(system(cmd), 0, "three entries in one module");
    snprintf(cmd, sizeof cmd, "'%s/tilec' build --time --emit llvm -o /dev/null '%s/stdlib/core/reduce.tile' 2>'%s/time' && "
             "grep -q 'time: frontend .* ms (parse .*, lower .*), passes .* ms, LLVM .* ms (codegen .*), ptxas/nvJitLink' "
             "'%s/time'", TILE_BUILD_DIR, TILE_SOURCE_DIR, tmp, tmp);
    cr_assert_eq(system(cmd), 0, "--time prints the split");
    snprintf(cmd, sizeof cmd, "'%s/tilec' build --emit ir '%s/stdlib/core/reduce.tile' >/dev/null 2>&1", TILE_BUILD_DIR,
             TILE_SOURCE_DIR);
    cr_assert_eq(WEXITSTATUS(system(cmd)), 2, "the IR of a file of several kernels still needs -k");
    remove_dir(tmp);
}
