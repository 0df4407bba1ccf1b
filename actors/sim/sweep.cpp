#include "actors/sim/sweep.hpp"

namespace gfdit::sim {

result<sweep_result> sweep(const workload& w, sim_options opt, const cost_model& costs, double target, int refine) {
  sweep_result out;
  out.policy = opt.policy;
  out.target = target;
  const double base_scale = opt.load_scale;
  auto probe = [&](double scale) -> result<bool> {
    opt.load_scale = base_scale * scale;
    auto m = simulate(w, opt, costs);
    if (!m) return m.err();
    out.probes.push_back({scale, m->offered_load, m->offered_rate_rps, m->slo_attainment, m->keep_up});
    return m->slo_attainment >= target && m->keep_up >= 0.95;
  };
  double lo = 0, hi = 0;
  for (double s = 1.0 / 32; s <= 64; s *= 2) {
    auto ok = probe(s);
    if (!ok) return ok.err();
    if (!*ok) {
      hi = s;
      break;
    }
    lo = s;
  }
  if (hi == 0) hi = lo * 2;  // never failed: report the highest probed
  for (int i = 0; i < refine && lo > 0; ++i) {
    const double mid = 0.5 * (lo + hi);
    auto ok = probe(mid);
    if (!ok) return ok.err();
    (*ok ? lo : hi) = mid;
  }
  for (const auto& p : out.probes)
    if (p.scale == lo) {
      out.sustainable_load = p.load;
      out.sustainable_rate_rps = p.rate_rps;
    }
  return out;
}

}  // namespace gfdit::sim
