#include "launch/lib/probe.hpp"

#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <cstdio>

#include <map>
#include <mutex>

#include <spdlog/sinks/null_sink.h>

#include "actors/runtime/context.hpp"
#include "actors/runtime/registry.hpp"

namespace gfdit::launch {
namespace {

// Records parameter declarations; every other call is accepted and ignored.
class recording_context final : public context {
 public:
  explicit recording_context(std::string name)
      : name_(std::move(name)),
        log_(std::make_shared<spdlog::logger>(name_, std::make_shared<spdlog::sinks::null_sink_mt>())) {}

  const std::string& name() const override { return name_; }
  lifecycle_state state() const override { return lifecycle_state::unconfigured; }
  bool probing() const override { return true; }
  parameters& params() override { return params_; }
  spdlog::logger& log() override { return *log_; }
  const envelope* current() const override { return nullptr; }
  void subscribe_raw(const std::string&, raw_handler) override {}
  void on_unhandled(raw_handler) override {}
  void on_delivery_failure(std::function<void(const error&, const envelope&)>) override {}
  result<void> send_raw(route, const std::string&, std::uint32_t, std::uint16_t, std::string, std::uint64_t) override {
    return {};
  }
  void request_raw(const std::string&, std::uint32_t, std::uint16_t, std::string, duration,
                   std::function<void(result<envelope>)>) override {}
  void reply_raw(const envelope&, std::uint32_t, std::uint16_t, std::string) override {}
  void reply_error(const envelope&, const error&) override {}
  result<void> forward(const envelope&) override { return {}; }
  timer_id every(duration, std::function<void()>) override { return ++timers_; }
  timer_id after(duration, std::function<void()>) override { return ++timers_; }
  void cancel(timer_id) override {}
  std::function<void()> waker(std::function<void()>) override {
    return [] {};
  }
  void request_stop() override {}

 private:
  void add_topic_handler(const std::string&, std::uint32_t, raw_handler) override {}
  void add_direct_handler(std::uint32_t, raw_handler) override {}
  void report_decode_error(const envelope&, const error&) override {}

  std::string name_;
  std::shared_ptr<spdlog::logger> log_;
  parameters params_;
  timer_id timers_ = 0;
};

// Runs `fn` in a forked child and returns what it produced, or nullopt if the child died:
// an actor's configure may start threads, touch global state or crash, and none of that may
// reach the launcher or the node that validates.
template <class F>
std::optional<std::string> isolated(F fn) {
  int fds[2];
  if (::pipe(fds) != 0) return std::nullopt;
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return std::nullopt;
  }
  if (pid == 0) {
    ::close(fds[0]);
    const std::string out = fn();
    std::size_t off = 0;
    while (off < out.size()) {
      const ssize_t n = ::write(fds[1], out.data() + off, out.size() - off);
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
    ::_exit(0);  // no static destructors, no atexit handlers of the parent's state
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
  return out;
}

std::optional<nlohmann::json> declared_here(const std::string& type) {
  std::optional<nlohmann::json> out;
  try {
    auto a = actor_registry::global().make(type);
    if (a) {
      recording_context ctx("probe:" + type);
      if (a->on_configure(ctx)) out = ctx.params().describe();
    }
  } catch (...) {
    out.reset();
  }
  return out;
}

result<void> configure_here(const std::string& type, const nlohmann::json& values) {
  try {
    auto a = actor_registry::global().make(type);
    if (!a) return make_error(errc::not_found, "unknown actor type '" + type + "'");
    recording_context ctx("probe:" + type);
    ctx.params().set_overrides(values);
    if (auto r = a->on_configure(ctx); !r) return r;
    return ctx.params().check_overrides_used();
  } catch (const std::exception& e) {
    return make_error(errc::invalid_argument, e.what());
  }
}

}  // namespace
}  // namespace gfdit::launch

namespace gfdit::launch {

std::optional<nlohmann::json> declared_parameters(const std::string& type) {
  static std::mutex mu;
  static std::map<std::string, std::optional<nlohmann::json>> cache;
  std::lock_guard lock(mu);
  if (auto it = cache.find(type); it != cache.end()) return it->second;
  std::optional<nlohmann::json> out;
  auto text = isolated([&] {
    auto d = declared_here(type);
    return d ? "ok:" + d->dump() : std::string("fail:");
  });
  if (text && text->rfind("ok:", 0) == 0) {
    auto j = nlohmann::json::parse(text->substr(3), nullptr, false);
    if (!j.is_discarded()) out = std::move(j);
  }
  cache[type] = out;
  return out;
}

result<void> probe_configure(const std::string& type, const nlohmann::json& values) {
  auto text = isolated([&] {
    auto r = configure_here(type, values);
    return r ? std::string("ok:") : "fail:" + r.err().what;
  });
  if (!text) return make_error(errc::state, "configure of type '" + type + "' crashed during validation");
  if (text->rfind("ok:", 0) == 0) return {};
  return make_error(errc::invalid_argument, text->substr(5));
}

}  // namespace gfdit::launch
