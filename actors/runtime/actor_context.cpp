#include "actors/runtime/actor_context.hpp"

#include <chrono>

#include "actors/runtime/logging.hpp"
#include "messages/system.hpp"

namespace gfdit {
namespace {

std::int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

actor_context::actor_context(caf::event_based_actor* self, router* r, std::string name, std::shared_ptr<actor> impl,
                             std::shared_ptr<actor_stats> stats, nlohmann::json param_overrides,
                             std::map<std::string, std::string> remaps, nlohmann::json globals)
    : self_(self),
      router_(r),
      name_(std::move(name)),
      impl_(std::move(impl)),
      stats_(std::move(stats)),
      log_(make_logger(name_)),
      remaps_(std::move(remaps)) {
  params_.set_overrides(std::move(param_overrides));
  params_.set_globals(std::move(globals));
}

const std::string& actor_context::remapped(const std::string& topic) const {
  auto it = remaps_.find(topic);
  return it == remaps_.end() ? topic : it->second;
}

envelope actor_context::make_envelope(route kind, const std::string& destination, std::uint32_t type_id,
                                      std::uint16_t version, std::string payload, std::uint64_t correlation) {
  envelope env;
  env.type_id = type_id;
  env.version = version;
  env.seq = ++seq_;
  env.sender = name_;
  env.destination = destination;
  env.kind = kind;
  env.time = {++logical_, wall_ns()};
  // A message sent while handling another continues its trace; otherwise a new trace starts.
  env.trace_id = current_ && current_->trace_id ? current_->trace_id : splitmix64(fnv1a64(name_) ^ env.seq);
  env.correlation = correlation;
  env.payload = std::move(payload);
  return env;
}

result<void> actor_context::send_raw(route kind, const std::string& destination, std::uint32_t type_id,
                                     std::uint16_t version, std::string payload, std::uint64_t correlation) {
  const std::string& dest = kind == route::topic ? remapped(destination) : destination;
  auto r = router_->route(make_envelope(kind, dest, type_id, version, std::move(payload), correlation));
  if (r) ++stats_->sent;
  return r;
}

result<void> actor_context::forward(const envelope& env) {
  envelope copy = env;
  auto r = router_->route(std::move(copy));
  if (r) ++stats_->sent;
  return r;
}

void actor_context::request_raw(const std::string& actor, std::uint32_t type_id, std::uint16_t version,
                                std::string payload, duration timeout, std::function<void(result<envelope>)> then) {
  const std::uint64_t corr = next_correlation_++;
  auto r = send_raw(route::direct, actor, type_id, version, std::move(payload), corr);
  if (!r) return then(r.err());
  pending_.emplace(corr, pending_request{std::move(then)});
  self_->delayed_send(self_, timeout, expire_atom::value, corr);
}

void actor_context::reply_raw(const envelope& request, std::uint32_t type_id, std::uint16_t version,
                              std::string payload) {
  auto r = send_raw(route::reply, request.sender, type_id, version, std::move(payload), request.correlation);
  if (!r) log_->warn("reply to '{}' failed: {}", request.sender, r.err().what);
}

void actor_context::reply_error(const envelope& request, const error& err) {
  msg::delivery_failure f{name_, request.type_id, request.seq, request.correlation, err.what};
  auto r = send_raw(route::failure, request.sender, type_id_of<msg::delivery_failure>,
                    msg::delivery_failure::type_version, encode(f), request.correlation);
  if (!r) log_->warn("error reply to '{}' failed: {}", request.sender, r.err().what);
}

void actor_context::expire(std::uint64_t correlation) {
  auto it = pending_.find(correlation);
  if (it == pending_.end()) return;  // answered in time
  auto then = std::move(it->second.then);
  pending_.erase(it);
  then(make_error(errc::timeout,
                  "request " + std::to_string(correlation) + " from '" + name_ + "' got no reply in time"));
}

timer_id actor_context::every(duration period, std::function<void()> fn) {
  const timer_id id = next_timer_++;
  timers_.emplace(id, timer{std::move(fn), period});
  self_->delayed_send(self_, period, tick_atom::value, id);
  return id;
}

timer_id actor_context::after(duration delay, std::function<void()> fn) {
  const timer_id id = next_timer_++;
  timers_.emplace(id, timer{std::move(fn), duration{0}});
  self_->delayed_send(self_, delay, tick_atom::value, id);
  return id;
}

void actor_context::cancel(timer_id id) { timers_.erase(id); }

std::function<void()> actor_context::waker(std::function<void()> fn) {
  const std::uint64_t id = wakers_.size();
  wakers_.push_back(std::move(fn));
  // A weak handle: the function may outlive the actor (and must not keep it alive).
  caf::weak_actor_ptr weak = caf::actor_cast<caf::weak_actor_ptr>(self_);
  return [weak, id] {
    if (auto strong = weak.lock()) caf::anon_send(caf::actor_cast<caf::actor>(strong), wake_atom::value, id);
  };
}

void actor_context::wake(std::uint64_t id) {
  if (id < wakers_.size()) wakers_[id]();
}

void actor_context::fire(timer_id id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;  // cancelled
  const duration period = it->second.period;
  // Timers tick only while active; a periodic timer keeps its rhythm while inactive.
  if (state() == lifecycle_state::active) {
    auto fn = it->second.fn;  // the callback may cancel its own timer
    fn();
  }
  if (period.count() > 0 && timers_.count(id))
    self_->delayed_send(self_, period, tick_atom::value, id);
  else
    timers_.erase(id);
}

void actor_context::subscribe_raw(const std::string& topic, raw_handler fn) {
  raw_topic_handlers_[remapped(topic)].push_back(std::move(fn));
  router_->subscribed(name_, remapped(topic));
}

void actor_context::add_topic_handler(const std::string& topic, std::uint32_t type_id, raw_handler fn) {
  topic_handlers_[remapped(topic)][type_id] = std::move(fn);
  router_->subscribed(name_, remapped(topic));
}

void actor_context::add_direct_handler(std::uint32_t type_id, raw_handler fn) {
  direct_handlers_[type_id] = std::move(fn);
}

void actor_context::report_decode_error(const envelope& env, const error& err) {
  ++stats_->decode_errors;
  std::uint64_t held = 0;
  if (decode_error_log_.allow(log_limiter::clock::now(), held))
    log_->warn("dropped a message from '{}' that did not decode: {}{}", env.sender, err.what,
               held ? " (and " + std::to_string(held) + " more since the last line)" : "");
}

void actor_context::deliver(const envelope_ptr& env) {
  ++stats_->received;
  logical_ = std::max(logical_, env->time.logical);  // Lamport: after everything it saw
  // System messages (lifecycle, parameters) are served in every state; replies complete
  // requests in every state; the rest waits for activation, so nothing sent early is lost.
  if (env->kind == route::direct && handle_system(*env)) return;
  const auto s = state();
  if (s == lifecycle_state::active || env->kind == route::reply || env->kind == route::failure) {
    dispatch(env);
    return;
  }
  if (s == lifecycle_state::finalized) {
    log_->debug("finalized: dropped a message from '{}'", env->sender);
    return;
  }
  held_.push_back(env);
}

bool actor_context::handle_system(const envelope& env) {
  const envelope* saved = current_;
  current_ = &env;
  bool handled = true;
  if (env.is<msg::lifecycle_command>()) {
    auto cmd = decode<msg::lifecycle_command>(env.payload);
    auto t = cmd ? parse_transition(cmd->transition) : std::nullopt;
    std::string err = !cmd ? cmd.err().what : !t ? "unknown transition '" + cmd->transition + "'" : apply(*t);
    msg::lifecycle_state st{name_, std::string(to_string(state())), err};
    if (env.correlation)
      reply_raw(env, type_id_of<msg::lifecycle_state>, msg::lifecycle_state::type_version, encode(st));
  } else if (env.is<msg::parameter_get>()) {
    auto q = decode<msg::parameter_get>(env.payload);
    msg::parameter_value v{name_, params_.values().dump(), ""};
    if (q && !q->name.empty()) {
      if (params_.has(q->name))
        v.values_json = nlohmann::json{{q->name, params_.get_json(q->name)}}.dump();
      else
        v.error = "no parameter named '" + q->name + "'";
    }
    if (env.correlation)
      reply_raw(env, type_id_of<msg::parameter_value>, msg::parameter_value::type_version, encode(v));
  } else if (env.is<msg::parameter_set>()) {
    auto q = decode<msg::parameter_set>(env.payload);
    msg::parameter_value v{name_, "", ""};
    if (!q) {
      v.error = q.err().what;
    } else {
      auto parsed = nlohmann::json::parse(q->value_json, nullptr, false);
      if (parsed.is_discarded())
        v.error = "value of '" + q->name + "' is not JSON: " + q->value_json;
      else if (auto r = params_.set_while_running(q->name, parsed); !r)
        v.error = r.err().what;
    }
    v.values_json = params_.values().dump();
    if (env.correlation)
      reply_raw(env, type_id_of<msg::parameter_value>, msg::parameter_value::type_version, encode(v));
  } else {
    handled = false;
  }
  current_ = saved;
  return handled;
}

void actor_context::dispatch(const envelope_ptr& ptr) {
  router_->handled(name_, ptr);  // the order this actor handles its messages in (replay)
  const envelope& env = *ptr;
  current_ = &env;
  switch (env.kind) {
    case route::reply:
    case route::failure: {
      auto it = env.correlation ? pending_.find(env.correlation) : pending_.end();
      if (it != pending_.end()) {
        auto then = std::move(it->second.then);
        pending_.erase(it);
        if (env.kind == route::reply) {
          then(env);
        } else {
          auto f = decode<msg::delivery_failure>(env.payload);
          then(make_error(errc::unreachable, f ? f->reason : "request failed"));
        }
      } else if (env.kind == route::failure) {
        ++stats_->delivery_failures;
        auto f = decode<msg::delivery_failure>(env.payload);
        error err = make_error(errc::unreachable, f ? f->reason : "delivery failed");
        if (delivery_failure_)
          delivery_failure_(err, env);
        else
          log_->warn("a message to '{}' was not delivered: {}", f ? f->destination : "?", err.what);
      }
      break;
    }
    case route::topic: {
      bool handled = false;
      if (auto t = topic_handlers_.find(env.destination); t != topic_handlers_.end()) {
        if (auto h = t->second.find(env.type_id); h != t->second.end()) {
          h->second(env);
          handled = true;
        }
      }
      for (const auto& key : {env.destination, std::string("*")}) {
        if (auto r = raw_topic_handlers_.find(key); r != raw_topic_handlers_.end()) {
          for (auto& fn : r->second) fn(env);
          handled = true;
        }
      }
      if (!handled) ++stats_->unhandled;
      break;
    }
    case route::direct: {
      if (auto h = direct_handlers_.find(env.type_id); h != direct_handlers_.end()) {
        h->second(env);
      } else if (unhandled_) {
        unhandled_(env);
      } else {
        ++stats_->unhandled;
        log_->debug("no handler for type {} from '{}'", env.type_id, env.sender);
      }
      break;
    }
  }
  current_ = nullptr;
}

std::string actor_context::apply(transition t) {
  const auto from = state();
  const auto to = next_state(from, t);
  if (!to) return "cannot " + std::string(to_string(t)) + " from state " + std::string(to_string(from));
  result<void> r;
  switch (t) {
    case transition::configure:
      r = impl_->on_configure(*this);
      if (r) r = params_.check_overrides_used();
      break;
    case transition::activate:
      r = impl_->on_activate(*this);
      break;
    case transition::deactivate:
      r = impl_->on_deactivate(*this);
      break;
    case transition::shutdown:
      impl_->on_shutdown(*this);
      break;
  }
  if (!r) {
    log_->error("{} failed: {}", to_string(t), r.err().what);
    return r.err().what;
  }
  stats_->state = *to;
  if (*to == lifecycle_state::active) {
    auto held = std::move(held_);
    held_.clear();
    for (auto& env : held) dispatch(env);
  }
  if (*to == lifecycle_state::finalized) {
    timers_.clear();
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& [corr, p] : pending) p.then(make_error(errc::cancelled, "actor '" + name_ + "' shut down"));
  }
  return "";
}

}  // namespace gfdit
