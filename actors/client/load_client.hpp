#pragma once
// The load client: replays a workload's arrival trace into a live serving graph (requests to
// "admission", optional cancellations to "scheduler"), collects every answer, and when each
// request has reached its terminal state prints the same metrics as the simulator.
#include <functional>
#include <string>

#include "actors/runtime/actor.hpp"
#include "actors/sim/metrics.hpp"

namespace gfdit {

struct load_client_options {
  std::string workload;       // path of a workload YAML
  std::int32_t gpus = 4;      // the cluster size the arrival rate is scaled to
  std::uint64_t seed = 0;     // 0: the workload's own
  std::int64_t requests = 0;  // 0: the workload's own
  double speedup = 1.0;       // as the graph's shells
  double max_wall_s = 600;    // give up (and report the unfinished) after this long
  std::string label = "live";
};

class load_client : public actor {
 public:
  using on_finish_fn = std::function<void(const sim::run_metrics&)>;
  load_client(load_client_options opt, on_finish_fn on_finish);
  result<void> on_configure(context& ctx) override;
  result<void> on_activate(context& ctx) override;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

// `gfdit bench serve`: a client process that connects to a running graph.
int serve_main(int argc, char** argv);

}  // namespace gfdit
