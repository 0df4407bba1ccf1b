#include "actors/serving/serving_actor_types.hpp"

namespace gfdit {
std::vector<std::string> serving_actor_types() {
  return {"gfdit.admission", "gfdit.scheduler",   "gfdit.membership",
          "gfdit.worker",    "gfdit.load_client", "gfdit.gateway"};
}
}  // namespace gfdit
