#pragma once
// One hook that sees every envelope a node sends or delivers (the recorder's feed). When no tap
// is set, the cost is one relaxed atomic load per message.
#include <functional>

#include "messages/envelope.hpp"

namespace gfdit {

enum class tap_point { sent, delivered };

using tap_fn = std::function<void(const envelope&, tap_point)>;

}  // namespace gfdit
