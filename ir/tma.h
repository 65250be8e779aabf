/*
 * tma.h: the tensor maps a kernel's TMA copies need (sm_90a), read from its IR.
 *
 * Each copy_tma reads through a CUtensorMap that the runtime encodes at launch. A map is fixed by
 * the tensor parameter, the box (the destination's shape, after a box of 1 on each leading
 * dimension of a tensor of higher rank: a [BN, D] tile of a [B, H, S, D] tensor is the box
 * [1, 1, BN, D]) and the swizzle mode (the destination's shared layout); copies that agree share
 * one. The code generator passes the maps
 * as extra kernel parameters in the order listed here, and the runtime encodes them in that
 * order: one function for both, so they cannot disagree. A store_tma (the epilogue pass's TMA
 * store) reads through a map of the same kind, its source's shape the box: it is listed with the
 * copies, in the same walk.
 */
#ifndef TILE_IR_TMA_H
#define TILE_IR_TMA_H

#include "ir/ir.h"

/* IR_TMA_MAX_RANK: cuTensorMapEncodeTiled takes tensors of rank 1 to 5; copy_tma needs 2 to 5 */
enum { IR_MAX_TMA_MAPS = 8, IR_TMA_MAX_RANK = 5 };

typedef struct IrTmaMap {
    int param;                    /* the kernel parameter (a tensor of rank 2 to 5) */
    int rank;                     /* the tensor's */
    int64_t box[IR_TMA_MAX_RANK]; /* per dimension, outermost first: 1, ..., 1, rows, columns */
    int elem_bytes;
    int swizzle;                  /* the swizzle mode in bytes: 0, 32, 64 or 128 */
} IrTmaMap;

/* The maps of f's copy_tma ops, in order of first use, into maps[IR_MAX_TMA_MAPS]: their count,
 * or -1 when a copy_tma reads a tensor that is not a parameter of rank 2 to 5 into a 2-d
 * destination, or there are too many. */
int ir_tma_maps(const IrFunction *f, IrTmaMap *maps);
/* The index of copy_tma op's map among maps[0, n), or -1. */
int ir_tma_map_of(const IrFunction *f, const IrOp *op, const IrTmaMap *maps, int n);

#endif
