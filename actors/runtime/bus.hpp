#pragma once
// The process's one ZeroMQ choke point. Inbound: one ROUTER bound at this node's endpoint,
// read by the bus thread. Outbound: one DEALER per peer node, so order is kept per sender ->
// receiver pair; the posting thread sends on it itself under the peer's lock (no hand-off),
// and the bus thread, woken by an eventfd, sends bursts and retries what ZeroMQ could not take.
//
// Nothing is dropped silently: a frame that cannot be handed to ZeroMQ (peer not connected,
// high-water mark reached) is retried until `send_timeout`, then reported through
// on_send_failed. Inbound frames are decoded with bounded limits; bad ones are counted.
//
// Keyed (bus_options::curve): the ROUTER is a CURVE server whose ZAP handler accepts only the
// key ring's public keys, each DEALER a CURVE client that checks its peer's public key, and
// every inbound frame is handed on with the name of the key that sent it.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "actors/runtime/curve_keys.hpp"
#include "common/result.hpp"
#include "messages/codec.hpp"
#include "messages/envelope.hpp"

namespace gfdit {

struct bus_curve {
  curve_key_pair own;  // this process's pair
  key_ring accepted;   // who may connect, and the public key of every peer it connects to
};

struct bus_options {
  std::string node;       // this node's name (its ZeroMQ routing id)
  std::string bind;       // ipc://path or tcp://addr:port ("tcp://127.0.0.1:*")
  int send_hwm = 100000;  // frames queued per peer before backpressure
  int receive_hwm = 100000;
  std::chrono::milliseconds send_timeout{5000};  // how long a frame may wait for its peer
  std::chrono::milliseconds linger{2000};        // flush time at shutdown
  // After traffic, the bus thread polls without sleeping this long, so the next frame (or the
  // answer to this one) is picked up without a thread wake-up. Zero: always sleep.
  std::chrono::microseconds spin{50};
  // Posts to one peer closer together than this are a burst: the bus thread sends them back to
  // back instead of the posting thread one by one. A lone post (a request, a reply) never waits.
  std::chrono::microseconds burst_gap{10};
  decode_limits limits{};
  std::optional<bus_curve> curve;  // none: plain ZeroMQ (loopback and ipc graphs)
};

struct bus_stats {
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  std::uint64_t failed = 0;         // frames reported through on_send_failed
  std::uint64_t decode_errors = 0;  // inbound frames that did not decode
  std::uint64_t refused = 0;        // connections whose key the ZAP handler refused
  std::uint64_t forged = 0;         // frames dropped for speaking for someone else (counted by the node)
};

// What a failed frame was, so the node can tell its sender.
struct send_failure {
  std::string peer;
  envelope env;  // payload cleared
  std::string reason;
  // True when only waiting ran out (the peer may come up later); false when retrying cannot
  // help (no connection could be made, the bus stopped).
  bool transient = false;
};

class bus {
 public:
  struct callbacks {
    // Runs on the bus thread; `key` names the key the frame came with (empty when not keyed).
    std::function<void(envelope&&, const std::string& key)> on_receive;
    std::function<void(send_failure&&)> on_send_failed;  // runs on the bus thread
    // An inbound frame that did not decode (counted in decode_errors), with why; bus thread.
    std::function<void(const std::string& why)> on_undecodable;
    // After the frames of one read of the socket (up to 1024), so a receiver can hand each of
    // its actors that read's frames together; bus thread.
    std::function<void()> on_burst_end;
  };

  static result<std::unique_ptr<bus>> create(bus_options options, callbacks cbs);
  ~bus();
  bus(const bus&) = delete;
  bus& operator=(const bus&) = delete;

  // The endpoint actually bound (a tcp wildcard port resolved).
  const std::string& endpoint() const;
  const std::string& node() const;

  // Thread-safe. Connects a DEALER to a peer node's endpoint (idempotent per name). Keyed, the
  // peer must hold the key named `key` (default: the node's name).
  void add_peer(const std::string& node, const std::string& endpoint, const std::string& key = {});
  // Thread-safe. Encodes on the calling thread and hands the frame to ZeroMQ there; only a
  // frame ZeroMQ cannot take now (or one that fails) goes to the bus thread, which retries it
  // in order and reports failures. The span form encodes once for every peer (a publish).
  void post(const std::string& peer, const envelope& env);
  void post(std::span<const std::string> peers, const envelope& env);
  // Shared: a payload of 16 KiB or more is not copied; it follows its header as a frame of its
  // own, which ZeroMQ sends from `env` itself (holding a reference until it is sent).
  void post(std::span<const std::string> peers, const envelope_ptr& env);
  // Blocks until every queued frame was handed to ZeroMQ or failed, or the timeout passes.
  bool flush(std::chrono::milliseconds timeout);

  bus_stats stats() const;

 private:
  struct impl;
  explicit bus(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace gfdit
