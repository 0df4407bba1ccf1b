#pragma once
// One message of any type, held typed and encoded only where it must become bytes (the bus, a
// bag, a journal). Copies share the one message and its encoding: a message to many receivers
// is built and encoded once, and the simulator hands it on without encoding it at all. The
// encoding is cached on first use without a lock: a message stays with the actor that built it
// until its bytes are sent.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "messages/codec.hpp"
#include "messages/message.hpp"

namespace gfdit {

class any_message {
 public:
  any_message() = default;
  template <class M>
  requires message<std::remove_cvref_t<M>>
  explicit any_message(M&& m) : box_(std::make_shared<const box<std::remove_cvref_t<M>>>(std::forward<M>(m))) {}

  explicit operator bool() const { return box_ != nullptr; }
  std::uint32_t type_id() const { return box_ ? box_->type_id : 0; }
  std::uint16_t version() const { return box_ ? box_->version : 0; }
  template <message T>
  bool is() const {
    return type_id() == type_id_of<T>;
  }
  // The message, if it is a T.
  template <message T>
  const T* get() const {
    return is<T>() ? static_cast<const T*>(box_->value) : nullptr;
  }
  // The message whatever its type, for a view that knows it by type_id (inbound.hpp).
  const void* value() const { return box_ ? box_->value : nullptr; }
  // Its msgpack bytes, encoded on the first call.
  const std::string& bytes() const {
    if (!box_->bytes) box_->bytes = box_->encode();
    return *box_->bytes;
  }

 private:
  struct base {
    base(std::uint32_t id, std::uint16_t v, const void* at) : type_id(id), version(v), value(at) {}
    virtual ~base() = default;
    virtual std::string encode() const = 0;
    std::uint32_t type_id;
    std::uint16_t version;
    const void* value;
    mutable std::optional<std::string> bytes;
  };
  template <message T>
  struct box final : base {
    template <class M>
    explicit box(M&& m) : base(type_id_of<T>, T::type_version, &message), message(std::forward<M>(m)) {}
    std::string encode() const override { return gfdit::encode(message); }
    T message;
  };
  std::shared_ptr<const base> box_;
};

}  // namespace gfdit
