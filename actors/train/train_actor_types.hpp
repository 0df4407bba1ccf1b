#pragma once
// The actor types gfdit_train_actors registers when it is loaded; naming them keeps the library
// linked into a binary that never refers to it otherwise.
#include <string>
#include <string_view>
#include <vector>

namespace gfdit {
std::vector<std::string> train_actor_types();
// launch/graphs/train.yaml as it was built (`gfdit train` writes it beside the run and launches it).
std::string_view train_graph_text();
}  // namespace gfdit
