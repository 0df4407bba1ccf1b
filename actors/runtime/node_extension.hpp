#pragma once
// Node extensions: what a library does to every graph process's node, registered when the
// library loads, so the command that hosts the process (`gfdit node`) runs it without naming
// the library. The recorder's tap is one: linking gfdit_recorder (or loading it as a plugin)
// is enough for its recorders to see every envelope of the process.
//   GFDIT_REGISTER_NODE_EXTENSION("gfdit.recorder_tap", install_recorder_tap);
#include <functional>
#include <string>
#include <vector>

#include "actors/runtime/registry.hpp"  // GFDIT_CONCAT

namespace gfdit {

class node;

// Called with the node once its actors are added, before start() (so taps miss nothing).
using node_extension = std::function<void(node&)>;

class node_extension_registry {
 public:
  static node_extension_registry& global();
  // Registering a name twice keeps the first and returns false.
  bool add(const std::string& name, node_extension fn);
  // Runs every extension on `n`, in registration order.
  void apply(node& n) const;
  std::vector<std::string> names() const;

 private:
  std::vector<std::pair<std::string, node_extension>> entries_;
};

}  // namespace gfdit

#define GFDIT_REGISTER_NODE_EXTENSION(name, fn)                     \
  static const bool GFDIT_CONCAT(gfdit_node_extension_, __LINE__) = \
      ::gfdit::node_extension_registry::global().add(name, fn)
