#include "actors/runtime/zap_handler.hpp"

#include <zmq.h>

#include <vector>

#include "actors/runtime/log_limiter.hpp"
#include "actors/runtime/logging.hpp"
#include "actors/runtime/zmq_check.hpp"

namespace gfdit {
namespace {

std::vector<std::string> receive_frames(void* s) {
  std::vector<std::string> frames;
  while (true) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, s, 0) < 0) {
      zmq_msg_close(&m);
      return {};
    }
    frames.emplace_back(static_cast<const char*>(zmq_msg_data(&m)), zmq_msg_size(&m));
    const bool more = zmq_msg_more(&m);
    zmq_msg_close(&m);
    if (!more) return frames;
  }
}

void reply(void* s, const std::string& version, const std::string& request_id, const char* code, const char* text,
           const std::string& user_id) {
  const std::string frames[] = {version, request_id, code, text, user_id, ""};
  for (std::size_t i = 0; i < 6; ++i)
    (void)zmq_send(s, frames[i].data(), frames[i].size(), i + 1 < 6 ? ZMQ_SNDMORE : 0);
}

}  // namespace

result<std::unique_ptr<zap_handler>> zap_handler::start(void* zmq_context, key_ring accepted, std::string owner) {
  std::unique_ptr<zap_handler> h(new zap_handler());
  h->ring_ = std::move(accepted);
  h->owner_ = std::move(owner);
  h->socket_ = zmq_socket(zmq_context, ZMQ_REP);
  if (!h->socket_) return make_error(errc::io, std::string("zmq_socket: ") + zmq_strerror(zmq_errno()));
  const int linger = 0;
  GFDIT_ZMQ_CHECK(zmq_setsockopt(h->socket_, ZMQ_LINGER, &linger, sizeof linger));
  if (zmq_bind(h->socket_, "inproc://zeromq.zap.01") < 0)
    return make_error(
        errc::io, h->owner_ + ": cannot bind the ZAP handler (one per ZeroMQ context): " + zmq_strerror(zmq_errno()));
  h->thread_ = std::thread([p = h.get()] { p->serve(); });
  return h;
}

zap_handler::~zap_handler() {
  running_ = false;
  if (thread_.joinable()) thread_.join();
  if (socket_) zmq_close(socket_);
}

void zap_handler::serve() {
  auto log = make_logger("zap");
  log_limiter limiter;
  while (running_.load(std::memory_order_relaxed)) {
    zmq_pollitem_t item{socket_, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, 100) <= 0 || !(item.revents & ZMQ_POLLIN)) continue;
    // RFC 27: version, request id, domain, address, routing id, mechanism, credentials...
    const auto f = receive_frames(socket_);
    if (f.size() < 6) {
      // A REP socket must answer before it may receive again.
      reply(socket_, "1.0", f.size() > 1 ? f[1] : "", "500", "malformed ZAP request", "");
      continue;
    }
    const std::string& address = f[3];
    const std::string& mechanism = f[5];
    std::string why;
    std::string name;
    if (mechanism != "CURVE" || f.size() < 7 || f[6].size() != 32) {
      why = "mechanism " + mechanism + " is not accepted (CURVE only)";
    } else {
      char z85[41] = {};
      zmq_z85_encode(z85, reinterpret_cast<const std::uint8_t*>(f[6].data()), 32);
      if (auto it = ring_.by_public.find(z85); it != ring_.by_public.end())
        name = it->second;
      else
        why = std::string("public key ") + z85 + " is not in the key folder";
    }
    if (why.empty()) {
      ++accepted_;
      reply(socket_, f[0], f[1], "200", "OK", name);
      continue;
    }
    ++refused_;
    reply(socket_, f[0], f[1], "400", "key not accepted", "");
    std::uint64_t held = 0;
    if (limiter.allow(log_limiter::clock::now(), held))
      log->warn("{}: refused a connection from {}: {}{}", owner_, address.empty() ? "?" : address, why,
                held ? " (and " + std::to_string(held) + " more refusals since the last line)" : "");
  }
}

}  // namespace gfdit
