#pragma once
// The scheduler's replayable core (library gfdit_serving_replay): `gfdit replay BAG --actor
// scheduler` re-drives scheduler_driver, the very object the live shell runs, from the
// scheduler's recorded inputs. Calling this keeps the library (and its registration) linked.
#include <string>
#include <vector>

namespace gfdit {
// The names the scheduler's core is registered under: "scheduler", "gfdit.scheduler".
std::vector<std::string> serving_replay_cores();
}  // namespace gfdit
