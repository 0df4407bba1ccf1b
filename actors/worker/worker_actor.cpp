// The worker shell: one per GPU. It says hello and beats on topic "workers", runs the tasks
// assigned to it on its backend, and the group's first member reports TaskDone to the
// scheduler. The `sim` backend waits the cost model's time (compressed by `speedup`); the `cpu`
// backend computes the DiT for real (cpu_backend.hpp), blocking the handler while it runs, so
// it wants one worker actor per process.
#include "actors/runtime/registry.hpp"
#include "actors/serving_graph/model_time.hpp"
#include "actors/serving_graph/shell_params.hpp"
#include "actors/worker/cpu_backend.hpp"
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
    if (auto r = ctx.params().declare<std::string>("backend", "sim", "sim | cpu",
                                                   [](const std::string& v) { return v == "sim" || v == "cpu" ? "" : "must be 'sim' or 'cpu'"; });
        !r)
      return r;
    if (auto r = ctx.params().declare<std::int64_t>("heartbeat_ms", 200); !r) return r;
    // cpu backend: every worker of the graph joins one World (same values everywhere).
    if (auto r = ctx.params().declare<std::string>("world_dir", "", "cpu: rendezvous directory (e.g. under /dev/shm)"); !r)
      return r;
    if (auto r = ctx.params().declare<std::int64_t>("world_size", 0, "cpu: number of workers"); !r) return r;
    if (auto r = ctx.params().declare<std::int64_t>("collective_timeout_ms", 30000, "cpu: a collective waiting longer fails the task",
                                                    [](const std::int64_t& v) { return v > 0 ? "" : "must be > 0"; });
        !r)
      return r;
    if (auto r = ctx.params().declare<std::int64_t>("weight_seed", 7, "cpu: seed of the DiT weights"); !r) return r;
    if (auto r = ctx.params().declare<std::string>("task_log", "", "cpu: append a line per task here (empty: off)"); !r)
      return r;
    auto costs = load_costs(ctx);
    if (!costs) return costs.err();
    costs_ = *costs;
    id_ = static_cast<std::int32_t>(ctx.params().get<std::int64_t>("id"));
    if (ctx.name() != names::worker(id_))
      return make_error(errc::invalid_argument, "a worker with id " + std::to_string(id_) +
                                                    " must be named '" + names::worker(id_) + "'");
    const double speedup = ctx.params().get<double>("speedup");
    backend_name_ = ctx.params().get<std::string>("backend");
    if (backend_name_ == "cpu") return configure_cpu(ctx, speedup);
    backend_ = std::make_unique<sim_backend>(id_, *costs_);
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
    (void)ctx.publish(names::workers_topic, msg::worker_hello{id_, "", "", backend_name_});
    ctx.every(std::chrono::milliseconds(ctx.params().get<std::int64_t>("heartbeat_ms")),
              [this, &ctx] { (void)ctx.publish(names::workers_topic, msg::worker_heartbeat{id_, ++beats_}); });
    return {};
  }

 private:
  result<void> configure_cpu(context& ctx, double speedup) {
    cpu_backend_config cfg;
    cfg.world_dir = ctx.params().get<std::string>("world_dir");
    cfg.world_size = static_cast<std::int32_t>(ctx.params().get<std::int64_t>("world_size"));
    cfg.rank = id_;
    cfg.collective_timeout = std::chrono::milliseconds(ctx.params().get<std::int64_t>("collective_timeout_ms"));
    cfg.weight_seed = static_cast<std::uint64_t>(ctx.params().get<std::int64_t>("weight_seed"));
    cfg.task_log = ctx.params().get<std::string>("task_log");
    // Report times on the graph's model clock (the scheduler's, from the same wall clock).
    auto now_us = [speedup] {
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
      return static_cast<std::int64_t>(static_cast<double>(ns) / 1000.0 * speedup);
    };
    auto be = cpu_backend::create(cfg, now_us);
    if (!be) return be.err();
    cpu_ = std::move(*be);
    ctx.on<msg::task_assign>([this, &ctx](const msg::task_assign& t, const envelope&) {
      auto report = cpu_->run(t);
      if (!report) return;
      if (!report->ok) ctx.log().warn("task {} of request {} failed: {}", t.task_id, t.request_id, report->error);
      if (auto r = ctx.send(names::scheduler, *report); !r) ctx.log().error("{}", r.err().what);
    });
    ctx.on<msg::reshard>([this, &ctx](const msg::reshard& m, const envelope&) {
      // A failure here surfaces as the task's failure on the new group (its collective times out).
      if (auto r = cpu_->on_reshard(m); !r) ctx.log().warn("reshard of request {}: {}", m.request_id, r.err().what);
    });
    ctx.subscribe<msg::request_done>(names::done_topic, [this](const msg::request_done& d, const envelope&) {
      cpu_->forget(d.request_id);
    });
    return {};
  }

  std::shared_ptr<const cost_model> costs_;
  std::unique_ptr<sim_backend> backend_;
  std::unique_ptr<cpu_backend> cpu_;
  std::string backend_name_ = "sim";
  std::int32_t id_ = 0;
  std::uint64_t beats_ = 0;
};

}  // namespace
}  // namespace gfdit

GFDIT_REGISTER_ACTOR(gfdit::worker_actor, "gfdit.worker");
