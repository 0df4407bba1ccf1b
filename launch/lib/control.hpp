#pragma once
// The control protocol: one JSON object per request, one per reply, over ZeroMQ REQ/REP.
// The launcher serves it on 127.0.0.1 (`gfdit actor list` and friends ask it); each launched
// process serves it on an ipc endpoint in the run folder (the launcher asks those).
// Every reply has "ok": true, or "ok": false and "error".
//
// A server bound with a token answers only requests carrying it ("token": ...): the launcher's
// token sits in a 0600 file (commands.hpp: control_token_for), so knowing the port (the
// announcement is world-readable) is not enough to stop a graph or list its actors. A keyed
// graph's launcher serves CurveZMQ as well (its ZAP handler accepts the graph's keys only).
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "actors/runtime/curve_keys.hpp"
#include "actors/runtime/zap_handler.hpp"
#include "common/result.hpp"

namespace gfdit::launch {

// CURVE on a control socket. A server: its pair and the keys it accepts; a client: its pair and
// the server's public key.
struct control_curve {
  curve_key_pair own;
  key_ring accepted;
  std::string server_public;
};

// Sends `request`, waits at most `timeout` for the reply. A fresh socket per call, so a lost
// reply never wedges the next one.
result<nlohmann::json> control_request(const std::string& endpoint, const nlohmann::json& request,
                                       std::chrono::milliseconds timeout, const std::string& token = {},
                                       const control_curve* curve = nullptr);

// A fresh random token (256 bits, hex) written to `path` (created exclusively, mode 0600).
result<std::string> make_control_token(const std::string& path);
// A token file's text; refuses a file other users may read.
result<std::string> read_control_token(const std::string& path);

class control_server {
 public:
  using handler = std::function<nlohmann::json(const nlohmann::json&)>;
  // "tcp://127.0.0.1:0" binds a free port; endpoint() tells which. With a token, a request
  // without it gets {"ok": false, "error": "not authorized ..."} and reaches no handler.
  static result<std::unique_ptr<control_server>> bind(const std::string& endpoint, std::string token = {},
                                                      const control_curve* curve = nullptr);
  ~control_server();
  control_server(const control_server&) = delete;
  control_server& operator=(const control_server&) = delete;

  const std::string& endpoint() const { return endpoint_; }
  void* socket() const { return socket_; }  // for zmq_poll beside other descriptors
  // Serves at most one request, waiting up to `timeout_ms` (0: only if one is ready).
  bool serve_one(const handler& fn, int timeout_ms);

 private:
  control_server() = default;
  void* socket_ = nullptr;
  std::string endpoint_;
  std::string token_;
  std::unique_ptr<zap_handler> zap_;  // keyed only (one per context: one keyed server a process)
};

// The process's ZeroMQ context for control sockets (never terminated: linger is zero).
void* control_context();

}  // namespace gfdit::launch
