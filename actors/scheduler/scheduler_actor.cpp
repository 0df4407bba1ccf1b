// The scheduler shell: its parameters, and scheduler_driver hosted by driver_actor (which moves
// envelopes between the bus and the driver, where all routing lives, and sends the driver's
// tick every `tick_ms`).
#include "actors/runtime/driver_actor.hpp"
#include "actors/runtime/param_checks.hpp"
#include "actors/runtime/registry.hpp"
#include "actors/scheduler/scheduler_driver.hpp"
#include "actors/serving/shell_params.hpp"

namespace gfdit {
namespace {

result<std::unique_ptr<scheduler_driver>> configure(context& ctx) {
  if (auto r = declare_shell_params(ctx); !r) return r.err();
  if (auto r = ctx.params().declare<std::string>("policy", "edf-best-fit", "a built-in or plugin policy"); !r)
    return r.err();
  if (auto r = ctx.params().declare<std::int64_t>("chunk_steps", 4, "denoising steps per task",
                                                  checks::above<std::int64_t>(0));
      !r)
    return r.err();
  if (auto r =
          ctx.params().declare<std::int64_t>("gpus", 0, "workers in the graph (0: unknown), checked against the policy",
                                             checks::at_least<std::int64_t>(0));
      !r)
    return r.err();
  auto costs = load_costs(ctx);
  if (!costs) return costs.err();
  scheduler_driver_config cfg;
  cfg.policy = ctx.params().get<std::string>("policy");
  cfg.core.chunk_steps = static_cast<std::int32_t>(ctx.params().get<std::int64_t>("chunk_steps"));
  cfg.speedup = ctx.params().get<double>("speedup");
  cfg.gpus = static_cast<std::int32_t>(ctx.params().get<std::int64_t>("gpus"));
  cfg.self = ctx.name();
  return scheduler_driver::create(std::move(*costs), cfg);
}

using scheduler_actor = driver_actor<scheduler_driver, configure>;

}  // namespace
}  // namespace gfdit

GFDIT_REGISTER_ACTOR(gfdit::scheduler_actor, "gfdit.scheduler");
