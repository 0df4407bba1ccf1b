// Admission as a replayable core: admission_driver, built from admission's parameters.
// Options (--option max_outstanding=8) override the parameters as recorded in the bag (a
// recorder with `parameters_of: admission`), which override the shell's defaults.
#include "actors/admission/admission_driver.hpp"
#include "actors/recorder/driver_core.hpp"

namespace gfdit {
namespace {

nlohmann::json state_of(const admission_driver& d) {
  const auto& c = d.core();
  return {{"outstanding", c.outstanding()}, {"admitted", c.admitted_count()}, {"rejected", c.rejected_count()}};
}

result<std::unique_ptr<replayable_core>> make_core(const replay_params& p) {
  if (auto r = check_replay_options(p, {"gpus", "max_outstanding", "profiles", "reject_infeasible", "speedup"}); !r)
    return r.err();
  auto gpus = replay_setting<std::int64_t>(p, "gpus", 1);
  auto max_outstanding = replay_setting<std::int64_t>(p, "max_outstanding", 1024);
  auto profiles = replay_setting<std::string>(p, "profiles", "");
  auto reject_infeasible = replay_setting<bool>(p, "reject_infeasible", true);
  auto speedup = replay_setting<double>(p, "speedup", 1.0);
  if (!gpus) return gpus.err();
  if (!max_outstanding) return max_outstanding.err();
  if (!profiles) return profiles.err();
  if (!reject_infeasible) return reject_infeasible.err();
  if (!speedup) return speedup.err();
  if (*max_outstanding <= 0 || *speedup <= 0)
    return make_error(errc::invalid_argument, "replay: max_outstanding and speedup must be > 0");
  auto costs = cost_model::load(*profiles);
  if (!costs) return costs.err();
  admission_driver_config cfg;
  cfg.core.max_outstanding = static_cast<std::size_t>(*max_outstanding);
  cfg.core.gpus = static_cast<std::int32_t>(*gpus);
  cfg.core.reject_infeasible = *reject_infeasible;
  cfg.speedup = *speedup;
  return std::unique_ptr<replayable_core>(std::make_unique<driver_core<admission_driver>>(
      std::make_unique<admission_driver>(std::move(*costs), cfg), p.actor, state_of));
}

}  // namespace
}  // namespace gfdit

GFDIT_REGISTER_REPLAYABLE_CORE("admission", gfdit::make_core);
GFDIT_REGISTER_REPLAYABLE_CORE("gfdit.admission", gfdit::make_core);
