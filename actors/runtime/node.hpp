#pragma once
// A node is one process hosting N actors on CAF, with one bus to the other nodes of the graph.
//
// Delivery semantics (also in the README):
// - Order is kept per sender -> receiver pair, in one process and across processes.
// - A directed message to an actor no node knows fails at once (send returns the error).
//   One that cannot be handed to its peer (peer gone or not connected, high-water mark held
//   past the send timeout) comes back to the sender as a delivery failure; requests fail with
//   it. Nothing is dropped silently.
// - An unanswered request gets a timeout error.
// - Topics reach every subscriber known when the message is published; a node learns a peer's
//   subscriptions from its hello (wait_for_peers() waits for all of them).
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/runtime/actor.hpp"
#include "actors/runtime/bus.hpp"
#include "actors/runtime/lifecycle.hpp"
#include "actors/runtime/tap.hpp"
#include "common/result.hpp"

namespace gfdit {

struct peer_endpoint {
  std::string node;
  std::string endpoint;
};

struct node_options {
  std::string name = "node";
  std::string bind = "tcp://127.0.0.1:*";  // never all interfaces by default
  std::vector<peer_endpoint> peers;
  int threads = 0;  // CAF worker threads; 0: one per core, between 2 and 4
  // Latency against CPU: how long idle threads keep polling before they sleep. Spinning pays
  // only where cores are spare, so by default it is on above 4 cores and off below.
  int spin_polls = many_cores() ? 1000 : 100;  // CAF worker polls of its queue
  std::chrono::microseconds bus_spin{many_cores() ? 50 : 0};

  static bool many_cores() { return std::thread::hardware_concurrency() > 4; }
  std::chrono::milliseconds send_timeout{5000};
  std::chrono::milliseconds peer_timeout{30000};  // start() waits this long for every peer
  int send_hwm = 100000;
  // The launch file's global parameters: an actor that declares one of these names and is not
  // given it in its own parameters takes this value (names it does not declare are not errors).
  nlohmann::json globals = nlohmann::json::object();
  // Keyed bus (CurveZMQ + ZAP, bus.hpp): this node's key pair is the one named after it, and
  // every frame must come from the key that owns its sender (speaker_check.hpp): `wiring`, the
  // graph's actor -> node (the launch file), fixes whose actor is whose. A frame that lies is
  // dropped, counted (bus_stats::forged) and logged.
  std::optional<bus_curve> curve;
  std::map<std::string, std::string> wiring;
  // Peers whose goodbye stops this node too: without a launcher (`gfdit node`, one per host), a
  // graph's `exit_on_done` process ending is how the others learn the graph is done.
  std::set<std::string> stop_with;
};

struct actor_info {
  std::string name;
  lifecycle_state state = lifecycle_state::unconfigured;
  std::uint64_t received = 0, sent = 0, unhandled = 0, decode_errors = 0, delivery_failures = 0;
  std::string metrics;  // the actor's own (context::set_metrics)
};

class node {
 public:
  // Blocks SIGINT/SIGTERM in the calling thread first, so every thread the node starts
  // inherits the mask and run_until_signal() is the one place that sees them.
  static result<std::unique_ptr<node>> create(node_options options);
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  // Before start(): the actors this node hosts, with parameter values that override their
  // declared defaults (a JSON object; a name the actor does not declare fails its configure).
  // `remaps` renames topics for this actor only (as the actor names them -> as the graph does),
  // for publishing and subscribing alike, so one actor type can be wired in several places.
  result<void> add(const std::string& name, std::unique_ptr<actor> a, nlohmann::json params = nlohmann::json::object(),
                   std::map<std::string, std::string> remaps = {});
  // Spawns and configures every actor (in the order added), exchanges hellos with every peer,
  // then activates the actors. Fails if a transition fails or a peer stays silent.
  result<void> start();
  // True once every configured peer has said hello (so its actors and topics are known).
  bool wait_for_peers(std::chrono::milliseconds timeout);
  // Blocks until SIGINT/SIGTERM or request_stop(), then stops; returns the exit status.
  int run_until_signal();
  // Deactivates every actor, flushes the bus, shuts the actors down. Idempotent.
  void stop();
  void request_stop();
  bool stop_requested() const;

  // Any lifecycle transition of one actor, from outside it; returns its error.
  result<void> transition_actor(const std::string& actor, transition t);
  // Sends an envelope into the graph as if from env.sender (players, tools, tests).
  result<void> inject(envelope env);
  void set_tap(tap_fn fn);
  // Adds a tap beside the one set (both see every envelope, the earlier one first). Not
  // thread-safe against set_tap/add_tap; call before start().
  void add_tap(tap_fn fn);
  // The dispatch-order hook (tap.hpp): sees each message on the handling actor's thread, in the
  // order it handled them. Call before start(); a later call replaces the earlier one.
  void set_handled_tap(handled_tap_fn fn);

  const std::string& name() const;
  const std::string& endpoint() const;
  std::vector<actor_info> actors() const;
  // Topics the local actors subscribe to (as the graph names them) -> those actors.
  std::map<std::string, std::vector<std::string>> subscriptions() const;
  bus_stats transport_stats() const;

 private:
  struct impl;
  explicit node(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace gfdit
