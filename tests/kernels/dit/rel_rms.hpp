#pragma once
// ||got - want|| / ||want|| in double: how parity tests against the PyTorch references measure.
#include <cmath>
#include <vector>

namespace gfdit::dit::testing {

inline double rel_rms(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < want.size() && i < got.size(); ++i) {
    num += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    den += static_cast<double>(want[i]) * want[i];
  }
  return got.size() == want.size() ? std::sqrt(num / den) : INFINITY;
}

}  // namespace gfdit::dit::testing
