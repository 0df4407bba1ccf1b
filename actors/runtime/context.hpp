#pragma once
// What an actor sees of the runtime: publish/subscribe, directed sends, requests with timeouts,
// timers, declared parameters, lifecycle and a logger tagged with the actor's name.
// Everything here runs on the actor's own (CAF) execution context; nothing is thread-safe by
// design, because one actor's handlers never run concurrently.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <spdlog/logger.h>

#include "actors/runtime/lifecycle.hpp"
#include "actors/runtime/parameters.hpp"
#include "common/result.hpp"
#include "messages/codec.hpp"
#include "messages/envelope.hpp"
#include "messages/message.hpp"

namespace gfdit {

using duration = std::chrono::nanoseconds;
using timer_id = std::uint64_t;

// A handler sees the decoded message and its envelope (sender, stamps, trace id).
template <class T>
using handler = std::function<void(const T&, const envelope&)>;
using raw_handler = std::function<void(const envelope&)>;

class context {
 public:
  virtual ~context() = default;

  virtual const std::string& name() const = 0;
  virtual lifecycle_state state() const = 0;
  // True while a tool only checks the actor's parameters (launch validation, `gfdit check`):
  // on_configure then validates and leaves no trace (creates no file, opens no device).
  virtual bool probing() const { return false; }
  // The actor's own metrics, Prometheus text lines (`name{labels} value`, with their # TYPE
  // lines), served with its node's at /metrics (a launch file's `metrics:`). Any thread; the
  // latest text replaces the one before.
  virtual void set_metrics(std::string) {}
  virtual parameters& params() = 0;
  virtual spdlog::logger& log() = 0;
  // The envelope being handled right now (null outside a handler).
  virtual const envelope* current() const = 0;

  // ---- receiving -------------------------------------------------------------------------
  template <message T>
  void subscribe(const std::string& topic, handler<T> fn) {
    add_topic_handler(topic, type_id_of<T>, typed<T>(std::move(fn)));
  }
  // Directed messages of type T (sent with send()).
  template <message T>
  void on(handler<T> fn) {
    add_direct_handler(type_id_of<T>, typed<T>(std::move(fn)));
  }
  // Requests of type Req; the returned value (or error) is the reply.
  template <message Req, message Rep>
  void on_request(std::function<result<Rep>(const Req&, const envelope&)> fn) {
    add_direct_handler(type_id_of<Req>, [this, fn = std::move(fn)](const envelope& env) {
      auto req = decode<Req>(env.payload);
      if (!req) return reply_error(env, req.err());
      auto rep = fn(*req, env);
      if (!rep) return reply_error(env, rep.err());
      reply_raw(env, type_id_of<Rep>, Rep::type_version, encode(*rep));
    });
  }
  // Every message of every type on a topic (recorders, bridges). "*" taps all local topics.
  virtual void subscribe_raw(const std::string& topic, raw_handler fn) = 0;
  // Every directed message whose type has no typed handler.
  virtual void on_unhandled(raw_handler fn) = 0;
  // Called when a directed message this actor sent could not be delivered.
  virtual void on_delivery_failure(std::function<void(const error&, const envelope&)> fn) = 0;

  // ---- sending ---------------------------------------------------------------------------
  template <message T>
  result<void> publish(const std::string& topic, const T& msg) {
    return send_raw(route::topic, topic, type_id_of<T>, T::type_version, encode(msg), 0);
  }
  template <message T>
  result<void> send(const std::string& actor, const T& msg) {
    return send_raw(route::direct, actor, type_id_of<T>, T::type_version, encode(msg), 0);
  }
  // Calls `then` exactly once: with the reply, or with an error (timeout, unreachable, or the
  // error the responder returned).
  template <message Rep, message Req>
  void request(const std::string& actor, const Req& msg, duration timeout, std::function<void(result<Rep>)> then) {
    request_raw(actor, type_id_of<Req>, Req::type_version, encode(msg), timeout,
                [then = std::move(then)](result<envelope> env) {
                  if (!env) return then(env.err());
                  auto rep = open<Rep>(*env);
                  then(rep ? result<Rep>(std::move(*rep)) : result<Rep>(rep.err()));
                });
  }

  virtual result<void> send_raw(route kind, const std::string& destination, std::uint32_t type_id,
                                std::uint16_t version, std::string payload, std::uint64_t correlation) = 0;
  virtual void request_raw(const std::string& actor, std::uint32_t type_id, std::uint16_t version, std::string payload,
                           duration timeout, std::function<void(result<envelope>)> then) = 0;
  virtual void reply_raw(const envelope& request, std::uint32_t type_id, std::uint16_t version,
                         std::string payload) = 0;
  virtual void reply_error(const envelope& request, const error& err) = 0;
  // Re-emits a recorded envelope as is (sender and stamps kept): players and bag replay.
  virtual result<void> forward(const envelope& env) = 0;

  // ---- time ------------------------------------------------------------------------------
  virtual timer_id every(duration period, std::function<void()> fn) = 0;
  virtual timer_id after(duration delay, std::function<void()> fn) = 0;
  virtual void cancel(timer_id id) = 0;

  // ---- other threads ---------------------------------------------------------------------
  // For an actor that owns a thread of its own (an HTTP server, a blocking library call): the
  // returned function may be called from any thread, any number of times, also after the actor
  // is gone (then it does nothing); each call makes `fn` run once on this actor's thread, soon,
  // like a handler. Data handed over goes through the actor's own synchronised queue.
  virtual std::function<void()> waker(std::function<void()> fn) = 0;

  // Asks the hosting node to shut down (as SIGTERM would).
  virtual void request_stop() = 0;

 protected:
  virtual void add_topic_handler(const std::string& topic, std::uint32_t type_id, raw_handler fn) = 0;
  virtual void add_direct_handler(std::uint32_t type_id, raw_handler fn) = 0;
  virtual void report_decode_error(const envelope& env, const error& err) = 0;

 private:
  template <message T>
  raw_handler typed(handler<T> fn) {
    return [this, fn = std::move(fn)](const envelope& env) {
      auto msg = decode<T>(env.payload);
      if (!msg) return report_decode_error(env, msg.err());
      fn(*msg, env);
    };
  }
};

}  // namespace gfdit
