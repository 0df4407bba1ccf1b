#pragma once
// The envelope every message travels in, in-process and on the wire. One frame on the wire is
// one msgpack map with short keys; the payload is the message's own msgpack map, as bytes.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "messages/codec.hpp"
#include "messages/message.hpp"

namespace gfdit {

enum class route : std::uint8_t {
  direct = 0,   // destination names an actor
  topic = 1,    // destination names a topic
  reply = 2,    // destination names an actor; correlation names the request answered
  failure = 3,  // delivery failed: sent back to the sender; payload is a delivery_failure
};

struct stamp {
  std::uint64_t logical = 0;  // the sender's counter: orders causally, replays exactly
  std::int64_t wall_ns = 0;   // when it was sent; for humans and metrics, never for decisions
};

struct envelope {
  std::uint32_t type_id = 0;
  std::uint16_t version = 0;
  std::uint64_t seq = 0;  // per sender actor, from 1
  std::string sender;
  std::string destination;
  route kind = route::direct;
  stamp time;
  std::uint64_t trace_id = 0;
  std::uint64_t correlation = 0;  // request id for requests and replies, else 0
  std::string payload;            // the message, msgpack-encoded

  template <message T>
  bool is() const noexcept {
    return type_id == type_id_of<T>;
  }
};

// How the runtime holds an envelope once routed: shared by every local subscriber and the taps,
// never copied.
using envelope_ptr = std::shared_ptr<const envelope>;

std::string encode_envelope(const envelope& env);
// The envelope with an empty payload: what the bus sends before a large payload it sends as a
// frame of its own, without copying it.
std::string encode_envelope_header(const envelope& env);
result<envelope> decode_envelope(std::string_view frame, const decode_limits& limits = {});

template <message T>
result<T> open(const envelope& env, const decode_limits& limits = {}) {
  if (!env.is<T>())
    return make_error(errc::invalid_argument,
                      "envelope holds type id " + std::to_string(env.type_id) + ", not " + std::string(T::type_name));
  return decode<T>(env.payload, limits);
}

}  // namespace gfdit
