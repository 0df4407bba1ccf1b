#pragma once
// The Hopper forward (sm_90a, wgmma).
// Included only by attention_cuda.cu: the kernels stay one translation unit, so splitting them
// into files changes no generated code.
#include "kernels/attention/cuda/device_atoms.cuh"
#include "kernels/attention/wgmma.cuh"

namespace gfdit::attention {
namespace {

// ---- forward on Hopper (sm_90a): warpgroup MMA ---------------------------------------------
// Same contract as fwd_kernel (one block per Q tile, keys ascending, no split-KV): two
// warpgroups each own 64 of the tile's 128 query rows; S = Q K^T reads both operands from sw128
// shared tiles, and P stays in registers as the A operand of O += P V.
// Software-pipelined: iteration n issues S_n = Q K_n^T and O += P_{n-1} V_{n-1} together, so the
// tensor cores run the second product while this warpgroup computes the softmax of the first.
// K and V tiles are double-buffered apart: K_{n+1} and V_n are loaded during iteration n.
// Work items are the 128-row Q tiles of every (batch, head) pair, pair-major; a launch covers a
// range of them. WGS = 1 runs each item as two blocks of one warpgroup (64 rows each) with a
// single K tile, so two blocks share an SM and one's softmax and loads run under the other's
// products (the default where they fit); WGS = 2 blocks share their K/V tiles. A warpgroup's
// rows see the same K/V tiles in the same order either way, so the bits do not change.
constexpr int kFwd90M = 128, kFwd90N = 128;
template <int WGS>
constexpr int fwd90_threads() {
  return 128 * WGS;
}
// One-warpgroup blocks keep a single K tile (K_{n+1} is loaded once S_n has read K_n), so two
// of them fit on an SM and each one's softmax runs under the other's products.
template <int WGS>
constexpr int fwd90_k_tiles() {
  return WGS == 1 ? 1 : 2;
}
// Q, K, 2x V; two-warpgroup blocks add slack to align their tiles to 1024 bytes. One-warpgroup
// blocks need none (dynamic shared memory starts 1024-aligned on Hopper; the kernel checks),
// which leaves room beside two of them for a small block of another kernel.
template <int D, int WGS>
constexpr int fwd90_smem() {
  return (64 * WGS * D + (fwd90_k_tiles<WGS>() + 2) * kFwd90N * D) * 2 + (WGS == 1 ? 0 : 1024);
}

#ifdef GFDIT_WGMMA
// Online softmax over one 64x128 score tile in the m64n128 accumulator layout (this thread holds
// rows g and g + 8, 32 columns each). Scores are raw (masked ones -inf); the running maxima stay
// raw too and the scale folds into one FMA per exponential. Returns the rescale factor of O for
// each row in alpha and leaves exp2((s - max) * scale_log2) in s.
__device__ __forceinline__ void online_softmax(float (&s)[64], float (&row_max)[2], float (&row_sum)[2],
                                               float scale_log2, float (&alpha)[2]) {
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {                                 // rows g and g + 8
    float m4[4] = {row_max[hh], -INFINITY, -INFINITY, -INFINITY};  // four chains: latency
#pragma unroll
    for (int i = 0; i < 16; ++i) m4[i & 3] = fmaxf(m4[i & 3], fmaxf(s[4 * i + 2 * hh], s[4 * i + 2 * hh + 1]));
    float mx = fmaxf(fmaxf(m4[0], m4[1]), fmaxf(m4[2], m4[3]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float use = mx == -INFINITY ? 0.f : mx * scale_log2;
    alpha[hh] = fast_exp2(fmaf(row_max[hh], scale_log2, -use));
    row_max[hh] = mx;
    float s4[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      float& x0 = s[4 * i + 2 * hh];
      float& x1 = s[4 * i + 2 * hh + 1];
      x0 = fast_exp2(fmaf(x0, scale_log2, -use));
      x1 = fast_exp2(fmaf(x1, scale_log2, -use));
      s4[i & 3] += x0 + x1;
    }
    row_sum[hh] = row_sum[hh] * alpha[hh] + ((s4[0] + s4[1]) + (s4[2] + s4[3]));
  }
}
#endif

template <bool BF16, int D, bool CAUSAL, int WGS>
__global__ void __launch_bounds__(fwd90_threads<WGS>(), 1)
    fwd90_kernel(seq_layout L, const std::uint16_t* __restrict__ q, const std::uint16_t* __restrict__ k,
                 const std::uint16_t* __restrict__ v, std::uint16_t* __restrict__ o, float* __restrict__ lse,
                 float scale_log2, int tiles, std::int64_t item0) {
#ifdef GFDIT_WGMMA
  constexpr int BM = 64 * WGS, BN = kFwd90N, T = fwd90_threads<WGS>(), TILE = BN * D * 2;
  extern __shared__ __align__(128) std::uint8_t smem_raw[];  // aligned to 1024 below
  const std::uint32_t raw = static_cast<std::uint32_t>(__cvta_generic_to_shared(smem_raw));
  if (WGS == 1 && (raw & 1023u)) __trap();  // fwd90_smem counted no slack
  const std::uint32_t sQ = (raw + 1023) & ~1023u;
  constexpr int KT = fwd90_k_tiles<WGS>();
  const std::uint32_t sK0 = sQ + BM * D * 2;  // K[buf] = sK0 + buf * TILE
  const std::uint32_t sV0 = sK0 + KT * TILE;  // V[buf] likewise

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int wg = warp / 4, g = lane / 4, t4 = lane % 4;
  const std::int64_t item = item0 + blockIdx.x / (2 / WGS);
  const int pair = static_cast<int>(item / tiles), b = pair / L.heads, h = pair % L.heads;
  const int len = L.len(b);
  const int m0 = static_cast<int>(item % tiles) * kFwd90M + (WGS == 1 ? (blockIdx.x & 1) * 64 : 0);
  if (m0 >= len) return;
  const std::int64_t stride = std::int64_t(L.row_step()) * D;
  const std::int64_t base = L.row0(b, h) * D;
  const std::uint16_t* gk = k + base;
  const std::uint16_t* gv = v + base;
  const int kv_len = CAUSAL ? min(len, m0 + BM) : len;
  const int n_tiles = (kv_len + BN - 1) / BN;
  auto load_k = [&](int n) {
    load_tile<BN, D, T, true>(sK0 + (n % KT) * TILE, gk + n * BN * stride, stride, len - n * BN, tid);
  };
  auto load_v = [&](int n) {
    load_tile<BN, D, T, true>(sV0 + (n & 1) * TILE, gv + n * BN * stride, stride, len - n * BN, tid);
  };

  load_tile<BM, D, T, true>(sQ, q + base + m0 * stride, stride, len - m0, tid);
  load_k(0);
  cp_commit();
  if (KT == 2 && n_tiles > 1) load_k(1);
  load_v(0);
  cp_commit();

  float acc[D / 2];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) acc[i] = 0.f;
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.f, 0.f};
  const int q_row0 = m0 + wg * 64 + (warp % 4) * 16 + g;  // and +8
  const std::uint32_t sQw = sQ + wg * 64 * 128;
  std::uint32_t p[2][4][4];  // P_{n-1}: keys 0..63, 64..127, the A operand of O += P V

  for (int n = 0; n < n_tiles; ++n) {
    if (n == 0)
      cp_wait<1>();  // Q, K_0
    else
      cp_wait<0>();  // K_n, V_{n-1}
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();  // also: both warpgroups are done with K_{n-1} and V_{n-2}
    if (n > 0) {
      if (KT == 2 && n + 1 < n_tiles) load_k(n + 1);
      load_v(n);
      cp_commit();
    }
    float s[64];
    wgmma_fence();
    wgmma_rows_dot<BF16, D, BM, BN>(s, sQw, sK0 + (n % KT) * TILE);
    wgmma_commit();
    if (n > 0) {
      const std::uint32_t sV = sV0 + ((n - 1) & 1) * TILE;
      wgmma_regs_times_rows<BF16, BN>(acc, p, sV);
      wgmma_commit();
      wgmma_wait<1>();
    } else {
      wgmma_wait<0>();
    }
    wgmma_pin(s);
    if (KT == 1 && n + 1 < n_tiles) {  // every warp has read K_n: its tile takes K_{n+1}
      __syncthreads();
      load_k(n + 1);
      cp_commit();
    }

    const int k0 = n * BN;
    if ((k0 + BN > len) || (CAUSAL && k0 + BN - 1 > m0)) {
#pragma unroll
      for (int i = 0; i < 64; ++i) {
        const int kc = k0 + (i / 4) * 8 + t4 * 2 + (i & 1);
        const int qr = q_row0 + ((i & 2) ? 8 : 0);
        if (kc >= len || (CAUSAL && kc > qr)) s[i] = -INFINITY;
      }
    }
    float alpha[2];
    online_softmax(s, row_max, row_sum, scale_log2, alpha);
    wgmma_wait<0>();  // O += P_{n-1} V_{n-1}: O and P are free again
    wgmma_pin(acc);
#pragma unroll
    for (int i = 0; i < D / 8; ++i) {
      acc[4 * i] *= alpha[0];
      acc[4 * i + 1] *= alpha[0];
      acc[4 * i + 2] *= alpha[1];
      acc[4 * i + 3] *= alpha[1];
    }
    pack_pairs<BF16>(p[0], reinterpret_cast<const float(&)[32]>(s[0]));
    pack_pairs<BF16>(p[1], reinterpret_cast<const float(&)[32]>(s[32]));
  }
  cp_wait<0>();  // V_{last}
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
  __syncthreads();
  {
    const std::uint32_t sV = sV0 + ((n_tiles - 1) & 1) * TILE;
    wgmma_regs_times_rows<BF16, BN>(acc, p, sV);
    wgmma_commit();
    wgmma_wait<0>();
    wgmma_pin(acc);
  }

#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    float sum = row_sum[hh];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const float inv = 1.f / sum;
    const int qr = q_row0 + hh * 8;
    if (qr < len) {
      std::uint16_t* go = o + base + std::int64_t(qr) * stride + t4 * 2;
#pragma unroll
      for (int i = 0; i < D / 8; ++i)
        *reinterpret_cast<std::uint32_t*>(go + i * 8) =
            pack2<BF16>(acc[4 * i + 2 * hh] * inv, acc[4 * i + 2 * hh + 1] * inv);
      if (t4 == 0) lse[L.lse0(b, h) + qr] = (row_max[hh] * scale_log2 + __log2f(sum)) * kLn2;
    }
  }
#endif
}

}  // namespace
}  // namespace gfdit::attention
