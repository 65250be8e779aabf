/*
 * test_layout.c: the layout algebra (ir/layout.h).
 *
 * The mma.sync m16n8k16 fragment layouts are built as products of primitives and checked element
 * by element against the PTX ISA fragment tables (including the register order a0..a7). Then
 * properties over many random layouts (products of 1-4 random primitives, fixed seed): maps stay
 * inside the shape, coverage is exactly `replication`, the product is associative, divide undoes
 * the product, reduce keeps each thread's projected elements, printing is canonical and parses
 * back, layout_find inverts layout_map. Shared layouts: offsets, swizzle bijection and the
 * 128-byte swizzle spreading a column of 16-byte chunks over all bank groups.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ir/layout.h"

#define DIMS(...) (const int64_t[]){__VA_ARGS__}

static const char *print_layout(Arena *a, const Layout *l) {
    Strbuf sb = {0};
    layout_print(l, &sb);
    const char *s = arena_strdup(a, sb_str(&sb));
    sb_free(&sb);
    return s;
}

/* Same shape, thread count, local size and map at every (thread, local). */
static bool maps_equal(const Layout *x, const Layout *y) {
    if (x->rank != y->rank || x->num_threads != y->num_threads || x->local_size != y->local_size)
        return false;
    for (int d = 0; d < x->rank; d++)
        if (x->shape[d] != y->shape[d]) return false;
    int64_t cx[IR_MAX_RANK], cy[IR_MAX_RANK];
    for (int64_t t = 0; t < x->num_threads; t++)
        for (int64_t i = 0; i < x->local_size; i++) {
            layout_map(x, t, i, cx);
            layout_map(y, t, i, cy);
            if (memcmp(cx, cy, sizeof(int64_t) * (size_t)x->rank) != 0) return false;
        }
    return true;
}

static int64_t linear_index(const Layout *l, const int64_t *coord) {
    int64_t index = 0;
    for (int d = 0; d < l->rank; d++) index = index * l->shape[d] + coord[d];
    return index;
}

/* Every (thread, local) lands inside the shape and each element is held `replication` times. */
static void check_coverage(const Layout *l) {
    int64_t numel = layout_numel(l);
    cr_assert_eq(l->num_threads * l->local_size, numel * l->replication);
    int64_t *count = calloc((size_t)numel, sizeof *count);
    int64_t c[IR_MAX_RANK];
    for (int64_t t = 0; t < l->num_threads; t++)
        for (int64_t i = 0; i < l->local_size; i++) {
            layout_map(l, t, i, c);
            for (int d = 0; d < l->rank; d++)
                if (c[d] < 0 || c[d] >= l->shape[d]) cr_assert_fail("(%lld, %lld) maps outside", (long long)t, (long long)i);
            count[linear_index(l, c)]++;
        }
    for (int64_t e = 0; e < numel; e++)
        if (count[e] != l->replication)
            cr_assert_fail("element %lld held %lld times, expected %lld", (long long)e,
                     (long long)count[e], (long long)l->replication);
    free(count);
}

/* ---- mma.sync m16n8k16 fragments (PTX ISA, "Matrix Fragments for mma.m16n8k16") ---- */

static const Layout *mma_a(Arena *a) { /* 16 x 16, row-major A (m x k), 8 halves per thread */
    return layout_product(a, layout_product(a, layout_column_local(a, 2, DIMS(2, 2)),
                                            layout_spatial(a, 2, DIMS(8, 4))),
                          layout_local(a, 2, DIMS(1, 2)));
}
static const Layout *mma_b(Arena *a) { /* 16 x 8, B (k x n), 4 halves per thread */
    return layout_product(a, layout_product(a, layout_local(a, 2, DIMS(2, 1)),
                                            layout_column_spatial(a, 2, DIMS(4, 8))),
                          layout_local(a, 2, DIMS(2, 1)));
}
static const Layout *mma_c(Arena *a) { /* 16 x 8 f32 accumulator, 4 floats per thread */
    return layout_product(a, layout_product(a, layout_local(a, 2, DIMS(2, 1)),
                                            layout_spatial(a, 2, DIMS(8, 4))),
                          layout_local(a, 2, DIMS(1, 2)));
}

Test(layout, mma_a_fragment_matches_ptx_table) {
    Arena a;
    arena_init(&a);
    const Layout *l = mma_a(&a);
    cr_assert_eq(l->num_threads, 32);
    cr_assert_eq(l->local_size, 8);
    cr_assert_eq(l->shape[0], 16);
    cr_assert_eq(l->shape[1], 16);
    cr_assert_eq(l->replication, 1);
    cr_assert(layout_is_exact(l));
    check_coverage(l);
    for (int64_t t = 0; t < 32; t++) {
        int64_t group = t / 4, tid_in_group = t % 4;
        for (int64_t i = 0; i < 8; i++) {
            /* a0,a1: (group, tig*2+{0,1}); a2,a3: row +8; a4,a5: col +8; a6,a7: both +8 */
            int64_t row = group + ((i / 2) % 2) * 8;
            int64_t col = tid_in_group * 2 + i % 2 + (i / 4) * 8;
            int64_t c[2];
            layout_map(l, t, i, c);
            cr_assert(c[0] == row && c[1] == col, "t=%lld a%lld -> (%lld,%lld), want (%lld,%lld)",
                      (long long)t, (long long)i, (long long)c[0], (long long)c[1],
                      (long long)row, (long long)col);
        }
    }
    cr_assert_str_eq(print_layout(&a, l), "column_local(2,2) * spatial(8,4) * local(1,2)");
    arena_free(&a);
}

Test(layout, mma_b_fragment_matches_ptx_table) {
    Arena a;
    arena_init(&a);
    const Layout *l = mma_b(&a);
    cr_assert_eq(l->num_threads, 32);
    cr_assert_eq(l->local_size, 4);
    cr_assert(l->shape[0] == 16 && l->shape[1] == 8);
    check_coverage(l);
    for (int64_t t = 0; t < 32; t++)
        for (int64_t i = 0; i < 4; i++) {
            /* b0,b1: rows tig*2+{0,1}, column group; b2,b3: rows +8 */
            int64_t row = (t % 4) * 2 + i % 2 + (i / 2) * 8, col = t / 4;
            int64_t c[2];
            layout_map(l, t, i, c);
            cr_assert(c[0] == row && c[1] == col, "t=%lld b%lld", (long long)t, (long long)i);
        }
    cr_assert_str_eq(print_layout(&a, l), "local(2,1) * column_spatial(4,8) * local(2,1)");
    arena_free(&a);
}

Test(layout, mma_c_fragment_matches_ptx_table) {
    Arena a;
    arena_init(&a);
    const Layout *l = mma_c(&a);
    cr_assert_eq(l->num_threads, 32);
    cr_assert_eq(l->local_size, 4);
    cr_assert(l->shape[0] == 16 && l->shape[1] == 8);
    check_coverage(l);
    for (int64_t t = 0; t < 32; t++)
        for (int64_t i = 0; i < 4; i++) {
            /* c0,c1: row group, cols tig*2+{0,1}; c2,c3: row group+8 */
            int64_t row = t / 4 + (i / 2) * 8, col = (t % 4) * 2 + i % 2;
            int64_t c[2];
            layout_map(l, t, i, c);
            cr_assert(c[0] == row && c[1] == col, "t=%lld c%lld", (long long)t, (long long)i);
        }
    cr_assert_str_eq(print_layout(&a, l), "local(2,1) * spatial(8,4) * local(1,2)");
    arena_free(&a);
}

Test(layout, mma_operand_check_is_divisibility) {
    Arena a;
    arena_init(&a);
    /* A 64 x 32 tile for 4 warps stacked along m, each warp holding a 1 x 2 block of A fragments. */
    const Layout *outer = layout_product(&a, layout_spatial(&a, 2, DIMS(4, 1)), layout_local(&a, 2, DIMS(1, 2)));
    const Layout *tile = layout_product(&a, outer, mma_a(&a));
    cr_assert(tile->shape[0] == 64 && tile->shape[1] == 32 && tile->num_threads == 128);
    const Layout *q;
    cr_assert(layout_divide(&a, tile, mma_a(&a), &q));
    cr_assert(layout_equal(q, outer));
    /* The same shape with thread and local roles swapped inside the atom is not an A operand. */
    const Layout *other = layout_product(&a, outer, layout_product(&a, layout_spatial(&a, 2, DIMS(2, 2)),
                                                                   layout_product(&a, layout_local(&a, 2, DIMS(8, 4)),
                                                                                  layout_spatial(&a, 2, DIMS(1, 2)))));
    cr_assert(other->shape[0] == 64 && other->shape[1] == 32);
    cr_assert_not(layout_divide(&a, other, mma_a(&a), &q));
    cr_assert_null(q);
    /* The A fragment is two accumulator fragments side by side along k... */
    cr_assert(layout_divide(&a, mma_a(&a), mma_c(&a), &q));
    cr_assert(layout_equal(q, layout_local(&a, 2, DIMS(1, 2))));
    /* ...but the B fragment is not a right factor of it, though its shape divides. */
    cr_assert_not(layout_divide(&a, mma_a(&a), mma_b(&a), &q));
    arena_free(&a);
}

/* ---- primitives and small cases ---- */

Test(layout, primitives_map_in_declared_order) {
    Arena a;
    arena_init(&a);
    const Layout *loc = layout_local(&a, 2, DIMS(2, 3));
    const Layout *col = layout_column_local(&a, 2, DIMS(2, 3));
    const Layout *sp = layout_spatial(&a, 2, DIMS(2, 3));
    const Layout *csp = layout_column_spatial(&a, 2, DIMS(2, 3));
    cr_assert(loc->num_threads == 1 && loc->local_size == 6);
    cr_assert(sp->num_threads == 6 && sp->local_size == 1);
    for (int64_t k = 0; k < 6; k++) {
        int64_t c[2];
        layout_map(loc, 0, k, c);
        cr_assert(c[0] == k / 3 && c[1] == k % 3);
        layout_map(col, 0, k, c);
        cr_assert(c[0] == k % 2 && c[1] == k / 2);
        layout_map(sp, k, 0, c);
        cr_assert(c[0] == k / 3 && c[1] == k % 3);
        layout_map(csp, k, 0, c);
        cr_assert(c[0] == k % 2 && c[1] == k / 2);
    }
    const Layout *rep = layout_product(&a, layout_spatial(&a, 1, DIMS(4)), layout_replicate(&a, 1, 2));
    cr_assert(rep->num_threads == 8 && rep->replication == 2 && rep->shape[0] == 4);
    for (int64_t t = 0; t < 8; t++) {
        int64_t c[1];
        layout_map(rep, t, 0, c);
        cr_assert_eq(c[0], t / 2); /* neighbouring threads share an element */
    }
    check_coverage(rep);
    cr_assert_str_eq(print_layout(&a, rep), "spatial(4) * replicate(2)");
    cr_assert_str_eq(print_layout(&a, layout_replicate(&a, 2, 4)), "local(1,1) * replicate(4)");
    cr_assert_str_eq(print_layout(&a, layout_local(&a, 0, NULL)), "local()");
    arena_free(&a);
}

Test(layout, equal_maps_are_equal_and_print_equally) {
    Arena a;
    arena_init(&a);
    const Layout *l4 = layout_local(&a, 1, DIMS(4));
    const Layout *l22 = layout_product(&a, layout_local(&a, 1, DIMS(2)), layout_local(&a, 1, DIMS(2)));
    cr_assert(layout_equal(l4, l22));
    cr_assert_eq(layout_hash(l4), layout_hash(l22));
    cr_assert_str_eq(print_layout(&a, l22), "local(4)");
    /* A column primitive of rank 1 is the row one; size-1 factors vanish. */
    cr_assert(layout_equal(layout_column_spatial(&a, 1, DIMS(8)), layout_spatial(&a, 1, DIMS(8))));
    const Layout *sp = layout_product(&a, layout_spatial(&a, 2, DIMS(4, 1)), layout_spatial(&a, 2, DIMS(1, 8)));
    cr_assert(layout_equal(sp, layout_spatial(&a, 2, DIMS(4, 8))));
    cr_assert_str_eq(print_layout(&a, sp), "spatial(4,8)");
    /* Different maps of the same shape are different. */
    cr_assert_not(layout_equal(layout_spatial(&a, 2, DIMS(4, 8)), layout_column_spatial(&a, 2, DIMS(4, 8))));
    cr_assert_not(layout_equal(layout_spatial(&a, 1, DIMS(4)), layout_local(&a, 1, DIMS(4))));
    cr_assert_not(layout_equal(layout_local(&a, 2, DIMS(1, 2)), layout_local(&a, 2, DIMS(2, 1))));
    cr_assert(layout_equal(NULL, NULL));
    cr_assert_not(layout_equal(l4, NULL));
    arena_free(&a);
}

Test(layout, reduce_replicates_and_squeeze_removes) {
    Arena a;
    arena_init(&a);
    const Layout *l = layout_product(&a, layout_spatial(&a, 2, DIMS(8, 4)), layout_local(&a, 2, DIMS(1, 2)));
    const Layout *r = layout_reduce(&a, l, 1);
    cr_assert(r->shape[0] == 8 && r->shape[1] == 1);
    cr_assert(r->num_threads == 32 && r->local_size == 1 && r->replication == 4);
    cr_assert_str_eq(print_layout(&a, r), "spatial(8,1) * replicate(4)");
    const Layout *s = layout_squeeze(&a, r, 1);
    cr_assert(s->rank == 1 && s->shape[0] == 8);
    cr_assert_str_eq(print_layout(&a, s), "spatial(8) * replicate(4)");
    cr_assert(layout_equal(layout_expand_dims(&a, s, 1), r));
    /* Reducing along rows: threads of one column group share the result. */
    const Layout *r0 = layout_reduce(&a, l, 0);
    cr_assert_str_eq(print_layout(&a, r0), "replicate(8) * spatial(1,4) * local(1,2)");
    check_coverage(r0);
    arena_free(&a);
}

Test(layout, non_product_layouts_print_raw_form) {
    Arena a;
    arena_init(&a);
    /* Threads: dim 0 outside dim 1; locals: dim 1 outside dim 0; per dimension the orders cross,
     * so no ordering of the four modes as product factors exists. */
    LayoutMode threads[] = {{.size = 2, .stride = 1, .dim = 0}, {.size = 2, .stride = 2, .dim = 1}};
    LayoutMode locals[] = {{.size = 2, .stride = 1, .dim = 1}, {.size = 2, .stride = 2, .dim = 0}};
    const Layout *l = layout_from_modes(&a, 2, DIMS(4, 4), 2, threads, 2, locals);
    cr_assert(layout_is_exact(l));
    check_coverage(l);
    cr_assert_str_eq(print_layout(&a, l), "layout([4,4], threads=[2:0/1, 2:1/2], locals=[2:1/1, 2:0/2])");
    /* Not exact: two modes at the same stride. */
    LayoutMode clash[] = {{.size = 2, .stride = 1, .dim = 0}};
    const Layout *bad = layout_from_modes(&a, 1, DIMS(2), 1, clash, 1, clash);
    cr_assert_not(layout_is_exact(bad));
    int64_t t, i;
    cr_assert_not(layout_find(bad, DIMS(1), &t, &i));
    arena_free(&a);
}

Test(layout, parse_reads_printed_form_and_rejects_bad_text) {
    Arena a;
    arena_init(&a);
    const Layout *l;
    const char *end;
    cr_assert(layout_parse(&a, " column_local(2, 2)*spatial(8,4) * local(1,2);", &l, &end));
    cr_assert(layout_equal(l, mma_a(&a)));
    cr_assert_str_eq(end, ";");
    cr_assert(layout_parse(&a, "local(1,1) * replicate(4)", &l, &end));
    cr_assert(layout_equal(l, layout_replicate(&a, 2, 4)));
    const char *bad[] = {"", "replicate(4)", "local(2) * spatial(2,2)", "local(0)", "lokal(2)",
                         "local(2", "local(2,)", "replicate(2,2) * local(1,1)", "local(2) *"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        cr_assert_not(layout_parse(&a, bad[k], &l, &end), "accepted '%s'", bad[k]);
    arena_free(&a);
}

Test(layout, intern_gives_one_pointer_per_layout) {
    Arena a;
    arena_init(&a);
    LayoutTable table = {0};
    const Layout *first[40];
    for (int k = 0; k < 40; k++) first[k] = layout_intern(&table, layout_spatial(&a, 2, DIMS(k + 1, 2)));
    for (int k = 0; k < 40; k++) {
        const Layout *again = layout_product(&a, layout_spatial(&a, 2, DIMS(k + 1, 1)), layout_spatial(&a, 2, DIMS(1, 2)));
        cr_assert_eq(layout_intern(&table, again), first[k]);
    }
    cr_assert_eq(table.len, 40);
    layout_table_free(&table);
    arena_free(&a);
}

/* ---- random layouts ---- */

typedef struct Rng {
    uint64_t state;
} Rng;

static uint64_t rng_next(Rng *r) {
    r->state ^= r->state << 13;
    r->state ^= r->state >> 7;
    r->state ^= r->state << 17;
    return r->state;
}
static int rng_int(Rng *r, int n) { return (int)(rng_next(r) % (uint64_t)n); }

static const Layout *random_primitive(Arena *a, Rng *r, int rank) {
    int64_t dims[IR_MAX_RANK];
    for (int d = 0; d < rank; d++) dims[d] = 1 + rng_int(r, 3);
    switch (rng_int(r, 9)) {
    case 0: case 1: return layout_local(a, rank, dims);
    case 2: case 3: return layout_column_local(a, rank, dims);
    case 4: case 5: return layout_spatial(a, rank, dims);
    case 6: case 7: return layout_column_spatial(a, rank, dims);
    default: return layout_replicate(a, rank, 2 + rng_int(r, 2));
    }
}

/* A product of 1-4 random primitives of the given rank with at most 2048 (thread, local) pairs. */
static const Layout *random_layout(Arena *a, Rng *r, int rank) {
    for (;;) {
        int factors = 1 + rng_int(r, 4);
        const Layout *l = random_primitive(a, r, rank);
        for (int k = 1; k < factors; k++) l = layout_product(a, l, random_primitive(a, r, rank));
        if (l->num_threads * l->local_size <= 2048) return l;
    }
}

enum { RANDOM_CASES = 400 };

Test(layout_random, maps_inside_shape_and_covers_exactly) {
    Arena a;
    arena_init(&a);
    Rng r = {0x1234567u};
    for (int k = 0; k < RANDOM_CASES; k++) {
        const Layout *l = random_layout(&a, &r, 1 + rng_int(&r, 3));
        cr_assert(layout_is_exact(l));
        check_coverage(l);
        /* layout_find is the inverse of layout_map up to the replica digits. */
        int64_t c[IR_MAX_RANK], back[IR_MAX_RANK], t, i;
        for (int64_t tt = 0; tt < l->num_threads; tt++)
            for (int64_t ii = 0; ii < l->local_size; ii++) {
                layout_map(l, tt, ii, c);
                cr_assert(layout_find(l, c, &t, &i));
                layout_map(l, t, i, back);
                if (memcmp(c, back, sizeof(int64_t) * (size_t)l->rank) != 0 || i != ii)
                    cr_assert_fail("find does not invert map");
            }
    }
    arena_free(&a);
}

Test(layout_random, product_is_associative) {
    Arena a;
    arena_init(&a);
    Rng r = {0xabcdefu};
    for (int k = 0; k < RANDOM_CASES; k++) {
        int rank = 1 + rng_int(&r, 3);
        const Layout *x = random_primitive(&a, &r, rank), *y = random_layout(&a, &r, rank),
                     *z = random_primitive(&a, &r, rank);
        const Layout *left = layout_product(&a, layout_product(&a, x, y), z);
        const Layout *right = layout_product(&a, x, layout_product(&a, y, z));
        cr_assert(layout_equal(left, right), "%s vs %s", print_layout(&a, left), print_layout(&a, right));
        cr_assert(maps_equal(left, right));
        /* The product's defining formula, checked directly. */
        const Layout *xy = layout_product(&a, x, y);
        int64_t cx[IR_MAX_RANK], cy[IR_MAX_RANK], cxy[IR_MAX_RANK];
        for (int64_t tx = 0; tx < x->num_threads; tx++)
            for (int64_t ty = 0; ty < y->num_threads; ty++)
                for (int64_t lx = 0; lx < x->local_size; lx++)
                    for (int64_t ly = 0; ly < y->local_size; ly++) {
                        layout_map(x, tx, lx, cx);
                        layout_map(y, ty, ly, cy);
                        layout_map(xy, tx * y->num_threads + ty, lx * y->local_size + ly, cxy);
                        for (int d = 0; d < rank; d++)
                            if (cxy[d] != cx[d] * y->shape[d] + cy[d]) cr_assert_fail("product formula");
                    }
    }
    arena_free(&a);
}

Test(layout_random, divide_undoes_product) {
    Arena a;
    arena_init(&a);
    Rng r = {0x5eed5u};
    for (int k = 0; k < RANDOM_CASES; k++) {
        int rank = 1 + rng_int(&r, 3);
        const Layout *x = random_layout(&a, &r, rank), *y = random_layout(&a, &r, rank);
        const Layout *xy = layout_product(&a, x, y), *q;
        cr_assert(layout_divide(&a, xy, y, &q), "%s / %s", print_layout(&a, xy), print_layout(&a, y));
        cr_assert(layout_equal(q, x), "(%s) / (%s) gave %s", print_layout(&a, xy), print_layout(&a, y),
                  print_layout(&a, q));
        cr_assert(maps_equal(q, x));
        cr_assert(layout_divide(&a, xy, xy, &q));
        cr_assert(q->num_threads == 1 && q->local_size == 1 && layout_numel(q) == 1);
        /* Whatever divide returns for an unrelated divisor is a true right factor. */
        const Layout *z = random_layout(&a, &r, rank);
        if (layout_divide(&a, xy, z, &q)) cr_assert(layout_equal(layout_product(&a, q, z), xy));
        else cr_assert_null(q);
    }
    const Layout *q;
    cr_assert_not(layout_divide(&a, layout_spatial(&a, 1, DIMS(4)), layout_local(&a, 1, DIMS(2)), &q));
    cr_assert_not(layout_divide(&a, layout_product(&a, layout_local(&a, 1, DIMS(2)), layout_spatial(&a, 1, DIMS(2))),
                                layout_local(&a, 1, DIMS(2)), &q));
    cr_assert_not(layout_divide(&a, layout_local(&a, 1, DIMS(6)), layout_local(&a, 1, DIMS(4)), &q));
    arena_free(&a);
}

Test(layout_random, reduce_keeps_each_threads_projection) {
    Arena a;
    arena_init(&a);
    Rng r = {0x77aa11u};
    for (int k = 0; k < RANDOM_CASES; k++) {
        int rank = 1 + rng_int(&r, 3), axis = rng_int(&r, rank);
        const Layout *l = random_layout(&a, &r, rank);
        const Layout *red = layout_reduce(&a, l, axis);
        cr_assert_eq(red->num_threads, l->num_threads);
        cr_assert_eq(red->shape[axis], 1);
        check_coverage(red);
        int64_t numel = layout_numel(red);
        char *want = malloc((size_t)numel), *have = malloc((size_t)numel);
        int64_t c[IR_MAX_RANK];
        for (int64_t t = 0; t < l->num_threads; t++) {
            memset(want, 0, (size_t)numel);
            memset(have, 0, (size_t)numel);
            for (int64_t i = 0; i < l->local_size; i++) {
                layout_map(l, t, i, c);
                c[axis] = 0;
                want[linear_index(red, c)] = 1;
            }
            for (int64_t i = 0; i < red->local_size; i++) {
                layout_map(red, t, i, c);
                int64_t e = linear_index(red, c);
                if (have[e]) cr_assert_fail("thread %lld holds a reduced element twice", (long long)t);
                have[e] = 1;
            }
            if (memcmp(want, have, (size_t)numel) != 0)
                cr_assert_fail("thread %lld of %s reduced along %d holds the wrong elements", (long long)t,
                         print_layout(&a, l), axis);
        }
        free(want);
        free(have);
        /* Reduced layouts are still products of primitives. */
        const Layout *parsed;
        const char *text = print_layout(&a, red), *end;
        cr_assert(layout_parse(&a, text, &parsed, &end) && layout_equal(parsed, red), "%s", text);
        /* Squeezing the axis and putting it back is the identity. */
        if (rank > 1) {
            const Layout *s = layout_squeeze(&a, red, axis);
            cr_assert_eq(s->rank, rank - 1);
            cr_assert(layout_equal(layout_expand_dims(&a, s, axis), red));
        }
    }
    arena_free(&a);
}

Test(layout_random, printing_is_canonical_and_parses_back) {
    Arena a;
    arena_init(&a);
    Rng r = {0x600dcafeu};
    for (int k = 0; k < RANDOM_CASES; k++) {
        int rank = 1 + rng_int(&r, 3);
        const Layout *x = random_layout(&a, &r, rank), *y = random_primitive(&a, &r, rank),
                     *z = random_primitive(&a, &r, rank);
        const Layout *left = layout_product(&a, layout_product(&a, x, y), z);
        const Layout *right = layout_product(&a, x, layout_product(&a, y, z));
        const char *text = print_layout(&a, left);
        cr_assert_str_eq(text, print_layout(&a, right));
        cr_assert(strncmp(text, "layout(", 7) != 0, "products print as products: %s", text);
        const Layout *parsed;
        const char *end;
        cr_assert(layout_parse(&a, text, &parsed, &end), "cannot parse %s", text);
        cr_assert_eq(*end, '\0');
        cr_assert(layout_equal(parsed, left), "%s parsed differently", text);
        cr_assert_str_eq(print_layout(&a, parsed), text);
    }
    arena_free(&a);
}

/* ---- shared-memory layouts ---- */

Test(shared_layout, strides_and_printing) {
    Arena a;
    arena_init(&a);
    const SharedLayout *row = shared_layout_row_major(&a, 2, DIMS(4, 8));
    const SharedLayout *col = shared_layout_column_major(&a, 2, DIMS(4, 8));
    cr_assert_eq(shared_layout_offset(row, DIMS(2, 3)), 2 * 8 + 3);
    cr_assert_eq(shared_layout_offset(col, DIMS(2, 3)), 2 + 3 * 4);
    cr_assert_eq(row->size, 32);
    const SharedLayout *padded = shared_layout_strided(&a, 2, DIMS(4, 8), DIMS(9, 1));
    cr_assert_eq(padded->size, 3 * 9 + 7 + 1);
    cr_assert(shared_layout_equal(row, shared_layout_strided(&a, 2, DIMS(4, 8), DIMS(8, 1))));
    cr_assert_not(shared_layout_equal(row, col));
    const SharedLayout *sw = shared_layout_with_swizzle(&a, row, (Swizzle){3, 3, 3});
    cr_assert_not(shared_layout_equal(row, sw));
    cr_assert_neq(shared_layout_hash(row), shared_layout_hash(sw));
    Strbuf sb = {0};
    shared_layout_print(row, &sb);
    sb_puts(&sb, "|");
    shared_layout_print(col, &sb);
    sb_puts(&sb, "|");
    shared_layout_print(padded, &sb);
    sb_puts(&sb, "|");
    shared_layout_print(sw, &sb);
    cr_assert_str_eq(sb_str(&sb), "row_major(4,8)|column_major(4,8)|strided((4,8), (9,1))|row_major(4,8) ^ swizzle(3,3,3)");
    sb_free(&sb);
    arena_free(&a);
}

Test(shared_layout, swizzle_is_a_bijection_on_its_range) {
    Arena a;
    arena_init(&a);
    const int64_t shapes[][2] = {{8, 64}, {16, 64}, {32, 32}, {64, 16}, {128, 8}};
    const Swizzle swizzles[] = {{3, 3, 3}, {2, 3, 3}, {1, 3, 3}, {3, 4, 3}, {2, 2, 4}, {3, 0, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t z = 0; z < sizeof swizzles / sizeof swizzles[0]; z++) {
            Swizzle sz = swizzles[z];
            int64_t n = shapes[s][0] * shapes[s][1];
            if (n % ((int64_t)1 << (sz.bits + sz.base + sz.shift)) != 0) continue;
            const SharedLayout *l = shared_layout_with_swizzle(&a, shared_layout_row_major(&a, 2, shapes[s]), sz);
            char *seen = calloc((size_t)n, 1);
            bool moved = false;
            for (int64_t i = 0; i < shapes[s][0]; i++)
                for (int64_t j = 0; j < shapes[s][1]; j++) {
                    int64_t off = shared_layout_offset(l, (const int64_t[]){i, j});
                    cr_assert(off >= 0 && off < n);
                    cr_assert_not(seen[off], "offset %lld hit twice", (long long)off);
                    seen[off] = 1;
                    moved |= off != i * shapes[s][1] + j;
                    cr_assert_eq(swizzle_apply(sz, off), i * shapes[s][1] + j); /* an involution */
                }
            cr_assert(moved);
            free(seen);
        }
    arena_free(&a);
}

Test(shared_layout, swizzle_128b_spreads_a_column_over_bank_groups) {
    Arena a;
    arena_init(&a);
    /* bf16 tile with 128-byte rows: 64 elements per row; a 16-byte chunk is 8 elements. */
    Swizzle sw = swizzle_for_rows(128, 2);
    cr_assert(sw.bits == 3 && sw.base == 3 && sw.shift == 3);
    const SharedLayout *l = shared_layout_with_swizzle(&a, shared_layout_row_major(&a, 2, DIMS(64, 64)), sw);
    const SharedLayout *plain = shared_layout_row_major(&a, 2, DIMS(64, 64));
    for (int64_t chunk = 0; chunk < 8; chunk++)
        for (int64_t row0 = 0; row0 < 64; row0 += 8) {
            unsigned groups = 0, plain_groups = 0;
            for (int64_t r = row0; r < row0 + 8; r++) {
                /* Bank group: which 16-byte (4-bank) slice of the 128-byte bank row. */
                int64_t bytes = shared_layout_offset(l, (const int64_t[]){r, chunk * 8}) * 2;
                groups |= 1u << ((bytes / 16) % 8);
                int64_t plain_bytes = shared_layout_offset(plain, (const int64_t[]){r, chunk * 8}) * 2;
                plain_groups |= 1u << ((plain_bytes / 16) % 8);
                /* The 8 elements of a chunk stay contiguous and 16-byte aligned. */
                for (int64_t e = 1; e < 8; e++)
                    cr_assert_eq(shared_layout_offset(l, (const int64_t[]){r, chunk * 8 + e}) * 2, bytes + 2 * e);
                cr_assert_eq(bytes % 16, 0);
            }
            cr_assert_eq(groups, 0xffu, "chunk %lld rows %lld..: groups %x", (long long)chunk, (long long)row0, groups);
            cr_assert_eq(__builtin_popcount(plain_groups), 1); /* unswizzled: all conflict */
        }
    /* The other CuTe atoms in elements. */
    Swizzle s64 = swizzle_for_rows(64, 2), s32 = swizzle_for_rows(32, 4), none = swizzle_for_rows(16, 2);
    cr_assert(s64.bits == 2 && s64.base == 3 && s64.shift == 3);
    cr_assert(s32.bits == 1 && s32.base == 2 && s32.shift == 3);
    cr_assert_eq(none.bits, 0);
    cr_assert_eq(swizzle_apply(none, 12345), 12345);
    arena_free(&a);
}
