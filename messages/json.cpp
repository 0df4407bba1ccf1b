#include "messages/json.hpp"

#include <algorithm>
#include <string>

#include "common/text.hpp"

namespace gfdit {
namespace {

std::string hex(const char* p, std::size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto b = static_cast<unsigned char>(p[i]);
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

// A key that is not a string shows as its JSON text, cut after 64 bytes (between characters):
// uncut, a map keyed by a map keyed by a map ... re-escaped the inner keys at every level,
// doubling their size each time (a 178-byte frame ran for minutes; found by fuzz_message_decode).
std::string key_string(const msgpack::object& k) {
  if (k.type == msgpack::type::STR) return valid_utf8({k.via.str.ptr, k.via.str.size});
  std::string text = to_json(k).dump();
  constexpr std::size_t keep = 64;
  if (text.size() <= keep) return text;
  std::size_t cut = keep;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) --cut;  // a continuation byte
  text.resize(cut);
  return text + "...";
}

}  // namespace

std::string valid_utf8(std::string_view s) {
  std::size_t i = utf8_valid_prefix(s);
  if (i == s.size()) return std::string(s);  // the common case
  std::string out(s.substr(0, i));
  while (i < s.size()) {
    const auto len = utf8_sequence(s.substr(i));
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  return out;
}

nlohmann::json to_json(const msgpack::object& o) {
  using msgpack::type::object_type;
  switch (o.type) {
    case object_type::NIL:
      return nullptr;
    case object_type::BOOLEAN:
      return o.via.boolean;
    case object_type::POSITIVE_INTEGER:
      return o.via.u64;
    case object_type::NEGATIVE_INTEGER:
      return o.via.i64;
    case object_type::FLOAT32:
    case object_type::FLOAT64:
      return o.via.f64;
    case object_type::STR:
      return valid_utf8({o.via.str.ptr, o.via.str.size});
    case object_type::BIN: {
      const std::size_t shown = std::min<std::size_t>(o.via.bin.size, 64);
      nlohmann::json j = {{"$bin", hex(o.via.bin.ptr, shown)}};
      if (shown < o.via.bin.size) j["$size"] = o.via.bin.size;
      return j;
    }
    case object_type::EXT:
      return {{"$ext", o.via.ext.type()}, {"$size", o.via.ext.size}};
    case object_type::ARRAY: {
      auto arr = nlohmann::json::array();
      for (std::uint32_t i = 0; i < o.via.array.size; ++i) arr.push_back(to_json(o.via.array.ptr[i]));
      return arr;
    }
    case object_type::MAP: {
      auto obj = nlohmann::json::object();
      for (std::uint32_t i = 0; i < o.via.map.size; ++i)
        obj[key_string(o.via.map.ptr[i].key)] = to_json(o.via.map.ptr[i].val);
      return obj;
    }
  }
  return nullptr;
}

nlohmann::json schema_of(const msgpack::object& o) {
  using msgpack::type::object_type;
  switch (o.type) {
    case object_type::NIL:
      return "nil";
    case object_type::BOOLEAN:
      return "bool";
    case object_type::POSITIVE_INTEGER:
      return "uint";
    case object_type::NEGATIVE_INTEGER:
      return "int";
    case object_type::FLOAT32:
    case object_type::FLOAT64:
      return "float";
    case object_type::STR:
      return "str";
    case object_type::BIN:
      return "bin";
    case object_type::EXT:
      return "ext";
    case object_type::ARRAY: {
      auto arr = nlohmann::json::array();
      if (o.via.array.size > 0) arr.push_back(schema_of(o.via.array.ptr[0]));
      return arr;
    }
    case object_type::MAP: {
      auto obj = nlohmann::json::object();
      for (std::uint32_t i = 0; i < o.via.map.size; ++i)
        obj[key_string(o.via.map.ptr[i].key)] = schema_of(o.via.map.ptr[i].val);
      return obj;
    }
  }
  return "nil";
}

}  // namespace gfdit
