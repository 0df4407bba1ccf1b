#pragma once
// The portable backward (mma.sync, sm_80+).
// Included only by attention_cuda.cu: the kernels stay one translation unit, so splitting them
// into files changes no generated code.
#include "kernels/attention/cuda/backward_common.cuh"

namespace gfdit::attention {
namespace {

template <bool BF16, int D, bool CAUSAL>
__global__ void __launch_bounds__(kBwdThreads, 1) bwd_kernel(bwd_params P) {
  constexpr int BM = kBwdM, BN = kBwdN;
  extern __shared__ __align__(128) std::uint8_t smem_raw[];
  const std::uint32_t sbase = static_cast<std::uint32_t>(__cvta_generic_to_shared(smem_raw));
  const std::uint32_t sK = sbase, sV = sK + BN * D * 2;
  const std::uint32_t sQ0 = sV + BN * D * 2;  // Q[buf] = sQ0 + buf * BM * D * 2
  const std::uint32_t sO0 = sQ0 + 2 * BM * D * 2;
  const std::uint32_t sS = sO0 + 2 * BM * D * 2;
  const int dq_off = (2 * BN * D + 4 * BM * D + BN * BM) * 2;
  [[maybe_unused]] const std::uint32_t sDQ = sbase + dq_off;
  [[maybe_unused]] float* f_dq = reinterpret_cast<float*>(smem_raw + dq_off);
  float* f_lse = reinterpret_cast<float*>(smem_raw + dq_off + BM * dq_row_bytes<D>());  // [2][BM]
  float* f_d = f_lse + 2 * BM;                                                          // [2][BM]
  constexpr int DQS = dq_row_bytes<D>() / 4;                                            // floats per staged dQ row

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int G = gridDim.x;
  const schedule sched = static_cast<schedule>(P.sched);
  const std::int64_t stride = std::int64_t(P.L.row_step()) * D;

  for (int item = bwd_claim(P.counter, tid); item < P.items; item = bwd_claim(P.counter, tid)) {
    const bwd_item it = bwd_decode(P, item, G, sched);
    const int len = it.len, mt = it.mt, n = it.n;
    const std::int64_t base = it.row0 * D, lbase = it.lbase;
    const int k0 = n * BN;
    int* sems = it.sems;

    load_tile<BN, D, kBwdThreads>(sK, P.k + base + k0 * stride, stride, len - k0, tid);
    load_tile<BN, D, kBwdThreads>(sV, P.v + base + k0 * stride, stride, len - k0, tid);
    cp_commit();

    const int count = mt - bwd_m_min<CAUSAL>(n);
    auto visit = [&](int t) { return bwd_visit<CAUSAL>(it, sched, t); };
    auto prefetch = [&](int t, int buf) {
      const int m = visit(t), q0 = m * BM;
      load_tile<BM, D, kBwdThreads>(sQ0 + buf * BM * D * 2, P.q + base + q0 * stride, stride, len - q0, tid);
      load_tile<BM, D, kBwdThreads>(sO0 + buf * BM * D * 2, P.dout + base + q0 * stride, stride, len - q0, tid);
      bwd_load_rows(P, f_lse + buf * BM, f_d + buf * BM, lbase + q0, len - q0, tid);
    };
    prefetch(0, 0);
    cp_commit();

    float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
    for (int i = 0; i < D / 8; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e) dk[i][e] = dv[i][e] = 0.f;

    const int kv_row0 = k0 + warp * 16 + lane / 4;  // and +8
    // Per-lane swizzled offsets of the ldmatrix patterns (see swz_at).
    const std::uint32_t offA = swz<D>(warp * 16 + (lane & 15), (lane >> 4) * 8);             // K, V as A
    const std::uint32_t offB = swz<D>((lane & 7) + (lane >> 4) * 8, ((lane >> 3) & 1) * 8);  // Q, dO as B
    const std::uint32_t offT = swz<D>((lane & 7) + ((lane >> 3) & 1) * 8, (lane >> 4) * 8);  // dO, Q as B^T
    const std::uint32_t offKT = swz<D>((lane & 7) + ((lane >> 3) & 1) * 8,
                                       (warp / 4) * (D / 2) + (lane >> 4) * 8);  // K as B^T (dQ)
    const std::uint32_t offST = swz<BM>((lane & 7) + (lane >> 4) * 8,
                                        (warp % 4) * 16 + ((lane >> 3) & 1) * 8);  // dS as A^T
    const std::uint32_t offSW = swz<BM>(warp * 16 + (lane >> 2), (lane & 3) * 2);  // dS^T stores
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    dq_bulk_adder<D> adder{sDQ, sems, sched != schedule::atomic};
#endif

    for (int t = 0; t < count; ++t) {
      const int buf = t & 1;
      const std::uint32_t sQ = sQ0 + buf * BM * D * 2, sO = sO0 + buf * BM * D * 2;
      const int m = visit(t), q0 = m * BM;
      cp_next_stage(t + 1 < count, [&] { prefetch(t + 1, buf ^ 1); });
      __syncthreads();

      // In sequence, to bound live registers: S^T = K Q^T -> P^T -> dV += P^T dO, then
      // dP^T = V dO^T -> dS^T -> dK += dS^T Q (dS is scaled by `scale` at the end, on dK and dQ).
      float s[BM / 8][4], dp[BM / 8][4];
#pragma unroll
      for (int i = 0; i < BM / 8; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[i][e] = 0.f;
      {
        const std::uint32_t oa = opaque_u(offA), ob_ = opaque_u(offB);
#pragma unroll 2
        for (int kk = 0; kk < D / 16; ++kk) {
          std::uint32_t ka[4];
          ldsm_x4(ka, swz_at<D>(sK, oa, 0, 2 * kk));
          mma_row_times_blocks<BF16, false, BM / 16>(s, ka,
                                                     [&](int jj) { return swz_at<D>(sQ, ob_, jj * 16, 2 * kk); });
        }
      }
      const bool need_mask = (k0 + BN > len) || (q0 + BM > len) || (CAUSAL && k0 + BN - 1 > q0);
#pragma unroll
      for (int i = 0; i < BM / 8; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int qc = i * 8 + (lane % 4) * 2 + (e & 1);
          float p = fast_exp2(s[i][e] * P.scale_log2 - f_lse[buf * BM + qc] * kLog2e);
          if (need_mask) {
            const int kr = kv_row0 + (e >= 2 ? 8 : 0);
            if (kr >= len || q0 + qc >= len || (CAUSAL && kr > q0 + qc)) p = 0.f;
          }
          s[i][e] = p;
        }
      {
        const std::uint32_t ot = opaque_u(offT);
#pragma unroll
        for (int kk = 0; kk < BM / 16; ++kk) {
          std::uint32_t pa[4] = {pack2<BF16>(s[2 * kk][0], s[2 * kk][1]), pack2<BF16>(s[2 * kk][2], s[2 * kk][3]),
                                 pack2<BF16>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                 pack2<BF16>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
          mma_row_times_blocks<BF16, true, D / 16>(dv, pa, [&](int jj) { return swz_at<D>(sO, ot, kk * 16, 2 * jj); });
        }
      }
      {
        const std::uint32_t oa = opaque_u(offA), ob_ = opaque_u(offB);
#pragma unroll
        for (int i = 0; i < BM / 8; ++i)
#pragma unroll
          for (int e = 0; e < 4; ++e) dp[i][e] = 0.f;
#pragma unroll 2
        for (int kk = 0; kk < D / 16; ++kk) {
          std::uint32_t va[4];
          ldsm_x4(va, swz_at<D>(sV, oa, 0, 2 * kk));
          mma_row_times_blocks<BF16, false, BM / 16>(dp, va,
                                                     [&](int jj) { return swz_at<D>(sO, ob_, jj * 16, 2 * kk); });
        }
      }
#pragma unroll
      for (int i = 0; i < BM / 8; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int qc = i * 8 + (lane % 4) * 2 + (e & 1);
          dp[i][e] = s[i][e] * (dp[i][e] - f_d[buf * BM + qc]);
        }
      {
        const std::uint32_t ot = opaque_u(offT), osw = opaque_u(offSW);
#pragma unroll
        for (int kk = 0; kk < BM / 16; ++kk) {
          std::uint32_t da[4] = {pack2<BF16>(dp[2 * kk][0], dp[2 * kk][1]), pack2<BF16>(dp[2 * kk][2], dp[2 * kk][3]),
                                 pack2<BF16>(dp[2 * kk + 1][0], dp[2 * kk + 1][1]),
                                 pack2<BF16>(dp[2 * kk + 1][2], dp[2 * kk + 1][3])};
          asm volatile("st.shared.b32 [%0], %1;" ::"r"(swz_at<BM>(sS, osw, 0, 2 * kk)), "r"(da[0]));
          asm volatile("st.shared.b32 [%0], %1;" ::"r"(swz_at<BM>(sS, osw, 8, 2 * kk)), "r"(da[1]));
          asm volatile("st.shared.b32 [%0], %1;" ::"r"(swz_at<BM>(sS, osw, 0, 2 * kk + 1)), "r"(da[2]));
          asm volatile("st.shared.b32 [%0], %1;" ::"r"(swz_at<BM>(sS, osw, 8, 2 * kk + 1)), "r"(da[3]));
          mma_row_times_blocks<BF16, true, D / 16>(dk, da, [&](int jj) { return swz_at<D>(sQ, ot, kk * 16, 2 * jj); });
        }
      }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
      adder.finish(tid);
#else
      __syncthreads();
#endif

      // Partial dQ = dS K: warp w owns Q rows 16*(w%4).. and head-dim half w/4.
      constexpr int DH = D / 2;
      const int qrow = (warp % 4) * 16, dcol = (warp / 4) * DH;
      float dq[DH / 8][4];
#pragma unroll
      for (int i = 0; i < DH / 8; ++i) dq[i][0] = dq[i][1] = dq[i][2] = dq[i][3] = 0.f;
      {
        const std::uint32_t ost = opaque_u(offST), okt = opaque_u(offKT);
#pragma unroll
        for (int kk = 0; kk < BN / 16; ++kk) {
          std::uint32_t a[4];
          ldsm_x4_t(a, swz_at<BM>(sS, ost, kk * 16, 0));
          mma_row_times_blocks<BF16, true, DH / 16>(dq, a, [&](int jj) { return swz_at<D>(sK, okt, kk * 16, 2 * jj); });
        }
      }

      [[maybe_unused]] const bool det = sched != schedule::atomic;
      const int rank = bwd_rank<CAUSAL>(it, sched, m);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
      // Hopper: stage the partial in shared memory and add it with one bulk reduce per row
      // (the L2 does the add; no read round trip).
#pragma unroll
      for (int i = 0; i < DH / 8; ++i) {
        const int c = dcol + i * 8 + (lane % 4) * 2, r = qrow + lane / 4;
        *reinterpret_cast<float2*>(f_dq + r * DQS + c) = make_float2(dq[i][0], dq[i][1]);
        *reinterpret_cast<float2*>(f_dq + (r + 8) * DQS + c) = make_float2(dq[i][2], dq[i][3]);
      }
      adder.add(tid, m, rank, P.dq_acc + base + std::int64_t(q0) * stride, stride, len - q0);
#else
      {
        const int qr0 = q0 + qrow + lane / 4;
        float* acc0 = P.dq_acc + base + std::int64_t(qr0) * stride + dcol + (lane % 4) * 2;
        const bool ok0 = qr0 < len, ok1 = qr0 + 8 < len;
        if (!det) {
#pragma unroll
          for (int i = 0; i < DH / 8; ++i) {
            if (ok0) {
              atomicAdd(acc0 + i * 8, dq[i][0]);
              atomicAdd(acc0 + i * 8 + 1, dq[i][1]);
            }
            if (ok1) {
              atomicAdd(acc0 + 8 * stride + i * 8, dq[i][2]);
              atomicAdd(acc0 + 8 * stride + i * 8 + 1, dq[i][3]);
            }
          }
        } else {
          if (tid == 0)
            while (ld_acquire(sems + m) != rank) {
            }
          __syncthreads();
#pragma unroll
          for (int i = 0; i < DH / 8; ++i) {
            if (ok0) {
              float2 x = __ldcg(reinterpret_cast<const float2*>(acc0 + i * 8));
              x.x += dq[i][0];
              x.y += dq[i][1];
              __stcg(reinterpret_cast<float2*>(acc0 + i * 8), x);
            }
            if (ok1) {
              float2 x = __ldcg(reinterpret_cast<const float2*>(acc0 + 8 * stride + i * 8));
              x.x += dq[i][2];
              x.y += dq[i][3];
              __stcg(reinterpret_cast<float2*>(acc0 + 8 * stride + i * 8), x);
            }
          }
          // Every thread's stores are visible device-wide before the release (issue #2244).
          __threadfence();
          __syncthreads();
          if (tid == 0) red_release_add(sems + m, 1);
        }
      }
#endif
    }

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    adder.finish(tid);
#endif
    bwd_store_dkdv<BF16, D>(P, base, stride, kv_row0, len, lane % 4, &dk[0][0], &dv[0][0]);
  }
}

}  // namespace
}  // namespace gfdit::attention
