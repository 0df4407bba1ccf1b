// The scheduler as a replayable core: a thin wrapper over scheduler_driver (all behaviour is
// there), building each output envelope from an `outgoing` exactly as scheduler_actor's send()
// does. Inputs are what the shell handles: directed messages (its own system.heartbeat ticks
// included) and topic messages on "workers" and "membership".
//
// Options (strings from the command line: --policy P, --option chunk_steps=5) override the
// scheduler's parameters as recorded in the bag (a recorder with `parameters_of: scheduler`),
// which override the shell's defaults: policy, chunk_steps, speedup, profiles.
#include "actors/scheduler/scheduler_replay.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <string_view>

#include "actors/recorder/replay.hpp"
#include "actors/scheduler/scheduler_driver.hpp"
#include "actors/serving_graph/model_time.hpp"

namespace gfdit {
namespace {

// The options the scheduler's core understands (anything else on the command line is a typo).
constexpr std::array<std::string_view, 4> option_names = {"chunk_steps", "policy", "profiles", "speedup"};

// The value of `key`: the command line's option, else the recorded parameter, else `fallback`.
// A string (the command line's) must be a number as a whole where a number is wanted.
template <class T>
result<T> setting(const replay_params& p, const std::string& key, T fallback) {
  const nlohmann::json* v = nullptr;
  if (p.options.contains(key)) v = &p.options[key];
  else if (p.parameters.contains(key)) v = &p.parameters[key];
  if (!v) return fallback;
  auto bad = [&](const char* what) {
    return make_error(errc::invalid_argument, "replay option '" + key + "' = " + v->dump() + ": " + what);
  };
  if (v->is_string()) {
    const auto& s = v->get_ref<const std::string&>();
    if constexpr (std::is_same_v<T, std::string>) {
      return s;
    } else {
      T out{};
      const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
      if (ec != std::errc() || end != s.data() + s.size())
        return bad(std::is_floating_point_v<T> ? "not a number" : "not an integer");
      return out;
    }
  }
  try {
    return v->get<T>();
  } catch (const std::exception&) {
    return bad(std::is_same_v<T, std::string> ? "not a string" : "not a number");
  }
}

class scheduler_replay_core final : public replayable_core {
 public:
  scheduler_replay_core(std::unique_ptr<scheduler_driver> d, std::string self)
      : driver_(std::move(d)), self_(std::move(self)) {}

  std::vector<envelope> feed(const envelope& in) override {
    std::vector<envelope> out;
    for (auto& o : driver_->feed(in)) {
      envelope e;
      e.kind = o.kind;
      e.destination = std::move(o.destination);
      e.type_id = o.type_id;
      e.version = o.version;
      e.payload = std::move(o.payload);
      e.sender = self_;
      e.correlation = 0;  // the shell sends with correlation 0
      out.push_back(std::move(e));
    }
    return out;
  }

  std::vector<std::string> topics() const override {
    return {serving_names::workers_topic, serving_names::membership_topic};
  }

  nlohmann::json state() const override {
    const auto& c = driver_->core();
    const auto& s = c.stats();
    nlohmann::json workers = nlohmann::json::array(), groups = nlohmann::json::array();
    for (const auto& [id, w] : c.workers())
      workers.push_back({{"id", id}, {"alive", w.alive}, {"busy", w.busy}, {"group", w.group_id}});
    for (const auto& [id, g] : c.groups())
      groups.push_back({{"id", id}, {"members", g.members}, {"epoch", g.epoch}, {"busy", g.busy}, {"request", g.request_id}});
    nlohmann::json requests = nlohmann::json::array();
    for (const auto& [id, r] : c.requests())
      requests.push_back({{"id", id}, {"steps_done", r.steps_done}, {"steps_total", r.steps_total}});
    return {{"policy", std::string(c.current_policy().name())},
            {"stats", {{"policy_calls", s.policy_calls}, {"decisions_applied", s.decisions_applied},
                       {"decisions_invalid", s.decisions_invalid}, {"groups_formed", s.groups_formed},
                       {"groups_dissolved", s.groups_dissolved}, {"reshards", s.reshards},
                       {"preemptions", s.preemptions}, {"tasks_dispatched", s.tasks_dispatched},
                       {"tasks_failed", s.tasks_failed}, {"stale_reports", s.stale_reports}}},
            {"workers", workers}, {"groups", groups}, {"requests", requests},
            {"invariants", c.check_invariants()}};
  }

 private:
  std::unique_ptr<scheduler_driver> driver_;
  std::string self_;
};

result<std::unique_ptr<replayable_core>> make_scheduler_core(const replay_params& p) {
  for (const auto& [key, value] : p.options.items())
    if (std::find(option_names.begin(), option_names.end(), key) == option_names.end()) {
      std::string names;
      for (auto n : option_names) names += (names.empty() ? "" : ", ") + std::string(n);
      return make_error(errc::invalid_argument, "replay: the scheduler has no option '" + key + "' (it has " + names + ")");
    }
  scheduler_driver_config cfg;  // the shell's defaults, where neither side says otherwise
  auto policy = setting<std::string>(p, "policy", "edf-best-fit");
  auto chunk = setting<std::int64_t>(p, "chunk_steps", 4);
  auto speedup = setting<double>(p, "speedup", 1.0);
  auto profiles = setting<std::string>(p, "profiles", "");
  if (!policy) return policy.err();
  if (!chunk) return chunk.err();
  if (!speedup) return speedup.err();
  if (!profiles) return profiles.err();
  if (*chunk <= 0 || *speedup <= 0)
    return make_error(errc::invalid_argument, "replay: chunk_steps and speedup must be > 0");
  cfg.policy = *policy;
  cfg.core.chunk_steps = static_cast<std::int32_t>(*chunk);
  cfg.speedup = *speedup;
  cfg.self = p.actor;
  std::shared_ptr<const cost_model> costs(&cost_model::stock(), [](const cost_model*) {});
  if (!profiles->empty()) {
    auto m = cost_model::from_file(*profiles);
    if (!m) return m.err();
    costs = std::make_shared<cost_model>(std::move(*m));
  }
  auto d = scheduler_driver::create(std::move(costs), std::move(cfg));
  if (!d) return d.err();
  return std::unique_ptr<replayable_core>(std::make_unique<scheduler_replay_core>(std::move(*d), p.actor));
}

}  // namespace

std::vector<std::string> serving_replay_cores() { return {"gfdit.scheduler", "scheduler"}; }

}  // namespace gfdit

GFDIT_REGISTER_REPLAYABLE_CORE("scheduler", gfdit::make_scheduler_core);
GFDIT_REGISTER_REPLAYABLE_CORE("gfdit.scheduler", gfdit::make_scheduler_core);
