#pragma once
// Fault injection for the simulator: worker deaths (optionally followed by a restart) and
// extra message delays. From a YAML file or a short inline spec:
//   deaths=2,recover_s=60,delay_prob=0.05,delay_ms=200
#include <cstdint>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace gfdit::sim {

struct worker_death {
  std::int32_t worker = 0;
  double at_s = 0.0;
  double recover_after_s = 0.0;  // 0: never comes back
};

struct faults {
  std::vector<worker_death> deaths;  // explicit
  std::int32_t random_deaths = 0;    // distinct random workers, at random times in the trace
  double random_recover_after_s = 0.0;
  double delay_prob = 0.0;    // fraction of messages delayed
  double delay_max_ms = 0.0;  // by up to this much (uniform)
  bool any() const noexcept { return !deaths.empty() || random_deaths > 0 || delay_prob > 0; }
};

// A path ending in .yaml/.yml/.json is read as a file; anything else as the inline spec.
result<faults> parse_faults(const std::string& spec_or_path);

}  // namespace gfdit::sim
