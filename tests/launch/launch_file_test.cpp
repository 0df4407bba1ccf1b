// Launch files: substitution, replicas, includes, and one precise error (file:line:column)
// per kind of mistake. Also the Slurm and endpoint arithmetic.
#include <gtest/gtest.h>

#include <chrono>
#include <map>

#include "actors/runtime/context.hpp"
#include "actors/runtime/registry.hpp"
#include "launch/lib/endpoints.hpp"
#include "launch/lib/launch_file.hpp"
#include "launch/lib/node_metrics.hpp"
#include "launch/lib/top_view.hpp"
#include "tests/launch/launch_test_support.hpp"

namespace {

using namespace gfdit;
using namespace gfdit::launch;
using gfdit::testing::temp_dir;

class typed_actor final : public actor {
 public:
  result<void> on_configure(context& ctx) override {
    auto& p = ctx.params();
    if (auto r =
            p.declare<std::int64_t>("count", 1, "", [](const std::int64_t& v) { return v >= 0 ? "" : "must be >= 0"; });
        !r)
      return r;
    if (auto r = p.declare<double>("rate", 1.0); !r) return r;
    if (auto r = p.declare<std::string>("label", "x"); !r) return r;
    return p.declare<bool>("enabled", true);
  }
};
GFDIT_REGISTER_ACTOR(typed_actor, "ltest.typed");

std::string error_of(const std::string& path, std::vector<std::string> args = {}) {
  auto g = load_and_validate(path, args);
  return g ? std::string("(no error)") : g.err().what;
}

TEST(LaunchFile, ArgumentsIndexAndReplicasAreSubstituted) {
  temp_dir d;
  const auto f = d.write("g.yaml", R"Y(graph: g
args:
  workers: 2
  label: {default: hello, description: a label}
parameters:
  rate: 2.5
processes:
  - name: worker
    replicas: $(arg workers)
    env: {RANK: "$(index)"}
    actors:
      - type: ltest.typed
        name: w$(index)
        parameters: {count: $(index), label: "$(arg label)-$(index)"}
        remaps: {in: in_$(index)}
)Y");
  auto g = load_and_validate(f, {"workers:=3"});
  ASSERT_TRUE(g) << g.err().what;
  ASSERT_EQ(g->instances.size(), 3u);
  EXPECT_EQ(g->instances[2].node, "worker-2");
  EXPECT_EQ(g->instances[2].env.at("RANK"), "2");
  const auto& a = g->instances[2].actors.at(0);
  EXPECT_EQ(a.name, "w2");
  EXPECT_EQ(a.params["count"], 2);
  EXPECT_EQ(a.params["label"], "hello-2");
  EXPECT_EQ(a.params["rate"], 2.5);  // the global parameter reached the actor that declares it
  EXPECT_FALSE(a.params.contains("enabled"));
  EXPECT_EQ(a.remaps.at("in"), "in_2");
}

TEST(LaunchFile, UnknownActorTypeNamesFileLineColumn) {
  temp_dir d;
  const auto f = d.write("bad.yaml",
                         "graph: g\nprocesses:\n  - name: p\n    actors:\n      - type: nope.actor\n        name: a\n");
  EXPECT_NE(error_of(f).find("bad.yaml:5:15: unknown actor type 'nope.actor'"), std::string::npos) << error_of(f);
}

TEST(LaunchFile, DuplicateActorNameNamesBothPlaces) {
  temp_dir d;
  const auto f = d.write("dup.yaml", R"Y(graph: g
processes:
  - name: p
    actors:
      - {type: ltest.typed, name: a}
  - name: q
    actors:
      - {type: ltest.typed, name: a}
)Y");
  EXPECT_NE(error_of(f).find("dup.yaml:8:35: duplicate actor name 'a' (first at "), std::string::npos) << error_of(f);
  EXPECT_NE(error_of(f).find("dup.yaml:5:35)"), std::string::npos) << error_of(f);
}

TEST(LaunchFile, ParameterOfTheWrongTypeIsCheckedAgainstTheDeclaration) {
  temp_dir d;
  const auto f = d.write("type.yaml", R"Y(graph: g
processes:
  - name: p
    actors:
      - type: ltest.typed
        name: a
        parameters:
          count: ten
)Y");
  EXPECT_NE(
      error_of(f).find(
          "type.yaml:8:18: parameter 'count' of actor 'a' must be int (declared by ltest.typed), got string \"ten\""),
      std::string::npos)
      << error_of(f);
}

TEST(LaunchFile, ParameterTheActorDoesNotDeclareOrRejects) {
  temp_dir d;
  const auto f = d.write("undeclared.yaml", R"Y(graph: g
processes:
  - name: p
    actors:
      - type: ltest.typed
        name: a
        parameters: {colour: red}
)Y");
  EXPECT_NE(error_of(f).find("undeclared.yaml:7:30: actor 'a' (type ltest.typed) declares no parameter 'colour' "
                             "(declared: count, enabled, label, rate)"),
            std::string::npos)
      << error_of(f);
  const auto v = d.write("invalid.yaml", R"Y(graph: g
processes:
  - name: p
    actors:
      - type: ltest.typed
        name: a
        parameters: {count: -3}
)Y");
  EXPECT_NE(error_of(v).find("invalid.yaml:7:29: actor 'a' (type ltest.typed): parameter 'count' = -3: must be >= 0"),
            std::string::npos)
      << error_of(v);
}

TEST(LaunchFile, UnknownKeyListsTheExpectedOnes) {
  temp_dir d;
  const auto f = d.write("key.yaml", "graph: g\nprocesses:\n  - name: p\n    replica: 2\n    actors: []\n");
  EXPECT_NE(error_of(f).find("key.yaml:4:5: unknown key 'replica' in process (expected one of: name, host, bind, "
                             "port, env, replicas, restart, exit_on_done, essential, threads, actors)"),
            std::string::npos)
      << error_of(f);
  const auto t = d.write("top.yaml", "graph: g\nprocess: []\n");
  EXPECT_NE(error_of(t).find("top.yaml:2:1: unknown key 'process' in the launch file"), std::string::npos)
      << error_of(t);
}

TEST(LaunchFile, CyclicIncludeShowsTheChain) {
  temp_dir d;
  d.write("a.yaml", "graph: g\ninclude: [b.yaml]\n");
  d.write("b.yaml", "include:\n  - c.yaml\n");
  d.write("c.yaml", "include: a.yaml\n");
  const auto e = error_of(d.path() + "/a.yaml");
  EXPECT_NE(e.find("c.yaml:1:10: cyclic include: "), std::string::npos) << e;
  EXPECT_NE(e.find("a.yaml -> "), std::string::npos) << e;
  EXPECT_NE(e.find("b.yaml -> "), std::string::npos) << e;
  EXPECT_NE(e.find("c.yaml -> "), std::string::npos) << e;
}

TEST(LaunchFile, IncludesMergeProcessesAndArguments) {
  temp_dir d;
  d.write("part.yaml",
          "args: {n: 1}\nprocesses:\n  - name: extra\n    actors: [{type: ltest.typed, name: e, parameters: {count: "
          "$(arg n)}}]\n");
  const auto f =
      d.write("main.yaml", "graph: g\nargs: {n: 5}\ninclude: part.yaml\nprocesses:\n  - name: main\n    actors: []\n");
  auto g = load_and_validate(f, {});
  ASSERT_TRUE(g) << g.err().what;
  ASSERT_EQ(g->instances.size(), 2u);
  EXPECT_EQ(g->instances[0].node, "extra");
  EXPECT_EQ(g->instances[0].actors[0].params["count"], 5);  // the including file's default won
}

// The including file's graph name and global parameters win over an included file's (issue 22:
// serving.yaml ran as graph 'serving-core', the name of the file it includes).
TEST(LaunchFile, TheIncludingFilesNameAndParametersWin) {
  temp_dir d;
  d.write("inner.yaml",
          "graph: inner\nparameters: {speed: 1, only_inner: 5}\nprocesses:\n  - name: p\n    actors: []\n");
  const auto f = d.write("outer.yaml", "graph: outer\ninclude: inner.yaml\nparameters: {speed: 2}\n");
  auto g = load_and_validate(f, {});
  ASSERT_TRUE(g) << g.err().what;
  EXPECT_EQ(g->name, "outer");
  EXPECT_EQ(g->parameters["speed"], 2);
  EXPECT_EQ(g->parameters["only_inner"], 5);
  const auto unnamed = d.write("unnamed.yaml", "include: inner.yaml\n");
  auto u = load_and_validate(unnamed, {});
  ASSERT_TRUE(u) << u.err().what;
  EXPECT_EQ(u->name, "inner") << "an includer without a name keeps the included one";
}

TEST(LaunchFile, ArgumentErrors) {
  temp_dir d;
  const auto f = d.write("args.yaml", "graph: g\nargs:\n  needed:\nprocesses:\n  - name: p\n    host: $(arg other)\n");
  const auto e = error_of(f, {"typo:=1"});
  EXPECT_NE(e.find("args.yaml:3:3: argument 'needed' has no default: pass needed:=VALUE"), std::string::npos) << e;
  EXPECT_NE(e.find("args.yaml:6:11: $(arg other): no argument 'other' is declared"), std::string::npos) << e;
  EXPECT_NE(e.find("command line: unknown argument 'typo' (the graph declares: needed)"), std::string::npos) << e;
}

// Limits (issue 27): each refused at once, with file:line, where it used to hang `gfdit check`.
TEST(LaunchFile, HostileFilesHitLimitsFast) {
  temp_dir d;
  const auto t0 = std::chrono::steady_clock::now();
  const auto many = d.write("many.yaml", "graph: g\nprocesses:\n  - name: p\n    replicas: 100000\n    actors: []\n");
  auto e = error_of(many);
  EXPECT_NE(e.find("many.yaml:4:15: 'replicas' must be at most 1024, got 100000"), std::string::npos) << e;

  // Nine levels of aliases, each ten copies of the one before: 10^9 values once expanded.
  std::string bomb = "graph: g\nparameters:\n  l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 9; ++i) {
    bomb += "  l" + std::to_string(i) + ": &l" + std::to_string(i) + " [";
    for (int k = 0; k < 10; ++k) bomb += std::string(k ? ", " : "") + "*l" + std::to_string(i - 1);
    bomb += "]\n";
  }
  e = error_of(d.write("bomb.yaml", bomb + "processes: []\n"));
  EXPECT_NE(e.find("bomb.yaml:"), std::string::npos) << e;
  EXPECT_NE(e.find("expands to more than 100000 values"), std::string::npos) << e;

  d.write("deep0.yaml", "graph: g\n");
  for (int i = 1; i <= 20; ++i)
    d.write("deep" + std::to_string(i) + ".yaml", "include: deep" + std::to_string(i - 1) + ".yaml\n");
  e = error_of(d.path() + "/deep20.yaml");
  EXPECT_NE(e.find("includes nest more than 16 files deep"), std::string::npos) << e;

  // Found by fuzz/fuzz_launch_file: an alias inside its own anchor ([x, *a] under &a) is a
  // cycle, and building the value recursed until the stack overflowed; so did a deep nesting.
  e = error_of(d.write("cycle.yaml", "graph: g\nparameters:\n  p: &a [x, *a]\nprocesses: []\n"));
  EXPECT_NE(e.find("'p' nests more than 64 levels deep"), std::string::npos) << e.substr(0, 300);
  e = error_of(d.write("nested.yaml", "graph: g\nparameters:\n  p: " + std::string(100, '[') + std::string(100, ']') +
                                          "\nprocesses: []\n"));
  EXPECT_NE(e.find("nested.yaml:3:"), std::string::npos) << e.substr(0, 300);
  EXPECT_NE(e.find("'p' nests more than 64 levels deep"), std::string::npos) << e.substr(0, 300);

  e = error_of(d.write("big.yaml", "graph: g\n# " + std::string(2u << 20, 'x') + "\n"));
  EXPECT_NE(e.find("has 2097164 bytes (at most 1048576)"), std::string::npos) << e;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10)) << "limits must fail fast";
}

// Found by fuzz/fuzz_launch_file: yaml-cpp does not check the encoding, and a value holding
// bytes that are not UTF-8 (a Latin-1 file, or such an environment variable) made to_flat_yaml()
// and every other JSON dump of the graph throw. They are refused where they are written.
TEST(LaunchFile, TextThatIsNotUtf8IsRefusedWhereItIsWritten) {
  temp_dir d;
  auto g = load(d.write("utf8.yaml", "graph: g\nparameters: {label: caf\xc3\xa9 \xe7\x8c\xab}\nprocesses: []\n"), {});
  ASSERT_TRUE(g) << g.err().what;
  EXPECT_TRUE(to_flat_yaml(*g));

  g = load(d.write("latin1.yaml", "graph: g\nparameters:\n  label: caf\xe9\nprocesses: []\n"), {});
  ASSERT_FALSE(g);
  EXPECT_NE(g.err().what.find("latin1.yaml:3:13: not UTF-8 text"), std::string::npos) << g.err().what;

  ::setenv("GFDIT_TEST_LATIN1", "caf\xe9", 1);
  g = load(d.write("env.yaml", "graph: g\nparameters: {label: $(env GFDIT_TEST_LATIN1)}\nprocesses: []\n"), {});
  ::unsetenv("GFDIT_TEST_LATIN1");
  ASSERT_FALSE(g);
  EXPECT_NE(g.err().what.find("$(env GFDIT_TEST_LATIN1): the variable's value is not UTF-8 text"), std::string::npos)
      << g.err().what;

  // A UTF-8 file whose quoted escapes make a byte that is not (fuzz_launch_file, in CI).
  for (const char* text : {"graph: g\nparameters: {label: \"caf\\xe9\"}\nprocesses: []\n",
                           "graph: g\nparameters: {\"caf\\xe9\": 1}\nprocesses: []\n"}) {
    g = load(d.write("escape.yaml", text), {});
    if (g) {
      auto flat = to_flat_yaml(*g);  // an escape yaml-cpp turned into UTF-8 is fine too
      EXPECT_TRUE(flat);
      continue;
    }
    EXPECT_NE(g.err().what.find("escape.yaml:2:"), std::string::npos) << g.err().what;
    EXPECT_NE(g.err().what.find("not UTF-8 text"), std::string::npos) << g.err().what;
  }
}

// Whether the graph survives a process giving up: only a process of serving workers may go
// unless the file says otherwise; the flat form keeps the answer.
TEST(LaunchFile, EssentialDefaultsByActorKindAndCanBeSaid) {
  temp_dir d;
  auto g = load(d.write("ess.yaml", R"(graph: g
processes:
  - name: control
    actors: [{type: gfdit.admission, name: admission}]
  - name: worker
    replicas: 2
    actors: [{type: gfdit.worker, name: worker-$(index)}]
  - name: mixed
    actors: [{type: gfdit.worker, name: w9}, {type: ltest.typed, name: t}]
  - name: spare
    essential: false
    actors: [{type: ltest.typed, name: t2}]
  - name: must
    essential: true
    actors: [{type: gfdit.worker, name: w8}]
)"),
                {});
  ASSERT_TRUE(g) << g.err().what;
  std::map<std::string, bool> essential;
  for (const auto& i : g->instances) essential[i.node] = i.essential;
  EXPECT_EQ(essential, (std::map<std::string, bool>{{"control", true},
                                                    {"worker-0", false},
                                                    {"worker-1", false},
                                                    {"mixed", true},
                                                    {"spare", false},
                                                    {"must", true}}));
  auto flat = to_flat_yaml(*g);
  ASSERT_TRUE(flat);
  auto again = load(d.write("flat.yaml", *flat), {});
  ASSERT_TRUE(again) << again.err().what;
  for (const auto& i : again->instances) EXPECT_EQ(i.essential, essential[i.node]) << i.node;
  EXPECT_NE(error_of(d.write("bad.yaml", "graph: g\nprocesses:\n  - {name: p, essential: maybe, actors: []}\n"))
                .find("essential"),
            std::string::npos);
}

TEST(LaunchFile, SyntaxErrorAndBadFieldValues) {
  temp_dir d;
  const auto s = d.write("syntax.yaml", "graph: g\nprocesses: [\n");
  EXPECT_NE(error_of(s).find("syntax.yaml:"), std::string::npos);
  EXPECT_NE(error_of(s).find("YAML syntax error"), std::string::npos) << error_of(s);
  const auto v = d.write("values.yaml",
                         "graph: g\nprocesses:\n  - name: p\n    replicas: two\n  - name: q\n    restart: sometimes\n");
  const auto e = error_of(v);
  EXPECT_NE(e.find("values.yaml:4:15: 'replicas' must be an integer, got 'two'"), std::string::npos) << e;
  EXPECT_NE(e.find("values.yaml:6:14: restart policy must be 'never' or 'on-failure', got 'sometimes'"),
            std::string::npos)
      << e;
}

TEST(Endpoints, SlurmNodelistAndTasks) {
  auto n = expand_nodelist("gpu[01-03,07],cpu5,x[9-10]");
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, (std::vector<std::string>{"gpu01", "gpu02", "gpu03", "gpu07", "cpu5", "x9", "x10"}));
  auto t = expand_tasks_per_node("4(x2),2");
  ASSERT_TRUE(t);
  EXPECT_EQ(*t, (std::vector<int>{4, 4, 2}));
  auto h = slurm_task_hosts("a[1-2]", "2(x2)", 3);
  ASSERT_TRUE(h);
  EXPECT_EQ(*h, (std::vector<std::string>{"a1", "a1", "a2"}));
  EXPECT_FALSE(expand_nodelist("a[1-"));
}

TEST(Endpoints, TcpPortsFollowTheFileAndBindTheNamedAddress) {
  temp_dir d;
  const auto f = d.write("tcp.yaml", R"Y(graph: g
port_base: 9100
processes:
  - {name: a, host: 10.0.0.1}
  - {name: w, host: 10.0.0.2, replicas: 2}
  - {name: z, host: node7, bind: 0.0.0.0, port: 9500}
)Y");
  auto g = load(f, {});
  ASSERT_TRUE(g) << g.err().what;
  auto p = plan_endpoints(*g, wiring::tcp);
  ASSERT_TRUE(p);
  ASSERT_EQ(p->size(), 4u);
  EXPECT_EQ((*p)[0].bind, "tcp://10.0.0.1:9100");
  EXPECT_EQ((*p)[2].connect, "tcp://10.0.0.2:9102");
  EXPECT_EQ((*p)[3].connect, "tcp://node7:9500");
  EXPECT_EQ((*p)[3].bind, "tcp://0.0.0.0:9500");
  auto ipc = plan_endpoints(*g, wiring::ipc, "/tmp/x");
  ASSERT_TRUE(ipc);
  EXPECT_EQ((*ipc)[1].bind, "ipc:///tmp/x/w-0.sock");
  auto addr = resolve_address("localhost");
  ASSERT_TRUE(addr);
  EXPECT_EQ(*addr, "127.0.0.1");
  auto v6 = resolve_address("::1");  // an IPv6 address goes into a tcp:// endpoint in brackets
  ASSERT_TRUE(v6) << v6.err().what;
  EXPECT_EQ(*v6, "[::1]");
}

}  // namespace

namespace {

// What `gfdit replay --replace` relies on: a loaded (and edited) graph written out flat loads
// back as the same graph, each instance a process of its own, every value of the same type.
TEST(LaunchFile, FlatYamlLoadsBackAsTheSameGraph) {
  temp_dir d;
  d.write("inc.yaml", "graph: inc\nprocesses:\n  - {name: solo, actors: [{type: ltest.typed, name: s}]}\n");
  const auto f = d.write("g.yaml", R"Y(graph: g
include: [inc.yaml]
port_base: 7700
args:
  workers: 2
parameters:
  rate: 2.5
processes:
  - name: worker
    replicas: $(arg workers)
    host: 10.0.0.$(index)
    port: 7800
    threads: 3
    exit_on_done: true
    restart: {policy: on-failure, max: 2, backoff_ms: 100}
    env: {RANK: "$(index)", DIR: $(dirname)}
    actors:
      - type: ltest.typed
        name: w$(index)
        parameters: {count: $(index), label: "007", enabled: false, rate: 1.0}
        remaps: {in: in_$(index)}
)Y");
  auto g = load(f, {});
  ASSERT_TRUE(g) << g.err().what;
  g->instances[2].actors[0].params["label"] = "edited";  // worker-1 (the include comes first)
  auto flat = to_flat_yaml(*g);
  ASSERT_TRUE(flat) << flat.err().what;
  const auto back = load(d.write("flat.yaml", *flat), {});
  ASSERT_TRUE(back) << back.err().what << "\n" << *flat;
  EXPECT_EQ(back->name, g->name);
  EXPECT_EQ(back->port_base, 7700);
  EXPECT_EQ(back->parameters, g->parameters);
  ASSERT_EQ(back->instances.size(), g->instances.size());
  for (std::size_t i = 0; i < g->instances.size(); ++i) {
    const auto &a = g->instances[i], &b = back->instances[i];
    EXPECT_EQ(b.node, a.node);
    EXPECT_EQ(b.process, a.node);  // worker-1 is a process of its own now
    EXPECT_EQ(b.replicas, 1);
    EXPECT_EQ(b.host, a.host);
    EXPECT_EQ(b.port, a.port);
    EXPECT_EQ(b.threads, a.threads);
    EXPECT_EQ(b.exit_on_done, a.exit_on_done);
    EXPECT_EQ(b.restart.policy, a.restart.policy);
    EXPECT_EQ(b.restart.max, a.restart.max);
    EXPECT_EQ(b.restart.backoff_ms, a.restart.backoff_ms);
    EXPECT_EQ(b.env, a.env);
    ASSERT_EQ(b.actors.size(), a.actors.size());
    for (std::size_t k = 0; k < a.actors.size(); ++k) {
      EXPECT_EQ(b.actors[k].type, a.actors[k].type);
      EXPECT_EQ(b.actors[k].name, a.actors[k].name);
      EXPECT_EQ(b.actors[k].params, a.actors[k].params);  // "007" a string, 1.0 a double, false a bool
      EXPECT_EQ(b.actors[k].remaps, a.actors[k].remaps);
    }
  }
  EXPECT_EQ(back->instances[2].actors[0].params["label"], "edited");
  EXPECT_TRUE(back->instances[2].actors[0].params["rate"].is_number_float());

  // A value that would read as a substitution is refused, not silently re-substituted.
  g->instances[0].actors[0].params["label"] = "$(arg x)";
  auto bad = to_flat_yaml(*g);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.err().what.find("solo.s.parameters.label holds '$('"), std::string::npos) << bad.err().what;
}

TEST(LaunchFile, MetricsPortsAreCheckedAndCarried) {
  temp_dir d;
  auto g = load(d.write("m.yaml", "graph: g\nmetrics: {port_base: 9300, bind: 0.0.0.0}\nprocesses: []\n"), {});
  ASSERT_TRUE(g) << g.err().what;
  EXPECT_EQ(g->metrics_port_base, 9300);
  EXPECT_EQ(g->metrics_bind, "0.0.0.0");
  auto off = load(d.write("off.yaml", "graph: g\nprocesses: []\n"), {});
  ASSERT_TRUE(off);
  EXPECT_EQ(off->metrics_port_base, 0);
  EXPECT_EQ(off->metrics_bind, "127.0.0.1");  // loopback unless told
  EXPECT_NE(error_of(d.write("k.yaml", "graph: g\nmetrics: {port: 9300}\nprocesses: []\n")).find("unknown key 'port'"),
            std::string::npos);
  EXPECT_NE(error_of(d.write("p.yaml", "graph: g\nmetrics: {port_base: 70000}\nprocesses: []\n")).find("TCP port"),
            std::string::npos);
  EXPECT_NE(error_of(d.write("s.yaml", "graph: g\nmetrics: 9300\nprocesses: []\n")).find("'metrics' must be a map"),
            std::string::npos);
}

// security: {keys, insecure}: keys relative to the file, an empty value meaning "not keyed", bad
// keys and values named where they are written, and carried through to_flat_yaml.
TEST(LaunchFile, SecurityIsCheckedAndCarried) {
  temp_dir d;
  auto g = load(d.write("s.yaml", "graph: g\nargs: {keys: k}\nsecurity: {keys: $(arg keys)}\nprocesses: []\n"), {});
  ASSERT_TRUE(g) << g.err().what;
  EXPECT_EQ(g->security.keys, d.path() + "/k");
  EXPECT_FALSE(g->security.insecure);
  auto flat = to_flat_yaml(*g);
  ASSERT_TRUE(flat);
  auto back = load(d.write("flat.yaml", *flat), {});
  ASSERT_TRUE(back) << back.err().what;
  EXPECT_EQ(back->security.keys, g->security.keys);
  auto none = load(d.path() + "/s.yaml", {"keys:="});
  ASSERT_TRUE(none);
  EXPECT_EQ(none->security.keys, "");
  auto open = load(d.write("i.yaml", "graph: g\nsecurity: {insecure: true}\nprocesses: []\n"), {});
  ASSERT_TRUE(open);
  EXPECT_TRUE(open->security.insecure);
  EXPECT_NE(error_of(d.write("k.yaml", "graph: g\nsecurity: {key: k}\nprocesses: []\n"))
                .find("k.yaml:2:12: unknown key 'key' in security"),
            std::string::npos);
  EXPECT_NE(error_of(d.write("b.yaml", "graph: g\nsecurity: {insecure: maybe}\nprocesses: []\n"))
                .find("'security.insecure' must be true or false"),
            std::string::npos);
}

TEST(LaunchFile, NodeMetricsAreEscapedPrometheusTextWithTheActorsOwn) {
  actor_info a;
  a.name = "we\"ird";
  a.state = lifecycle_state::active;
  a.received = 7;
  a.metrics = "# TYPE my_total counter\nmy_total 3\n";
  bus_stats b;
  b.sent = 5;
  const auto t = node_metrics_text("n1", {a}, b, 2);
  EXPECT_NE(t.find("gfdit_node_restarts_total{node=\"n1\"} 2\n"), std::string::npos) << t;
  EXPECT_NE(t.find("gfdit_actor_received_total{node=\"n1\",actor=\"we\\\"ird\"} 7\n"), std::string::npos) << t;
  EXPECT_NE(t.find("gfdit_actor_active{node=\"n1\",actor=\"we\\\"ird\",state=\"active\"} 1\n"), std::string::npos) << t;
  EXPECT_NE(t.find("gfdit_bus_frames_total{node=\"n1\",direction=\"sent\"} 5\n"), std::string::npos) << t;
  EXPECT_NE(t.find("# TYPE gfdit_bus_failed_total counter\n"), std::string::npos) << t;
  EXPECT_NE(t.find("my_total 3\n"), std::string::npos) << t;
}

TEST(LaunchFile, TopDrawsWorkersAndRequestsWithProgressBars) {
  msg::cluster_state s;
  s.running = 1;
  s.waiting = 2;
  s.groups = 1;
  s.workers = {{0, true, true, 0xabcd}, {1, true, false, 0}, {2, false, false, 0}};
  s.requests = {{7, "fashion-dit", "bag", "denoise", 10, 20, true, 2, 1},
                {8, "fashion-dit", "coat", "prepare", 0, 20, false, 0, 0}};
  const auto t = render_top(s, "g");
  EXPECT_NE(t.find("gfdit top: g  workers 1/2 busy  groups 1  requests 1 running, 2 waiting"), std::string::npos) << t;
  EXPECT_NE(t.find("0:busy/abcd 1:idle 2:dead"), std::string::npos) << t;
  EXPECT_NE(t.find("[###########...........]   10/20"), std::string::npos) << t;  // half of 22 cells
  EXPECT_NE(t.find("waiting"), std::string::npos) << t;
  EXPECT_NE(t.find("... 1 more"), std::string::npos) << t;  // three live, two shown
}

}  // namespace
