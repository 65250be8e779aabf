/*
 * codegen.c: lowers one tile kernel (after the pass pipeline) to an LLVM module for NVPTX.
 *
 * The kernel becomes one LLVM function with the ABI of backend.h. Every IR value maps to a
 * CgValue: a tile is an array of LLVM SSA values, one per slot of the canonical distribution
 * (codegen.h); a tensor is its data pointer, sizes and strides. Ops are emitted in program
 * order by a walk over the regions; structured control flow becomes basic blocks with phi
 * nodes for every slot of every carried value. Scalars are replicated in every thread, so
 * every branch condition is uniform across the block and barriers inside loops and ifs are
 * reached by all threads.
 *
 * Before emitting anything, every type the kernel uses is checked: element types the backend
 * cannot yet place in memory (small floats, sub-byte integers) make the whole kernel
 * unsupported with a located message, never a crash or silently wrong code.
 */
#include "codegen.h"

#include <llvm-c/Analysis.h>
#include <assert.h>
#include <stdarg.h>
#include <string.h>

bool cg_fail(Cg *g, const IrOp *op, bool unsupported, const char *fmt, ...) {
    if (g->failed) return false;
    g->failed = true;
    g->unsupported = unsupported;
    if (op && op->loc.file) sb_printf(g->err, "%s:%u:%u: ", op->loc.file->name, op->loc.line, op->loc.col);
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(g->err, fmt, ap);
    va_end(ap);
    if (op) sb_printf(g->err, " (op '%s')", ir_op_info[op->code].name);
    return false;
}

bool cg_internal(Cg *g, const IrOp *op, const char *fmt, ...) {
    if (g->failed) return false;
    g->failed = g->internal = true;
    if (op && op->loc.file) sb_printf(g->err, "%s:%u:%u: ", op->loc.file->name, op->loc.line, op->loc.col);
    sb_puts(g->err, "internal error in pass codegen: ");
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(g->err, fmt, ap);
    va_end(ap);
    return false;
}

void *cg_calloc(Cg *g, size_t n, size_t size) { return arena_alloc(&g->arena, n * size); }

CgValue *cg_get(Cg *g, const IrValue *v) {
    if (!v || v->id >= g->nvalues) return NULL;
    return g->values[v->id];
}

void cg_set(Cg *g, const IrValue *v, CgValue *cv) {
    if (v->id < g->nvalues) g->values[v->id] = cv;
}

CgValue *cg_new_tile(Cg *g, const Layout *layout, int64_t numel) {
    CgValue *cv = cg_calloc(g, 1, sizeof *cv);
    cv->kind = CV_TILE;
    cv->layout = numel == 1 ? NULL : layout;
    cv->numel = numel;
    cv->nslots = cv->layout ? (uint32_t)cv->layout->local_size : 1;
    cv->slots = cg_calloc(g, cv->nslots, sizeof(LLVMValueRef));
    return cv;
}

const Layout *cg_blocked(Cg *g, int rank, const int64_t *shape, ElemType e) {
    return layout_blocked(&g->arena, rank, shape, (int)cg_elem_bytes(e), g->warps);
}

const Layout *cg_layout_of(Cg *g, const IrValue *v) {
    (void)g;
    const IrType *t = v->type;
    if (t->kind != TY_TILE || t->rank == 0 || type_numel(t) == 1) return NULL;
    assert(t->layout && t->layout->rank == t->rank);
    return t->layout;
}

CgValue *cg_new_tile_for(Cg *g, const IrValue *v) { return cg_new_tile(g, cg_layout_of(g, v), type_numel(v->type)); }

LLVMValueRef cg_i64(Cg *g, int64_t v) { return LLVMConstInt(g->i64, (unsigned long long)v, 1); }
LLVMValueRef cg_i32(Cg *g, int64_t v) { return LLVMConstInt(g->i32, (unsigned long long)v, 1); }

/* The thread part of a layout, emitted once in the entry block from its thread terms. */
static const CgThreadPart *thread_part(Cg *g, const Layout *l) {
    for (size_t i = 0; i < g->parts.len; i++)
        if (g->parts.data[i].tid == g->tid && layout_equal(g->parts.data[i].layout, l)) return &g->parts.data[i];
    CgThreadPart p = {.layout = l, .tid = g->tid};
    LayoutThreadTerm terms[64];
    int n = layout_thread_terms(l, terms);
    LLVMBuilderRef b = g->entry;
    for (int d = 0; d < l->rank; d++) p.coord[d] = cg_i64(g, 0);
    for (int i = 0; i < n; i++) {
        LLVMValueRef q = terms[i].radix == 1 ? g->tid : LLVMBuildUDiv(b, g->tid, cg_i64(g, terms[i].radix), "");
        LLVMValueRef digit = i == 0 && terms[i].radix * terms[i].size >= (int64_t)g->threads
                                 ? q
                                 : LLVMBuildURem(b, q, cg_i64(g, terms[i].size), "");
        if (terms[i].dim == LAYOUT_REPLICA) {
            LLVMValueRef zero = LLVMBuildICmp(b, LLVMIntEQ, digit, cg_i64(g, 0), "");
            p.owner = p.owner ? LLVMBuildAnd(b, p.owner, zero, "") : zero;
        } else {
            LLVMValueRef term = terms[i].stride == 1 ? digit : LLVMBuildMul(b, digit, cg_i64(g, terms[i].stride), "");
            p.coord[terms[i].dim] = LLVMBuildAdd(b, p.coord[terms[i].dim], term, "");
        }
    }
    vec_push(&g->parts, p);
    return &g->parts.data[g->parts.len - 1];
}

void cg_slot_coords(Cg *g, const Layout *l, uint32_t slot, LLVMValueRef *coords) {
    const CgThreadPart *p = thread_part(g, l);
    int64_t local[IR_MAX_RANK];
    layout_map(l, 0, slot, local); /* thread 0 has every thread digit 0: the local part alone */
    for (int d = 0; d < l->rank; d++)
        coords[d] = local[d] ? LLVMBuildAdd(g->b, p->coord[d], cg_i64(g, local[d]), "") : p->coord[d];
}

LLVMValueRef cg_owner(Cg *g, const Layout *l) { return l ? thread_part(g, l)->owner : g->tid_is_zero; }

LLVMBasicBlockRef cg_block(Cg *g, const char *name) {
    return LLVMAppendBasicBlockInContext(g->ctx, g->fn, name);
}

LLVMValueRef cg_call_intrinsic(Cg *g, const char *name, LLVMTypeRef *overloads, unsigned noverloads,
                               LLVMValueRef *args, unsigned nargs) {
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    if (!id) tile_unreachable();
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(g->module, id, overloads, noverloads);
    LLVMTypeRef type = LLVMIntrinsicGetType(g->ctx, id, overloads, noverloads);
    return LLVMBuildCall2(g->b, type, fn, args, nargs, "");
}

void cg_barrier(Cg *g) {
    /* barrier.sync 0 with all threads of the block (bar.sync 0); in a warp role its own barrier */
    char text[48];
    cg_barrier_text(g, text, sizeof text);
    cg_asm_void(g, text);
}

LLVMValueRef cg_asm(Cg *g, const char *text, const char *constraints, LLVMTypeRef ret, LLVMValueRef *args,
                    unsigned nargs) {
    LLVMTypeRef *types = cg_calloc(g, nargs + 1, sizeof(LLVMTypeRef));
    for (unsigned i = 0; i < nargs; i++) types[i] = LLVMTypeOf(args[i]);
    LLVMTypeRef ft = LLVMFunctionType(ret, types, nargs, 0);
    LLVMValueRef fn = LLVMGetInlineAsm(ft, (char *)text, strlen(text), (char *)constraints, strlen(constraints), 1, 0,
                                       LLVMInlineAsmDialectATT, 0);
    LLVMValueRef call = LLVMBuildCall2(g->b, ft, fn, args, nargs, "");
    /* convergent: no transform may make it depend on more control flow (barriers, warpgroup ops) */
    unsigned kind = LLVMGetEnumAttributeKindForName("convergent", 10);
    LLVMAddCallSiteAttribute(call, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(g->ctx, kind, 0));
    return call;
}

void cg_asm_void(Cg *g, const char *text) { cg_asm(g, text, "~{memory}", g->void_type, NULL, 0); }

static LLVMValueRef read_sreg(Cg *g, const char *name) {
    return cg_call_intrinsic(g, name, NULL, 0, NULL, 0);
}

/* ---- type checks ------------------------------------------------------------------------- */
static bool check_type(Cg *g, const IrOp *op, const IrType *t) {
    if (cg_elem_supported(t->elem)) return true;
    char name[16];
    return cg_fail(g, op, true, "the GPU backend does not support %s yet", elem_name(t->elem, name));
}

/* Layouts come from the layout pass, which the runtime runs before the backend with the same
 * num_warps: a tile of rank >= 1 without a layout, or with one for another number of threads,
 * is a compiler bug (the pass did not run, or ran for another block size), never user error. */
static bool check_layout(Cg *g, const IrOp *op, const IrValue *v) {
    /* inside a warp role, layouts spread a tile over the role's threads */
    uint32_t role = 0;
    const IrOp *roles = ir_role_of_region(op->parent, &role);
    unsigned threads = roles ? 32u * (unsigned)ir_role_warps(roles, role) : g->threads;
    const IrType *t = v->type;
    if (t->kind != TY_TILE || t->rank == 0) return true;
    if (!t->layout)
        return cg_fail(g, op, false, "internal error: value %%%u has no layout: the layout pass did not run", v->id);
    if (t->layout->rank != t->rank)
        return cg_fail(g, op, false, "internal error: value %%%u of rank %d has a layout of rank %d", v->id, t->rank,
                       t->layout->rank);
    if (t->layout->num_threads != (int64_t)threads)
        return cg_fail(g, op, false,
                       "internal error: value %%%u has a layout for %lld threads, but the %s has %u "
                       "(the layout pass ran with another num_warps)",
                       v->id, (long long)t->layout->num_threads, roles ? "warp role" : "block", threads);
    return true;
}

static bool check_op(IrOp *op, void *ctx) {
    Cg *g = ctx;
    for (uint32_t i = 0; i < op->noperands; i++)
        if (!check_type(g, op, op->operands[i]->type)) return false;
    for (uint32_t i = 0; i < op->nresults; i++)
        if (!check_type(g, op, op->results[i]->type) || !check_layout(g, op, op->results[i])) return false;
    for (uint32_t k = 0; k < op->nregions; k++)
        for (uint32_t i = 0; i < op->regions[k]->nargs; i++)
            if (!check_layout(g, op, op->regions[k]->args[i])) return false;
    return true;
}

static bool check_op_types(IrOp *op, void *ctx) {
    Cg *g = ctx;
    for (uint32_t i = 0; i < op->noperands; i++)
        if (!check_type(g, op, op->operands[i]->type)) return false;
    for (uint32_t i = 0; i < op->nresults; i++)
        if (!check_type(g, op, op->results[i]->type)) return false;
    return true;
}

bool backend_check_types(const struct IrFunction *kernel, Strbuf *err) {
    if (!kernel->body) return true;
    Cg g = {.kernel = kernel, .err = err};
    ir_walk(kernel->body, check_op_types, &g);
    return !g.failed;
}

/* ---- regions and control flow -------------------------------------------------------------- */
static bool emit_region(Cg *g, const IrRegion *r, const IrOp **term);

/* The LLVM values of a list of IR values, each in the layout of the matching target value
 * (the carried value it feeds), all slots flattened, appended to out. */
static size_t flatten(Cg *g, const IrOp *op, IrValue *const *vals, uint32_t n, IrValue *const *targets,
                      LLVMValueRef *out) {
    size_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        const IrType *t = targets[i]->type;
        CgValue *cv = cg_in_layout(g, op, vals[i], cg_layout_of(g, targets[i]), t->rank, t->shape);
        for (uint32_t j = 0; cv && j < cv->nslots; j++) out[k++] = cv->slots[j];
    }
    return k;
}

static size_t count_slots(Cg *g, IrValue *const *vals, uint32_t n) {
    size_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (vals[i]->type->kind != TY_TILE) return (size_t)-1;
        const Layout *l = cg_layout_of(g, vals[i]);
        k += l ? (size_t)l->local_size : 1;
    }
    return k;
}

/* Phi nodes for every slot of values shaped like vals, bound to targets (tile values). */
static LLVMValueRef *make_phis(Cg *g, IrValue *const *types, uint32_t n, IrValue *const *targets, size_t *count) {
    size_t total = count_slots(g, types, n);
    LLVMValueRef *phis = cg_calloc(g, total + 1, sizeof(LLVMValueRef));
    size_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        CgValue *cv = cg_new_tile_for(g, targets ? targets[i] : types[i]);
        LLVMTypeRef t = cg_reg_type(g, types[i]->type->elem);
        for (uint32_t j = 0; j < cv->nslots; j++) cv->slots[j] = phis[k++] = LLVMBuildPhi(g->b, t, "");
        if (targets) cg_set(g, targets[i], cv);
    }
    *count = total;
    return phis;
}

static LLVMValueRef scalar_i64(Cg *g, const IrValue *v) {
    return cg_to_i64(g, v->type->elem, cg_get(g, v)->slots[0]);
}

static LLVMValueRef truth(Cg *g, const IrValue *v) {
    return cg_convert(g, v->type->elem, cg_get(g, v)->slots[0], elem_bool());
}

static bool carried_ok(Cg *g, const IrOp *op, IrValue *const *vals, uint32_t n) {
    if (count_slots(g, vals, n) == (size_t)-1)
        return cg_fail(g, op, true, "the GPU backend does not support carrying tensors or shared tiles");
    return true;
}

static bool emit_for(Cg *g, const IrOp *op) {
    const IrRegion *body = op->regions[0];
    uint32_t nc = op->noperands - 3;
    if (!carried_ok(g, op, op->operands + 3, nc)) return false;
    ElemType iv_type = body->args[0]->type->elem;
    IrValue *const *carried_args = body->args + 1;
    bool u64 = iv_type.kind == EK_UINT && iv_type.bits == 64;
    LLVMValueRef lo = scalar_i64(g, op->operands[0]), hi = scalar_i64(g, op->operands[1]),
                 step = scalar_i64(g, op->operands[2]);
    size_t ns = count_slots(g, op->operands + 3, nc);
    LLVMValueRef *init = cg_calloc(g, ns + 1, sizeof(LLVMValueRef));
    flatten(g, op, op->operands + 3, nc, carried_args, init);
    if (g->failed) return false;
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(g->b);
    LLVMBasicBlockRef header = cg_block(g, "for.header"), body_bb = cg_block(g, "for.body"),
                      exit = cg_block(g, "for.exit");
    LLVMBuildBr(g->b, header);
    LLVMPositionBuilderAtEnd(g->b, header);
    LLVMValueRef iv = LLVMBuildPhi(g->b, g->i64, "iv");
    size_t count;
    LLVMValueRef *phis = make_phis(g, carried_args, nc, body->args + 1, &count);
    LLVMValueRef more;
    if (u64) {
        more = LLVMBuildAnd(g->b, LLVMBuildICmp(g->b, LLVMIntNE, step, cg_i64(g, 0), ""),
                            LLVMBuildICmp(g->b, LLVMIntULT, iv, hi, ""), "");
    } else {
        more = LLVMBuildAnd(g->b, LLVMBuildICmp(g->b, LLVMIntSGT, step, cg_i64(g, 0), ""),
                            LLVMBuildICmp(g->b, LLVMIntSLT, iv, hi, ""), "");
    }
    LLVMBuildCondBr(g->b, more, body_bb, exit);
    LLVMPositionBuilderAtEnd(g->b, body_bb);
    CgValue *ivv = cg_new_tile(g, NULL, 1);
    ivv->slots[0] = cg_convert(g, elem_int(64), iv, iv_type);
    cg_set(g, body->args[0], ivv);
    const IrOp *term;
    if (!emit_region(g, body, &term)) return false;
    if (!term || term->code != OP_YIELD || term->noperands != nc)
        return cg_fail(g, op, false, "the loop body must end in yield of %u values", (unsigned)nc);
    LLVMValueRef *next = cg_calloc(g, ns + 1, sizeof(LLVMValueRef));
    flatten(g, op, term->operands, nc, carried_args, next);
    LLVMTypeRef i64 = g->i64;
    LLVMValueRef args[2] = {iv, step};
    LLVMValueRef sum = cg_call_intrinsic(g, u64 ? "llvm.uadd.with.overflow" : "llvm.sadd.with.overflow", &i64, 1,
                                         args, 2);
    LLVMValueRef iv_next = LLVMBuildExtractValue(g->b, sum, 0, "");
    LLVMValueRef overflow = LLVMBuildExtractValue(g->b, sum, 1, "");
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(g->b);
    LLVMBuildCondBr(g->b, overflow, exit, header);
    LLVMAddIncoming(iv, &lo, &pre, 1);
    LLVMAddIncoming(iv, &iv_next, &latch, 1);
    for (size_t k = 0; k < count; k++) {
        LLVMAddIncoming(phis[k], &init[k], &pre, 1);
        LLVMAddIncoming(phis[k], &next[k], &latch, 1);
    }
    LLVMPositionBuilderAtEnd(g->b, exit);
    size_t count2;
    LLVMValueRef *out = make_phis(g, carried_args, nc, op->results, &count2);
    for (size_t k = 0; k < count2; k++) {
        LLVMAddIncoming(out[k], &phis[k], &header, 1);
        LLVMAddIncoming(out[k], &next[k], &latch, 1);
    }
    return true;
}

static bool emit_if(Cg *g, const IrOp *op) {
    if (!carried_ok(g, op, op->results, op->nresults)) return false;
    LLVMValueRef c = truth(g, op->operands[0]);
    LLVMBasicBlockRef then_bb = cg_block(g, "if.then"), else_bb = cg_block(g, "if.else"),
                      merge = cg_block(g, "if.end");
    LLVMBuildCondBr(g->b, c, then_bb, else_bb);
    size_t ns = count_slots(g, op->results, op->nresults);
    LLVMValueRef *vals[2];
    LLVMBasicBlockRef ends[2];
    for (int i = 0; i < 2; i++) {
        LLVMPositionBuilderAtEnd(g->b, i == 0 ? then_bb : else_bb);
        const IrOp *term;
        if (!emit_region(g, op->regions[i], &term)) return false;
        if (!term || term->code != OP_YIELD || term->noperands != op->nresults)
            return cg_fail(g, op, false, "each branch must end in yield of %u values", (unsigned)op->nresults);
        vals[i] = cg_calloc(g, ns + 1, sizeof(LLVMValueRef));
        flatten(g, op, term->operands, term->noperands, op->results, vals[i]);
        ends[i] = LLVMGetInsertBlock(g->b);
        LLVMBuildBr(g->b, merge);
    }
    LLVMPositionBuilderAtEnd(g->b, merge);
    size_t count;
    LLVMValueRef *phis = make_phis(g, op->results, op->nresults, op->results, &count);
    for (size_t k = 0; k < count; k++)
        for (int i = 0; i < 2; i++) LLVMAddIncoming(phis[k], &vals[i][k], &ends[i], 1);
    return true;
}

static bool emit_while(Cg *g, const IrOp *op) {
    if (!carried_ok(g, op, op->operands, op->noperands) || !carried_ok(g, op, op->results, op->nresults))
        return false;
    const IrRegion *before = op->regions[0], *after = op->regions[1];
    size_t ns = count_slots(g, op->operands, op->noperands);
    LLVMValueRef *init = cg_calloc(g, ns + 1, sizeof(LLVMValueRef));
    flatten(g, op, op->operands, op->noperands, before->args, init);
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(g->b);
    LLVMBasicBlockRef header = cg_block(g, "while.cond"), body = cg_block(g, "while.body"),
                      exit = cg_block(g, "while.end");
    LLVMBuildBr(g->b, header);
    LLVMPositionBuilderAtEnd(g->b, header);
    size_t count;
    LLVMValueRef *phis = make_phis(g, before->args, op->noperands, before->args, &count);
    const IrOp *term;
    if (!emit_region(g, before, &term)) return false;
    if (!term || term->code != OP_CONDITION || term->noperands != 1 + op->nresults ||
        after->nargs != op->nresults)
        return cg_fail(g, op, false, "the while's first region must end in condition");
    for (uint32_t i = 0; i < op->nresults; i++) {
        const IrType *t = after->args[i]->type;
        CgValue *cv = cg_in_layout(g, op, term->operands[1 + i], cg_layout_of(g, after->args[i]), t->rank, t->shape);
        if (!cv) return false;
        cg_set(g, op->results[i], cv);
        cg_set(g, after->args[i], cv);
    }
    LLVMBuildCondBr(g->b, truth(g, term->operands[0]), body, exit);
    LLVMPositionBuilderAtEnd(g->b, body);
    if (!emit_region(g, after, &term)) return false;
    if (!term || term->code != OP_YIELD || term->noperands != op->noperands)
        return cg_fail(g, op, false, "the while's body must end in yield");
    LLVMValueRef *next = cg_calloc(g, ns + 1, sizeof(LLVMValueRef));
    flatten(g, op, term->operands, term->noperands, before->args, next);
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(g->b);
    LLVMBuildBr(g->b, header);
    for (size_t k = 0; k < count; k++) {
        LLVMAddIncoming(phis[k], &init[k], &pre, 1);
        LLVMAddIncoming(phis[k], &next[k], &latch, 1);
    }
    LLVMPositionBuilderAtEnd(g->b, exit);
    return true;
}

/* ---- data ops ------------------------------------------------------------------------------ */
/* For a compare that the axis analysis proves constant over aligned runs of k columns (the mask
 * `n + arange(BN) < N` where the launch facts make N a multiple of 16), the slot each slot of r
 * takes its value from: the slot holding the first column of its run, when this thread holds
 * it. k shrinks until the thread part of the column is a multiple of it (every thread mode along
 * the last dimension strides by a multiple of k), so a run's first column is one of the thread's
 * own slots (softmax: runs of 16, 4 consecutive columns per thread, k = 4). NULL when
 * nothing is shared. Each run then costs one compare (and one column index) instead of k. */
static uint32_t *compare_runs(Cg *g, const IrOp *op, const CgValue *r) {
    const Layout *l = r->layout;
    int rank = op->results[0]->type->rank, last = rank - 1;
    if (op->code != OP_CMP || !l || rank == 0 || r->nslots < 2) return NULL;
    AxisInfo info;
    axis_info(&g->axis, op->results[0], &info);
    int64_t k = info.constancy[last] & -info.constancy[last]; /* aligned runs of a power of two */
    for (int i = 0; i < l->num_thread_modes; i++) {
        int64_t stride = layout_thread_modes(l)[i].stride;
        if (layout_thread_modes(l)[i].dim == last && stride) k = k < (stride & -stride) ? k : (stride & -stride);
    }
    if (k < 2) return NULL;
    int64_t(*coord)[IR_MAX_RANK] = cg_calloc(g, r->nslots, sizeof *coord);
    for (uint32_t j = 0; j < r->nslots; j++) layout_map(l, 0, j, coord[j]);
    uint32_t *from = cg_calloc(g, r->nslots, sizeof *from);
    bool shared = false;
    for (uint32_t j = 0; j < r->nslots; j++) {
        from[j] = j;
        if (coord[j][last] % k == 0) continue;
        for (uint32_t s = 0; s < r->nslots; s++) {
            bool same = coord[s][last] == coord[j][last] - coord[j][last] % k;
            for (int d = 0; d < last && same; d++) same = coord[s][d] == coord[j][d];
            if (same) {
                from[j] = s;
                shared = true;
                break;
            }
        }
    }
    return shared ? from : NULL;
}

static bool emit_elementwise(Cg *g, const IrOp *op) {
    const IrValue *res = op->results[0];
    const IrType *rt = res->type;
    CgValue *r = cg_new_tile_for(g, res);
    ElemType e = op->operands[op->code == OP_SELECT ? 1 : 0]->type->elem;
    CgValue *ops[3];
    for (uint32_t i = 0; i < op->noperands; i++) {
        ops[i] = cg_in_layout(g, op, op->operands[i], r->layout, rt->rank, rt->shape);
        if (!ops[i]) return false;
    }
    uint32_t *from = compare_runs(g, op, r);
    for (uint32_t j = 0; j < r->nslots; j++) {
        if (from && from[j] != j) continue; /* filled below from its run's first slot */
        LLVMValueRef x[3];
        for (uint32_t i = 0; i < op->noperands; i++) x[i] = ops[i]->slots[ops[i]->nslots == 1 ? 0 : j];
        LLVMValueRef v;
        switch (op->code) {
        case OP_SELECT:
            v = LLVMBuildSelect(g->b, cg_convert(g, op->operands[0]->type->elem, x[0], elem_bool()), x[1], x[2], "");
            break;
        case OP_CAST: v = cg_convert(g, e, x[0], rt->elem); break;
        case OP_BITCAST: v = cg_bitcast(g, e, x[0], rt->elem); break;
        default:
            v = op->noperands == 2 ? cg_binary(g, op->code, (int)op->ints[0], e, x[0], x[1])
                                   : cg_unary(g, op->code, e, x[0]);
        }
        if (!v) {
            char name[16];
            return cg_fail(g, op, true, "the GPU backend does not support this op on %s", elem_name(e, name));
        }
        r->slots[j] = v;
    }
    for (uint32_t j = 0; from && j < r->nslots; j++) r->slots[j] = r->slots[from[j]];
    cg_set(g, res, r);
    return true;
}

static bool emit_values(Cg *g, const IrOp *op) {
    const IrType *rt = op->results[0]->type;
    CgValue *r = cg_new_tile_for(g, op->results[0]);
    for (uint32_t j = 0; j < r->nslots; j++) {
        switch (op->code) {
        case OP_CONST: r->slots[j] = cg_const(g, rt->elem, op->value); break;
        case OP_ARANGE: {
            LLVMValueRef coords[IR_MAX_RANK] = {0};
            if (r->layout) cg_slot_coords(g, r->layout, j, coords);
            else coords[0] = cg_i64(g, 0);
            LLVMValueRef e = LLVMBuildAdd(g->b, coords[0], cg_i64(g, op->ints[0]), "");
            r->slots[j] = cg_convert(g, elem_int(64), e, rt->elem);
            break;
        }
        case OP_BLOCK_ID:
        case OP_NUM_BLOCKS: {
            static const char *names[2][3] = {
                {"llvm.nvvm.read.ptx.sreg.ctaid.x", "llvm.nvvm.read.ptx.sreg.ctaid.y", "llvm.nvvm.read.ptx.sreg.ctaid.z"},
                {"llvm.nvvm.read.ptx.sreg.nctaid.x", "llvm.nvvm.read.ptx.sreg.nctaid.y", "llvm.nvvm.read.ptx.sreg.nctaid.z"}};
            int64_t axis = op->ints[0];
            if (axis < 0 || axis > 2) return cg_fail(g, op, false, "axis %d is not 0, 1 or 2", (int)axis);
            LLVMValueRef v = read_sreg(g, names[op->code == OP_NUM_BLOCKS][axis]);
            r->slots[j] = cg_convert(g, elem_int(64), LLVMBuildZExt(g->b, v, g->i64, ""), rt->elem);
            break;
        }
        default: { /* OP_DIM */
            CgValue *t = cg_get(g, op->operands[0]);
            int64_t axis = op->ints[0];
            if (t->kind != CV_TENSOR || axis < 0 || axis >= op->operands[0]->type->rank)
                return cg_fail(g, op, false, "needs a tensor and an axis inside its rank");
            r->slots[j] = cg_convert(g, elem_int(64), t->size[axis], rt->elem);
        }
        }
    }
    cg_set(g, op->results[0], r);
    return true;
}

static bool emit_splat(Cg *g, const IrOp *op) {
    CgValue *a = cg_get(g, op->operands[0]);
    if (a->kind != CV_TILE || a->numel != 1) return cg_fail(g, op, false, "splat of a value that is not a scalar");
    CgValue *r = cg_new_tile_for(g, op->results[0]);
    for (uint32_t j = 0; j < r->nslots; j++) r->slots[j] = a->slots[0];
    cg_set(g, op->results[0], r);
    return true;
}

static bool emit_barrier(Cg *g, const IrOp *op) {
    (void)op;
    cg_barrier(g);
    return true;
}

/* The code generator of every op that reaches the backend. An op of ir/ops.def is either here,
 * or in lowered_by (with the pass that removes it before code generation), or of place GRID
 * (the host evaluates the grid region; the kernel is the body); tests/test_ops_table.c checks
 * that each op is one of the three. An op that arrives without one is an internal error. */
typedef bool (*CgEmitFn)(Cg *g, const IrOp *op);

/* load and store read and write a tensor or a shared tile */
static bool emit_load(Cg *g, const IrOp *op) {
    return op->operands[0]->type->kind == TY_SHARED ? cg_shared_load(g, op) : cg_load(g, op);
}
static bool emit_store(Cg *g, const IrOp *op) {
    return op->operands[0]->type->kind == TY_SHARED ? cg_shared_store(g, op) : cg_store(g, op);
}

static const CgEmitFn emitters[OP_COUNT] = {
    [OP_CONST] = emit_values, [OP_ARANGE] = emit_values, [OP_BLOCK_ID] = emit_values,
    [OP_NUM_BLOCKS] = emit_values, [OP_DIM] = emit_values,
    [OP_ADD] = emit_elementwise, [OP_SUB] = emit_elementwise, [OP_MUL] = emit_elementwise,
    [OP_DIV] = emit_elementwise, [OP_REM] = emit_elementwise, [OP_MIN] = emit_elementwise,
    [OP_MAX] = emit_elementwise, [OP_AND] = emit_elementwise, [OP_OR] = emit_elementwise,
    [OP_XOR] = emit_elementwise, [OP_SHL] = emit_elementwise, [OP_SHR] = emit_elementwise,
    [OP_CMP] = emit_elementwise, [OP_NEG] = emit_elementwise, [OP_NOT] = emit_elementwise,
    [OP_ABS] = emit_elementwise, [OP_EXP] = emit_elementwise, [OP_EXP2] = emit_elementwise,
    [OP_LOG] = emit_elementwise, [OP_LOG2] = emit_elementwise, [OP_SQRT] = emit_elementwise,
    [OP_RSQRT] = emit_elementwise, [OP_TANH] = emit_elementwise, [OP_SIN] = emit_elementwise,
    [OP_COS] = emit_elementwise, [OP_ERF] = emit_elementwise, [OP_FLOOR] = emit_elementwise,
    [OP_CEIL] = emit_elementwise, [OP_SELECT] = emit_elementwise, [OP_CAST] = emit_elementwise,
    [OP_BITCAST] = emit_elementwise,
    [OP_SPLAT] = emit_splat,
    [OP_EXPAND_DIMS] = cg_reshape_like, [OP_RESHAPE] = cg_reshape_like, [OP_CONVERT_LAYOUT] = cg_reshape_like,
    [OP_BROADCAST] = cg_reshape_like, [OP_TRANSPOSE] = cg_reshape_like,
    [OP_REDUCE] = cg_reduce,
    [OP_SCAN] = cg_scan,
    [OP_DOT] = cg_dot,
    [OP_LOAD] = emit_load,
    [OP_STORE] = emit_store, [OP_ATOMIC] = cg_store,
    [OP_SHARED_ALLOC] = cg_shared_op, [OP_SHARED_LOAD] = cg_shared_op, [OP_SHARED_STORE] = cg_shared_op,
    [OP_BARRIER] = emit_barrier,
    [OP_SHARED_VIEW] = cg_shared_view,
    [OP_COPY_ASYNC] = cg_copy_async,
    [OP_ASYNC_WAIT] = cg_async_wait,
    [OP_DOT_WAIT] = cg_dot_wait,
    [OP_MBARRIER_INIT] = cg_tma_op, [OP_MBARRIER_INVAL] = cg_tma_op, [OP_COPY_TMA] = cg_tma_op, [OP_MBARRIER_ARRIVE] = cg_tma_op,
    [OP_MBARRIER_WAIT] = cg_tma_op,
    [OP_ATOMIC_RMW] = cg_atomic_result, [OP_ATOMIC_CAS] = cg_atomic_result,
    [OP_FENCE] = cg_fence,
    [OP_FOR] = emit_for,
    [OP_IF] = emit_if,
    [OP_WHILE] = emit_while,
    [OP_WARP_ROLES] = cg_warp_roles,
    [OP_CLUSTER_SIZE] = cg_cluster_op, [OP_CLUSTER_BARRIER] = cg_cluster_op,
    [OP_STORE_TMA] = cg_tma_store_op, [OP_STORE_WAIT] = cg_tma_store_op,
};

/* Ops that a pass removes before code generation, with that pass's name. */
static const char *const lowered_by[OP_COUNT] = {
    [OP_CALL] = "inline", /* and with the calls, the callees' returns */
};

bool backend_codegen_handles(OpCode code, const char **removed_by) {
    if (removed_by) *removed_by = (unsigned)code < OP_COUNT ? lowered_by[code] : NULL;
    if ((unsigned)code >= OP_COUNT) return false;
    return emitters[code] != NULL || (ir_op_info[code].flags & F_TERM);
}

static bool emit_op(Cg *g, const IrOp *op) {
    CgEmitFn emit = (unsigned)op->code < OP_COUNT ? emitters[op->code] : NULL;
    if (!emit) {
        const char *name = (unsigned)op->code < OP_COUNT ? ir_op_info[op->code].name : "?op";
        const char *pass = (unsigned)op->code < OP_COUNT ? lowered_by[op->code] : NULL;
        if (pass) return cg_internal(g, op, "no code generator for op '%s' (the pass %s removes it first)", name, pass);
        return cg_internal(g, op, "no code generator for op '%s'", name);
    }
    for (uint32_t i = 0; i < op->noperands; i++)
        if (!cg_get(g, op->operands[i])) return cg_fail(g, op, false, "operand %u is not defined", (unsigned)i);
    const OpInfo *info = &ir_op_info[op->code];
    if ((info->noperands >= 0 && op->noperands != (uint32_t)info->noperands) ||
        (info->nresults >= 0 && op->nresults != (uint32_t)info->nresults))
        return cg_fail(g, op, false, "wrong number of operands or results");
    return emit(g, op);
}

static bool emit_region(Cg *g, const IrRegion *r, const IrOp **term) {
    *term = NULL;
    for (const IrOp *op = r->first; op; op = op->next) {
        if ((unsigned)op->code < OP_COUNT && (ir_op_info[op->code].flags & F_TERM)) {
            *term = op;
            return true;
        }
        uint64_t before = g->smem_bytes;
        const IrOp *inner = g->smem_op;
        if (!emit_op(g, op)) return false;
        if (g->smem_bytes > before && g->smem_op == inner) g->smem_op = op; /* innermost op that raised it */
    }
    return true;
}

bool cg_emit_region(Cg *g, const IrRegion *r, const IrOp **term) { return emit_region(g, r, term); }

/* ---- the kernel ---------------------------------------------------------------------------------- */
static void init_types(Cg *g) {
    LLVMContextRef c = g->ctx;
    g->i1 = LLVMInt1TypeInContext(c);
    g->i8 = LLVMInt8TypeInContext(c);
    g->i16 = LLVMInt16TypeInContext(c);
    g->i32 = LLVMInt32TypeInContext(c);
    g->i64 = LLVMInt64TypeInContext(c);
    g->f16 = LLVMHalfTypeInContext(c);
    g->bf16 = LLVMBFloatTypeInContext(c);
    g->f32 = LLVMFloatTypeInContext(c);
    g->f64 = LLVMDoubleTypeInContext(c);
    g->ptr1 = LLVMPointerTypeInContext(c, 1);
    g->ptr3 = LLVMPointerTypeInContext(c, 3);
    g->void_type = LLVMVoidTypeInContext(c);
}

static LLVMTypeRef param_scalar_type(Cg *g, ElemType e) {
    if (e.kind == EK_FLOAT) return e.bits <= 32 ? g->f32 : g->f64;
    return e.bits <= 32 ? g->i32 : g->i64;
}

static bool build_kernel(Cg *g) {
    const IrFunction *k = g->kernel;
    const IrRegion *body = k->body;
    VEC(LLVMTypeRef) params = {0};
    for (uint32_t i = 0; i < body->nargs; i++) {
        const IrType *t = body->args[i]->type;
        if (t->kind == TY_TENSOR) {
            vec_push(&params, g->ptr1);
            for (int d = 0; d < t->rank; d++) vec_push(&params, g->i32);
            for (int d = 0; d < t->rank; d++) vec_push(&params, g->i64);
        } else if (t->kind == TY_TILE && t->rank == 0) {
            vec_push(&params, param_scalar_type(g, t->elem));
        } else {
            vec_free(&params);
            return cg_fail(g, NULL, true, "%s: parameter %u is neither a tensor nor a scalar", k->name, (unsigned)i);
        }
    }
    /* the tensor maps of TMA copies: byval, 64-aligned, grid constant (codegen_tma.c) */
    size_t first_map = params.len;
    if (!cg_tma_plan(g)) {
        vec_free(&params);
        return false;
    }
    if (g->ntma && g->arch != BACKEND_ARCH_SM90A) {
        vec_free(&params);
        return cg_fail(g, NULL, true, "%s: TMA copies need sm_90a", k->name);
    }
    for (uint32_t i = 0; i < g->ntma; i++) vec_push(&params, LLVMPointerTypeInContext(g->ctx, 0));
    LLVMTypeRef fn_type = LLVMFunctionType(g->void_type, params.data, (unsigned)params.len, 0);
    g->fn = LLVMAddFunction(g->module, k->name, fn_type);
    vec_free(&params);
    for (uint32_t i = 0; i < g->ntma; i++) {
        unsigned index = (unsigned)first_map + i + 1; /* attribute indices of parameters start at 1 */
        LLVMTypeRef map = LLVMArrayType2(g->i8, 128);
        unsigned byval = LLVMGetEnumAttributeKindForName("byval", 5);
        LLVMAddAttributeAtIndex(g->fn, index, LLVMCreateTypeAttribute(g->ctx, byval, map));
        unsigned align = LLVMGetEnumAttributeKindForName("align", 5);
        LLVMAddAttributeAtIndex(g->fn, index, LLVMCreateEnumAttribute(g->ctx, align, 64));
        LLVMAddAttributeAtIndex(g->fn, index, LLVMCreateStringAttribute(g->ctx, "nvvm.grid_constant", 18, "", 0));
        g->tma_param[i] = LLVMGetParam(g->fn, (unsigned)first_map + i);
    }
    const unsigned maxntid[3] = {g->threads, 1, 1};
    llvm_mark_kernel(g->fn, maxntid, NULL);
    LLVMBasicBlockRef entry = cg_block(g, "entry");
    LLVMPositionBuilderAtEnd(g->b, entry);
    g->tid = LLVMBuildZExt(g->b, read_sreg(g, "llvm.nvvm.read.ptx.sreg.tid.x"), g->i64, "tid");
    g->tid_is_zero = LLVMBuildICmp(g->b, LLVMIntEQ, g->tid, cg_i64(g, 0), "");
    if (g->smem_planned) {
        LLVMValueRef at = cg_i64(g, (int64_t)g->smem_planned);
        g->smem = LLVMBuildGEP2(g->b, g->i8, g->smem_base, &at, 1, "scratch");
    }
    g->entry = LLVMCreateBuilderInContext(g->ctx);
    LLVMPositionBuilderAtEnd(g->entry, entry);
    unsigned p = 0;
    for (uint32_t i = 0; i < body->nargs; i++) {
        const IrValue *arg = body->args[i];
        const IrType *t = arg->type;
        CgValue *cv;
        if (t->kind == TY_TENSOR) {
            cv = cg_calloc(g, 1, sizeof *cv);
            cv->kind = CV_TENSOR;
            cv->data = LLVMGetParam(g->fn, p++);
            LLVMSetValueName2(cv->data, arg->name ? arg->name : "t", strlen(arg->name ? arg->name : "t"));
            for (int d = 0; d < t->rank; d++) cv->size[d] = LLVMBuildSExt(g->b, LLVMGetParam(g->fn, p++), g->i64, "");
            /* a stride the launch facts give as 1 is the constant 1: LLVM then drops each
             * element offset's multiply by it (8 64-bit multiplies per path of softmax) */
            for (int d = 0; d < t->rank; d++) {
                LLVMValueRef stride = LLVMGetParam(g->fn, p++);
                cv->stride[d] = g->spec && g->spec[i].unit_stride[d] ? cg_i64(g, 1) : stride;
            }
        } else {
            cv = cg_new_tile(g, NULL, 1);
            LLVMValueRef v = LLVMGetParam(g->fn, p++);
            ElemType e = t->elem;
            if (e.kind == EK_BOOL) v = LLVMBuildICmp(g->b, LLVMIntNE, v, LLVMConstInt(LLVMTypeOf(v), 0, 0), "");
            else if (e.kind != EK_FLOAT && e.bits < 32) v = LLVMBuildTrunc(g->b, v, cg_reg_type(g, e), "");
            else if (e.kind == EK_FLOAT) v = cg_round(g, e, v);
            cv->slots[0] = v;
        }
        cg_set(g, arg, cv);
    }
    LLVMBasicBlockRef first = cg_block(g, "body");
    LLVMPositionBuilderAtEnd(g->b, first);
    const IrOp *term;
    bool ok = emit_region(g, body, &term);
    if (ok) LLVMBuildRetVoid(g->b);
    /* the thread parts of the layouts were emitted into the entry block as they were needed */
    LLVMBuildBr(g->entry, first);
    LLVMDisposeBuilder(g->entry);
    return ok;
}

/* The end of smem_plan's buffers (shared_alloc with an offset), rounded up to 16 bytes. */
static bool planned_bytes(IrOp *op, void *ctx) {
    Cg *g = ctx;
    if (op->code == OP_SHARED_ALLOC && op->nints >= 1 && op->nresults == 1) {
        const IrType *t = op->results[0]->type;
        uint64_t end = (uint64_t)(op->ints[0] + type_bytes(t) + 15) / 16 * 16;
        if (end > g->smem_planned) g->smem_planned = end;
    }
    return true;
}

bool backend_codegen(LLVMContextRef context, const struct IrFunction *kernel, const CodegenOptions *options,
                     LLVMModuleRef *out, CodegenInfo *info, Strbuf *err) {
    *out = NULL;
    memset(info, 0, sizeof *info);
    /* the options' num_warps, else the kernel's warps(N), else 4 (as the layout pass decides) */
    int warps = options && options->num_warps > 0 ? options->num_warps : kernel->num_warps > 0 ? kernel->num_warps : 4;
    if (warps > 32) {
        sb_printf(err, "%s: %d warps is more than a block holds (32)", kernel->name, warps);
        return false;
    }
    Cg g = {.ctx = context, .kernel = kernel, .threads = 32u * (unsigned)warps, .err = err, .warps = warps,
            .spec = options ? options->spec : NULL, .arch = options ? options->arch : BACKEND_ARCH_SM80,
            .role = -1};
    info->threads = g.threads;
    if (!kernel->is_kernel || !kernel->body) {
        sb_printf(err, "'%s' is not a kernel", kernel->name);
        return false;
    }
    ir_walk(kernel->body, check_op, &g);
    if (g.failed) {
        info->unsupported = g.unsupported;
        info->internal = g.internal;
        return false;
    }
    init_types(&g);
    g.module = LLVMModuleCreateWithNameInContext(kernel->name, context);
    Strbuf target_err = {0};
    if (!llvm_set_nvptx_target(g.module, options ? options->arch : BACKEND_ARCH_SM80, &target_err)) {
        sb_printf(err, "%s", sb_str(&target_err));
        sb_free(&target_err);
        LLVMDisposeModule(g.module);
        return false;
    }
    sb_free(&target_err);
    arena_init(&g.arena);
    g.b = LLVMCreateBuilderInContext(context);
    g.nvalues = kernel->next_value_id;
    g.values = xcalloc(g.nvalues + 1, sizeof(CgValue *));
    axis_init(&g.axis, kernel, g.spec);
    g.smem_base = LLVMAddGlobalInAddressSpace(g.module, LLVMArrayType2(g.i8, 0), "tile_smem", 3);
    LLVMSetLinkage(g.smem_base, LLVMExternalLinkage);
    LLVMSetAlignment(g.smem_base, 1024);
    ir_walk(kernel->body, planned_bytes, &g);
    g.smem = g.smem_base; /* moved past the planned buffers in the entry block */
    bool ok = build_kernel(&g);
    LLVMDisposeBuilder(g.b);
    free(g.values);
    vec_free(&g.parts);
    axis_free(&g.axis);
    arena_free(&g.arena);
    info->unsupported = g.unsupported;
    info->internal = g.internal;
    info->ntma = g.ntma;
    memcpy(info->tma, g.tma, sizeof g.tma);
    uint64_t smem_total = g.smem_bytes ? g.smem_planned + g.smem_bytes : g.smem_planned;
    info->shared_bytes = (unsigned)smem_total;
    if (ok && smem_total > 227 * 1024) {
        ok = cg_fail(&g, g.smem_op, true, "%s needs %llu bytes of shared memory here, more than a block has (%d)",
                     kernel->name, (unsigned long long)smem_total, 227 * 1024);
        info->unsupported = true;
    }
    if (ok) {
        Strbuf verr = {0};
        if (!llvm_verify_module(g.module, &verr)) {
            sb_printf(err, "%s: the generated LLVM IR is invalid (a code generator bug): %s", kernel->name,
                      sb_str(&verr));
            ok = false;
        }
        sb_free(&verr);
    }
    if (!ok) {
        LLVMDisposeModule(g.module);
        return false;
    }
    *out = g.module;
    return true;
}

/* The PTX options of a module for arch: the arch's minimum PTX ISA, or 8.4 when the module uses
 * mma.sync on f8 (m16n8k32 .e4m3/.e5m2, which ptxas accepts from PTX ISA 8.4 on). */
static PtxOptions ptx_options_for(LLVMModuleRef module, const CodegenOptions *options) {
    PtxOptions po = llvm_ptx_options(options ? options->arch : BACKEND_ARCH_SM80);
    if (LLVMGetNamedFunction(module, "llvm.nvvm.mma.m16n8k32.row.col.f32.e4m3.e4m3.f32") ||
        LLVMGetNamedFunction(module, "llvm.nvvm.mma.m16n8k32.row.col.f32.e5m2.e5m2.f32"))
        po.features = "+ptx84";
    return po;
}

bool backend_compile_ptx(const struct IrFunction *kernel, const CodegenOptions *options, Strbuf *ptx,
                         CodegenInfo *info, Strbuf *err) {
    if (!llvm_init_nvptx(err)) return false;
    LLVMContextRef context = llvm_context_new();
    LLVMModuleRef module;
    double t0 = monotonic_seconds();
    bool ok = backend_codegen(context, kernel, options, &module, info, err);
    double t1 = monotonic_seconds();
    if (ok) {
        PtxOptions po = ptx_options_for(module, options);
        ok = llvm_emit_ptx(module, &po, ptx, err);
    }
    info->codegen_seconds = t1 - t0;
    info->llvm_seconds = monotonic_seconds() - t1;
    llvm_context_free(context);
    return ok;
}

/* Each kernel has its own module (backend_codegen builds one per kernel); linking them is safe
 * because what a module defines besides its kernel is internal (LLVM renames internal symbols
 * that clash) and the one external symbol, the dynamic shared memory tile_smem, is a declaration
 * that all kernels share, as CUDA's `extern __shared__` arrays are. */
bool backend_compile_many(const struct IrFunction *const *kernels, size_t n, const CodegenOptions *options, bool ptx,
                          Strbuf *out, CodegenInfo *infos, Strbuf *err) {
    if (!llvm_init_nvptx(err)) return false;
    LLVMContextRef context = llvm_context_new();
    LLVMModuleRef whole = NULL;
    bool ok = n > 0;
    if (!ok) sb_puts(err, "no kernel to compile");
    double t0 = monotonic_seconds();
    for (size_t i = 0; i < n && ok; i++) {
        LLVMModuleRef module;
        ok = backend_codegen(context, kernels[i], options, &module, &infos[i], err);
        if (ok && !whole) whole = module;
        else if (ok) ok = llvm_link_into(whole, module, err);
    }
    double t1 = monotonic_seconds();
    if (ok && !ptx) {
        llvm_print_module(whole, out);
    } else if (ok) {
        PtxOptions po = ptx_options_for(whole, options);
        ok = llvm_emit_ptx(whole, &po, out, err);
    }
    if (n) { /* the whole module's times, on the first kernel */
        infos[0].codegen_seconds = t1 - t0;
        infos[0].llvm_seconds = monotonic_seconds() - t1;
    }
    llvm_context_free(context);
    return ok;
}

bool backend_compile_llvm(const struct IrFunction *kernel, const CodegenOptions *options, Strbuf *text,
                          CodegenInfo *info, Strbuf *err) {
    if (!llvm_init_nvptx(err)) return false;
    LLVMContextRef context = llvm_context_new();
    LLVMModuleRef module;
    double t0 = monotonic_seconds();
    bool ok = backend_codegen(context, kernel, options, &module, info, err);
    info->codegen_seconds = monotonic_seconds() - t0;
    if (ok) llvm_print_module(module, text);
    llvm_context_free(context);
    return ok;
}
