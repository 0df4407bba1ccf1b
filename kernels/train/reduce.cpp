#include "kernels/train/reduce.hpp"

namespace gfdit::train {

namespace {

void sum_into(std::int64_t lo, std::int64_t hi, const std::function<void(std::int64_t, std::span<float>)>& leaf,
              std::span<float> out, std::vector<std::vector<float>>& spare, std::size_t level) {
  if (hi - lo == 1) {
    leaf(lo, out);
    return;
  }
  const std::int64_t mid = lo + (hi - lo) / 2;
  if (spare.size() <= level) spare.emplace_back(out.size());
  sum_into(lo, mid, leaf, out, spare, level + 1);
  std::span<float> right(spare[level]);
  sum_into(mid, hi, leaf, right, spare, level + 1);
  for (std::size_t i = 0; i < out.size(); ++i) out[i] += right[i];
}

}  // namespace

void tree_sum(std::int64_t lo, std::int64_t hi, const std::function<void(std::int64_t, std::span<float>)>& leaf,
              std::span<float> out) {
  std::vector<std::vector<float>> spare;
  sum_into(lo, hi, leaf, out, spare, 0);
}

bool tree_splits(std::int64_t batch, int degree) {
  if (degree < 1 || (degree & (degree - 1)) != 0) return false;
  return batch >= degree && batch % degree == 0;
}

}  // namespace gfdit::train
