#include "actors/runtime/bus.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "actors/runtime/zap_handler.hpp"
#include "actors/runtime/zmq_check.hpp"

namespace gfdit {
namespace {

using clock = std::chrono::steady_clock;

struct outgoing {
  std::string peer;
  std::string frame;
  envelope meta;  // header only, for failure reports
  clock::time_point deadline;
};

struct command {
  enum kind_t { send, connect } kind = send;
  outgoing out;
  std::string endpoint;  // for connect
  std::string key;       // for connect: the name of the key the peer must hold
};

struct peer_socket {
  void* socket = nullptr;
  std::string endpoint;          // where `socket` connects
  std::string error;             // why there is no socket, when there is none
  std::deque<outgoing> waiting;  // frames ZeroMQ refused for now, in order
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

  std::mutex mu;
  std::vector<command> queue;  // guarded by mu
  std::uint64_t queued = 0;    // commands posted, guarded by mu
  std::uint64_t done = 0;      // commands completed (sent or failed), guarded by mu
  std::condition_variable drained;

  std::map<std::string, peer_socket> peers;  // bus thread only
  std::atomic<bool> running{true};
  std::thread thread;

  std::atomic<std::uint64_t> sent{0}, received{0}, failed{0}, decode_errors{0};

  ~impl() {
    running = false;
    wake();
    if (thread.joinable()) thread.join();
    for (auto& [name, p] : peers) zmq_close(p.socket);
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

  void push(command&& c) {
    bool was_empty;
    {
      std::lock_guard lock(mu);
      was_empty = queue.empty();
      queue.push_back(std::move(c));
      ++queued;
    }
    if (was_empty) wake();  // the bus thread swaps the whole queue, so one wake-up suffices
  }

  void complete(std::uint64_t n) {
    if (n == 0) return;
    std::lock_guard lock(mu);
    done += n;
    if (done == queued) drained.notify_all();
  }

  void fail(outgoing&& o, std::string reason, bool transient = false) {
    ++failed;
    if (cbs.on_send_failed) cbs.on_send_failed(send_failure{o.peer, std::move(o.meta), std::move(reason), transient});
  }

  // Returns true when the frame left (or failed for good); false when ZeroMQ asks to retry.
  bool try_send(peer_socket& p, outgoing& o) {
    // Large frames go zero-copy: ZeroMQ takes the buffer and frees it when sent.
    zmq_msg_t m;
    const bool zero_copy = o.frame.size() >= (64u << 10);
    if (zero_copy) {
      auto owned = std::make_unique<std::string>(std::move(o.frame));
      zmq_msg_init_data(
          &m, owned->data(), owned->size(),
          [](void*, void* hint) { std::unique_ptr<std::string>(static_cast<std::string*>(hint)); }, owned.get());
      owned.release();
    } else {
      zmq_msg_init_size(&m, o.frame.size());
      std::memcpy(zmq_msg_data(&m), o.frame.data(), o.frame.size());
    }
    if (zmq_msg_send(&m, p.socket, ZMQ_DONTWAIT) >= 0) {
      ++sent;
      return true;
    }
    const int e = zmq_errno();
    if (e == EAGAIN && zero_copy) {
      // Take the buffer back for the retry.
      o.frame.assign(static_cast<const char*>(zmq_msg_data(&m)), zmq_msg_size(&m));
    }
    zmq_msg_close(&m);
    if (e == EAGAIN) return false;
    fail(std::move(o), std::string("zmq_send to '") + o.peer + "': " + zmq_strerror(e));
    return true;
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

  std::uint64_t handle(command& c) {
    if (c.kind == command::connect) {
      auto& p = peers[c.out.peer];
      // A node that came back under the same name at another endpoint (a tool run again):
      // talk to the new one. Frames still waiting go to it.
      if (p.socket && p.endpoint != c.endpoint) {
        zmq_close(p.socket);
        p.socket = nullptr;
      }
      if (!p.socket) {
        auto d = open_dealer(c.endpoint, c.key.empty() ? c.out.peer : c.key);
        if (d) {
          p.socket = *d;
          p.endpoint = c.endpoint;
          p.error.clear();
        } else {
          p.error = d.err().what;  // frames to this peer fail with the reason
        }
      }
      return 1;
    }
    auto it = peers.find(c.out.peer);
    if (it == peers.end() || !it->second.socket) {
      const std::string why = it == peers.end() ? "" : ": " + it->second.error;
      fail(std::move(c.out), "no connection to node '" + c.out.peer + "'" + why);
      return 1;
    }
    auto& p = it->second;
    if (!p.waiting.empty() || !try_send(p, c.out)) {
      p.waiting.push_back(std::move(c.out));
      return 0;  // completes later
    }
    return 1;
  }

  std::uint64_t retry_waiting() {
    std::uint64_t n = 0;
    const auto now = clock::now();
    for (auto& [name, p] : peers) {
      while (!p.waiting.empty()) {
        auto& o = p.waiting.front();
        if (try_send(p, o)) {
          p.waiting.pop_front();
          ++n;
        } else if (now >= o.deadline) {
          fail(std::move(o),
               "peer '" + name + "' did not take the frame within " + std::to_string(opt.send_timeout.count()) +
                   " ms (not connected, or its high-water mark is reached)",
               true);
          p.waiting.pop_front();
          ++n;
        } else {
          break;
        }
      }
    }
    return n;
  }

  bool any_waiting() const {
    for (const auto& [name, p] : peers)
      if (!p.waiting.empty()) return true;
    return false;
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
        // Any further frames of a malformed multipart message are discarded.
        while (zmq_msg_more(&body)) {
          zmq_msg_t extra;
          zmq_msg_init(&extra);
          zmq_msg_recv(&extra, router, 0);
          const bool more = zmq_msg_more(&extra);
          zmq_msg_close(&extra);
          if (!more) break;
          undecodable("a message of more than two frames");
        }
        auto env = decode_envelope(std::string_view(static_cast<const char*>(zmq_msg_data(&body)), zmq_msg_size(&body)),
                                   opt.limits);
        if (env) {
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
    std::vector<command> batch;
    auto last_activity = clock::now();
    while (running.load(std::memory_order_relaxed)) {
      zmq_pollitem_t items[2] = {{router, 0, ZMQ_POLLIN, 0}, {nullptr, wake_fd, ZMQ_POLLIN, 0}};
      const bool hot = clock::now() - last_activity < opt.spin;
      const long timeout_ms = hot ? 0 : any_waiting() ? 1 : 100;
      if (zmq_poll(items, 2, timeout_ms) < 0 && zmq_errno() != EINTR) break;
      if (items[1].revents & ZMQ_POLLIN) {
        std::uint64_t v;
        [[maybe_unused]] auto n = ::read(wake_fd, &v, sizeof v);
      }
      {
        std::lock_guard lock(mu);
        batch.swap(queue);
      }
      if (!batch.empty() || (items[0].revents & ZMQ_POLLIN)) last_activity = clock::now();
      std::uint64_t completed = 0;
      for (auto& c : batch) completed += handle(c);
      batch.clear();
      if (items[0].revents & ZMQ_POLLIN) receive_all();
      completed += retry_waiting();
      complete(completed);
    }
    // Shutdown: whatever still waits is reported, never silently lost.
    std::uint64_t completed = 0;
    {
      std::lock_guard lock(mu);
      batch.swap(queue);
    }
    for (auto& c : batch) {
      if (c.kind == command::send) fail(std::move(c.out), "bus stopped before sending");
      ++completed;
    }
    for (auto& [name, p] : peers) {
      for (auto& o : p.waiting) fail(std::move(o), "bus stopped before peer '" + name + "' took it");
      completed += p.waiting.size();
      p.waiting.clear();
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
  command c;
  c.kind = command::connect;
  c.out.peer = node;
  c.endpoint = endpoint;
  c.key = key;
  impl_->push(std::move(c));
}

void bus::post(const std::string& peer, const envelope& env) {
  command c;
  c.out.peer = peer;
  c.out.frame = encode_envelope(env);
  c.out.meta = header_of(env);
  c.out.deadline = clock::now() + impl_->opt.send_timeout;
  impl_->push(std::move(c));
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
