// The HTTP gateway: its contract as pure functions, then live in front of the serving graph
// (control and two sim workers as processes, the gateway in this one) over real HTTP.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "actors/gateway/gateway_metrics.hpp"
#include "actors/gateway/http_api.hpp"
#include "actors/gateway/result_store.hpp"
#include "actors/runtime/node.hpp"
#include "actors/runtime/registry.hpp"
#include "tests/actors/serving_graph/live_graph.hpp"

namespace gfdit {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// fashion-dit as a worker's hello describes it.
gateway::model_catalog fashion() {
  msg::served_model m;
  m.name = "fashion-dit";
  m.width = m.height = 28;
  m.classes = {"t-shirt/top", "trouser", "pullover", "dress", "coat",
               "sandal",      "shirt",   "sneaker",  "bag",   "ankle boot"};
  m.default_steps = 25;
  m.default_guidance = 4.0;
  return {{m.name, m}};
}

gateway::generation parsed_all(const std::string& body, const gateway::model_catalog& served = {}) {
  auto r = gateway::parse_generation(body, served);
  EXPECT_TRUE(std::holds_alternative<gateway::generation>(r)) << std::get<gateway::http_reply>(r).body;
  return std::holds_alternative<gateway::generation>(r) ? std::get<gateway::generation>(r) : gateway::generation{};
}

msg::generate_request parsed(const std::string& body) {
  auto g = parsed_all(body);
  return g.requests.empty() ? msg::generate_request{} : g.requests.front();
}

// The 400 reply for a bad body, and the parameter it names (OpenAI's error object).
std::pair<int, std::string> refused(const std::string& body, const gateway::model_catalog& served = {}) {
  auto r = gateway::parse_generation(body, served);
  if (!std::holds_alternative<gateway::http_reply>(r)) return {200, ""};
  const auto& rep = std::get<gateway::http_reply>(r);
  const auto e = json::parse(rep.body)["error"];
  EXPECT_EQ(e["type"], "invalid_request_error") << rep.body;
  EXPECT_TRUE(e.contains("message") && e.contains("code")) << rep.body;
  return {rep.status, e["param"].is_string() ? e["param"].get<std::string>() : ""};
}

TEST(gateway_api, an_openai_style_body_becomes_a_generate_request) {
  auto r = parsed(R"({"model":"image-dit-20b-standin","size":"1024x768","steps":20,"guidance":4.5,"seed":7,
                      "slo_multiple":2.0,"priority":3,"class":"big","user":"u1"})");
  EXPECT_EQ(r.model, "image-dit-20b-standin");
  EXPECT_EQ(r.width, 1024);
  EXPECT_EQ(r.height, 768);
  EXPECT_EQ(r.steps, 20);
  EXPECT_EQ(r.guidance, 4.5);
  EXPECT_EQ(r.seed, 7u);
  EXPECT_EQ(r.slo_multiple, 2.0);
  EXPECT_EQ(r.priority, 3);
  EXPECT_EQ(r.class_name, "big");
  auto d = parsed(R"({"model":"m","width":512,"height":256})");
  EXPECT_EQ(d.width, 512);
  EXPECT_EQ(d.frames, 1);
  EXPECT_EQ(d.steps, 30);  // the default
}

TEST(gateway_api, a_bad_body_is_a_400_that_names_the_field) {
  EXPECT_EQ(refused("{not json"), (std::pair<int, std::string>{400, ""}));
  EXPECT_EQ(refused("[1,2]"), (std::pair<int, std::string>{400, ""}));
  EXPECT_EQ(refused(R"({"size":"512x512"})"), (std::pair<int, std::string>{400, "model"}));
  EXPECT_EQ(refused(R"({"model":"m"})"), (std::pair<int, std::string>{400, "size"}));
  EXPECT_EQ(refused(R"({"model":"m","size":"512*512"})"), (std::pair<int, std::string>{400, "size"}));
  EXPECT_EQ(refused(R"({"model":"m","size":"512x512","width":512})"), (std::pair<int, std::string>{400, "size"}));
  EXPECT_EQ(refused(R"({"model":"m","size":"512x512","steps":"20"})"), (std::pair<int, std::string>{400, "steps"}));
  EXPECT_EQ(refused(R"({"model":"m","size":"512x512","steps":1e12})"), (std::pair<int, std::string>{400, "steps"}));
  EXPECT_EQ(refused(R"({"model":"m","size":"512x512","steps":9999999999})"),
            (std::pair<int, std::string>{400, "steps"}));
  EXPECT_EQ(refused(R"({"model":"m","size":"512x512","seed":-1})"), (std::pair<int, std::string>{400, "seed"}));
  EXPECT_EQ(refused(R"({"model":"m","size":"512x512","n":2})"), (std::pair<int, std::string>{400, "n"}));
  // A seeded model draws no picture: there is nothing to format or stream.
  EXPECT_EQ(refused(R"({"model":"m","size":"512x512","response_format":"b64_json"})"),
            (std::pair<int, std::string>{400, "response_format"}));
  EXPECT_EQ(refused(R"({"model":"m","size":"512x512","stream":true})"), (std::pair<int, std::string>{400, "stream"}));
  EXPECT_EQ(refused(R"({"model":"m","size":"512x512","stpes":20})"), (std::pair<int, std::string>{400, "stpes"}));
}

// Hostile bodies (issue 27's findings): 70,000 nested '[' crashed the gateway (the parsed tree's
// destructor overflowed the stack), and a 50 MB value came back whole inside the error.
TEST(gateway_api, hostile_bodies_get_short_clear_errors) {
  EXPECT_EQ(gateway::nesting_depth(R"({"a":[1,{"b":"[[[["}]})"), 3u);  // brackets in strings do not count
  EXPECT_EQ(gateway::nesting_depth(R"({"a":"\"[[["})"), 1u);           // nor after an escaped quote
  const std::string deep = std::string(70000, '[') + std::string(70000, ']');
  auto r = gateway::parse_generation(deep);
  ASSERT_TRUE(std::holds_alternative<gateway::http_reply>(r));
  const auto& rep = std::get<gateway::http_reply>(r);
  EXPECT_EQ(rep.status, 400);
  EXPECT_NE(rep.body.find("nests 70000 levels deep"), std::string::npos) << rep.body;
  EXPECT_EQ(refused(std::string(40, '[') + std::string(40, ']')).first, 400);

  std::string huge = R"({"model":"m","size":"512x512","steps":[)";
  for (int i = 0; i < 200000; ++i) huge += "1,";
  huge += "1]}";
  auto big = gateway::parse_generation(huge);
  ASSERT_TRUE(std::holds_alternative<gateway::http_reply>(big));
  const auto& b = std::get<gateway::http_reply>(big);
  EXPECT_EQ(b.status, 400);
  EXPECT_LT(b.body.size(), 400u) << "the error quotes a prefix, not the value";
  EXPECT_NE(b.body.find("bytes)"), std::string::npos) << b.body;
  const std::string long_key = R"({")" + std::string(100000, 'k') + R"(":1})";
  auto k = gateway::parse_generation(long_key);
  ASSERT_TRUE(std::holds_alternative<gateway::http_reply>(k));
  EXPECT_LT(std::get<gateway::http_reply>(k).body.size(), 600u);
}

// Found by fuzz/fuzz_http_request: an error quoting a long value cut it inside a UTF-8
// character, and building the reply's JSON threw instead of answering 400.
TEST(gateway_api, errors_quote_long_unicode_values_without_cutting_a_character) {
  std::string accents;
  for (int i = 0; i < 40; ++i) accents += "\xc3\xa9";  // é
  for (const auto& body : {R"({"a)" + accents + R"(":1})", R"({"model":"m","size":"x)" + accents + R"("})",
                           R"({"model":"m","size":"1x1","steps":"xy)" + accents + R"("})"}) {
    std::variant<gateway::generation, gateway::http_reply> r;
    ASSERT_NO_THROW(r = gateway::parse_generation(body)) << body;
    ASSERT_TRUE(std::holds_alternative<gateway::http_reply>(r));
    const auto& rep = std::get<gateway::http_reply>(r);
    EXPECT_EQ(rep.status, 400);
    EXPECT_TRUE(nlohmann::json::accept(rep.body)) << rep.body;
    EXPECT_NE(rep.body.find("... ("), std::string::npos) << rep.body;
  }
}

TEST(gateway_api, a_served_checkpoint_takes_a_prompt_n_and_its_own_defaults) {
  auto g = parsed_all(R"({"model":"fashion-dit","prompt":"A photo of an Ankle Boot","n":3,"seed":7,
                          "response_format":"b64_json","stream":true})",
                      fashion());
  ASSERT_EQ(g.requests.size(), 3u);
  EXPECT_EQ(g.response_format, "b64_json");
  EXPECT_TRUE(g.stream);
  for (std::uint64_t i = 0; i < 3; ++i) {
    const auto& r = g.requests[i];
    EXPECT_EQ(r.label, 9);
    EXPECT_EQ(r.seed, 7 + i);  // as `gfdit generate --n 3 --seed 7`
    EXPECT_EQ(r.width, 28);
    EXPECT_EQ(r.height, 28);
    EXPECT_EQ(r.steps, 25);
    EXPECT_EQ(r.guidance, 4.0);
    EXPECT_TRUE(r.progress);
    EXPECT_EQ(g.classes[i], "ankle boot");
  }
  auto d =
      parsed_all(R"({"model":"fashion-dit","prompt":"bag","num_inference_steps":8,"guidance_scale":2.5})", fashion());
  EXPECT_EQ(d.response_format, "url");  // OpenAI's default
  EXPECT_EQ(d.requests.at(0).steps, 8);
  EXPECT_EQ(d.requests.at(0).guidance, 2.5);
  EXPECT_EQ(d.requests.at(0).label, 8);
  EXPECT_FALSE(d.requests.at(0).progress);

  EXPECT_EQ(refused(R"({"model":"fashion-dit"})", fashion()), (std::pair<int, std::string>{400, "prompt"}));
  EXPECT_EQ(refused(R"({"model":"fashion-dit","prompt":"bag","size":"1024x1024"})", fashion()),
            (std::pair<int, std::string>{400, "size"}));
  EXPECT_EQ(refused(R"({"model":"fashion-dit","prompt":"bag","n":9})", fashion()),
            (std::pair<int, std::string>{400, "n"}));
  EXPECT_EQ(refused(R"({"model":"fashion-dit","prompt":"bag","n":0})", fashion()),
            (std::pair<int, std::string>{400, "n"}));
  EXPECT_EQ(refused(R"({"model":"fashion-dit","prompt":"bag","response_format":"png"})", fashion()),
            (std::pair<int, std::string>{400, "response_format"}));
  EXPECT_EQ(refused(R"({"model":"fashion-dit","prompt":"bag","stream":"yes"})", fashion()),
            (std::pair<int, std::string>{400, "stream"}));
  EXPECT_EQ(refused(R"({"model":"fashion-dit","prompt":"bag","steps":3,"num_inference_steps":3})", fashion()),
            (std::pair<int, std::string>{400, "steps"}));
  EXPECT_EQ(refused(R"({"model":"fashion-dit","prompt":")" + std::string(5000, 'a') + R"("})", fashion()),
            (std::pair<int, std::string>{400, "prompt"}));
  // An unknown class: the nearest names, so a typo is one look away from its fix.
  auto r = gateway::parse_generation(R"({"model":"fashion-dit","prompt":"sneakr"})", fashion());
  const auto body = std::get<gateway::http_reply>(r).body;
  EXPECT_NE(body.find("'sneaker'"), std::string::npos) << body;
}

TEST(gateway_api, models_images_and_events_have_openai_shapes) {
  auto m = json::parse(gateway::models_reply(fashion(), false).body);
  EXPECT_EQ(m["object"], "list");
  ASSERT_EQ(m["data"].size(), 1u);
  EXPECT_EQ(m["data"][0]["id"], "fashion-dit");
  EXPECT_EQ(m["data"][0]["object"], "model");
  EXPECT_EQ(m["data"][0]["size"], "28x28");
  EXPECT_EQ(m["data"][0]["classes"].size(), 10u);
  gateway::picture a, b;
  a.b64_json = gateway::base64({'P', 'N', 'G'});
  a.seed = 3;
  a.class_name = "bag";
  b.url = "http://h/v1/images/ab";
  auto body = gateway::images_body(1700000000, {a, b});
  EXPECT_EQ(body["created"], 1700000000);
  EXPECT_EQ(body["data"][0]["b64_json"], "UE5H");
  EXPECT_FALSE(body["data"][0].contains("url"));
  EXPECT_EQ(body["data"][1]["url"], "http://h/v1/images/ab");
  EXPECT_EQ(gateway::sse_event({{"step", 5}}), "data: {\"step\":5}\n\n");
  // base64 against RFC 4648's test vectors.
  const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [in, out] : vectors) {
    const std::string s = in;
    EXPECT_EQ(gateway::base64({s.begin(), s.end()}), out) << in;
  }
  auto e = json::parse(gateway::error_reply(503, "unavailable", "down").body)["error"];
  EXPECT_EQ(e["type"], "server_error");
  EXPECT_TRUE(e["param"].is_null());
}

TEST(gateway_api, the_picture_store_is_bounded_by_size_and_time) {
  using clock = gateway::result_store::clock;
  gateway::result_store store(10, std::chrono::seconds(100));
  const auto t0 = clock::now();
  const auto a = store.put({1, 2, 3, 4, 5, 6}, t0);
  EXPECT_EQ(a.size(), 32u);  // 128 random bits
  EXPECT_FALSE(store.full(t0));
  const auto b = store.put({7, 8, 9, 10}, t0);
  EXPECT_NE(a, b);
  EXPECT_TRUE(store.full(t0));  // 10 bytes: new requests wait
  EXPECT_EQ(store.get(a, t0)->size(), 6u);
  EXPECT_EQ(store.get(a, t0 + std::chrono::seconds(30))->size(), 6u);                         // a client may ask twice
  EXPECT_FALSE(store.get(a, t0 + gateway::result_store::refetch + std::chrono::seconds(1)));  // then it goes
  EXPECT_FALSE(store.full(t0 + std::chrono::seconds(61)));
  EXPECT_FALSE(store.get(b, t0 + std::chrono::seconds(101)));  // never fetched: gone after the TTL
  EXPECT_FALSE(store.get("0123", t0));
  const auto s = store.stats(t0 + std::chrono::seconds(101));
  EXPECT_EQ(s.images, 0u);
  EXPECT_EQ(s.bytes, 0u);
  EXPECT_EQ(s.stored, 2u);
  EXPECT_EQ(s.fetched, 2u);
  EXPECT_EQ(s.expired, 2u);
}

TEST(gateway_api, metrics_are_prometheus_text_with_a_cumulative_histogram) {
  gateway::gateway_metrics m;
  m.reply(200);
  m.reply(200);
  m.reply(429);
  m.answered(0.07, 2);
  m.answered(3.0, 1);
  m.cancelled("disconnect");
  gateway::store_stats s;
  s.images = 1;
  s.bytes = 600;
  s.max_bytes = 1000;
  const auto t = m.text(5, s);
  for (const char* line :
       {"gfdit_gateway_replies_total{status=\"200\"} 2\n", "gfdit_gateway_replies_total{status=\"429\"} 1\n",
        "gfdit_gateway_request_seconds_bucket{le=\"0.05\"} 0\n", "gfdit_gateway_request_seconds_bucket{le=\"0.1\"} 1\n",
        "gfdit_gateway_request_seconds_bucket{le=\"2.5\"} 1\n", "gfdit_gateway_request_seconds_bucket{le=\"5\"} 2\n",
        "gfdit_gateway_request_seconds_bucket{le=\"+Inf\"} 2\n", "gfdit_gateway_request_seconds_count 2\n",
        "gfdit_gateway_images_total 3\n", "gfdit_gateway_cancelled_total{cause=\"disconnect\"} 1\n",
        "gfdit_gateway_cancelled_total{cause=\"timeout\"} 0\n", "gfdit_gateway_outstanding_images 5\n",
        "gfdit_gateway_store_bytes 600\n", "# TYPE gfdit_gateway_request_seconds histogram\n"})
    EXPECT_NE(t.find(line), std::string::npos) << line << " in\n" << t;
}

TEST(gateway_api, admission_answers_and_terminal_messages_map_to_http) {
  msg::rejected over{1, "t", "overloaded", "", "queue full", 2300.0, 0};
  auto r = gateway::reply_for(over);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.retry_after_s, 3);
  EXPECT_EQ(gateway::reply_for(msg::rejected{1, "t", "invalid", "width", "must be a multiple of 16", 0, 0}).status,
            400);
  EXPECT_EQ(gateway::reply_for(msg::rejected{1, "t", "infeasible", "slo_ms", "too tight", 0, 0}).status, 422);
  msg::request_done d;
  d.request_id = 9;
  d.status = "done";
  d.latency_us = 1500;
  d.run_us = 1000;
  d.result_ref = "worker:2/request:9";
  d.result_hash = 0xabc;
  auto ok = gateway::reply_for(d);
  EXPECT_EQ(ok.status, 200);
  auto j = json::parse(ok.body);
  EXPECT_EQ(j["id"], 9);
  EXPECT_EQ(j["latency_ms"], 1.5);
  EXPECT_EQ(j["data"][0]["url"], "gfdit://worker:2/request:9");
  EXPECT_EQ(j["data"][0]["result_hash"], "0000000000000abc");
  d.status = "failed";
  EXPECT_EQ(gateway::reply_for(d).status, 500);
  d.status = "cancelled";
  EXPECT_EQ(gateway::reply_for(d).status, 409);
}

// The gateway in this process, in front of the live graph.
struct gateway_fixture {
  testing::live_graph g{"edf-best-fit", 2, 200.0};
  std::unique_ptr<node> n;
  int port = 0;

  explicit gateway_fixture(nlohmann::json extra = nlohmann::json::object()) {
    const auto port_file = std::filesystem::temp_directory_path() / ("gfdit-gw-" + std::to_string(::getpid()));
    // Peers of the workers too: hellos, heartbeats (and pictures) come from them directly.
    std::vector<peer_endpoint> peers = {{"control", g.control_ep}};
    for (std::size_t w = 0; w < g.worker_eps.size(); ++w) peers.push_back({"w" + std::to_string(w), g.worker_eps[w]});
    auto created = node::create({.name = "gw", .peers = peers, .peer_timeout = 20s});
    EXPECT_TRUE(created);
    n = std::move(*created);
    auto a = actor_registry::global().make("gfdit.gateway");
    EXPECT_TRUE(a);
    nlohmann::json params = {{"listen", "127.0.0.1:0"}, {"port_file", port_file.string()}, {"timeout_s", 60.0}};
    params.update(extra);
    EXPECT_TRUE(n->add("gateway", std::move(a), params));
    auto r = n->start();
    EXPECT_TRUE(r) << (r ? "" : r.err().what);
    std::ifstream(port_file) >> port;
    std::filesystem::remove(port_file);
    // Until a worker's hello has reached the gateway it serves nothing (503 + Retry-After).
    httplib::Client c("127.0.0.1", port);
    for (int i = 0; i < 200; ++i) {
      auto r = c.Get("/v1/models");
      if (r && json::parse(r->body, nullptr, false).contains("seeded_weights")) break;
      std::this_thread::sleep_for(50ms);
    }
  }
};

TEST(gateway_live, requests_over_http_are_served_and_bad_ones_get_clear_errors) {
  gateway_fixture f;
  ASSERT_GT(f.port, 0);
  httplib::Client http("127.0.0.1", f.port);
  http.set_read_timeout(60, 0);
  auto health = http.Get("/v1/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);

  // Eight at once, from eight client threads: every one is served and answered once.
  std::vector<std::thread> clients;
  std::vector<int> status(8, 0);
  std::vector<json> bodies(8);
  for (int i = 0; i < 8; ++i)
    clients.emplace_back([&, i] {
      httplib::Client c("127.0.0.1", f.port);
      c.set_read_timeout(60, 0);
      const json req = {{"model", "image-dit-20b-standin"}, {"size", "512x512"}, {"steps", 10}, {"seed", i}};
      if (auto res = c.Post("/v1/images/generations", req.dump(), "application/json")) {
        status[i] = res->status;
        bodies[i] = json::parse(res->body, nullptr, false);
      }
    });
  for (auto& t : clients) t.join();
  std::set<std::uint64_t> ids;
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(status[i], 200) << bodies[i].dump();
    EXPECT_EQ(bodies[i].value("status", ""), "done");
    EXPECT_GT(bodies[i].value("run_ms", 0.0), 0.0);
    EXPECT_EQ(bodies[i]["data"][0]["url"].get<std::string>().rfind("gfdit://worker:", 0), 0u);
    ids.insert(bodies[i].value("id", std::uint64_t{0}));
  }
  EXPECT_EQ(ids.size(), 8u);

  // Admission's own validation comes back as a 400 naming the field.
  auto bad =
      http.Post("/v1/images/generations", R"({"model":"image-dit-20b-standin","size":"0x512"})", "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(json::parse(bad->body)["error"]["param"], "width") << bad->body;
  auto unknown =
      http.Post("/v1/images/generations", R"({"model":"no-such-model","size":"512x512"})", "application/json");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 400);
  EXPECT_EQ(json::parse(unknown->body)["error"]["param"], "model") << unknown->body;
  // The gateway's own parsing: never sent on.
  auto typo = http.Post("/v1/images/generations", R"({"model":"image-dit-20b-standin","size":"512x512","stpes":3})",
                        "application/json");
  ASSERT_TRUE(typo);
  EXPECT_EQ(typo->status, 400);
  // Hostile bodies: too deep (the gateway used to crash), too large (413, unread), and the
  // gateway keeps serving.
  auto deep =
      http.Post("/v1/images/generations", std::string(70000, '[') + std::string(70000, ']'), "application/json");
  ASSERT_TRUE(deep);
  EXPECT_EQ(deep->status, 400);
  auto large = http.Post("/v1/images/generations", std::string(std::size_t{3} << 20, ' '), "application/json");
  ASSERT_TRUE(large);
  EXPECT_EQ(large->status, 413);
  // And the graph still serves after the errors.
  auto again = http.Post("/v1/images/generations", R"({"model":"image-dit-20b-standin","size":"512x512","steps":5})",
                         "application/json");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200) << again->body;
}

TEST(gateway_live, more_images_in_flight_than_max_outstanding_get_429_with_retry_after) {
  gateway_fixture f(nlohmann::json{{"max_outstanding", 1}});
  ASSERT_GT(f.port, 0);
  // A long request holds the one place (steps at speedup 200: about a second of wall time).
  std::thread first([&] {
    httplib::Client c("127.0.0.1", f.port);
    c.set_read_timeout(60, 0);
    auto r = c.Post("/v1/images/generations", R"({"model":"image-dit-20b-standin","size":"1024x1024","steps":200})",
                    "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->body;
  });
  httplib::Client c("127.0.0.1", f.port);
  // Once the first request holds the one place (the gateway's health says so), the next is refused.
  for (int i = 0; i < 400; ++i) {
    auto h = c.Get("/v1/health");
    if (h && json::parse(h->body)["outstanding_images"] == 1) break;
    std::this_thread::sleep_for(5ms);
  }
  auto r = c.Post("/v1/images/generations", R"({"model":"image-dit-20b-standin","size":"512x512","steps":5})",
                  "application/json");
  ASSERT_TRUE(r);
  const int status = r->status;
  const std::string retry_after = r->get_header_value("Retry-After");
  EXPECT_EQ(status, 429);
  EXPECT_EQ(retry_after, "1");
  first.join();
  auto after = c.Post("/v1/images/generations", R"({"model":"image-dit-20b-standin","size":"512x512","steps":5})",
                      "application/json");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200) << after->body;
}

TEST(gateway_live, a_port_in_use_is_a_clear_error_at_activation) {
  httplib::Server squatter;
  const int port = squatter.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread listening([&] { squatter.listen_after_bind(); });
  while (!squatter.is_running()) std::this_thread::sleep_for(1ms);
  struct stop_it {
    httplib::Server& s;
    std::thread& t;
    ~stop_it() {
      s.stop();
      t.join();
    }
  } stopper{squatter, listening};
  auto n = node::create({.name = "gw2"});
  ASSERT_TRUE(n);
  auto a = actor_registry::global().make("gfdit.gateway");
  ASSERT_TRUE(a);
  ASSERT_TRUE((*n)->add("gateway", std::move(a), {{"listen", "127.0.0.1:" + std::to_string(port)}}));
  auto r = (*n)->start();
  ASSERT_FALSE(r);
  EXPECT_NE(r.err().what.find("cannot listen on 127.0.0.1:" + std::to_string(port)), std::string::npos) << r.err().what;
}

}  // namespace
}  // namespace gfdit
