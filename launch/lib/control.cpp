#include "launch/lib/control.hpp"

#include <zmq.h>

#include "actors/runtime/zmq_check.hpp"

namespace gfdit::launch {
namespace {

constexpr int max_control_frame = 16 << 20;

result<void> configure(void* s) {
  const int zero = 0;
  const std::int64_t max = max_control_frame;
  GFDIT_ZMQ_CHECK(zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero));
  GFDIT_ZMQ_CHECK(zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof max));
  return {};
}

result<std::string> receive(void* s) {
  zmq_msg_t m;
  zmq_msg_init(&m);
  if (zmq_msg_recv(&m, s, 0) < 0) {
    zmq_msg_close(&m);
    return make_error(errc::io, std::string("control receive: ") + zmq_strerror(zmq_errno()));
  }
  std::string out(static_cast<const char*>(zmq_msg_data(&m)), zmq_msg_size(&m));
  zmq_msg_close(&m);
  return out;
}

}  // namespace

void* control_context() {
  static void* ctx = zmq_ctx_new();
  return ctx;
}

result<nlohmann::json> control_request(const std::string& endpoint, const nlohmann::json& request,
                                       std::chrono::milliseconds timeout) {
  void* s = zmq_socket(control_context(), ZMQ_REQ);
  if (!s) return make_error(errc::io, std::string("zmq_socket: ") + zmq_strerror(zmq_errno()));
  struct closer {
    void* s;
    ~closer() { zmq_close(s); }
  } close_it{s};
  if (auto r = configure(s); !r) return r.err();
  GFDIT_ZMQ_CHECK(zmq_connect(s, endpoint.c_str()));
  const std::string text = request.dump();
  GFDIT_ZMQ_CHECK(zmq_send(s, text.data(), text.size(), 0));
  zmq_pollitem_t item{s, 0, ZMQ_POLLIN, 0};
  const int n = zmq_poll(&item, 1, static_cast<long>(timeout.count()));
  if (n < 0) return make_error(errc::io, std::string("zmq_poll: ") + zmq_strerror(zmq_errno()));
  if (n == 0)
    return make_error(errc::timeout, "no answer from control endpoint " + endpoint + " within " +
                                         std::to_string(timeout.count()) + " ms");
  auto reply = receive(s);
  if (!reply) return reply.err();
  auto j = nlohmann::json::parse(*reply, nullptr, false);
  if (j.is_discarded()) return make_error(errc::decode_failed, "control reply is not JSON");
  if (!j.value("ok", false)) return make_error(errc::state, j.value("error", std::string("request failed")));
  return j;
}

result<std::unique_ptr<control_server>> control_server::bind(const std::string& endpoint) {
  std::unique_ptr<control_server> out(new control_server());
  out->socket_ = zmq_socket(control_context(), ZMQ_REP);
  if (!out->socket_) return make_error(errc::io, std::string("zmq_socket: ") + zmq_strerror(zmq_errno()));
  if (auto r = configure(out->socket_); !r) return r.err();
  std::string ep = endpoint;
  if (ep.size() > 2 && ep.compare(ep.size() - 2, 2, ":0") == 0) ep.replace(ep.size() - 1, 1, "*");
  if (zmq_bind(out->socket_, ep.c_str()) < 0)
    return make_error(errc::io, "control endpoint cannot bind " + endpoint + ": " + zmq_strerror(zmq_errno()));
  char buf[512] = {};
  std::size_t len = sizeof buf;
  GFDIT_ZMQ_CHECK(zmq_getsockopt(out->socket_, ZMQ_LAST_ENDPOINT, buf, &len));
  out->endpoint_ = buf;
  return out;
}

control_server::~control_server() {
  if (socket_) zmq_close(socket_);
}

bool control_server::serve_one(const handler& fn, int timeout_ms) {
  zmq_pollitem_t item{socket_, 0, ZMQ_POLLIN, 0};
  if (zmq_poll(&item, 1, timeout_ms) <= 0 || !(item.revents & ZMQ_POLLIN)) return false;
  auto text = receive(socket_);
  if (!text) return false;
  nlohmann::json reply;
  auto req = nlohmann::json::parse(*text, nullptr, false);
  if (req.is_discarded() || !req.is_object()) {
    reply = {{"ok", false}, {"error", "request is not a JSON object"}};
  } else {
    try {
      reply = fn(req);
    } catch (const std::exception& e) {
      reply = {{"ok", false}, {"error", e.what()}};
    }
  }
  const std::string out = reply.dump();
  // REP must answer before it can receive again; a failure here only loses this reply.
  (void)zmq_send(socket_, out.data(), out.size(), 0);
  return true;
}

}  // namespace gfdit::launch
