#pragma once
// The serving control plane's replayable cores (library gfdit_serving_replay): `gfdit replay
// BAG --actor scheduler|admission|membership` re-drives the actor's driver, the very object the
// live shell runs, from its recorded inputs. Calling this keeps the library (and its
// registrations) linked.
#include <string>
#include <vector>

namespace gfdit {
// The names the cores are registered under ("scheduler", "gfdit.scheduler", ...).
std::vector<std::string> serving_replay_cores();
}  // namespace gfdit
