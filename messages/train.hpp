#pragma once
// The train family (launch/graphs/train.yaml): the coordinator tells trainers which step to take
// and who takes it; trainers answer each step; the coordinator publishes the run's progress.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "messages/message.hpp"

namespace gfdit::msg {

// A trainer, once in the World with its weights loaded: where it stands.
struct train_ready {
  static constexpr std::string_view type_name = "train.ready";
  static constexpr std::uint16_t type_version = 1;
  std::int32_t rank = 0;
  std::int64_t step = 0;        // steps its state has taken (a resumed run's checkpoint)
  std::int64_t data_count = 0;  // pictures it draws from: every trainer must see the same set
  std::int64_t steps = 0;       // the schedule of its run (a resumed run keeps its own)
  std::int64_t batch = 0;       // the global batch
  GFDIT_FIELDS(rank, step, data_count, steps, batch)
};

// Coordinator -> every member of the step, and the state's source. With `checkpoint`, `source`
// (which holds step `step`) first writes the model folder of step `step`; joiners take the
// weights and optimizer state from it, then the members take step `step` + 1 as one group. No
// members: only the checkpoint (after the last step).
struct train_step {
  static constexpr std::string_view type_name = "train.step";
  static constexpr std::uint16_t type_version = 2;
  std::int64_t step = 0;  // steps taken before this one
  std::vector<std::int32_t> members;
  std::uint64_t epoch = 0;  // a new one whenever the members change
  std::int32_t source = 0;
  std::vector<std::int32_t> joiners;
  bool checkpoint = false;
  GFDIT_FIELDS(step, members, epoch, source, joiners, checkpoint)
};

// Trainer -> coordinator, once its part of a train_step is done (or failed).
struct train_done {
  static constexpr std::string_view type_name = "train.done";
  static constexpr std::uint16_t type_version = 1;
  std::int32_t rank = 0;
  std::int64_t step = 0;  // steps its state has taken now
  bool ok = true;
  std::string error;
  double loss = 0;  // the step's, when it took one
  double grad_norm = 0;
  double lr = 0;
  double seconds = 0;
  GFDIT_FIELDS(rank, step, ok, error, loss, grad_norm, lr, seconds)
};

// Topic train.metrics: one per step taken.
struct train_metrics {
  static constexpr std::string_view type_name = "train.metrics";
  static constexpr std::uint16_t type_version = 1;
  std::int64_t step = 0;
  std::int64_t steps = 0;  // the schedule's length
  double loss = 0;
  double grad_norm = 0;
  double lr = 0;
  double seconds = 0;
  double images_per_s = 0;
  std::int32_t workers = 0;
  GFDIT_FIELDS(step, steps, loss, grad_norm, lr, seconds, images_per_s, workers)
};

}  // namespace gfdit::msg
