#include "messages/codec.hpp"

#include <vector>

namespace gfdit {
namespace {

struct scanner {
  std::string_view in;
  const decode_limits& lim;
  std::size_t pos = 0;
  // Elements that declared containers still owe. Each needs at least one byte, so this may
  // never exceed what is left: that caps what msgpack-cxx will allocate for object slots.
  std::uint64_t owed = 1;

  std::size_t left() const { return in.size() - pos; }

  error fail(const std::string& what) const {
    return make_error(errc::decode_failed, what + " at byte " + std::to_string(pos));
  }

  bool read_be(std::size_t n, std::uint64_t& v) {
    if (left() < n) return false;
    v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(in[pos + i]);
    pos += n;
    return true;
  }

  result<void> blob(std::uint64_t len, std::size_t limit, const char* kind) {
    if (len > limit)
      return make_error(errc::too_large, std::string(kind) + " of " + std::to_string(len) +
                                             " bytes exceeds the limit of " + std::to_string(limit) + " at byte " +
                                             std::to_string(pos));
    if (len > left())
      return fail(std::string("truncated ") + kind + " (declares " + std::to_string(len) + " bytes, " +
                  std::to_string(left()) + " remain)");
    pos += len;
    return {};
  }

  result<void> container(std::uint64_t n, bool is_map, std::size_t depth) {
    const std::size_t limit = is_map ? lim.max_map : lim.max_array;
    const char* kind = is_map ? "map" : "array";
    if (n > limit)
      return make_error(errc::too_large, std::string(kind) + " of " + std::to_string(n) +
                                             " elements exceeds the limit of " + std::to_string(limit) + " at byte " +
                                             std::to_string(pos));
    if (depth + 1 > lim.max_depth)
      return make_error(errc::too_large,
                        "nesting deeper than " + std::to_string(lim.max_depth) + " at byte " + std::to_string(pos));
    const std::uint64_t elems = is_map ? 2 * n : n;
    owed += elems;
    if (owed > left())
      return fail(std::string("truncated ") + kind + " (declares " + std::to_string(n) + " elements, " +
                  std::to_string(left()) + " bytes remain)");
    for (std::uint64_t i = 0; i < elems; ++i)
      if (auto r = value(depth + 1); !r) return r;
    return {};
  }

  result<void> value(std::size_t depth) {
    if (left() == 0) return fail("truncated value");
    --owed;
    const auto b = static_cast<unsigned char>(in[pos++]);
    std::uint64_t n = 0;
    auto need = [&](std::size_t k) -> result<void> {
      if (!read_be(k, n)) return fail("truncated header");
      return {};
    };
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) return {};
    if ((b & 0xf0) == 0x80) return container(b & 0x0f, true, depth);
    if ((b & 0xf0) == 0x90) return container(b & 0x0f, false, depth);
    if ((b & 0xe0) == 0xa0) return blob(b & 0x1f, lim.max_str, "string");
    switch (b) {
      case 0xc4:
      case 0xc5:
      case 0xc6: {
        if (auto r = need(std::size_t{1} << (b - 0xc4)); !r) return r;
        return blob(n, lim.max_bin, "binary");
      }
      case 0xc7:
      case 0xc8:
      case 0xc9: {
        if (auto r = need(std::size_t{1} << (b - 0xc7)); !r) return r;
        return blob(n + 1, lim.max_ext, "extension");
      }
      case 0xca:
        return blob(4, 4, "float");
      case 0xcb:
        return blob(8, 8, "double");
      case 0xcc:
      case 0xd0:
        return blob(1, 1, "integer");
      case 0xcd:
      case 0xd1:
        return blob(2, 2, "integer");
      case 0xce:
      case 0xd2:
        return blob(4, 4, "integer");
      case 0xcf:
      case 0xd3:
        return blob(8, 8, "integer");
      case 0xd4:
        return blob(2, lim.max_ext, "extension");
      case 0xd5:
        return blob(3, lim.max_ext, "extension");
      case 0xd6:
        return blob(5, lim.max_ext, "extension");
      case 0xd7:
        return blob(9, lim.max_ext, "extension");
      case 0xd8:
        return blob(17, lim.max_ext, "extension");
      case 0xd9:
      case 0xda:
      case 0xdb: {
        if (auto r = need(std::size_t{1} << (b - 0xd9)); !r) return r;
        return blob(n, lim.max_str, "string");
      }
      case 0xdc:
      case 0xdd: {
        if (auto r = need(b == 0xdc ? 2 : 4); !r) return r;
        return container(n, false, depth);
      }
      case 0xde:
      case 0xdf: {
        if (auto r = need(b == 0xde ? 2 : 4); !r) return r;
        return container(n, true, depth);
      }
      default:
        --pos;
        return fail("invalid msgpack type byte 0xc1");
    }
  }
};

}  // namespace

result<void> check_msgpack(std::string_view bytes, const decode_limits& limits) {
  if (bytes.size() > limits.max_frame)
    return make_error(errc::too_large, "frame of " + std::to_string(bytes.size()) + " bytes exceeds the limit of " +
                                           std::to_string(limits.max_frame));
  if (bytes.empty()) return make_error(errc::decode_failed, "empty frame");
  scanner s{bytes, limits};
  // The scan recurses once per nesting level, bounded by max_depth.
  if (auto r = s.value(0); !r) return r;
  if (s.pos != bytes.size())
    return make_error(errc::decode_failed, std::to_string(bytes.size() - s.pos) +
                                               " trailing bytes after the value at byte " + std::to_string(s.pos));
  return {};
}

result<msgpack::object> unpack_bounded(msgpack::zone& zone, std::string_view bytes, const decode_limits& limits) {
  if (auto r = check_msgpack(bytes, limits); !r) return r.err();
  try {
    const msgpack::unpack_limit ul(limits.max_array, limits.max_map, limits.max_str, limits.max_bin, limits.max_ext,
                                   limits.max_depth);
    std::size_t off = 0;
    // Strings and blobs point into `bytes` instead of being copied into the zone: the object
    // must not outlive `bytes`, and a large payload is copied once, by the final convert().
    const auto by_reference = [](msgpack::type::object_type t, std::size_t, void*) {
      return t == msgpack::type::STR || t == msgpack::type::BIN;
    };
    return msgpack::unpack(zone, bytes.data(), bytes.size(), off, by_reference, nullptr, ul);
  } catch (const std::exception& e) {
    return make_error(errc::decode_failed, std::string("msgpack: ") + e.what());
  }
}

result<msgpack::object_handle> unpack_bounded(std::string_view bytes, const decode_limits& limits) {
  auto zone = std::make_unique<msgpack::zone>();
  auto object = unpack_bounded(*zone, bytes, limits);
  if (!object) return object.err();
  return msgpack::object_handle(*object, std::move(zone));
}

}  // namespace gfdit
