/*
 * codegen.h: the private state of the tile IR -> LLVM IR code generator (codegen*.c).
 *
 * Distribution (v2, layouts): every tile value of rank >= 1 has a register layout (ir/layout.h)
 * over the T = 32 * num_warps threads of a block, in its type: the runtime runs layout inference
 * (passes/layout.c) with the same num_warps before the backend, which only reads the layouts (a
 * tile without one, or with another thread count, is an internal error). A value's slots
 * are its layout's local indices; slot l of thread t holds the element at layout_map(t, l),
 * computed as the thread's part (emitted once per layout in the entry block from the layout's
 * thread terms) plus the compile-time local part. Scalars (and any value of one element) have
 * one slot, the same in every thread.
 *
 * Registers: bool is i1, integers of N bits iN, f16/bf16/f32 live as float (f16 and bf16
 * values are exactly representable and every op rounds back to them), f64 as double.
 *
 *   codegen.c         entry points, kernel ABI, value map, control flow, dispatch, layouts
 *   codegen_elem.c    element arithmetic: binary/unary ops, comparisons, casts, math
 *   codegen_bitcast.c bitcast between element types of one width
 *   codegen_f8.c      f8e4m3 and f8e5m2 to and from f32, as the VM rounds
 *   codegen_mem.c     moving a value into another layout (registers, rematerialization or
 *                     shared memory), global loads/stores/atomics (vectorized), shared tiles
 *   codegen_reduce.c  reduce (in-thread, shuffles, across warps), scan, dot on CUDA cores
 *   codegen_mma.c     dot on tensor cores (mma.sync m16n8k16, ldmatrix)
 *   codegen_atomic.c  atomics that return the old values, fences
 *   codegen_tma.c     TMA copies through tensor maps, mbarriers (sm_90a)
 *   codegen_roles.c   warp roles: a branch per role, setmaxnreg, a named barrier per role
 */
#ifndef TILE_BACKEND_CODEGEN_H
#define TILE_BACKEND_CODEGEN_H

#include <llvm-c/Core.h>

#include "backend/backend.h"
#include "ir/axis.h"
#include "ir/ir.h"
#include "ir/layout.h"

typedef enum { CV_TILE, CV_TENSOR, CV_SHARED } CgValueKind;

typedef struct CgValue {
    CgValueKind kind;
    /* CV_TILE */
    const Layout *layout;               /* NULL for values of one element (one slot) */
    int64_t numel;
    uint32_t nslots;
    LLVMValueRef *slots;
    /* CV_TENSOR */
    LLVMValueRef data;                  /* ptr addrspace(1) */
    LLVMValueRef size[IR_MAX_RANK];     /* i64 */
    LLVMValueRef stride[IR_MAX_RANK];   /* i64 */
    /* CV_SHARED: data is a ptr addrspace(3) */
} CgValue;

/* A layout's per-thread coordinate part and replica-owner flag, emitted in the entry block. */
typedef struct CgThreadPart {
    const Layout *layout;
    LLVMValueRef tid;                /* the thread index it was built from (a role's is its own) */
    LLVMValueRef coord[IR_MAX_RANK]; /* i64 */
    LLVMValueRef owner;              /* i1: every replica digit is 0; NULL when no replicas */
} CgThreadPart;

typedef struct Cg {
    LLVMContextRef ctx;
    LLVMModuleRef module;
    LLVMBuilderRef b;
    LLVMValueRef fn;
    const IrFunction *kernel;
    unsigned threads;
    LLVMValueRef tid;        /* i64 */
    int warps;
    const CodegenParamSpec *spec;
    BackendArch arch;
    AxisAnalysis axis;
    LLVMBuilderRef entry;    /* positioned before the entry block's branch */
    VEC(CgThreadPart) parts;
    LLVMValueRef tid_is_zero;
    LLVMValueRef smem_base;  /* @tile_smem: the dynamic shared memory; smem_plan's buffers first */
    uint64_t smem_planned;   /* bytes of smem_plan's buffers (the scratch follows, 16-aligned) */
    LLVMValueRef smem;       /* the scratch: @tile_smem + smem_planned */
    uint64_t smem_bytes;     /* the largest scratch need */
    const IrOp *smem_op;     /* the op that needs it (for the error's location) */
    CodegenTma tma[CODEGEN_MAX_TMA]; /* the kernel's tensor maps (cg_tma_plan) */
    uint32_t ntma;
    LLVMValueRef tma_param[CODEGEN_MAX_TMA]; /* their parameters */
    CgValue **values;        /* by IrValue id */
    uint32_t nvalues;
    unsigned shared_count;
    LLVMTypeRef i1, i8, i16, i32, i64, f16, bf16, f32, f64, ptr1, ptr3, void_type;
    Arena arena;             /* every CgValue and slot array */
    Strbuf *err;
    bool failed, unsupported;
    bool internal;           /* the failure is a compiler bug (cg_internal) */
    int role;                /* emitting warp role `role` (codegen_roles.c): tid, threads, warps are its own */
    unsigned scratch_roles;  /* the roles that used the scratch, one bit each */
} Cg;

/* ---- codegen.c ---- */
bool cg_fail(Cg *g, const IrOp *op, bool unsupported, const char *fmt, ...) TILE_PRINTF(4, 5);
/* A compiler bug rather than the kernel's: "internal error in pass codegen: <message>". */
bool cg_internal(Cg *g, const IrOp *op, const char *fmt, ...) TILE_PRINTF(3, 4);
void *cg_calloc(Cg *g, size_t n, size_t size); /* zeroed, freed with the module build */
CgValue *cg_get(Cg *g, const IrValue *v);
void cg_set(Cg *g, const IrValue *v, CgValue *cv);
/* The layout of a tile value, from its type (NULL for one element); check_layouts has made sure
 * that every tile of rank >= 1 has one for this block size. */
const Layout *cg_layout_of(Cg *g, const IrValue *v);
/* A tile of elem type with the given layout and numel (layout NULL: one slot). */
CgValue *cg_new_tile(Cg *g, const Layout *layout, int64_t numel);
CgValue *cg_new_tile_for(Cg *g, const IrValue *v); /* in v's layout */
/* The coordinates (i64) of slot l of a layout in this thread. */
void cg_slot_coords(Cg *g, const Layout *layout, uint32_t l, LLVMValueRef *coords);
/* i1: this thread is the replica-0 owner of its elements of layout; NULL when always. */
LLVMValueRef cg_owner(Cg *g, const Layout *layout);
/* A blocked layout for the current block size. */
const Layout *cg_blocked(Cg *g, int rank, const int64_t *shape, ElemType e);
LLVMValueRef cg_i64(Cg *g, int64_t v);
LLVMValueRef cg_i32(Cg *g, int64_t v);
/* Inline assembly with side effects, convergent (no transform may make it depend on more control
 * flow), returning ret (a struct for several outputs, void for none). */
LLVMValueRef cg_asm(Cg *g, const char *text, const char *constraints, LLVMTypeRef ret, LLVMValueRef *args,
                    unsigned nargs);
/* The same without operands, with a memory clobber. */
void cg_asm_void(Cg *g, const char *text);
/* Runs what the builder emits next in thread 0 only (codegen_tma.c): cg_thread0_begin returns the
 * join block that cg_thread0_end branches to and continues at. */
LLVMBasicBlockRef cg_thread0_begin(Cg *g);
void cg_thread0_end(Cg *g, LLVMBasicBlockRef join);
void cg_barrier(Cg *g);
LLVMValueRef cg_call_intrinsic(Cg *g, const char *name, LLVMTypeRef *overloads, unsigned noverloads,
                               LLVMValueRef *args, unsigned nargs);
LLVMBasicBlockRef cg_block(Cg *g, const char *name);

/* ---- codegen_elem.c ---- */
LLVMTypeRef cg_reg_type(Cg *g, ElemType e);
/* Whether e can live in registers and in memory on the GPU; *what names it otherwise. */
bool cg_elem_supported(ElemType e);
LLVMValueRef cg_const(Cg *g, ElemType e, IrConst c);
/* Rounds a register value to the element type (f16/bf16 through their format). */
LLVMValueRef cg_round(Cg *g, ElemType e, LLVMValueRef v);
LLVMValueRef cg_convert(Cg *g, ElemType from, LLVMValueRef v, ElemType to);
/* x (op) y for an elementwise op code (binary ops and CMP with pred); NULL on unsupported. */
LLVMValueRef cg_binary(Cg *g, OpCode code, int pred, ElemType e, LLVMValueRef x, LLVMValueRef y);
LLVMValueRef cg_unary(Cg *g, OpCode code, ElemType e, LLVMValueRef x);
/* Extends an integer register to i64 per its signedness (bool: zero). */
LLVMValueRef cg_to_i64(Cg *g, ElemType e, LLVMValueRef v);
/* Memory: the type an element occupies in memory, and the conversions to and from it. */
LLVMTypeRef cg_mem_type(Cg *g, ElemType e);
LLVMValueRef cg_to_mem(Cg *g, ElemType e, LLVMValueRef v);
LLVMValueRef cg_from_mem(Cg *g, ElemType e, LLVMValueRef v);
/* Float NaN-propagating min/max as the VM computes them. */
LLVMValueRef cg_fminmax(Cg *g, bool max, LLVMValueRef x, LLVMValueRef y);

/* ---- codegen_f8.c ---- */
bool cg_is_f8(ElemType e); /* f8e4m3 or f8e5m2 */
/* The byte (i8) of an f32 register value rounded as the VM does, and the f32 a byte denotes. */
LLVMValueRef cg_f8_encode(Cg *g, ElemType e, LLVMValueRef v);
LLVMValueRef cg_f8_decode(Cg *g, ElemType e, LLVMValueRef byte);
LLVMValueRef cg_f8_round(Cg *g, ElemType e, LLVMValueRef v); /* decode(encode(v)) */
/* The byte v was decoded from, when v is a cg_f8_decode call (a loaded element); else NULL. */
LLVMValueRef cg_f8_raw(Cg *g, ElemType e, LLVMValueRef v);

/* ---- codegen_bitcast.c ---- */
/* The bits of v (a register of type from) as a register of type to, of the same width; NULL
 * when the types differ in width or one is bool. */
LLVMValueRef cg_bitcast(Cg *g, ElemType from, LLVMValueRef v, ElemType to);

/* ---- codegen_mem.c ---- */
int64_t cg_elem_bytes(ElemType e);
void cg_need_scratch(Cg *g, uint64_t bytes);
/* Every thread writes its slots of cv (elements of shape `shape`) at their row-major element
 * offsets from byte `offset` of base; replicas write the same values. */
void cg_scratch_write(Cg *g, LLVMValueRef base, uint64_t offset, ElemType e, const CgValue *cv, int rank,
                      const int64_t *shape);
LLVMValueRef cg_scratch_read(Cg *g, LLVMValueRef base, uint64_t offset, ElemType e, LLVMValueRef idx);
/* v (a register value of e) stored as element idx of e at base + offset. */
void cg_scratch_store(Cg *g, LLVMValueRef base, uint64_t offset, ElemType e, LLVMValueRef idx, LLVMValueRef v);
/* v (which broadcasts to want's shape, right-aligned) in layout want (NULL: one element). */
CgValue *cg_in_layout(Cg *g, const IrOp *op, const IrValue *v, const Layout *want, int rank, const int64_t *shape);
bool cg_reshape_like(Cg *g, const IrOp *op); /* expand_dims, reshape, transpose, convert_layout, broadcast */
bool cg_load(Cg *g, const IrOp *op);
bool cg_store(Cg *g, const IrOp *op);
bool cg_shared_op(Cg *g, const IrOp *op);
bool cg_shared_load(Cg *g, const IrOp *op);  /* load with a shared tile as operand 0 */
bool cg_shared_store(Cg *g, const IrOp *op); /* store with a shared tile as operand 0 */
bool cg_shared_view(Cg *g, const IrOp *op);
bool cg_copy_async(Cg *g, const IrOp *op);   /* cp.async, one commit group per op */
bool cg_async_wait(Cg *g, const IrOp *op);   /* cp.async.wait_group */
/* The address of element coords of a shared value at base laid out by l (NULL: row-major). */
LLVMValueRef cg_shared_addr(Cg *g, LLVMValueRef base, const SharedLayout *l, ElemType e, int rank,
                            const int64_t *shape, const LLVMValueRef *coords);

/* ---- codegen_reduce.c ---- */
bool cg_reduce(Cg *g, const IrOp *op);
bool cg_scan(Cg *g, const IrOp *op);
bool cg_dot(Cg *g, const IrOp *op);

/* ---- codegen_mma.c ---- */
struct MmaTiling; /* ir/mma.h */
/* dot on tensor cores: r is the result tile in the mma accumulator layout of t, c the
 * accumulator in that layout. */
bool cg_dot_mma(Cg *g, const IrOp *op, const struct MmaTiling *t, CgValue *r, const CgValue *c);
bool cg_dot_wgmma(Cg *g, const IrOp *op, const struct MmaTiling *t, CgValue *r, const CgValue *c);
bool cg_dot_wait(Cg *g, const IrOp *op);
/* mma_pack(t->instr) elements of an mma operand in registers (values of t's operand type, the
 * lowest first) as the packed 32-bit register the instructions take. */
LLVMValueRef cg_mma_pack(Cg *g, const struct MmaTiling *t, LLVMValueRef const *slots);

/* ---- codegen_tma.c ---- */
bool cg_tma_plan(Cg *g);                 /* the tensor maps of the kernel's copy_tma ops */
bool cg_tma_op(Cg *g, const IrOp *op);   /* mbarrier_init, copy_tma, mbarrier_arrive, mbarrier_wait */
/* ---- codegen_cluster.c ---- */
bool cg_cluster_op(Cg *g, const IrOp *op); /* cluster_size, cluster_barrier */
/* Box `box` of a copy_tma with `multicast N`: with its flag, issued by cluster rank box % N with
 * .multicast::cluster (plain's text and constraints, the mask added); without, plain alone. */
void cg_cluster_multicast_box(Cg *g, const IrOp *op, int64_t box, const char *plain, const char *constraints,
                              LLVMValueRef *args, unsigned nargs);
/* mbarrier_arrive with `cluster N` (in thread 0): an arrival on the mbarrier at bar (a 32-bit
 * shared offset) of each block of the cluster. */
void cg_cluster_arrive(Cg *g, const IrOp *op, LLVMValueRef bar);
/* ---- codegen_roles.c ---- */
bool cg_warp_roles(Cg *g, const IrOp *op);

/* ---- codegen_tma_store.c ---- */
bool cg_tma_store_op(Cg *g, const IrOp *op);   /* store_tma, store_wait */
bool cg_is_staging_store(const IrOp *op);      /* a shared_store that a store_tma of its buffer follows */
bool cg_staging_store(Cg *g, const IrOp *op);  /* that shared_store: stmatrix or st.shared through the layout */
bool cg_emit_region(Cg *g, const IrRegion *r, const IrOp **term); /* codegen.c: a region's ops */
/* The barrier of the code being emitted: the block's (bar.sync 0), or in a role the role's own. */
void cg_barrier_text(const Cg *g, char *buf, size_t cap);
/* Whether an mbarrier_arrive in a role first needs the role's barrier (codegen_roles.c says when not). */
bool cg_role_arrive_needs_barrier(const Cg *g, const IrOp *op);
/* ---- codegen_atomic.c ---- */
bool cg_atomic_result(Cg *g, const IrOp *op); /* atomic_rmw, atomic_cas: the old values */
bool cg_fence(Cg *g, const IrOp *op);

#endif
