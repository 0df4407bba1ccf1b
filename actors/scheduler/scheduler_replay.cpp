// The scheduler as a replayable core: scheduler_driver, built from the scheduler's parameters.
// Options (strings from the command line: --policy P, --option chunk_steps=5) override the
// parameters as recorded in the bag (a recorder with `parameters_of: scheduler`), which override
// the shell's defaults.
#include "actors/recorder/driver_core.hpp"
#include "actors/scheduler/scheduler_driver.hpp"

namespace gfdit {
namespace {

nlohmann::json state_of(const scheduler_driver& d) {
  const auto& c = d.core();
  nlohmann::json stats = nlohmann::json::object();
  for (const auto& [what, n] : c.stats().named()) stats[what] = n;
  nlohmann::json workers = nlohmann::json::array(), groups = nlohmann::json::array();
  for (const auto& [id, w] : c.workers())
    workers.push_back({{"id", id}, {"alive", w.alive}, {"busy", w.busy}, {"group", w.group_id}});
  for (const auto& [id, g] : c.groups())
    groups.push_back(
        {{"id", id}, {"members", g.members}, {"epoch", g.epoch}, {"busy", g.busy}, {"request", g.request_id}});
  nlohmann::json requests = nlohmann::json::array();
  for (const auto& [id, r] : c.requests())
    requests.push_back({{"id", id}, {"steps_done", r.steps_done}, {"steps_total", r.steps_total}});
  return {{"policy", std::string(c.current_policy().name())},
          {"stats", stats},
          {"workers", workers},
          {"groups", groups},
          {"requests", requests},
          {"invariants", c.check_invariants()}};
}

result<std::unique_ptr<replayable_core>> make_core(const replay_params& p) {
  if (auto r = check_replay_options(p, {"chunk_steps", "policy", "profiles", "speedup", "first_task_id"}); !r)
    return r.err();
  auto policy = replay_setting<std::string>(p, "policy", "edf-best-fit");
  auto chunk = replay_setting<std::int64_t>(p, "chunk_steps", 4);
  auto speedup = replay_setting<double>(p, "speedup", 1.0);
  auto profiles = replay_setting<std::string>(p, "profiles", "");
  auto first_task = replay_setting<std::int64_t>(p, "first_task_id", 1);
  if (!first_task) return first_task.err();
  if (!policy) return policy.err();
  if (!chunk) return chunk.err();
  if (!speedup) return speedup.err();
  if (!profiles) return profiles.err();
  if (*chunk <= 0 || *speedup <= 0)
    return make_error(errc::invalid_argument, "replay: chunk_steps and speedup must be > 0");
  auto costs = cost_model::load(*profiles);
  if (!costs) return costs.err();
  scheduler_driver_config cfg;
  cfg.policy = *policy;
  cfg.core.chunk_steps = static_cast<std::int32_t>(*chunk);
  cfg.core.first_task_id = static_cast<std::uint64_t>(*first_task);
  cfg.speedup = *speedup;
  cfg.self = p.actor;
  auto d = scheduler_driver::create(std::move(*costs), std::move(cfg));
  if (!d) return d.err();
  return std::unique_ptr<replayable_core>(
      std::make_unique<driver_core<scheduler_driver>>(std::move(*d), p.actor, state_of));
}

}  // namespace
}  // namespace gfdit

GFDIT_REGISTER_REPLAYABLE_CORE("scheduler", gfdit::make_core);
GFDIT_REGISTER_REPLAYABLE_CORE("gfdit.scheduler", gfdit::make_core);
