/*
 * vm_roles.c: warp roles (warp_roles) on the VM, with real blocking on mbarriers.
 *
 * Each role of a warp_roles op runs its region as its own worker: a thread per role, of which
 * exactly one runs at any time, so the run is deterministic and the block's state (the frame,
 * the copies in flight, the race records) needs no lock of its own. A baton (`turn`, under one
 * mutex) passes between the block's thread, which schedules, and the roles: round-robin in role
 * order, each running until it blocks on an mbarrier_wait whose phase has not completed or until
 * it finishes. A role never yields anywhere else, so every change of the mbarriers that another
 * role can see happens between the start of a role or a wait that returned and its next block.
 * The scheduler therefore knows a deadlock exactly: a whole round in which no unfinished role
 * started, got past a wait or finished means that every one of them waits for a phase that only
 * another waiting role could complete. The error then names, per role, the mbarrier (its ring by
 * place, the stage) and the parity it waits on.
 *
 * The roles share the kernel's frame: each value id belongs to one role's region. Each role keeps
 * its own nesting depth, swapped in when it takes the turn. An error in a role (or a deadlock, or
 * a cancellation) ends the others: they are woken with `abort` set, their waits fail, and they
 * unwind without a message of their own (the first error of the block is kept).
 */
#include "vm.h"

#include <inttypes.h>
#include <string.h>

typedef struct VmRole {
    struct VmRoleRun *run;
    uint32_t index;
    pthread_t thread;
    bool created, done, ok;
    bool progressed;          /* started, got past a wait or finished since it last took the turn */
    int depth;                /* its nesting depth while it does not run */
    const IrOp *waits_at;     /* the mbarrier_wait it blocks on, while it does */
    int64_t stage, parity;
} VmRole;

struct VmRoleRun {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int turn;                 /* the role that runs; -1: the scheduler */
    bool abort;
    VmThread *th;
    VmFrame *fr;
    const IrOp *op;
    uint32_t n;
    VmRole role[IR_MAX_ROLES];
};

/* Hands the turn to `to` and waits until it comes back to `self`; false when the run is being
 * ended (the turn comes back then too, one role at a time, so that the roles unwind in turn). */
static bool pass_turn(VmRoleRun *run, int to, int self) {
    pthread_mutex_lock(&run->lock);
    run->turn = to;
    pthread_cond_broadcast(&run->changed);
    while (run->turn != self) pthread_cond_wait(&run->changed, &run->lock);
    bool abort = run->abort;
    pthread_mutex_unlock(&run->lock);
    return !abort;
}

static void *role_main(void *arg) {
    VmRole *me = arg;
    VmRoleRun *run = me->run;
    int self = (int)me->index;
    pthread_mutex_lock(&run->lock);
    while (run->turn != self) pthread_cond_wait(&run->changed, &run->lock);
    bool start = !run->abort;
    pthread_mutex_unlock(&run->lock);
    bool ok = false;
    if (start) {
        VmThread *th = run->th;
        th->role = self;
        th->depth = me->depth;
        me->progressed = true;
        const IrOp *term;
        ok = vm_exec_region(th, run->fr, run->op, run->op->regions[me->index], NULL, 0, &term);
    }
    pthread_mutex_lock(&run->lock);
    me->done = true;
    me->ok = ok;
    me->progressed = true;
    if (run->turn == self) run->turn = -1;
    pthread_cond_broadcast(&run->changed);
    pthread_mutex_unlock(&run->lock);
    return NULL;
}

bool vm_role_block(VmThread *th, const IrOp *op, int64_t stage, int64_t parity) {
    VmRoleRun *run = th->roles;
    int self = th->role;
    VmRole *me = &run->role[self];
    me->waits_at = op;
    me->stage = stage;
    me->parity = parity;
    me->depth = th->depth;
    bool ok = pass_turn(run, -1, self);
    th->role = self;
    th->depth = me->depth;
    return ok;
}

void vm_role_passed(VmThread *th) {
    VmRole *me = &th->roles->role[th->role];
    me->waits_at = NULL;
    me->progressed = true;
    /* the wait orders what the arriving roles did before it: shared-memory accesses on either side
       no longer conflict (the race records know barriers only, so this is one for the block) */
    th->epoch++;
}

/* "place" of an op for the messages: file:line:col, or the op's name when it has no place. */
static void describe_place(Strbuf *sb, const IrOp *op) {
    if (op && op->loc.file) sb_printf(sb, "%s:%u:%u", op->loc.file->name, op->loc.line, op->loc.col);
    else sb_printf(sb, "an op without a place");
}

/* The deadlock error: what each role waits on. */
static bool deadlock(VmRoleRun *run) {
    Strbuf msg = {0};
    for (uint32_t k = 0; k < run->n; k++) {
        const VmRole *r = &run->role[k];
        sb_printf(&msg, "%srole %u ", k ? "; " : "", (unsigned)k);
        if (r->done) {
            sb_puts(&msg, "has finished");
            continue;
        }
        const IrValue *ring = r->waits_at->operands[0];
        sb_printf(&msg, "waits on mbarrier %" PRId64 " of the ring at ", r->stage);
        describe_place(&msg, ring->def);
        sb_printf(&msg, " for parity %" PRId64 " (the wait at ", r->parity);
        describe_place(&msg, r->waits_at);
        sb_putc(&msg, ')');
    }
    vm_error(run->th, run->op, "deadlock: every unfinished warp role waits for a phase that no other role will "
             "complete: %s", sb_str(&msg));
    sb_free(&msg);
    return false;
}

/* Runs the roles to their ends, round-robin (see the top of the file). */
static bool schedule(VmRoleRun *run) {
    for (;;) {
        bool progress = false, all_done = true;
        for (uint32_t k = 0; k < run->n; k++) {
            VmRole *r = &run->role[k];
            if (r->done) continue;
            r->progressed = false;
            pass_turn(run, (int)k, -1);
            if (r->done && !r->ok) return false;
            progress |= r->progressed;
            all_done &= r->done;
        }
        if (all_done) return true;
        if (!progress) return deadlock(run);
    }
}

bool vm_exec_warp_roles(VmThread *th, VmFrame *fr, const IrOp *op) {
    if (th->roles) return vm_error(th, op, "warp roles do not nest");
    if (op->nregions < 1 || op->nregions > IR_MAX_ROLES || op->nints != 2 * op->nregions)
        return vm_error(th, op, "needs 1 to %d roles, each with its warps and registers", IR_MAX_ROLES);
    VmRoleRun run = {.turn = -1, .th = th, .fr = fr, .op = op, .n = op->nregions};
    pthread_mutex_init(&run.lock, NULL);
    pthread_cond_init(&run.changed, NULL);
    int depth = th->depth;
    th->roles = &run;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, (size_t)16 << 20); /* as the VM's workers: deep programs recurse */
    bool ok = true;
    for (uint32_t k = 0; k < run.n && ok; k++) {
        run.role[k] = (VmRole){.run = &run, .index = k, .depth = depth};
        run.role[k].created = pthread_create(&run.role[k].thread, &attr, role_main, &run.role[k]) == 0;
        if (!run.role[k].created) ok = vm_error(th, op, "cannot start a thread for warp role %u", (unsigned)k);
    }
    pthread_attr_destroy(&attr);
    if (ok) ok = schedule(&run);
    /* the roles that have not finished end one at a time: each takes the turn, finds the run
       ended and unwinds (a wait fails, a role not started does not start) */
    pthread_mutex_lock(&run.lock);
    run.abort = true;
    pthread_mutex_unlock(&run.lock);
    for (uint32_t k = 0; k < run.n; k++) {
        if (!run.role[k].created) continue;
        if (!run.role[k].done) pass_turn(&run, (int)k, -1);
        pthread_join(run.role[k].thread, NULL);
    }
    pthread_cond_destroy(&run.changed);
    pthread_mutex_destroy(&run.lock);
    th->roles = NULL;
    th->role = -1;
    th->depth = depth;
    return ok;
}
