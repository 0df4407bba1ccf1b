#pragma once
// The ZAP handler (ZeroMQ RFC 27) of one ZeroMQ context: without it a CURVE server encrypts
// but accepts any client key. It binds inproc://zeromq.zap.01 in the context (one per context,
// before any CURVE server socket of it takes a connection), accepts exactly the public keys of
// a key ring and answers each with the key's name as User-Id, which every message received
// over that connection then carries (zmq_msg_gets(msg, "User-Id")). Refusals are counted and
// logged, at most one line a second.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "actors/runtime/curve_keys.hpp"
#include "common/result.hpp"

namespace gfdit {

class zap_handler {
 public:
  // `owner` names the process in the log lines ("node 'control'", "control endpoint").
  static result<std::unique_ptr<zap_handler>> start(void* zmq_context, key_ring accepted, std::string owner);
  ~zap_handler();
  zap_handler(const zap_handler&) = delete;
  zap_handler& operator=(const zap_handler&) = delete;

  std::uint64_t accepted() const { return accepted_.load(); }
  std::uint64_t refused() const { return refused_.load(); }

 private:
  zap_handler() = default;
  void serve();

  void* socket_ = nullptr;
  key_ring ring_;
  std::string owner_;
  std::atomic<bool> running_{true};
  std::atomic<std::uint64_t> accepted_{0}, refused_{0};
  std::thread thread_;
};

}  // namespace gfdit
