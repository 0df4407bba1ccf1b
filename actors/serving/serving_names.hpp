#pragma once
// Topic and actor names the serving graph agrees on: the drivers address their outputs with
// them, the simulator delivers by them.
#include <cstdint>
#include <string>

namespace gfdit::serving_names {
inline constexpr const char* admission = "admission";
inline constexpr const char* scheduler = "scheduler";
inline constexpr const char* membership = "membership";
inline constexpr const char* done_topic = "serving.done";
inline constexpr const char* preempt_topic = "serving.preempt";
inline constexpr const char* membership_topic = "membership";
inline constexpr const char* workers_topic = "workers";
inline constexpr const char* state_topic = "serving.state";  // the scheduler's view (gfdit top)
inline std::string worker(std::int32_t id) { return "worker-" + std::to_string(id); }
}  // namespace gfdit::serving_names
