#pragma once
// Internal: how a hosted actor's context reaches the rest of the graph. The node implements it;
// actors never see it.
#include <string>

#include "actors/runtime/tap.hpp"
#include "common/result.hpp"
#include "messages/envelope.hpp"

namespace gfdit {

class router {
 public:
  virtual ~router() = default;
  // Delivers locally or hands to the bus. Fails at once only when no actor has that name.
  virtual result<void> route(envelope&& env) = 0;
  virtual void subscribed(const std::string& actor, const std::string& topic) = 0;
  virtual void stop_requested() = 0;
  // On the actor's thread, right before `env` is dispatched to its handlers (see handled_tap_fn).
  virtual void handled(const std::string& actor, const envelope_ptr& env) { (void)actor, (void)env; }
};

}  // namespace gfdit
