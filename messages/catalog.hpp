#pragma once
// The vocabulary: name <-> id <-> version for every registered message, JSON rendering of any
// payload, and schemas. Built-in families register in catalog.cpp; plugins call add<T>() when
// they load.
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.hpp"
#include "messages/codec.hpp"
#include "messages/envelope.hpp"
#include "messages/json.hpp"
#include "messages/message.hpp"

namespace gfdit {

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
    // The schema from the C++ value, not its encoding: msgpack packs an integral double (0.0) as
    // an integer, which made every double field read "uint".
    msgpack::zone zone;
    const msgpack::object defaults(T{}, zone);
    return add_entry({std::string(T::type_name), type_id_of<T>, T::type_version, schema_of(defaults), std::move(render)});
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
