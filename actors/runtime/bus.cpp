#include "actors/runtime/bus.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <thread>
#include <vector>

#include "actors/runtime/zap_handler.hpp"
#include "actors/runtime/zmq_check.hpp"

namespace gfdit {
namespace {

using clock = std::chrono::steady_clock;
using frame_ptr = std::shared_ptr<const std::string>;

// Payloads this large travel as a frame of their own, handed to ZeroMQ without a copy.
constexpr std::size_t own_frame_bytes = 16u << 10;

struct outgoing {
  std::string peer;
  frame_ptr frame;    // shared by the peers of one publish: encoded once
  envelope_ptr body;  // set: `frame` is the header, body->payload follows as a second frame
  envelope meta;      // header only, for failure reports
  clock::time_point deadline;
  std::string error;  // why it fails, once it does
};

// A peer's DEALER is used by whichever thread posts to it (a send goes straight to ZeroMQ, no
// hand-off to the bus thread) and by the bus thread, which retries what ZeroMQ refused; `mu`
// serialises them (ZeroMQ sockets may change threads behind a full memory barrier).
struct peer_socket {
  std::mutex mu;
  void* socket = nullptr;
  std::string endpoint;          // where `socket` connects
  std::string error;             // why there is no socket, when there is none
  std::deque<outgoing> waiting;  // frames for the bus thread to send, in order: later ones queue behind
  clock::time_point last_post;   // of the last post to this peer, from any thread
};

envelope header_of(const envelope& env) {
  envelope h;
  h.type_id = env.type_id;
  h.version = env.version;
  h.seq = env.seq;
  h.sender = env.sender;
  h.destination = env.destination;
  h.kind = env.kind;
  h.correlation = env.correlation;
  h.trace_id = env.trace_id;
  return h;
}

}  // namespace

struct bus::impl {
  bus_options opt;
  callbacks cbs;
  void* ctx = nullptr;
  void* router = nullptr;
  std::unique_ptr<zap_handler> zap;  // keyed only; before the ROUTER binds, gone before the context
  int wake_fd = -1;
  std::string endpoint;

  std::shared_mutex peers_mu;  // the map; each peer's socket and queue are under its own mu
  std::map<std::string, std::unique_ptr<peer_socket>> peers;

  std::mutex mu;
  std::vector<outgoing> failing;  // to report on the bus thread, guarded by mu
  std::uint64_t queued = 0;       // frames handed to the bus thread (waiting or failing), guarded by mu
  std::uint64_t done = 0;         // of those, completed (sent or failed), guarded by mu
  std::condition_variable drained;

  std::atomic<bool> running{true};
  std::thread thread;

  std::atomic<std::uint64_t> sent{0}, received{0}, failed{0}, decode_errors{0};

  ~impl() {
    running = false;
    wake();
    if (thread.joinable()) thread.join();
    for (auto& [name, p] : peers) zmq_close(p->socket);
    if (router) zmq_close(router);
    zap.reset();
    if (ctx) zmq_ctx_term(ctx);
    if (wake_fd >= 0) ::close(wake_fd);
  }

  void wake() {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd, &one, sizeof one);
  }

  result<void> open() {
    ctx = zmq_ctx_new();
    if (!ctx) return make_error(errc::io, "zmq_ctx_new failed");
    router = zmq_socket(ctx, ZMQ_ROUTER);
    if (!router) return make_error(errc::io, std::string("zmq_socket: ") + zmq_strerror(zmq_errno()));
    const std::int64_t max_size = static_cast<std::int64_t>(opt.limits.max_frame);
    GFDIT_ZMQ_CHECK(zmq_setsockopt(router, ZMQ_MAXMSGSIZE, &max_size, sizeof max_size));
    GFDIT_ZMQ_CHECK(zmq_setsockopt(router, ZMQ_RCVHWM, &opt.receive_hwm, sizeof(int)));
    const int linger = 0;
    GFDIT_ZMQ_CHECK(zmq_setsockopt(router, ZMQ_LINGER, &linger, sizeof linger));
    if (opt.curve) {
      if (!curve_available())
        return make_error(errc::state, "bus of node '" + opt.node + "' is keyed, but this libzmq has no CURVE support");
      auto z = zap_handler::start(ctx, opt.curve->accepted, "node '" + opt.node + "'");
      if (!z) return z.err();
      zap = std::move(*z);
      const int server = 1;
      GFDIT_ZMQ_CHECK(zmq_setsockopt(router, ZMQ_CURVE_SERVER, &server, sizeof server));
      GFDIT_ZMQ_CHECK(zmq_setsockopt(router, ZMQ_CURVE_SECRETKEY, opt.curve->own.secret_key.c_str(), 41));
      GFDIT_ZMQ_CHECK(zmq_setsockopt(router, ZMQ_ZAP_DOMAIN, "gfdit", 5));
    }
    if (zmq_bind(router, opt.bind.c_str()) < 0)
      return make_error(errc::io,
                        "bus of node '" + opt.node + "' cannot bind " + opt.bind + ": " + zmq_strerror(zmq_errno()));
    char buf[512];
    std::size_t len = sizeof buf;
    GFDIT_ZMQ_CHECK(zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, buf, &len));
    endpoint.assign(buf, len > 0 ? len - 1 : 0);
    wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd < 0) return make_error(errc::io, "eventfd failed");
    thread = std::thread([this] { loop(); });
    return {};
  }

  void complete(std::uint64_t n) {
    if (n == 0) return;
    std::lock_guard lock(mu);
    done += n;
    if (done == queued) drained.notify_all();
  }

  void handed_over(std::uint64_t n) {
    std::lock_guard lock(mu);
    queued += n;
  }

  // Any thread: the frame fails, reported on the bus thread (failure callbacks may post again).
  void fail_later(outgoing&& o, std::string reason) {
    {
      std::lock_guard lock(mu);
      ++queued;
      o.error = std::move(reason);
      failing.push_back(std::move(o));
    }
    wake();
  }

  // Bus thread.
  void fail(outgoing&& o, bool transient = false) {
    ++failed;
    if (cbs.on_send_failed) cbs.on_send_failed(send_failure{o.peer, std::move(o.meta), std::move(o.error), transient});
  }

  // A message over bytes another object owns: ZeroMQ holds a reference to `owner` until sent.
  template <class Owner>
  static void init_shared(zmq_msg_t& m, const std::string& bytes, const Owner& owner) {
    auto* ref = new Owner(owner);
    zmq_msg_init_data(
        &m, const_cast<char*>(bytes.data()), bytes.size(), [](void*, void* hint) { delete static_cast<Owner*>(hint); },
        ref);
  }

  // Returns true when the frame left, false when ZeroMQ asks to retry; `error` is set when it
  // cannot leave at all. Small frames are copied into the message; large ones and a separate
  // payload go zero-copy. ZeroMQ takes a message's parts all or none, and checks its high-water
  // mark at the first: once the header is in, the payload is too.
  bool try_send(void* socket, const outgoing& o, std::string& error) {
    zmq_msg_t m;
    if (o.frame->size() >= own_frame_bytes) {
      init_shared(m, *o.frame, o.frame);
    } else {
      zmq_msg_init_size(&m, o.frame->size());
      std::memcpy(zmq_msg_data(&m), o.frame->data(), o.frame->size());
    }
    if (zmq_msg_send(&m, socket, ZMQ_DONTWAIT | (o.body ? ZMQ_SNDMORE : 0)) >= 0) {
      if (!o.body) return ++sent, true;
      zmq_msg_t p;
      init_shared(p, o.body->payload, o.body);
      if (zmq_msg_send(&p, socket, ZMQ_DONTWAIT) >= 0) return ++sent, true;
      zmq_msg_close(&p);
    }
    const int e = zmq_errno();
    zmq_msg_close(&m);
    if (e != EAGAIN) error = std::string("zmq_send to '") + o.peer + "': " + zmq_strerror(e);
    return false;
  }

  // One DEALER per peer: immediate (never queue for a peer that is not connected), bounded,
  // named after this node so the peer's ROUTER knows who sends.
  result<void*> open_dealer(const std::string& endpoint, const std::string& key) {
    void* d = zmq_socket(ctx, ZMQ_DEALER);
    if (!d) return make_error(errc::io, std::string("zmq_socket: ") + zmq_strerror(zmq_errno()));
    auto r = configure_dealer(d, endpoint, key);
    if (!r) {
      zmq_close(d);
      return r.err();
    }
    return d;
  }
  result<void> configure_dealer(void* d, const std::string& endpoint, const std::string& key) {
    if (opt.curve) {
      // A CURVE client that only talks to the holder of the peer's secret: a process squatting
      // on the peer's endpoint completes no handshake and reads nothing.
      const std::string server = opt.curve->accepted.public_of(key);
      if (server.empty()) return make_error(errc::not_found, "no public key named '" + key + "' in the key folder");
      GFDIT_ZMQ_CHECK(zmq_setsockopt(d, ZMQ_CURVE_SERVERKEY, server.c_str(), 41));
      GFDIT_ZMQ_CHECK(zmq_setsockopt(d, ZMQ_CURVE_PUBLICKEY, opt.curve->own.public_key.c_str(), 41));
      GFDIT_ZMQ_CHECK(zmq_setsockopt(d, ZMQ_CURVE_SECRETKEY, opt.curve->own.secret_key.c_str(), 41));
    }
    const int immediate = 1;
    const int linger = static_cast<int>(opt.linger.count());
    const int reconnect_ms = 20;
    GFDIT_ZMQ_CHECK(zmq_setsockopt(d, ZMQ_IMMEDIATE, &immediate, sizeof immediate));
    GFDIT_ZMQ_CHECK(zmq_setsockopt(d, ZMQ_SNDHWM, &opt.send_hwm, sizeof(int)));
    GFDIT_ZMQ_CHECK(zmq_setsockopt(d, ZMQ_LINGER, &linger, sizeof linger));
    GFDIT_ZMQ_CHECK(zmq_setsockopt(d, ZMQ_ROUTING_ID, opt.node.data(), opt.node.size()));
    GFDIT_ZMQ_CHECK(zmq_setsockopt(d, ZMQ_RECONNECT_IVL, &reconnect_ms, sizeof reconnect_ms));
    if (zmq_connect(d, endpoint.c_str()) < 0)
      return make_error(errc::io, "cannot connect to " + endpoint + ": " + zmq_strerror(zmq_errno()));
    return {};
  }

  // Any thread.
  void connect(const std::string& node, const std::string& endpoint, const std::string& key) {
    peer_socket* p;
    {
      std::unique_lock lock(peers_mu);
      auto& slot = peers[node];
      if (!slot) slot = std::make_unique<peer_socket>();
      p = slot.get();
    }
    std::lock_guard lock(p->mu);
    // A node that came back under the same name at another endpoint (a tool run again): talk
    // to the new one. Frames still waiting go to it.
    if (p->socket && p->endpoint != endpoint) {
      zmq_close(p->socket);
      p->socket = nullptr;
    }
    if (p->socket) return;
    auto d = open_dealer(endpoint, key.empty() ? node : key);
    if (d) {
      p->socket = *d;
      p->endpoint = endpoint;
      p->error.clear();
    } else {
      p->error = d.err().what;  // frames to this peer fail with the reason
    }
    if (!p->waiting.empty()) wake();
  }

  peer_socket* find(const std::string& node) {
    std::shared_lock lock(peers_mu);
    auto it = peers.find(node);
    return it == peers.end() ? nullptr : it->second.get();
  }

  // Any thread: straight to ZeroMQ when nothing to this peer waits before it, else in line.
  void send(outgoing&& o) {
    peer_socket* p = find(o.peer);
    if (!p) return fail_later(std::move(o), "no connection to node '" + o.peer + "'");
    std::unique_lock lock(p->mu);
    if (!p->socket) {
      std::string why = "no connection to node '" + o.peer + "': " + p->error;
      lock.unlock();
      return fail_later(std::move(o), std::move(why));
    }
    // A burst (posts closer than burst_gap) goes to the bus thread, which sends it back to back:
    // sent one at a time between encodings, each frame would wake ZeroMQ's I/O thread alone.
    const auto now = clock::now();
    const bool burst = now - p->last_post < opt.burst_gap;
    p->last_post = now;
    std::string error;
    if (!burst && p->waiting.empty() && try_send(p->socket, o, error)) return;
    if (!error.empty()) {
      lock.unlock();
      return fail_later(std::move(o), std::move(error));
    }
    const bool first = p->waiting.empty();  // else the bus thread is on it already
    // Counted before the bus thread can see (and complete) it, so flush() never sees done > queued.
    handed_over(1);
    p->waiting.push_back(std::move(o));
    lock.unlock();
    if (first) wake();
  }

  // One frame (and, with `body`, its payload) to each peer.
  void send_each(std::span<const std::string> peers, const frame_ptr& frame, const envelope_ptr& body,
                 const envelope& env) {
    const auto deadline = clock::now() + opt.send_timeout;
    for (const auto& peer : peers) send(outgoing{peer, frame, body, header_of(env), deadline});
  }

  // Bus thread: sends what waits, in order; reports what failed for good or ran out of time.
  // Failures are reported after the peer's lock is released (their callbacks may post again).
  std::uint64_t retry_waiting(bool& any_left) {
    std::vector<std::pair<outgoing, bool>> failures;  // with whether retrying later may help
    {
      std::lock_guard lock(mu);
      for (auto& o : failing) failures.push_back({std::move(o), false});
      failing.clear();
    }
    std::uint64_t n = failures.size();
    any_left = false;
    const auto now = clock::now();
    std::shared_lock map_lock(peers_mu);
    for (auto& [name, p] : peers) {
      std::lock_guard lock(p->mu);
      while (!p->waiting.empty()) {
        auto& o = p->waiting.front();
        if (!p->socket) {
          o.error = "no connection to node '" + name + "': " + p->error;
          failures.push_back({std::move(o), false});
        } else if (try_send(p->socket, o, o.error)) {
        } else if (!o.error.empty()) {
          failures.push_back({std::move(o), false});
        } else if (now >= o.deadline) {
          o.error = "peer '" + name + "' did not take the frame within " + std::to_string(opt.send_timeout.count()) +
                    " ms (not connected, or its high-water mark is reached)";
          failures.push_back({std::move(o), true});
        } else {
          any_left = true;
          break;
        }
        p->waiting.pop_front();
        ++n;
      }
    }
    map_lock.unlock();
    for (auto& [o, transient] : failures) fail(std::move(o), transient);
    return n;
  }

  void undecodable(const std::string& why) {
    ++decode_errors;
    if (cbs.on_undecodable) cbs.on_undecodable(why);
  }

  void receive_all() {
    zmq_msg_t id, body;
    for (int budget = 0; budget < 1024; ++budget) {
      zmq_msg_init(&id);
      if (zmq_msg_recv(&id, router, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&id);
        return;
      }
      zmq_msg_init(&body);
      const bool ok = zmq_msg_more(&id) && zmq_msg_recv(&body, router, 0) >= 0;
      if (ok) {
        // A third frame is the payload, sent apart from its header (large payloads).
        zmq_msg_t payload;
        zmq_msg_init(&payload);
        const bool apart = zmq_msg_more(&body) && zmq_msg_recv(&payload, router, 0) >= 0;
        // Any further frames of a malformed message are discarded.
        bool extra_frames = false;
        while (zmq_msg_more(apart ? &payload : &body)) {
          zmq_msg_t extra;
          zmq_msg_init(&extra);
          zmq_msg_recv(&extra, router, 0);
          const bool more = zmq_msg_more(&extra);
          zmq_msg_close(&extra);
          extra_frames = true;
          if (!more) break;
        }
        auto env = decode_envelope(std::string_view(static_cast<const char*>(zmq_msg_data(&body)), zmq_msg_size(&body)),
                                   opt.limits);
        if (env && apart) {
          if (!env->payload.empty())
            env = make_error(errc::decode_failed, "a payload frame after an envelope that has one");
          else if (zmq_msg_size(&payload) > opt.limits.max_bin)
            env =
                make_error(errc::decode_failed, "a payload frame of " + std::to_string(zmq_msg_size(&payload)) +
                                                    " bytes, past the limit of " + std::to_string(opt.limits.max_bin));
          else
            env->payload.assign(static_cast<const char*>(zmq_msg_data(&payload)), zmq_msg_size(&payload));
        }
        zmq_msg_close(&payload);
        if (extra_frames) {
          undecodable("a message of more than three frames");
        } else if (env) {
          ++received;
          // The ZAP handler's answer for this connection: the name of the key it came with.
          const char* key = opt.curve ? zmq_msg_gets(&body, "User-Id") : nullptr;
          if (cbs.on_receive) cbs.on_receive(std::move(*env), key ? std::string(key) : std::string());
        } else {
          undecodable(env.err().what);
        }
      } else {
        undecodable("a frame without a body");
      }
      zmq_msg_close(&body);
      zmq_msg_close(&id);
    }
  }

  void loop() {
    auto last_activity = clock::now();
    bool any_left = false;
    while (running.load(std::memory_order_relaxed)) {
      zmq_pollitem_t items[2] = {{router, 0, ZMQ_POLLIN, 0}, {nullptr, wake_fd, ZMQ_POLLIN, 0}};
      const bool hot = clock::now() - last_activity < opt.spin;
      const long timeout_ms = hot ? 0 : any_left ? 1 : 100;
      if (zmq_poll(items, 2, timeout_ms) < 0 && zmq_errno() != EINTR) break;
      if (items[1].revents & ZMQ_POLLIN) {
        std::uint64_t v;
        [[maybe_unused]] auto n = ::read(wake_fd, &v, sizeof v);
      }
      if (items[0].revents & ZMQ_POLLIN) {
        last_activity = clock::now();
        receive_all();
        if (cbs.on_burst_end) cbs.on_burst_end();
      }
      complete(retry_waiting(any_left));
    }
    // Shutdown: whatever still waits is reported, never silently lost.
    std::uint64_t completed = 0;
    std::vector<outgoing> left;
    {
      std::lock_guard lock(mu);
      left.swap(failing);
    }
    {
      std::shared_lock map_lock(peers_mu);
      for (auto& [name, p] : peers) {
        std::lock_guard lock(p->mu);
        for (auto& o : p->waiting) {
          o.error = "bus stopped before peer '" + name + "' took it";
          left.push_back(std::move(o));
        }
        p->waiting.clear();
      }
    }
    for (auto& o : left) {
      fail(std::move(o));
      ++completed;
    }
    complete(completed);
  }
};

bus::bus(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
bus::~bus() = default;

result<std::unique_ptr<bus>> bus::create(bus_options options, callbacks cbs) {
  auto p = std::make_unique<impl>();
  p->opt = std::move(options);
  p->cbs = std::move(cbs);
  if (auto r = p->open(); !r) return r.err();
  return std::unique_ptr<bus>(new bus(std::move(p)));
}

const std::string& bus::endpoint() const { return impl_->endpoint; }
const std::string& bus::node() const { return impl_->opt.node; }

void bus::add_peer(const std::string& node, const std::string& endpoint, const std::string& key) {
  impl_->connect(node, endpoint, key);
}

void bus::post(const std::string& peer, const envelope& env) { post(std::span(&peer, 1), env); }

void bus::post(std::span<const std::string> peers, const envelope& env) {
  if (!peers.empty()) impl_->send_each(peers, std::make_shared<const std::string>(encode_envelope(env)), nullptr, env);
}

void bus::post(std::span<const std::string> peers, const envelope_ptr& env) {
  if (env->payload.size() < own_frame_bytes) return post(peers, *env);
  if (!peers.empty())
    impl_->send_each(peers, std::make_shared<const std::string>(encode_envelope_header(*env)), env, *env);
}

bool bus::flush(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->mu);
  return impl_->drained.wait_for(lock, timeout, [&] { return impl_->done == impl_->queued; });
}

bus_stats bus::stats() const {
  return {impl_->sent.load(),
          impl_->received.load(),
          impl_->failed.load(),
          impl_->decode_errors.load(),
          impl_->zap ? impl_->zap->refused() : 0,
          0};
}

}  // namespace gfdit
