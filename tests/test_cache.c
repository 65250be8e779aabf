/* test_cache.c: the kernel cache without a GPU: SHA-256 against the FIPS vectors, keys that
 * change with every input that decides the code (and only with those), entries that round-trip
 * through the disk, corrupt entries (truncated, flipped, wrong magic, wrong key) detected and
 * rebuilt, writers racing on one key from threads and from processes, TILE_CACHE=0, an
 * unwritable directory, the environment's directory choice and the memory cache; and (issue 10)
 * a FIFO or a link at an entry's path, a directory others can write, the boolean variables. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/cache.h"

static char tmpdir[256];

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tile-cache-test-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tmpdir(void) {
    DIR *d = opendir(tmpdir);
    if (!d) return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(tmpdir);
}

TestSuite(cache, .init = make_tmpdir, .fini = remove_tmpdir);

static void hex(const uint8_t *d, char *out) {
    for (int i = 0; i < 32; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

/* The FIPS 180-4 vectors, under whichever compression function is selected. */
static void check_sha256_vectors(void) {
    uint8_t d[32];
    char h[65];
    sha256("", 0, d);
    hex(d, h);
    cr_assert_str_eq(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256("abc", 3, d);
    hex(d, h);
    cr_assert_str_eq(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256(two, strlen(two), d);
    hex(d, h);
    cr_assert_str_eq(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* A million 'a's fed in uneven pieces exercises the block buffering. */
    Sha256 s;
    sha256_init(&s);
    char chunk[997];
    memset(chunk, 'a', sizeof chunk);
    size_t left = 1000000;
    while (left) {
        size_t n = left < sizeof chunk ? left : (left % 7) + 1 + (left % 900);
        if (n > left) n = left;
        sha256_update(&s, chunk, n);
        left -= n;
    }
    sha256_final(&s, d);
    hex(d, h);
    cr_assert_str_eq(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Both compression functions (the x86 SHA extensions where this CPU has them, and the portable
 * C) give the vectors, and the same digest for every length from 0 to 600 bytes of random data,
 * hashed whole and in two pieces (every padding case, multi-block runs, the buffered tail). */
Test(cache, sha256_vectors) {
    sha256_select(true);
    check_sha256_vectors();
    bool extensions = sha256_select(false);
    check_sha256_vectors();
    uint8_t data[600];
    uint64_t x = 88172645463325252u;
    for (size_t i = 0; i < sizeof data; i++) x ^= x << 13, x ^= x >> 7, x ^= x << 17, data[i] = (uint8_t)x;
    for (size_t n = 0; n <= sizeof data; n++) {
        uint8_t a[32], b[32], c[32];
        sha256_select(true);
        sha256(data, n, a);
        sha256_select(false);
        sha256(data, n, b);
        Sha256 s;
        sha256_init(&s);
        sha256_update(&s, data, n / 3);
        sha256_update(&s, data + n / 3, n - n / 3);
        sha256_final(&s, c);
        cr_assert(memcmp(a, b, 32) == 0 && memcmp(a, c, 32) == 0, "%zu bytes: the two functions differ", n);
    }
    if (!extensions) cr_log_info("this CPU has no SHA extensions: the portable function was checked twice");
}

/* ---- keys ------------------------------------------------------------------------------------ */
static const char *src = "kernel k<B = 4>(x: tensor<f32>[N]) grid(1) { }";
static ConstBinding consts2[] = {{"B", false, 64, 0}, {"A", false, 1, 0}};

static CacheKernelId base_id(void) {
    return (CacheKernelId){.source = src, .source_len = strlen(src), .kernel = "k", .consts = consts2,
                           .nconsts = 2, .arch = "sm_90a", .num_warps = 4};
}

Test(cache, key_depends_on_every_input) {
    CacheKernelId id = base_id();
    CacheKey k0 = cache_kernel_key(&id);
    CacheKey again = cache_kernel_key(&id);
    cr_assert(cache_key_equal(&k0, &again), "the key is deterministic");

    ConstBinding swapped[] = {consts2[1], consts2[0]};
    id.consts = swapped;
    CacheKey k = cache_kernel_key(&id);
    cr_assert(cache_key_equal(&k0, &k), "constants are sorted before hashing");

    /* the source's SHA-256 in place of its text (what a program passes): stable, and another key */
    uint8_t digest[32];
    sha256(src, strlen(src), digest);
    id = base_id();
    id.source_sha256 = digest;
    CacheKey by_digest = cache_kernel_key(&id), by_digest_again = cache_kernel_key(&id);
    cr_assert(cache_key_equal(&by_digest, &by_digest_again));
    cr_assert(!cache_key_equal(&by_digest, &k0));
    digest[31] ^= 1;
    CacheKey other_digest = cache_kernel_key(&id);
    cr_assert(!cache_key_equal(&by_digest, &other_digest), "the digest is part of the key");

    CacheKey keys[8];
    int n = 0;
    id = base_id();
    id.source_len--; /* the source differs by its last byte */
    keys[n++] = cache_kernel_key(&id);
    id = base_id();
    id.kernel = "k2";
    keys[n++] = cache_kernel_key(&id);
    ConstBinding other[] = {{"B", false, 128, 0}, {"A", false, 1, 0}};
    id = base_id();
    id.consts = other;
    keys[n++] = cache_kernel_key(&id);
    ConstBinding as_float[] = {{"B", true, 0, 64.0}, {"A", false, 1, 0}};
    id.consts = as_float;
    keys[n++] = cache_kernel_key(&id);
    id = base_id();
    id.nconsts = 1;
    keys[n++] = cache_kernel_key(&id);
    id = base_id();
    id.arch = "sm_80";
    keys[n++] = cache_kernel_key(&id);
    id = base_id();
    id.num_warps = 8;
    keys[n++] = cache_kernel_key(&id);
    /* Moving a byte between two fields must change the key (fields are length-prefixed). */
    ConstBinding moved[] = {{"BA", false, 64, 0}};
    ConstBinding unmoved[] = {{"B", false, 64, 0}};
    id = base_id();
    id.consts = moved;
    id.nconsts = 1;
    id.kernel = "k";
    CacheKey a = cache_kernel_key(&id);
    id.consts = unmoved;
    id.kernel = "kA";
    CacheKey b = cache_kernel_key(&id);
    cr_assert_not(cache_key_equal(&a, &b));
    for (int i = 0; i < n; i++) {
        cr_assert_not(cache_key_equal(&k0, &keys[i]), "changed input %d kept the key", i);
        for (int j = 0; j < i; j++) cr_assert_not(cache_key_equal(&keys[j], &keys[i]), "inputs %d and %d collide", j, i);
    }
    char h[65];
    cache_key_hex(&k0, h);
    cr_assert_eq(strlen(h), 64);
    cr_assert_eq(strspn(h, "0123456789abcdef"), 64);
}

/* ---- disk -------------------------------------------------------------------------------------- */
static CacheKey key_of(const char *arch) {
    CacheKernelId id = base_id();
    id.arch = arch;
    return cache_kernel_key(&id);
}

static CacheEntry make_entry(size_t len, uint8_t seed, bool is_ptx) {
    CacheEntry e = {.is_ptx = is_ptx, .threads = 128 + seed, .shared_bytes = 1000u * seed, .len = len};
    e.image = malloc(len + 1);
    for (size_t i = 0; i < len; i++) e.image[i] = (uint8_t)(i * 31 + seed);
    return e;
}

static void assert_same_entry(const CacheEntry *a, const CacheEntry *b) {
    cr_assert_eq(a->is_ptx, b->is_ptx);
    cr_assert_eq(a->threads, b->threads);
    cr_assert_eq(a->shared_bytes, b->shared_bytes);
    cr_assert_eq(a->len, b->len);
    cr_assert(memcmp(a->image, b->image, a->len) == 0, "payload differs");
}

static size_t count_files(const char *prefix) {
    DIR *d = opendir(tmpdir);
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (d) closedir(d);
    return n;
}

Test(cache, store_then_load) {
    CacheKey key = key_of("sm_90a"), other = key_of("sm_80");
    CacheEntry e = make_entry(5000, 7, false), got;
    Strbuf why = {0}, err = {0};
    cr_assert_eq(cache_disk_load(tmpdir, &key, &got, &why), CACHE_MISS);
    cr_assert(cache_disk_store(tmpdir, &key, &e, &err), "%s", sb_str(&err));
    cr_assert_eq(cache_disk_load(tmpdir, &key, &got, &why), CACHE_HIT, "%s", sb_str(&why));
    assert_same_entry(&e, &got);
    cache_entry_free(&got);
    cr_assert_eq(cache_disk_load(tmpdir, &other, &got, &why), CACHE_MISS, "another arch misses");
    cr_assert_eq(count_files(".tmp-"), 0, "no temporary file is left behind");
    /* A PTX payload comes back NUL-terminated, ready for the driver. */
    CacheEntry ptx = {.is_ptx = true, .threads = 32, .image = (uint8_t *)strdup(".version 8.0"), .len = 12};
    cr_assert(cache_disk_store(tmpdir, &other, &ptx, &err));
    cr_assert_eq(cache_disk_load(tmpdir, &other, &got, &why), CACHE_HIT);
    cr_assert_str_eq((char *)got.image, ".version 8.0");
    cr_assert(got.is_ptx);
    cache_entry_free(&got);
    cache_entry_free(&ptx);
    cache_entry_free(&e);
    sb_free(&why);
    sb_free(&err);
}

/* The unsynced store writes the same entry (and an empty payload, a parse marker's, reads back). */
Test(cache, hint_store_then_load) {
    CacheKey key = key_of("sm_90a"), other = key_of("sm_80");
    CacheEntry e = make_entry(300, 3, false), empty = {.image = (uint8_t *)"", .len = 0}, got;
    Strbuf why = {0}, err = {0};
    cr_assert(cache_disk_store_hint(tmpdir, &key, &e, &err), "%s", sb_str(&err));
    cr_assert_eq(cache_disk_load(tmpdir, &key, &got, &why), CACHE_HIT, "%s", sb_str(&why));
    assert_same_entry(&e, &got);
    cache_entry_free(&got);
    cr_assert(cache_disk_store_hint(tmpdir, &other, &empty, &err), "%s", sb_str(&err));
    cr_assert_eq(cache_disk_load(tmpdir, &other, &got, &why), CACHE_HIT, "%s", sb_str(&why));
    cr_assert_eq(got.len, 0);
    cache_entry_free(&got);
    cr_assert_eq(count_files(".tmp-"), 0, "no temporary file is left behind");
    cache_entry_free(&e);
    sb_free(&why);
    sb_free(&err);
}

Test(cache, store_creates_missing_directories) {
    char dir[400];
    snprintf(dir, sizeof dir, "%s/a", tmpdir);
    char deep[420];
    snprintf(deep, sizeof deep, "%s/b", dir);
    CacheKey key = key_of("sm_90a");
    CacheEntry e = make_entry(10, 1, false), got;
    Strbuf err = {0}, why = {0};
    cr_assert(cache_disk_store(deep, &key, &e, &err), "%s", sb_str(&err));
    cr_assert_eq(cache_disk_load(deep, &key, &got, &why), CACHE_HIT);
    cache_entry_free(&got);
    Strbuf path = {0};
    cache_entry_path(deep, &key, &path);
    unlink(sb_str(&path));
    rmdir(deep);
    rmdir(dir);
    sb_free(&path);
    cache_entry_free(&e);
    sb_free(&err);
    sb_free(&why);
}

/* The builder of cache_fetch tests: counts its calls and makes make_entry(len, seed). */
typedef struct Builder {
    int calls;
    size_t len;
    uint8_t seed;
    bool fail;
} Builder;

static bool build(void *user, CacheEntry *out, Strbuf *err) {
    Builder *b = user;
    b->calls++;
    if (b->fail) {
        sb_puts(err, "build failed");
        return false;
    }
    *out = make_entry(b->len, b->seed, false);
    return true;
}

static CacheConfig config_for(const char *dir) {
    CacheConfig c = {.enabled = true};
    snprintf(c.dir, sizeof c.dir, "%s", dir);
    return c;
}

typedef enum Damage {
    DAMAGE_TRUNCATE, DAMAGE_FLIP_PAYLOAD, DAMAGE_MAGIC, DAMAGE_LENGTH, DAMAGE_KEY, DAMAGE_EMPTY,
    DAMAGE_CHECKSUM, DAMAGE_RESERVED, DAMAGE_APPEND
} Damage;

static void damage(const CacheKey *key, Damage how) {
    Strbuf path = {0};
    cache_entry_path(tmpdir, key, &path);
    FILE *f = fopen(sb_str(&path), "r+b");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    switch (how) {
    case DAMAGE_TRUNCATE: cr_assert_eq(truncate(sb_str(&path), size - 100), 0); break;
    case DAMAGE_EMPTY: cr_assert_eq(truncate(sb_str(&path), 0), 0); break;
    case DAMAGE_FLIP_PAYLOAD: {
        fseek(f, size / 2, SEEK_SET);
        int c = fgetc(f);
        fseek(f, size / 2, SEEK_SET);
        fputc(c ^ 0x10, f);
        break;
    }
    case DAMAGE_MAGIC: fseek(f, 0, SEEK_SET); fputc('X', f); break;
    case DAMAGE_LENGTH: fseek(f, 48, SEEK_SET); fputc(0x7f, f); break;
    case DAMAGE_KEY: fseek(f, 20, SEEK_SET); fputc(0x5a, f); fputc(0xa5, f); break;
    case DAMAGE_CHECKSUM: fseek(f, 60, SEEK_SET); fputc(0x33, f); break;
    case DAMAGE_RESERVED: fseek(f, 80, SEEK_SET); fputc(1, f); break;
    case DAMAGE_APPEND: fseek(f, 0, SEEK_END); fputc(0, f); break;
    }
    fclose(f);
    sb_free(&path);
}

static void check_damage_is_rebuilt(Damage how) {
    CacheConfig config = config_for(tmpdir);
    CacheKey key = key_of("sm_90a");
    Builder b = {.len = 4096, .seed = 3};
    CacheEntry got;
    CacheOutcome o = {0};
    Strbuf err = {0};
    cr_assert(cache_fetch(&config, &key, build, &b, &got, &o, &err));
    cr_assert_eq(o.lookup, CACHE_MISS);
    cr_assert(o.built && o.stored, "%s", sb_str(&o.note));
    cache_entry_free(&got);
    cr_assert(cache_fetch(&config, &key, build, &b, &got, &o, &err));
    cr_assert_eq(o.lookup, CACHE_HIT);
    cr_assert_eq(b.calls, 1, "a hit does not build");
    cache_entry_free(&got);

    damage(&key, how);
    Strbuf why = {0};
    cr_assert_eq(cache_disk_load(tmpdir, &key, &got, &why), CACHE_CORRUPT, "damage %d went unnoticed", (int)how);
    cr_assert_gt(why.len, 0);
    cr_assert(cache_fetch(&config, &key, build, &b, &got, &o, &err));
    cr_assert_eq(o.lookup, CACHE_CORRUPT);
    cr_assert(o.built && o.stored);
    cr_assert_eq(b.calls, 2);
    CacheEntry want = make_entry(4096, 3, false);
    assert_same_entry(&want, &got);
    cache_entry_free(&got);
    /* The rebuilt entry replaced the damaged one. */
    cr_assert_eq(cache_disk_load(tmpdir, &key, &got, &why), CACHE_HIT, "%s", sb_str(&why));
    assert_same_entry(&want, &got);
    cache_entry_free(&got);
    cache_entry_free(&want);
    sb_free(&why);
    sb_free(&err);
    sb_free(&o.note);
}

Test(cache, truncated_entry_is_rebuilt) { check_damage_is_rebuilt(DAMAGE_TRUNCATE); }
Test(cache, empty_entry_is_rebuilt) { check_damage_is_rebuilt(DAMAGE_EMPTY); }
Test(cache, flipped_byte_is_rebuilt) { check_damage_is_rebuilt(DAMAGE_FLIP_PAYLOAD); }
Test(cache, wrong_magic_is_rebuilt) { check_damage_is_rebuilt(DAMAGE_MAGIC); }
Test(cache, wrong_length_is_rebuilt) { check_damage_is_rebuilt(DAMAGE_LENGTH); }
Test(cache, wrong_key_is_rebuilt) { check_damage_is_rebuilt(DAMAGE_KEY); }
Test(cache, wrong_checksum_is_rebuilt) { check_damage_is_rebuilt(DAMAGE_CHECKSUM); }
Test(cache, nonzero_reserved_bytes_are_rebuilt) { check_damage_is_rebuilt(DAMAGE_RESERVED); }
Test(cache, bytes_after_payload_are_rebuilt) { check_damage_is_rebuilt(DAMAGE_APPEND); }

/* An entry of another format version (1: SHA-256 checksum; 2: no launch data; a newer tile's) is
 * a plain miss, with nothing to report, and the rebuilt entry replaces it. */
Test(cache, entry_of_another_format_is_a_clean_miss) {
    const unsigned versions[] = {1, 2, CACHE_FORMAT_VERSION + 1};
    for (size_t v = 0; v < sizeof versions / sizeof versions[0]; v++) {
        CacheConfig config = config_for(tmpdir);
        CacheKey key = key_of(v == 0 ? "sm_80" : v == 1 ? "sm_90a" : "sm_86");
        Builder b = {.len = 2048, .seed = 5};
        CacheEntry got;
        CacheOutcome o = {0};
        Strbuf err = {0}, why = {0}, path = {0};
        cr_assert(cache_fetch(&config, &key, build, &b, &got, &o, &err));
        cache_entry_free(&got);
        cache_entry_path(tmpdir, &key, &path);
        FILE *f = fopen(sb_str(&path), "r+b");
        cr_assert_not_null(f);
        fseek(f, 8, SEEK_SET);
        fputc((int)versions[v], f);
        fclose(f);
        cr_assert_eq(cache_disk_load(tmpdir, &key, &got, &why), CACHE_MISS, "format %u", versions[v]);
        cr_assert_eq(why.len, 0, "format %u: %s", versions[v], sb_str(&why));
        cr_assert(cache_fetch(&config, &key, build, &b, &got, &o, &err));
        cr_assert_eq(o.lookup, CACHE_MISS);
        cr_assert(o.built && o.stored);
        cr_assert_eq(o.note.len, 0, "%s", sb_str(&o.note));
        cache_entry_free(&got);
        cr_assert_eq(cache_disk_load(tmpdir, &key, &got, &why), CACHE_HIT, "replaced: %s", sb_str(&why));
        cache_entry_free(&got);
        sb_free(&err), sb_free(&why), sb_free(&path), sb_free(&o.note);
    }
}

/* Launch data (the cuda device's tensor maps) comes back as stored, between the header fields
 * and the image; a length beyond the payload is damage even under a valid checksum. */
Test(cache, launch_data_round_trips) {
    CacheKey key = key_of("sm_90a");
    CacheEntry e = make_entry(3000, 4, false), got;
    e.launch_len = 48;
    e.launch = malloc(e.launch_len);
    for (size_t i = 0; i < e.launch_len; i++) e.launch[i] = (uint8_t)(200 - i);
    Strbuf why = {0}, err = {0}, path = {0};
    cr_assert(cache_disk_store(tmpdir, &key, &e, &err), "%s", sb_str(&err));
    cr_assert_eq(cache_disk_load(tmpdir, &key, &got, &why), CACHE_HIT, "%s", sb_str(&why));
    assert_same_entry(&e, &got);
    cr_assert_eq(got.launch_len, 48);
    cr_assert(memcmp(got.launch, e.launch, 48) == 0);
    cache_entry_free(&got);
    /* the launch length past the payload, the checksum made right again */
    cache_entry_path(tmpdir, &key, &path);
    FILE *f = fopen(sb_str(&path), "r+b");
    cr_assert_not_null(f);
    size_t size = CACHE_HEADER_SIZE + 16 + 48 + 3000;
    uint8_t *file = malloc(size);
    cr_assert_eq(fread(file, 1, size, f), size);
    file[CACHE_HEADER_SIZE + 12] = 0xff, file[CACHE_HEADER_SIZE + 13] = 0x0f;
    uint64_t sum = xxh64(file + CACHE_HEADER_SIZE, size - CACHE_HEADER_SIZE);
    for (int i = 0; i < 8; i++) file[56 + i] = (uint8_t)(sum >> (8 * i));
    fseek(f, 0, SEEK_SET);
    cr_assert_eq(fwrite(file, 1, size, f), size);
    fclose(f);
    cr_assert_eq(cache_disk_load(tmpdir, &key, &got, &why), CACHE_CORRUPT);
    cr_assert(strstr(sb_str(&why), "launch data"), "%s", sb_str(&why));
    free(file);
    cache_entry_free(&e);
    sb_free(&why), sb_free(&err), sb_free(&path);
}

/* The payload checksum against the reference implementation's values (libxxhash 0.8 gives the
 * same for these and for 200 longer buffers, checked when it was written). */
Test(cache, xxh64_vectors) {
    cr_assert_eq(xxh64("", 0), UINT64_C(0xef46db3751d8e999));
    cr_assert_eq(xxh64("a", 1), UINT64_C(0xd24ec4f1a98c6e5b));
    cr_assert_eq(xxh64("abc", 3), UINT64_C(0x44bc2cf5ad770999));
    const char *s = "Nobody inspects the spammish repetition"; /* 39 bytes: stripes and every tail */
    cr_assert_eq(xxh64(s, strlen(s)), UINT64_C(0xfbcea83c8a378bf1));
}

/* The header of an entry as written: magic, the format version, the key, the length, the payload's XXH64
 * at 56 and zeros up to 88. */
Test(cache, entry_header_layout) {
    CacheConfig config = config_for(tmpdir);
    CacheKey key = key_of("sm_80");
    Builder b = {.len = 1000, .seed = 9};
    CacheEntry got;
    CacheOutcome o = {0};
    Strbuf err = {0}, path = {0};
    cr_assert(cache_fetch(&config, &key, build, &b, &got, &o, &err));
    cache_entry_path(tmpdir, &key, &path);
    FILE *f = fopen(sb_str(&path), "rb");
    cr_assert_not_null(f);
    uint8_t file[CACHE_HEADER_SIZE + 16 + 1000 + 1];
    cr_assert_eq(fread(file, 1, sizeof file, f), sizeof file - 1);
    fclose(f);
    cr_assert_eq(memcmp(file, "TILECACH", 8), 0);
    cr_assert_eq(file[8], CACHE_FORMAT_VERSION);
    cr_assert_eq(memcmp(file + 16, key.bytes, 32), 0);
    uint64_t sum = 0;
    for (int i = 0; i < 8; i++) sum |= (uint64_t)file[56 + i] << (8 * i);
    cr_assert_eq(sum, xxh64(file + CACHE_HEADER_SIZE, 16 + 1000));
    for (unsigned i = 64; i < CACHE_HEADER_SIZE; i++) cr_assert_eq(file[i], 0);
    cr_assert_eq(memcmp(file + CACHE_HEADER_SIZE + 16, got.image, 1000), 0);
    cache_entry_free(&got);
    sb_free(&path);
    sb_free(&err);
    sb_free(&o.note);
}

Test(cache, entry_under_another_name_is_corrupt) {
    CacheKey a = key_of("sm_90a"), b = key_of("sm_80");
    CacheEntry e = make_entry(100, 2, false), got;
    Strbuf err = {0}, why = {0}, pa = {0}, pb = {0};
    cr_assert(cache_disk_store(tmpdir, &a, &e, &err));
    cache_entry_path(tmpdir, &a, &pa);
    cache_entry_path(tmpdir, &b, &pb);
    cr_assert_eq(rename(sb_str(&pa), sb_str(&pb)), 0);
    cr_assert_eq(cache_disk_load(tmpdir, &b, &got, &why), CACHE_CORRUPT);
    cr_assert(strstr(sb_str(&why), "key"), "%s", sb_str(&why));
    cache_entry_free(&e);
    sb_free(&err);
    sb_free(&why);
    sb_free(&pa);
    sb_free(&pb);
}

Test(cache, failed_build_is_reported_and_not_stored) {
    CacheConfig config = config_for(tmpdir);
    CacheKey key = key_of("sm_90a");
    Builder b = {.fail = true};
    CacheEntry got;
    CacheOutcome o = {0};
    Strbuf err = {0};
    cr_assert_not(cache_fetch(&config, &key, build, &b, &got, &o, &err));
    cr_assert_str_eq(sb_str(&err), "build failed");
    cr_assert_eq(count_files(""), 2, "only . and ..");
    sb_free(&err);
    sb_free(&o.note);
}

Test(cache, disabled_by_environment) {
    setenv("TILE_CACHE", "0", 1);
    setenv("TILE_CACHE_DIR", tmpdir, 1);
    CacheConfig config;
    cache_config_from_env(&config);
    cr_assert_not(config.enabled);
    cr_assert_str_eq(config.dir, tmpdir);
    CacheKey key = key_of("sm_90a");
    Builder b = {.len = 64, .seed = 9};
    CacheEntry got;
    CacheOutcome o = {0};
    Strbuf err = {0};
    for (int i = 0; i < 3; i++) {
        cr_assert(cache_fetch(&config, &key, build, &b, &got, &o, &err));
        cr_assert(o.built);
        cr_assert_not(o.stored);
        cache_entry_free(&got);
    }
    cr_assert_eq(b.calls, 3, "no entry is read with the cache off");
    cr_assert_eq(count_files(""), 2, "and none is written");
    unsetenv("TILE_CACHE");
    cache_config_from_env(&config);
    cr_assert(config.enabled);
    sb_free(&err);
    sb_free(&o.note);
}

/* Issue 10, defect 13: TILE_CACHE=no left the cache on (TILE_SPECIALIZE took no, TILE_CACHE did
 * not); both now go through one parser. */
Test(cache, environment_flags_share_one_parser) {
    static const char *const off[] = {"0", "off", "false", "no", "NO", "Off"};
    CacheConfig config;
    for (int i = 0; i < 6; i++) {
        setenv("TILE_CACHE", off[i], 1);
        cache_config_from_env(&config);
        cr_assert_not(config.enabled, "TILE_CACHE=%s", off[i]);
        cr_assert_not(env_flag("TILE_CACHE", true), "TILE_CACHE=%s", off[i]);
    }
    setenv("TILE_CACHE", "yes", 1);
    cr_assert(env_flag("TILE_CACHE", false));
    setenv("TILE_CACHE", "", 1);
    cr_assert(env_flag("TILE_CACHE", true));
    unsetenv("TILE_CACHE");
}

Test(cache, directory_from_environment) {
    CacheConfig c;
    setenv("TILE_CACHE_DIR", "/x/y", 1);
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    setenv("HOME", "/home/u", 1);
    cache_config_from_env(&c);
    cr_assert_str_eq(c.dir, "/x/y");
    unsetenv("TILE_CACHE_DIR");
    cache_config_from_env(&c);
    cr_assert_str_eq(c.dir, "/xdg/tile");
    unsetenv("XDG_CACHE_HOME");
    cache_config_from_env(&c);
    cr_assert_str_eq(c.dir, "/home/u/.cache/tile");
}

Test(cache, unwritable_directory_does_not_fail_the_build) {
    /* A path under a regular file cannot be created, even by root. */
    char file[300], dir[320];
    snprintf(file, sizeof file, "%s/plain", tmpdir);
    FILE *f = fopen(file, "w");
    fclose(f);
    snprintf(dir, sizeof dir, "%s/sub", file);
    CacheConfig config = config_for(dir);
    CacheKey key = key_of("sm_90a");
    Builder b = {.len = 64, .seed = 1};
    CacheEntry got;
    CacheOutcome o = {0};
    Strbuf err = {0};
    cr_assert(cache_fetch(&config, &key, build, &b, &got, &o, &err), "%s", sb_str(&err));
    cr_assert(o.built);
    cr_assert_not(o.stored);
    cr_assert(strstr(sb_str(&o.note), "cannot create"), "%s", sb_str(&o.note));
    CacheEntry want = make_entry(64, 1, false);
    assert_same_entry(&want, &got);
    cache_entry_free(&want);
    cache_entry_free(&got);
    sb_free(&err);
    sb_free(&o.note);
}

/* ---- concurrency ------------------------------------------------------------------------------- */
enum { RACE_ROUNDS = 40, RACE_LEN = 200000 };

typedef struct Racer {
    int corrupt;
    int bad;
} Racer;

/* Stores and loads one key over and over; every load must be a whole, valid entry. */
static void race(Racer *r, uint8_t seed) {
    CacheKey key = key_of("sm_90a");
    CacheEntry want = make_entry(RACE_LEN, 5, false);
    Strbuf err = {0}, why = {0};
    for (int i = 0; i < RACE_ROUNDS; i++) {
        CacheEntry mine = make_entry(RACE_LEN, 5, false);
        mine.threads = want.threads; /* every writer writes the same entry */
        if (!cache_disk_store(tmpdir, &key, &mine, &err)) r->bad++;
        cache_entry_free(&mine);
        CacheEntry got;
        sb_clear(&why);
        CacheLookup l = cache_disk_load(tmpdir, &key, &got, &why);
        if (l == CACHE_CORRUPT) r->corrupt++;
        else if (l != CACHE_HIT || got.len != want.len || memcmp(got.image, want.image, want.len) != 0) r->bad++;
        cache_entry_free(&got);
    }
    (void)seed;
    cache_entry_free(&want);
    sb_free(&err);
    sb_free(&why);
}

static void *race_thread(void *arg) {
    race(arg, 0);
    return NULL;
}

Test(cache, threads_writing_one_key) {
    pthread_t t[8];
    Racer r[8] = {{0}};
    for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, race_thread, &r[i]);
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(r[i].corrupt, 0, "thread %d saw a partial entry", i);
        cr_assert_eq(r[i].bad, 0, "thread %d failed", i);
    }
    cr_assert_eq(count_files(".tmp-"), 0);
    cr_assert_eq(count_files(""), 3, "one entry");
}

Test(cache, processes_writing_one_key) {
    pid_t pids[6];
    for (int i = 0; i < 6; i++) {
        pids[i] = fork();
        cr_assert_geq(pids[i], 0);
        if (pids[i] == 0) {
            Racer r = {0};
            race(&r, (uint8_t)i);
            _exit(r.corrupt ? 2 : r.bad ? 3 : 0);
        }
    }
    for (int i = 0; i < 6; i++) {
        int status;
        cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "process %d: status %d", i, status);
    }
    cr_assert_eq(count_files(".tmp-"), 0);
    CacheKey key = key_of("sm_90a");
    CacheEntry got;
    Strbuf why = {0};
    cr_assert_eq(cache_disk_load(tmpdir, &key, &got, &why), CACHE_HIT);
    cache_entry_free(&got);
    sb_free(&why);
}

/* ---- memory cache ----------------------------------------------------------------------------- */
static void count_free(void *value, void *user) {
    (void)value;
    (*(int *)user)++;
}

Test(cache, memory_put_get) {
    CacheMemory m;
    cache_memory_init(&m);
    int values[100];
    CacheKey keys[100];
    for (int i = 0; i < 100; i++) {
        Sha256 h;
        cache_key_begin(&h);
        cache_key_add_i64(&h, "i", i);
        keys[i] = cache_key_end(&h);
        cr_assert_null(cache_memory_get(&m, &keys[i]));
        cr_assert_eq(cache_memory_put(&m, &keys[i], &values[i]), &values[i]);
    }
    for (int i = 0; i < 100; i++) cr_assert_eq(cache_memory_get(&m, &keys[i]), &values[i]);
    int other;
    cr_assert_eq(cache_memory_put(&m, &keys[5], &other), &values[5], "the first value stays");
    cr_assert_eq(cache_memory_size(&m), 100);
    int freed = 0;
    cache_memory_destroy(&m, count_free, &freed);
    cr_assert_eq(freed, 100);
}

typedef struct MemRacer {
    CacheMemory *m;
    int id;
    void *won[50];
} MemRacer;

static void *memory_racer(void *arg) {
    MemRacer *r = arg;
    for (int i = 0; i < 50; i++) {
        Sha256 h;
        cache_key_begin(&h);
        cache_key_add_i64(&h, "i", i);
        CacheKey k = cache_key_end(&h);
        r->won[i] = cache_memory_put(r->m, &k, (void *)((uintptr_t)(r->id * 1000 + i + 1)));
    }
    return NULL;
}

Test(cache, memory_threads_agree_on_one_value_per_key) {
    CacheMemory m;
    cache_memory_init(&m);
    pthread_t t[8];
    MemRacer r[8];
    for (int i = 0; i < 8; i++) {
        r[i] = (MemRacer){.m = &m, .id = i};
        pthread_create(&t[i], NULL, memory_racer, &r[i]);
    }
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    for (int k = 0; k < 50; k++)
        for (int i = 1; i < 8; i++) cr_assert_eq(r[i].won[k], r[0].won[k], "threads disagree on key %d", k);
    cr_assert_eq(cache_memory_size(&m), 50);
    cache_memory_destroy(&m, NULL, NULL);
}

/* ---- what is at an entry's path, and who may write the directory (issue 10) ------------------ */
/* Defect 6: a FIFO at an entry's path (or a symbolic link to one) blocked the compile forever in
 * fopen. The entry is opened without blocking, only a regular file is read, and the fetch
 * rebuilds and replaces whatever was there. Criterion's timeout fails the test if it blocks. */
static void check_not_a_regular_file_is_replaced(bool through_symlink) {
    CacheConfig config = config_for(tmpdir);
    CacheKey key = key_of("sm_90a");
    Strbuf path = {0}, why = {0}, err = {0};
    cache_entry_path(tmpdir, &key, &path);
    char fifo[400];
    snprintf(fifo, sizeof fifo, "%s/fifo", tmpdir);
    cr_assert_eq(mkfifo(through_symlink ? fifo : sb_str(&path), 0600), 0);
    if (through_symlink) cr_assert_eq(symlink(fifo, sb_str(&path)), 0);
    CacheEntry got;
    cr_assert_eq(cache_disk_load(tmpdir, &key, &got, &why), CACHE_CORRUPT);
    cr_assert_gt(why.len, 0);
    Builder b = {.len = 64, .seed = 5};
    CacheOutcome o = {0};
    cr_assert(cache_fetch(&config, &key, build, &b, &got, &o, &err), "%s", sb_str(&err));
    cr_assert_eq(o.lookup, CACHE_CORRUPT);
    cr_assert(o.built && o.stored, "%s", sb_str(&o.note));
    cache_entry_free(&got);
    struct stat st;
    cr_assert_eq(lstat(sb_str(&path), &st), 0);
    cr_assert(S_ISREG(st.st_mode), "the entry was replaced by a regular file");
    sb_clear(&why);
    cr_assert_eq(cache_disk_load(tmpdir, &key, &got, &why), CACHE_HIT, "%s", sb_str(&why));
    cache_entry_free(&got);
    sb_free(&path);
    sb_free(&why);
    sb_free(&err);
    sb_free(&o.note);
}

Test(cache, fifo_at_entry_path_does_not_block, .timeout = 20) { check_not_a_regular_file_is_replaced(false); }
Test(cache, symlink_to_fifo_does_not_block, .timeout = 20) { check_not_a_regular_file_is_replaced(true); }

/* Defect 13: entries are trusted as written, so a directory others can write is not used. */
Test(cache, directory_writable_by_others_is_not_used) {
    CacheConfig config = config_for(tmpdir);
    CacheKey key = key_of("sm_90a");
    CacheEntry e = make_entry(64, 1, false), got;
    Strbuf err = {0}, why = {0};
    cr_assert(cache_disk_store(tmpdir, &key, &e, &err), "%s", sb_str(&err));
    cr_assert_eq(chmod(tmpdir, 0777), 0);
    cr_assert_eq(cache_disk_load(tmpdir, &key, &got, &why), CACHE_MISS);
    cr_assert(strstr(sb_str(&why), "writable by other users"), "%s", sb_str(&why));
    cr_assert_not(cache_disk_store(tmpdir, &key, &e, &err));
    Builder b = {.len = 64, .seed = 1};
    CacheOutcome o = {0};
    cr_assert(cache_fetch(&config, &key, build, &b, &got, &o, &err));
    cr_assert(o.built && !o.stored, "built, not read or stored");
    cr_assert(strstr(sb_str(&o.note), "writable by other users"), "%s", sb_str(&o.note));
    cache_entry_free(&got);
    cr_assert_eq(chmod(tmpdir, 0700), 0);
    /* a directory the cache creates is private */
    char dir[400];
    snprintf(dir, sizeof dir, "%s/new", tmpdir);
    cr_assert(cache_disk_store(dir, &key, &e, &err), "%s", sb_str(&err));
    struct stat st;
    cr_assert_eq(stat(dir, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700);
    Strbuf p = {0};
    cache_entry_path(dir, &key, &p);
    unlink(sb_str(&p));
    rmdir(dir);
    sb_free(&p);
    cache_entry_free(&e);
    sb_free(&err);
    sb_free(&why);
    sb_free(&o.note);
}
