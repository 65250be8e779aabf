/*
 * pipeline.c: the order of the passes, in one table, and the driver that runs them.
 *
 * Inlining comes first so that the other passes see whole kernels; canonicalize then folds
 * what the inlined arguments made constant; cse merges what is left equal; dce sweeps the
 * dead ops and the device functions that nothing calls any more. The GPU passes follow, for one
 * target (PassOptions: the warps per block and the architecture), when PassOptions.gpu is set
 * or a dump asks for one of them: layout gives every tile a register layout, stages pipelines
 * `pipeline(N)` loops through shared buffers and asynchronous copies, smem_plan places every
 * shared buffer in dynamic shared memory, and a last dce sweeps what stages left dead.
 *
 * With verify_each the verifier checks the input and the result of every pass: invalid IR after
 * a pass is a compiler bug, reported with the verifier's messages and the pass's name. A dump
 * after a pass (or after each, with "all") prints the module into opt->dump under a header line.
 */
#include "passes.h"

#include <string.h>

typedef struct Pass {
    const char *name;
    PassFn run;                /* target-independent passes */
    GpuPassFn run_gpu;         /* GPU passes: they see the target */
    const char *when;          /* the condition under which it runs, for --list-passes */
} Pass;

static bool layout_for_target(IrModule *m, const PassOptions *opt, DiagList *d) {
    return pass_layout_run(m, opt->num_warps, d); /* 0: each kernel's warps(N), else 4 */
}

static bool cleanup(IrModule *m, const PassOptions *opt, DiagList *d) {
    (void)opt;
    bool changed = pass_canonicalize(m, d);
    changed |= pass_cse(m, d);
    return pass_dce(m, d) || changed;
}

static bool stages_for_target(IrModule *m, const PassOptions *opt, DiagList *d) {
    /* cp.async exists on every target (sm_80 and sm_90a); the rings must fit its shared memory */
    return pass_stages_within(m, opt->smem_bytes > 0 ? opt->smem_bytes : 227 * 1024, d);
}

static const Pass pipeline[] = {
    {"inline", pass_inline, NULL, "always"},
    {"canonicalize", pass_canonicalize, NULL, "always"},
    {"cse", pass_cse, NULL, "always"},
    {"dce", pass_dce, NULL, "always"},
    {"layout", NULL, layout_for_target, "GPU: register layouts for the target's warps per block"},
    {"stages", NULL, stages_for_target,
     "GPU: loops with pipeline(N >= 2) whose loads feed tensor-core dots (cp.async ring of N stages)"},
    {"smem_plan", NULL, pass_smem_plan, "GPU: every shared buffer gets its offset in dynamic shared memory"},
    {"cleanup", NULL, cleanup, "GPU: canonicalize, cse and dce of what the GPU passes left"},
};
enum { NPASSES = sizeof pipeline / sizeof pipeline[0] };

static const Pass *find(const char *name) {
    for (int i = 0; i < NPASSES; i++)
        if (strcmp(pipeline[i].name, name) == 0) return &pipeline[i];
    return NULL;
}

bool passes_is_known(const char *name) {
    if (!name) return false;
    return strcmp(name, "all") == 0 || find(name) != NULL;
}

void passes_list(Strbuf *out) {
    for (int i = 0; i < NPASSES; i++) sb_printf(out, "%-13s %s\n", pipeline[i].name, pipeline[i].when);
}

static SrcLoc module_loc(const IrModule *m) { return m->functions ? m->functions->loc : (SrcLoc){0}; }

bool passes_run(IrModule *m, const PassOptions *opt, DiagList *d) {
    static const PassOptions defaults = {0};
    if (!opt) opt = &defaults;
    if (opt->verify_each && !ir_verify_module(m, d)) {
        /* The pipeline's input comes from lowering (the IR reader verifies what it reads). */
        diag_internal(d, module_loc(m), "lower",
                      "it gave the pass pipeline invalid IR (the verifier's messages are above)");
        return false;
    }
    const Pass *asked = opt->dump_after ? find(opt->dump_after) : NULL;
    bool gpu = opt->gpu || (asked && asked->run_gpu);
    for (int i = 0; i < NPASSES; i++) {
        const Pass *p = &pipeline[i];
        if (p->run_gpu && !gpu) break;
        int errors = d->errors;
        if (p->run) p->run(m, d);
        else p->run_gpu(m, opt, d);
        if (d->errors > errors) return false;
        if (opt->verify_each && !ir_verify_module(m, d)) {
            diag_internal(d, module_loc(m), p->name, "it left invalid IR (the verifier's messages are above)");
            return false;
        }
        if (opt->dump && opt->dump_after && (strcmp(opt->dump_after, "all") == 0 || asked == p)) {
            sb_printf(opt->dump, "// ---- IR after %s ----\n", p->name);
            ir_print_module(m, opt->dump);
        }
    }
    return true;
}

int passes_run_one(IrModule *m, const char *name, const PassOptions *opt, DiagList *d) {
    static const PassOptions defaults = {0};
    const Pass *p = name ? find(name) : NULL;
    if (!p) return -1;
    if (!opt) opt = &defaults;
    return p->run ? p->run(m, d) : p->run_gpu(m, opt, d);
}
