#!/usr/bin/env bash
# On the GPU machine, from the repository root: every GPU test suite, every kernel on cuda
# against the VM, the Python package's torch tests, and the runtime benchmarks, from binaries
# built elsewhere and carried as one archive (scripts/gpu_carry.sh makes it). Results go to OUT.
#
#   scripts/gpu_all.sh ARCHIVE OUT
set -uo pipefail
archive=$1 out=$2
c=/tmp/tile-carry
mkdir -p "$c" "$out" && tar -C "$c" -xJf "$archive"
export LD_LIBRARY_PATH="$c/lib" TILE_CACHE_DIR=/tmp/tile-cache TILE_SOURCE_DIR="$PWD"
# the test binaries name the source folder they were built from
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }
status=0
step() { echo "== $*"; timeout 300 "$@" || { echo "FAILED ($?): $*"; status=1; }; }
for t in "$c"/tests/*; do step "$t" --jobs 4; done
TILEC="$c/bin/tilec" BIN="$c/bin" step scripts/gpu_check.sh
PYTHONPATH=python TILE_LIBRARY="$c/lib/libtile.so" step python3 -m pytest -q -p no:cacheprovider tests/python
step "$c/bin/bench_runtime" --out "$out/runtime-h200.json"
PYTHONPATH=python TILE_LIBRARY="$c/lib/libtile.so" step python3 bench/bench_python.py --out "$out/python-h200.json"
echo "gpu_all: status $status"
exit $status
