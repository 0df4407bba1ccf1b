#include "actors/client/load_client.hpp"

#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include <CLI/CLI.hpp>

#include "actors/runtime/context.hpp"
#include "actors/runtime/node.hpp"
#include "actors/runtime/param_checks.hpp"
#include "actors/runtime/tool_key.hpp"
#include "actors/serving/model_time.hpp"
#include "actors/serving/serving_names.hpp"
#include "actors/sim/workload.hpp"
#include "messages/membership.hpp"

namespace gfdit {

namespace names = serving_names;

struct load_client::impl {
  load_client_options opt;
  on_finish_fn on_finish;
  sim::workload wl;
  std::vector<sim::arrival> trace;
  sim::metrics_recorder metrics;
  std::map<std::string, std::size_t> by_tag;                 // client_tag -> index in trace
  std::set<std::string> ended;                               // tags with a terminal answer: a duplicate counts once
  std::set<std::pair<std::uint64_t, std::uint64_t>> formed;  // (group id, epoch) seen active
  std::size_t sent = 0, terminal = 0;
  // The recorder measures from time zero; live stamps are absolute model times, so every time
  // is shifted by the first arrival admission saw.
  std::int64_t t0_us = INT64_MAX;
  bool finished = false;
  std::chrono::steady_clock::time_point t0;

  void finish(context& ctx) {
    if (finished) return;
    finished = true;
    sim::run_metrics base;
    base.workload = wl.name;
    base.policy = opt.label;
    base.gpus = opt.gpus;
    base.seed = opt.seed;
    auto m = metrics.finish(base, opt.gpus);
    if (on_finish) on_finish(m);
    ctx.request_stop();
  }
};

load_client::load_client(load_client_options opt, on_finish_fn on_finish) : impl_(std::make_shared<impl>()) {
  impl_->opt = std::move(opt);
  impl_->on_finish = std::move(on_finish);
}

result<void> load_client::on_configure(context& ctx) {
  auto& s = *impl_;
  auto wl = sim::load_workload(s.opt.workload);
  if (!wl) return wl.err();
  s.wl = std::move(*wl);
  if (s.opt.requests > 0) s.wl.requests = s.opt.requests;
  if (s.opt.seed == 0) s.opt.seed = s.wl.seed;
  auto trace = sim::generate_arrivals(s.wl, cost_model::stock(), s.opt.gpus, s.opt.seed);
  if (!trace) return trace.err();
  s.trace = std::move(*trace);

  auto terminal = [this, &ctx](std::int64_t at_us) {
    auto& s = *impl_;
    s.metrics.last_event(at_us - s.t0_us);
    if (++s.terminal == s.trace.size()) s.finish(ctx);
  };
  ctx.on<msg::rejected>([this, terminal](const msg::rejected& r, const envelope&) {
    auto it = impl_->by_tag.find(r.client_tag);
    if (it == impl_->by_tag.end() || !impl_->ended.insert(r.client_tag).second) return;
    impl_->t0_us = std::min(impl_->t0_us, r.at_us);
    impl_->metrics.rejected(impl_->trace[it->second].request.class_name, r.at_us - impl_->t0_us);
    terminal(r.at_us);
  });
  ctx.on<msg::admitted>([this, &ctx](const msg::admitted& a, const envelope&) {
    auto it = impl_->by_tag.find(a.request.client_tag);
    if (it == impl_->by_tag.end()) return;
    impl_->t0_us = std::min(impl_->t0_us, a.arrival_us);
    const auto& arr = impl_->trace[it->second];
    if (!arr.cancel) return;
    const auto after_us = static_cast<std::int64_t>(arr.cancel_after_fraction * a.est_single_gpu_us);
    ctx.after(wall_delay(after_us, impl_->opt.speedup), [&ctx, id = a.request_id] {
      (void)ctx.send(names::scheduler, msg::cancel{id, "client gave up"});
    });
  });
  // Groups formed and worker deaths are membership's news; every client may listen.
  ctx.subscribe<msg::group_view>(names::membership_topic, [this](const msg::group_view& v, const envelope&) {
    // A group is formed once per (id, epoch); membership re-announces active ones.
    if (v.active && impl_->formed.insert({v.group_id, v.epoch}).second) impl_->metrics.group_formed();
  });
  ctx.subscribe<msg::worker_down>(names::membership_topic,
                                  [this](const msg::worker_down&, const envelope&) { impl_->metrics.worker_died(); });
  ctx.subscribe<msg::request_done>(names::done_topic, [this, terminal](const msg::request_done& d, const envelope&) {
    if (!impl_->by_tag.count(d.client_tag)) return;  // another client's request
    if (!impl_->ended.insert(d.client_tag).second) return;
    // Its own arrival bounds time zero too: a RequestDone handled before any Admitted must not
    // be shifted by the INT64_MAX placeholder.
    impl_->t0_us = std::min(impl_->t0_us, d.arrival_us);
    auto shifted = d;
    shifted.arrival_us -= impl_->t0_us;
    shifted.finish_us -= impl_->t0_us;
    shifted.deadline_us -= impl_->t0_us;
    impl_->metrics.terminal(shifted);
    terminal(d.finish_us);
  });
  return {};
}

result<void> load_client::on_activate(context& ctx) {
  auto& s = *impl_;
  s.t0 = std::chrono::steady_clock::now();
  if (s.trace.empty()) {
    s.finish(ctx);
    return {};
  }
  // Arrival times are relative to the first; each request leaves at its own time.
  const auto first = s.trace.front().at_us;
  for (std::size_t i = 0; i < s.trace.size(); ++i) {
    auto& a = s.trace[i];
    a.request.client_tag = ctx.name() + "/" + std::to_string(i);
    s.by_tag[a.request.client_tag] = i;
    ctx.after(wall_delay(a.at_us - first, s.opt.speedup), [this, &ctx, i] {
      auto& s = *impl_;
      s.metrics.arrived(s.trace[i].request.class_name, s.trace[i].at_us - s.trace.front().at_us);
      ++s.sent;
      if (auto r = ctx.send(names::admission, s.trace[i].request); !r) ctx.log().error("{}", r.err().what);
    });
  }
  ctx.after(std::chrono::duration_cast<duration>(std::chrono::duration<double>(s.opt.max_wall_s)), [this, &ctx] {
    ctx.log().error("gave up after {} s with {} of {} requests unfinished", impl_->opt.max_wall_s,
                    impl_->trace.size() - impl_->terminal, impl_->trace.size());
    impl_->finish(ctx);
  });
  return {};
}

int serve_main(int argc, char** argv) {
  CLI::App app{"gfdit bench serve: drive a running serving graph with a workload"};
  load_client_options opt;
  std::vector<std::string> peers;
  std::string json_out, bind = "tcp://127.0.0.1:*";
  app.add_option("--workload", opt.workload, "workload YAML")->required()->check(CLI::ExistingFile);
  app.add_option("--connect", peers, "NODE=ENDPOINT of the process hosting admission/scheduler")->required();
  app.add_option("--bind", bind, "this client's endpoint");
  app.add_option("--gpus", opt.gpus, "cluster size the arrival rate is scaled to");
  app.add_option("--seed", opt.seed, "0: the workload's seed");
  app.add_option("--requests", opt.requests, "0: the workload's count");
  app.add_option("--speedup", opt.speedup, "the graph's speedup");
  app.add_option("--max-wall-s", opt.max_wall_s, "give up after this long");
  app.add_option("--label", opt.label, "the column name in the table");
  app.add_option("--json", json_out, "also write the metrics as JSON here");
  std::string keys;
  app.add_option("--keys", keys, "a keyed graph's key folder: join with GFDIT_KEY, else its operator.key");
  CLI11_PARSE(app, argc, argv);
  node_options no;
  no.name = "client";
  no.bind = bind;
  if (!keys.empty()) {
    auto k = read_tool_key(keys);
    if (!k) return std::fprintf(stderr, "--keys: %s\n", k.err().what.c_str()), 2;
    no.name = k->node_for("client");
    no.curve = std::move(k->curve);
  }
  for (const auto& p : peers) {
    const auto eq = p.find('=');
    if (eq == std::string::npos) {
      std::fprintf(stderr, "--connect '%s': expected NODE=ENDPOINT\n", p.c_str());
      return 2;
    }
    no.peers.push_back({p.substr(0, eq), p.substr(eq + 1)});
  }
  auto n = node::create(no);
  if (!n) return std::fprintf(stderr, "%s\n", n.err().what.c_str()), 1;
  sim::run_metrics result;
  bool got = false;
  (void)(*n)->add("client", std::make_unique<load_client>(opt, [&](const sim::run_metrics& m) {
                    result = m;
                    got = true;
                  }));
  if (auto r = (*n)->start(); !r) return std::fprintf(stderr, "%s\n", r.err().what.c_str()), 1;
  (*n)->run_until_signal();
  if (!got) return std::fprintf(stderr, "stopped before the workload finished\n"), 1;
  std::printf("%s", sim::format_table({result}).c_str());
  if (!json_out.empty()) std::ofstream(json_out) << result.to_json().dump(2) << "\n";
  return result.unfinished == 0 ? 0 : 1;
}

}  // namespace gfdit

namespace gfdit {
namespace {

// The load client as a graph actor (type "gfdit.load_client"): its options are parameters, and
// when the workload is done it prints the metrics table, optionally writes them as JSON, and
// stops its process (with `exit_on_done`, the launcher then stops the graph).
class load_client_actor : public actor {
 public:
  result<void> on_configure(context& ctx) override {
    auto& p = ctx.params();
    for (auto r : {p.declare<std::string>("workload", "", "workload YAML (required)"),
                   p.declare<std::int64_t>("gpus", 4, "cluster size the arrival rate is scaled to"),
                   p.declare<std::int64_t>("seed", 0, "0: the workload's own"),
                   p.declare<std::int64_t>("requests", 0, "0: the workload's own"),
                   p.declare<double>("speedup", 1.0, "as the graph's shells", checks::above<double>(0.0)),
                   p.declare<double>("max_wall_s", 600.0, "give up after this long"),
                   p.declare<std::string>("label", "live", "column name in the table"),
                   p.declare<std::string>("json", "", "also write the metrics as JSON here (empty or -: no)")})
      if (!r) return r;
    load_client_options opt;
    opt.workload = p.get<std::string>("workload");
    if (opt.workload.empty()) return make_error(errc::invalid_argument, "parameter 'workload' is required");
    opt.gpus = static_cast<std::int32_t>(p.get<std::int64_t>("gpus"));
    opt.seed = static_cast<std::uint64_t>(p.get<std::int64_t>("seed"));
    opt.requests = p.get<std::int64_t>("requests");
    opt.speedup = p.get<double>("speedup");
    opt.max_wall_s = p.get<double>("max_wall_s");
    opt.label = p.get<std::string>("label");
    inner_ = std::make_unique<load_client>(opt, [json = p.get<std::string>("json")](const sim::run_metrics& m) {
      std::printf("%s", sim::format_table({m}).c_str());
      std::fflush(stdout);
      if (!json.empty() && json != "-") std::ofstream(json) << m.to_json().dump(2) << "\n";
    });
    return inner_->on_configure(ctx);
  }
  result<void> on_activate(context& ctx) override { return inner_->on_activate(ctx); }

 private:
  std::unique_ptr<load_client> inner_;
};

}  // namespace
}  // namespace gfdit

#include "actors/runtime/registry.hpp"
GFDIT_REGISTER_ACTOR(gfdit::load_client_actor, "gfdit.load_client");
