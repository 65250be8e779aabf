#!/usr/bin/env bash
# Packs what scripts/gpu_all.sh needs on a GPU machine without LLVM or Criterion: libtile and
# the libraries the test binaries load, tilec, the benchmarks and the GPU test suites, stripped,
# into one xz archive (the device tool carries at most 64 MiB).
#
#   scripts/gpu_carry.sh [BUILD] [ARCHIVE]      (defaults: build, .carry-gemm/carry.tar.xz)
#
# CARRY_LITE=1 packs only libtile, tilec and the benchmarks (for benchmark runs: a third of the
# size, and xz takes a third of the time). CARRY_TESTS=1 packs only the GPU test suites under
# 10 MB (the statically linked ones are left out) and Criterion's libraries, to unpack over a lite
# carry: the two archives together stay under the limit.
set -euo pipefail
build=${1:-build} archive=${2:-.carry-gemm/carry.tar.xz}
t=$(mktemp -d)
mkdir -p "$t/bin" "$t/lib" "$t/tests" "$(dirname "$archive")"
if [ -z "${CARRY_TESTS:-}" ]; then
  cp "$build"/tilec "$build"/bench_gemm "$build"/bench_runtime "$t/bin/"
  cp -P "$build"/libtile.so* "$t/lib/"
fi
if [ -z "${CARRY_LITE:-}" ]; then
  for g in "$build"/tests/test_*_gpu; do
    if [ -z "${CARRY_TESTS:-}" ] || [ "$(stat -c %s "$g")" -lt 10000000 ]; then cp "$g" "$t/tests/"; fi
  done
  # Criterion and what it loads (the GPU machine has neither)
  ldd "$build"/tests/test_kernels_gpu | awk '$3 ~ /^\// && $1 !~ /^(libc|libm|libz|libzstd|libgcc_s|libtile)\./ {print $3}' |
    while read -r lib; do cp -L "$lib" "$t/lib/"; done
fi
strip "$t"/bin/* "$t"/tests/* "$t"/lib/libtile.so.* 2>/dev/null || true
tar -C "$t" -cf - . | xz -6 -T2 > "$archive"
rm -rf "$t"
ls -la "$archive"
