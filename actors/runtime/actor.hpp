#pragma once
// The base of every actor: lifecycle hooks. Handlers, timers and parameters are declared on the
// context, usually in on_configure. An actor's handlers never run concurrently.
//
//   class ponger : public gfdit::actor {
//     gfdit::result<void> on_configure(gfdit::context& ctx) override {
//       ctx.subscribe<gfdit::msg::ping>("ping", [&ctx](const auto& p, const auto&) {
//         ctx.publish("pong", gfdit::msg::pong{p.count, p.data});
//       });
//       return {};
//     }
//   };
//   GFDIT_REGISTER_ACTOR(ponger, "example.ponger")
#include "common/result.hpp"

namespace gfdit {

class context;

class actor {
 public:
  virtual ~actor() = default;
  // unconfigured -> inactive: declare parameters, handlers and timers.
  virtual result<void> on_configure(context&) { return {}; }
  // inactive -> active: messages held while inactive are delivered after this.
  virtual result<void> on_activate(context&) { return {}; }
  // active -> inactive.
  virtual result<void> on_deactivate(context&) { return {}; }
  // -> finalized: release what the actor holds.
  virtual void on_shutdown(context&) {}
};

}  // namespace gfdit
