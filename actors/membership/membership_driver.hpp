#pragma once
// Membership's whole message-level behaviour: one message in, the messages it causes out.
// Workers' hellos and heartbeats come on topic "workers", group changes directed from the
// scheduler; views and deaths go out on topic "membership". Its own tick (a message to itself,
// so it is recorded and replays) finds silent workers. It also hosts the world hub
// (world_hub.hpp): WorldJoins come directed and each rank gets its WorldBlobs back the same way;
// the same tick expires rounds that never complete. The actor shell (driver_actor), the
// simulator and `gfdit replay --actor membership` all run this one routing table.
#include <string>
#include <vector>

#include "actors/membership/membership_core.hpp"
#include "actors/membership/world_hub.hpp"
#include "actors/runtime/inbound.hpp"
#include "actors/runtime/outgoing.hpp"

namespace gfdit {

struct membership_driver_config {
  membership_config core;
  double speedup = 1.0;             // model microseconds per wall microsecond of the stamps
  std::string self = "membership";  // the actor's own name (its ticks are addressed to it)
};

class membership_driver {
 public:
  explicit membership_driver(membership_driver_config cfg) : core_(cfg.core), cfg_(std::move(cfg)) {}

  std::vector<outgoing> feed(const inbound& in);
  std::vector<std::string> topics() const;
  // The tick it sends itself, so time passing is a recorded message.
  outgoing tick(std::uint64_t n) const;

  const membership_core& core() const { return core_; }

 private:
  membership_core core_;
  world_hub hub_;
  membership_driver_config cfg_;
};

}  // namespace gfdit
