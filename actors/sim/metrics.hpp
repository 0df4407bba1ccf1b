#pragma once
// Serving metrics, computed from the terminal messages of a run (RequestDone, Rejected) and
// the workers' busy time. The same code serves the simulator and live mode.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "messages/serving.hpp"

namespace gfdit::sim {

struct latency_summary {
  double mean_s = 0, p50_s = 0, p95_s = 0, p99_s = 0, max_s = 0;
};
latency_summary summarize(std::vector<double> seconds);

struct class_metrics {
  std::int64_t arrived = 0, done = 0, rejected = 0, cancelled = 0, failed = 0, slo_met = 0;
  double slo_attainment = 0;
  latency_summary latency;
};

struct run_metrics {
  std::string workload, policy;
  std::int32_t gpus = 0;
  std::uint64_t seed = 0;
  double offered_rate_rps = 0, offered_load = 0;
  std::int64_t arrived = 0, admitted = 0, rejected = 0, done = 0, cancelled = 0, failed = 0, unfinished = 0,
               slo_met = 0, slo_violations = 0;
  double slo_attainment = 0;  // met / (arrived - cancelled)
  // Requests ended / arrived during the second half of the arrival window: about 1 when the
  // cluster keeps up, well below when a backlog grows (only the drain would hide it).
  double keep_up = 0;
  double makespan_s = 0, throughput_rps = 0, goodput_rps = 0;
  latency_summary latency;
  double mean_queue_s = 0, mean_run_s = 0, mean_reshard_s = 0;
  double gpu_busy_fraction = 0;
  std::int64_t regroupings = 0, groups_formed = 0, preemptions = 0, tasks_failed = 0, worker_deaths = 0,
               policy_calls = 0, invalid_decisions = 0;
  double reshard_time_s = 0;
  std::map<std::string, class_metrics> classes;
  std::string invariant_violation;  // empty when every check passed

  nlohmann::json to_json() const;
};

// Accumulates a run's outcomes; finish() computes the figures.
class metrics_recorder {
 public:
  void arrived(const std::string& cls, std::int64_t t_us);
  void rejected(const std::string& cls, std::int64_t t_us);  // at admission
  void terminal(const msg::request_done& d);
  // The simulator sees its workers and reports their busy time; live mode has only the
  // requests' own accounts (RequestDone::gpu_us), used when busy() was never called.
  void busy(double gpu_seconds) { busy_s_ += gpu_seconds; }
  // Live mode: from the membership topic (the simulator takes these from the scheduler).
  void group_formed() { ++groups_formed_; }
  void worker_died() { ++worker_deaths_; }
  void last_event(std::int64_t t_us) { last_us_ = std::max(last_us_, t_us); }
  run_metrics finish(run_metrics base, std::int32_t gpus) const;

 private:
  struct rec {
    std::int64_t arrived = 0, done = 0, rejected = 0, cancelled = 0, failed = 0, slo_met = 0;
    std::vector<double> latency_s;
  };
  std::map<std::string, rec> by_class_;
  std::vector<double> latency_s_;
  double queue_s_ = 0, run_s_ = 0, reshard_s_ = 0;
  std::int64_t regroupings_ = 0, preemptions_ = 0;
  double busy_s_ = 0, request_gpu_s_ = 0;
  std::int64_t groups_formed_ = 0, worker_deaths_ = 0;
  std::int64_t last_us_ = 0;
  std::vector<std::int64_t> arrivals_us_, terminals_us_;
};

// Printing: one run, or several side by side with ratios to the first.
std::string format_table(const std::vector<run_metrics>& runs);

}  // namespace gfdit::sim
