/*
 * interface.c: a kernel's launch interface, written to the disk cache so that a disk hit in a new
 * context (or process) runs no frontend.
 *
 * A launch on a GPU needs of the kernel's IR only its outside: the parameters (names, element
 * types, ranks, symbolic sizes) for the argument checks and the facts, the grid region for the
 * grid, and the launch-known conditions for the variant's key; the body matters only to a build.
 * The interface is that outside, taken from the target-independent IR once the frontend has made
 * it: the function printed with an empty body (ir/print.c; ir/parse.c reads it back and verifies
 * it, the grid region included), the parameters' source names (the printer numbers them), the
 * source locations of the function, its parameters and its grid's ops (the text has its own),
 * the conditions' compiled steps (launch.c: they index the variant keys' condition bits, so they are
 * stored as compiled rather than found again in a body that is not there), and which tensor
 * parameters the kernel may write (ir_param_may_write, which needs the body: tile_param_info's
 * `written`).
 *
 *   "TIF2", u32 nparams, per parameter u32 length + name, u32 length + written (one byte per
 *   parameter, 0 or 1), u32 length + steps, u32 length + locations (u32 line, u32 col each:
 *   LocWalk's order), u32 length + text
 *
 * (u32 little-endian as the host writes them: an entry is read only by the machine's tile of the
 * same version, whose key it is under.) The reader checks every length and what it reads against
 * the parsed function; anything else is "not an interface", and the caller runs the frontend and
 * writes a good entry over it. device_cuda.c decides when to read and write one, and builds a
 * kernel made from it with the full IR, compiled on the first build it needs and compared with the
 * interface (rt_interface_matches).
 */
#include "runtime.h"

#include <string.h>

static const char magic[4] = {'T', 'I', 'F', '2'};

/* The source locations the printed text loses, in a fixed order: the function's, each
 * parameter's, then every op of the grid region (nested regions in place). A launch's messages
 * name them (a failed check(...) in the grid: "file:line:col"), so a kernel made from its
 * interface says what the frontend's would. */
typedef struct LocWalk {
    const SourceFile *source; /* the one file a location may name (else NULL: none) */
    Strbuf *out;              /* encoding: u32 line, u32 col per location (0, 0: none) */
    SrcLoc *in;               /* decoding: the locations read, next one at *in */
    uint32_t n, cap;
    bool ok;
} LocWalk;

static void loc_visit(LocWalk *w, SrcLoc *loc) {
    if (w->out) {
        uint32_t lc[2] = {loc->file ? loc->line : 0, loc->file ? loc->col : 0};
        w->ok = w->ok && (!loc->file || (loc->file == w->source && lc[0] > 0));
        sb_putn(w->out, (const char *)lc, sizeof lc);
    } else if (w->n < w->cap) {
        *loc = w->in[w->n];
    } else {
        w->ok = false;
    }
    w->n++;
}

static void locs_region(LocWalk *w, IrRegion *r) {
    for (IrOp *op = r->first; op; op = op->next) {
        loc_visit(w, &op->loc);
        for (uint32_t i = 0; i < op->nregions; i++) locs_region(w, op->regions[i]);
    }
}

static void locs_walk(LocWalk *w, IrFunction *f) {
    loc_visit(w, &f->loc);
    for (uint32_t i = 0; i < f->nparams; i++) loc_visit(w, &f->params[i].loc);
    locs_region(w, f->grid);
}

static void put_u32(Strbuf *out, uint32_t v) { sb_putn(out, (const char *)&v, sizeof v); }

static void put_field(Strbuf *out, const char *data, size_t n) {
    put_u32(out, (uint32_t)n);
    sb_putn(out, data, n);
}

bool rt_interface_encode(const IrFunction *f, const RtSteps *conds, const bool *written, Strbuf *out) {
    if (!f->is_kernel || !f->params || f->nparams != f->body->nargs) return false;
    Strbuf text = {0};
    ir_print_function(f, &text);
    /* the printer writes the grid region, then "body {", the body and "}": keep the head */
    const char *body = strstr(sb_str(&text), "\nbody {\n");
    if (!body) {
        sb_free(&text);
        return false;
    }
    size_t head = (size_t)(body - text.data) + strlen("\nbody {\n");
    sb_putn(out, magic, sizeof magic);
    put_u32(out, f->nparams);
    for (uint32_t i = 0; i < f->nparams; i++) {
        const char *name = f->params[i].name ? f->params[i].name : "";
        put_field(out, name, strlen(name));
    }
    put_u32(out, f->nparams);
    for (uint32_t i = 0; i < f->nparams; i++) sb_putc(out, (written ? written[i] : ir_param_may_write(f, i)) ? 1 : 0);
    Strbuf steps = {0};
    rt_steps_encode(conds, &steps);
    put_field(out, steps.data, steps.len);
    sb_free(&steps);
    Strbuf locs = {0};
    LocWalk w = {.source = f->loc.file, .out = &locs, .ok = f->loc.file != NULL};
    locs_walk(&w, (IrFunction *)f); /* (reads only) */
    put_field(out, locs.data, locs.len);
    sb_free(&locs);
    if (!w.ok) { /* a location in another file: not one this format can name */
        sb_free(&text);
        return false;
    }
    put_u32(out, (uint32_t)(head + 2));
    sb_putn(out, text.data, head);
    sb_puts(out, "}\n");
    sb_free(&text);
    return true;
}

/* Reads the next u32-length field at *p (of *n bytes left): false past the end. */
static bool take_field(const uint8_t **p, size_t *n, const uint8_t **data, uint32_t *len) {
    if (*n < 4) return false;
    memcpy(len, *p, 4);
    if (*len > *n - 4) return false;
    *data = *p + 4;
    *p += 4 + (size_t)*len;
    *n -= 4 + (size_t)*len;
    return true;
}

IrModule *rt_interface_decode(const uint8_t *p, size_t n, const char *kernel, const SourceFile *source,
                              IrFunction **fout, RtSteps **conds, bool **written, Strbuf *err) {
    *fout = NULL;
    *conds = NULL;
    *written = NULL;
    uint32_t nparams;
    if (n < 8 || memcmp(p, magic, sizeof magic) != 0) {
        sb_puts(err, "not a kernel interface");
        return NULL;
    }
    memcpy(&nparams, p + 4, 4);
    p += 8, n -= 8;
    if (nparams > n / 4) {
        sb_puts(err, "a kernel interface with a bad parameter count");
        return NULL;
    }
    const uint8_t **names = xcalloc(nparams + 1, sizeof *names);
    uint32_t *lens = xcalloc(nparams + 1, sizeof *lens);
    const uint8_t *writes, *steps, *locs, *text;
    uint32_t nwrites, nsteps_bytes, nlocs_bytes, ntext;
    bool ok = true;
    for (uint32_t i = 0; i < nparams && ok; i++) ok = take_field(&p, &n, &names[i], &lens[i]);
    ok = ok && take_field(&p, &n, &writes, &nwrites) && nwrites == nparams &&
         take_field(&p, &n, &steps, &nsteps_bytes) && take_field(&p, &n, &locs, &nlocs_bytes) &&
         take_field(&p, &n, &text, &ntext) && n == 0 && nlocs_bytes % 8 == 0;
    IrModule *m = NULL;
    IrFunction *f = NULL;
    if (ok) {
        DiagList d = {0};
        m = ir_parse_module(kernel, (const char *)text, ntext, &d);
        f = m ? ir_module_find(m, kernel) : NULL;
        ok = f && f->is_kernel && f->params && f->nparams == nparams && f->body->nargs == nparams && !f->body->first;
        if (!m) sb_printf(err, "a kernel interface that does not read back: %s", sb_str(&d.text));
        else if (!ok) sb_printf(err, "a kernel interface that is not kernel '%s'", kernel);
        diag_free(&d);
    }
    else {
        sb_puts(err, "a truncated kernel interface");
    }
    size_t used = 0;
    if (ok) {
        *conds = rt_steps_decode(steps, nsteps_bytes, f, &used);
        ok = used == nsteps_bytes;
        if (!ok) sb_puts(err, "a kernel interface with malformed launch conditions");
    }
    for (uint32_t i = 0; i < nparams && ok; i++) {
        ok = lens[i] > 0 && memchr(names[i], 0, lens[i]) == NULL;
        if (ok) f->params[i].name = arena_strndup(&m->arena, (const char *)names[i], lens[i]);
        else sb_puts(err, "a kernel interface with a bad parameter name");
    }
    for (uint32_t i = 0; i < nparams && ok; i++) {
        /* 0 or 1, and 1 only for a tensor */
        ok = writes[i] == 0 || (writes[i] == 1 && f->body->args[i]->type->kind == TY_TENSOR);
        if (!ok) sb_puts(err, "a kernel interface with a bad written flag");
    }
    if (ok) {
        uint32_t count = nlocs_bytes / 8;
        SrcLoc *read = xcalloc(count + 1, sizeof *read);
        for (uint32_t i = 0; i < count; i++) {
            uint32_t lc[2];
            memcpy(lc, locs + 8 * (size_t)i, sizeof lc);
            read[i] = lc[0] ? (SrcLoc){source, lc[0], lc[1]} : (SrcLoc){0};
        }
        LocWalk w = {.in = read, .cap = count, .ok = true};
        locs_walk(&w, f);
        ok = w.ok && w.n == count && f->loc.file; /* the function's own, as the writer requires */
        if (!ok) sb_puts(err, "a kernel interface whose locations do not fit its function");
        free(read);
    }
    free(names);
    free(lens);
    if (!ok) {
        rt_grid_free(*conds);
        *conds = NULL;
        ir_module_free(m);
        return NULL;
    }
    *fout = f;
    *written = xcalloc(nparams + 1, sizeof **written);
    for (uint32_t i = 0; i < nparams; i++) (*written)[i] = writes[i] == 1;
    return m;
}

bool rt_interface_matches(const IrFunction *f, const RtSteps *conds, const uint8_t *interface, size_t n) {
    Strbuf mine = {0};
    bool same = rt_interface_encode(f, conds, NULL, &mine) && mine.len == n && memcmp(mine.data, interface, n) == 0;
    sb_free(&mine);
    return same;
}
