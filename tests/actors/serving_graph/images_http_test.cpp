// Pictures over HTTP, end to end: `gfdit launch launch/graphs/serving-http.yaml` (admission,
// scheduler, membership, two CPU worker processes serving the fashion-dit checkpoint, the
// gateway), driven with real HTTP. A picture's PNG bytes equal those this test draws itself
// as `gfdit generate` does, under static and elastic policies and with a worker killed
// mid-request; a client that leaves is cancelled and its workers go to other work; hostile
// requests get clear 4xx answers and the graph keeps serving.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "kernels/dit/generate.hpp"
#include "tests/actors/serving_graph/launched_graph.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/free_tcp_port.hpp"

namespace gfdit {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

// The reference: the picture `gfdit generate --model fashion-dit` draws (degree 1, one thread).
std::string reference_png(int label, std::uint64_t seed, int steps) {
  static const auto card = dit::read_model_card(fs::path(GFDIT_SOURCE_DIR) / "models" / "fashion-dit");
  static const auto model = card ? dit::load_model(*card) : result<dit::model>(card.err());
  EXPECT_TRUE(model) << (model ? "" : model.err().what);
  if (!model) return {};
  dit::generate_options o;
  o.class_label = label;
  o.seed = seed;
  o.steps = steps;
  auto latent = dit::generate_latent(*model, *card, o);
  EXPECT_TRUE(latent);
  auto img = dit::decode_pixels(*card, *latent);
  auto png = dit::encode_png(*img);
  return {png->begin(), png->end()};
}

std::string unbase64(const std::string& in) {
  std::string out;
  int bits = 0, acc = 0;
  for (char c : in) {
    const char* digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char* at = c ? std::strchr(digits, c) : nullptr;
    if (!at) continue;  // '=' padding
    acc = (acc << 6) | static_cast<int>(at - digits);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

// The graph as `gfdit launch` runs it, with the port the gateway bound.
struct http_graph {
  testing::launched_graph graph{"images"};
  const fs::path& dir = graph.dir();
  int port = 0;

  // key: the API key it needs (graphs started with api_keys_file).
  explicit http_graph(const std::string& policy, std::vector<std::string> extra = {}, const std::string& key = {}) {
    fs::create_directories(dir / "world");
    std::vector<std::string> args = {"listen:=127.0.0.1:0", "port_file:=" + (dir / "port").string(),
                                     "world_dir:=" + (dir / "world").string(), "policy:=" + policy};
    args.insert(args.end(), extra.begin(), extra.end());
    graph.start(std::string(GFDIT_SOURCE_DIR) + "/launch/graphs/serving-http.yaml", args);
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (port == 0) std::ifstream(dir / "port") >> port;
      if (port > 0) {
        httplib::Client c("127.0.0.1", port);
        httplib::Headers auth;
        if (!key.empty()) auth.emplace("Authorization", "Bearer " + key);
        auto r = c.Get("/v1/models", auth);
        if (r && r->status == 200 && json::parse(r->body)["data"].size() == 1) return;
      }
      std::this_thread::sleep_for(100ms);
    }
    ADD_FAILURE() << "the graph did not come up: " << log();
  }
  std::string log() const { return graph.log(); }
  std::pair<int, json> post(const json& body, int timeout_s = 120) const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(timeout_s, 0);
    auto r = c.Post("/v1/images/generations", body.dump(), "application/json");
    if (!r) return {0, json()};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  pid_t worker_pid(int index) const { return graph.node_pid("worker", index); }
};

constexpr int coat = 4, bag = 8;

TEST(images_http, b64_pictures_equal_gfdit_generate_under_static_and_elastic_policies) {
  for (const std::string policy : {"static:2", "edf-best-fit"}) {
    http_graph g(policy);
    auto [status, body] = g.post({{"model", "fashion-dit"},
                                  {"prompt", "a coat"},
                                  {"n", 2},
                                  {"seed", 11},
                                  {"num_inference_steps", 10},
                                  {"response_format", "b64_json"}});
    ASSERT_EQ(status, 200) << policy << ": " << body.dump() << g.log();
    ASSERT_EQ(body["data"].size(), 2u);
    for (int i = 0; i < 2; ++i) {
      EXPECT_EQ(body["data"][i]["seed"], 11 + i);
      EXPECT_EQ(body["data"][i]["class"], "coat");
      EXPECT_TRUE(unbase64(body["data"][i]["b64_json"]) == reference_png(coat, 11 + i, 10)) << policy << " image " << i;
    }
    // `url`: the same bytes, fetched from the gateway's store.
    auto [us, ub] = g.post({{"model", "fashion-dit"}, {"prompt", "bag"}, {"seed", 3}, {"num_inference_steps", 6}});
    ASSERT_EQ(us, 200) << ub.dump();
    const std::string url = ub["data"][0]["url"];
    httplib::Client c("127.0.0.1", g.port);
    auto png = c.Get(url.substr(url.find("/v1/")));
    ASSERT_TRUE(png);
    EXPECT_EQ(png->status, 200);
    EXPECT_EQ(png->get_header_value("Content-Type"), "image/png");
    EXPECT_TRUE(png->body == reference_png(bag, 3, 6)) << policy;
  }
}

TEST(images_http, a_worker_killed_mid_request_costs_time_but_not_a_bit) {
  http_graph g("edf-best-fit", {"collective_timeout_ms:=3000", "heartbeat_timeout_ms:=2000", "chunk_steps:=2"});
  std::pair<int, json> answer;
  std::thread client([&] {
    answer = g.post({{"model", "fashion-dit"},
                     {"prompt", "coat"},
                     {"seed", 5},
                     {"num_inference_steps", 60},
                     {"response_format", "b64_json"}});
  });
  std::this_thread::sleep_for(1500ms);  // some chunks done: the request resumes from a checkpoint
  const pid_t victim = g.worker_pid(1);
  ASSERT_GT(victim, 0) << g.log();
  ::kill(victim, SIGKILL);
  client.join();
  ASSERT_EQ(answer.first, 200) << answer.second.dump() << g.log();
  EXPECT_TRUE(unbase64(answer.second["data"][0]["b64_json"]) == reference_png(coat, 5, 60));
}

// The control process (admission, scheduler, membership) dies mid-request: it restarts, the
// scheduler runs the request again from admission's journal on the workers it finds beating,
// and the client gets the same picture.
TEST(images_http, a_control_process_killed_mid_request_costs_time_but_not_a_bit) {
  http_graph g("edf-best-fit", {"chunk_steps:=2"});
  std::pair<int, json> answer;
  std::thread client([&] {
    answer = g.post({{"model", "fashion-dit"},
                     {"prompt", "coat"},
                     {"seed", 9},
                     {"num_inference_steps", 40},
                     {"response_format", "b64_json"}});
  });
  std::this_thread::sleep_for(1000ms);  // admitted, some chunks done
  const pid_t victim = g.graph.node_pid("control");
  ASSERT_GT(victim, 0) << g.log();
  ::kill(victim, SIGKILL);
  client.join();
  ASSERT_EQ(answer.first, 200) << answer.second.dump() << g.log();
  EXPECT_TRUE(unbase64(answer.second["data"][0]["b64_json"]) == reference_png(coat, 9, 40));
  // Once, by the restarted scheduler: a first life has nothing to run again.
  const std::string log = g.log();
  EXPECT_NE(log.find("1 open request(s) run again"), std::string::npos) << log;
  EXPECT_EQ(log.find("open request(s) run again"), log.rfind("open request(s) run again")) << log;
}

TEST(images_http, a_client_that_leaves_is_cancelled_and_its_workers_serve_the_next_request) {
  http_graph g("edf-best-fit");
  {
    // 5,000 steps would take minutes; this client gives up after one second.
    httplib::Client quitter("127.0.0.1", g.port);
    quitter.set_read_timeout(1, 0);
    auto r = quitter.Post(
        "/v1/images/generations",
        json{
            {"model", "fashion-dit"}, {"prompt", "bag"}, {"num_inference_steps", 1000}, {"response_format", "b64_json"}}
            .dump(),
        "application/json");
    EXPECT_FALSE(r);
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto [status, body] = g.post(
      {{"model", "fashion-dit"}, {"prompt", "bag"}, {"num_inference_steps", 4}, {"response_format", "b64_json"}});
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(status, 200) << body.dump();
  // The abandoned request held both workers; they are free within a chunk (5 steps) of it.
  EXPECT_LT(s, 5.0) << "the next request waited " << s << " s";
  EXPECT_LT(body["data"][0]["latency_ms"].get<double>(), 3000.0) << body.dump();
  // And the gateway holds nothing for it.
  httplib::Client c("127.0.0.1", g.port);
  auto h = c.Get("/v1/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(json::parse(h->body)["outstanding_images"], 0) << h->body;
}

TEST(images_http, hostile_requests_get_clear_4xx_answers_and_the_graph_keeps_serving) {
  http_graph g("edf-best-fit", {"read_timeout_s:=1.0"});
  httplib::Client c("127.0.0.1", g.port);
  c.set_read_timeout(60, 0);
  auto expect = [&](const std::string& body, int status, const std::string& param) {
    auto r = c.Post("/v1/images/generations", body, "application/json");
    ASSERT_TRUE(r) << body;
    EXPECT_EQ(r->status, status) << body << " -> " << r->body;
    auto j = json::parse(r->body, nullptr, false);
    ASSERT_TRUE(j.contains("error")) << r->body;
    EXPECT_EQ(j["error"]["type"], "invalid_request_error");
    EXPECT_FALSE(j["error"]["message"].get<std::string>().empty());
    if (!param.empty()) {
      EXPECT_EQ(j["error"]["param"], param) << r->body;
    }
  };
  expect("{\"model\": \"fashion-dit\", \"prompt\": ", 400, "");
  expect(R"({"model":"fashion-dit","prompt":"bag","n":"two"})", 400, "n");
  expect(R"({"model":"fashion-dit","prompt":7})", 400, "prompt");
  expect(R"({"model":"fashion-dit","prompt":"bag","n":1000})", 400, "n");
  expect(R"({"model":"fashion-dit","prompt":"bag","size":"100000x100000"})", 400, "size");
  expect(R"({"model":"fashion-dit","prompt":"bag","num_inference_steps":1000000000})", 400, "steps");
  expect(R"({"model":"fashion-dit","prompt":"bag","guidance_scale":1e300})", 400, "guidance");
  expect(R"({"model":"fashion-dit","prompt":"bag","response_format":"jpeg"})", 400, "response_format");
  expect(R"({"model":"fashion-dit","prompt":"a spaceship"})", 400, "prompt");
  expect(R"({"model":"no-such-model","prompt":"bag","size":"28x28"})", 400, "model");
  const auto connected = [&] {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(g.port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
  };
  {
    // A body declared at 100 MB (past 8x max_body_bytes) is answered at once, unread: the client
    // need not send it (one that insists has its connection closed, not 100 MB drained).
    const int fd = connected();
    const std::string head =
        "POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 104857600\r\n\r\n";
    ASSERT_EQ(::send(fd, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
    const auto t0 = std::chrono::steady_clock::now();
    std::string answer;  // up to the close that follows it (after the keep-alive timeout)
    double waited = -1;  // until the answer began
    char buf[1024];
    for (ssize_t got; (got = ::recv(fd, buf, sizeof buf, 0)) > 0;) {
      if (waited < 0) waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      answer.append(buf, static_cast<std::size_t>(got));
    }
    ::close(fd);
    EXPECT_EQ(answer.rfind("HTTP/1.1 413 ", 0), 0u) << answer;
    EXPECT_NE(answer.find("\"code\":\"request_too_large\""), std::string::npos) << answer;
    EXPECT_LT(waited, 0.9) << "413 after " << waited << " s";
  }

  // Slowloris: half a request, then nothing. The gateway drops it after read_timeout_s.
  const int fd = connected();
  const std::string half = "POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"mo";
  ASSERT_EQ(::send(fd, half.data(), half.size(), 0), static_cast<ssize_t>(half.size()));
  char buf[256];
  const auto t0 = std::chrono::steady_clock::now();
  const ssize_t got = ::recv(fd, buf, sizeof buf, 0);  // the close (0), or a 4xx then the close
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(waited, 4.0) << "a silent client held its connection " << waited << " s";
  EXPECT_GE(got, 0);
  ::close(fd);

  auto [status, body] = [&] {
    auto r = c.Post("/v1/images/generations", R"({"model":"fashion-dit","prompt":"sneaker","num_inference_steps":4,
                                                  "response_format":"b64_json"})",
                    "application/json");
    return std::pair{r ? r->status : 0, r ? r->body : std::string()};
  }();
  EXPECT_EQ(status, 200) << body;
}

TEST(images_http, api_keys_guard_the_api_and_metrics_count_what_happened) {
  const fs::path keys = fs::temp_directory_path() / ("gfdit-keys-" + std::to_string(::getpid()));
  std::ofstream(keys) << "# one key a line\nsecret-key-1\n";
  fs::permissions(keys, fs::perms::owner_read | fs::perms::owner_write);
  const int metrics_port = testing::free_tcp_port();
  http_graph g("edf-best-fit", {"api_keys_file:=" + keys.string(), "metrics_port:=" + std::to_string(metrics_port)},
               "secret-key-1");
  httplib::Client c("127.0.0.1", g.port);
  c.set_read_timeout(60, 0);
  const std::string body =
      R"({"model":"fashion-dit","prompt":"trouser","num_inference_steps":4,"response_format":"url"})";
  auto none = c.Post("/v1/images/generations", body, "application/json");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(json::parse(none->body)["error"]["code"], "invalid_api_key");
  auto wrong = c.Post("/v1/images/generations", {{"Authorization", "Bearer secret-key-2"}}, body, "application/json");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  EXPECT_EQ(c.Get("/v1/models")->status, 401);
  EXPECT_EQ(c.Get("/v1/health")->status, 200);  // liveness needs no key
  const httplib::Headers auth = {{"Authorization", "Bearer secret-key-1"}};
  auto ok = c.Post("/v1/images/generations", auth, body, "application/json");
  ASSERT_TRUE(ok);
  ASSERT_EQ(ok->status, 200) << ok->body;
  // The picture's url is a capability of its own: fetched without the key.
  const std::string url = json::parse(ok->body)["data"][0]["url"];
  EXPECT_EQ(c.Get(url.substr(url.find("/v1/")))->status, 200);
  auto m = c.Get("/metrics", auth);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  EXPECT_NE(m->body.find("gfdit_gateway_replies_total{status=\"200\"} 1\n"), std::string::npos) << m->body;
  EXPECT_NE(m->body.find("gfdit_gateway_images_total 1\n"), std::string::npos) << m->body;
  EXPECT_NE(m->body.find("gfdit_gateway_request_seconds_count 1\n"), std::string::npos) << m->body;
  EXPECT_NE(m->body.find("gfdit_gateway_store_events_total{event=\"fetched\"} 1\n"), std::string::npos) << m->body;
  fs::remove(keys);

  // The control process's metrics: the admission and scheduler cores' own, refreshed every second.
  httplib::Client control("127.0.0.1", metrics_port);
  std::string text;
  // The request's latency in admission's histogram (model seconds; this graph runs at speedup 1).
  const std::string done_count = "gfdit_admission_request_seconds_count{actor=\"admission\",status=\"done\"} 1\n";
  for (int i = 0; i < 100; ++i) {  // each actor's snapshot is its own, taken on its own timer
    auto r = control.Get("/metrics");
    if (r) text = r->body;
    if (text.find("gfdit_admission_requests_total{actor=\"admission\",outcome=\"admitted\"} 1\n") !=
            std::string::npos &&
        text.find("gfdit_scheduler_workers{actor=\"scheduler\",state=\"alive\"} 2\n") != std::string::npos &&
        text.find(done_count) != std::string::npos)
      break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_NE(text.find("gfdit_admission_requests_total{actor=\"admission\",outcome=\"admitted\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("gfdit_scheduler_workers{actor=\"scheduler\",state=\"alive\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find(done_count), std::string::npos) << text;
  EXPECT_EQ(text.find("gfdit_scheduler_tasks_dispatched_total{actor=\"scheduler\"} 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("gfdit_actor_received_total{node=\"control\",actor=\"scheduler\"}"), std::string::npos) << text;

  // A key file other users can read is refused before anything starts.
  const fs::path open_keys = g.dir / "keys-0644";
  std::ofstream(open_keys) << "k\n";
  fs::permissions(open_keys,
                  fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read);
  testing::child_process check({GFDIT_EXE, "check", std::string(GFDIT_SOURCE_DIR) + "/launch/graphs/serving-http.yaml",
                                "world_dir:=" + (g.dir / "world").string(), "api_keys_file:=" + open_keys.string()},
                               (g.dir / "check.log").string());
  EXPECT_NE(check.wait(), 0);
  std::ifstream in(g.dir / "check.log");
  const std::string said(std::istreambuf_iterator<char>(in), {});
  EXPECT_NE(said.find("readable by other users (chmod 600 it)"), std::string::npos) << said;
}

}  // namespace
}  // namespace gfdit
