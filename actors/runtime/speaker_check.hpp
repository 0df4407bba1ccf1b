#pragma once
// Who may speak for whom on a keyed bus. CURVE + ZAP tell a node which key sent a frame (its
// name, the ZAP User-Id); this pure core decides whether that key may send a frame whose
// envelope names `sender`, so a node holding a valid key still cannot speak for another node's
// actors, take over its name, or forge its hellos.
//
// - A node name belongs to the key of the same name. A tool joining the graph (gfdit topic
//   echo, param, top) names its node "KEY~cli-PID": it belongs to KEY.
// - An actor of the launch file (the wiring: actor -> node) belongs to its node's key, whatever
//   a hello says; a hello announcing another node's actor is refused.
// - Any other actor (a tool's) belongs to the node whose hello announced it first, until that
//   node says goodbye.
// - "$node:N" (hellos, delivery failures) belongs to node N's key.
#include <map>
#include <string>

#include "common/result.hpp"
#include "messages/system.hpp"

namespace gfdit {

class speaker_check {
 public:
  explicit speaker_check(std::map<std::string, std::string> wiring = {}) : wiring_(std::move(wiring)) {}

  static bool owns_node(const std::string& key, const std::string& node);

  // A hello (or goodbye) sent with `key`: refused when the key does not own the node or the
  // hello claims an actor that is someone else's; otherwise its actors are remembered.
  result<void> hello(const std::string& key, const msg::node_hello& h);
  // Whether `key` may send an envelope whose sender is `sender`.
  result<void> check(const std::string& key, const std::string& sender) const;

 private:
  std::map<std::string, std::string> wiring_;     // actor -> node, from the launch file
  std::map<std::string, std::string> announced_;  // actor outside the wiring -> node that announced it
};

}  // namespace gfdit
