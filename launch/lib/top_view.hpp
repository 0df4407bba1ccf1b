#pragma once
// `gfdit top`: one frame of the live view, from the scheduler's snapshot (serving.cluster_state
// on topic "serving.state"): the counts, a cell per worker (busy ones with their group), and a
// row per request with a progress bar of its steps.
#include <string>

#include "messages/serving.hpp"

namespace gfdit::launch {

std::string render_top(const msg::cluster_state& s, const std::string& graph);

}  // namespace gfdit::launch
