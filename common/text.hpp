#pragma once
// Small text helpers every module needs: a whole file as a string, a list joined for a message.
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace gfdit {

// The file's bytes; nullopt when it cannot be opened.
inline std::optional<std::string> read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

}  // namespace gfdit
