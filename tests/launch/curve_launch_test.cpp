// Keyed graphs as a user runs them: `gfdit keys make`, a stock graph launched keyed end to end,
// the tools joining it with the operator key (and refused with a key not in its folder), tcp
// beyond loopback refused without keys, and the launcher's control endpoint refusing a client
// without its token.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <map>
#include <regex>
#include <thread>

#include "launch/lib/commands.hpp"
#include "launch/lib/control.hpp"
#include "tests/launch/launch_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using gfdit::testing::process;
using gfdit::testing::run;
using gfdit::testing::temp_dir;

const std::string gfdit_exe = GFDIT_EXE;
const std::string ping_pong = std::string(GFDIT_SOURCE_DIR) + "/launch/graphs/ping_pong.yaml";

int count_of(const std::string& text, const std::string& what) {
  int n = 0;
  for (auto p = text.find(what); p != std::string::npos; p = text.find(what, p + what.size())) ++n;
  return n;
}

unsigned mode_of(const std::string& path) {
  struct stat st {};
  ::stat(path.c_str(), &st);
  return st.st_mode & 0777;
}

TEST(Keys, MakeForAGraphKeepsExistingPairs) {
  temp_dir d;
  const std::string keys = d.path() + "/keys";
  auto [s1, out1] = run({gfdit_exe, "keys", "make", keys, "--graph", ping_pong}, d.path() + "/make1", 20s);
  ASSERT_EQ(s1, 0) << out1;
  for (const char* name : {"ponger", "pinger", "operator"}) {
    EXPECT_EQ(mode_of(keys + "/" + name + ".key"), 0600u) << name;
    EXPECT_EQ(mode_of(keys + "/" + name + ".pub"), 0644u) << name;
  }
  EXPECT_EQ(mode_of(keys), 0700u);
  const std::string pub = gfdit::testing::read_file(keys + "/pinger.pub");
  auto [s2, out2] = run({gfdit_exe, "keys", "make", keys, "--graph", ping_pong}, d.path() + "/make2", 20s);
  ASSERT_EQ(s2, 0) << out2;
  EXPECT_NE(out2.find("0 pair(s) made"), std::string::npos) << out2;
  EXPECT_EQ(gfdit::testing::read_file(keys + "/pinger.pub"), pub);
  auto [s3, out3] = run({gfdit_exe, "keys", "make", keys, "pinger"}, d.path() + "/make3", 20s);
  EXPECT_EQ(s3, 1) << out3;
  EXPECT_NE(out3.find("exists already"), std::string::npos) << out3;
  auto [s4, out4] = run({gfdit_exe, "keys", "list", keys}, d.path() + "/list", 20s);
  EXPECT_EQ(s4, 0) << out4;
  EXPECT_NE(out4.find(pub.substr(0, 40)), std::string::npos) << out4;
}

// The stock ping_pong graph, keyed by a file that includes it: it runs to the end over CURVE.
TEST(Keys, AStockGraphRunsKeyedEndToEnd) {
  temp_dir d;
  const std::string keys = d.path() + "/keys";
  ASSERT_EQ(run({gfdit_exe, "keys", "make", keys, "--graph", ping_pong}, d.path() + "/make", 20s).first, 0);
  const auto f = d.write("keyed.yaml", "include: " + ping_pong + "\nsecurity: {keys: keys}\n");
  auto [status, out] = run({gfdit_exe, "launch", f, "count:=10", "period_ms:=2"}, d.path() + "/log", 60s);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("ping-pong: 10 round trips"), std::string::npos) << out;
  EXPECT_NE(out.find("(keyed: CurveZMQ)"), std::string::npos) << out;
  EXPECT_EQ(out.find("dropped a frame"), std::string::npos) << out;

  // A node whose secret key is missing does not start, and says which key it needs.
  std::filesystem::remove(keys + "/pinger.key");
  auto [s2, out2] = run({gfdit_exe, "launch", f, "count:=10"}, d.path() + "/log2", 60s);
  EXPECT_NE(s2, 0) << out2;
  EXPECT_NE(out2.find("node 'pinger' needs its key pair"), std::string::npos) << out2;
}

// The stock serving graph (control plane, four worker processes, a load client), keyed: every
// request is served and no frame is refused.
TEST(Keys, TheStockServingGraphServesKeyed) {
  temp_dir d;
  const std::string serving = std::string(GFDIT_SOURCE_DIR) + "/launch/graphs/serving.yaml";
  ASSERT_EQ(run({gfdit_exe, "keys", "make", d.path() + "/keys", "--graph", serving}, d.path() + "/make", 20s).first, 0);
  const auto f = d.write("keyed.yaml", "include: " + serving + "\nsecurity: {keys: keys}\n");
  auto [status, out] = run({gfdit_exe, "launch", f, "requests:=40"}, d.path() + "/log", 90s);
  EXPECT_EQ(status, 0) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex("done +40\n"))) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex("unfinished +0\n"))) << out;
  EXPECT_EQ(count_of(out, "(keyed: CurveZMQ)"), 6) << out;
  EXPECT_EQ(out.find("dropped a frame"), std::string::npos) << out;
  EXPECT_EQ(out.find("refused"), std::string::npos) << out;
}

TEST(Keys, ToolsJoinAKeyedGraphOnlyWithAKeyOfItsFolder) {
  temp_dir d;
  const std::string keys = d.path() + "/keys";
  ASSERT_EQ(run({gfdit_exe, "keys", "make", keys, "--graph", ping_pong}, d.path() + "/make", 20s).first, 0);
  ASSERT_EQ(run({gfdit_exe, "keys", "make", d.path() + "/other", "stranger"}, d.path() + "/make2", 20s).first, 0);
  const auto f = d.write("keyed.yaml", "include: " + ping_pong + "\nsecurity: {keys: keys}\n");
  const std::string control = "tcp://127.0.0.1:" + std::to_string(gfdit::testing::free_tcp_port());
  process launcher({gfdit_exe, "launch", f, "count:=100000", "period_ms:=5", "--control", control},
                   d.path() + "/launch.log");
  ASSERT_TRUE(launcher.wait_for_output("pong 3 after")) << launcher.output();
  auto [s1, echo] = run({gfdit_exe, "topic", "echo", "pong", "--count", "2", "--timeout", "10", "--control", control},
                        d.path() + "/echo", 20s);
  EXPECT_EQ(s1, 0) << echo;
  auto [s2, get] =
      run({gfdit_exe, "param", "get", "pinger", "period_ms", "--control", control}, d.path() + "/get", 20s);
  EXPECT_EQ(s2, 0) << get;
  EXPECT_EQ(get, "5\n");
  auto [s3, refused] = run({gfdit_exe, "param", "get", "pinger", "period_ms", "--control", control},
                           d.path() + "/refused", 20s, {{"GFDIT_KEY", d.path() + "/other/stranger.key"}});
  EXPECT_EQ(s3, 1) << refused;
  EXPECT_NE(refused.find("lists no stranger.pub"), std::string::npos) << refused;
  // The keyed launcher's control endpoint speaks CURVE: its token alone gets no answer.
  const std::string token = gfdit::launch::control_token_for(control);
  ASSERT_EQ(token.size(), 64u);
  EXPECT_FALSE(gfdit::launch::control_request(control, {{"cmd", "graph"}}, 1s, token));
  auto g = gfdit::launch::ask_launcher(control, {{"cmd", "graph"}}, 5s);
  ASSERT_TRUE(g) << g.err().what;
  EXPECT_EQ((*g)["keys"], keys);
  launcher.signal(SIGINT);
  EXPECT_EQ(launcher.wait(10s), 0) << launcher.output();
}

// `gfdit bench serve` and `gfdit bag record` join a keyed serving graph with the operator key
// (`--keys DIR`): every request served, the workers' heartbeats recorded, no frame refused.
TEST(Keys, BenchServeAndBagRecordJoinAKeyedGraphWithTheOperatorKey) {
  temp_dir d;
  const std::string keys = d.path() + "/keys";
  const std::string core = std::string(GFDIT_SOURCE_DIR) + "/launch/graphs/serving-core.yaml";
  ASSERT_EQ(run({gfdit_exe, "keys", "make", keys, "--graph", core, "workers:=2"}, d.path() + "/make", 20s).first, 0);
  const auto f = d.write("keyed.yaml", "include: " + core + "\nsecurity: {keys: keys}\n");
  const std::string control = "tcp://127.0.0.1:" + std::to_string(gfdit::testing::free_tcp_port());
  process launcher({gfdit_exe, "launch", f, "workers:=2", "--control", control}, d.path() + "/launch.log");
  std::map<std::string, std::string> endpoints;  // node -> its bus endpoint, once all three run
  for (int i = 0; i < 300 && endpoints.size() < 3; ++i) {
    std::this_thread::sleep_for(100ms);
    auto g = gfdit::launch::ask_launcher(control, {{"cmd", "graph"}}, 2s);
    if (!g) continue;
    endpoints.clear();
    for (const auto& p : (*g)["processes"])
      if (p.value("pid", -1) > 0 && !p.value("endpoint", std::string()).empty())
        endpoints[p["node"].get<std::string>()] = p["endpoint"].get<std::string>();
  }
  ASSERT_EQ(endpoints.size(), 3u) << launcher.output();
  ASSERT_TRUE(launcher.wait_for_output("(keyed: CurveZMQ)")) << launcher.output();

  const std::string workload = std::string(GFDIT_SOURCE_DIR) + "/launch/workloads/live-demo.yaml";
  auto [s1, served] =
      run({gfdit_exe, "bench", "serve", "--workload", workload, "--connect", "control=" + endpoints["control"],
           "--requests", "10", "--gpus", "2", "--speedup", "200", "--keys", keys},
          d.path() + "/serve", 120s);
  EXPECT_EQ(s1, 0) << served;
  EXPECT_TRUE(std::regex_search(served, std::regex("done +10\n"))) << served;

  std::vector<std::string> record = {gfdit_exe,    "bag", "record", d.path() + "/keyed.bag",
                                     "--duration", "1.5", "--keys", keys};
  for (const auto& [node, ep] : endpoints) record.insert(record.end(), {"--peer", node + "=" + ep});
  auto [s2, recorded] = run(record, d.path() + "/record", 60s);
  EXPECT_EQ(s2, 0) << recorded;
  EXPECT_NE(recorded.find("operator~bag-recorder: joining the graph"), std::string::npos) << recorded;
  auto [s3, info] = run({gfdit_exe, "bag", "info", d.path() + "/keyed.bag"}, d.path() + "/info", 20s);
  EXPECT_EQ(s3, 0) << info;
  EXPECT_TRUE(std::regex_search(info, std::regex("messages: +[1-9]"))) << info;

  // A key of another folder is refused before anything joins.
  ASSERT_EQ(run({gfdit_exe, "keys", "make", d.path() + "/other", "stranger"}, d.path() + "/make2", 20s).first, 0);
  auto [s4, refused] = run({gfdit_exe, "bench", "serve", "--workload", workload, "--connect",
                            "control=" + endpoints["control"], "--keys", keys},
                           d.path() + "/refused", 20s, {{"GFDIT_KEY", d.path() + "/other/stranger.key"}});
  EXPECT_EQ(s4, 2) << refused;
  EXPECT_NE(refused.find("lists no stranger.pub"), std::string::npos) << refused;
  launcher.signal(SIGINT);
  EXPECT_EQ(launcher.wait(20s), 0) << launcher.output();
  const std::string log = launcher.output();
  EXPECT_EQ(log.find("refused"), std::string::npos) << log;
  EXPECT_EQ(log.find("dropped a frame"), std::string::npos) << log;
}

TEST(Keys, TcpBeyondLoopbackNeedsKeysOrInsecure) {
  temp_dir d;
  const std::string port = std::to_string(gfdit::testing::free_tcp_port());
  const std::string graph = "graph: open\nprocesses:\n  - name: a\n    bind: 0.0.0.0\n    port: " + port +
                            "\n    actors: [{type: example.ponger, name: a}]\n";
  const auto open = d.write("open.yaml", graph);
  auto [s1, out1] = run({gfdit_exe, "node", open, "--process", "a"}, d.path() + "/open", 20s);
  EXPECT_EQ(s1, 2) << out1;
  EXPECT_NE(
      out1.find("open.yaml:3:5: process 'a' would bind tcp://0.0.0.0:" + port + ", beyond loopback, without keys"),
      std::string::npos)
      << out1;

  const auto insecure = d.write("insecure.yaml", graph + "security: {insecure: true}\n");
  process p({gfdit_exe, "node", insecure, "--process", "a"}, d.path() + "/insecure");
  EXPECT_TRUE(p.wait_for_output("up on tcp://0.0.0.0:" + port)) << p.output();
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait(10s), 0) << p.output();

  ASSERT_EQ(run({gfdit_exe, "keys", "make", d.path() + "/keys", "a"}, d.path() + "/make", 20s).first, 0);
  const auto keyed = d.write("keyed.yaml", graph + "security: {keys: keys}\n");
  process k({gfdit_exe, "node", keyed, "--process", "a"}, d.path() + "/keyed");
  EXPECT_TRUE(k.wait_for_output("(keyed: CurveZMQ)")) << k.output();
  k.signal(SIGTERM);
  EXPECT_EQ(k.wait(10s), 0) << k.output();
}

// The port is in a world-readable announcement; without the 0600 token nothing is answered.
TEST(Control, TheLaunchersEndpointRefusesAClientWithoutItsToken) {
  temp_dir d;
  const std::string control = "tcp://127.0.0.1:" + std::to_string(gfdit::testing::free_tcp_port());
  process launcher({gfdit_exe, "launch", ping_pong, "count:=100000", "--control", control}, d.path() + "/launch.log");
  ASSERT_TRUE(launcher.wait_for_output("pong 3 after")) << launcher.output();
  for (const auto* cmd : {"stop", "graph", "actors"}) {
    auto r = gfdit::launch::control_request(control, {{"cmd", cmd}}, 5s);
    ASSERT_FALSE(r) << cmd;
    EXPECT_NE(r.err().what.find("not authorized"), std::string::npos) << r.err().what;
    auto wrong = gfdit::launch::control_request(control, {{"cmd", cmd}}, 5s, std::string(64, '0'));
    ASSERT_FALSE(wrong) << cmd;
  }
  EXPECT_EQ(launcher.wait(500ms), -1000) << "stopped by a client without the token: " << launcher.output();
  const std::string token = gfdit::launch::control_token_for(control);
  ASSERT_EQ(token.size(), 64u);
  auto g = gfdit::launch::control_request(control, {{"cmd", "graph"}}, 5s, token);
  ASSERT_TRUE(g) << g.err().what;
  EXPECT_EQ((*g)["graph"], "ping_pong");
  ASSERT_TRUE(gfdit::launch::control_request(control, {{"cmd", "stop"}}, 5s, token));
  EXPECT_EQ(launcher.wait(10s), 0) << launcher.output();
}

// `gfdit node --control` serves as the launcher does: a 0600 token, found by this user's tools
// through the node's announcement, and nothing answered without it; the files go with the node.
TEST(Control, ANodesEndpointRefusesAClientWithoutItsToken) {
  temp_dir d;
  const std::string control = "tcp://127.0.0.1:" + std::to_string(gfdit::testing::free_tcp_port());
  const auto f =
      d.write("one.yaml", "graph: one\nport_base: " + std::to_string(gfdit::testing::free_tcp_port()) +
                              "\nprocesses:\n  - {name: ponger, actors: [{type: example.ponger, name: ponger}]}\n");
  process n({gfdit_exe, "node", f, "--process", "ponger", "--control", control}, d.path() + "/node.log");
  ASSERT_TRUE(n.wait_for_output("of graph 'one' up on")) << n.output();
  for (const auto* cmd : {"actors", "ping"}) {
    auto r = gfdit::launch::control_request(control, {{"cmd", cmd}}, 5s);
    ASSERT_FALSE(r) << cmd;
    EXPECT_NE(r.err().what.find("not authorized"), std::string::npos) << r.err().what;
  }
  const std::string token = gfdit::launch::control_token_for(control);
  ASSERT_EQ(token.size(), 64u);
  auto a = gfdit::launch::control_request(control, {{"cmd", "actors"}}, 5s, token);
  ASSERT_TRUE(a) << a.err().what;
  EXPECT_EQ((*a)["node"], "ponger");
  n.signal(SIGTERM);
  EXPECT_EQ(n.wait(10s), 0) << n.output();
  EXPECT_EQ(gfdit::launch::control_token_for(control), "");
}

}  // namespace
