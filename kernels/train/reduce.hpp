#pragma once
// The one summation order of a global batch's gradients: a fixed binary tree over the samples'
// positions in the global batch, sum(lo, hi) = sum(lo, mid) + sum(mid, hi), mid = lo + (hi - lo) / 2.
// With a power-of-two number of workers, each holding an equal contiguous slice, every worker's
// slice is a node of that tree; summing the slices' results with the same rule over the workers
// reproduces the one-worker sum bit for bit.
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace gfdit::train {

// Sums leaf(i, out) over i in [lo, hi) in the tree's order into `out`. A
// leaf writes (not adds) its values. Holds one buffer per tree level: O(log(hi - lo)) of them.
void tree_sum(std::int64_t lo, std::int64_t hi, const std::function<void(std::int64_t, std::span<float>)>& leaf,
              std::span<float> out);

// True when `degree` workers can each take an equal slice of `batch` that is a node of the tree.
bool tree_splits(std::int64_t batch, int degree);

}  // namespace gfdit::train
