#pragma once
// The Hopper backward (sm_90a, wgmma).
// Included only by attention_cuda.cu: the kernels stay one translation unit, so splitting them
// into files changes no generated code.
#include "kernels/attention/cuda/backward_common.cuh"
#include "kernels/attention/wgmma.cuh"

namespace gfdit::attention {
namespace {

// ---- backward on Hopper (sm_90a): warpgroup MMA --------------------------------------------
// The same items, schedules, ranks and dQ adds as bwd_kernel, with every product on wgmma: the
// tensor cores read Q, K, V, dO and dS^T straight from shared memory (sw128 tiles), so no warp
// re-reads the Q / dO tiles through ldmatrix, which bounded the mma.sync kernel by shared-memory
// bandwidth. Two warpgroups each own 64 of the KV tile's 128 rows; P^T and dS^T stay in
// registers as the A operand of dV += P^T dO and dK += dS^T Q.
template <int D>
constexpr int bwd90_smem() {
  return bwd_smem<D>() + 1024;  // + alignment slack: sw128 tiles start on 1024-byte boundaries
}

// acc = A B^T over the head dim (issued, not awaited): A is 64 rows at shared address `a` of an
// sw128 tile of A_ROWS rows, B the rows at `b` of a tile of B_ROWS rows (64 or 128 of them, as
// acc holds), both K-major.
template <bool BF16, int D, int A_ROWS, int B_ROWS, int N>
__device__ __forceinline__ void wgmma_rows_dot(float (&acc)[N], std::uint32_t a, std::uint32_t b) {
#ifdef GFDIT_WGMMA
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const std::uint32_t off = (kk % 4) * 32;  // 16 columns = 32 bytes into a 64-column region
    const std::uint64_t da = wgmma_desc(a + (kk / 4) * A_ROWS * 128 + off, 16, 1024);
    const std::uint64_t db = wgmma_desc(b + (kk / 4) * B_ROWS * 128 + off, 16, 1024);
    if constexpr (N == 32)
      wgmma_ss_n64<BF16, 0, 0>(acc, da, db, kk > 0);
    else
      wgmma_ss_n128<BF16, 0, 0>(acc, da, db, kk > 0);
  }
#endif
}

// A 64x64 accumulator (32 floats per thread) as the register A operand of four k16 slices,
// finished before the caller's wgmma_fence (else the compiler interleaves the conversions with
// the MMAs and must fence each one).
template <bool BF16>
__device__ __forceinline__ void pack_pairs(std::uint32_t (&a)[4][4], const float (&x)[32]) {
#pragma unroll
  for (int kk = 0; kk < 4; ++kk)
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      a[kk][r] = pack2<BF16>(x[8 * kk + 2 * r], x[8 * kk + 2 * r + 1]);
      asm volatile("" : "+r"(a[kk][r]));
    }
}

// acc += A B (issued, not awaited): A = 64 x 64*KB in registers (KB blocks from pack_pairs), B =
// 64*KB rows from `b` on of an sw128 tile of B_ROWS rows, MN-major (its rows are the reduction),
// all D columns. One fence for all: a fence between them splits the products into two groups
// in the SASS, so a later wait for "all but the newest group" also waits for the first half.
template <bool BF16, int B_ROWS, int N, int KB>
__device__ __forceinline__ void wgmma_regs_times_rows(float (&acc)[N], const std::uint32_t (&a)[KB][4][4],
                                                      std::uint32_t b) {
#ifdef GFDIT_WGMMA
  wgmma_fence();
#pragma unroll
  for (int kb = 0; kb < KB; ++kb)
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      const std::uint64_t db = wgmma_desc(b + (kb * 4 + kk) * 16 * 128, B_ROWS * 128, 1024);
      if constexpr (N == 64)
        wgmma_rs_n128<BF16>(acc, a[kb][kk], db);
      else
        wgmma_rs_n64<BF16>(acc, a[kb][kk], db);
    }
#endif
}

template <bool BF16, int D, bool CAUSAL>
__global__ void __launch_bounds__(kBwdThreads, 1) bwd90_kernel(bwd_params P) {
#ifdef GFDIT_WGMMA
  constexpr int BM = kBwdM, BN = kBwdN;
  extern __shared__ __align__(128) std::uint8_t smem_raw[];  // aligned to 1024 below
  const std::uint32_t raw = static_cast<std::uint32_t>(__cvta_generic_to_shared(smem_raw));
  const std::uint32_t sbase = (raw + 1023) & ~1023u;
  std::uint8_t* base_ptr = smem_raw + (sbase - raw);
  const std::uint32_t sK = sbase, sV = sK + BN * D * 2;
  const std::uint32_t sQ0 = sV + BN * D * 2;  // Q[buf] = sQ0 + buf * BM * D * 2
  const std::uint32_t sO0 = sQ0 + 2 * BM * D * 2;
  const std::uint32_t sS = sO0 + 2 * BM * D * 2;  // dS^T: [BN][BM] sw128
  const int dq_off = (2 * BN * D + 4 * BM * D + BN * BM) * 2;
  float* f_dq = reinterpret_cast<float*>(base_ptr + dq_off);
  float* f_lse = reinterpret_cast<float*>(base_ptr + dq_off + BM * dq_row_bytes<D>());  // [2][BM]
  float* f_d = f_lse + 2 * BM;                                                          // [2][BM]
  constexpr int DQS = dq_row_bytes<D>() / 4;
  constexpr int KB = BN * 128;  // bytes of one 64-column region of a K tile

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int wg = warp / 4, g = lane / 4, t4 = lane % 4;
  const int G = gridDim.x;
  const schedule sched = static_cast<schedule>(P.sched);
  const std::int64_t stride = std::int64_t(P.L.row_step()) * D;

  for (int item = bwd_claim(P.counter, tid); item < P.items; item = bwd_claim(P.counter, tid)) {
    const bwd_item it = bwd_decode(P, item, G, sched);
    const int len = it.len, n = it.n, k0 = n * BN;
    const std::int64_t base = it.row0 * D;

    load_tile<BN, D, kBwdThreads, true>(sK, P.k + base + k0 * stride, stride, len - k0, tid);
    load_tile<BN, D, kBwdThreads, true>(sV, P.v + base + k0 * stride, stride, len - k0, tid);
    cp_commit();
    const int count = it.mt - bwd_m_min<CAUSAL>(n);
    auto prefetch = [&](int t, int buf) {
      const int q0 = bwd_visit<CAUSAL>(it, sched, t) * BM;
      load_tile<BM, D, kBwdThreads, true>(sQ0 + buf * BM * D * 2, P.q + base + q0 * stride, stride, len - q0, tid);
      load_tile<BM, D, kBwdThreads, true>(sO0 + buf * BM * D * 2, P.dout + base + q0 * stride, stride, len - q0, tid);
      bwd_load_rows(P, f_lse + buf * BM, f_d + buf * BM, it.lbase + q0, len - q0, tid);
    };
    prefetch(0, 0);
    cp_commit();

    float dk[D / 2], dv[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; ++i) dk[i] = dv[i] = 0.f;
    const int kv_row0 = k0 + wg * 64 + (warp % 4) * 16 + g;                  // and +8
    const std::uint32_t sKw = sK + wg * 64 * 128, sVw = sV + wg * 64 * 128;  // this warpgroup's rows
    dq_bulk_adder<D> adder{sbase + dq_off, it.sems, sched != schedule::atomic};

    for (int t = 0; t < count; ++t) {
      const int buf = t & 1;
      const std::uint32_t sQ = sQ0 + buf * BM * D * 2, sO = sO0 + buf * BM * D * 2;
      const int m = bwd_visit<CAUSAL>(it, sched, t), q0 = m * BM;
      cp_next_stage(t + 1 < count, [&] { prefetch(t + 1, buf ^ 1); });
      asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");  // cp.async data -> wgmma
      __syncthreads();

      // S^T = K Q^T and dP^T = V dO^T, K-major both (the head dim is the reduction), issued
      // together: the exponentials below overlap the second product.
      float s[32], dp[32];
      std::uint32_t a[1][4][4];  // P^T, then dS^T, as 16-bit pairs: the A operand of four k16 slices
      wgmma_fence();
      wgmma_rows_dot<BF16, D, BN, BM>(s, sKw, sQ);
      wgmma_commit();
      wgmma_rows_dot<BF16, D, BN, BM>(dp, sVw, sO);
      wgmma_commit();
      wgmma_wait<1>();
      const bool need_mask = (k0 + BN > len) || (q0 + BM > len) || (CAUSAL && k0 + BN - 1 > q0);
#pragma unroll
      for (int i = 0; i < 32; ++i) {
        const int qc = (i / 4) * 8 + t4 * 2 + (i & 1);
        float p = fast_exp2(s[i] * P.scale_log2 - f_lse[buf * BM + qc] * kLog2e);
        if (need_mask) {
          const int kr = kv_row0 + ((i & 2) ? 8 : 0);
          if (kr >= len || q0 + qc >= len || (CAUSAL && kr > q0 + qc)) p = 0.f;
        }
        s[i] = p;
      }
      // dV += P^T dO (dO N-major: Q rows are the reduction); dS^T overlaps it.
      pack_pairs<BF16>(a[0], s);
      wgmma_regs_times_rows<BF16, BM>(dv, a, sO);
      wgmma_commit();
      wgmma_wait<1>();  // dP^T
#pragma unroll
      for (int i = 0; i < 32; ++i) {
        const int qc = (i / 4) * 8 + t4 * 2 + (i & 1);
        dp[i] = s[i] * (dp[i] - f_d[buf * BM + qc]);
      }
      wgmma_wait<0>();  // dV: its A registers are reused below
      // dK += dS^T Q; meanwhile dS^T goes to shared memory for dQ.
      pack_pairs<BF16>(a[0], dp);
      wgmma_regs_times_rows<BF16, BM>(dk, a, sQ);
      wgmma_commit();
      {
        const int r = kv_row0 - k0;  // row within the tile; r + 8 has the same swizzle phase
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const std::uint32_t at = sS + sw128_chunk(r, i, BN) + t4 * 4;
          asm volatile("st.shared.b32 [%0], %1;" ::"r"(at), "r"(pack2<BF16>(dp[4 * i], dp[4 * i + 1])));
          asm volatile("st.shared.b32 [%0], %1;" ::"r"(at + 8 * 128), "r"(pack2<BF16>(dp[4 * i + 2], dp[4 * i + 3])));
        }
      }
      asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
      adder.finish(tid);  // barrier: both warpgroups' dS^T are in place (dK still runs)

      // Partial dQ = dS K, both operands MN-major (dS^T and K hold the KV reduction as rows):
      // warpgroup wg computes head-dim columns 64*wg..; at D = 64 warpgroup 0 does all of it.
      if (D == 128 || wg == 0) {
        float dq[32];
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < BN / 16; ++kk)
          wgmma_ss_n64<BF16, 1, 1>(dq, wgmma_desc(sS + kk * 16 * 128, KB, 1024),
                                   wgmma_desc(sK + wg * KB + kk * 16 * 128, KB, 1024), kk > 0);
        wgmma_commit();
        wgmma_wait<0>();  // dK and dQ
        const int qr = (warp % 4) * 16 + g;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const int c = wg * 64 + i * 8 + t4 * 2;
          *reinterpret_cast<float2*>(f_dq + qr * DQS + c) = make_float2(dq[4 * i], dq[4 * i + 1]);
          *reinterpret_cast<float2*>(f_dq + (qr + 8) * DQS + c) = make_float2(dq[4 * i + 2], dq[4 * i + 3]);
        }
      } else {
        wgmma_wait<0>();  // dK
      }
      adder.add(tid, m, bwd_rank<CAUSAL>(it, sched, m), P.dq_acc + base + std::int64_t(q0) * stride, stride, len - q0);
    }
    adder.finish(tid);
    bwd_store_dkdv<BF16, D>(P, base, stride, kv_row0, len, t4, dk, dv);
  }
#endif
}

}  // namespace
}  // namespace gfdit::attention
