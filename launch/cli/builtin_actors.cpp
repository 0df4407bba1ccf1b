// Actor types every `gfdit` binary knows: the ping-pong pair (a stock graph and the launch
// tests use them) and a relay that republishes one topic under another name.
#include <algorithm>

#include "actors/runtime/registry.hpp"
#include "examples/ping_pong/ping_pong_actors.hpp"

namespace gfdit {
namespace {

// The example pinger, plus a summary line when it shuts down: a launched graph's result.
class reporting_pinger final : public examples::pinger {
 public:
  void on_shutdown(context& ctx) override {
    auto rtts = rtts_us();
    if (rtts.empty()) return ctx.log().warn("ping-pong: no pong received");
    std::sort(rtts.begin(), rtts.end());
    ctx.log().info("ping-pong: {} round trips, median {:.1f} us, max {:.1f} us", rtts.size(), rtts[rtts.size() / 2],
                   rtts.back());
  }
};

// Every message on topic `in`, of any type, republished unchanged on topic `out`.
class relay final : public actor {
 public:
  result<void> on_configure(context& ctx) override {
    if (auto r = ctx.params().declare<std::string>("in", "in", "topic to read"); !r) return r;
    if (auto r = ctx.params().declare<std::string>("out", "out", "topic to republish on"); !r) return r;
    const auto out = ctx.params().get<std::string>("out");
    ctx.subscribe_raw(ctx.params().get<std::string>("in"), [&ctx, out](const envelope& env) {
      (void)ctx.send_raw(route::topic, out, env.type_id, env.version, env.payload, 0);
    });
    return {};
  }
};

}  // namespace
}  // namespace gfdit

GFDIT_REGISTER_ACTOR(gfdit::reporting_pinger, "example.pinger");
GFDIT_REGISTER_ACTOR(gfdit::examples::ponger, "example.ponger");
GFDIT_REGISTER_ACTOR(gfdit::relay, "gfdit.relay");
