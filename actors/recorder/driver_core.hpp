#pragma once
// A driver (actors/<name>/<name>_driver.hpp: inbound message in, outgoing messages out) as a
// replayable core: `gfdit replay --actor NAME` re-drives the very object the live shell runs,
// building each output envelope exactly as driver_actor sends it. A core factory reads its
// options with replay_setting and checks their names with check_replay_options.
#include <algorithm>
#include <charconv>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "actors/recorder/replay.hpp"
#include "actors/runtime/outgoing.hpp"

namespace gfdit {

template <class Driver>
class driver_core final : public replayable_core {
 public:
  using state_fn = nlohmann::json (*)(const Driver&);
  driver_core(std::unique_ptr<Driver> d, std::string self, state_fn state = nullptr)
      : driver_(std::move(d)), self_(std::move(self)), state_(state) {}

  std::vector<envelope> feed(const envelope& in) override {
    std::vector<envelope> out;
    for (auto& o : driver_->feed(in)) out.push_back(to_envelope(std::move(o), self_));
    return out;
  }
  std::vector<std::string> topics() const override { return driver_->topics(); }
  nlohmann::json state() const override { return state_ ? state_(*driver_) : nlohmann::json::object(); }

 private:
  std::unique_ptr<Driver> driver_;
  std::string self_;
  state_fn state_;
};

// Options the core does not know are an error naming them (a typo must not replay silently).
inline result<void> check_replay_options(const replay_params& p, const std::vector<std::string_view>& known) {
  for (const auto& [key, value] : p.options.items())
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string names;
      for (auto n : known) names += (names.empty() ? "" : ", ") + std::string(n);
      return make_error(errc::invalid_argument,
                        "replay: the " + p.actor + " has no option '" + key + "' (it has " + names + ")");
    }
  return {};
}

// The value of `key`: the command line's option, else the recorded parameter, else `fallback`.
// A string (the command line's) must be a number as a whole where a number is wanted.
template <class T>
result<T> replay_setting(const replay_params& p, const std::string& key, T fallback) {
  const nlohmann::json* v = nullptr;
  if (p.options.contains(key))
    v = &p.options[key];
  else if (p.parameters.contains(key))
    v = &p.parameters[key];
  if (!v) return fallback;
  auto bad = [&](const char* what) {
    return make_error(errc::invalid_argument, "replay option '" + key + "' = " + v->dump() + ": " + what);
  };
  if (v->is_string()) {
    const auto& s = v->get_ref<const std::string&>();
    if constexpr (std::is_same_v<T, std::string>) {
      return s;
    } else if constexpr (std::is_same_v<T, bool>) {
      if (s == "true" || s == "false") return s == "true";
      return bad("not true or false");
    } else {
      T out{};
      const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
      if (ec != std::errc() || end != s.data() + s.size())
        return bad(std::is_floating_point_v<T> ? "not a number" : "not an integer");
      return out;
    }
  }
  try {
    return v->get<T>();
  } catch (const std::exception&) {
    return bad(std::is_same_v<T, std::string> ? "not a string" : "not a number");
  }
}

}  // namespace gfdit
