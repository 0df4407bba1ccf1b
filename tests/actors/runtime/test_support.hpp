#pragma once
// Helpers for runtime tests: actors defined by lambdas, thread-safe collectors, unique
// endpoints, and (from tests/support) child processes that are always reaped.
#include <signal.h>
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
#include "tests/support/free_tcp_port.hpp"

namespace gfdit::testing {

class lambda_actor : public actor {
 public:
  using hook = std::function<result<void>(context&)>;
  explicit lambda_actor(hook configure, hook activate = {})
      : configure_(std::move(configure)), activate_(std::move(activate)) {}
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
  return "ipc:///tmp/gfdit-test-" + std::to_string(::getpid()) + "-" + tag + "-" + std::to_string(counter++);
}

}  // namespace gfdit::testing
