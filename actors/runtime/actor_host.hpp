#pragma once
// Internal: binds one gfdit actor to a CAF 0.17 event-based actor. The CAF mailbox serialises
// every handler, timer and lifecycle transition of the actor, so none of them run concurrently.
#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "actors/runtime/actor_context.hpp"

namespace gfdit {

// Frames of one bus read for one actor, in order: one mailbox message instead of one each.
using envelope_batch = std::shared_ptr<const std::vector<envelope_ptr>>;

class actor_host final : public caf::event_based_actor {
 public:
  actor_host(caf::actor_config& cfg, router* r, std::string name, std::shared_ptr<actor> impl,
             std::shared_ptr<actor_stats> stats, nlohmann::json params, std::map<std::string, std::string> remaps = {},
             nlohmann::json globals = {})
      : caf::event_based_actor(cfg),
        ctx_(this, r, std::move(name), std::move(impl), std::move(stats), std::move(params), std::move(remaps),
             std::move(globals)) {}

  caf::behavior make_behavior() override {
    return {
        [this](const envelope_ptr& env) { ctx_.deliver(env); },
        [this](const envelope_batch& batch) {
          for (const auto& env : *batch) ctx_.deliver(env);
        },
        [this](tick_atom, timer_id id) { ctx_.fire(id); },
        [this](expire_atom, std::uint64_t correlation) { ctx_.expire(correlation); },
        [this](wake_atom, std::uint64_t id) { ctx_.wake(id); },
        [this](cycle_atom, std::int32_t t) -> std::string { return ctx_.apply(static_cast<transition>(t)); },
    };
  }

 private:
  actor_context ctx_;
};

}  // namespace gfdit

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gfdit::envelope_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gfdit::envelope_batch)
