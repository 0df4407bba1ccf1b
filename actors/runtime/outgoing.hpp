#pragma once
// What a driver emits: one addressed message, typed. A driver (inbound.hpp in, outgoing
// messages out) is the one routing table of its actor; the shell encodes these and sends them,
// `gfdit replay` builds the very same envelopes from them, and the simulator delivers them
// as they are.
#include <string>
#include <type_traits>
#include <utility>

#include "messages/any_message.hpp"
#include "messages/envelope.hpp"

namespace gfdit {

struct outgoing {
  route kind = route::direct;
  std::string destination;
  any_message message;
};

template <class M>
requires message<std::remove_cvref_t<M>> outgoing make_outgoing(route kind, std::string destination, M&& m) {
  return {kind, std::move(destination), any_message(std::forward<M>(m))};
}

// The envelope a shell named `sender` sends for `o` (correlation 0; seq and stamps are the
// runtime's to fill in).
inline envelope to_envelope(outgoing o, std::string sender) {
  envelope e;
  e.kind = o.kind;
  e.destination = std::move(o.destination);
  e.type_id = o.message.type_id();
  e.version = o.message.version();
  e.payload = o.message.bytes();
  e.sender = std::move(sender);
  return e;
}

}  // namespace gfdit
