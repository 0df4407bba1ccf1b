#include "actors/worker/sim_backend.hpp"

#include <cmath>

#include "actors/serving/state_layout.hpp"

namespace gfdit {

sim_backend::run sim_backend::start(const msg::task_assign& t, std::int64_t now_us, bool peers_alive) const {
  run r;
  msg::task_done d = msg::report_of(t, worker_, now_us);
  const model_profile* p = costs_.find(t.model);
  auto st = stage_from_string(t.stage);
  if (!p || !st || t.members.empty()) {
    d.ok = false;
    d.error = !p ? "no cost profile for model '" + t.model + "'" : "malformed task";
    r.end_us = now_us;
  } else if (!peers_alive) {
    d.ok = false;
    d.error = "a group member is gone (collective timed out)";
    r.end_us = now_us + cfg_.collective_timeout_us;
  } else {
    const auto degree = static_cast<std::int32_t>(t.members.size());
    r.reshard_us = needs_move(t.input, t.members) ? std::llround(cost_model::reshard_us(*p, t.tokens)) : 0;
    r.compute_us = std::llround(cost_model::task_us(*p, *st, t.tokens, t.step_end - t.step_begin, degree));
    r.end_us = now_us + r.reshard_us + r.compute_us;
  }
  d.end_us = r.end_us;
  d.reshard_us = r.reshard_us;
  d.compute_us = r.compute_us;
  if (reports(t, worker_)) r.report = std::move(d);
  return r;
}

}  // namespace gfdit
