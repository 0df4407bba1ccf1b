#pragma once
// The portable forward (mma.sync, sm_80+).
// Included only by attention_cuda.cu: the kernels stay one translation unit, so splitting them
// into files changes no generated code.
#include "kernels/attention/cuda/device_atoms.cuh"

namespace gfdit::attention {
namespace {

// ---- forward -------------------------------------------------------------------------------
// 4 warps; each warp owns RW row blocks of 16 query rows, so every K/V fragment read from shared
// memory feeds RW matrix ops.
template <int D, int RW_>
struct fwd_cfg {
  static constexpr int warps = 4;
  static constexpr int rw = RW_;
  static constexpr int bm = 16 * warps * rw;
  static constexpr int bn = 64;
  static constexpr int threads = warps * 32;
  static constexpr int smem = (bm * D + 4 * bn * D) * 2;
};

template <bool BF16, int D, bool CAUSAL, int RW_>
__global__ void __launch_bounds__(fwd_cfg<D, RW_>::threads)
    fwd_kernel(seq_layout L, const std::uint16_t* __restrict__ q, const std::uint16_t* __restrict__ k,
               const std::uint16_t* __restrict__ v, std::uint16_t* __restrict__ o, float* __restrict__ lse,
               float scale_log2, int pair0) {
  using C = fwd_cfg<D, RW_>;
  constexpr int BM = C::bm, BN = C::bn, RW = C::rw;
  extern __shared__ __align__(128) std::uint8_t smem_raw[];
  const std::uint32_t sbase = static_cast<std::uint32_t>(__cvta_generic_to_shared(smem_raw));
  const std::uint32_t sQ = sbase;
  const std::uint32_t sK0 = sQ + BM * D * 2;       // K[buf] = sK0 + buf * BN * D * 2
  const std::uint32_t sV0 = sK0 + 2 * BN * D * 2;  // V[buf] likewise

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int pair = pair0 + static_cast<int>(blockIdx.y), b = pair / L.heads, h = pair % L.heads;
  const int len = L.len(b);
  const int m0 = blockIdx.x * BM;
  if (m0 >= len) return;
  const std::int64_t stride = std::int64_t(L.row_step()) * D;
  const std::int64_t base = L.row0(b, h) * D;
  const std::uint16_t* gq = q + base + m0 * stride;
  const std::uint16_t* gk = k + base;
  const std::uint16_t* gv = v + base;

  const int kv_len = CAUSAL ? min(len, m0 + BM) : len;
  const int n_tiles = (kv_len + BN - 1) / BN;

  load_tile<BM, D, C::threads>(sQ, gq, stride, len - m0, tid);
  load_tile<BN, D, C::threads>(sK0, gk, stride, len, tid);
  load_tile<BN, D, C::threads>(sV0, gv, stride, len, tid);
  cp_commit();

  float acc[RW][D / 8][4];
#pragma unroll
  for (int r = 0; r < RW; ++r)
#pragma unroll
    for (int i = 0; i < D / 8; ++i) acc[r][i][0] = acc[r][i][1] = acc[r][i][2] = acc[r][i][3] = 0.f;
  float row_max[RW][2], row_sum[RW][2];
#pragma unroll
  for (int r = 0; r < RW; ++r) row_max[r][0] = row_max[r][1] = -INFINITY, row_sum[r][0] = row_sum[r][1] = 0.f;
  const int wrow = warp * 16 * RW;  // first query row of this warp within the tile
  const std::uint32_t offQ = swz<D>(wrow + (lane & 15), (lane >> 4) * 8);                  // A, +r*16 rows
  const std::uint32_t offK = swz<D>((lane & 7) + (lane >> 4) * 8, ((lane >> 3) & 1) * 8);  // B
  const std::uint32_t offV = swz<D>((lane & 7) + ((lane >> 3) & 1) * 8, (lane >> 4) * 8);  // B^T

  for (int n = 0; n < n_tiles; ++n) {
    const int buf = n & 1;
    const std::uint32_t sK = sK0 + buf * BN * D * 2, sV = sV0 + buf * BN * D * 2;
    cp_next_stage(n + 1 < n_tiles, [&] {
      load_tile<BN, D, C::threads>(sK0 + (buf ^ 1) * BN * D * 2, gk + (n + 1) * BN * stride, stride, len - (n + 1) * BN,
                                   tid);
      load_tile<BN, D, C::threads>(sV0 + (buf ^ 1) * BN * D * 2, gv + (n + 1) * BN * stride, stride, len - (n + 1) * BN,
                                   tid);
    });
    __syncthreads();

    float s[RW][BN / 8][4];
#pragma unroll
    for (int r = 0; r < RW; ++r)
#pragma unroll
      for (int i = 0; i < BN / 8; ++i) s[r][i][0] = s[r][i][1] = s[r][i][2] = s[r][i][3] = 0.f;
    {
      const std::uint32_t oq = opaque_u(offQ), ok = opaque_u(offK);
#pragma unroll 2
      for (int kk = 0; kk < D / 16; ++kk) {
        std::uint32_t qa[RW][4];
#pragma unroll
        for (int r = 0; r < RW; ++r) ldsm_x4(qa[r], swz_at<D>(sQ, oq, r * 16, 2 * kk));
        mma_rows_times_blocks<BF16, false, BN / 16>(s, qa, [&](int j) { return swz_at<D>(sK, ok, j * 16, 2 * kk); });
      }
    }
    const int k0 = n * BN;
    const bool need_mask = (k0 + BN > len) || (CAUSAL && k0 + BN - 1 > m0);
#pragma unroll
    for (int r = 0; r < RW; ++r) {
      const int q_row0 = m0 + wrow + r * 16 + lane / 4;
#pragma unroll
      for (int i = 0; i < BN / 8; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          float x = s[r][i][e] * scale_log2;
          if (need_mask) {
            int kc = k0 + i * 8 + (lane % 4) * 2 + (e & 1);
            int qr = q_row0 + (e >= 2 ? 8 : 0);
            if (kc >= len || (CAUSAL && kc > qr)) x = -INFINITY;
          }
          s[r][i][e] = x;
        }
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        float mx = row_max[r][hh];
#pragma unroll
        for (int i = 0; i < BN / 8; ++i) mx = fmaxf(mx, fmaxf(s[r][i][2 * hh], s[r][i][2 * hh + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float use = mx == -INFINITY ? 0.f : mx;
        const float alpha = fast_exp2(row_max[r][hh] - use);
        row_max[r][hh] = mx;
        float sum = 0.f;
#pragma unroll
        for (int i = 0; i < BN / 8; ++i) {
          s[r][i][2 * hh] = fast_exp2(s[r][i][2 * hh] - use);
          s[r][i][2 * hh + 1] = fast_exp2(s[r][i][2 * hh + 1] - use);
          sum += s[r][i][2 * hh] + s[r][i][2 * hh + 1];
        }
        row_sum[r][hh] = row_sum[r][hh] * alpha + sum;
#pragma unroll
        for (int i = 0; i < D / 8; ++i) {
          acc[r][i][2 * hh] *= alpha;
          acc[r][i][2 * hh + 1] *= alpha;
        }
      }
    }
    {
      const std::uint32_t ov = opaque_u(offV);
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        std::uint32_t a[RW][4];
#pragma unroll
        for (int r = 0; r < RW; ++r) {
          a[r][0] = pack2<BF16>(s[r][2 * kk][0], s[r][2 * kk][1]);
          a[r][1] = pack2<BF16>(s[r][2 * kk][2], s[r][2 * kk][3]);
          a[r][2] = pack2<BF16>(s[r][2 * kk + 1][0], s[r][2 * kk + 1][1]);
          a[r][3] = pack2<BF16>(s[r][2 * kk + 1][2], s[r][2 * kk + 1][3]);
        }
        mma_rows_times_blocks<BF16, true, D / 16>(acc, a, [&](int j) { return swz_at<D>(sV, ov, kk * 16, 2 * j); });
      }
    }
    __syncthreads();  // the next prefetch overwrites this buffer
  }

#pragma unroll
  for (int r = 0; r < RW; ++r)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      float sum = row_sum[r][hh];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      const float inv = 1.f / sum;
      const int qr = m0 + wrow + r * 16 + lane / 4 + hh * 8;
      if (qr < len) {
        std::uint16_t* go = o + base + std::int64_t(qr) * stride;
#pragma unroll
        for (int i = 0; i < D / 8; ++i)
          *reinterpret_cast<std::uint32_t*>(go + i * 8 + (lane % 4) * 2) =
              pack2<BF16>(acc[r][i][2 * hh] * inv, acc[r][i][2 * hh + 1] * inv);
        if (lane % 4 == 0) lse[L.lse0(b, h) + qr] = (row_max[r][hh] + __log2f(sum)) * kLn2;
      }
    }
}

}  // namespace
}  // namespace gfdit::attention
