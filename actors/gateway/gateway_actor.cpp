// The HTTP front door (actor type "gfdit.gateway"): an HTTP server on a thread of its own turns
// POST /v1/images/generations into GenerateRequests for admission and answers each with the
// request's Rejected or RequestDone (http_api.hpp). The server threads never touch the actor's
// context: they queue the request and wake the actor (context::waker), which sends it and, when
// the answer comes, hands it back to the waiting server thread.
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include <httplib.h>
#include <sys/socket.h>

#include "actors/gateway/http_api.hpp"
#include "actors/runtime/context.hpp"
#include "actors/runtime/param_checks.hpp"
#include "actors/runtime/registry.hpp"
#include "actors/serving/serving_names.hpp"

namespace gfdit {
namespace {

using gateway::http_reply;

// One HTTP request waiting for its answer; shared by the server thread and the actor.
struct waiter {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  http_reply reply;

  void complete(http_reply r) {
    {
      std::lock_guard lock(mu);
      if (done) return;
      reply = std::move(r);
      done = true;
    }
    cv.notify_one();
  }
};

class gateway_actor : public actor {
 public:
  ~gateway_actor() override { stop_server(); }

  result<void> on_configure(context& ctx) override {
    auto& p = ctx.params();
    for (auto r : {p.declare<std::string>("listen", "127.0.0.1:8080", "HOST:PORT to serve HTTP on (port 0: any free one)"),
                   p.declare<std::string>("port_file", "", "write the bound port here (for port 0)"),
                   p.declare<std::string>("admission", serving_names::admission, "the admission actor"),
                   p.declare<double>("timeout_s", 600.0, "answer 504 when a request takes longer (wall time)",
                                     checks::above<double>(0.0)),
                   p.declare<std::int64_t>("http_threads", 64, "concurrent HTTP connections served",
                                           checks::above<std::int64_t>(0)),
                   p.declare<std::int64_t>("max_body_bytes", 1 << 20, "larger request bodies get 413 unread",
                                           checks::above<std::int64_t>(0)),
                   p.declare<double>("read_timeout_s", 10.0, "a client that sends nothing for this long is dropped",
                                     checks::above<double>(0.0))})
      if (!r) return r;
    const auto listen = p.get<std::string>("listen");
    const auto colon = listen.rfind(':');
    if (colon == std::string::npos || colon == 0)
      return make_error(errc::invalid_argument, "parameter 'listen': expected HOST:PORT, got '" + listen + "'");
    host_ = listen.substr(0, colon);
    try {
      port_ = std::stoi(listen.substr(colon + 1));
    } catch (...) {
      port_ = -1;
    }
    if (port_ < 0 || port_ > 65535)
      return make_error(errc::invalid_argument, "parameter 'listen': bad port in '" + listen + "'");
    port_file_ = p.get<std::string>("port_file");
    admission_ = p.get<std::string>("admission");
    timeout_ = std::chrono::duration<double>(p.get<double>("timeout_s"));
    threads_ = static_cast<std::size_t>(p.get<std::int64_t>("http_threads"));
    max_body_ = static_cast<std::size_t>(p.get<std::int64_t>("max_body_bytes"));
    read_timeout_ = std::chrono::duration<double>(p.get<double>("read_timeout_s"));

    ctx.on<msg::rejected>([this](const msg::rejected& r, const envelope&) { answer(r.client_tag, gateway::reply_for(r)); });
    ctx.subscribe<msg::request_done>(serving_names::done_topic, [this](const msg::request_done& d, const envelope&) {
      answer(d.client_tag, gateway::reply_for(d));
    });
    // Admission unreachable (or gone): the request's sender learns it here.
    ctx.on_delivery_failure([this](const error& e, const envelope& env) {
      if (env.type_id != type_id_of<msg::generate_request>) return;
      if (auto req = decode<msg::generate_request>(env.payload))
        answer(req->client_tag, gateway::error_reply(503, "unavailable", "admission did not get the request: " + e.what));
    });
    return {};
  }

  result<void> on_activate(context& ctx) override {
    wake_ = ctx.waker([this, &ctx] { drain(ctx); });
    server_ = std::make_unique<httplib::Server>();
    const std::size_t threads = threads_;
    server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, which would let a second gateway
    // share a port in use and split the requests between the two without a word.
    server_->set_socket_options([](int sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    // Bounded input: a body over the limit is refused (413) before it is read, and a connection
    // that goes quiet mid-request is closed.
    server_->set_payload_max_length(max_body_);
    const auto rt = std::chrono::duration_cast<std::chrono::microseconds>(read_timeout_);
    server_->set_read_timeout(rt.count() / 1000000, rt.count() % 1000000);
    server_->set_keep_alive_timeout(static_cast<time_t>(std::max<std::int64_t>(1, rt.count() / 1000000)));
    server_->Post("/v1/images/generations", [this](const httplib::Request& req, httplib::Response& res) {
      write(res, serve(req.body));
    });
    server_->Get("/v1/health", [](const httplib::Request&, httplib::Response& res) {
      write(res, {200, R"({"status":"ok"})", 0});
    });
    const int port = port_ == 0 ? server_->bind_to_any_port(host_) : (server_->bind_to_port(host_, port_) ? port_ : -1);
    if (port < 0) return make_error(errc::io, "gateway: cannot listen on " + host_ + ":" + std::to_string(port_));
    if (!port_file_.empty()) std::ofstream(port_file_) << port << "\n";
    {
      std::lock_guard lock(mu_);
      accepting_ = true;
    }
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    ctx.log().info("serving HTTP on http://{}:{} (POST /v1/images/generations)", host_, port);
    return {};
  }

  result<void> on_deactivate(context&) override {
    // Answer every waiting server thread first: the server joins its threads when it stops.
    std::deque<std::pair<msg::generate_request, std::shared_ptr<waiter>>> queued;
    {
      std::lock_guard lock(mu_);
      accepting_ = false;
      queued.swap(inbox_);
    }
    const auto stopping = gateway::error_reply(503, "unavailable", "the gateway is stopping");
    for (auto& q : queued) q.second->complete(stopping);
    for (auto& [tag, w] : waiting_) w->complete(stopping);
    waiting_.clear();
    stop_server();
    return {};
  }

 private:
  static void write(httplib::Response& res, const http_reply& r) {
    res.status = r.status;
    if (r.retry_after_s > 0) res.set_header("Retry-After", std::to_string(r.retry_after_s));
    res.set_content(r.body, "application/json");
  }

  // A server thread: parse, queue for the actor, wait for the answer.
  http_reply serve(const std::string& body) {
    auto parsed = gateway::parse_generation(body);
    if (auto* bad = std::get_if<http_reply>(&parsed)) return *bad;
    auto w = std::make_shared<waiter>();
    {
      std::lock_guard lock(mu_);
      if (!accepting_) return gateway::error_reply(503, "unavailable", "the gateway is stopping");
      inbox_.emplace_back(std::move(std::get<msg::generate_request>(parsed)), w);
    }
    wake_();
    std::unique_lock lock(w->mu);
    if (!w->cv.wait_for(lock, timeout_, [&] { return w->done; }))
      return gateway::error_reply(504, "timeout", "no answer within the gateway's timeout_s; the request may still run");
    return w->reply;
  }

  // The actor thread: send what the server threads queued.
  void drain(context& ctx) {
    std::deque<std::pair<msg::generate_request, std::shared_ptr<waiter>>> batch;
    {
      std::lock_guard lock(mu_);
      batch.swap(inbox_);
    }
    for (auto& [req, w] : batch) {
      req.client_tag = ctx.name() + "/" + std::to_string(++sent_);
      waiting_[req.client_tag] = w;
      if (auto r = ctx.send(admission_, req); !r) answer(req.client_tag, gateway::error_reply(503, "unavailable", r.err().what));
    }
  }

  void answer(const std::string& tag, http_reply r) {
    auto it = waiting_.find(tag);
    if (it == waiting_.end()) return;  // another client's request
    it->second->complete(std::move(r));
    waiting_.erase(it);
  }

  void stop_server() {
    {
      std::lock_guard lock(mu_);
      accepting_ = false;
    }
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
  }

  std::string host_, port_file_, admission_;
  int port_ = 0;
  std::chrono::duration<double> timeout_{600.0};
  std::size_t threads_ = 64;
  std::function<void()> wake_;
  std::unique_ptr<httplib::Server> server_;
  std::size_t max_body_ = 1 << 20;
  std::chrono::duration<double> read_timeout_{10.0};
  std::thread thread_;
  std::mutex mu_;
  bool accepting_ = false;                                                     // mu_
  std::deque<std::pair<msg::generate_request, std::shared_ptr<waiter>>> inbox_;  // mu_
  std::map<std::string, std::shared_ptr<waiter>> waiting_;  // actor thread: by client tag
  std::uint64_t sent_ = 0;                                   // actor thread
};

}  // namespace
}  // namespace gfdit

GFDIT_REGISTER_ACTOR(gfdit::gateway_actor, "gfdit.gateway");
