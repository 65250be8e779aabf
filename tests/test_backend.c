/* test_backend.c: the NVPTX backend (LLVM IR -> PTX), PTX -> cubin by ptxas and nvJitLink, and
 * the CUDA device's behaviour on a machine without a driver. Runs without a GPU. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/backend.h"
#include "runtime/cuda.h"
#include "runtime/runtime.h"

#ifdef TILE_HAVE_LLVM
/* Emits the vector-add kernel for arch; the PTX text is returned (caller frees). */
static char *vector_add_ptx(BackendArch arch) {
    LLVMContextRef context = llvm_context_new();
    LLVMModuleRef module = llvm_build_vector_add(context);
    Strbuf ptx = {0}, err = {0};
    PtxOptions options = llvm_ptx_options(arch);
    bool ok = llvm_emit_ptx(module, &options, &ptx, &err);
    cr_assert(ok, "PTX for %s: %s", backend_arch_name(arch), sb_str(&err));
    cr_assert_eq(err.len, 0);
    llvm_context_free(context);
    sb_free(&err);
    return ptx.data;
}

/* The ".version X.Y" of a PTX text, as 10 * X + Y. */
static int ptx_version(const char *ptx) {
    const char *v = strstr(ptx, "\n.version ");
    cr_assert_not_null(v, "no .version in\n%s", ptx);
    int major = 0, minor = 0;
    cr_assert_eq(sscanf(v, "\n.version %d.%d", &major, &minor), 2);
    return major * 10 + minor;
}

static bool has_line_starting(const char *text, const char *prefix) {
    for (const char *p = text; p; p = strchr(p, '\n')) {
        if (*p == '\n') p++;
        while (*p == ' ' || *p == '\t') p++;
        if (strncmp(p, prefix, strlen(prefix)) == 0) return true;
    }
    return false;
}

Test(backend, arch_names_and_capabilities) {
    BackendArch arch;
    cr_assert(backend_arch_parse("sm_90a", &arch));
    cr_assert_eq(arch, BACKEND_ARCH_SM90A);
    cr_assert(backend_arch_parse("sm_80", &arch));
    cr_assert_eq(arch, BACKEND_ARCH_SM80);
    cr_assert_not(backend_arch_parse("sm_90", &arch));
    cr_assert_str_eq(backend_arch_name(BACKEND_ARCH_SM90A), "sm_90a");
    cr_assert(backend_arch_for_capability(9, 0, &arch));
    cr_assert_eq(arch, BACKEND_ARCH_SM90A);
    cr_assert(backend_arch_for_capability(8, 6, &arch));
    cr_assert_eq(arch, BACKEND_ARCH_SM80);
    cr_assert(backend_arch_for_capability(10, 0, &arch));
    cr_assert_eq(arch, BACKEND_ARCH_SM80);
    cr_assert_not(backend_arch_for_capability(7, 5, &arch));
}

Test(backend, vector_add_verifies_and_is_a_kernel) {
    Strbuf err = {0}, text = {0};
    cr_assert(llvm_init_nvptx(&err), "%s", sb_str(&err));
    LLVMContextRef context = llvm_context_new();
    LLVMModuleRef module = llvm_build_vector_add(context);
    cr_assert(llvm_verify_module(module, &err), "%s", sb_str(&err));
    cr_assert_eq(err.len, 0);
    llvm_print_module(module, &text);
    cr_assert(strstr(sb_str(&text), "define ptx_kernel void @vector_add(ptr addrspace(1)"),
              "%s", sb_str(&text));
    cr_assert(strstr(sb_str(&text), "@llvm.nvvm.read.ptx.sreg.tid.x()"), "%s", sb_str(&text));
    cr_assert(strstr(sb_str(&text), "\"nvvm.maxntid\"=\"1024,1,1\""), "%s", sb_str(&text));
    cr_assert_not_null(llvm_get_function(module, LLVM_VECTOR_ADD_NAME));
    llvm_context_free(context);
    sb_free(&err);
    sb_free(&text);
}

Test(backend, ptx_for_sm80) {
    char *ptx = vector_add_ptx(BACKEND_ARCH_SM80);
    cr_assert(strstr(ptx, "\n.target sm_80\n"), "%s", ptx);
    cr_assert(strstr(ptx, ".address_size 64"), "%s", ptx);
    cr_assert(strstr(ptx, ".entry vector_add("), "%s", ptx);
    cr_assert(strstr(ptx, ".maxntid 1024, 1, 1"), "%s", ptx);
    cr_assert(has_line_starting(ptx, "ld.global."), "%s", ptx);
    cr_assert(has_line_starting(ptx, "st.global."), "%s", ptx);
    cr_assert(has_line_starting(ptx, "add.rn.f32") || has_line_starting(ptx, "add.f32"), "%s", ptx);
    cr_assert(strstr(ptx, "%tid.x") && strstr(ptx, "%ctaid.x") && strstr(ptx, "%ntid.x"), "%s", ptx);
    cr_assert(has_line_starting(ptx, "setp."), "the bounds check is gone:\n%s", ptx);
    cr_assert_geq(ptx_version(ptx), 70);
    free(ptx);
}

Test(backend, ptx_for_sm90a) {
    char *ptx = vector_add_ptx(BACKEND_ARCH_SM90A);
    cr_assert(strstr(ptx, "\n.target sm_90a\n"), "%s", ptx);
    cr_assert(strstr(ptx, ".entry vector_add("), "%s", ptx);
    cr_assert(has_line_starting(ptx, "ld.global."), "%s", ptx);
    cr_assert(has_line_starting(ptx, "st.global."), "%s", ptx);
    cr_assert_geq(ptx_version(ptx), 80, "sm_90a needs PTX 8.0:\n%s", ptx);
    free(ptx);
}

Test(backend, extra_features_raise_the_ptx_version) {
    LLVMContextRef context = llvm_context_new();
    LLVMModuleRef module = llvm_build_vector_add(context);
    Strbuf ptx = {0}, err = {0};
    PtxOptions options = llvm_ptx_options(BACKEND_ARCH_SM80);
    options.features = "+ptx78";
    cr_assert(llvm_emit_ptx(module, &options, &ptx, &err), "%s", sb_str(&err));
    cr_assert_eq(ptx_version(sb_str(&ptx)), 78, "%s", sb_str(&ptx));
    llvm_context_free(context);
    sb_free(&ptx);
    sb_free(&err);
}

static const char reqntid_kernel[] =
    "define void @fill(ptr addrspace(1) %out) {\n"
    "  %t = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()\n"
    "  %p = getelementptr inbounds i32, ptr addrspace(1) %out, i32 %t\n"
    "  store i32 7, ptr addrspace(1) %p, align 4\n"
    "  ret void\n"
    "}\n"
    "declare i32 @llvm.nvvm.read.ptx.sreg.tid.x()\n";

Test(backend, parsed_module_marked_with_reqntid) {
    LLVMContextRef context = llvm_context_new();
    Strbuf ptx = {0}, err = {0};
    LLVMModuleRef module =
        llvm_parse_ir(context, "fill.ll", reqntid_kernel, strlen(reqntid_kernel), &err);
    cr_assert_not_null(module, "%s", sb_str(&err));
    LLVMValueRef fn = llvm_get_function(module, "fill");
    cr_assert_not_null(fn);
    const unsigned reqntid[3] = {128, 2, 0};
    llvm_mark_kernel(fn, NULL, reqntid);
    PtxOptions options = llvm_ptx_options(BACKEND_ARCH_SM90A);
    cr_assert(llvm_emit_ptx(module, &options, &ptx, &err), "%s", sb_str(&err));
    cr_assert(strstr(sb_str(&ptx), ".entry fill("), "%s", sb_str(&ptx));
    cr_assert(strstr(sb_str(&ptx), ".reqntid 128, 2, 1"), "%s", sb_str(&ptx));
    cr_assert_null(strstr(sb_str(&ptx), ".maxntid"), "%s", sb_str(&ptx));
    llvm_context_free(context);
    sb_free(&ptx);
    sb_free(&err);
}

Test(backend, unmarked_function_is_not_an_entry) {
    LLVMContextRef context = llvm_context_new();
    Strbuf ptx = {0}, err = {0};
    LLVMModuleRef module =
        llvm_parse_ir(context, "fill.ll", reqntid_kernel, strlen(reqntid_kernel), &err);
    cr_assert_not_null(module, "%s", sb_str(&err));
    PtxOptions options = llvm_ptx_options(BACKEND_ARCH_SM80);
    options.opt_level = 0;
    cr_assert(llvm_emit_ptx(module, &options, &ptx, &err), "%s", sb_str(&err));
    cr_assert(strstr(sb_str(&ptx), ".func fill("), "%s", sb_str(&ptx));
    cr_assert_null(strstr(sb_str(&ptx), ".entry"), "%s", sb_str(&ptx));
    llvm_context_free(context);
    sb_free(&ptx);
    sb_free(&err);
}

/* %y is used before it is defined: it parses, and the verifier must reject it. */
static const char broken_module[] =
    "define ptx_kernel void @broken(ptr addrspace(1) %out) {\n"
    "entry:\n"
    "  %x = add i32 %y, 1\n"
    "  %y = add i32 %x, 1\n"
    "  store i32 %y, ptr addrspace(1) %out, align 4\n"
    "  ret void\n"
    "}\n";

Test(backend, broken_module_is_a_reported_error) {
    LLVMContextRef context = llvm_context_new();
    Strbuf ptx = {0}, err = {0};
    LLVMModuleRef module =
        llvm_parse_ir(context, "broken.ll", broken_module, strlen(broken_module), &err);
    cr_assert_not_null(module, "%s", sb_str(&err));
    cr_assert_not(llvm_verify_module(module, &err));
    cr_assert(strstr(sb_str(&err), "verification failed"), "%s", sb_str(&err));
    cr_assert(strstr(sb_str(&err), "does not dominate"), "%s", sb_str(&err));
    sb_clear(&err);
    PtxOptions options = llvm_ptx_options(BACKEND_ARCH_SM90A);
    cr_assert_not(llvm_emit_ptx(module, &options, &ptx, &err));
    cr_assert(strstr(sb_str(&err), "does not dominate"), "%s", sb_str(&err));
    cr_assert_eq(ptx.len, 0);
    llvm_context_free(context);
    sb_free(&ptx);
    sb_free(&err);
}

Test(backend, parse_error_is_reported) {
    LLVMContextRef context = llvm_context_new();
    Strbuf err = {0};
    const char text[] = "define void @f() {\n  ret i32 oops\n}\n";
    cr_assert_null(llvm_parse_ir(context, "bad.ll", text, strlen(text), &err));
    cr_assert(strstr(sb_str(&err), "bad.ll"), "%s", sb_str(&err));
    cr_assert(strstr(sb_str(&err), "2:"), "no line number in: %s", sb_str(&err));
    llvm_context_free(context);
    sb_free(&err);
}

Test(backend, bad_opt_level_is_an_error) {
    LLVMContextRef context = llvm_context_new();
    LLVMModuleRef module = llvm_build_vector_add(context);
    Strbuf ptx = {0}, err = {0};
    PtxOptions options = llvm_ptx_options(BACKEND_ARCH_SM80);
    options.opt_level = 7;
    cr_assert_not(llvm_emit_ptx(module, &options, &ptx, &err));
    cr_assert(strstr(sb_str(&err), "optimization level 7"), "%s", sb_str(&err));
    llvm_context_free(context);
    sb_free(&ptx);
    sb_free(&err);
}

/* Several threads, each with its own context, compile at once (target setup is shared). */
static void *emit_in_thread(void *arg) {
    BackendArch arch = (BackendArch)(intptr_t)arg;
    LLVMContextRef context = llvm_context_new();
    LLVMModuleRef module = llvm_build_vector_add(context);
    Strbuf ptx = {0}, err = {0};
    PtxOptions options = llvm_ptx_options(arch);
    bool ok = llvm_emit_ptx(module, &options, &ptx, &err) &&
              strstr(sb_str(&ptx), arch == BACKEND_ARCH_SM80 ? ".target sm_80\n"
                                                             : ".target sm_90a\n");
    llvm_context_free(context);
    sb_free(&ptx);
    sb_free(&err);
    return (void *)(intptr_t)ok;
}

Test(backend, threads_emit_concurrently) {
    pthread_t threads[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&threads[i], NULL, emit_in_thread, (void *)(intptr_t)(i % 2)), 0);
    for (int i = 0; i < 4; i++) {
        void *ok;
        pthread_join(threads[i], &ok);
        cr_assert(ok, "thread %d failed", i);
    }
}

/* The PTX of one of two kernels: 0 the hand-built vector add, 1 the parsed fill kernel. */
static char *kernel_ptx(int which, BackendArch arch) {
    LLVMContextRef context = llvm_context_new();
    Strbuf ptx = {0}, err = {0};
    LLVMModuleRef module = which == 0 ? llvm_build_vector_add(context)
                                      : llvm_parse_ir(context, "fill.ll", reqntid_kernel, strlen(reqntid_kernel), &err);
    cr_assert_not_null(module, "%s", sb_str(&err));
    if (which == 1) {
        const unsigned reqntid[3] = {128, 1, 1};
        llvm_mark_kernel(llvm_get_function(module, "fill"), NULL, reqntid);
    }
    PtxOptions options = llvm_ptx_options(arch);
    cr_assert(llvm_emit_ptx(module, &options, &ptx, &err), "%s", sb_str(&err));
    llvm_context_free(context);
    sb_free(&err);
    return ptx.data;
}

typedef struct PoolWorker {
    const char *want[2][BACKEND_ARCH_COUNT]; /* the PTX of a fresh target machine */
    int mismatches;
} PoolWorker;

static void *pool_worker(void *arg) {
    PoolWorker *w = arg;
    for (int round = 0; round < 12; round++) {
        int which = round % 2;
        BackendArch arch = (BackendArch)(round / 2 % 2);
        char *ptx = kernel_ptx(which, arch);
        if (strcmp(ptx, w->want[which][arch]) != 0) w->mismatches++;
        free(ptx);
    }
    return NULL;
}

/* Target machines are pooled: a compile on a machine that compiled another kernel before gives
 * the same PTX as one on a fresh machine, also when two threads take machines from the pool at
 * once, and the pool makes no more machines than compiles run at the same time. */
Test(backend, pooled_target_machines_compile_identically) {
    unsigned long made = llvm_target_machines_made();
    PoolWorker w = {0};
    /* The first compile per architecture runs on a fresh machine: vector add first for sm_80,
     * fill first for sm_90a; the other kernel then reuses that machine. */
    char *fresh_va80 = kernel_ptx(0, BACKEND_ARCH_SM80), *reused_fill80 = kernel_ptx(1, BACKEND_ARCH_SM80);
    char *fresh_fill90 = kernel_ptx(1, BACKEND_ARCH_SM90A), *reused_va90 = kernel_ptx(0, BACKEND_ARCH_SM90A);
    cr_assert_eq(llvm_target_machines_made() - made, 2, "one machine per architecture, reused");
    char *again_va80 = kernel_ptx(0, BACKEND_ARCH_SM80), *again_fill90 = kernel_ptx(1, BACKEND_ARCH_SM90A);
    cr_assert_str_eq(again_va80, fresh_va80, "vector add on a reused machine differs from a fresh one");
    cr_assert_str_eq(again_fill90, fresh_fill90, "fill on a reused machine differs from a fresh one");
    w.want[0][BACKEND_ARCH_SM80] = fresh_va80, w.want[1][BACKEND_ARCH_SM80] = reused_fill80;
    w.want[0][BACKEND_ARCH_SM90A] = reused_va90, w.want[1][BACKEND_ARCH_SM90A] = fresh_fill90;
    PoolWorker workers[2] = {w, w};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) cr_assert_eq(pthread_create(&threads[i], NULL, pool_worker, &workers[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(threads[i], NULL);
        cr_assert_eq(workers[i].mismatches, 0, "thread %d: %d compiles differ", i, workers[i].mismatches);
    }
    cr_assert_leq(llvm_target_machines_made() - made, 4, "at most two machines per architecture (two threads)");
    free(fresh_va80), free(reused_fill80), free(fresh_fill90), free(reused_va90), free(again_va80), free(again_fill90);
}

/* ---- PTX -> cubin ------------------------------------------------------------------------- */

static void require_ptxas(void) {
    char path[4096];
    Strbuf searched = {0};
    if (!backend_find_ptxas(path, sizeof path, &searched))
        cr_skip_test("ptxas not found (looked in %s)", sb_str(&searched));
    sb_free(&searched);
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void assemble_and_check(BackendArch arch, CubinTool tool) {
    char *ptx = vector_add_ptx(arch);
    Strbuf cubin = {0}, err = {0};
    bool ok = backend_ptx_to_cubin(ptx, strlen(ptx), arch, tool, &cubin, &err);
    cr_assert(ok, "%s: %s", backend_arch_name(arch), sb_str(&err));
    cr_assert_gt(cubin.len, 64);
    cr_assert_eq(memcmp(cubin.data, "\x7f" "ELF", 4), 0, "a cubin is an ELF image");
    /* The kernel's name is in the ELF symbol table. */
    bool named = false;
    for (size_t i = 0; i + 10 <= cubin.len && !named; i++)
        named = memcmp(cubin.data + i, "vector_add", 10) == 0;
    cr_assert(named);
    free(ptx);
    sb_free(&cubin);
    sb_free(&err);
}

Test(ptxas, assembles_sm80_and_sm90a_and_cleans_up) {
    require_ptxas();
    char tmp[] = "/tmp/tile-test-XXXXXX";
    cr_assert_not_null(mkdtemp(tmp));
    setenv("TMPDIR", tmp, 1);
    assemble_and_check(BACKEND_ARCH_SM80, CUBIN_TOOL_PTXAS);
    assemble_and_check(BACKEND_ARCH_SM90A, CUBIN_TOOL_PTXAS);
    cr_assert_eq(count_entries(tmp), 0, "temporary files left in %s", tmp);
    rmdir(tmp);
}

Test(ptxas, reports_ptxas_errors) {
    require_ptxas();
    const char bad[] = ".version 8.0\n.target sm_90a\n.address_size 64\n"
                       ".visible .entry k() {\n  bogus.instruction %r1;\n  ret;\n}\n";
    Strbuf cubin = {0}, err = {0};
    cr_assert_not(backend_ptx_to_cubin(bad, strlen(bad), BACKEND_ARCH_SM90A, CUBIN_TOOL_PTXAS,
                                       &cubin, &err));
    cr_assert(strstr(sb_str(&err), "-arch=sm_90a failed"), "%s", sb_str(&err));
    cr_assert(strstr(sb_str(&err), "bogus"), "ptxas's message is missing: %s", sb_str(&err));
    cr_assert_eq(cubin.len, 0);
    sb_free(&cubin);
    sb_free(&err);
}

Test(ptxas, missing_ptxas_names_the_places_searched) {
    setenv("TILE_PTXAS", "/nonexistent/ptxas", 1);
    setenv("CUDA_HOME", "/nonexistent/cuda", 1);
    setenv("PATH", "/nonexistent/bin", 1);
    char path[4096];
    Strbuf searched = {0};
    if (backend_find_ptxas(path, sizeof path, &searched)) {
        cr_assert_str_eq(path, "/usr/local/cuda/bin/ptxas"); /* the one fixed place */
    } else {
        cr_assert(strstr(sb_str(&searched), "/nonexistent/ptxas"), "%s", sb_str(&searched));
        cr_assert(strstr(sb_str(&searched), "/nonexistent/cuda/bin/ptxas"), "%s", sb_str(&searched));
        cr_assert(strstr(sb_str(&searched), "$PATH"), "%s", sb_str(&searched));
    }
    sb_free(&searched);
}

Test(ptxas, tile_ptxas_is_used_first) {
    require_ptxas();
    char real[4096];
    cr_assert(backend_find_ptxas(real, sizeof real, NULL));
    char tmp[] = "/tmp/tile-test-XXXXXX";
    cr_assert_not_null(mkdtemp(tmp));
    char link[4200];
    snprintf(link, sizeof link, "%s/my-ptxas", tmp);
    cr_assert_eq(symlink(real, link), 0);
    setenv("TILE_PTXAS", link, 1);
    char found[4096];
    cr_assert(backend_find_ptxas(found, sizeof found, NULL));
    cr_assert_str_eq(found, link);
    unlink(link);
    rmdir(tmp);
}

/* A "ptxas" (a script in the new directory tmp, its path in script) that leaves the file mark
 * when it runs and writes the cubin "fake-cubin"; TILE_PTXAS names it. */
static void fake_ptxas(char *tmp, char script[4200], char mark[4200]) {
    cr_assert_not_null(mkdtemp(tmp));
    snprintf(script, 4200, "%s/fake-ptxas", tmp);
    snprintf(mark, 4200, "%s/called", tmp);
    FILE *f = fopen(script, "w");
    cr_assert_not_null(f);
    fprintf(f, "#!/bin/sh\necho \"$1\" > %s\nprintf fake-cubin > \"$4\"\n", mark);
    fclose(f);
    cr_assert_eq(chmod(script, 0755), 0);
    setenv("TILE_PTXAS", script, 1);
}

/* CUBIN_TOOL_AUTO assembles a kernel with setmaxnreg with the ptxas program, whole program, even
 * where nvJitLink is installed (nvJitLink ignores setmaxnreg), and others with nvJitLink when it
 * is. The "ptxas" here is a script that leaves a mark and writes a fixed image. */
Test(ptxas, auto_assembles_setmaxnreg_with_ptxas) {
    char tmp[] = "/tmp/tile-test-XXXXXX", script[4200], mark[4200];
    fake_ptxas(tmp, script, mark);
    const char ptx[] = ".version 8.0\n.target sm_90a\n.address_size 64\n"
                       ".visible .entry k() { setmaxnreg.inc.sync.aligned.u32 232; ret; }\n";
    Strbuf cubin = {0}, err = {0};
    cr_assert(backend_ptx_to_cubin(ptx, strlen(ptx), BACKEND_ARCH_SM90A, CUBIN_TOOL_AUTO, &cubin, &err), "%s",
              sb_str(&err));
    cr_assert_eq(cubin.len, strlen("fake-cubin"));
    cr_assert_eq(memcmp(cubin.data, "fake-cubin", cubin.len), 0);
    cr_assert_eq(access(mark, F_OK), 0, "setmaxnreg did not go through ptxas");
    unlink(mark);
    if (backend_have_nvjitlink()) { /* without setmaxnreg nvJitLink: the script is not run */
        const char plain[] = ".version 8.0\n.target sm_90a\n.address_size 64\n.visible .entry k() { ret; }\n";
        sb_free(&cubin);
        cr_assert(backend_ptx_to_cubin(plain, strlen(plain), BACKEND_ARCH_SM90A, CUBIN_TOOL_AUTO, &cubin, &err), "%s",
                  sb_str(&err));
        cr_assert_neq(access(mark, F_OK), 0, "a kernel without setmaxnreg went through ptxas although nvJitLink is installed");
    }
    unsetenv("TILE_PTXAS");
    unlink(script);
    rmdir(tmp);
    sb_free(&cubin);
    sb_free(&err);
}

/* CUBIN_TOOL_AUTO also takes the ptxas program for a kernel with wgmma and an instruction that
 * SASS implements as a subroutine call (nvJitLink would serialize every wgmma of it, C7509), and
 * nvJitLink for wgmma without one or for such an instruction without wgmma. */
Test(ptxas, auto_assembles_wgmma_with_calls_with_ptxas) {
    char tmp[] = "/tmp/tile-test-XXXXXX", script[4200], mark[4200];
    fake_ptxas(tmp, script, mark);
    static const char head[] = ".version 8.0\n.target sm_90a\n.address_size 64\n.visible .entry k() {\n";
    static const char wgmma[] = "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {...};\n";
    static const char *const calls[] = {"rcp.rn.f32 %r1, %r2;\n", "div.rn.f64 %fd1, %fd2, %fd3;\n",
                                        "sqrt.rn.f32 %r1, %r2;\n", "div.s64 %rd1, %rd2, %rd3;\n",
                                        "rem.u64 %rd1, %rd2, %rd3;\n"};
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        for (int with_wgmma = 0; with_wgmma < 2; with_wgmma++) {
            if (!with_wgmma && !backend_have_nvjitlink()) continue; /* ptxas either way */
            char ptx[512];
            snprintf(ptx, sizeof ptx, "%s%s%sret;\n}\n", head, with_wgmma ? wgmma : "", calls[i]);
            Strbuf cubin = {0}, err = {0};
            cr_assert(backend_ptx_to_cubin(ptx, strlen(ptx), BACKEND_ARCH_SM90A, CUBIN_TOOL_AUTO, &cubin, &err) ||
                          !with_wgmma, /* nvJitLink rejects this fake PTX: only the route matters */
                      "%s", sb_str(&err));
            bool called = access(mark, F_OK) == 0;
            cr_assert_eq(called, with_wgmma, "%s with%s wgmma: ptxas %s", calls[i], with_wgmma ? "" : "out",
                         called ? "called" : "not called");
            unlink(mark);
            sb_free(&cubin);
            sb_free(&err);
        }
    }
    if (backend_have_nvjitlink()) { /* wgmma alone stays with nvJitLink */
        char ptx[512];
        snprintf(ptx, sizeof ptx, "%s%sret;\n}\n", head, wgmma);
        Strbuf cubin = {0}, err = {0};
        (void)backend_ptx_to_cubin(ptx, strlen(ptx), BACKEND_ARCH_SM90A, CUBIN_TOOL_AUTO, &cubin, &err);
        cr_assert_neq(access(mark, F_OK), 0, "wgmma without a call went through ptxas although nvJitLink is installed");
        sb_free(&cubin);
        sb_free(&err);
    }
    unsetenv("TILE_PTXAS");
    unlink(script);
    rmdir(tmp);
}

/* The ptxas program gets --split-compile with the count of $TILE_PTXAS_THREADS (0: every core;
 * none when it is unset, 1 or unreadable), and a ptxas that does not know the
 * option (an old one: it exits 1 naming it) is run again without it. The "ptxas" here is a script
 * that writes its arguments to a file. */
static void split_compile_case(const char *threads, bool old_ptxas, const char *expect) {
    char tmp[] = "/tmp/tile-test-XXXXXX";
    cr_assert_not_null(mkdtemp(tmp));
    char script[4200], args[4200];
    snprintf(script, sizeof script, "%s/ptxas", tmp);
    snprintf(args, sizeof args, "%s/args", tmp);
    FILE *f = fopen(script, "w");
    cr_assert_not_null(f);
    fprintf(f, "#!/bin/sh\necho \"$*\" >> %s\n", args);
    if (old_ptxas)
        fprintf(f, "case \"$*\" in *split-compile*) echo \"ptxas fatal : Unknown option '--split-compile'\"; exit 1;; esac\n");
    fprintf(f, "printf fake-cubin > \"$4\"\n");
    fclose(f);
    cr_assert_eq(chmod(script, 0755), 0);
    setenv("TILE_PTXAS", script, 1);
    if (threads) setenv("TILE_PTXAS_THREADS", threads, 1);
    else unsetenv("TILE_PTXAS_THREADS");
    const char ptx[] = ".version 8.0\n.target sm_90a\n.address_size 64\n.visible .entry k() { ret; }\n";
    Strbuf cubin = {0}, err = {0}, seen = {0};
    cr_assert(backend_ptx_to_cubin(ptx, strlen(ptx), BACKEND_ARCH_SM90A, CUBIN_TOOL_PTXAS, &cubin, &err), "%s",
              sb_str(&err));
    cr_assert_eq(cubin.len, strlen("fake-cubin"));
    f = fopen(args, "r");
    cr_assert_not_null(f);
    char line[8192];
    while (fgets(line, sizeof line, f)) sb_puts(&seen, line);
    fclose(f);
    if (expect) {
        cr_assert(strstr(sb_str(&seen), expect), "TILE_PTXAS_THREADS=%s: ptxas was run with\n%s", threads ? threads : "(unset)",
                  sb_str(&seen));
    } else {
        cr_assert_null(strstr(sb_str(&seen), "split-compile"), "TILE_PTXAS_THREADS=%s: ptxas was run with\n%s",
                       threads ? threads : "(unset)", sb_str(&seen));
    }
    if (old_ptxas) { /* two runs: with the option, then without */
        const char *second = strchr(sb_str(&seen), '\n');
        cr_assert(second && second[1] && !strstr(second + 1, "split-compile"), "no retry without the option:\n%s",
                  sb_str(&seen));
    }
    unsetenv("TILE_PTXAS");
    unsetenv("TILE_PTXAS_THREADS");
    unlink(args);
    unlink(script);
    rmdir(tmp);
    sb_free(&cubin);
    sb_free(&err);
    sb_free(&seen);
}

Test(ptxas, split_compile_follows_tile_ptxas_threads) {
    split_compile_case(NULL, false, NULL);
    split_compile_case("0", false, "--split-compile 0");
    split_compile_case("4", false, "--split-compile 4");
    split_compile_case("1", false, NULL);
    split_compile_case("lots", false, NULL);
    split_compile_case("-3", false, NULL);
    split_compile_case("0", true, "--split-compile 0");
}

/* TILE_WARP_SPECIALIZE=1 asks for producer warpgroups only where the ptxas program can assemble
 * them: nvJitLink would ignore their setmaxnreg. */
Test(ptxas, warp_specialization_needs_the_ptxas_program) {
    setenv("TILE_WARP_SPECIALIZE", "1", 1);
    setenv("TILE_PTXAS", "/bin/true", 1); /* an executable found first stands for ptxas */
    cr_assert(rt_warp_specialize());
    setenv("TILE_PTXAS", "/nonexistent/ptxas", 1);
    setenv("CUDA_HOME", "/nonexistent/cuda", 1);
    setenv("PATH", "/nonexistent/bin", 1);
    char path[4096];
    if (!backend_find_ptxas(path, sizeof path, NULL)) cr_assert_not(rt_warp_specialize());
    setenv("TILE_PTXAS", "/bin/true", 1);
    setenv("TILE_WARP_SPECIALIZE", "0", 1);
    cr_assert_not(rt_warp_specialize());
}

Test(nvjitlink, assembles_sm80_and_sm90a) {
    if (!backend_have_nvjitlink()) cr_skip_test("libnvJitLink.so.13 / .12 not found");
    assemble_and_check(BACKEND_ARCH_SM80, CUBIN_TOOL_NVJITLINK);
    assemble_and_check(BACKEND_ARCH_SM90A, CUBIN_TOOL_NVJITLINK);
}

Test(nvjitlink, reports_errors_with_its_log) {
    if (!backend_have_nvjitlink()) cr_skip_test("libnvJitLink.so.13 / .12 not found");
    const char bad[] = ".version 8.0\n.target sm_90a\n.address_size 64\n"
                       ".visible .entry k() {\n  bogus.instruction %r1;\n  ret;\n}\n";
    Strbuf cubin = {0}, err = {0};
    cr_assert_not(backend_ptx_to_cubin(bad, strlen(bad), BACKEND_ARCH_SM90A,
                                       CUBIN_TOOL_NVJITLINK, &cubin, &err));
    cr_assert(strstr(sb_str(&err), "failed"), "%s", sb_str(&err));
    cr_assert(strstr(sb_str(&err), "bogus"), "the log is missing: %s", sb_str(&err));
    sb_free(&cubin);
    sb_free(&err);
}

Test(cubin, auto_picks_an_available_tool) {
    char path[4096];
    if (!backend_have_nvjitlink() && !backend_find_ptxas(path, sizeof path, NULL))
        cr_skip_test("neither nvJitLink nor ptxas is available");
    assemble_and_check(BACKEND_ARCH_SM90A, CUBIN_TOOL_AUTO);
}

#else
Test(backend, built_without_llvm) { cr_skip_test("built with TILE_WITH_LLVM=OFF: no backend"); }
#endif

/* ---- the CUDA device without a driver ----------------------------------------------------- */

Test(cuda, no_driver_is_a_clear_error) {
    void *libcuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    Strbuf err = {0};
    CudaDevice *device = (CudaDevice *)1;
    if (libcuda) {
        /* A driver is installed: asking for a device past the last is the error. */
        dlclose(libcuda);
        int count = cuda_device_count();
        cr_assert_geq(count, 0);
        cr_assert_neq(cuda_device_open(count, &device, &err), TILE_OK);
        cr_assert_null(device);
        cr_assert_gt(err.len, 0);
    } else {
        cr_assert_eq(cuda_device_count(), 0);
        cr_assert_eq(cuda_driver_version(), 0);
        cr_assert_eq(cuda_device_open(0, &device, &err), TILE_ERROR_NOT_FOUND);
        cr_assert_null(device);
        cr_assert(strstr(sb_str(&err), "libcuda.so.1 not found: no NVIDIA driver on this machine ("),
                  "%s", sb_str(&err));
        sb_clear(&err);
        cr_assert_eq(cuda_driver_load(&err), TILE_ERROR_NOT_FOUND, "the answer is kept");
        cr_assert(strstr(sb_str(&err), "libcuda.so.1"), "%s", sb_str(&err));
    }
    sb_free(&err);
}
