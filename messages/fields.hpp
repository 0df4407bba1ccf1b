#pragma once
// GFDIT_FIELDS(a, b, c): a message's fields as a msgpack map, the wire format of
// MSGPACK_DEFINE_MAP (the same bytes either way), with a reader that costs no allocation.
// msgpack-c's reader builds a std::map<std::string, object*> of every key for each message it
// reads; this one walks the map's keys for each field, where a field is found at the first key
// of its name. Otherwise the rules are msgpack-c's: a field that is absent keeps its default,
// unknown keys are skipped (a newer writer may add fields), a map with a key that is not a
// string is a type error. `gfdit_fields(visitor)` hands the visitor each (name, member) pair,
// so the catalog can describe a message by its C++ types (catalog.hpp: a signed field reads
// "int" even while its default, 0, would be packed as an unsigned integer).
#include <cstdint>
#include <cstring>

#include <msgpack.hpp>

namespace gfdit::detail {

class field_reader {
 public:
  explicit field_reader(const msgpack::object& o) : o_(o) {
    if (o.type != msgpack::type::MAP) throw msgpack::type_error();
    for (std::uint32_t i = 0; i < o.via.map.size; ++i)
      if (o.via.map.ptr[i].key.type != msgpack::type::STR) throw msgpack::type_error();
  }

  template <std::size_t N, typename V, typename... Rest>
  void read(const char (&name)[N], V& value, Rest&&... rest) {
    if (const msgpack::object* v = find(name, N - 1)) msgpack::v1::type::convert_helper(*v, value);
    if constexpr (sizeof...(Rest) > 0) read(std::forward<Rest>(rest)...);
  }

 private:
  const msgpack::object* find(const char* name, std::uint32_t size) const {
    for (std::uint32_t i = 0; i < o_.via.map.size; ++i) {
      const auto& key = o_.via.map.ptr[i].key.via.str;
      if (key.size == size && std::memcmp(key.ptr, name, size) == 0) return &o_.via.map.ptr[i].val;
    }
    return nullptr;
  }

  const msgpack::object& o_;
};

}  // namespace gfdit::detail

#define GFDIT_FIELDS(...)                                                                                     \
  template <typename Packer>                                                                                  \
  void msgpack_pack(Packer& msgpack_pk) const {                                                               \
    msgpack::type::make_define_map MSGPACK_DEFINE_MAP_IMPL(__VA_ARGS__).msgpack_pack(msgpack_pk);             \
  }                                                                                                           \
  void msgpack_unpack(msgpack::object const& msgpack_o) {                                                     \
    ::gfdit::detail::field_reader(msgpack_o).read MSGPACK_DEFINE_MAP_IMPL(__VA_ARGS__);                       \
  }                                                                                                           \
  template <typename MSGPACK_OBJECT>                                                                          \
  void msgpack_object(MSGPACK_OBJECT* msgpack_o, msgpack::zone& msgpack_z) const {                            \
    msgpack::type::make_define_map MSGPACK_DEFINE_MAP_IMPL(__VA_ARGS__).msgpack_object(msgpack_o, msgpack_z); \
  }                                                                                                           \
  template <typename Visitor>                                                                                 \
  void gfdit_fields(Visitor& gfdit_v) const {                                                                 \
    gfdit_v.fields MSGPACK_DEFINE_MAP_IMPL(__VA_ARGS__);                                                      \
  }
