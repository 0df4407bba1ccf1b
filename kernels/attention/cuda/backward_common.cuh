#pragma once
// What both backward kernels share: their parameters, items (dash_schedule.hpp), the claim
// counter, the row loads and dK/dV stores, the pre (D = rowsum(dO * O)) and post (dQ) kernels,
// and the dQ tile adds in their ranks' order.
// Included only by attention_cuda.cu: the kernels stay one translation unit, so splitting them
// into files changes no generated code.
#include "kernels/attention/cuda/device_atoms.cuh"
#include "kernels/attention/dash_schedule.hpp"

namespace gfdit::attention {
namespace {

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
  return (2 * kBwdN * D + 4 * kBwdM * D + kBwdN * kBwdM) * 2 + kBwdM * dq_row_bytes<D>() + 4 * kBwdM * 4;
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
__device__ __forceinline__ void bwd_load_rows(const bwd_params& P, float* lse, float* dvec, std::int64_t first,
                                              int valid, int tid) {
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
__device__ __forceinline__ void bwd_store_dkdv(const bwd_params& P, std::int64_t base, std::int64_t stride, int kv_row0,
                                               int len, int t4, const float* dk, const float* dv) {
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
  asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n" ::"l"(gdst), "r"(ssrc),
               "r"(bytes)
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
  bool det;          // false: atomic, no waits
  int pending = -1;  // the Q tile whose add was issued and not yet released

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

}  // namespace
}  // namespace gfdit::attention
