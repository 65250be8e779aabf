/*
 * layout.c: register and shared-memory layouts (see ir/layout.h for the model).
 *
 * Every register layout is built through one path: its thread and local modes are pushed, outer
 * to inner, into a ModeList that drops size-1 modes and merges a mode into its outer neighbour
 * when the two continue each other (same dimension, outer stride = inner stride * inner size; or
 * both replicas). One merge per push is enough, because two neighbours that did not merge before
 * cannot merge after their inner one grows. The result is the canonical form, so layout_equal
 * and layout_hash look at the mode lists only.
 *
 * The product concatenates A's lists (strides scaled by B's shape) with B's; the only merge that
 * can happen is at the seam. Divide therefore peels B's list off the end of A's, allowing the
 * seam mode of A to be larger than B's first mode, rescales what is left and checks the result by
 * multiplying back. Printing finds a product of primitives greedily: a mode can be the next
 * (outermost) factor when it is at the front of its list and no remaining mode of its dimension
 * has a larger stride; a factor takes a run of such modes over distinct dimensions in increasing
 * (row-major) or decreasing (column-major) order.
 */
#include "ir/layout.h"

#include <assert.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* A layout has fewer than 64 modes of size > 1 per list when T * L fits in 63 bits; the buffer
 * also holds the unmerged concatenation of a product. */
enum { MODE_BUFFER = 128 };

typedef struct ModeList {
    int len;
    LayoutMode modes[MODE_BUFFER];
} ModeList;

static bool mode_is_replica(LayoutMode m) { return m.dim == LAYOUT_REPLICA; }

/* Appends `m` as the new innermost mode, keeping the list canonical. */
static void mode_list_push(ModeList *list, LayoutMode m) {
    assert(m.size >= 1 && m.stride >= 0);
    if (m.size == 1) return;
    if (m.stride == 0) m.dim = LAYOUT_REPLICA; /* a stride-0 mode repeats elements: a replica */
    if (mode_is_replica(m)) m.stride = 0;
    if (list->len > 0) {
        LayoutMode *outer = &list->modes[list->len - 1];
        if (outer->dim == m.dim && (mode_is_replica(m) || outer->stride == m.stride * m.size)) {
            outer->size *= m.size;
            outer->stride = m.stride;
            return;
        }
    }
    assert(list->len < MODE_BUFFER);
    list->modes[list->len++] = m;
}

static uint64_t hash_i64(uint64_t h, int64_t v) { return hash_bytes(&v, sizeof v, h); }

static const Layout *layout_build(Arena *arena, int rank, const int64_t *shape,
                                  const ModeList *threads, const ModeList *locals) {
    assert(rank >= 0 && rank <= IR_MAX_RANK);
    int total = threads->len + locals->len;
    Layout *l = arena_alloc(arena, sizeof(Layout) + sizeof(LayoutMode) * (size_t)total);
    l->rank = rank;
    l->num_thread_modes = threads->len;
    l->num_local_modes = locals->len;
    for (int d = 0; d < rank; d++) {
        assert(shape[d] >= 1);
        l->shape[d] = shape[d];
    }
    memcpy(l->modes, threads->modes, sizeof(LayoutMode) * (size_t)threads->len);
    memcpy(l->modes + threads->len, locals->modes, sizeof(LayoutMode) * (size_t)locals->len);
    l->num_threads = l->local_size = l->replication = 1;
    uint64_t h = hash_i64(0x9e3779b97f4a7c15ull, rank);
    for (int d = 0; d < rank; d++) h = hash_i64(h, shape[d]);
    h = hash_i64(h, threads->len);
    for (int i = 0; i < total; i++) {
        const LayoutMode *m = &l->modes[i];
        if (i < threads->len) l->num_threads *= m->size;
        else l->local_size *= m->size;
        if (mode_is_replica(*m)) l->replication *= m->size;
        h = hash_i64(hash_i64(hash_i64(h, m->size), m->stride), m->dim);
    }
    l->hash = h;
    return l;
}

/* ---- primitives --------------------------------------------------------------------------- */
static const Layout *layout_primitive(Arena *a, int rank, const int64_t *dims, bool spatial,
                                      bool column) {
    ModeList modes = {0}, none = {0};
    for (int i = 0; i < rank; i++) {
        int d = column ? rank - 1 - i : i;
        assert(dims[d] >= 1);
        mode_list_push(&modes, (LayoutMode){.size = dims[d], .stride = 1, .dim = d});
    }
    return spatial ? layout_build(a, rank, dims, &modes, &none)
                   : layout_build(a, rank, dims, &none, &modes);
}

const Layout *layout_local(Arena *a, int rank, const int64_t *dims) {
    return layout_primitive(a, rank, dims, false, false);
}
const Layout *layout_column_local(Arena *a, int rank, const int64_t *dims) {
    return layout_primitive(a, rank, dims, false, true);
}
const Layout *layout_spatial(Arena *a, int rank, const int64_t *dims) {
    return layout_primitive(a, rank, dims, true, false);
}
const Layout *layout_column_spatial(Arena *a, int rank, const int64_t *dims) {
    return layout_primitive(a, rank, dims, true, true);
}

const Layout *layout_replicate(Arena *a, int rank, int64_t n) {
    int64_t ones[IR_MAX_RANK] = {1, 1, 1, 1, 1, 1};
    ModeList threads = {0}, locals = {0};
    mode_list_push(&threads, (LayoutMode){.size = n, .stride = 0, .dim = LAYOUT_REPLICA});
    return layout_build(a, rank, ones, &threads, &locals);
}

const Layout *layout_from_modes(Arena *a, int rank, const int64_t *shape, int num_thread_modes,
                                const LayoutMode *thread_modes, int num_local_modes,
                                const LayoutMode *local_modes) {
    ModeList threads = {0}, locals = {0};
    for (int i = 0; i < num_thread_modes; i++) {
        assert(thread_modes[i].dim == LAYOUT_REPLICA ||
               (thread_modes[i].dim >= 0 && thread_modes[i].dim < rank));
        mode_list_push(&threads, thread_modes[i]);
    }
    for (int i = 0; i < num_local_modes; i++) {
        assert(local_modes[i].dim == LAYOUT_REPLICA ||
               (local_modes[i].dim >= 0 && local_modes[i].dim < rank));
        mode_list_push(&locals, local_modes[i]);
    }
    return layout_build(a, rank, shape, &threads, &locals);
}

/* ---- standard layouts --------------------------------------------------------------------- */
static int64_t pow2_part(int64_t x) { return x <= 0 ? 1 : x & -x; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

const Layout *layout_blocked(Arena *arena, int rank, const int64_t *shape, int elem_bytes, int num_warps) {
    int64_t threads = 32 * (int64_t)num_warps;
    if (rank == 0) return layout_replicate(arena, 0, threads);
    int64_t rem[IR_MAX_RANK], vec[IR_MAX_RANK], lanes[IR_MAX_RANK], warps[IR_MAX_RANK];
    for (int d = 0; d < rank; d++) {
        rem[d] = shape[d];
        vec[d] = lanes[d] = warps[d] = 1;
    }
    int64_t per_thread = elem_bytes > 0 && elem_bytes < 16 ? 16 / elem_bytes : 1;
    vec[rank - 1] = min64(pow2_part(rem[rank - 1]), per_thread);
    rem[rank - 1] /= vec[rank - 1];
    int64_t lanes_left = 32, warps_left = num_warps;
    for (int d = rank - 1; d >= 0; d--) {
        lanes[d] = min64(lanes_left, pow2_part(rem[d]));
        rem[d] /= lanes[d];
        lanes_left /= lanes[d];
    }
    for (int d = 0; d < rank; d++) {
        warps[d] = min64(warps_left, pow2_part(rem[d]));
        rem[d] /= warps[d];
        warps_left /= warps[d];
    }
    LayoutMode tm[2 * IR_MAX_RANK + 2], lm[IR_MAX_RANK + 1];
    int nt = 0, nl = 0;
    tm[nt++] = (LayoutMode){.size = warps_left, .stride = 0, .dim = LAYOUT_REPLICA};
    for (int d = 0; d < rank; d++)
        tm[nt++] = (LayoutMode){.size = warps[d], .stride = lanes[d] * vec[d], .dim = d};
    tm[nt++] = (LayoutMode){.size = lanes_left, .stride = 0, .dim = LAYOUT_REPLICA};
    for (int d = 0; d < rank; d++) tm[nt++] = (LayoutMode){.size = lanes[d], .stride = vec[d], .dim = d};
    for (int d = 0; d < rank; d++)
        lm[nl++] = (LayoutMode){.size = rem[d], .stride = warps[d] * lanes[d] * vec[d], .dim = d};
    lm[nl++] = (LayoutMode){.size = vec[rank - 1], .stride = 1, .dim = rank - 1};
    return layout_from_modes(arena, rank, shape, nt, tm, nl, lm);
}

/* ---- algebra ------------------------------------------------------------------------------ */
/* Pushes `m` with its stride multiplied by the inner factor's extent along its dimension. */
static void push_scaled(ModeList *list, LayoutMode m, const int64_t *inner_shape) {
    if (!mode_is_replica(m)) m.stride *= inner_shape[m.dim];
    mode_list_push(list, m);
}

const Layout *layout_product(Arena *arena, const Layout *a, const Layout *b) {
    assert(a->rank == b->rank);
    int64_t shape[IR_MAX_RANK];
    for (int d = 0; d < a->rank; d++) shape[d] = a->shape[d] * b->shape[d];
    ModeList threads = {0}, locals = {0};
    for (int i = 0; i < a->num_thread_modes; i++)
        push_scaled(&threads, layout_thread_modes(a)[i], b->shape);
    for (int i = 0; i < b->num_thread_modes; i++) mode_list_push(&threads, layout_thread_modes(b)[i]);
    for (int i = 0; i < a->num_local_modes; i++)
        push_scaled(&locals, layout_local_modes(a)[i], b->shape);
    for (int i = 0; i < b->num_local_modes; i++) mode_list_push(&locals, layout_local_modes(b)[i]);
    return layout_build(arena, a->rank, shape, &threads, &locals);
}

static bool mode_equal(LayoutMode x, LayoutMode y) {
    return x.size == y.size && x.stride == y.stride && x.dim == y.dim;
}

/* Pushes `m` with its stride divided by the inner extent; false if it does not divide. */
static bool push_unscaled(ModeList *list, LayoutMode m, const int64_t *inner_shape) {
    if (m.size == 1) return true;
    if (!mode_is_replica(m)) {
        if (m.stride % inner_shape[m.dim] != 0) return false;
        m.stride /= inner_shape[m.dim];
    }
    mode_list_push(list, m);
    return true;
}

/* One list of A = C * B: C's modes (scaled) followed by B's, merged at the seam. */
static bool divide_list(const LayoutMode *am, int na, const LayoutMode *bm, int nb,
                        const int64_t *b_shape, ModeList *c) {
    int keep = na;
    LayoutMode seam_rest = {.size = 1, .stride = 0, .dim = LAYOUT_REPLICA};
    if (nb > 0) {
        if (na < nb) return false;
        keep = na - nb;
        for (int i = 1; i < nb; i++)
            if (!mode_equal(am[keep + i], bm[i])) return false;
        LayoutMode seam = am[keep], first = bm[0];
        if (seam.dim != first.dim || seam.stride != first.stride || seam.size % first.size != 0)
            return false;
        /* The part of the seam mode that C contributed, just outside B's first mode. */
        seam_rest = (LayoutMode){.size = seam.size / first.size,
                                 .stride = first.stride * first.size,
                                 .dim = first.dim};
    }
    for (int i = 0; i < keep; i++)
        if (!push_unscaled(c, am[i], b_shape)) return false;
    return push_unscaled(c, seam_rest, b_shape);
}

bool layout_divide(Arena *arena, const Layout *a, const Layout *b, const Layout **out) {
    *out = NULL;
    if (a->rank != b->rank) return false;
    int64_t shape[IR_MAX_RANK];
    for (int d = 0; d < a->rank; d++) {
        if (a->shape[d] % b->shape[d] != 0) return false;
        shape[d] = a->shape[d] / b->shape[d];
    }
    ModeList threads = {0}, locals = {0};
    if (!divide_list(layout_thread_modes(a), a->num_thread_modes, layout_thread_modes(b),
                     b->num_thread_modes, b->shape, &threads) ||
        !divide_list(layout_local_modes(a), a->num_local_modes, layout_local_modes(b),
                     b->num_local_modes, b->shape, &locals))
        return false;
    const Layout *c = layout_build(arena, a->rank, shape, &threads, &locals);
    /* The peeling above is necessary but not sufficient (a C mode could overrun C's shape). */
    if (!layout_equal(layout_product(arena, c, b), a)) return false;
    *out = c;
    return true;
}

const Layout *layout_reduce(Arena *arena, const Layout *l, int axis) {
    assert(axis >= 0 && axis < l->rank);
    int64_t shape[IR_MAX_RANK];
    memcpy(shape, l->shape, sizeof shape);
    shape[axis] = 1;
    ModeList threads = {0}, locals = {0};
    for (int i = 0; i < l->num_thread_modes; i++) {
        LayoutMode m = layout_thread_modes(l)[i];
        if (m.dim == axis) m = (LayoutMode){.size = m.size, .stride = 0, .dim = LAYOUT_REPLICA};
        mode_list_push(&threads, m);
    }
    for (int i = 0; i < l->num_local_modes; i++) {
        LayoutMode m = layout_local_modes(l)[i];
        if (m.dim != axis) mode_list_push(&locals, m);
    }
    return layout_build(arena, l->rank, shape, &threads, &locals);
}

/* Renumbers dimensions: dim d becomes d + delta for d >= from. */
static const Layout *layout_shift_dims(Arena *arena, const Layout *l, int rank,
                                       const int64_t *shape, int from, int delta) {
    ModeList threads = {0}, locals = {0};
    for (int i = 0; i < l->num_thread_modes + l->num_local_modes; i++) {
        LayoutMode m = l->modes[i];
        if (!mode_is_replica(m) && m.dim >= from) m.dim += delta;
        mode_list_push(i < l->num_thread_modes ? &threads : &locals, m);
    }
    return layout_build(arena, rank, shape, &threads, &locals);
}

const Layout *layout_squeeze(Arena *arena, const Layout *l, int axis) {
    assert(axis >= 0 && axis < l->rank && l->shape[axis] == 1);
    for (int i = 0; i < l->num_thread_modes + l->num_local_modes; i++)
        assert(l->modes[i].dim != axis);
    int64_t shape[IR_MAX_RANK];
    for (int d = 0, k = 0; d < l->rank; d++)
        if (d != axis) shape[k++] = l->shape[d];
    return layout_shift_dims(arena, l, l->rank - 1, shape, axis + 1, -1);
}

const Layout *layout_expand_dims(Arena *arena, const Layout *l, int axis) {
    assert(axis >= 0 && axis <= l->rank && l->rank < IR_MAX_RANK);
    int64_t shape[IR_MAX_RANK];
    for (int d = 0, k = 0; d <= l->rank; d++) shape[d] = d == axis ? 1 : l->shape[k++];
    return layout_shift_dims(arena, l, l->rank + 1, shape, axis, 1);
}

/* ---- queries ------------------------------------------------------------------------------ */
int64_t layout_numel(const Layout *l) {
    int64_t n = 1;
    for (int d = 0; d < l->rank; d++) n *= l->shape[d];
    return n;
}

/* Adds the digits of `index` (read inner to outer over `modes`) into coord. */
static void map_modes(const LayoutMode *modes, int n, int64_t index, int64_t *coord) {
    for (int i = n - 1; i >= 0; i--) {
        int64_t digit = index % modes[i].size;
        index /= modes[i].size;
        if (!mode_is_replica(modes[i])) coord[modes[i].dim] += digit * modes[i].stride;
    }
}

void layout_map(const Layout *l, int64_t thread, int64_t local, int64_t *coord) {
    assert(thread >= 0 && thread < l->num_threads && local >= 0 && local < l->local_size);
    for (int d = 0; d < l->rank; d++) coord[d] = 0;
    map_modes(layout_thread_modes(l), l->num_thread_modes, thread, coord);
    map_modes(layout_local_modes(l), l->num_local_modes, local, coord);
}

int layout_thread_terms(const Layout *l, LayoutThreadTerm *terms) {
    int64_t radix = 1;
    int n = l->num_thread_modes;
    for (int i = n - 1; i >= 0; i--) {
        const LayoutMode *m = &layout_thread_modes(l)[i];
        terms[i] = (LayoutThreadTerm){.radix = radix, .size = m->size, .stride = m->stride, .dim = m->dim};
        radix *= m->size;
    }
    return n;
}

bool layout_is_exact(const Layout *l) {
    int total = l->num_thread_modes + l->num_local_modes;
    for (int d = 0; d < l->rank; d++) {
        /* The modes along d, sorted by stride, must number [0, shape[d]) in mixed radix. */
        LayoutMode along[2 * MODE_BUFFER];
        int n = 0;
        for (int i = 0; i < total; i++) {
            if (l->modes[i].dim != d) continue;
            int j = n++;
            while (j > 0 && along[j - 1].stride > l->modes[i].stride) {
                along[j] = along[j - 1];
                j--;
            }
            along[j] = l->modes[i];
        }
        int64_t expected = 1;
        for (int i = 0; i < n; i++) {
            if (along[i].stride != expected) return false;
            expected *= along[i].size;
        }
        if (expected != l->shape[d]) return false;
    }
    return true;
}

static int64_t find_index(const LayoutMode *modes, int n, const int64_t *coord) {
    int64_t index = 0;
    for (int i = 0; i < n; i++) {
        int64_t digit = 0;
        if (!mode_is_replica(modes[i])) digit = coord[modes[i].dim] / modes[i].stride % modes[i].size;
        index = index * modes[i].size + digit;
    }
    return index;
}

bool layout_find(const Layout *l, const int64_t *coord, int64_t *thread, int64_t *local) {
    for (int d = 0; d < l->rank; d++)
        if (coord[d] < 0 || coord[d] >= l->shape[d]) return false;
    if (!layout_is_exact(l)) return false;
    *thread = find_index(layout_thread_modes(l), l->num_thread_modes, coord);
    *local = find_index(layout_local_modes(l), l->num_local_modes, coord);
    return true;
}

bool layout_equal(const Layout *a, const Layout *b) {
    if (a == b) return true;
    if (!a || !b || a->hash != b->hash || a->rank != b->rank ||
        a->num_thread_modes != b->num_thread_modes || a->num_local_modes != b->num_local_modes)
        return false;
    for (int d = 0; d < a->rank; d++)
        if (a->shape[d] != b->shape[d]) return false;
    for (int i = 0; i < a->num_thread_modes + a->num_local_modes; i++)
        if (!mode_equal(a->modes[i], b->modes[i])) return false;
    return true;
}

uint64_t layout_hash(const Layout *l) { return l->hash; }

/* ---- printing ----------------------------------------------------------------------------- */
static void print_dims(Strbuf *sb, const char *name, int rank, const int64_t *dims) {
    sb_printf(sb, "%s(", name);
    for (int d = 0; d < rank; d++) sb_printf(sb, "%s%lld", d ? "," : "", (long long)dims[d]);
    sb_putc(sb, ')');
}

/* Can mode `m` be the outermost factor, given that list[k] for k < front[k] are consumed? */
static bool mode_available(const Layout *l, const int *front, LayoutMode m) {
    const LayoutMode *lists[2] = {layout_thread_modes(l), layout_local_modes(l)};
    int lens[2] = {l->num_thread_modes, l->num_local_modes};
    for (int k = 0; k < 2; k++)
        for (int i = front[k]; i < lens[k]; i++)
            if (lists[k][i].dim == m.dim && lists[k][i].stride > m.stride) return false;
    return true;
}

/* Writes `l` as a product of primitives into sb; false if it is not one. */
static bool print_as_product(const Layout *l, Strbuf *sb) {
    if (!layout_is_exact(l)) return false;
    const LayoutMode *lists[2] = {layout_thread_modes(l), layout_local_modes(l)};
    int lens[2] = {l->num_thread_modes, l->num_local_modes};
    int front[2] = {0, 0};
    bool has_rank_factor = false;
    Strbuf factors = {0};
    while (front[0] < lens[0] || front[1] < lens[1]) {
        bool progress = false;
        for (int pass = 0; pass < 2 && !progress; pass++) {
            int k = pass == 0 ? 1 : 0; /* locals first when both could go outermost */
            if (front[k] >= lens[k]) continue;
            const LayoutMode *list = lists[k];
            LayoutMode m = list[front[k]];
            if (mode_is_replica(m)) {
                if (k == 1) continue; /* a local replica has no primitive */
                if (factors.len) sb_puts(&factors, " * ");
                sb_printf(&factors, "replicate(%lld)", (long long)m.size);
                front[k]++;
                progress = true;
                continue;
            }
            if (!mode_available(l, front, m)) continue;
            int64_t dims[IR_MAX_RANK];
            for (int d = 0; d < l->rank; d++) dims[d] = 1;
            dims[m.dim] = m.size;
            int count = 1, direction = 0, last = m.dim;
            while (front[k] + count < lens[k]) {
                LayoutMode next = list[front[k] + count];
                if (mode_is_replica(next) || dims[next.dim] != 1 || !mode_available(l, front, next))
                    break;
                int step = next.dim > last ? 1 : -1;
                if (direction != 0 && step != direction) break;
                direction = step;
                dims[next.dim] = next.size;
                last = next.dim;
                count++;
            }
            const char *names[2][2] = {{"spatial", "column_spatial"}, {"local", "column_local"}};
            if (factors.len) sb_puts(&factors, " * ");
            print_dims(&factors, names[k][direction < 0], l->rank, dims);
            has_rank_factor = true;
            front[k] += count;
            progress = true;
        }
        if (!progress) {
            sb_free(&factors);
            return false;
        }
    }
    if (!has_rank_factor) {
        int64_t ones[IR_MAX_RANK] = {1, 1, 1, 1, 1, 1};
        print_dims(sb, "local", l->rank, ones);
        if (factors.len) sb_puts(sb, " * ");
    }
    sb_puts(sb, sb_str(&factors));
    sb_free(&factors);
    return true;
}

static void print_mode_list(Strbuf *sb, const LayoutMode *modes, int n) {
    sb_putc(sb, '[');
    for (int i = 0; i < n; i++) {
        if (i) sb_puts(sb, ", ");
        if (mode_is_replica(modes[i])) sb_printf(sb, "%lld:r", (long long)modes[i].size);
        else
            sb_printf(sb, "%lld:%d/%lld", (long long)modes[i].size, modes[i].dim,
                      (long long)modes[i].stride);
    }
    sb_putc(sb, ']');
}

void layout_print(const Layout *l, Strbuf *sb) {
    if (print_as_product(l, sb)) return;
    sb_puts(sb, "layout([");
    for (int d = 0; d < l->rank; d++) sb_printf(sb, "%s%lld", d ? "," : "", (long long)l->shape[d]);
    sb_puts(sb, "], threads=");
    print_mode_list(sb, layout_thread_modes(l), l->num_thread_modes);
    sb_puts(sb, ", locals=");
    print_mode_list(sb, layout_local_modes(l), l->num_local_modes);
    sb_putc(sb, ')');
}

/* ---- parsing ------------------------------------------------------------------------------ */
typedef enum { FACTOR_LOCAL, FACTOR_COLUMN_LOCAL, FACTOR_SPATIAL, FACTOR_COLUMN_SPATIAL,
               FACTOR_REPLICATE } FactorKind;

/* The largest size, stride or shape a parsed layout may contain: keeps products far from
 * overflowing int64. */
enum { PARSE_MAX_VALUE = 1 << 24 };
#define PARSE_MAX_ELEMENTS ((int64_t)1 << 40)

typedef struct Factor {
    FactorKind kind;
    int count;
    int64_t values[IR_MAX_RANK];
} Factor;

static const char *skip_space(const char *p) {
    while (isspace((unsigned char)*p)) p++;
    return p;
}

/* Parses `name(v, ...)`; returns the position after it or NULL. */
static const char *parse_factor(const char *p, Factor *f) {
    static const struct { const char *name; FactorKind kind; } names[] = {
        {"column_spatial", FACTOR_COLUMN_SPATIAL}, {"column_local", FACTOR_COLUMN_LOCAL},
        {"spatial", FACTOR_SPATIAL}, {"local", FACTOR_LOCAL}, {"replicate", FACTOR_REPLICATE},
    };
    size_t len = 0;
    while (isalnum((unsigned char)p[len]) || p[len] == '_') len++;
    size_t i = 0;
    for (; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i].name) == len && strncmp(p, names[i].name, len) == 0) break;
    if (i == sizeof names / sizeof names[0]) return NULL;
    f->kind = names[i].kind;
    f->count = 0;
    p = skip_space(p + len);
    if (*p++ != '(') return NULL;
    p = skip_space(p);
    if (*p == ')') return p + 1;
    for (;;) {
        if (!isdigit((unsigned char)*p) || f->count == IR_MAX_RANK) return NULL;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (v < 1) return NULL;
        f->values[f->count++] = v;
        p = skip_space(end);
        if (*p == ')') return p + 1;
        if (*p++ != ',') return NULL;
        p = skip_space(p);
    }
}

/* Reads "[v, ...]" of at most max integers >= min (at most PARSE_MAX_VALUE); NULL if malformed. */
static const char *parse_int_list(const char *p, char open, char close, int64_t min, int max,
                                  int64_t *values, int *count) {
    p = skip_space(p);
    if (*p++ != open) return NULL;
    *count = 0;
    p = skip_space(p);
    if (*p == close) return p + 1;
    for (;;) {
        if (!isdigit((unsigned char)*p) || *count == max) return NULL;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (v < min || v > PARSE_MAX_VALUE) return NULL;
        values[(*count)++] = v;
        p = skip_space(end);
        if (*p == close) return p + 1;
        if (*p++ != ',') return NULL;
        p = skip_space(p);
    }
}

/* Reads one mode list of the general form: `[size:dim/stride, size:r, ...]`. */
static const char *parse_mode_list(const char *p, int rank, LayoutMode *modes, int *count) {
    p = skip_space(p);
    if (*p++ != '[') return NULL;
    *count = 0;
    p = skip_space(p);
    if (*p == ']') return p + 1;
    for (;;) {
        if (*count == MODE_BUFFER - 1 || !isdigit((unsigned char)*p)) return NULL;
        char *end;
        LayoutMode m = {.size = strtoll(p, &end, 10)};
        if (m.size < 1 || m.size > PARSE_MAX_VALUE || *end != ':') return NULL;
        p = end + 1;
        if (*p == 'r') {
            m.dim = LAYOUT_REPLICA;
            p++;
        } else {
            if (!isdigit((unsigned char)*p)) return NULL;
            long long dim = strtoll(p, &end, 10);
            if (dim >= rank || *end != '/' || !isdigit((unsigned char)end[1])) return NULL;
            m.dim = (int)dim;
            m.stride = strtoll(end + 1, &end, 10);
            if (m.stride > PARSE_MAX_VALUE) return NULL;
            p = end;
        }
        modes[(*count)++] = m;
        p = skip_space(p);
        if (*p == ']') return p + 1;
        if (*p++ != ',') return NULL;
        p = skip_space(p);
    }
}

/* The general form `layout([shape], threads=[modes], locals=[modes])` that layout_print writes
 * for a layout that is not a product of primitives. */
static bool parse_general(Arena *arena, const char *p, const Layout **out, const char **end) {
    int64_t shape[IR_MAX_RANK];
    LayoutMode threads[MODE_BUFFER], locals[MODE_BUFFER];
    int rank, nthreads, nlocals;
    p = skip_space(p + strlen("layout"));
    if (*p++ != '(' || !(p = parse_int_list(p, '[', ']', 1, IR_MAX_RANK, shape, &rank))) return false;
    p = skip_space(p);
    if (strncmp(p, ",", 1) != 0) return false;
    p = skip_space(p + 1);
    if (strncmp(p, "threads=", 8) != 0 || !(p = parse_mode_list(p + 8, rank, threads, &nthreads))) return false;
    p = skip_space(p);
    if (*p++ != ',') return false;
    p = skip_space(p);
    if (strncmp(p, "locals=", 7) != 0 || !(p = parse_mode_list(p + 7, rank, locals, &nlocals))) return false;
    p = skip_space(p);
    if (*p++ != ')') return false;
    int64_t elements = 1;
    for (int i = 0; i < nthreads + nlocals; i++) {
        const LayoutMode *m = i < nthreads ? &threads[i] : &locals[i - nthreads];
        if (i >= nthreads && m->dim == LAYOUT_REPLICA) return false; /* replicas are thread modes */
        if (m->size > PARSE_MAX_ELEMENTS / elements) return false;
        elements *= m->size;
    }
    *out = layout_from_modes(arena, rank, shape, nthreads, threads, nlocals, locals);
    if (end) *end = p;
    return true;
}

bool layout_parse(Arena *arena, const char *text, const Layout **out, const char **end) {
    enum { MAX_FACTORS = 64 };
    Factor factors[MAX_FACTORS];
    int n = 0, rank = -1, modes = 0;
    int64_t elements = 1; /* product of every size read */
    const char *p = skip_space(text);
    if (strncmp(p, "layout", 6) == 0 && skip_space(p + 6)[0] == '(') return parse_general(arena, p, out, end);
    for (;;) {
        if (n == MAX_FACTORS || !(p = parse_factor(p, &factors[n]))) return false;
        if (factors[n].kind == FACTOR_REPLICATE) {
            if (factors[n].count != 1) return false;
        } else {
            if (rank >= 0 && factors[n].count != rank) return false;
            rank = factors[n].count;
        }
        /* Text from outside (an .ir file) must not overflow the sizes or the mode lists. */
        modes += factors[n].count;
        for (int i = 0; i < factors[n].count; i++) {
            int64_t v = factors[n].values[i];
            if (v > PARSE_MAX_VALUE || v > PARSE_MAX_ELEMENTS / elements) return false;
            elements *= v;
        }
        if (modes >= MODE_BUFFER / 2) return false;
        n++;
        const char *q = skip_space(p);
        if (*q != '*') break;
        p = skip_space(q + 1);
    }
    if (rank < 0) return false;
    const Layout *result = NULL;
    for (int i = 0; i < n; i++) {
        const Factor *f = &factors[i];
        const Layout *g = NULL;
        switch (f->kind) {
        case FACTOR_LOCAL: g = layout_local(arena, rank, f->values); break;
        case FACTOR_COLUMN_LOCAL: g = layout_column_local(arena, rank, f->values); break;
        case FACTOR_SPATIAL: g = layout_spatial(arena, rank, f->values); break;
        case FACTOR_COLUMN_SPATIAL: g = layout_column_spatial(arena, rank, f->values); break;
        case FACTOR_REPLICATE: g = layout_replicate(arena, rank, f->values[0]); break;
        }
        result = result ? layout_product(arena, result, g) : g;
    }
    *out = result;
    if (end) *end = p;
    return true;
}

/* ---- interning ---------------------------------------------------------------------------- */
const Layout *layout_intern(LayoutTable *t, const Layout *l) {
    if (2 * (t->len + 1) > t->cap) {
        LayoutTable grown = {.cap = t->cap ? 2 * t->cap : 16};
        grown.slots = xcalloc(grown.cap, sizeof *grown.slots);
        for (size_t i = 0; i < t->cap; i++)
            if (t->slots[i]) layout_intern(&grown, t->slots[i]);
        free(t->slots);
        *t = grown;
    }
    size_t mask = t->cap - 1;
    for (size_t i = l->hash & mask;; i = (i + 1) & mask) {
        if (!t->slots[i]) {
            t->slots[i] = l;
            t->len++;
            return l;
        }
        if (layout_equal(t->slots[i], l)) return t->slots[i];
    }
}

void layout_table_free(LayoutTable *t) {
    free(t->slots);
    *t = (LayoutTable){0};
}

/* ---- shared-memory layouts ---------------------------------------------------------------- */
int64_t swizzle_apply(Swizzle s, int64_t offset) {
    if (s.bits == 0) return offset;
    int64_t mask = ((int64_t)1 << s.bits) - 1;
    return offset ^ (((offset >> (s.base + s.shift)) & mask) << s.base);
}

Swizzle swizzle_for_rows(int64_t row_bytes, int elem_bytes) {
    int log_elem = 0;
    while ((1 << log_elem) < elem_bytes) log_elem++;
    assert((1 << log_elem) == elem_bytes && log_elem <= 4);
    int bits = row_bytes >= 128 ? 3 : row_bytes >= 64 ? 2 : row_bytes >= 32 ? 1 : 0;
    if (bits == 0) return (Swizzle){0, 0, 0};
    return (Swizzle){.bits = bits, .base = 4 - log_elem, .shift = 3};
}

Swizzle swizzle_for_ldmatrix(int64_t row_elems, int elem_bytes) {
    int base = 0, log_c = 0;
    while ((1 << base) * elem_bytes < 16) base++;     /* elements per 16-byte chunk: 2^base */
    while (((int64_t)1 << log_c) < row_elems) log_c++;
    int log_chunks = log_c - base;                     /* chunks per row: 2^log_chunks */
    if (log_chunks <= 0 || ((int64_t)1 << log_c) != row_elems) return (Swizzle){0, 0, 0};
    int bits = log_chunks >= 3 ? 3 : log_chunks;
    /* the row bits XORed in start at bit log_c (row % 8) or above (row / 2, row / 4) */
    int from = log_c + (3 - bits);
    return (Swizzle){.bits = bits, .base = base, .shift = from - base};
}

const SharedLayout *shared_layout_strided(Arena *a, int rank, const int64_t *shape,
                                          const int64_t *strides) {
    assert(rank >= 0 && rank <= IR_MAX_RANK);
    SharedLayout *l = ARENA_NEW(a, SharedLayout);
    l->rank = rank;
    l->size = 1;
    for (int d = 0; d < rank; d++) {
        assert(shape[d] >= 1 && strides[d] >= 0);
        l->shape[d] = shape[d];
        l->strides[d] = strides[d];
        l->size += (shape[d] - 1) * strides[d];
    }
    return l;
}

const SharedLayout *shared_layout_row_major(Arena *a, int rank, const int64_t *shape) {
    int64_t strides[IR_MAX_RANK], s = 1;
    for (int d = rank - 1; d >= 0; d--) strides[d] = s, s *= shape[d];
    return shared_layout_strided(a, rank, shape, strides);
}

const SharedLayout *shared_layout_column_major(Arena *a, int rank, const int64_t *shape) {
    int64_t strides[IR_MAX_RANK], s = 1;
    for (int d = 0; d < rank; d++) strides[d] = s, s *= shape[d];
    return shared_layout_strided(a, rank, shape, strides);
}

const SharedLayout *shared_layout_with_swizzle(Arena *a, const SharedLayout *l, Swizzle s) {
    assert(s.bits >= 0 && s.base >= 0 && s.shift >= s.bits);
    SharedLayout *copy = ARENA_NEW(a, SharedLayout);
    *copy = *l;
    copy->swizzle = s.bits ? s : (Swizzle){0, 0, 0};
    return copy;
}

/* The span of dimension d: (extent within a block - 1) * stride + (blocks - 1) * block stride. */
static int64_t dim_span(const SharedLayout *l, int d) {
    int64_t n = l->shape[d], b = l->split[d];
    if (!b) return (n - 1) * l->strides[d];
    return (b - 1) * l->strides[d] + (n / b - 1) * l->split_strides[d];
}

static void update_size(SharedLayout *l) {
    l->size = 1;
    for (int d = 0; d < l->rank; d++) l->size += dim_span(l, d);
}

const SharedLayout *shared_layout_split(Arena *a, const SharedLayout *l, int d, int64_t block, int64_t stride) {
    assert(d >= 0 && d < l->rank && block >= 1 && l->shape[d] % block == 0 && stride >= 0);
    SharedLayout *copy = ARENA_NEW(a, SharedLayout);
    *copy = *l;
    copy->split[d] = block < l->shape[d] ? block : 0;
    copy->split_strides[d] = block < l->shape[d] ? stride : 0;
    update_size(copy);
    return copy;
}

bool shared_layout_has_split(const SharedLayout *l) {
    for (int d = 0; l && d < l->rank; d++)
        if (l->split[d]) return true;
    return false;
}

bool shared_layout_is_wgmma(const SharedLayout *l, int c) { return shared_layout_is_wgmma_of(l, c, 2); }

bool shared_layout_is_wgmma_of(const SharedLayout *l, int c, int elem_bytes) {
    int r = 1 - c;
    if (elem_bytes != 1 && elem_bytes != 2) return false;
    int64_t row = 128 / elem_bytes; /* elements in a 128-byte row */
    if (!l || l->rank != 2 || (c != 0 && c != 1) || l->strides[c] != 1 || l->strides[r] != row || l->split[r] ||
        l->shape[c] % row != 0 || l->split[c] != (l->shape[c] > row ? row : 0))
        return false;
    /* the 128-byte swizzle in elements: 16-byte chunks (2^base elements) XORed with row % 8 */
    return l->swizzle.bits == 3 && l->swizzle.base == (elem_bytes == 2 ? 3 : 4) && l->swizzle.shift == 3;
}

int64_t shared_layout_linear(const SharedLayout *l, const int64_t *coord) {
    int64_t offset = 0;
    for (int d = 0; d < l->rank; d++) {
        assert(coord[d] >= 0 && coord[d] < l->shape[d]);
        int64_t b = l->split[d];
        offset += b ? (coord[d] % b) * l->strides[d] + (coord[d] / b) * l->split_strides[d] : coord[d] * l->strides[d];
    }
    return offset;
}

int64_t shared_layout_offset(const SharedLayout *l, const int64_t *coord) {
    return swizzle_apply(l->swizzle, shared_layout_linear(l, coord));
}

bool shared_layout_equal(const SharedLayout *a, const SharedLayout *b) {
    if (a == b) return true;
    if (!a || !b || a->rank != b->rank || a->swizzle.bits != b->swizzle.bits ||
        a->swizzle.base != b->swizzle.base || a->swizzle.shift != b->swizzle.shift)
        return false;
    for (int d = 0; d < a->rank; d++)
        if (a->shape[d] != b->shape[d] || a->strides[d] != b->strides[d] || a->split[d] != b->split[d] ||
            a->split_strides[d] != b->split_strides[d])
            return false;
    return true;
}

uint64_t shared_layout_hash(const SharedLayout *l) {
    uint64_t h = hash_i64(0x51ed270b27d5f3a1ull, l->rank);
    for (int d = 0; d < l->rank; d++) h = hash_i64(hash_i64(h, l->shape[d]), l->strides[d]);
    for (int d = 0; d < l->rank; d++)
        if (l->split[d]) h = hash_i64(hash_i64(hash_i64(h, d), l->split[d]), l->split_strides[d]);
    h = hash_i64(h, l->swizzle.bits);
    h = hash_i64(h, l->swizzle.base);
    return hash_i64(h, l->swizzle.shift);
}

void shared_layout_print(const SharedLayout *l, Strbuf *sb) {
    bool row = true, column = true;
    int64_t r = 1, c = 1;
    for (int d = l->rank - 1; d >= 0; d--) {
        if (l->strides[d] != r) row = false;
        r *= l->shape[d];
    }
    for (int d = 0; d < l->rank; d++) {
        if (l->strides[d] != c) column = false;
        c *= l->shape[d];
    }
    if (row || column) {
        print_dims(sb, row ? "row_major" : "column_major", l->rank, l->shape);
    } else {
        sb_puts(sb, "strided(");
        print_dims(sb, "", l->rank, l->shape);
        sb_puts(sb, ", ");
        print_dims(sb, "", l->rank, l->strides);
        sb_putc(sb, ')');
    }
    for (int d = 0; d < l->rank; d++)
        if (l->split[d]) sb_printf(sb, " split(%d,%lld,%lld)", d, (long long)l->split[d], (long long)l->split_strides[d]);
    if (l->swizzle.bits)
        sb_printf(sb, " ^ swizzle(%d,%d,%d)", l->swizzle.bits, l->swizzle.base, l->swizzle.shift);
}

bool shared_layout_parse(Arena *arena, const char *text, const SharedLayout **out, const char **end) {
    int64_t shape[IR_MAX_RANK], strides[IR_MAX_RANK];
    int rank, nstrides;
    const char *p = skip_space(text);
    const SharedLayout *l;
    bool row = strncmp(p, "row_major", 9) == 0, column = strncmp(p, "column_major", 12) == 0;
    if (row || column) {
        if (!(p = parse_int_list(p + (row ? 9 : 12), '(', ')', 1, IR_MAX_RANK, shape, &rank))) return false;
        l = row ? shared_layout_row_major(arena, rank, shape) : shared_layout_column_major(arena, rank, shape);
    } else if (strncmp(p, "strided", 7) == 0) {
        p = skip_space(p + 7);
        if (*p++ != '(' || !(p = parse_int_list(p, '(', ')', 1, IR_MAX_RANK, shape, &rank))) return false;
        p = skip_space(p);
        if (*p++ != ',' || !(p = parse_int_list(p, '(', ')', 0, IR_MAX_RANK, strides, &nstrides)) ||
            nstrides != rank)
            return false;
        p = skip_space(p);
        if (*p++ != ')') return false;
        l = shared_layout_strided(arena, rank, shape, strides);
    } else {
        return false;
    }
    const char *q = skip_space(p);
    while (strncmp(q, "split", 5) == 0) {
        int64_t s[3];
        int ns;
        if (!(q = parse_int_list(q + 5, '(', ')', 0, 3, s, &ns)) || ns != 3 || s[0] < 0 || s[0] >= l->rank ||
            s[1] < 1 || s[1] >= l->shape[s[0]] || l->shape[s[0]] % s[1] != 0 || s[2] < 0 || l->split[s[0]])
            return false;
        l = shared_layout_split(arena, l, (int)s[0], s[1], s[2]);
        p = q;
        q = skip_space(q);
    }
    if (*q == '^') {
        q = skip_space(q + 1);
        int64_t s[3];
        int ns;
        if (strncmp(q, "swizzle", 7) != 0 || !(q = parse_int_list(q + 7, '(', ')', 0, 3, s, &ns)) || ns != 3 ||
            s[0] < 1 || s[0] > 16 || s[1] > 24 || s[2] > 24 || s[2] < s[0])
            return false;
        l = shared_layout_with_swizzle(arena, l, (Swizzle){(int)s[0], (int)s[1], (int)s[2]});
        p = q;
    }
    *out = l;
    if (end) *end = p;
    return true;
}
