// Hopper warpgroup matrix multiply (wgmma, sm_90a) for the attention kernels: shared-memory
// matrix descriptors for the 128-byte-swizzled tile layout below, and the few instruction shapes
// the kernels use. Everything here compiles to nothing outside sm_90a (GFDIT_WGMMA unset).
#pragma once
#include <cstdint>

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define GFDIT_WGMMA 1
#endif

namespace gfdit::attention {

// Tile layout "sw128": a [rows][cols] tile of 16-bit elements stored as cols/64 regions of
// rows x 128 bytes (region h holds columns 64h..64h+63); in each row the 16-byte chunk c sits at
// c ^ (row % 8). Regions start on 1024-byte boundaries. This is the tensor cores' canonical
// 128-byte-swizzled layout both ways: K-major when the columns are the reduction dimension,
// MN-major when the rows are, so one copy of Q, K, V, dO serves every product of the backward.
__host__ __device__ constexpr std::uint32_t sw128_chunk(int row, int chunk, int rows) {
  return std::uint32_t((chunk >> 3) * rows * 128 + row * 128 + (((chunk & 7) ^ (row & 7)) << 4));
}

// Descriptor of a 128-byte-swizzled operand at shared address `addr`. lbo: bytes between 64-wide
// blocks of the contiguous dimension (MN-major only); sbo: bytes between groups of 8 rows.
__device__ __forceinline__ std::uint64_t wgmma_desc(std::uint32_t addr, std::uint32_t lbo, std::uint32_t sbo) {
  return std::uint64_t((addr & 0x3FFFF) >> 4) | (std::uint64_t((lbo & 0x3FFFF) >> 4) << 16) |
         (std::uint64_t((sbo & 0x3FFFF) >> 4) << 32) | (1ull << 62);
}

#ifdef GFDIT_WGMMA
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Keeps the compiler from moving accumulator registers across an in-flight wgmma.
template <int N>
__device__ __forceinline__ void wgmma_pin(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

#define GFDIT_ACC8(i)                                                                                         \
  "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), \
      "+f"(d[i + 7])
#define GFDIT_ACC32 GFDIT_ACC8(0), GFDIT_ACC8(8), GFDIT_ACC8(16), GFDIT_ACC8(24)
#define GFDIT_ACC64 GFDIT_ACC32, GFDIT_ACC8(32), GFDIT_ACC8(40), GFDIT_ACC8(48), GFDIT_ACC8(56)
#define GFDIT_MMA(shape, T) "wgmma.mma_async.sync.aligned." shape ".f32." T "." T " "

// D[64xN] (+)= A B, A and B from shared memory; TA/TB: 0 K-major, 1 MN-major.
template <bool BF16, int TA, int TB>
__device__ __forceinline__ void wgmma_ss_n64(float (&d)[32], std::uint64_t a, std::uint64_t b, int accumulate) {
#define GFDIT_SS(T) \
  asm volatile("{.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n" GFDIT_MMA("m64n64k16", T)    \
               "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, %35, %36;}\n"                            \
               : GFDIT_ACC32                                                              \
               : "l"(a), "l"(b), "r"(accumulate), "n"(TA), "n"(TB))
  if constexpr (BF16)
    GFDIT_SS("bf16");
  else
    GFDIT_SS("f16");
#undef GFDIT_SS
}

template <bool BF16, int TA, int TB>
__device__ __forceinline__ void wgmma_ss_n128(float (&d)[64], std::uint64_t a, std::uint64_t b, int accumulate) {
#define GFDIT_SS(T) \
  asm volatile("{.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n" GFDIT_MMA("m64n128k16", T)   \
               "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, %67, %68;}\n"                            \
               : GFDIT_ACC64                                                              \
               : "l"(a), "l"(b), "r"(accumulate), "n"(TA), "n"(TB))
  if constexpr (BF16)
    GFDIT_SS("bf16");
  else
    GFDIT_SS("f16");
#undef GFDIT_SS
}

// D[64xN] += A B, A from registers (the accumulator layout of a 64x16 slice, packed in pairs),
// B from shared memory, MN-major.
template <bool BF16>
__device__ __forceinline__ void wgmma_rs_n64(float (&d)[32], const std::uint32_t (&a)[4], std::uint64_t b) {
#define GFDIT_RS(T) \
  asm volatile("{.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n" GFDIT_MMA("m64n64k16", T) "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;}\n" \
               : GFDIT_ACC32                                                             \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1))
  if constexpr (BF16)
    GFDIT_RS("bf16");
  else
    GFDIT_RS("f16");
#undef GFDIT_RS
}
template <bool BF16>
__device__ __forceinline__ void wgmma_rs_n128(float (&d)[64], const std::uint32_t (&a)[4], std::uint64_t b) {
#define GFDIT_RS(T) \
  asm volatile("{.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n" GFDIT_MMA("m64n128k16", T) "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;}\n" \
               : GFDIT_ACC64                                                             \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1))
  if constexpr (BF16)
    GFDIT_RS("bf16");
  else
    GFDIT_RS("f16");
#undef GFDIT_RS
}
#undef GFDIT_MMA
#undef GFDIT_ACC64
#undef GFDIT_ACC32
#undef GFDIT_ACC8
#endif  // GFDIT_WGMMA

}  // namespace gfdit::attention
