#pragma once
// The two actors of the ping-pong example. The pinger publishes `ping` every `period_ms` and
// measures the round trip from the `pong` that answers it; the ponger answers each ping.
#include <chrono>
#include <cstdint>
#include <vector>

#include "actors/runtime/actor.hpp"
#include "actors/runtime/context.hpp"
#include "messages/example.hpp"

namespace gfdit::examples {

class ponger : public actor {
 public:
  result<void> on_configure(context& ctx) override {
    ctx.subscribe<msg::ping>("ping", [&ctx](const msg::ping& p, const envelope&) {
      (void)ctx.publish("pong", msg::pong{p.count, p.data});
    });
    return {};
  }
};

class pinger : public actor {
 public:
  explicit pinger(std::int64_t count = 10) : default_count_(count) {}

  result<void> on_configure(context& ctx) override {
    if (auto r = ctx.params().declare<std::int64_t>("count", default_count_, "pings to send",
                                                    [](const std::int64_t& v) { return v > 0 ? "" : "must be > 0"; });
        !r)
      return r;
    if (auto r = ctx.params().declare<std::int64_t>("period_ms", 20, "time between pings",
                                                    [](const std::int64_t& v) { return v >= 0 ? "" : "must be >= 0"; });
        !r)
      return r;
    // Both act while running: `count` is read on every tick and pong, a new `period_ms`
    // restarts the timer.
    ctx.params().settable("count");
    ctx.params().watch("period_ms", [this, &ctx](const nlohmann::json&) {
      if (timer_ == 0) return;  // not active yet: on_activate reads it
      ctx.cancel(timer_);
      start_timer(ctx);
    });
    ctx.subscribe<msg::pong>("pong", [this, &ctx](const msg::pong& p, const envelope&) {
      const auto rtt = std::chrono::steady_clock::now() - sent_at_;
      rtts_us_.push_back(std::chrono::duration<double, std::micro>(rtt).count());
      ctx.log().info("pong {} after {:.1f} us", p.count, rtts_us_.back());
      if (static_cast<std::int64_t>(rtts_us_.size()) >= ctx.params().get<std::int64_t>("count")) ctx.request_stop();
    });
    return {};
  }
  result<void> on_activate(context& ctx) override {
    start_timer(ctx);
    return {};
  }
  const std::vector<double>& rtts_us() const { return rtts_us_; }

 private:
  void start_timer(context& ctx) {
    const auto period = std::chrono::milliseconds(ctx.params().get<std::int64_t>("period_ms"));
    timer_ = ctx.every(period, [this, &ctx] {
      if (sent_ >= ctx.params().get<std::int64_t>("count")) return ctx.cancel(timer_);
      sent_at_ = std::chrono::steady_clock::now();
      (void)ctx.publish("ping", msg::ping{static_cast<std::uint64_t>(++sent_), "hello"});
    });
  }

  std::int64_t default_count_;
  std::int64_t sent_ = 0;
  timer_id timer_ = 0;
  std::chrono::steady_clock::time_point sent_at_;
  std::vector<double> rtts_us_;
};

}  // namespace gfdit::examples
