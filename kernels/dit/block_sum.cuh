#pragma once
// The DiT and VAE kernels' one block reduction.
namespace gfdit::dit {

// Sum over the block in a fixed order: a butterfly in each warp, then the warps' sums in index
// order (every thread adds them alike, so all see the same bits). Every thread must call it;
// `sh` holds one float per warp.
__device__ inline float block_sum_fixed(float v, float* sh) {
  for (int m = 16; m; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);
  const int warps = blockDim.x / 32;
  if (threadIdx.x % 32 == 0) sh[threadIdx.x / 32] = v;
  __syncthreads();
  float r = 0;
  for (int w = 0; w < warps; ++w) r += sh[w];
  __syncthreads();
  return r;
}

}  // namespace gfdit::dit
