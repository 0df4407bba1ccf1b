#pragma once
// The serving graph as real processes for the live tests: admission, scheduler and membership
// in one (node "control"), each sim worker in its own, all over ZeroMQ ipc sockets.
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/actors/runtime/test_support.hpp"

namespace gfdit::testing {

struct live_graph {
  std::string control_ep = unique_ipc("control");
  std::unique_ptr<child_process> control;
  std::vector<std::unique_ptr<child_process>> worker_procs;
  std::vector<std::string> worker_eps;

  // speedup: model microseconds per wall microsecond (every shell gets it).
  live_graph(const std::string& policy, int workers, double speedup) {
    auto with = [&](nlohmann::json extra) {
      extra["speedup"] = speedup;
      return extra.dump();
    };
    control = std::make_unique<child_process>(
        std::vector<std::string>{GFDIT_SERVING_NODE, "--name", "control", "--bind", control_ep, "--actor",
                                 "gfdit.admission", "admission", with({{"gpus", workers}}), "--actor",
                                 "gfdit.scheduler", "scheduler", with({{"policy", policy}, {"chunk_steps", 5}}),
                                 "--actor", "gfdit.membership", "membership", with({{"heartbeat_timeout_ms", 1000}})});
    for (int w = 0; w < workers; ++w) {
      const std::string n = std::to_string(w);  // ("w" + an rvalue string: a false -Wrestrict in GCC 12)
      worker_eps.push_back(unique_ipc("w"));
      worker_procs.push_back(std::make_unique<child_process>(std::vector<std::string>{
          GFDIT_SERVING_NODE, "--name", "w" + n, "--bind", worker_eps.back(), "--peer", "control=" + control_ep,
          "--actor", "gfdit.worker", "worker-" + n, with({{"id", w}})}));
    }
  }
};

}  // namespace gfdit::testing
