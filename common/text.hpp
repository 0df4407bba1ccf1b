#pragma once
// Small text helpers every module needs: a whole file as a string, a list joined for a message.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
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
    return make_error(errc::too_large,
                      path.string() + ": " + std::to_string(size) + " bytes (at most " + std::to_string(max_bytes) + ")");
  auto text = read_text(path.string());
  if (!text) return make_error(errc::io, path.string() + ": cannot read");
  return std::move(*text);
}

inline std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

}  // namespace gfdit
