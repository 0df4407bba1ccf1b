#include "messages/envelope.hpp"

namespace gfdit {

namespace {

std::string encode_with(const envelope& env, std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + env.sender.size() + env.destination.size() + 96);
  string_writer w{out};
  msgpack::packer<string_writer> pk(w);
  pk.pack_map(11);
  pk.pack(std::string_view("t"));
  pk.pack(env.type_id);
  pk.pack(std::string_view("v"));
  pk.pack(env.version);
  pk.pack(std::string_view("q"));
  pk.pack(env.seq);
  pk.pack(std::string_view("s"));
  pk.pack(env.sender);
  pk.pack(std::string_view("d"));
  pk.pack(env.destination);
  pk.pack(std::string_view("k"));
  pk.pack(static_cast<std::uint8_t>(env.kind));
  pk.pack(std::string_view("l"));
  pk.pack(env.time.logical);
  pk.pack(std::string_view("w"));
  pk.pack(env.time.wall_ns);
  pk.pack(std::string_view("r"));
  pk.pack(env.trace_id);
  pk.pack(std::string_view("c"));
  pk.pack(env.correlation);
  pk.pack(std::string_view("p"));
  pk.pack_bin(static_cast<std::uint32_t>(payload.size()));
  pk.pack_bin_body(payload.data(), static_cast<std::uint32_t>(payload.size()));
  return out;
}

}  // namespace

std::string encode_envelope(const envelope& env) { return encode_with(env, env.payload); }

std::string encode_envelope_header(const envelope& env) { return encode_with(env, {}); }

result<envelope> decode_envelope(std::string_view frame, const decode_limits& limits) {
  auto handle = unpack_bounded(frame, limits);
  if (!handle) return handle.err();
  const msgpack::object& o = handle->get();
  if (o.type != msgpack::type::MAP) return make_error(errc::decode_failed, "envelope: expected a map");
  envelope env;
  bool have_type = false;
  try {
    for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
      const auto& kv = o.via.map.ptr[i];
      if (kv.key.type != msgpack::type::STR) return make_error(errc::decode_failed, "envelope: a key is not a string");
      const std::string_view key(kv.key.via.str.ptr, kv.key.via.str.size);
      const msgpack::object& v = kv.val;
      if (key == "t") {
        v.convert(env.type_id);
        have_type = true;
      } else if (key == "v")
        v.convert(env.version);
      else if (key == "q")
        v.convert(env.seq);
      else if (key == "s")
        v.convert(env.sender);
      else if (key == "d")
        v.convert(env.destination);
      else if (key == "k") {
        std::uint8_t k = 0;
        v.convert(k);
        if (k > static_cast<std::uint8_t>(route::failure))
          return make_error(errc::decode_failed, "envelope: unknown route " + std::to_string(k));
        env.kind = static_cast<route>(k);
      } else if (key == "l")
        v.convert(env.time.logical);
      else if (key == "w")
        v.convert(env.time.wall_ns);
      else if (key == "r")
        v.convert(env.trace_id);
      else if (key == "c")
        v.convert(env.correlation);
      else if (key == "p") {
        if (v.type != msgpack::type::BIN)
          return make_error(errc::decode_failed, "envelope: field 'p' (payload) is not binary");
        env.payload.assign(v.via.bin.ptr, v.via.bin.size);
      }
      // Unknown keys come from newer writers: skipped.
    }
  } catch (const std::exception& e) {
    return make_error(errc::decode_failed, std::string("envelope: a field has the wrong type (") + e.what() + ")");
  }
  if (!have_type) return make_error(errc::decode_failed, "envelope: field 't' (type id) missing");
  return env;
}

}  // namespace gfdit
