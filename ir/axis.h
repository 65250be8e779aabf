/*
 * axis.h: the axis analysis of integer tiles (ir/axis.c), after Triton's AxisInfo. Per
 * dimension of a value: contiguity (aligned runs of consecutive values), constancy (aligned runs
 * of equal values) and divisibility (the power of two dividing the first value of every
 * contiguous run). Scalars have rank 0 and only scalar_div.
 *
 * It is an analysis over the IR, not a pass (it changes nothing): the code generator reads it
 * (to prove that a thread's accesses are consecutive and aligned) and the GPU passes can read
 * it too without depending on the backend, so it lives in ir/ with the layout algebra. Launch
 * facts (IrParamFacts, ir/ir.h) refine what it knows about the parameters.
 */
#ifndef TILE_IR_AXIS_H
#define TILE_IR_AXIS_H

#include "ir/ir.h"

typedef struct AxisInfo {
    int rank;
    int64_t contiguity[IR_MAX_RANK];
    int64_t constancy[IR_MAX_RANK];
    int64_t divisibility[IR_MAX_RANK];
    int64_t scalar_div;
} AxisInfo;

/* The memo of one analysis of one function; results by value id. */
typedef struct AxisAnalysis {
    const IrFunction *function;
    const IrParamFacts *facts; /* one per parameter of function, or NULL: none known */
    AxisInfo *infos;
    uint8_t *done;
    uint32_t cap;
} AxisAnalysis;

/* Starts an analysis of f; facts (one per parameter, or NULL) must outlive it. */
void axis_init(AxisAnalysis *a, const IrFunction *f, const IrParamFacts *facts);
/* The facts of v, a value of a's function (computed on first use, then memoized). */
void axis_info(AxisAnalysis *a, const IrValue *v, AxisInfo *out);
void axis_free(AxisAnalysis *a);

#endif
