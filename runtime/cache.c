/*
 * cache.c: the kernel cache (see cache.h for the key, the file format and the guarantees).
 *
 * SHA-256 (FIPS 180-4) hashes the keys: 256 bits make a collision between two kernels
 * practically impossible, and it needs no library (the x86 SHA extensions where the CPU has
 * them: a disk hit hashes the source and a few keys, which the portable C made a sixth of its
 * host time). XXH64 checksums the payloads (a disk hit
 * hashes the whole cubin, and SHA-256 was most of its time). The disk side is plain POSIX: an
 * entry is read whole with one read into the buffer that becomes the image, and validated
 * field by field; writes go to a mkstemp file in
 * the cache directory, are fsync'd and renamed over the entry, so concurrent writers of the same
 * key (threads or processes) each publish a complete file and the last rename wins. The memory
 * side is an open-addressing table of 32-byte keys under one mutex.
 */
#include "runtime/cache.h"

#include <assert.h>
#include <stdatomic.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tile/tile.h"

/* ---- SHA-256 -------------------------------------------------------------------------------- */
static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

/* The compression function over nblocks 64-byte blocks, in portable C. */
static void blocks_portable(uint32_t state[8], const uint8_t *p, size_t nblocks) {
    for (; nblocks; nblocks--, p += 64) {
        uint32_t w[64];
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
        for (int i = 16; i < 64; i++) {
            uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
            uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
        uint32_t e = state[4], f = state[5], g = state[6], hh = state[7];
        for (int i = 0; i < 64; i++) {
            uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + sha256_k[i] + w[i];
            uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            hh = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        state[0] += a;
        state[1] += b;
        state[2] += c;
        state[3] += d;
        state[4] += e;
        state[5] += f;
        state[6] += g;
        state[7] += hh;
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_SHA_NI_PATH 1
/* The same with the x86 SHA extensions (a key of a few blocks and a source of a few KB hash in
 * a fraction of the portable time, which a disk hit pays for every kernel). The state lives in
 * two registers as the instructions want it, ABEF and CDGH; each sha256rnds2 does two rounds on
 * the low two words of its message operand, and sha256msg1/msg2 extend the message schedule. */
__attribute__((target("sha,sse4.1,ssse3"))) static void blocks_sha_ni(uint32_t state[8], const uint8_t *p,
                                                                      size_t nblocks) {
    const __m128i byteswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i dcba = _mm_loadu_si128((const __m128i *)&state[0]), hgfe = _mm_loadu_si128((const __m128i *)&state[4]);
    __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1), efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    __m128i abef = _mm_alignr_epi8(cdab, efgh, 8), cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);
    for (; nblocks; nblocks--, p += 64) {
        __m128i abef0 = abef, cdgh0 = cdgh, m[4];
        for (int i = 0; i < 16; i++) {
            if (i < 4)
                m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), byteswap);
            else /* W[4i..4i+3] from the four groups before it, m[i & 3] holding group i - 4 */
                m[i & 3] = _mm_sha256msg2_epu32(
                    _mm_add_epi32(_mm_sha256msg1_epu32(m[i & 3], m[(i + 1) & 3]),
                                  _mm_alignr_epi8(m[(i + 3) & 3], m[(i + 2) & 3], 4)),
                    m[(i + 3) & 3]);
            __m128i wk = _mm_add_epi32(m[i & 3], _mm_loadu_si128((const __m128i *)&sha256_k[4 * i]));
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
            abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0E));
        }
        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
    }
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B), dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)&state[0], _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128((__m128i *)&state[4], _mm_alignr_epi8(dchg, feba, 8));
}

static bool cpu_has_sha_ni(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSSE3) || !(c & bit_SSE4_1)) return false;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_SHA);
}
#endif

typedef void (*Sha256Blocks)(uint32_t state[8], const uint8_t *p, size_t nblocks);
static _Atomic(Sha256Blocks) sha256_blocks;

static Sha256Blocks blocks_fn(void) {
    Sha256Blocks f = atomic_load_explicit(&sha256_blocks, memory_order_relaxed);
    if (f) return f;
    f = blocks_portable;
#ifdef HAVE_SHA_NI_PATH
    if (cpu_has_sha_ni()) f = blocks_sha_ni;
#endif
    atomic_store_explicit(&sha256_blocks, f, memory_order_relaxed);
    return f;
}

bool sha256_select(bool portable) {
    blocks_fn();
#ifdef HAVE_SHA_NI_PATH
    if (!portable && cpu_has_sha_ni()) {
        atomic_store(&sha256_blocks, blocks_sha_ni);
        return true;
    }
#endif
    atomic_store(&sha256_blocks, blocks_portable);
    return portable;
}

void sha256_init(Sha256 *h) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(h->state, iv, sizeof iv);
    h->total = 0;
    h->used = 0;
}

void sha256_update(Sha256 *h, const void *data, size_t n) {
    const uint8_t *p = data;
    h->total += n;
    if (h->used) {
        size_t take = 64 - h->used < n ? 64 - h->used : n;
        memcpy(h->block + h->used, p, take);
        h->used += take;
        p += take;
        n -= take;
        if (h->used < 64) return;
        blocks_fn()(h->state, h->block, 1);
        h->used = 0;
    }
    if (n >= 64) {
        blocks_fn()(h->state, p, n / 64);
        p += n / 64 * 64;
        n %= 64;
    }
    memcpy(h->block, p, n);
    h->used = n;
}

void sha256_final(Sha256 *h, uint8_t digest[32]) {
    uint64_t bits = h->total * 8;
    h->block[h->used++] = 0x80;
    if (h->used > 56) {
        memset(h->block + h->used, 0, 64 - h->used);
        blocks_fn()(h->state, h->block, 1);
        h->used = 0;
    }
    memset(h->block + h->used, 0, 56 - h->used);
    for (int i = 0; i < 8; i++) h->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    blocks_fn()(h->state, h->block, 1);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++) digest[4 * i + j] = (uint8_t)(h->state[i] >> (24 - 8 * j));
}

void sha256(const void *data, size_t n, uint8_t digest[32]) {
    Sha256 h;
    sha256_init(&h);
    sha256_update(&h, data, n);
    sha256_final(&h, digest);
}

/* ---- XXH64 --------------------------------------------------------------------------------- */
/* The payload checksum: XXH64 (seed 0) as specified by its author (github.com/Cyan4973/xxHash,
 * doc/xxhash_spec.md), a few GB/s where this file's SHA-256 does about 0.2: a disk hit of a
 * 60 KB cubin spent most of its time hashing. A checksum only has to catch damage. */
static const uint64_t xxh_p1 = 0x9E3779B185EBCA87u, xxh_p2 = 0xC2B2AE3D27D4EB4Fu, xxh_p3 = 0x165667B19E3779F9u,
                      xxh_p4 = 0x85EBCA77C2B2AE63u, xxh_p5 = 0x27D4EB2F165667C5u;

static uint64_t rotl64(uint64_t x, int n) { return (x << n) | (x >> (64 - n)); }
static uint64_t read64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}
static uint64_t read32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}
static uint64_t xxh_round(uint64_t acc, uint64_t input) { return rotl64(acc + input * xxh_p2, 31) * xxh_p1; }
static uint64_t xxh_merge(uint64_t acc, uint64_t v) { return (acc ^ xxh_round(0, v)) * xxh_p1 + xxh_p4; }

uint64_t xxh64(const void *data, size_t n) {
    const uint8_t *p = data, *end = p + n;
    uint64_t h;
    if (n >= 32) {
        uint64_t v1 = xxh_p1 + xxh_p2, v2 = xxh_p2, v3 = 0, v4 = 0 - xxh_p1;
        for (; end - p >= 32; p += 32) {
            v1 = xxh_round(v1, read64(p));
            v2 = xxh_round(v2, read64(p + 8));
            v3 = xxh_round(v3, read64(p + 16));
            v4 = xxh_round(v4, read64(p + 24));
        }
        h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
        h = xxh_merge(xxh_merge(xxh_merge(xxh_merge(h, v1), v2), v3), v4);
    } else {
        h = xxh_p5;
    }
    h += (uint64_t)n;
    for (; end - p >= 8; p += 8) h = rotl64(h ^ xxh_round(0, read64(p)), 27) * xxh_p1 + xxh_p4;
    if (end - p >= 4) {
        h = rotl64(h ^ read32(p) * xxh_p1, 23) * xxh_p2 + xxh_p3;
        p += 4;
    }
    for (; p < end; p++) h = rotl64(h ^ *p * xxh_p5, 11) * xxh_p1;
    h ^= h >> 33;
    h *= xxh_p2;
    h ^= h >> 29;
    h *= xxh_p3;
    return h ^ (h >> 32);
}

/* ---- keys ----------------------------------------------------------------------------------- */
static void put_u64le(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u32le(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get_u64le(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static uint32_t get_u32le(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}

void cache_key_begin(Sha256 *h) {
    sha256_init(h);
    cache_key_add_str(h, "tile-kernel-key", "1");
}

void cache_key_add(Sha256 *h, const char *tag, const void *data, size_t n) {
    uint8_t len[8];
    size_t tl = strlen(tag);
    put_u64le(len, tl);
    sha256_update(h, len, 8);
    sha256_update(h, tag, tl);
    put_u64le(len, n);
    sha256_update(h, len, 8);
    if (n) sha256_update(h, data, n);
}

void cache_key_add_str(Sha256 *h, const char *tag, const char *s) { cache_key_add(h, tag, s ? s : "", s ? strlen(s) : 0); }

void cache_key_add_i64(Sha256 *h, const char *tag, int64_t v) {
    uint8_t b[8];
    put_u64le(b, (uint64_t)v);
    cache_key_add(h, tag, b, 8);
}

CacheKey cache_key_end(Sha256 *h) {
    CacheKey k;
    sha256_final(h, k.bytes);
    return k;
}

static int compare_bindings(const void *a, const void *b) {
    return strcmp(((const ConstBinding *)a)->name, ((const ConstBinding *)b)->name);
}

CacheKey cache_kernel_key(const CacheKernelId *id) {
    Sha256 h;
    cache_key_begin(&h);
    if (id->source_sha256) cache_key_add(&h, "source-sha256", id->source_sha256, 32);
    else cache_key_add(&h, "source", id->source, id->source_len);
    cache_key_add_str(&h, "kernel", id->kernel);
    ConstBinding *sorted = xcalloc(id->nconsts + 1, sizeof *sorted);
    if (id->nconsts) memcpy(sorted, id->consts, id->nconsts * sizeof *sorted);
    qsort(sorted, id->nconsts, sizeof *sorted, compare_bindings);
    cache_key_add_i64(&h, "nconsts", (int64_t)id->nconsts);
    for (size_t i = 0; i < id->nconsts; i++) {
        cache_key_add_str(&h, "const.name", sorted[i].name);
        if (sorted[i].is_float) {
            uint64_t bits;
            memcpy(&bits, &sorted[i].f, 8);
            cache_key_add_i64(&h, "const.f", (int64_t)bits);
        } else {
            cache_key_add_i64(&h, "const.i", sorted[i].i);
        }
    }
    free(sorted);
    cache_key_add_str(&h, "arch", id->arch);
    cache_key_add_str(&h, "version", tile_version());
    cache_key_add_i64(&h, "codegen-format", CACHE_CODEGEN_FORMAT);
    cache_key_add_i64(&h, "num_warps", id->num_warps);
    return cache_key_end(&h);
}

void cache_key_hex(const CacheKey *key, char out[65]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[key->bytes[i] >> 4];
        out[2 * i + 1] = digits[key->bytes[i] & 15];
    }
    out[64] = 0;
}

bool cache_key_equal(const CacheKey *a, const CacheKey *b) { return memcmp(a->bytes, b->bytes, 32) == 0; }

/* ---- configuration -------------------------------------------------------------------------- */
void cache_config_from_env(CacheConfig *config) {
    memset(config, 0, sizeof *config);
    config->enabled = env_flag("TILE_CACHE", true);
    const char *dir = getenv("TILE_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n = -1;
    if (dir && *dir) n = snprintf(config->dir, sizeof config->dir, "%s", dir);
    else if (xdg && *xdg) n = snprintf(config->dir, sizeof config->dir, "%s/tile", xdg);
    else if (home && *home) n = snprintf(config->dir, sizeof config->dir, "%s/.cache/tile", home);
    if (n < 0 || (size_t)n >= sizeof config->dir) config->dir[0] = 0;
}

/* ---- disk ------------------------------------------------------------------------------------- */
void cache_entry_free(CacheEntry *e) {
    free(e->image);
    free(e->launch);
    memset(e, 0, sizeof *e);
}

void cache_entry_path(const char *dir, const CacheKey *key, Strbuf *out) {
    char hex[65];
    cache_key_hex(key, hex);
    sb_printf(out, "%s/%s.tcache", dir, hex);
}

/* Entries are trusted as written (a checksum catches damage, not forgery), so the directory
 * must be private: a directory that exists must belong to this user and be writable by no one
 * else. False with the reason in why; a missing directory is not private yet, and not an error. */
static bool dir_is_private(const char *dir, Strbuf *why) {
    struct stat st;
    if (stat(dir, &st) != 0) return false;
    if (!S_ISDIR(st.st_mode)) sb_printf(why, "%s is not a directory", dir);
    else if (st.st_uid != geteuid()) sb_printf(why, "%s belongs to another user; the cache is not used", dir);
    else if (st.st_mode & (S_IWGRP | S_IWOTH))
        sb_printf(why, "%s is writable by other users (mode %03o); the cache is not used", dir, (unsigned)(st.st_mode & 0777));
    else return true;
    return false;
}

/* Opens an entry for reading without blocking (a FIFO at its path would block forever) and
 * without following a symbolic link, and accepts only a regular file (whose reads O_NONBLOCK
 * does not affect). -1 with why set when something else is there; -1 with why untouched when
 * nothing is. *size is the file's size. */
static int open_entry(const char *path, off_t *size, Strbuf *why) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) sb_printf(why, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) sb_printf(why, "%s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode)) sb_printf(why, "%s: not a regular file", path);
    else {
        *size = st.st_size;
        return fd;
    }
    close(fd);
    return -1;
}

/* Reads up to n bytes (fewer only at the end of the file); the count, or -1 on an error. */
static ssize_t read_full(int fd, void *data, size_t n) {
    uint8_t *p = data;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Checks a whole entry file (file[0..size)) against key; the reason in why when it is bad. */
static bool entry_valid(const uint8_t *file, size_t size, const CacheKey *key, const char *path, Strbuf *why) {
    static const uint8_t zeros[CACHE_HEADER_SIZE - 64] = {0};
    if (size < CACHE_HEADER_SIZE) {
        sb_printf(why, "%s: truncated header (%zu bytes)", path, size);
    } else if (memcmp(file, "TILECACH", 8) != 0) {
        sb_printf(why, "%s: bad magic", path);
    } else if (get_u32le(file + 12) != CACHE_HEADER_SIZE) {
        sb_printf(why, "%s: header size %u, expected %u", path, get_u32le(file + 12), CACHE_HEADER_SIZE);
    } else if (memcmp(file + 16, key->bytes, 32) != 0) {
        sb_printf(why, "%s: the entry's key does not match its name", path);
    } else if (get_u64le(file + 48) < 16 || get_u64le(file + 48) > CACHE_MAX_ENTRY_BYTES) {
        sb_printf(why, "%s: bad payload length %llu", path, (unsigned long long)get_u64le(file + 48));
    } else if (size < CACHE_HEADER_SIZE + get_u64le(file + 48)) {
        sb_printf(why, "%s: truncated payload (%zu of %llu bytes)", path, size - CACHE_HEADER_SIZE,
                  (unsigned long long)get_u64le(file + 48));
    } else if (size > CACHE_HEADER_SIZE + get_u64le(file + 48)) {
        sb_printf(why, "%s: bytes after the payload", path);
    } else if (memcmp(file + 64, zeros, sizeof zeros) != 0 ||
               xxh64(file + CACHE_HEADER_SIZE, size - CACHE_HEADER_SIZE) != get_u64le(file + 56)) {
        sb_printf(why, "%s: payload checksum mismatch", path);
    } else if (get_u32le(file + CACHE_HEADER_SIZE + 12) > size - CACHE_HEADER_SIZE - 16) {
        sb_printf(why, "%s: launch data of %u bytes in a payload of %zu", path, get_u32le(file + CACHE_HEADER_SIZE + 12),
                  size - CACHE_HEADER_SIZE);
    } else {
        return true;
    }
    return false;
}

/* cache_disk_load with the directory's privacy already checked (cache_fetch checks it once). One
 * open, one fstat, one read of the whole file into the buffer that becomes the image. */
static CacheLookup disk_load(const char *dir, const CacheKey *key, CacheEntry *out, Strbuf *why) {
    Strbuf path = {0};
    cache_entry_path(dir, key, &path);
    size_t why_len = why->len;
    off_t size = 0;
    int fd = open_entry(sb_str(&path), &size, why);
    if (fd < 0) {
        sb_free(&path);
        return why->len > why_len ? CACHE_CORRUPT : CACHE_MISS;
    }
    CacheLookup result = CACHE_CORRUPT;
    /* One byte more than the file's size (and a NUL for PTX); a bigger file than any valid
     * entry is read only as far as its header, which then fails. */
    size_t cap = size < 0 || (uint64_t)size > CACHE_HEADER_SIZE + CACHE_MAX_ENTRY_BYTES ? CACHE_HEADER_SIZE
                                                                                          : (size_t)size + 1;
    uint8_t *file = try_malloc(cap + 1); /* sized by the file: out of memory is a miss, not an abort */
    ssize_t got = file ? read_full(fd, file, cap) : 0;
    close(fd);
    if (!file) {
        sb_printf(why, "%s: out of memory for %zu bytes", sb_str(&path), cap + 1);
    } else if (got < 0) {
        sb_printf(why, "%s: %s", sb_str(&path), strerror(errno));
    } else if (got >= 12 && memcmp(file, "TILECACH", 8) == 0 && get_u32le(file + 8) != CACHE_FORMAT_VERSION) {
        /* another format's entry (an older tile's, or a newer one's): not ours to read, and not
         * damage either, so a plain miss; the rebuilt entry replaces it */
        result = CACHE_MISS;
    } else if (entry_valid(file, (size_t)got, key, sb_str(&path), why)) {
        const uint8_t *payload = file + CACHE_HEADER_SIZE;
        out->is_ptx = get_u32le(payload) != 0;
        out->threads = get_u32le(payload + 4);
        out->shared_bytes = get_u32le(payload + 8);
        out->launch_len = get_u32le(payload + 12);
        if (out->launch_len) {
            out->launch = xmalloc(out->launch_len);
            memcpy(out->launch, payload + 16, out->launch_len);
        }
        out->len = (size_t)got - CACHE_HEADER_SIZE - 16 - out->launch_len;
        memmove(file, payload + 16 + out->launch_len, out->len);
        file[out->len] = 0;
        out->image = file;
        file = NULL;
        result = CACHE_HIT;
    }
    free(file);
    sb_free(&path);
    return result;
}

CacheLookup cache_disk_load(const char *dir, const CacheKey *key, CacheEntry *out, Strbuf *why) {
    memset(out, 0, sizeof *out);
    if (!dir_is_private(dir, why)) return CACHE_MISS;
    return disk_load(dir, key, out, why);
}

/* mkdir -p with mode 0700 for the directories it creates. */
static bool make_dirs(const char *dir, Strbuf *err) {
    char *p = xstrdup(dir);
    bool ok = true;
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0700) != 0 && errno != EEXIST) {
                sb_printf(err, "cannot create %s: %s", p, strerror(errno));
                ok = false;
                break;
            }
            *s = c;
            if (!c) break;
        }
    }
    free(p);
    return ok;
}

static bool write_all(int fd, const void *data, size_t n) {
    const uint8_t *p = data;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* cache_disk_store, and with durable false cache_disk_store_hint: no fsync of the file nor of the
 * directory (the rename is still atomic; after a crash the entry may be missing or fail its
 * checksum, which readers treat as a miss). */
static bool disk_store(const char *dir, const CacheKey *key, const CacheEntry *e, bool durable, Strbuf *err) {
    if (!dir || !*dir) {
        sb_puts(err, "no cache directory");
        return false;
    }
    if (!make_dirs(dir, err) || !dir_is_private(dir, err)) return false;
    if (e->launch_len > UINT32_MAX) {
        sb_puts(err, "launch data too large for an entry");
        return false;
    }
    size_t plen = 16 + e->launch_len + e->len;
    uint8_t *payload = xmalloc(plen);
    put_u32le(payload, e->is_ptx);
    put_u32le(payload + 4, e->threads);
    put_u32le(payload + 8, e->shared_bytes);
    put_u32le(payload + 12, (uint32_t)e->launch_len);
    if (e->launch_len) memcpy(payload + 16, e->launch, e->launch_len);
    if (e->len) memcpy(payload + 16 + e->launch_len, e->image, e->len);
    uint8_t header[CACHE_HEADER_SIZE];
    memcpy(header, "TILECACH", 8);
    put_u32le(header + 8, CACHE_FORMAT_VERSION);
    put_u32le(header + 12, CACHE_HEADER_SIZE);
    memcpy(header + 16, key->bytes, 32);
    put_u64le(header + 48, plen);
    put_u64le(header + 56, xxh64(payload, plen));
    memset(header + 64, 0, CACHE_HEADER_SIZE - 64);

    Strbuf tmp = {0}, path = {0};
    sb_printf(&tmp, "%s/.tmp-XXXXXX", dir);
    cache_entry_path(dir, key, &path);
    bool ok = false;
    int fd = mkstemp(tmp.data);
    if (fd < 0) {
        sb_printf(err, "cannot create a file in %s: %s", dir, strerror(errno));
    } else {
        if (!write_all(fd, header, sizeof header) || !write_all(fd, payload, plen)) {
            sb_printf(err, "cannot write %s: %s", sb_str(&tmp), strerror(errno));
        } else if (durable && fsync(fd) != 0) {
            sb_printf(err, "cannot sync %s: %s", sb_str(&tmp), strerror(errno));
        } else if (fchmod(fd, 0644), close(fd) != 0) {
            fd = -1;
            sb_printf(err, "cannot close %s: %s", sb_str(&tmp), strerror(errno));
        } else {
            fd = -1;
            if (rename(tmp.data, path.data) != 0) sb_printf(err, "cannot rename to %s: %s", sb_str(&path), strerror(errno));
            else ok = true;
        }
        if (fd >= 0) close(fd);
        if (!ok) unlink(tmp.data);
    }
    if (ok && durable) {
        /* Make the rename itself durable; failure here only risks losing the entry. */
        int dfd = open(dir, O_RDONLY);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    free(payload);
    sb_free(&tmp);
    sb_free(&path);
    return ok;
}

bool cache_disk_store(const char *dir, const CacheKey *key, const CacheEntry *e, Strbuf *err) {
    return disk_store(dir, key, e, true, err);
}

bool cache_disk_store_hint(const char *dir, const CacheKey *key, const CacheEntry *e, Strbuf *err) {
    return disk_store(dir, key, e, false, err);
}

bool cache_fetch(const CacheConfig *config, const CacheKey *key, CacheBuildFn build, void *user, CacheEntry *out,
                 CacheOutcome *outcome, Strbuf *err) {
    outcome->lookup = CACHE_MISS;
    outcome->built = false;
    outcome->stored = false;
    sb_clear(&outcome->note);
    bool use_disk = config->enabled && config->dir[0];
    /* One stat of the directory: a missing one is created by the store below; one that is not
     * private (a note says why) is not used at all. */
    bool private_dir = use_disk && dir_is_private(config->dir, &outcome->note);
    if (use_disk && !private_dir && outcome->note.len) use_disk = false;
    if (private_dir) {
        memset(out, 0, sizeof *out);
        outcome->lookup = disk_load(config->dir, key, out, &outcome->note);
        if (outcome->lookup == CACHE_HIT) return true;
    }
    outcome->built = true;
    memset(out, 0, sizeof *out);
    if (!build(user, out, err)) return false;
    if (use_disk) {
        if (outcome->note.len) sb_puts(&outcome->note, "; ");
        outcome->stored = cache_disk_store(config->dir, key, out, &outcome->note);
    }
    return true;
}

/* ---- memory ----------------------------------------------------------------------------------- */
void cache_memory_init(CacheMemory *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
}

void cache_memory_destroy(CacheMemory *m, void (*free_value)(void *value, void *user), void *user) {
    for (size_t i = 0; i < m->cap; i++)
        if (m->values[i] && free_value) free_value(m->values[i], user);
    free(m->keys);
    free(m->values);
    pthread_mutex_destroy(&m->lock);
    memset(m, 0, sizeof *m);
}

static size_t slot_of(const CacheMemory *m, const CacheKey *key) {
    uint64_t h = get_u64le(key->bytes);
    size_t i = (size_t)h & (m->cap - 1);
    while (m->values[i] && !cache_key_equal(&m->keys[i], key)) i = (i + 1) & (m->cap - 1);
    return i;
}

void *cache_memory_get(CacheMemory *m, const CacheKey *key) {
    pthread_mutex_lock(&m->lock);
    void *v = m->cap ? m->values[slot_of(m, key)] : NULL;
    pthread_mutex_unlock(&m->lock);
    return v;
}

void *cache_memory_put(CacheMemory *m, const CacheKey *key, void *value) {
    assert(value);
    pthread_mutex_lock(&m->lock);
    if ((m->len + 1) * 2 > m->cap) {
        CacheMemory grown = {.cap = m->cap ? m->cap * 2 : 16};
        grown.keys = xcalloc(grown.cap, sizeof *grown.keys);
        grown.values = xcalloc(grown.cap, sizeof *grown.values);
        for (size_t i = 0; i < m->cap; i++)
            if (m->values[i]) {
                size_t j = slot_of(&grown, &m->keys[i]);
                grown.keys[j] = m->keys[i];
                grown.values[j] = m->values[i];
            }
        free(m->keys);
        free(m->values);
        m->keys = grown.keys;
        m->values = grown.values;
        m->cap = grown.cap;
    }
    size_t i = slot_of(m, key);
    if (!m->values[i]) {
        m->keys[i] = *key;
        m->values[i] = value;
        m->len++;
    }
    void *stored = m->values[i];
    pthread_mutex_unlock(&m->lock);
    return stored;
}

size_t cache_memory_size(CacheMemory *m) {
    pthread_mutex_lock(&m->lock);
    size_t n = m->len;
    pthread_mutex_unlock(&m->lock);
    return n;
}
