/*
 * codegen.h: the private state of the tile IR -> LLVM IR code generator (codegen*.c).
 *
 * Distribution of a tile over the T = 32 * num_warps threads of a block (v1, the canonical
 * layout): a value of n elements with n == 1 is *replicated* (every thread holds element 0 in
 * slot 0, which is how scalars live); otherwise thread t holds ceil(n / T) slots and slot j
 * holds the row-major element e = j * T + t. Slots with e >= n are inactive: they hold
 * well-defined garbage and every memory access they would make is masked. Because the layout
 * depends only on the flattened index, reshapes are free; ops that move elements between
 * threads go through the shared scratch buffer @tile_smem (dynamic shared memory).
 *
 * Registers: bool is i1, integers of N bits iN, f16/bf16/f32 live as float (f16 and bf16
 * values are exactly representable and every op rounds back to them), f64 as double.
 *
 *   codegen.c        entry points, kernel ABI, value map, control flow, dispatch
 *   codegen_elem.c   element arithmetic: binary/unary ops, comparisons, casts, math
 *   codegen_mem.c    global loads/stores/atomics, index rematerialization, shared-memory ops
 *                    (broadcast, transpose, reduce, scan, dot, explicit shared tiles)
 */
#ifndef TILE_BACKEND_CODEGEN_H
#define TILE_BACKEND_CODEGEN_H

#include <llvm-c/Core.h>

#include "backend/backend.h"
#include "ir/ir.h"

typedef enum { CV_TILE, CV_TENSOR, CV_SHARED } CgValueKind;

typedef struct CgValue {
    CgValueKind kind;
    /* CV_TILE */
    int64_t numel;
    uint32_t nslots;
    LLVMValueRef *slots;
    /* CV_TENSOR */
    LLVMValueRef data;                  /* ptr addrspace(1) */
    LLVMValueRef size[IR_MAX_RANK];     /* i64 */
    LLVMValueRef stride[IR_MAX_RANK];   /* i64 */
    /* CV_SHARED: data is a ptr addrspace(3) */
} CgValue;

typedef struct Cg {
    LLVMContextRef ctx;
    LLVMModuleRef module;
    LLVMBuilderRef b;
    LLVMValueRef fn;
    const IrFunction *kernel;
    unsigned threads;
    LLVMValueRef tid;        /* i64 */
    LLVMValueRef tid_is_zero;
    LLVMValueRef smem;       /* @tile_smem */
    uint64_t smem_bytes;     /* the largest scratch need */
    CgValue **values;        /* by IrValue id */
    uint32_t nvalues;
    unsigned shared_count;
    LLVMTypeRef i1, i8, i16, i32, i64, f16, bf16, f32, f64, ptr1, ptr3, void_type;
    Arena arena;             /* every CgValue and slot array */
    Strbuf *err;
    bool failed, unsupported;
} Cg;

/* ---- codegen.c ---- */
bool cg_fail(Cg *g, const IrOp *op, bool unsupported, const char *fmt, ...) TILE_PRINTF(4, 5);
void *cg_calloc(Cg *g, size_t n, size_t size); /* zeroed, freed with the module build */
CgValue *cg_get(Cg *g, const IrValue *v);
CgValue *cg_new_tile(Cg *g, const IrType *t);
void cg_set(Cg *g, const IrValue *v, CgValue *cv);
uint32_t cg_slot_count(const Cg *g, int64_t numel);
/* Element index (i64) of slot j of a value of numel elements, clamped to numel - 1 so that an
 * inactive slot reads a valid element. */
LLVMValueRef cg_slot_index(Cg *g, int64_t numel, uint32_t j);
/* Whether slot j is active (i1), or NULL when it always is. */
LLVMValueRef cg_slot_active(Cg *g, int64_t numel, uint32_t j);
LLVMValueRef cg_i64(Cg *g, int64_t v);
LLVMValueRef cg_i32(Cg *g, int64_t v);
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

/* ---- codegen_mem.c ---- */
bool cg_load(Cg *g, const IrOp *op);
bool cg_store(Cg *g, const IrOp *op);
bool cg_broadcast(Cg *g, const IrOp *op);
bool cg_transpose(Cg *g, const IrOp *op);
bool cg_reduce_scan(Cg *g, const IrOp *op);
bool cg_dot(Cg *g, const IrOp *op);
bool cg_shared_op(Cg *g, const IrOp *op);

#endif
