/*
 * fuzz_pipeline.c: libFuzzer target over the whole pipeline. The input is a .tile file; each
 * kernel (at most four) is lowered with its default constants and optimized (the verifier runs
 * after every pass), compiled for the GPU (layout pass, code generator, LLVM's NVPTX backend:
 * PTX for sm_80 and sm_90a), and run on the VM on small generated inputs when it is small enough
 * to run quickly. Input errors of any stage are fine; what is a bug, and traps:
 *  - a crash, hang or sanitizer report anywhere (libFuzzer reports those itself);
 *  - IR that fails the verifier after a lowering that succeeded, or a stage that fails without
 *    saying why (no diagnostic, an empty message);
 *  - the code generator calling itself wrong ("internal error", "code generator bug").
 *
 * Time per input is bounded: the VM runs only kernels whose tiles have at most 4096 elements,
 * with at most 16 blocks, on tensors of at most 4096 elements, and a watchdog thread cancels a
 * launch (between blocks and loop iterations, as tile_context_cancel does) after 250 ms; the
 * GPU side is bounded by the layout pass's per-thread limit. Run it with -timeout as a last
 * guard. A custom mutator (fuzz_mutator.c) mutates tokens as well as bytes.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/runtime.h"
#include "runtime/vm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

enum { MAX_INPUT = 16384, MAX_KERNELS = 4, VM_MAX_TILE = 4096, VM_MAX_BLOCKS = 16, VM_MAX_TENSOR = 4096 };
static const int64_t vm_budget_ns = 250 * 1000000LL;

/* ---- the watchdog ------------------------------------------------------------------------- */
static atomic_uint_fast64_t cancel_generation;
static atomic_llong run_started_ns; /* 0: no VM run in progress */

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void *watchdog(void *arg) {
    (void)arg;
    for (;;) {
        usleep(20000);
        long long started = atomic_load(&run_started_ns);
        if (started && now_ns() - started > vm_budget_ns) atomic_fetch_add(&cancel_generation, 1);
    }
    return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    pthread_t t;
    if (pthread_create(&t, NULL, watchdog, NULL) == 0) pthread_detach(t);
    return 0;
}

static void fail(const char *stage, const char *kernel, const char *why) {
    fprintf(stderr, "fuzz_pipeline: %s of kernel '%s': %s\n", stage, kernel, why);
    __builtin_trap();
}

/* ---- what the VM may run quickly ------------------------------------------------------------- */
typedef struct Small {
    bool ok;
} Small;

static bool small_op(IrOp *op, void *ctx) {
    Small *s = ctx;
    if (op->code == OP_WHILE) s->ok = false; /* the watchdog would stop it, but it wastes the budget */
    for (uint32_t i = 0; i < op->nresults; i++) {
        const IrType *t = op->results[i]->type;
        if (t->kind != TY_TENSOR && type_numel(t) > VM_MAX_TILE) s->ok = false;
    }
    return s->ok;
}

/* Arguments for the kernel's parameters: every size symbol gets a small size from the input's
 * hash, scalars small values; false when a fixed dimension makes a tensor too large. */
static bool make_args(const IrFunction *f, uint64_t seed, tile_arg *args, void **buffers) {
    const char *symbols[32];
    int64_t sizes[32];
    int nsymbols = 0;
    for (uint32_t i = 0; i < f->nparams; i++) {
        const IrType *t = f->body->args[i]->type;
        buffers[i] = NULL;
        if (t->kind != TY_TENSOR) {
            args[i] = elem_is_float(t->elem) ? (tile_arg){.kind = TILE_ARG_FLOAT, .f = 1.5}
                                             : (tile_arg){.kind = TILE_ARG_INT, .i = t->elem.kind == EK_BOOL ? 1 : 3};
            continue;
        }
        int64_t shape[IR_MAX_RANK], numel = 1;
        for (int d = 0; d < t->rank; d++) {
            const IrDimSpec *spec = &f->params[i].dims[d];
            if (!spec->symbol) {
                shape[d] = spec->size;
            } else {
                int k = 0;
                while (k < nsymbols && strcmp(symbols[k], spec->symbol) != 0) k++;
                if (k == nsymbols) {
                    if (nsymbols == 32) return false;
                    symbols[nsymbols] = spec->symbol;
                    sizes[nsymbols++] = 1 + (int64_t)((seed >> (3 * (k % 20))) % 64);
                }
                shape[d] = sizes[k];
            }
            if (shape[d] < 0 || shape[d] > VM_MAX_TENSOR) return false;
            numel *= shape[d];
            if (numel > VM_MAX_TENSOR) return false;
        }
        tile_dtype dtype = rt_elem_to_dtype(t->elem);
        size_t bytes = tile_dtype_bytes(dtype, numel) + 16;
        buffers[i] = calloc(1, bytes);
        args[i] = (tile_arg){.kind = TILE_ARG_TENSOR, .tensor = tile_tensor_contiguous(dtype, buffers[i], t->rank, shape)};
    }
    return true;
}

static void run_on_vm(const IrFunction *f, uint64_t seed) {
    Small s = {.ok = true};
    ir_walk(f->body, small_op, &s);
    if (!s.ok || f->nparams > 16) return;
    tile_arg args[16];
    void *buffers[16] = {0};
    Strbuf err = {0};
    int64_t grid[3];
    if (make_args(f, seed, args, buffers) && rt_check_args(f, args, f->nparams, &err) &&
        vm_eval_grid(f, args, f->nparams, grid, &err) && grid[0] * grid[1] * grid[2] <= VM_MAX_BLOCKS) {
        VmCancel cancel = {.generation = &cancel_generation, .started = atomic_load(&cancel_generation)};
        atomic_store(&run_started_ns, now_ns());
        sb_clear(&err);
        VmOutcome r = vm_launch_cancellable(f, args, f->nparams, 1, &cancel, &err);
        atomic_store(&run_started_ns, 0);
        if (r == VM_FAILED && err.len == 0) fail("the VM run", f->name, "failed without a message");
        if (r == VM_INTERNAL) fail("the VM run", f->name, sb_str(&err));
    }
    for (uint32_t i = 0; i < f->nparams && i < 16; i++) free(buffers[i]);
    sb_free(&err);
}

/* ---- the GPU side ------------------------------------------------------------------------------ */
static void compile_for_gpu(AstFile *ast, const char *kernel, uint64_t seed) {
    static const int warps[] = {0, 1, 2, 4, 8};
    int num_warps = warps[seed % 5];
    DiagList d = {0};
    IrFunction *f = NULL;
    IrModule *m = rt_compile(ast, kernel, NULL, 0, NULL, &d, &f); /* rt_backend_emit runs the GPU passes */
    if (!m) {
        if (d.errors == 0) fail("the GPU passes", kernel, "failed without a diagnostic");
        diag_free(&d);
        return;
    }
    diag_free(&d);
    static const char *const archs[] = {"sm_80", "sm_90a"};
    for (int a = 0; a < 2; a++) {
        Strbuf out = {0}, err = {0};
        const IrFunction *one[1] = {f};
        tile_status st = rt_backend_emit(one, 1, archs[a], num_warps, TILE_EMIT_PTX, &out, &err);
        if (st != TILE_OK) {
            const char *why = sb_str(&err);
            if (!*why) fail("code generation", kernel, "failed without a message");
            if (strstr(why, "internal error") || strstr(why, "code generator bug") || strstr(why, "LLVM IR verification"))
                fail("code generation", kernel, why);
        } else if (!strstr(sb_str(&out), ".entry")) {
            fail("code generation", kernel, "PTX without an .entry");
        }
        sb_free(&out);
        sb_free(&err);
        if (st != TILE_OK && st != TILE_ERROR_UNSUPPORTED && st != TILE_ERROR_COMPILE) break;
    }
    ir_module_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > MAX_INPUT) return 0;
    uint64_t seed = hash_bytes(data, size, 1469598103934665603ull);
    DiagList d = {0};
    AstFile *ast = parse_source("fuzz.tile", (const char *)data, size, &d);
    int nkernels = 0;
    for (uint32_t i = 0; d.errors == 0 && i < ast->decls.len && nkernels < MAX_KERNELS; i++) {
        const AstNode *k = ast->decls.items[i];
        if (k->kind != AST_KERNEL) continue;
        nkernels++;
        /* the VM path: lowering and the pass pipeline, verified after each pass */
        DiagList kd = {0};
        IrFunction *f = NULL;
        IrModule *m = ir_module_new();
        f = lower_kernel(ast, k->name, NULL, 0, m, &kd);
        if (!f) {
            if (kd.errors == 0) fail("lowering", k->name, "failed without a diagnostic");
        } else {
            PassOptions popt = {.verify_each = true};
            DiagList pd = {0};
            if (!passes_run(m, &popt, &pd)) {
                /* inlining's size bound is an input error; anything else after a clean lowering is a bug */
                if (!strstr(sb_str(&pd.text), "error: inlining")) fail("the pass pipeline", k->name, sb_str(&pd.text));
            } else {
                run_on_vm(f, seed);
                compile_for_gpu(ast, k->name, seed);
            }
            diag_free(&pd);
        }
        ir_module_free(m);
        diag_free(&kd);
    }
    ast_file_free(ast);
    diag_free(&d);
    return 0;
}
