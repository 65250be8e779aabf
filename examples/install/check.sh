#!/bin/sh
# check.sh BUILD [CC]: installs tile from the build folder BUILD into a temporary prefix, then
# builds and runs the two example projects against that prefix alone (nothing from the source
# tree or the build folder is on their paths): cmake/ through find_package(tile), pkgconfig/
# through pkg-config. Both run on the VM (TILE_DEVICE=vm), so this works without a GPU; the
# kernel cache goes to the temporary folder. The ctest entry install_example runs it.
set -eu
build=$(cd "$1" && pwd)
cc=${2:-cc}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tile-install-XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
prefix=$tmp/prefix

cmake --install "$build" --prefix "$prefix" >"$tmp/install.log"
pc=$(find "$prefix" -name tile.pc)
libdir=$(dirname "$(dirname "$pc")") # lib, or lib/<multiarch> when configured for /usr
for f in bin/tilec include/tile/tile.h "${libdir#$prefix/}/cmake/tile/tileConfig.cmake" \
         "${libdir#$prefix/}/cmake/tile/TileKernels.cmake" share/tile/stdlib/core/vector_add.tile; do
  [ -e "$prefix/$f" ] || { echo "not installed: $f" >&2; exit 1; }
done
soname=$(objdump -p "$libdir"/libtile.so | sed -n 's/^ *SONAME *//p')
case "$soname" in
  libtile.so.[0-9]*) [ -e "$libdir/$soname" ] || { echo "no $soname installed" >&2; exit 1; } ;;
  *) echo "libtile has no versioned soname (got '$soname')" >&2; exit 1 ;;
esac
"$prefix/bin/tilec" --version

export TILE_DEVICE=vm TILE_CACHE_DIR="$tmp/cache"
echo "== find_package(tile) =="
cmake -S "$here/cmake" -B "$tmp/cmake-build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_BUILD_TYPE=Release >"$tmp/configure.log" || { cat "$tmp/configure.log"; exit 1; }
cmake --build "$tmp/cmake-build" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
"$tmp/cmake-build/install_cmake_example"

echo "== pkg-config =="
mkdir -p "$tmp/pc-build"
PKG_CONFIG_PATH="$libdir/pkgconfig" make -s -C "$here/pkgconfig" O="$tmp/pc-build" CC="$cc"
"$tmp/pc-build/install_pkgconfig_example"
