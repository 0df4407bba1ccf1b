// `gfdit node`: one process instance of a graph, wired from the launch file.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <httplib.h>

#include "actors/runtime/logging.hpp"
#include "actors/runtime/node.hpp"
#include "actors/runtime/node_extension.hpp"
#include "actors/runtime/registry.hpp"
#include "launch/lib/commands.hpp"
#include "launch/lib/control.hpp"
#include "launch/lib/endpoints.hpp"
#include "launch/lib/graph_keys.hpp"
#include "launch/lib/launch_file.hpp"
#include "launch/lib/node_metrics.hpp"
#include "messages/catalog.hpp"

namespace gfdit::launch {
namespace {
namespace fs = std::filesystem;

// What the local actors published, per topic (the tap's view), for `gfdit topic list`.
class topic_counter {
 public:
  void on(const envelope& env, tap_point p) {
    if (p != tap_point::sent || env.kind != route::topic) return;
    std::lock_guard lock(mu_);
    auto& t = topics_[env.destination];
    ++t.count;
    t.types.insert(env.type_id);
    t.publishers.insert(env.sender);
  }
  nlohmann::json to_json() const {
    std::lock_guard lock(mu_);
    auto out = nlohmann::json::object();
    for (const auto& [name, t] : topics_) {
      auto types = nlohmann::json::array();
      for (auto id : t.types) {
        const auto* e = catalog::global().find(id);
        types.push_back(e ? e->name : std::to_string(id));
      }
      out[name] = {{"published", t.count},
                   {"types", types},
                   {"publishers", std::vector<std::string>(t.publishers.begin(), t.publishers.end())}};
    }
    return out;
  }

 private:
  struct stat {
    std::uint64_t count = 0;
    std::set<std::uint32_t> types;
    std::set<std::string> publishers;
  };
  mutable std::mutex mu_;
  std::map<std::string, stat> topics_;
};

// "tcp://HOST:PORT" -> "tcp://ADDRESS:PORT", so a host name binds the address it names.
result<std::string> resolve_bind(const std::string& ep) {
  if (ep.rfind("tcp://", 0) != 0) return ep;
  const auto colon = ep.rfind(':');
  const std::string host = ep.substr(6, colon - 6);
  auto addr = resolve_address(host);
  if (!addr) return addr.err();
  return "tcp://" + *addr + ep.substr(colon);
}

// This node's files in the runs folder (commands.hpp), removed when it exits.
struct announcement {
  std::vector<std::string> files;
  ~announcement() {
    std::error_code ec;
    for (const auto& f : files) fs::remove(f, ec);
  }
};

// The control endpoint as the launcher serves its own: a 0600 token only this user can read and,
// keyed, CURVE with the node's own pair; announced so this user's tools find both by endpoint.
result<std::unique_ptr<control_server>> serve_control(const std::string& endpoint, const graph_spec& g,
                                                      const instance_spec& me, const std::optional<bus_curve>& curve,
                                                      announcement& announced) {
  auto folder = private_runs_folder();
  if (!folder) return folder.err();
  sweep_runs_folder();
  const std::string stem = *folder + "/node-" + std::to_string(::getpid());
  std::error_code ec;
  fs::remove(stem + ".token", ec);  // a dead node's with our pid
  auto token = make_control_token(stem + ".token");
  if (!token) return token.err();
  announced.files.push_back(stem + ".token");
  std::optional<control_curve> keyed;
  if (curve) keyed = control_curve{curve->own, curve->accepted, {}};
  auto server = control_server::bind(endpoint, *token, keyed ? &*keyed : nullptr);
  if (!server) return server.err();
  std::ofstream(stem + ".json") << nlohmann::json{{"pid", ::getpid()},
                                                  {"graph", g.name},
                                                  {"node", me.node},
                                                  {"control", (*server)->endpoint()},
                                                  {"token_file", stem + ".token"},
                                                  {"keys", g.security.keys},
                                                  {"server_key", me.node}}
                                       .dump()
                                << "\n";
  announced.files.push_back(stem + ".json");
  return server;
}

}  // namespace

int run_node(const node_run_options& opt) {
  auto log = make_logger("gfdit-node");
  auto g = load(opt.file, opt.args);
  if (!g) {
    std::fprintf(stderr, "%s\n", g.err().what.c_str());
    return 2;
  }
  if (auto r = load_plugins(*g); !r) {
    std::fprintf(stderr, "%s\n", r.err().what.c_str());
    return 2;
  }
  const wiring w = !opt.ipc_dir.empty() ? wiring::ipc : opt.slurm ? wiring::slurm : wiring::tcp;
  const instance_spec* me = nullptr;
  if (w == wiring::slurm && opt.process.empty()) {
    const char* rank = std::getenv("SLURM_PROCID");
    if (!rank) {
      std::fprintf(stderr, "gfdit node --slurm: SLURM_PROCID is not set (run under srun)\n");
      return 2;
    }
    const int k = std::atoi(rank);
    if (k < 0 || k >= static_cast<int>(g->instances.size())) {
      std::fprintf(stderr, "gfdit node: SLURM_PROCID %d, but the graph has %zu process instances\n", k,
                   g->instances.size());
      return 2;
    }
    me = &g->instances[k];
  } else {
    const instance_spec* first = g->find(opt.process, 0);
    if (!first) {
      std::string names;
      for (const auto& i : g->instances)
        if (i.index == 0) names += (names.empty() ? "" : ", ") + i.process;
      std::fprintf(stderr, "gfdit node: no process '%s' in graph '%s' (processes: %s)\n", opt.process.c_str(),
                   g->name.c_str(), names.c_str());
      return 2;
    }
    if (opt.index < 0 && first->replicas > 1) {
      std::fprintf(stderr, "gfdit node: process '%s' has %d replicas: pass --index 0..%d\n", opt.process.c_str(),
                   first->replicas, first->replicas - 1);
      return 2;
    }
    me = g->find(opt.process, opt.index < 0 ? 0 : opt.index);
    if (!me) {
      std::fprintf(stderr, "gfdit node: process '%s' has no index %d (replicas: %d)\n", opt.process.c_str(), opt.index,
                   first->replicas);
      return 2;
    }
  }
  // Only this process's actors run their configure to check parameters (see validate()).
  if (auto r = validate(*g, me->node); !r) {
    std::fprintf(stderr, "%s\n", r.err().what.c_str());
    return 2;
  }
  auto plans = plan_endpoints(*g, w, opt.ipc_dir);
  if (!plans) {
    std::fprintf(stderr, "gfdit node: %s\n", plans.err().what.c_str());
    return 2;
  }
  node_options no;
  no.name = me->node;
  std::string control = opt.control;
  for (const auto& p : *plans) {
    if (p.node == me->node) {
      auto b = resolve_bind(p.bind);
      if (!b) {
        std::fprintf(stderr, "gfdit node: %s\n", b.err().what.c_str());
        return 2;
      }
      no.bind = *b;
      if (control.empty()) control = p.control;
    } else {
      no.peers.push_back({p.node, p.connect});
    }
  }
  if (auto r = check_exposure(*g, *me, no.bind); !r) {
    std::fprintf(stderr, "%s\n", r.err().what.c_str());
    return 2;
  }
  auto curve = node_curve(*g, me->node);
  if (!curve) {
    std::fprintf(stderr, "%s\n", curve.err().what.c_str());
    return 2;
  }
  no.curve = std::move(*curve);
  no.wiring = actor_wiring(*g);
  for (const auto& i : g->instances)
    if (i.exit_on_done && i.node != me->node) no.stop_with.insert(i.node);
  if (me->threads > 0) no.threads = me->threads;
  no.globals = g->parameters;
  no.peer_timeout = std::chrono::milliseconds(opt.peer_timeout_ms);

  auto n = node::create(no);  // blocks SIGINT/SIGTERM here, before any thread starts
  if (!n) {
    std::fprintf(stderr, "gfdit node: %s\n", n.err().what.c_str());
    return 1;
  }
  for (const auto& a : me->actors) {
    auto impl = actor_registry::global().make(a.type);
    if (!impl) {
      std::fprintf(stderr, "%s: unknown actor type '%s'\n", a.type_at.str().c_str(), a.type.c_str());
      return 2;
    }
    if (auto r = (*n)->add(a.name, std::move(impl), a.params, a.remaps); !r) {
      std::fprintf(stderr, "%s: %s\n", a.at.str().c_str(), r.err().what.c_str());
      return 2;
    }
  }
  auto topics = std::make_shared<topic_counter>();
  node_extension_registry::global().apply(**n);
  (*n)->add_tap([topics](const envelope_ptr& env, tap_point p) { topics->on(*env, p); });

  std::atomic<bool> serving{true};
  std::thread control_thread;
  std::unique_ptr<control_server> server;
  announcement announced;
  if (!control.empty()) {
    // The launcher's own socket for this process (ipc, in its 0700 run folder) needs no token;
    // an endpoint the operator names does.
    auto s = opt.control.empty() ? control_server::bind(control) : serve_control(control, *g, *me, no.curve, announced);
    if (!s) {
      std::fprintf(stderr, "gfdit node: %s\n", s.err().what.c_str());
      return 1;
    }
    server = std::move(*s);
    node* nd = n->get();
    control_thread = std::thread([&, nd] {
      const auto handle = [&](const nlohmann::json& req) -> nlohmann::json {
        const std::string cmd = req.value("cmd", "");
        if (cmd == "actors") {
          auto list = nlohmann::json::array();
          for (const auto& a : nd->actors())
            list.push_back({{"name", a.name},
                            {"state", std::string(to_string(a.state))},
                            {"received", a.received},
                            {"sent", a.sent},
                            {"unhandled", a.unhandled},
                            {"decode_errors", a.decode_errors},
                            {"delivery_failures", a.delivery_failures}});
          return {{"ok", true}, {"node", nd->name()}, {"pid", ::getpid()}, {"actors", list}};
        }
        if (cmd == "topics")
          return {{"ok", true},
                  {"node", nd->name()},
                  {"published", topics->to_json()},
                  {"subscriptions", nd->subscriptions()}};
        if (cmd == "ping") return {{"ok", true}, {"node", nd->name()}, {"pid", ::getpid()}};
        return {{"ok", false}, {"error", "unknown command '" + cmd + "'"}};
      };
      while (serving) server->serve_one(handle, 100);
    });
  }
  const auto stop_control = [&] {
    serving = false;
    if (control_thread.joinable()) control_thread.join();
    server.reset();
  };

  if (auto r = (*n)->start(); !r) {
    const bool asked = (*n)->stop_requested();  // a signal before the peers came: not a failure
    if (asked)
      log->info("{}", r.err().what);
    else
      log->error("{}", r.err().what);
    stop_control();
    (*n)->stop();
    return asked ? 0 : 1;
  }
  log->info("node '{}' of graph '{}' up on {} with {} actor(s){}", me->node, g->name, (*n)->endpoint(),
            me->actors.size(), no.curve ? " (keyed: CurveZMQ)" : "");
  // Prometheus text on metrics.bind:port_base + this instance's place in the file.
  std::unique_ptr<httplib::Server> metrics;
  std::thread metrics_thread;
  if (g->metrics_port_base > 0) {
    const auto k = static_cast<int>(me - g->instances.data());
    const int port = g->metrics_port_base + k;
    metrics = std::make_unique<httplib::Server>();
    node* nd = n->get();
    const char* lives = std::getenv("GFDIT_RESTARTS");  // set by the launcher
    const int restarts = lives ? std::atoi(lives) : 0;
    metrics->Get("/metrics", [nd, restarts](const httplib::Request&, httplib::Response& res) {
      res.set_content(node_metrics_text(nd->name(), nd->actors(), nd->transport_stats(), restarts),
                      "text/plain; version=0.0.4");
    });
    if (port > 65535 || !metrics->bind_to_port(g->metrics_bind, port)) {
      log->error("metrics: cannot listen on {}:{}", g->metrics_bind, port);
      stop_control();
      (*n)->stop();
      return 1;
    }
    metrics_thread = std::thread([&metrics] { metrics->listen_after_bind(); });
    log->info("metrics on http://{}:{}/metrics", g->metrics_bind, port);
  }
  const int status = (*n)->run_until_signal();
  if (metrics) metrics->stop();
  if (metrics_thread.joinable()) metrics_thread.join();
  stop_control();
  return status;
}

}  // namespace gfdit::launch
