#pragma once
// Counters of one actor, readable from any thread (introspection, `gfdit actor list`).
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include "actors/runtime/lifecycle.hpp"

namespace gfdit {

struct actor_stats {
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> sent{0};
  std::atomic<std::uint64_t> unhandled{0};
  std::atomic<std::uint64_t> decode_errors{0};
  std::atomic<std::uint64_t> delivery_failures{0};
  std::atomic<lifecycle_state> state{lifecycle_state::unconfigured};

  // The actor's own metrics (context::set_metrics), Prometheus text lines.
  void set_metrics(std::string text) {
    std::lock_guard lock(metrics_mu);
    metrics = std::move(text);
  }
  std::string get_metrics() const {
    std::lock_guard lock(metrics_mu);
    return metrics;
  }

 private:
  mutable std::mutex metrics_mu;
  std::string metrics;
};

}  // namespace gfdit
