// gpu_model's GEMMs: the weights on the device, one cuBLASLt algorithm per (out, in) chosen at a
// fixed reference row count (so an element's reduction order does not depend on the token count).
#include "kernels/dit/gpu_model_impl.hpp"
#include "kernels/dit/lt_algorithm.hpp"

namespace gfdit::dit {

result<dev_linear> gpu_model::impl::linear_from(const std::vector<std::uint16_t>& w,
                                                const std::vector<std::uint16_t>& b) {
  dev_linear L;
  L.out = static_cast<int>(b.size());
  L.in = static_cast<int>(w.size() / b.size());
  auto pw = alloc<bf16>(w.size(), allocs);
  if (!pw) return pw.err();
  auto pb = alloc<bf16>(b.size(), allocs);
  if (!pb) return pb.err();
  L.w = *pw;
  L.b = *pb;
  GFDIT_CUDA(cudaMemcpy(L.w, w.data(), w.size() * 2, cudaMemcpyHostToDevice));
  GFDIT_CUDA(cudaMemcpy(L.b, b.data(), b.size() * 2, cudaMemcpyHostToDevice));
  return L;
}

result<dev_linear> gpu_model::impl::linear_gen(int out, int in, std::uint64_t stream) {
  dev_linear L{nullptr, nullptr, out, in};
  auto pw = alloc<bf16>(static_cast<std::size_t>(out) * in, allocs);
  if (!pw) return pw.err();
  auto pb = alloc<bf16>(out, allocs);
  if (!pb) return pb.err();
  L.w = *pw;
  L.b = *pb;
  const long nw = static_cast<long>(out) * in;
  gpu::generate(L.w, nw, splitmix64(stream), std::sqrt(3.0f / in), st);
  gpu::generate(L.b, out, splitmix64(stream ^ 1), 0.02f, st);
  GFDIT_CUDA(cudaGetLastError());
  return L;
}

result<cublasLtMatmulAlgo_t> gpu_model::impl::algo_for(int N, int K, bool gelu) {
  auto it = algos.find({N, K, gelu});
  if (it != algos.end()) return it->second;
  // The algorithm depends on the weight's shape and the model's token count only (never on
  // the rows of a call: a row's bits must not depend on how many rows run with it). Sized
  // for one sample's tokens, small models get tiles that fill the GPU; above 4096 rows the
  // choice for 4096 measured faster (mmdit-12b-standin and wan-like steps ~7% slower at their own count).
  const std::int64_t ref_rows = std::min<std::int64_t>(c.seq_tokens(), 4096);
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  GFDIT_CUBLAS(make_desc(&op, nullptr, gelu));
  GFDIT_CUBLAS(cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, K, N, K));
  GFDIT_CUBLAS(cublasLtMatrixLayoutCreate(&b, CUDA_R_16BF, K, ref_rows, K));
  GFDIT_CUBLAS(cublasLtMatrixLayoutCreate(&d, CUDA_R_16BF, N, ref_rows, N));
  cublasLtMatmulAlgo_t al;
  auto r = fixed_lt_algorithm(lt, op, a, b, d, ws_bytes, false,
                              "dit gpu " + std::to_string(N) + "x" + std::to_string(K), al);
  cublasLtMatrixLayoutDestroy(a);
  cublasLtMatrixLayoutDestroy(b);
  cublasLtMatrixLayoutDestroy(d);
  cublasLtMatmulDescDestroy(op);
  if (!r) return r.err();
  algos.emplace(std::make_tuple(N, K, gelu), al);
  return al;
}

cublasStatus_t gpu_model::impl::make_desc(cublasLtMatmulDesc_t* op, const bf16* bias, bool gelu) {
  auto s = cublasLtMatmulDescCreate(op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  if (s != CUBLAS_STATUS_SUCCESS) return s;
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  cublasLtMatmulDescSetAttribute(*op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta));
  cublasLtMatmulDescSetAttribute(*op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb));
  const cublasLtEpilogue_t ep = gelu ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
  s = cublasLtMatmulDescSetAttribute(*op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof(ep));
  if (s != CUBLAS_STATUS_SUCCESS) return s;
  if (bias) s = cublasLtMatmulDescSetAttribute(*op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias));
  return s;
}

result<void> gpu_model::impl::gemm(const dev_linear& L, const bf16* X, std::int64_t M, bf16* Y, bool gelu) {
  auto al = algo_for(L.out, L.in, gelu);
  if (!al) return al.err();
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  GFDIT_CUBLAS(make_desc(&op, L.b, gelu));
  GFDIT_CUBLAS(cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, L.in, L.out, L.in));
  GFDIT_CUBLAS(cublasLtMatrixLayoutCreate(&b, CUDA_R_16BF, L.in, M, L.in));
  GFDIT_CUBLAS(cublasLtMatrixLayoutCreate(&d, CUDA_R_16BF, L.out, M, L.out));
  const float alpha = 1.0f, beta = 0.0f;
  const auto s = cublasLtMatmul(lt, op, &alpha, L.w, a, X, b, &beta, Y, d, Y, d, &*al, ws, ws_bytes, st);
  cublasLtMatrixLayoutDestroy(a);
  cublasLtMatrixLayoutDestroy(b);
  cublasLtMatrixLayoutDestroy(d);
  cublasLtMatmulDescDestroy(op);
  GFDIT_CUBLAS(s);
  return {};
}

}  // namespace gfdit::dit
