// custom.counter: counts the messages on one topic, reports the count on `counts` every
// `report_ms` (as system.heartbeat), and asks its process to stop once it has seen `expect`
// messages (0: never), so a graph can end by itself.
#include <cstdint>
#include <string>

#include "actors/runtime/context.hpp"
#include "actors/runtime/registry.hpp"
#include "messages/system.hpp"

namespace counter_example {

class counter final : public gfdit::actor {
 public:
  gfdit::result<void> on_configure(gfdit::context& ctx) override {
    auto& p = ctx.params();
    if (auto r = p.declare<std::string>("topic", "pong", "topic to count"); !r) return r;
    if (auto r = p.declare<std::int64_t>("expect", 0, "stop after this many messages (0: never)",
                                         [](const std::int64_t& v) { return v >= 0 ? "" : "must be >= 0"; });
        !r)
      return r;
    if (auto r = p.declare<std::int64_t>("report_ms", 500, "how often to publish the count",
                                         [](const std::int64_t& v) { return v > 0 ? "" : "must be > 0"; });
        !r)
      return r;
    // Every message type counts: a raw subscription does not decode.
    ctx.subscribe_raw(p.get<std::string>("topic"), [this, &ctx](const gfdit::envelope&) {
      ++seen_;
      const auto expect = ctx.params().get<std::int64_t>("expect");
      if (expect > 0 && seen_ == static_cast<std::uint64_t>(expect)) {
        ctx.log().info("counter: saw {} message(s) on '{}', done", seen_, ctx.params().get<std::string>("topic"));
        ctx.request_stop();
      }
    });
    return {};
  }
  gfdit::result<void> on_activate(gfdit::context& ctx) override {
    ctx.every(std::chrono::milliseconds(ctx.params().get<std::int64_t>("report_ms")), [this, &ctx] {
      (void)ctx.publish("counts", gfdit::msg::heartbeat{ctx.name(), seen_});
    });
    return {};
  }

 private:
  std::uint64_t seen_ = 0;
};

}  // namespace counter_example

GFDIT_REGISTER_ACTOR(counter_example::counter, "custom.counter");
