#pragma once
// A command-line tool joining a running graph for a moment, through the bus itself: it greets
// every node as a node would (a node_hello naming one actor and the topics it wants), so the
// graph routes those topics and replies to it like to any actor. Leaving sends a hello with no
// actors and no topics, so no node keeps publishing to it. On a keyed graph it joins with a
// key of the graph's folder: its node is then "KEY~cli-PID", which that key may speak for.
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "actors/runtime/bus.hpp"
#include "common/result.hpp"
#include "launch/lib/graph_keys.hpp"
#include "messages/envelope.hpp"

namespace gfdit::launch {

struct graph_node {
  std::string node;
  std::string endpoint;
};

class graph_peer {
 public:
  using on_message = std::function<void(const envelope&)>;  // runs on the bus thread
  static result<std::unique_ptr<graph_peer>> join(const std::vector<graph_node>& nodes, std::vector<std::string> topics,
                                                  on_message fn, std::chrono::milliseconds timeout,
                                                  std::optional<tool_key> key = {});
  ~graph_peer();

  // A request to `actor`, answered by its reply (or the failure the graph sent back).
  result<envelope> request(const std::string& actor, std::uint32_t type_id, std::uint16_t version, std::string payload,
                           std::chrono::milliseconds timeout);
  std::vector<std::string> actors() const;  // every actor the nodes announced

 private:
  graph_peer() = default;
  void receive(envelope&& env);
  void greet(const std::string& peer, bool leaving, bool want_reply);

  std::unique_ptr<bus> bus_;
  std::string node_, actor_;
  std::vector<std::string> topics_;
  std::vector<std::string> peers_;
  on_message fn_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> greeted_;
  std::map<std::string, std::string> actor_nodes_;
  std::map<std::uint64_t, envelope> replies_;
  std::uint64_t seq_ = 0;
};

}  // namespace gfdit::launch
