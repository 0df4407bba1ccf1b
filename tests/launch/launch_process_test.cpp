// `gfdit launch` and `gfdit node` with real processes: a 3-process graph, restarts, plugins,
// introspection, shutdown without orphans, and tcp / Slurm wiring.
#include <gtest/gtest.h>

#include <regex>

#include <httplib.h>

#include "tests/launch/launch_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using gfdit::testing::alive;
using gfdit::testing::children_of;
using gfdit::testing::process;
using gfdit::testing::run;
using gfdit::testing::temp_dir;

const std::string gfdit_exe = GFDIT_EXE;

int count_of(const std::string& text, const std::string& what) {
  int n = 0;
  for (auto p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

TEST(Launch, ThreeProcessGraphExchangesMessages) {
  temp_dir d;
  const auto f = d.write("three.yaml", R"(graph: three
processes:
  - name: ponger
    actors: [{type: example.ponger, name: ponger, remaps: {ping: ping_relayed}}]
  - name: relay
    actors: [{type: gfdit.relay, name: relay, parameters: {in: ping, out: ping_relayed}}]
  - name: pinger
    exit_on_done: true
    actors: [{type: example.pinger, name: pinger, parameters: {count: 5, period_ms: 5}}]
)");
  auto [status, out] = run({gfdit_exe, "launch", f}, d.path() + "/log", 30s);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("[pinger] "), std::string::npos) << out;
  EXPECT_NE(out.find("ping-pong: 5 round trips"), std::string::npos) << out;
  EXPECT_NE(out.find("graph 'three': done ('pinger' finished)"), std::string::npos) << out;
  EXPECT_EQ(count_of(out, "up on ipc://"), 3) << out;
}

// The real-numerics graph an operator launches (launch/graphs/serving-dit.yaml): two `cpu`
// workers, every request of cpu-tiny served, the client's exit stopping the graph.
TEST(Launch, RealNumericsServingGraphServesEveryRequest) {
  temp_dir d;
  auto [status, out] = run(
      {gfdit_exe, "launch", GFDIT_SOURCE_DIR "/launch/graphs/serving-dit.yaml", "workers:=2", "world_dir:=" + d.path()},
      d.path() + "/log", 90s);
  EXPECT_EQ(status, 0) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(\[client\] done +8\n)"))) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(\[client\] rejected / failed +0\n)"))) << out;
  EXPECT_NE(out.find("graph 'serving-dit': done ('client' finished)"), std::string::npos) << out;
}

TEST(Launch, CrashingProcessIsRestartedThenReported) {
  temp_dir d;
  const std::string marker = d.path() + "/starts";
  const auto f = d.write("crash.yaml", R"(graph: crashy
plugins: [)" + std::string(GFDIT_TEST_PLUGIN) +
                                           R"(]
processes:
  - name: steady
    actors: [{type: example.ponger, name: ponger}]
  - name: crash
    restart: {policy: on-failure, max: 2, backoff_ms: 50}
    actors:
      - type: test.crasher
        name: crasher
        parameters: {marker: )" + marker + R"(, after_ms: 50}
)");
  auto [status, out] = run({gfdit_exe, "launch", f}, d.path() + "/log", 60s);
  EXPECT_EQ(status, 1) << out;
  EXPECT_NE(out.find("process 'crash' killed by signal 6 (SIGABRT: Aborted): restart 1/2 in 50 ms"), std::string::npos)
      << out;
  EXPECT_NE(out.find("restart 2/2 in 100 ms"), std::string::npos) << out;
  EXPECT_NE(out.find("ERROR: process 'crash' failed: killed by signal 6 (SIGABRT: Aborted); gave up after 2 "
                     "restart(s) (max: 2); essential: stopping the graph"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("graph 'crashy': FAILED"), std::string::npos) << out;
  EXPECT_EQ(count_of(gfdit::testing::read_file(marker), "started"), 3);  // first start + 2 restarts
}

// `essential: false`: a process that gives up (here at once, restart `never`) leaves the others
// running; the graph ends as it would have, naming what it went on without.
TEST(Launch, NonEssentialProcessThatGivesUpLeavesTheGraphRunning) {
  temp_dir d;
  const std::string marker = d.path() + "/starts";
  const auto f = d.write("survive.yaml", R"(graph: survive
plugins: [)" + std::string(GFDIT_TEST_PLUGIN) +
                                             R"(]
processes:
  - name: ponger
    actors: [{type: example.ponger, name: ponger}]
  - name: crash
    essential: false
    actors:
      - type: test.crasher
        name: crasher
        parameters: {marker: )" + marker + R"(, after_ms: 50}
  - name: pinger
    exit_on_done: true
    actors: [{type: example.pinger, name: pinger, parameters: {count: 20, period_ms: 50}}]
)");
  auto [status, out] = run({gfdit_exe, "launch", f}, d.path() + "/log", 60s);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("process 'crash' failed: killed by signal 6 (SIGABRT: Aborted); restart policy is 'never'; "
                     "not essential: the graph goes on without it"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("ping-pong: 20 round trips"), std::string::npos) << out;
  EXPECT_NE(out.find("graph 'survive': done ('pinger' finished) (went on without 'crash')"), std::string::npos) << out;
  EXPECT_EQ(count_of(gfdit::testing::read_file(marker), "started"), 1);
}

// A process that fails at configure never greets its peers; the others, still waiting for
// them, stop on the launcher's SIGTERM (exit 0) instead of being killed after the stop timeout.
TEST(Launch, PeersWaitingForAFailedProcessStopOnSigterm) {
  temp_dir d;
  const auto f = d.write("refuse.yaml", R"(graph: refusing
plugins: [)" + std::string(GFDIT_TEST_PLUGIN) +
                                            R"(]
processes:
  - name: steady
    actors: [{type: example.ponger, name: ponger}]
  - name: refuse
    actors: [{type: test.refuser, name: refuser}]
  - name: also-steady
    actors: [{type: example.ponger, name: ponger2}]
)");
  auto [status, out] = run({gfdit_exe, "launch", f}, d.path() + "/log", 60s);
  EXPECT_EQ(status, 1) << out;
  EXPECT_NE(out.find("configure failed: refused on purpose"), std::string::npos) << out;
  EXPECT_NE(out.find("ERROR: process 'refuse' failed: exited with status 1"), std::string::npos) << out;
  EXPECT_EQ(out.find("did not stop in time"), std::string::npos) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(\n  steady +stopped +1 +exited with status 0)"))) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(\n  also-steady +stopped +1 +exited with status 0)"))) << out;
}

TEST(Launch, InvalidFileFailsBeforeAnythingStarts) {
  temp_dir d;
  const auto f =
      d.write("bad.yaml", "graph: g\nprocesses:\n  - name: p\n    actors:\n      - {type: no.such, name: a}\n");
  auto [status, out] = run({gfdit_exe, "launch", f}, d.path() + "/log", 30s);
  EXPECT_EQ(status, 2);
  EXPECT_NE(out.find("bad.yaml:5:16: unknown actor type 'no.such'"), std::string::npos) << out;
  EXPECT_EQ(out.find("[launch]"), std::string::npos) << out;
}

TEST(Launch, SeparatelyBuiltPluginLoadsAndRuns) {
  temp_dir d;
  const std::string graph = std::string(GFDIT_SOURCE_DIR) + "/examples/custom_actor/graph.yaml";
  auto [status, out] = run({gfdit_exe, "launch", graph, std::string("plugin:=") + GFDIT_COUNTER_PLUGIN, "count:=5"},
                           d.path() + "/log", 30s);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("[counter] "), std::string::npos) << out;
  EXPECT_NE(out.find("counter: saw 5 message(s) on 'pong', done"), std::string::npos) << out;

  // Found through GFDIT_PLUGIN_PATH too, listed with the library as its origin.
  auto [s2, types] =
      run({gfdit_exe, "actor", "types"}, d.path() + "/types", 30s, {{"GFDIT_PLUGIN_PATH", GFDIT_COUNTER_PLUGIN}});
  EXPECT_EQ(s2, 0) << types;
  EXPECT_TRUE(std::regex_search(types, std::regex("custom\\.counter +/.*libgfdit_counter_actor\\.so"))) << types;
  EXPECT_TRUE(std::regex_search(types, std::regex("example\\.pinger +builtin"))) << types;
}

TEST(Launch, IntrospectionOfARunningGraph) {
  temp_dir d;
  const auto f = d.write("live.yaml", R"(graph: live
processes:
  - name: ponger
    actors: [{type: example.ponger, name: ponger}]
  - name: pinger
    actors: [{type: example.pinger, name: pinger, parameters: {count: 100000, period_ms: 5}}]
)");
  const std::string control = "tcp://127.0.0.1:" + std::to_string(gfdit::testing::free_tcp_port());
  process launcher({gfdit_exe, "launch", f, "--control", control}, d.path() + "/launch.log");
  ASSERT_TRUE(launcher.wait_for_output("pong 3 after")) << launcher.output();

  auto [s1, echo] =
      run({gfdit_exe, "topic", "echo", "ping", "--json", "--count", "3", "--timeout", "10", "--control", control},
          d.path() + "/echo", 20s);
  EXPECT_EQ(s1, 0) << echo;
  EXPECT_EQ(count_of(echo, "\"type\":\"example.ping\""), 3) << echo;
  EXPECT_EQ(count_of(echo, "\"sender\":\"pinger\""), 3) << echo;

  auto [s2, actors] = run({gfdit_exe, "actor", "list", "--control", control}, d.path() + "/actors", 20s);
  EXPECT_EQ(s2, 0) << actors;
  EXPECT_TRUE(std::regex_search(actors, std::regex("pinger +pinger +active +[1-9][0-9]* +[1-9]"))) << actors;
  EXPECT_TRUE(std::regex_search(actors, std::regex("ponger +ponger +active"))) << actors;

  auto [s3, topics] = run({gfdit_exe, "topic", "list", "--control", control}, d.path() + "/topics", 20s);
  EXPECT_EQ(s3, 0) << topics;
  EXPECT_TRUE(std::regex_search(topics, std::regex("ping +[1-9][0-9]* +example\\.ping +pinger/pinger +ponger/ponger")))
      << topics;

  auto [s4, set] =
      run({gfdit_exe, "param", "set", "pinger", "period_ms", "7", "--control", control}, d.path() + "/set", 20s);
  EXPECT_EQ(s4, 0) << set;
  auto [s5, get] =
      run({gfdit_exe, "param", "get", "pinger", "period_ms", "--control", control}, d.path() + "/get", 20s);
  EXPECT_EQ(s5, 0) << get;
  EXPECT_EQ(get, "7\n");
  auto [s6, bad] =
      run({gfdit_exe, "param", "set", "pinger", "count", "\"many\"", "--control", control}, d.path() + "/bad", 20s);
  EXPECT_EQ(s6, 1) << bad;
  EXPECT_NE(bad.find("expected int"), std::string::npos) << bad;

  auto [s7, hz] = run({gfdit_exe, "topic", "hz", "pong", "--window", "0.5", "--duration", "1.2", "--control", control},
                      d.path() + "/hz", 20s);
  EXPECT_EQ(s7, 0) << hz;
  EXPECT_TRUE(std::regex_search(hz, std::regex("pong: [0-9.]+ Hz"))) << hz;

  launcher.signal(SIGINT);
  EXPECT_EQ(launcher.wait(10s), 0) << launcher.output();
  // The tools left the graph cleanly: no node complained about an undeliverable message.
  EXPECT_EQ(launcher.output().find("not delivered"), std::string::npos) << launcher.output();
}

// `metrics: {port_base: N}`: each process serves Prometheus text on 127.0.0.1:N+k, with its
// actors' and its bus's counters.
TEST(Launch, EveryProcessServesItsMetrics) {
  temp_dir d;
  const int base = gfdit::testing::free_tcp_port();
  const auto f = d.write("metrics.yaml", "graph: metered\nmetrics: {port_base: " + std::to_string(base) + R"(}
processes:
  - name: ponger
    actors: [{type: example.ponger, name: ponger}]
  - name: pinger
    actors: [{type: example.pinger, name: pinger, parameters: {count: 100000, period_ms: 5}}]
)");
  process launcher({gfdit_exe, "launch", f}, d.path() + "/launch.log");
  ASSERT_TRUE(launcher.wait_for_output("pong 3 after")) << launcher.output();
  for (const auto& [k, node] : {std::pair{0, std::string("ponger")}, std::pair{1, std::string("pinger")}}) {
    httplib::Client c("127.0.0.1", base + k);
    auto r = c.Get("/metrics");
    ASSERT_TRUE(r) << node << ": " << launcher.output();
    EXPECT_EQ(r->status, 200);
    std::smatch m;
    const std::regex received("gfdit_actor_received_total\\{node=\"" + node + "\",actor=\"" + node + "\"\\} ([0-9]+)");
    ASSERT_TRUE(std::regex_search(r->body, m, received)) << r->body;
    EXPECT_GT(std::stoull(m[1]), 0u) << node;
    EXPECT_NE(r->body.find("gfdit_actor_active{node=\"" + node + "\",actor=\"" + node + "\",state=\"active\"} 1"),
              std::string::npos)
        << r->body;
    EXPECT_NE(r->body.find("gfdit_bus_frames_total{node=\"" + node + "\",direction=\"sent\"}"), std::string::npos);
  }
}

// `gfdit top --once` against the stock serving graph: the scheduler's snapshot, drawn.
TEST(Launch, TopShowsTheSchedulersLiveView) {
  temp_dir d;
  const std::string control = "tcp://127.0.0.1:" + std::to_string(gfdit::testing::free_tcp_port());
  process launcher(
      {gfdit_exe, "launch", std::string(GFDIT_SOURCE_DIR) + "/launch/graphs/serving.yaml", "--control", control},
      d.path() + "/launch.log");
  ASSERT_TRUE(launcher.wait_for_output("up on")) << launcher.output();
  auto [status, out] =
      run({gfdit_exe, "top", "--once", "--timeout", "20", "--control", control}, d.path() + "/top", 30s);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("gfdit top: serving  workers "), std::string::npos) << out;
  EXPECT_NE(out.find("REQUEST  MODEL"), std::string::npos) << out;
  EXPECT_NE(out.find("workers: 0:"), std::string::npos) << out;
}

TEST(Launch, ShutdownWithinFiveSecondsLeavesNoOrphans) {
  temp_dir d;
  const std::string marker = d.path() + "/grandchild";
  const auto f = d.write("stop.yaml", R"(graph: stop
plugins: [)" + std::string(GFDIT_TEST_PLUGIN) +
                                          R"(]
processes:
  - name: a
    actors: [{type: test.spawner, name: spawner, parameters: {marker: )" +
                                          marker + R"(}}]
  - name: b
    replicas: 2
    actors: [{type: example.ponger, name: ponger$(index)}]
)");
  const std::string control = "tcp://127.0.0.1:" + std::to_string(gfdit::testing::free_tcp_port());
  process launcher({gfdit_exe, "launch", f, "--control", control}, d.path() + "/launch.log");
  ASSERT_TRUE(launcher.wait_for_output("up on ipc://")) << launcher.output();
  ASSERT_TRUE(launcher.wait_for_output("[b-1]")) << launcher.output();
  for (int i = 0; i < 200 && gfdit::testing::read_file(marker).empty(); ++i) std::this_thread::sleep_for(20ms);
  const pid_t grandchild = std::atoi(gfdit::testing::read_file(marker).c_str());
  ASSERT_GT(grandchild, 0);
  auto nodes = children_of(launcher.pid());
  ASSERT_EQ(nodes.size(), 3u) << launcher.output();
  ASSERT_TRUE(alive(grandchild));

  const auto t0 = std::chrono::steady_clock::now();
  launcher.signal(SIGTERM);
  const int status = launcher.wait(10s);
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_NE(status, -1000);
  EXPECT_LT(took, 5s);
  for (pid_t p : nodes) EXPECT_FALSE(alive(p)) << "node " << p << " outlived the launcher";
  for (int i = 0; i < 50 && alive(grandchild); ++i) std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(alive(grandchild)) << "the SIGTERM-proof grandchild outlived the launcher";
  EXPECT_TRUE(children_of(launcher.pid()).empty());
  EXPECT_NE(launcher.output().find("stopped by signal"), std::string::npos) << launcher.output();
}

TEST(Launch, KilledLauncherTakesItsProcessesAlong) {
  temp_dir d;
  const auto f = d.write("k.yaml", R"(graph: k
processes:
  - {name: a, actors: [{type: example.ponger, name: a}]}
  - {name: b, actors: [{type: example.ponger, name: b}]}
)");
  process launcher({gfdit_exe, "launch", f}, d.path() + "/launch.log");
  ASSERT_TRUE(launcher.wait_for_output("[b]")) << launcher.output();
  ASSERT_TRUE(launcher.wait_for_output("[a]")) << launcher.output();
  const auto nodes = children_of(launcher.pid());
  ASSERT_EQ(nodes.size(), 2u);
  launcher.signal(SIGKILL);
  launcher.wait(5s);
  for (pid_t p : nodes) {
    for (int i = 0; i < 100 && alive(p); ++i) std::this_thread::sleep_for(20ms);
    EXPECT_FALSE(alive(p)) << "node " << p << " survived its launcher's SIGKILL";
  }
}

TEST(Node, TwoProcessesOverTcpFromTheFile) {
  temp_dir d;
  const int base = gfdit::testing::free_tcp_port();
  const auto f = d.write("tcp.yaml", R"(graph: two_hosts
port_base: )" + std::to_string(base) + R"(
processes:
  - {name: pong_host, host: localhost, actors: [{type: example.ponger, name: ponger}]}
  - name: ping_host
    host: 127.0.0.1
    port: )" + std::to_string(gfdit::testing::free_tcp_port()) +
                                         R"(
    actors: [{type: example.pinger, name: pinger, parameters: {count: 3, period_ms: 5}}]
)");
  process ponger({gfdit_exe, "node", f, "--process", "pong_host"}, d.path() + "/pong.log");
  process pinger({gfdit_exe, "node", f, "--process", "ping_host"}, d.path() + "/ping.log");
  EXPECT_EQ(pinger.wait(30s), 0) << pinger.output();
  EXPECT_NE(pinger.output().find("ping-pong: 3 round trips"), std::string::npos) << pinger.output();
  EXPECT_NE(ponger.output().find("up on tcp://127.0.0.1:" + std::to_string(base)), std::string::npos)
      << ponger.output();
  ponger.signal(SIGTERM);
  EXPECT_EQ(ponger.wait(10s), 0);
}

// Without a launcher, a process marked exit_on_done that finishes says goodbye, and that stops
// the graph's other processes (so `srun gfdit node ... --slurm` ends when the client does).
TEST(Node, AnExitOnDoneProcessThatFinishesStopsTheOthers) {
  temp_dir d;
  const int base = gfdit::testing::free_tcp_port();
  const auto f = d.write("done.yaml", "graph: done\nport_base: " + std::to_string(base) + R"(
processes:
  - {name: pong, actors: [{type: example.ponger, name: ponger}]}
  - name: ping
    exit_on_done: true
    actors: [{type: example.pinger, name: pinger, parameters: {count: 2, period_ms: 5}}]
)");
  process ponger({gfdit_exe, "node", f, "--process", "pong"}, d.path() + "/pong.log");
  process pinger({gfdit_exe, "node", f, "--process", "ping"}, d.path() + "/ping.log");
  EXPECT_EQ(pinger.wait(30s), 0) << pinger.output();
  EXPECT_EQ(ponger.wait(10s), 0) << ponger.output();
  EXPECT_NE(ponger.output().find("node 'ping' finished: stopping with it"), std::string::npos) << ponger.output();
}

TEST(Node, SlurmRanksPickTheirProcess) {
  temp_dir d;
  const int base = gfdit::testing::free_tcp_port();
  const auto f = d.write("slurm.yaml", "graph: s\nport_base: " + std::to_string(base) + R"(
processes:
  - {name: pong, actors: [{type: example.ponger, name: ponger}]}
  - {name: ping, actors: [{type: example.pinger, name: pinger, parameters: {count: 2, period_ms: 5}}]}
)");
  std::map<std::string, std::string> env = {
      {"SLURM_NODELIST", "localhost"}, {"SLURM_TASKS_PER_NODE", "2"}, {"SLURM_NTASKS", "2"}};
  env["SLURM_PROCID"] = "0";
  process rank0({gfdit_exe, "node", f, "--slurm"}, d.path() + "/r0.log", env);
  env["SLURM_PROCID"] = "1";
  process rank1({gfdit_exe, "node", f, "--slurm"}, d.path() + "/r1.log", env);
  EXPECT_EQ(rank1.wait(30s), 0) << rank1.output();
  EXPECT_NE(rank1.output().find("node 'ping' of graph 's' up on tcp://127.0.0.1:" + std::to_string(base + 1)),
            std::string::npos)
      << rank1.output();
  rank0.signal(SIGTERM);
  EXPECT_EQ(rank0.wait(10s), 0) << rank0.output();
}

}  // namespace
