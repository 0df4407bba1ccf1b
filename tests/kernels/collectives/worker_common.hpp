#pragma once
// Shared by the collectives test worker (one process per rank) and its scenarios.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "common/hash.hpp"

namespace gfdit::coll::testing {

// Deterministic test bytes: every process can compute what any other process sent.
inline std::uint8_t pattern(std::uint64_t salt, std::int64_t a, std::int64_t b, std::size_t i) {
  return static_cast<std::uint8_t>(
      splitmix64(salt ^ splitmix64(static_cast<std::uint64_t>(a) * 1000003u + static_cast<std::uint64_t>(b)) ^
                 (i * 0x9E37u)) >>
      24);
}

inline std::vector<std::uint8_t> bytes_of(std::uint64_t salt, std::int64_t a, std::int64_t b, std::size_t n) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = pattern(salt, a, b, i);
  return v;
}

// Reports a failed check on stderr and counts it; the worker's exit code is the count (capped).
struct checker {
  int rank = 0;
  int failures = 0;
  long checks = 0;
  bool expect(bool ok, const std::string& what) {
    ++checks;
    if (!ok) {
      ++failures;
      if (failures < 20) std::fprintf(stderr, "[rank %d] FAILED: %s\n", rank, what.c_str());
    }
    return ok;
  }
};

}  // namespace gfdit::coll::testing
