/*
 * passes.h: IR -> IR rewrites and the pipeline that orders them (passes/pipeline.c).
 *
 * Each pass works on a whole module, returns whether it changed anything, and reports user
 * errors (there are few: a recursive call cycle) into a DiagList. Passes keep the IR valid;
 * the pipeline runs the verifier after each pass when asked (debug builds) and calls an
 * invalid result a compiler bug. One file per pass; clone.c copies regions for inlining.
 */
#ifndef TILE_PASSES_H
#define TILE_PASSES_H

#include "ir/ir.h"

typedef bool (*PassFn)(IrModule *m, DiagList *d);

bool pass_inline(IrModule *m, DiagList *d);       /* replace calls by the callee's body */
bool pass_canonicalize(IrModule *m, DiagList *d); /* fold constants, exact identities, trivial control flow */
bool pass_cse(IrModule *m, DiagList *d);          /* merge equal pure ops that dominate */
bool pass_dce(IrModule *m, DiagList *d);          /* drop unused pure ops, carried values, functions */

/* What callers should pass as verify_each: on in debug builds, off with NDEBUG. */
#ifndef NDEBUG
#define PASSES_VERIFY_DEFAULT true
#else
#define PASSES_VERIFY_DEFAULT false
#endif

typedef struct PassOptions {
    const char *dump_after;  /* a pass name, "all" (after every pass), or NULL */
    Strbuf *dump;            /* where dumps go */
    bool verify_each;        /* run the verifier before the first pass and after each one */
    bool gpu;                /* also run the GPU passes (layout); implied by dump_after "layout" */
    int num_warps;           /* GPU passes: threads per block / 32; 0: the kernel's warps(N), else 4 */
    int arch;                /* GPU passes: 80 (sm_80) or 90 (sm_90a); 0: sm_80 */
    int64_t smem_bytes;      /* GPU passes: shared memory a block may use; 0: 227 KB (sm_80 164 KB
                                is smaller, but one IR serves both archs until the per-arch split) */
} PassOptions;

/* A GPU pass: it sees the target (PassOptions.num_warps, arch). */
typedef bool (*GpuPassFn)(IrModule *m, const struct PassOptions *opt, DiagList *d);

/* Runs the pipeline. False when a pass reported an error or when the verifier failed after a
 * pass (a compiler bug: diag_internal's "internal error in pass X: ..." after the verifier's
 * messages; d->internal counts them). */
bool passes_run(IrModule *m, const PassOptions *opt, DiagList *d);
bool passes_is_known(const char *name);   /* a pass of the pipeline, or "all" */
/* Runs the pipeline's pass `name` alone (a GPU pass for opt's target; opt NULL: the defaults),
 * for tests that name their passes (the golden files of tests/passes). -1: no such pass; else
 * whether it changed the module. */
int passes_run_one(IrModule *m, const char *name, const PassOptions *opt, DiagList *d);
void passes_list(Strbuf *out);            /* the pipeline: a pass per line, with when it runs */

/* ---- GPU passes --------------------------------------------------------------------------- */
struct Layout;           /* ir/layout.h */

/* Layout inference (passes/layout.c): computes a register layout for every tile value of rank
 * >= 1 of each kernel for blocks of 32 * num_warps threads, writes them into the types and
 * inserts convert_layout where an operand's layout differs from what its user needs. The code
 * generator reads these layouts and must be given the same num_warps. */
bool pass_layout_run(IrModule *m, int num_warps, DiagList *d);
bool pass_layout(IrModule *m, DiagList *d); /* pass_layout_run with 4 warps */

/* Software pipelining (passes/stages.c): loads that feed tensor-core dots in `pipeline(N)` loops
 * become copy_async into N-stage swizzled shared buffers issued N - 1 iterations ahead. Runs
 * after the layout pass. */
bool pass_stages(IrModule *m, DiagList *d);
/* The same for a shared-memory budget in bytes: a ring that would not fit gets fewer stages (at
 * least 2), or is not made (the loop stays as written). */
bool pass_stages_within(IrModule *m, int64_t smem_bytes, DiagList *d);
/* Shared-memory planning (passes/smem_plan.c): gives every shared_alloc of a kernel its byte
 * offset in the dynamic shared memory (ints[0]); buffers are aligned to 1024 bytes when
 * swizzled, else 16. */
bool pass_smem_plan(IrModule *m, const struct PassOptions *opt, DiagList *d);
/* The alignment smem_plan gives a shared buffer of type t (bytes). */
int64_t smem_align(const IrType *t);

/* The accumulator layout of a CUDA-core dot [M, N]: each thread owns a strided block of
 * (M / tm) x (N / tn) elements, local(M/tm, N/tn) * spatial(tm, tn). */
const struct Layout *layout_dot_acc(Arena *arena, int64_t m, int64_t n, int num_warps);

/* ---- region cloning (passes/clone.c) ----------------------------------------------------- */
/* Maps values of a source function to values of the function being built, by source id.
 * Values that are not mapped stand for themselves (cloning inside one function). */
typedef struct ValueMap {
    const IrFunction *source;
    IrValue **to;
    uint32_t cap;
} ValueMap;

void value_map_init(ValueMap *map, const IrFunction *source);
void value_map_free(ValueMap *map);
void value_map_set(ValueMap *map, const IrValue *from, IrValue *to);
IrValue *value_map_get(const ValueMap *map, IrValue *from);

/* Clones op (with its nested regions) at the builder's position; maps its results. */
IrOp *clone_op(IrBuilder *b, const IrOp *op, ValueMap *map);
/* Clones every op of src at the builder's position, stopping before src's terminator when
 * skip_terminator is set. The caller maps src's arguments first. */
void clone_region_ops(IrBuilder *b, const IrRegion *src, ValueMap *map, bool skip_terminator);

#endif
