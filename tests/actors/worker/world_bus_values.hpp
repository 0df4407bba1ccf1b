#pragma once
// What each rank of the bus rendezvous test contributes to its all_reduce, and how a result is
// fingerprinted: shared by the peer processes and the test that checks them.
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "common/hash.hpp"

namespace gfdit::testing {

constexpr std::size_t world_bus_count = 4096;

// Magnitudes spread over 2^-12 .. 2^12, so the summation order shows in the bits.
inline float world_bus_value(int rank, std::size_t i) {
  return std::ldexp(1.0f + 0.0001f * static_cast<float>(i) + 0.37f * static_cast<float>(rank),
                    static_cast<int>((static_cast<std::size_t>(rank) * 5 + i) % 24) - 12);
}

inline std::uint64_t bits_hash(std::span<const float> xs) {
  return hash_float_bits(xs, 0x776f726c64ull);  // "world"
}

// The member-order sum ((x_m0 + x_m1) + x_m2) + ... over `members` (ranks), element by element.
inline std::vector<float> member_order_sum(std::span<const std::int32_t> members) {
  std::vector<float> out(world_bus_count);
  for (std::size_t i = 0; i < world_bus_count; ++i) {
    float s = world_bus_value(members[0], i);
    for (std::size_t k = 1; k < members.size(); ++k) s += world_bus_value(members[k], i);
    out[i] = s;
  }
  return out;
}

}  // namespace gfdit::testing
