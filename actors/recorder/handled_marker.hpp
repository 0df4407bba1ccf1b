#pragma once
// A dispatch-order marker: the recorder writes one when an actor it watches (its `handled`
// parameter) is about to handle a message, on that actor's own thread. It names the message by
// the fields that identify an envelope in a bag, so replay can re-drive the actor with its
// inputs in the order it really handled them (the delivery tap fires before the mailbox, where
// two threads may race). In the bag it is an envelope from the pseudo-sender "$handled",
// directed to the handling actor; replay never takes it for an input or output itself.
#include <cstdint>
#include <string>
#include <string_view>

#include "messages/envelope.hpp"
#include "messages/message.hpp"

namespace gfdit::msg {

struct handled {
  static constexpr std::string_view type_name = "recorder.handled";
  static constexpr std::uint16_t type_version = 1;
  std::string actor;      // who handled it
  std::string sender;     // the handled envelope's sender, seq, type, route, destination
  std::uint64_t seq = 0;  //   and correlation: together they identify it in the bag
  std::uint32_t type_id = 0;
  std::uint8_t kind = 0;
  std::string destination;
  std::uint64_t correlation = 0;
  GFDIT_FIELDS(actor, sender, seq, type_id, kind, destination, correlation)
};

}  // namespace gfdit::msg

namespace gfdit::bag {

inline constexpr const char* handled_sender = "$handled";

// The marker "`actor` handled `env`", the `seq`-th of its recorder, made at `at_ns`.
inline envelope handled_marker(const envelope& env, const std::string& actor, std::uint64_t seq, std::int64_t at_ns) {
  msg::handled m{actor,           env.sender,     env.seq, env.type_id, static_cast<std::uint8_t>(env.kind),
                 env.destination, env.correlation};
  envelope mark;
  mark.type_id = type_id_of<msg::handled>;
  mark.version = msg::handled::type_version;
  mark.seq = seq;
  mark.sender = handled_sender;
  mark.destination = actor;
  mark.kind = route::direct;
  mark.time = {0, at_ns};
  mark.payload = encode(m);
  return mark;
}

inline bool is_handled_marker(const envelope& env) { return env.is<msg::handled>() && env.sender == handled_sender; }

// The identity of an envelope as a marker names it (same string for the envelope and for the
// marker that points at it).
inline std::string handled_key(const std::string& sender, std::uint64_t seq, std::uint32_t type_id, std::uint8_t kind,
                               const std::string& destination, std::uint64_t correlation) {
  std::string k = sender;
  k += '\0';
  k += destination;
  k += '\0';
  k += std::to_string(seq) + ':' + std::to_string(type_id) + ':' + std::to_string(kind) + ':' +
       std::to_string(correlation);
  return k;
}
inline std::string handled_key(const envelope& env) {
  return handled_key(env.sender, env.seq, env.type_id, static_cast<std::uint8_t>(env.kind), env.destination,
                     env.correlation);
}
inline std::string handled_key(const msg::handled& h) {
  return handled_key(h.sender, h.seq, h.type_id, h.kind, h.destination, h.correlation);
}

}  // namespace gfdit::bag
