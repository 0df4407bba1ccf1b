#pragma once
// One data-parallel training step: each worker computes the per-sample gradients of its share
// of the global batch (a run of nodes of a cut across the fixed tree of reduce.hpp) and sums
// them by the tree's rule, the workers exchange those sums (all_gather) and every worker
// finishes the same tree above the cut, so all hold the one-worker gradient, bit for bit, at any
// degree. Then clipping and AdamW, the
// same arithmetic everywhere, keep the weights identical on every worker.
#include <atomic>
#include <cstdint>
#include <vector>

#include "common/result.hpp"
#include "kernels/collectives/group.hpp"
#include "kernels/collectives/world.hpp"
#include "kernels/train/adamw.hpp"
#include "kernels/train/dit_grad.hpp"
#include "kernels/train/flow_data.hpp"

namespace gfdit::train {

struct train_options {
  adamw_options adamw;
  std::int64_t steps = 1000;    // the schedule's length (warm-up, cosine)
  int batch = 64;               // the global batch
  std::uint64_t seed = 0;       // data order, label dropout, times, noise
  std::uint64_t init_seed = 0;  // the initial weights
  float label_drop = 0.1f;      // CFG: the share of samples trained with the null class
};

// The data-parallel workers: a World and a Group of it, or no World for one process.
struct dp_group {
  coll::World* world = nullptr;
  coll::Group group;
  int degree() const noexcept { return world ? group.size() : 1; }
  int index() const noexcept { return world ? group.self() : 0; }
};

// DiT's initialisation (train.py's init_weights), counter-based per tensor: xavier-uniform
// linears, zero biases, N(0, 0.02) for the class table and the timestep MLP, zero adaLN
// projections and output layer.
std::vector<float> initial_weights(const param_layout& L, std::uint64_t seed);

struct step_report {
  std::int64_t step = 0;  // the step just taken, from 1
  double loss = 0;        // the global batch's mean loss
  double grad_norm = 0;   // before clipping
  float lr = 0;
};

class trainer {
 public:
  // `data` must outlive the trainer; params and state come from initial_weights or a checkpoint.
  static result<trainer> create(param_layout L, const train_options& o, const flow_dataset& data,
                                std::vector<float> params, adamw_state state);
  // Every member of g calls it with the same weights; all end with the same weights. When
  // `cancel` turns true (another thread: the process is stopping) the step ends at its next
  // sample with an error and changes nothing.
  result<step_report> step(const dp_group& g, const std::atomic<bool>* cancel = nullptr);

  // A rank joining a running group takes the state from a member (point to point in `g`, a group
  // holding both): the fp32 weights, both moments and the EMA; `step` is the sender's count.
  result<void> send_state(coll::World& w, const coll::Group& g, int to) const;
  result<void> receive_state(coll::World& w, const coll::Group& g, int from, std::int64_t step);

  const param_layout& layout() const noexcept { return layout_; }
  const train_options& options() const noexcept { return options_; }
  const std::vector<float>& params() const noexcept { return params_; }
  const adamw_state& state() const noexcept { return state_; }
  std::int64_t data_count() const noexcept { return data_->count; }

 private:
  trainer(param_layout L, const train_options& o, const flow_dataset& data, std::vector<float> params,
          adamw_state state);

  param_layout layout_;
  train_options options_;
  const flow_dataset* data_;
  std::vector<float> params_;
  adamw_state state_;
  sample_order order_;
};

}  // namespace gfdit::train
