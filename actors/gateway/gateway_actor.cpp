// The HTTP front door (actor type "gfdit.gateway"): an HTTP server on threads of its own turns
// POST /v1/images/generations into GenerateRequests for admission (one per image) and answers
// with the pictures the workers send back (serving.result), as base64 or as a url into a
// bounded store; with "stream" it sends a Server-Sent Event per finished chunk. The served
// models come from the workers' hellos. A client that goes away, or a request past timeout_s,
// is cancelled in the graph, so its workers are free for other work.
//
// Threads: the server threads never touch the actor's context. A POST becomes a `job` that the
// server thread queues before waking the actor (context::waker); the actor sends its requests,
// fills the job as answers come, and the waiting server thread answers from it.
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include <httplib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <nlohmann/json.hpp>

#include "actors/gateway/client_socket.hpp"
#include "actors/gateway/gateway_metrics.hpp"
#include "actors/gateway/http_api.hpp"
#include "actors/gateway/result_store.hpp"
#include "actors/runtime/context.hpp"
#include "actors/runtime/param_checks.hpp"
#include "actors/runtime/registry.hpp"
#include "actors/serving/serving_names.hpp"
#include "common/text.hpp"

namespace gfdit {
namespace {

// Debian's cpp-httplib listens with a compiled-in backlog of 5: a burst of clients (a restarted
// gateway's, or more than five connecting at once) overflows it, the kernel drops their SYNs and
// each waits a 1 s retransmit or times out. Listening again on the bound socket raises it.
class http_server : public httplib::Server {
 public:
  void widen_backlog() { ::listen(svr_sock_, SOMAXCONN); }
};

using gateway::http_reply;
using nlohmann::json;
using steady = std::chrono::steady_clock;

// One POST: its images' requests and what came back for them; shared by a server thread and
// the actor (mu guards all but the fields set before it is queued).
struct job {
  gateway::generation gen;
  std::string url_base;  // "http://HOST" the client used, for `url` replies

  struct image {
    std::string tag;
    std::uint64_t request_id = 0;
    bool admitted = false;  // admission answered Admitted
    steady::time_point sent, resent;
    std::string undelivered;  // the last delivery failure of its GenerateRequest
    bool done = false;        // RequestDone "done" came
    double latency_ms = 0.0;
    std::optional<msg::result> picture;
    msg::request_done legacy;  // a seeded model's answer
  };

  std::mutex mu;
  std::condition_variable cv;
  std::vector<image> images;
  std::deque<json> events;  // progress, for a stream
  bool finished = false;
  http_reply reply;  // when finished
  json body;         // a success's JSON (a stream's last event)
  bool abandoned = false;
  std::string why_abandoned;

  void finish(http_reply r, json b = {}) {  // mu held
    if (finished) return;
    reply = std::move(r);
    body = std::move(b);
    finished = true;
    cv.notify_all();
  }
};

class gateway_actor : public actor {
 public:
  ~gateway_actor() override { stop_server(); }

  result<void> on_configure(context& ctx) override {
    ctx_ = &ctx;
    auto& p = ctx.params();
    for (auto r :
         {p.declare<std::string>("listen", "127.0.0.1:8080",
                                 "HOST:PORT to serve HTTP on (port 0: any free one); loopback unless told otherwise"),
          p.declare<std::string>("port_file", "", "write the bound port here (for port 0)"),
          p.declare<std::string>("admission", serving_names::admission, "the admission actor"),
          p.declare<std::string>("scheduler", serving_names::scheduler, "the scheduler (cancellations go there)"),
          p.declare<double>("timeout_s", 600.0, "a request not answered by then is cancelled (504)",
                            checks::above<double>(0.0)),
          p.declare<std::int64_t>("http_threads", 64, "concurrent HTTP connections served",
                                  checks::above<std::int64_t>(0)),
          p.declare<std::int64_t>("max_body_bytes", 1 << 20,
                                  "larger request bodies get 413 (past 8x it, at once and unread)",
                                  checks::above<std::int64_t>(0)),
          p.declare<double>("read_timeout_s", 10.0, "a client that sends nothing for this long is dropped",
                            checks::above<double>(0.0)),
          p.declare<std::int64_t>("max_outstanding", 64, "images in flight; more get 429 + Retry-After",
                                  checks::above<std::int64_t>(0)),
          p.declare<std::int64_t>("store_bytes", 256 << 20, "url pictures held until fetched; full: 429",
                                  checks::above<std::int64_t>(0)),
          p.declare<double>("store_ttl_s", 600.0, "an unfetched url picture is dropped after this",
                            checks::above<double>(0.0)),
          p.declare<std::string>("api_keys_file", "",
                                 "a file of API keys, one a line (mode 0600): every request but GET "
                                 "/v1/images/{id} and /v1/health then needs 'Authorization: Bearer KEY'"),
          p.declare<double>("admit_timeout_s", 5.0,
                            "admission not answering by then (its process died or restarts) fails the request (503)",
                            checks::above<double>(0.0)),
          p.declare<double>("picture_grace_s", 10.0,
                            "after its RequestDone, how long a picture may take to arrive before the request fails",
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
    scheduler_ = p.get<std::string>("scheduler");
    timeout_ = std::chrono::duration<double>(p.get<double>("timeout_s"));
    admit_timeout_ = std::chrono::duration<double>(p.get<double>("admit_timeout_s"));
    threads_ = static_cast<std::size_t>(p.get<std::int64_t>("http_threads"));
    max_body_ = static_cast<std::size_t>(p.get<std::int64_t>("max_body_bytes"));
    read_timeout_ = std::chrono::duration<double>(p.get<double>("read_timeout_s"));
    max_outstanding_ = p.get<std::int64_t>("max_outstanding");
    grace_ = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::duration<double>(p.get<double>("picture_grace_s")));
    if (const auto keys = p.get<std::string>("api_keys_file"); !keys.empty()) {
      auto k = read_keys(keys);
      if (!k) return k.err();
      keys_ = std::move(*k);
    }
    store_ = std::make_unique<gateway::result_store>(static_cast<std::size_t>(p.get<std::int64_t>("store_bytes")),
                                                     std::chrono::duration_cast<std::chrono::milliseconds>(
                                                         std::chrono::duration<double>(p.get<double>("store_ttl_s"))));

    ctx.on<msg::rejected>([this](const msg::rejected& r, const envelope&) {
      with_image(r.client_tag, [&](job& j, job::image& im) {
        im.done = true;  // never in the graph: nothing to cancel
        j.finish(gateway::reply_for(r));
      });
    });
    ctx.on<msg::admitted>([this](const msg::admitted& a, const envelope&) {
      with_image(a.request.client_tag, [&](job&, job::image& im) {
        im.admitted = true;
        im.request_id = a.request_id;
      });
    });
    ctx.on<msg::result>([this](const msg::result& r, const envelope&) {
      with_image(r.client_tag, [&](job& j, job::image& im) {
        im.picture = r;
        if (!r.error.empty()) j.finish(gateway::error_reply(500, "failed", r.error));
      });
    });
    ctx.on<msg::progress>([this](const msg::progress& m, const envelope&) {
      with_image(m.client_tag, [&](job& j, job::image& im) {
        im.request_id = m.request_id;
        const auto index = static_cast<int>(&im - j.images.data());
        j.events.push_back({{"type", "image_generation.progress"},
                            {"index", index},
                            {"step", m.step},
                            {"total", m.total},
                            {"group_size", m.group_size}});
        j.cv.notify_all();
      });
    });
    ctx.subscribe<msg::request_done>(serving_names::done_topic, [this, &ctx](const msg::request_done& d,
                                                                             const envelope&) {
      with_image(d.client_tag, [&](job& j, job::image& im) {
        im.request_id = d.request_id;
        im.done = true;
        if (d.status != "done") return j.finish(gateway::error_for(d));
        im.latency_ms = static_cast<double>(d.latency_us) / 1000.0;
        im.legacy = d;
        // A picture overtaken by its RequestDone has `picture_grace_s` to arrive.
        if (!j.gen.response_format.empty() && !im.picture)
          ctx.after(grace_, [this, tag = d.client_tag, rid = d.request_id] {
            with_image(tag, [&](job& jj, job::image& i2) {
              if (!i2.picture)
                jj.finish(gateway::error_reply(
                    500, "failed", "the picture of request " + std::to_string(rid) + " did not come from its worker"));
            });
          });
      });
    });
    // Which models are served: the workers' hellos; a worker that said hello before this
    // gateway listened is asked again when its heartbeat shows it.
    ctx.subscribe<msg::worker_hello>(serving_names::workers_topic,
                                     [this](const msg::worker_hello& h, const envelope&) { on_hello(h); });
    ctx.on<msg::worker_hello>([this](const msg::worker_hello& h, const envelope&) { on_hello(h); });
    ctx.subscribe<msg::worker_heartbeat>(serving_names::workers_topic,
                                         [this, &ctx](const msg::worker_heartbeat& b, const envelope&) {
                                           {
                                             std::lock_guard lock(mu_);
                                             if (hellos_.count(b.worker)) return;
                                           }
                                           auto& asked = asked_[b.worker];
                                           if (steady::now() - asked < std::chrono::seconds(1)) return;
                                           asked = steady::now();
                                           (void)ctx.send(serving_names::worker(b.worker), msg::hello_query{b.worker});
                                         });
    // Admission unreachable (or gone): the request's sender learns it here. Its process may be
    // restarting, so the request is kept and sent again (chase_unadmitted) until admit_timeout_s;
    // the 503 then names this failure.
    ctx.on_delivery_failure([this](const error& e, const envelope& env) {
      if (env.type_id != type_id_of<msg::generate_request>) return;
      if (auto req = decode<msg::generate_request>(env.payload))
        with_image(req->client_tag, [&](job&, job::image& im) { im.undelivered = e.what; });
    });
    return {};
  }

  result<void> on_activate(context& ctx) override {
    name_ = ctx.name();
    // Tags must not repeat those of an earlier life of this gateway whose requests still run.
    std::random_device rd;
    char nonce[16];
    std::snprintf(nonce, sizeof nonce, "%08x", rd());
    tag_prefix_ = name_ + "/" + nonce + "/";
    ctx.every(std::chrono::milliseconds(100), [this, &ctx] { chase_unadmitted(ctx); });
    wake_ = ctx.waker([this, &ctx] { drain(ctx); });
    server_ = std::make_unique<http_server>();
    const std::size_t threads = threads_;
    server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, which would let a second gateway
    // share a port in use and split the requests between the two without a word.
    server_->set_socket_options([](int sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    // Bounded input: a body over the limit is refused (413) before it is read, and a connection
    // that goes quiet mid-request (slowloris) is closed.
    server_->set_payload_max_length(max_body_);
    const auto rt = std::chrono::duration_cast<std::chrono::microseconds>(read_timeout_);
    server_->set_read_timeout(rt.count() / 1000000, rt.count() % 1000000);
    server_->set_keep_alive_timeout(static_cast<time_t>(std::max<std::int64_t>(1, rt.count() / 1000000)));
    // API keys: checked before any handler; a picture's url is a capability of its own.
    server_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      // A body declared over the limit: up to 8x it, httplib reads and drops it, then answers 413
      // (a plain client sends its whole body before it reads an answer); past that it is
      // answered at once, unread, and the connection closed: no server drains 100 MB for it.
      if (req.get_header_value<std::uint64_t>("Content-Length") > 8 * std::uint64_t{max_body_}) {
        res.set_header("Connection", "close");
        metrics_.reply(413);
        write(res, gateway::error_reply(413, "request_too_large",
                                        "the request body is over max_body_bytes (" + std::to_string(max_body_) + ")"));
        return httplib::Server::HandlerResponse::Handled;
      }
      if (keys_.empty() || req.path == "/v1/health" || (req.method == "GET" && req.path.rfind("/v1/images/", 0) == 0))
        return httplib::Server::HandlerResponse::Unhandled;
      if (authorized(req.get_header_value("Authorization"))) return httplib::Server::HandlerResponse::Unhandled;
      res.set_header("WWW-Authenticate", "Bearer");
      write(res,
            gateway::error_reply(401, "invalid_api_key", "missing or unknown API key (Authorization: Bearer KEY)"));
      return httplib::Server::HandlerResponse::Handled;
    });
    server_->Post("/v1/images/generations", [this](const httplib::Request& req, httplib::Response& res) {
      const auto t0 = steady::now();
      const int images = serve(req, res);
      metrics_.reply(res.status);
      if (res.status == 200 && images > 0)
        metrics_.answered(std::chrono::duration<double>(steady::now() - t0).count(), images);
    });
    server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.status = 200;
      res.set_content(metrics_.text(outstanding_.load(), store_->stats()), "text/plain; version=0.0.4");
    });
    server_->Get(R"(/v1/images/([0-9a-f]{1,64}))", [this](const httplib::Request& req, httplib::Response& res) {
      auto bytes = store_->get(req.matches[1]);
      if (!bytes)
        return write(res, gateway::error_reply(404, "not_found", "no such image (fetched already, or expired)"));
      res.status = 200;
      res.set_content(std::string(bytes->begin(), bytes->end()), "image/png");
    });
    server_->Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      auto [cat, seeded] = catalog();
      write(res, gateway::models_reply(*cat, seeded));
    });
    server_->Get("/v1/health", [this](const httplib::Request&, httplib::Response& res) {
      const auto s = store_->stats();
      const json body = {{"status", "ok"},
                         {"outstanding_images", outstanding_.load()},
                         {"store",
                          {{"images", s.images},
                           {"bytes", s.bytes},
                           {"max_bytes", s.max_bytes},
                           {"stored", s.stored},
                           {"fetched", s.fetched},
                           {"expired", s.expired}}}};
      write(res, {200, body.dump(), 0});
    });
    const int port = port_ == 0 ? server_->bind_to_any_port(host_) : (server_->bind_to_port(host_, port_) ? port_ : -1);
    if (port < 0) return make_error(errc::io, "gateway: cannot listen on " + host_ + ":" + std::to_string(port_));
    bound_port_ = port;
    server_->widen_backlog();
    {
      std::lock_guard lock(mu_);
      accepting_ = true;
    }
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    // The port is told once connections are being accepted, and the file appears whole (a client
    // polling it after a restart never reads half a number).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!server_->is_running() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (!server_->is_running()) return make_error(errc::io, "gateway: the HTTP server did not start accepting");
    if (!port_file_.empty()) {
      const std::string partial = port_file_ + ".partial";
      std::ofstream(partial) << port << "\n";
      if (::rename(partial.c_str(), port_file_.c_str()) != 0)
        return make_error(errc::io, "gateway: cannot write port_file '" + port_file_ + "'");
    }
    ctx.log().info("serving HTTP on http://{}:{} (POST /v1/images/generations, GET /v1/models)", host_, port);
    return {};
  }

  result<void> on_deactivate(context&) override {
    // Answer every waiting server thread first: the server joins its threads when it stops.
    std::deque<std::shared_ptr<job>> queued;
    {
      std::lock_guard lock(mu_);
      accepting_ = false;
      queued.swap(inbox_);
    }
    for (auto& j : queued) stop_job(*j);
    for (auto& [tag, entry] : by_tag_) stop_job(*entry.first);
    by_tag_.clear();
    stop_server();
    return {};
  }

 private:
  static void stop_job(job& j) {
    std::lock_guard lock(j.mu);
    j.finish(gateway::error_reply(503, "unavailable", "the gateway is stopping"));
  }

  static void write(httplib::Response& res, const http_reply& r) {
    res.status = r.status;
    if (r.retry_after_s > 0) res.set_header("Retry-After", std::to_string(r.retry_after_s));
    res.set_content(r.body, "application/json");
  }

  // An answer without pictures.
  static int refuse(httplib::Response& res, const http_reply& r) {
    write(res, r);
    return 0;
  }

  std::pair<std::shared_ptr<const gateway::model_catalog>, bool> catalog() {
    std::lock_guard lock(mu_);
    return {catalog_, seeded_};
  }

  static result<std::vector<std::string>> read_keys(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
      return make_error(errc::not_found, "parameter 'api_keys_file': cannot read '" + path + "'");
    if (st.st_mode & 077)
      return make_error(errc::invalid_argument,
                        "parameter 'api_keys_file': '" + path + "' is readable by other users (chmod 600 it)");
    std::ifstream in(path);
    std::vector<std::string> keys;
    for (std::string line; std::getline(in, line);) {
      while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
      if (!line.empty() && line[0] != '#') keys.push_back(line);
    }
    if (keys.empty())
      return make_error(errc::invalid_argument, "parameter 'api_keys_file': '" + path + "' holds no key");
    return keys;
  }

  // "Bearer KEY" with a listed key; compared in constant time, so timing tells nothing of a key.
  bool authorized(const std::string& header) const {
    constexpr std::string_view scheme = "Bearer ";
    if (header.size() <= scheme.size() || header.compare(0, scheme.size(), scheme) != 0) return false;
    const std::string_view given = std::string_view(header).substr(scheme.size());
    bool ok = false;
    for (const auto& k : keys_) ok |= same_secret(k, given);  // every key, so the time tells not which
    return ok;
  }

  void on_hello(const msg::worker_hello& h) {
    std::lock_guard lock(mu_);
    hellos_[h.worker] = h.models;
    auto cat = std::make_shared<gateway::model_catalog>();
    seeded_ = false;
    for (const auto& [w, models] : hellos_) {
      if (models.empty()) seeded_ = true;
      for (const auto& m : models) cat->emplace(m.name, m);
    }
    catalog_ = std::move(cat);
  }

  // A server thread: parse, queue for the actor, then wait (or stream) for the answer. Returns
  // the pictures answered (0: an error, or a stream, counted as it goes).
  int serve(const httplib::Request& req, httplib::Response& res) {
    auto [cat, seeded] = catalog();
    if (cat->empty() && !seeded) {
      auto r = gateway::error_reply(503, "unavailable", "no worker has joined yet: nothing is served");
      r.retry_after_s = 1;
      return refuse(res, r);
    }
    auto parsed = gateway::parse_generation(req.body, *cat);
    if (auto* bad = std::get_if<http_reply>(&parsed)) return refuse(res, *bad);
    auto j = std::make_shared<job>();
    j->gen = std::move(std::get<gateway::generation>(parsed));
    j->url_base =
        "http://" + (req.has_header("Host") ? req.get_header_value("Host") : host_ + ":" + std::to_string(bound_port_));
    const auto n = static_cast<std::int64_t>(j->gen.requests.size());
    if (j->gen.response_format == "url" && store_->full()) {
      auto r = gateway::error_reply(429, "overloaded",
                                    "the picture store is full: fetch the pictures waiting there "
                                    "or wait for them to expire");
      r.retry_after_s = 1;
      return refuse(res, r);
    }
    // Take n places or none (compare-and-swap: concurrent requests never overshoot the limit).
    std::int64_t in_flight = outstanding_.load();
    do {
      if (in_flight + n > max_outstanding_) {
        auto r =
            gateway::error_reply(429, "overloaded",
                                 "the gateway has " + std::to_string(in_flight) +
                                     " images in flight (max_outstanding " + std::to_string(max_outstanding_) + ")");
        r.retry_after_s = 1;
        return refuse(res, r);
      }
    } while (!outstanding_.compare_exchange_weak(in_flight, in_flight + n));
    struct release {  // the images leave the count when the last holder (this thread or a stream) ends
      release(std::atomic<std::int64_t>& c, std::int64_t k) : count(c), n(k) {}
      ~release() { count -= n; }
      std::atomic<std::int64_t>& count;
      std::int64_t n;
    };
    auto held = std::make_shared<release>(outstanding_, n);
    {
      std::lock_guard lock(mu_);
      if (!accepting_) return refuse(res, gateway::error_reply(503, "unavailable", "the gateway is stopping"));
      inbox_.push_back(j);
    }
    wake_();
    const auto deadline = steady::now() + std::chrono::duration_cast<steady::duration>(timeout_);
    if (j->gen.stream) {
      stream(res, j, deadline, held);
      return 0;
    }

    // Waiting: every 200 ms, whether the client is still there.
    const int fd = gateway::find_client_socket(req.local_port, req.remote_addr, req.remote_port);
    std::unique_lock lock(j->mu);
    while (!j->finished) {
      j->cv.wait_for(lock, std::chrono::milliseconds(200));
      if (j->finished) break;
      if (gateway::peer_closed(fd)) {
        lock.unlock();
        abandon(j, "the client disconnected");
        return 0;
      }
      if (steady::now() > deadline) {
        lock.unlock();
        abandon(j, "no answer within the gateway's timeout_s");
        return refuse(res, gateway::error_reply(504, "timeout", "no answer within the gateway's timeout_s: cancelled"));
      }
    }
    write(res, j->reply);
    return j->reply.status == 200 ? static_cast<int>(n) : 0;
  }

  // "stream": an event per finished chunk, then the result (or the error), as Server-Sent Events.
  void stream(httplib::Response& res, std::shared_ptr<job> j, steady::time_point deadline, std::shared_ptr<void> held) {
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, j, deadline, held](std::size_t, httplib::DataSink& sink) {
          std::unique_lock lock(j->mu);
          j->cv.wait_for(lock, std::chrono::milliseconds(500), [&] { return j->finished || !j->events.empty(); });
          std::deque<json> events;
          events.swap(j->events);
          const bool finished = j->finished;
          const http_reply reply = j->reply;
          json last = j->body;
          lock.unlock();
          std::string out;
          for (const auto& e : events) out += gateway::sse_event(e);
          if (finished) {
            if (reply.status == 200) {
              last["type"] = "image_generation.completed";
            } else {
              last = json::parse(reply.body, nullptr, false);
              last["type"] = "error";
              last["status"] = reply.status;
            }
            out += gateway::sse_event(last);
          } else if (steady::now() > deadline) {
            abandon(j, "no answer within the gateway's timeout_s");
            out += gateway::sse_event({{"type", "error"},
                                       {"status", 504},
                                       {"error",
                                        {{"message", "no answer within the gateway's timeout_s: cancelled"},
                                         {"type", "server_error"},
                                         {"param", nullptr},
                                         {"code", "timeout"}}}});
            const bool ok = sink.write(out.data(), out.size());
            sink.done();
            return ok;
          } else if (out.empty()) {
            out = ": keep-alive\n\n";  // a write to a client that left fails: that is how it is noticed
          }
          if (!sink.write(out.data(), out.size())) {
            abandon(j, "the client disconnected");
            return false;
          }
          if (finished) sink.done();
          return true;
        },
        [this, j](bool success) {
          if (!success) abandon(j, "the client disconnected");
        });
  }

  // The client gave up: the actor cancels what is still running.
  void abandon(const std::shared_ptr<job>& j, const std::string& why) {
    {
      std::lock_guard lock(j->mu);
      if (j->finished || j->abandoned) return;
      j->abandoned = true;
      j->why_abandoned = why;
      metrics_.cancelled(why.find("timeout") != std::string::npos ? "timeout" : "disconnect");
      j->finish(gateway::error_reply(499, "cancelled", why));
    }
    {
      std::lock_guard lock(mu_);
      abandoned_.push_back(j);
    }
    wake_();
  }

  // The actor thread: send what the server threads queued, cancel what they gave up.
  void drain(context& ctx) {
    std::deque<std::shared_ptr<job>> jobs, gone;
    {
      std::lock_guard lock(mu_);
      jobs.swap(inbox_);
      gone.swap(abandoned_);
    }
    for (auto& j : jobs) {
      std::lock_guard lock(j->mu);
      if (j->abandoned) continue;
      for (auto& req : j->gen.requests) {
        req.client_tag = tag_prefix_ + std::to_string(++sent_);
        if (!j->gen.response_format.empty()) req.reply_to = name_;
        j->images.push_back(job::image{req.client_tag});
        j->images.back().sent = j->images.back().resent = steady::now();
      }
      for (std::size_t i = 0; i < j->gen.requests.size(); ++i) {
        const auto& req = j->gen.requests[i];
        by_tag_[req.client_tag] = {j, i};
        if (auto r = ctx.send(admission_, req); !r) j->finish(gateway::error_reply(503, "unavailable", r.err().what));
      }
      if (j->finished) cancel(ctx, *j, "the request failed");
    }
    for (auto& j : gone) {
      std::lock_guard lock(j->mu);
      cancel(ctx, *j, j->why_abandoned);
    }
  }

  // Cancels the job's images still in the graph and forgets its tags (j.mu held).
  void cancel(context& ctx, job& j, const std::string& why) {
    for (auto& im : j.images) {
      if (by_tag_.erase(im.tag) == 0 || im.done) continue;
      (void)ctx.send(scheduler_, msg::cancel{im.request_id, "gateway: " + why.substr(0, 200), im.tag});
    }
  }

  // A request admission has not answered: its message may have died with admission's process
  // (ZeroMQ drops what sat in a dead connection). Sent again every admit_timeout_s / 8 as a
  // `resend` (admission admits a tag at most once), so a restarted admission gets it; past
  // admit_timeout_s it fails with a 503 the client sees, instead of waiting out timeout_s, and
  // the finish cancels it by its tag in case it was admitted after all.
  void chase_unadmitted(context& ctx) {
    const auto now = steady::now();
    const auto every = std::chrono::duration_cast<steady::duration>(admit_timeout_ / 8);
    std::vector<std::string> late;
    for (const auto& [tag, at] : by_tag_) {
      std::lock_guard lock(at.first->mu);
      auto& im = at.first->images[at.second];
      if (im.admitted || im.done) continue;
      if (now - im.sent > admit_timeout_) {
        late.push_back(tag);
      } else if (now - im.resent > every) {
        im.resent = now;
        auto req = at.first->gen.requests[at.second];
        req.resend = true;
        (void)ctx.send(admission_, req);  // a failure comes back as a delivery failure: 503
      }
    }
    for (const auto& tag : late)
      with_image(tag, [](job& j, job::image& im) {
        j.finish(gateway::error_reply(
            503, "unavailable",
            im.undelivered.empty() ? "admission did not answer within admit_timeout_s (restarting?): retry"
                                   : "admission did not get the request within admit_timeout_s: " + im.undelivered));
      });
  }

  // Runs fn on the job image of `tag` (the actor thread), then completes the job if it can.
  template <class Fn>
  void with_image(const std::string& tag, Fn&& fn) {
    auto it = by_tag_.find(tag);
    if (it == by_tag_.end()) return;  // another client's, or one given up on
    auto j = it->second.first;
    std::lock_guard lock(j->mu);
    fn(*j, j->images[it->second.second]);
    if (!j->finished) complete(*j);
    if (j->finished) {
      if (!j->abandoned) cancel(*ctx_, *j, "another image of the request failed");
      for (auto& im : j->images) by_tag_.erase(im.tag);
    }
  }

  // Every image done (and drawn): the reply (j.mu held).
  void complete(job& j) {
    for (const auto& im : j.images)
      if (!im.done || (!j.gen.response_format.empty() && !im.picture)) return;
    if (j.gen.response_format.empty()) return j.finish(gateway::reply_for(j.images.front().legacy));
    std::vector<gateway::picture> pictures;
    for (std::size_t i = 0; i < j.images.size(); ++i) {
      auto& im = j.images[i];
      gateway::picture p;
      if (j.gen.response_format == "url")
        p.url = j.url_base + "/v1/images/" + store_->put(std::move(im.picture->data));
      else
        p.b64_json = gateway::base64(im.picture->data);
      p.seed = j.gen.requests[i].seed;
      p.class_name = j.gen.classes[i];
      p.latency_ms = im.latency_ms;
      pictures.push_back(std::move(p));
    }
    const auto created =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    json body = gateway::images_body(created, pictures);
    std::string text = body.dump();
    j.finish({200, std::move(text), 0}, std::move(body));
  }

  void stop_server() {
    {
      std::lock_guard lock(mu_);
      accepting_ = false;
    }
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
  }

  context* ctx_ = nullptr;  // outlives the handlers that use it
  std::string host_, port_file_, admission_, scheduler_, name_;
  int port_ = 0, bound_port_ = 0;
  std::chrono::duration<double> timeout_{600.0};
  std::chrono::duration<double> admit_timeout_{5.0};
  std::string tag_prefix_;  // "<name>/<random>/": this life's client tags
  std::size_t threads_ = 64;
  std::function<void()> wake_;
  std::unique_ptr<http_server> server_;
  std::size_t max_body_ = 1 << 20;
  std::chrono::duration<double> read_timeout_{10.0};
  std::int64_t max_outstanding_ = 64;
  std::chrono::milliseconds grace_{10000};
  std::unique_ptr<gateway::result_store> store_;
  gateway::gateway_metrics metrics_;
  std::vector<std::string> keys_;             // API keys (empty: none needed)
  std::atomic<std::int64_t> outstanding_{0};  // images of the jobs being served
  std::thread thread_;
  std::mutex mu_;
  bool accepting_ = false;                                         // mu_
  std::deque<std::shared_ptr<job>> inbox_;                         // mu_
  std::deque<std::shared_ptr<job>> abandoned_;                     // mu_
  std::map<std::int32_t, std::vector<msg::served_model>> hellos_;  // mu_: by worker
  std::shared_ptr<const gateway::model_catalog> catalog_ = std::make_shared<gateway::model_catalog>();  // mu_
  bool seeded_ = false;                                                                                 // mu_
  std::map<std::string, std::pair<std::shared_ptr<job>, std::size_t>> by_tag_;                          // actor thread
  std::map<std::int32_t, steady::time_point> asked_;  // actor thread: hello_query sent
  std::uint64_t sent_ = 0;                            // actor thread
};

}  // namespace
}  // namespace gfdit

GFDIT_REGISTER_ACTOR(gfdit::gateway_actor, "gfdit.gateway");
