#pragma once
// The gateway's counters, in Prometheus' text format (GET /metrics): replies by status, the
// latency of answered requests, pictures served, cancellations by cause, and the gauges the
// caller passes (pictures in flight, the store). Thread-safe: every HTTP thread counts.
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "actors/gateway/result_store.hpp"
#include "actors/runtime/prometheus.hpp"

namespace gfdit::gateway {

class gateway_metrics {
 public:
  void reply(int status);                     // every reply to POST /v1/images/generations
  void answered(double seconds, int images);  // a 200: how long it took, how many pictures
  void cancelled(const std::string& cause);   // "disconnect" | "timeout"
  std::string text(std::int64_t outstanding_images, const store_stats& store) const;

 private:
  mutable std::mutex mu_;
  std::map<int, std::uint64_t> replies_;
  prom::histogram seconds_{{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120}};  // answered requests' wall time
  std::uint64_t images_ = 0;
  std::map<std::string, std::uint64_t> cancelled_;
};

}  // namespace gfdit::gateway
