#pragma once
// The example family used by examples/ping_pong and the bus benchmark.
#include <cstdint>
#include <string>
#include <string_view>

#include "messages/message.hpp"

namespace gfdit::msg {

struct ping {
  static constexpr std::string_view type_name = "example.ping";
  static constexpr std::uint16_t type_version = 1;
  std::uint64_t count = 0;
  std::string data;
  GFDIT_FIELDS(count, data)
};

struct pong {
  static constexpr std::string_view type_name = "example.pong";
  static constexpr std::uint16_t type_version = 1;
  std::uint64_t count = 0;
  std::string data;
  GFDIT_FIELDS(count, data)
};

}  // namespace gfdit::msg
