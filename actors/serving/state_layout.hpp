#pragma once
// Where a request's state (its latent) lives, the one rule for when a task must move it, and
// which member of a group reports.
// On the wire a layout is its name (msg::artifact.layout, Reshard.to_layout); inside the serving
// domain it is this enum.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "messages/serving.hpp"

namespace gfdit {

enum class state_layout : std::uint8_t {
  none,           // not started
  owner_only,     // one worker holds all of it
  replicated,     // every holder has all of it
  token_sharded,  // holder i has the i-th token slice, in holder order
  checkpoint,     // only the host copy taken at the last chunk end survives
};

constexpr std::string_view to_string(state_layout l) noexcept {
  switch (l) {
    case state_layout::none:
      return "none";
    case state_layout::owner_only:
      return "owner_only";
    case state_layout::replicated:
      return "replicated";
    case state_layout::token_sharded:
      return "token_sharded";
    case state_layout::checkpoint:
      return "checkpoint";
  }
  return "?";
}

// Empty for a name no layout has.
constexpr std::optional<state_layout> layout_from_string(std::string_view s) noexcept {
  for (auto l : {state_layout::none, state_layout::owner_only, state_layout::replicated, state_layout::token_sharded,
                 state_layout::checkpoint})
    if (to_string(l) == s) return l;
  return std::nullopt;
}

// A task on `members` must first move the request's state there: the request has started and
// either only its checkpoint survives or it lives on other workers (or in another order). The
// scheduler sends a Reshard exactly then, and the workers move exactly then.
inline bool needs_move(const msg::artifact& from, std::span<const std::int32_t> members) noexcept {
  const auto l = layout_from_string(from.layout);
  return l != state_layout::none && (l == state_layout::checkpoint || !std::ranges::equal(from.holders, members));
}

// Of a group, its first member reports the task (the collectives make the members finish
// together): the sim and DiT workers both report by this rule.
inline bool reports(const msg::task_assign& t, std::int32_t worker) noexcept {
  return !t.members.empty() && t.members.front() == worker;
}

}  // namespace gfdit
