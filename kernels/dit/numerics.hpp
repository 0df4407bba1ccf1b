#pragma once
// The scalar pieces every path shares: bf16 rounding, a fixed-order dot product, tanh-GELU and
// counter-based random numbers. Fixed order means the same bits for a token wherever it runs.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/hash.hpp"

namespace gfdit::dit {

inline std::uint16_t to_bf16(float x) noexcept {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40);  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);                                                           // round to nearest even
  return static_cast<std::uint16_t>(u >> 16);
}
inline float from_bf16(std::uint16_t b) noexcept {
  const std::uint32_t u = static_cast<std::uint32_t>(b) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}
inline float round_bf16(float x) noexcept { return from_bf16(to_bf16(x)); }

// Eight lanes, combined in a fixed tree: vectorisable, and the order never depends on context.
// A template so the training path's double checks run the same order (kernels/train).
template <class T>
T dot(const T* a, const T* b, int n) noexcept {
  T l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) l[k] += a[i + k] * b[i + k];
  for (int k = 0; i < n; ++i, ++k) l[k] += a[i] * b[i];
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

// Templates for the training path's double checks; the float constants are the same bits.
template <class T>
T gelu_tanh(T x) noexcept {
  const T k = T(0.7978845608028654);  // sqrt(2/pi)
  return T(0.5) * x * (T(1) + std::tanh(k * (x + T(0.044715) * x * x * x)));
}
template <class T>
T silu(T x) noexcept {
  return x / (T(1) + std::exp(-x));
}

// Counter-based: the value at (stream, index) is a pure function, so any slice of a tensor or of
// the noise is reproducible without generating what comes before it.
inline std::uint64_t counter_bits(std::uint64_t stream, std::uint64_t index) noexcept {
  return splitmix64(splitmix64(stream) ^ (index * 0xd1b54a32d192ed03ull));
}
inline float counter_uniform(std::uint64_t stream, std::uint64_t index) noexcept {  // (0, 1)
  return (static_cast<float>(counter_bits(stream, index) >> 40) + 0.5f) * (1.0f / 16777216.0f);
}
// Standard normal by Box-Muller over two counters (computed in double, so libm's float paths
// cannot differ between call sites).
inline float counter_normal(std::uint64_t stream, std::uint64_t index) noexcept {
  const std::uint64_t b = counter_bits(stream, index);
  const double u1 = (static_cast<double>(b >> 32) + 0.5) / 4294967296.0;
  const double u2 = (static_cast<double>(b & 0xffffffffu) + 0.5) / 4294967296.0;
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

}  // namespace gfdit::dit
