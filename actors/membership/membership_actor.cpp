// The membership shell: workers' hellos and heartbeats come on topic "workers", group changes
// from the scheduler; views and deaths go out on topic "membership". A periodic tick (a message
// to itself, so it is recorded and replays) finds silent workers. It also hosts the world hub
// (world_hub.hpp): workers' WorldJoins come as directed messages and each rank gets its
// WorldBlobs back the same way; the same tick expires rounds that never complete.
#include "actors/membership/membership_core.hpp"
#include "actors/membership/world_hub.hpp"
#include "actors/runtime/registry.hpp"
#include "actors/serving_graph/model_time.hpp"
#include "actors/serving_graph/shell_params.hpp"
#include "messages/system.hpp"

namespace gfdit {
namespace {

class membership_actor : public actor {
 public:
  result<void> on_configure(context& ctx) override {
    if (auto r = declare_shell_params(ctx); !r) return r;
    if (auto r = ctx.params().declare<std::int64_t>("heartbeat_timeout_ms", 1500); !r) return r;
    if (auto r = ctx.params().declare<std::int64_t>("tick_ms", 100); !r) return r;
    const double speedup = ctx.params().get<double>("speedup");
    // The timeout is wall time (a process's silence), expressed in model time for the core.
    core_ = membership_core({static_cast<std::int64_t>(
        ctx.params().get<std::int64_t>("heartbeat_timeout_ms") * 1000 * speedup)});
    auto emit = [&ctx](std::vector<membership_output> out) {
      for (auto& o : out)
        std::visit([&ctx](const auto& m) { (void)ctx.publish(serving_names::membership_topic, m); }, o);
    };
    ctx.subscribe<msg::worker_hello>(serving_names::workers_topic, [this, emit, speedup](const msg::worker_hello& m, const envelope& e) {
      emit(core_.on_hello(m, model_now_us(e, speedup)));
    });
    ctx.subscribe<msg::worker_heartbeat>(serving_names::workers_topic, [this, emit, speedup](const msg::worker_heartbeat& m, const envelope& e) {
      emit(core_.on_heartbeat(m, model_now_us(e, speedup)));
    });
    ctx.on<msg::form_group>([this, emit, speedup](const msg::form_group& m, const envelope& e) {
      emit(core_.on_form_group(m, model_now_us(e, speedup)));
    });
    ctx.on<msg::dissolve_group>([this, emit, speedup](const msg::dissolve_group& m, const envelope& e) {
      emit(core_.on_dissolve_group(m, model_now_us(e, speedup)));
    });
    // The hub's timeouts are the joiners' own (wall time), so it reads the stamp unscaled.
    auto answer = [&ctx](std::vector<world_hub_reply> out) {
      for (auto& o : out)
        if (auto r = ctx.send(o.to, o.blobs); !r) ctx.log().warn("world answer to '{}': {}", o.to, r.err().what);
    };
    ctx.on<msg::world_join>([this, answer](const msg::world_join& m, const envelope& e) {
      answer(hub_.on_join(m, e.sender, e.time.wall_ns / 1000));
    });
    ctx.on<msg::heartbeat>([this, emit, answer, speedup](const msg::heartbeat&, const envelope& e) {
      emit(core_.on_tick(model_now_us(e, speedup)));
      answer(hub_.on_tick(e.time.wall_ns / 1000));
    });
    return {};
  }
  result<void> on_activate(context& ctx) override {
    ctx.every(std::chrono::milliseconds(ctx.params().get<std::int64_t>("tick_ms")),
              [&ctx, n = std::uint64_t{0}]() mutable { (void)ctx.send(ctx.name(), msg::heartbeat{ctx.name(), ++n}); });
    return {};
  }

 private:
  membership_core core_;
  world_hub hub_;
};

}  // namespace
}  // namespace gfdit

GFDIT_REGISTER_ACTOR(gfdit::membership_actor, "gfdit.membership");
