#pragma once
// The device building blocks every kernel uses: the sequence layout, bf16/fp16 packing, the
// sm_80 tensor-core atoms (mma.sync m16n8k16, ldmatrix), cp.async stages, acquire/release
// semaphores, swizzled shared-memory tiles.
// Included only by attention_cuda.cu: the kernels stay one translation unit, so splitting them
// into files changes no generated code.
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
#include "kernels/attention/wgmma.cuh"  // sw128_chunk

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
__device__ __forceinline__ void mma(float (&c)[4], const std::uint32_t (&a)[4], std::uint32_t b0, std::uint32_t b1) {
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

// The inner step of every sm80 product: for each of J 16-column blocks of B (read from shared
// memory by ldmatrix, transposed when B_T, block j at b_at(j)), acc[r][2j..2j+1] += a[r] B_j for
// each of RW row blocks of A held in registers. B is loaded once for all RW rows.
template <bool BF16, bool B_T, int J, int RW, typename BAt>
__device__ __forceinline__ void mma_rows_times_blocks(float (&acc)[RW][2 * J][4], const std::uint32_t (&a)[RW][4],
                                                      BAt b_at) {
#pragma unroll
  for (int j = 0; j < J; ++j) {
    std::uint32_t b[4];
    if constexpr (B_T)
      ldsm_x4_t(b, b_at(j));
    else
      ldsm_x4(b, b_at(j));
#pragma unroll
    for (int r = 0; r < RW; ++r) {
      mma<BF16>(acc[r][2 * j], a[r], b[0], b[1]);
      mma<BF16>(acc[r][2 * j + 1], a[r], b[2], b[3]);
    }
  }
}
// The same for one row block of A (the backward's warps each own one).
template <bool BF16, bool B_T, int J, typename BAt>
__device__ __forceinline__ void mma_row_times_blocks(float (&acc)[2 * J][4], const std::uint32_t (&a)[4], BAt b_at) {
  mma_rows_times_blocks<BF16, B_T, J, 1>(reinterpret_cast<float(&)[1][2 * J][4]>(acc),
                                         reinterpret_cast<const std::uint32_t(&)[1][4]>(a), b_at);
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
  return std::uint32_t(row * COLS + ((((col >> 3) ^ row) & 7) | ((col >> 3) & ~7)) * 8 + (col & 7)) * 2u;
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
__device__ __forceinline__ void load_tile(std::uint32_t smem, const std::uint16_t* g, std::int64_t row_stride,
                                          int valid, int tid) {
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

}  // namespace
}  // namespace gfdit::attention
