// The worker shell: one per GPU. It says hello and beats on topic "workers", runs the tasks
// assigned to it on its backend, and the group's first member reports TaskDone to the
// scheduler. The `sim` backend waits the cost model's time (compressed by `speedup`).
#include "actors/runtime/registry.hpp"
#include "actors/serving_graph/model_time.hpp"
#include "actors/serving_graph/shell_params.hpp"
#include "actors/worker/sim_backend.hpp"
#include "messages/membership.hpp"

namespace gfdit {
namespace {

namespace names = serving_names;

class worker_actor : public actor {
 public:
  result<void> on_configure(context& ctx) override {
    if (auto r = declare_shell_params(ctx); !r) return r;
    if (auto r = ctx.params().declare<std::int64_t>("id", 0, "rank in the world",
                                                    [](const std::int64_t& v) { return v >= 0 ? "" : "must be >= 0"; });
        !r)
      return r;
    if (auto r = ctx.params().declare<std::string>("backend", "sim", "sim",
                                                   [](const std::string& v) { return v == "sim" ? "" : "only 'sim' is served by this shell"; });
        !r)
      return r;
    if (auto r = ctx.params().declare<std::int64_t>("heartbeat_ms", 200); !r) return r;
    auto costs = load_costs(ctx);
    if (!costs) return costs.err();
    costs_ = *costs;
    id_ = static_cast<std::int32_t>(ctx.params().get<std::int64_t>("id"));
    if (ctx.name() != names::worker(id_))
      return make_error(errc::invalid_argument, "a worker with id " + std::to_string(id_) +
                                                    " must be named '" + names::worker(id_) + "'");
    backend_ = std::make_unique<sim_backend>(id_, *costs_);
    const double speedup = ctx.params().get<double>("speedup");
    ctx.on<msg::task_assign>([this, &ctx, speedup](const msg::task_assign& t, const envelope& e) {
      const auto now = model_now_us(e, speedup);
      auto run = backend_->start(t, now, true);
      if (!run.report) return;  // another member reports
      ctx.after(wall_delay(run.end_us - now, speedup), [&ctx, report = *run.report] {
        if (auto r = ctx.send(names::scheduler, report); !r) ctx.log().error("{}", r.err().what);
      });
    });
    // The sim backend charges a reshard inside the task that needs it.
    ctx.on<msg::reshard>([](const msg::reshard&, const envelope&) {});
    return {};
  }

  result<void> on_activate(context& ctx) override {
    (void)ctx.publish(names::workers_topic, msg::worker_hello{id_, "", "", "sim"});
    ctx.every(std::chrono::milliseconds(ctx.params().get<std::int64_t>("heartbeat_ms")),
              [this, &ctx] { (void)ctx.publish(names::workers_topic, msg::worker_heartbeat{id_, ++beats_}); });
    return {};
  }

 private:
  std::shared_ptr<const cost_model> costs_;
  std::unique_ptr<sim_backend> backend_;
  std::int32_t id_ = 0;
  std::uint64_t beats_ = 0;
};

}  // namespace
}  // namespace gfdit

GFDIT_REGISTER_ACTOR(gfdit::worker_actor, "gfdit.worker");
