#pragma once
// One shell for every driver. A driver holds all of an actor's message-level behaviour: feed()
// takes an inbound message (inbound.hpp: here an envelope, decoded once by the driver) and
// returns the addressed messages it causes (outgoing.hpp, encoded here); topics() names
// the topics it listens on. This shell only moves envelopes between the bus and the driver:
// every directed message the runtime does not serve itself and every message on those topics
// goes to feed(), and what comes back is sent. A driver with `tick(n)` gets that message sent
// to itself every `tick_ms`, so that time passing is a recorded message (and replays).
//
// `Configure` declares the actor's parameters and builds its driver:
//   result<std::unique_ptr<Driver>> configure(context& ctx);
//   using my_actor = driver_actor<my_driver, configure>;
//   GFDIT_REGISTER_ACTOR(my_actor, "my.actor");
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "actors/runtime/actor.hpp"
#include "actors/runtime/context.hpp"
#include "actors/runtime/inbound.hpp"
#include "actors/runtime/outgoing.hpp"

namespace gfdit {

template <class Driver, result<std::unique_ptr<Driver>> (*Configure)(context&)>
class driver_actor : public actor {
  static constexpr bool ticks = requires(const Driver& d) { d.tick(std::uint64_t{1}); };
  static constexpr bool measured = requires(const Driver& d, const std::string& n) { d.metrics_text(n); };

 public:
  result<void> on_configure(context& ctx) override {
    auto d = Configure(ctx);
    if (!d) return d.err();
    if constexpr (ticks)
      if (auto r = ctx.params().declare<std::int64_t>("tick_ms", 100); !r) return r;
    driver_ = std::move(*d);
    auto feed = [this, &ctx](const envelope& env) {
      const inbound in(env);
      auto out = driver_->feed(in);
      handled(ctx, in, out);
      send(ctx, out);
    };
    ctx.on_unhandled(feed);
    for (const auto& topic : driver_->topics()) ctx.subscribe_raw(topic, feed);
    return {};
  }

  result<void> on_activate(context& ctx) override {
    if constexpr (ticks)
      ctx.every(std::chrono::milliseconds(ctx.params().get<std::int64_t>("tick_ms")),
                [this, &ctx] { send(ctx, {driver_->tick(++ticks_)}); });
    // A driver with `metrics_text(actor)`: a snapshot every second (the node serves the latest).
    if constexpr (measured) {
      ctx.set_metrics(driver_->metrics_text(ctx.name()));
      ctx.every(std::chrono::seconds(1), [this, &ctx] { ctx.set_metrics(driver_->metrics_text(ctx.name())); });
    }
    return {};
  }

 protected:
  // For a shell that adds what a driver must not do (I/O: admission's journal): sees every
  // message fed and what it caused, before any of that is sent.
  virtual void handled(context&, const inbound&, const std::vector<outgoing>&) {}
  Driver& driver() { return *driver_; }

 private:
  static void send(context& ctx, const std::vector<outgoing>& out) {
    for (const auto& o : out)
      if (auto r = ctx.send_raw(o.kind, o.destination, o.message.type_id(), o.message.version(), o.message.bytes(), 0);
          !r)
        ctx.log().warn("{}", r.err().what);
  }

  std::unique_ptr<Driver> driver_;
  std::uint64_t ticks_ = 0;
};

}  // namespace gfdit
