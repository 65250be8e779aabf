/*
 * runtime.h: the objects behind the public API (include/tile/tile.h) and the compile driver.
 *
 * The runtime alone drives the other stages: compile = parse (frontend), lower one kernel
 * specialization (frontend), run the pass pipeline (passes), then hand the IR to the device:
 * the VM interprets it as is; the cuda device (runtime/cuda.c) will compile it through the
 * backend. A program keeps its AST and a list of compiled kernels keyed by their constants.
 */
#ifndef TILE_RUNTIME_H
#define TILE_RUNTIME_H

#include <pthread.h>

#include "frontend/frontend.h"
#include "tile/tile.h"

struct tile_context {
    tile_device_kind device;
    int ordinal;
    char name[160];
    pthread_mutex_t lock;
};

struct tile_kernel {
    tile_program *program;
    char *name;
    ConstBinding *consts;    /* as given, sorted by name */
    size_t nconsts;
    IrModule *module;
    IrFunction *function;
    tile_kernel *next;
};

struct tile_program {
    tile_context *ctx;
    AstFile *ast;
    pthread_mutex_t lock;
    tile_kernel *kernels;
};

/* Records the message of a failed call for tile_context_message (per thread). */
tile_status rt_fail(const tile_context *ctx, tile_status status, const char *fmt, ...) TILE_PRINTF(3, 4);

/* Lowers and optimizes one kernel specialization into a new module. On failure returns NULL and
 * the diagnostics are in d. dump_after/dump: see PassOptions. */
IrModule *rt_compile(AstFile *ast, const char *kernel, const ConstBinding *consts, size_t nconsts,
                     const char *dump_after, Strbuf *dump, DiagList *d, IrFunction **out);

#endif
