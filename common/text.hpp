#pragma once
// Small text helpers every module needs: a whole file as a string (read, or written atomically), a list joined for a
// message, UTF-8 validity, a secret compared in constant time.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace gfdit {

// The file's bytes; nullopt when it cannot be opened.
inline std::optional<std::string> read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The file's bytes when it holds at most `max_bytes` (checked before reading, so a huge or
// endless file is refused unread); errors name the file.
inline result<std::string> read_text(const std::filesystem::path& path, std::uintmax_t max_bytes) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return make_error(errc::not_found, path.string() + ": " + ec.message());
  if (size > max_bytes)
    return make_error(errc::too_large, path.string() + ": " + std::to_string(size) + " bytes (at most " +
                                           std::to_string(max_bytes) + ")");
  auto text = read_text(path.string());
  if (!text) return make_error(errc::io, path.string() + ": cannot read");
  return std::move(*text);
}

// Writes `text` beside `path` and renames it there, so a reader sees the old file or the new
// one, never a part; errors name the file.
inline result<void> write_text_atomically(const std::filesystem::path& path, std::string_view text) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(text.data(), static_cast<std::streamsize>(text.size()));
    if (!f) return make_error(errc::io, "cannot write " + tmp.string());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return make_error(errc::io, "cannot rename " + tmp.string() + ": " + ec.message());
  return {};
}

// The length of the valid UTF-8 sequence that starts `s` (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), 0 when none does.
inline std::size_t utf8_sequence(std::string_view s) {
  if (s.empty()) return 0;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const unsigned char c = p[0];
  if (c < 0x80) return 1;
  std::size_t len = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // the range of the second byte
  if (c >= 0xc2 && c <= 0xdf)
    len = 2;
  else if (c == 0xe0)
    len = 3, lo = 0xa0;
  else if (c == 0xed)
    len = 3, hi = 0x9f;
  else if (c >= 0xe1 && c <= 0xef)
    len = 3;
  else if (c == 0xf0)
    len = 4, lo = 0x90;
  else if (c >= 0xf1 && c <= 0xf3)
    len = 4;
  else if (c == 0xf4)
    len = 4, hi = 0x8f;
  else
    return 0;
  if (s.size() < len || p[1] < lo || p[1] > hi) return 0;
  for (std::size_t i = 2; i < len; ++i)
    if (p[i] < 0x80 || p[i] > 0xbf) return 0;
  return len;
}

// The length of the longest prefix of `s` that is valid UTF-8: s.size() when all of it is.
inline std::size_t utf8_valid_prefix(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto len = utf8_sequence(s.substr(i));
    if (len == 0) break;
    i += len;
  }
  return i;
}

inline std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

// Whether `given` equals the secret `want`, in a time that depends on want's length only: how
// long a refusal takes tells nothing of a key or token.
inline bool same_secret(std::string_view want, std::string_view given) noexcept {
  unsigned char diff = want.size() == given.size() ? 0 : 1;
  for (std::size_t i = 0; i < want.size(); ++i)
    diff |= static_cast<unsigned char>(want[i] ^ (i < given.size() ? given[i] : 0));
  return diff == 0;
}

}  // namespace gfdit
