#include "actors/serving/serving_replay.hpp"

namespace gfdit {
std::vector<std::string> serving_replay_cores() {
  return {"admission", "gfdit.admission", "gfdit.membership", "gfdit.scheduler", "membership", "scheduler"};
}
}  // namespace gfdit
