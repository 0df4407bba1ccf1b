// Ordered reduction of n rows: one thread per element walks the rows from first to last, so the
// result depends only on the member order, never on the launch shape.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/collectives/cuda_kernels.hpp"

namespace gfdit::coll::detail {
namespace {

template <class T>
struct acc_of {
  using type = float;
};
template <>
struct acc_of<int> {
  using type = unsigned;
};  // wrap-around, like NCCL

template <class T>
__device__ typename acc_of<T>::type load_acc(T v) {
  return static_cast<float>(v);
}
template <>
__device__ unsigned load_acc<int>(int v) {
  return static_cast<unsigned>(v);
}
template <>
__device__ float load_acc<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
template <>
__device__ float load_acc<__half>(__half v) {
  return __half2float(v);
}
template <class T>
__device__ T store_acc(typename acc_of<T>::type a) {
  return static_cast<T>(a);
}
template <>
__device__ int store_acc<int>(unsigned a) {
  return static_cast<int>(a);
}
template <>
__device__ __nv_bfloat16 store_acc<__nv_bfloat16>(float a) {
  return __float2bfloat16_rn(a);
}
template <>
__device__ __half store_acc<__half>(float a) {
  return __float2half_rn(a);
}

template <class T>
__global__ void reduce_rows_kernel(const T* __restrict__ rows, int n, std::size_t count, T* __restrict__ dst) {
  for (std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; i < count;
       i += std::size_t{gridDim.x} * blockDim.x) {
    auto acc = load_acc<T>(rows[i]);
    for (int r = 1; r < n; ++r) acc = acc + load_acc<T>(rows[r * count + i]);
    dst[i] = store_acc<T>(acc);
  }
}

template <class T>
cudaError_t launch(const void* rows, int n, std::size_t count, void* dst, cudaStream_t s) {
  if (count == 0) return cudaSuccess;
  const unsigned threads = 256;
  const std::size_t want = (count + threads - 1) / threads;
  const unsigned blocks = static_cast<unsigned>(want < 2048 ? want : 2048);
  reduce_rows_kernel<T><<<blocks, threads, 0, s>>>(static_cast<const T*>(rows), n, count, static_cast<T*>(dst));
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_reduce_rows(dtype t, const void* rows, int n, std::size_t count, void* dst, cudaStream_t s) {
  switch (t) {
    case dtype::f32:
      return launch<float>(rows, n, count, dst, s);
    case dtype::bf16:
      return launch<__nv_bfloat16>(rows, n, count, dst, s);
    case dtype::f16:
      return launch<__half>(rows, n, count, dst, s);
    case dtype::i32:
      return launch<int>(rows, n, count, dst, s);
  }
  return cudaErrorInvalidValue;
}

}  // namespace gfdit::coll::detail
