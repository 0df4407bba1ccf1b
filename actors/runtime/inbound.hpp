#pragma once
// What a driver is fed: how a message was addressed, who sent it, when (the stamp), and the
// message. From an envelope (the shell, `gfdit replay`), the message is decoded at the driver's
// first get<T>() and kept; from the simulator it comes typed and is never encoded. Either way
// the same driver code routes it. A view: what it is built from must outlive it.
#include <cstdint>
#include <string_view>

#include "messages/any_message.hpp"
#include "messages/envelope.hpp"

namespace gfdit {

class inbound {
 public:
  // Implicit: an envelope is fed as it is.
  inbound(const envelope& env)  // NOLINT(google-explicit-constructor)
      : kind(env.kind),
        sender(env.sender),
        destination(env.destination),
        wall_ns(env.time.wall_ns),
        type_id_(env.type_id),
        payload_(&env.payload) {}
  inbound(route k, std::string_view from, std::string_view to, std::int64_t stamp_ns, const any_message& m)
      : kind(k), sender(from), destination(to), wall_ns(stamp_ns), type_id_(m.type_id()), typed_(m.value()) {}
  template <message T>
  inbound(route k, std::string_view from, std::string_view to, std::int64_t stamp_ns, const T& m)
      : kind(k), sender(from), destination(to), wall_ns(stamp_ns), type_id_(type_id_of<T>), typed_(&m) {}

  route kind;
  std::string_view sender;
  std::string_view destination;
  std::int64_t wall_ns;  // the stamp: when it was sent (the simulator: when it arrives)

  template <message T>
  bool is() const {
    return type_id_ == type_id_of<T>;
  }
  // The message if it is a T (and, from an envelope, decodes): decoded once, however often asked.
  template <message T>
  const T* get() const {
    if (!is<T>()) return nullptr;
    if (!typed_ && payload_) {
      auto m = decode<T>(*payload_);
      if (!m) return nullptr;
      decoded_ = any_message(std::move(*m));
      typed_ = decoded_.value();
    }
    return static_cast<const T*>(typed_);
  }

 private:
  std::uint32_t type_id_;
  const std::string* payload_ = nullptr;
  mutable const void* typed_ = nullptr;
  mutable any_message decoded_;  // owns what was decoded from payload_
};

}  // namespace gfdit
