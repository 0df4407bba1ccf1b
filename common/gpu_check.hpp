#pragma once
// The one checking macro per GPU library (CUDA runtime, cuBLAS(Lt), NCCL), for every folder: a
// failed call returns an errc::io value naming the call, the library's message, file and line
// (errors are values at module boundaries). Include the library's own header before using one;
// this header needs none of them, so CPU-only code can include it.
#include <string>

#include "common/result.hpp"

namespace gfdit::detail {
inline error gpu_call_failed(const char* call, const std::string& why, const char* file, int line) {
  return error{errc::io, std::string(call) + ": " + why + " (" + file + ":" + std::to_string(line) + ")"};
}
}  // namespace gfdit::detail

#define GFDIT_CUDA(call)                                                                                    \
  do {                                                                                                      \
    const cudaError_t gfdit_cuda_e = (call);                                                                \
    if (gfdit_cuda_e != cudaSuccess)                                                                        \
      return ::gfdit::detail::gpu_call_failed(#call, cudaGetErrorString(gfdit_cuda_e), __FILE__, __LINE__); \
  } while (0)

#define GFDIT_CUBLAS(call)                                                                                 \
  do {                                                                                                     \
    const cublasStatus_t gfdit_cublas_s = (call);                                                          \
    if (gfdit_cublas_s != CUBLAS_STATUS_SUCCESS)                                                           \
      return ::gfdit::detail::gpu_call_failed(                                                             \
          #call, "cublas status " + std::to_string(static_cast<int>(gfdit_cublas_s)), __FILE__, __LINE__); \
  } while (0)

// ncclInProgress is the normal answer of a non-blocking communicator (settled by polling
// ncclCommGetAsyncError), not a failure.
#define GFDIT_NCCL(call)                                                                                    \
  do {                                                                                                      \
    const ncclResult_t gfdit_nccl_r = (call);                                                               \
    if (gfdit_nccl_r != ncclSuccess && gfdit_nccl_r != ncclInProgress)                                      \
      return ::gfdit::detail::gpu_call_failed(#call, ncclGetErrorString(gfdit_nccl_r), __FILE__, __LINE__); \
  } while (0)
