#include "launch/lib/control.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include "actors/runtime/log_limiter.hpp"
#include "actors/runtime/logging.hpp"
#include "actors/runtime/zmq_check.hpp"
#include "common/text.hpp"

namespace gfdit::launch {
namespace {

constexpr int max_control_frame = 16 << 20;

result<void> configure(void* s, const control_curve* curve, bool server) {
  if (curve) {
    if (server) {
      const int on = 1;
      GFDIT_ZMQ_CHECK(zmq_setsockopt(s, ZMQ_CURVE_SERVER, &on, sizeof on));
      GFDIT_ZMQ_CHECK(zmq_setsockopt(s, ZMQ_ZAP_DOMAIN, "gfdit", 5));
    } else {
      GFDIT_ZMQ_CHECK(zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, curve->server_public.c_str(), 41));
      GFDIT_ZMQ_CHECK(zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, curve->own.public_key.c_str(), 41));
    }
    GFDIT_ZMQ_CHECK(zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, curve->own.secret_key.c_str(), 41));
  }
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

result<std::string> make_control_token(const std::string& path) {
  unsigned char raw[32];
  if (::getrandom(raw, sizeof raw, 0) != static_cast<ssize_t>(sizeof raw))
    return make_error(errc::io, std::string("getrandom: ") + std::strerror(errno));
  static const char hex[] = "0123456789abcdef";
  std::string token;
  for (unsigned char b : raw) token += {hex[b >> 4], hex[b & 15]};
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return make_error(errc::io, path + ": " + std::strerror(errno));
  const bool ok = ::fchmod(fd, 0600) == 0 && ::write(fd, token.data(), token.size()) == 64;
  ::close(fd);
  if (!ok) return make_error(errc::io, path + ": cannot write the control token");
  return token;
}

result<std::string> read_control_token(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return make_error(errc::not_found, path + ": " + std::strerror(errno));
  if (st.st_mode & 077) return make_error(errc::invalid_argument, path + ": a token other users may read");
  auto text = read_text(path, 4096);
  if (!text) return text.err();
  std::string t = *text;
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
  return t;
}

void* control_context() {
  static void* ctx = zmq_ctx_new();
  return ctx;
}

result<nlohmann::json> control_request(const std::string& endpoint, const nlohmann::json& request,
                                       std::chrono::milliseconds timeout, const std::string& token,
                                       const control_curve* curve) {
  void* s = zmq_socket(control_context(), ZMQ_REQ);
  if (!s) return make_error(errc::io, std::string("zmq_socket: ") + zmq_strerror(zmq_errno()));
  struct closer {
    void* s;
    ~closer() { zmq_close(s); }
  } close_it{s};
  if (auto r = configure(s, curve, false); !r) return r.err();
  GFDIT_ZMQ_CHECK(zmq_connect(s, endpoint.c_str()));
  nlohmann::json sent = request;
  if (!token.empty()) sent["token"] = token;
  const std::string text = sent.dump();
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

result<std::unique_ptr<control_server>> control_server::bind(const std::string& endpoint, std::string token,
                                                             const control_curve* curve) {
  std::unique_ptr<control_server> out(new control_server());
  out->token_ = std::move(token);
  if (curve) {
    auto z = zap_handler::start(control_context(), curve->accepted, "control endpoint " + endpoint);
    if (!z) return z.err();
    out->zap_ = std::move(*z);
  }
  out->socket_ = zmq_socket(control_context(), ZMQ_REP);
  if (!out->socket_) return make_error(errc::io, std::string("zmq_socket: ") + zmq_strerror(zmq_errno()));
  if (auto r = configure(out->socket_, curve, true); !r) return r.err();
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
  } else if (!token_.empty() && !(req.contains("token") && req["token"].is_string() &&
                                  same_secret(token_, req["token"].get<std::string>()))) {
    reply = {{"ok", false},
             {"error",
              "not authorized: this control endpoint answers only requests with its token (a 0600 file "
              "of the user who launched the graph)"}};
    static log_limiter limiter;  // one server per process
    std::uint64_t held = 0;
    if (limiter.allow(log_limiter::clock::now(), held))
      make_logger("control")->warn("control endpoint {}: refused a request without its token{}", endpoint_,
                                   held ? " (and " + std::to_string(held) + " more)" : "");
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
