/*
 * vm_cluster.c: thread-block clusters on the VM (kernels with `cluster N`, passes/cluster.c).
 *
 * The VM runs the blocks of a cluster like any others: one at a time, on any worker, in any order.
 * A multicast copy_tma is semantically each block of the cluster copying the same box into its
 * own stage, which is what exec_copy_tma does for every copy, so the values need nothing more.
 * What the VM checks is the protocol the GPU relies on and cannot check itself:
 *   - a multicast (its bool true) needs a launch with clusters: the grid's x a multiple of N
 *     (cluster_size is the launch's N, or 1 without clusters: the flag the pass computes);
 *   - an mbarrier_arrive with `cluster N` needs a launch with clusters of N; it is N arrivals on
 *     the block's own mbarrier (the peers, running the same code, arrive on it at the same point);
 *   - a multicast that refills a stage comes after a cluster barrier, or a wait on the stage of
 *     another ring (the empty ring) that saw an arrival across the cluster, made after the block's
 *     latest wait on the stage (the peer, running the same code, waited there too and released
 *     the stage at that barrier or arrival; on the GPU the copy would overwrite a stage the peer
 *     still reads);
 *   - the blocks of a cluster issue the same multicast copies in the same order (the same tensor,
 *     origins, box and stage), since each issues only its share of every box: each block keeps a
 *     digest of its multicast copies and a count of them, of its cluster barriers and of its
 *     arrivals across the cluster, and when the
 *     last block of a cluster ends, every block's record must equal the first's (a mismatch on
 *     the GPU is a stage with a peer's tile, or a cluster barrier that never completes).
 * A cluster barrier is a block barrier for the race checks (the block's accesses before it are
 * ordered before those after it).
 */
#include "vm.h"

#include <inttypes.h>
#include <string.h>

struct VmClusters {
    pthread_mutex_t lock;
    int64_t per_x;            /* clusters along x */
    VmClusterTrace *traces;   /* one per block, by linear block index (x fastest) */
    int64_t *done;            /* blocks ended, per cluster */
};

void vm_cluster_launch_begin(VmLaunch *L) {
    int64_t n = L->kernel->cluster;
    L->cluster = n > 1 && L->grid[0] % n == 0 ? n : 1;
    L->clusters = NULL;
    if (L->cluster == 1) return;
    int64_t blocks = L->grid[0] * L->grid[1] * L->grid[2];
    VmClusters *c = xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    c->per_x = L->grid[0] / n;
    c->traces = xcalloc((size_t)(blocks ? blocks : 1), sizeof *c->traces);
    c->done = xcalloc((size_t)(blocks / n + 1), sizeof *c->done);
    L->clusters = c;
}

void vm_cluster_launch_end(VmLaunch *L) {
    VmClusters *c = L->clusters;
    if (!c) return;
    pthread_mutex_destroy(&c->lock);
    free(c->traces);
    free(c->done);
    free(c);
    L->clusters = NULL;
}

static uint64_t mix(uint64_t h, int64_t v) {
    for (int i = 0; i < 8; i++) h = (h ^ (uint8_t)((uint64_t)v >> (8 * i))) * 0x100000001b3ull;
    return h;
}

void vm_cluster_block_begin(VmThread *th) {
    th->cluster_trace = (VmClusterTrace){0};
    memset(&th->cluster_waits, 0, sizeof th->cluster_waits);
}

/* The block's record of ring (a new one when there is room; NULL when not), stage in range. */
static VmClusterRing *ring_record(VmThread *th, const VmTile *ring, int64_t stage) {
    if (stage < 0 || stage >= VM_CLUSTER_STAGES) return NULL;
    VmClusterWaits *w = &th->cluster_waits;
    for (int i = 0; i < VM_CLUSTER_RINGS; i++) {
        if (w->rings[i].ring == ring) return &w->rings[i];
        if (!w->rings[i].ring) {
            w->rings[i].ring = ring;
            return &w->rings[i];
        }
    }
    return NULL;
}

void vm_cluster_waited(VmThread *th, const VmTile *ring, int64_t stage) {
    VmClusterRing *r = ring_record(th, ring, stage);
    if (!r) return;
    r->waited[stage] = ++th->cluster_waits.seq;
    /* each arrival across the cluster completes a phase on the VM (it stands for the arrivals of
       every block of the cluster, which run the same code), so the wait saw the latest one */
    if (r->arrived[stage]) r->released[stage] = r->arrived[stage];
}

bool vm_cluster_arrive(VmThread *th, const IrOp *op, const VmTile *ring, int64_t stage) {
    const VmLaunch *L = th->launch;
    int64_t n = ir_mbarrier_arrive_cluster(op);
    if (L->cluster != n)
        return vm_error(th, op, "an arrival across a cluster of %" PRId64 " in a launch %s", n,
                        L->cluster == 1 ? "without clusters" : "with clusters of another size");
    th->cluster_trace.arrives++;
    VmClusterRing *r = ring_record(th, ring, stage);
    if (r) r->arrived[stage] = ++th->cluster_waits.seq;
    return true;
}

/* Whether the block released stage (of the ring copies fill) to its peer since its latest wait on
 * it: a cluster barrier since, or a wait on another ring's stage that saw an arrival across the
 * cluster made since (the peer, running the same code, made its own there too). */
static bool stage_released(const VmThread *th, const VmTile *ring, int64_t stage) {
    const VmClusterWaits *w = &th->cluster_waits;
    if (stage < 0 || stage >= VM_CLUSTER_STAGES) return true;
    int64_t waited = 0;
    for (int i = 0; i < VM_CLUSTER_RINGS; i++)
        if (w->rings[i].ring == ring) waited = w->rings[i].waited[stage];
    if (!waited || w->barrier > waited) return true;
    for (int i = 0; i < VM_CLUSTER_RINGS; i++)
        if (w->rings[i].ring && w->rings[i].ring != ring && w->rings[i].released[stage] > waited) return true;
    return false;
}

bool vm_cluster_copy(VmThread *th, VmFrame *fr, const IrOp *op, const VmTensor *t, const int64_t *origin,
                     int64_t offset, int64_t numel, const VmTile *ring, int64_t stage) {
    uint32_t flag = op->noperands - 1;
    const VmTile *f = vm_operand_tile(th, fr, op, flag);
    if (!f) return false;
    if (!f->data[0].i) return true; /* a plain copy */
    const VmLaunch *L = th->launch;
    if (L->cluster == 1)
        return vm_error(th, op, "a multicast in a launch without clusters (the grid's x, %" PRId64
                        ", is not a multiple of %" PRId64 ")", L->grid[0], ir_copy_tma_multicast(op));
    VmClusterTrace *tr = &th->cluster_trace;
    /* a refill: the peer read this stage too, and releases it only by a cluster barrier, or an
       arrival on our empty mbarrier of the stage, after its wait on the stage */
    if (!stage_released(th, ring, stage))
        return vm_error(th, op, "multicasts into stage %" PRId64 " with no cluster barrier, nor a wait on an arrival "
                        "across the cluster, since the wait on it (the peer block may still read the stage)", stage);
    uint64_t h = tr->copies ? tr->digest : 0xcbf29ce484222325ull;
    h = mix(h, (int64_t)(intptr_t)t->data);
    for (int d = 0; d < t->rank; d++) h = mix(h, origin[d]);
    h = mix(mix(mix(h, offset), numel), stage);
    tr->digest = h;
    tr->copies++;
    return true;
}

bool vm_exec_cluster_size(VmThread *th, VmFrame *fr, const IrOp *op) {
    VmTile *r = vm_result_tile(th, fr, op, 0);
    if (!r) return false;
    r->data[0].i = th->launch->cluster;
    return true;
}

bool vm_exec_cluster_barrier(VmThread *th, VmFrame *fr, const IrOp *op) {
    (void)fr, (void)op;
    th->epoch++; /* a block barrier too */
    th->cluster_trace.barriers++;
    th->cluster_waits.barrier = ++th->cluster_waits.seq;
    return true;
}

/* The linear index of block (x, y, z) and its cluster's. */
static int64_t block_index(const VmLaunch *L, int64_t x, int64_t y, int64_t z) {
    return (z * L->grid[1] + y) * L->grid[0] + x;
}

bool vm_cluster_block_done(VmThread *th) {
    const VmLaunch *L = th->launch;
    VmClusters *c = L->clusters;
    if (!c) return true;
    int64_t n = L->cluster, x0 = th->block[0] - th->block[0] % n;
    int64_t cluster = (th->block[2] * L->grid[1] + th->block[1]) * c->per_x + th->block[0] / n;
    pthread_mutex_lock(&c->lock);
    c->traces[block_index(L, th->block[0], th->block[1], th->block[2])] = th->cluster_trace;
    bool last = ++c->done[cluster] == n;
    pthread_mutex_unlock(&c->lock);
    if (!last) return true;
    /* every block of the cluster has ended: their records are final (the lock ordered them) */
    pthread_mutex_lock(&c->lock);
    const VmClusterTrace *first = &c->traces[block_index(L, x0, th->block[1], th->block[2])];
    int64_t bad = -1;
    for (int64_t r = 1; r < n && bad < 0; r++) {
        const VmClusterTrace *t = &c->traces[block_index(L, x0 + r, th->block[1], th->block[2])];
        if (t->copies != first->copies || t->barriers != first->barriers || t->arrives != first->arrives ||
            t->digest != first->digest)
            bad = r;
    }
    VmClusterTrace a = *first, b = bad >= 0 ? c->traces[block_index(L, x0 + bad, th->block[1], th->block[2])] : a;
    pthread_mutex_unlock(&c->lock);
    if (bad < 0) return true;
    th->failed = true;
    sb_printf(&th->err, "the blocks of its cluster (x %" PRId64 " to %" PRId64 ") disagree: block x %" PRId64
              " made %" PRId64 " multicast copies (digest %016" PRIx64 "), %" PRId64 " cluster barriers and %" PRId64
              " arrivals across the cluster, block x %" PRId64 " made %" PRId64 " (digest %016" PRIx64 "), %" PRId64
              " and %" PRId64 " (on the GPU a stage would get "
              "another block's tile, or a cluster barrier would never complete)",
              x0, x0 + n - 1, x0, a.copies, a.digest, a.barriers, a.arrives, x0 + bad, b.copies, b.digest, b.barriers, b.arrives);
    return false;
}
