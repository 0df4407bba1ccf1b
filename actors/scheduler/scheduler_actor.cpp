// The scheduler shell: binds scheduler_core (and its policy) to the graph. Admitted requests,
// task reports and cancellations come directed; worker hellos on topic "workers"; group views
// and worker deaths on topic "membership". Tasks and reshards go to the workers involved, group
// changes to membership, and every request's one RequestDone out on topic "serving.done".
#include <set>

#include "actors/runtime/registry.hpp"
#include "actors/scheduler/scheduler_core.hpp"
#include "actors/serving_graph/model_time.hpp"
#include "actors/serving_graph/shell_params.hpp"
#include "messages/system.hpp"

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
    auto costs = load_costs(ctx);
    if (!costs) return costs.err();
    costs_ = *costs;
    auto pol = make_policy(ctx.params().get<std::string>("policy"));
    if (!pol) return pol.err();
    scheduler_config cfg;
    cfg.chunk_steps = static_cast<std::int32_t>(ctx.params().get<std::int64_t>("chunk_steps"));
    core_ = std::make_unique<scheduler_core>(*costs_, std::move(*pol), cfg);
    const double speedup = ctx.params().get<double>("speedup");

    auto on = [this, &ctx, speedup](auto fn) {
      return [this, &ctx, speedup, fn](const auto& m, const envelope& e) {
        emit(ctx, (core_.get()->*fn)(m, model_now_us(e, speedup)));
      };
    };
    ctx.on<msg::admitted>(on(&scheduler_core::on_admitted));
    ctx.on<msg::task_done>(on(&scheduler_core::on_task_done));
    ctx.on<msg::cancel>(on(&scheduler_core::on_cancel));
    ctx.subscribe<msg::worker_hello>(names::workers_topic, on(&scheduler_core::on_worker_hello));
    ctx.subscribe<msg::worker_down>(names::membership_topic, on(&scheduler_core::on_worker_down));
    ctx.subscribe<msg::group_view>(names::membership_topic, on(&scheduler_core::on_group_view));
    // Time passing is a message to itself, so the tick is recorded and a replay sees it.
    ctx.on<msg::heartbeat>([this, &ctx, speedup](const msg::heartbeat&, const envelope& e) {
      emit(ctx, core_->on_tick(model_now_us(e, speedup)));
    });
    return {};
  }

  result<void> on_activate(context& ctx) override {
    ctx.every(std::chrono::milliseconds(ctx.params().get<std::int64_t>("tick_ms")),
              [&ctx, n = std::uint64_t{0}]() mutable { (void)ctx.send(ctx.name(), msg::heartbeat{ctx.name(), ++n}); });
    return {};
  }

 private:
  void emit(context& ctx, const std::vector<scheduler_output>& out) {
    for (const auto& o : out) {
      std::visit([&](const auto& m) { send(ctx, m); }, o);
    }
  }
  static void to_workers(context& ctx, const std::set<std::int32_t>& workers, const auto& m) {
    for (auto w : workers)
      if (auto r = ctx.send(names::worker(w), m); !r) ctx.log().warn("{}", r.err().what);
  }
  void send(context& ctx, const msg::task_assign& t) {
    to_workers(ctx, {t.members.begin(), t.members.end()}, t);
  }
  void send(context& ctx, const msg::reshard& r) {
    std::set<std::int32_t> ws(r.from.holders.begin(), r.from.holders.end());
    ws.insert(r.to_members.begin(), r.to_members.end());
    to_workers(ctx, ws, r);
  }
  void send(context& ctx, const msg::preempt& p) { (void)ctx.publish(names::preempt_topic, p); }
  void send(context& ctx, const msg::form_group& f) { (void)ctx.send(names::membership, f); }
  void send(context& ctx, const msg::dissolve_group& d) { (void)ctx.send(names::membership, d); }
  void send(context& ctx, const msg::request_done& d) { (void)ctx.publish(names::done_topic, d); }

  std::shared_ptr<const cost_model> costs_;
  std::unique_ptr<scheduler_core> core_;
};

}  // namespace
}  // namespace gfdit

GFDIT_REGISTER_ACTOR(gfdit::scheduler_actor, "gfdit.scheduler");
