#pragma once
// Linking this library registers the serving actor types; calling this makes sure the linker
// keeps it (and says which types they are).
#include <string>
#include <vector>

namespace gfdit {
std::vector<std::string> serving_actor_types();
}
