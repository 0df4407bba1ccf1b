# Debian 12 packages (installed by `make deps`); nothing is downloaded at build time.
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
# msgpack-cxx header-only, without Boost (its CMake package would pull Boost in).
find_path(MSGPACK_INCLUDE_DIR msgpack.hpp REQUIRED)
add_library(gfdit_msgpack INTERFACE)
target_include_directories(gfdit_msgpack SYSTEM INTERFACE ${MSGPACK_INCLUDE_DIR})
target_compile_definitions(gfdit_msgpack INTERFACE MSGPACK_NO_BOOST)
find_package(nlohmann_json REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(spdlog REQUIRED)
find_package(fmt REQUIRED)
find_package(CLI11 REQUIRED)
find_package(GTest REQUIRED)
find_package(benchmark QUIET)
pkg_check_modules(ZMQ REQUIRED IMPORTED_TARGET libzmq)
# cpp-httplib as Debian builds it: a shared library (the HTTP gateway).
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
# PNG results (libspng) and gzip'd data sets (zlib).
pkg_check_modules(SPNG REQUIRED IMPORTED_TARGET spng)
find_package(ZLIB REQUIRED)

# CAF 0.17 ships no CMake package on Debian.
find_path(CAF_INCLUDE_DIR caf/all.hpp REQUIRED)
find_library(CAF_CORE_LIBRARY caf_core REQUIRED)
find_library(CAF_IO_LIBRARY caf_io REQUIRED)
add_library(caf::core UNKNOWN IMPORTED)
set_target_properties(caf::core PROPERTIES IMPORTED_LOCATION ${CAF_CORE_LIBRARY}
                      INTERFACE_INCLUDE_DIRECTORIES ${CAF_INCLUDE_DIR})

# NCCL lives beside the CUDA toolkit on the build machines; optional.
if(GFDIT_HAVE_CUDA)
  find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include)
  find_library(NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib64)
  if(NCCL_INCLUDE_DIR AND NCCL_LIBRARY)
    add_library(nccl::nccl UNKNOWN IMPORTED)
    set_target_properties(nccl::nccl PROPERTIES IMPORTED_LOCATION ${NCCL_LIBRARY}
                          INTERFACE_INCLUDE_DIRECTORIES ${NCCL_INCLUDE_DIR})
    set(GFDIT_HAVE_NCCL ON)
    message(STATUS "gfdit: NCCL found: ${NCCL_LIBRARY}")
  endif()
endif()
