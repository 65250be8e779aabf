/*
 * cache.c: the kernel cache (see cache.h for the key, the file format and the guarantees).
 *
 * SHA-256 (FIPS 180-4) hashes the keys and checksums the payloads: 256 bits make a collision
 * between two kernels practically impossible, and it needs no library. The disk side is plain
 * POSIX: entries are read whole and validated field by field; writes go to a mkstemp file in
 * the cache directory, are fsync'd and renamed over the entry, so concurrent writers of the same
 * key (threads or processes) each publish a complete file and the last rename wins. The memory
 * side is an open-addressing table of 32-byte keys under one mutex.
 */
#include "runtime/cache.h"

#include <assert.h>
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

static void sha256_block(Sha256 *h, const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h->state[0], b = h->state[1], c = h->state[2], d = h->state[3];
    uint32_t e = h->state[4], f = h->state[5], g = h->state[6], hh = h->state[7];
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
    h->state[0] += a;
    h->state[1] += b;
    h->state[2] += c;
    h->state[3] += d;
    h->state[4] += e;
    h->state[5] += f;
    h->state[6] += g;
    h->state[7] += hh;
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
    while (n) {
        if (h->used == 0 && n >= 64) {
            sha256_block(h, p);
            p += 64;
            n -= 64;
            continue;
        }
        size_t take = 64 - h->used < n ? 64 - h->used : n;
        memcpy(h->block + h->used, p, take);
        h->used += take;
        p += take;
        n -= take;
        if (h->used == 64) {
            sha256_block(h, h->block);
            h->used = 0;
        }
    }
}

void sha256_final(Sha256 *h, uint8_t digest[32]) {
    uint64_t bits = h->total * 8;
    uint8_t pad = 0x80;
    sha256_update(h, &pad, 1);
    pad = 0;
    while (h->used != 56) sha256_update(h, &pad, 1);
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(h, len, 8);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++) digest[4 * i + j] = (uint8_t)(h->state[i] >> (24 - 8 * j));
}

void sha256(const void *data, size_t n, uint8_t digest[32]) {
    Sha256 h;
    sha256_init(&h);
    sha256_update(&h, data, n);
    sha256_final(&h, digest);
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
    cache_key_add(&h, "source", id->source, id->source_len);
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
 * without following a symbolic link, and accepts only a regular file. NULL with why set when
 * something else is there; NULL with why untouched when nothing is. */
static FILE *open_entry(const char *path, Strbuf *why) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) sb_printf(why, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    FILE *f = NULL;
    if (fstat(fd, &st) != 0) sb_printf(why, "%s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode)) sb_printf(why, "%s: not a regular file", path);
    else if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) sb_printf(why, "%s: %s", path, strerror(errno));
    else f = fdopen(fd, "rb");
    if (!f) close(fd);
    return f;
}

CacheLookup cache_disk_load(const char *dir, const CacheKey *key, CacheEntry *out, Strbuf *why) {
    memset(out, 0, sizeof *out);
    if (!dir_is_private(dir, why)) return CACHE_MISS;
    Strbuf path = {0};
    cache_entry_path(dir, key, &path);
    size_t why_len = why->len;
    FILE *f = open_entry(sb_str(&path), why);
    if (!f) {
        sb_free(&path);
        return why->len > why_len ? CACHE_CORRUPT : CACHE_MISS;
    }
    uint8_t header[CACHE_HEADER_SIZE];
    CacheLookup result = CACHE_CORRUPT;
    uint8_t *payload = NULL;
    size_t got = fread(header, 1, sizeof header, f);
    if (got != sizeof header) {
        sb_printf(why, "%s: truncated header (%zu bytes)", sb_str(&path), got);
    } else if (memcmp(header, "TILECACH", 8) != 0) {
        sb_printf(why, "%s: bad magic", sb_str(&path));
    } else if (get_u32le(header + 8) != CACHE_FORMAT_VERSION || get_u32le(header + 12) != CACHE_HEADER_SIZE) {
        sb_printf(why, "%s: format version %u, expected %u", sb_str(&path), get_u32le(header + 8), CACHE_FORMAT_VERSION);
    } else if (memcmp(header + 16, key->bytes, 32) != 0) {
        sb_printf(why, "%s: the entry's key does not match its name", sb_str(&path));
    } else {
        uint64_t len = get_u64le(header + 48);
        if (len < 16 || len > CACHE_MAX_ENTRY_BYTES) {
            sb_printf(why, "%s: bad payload length %llu", sb_str(&path), (unsigned long long)len);
        } else {
            payload = try_malloc((size_t)len + 1); /* a length read from the file: no abort */
            got = payload ? fread(payload, 1, (size_t)len, f) : 0;
            uint8_t extra;
            uint8_t digest[32];
            if (!payload) {
                sb_printf(why, "%s: out of memory for %llu bytes", sb_str(&path), (unsigned long long)len);
            } else if (got != len) {
                sb_printf(why, "%s: truncated payload (%zu of %llu bytes)", sb_str(&path), got, (unsigned long long)len);
            } else if (fread(&extra, 1, 1, f) != 0) {
                sb_printf(why, "%s: bytes after the payload", sb_str(&path));
            } else if (sha256(payload, (size_t)len, digest), memcmp(digest, header + 56, 32) != 0) {
                sb_printf(why, "%s: payload checksum mismatch", sb_str(&path));
            } else {
                out->is_ptx = get_u32le(payload) != 0;
                out->threads = get_u32le(payload + 4);
                out->shared_bytes = get_u32le(payload + 8);
                out->len = (size_t)len - 16;
                /* the payload becomes the image: its 16-byte head moves out of the way */
                memmove(payload, payload + 16, out->len);
                payload[out->len] = 0;
                out->image = payload;
                payload = NULL;
                result = CACHE_HIT;
            }
        }
    }
    free(payload);
    fclose(f);
    sb_free(&path);
    return result;
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

bool cache_disk_store(const char *dir, const CacheKey *key, const CacheEntry *e, Strbuf *err) {
    if (!dir || !*dir) {
        sb_puts(err, "no cache directory");
        return false;
    }
    if (!make_dirs(dir, err) || !dir_is_private(dir, err)) return false;
    size_t plen = 16 + e->len;
    uint8_t *payload = xmalloc(plen);
    put_u32le(payload, e->is_ptx);
    put_u32le(payload + 4, e->threads);
    put_u32le(payload + 8, e->shared_bytes);
    put_u32le(payload + 12, 0);
    if (e->len) memcpy(payload + 16, e->image, e->len);
    uint8_t header[CACHE_HEADER_SIZE];
    memcpy(header, "TILECACH", 8);
    put_u32le(header + 8, CACHE_FORMAT_VERSION);
    put_u32le(header + 12, CACHE_HEADER_SIZE);
    memcpy(header + 16, key->bytes, 32);
    put_u64le(header + 48, plen);
    sha256(payload, plen, header + 56);

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
        } else if (fsync(fd) != 0) {
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
    if (ok) {
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

bool cache_fetch(const CacheConfig *config, const CacheKey *key, CacheBuildFn build, void *user, CacheEntry *out,
                 CacheOutcome *outcome, Strbuf *err) {
    outcome->lookup = CACHE_MISS;
    outcome->built = false;
    outcome->stored = false;
    sb_clear(&outcome->note);
    bool use_disk = config->enabled && config->dir[0];
    if (use_disk && !dir_is_private(config->dir, &outcome->note) && outcome->note.len) use_disk = false;
    if (use_disk) {
        outcome->lookup = cache_disk_load(config->dir, key, out, &outcome->note);
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
