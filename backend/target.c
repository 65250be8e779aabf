/*
 * target.c: LLVM's NVPTX target through the LLVM-C API: target setup, module verification, the
 * optimization pipeline and PTX emission, and the hand-built vector-add kernel the tests use.
 *
 * The NVPTX target is registered once per process (pthread_once); everything else works on the
 * caller's module and context. Target machines are pooled per (architecture, optimization
 * level): a compile takes an idle one from the pool (or makes one, ~0.1 ms) and gives it back
 * when done, so no two threads ever use one machine at once, and a machine's state between
 * uses is only its options, which every use sets the same. llvm_emit_ptx is the whole path:
 * it puts the nvptx64 triple and the target's data layout on the module, runs the verifier
 * (its report is returned, LLVM is never allowed to abort on a malformed module), runs the new
 * pass manager's light pipeline at level 2 (run_pipeline; default<On> at other levels, or the one
 * TILE_LLVM_PIPELINE names) with the target machine (so NVPTX's own IR passes and cost
 * model take part) and prints PTX into a memory buffer. Level 2, not 3, for the pipeline and the
 * code generator alike (llvm_ptx_options): on every stdlib kernel (sm_80 and sm_90a, generic and
 * specialized) the PTX is the same but for cumsum_rows, which gets 25 fewer instructions and
 * fewer registers (O3's extra passes duplicate a block of its scan), and gather_rows, whose
 * instructions are the same in another order, for 5-10% less CPU time (bench/RESULTS.md). It notes on the calling thread how long
 * the IR pipeline and the code generator took (llvm_emit_times), for tilec --time.
 *
 * Kernels are marked the way LLVM 22 expects: the ptx_kernel calling convention (the older
 * !nvvm.annotations "kernel" metadata is only auto-upgraded), and the block-size hints as the
 * function attributes "nvvm.maxntid" / "nvvm.reqntid" ("x,y,z"), which become .maxntid /
 * .reqntid directives. The PTX ISA version is left to LLVM unless the caller asks for more: it
 * is the lowest one the architecture needs (7.0 for sm_80, 8.0 for sm_90a with LLVM 22).
 */
#include "backend/backend.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/IRReader.h>
#include <llvm-c/Linker.h>
#include <llvm-c/Support.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#define NVPTX_TRIPLE "nvptx64-nvidia-cuda"

static const char *const arch_names[BACKEND_ARCH_COUNT] = {
    [BACKEND_ARCH_SM80] = "sm_80",
    [BACKEND_ARCH_SM90A] = "sm_90a",
};

const char *backend_arch_name(BackendArch arch) {
    assert((unsigned)arch < BACKEND_ARCH_COUNT);
    return arch_names[arch];
}

bool backend_arch_parse(const char *name, BackendArch *out) {
    for (int i = 0; i < BACKEND_ARCH_COUNT; i++) {
        if (strcmp(name, arch_names[i]) == 0) {
            *out = (BackendArch)i;
            return true;
        }
    }
    return false;
}

bool backend_arch_for_capability(int major, int minor, BackendArch *out) {
    if (major < 8) return false;
    *out = (major == 9 && minor == 0) ? BACKEND_ARCH_SM90A : BACKEND_ARCH_SM80;
    return true;
}

PtxOptions llvm_ptx_options(BackendArch arch) {
    return (PtxOptions){.arch = arch, .opt_level = 2, .features = NULL}; /* see the top of the file */
}

/* ---- target setup ------------------------------------------------------------------------- */

static pthread_once_t nvptx_once = PTHREAD_ONCE_INIT;
static LLVMTargetRef nvptx_target;
static char nvptx_error[512];
static void nvptx_register(void);

static bool lsr_enabled;
static const char *pipeline_asked; /* TILE_LLVM_PIPELINE, or NULL */

/* LLVM's loop strength reduction (a code generator IR pass) is off unless TILE_LLVM_LSR=1: on
 * tile's unrolled per-element code it rewrites each element's address in a loop into an
 * induction variable of its own, which ptxas keeps in registers (softmax's variant 228 -> 77
 * registers without it, layernorm's 255 with 336 bytes of spills -> 132, gemm's generic kernel
 * 768 -> 328 bytes of spills, flash_fwd's 218 -> 223; bench/RESULTS.md), and it is a fifth of
 * the code generator's time on softmax. The option is LLVM's process-wide -disable-lsr, set once
 * here, before any target machine exists; LLVM is linked into libtile, so no other LLVM in the
 * process sees it. */
static void set_llvm_options(void) {
    const char *pipeline = getenv("TILE_LLVM_PIPELINE");
    pipeline_asked = pipeline && *pipeline ? xstrdup(pipeline) : NULL;
    const char *lsr = getenv("TILE_LLVM_LSR");
    lsr_enabled = lsr && strcmp(lsr, "1") == 0;
    if (lsr_enabled) return;
    const char *const argv[] = {"libtile", "-disable-lsr"};
    LLVMParseCommandLineOptions(2, argv, NULL);
}

bool backend_llvm_lsr(void) {
    pthread_once(&nvptx_once, nvptx_register);
    return lsr_enabled;
}

const char *backend_llvm_pipeline(void) {
    pthread_once(&nvptx_once, nvptx_register);
    return pipeline_asked;
}

static void nvptx_register(void) {
    set_llvm_options();
    LLVMInitializeNVPTXTargetInfo();
    LLVMInitializeNVPTXTarget();
    LLVMInitializeNVPTXTargetMC();
    LLVMInitializeNVPTXAsmPrinter();
    char *message = NULL;
    if (LLVMGetTargetFromTriple(NVPTX_TRIPLE, &nvptx_target, &message)) {
        snprintf(nvptx_error, sizeof nvptx_error, "LLVM has no NVPTX target: %s",
                 message ? message : "(no message)");
        nvptx_target = NULL;
    }
    LLVMDisposeMessage(message);
}

bool llvm_init_nvptx(Strbuf *err) {
    pthread_once(&nvptx_once, nvptx_register);
    if (!nvptx_target) {
        sb_puts(err, nvptx_error);
        return false;
    }
    return true;
}

static LLVMTargetMachineRef target_machine_new(BackendArch arch, int opt_level,
                                               const char *features, Strbuf *err) {
    if (!llvm_init_nvptx(err)) return NULL;
    static const LLVMCodeGenOptLevel levels[4] = {LLVMCodeGenLevelNone, LLVMCodeGenLevelLess,
                                                  LLVMCodeGenLevelDefault,
                                                  LLVMCodeGenLevelAggressive};
    if (opt_level < 0 || opt_level > 3) {
        sb_printf(err, "optimization level %d is not one of 0-3", opt_level);
        return NULL;
    }
    LLVMTargetMachineRef tm =
        LLVMCreateTargetMachine(nvptx_target, NVPTX_TRIPLE, backend_arch_name(arch),
                                features ? features : "", levels[opt_level], LLVMRelocDefault,
                                LLVMCodeModelDefault);
    if (!tm) sb_printf(err, "LLVM could not create an NVPTX target machine for %s",
                       backend_arch_name(arch));
    return tm;
}

/* The pool of idle target machines (see the top of the file). A machine made with extra
 * features is not pooled: it is made and disposed of per call. */
enum { TM_POOL_CAP = 8 };
static struct {
    pthread_mutex_t lock;
    LLVMTargetMachineRef idle[BACKEND_ARCH_COUNT][4][TM_POOL_CAP];
    int count[BACKEND_ARCH_COUNT][4];
    unsigned long made; /* machines created, pooled or not (llvm_target_machines_made) */
} tm_pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

static bool pooled(BackendArch arch, int opt_level, const char *features) {
    return (unsigned)arch < BACKEND_ARCH_COUNT && opt_level >= 0 && opt_level <= 3 && (!features || !*features);
}

static LLVMTargetMachineRef target_machine_take(BackendArch arch, int opt_level, const char *features,
                                                Strbuf *err) {
    if (pooled(arch, opt_level, features)) {
        pthread_mutex_lock(&tm_pool.lock);
        int *n = &tm_pool.count[arch][opt_level];
        LLVMTargetMachineRef tm = *n ? tm_pool.idle[arch][opt_level][--*n] : NULL;
        pthread_mutex_unlock(&tm_pool.lock);
        if (tm) return tm;
    }
    LLVMTargetMachineRef tm = target_machine_new(arch, opt_level, features, err);
    if (tm) {
        pthread_mutex_lock(&tm_pool.lock);
        tm_pool.made++;
        pthread_mutex_unlock(&tm_pool.lock);
    }
    return tm;
}

static void target_machine_give(LLVMTargetMachineRef tm, BackendArch arch, int opt_level, const char *features) {
    if (pooled(arch, opt_level, features)) {
        pthread_mutex_lock(&tm_pool.lock);
        int *n = &tm_pool.count[arch][opt_level];
        if (*n < TM_POOL_CAP) {
            tm_pool.idle[arch][opt_level][(*n)++] = tm;
            tm = NULL;
        }
        pthread_mutex_unlock(&tm_pool.lock);
    }
    if (tm) LLVMDisposeTargetMachine(tm);
}

unsigned long llvm_target_machines_made(void) {
    pthread_mutex_lock(&tm_pool.lock);
    unsigned long made = tm_pool.made;
    pthread_mutex_unlock(&tm_pool.lock);
    return made;
}

/* ---- contexts and modules ----------------------------------------------------------------- */

LLVMContextRef llvm_context_new(void) { return LLVMContextCreate(); }
void llvm_context_free(LLVMContextRef context) {
    if (context) LLVMContextDispose(context);
}
void llvm_module_free(LLVMModuleRef module) {
    if (module) LLVMDisposeModule(module);
}

LLVMModuleRef llvm_parse_ir(LLVMContextRef context, const char *name, const char *text,
                            size_t len, Strbuf *err) {
    LLVMMemoryBufferRef buffer = LLVMCreateMemoryBufferWithMemoryRangeCopy(text, len, name);
    LLVMModuleRef module = NULL;
    char *message = NULL;
    if (LLVMParseIRInContext2(context, buffer, &module, &message)) {
        sb_printf(err, "%s: %s", name, message ? message : "cannot parse LLVM IR");
        module = NULL;
    }
    LLVMDisposeMessage(message);
    LLVMDisposeMemoryBuffer(buffer);
    return module;
}

void llvm_print_module(LLVMModuleRef module, Strbuf *out) {
    char *text = LLVMPrintModuleToString(module);
    sb_puts(out, text);
    LLVMDisposeMessage(text);
}

LLVMValueRef llvm_get_function(LLVMModuleRef module, const char *name) {
    return LLVMGetNamedFunction(module, name);
}

static void add_string_attribute(LLVMValueRef fn, const char *key, const char *value) {
    LLVMContextRef context = LLVMGetTypeContext(LLVMTypeOf(fn));
    LLVMAttributeRef attr = LLVMCreateStringAttribute(context, key, (unsigned)strlen(key), value,
                                                      (unsigned)strlen(value));
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, attr);
}

static void add_dims_attribute(LLVMValueRef fn, const char *key, const unsigned dims[3]) {
    char value[64];
    snprintf(value, sizeof value, "%u,%u,%u", dims[0] ? dims[0] : 1, dims[1] ? dims[1] : 1,
             dims[2] ? dims[2] : 1);
    add_string_attribute(fn, key, value);
}

void llvm_mark_kernel(LLVMValueRef fn, const unsigned maxntid[3], const unsigned reqntid[3]) {
    LLVMSetFunctionCallConv(fn, LLVMPTXKernelCallConv);
    if (maxntid) add_dims_attribute(fn, "nvvm.maxntid", maxntid);
    if (reqntid) add_dims_attribute(fn, "nvvm.reqntid", reqntid);
}

/* ---- verify, optimize, emit --------------------------------------------------------------- */

static bool set_target(LLVMModuleRef module, LLVMTargetMachineRef tm) {
    LLVMSetTarget(module, NVPTX_TRIPLE);
    LLVMTargetDataRef layout = LLVMCreateTargetDataLayout(tm);
    LLVMSetModuleDataLayout(module, layout);
    LLVMDisposeTargetData(layout);
    return true;
}

bool llvm_set_nvptx_target(LLVMModuleRef module, BackendArch arch, Strbuf *err) {
    const int level = llvm_ptx_options(arch).opt_level; /* the pool's machines of llvm_emit_ptx */
    LLVMTargetMachineRef tm = target_machine_take(arch, level, NULL, err);
    if (!tm) return false;
    set_target(module, tm);
    target_machine_give(tm, arch, level, NULL);
    return true;
}

/* Collects the linker's diagnostics (LLVM would otherwise print them). */
static void link_diagnostic(LLVMDiagnosticInfoRef info, void *data) {
    char *text = LLVMGetDiagInfoDescription(info);
    sb_printf((Strbuf *)data, "%s%s", ((Strbuf *)data)->len ? "; " : "", text);
    LLVMDisposeMessage(text);
}

bool llvm_link_into(LLVMModuleRef dest, LLVMModuleRef src, Strbuf *err) {
    LLVMContextRef context = LLVMGetModuleContext(dest);
    LLVMDiagnosticHandler old_handler = LLVMContextGetDiagnosticHandler(context);
    void *old_data = LLVMContextGetDiagnosticContext(context);
    Strbuf messages = {0};
    LLVMContextSetDiagnosticHandler(context, link_diagnostic, &messages);
    bool failed = LLVMLinkModules2(dest, src); /* src is destroyed either way */
    LLVMContextSetDiagnosticHandler(context, old_handler, old_data);
    if (failed) sb_printf(err, "linking the kernels into one module failed: %s", sb_str(&messages));
    sb_free(&messages);
    return !failed;
}

bool llvm_verify_module(LLVMModuleRef module, Strbuf *err) {
    char *message = NULL;
    bool broken = LLVMVerifyModule(module, LLVMReturnStatusAction, &message);
    if (broken) {
        sb_puts(err, "LLVM IR verification failed:\n");
        sb_puts(err, message && *message ? message : "(no message)\n");
    }
    LLVMDisposeMessage(message);
    return !broken;
}

/* The IR pipeline at the default level 2: the code generator's alwaysinline helpers (the f8
 * conversions) inlined, then one function pipeline of the passes that tile's code needs (scalar
 * replacement, CSE, InstCombine, CFG cleanup, LICM, induction variables, GVN, dead code,
 * alignment inference for vector loads); InstCombine without LLVM's check that one run reached a
 * fixpoint (that check aborts the process, and default<O2> does not make it either). It takes half the time of default<O2> (gemm
 * 36 -> 15 ms on the CPU machine) for the same or fewer PTX instructions, and on the H200 no
 * kernel is slower and every output is bit-equal (bench/RESULTS.md, eighth session;
 * bench/bench_llvm_pipeline.py repeats the comparison). Every pass in it is named in LLVM's
 * pass syntax; a pass LLVM drops would fail every compile loudly, not silently. */
static const char light_pipeline[] =
    "always-inline,function(sroa,early-cse,instcombine<no-verify-fixpoint>,simplifycfg,loop-mssa(licm),"
    "loop(indvars),gvn,instcombine<no-verify-fixpoint>,adce,simplifycfg,infer-alignment)";

/* Runs the pipeline TILE_LLVM_PIPELINE names in LLVM's pass syntax (for A/B of pipelines on a GPU
 * machine without a rebuild; `default<O2>` is the pipeline before the light one), else at level 2
 * light_pipeline, else default<O{opt_level}>. */
static bool run_pipeline(LLVMModuleRef module, LLVMTargetMachineRef tm, int opt_level,
                         Strbuf *err) {
    char fallback[32];
    snprintf(fallback, sizeof fallback, "default<O%d>", opt_level);
    const char *pipeline = pipeline_asked ? pipeline_asked : opt_level == 2 ? light_pipeline : fallback;
    LLVMPassBuilderOptionsRef options = LLVMCreatePassBuilderOptions();
    LLVMErrorRef error = LLVMRunPasses(module, pipeline, tm, options);
    LLVMDisposePassBuilderOptions(options);
    if (error) {
        char *message = LLVMGetErrorMessage(error);
        sb_printf(err, "LLVM pass pipeline %s failed: %s", pipeline, message);
        LLVMDisposeErrorMessage(message);
        return false;
    }
    return true;
}

static _Thread_local double emit_optimize_seconds, emit_codegen_seconds;

void llvm_emit_times(double *optimize, double *codegen) {
    *optimize = emit_optimize_seconds;
    *codegen = emit_codegen_seconds;
    emit_optimize_seconds = emit_codegen_seconds = 0; /* a compile that fails before emitting reads 0 */
}

bool llvm_emit_ptx(LLVMModuleRef module, const PtxOptions *options, Strbuf *ptx, Strbuf *err) {
    emit_optimize_seconds = emit_codegen_seconds = 0;
    LLVMTargetMachineRef tm =
        target_machine_take(options->arch, options->opt_level, options->features, err);
    if (!tm) return false;
    bool ok = false;
    set_target(module, tm);
    if (!llvm_verify_module(module, err)) goto done;
    double t0 = monotonic_seconds();
    bool optimized = run_pipeline(module, tm, options->opt_level, err);
    double t1 = monotonic_seconds();
    emit_optimize_seconds = t1 - t0;
    if (!optimized) goto done;

    char *message = NULL;
    LLVMMemoryBufferRef buffer = NULL;
    if (LLVMTargetMachineEmitToMemoryBuffer(tm, module, LLVMAssemblyFile, &message, &buffer)) {
        sb_printf(err, "LLVM could not emit PTX for %s: %s", backend_arch_name(options->arch),
                  message ? message : "(no message)");
        LLVMDisposeMessage(message);
        goto done;
    }
    LLVMDisposeMessage(message);
    sb_putn(ptx, LLVMGetBufferStart(buffer), LLVMGetBufferSize(buffer));
    LLVMDisposeMemoryBuffer(buffer);
    emit_codegen_seconds = monotonic_seconds() - t1;
    ok = true;
done:
    target_machine_give(tm, options->arch, options->opt_level, options->features);
    return ok;
}

/* ---- the vector-add test kernel ----------------------------------------------------------- */

static LLVMValueRef read_sreg(LLVMModuleRef module, LLVMBuilderRef builder, const char *name) {
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    if (!id) tile_unreachable();
    LLVMContextRef context = LLVMGetModuleContext(module);
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(module, id, NULL, 0);
    LLVMTypeRef type = LLVMIntrinsicGetType(context, id, NULL, 0);
    return LLVMBuildCall2(builder, type, fn, NULL, 0, "");
}

static LLVMValueRef element_address(LLVMBuilderRef builder, LLVMTypeRef elem, LLVMValueRef base,
                                    LLVMValueRef index, const char *name) {
    return LLVMBuildInBoundsGEP2(builder, elem, base, &index, 1, name);
}

LLVMModuleRef llvm_build_vector_add(LLVMContextRef context) {
    LLVMModuleRef module = LLVMModuleCreateWithNameInContext("vector_add", context);
    LLVMTypeRef f32 = LLVMFloatTypeInContext(context);
    LLVMTypeRef i32 = LLVMInt32TypeInContext(context);
    LLVMTypeRef i64 = LLVMInt64TypeInContext(context);
    LLVMTypeRef global_ptr = LLVMPointerTypeInContext(context, 1);
    LLVMTypeRef params[4] = {global_ptr, global_ptr, global_ptr, i32};
    LLVMTypeRef fn_type = LLVMFunctionType(LLVMVoidTypeInContext(context), params, 4, 0);
    LLVMValueRef fn = LLVMAddFunction(module, LLVM_VECTOR_ADD_NAME, fn_type);
    const unsigned maxntid[3] = {1024, 1, 1};
    llvm_mark_kernel(fn, maxntid, NULL);
    const char *names[4] = {"a", "b", "c", "n"};
    for (unsigned i = 0; i < 4; i++) LLVMSetValueName2(LLVMGetParam(fn, i), names[i], 1);

    LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(context, fn, "entry");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(context, fn, "body");
    LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(context, fn, "exit");
    LLVMBuilderRef builder = LLVMCreateBuilderInContext(context);

    LLVMPositionBuilderAtEnd(builder, entry);
    LLVMValueRef tid = read_sreg(module, builder, "llvm.nvvm.read.ptx.sreg.tid.x");
    LLVMValueRef ctaid = read_sreg(module, builder, "llvm.nvvm.read.ptx.sreg.ctaid.x");
    LLVMValueRef ntid = read_sreg(module, builder, "llvm.nvvm.read.ptx.sreg.ntid.x");
    LLVMValueRef i = LLVMBuildAdd(builder, LLVMBuildMul(builder, ctaid, ntid, ""), tid, "i");
    /* Compare in 64 bits: i is unsigned, n is signed. */
    LLVMValueRef i64_index = LLVMBuildZExt(builder, i, i64, "i64");
    LLVMValueRef n64 = LLVMBuildSExt(builder, LLVMGetParam(fn, 3), i64, "n64");
    LLVMValueRef in_bounds = LLVMBuildICmp(builder, LLVMIntSLT, i64_index, n64, "in_bounds");
    LLVMBuildCondBr(builder, in_bounds, body, exit);

    LLVMPositionBuilderAtEnd(builder, body);
    LLVMValueRef pa = element_address(builder, f32, LLVMGetParam(fn, 0), i64_index, "pa");
    LLVMValueRef pb = element_address(builder, f32, LLVMGetParam(fn, 1), i64_index, "pb");
    LLVMValueRef pc = element_address(builder, f32, LLVMGetParam(fn, 2), i64_index, "pc");
    LLVMValueRef va = LLVMBuildLoad2(builder, f32, pa, "va");
    LLVMSetAlignment(va, 4);
    LLVMValueRef vb = LLVMBuildLoad2(builder, f32, pb, "vb");
    LLVMSetAlignment(vb, 4);
    LLVMValueRef sum = LLVMBuildFAdd(builder, va, vb, "sum");
    LLVMValueRef store = LLVMBuildStore(builder, sum, pc);
    LLVMSetAlignment(store, 4);
    LLVMBuildBr(builder, exit);

    LLVMPositionBuilderAtEnd(builder, exit);
    LLVMBuildRetVoid(builder);
    LLVMDisposeBuilder(builder);
    return module;
}
