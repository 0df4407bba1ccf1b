#pragma once
// Workload files for the simulator (and `gfdit bench serve`): request classes and an arrival
// process. See launch/workloads/*.yaml and README.md.
#include <cstdint>
#include <string>
#include <vector>

#include "actors/serving/cost_model.hpp"
#include "common/result.hpp"
#include "messages/serving.hpp"

namespace gfdit::sim {

struct request_class {
  std::string name;
  std::string model;
  std::int32_t width = 0, height = 0, frames = 1, steps = 0;
  double guidance = 5.0;
  double slo_multiple = 0.0;  // x single-GPU time; 0 with slo_ms 0: best effort
  double slo_ms = 0.0;
  std::int32_t priority = 0;
  double weight = 1.0;
};

struct phase {
  double duration_s = 0.0;
  double load = 0.0;        // fraction of capacity, or
  double rate_per_s = 0.0;  // an absolute rate
};

struct arrival_process {
  std::string process = "poisson";  // poisson | bursts | phases
  double load = 0.0;                // fraction of the cluster's single-GPU capacity
  double rate_per_s = 0.0;          // absolute; used when load is 0
  // bursts: the rate is `factor` times higher during the first burst_s of every period_s,
  // with the mean kept at the nominal rate.
  double burst_period_s = 600.0, burst_s = 60.0, burst_factor = 5.0;
  std::vector<phase> phases;  // phases: cycled
};

struct workload {
  std::string name;
  std::string description;
  std::uint64_t seed = 1;
  std::int64_t requests = 1000;  // stop after this many arrivals (0: no limit)
  double duration_s = 0.0;       // or after this long (0: no limit)
  std::int32_t chunk_steps = 4;
  std::int64_t admission_queue = 0;  // 0: 32 per GPU
  double cancel_fraction = 0.0;      // requests the client cancels while they run
  std::vector<request_class> classes;
  arrival_process arrivals;
};

result<workload> parse_workload(const std::string& yaml_text);
result<workload> load_workload(const std::string& path);

// One arrival of the trace.
struct arrival {
  std::int64_t at_us = 0;
  std::size_t class_index = 0;
  msg::generate_request request;
  bool cancel = false;
  double cancel_after_fraction = 0.0;  // of the single-GPU time, after admission
};

// Mean single-GPU work of one request of the mix (seconds) and the arrival rate that loads a
// cluster of `gpus` to `load`.
double mean_work_s(const workload& w, const cost_model& costs);
double rate_for_load(const workload& w, const cost_model& costs, std::int32_t gpus, double load);

// The arrival trace: deterministic in (workload, gpus, seed, scale). `scale` multiplies every
// rate (the load sweep).
result<std::vector<arrival>> generate_arrivals(const workload& w, const cost_model& costs, std::int32_t gpus,
                                               std::uint64_t seed, double scale = 1.0);

// A small deterministic generator (splitmix64): the same stream on every platform, unlike
// the std distributions.
class rng {
 public:
  explicit rng(std::uint64_t seed) : s_(seed) {}
  std::uint64_t next() noexcept;
  double uniform() noexcept;  // [0, 1)
  double exponential(double rate) noexcept;
  std::uint64_t below(std::uint64_t n) noexcept;

 private:
  std::uint64_t s_;
};

}  // namespace gfdit::sim
