// `gfdit actor|topic|param|msg ...`: introspection of a running graph through its launcher's
// control endpoint, and of this build's message catalog and actor types.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>

#include "actors/runtime/plugin_loader.hpp"
#include "actors/runtime/registry.hpp"
#include "actors/serving/serving_names.hpp"
#include "launch/lib/commands.hpp"
#include "launch/lib/control.hpp"
#include "launch/lib/graph_keys.hpp"
#include "launch/lib/graph_peer.hpp"
#include "launch/lib/top_view.hpp"
#include "messages/catalog.hpp"
#include "messages/serving.hpp"
#include "messages/system.hpp"

namespace gfdit::launch {
namespace fs = std::filesystem;
namespace {

using namespace std::chrono_literals;

result<std::string> find_control(const std::string& given) {
  if (!given.empty()) return given;
  if (const char* env = std::getenv("GFDIT_CONTROL"); env && *env) return std::string(env);
  sweep_runs_folder();
  std::string best;
  fs::file_time_type best_time{};
  std::error_code ec;
  for (const auto& f : fs::directory_iterator(runs_folder(), ec)) {
    // Launchers only (a `gfdit node --control` announces itself too, as node-<pid>.json).
    if (f.path().extension() != ".json" || f.path().filename().string().rfind("launch-", 0) != 0) continue;
    std::ifstream in(f.path());
    auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.contains("pid") || !j.contains("control")) continue;
    if (::kill(j["pid"].get<int>(), 0) != 0) continue;  // a launcher that died without cleaning up
    const auto t = fs::last_write_time(f.path(), ec);
    if (best.empty() || t > best_time) {
      best = j["control"].get<std::string>();
      best_time = t;
    }
  }
  if (best.empty())
    return make_error(errc::not_found,
                      "no running 'gfdit launch' found for this user (pass --control "
                      "ENDPOINT or set GFDIT_CONTROL)");
  return best;
}

result<nlohmann::json> ask(const std::string& control, const std::string& cmd) {
  auto ep = find_control(control);
  if (!ep) return ep.err();
  return ask_launcher(*ep, {{"cmd", cmd}}, 5000ms);
}

int fail(const error& e) {
  std::fprintf(stderr, "gfdit: %s\n", e.what.c_str());
  return 1;
}

// Joins the graph named by the launcher at `control`, subscribed to `topics`.
result<std::unique_ptr<graph_peer>> join(const std::string& control, std::vector<std::string> topics,
                                         graph_peer::on_message fn) {
  auto g = ask(control, "graph");
  if (!g) return g.err();
  std::vector<graph_node> nodes;
  for (const auto& p : (*g)["processes"])
    if (p.value("pid", -1) > 0) nodes.push_back({p["node"].get<std::string>(), p["endpoint"].get<std::string>()});
  if (nodes.empty()) return make_error(errc::state, "no process of the graph is running");
  std::optional<tool_key> key;
  if (const std::string keys = g->value("keys", std::string()); !keys.empty()) {
    auto k = read_tool_key(keys);
    if (!k) return k.err();
    key = std::move(*k);
  }
  return graph_peer::join(nodes, std::move(topics), std::move(fn), 5000ms, std::move(key));
}

// Termination signals become a flag the command polls, so it always leaves the graph cleanly.
sigset_t block_termination() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

bool signalled(const sigset_t& set, std::chrono::milliseconds wait) {
  timespec ts{static_cast<time_t>(wait.count() / 1000), static_cast<long>(wait.count() % 1000) * 1000000};
  const int s = sigtimedwait(&set, nullptr, &ts);
  return s == SIGINT || s == SIGTERM;
}

}  // namespace

int actor_types(const std::vector<std::string>& plugins) {
  for (const auto& p : plugins)
    if (auto r = load_plugin(p); !r) return fail(r.err());
  if (auto r = load_plugins_from_env(); !r) return fail(r.err());
  std::size_t width = 4;
  const auto types = actor_registry::global().list();
  for (const auto& t : types) width = std::max(width, t.name.size());
  std::printf("%-*s  %s\n", static_cast<int>(width), "TYPE", "ORIGIN");
  for (const auto& t : types) std::printf("%-*s  %s\n", static_cast<int>(width), t.name.c_str(), t.origin.c_str());
  return 0;
}

int actor_list(const std::string& control, bool json) {
  auto r = ask(control, "actors");
  if (!r) return fail(r.err());
  if (json) {
    std::printf("%s\n", (*r)["nodes"].dump().c_str());
    return 0;
  }
  std::printf("%-18s %-20s %-12s %10s %10s %9s %7s %7s\n", "PROCESS", "ACTOR", "STATE", "RECEIVED", "SENT", "UNHANDLED",
              "ERRORS", "PID");
  for (const auto& n : (*r)["nodes"]) {
    const std::string node = n["node"].get<std::string>();
    if (!n.contains("actors")) {
      std::printf("%-18s %-20s %-12s %s\n", node.c_str(), "-", n.value("state", "?").c_str(),
                  n.value("error", std::string()).c_str());
      continue;
    }
    for (const auto& a : n["actors"])
      std::printf("%-18s %-20s %-12s %10llu %10llu %9llu %7llu %7d\n", node.c_str(),
                  a["name"].get<std::string>().c_str(), a["state"].get<std::string>().c_str(),
                  static_cast<unsigned long long>(a["received"].get<std::uint64_t>()),
                  static_cast<unsigned long long>(a["sent"].get<std::uint64_t>()),
                  static_cast<unsigned long long>(a["unhandled"].get<std::uint64_t>()),
                  static_cast<unsigned long long>(a["decode_errors"].get<std::uint64_t>() +
                                                  a["delivery_failures"].get<std::uint64_t>()),
                  n.value("pid", -1));
  }
  return 0;
}

int topic_list(const std::string& control, bool json) {
  auto r = ask(control, "topics");
  if (!r) return fail(r.err());
  struct info {
    std::uint64_t published = 0;
    std::set<std::string> types, publishers, subscribers;
  };
  std::map<std::string, info> topics;
  for (const auto& n : (*r)["nodes"]) {
    const std::string node = n["node"].get<std::string>();
    if (n.contains("published"))
      for (const auto& [t, p] : n["published"].items()) {
        auto& i = topics[t];
        i.published += p["published"].get<std::uint64_t>();
        for (const auto& ty : p["types"]) i.types.insert(ty.get<std::string>());
        for (const auto& pub : p["publishers"]) i.publishers.insert(node + "/" + pub.get<std::string>());
      }
    if (n.contains("subscriptions"))
      for (const auto& [t, subs] : n["subscriptions"].items())
        for (const auto& s : subs) topics[t].subscribers.insert(node + "/" + s.get<std::string>());
  }
  auto join_set = [](const std::set<std::string>& s) {
    std::string out;
    for (const auto& x : s) out += (out.empty() ? "" : ",") + x;
    return out.empty() ? std::string("-") : out;
  };
  if (json) {
    auto out = nlohmann::json::object();
    for (const auto& [t, i] : topics)
      out[t] = {
          {"published", i.published}, {"types", i.types}, {"publishers", i.publishers}, {"subscribers", i.subscribers}};
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  std::printf("%-24s %10s  %-24s %-28s %s\n", "TOPIC", "PUBLISHED", "TYPES", "PUBLISHERS", "SUBSCRIBERS");
  for (const auto& [t, i] : topics) {
    if (t == "*") continue;
    std::printf("%-24s %10llu  %-24s %-28s %s\n", t.c_str(), static_cast<unsigned long long>(i.published),
                join_set(i.types).c_str(), join_set(i.publishers).c_str(), join_set(i.subscribers).c_str());
  }
  return 0;
}

int topic_echo(const std::string& control, const std::string& topic, bool json, int count, double timeout_s) {
  const sigset_t set = block_termination();
  std::mutex mu;
  std::atomic<int> seen{0};
  auto peer = join(control, {topic}, [&](const envelope& env) {
    if (env.destination != topic) return;
    if (count > 0 && seen.load() >= count) return;
    const auto j = catalog::global().render(env);
    std::lock_guard lock(mu);
    if (json) {
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("--- %s from '%s' (seq %llu)\n", j["type"].is_string() ? j["type"].get<std::string>().c_str() : "?",
                  env.sender.c_str(), static_cast<unsigned long long>(env.seq));
      std::printf("%s\n", j.contains("payload") ? j["payload"].dump(2).c_str() : j.dump(2).c_str());
    }
    std::fflush(stdout);
    ++seen;
  });
  if (!peer) return fail(peer.err());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (!(count > 0 && seen.load() >= count)) {
    if (signalled(set, 50ms)) break;
    if (timeout_s > 0 && std::chrono::steady_clock::now() >= deadline) break;
  }
  peer->reset();
  if (count > 0 && seen.load() < count) {
    std::fprintf(stderr, "gfdit topic echo: %d of %d message(s) on '%s' before the timeout\n", seen.load(), count,
                 topic.c_str());
    return 1;
  }
  return 0;
}

int top(const std::string& control, bool once, double timeout_s) {
  const sigset_t set = block_termination();
  std::mutex mu;
  std::string frame;
  int frames = 0;
  const auto g = ask(control, "graph");
  const std::string graph = g ? g->value("graph", std::string("?")) : "?";
  auto peer = join(control, {serving_names::state_topic}, [&](const envelope& env) {
    if (env.destination != serving_names::state_topic || !env.is<msg::cluster_state>()) return;
    auto s = decode<msg::cluster_state>(env.payload);
    if (!s) return;
    std::lock_guard lock(mu);
    frame = render_top(*s, graph);
    ++frames;
  });
  if (!peer) return fail(peer.err());
  const bool tty = ::isatty(1);
  const auto t0 = std::chrono::steady_clock::now();
  int shown = 0;
  while (!signalled(set, 100ms)) {
    std::string f;
    int n = 0;
    {
      std::lock_guard lock(mu);
      f = frame;
      n = frames;
    }
    if (n == 0 && timeout_s > 0 && std::chrono::steady_clock::now() - t0 > std::chrono::duration<double>(timeout_s)) {
      std::fprintf(stderr, "gfdit top: no snapshot on '%s' within %.0f s (is a scheduler running?)\n",
                   serving_names::state_topic, timeout_s);
      peer->reset();
      return 1;
    }
    if (n == shown) continue;
    shown = n;
    if (tty && !once) std::fputs("\x1b[H\x1b[2J", stdout);  // home, clear
    std::fputs(f.c_str(), stdout);
    std::fflush(stdout);
    if (once) break;
  }
  peer->reset();
  return 0;
}

int topic_hz(const std::string& control, const std::string& topic, double window_s, double duration_s) {
  const sigset_t set = block_termination();
  std::mutex mu;
  std::vector<double> arrivals;  // seconds since start, this window
  const auto t0 = std::chrono::steady_clock::now();
  auto peer = join(control, {topic}, [&](const envelope& env) {
    if (env.destination != topic) return;
    std::lock_guard lock(mu);
    arrivals.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  });
  if (!peer) return fail(peer.err());
  const auto end = t0 + std::chrono::duration<double>(duration_s);
  auto next = t0 + std::chrono::duration<double>(window_s);
  std::uint64_t total = 0;
  while (true) {
    if (signalled(set, 20ms)) break;
    const auto now = std::chrono::steady_clock::now();
    if (now < next) {
      if (duration_s > 0 && now >= end) break;
      continue;
    }
    std::vector<double> a;
    {
      std::lock_guard lock(mu);
      a.swap(arrivals);
    }
    total += a.size();
    if (a.size() < 2) {
      std::printf("%s: %zu message(s) in %.1f s\n", topic.c_str(), a.size(), window_s);
    } else {
      double mn = 1e300, mx = 0, sum = 0, sq = 0;
      for (std::size_t i = 1; i < a.size(); ++i) {
        const double d = a[i] - a[i - 1];
        mn = std::min(mn, d), mx = std::max(mx, d), sum += d, sq += d * d;
      }
      const double n = static_cast<double>(a.size() - 1), mean = sum / n;
      std::printf("%s: %.2f Hz  (n=%zu, interval mean %.2f ms, min %.2f, max %.2f, std %.2f)\n", topic.c_str(),
                  1.0 / mean, a.size(), mean * 1e3, mn * 1e3, mx * 1e3,
                  std::sqrt(std::max(0.0, sq / n - mean * mean)) * 1e3);
    }
    std::fflush(stdout);
    next += std::chrono::duration<double>(window_s);
    if (duration_s > 0 && now >= end) break;
  }
  peer->reset();
  return 0;
}

int param_get(const std::string& control, const std::string& actor, const std::string& name) {
  auto peer = join(control, {}, {});
  if (!peer) return fail(peer.err());
  auto rep = (*peer)->request(actor, type_id_of<msg::parameter_get>, msg::parameter_get::type_version,
                              encode(msg::parameter_get{name}), 5000ms);
  if (!rep) return fail(rep.err());
  auto v = open<msg::parameter_value>(*rep);
  if (!v) return fail(v.err());
  if (!v->error.empty()) return fail(make_error(errc::not_found, actor + ": " + v->error));
  auto values = nlohmann::json::parse(v->values_json, nullptr, false);
  if (!name.empty() && values.contains(name)) {
    std::printf("%s\n", values[name].dump().c_str());
    return 0;
  }
  for (const auto& [k, val] : values.items()) std::printf("%s: %s\n", k.c_str(), val.dump().c_str());
  return 0;
}

int param_set(const std::string& control, const std::string& actor, const std::string& name, const std::string& value) {
  // A value that is not JSON is a string: `gfdit param set a mode fast`.
  auto parsed = nlohmann::json::parse(value, nullptr, false);
  const std::string value_json = parsed.is_discarded() ? nlohmann::json(value).dump() : parsed.dump();
  auto peer = join(control, {}, {});
  if (!peer) return fail(peer.err());
  auto rep = (*peer)->request(actor, type_id_of<msg::parameter_set>, msg::parameter_set::type_version,
                              encode(msg::parameter_set{name, value_json}), 5000ms);
  if (!rep) return fail(rep.err());
  auto v = open<msg::parameter_value>(*rep);
  if (!v) return fail(v.err());
  if (!v->error.empty()) return fail(make_error(errc::invalid_argument, actor + ": " + v->error));
  auto values = nlohmann::json::parse(v->values_json, nullptr, false);
  std::printf("%s.%s = %s\n", actor.c_str(), name.c_str(),
              values.contains(name) ? values[name].dump().c_str() : value_json.c_str());
  return 0;
}

int msg_list() {
  std::printf("%-32s %10s %s\n", "TYPE", "ID", "VERSION");
  for (const auto& e : catalog::global().list())
    std::printf("%-32s %10u %u\n", e.name.c_str(), e.id, static_cast<unsigned>(e.version));
  return 0;
}

int msg_show(const std::string& type) {
  const auto* e = catalog::global().find(type);
  if (!e) {
    std::fprintf(stderr, "gfdit: no message type '%s' (see `gfdit msg list`)\n", type.c_str());
    return 1;
  }
  std::printf("%s  (id %u, version %u)\n%s\n", e->name.c_str(), e->id, static_cast<unsigned>(e->version),
              e->schema.dump(2).c_str());
  return 0;
}

}  // namespace gfdit::launch
