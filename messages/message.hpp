#pragma once
// What makes a plain struct a message: a stable name, a schema version, and msgpack *map*
// encoding (GFDIT_FIELDS, fields.hpp: MSGPACK_DEFINE_MAP's bytes, read without allocating), so a
// newer writer may add fields and an older reader skips them.
//
//   struct ping {
//     static constexpr std::string_view type_name = "example.ping";
//     static constexpr std::uint16_t type_version = 1;
//     std::uint64_t seq = 0;
//     GFDIT_FIELDS(seq)
//   };
#include <concepts>
#include <cstdint>
#include <string_view>

#include <msgpack.hpp>

#include "common/hash.hpp"
#include "messages/fields.hpp"

namespace gfdit {

template <class T>
concept message = requires {
  { T::type_name } -> std::convertible_to<std::string_view>;
  { T::type_version } -> std::convertible_to<std::uint16_t>;
}
&&std::default_initializable<T>;

// The wire id of a message type: a hash of its name, so ids need no central numbering and are
// the same in every process and every build. The catalog refuses two names with one id.
template <message T>
inline constexpr std::uint32_t type_id_of = fnv1a32(T::type_name);

}  // namespace gfdit
