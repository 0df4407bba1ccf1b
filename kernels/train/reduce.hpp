#pragma once
// The one summation order of a global batch's gradients: a fixed binary tree over the samples'
// positions in the global batch, sum(lo, hi) = sum(lo, mid) + sum(mid, hi), mid = lo + (hi - lo) / 2.
// Any cut across that tree gives the same bits: sum each node of the cut with the rule, then
// finish the tree above it. So `degree` workers, any number of them, each sum a contiguous run of
// a cut's nodes, exchange those sums, and all finish the same tree: the one-worker sum, bit for
// bit, whatever the degree.
#include <cstdint>
#include <functional>
#include <span>
#include <utility>
#include <vector>

namespace gfdit::train {

// Sums leaf(i, out) over i in [lo, hi) in the tree's order into `out`. A
// leaf writes (not adds) its values. Holds one buffer per tree level: O(log(hi - lo)) of them.
void tree_sum(std::int64_t lo, std::int64_t hi, const std::function<void(std::int64_t, std::span<float>)>& leaf,
              std::span<float> out);

// The tree over [0, n) cut `depth` levels below its root: its nodes there, in order (a node of
// one position, reached sooner, is a node of the cut as it is).
std::vector<std::pair<std::int64_t, std::int64_t>> tree_cut(std::int64_t n, int depth);

// The tree over [0, n) summed from its cut at `depth`: node(k, out) writes the sum of the cut's
// k-th node. Equal, bit for bit, to tree_sum(0, n, ...) over the same values.
void tree_sum_from_cut(std::int64_t n, int depth, const std::function<void(std::size_t, std::span<float>)>& node,
                       std::span<float> out);

// The cut a global batch is split at for `degree` workers: a level with at least `degree` nodes
// (twice as many when the degree is not a power of two, so that no worker sums more than about
// 1.5x another's share). Nodes go to workers in contiguous runs: worker r takes
// [r * nodes / degree, (r + 1) * nodes / degree).
struct batch_split {
  int depth = 0;
  std::vector<std::pair<std::int64_t, std::int64_t>> nodes;
  std::size_t first(int worker, int degree) const { return nodes.size() * worker / degree; }
  std::size_t most_per_worker(int degree) const { return (nodes.size() + degree - 1) / degree; }
};
batch_split split_batch(std::int64_t batch, int degree);

// True when `degree` workers can share `batch`: each gets at least one sample.
bool tree_splits(std::int64_t batch, int degree);

}  // namespace gfdit::train
