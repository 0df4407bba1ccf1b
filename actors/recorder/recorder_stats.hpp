#pragma once
// What a recorder reports live (on its stats topic, every stats_ms, and when it stops), so a
// writer that cannot keep up is visible while it happens, not at close.
#include <cstdint>
#include <string>
#include <string_view>

#include "messages/message.hpp"

namespace gfdit::msg {

struct recorder_stats {
  static constexpr std::string_view type_name = "recorder.stats";
  static constexpr std::uint16_t type_version = 1;
  std::string recorder;
  std::string path;
  std::uint64_t recorded = 0;  // envelopes handed to the writer
  std::uint64_t dropped = 0;   // overflow "drop": envelopes not recorded (never silent)
  std::uint64_t blocked = 0;   // overflow "block": times a sender waited for the writer
  std::uint64_t bytes = 0;     // written to the file
  std::uint64_t chunks = 0;
  std::uint64_t queued_bytes = 0;  // waiting for the writer now
  std::string error;               // the writer's failure, if any (then everything drops)
  GFDIT_FIELDS(recorder, path, recorded, dropped, blocked, bytes, chunks, queued_bytes, error)
};

}  // namespace gfdit::msg
