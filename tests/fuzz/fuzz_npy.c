/* fuzz_npy.c: libFuzzer target for tilec's .npy reader (tools/npy.c). Any input must be refused
 * with a message or parsed into an array whose data the input actually held; ASan and UBSan
 * catch the rest. Built with -DTILE_FUZZ=ON (clang); run as
 *   build-fuzz/fuzz_npy -max_total_time=60 -max_len=512 CORPUS
 * with a folder of .npy files as CORPUS. Its first finding (a message that quoted past the end
 * of an unterminated header) is in tests/test_npy.c's corpus. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "tools/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    NpyArray a;
    char err[NPY_ERROR_CAP];
    if (npy_parse("fuzz.npy", data, size, &a, err)) {
        if ((size_t)a.numel * (size_t)a.itemsize > size) abort();
        npy_free(&a);
    }
    return 0;
}
