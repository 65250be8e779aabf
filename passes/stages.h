/*
 * stages.h: what the stages pass (passes/stages.c) shares with its ping-pong schedule
 * (passes/pingpong.c): the analysis of a pipelined loop (Loop: its staged loads, the slice of
 * their index computations, its TMA ring) and the pieces both build rings and warp roles from.
 * Private to the two files; the pass's entry point is in passes.h.
 */
#ifndef TILE_PASSES_STAGES_H
#define TILE_PASSES_STAGES_H

#include "passes.h"

enum { MAX_STAGED = 8, MAX_SLICE = 256 };

typedef struct Staged {
    IrOp *load;    /* the load being replaced */
    IrOp *transpose; /* NULL, or the 2-d transpose between the load and the dot (a k-major view) */
    IrOp *dot;     /* its one user (through the transpose) */
    uint32_t operand; /* 0 (a) or 1 (b) */
    IrValue *buffer;
    bool tma;      /* copied by copy_tma (origin: the scalar starts of its slice) */
    IrValue *origin[IR_MAX_RANK];
} Staged;

typedef struct Loop {
    IrOp *op;
    IrRegion *body;
    int stages;
    Staged staged[MAX_STAGED];
    int nstaged;
    IrOp *slice[MAX_SLICE];  /* the index computations of every staged load, in body order */
    int nslice;
    int ntma;                /* staged loads copied by TMA */
    IrValue *mbarriers;      /* their ring of mbarriers (one per stage), when ntma > 0 */
    uint32_t async_use;      /* the yield operand that an asynchronous dot's result is (async_dot) */
} Loop;

enum { PRODUCER_REGS = 40, CONSUMER_REGS = 232 }; /* the warp roles' register budgets */

static inline IrValue *const_i32(IrBuilder *b, int64_t v) {
    return ir_const_int(b, ir_scalar_type(b->module, elem_i32()), v);
}

/* `if cond { } else { yield }` at b; a builder at the end of the then-region, whose yield the
 * caller adds after what it builds there. */
IrBuilder stages_if_then(IrBuilder *b, IrValue *cond);
/* copy_tma of staged load s (its origins through map) into stage `stage` of its ring, on
 * mbarriers[stage], at b. */
void stages_copy_tma(const Loop *L, int s, IrBuilder *b, ValueMap *map, IrValue *mbarriers, IrValue *stage);
/* The loop's dot that can run asynchronously (one wgmma dot into a carried accumulator), or NULL. */
IrOp *stages_async_dot(Loop *L);
/* `dot ..., async 1; dot_wait 1` at b (after the dot); after the loop, dot_wait 0 at b. */
void stages_make_async(Loop *L, IrOp *async, IrBuilder *b);
void stages_complete_after_loop(Loop *L, IrBuilder *b);
/* (i / S) & 1: the parity of the phase that ring iteration i completes on its stage's mbarrier. */
IrValue *stages_ring_parity(IrBuilder *b, const Loop *L, IrValue *i);
/* A ring of n mbarriers (shared<i64>[n]), not yet initialized, at b. */
IrValue *stages_mbarrier_ring(IrBuilder *b, int64_t n);
/* Makes arrive (on an "empty" ring) a release by each of the consumer's 32 * warps threads on
 * its own (`threads N`); the ring's mbarrier_init must count them all. */
void stages_release_by_threads(IrOp *arrive, int consumer_warps);
/* The ring of each staged load (S stages), at b. */
void stages_alloc_rings(Loop *L, IrBuilder *b);
/* Each staged dot reads stage `read` of its ring in place; the loads go. */
void stages_read_in_place(Loop *L, IrBuilder *b, IrValue *read);

/* Warp roles. Whether the loop wants roles (its `specialize` option, else the target's default). */
bool stages_roles_wanted(const IrOp *loop, const Target *t);
/* Whether what stays in f's body before `first` (outside the roles) suits a block of more warps. */
bool stages_before_fits(const IrFunction *f, const IrOp *first);

typedef struct RoleCheck {
    const IrOp *loop;       /* the first op of the body that moves into the roles */
    const IrOp *ring;       /* a pipelined loop nested in what moves (ping-pong), or NULL */
    const IrOp *roles;      /* the warp_roles op, once it holds what moved */
    const IrRegion *body;   /* the kernel's body */
    bool ok;
} RoleCheck;

/* Whether c->loop and everything after it can move into roles: no shared buffers, mbarrier
 * set-up or other pipelined loop there, and every tile it uses from before recomputable. */
bool stages_roles_fit(RoleCheck *c);
/* Recomputes at role's start each tile made before the roles that role uses (c->roles set). */
void stages_recompute_in_role(IrRegion *role, const RoleCheck *c);

/* The ping-pong schedule (passes/pingpong.c): builds it for L where L asks for it
 * (`specialize 2`) and qualifies; false (nothing changed) otherwise. */
bool stages_pingpong(Loop *L, const Target *t, int nloops);

#endif
