/*
 * support.c: allocation, arenas, strings, the string map and file reading.
 *
 * The arena is a list of chunks; a request larger than a chunk gets a chunk of its own. Memory
 * is zeroed so that structures start in a known state. Freed chunks of the usual size wait in a
 * small process-wide cache for the next arena (chunk_take, chunk_give). The string map is linear probing over a
 * power-of-two table kept at most half full.
 */
#include "support.h"

#include <errno.h>
#include <pthread.h>
#include <strings.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void tile_fatal_at(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tile: internal compiler error at %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

void *xmalloc(size_t size) {
    void *p = malloc(size ? size : 1);
    if (!p) tile_fatal_at(__FILE__, __LINE__, "out of memory (%zu bytes)", size);
    return p;
}

void *xcalloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) tile_fatal_at(__FILE__, __LINE__, "out of memory (%zu x %zu bytes)", count, size);
    return p;
}

void *xrealloc(void *ptr, size_t size) {
    void *p = realloc(ptr, size ? size : 1);
    if (!p) tile_fatal_at(__FILE__, __LINE__, "out of memory (%zu bytes)", size);
    return p;
}

static size_t alloc_limit; /* try_*: fail above this many bytes (0: no limit); tests only */

void support_set_alloc_limit(size_t bytes) { alloc_limit = bytes; }

void *try_malloc(size_t size) {
    if (size == SIZE_MAX || (alloc_limit && size > alloc_limit)) return NULL;
    return malloc(size ? size : 1);
}

void *try_calloc(size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) return NULL;
    if (alloc_limit && count * size > alloc_limit) return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = xmalloc(n);
    memcpy(p, s, n);
    return p;
}

/* ---- Arena ---------------------------------------------------------------------------- */
enum { ARENA_CHUNK = 64 * 1024 };

struct ArenaChunk {
    ArenaChunk *next;
    size_t size;
    _Alignas(16) unsigned char data[];
};

/* Idle chunks for the next arena, at most ARENA_CACHE_MAX (4 MB), shared by every thread. A
 * program's arenas are freed when it is destroyed and the next one's grow again; through malloc
 * alone each such cycle handed the top of the heap back to the kernel (glibc trims a free top
 * above 128 KB) and took it back by page faults, which was three quarters of the time of parsing
 * softmax's source in a new context (the disk hit's frontend; bench/RESULTS.md, eighth session). */
#ifdef __SANITIZE_ADDRESS__
enum { ARENA_CACHE_MAX = 0 }; /* AddressSanitizer sees a use after free only in memory it got back */
#else
enum { ARENA_CACHE_MAX = 64 };
#endif
static pthread_mutex_t chunk_lock = PTHREAD_MUTEX_INITIALIZER;
static ArenaChunk *chunk_cache;
static int chunks_cached;

static ArenaChunk *chunk_take(void) {
    pthread_mutex_lock(&chunk_lock);
    ArenaChunk *c = chunk_cache;
    if (c) {
        chunk_cache = c->next;
        chunks_cached--;
    }
    pthread_mutex_unlock(&chunk_lock);
    return c ? c : xmalloc(sizeof(ArenaChunk) + ARENA_CHUNK);
}

static void chunk_give(ArenaChunk *c) {
    if (c->size == ARENA_CHUNK) {
        pthread_mutex_lock(&chunk_lock);
        bool kept = chunks_cached < ARENA_CACHE_MAX;
        if (kept) {
            c->next = chunk_cache;
            chunk_cache = c;
            chunks_cached++;
        }
        pthread_mutex_unlock(&chunk_lock);
        if (kept) return;
    }
    free(c);
}

void arena_init(Arena *arena) {
    arena->chunks = NULL;
    arena->used = 0;
}

void *arena_alloc(Arena *arena, size_t size) {
    size = (size + 15) & ~(size_t)15;
    if (size == 0) size = 16;
    ArenaChunk *c = arena->chunks;
    if (!c || arena->used + size > c->size) {
        if (size > ARENA_CHUNK / 4) {
            /* A big block gets its own chunk, kept behind the current one. */
            ArenaChunk *big = xmalloc(sizeof(ArenaChunk) + size);
            big->size = size;
            if (c) {
                big->next = c->next;
                c->next = big;
            } else {
                big->next = NULL;
                arena->chunks = big;
                arena->used = size;
            }
            memset(big->data, 0, size);
            return big->data;
        }
        c = chunk_take();
        c->size = ARENA_CHUNK;
        c->next = arena->chunks;
        arena->chunks = c;
        arena->used = 0;
    }
    void *p = c->data + arena->used;
    arena->used += size;
    memset(p, 0, size);
    return p;
}

char *arena_strndup(Arena *arena, const char *s, size_t n) {
    char *p = arena_alloc(arena, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *arena_strdup(Arena *arena, const char *s) { return arena_strndup(arena, s, strlen(s)); }

char *arena_printf(Arena *arena, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = arena_alloc(arena, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}

void arena_free(Arena *arena) {
    ArenaChunk *c = arena->chunks;
    while (c) {
        ArenaChunk *next = c->next;
        chunk_give(c);
        c = next;
    }
    arena->chunks = NULL;
    arena->used = 0;
}

/* ---- Strbuf ----------------------------------------------------------------------------- */
static void sb_reserve(Strbuf *sb, size_t extra) {
    if (sb->len + extra + 1 <= sb->cap) return;
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < sb->len + extra + 1) cap *= 2;
    sb->data = xrealloc(sb->data, cap);
    sb->cap = cap;
}

void sb_putn(Strbuf *sb, const char *s, size_t n) {
    sb_reserve(sb, n);
    memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = 0;
}

void sb_putc(Strbuf *sb, char c) { sb_putn(sb, &c, 1); }
void sb_puts(Strbuf *sb, const char *s) { sb_putn(sb, s, strlen(s)); }

void sb_vprintf(Strbuf *sb, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    if (n > 0) {
        sb_reserve(sb, (size_t)n);
        vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap2);
        sb->len += (size_t)n;
    }
    va_end(ap2);
}

void sb_printf(Strbuf *sb, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(sb, fmt, ap);
    va_end(ap);
}

const char *sb_str(Strbuf *sb) { return sb->data ? sb->data : ""; }

void sb_clear(Strbuf *sb) {
    sb->len = 0;
    if (sb->data) sb->data[0] = 0;
}

void sb_free(Strbuf *sb) {
    free(sb->data);
    sb->data = NULL;
    sb->len = sb->cap = 0;
}

/* ---- StrMap ----------------------------------------------------------------------------- */
uint64_t hash_bytes(const void *data, size_t n, uint64_t seed) {
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ull ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static size_t strmap_slot(const StrMap *map, const char *key) {
    size_t mask = map->cap - 1;
    size_t i = (size_t)hash_bytes(key, strlen(key), 0) & mask;
    while (map->keys[i] && strcmp(map->keys[i], key) != 0) i = (i + 1) & mask;
    return i;
}

void *strmap_get(const StrMap *map, const char *key) {
    if (!map->cap) return NULL;
    size_t i = strmap_slot(map, key);
    return map->keys[i] ? map->values[i] : NULL;
}

bool strmap_has(const StrMap *map, const char *key) {
    return map->cap && map->keys[strmap_slot(map, key)] != NULL;
}

void strmap_put(StrMap *map, const char *key, void *value) {
    if ((map->len + 1) * 2 > map->cap) {
        StrMap bigger = {0};
        bigger.cap = map->cap ? map->cap * 2 : 16;
        bigger.keys = xcalloc(bigger.cap, sizeof(char *));
        bigger.values = xcalloc(bigger.cap, sizeof(void *));
        for (size_t i = 0; i < map->cap; i++)
            if (map->keys[i]) {
                size_t j = strmap_slot(&bigger, map->keys[i]);
                bigger.keys[j] = map->keys[i];
                bigger.values[j] = map->values[i];
                bigger.len++;
            }
        strmap_free(map);
        *map = bigger;
    }
    size_t i = strmap_slot(map, key);
    if (!map->keys[i]) {
        map->keys[i] = key;
        map->len++;
    }
    map->values[i] = value;
}

void strmap_free(StrMap *map) {
    free(map->keys);
    free(map->values);
    map->keys = NULL;
    map->values = NULL;
    map->len = map->cap = 0;
}

/* ---- Environment ---------------------------------------------------------------------- */
bool env_flag(const char *name, bool fallback) {
    static const char *const no[] = {"0", "off", "false", "no"}, *const yes[] = {"1", "on", "true", "yes"};
    const char *v = getenv(name);
    if (!v) return fallback;
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, no[i]) == 0) return false;
        if (strcasecmp(v, yes[i]) == 0) return true;
    }
    return fallback;
}

/* ---- Files ---------------------------------------------------------------------------- */
bool read_file(const char *path, char **data, size_t *len, const char **error) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        *error = strerror(errno);
        return false;
    }
    Strbuf sb = {0};
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) sb_putn(&sb, buf, n);
    bool failed = ferror(f);
    fclose(f);
    if (failed) {
        sb_free(&sb);
        *error = "read error";
        return false;
    }
    if (!sb.data) sb_putn(&sb, "", 0);
    *data = sb.data;
    *len = sb.len;
    return true;
}

double monotonic_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
