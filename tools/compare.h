/*
 * compare.h: the verdict of `tilec run --compare`, which runs a kernel on the VM and on the GPU
 * with the same inputs and judges each tensor element by element. Integers and bool must match
 * exactly. Floats get a few units in the last place of their format (compare_tolerance), looser
 * than one rounding because the devices may sum and fuse in different orders, relative to the
 * element and to the tensor's scale: |cuda - vm| <= tol * (|vm| + scale), scale the largest
 * finite |vm| of the tensor and at least 1. An element that is a sum of large terms that nearly
 * cancel (a dot's result near 0, with K terms of the tensor's size) carries the rounding of those
 * terms, not of itself, so a bound relative to the element alone would fail it wrongly; the
 * tensor's scale stands for the terms' size. NaN matches NaN only. Pure C, no libtile state.
 */
#ifndef TILE_TOOLS_COMPARE_H
#define TILE_TOOLS_COMPARE_H

#include <stdbool.h>
#include <stdint.h>

#include "tile/tile.h"

/* The relative tolerance of an element type: 0 for integers and bool, 1e-9 for f64, 2e-5 for
 * f32, 4 units in the last place for narrower floats (f16 4e-3, bf16 3e-2, f8e4m3 0.5). */
double compare_tolerance(tile_dtype d);

/* The scale of a tensor for compare_within: max(1, largest finite |x|), folded over chunks
 * (start from 1). */
double compare_scale(double scale, const double *vm, int64_t n);

/* Whether the GPU's value b is within tol of the VM's value a, for a tensor of that scale. */
bool compare_within(double a, double b, double tol, double scale);

#endif
