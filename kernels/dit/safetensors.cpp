#include "kernels/dit/safetensors.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "kernels/dit/numerics.hpp"

namespace gfdit::dit {

namespace {

int element_bytes(const std::string& dtype) {
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "BF16" || dtype == "F16") return 2;
  if (dtype == "I64") return 8;
  if (dtype == "U8") return 1;
  return 0;
}

float half_to_float(std::uint16_t h) {
  const int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  const float v = exp == 0    ? std::ldexp(static_cast<float>(man), -24)
                  : exp == 31 ? (man ? NAN : INFINITY)
                              : std::ldexp(static_cast<float>(man | 0x400), exp - 25);
  return (h >> 15) ? -v : v;
}

std::uint16_t float_to_half(float x) {  // round to nearest even, through double (exact)
  if (std::isnan(x)) return 0x7e00;
  const std::uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  const double a = std::fabs(static_cast<double>(x));
  if (a >= 65520.0) return sign | 0x7c00;
  int e = 0;
  std::frexp(a, &e);                                         // a = m * 2^e, m in [0.5, 1)
  const int exp = std::max(e - 1, -14);                      // subnormals share the smallest exponent
  const double q = std::nearbyint(std::ldexp(a, 10 - exp));  // 11 significant bits (fewer below)
  std::uint32_t bits = static_cast<std::uint32_t>(q);
  if (bits == 0) return sign;
  if (exp == -14 && bits < 0x400) return sign | static_cast<std::uint16_t>(bits);  // subnormal
  int biased = exp + 15;
  if (bits >= 0x800) bits >>= 1, ++biased;  // rounding carried into the next power of two
  if (biased >= 31) return sign | 0x7c00;
  return sign | static_cast<std::uint16_t>(biased << 10) | static_cast<std::uint16_t>(bits & 0x3ff);
}

float read_element(const std::string& dtype, const std::uint8_t* p) {
  auto u32 = [p] { return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<std::uint32_t>(p[3]) << 24); };
  if (dtype == "F32") {
    const std::uint32_t u = u32();
    float x;
    std::memcpy(&x, &u, 4);
    return x;
  }
  if (dtype == "I32") return static_cast<float>(static_cast<std::int32_t>(u32()));
  if (dtype == "I64") {
    std::uint64_t u = 0;
    for (int i = 0; i < 8; ++i) u |= static_cast<std::uint64_t>(p[i]) << (8 * i);
    return static_cast<float>(static_cast<std::int64_t>(u));
  }
  if (dtype == "U8") return p[0];
  const auto h = static_cast<std::uint16_t>(p[0] | (p[1] << 8));
  return dtype == "BF16" ? from_bf16(h) : half_to_float(h);
}

}  // namespace

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

result<st_file> read_safetensors(const std::filesystem::path& path) {
  const auto fail = [&](errc e, const std::string& what) {
    return make_error(e, "safetensors " + path.string() + ": " + what);
  };
  std::error_code ec;
  const auto file_size = std::filesystem::file_size(path, ec);
  if (ec) return fail(errc::not_found, "cannot stat (" + ec.message() + ")");
  std::ifstream f(path, std::ios::binary);
  if (!f) return fail(errc::io, "cannot open");
  if (file_size < 8) return fail(errc::decode_failed, "truncated: shorter than the 8-byte header length");
  std::uint8_t len[8];
  f.read(reinterpret_cast<char*>(len), 8);
  std::uint64_t hlen = 0;
  for (int i = 0; i < 8; ++i) hlen |= static_cast<std::uint64_t>(len[i]) << (8 * i);
  if (hlen > st_max_header_bytes)
    return fail(errc::too_large, "header of " + std::to_string(hlen) + " bytes exceeds the limit");
  if (hlen > file_size - 8) return fail(errc::decode_failed, "truncated: header runs past the end of the file");
  std::string head(hlen, '\0');
  f.read(head.data(), static_cast<std::streamsize>(hlen));
  if (!f) return fail(errc::io, "read failed");
  const std::uint64_t data_size = file_size - 8 - hlen;

  nlohmann::json h;
  try {
    h = nlohmann::json::parse(head);
  } catch (const std::exception& e) {
    return fail(errc::decode_failed, std::string("header is not JSON: ") + e.what());
  }
  if (!h.is_object()) return fail(errc::decode_failed, "header is not a JSON object");
  st_file out;
  for (const auto& [name, e] : h.items()) {
    if (name == "__metadata__") {
      if (!e.is_object()) return fail(errc::decode_failed, "__metadata__ is not an object");
      for (const auto& [k, v] : e.items()) {
        if (!v.is_string()) return fail(errc::decode_failed, "__metadata__." + k + " is not a string");
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    st_tensor t;
    std::uint64_t b = 0, en = 0;
    try {
      t.dtype = e.at("dtype").get<std::string>();
      const auto& sh = e.at("shape");
      if (!sh.is_array()) return fail(errc::decode_failed, name + ": shape must be an array");
      for (const auto& d : sh) {
        // A negative integer stays one (refused below); a float or an integer past 2^63 is
        // refused here: converting it to int64 would be undefined (fuzz_safetensors).
        if (d.is_number_integer() && !d.is_number_unsigned())
          t.shape.push_back(d.get<std::int64_t>());
        else if (d.is_number_unsigned() && d.get<std::uint64_t>() <= std::uint64_t(INT64_MAX))
          t.shape.push_back(static_cast<std::int64_t>(d.get<std::uint64_t>()));
        else
          return fail(errc::decode_failed, name + ": shape holds " + d.dump().substr(0, 32) + ", not a dimension");
      }
      const auto& o = e.at("data_offsets");
      if (!o.is_array() || o.size() != 2 || !o[0].is_number_unsigned() || !o[1].is_number_unsigned())
        return fail(errc::decode_failed, name + ": data_offsets must be [begin, end], two integers from 0");
      b = o[0].get<std::uint64_t>();
      en = o[1].get<std::uint64_t>();
    } catch (const std::exception& ex) {
      return fail(errc::decode_failed, name + ": malformed entry (" + ex.what() + ")");
    }
    const int width = element_bytes(t.dtype);
    if (width == 0)
      return fail(errc::invalid_argument, name + ": dtype " + t.dtype + " (F32, F16, BF16, I32, I64, U8 are read)");
    std::uint64_t numel = 1;
    for (auto d : t.shape) {
      if (d < 0) return fail(errc::decode_failed, name + ": negative dimension in " + shape_text(t.shape));
      // Checked: [3, 6148914691236517206] wrapped to 2 elements and was read as a 2-value tensor.
      if (__builtin_mul_overflow(numel, static_cast<std::uint64_t>(d), &numel) || numel > data_size)
        return fail(errc::decode_failed,
                    name + ": shape " + shape_text(t.shape) + " claims more bytes than the file holds");
    }
    if (en < b || en - b != numel * static_cast<std::uint64_t>(width))
      return fail(errc::decode_failed, name + ": data_offsets [" + std::to_string(b) + ", " + std::to_string(en) +
                                           ") do not match shape " + shape_text(t.shape) + " of " + t.dtype);
    if (en > data_size) return fail(errc::decode_failed, "truncated: " + name + " ends past the end of the file");
    std::vector<std::uint8_t> raw(en - b);
    f.seekg(static_cast<std::streamoff>(8 + hlen + b));
    f.read(reinterpret_cast<char*>(raw.data()), static_cast<std::streamsize>(raw.size()));
    if (!f) return fail(errc::io, name + ": read failed");
    t.values.resize(static_cast<std::size_t>(numel));
    for (std::size_t i = 0; i < t.values.size(); ++i)
      t.values[i] = read_element(t.dtype, &raw[i * static_cast<std::size_t>(width)]);
    out.tensors.emplace(name, std::move(t));
  }
  return out;
}

result<void> write_safetensors(const std::filesystem::path& path, const st_file& file, const std::string& dtype) {
  const int width = dtype == "F32" ? 4 : dtype == "F16" || dtype == "BF16" ? 2 : 0;
  if (width == 0) return make_error(errc::invalid_argument, "safetensors: writes F32, F16 or BF16, not " + dtype);
  nlohmann::json h = nlohmann::json::object();
  if (!file.metadata.empty()) h["__metadata__"] = file.metadata;
  std::uint64_t off = 0;
  for (const auto& [name, t] : file.tensors) {
    const std::uint64_t bytes = t.values.size() * static_cast<std::uint64_t>(width);
    h[name] = {{"dtype", dtype}, {"shape", t.shape}, {"data_offsets", {off, off + bytes}}};
    off += bytes;
  }
  std::string head = h.dump();
  head.append((8 - head.size() % 8) % 8, ' ');  // data starts 8-byte aligned, as the spec advises
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return make_error(errc::io, "safetensors: cannot write " + path.string());
  std::uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(head.size()) >> (8 * i));
  f.write(reinterpret_cast<const char*>(len), 8);
  f.write(head.data(), static_cast<std::streamsize>(head.size()));
  std::vector<char> buf;
  for (const auto& [name, t] : file.tensors) {
    buf.resize(t.values.size() * static_cast<std::size_t>(width));
    for (std::size_t i = 0; i < t.values.size(); ++i) {  // little-endian regardless of the host
      std::uint32_t u = 0;
      if (dtype == "F32")
        std::memcpy(&u, &t.values[i], 4);
      else
        u = dtype == "BF16" ? to_bf16(t.values[i]) : float_to_half(t.values[i]);
      for (int k = 0; k < width; ++k) buf[i * static_cast<std::size_t>(width) + k] = static_cast<char>(u >> (8 * k));
    }
    f.write(buf.data(), static_cast<std::streamsize>(buf.size()));
  }
  f.close();
  if (!f) return make_error(errc::io, "safetensors: write failed for " + path.string());
  return {};
}

}  // namespace gfdit::dit
