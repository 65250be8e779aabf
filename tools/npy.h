/*
 * npy.h: a small reader and writer of numpy's .npy format (version 1.0 to 3.0), for tilec's
 * `run --in NAME=x.npy --out DIR`. Only what tile's tensors need: booleans, integers and floats
 * of 1, 2, 4 or 8 bytes, either byte order on input (data is handed out little-endian), C
 * order. Everything else (structured, complex, string or object dtypes, Fortran order, a header
 * that is malformed or larger than NPY_MAX_HEADER, data that is shorter or longer than the
 * shape says) is refused with a message. Uses only the C library: no part of libtile.
 */
#ifndef TILE_TOOLS_NPY_H
#define TILE_TOOLS_NPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* numpy itself refuses headers above 10000 bytes unless told otherwise; so do we, with room. */
enum { NPY_MAX_RANK = 32, NPY_MAX_HEADER = 65536, NPY_ERROR_CAP = 320 };

typedef struct NpyArray {
    char kind;        /* 'b' bool, 'i' signed integer, 'u' unsigned integer, 'f' float */
    int itemsize;     /* bytes per element: 1, 2, 4 or 8 */
    int rank;         /* 0 for a scalar array */
    int64_t shape[NPY_MAX_RANK];
    int64_t numel;
    void *data;       /* numel * itemsize bytes, little-endian, C order; malloc'd */
} NpyArray;

/* Reads path into *out. False with a message in err[NPY_ERROR_CAP] (naming the file) on any
 * failure, leaving *out empty. */
bool npy_read(const char *path, NpyArray *out, char *err);
/* The same from a buffer (name is used in messages). */
bool npy_parse(const char *name, const unsigned char *bytes, size_t len, NpyArray *out, char *err);
/* Writes a version 1.0 file: kind/itemsize as in NpyArray, data little-endian. */
bool npy_write(const char *path, char kind, int itemsize, int rank, const int64_t *shape, const void *data,
               char *err);
/* numpy's descr for kind and itemsize ("<f4", "|u1", "|b1"). */
void npy_descr(char kind, int itemsize, char out[8]);
void npy_free(NpyArray *a);

#endif
