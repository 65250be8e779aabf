# TileInstall.cmake: what `cmake --install` puts where, and the Debian package (`cpack -G DEB`).
#
#   <prefix>/lib/libtile.so.0.1.0, libtile.so.0.1, libtile.so   the library (soname libtile.so.0.1)
#   <prefix>/include/tile/tile.h                               the API
#   <prefix>/bin/tilec                                         the CLI (RUNPATH $ORIGIN/../lib)
#   <prefix>/lib/cmake/tile/                                   find_package(tile CONFIG): the imported
#                                                              targets tile::tile and tile::tilec, the
#                                                              function tile_add_kernels, TILE_STDLIB_DIR
#   <prefix>/lib/pkgconfig/tile.pc                             pkg-config --cflags --libs tile
#   <prefix>/share/tile/stdlib/core/*.tile                     the standard library's sources
#   <prefix>/share/tile/python/tile/                           the Python package, when python/tile exists
#
# Everything is relocatable: the package files find the prefix from their own location (CMake's
# PACKAGE_PREFIX_DIR, pkg-config's ${pcfiledir}), so `cmake --install build --prefix DIR` and the
# .deb (prefix /usr) install the same files. libtile links LLVM statically; the .deb depends only
# on the C library, zlib and zstd (found by dpkg-shlibdeps). The ctest entry install_example
# installs into a temporary prefix and builds and runs examples/install/ against it.
include(CMakePackageConfigHelpers)

set(TILE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/tile)
set(TILE_STDLIB_INSTALL_DIR ${CMAKE_INSTALL_DATADIR}/tile/stdlib)

install(TARGETS tile EXPORT tileTargets LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS tilec EXPORT tileTargets RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY include/tile DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT tileTargets NAMESPACE tile:: DESTINATION ${TILE_CMAKE_DIR})

configure_package_config_file(cmake/tileConfig.cmake.in ${CMAKE_BINARY_DIR}/tileConfig.cmake
                              INSTALL_DESTINATION ${TILE_CMAKE_DIR}
                              PATH_VARS TILE_STDLIB_INSTALL_DIR)
# 0.x: only the same minor version is compatible (as the soname says)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/tileConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/tileConfig.cmake ${CMAKE_BINARY_DIR}/tileConfigVersion.cmake
              cmake/TileKernels.cmake
        DESTINATION ${TILE_CMAKE_DIR})

file(RELATIVE_PATH TILE_PC_TO_PREFIX ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" TILE_PC_TO_PREFIX "${TILE_PC_TO_PREFIX}")
configure_file(cmake/tile.pc.in ${CMAKE_BINARY_DIR}/tile.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/tile.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

install(DIRECTORY stdlib/ DESTINATION ${TILE_STDLIB_INSTALL_DIR} FILES_MATCHING PATTERN "*.tile")
if(EXISTS ${CMAKE_SOURCE_DIR}/python/tile)
  install(DIRECTORY python/tile DESTINATION ${CMAKE_INSTALL_DATADIR}/tile/python
          PATTERN __pycache__ EXCLUDE PATTERN "*.pyc" EXCLUDE)
endif()

# ---- cpack -G DEB ---------------------------------------------------------------------------------
set(CPACK_PACKAGE_NAME tile)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "GPU virtual machine and tile-level kernel language (libtile, tilec)")
set(CPACK_PACKAGE_CONTACT "tile developers <tile@invalid>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_GENERATOR DEB)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_STRIP_FILES ON) # libtile is 57 MB with debug information, 40 MB without
find_program(TILE_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(TILE_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
endif()
include(CPack)

if(TILE_BUILD_TESTS AND NOT TILE_SANITIZE)
  # Needs the build finished (ctest runs after it); not under the sanitizers, where libtile would
  # need the sanitizer runtime loaded first.
  add_test(NAME install_example
           COMMAND sh ${CMAKE_SOURCE_DIR}/examples/install/check.sh ${CMAKE_BINARY_DIR} ${CMAKE_C_COMPILER})
  set_tests_properties(install_example PROPERTIES LABELS unit TIMEOUT 600)
endif()
