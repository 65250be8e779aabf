#!/usr/bin/env bash
# The two commands of the README.
#
#   scripts/run.sh          install what is missing (apt-get), build, run the main job
#                           (examples/hello_tile: a kernel JIT-compiled and run on the GPU when
#                           there is one, else on the CPU virtual machine)
#   scripts/run.sh test     build with -Werror and run every test: the unit and kernel suites,
#                           the bad-input corpus, the Python package's pytest suite (ctest's
#                           python_package), GPU tests (they skip without a GPU), then an
#                           ASan+UBSan build of the suites, bounded libFuzzer runs (under
#                           ASan+UBSan) of the frontend, of the IR reader and passes (seeded
#                           with the golden pass files) and of the whole pipeline (source to
#                           PTX for sm_80 and sm_90a, and the VM) seeded with every shipped
#                           kernel, the bad-input corpus, the diagnostic tests and the fuzzers'
#                           regressions, of the disk cache's interface entries and of the .npy
#                           reader, and a ThreadSanitizer build of the thread tests
#
# Environment: BUILD (build folder, default build), JOBS (parallel jobs), FUZZ_SECONDS (60, the
# frontend fuzzer), FUZZ_IR_SECONDS (30, the IR fuzzer), FUZZ_FILES_SECONDS (30 each, the cache
# interface entry and .npy fuzzers), PIPELINE_FUZZ_SECONDS (240, the pipeline fuzzer),
# TILE_QUICK=1 skips the sanitizer builds and the fuzzers.
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
      echo "== libFuzzer (ASan+UBSan): frontend ${FUZZ_SECONDS:-60} s, whole pipeline ${PIPELINE_FUZZ_SECONDS:-240} s =="
      CC=clang cmake -S . -B "$BUILD-fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTILE_FUZZ=ON -DTILE_SANITIZE=ON \
        -DTILE_WITH_LLVM=ON -DTILE_BUILD_TESTS=OFF >/dev/null
      cmake --build "$BUILD-fuzz" -j "$JOBS" --target fuzz_frontend fuzz_pipeline fuzz_ir fuzz_interface fuzz_npy
      mkdir -p "$BUILD-fuzz/corpus" "$BUILD-fuzz/corpus-pipeline"
      seeds=(stdlib/core examples/kernels tests/lang2 tests/corpus/bad tests/diag tests/fuzz/regressions) # read only; new inputs go to corpus*
      "$BUILD-fuzz"/fuzz_frontend -max_total_time="${FUZZ_SECONDS:-60}" -max_len=4096 -timeout=10 -artifact_prefix="$BUILD-fuzz/" \
        -dict=tests/fuzz/tile.dict "$BUILD-fuzz/corpus" "${seeds[@]}"
      echo "== libFuzzer, IR reader and passes, ${FUZZ_IR_SECONDS:-30} s =="
      mkdir -p "$BUILD-fuzz/corpus-ir"
      "$BUILD-fuzz"/fuzz_ir -max_total_time="${FUZZ_IR_SECONDS:-30}" -max_len=8192 -timeout=10 -artifact_prefix="$BUILD-fuzz/ir-" \
        "$BUILD-fuzz/corpus-ir" tests/passes
      echo "== libFuzzer, disk-cache interface entries and .npy files, ${FUZZ_FILES_SECONDS:-30} s each =="
      mkdir -p "$BUILD-fuzz/corpus-interface" "$BUILD-fuzz/seeds-interface" "$BUILD-fuzz/corpus-npy" "$BUILD-fuzz/seeds-npy"
      FUZZ_INTERFACE_SEEDS="$BUILD-fuzz/seeds-interface" "$BUILD-fuzz"/fuzz_interface -max_total_time="${FUZZ_FILES_SECONDS:-30}" \
        -max_len=16384 -timeout=10 -artifact_prefix="$BUILD-fuzz/interface-" "$BUILD-fuzz/corpus-interface" "$BUILD-fuzz/seeds-interface"
      /usr/bin/python3 -c 'import numpy as np, sys
for i, t in enumerate(["<f4", "<i8", "|b1", "<u2", ">f8"]): np.save(f"{sys.argv[1]}/{i}.npy", np.arange(6).astype(t).reshape(2, 3))
np.save(f"{sys.argv[1]}/f.npy", np.zeros((2, 2), "<f4", order="F"))' "$BUILD-fuzz/seeds-npy"
      "$BUILD-fuzz"/fuzz_npy -max_total_time="${FUZZ_FILES_SECONDS:-30}" -max_len=512 -timeout=10 \
        -artifact_prefix="$BUILD-fuzz/npy-" "$BUILD-fuzz/corpus-npy" "$BUILD-fuzz/seeds-npy"
      # a crash here: add the artifact to tests/fuzz/regressions (a seed from then on) with the fix
      "$BUILD-fuzz"/fuzz_pipeline -max_total_time="${PIPELINE_FUZZ_SECONDS:-240}" -max_len=8192 -timeout=180 \
        -rss_limit_mb=4096 -artifact_prefix="$BUILD-fuzz/pipeline-" -dict=tests/fuzz/tile.dict -print_final_stats=1 \
        "$BUILD-fuzz/corpus-pipeline" "${seeds[@]}"
      echo "== ThreadSanitizer: the thread tests (with the LLVM backend and the stand-in driver: compiles on threads) =="
      cmake -S . -B "$BUILD-tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTILE_WERROR=ON -DTILE_TSAN=ON >/dev/null
      cmake --build "$BUILD-tsan" -j "$JOBS" --target test_threads fake_cuda
      (cd "$BUILD-tsan" && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
        ctest --output-on-failure -R '^test_threads$')
    fi
    ;;
  *)
    echo "usage: scripts/run.sh [test]" >&2
    exit 2
    ;;
esac
