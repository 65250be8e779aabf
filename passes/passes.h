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

/* What the GPU passes compile for (QBE's Target): the architecture, the block, the shared memory
 * and what is proven about the arguments at launch. Lowering and the target-independent passes
 * run once per binding of the constants; the GPU passes run once per Target, each on its own
 * copy of that IR (clone_module), so that the images for sm_80 and sm_90a and every specialized
 * variant get their own IR (runtime: rt_target_module). A zero Target is sm_80, the kernel's
 * warps, that arch's shared memory, no facts. */
typedef struct Target {
    int sm;                  /* the compute capability as a number: 80, 90; 0: 80 */
    bool arch_specific;      /* the 'a' suffix (sm_90a): code that runs on that capability only
                                (TMA, wgmma, setmaxnreg) */
    int num_warps;           /* threads per block / 32; 0: the kernel's warps(N), else 4 */
    int64_t smem_bytes;      /* shared memory a block may use; 0: target_smem_bytes's default */
    const IrParamFacts *facts; /* launch facts, one per parameter of the module's kernel (a module
                                  that the runtime compiles holds one), or NULL: none proven */
    uint32_t nfacts;
    bool every_fact;         /* assume every fact of every tensor parameter, contiguous and
                                aligned (TILE_EMIT_SPECIALIZED's all-facts variant, golden tests,
                                the VM, which needs none): target_param_facts */
    bool tma;                /* on sm_90a: stages may make TMA rings (copy_tma and mbarriers), whose
                                tensor maps the launch must encode: the cuda device's variants
                                (with a driver that encodes them; TILE_TMA=0 turns it off),
                                tile_program_emit, the VM (TILE_VM_GPU_PASSES=sm_90a) and tests
                                set it; ahead-of-time images leave it off */
    bool no_wgmma;           /* on sm_90a: keep dots on mma.sync (TILE_WGMMA=0 in the runtime) */
    bool specialize;         /* on sm_90a: stages may give a TMA ring's loop a producer warpgroup
                                (warp roles; TILE_WARP_SPECIALIZE=1 in the runtime; off by default);
                                a loop's `pipeline(N, specialize = 0 | 1)` overrides it */
    bool no_warp_roles;      /* never warp roles, not even for a loop that asks: the runtime sets it
                                where the ptxas program, which alone honours setmaxnreg, is not found */
    bool cluster;            /* with tma: the cluster pass may pair blocks that copy the same tiles
                                into clusters of 2 with TMA multicast (off unless TILE_CLUSTER=1: not faster so far) */
    bool no_tma_store;       /* with tma: keep tile stores on st.global (TILE_TMA_STORE=0 in the
                                runtime; the target word no_tma_store), else the epilogue pass may
                                make them TMA stores */
    unsigned conds;          /* launch-known conditions of the module's kernel (passes/conds.c):
                                bit i the value of condition i of launch_conds_find, bit
                                LAUNCH_CONDS_MAX + i whether it is known; 0: none (the generic
                                kernel, ahead-of-time images, TILE_EMIT_SPECIALIZED's variant) */
} Target;

/* The target's shared memory per block: smem_bytes, else 227 KB on sm_90 and newer, 163 KB on
 * sm_80 (A100's opt-in limit; smaller sm_8x parts JIT the same PTX and refuse larger blocks at
 * load). */
int64_t target_smem_bytes(const Target *t);
/* The facts of kernel f's parameter i under t (all false when none is proven). */
IrParamFacts target_param_facts(const Target *t, const IrFunction *f, uint32_t i);
/* Whether t can use TMA (cp.async.bulk.tensor with mbarriers): sm_90a and newer arch-specific. */
static inline bool target_has_tma(const Target *t) { return t->sm >= 90 && t->arch_specific && t->tma; }
/* Whether dots may run on wgmma.mma_async (sm_90a: the layout pass chooses it, stages lays out its
 * operands' rings for it). */
static inline bool target_has_wgmma(const Target *t) { return t->sm >= 90 && t->arch_specific && !t->no_wgmma; }
/* Reads a target written as words: `sm_80` | `sm_90a`, `warps N`, `smem BYTES`, `facts all`, `tma`,
 * `no_wgmma`, `specialize`, `no_warp_roles`, `cluster`, `no_tma_store`, `conds 1x0` (launch_conds_parse), in any order (golden tests' `# target:`
 * line). False with the reason in err. */
bool target_parse(const char *text, size_t len, Target *out, Strbuf *err);

typedef struct PassOptions {
    const char *dump_after;  /* a pass name, "all" (after every pass), or NULL */
    Strbuf *dump;            /* where dumps go */
    bool verify_each;        /* run the verifier before the first pass and after each one */
    bool gpu;                /* passes_run: also run the GPU passes; implied by dump_after naming one */
    Target target;           /* the GPU passes' target */
} PassOptions;

/* A GPU pass: it sees the target (PassOptions.target). */
typedef bool (*GpuPassFn)(IrModule *m, const struct PassOptions *opt, DiagList *d);

/* Runs the pipeline. False when a pass reported an error or when the verifier failed after a
 * pass (a compiler bug: diag_internal's "internal error in pass X: ..." after the verifier's
 * messages; d->internal counts them). */
bool passes_run(IrModule *m, const PassOptions *opt, DiagList *d);
/* The GPU passes alone, for opt->target, on IR that passes_run left target-independent (the
 * runtime runs them on a copy per target). Same result and dumps as the GPU part of passes_run. */
bool passes_run_target(IrModule *m, const PassOptions *opt, DiagList *d);
bool passes_is_known(const char *name);   /* a pass of the pipeline, or "all" */
bool passes_is_gpu(const char *name);     /* a GPU pass (one that passes_run_target runs) */
/* Runs the pipeline's pass `name` alone (a GPU pass for opt's target; opt NULL: the defaults),
 * for tests that name their passes (the golden files of tests/passes). -1: no such pass; else
 * whether it changed the module. */
int passes_run_one(IrModule *m, const char *name, const PassOptions *opt, DiagList *d);
void passes_list(Strbuf *out);            /* the pipeline: a pass per line, with when it runs */

/* ---- GPU passes --------------------------------------------------------------------------- */
struct Layout;           /* ir/layout.h */

/* Launch-known conditions (passes/conds.c): conditions of `if`s (then of `select`s) computed only
 * from scalar parameters, tensor sizes and constants by pure scalar integer ops, which the runtime
 * evaluates at launch and makes facts of the variant (Target.conds). */
enum { LAUNCH_CONDS_MAX = 8 };
/* Kernel f's launch-known conditions, each value once, in program order (ifs first), at most
 * LAUNCH_CONDS_MAX, into conds; their count. */
uint32_t launch_conds_find(const IrFunction *f, IrValue **conds);
/* The ops that compute f's conditions from its parameters, in program order, into ops[cap]: their
 * count, or -1 when there are more than cap. */
int launch_conds_slice(const IrFunction *f, const IrOp **ops, int cap);
/* The first GPU pass: the conditions that Target.conds knows become constants, and canonicalize
 * and dce drop the branches not taken. */
bool pass_conds(IrModule *m, const struct PassOptions *opt, DiagList *d);
/* A conds word as text, one character per condition of n: '1', '0', or 'x' (unknown). */
void launch_conds_text(unsigned word, uint32_t n, Strbuf *out);
/* The word of such text (at most LAUNCH_CONDS_MAX characters); false when it is not such text. */
bool launch_conds_parse(const char *text, size_t len, unsigned *word);

/* Layout inference (passes/layout.c): computes a register layout for every tile value of rank
 * >= 1 of each kernel for blocks of 32 * num_warps threads, writes them into the types and
 * inserts convert_layout where an operand's layout differs from what its user needs. The code
 * generator reads these layouts and must be given the same num_warps. */
/* num_warps 0: each kernel's warps(N), else 4; wgmma: dots whose operands the stages pass will
 * stage may take a wgmma row (target_has_wgmma). */
bool pass_layout_run(IrModule *m, int num_warps, bool wgmma, DiagList *d);
bool pass_layout(IrModule *m, DiagList *d); /* pass_layout_run with 4 warps */
/* The pass for target t: its warps, wgmma, and its capability, which bounds the mma.sync rows
 * (m16n8k32 on f8 needs sm_89; on sm_80 such a dot stays on CUDA cores). pass_layout_run assumes
 * sm_90 with wgmma, else sm_80. */
bool pass_layout_for(IrModule *m, const Target *t, DiagList *d);

/* Software pipelining (passes/stages.c): loads that feed tensor-core dots in `pipeline(N)` loops
 * become copy_async into N-stage swizzled shared buffers issued N - 1 iterations ahead (copy_tma
 * with an mbarrier per stage where target_has_tma and the launch facts allow). Runs after the
 * layout pass. The rings fit the target's shared memory (target_smem_bytes): a ring
 * that would not fit gets fewer stages (at least 2), or is not made (the loop stays as written). */
bool pass_stages_target(IrModule *m, const Target *t, DiagList *d);
/* Thread-block clusters (passes/cluster.c): for a kernel with one TMA ring (Target.cluster), the
 * copies of each ring buffer become multicasts over a cluster of 2 blocks where both blocks
 * copy the same tiles, decided at run time; the kernel gets `cluster 2`. Runs after stages. */
bool pass_cluster_target(IrModule *m, const Target *t, DiagList *d);
/* TMA stores (passes/epilogue.c): on sm_90a with TMA (not no_tma_store), a tile store of a dot's
 * result whose tensor the launch facts allow becomes shared_store into a swizzled staging buffer
 * and store_tma, with the store_waits that keep the buffer until the TMA unit has read it. Runs
 * after stages, before smem_plan. */
bool pass_epilogue_target(IrModule *m, const Target *t, DiagList *d);
/* The scalar start of index operand v of a load or store along dimension d of a rank-`rank` tile
 * of n elements there (v = reshape(splat(s) + arange 0), or reshape(arange c): then c as a new
 * constant made by b, or, with b NULL, the arange tile itself); NULL when v is not such a slice
 * (passes/stages.c; the epilogue pass uses it too). */
IrValue *pass_slice_start(IrBuilder *b, IrValue *v, int d, int rank, int64_t n);
/* The uses of v in r (nested regions included): how many, and the last user and its operand
 * index (passes/stages.c; the layout pass uses it too). */
typedef struct PassUses {
    int count;
    IrOp *user;
    uint32_t operand;
} PassUses;
PassUses pass_uses(const IrRegion *r, const IrValue *v);
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
/* A new module with a copy of every function of m (types interned in the copy, calls to the
 * copies). The copy borrows m's strings, parameter specs and layouts (immutable once made):
 * free the copy before m. */
IrModule *clone_module(const IrModule *m);

#endif
