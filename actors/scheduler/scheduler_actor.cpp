// The scheduler shell: moves envelopes between the bus and scheduler_driver, which holds all
// of the scheduler's behaviour (and is what `gfdit replay --actor scheduler` re-drives).
// Admitted, task reports and cancellations come directed; worker hellos on topic "workers";
// group views and worker deaths on topic "membership".
#include "actors/runtime/registry.hpp"
#include "actors/scheduler/scheduler_driver.hpp"
#include "actors/serving_graph/model_time.hpp"
#include "actors/serving_graph/shell_params.hpp"

namespace gfdit {
namespace {

namespace names = serving_names;

class scheduler_actor : public actor {
 public:
  result<void> on_configure(context& ctx) override {
    if (auto r = declare_shell_params(ctx); !r) return r;
    if (auto r = ctx.params().declare<std::string>("policy", "edf-best-fit", "a built-in or plugin policy"); !r) return r;
    if (auto r = ctx.params().declare<std::int64_t>("chunk_steps", 4, "denoising steps per task",
                                                    [](const std::int64_t& v) { return v > 0 ? "" : "must be > 0"; });
        !r)
      return r;
    if (auto r = ctx.params().declare<std::int64_t>("tick_ms", 100); !r) return r;
    if (auto r = ctx.params().declare<std::int64_t>("gpus", 0, "workers in the graph (0: unknown), checked against the policy",
                                                    [](const std::int64_t& v) { return v >= 0 ? "" : "must be >= 0"; });
        !r)
      return r;
    auto costs = load_costs(ctx);
    if (!costs) return costs.err();
    scheduler_driver_config cfg;
    cfg.policy = ctx.params().get<std::string>("policy");
    cfg.core.chunk_steps = static_cast<std::int32_t>(ctx.params().get<std::int64_t>("chunk_steps"));
    cfg.speedup = ctx.params().get<double>("speedup");
    cfg.gpus = static_cast<std::int32_t>(ctx.params().get<std::int64_t>("gpus"));
    cfg.self = ctx.name();
    auto d = scheduler_driver::create(*costs, cfg);
    if (!d) return d.err();
    driver_ = std::move(*d);
    auto forward = [this, &ctx](const envelope& env) { send(ctx, driver_->feed(env)); };
    ctx.on_unhandled(forward);
    ctx.subscribe_raw(names::workers_topic, forward);
    ctx.subscribe_raw(names::membership_topic, forward);
    return {};
  }

  result<void> on_activate(context& ctx) override {
    ctx.every(std::chrono::milliseconds(ctx.params().get<std::int64_t>("tick_ms")),
              [this, &ctx] { send(ctx, {driver_->tick(++ticks_)}); });
    return {};
  }

 private:
  static void send(context& ctx, std::vector<outgoing> out) {
    for (auto& o : out)
      if (auto r = ctx.send_raw(o.kind, o.destination, o.type_id, o.version, std::move(o.payload), 0); !r)
        ctx.log().warn("{}", r.err().what);
  }

  std::unique_ptr<scheduler_driver> driver_;
  std::uint64_t ticks_ = 0;
};

}  // namespace
}  // namespace gfdit

GFDIT_REGISTER_ACTOR(gfdit::scheduler_actor, "gfdit.scheduler");
