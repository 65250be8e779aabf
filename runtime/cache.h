/*
 * cache.h: the kernel cache: compiled GPU kernels kept in memory (per context) and on disk.
 *
 * A key is the SHA-256 of everything that decides the compiled code: the source text (or its
 * SHA-256, which a program computes once: CacheKernelId.source_sha256), the
 * kernel's name, its constants (sorted by name), the architecture, the compiler's version and
 * the code generator's format number, and the options (num_warps). Each field is fed to the hash
 * with a tag and its length, so that no two different field lists hash the same bytes.
 *
 * The disk cache stores one file per key, <dir>/<64 hex digits>.tcache:
 *
 *   offset  size  field
 *   0       8     magic "TILECACH"
 *   8       4     format version (CACHE_FORMAT_VERSION), little-endian
 *   12      4     header size (88)
 *   16      32    the key
 *   48      8     payload length, little-endian
 *   56      8     XXH64 (seed 0) of the payload, little-endian
 *   64      24    zero (format 1 had a SHA-256 of the payload at 56..88)
 *   88      ...   payload: u32 is_ptx, u32 threads, u32 shared_bytes, u32 launch_len, then
 *                 launch_len bytes of launch data (what a launch needs besides the image, so that
 *                 a hit needs nothing recomputed: the cuda device keeps its tensor maps there),
 *                 then the image (a cubin, or PTX text without its NUL)
 *
 * Entries are written to a temporary file in the cache directory (mkstemp), fsync'd, then
 * renamed over the final name, so a reader sees a whole old entry or a whole new one, never a
 * partial one, whatever other processes do. A reader checks the magic, version, sizes, key and
 * checksum; a bad entry is reported as CACHE_CORRUPT and the caller rebuilds and overwrites it.
 * An entry of another format version (an older or newer tile's) is a plain CACHE_MISS: rebuilt
 * and replaced, with nothing to report. The checksum catches damage,
 * not forgery: the directory must be private to the user (checked before every use).
 *
 * The same format holds the cuda device's interface entries and parse markers (device_cuda.c,
 * interface.c): their payloads are in the image field.
 *
 * The memory cache maps keys to opaque values (the cuda device stores loaded functions) under
 * a mutex. Nothing here knows about GPUs, so tests/test_cache.c runs it everywhere.
 */
#ifndef TILE_RUNTIME_CACHE_H
#define TILE_RUNTIME_CACHE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frontend/frontend.h"
#include "support/support.h"

#define CACHE_FORMAT_VERSION 3u /* 2: XXH64 payload checksum (was SHA-256); 3: launch data */
/* Bump when the code generator changes what it emits for the same IR (or the ABI changes). */
#define CACHE_CODEGEN_FORMAT 5u /* 2: wgmma on sm_90a; LLVM at O2 (cumsum_rows' code changed); 3: no LSR;
                                   4: unit strides as constants, one compare per constant run;
                                   5: the light LLVM IR pipeline */
#define CACHE_HEADER_SIZE 88u
#define CACHE_MAX_ENTRY_BYTES (UINT64_C(1) << 30)

typedef struct CacheKey {
    uint8_t bytes[32];
} CacheKey;

/* ---- SHA-256 -------------------------------------------------------------------------------- */
typedef struct Sha256 {
    uint32_t state[8];
    uint64_t total;
    uint8_t block[64];
    size_t used;
} Sha256;

void sha256_init(Sha256 *h);
void sha256_update(Sha256 *h, const void *data, size_t n);
void sha256_final(Sha256 *h, uint8_t digest[32]);
void sha256(const void *data, size_t n, uint8_t digest[32]);
/* The compression function: the x86 SHA extensions where the CPU has them (chosen at first
 * use), else portable C. For tests: portable = true selects the C; false the extensions, and
 * returns whether this CPU has them (else the C stays). */
bool sha256_select(bool portable);

/* XXH64 with seed 0: the checksum of a disk entry's payload (fast; catches damage). */
uint64_t xxh64(const void *data, size_t n);

/* ---- keys ----------------------------------------------------------------------------------- */
/* A key is built from tagged, length-prefixed fields. */
void cache_key_begin(Sha256 *h);
void cache_key_add(Sha256 *h, const char *tag, const void *data, size_t n);
void cache_key_add_str(Sha256 *h, const char *tag, const char *s);
void cache_key_add_i64(Sha256 *h, const char *tag, int64_t v);
CacheKey cache_key_end(Sha256 *h);

/* What identifies one compiled kernel. */
typedef struct CacheKernelId {
    const char *source;        /* the whole source text */
    size_t source_len;
    const uint8_t *source_sha256; /* or NULL: its SHA-256 when the caller has it (a program does),
                                     hashed in place of the text (another key, as unique) */
    const char *kernel;
    const ConstBinding *consts; /* any order: sorted here */
    size_t nconsts;
    const char *arch;          /* "sm_90a" */
    int num_warps;
} CacheKernelId;

CacheKey cache_kernel_key(const CacheKernelId *id);
void cache_key_hex(const CacheKey *key, char out[65]);
bool cache_key_equal(const CacheKey *a, const CacheKey *b);

/* ---- configuration -------------------------------------------------------------------------- */
typedef struct CacheConfig {
    bool enabled;              /* false when TILE_CACHE=0 */
    char dir[4096];            /* "" when no directory could be determined */
} CacheConfig;

/* From the environment: TILE_CACHE (0 turns the cache off), TILE_CACHE_DIR, else
 * $XDG_CACHE_HOME/tile, else $HOME/.cache/tile. */
void cache_config_from_env(CacheConfig *config);

/* ---- entries on disk ------------------------------------------------------------------------ */
typedef struct CacheEntry {
    bool is_ptx;
    unsigned threads;
    unsigned shared_bytes;
    uint8_t *launch;           /* launch data (the format is the caller's), malloc'd; NULL: none */
    size_t launch_len;
    uint8_t *image;            /* malloc'd; for PTX also NUL-terminated (not counted in len) */
    size_t len;
} CacheEntry;

void cache_entry_free(CacheEntry *e);

typedef enum CacheLookup {
    CACHE_HIT,
    CACHE_MISS,                /* no entry, one of another format version, or the cache is off */
    CACHE_CORRUPT,             /* an entry exists but is damaged: rebuild and overwrite it */
} CacheLookup;

/* The path of key's entry in dir. */
void cache_entry_path(const char *dir, const CacheKey *key, Strbuf *out);
/* Reads and validates key's entry. On CACHE_CORRUPT, why says what is wrong. */
CacheLookup cache_disk_load(const char *dir, const CacheKey *key, CacheEntry *out, Strbuf *why);
/* Writes key's entry atomically, creating dir (and its parents) when missing. False with the
 * reason in err (an unwritable directory, a full disk): the cache is an optimization, callers
 * carry on. */
bool cache_disk_store(const char *dir, const CacheKey *key, const CacheEntry *e, Strbuf *err);
/* The same without fsync: for small entries whose loss costs only time (the cuda device's
 * interface entries and parse markers), written on a compile path where two syncs would cost
 * milliseconds. Atomic all the same. */
bool cache_disk_store_hint(const char *dir, const CacheKey *key, const CacheEntry *e, Strbuf *err);

/* What cache_fetch did. */
typedef struct CacheOutcome {
    CacheLookup lookup;        /* what the disk had */
    bool built;                /* build was called */
    bool stored;               /* a new entry was written */
    Strbuf note;               /* why an entry was corrupt or could not be stored ("" if none) */
} CacheOutcome;

/* Fills out from key's disk entry, or calls build(user, out, err) and stores what it made.
 * With the cache off (or no directory) it only builds. Fails only when build fails. */
typedef bool (*CacheBuildFn)(void *user, CacheEntry *out, Strbuf *err);
bool cache_fetch(const CacheConfig *config, const CacheKey *key, CacheBuildFn build, void *user,
                 CacheEntry *out, CacheOutcome *outcome, Strbuf *err);

/* ---- the memory cache ----------------------------------------------------------------------- */
typedef struct CacheMemory {
    pthread_mutex_t lock;
    CacheKey *keys;
    void **values;
    size_t len, cap;           /* open addressing; cap is 0 or a power of two */
} CacheMemory;

void cache_memory_init(CacheMemory *m);
/* Calls free_value on every value (when not NULL), then frees the table. */
void cache_memory_destroy(CacheMemory *m, void (*free_value)(void *value, void *user), void *user);
void *cache_memory_get(CacheMemory *m, const CacheKey *key);
/* Inserts value unless the key is present; returns the value now stored under key (value, or
 * the one another thread stored first: the caller then discards its own). */
void *cache_memory_put(CacheMemory *m, const CacheKey *key, void *value);
size_t cache_memory_size(CacheMemory *m);

#endif
