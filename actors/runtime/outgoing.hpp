#pragma once
// What a driver emits: one addressed message, already encoded. A driver (envelope in, outgoing
// messages out) is the one routing table of its actor; the shell sends these as they are, and
// the simulator and `gfdit replay` build the very same envelopes from them.
#include <cstdint>
#include <string>

#include "messages/codec.hpp"
#include "messages/envelope.hpp"

namespace gfdit {

struct outgoing {
  route kind = route::direct;
  std::string destination;
  std::uint32_t type_id = 0;
  std::uint16_t version = 0;
  std::string payload;
};

template <message T>
outgoing make_outgoing(route kind, std::string destination, const T& m) {
  return {kind, std::move(destination), type_id_of<T>, T::type_version, encode(m)};
}

// The envelope a shell named `sender` sends for `o` (correlation 0; seq and stamps are the
// runtime's to fill in).
inline envelope to_envelope(outgoing o, std::string sender) {
  envelope e;
  e.kind = o.kind;
  e.destination = std::move(o.destination);
  e.type_id = o.type_id;
  e.version = o.version;
  e.payload = std::move(o.payload);
  e.sender = std::move(sender);
  return e;
}

}  // namespace gfdit
