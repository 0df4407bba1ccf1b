#pragma once
// A training set in the model's token layout and the randomness of each sample of a global
// batch. Every draw is a pure function of (seed, global sample number), where the global sample
// number is step * batch + position in the batch: which worker computes a sample never changes
// its picture, label dropout, time or noise.
#include <cstdint>
#include <filesystem>
#include <vector>

#include "common/result.hpp"
#include "kernels/dit/config.hpp"

namespace gfdit::train {

struct flow_dataset {
  std::int64_t count = 0;
  std::int64_t sample_values = 0;  // image tokens x patch_dim
  std::vector<float> tokens;       // [count][sample_values]: pixels in [-1, 1], patchified
  std::vector<int> labels;         // [count]
};

// The IDX pair (e.g. Debian's Fashion-MNIST train split): pictures must have the config's size
// and one channel, labels below its num_classes. `limit` > 0 keeps the first `limit` pictures.
result<flow_dataset> load_flow_dataset(const dit::model_config& c, const std::filesystem::path& images,
                                       const std::filesystem::path& labels, std::int64_t limit = 0);

// What one sample of a step sees: its picture, label (the null class when dropped for CFG),
// sigma = sigmoid(N(0, 1)) (logit-normal, as train.py) and the stream of its noise.
struct flow_draw {
  std::int64_t index = 0;  // into the data set
  int label = 0;
  float sigma = 0;
  std::uint64_t noise_stream = 0;
};

// The data order: a seeded permutation of the data set per epoch (Fisher-Yates over
// counter-based draws), the epochs one after another.
class sample_order {
 public:
  sample_order(std::uint64_t seed, std::int64_t count) : seed_(seed), count_(count) {}
  std::int64_t at(std::int64_t global_sample);

 private:
  std::uint64_t seed_;
  std::int64_t count_;
  std::int64_t epoch_ = -1;
  std::vector<std::int64_t> perm_;
};

flow_draw draw_sample(sample_order& order, const flow_dataset& data, const dit::model_config& c, std::uint64_t seed,
                      float label_drop, std::int64_t global_sample);

// xt = (1 - sigma) x0 + sigma noise and the target noise - x0, for one draw.
void flow_pair(const flow_dataset& data, const flow_draw& d, std::vector<float>& xt, std::vector<float>& target);

}  // namespace gfdit::train
