#include "kernels/train/flow_data.hpp"

#include <cmath>
#include <numeric>
#include <string>

#include "common/hash.hpp"
#include "kernels/dit/idx.hpp"
#include "kernels/dit/numerics.hpp"
#include "kernels/dit/sampler.hpp"

namespace gfdit::train {

namespace {
// Independent streams for each kind of draw.
constexpr std::uint64_t order_stream = 0x6f72646572ull, drop_stream = 0x64726f70ull, sigma_stream = 0x7369676dull,
                        noise_stream = 0x6e6f697365ull;
}  // namespace

result<flow_dataset> load_flow_dataset(const dit::model_config& c, const std::filesystem::path& images,
                                       const std::filesystem::path& labels, std::int64_t limit) {
  auto set = dit::read_labelled_images(images, labels, c.num_classes);
  if (!set) return set.err();
  if (c.latent_channels != 1 || c.frames != 1 || set->rows != c.height || set->cols != c.width)
    return make_error(errc::invalid_argument, "train: " + images.string() + " holds " + std::to_string(set->rows) +
                                                  "x" + std::to_string(set->cols) + " grey pictures; model '" + c.name +
                                                  "' takes " + std::to_string(c.latent_channels) + "x" +
                                                  std::to_string(c.height) + "x" + std::to_string(c.width));
  flow_dataset d;
  d.count = limit > 0 ? std::min<std::int64_t>(limit, set->count) : set->count;
  d.sample_values = c.image_tokens() * c.patch_dim();
  d.tokens.resize(static_cast<std::size_t>(d.count * d.sample_values));
  std::vector<float> px(static_cast<std::size_t>(c.height) * c.width);
  for (std::int64_t i = 0; i < d.count; ++i) {
    const std::uint8_t* src = &set->pixels[static_cast<std::size_t>(i) * px.size()];
    for (std::size_t k = 0; k < px.size(); ++k)
      px[k] = static_cast<float>(src[k]) / 127.5f - 1.0f;  // train.py's to_unit
    const auto tok = dit::patchify(c, px);
    std::copy(tok.begin(), tok.end(), d.tokens.begin() + i * d.sample_values);
    d.labels.push_back(set->labels[static_cast<std::size_t>(i)]);
  }
  return d;
}

std::int64_t sample_order::at(std::int64_t global_sample) {
  const std::int64_t epoch = global_sample / count_;
  if (epoch != epoch_) {
    perm_.resize(static_cast<std::size_t>(count_));
    std::iota(perm_.begin(), perm_.end(), std::int64_t{0});
    const std::uint64_t stream = splitmix64(seed_ ^ order_stream) ^ static_cast<std::uint64_t>(epoch);
    for (std::int64_t i = count_ - 1; i > 0; --i) {
      const auto j = static_cast<std::int64_t>(dit::counter_bits(stream, static_cast<std::uint64_t>(i)) %
                                               static_cast<std::uint64_t>(i + 1));
      std::swap(perm_[static_cast<std::size_t>(i)], perm_[static_cast<std::size_t>(j)]);
    }
    epoch_ = epoch;
  }
  return perm_[static_cast<std::size_t>(global_sample % count_)];
}

flow_draw draw_sample(sample_order& order, const flow_dataset& data, const dit::model_config& c, std::uint64_t seed,
                      float label_drop, std::int64_t global_sample) {
  const auto g = static_cast<std::uint64_t>(global_sample);
  flow_draw d;
  d.index = order.at(global_sample);
  d.label = data.labels[static_cast<std::size_t>(d.index)];
  if (dit::counter_uniform(seed ^ drop_stream, g) < label_drop) d.label = c.num_classes;  // CFG: the null class
  const double z = dit::counter_normal(seed ^ sigma_stream, g);
  d.sigma = static_cast<float>(1.0 / (1.0 + std::exp(-z)));
  d.noise_stream = splitmix64(seed ^ noise_stream) ^ g;
  return d;
}

void flow_pair(const flow_dataset& data, const flow_draw& d, std::vector<float>& xt, std::vector<float>& target) {
  const float* x0 = &data.tokens[static_cast<std::size_t>(d.index * data.sample_values)];
  xt.resize(static_cast<std::size_t>(data.sample_values));
  target.resize(xt.size());
  for (std::size_t i = 0; i < xt.size(); ++i) {
    const float n = dit::counter_normal(d.noise_stream, i);
    xt[i] = (1.0f - d.sigma) * x0[i] + d.sigma * n;
    target[i] = n - x0[i];
  }
}

}  // namespace gfdit::train
