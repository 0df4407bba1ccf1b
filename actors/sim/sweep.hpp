#pragma once
// The load sweep: the highest arrival rate a policy sustains at a target SLO attainment.
#include <functional>

#include "actors/sim/simulator.hpp"

namespace gfdit::sim {

struct sweep_point {
  double scale = 0, load = 0, rate_rps = 0, attainment = 0, keep_up = 0;
};
struct sweep_result {
  std::string policy;
  double target = 0.9;
  double sustainable_load = 0;      // fraction of the cluster's single-GPU capacity
  double sustainable_rate_rps = 0;  // 0 when even the lowest load probed misses the target
  std::vector<sweep_point> probes;  // in the order run
};

// A load is sustained when SLO attainment >= `target` AND the cluster keeps up (keep_up >= 0.95:
// as many requests end as arrive over the second half of the trace), so a finite trace cannot
// pass an overload by draining a growing backlog into long deadlines after the last arrival.
// Doubles the rate from 1/32 of the workload's own until a probe fails, then bisects `refine`
// times. Attainment need not be monotonic in load; this finds a crossing.
result<sweep_result> sweep(const workload& w, sim_options opt, const cost_model& costs, double target = 0.9,
                           int refine = 5);

}  // namespace gfdit::sim
