// Membership as a replayable core: membership_driver, built from membership's parameters.
// Options (--option heartbeat_timeout_ms=500) override the parameters as recorded in the bag (a
// recorder with `parameters_of: membership`), which override the shell's defaults.
#include "actors/membership/membership_driver.hpp"
#include "actors/recorder/driver_core.hpp"

namespace gfdit {
namespace {

nlohmann::json state_of(const membership_driver& d) {
  const auto& c = d.core();
  nlohmann::json workers = nlohmann::json::array(), groups = nlohmann::json::array();
  for (const auto& [id, w] : c.workers())
    workers.push_back({{"id", id}, {"alive", w.alive}, {"last_seen_us", w.last_seen_us}, {"group", w.group_id}});
  for (const auto& [id, g] : c.groups())
    groups.push_back({{"id", id}, {"members", g.members}, {"epoch", g.epoch}, {"active", g.active}});
  return {{"workers", workers}, {"groups", groups}, {"refused_forms", c.refused_forms()}};
}

result<std::unique_ptr<replayable_core>> make_core(const replay_params& p) {
  if (auto r = check_replay_options(p, {"heartbeat_timeout_ms", "speedup"}); !r) return r.err();
  auto timeout_ms = replay_setting<std::int64_t>(p, "heartbeat_timeout_ms", 1500);
  auto speedup = replay_setting<double>(p, "speedup", 1.0);
  if (!timeout_ms) return timeout_ms.err();
  if (!speedup) return speedup.err();
  if (*speedup <= 0) return make_error(errc::invalid_argument, "replay: speedup must be > 0");
  membership_driver_config cfg;
  cfg.speedup = *speedup;
  // As the shell computes it: wall time, expressed in model time.
  cfg.core.heartbeat_timeout_us = static_cast<std::int64_t>(*timeout_ms * 1000 * *speedup);
  cfg.self = p.actor;
  return std::unique_ptr<replayable_core>(std::make_unique<driver_core<membership_driver>>(
      std::make_unique<membership_driver>(std::move(cfg)), p.actor, state_of));
}

}  // namespace
}  // namespace gfdit

GFDIT_REGISTER_REPLAYABLE_CORE("membership", gfdit::make_core);
GFDIT_REGISTER_REPLAYABLE_CORE("gfdit.membership", gfdit::make_core);
