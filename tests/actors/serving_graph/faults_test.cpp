// Faults without loss (issue 27): `gfdit launch` runs the stock control plane
// (launch/graphs/serving-core.yaml: admission, scheduler, membership in process `control`, three
// sim worker processes) behind the HTTP gateway, and 200 requests go through it over real HTTP
// while the gateway, the control process and every worker are killed with SIGKILL in turn.
// Every request must end with an answer its client sees: a picture's 200, or an error status
// with a message (a gateway killed under its clients drops their connections: that, too, they
// see). None may wait out the gateway's timeout (504): that is a request the graph lost. Each
// kill's recovery is measured (the first request sent after it that succeeds).
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "tests/actors/serving_graph/launched_graph.hpp"
#include "tests/support/free_tcp_port.hpp"

namespace gfdit {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

struct outcome {
  int status = -1;  // HTTP status; 0: the connection broke mid-request
  std::string error;
  steady::time_point sent, answered;
};

class faults_graph {
 public:
  faults_graph() {
    const fs::path file = graph_.dir() / "faults.yaml";
    std::ofstream(file) << "graph: faults\n"
                           "include: ["
                        << GFDIT_SOURCE_DIR << "/launch/graphs/serving-core.yaml]\n"
                        << "metrics: {port_base: " << metrics_port_ << "}\n"
                        << R"(args:
  port_file: {description: "the gateway writes its port here"}
processes:
  - name: gateway
    restart: {policy: on-failure, max: 3, backoff_ms: 100}
    actors:
      - {type: gfdit.gateway, name: gateway, parameters: {listen: "127.0.0.1:0", port_file: $(arg port_file),
                                                           timeout_s: 30.0}}
)";
    graph_.start(file.string(), {"workers:=3", "speedup:=20", "port_file:=" + port_file()});
    const auto deadline = steady::now() + 60s;
    while (steady::now() < deadline) {
      httplib::Client c("127.0.0.1", port());
      auto r = c.Get("/v1/models");  // sim workers: seeded weights, said once their hellos came
      if (r && r->status == 200 && json::parse(r->body).contains("seeded_weights")) return;
      std::this_thread::sleep_for(100ms);
    }
    ADD_FAILURE() << "the graph did not come up: " << log();
  }

  std::string port_file() const { return (graph_.dir() / "port").string(); }
  int port() const {
    int p = 0;
    std::ifstream(port_file()) >> p;
    return p;
  }
  std::string log() const { return graph_.log(); }
  pid_t pid(const std::string& process, int index = 0) const { return graph_.node_pid(process, index); }

  // One request as a client makes it: one that cannot connect (refused, or no answer to its SYN
  // within the connect timeout, while the gateway restarts) never reached the graph and tries
  // again; once sent, whatever comes back is its outcome.
  outcome generate(int steps) const {
    const std::string body =
        json{{"model", "image-dit-20b-standin"}, {"size", "512x512"}, {"num_inference_steps", steps}}.dump();
    outcome o;
    while (true) {
      httplib::Client c("127.0.0.1", port());
      c.set_connection_timeout(1, 0);
      c.set_read_timeout(60, 0);
      o.sent = steady::now();
      auto r = c.Post("/v1/images/generations", body, "application/json");
      o.answered = steady::now();
      if (r) {
        o.status = r->status;
        if (r->status != 200) o.error = r->body;
        return o;
      }
      if (r.error() != httplib::Error::Connection && r.error() != httplib::Error::ConnectionTimeout) {
        o.status = 0;
        o.error = httplib::to_string(r.error());
        return o;
      }
      std::this_thread::sleep_for(20ms);
    }
  }

  std::string metrics() const {
    httplib::Client c("127.0.0.1", port());
    auto r = c.Get("/metrics");
    return r ? r->body : std::string();
  }
  // The control process's own (the first process of the file: metrics port_base + 0).
  std::string control_metrics() const {
    httplib::Client c("127.0.0.1", metrics_port_);
    auto r = c.Get("/metrics");
    return r ? r->body : std::string();
  }

 private:
  const int metrics_port_ = testing::free_tcp_port();
  testing::launched_graph graph_{"faults"};
};

TEST(faults, sigkill_of_gateway_control_and_every_worker_loses_no_request) {
  faults_graph g;
  constexpr int total = 200, clients = 6, steps = 20;
  std::mutex mu;
  std::vector<outcome> done;
  std::atomic<int> next{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < clients; ++t)
    threads.emplace_back([&] {
      while (next.fetch_add(1) < total) {
        auto o = g.generate(steps);
        std::lock_guard lock(mu);
        done.push_back(std::move(o));
      }
    });
  auto answered = [&] {
    std::lock_guard lock(mu);
    return done.size();
  };
  // A probe: one-step requests until one succeeds. Its latency with nothing killed is the floor
  // of every recovery figure.
  std::map<int, int> probe_errors;  // the gateway counts the probes' answers too
  auto probe = [&](steady::time_point since) {
    for (int status; (status = g.generate(1).status) != 200; std::this_thread::sleep_for(20ms)) ++probe_errors[status];
    return std::chrono::duration<double>(steady::now() - since).count();
  };
  const double floor_s = probe(steady::now());

  struct fault {
    std::string process;
    int index;
    steady::time_point at, dead;  // SIGKILL sent; the process gone (its sockets closed)
    double recovery_s = 0;
  };
  std::vector<fault> kills = {{"gateway", 0}, {"control", 0}, {"worker", 0}, {"worker", 1}, {"worker", 2}};
  for (std::size_t k = 0; k < kills.size(); ++k) {
    // Each kill with requests in flight: 30 answered since the previous one.
    while (answered() < 20 + 30 * k && answered() < total) std::this_thread::sleep_for(10ms);
    const pid_t victim = g.pid(kills[k].process, kills[k].index);
    ASSERT_GT(victim, 0) << kills[k].process << " " << kills[k].index << g.log();
    kills[k].at = steady::now();
    ASSERT_EQ(::kill(victim, SIGKILL), 0);
    while (fs::exists("/proc/" + std::to_string(victim) + "/fd/0")) std::this_thread::sleep_for(1ms);
    kills[k].dead = steady::now();
    kills[k].recovery_s = probe(kills[k].at);  // the next kill only once the graph serves again
  }
  for (auto& t : threads) t.join();

  ASSERT_EQ(done.size(), static_cast<std::size_t>(total));
  std::map<int, int> by_status;
  for (const auto& o : done) ++by_status[o.status];
  std::string summary;
  for (const auto& [s, n] : by_status) summary += " " + std::to_string(s) + ":" + std::to_string(n);
  std::printf("one-step request, nothing killed: %.3f s\n", floor_s);
  // When everything in flight at a kill had its answer (a dead worker's tasks wait for its
  // heartbeat timeout, 1 s, then run elsewhere).
  auto drained = [&](const fault& f) {
    double last = 0;
    for (const auto& o : done)
      if (o.sent < f.at && o.answered > f.at)
        last = std::max(last, std::chrono::duration<double>(o.answered - f.at).count());
    return last;
  };
  for (const auto& k : kills) {
    std::printf("in flight at the SIGKILL of %s-%d: all answered %.3f s after it\n", k.process.c_str(), k.index,
                drained(k));
    std::printf("recovery after SIGKILL of %s-%d: %.3f s (the process was gone after %.3f s)\n", k.process.c_str(),
                k.index, k.recovery_s, std::chrono::duration<double>(k.dead - k.at).count());
    EXPECT_LT(k.recovery_s, 10.0) << k.process;  // goal 2 s (bench/RESULTS.md); room for a loaded CI machine
  }
  std::printf("outcomes of %d requests (status:count):%s\n", total, summary.c_str());

  // Every request has its answer, and each error is one a client sees and can act on:
  // (A connection made just after the process is gone may still be taken, then reset, by its
  // listening socket on its way out: 100 ms of grace.)
  auto during = [](const outcome& o, const fault& f) { return o.sent < f.dead + 100ms && o.answered >= f.at; };
  for (const auto& o : done) {
    if (o.status == 200) continue;
    if (o.status == 0) {  // the connection dropped: only through the gateway that died
      EXPECT_TRUE(during(o, kills[0])) << o.error << ": sent "
                                       << std::chrono::duration<double>(o.sent - kills[0].dead).count()
                                       << " s after the gateway was gone";
      continue;
    }
    // Else an HTTP error with a JSON body saying what happened; only a request sent before the
    // control process served again may get one (503: admission did not answer within
    // admit_timeout_s, which a restart slowed down by a loaded machine can take).
    auto j = json::parse(o.error, nullptr, false);
    EXPECT_TRUE(j.contains("error") && !j["error"]["message"].get<std::string>().empty()) << o.error;
    EXPECT_EQ(o.status, 503) << o.error;
    const auto back =
        kills[1].at + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(kills[1].recovery_s));
    EXPECT_TRUE(o.sent < back && o.answered >= kills[1].at) << o.error;
  }
  // None lost: no request waited out the gateway's timeout (504), none failed in the graph.
  EXPECT_EQ(by_status.count(504), 0u) << summary << g.log();
  EXPECT_EQ(by_status.count(500), 0u) << summary << g.log();

  // Errors come only after the gateway's death (it is killed first), so its last life answered
  // every one of them, and counted each.
  const std::string m = g.metrics();
  for (const auto& [s, n] : by_status) {
    if (s == 200 || s == 0) continue;
    EXPECT_NE(m.find("gfdit_gateway_replies_total{status=\"" + std::to_string(s) + "\"} " +
                     std::to_string(n + probe_errors[s]) + "\n"),
              std::string::npos)
        << m;
  }
  const std::string log = g.log();
  EXPECT_NE(log.find("process 'control' killed by signal 9"), std::string::npos) << log;
  // The control process's metrics tell its restart.
  const std::string cm = g.control_metrics();
  EXPECT_NE(cm.find("gfdit_node_restarts_total{node=\"control\"} 1\n"), std::string::npos) << cm;
}

}  // namespace
}  // namespace gfdit
