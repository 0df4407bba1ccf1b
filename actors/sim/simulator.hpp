#pragma once
// The discrete-event simulator: the production admission, scheduler and membership cores and
// N sim-backend workers, wired by a message loop in virtual time. Single-threaded and
// deterministic in (workload, options): no clock, no unordered iteration, one RNG stream for
// arrivals and another for faults.
#include <cstdint>
#include <string>

#include "actors/serving/cost_model.hpp"
#include "actors/sim/faults.hpp"
#include "actors/sim/metrics.hpp"
#include "actors/sim/workload.hpp"
#include "common/result.hpp"

namespace gfdit::sim {

struct sim_options {
  std::string policy = "edf-best-fit";
  std::int32_t gpus = 8;
  std::uint64_t seed = 0;            // 0: the workload's seed
  double load_scale = 1.0;           // multiplies every arrival rate (load sweep)
  double load = 0.0;                 // > 0: replaces the workload's poisson/bursts load
  std::int64_t requests = 0;         // > 0: replaces the workload's request count
  std::int32_t chunk_steps = 0;      // > 0: replaces the workload's chunk size
  std::int64_t admission_queue = 0;  // > 0: replaces the workload's queue bound
  faults fault;
  std::int64_t net_delay_us = 100;  // every message, one way
  std::int64_t heartbeat_us = 1'000'000;
  std::int64_t heartbeat_timeout_us = 3'000'000;
  std::int64_t collective_timeout_us = 500'000;
  bool check_invariants = false;  // run the scheduler's consistency check after every event
  double max_virtual_s = 0.0;     // 0: 100x the arrival window, at least a day
};

result<run_metrics> simulate(const workload& w, const sim_options& opt, const cost_model& costs = cost_model::stock());

}  // namespace gfdit::sim
