// gfdit: the command line of the runtime.
//   gfdit launch g.yaml [name:=value ...]      every process of a graph on this host
//   gfdit node g.yaml --process P [--index I]  one process (other hosts, Slurm)
//   gfdit check g.yaml [name:=value ...]       validate a launch file
//   gfdit keys make DIR NAME... | --graph g.yaml, gfdit keys list DIR   CurveZMQ key pairs
//   gfdit actor types|list, topic list|echo|hz, param get|set, msg list|show
//   gfdit generate --model M --prompt P --out F.png   pictures from a model, no graph
//   gfdit train --model M --steps N --batch B --degree D --out DIR   train a DiT on the CPU, data parallel
//   gfdit profile --model M --device gpu --out P.yaml  stage costs measured, as a cost profile
//   gfdit sim ..., gfdit bag ..., gfdit replay ...  (when those modules are built)
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "launch/cli/generate.hpp"
#include "launch/cli/train.hpp"
#include "launch/lib/commands.hpp"

#if defined(GFDIT_WITH_SIM) && __has_include("actors/sim/sim_main.hpp")
#include "actors/sim/sim_main.hpp"
#define GFDIT_SIM_READY 1
#endif
#if defined(GFDIT_WITH_BAG) && __has_include("launch/cli/bag_main.hpp")
#include "launch/cli/bag_main.hpp"
#define GFDIT_BAG_READY 1
namespace gfdit::bag {}
#endif
#if defined(GFDIT_WITH_SERVING_ACTORS) && __has_include("actors/serving/serving_actor_types.hpp")
#include "actors/client/load_client.hpp"
#include "actors/serving/serving_actor_types.hpp"
#include "launch/cli/profile.hpp"
#define GFDIT_SERVE_READY 1
#endif
#include "actors/runtime/plugin_loader.hpp"
#ifdef GFDIT_WITH_TRAIN_ACTORS
#include "actors/train/train_actor_types.hpp"
#endif
#if defined(GFDIT_WITH_SERVING_REPLAY) && __has_include("actors/serving/serving_replay.hpp")
#include "actors/serving/serving_replay.hpp"
#define GFDIT_SERVING_REPLAY_READY 1
#endif

namespace {

// Modules with their own command lines get the rest of argv untouched.
int pass_through(const std::string& name, int argc, char** argv) {
  std::vector<std::string> args = {"gfdit " + name};
  for (int i = 2; i < argc; ++i) args.emplace_back(argv[i]);
  std::vector<char*> v;
  for (auto& a : args) v.push_back(a.data());
  v.push_back(nullptr);
  const int n = static_cast<int>(args.size());
#ifdef GFDIT_SIM_READY
  if (name == "sim") {
    // Plugin policies (GFDIT_PLUGIN_PATH) register themselves when loaded.
    if (auto r = gfdit::load_plugins_from_env(); !r) {
      std::fprintf(stderr, "gfdit sim: %s\n", r.err().what.c_str());
      return 2;
    }
    return gfdit::sim::sim_main(n, v.data());
  }
#endif
#ifdef GFDIT_SERVE_READY
  if (name == "bench serve") return gfdit::serve_main(n, v.data());
  if (name == "profile") return gfdit::launch::profile_main(n, v.data());
#endif
#ifdef GFDIT_BAG_READY
  {
    using namespace gfdit;
    using namespace gfdit::bag;
    if (name == "bag") return bag_main(n, v.data());
    if (name == "replay") return replay_main(n, v.data());
  }
#endif
  (void)n;
  std::fprintf(stderr, "gfdit %s: this build does not include that module\n", name.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
#if defined(GFDIT_WITH_SERVING_ACTORS) && __has_include("actors/serving/serving_actor_types.hpp")
  (void)gfdit::serving_actor_types();  // keeps the library (and its registered types) linked
#endif
#ifdef GFDIT_WITH_TRAIN_ACTORS
  (void)gfdit::train_actor_types();
#endif
#ifdef GFDIT_SERVING_REPLAY_READY
  (void)gfdit::serving_replay_cores();  // the control plane's replayable cores
#endif
  if (argc >= 2 && !std::strcmp(argv[1], "generate")) {
    std::vector<char*> rest(argv + 1, argv + argc);  // "generate" becomes argv[0]
    return gfdit::launch::generate_main(static_cast<int>(rest.size()), rest.data());
  }
  if (argc >= 2 && !std::strcmp(argv[1], "train")) {
    std::vector<char*> rest(argv + 1, argv + argc);  // "train" becomes argv[0]
    return gfdit::launch::train_main(static_cast<int>(rest.size()), rest.data());
  }
  if (argc >= 2 && (!std::strcmp(argv[1], "sim") || !std::strcmp(argv[1], "bag") || !std::strcmp(argv[1], "replay") ||
                    !std::strcmp(argv[1], "profile")))
    return pass_through(argv[1], argc, argv);
  // gfdit bench serve --workload W.yaml --connect control=ENDPOINT: drive a running graph.
  if (argc >= 3 && !std::strcmp(argv[1], "bench") && !std::strcmp(argv[2], "serve")) {
    std::vector<char*> rest(argv + 1, argv + argc);  // "bench" becomes argv[0]
    return pass_through("bench serve", static_cast<int>(rest.size()), rest.data());
  }

  using namespace gfdit::launch;
  CLI::App app{"gfdit: launch, inspect and extend a gfdit graph"};
  app.require_subcommand(1);
  int status = 0;

  // launch
  launch_options lo;
  auto* launch = app.add_subcommand("launch", "run every process of a graph on this host");
  launch->add_option("file", lo.file, "launch file")->required();
  launch->add_option("args", lo.args, "argument overrides, name:=value");
  launch->add_option("--control", lo.control, "control endpoint (tcp on 127.0.0.1; port 0: any free one)");
  launch->add_option("--stop-timeout-ms", lo.stop_timeout_ms, "SIGTERM to SIGKILL grace at shutdown");
  launch->callback([&] { status = run_launch(lo); });

  // node
  node_run_options no;
  auto* node = app.add_subcommand("node", "run one process of a graph (another host, or under srun)");
  node->add_option("file", no.file, "launch file")->required();
  node->add_option("args", no.args, "argument overrides, name:=value");
  node->add_option("--process", no.process, "the process to run");
  node->add_option("--index", no.index, "which replica");
  node->add_flag("--slurm", no.slurm, "hosts from SLURM_NODELIST; without --process, the instance is SLURM_PROCID");
  node->add_option("--ipc-dir", no.ipc_dir, "wire over ipc in this folder (what gfdit launch passes)");
  node->add_option("--control", no.control, "serve the control protocol here (e.g. tcp://127.0.0.1:7700)");
  node->add_option("--peer-timeout-ms", no.peer_timeout_ms, "how long to wait for every other process");
  node->callback([&] {
    if (no.process.empty() && !no.slurm) {
      std::fprintf(stderr, "gfdit node: pass --process NAME (or --slurm under srun)\n");
      status = 2;
      return;
    }
    status = run_node(no);
  });

  // keys
  std::string keys_dir, keys_graph;
  std::vector<std::string> keys_names;
  auto* keys = app.add_subcommand("keys", "CurveZMQ key pairs for a keyed graph (security: {keys: DIR})");
  keys->require_subcommand(1);
  auto* kmake = keys->add_subcommand("make", "make key pairs: DIR/NAME.key (secret, 0600) and DIR/NAME.pub");
  kmake->add_option("dir", keys_dir, "key folder (created 0700 when missing)")->required();
  kmake->add_option("names", keys_names, "one pair per name; with --graph, name:=value arguments of the graph");
  kmake->add_option("--graph", keys_graph, "a pair for every process instance of this launch file, and 'operator'");
  kmake->callback([&] {
    std::vector<std::string> names, args;
    for (const auto& n : keys_names) (n.find(":=") == std::string::npos ? names : args).push_back(n);
    if (names.empty() && keys_graph.empty()) {
      std::fprintf(stderr, "gfdit keys make: name at least one key, or pass --graph FILE\n");
      status = 2;
      return;
    }
    status = keys_make(keys_dir, names, keys_graph, args);
  });
  auto* klist = keys->add_subcommand("list", "the keys of a folder: name and public key");
  klist->add_option("dir", keys_dir, "key folder")->required();
  klist->callback([&] { status = keys_list(keys_dir); });

  // check
  std::string check_file;
  std::vector<std::string> check_args;
  auto* check = app.add_subcommand("check", "validate a launch file and print the expanded graph");
  check->add_option("file", check_file, "launch file")->required();
  check->add_option("args", check_args, "argument overrides, name:=value");
  check->callback([&] { status = run_check(check_file, check_args); });

  std::string control;
  auto add_control = [&](CLI::App* c) {
    c->add_option("--control", control,
                  "the launcher's control endpoint (default: GFDIT_CONTROL, else the newest launch)");
  };

  // actor
  auto* actor = app.add_subcommand("actor", "actor types and running actors");
  actor->require_subcommand(1);
  std::vector<std::string> plugins;
  auto* types = actor->add_subcommand("types", "actor types this binary can create, with their origin");
  types->add_option("--plugin", plugins, "load this plugin library first");
  types->callback([&] { status = actor_types(plugins); });
  bool json = false;
  auto* alist = actor->add_subcommand("list", "actors of the running graph: process, state, message counts");
  add_control(alist);
  alist->add_flag("--json", json, "JSON output");
  alist->callback([&] { status = actor_list(control, json); });

  // topic
  auto* topic = app.add_subcommand("topic", "topics of the running graph");
  topic->require_subcommand(1);
  auto* tlist = topic->add_subcommand("list", "topics with their publishers, subscribers and counts");
  add_control(tlist);
  tlist->add_flag("--json", json, "JSON output");
  tlist->callback([&] { status = topic_list(control, json); });
  std::string topic_name;
  int count = 0;
  double timeout_s = 0, window_s = 1, duration_s = 0;
  auto* echo = topic->add_subcommand("echo", "print the messages published on a topic");
  add_control(echo);
  echo->add_option("topic", topic_name)->required();
  echo->add_flag("--json", json, "one JSON envelope per line");
  echo->add_option("--count,-n", count, "stop after this many messages");
  echo->add_option("--timeout", timeout_s, "give up after this many seconds (0: never)");
  echo->callback([&] { status = topic_echo(control, topic_name, json, count, timeout_s); });
  auto* hz = topic->add_subcommand("hz", "the rate of a topic");
  add_control(hz);
  hz->add_option("topic", topic_name)->required();
  hz->add_option("--window", window_s, "seconds per report");
  hz->add_option("--duration", duration_s, "stop after this many seconds (0: never)");
  hz->callback([&] { status = topic_hz(control, topic_name, window_s, duration_s); });

  // top
  bool once = false;
  double top_timeout_s = 10;
  auto* topc = app.add_subcommand("top", "live view of a serving graph: workers, groups, requests with progress");
  add_control(topc);
  topc->add_flag("--once", once, "print one frame and exit");
  topc->add_option("--timeout", top_timeout_s, "fail when no snapshot came within this many seconds (0: wait)");
  topc->callback([&] { status = top(control, once, top_timeout_s); });

  // param
  auto* param = app.add_subcommand("param", "parameters of a running actor");
  param->require_subcommand(1);
  std::string actor_name, param_name, param_value;
  auto* pget = param->add_subcommand("get", "one parameter, or all of an actor's");
  add_control(pget);
  pget->add_option("actor", actor_name)->required();
  pget->add_option("name", param_name);
  pget->callback([&] { status = param_get(control, actor_name, param_name); });
  auto* pset = param->add_subcommand("set", "set a parameter (type-checked by the actor)");
  add_control(pset);
  pset->add_option("actor", actor_name)->required();
  pset->add_option("name", param_name)->required();
  pset->add_option("value", param_value, "JSON, or a bare string")->required();
  pset->callback([&] { status = param_set(control, actor_name, param_name, param_value); });

  // msg
  auto* msg = app.add_subcommand("msg", "the message catalog");
  msg->require_subcommand(1);
  msg->add_subcommand("list", "every registered message type")->callback([&] { status = msg_list(); });
  std::string msg_type;
  auto* show = msg->add_subcommand("show", "the schema of a message type");
  show->add_option("type", msg_type)->required();
  show->callback([&] { status = msg_show(msg_type); });

  app.add_subcommand("generate", "pictures from a model, no graph (gfdit generate --help)");
  app.add_subcommand("train", "train a DiT on the CPU, data parallel, into a model folder (gfdit train --help)");
  app.add_subcommand("sim", "the serving simulator (gfdit sim --help)");
  app.add_subcommand("profile", "measure served models' stage costs here, write a cost profile (gfdit profile --help)");
  app.add_subcommand("bag", "record bags (gfdit bag --help)");
  app.add_subcommand("replay", "replay bags (gfdit replay --help)");

  CLI11_PARSE(app, argc, argv);
  return status;
}
