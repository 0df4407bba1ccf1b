#pragma once
// Bounded msgpack encoding and decoding. Decoding never trusts a header: before msgpack-cxx
// allocates anything, a linear scan checks every declared length against the bytes that are
// really there, so memory stays O(frame size) whatever the input claims.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include <msgpack.hpp>

#include "common/result.hpp"
#include "messages/message.hpp"

namespace gfdit {

struct decode_limits {
  std::size_t max_frame = 256u << 20;  // bytes in one frame
  std::size_t max_array = 1u << 24;    // elements in one array
  std::size_t max_map = 1u << 20;      // pairs in one map
  std::size_t max_str = 64u << 20;     // bytes in one string
  std::size_t max_bin = 256u << 20;    // bytes in one binary blob
  std::size_t max_ext = 1u << 20;      // bytes in one extension value
  std::size_t max_depth = 64;          // nesting of arrays and maps
};

// Checks the structure of one msgpack value filling `bytes` exactly, against `limits`.
// The error names the offset and the rule broken.
result<void> check_msgpack(std::string_view bytes, const decode_limits& limits = {});

// Checked, then unpacked with msgpack's own unpack_limit as a second fence. Strings and blobs
// in the handle reference `bytes`, which must outlive it.
result<msgpack::object_handle> unpack_bounded(std::string_view bytes, const decode_limits& limits = {});
// The same into `zone`, which the caller owns and may reuse (clear() keeps its first chunk).
result<msgpack::object> unpack_bounded(msgpack::zone& zone, std::string_view bytes, const decode_limits& limits = {});

// A msgpack output buffer that is the final std::string, so encoding copies nothing twice.
struct string_writer {
  std::string& out;
  void write(const char* p, std::size_t n) { out.append(p, n); }
};

}  // namespace gfdit

namespace msgpack {
MSGPACK_API_VERSION_NAMESPACE(v1) {
  // msgpack-cxx 4.1.3 packs an integral double as an integer, admitting it with
  // `d <= double(UINT64_MAX)`: that bound rounds up to 2^64, and converting 2^64 to uint64_t is
  // undefined (found by fuzz_message_decode). gfdit's packer bounds it strictly; every other
  // double gives the same bytes as the library's.
  template <>
  inline packer<gfdit::string_writer>& packer<gfdit::string_writer>::pack_double(double d) {
    constexpr double two_to_64 = 18446744073709551616.0;
    constexpr double minus_two_to_63 = -9223372036854775808.0;
    if (d >= 0 && d < two_to_64 && d == double(uint64_t(d))) {
      pack_imp_uint64(uint64_t(d));
    } else if (d < 0 && d >= minus_two_to_63 && d == double(int64_t(d))) {
      pack_imp_int64(int64_t(d));
    } else {  // NaN fails both tests
      uint64_t bits;
      std::memcpy(&bits, &d, sizeof bits);
      char buf[9];
      buf[0] = static_cast<char>(0xcbu);
      _msgpack_store64(&buf[1], bits);
      append_buffer(buf, 9);
    }
    return *this;
  }
}  // MSGPACK_API_VERSION_NAMESPACE(v1)
}  // namespace msgpack

namespace gfdit {

template <message T>
std::string encode(const T& msg) {
  std::string out;
  out.reserve(256);  // most messages fit: no regrowth while packing
  string_writer w{out};
  msgpack::pack(w, msg);
  return out;
}

template <message T>
result<T> decode(std::string_view bytes, const decode_limits& limits = {}) {
  // One zone per thread, cleared after each message: decoding a small message allocates
  // nothing but the message itself (a fresh zone is an 8 KiB malloc).
  thread_local msgpack::zone zone;
  struct clear_after {
    msgpack::zone& z;
    ~clear_after() { z.clear(); }
  } guard{zone};
  auto object = unpack_bounded(zone, bytes, limits);
  if (!object) return object.err();
  try {
    T out{};
    object->convert(out);
    return out;
  } catch (const std::exception& e) {
    return make_error(errc::decode_failed,
                      std::string(T::type_name) + ": a field has the wrong type or shape (" + e.what() + ")");
  }
}

}  // namespace gfdit
