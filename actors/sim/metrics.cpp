#include "actors/sim/metrics.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace gfdit::sim {

latency_summary summarize(std::vector<double> xs) {
  latency_summary s;
  if (xs.empty()) return s;
  std::sort(xs.begin(), xs.end());
  double sum = 0;
  for (double x : xs) sum += x;
  auto rank = [&](double q) {  // nearest rank
    const auto i = static_cast<std::size_t>(std::ceil(q * xs.size()));
    return xs[std::min(xs.size() - 1, i == 0 ? 0 : i - 1)];
  };
  s.mean_s = sum / xs.size();
  s.p50_s = rank(0.50);
  s.p95_s = rank(0.95);
  s.p99_s = rank(0.99);
  s.max_s = xs.back();
  return s;
}

void metrics_recorder::arrived(const std::string& cls, std::int64_t t_us) {
  ++by_class_[cls].arrived;
  arrivals_us_.push_back(t_us);
}
void metrics_recorder::rejected(const std::string& cls, std::int64_t t_us) {
  ++by_class_[cls].rejected;
  terminals_us_.push_back(t_us);
}

void metrics_recorder::terminal(const msg::request_done& d) {
  auto& c = by_class_[d.class_name];
  terminals_us_.push_back(d.finish_us);
  last_event(d.finish_us);
  if (d.status == "done") {
    ++c.done;
    const double l = d.latency_us / 1e6;
    c.latency_s.push_back(l);
    latency_s_.push_back(l);
    queue_s_ += d.queue_us / 1e6;
    run_s_ += d.run_us / 1e6;
    reshard_s_ += d.reshard_us / 1e6;
    if (d.slo_met) ++c.slo_met;
  } else if (d.status == "cancelled") {
    ++c.cancelled;
  } else if (d.status == "rejected") {
    ++c.rejected;
  } else {
    ++c.failed;
  }
  regroupings_ += d.regroupings;
  preemptions_ += d.preemptions;
  request_gpu_s_ += d.gpu_us / 1e6;
}

run_metrics metrics_recorder::finish(run_metrics m, std::int32_t gpus) const {
  m.gpus = gpus;
  for (const auto& [name, r] : by_class_) {
    class_metrics c;
    c.arrived = r.arrived;
    c.done = r.done;
    c.rejected = r.rejected;
    c.cancelled = r.cancelled;
    c.failed = r.failed;
    c.slo_met = r.slo_met;
    const auto denom = r.arrived - r.cancelled;
    c.slo_attainment = denom > 0 ? double(r.slo_met) / denom : 1.0;
    c.latency = summarize(r.latency_s);
    m.classes[name] = c;
    m.arrived += r.arrived;
    m.done += r.done;
    m.rejected += r.rejected;
    m.cancelled += r.cancelled;
    m.failed += r.failed;
    m.slo_met += r.slo_met;
  }
  m.unfinished = m.arrived - m.done - m.rejected - m.cancelled - m.failed;
  const auto denom = m.arrived - m.cancelled;
  m.slo_attainment = denom > 0 ? double(m.slo_met) / denom : 1.0;
  m.slo_violations = denom - m.slo_met;
  m.makespan_s = last_us_ / 1e6;
  if (m.makespan_s > 0) {
    m.throughput_rps = m.done / m.makespan_s;
    m.goodput_rps = m.slo_met / m.makespan_s;
    m.gpu_busy_fraction = (busy_s_ > 0 ? busy_s_ : request_gpu_s_) / (gpus * m.makespan_s);
  }
  m.latency = summarize(latency_s_);
  if (!arrivals_us_.empty()) {
    const std::int64_t end = *std::max_element(arrivals_us_.begin(), arrivals_us_.end());
    const std::int64_t half = end / 2;
    auto in = [&](std::int64_t t) { return t >= half && t <= end; };
    const auto a = std::count_if(arrivals_us_.begin(), arrivals_us_.end(), in);
    const auto t = std::count_if(terminals_us_.begin(), terminals_us_.end(), in);
    m.keep_up = a > 0 ? double(t) / a : 1.0;
  }
  if (m.done > 0) {
    m.mean_queue_s = queue_s_ / m.done;
    m.mean_run_s = run_s_ / m.done;
    m.mean_reshard_s = reshard_s_ / m.done;
  }
  m.reshard_time_s = reshard_s_;
  m.regroupings = regroupings_;
  m.preemptions = preemptions_;
  if (groups_formed_) m.groups_formed = groups_formed_;
  if (worker_deaths_) m.worker_deaths = worker_deaths_;
  return m;
}

namespace {

nlohmann::json lat_json(const latency_summary& l) {
  return {{"mean_s", l.mean_s}, {"p50_s", l.p50_s}, {"p95_s", l.p95_s}, {"p99_s", l.p99_s}, {"max_s", l.max_s}};
}

}  // namespace

nlohmann::json run_metrics::to_json() const {
  nlohmann::json j;
  j["workload"] = workload;
  j["policy"] = policy;
  j["gpus"] = gpus;
  j["seed"] = seed;
  j["offered_rate_rps"] = offered_rate_rps;
  j["offered_load"] = offered_load;
  j["requests"] = {{"arrived", arrived},     {"admitted", admitted}, {"rejected", rejected},    {"done", done},
                   {"cancelled", cancelled}, {"failed", failed},     {"unfinished", unfinished}};
  j["slo"] = {{"met", slo_met}, {"violations", slo_violations}, {"attainment", slo_attainment}};
  j["keep_up"] = keep_up;
  j["makespan_s"] = makespan_s;
  j["throughput_rps"] = throughput_rps;
  j["goodput_rps"] = goodput_rps;
  j["latency"] = lat_json(latency);
  j["breakdown_mean_s"] = {{"queue", mean_queue_s}, {"run", mean_run_s}, {"reshard", mean_reshard_s}};
  j["gpu_busy_fraction"] = gpu_busy_fraction;
  j["regroupings"] = regroupings;
  j["reshard_time_s"] = reshard_time_s;
  j["groups_formed"] = groups_formed;
  j["preemptions"] = preemptions;
  j["tasks_failed"] = tasks_failed;
  j["worker_deaths"] = worker_deaths;
  j["policy_calls"] = policy_calls;
  j["invalid_decisions"] = invalid_decisions;
  if (!invariant_violation.empty()) j["invariant_violation"] = invariant_violation;
  auto& cj = j["classes"];
  cj = nlohmann::json::object();
  for (const auto& [name, c] : classes)
    cj[name] = {{"arrived", c.arrived},
                {"done", c.done},
                {"rejected", c.rejected},
                {"cancelled", c.cancelled},
                {"failed", c.failed},
                {"slo_met", c.slo_met},
                {"slo_attainment", c.slo_attainment},
                {"latency", lat_json(c.latency)}};
  return j;
}

std::string format_table(const std::vector<run_metrics>& runs) {
  if (runs.empty()) return {};
  std::string out;
  const bool cmp = runs.size() > 1;
  out += fmt::format("{:<26}", "metric");
  for (const auto& r : runs) out += fmt::format(" {:>14}", r.policy.substr(0, 14));
  if (cmp)
    for (std::size_t i = 1; i < runs.size(); ++i) out += fmt::format(" {:>14}", "ratio " + std::to_string(i) + "/0");
  out += "\n";
  auto row = [&](const char* name, auto get, const char* f = "{:.3f}") {
    out += fmt::format("{:<26}", name);
    for (const auto& r : runs) out += fmt::format(" {:>14}", fmt::format(fmt::runtime(f), get(r)));
    if (cmp)
      for (std::size_t i = 1; i < runs.size(); ++i) {
        const double a = static_cast<double>(get(runs[0])), b = static_cast<double>(get(runs[i]));
        out += fmt::format(" {:>14}", a != 0 ? fmt::format("{:.2f}x", b / a) : std::string("-"));
      }
    out += "\n";
  };
  row(
      "arrived", [](auto& r) { return r.arrived; }, "{}");
  row(
      "done", [](auto& r) { return r.done; }, "{}");
  row(
      "rejected / failed", [](auto& r) { return r.rejected + r.failed; }, "{}");
  row(
      "unfinished", [](auto& r) { return r.unfinished; }, "{}");
  row(
      "throughput (req/s)", [](auto& r) { return r.throughput_rps; }, "{:.4f}");
  row(
      "goodput (req/s)", [](auto& r) { return r.goodput_rps; }, "{:.4f}");
  row("SLO attainment", [](auto& r) { return r.slo_attainment; });
  row(
      "SLO violations", [](auto& r) { return r.slo_violations; }, "{}");
  row("keep-up (2nd half)", [](auto& r) { return r.keep_up; });
  row(
      "latency mean (s)", [](auto& r) { return r.latency.mean_s; }, "{:.2f}");
  row(
      "latency p50 (s)", [](auto& r) { return r.latency.p50_s; }, "{:.2f}");
  row(
      "latency p95 (s)", [](auto& r) { return r.latency.p95_s; }, "{:.2f}");
  row(
      "latency p99 (s)", [](auto& r) { return r.latency.p99_s; }, "{:.2f}");
  row(
      "  queue mean (s)", [](auto& r) { return r.mean_queue_s; }, "{:.2f}");
  row(
      "  run mean (s)", [](auto& r) { return r.mean_run_s; }, "{:.2f}");
  row(
      "  reshard mean (s)", [](auto& r) { return r.mean_reshard_s; }, "{:.3f}");
  row("GPU busy fraction", [](auto& r) { return r.gpu_busy_fraction; });
  row(
      "regroupings", [](auto& r) { return r.regroupings; }, "{}");
  row(
      "reshard time (s)", [](auto& r) { return r.reshard_time_s; }, "{:.2f}");
  row(
      "groups formed", [](auto& r) { return r.groups_formed; }, "{}");
  row(
      "worker deaths", [](auto& r) { return r.worker_deaths; }, "{}");
  for (const auto& [name, c0] : runs[0].classes) {
    auto cls = [&name](const run_metrics& r) -> const class_metrics& {
      static const class_metrics none;
      auto it = r.classes.find(name);
      return it == r.classes.end() ? none : it->second;
    };
    const std::string a = "[" + name + "] SLO attainment", b = "[" + name + "] latency mean (s)",
                      c = "[" + name + "] latency p95 (s)";
    row(a.c_str(), [&](auto& r) { return cls(r).slo_attainment; });
    row(
        b.c_str(), [&](auto& r) { return cls(r).latency.mean_s; }, "{:.2f}");
    row(
        c.c_str(), [&](auto& r) { return cls(r).latency.p95_s; }, "{:.2f}");
  }
  return out;
}

}  // namespace gfdit::sim
