/*
 * pipeline.c: the order of the passes, in one table, and the driver that runs them.
 *
 * Inlining comes first so that the other passes see whole kernels; canonicalize then folds
 * what the inlined arguments made constant; cse merges what is left equal; dce sweeps the
 * dead ops and the device functions that nothing calls any more. The GPU passes follow, for one
 * Target (PassOptions.target: architecture, warps per block, shared memory, launch facts), when
 * PassOptions.gpu is set or a dump asks for one of them, or alone (passes_run_target, which the
 * runtime runs per target on a copy of the target-independent IR): conds folds the launch-known
 * conditions that the target's facts give (a variant's), layout gives every tile a register layout, stages pipelines
 * `pipeline(N)` loops through shared buffers and asynchronous copies, epilogue stores a dot's
 * result tile through shared memory by TMA (sm_90a), smem_plan places every
 * shared buffer in dynamic shared memory, and a last dce sweeps what stages left dead.
 *
 * With verify_each the verifier checks the input and the result of every pass: invalid IR after
 * a pass is a compiler bug, reported with the verifier's messages and the pass's name. A dump
 * after a pass (or after each, with "all") prints the module into opt->dump under a header line.
 */
#include "passes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Pass {
    const char *name;
    PassFn run;                /* target-independent passes */
    GpuPassFn run_gpu;         /* GPU passes: they see the target */
    const char *when;          /* the condition under which it runs, for --list-passes */
} Pass;

/* A kernel that has warp roles already is GPU-level IR (written by hand, or by a pass that runs
 * after these): its layouts are its roles' and its rings are built, so layout and stages, which
 * lay out and pipeline a whole block, leave it as it is. They run on the module without it. */
static bool has_roles(IrOp *op, void *ctx) {
    (void)ctx;
    return op->code != OP_WARP_ROLES; /* stops the walk at the first */
}

static bool without_role_kernels(IrModule *m, const PassOptions *opt, DiagList *d, GpuPassFn run) {
    IrFunction *all = m->functions, *last = m->last_function, *kept = NULL, *kept_last = NULL;
    VEC(IrFunction *) order = {0};
    for (IrFunction *f = all; f; f = f->next) vec_push(&order, f);
    for (size_t i = 0; i < order.len; i++) {
        IrFunction *f = order.data[i];
        f->next = NULL;
        if (f->is_kernel && f->body && !ir_walk(f->body, has_roles, NULL)) continue;
        if (kept_last) kept_last->next = f;
        else kept = f;
        kept_last = f;
    }
    m->functions = kept;
    m->last_function = kept_last;
    bool changed = run(m, opt, d);
    for (size_t i = 0; i < order.len; i++) order.data[i]->next = i + 1 < order.len ? order.data[i + 1] : NULL;
    m->functions = all;
    m->last_function = last;
    vec_free(&order);
    return changed;
}

static bool layout_all(IrModule *m, const PassOptions *opt, DiagList *d) {
    return pass_layout_for(m, &opt->target, d);
}

static bool layout_for_target(IrModule *m, const PassOptions *opt, DiagList *d) {
    return without_role_kernels(m, opt, d, layout_all);
}

static bool cleanup(IrModule *m, const PassOptions *opt, DiagList *d) {
    (void)opt;
    bool changed = pass_canonicalize(m, d);
    changed |= pass_cse(m, d);
    return pass_dce(m, d) || changed;
}

static bool stages_all(IrModule *m, const PassOptions *opt, DiagList *d) {
    return pass_stages_target(m, &opt->target, d);
}

static bool stages_for_target(IrModule *m, const PassOptions *opt, DiagList *d) {
    return without_role_kernels(m, opt, d, stages_all);
}

static bool cluster_all(IrModule *m, const PassOptions *opt, DiagList *d) {
    return pass_cluster_target(m, &opt->target, d);
}

static bool cluster_for_target(IrModule *m, const PassOptions *opt, DiagList *d) {
    return without_role_kernels(m, opt, d, cluster_all);
}

static bool epilogue_for_target(IrModule *m, const PassOptions *opt, DiagList *d) {
    return pass_epilogue_target(m, &opt->target, d);
}

static const Pass pipeline[] = {
    {"inline", pass_inline, NULL, "always"},
    {"canonicalize", pass_canonicalize, NULL, "always"},
    {"cse", pass_cse, NULL, "always"},
    {"dce", pass_dce, NULL, "always"},
    {"conds", NULL, pass_conds,
     "GPU: with launch-known conditions (a variant's facts): each known condition becomes its constant, the "
     "branch not taken is dropped (passes/conds.c)"},
    {"layout", NULL, layout_for_target, "GPU: register layouts for the target's warps per block"},
    {"stages", NULL, stages_for_target,
     "GPU: loops with pipeline(N >= 2) whose loads feed tensor-core dots (ring of N stages: cp.async; TMA on "
     "sm_90a where launch facts allow; warp roles where asked: cooperative, or ping-pong for a persistent tile "
     "loop, passes/pingpong.c)"},
    {"cluster", NULL, cluster_for_target,
     "GPU: sm_90a TMA rings, with TILE_CLUSTER=1 (off by default): clusters of 2 blocks that multicast the tiles both "
     "copy (decided at run time)"},
    {"epilogue", NULL, epilogue_for_target,
     "GPU: on sm_90a with TMA (TILE_TMA_STORE not 0), tile stores of a dot's result whose tensor the launch facts "
     "allow: registers -> swizzled shared -> TMA store"},
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

bool passes_is_gpu(const char *name) {
    const Pass *p = name ? find(name) : NULL;
    return p && p->run_gpu;
}

void passes_list(Strbuf *out) {
    for (int i = 0; i < NPASSES; i++) sb_printf(out, "%-13s %s\n", pipeline[i].name, pipeline[i].when);
}

static SrcLoc module_loc(const IrModule *m) { return m->functions ? m->functions->loc : (SrcLoc){0}; }

/* Runs pipeline[first, last) on m. */
static bool run_range(IrModule *m, const PassOptions *opt, int first, int last, DiagList *d) {
    const Pass *asked = opt->dump_after ? find(opt->dump_after) : NULL;
    for (int i = first; i < last; i++) {
        const Pass *p = &pipeline[i];
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

/* The index of the first GPU pass (they come last). */
static int first_gpu_pass(void) {
    int i = 0;
    while (i < NPASSES && !pipeline[i].run_gpu) i++;
    return i;
}

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
    return run_range(m, opt, 0, gpu ? NPASSES : first_gpu_pass(), d);
}

bool passes_run_target(IrModule *m, const PassOptions *opt, DiagList *d) {
    static const PassOptions defaults = {0};
    return run_range(m, opt ? opt : &defaults, first_gpu_pass(), NPASSES, d);
}

/* ---- targets ---------------------------------------------------------------------------------- */
int64_t target_smem_bytes(const Target *t) {
    if (t->smem_bytes > 0) return t->smem_bytes;
    return t->sm >= 90 ? 227 * 1024 : 163 * 1024;
}

IrParamFacts target_param_facts(const Target *t, const IrFunction *f, uint32_t i) {
    IrParamFacts facts;
    memset(&facts, 0, sizeof facts);
    if (i >= f->nparams || f->body->args[i]->type->kind != TY_TENSOR) return facts;
    if (t->every_fact) {
        /* a contiguous tensor: the last stride 1 (the code generator makes a unit stride the
         * constant 1, so the others may not claim it), every size a multiple of 16 */
        int rank = f->body->args[i]->type->rank;
        facts.aligned16 = facts.strides_div16 = true;
        if (rank > 0) facts.unit_stride[rank - 1] = true;
        for (int d = 0; d < IR_MAX_RANK; d++) facts.size_div16[d] = true;
    } else if (t->facts && i < t->nfacts) {
        facts = t->facts[i];
    }
    return facts;
}

static bool word_is(const char *w, size_t n, const char *s) { return n == strlen(s) && memcmp(w, s, n) == 0; }

bool target_parse(const char *text, size_t len, Target *out, Strbuf *err) {
    *out = (Target){0};
    const char *p = text, *end = text + len;
    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (p == end) return true;
        const char *w = p;
        while (p < end && *p != ' ' && *p != '\t') p++;
        size_t n = (size_t)(p - w);
        if (word_is(w, n, "sm_80")) {
            out->sm = 80, out->arch_specific = false;
        } else if (word_is(w, n, "sm_90a")) {
            out->sm = 90, out->arch_specific = true;
        } else if (word_is(w, n, "tma")) {
            out->tma = true;
        } else if (word_is(w, n, "no_wgmma")) {
            out->no_wgmma = true;
        } else if (word_is(w, n, "specialize")) {
            out->specialize = true;
        } else if (word_is(w, n, "no_warp_roles")) {
            out->no_warp_roles = true;
        } else if (word_is(w, n, "cluster")) {
            out->cluster = true;
        } else if (word_is(w, n, "no_tma_store")) {
            out->no_tma_store = true;
        } else if (word_is(w, n, "warps") || word_is(w, n, "smem") || word_is(w, n, "facts") ||
                   word_is(w, n, "conds")) {
            const char *key = w;
            while (p < end && *p == ' ') p++;
            const char *v = p;
            while (p < end && *p != ' ' && *p != '\t') p++;
            size_t vn = (size_t)(p - v);
            if (key[0] == 'c') {
                if (!launch_conds_parse(v, vn, &out->conds)) {
                    sb_printf(err, "conds '%.*s': expected 1 to %d of 1, 0 or x", (int)vn, v, LAUNCH_CONDS_MAX);
                    return false;
                }
                continue;
            }
            if (key[0] == 'f') {
                if (!word_is(v, vn, "all")) {
                    sb_printf(err, "facts '%.*s': expected 'all'", (int)vn, v);
                    return false;
                }
                out->every_fact = true;
                continue;
            }
            char buf[32];
            char *stop;
            snprintf(buf, sizeof buf, "%.*s", (int)(vn < 31 ? vn : 31), v);
            long long x = strtoll(buf, &stop, 10);
            if (vn == 0 || vn > 30 || *stop || x <= 0 || (key[0] == 'w' && !ir_num_warps_valid(x))) {
                sb_printf(err, "%s '%.*s': expected %s", key[0] == 'w' ? "warps" : "smem", (int)vn, v,
                          key[0] == 'w' ? "1, 2, 4, 8, 16 or 32" : "a positive byte count");
                return false;
            }
            if (key[0] == 'w') out->num_warps = (int)x;
            else out->smem_bytes = x;
        } else {
            sb_printf(err, "unknown target word '%.*s' (sm_80, sm_90a, warps N, smem BYTES, facts all, tma, no_wgmma, specialize, no_warp_roles, cluster, no_tma_store)", (int)n, w);
            return false;
        }
    }
}

int passes_run_one(IrModule *m, const char *name, const PassOptions *opt, DiagList *d) {
    static const PassOptions defaults = {0};
    const Pass *p = name ? find(name) : NULL;
    if (!p) return -1;
    if (!opt) opt = &defaults;
    return p->run ? p->run(m, d) : p->run_gpu(m, opt, d);
}
