/* test_npy.c: numpy I/O of `tilec run` (tools/npy.c, tools/run.c), the verdict of its --compare
 * (tools/compare.c) and the sizes and scalars of tilec run (issue 10, defect 10).
 *
 * The reader is fed a corpus of malformed .npy files that the test generates (not .npy, bad
 * versions, truncated headers and data, trailing bytes, huge headers, unsupported dtypes,
 * Fortran order, malformed dicts, overflowing shapes): every one must be refused with a message
 * that says what is wrong. The same files then go through the real `tilec run --in`, which must
 * exit 1 with that message (and never crash: CI runs this under ASan). Round trips check values:
 * inputs written with npy_write, a kernel run on the VM, outputs read back with npy_read and
 * compared element by element, for f32, i64 above 2^53, u64, bool and bf16 (through its '<f4'
 * stand-in). When Debian's numpy is installed, numpy itself loads what tilec wrote. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tools/compare.h"
#include "tools/npy.h"

static char tmp[64];

static void setup(void) {
    snprintf(tmp, sizeof tmp, "/tmp/tile_npy_XXXXXX");
    cr_assert_not_null(mkdtemp(tmp));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(npy, .init = setup, .fini = teardown, .timeout = 300);

/* A version 1.0 file: the preamble, header (padded to 64 as numpy does unless raw), data. */
static size_t make_npy(unsigned char *buf, const char *dict, const void *data, size_t nbytes) {
    size_t n = strlen(dict), total = 10 + n + 1, pad = (64 - total % 64) % 64, hlen = n + pad + 1;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)(hlen & 0xff);
    buf[9] = (unsigned char)(hlen >> 8);
    memcpy(buf + 10, dict, n);
    memset(buf + 10 + n, ' ', pad);
    buf[10 + hlen - 1] = '\n';
    if (nbytes) memcpy(buf + 10 + hlen, data, nbytes);
    return 10 + hlen + nbytes;
}

static void write_bytes(const char *name, const unsigned char *b, size_t n) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* Runs a shell command; returns its exit status, its stderr and stdout in out (cap bytes). */
static int run_cmd(const char *cmd, char *out, size_t cap) {
    char full[4096];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    cr_assert(WIFEXITED(st), "%s: did not exit normally (a crash?)\n%s", cmd, out);
    return WEXITSTATUS(st);
}

typedef struct BadFile {
    const char *name;
    unsigned char bytes[512];
    size_t len;
    const char *expect; /* a part of the message */
    bool tilec_only;    /* a valid .npy file that tilec refuses for vector_add's f32 */
} BadFile;

/* The corpus of malformed files; float data of 4 elements where the header says so. */
static int make_corpus(BadFile *c) {
    static const float four[4] = {1, 2, 3, 4};
    int n = 0;
#define DICT(name_, dict_, nbytes_, expect_)                                                                \
    c[n] = (BadFile){.name = name_, .expect = expect_};                                                  \
    c[n].len = make_npy(c[n].bytes, dict_, four, nbytes_);                                               \
    n++
    DICT("wrong_dtype.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16, "'<f8'");
    c[n - 1].tilec_only = true;
    DICT("wrong_int.npy", "{'descr': '<i4', 'fortran_order': False, 'shape': (4,), }", 16, "expected '<f4'");
    c[n - 1].tilec_only = true;
    DICT("complex.npy", "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", 16, "not supported");
    DICT("string.npy", "{'descr': '<U4', 'fortran_order': False, 'shape': (1,), }", 16, "not supported");
    DICT("object.npy", "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", 16, "Python objects");
    DICT("structured.npy", "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,), }", 16, "structured");
    DICT("fortran.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16, "Fortran");
    DICT("truncated_data.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (8,), }", 16, "truncated data");
    DICT("trailing.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 16, "after the data");
    DICT("no_shape.npy", "{'descr': '<f4', 'fortran_order': False, }", 16, "lacks 'shape'");
    DICT("unknown_key.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'x': 1}", 16, "unknown key");
    DICT("repeated_key.npy", "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4,)}", 16,
         "repeated key");
    DICT("negative_dim.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (-4,), }", 16, "malformed 'shape'");
    DICT("overflow_shape.npy",
         "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }", 16, "overflow");
    DICT("huge_count.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904,), }", 16,
         "do not fit");
    DICT("not_a_dict.npy", "['descr', '<f4']", 16, "not a dict");
    DICT("bad_bool_word.npy", "{'descr': '<f4', 'fortran_order': maybe, 'shape': (4,), }", 16, "fortran_order");
    DICT("unclosed.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4,", 16, "malformed");
    DICT("bad_order.npy", "{'descr': '!f4', 'fortran_order': False, 'shape': (4,), }", 16, "byte order");
#undef DICT
    c[n] = (BadFile){.name = "text.npy", .len = 12, .expect = "not a .npy file"};
    memcpy(c[n++].bytes, "hello, world", 12);
    c[n] = (BadFile){.name = "empty.npy", .len = 0, .expect = "not a .npy file"};
    n++;
    c[n] = (BadFile){.name = "magic_only.npy", .len = 6, .expect = "not a .npy file"};
    memcpy(c[n++].bytes, "\x93NUMPY", 6);
    c[n] = (BadFile){.name = "version9.npy", .len = 10, .expect = "version 9.0"};
    memcpy(c[n++].bytes, "\x93NUMPY\x09\x00\x00\x00", 10);
    c[n] = (BadFile){.name = "truncated_header.npy", .len = 18, .expect = "truncated .npy header"};
    memcpy(c[n++].bytes, "\x93NUMPY\x01\x00\x40\x00{'descr'", 18);
    /* version 2.0 with a 4-byte header length of 16 MiB: refused before it is read */
    c[n] = (BadFile){.name = "huge_header.npy", .len = 12, .expect = "larger than"};
    memcpy(c[n++].bytes, "\x93NUMPY\x02\x00\x00\x00\x00\x01", 12);
    /* found by fuzzing npy_parse: the message quoted past the end of an unterminated header */
    static const char unterminated[] = "\x93NUMPY\x01\x00\x24\x00{'descr': '|b1', 'fortran_oru2','descr':  '<    ";
    c[n] = (BadFile){.name = "unterminated.npy", .len = sizeof unterminated - 1, .expect = "malformed header near"};
    memcpy(c[n++].bytes, unterminated, sizeof unterminated - 1);
    c[n] = (BadFile){.name = "nul_header.npy", .expect = "NUL"};
    c[n].len = make_npy(c[n].bytes, "{'descr': '<f4',\0 'fortran_order': False, 'shape': (4,), }", four, 16);
    memset(c[n].bytes + 10 + 16, 0, 1);
    n++;
    return n;
}

Test(npy, every_malformed_file_is_refused_with_a_reason) {
    BadFile corpus[40];
    int n = make_corpus(corpus);
    for (int i = 0; i < n; i++) {
        NpyArray a;
        char err[NPY_ERROR_CAP];
        err[0] = 0;
        if (corpus[i].tilec_only) continue;
        /* an exact-size copy, so that ASan sees any read past the end */
        unsigned char *exact = malloc(corpus[i].len + 1);
        memcpy(exact, corpus[i].bytes, corpus[i].len);
        cr_expect(!npy_parse(corpus[i].name, exact, corpus[i].len, &a, err), "%s was accepted", corpus[i].name);
        free(exact);
        cr_expect(strstr(err, corpus[i].expect) != NULL, "%s: expected '%s' in: %s", corpus[i].name, corpus[i].expect, err);
        cr_expect(strncmp(err, corpus[i].name, strlen(corpus[i].name)) == 0, "the message names the file: %s", err);
        /* and the same from a file */
        write_bytes(corpus[i].name, corpus[i].bytes, corpus[i].len);
        char path[256];
        snprintf(path, sizeof path, "%s/%s", tmp, corpus[i].name);
        err[0] = 0;
        cr_expect(!npy_read(path, &a, err), "%s was accepted from a file", corpus[i].name);
        cr_expect(strstr(err, corpus[i].expect) != NULL, "%s (file): expected '%s' in: %s", corpus[i].name,
                  corpus[i].expect, err);
        cr_expect_null(a.data);
    }
}

Test(npy, well_formed_variants_are_read) {
    unsigned char buf[512];
    NpyArray a;
    char err[NPY_ERROR_CAP];
    /* big-endian int32 is swapped to little-endian */
    const unsigned char be[8] = {0, 0, 1, 2, 0xff, 0xff, 0xff, 0xfe};
    size_t n = make_npy(buf, "{\"descr\": \">i4\", \"fortran_order\": False, \"shape\": (2,)}", be, 8);
    cr_assert(npy_parse("be.npy", buf, n, &a, err), "%s", err);
    int32_t v[2];
    memcpy(v, a.data, 8);
    cr_expect_eq(v[0], 0x102);
    cr_expect_eq(v[1], -2);
    cr_expect_eq(a.kind, 'i');
    npy_free(&a);
    /* a scalar array (shape ()) and an empty one */
    n = make_npy(buf, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", "\0\0\0\0\0\0\xf0\x3f", 8);
    cr_assert(npy_parse("scalar.npy", buf, n, &a, err), "%s", err);
    cr_expect_eq(a.rank, 0);
    cr_expect_eq(a.numel, 1);
    npy_free(&a);
    n = make_npy(buf, "{'descr': '|u1', 'fortran_order': False, 'shape': (3, 0), }", NULL, 0);
    cr_assert(npy_parse("empty.npy", buf, n, &a, err), "%s", err);
    cr_expect_eq(a.numel, 0);
    cr_expect_eq(a.shape[0], 3);
    npy_free(&a);
}

Test(npy, write_then_read_round_trips) {
    int64_t shape[2] = {3, 5};
    double d[15];
    for (int i = 0; i < 15; i++) d[i] = i * 0.25 - 1;
    char path[256], err[NPY_ERROR_CAP];
    snprintf(path, sizeof path, "%s/d.npy", tmp);
    cr_assert(npy_write(path, 'f', 8, 2, shape, d, err), "%s", err);
    NpyArray a;
    cr_assert(npy_read(path, &a, err), "%s", err);
    cr_expect_eq(a.rank, 2);
    cr_expect_eq(a.shape[1], 5);
    cr_expect_eq(memcmp(a.data, d, sizeof d), 0);
    npy_free(&a);
    FILE *f = fopen(path, "rb");
    unsigned char head[10];
    cr_assert_eq(fread(head, 1, 10, f), 10);
    fclose(f);
    cr_expect_eq((10 + head[8] + 256 * head[9]) % 64, 0, "the data starts at a multiple of 64, as numpy writes");
}

/* ---- through tilec run ------------------------------------------------------------------------- */
static const char *tilec_path(void) { return TILE_BUILD_DIR "/tilec"; }

Test(npy, tilec_refuses_every_malformed_input_with_exit_1) {
    BadFile corpus[40];
    int n = make_corpus(corpus);
    for (int i = 0; i < n; i++) {
        write_bytes(corpus[i].name, corpus[i].bytes, corpus[i].len);
        char cmd[1024], out[4096];
        snprintf(cmd, sizeof cmd, "'%s' run '%s/stdlib/core/vector_add.tile' -k vector_add --device vm --in a='%s/%s' N=4",
                 tilec_path(), TILE_SOURCE_DIR, tmp, corpus[i].name);
        int rc = run_cmd(cmd, out, sizeof out);
        cr_expect_eq(rc, 1, "%s: exit %d\n%s", corpus[i].name, rc, out);
        cr_expect(strstr(out, corpus[i].expect) != NULL, "%s: expected '%s' in: %s", corpus[i].name, corpus[i].expect,
                  out);
    }
}

/* Writes a float32 vector file (1-D, n elements, values start + i). */
static void write_f32(const char *name, int rank, const int64_t *shape, float start) {
    int64_t numel = 1;
    for (int d = 0; d < rank; d++) numel *= shape[d];
    float *v = malloc(sizeof(float) * (size_t)(numel + 1));
    for (int64_t i = 0; i < numel; i++) v[i] = start + (float)i;
    char path[256], err[NPY_ERROR_CAP];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    cr_assert(npy_write(path, 'f', 4, rank, shape, v, err), "%s", err);
    free(v);
}

Test(npy, tilec_checks_shapes_against_the_kernel) {
    int64_t n1000 = 1000, n999 = 999, m[2] = {10, 100};
    write_f32("a.npy", 1, &n1000, 0);
    write_f32("b999.npy", 1, &n999, 0);
    write_f32("m.npy", 2, m, 0);
    struct {
        const char *args, *expect;
        int rc;
    } cases[] = {
        {"--in a=%s/a.npy --in b=%s/b999.npy", "is 999, but the shape of", 1},
        {"--in a=%s/a.npy N=999 --in b=%s/a.npy", "the command line gives N = 999", 1},
        {"--in a=%s/m.npy --in b=%s/a.npy", "rank 2, but tensor 'a' has rank 1", 1},
        {"--in x=%s/a.npy --in b=%s/a.npy", "no tensor parameter", 2},
        {"--in a=%s/a.npy --in a=%s/a.npy", "given twice", 2},
        {"--in a=%s/missing.npy --in b=%s/a.npy", "cannot open", 1},
        {"--in a=%s --in b=%s/a.npy", "not a regular file", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[512], cmd[1024], out[4096];
        snprintf(args, sizeof args, cases[i].args, tmp, tmp);
        snprintf(cmd, sizeof cmd, "'%s' run '%s/stdlib/core/vector_add.tile' -k vector_add --device vm %s", tilec_path(),
                 TILE_SOURCE_DIR, args);
        int rc = run_cmd(cmd, out, sizeof out);
        cr_expect_eq(rc, cases[i].rc, "%s: exit %d\n%s", args, rc, out);
        cr_expect(strstr(out, cases[i].expect) != NULL, "%s: expected '%s' in: %s", args, cases[i].expect, out);
    }
}

Test(npy, tilec_round_trips_values_through_a_kernel) {
    int64_t n = 1000;
    write_f32("a.npy", 1, &n, 0);
    write_f32("b.npy", 1, &n, 0.5f);
    char cmd[1024], out[8192], path[256], err[NPY_ERROR_CAP];
    /* only a from a file: b is random, N comes from a's shape; --out creates the folder */
    snprintf(cmd, sizeof cmd, "'%s' run '%s/stdlib/core/vector_add.tile' -k vector_add --device vm --in a=%s/a.npy "
             "--in b=%s/b.npy --out %s/out", tilec_path(), TILE_SOURCE_DIR, tmp, tmp, tmp);
    cr_assert_eq(run_cmd(cmd, out, sizeof out), 0, "%s", out);
    NpyArray a, b, c;
    snprintf(path, sizeof path, "%s/out/a.npy", tmp);
    cr_assert(npy_read(path, &a, err), "%s", err);
    snprintf(path, sizeof path, "%s/out/b.npy", tmp);
    cr_assert(npy_read(path, &b, err), "%s", err);
    snprintf(path, sizeof path, "%s/out/c.npy", tmp);
    cr_assert(npy_read(path, &c, err), "%s", err);
    cr_assert_eq(c.kind, 'f');
    cr_assert_eq(c.itemsize, 4);
    cr_assert_eq(c.numel, 1000);
    const float *fa = a.data, *fb = b.data, *fc = c.data;
    for (int i = 0; i < 1000; i++) {
        cr_assert_eq(fa[i], (float)i, "inputs are written back unchanged");
        cr_assert_eq(fb[i], (float)i + 0.5f);
        cr_assert_eq(fc[i], fa[i] + fb[i], "c[%d] = %g", i, fc[i]);
    }
    npy_free(&a);
    npy_free(&b);
    npy_free(&c);
    /* numpy itself reads the files (Debian's python3-numpy, when installed) */
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 -c 'import numpy' 2>/dev/null && /usr/bin/python3 -c \"import numpy as np; "
             "c = np.load('%s/out/c.npy'); assert c.dtype == np.float32 and c.shape == (1000,), c; "
             "assert (c == np.arange(1000, dtype=np.float32) * 2 + 0.5).all()\" || "
             "! /usr/bin/python3 -c 'import numpy' 2>/dev/null", tmp);
    cr_expect_eq(run_cmd(cmd, out, sizeof out), 0, "numpy could not load tilec's output: %s", out);
}

/* A kernel over i64, u64, bool and bf16, with exact 64-bit scalars. */
static const char *exact_kernel =
    "kernel exact<B = 16>(x: tensor<i64>[N], y: tensor<i64>[N], v: i64, ux: tensor<u64>[N], uy: tensor<u64>[N],\n"
    "                     w: u64, p: tensor<bool>[N], q: tensor<bool>[N], h: tensor<bf16>[N], g: tensor<bf16>[N])\n"
    "  grid(cdiv(N, B))\n"
    "{\n"
    "  let i = block_id(0) * B;\n"
    "  y[i :+ B] = x[i :+ B] + v;\n"
    "  uy[i :+ B] = ux[i :+ B] + w;\n"
    "  q[i :+ B] = !p[i :+ B];\n"
    "  g[i :+ B] = h[i :+ B] * cast<bf16>(2.0);\n"
    "}\n";

Test(npy, tilec_keeps_64_bit_integers_and_scalars_exact) {
    char path[256], err[NPY_ERROR_CAP], cmd[2048], out[8192];
    snprintf(path, sizeof path, "%s/exact.tile", tmp);
    FILE *f = fopen(path, "w");
    fputs(exact_kernel, f);
    fclose(f);
    int64_t n = 4;
    int64_t x[4] = {0, -1, (int64_t)1 << 53, -((int64_t)1 << 60)};
    uint64_t ux[4] = {0, 1, (uint64_t)1 << 63, 12345};
    unsigned char p[4] = {1, 0, 7, 0};  /* a non-canonical true */
    float h[4] = {1.5f, -2.0f, 0.1f, 3e38f}; /* 0.1 rounds to bf16; 3e38 * 2 overflows to inf */
    snprintf(path, sizeof path, "%s/x.npy", tmp);
    cr_assert(npy_write(path, 'i', 8, 1, &n, x, err), "%s", err);
    snprintf(path, sizeof path, "%s/ux.npy", tmp);
    cr_assert(npy_write(path, 'u', 8, 1, &n, ux, err), "%s", err);
    snprintf(path, sizeof path, "%s/p.npy", tmp);
    cr_assert(npy_write(path, 'b', 1, 1, &n, p, err), "%s", err);
    snprintf(path, sizeof path, "%s/h.npy", tmp);
    cr_assert(npy_write(path, 'f', 4, 1, &n, h, err), "%s", err);
    snprintf(cmd, sizeof cmd, "cd %s && '%s' run exact.tile -k exact --device vm --in x=x.npy --in ux=ux.npy --in p=p.npy "
             "--in h=h.npy v=9007199254740993 w=9223372036854775809 --out out", tmp, tilec_path());
    cr_assert_eq(run_cmd(cmd, out, sizeof out), 0, "%s", out);
    NpyArray y, uy, q, g;
    snprintf(path, sizeof path, "%s/out/y.npy", tmp);
    cr_assert(npy_read(path, &y, err), "%s", err);
    snprintf(path, sizeof path, "%s/out/uy.npy", tmp);
    cr_assert(npy_read(path, &uy, err), "%s", err);
    snprintf(path, sizeof path, "%s/out/q.npy", tmp);
    cr_assert(npy_read(path, &q, err), "%s", err);
    snprintf(path, sizeof path, "%s/out/g.npy", tmp);
    cr_assert(npy_read(path, &g, err), "%s", err);
    cr_assert(y.kind == 'i' && y.itemsize == 8 && uy.kind == 'u' && q.kind == 'b' && g.kind == 'f' && g.itemsize == 4);
    const int64_t v = 9007199254740993; /* 2^53 + 1: not a double */
    const uint64_t w = 9223372036854775809ull;
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(((int64_t *)y.data)[i], x[i] + v, "y[%d]", i);
        cr_expect_eq(((uint64_t *)uy.data)[i], ux[i] + w, "uy[%d]", i);
        cr_expect_eq(((unsigned char *)q.data)[i], p[i] ? 0 : 1, "q[%d]", i);
    }
    const float *gf = g.data;
    cr_expect_eq(gf[0], 3.0f);
    cr_expect_eq(gf[1], -4.0f);
    cr_expect_eq(gf[2], 0.2001953125f, "0.1 rounded to bf16 (0.10009765625), doubled: %.10g", gf[2]);
    cr_expect(isinf(gf[3]));
    npy_free(&y);
    npy_free(&uy);
    npy_free(&q);
    npy_free(&g);
    /* INT64_MAX stays INT64_MAX (it used to become INT64_MIN through a double) */
    int64_t zero = 0;
    snprintf(path, sizeof path, "%s/zero.npy", tmp);
    cr_assert(npy_write(path, 'i', 8, 1, &(int64_t){1}, &zero, err), "%s", err);
    snprintf(cmd, sizeof cmd, "cd %s && '%s' run exact.tile -k exact --device vm --in x=zero.npy v=9223372036854775807 "
             "w=0 --out o2", tmp, tilec_path());
    cr_assert_eq(run_cmd(cmd, out, sizeof out), 0, "%s", out);
    snprintf(path, sizeof path, "%s/o2/y.npy", tmp);
    cr_assert(npy_read(path, &y, err), "%s", err);
    cr_expect_eq(((int64_t *)y.data)[0], INT64_MAX);
    npy_free(&y);
    /* a value that does not fit the tensor's stand-in type */
    snprintf(cmd, sizeof cmd, "cd %s && '%s' run exact.tile -k exact --device vm --in x=h.npy v=0 w=0", tmp, tilec_path());
    cr_expect_eq(run_cmd(cmd, out, sizeof out), 1, "%s", out);
    cr_expect(strstr(out, "dtype '<f4', but tensor 'x' is i64: expected '<i8'") != NULL, "%s", out);
}

/* Issue 10, defect 10: sizes are checked before anything is allocated; many -D and bindings. */
Test(npy, tilec_run_checks_sizes_before_allocating) {
    const char *cases[][2] = {
        {"N=1e18", "outside 0 to 2^31-1"},
        {"N=1000000000000000000", "outside 0 to 2^31-1"},
        {"N=-5", "outside 0 to 2^31-1"},
        {"N=2.5", "not an integer"},
        {"N=99999999999999999999", "out of the range of int64"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char cmd[1024], out[4096];
        snprintf(cmd, sizeof cmd, "'%s' run '%s/stdlib/core/vector_add.tile' -k vector_add --device vm %s", tilec_path(),
                 TILE_SOURCE_DIR, cases[i][0]);
        int rc = run_cmd(cmd, out, sizeof out);
        cr_expect(rc == 1 || rc == 2, "%s: exit %d\n%s", cases[i][0], rc, out);
        cr_expect(strstr(out, cases[i][1]) != NULL, "%s: expected '%s' in: %s", cases[i][0], cases[i][1], out);
    }
}

Test(npy, tilec_takes_more_than_64_defines_and_bindings) {
    char cmd[8192], out[1 << 16];
    int n = snprintf(cmd, sizeof cmd, "'%s' run '%s/stdlib/core/vector_add.tile' -k vector_add --device vm N=8",
                     tilec_path(), TILE_SOURCE_DIR);
    for (int i = 0; i < 70; i++) n += snprintf(cmd + n, sizeof cmd - (size_t)n, " -D X%d=%d", i, i);
    cr_expect_eq(run_cmd(cmd, out, sizeof out), 1, "%s", out);
    cr_expect(strstr(out, "no compile-time parameter 'X0'") != NULL && !strstr(out, "bad -D"), "the constants reach the compiler: %s", out);
    n = snprintf(cmd, sizeof cmd, "'%s' run '%s/stdlib/core/vector_add.tile' -k vector_add --device vm N=8", tilec_path(),
                 TILE_SOURCE_DIR);
    for (int i = 0; i < 70; i++) n += snprintf(cmd + n, sizeof cmd - (size_t)n, " X%d=%d", i, i);
    int rc = run_cmd(cmd, out, sizeof out);
    cr_expect_eq(rc, 2, "%s", out);
    cr_expect(strstr(out, "'X0' is neither a size nor a scalar parameter") != NULL, "%s", out);
    n = snprintf(cmd, sizeof cmd, "'%s' check '%s/stdlib/core/vector_add.tile'", tilec_path(), TILE_SOURCE_DIR);
    for (int i = 0; i < 70; i++) n += snprintf(cmd + n, sizeof cmd - (size_t)n, " -D X%d=%d", i, i);
    rc = run_cmd(cmd, out, sizeof out);
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect(strstr(out, "no compile-time parameter 'X0'") != NULL, "the constants reach the compiler: %s", out);
}

/* The verdict of `tilec run --compare` (tools/compare.c): integers exact; floats within their
 * tolerance relative to the element and to the tensor's scale, so that a near-zero sum of large
 * terms (a dot's result near 0 among results near 40) passes where a bound relative to the
 * element alone failed it, while a real difference of the same tensor fails; NaN only matches NaN. */
Test(npy, compare_verdict_scales_with_the_tensor) {
    const double f32 = compare_tolerance(TILE_F32), bf16 = compare_tolerance(TILE_BF16);
    cr_assert_eq(compare_tolerance(TILE_I32), 0);
    cr_assert_float_eq(f32, 2e-5, 1e-12);
    cr_assert(bf16 > 1e-2 && bf16 < 5e-2);
    const double dot[4] = {40.0, -38.5, 0.0004, 12.0};
    double scale = compare_scale(1, dot, 4);
    cr_assert_float_eq(scale, 40.0, 0);
    cr_assert(compare_within(0.0004, 0.0004 + 3e-4, f32, scale), "rounding of 40-sized terms near 0");
    cr_assert(!compare_within(0.0004, 0.0004 + 3e-4, f32, 1), "the same difference in a tensor of size 1");
    cr_assert(!compare_within(12.0, 12.01, f32, scale), "a real difference");
    cr_assert(compare_within(7, 7, 0, scale) && !compare_within(7, 8, 0, scale), "integers exact");
    cr_assert(compare_within(NAN, NAN, f32, scale) && !compare_within(1.0, NAN, f32, scale));
    cr_assert(compare_within(INFINITY, INFINITY, f32, scale) && !compare_within(INFINITY, -INFINITY, f32, scale));
    const double odd[3] = {NAN, INFINITY, 0.5};
    cr_assert_float_eq(compare_scale(1, odd, 3), 1.0, 0, "non-finite values and small ones leave the scale at 1");
}
