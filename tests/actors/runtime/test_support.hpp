#pragma once
// Helpers for runtime tests: actors defined by lambdas, thread-safe collectors, unique
// endpoints, and (from tests/support) child processes that are always reaped.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "actors/runtime/actor.hpp"
#include "actors/runtime/context.hpp"
#include "tests/support/child_process.hpp"

namespace gfdit::testing {

class lambda_actor : public actor {
 public:
  using hook = std::function<result<void>(context&)>;
  explicit lambda_actor(hook configure, hook activate = {}) : configure_(std::move(configure)), activate_(std::move(activate)) {}
  result<void> on_configure(context& ctx) override { return configure_ ? configure_(ctx) : result<void>{}; }
  result<void> on_activate(context& ctx) override { return activate_ ? activate_(ctx) : result<void>{}; }

 private:
  hook configure_, activate_;
};

template <class T>
class collector {
 public:
  void push(T v) {
    std::lock_guard lock(mu_);
    items_.push_back(std::move(v));
    cv_.notify_all();
  }
  bool wait_for(std::size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return items_.size() >= n; });
  }
  std::vector<T> items() const {
    std::lock_guard lock(mu_);
    return items_;
  }
  std::size_t size() const {
    std::lock_guard lock(mu_);
    return items_.size();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<T> items_;
};

inline std::string unique_ipc(const std::string& tag) {
  static std::atomic<int> counter{0};
  return "ipc:///tmp/gfdit-test-" + std::to_string(::getpid()) + "-" + tag + "-" +
         std::to_string(counter++);
}

// A TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it).
inline int free_tcp_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

}  // namespace gfdit::testing
