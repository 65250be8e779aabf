/*
 * support.h: the generic utilities every layer of tile uses and that depend on nothing else.
 *
 * Arenas own memory by lifetime (an AST per source file, an IR module per kernel instance):
 * everything is freed at once with arena_free. Growable arrays are a macro over a struct of
 * {data, len, cap} that grows by doubling. Strbuf is a growable string with printf. StrMap maps
 * strings to pointers with open addressing. Diagnostics collect `file:line:col: error: ...`
 * messages with the source line and a caret; user errors never go to stdout or stderr from the
 * library, they are kept in a DiagList for the caller to read.
 *
 * Three kinds of failure are kept apart: user errors (diag_error, keep going), compiler bugs
 * (tile_unreachable, which aborts with file and line) and invariants (assert).
 */
#ifndef TILE_SUPPORT_H
#define TILE_SUPPORT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__GNUC__)
#define TILE_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define TILE_NORETURN __attribute__((noreturn))
#else
#define TILE_PRINTF(f, a)
#define TILE_NORETURN
#endif

/* A compiler bug: print where and abort. Never used for bad user input. */
TILE_NORETURN void tile_fatal_at(const char *file, int line, const char *fmt, ...) TILE_PRINTF(3, 4);
#define tile_unreachable() tile_fatal_at(__FILE__, __LINE__, "unreachable")

/* Checked allocation: out of memory is a fatal error (there is nothing sane to report). */
void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
/* Allocation whose size comes from the caller's input (a count or a length handed to the API,
 * a length read from a file): NULL when the size overflows or memory runs out, so the caller
 * returns TILE_ERROR_OUT_OF_MEMORY instead of aborting. try_calloc zeroes. Sizes bounded by
 * the source's size limit keep xmalloc. */
void *try_malloc(size_t size);
void *try_calloc(size_t count, size_t size);
/* Tests: try_malloc and try_calloc fail above `bytes` (0: no limit), as if memory ran out.
 * Process-wide; only tests set it. */
void support_set_alloc_limit(size_t bytes);

/* ---- Arena ---------------------------------------------------------------------------- */
typedef struct ArenaChunk ArenaChunk;
typedef struct Arena {
    ArenaChunk *chunks;
    size_t used;     /* bytes used in the first chunk */
} Arena;

void arena_init(Arena *arena);
void *arena_alloc(Arena *arena, size_t size);          /* zeroed, 16-byte aligned */
char *arena_strdup(Arena *arena, const char *s);
char *arena_strndup(Arena *arena, const char *s, size_t n);
char *arena_printf(Arena *arena, const char *fmt, ...) TILE_PRINTF(2, 3);
void arena_free(Arena *arena);
#define ARENA_NEW(arena, T) ((T *)arena_alloc((arena), sizeof(T)))
#define ARENA_ARRAY(arena, T, n) ((T *)arena_alloc((arena), sizeof(T) * (size_t)(n)))

/* ---- Growable arrays (heap) ---------------------------------------------------------- */
#define VEC(T) struct { T *data; size_t len, cap; }
#define vec_push(v, x)                                                                       \
    do {                                                                                     \
        if ((v)->len == (v)->cap) {                                                          \
            (v)->cap = (v)->cap ? (v)->cap * 2 : 8;                                          \
            (v)->data = xrealloc((v)->data, (v)->cap * sizeof(*(v)->data));                  \
        }                                                                                    \
        (v)->data[(v)->len++] = (x);                                                         \
    } while (0)
#define vec_free(v) (free((v)->data), (v)->data = NULL, (v)->len = (v)->cap = 0)

/* ---- Strings ---------------------------------------------------------------------------- */
typedef struct Strbuf {
    char *data;
    size_t len, cap;
} Strbuf;

void sb_putc(Strbuf *sb, char c);
void sb_puts(Strbuf *sb, const char *s);
void sb_putn(Strbuf *sb, const char *s, size_t n);
void sb_printf(Strbuf *sb, const char *fmt, ...) TILE_PRINTF(2, 3);
void sb_vprintf(Strbuf *sb, const char *fmt, va_list ap);
const char *sb_str(Strbuf *sb); /* never NULL */
void sb_clear(Strbuf *sb);
void sb_free(Strbuf *sb);

/* Open-addressing map from NUL-terminated strings (not copied) to pointers. */
typedef struct StrMap {
    const char **keys;
    void **values;
    size_t len, cap;
} StrMap;

void *strmap_get(const StrMap *map, const char *key);
bool strmap_has(const StrMap *map, const char *key);
void strmap_put(StrMap *map, const char *key, void *value);
void strmap_free(StrMap *map);

uint64_t hash_bytes(const void *data, size_t n, uint64_t seed); /* FNV-1a 64 */

/* ---- Source files and locations -------------------------------------------------------- */
typedef struct SourceFile {
    const char *name;  /* as given by the user */
    const char *text;  /* NUL-terminated; may contain NUL bytes before len */
    size_t len;
} SourceFile;

typedef struct SrcLoc {
    const SourceFile *file; /* NULL: no location (generated code) */
    uint32_t line, col;     /* 1-based; col counts bytes */
} SrcLoc;

/* ---- Diagnostics ----------------------------------------------------------------------- */
typedef enum { DIAG_ERROR, DIAG_WARNING, DIAG_NOTE } DiagSeverity;

typedef struct DiagList {
    Strbuf text;      /* every message, formatted, in order */
    int errors;
    int warnings;
    int max_errors;   /* 0: default (50); further errors are counted, not formatted */
    int internal;     /* how many of the errors are compiler bugs (diag_internal) */
} DiagList;

void diag_report(DiagList *d, DiagSeverity sev, SrcLoc loc, const char *fmt, ...) TILE_PRINTF(4, 5);
void diag_vreport(DiagList *d, DiagSeverity sev, SrcLoc loc, const char *fmt, va_list ap);
void diag_error(DiagList *d, SrcLoc loc, const char *fmt, ...) TILE_PRINTF(3, 4);
void diag_note(DiagList *d, SrcLoc loc, const char *fmt, ...) TILE_PRINTF(3, 4);
/* A compiler bug found where the library can still report it (invalid IR after a pass): an
 * error "internal error in pass PASS: ...", counted in d->internal too, so that the runtime
 * returns TILE_ERROR_INTERNAL rather than blame the source. */
void diag_internal(DiagList *d, SrcLoc loc, const char *pass, const char *fmt, ...) TILE_PRINTF(4, 5);
void diag_free(DiagList *d);

/* A boolean environment variable, one parser for all of them (TILE_CACHE, TILE_SPECIALIZE):
 * 0, off, false, no give false; 1, on, true, yes give true (any case); unset, empty or anything
 * else gives fallback. */
bool env_flag(const char *name, bool fallback);

/* Whole-file reading; returns false and sets *error (static string) on failure. */
bool read_file(const char *path, char **data, size_t *len, const char **error);
/* Seconds on the monotonic clock (for the compile-time split of tilec build --time). */
double monotonic_seconds(void);

#endif
