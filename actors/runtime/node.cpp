#include "actors/runtime/node.hpp"

#include <malloc.h>
#include <signal.h>

#include <algorithm>
#include <condition_variable>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <thread>

#include <caf/all.hpp>

#include "actors/runtime/actor_host.hpp"
#include "actors/runtime/log_limiter.hpp"
#include "actors/runtime/logging.hpp"
#include "actors/runtime/speaker_check.hpp"
#include "messages/system.hpp"

namespace gfdit {
namespace {

// Node-to-node traffic (hellos) is addressed to this pseudo actor.
constexpr const char* node_address = "$node";

sigset_t termination_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

struct node::impl final : router {
  node_options opt;
  std::shared_ptr<spdlog::logger> log;
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::unique_ptr<bus> transport;

  struct hosted {
    std::string name;
    std::shared_ptr<actor> impl;
    std::shared_ptr<actor_stats> stats;
    caf::actor handle;
    nlohmann::json params;
    std::map<std::string, std::string> remaps;
  };
  std::vector<hosted> hosted_actors;           // in the order added
  std::map<std::string, std::size_t> by_name;  // immutable after start()

  mutable std::shared_mutex mu;
  std::map<std::string, std::vector<caf::actor>> local_topics;  // topic -> subscribers
  std::set<std::string> local_topic_names;
  std::map<std::string, std::set<std::string>> subscriber_names;  // topic -> local actors
  std::map<std::string, std::string> remote_actors;               // actor -> node
  std::map<std::string, std::set<std::string>> node_topics;       // node -> its topics
  std::map<std::string, std::set<std::string>> remote_topics;     // topic -> nodes
  std::set<std::string> greeted;                                  // peers that said hello
  std::map<std::string, std::string> connected;                   // peers we connected to: endpoint
  std::set<std::string> departed;                                 // peers that said they left
  std::condition_variable_any greeted_cv;

  std::list<tap_fn> taps;  // kept alive for the node's life; `tap` points at the newest
  std::atomic<const tap_fn*> tap{nullptr};
  std::list<handled_tap_fn> handled_taps;  // same: kept for the node's life
  std::atomic<const handled_tap_fn*> handled_tap{nullptr};
  std::atomic<bool> stop_flag{false};
  // Set once every actor is configured (its subscriptions known); read by the bus thread.
  std::atomic<bool> started{false};
  // The bus thread runs from inside bus::create, before `transport` and the actor handles are
  // set; it holds its first delivery (a peer's hello would connect through `transport`) until
  // start() has both.
  std::atomic<bool> wired{false};
  std::atomic<bool> stopped{false};  // read by the bus thread (on_fail)
  speaker_check speakers;            // keyed only; bus thread
  log_limiter forged_log;            // bus thread
  log_limiter undecodable_log;       // bus thread
  std::atomic<std::uint64_t> forged{0};

  ~impl() override {
    stop();
    transport.reset();
    hosted_actors.clear();
    sys.reset();
  }

  void tap_if(const envelope_ptr& env, tap_point p) {
    if (const tap_fn* t = tap.load(std::memory_order_acquire)) (*t)(env, p);
  }

  // The bus thread's deliveries of one read, per actor in order (on_burst_end sends them).
  struct batch {
    caf::actor to;
    std::vector<envelope_ptr> envs;
    std::size_t bytes = 0;
  };
  using burst_t = std::vector<batch>;
  burst_t burst;  // bus thread
  // A batch goes at once past this many payload bytes: its actor starts on it while the bus
  // thread reads on (a whole read of large frames would leave the actor idle meanwhile).
  static constexpr std::size_t batch_bytes = 64u << 10;

  static void send_batch(batch& b) {
    if (b.envs.size() == 1)
      caf::anon_send(b.to, b.envs.front());
    else if (!b.envs.empty())
      caf::anon_send(b.to, std::make_shared<const std::vector<envelope_ptr>>(std::move(b.envs)));
    b.envs.clear();
    b.bytes = 0;
  }

  // `into`: collect into the bus thread's burst instead of sending at once.
  void deliver_local(const caf::actor& h, const envelope_ptr& env, burst_t* into = nullptr) {
    tap_if(env, tap_point::delivered);
    if (!into) return caf::anon_send(h, env);
    auto it = std::find_if(into->begin(), into->end(), [&](const batch& b) { return b.to == h; });
    if (it == into->end()) it = into->insert(into->end(), batch{h, {}, 0});
    it->envs.push_back(env);
    it->bytes += env->payload.size();
    if (it->bytes >= batch_bytes) send_batch(*it);
  }

  // Bus thread.
  void on_burst_end() {
    for (auto& b : burst) send_batch(b);
    burst.clear();
  }

  void deliver_topic_local(const envelope_ptr& env, burst_t* into = nullptr) {
    std::vector<caf::actor> targets;
    {
      std::shared_lock lock(mu);
      for (const auto& key : {env->destination, std::string("*")}) {
        auto it = local_topics.find(key);
        if (it == local_topics.end()) continue;
        for (const auto& h : it->second)
          if (std::find(targets.begin(), targets.end(), h) == targets.end()) targets.push_back(h);
      }
    }
    for (const auto& h : targets) deliver_local(h, env, into);
  }

  const hosted* local(const std::string& name) const {
    auto it = by_name.find(name);
    return it == by_name.end() ? nullptr : &hosted_actors[it->second];
  }

  result<void> route(envelope&& e) override {
    auto env = std::make_shared<const envelope>(std::move(e));
    tap_if(env, tap_point::sent);
    struct routed_guard {
      impl& self;
      const envelope_ptr& env;
      ~routed_guard() { self.tap_if(env, tap_point::routed); }
    } routed{*this, env};
    if (env->kind == route::topic) {
      deliver_topic_local(env);
      std::set<std::string> nodes;
      {
        std::shared_lock lock(mu);
        for (const auto& key : {env->destination, std::string("*")})
          if (auto it = remote_topics.find(key); it != remote_topics.end())
            nodes.insert(it->second.begin(), it->second.end());
      }
      transport->post(std::vector<std::string>(nodes.begin(), nodes.end()), env);
      return {};
    }
    if (const auto* h = local(env->destination)) {
      deliver_local(h->handle, env);
      return {};
    }
    std::string peer;
    {
      std::shared_lock lock(mu);
      if (auto it = remote_actors.find(env->destination); it != remote_actors.end()) peer = it->second;
    }
    if (peer.empty())
      return make_error(errc::not_found, "no actor named '" + env->destination + "' in the graph (as seen from node '" +
                                             opt.name + "')");
    transport->post(std::span(&peer, 1), env);
    return {};
  }

  void subscribed(const std::string& actor_name, const std::string& topic) override {
    const auto* h = local(actor_name);
    if (!h) return;
    bool is_new = false;
    {
      std::unique_lock lock(mu);
      auto& subs = local_topics[topic];
      if (std::find(subs.begin(), subs.end(), h->handle) == subs.end()) subs.push_back(h->handle);
      is_new = local_topic_names.insert(topic).second;
      subscriber_names[topic].insert(actor_name);
    }
    if (is_new && started) greet_all(false);
  }

  void stop_requested() override { stop_flag = true; }

  void handled(const std::string& actor, const envelope_ptr& env) override {
    if (const handled_tap_fn* t = handled_tap.load(std::memory_order_acquire)) (*t)(env, actor);
  }

  msg::node_hello hello(bool want_reply) const {
    msg::node_hello h{opt.name, transport->endpoint(), {}, {}, want_reply};
    for (const auto& a : hosted_actors) h.actors.push_back(a.name);
    std::shared_lock lock(mu);
    h.topics.assign(local_topic_names.begin(), local_topic_names.end());
    return h;
  }

  // `leaving`: the goodbye, a hello with no endpoint, actors or topics (peers then stop
  // routing to this node instead of queueing for it until they stop themselves).
  void greet(const std::string& peer, bool want_reply, bool leaving = false) {
    envelope env;
    env.type_id = type_id_of<msg::node_hello>;
    env.version = msg::node_hello::type_version;
    env.sender = std::string(node_address) + ":" + opt.name;
    env.destination = node_address;
    env.payload = encode(leaving ? msg::node_hello{opt.name, "", {}, {}, false} : hello(want_reply));
    transport->post(peer, env);
  }

  void greet_all(bool want_reply, bool leaving = false) {
    std::vector<std::string> peers;
    {
      std::shared_lock lock(mu);
      for (const auto& [peer, endpoint] : connected) peers.push_back(peer);
    }
    for (const auto& p : peers) greet(p, want_reply, leaving);
  }

  // `key`: the key the peer must hold (empty: the one named after it).
  void connect(const std::string& peer, const std::string& endpoint, const std::string& key = {}) {
    {
      std::unique_lock lock(mu);
      auto [it, added] = connected.try_emplace(peer, endpoint);
      if (!added) {
        // Known already. Only a peer that said goodbye and came back (a tool run again) is
        // reached at its new endpoint; others keep the address they were first reached at (a
        // hello names the endpoint the peer bound, which may be a wildcard like tcp://0.0.0.0).
        if (it->second == endpoint || !departed.count(peer)) return;
        it->second = endpoint;
      }
    }
    transport->add_peer(peer, endpoint, key);
  }

  // Bus thread. A frame whose key may not speak for its sender: never delivered.
  void drop_forged(const envelope& env, const std::string& why) {
    ++forged;
    std::uint64_t held = 0;
    if (forged_log.allow(log_limiter::clock::now(), held))
      log->warn("dropped a frame to '{}': {}{}", env.destination, why,
                held ? " (and " + std::to_string(held) + " more since the last line)" : "");
  }

  // Bus thread. A peer can send junk at will: one line a second, with the count held back.
  void on_undecodable(const std::string& why) {
    std::uint64_t held = 0;
    if (undecodable_log.allow(log_limiter::clock::now(), held))
      log->warn("dropped a frame that did not decode: {}{}", why,
                held ? " (and " + std::to_string(held) + " more since the last line)" : "");
  }

  // Bus thread.
  void on_hello(const envelope& env, const std::string& key) {
    auto h = decode<msg::node_hello>(env.payload);
    if (!h) {
      log->warn("a hello did not decode: {}", h.err().what);
      return;
    }
    if (opt.curve)
      if (auto r = speakers.hello(key, *h); !r) return drop_forged(env, r.err().what);
    // Keyed, the peer is reached as the holder of the key its hello came with.
    if (!h->endpoint.empty()) connect(h->node, h->endpoint, key);
    {
      std::unique_lock lock(mu);
      for (auto it = remote_actors.begin(); it != remote_actors.end();)
        it = it->second == h->node ? remote_actors.erase(it) : std::next(it);
      for (const auto& a : h->actors) remote_actors[a] = h->node;
      if (h->endpoint.empty())
        departed.insert(h->node);  // a tool's goodbye: no more subscriber
      else
        departed.erase(h->node);
      node_topics[h->node] = std::set<std::string>(h->topics.begin(), h->topics.end());
      remote_topics.clear();
      for (const auto& [n, topics] : node_topics)
        for (const auto& t : topics) remote_topics[t].insert(n);
      greeted.insert(h->node);
    }
    greeted_cv.notify_all();
    if (h->endpoint.empty() && opt.stop_with.count(h->node)) {
      log->info("node '{}' finished: stopping with it", h->node);
      stop_flag = true;
    }
    // Before our actors are configured our topic list is incomplete: answering now would let
    // the peer activate and publish to topics we have not announced yet. start() greets every
    // connected peer (this one included) once configuration is done.
    if (h->want_reply && started) greet(h->node, false);
  }

  // Bus thread.
  void on_receive(envelope&& e, const std::string& key) {
    wired.wait(false, std::memory_order_acquire);
    if (opt.curve) {
      if (key.empty()) return drop_forged(e, "no key on a keyed bus");
      if (auto r = speakers.check(key, e.sender); !r) return drop_forged(e, r.err().what);
    }
    if (e.destination == node_address) {
      if (e.is<msg::node_hello>()) on_hello(e, key);
      return;
    }
    auto env = std::make_shared<const envelope>(std::move(e));
    if (env->kind == route::topic) return deliver_topic_local(env, &burst);
    if (const auto* h = local(env->destination)) return deliver_local(h->handle, env, &burst);
    if (env->kind == route::failure) return;  // never bounce a failure
    report_failure(*env, "actor '" + env->destination + "' is not on node '" + opt.name + "'");
  }

  // Tells the sender of `env` (local or remote) that it was not delivered.
  void report_failure(const envelope& env, const std::string& reason) {
    envelope f;
    f.type_id = type_id_of<msg::delivery_failure>;
    f.version = msg::delivery_failure::type_version;
    f.sender = std::string(node_address) + ":" + opt.name;
    f.destination = env.sender;
    f.kind = route::failure;
    f.correlation = env.correlation;
    f.trace_id = env.trace_id;
    f.payload = encode(msg::delivery_failure{env.destination, env.type_id, env.seq, env.correlation, reason});
    if (const auto* h = local(env.sender))
      return deliver_local(h->handle, std::make_shared<const envelope>(std::move(f)));
    std::string peer;
    {
      std::shared_lock lock(mu);
      if (auto it = remote_actors.find(env.sender); it != remote_actors.end()) peer = it->second;
    }
    if (!peer.empty()) transport->post(peer, f);
  }

  // Bus thread.
  void on_send_failed(send_failure&& f) {
    if (f.env.is<msg::node_hello>()) {
      // Our goodbye to a peer that is gone already: nothing to tell it.
      if (stopped) return log->debug("goodbye to node '{}' not delivered: {}", f.peer, f.reason);
      // A peer that is not up yet: keep greeting until it answers or we stop. One that can
      // never be reached is reported once (start() then times out naming it).
      if (!f.transient) return log->error("cannot greet node '{}': {}", f.peer, f.reason);
      if (!stop_flag && !stopped) greet(f.peer, true);
      return;
    }
    if (f.env.kind == route::failure) return;
    if (f.env.kind == route::topic) {
      // Published before a subscriber's goodbye arrived: a subscriber that left is owed nothing.
      bool gone;
      {
        std::shared_lock lock(mu);
        gone = departed.count(f.peer) > 0;
      }
      if (gone)
        return log->debug("topic '{}' not delivered to node '{}', which left the graph", f.env.destination, f.peer);
    }
    log->warn("not delivered to '{}' on node '{}': {}", f.env.destination, f.peer, f.reason);
    report_failure(f.env, f.reason);
  }

  result<void> cycle(const hosted& h, transition t) {
    caf::scoped_actor self{*sys};
    std::string err;
    self->request(h.handle, caf::infinite, cycle_atom::value, static_cast<std::int32_t>(t))
        .receive([&](std::string& e) { err = std::move(e); }, [&](caf::error& e) { err = sys->render(e); });
    if (!err.empty())
      return make_error(errc::state, "actor '" + h.name + "': " + std::string(to_string(t)) + " failed: " + err);
    return {};
  }

  result<void> start() {
    if (started) return make_error(errc::state, "node '" + opt.name + "' already started");
    // A few workers stay hot; many would scatter a request/reply chain over sleeping threads.
    const int threads =
        opt.threads > 0 ? opt.threads : std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 2, 4);
    cfg.set("scheduler.max-threads", static_cast<std::size_t>(threads));
    // CAF's default "moderate" phase sleeps 50 us between polls, which lands on every hop of
    // a request/reply. Go from spinning straight to a condition variable that enqueue wakes.
    cfg.set("work-stealing.moderate-poll-attempts", std::size_t{0});
    cfg.set("work-stealing.aggressive-poll-attempts", static_cast<std::size_t>(opt.spin_polls));
    sys = std::make_unique<caf::actor_system>(cfg);
    bus_options bo;
    bo.node = opt.name;
    bo.bind = opt.bind;
    bo.send_timeout = opt.send_timeout;
    bo.send_hwm = opt.send_hwm;
    bo.spin = opt.bus_spin;
    bo.curve = opt.curve;
    speakers = speaker_check(opt.wiring);
    auto b = bus::create(bo, {[this](envelope&& e, const std::string& key) { on_receive(std::move(e), key); },
                              [this](send_failure&& f) { on_send_failed(std::move(f)); },
                              [this](const std::string& why) { on_undecodable(why); }, [this] { on_burst_end(); }});
    if (!b) return b.err();
    transport = std::move(*b);
    for (auto& h : hosted_actors)
      h.handle = sys->spawn<actor_host>(this, h.name, h.impl, h.stats, h.params, h.remaps, opt.globals);
    wired.store(true, std::memory_order_release);
    wired.notify_all();
    for (auto& h : hosted_actors)
      if (auto r = cycle(h, transition::configure); !r) return r;
    // Wire the graph before anything runs: peers learn our actors and topics, and we theirs,
    // so the first message an activated actor sends already reaches every subscriber.
    started = true;
    for (const auto& p : opt.peers) connect(p.node, p.endpoint);
    greet_all(true);
    if (!wait_for_peers(opt.peer_timeout)) {
      if (stop_flag)
        return make_error(errc::state, "node '" + opt.name + "': stopped while waiting for peers " + missing_peers());
      return make_error(errc::timeout, "node '" + opt.name + "': peers " + missing_peers() + " did not answer within " +
                                           std::to_string(opt.peer_timeout.count()) + " ms");
    }
    for (auto& h : hosted_actors)
      if (auto r = cycle(h, transition::activate); !r) return r;
    return {};
  }

  // Waits in slices of 100 ms, taking a SIGINT or SIGTERM that arrives meanwhile (blocked on
  // every thread, see create): a launcher stopping the graph because a peer failed then ends
  // the wait at once instead of after `timeout` (and a SIGKILL).
  bool wait_for_peers(std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    const sigset_t set = termination_signals();
    const timespec now_only{0, 0};
    std::shared_lock lock(mu);
    while (true) {
      const auto left = end - std::chrono::steady_clock::now();
      if (greeted_cv.wait_for(lock, std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(100)),
                              [&] {
                                for (const auto& p : opt.peers)
                                  if (!greeted.count(p.node)) return false;
                                return true;
                              }))
        return true;
      if (const int sig = sigtimedwait(&set, nullptr, &now_only); sig > 0) {
        log->info("signal {} while waiting for peers: stopping", sig);
        stop_flag = true;
      }
      if (stop_flag || std::chrono::steady_clock::now() >= end) return false;
    }
  }

  std::string missing_peers() const {
    std::shared_lock lock(mu);
    std::string out;
    for (const auto& p : opt.peers)
      if (!greeted.count(p.node)) out += (out.empty() ? "'" : ", '") + p.node + "'";
    return out;
  }

  void stop() {
    if (stopped || !sys) return;
    stopped = true;
    for (auto& h : hosted_actors)
      if (h.stats->state == lifecycle_state::active) (void)cycle(h, transition::deactivate);
    if (transport) {
      greet_all(false, true);  // after the deactivation: nothing it still sends is lost
      transport->flush(std::chrono::milliseconds(2000));
    }
    for (auto& h : hosted_actors) (void)cycle(h, transition::shutdown);
    for (auto& h : hosted_actors) caf::anon_send_exit(h.handle, caf::exit_reason::user_shutdown);
    sys->await_all_actors_done();
  }
};

node::node(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
node::~node() = default;

result<std::unique_ptr<node>> node::create(node_options options) {
  if (options.name.empty() || options.name.find(':') != std::string::npos || options.name[0] == '$')
    return make_error(errc::invalid_argument,
                      "node name '" + options.name + "' must be non-empty, without ':' or a leading '$'");
  const sigset_t set = termination_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // Frames of up to hundreds of MiB come and go: keep freed buffers in the heap for reuse
  // instead of mapping and unmapping (and page-faulting) each one.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest accepted value
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  auto p = std::make_unique<impl>();
  p->opt = std::move(options);
  p->log = make_logger(p->opt.name);
  return std::unique_ptr<node>(new node(std::move(p)));
}

result<void> node::add(const std::string& name, std::unique_ptr<actor> a, nlohmann::json params,
                       std::map<std::string, std::string> remaps) {
  if (impl_->started) return make_error(errc::state, "add '" + name + "' after start()");
  if (name.empty() || name[0] == '$')
    return make_error(errc::invalid_argument, "actor name '" + name + "' is empty or starts with '$'");
  if (!a) return make_error(errc::invalid_argument, "actor '" + name + "' is null");
  if (!params.is_object())
    return make_error(errc::invalid_argument, "parameters of actor '" + name + "' must be a map");
  if (impl_->by_name.count(name))
    return make_error(errc::invalid_argument, "duplicate actor name '" + name + "' on node '" + impl_->opt.name + "'");
  impl_->by_name[name] = impl_->hosted_actors.size();
  impl_->hosted_actors.push_back({name, std::shared_ptr<actor>(std::move(a)), std::make_shared<actor_stats>(),
                                  caf::actor{}, std::move(params), std::move(remaps)});
  return {};
}

result<void> node::start() { return impl_->start(); }

bool node::wait_for_peers(std::chrono::milliseconds timeout) { return impl_->wait_for_peers(timeout); }

int node::run_until_signal() {
  const sigset_t set = termination_signals();
  timespec tick{0, 100 * 1000 * 1000};
  while (!impl_->stop_flag) {
    const int s = sigtimedwait(&set, nullptr, &tick);
    if (s == SIGINT || s == SIGTERM) {
      impl_->log->info("signal {}: stopping", s);
      break;
    }
  }
  stop();
  return 0;
}

void node::stop() { impl_->stop(); }
void node::request_stop() { impl_->stop_flag = true; }
bool node::stop_requested() const { return impl_->stop_flag; }

result<void> node::transition_actor(const std::string& actor, transition t) {
  const auto* h = impl_->local(actor);
  if (!h) return make_error(errc::not_found, "no actor '" + actor + "' on node '" + impl_->opt.name + "'");
  if (!impl_->sys) return make_error(errc::state, "node not started");
  return impl_->cycle(*h, t);
}

result<void> node::inject(envelope env) {
  if (!impl_->started) return make_error(errc::state, "node '" + impl_->opt.name + "' not started");
  return impl_->route(std::move(env));
}

void node::set_tap(tap_fn fn) {
  impl_->taps.push_back(std::move(fn));
  impl_->tap.store(&impl_->taps.back(), std::memory_order_release);
}

void node::add_tap(tap_fn fn) {
  const tap_fn* prev = impl_->tap.load(std::memory_order_acquire);
  if (!prev) return set_tap(std::move(fn));
  // `prev` stays alive: every tap ever set is kept in impl_->taps for the node's life.
  set_tap([prev, fn = std::move(fn)](const envelope_ptr& env, tap_point p) {
    (*prev)(env, p);
    fn(env, p);
  });
}

void node::set_handled_tap(handled_tap_fn fn) {
  impl_->handled_taps.push_back(std::move(fn));
  impl_->handled_tap.store(&impl_->handled_taps.back(), std::memory_order_release);
}

const std::string& node::name() const { return impl_->opt.name; }
const std::string& node::endpoint() const {
  static const std::string none;
  return impl_->transport ? impl_->transport->endpoint() : none;
}

std::vector<actor_info> node::actors() const {
  std::vector<actor_info> out;
  for (const auto& h : impl_->hosted_actors)
    out.push_back({h.name, h.stats->state.load(), h.stats->received.load(), h.stats->sent.load(),
                   h.stats->unhandled.load(), h.stats->decode_errors.load(), h.stats->delivery_failures.load(),
                   h.stats->get_metrics()});
  return out;
}

std::map<std::string, std::vector<std::string>> node::subscriptions() const {
  std::shared_lock lock(impl_->mu);
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& [topic, names] : impl_->subscriber_names) out[topic].assign(names.begin(), names.end());
  return out;
}

bus_stats node::transport_stats() const {
  bus_stats s = impl_->transport ? impl_->transport->stats() : bus_stats{};
  s.forged = impl_->forged.load();
  return s;
}

}  // namespace gfdit
