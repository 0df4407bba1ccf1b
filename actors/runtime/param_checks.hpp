#pragma once
// The validators actors give parameters::declare, written once: each returns "" for an
// acceptable value, else the reason ("must be > 0", "must be 'bus' or 'file'").
//   p.declare<std::int64_t>("chunk_steps", 4, "denoising steps per task", checks::above<std::int64_t>(0));
#include <functional>
#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

namespace gfdit::checks {

namespace detail {
template <class T>
std::string text(const T& v) {
  std::ostringstream s;
  s << v;
  return s.str();
}
}  // namespace detail

template <class T>
std::function<std::string(const T&)> above(T lo) {
  return [lo](const T& v) { return v > lo ? std::string() : "must be > " + detail::text(lo); };
}

template <class T>
std::function<std::string(const T&)> at_least(T lo) {
  return [lo](const T& v) { return v >= lo ? std::string() : "must be >= " + detail::text(lo); };
}

template <class T>
std::function<std::string(const T&)> within(T lo, T hi) {
  return [lo, hi](const T& v) {
    return v >= lo && v <= hi ? std::string() : "must be in [" + detail::text(lo) + ", " + detail::text(hi) + "]";
  };
}

// One of the listed words: "must be 'a', 'b' or 'c'".
inline std::function<std::string(const std::string&)> one_of(std::initializer_list<const char*> words) {
  std::vector<std::string> w(words.begin(), words.end());
  std::string reason = "must be ";
  for (std::size_t i = 0; i < w.size(); ++i)
    reason += (i == 0 ? "" : i + 1 == w.size() ? " or " : ", ") + ("'" + w[i] + "'");
  return [w = std::move(w), reason = std::move(reason)](const std::string& v) {
    for (const auto& x : w)
      if (v == x) return std::string();
    return reason;
  };
}

}  // namespace gfdit::checks
