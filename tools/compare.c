/* compare.c: the verdict of `tilec run --compare` (compare.h says why it reads as it does). */
#include "compare.h"

#include <math.h>

double compare_tolerance(tile_dtype d) {
    unsigned kind = d >> 24, man = d & 0xff;
    if (kind != TILE_DTYPE_FLOAT_KIND) return 0;
    if (man >= 52) return 1e-9;
    if (man >= 23) return 2e-5;
    return ldexp(4.0, -(int)man); /* f16: 4e-3, bf16: 3e-2, f8e4m3: 0.5 */
}

double compare_scale(double scale, const double *vm, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (isfinite(vm[i]) && fabs(vm[i]) > scale) scale = fabs(vm[i]);
    return scale;
}

bool compare_within(double a, double b, double tol, double scale) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    if (a == b) return true; /* equal infinities too */
    if (isinf(a) || isinf(b)) return false;
    return fabs(a - b) <= tol * (fabs(a) + scale);
}
