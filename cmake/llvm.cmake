# llvm.cmake: finds LLVM (22, from Debian's llvm-22-dev) and describes how to link its NVPTX
# backend statically.
#
# Sets TILE_LLVM_INCLUDE (the folder that holds llvm-c/) and TILE_LLVM_LIBS (what a target that
# uses backend/ must link). Only the components the backend needs are linked, from the static
# archives that `llvm-config --link-static --libfiles` lists for them: the NVPTX target (code
# generator, MC description, target info) and the new pass manager (LLVMRunPasses, O2). LLVM is
# C++, and the project is C: the C driver links, so the C++ runtime is named here as the static
# libstdc++.a of the C compiler (the effect of -static-libstdc++), and libgcc_s comes from the
# driver as usual. The system libraries are z and zstd alone: llvm-config also lists z3 and
# xml2, but nothing in these components refers to them (the Z3 solver and the manifest parser
# are not linked in), so the binaries run on machines without LLVM, Z3 or libxml2.
#
# Linking LLVM's archives is slow with GNU ld (5-8 s per test executable here); with lld it
# takes under a second, so lld is used for every link when the compiler accepts -fuse-ld=lld.
#
# Cache variables: TILE_LLVM_CONFIG (path of llvm-config), TILE_USE_LLD (ON when lld works).

find_program(TILE_LLVM_CONFIG
  NAMES llvm-config-22 llvm-config
  HINTS /usr/lib/llvm-22/bin
  DOC "llvm-config of the LLVM that provides the NVPTX backend")
if(NOT TILE_LLVM_CONFIG)
  message(FATAL_ERROR "llvm-config not found: install llvm-22-dev or set TILE_LLVM_CONFIG "
                      "(or configure with -DTILE_WITH_LLVM=OFF)")
endif()

function(tile_llvm_config out)
  execute_process(COMMAND ${TILE_LLVM_CONFIG} ${ARGN}
                  OUTPUT_VARIABLE value RESULT_VARIABLE rc ERROR_VARIABLE err
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${TILE_LLVM_CONFIG} ${ARGN} failed: ${err}")
  endif()
  set(${out} "${value}" PARENT_SCOPE)
endfunction()

tile_llvm_config(TILE_LLVM_VERSION --version)
if(TILE_LLVM_VERSION VERSION_LESS 22)
  message(FATAL_ERROR "LLVM ${TILE_LLVM_VERSION} at ${TILE_LLVM_CONFIG}: LLVM 22 or newer is needed")
endif()

set(TILE_LLVM_COMPONENTS nvptxcodegen nvptxdesc nvptxinfo passes analysis core target)
tile_llvm_config(TILE_LLVM_INCLUDE --includedir)
tile_llvm_config(llvm_archives --link-static --libfiles ${TILE_LLVM_COMPONENTS})
separate_arguments(llvm_archives UNIX_COMMAND "${llvm_archives}")

execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libstdc++.a
                OUTPUT_VARIABLE tile_libstdcxx OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT IS_ABSOLUTE "${tile_libstdcxx}" OR NOT EXISTS "${tile_libstdcxx}")
  message(FATAL_ERROR "libstdc++.a not found by ${CMAKE_C_COMPILER} (install g++/libstdc++-dev): "
                      "LLVM's C++ runtime is linked statically")
endif()

find_library(TILE_ZSTD_LIBRARY zstd REQUIRED)
find_library(TILE_Z_LIBRARY z REQUIRED)

set(TILE_LLVM_LIBS ${llvm_archives} ${tile_libstdcxx} ${TILE_ZSTD_LIBRARY} ${TILE_Z_LIBRARY} m pthread)
message(STATUS "LLVM ${TILE_LLVM_VERSION}: NVPTX backend linked statically "
               "(${TILE_LLVM_CONFIG}; C++ runtime ${tile_libstdcxx})")

include(CheckLinkerFlag)
check_linker_flag(C -fuse-ld=lld TILE_HAVE_LLD)
option(TILE_USE_LLD "Link with lld (much faster with LLVM's static archives)" ${TILE_HAVE_LLD})
if(TILE_USE_LLD)
  add_link_options(-fuse-ld=lld)
endif()
