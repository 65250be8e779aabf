/*
 * fuzz_mutator.c: a structure-aware mutator for .tile sources (LLVMFuzzerCustomMutator),
 * linked into fuzz_pipeline. Byte-level mutations rarely keep a kernel parseable, so most of
 * the time this one splits the input into tokens (identifiers and keywords, numbers,
 * punctuation, whitespace and comments) and edits whole tokens:
 *   swap two tokens; duplicate a run of tokens; delete a run; turn a number into an edge value
 *   (0, 1, -1, 127, 255, 1000, 2047, 2048, 65536, 2^31-1, 2^63-1, 1e300, nan...); turn a type
 *   into another, odd widths included (i1, i7, u54, i63, u64, f8e4m3, bf16, f64); grow a shape
 *   by a dimension; wrap a run in parentheses, braces or a loop (deeper nesting); copy a line.
 * A quarter of the time it hands the input to libFuzzer's own byte-level mutator instead, so
 * that both kinds of mutation are explored. Deterministic for a given seed, as libFuzzer needs.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);

enum { MAX_TOKENS = 4096 };

typedef struct Token {
    size_t start, len;
    char kind; /* 'w' word, 'n' number, 'p' punctuation, 's' space or comment */
} Token;

static uint64_t next_random(uint64_t *state) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

static bool is_word(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (c >= '0' && c <= '9'); }

static int tokenize(const uint8_t *s, size_t n, Token *t) {
    int count = 0;
    for (size_t i = 0; i < n && count < MAX_TOKENS;) {
        size_t j = i + 1;
        char kind;
        if (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r') {
            while (j < n && (s[j] == ' ' || s[j] == '\n' || s[j] == '\t' || s[j] == '\r')) j++;
            kind = 's';
        } else if (s[i] == '/' && i + 1 < n && s[i + 1] == '/') {
            while (j < n && s[j] != '\n') j++;
            kind = 's';
        } else if (s[i] >= '0' && s[i] <= '9') {
            while (j < n && (is_word(s[j]) || s[j] == '.')) j++;
            kind = 'n';
        } else if (is_word(s[i])) {
            while (j < n && is_word(s[j])) j++;
            kind = 'w';
        } else {
            kind = 'p';
        }
        t[count++] = (Token){i, j - i, kind};
        i = j;
    }
    return count;
}

/* Replaces bytes [start, start+len) of data with text; the new size, or 0 if it does not fit. */
static size_t splice(uint8_t *data, size_t size, size_t max_size, size_t start, size_t len, const char *text,
                     size_t text_len) {
    if (size - len + text_len > max_size) return 0;
    memmove(data + start + text_len, data + start + len, size - start - len);
    memcpy(data + start, text, text_len);
    return size - len + text_len;
}

static const char *const edge_numbers[] = {"0", "1", "-1", "2", "3", "7", "16", "127", "128", "255", "256", "1000",
                                           "1023", "2047", "2048", "4096", "65536", "1048576", "2147483647",
                                           "2147483648", "4294967296", "9223372036854775807", "18446744073709551615",
                                           "0.0", "-0.0", "1e300", "1e-300", "3.4e38", "0.5", "65504.0"};
static const char *const types[] = {"f32", "f16", "bf16", "f64", "i1", "i7", "i8", "i16", "i32", "i54", "i63", "i64",
                                    "u1", "u4", "u8", "u32", "u54", "u63", "u64", "bool", "f8e4m3", "f8e5m2"};
static const char *const wrappers[][2] = {{"(", ")"}, {"{ ", " }"}, {"for q in 0..3 { ", " }"},
                                          {"if true { ", " }"}, {"f(", ")"}, {"-(", ")"}, {"cast<f32>(", ")"}};

static bool is_type_name(const uint8_t *s, size_t len) {
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (strlen(types[i]) == len && memcmp(types[i], s, len) == 0) return true;
    return false;
}

/* A random token index of the given kind (0: any but space; 't': a type name), or -1. */
static int pick(const Token *t, int n, char kind, const uint8_t *data, uint64_t *rng) {
    for (int tries = 0; tries < 64 && n > 0; tries++) {
        int i = (int)(next_random(rng) % (uint64_t)n);
        bool ok = kind == 0   ? t[i].kind != 's'
                : kind == 't' ? t[i].kind == 'w' && is_type_name(data + t[i].start, t[i].len)
                              : t[i].kind == kind;
        if (ok) return i;
    }
    return -1;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed) {
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 1;
    if (size == 0 || next_random(&rng) % 4 == 0) return LLVMFuzzerMutate(data, size, max_size);
    static Token t[MAX_TOKENS];
    int n = tokenize(data, size, t);
    size_t result = 0;
    for (int attempt = 0; attempt < 8 && !result; attempt++) {
        int i, j;
        switch (next_random(&rng) % 8) {
        case 0: /* swap two tokens */
            i = pick(t, n, 0, data, &rng), j = pick(t, n, 0, data, &rng);
            if (i < 0 || j < 0 || i == j) break;
            if (i > j) { int k = i; i = j; j = k; }
            {
                char a[256], b[256];
                if (t[i].len >= sizeof a || t[j].len >= sizeof b) break;
                size_t la = t[i].len, lb = t[j].len;
                memcpy(a, data + t[i].start, la), memcpy(b, data + t[j].start, lb);
                size_t s2 = splice(data, size, max_size, t[j].start, lb, a, la);
                if (!s2) break;
                result = splice(data, s2, max_size, t[i].start, la, b, lb);
            }
            break;
        case 1: /* duplicate a run of up to 8 tokens */
        case 2: /* delete a run of up to 8 tokens */
        {
            i = pick(t, n, 0, data, &rng);
            if (i < 0) break;
            int len = 1 + (int)(next_random(&rng) % 8);
            if (i + len > n) len = n - i;
            size_t start = t[i].start, bytes = t[i + len - 1].start + t[i + len - 1].len - start;
            if (bytes > 4096) break;
            if (next_random(&rng) & 1) {
                char copy[4096];
                memcpy(copy, data + start, bytes);
                result = splice(data, size, max_size, start + bytes, 0, copy, bytes);
            } else {
                if (bytes < size) result = splice(data, size, max_size, start, bytes, "", 0);
            }
            break;
        }
        case 3: /* a number to an edge value */
            i = pick(t, n, 'n', data, &rng);
            if (i < 0) break;
            {
                const char *v = edge_numbers[next_random(&rng) % (sizeof edge_numbers / sizeof *edge_numbers)];
                result = splice(data, size, max_size, t[i].start, t[i].len, v, strlen(v));
            }
            break;
        case 4: /* a type to another, odd widths included */
            i = pick(t, n, 't', data, &rng);
            if (i < 0) break;
            {
                const char *v = types[next_random(&rng) % (sizeof types / sizeof *types)];
                result = splice(data, size, max_size, t[i].start, t[i].len, v, strlen(v));
            }
            break;
        case 5: /* a shape gets one more dimension: '[' becomes '[2, ' or '[1, ' */
            for (int tries = 0; tries < 32 && !result; tries++) {
                i = (int)(next_random(&rng) % (uint64_t)(n ? n : 1));
                if (i < n && t[i].kind == 'p' && data[t[i].start] == '[')
                    result = splice(data, size, max_size, t[i].start + 1, 0, (rng & 1) ? "2, " : "1, ", 3);
            }
            break;
        case 6: /* wrap a run of tokens: deeper nesting */
        {
            i = pick(t, n, 0, data, &rng);
            if (i < 0) break;
            int len = 1 + (int)(next_random(&rng) % 6);
            if (i + len > n) len = n - i;
            const char *const *w = wrappers[next_random(&rng) % (sizeof wrappers / sizeof *wrappers)];
            size_t end = t[i + len - 1].start + t[i + len - 1].len;
            size_t s2 = splice(data, size, max_size, end, 0, w[1], strlen(w[1]));
            if (s2) result = splice(data, s2, max_size, t[i].start, 0, w[0], strlen(w[0]));
            break;
        }
        case 7: /* copy a line after another */
        {
            i = pick(t, n, 0, data, &rng);
            if (i < 0) break;
            size_t a = t[i].start, b = a;
            while (a > 0 && data[a - 1] != '\n') a--;
            while (b < size && data[b] != '\n') b++;
            if (b < size) b++;
            char line[1024];
            if (b - a >= sizeof line || b == a) break;
            memcpy(line, data + a, b - a);
            size_t at = t[(int)(next_random(&rng) % (uint64_t)n)].start;
            while (at < size && data[at] != '\n') at++;
            if (at < size) at++;
            result = splice(data, size, max_size, at, 0, line, b - a);
            break;
        }
        }
    }
    return result ? result : LLVMFuzzerMutate(data, size, max_size);
}
