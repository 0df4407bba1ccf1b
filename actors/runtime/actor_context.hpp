#pragma once
// Internal: the context of one hosted actor. It lives inside its actor_host (the CAF actor) and
// runs only on that actor's execution context.
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "actors/runtime/actor.hpp"
#include "actors/runtime/actor_stats.hpp"
#include "actors/runtime/context.hpp"
#include "actors/runtime/log_limiter.hpp"
#include "actors/runtime/router.hpp"

namespace gfdit {

using tick_atom = caf::atom_constant<caf::atom("gf_tick")>;
using expire_atom = caf::atom_constant<caf::atom("gf_expire")>;
using cycle_atom = caf::atom_constant<caf::atom("gf_cycle")>;
using wake_atom = caf::atom_constant<caf::atom("gf_wake")>;

class actor_context final : public context {
 public:
  actor_context(caf::event_based_actor* self, router* r, std::string name, std::shared_ptr<actor> impl,
                std::shared_ptr<actor_stats> stats, nlohmann::json param_overrides,
                std::map<std::string, std::string> remaps = {}, nlohmann::json globals = {});

  // Entry points from the CAF behavior.
  void deliver(const envelope_ptr& env);
  std::string apply(transition t);
  void fire(timer_id id);
  void expire(std::uint64_t correlation);
  void wake(std::uint64_t id);

  // context
  const std::string& name() const override { return name_; }
  lifecycle_state state() const override { return stats_->state.load(); }
  void set_metrics(std::string text) override { stats_->set_metrics(std::move(text)); }
  parameters& params() override { return params_; }
  spdlog::logger& log() override { return *log_; }
  const envelope* current() const override { return current_; }
  void subscribe_raw(const std::string& topic, raw_handler fn) override;
  void on_unhandled(raw_handler fn) override { unhandled_ = std::move(fn); }
  void on_delivery_failure(std::function<void(const error&, const envelope&)> fn) override {
    delivery_failure_ = std::move(fn);
  }
  result<void> send_raw(route kind, const std::string& destination, std::uint32_t type_id, std::uint16_t version,
                        std::string payload, std::uint64_t correlation) override;
  void request_raw(const std::string& actor, std::uint32_t type_id, std::uint16_t version, std::string payload,
                   duration timeout, std::function<void(result<envelope>)> then) override;
  void reply_raw(const envelope& request, std::uint32_t type_id, std::uint16_t version, std::string payload) override;
  void reply_error(const envelope& request, const error& err) override;
  result<void> forward(const envelope& env) override;
  timer_id every(duration period, std::function<void()> fn) override;
  timer_id after(duration delay, std::function<void()> fn) override;
  void cancel(timer_id id) override;
  std::function<void()> waker(std::function<void()> fn) override;
  void request_stop() override { router_->stop_requested(); }

 private:
  void add_topic_handler(const std::string& topic, std::uint32_t type_id, raw_handler fn) override;
  void add_direct_handler(std::uint32_t type_id, raw_handler fn) override;
  void report_decode_error(const envelope& env, const error& err) override;

  void dispatch(const envelope_ptr& env);
  // The graph's name of a topic this actor names `topic` (launch-file remaps).
  const std::string& remapped(const std::string& topic) const;
  bool handle_system(const envelope& env);
  envelope make_envelope(route kind, const std::string& destination, std::uint32_t type_id, std::uint16_t version,
                         std::string payload, std::uint64_t correlation);

  struct timer {
    std::function<void()> fn;
    duration period{0};  // zero: one-shot
  };
  struct pending_request {
    std::function<void(result<envelope>)> then;
  };

  caf::event_based_actor* self_;
  router* router_;
  std::string name_;
  std::shared_ptr<actor> impl_;
  std::shared_ptr<actor_stats> stats_;
  std::shared_ptr<spdlog::logger> log_;
  log_limiter decode_error_log_;  // a sender can send malformed payloads at will
  parameters params_;
  std::map<std::string, std::string> remaps_;

  std::map<std::string, std::map<std::uint32_t, raw_handler>> topic_handlers_;
  std::map<std::string, std::vector<raw_handler>> raw_topic_handlers_;
  std::map<std::uint32_t, raw_handler> direct_handlers_;
  raw_handler unhandled_;
  std::function<void(const error&, const envelope&)> delivery_failure_;

  std::map<timer_id, timer> timers_;
  timer_id next_timer_ = 1;
  std::vector<std::function<void()>> wakers_;  // waker() callbacks, by index
  std::map<std::uint64_t, pending_request> pending_;
  std::uint64_t next_correlation_ = 1;
  std::deque<envelope_ptr> held_;  // arrived while not active; delivered on activation

  std::uint64_t seq_ = 0;
  std::uint64_t logical_ = 0;
  const envelope* current_ = nullptr;
};

}  // namespace gfdit
