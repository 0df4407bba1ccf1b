#pragma once
// Stable hashes: the same value on every build, host and run (std::hash promises none of that).
#include <bit>
#include <cstdint>
#include <span>
#include <string_view>

namespace gfdit {

constexpr std::uint64_t fnv1a64(std::string_view s) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

constexpr std::uint32_t fnv1a32(std::string_view s) noexcept {
  std::uint32_t h = 0x811c9dc5u;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x01000193u;
  }
  return h;
}

constexpr std::uint64_t splitmix64(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Order-sensitive hash of an integer sequence (a group's ordered member list, say).
constexpr std::uint64_t hash_sequence(std::span<const std::int32_t> xs) noexcept {
  std::uint64_t h = 0x6766646974ull;  // "gfdit"
  for (auto x : xs) h = splitmix64(h ^ static_cast<std::uint64_t>(static_cast<std::uint32_t>(x)));
  return splitmix64(h ^ xs.size());
}

// Hash of the bits of a float sequence (-0 and +0 differ, so do NaN payloads): "same bits"
// checks compare these across processes. `seed` separates the uses.
inline std::uint64_t hash_float_bits(std::span<const float> xs, std::uint64_t seed) noexcept {
  std::uint64_t h = seed;
  for (float x : xs) h = splitmix64(h ^ std::bit_cast<std::uint32_t>(x));
  return splitmix64(h ^ xs.size());
}

}  // namespace gfdit
