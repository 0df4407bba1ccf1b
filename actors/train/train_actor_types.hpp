#pragma once
// The actor types gfdit_train_actors registers when it is loaded; naming them keeps the library
// linked into a binary that never refers to it otherwise.
#include <string>
#include <vector>

namespace gfdit {
std::vector<std::string> train_actor_types();
}  // namespace gfdit
