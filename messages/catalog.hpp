#pragma once
// The vocabulary: name <-> id <-> version for every registered message, JSON rendering of any
// payload, and schemas. Built-in families register in catalog.cpp; plugins call add<T>() when
// they load.
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.hpp"
#include "messages/codec.hpp"
#include "messages/envelope.hpp"
#include "messages/json.hpp"
#include "messages/message.hpp"

namespace gfdit {

// A message's schema from its C++ types (GFDIT_FIELDS): "bool", "int", "uint", "float", "str",
// [element], {field: type} for a nested message, {"*": value} for a string-keyed map. A type
// without GFDIT_FIELDS is described by its default value's encoding (json.hpp's schema_of).
template <class T>
nlohmann::json schema_of_type();

namespace detail {
template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {
  using element = T;
};
template <class T>
struct is_string_map : std::false_type {};
template <class V, class C, class A>
struct is_string_map<std::map<std::string, V, C, A>> : std::true_type {
  using value = V;
};

struct schema_visitor {
  nlohmann::json out = nlohmann::json::object();
  template <std::size_t N, class V, class... Rest>
  void fields(const char (&name)[N], const V&, Rest&&... rest) {
    out[name] = schema_of_type<V>();
    if constexpr (sizeof...(Rest) > 0) fields(std::forward<Rest>(rest)...);
  }
};
}  // namespace detail

template <class T>
nlohmann::json schema_of_type() {
  if constexpr (std::is_same_v<T, bool>)
    return "bool";
  else if constexpr (std::is_integral_v<T>)
    return std::is_signed_v<T> ? "int" : "uint";
  else if constexpr (std::is_floating_point_v<T>)
    return "float";
  else if constexpr (std::is_same_v<T, std::string>)
    return "str";
  else if constexpr (detail::is_vector<T>::value) {
    using E = typename detail::is_vector<T>::element;
    if constexpr (std::is_same_v<E, char> || std::is_same_v<E, std::uint8_t>)
      return "bin";
    else
      return nlohmann::json::array({schema_of_type<E>()});
  } else if constexpr (detail::is_string_map<T>::value) {
    return nlohmann::json{{"*", schema_of_type<typename detail::is_string_map<T>::value>()}};
  } else if constexpr (requires(const T& t, detail::schema_visitor& v) { t.gfdit_fields(v); }) {
    detail::schema_visitor v;
    T{}.gfdit_fields(v);
    return v.out;
  } else {
    msgpack::zone zone;
    return schema_of(msgpack::object(T{}, zone));
  }
}

struct catalog_entry {
  std::string name;
  std::uint32_t id = 0;
  std::uint16_t version = 0;
  nlohmann::json schema;  // field -> type, taken from a default-constructed value
  // Decodes a payload as this type (so type errors are caught) and renders it.
  std::function<result<nlohmann::json>(std::string_view)> to_json;
};

class catalog {
 public:
  // The process-wide catalog, holding every built-in family.
  static catalog& global();

  template <message T>
  result<void> add() {
    auto render = [](std::string_view bytes) -> result<nlohmann::json> {
      auto msg = decode<T>(bytes);
      if (!msg) return msg.err();
      auto h = unpack_bounded(bytes);
      if (!h) return h.err();
      return gfdit::to_json(h->get());
    };
    return add_entry(
        {std::string(T::type_name), type_id_of<T>, T::type_version, schema_of_type<T>(), std::move(render)});
  }

  result<void> add_entry(catalog_entry entry);
  const catalog_entry* find(std::uint32_t id) const;
  const catalog_entry* find(std::string_view name) const;
  std::vector<catalog_entry> list() const;  // sorted by name

  // The whole envelope as JSON, with the payload rendered through its entry when known.
  nlohmann::json render(const envelope& env) const;

 private:
  mutable std::mutex mu_;
  std::map<std::uint32_t, catalog_entry> by_id_;
  std::map<std::string, std::uint32_t, std::less<>> by_name_;
};

}  // namespace gfdit
