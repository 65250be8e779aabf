#!/usr/bin/env bash
# The two commands of the README.
#
#   scripts/run.sh          install what is missing (apt-get), build, run the main job
#                           (examples/hello_tile: a kernel JIT-compiled and run on the GPU when
#                           there is one, else on the CPU virtual machine)
#   scripts/run.sh test     build with -Werror and run every test: the unit and kernel suites,
#                           the bad-input corpus, the Python package's pytest suite (ctest's
#                           python_package), GPU tests (they skip without a GPU), then an
#                           ASan+UBSan build of the suites and bounded libFuzzer runs of the
#                           frontend (seeded with the corpus) and of the IR reader and passes
#                           (seeded with the golden pass files)
#
# Environment: BUILD (build folder, default build), JOBS (parallel jobs), FUZZ_SECONDS (60),
# FUZZ_IR_SECONDS (30),
# TILE_QUICK=1 skips the sanitizer build and the fuzzer.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
JOBS=${JOBS:-$(nproc)}
mode=${1:-main}

packages=(cmake make gcc llvm-22-dev re2c lemon libcriterion-dev zlib1g-dev libzstd-dev clang libclang-rt-14-dev
          python3-numpy python3-pytest)
packages+=(pkg-config) # examples/install/pkgconfig (the ctest entry install_example)
install_missing() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
  fi
}

configure_and_build() { # dir, extra cmake args...
  local dir=$1; shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS"
}

install_missing
case "$mode" in
  main)
    configure_and_build "$BUILD"
    "$BUILD"/hello_tile
    ;;
  test)
    configure_and_build "$BUILD" -DTILE_WERROR=ON
    (cd "$BUILD" && ctest --output-on-failure -j "$JOBS")
    if [ "${TILE_QUICK:-0}" != 1 ]; then
      echo "== ASan+UBSan build =="
      configure_and_build "$BUILD-asan" -DTILE_WERROR=ON -DTILE_SANITIZE=ON
      supp="$(pwd)/tests/lsan.supp"
      (cd "$BUILD-asan" && ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS="suppressions=$supp" \
        ctest --output-on-failure -j "$JOBS" -LE gpu)
      echo "== libFuzzer, frontend, ${FUZZ_SECONDS:-60} s =="
      CC=clang configure_and_build "$BUILD-fuzz" -DTILE_FUZZ=ON -DTILE_SANITIZE=ON -DTILE_WITH_LLVM=OFF -DTILE_BUILD_TESTS=OFF
      mkdir -p "$BUILD-fuzz/corpus"
      "$BUILD-fuzz"/fuzz_frontend -max_total_time="${FUZZ_SECONDS:-60}" -max_len=4096 -timeout=10 -artifact_prefix="$BUILD-fuzz/" \
        "$BUILD-fuzz/corpus" tests/corpus/bad stdlib/core examples/kernels tests/lang2
      echo "== libFuzzer, IR reader and passes, ${FUZZ_IR_SECONDS:-30} s =="
      mkdir -p "$BUILD-fuzz/corpus-ir"
      "$BUILD-fuzz"/fuzz_ir -max_total_time="${FUZZ_IR_SECONDS:-30}" -max_len=8192 -timeout=10 -artifact_prefix="$BUILD-fuzz/ir-" \
        "$BUILD-fuzz/corpus-ir" tests/passes
    fi
    ;;
  *)
    echo "usage: scripts/run.sh [test]" >&2
    exit 2
    ;;
esac
