#pragma once
// The stages of a request's trajectory: prepare -> denoise chunks -> decode. On the wire a stage
// is its name (TaskAssign.stage, TaskDone.stage); inside the serving domain it is this enum.
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace gfdit {

enum class stage : std::uint8_t { prepare, denoise, decode };

constexpr std::string_view to_string(stage s) noexcept {
  switch (s) {
    case stage::prepare:
      return "prepare";
    case stage::denoise:
      return "denoise";
    case stage::decode:
      return "decode";
  }
  return "?";
}

inline result<stage> stage_from_string(std::string_view s) {
  for (auto v : {stage::prepare, stage::denoise, stage::decode})
    if (to_string(v) == s) return v;
  return make_error(errc::invalid_argument, "unknown stage '" + std::string(s) + "'");
}

}  // namespace gfdit
