#include "actors/sim/workload.hpp"

#include <cmath>

#include <yaml-cpp/yaml.h>

#include "common/hash.hpp"
#include "common/text.hpp"

namespace gfdit::sim {

std::uint64_t rng::next() noexcept {
  s_ += 0x9e3779b97f4a7c15ull;
  return splitmix64(s_);
}
double rng::uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
double rng::exponential(double rate) noexcept { return -std::log1p(-uniform()) / rate; }
std::uint64_t rng::below(std::uint64_t n) noexcept { return n == 0 ? 0 : next() % n; }

namespace {

template <class T>
void get(const YAML::Node& n, const char* key, T& out) {
  if (n && n[key]) out = n[key].as<T>();
}

}  // namespace

result<workload> parse_workload(const std::string& text) {
  try {
    YAML::Node n = YAML::Load(text);
    workload w;
    get(n, "name", w.name);
    get(n, "description", w.description);
    get(n, "seed", w.seed);
    get(n, "requests", w.requests);
    get(n, "duration_s", w.duration_s);
    get(n, "chunk_steps", w.chunk_steps);
    get(n, "admission_queue", w.admission_queue);
    get(n, "cancel_fraction", w.cancel_fraction);
    for (const auto& c : n["classes"]) {
      request_class rc;
      get(c, "name", rc.name);
      get(c, "model", rc.model);
      get(c, "width", rc.width);
      get(c, "height", rc.height);
      get(c, "frames", rc.frames);
      get(c, "steps", rc.steps);
      get(c, "guidance", rc.guidance);
      get(c, "slo_multiple", rc.slo_multiple);
      get(c, "slo_ms", rc.slo_ms);
      get(c, "priority", rc.priority);
      get(c, "weight", rc.weight);
      if (rc.name.empty()) rc.name = "class" + std::to_string(w.classes.size());
      if (!(rc.weight > 0)) return make_error(errc::invalid_argument, "class " + rc.name + ": weight must be > 0");
      w.classes.push_back(rc);
    }
    if (w.classes.empty()) return make_error(errc::invalid_argument, "workload: no classes");
    if (auto a = n["arrivals"]) {
      get(a, "process", w.arrivals.process);
      get(a, "load", w.arrivals.load);
      get(a, "rate_per_s", w.arrivals.rate_per_s);
      if (auto b = a["bursts"]) {
        get(b, "period_s", w.arrivals.burst_period_s);
        get(b, "burst_s", w.arrivals.burst_s);
        get(b, "factor", w.arrivals.burst_factor);
      }
      for (const auto& p : a["phases"]) {
        phase ph;
        get(p, "duration_s", ph.duration_s);
        get(p, "load", ph.load);
        get(p, "rate_per_s", ph.rate_per_s);
        if (!(ph.duration_s > 0)) return make_error(errc::invalid_argument, "phase: duration_s must be > 0");
        w.arrivals.phases.push_back(ph);
      }
    }
    const auto& a = w.arrivals;
    if (a.process != "poisson" && a.process != "bursts" && a.process != "phases")
      return make_error(errc::invalid_argument, "arrivals.process must be poisson, bursts or phases");
    if (a.process == "phases" ? a.phases.empty() : !(a.load > 0 || a.rate_per_s > 0))
      return make_error(errc::invalid_argument, "arrivals: give load or rate_per_s (or phases)");
    if (a.process == "bursts" &&
        !(a.burst_period_s > 0 && a.burst_s > 0 && a.burst_s <= a.burst_period_s && a.burst_factor >= 1))
      return make_error(errc::invalid_argument, "arrivals.bursts: need 0 < burst_s <= period_s, factor >= 1");
    if (w.requests <= 0 && w.duration_s <= 0)
      return make_error(errc::invalid_argument, "workload: give requests or duration_s");
    if (w.chunk_steps < 1) return make_error(errc::invalid_argument, "chunk_steps must be >= 1");
    if (w.cancel_fraction < 0 || w.cancel_fraction > 1)
      return make_error(errc::invalid_argument, "cancel_fraction must be in [0, 1]");
    return w;
  } catch (const std::exception& e) {
    return make_error(errc::invalid_argument, std::string("workload: ") + e.what());
  }
}

result<workload> load_workload(const std::string& path) {
  const auto text = read_text(path);
  if (!text) return make_error(errc::not_found, "cannot open workload " + path);
  auto w = parse_workload(*text);
  if (!w) return make_error(w.err().code, path + ": " + w.err().what);
  return w;
}

double mean_work_s(const workload& w, const cost_model& costs) {
  double total_w = 0.0, work = 0.0;
  for (const auto& c : w.classes) {
    const model_profile* p = costs.find(c.model);
    if (!p) continue;
    const auto t = cost_model::tokens(*p, c.width, c.height, c.frames);
    work += c.weight * cost_model::request_us(*p, t, c.steps, 1) / 1e6;
    total_w += c.weight;
  }
  return total_w > 0 ? work / total_w : 0.0;
}

double rate_for_load(const workload& w, const cost_model& costs, std::int32_t gpus, double load) {
  const double m = mean_work_s(w, costs);
  return m > 0 ? load * gpus / m : 0.0;
}

result<std::vector<arrival>> generate_arrivals(const workload& w, const cost_model& costs, std::int32_t gpus,
                                               std::uint64_t seed, double scale) {
  for (const auto& c : w.classes)
    if (!costs.find(c.model))
      return make_error(errc::not_found, "class " + c.name + ": no cost profile for '" + c.model + "'");
  const auto& a = w.arrivals;
  auto rate_of = [&](double load, double rate) {
    return scale * (load > 0 ? rate_for_load(w, costs, gpus, load) : rate);
  };
  const double base = a.process == "phases" ? 0.0 : rate_of(a.load, a.rate_per_s);
  // Rate as a function of time, and its maximum (for thinning).
  double cycle = 0.0, peak = 0.0;
  const double f = a.burst_s / a.burst_period_s;
  const double low = base / (f * a.burst_factor + (1 - f));
  if (a.process == "phases") {
    for (const auto& p : a.phases) {
      cycle += p.duration_s;
      peak = std::max(peak, rate_of(p.load, p.rate_per_s));
    }
  } else if (a.process == "bursts") {
    peak = low * a.burst_factor;
  } else {
    peak = base;
  }
  if (!(peak > 0)) return make_error(errc::invalid_argument, "arrival rate is zero");
  auto rate_at = [&](double t) {
    if (a.process == "poisson") return base;
    if (a.process == "bursts") return std::fmod(t, a.burst_period_s) < a.burst_s ? low * a.burst_factor : low;
    double x = std::fmod(t, cycle);
    for (const auto& p : a.phases) {
      if (x < p.duration_s) return rate_of(p.load, p.rate_per_s);
      x -= p.duration_s;
    }
    return rate_of(a.phases.back().load, a.phases.back().rate_per_s);
  };
  double total_weight = 0.0;
  for (const auto& c : w.classes) total_weight += c.weight;

  rng g(seed);
  std::vector<arrival> out;
  double t = 0.0;
  const std::int64_t max_n = w.requests > 0 ? w.requests : std::numeric_limits<std::int64_t>::max();
  while (static_cast<std::int64_t>(out.size()) < max_n) {
    t += g.exponential(peak);
    if (w.duration_s > 0 && t > w.duration_s) break;
    const double accept = g.uniform();
    const double pick = g.uniform() * total_weight;
    const std::uint64_t req_seed = g.next();
    const double cancel_draw = g.uniform(), cancel_at = g.uniform();
    if (accept * peak >= rate_at(t)) continue;  // thinning
    std::size_t ci = 0;
    for (double acc = w.classes[0].weight; ci + 1 < w.classes.size() && pick >= acc;) acc += w.classes[++ci].weight;
    const auto& c = w.classes[ci];
    arrival ar;
    ar.at_us = std::llround(t * 1e6);
    ar.class_index = ci;
    auto& r = ar.request;
    r.model = c.model;
    r.width = c.width;
    r.height = c.height;
    r.frames = c.frames;
    r.steps = c.steps;
    r.guidance = c.guidance;
    r.seed = req_seed;
    r.slo_ms = c.slo_ms;
    r.slo_multiple = c.slo_multiple;
    r.priority = c.priority;
    r.class_name = c.name;
    r.client_tag = std::to_string(out.size());
    ar.cancel = cancel_draw < w.cancel_fraction;
    ar.cancel_after_fraction = cancel_at;
    out.push_back(std::move(ar));
  }
  return out;
}

}  // namespace gfdit::sim
