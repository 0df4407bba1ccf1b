#pragma once
// The `sim` worker backend as a pure core: what a simulated GPU does with a task. It takes no
// time itself; it says how long the task takes (from the cost model) and what to report at the
// end. The simulator advances virtual time to that point; the live sim worker sleeps until it.
// Only the group's first member reports (the collectives make the members finish together).
#include <cstdint>
#include <optional>

#include "actors/serving/cost_model.hpp"
#include "messages/serving.hpp"

namespace gfdit {

struct sim_backend_config {
  // A task on a group with a dead member fails at its first collective after this long.
  std::int64_t collective_timeout_us = 500'000;
};

class sim_backend {
 public:
  sim_backend(std::int32_t worker, const cost_model& costs, sim_backend_config cfg = {})
      : worker_(worker), costs_(costs), cfg_(cfg) {}

  struct run {
    std::int64_t end_us = 0;
    std::int64_t reshard_us = 0;
    std::int64_t compute_us = 0;
    std::optional<msg::task_done> report;  // to send at end_us (members[0] only)
  };
  // Starts `t` at `now_us`. `peers_alive` is false when a member of the group is gone.
  run start(const msg::task_assign& t, std::int64_t now_us, bool peers_alive) const;

  std::int32_t worker() const noexcept { return worker_; }

 private:
  std::int32_t worker_;
  const cost_model& costs_;
  sim_backend_config cfg_;
};

}  // namespace gfdit
