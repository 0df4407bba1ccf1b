#include "actors/runtime/speaker_check.hpp"

namespace gfdit {
namespace {
constexpr std::string_view node_prefix = "$node:";
}

bool speaker_check::owns_node(const std::string& key, const std::string& node) {
  if (key.empty()) return false;
  return node == key ||
         (node.size() > key.size() + 1 && node.compare(0, key.size(), key) == 0 && node[key.size()] == '~');
}

result<void> speaker_check::hello(const std::string& key, const msg::node_hello& h) {
  if (!owns_node(key, h.node))
    return make_error(errc::invalid_argument, "key '" + key + "' sent a hello for node '" + h.node + "'");
  for (const auto& a : h.actors) {
    if (auto w = wiring_.find(a); w != wiring_.end()) {
      if (w->second != h.node)
        return make_error(errc::invalid_argument, "node '" + h.node + "' announced actor '" + a +
                                                      "', which the launch file places on node '" + w->second + "'");
      continue;
    }
    if (auto it = announced_.find(a); it != announced_.end() && it->second != h.node)
      return make_error(errc::invalid_argument, "node '" + h.node + "' announced actor '" + a +
                                                    "', announced already by node '" + it->second + "'");
  }
  for (auto it = announced_.begin(); it != announced_.end();)
    it = it->second == h.node ? announced_.erase(it) : std::next(it);
  if (h.endpoint.empty()) return {};  // a goodbye: its actors are free again
  for (const auto& a : h.actors)
    if (!wiring_.count(a)) announced_[a] = h.node;
  return {};
}

result<void> speaker_check::check(const std::string& key, const std::string& sender) const {
  std::string node;
  if (sender.compare(0, node_prefix.size(), node_prefix) == 0) {
    node = sender.substr(node_prefix.size());
  } else if (auto w = wiring_.find(sender); w != wiring_.end()) {
    node = w->second;
  } else if (auto a = announced_.find(sender); a != announced_.end()) {
    node = a->second;
  } else {
    return make_error(errc::invalid_argument,
                      "key '" + key + "' sent a frame from actor '" + sender + "', which no node announced");
  }
  if (!owns_node(key, node))
    return make_error(errc::invalid_argument,
                      "key '" + key + "' sent a frame from '" + sender + "', which belongs to node '" + node + "'");
  return {};
}

}  // namespace gfdit
