#pragma once
// Prometheus' text exposition format, the few pieces every metrics writer needs: a family's
// HELP and TYPE lines, a sample with its labels (values escaped), and a histogram.
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

// A histogram with fixed upper bounds: observe() a value, write() its _bucket (cumulative, then
// +Inf), _sum and _count samples under `name` (the family's HELP/TYPE lines are the caller's).
class histogram {
 public:
  explicit histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size(), 0) {}
  void observe(double v) {
    for (std::size_t i = 0; i < bounds_.size(); ++i)
      if (v <= bounds_[i]) {
        ++counts_[i];
        break;
      }
    ++count_;
    sum_ += v;
  }
  std::uint64_t count() const { return count_; }
  void write(std::string& out, const std::string& name, labels ls) const {
    std::uint64_t cumulative = 0;
    ls.emplace_back("le", "");
    for (std::size_t i = 0; i < bounds_.size(); ++i) {
      cumulative += counts_[i];
      char le[32];
      std::snprintf(le, sizeof le, "%g", bounds_[i]);
      ls.back().second = le;
      sample(out, name + "_bucket", ls, static_cast<double>(cumulative));
    }
    ls.back().second = "+Inf";
    sample(out, name + "_bucket", ls, static_cast<double>(count_));
    ls.pop_back();
    sample(out, name + "_sum", ls, sum_);
    sample(out, name + "_count", ls, static_cast<double>(count_));
  }

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> counts_;  // per bucket (not cumulative)
  std::uint64_t count_ = 0;
  double sum_ = 0.0;
};

}  // namespace gfdit::prom
