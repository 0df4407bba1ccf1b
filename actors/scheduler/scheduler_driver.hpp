#pragma once
// The scheduler's whole message-level behaviour as a pure function object: one message in,
// the messages it causes out (destination and message). The actor shell
// (driver_actor), the simulator and `gfdit replay --actor scheduler` all run this one routing
// table, so a replay reproduces a live run bit for bit and the simulator runs the live wiring.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "actors/runtime/inbound.hpp"
#include "actors/runtime/outgoing.hpp"
#include "actors/scheduler/scheduler_core.hpp"
#include "messages/envelope.hpp"

namespace gfdit {

struct scheduler_driver_config {
  std::string policy = "edf-best-fit";
  scheduler_config core;
  double speedup = 1.0;            // model microseconds per wall microsecond of the stamps
  std::string self = "scheduler";  // the actor's own name (its ticks are addressed to it)
  std::int32_t gpus = 0;           // workers the graph runs (0: not known); checked against the policy
};

class scheduler_driver {
 public:
  static result<std::unique_ptr<scheduler_driver>> create(std::shared_ptr<const cost_model> costs,
                                                          scheduler_driver_config cfg);
  // Handles admitted, task_done, cancel (directed), worker_hello (topic "workers", or directed:
  // the answer to its hello_query), worker_heartbeat (topic "workers": a worker it does not know
  // is asked for its hello), worker_down and group_view (topic "membership"), and its own ticks
  // (system.heartbeat).
  // Anything else yields nothing.
  std::vector<outgoing> feed(const inbound& in);
  std::vector<std::string> topics() const;
  // The tick it sends itself, so time passing is a recorded message.
  outgoing tick(std::uint64_t n) const;

  const scheduler_core& core() const { return *core_; }
  // The core's view for live tools, published on topic "serving.state" every 5th tick.
  msg::cluster_state snapshot(std::int64_t now_us) const;
  // Prometheus text of the core's state and counters (driver_actor publishes it every second).
  std::string metrics_text(const std::string& actor) const;

 private:
  scheduler_driver(std::shared_ptr<const cost_model> costs, std::unique_ptr<scheduler_core> core,
                   scheduler_driver_config cfg);
  std::vector<outgoing> emit(std::vector<scheduler_output> out) const;
  bool known_alive(std::int32_t worker) const;
  std::vector<outgoing> ask_unknown(const inbound& heartbeat);

  std::shared_ptr<const cost_model> costs_;
  std::unique_ptr<scheduler_core> core_;
  scheduler_driver_config cfg_;
  std::map<std::int32_t, std::int64_t> asked_;  // worker -> when (wall us) its hello was asked for
};

}  // namespace gfdit
