#include "actors/train/train_actor_types.hpp"

namespace gfdit {
std::vector<std::string> train_actor_types() { return {"gfdit.train_coordinator", "gfdit.trainer"}; }
}  // namespace gfdit
