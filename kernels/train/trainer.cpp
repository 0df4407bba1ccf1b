#include "kernels/train/trainer.hpp"

#include <cmath>
#include <string>

#include "common/hash.hpp"
#include "kernels/dit/numerics.hpp"
#include "kernels/train/reduce.hpp"

namespace gfdit::train {

std::vector<float> initial_weights(const param_layout& L, std::uint64_t seed) {
  std::vector<float> p(static_cast<std::size_t>(L.total), 0.0f);
  for (std::size_t t = 0; t < L.specs.size(); ++t) {
    const auto& s = L.specs[t];
    const std::uint64_t stream = seed ^ fnv1a64(s.name);
    float* w = &p[static_cast<std::size_t>(L.offset[t])];
    const bool zero =
        s.shape.size() == 1 || s.name.find(".ada.") != std::string::npos || s.name.rfind("final.linear", 0) == 0;
    if (zero) continue;
    const bool normal = s.name == "y_embed.table" || s.name.rfind("t_embed.", 0) == 0;
    const double bound = std::sqrt(6.0 / static_cast<double>(s.shape[0] + s.shape[1]));
    for (std::int64_t i = 0; i < s.numel(); ++i) {
      const auto u = static_cast<std::uint64_t>(i);
      w[i] = normal ? 0.02f * dit::counter_normal(stream, u)
                    : static_cast<float>(bound * (2.0 * dit::counter_uniform(stream, u) - 1.0));
    }
  }
  return p;
}

trainer::trainer(param_layout L, const train_options& o, const flow_dataset& data, std::vector<float> params,
                 adamw_state state)
    : layout_(std::move(L)),
      options_(o),
      data_(&data),
      params_(std::move(params)),
      state_(std::move(state)),
      order_(o.seed, data.count) {}

result<trainer> trainer::create(param_layout L, const train_options& o, const flow_dataset& data,
                                std::vector<float> params, adamw_state state) {
  const auto n = static_cast<std::size_t>(L.total);
  if (params.size() != n || state.m.size() != n || state.v.size() != n || state.ema.size() != n)
    return make_error(errc::invalid_argument, "train: weights or optimizer state do not match model '" + L.config.name +
                                                  "' (" + std::to_string(n) + " parameters)");
  if (data.count < 1 || data.sample_values != L.config.image_tokens() * L.config.patch_dim())
    return make_error(errc::invalid_argument, "train: the data set does not fit model '" + L.config.name + "'");
  if (o.batch < 1 || o.steps < 1)
    return make_error(errc::invalid_argument, "train: batch and steps must be at least 1");
  return trainer(std::move(L), o, data, std::move(params), std::move(state));
}

result<step_report> trainer::step(const dp_group& g, const std::atomic<bool>* cancel) {
  const int deg = g.degree(), me = g.index();
  const std::int64_t B = options_.batch;
  if (!tree_splits(B, deg))
    return make_error(errc::invalid_argument, "train: a global batch of " + std::to_string(B) +
                                                  " cannot be split over " + std::to_string(deg) +
                                                  " workers (each needs at least one sample)");
  if (state_.step >= options_.steps)
    return make_error(errc::state, "train: all " + std::to_string(options_.steps) + " steps are done");
  // Each slot holds one gradient with the loss after it, so the loss follows the same tree.
  const std::size_t n = static_cast<std::size_t>(layout_.total), slot = n + 1;
  const std::int64_t first = state_.step * B;
  std::vector<float> xt, target;
  bool cancelled = false;  // then every later leaf is a zero and the step fails before any update
  auto sample_leaf = [&](std::int64_t pos, std::span<float> out) {
    if (cancelled || (cancel && cancel->load(std::memory_order_relaxed))) {
      cancelled = true;
      std::fill(out.begin(), out.end(), 0.0f);
      return;
    }
    const flow_draw d = draw_sample(order_, *data_, layout_.config, options_.seed, options_.label_drop, first + pos);
    flow_pair(*data_, d, xt, target);
    std::fill(out.begin(), out.end(), 0.0f);
    const flow_sample<float> s{xt, target, d.sigma * 1000.0f, d.label};
    out[n] = loss_and_grad<float>(layout_, params_, s, out.first(n));
  };
  std::vector<float> total(slot);
  const auto stopped = [&] {
    return make_error(errc::state, "train: step " + std::to_string(state_.step + 1) + " cancelled (stopping)");
  };
  if (deg == 1) {
    tree_sum(0, B, sample_leaf, total);
    if (cancelled) return stopped();
  } else {
    // This worker's run of the cut's nodes, each summed by the tree's rule; the runs are
    // exchanged (padded to the longest) and every worker finishes the tree above the cut.
    const batch_split cut = split_batch(B, deg);
    const std::size_t most = cut.most_per_worker(deg), begin = cut.first(me, deg), end = cut.first(me + 1, deg);
    std::vector<float> mine(most * slot, 0.0f);
    for (std::size_t k = begin; k < end; ++k)
      tree_sum(cut.nodes[k].first, cut.nodes[k].second, sample_leaf,
               std::span<float>(mine).subspan((k - begin) * slot, slot));
    if (cancelled) return stopped();
    std::vector<float> all(mine.size() * static_cast<std::size_t>(deg));
    if (auto r = g.world->all_gather(g.group, mine.data(), all.data(), mine.size() * sizeof(float)); !r) return r.err();
    std::size_t owner = 0;  // the worker whose run holds cut node k (visited in order)
    tree_sum_from_cut(
        B, cut.depth,
        [&](std::size_t k, std::span<float> out) {
          while (k >= cut.first(static_cast<int>(owner) + 1, deg)) ++owner;
          const std::size_t at = (owner * most + (k - cut.first(static_cast<int>(owner), deg))) * slot;
          std::copy_n(all.begin() + static_cast<std::ptrdiff_t>(at), slot, out.begin());
        },
        total);
  }
  for (auto& x : total) x /= static_cast<float>(B);  // train.py's mean over the batch
  step_report rep;
  rep.loss = total[n];
  std::span<float> grad(total.data(), n);
  rep.grad_norm = grad_norm(grad);
  rep.lr = learning_rate(options_.adamw, state_.step, options_.steps);
  adamw_step(options_.adamw, options_.steps, rep.grad_norm, grad, params_, state_);
  rep.step = state_.step;
  return rep;
}

result<void> trainer::send_state(coll::World& w, const coll::Group& g, int to) const {
  for (const auto* v : {&params_, &state_.m, &state_.v, &state_.ema})
    if (auto r = w.send(g, to, v->data(), v->size() * sizeof(float)); !r) return r;
  return {};
}

result<void> trainer::receive_state(coll::World& w, const coll::Group& g, int from, std::int64_t step) {
  for (auto* v : {&params_, &state_.m, &state_.v, &state_.ema})
    if (auto r = w.recv(g, from, v->data(), v->size() * sizeof(float)); !r) return r;
  state_.step = step;
  return {};
}

}  // namespace gfdit::train
