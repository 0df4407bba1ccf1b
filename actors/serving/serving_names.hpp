#pragma once
// Topic and actor names the serving graph agrees on: the drivers address their outputs with
// them, the simulator delivers by them.
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

namespace gfdit::serving_names {
inline constexpr const char* admission = "admission";
inline constexpr const char* scheduler = "scheduler";
inline constexpr const char* membership = "membership";
inline constexpr const char* done_topic = "serving.done";
inline constexpr const char* preempt_topic = "serving.preempt";
inline constexpr const char* membership_topic = "membership";
inline constexpr const char* workers_topic = "workers";
inline constexpr const char* state_topic = "serving.state";  // the scheduler's view (gfdit top)
inline constexpr std::string_view worker_prefix = "worker-";
inline std::string worker(std::int32_t id) {
  char digits[12];
  const auto end = std::to_chars(digits, digits + sizeof digits, id).ptr;
  std::string name(worker_prefix);
  name.append(digits, end);
  return name;
}
// The id in a name worker() made, or -1 for any other name.
inline std::int32_t worker_id(std::string_view name) {
  if (!name.starts_with(worker_prefix)) return -1;
  name.remove_prefix(worker_prefix.size());
  if (name.size() > 1 && name[0] == '0') return -1;  // worker() writes no leading zero
  std::uint32_t id = 0;
  const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), id);
  if (ec != std::errc() || end != name.data() + name.size() || id > 0x7fffffffu) return -1;
  return static_cast<std::int32_t>(id);
}
}  // namespace gfdit::serving_names
