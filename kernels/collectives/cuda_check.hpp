#pragma once
// The one checking macro of the collectives' GPU backends: a failed CUDA call becomes an
// errc::io result naming the call, file and line (errors are values at the module boundary).
#include <string>

#include <cuda_runtime.h>

#include "common/result.hpp"

#define GFDIT_COLL_CUDA(call)                                                                    \
  do {                                                                                           \
    const cudaError_t gfdit_coll_e = (call);                                                     \
    if (gfdit_coll_e != cudaSuccess)                                                             \
      return ::gfdit::make_error(::gfdit::errc::io, std::string(#call) + ": " +                  \
                                                        cudaGetErrorString(gfdit_coll_e) + " (" + \
                                                        __FILE__ + ":" + std::to_string(__LINE__) + ")"); \
  } while (0)
