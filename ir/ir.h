/*
 * ir.h: the SSA IR of tile, which is the instruction set of a thread-block virtual machine.
 *
 * A module holds functions; a kernel is a function whose parameters are tensors and scalars
 * and which has a grid region besides its body. Code lives in regions: a region is one block
 * with arguments and a doubly linked list of ops ending in a terminator. Control flow is
 * structured: `for`, `if` and `while` are ops that own regions, and loop-carried values are
 * region arguments fed by `yield`. There is no goto and no phi.
 *
 *   IrModule ── IrFunction ── body: IrRegion (args = parameters)
 *                          └─ grid: IrRegion (kernels: args = parameters, yields 1..3 i32)
 *   IrRegion ── args: IrValue*[]; ops: IrOp <-> IrOp <-> ... <-> terminator
 *   IrOp     ── operands: IrValue*[]; results: IrValue*[]; regions: IrRegion*[]; attributes
 *
 * Types are interned per module, so two types are equal exactly when their pointers are.
 * Scalars are tiles of rank 0. A tile type may carry a register layout (ir/layout.h), which
 * layout inference sets on the GPU path; the VM ignores layouts.
 *
 * Everything of a module is allocated in its arena and freed with it.
 */
#ifndef TILE_IR_H
#define TILE_IR_H

#include "support/support.h"

enum { IR_MAX_RANK = 6 };

/* ---- element types ------------------------------------------------------------------- */
typedef enum {
    EK_BOOL,   /* 1 bit of truth; 1 byte in memory */
    EK_INT,    /* two's complement, bits 1..64 (i1 holds -1 and 0) */
    EK_UINT,   /* bits 1..64 */
    EK_FLOAT,  /* sign, exp exponent bits, man mantissa bits: bits = 1 + exp + man */
} ElemKind;

typedef struct ElemType {
    uint8_t kind; /* ElemKind */
    uint8_t bits;
    uint8_t exp, man; /* floats only */
} ElemType;

/* Built-in names: f16 = f16e5m10, bf16 = f16e8m7, f32 = f32e8m23, f64 = f64e11m52.
 * Float semantics: 16, 32 and 64 bits and f8e5m2 are IEEE-like (infinities, NaNs).
 * Every other small float is finite-only: no infinities, overflow saturates to the largest
 * finite value; f8e4m3 keeps S.1111.111 as NaN (as OCP's e4m3fn does), narrower ones have
 * no NaN and convert NaN to +0. */
static inline ElemType elem_bool(void) { return (ElemType){EK_BOOL, 1, 0, 0}; }
static inline ElemType elem_int(int bits) { return (ElemType){EK_INT, (uint8_t)bits, 0, 0}; }
static inline ElemType elem_uint(int bits) { return (ElemType){EK_UINT, (uint8_t)bits, 0, 0}; }
static inline ElemType elem_float(int exp, int man) {
    return (ElemType){EK_FLOAT, (uint8_t)(1 + exp + man), (uint8_t)exp, (uint8_t)man};
}
static inline ElemType elem_f32(void) { return elem_float(8, 23); }
static inline ElemType elem_f64(void) { return elem_float(11, 52); }
static inline ElemType elem_f16(void) { return elem_float(5, 10); }
static inline ElemType elem_bf16(void) { return elem_float(8, 7); }
static inline ElemType elem_i32(void) { return elem_int(32); }
static inline bool elem_eq(ElemType a, ElemType b) {
    return a.kind == b.kind && a.bits == b.bits && a.exp == b.exp && a.man == b.man;
}
static inline bool elem_is_float(ElemType e) { return e.kind == EK_FLOAT; }
static inline bool elem_is_integer(ElemType e) { return e.kind == EK_INT || e.kind == EK_UINT; }
static inline bool elem_is_bool(ElemType e) { return e.kind == EK_BOOL; }
/* f8e5m2 and 16/32/64-bit floats have infinities and NaNs; see above. */
bool elem_float_is_ieee(ElemType e);
/* Parses "f32", "bf16", "i7", "u1", "f6e3m2", "bool", ...; false if it is not a type name. */
bool elem_parse(const char *name, size_t len, ElemType *out);
/* Writes the canonical name ("bf16", "f8e4m3", "u4") into buf (at least 16 bytes). */
const char *elem_name(ElemType e, char *buf);
/* Bits an element occupies in memory: bool is 8; every other type its width. */
int elem_storage_bits(ElemType e);

/* ---- types ----------------------------------------------------------------------------- */
typedef enum {
    TY_TILE,    /* registers: elem + shape (rank 0 = scalar); optional register layout */
    TY_TENSOR,  /* global memory view: elem + rank; shape and strides bound at launch */
    TY_SHARED,  /* shared memory tile: elem + shape; optional shared layout */
} TypeKind;

struct Layout;        /* ir/layout.h */
struct SharedLayout;  /* ir/layout.h */

typedef struct IrType {
    TypeKind kind;
    ElemType elem;
    int rank;
    int64_t shape[IR_MAX_RANK];         /* TY_TILE, TY_SHARED; unused for TY_TENSOR */
    const struct Layout *layout;        /* TY_TILE: register layout or NULL */
    const struct SharedLayout *shared;  /* TY_SHARED: shared layout or NULL */
} IrType;

/* The one rule for warps per block, at every entry (the language's warps(N), the API's
 * num_warps, tilec --num-warps through tile_num_warps_valid): a power of two from 1 to 32, so
 * that a block has at most 1024 threads and the layouts tile it evenly. */
static inline bool ir_num_warps_valid(int64_t n) { return n >= 1 && n <= 32 && (n & (n - 1)) == 0; }
static inline bool type_is_scalar(const IrType *t) { return t->kind == TY_TILE && t->rank == 0; }
int64_t type_numel(const IrType *t); /* tiles and shared tiles: product of the shape */
int64_t type_bytes(const IrType *t); /* tiles and shared tiles: bytes in memory (sub-byte packed, rounded up) */

/* ---- constants ------------------------------------------------------------------------- */
typedef struct IrConst {
    bool is_float;
    int64_t i;  /* integers and bool (bool: 0 or 1; unsigned: the bits, zero-extended) */
    double f;   /* floats */
} IrConst;

/* ---- enumerations used in attributes ----------------------------------------------------- */
typedef enum { CMP_EQ, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE } IrCmp;
typedef enum { RED_SUM, RED_MAX, RED_MIN } IrReduce;
typedef enum { ATOMIC_ADD, ATOMIC_MAX, ATOMIC_MIN, ATOMIC_AND, ATOMIC_OR, ATOMIC_XCHG } IrAtomic;
/* The memory order of ATOMIC_RMW, ATOMIC_CAS and FENCE (ints[1], ints[1], ints[0]); scope gpu. */
typedef enum { MEM_RELAXED, MEM_ACQ_REL } IrMemOrder;

/* ---- ops ------------------------------------------------------------------------------- */
typedef enum {
#define X(e, name, nops, nres, nreg, flags, effect, place, rule) OP_##e,
#include "ops.def"
#undef X
    OP_COUNT
} OpCode;

/* F_PURE and F_MEM are derived from the effect column (ir.c); rows write the others. */
enum { F_PURE = 1, F_TERM = 2, F_COMM = 4, F_ELEM = 8, F_MEM = 16 };

/* What an op does besides computing its results (the effect column of ops.def). */
typedef enum { EFFECT_PURE, EFFECT_READ, EFFECT_WRITE, EFFECT_SYNC, EFFECT_REGIONS, EFFECT_OPAQUE } IrEffect;
/* Where an op may stand (the place column of ops.def). */
typedef enum { PLACE_ANY, PLACE_BODY, PLACE_GRID } IrPlace;

typedef struct OpInfo {
    const char *name;
    int noperands, nresults, nregions; /* -1: variadic */
    unsigned flags;
    IrEffect effect;
    IrPlace place;
    const char *rule;                  /* the verifier's rule (rule_<name> in ir/verify.c) */
} OpInfo;
extern const OpInfo ir_op_info[OP_COUNT];
static inline IrEffect ir_op_effect(OpCode code) { return ir_op_info[code].effect; }
/* How many IrOp.ints an op needs: one past the last slot of its required attributes in
 * ir/attr.def (kinds other than NONZERO_INT and SET_INT, which may be absent). */
int ir_op_required_ints(OpCode code);

typedef struct IrOp IrOp;
typedef struct IrRegion IrRegion;
typedef struct IrFunction IrFunction;
typedef struct IrModule IrModule;

typedef struct IrValue {
    uint32_t id;             /* unique in the function; the printer renumbers */
    const IrType *type;
    IrOp *def;               /* defining op, or NULL for a region argument */
    IrRegion *region;        /* for region arguments: the owning region */
    uint32_t index;          /* result index in def, or argument index in region */
    const char *name;        /* source name hint for printing, or NULL */
} IrValue;

enum { IR_MAX_INTS = 8 };

struct IrOp {
    OpCode code;
    SrcLoc loc;
    IrValue **operands;
    uint32_t noperands;
    IrValue **results;
    uint32_t nresults;
    IrRegion **regions;
    uint32_t nregions;
    int64_t ints[IR_MAX_INTS]; /* see ops.def for each op's use */
    uint32_t nints;
    IrConst value;             /* OP_CONST */
    IrFunction *callee;        /* OP_CALL */
    IrOp *prev, *next;
    IrRegion *parent;
};

struct IrRegion {
    IrValue **args;
    uint32_t nargs;
    IrOp *first, *last;
    IrOp *parent_op;         /* NULL for a function body or grid */
    IrFunction *function;
};

/* How a kernel's tensor dimension is given in its signature: `[M, 64]`. */
typedef struct IrDimSpec {
    const char *symbol;      /* "M", or NULL when the size is fixed */
    int64_t size;            /* fixed size when symbol is NULL */
} IrDimSpec;

typedef struct IrParam {
    const char *name;
    SrcLoc loc;
    IrDimSpec dims[IR_MAX_RANK]; /* tensors: one per dimension */
} IrParam;

/* What is known about one kernel parameter at launch (Triton-style specialization): the runtime
 * computes these facts from the arguments, the axis analysis (ir/axis.h) turns them into
 * divisibility, and the code generator uses them for wider or unmasked accesses (it calls them
 * CodegenParamSpec). A generic kernel assumes none. Scalars have no facts. */
typedef struct IrParamFacts {
    bool aligned16;                  /* tensors: the data pointer is a multiple of 16 bytes */
    bool unit_stride[IR_MAX_RANK];   /* tensors: this dimension's stride is 1 */
    bool size_div16[IR_MAX_RANK];    /* tensors: this dimension's size is a multiple of 16 */
    bool strides_div16;              /* tensors: every stride other than 1 is a multiple of 16 */
} IrParamFacts;

struct IrFunction {
    const char *name;
    SrcLoc loc;
    bool is_kernel;
    IrModule *module;
    IrRegion *body;          /* args: the parameters */
    IrRegion *grid;          /* kernels: args like body's; ends in yield of 1..3 i32 scalars */
    IrParam *params;         /* one per body argument */
    int num_warps;           /* kernels: warps per block on the GPU from `warps(N)`; 0: the default */
    int cluster;             /* kernels: blocks per thread-block cluster along x (`cluster N`, set by the
                                cluster pass: 2, 4 or 8); 0: none. A launch whose grid's x is not a
                                multiple runs without clusters (cluster_size is then 1) */
    const char **check_messages; /* kernels: the messages of the grid region's OP_CHECKs */
    uint32_t ncheck_messages;
    uint32_t nparams;
    const IrType **result_types; /* device functions */
    uint32_t nresults;
    uint32_t next_value_id;
    IrFunction *next;
};

typedef struct IrModule {
    Arena arena;
    IrFunction *functions, *last_function;
    VEC(IrType *) types;     /* interned */
} IrModule;

/* ---- module, types, building (ir/ir.c) ------------------------------------------------- */
IrModule *ir_module_new(void);
void ir_module_free(IrModule *m);

const IrType *ir_type_intern(IrModule *m, const IrType *t);
const IrType *ir_tile_type(IrModule *m, ElemType e, int rank, const int64_t *shape);
const IrType *ir_scalar_type(IrModule *m, ElemType e);
const IrType *ir_tensor_type(IrModule *m, ElemType e, int rank);
const IrType *ir_shared_type(IrModule *m, ElemType e, int rank, const int64_t *shape);
const IrType *ir_type_with_elem(IrModule *m, const IrType *t, ElemType e);
const IrType *ir_type_with_layout(IrModule *m, const IrType *t, const struct Layout *layout);

IrFunction *ir_function_new(IrModule *m, const char *name, bool is_kernel, SrcLoc loc);
IrFunction *ir_module_find(IrModule *m, const char *name);
IrRegion *ir_region_new(IrFunction *f);
IrValue *ir_region_add_arg(IrRegion *r, const IrType *type, const char *name);
IrFunction *ir_function_of_region(IrRegion *r);
/* Whether kernel f may write through tensor parameter p (false for a scalar): a store or atomic
 * on it or on a tensor made from it, or a use the analysis does not follow (an opaque op, an op
 * with regions that takes it). Conservative: true where unsure. */
bool ir_param_may_write(const IrFunction *f, uint32_t p);

/* A builder inserts ops at the end of a region (or before a given op). */
typedef struct IrBuilder {
    IrModule *module;
    IrFunction *function;
    IrRegion *region;
    IrOp *before;            /* insert before this op; NULL = at the end */
    SrcLoc loc;              /* location given to new ops */
} IrBuilder;

void ir_builder_at_end(IrBuilder *b, IrRegion *r);
void ir_builder_before(IrBuilder *b, IrOp *op);

/* Creates an op with the given operands and result types and inserts it. */
IrOp *ir_build(IrBuilder *b, OpCode code, IrValue *const *operands, uint32_t noperands,
               const IrType *const *result_types, uint32_t nresults);
IrRegion *ir_op_add_region(IrOp *op);

/* Convenience constructors for single-result ops. */
IrValue *ir_const_int(IrBuilder *b, const IrType *type, int64_t v);
IrValue *ir_const_float(IrBuilder *b, const IrType *type, double v);
IrValue *ir_unary(IrBuilder *b, OpCode code, IrValue *a);   /* result type = a's */
IrValue *ir_binary(IrBuilder *b, OpCode code, IrValue *a, IrValue *c); /* result type = a's */
IrValue *ir_cmp(IrBuilder *b, IrCmp pred, IrValue *a, IrValue *c);
IrValue *ir_op1(IrBuilder *b, OpCode code, const IrType *type, IrValue *a); /* one operand */

/* Editing. */
void ir_op_remove(IrOp *op);                          /* unlink (operands are not freed) */
void ir_op_insert_before(IrOp *op, IrOp *before);
void ir_op_append(IrRegion *r, IrOp *op);
void ir_replace_all_uses(IrFunction *f, IrValue *from, IrValue *to);
void ir_set_operand(IrOp *op, uint32_t i, IrValue *v);
IrOp *ir_region_terminator(IrRegion *r);

/* Replacements recorded now and applied as each user is visited, for passes that replace many
 * values while they walk a function in order (canonicalize, cse, inline): each replacement is
 * O(1) and each visit O(operands), where ir_replace_all_uses walks the whole function per
 * replacement (quadratic). A walk in program order that calls ir_forward_operands on every op
 * before looking at its operands sees only current values, since in structured SSA every use
 * comes after its definition; the last walk leaves none stale. Keyed by value id (per function). */
typedef struct IrForward {
    IrValue **to;            /* by IrValue id; NULL: not replaced */
    uint32_t cap;
} IrForward;
void ir_forward_set(IrForward *fw, const IrValue *from, IrValue *to);
IrValue *ir_forward_resolve(IrForward *fw, IrValue *v); /* follows chains, compressing them */
void ir_forward_operands(IrForward *fw, IrOp *op);      /* resolves each operand in place */
void ir_forward_free(IrForward *fw);

/* Walks every op of a region in order, entering nested regions after their op (pre-order). */
typedef bool (*IrWalkFn)(IrOp *op, void *ctx);   /* return false to stop */
bool ir_walk(IrRegion *r, IrWalkFn fn, void *ctx);

/* ---- warp roles (OP_WARP_ROLES) ----------------------------------------------------------- */
/* Role k of a warp_roles op is its region k, with ints[2k] warps and a register budget of
 * ints[2k+1] per thread (0: unchanged); its warps follow those of roles 0..k-1. */
enum { IR_MAX_ROLES = IR_MAX_INTS / 2 };
static inline int64_t ir_role_warps(const IrOp *roles, uint32_t k) { return roles->ints[2 * k]; }
static inline int64_t ir_role_regs(const IrOp *roles, uint32_t k) { return roles->ints[2 * k + 1]; }
int64_t ir_role_first_warp(const IrOp *roles, uint32_t k);
/* The warp_roles op that region r is inside (at any depth), and the role's index in *role; NULL
 * outside every role. */
const IrOp *ir_role_of_region(const IrRegion *r, uint32_t *role);
/* The arrivals that complete a phase of the mbarriers an mbarrier_init sets up (`count N`; 1). */
static inline int64_t ir_mbarrier_count(const IrOp *init) { return init->nints ? init->ints[0] : 1; }
/* copy_tma's `multicast N` (the cluster's blocks; its bool is the last operand), 0 when absent. */
static inline int64_t ir_copy_tma_multicast(const IrOp *copy) { return copy->nints ? copy->ints[0] : 0; }
/* mbarrier_arrive's `cluster N` (an arrival on the mbarrier of each block of the cluster), 0 when absent. */
static inline int64_t ir_mbarrier_arrive_cluster(const IrOp *arrive) { return arrive->nints ? arrive->ints[0] : 0; }
/* mbarrier_arrive's `threads N`: each of the N threads of the role (or block) arrives on its own,
 * without waiting for the others (N arrivals), 0 when absent (one arrival, once all are there). */
static inline int64_t ir_mbarrier_arrive_threads(const IrOp *arrive) { return arrive->nints > 1 ? arrive->ints[1] : 0; }

/* ---- verifier and printer (ir/verify.c, ir/print.c) ---------------------------------- */
/* Checks the structural and type rules of ops.def; reports into d; true when valid. */
bool ir_verify_module(IrModule *m, DiagList *d);
bool ir_verify_function(IrFunction *f, DiagList *d);
/* Stable, readable text: values renumbered %0, %1, ... in order of definition. */
void ir_print_module(const IrModule *m, Strbuf *out);
void ir_print_function(const IrFunction *f, Strbuf *out);
void ir_print_type(const IrType *t, Strbuf *out);
/* Reads the text ir_print_module writes (ir/parse.c; the file name is for the messages) and
 * verifies it. NULL on failure, with located errors (`file:line:col: error: ...`) in d. */
IrModule *ir_parse_module(const char *name, const char *text, size_t len, DiagList *d);

/* ---- constant folding helpers shared by passes and the VM (ir/eval.c) ------------------ */
/* Reduce an integer to the element type's width (wrap-around), sign- or zero-extended. */
int64_t elem_wrap_int(ElemType e, int64_t v);
/* Round a double to the element type (RNE), saturating/NaN per the float rules above. */
double elem_round_float(ElemType e, double v);
/* Convert a value between element types with the VM's semantics (float->int truncates toward
 * zero and saturates; NaN -> 0; int->float rounds to nearest even). */
IrConst elem_convert(ElemType from, IrConst v, ElemType to);

/* The arithmetic of the elementwise ops (the VM's reference semantics; folding uses the same).
 * Floats: values are exact in e; formats a C float holds compute in float, others in double,
 * and the result is rounded to e. MIN/MAX propagate NaN and order -0 below +0. Integers are
 * wrapped to e; x/0 = x%0 = 0; shifts outside [0, bits) give 0 (or the sign for SHR). */
bool elem_float_in_f32(ElemType e);
double elem_nan_min(double a, double b);
double elem_nan_max(double a, double b);
double elem_float_binary(OpCode code, ElemType e, double a, double b); /* ADD SUB MUL DIV REM MIN MAX */
double elem_float_unary(OpCode code, ElemType e, double a);            /* NEG ABS and the math ops */
bool elem_int_less(ElemType e, int64_t a, int64_t b);
int64_t elem_int_binary(OpCode code, ElemType e, int64_t a, int64_t b); /* arithmetic, bitwise, shifts */
int64_t elem_int_unary(OpCode code, ElemType e, int64_t a);            /* NEG NOT ABS */
bool elem_compare(IrCmp pred, ElemType e, IrConst a, IrConst b);
/* Any elementwise op but SELECT and CAST on constants (y for binary ops); false if it does not apply. */
bool elem_eval(OpCode code, int64_t pred, ElemType e, const IrConst *x, const IrConst *y, IrConst *out);

#endif
