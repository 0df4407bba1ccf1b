// CUDA backend: portable tensor-core kernels (mma.sync m16n8k16, sm_80+).
//
// Forward: one block per (Q tile, head, sequence), keys in ascending order, no split-KV, so a
// head's bits never depend on batch or head count.
// Backward: a persistent grid (one block per SM, count read from the device); blocks claim KV
// tiles in order from a global counter and visit the Q tiles in their schedule's order. A
// partial dQ tile is added into an fp32 accumulator when the tile's semaphore equals the block's
// rank, a fixed bijection; the add is complete in global memory and fenced before the semaphore
// is released. On sm_90 the add is a bulk reduce (cp.reduce.async.bulk) from shared memory; the
// portable path (compute_80 PTX) adds from registers.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/gpu_check.hpp"
#include "kernels/attention/attention.hpp"
#include "kernels/attention/dash_schedule.hpp"
#include "kernels/attention/wgmma.cuh"


namespace gfdit::attention {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// ---- device helpers ------------------------------------------------------------------------
struct seq_layout {
  int heads;
  int seqlen;  // padded length (unused when varlen)
  int varlen;
  const std::int32_t* cu;  // device, varlen only
  std::int64_t total;

  __device__ int len(int b) const { return varlen ? cu[b + 1] - cu[b] : seqlen; }
  // Element offset of row (b, h, s=0) and the stride between rows, in units of head_dim.
  __device__ std::int64_t row0(int b, int h) const {
    return varlen ? std::int64_t(cu[b]) * heads + h : (std::int64_t(b) * heads + h) * seqlen;
  }
  __device__ int row_step() const { return varlen ? heads : 1; }
  __device__ std::int64_t lse0(int b, int h) const {
    return varlen ? std::int64_t(h) * total + cu[b] : (std::int64_t(b) * heads + h) * seqlen;
  }
};

template <bool BF16>
__device__ __forceinline__ std::uint32_t pack2(float lo, float hi) {
  if constexpr (BF16) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<std::uint32_t*>(&v);
  } else {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<std::uint32_t*>(&v);
  }
}

template <bool BF16>
__device__ __forceinline__ float2 unpack2(std::uint32_t u) {
  if constexpr (BF16) {
    return __bfloat1622float2(*reinterpret_cast<__nv_bfloat162*>(&u));
  } else {
    return __half22float2(*reinterpret_cast<__half2*>(&u));
  }
}

template <bool BF16>
__device__ __forceinline__ void mma(float (&c)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                    std::uint32_t b1) {
  if constexpr (BF16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

__device__ __forceinline__ void ldsm_x4(std::uint32_t (&r)[4], std::uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t(std::uint32_t (&r)[4], std::uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

__device__ __forceinline__ void cp_async16(std::uint32_t dst, const void* src, bool valid) {
  int n = valid ? 16 : 0;  // 0: zero-fill (rows past the sequence end)
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n));
}
__device__ __forceinline__ void cp_async4(std::uint32_t dst, const void* src, bool valid) {
  int n = valid ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(n));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
// Two-stage pipeline step: issue the next stage's copies (when there is one) as their own group,
// then wait for everything but that group, i.e. for the current stage.
template <class Issue>
__device__ __forceinline__ void cp_next_stage(bool more, Issue&& issue) {
  if (more) {
    issue();
    cp_commit();
    cp_wait<1>();
  } else {
    cp_wait<0>();
  }
}

__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ int ld_acquire(const int* p) {
  int v;
  asm volatile("ld.acquire.gpu.global.s32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ void red_release_add(int* p, int v) {
  asm volatile("red.release.gpu.global.add.s32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

// Swizzled shared tile of `COLS` 16-bit elements per row: the 16-byte chunk index is XORed with
// the row, so ldmatrix's eight row addresses hit eight different bank groups.
template <int COLS>
__device__ __forceinline__ std::uint32_t swz(int row, int col) {
  return std::uint32_t(row * COLS + ((((col >> 3) ^ row) & 7) | ((col >> 3) & ~7)) * 8 + (col & 7)) *
         2u;
}

// Address of swizzled element (base row + R, base chunk + C) from the lane's precomputed offset
// `off` = swz<COLS>(base row, base chunk * 8): valid when R is a multiple of 8 (the row's phase
// is unchanged) and C's low three bits are disjoint from the base chunk's, so the swizzle is one
// XOR into bits 4..6. Keeps ldmatrix addressing at two integer ops.
template <int COLS>
__device__ __forceinline__ std::uint32_t swz_at(std::uint32_t tile, std::uint32_t off, int R, int C) {
  return tile + (off ^ std::uint32_t((C & 7) << 4)) + std::uint32_t(((C & ~7) << 4) + R * COLS * 2);
}
// A value the compiler cannot hoist out of the enclosing loop: keeps the per-access addresses
// derived from it from being precomputed for every unrolled access (which spilled registers).
__device__ __forceinline__ std::uint32_t opaque_u(std::uint32_t x) {
  asm volatile("mov.b32 %0, %0;" : "+r"(x));
  return x;
}

// Copies ROWS rows of D elements (rows >= valid are zero-filled) into a swizzled tile: the
// ldmatrix layout (swz) or, with SW128, the tensor cores' 128-byte-swizzled one (wgmma.cuh).
// Each thread keeps one 16-byte chunk column and walks rows STEP apart; STEP is a multiple of 8,
// so the swizzle phase is the same on every row it visits and the shared address just advances.
// (A loop over flat chunk indices compiled to a rolled loop with the whole address computation
// per chunk, which cost the wgmma forward more issue slots than its softmax.)
template <int ROWS, int D, int THREADS, bool SW128 = false>
__device__ __forceinline__ void load_tile(std::uint32_t smem, const std::uint16_t* g,
                                          std::int64_t row_stride, int valid, int tid) {
  constexpr int CH = D / 8, STEP = THREADS / CH;
  static_assert(THREADS % CH == 0 && STEP % 8 == 0 && ROWS % STEP == 0, "tile not evenly covered");
  constexpr std::uint32_t ROW_BYTES = SW128 ? 128 : D * 2;  // between rows of one chunk column
  const int c = tid % CH, r0 = tid / CH;
  const std::uint32_t dst = smem + (SW128 ? sw128_chunk(r0, c, ROWS) : swz<D>(r0, c * 8));
  const std::uint16_t* src = g + r0 * row_stride + c * 8;
#pragma unroll
  for (int j = 0; j < ROWS / STEP; ++j) {
    const bool ok = r0 + j * STEP < valid;
    cp_async16(dst + j * STEP * ROW_BYTES, ok ? src : g, ok);
    src += STEP * row_stride;
  }
}

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
               const std::uint16_t* __restrict__ v, std::uint16_t* __restrict__ o,
               float* __restrict__ lse, float scale_log2, int pair0) {
  using C = fwd_cfg<D, RW_>;
  constexpr int BM = C::bm, BN = C::bn, RW = C::rw;
  extern __shared__ __align__(128) std::uint8_t smem_raw[];
  const std::uint32_t sbase = static_cast<std::uint32_t>(__cvta_generic_to_shared(smem_raw));
  const std::uint32_t sQ = sbase;
  const std::uint32_t sK0 = sQ + BM * D * 2;          // K[buf] = sK0 + buf * BN * D * 2
  const std::uint32_t sV0 = sK0 + 2 * BN * D * 2;     // V[buf] likewise

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
  const std::uint32_t offQ = swz<D>(wrow + (lane & 15), (lane >> 4) * 8);             // A, +r*16 rows
  const std::uint32_t offK = swz<D>((lane & 7) + (lane >> 4) * 8, ((lane >> 3) & 1) * 8);  // B
  const std::uint32_t offV = swz<D>((lane & 7) + ((lane >> 3) & 1) * 8, (lane >> 4) * 8);  // B^T

  for (int n = 0; n < n_tiles; ++n) {
    const int buf = n & 1;
    const std::uint32_t sK = sK0 + buf * BN * D * 2, sV = sV0 + buf * BN * D * 2;
    cp_next_stage(n + 1 < n_tiles, [&] {
      load_tile<BN, D, C::threads>(sK0 + (buf ^ 1) * BN * D * 2, gk + (n + 1) * BN * stride, stride,
                                   len - (n + 1) * BN, tid);
      load_tile<BN, D, C::threads>(sV0 + (buf ^ 1) * BN * D * 2, gv + (n + 1) * BN * stride, stride,
                                   len - (n + 1) * BN, tid);
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
#pragma unroll
        for (int j = 0; j < BN / 16; ++j) {
          std::uint32_t kb[4];
          ldsm_x4(kb, swz_at<D>(sK, ok, j * 16, 2 * kk));
#pragma unroll
          for (int r = 0; r < RW; ++r) {
            mma<BF16>(s[r][2 * j], qa[r], kb[0], kb[1]);
            mma<BF16>(s[r][2 * j + 1], qa[r], kb[2], kb[3]);
          }
        }
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
#pragma unroll
        for (int j = 0; j < D / 16; ++j) {
          std::uint32_t vb[4];
          ldsm_x4_t(vb, swz_at<D>(sV, ov, kk * 16, 2 * j));
#pragma unroll
          for (int r = 0; r < RW; ++r) {
            mma<BF16>(acc[r][2 * j], a[r], vb[0], vb[1]);
            mma<BF16>(acc[r][2 * j + 1], a[r], vb[2], vb[3]);
          }
        }
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

// ---- backward ------------------------------------------------------------------------------
// Q tiles of 64 rows, KV tiles of 128 rows (8 warps x 16 rows): each dQ tile add amortises over
// twice the work of square 64 tiles. The schedules themselves are in dash_schedule.hpp.
using dash::bwd_batch;
using dash::bwd_m_min;
using dash::bwd_rank;
using dash::bwd_slot;
using dash::bwd_visit;
using dash::kBwdM;
using dash::kBwdN;
constexpr int kBwdThreads = 256;

template <int D>
constexpr int dq_row_bytes() {
  return D * 4 + 32;  // padded rows: fragment stores from 4 rows of a half-warp hit distinct banks
}

template <int D>
constexpr int bwd_smem() {
  // K, V (kBwdN rows), 2x Q, 2x dO (kBwdM rows), dS^T [kBwdN][kBwdM], dQ staging, 2x (lse, D)
  return (2 * kBwdN * D + 4 * kBwdM * D + kBwdN * kBwdM) * 2 + kBwdM * dq_row_bytes<D>() +
         4 * kBwdM * 4;
}

struct bwd_params {
  seq_layout L;
  const std::uint16_t *q, *k, *v, *dout;
  const float* lse;
  const float* dvec;
  float* dq_acc;
  std::uint16_t *dk, *dv;
  int* sems;
  int* counter;  // next unclaimed item
  const bwd_batch* batches;
  int batch;
  int items;
  float scale;
  float scale_log2;
  int sched;
};

// A backward item (dash::bwd_slot) and where its head's rows, lse and semaphores are.
struct bwd_item : bwd_slot {
  std::int64_t row0, lbase;
  int* sems;  // the head's Q-tile semaphores
};

__device__ __forceinline__ bwd_item bwd_decode(const bwd_params& P, int item, int G, schedule sched) {
  bwd_item it;
  static_cast<bwd_slot&>(it) = dash::bwd_locate(P.batches, P.batch, item, G, sched);
  it.row0 = P.L.row0(it.b, it.h);
  it.lbase = P.L.lse0(it.b, it.h);
  it.sems = P.sems + P.batches[it.b].sem_start + it.h * it.mt;
  return it;
}

// Items (KV tiles, head-major) are claimed in increasing order from a global counter when a
// block is free, so a block that drew a short item takes the next one at once (a static
// round-robin left whole chains waiting behind one long item). Ranks never depend on which
// block runs an item; every wait points at a lower item, claimed and running: no deadlock.
// (Claiming the next item early, before the current one ends, stalled such chains.) The leading
// barrier keeps the block's shared tiles until every thread is done with the previous item.
__device__ __forceinline__ int bwd_claim(int* counter, int tid) {
  __shared__ int next;
  __syncthreads();
  if (tid == 0) next = atomicAdd(counter, 1);
  __syncthreads();
  return next;
}

// LSE and D of a Q tile's rows, asynchronously (a plain load would stall two warps for its
// latency); rows past the end read as zero and are masked out of P.
__device__ __forceinline__ void bwd_load_rows(const bwd_params& P, float* lse, float* dvec,
                                              std::int64_t first, int valid, int tid) {
  if (tid < 2 * kBwdM) {
    const int r = tid % kBwdM;
    const bool ok = r < valid;
    const float* src = tid < kBwdM ? P.lse : P.dvec;
    float* dst = tid < kBwdM ? lse : dvec;
    cp_async4(static_cast<std::uint32_t>(__cvta_generic_to_shared(dst + r)), ok ? src + first + r : src, ok);
  }
}

// dK (scaled) and dV out of accumulator fragments: rows kv_row0 and kv_row0 + 8, for each group
// of 8 columns i the pair (4i + 2r, 4i + 2r + 1) of row r.
template <bool BF16, int D>
__device__ __forceinline__ void bwd_store_dkdv(const bwd_params& P, std::int64_t base, std::int64_t stride,
                                               int kv_row0, int len, int t4, const float* dk, const float* dv) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int kr = kv_row0 + r * 8;
    if (kr < len) {
      std::uint16_t* gk = P.dk + base + std::int64_t(kr) * stride + t4 * 2;
      std::uint16_t* gv = P.dv + base + std::int64_t(kr) * stride + t4 * 2;
#pragma unroll
      for (int i = 0; i < D / 8; ++i) {
        *reinterpret_cast<std::uint32_t*>(gk + i * 8) =
            pack2<BF16>(dk[4 * i + 2 * r] * P.scale, dk[4 * i + 2 * r + 1] * P.scale);
        *reinterpret_cast<std::uint32_t*>(gv + i * 8) = pack2<BF16>(dv[4 * i + 2 * r], dv[4 * i + 2 * r + 1]);
      }
    }
  }
}

// Preprocess: D = rowsum(dO * O) per row, one warp per row.
template <bool BF16, int D>
__global__ void bwd_pre_kernel(seq_layout L, std::int64_t rows, const std::uint16_t* __restrict__ o,
                               const std::uint16_t* __restrict__ dout, float* __restrict__ dvec) {
  const std::int64_t r = (std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  float s = 0.f;
#pragma unroll
  for (int c = lane * 2; c < D; c += 64) {
    float2 a = unpack2<BF16>(*reinterpret_cast<const std::uint32_t*>(o + r * D + c));
    float2 g = unpack2<BF16>(*reinterpret_cast<const std::uint32_t*>(dout + r * D + c));
    s += a.x * g.x + a.y * g.y;
  }
#pragma unroll
  for (int m = 16; m; m >>= 1) s += __shfl_xor_sync(0xffffffffu, s, m);
  if (lane == 0) {
    // Q-like rows are [b,h,s] (padded) or [token,h] (varlen); D is laid out like LSE.
    std::int64_t idx = L.varlen ? (r % L.heads) * L.total + r / L.heads : r;
    dvec[idx] = s;
  }
}

template <bool BF16>
__global__ void bwd_post_kernel(std::int64_t n, const float* __restrict__ acc, float scale,
                                std::uint16_t* __restrict__ dq) {
  std::int64_t i = (std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * 2;
  if (i >= n) return;
  float2 a = *reinterpret_cast<const float2*>(acc + i);
  *reinterpret_cast<std::uint32_t*>(dq + i) = pack2<BF16>(a.x * scale, a.y * scale);
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900  // bulk copies exist from sm_90
__device__ __forceinline__ void bulk_reduce_add_f32(float* gdst, std::uint32_t ssrc, int bytes) {
  asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n" ::"l"(gdst),
               "r"(ssrc), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
// Full completion: the writes to global memory are done, not only the shared-memory reads.
__device__ __forceinline__ void bulk_wait_all() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }

// The Hopper dQ add: a block stages its partial dQ tile in shared memory (rows of
// dq_row_bytes<D>) and adds it with one bulk reduce per row once Q tile m's semaphore equals
// its rank (the L2 does the add; no read round trip). The release waits for the add to complete
// in global memory (not only for its shared-memory read: FlashAttention issue #2244) and is
// deferred to the next step's barrier, so the reduce latency overlaps that step's matrix work.
template <int D>
struct dq_bulk_adder {
  std::uint32_t staged;  // shared address of the staged tile
  int* sems;
  bool det;              // false: atomic, no waits
  int pending = -1;      // the Q tile whose add was issued and not yet released

  // Completes and releases the pending add. Includes a block-wide barrier.
  __device__ void finish(int tid) {
    if (pending >= 0 && tid < kBwdM) {
      bulk_wait_all();
      asm volatile("fence.proxy.async.global;\n" ::: "memory");
      __threadfence();
    }
    __syncthreads();
    if (pending >= 0 && tid == 0 && det) red_release_add(sems + pending, 1);
    pending = -1;
  }
  // Adds the staged tile into `rows` valid rows from `dst` once tile m's turn is `rank`.
  __device__ void add(int tid, int m, int rank, float* dst, std::int64_t stride, int rows) {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    if (det && tid == 0)
      while (ld_acquire(sems + m) != rank) {
      }
    __syncthreads();
    if (tid < kBwdM && tid < rows) {
      bulk_reduce_add_f32(dst + std::int64_t(tid) * stride, staged + tid * dq_row_bytes<D>(), D * 4);
      bulk_commit();
    }
    pending = m;
  }
};
#endif

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
  constexpr int DQS = dq_row_bytes<D>() / 4;  // floats per staged dQ row

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
      load_tile<BM, D, kBwdThreads>(sQ0 + buf * BM * D * 2, P.q + base + q0 * stride, stride,
                                    len - q0, tid);
      load_tile<BM, D, kBwdThreads>(sO0 + buf * BM * D * 2, P.dout + base + q0 * stride, stride,
                                    len - q0, tid);
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
    const std::uint32_t offA = swz<D>(warp * 16 + (lane & 15), (lane >> 4) * 8);              // K, V as A
    const std::uint32_t offB = swz<D>((lane & 7) + (lane >> 4) * 8, ((lane >> 3) & 1) * 8);   // Q, dO as B
    const std::uint32_t offT = swz<D>((lane & 7) + ((lane >> 3) & 1) * 8, (lane >> 4) * 8);   // dO, Q as B^T
    const std::uint32_t offKT = swz<D>((lane & 7) + ((lane >> 3) & 1) * 8,
                                       (warp / 4) * (D / 2) + (lane >> 4) * 8);           // K as B^T (dQ)
    const std::uint32_t offST = swz<BM>((lane & 7) + (lane >> 4) * 8,
                                        (warp % 4) * 16 + ((lane >> 3) & 1) * 8);         // dS as A^T
    const std::uint32_t offSW = swz<BM>(warp * 16 + (lane >> 2), (lane & 3) * 2);        // dS^T stores
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
#pragma unroll
        for (int jj = 0; jj < BM / 16; ++jj) {
          std::uint32_t qb[4];
          ldsm_x4(qb, swz_at<D>(sQ, ob_, jj * 16, 2 * kk));
          mma<BF16>(s[2 * jj], ka, qb[0], qb[1]);
          mma<BF16>(s[2 * jj + 1], ka, qb[2], qb[3]);
        }
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
        std::uint32_t pa[4] = {pack2<BF16>(s[2 * kk][0], s[2 * kk][1]),
                               pack2<BF16>(s[2 * kk][2], s[2 * kk][3]),
                               pack2<BF16>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                               pack2<BF16>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
        for (int jj = 0; jj < D / 16; ++jj) {
          std::uint32_t ob[4];
          ldsm_x4_t(ob, swz_at<D>(sO, ot, kk * 16, 2 * jj));
          mma<BF16>(dv[2 * jj], pa, ob[0], ob[1]);
          mma<BF16>(dv[2 * jj + 1], pa, ob[2], ob[3]);
        }
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
#pragma unroll
        for (int jj = 0; jj < BM / 16; ++jj) {
          std::uint32_t ob[4];
          ldsm_x4(ob, swz_at<D>(sO, ob_, jj * 16, 2 * kk));
          mma<BF16>(dp[2 * jj], va, ob[0], ob[1]);
          mma<BF16>(dp[2 * jj + 1], va, ob[2], ob[3]);
        }
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
        std::uint32_t da[4] = {pack2<BF16>(dp[2 * kk][0], dp[2 * kk][1]),
                               pack2<BF16>(dp[2 * kk][2], dp[2 * kk][3]),
                               pack2<BF16>(dp[2 * kk + 1][0], dp[2 * kk + 1][1]),
                               pack2<BF16>(dp[2 * kk + 1][2], dp[2 * kk + 1][3])};
        asm volatile("st.shared.b32 [%0], %1;" ::"r"(swz_at<BM>(sS, osw, 0, 2 * kk)), "r"(da[0]));
        asm volatile("st.shared.b32 [%0], %1;" ::"r"(swz_at<BM>(sS, osw, 8, 2 * kk)), "r"(da[1]));
        asm volatile("st.shared.b32 [%0], %1;" ::"r"(swz_at<BM>(sS, osw, 0, 2 * kk + 1)), "r"(da[2]));
        asm volatile("st.shared.b32 [%0], %1;" ::"r"(swz_at<BM>(sS, osw, 8, 2 * kk + 1)), "r"(da[3]));
#pragma unroll
        for (int jj = 0; jj < D / 16; ++jj) {
          std::uint32_t qb[4];
          ldsm_x4_t(qb, swz_at<D>(sQ, ot, kk * 16, 2 * jj));
          mma<BF16>(dk[2 * jj], da, qb[0], qb[1]);
          mma<BF16>(dk[2 * jj + 1], da, qb[2], qb[3]);
        }
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
#pragma unroll
        for (int jj = 0; jj < DH / 16; ++jj) {
          std::uint32_t kb[4];
          ldsm_x4_t(kb, swz_at<D>(sK, okt, kk * 16, 2 * jj));
          mma<BF16>(dq[2 * jj], a, kb[0], kb[1]);
          mma<BF16>(dq[2 * jj + 1], a, kb[2], kb[3]);
        }
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
    if constexpr (N == 32) wgmma_ss_n64<BF16, 0, 0>(acc, da, db, kk > 0);
    else wgmma_ss_n128<BF16, 0, 0>(acc, da, db, kk > 0);
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
      if constexpr (N == 64) wgmma_rs_n128<BF16>(acc, a[kb][kk], db);
      else wgmma_rs_n64<BF16>(acc, a[kb][kk], db);
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
    const int kv_row0 = k0 + wg * 64 + (warp % 4) * 16 + g;  // and +8
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
      adder.add(tid, m, bwd_rank<CAUSAL>(it, sched, m), P.dq_acc + base + std::int64_t(q0) * stride, stride,
                len - q0);
    }
    adder.finish(tid);
    bwd_store_dkdv<BF16, D>(P, base, stride, kv_row0, len, t4, dk, dv);
  }
#endif
}

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
constexpr int fwd90_threads() { return 128 * WGS; }
// One-warpgroup blocks keep a single K tile (K_{n+1} is loaded once S_n has read K_n), so two
// of them fit on an SM and each one's softmax runs under the other's products.
template <int WGS>
constexpr int fwd90_k_tiles() { return WGS == 1 ? 1 : 2; }
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
  for (int hh = 0; hh < 2; ++hh) {  // rows g and g + 8
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
                 const std::uint16_t* __restrict__ v, std::uint16_t* __restrict__ o,
                 float* __restrict__ lse, float scale_log2, int tiles, std::int64_t item0) {
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
  auto load_k = [&](int n) { load_tile<BN, D, T, true>(sK0 + (n % KT) * TILE, gk + n * BN * stride, stride, len - n * BN, tid); };
  auto load_v = [&](int n) { load_tile<BN, D, T, true>(sV0 + (n & 1) * TILE, gv + n * BN * stride, stride, len - n * BN, tid); };

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
    if (n == 0) cp_wait<1>();  // Q, K_0
    else cp_wait<0>();         // K_n, V_{n-1}
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

// ---- host side -----------------------------------------------------------------------------
seq_layout make_layout(const problem& p, const std::int32_t* cu_dev) {
  return seq_layout{p.heads, p.seqlen, p.varlen() ? 1 : 0, cu_dev, p.total_tokens()};
}

int max_len(const problem& p) {
  int m = 0;
  for (int b = 0; b < p.batch; ++b) m = std::max(m, p.seq_len(b));
  return m;
}

// 128-row query tiles per (batch, head) pair of the Hopper forward: its work items per pair.
int fwd90_tiles(const problem& p) { return (max_len(p) + kFwd90M - 1) / kFwd90M; }

// The (batch, head) pairs a forward call computes.
struct pair_range {
  int begin, end;
};
pair_range pairs_of(const problem& p, const forward_args& a) {
  return {a.pair_begin, a.pair_end < 0 ? p.batch * p.heads : a.pair_end};
}

template <bool BF16, int D, bool CAUSAL, int RW>
result<void> launch_forward_rw(const problem& p, const forward_args& a, cudaStream_t st) {
  using C = fwd_cfg<D, RW>;
  auto kern = fwd_kernel<BF16, D, CAUSAL, RW>;
  GFDIT_CUDA(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, C::smem));
  const auto [first, last] = pairs_of(p, a);
  for (int p0 = first; p0 < last; p0 += 65535) {  // grid.y's limit
    dim3 grid((max_len(p) + C::bm - 1) / C::bm, std::min(last - p0, 65535));
    kern<<<grid, C::threads, C::smem, st>>>(
        make_layout(p, a.cu_seqlens), static_cast<const std::uint16_t*>(a.q),
        static_cast<const std::uint16_t*>(a.k), static_cast<const std::uint16_t*>(a.v),
        static_cast<std::uint16_t*>(a.o), a.lse, p.softmax_scale() * kLog2e, p0);
    GFDIT_CUDA(cudaGetLastError());
  }
  return {};
}

// Query rows per warp = 16 * RW. GFDIT_ATTN_FWD_RW=1|2 overrides the default (a tuning knob for
// the benchmark; both variants are exact and deterministic).
int forward_rows_per_warp(int head_dim) {
  static const int env = [] {
    const char* e = std::getenv("GFDIT_ATTN_FWD_RW");
    return e ? std::atoi(e) : 0;
  }();
  if (env == 1 || env == 2) return env;
  return 2;  // measured faster than 1 for both head dims on H100 (see README)
}

// The wgmma kernels run where their sm_90a code was loaded (an H100/H200 running the cubin, not
// compute_80 PTX compiled at load time). GFDIT_ATTN_KERNEL=mma forces the portable kernels.
// Callers keep the answer per kernel (it cannot change in a process): launches are a hot path.
bool use_wgmma(const void* kernel) {
  const char* e = std::getenv("GFDIT_ATTN_KERNEL");
  if (e && std::string(e) == "mma") return false;
  cudaFuncAttributes fa{};
  return cudaFuncGetAttributes(&fa, kernel) == cudaSuccess && fa.ptxVersion >= 90;
}

// Blocks of `kernel` resident at once on the current device (its SMs x blocks per SM).
int resident_blocks(const void* kernel, int threads, int smem) {
  int dev = 0, sms = 0, per_sm = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem) != cudaSuccess)
    return 0;
  return sms * per_sm;
}

template <bool BF16, int D, bool CAUSAL, int WGS>
result<void> launch_fwd90(const problem& p, const forward_args& a, int tiles, std::int64_t item0, std::int64_t items,
                          cudaStream_t st) {
  auto kern = fwd90_kernel<BF16, D, CAUSAL, WGS>;
  constexpr int smem = fwd90_smem<D, WGS>();
  GFDIT_CUDA(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  kern<<<unsigned(items * (2 / WGS)), fwd90_threads<WGS>(), smem, st>>>(
      make_layout(p, a.cu_seqlens), static_cast<const std::uint16_t*>(a.q),
      static_cast<const std::uint16_t*>(a.k), static_cast<const std::uint16_t*>(a.v),
      static_cast<std::uint16_t*>(a.o), a.lse, p.softmax_scale() * kLog2e, tiles, item0);
  GFDIT_CUDA(cudaGetLastError());
  return {};
}

// Resident forward blocks of WGS warpgroups on the current device, or 0 where the portable
// kernel runs.
template <bool BF16, int D, bool CAUSAL, int WGS>
int fwd90_resident() {
  auto k90 = fwd90_kernel<BF16, D, CAUSAL, WGS>;
  static const int n = [&] {
    if (!use_wgmma(reinterpret_cast<const void*>(k90))) return 0;
    if (cudaFuncSetAttribute(k90, cudaFuncAttributeMaxDynamicSharedMemorySize, fwd90_smem<D, WGS>()) != cudaSuccess) return 0;
    return resident_blocks(reinterpret_cast<const void*>(k90), fwd90_threads<WGS>(), fwd90_smem<D, WGS>());
  }();
  return n;
}

// Query rows per forward block when the caller leaves it: 64 where two one-warpgroup blocks fit
// on an SM (each one's softmax and loads then run under the other's products: mmdit-12b-standin's
// attention on an H100, 423 -> 555 TFLOP/s), else 128. GFDIT_ATTN_FWD90_ROWS=64|128 overrides.
template <bool BF16, int D, bool CAUSAL>
int fwd90_default_rows() {
  static const int rows = [] {
    const char* e = std::getenv("GFDIT_ATTN_FWD90_ROWS");
    if (const int asked = e ? std::atoi(e) : 0; asked == 64 || asked == 128) return asked;
    const int one = fwd90_resident<BF16, D, CAUSAL, 1>(), two = fwd90_resident<BF16, D, CAUSAL, 2>();
    return two > 0 && one >= 2 * two ? 64 : 128;
  }();
  return rows;
}

// 128-row work items that run at once with the default block rows (a wave), or 0 where the
// portable kernel runs.
template <bool BF16, int D, bool CAUSAL>
int fwd90_slots() {
  if (fwd90_default_rows<BF16, D, CAUSAL>() == 64) return fwd90_resident<BF16, D, CAUSAL, 1>() / 2;
  return fwd90_resident<BF16, D, CAUSAL, 2>();
}

template <bool BF16, int D, bool CAUSAL>
result<void> launch_forward(const problem& p, const forward_args& a, cudaStream_t st) {
  static const bool hopper = use_wgmma(reinterpret_cast<const void*>(fwd90_kernel<BF16, D, CAUSAL, 2>));
  if (hopper) {
    const auto [first, last] = pairs_of(p, a);
    const int tiles = fwd90_tiles(p);
    const std::int64_t item0 = std::int64_t(first) * tiles, items = std::int64_t(last - first) * tiles;
    // 64-row blocks, two an SM; or 128-row blocks for the whole waves and, where a last partial
    // wave fits twice over, 64-row blocks for it.
    if ((a.block_rows ? a.block_rows : fwd90_default_rows<BF16, D, CAUSAL>()) == 64)
      return launch_fwd90<BF16, D, CAUSAL, 1>(p, a, tiles, item0, items, st);
    const int slots = fwd90_resident<BF16, D, CAUSAL, 2>();
    const std::int64_t tail = slots > 0 ? items % slots : 0;
    if (!a.split_tail || tail == 0 || 2 * tail > slots) return launch_fwd90<BF16, D, CAUSAL, 2>(p, a, tiles, item0, items, st);
    if (items > tail)
      if (auto r = launch_fwd90<BF16, D, CAUSAL, 2>(p, a, tiles, item0, items - tail, st); !r) return r;
    return launch_fwd90<BF16, D, CAUSAL, 1>(p, a, tiles, item0 + items - tail, tail, st);
  }
  if (forward_rows_per_warp(D) == 1) return launch_forward_rw<BF16, D, CAUSAL, 1>(p, a, st);
  return launch_forward_rw<BF16, D, CAUSAL, 2>(p, a, st);
}

struct ws_layout {
  std::size_t acc = 0, dvec = 0, sems = 0, table = 0, total = 0;
  int sem_count = 0;
};

std::size_t align_up(std::size_t x) { return (x + 255) / 256 * 256; }

ws_layout workspace_layout(const problem& p) {
  ws_layout w;
  int sems = 0;
  for (int b = 0; b < p.batch; ++b) sems += p.heads * ((p.seq_len(b) + kBwdM - 1) / kBwdM);
  w.sem_count = sems + 1;  // plus the item counter
  w.acc = 0;
  w.dvec = align_up(std::size_t(p.elements()) * 4);
  w.sems = w.dvec + align_up(std::size_t(p.rows()) * 4);
  w.table = w.sems + align_up(std::size_t(sems) * 4);
  w.total = w.table + align_up(sizeof(bwd_batch) * p.batch);
  return w;
}

template <bool BF16, int D, bool CAUSAL>
result<void> launch_backward(const problem& p, const backward_args& a, cudaStream_t st) {
  const ws_layout w = workspace_layout(p);
  auto* ws = static_cast<std::uint8_t*>(a.workspace);
  std::vector<int> starts(p.batch), lens(p.batch);
  for (int b = 0; b < p.batch; ++b) {
    starts[b] = p.seq_start(b);
    lens[b] = p.seq_len(b);
  }
  const dash::bwd_plan plan = dash::make_bwd_plan(starts, lens, p.heads);
  const std::vector<bwd_batch>& table = plan.table;
  const int items = plan.items;
  // Pageable source: the copy is staged before cudaMemcpyAsync returns, so `table` may die.
  GFDIT_CUDA(cudaMemcpyAsync(ws + w.table, table.data(), sizeof(bwd_batch) * p.batch,
                                      cudaMemcpyHostToDevice, st));
  GFDIT_CUDA(cudaMemsetAsync(ws + w.acc, 0, std::size_t(p.elements()) * 4, st));
  GFDIT_CUDA(cudaMemsetAsync(ws + w.sems, 0, std::size_t(w.sem_count) * 4, st));

  const seq_layout L = make_layout(p, a.cu_seqlens);
  float* dvec = reinterpret_cast<float*>(ws + w.dvec);
  {
    const std::int64_t rows = p.rows();
    const int threads = 256;
    const std::int64_t blocks = (rows * 32 + threads - 1) / threads;
    bwd_pre_kernel<BF16, D><<<unsigned(blocks), threads, 0, st>>>(
        L, rows, static_cast<const std::uint16_t*>(a.o), static_cast<const std::uint16_t*>(a.dout),
        dvec);
    GFDIT_CUDA(cudaGetLastError());
  }

  static const bool hopper = use_wgmma(reinterpret_cast<const void*>(bwd90_kernel<BF16, D, CAUSAL>));
  auto kern = hopper ? bwd90_kernel<BF16, D, CAUSAL> : bwd_kernel<BF16, D, CAUSAL>;
  const int smem = hopper ? bwd90_smem<D>() : bwd_smem<D>();
  GFDIT_CUDA(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  int dev = 0, sms = 0, per_sm = 0;
  GFDIT_CUDA(cudaGetDevice(&dev));
  GFDIT_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  GFDIT_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kern, kBwdThreads, smem));
  if (per_sm < 1) return make_error(errc::state, "attention: backward kernel does not fit on an SM");
  const int grid = std::min(items, sms * per_sm);

  bwd_params P{};
  P.L = L;
  P.q = static_cast<const std::uint16_t*>(a.q);
  P.k = static_cast<const std::uint16_t*>(a.k);
  P.v = static_cast<const std::uint16_t*>(a.v);
  P.dout = static_cast<const std::uint16_t*>(a.dout);
  P.lse = a.lse;
  P.dvec = dvec;
  P.dq_acc = reinterpret_cast<float*>(ws + w.acc);
  P.dk = static_cast<std::uint16_t*>(a.dk);
  P.dv = static_cast<std::uint16_t*>(a.dv);
  P.sems = reinterpret_cast<int*>(ws + w.sems);
  P.counter = P.sems + (w.sem_count - 1);
  P.batches = reinterpret_cast<const bwd_batch*>(ws + w.table);
  P.batch = p.batch;
  P.items = items;
  P.scale = p.softmax_scale();
  P.scale_log2 = p.softmax_scale() * kLog2e;
  P.sched = static_cast<int>(a.sched);
  void* args[] = {&P};
  // Blocks wait on each other's semaphores: all of them must be resident at once.
  GFDIT_CUDA(cudaLaunchCooperativeKernel(reinterpret_cast<const void*>(kern), dim3(grid),
                                                  dim3(kBwdThreads), args, smem, st));
  GFDIT_CUDA(cudaGetLastError());

  const std::int64_t n = p.elements();
  bwd_post_kernel<BF16><<<unsigned((n / 2 + 255) / 256), 256, 0, st>>>(
      n, P.dq_acc, P.scale, static_cast<std::uint16_t*>(a.dq));
  GFDIT_CUDA(cudaGetLastError());
  return {};
}

template <template <bool, int, bool> class F, class... Args>
result<void> dispatch(const problem& p, Args&&... args) {
  const bool bf = p.type == dtype::bf16, causal = p.mask == mask_kind::causal;
  const int d = p.head_dim;
#define GFDIT_ATTN_CASE(BF, DD, CA) \
  if (bf == BF && d == DD && causal == CA) return F<BF, DD, CA>::run(p, args...);
  GFDIT_ATTN_CASE(true, 64, false)
  GFDIT_ATTN_CASE(true, 64, true)
  GFDIT_ATTN_CASE(true, 128, false)
  GFDIT_ATTN_CASE(true, 128, true)
  GFDIT_ATTN_CASE(false, 64, false)
  GFDIT_ATTN_CASE(false, 64, true)
  GFDIT_ATTN_CASE(false, 128, false)
  GFDIT_ATTN_CASE(false, 128, true)
#undef GFDIT_ATTN_CASE
  return make_error(errc::invalid_argument, "attention: unsupported configuration");
}

template <bool BF16, int D, bool CAUSAL>
struct fwd_launcher {
  static result<void> run(const problem& p, const forward_args& a, cudaStream_t st) {
    return launch_forward<BF16, D, CAUSAL>(p, a, st);
  }
};
template <bool BF16, int D, bool CAUSAL>
struct fwd_slots {
  static result<void> run(const problem&, int* slots) {
    *slots = fwd90_slots<BF16, D, CAUSAL>();
    return {};
  }
};
template <bool BF16, int D, bool CAUSAL>
struct bwd_launcher {
  static result<void> run(const problem& p, const backward_args& a, cudaStream_t st) {
    return launch_backward<BF16, D, CAUSAL>(p, a, st);
  }
};

}  // namespace

const char* gpu_kernels() noexcept {
  static const bool hopper = use_wgmma(reinterpret_cast<const void*>(bwd90_kernel<true, 128, false>));
  return hopper ? "wgmma (sm_90a)" : "mma.sync";
}

bool gpu_available() noexcept {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

result<void> forward(const problem& p, const forward_args& a, void* stream) {
  if (auto r = validate(p); !r) return r;
  if (!a.q || !a.k || !a.v || !a.o || !a.lse)
    return make_error(errc::invalid_argument, "attention: forward needs q, k, v, o and lse");
  if (p.varlen() && !a.cu_seqlens)
    return make_error(errc::invalid_argument, "attention: varlen needs device cu_seqlens");
  const int pairs = p.batch * p.heads;
  if (a.pair_begin < 0 || a.pair_begin > pairs || a.pair_end < -1 || a.pair_end > pairs ||
      (a.pair_end >= 0 && a.pair_end < a.pair_begin))
    return make_error(errc::invalid_argument, "attention: pairs [" + std::to_string(a.pair_begin) + ", " +
                                                  std::to_string(a.pair_end) + ") outside [0, " + std::to_string(pairs) + ")");
  if (a.block_rows != 0 && a.block_rows != 64 && a.block_rows != 128)
    return make_error(errc::invalid_argument, "attention: block_rows " + std::to_string(a.block_rows) + " is not 0, 64 or 128");
  if (const auto [first, last] = pairs_of(p, a); first == last) return {};
  return dispatch<fwd_launcher>(p, a, static_cast<cudaStream_t>(stream));
}

int forward_whole_wave_pairs(const problem& p) noexcept {
  int slots = 0;
  if (!validate(p) || !dispatch<fwd_slots>(p, &slots) || slots == 0) return 0;
  const std::int64_t tiles = fwd90_tiles(p), items = std::int64_t(p.batch) * p.heads * tiles;
  return static_cast<int>(items / slots * slots / tiles);
}

std::size_t backward_workspace_bytes(const problem& p) noexcept {
  if (!validate(p)) return 0;
  return workspace_layout(p).total;
}

result<void> backward(const problem& p, const backward_args& a, void* stream) {
  if (auto r = validate(p); !r) return r;
  if (!a.q || !a.k || !a.v || !a.o || !a.dout || !a.lse || !a.dq || !a.dk || !a.dv)
    return make_error(errc::invalid_argument, "attention: backward needs every tensor");
  if (p.varlen() && !a.cu_seqlens)
    return make_error(errc::invalid_argument, "attention: varlen needs device cu_seqlens");
  if (!schedule_supports(a.sched, p.mask))
    return make_error(errc::invalid_argument,
                      std::string("attention: schedule ") + std::string(to_string(a.sched)) +
                          " needs the full mask");
  if (!a.workspace || a.workspace_bytes < backward_workspace_bytes(p))
    return make_error(errc::invalid_argument, "attention: backward workspace too small");
  return dispatch<bwd_launcher>(p, a, static_cast<cudaStream_t>(stream));
}

}  // namespace gfdit::attention
