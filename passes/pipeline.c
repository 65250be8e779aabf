/*
 * pipeline.c: the order of the passes, in one table, and the driver that runs them.
 *
 * Inlining comes first so that the other passes see whole kernels; canonicalize then folds
 * what the inlined arguments made constant; cse merges what is left equal; dce sweeps the
 * dead ops and the device functions that nothing calls any more. With verify_each the
 * verifier checks the input and the result of every pass: invalid IR after a pass is a
 * compiler bug, reported with the verifier's messages and the pass's name. A dump after a
 * pass (or after each, with "all") prints the module into opt->dump under a header line.
 */
#include "passes.h"

#include <string.h>

typedef struct Pass {
    const char *name;
    PassFn run;
} Pass;

static const Pass pipeline[] = {
    {"inline", pass_inline},
    {"canonicalize", pass_canonicalize},
    {"cse", pass_cse},
    {"dce", pass_dce},
};
enum { NPASSES = sizeof pipeline / sizeof pipeline[0] };

/* The GPU passes run after the pipeline, when PassOptions.gpu is set or a dump asks for one. */
static const char *const gpu_passes[] = {"layout"};
enum { NGPU_PASSES = sizeof gpu_passes / sizeof gpu_passes[0] };

bool passes_is_known(const char *name) {
    if (!name) return false;
    if (strcmp(name, "all") == 0) return true;
    for (int i = 0; i < NPASSES; i++)
        if (strcmp(pipeline[i].name, name) == 0) return true;
    for (int i = 0; i < NGPU_PASSES; i++)
        if (strcmp(gpu_passes[i], name) == 0) return true;
    return false;
}

void passes_list(Strbuf *out) {
    for (int i = 0; i < NPASSES; i++) sb_printf(out, "%s\n", pipeline[i].name);
}

static SrcLoc module_loc(const IrModule *m) { return m->functions ? m->functions->loc : (SrcLoc){0}; }

bool passes_run(IrModule *m, const PassOptions *opt, DiagList *d) {
    static const PassOptions defaults = {0};
    if (!opt) opt = &defaults;
    if (opt->verify_each && !ir_verify_module(m, d)) {
        /* The pipeline's input comes from lowering (the IR reader verifies what it reads). */
        diag_internal(d, module_loc(m), "lower", "it gave the pass pipeline invalid IR (the verifier's messages are above)");
        return false;
    }
    for (int i = 0; i < NPASSES; i++) {
        int errors = d->errors;
        pipeline[i].run(m, d);
        if (d->errors > errors) return false;
        if (opt->verify_each && !ir_verify_module(m, d)) {
            diag_internal(d, module_loc(m), pipeline[i].name, "it left invalid IR (the verifier's messages are above)");
            return false;
        }
        if (opt->dump && opt->dump_after &&
            (strcmp(opt->dump_after, "all") == 0 || strcmp(opt->dump_after, pipeline[i].name) == 0)) {
            sb_printf(opt->dump, "// ---- IR after %s ----\n", pipeline[i].name);
            ir_print_module(m, opt->dump);
        }
    }
    bool gpu = opt->gpu || (opt->dump_after && strcmp(opt->dump_after, "layout") == 0);
    if (gpu) {
        int errors = d->errors;
        pass_layout_run(m, opt->num_warps, d); /* 0: each kernel's warps(N), else 4 */
        if (d->errors > errors) return false;
        if (opt->verify_each && !ir_verify_module(m, d)) {
            diag_internal(d, module_loc(m), "layout", "it left invalid IR (the verifier's messages are above)");
            return false;
        }
        if (opt->dump && opt->dump_after &&
            (strcmp(opt->dump_after, "all") == 0 || strcmp(opt->dump_after, "layout") == 0)) {
            sb_printf(opt->dump, "// ---- IR after layout ----\n");
            ir_print_module(m, opt->dump);
        }
    }
    return true;
}
