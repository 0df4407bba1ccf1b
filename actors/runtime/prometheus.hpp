#pragma once
// Prometheus' text exposition format, the few pieces every metrics writer needs: a family's
// HELP and TYPE lines, and a sample with its labels (values escaped).
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace gfdit::prom {

using labels = std::vector<std::pair<std::string, std::string>>;

inline void family(std::string& out, const std::string& name, const char* type, const char* help) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

inline std::string escaped(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    if (c == '\\' || c == '"') out += '\\';
    out += c;
  }
  return out;
}

inline void sample(std::string& out, const std::string& name, const labels& ls, double value) {
  out += name;
  if (!ls.empty()) {
    out += '{';
    for (std::size_t i = 0; i < ls.size(); ++i)
      out += (i ? "," : "") + ls[i].first + "=\"" + escaped(ls[i].second) + "\"";
    out += '}';
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, " %.15g\n", value);
  out += buf;
}

}  // namespace gfdit::prom
