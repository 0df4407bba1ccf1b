#pragma once
// Kernels shared by the GPU backends (launchers are host functions; no CUDA types leak out).
#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

#include "kernels/collectives/types.hpp"

namespace gfdit::coll::detail {

// dst[i] = ((rows[0][i] + rows[1][i]) + ...) in member order; 16-bit types in fp32, rounded once.
cudaError_t launch_reduce_rows(dtype t, const void* rows, int n, std::size_t count, void* dst, cudaStream_t s);

}  // namespace gfdit::coll::detail
