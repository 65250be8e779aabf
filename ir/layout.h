/*
 * layout.h: the layout algebra of tile (after Tilus): register layouts, which say which thread of
 * a thread block holds which element of a tile, and shared-memory layouts, which say where an
 * element of a shared tile lives.
 *
 * A register Layout maps (thread t in [0, T), local index l in [0, L)) to a coordinate of a tile
 * of rank r and shape s. It is stored as two ordered lists of *modes*, outermost first: the thread
 * modes read t as a mixed-radix number, the local modes read l likewise. Each mode has a size (its
 * digit ranges over [0, size)), a dimension and a stride: its digit times the stride is added to
 * that coordinate. A thread mode may instead be a *replica* (dim LAYOUT_REPLICA, stride 0): the
 * threads that differ only in that digit hold the same elements.
 *
 *     coord[d] = sum over modes m with m.dim == d of digit_m * m.stride
 *
 * Every layout is kept in a canonical form (no mode of size 1; neighbouring modes of one list that
 * continue each other are merged), which is unique for a given map and shape; so equality and
 * hashing compare the lists field by field. The primitives local / column_local / spatial /
 * column_spatial / replicate and the product A * B (A outside, B inside) are short loops over the
 * lists, and so are divide (undo a product), reduce, squeeze and expand_dims. The printer writes a
 * layout back as a product of primitives (e.g. `column_local(2,2) * spatial(8,4) * local(1,2)`),
 * and layout_parse reads that form.
 *
 * A SharedLayout is strides over a shape (in elements) plus an optional XOR swizzle in CuTe's
 * Swizzle<B, M, S> form: offset ^= ((offset >> (M + S)) & (2^B - 1)) << M.
 *
 * Layouts are immutable and allocated in the caller's Arena (usually the IR module's); operations
 * never modify their inputs. docs/LAYOUTS.md explains the algebra with the mma examples.
 */
#ifndef TILE_IR_LAYOUT_H
#define TILE_IR_LAYOUT_H

#include "ir/ir.h"

enum {
    LAYOUT_REPLICA = -1, /* LayoutMode.dim of a replica thread mode */
};

typedef struct LayoutMode {
    int64_t size;   /* > 1 in canonical form */
    int64_t stride; /* step of coord[dim] per unit of this digit; 0 for a replica */
    int dim;        /* tile dimension, or LAYOUT_REPLICA */
} LayoutMode;

typedef struct Layout Layout;
struct Layout {
    int rank;
    int num_thread_modes;  /* modes[0 .. num_thread_modes) */
    int num_local_modes;   /* modes[num_thread_modes .. + num_local_modes) */
    int64_t shape[IR_MAX_RANK];
    int64_t num_threads;   /* T: product of the thread mode sizes */
    int64_t local_size;    /* L: product of the local mode sizes */
    int64_t replication;   /* product of the replica sizes: how many threads hold each element */
    uint64_t hash;
    LayoutMode modes[];    /* each list outermost first */
};

static inline const LayoutMode *layout_thread_modes(const Layout *l) { return l->modes; }
static inline const LayoutMode *layout_local_modes(const Layout *l) {
    return l->modes + l->num_thread_modes;
}

/* ---- primitives ---- */
/* One thread holds the whole d0 x ... tile; local index -> coordinate in row-major order. */
const Layout *layout_local(Arena *a, int rank, const int64_t *dims);
/* Same, the local index enumerates the coordinate in column-major order. */
const Layout *layout_column_local(Arena *a, int rank, const int64_t *dims);
/* prod(dims) threads, one element each; thread -> coordinate in row-major order. */
const Layout *layout_spatial(Arena *a, int rank, const int64_t *dims);
const Layout *layout_column_spatial(Arena *a, int rank, const int64_t *dims);
/* n threads holding the same single element of a rank-`rank` tile of shape 1 x ... x 1. */
const Layout *layout_replicate(Arena *a, int rank, int64_t n);
/* A general layout from mode lists (outermost first); returns it canonicalized. Modes need not
 * be exact (see layout_is_exact); each must have size >= 1, dim in [0, rank) or LAYOUT_REPLICA
 * (thread modes only), and a non-negative stride. */
const Layout *layout_from_modes(Arena *a, int rank, const int64_t *shape, int num_thread_modes,
                                const LayoutMode *thread_modes, int num_local_modes,
                                const LayoutMode *local_modes);

/* ---- standard layouts ---- */
/* Triton's blocked layout of a tile of `shape` whose elements take elem_bytes in memory, for
 * blocks of 32 * num_warps threads: up to 16 bytes of consecutive elements per thread along the
 * last dimension, lanes along the last dimensions first, warps along the first ones, local
 * repeats outside; threads left over replicate. Works for any shape (non-powers of two are
 * repeated locally). Layout inference anchors on it; the code generator uses it for staging. */
const Layout *layout_blocked(Arena *arena, int rank, const int64_t *shape, int elem_bytes, int num_warps);

/* ---- algebra ---- */
/* A * B (same rank): shape A.shape * B.shape, thread t_A * T_B + t_B, local l_A * L_B + l_B,
 * coordinate coordA * B.shape + coordB. Associative; local(1,...,1) is the identity. */
const Layout *layout_product(Arena *arena, const Layout *a, const Layout *b);
/* Finds C with C * B == A; returns false (leaving *out NULL) if B is not a right factor of A. */
bool layout_divide(Arena *arena, const Layout *a, const Layout *b, const Layout **out);
/* The layout of the tile reduced along `axis`, which keeps the axis with size 1: thread modes
 * along the axis become replicas (those threads now hold the same result), local modes along it
 * disappear (a thread reduces its own elements first). layout_squeeze removes the axis. */
const Layout *layout_reduce(Arena *arena, const Layout *l, int axis);
/* Removes a dimension of size 1 (rank - 1). */
const Layout *layout_squeeze(Arena *arena, const Layout *l, int axis);
/* Inserts a dimension of size 1 before `axis` (axis in [0, rank]); rank + 1. */
const Layout *layout_expand_dims(Arena *arena, const Layout *l, int axis);

/* ---- queries ---- */
static inline int layout_rank(const Layout *l) { return l->rank; }
static inline const int64_t *layout_shape(const Layout *l) { return l->shape; }
static inline int64_t layout_num_threads(const Layout *l) { return l->num_threads; }
static inline int64_t layout_local_size(const Layout *l) { return l->local_size; }
static inline int64_t layout_replication(const Layout *l) { return l->replication; }
int64_t layout_numel(const Layout *l); /* product of the shape */
/* The coordinate (rank entries) that `thread` holds at local index `local`. */
void layout_map(const Layout *l, int64_t thread, int64_t local, int64_t *coord);
/* How a thread's part of a coordinate is computed: coord[dim] += ((t / radix) % size) * stride
 * for each term (a replica term, dim LAYOUT_REPLICA, adds nothing); one term per thread mode,
 * outermost first. The code generator emits exactly these terms. Returns the number of terms
 * (l->num_thread_modes, at most 64). */
typedef struct LayoutThreadTerm {
    int64_t radix, size, stride;
    int dim;
} LayoutThreadTerm;
int layout_thread_terms(const Layout *l, LayoutThreadTerm *terms);
/* Every element of the shape is held exactly `replication` times (the per-dimension modes form
 * a mixed-radix numbering of that dimension). True for every layout built from primitives. */
bool layout_is_exact(const Layout *l);
/* Inverse of layout_map for exact layouts: the (thread, local) holding `coord`, choosing replica
 * digit 0. False if the coordinate is outside the shape or the layout is not exact. */
bool layout_find(const Layout *l, const int64_t *coord, int64_t *thread, int64_t *local);
bool layout_equal(const Layout *a, const Layout *b); /* same map and shape; NULL == NULL */
uint64_t layout_hash(const Layout *l);

/* Product-of-primitives form when the layout is one (always for layouts built with this API),
 * else `layout([shape], threads=[size:dim/stride ...], locals=[...])` with `r` for replicas. */
void layout_print(const Layout *l, Strbuf *sb);
/* Reads the product-of-primitives form (`*`-separated local/column_local/spatial/column_spatial/
 * replicate factors; a factor list of replicates alone needs a leading local(1,...) to give the
 * rank) or the general `layout(...)` form. On success sets *out and *end (just after the text
 * read) and returns true; sizes above 2^24 are refused. */
bool layout_parse(Arena *arena, const char *text, const Layout **out, const char **end);

/* Interning: equal layouts give the same pointer (the first one seen). Layouts must outlive the
 * table; the table's own memory is on the heap (layout_table_free). */
typedef struct LayoutTable {
    const Layout **slots;
    size_t len, cap;
} LayoutTable;
const Layout *layout_intern(LayoutTable *t, const Layout *l);
void layout_table_free(LayoutTable *t);

/* ---- shared-memory layouts ---------------------------------------------------------------- */
/* CuTe's Swizzle<bits, base, shift> on an element offset: bits [base, base + bits) are XORed
 * with bits [base + shift, base + shift + bits). bits == 0: no swizzle. Requires shift >= bits. */
typedef struct Swizzle {
    int bits, base, shift;
} Swizzle;

typedef struct SharedLayout SharedLayout;
struct SharedLayout {
    int rank;
    int64_t shape[IR_MAX_RANK];
    int64_t strides[IR_MAX_RANK]; /* in elements */
    /* A dimension may be split in blocks (0: not): coordinate c of dimension d is at
     * (c % split[d]) * strides[d] + (c / split[d]) * split_strides[d]. The wgmma operand layouts
     * need it: 64-element (128-byte) columns of a wider tile, one 8 KB swizzle block after
     * another (shared_layout_split). */
    int64_t split[IR_MAX_RANK];
    int64_t split_strides[IR_MAX_RANK];
    Swizzle swizzle;
    int64_t size;                 /* elements spanned: max unswizzled offset + 1 */
};

int64_t swizzle_apply(Swizzle s, int64_t offset);
/* The standard CuTe swizzle atoms expressed in elements: for rows of `row_bytes` (>= 128: the
 * 128-byte swizzle Swizzle<3,4,3> in bytes; 64: <2,4,3>; 32: <1,4,3>; smaller: none) and
 * elements of `elem_bytes` (1, 2, 4, 8, 16): M = 4 - log2(elem_bytes), S = 3. */
Swizzle swizzle_for_rows(int64_t row_bytes, int elem_bytes);
/* The swizzle of a row-major [R, C] tile (C a power of two) that makes both 16-byte row-wise
 * copies and ldmatrix (8 rows of 16 bytes at one column, with or without .trans) free of bank
 * conflicts: the 16-byte chunk index within a row is XORed with the row index (rows of at least
 * 128 bytes: row % 8), or with row / 2 (64-byte rows) or row / 4 (32-byte rows), so 8
 * consecutive rows' chunks land in 8 different 16-byte bank groups. Rows of 16 bytes need none. */
Swizzle swizzle_for_ldmatrix(int64_t row_elems, int elem_bytes);

const SharedLayout *shared_layout_row_major(Arena *a, int rank, const int64_t *shape);
const SharedLayout *shared_layout_column_major(Arena *a, int rank, const int64_t *shape);
const SharedLayout *shared_layout_strided(Arena *a, int rank, const int64_t *shape,
                                          const int64_t *strides);
const SharedLayout *shared_layout_with_swizzle(Arena *a, const SharedLayout *l, Swizzle s);
/* l with dimension d split in blocks of `block` elements (a divisor of its extent), one block
 * `stride` elements after the previous. */
const SharedLayout *shared_layout_split(Arena *a, const SharedLayout *l, int d, int64_t block, int64_t stride);
/* Whether any dimension of l is split. */
bool shared_layout_has_split(const SharedLayout *l);
/* Whether l is the canonical layout of a 16-bit wgmma operand whose dimension c (0 or 1) is
 * contiguous: rows of 64 elements along c with the 128-byte swizzle, a wider extent split in
 * blocks of 64, nothing else split (what a matrix descriptor describes: backend/codegen_wgmma.c). */
bool shared_layout_is_wgmma(const SharedLayout *l, int c);
/* The same for elements of elem_bytes (1 or 2): rows of 128 / elem_bytes elements. */
bool shared_layout_is_wgmma_of(const SharedLayout *l, int c, int elem_bytes);
/* The element offset of `coord` (rank entries) before the swizzle. */
int64_t shared_layout_linear(const SharedLayout *l, const int64_t *coord);
/* Element offset of `coord` (rank entries), swizzle applied. */
int64_t shared_layout_offset(const SharedLayout *l, const int64_t *coord);
bool shared_layout_equal(const SharedLayout *a, const SharedLayout *b);
uint64_t shared_layout_hash(const SharedLayout *l);
/* `row_major(64,64)`, `column_major(..)` or `strided((shape), (strides))`, then
 * ` split(D, BLOCK, STRIDE)` for each split dimension, then ` ^ swizzle(B,M,S)` when swizzled. */
void shared_layout_print(const SharedLayout *l, Strbuf *sb);
/* Reads what shared_layout_print writes; on success sets *out and *end and returns true. */
bool shared_layout_parse(Arena *arena, const char *text, const SharedLayout **out, const char **end);

#endif
