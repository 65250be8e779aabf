/*
 * tilec.h: what the parts of tilec share: exit codes, the list of -D constants, usage errors and
 * the reporting of a failed API call. tilec.c has the commands check and build and main; run.c
 * the command run; npy.c the .npy files that run reads and writes.
 */
#ifndef TILE_TOOLS_TILEC_H
#define TILE_TOOLS_TILEC_H

#include <stdbool.h>

#include "tile/tile.h"

enum { EXIT_USER = 1, EXIT_USAGE = 2, EXIT_DEVICE = 3, EXIT_INTERNAL = 4 };

/* The -D constants of a command line: any number of them. */
typedef struct Defines {
    tile_constant *items;
    int n, cap;
} Defines;

/* Parses "NAME=VALUE" (an integer in int64_t's range, a float, true or false) into *c (c->name
 * malloc'd). NULL on success, else what is wrong. */
const char *parse_constant(const char *text, tile_constant *c);
/* Parses and appends one -D; prints a usage error and returns false when text is malformed. */
bool defines_add(Defines *d, const char *text);
void defines_free(Defines *d);

/* Prints "tilec: <fmt with arg>" and the usage hint; returns EXIT_USAGE. */
int usage_error(const char *fmt, const char *arg);
/* Prints the context's message for a failed call; returns the exit code for st. */
int report(tile_context *ctx, tile_status st);
/* Loads path into *prog; prints and returns an exit code on failure (or when it has no kernel). */
int load_program(tile_context *ctx, const char *path, tile_program **prog);

int cmd_run(int argc, char **argv);

#endif
