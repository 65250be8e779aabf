/*
 * test_codegen.c: the GPU code generator (tile IR -> LLVM IR -> PTX) without a GPU. Every
 * kernel of stdlib/core and small kernels that exercise each op kind are compiled through the
 * frontend and the passes, lowered for sm_80 and sm_90a, and the PTX is checked for the
 * kernel's entry and assembled by ptxas (skipped where ptxas is not installed). Unsupported
 * element types must fail cleanly with a located message.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "frontend/frontend.h"
#include "ir/ir.h"
#include "runtime/runtime.h"
#include "testutil.h"

#ifdef TILE_HAVE_LLVM
typedef struct Compiled {
    AstFile *ast;
    IrModule *module;
    IrFunction *kernel;
} Compiled;

/* Through the frontend and the passes, the GPU passes for num_warps included, as the runtime
 * does before the backend (gpu false: the VM's IR, which has no layouts). */
static Compiled compile_source_for(const char *name, const char *text, const char *kernel, bool gpu, int num_warps) {
    DiagList d = {0};
    Compiled c = {0};
    c.ast = parse_source(name, text, strlen(text), &d);
    cr_assert_not_null(c.ast, "%s", sb_str(&d.text));
    RtCompileOptions opt = {.gpu = gpu, .target = {.num_warps = num_warps}};
    c.module = rt_compile(c.ast, kernel, NULL, 0, &opt, &d, &c.kernel);
    cr_assert_not_null(c.module, "%s: %s", kernel, sb_str(&d.text));
    diag_free(&d);
    return c;
}

static Compiled compile_source(const char *name, const char *text, const char *kernel) {
    return compile_source_for(name, text, kernel, true, 0);
}

static void compiled_free(Compiled *c) {
    ir_module_free(c->module);
    ast_file_free(c->ast);
}

static bool have_ptxas(void) {
    char path[1024];
    return backend_find_ptxas(path, sizeof path, NULL);
}

/* Lowers the kernel for arch, checks its .entry, and assembles it when ptxas exists. */
static void check_kernel(const IrFunction *k, BackendArch arch, CodegenInfo *info, size_t *ptx_len) {
    Strbuf ptx = {0}, err = {0};
    CodegenOptions opt = {.arch = arch};
    bool ok = backend_compile_ptx(k, &opt, &ptx, info, &err);
    cr_assert(ok, "%s for %s: %s", k->name, backend_arch_name(arch), sb_str(&err));
    cr_assert_eq(info->threads, strcmp(k->name, "gemm") == 0 ? 256 : 128); /* the core kernels' warps(...) */
    char entry[256];
    snprintf(entry, sizeof entry, ".entry %s(", k->name);
    cr_assert_not_null(strstr(sb_str(&ptx), entry), "no %s in the PTX of %s", entry, k->name);
    if (have_ptxas()) {
        Strbuf cubin = {0}, perr = {0};
        cr_assert(backend_ptx_to_cubin(ptx.data, ptx.len, arch, CUBIN_TOOL_PTXAS, &cubin, &perr),
                  "ptxas on %s for %s: %s", k->name, backend_arch_name(arch), sb_str(&perr));
        cr_assert_gt(cubin.len, 0);
        sb_free(&cubin);
        sb_free(&perr);
    }
    if (ptx_len) *ptx_len = ptx.len;
    sb_free(&ptx);
    sb_free(&err);
}

static void check_source(const char *text, const char *kernel, CodegenInfo *info) {
    Compiled c = compile_source("inline.tile", text, kernel);
    for (int a = 0; a < BACKEND_ARCH_COUNT; a++) check_kernel(c.kernel, (BackendArch)a, info, NULL);
    compiled_free(&c);
}

static void check_core(const char *file, const char *const *kernels, int n) {
    char rel[256];
    snprintf(rel, sizeof rel, "stdlib/core/%s", file);
    size_t len;
    char *text = test_read_source_file(rel, &len);
    for (int i = 0; i < n; i++) {
        Compiled c = compile_source(rel, text, kernels[i]);
        for (int a = 0; a < BACKEND_ARCH_COUNT; a++) {
            CodegenInfo info;
            size_t ptx_len = 0;
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            check_kernel(c.kernel, (BackendArch)a, &info, &ptx_len);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
            cr_log_info("%s %s: %zu bytes of PTX, %u bytes of shared memory, %.2f s (with ptxas)",
                        kernels[i], backend_arch_name((BackendArch)a), ptx_len, info.shared_bytes, secs);
        }
        compiled_free(&c);
    }
    free(text);
}

/* The PTX of a kernel with every launch fact (aligned, unit strides, sizes divisible by 16),
 * assembled by ptxas like the generic one. */
static void spec_ptx(const IrFunction *k, BackendArch arch, Strbuf *ptx) {
    CodegenParamSpec spec[16];
    memset(spec, 0, sizeof spec);
    const Target every = {.every_fact = true};
    for (uint32_t i = 0; i < k->nparams && i < 16; i++) spec[i] = target_param_facts(&every, k, i);
    Strbuf err = {0};
    CodegenInfo info;
    CodegenOptions opt = {.arch = arch, .spec = spec};
    cr_assert(backend_compile_ptx(k, &opt, ptx, &info, &err), "%s (spec) for %s: %s", k->name,
              backend_arch_name(arch), sb_str(&err));
    if (have_ptxas()) {
        Strbuf cubin = {0}, perr = {0};
        cr_assert(backend_ptx_to_cubin(ptx->data, ptx->len, arch, CUBIN_TOOL_PTXAS, &cubin, &perr),
                  "ptxas on %s (spec) for %s: %s", k->name, backend_arch_name(arch), sb_str(&perr));
        sb_free(&cubin);
        sb_free(&perr);
    }
    sb_free(&err);
}

static bool has_vector_load(const char *ptx) {
    return strstr(ptx, "ld.global.v4.f32") || strstr(ptx, "ld.global.v4.b32") || strstr(ptx, "ld.global.nc.v4");
}

/* Every core kernel with the full spec; vector_add and softmax load 16 bytes per thread at
 * once, softmax reduces by shuffles. */
Test(codegen, core_with_spec) {
    static const struct {
        const char *file, *kernel;
    } core[] = {{"vector_add.tile", "vector_add"}, {"softmax.tile", "softmax"}, {"layernorm.tile", "layernorm"},
                {"reduce.tile", "sum_rows"}, {"reduce.tile", "cumsum_rows"}, {"reduce.tile", "sum_all"},
                {"gather.tile", "gather_rows"}, {"gemm.tile", "gemm"}};
    for (size_t i = 0; i < sizeof core / sizeof core[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "stdlib/core/%s", core[i].file);
        size_t len;
        char *text = test_read_source_file(rel, &len);
        Compiled c = compile_source(rel, text, core[i].kernel);
        for (int a = 0; a < BACKEND_ARCH_COUNT; a++) {
            Strbuf ptx = {0};
            spec_ptx(c.kernel, (BackendArch)a, &ptx);
            const char *s = sb_str(&ptx);
            if (strcmp(core[i].kernel, "vector_add") == 0 || strcmp(core[i].kernel, "softmax") == 0) {
                cr_assert(has_vector_load(s), "no 16-byte loads in %s", core[i].kernel);
                cr_assert_not_null(strstr(s, "st.global.v4"), "no 16-byte stores in %s", core[i].kernel);
            }
            if (strcmp(core[i].kernel, "softmax") == 0 || strcmp(core[i].kernel, "layernorm") == 0)
                cr_assert_not_null(strstr(s, "shfl.sync.bfly"), "no shuffles in %s", core[i].kernel);
            sb_free(&ptx);
        }
        compiled_free(&c);
        free(text);
    }
}

/* The generic softmax: one warp per row, so its reductions need no shared memory. */
Test(codegen, softmax_reduces_in_registers) {
    size_t len;
    char *text = test_read_source_file("stdlib/core/softmax.tile", &len);
    Compiled c = compile_source("softmax.tile", text, "softmax");
    Strbuf ptx = {0}, err = {0};
    CodegenInfo info;
    CodegenOptions opt = {.arch = BACKEND_ARCH_SM90A};
    cr_assert(backend_compile_ptx(c.kernel, &opt, &ptx, &info, &err), "%s", sb_str(&err));
    cr_assert_eq(info.shared_bytes, 0, "softmax used %u bytes of shared memory", info.shared_bytes);
    cr_assert_not_null(strstr(sb_str(&ptx), "shfl.sync.bfly"));
    cr_assert(has_vector_load(sb_str(&ptx)), "the generic kernel vectorizes behind a run-time check");
    sb_free(&ptx);
    sb_free(&err);
    compiled_free(&c);
    free(text);
}

/* How often the LLVM value `name` (e.g. "%3") occurs in text, not counting longer names (%30). */
static int value_uses(const char *text, const char *name) {
    int n = 0;
    size_t len = strlen(name);
    for (const char *p = strstr(text, name); p; p = strstr(p + len, name))
        n += !(p[len] >= '0' && p[len] <= '9');
    return n;
}

static int occurrences(const char *text, const char *what) {
    int n = 0;
    for (const char *p = strstr(text, what); p; p = strstr(p + 1, what)) n++;
    return n;
}

/* softmax's LLVM IR with the facts of a contiguous aligned launch against none. The last
 * strides are the constant 1: x's and y's (%3 and %7) appear only in the signature. The column
 * mask `n + arange(BN) < N`, constant over runs of 16 columns when N is a multiple of 16, is
 * compared once per 4 consecutive columns a thread holds: a quarter of the generic kernel's
 * compares in each of the two masked paths (32 columns per thread each; two scalar compares of
 * N besides). */
Test(codegen, launch_facts_fold_unit_strides_and_mask_runs) {
    size_t len;
    char *text = test_read_source_file("stdlib/core/softmax.tile", &len);
    Compiled c = compile_source("softmax.tile", text, "softmax");
    CodegenParamSpec spec[8];
    memset(spec, 0, sizeof spec);
    const Target every = {.every_fact = true};
    cr_assert_eq(c.kernel->nparams, 2);
    for (uint32_t i = 0; i < c.kernel->nparams; i++) spec[i] = target_param_facts(&every, c.kernel, i);
    cr_assert(spec[0].unit_stride[1] && !spec[0].unit_stride[0], "contiguous: only the last stride is 1");
    Strbuf generic = {0}, facts = {0}, err = {0};
    CodegenInfo info;
    CodegenOptions none = {.arch = BACKEND_ARCH_SM90A}, all = {.arch = BACKEND_ARCH_SM90A, .spec = spec};
    cr_assert(backend_compile_llvm(c.kernel, &none, &generic, &info, &err), "%s", sb_str(&err));
    cr_assert(backend_compile_llvm(c.kernel, &all, &facts, &info, &err), "%s", sb_str(&err));
    const char *g = sb_str(&generic), *f = sb_str(&facts);
    cr_assert_not_null(strstr(f, "i64 %3, ptr addrspace(1) %y"), "the parameters were renumbered");
    cr_assert_eq(value_uses(f, "%3"), 1, "x's last stride is used");
    cr_assert_eq(value_uses(f, "%7"), 1, "y's last stride is used");
    cr_assert_gt(value_uses(g, "%3"), 1);
    cr_assert_gt(value_uses(f, "%2"), 1, "x's row stride must stay a parameter");
    int g_lt = occurrences(g, "icmp slt"), f_lt = occurrences(f, "icmp slt");
    cr_assert_eq(g_lt, 2 * 32 + 2, "generic: %d signed compares", g_lt);
    cr_assert_eq(f_lt, 2 * 8 + 2, "with facts: %d signed compares", f_lt);
    sb_free(&generic);
    sb_free(&facts);
    sb_free(&err);
    compiled_free(&c);
    free(text);
}

TestSuite(codegen, .timeout = 600);

Test(codegen, core_vector_add) {
    const char *k[] = {"vector_add"};
    check_core("vector_add.tile", k, 1);
}
Test(codegen, core_softmax) {
    const char *k[] = {"softmax"};
    check_core("softmax.tile", k, 1);
}
Test(codegen, core_layernorm) {
    const char *k[] = {"layernorm"};
    check_core("layernorm.tile", k, 1);
}
Test(codegen, core_reduce) {
    const char *k[] = {"sum_rows", "cumsum_rows", "sum_all"};
    check_core("reduce.tile", k, 3);
}
Test(codegen, core_gather) {
    const char *k[] = {"gather_rows"};
    check_core("gather.tile", k, 1);
}
Test(codegen, core_gemm) {
    const char *k[] = {"gemm"};
    check_core("gemm.tile", k, 1);
}

/* Every core kernel (8 kernels from 6 files) in one module, as `tilec build --emit ptx FILE`
 * makes for a file without -k: each .entry is there once, and ptxas assembles the module. */
Test(codegen, every_core_kernel_in_one_module) {
    static const char *files[][4] = {{"vector_add.tile", "vector_add"}, {"softmax.tile", "softmax"},
                                     {"layernorm.tile", "layernorm"},   {"reduce.tile", "sum_rows", "cumsum_rows", "sum_all"},
                                     {"gather.tile", "gather_rows"},    {"gemm.tile", "gemm"}};
    Compiled c[8];
    const IrFunction *kernels[8];
    char *texts[6];
    size_t n = 0;
    for (int f = 0; f < 6; f++) {
        char rel[256];
        size_t len;
        snprintf(rel, sizeof rel, "stdlib/core/%s", files[f][0]);
        texts[f] = test_read_source_file(rel, &len);
        for (int k = 1; k < 4 && files[f][k]; k++) {
            c[n] = compile_source(rel, texts[f], files[f][k]);
            kernels[n] = c[n].kernel;
            n++;
        }
    }
    cr_assert_eq(n, 8);
    for (int a = 0; a < BACKEND_ARCH_COUNT; a++) {
        Strbuf ptx = {0}, err = {0};
        CodegenInfo infos[8];
        CodegenOptions opt = {.arch = (BackendArch)a};
        cr_assert(backend_compile_many(kernels, n, &opt, true, &ptx, infos, &err), "%s", sb_str(&err));
        int entries = 0;
        for (const char *p = sb_str(&ptx); (p = strstr(p, ".entry ")); p++) entries++;
        cr_assert_eq(entries, 8, "%d entries", entries);
        for (size_t i = 0; i < n; i++) {
            char entry[256];
            snprintf(entry, sizeof entry, ".entry %s(", kernels[i]->name);
            cr_assert_not_null(strstr(sb_str(&ptx), entry), "no %s in the module", entry);
            cr_assert_gt(infos[i].threads, 0);
        }
        if (have_ptxas()) {
            Strbuf cubin = {0}, perr = {0};
            cr_assert(backend_ptx_to_cubin(ptx.data, ptx.len, (BackendArch)a, CUBIN_TOOL_PTXAS, &cubin, &perr),
                      "ptxas on the module for %s: %s", backend_arch_name((BackendArch)a), sb_str(&perr));
            for (size_t i = 0; i < n; i++) { /* every kernel's symbol is in the cubin */
                bool named = false;
                size_t len = strlen(kernels[i]->name);
                for (size_t j = 0; j + len <= cubin.len && !named; j++) named = memcmp(cubin.data + j, kernels[i]->name, len) == 0;
                cr_assert(named, "%s is not in the cubin", kernels[i]->name);
            }
            sb_free(&cubin);
            sb_free(&perr);
        }
        sb_free(&ptx);
        sb_free(&err);
    }
    for (size_t i = 0; i < n; i++) compiled_free(&c[i]);
    for (int f = 0; f < 6; f++) free(texts[f]);
}

/* The public form: tile_program_emit with kernel NULL, every kernel of one file. */
Test(codegen, emit_with_no_kernel_makes_one_module) {
    tile_context *ctx = test_vm_context();
    tile_program *p = test_load_program(ctx, "stdlib/core/reduce.tile");
    char *out = NULL;
    size_t len = 0;
    tile_emit_options opt = {.arch = "sm_80"};
    tile_constant bn = {.name = "BN", .i = 256}; /* declared by two of the three kernels */
    tile_status st = tile_program_emit(p, NULL, NULL, 0, TILE_EMIT_PTX, &opt, &out, &len);
    cr_assert_eq(st, TILE_OK, "%s", tile_context_message(ctx));
    cr_assert(strstr(out, ".entry sum_rows(") && strstr(out, ".entry cumsum_rows(") && strstr(out, ".entry sum_all("), "%s", out);
    cr_assert_eq(len, strlen(out));
    tile_string_free(out);
    tile_compile_times t;
    tile_compile_times_get(&t);
    cr_assert(t.lower > 0 && t.passes > 0 && t.codegen > 0 && t.llvm > 0, "every stage that ran is timed: %g %g %g %g",
              t.lower, t.passes, t.codegen, t.llvm);
    cr_assert_eq(t.assemble, 0, "PTX is not assembled");
    cr_assert_eq(tile_program_emit(p, NULL, NULL, 0, TILE_EMIT_LLVM, &opt, &out, &len), TILE_OK);
    cr_assert(strstr(out, "@sum_rows(") && strstr(out, "@sum_all("));
    tile_string_free(out);
    tile_constant nobody = {.name = "NOBODY", .i = 1};
    cr_assert_eq(tile_program_emit(p, NULL, &nobody, 1, TILE_EMIT_PTX, &opt, &out, &len), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert_not_null(strstr(tile_context_message(ctx), "no kernel declares the constant 'NOBODY'"));
    cr_assert_eq(tile_program_emit(p, NULL, NULL, 0, TILE_EMIT_IR, NULL, &out, &len), TILE_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(tile_program_emit(p, NULL, &bn, 1, TILE_EMIT_PTX, &opt, &out, &len), TILE_OK, "%s",
                 tile_context_message(ctx));
    cr_assert_not_null(strstr(out, ".entry sum_all("));
    tile_string_free(out);
    tile_program_destroy(p);
    tile_context_destroy(ctx);
}

/* Elementwise float math, comparisons, select and casts on f32, f16, bf16 and f64. */
Test(codegen, elementwise_floats) {
    CodegenInfo info;
    check_source(
        "kernel math(x: tensor<f32>[N], h: tensor<f16>[N], b: tensor<bf16>[N], d: tensor<f64>[N],\n"
        "            y: tensor<f32>[N], z: tensor<f64>[N])\n"
        "  grid(cdiv(N, 256))\n"
        "{\n"
        "  let i = block_id(0) * 256 + arange(256);\n"
        "  let t = x[i];\n"
        "  let a = exp(t) + exp2(t) + log(abs(t) + 1.0) + log2(abs(t) + 1.0) + sqrt(abs(t)) + rsqrt(abs(t) + 1.0);\n"
        "  let c = tanh(t) + sin(t) + cos(t) + erf(t) + floor(t) + ceil(t) - (-t);\n"
        "  let e = min(a, c) + max(a, c) + a / c + a % c;\n"
        "  let f = cast<f32>(h[i] * cast<f16>(2.0)) + cast<f32>(b[i] + b[i]);\n"
        "  y[i] = where(t > 0.0, e, f);\n"
        "  z[i] = exp(d[i]) + sqrt(d[i]) + cast<f64>(t) * d[i];\n"
        "}\n",
        "math", &info);
    cr_assert_eq(info.shared_bytes, 0, "elementwise code needs no shared memory");
}

/* Integer ops of every kind, division by zero, shifts, casts between widths and to floats. */
Test(codegen, elementwise_integers) {
    CodegenInfo info;
    check_source(
        "kernel ints(a: tensor<i32>[N], b: tensor<u8>[N], c: tensor<i64>[N], o: tensor<i32>[N],\n"
        "            p: tensor<u16>[N], q: tensor<bool>[N], f: tensor<f16>[N], s: i32)\n"
        "  grid(cdiv(N, 128))\n"
        "{\n"
        "  let i = block_id(0) * 128 + arange(128);\n"
        "  let x = a[i];\n"
        "  let y = cast<i32>(b[i]) + s;\n"
        "  let r = x / y + x % y + (x << 3) + (x >> y) + (x & y) + (x | y) + (x ^ y) + min(x, y) + max(x, y) - abs(x);\n"
        "  o[i] = r * 7 + cast<i32>(c[i] / cast<i64>(y));\n"
        "  p[i] = cast<u16>(f[i]) + cast<u16>(b[i] >> 2);\n"
        "  q[i] = (x < y) != (x >= 3);\n"
        "  f[i] = cast<f16>(c[i]);\n"
        "}\n",
        "ints", &info);
}

/* Reductions (sum/max/min over each axis and all), scans, transposes, broadcasts. */
Test(codegen, reductions_and_shapes) {
    CodegenInfo info;
    check_source(
        "kernel shapes(x: tensor<f32>[M, 64], r: tensor<f32>[M], c: tensor<f32>[64], t: tensor<f32>[64, M],\n"
        "              s: tensor<f32>[1], k: tensor<i32>[M, 64])\n"
        "  grid(cdiv(M, 16))\n"
        "{\n"
        "  let m0 = block_id(0) * 16;\n"
        "  let v = x[m0 :+ 16, :];\n"
        "  r[m0 :+ 16] = sum(v, axis=1) + max(v, axis=1) + min(v, axis=1);\n"
        "  atomic_add(c[:], sum(v, axis=0));\n"
        "  t[:, m0 :+ 16] = transpose(v) + cumsum(transpose(v), axis=1);\n"
        "  atomic_max(s[0], max(v));\n"
        "  let w = reshape(v, [8, 128]);\n"
        "  let u = broadcast(expand(sum(w, axis=0), 0), [8, 128]);\n"
        "  let ki = cast<i32>(reshape(u, [16, 64]));\n"
        "  k[m0 :+ 16, :] = cumsum(ki, axis=0) + sum(ki);\n"
        "}\n",
        "shapes", &info);
    cr_assert_gt(info.shared_bytes, 0, "reductions go through shared memory");
}

/* Loops with carried tiles, if/else with results, while, and a gather through a loaded index. */
Test(codegen, control_flow_and_gather) {
    CodegenInfo info;
    check_source(
        "kernel flow(x: tensor<f32>[N], idx: tensor<i32>[N], y: tensor<f32>[N], n: i32)\n"
        "  grid(cdiv(N, 64))\n"
        "{\n"
        "  let i = block_id(0) * 64;\n"
        "  var acc = zeros<f32>[64];\n"
        "  for k in 0 .. n step 2 {\n"
        "    if k % 4 == 0 { acc += x[i :+ 64]; } else { acc -= 1.0; }\n"
        "  }\n"
        "  var lo = 0;\n"
        "  var hi = n;\n"
        "  while lo < hi { lo = lo + 1; hi = hi - 1; }\n"
        "  let g = x[idx[i :+ 64]];\n"
        "  y[i :+ 64] = acc + g + cast<f32>(lo);\n"
        "}\n",
        "flow", &info);
}

/* dot with f32, bf16 and integer operands, and an f64 accumulator. */
Test(codegen, dots) {
    CodegenInfo info;
    check_source(
        "kernel dots(a: tensor<f16>[M, K], b: tensor<f16>[K, N], c: tensor<f32>[M, N], ia: tensor<i8>[M, K],\n"
        "            ib: tensor<i8>[K, N], ic: tensor<i32>[M, N], d: tensor<f64>[M, N])\n"
        "  grid(1)\n"
        "{\n"
        "  let x = a[0 :+ 32, 0 :+ 16];\n"
        "  let y = b[0 :+ 16, 0 :+ 32];\n"
        "  c[0 :+ 32, 0 :+ 32] = dot(x, y);\n"
        "  ic[0 :+ 32, 0 :+ 32] = dot(ia[0 :+ 32, 0 :+ 16], ib[0 :+ 16, 0 :+ 32]);\n"
        "  d[0 :+ 32, 0 :+ 32] = dot(x, y, zeros<f64>[32, 32]);\n"
        "}\n",
        "dots", &info);
}

/* The PTX of a kernel of the source for arch, with every launch fact or none. */
static void source_ptx(const char *text, const char *kernel, BackendArch arch, bool spec, Strbuf *ptx) {
    Compiled c = compile_source("inline.tile", text, kernel);
    if (spec) {
        spec_ptx(c.kernel, arch, ptx);
    } else {
        CodegenInfo info;
        check_kernel(c.kernel, arch, &info, NULL);
        Strbuf err = {0};
        CodegenOptions opt = {.arch = arch};
        cr_assert(backend_compile_ptx(c.kernel, &opt, ptx, &info, &err), "%s", sb_str(&err));
        sb_free(&err);
    }
    compiled_free(&c);
}

static int count_of(const char *s, const char *what) {
    int n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what)) n++;
    return n;
}

#define MMA_BF16 "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"
#define MMA_F16 "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32"

/* The core gemm (bf16, 128 x 128 x 64 tiles, 8 warps) runs on tensor cores for both targets,
 * generic and specialized: each k step of 16 is 16 mma per warp (4 x 2 warps of 32 x 64, each
 * 2 x 8 tiles of 16 x 8), fed by ldmatrix (the b operand transposed); ptxas assembles it. */
Test(codegen, gemm_uses_mma) {
    size_t len;
    char *text = test_read_source_file("stdlib/core/gemm.tile", &len);
    for (int a = 0; a < BACKEND_ARCH_COUNT; a++)
        for (int spec = 0; spec < 2; spec++) {
            Strbuf ptx = {0};
            source_ptx(text, "gemm", (BackendArch)a, spec, &ptx);
            const char *s = sb_str(&ptx);
            cr_assert_eq(count_of(s, MMA_BF16) % 16, 0, "%d mma", count_of(s, MMA_BF16));
            cr_assert_gt(count_of(s, MMA_BF16), 0, "no %s in the gemm for %s", MMA_BF16, backend_arch_name((BackendArch)a));
            cr_assert_not_null(strstr(s, "ldmatrix.sync.aligned.m8n8.x4.shared.b16"));
            cr_assert_not_null(strstr(s, "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16"));
            sb_free(&ptx);
        }
    free(text);
}

/* Small dots that qualify: bf16 32 x 16 @ 16 x 32 (2 x 2 warps of one 16 x 16 block, the b
 * fragments of two n tiles per ldmatrix.x4) and f16 64 x 32 @ 32 x 24 (4 x 1 warps, three n
 * tiles: the third loaded alone by ldmatrix.x2), in a k loop. */
Test(codegen, small_dots_use_mma) {
    const char *src =
        "kernel mm(a: tensor<bf16>[M, K], b: tensor<bf16>[K, N], c: tensor<f32>[M, N],\n"
        "          h: tensor<f16>[M, K], g: tensor<f16>[K, N], d: tensor<f32>[M, N])\n"
        "  grid(1)\n"
        "{\n"
        "  c[0 :+ 32, 0 :+ 32] = dot(a[0 :+ 32, 0 :+ 16], b[0 :+ 16, 0 :+ 32]);\n"
        "  var acc = zeros<f32>[64, 24];\n"
        "  for k in 0 .. K step 32 {\n"
        "    acc = dot(h[0 :+ 64, k :+ 32], g[k :+ 32, 0 :+ 24], acc);\n"
        "  }\n"
        "  d[0 :+ 64, 0 :+ 24] = acc;\n"
        "}\n";
    for (int a = 0; a < BACKEND_ARCH_COUNT; a++)
        for (int spec = 0; spec < 2; spec++) {
            Strbuf ptx = {0};
            source_ptx(src, "mm", (BackendArch)a, spec, &ptx);
            const char *s = sb_str(&ptx);
            /* bf16: one k step, 1 x 2 tiles per warp; f16: 1 x 3 tiles per warp per k step */
            cr_assert_eq(count_of(s, MMA_BF16) % 2, 0);
            cr_assert_gt(count_of(s, MMA_BF16), 0, "no bf16 mma");
            cr_assert_eq(count_of(s, MMA_F16) % 3, 0);
            cr_assert_gt(count_of(s, MMA_F16), 0, "no f16 mma");
            cr_assert_not_null(strstr(s, "ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16"));
            sb_free(&ptx);
        }
}

/* Dots that do not qualify stay on CUDA cores and still compile: f32 operands, an f64 or
 * integer accumulator, shapes the 4 warps cannot tile (16 x 8), k not a multiple of 16. */
Test(codegen, other_dots_fall_back) {
    const char *src =
        "kernel fb(x: tensor<f32>[M, K], y: tensor<f32>[K, N], c: tensor<f32>[M, N], a: tensor<bf16>[M, K],\n"
        "          b: tensor<bf16>[K, N], d: tensor<f64>[M, N], ia: tensor<i8>[M, K], ib: tensor<i8>[K, N],\n"
        "          ic: tensor<i32>[M, N])\n"
        "  grid(1)\n"
        "{\n"
        "  c[0 :+ 32, 0 :+ 32] = dot(x[0 :+ 32, 0 :+ 16], y[0 :+ 16, 0 :+ 32]);\n"
        "  d[0 :+ 32, 0 :+ 32] = dot(a[0 :+ 32, 0 :+ 16], b[0 :+ 16, 0 :+ 32], zeros<f64>[32, 32]);\n"
        "  c[0 :+ 16, 0 :+ 8] = dot(a[0 :+ 16, 0 :+ 16], b[0 :+ 16, 0 :+ 8]);\n"
        "  c[0 :+ 32, 0 :+ 32] = dot(a[0 :+ 32, 0 :+ 24], b[0 :+ 24, 0 :+ 32]);\n"
        "  ic[0 :+ 32, 0 :+ 32] = dot(ia[0 :+ 32, 0 :+ 16], ib[0 :+ 16, 0 :+ 32]);\n"
        "}\n";
    for (int a = 0; a < BACKEND_ARCH_COUNT; a++) {
        Strbuf ptx = {0};
        source_ptx(src, "fb", (BackendArch)a, false, &ptx);
        cr_assert_null(strstr(sb_str(&ptx), "mma.sync"), "a dot that does not qualify used mma");
        sb_free(&ptx);
    }
}

/* Scalars only: the stores are made by thread 0 alone. */
Test(codegen, scalar_store) {
    const char *src = "kernel one(out: tensor<i32>[4], v: i32) grid(1) { out[1] = v * 2; }\n";
    Compiled c = compile_source_for("inline.tile", src, "one", true, 2);
    Strbuf text = {0}, err = {0};
    CodegenInfo info;
    CodegenOptions opt = {.arch = BACKEND_ARCH_SM80, .num_warps = 2};
    cr_assert(backend_compile_llvm(c.kernel, &opt, &text, &info, &err), "%s", sb_str(&err));
    cr_assert_eq(info.threads, 64);
    cr_assert_not_null(strstr(sb_str(&text), "tid.x"));
    cr_assert_not_null(strstr(sb_str(&text), "store i32"), "%s", sb_str(&text));
    cr_assert_not_null(strstr(sb_str(&text), "icmp eq i64 %tid, 0"), "%s", sb_str(&text));
    sb_free(&text);
    sb_free(&err);
    compiled_free(&c);
}

/* warps(N) in the source sets the block size when the options leave it open (num_warps 0):
 * the layout pass and the code generator agree on it. */
Test(codegen, kernel_warps_clause) {
    const char *src = "kernel wide(x: tensor<f32>[N]) grid(cdiv(N, 2048)) warps(8)\n"
                      "{\n  let i = block_id(0) * 2048;\n  x[i :+ 2048] = x[i :+ 2048] * 2.0;\n}\n";
    Compiled c = compile_source_for("wide.tile", src, "wide", true, 0);
    Strbuf ptx = {0}, err = {0};
    CodegenInfo info;
    CodegenOptions opt = {.arch = BACKEND_ARCH_SM90A};
    cr_assert(backend_compile_ptx(c.kernel, &opt, &ptx, &info, &err), "%s", sb_str(&err));
    cr_assert_eq(info.threads, 256);
    cr_assert_not_null(strstr(sb_str(&ptx), ".maxntid 256"), "%s", sb_str(&ptx));
    sb_free(&ptx);
    sb_free(&err);
    compiled_free(&c);
}

/* The code generator computes no layouts: a kernel whose IR did not go through the layout pass
 * (the VM's IR), or went through it for another block size, is an internal error with the
 * value and its location, not code for a layout it made up. */
Test(codegen, layouts_come_from_the_pass) {
    const char *src = "kernel inc(x: tensor<f32>[N]) grid(cdiv(N, 256))\n"
                      "{\n  let i = block_id(0) * 256;\n  x[i :+ 256] = x[i :+ 256] + 1.0;\n}\n";
    Strbuf text = {0}, err = {0};
    CodegenInfo info;
    CodegenOptions opt = {.arch = BACKEND_ARCH_SM80};

    Compiled vm = compile_source_for("inc.tile", src, "inc", false, 0);
    cr_assert_not(backend_compile_llvm(vm.kernel, &opt, &text, &info, &err));
    cr_assert_not(info.unsupported);
    cr_assert_not_null(strstr(sb_str(&err), "has no layout: the layout pass did not run"), "%s", sb_str(&err));
    cr_assert_not_null(strstr(sb_str(&err), "inc.tile:4:"), "no location in: %s", sb_str(&err));
    cr_assert_eq(text.len, 0);
    compiled_free(&vm);

    Compiled gpu = compile_source_for("inc.tile", src, "inc", true, 4);
    sb_clear(&err);
    opt.num_warps = 8;
    cr_assert_not(backend_compile_llvm(gpu.kernel, &opt, &text, &info, &err));
    cr_assert_not_null(strstr(sb_str(&err), "a layout for 128 threads, but the block has 256"), "%s", sb_str(&err));
    sb_clear(&err);
    opt.num_warps = 4;
    cr_assert(backend_compile_llvm(gpu.kernel, &opt, &text, &info, &err), "%s", sb_str(&err));
    cr_assert_eq(info.threads, 128);
    compiled_free(&gpu);
    sb_free(&text);
    sb_free(&err);
}

/* Element types the backend does not place in memory yet fail cleanly with a location. */
Test(codegen, unsupported_types) {
    const char *src = "kernel small(x: tensor<f6e3m2>[N], y: tensor<f32>[N]) grid(cdiv(N, 128))\n"
                      "{\n  let i = block_id(0) * 128;\n  y[i :+ 128] = cast<f32>(x[i :+ 128]);\n}\n";
    Compiled c = compile_source("small.tile", src, "small");
    Strbuf ptx = {0}, err = {0};
    CodegenInfo info;
    CodegenOptions opt = {.arch = BACKEND_ARCH_SM90A};
    cr_assert_not(backend_compile_ptx(c.kernel, &opt, &ptx, &info, &err));
    cr_assert(info.unsupported);
    cr_assert_not_null(strstr(sb_str(&err), "does not support f6e3m2"), "%s", sb_str(&err));
    cr_assert_not_null(strstr(sb_str(&err), "small.tile:"), "no location in: %s", sb_str(&err));
    cr_assert_eq(ptx.len, 0);
    sb_free(&ptx);
    sb_free(&err);
    compiled_free(&c);

    const char *src2 = "kernel nib(x: tensor<u4>[N], y: tensor<i32>[N]) grid(cdiv(N, 128))\n"
                       "{\n  let i = block_id(0) * 128;\n  y[i :+ 128] = cast<i32>(x[i :+ 128]);\n}\n";
    c = compile_source("nib.tile", src2, "nib");
    Strbuf err2 = {0};
    cr_assert_not(backend_compile_ptx(c.kernel, &opt, &ptx, &info, &err2));
    cr_assert(info.unsupported);
    cr_assert_not_null(strstr(sb_str(&err2), "does not support u4"), "%s", sb_str(&err2));
    sb_free(&err2);
    compiled_free(&c);
}
#else
Test(codegen, without_llvm) { cr_skip_test("built without LLVM"); }
#endif
