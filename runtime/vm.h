/*
 * vm.h: the CPU virtual machine of tile (an interpreter of the IR with reference semantics)
 * and the launch-argument checks that every device shares.
 *
 * The VM runs a kernel's whole grid on the CPU, one thread block at a time per worker thread.
 * Inside a block, every SSA value is a reference-counted array of elements in a simple
 * representation (VmElem: int64 for bool and integers, wrapped to their width after every op;
 * double for floats, holding exactly the value rounded to the element type). Tensors are host
 * buffers described by pointer, shape and strides in elements; sub-byte element types are
 * packed least significant bit first (see include/tile/tile.h). The semantics of each op are
 * those of ir/ops.def, made precise in runtime/vm_exec.c; constant folding (ir/eval.c) and the
 * VM share the element rules (elem_wrap_int, elem_round_float, elem_convert).
 *
 *   args.c       rt_check_args, tile_dtype <-> ElemType
 *   vm_memory.c  float formats <-> bits, reading and writing (packed) tensor elements
 *   vm_ops.c     the data ops (elementwise, shapes, reductions, dot, loads, stores, atomics)
 *   vm_exec.c    frames, control flow, calls, the grid, the block scheduler (pthreads)
 *   vm_roles.c   warp roles: a worker per role, blocking mbarrier waits, deadlocks
 */
#ifndef TILE_RUNTIME_VM_H
#define TILE_RUNTIME_VM_H

#include <pthread.h>
#include <stdatomic.h>

#include "ir/ir.h"
#include "tile/tile.h"

/* ---- launch arguments (runtime/args.c) ------------------------------------------------- */
/* Decodes a public dtype; false when the encoding names no element type. */
bool rt_dtype_to_elem(tile_dtype dtype, ElemType *out);
tile_dtype rt_elem_to_dtype(ElemType e);

/* Checks args against the kernel's parameters: count; kind (tensor/int/float) against the
 * parameter type; tensor dtype equals the parameter's element type; rank; non-null data
 * (unless the tensor has 0 elements); shape >= 0 and strides >= 0; each fixed dimension equals
 * its size; each symbolic dimension binds to the first size seen and every later use agrees;
 * sizes fit in i32; the furthest element is addressable in 64-bit bit offsets; scalar integer
 * arguments fit their type. Every message names the parameter. Returns false and appends the
 * message to err. */
bool rt_check_args(const IrFunction *kernel, const tile_arg *args, size_t nargs, Strbuf *err);

/* ---- element memory (runtime/vm_memory.c) --------------------------------------------- */
/* One element of a tile: .i for bool (0/1) and integers (sign- or zero-extended to 64 bits,
 * u64 keeps its bits), .f for floats (exactly representable in the element type). */
typedef union VmElem {
    int64_t i;
    double f;
} VmElem;

/* Bit patterns of any float format f<bits>e<exp>m<man> (the low `bits` bits). The decoder is
 * exact; the encoder rounds to nearest even (elem_round_float) and then packs. NaN encodes as
 * the format's quiet NaN (f8e4m3: S.1111.111); formats without NaN encode NaN as +0. */
uint64_t vm_float_encode(ElemType e, double v);
double vm_float_decode(ElemType e, uint64_t bits);

/* Reads / writes the element at linear offset `offset` (in elements) of a buffer of element
 * type e: bool is a byte (nonzero = true), others occupy bits [offset*bits, (offset+1)*bits)
 * least significant bit first. The offset must be >= 0 and inside the buffer. Writes of
 * sub-byte types are read-modify-write of whole bytes: callers serialize them. */
VmElem vm_read_element(const void *data, ElemType e, int64_t offset);
void vm_write_element(void *data, ElemType e, int64_t offset, VmElem v);

/* ---- the interpreter (runtime/vm_exec.c) -------------------------------------------------- */
/* Evaluates the kernel's grid region with the args into grid[0..3): 1..3 values, missing ones
 * are 1; a negative value is an error (0 is fine: nothing runs). */
bool vm_eval_grid(const IrFunction *kernel, const tile_arg *args, size_t nargs, int64_t grid[3],
                  Strbuf *err);
/* Runs the kernel over its whole grid with as many worker threads as there are CPUs. The args
 * are checked again (cheaply) because the VM's memory safety depends on them. Returns false
 * with a message on a run-time error of the program (e.g. a tile too large for memory, calls
 * nested too deeply). */
bool vm_launch(const IrFunction *kernel, const tile_arg *args, size_t nargs, Strbuf *err);
/* Same with a given number of worker threads (0: one per CPU). Results never depend on the
 * thread count, except the order of float atomic adds from different blocks and races that the
 * program itself has (two blocks storing to one address). */
bool vm_launch_threads(const IrFunction *kernel, const tile_arg *args, size_t nargs,
                       int nthreads, Strbuf *err);
/* A launch's cancellation: the workers stop between blocks once *generation differs from
 * started (tile_context_cancel bumps it). */
typedef struct VmCancel {
    const atomic_uint_fast64_t *generation;
    uint64_t started;
} VmCancel;
/* VM_INTERNAL: the run met an op the VM has no executor for, a compiler bug (the message says
 * "internal error in pass vm: ..."; the API returns TILE_ERROR_INTERNAL). */
typedef enum VmOutcome { VM_OK, VM_FAILED, VM_CANCELLED, VM_INTERNAL } VmOutcome;
/* vm_launch_threads that can be cancelled (cancel may be NULL); err says why it did not finish. */
VmOutcome vm_launch_cancellable(const IrFunction *kernel, const tile_arg *args, size_t nargs, int nthreads,
                                const VmCancel *cancel, Strbuf *err);
/* The VM's answer to num_sms(): TILE_VM_NUM_SMS when it is an integer in 1..VM_MAX_NUM_SMS, else
 * VM_DEFAULT_NUM_SMS. Small by default so that a persistent kernel (grid(min(num_sms(), tiles)))
 * stays cheap on the VM; a correct kernel's results do not depend on it. */
enum { VM_DEFAULT_NUM_SMS = 4, VM_MAX_NUM_SMS = 4096 };
int vm_num_sms(void);
/* vm_eval_grid with num_sms() = num_sms (a GPU launch passes its device's count). */
bool vm_eval_grid_sms(const IrFunction *kernel, const tile_arg *args, size_t nargs, int num_sms, int64_t grid[3],
                      Strbuf *err);

/* ---- interpreter internals, shared by vm_ops.c and vm_exec.c --------------------------- */
/* Tiles larger than this are a run-time error rather than an allocation of gigabytes. */
#define VM_MAX_TILE_ELEMENTS (INT64_C(1) << 27)

/* The value of a tile or shared tile: a reference-counted element array owned by one worker
 * thread. Register tiles are immutable once computed (an op may only reuse its own result
 * slot's array when nothing else refers to it); a shared tile is mutated by shared_store, and
 * every value that aliases it sees the change, as shared memory does. */
typedef struct VmAccess VmAccess;
typedef struct VmTile {
    int64_t refs;
    int64_t numel;
    VmAccess *accesses;         /* a shared_alloc's tile: one record per element (races); else NULL */
    VmElem data[];
} VmTile;

/* The last accesses of one element of a shared tile, by which the VM catches a missing
 * barrier() (runtime/vm_ops.c, "shared-memory races"): epochs count the block's barriers (+1,
 * so that 0 is "never"), access ids number the block's executed indexed shared accesses. */
struct VmAccess {
    const IrOp *writer, *reader;    /* the last store or atomic, the last plain load */
    uint32_t write_epoch, write_access;
    uint32_t read_epoch, read_access;
    bool atomic;                    /* the last write was an atomic */
};

/* A tensor argument, decoded once per launch. */
typedef struct VmTensor {
    ElemType elem;
    void *data;
    int rank;
    int64_t shape[IR_MAX_RANK];
    int64_t strides[IR_MAX_RANK];
} VmTensor;

/* What one SSA value holds while a frame runs: a tile (TY_TILE, TY_SHARED) or a tensor. */
typedef struct VmSlot {
    VmTile *tile;
    const VmTensor *tensor;
    int64_t offset;             /* a shared view (shared_view): its first element in tile */
    bool transposed;            /* a transposed 2-d shared view: read only by dot, as [d1, d0] */
} VmSlot;

/* An asynchronous copy that has not been waited for: the elements [offset, offset + numel) of
 * a shared buffer. Reading them before async_wait completes the copy is a run-time error. */
typedef struct VmPending {
    const VmTile *buffer;
    int64_t offset, numel;
    const VmTile *mbarriers;    /* copy_tma: its ring of mbarriers (NULL: a copy_async group) */
    int64_t stage, phase;       /* copy_tma: mbarriers[stage] and the phase it lands in */
    bool store;                 /* a store_tma group, which reads buffer until a store_wait */
} VmPending;

/* One activation of a function (the kernel, or a callee of OP_CALL): a slot per value id. */
typedef struct VmFrame {
    const IrFunction *function;
    VmSlot *slots;
    uint32_t nslots;
} VmFrame;

/* A block's record of its cluster protocol (vm_cluster.c): its multicast copies, cluster barriers
 * and arrivals across the cluster. */
typedef struct VmClusterTrace {
    uint64_t digest;            /* of the multicast copies' tensors, origins, boxes and stages, in order */
    int64_t copies, barriers, arrives;
} VmClusterTrace;
typedef struct VmClusters VmClusters;
/* Per ring of mbarriers and stage, the block's protocol events, numbered in order (0: none yet):
 * its latest wait on the stage, its latest arrival across the cluster on it, and the arrival
 * that the latest wait on the stage saw completed (a multicast refill of a stage needs, after the
 * block's latest wait on it, a cluster barrier or a wait on another ring's stage that saw an
 * arrival across the cluster: the peer's release). */
enum { VM_CLUSTER_STAGES = 32, VM_CLUSTER_RINGS = 4 };
typedef struct VmClusterRing {
    const VmTile *ring;
    int64_t waited[VM_CLUSTER_STAGES], arrived[VM_CLUSTER_STAGES], released[VM_CLUSTER_STAGES];
} VmClusterRing;
typedef struct VmClusterWaits {
    VmClusterRing rings[VM_CLUSTER_RINGS];
    int64_t seq;                /* the latest event's number */
    int64_t barrier;            /* the latest cluster barrier's */
} VmClusterWaits;

/* What every worker of a launch shares. */
typedef struct VmLaunch {
    const IrFunction *kernel;
    const tile_arg *args;
    VmTensor *tensors;          /* one per parameter (unused entries for scalars) */
    int64_t grid[3];
    const VmCancel *cancel;     /* NULL: not cancellable; checked between blocks and per loop iteration */
    pthread_mutex_t memory_lock; /* atomics and read-modify-write of packed sub-byte stores */
    int64_t num_sms;            /* what num_sms() gives: the GPU's multiprocessors, or vm_num_sms() */
    int64_t cluster;            /* blocks per cluster of this launch (1: none; vm_cluster_launch_begin) */
    VmClusters *clusters;       /* the blocks' records when cluster > 1 */
} VmLaunch;

/* One worker thread's state while it runs blocks. */
typedef struct VmThread {
    const VmLaunch *launch;
    int64_t block[3];
    int depth;                  /* nested regions and calls, bounded */
    int calls;                  /* nested calls, bounded */
    bool failed;
    bool internal;              /* the error is the VM's own (vm_internal_error) */
    Strbuf err;                 /* the first run-time error of this thread */
    VEC(VmPending) pending;     /* this block's copy_async groups in issue order */
    uint32_t epoch;             /* barriers passed (shared-memory race checks) */
    uint32_t access;            /* indexed shared accesses executed (each one's id) */
    struct VmRoleRun *roles;    /* inside warp_roles: the roles' schedule (vm_roles.c); NULL outside */
    int role;                   /* with roles: the role that runs */
    VmClusterTrace cluster_trace; /* this block's (reset per block) */
    VmClusterWaits cluster_waits; /* this block's (reset per block) */
} VmThread;

/* ---- thread-block clusters (runtime/vm_cluster.c) ------------------------------------------- */
/* After the grid is known: the launch's cluster size and the blocks' records; _end frees them. */
void vm_cluster_launch_begin(VmLaunch *L);
void vm_cluster_launch_end(VmLaunch *L);
/* A copy_tma with `multicast N` (its flag the last operand): an error without clusters; else the
 * copy joins the block's record when the flag holds. */
bool vm_cluster_copy(VmThread *th, VmFrame *fr, const IrOp *op, const VmTensor *t, const int64_t *origin,
                     int64_t offset, int64_t numel, const VmTile *ring, int64_t stage);
/* An mbarrier_wait on the stage of ring returned (a multicast refill of it then needs a cluster barrier). */
void vm_cluster_waited(VmThread *th, const VmTile *ring, int64_t stage);
/* mbarrier_arrive with `cluster N`: checks the launch has clusters of N; records the arrival. */
bool vm_cluster_arrive(VmThread *th, const IrOp *op, const VmTile *ring, int64_t stage);
/* Resets th's per-block cluster records. */
void vm_cluster_block_begin(VmThread *th);
bool vm_exec_cluster_size(VmThread *th, VmFrame *fr, const IrOp *op);
bool vm_exec_cluster_barrier(VmThread *th, VmFrame *fr, const IrOp *op);
/* A block ended: when it is the last of its cluster, false (with th->err) if the records differ. */
bool vm_cluster_block_done(VmThread *th);

/* ---- warp roles (runtime/vm_roles.c) ------------------------------------------------------------
 * warp_roles runs each role as its own worker, one at a time, switching only when a role blocks on
 * an mbarrier_wait or finishes; when every unfinished role blocks, the launch fails with a deadlock
 * error naming what each waits on. */
typedef struct VmRoleRun VmRoleRun;
bool vm_exec_warp_roles(VmThread *th, VmFrame *fr, const IrOp *op);
/* Called by an mbarrier_wait in a role whose phase has not completed: the other roles run until
 * this one's turn comes again (true; the wait checks again) or the run ends (false). */
bool vm_role_block(VmThread *th, const IrOp *op, int64_t stage, int64_t parity);
/* An mbarrier_wait in a role got past its phase: the role made progress. */
void vm_role_passed(VmThread *th);

/* Binds a region's arguments and runs its ops up to its terminator (in *term; NULL: none). */
bool vm_exec_region(VmThread *th, VmFrame *fr, const IrOp *owner, const IrRegion *r, const VmSlot *args,
                    uint32_t nargs, const IrOp **term);
/* Records a run-time error at op (the first one wins); always returns false. */
bool vm_error(VmThread *th, const IrOp *op, const char *fmt, ...) TILE_PRINTF(3, 4);
/* Same for a compiler bug, not the program's: "internal error in pass vm: <message>". */
bool vm_internal_error(VmThread *th, const IrOp *op, const char *fmt, ...) TILE_PRINTF(3, 4);

/* How the VM runs one op. Each op of ir/ops.def has one: the data ops in vm_data_executors
 * (vm_ops.c), control flow in vm_exec.c; terminators are run by the op that owns their region. */
typedef bool (*VmExecFn)(VmThread *th, VmFrame *fr, const IrOp *op);
extern const VmExecFn vm_data_executors[OP_COUNT];
/* The executor of an op (NULL for none, and for terminators). */
VmExecFn vm_executor(OpCode code);
void vm_tile_retain(VmTile *t);
void vm_tile_release(VmTile *t);
/* Makes dst hold src (retaining it), releasing what dst held. */
void vm_slot_set(VmSlot *dst, VmSlot src);
void vm_slot_clear(VmSlot *slot);
/* A fresh tile of numel elements (uninitialized), or NULL with an error. */
VmTile *vm_tile_new(VmThread *th, const IrOp *op, int64_t numel);
/* The element count of a tile or shared type, bounded by VM_MAX_TILE_ELEMENTS. */
bool vm_type_numel(VmThread *th, const IrOp *op, const IrType *t, int64_t *out);
/* The tile held by operand i, checked to be defined and to match its type's size. */
const VmTile *vm_operand_tile(VmThread *th, VmFrame *fr, const IrOp *op, uint32_t i);
/* The slot of a value, or NULL with an error if the id is outside the frame. */
VmSlot *vm_value_slot(VmThread *th, VmFrame *fr, const IrOp *op, const IrValue *v);
/* The array to write result i into, sized by the result's type. */
VmTile *vm_result_tile(VmThread *th, VmFrame *fr, const IrOp *op, uint32_t i);
/* A new scalar tile holding v. */
VmTile *vm_scalar_tile(VmThread *th, const IrOp *op, VmElem v);

/* ---- TMA stores (runtime/vm_tma_store.c) ---- */
bool vm_exec_store_tma(VmThread *th, VmFrame *fr, const IrOp *op);
bool vm_exec_store_wait(VmThread *th, VmFrame *fr, const IrOp *op);
/* False (with the error at op) when [offset, offset + numel) of buffer is the source of a pending
 * store_tma: a write there would race with the TMA unit's read. */
bool vm_store_tma_allows_write(VmThread *th, const IrOp *op, const VmTile *buffer, int64_t offset, int64_t numel);
/* False (with the error at last) when a store_tma group of the block is still pending. */
bool vm_store_tma_block_end(VmThread *th, const IrOp *last);

/* Executes one op that has no regions (everything but for/if/while/call and terminators). */
bool vm_exec_data_op(VmThread *th, VmFrame *fr, const IrOp *op);

#endif
