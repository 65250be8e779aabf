/* testutil.h: helpers shared by the Criterion suites. */
#ifndef TILE_TESTUTIL_H
#define TILE_TESTUTIL_H
#include "support/support.h"
#include "tile/tile.h"
/* Reads TILE_SOURCE_DIR/relpath into a malloc'd NUL-terminated string (aborts the test if missing). */
char *test_read_source_file(const char *relpath, size_t *len);
/* A context on the VM (the test fails if it cannot be made). */
tile_context *test_vm_context(void);
/* The program of TILE_SOURCE_DIR/relpath on ctx (the test fails, with the message, if it does not compile). */
tile_program *test_load_program(tile_context *ctx, const char *relpath);
/* The bf16 bits of f, rounded to nearest even (f not NaN). */
uint16_t test_bf16_bits(float f);
/* x[0..n) = random bf16 values in [-0.5, 0.5), from the LCG state *s (the same state, the same values). */
void test_random_bf16(uint16_t *x, int64_t n, uint64_t *s);
struct IrFunction;
/* Runs a gemm kernel (a: bf16[m, kk], b: bf16[kk, n], c: bf16[m, n]) on the VM with 2 threads, a and b
 * from test_random_bf16 with the state `seed`, into c; false with the error in err. */
bool test_vm_gemm_bf16(const struct IrFunction *k, int64_t m, int64_t n, int64_t kk, uint64_t seed, uint16_t *c,
                       Strbuf *err);
#ifdef TILE_HAVE_LLVM
#include "backend/backend.h"
/* The sm_90a PTX of kernel k with every launch fact (16-byte aligned tensors, unit innermost
 * strides, sizes and strides multiples of 16: a launch on contiguous aligned tensors); info gets
 * the code generator's record. The test fails where the code generator does. */
Strbuf test_ptx_every_fact(const struct IrFunction *k, CodegenInfo *info);
/* What `ptxas -arch=sm_90a -v` says of the PTX text (malloc'd; the test fails where ptxas fails), or
 * NULL where the ptxas program is not found. */
char *test_ptxas_report(const char *ptx, size_t len);
/* Whether such a report says that nothing spills. */
bool test_ptxas_no_spills(const char *report);
#endif
#endif
