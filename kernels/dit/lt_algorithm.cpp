#include "kernels/dit/lt_algorithm.hpp"

#include <cstdint>

#include "common/gpu_check.hpp"

namespace gfdit::dit {

result<void> fixed_lt_algorithm(cublasLtHandle_t lt, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t a,
                                cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t d, std::size_t workspace_bytes,
                                bool no_reduction, const std::string& what, cublasLtMatmulAlgo_t& out) {
  cublasLtMatmulPreference_t pref = nullptr;
  GFDIT_CUBLAS(cublasLtMatmulPreferenceCreate(&pref));
  auto s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes,
                                                sizeof(workspace_bytes));
  const std::uint32_t none = CUBLASLT_REDUCTION_SCHEME_NONE;
  if (s == CUBLAS_STATUS_SUCCESS && no_reduction)
    s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &none, sizeof(none));
  cublasLtMatmulHeuristicResult_t res[8];
  int found = 0;
  if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtMatmulAlgoGetHeuristic(lt, op, a, b, d, d, pref, 8, res, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (s != CUBLAS_STATUS_SUCCESS || found == 0)
    return make_error(errc::io,
                      "no cuBLASLt algorithm for " + what + " (status " + std::to_string(static_cast<int>(s)) + ")");
  out = res[0].algo;
  // No split-K: a K split that depended on the shape would change the summation order.
  int one = 1;
  cublasLtMatmulAlgoConfigSetAttribute(&out, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &one, sizeof(one));
  return {};
}

}  // namespace gfdit::dit
