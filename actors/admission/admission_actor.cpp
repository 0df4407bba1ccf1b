// The admission shell: its parameters, and admission_driver hosted by driver_actor (which moves
// envelopes between the bus and the driver, where all routing lives).
#include "actors/admission/admission_driver.hpp"
#include "actors/runtime/driver_actor.hpp"
#include "actors/runtime/param_checks.hpp"
#include "actors/runtime/registry.hpp"
#include "actors/serving/shell_params.hpp"

namespace gfdit {
namespace {

result<std::unique_ptr<admission_driver>> configure(context& ctx) {
  if (auto r = declare_shell_params(ctx); !r) return r.err();
  if (auto r = ctx.params().declare<std::int64_t>("max_outstanding", 1024, "admitted, unfinished requests",
                                                  checks::above<std::int64_t>(0));
      !r)
    return r.err();
  if (auto r = ctx.params().declare<std::int64_t>("gpus", 1, "for retry-after estimates"); !r) return r.err();
  if (auto r = ctx.params().declare<bool>("reject_infeasible", true); !r) return r.err();
  auto costs = load_costs(ctx);
  if (!costs) return costs.err();
  admission_driver_config cfg;
  cfg.core.max_outstanding = static_cast<std::size_t>(ctx.params().get<std::int64_t>("max_outstanding"));
  cfg.core.gpus = static_cast<std::int32_t>(ctx.params().get<std::int64_t>("gpus"));
  cfg.core.reject_infeasible = ctx.params().get<bool>("reject_infeasible");
  cfg.speedup = ctx.params().get<double>("speedup");
  return std::make_unique<admission_driver>(std::move(*costs), cfg);
}

using admission_actor = driver_actor<admission_driver, configure>;

}  // namespace
}  // namespace gfdit

GFDIT_REGISTER_ACTOR(gfdit::admission_actor, "gfdit.admission");
