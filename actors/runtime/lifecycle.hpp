#pragma once
// The lifecycle of an actor, as in ROS 2 managed nodes:
//   unconfigured --configure--> inactive --activate--> active --deactivate--> inactive
//   any --shutdown--> finalized
#include <optional>
#include <string_view>

namespace gfdit {

enum class lifecycle_state { unconfigured, inactive, active, finalized };
enum class transition { configure, activate, deactivate, shutdown };

constexpr std::string_view to_string(lifecycle_state s) noexcept {
  switch (s) {
    case lifecycle_state::unconfigured:
      return "unconfigured";
    case lifecycle_state::inactive:
      return "inactive";
    case lifecycle_state::active:
      return "active";
    case lifecycle_state::finalized:
      return "finalized";
  }
  return "?";
}

constexpr std::string_view to_string(transition t) noexcept {
  switch (t) {
    case transition::configure:
      return "configure";
    case transition::activate:
      return "activate";
    case transition::deactivate:
      return "deactivate";
    case transition::shutdown:
      return "shutdown";
  }
  return "?";
}

inline std::optional<transition> parse_transition(std::string_view s) {
  for (auto t : {transition::configure, transition::activate, transition::deactivate, transition::shutdown})
    if (to_string(t) == s) return t;
  return std::nullopt;
}

// The state a transition leads to, or nullopt when it is not legal from `from`.
constexpr std::optional<lifecycle_state> next_state(lifecycle_state from, transition t) {
  switch (t) {
    case transition::configure:
      if (from == lifecycle_state::unconfigured) return lifecycle_state::inactive;
      break;
    case transition::activate:
      if (from == lifecycle_state::inactive) return lifecycle_state::active;
      break;
    case transition::deactivate:
      if (from == lifecycle_state::active) return lifecycle_state::inactive;
      break;
    case transition::shutdown:
      if (from != lifecycle_state::finalized) return lifecycle_state::finalized;
      break;
  }
  return std::nullopt;
}

}  // namespace gfdit
