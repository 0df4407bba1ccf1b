// The membership shell: its parameters, and membership_driver hosted by driver_actor (which
// moves envelopes between the bus and the driver, where all routing lives, and sends the
// driver's tick every `tick_ms`).
#include "actors/membership/membership_driver.hpp"
#include "actors/runtime/driver_actor.hpp"
#include "actors/runtime/registry.hpp"
#include "actors/serving/shell_params.hpp"

namespace gfdit {
namespace {

result<std::unique_ptr<membership_driver>> configure(context& ctx) {
  if (auto r = declare_shell_params(ctx); !r) return r.err();
  if (auto r = ctx.params().declare<std::int64_t>("heartbeat_timeout_ms", 1500); !r) return r.err();
  membership_driver_config cfg;
  cfg.speedup = ctx.params().get<double>("speedup");
  // The timeout is wall time (a process's silence), expressed in model time for the core.
  cfg.core.heartbeat_timeout_us =
      static_cast<std::int64_t>(ctx.params().get<std::int64_t>("heartbeat_timeout_ms") * 1000 * cfg.speedup);
  cfg.self = ctx.name();
  return std::make_unique<membership_driver>(std::move(cfg));
}

using membership_actor = driver_actor<membership_driver, configure>;

}  // namespace
}  // namespace gfdit

GFDIT_REGISTER_ACTOR(gfdit::membership_actor, "gfdit.membership");
