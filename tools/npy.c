/*
 * npy.c: numpy's .npy format, read and written without numpy (see npy.h).
 *
 * A file is: the magic "\x93NUMPY", a major and a minor version byte, the header's length
 * (2 bytes little-endian in version 1, 4 bytes in versions 2 and 3), the header, then the
 * data. The header is a Python dict literal with exactly the keys 'descr' (a dtype string such
 * as '<f4'), 'fortran_order' (True or False) and 'shape' (a tuple of integers), padded with
 * spaces and ended by a newline. The reader parses that literal with a small recursive-descent
 * scanner that accepts what numpy writes (either quote style, a trailing comma, spaces) and
 * nothing it cannot represent. Sizes are checked for overflow before anything is allocated, and
 * the data must be exactly numel * itemsize bytes: a truncated file and trailing bytes are both
 * errors. Big-endian data is swapped on input, so callers only ever see little-endian.
 */
#include "npy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

static bool fail(char *err, const char *name, const char *fmt, ...) {
    int n = snprintf(err, NPY_ERROR_CAP, "%s: ", name);
    if (n < 0 || n >= NPY_ERROR_CAP) n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, (size_t)(NPY_ERROR_CAP - n), fmt, ap);
    va_end(ap);
    return false;
}

void npy_free(NpyArray *a) {
    free(a->data);
    memset(a, 0, sizeof *a);
}

void npy_descr(char kind, int itemsize, char out[8]) {
    snprintf(out, 8, "%c%c%d", itemsize == 1 ? '|' : '<', kind, itemsize);
}

/* ---- the header's dict literal ----------------------------------------------------------------- */
typedef struct Scanner {
    const char *p, *end;
} Scanner;

static void skip_space(Scanner *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

/* How much of the text at s->p a message quotes: at most 20 bytes, never past the header (which
 * need not be NUL-terminated). */
static int near(const Scanner *s) { return s->end - s->p < 20 ? (int)(s->end - s->p) : 20; }

static bool accept(Scanner *s, char c) {
    skip_space(s);
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return true;
    }
    return false;
}

/* A quoted string of at most cap-1 characters (no escapes: numpy's keys and descrs have none). */
static bool scan_string(Scanner *s, char *out, size_t cap) {
    skip_space(s);
    if (s->p >= s->end || (*s->p != '\'' && *s->p != '"')) return false;
    char quote = *s->p++;
    size_t n = 0;
    while (s->p < s->end && *s->p != quote) {
        if (*s->p == '\\' || n + 1 >= cap) return false;
        out[n++] = *s->p++;
    }
    if (s->p >= s->end) return false;
    s->p++;
    out[n] = 0;
    return true;
}

static bool scan_word(Scanner *s, const char *word) {
    skip_space(s);
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) return false;
    s->p += n;
    return true;
}

/* A non-negative decimal integer (numpy may write a trailing 'L' from Python 2). */
static bool scan_size(Scanner *s, int64_t *out) {
    skip_space(s);
    if (s->p >= s->end || *s->p < '0' || *s->p > '9') return false;
    int64_t v = 0;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
        int digit = *s->p++ - '0';
        if (v > (INT64_MAX - digit) / 10) return false;
        v = v * 10 + digit;
    }
    if (s->p < s->end && *s->p == 'L') s->p++;
    *out = v;
    return true;
}

/* Parses the descr string into kind and itemsize; false with a message for what tile lacks. */
static bool parse_descr(const char *name, const char *d, NpyArray *a, bool *swap, char *err) {
    char order = d[0];
    if (order != '<' && order != '>' && order != '|' && order != '=')
        return fail(err, name, "dtype '%s': expected a byte order '<', '>', '|' or '='", d);
    char kind = d[1];
    if (!kind) return fail(err, name, "dtype '%s' has no type", d);
    char *end;
    errno = 0;
    long size = strtol(d + 2, &end, 10);
    if (kind == 'O') return fail(err, name, "dtype '%s' (Python objects, a pickle) is not supported", d);
    if (d[2] < '0' || d[2] > '9' || *end || errno) return fail(err, name, "dtype '%s' is malformed", d);
    bool known = (kind == 'b' && size == 1) || ((kind == 'i' || kind == 'u') && (size == 1 || size == 2 || size == 4 || size == 8)) ||
                 (kind == 'f' && (size == 2 || size == 4 || size == 8));
    if (!known)
        return fail(err, name, "dtype '%s' is not supported (booleans, integers of 1, 2, 4, 8 bytes and "
                    "floats of 2, 4, 8 bytes are)", d);
    a->kind = kind;
    a->itemsize = (int)size;
    *swap = order == '>' && size > 1;
    return true;
}

/* Parses the dict literal of header[0, len) into a (kind, itemsize, rank, shape, numel). */
static bool parse_dict(const char *name, const char *header, size_t len, NpyArray *a, bool *swap, char *err) {
    Scanner s = {header, header + len};
    bool seen_descr = false, seen_order = false, seen_shape = false;
    if (!accept(&s, '{')) return fail(err, name, "the header is not a dict literal");
    while (!accept(&s, '}')) {
        char key[32], descr[32];
        if (!scan_string(&s, key, sizeof key) || !accept(&s, ':'))
            return fail(err, name, "malformed header near '%.*s'", near(&s), s.p);
        if (strcmp(key, "descr") == 0 && !seen_descr) {
            seen_descr = true;
            skip_space(&s);
            if (s.p < s.end && (*s.p == '[' || *s.p == '{'))
                return fail(err, name, "structured dtypes are not supported");
            if (!scan_string(&s, descr, sizeof descr)) return fail(err, name, "malformed 'descr' in the header");
            if (!parse_descr(name, descr, a, swap, err)) return false;
        } else if (strcmp(key, "fortran_order") == 0 && !seen_order) {
            seen_order = true;
            if (scan_word(&s, "True"))
                return fail(err, name, "Fortran-ordered arrays are not supported (save a C-ordered copy: "
                            "np.save(path, np.ascontiguousarray(x)))");
            if (!scan_word(&s, "False")) return fail(err, name, "malformed 'fortran_order' in the header");
        } else if (strcmp(key, "shape") == 0 && !seen_shape) {
            seen_shape = true;
            if (!accept(&s, '(')) return fail(err, name, "malformed 'shape' in the header");
            a->rank = 0;
            a->numel = 1;
            while (!accept(&s, ')')) {
                int64_t dim;
                if (a->rank == NPY_MAX_RANK) return fail(err, name, "more than %d dimensions", NPY_MAX_RANK);
                if (!scan_size(&s, &dim)) return fail(err, name, "malformed 'shape' in the header");
                if (dim && a->numel > INT64_MAX / dim) return fail(err, name, "the shape's element count overflows");
                a->numel *= dim;
                a->shape[a->rank++] = dim;
                if (!accept(&s, ',') && !(skip_space(&s), s.p < s.end && *s.p == ')'))
                    return fail(err, name, "malformed 'shape' in the header");
            }
        } else {
            bool known = strcmp(key, "descr") == 0 || strcmp(key, "fortran_order") == 0 || strcmp(key, "shape") == 0;
            return fail(err, name, "%s key '%s' in the header", known ? "repeated" : "unknown", key);
        }
        if (!accept(&s, ',')) {
            if (!accept(&s, '}')) return fail(err, name, "malformed header near '%.*s'", near(&s), s.p);
            break;
        }
    }
    skip_space(&s);
    if (s.p != s.end) return fail(err, name, "unexpected text after the header's dict");
    if (!seen_descr || !seen_order || !seen_shape)
        return fail(err, name, "the header lacks '%s'", !seen_descr ? "descr" : !seen_order ? "fortran_order" : "shape");
    return true;
}

/* The preamble: magic, version, header length. *start is where the header begins. */
static bool parse_preamble(const char *name, const unsigned char *b, size_t n, size_t *start, size_t *hlen,
                           char *err) {
    if (n < 10 || memcmp(b, magic, 6) != 0) return fail(err, name, "not a .npy file (no \\x93NUMPY magic)");
    if (b[6] < 1 || b[6] > 3) return fail(err, name, ".npy version %d.%d is not supported (1.0 to 3.0 are)", b[6], b[7]);
    if (b[6] == 1) {
        *hlen = (size_t)b[8] | (size_t)b[9] << 8;
        *start = 10;
    } else {
        if (n < 12) return fail(err, name, "truncated .npy header");
        *hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        *start = 12;
    }
    if (*hlen > NPY_MAX_HEADER) return fail(err, name, "header of %zu bytes is larger than %d", *hlen, NPY_MAX_HEADER);
    return true;
}

static void swap_bytes(unsigned char *data, int64_t numel, int itemsize) {
    for (int64_t e = 0; e < numel; e++) {
        unsigned char *p = data + e * itemsize;
        for (int i = 0; i < itemsize / 2; i++) {
            unsigned char t = p[i];
            p[i] = p[itemsize - 1 - i];
            p[itemsize - 1 - i] = t;
        }
    }
}

/* The header's facts into a, and the data's size; shared by npy_parse and npy_read. */
static bool parse_header(const char *name, const unsigned char *header, size_t hlen, NpyArray *a, bool *swap,
                         size_t *nbytes, char *err) {
    if (memchr(header, 0, hlen)) return fail(err, name, "the header contains a NUL byte");
    if (!parse_dict(name, (const char *)header, hlen, a, swap, err)) return false;
    if (a->numel > (int64_t)(SIZE_MAX / 2) / a->itemsize)
        return fail(err, name, "%lld elements of %d bytes do not fit in memory", (long long)a->numel, a->itemsize);
    *nbytes = (size_t)a->numel * (size_t)a->itemsize;
    return true;
}

bool npy_parse(const char *name, const unsigned char *bytes, size_t len, NpyArray *out, char *err) {
    memset(out, 0, sizeof *out);
    size_t start, hlen, nbytes;
    bool swap;
    NpyArray a = {0};
    if (!parse_preamble(name, bytes, len, &start, &hlen, err)) return false;
    if (len - start < hlen) return fail(err, name, "truncated .npy header (%zu of %zu bytes)", len - start, hlen);
    if (!parse_header(name, bytes + start, hlen, &a, &swap, &nbytes, err)) return false;
    size_t have = len - start - hlen;
    if (have < nbytes) return fail(err, name, "truncated data: %zu of %zu bytes", have, nbytes);
    if (have > nbytes) return fail(err, name, "%zu bytes after the data", have - nbytes);
    a.data = malloc(nbytes ? nbytes : 1);
    if (!a.data) return fail(err, name, "out of memory for %zu bytes", nbytes);
    memcpy(a.data, bytes + start + hlen, nbytes);
    if (swap) swap_bytes(a.data, a.numel, a.itemsize);
    *out = a;
    return true;
}

bool npy_read(const char *path, NpyArray *out, char *err) {
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(path, &st) != 0) return fail(err, path, "cannot open: %s", strerror(errno));
    if (!S_ISREG(st.st_mode)) return fail(err, path, "not a regular file");
    FILE *f = fopen(path, "rb");
    if (!f) return fail(err, path, "cannot open: %s", strerror(errno));
    unsigned char pre[12];
    size_t n = fread(pre, 1, sizeof pre, f), start, hlen, nbytes;
    unsigned char *header = NULL;
    NpyArray a = {0};
    bool swap, ok = parse_preamble(path, pre, n, &start, &hlen, err);
    if (ok) {
        header = malloc(hlen + 1);
        ok = header != NULL;
        if (!ok) fail(err, path, "out of memory");
    }
    if (ok && (fseek(f, (long)start, SEEK_SET) != 0 || fread(header, 1, hlen, f) != hlen))
        ok = fail(err, path, "truncated .npy header (%zu bytes expected)", hlen);
    ok = ok && parse_header(path, header, hlen, &a, &swap, &nbytes, err);
    if (ok) {
        uint64_t have = (uint64_t)st.st_size - (start + hlen);
        if (have < nbytes) ok = fail(err, path, "truncated data: %llu of %zu bytes", (unsigned long long)have, nbytes);
        else if (have > nbytes) ok = fail(err, path, "%llu bytes after the data", (unsigned long long)(have - nbytes));
    }
    if (ok && !(a.data = malloc(nbytes ? nbytes : 1))) ok = fail(err, path, "out of memory for %zu bytes", nbytes);
    if (ok && fread(a.data, 1, nbytes, f) != nbytes) ok = fail(err, path, "truncated data (read failed)");
    if (ok && swap) swap_bytes(a.data, a.numel, a.itemsize);
    free(header);
    fclose(f);
    if (!ok) {
        free(a.data);
        return false;
    }
    *out = a;
    return true;
}

bool npy_write(const char *path, char kind, int itemsize, int rank, const int64_t *shape, const void *data,
               char *err) {
    char header[160 + 24 * NPY_MAX_RANK], descr[8]; /* the dict, up to 63 spaces of padding, a newline */
    if (rank < 0 || rank > NPY_MAX_RANK) return fail(err, path, "rank %d is not supported", rank);
    npy_descr(kind, itemsize, descr);
    int n = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    int64_t numel = 1;
    for (int d = 0; d < rank; d++) {
        n += snprintf(header + n, sizeof header - (size_t)n, "%lld,%s", (long long)shape[d],
                      d + 1 < rank ? " " : "");
        numel *= shape[d];
    }
    n += snprintf(header + n, sizeof header - (size_t)n, "), }");
    /* numpy pads with spaces so that the data starts at a multiple of 64, then a newline. */
    int total = 10 + n + 1;
    int pad = (64 - total % 64) % 64;
    memset(header + n, ' ', (size_t)pad);
    n += pad;
    header[n++] = '\n';
    unsigned char pre[10];
    memcpy(pre, magic, 6);
    pre[6] = 1;
    pre[7] = 0;
    pre[8] = (unsigned char)(n & 0xff);
    pre[9] = (unsigned char)(n >> 8);
    FILE *f = fopen(path, "wb");
    if (!f) return fail(err, path, "cannot write: %s", strerror(errno));
    size_t nbytes = (size_t)numel * (size_t)itemsize;
    bool ok = fwrite(pre, 1, 10, f) == 10 && fwrite(header, 1, (size_t)n, f) == (size_t)n &&
              fwrite(data, 1, nbytes, f) == nbytes;
    if (fclose(f) != 0) ok = false;
    if (!ok) return fail(err, path, "cannot write: %s", strerror(errno));
    return true;
}
