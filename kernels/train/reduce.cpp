#include "kernels/train/reduce.hpp"

namespace gfdit::train {

namespace {

// The tree's recursion; `stop(lo, hi, level)` says where a node is taken whole from `leaf`.
template <class Stop, class Leaf>
void sum_into(std::int64_t lo, std::int64_t hi, int level, const Stop& stop, const Leaf& leaf, std::span<float> out,
              std::vector<std::vector<float>>& spare) {
  if (stop(lo, hi, level)) {
    leaf(lo, hi, out);
    return;
  }
  const std::int64_t mid = lo + (hi - lo) / 2;
  const auto k = static_cast<std::size_t>(level);
  if (spare.size() <= k) spare.emplace_back(out.size());
  sum_into(lo, mid, level + 1, stop, leaf, out, spare);
  std::span<float> right(spare[k]);
  sum_into(mid, hi, level + 1, stop, leaf, right, spare);
  for (std::size_t i = 0; i < out.size(); ++i) out[i] += right[i];
}

}  // namespace

void tree_sum(std::int64_t lo, std::int64_t hi, const std::function<void(std::int64_t, std::span<float>)>& leaf,
              std::span<float> out) {
  std::vector<std::vector<float>> spare;
  sum_into(
      lo, hi, 0, [](std::int64_t l, std::int64_t h, int) { return h - l == 1; },
      [&](std::int64_t l, std::int64_t, std::span<float> o) { leaf(l, o); }, out, spare);
}

std::vector<std::pair<std::int64_t, std::int64_t>> tree_cut(std::int64_t n, int depth) {
  std::vector<std::pair<std::int64_t, std::int64_t>> out;
  const auto walk = [&](const auto& self, std::int64_t lo, std::int64_t hi, int level) -> void {
    if (level == depth || hi - lo == 1) {
      out.emplace_back(lo, hi);
      return;
    }
    const std::int64_t mid = lo + (hi - lo) / 2;
    self(self, lo, mid, level + 1);
    self(self, mid, hi, level + 1);
  };
  if (n > 0) walk(walk, 0, n, 0);
  return out;
}

void tree_sum_from_cut(std::int64_t n, int depth, const std::function<void(std::size_t, std::span<float>)>& node,
                       std::span<float> out) {
  std::vector<std::vector<float>> spare;
  std::size_t next = 0;  // the cut's nodes come in order
  sum_into(
      0, n, 0, [depth](std::int64_t l, std::int64_t h, int level) { return level == depth || h - l == 1; },
      [&](std::int64_t, std::int64_t, std::span<float> o) { node(next++, o); }, out, spare);
}

batch_split split_batch(std::int64_t batch, int degree) {
  batch_split s;
  const bool power_of_two = degree > 0 && (degree & (degree - 1)) == 0;
  const std::int64_t want = power_of_two ? degree : 2 * static_cast<std::int64_t>(degree);
  while ((std::int64_t{1} << s.depth) < want && (std::int64_t{1} << s.depth) < batch) ++s.depth;
  s.nodes = tree_cut(batch, s.depth);
  return s;
}

bool tree_splits(std::int64_t batch, int degree) { return degree >= 1 && batch >= degree; }

}  // namespace gfdit::train
