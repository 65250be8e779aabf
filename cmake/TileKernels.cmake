# TileKernels.cmake: ahead-of-time compilation of .tile kernels into a CMake target.
#
#   tile_add_kernels(TARGET target
#                    SOURCES a.tile [b.tile ...]
#                    [ARCHS sm_80 sm_90a]          # default: both
#                    [KERNELS k1 k2 ...]           # default: every kernel of each file
#                    [DEFINES NAME=VALUE ...]      # compile-time constants (tilec -D)
#                    [PREFIX id]                   # functions are <id>_<kernel>_launch;
#                                                  # default: each file's name
#                    [REQUIRE_IMAGES])             # fail when a cubin cannot be made
#
# For each source, a build-time command runs
#   tilec build --emit c-header -o <bindir>/tile_kernels/<target>/<name>.tile.h ... <source>
# which writes <name>.tile.h and <name>.tile.c; both are added to the target, the folder to its
# include directories (so `#include "vector_add.tile.h"`), and the target is linked to libtile.
# The command reruns when the .tile file, tilec or libtile change. DEFINES apply to every
# source, and each must be declared by a kernel of each source: call tile_add_kernels once per
# group of files that share constants (several calls on one target are fine).
#
# Which tilec and libtile: inside tile's own build tree the targets `tilec` and `tile`; in a
# downstream project the imported targets tile::tilec and tile::tile when a package defines them,
# else the program found as TILE_TILEC (find_program: set -DTILE_TILEC=/path/to/tilec) and the
# library TILE_LIBRARY with headers in TILE_INCLUDE_DIR (see docs/AOT.md).
include_guard(GLOBAL)

function(_tile_kernels_tools out_tilec out_deps out_lib)
  if(TARGET tilec)
    set(${out_tilec} $<TARGET_FILE:tilec> PARENT_SCOPE)
    set(${out_deps} tilec $<TARGET_FILE:tilec> $<TARGET_FILE:tile> PARENT_SCOPE)
    set(${out_lib} tile PARENT_SCOPE)
  elseif(TARGET tile::tilec)
    set(${out_tilec} $<TARGET_FILE:tile::tilec> PARENT_SCOPE)
    set(${out_deps} tile::tilec PARENT_SCOPE)
    set(${out_lib} tile::tile PARENT_SCOPE)
  else()
    find_program(TILE_TILEC tilec REQUIRED)
    find_library(TILE_LIBRARY tile REQUIRED)
    find_path(TILE_INCLUDE_DIR tile/tile.h REQUIRED)
    set(${out_tilec} ${TILE_TILEC} PARENT_SCOPE)
    set(${out_deps} ${TILE_TILEC} ${TILE_LIBRARY} PARENT_SCOPE)
    set(${out_lib} ${TILE_LIBRARY} PARENT_SCOPE)
  endif()
endfunction()

function(tile_add_kernels)
  cmake_parse_arguments(TK "REQUIRE_IMAGES" "TARGET;PREFIX" "SOURCES;ARCHS;KERNELS;DEFINES" ${ARGN})
  if(NOT TK_TARGET OR NOT TARGET ${TK_TARGET})
    message(FATAL_ERROR "tile_add_kernels: TARGET must name an existing target (got '${TK_TARGET}')")
  endif()
  if(NOT TK_SOURCES)
    message(FATAL_ERROR "tile_add_kernels: no SOURCES")
  endif()
  if(TK_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "tile_add_kernels: unknown arguments ${TK_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT TK_ARCHS)
    set(TK_ARCHS sm_80 sm_90a)
  endif()
  _tile_kernels_tools(tilec deps lib)

  set(options)
  list(JOIN TK_ARCHS "," archs)
  list(APPEND options --arch ${archs})
  foreach(k ${TK_KERNELS})
    list(APPEND options -k ${k})
  endforeach()
  foreach(d ${TK_DEFINES})
    list(APPEND options -D ${d})
  endforeach()
  if(TK_PREFIX)
    list(APPEND options --prefix ${TK_PREFIX})
  endif()
  if(TK_REQUIRE_IMAGES)
    list(APPEND options --require-images)
  endif()

  set(outdir ${CMAKE_CURRENT_BINARY_DIR}/tile_kernels/${TK_TARGET})
  file(MAKE_DIRECTORY ${outdir})
  foreach(src ${TK_SOURCES})
    get_filename_component(abs ${src} ABSOLUTE)
    get_filename_component(name ${src} NAME_WE)
    set(header ${outdir}/${name}.tile.h)
    set(source ${outdir}/${name}.tile.c)
    add_custom_command(
      OUTPUT ${header} ${source}
      COMMAND ${tilec} build --emit c-header -o ${header} ${options} ${abs}
      DEPENDS ${abs} ${deps}
      COMMENT "tilec: ${name}.tile -> ${name}.tile.h, ${name}.tile.c (${archs})"
      VERBATIM)
    target_sources(${TK_TARGET} PRIVATE ${header} ${source})
  endforeach()
  target_include_directories(${TK_TARGET} PUBLIC ${outdir})
  if(TILE_INCLUDE_DIR AND NOT TARGET tile AND NOT TARGET tile::tile)
    target_include_directories(${TK_TARGET} PUBLIC ${TILE_INCLUDE_DIR})
  endif()
  target_link_libraries(${TK_TARGET} PRIVATE ${lib})
endfunction()
