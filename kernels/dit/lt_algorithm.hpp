#pragma once
// One cuBLASLt algorithm per GEMM shape, chosen once and then fixed: the heuristic's first choice
// with split-K off, so each output's sum has one order in one kernel whatever the call. Shared by
// the DiT's linears (gpu_gemm.cpp) and the VAE's convolutions-as-GEMMs (vae_gpu.cu).
#include <cstddef>
#include <string>

#include <cublasLt.h>

#include "common/result.hpp"

namespace gfdit::dit {

// `no_reduction`: also allow no reduction scheme in the heuristic's search. The algorithm comes
// back through `out` (nvcc 13's front end fails on a result<> of cuBLASLt's unnamed struct).
// `what` names the shape in the error.
result<void> fixed_lt_algorithm(cublasLtHandle_t lt, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t a,
                                cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t d, std::size_t workspace_bytes,
                                bool no_reduction, const std::string& what, cublasLtMatmulAlgo_t& out);

}  // namespace gfdit::dit
